//! Containers in berthd: their records (`containers/<id>/container.ron`), the image root
//! filesystems they run on (unpacked once per image under `rootfs/`), one waiter thread per
//! running container, and the requests `run`, `ps`, `logs`, `start`, `stop`, `restart`, `rm`
//! and `stats`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_api::container::{
    AttachInfo, ContainerInfo, ContainerLimits, ContainerState, ContainerStats, ExecInfo, ExecSpec,
    RestartPolicy, RunSpec,
};
use berth_api::error::{ApiError, ErrorKind};
use berth_api::event::Event;
use berth_api::network::{ContainerNetwork, PortForward, Protocol};
use berth_api::utilisation::{Resources, Shares, container_allocation, ratio};
use berth_api::validate;
use berth_api::volume::{VolumeMount, VolumeSource};
use container_backend::image::{Image, ImageStore};

use crate::attach::{Kept, KeptTerminal};
use crate::bridge::Bridge;
use container_backend::runtime::{self, Connection, ContainerConfig, HostsEntry, Layout, Limits};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::store;

/// File name of a container's record inside its directory.
const RECORD: &str = "container.ron";
/// How long `stop` waits after the stop signal before SIGKILL, unless told otherwise.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// The smallest memory limit a container can start under.
const MIN_MEMORY: u64 = 4 << 20;

/// What berthd keeps about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    name: String,
    image: String,
    /// The image's manifest digest: its root filesystem under `rootfs/`.
    image_digest: String,
    command: Vec<String>,
    env: Vec<String>,
    cwd: String,
    user: String,
    #[serde(default)]
    stop_signal: Option<String>,
    limits: ContainerLimits,
    created: u64,
    state: ContainerState,
    /// Records of daemons before networking had none: loopback only.
    #[serde(default = "no_network")]
    network: ContainerNetwork,
    #[serde(default)]
    ports: Vec<PortForward>,
    /// Its address on the bridge network, kept for its life.
    #[serde(default)]
    address: Option<Ipv4Addr>,
    /// `--hostname`; the short id when `None`.
    #[serde(default)]
    hostname: Option<String>,
    /// `--rm`: removed once it has ended.
    #[serde(default)]
    remove: bool,
    /// `-v` as asked, and what it resolved to when the container was made.
    #[serde(default)]
    volumes: Vec<VolumeMount>,
    #[serde(default)]
    mounts: Vec<MountRecord>,
    #[serde(default)]
    restart: RestartPolicy,
    #[serde(default)]
    restart_count: u32,
    /// `stop` was asked for: no policy restarts it until it is started again.
    #[serde(default)]
    stopped_by_user: bool,
}

/// A mount of a container, resolved: the host path (a named volume's directory, or the peer's
/// own path, checked when the container was made) and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    pub source: PathBuf,
    /// An absolute path in the container.
    pub target: String,
    pub read_only: bool,
    /// A named volume: filled with what the image has at the target while it is empty, as
    /// Docker fills one (a host path never is).
    #[serde(default)]
    pub fill_from_image: bool,
    /// An anonymous volume: removed with the container by `run --rm` and `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

impl MountRecord {
    fn to_runtime(&self) -> runtime::BindMount {
        runtime::BindMount {
            source: self.source.clone(),
            target: self.target.trim_start_matches('/').to_owned(),
            read_only: self.read_only,
            optional: false,
        }
    }
}

/// The name of a container `run` names none: the image's name and the id's first 4 digits,
/// more where `taken` says another container has that name (stopped ones keep theirs: 4 hex
/// digits met a stopped container's name after a few hundred runs).
fn generated_name(image: &str, id: &str, taken: impl Fn(&str) -> bool) -> String {
    let name = |digits: usize| {
        format!(
            "{}-{}",
            image.replace('/', "-"),
            &id[..digits.min(id.len())]
        )
    };
    [4, 6, 8, 12]
        .into_iter()
        .map(name)
        .find(|n| !taken(n))
        .unwrap_or_else(|| name(id.len()))
}

/// A container's line in the /etc/hosts of the others on the bridge.
fn hosts_entry(record: &Record, address: Ipv4Addr) -> HostsEntry {
    let mut names = vec![record.name.clone(), record.id.chars().take(12).collect()];
    let hostname = runtime::hostname_of(&record.id, record.hostname.as_deref());
    if !names.contains(&hostname) {
        names.push(hostname);
    }
    HostsEntry {
        address: IpAddr::V4(address),
        names,
    }
}

fn no_network() -> ContainerNetwork {
    ContainerNetwork::None
}

/// An exec'd process: its exit code once its waiter has seen it end.
#[derive(Default)]
struct ExecWaiter {
    code: Mutex<Option<i32>>,
    changed: Condvar,
}

/// A running container and the flag its waiter sets when it ends.
struct Running {
    container: runtime::Container,
    /// When it started: a container that ran a while is restarted without delay.
    started: Instant,
    ended: Mutex<bool>,
    changed: Condvar,
}

/// The container half of the daemon.
pub struct Engine {
    root: PathBuf,
    rootfs_cache: PathBuf,
    layout: Result<Layout, String>,
    records: Mutex<BTreeMap<String, Record>>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    events: broadcast::Sender<Event>,
    host: Resources,
    /// Processes `exec` started, by the id their client waits on.
    execs: Mutex<HashMap<u64, Arc<ExecWaiter>>>,
    next_exec: AtomicU64,
    /// The bridge network, shared with the VMs.
    bridge: Arc<Bridge>,
    /// The network of a container whose `run` names none.
    default_network: ContainerNetwork,
    /// Held while the bridge's /etc/hosts files are rewritten, so that two rewrites (one
    /// container starting, another ending) never leave the older list last.
    hosts_rewrite: Mutex<()>,
    /// The terminals and stdin pipes of running containers started with `-d` and `-t`/`-i`.
    kept: Mutex<HashMap<String, Kept>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new container id: 12 hex digits from the kernel's random source.
/// Removes the anonymous volumes `record` mounts (a volume's directory is the parent of its
/// `data`).
fn remove_anonymous_volumes(record: &Record) {
    for mount in record.mounts.iter().filter(|m| m.anonymous) {
        if let Some(volume) = mount.source.parent()
            && let Err(e) = fs::remove_dir_all(volume)
        {
            eprintln!(
                "berthd: cannot remove the anonymous volume {}: {e}",
                volume.display()
            );
        }
    }
}

fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 6];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| internal(format!("no random bytes for an id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn signal_named(name: &str) -> Signal {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = bare.parse::<i32>() {
        return Signal::try_from(n).unwrap_or(Signal::SIGTERM);
    }
    format!("SIG{bare}").parse().unwrap_or(Signal::SIGTERM)
}

/// Bytes of disk the files under `dir` occupy (allocated blocks, as `du`).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.path().symlink_metadata() {
                total += meta.blocks() * 512;
                if meta.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }
    total
}

impl Engine {
    /// Load the records under `<state>/containers`. Containers that were running when the
    /// previous daemon ended are adopted if their process still runs, or marked stopped with
    /// an unknown exit code: none is forgotten.
    pub fn load(
        state_dir: &Path,
        layout: Result<Layout, String>,
        events: broadcast::Sender<Event>,
        host: Resources,
        bridge: Arc<Bridge>,
        default_network: ContainerNetwork,
    ) -> Arc<Engine> {
        let root = state_dir.join("containers");
        let rootfs_cache = state_dir.join("rootfs");
        let _ = fs::create_dir_all(&root);
        let _ = fs::create_dir_all(&rootfs_cache);
        let mut records = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(&root) {
            for entry in entries.flatten() {
                store::remove_stale_temps(&entry.path());
                match store::read_ron::<Record>(&entry.path().join(RECORD)) {
                    Ok(record) => {
                        records.insert(record.id.clone(), record);
                    }
                    Err(e) => eprintln!(
                        "berthd: skipping an unreadable container record, left in place: {e}"
                    ),
                }
            }
        }
        let engine = Arc::new(Engine {
            root,
            rootfs_cache,
            layout,
            records: Mutex::new(records),
            running: Mutex::new(HashMap::new()),
            events,
            host,
            execs: Mutex::new(HashMap::new()),
            next_exec: AtomicU64::new(1),
            bridge,
            default_network,
            hosts_rewrite: Mutex::new(()),
            kept: Mutex::new(HashMap::new()),
        });
        // A VM that joins or leaves the bridge is named in the containers' /etc/hosts.
        let weak = Arc::downgrade(&engine);
        engine.bridge.on_vms_changed(Box::new(move || {
            if let Some(engine) = weak.upgrade() {
                engine.refresh_bridge_hosts();
            }
        }));
        engine.readopt();
        engine
    }

    fn readopt(self: &Arc<Self>) {
        let Ok(layout) = &self.layout else { return };
        let was_running: Vec<(Record, i32)> = lock(&self.records)
            .values()
            .filter_map(|r| match r.state {
                ContainerState::Running { pid } => Some((r.clone(), pid)),
                _ => None,
            })
            .collect();
        let mut gone = Vec::new();
        for (record, pid) in was_running {
            let id = record.id.clone();
            // Its ports on the bridge are carried again (its veth lived on in its namespace).
            let mut joined = false;
            let published = match (record.network, record.address) {
                (ContainerNetwork::Bridge, Some(address))
                    if Path::new(&format!("/proc/{pid}")).exists() =>
                {
                    match self.bridge.join() {
                        Ok(network) => {
                            joined = true;
                            runtime::Published::open(&network, address, &record.ports)
                                .inspect_err(|e| {
                                    eprintln!(
                                        "berthd: the ports of container {id} are not published: {e}"
                                    )
                                })
                                .ok()
                        }
                        Err(e) => {
                            eprintln!("berthd: container {id} is off its network: {}", e.message);
                            None
                        }
                    }
                }
                _ => None,
            };
            let container = runtime::Container::adopt(
                &id,
                record.hostname.as_deref(),
                pid,
                layout,
                &self.dir(&id),
                published,
            );
            if container.is_running() {
                let running = Arc::new(Running {
                    container,
                    started: Instant::now(),
                    ended: Mutex::new(false),
                    changed: Condvar::new(),
                });
                lock(&self.running).insert(id.clone(), Arc::clone(&running));
                let engine = Arc::clone(self);
                std::thread::spawn(move || engine.watch_adopted(&id, &running));
            } else {
                container.reap_leftovers();
                if joined {
                    self.bridge.leave();
                }
                self.set_state(
                    &id,
                    ContainerState::Stopped {
                        exit_code: None,
                        oom_killed: false,
                    },
                );
                gone.push(id);
            }
        }
        // Restart policies at the daemon's start: `always` every container not running,
        // `unless-stopped` those not stopped by the user, `on-failure` those that were running
        // when the daemon went away (how they ended is unknown).
        let to_start: Vec<String> = lock(&self.records)
            .values()
            .filter(|r| !r.state.is_running())
            .filter(|r| match r.restart {
                RestartPolicy::No => false,
                RestartPolicy::Always => true,
                RestartPolicy::UnlessStopped => !r.stopped_by_user,
                RestartPolicy::OnFailure { .. } => gone.contains(&r.id) && !r.stopped_by_user,
            })
            .map(|r| r.id.clone())
            .collect();
        for id in to_start {
            if let Err(e) = self.start(&id) {
                eprintln!(
                    "berthd: cannot restart container {id} by its policy: {}",
                    e.message
                );
            }
        }
    }

    /// Whether containers can run here and with which cgroups.
    pub fn layout(&self) -> Result<&Layout, ApiError> {
        self.layout.as_ref().map_err(|e| {
            ApiError::new(
                ErrorKind::Unsupported,
                format!("containers cannot run here: {e}"),
            )
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The /etc/hosts entries of the running containers on the bridge, but `except`: each
    /// one's address and names (its name, its short id and its hostname), as Docker's DNS
    /// answers on a network of its own; and the VMs on it, by name.
    fn bridge_hosts(&self, except: &str) -> Vec<HostsEntry> {
        let mut entries: Vec<HostsEntry> = lock(&self.records)
            .values()
            .filter(|r| r.id != except && r.state.is_running())
            .filter_map(|r| {
                let address = r
                    .address
                    .filter(|_| r.network == ContainerNetwork::Bridge)?;
                Some(hosts_entry(r, address))
            })
            .collect();
        // The VMs on it too, by name.
        entries.extend(
            self.bridge
                .vms()
                .into_iter()
                .map(|(name, address)| HostsEntry {
                    address: IpAddr::V4(address),
                    names: vec![name],
                }),
        );
        entries
    }

    /// Writes the /etc/hosts of every running container on the bridge again, after one came
    /// or went.
    fn refresh_bridge_hosts(&self) {
        let _rewriting = lock(&self.hosts_rewrite);
        let running: Vec<Record> = lock(&self.records)
            .values()
            .filter(|r| r.network == ContainerNetwork::Bridge && r.state.is_running())
            .cloned()
            .collect();
        let entries = self.bridge_hosts("");
        let gateway = runtime::network::host_gateway();
        for record in running {
            let hostname = runtime::hostname_of(&record.id, record.hostname.as_deref());
            let text = runtime::network::hosts_text(&hostname, &entries, gateway);
            if let Err(e) = runtime::network::rewrite_hosts(&self.dir(&record.id), &text) {
                eprintln!(
                    "berthd: cannot tell container {} its neighbours: {e}",
                    record.name
                );
            }
        }
    }

    fn persist(&self, record: &Record) -> Result<(), ApiError> {
        store::write_ron(&self.dir(&record.id).join(RECORD), record).map_err(internal)
    }

    fn info(&self, r: &Record) -> ContainerInfo {
        ContainerInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            command: r.command.clone(),
            state: r.state.clone(),
            limits: r.limits,
            created: r.created,
            allocation: self.allocation(r),
            network: r.network,
            address: r.address,
            ports: r.ports.clone(),
            volumes: r.volumes.clone(),
            restart: r.restart,
            restart_count: r.restart_count,
        }
    }

    /// The names of the containers whose definitions mount named volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        lock(&self.records)
            .values()
            .filter(|r| {
                r.volumes
                    .iter()
                    .any(|v| v.source == VolumeSource::Named(name.to_owned()))
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// U_ct, M_ct, P_ct over the host; an unlimited resource is all of it.
    fn allocation(&self, r: &Record) -> Shares {
        let given = Resources {
            cpus: r.limits.cpus.unwrap_or(self.host.cpus),
            memory: r.limits.memory.unwrap_or(self.host.memory),
            disk: disk_usage(&self.dir(&r.id).join("upper")),
        };
        container_allocation(&given, &self.host)
    }

    fn set_state(&self, id: &str, state: ContainerState) {
        let mut records = lock(&self.records);
        if let Some(record) = records.get_mut(id) {
            record.state = state.clone();
            if let Err(e) = self.persist(record) {
                eprintln!("berthd: cannot save container {id}: {e}");
            }
        }
        drop(records);
        let _ = self.events.send(Event::ContainerState {
            id: id.to_owned(),
            state,
        });
    }

    /// Find a container by id, id prefix or name.
    fn find(&self, key: &str) -> Result<Record, ApiError> {
        let records = lock(&self.records);
        if let Some(r) = records
            .get(key)
            .or_else(|| records.values().find(|r| r.name == key))
        {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = records.values().filter(|r| r.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(ApiError::not_found(format!(
                "there is no container `{key}` (see `berthctl ps -a`)"
            ))),
            _ => Err(ApiError::invalid(format!(
                "`{key}` matches {} containers; give more of the id",
                matches.len()
            ))),
        }
    }

    /// The image's root filesystem, unpacked once and shared read-only by its containers.
    fn rootfs_of(&self, images: &ImageStore, image: &Image) -> Result<PathBuf, ApiError> {
        let hex = image.manifest_digest.trim_start_matches("sha256:");
        let dir = self.rootfs_cache.join(hex);
        if dir.exists() {
            return Ok(dir);
        }
        let temp = self
            .rootfs_cache
            .join(format!(".tmp-{hex}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&temp);
        let unpacked = images.unpack(image, &temp).map_err(internal);
        if let Err(e) = unpacked {
            let _ = fs::remove_dir_all(&temp);
            return Err(e);
        }
        fs::rename(&temp, &dir).map_err(internal)?;
        Ok(dir)
    }

    /// Whether any container runs on the image with this manifest digest.
    pub fn image_in_use(&self, manifest_digest: &str) -> Option<String> {
        lock(&self.records)
            .values()
            .find(|r| r.image_digest == manifest_digest)
            .map(|r| r.name.clone())
    }

    /// Each container: whether it runs, and the bytes of its own layer.
    pub fn disk_usage(&self) -> Vec<(bool, u64)> {
        let records: Vec<Record> = lock(&self.records).values().cloned().collect();
        records
            .iter()
            .map(|r| {
                (
                    r.state.is_running(),
                    disk_usage(&self.dir(&r.id).join("upper")),
                )
            })
            .collect()
    }

    /// The unpacked root of `record`'s image, which its container runs on.
    fn image_root(&self, record: &Record) -> Result<PathBuf, ApiError> {
        let lower = self
            .rootfs_cache
            .join(record.image_digest.trim_start_matches("sha256:"));
        if !lower.exists() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("the image of container `{}` is gone", record.name),
            ));
        }
        Ok(lower)
    }

    /// A container's filesystem as it is made: its image's manifest digest and unpacked root,
    /// and its own layer (overlayfs' upper directory).
    pub fn layers_of(&self, key: &str) -> Result<(String, PathBuf, PathBuf), ApiError> {
        let record = self.find(key)?;
        let lower = self.image_root(&record)?;
        Ok((
            record.image_digest,
            lower,
            self.dir(&record.id).join("upper"),
        ))
    }

    /// `export`: the container's filesystem as one tar (its image's root with its own layer
    /// over it), written by a thread of its own into a pipe whose read end is the answer.
    pub fn export(&self, key: &str) -> Result<OwnedFd, ApiError> {
        let (_, lower, upper) = self.layers_of(key)?;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| internal(format!("cannot make a pipe: {e}")))?;
        let key = key.to_owned();
        std::thread::spawn(move || {
            let out = std::io::BufWriter::with_capacity(1 << 20, fs::File::from(write));
            if let Err(e) = container_backend::image::layer::tar_merged(&lower, &upper, out) {
                eprintln!("berthd: export of {key} stopped: {e}");
            }
        });
        Ok(read)
    }

    /// `system prune`: removes every container that is not running; their names.
    pub fn remove_stopped(&self) -> Vec<String> {
        let stopped: Vec<(String, String)> = lock(&self.records)
            .values()
            .filter(|r| !r.state.is_running())
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        stopped
            .into_iter()
            .filter(|(id, _)| self.remove(id, false, false).is_ok())
            .map(|(_, name)| name)
            .collect()
    }

    /// Drops the unpacked roots of images whose manifest digest is not in `live`.
    pub fn forget_images_except(&self, live: &HashSet<String>) {
        for entry in fs::read_dir(&self.rootfs_cache)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&format!("sha256:{name}")) && !name.starts_with('.') {
                self.forget_image(&name);
            }
        }
    }

    /// Drop the unpacked root filesystem of a removed image.
    pub fn forget_image(&self, manifest_digest: &str) {
        let _ = fs::remove_dir_all(
            self.rootfs_cache
                .join(manifest_digest.trim_start_matches("sha256:")),
        );
    }

    /// `run`: create a container from an image and start it, with `mounts` (its `-v`, resolved
    /// by the caller); with `spec.tty`, on a terminal whose master is answered too (the
    /// container's output then goes to whoever holds it, not to its log); with
    /// `spec.interactive` alone, its stdin is a pipe whose write end is answered.
    pub fn run(
        self: &Arc<Self>,
        spec: RunSpec,
        mounts: Vec<MountRecord>,
        images: &ImageStore,
    ) -> Result<(ContainerInfo, Option<OwnedFd>), ApiError> {
        self.layout()?;
        if let Some(name) = &spec.name {
            validate::name("container", name).map_err(ApiError::invalid)?;
        }
        if let Some(cpus) = spec.cpus
            && !(cpus > 0.0 && cpus <= self.host.cpus)
        {
            return Err(ApiError::invalid(format!(
                "--cpus {cpus}: give more than 0 and at most the host's {}",
                self.host.cpus
            )));
        }
        if let Some(memory) = spec.memory
            && memory < MIN_MEMORY
        {
            return Err(ApiError::invalid(format!(
                "--memory {}: a container needs at least {}",
                berth_api::size::format_size(memory),
                berth_api::size::format_size(MIN_MEMORY)
            )));
        }
        if spec.pids == Some(0) {
            return Err(ApiError::invalid(
                "--pids 0: a container needs at least one process",
            ));
        }
        let network = spec.network.unwrap_or(self.default_network);
        validate::ports(network, &spec.ports).map_err(ApiError::invalid)?;
        for var in &spec.env {
            validate::env_var(var).map_err(ApiError::invalid)?;
        }
        if let Some(dir) = &spec.workdir {
            validate::workdir(dir).map_err(ApiError::invalid)?;
        }
        if spec.remove && spec.restart != RestartPolicy::No {
            return Err(ApiError::invalid(
                "--rm and --restart conflict: a container removed when it ends cannot be restarted",
            ));
        }
        if let Some(hostname) = &spec.hostname {
            validate::hostname(hostname).map_err(ApiError::invalid)?;
        }
        let image = images
            .resolve(&spec.image)
            .map_err(crate::images::image_error)?;
        let run = &image.config.config;
        let mut ports = spec.ports.clone();
        if spec.publish_all {
            if network == ContainerNetwork::None {
                return Err(ApiError::invalid(
                    "-P with --network none: a container without a network publishes no ports",
                ));
            }
            ports.extend(publish_exposed(run.exposed_ports.keys(), &spec.ports)?);
        }
        let command = command_line(
            run.entrypoint.as_deref(),
            run.cmd.as_deref(),
            spec.entrypoint.as_deref(),
            &spec.command,
        );
        if command.is_empty() {
            return Err(ApiError::invalid(format!(
                "image `{}` has no CMD or ENTRYPOINT; give a command",
                image.reference
            )));
        }
        let env = merge_env(run.env.clone().unwrap_or_default(), &spec.env);
        let id = new_id()?;
        let root = self.rootfs_of(images, &image)?;
        for mount in mounts.iter().filter(|m| m.fill_from_image) {
            crate::volumes::fill_from_image(&mount.source, &root, &mount.target).map_err(|e| {
                ApiError::internal(format!(
                    "cannot fill the volume at {} from the image: {e}",
                    mount.target
                ))
            })?;
        }
        let record = {
            let mut records = lock(&self.records);
            let taken = |name: &str| records.values().any(|r| r.name == name);
            let name = match &spec.name {
                Some(name) => name.clone(),
                None => generated_name(&image.reference.name, &id, taken),
            };
            if taken(&name) {
                return Err(ApiError::new(
                    ErrorKind::AlreadyExists,
                    format!("a container named `{name}` exists already"),
                ));
            }
            // A bridge address for the container's life: the lowest no other has.
            let address = match network {
                ContainerNetwork::Bridge => {
                    let taken: HashSet<Ipv4Addr> =
                        records.values().filter_map(|r| r.address).collect();
                    let free = runtime::bridge::CONTAINER_NUMBERS
                        .filter_map(runtime::bridge::address)
                        .find(|a| !taken.contains(a));
                    Some(free.ok_or_else(|| {
                        ApiError::new(
                            ErrorKind::Conflict,
                            "the bridge network has no free address: remove containers on it",
                        )
                    })?)
                }
                _ => None,
            };
            let record = Record {
                id: id.clone(),
                name,
                image: image.reference.to_string(),
                image_digest: image.manifest_digest.clone(),
                command,
                env,
                cwd: spec
                    .workdir
                    .clone()
                    .or_else(|| run.working_dir.clone())
                    .unwrap_or_default(),
                user: spec
                    .user
                    .clone()
                    .or_else(|| run.user.clone())
                    .unwrap_or_default(),
                stop_signal: run.stop_signal.clone(),
                limits: ContainerLimits {
                    cpus: spec.cpus,
                    memory: spec.memory,
                    pids: spec.pids,
                },
                created: now(),
                state: ContainerState::Created,
                network,
                ports,
                address,
                hostname: spec.hostname.clone(),
                remove: spec.remove,
                volumes: spec.volumes.clone(),
                mounts,
                restart: spec.restart,
                restart_count: 0,
                stopped_by_user: false,
            };
            fs::create_dir_all(self.dir(&id)).map_err(internal)?;
            self.persist(&record)?;
            records.insert(id.clone(), record.clone());
            record
        };
        let stdio = if spec.tty {
            Stdio::Terminal
        } else if spec.interactive {
            Stdio::Stdin
        } else {
            Stdio::Log
        };
        let master = match self.start_record(&record, stdio) {
            Ok(master) => master,
            Err(e) => {
                // A container that never ran is not kept: nothing is left half-made.
                lock(&self.records).remove(&id);
                let _ = fs::remove_dir_all(self.dir(&id));
                return Err(e);
            }
        };
        // `-d` with `-t`/`-i`: kept here for `attach` instead of handed over.
        let master = match (master, spec.attachable) {
            (Some(fd), true) => {
                let kept = if stdio == Stdio::Terminal {
                    Kept::Terminal(
                        KeptTerminal::keep(fd, &self.dir(&id).join("log"))
                            .map_err(|e| internal(format!("cannot keep the terminal: {e}")))?,
                    )
                } else {
                    Kept::Stdin(fd)
                };
                // A container that ended at once has nothing to attach to (`ended` takes it
                // out of `running` before it looks here).
                let mut all = lock(&self.kept);
                if self.is_running(&id) {
                    all.insert(id.clone(), kept);
                }
                None
            }
            (master, _) => master,
        };
        Ok((self.info(&self.find(&id)?), master))
    }

    /// Starts `record`'s container; on a terminal whose master is answered, or with a stdin
    /// pipe whose write end is, as `stdio` says.
    fn start_record(
        self: &Arc<Self>,
        record: &Record,
        stdio: Stdio,
    ) -> Result<Option<OwnedFd>, ApiError> {
        let layout = self.layout()?;
        let lower = self.image_root(record)?;
        let dir = self.dir(&record.id);
        let config = ContainerConfig {
            id: record.id.clone(),
            hostname: record.hostname.clone(),
            mounts: record.mounts.iter().map(MountRecord::to_runtime).collect(),
            tmpfs: Vec::new(),
            terminal: stdio == Stdio::Terminal,
            stdin: stdio == Stdio::Stdin,
            log: dir.join("log"),
            dir,
            lower: vec![lower],
            args: record.command.clone(),
            env: record.env.clone(),
            cwd: record.cwd.clone(),
            user: record.user.clone(),
            limits: Limits {
                cpus: record.limits.cpus,
                memory: record.limits.memory,
                pids: record.limits.pids,
            },
            network: match (record.network, record.address) {
                (ContainerNetwork::Pasta, _) => Some(Connection::Pasta(record.ports.clone())),
                (ContainerNetwork::Bridge, Some(address)) => Some(Connection::Bridge {
                    network: self.bridge.join()?,
                    address,
                    ports: record.ports.clone(),
                }),
                (ContainerNetwork::Bridge, None) => {
                    return Err(internal("a container on the bridge without an address"));
                }
                (ContainerNetwork::None, _) => None,
            },
            hosts: match record.address {
                Some(address) if record.network == ContainerNetwork::Bridge => {
                    let mut hosts = vec![hosts_entry(record, address)];
                    hosts.extend(self.bridge_hosts(&record.id));
                    hosts
                }
                _ => Vec::new(),
            },
        };
        let mut container = match runtime::start(&config, layout) {
            Ok(container) => container,
            Err(e) => {
                if matches!(config.network, Some(Connection::Bridge { .. })) {
                    self.bridge.leave();
                }
                self.set_state(
                    &record.id,
                    ContainerState::Stopped {
                        exit_code: Some(127),
                        oom_killed: false,
                    },
                );
                return Err(ApiError::invalid(e.to_string()));
            }
        };
        let pid = container.pid;
        let master = container.terminal.take().or(container.stdin.take());
        let running = Arc::new(Running {
            container,
            started: Instant::now(),
            ended: Mutex::new(false),
            changed: Condvar::new(),
        });
        lock(&self.running).insert(record.id.clone(), Arc::clone(&running));
        self.set_state(&record.id, ContainerState::Running { pid });
        if record.network == ContainerNetwork::Bridge {
            self.refresh_bridge_hosts();
        }
        let engine = Arc::clone(self);
        let id = record.id.clone();
        std::thread::spawn(move || {
            let exit = running.container.wait();
            engine.ended(
                &id,
                &running,
                ContainerState::Stopped {
                    exit_code: Some(exit.code),
                    oom_killed: exit.oom_killed,
                },
            );
        });
        Ok(master)
    }

    fn watch_adopted(self: &Arc<Self>, id: &str, running: &Running) {
        let proc_dir = PathBuf::from(format!("/proc/{}", running.container.pid));
        while proc_dir.exists() {
            std::thread::sleep(Duration::from_millis(200));
        }
        running.container.reap_leftovers();
        let oom = running.container.usage().oom_kills > 0;
        self.ended(
            id,
            running,
            ContainerState::Stopped {
                exit_code: None,
                oom_killed: oom,
            },
        );
    }

    fn ended(self: &Arc<Self>, id: &str, running: &Running, state: ContainerState) {
        let exit_code = match &state {
            ContainerState::Stopped { exit_code, .. } => *exit_code,
            _ => None,
        };
        // Off the network before its end is told: whoever sees it stopped (`ps`, a daemon
        // stopping) sees the network without it. (Told first, a daemon stopped right after
        // `ps` showed nothing running still counted it and left the network up.)
        let on_bridge = lock(&self.records)
            .get(id)
            .is_some_and(|r| r.network == ContainerNetwork::Bridge);
        if on_bridge {
            self.bridge.leave();
        }
        self.set_state(id, state);
        lock(&self.running).remove(id);
        lock(&self.kept).remove(id);
        // Its neighbours' /etc/hosts without it, once it no longer counts as running.
        if on_bridge {
            self.refresh_bridge_hosts();
        }
        // `--rm`: gone with its files once its end is told (the state event above).
        let mut records = lock(&self.records);
        if records.get(id).is_some_and(|r| r.remove) {
            if let Some(record) = records.remove(id) {
                remove_anonymous_volumes(&record);
            }
            drop(records);
            if let Err(e) = fs::remove_dir_all(self.dir(id)) {
                eprintln!("berthd: cannot remove the files of container {id}: {e}");
            }
        } else {
            drop(records);
        }
        *lock(&running.ended) = true;
        running.changed.notify_all();
        let delay = lock(&self.records)
            .get(id)
            .and_then(|r| restart_delay(r, exit_code, running.started.elapsed()));
        if let Some(delay) = delay {
            let engine = Arc::clone(self);
            let id = id.to_owned();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                engine.restart_by_policy(&id);
            });
        }
    }

    /// Starts container `id` again because its policy says so, unless it was removed,
    /// started or stopped by the user meanwhile.
    fn restart_by_policy(self: &Arc<Self>, id: &str) {
        let record = {
            let mut records = lock(&self.records);
            let Some(record) = records.get_mut(id) else {
                return;
            };
            if record.stopped_by_user || record.state.is_running() {
                return;
            }
            record.restart_count += 1;
            if let Err(e) = self.persist(record) {
                eprintln!("berthd: cannot save container {id}: {e}");
            }
            record.clone()
        };
        if let Err(e) = self.start_record(&record, Stdio::Log) {
            eprintln!(
                "berthd: cannot restart container {} by its policy: {}",
                record.name, e.message
            );
        }
    }

    /// `start`: start a stopped container again, on its own writable layer.
    pub fn start(self: &Arc<Self>, key: &str) -> Result<ContainerInfo, ApiError> {
        let record = self.find(key)?;
        if record.state.is_running() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("container `{}` is running already", record.name),
            ));
        }
        self.set_stopped_by_user(&record.id, false);
        self.start_record(&record, Stdio::Log)?;
        Ok(self.info(&self.find(&record.id)?))
    }

    fn set_stopped_by_user(&self, id: &str, stopped: bool) {
        let mut records = lock(&self.records);
        if let Some(record) = records.get_mut(id)
            && record.stopped_by_user != stopped
        {
            record.stopped_by_user = stopped;
            if let Err(e) = self.persist(record) {
                eprintln!("berthd: cannot save container {id}: {e}");
            }
        }
    }

    /// `stop`: the image's stop signal (SIGTERM by default), then SIGKILL after the grace time.
    pub fn stop(&self, key: &str, grace: Option<Duration>) -> Result<ContainerInfo, ApiError> {
        let record = self.find(key)?;
        self.set_stopped_by_user(&record.id, true);
        let running = lock(&self.running).get(&record.id).cloned();
        if let Some(running) = running {
            let signal = record
                .stop_signal
                .as_deref()
                .map_or(Signal::SIGTERM, signal_named);
            let _ = running.container.signal(signal);
            let deadline = Instant::now() + grace.unwrap_or(DEFAULT_GRACE);
            let mut ended = lock(&running.ended);
            while !*ended && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                ended = running
                    .changed
                    .wait_timeout(ended, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if !*ended {
                let _ = running.container.signal(Signal::SIGKILL);
                let kill_deadline = Instant::now() + Duration::from_secs(10);
                while !*ended && Instant::now() < kill_deadline {
                    ended = running
                        .changed
                        .wait_timeout(ended, Duration::from_millis(100))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        Ok(self.info(&self.find(&record.id)?))
    }

    /// `exec`: starts `spec`'s command in its running container, with the container's
    /// environment, working directory and user unless `spec` says otherwise. Answers the
    /// process's id (for [`Engine::exec_wait`]) and the ends of its terminal or pipes that are
    /// the client's.
    pub fn exec(&self, spec: ExecSpec) -> Result<(ExecInfo, Vec<OwnedFd>), ApiError> {
        let record = self.find(&spec.container)?;
        let running = lock(&self.running)
            .get(&record.id)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "container `{}` is not running; start it first (`berthctl start {}`)",
                        record.name, record.name
                    ),
                )
            })?;
        if spec.command.is_empty() {
            return Err(ApiError::invalid("exec needs a command to run"));
        }
        for var in &spec.env {
            validate::env_var(var).map_err(ApiError::invalid)?;
        }
        if let Some(dir) = &spec.workdir {
            validate::workdir(dir).map_err(ApiError::invalid)?;
        }
        let mut env = merge_env(record.env.clone(), &spec.env);
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", running.container.hostname));
        }
        let config = runtime::exec::ExecConfig {
            args: spec.command,
            env,
            cwd: spec.workdir.unwrap_or(record.cwd),
            user: spec.user.unwrap_or(record.user),
            tty: spec.tty,
        };
        let process = runtime::exec::exec(&running.container, &config)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let id = self.next_exec.fetch_add(1, Ordering::Relaxed);
        let waiter = Arc::new(ExecWaiter::default());
        lock(&self.execs).insert(id, Arc::clone(&waiter));
        let pid = process.pid;
        std::thread::spawn(move || {
            let code = runtime::exec::wait(pid);
            *lock(&waiter.code) = Some(code);
            waiter.changed.notify_all();
        });
        Ok((ExecInfo { id, pid }, process.stdio))
    }

    /// Waits until the exec'd process `id` has ended; its exit code.
    pub fn exec_wait(&self, id: u64) -> Result<i32, ApiError> {
        let waiter = lock(&self.execs)
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("there is no exec {id}")))?;
        let mut code = lock(&waiter.code);
        while code.is_none() {
            code = waiter
                .changed
                .wait(code)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let result = code.unwrap_or(255);
        drop(code);
        lock(&self.execs).remove(&id);
        Ok(result)
    }

    /// `inspect`: one container as `ps` shows it.
    pub fn inspect(&self, key: &str) -> Result<ContainerInfo, ApiError> {
        Ok(self.info(&self.find(key)?))
    }

    /// `restart`: stop, then start.
    pub fn restart(self: &Arc<Self>, key: &str) -> Result<ContainerInfo, ApiError> {
        let record = self.find(key)?;
        self.stop(&record.id, None)?;
        self.start(&record.id)
    }

    /// `rm`: remove a stopped container (or, with `force`, kill it first) and all its files;
    /// with `volumes`, its anonymous volumes too.
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<(), ApiError> {
        let record = self.find(key)?;
        if record.state.is_running() {
            if !force {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "container `{}` is running; stop it first or use --force",
                        record.name
                    ),
                ));
            }
            self.stop(&record.id, Some(Duration::ZERO))?;
        }
        lock(&self.records).remove(&record.id);
        if volumes {
            remove_anonymous_volumes(&record);
        }
        fs::remove_dir_all(self.dir(&record.id)).map_err(internal)
    }

    /// `ps`: running containers, or all with `all`.
    pub fn list(&self, all: bool) -> Vec<ContainerInfo> {
        let records: Vec<Record> = lock(&self.records).values().cloned().collect();
        records
            .iter()
            .filter(|r| all || r.state.is_running())
            .map(|r| self.info(r))
            .collect()
    }

    /// `logs`: everything the container wrote so far.
    pub fn logs(&self, key: &str) -> Result<Vec<String>, ApiError> {
        let record = self.find(key)?;
        let text = fs::read(self.dir(&record.id).join("log")).unwrap_or_default();
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// A container's log file, open read-only for a client to read its output from, byte
    /// for byte (made empty when nothing was written yet).
    pub fn log_file(&self, key: &str) -> Result<OwnedFd, ApiError> {
        let record = self.find(key)?;
        let path = self.dir(&record.id).join("log");
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|_| fs::File::open(&path))
            .map(OwnedFd::from)
            .map_err(|e| internal(format!("the log of {}: {e}", record.name)))
    }

    /// `attach`: what a running container started with `-d` and `-t`/`-i` kept, joined once
    /// more; a container started without either is followed from its log.
    pub fn attach(&self, key: &str) -> Result<(AttachInfo, Vec<OwnedFd>), ApiError> {
        let record = self.find(key)?;
        if !self.is_running(&record.id) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("container `{}` is not running: start it first", record.name),
            ));
        }
        let kept = lock(&self.kept);
        let (terminal, stdin, fds) = match kept.get(&record.id) {
            Some(kept @ Kept::Terminal(_)) => (true, false, kept.join().map_err(internal)?),
            Some(kept @ Kept::Stdin(_)) => (false, true, kept.join().map_err(internal)?),
            None => (false, false, Vec::new()),
        };
        drop(kept);
        let info = AttachInfo {
            container: self.info(&record),
            terminal,
            stdin,
        };
        Ok((info, fds))
    }

    /// Whether a container is running now.
    pub fn is_running(&self, id: &str) -> bool {
        lock(&self.running).contains_key(id)
    }

    /// `stats`: live use of running containers (one or all), measured over a quarter second.
    pub fn stats(&self, key: Option<&str>) -> Result<Vec<ContainerStats>, ApiError> {
        let wanted: Vec<Record> = match key {
            Some(key) => vec![self.find(key)?],
            None => lock(&self.records)
                .values()
                .filter(|r| r.state.is_running())
                .cloned()
                .collect(),
        };
        let running: Vec<(Record, Arc<Running>)> = {
            let map = lock(&self.running);
            wanted
                .into_iter()
                .filter_map(|r| map.get(&r.id).cloned().map(|run| (r, run)))
                .collect()
        };
        let before: Vec<f64> = running
            .iter()
            .map(|(_, run)| run.container.usage().cpu_seconds)
            .collect();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(250));
        let wall = started.elapsed().as_secs_f64();
        Ok(running
            .iter()
            .zip(before)
            .map(|((record, run), cpu0)| {
                let usage = run.container.usage();
                let memory_total = record.limits.memory.unwrap_or(self.host.memory);
                ContainerStats {
                    id: record.id.clone(),
                    name: record.name.clone(),
                    cpu: ratio(usage.cpu_seconds - cpu0, wall),
                    memory: usage.memory,
                    memory_use: ratio(usage.memory as f64, memory_total as f64),
                    disk: disk_usage(&self.dir(&record.id).join("upper")),
                    pids: usage.pids,
                    allocation: self.allocation(record),
                }
            })
            .collect())
    }
}

/// How long to wait before restarting a container that ended (`exit_code`, after running
/// `ran`) by its policy, or None: Docker's delays, 100 ms doubling with each restart up to a
/// minute, back to 100 ms once it ran ten seconds.
fn restart_delay(record: &Record, exit_code: Option<i32>, ran: Duration) -> Option<Duration> {
    if record.stopped_by_user || record.remove {
        return None;
    }
    let wanted = match record.restart {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            exit_code != Some(0) && max_retries.is_none_or(|max| record.restart_count < max)
        }
    };
    if !wanted {
        return None;
    }
    if ran >= Duration::from_secs(10) {
        return Some(Duration::from_millis(100));
    }
    let doublings = record.restart_count.min(10);
    Some(Duration::from_millis(100 << doublings).min(Duration::from_secs(60)))
}

/// `base` with each of `over`'s `NAME=VALUE`s replacing the variable of that name.
fn merge_env(mut base: Vec<String>, over: &[String]) -> Vec<String> {
    let name = |var: &str| var.split_once('=').map_or(var, |(n, _)| n).to_owned();
    for var in over {
        let wanted = name(var);
        base.retain(|e| name(e) != wanted);
        base.push(var.clone());
    }
    base
}

/// The command a container runs, by Docker's rules: the image's ENTRYPOINT then the CMD given
/// (else the image's); `--entrypoint PROGRAM` replaces the ENTRYPOINT and drops the image's
/// CMD; `--entrypoint ""` clears the ENTRYPOINT and keeps it.
fn command_line(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    entrypoint: Option<&str>,
    cmd: &[String],
) -> Vec<String> {
    let (mut line, cmd_default) = match entrypoint {
        None => (image_entrypoint.unwrap_or_default().to_vec(), image_cmd),
        Some("") => (Vec::new(), image_cmd),
        Some(program) => (vec![program.to_owned()], None),
    };
    if cmd.is_empty() {
        line.extend(cmd_default.unwrap_or_default().iter().cloned());
    } else {
        line.extend(cmd.iter().cloned());
    }
    line
}

/// Forwards for the image's EXPOSEd ports that `published` does not publish yet, each from a
/// free host port on every address (Docker's `-P`). The kernel picks the port (a bind to port
/// 0); pasta binds it a moment later.
fn publish_exposed<'a>(
    exposed: impl Iterator<Item = &'a String>,
    published: &[PortForward],
) -> Result<Vec<PortForward>, ApiError> {
    let mut forwards = Vec::new();
    for key in exposed {
        let Some((target_port, protocol)) = berth_api::network::exposed_port(key) else {
            continue;
        };
        if published
            .iter()
            .any(|p| p.target_port == target_port && p.protocol == protocol)
        {
            continue;
        }
        let free = match protocol {
            Protocol::Tcp => {
                std::net::TcpListener::bind(("0.0.0.0", 0)).and_then(|l| l.local_addr())
            }
            Protocol::Udp => std::net::UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| s.local_addr()),
        }
        .map_err(|e| internal(format!("cannot find a free host port for {key}: {e}")))?;
        forwards.push(PortForward {
            protocol,
            host_ip: None,
            host_port: free.port(),
            target_port,
        });
    }
    Ok(forwards)
}

/// What a started container's standard streams are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stdio {
    /// stdin `/dev/null`, output to its log.
    Log,
    /// A terminal (`run -t`), its master answered.
    Terminal,
    /// stdin a pipe whose write end is answered (`run -i`), output to its log.
    Stdin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_name_takes_more_of_the_id_where_another_has_it() {
        let id = "82ef1234abcd5678";
        assert_eq!(
            generated_name("library/busybox", id, |_| false),
            "library-busybox-82ef"
        );
        let taken = ["web-82ef", "web-82ef12"];
        assert_eq!(
            generated_name("web", id, |n| taken.contains(&n)),
            "web-82ef1234"
        );
        assert_eq!(
            generated_name("web", id, |n| n != "web-82ef1234abcd5678"),
            "web-82ef1234abcd5678"
        );
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_command_follows_docker_s_rules_for_entrypoint_and_cmd() {
        let entrypoint = words("/entry.sh");
        let cmd = words("serve --port 80");
        let line = |e: Option<&str>, c: &str| {
            command_line(Some(&entrypoint), Some(&cmd), e, &words(c)).join(" ")
        };
        assert_eq!(line(None, ""), "/entry.sh serve --port 80");
        assert_eq!(line(None, "debug"), "/entry.sh debug");
        assert_eq!(line(Some("/bin/sh"), ""), "/bin/sh");
        assert_eq!(line(Some("/bin/sh"), "-c id"), "/bin/sh -c id");
        assert_eq!(line(Some(""), ""), "serve --port 80");
        assert_eq!(line(Some(""), "id"), "id");
        assert_eq!(command_line(None, None, None, &[]), Vec::<String>::new());
    }
}
