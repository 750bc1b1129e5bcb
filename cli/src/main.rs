//! berthctl: the scriptable twin of every action of the Berth window. Human tables by default,
//! `--json` for scripts.
//!
//! Exit codes: 0 done; 1 berthd refused or failed the request; 2 the command line is wrong;
//! 3 no berthd could be reached (none running, not allowed, or a different protocol).

mod console;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_api::client::{Client, ClientError};
use berth_api::container::{
    BuildSpec, ContainerInfo, ContainerState, ContainerStats, ImageInfo, RunSpec,
};
use berth_api::host::HostInfo;
use berth_api::iso::{IsoInfo, IsoKind};
use berth_api::request::{Reply, Request};
use berth_api::size::{format_size, parse_size};
use berth_api::vm::{BootSource, DisplayMode, VmEdit, VmInfo, VmSpec};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use table::{pairs, percent, table};

/// Manage Berth virtual machines and containers.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// The berthd socket; default: $BERTH_SOCKET, else the system daemon, else your user daemon.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The host: N CPUs, M memory, P disk, and what VMs were given of them (ΣU_vm, ΣM_vm).
    Host,
    /// Virtual machines.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Inspect ISO images.
    #[command(subcommand)]
    Iso(IsoCommand),
    /// Build an image from a Dockerfile.
    Build {
        /// Name (and tag) of the result, e.g. hello:latest.
        #[arg(short, long)]
        tag: String,
        /// The Dockerfile; default CONTEXT/Dockerfile.
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// Build-time variables, NAME=VALUE.
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        context: PathBuf,
    },
    /// Run a container from an image.
    Run {
        /// Return once it has started.
        #[arg(short, long)]
        detach: bool,
        /// CPUs, fractional: 0.5 is half a CPU.
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory limit, e.g. 256M.
        #[arg(long, value_parser = size)]
        memory: Option<u64>,
        /// Most processes.
        #[arg(long)]
        pids: Option<u64>,
        #[arg(long)]
        name: Option<String>,
        image: String,
        /// Command and arguments, replacing the image's CMD.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
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
        container: String,
    },
    /// Live use and U_ct, M_ct, P_ct of containers.
    Stats { container: Option<String> },
    /// List images.
    Images,
    /// Remove an image.
    Rmi { image: String },
    /// Import a root filesystem tarball or an OCI archive as an image.
    Import { file: PathBuf, name: String },
    /// Print events pushed by berthd (state changes, samples) as they happen.
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
enum VmCommand {
    /// Define a new VM with its own sparse disk.
    Create {
        name: String,
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        boot: Boot,
        /// The screen's resolution, WIDTHxHEIGHT (default 1280x800).
        #[arg(long, value_name = "WxH")]
        display: Option<DisplayMode>,
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
        /// The screen's resolution, WIDTHxHEIGHT, from the next start.
        #[arg(long, value_name = "WxH")]
        display: Option<DisplayMode>,
        #[arg(long)]
        overcommit: bool,
    },
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
    Console { name: String },
    /// The VM's serial log.
    Log {
        name: String,
        /// How many of the last lines.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
    /// Save the VM's screen as a PNG.
    Screenshot { name: String, file: PathBuf },
    /// Type text on the VM's keyboard.
    Type { name: String, text: String },
    /// Press a key combination, e.g. ctrl+alt+f2.
    Key { name: String, keys: String },
}

#[derive(Subcommand, Debug)]
enum IsoCommand {
    /// What an ISO is and how it boots.
    Inspect { file: PathBuf },
}

#[derive(Args, Debug)]
struct Resources {
    /// Virtual CPUs (n); default 1, or what an --iso image suggests.
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory (m), e.g. 2G; default 1G, or what an --iso image suggests.
    #[arg(long, value_parser = size)]
    memory: Option<u64>,
    /// Disk (p), e.g. 20G, 0 for none; default none, or what an --iso image suggests.
    #[arg(long, value_parser = size)]
    disk: Option<u64>,
}

impl Resources {
    /// The values given, the rest from `suggested` (an ISO's suggestion, already fitted to
    /// the host) or the plain defaults.
    fn resolve(&self, suggested: Option<berth_api::iso::Suggested>) -> (u32, u64, u64) {
        let (cpus, memory, disk) =
            suggested.map_or((1, 1 << 30, 0), |s| (s.cpus, s.memory, s.disk));
        (
            self.cpus.unwrap_or(cpus),
            self.memory.unwrap_or(memory),
            self.disk.unwrap_or(disk),
        )
    }

    fn complete(&self) -> bool {
        self.cpus.is_some() && self.memory.is_some() && self.disk.is_some()
    }
}

/// What the ISO suggests, fitted to the host: at most its CPUs, half its memory and half the
/// free disk, so the suggestion never needs --overcommit.
async fn iso_suggestion(client: &Client, iso: &Path) -> Result<berth_api::iso::Suggested, Failure> {
    let info = client.iso_inspect(iso).await?;
    let host = client.host().await?;
    let s = info.suggested;
    Ok(berth_api::iso::Suggested {
        cpus: s.cpus.min(host.total.cpus as u32).max(1),
        memory: s.memory.min(host.total.memory / 2),
        disk: s.disk.min(host.disk_free / 2),
    })
}

#[derive(Args, Debug)]
struct Boot {
    /// A Linux kernel (bzImage) to boot directly.
    #[arg(long, conflicts_with = "iso")]
    kernel: Option<PathBuf>,
    /// An initramfs for the kernel.
    #[arg(long, conflicts_with = "iso")]
    initrd: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, conflicts_with = "iso")]
    cmdline: Option<String>,
    /// An ISO image to boot from (attached read-only).
    #[arg(long)]
    iso: Option<PathBuf>,
    /// Which boot entry of the ISO (default: its default entry).
    #[arg(long, requires = "iso")]
    entry: Option<u32>,
}

fn size(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// The daemon resolves paths itself and may have another working directory: send absolute ones.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl Boot {
    fn source(&self) -> Result<Option<BootSource>, String> {
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

/// Print a container's output as the daemon pushes it, until it has stopped.
async fn follow_logs(
    client: &Client,
    events: &mut berth_api::Events,
    container: &str,
) -> Result<(), Failure> {
    use std::io::Write;
    let call = client.call(Request::Logs {
        container: container.to_owned(),
        follow: true,
    });
    tokio::pin!(call);
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            done = &mut call => {
                // Lines pushed before the answer are already queued: print them too.
                while let Ok(Some(berth_api::Event::LogLine { line, .. })) =
                    tokio::time::timeout(std::time::Duration::from_millis(1), events.next()).await
                {
                    let _ = writeln!(stdout, "{line}");
                }
                return done.map(drop).map_err(Failure::from);
            }
            event = events.next() => match event {
                Some(berth_api::Event::LogLine { line, .. }) => {
                    let _ = writeln!(stdout, "{line}");
                }
                Some(_) => {}
                None => return Err(Failure::Failed("berthd closed the connection".into())),
            },
        }
    }
}

/// Why berthctl stopped, with its exit code.
enum Failure {
    /// The container berthctl ran in the foreground ended with this code: pass it on.
    Exit(i32),
    /// The daemon could not be reached or did not admit us: exit 3.
    Unreachable(String),
    /// The request failed: exit 1.
    Failed(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NoDaemon { .. }
            | ClientError::Refused { .. }
            | ClientError::VersionMismatch(_) => Failure::Unreachable(e.to_string()),
            other => Failure::Failed(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(message)) => {
            eprintln!("berthctl: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(message)) => {
            eprintln!("berthctl: {message}");
            ExitCode::from(3)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code.clamp(0, 255) as u8),
    }
}

async fn connect(cli: &Cli) -> Result<(Client, berth_api::Events), Failure> {
    let name = concat!("berthctl ", env!("CARGO_PKG_VERSION"));
    Ok(match &cli.socket {
        Some(socket) => Client::connect(socket, name).await?,
        None => Client::connect_default(name).await?,
    })
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let (client, mut events) = connect(&cli).await?;
    let json = cli.json;
    let request = match cli.command {
        Command::Host => {
            let host = client.host().await?;
            return if json {
                print_json(&host)
            } else {
                {
                    print!("{}", show_host(&host));
                    Ok(())
                }
            };
        }
        Command::Vm(VmCommand::List) => {
            let listing = client.vm_list().await?;
            for problem in &listing.problems {
                eprintln!("berthctl: warning: skipped an unreadable definition: {problem}");
            }
            return if json {
                print_json(&listing)
            } else {
                {
                    print!("{}", list_vms(&listing.vms));
                    Ok(())
                }
            };
        }
        Command::Events { count } => {
            client.subscribe().await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(event) = events.next().await else {
                    return Err(Failure::Failed("berthd closed the connection".into()));
                };
                let line =
                    serde_json::to_string(&event).map_err(|e| Failure::Failed(e.to_string()))?;
                println!("{line}");
                seen += 1;
            }
            return Ok(());
        }
        Command::Vm(VmCommand::Console { name }) => {
            return console::attach(&client, &mut events, &name).await;
        }
        Command::Vm(VmCommand::Screenshot { name, file }) => {
            let (width, height) = screenshot(&client, &name, &file).await?;
            if !json {
                println!(
                    "{width}x{height} screen of {name} saved to {}",
                    file.display()
                );
            }
            return Ok(());
        }
        Command::Vm(VmCommand::Create {
            name,
            display: Some(display),
            resources,
            boot,
            overcommit,
        }) => {
            // VmSpec has no display field (the window builds specs too); the resolution is
            // set by an edit right after the create.
            let command = VmCommand::Create {
                name: name.clone(),
                display: None,
                resources,
                boot,
                overcommit,
            };
            let suggested = match &command {
                VmCommand::Create {
                    resources, boot, ..
                } if !resources.complete() => match &boot.iso {
                    Some(iso) => Some(iso_suggestion(&client, &absolute(iso)).await?),
                    None => None,
                },
                _ => None,
            };
            client.call(vm_request(command, suggested)?).await?;
            let edit = VmEdit {
                display: Some(display),
                ..VmEdit::default()
            };
            let vm = client.vm_edit(&name, edit).await?;
            return if json {
                print_json(&vm)
            } else {
                print!("{}", show_vm(&vm));
                Ok(())
            };
        }
        Command::Vm(command) => {
            // `vm create --iso` takes what the image suggests for what the user left out.
            let suggested = match &command {
                VmCommand::Create {
                    resources, boot, ..
                } if !resources.complete() => match &boot.iso {
                    Some(iso) => Some(iso_suggestion(&client, &absolute(iso)).await?),
                    None => None,
                },
                _ => None,
            };
            vm_request(command, suggested)?
        }
        Command::Iso(IsoCommand::Inspect { file }) => {
            let info = client.iso_inspect(&absolute(&file)).await?;
            return if json {
                print_json(&info)
            } else {
                print!("{}", show_iso(&info));
                Ok(())
            };
        }
        Command::Build {
            tag,
            file,
            build_args,
            context,
        } => {
            let build_args = build_args
                .iter()
                .map(|a| {
                    a.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            Failure::Failed(format!("--build-arg {a}: expected NAME=VALUE"))
                        })
                })
                .collect::<Result<_, _>>()?;
            let spec = BuildSpec {
                context: absolute(&context),
                dockerfile: file.as_deref().map(absolute),
                tag: tag.clone(),
                build_args,
            };
            // Progress comes as events: subscribe first, then print each step of this build.
            client.subscribe().await?;
            let call = client.call(Request::Build(spec));
            tokio::pin!(call);
            let reply = loop {
                tokio::select! {
                    reply = &mut call => break reply?,
                    event = events.next() => {
                        if let Some(berth_api::Event::BuildProgress(p)) = event
                            && p.tag == tag
                            && !json
                        {
                            let cached = if p.cached { " (cached)" } else { "" };
                            eprintln!("[{}/{}] {}{cached}", p.step, p.steps, p.instruction);
                        }
                    }
                }
            };
            if json {
                return print_json(&reply);
            }
            if let Reply::Images(images) = reply {
                for image in images {
                    println!("built {} {}", image.reference, image.id);
                }
            }
            return Ok(());
        }
        Command::Run {
            detach,
            cpus,
            memory,
            pids,
            name,
            image,
            command,
        } => {
            // The daemon always answers once the container has started; in the foreground,
            // berthctl then follows its output and ends with its exit code.
            let spec = RunSpec {
                image,
                name,
                command,
                detach: true,
                cpus,
                memory,
                pids,
            };
            let info = match client.call(Request::Run(spec)).await? {
                Reply::Container(info) => info,
                other => return Err(Failure::Failed(format!("unexpected reply {other:?}"))),
            };
            if json && detach {
                return print_json(&info);
            }
            if detach {
                println!("{}", info.id);
                return Ok(());
            }
            follow_logs(&client, &mut events, &info.id).await?;
            let state = match client.call(Request::Ps { all: true }).await? {
                Reply::Containers(list) => {
                    list.into_iter().find(|c| c.id == info.id).map(|c| c.state)
                }
                _ => None,
            };
            return match state {
                Some(ContainerState::Stopped {
                    exit_code: Some(0), ..
                }) => Ok(()),
                Some(ContainerState::Stopped {
                    exit_code: Some(code),
                    oom_killed,
                }) => {
                    if oom_killed {
                        eprintln!(
                            "berthctl: container {} was killed: out of memory",
                            info.name
                        );
                    }
                    Err(Failure::Exit(code))
                }
                other => Err(Failure::Failed(format!(
                    "container {} ended in state {other:?}",
                    info.name
                ))),
            };
        }
        Command::Logs {
            follow: true,
            container,
        } => {
            return follow_logs(&client, &mut events, &container).await;
        }
        Command::Ps { all } => Request::Ps { all },
        Command::Logs { follow, container } => Request::Logs { container, follow },
        Command::Start { container } => Request::ContainerStart { container },
        Command::Stop { time, container } => Request::ContainerStop {
            container,
            timeout_secs: time,
        },
        Command::Restart { container } => Request::ContainerRestart { container },
        Command::Rm { force, container } => Request::ContainerRm { container, force },
        Command::Stats { container } => Request::Stats { container },
        Command::Images => Request::Images,
        Command::Rmi { image } => Request::Rmi { image },
        Command::Import { file, name } => Request::Import {
            path: absolute(&file),
            name,
        },
    };
    let reply = client.call(request).await?;
    if json {
        return print_json(&reply);
    }
    match reply {
        Reply::Done | Reply::Host(_) | Reply::VmList(_) => {}
        Reply::Vm(vm) => print!("{}", show_vm(&vm)),
        Reply::Lines(lines) => lines.iter().for_each(|l| println!("{l}")),
        Reply::Images(images) => print!("{}", list_images(&images)),
        Reply::Container(info) => println!("{}", info.id),
        Reply::Containers(list) => print!("{}", list_containers(&list)),
        Reply::Stats(stats) => print!("{}", show_stats(&stats)),
        Reply::Iso(info) => print!("{}", show_iso(&info)),
        Reply::Display(info) => println!("{}x{}", info.width, info.height),
    }
    Ok(())
}

fn vm_request(
    command: VmCommand,
    suggested: Option<berth_api::iso::Suggested>,
) -> Result<Request, Failure> {
    Ok(match command {
        VmCommand::Create {
            name,
            resources,
            boot,
            overcommit,
            ..
        } => {
            let (cpus, memory, disk) = resources.resolve(suggested);
            Request::VmCreate(VmSpec {
                name,
                cpus,
                memory,
                disk,
                boot: boot.source().map_err(Failure::Failed)?,
                overcommit,
            })
        }
        VmCommand::Show { name } => Request::VmShow { name },
        VmCommand::Edit {
            name,
            cpus,
            memory,
            disk,
            boot,
            display,
            overcommit,
        } => {
            if boot.entry.is_some() {
                return Err(Failure::Failed(
                    "--entry is chosen when the ISO is attached; pass --iso again".into(),
                ));
            }
            Request::VmEdit {
                name,
                edit: VmEdit {
                    cpus,
                    memory,
                    disk,
                    kernel: boot.kernel.as_deref().map(absolute),
                    initrd: boot.initrd.as_deref().map(absolute),
                    cmdline: boot.cmdline,
                    iso: boot.iso.as_deref().map(absolute),
                    display,
                    overcommit,
                },
            }
        }
        VmCommand::Delete { name } => Request::VmDelete { name },
        VmCommand::Start { name } => Request::VmStart { name },
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => Request::VmStop {
            name,
            force,
            timeout_secs: timeout,
        },
        VmCommand::Pause { name } => Request::VmPause { name },
        VmCommand::Resume { name } => Request::VmResume { name },
        VmCommand::Log { name, lines } => Request::VmLog { name, lines },
        VmCommand::Screenshot { name, .. } => Request::VmScreenshot { name },
        VmCommand::Type { name, text } => Request::VmType { name, text },
        VmCommand::Key { name, keys } => Request::VmKey { name, keys },
        VmCommand::List => Request::VmList,
        // An interactive session, not one request: `console::attach` runs it.
        VmCommand::Console { name } => Request::VmShow { name },
    })
}

fn show_host(host: &HostInfo) -> String {
    let over = |ratio: f64| if ratio > 1.0 { "  OVERCOMMITTED" } else { "" };
    pairs(&[
        ("CPUs (N)", format!("{}", host.total.cpus)),
        ("Memory (M)", format_size(host.total.memory)),
        (
            "Disk (P)",
            format!(
                "{} ({} free) at {}",
                format_size(host.total.disk),
                format_size(host.disk_free),
                host.state_dir.display()
            ),
        ),
        ("VMs", host.vm_count.to_string()),
        (
            "ΣU_vm",
            format!(
                "{}  ({} of {} CPUs given){}",
                percent(host.allocation.cpu),
                host.allocated.cpus,
                host.total.cpus,
                over(host.allocation.cpu)
            ),
        ),
        (
            "ΣM_vm",
            format!(
                "{}  ({} of {} given){}",
                percent(host.allocation.memory),
                format_size(host.allocated.memory),
                format_size(host.total.memory),
                over(host.allocation.memory)
            ),
        ),
        (
            "ΣP_vm",
            format!(
                "{}  ({} of {} given){}",
                percent(host.allocation.disk),
                format_size(host.allocated.disk),
                format_size(host.total.disk),
                over(host.allocation.disk)
            ),
        ),
        (
            "berthd",
            format!("{} ({} mode)", host.server_version, host.mode),
        ),
    ])
}

fn list_vms(vms: &[VmInfo]) -> String {
    let rows: Vec<Vec<String>> = vms
        .iter()
        .map(|vm| {
            let c = &vm.config;
            vec![
                c.name.clone(),
                vm.state.to_string(),
                c.cpus.to_string(),
                format_size(c.memory),
                c.disk.as_ref().map_or("-".into(), |d| format_size(d.size)),
                percent(vm.allocation.cpu),
                percent(vm.allocation.memory),
                percent(vm.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATE", "CPUS", "MEMORY", "DISK", "U_vm", "M_vm", "P_vm",
        ],
        &rows,
    )
}

fn list_images(images: &[ImageInfo]) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            vec![
                i.reference.clone(),
                i.id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                format_size(i.size),
                i.layers.to_string(),
                i.created.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["IMAGE", "ID", "SIZE", "LAYERS", "CREATED"], &rows)
}

fn list_containers(list: &[ContainerInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let mut command = c.command.join(" ");
            if command.chars().count() > 30 {
                command = command.chars().take(29).collect::<String>() + "…";
            }
            vec![
                c.id.clone(),
                c.name.clone(),
                c.image.clone(),
                format!("\"{command}\""),
                c.state.to_string(),
                percent(c.allocation.cpu),
                percent(c.allocation.memory),
                percent(c.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "NAME",
            "IMAGE",
            "COMMAND",
            "STATUS",
            "U_ct",
            "M_ct",
            "P_ct",
        ],
        &rows,
    )
}

fn show_stats(stats: &[ContainerStats]) -> String {
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{:.1}%", s.cpu * 100.0),
                format!("{} ({})", format_size(s.memory), percent(s.memory_use)),
                format_size(s.disk),
                s.pids.to_string(),
                percent(s.allocation.cpu),
                percent(s.allocation.memory),
                percent(s.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "CPU", "MEMORY", "DISK", "PIDS", "U_ct", "M_ct", "P_ct",
        ],
        &rows,
    )
}

fn show_vm(vm: &VmInfo) -> String {
    let c = &vm.config;
    let mut rows = vec![
        ("Name", c.name.clone()),
        ("State", vm.state.to_string()),
        (
            "CPUs",
            format!("{}  (U_vm {})", c.cpus, percent(vm.allocation.cpu)),
        ),
        (
            "Memory",
            format!(
                "{}  (M_vm {})",
                format_size(c.memory),
                percent(vm.allocation.memory)
            ),
        ),
        (
            "Disk",
            match &c.disk {
                Some(d) => format!(
                    "{} sparse raw, {}  (P_vm {})",
                    format_size(d.size),
                    vm.dir.join(&d.file).display(),
                    percent(vm.allocation.disk)
                ),
                None => "none".into(),
            },
        ),
    ];
    match &c.boot {
        Some(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }) => {
            rows.push(("Kernel", kernel.display().to_string()));
            rows.push((
                "Initrd",
                initrd
                    .as_ref()
                    .map_or("none".into(), |i| i.display().to_string()),
            ));
            rows.push(("Cmdline", cmdline.clone()));
        }
        Some(BootSource::Iso { iso, entry }) => {
            rows.push(("ISO", iso.display().to_string()));
            rows.push(("Entry", entry.map_or("default".into(), |e| e.to_string())));
        }
        None => rows.push((
            "Boot",
            "nothing to boot yet (set --kernel or --iso with vm edit)".into(),
        )),
    }
    rows.push(("Display", c.display.to_string()));
    rows.push(("Directory", vm.dir.display().to_string()));
    pairs(&rows)
}

fn show_iso(info: &IsoInfo) -> String {
    let what = match (&info.distro, &info.version) {
        (Some(d), Some(v)) => format!("{d} {v}"),
        (Some(d), None) => d.clone(),
        _ => "unknown".into(),
    };
    let kind = match info.kind {
        IsoKind::Installer => "installer",
        IsoKind::Live => "live system",
        IsoKind::Unknown => "unknown",
    };
    let firmware: Vec<String> = info
        .boot_images
        .iter()
        .map(|b| format!("{} ({} emulation)", b.platform, b.emulation))
        .collect();
    let mut rows = vec![
        ("File", info.path.display().to_string()),
        ("Size", format_size(info.size)),
        ("Volume", info.volume_id.clone()),
        ("Distro", what),
        ("Kind", kind.to_owned()),
    ];
    if let Some(d) = &info.description {
        rows.push(("Description", d.clone()));
    }
    rows.push((
        "Firmware boot",
        if firmware.is_empty() {
            "none".into()
        } else {
            firmware.join(", ")
        },
    ));
    let s = info.suggested;
    rows.push((
        "Suggested",
        format!(
            "--cpus {} --memory {} --disk {}",
            s.cpus,
            format_size(s.memory),
            format_size(s.disk)
        ),
    ));
    let mut out = pairs(&rows);
    out.push('\n');
    if info.entries.is_empty() {
        out.push_str(&format!(
            "Berth cannot boot this image: {}\n",
            info.unbootable
                .as_deref()
                .unwrap_or("it has no Linux kernel")
        ));
    } else {
        let entries: Vec<Vec<String>> = info
            .entries
            .iter()
            .map(|e| {
                vec![
                    format!("{}{}", e.index, if e.default { "*" } else { "" }),
                    e.title.clone(),
                    e.kernel.clone(),
                    e.initrds.join(","),
                    e.cmdline.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ENTRY", "TITLE", "KERNEL", "INITRD", "CMDLINE"],
            &entries,
        ));
    }
    for warning in &info.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// `vm screenshot`: maps the VM's framebuffer (read-only, from `vm display`), copies one
/// consistent frame and writes it to `file` as an RGBA PNG. Returns the size.
async fn screenshot(client: &Client, name: &str, file: &Path) -> Result<(u32, u32), Failure> {
    use berth_display::framebuffer::FramebufferReader;
    use berth_display::gpu::Format;
    let (_, fd) = client.vm_display(name).await?;
    let mut reader = FramebufferReader::open(fd)
        .map_err(|e| Failure::Failed(format!("cannot read the screen of {name}: {e}")))?;
    let mut frame = reader
        .read_frame()
        .map_err(|e| Failure::Failed(format!("cannot read the screen of {name}: {e}")))?;
    let format = Format::from_code(frame.format).ok_or_else(|| {
        Failure::Failed(format!(
            "the screen of {name} has pixel format {}, which berthctl does not know",
            frame.format
        ))
    })?;
    format.to_rgba_in_place(&mut frame.pixels);
    let out = std::fs::File::create(file)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", file.display())))?;
    let failed =
        |e: png::EncodingError| Failure::Failed(format!("writing {}: {e}", file.display()));
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(out), frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&frame.pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok((frame.width, frame.height))
}
