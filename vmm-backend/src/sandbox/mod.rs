//! The sandbox berth-vmm puts itself in, so that a guest that breaks out of a device model finds
//! a process that can do almost nothing (Firecracker's jailer and Cloud Hypervisor's seccomp and
//! landlock are the models). In order, while the process still has one thread:
//!
//! 1. [`jail`]: a mount namespace of its own whose root is an empty tmpfs holding only what
//!    the VM needs, bind-mounted at their own paths (its disks, ISO, kernel, /dev/kvm);
//!    `no_new_privs`.
//! 2. The VM is built as before (files opened, guest loaded), seeing nothing else.
//! 3. [`drop_privileges`]: an unprivileged uid and gid of its own, no supplementary groups
//!    (the system daemon gives each VM its own; a rootless daemon's VMs keep the user's).
//! 4. [`seccomp`]: each thread, as it starts, installs the filter of its role, which allows
//!    only the system calls that role makes; any other stops the VM with a message naming it.
//!
//! Decision: the sandbox is entered by berth-vmm itself after it has loaded (not by berthd
//! before exec), because berth-vmm is a dynamically linked program: its libraries must be
//! reachable at exec, and with everything opened before the privileges go, no file of the VM
//! needs to be readable by the unprivileged uid.

pub mod seccomp;

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why the sandbox could not be entered.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum SandboxError {
    /// cannot {step}: {source}
    Step {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// cannot make {path} reachable in the sandbox: {source}
    Expose {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// cannot install the seccomp filter of the {role} thread: {reason}
    Seccomp { role: &'static str, reason: String },
}

fn step(step: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Step { step, source }
}

fn check(result: libc::c_int, what: &'static str) -> Result<(), SandboxError> {
    if result < 0 {
        Err(SandboxError::Step {
            step: what,
            source: std::io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SandboxError::Expose {
        path: path.to_owned(),
        source: std::io::Error::other("a NUL byte in the path"),
    })
}

/// A file the VM needs, and whether it may write it.
#[derive(Debug, Clone)]
pub struct Exposed {
    pub path: PathBuf,
    pub writable: bool,
}

/// Where the new root is built, in the process's own mount namespace (hidden from the host).
const NEW_ROOT: &str = "/tmp";

/// Moves the process into a mount namespace of its own whose root holds only `exposed` (at
/// their own absolute paths, read-only unless writable) and sets `no_new_privs`. Must be called
/// while the process has one thread: a mount namespace is per thread, and threads started
/// afterwards share this one.
pub fn jail(exposed: &[Exposed]) -> Result<(), SandboxError> {
    // SAFETY: prctl with constant arguments changes only this process's attributes.
    let result = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(result, "set no_new_privs")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| SandboxError::Step {
        step: "create a mount namespace",
        source: e.into(),
    })?;
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: NUL-terminated strings; it changes only this process's new mount namespace.
    let result = unsafe {
        libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check(result, "make the mounts private")?;
    // The sources, opened in the new namespace (a bind mount's source must be one of its
    // mounts) before anything is mounted over their paths (one under /tmp would be hidden).
    let sources: Vec<(OwnedFd, &Exposed)> = exposed
        .iter()
        .map(|e| {
            let path = cstring(&e.path)?;
            // SAFETY: a NUL-terminated path; O_PATH opens nothing for I/O; checked below.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(SandboxError::Expose {
                    path: e.path.clone(),
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: a new descriptor owned by nothing else.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            Ok((fd, e))
        })
        .collect::<Result<_, _>>()?;
    let root = Path::new(NEW_ROOT);
    let root_c = cstring(root)?;
    // SAFETY: NUL-terminated strings; the tmpfs is mounted in this namespace only.
    let result = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            root_c.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0755,size=1m".as_ptr().cast(),
        )
    };
    check(result, "mount the sandbox's root")?;
    for (fd, exposed) in &sources {
        expose(root, fd, exposed)?;
    }
    let old = root.join(".old");
    std::fs::create_dir(&old).map_err(step("make the old root's mount point"))?;
    let old_c = cstring(&old)?;
    // SAFETY: pivot_root with two NUL-terminated paths of this namespace.
    let result =
        unsafe { libc::syscall(libc::SYS_pivot_root, root_c.as_ptr(), old_c.as_ptr()) } as i32;
    check(result, "pivot into the sandbox's root")?;
    std::env::set_current_dir("/").map_err(step("enter the sandbox's root"))?;
    // SAFETY: detaches the host's tree from this namespace; nothing of it stays reachable.
    let result = unsafe { libc::umount2(c"/.old".as_ptr(), libc::MNT_DETACH) };
    check(result, "detach the host's root")?;
    std::fs::remove_dir("/.old").map_err(step("remove the old root's mount point"))?;
    // The root itself read-only: nothing may be created in it any more.
    // SAFETY: a remount of this namespace's root with constant flags.
    let result = unsafe {
        libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REMOUNT
                | libc::MS_BIND
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    check(result, "make the sandbox's root read-only")
}

/// Bind-mounts the file behind `source` at its own path under `root`, read-only unless
/// writable.
fn expose(root: &Path, source: &OwnedFd, exposed: &Exposed) -> Result<(), SandboxError> {
    let failed = |source: std::io::Error| SandboxError::Expose {
        path: exposed.path.clone(),
        source,
    };
    let relative = exposed.path.strip_prefix("/").unwrap_or(&exposed.path);
    let target = root.join(relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    if std::fs::symlink_metadata(&target).is_err() {
        std::fs::File::create(&target).map_err(failed)?;
    }
    let from = cstring(Path::new(&format!("/proc/self/fd/{}", source.as_raw_fd())))?;
    let to = cstring(&target)?;
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: NUL-terminated paths; the bind mount and its remount change only this namespace.
    let bound = unsafe {
        libc::mount(
            from.as_ptr(),
            to.as_ptr(),
            none,
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if bound < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID;
    if !exposed.writable {
        flags |= libc::MS_RDONLY;
    }
    // SAFETY: as above.
    if unsafe { libc::mount(none, to.as_ptr(), none, flags, std::ptr::null()) } < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Becomes `uid`:`gid` with no supplementary groups, for good (every capability goes with the
/// root uid). glibc's calls change every thread's credentials; call it before starting any.
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), SandboxError> {
    // SAFETY: setgroups with an empty list, then setresgid and setresuid with plain values.
    unsafe {
        check(
            libc::setgroups(0, std::ptr::null()),
            "drop the supplementary groups",
        )?;
        check(libc::setresgid(gid, gid, gid), "set the group id")?;
        check(libc::setresuid(uid, uid, uid), "set the user id")?;
    }
    Ok(())
}
