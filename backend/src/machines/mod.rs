//! Running VMs: one `berth-vmm` child process per running VM, supervised here.
//!
//! berthd starts berth-vmm with the VM's definition on its command line ([`launch`]) and these
//! channels (their language is `berth_vmm_api`, shared with berth-vmm):
//! - a control socket on fd 3: berth-vmm says `ready` once the guest is loaded and about to
//!   run, then answers each command ([`berth_vmm_api::Command`]: the power button, kill, pause,
//!   resume, the display, input). When berthd goes away the socket closes and berth-vmm ends
//!   its VM: nobody could reach it any more;
//! - stdin/stdout: the serial console (output is pushed as [`Event::VmSerial`]; berth-vmm also
//!   writes it to `serial.log` in the VM's directory, which `vm log` reads);
//! - a SOCK_SEQPACKET socket on fd 4 (`--events-fd 4`): the display notices
//!   ([`berth_display::notice`]), pushed as [`Event::DisplayUpdate`] and [`Event::DisplayMode`];
//! - stderr: why berth-vmm failed or what crashed, kept for the VM's crashed state.
//!
//! A waiter thread per VM turns berth-vmm's exit status into the VM's state (see
//! [`state_after_exit`]). A berth-vmm that crashes or is killed takes only its own VM with it.
//! [`input`] turns the API's keys, text, pointer and wheel into the guest's input events.

mod input;
pub(crate) mod launch;
mod network;
mod sandbox;

pub use launch::SERIAL_LOG;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use berth_api::error::{ApiError, ErrorKind};
use berth_api::event::Event;
use berth_api::vm::{BootFrom, BootSource, DisplayInfo, VmConfig, VmState};
use berth_display::notice::Notice;
use berth_vmm_api::channel::ControlClient;
use berth_vmm_api::launch::{CONTROL_FD, EVENTS_FD, NET_FD};
use berth_vmm_api::{Command as VmmCommand, VmmExit};
use nix::sys::socket::{self, MsgFlags};
use tokio::sync::broadcast;

use crate::registry::Registry;

/// How long berth-vmm may take to create the VM and load the guest before it says `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a control command may take to be answered (a pause waits for every vCPU).
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop waits for the guest to power off, unless the request says.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `kill` on the control channel may take before berthd sends SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The most of a serial log `vm log` returns.
const MAX_LOG_LINES: usize = 10_000;
/// What of berth-vmm's stderr is kept for a crash reason.
const STDERR_KEPT: usize = 4096;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every holder leaves the data consistent between statements; a poisoned lock only means
    // another request panicked, which must not stop this one.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log(message: impl std::fmt::Display) {
    eprintln!("berthd: {message}");
}

/// One berth-vmm process.
struct Machine {
    pid: i32,
    control: Mutex<ControlClient>,
    stdin: Mutex<ChildStdin>,
    /// The host is ending the VM (stop, kill): its end is not a crash, and a guest reset then
    /// does not start it again.
    ending: AtomicBool,
    /// Set by the waiter once the process has been reaped.
    ended: (Mutex<bool>, Condvar),
    /// The ids its berth-vmm runs as, free again when it is gone.
    _ids: Option<sandbox::Lease>,
}

impl Machine {
    /// Waits up to `timeout` for the process to end; whether it did.
    fn wait_ended(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ended = lock(&self.ended.0);
        while !*ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ended = self
                .ended
                .1
                .wait_timeout(ended, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Ends the VM now: `kill` on the control channel, SIGKILL if that does not do it.
    fn kill(&self) {
        self.ending.store(true, Ordering::SeqCst);
        let _ = lock(&self.control).call(&VmmCommand::Kill, REPLY_TIMEOUT);
        if !self.wait_ended(KILL_GRACE) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.wait_ended(KILL_GRACE);
        }
    }
}

/// The processes of one running VM: its berth-vmm and, on a network, what connects it.
struct Processes {
    vmm: Child,
    net: Option<network::Helper>,
}

/// Every running VM of one daemon.
pub struct Machines {
    vmm: PathBuf,
    registry: Arc<Mutex<Registry>>,
    events: broadcast::Sender<Event>,
    running: Mutex<HashMap<String, Arc<Machine>>>,
    sandbox_ids: sandbox::SandboxIds,
    /// The Berth network, for VMs on it (shared with containers).
    bridge: Arc<crate::bridge::Bridge>,
}

/// Where berthd finds berth-vmm: `$BERTH_VMM`, else next to berthd's own executable.
pub fn default_vmm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BERTH_VMM") {
        return path.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("berth-vmm")))
        .unwrap_or_else(|| PathBuf::from("berth-vmm"))
}

fn conflict(message: String) -> ApiError {
    ApiError::new(ErrorKind::Conflict, message)
}

/// The state a VM is in once its berth-vmm ended with `status`; `None` for a guest reset that
/// should start the VM again. `ending` says the host asked for the end; `stderr` is what
/// berth-vmm said last.
pub fn state_after_exit(status: ExitStatus, ending: bool, stderr: &str) -> Option<VmState> {
    let said = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("berth-vmm: ").to_owned());
    let exit = status.code().and_then(VmmExit::from_code);
    Some(match (exit, status.signal()) {
        (Some(VmmExit::PowerOff | VmmExit::Stopped), _) => VmState::Stopped,
        (Some(VmmExit::Reset), _) if !ending => return None,
        (Some(VmmExit::Reset), _) => VmState::Stopped,
        (_, Some(_)) if ending => VmState::Stopped,
        (Some(VmmExit::Crash), _) => VmState::Crashed {
            reason: said.unwrap_or_else(|| "the VM crashed".into()),
        },
        (_, Some(signal)) => VmState::Crashed {
            reason: format!(
                "berth-vmm was killed by signal {signal} ({})",
                nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown")
            ),
        },
        (_, _) => VmState::Crashed {
            reason: match said {
                Some(said) => said,
                None => format!(
                    "berth-vmm exited with status {}",
                    status.code().unwrap_or(-1)
                ),
            },
        },
    })
}

impl Machines {
    /// `ids_of_their_own`: each VM's berth-vmm drops to ids of its own (the daemon is root on
    /// the host); otherwise it keeps the daemon's.
    pub fn new(
        vmm: PathBuf,
        registry: Arc<Mutex<Registry>>,
        events: broadcast::Sender<Event>,
        ids_of_their_own: bool,
        bridge: Arc<crate::bridge::Bridge>,
    ) -> Arc<Self> {
        Arc::new(Machines {
            vmm,
            registry,
            events,
            running: Mutex::new(HashMap::new()),
            sandbox_ids: sandbox::SandboxIds::new(ids_of_their_own),
            bridge,
        })
    }

    fn publish(&self, name: &str, state: VmState) {
        lock(&self.registry).set_state(name, state.clone());
        // No subscribers is fine.
        let _ = self.events.send(Event::VmState {
            name: name.to_owned(),
            state,
        });
    }

    fn machine(&self, name: &str) -> Result<Arc<Machine>, ApiError> {
        if let Some(machine) = lock(&self.running).get(name) {
            return Ok(Arc::clone(machine));
        }
        // Not running: say so, or that there is no such VM.
        let state = lock(&self.registry).state(name)?;
        Err(conflict(format!(
            "VM `{name}` is not running (it is {state})"
        )))
    }

    /// Starts VM `name`; answers once the guest runs, or with berth-vmm's reason it could not.
    pub fn start(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let (config, dir) = {
            let mut registry = lock(&self.registry);
            let (config, dir, state) = registry.definition(name)?;
            if state.is_active() {
                return Err(conflict(format!("VM `{name}` is {state} already")));
            }
            // Checked before the state changes, so a VM that cannot boot stays as it was.
            launch::check_boot(&config, &dir)?;
            registry.set_state(name, VmState::Starting);
            (config, dir)
        };
        self.publish(name, VmState::Starting);
        match self.spawn(&config, &dir) {
            Ok(()) => {
                self.publish(name, VmState::Running);
                Ok(())
            }
            Err(e) => {
                self.publish(name, VmState::Stopped);
                Err(e)
            }
        }
    }

    /// Starts berth-vmm for `config` and waits for its `ready`.
    fn spawn(self: &Arc<Self>, config: &VmConfig, dir: &Path) -> Result<(), ApiError> {
        let name = config.name.clone();
        let mut options = launch::launch_options(config, dir)?;
        // Whether an installer could be what puts a system on the disk during this run.
        let disk_bootable_at_start = disk_bootable(config, dir);
        let (sandbox, lease) = self.sandbox_ids.take();
        options.sandbox = Some(sandbox);
        if !self.vmm.is_file() {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot start VM `{name}`: the VMM {} is missing (install berth-vmm next to berthd, or set BERTH_VMM)",
                    self.vmm.display()
                ),
            ));
        }
        // passt runs as the VM's own ids under a root daemon; in a user's daemon's namespace
        // 0 is the user.
        let (mut net, net_socket) = match network::start(config, dir, sandbox.ids, &self.bridge)? {
            network::Start::None => (None, None),
            network::Start::Offline(why) => {
                log(format!("VM `{name}`: {why}"));
                (None, None)
            }
            network::Start::Running {
                helper,
                card,
                socket,
            } => {
                options.network = Some(card);
                (Some(helper), Some(socket))
            }
        };
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| ApiError::internal(format!("cannot make a control channel: {e}")))?;
        let theirs_fd = theirs.as_raw_fd();
        let (notices, their_notices) = socket::socketpair(
            socket::AddressFamily::Unix,
            socket::SockType::SeqPacket,
            None,
            socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| ApiError::internal(format!("cannot make a display channel: {e}")))?;
        let their_notices_fd = their_notices.as_raw_fd();
        // What berth-vmm inherits, and on which descriptor.
        let mut inherited = vec![(theirs_fd, CONTROL_FD), (their_notices_fd, EVENTS_FD)];
        if let Some(socket) = &net_socket {
            inherited.push((socket.as_raw_fd(), NET_FD));
        }
        let mut command = Command::new(&self.vmm);
        command
            .args(options.to_args())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and calls only fcntl, dup2
        // and close, which are async-signal-safe (it allocates nothing: `inherited` was built
        // before); the descriptors stay open in the parent until spawn returns.
        unsafe {
            command.pre_exec(move || {
                // Copies above the targets first, so one socket already sitting on a target is
                // not overwritten by another; dup2 then clears close-on-exec on the targets.
                let mut copies = [0; 3];
                for (copy, (fd, _)) in copies.iter_mut().zip(&inherited) {
                    *copy = libc::fcntl(*fd, libc::F_DUPFD, 10);
                    if *copy < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (copy, (_, target)) in copies.into_iter().zip(&inherited) {
                    if libc::dup2(copy, *target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(copy);
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| ApiError::internal(format!("cannot run {}: {e}", self.vmm.display())))?;
        drop(theirs);
        drop(their_notices);
        // berth-vmm holds the card's end now: when it ends, passt sees the socket close.
        drop(net_socket);
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ApiError::internal(
                "berth-vmm's standard streams are missing",
            ));
        };
        let mut control = ControlClient::new(ours);
        // passt binds the forwarded ports as it starts, faster than berth-vmm gets ready: if
        // it has ended by then (a port in use), the VM does not start without what it was
        // promised.
        let ready = control
            .wait_ready(READY_TIMEOUT)
            .map_err(|e| e.to_string())
            .and_then(|()| match net.as_mut().and_then(network::Helper::failed) {
                Some(why) => Err(format!("its network did not start: {why}")),
                None => Ok(()),
            });
        match ready {
            Ok(()) => {}
            Err(failed) => {
                // It failed before the guest ran: its stderr says why.
                let _ = child.kill();
                let _ = child.wait();
                drop(net);
                let mut said = String::new();
                let _ = stderr.read_to_string(&mut said);
                let said = said.trim().trim_start_matches("berth-vmm: ").to_owned();
                let why = if said.is_empty() || failed.starts_with("its network") {
                    failed
                } else {
                    said
                };
                return Err(ApiError::invalid(format!(
                    "cannot start VM `{name}`: {why}"
                )));
            }
        }

        let machine = Arc::new(Machine {
            pid: child.id() as i32,
            control: Mutex::new(control),
            stdin: Mutex::new(stdin),
            ending: AtomicBool::new(false),
            ended: (Mutex::new(false), Condvar::new()),
            _ids: lease,
        });
        lock(&self.running).insert(name.clone(), Arc::clone(&machine));
        log(format!("VM `{name}` runs in berth-vmm pid {}", machine.pid));

        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let threads = [
            self.serial_reader(&name, stdout),
            stderr_reader(stderr, Arc::clone(&stderr_tail)),
            self.notice_reader(&name, notices),
        ];
        let this = Arc::clone(self);
        let config = config.clone();
        let dir = dir.to_owned();
        std::thread::Builder::new()
            .name(format!("vm-{name}"))
            .spawn(move || {
                let processes = Processes { vmm: child, net };
                let run = Run {
                    config: &config,
                    dir: &dir,
                    disk_bootable_at_start,
                };
                this.wait_for(processes, machine, threads, stderr_tail, run)
            })
            .map_err(|e| ApiError::internal(format!("cannot watch berth-vmm: {e}")))?;
        Ok(())
    }

    /// Pushes what the guest writes on its serial console as events.
    fn serial_reader(
        &self,
        name: &str,
        mut stdout: std::process::ChildStdout,
    ) -> Option<std::thread::JoinHandle<()>> {
        let events = self.events.clone();
        let name = name.to_owned();
        std::thread::Builder::new()
            .name("vm-console".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stdout.read(&mut buf) {
                    let _ = events.send(Event::VmSerial {
                        name: name.clone(),
                        data: buf[..n].to_vec(),
                    });
                }
            })
            .ok()
    }

    /// Pushes the display notices as events, until berth-vmm exits (the socket then reads EOF).
    fn notice_reader(&self, name: &str, socket: OwnedFd) -> Option<std::thread::JoinHandle<()>> {
        let events = self.events.clone();
        let name = name.to_owned();
        std::thread::Builder::new()
            .name("vm-display".into())
            .spawn(move || {
                let mut buf = [0u8; berth_display::notice::MAX_LEN];
                loop {
                    let n = match socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(_) => return,
                    };
                    // A notice cut short (longer than any real one) or garbled is skipped: only
                    // berth-vmm writes here, and the framebuffer header stays the truth.
                    let event = match Notice::decode(&buf[..n]) {
                        Some(Notice::Damage { frame, rect }) => Event::DisplayUpdate {
                            name: name.clone(),
                            sequence: frame,
                            x: rect.x,
                            y: rect.y,
                            width: rect.width,
                            height: rect.height,
                        },
                        Some(Notice::Mode { width, height }) => Event::DisplayMode {
                            name: name.clone(),
                            width,
                            height,
                        },
                        None => continue,
                    };
                    let _ = events.send(event);
                }
            })
            .ok()
    }

    /// Reaps berth-vmm and records how the VM ended; a guest reset starts it again.
    fn wait_for(
        self: Arc<Self>,
        processes: Processes,
        machine: Arc<Machine>,
        threads: [Option<std::thread::JoinHandle<()>>; 3],
        stderr_tail: Arc<Mutex<String>>,
        run: Run<'_>,
    ) {
        let Run { config, dir, .. } = run;
        let name = &config.name;
        let Processes {
            vmm: mut child,
            net,
        } = processes;
        let status = child.wait();
        if let Some(net) = net {
            net.reap();
        }
        // The readers end at EOF, which the exit brings; join them so the console events and
        // the last words on stderr are all in before the state changes.
        for thread in threads.into_iter().flatten() {
            let _ = thread.join();
        }
        lock(&self.running).remove(name);
        // Whoever waits for the end (stop, kill) is told only once the state is recorded, so
        // their answer shows the VM as it now is.
        let finish = || {
            *lock(&machine.ended.0) = true;
            machine.ended.1.notify_all();
        };
        let ending = machine.ending.load(Ordering::SeqCst);
        let state = match status {
            Ok(status) => state_after_exit(status, ending, &lock(&stderr_tail)),
            Err(e) => Some(VmState::Crashed {
                reason: format!("cannot wait for berth-vmm: {e}"),
            }),
        };
        let state = match state {
            Some(state) => state,
            None => {
                log(format!("VM `{name}` reset by its guest: starting it again"));
                let config = self.after_install(&run);
                match self.spawn(&config, dir) {
                    Ok(()) => return finish(),
                    Err(e) => VmState::Crashed {
                        reason: format!("the guest rebooted and the VM could not start again: {e}"),
                    },
                }
            }
        };
        log(format!("VM `{name}` is {state}"));
        self.publish(name, state);
        finish();
    }

    /// The definition a VM restarts with after its guest reset: an installer started from the
    /// VM's ISO that reboots, having put a boot loader on the VM's disk, is done, and the VM
    /// starts from that disk from now on (GNOME Boxes does the same; the ISO stays in the CD
    /// drive until ejected). Started through the firmware from the CD, it counts as an
    /// installer only if the disk had nothing to boot when the run began: a rescue CD booted
    /// on purpose ahead of an installed system keeps the VM on the CD. Otherwise, and if the
    /// change cannot be saved, it is unchanged.
    fn after_install(&self, run: &Run<'_>) -> VmConfig {
        let config = run.config;
        if !run.installed_a_system() {
            return config.clone();
        }
        match lock(&self.registry).set_boot_from(&config.name, BootFrom::Disk) {
            Ok(config) => {
                log(format!(
                    "VM `{}`: its installer rebooted and its disk is bootable: it starts from its disk from now on",
                    config.name
                ));
                config
            }
            Err(e) => {
                log(format!("VM `{}`: {}", config.name, e.message));
                config.clone()
            }
        }
    }

    /// Asks the guest to power off and waits up to `timeout`, then ends it; with `force`, ends
    /// it at once. Answers once berth-vmm has exited.
    pub fn stop(&self, name: &str, force: bool, timeout: Duration) -> Result<(), ApiError> {
        let machine = self.machine(name)?;
        if force {
            machine.kill();
            return Ok(());
        }
        let was = lock(&self.registry).state(name)?;
        if was == VmState::Paused {
            // A paused guest cannot see the button.
            lock(&machine.control)
                .call(&VmmCommand::Resume, REPLY_TIMEOUT)
                .map_err(|why| conflict(format!("cannot resume VM `{name}` to stop it: {why}")))?;
        }
        machine.ending.store(true, Ordering::SeqCst);
        if let Err(why) = lock(&machine.control).call(&VmmCommand::Stop, REPLY_TIMEOUT) {
            machine.ending.store(false, Ordering::SeqCst);
            return Err(conflict(format!(
                "cannot ask VM `{name}` to power off: {why}; `vm stop --force` ends it at once"
            )));
        }
        self.publish(name, VmState::Stopping);
        if !machine.wait_ended(timeout) {
            log(format!(
                "VM `{name}` did not power off within {} s: ending it",
                timeout.as_secs()
            ));
            machine.kill();
        }
        Ok(())
    }

    /// Pauses (`pause`) or resumes a VM.
    pub fn pause(&self, name: &str, pause: bool) -> Result<(), ApiError> {
        let machine = self.machine(name)?;
        let state = lock(&self.registry).state(name)?;
        let (from, to, command, verb) = if pause {
            (
                VmState::Running,
                VmState::Paused,
                VmmCommand::Pause,
                "pause",
            )
        } else {
            (
                VmState::Paused,
                VmState::Running,
                VmmCommand::Resume,
                "resume",
            )
        };
        if state != from {
            return Err(conflict(format!("VM `{name}` is {state}, not {from}")));
        }
        lock(&machine.control)
            .call(&command, REPLY_TIMEOUT)
            .map_err(|why| conflict(format!("cannot {verb} VM `{name}`: {why}")))?;
        self.publish(name, to);
        Ok(())
    }

    /// Types `data` on the VM's serial console.
    pub fn serial_input(&self, name: &str, data: &[u8]) -> Result<(), ApiError> {
        let machine = self.machine(name)?;
        let mut stdin = lock(&machine.stdin);
        stdin
            .write_all(data)
            .and_then(|()| stdin.flush())
            .map_err(|e| conflict(format!("VM `{name}` does not take input now: {e}")))
    }

    /// VM `name`'s display: its geometry and the framebuffer memfd berth-vmm shares.
    pub fn display(&self, name: &str) -> Result<(DisplayInfo, OwnedFd), ApiError> {
        let machine = self.machine(name)?;
        let (_, fd) = lock(&machine.control)
            .display(REPLY_TIMEOUT)
            .map_err(|why| conflict(format!("cannot get VM `{name}`'s display: {why}")))?;
        // The header says what the guest shows now (its scanout), not just the mode offered.
        let reader = fd
            .try_clone()
            .map_err(|e| ApiError::internal(format!("cannot share VM `{name}`'s display: {e}")))
            .and_then(|dup| {
                berth_display::framebuffer::FramebufferReader::open(dup).map_err(|e| {
                    ApiError::internal(format!("VM `{name}`'s framebuffer is unusable: {e}"))
                })
            })?;
        let (width, height, stride, format) = reader.geometry().map_err(|e| {
            ApiError::internal(format!("VM `{name}`'s framebuffer is unusable: {e}"))
        })?;
        Ok((
            DisplayInfo {
                width,
                height,
                stride,
                format,
            },
            fd,
        ))
    }

    /// Tells VM `name`'s guest its display's preferred size (berth-vmm's `display-size`).
    pub fn display_size(&self, name: &str, width: u32, height: u32) -> Result<(), ApiError> {
        let machine = self.machine(name)?;
        lock(&machine.control)
            .call(&VmmCommand::DisplaySize { width, height }, REPLY_TIMEOUT)
            .map(drop)
            .map_err(|why| match why {
                berth_vmm_api::channel::ChannelError::Refused(
                    berth_vmm_api::ControlError::Failed(why),
                ) => ApiError::invalid(format!(
                    "VM `{name}`'s display cannot be {width}x{height}: {why}"
                )),
                why => conflict(format!("cannot resize VM `{name}`'s display: {why}")),
            })
    }

    /// Ends every VM (the daemon is stopping).
    pub fn kill_all(&self) {
        let machines: Vec<_> = lock(&self.running).values().cloned().collect();
        for machine in machines {
            machine.kill();
        }
    }
}

/// One run of a VM's berth-vmm, as its watcher sees it.
struct Run<'a> {
    config: &'a VmConfig,
    dir: &'a Path,
    /// Whether the VM's disk started with a boot sector when the run began.
    disk_bootable_at_start: bool,
}

impl Run<'_> {
    /// Whether this run was an installer from the VM's ISO that has put a boot loader on the
    /// VM's disk ([`Machines::after_install`]).
    fn installed_a_system(&self) -> bool {
        let config = self.config;
        let an_installer = match config.boot_from {
            BootFrom::Kernel => true,
            BootFrom::Iso => !self.disk_bootable_at_start,
            BootFrom::Disk => false,
        };
        an_installer
            && matches!(config.boot, Some(BootSource::Iso { .. }))
            && disk_bootable(config, self.dir)
    }
}

/// Whether the VM has a disk that starts with a boot sector (a system installed on it).
fn disk_bootable(config: &VmConfig, dir: &Path) -> bool {
    launch::disk_path(config, dir)
        .is_some_and(|disk| launch::has_boot_signature(&disk).unwrap_or(false))
}

/// Keeps the end of what berth-vmm writes on stderr (and logs it).
fn stderr_reader(
    stderr: std::process::ChildStderr,
    tail: Arc<Mutex<String>>,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vm-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                log(format!("vmm: {line}"));
                let mut tail = lock(&tail);
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > STDERR_KEPT {
                    let cut = tail.len() - STDERR_KEPT;
                    let cut = (cut..tail.len())
                        .find(|i| tail.is_char_boundary(*i))
                        .unwrap_or(0);
                    tail.drain(..cut);
                }
            }
        })
        .ok()
}

/// The last `lines` lines of the VM's serial log in `dir` (empty before its first start).
pub fn serial_log(dir: &Path, lines: u32) -> Result<Vec<String>, ApiError> {
    let path = dir.join(SERIAL_LOG);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let keep = (lines as usize).min(MAX_LOG_LINES).min(all.len());
    Ok(all[all.len() - keep..]
        .iter()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::vm::DiskConfig;

    #[test]
    fn a_reset_after_an_install_from_the_iso_means_the_disk_has_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        let config = |boot_from| VmConfig {
            name: "vm".into(),
            cpus: 1,
            memory: 256 << 20,
            disk: Some(DiskConfig {
                file: "disk.raw".into(),
                size: 1 << 20,
            }),
            boot: Some(BootSource::Iso {
                iso: "/isos/debian.iso".into(),
                entry: None,
            }),
            boot_from,
            created: 0,
            display: Default::default(),
            network: Default::default(),
        };
        let installed = |boot_from, disk_bootable_at_start| {
            let config = config(boot_from);
            Run {
                config: &config,
                dir: dir.path(),
                disk_bootable_at_start,
            }
            .installed_a_system()
        };
        // Still blank: a live system's reboot, whichever way it started.
        std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
        assert!(!installed(BootFrom::Kernel, false));
        assert!(!installed(BootFrom::Iso, false));
        // A boot sector now.
        let mut sector = vec![0u8; 1 << 20];
        sector[510..512].copy_from_slice(&[0x55, 0xaa]);
        std::fs::write(&disk, sector).unwrap();
        assert!(installed(BootFrom::Kernel, false));
        assert!(installed(BootFrom::Iso, false), "an installer from the CD");
        assert!(
            !installed(BootFrom::Iso, true),
            "a rescue CD booted ahead of an installed system"
        );
        assert!(!installed(BootFrom::Disk, false));
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn signalled(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    #[test]
    fn exit_statuses_become_states() {
        assert_eq!(
            state_after_exit(exited(0), false, ""),
            Some(VmState::Stopped)
        );
        assert_eq!(
            state_after_exit(exited(4), true, ""),
            Some(VmState::Stopped)
        );
        assert_eq!(
            state_after_exit(exited(2), false, ""),
            None,
            "a reset restarts"
        );
        assert_eq!(
            state_after_exit(exited(2), true, ""),
            Some(VmState::Stopped)
        );
        assert_eq!(
            state_after_exit(exited(3), false, "berth-vmm: vCPU 0 hit a triple fault\n"),
            Some(VmState::Crashed {
                reason: "vCPU 0 hit a triple fault".into()
            })
        );
        assert_eq!(
            state_after_exit(signalled(9), false, ""),
            Some(VmState::Crashed {
                reason: "berth-vmm was killed by signal 9 (SIGKILL)".into()
            })
        );
        assert_eq!(
            state_after_exit(signalled(9), true, ""),
            Some(VmState::Stopped)
        );
        assert_eq!(
            state_after_exit(exited(1), false, ""),
            Some(VmState::Crashed {
                reason: "berth-vmm exited with status 1".into()
            })
        );
    }

    #[test]
    fn serial_log_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert!(serial_log(dir.path(), 5).unwrap().is_empty());
        std::fs::write(dir.path().join(SERIAL_LOG), "one\r\ntwo\nthree\n").unwrap();
        assert_eq!(serial_log(dir.path(), 2).unwrap(), ["two", "three"]);
        assert_eq!(serial_log(dir.path(), 9).unwrap(), ["one", "two", "three"]);
    }
}
