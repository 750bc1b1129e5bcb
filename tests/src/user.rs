//! Users the tests act as: a developer at the desk is not root. Created on first use (the tests
//! run as root in CI), once per machine, under a lock so concurrent test binaries agree.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Subordinate ids given to [`TestUser::desk`], as `usermod --add-subuids` would.
pub const DESK_SUBORDINATE: (u32, u32) = (200_000, 65_536);

/// A normal user of this machine.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the kvm group for the desk user).
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

fn lookup(name: &str) -> Option<nix::unistd::User> {
    nix::unistd::User::from_name(name).ok().flatten()
}

/// Runs `make` under a machine-wide lock, so test binaries running at once make users once.
fn locked<T>(make: impl FnOnce() -> T) -> T {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/berth-e2e-users.lock")
        .expect("the users' lock file");
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .expect("the users' lock");
    make()
}

impl TestUser {
    /// `berth-desk`: a developer at the desk, with subordinate ids (`/etc/subuid`,
    /// `/etc/subgid`) and in the `kvm` group, which owns /dev/kvm as Debian's udev rule makes
    /// it on a workstation. `None` (with a note) when the tests are not root.
    pub fn desk() -> Option<TestUser> {
        Self::make("berth-desk", true)
    }

    /// `berth-plain`: a normal user with neither subordinate ids nor the kvm group.
    pub fn plain() -> Option<TestUser> {
        Self::make("berth-plain", false)
    }

    fn make(name: &'static str, desk: bool) -> Option<TestUser> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: acting as user {name} needs root");
            return None;
        }
        locked(|| {
            if lookup(name).is_none() {
                run(
                    "useradd",
                    &["--create-home", "--user-group", "--shell", "/bin/sh", name],
                );
            }
            // Debian's useradd gives every new user subordinate ids of its own choosing: the
            // desk user gets exactly DESK_SUBORDINATE, the plain one none.
            let (start, count) = DESK_SUBORDINATE;
            let wanted = desk.then(|| format!("{name}:{start}:{count}"));
            for file in ["/etc/subuid", "/etc/subgid"] {
                let now = std::fs::read_to_string(file).unwrap_or_default();
                let mut lines: Vec<String> = now
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{name}:")))
                    .map(str::to_owned)
                    .collect();
                lines.extend(wanted.clone());
                let mut then = lines.join("\n");
                then.push('\n');
                if then != now {
                    std::fs::write(file, then).expect("subordinate id ranges");
                }
            }
            open_tun_to_users();
            if desk {
                give_kvm_to_its_group();
                let member = nix::unistd::Group::from_name("kvm")
                    .ok()
                    .flatten()
                    .is_some_and(|kvm| kvm.mem.iter().any(|m| m == name));
                if !member {
                    run("usermod", &["-aG", "kvm", name]);
                }
            }
        });
        let user = lookup(name)?;
        let mut groups = vec![user.gid.as_raw()];
        if desk && let Ok(Some(kvm)) = nix::unistd::Group::from_name("kvm") {
            groups.push(kvm.gid.as_raw());
        }
        Some(TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
            home: user.dir,
        })
    }

    /// `program` run as this user: its ids and groups, its home, no runtime dir.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command_in(program, None)
    }

    /// [`TestUser::command`], moved into `cgroup` first (while still root: a move into a
    /// delegated subtree from outside it is the delegator's to make).
    pub fn command_in(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        cgroup: Option<&Path>,
    ) -> Command {
        let mut command = Command::new(program);
        if let Some(cgroup) = cgroup {
            let procs =
                std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes())
                    .expect("a cgroup path");
            // SAFETY: open, write and close on a path prepared before the fork ("0" is the
            // writing process itself).
            unsafe {
                command.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                });
            }
        }
        command
            .env("HOME", &self.home)
            .env("USER", self.name)
            .env("LOGNAME", self.name)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_DATA_HOME");
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: between fork and exec only setgroups, setresgid and setresuid are called, on
        // values prepared before the fork; the child has one thread.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// A cgroup v2 subtree delegated to this user, as systemd's `Delegate=yes` makes one for a
    /// user service: its directory and control files are the user's, and the cpu, memory and
    /// pids controllers are enabled above it. `None` where the host's cgroups are not v2 with
    /// those controllers (this build machine; the lab has them).
    pub fn delegated_cgroup(&self) -> Option<PathBuf> {
        let mount = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(mount.join("cgroup.controllers")).ok()?;
        if !["cpu", "memory", "pids"]
            .iter()
            .all(|c| controllers.split_whitespace().any(|a| a == *c))
        {
            return None;
        }
        std::fs::write(mount.join("cgroup.subtree_control"), "+cpu +memory +pids").ok()?;
        let dir = mount.join(format!("{}-delegated", self.name));
        std::fs::create_dir_all(&dir).ok()?;
        for path in [
            dir.clone(),
            dir.join("cgroup.procs"),
            dir.join("cgroup.subtree_control"),
            dir.join("cgroup.threads"),
        ] {
            nix::unistd::chown(
                &path,
                Some(nix::unistd::Uid::from_raw(self.uid)),
                Some(nix::unistd::Gid::from_raw(self.gid)),
            )
            .ok()?;
        }
        Some(dir)
    }

    /// Makes `path` (and everything under it) this user's.
    pub fn own(&self, path: &Path) {
        run(
            "chown",
            &[
                "-R",
                &format!("{}:{}", self.uid, self.gid),
                &path.to_string_lossy(),
            ],
        );
    }
}

/// /dev/net/tun mode 0666, as Debian's udev rule makes it on a workstation (here it is
/// root's only): a user's pasta makes the container's interface with it.
fn open_tun_to_users() {
    if Path::new("/dev/net/tun").exists() {
        run("chmod", &["0666", "/dev/net/tun"]);
    }
}

/// /dev/kvm to group `kvm`, mode 0660, as on a workstation (here it is root's only).
fn give_kvm_to_its_group() {
    if nix::unistd::Group::from_name("kvm")
        .ok()
        .flatten()
        .is_none()
    {
        run("groupadd", &["--system", "kvm"]);
    }
    if Path::new("/dev/kvm").exists() {
        run("chgrp", &["kvm", "/dev/kvm"]);
        run("chmod", &["0660", "/dev/kvm"]);
    }
}
