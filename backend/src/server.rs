//! The socket, its connections, and what each request does.
//!
//! Each connection gets a reader loop (frames in), a writer task (frames out, fed by a bounded
//! channel) and, once subscribed, an event forwarder. Requests run on the blocking pool because
//! they touch the filesystem; their answers go back in whatever order they finish, tagged with
//! the request's id. A peer can break only its own connection: every frame error ends in an
//! error frame or a closed connection, never in a daemon that stops serving others.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use berth_api::container::ImageInfo;
use berth_api::error::{ApiError, ErrorKind};
use berth_api::event::Event;
use berth_api::fdpass::write_frame_with_fd;
use berth_api::frame::{FrameError, read_frame, write_frame};
use berth_api::host::{DaemonMode, HostInfo};
use berth_api::protocol::{ClientFrame, PROTOCOL_VERSION, ServerFrame, parse_client_frame};
use berth_api::request::{Reply, Request};
use berth_api::utilisation::{Resources, host_allocation};
use container_backend::image::{Image, ImageError, ImageStore};
use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::access::readable_file;
use crate::auth::{Peer, Policy};
use crate::config::DaemonConfig;
use crate::containers::Engine;
use crate::host::{Sampler, totals};
use crate::machines::{DEFAULT_STOP_TIMEOUT, Machines, default_vmm_binary, serial_log};
use crate::registry::Registry;

/// The version berthd reports in the handshake.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Frames queued for one connection before its event forwarder waits (and then lags).
const OUTGOING_QUEUE: usize = 256;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon already serves the socket.
    #[error("a berthd already answers at {0}")]
    AlreadyRunning(PathBuf),
    /// Another daemon holds the state directory.
    #[error("another berthd is using the state directory {0}")]
    StateDirBusy(PathBuf),
    /// Setting up the socket or the state directory failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The VM definitions could not be loaded at all.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
}

/// The daemon's shared state.
pub struct Daemon {
    config: DaemonConfig,
    policy: Policy,
    registry: Arc<Mutex<Registry>>,
    machines: Arc<Machines>,
    images: Mutex<ImageStore>,
    engine: Arc<Engine>,
    events: broadcast::Sender<Event>,
}

fn log(message: impl std::fmt::Display) {
    eprintln!("berthd: {message}");
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Requests are checked before they change anything, so the registry behind a poisoned lock
    // is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Start serving with `config` until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), ServeError> {
    let io = |what, path: &PathBuf| {
        let path = path.clone();
        move |source| ServeError::Io { what, path, source }
    };
    std::fs::create_dir_all(&config.state_dir).map_err(io("create", &config.state_dir))?;
    let lock_path = config.state_dir.join("berthd.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", &lock_path))?;
    let _state_lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| ServeError::StateDirBusy(config.state_dir.clone()))?;

    let listener = bind(&config)?;
    let registry = Registry::load(&config.state_dir.join("vms"))?;
    for problem in registry.problems() {
        log(format!(
            "skipping an unreadable definition, left in place: {problem}"
        ));
    }
    let policy = match config.mode {
        DaemonMode::System => Policy::System {
            group: config.group.clone(),
        },
        DaemonMode::User => Policy::User {
            uid: nix::unistd::Uid::effective().as_raw(),
        },
    };
    let images = ImageStore::open(&config.state_dir.join("images"))?;
    let (events, _) = broadcast::channel(1024);
    let registry = Arc::new(Mutex::new(registry));
    let machines = Machines::new(default_vmm_binary(), Arc::clone(&registry), events.clone());
    let engine = Engine::load(
        &config.state_dir,
        events.clone(),
        totals(&config.state_dir).0,
    );
    let daemon = Arc::new(Daemon {
        config,
        policy,
        registry,
        machines,
        images: Mutex::new(images),
        engine,
        events,
    });
    log(format!(
        "listening on {} ({} mode, state in {})",
        daemon.config.socket.display(),
        daemon.config.mode,
        daemon.config.state_dir.display()
    ));

    tokio::spawn(sample_host(Arc::clone(&daemon)));
    let slots = Arc::new(Semaphore::new(daemon.config.max_connections));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("install SIGTERM handler for", &daemon.config.socket))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let daemon = Arc::clone(&daemon);
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            tokio::spawn(async move {
                                serve_connection(daemon, stream).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            tokio::spawn(refuse(stream, "berthd is serving too many connections; try again later".into()));
                        }
                    }
                }
                // EMFILE and friends: wait a moment rather than spin, and keep serving.
                Err(e) => {
                    log(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    log("shutting down");
    // The VMs end with their daemon (their consoles and control channels are here): end them
    // now rather than leave each to notice its closed channel.
    let machines = Arc::clone(&daemon.machines);
    let _ = tokio::task::spawn_blocking(move || machines.kill_all()).await;
    let _ = std::fs::remove_file(&daemon.config.socket);
    Ok(())
}

/// Bind the socket: refuse if a daemon answers there, replace a stale socket file otherwise.
fn bind(config: &DaemonConfig) -> Result<UnixListener, ServeError> {
    let socket = &config.socket;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::Io {
            what: "create",
            path: dir.to_owned(),
            source,
        })?;
        if config.private_socket_dir {
            private_dir(dir)?;
        }
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(ServeError::AlreadyRunning(socket.clone()));
        }
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket).map_err(|source| ServeError::Io {
        what: "listen on",
        path: socket.clone(),
        source,
    })?;
    // Anyone may connect so that anyone refused is told why; admission is by SO_PEERCRED.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).map_err(|source| {
        ServeError::Io {
            what: "chmod",
            path: socket.clone(),
            source,
        }
    })?;
    Ok(listener)
}

/// A user daemon's socket directory must be the user's own and closed to others, or someone
/// else could have put it there to answer in berthd's place.
fn private_dir(dir: &std::path::Path) -> Result<(), ServeError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|source| ServeError::Io {
        what: "inspect",
        path: dir.to_owned(),
        source,
    })?;
    if meta.uid() != nix::unistd::Uid::effective().as_raw() {
        return Err(ServeError::Io {
            what: "use",
            path: dir.to_owned(),
            source: std::io::Error::other(format!(
                "the directory belongs to uid {}, not to this user",
                meta.uid()
            )),
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        ServeError::Io {
            what: "chmod",
            path: dir.to_owned(),
            source,
        }
    })
}

async fn sample_host(daemon: Arc<Daemon>) {
    let mut sampler = Sampler::new();
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tick.tick().await;
        if daemon.events.receiver_count() > 0 {
            let sample = sampler.sample(&daemon.config.state_dir);
            let _ = daemon.events.send(Event::HostSample(sample));
        }
    }
}

async fn refuse(stream: UnixStream, message: String) {
    let (_, mut writer) = stream.into_split();
    let _ = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        write_frame(&mut writer, &ServerFrame::Refused { message }),
    )
    .await;
}

async fn serve_connection(daemon: Arc<Daemon>, stream: UnixStream) {
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
    // Frames that carry an fd (`vm display`'s memfd) go through sendmsg; a channel of their own
    // keeps every other frame's path as it was. Answers go in any order anyway.
    let (fd_out, mut fd_outgoing) = mpsc::channel::<(ServerFrame, OwnedFd)>(OUTGOING_QUEUE);
    let writer_task = tokio::spawn(async move {
        loop {
            let written = tokio::select! {
                Some(frame) = outgoing.recv() => write_frame(&mut writer, &frame).await,
                Some((frame, fd)) = fd_outgoing.recv() => {
                    // The fd is closed here once sent: the client has its own copy.
                    write_frame_with_fd(&mut writer, &frame, &fd).await
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
                request:
                    Request::Logs {
                        container,
                        follow: true,
                    },
            }) => {
                tokio::spawn(follow_logs(Arc::clone(&daemon), id, container, out.clone()));
            }
            Ok(ClientFrame::Request {
                id,
                request: Request::VmDisplay { name },
            }) => {
                let (daemon, out, fd_out) = (Arc::clone(&daemon), out.clone(), fd_out.clone());
                tokio::spawn(async move {
                    let answer =
                        tokio::task::spawn_blocking(move || daemon.machines.display(&name))
                            .await
                            .unwrap_or_else(|e| {
                                Err(ApiError::internal(format!(
                                    "the request failed inside berthd: {e}"
                                )))
                            });
                    match answer {
                        Ok((info, fd)) => {
                            let frame = ServerFrame::Response {
                                id,
                                result: Ok(Reply::Display(info)),
                            };
                            let _ = fd_out.send((frame, fd)).await;
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

/// `logs --follow`: push each line of a container's log as a `LogLine` event on this
/// connection, from the start, until the container has stopped and everything was sent; then
/// answer the request.
async fn follow_logs(
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

impl Daemon {
    fn host_totals(&self) -> (Resources, u64) {
        totals(&self.config.state_dir)
    }

    fn publish(&self, event: Event) {
        // No subscribers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Carry out one request for `peer`.
    pub fn handle(&self, peer: &Peer, request: Request) -> Result<Reply, ApiError> {
        let (host, disk_free) = self.host_totals();
        match request {
            Request::Host => {
                let registry = lock(&self.registry);
                let given = registry.allocated();
                let allocated = given.iter().fold(Resources::default(), |sum, r| Resources {
                    cpus: sum.cpus + r.cpus,
                    memory: sum.memory + r.memory,
                    disk: sum.disk + r.disk,
                });
                Ok(Reply::Host(HostInfo {
                    total: host,
                    disk_free,
                    allocated,
                    allocation: host_allocation(&given, &host),
                    vm_count: given.len() as u32,
                    state_dir: self.config.state_dir.clone(),
                    mode: self.config.mode,
                    server_version: SERVER_VERSION.into(),
                }))
            }
            Request::Subscribe => Ok(Reply::Done),
            Request::VmCreate(spec) => {
                let info = lock(&self.registry).create(spec, peer, &host)?;
                log(format!(
                    "uid {} created VM `{}`",
                    peer.uid, info.config.name
                ));
                self.publish(Event::VmDefined(info.clone()));
                Ok(Reply::Vm(info))
            }
            Request::VmList => {
                let registry = lock(&self.registry);
                Ok(Reply::VmList(berth_api::vm::VmListing {
                    vms: registry.list(&host),
                    problems: registry.problems().to_vec(),
                }))
            }
            Request::VmShow { name } => Ok(Reply::Vm(lock(&self.registry).show(&name, &host)?)),
            Request::VmEdit { name, edit } => {
                let info = lock(&self.registry).edit(&name, edit, peer, &host)?;
                self.publish(Event::VmDefined(info.clone()));
                Ok(Reply::Vm(info))
            }
            Request::VmDelete { name } => {
                lock(&self.registry).delete(&name)?;
                log(format!("uid {} deleted VM `{name}`", peer.uid));
                self.publish(Event::VmRemoved { name });
                Ok(Reply::Done)
            }
            Request::VmStart { name } => {
                self.machines.start(&name)?;
                log(format!("uid {} started VM `{name}`", peer.uid));
                Ok(Reply::Vm(lock(&self.registry).show(&name, &host)?))
            }
            Request::VmStop {
                name,
                force,
                timeout_secs,
            } => {
                let timeout = timeout_secs
                    .map_or(DEFAULT_STOP_TIMEOUT, |s| Duration::from_secs(u64::from(s)));
                self.machines.stop(&name, force, timeout)?;
                log(format!(
                    "uid {} stopped VM `{name}`{}",
                    peer.uid,
                    if force { " (forced)" } else { "" }
                ));
                Ok(Reply::Vm(lock(&self.registry).show(&name, &host)?))
            }
            Request::VmPause { name } => {
                self.machines.pause(&name, true)?;
                Ok(Reply::Vm(lock(&self.registry).show(&name, &host)?))
            }
            Request::VmResume { name } => {
                self.machines.pause(&name, false)?;
                Ok(Reply::Vm(lock(&self.registry).show(&name, &host)?))
            }
            Request::VmConsoleInput { name, data } => {
                self.machines.console_input(&name, &data)?;
                Ok(Reply::Done)
            }
            Request::VmType { name, text } => {
                self.machines.type_text(&name, &text)?;
                Ok(Reply::Done)
            }
            Request::VmKey { name, keys } => {
                self.machines.press_keys(&name, &keys)?;
                Ok(Reply::Done)
            }
            Request::VmKeyEvent {
                name,
                code,
                pressed,
            } => {
                self.machines.key_event(&name, code, pressed)?;
                Ok(Reply::Done)
            }
            Request::VmPointer {
                name,
                x,
                y,
                buttons,
            } => {
                self.machines.pointer(&name, x, y, buttons)?;
                Ok(Reply::Done)
            }
            Request::VmWheel { name, clicks } => {
                self.machines.wheel(&name, clicks)?;
                Ok(Reply::Done)
            }
            Request::VmLog { name, lines } => {
                let (_, dir, _) = lock(&self.registry).definition(&name)?;
                Ok(Reply::Lines(serial_log(&dir, lines)?))
            }
            Request::IsoInspect { path } => crate::iso::inspect(&path, peer).map(Reply::Iso),
            Request::Images => {
                let images = lock(&self.images).list().map_err(image_error)?;
                Ok(Reply::Images(images.iter().map(image_info).collect()))
            }
            Request::Rmi { image } => {
                let images = lock(&self.images);
                let digest = images.resolve(&image).map_err(image_error)?.manifest_digest;
                if let Some(user) = self.engine.image_in_use(&digest) {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        format!(
                            "image `{image}` is used by container `{user}`; remove the container first"
                        ),
                    ));
                }
                images.remove(&image).map_err(image_error)?;
                self.engine.forget_image(&digest);
                log(format!("uid {} removed image `{image}`", peer.uid));
                Ok(Reply::Done)
            }
            Request::Import { path, name } => {
                let path =
                    readable_file(&path, peer, "image archive").map_err(ApiError::invalid)?;
                let images = lock(&self.images)
                    .import(&path, &name)
                    .map_err(image_error)?;
                Ok(Reply::Images(images.iter().map(image_info).collect()))
            }
            Request::Build(spec) => {
                let context = crate::access::readable_dir(&spec.context, peer, "build context")
                    .map_err(ApiError::invalid)?;
                let dockerfile = spec
                    .dockerfile
                    .as_ref()
                    .map(|d| readable_file(d, peer, "Dockerfile"))
                    .transpose()
                    .map_err(ApiError::invalid)?;
                let images = lock(&self.images);
                let layout = container_backend::runtime::Layout::detect().map_err(|e| {
                    ApiError::new(
                        ErrorKind::Unsupported,
                        format!("builds cannot run here: {e}"),
                    )
                })?;
                let work = self.config.state_dir.join("build");
                std::fs::create_dir_all(&work).map_err(|e| ApiError::internal(e.to_string()))?;
                let builder = container_backend::build::builder::Builder {
                    store: &images,
                    layout: &layout,
                    work: &work,
                };
                let options = container_backend::build::builder::BuildOptions {
                    context,
                    dockerfile,
                    tag: spec.tag.clone(),
                    build_args: spec.build_args.clone(),
                };
                let image = builder
                    .build(&options, &mut |step| {
                        self.publish(Event::BuildProgress(berth_api::container::BuildProgress {
                            tag: spec.tag.clone(),
                            step: step.number,
                            steps: step.of,
                            instruction: step.text,
                            cached: step.cached,
                        }))
                    })
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                log(format!("uid {} built image {}", peer.uid, image.reference));
                Ok(Reply::Images(vec![image_info(&image)]))
            }
            Request::Run(spec) => {
                let images = lock(&self.images);
                let info = self.engine.run(spec, &images)?;
                log(format!(
                    "uid {} started container {} ({})",
                    peer.uid, info.name, info.id
                ));
                Ok(Reply::Container(info))
            }
            Request::Ps { all } => Ok(Reply::Containers(self.engine.list(all))),
            Request::Logs { container, .. } => Ok(Reply::Lines(self.engine.logs(&container)?)),
            Request::ContainerStart { container } => {
                Ok(Reply::Container(self.engine.start(&container)?))
            }
            Request::ContainerStop {
                container,
                timeout_secs,
            } => {
                let grace = timeout_secs.map(|s| Duration::from_secs(u64::from(s)));
                Ok(Reply::Container(self.engine.stop(&container, grace)?))
            }
            Request::ContainerRestart { container } => {
                Ok(Reply::Container(self.engine.restart(&container)?))
            }
            Request::ContainerRm { container, force } => {
                self.engine.remove(&container, force)?;
                Ok(Reply::Done)
            }
            Request::Stats { container } => {
                Ok(Reply::Stats(self.engine.stats(container.as_deref())?))
            }
            other => Err(unsupported(&other)),
        }
    }
}

fn image_info(image: &Image) -> ImageInfo {
    ImageInfo {
        reference: image.reference.to_string(),
        id: image.id().to_owned(),
        size: image.size(),
        layers: image.manifest.layers.len() as u32,
        created: image.config.created.clone(),
    }
}

/// An image store error as the API reports it.
pub(crate) fn image_error(e: ImageError) -> ApiError {
    let kind = match e {
        ImageError::NotFound(_) => ErrorKind::NotFound,
        ImageError::BadReference(_) | ImageError::BadImport { .. } => ErrorKind::InvalidRequest,
        ImageError::Corrupt(_) | ImageError::Apply(_) | ImageError::Io { .. } => {
            ErrorKind::Internal
        }
    };
    ApiError::new(kind, e.to_string())
}

/// The answer to requests whose machinery this build of berthd does not have yet.
fn unsupported(request: &Request) -> ApiError {
    let what = match request {
        Request::VmScreenshot { .. } => {
            "berthd does not make PNGs: `vm display` hands out the framebuffer (berthctl vm screenshot uses it)"
        }
        _ => "this request",
    };
    ApiError::new(
        ErrorKind::Unsupported,
        format!(
            "`{}` is not available in berthd {SERVER_VERSION}: {what}",
            request.title()
        ),
    )
}
