//! berthctl's command line, as clap reads it.

use std::path::{Path, PathBuf};

use berth_api::network::{ContainerNetwork, PortForward, VmNetwork};
use berth_api::size::parse_size;
use berth_api::vm::{BootFrom, BootSource, DisplayMode};
use berth_api::volume::VolumeMount;
use clap::{Args, Parser, Subcommand};

/// Manage Berth virtual machines and containers.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// The berthd socket; default: $BERTH_SOCKET, else the system daemon, else your user daemon.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The host: N CPUs, M memory, P disk, and what VMs were given of them (ΣU_vm, ΣM_vm).
    Host,
    /// Virtual machines.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Inspect ISO images.
    #[command(subcommand)]
    Iso(IsoCommand),
    /// Named volumes: directories kept across containers, mounted with `run -v NAME:/path`.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Disk use of images, containers, volumes and the build cache, and removing what is unused.
    #[command(subcommand)]
    System(SystemCommand),
    /// Print events pushed by berthd (state changes, samples) as they happen.
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    #[command(flatten)]
    Container(ContainerCommand),
}

/// Containers and images: top-level verbs, as Docker has them.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Run a container from an image.
    Run(RunArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps {
        /// Stopped ones too.
        #[arg(short, long)]
        all: bool,
    },
    /// A container's output.
    Logs {
        /// Keep following new output.
        #[arg(short, long)]
        follow: bool,
        container: String,
    },
    /// Join a running container started with -d and -t (its terminal: Ctrl-P Ctrl-Q leaves
    /// it running) or -d and -i (your stdin to it); its output until it ends, and its exit
    /// code.
    Attach { container: String },
    /// A container's published ports.
    Port { container: String },
    /// A container (its state, limits, network, ports, volumes) or else an image (its
    /// manifest and config) as JSON, as `docker inspect` finds either.
    Inspect {
        /// Only an image.
        #[arg(long)]
        image: bool,
        name: String,
    },
    /// Start a stopped container.
    Start { container: String },
    /// Stop a container: its stop signal, then SIGKILL after the grace period.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short, long)]
        time: Option<u32>,
        container: String,
    },
    /// Restart a container.
    Restart { container: String },
    /// Remove a container.
    Rm {
        /// Stop it first if it runs.
        #[arg(short, long)]
        force: bool,
        /// Remove its anonymous volumes too (`-v /path`, the image's VOLUMEs).
        #[arg(short, long)]
        volumes: bool,
        container: String,
    },
    /// Live use and U_ct, M_ct, P_ct of containers.
    Stats { container: Option<String> },
    /// List images.
    Images,
    /// Remove an image.
    Rmi { image: String },
    /// Pull an image from a registry: `[REGISTRY/]NAME[:TAG|@DIGEST]` (`busybox` is Docker
    /// Hub's `docker.io/library/busybox:latest`; a registry on localhost is spoken to over HTTP).
    /// Progress per layer on stderr; a transfer that breaks off is taken up where it stopped,
    /// in this pull or the next.
    Pull {
        /// OS/ARCH[/VARIANT] to take from a multi-platform image (default linux/amd64).
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
        image: String,
    },
    /// Push an image to a registry: to DESTINATION (`REGISTRY/NAME[:TAG]`), or to the
    /// registry IMAGE's own name starts with. Progress per layer on stderr.
    Push {
        image: String,
        destination: Option<String>,
    },
    /// Give IMAGE the name NAME too.
    Tag { image: String, name: String },
    /// Log in to a registry (Docker Hub when none is given): berthd checks the login with
    /// the registry, then it is kept where podman and skopeo keep theirs
    /// ($REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json).
    Login {
        #[arg(short, long)]
        username: Option<String>,
        /// The password (seen by every user of the machine: prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        registry: Option<String>,
    },
    /// Forget the login to a registry (Docker Hub when none is given).
    Logout {
        /// Forget every login berthctl keeps.
        #[arg(short, long, conflicts_with = "registry")]
        all: bool,
        registry: Option<String>,
    },
    /// Import a root filesystem tarball or an OCI archive as an image.
    Import { file: PathBuf, name: String },
    /// Write images as one archive (an OCI layout with Docker's manifest.json, loadable as
    /// oci-archive and docker-archive by podman, skopeo and docker) to FILE or stdout.
    Save {
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// A container's filesystem as one tar, to FILE or stdout.
    Export {
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        container: String,
    },
    /// Make an image of a container: its image with the container's changes on top.
    Commit { container: String, image: String },
    /// Load images from an archive (oci-archive or docker-archive) in FILE or on stdin, under
    /// the names it gives them.
    Load {
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

/// `run`'s arguments, Docker's names for them.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Return once it has started (with -t or -i, berthd keeps its terminal or stdin for
    /// `attach`).
    #[arg(short, long)]
    pub detach: bool,
    /// Give the container a terminal (its output goes there, not to its log; detached, to
    /// both).
    #[arg(short, long)]
    pub tty: bool,
    /// Pass our stdin to it: with -t on its terminal (ours goes raw: Ctrl+C reaches it),
    /// without, through a pipe it reads to our end of input.
    #[arg(short, long)]
    pub interactive: bool,
    /// Remove the container and its files once it has ended.
    #[arg(long)]
    pub rm: bool,
    /// Restart it when it ends: no, on-failure[:N] (non-zero exits, at most N times), always
    /// (but for `stop`), unless-stopped; berthd applies it when it starts again too.
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: berth_api::container::RestartPolicy,
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable: NAME=VALUE, or NAME for the value it has here (several
    /// allowed).
    #[arg(short, long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file: a NAME=VALUE or NAME a line, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside the container (made if missing).
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user to run as: USER[:GROUP], names or ids.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// The program to run instead of the image's ENTRYPOINT (the image's CMD is then not
    /// used); "" clears the ENTRYPOINT.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// The container's hostname (default: its short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount a host path (absolute, or starting with `.`), a named volume, or with TARGET
    /// alone an anonymous volume: [SOURCE:]TARGET[:ro|rw[,nocopy]] (several allowed; a named
    /// volume is made on first use, filled with the image's files there unless nocopy, and
    /// kept after the container; an anonymous one goes with `run --rm` or `rm -v`).
    #[arg(
        short,
        long = "volume",
        value_name = "[SOURCE:]TARGET[:OPTIONS]",
        value_parser = volume
    )]
    pub volume: Vec<VolumeMount>,
    /// CPUs, fractional: 0.5 is half a CPU.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. 256M.
    #[arg(long, value_parser = size)]
    pub memory: Option<u64>,
    /// Most processes.
    #[arg(long)]
    pub pids: Option<u64>,
    /// Publish a port on the host: [IP:]HOST:CONTAINER[/udp] (several allowed).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:]HOST:CONTAINER[/udp]"
    )]
    pub publish: Vec<PortForward>,
    /// Publish every port the image EXPOSEs on a free host port (`berthctl port` shows which).
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// `bridge` (the Berth network: containers and VMs on it reach each other by name, and
    /// out through NAT; the system daemon's default), `pasta` (the host's network through
    /// user-mode NAT; a user's daemon's default) or `none`.
    #[arg(long)]
    pub network: Option<ContainerNetwork>,
    pub image: String,
    /// Command and arguments, replacing the image's CMD.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `exec`'s arguments, Docker's names for them.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Pass our stdin to the process.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal (with -i, ours goes raw: Ctrl+C reaches the process).
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable: NAME=VALUE, or NAME for the value it has here.
    #[arg(short, long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// The working directory (default: the container's).
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user to run as: USER[:GROUP], names or ids (default: the container's).
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `build`'s arguments.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name (and tag) of the result, e.g. hello:latest.
    #[arg(short, long)]
    pub tag: String,
    /// The Dockerfile; default CONTEXT/Dockerfile.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Build-time variables, NAME=VALUE.
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// RUN steps' network: `pasta` (the default; `bridge` is the same for a build) or `none` (a
    /// hermetic build).
    #[arg(long, default_value = "pasta")]
    pub network: ContainerNetwork,
    /// Build up to this stage, which becomes the image.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Run every step again, whatever the cache holds.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull every FROM image from its registry even when it is here.
    #[arg(long)]
    pub pull: bool,
    /// A file RUN --mount=type=secret,id=ID sees at /run/secrets/ID, never kept in the image:
    /// id=ID,src=PATH (several allowed).
    #[arg(long, value_name = "id=ID,src=PATH")]
    pub secret: Vec<berth_api::container::BuildSecret>,
    /// An SSH agent RUN --mount=type=ssh reaches: `default` (the agent SSH_AUTH_SOCK names),
    /// ID (the same under another id) or ID=SOCKET (several allowed).
    #[arg(long, value_name = "default|ID[=SOCKET]")]
    pub ssh: Vec<String>,
    pub context: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Define a new VM with its own sparse disk.
    Create {
        name: String,
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        boot: Boot,
        /// The display's resolution, WIDTHxHEIGHT (default 1280x800).
        #[arg(long, value_name = "WxH")]
        display: Option<DisplayMode>,
        /// `nat` (the default: DHCP, outbound through the host, passt), `bridge` (the Berth
        /// network, with the containers on it: an address of its own by DHCP, the host's
        /// loopback at its gateway), `bridge:NAME` (a bridge of the host's, e.g. on your LAN:
        /// the VM is a machine there; the system daemon's only) or `none`.
        #[arg(long, default_value = "nat")]
        network: VmNetwork,
        /// Forward a host port to the guest, [tcp:|udp:][IP:]HOST:GUEST (host side 127.0.0.1
        /// unless an address is given), e.g. tcp:2222:22; several allowed.
        #[arg(long = "forward", value_name = "SPEC", value_parser = vm_forward)]
        forwards: Vec<PortForward>,
        /// Allow more CPUs, memory or disk than the host has.
        #[arg(long)]
        overcommit: bool,
    },
    /// List VMs with their share of the host (U_vm, M_vm, P_vm).
    List,
    /// One VM's settings, state and share of the host.
    Show { name: String },
    /// Change a stopped VM's settings.
    Edit {
        name: String,
        #[arg(long)]
        cpus: Option<u32>,
        #[arg(long, value_parser = size)]
        memory: Option<u64>,
        /// A larger disk size (disks only grow).
        #[arg(long, value_parser = size)]
        disk: Option<u64>,
        #[command(flatten)]
        boot: Boot,
        /// The display's resolution, WIDTHxHEIGHT, from the next start.
        #[arg(long, value_name = "WxH")]
        display: Option<DisplayMode>,
        /// `nat`, `bridge`, `bridge:NAME` (a bridge of the host's) or `none`.
        #[arg(long)]
        network: Option<VmNetwork>,
        /// The port forwards, replacing the ones it has ([tcp:|udp:][IP:]HOST:GUEST; several).
        #[arg(long = "forward", value_name = "SPEC", value_parser = vm_forward)]
        forwards: Vec<PortForward>,
        /// Remove every port forward.
        #[arg(long, conflicts_with = "forwards")]
        no_forwards: bool,
        #[arg(long)]
        overcommit: bool,
    },
    /// Detach a VM's ISO; a VM that started from it starts from its disk next.
    Eject { name: String },
    /// Delete a VM, its definition and its disk.
    Delete { name: String },
    /// Start a VM.
    Start { name: String },
    /// Press the VM's power button and wait for the guest to power off; --force ends it at once.
    Stop {
        name: String,
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the guest before ending it (default 30).
        #[arg(long, short = 't', value_name = "SECONDS")]
        timeout: Option<u32>,
    },
    /// Pause a running VM.
    Pause { name: String },
    /// Resume a paused VM.
    Resume { name: String },
    /// Attach to the VM's serial console (Ctrl+] detaches); ends when the VM stops.
    #[command(alias = "console")]
    Serial { name: String },
    /// The VM's serial log.
    Log {
        name: String,
        /// How many of the last lines.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
    /// Save the VM's display as a PNG.
    Screenshot { name: String, file: PathBuf },
    /// Type text on the VM's keyboard.
    Type { name: String, text: String },
    /// Press a key combination, e.g. ctrl+alt+f2.
    Key { name: String, keys: String },
    /// Tell the running guest its display's preferred size, e.g. 1920x1080: a desktop guest
    /// resizes its screen to it (as it follows a window under GNOME Boxes).
    DisplaySize {
        name: String,
        #[arg(value_name = "WIDTHxHEIGHT")]
        size: DisplayMode,
    },
}

#[derive(Subcommand, Debug)]
pub enum IsoCommand {
    /// What an ISO is and how it boots.
    Inspect { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct Resources {
    /// Virtual CPUs (n); default 1, or what an --iso image suggests.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory (m), e.g. 2G; default 1G, or what an --iso image suggests.
    #[arg(long, value_parser = size)]
    pub memory: Option<u64>,
    /// Disk (p), e.g. 20G, 0 for none; default none, or what an --iso image suggests.
    #[arg(long, value_parser = size)]
    pub disk: Option<u64>,
}

impl Resources {
    /// The values given, the rest from `suggested` (an ISO's suggestion, already fitted to
    /// the host) or the plain defaults.
    pub fn resolve(&self, suggested: Option<berth_api::iso::Suggested>) -> (u32, u64, u64) {
        let (cpus, memory, disk) =
            suggested.map_or((1, 1 << 30, 0), |s| (s.cpus, s.memory, s.disk));
        (
            self.cpus.unwrap_or(cpus),
            self.memory.unwrap_or(memory),
            self.disk.unwrap_or(disk),
        )
    }

    pub fn complete(&self) -> bool {
        self.cpus.is_some() && self.memory.is_some() && self.disk.is_some()
    }
}

#[derive(Args, Debug)]
pub struct Boot {
    /// A Linux kernel (bzImage) to boot directly.
    #[arg(long, conflicts_with = "iso")]
    pub kernel: Option<PathBuf>,
    /// An initramfs for the kernel.
    #[arg(long, conflicts_with = "iso")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, conflicts_with = "iso")]
    pub cmdline: Option<String>,
    /// An ISO image to boot from, in the VM's CD drive (read-only).
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// Which boot entry of the ISO (default: its default entry).
    #[arg(long, requires = "iso")]
    pub entry: Option<u32>,
    /// Where the VM starts from: `kernel` (its kernel, or the boot entry Berth reads from its
    /// ISO: fast), `iso` (its ISO through the firmware, from the CD drive: for images whose
    /// menu Berth cannot read) or `disk` (its disk through the firmware: an installed system).
    /// By default `vm create`, and `vm edit` given a new kernel or ISO, start from what they
    /// were given (an ISO's kernel when Berth reads one, else the ISO); `vm edit` otherwise
    /// keeps where the VM starts from.
    #[arg(long = "boot", value_name = "FROM")]
    pub boot_from: Option<BootFrom>,
}

pub fn size(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// A VM's port forward, `[tcp:|udp:][IP:]HOST:GUEST`.
pub fn vm_forward(text: &str) -> Result<PortForward, String> {
    PortForward::parse_vm_forward(text)
}

/// The daemon resolves paths itself and may have another working directory: send absolute ones.
/// `-v`, a host path given relative to here (`./src:/src`) made absolute first.
fn volume(text: &str) -> Result<VolumeMount, String> {
    let text = if text.starts_with('.') {
        let (path, rest) = text.split_once(':').unwrap_or((text, ""));
        format!("{}:{rest}", absolute(Path::new(path)).display())
    } else {
        text.to_owned()
    };
    text.parse()
}

/// `system`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// What images, containers, volumes and the build cache take, and what a prune frees.
    Df,
    /// Remove stopped containers, the build cache, blobs no image uses and what interrupted
    /// pulls kept for resuming.
    Prune {
        /// Also every image no container uses.
        #[arg(short, long)]
        all: bool,
        /// Also every volume no container mounts.
        #[arg(long)]
        volumes: bool,
        /// Do not ask first.
        #[arg(short, long)]
        force: bool,
    },
}

/// `volume`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Make a named volume (nothing changes if it exists).
    Create { name: String },
    /// List named volumes and the containers mounting them.
    Ls,
    /// Remove a named volume and its files (refused while a container mounts it).
    Rm { name: String },
}

pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl Boot {
    pub fn source(&self) -> Result<Option<BootSource>, String> {
        if let Some(iso) = &self.iso {
            return Ok(Some(BootSource::Iso {
                iso: absolute(iso),
                entry: self.entry,
            }));
        }
        match &self.kernel {
            Some(kernel) => Ok(Some(BootSource::Kernel {
                kernel: absolute(kernel),
                initrd: self.initrd.as_deref().map(absolute),
                cmdline: self.cmdline.clone().unwrap_or_default(),
            })),
            None if self.initrd.is_some() || self.cmdline.is_some() => {
                Err("--initrd and --cmdline need --kernel".into())
            }
            None => Ok(None),
        }
    }
}
