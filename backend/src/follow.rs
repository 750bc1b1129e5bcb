//! `logs --follow`: a container's output streamed to one connection as it is written.

use std::sync::Arc;
use std::time::Duration;

use berth_api::event::Event;
use berth_api::protocol::ServerFrame;
use berth_api::request::Reply;
use tokio::sync::{broadcast, mpsc};

use crate::server::Daemon;

/// `logs --follow`: push each line of a container's log as a `LogLine` event on this
/// connection, from the start, until the container has stopped and everything was sent; then
/// answer the request.
pub async fn follow_logs(
    daemon: Arc<Daemon>,
    id: u64,
    container: String,
    out: mpsc::Sender<ServerFrame>,
) {
    let found = daemon.engine.log_path(&container);
    let (container_id, path) = match found {
        Ok(found) => found,
        Err(error) => {
            let _ = out
                .send(ServerFrame::Response {
                    id,
                    result: Err(error),
                })
                .await;
            return;
        }
    };
    // Subscribe before the first check so the end of the container cannot slip between.
    let mut ended = daemon.events.subscribe();
    let mut offset = 0u64;
    let mut partial = Vec::new();
    loop {
        // Check before reading: output written before the container ended is then read below.
        let running = daemon.engine.is_running(&container_id);
        if let Ok(mut file) = tokio::fs::File::open(&path).await {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let before = partial.len();
            if file.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                let _ = file.read_to_end(&mut partial).await;
            }
            offset += (partial.len() - before) as u64;
        }
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&partial[..end]).into_owned();
            partial.drain(..=end);
            let event = Event::LogLine {
                source: container_id.clone(),
                line,
            };
            if out.send(ServerFrame::Event(event)).await.is_err() {
                return;
            }
        }
        if !running {
            break;
        }
        // New output is polled for; the end of the container is not waited for by polling,
        // so a short-lived container is answered as soon as it ends.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = async {
                loop {
                    match ended.recv().await {
                        Ok(Event::ContainerState { id, state }) if id == container_id && !state.is_running() => break,
                        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                        _ => {}
                    }
                }
            } => {}
        }
    }
    if !partial.is_empty() {
        let line = String::from_utf8_lossy(&partial).into_owned();
        let _ = out
            .send(ServerFrame::Event(Event::LogLine {
                source: container_id,
                line,
            }))
            .await;
    }
    let _ = out
        .send(ServerFrame::Response {
            id,
            result: Ok(Reply::Done),
        })
        .await;
}
