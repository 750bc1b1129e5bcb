//! `exec`: another process in a running container, as `docker exec` starts one: in the
//! namespaces of the container's first process, in its cgroup, as the user asked for, on a
//! terminal or on pipes whose other ends go to whoever asked.
//!
//! The pid namespace is entered by a thread started for it (`setns` changes only the namespace
//! that thread's *children* get), so the child is born in the container's; the child enters the other namespaces (the mount namespace last) before it
//! may go on, which a single-threaded child may, and the parent puts it into the container's
//! cgroup meanwhile, so nothing of it ever runs outside.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::spawn::{
    SpawnError, User, UserSteps, become_user, candidates, clone_and_start, cstring, exec_first,
    pipe, pointers, report_failure,
};
use super::{Container, RuntimeError, complete_env, user};

/// What to run in a container.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// `NAME=value` pairs: the container's, with the request's over them.
    pub env: Vec<String>,
    /// Working directory inside the container; `/` when empty.
    pub cwd: String,
    /// `USER[:GROUP]` as the image's USER is written; root when empty.
    pub user: String,
    /// On a new terminal (`-t`), or on pipes.
    pub tty: bool,
}

/// A started process and the ends of its standard streams that are the caller's: the
/// terminal's master with `tty`, else stdin's write end, stdout's and stderr's read ends.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: i32,
    pub stdio: Vec<OwnedFd>,
}

/// The child's steps, in order; their index travels over the error pipe.
const STEPS: &[&str] = &[
    "wait for the parent",
    "enter the container's namespaces",
    "start a session on the terminal",
    "connect stdin, stdout and stderr",
    "set the user's groups",
    "set the group id",
    "set the user id",
    "enter the working directory",
    "run the command",
    "drop capabilities",
];
const S_SETNS: u32 = 1;
const S_SESSION: u32 = 2;
const S_STDIO: u32 = 3;
const S_GROUPS: u32 = 4;
const S_GID: u32 = 5;
const S_UID: u32 = 6;
/// [`become_user`]'s steps as this table numbers them.
const USER_STEPS: UserSteps = UserSteps {
    caps: S_CAPS,
    groups: S_GROUPS,
    gid: S_GID,
    uid: S_UID,
    cwd: S_CWD,
};
const S_CWD: u32 = 7;
const S_EXEC: u32 = 8;
const S_CAPS: u32 = 9;

/// The namespaces entered by the child, the mount namespace last (after it, the host's
/// `/proc` is out of reach; the descriptors are open already).
const CHILD_NAMESPACES: &[&str] = &["ipc", "uts", "net", "mnt"];

/// Everything the child touches, prepared before the clone.
struct Prepared {
    namespaces: Vec<OwnedFd>,
    /// The descriptors that become 0, 1 and 2.
    stdio: [i32; 3],
    tty: bool,
    user: User,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// Starts `config` in `container`. Returns once the command runs, or with the step that failed
/// (a command that does not exist is `run the command: No such file or directory`).
pub fn exec(container: &Container, config: &ExecConfig) -> Result<ExecProcess, RuntimeError> {
    let command = config.args.first().cloned().unwrap_or_default();
    let spawn_error = |source: SpawnError| RuntimeError::Spawn {
        command: command.clone(),
        source,
    };
    if config.args.is_empty() {
        return Err(spawn_error(SpawnError::Invalid("no command to run".into())));
    }
    let proc_dir = PathBuf::from(format!("/proc/{}", container.pid));
    let io = |what: &'static str, path: PathBuf| {
        move |source: std::io::Error| RuntimeError::Io { what, path, source }
    };
    // The user as the container's own files name it now (a user added inside counts).
    let user = user::resolve(&config.user, &proc_dir.join("root")).map_err(RuntimeError::User)?;
    let groups = user.settable_groups();
    let mut env = complete_env(config.env.clone(), &user.home);
    if config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let open_ns = |name: &str| {
        let path = proc_dir.join("ns").join(name);
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(io("open the namespace", path))
    };
    let pid_ns = open_ns("pid")?;
    let namespaces = CHILD_NAMESPACES
        .iter()
        .map(|name| open_ns(name))
        .collect::<Result<Vec<_>, _>>()?;
    // (the child's 0, 1, 2) and (the caller's ends).
    let (child_stdio, ours): (Vec<OwnedFd>, Vec<OwnedFd>) = if config.tty {
        let (master, slave) =
            open_terminal(&proc_dir.join("root"), user.uid, user.gid).map_err(spawn_error)?;
        (vec![slave], vec![master])
    } else {
        let (in_read, in_write) = pipe().map_err(spawn_error)?;
        let (out_read, out_write) = pipe().map_err(spawn_error)?;
        let (err_read, err_write) = pipe().map_err(spawn_error)?;
        (
            vec![in_read, out_write, err_write],
            vec![in_write, out_read, err_read],
        )
    };
    let stdio_fd = |i: usize| child_stdio[i.min(child_stdio.len() - 1)].as_raw_fd();
    let prepared = Prepared {
        namespaces,
        stdio: [stdio_fd(0), stdio_fd(1), stdio_fd(2)],
        tty: config.tty,
        user: User {
            uid: user.uid,
            gid: user.gid,
            groups,
            last_capability: super::capabilities::last_capability(),
            cwd: cstring(if config.cwd.is_empty() {
                "/"
            } else {
                config.cwd.as_str()
            })
            .map_err(spawn_error)?,
        },
        candidates: candidates(&command, &env).map_err(spawn_error)?,
        argv: config
            .args
            .iter()
            .map(|a| cstring(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(spawn_error)?,
        envp: env
            .iter()
            .map(|e| cstring(e.as_str()))
            .collect::<Result<_, _>>()
            .map_err(spawn_error)?,
    };
    // On a thread of its own that ends with it: a thread that has entered a pid namespace for
    // its children cannot always go back (a user's daemon lacks the right in the host's).
    let pid = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let argv = pointers(&prepared.argv);
                let envp = pointers(&prepared.envp);
                nix::sched::setns(&pid_ns, CloneFlags::CLONE_NEWPID).map_err(|e| {
                    SpawnError::Parent {
                        what: "enter the container's pid namespace",
                        source: e.into(),
                    }
                })?;
                clone_and_start(
                    CloneFlags::empty(),
                    STEPS,
                    "clone the process",
                    // SAFETY: this runs in the cloned child, where `prepared`, `argv` and
                    // `envp` are the child's own copies of the parent's prepared data.
                    |report| unsafe { child(&prepared, &argv, &envp, report) },
                    |pid| {
                        container.cgroup.add(pid).map_err(|e| SpawnError::Parent {
                            what: "put the process into the container's cgroup",
                            source: std::io::Error::other(e.to_string()),
                        })
                    },
                )
            })
            .join()
            .unwrap_or_else(|_| {
                Err(SpawnError::Parent {
                    what: "start the process",
                    source: std::io::Error::other("the starting thread panicked"),
                })
            })
    })
    .map_err(spawn_error)?;
    // The child's ends close here: the caller sees end of file (or EIO on the terminal) when
    // the process and whatever it started have closed theirs.
    drop(child_stdio);
    Ok(ExecProcess { pid, stdio: ours })
}

/// Waits for an exec'd process (blocking) and answers its exit code: 128 + the signal when a
/// signal ended it, as shells report.
pub fn wait(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            _ => return 255,
        }
    }
}

/// A new terminal of the container's own devpts instance (so the process finds it as
/// `/dev/pts/N`, as `tty` and `ssh`-like programs expect), its end given to `uid`:`gid` as runc
/// gives it: the master and the end for the process. The container's `dev/pts/ptmx` is looked
/// up with every symlink resolved inside its root, so the container cannot point it elsewhere.
fn open_terminal(
    root: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
    let failed = |what: &'static str| {
        move |e: nix::errno::Errno| SpawnError::Parent {
            what,
            source: e.into(),
        }
    };
    let dir = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(failed("open the container's root"))?;
    let master = openat2(
        &dir,
        "dev/pts/ptmx",
        OpenHow::new()
            .flags(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    )
    .map_err(failed("open the container's /dev/pts/ptmx"))?;
    // SAFETY: TIOCSPTLCK reads an int the call borrows; TIOCGPTPEER opens the terminal's
    // other end and returns a new descriptor, owned at once; both act on the master only.
    let slave = unsafe {
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(failed("unlock the terminal")(nix::errno::Errno::last()));
        }
        let raw = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if raw < 0 {
            return Err(failed("open the terminal's end")(nix::errno::Errno::last()));
        }
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw)
    };
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(failed("give the terminal to the process's user"))?;
    Ok((master, slave))
}

/// The child between clone and exec. Only raw system calls; returns the exit status on failure
/// after reporting the step and errno on `report`.
///
/// # Safety
/// Must run in the freshly cloned child, with `p`'s pointers valid (they are: the child has a
/// copy of the parent's memory).
unsafe fn child(
    p: &Prepared,
    argv: &[*const c_char],
    envp: &[*const c_char],
    report: i32,
) -> isize {
    // SAFETY: for the whole body: every call below is a plain system call on descriptors and
    // pointers into `p`, `argv` and `envp` (NUL-terminated C strings and null-terminated
    // arrays) prepared by the parent and copied into this process by clone.
    unsafe {
        let fail = |step: u32| -> isize { report_failure(report, step) };
        for ns in &p.namespaces {
            if libc::setns(ns.as_raw_fd(), 0) != 0 {
                return fail(S_SETNS);
            }
        }
        if p.tty && (libc::setsid() < 0 || libc::ioctl(p.stdio[0], libc::TIOCSCTTY, 0) != 0) {
            return fail(S_SESSION);
        }
        for (target, fd) in p.stdio.iter().enumerate() {
            if libc::dup2(*fd, target as i32) < 0 {
                return fail(S_STDIO);
            }
        }
        if let Err(step) = become_user(&p.user, &USER_STEPS) {
            return fail(step);
        }
        exec_first(&p.candidates, argv, envp);
        fail(S_EXEC)
    }
}
