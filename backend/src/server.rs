//! The daemon's life: its state directory and socket, the services it owns (VM registry and
//! machines, images, the container engine, host samples), the accept loop and the shutdown.
//! Each connection is served by [`crate::connection`]; each request by [`crate::handler`].

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use berth_api::event::Event;
use berth_api::host::{DaemonMode, IdMap};
use berth_api::network::ContainerNetwork;
use container_backend::image::ImageError;
use container_backend::runtime::Layout;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, broadcast};

use crate::auth::Policy;
use crate::config::DaemonConfig;
use crate::connection::{refuse, serve_connection};
use crate::containers::Engine;
use crate::host::{Sampler, totals};
use crate::images::Images;
use crate::machines::{Machines, default_vmm_binary};
use crate::registry::Registry;
use crate::volumes::Volumes;

/// The version berthd reports in the handshake.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

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
    pub(crate) config: DaemonConfig,
    pub(crate) policy: Policy,
    pub(crate) registry: Arc<Mutex<Registry>>,
    pub(crate) machines: Arc<Machines>,
    pub(crate) images: Images,
    pub(crate) volumes: Volumes,
    pub(crate) engine: Arc<Engine>,
    /// The Berth network, for the addresses its VMs have.
    pub(crate) bridge: Arc<crate::bridge::Bridge>,
    pub(crate) events: broadcast::Sender<Event>,
}

pub(crate) fn log(message: impl std::fmt::Display) {
    eprintln!("berthd: {message}");
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Requests are checked before they change anything, so the registry behind a poisoned lock
    // is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Start serving with `config` until SIGTERM or SIGINT, on `inherited` when a launcher handed
/// over the listening socket (socket activation), else on a socket of its own at
/// `config.socket`.
pub async fn run(
    config: DaemonConfig,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<(), ServeError> {
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

    // A handed-over socket belongs to its launcher (systemd keeps listening on it while
    // berthd is stopped): berthd neither replaces nor removes its file.
    let owns_socket = inherited.is_none();
    let listener = match inherited {
        Some(listener) => adopt(listener, &config.socket)?,
        None => bind(&config)?,
    };
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
    let images = Images::open(&config.state_dir)?;
    let daemon_state_dir = config.state_dir.clone();
    // A daemon run as root limits containers with the host's cgroups; a rootless one with the
    // subtree delegated to it, if any (else it runs them unlimited and says so).
    let layout = match config.ids {
        IdMap::Host => Layout::detect().map_err(|e| e.to_string()),
        IdMap::Subordinate { .. } | IdMap::Single { .. } => Ok(Layout::delegated()),
    };
    if let Ok(Layout::Unlimited { why }) = &layout {
        log(format!("containers run without limits: {why}"));
    }
    let (events, _) = broadcast::channel(1024);
    let registry = Arc::new(Mutex::new(registry));
    let bridge = crate::bridge::Bridge::new(config.state_dir.join("network"));
    let machines = Machines::new(
        default_vmm_binary(),
        Arc::clone(&registry),
        events.clone(),
        config.ids == IdMap::Host,
        Arc::clone(&bridge),
    );
    let engine = Engine::load(
        &config.state_dir,
        layout,
        events.clone(),
        totals(&config.state_dir).0,
        Arc::clone(&bridge),
        ContainerNetwork::default_for(config.mode),
    );
    let daemon = Arc::new(Daemon {
        config,
        policy,
        registry,
        machines,
        images,
        volumes: Volumes::open(&daemon_state_dir),
        engine,
        bridge,
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
    // The Berth network, lingering after its last member, goes with an idle daemon.
    let bridge = Arc::clone(&daemon.bridge);
    let _ = tokio::task::spawn_blocking(move || bridge.shutdown()).await;
    if owns_socket {
        let _ = std::fs::remove_file(&daemon.config.socket);
    }
    Ok(())
}

/// Serve on a socket a launcher is listening on.
fn adopt(
    listener: std::os::unix::net::UnixListener,
    socket: &std::path::Path,
) -> Result<UnixListener, ServeError> {
    let io = |source| ServeError::Io {
        what: "serve the handed-over socket",
        path: socket.to_owned(),
        source,
    };
    listener.set_nonblocking(true).map_err(io)?;
    UnixListener::from_std(listener).map_err(io)
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

impl Daemon {
    /// Tells every subscriber; nobody watching is fine.
    pub(crate) fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }
}
