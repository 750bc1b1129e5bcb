//! Starting a container's first process: `clone(2)` into new pid, mount, uts, ipc and network
//! namespaces, then, in the child, mount the overlay root filesystem, /proc, /sys and /dev,
//! `pivot_root` into it, drop to the image's user and `execve` the command.
//!
//! The child is a copy of a multi-threaded daemon, so between clone and exec it may only make
//! raw system calls: no allocation, no locks, no formatting, and no libc wrapper that
//! coordinates threads (set*id go through `syscall` directly). Everything it needs (paths, argv,
//! envp) is prepared as C strings before the clone, and a failure is reported to the parent as
//! two integers (the step and errno) on a close-on-exec pipe, which closes by itself when
//! `execve` succeeds.

use std::ffi::{CString, c_char};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

/// What to start, fully resolved by the caller.
#[derive(Debug)]
pub struct ProcessSpec {
    /// An empty directory the overlay is mounted on, inside the new mount namespace only.
    pub rootfs: PathBuf,
    /// Read-only layers, topmost first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer and overlayfs' work directory (same filesystem).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// argv; `args[0]` is a path or a name looked up in the `PATH` of `env`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; `None` leaves the ones the process has (where they cannot be set).
    pub groups: Option<Vec<u32>>,
    pub hostname: String,
    /// Files and directories of the host mounted into the root filesystem.
    pub mounts: Vec<BindMount>,
    /// Memory filesystems mounted into it, after the bind mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Where the process's stdout and stderr go (unless it has a terminal).
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Where the process reads its stdin from (unless it has a terminal); `/dev/null` when
    /// none (`run -i` gives a pipe's read end).
    pub stdin: Option<OwnedFd>,
    /// A terminal for the process (`run -t`): the child opens one in the container's own
    /// devpts, makes it its controlling terminal and stdin, stdout and stderr, and sends its
    /// master back over this socket (SCM_RIGHTS).
    pub terminal: Option<OwnedFd>,
}

/// A file or directory of the host mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Canonical: a symlink anywhere on it fails the mount (it would mean the path was
    /// changed after it was checked).
    pub source: PathBuf,
    /// Where, relative to the container's root (`etc/hosts`), resolved inside it: its
    /// symlinks cannot lead out. Missing directories on the way are made, as is the mount
    /// point (an empty file or directory, as the source is).
    pub target: String,
    pub read_only: bool,
    /// Left out, rather than failing the start, where the image cannot hold the target (a
    /// path through a file, a dangling link): for the network's /etc files.
    pub optional: bool,
}

/// A memory filesystem mounted into a container (`RUN --mount=type=tmpfs`): empty at the start,
/// gone with the container, never in its writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Where, relative to the container's root, resolved inside it as a bind mount's target
    /// is; missing directories on the way are made, the mount point too.
    pub target: String,
    /// Its size limit in bytes; none: the kernel's default (half the RAM).
    pub size: Option<u64>,
}

/// Why a container process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The spec cannot be turned into system-call arguments.
    #[error("invalid container process: {0}")]
    Invalid(String),
    /// A system call in the parent failed.
    #[error("{what}: {source}")]
    Parent {
        what: &'static str,
        source: io::Error,
    },
    /// A step in the child failed before the command ran.
    #[error("{step}: {source}")]
    Child {
        step: &'static str,
        source: io::Error,
    },
}

/// The child's steps, in order; their index travels over the error pipe.
const STEPS: &[&str] = &[
    "wait for the parent",
    "make mounts private",
    "mount the overlay root filesystem",
    "mount /proc",
    "mount /sys",
    "mount /dev",
    "populate /dev",
    "mount the volumes and the network's files",
    "set the hostname",
    "pivot_root into the container",
    "set the user's groups",
    "set the group id",
    "set the user id",
    "enter the working directory",
    "connect stdin, stdout and stderr",
    "run the command",
    "drop capabilities",
    "open the container's terminal",
];
const S_PRIVATE: u32 = 1;
const S_OVERLAY: u32 = 2;
const S_PROC: u32 = 3;
const S_SYS: u32 = 4;
const S_DEV: u32 = 5;
const S_DEVNODES: u32 = 6;
const S_BINDS: u32 = 7;
const S_HOSTNAME: u32 = 8;
const S_PIVOT: u32 = 9;
const S_GROUPS: u32 = 10;
const S_GID: u32 = 11;
const S_UID: u32 = 12;
/// [`become_user`]'s steps as this table numbers them.
const USER_STEPS: UserSteps = UserSteps {
    caps: S_CAPS,
    groups: S_GROUPS,
    gid: S_GID,
    uid: S_UID,
    cwd: S_CWD,
};
const S_CWD: u32 = 13;
const S_STDIO: u32 = 14;
const S_EXEC: u32 = 15;
const S_CAPS: u32 = 16;
const S_TERMINAL: u32 = 17;

/// Device nodes bind-mounted from the host into the container's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Symlinks every /dev has: (link, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

pub(super) fn cstring(text: impl Into<Vec<u8>>) -> Result<CString, SpawnError> {
    CString::new(text)
        .map_err(|_| SpawnError::Invalid("a path or argument contains a NUL byte".into()))
}

fn cpath(path: &Path) -> Result<CString, SpawnError> {
    cstring(path.as_os_str().as_encoded_bytes().to_vec())
}

/// Everything the child touches, prepared before the clone.
struct Prepared {
    rootfs: CString,
    overlay_options: CString,
    proc_dir: CString,
    sys_dir: CString,
    dev_dir: CString,
    pts_dir: CString,
    shm_dir: CString,
    device_targets: Vec<(CString, CString)>,
    dev_links: Vec<(CString, CString)>,
    mounts: Vec<PreparedMount>,
    tmpfs: Vec<PreparedTmpfs>,
    hostname: Vec<u8>,
    /// The working directory and each directory above it, outermost first: made if missing,
    /// as runc makes a container's cwd.
    cwd_dirs: Vec<CString>,
    dev_null: CString,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    user: User,
    stdout: i32,
    stderr: i32,
    /// The socket the terminal's master goes back on; -1: no terminal.
    terminal: i32,
    /// The stdin pipe's read end; -1: /dev/null.
    stdin: i32,
    ptmx: CString,
    // Literals, as C strings.
    s_overlay: CString,
    s_proc: CString,
    s_sysfs: CString,
    s_tmpfs: CString,
    s_devpts: CString,
    s_dev_opts: CString,
    s_pts_opts: CString,
    s_shm_opts: CString,
    s_root: CString,
    s_dot: CString,
}

impl Prepared {
    fn new(spec: &ProcessSpec) -> Result<Prepared, SpawnError> {
        if spec.args.is_empty() {
            return Err(SpawnError::Invalid("no command to run".into()));
        }
        let layer = |p: &PathBuf| {
            let text = p.to_string_lossy();
            if text.contains([',', ':']) {
                Err(SpawnError::Invalid(format!(
                    "overlay layer paths may not contain `,` or `:`: {text}"
                )))
            } else {
                Ok(text.into_owned())
            }
        };
        let lower = spec
            .lower
            .iter()
            .map(layer)
            .collect::<Result<Vec<_>, _>>()?
            .join(":");
        let mut options = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            layer(&spec.upper)?,
            layer(&spec.work)?
        );
        // In a user namespace overlayfs may not write its `trusted.` attributes: without
        // `userxattr` (its `user.overlay.` ones, as rootless Podman mounts) it cannot mark a
        // directory it made, and renaming any directory fails with EXDEV, which breaks dpkg
        // (`apt-get install` in a rootless build). Layers read either kind of mark.
        if super::ids::in_user_namespace() {
            options.push_str(",userxattr");
        }
        let root = &spec.rootfs;
        let candidates = candidates(&spec.args[0], &spec.env)?;
        Ok(Prepared {
            rootfs: cpath(root)?,
            overlay_options: cstring(options)?,
            proc_dir: cpath(&root.join("proc"))?,
            sys_dir: cpath(&root.join("sys"))?,
            dev_dir: cpath(&root.join("dev"))?,
            pts_dir: cpath(&root.join("dev/pts"))?,
            shm_dir: cpath(&root.join("dev/shm"))?,
            device_targets: DEVICES
                .iter()
                .map(|d| {
                    Ok((
                        cstring(format!("/dev/{d}"))?,
                        cpath(&root.join("dev").join(d))?,
                    ))
                })
                .collect::<Result<_, SpawnError>>()?,
            dev_links: DEV_LINKS
                .iter()
                .map(|(link, target)| Ok((cpath(&root.join("dev").join(link))?, cstring(*target)?)))
                .collect::<Result<_, SpawnError>>()?,
            mounts: spec
                .mounts
                .iter()
                .map(PreparedMount::new)
                .collect::<Result<_, _>>()?,
            tmpfs: spec
                .tmpfs
                .iter()
                .map(PreparedTmpfs::new)
                .collect::<Result<_, _>>()?,
            hostname: spec.hostname.as_bytes().to_vec(),
            cwd_dirs: Path::new(&spec.cwd)
                .ancestors()
                .filter(|dir| dir.parent().is_some())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(cpath)
                .collect::<Result<_, SpawnError>>()?,
            dev_null: cstring("/dev/null")?,
            candidates,
            argv: spec
                .args
                .iter()
                .map(|a| cstring(a.as_str()))
                .collect::<Result<_, _>>()?,
            envp: spec
                .env
                .iter()
                .map(|e| cstring(e.as_str()))
                .collect::<Result<_, _>>()?,
            user: User {
                uid: spec.uid,
                gid: spec.gid,
                groups: spec.groups.clone(),
                last_capability: super::capabilities::last_capability(),
                cwd: cstring(spec.cwd.as_str())?,
            },
            stdout: spec.stdout.as_raw_fd(),
            stderr: spec.stderr.as_raw_fd(),
            terminal: spec.terminal.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            stdin: spec.stdin.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            ptmx: cstring("/dev/pts/ptmx")?,
            s_overlay: cstring("overlay")?,
            s_proc: cstring("proc")?,
            s_sysfs: cstring("sysfs")?,
            s_tmpfs: cstring("tmpfs")?,
            s_devpts: cstring("devpts")?,
            s_dev_opts: cstring("mode=755,size=65536k")?,
            s_pts_opts: cstring("newinstance,ptmxmode=0666,mode=0620")?,
            s_shm_opts: cstring("mode=1777,size=65536k")?,
            s_root: cstring("/")?,
            s_dot: cstring(".")?,
        })
    }
}

/// The paths `execve` tries for `command`, as execvp would: the command itself when it has a
/// `/`, else each directory of the `PATH` in `env`.
pub(super) fn candidates(command: &str, env: &[String]) -> Result<Vec<CString>, SpawnError> {
    if command.contains('/') {
        return Ok(vec![cstring(command)?]);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| cstring(format!("{d}/{command}")))
        .collect()
}

/// Null-terminated pointer arrays for execve, built before the clone.
pub(super) fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
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
    // SAFETY: for the whole body: every call below is a plain system call on pointers into
    // `p`, `argv` and `envp`, which are NUL-terminated C strings and null-terminated arrays
    // prepared by the parent and copied into this process by clone.
    unsafe {
        let fail = |step: u32| -> isize { report_failure(report, step) };
        let null = std::ptr::null::<c_char>();
        if libc::mount(
            null,
            p.s_root.as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return fail(S_PRIVATE);
        }
        if libc::mount(
            p.s_overlay.as_ptr(),
            p.rootfs.as_ptr(),
            p.s_overlay.as_ptr(),
            0,
            p.overlay_options.as_ptr().cast(),
        ) != 0
        {
            return fail(S_OVERLAY);
        }
        for dir in [&p.proc_dir, &p.sys_dir, &p.dev_dir] {
            libc::mkdir(dir.as_ptr(), 0o755);
        }
        let hardened = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if libc::mount(
            p.s_proc.as_ptr(),
            p.proc_dir.as_ptr(),
            p.s_proc.as_ptr(),
            hardened,
            std::ptr::null(),
        ) != 0
        {
            return fail(S_PROC);
        }
        if libc::mount(
            p.s_sysfs.as_ptr(),
            p.sys_dir.as_ptr(),
            p.s_sysfs.as_ptr(),
            hardened | libc::MS_RDONLY,
            std::ptr::null(),
        ) != 0
        {
            return fail(S_SYS);
        }
        if libc::mount(
            p.s_tmpfs.as_ptr(),
            p.dev_dir.as_ptr(),
            p.s_tmpfs.as_ptr(),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            p.s_dev_opts.as_ptr().cast(),
        ) != 0
        {
            return fail(S_DEV);
        }
        libc::mkdir(p.pts_dir.as_ptr(), 0o755);
        libc::mkdir(p.shm_dir.as_ptr(), 0o1777);
        if libc::mount(
            p.s_devpts.as_ptr(),
            p.pts_dir.as_ptr(),
            p.s_devpts.as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            p.s_pts_opts.as_ptr().cast(),
        ) != 0
        {
            return fail(S_DEVNODES);
        }
        if libc::mount(
            p.s_tmpfs.as_ptr(),
            p.shm_dir.as_ptr(),
            p.s_tmpfs.as_ptr(),
            hardened,
            p.s_shm_opts.as_ptr().cast(),
        ) != 0
        {
            return fail(S_DEVNODES);
        }
        for (source, target) in &p.device_targets {
            if bind_onto_file(source, target) != Bound::Yes {
                return fail(S_DEVNODES);
            }
        }
        for (link, target) in &p.dev_links {
            if libc::symlink(target.as_ptr(), link.as_ptr()) != 0 {
                return fail(S_DEVNODES);
            }
        }
        if !p.mounts.is_empty() || !p.tmpfs.is_empty() {
            let root = libc::open(
                p.rootfs.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if root < 0 {
                return fail(S_BINDS);
            }
            for mount in &p.mounts {
                if !bind_mount(root, mount) && !mount.optional {
                    return fail(S_BINDS);
                }
            }
            for mount in &p.tmpfs {
                if !tmpfs_mount(root, mount, &p.s_tmpfs) {
                    return fail(S_BINDS);
                }
            }
            libc::close(root);
        }
        if libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len()) != 0 {
            return fail(S_HOSTNAME);
        }
        // pivot_root(".", "."): the old root ends up stacked on the new one and is detached
        // right away, so nothing of the host stays reachable.
        if libc::chdir(p.rootfs.as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, p.s_dot.as_ptr(), p.s_dot.as_ptr()) != 0
            || libc::umount2(p.s_dot.as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(p.s_root.as_ptr()) != 0
        {
            return fail(S_PIVOT);
        }
        bring_loopback_up();
        // A missing working directory is made by root, as runc does (`docker run -w /new`);
        // whatever stands in the way shows when it is entered below.
        for dir in &p.cwd_dirs {
            libc::mkdir(dir.as_ptr(), 0o755);
        }
        // The terminal, while the process may still give it to its user.
        if p.terminal >= 0 && !open_terminal(p) {
            return fail(S_TERMINAL);
        }
        if let Err(step) = become_user(&p.user, &USER_STEPS) {
            return fail(step);
        }
        if p.terminal < 0 {
            let stdin = if p.stdin >= 0 {
                p.stdin
            } else {
                libc::open(p.dev_null.as_ptr(), libc::O_RDONLY)
            };
            if stdin < 0
                || libc::dup2(stdin, 0) < 0
                || libc::dup2(p.stdout, 1) < 0
                || libc::dup2(p.stderr, 2) < 0
            {
                return fail(S_STDIO);
            }
        }
        exec_first(&p.candidates, argv, envp);
        fail(S_EXEC)
    }
}

/// Reports a failed step on `report` (`[step, errno]` as two i32s) and ends the child.
///
/// # Safety
/// In a child between clone and exec.
pub(super) unsafe fn report_failure(report: i32, step: u32) -> ! {
    // SAFETY: reads errno, writes eight bytes of a local array, exits.
    unsafe {
        let errno = *libc::__errno_location();
        let message: [i32; 2] = [step as i32, errno];
        libc::write(report, message.as_ptr().cast(), 8);
        libc::_exit(127)
    }
}

/// Who a process becomes before it execs (a container's first process, an exec'd one),
/// prepared before the clone.
pub(super) struct User {
    /// The kernel's highest capability number, for dropping the ones containers do not get.
    pub last_capability: u32,
    /// `None`: the ones it has (where they cannot be set).
    pub groups: Option<Vec<libc::gid_t>>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: CString,
}

/// The caller's numbers of [`become_user`]'s steps, for its report.
pub(super) struct UserSteps {
    pub caps: u32,
    pub groups: u32,
    pub gid: u32,
    pub uid: u32,
    pub cwd: u32,
}

/// Drops the capabilities containers do not get, takes the user's groups and ids, enters the
/// working directory; the step that failed. Raw system calls, not glibc's: those broadcast the
/// change to every thread glibc believes the process has (the parent's, copied by clone), and
/// can wait forever for threads that do not exist in this child.
///
/// # Safety
/// In a child between clone and exec.
pub(super) unsafe fn become_user(user: &User, steps: &UserSteps) -> Result<(), u32> {
    // SAFETY: system calls on integers and on the slices and C string the caller keeps alive.
    unsafe {
        if !super::capabilities::drop_bounding_set(user.last_capability) {
            return Err(steps.caps);
        }
        if let Some(groups) = &user.groups
            && libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
        {
            return Err(steps.groups);
        }
        if libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) != 0 {
            return Err(steps.gid);
        }
        if libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) != 0 {
            return Err(steps.uid);
        }
        if libc::chdir(user.cwd.as_ptr()) != 0 {
            return Err(steps.cwd);
        }
    }
    Ok(())
}

/// Execs the first of `candidates` that runs, as execvp does; returns only when none did, with
/// errno the most telling failure (a candidate that exists but cannot run says more than the
/// ones that do not exist). Nothing but 0, 1 and 2 reaches the program: whatever the daemon
/// inherited or opened without close-on-exec is closed at exec (a report pipe stays usable
/// until then).
///
/// # Safety
/// In a child between clone and exec; `argv` and `envp` null-terminated arrays of C strings.
pub(super) unsafe fn exec_first(
    candidates: &[CString],
    argv: &[*const c_char],
    envp: &[*const c_char],
) {
    // SAFETY: close_range marks descriptors; execve reads the caller's arrays.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut telling = libc::ENOENT;
        for candidate in candidates {
            libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let errno = *libc::__errno_location();
            if errno != libc::ENOENT && errno != libc::ENOTDIR {
                telling = errno;
            }
        }
        *libc::__errno_location() = telling;
    }
}

#[derive(PartialEq, Eq)]
enum Bound {
    Yes,
    /// No file could be made at the target.
    NoTarget,
    MountFailed,
}

/// Bind mounts file `source` onto `target`, made (empty) first if it does not exist. Raw system
/// calls only (it runs in the child between clone and exec).
///
/// # Safety
/// `source` and `target` are valid C strings.
unsafe fn bind_onto_file(source: &CString, target: &CString) -> Bound {
    // SAFETY: open, close and mount on NUL-terminated strings the caller keeps alive.
    unsafe {
        // Read-only: an existing file of the image is not copied up for nothing.
        let fd = libc::open(
            target.as_ptr(),
            libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Bound::NoTarget;
        }
        libc::close(fd);
        let mounted = libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        );
        if mounted == 0 {
            Bound::Yes
        } else {
            Bound::MountFailed
        }
    }
}

/// A [`BindMount`] as the child uses it, every path inside the container relative to its
/// root. The child opens the source itself (a descriptor the parent opened belongs to the
/// parent's mount namespace, which a bind mount in the child's may not take from), refusing
/// any symlink on the way: the path was checked, canonical, for whoever asked.
struct PreparedMount {
    source: CString,
    is_dir: bool,
    /// Each directory on the way to the target, as (its parent, its name).
    dirs: Vec<(CString, CString)>,
    target: CString,
    read_only: bool,
    /// The source mount's flags a bind mount of it must keep (a user namespace may not clear
    /// them), for the read-only remount.
    locked: libc::c_ulong,
    optional: bool,
}

impl PreparedMount {
    fn new(mount: &BindMount) -> Result<PreparedMount, SpawnError> {
        let meta = std::fs::metadata(&mount.source)
            .map_err(|e| SpawnError::Invalid(format!("{}: {e}", mount.source.display())))?;
        let stat = nix::sys::statvfs::statvfs(&mount.source).map_err(|e| SpawnError::Parent {
            what: "read the mount flags of a volume",
            source: e.into(),
        })?;
        use nix::sys::statvfs::FsFlags;
        let mut locked = 0;
        for (flag, ms) in [
            (FsFlags::ST_NOSUID, libc::MS_NOSUID),
            (FsFlags::ST_NODEV, libc::MS_NODEV),
            (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
            (FsFlags::ST_NOATIME, libc::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if stat.flags().contains(flag) {
                locked |= ms;
            }
        }
        let is_dir = meta.is_dir();
        let (dirs, target) = mount_point(&mount.target, is_dir)?;
        Ok(PreparedMount {
            source: cpath(&mount.source)?,
            is_dir,
            dirs,
            target,
            read_only: mount.read_only,
            locked,
            optional: mount.optional,
        })
    }
}

/// The directories to make on the way to a mount point at `target` (relative to the root), as
/// (parent, name), the point itself among them when it is a directory; and the point's path.
#[allow(clippy::type_complexity)]
fn mount_point(
    target: &str,
    is_dir: bool,
) -> Result<(Vec<(CString, CString)>, CString), SpawnError> {
    let parts: Vec<&str> = target
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(SpawnError::Invalid(format!(
            "cannot mount over `/{target}`"
        )));
    }
    let made = if is_dir { parts.len() } else { parts.len() - 1 };
    let dirs = (0..made)
        .map(|i| {
            let parent = if i == 0 {
                ".".to_owned()
            } else {
                parts[..i].join("/")
            };
            Ok((cstring(parent)?, cstring(parts[i])?))
        })
        .collect::<Result<_, SpawnError>>()?;
    Ok((dirs, cstring(parts.join("/"))?))
}

/// A [`TmpfsMount`] as the child uses it.
struct PreparedTmpfs {
    dirs: Vec<(CString, CString)>,
    target: CString,
    /// tmpfs's options: `mode=755` and the size, if any.
    data: CString,
}

impl PreparedTmpfs {
    fn new(mount: &TmpfsMount) -> Result<PreparedTmpfs, SpawnError> {
        let (dirs, target) = mount_point(&mount.target, true)?;
        let data = match mount.size {
            Some(size) => format!("mode=755,size={size}"),
            None => "mode=755".to_owned(),
        };
        Ok(PreparedTmpfs {
            dirs,
            target,
            data: cstring(data)?,
        })
    }
}

/// Makes each directory of `dirs` ((parent, name), looked up inside the root open at `root`)
/// that is missing; false when a parent cannot be opened. Raw system calls only (it runs in
/// the child).
///
/// # Safety
/// `root` is an open directory; the strings are valid.
unsafe fn make_dirs(root: i32, dirs: &[(CString, CString)]) -> bool {
    // SAFETY: system calls on a descriptor opened and closed here and on prepared C strings.
    unsafe {
        for (parent, name) in dirs {
            let dir = open_in_root(
                root,
                parent,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            );
            if dir < 0 {
                return false;
            }
            libc::mkdirat(dir, name.as_ptr(), 0o755);
            libc::close(dir);
        }
        true
    }
}

/// Mounts a tmpfs at `m`'s target in the root filesystem open at `root`, the directories on the
/// way made, all looked up inside the root, the mount made through `/proc/self/fd`. Raw system
/// calls only (it runs in the child).
///
/// # Safety
/// `root` is an open directory; `m`'s strings and `tmpfs` are valid.
unsafe fn tmpfs_mount(root: i32, m: &PreparedTmpfs, tmpfs: &CString) -> bool {
    // SAFETY: for the whole body: system calls on descriptors this function opens and closes
    // and on C strings prepared by the parent or built on the stack.
    unsafe {
        if !make_dirs(root, &m.dirs) {
            return false;
        }
        let target = open_in_root(
            root,
            &m.target,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        );
        if target < 0 {
            return false;
        }
        let mut to = [0u8; 32];
        let mounted = libc::mount(
            tmpfs.as_ptr(),
            fd_path(target, &mut to),
            tmpfs.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            m.data.as_ptr().cast(),
        ) == 0;
        libc::close(target);
        mounted
    }
}

/// `openat2(2)` of `path` under `root` with every symlink resolved inside it (raw system call;
/// runs in the child).
///
/// # Safety
/// `path` is a valid C string.
unsafe fn open_in_root(root: i32, path: &CString, flags: i32, mode: u32) -> i32 {
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the caller's promise.
    unsafe { openat2(root, path, flags, mode, resolve) }
}

/// `openat2(2)`, a raw system call (it runs in the child).
///
/// # Safety
/// `path` is a valid C string.
unsafe fn openat2(dir: i32, path: &CString, flags: i32, mode: u32, resolve: u64) -> i32 {
    // SAFETY: open_how is plain data; an all-zero one is valid before it is filled.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // SAFETY: openat2 reads `how` (its size given) and `path`, both alive for the call.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how,
            std::mem::size_of::<libc::open_how>(),
        ) as i32
    }
}

/// `/proc/self/fd/N` in `buf`, NUL-terminated, without allocating (it runs in the child).
fn fd_path(fd: i32, buf: &mut [u8; 32]) -> *const c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 11];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

/// Mounts `m` in the root filesystem open at `root`: the directories on the way and the mount
/// point made, all looked up inside the root, the mount made through `/proc/self/fd` so no
/// path is looked up again. Raw system calls only (it runs in the child).
///
/// # Safety
/// `root` is an open directory; `m`'s strings are valid.
unsafe fn bind_mount(root: i32, m: &PreparedMount) -> bool {
    // SAFETY: for the whole body: system calls on descriptors this function opens and closes
    // and on C strings prepared by the parent or built on the stack.
    unsafe {
        if !make_dirs(root, &m.dirs) {
            return false;
        }
        let point_flags = libc::O_PATH | libc::O_CLOEXEC;
        let mut target = open_in_root(root, &m.target, point_flags, 0);
        if target < 0 && !m.is_dir && *libc::__errno_location() == libc::ENOENT {
            let made = open_in_root(
                root,
                &m.target,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if made >= 0 {
                libc::close(made);
            }
            target = open_in_root(root, &m.target, point_flags, 0);
        }
        if target < 0 {
            return false;
        }
        let source = openat2(
            libc::AT_FDCWD,
            &m.source,
            libc::O_PATH | libc::O_CLOEXEC,
            0,
            libc::RESOLVE_NO_SYMLINKS,
        );
        if source < 0 {
            libc::close(target);
            return false;
        }
        let (mut from, mut to) = ([0u8; 32], [0u8; 32]);
        let mounted = libc::mount(
            fd_path(source, &mut from),
            fd_path(target, &mut to),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) == 0;
        libc::close(source);
        libc::close(target);
        if !mounted || !m.read_only {
            return mounted;
        }
        // Opened again, it is the new mount's root, which the remount must name.
        let again = open_in_root(root, &m.target, point_flags, 0);
        if again < 0 {
            return false;
        }
        let remounted = libc::mount(
            std::ptr::null(),
            fd_path(again, &mut to),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | m.locked,
            std::ptr::null(),
        ) == 0;
        libc::close(again);
        remounted
    }
}

/// Opens a terminal in the container's devpts (its root is `/` by now), gives its end to the
/// process's user, sends the master back over `p.terminal`, and makes the end the process's
/// controlling terminal and its stdin, stdout and stderr. Raw system calls only.
///
/// # Safety
/// In the child after pivot_root, with `p`'s strings valid.
unsafe fn open_terminal(p: &Prepared) -> bool {
    // SAFETY: for the whole body: system calls on descriptors this function opens and on
    // buffers on its stack (the message carrying the master).
    unsafe {
        let master = libc::open(
            p.ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return false;
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return false;
        }
        let end = libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if end < 0 || libc::fchown(end, p.user.uid, p.user.gid) != 0 {
            return false;
        }
        // One byte with the master as SCM_RIGHTS.
        let byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_ptr() as *mut libc::c_void,
            iov_len: 1,
        };
        let mut space = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<i32>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<i32>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&raw const master).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            size_of::<i32>(),
        );
        if libc::sendmsg(p.terminal, &msg, libc::MSG_NOSIGNAL) != 1 {
            return false;
        }
        libc::close(master);
        libc::setsid() >= 0
            && libc::ioctl(end, libc::TIOCSCTTY, 0) == 0
            && libc::dup2(end, 0) >= 0
            && libc::dup2(end, 1) >= 0
            && libc::dup2(end, 2) >= 0
    }
}

/// Set `lo` up in the container's new network namespace, so loopback works as in Docker's
/// `--network none`. A failure leaves the container without loopback, nothing worse.
unsafe fn bring_loopback_up() {
    // SAFETY: socket/ioctl/close on a stack-allocated ifreq; no memory is shared.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as c_char;
        req.ifr_name[1] = b'o' as c_char;
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(sock);
    }
}

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::Parent {
        what: "create a pipe",
        source: e.into(),
    })
}

/// Start the process described by `spec` in new namespaces. `before_start` runs in the parent
/// with the child's pid before the child may go on (to put it into its cgroup); an error from
/// it kills the child. Returns the child's pid once the command is running.
pub fn spawn(
    spec: &ProcessSpec,
    before_start: impl FnOnce(i32) -> Result<(), SpawnError>,
) -> Result<i32, SpawnError> {
    let prepared = Prepared::new(spec)?;
    let argv = pointers(&prepared.argv);
    let envp = pointers(&prepared.envp);
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    clone_and_start(
        flags,
        STEPS,
        "clone the container process",
        // SAFETY: this runs in the cloned child, where `prepared`, `argv` and `envp` are the
        // child's own copies of the parent's prepared data.
        |report| unsafe { child(&prepared, &argv, &envp, report) },
        before_start,
    )
}

/// Clones a child (in new namespaces as `flags` say) that waits until `before_start` has acted
/// on its pid, then runs `child` with the write end of a pipe to report a failed step on
/// ([`report_failure`], `steps` naming the steps, step 0 the wait); answers once it has exec'd
/// (the close-on-exec report pipe closed unwritten) or with its report.
///
/// `child` must make only raw system calls before exec or `_exit`: the parent is
/// multi-threaded.
pub(super) fn clone_and_start(
    flags: CloneFlags,
    steps: &'static [&'static str],
    what: &'static str,
    child: impl Fn(i32) -> isize,
    before_start: impl FnOnce(i32) -> Result<(), SpawnError>,
) -> Result<i32, SpawnError> {
    let (go_read, go_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let mut stack = vec![0u8; 256 * 1024];
    let (go_fd, report_fd) = (go_read.as_raw_fd(), report_write.as_raw_fd());
    let callback = Box::new(|| {
        let mut byte = 0u8;
        // SAFETY: a read of one byte into a local, in the child before anything else.
        if unsafe { libc::read(go_fd, (&mut byte as *mut u8).cast(), 1) } != 1 {
            // SAFETY: in the child; step 0 is "wait for the parent" in every table.
            unsafe { report_failure(report_fd, 0) };
        }
        child(report_fd)
    });
    // SAFETY: the child gets its own copy of memory (no CLONE_VM) and a dedicated stack; the
    // callback makes only raw system calls before exec or _exit (the caller's promise).
    let pid = unsafe { nix::sched::clone(callback, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| SpawnError::Parent {
            what,
            source: e.into(),
        })?;
    drop(go_read);
    drop(report_write);
    let kill = || {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    };
    if let Err(e) = before_start(pid.as_raw()) {
        kill();
        return Err(e);
    }
    if nix::unistd::write(&go_write, &[1]).is_err() {
        kill();
        return Err(SpawnError::Parent {
            what: "let the process go on",
            source: io::Error::last_os_error(),
        });
    }
    drop(go_write);
    let mut message = [0u8; 8];
    let mut got = 0;
    while got < message.len() {
        match nix::unistd::read(&report_read, &mut message[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                kill();
                return Err(SpawnError::Parent {
                    what: "read the child's report",
                    source: e.into(),
                });
            }
        }
    }
    if got == 0 {
        return Ok(pid.as_raw()); // exec closed the report pipe: the command runs
    }
    let _ = nix::sys::wait::waitpid(pid, None);
    let step = i32::from_ne_bytes([message[0], message[1], message[2], message[3]]);
    let errno = i32::from_ne_bytes([message[4], message[5], message[6], message[7]]);
    let step = steps
        .get(step as usize)
        .copied()
        .unwrap_or("start the process");
    Err(SpawnError::Child {
        step,
        source: io::Error::from_raw_os_error(errno),
    })
}
