//! One client's connection: admission by SO_PEERCRED, the handshake, then a reader loop (frames
//! in), a writer task (frames out, fed by a bounded channel) and, once subscribed, an event
//! forwarder. Requests run on the blocking pool; their answers go back in whatever order they
//! finish, tagged with the request's id. A peer can break only its own connection: every frame
//! error ends in an error frame or a closed connection, never in a daemon that stops serving
//! others.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use berth_api::error::{ApiError, ErrorKind};
use berth_api::event::Event;
use berth_api::fdpass::write_frame_with_fds;
use berth_api::frame::{FrameError, read_frame, write_frame};
use berth_api::protocol::{ClientFrame, PROTOCOL_VERSION, ServerFrame, parse_client_frame};
use berth_api::request::{Reply, Request};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

use crate::auth::Peer;
use crate::server::{Daemon, SERVER_VERSION, log};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one connection before its event forwarder waits (and then lags).
const OUTGOING_QUEUE: usize = 256;

/// Tells a peer it is not served, and why.
pub async fn refuse(stream: UnixStream, message: String) {
    let (_, mut writer) = stream.into_split();
    let _ = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        write_frame(&mut writer, &ServerFrame::Refused { message }),
    )
    .await;
}

pub async fn serve_connection(daemon: Arc<Daemon>, stream: UnixStream) {
    let peer = match stream.peer_cred() {
        Ok(cred) => {
            let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
            // The group lookup may read /etc/group or ask NSS: keep it off the async workers.
            match tokio::task::spawn_blocking(move || Peer::from_credentials(uid, gid, pid)).await {
                Ok(peer) => peer,
                Err(_) => return,
            }
        }
        Err(e) => {
            log(format!("cannot read a peer's credentials, closing: {e}"));
            return;
        }
    };
    if let Err(message) = daemon.policy.admit(&peer) {
        log(format!(
            "refused uid {} (pid {:?}): {message}",
            peer.uid, peer.pid
        ));
        refuse(stream, message).await;
        return;
    }

    let (mut reader, mut writer) = stream.into_split();
    if let Err(error) = handshake(&mut reader).await {
        let _ = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            write_frame(&mut writer, &ServerFrame::Error { id: None, error }),
        )
        .await;
        return;
    }
    let welcome = ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        server_version: SERVER_VERSION.into(),
        mode: daemon.config.mode,
    };
    if write_frame(&mut writer, &welcome).await.is_err() {
        return;
    }

    let (out, mut outgoing) = mpsc::channel::<ServerFrame>(OUTGOING_QUEUE);
    // Frames that carry fds (`vm display`'s memfd, an exec's terminal or pipes) go through
    // sendmsg; a channel of their own keeps every other frame's path as it was. Answers go in
    // any order anyway.
    let (fd_out, mut fd_outgoing) = mpsc::channel::<(ServerFrame, Vec<OwnedFd>)>(OUTGOING_QUEUE);
    let writer_task = tokio::spawn(async move {
        loop {
            let written = tokio::select! {
                Some(frame) = outgoing.recv() => write_frame(&mut writer, &frame).await,
                Some((frame, fds)) = fd_outgoing.recv() => {
                    // The fds are closed here once sent: the client has its own copies.
                    write_frame_with_fds(&mut writer, &frame, &fds).await
                }
                else => break,
            };
            if written.is_err() {
                break;
            }
        }
    });
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    let peer = Arc::new(peer);
    loop {
        let body = match read_frame(&mut reader).await {
            Ok(body) => body,
            Err(FrameError::Closed) => break,
            Err(e) => {
                // The stream is no longer aligned on a frame: say why, then close.
                let error = ApiError::new(ErrorKind::Protocol, e.to_string());
                let _ = out.send(ServerFrame::Error { id: None, error }).await;
                break;
            }
        };
        match parse_client_frame(&body) {
            Ok(ClientFrame::Request {
                id,
                request: Request::Subscribe,
            }) => {
                if forwarder.is_none() {
                    forwarder = Some(tokio::spawn(forward_events(
                        daemon.events.subscribe(),
                        out.clone(),
                    )));
                }
                let _ = out
                    .send(ServerFrame::Response {
                        id,
                        result: Ok(Reply::Done),
                    })
                    .await;
            }
            Ok(ClientFrame::Request {
                id,
                request: Request::ContainerWait { container },
            }) => {
                tokio::spawn(crate::wait::container_wait(
                    Arc::clone(&daemon),
                    id,
                    container,
                    out.clone(),
                ));
            }
            Ok(ClientFrame::Request {
                id,
                request:
                    request @ (Request::VmDisplay { .. }
                    | Request::LogFile { .. }
                    | Request::Attach { .. }
                    | Request::Exec(_)
                    | Request::Save { .. }
                    | Request::Export { .. }
                    | Request::Run(_)),
            }) => {
                // Answered with descriptors on the answer's frame.
                let (daemon, peer, out, fd_out) = (
                    Arc::clone(&daemon),
                    Arc::clone(&peer),
                    out.clone(),
                    fd_out.clone(),
                );
                tokio::spawn(async move {
                    let answer =
                        tokio::task::spawn_blocking(move || daemon.handle_with_fds(&peer, request))
                            .await
                            .unwrap_or_else(|e| {
                                Err(ApiError::internal(format!(
                                    "the request failed inside berthd: {e}"
                                )))
                            });
                    match answer {
                        Ok((reply, fds)) => {
                            let frame = ServerFrame::Response {
                                id,
                                result: Ok(reply),
                            };
                            // `run` without a terminal has none to send.
                            if fds.is_empty() {
                                let _ = out.send(frame).await;
                            } else {
                                let _ = fd_out.send((frame, fds)).await;
                            }
                        }
                        Err(error) => {
                            let frame = ServerFrame::Response {
                                id,
                                result: Err(error),
                            };
                            let _ = out.send(frame).await;
                        }
                    }
                });
            }
            Ok(ClientFrame::Request { id, request }) => {
                let (daemon, peer, out) = (Arc::clone(&daemon), Arc::clone(&peer), out.clone());
                tokio::spawn(async move {
                    let result = tokio::task::spawn_blocking(move || daemon.handle(&peer, request))
                        .await
                        .unwrap_or_else(|e| {
                            Err(ApiError::internal(format!(
                                "the request failed inside berthd: {e}"
                            )))
                        });
                    let _ = out.send(ServerFrame::Response { id, result }).await;
                });
            }
            Ok(ClientFrame::Hello { .. }) => {
                let error = ApiError::new(
                    ErrorKind::Protocol,
                    "hello was already said on this connection",
                );
                let _ = out.send(ServerFrame::Error { id: None, error }).await;
            }
            Err((id, error)) => {
                let _ = out.send(ServerFrame::Error { id, error }).await;
            }
        }
    }
    if let Some(forwarder) = forwarder {
        forwarder.abort();
    }
    drop(out);
    drop(fd_out);
    // Let queued answers go out, but do not wait forever on a peer that stopped reading.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}

/// Read the client's hello and check its protocol version.
async fn handshake(reader: &mut tokio::net::unix::OwnedReadHalf) -> Result<(), ApiError> {
    let body = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(reader))
        .await
        .map_err(|_| ApiError::new(ErrorKind::Protocol, "no hello within 10 s"))?
        .map_err(|e| ApiError::new(ErrorKind::Protocol, e.to_string()))?;
    match parse_client_frame(&body) {
        Ok(ClientFrame::Hello { protocol, .. }) if protocol == PROTOCOL_VERSION => Ok(()),
        Ok(ClientFrame::Hello { protocol, client }) => Err(ApiError::new(
            ErrorKind::VersionMismatch,
            format!(
                "{client} speaks protocol {protocol}, berthd {SERVER_VERSION} speaks {PROTOCOL_VERSION}: use a berthctl and berth from the same release as berthd"
            ),
        )),
        Ok(ClientFrame::Request { .. }) => Err(ApiError::new(
            ErrorKind::Protocol,
            "the first frame must be a hello",
        )),
        Err((_, error)) => Err(error),
    }
}

async fn forward_events(mut events: broadcast::Receiver<Event>, out: mpsc::Sender<ServerFrame>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => Event::Lagged { missed },
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if out.send(ServerFrame::Event(event)).await.is_err() {
            return;
        }
    }
}
