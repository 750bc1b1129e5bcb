//! Rootless mode: a user's daemon (`berthd --user` run by a normal user) enters a user
//! namespace of its own before it does anything else, and is root there over the user's ids,
//! as rootless Podman is. Image layers then unpack with their owners, builds `chown`, and
//! containers start in new namespaces, all without privilege on the host: every id inside maps
//! to one the user owns outside.
//!
//! The map, by preference:
//! - **subordinate ids**: 0 is the user, 1..=N the user's range of `/etc/subuid` and
//!   `/etc/subgid`, written by the setuid `newuidmap`/`newgidmap` (Debian's `uidmap`) on the
//!   daemon's behalf (it cannot map ids it does not own);
//! - **one id**, without them: 0 is the user and nothing else exists, so files in images are
//!   all the user's (root's inside) and an image's USER other than root cannot run.
//!
//! Decision: the whole daemon moves into the namespace (not only the processes that need it):
//! everything that reads or writes ownership (unpacking, build steps, diffs of a container's
//! writable layer) then sees the ids the image means, with no translation anywhere. VMs are
//! started from there too; `/dev/kvm` is opened with the user's own groups, which the
//! namespace keeps.

use std::io::Write;
use std::path::Path;

use berth_api::host::IdMap;

/// Why the daemon could not enter its user namespace.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "cannot create a user namespace: {0} (are unprivileged user namespaces allowed? see /proc/sys/user/max_user_namespaces)"
    )]
    Unshare(nix::Error),
    #[error("cannot start the id-mapping helper: {0}")]
    Helper(nix::Error),
    #[error("cannot write {path}: {source}")]
    Map {
        path: &'static str,
        source: std::io::Error,
    },
}

/// The user's first range in a subordinate-id file (`/etc/subuid`, `/etc/subgid`): lines
/// `NAME:START:COUNT` or `UID:START:COUNT`.
pub fn subordinate_range(file: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    file.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        if owner != name && owner.parse() != Ok(id) {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse().ok()?);
        (count > 0).then_some((start, count))
    })
}

/// Whether `program` is an executable file on the PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        })
    })
}

/// The map this user can have: subordinate ids when both files give a range and the helpers
/// are installed, else one id.
fn wanted_map(uid: u32) -> IdMap {
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let uids = subordinate_range(&read("/etc/subuid"), &name, uid);
    let gids = subordinate_range(&read("/etc/subgid"), &name, uid);
    match (uids, gids) {
        (Some(uids), Some(gids)) if on_path("newuidmap") && on_path("newgidmap") => {
            IdMap::Subordinate { uids, gids }
        }
        (None, _) | (_, None) => IdMap::Single {
            why: format!(
                "no subordinate ids for {name} in /etc/subuid and /etc/subgid (e.g. `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`)"
            ),
        },
        _ => IdMap::Single {
            why: "newuidmap and newgidmap are not installed (Debian: `sudo apt install uidmap`)"
                .into(),
        },
    }
}

/// Enters a new user namespace with the best map this user can have, and becomes root in it.
/// Must run while the process has one thread (before any runtime starts). What it could not
/// have (subordinate ids), it says in the map it returns.
pub fn enter() -> Result<IdMap, RootlessError> {
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let map = enter_user_namespace(uid, gid)?;
    // A mount namespace of the daemon's own, owned by its user namespace: the bind mounts it
    // makes (a container's network namespace for pasta) are allowed there and seen by its
    // children only.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(RootlessError::Unshare)?;
    Ok(map)
}

fn enter_user_namespace(uid: u32, gid: u32) -> Result<IdMap, RootlessError> {
    let wanted = wanted_map(uid);
    if let IdMap::Subordinate { uids, gids } = &wanted {
        match map_with_helpers(*uids, *gids, uid, gid)? {
            Ok(()) => return Ok(wanted),
            Err(why) => {
                // The namespace exists but has no map: write the single one ourselves.
                single_map(uid, gid)?;
                return Ok(IdMap::Single {
                    why: format!("newuidmap/newgidmap failed: {why}"),
                });
            }
        }
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(RootlessError::Unshare)?;
    single_map(uid, gid)?;
    Ok(wanted)
}

/// Unshares the user namespace and has a helper process (outside it) map the user's id to 0
/// and the subordinate ranges to 1.. with newuidmap and newgidmap. `Err` when there is no new
/// namespace; `Ok(Err(why))` when there is one but the helpers could not map it.
fn map_with_helpers(
    uids: (u32, u32),
    gids: (u32, u32),
    uid: u32,
    gid: u32,
) -> Result<Result<(), String>, RootlessError> {
    let (ready_read, ready_write) = nix::unistd::pipe().map_err(RootlessError::Helper)?;
    let (done_read, done_write) = nix::unistd::pipe().map_err(RootlessError::Helper)?;
    let parent = nix::unistd::getpid();
    // SAFETY: the process has one thread here (the caller's contract), so the child may run
    // any code: no lock can be held by a thread that does not exist in it.
    let fork = unsafe { nix::unistd::fork() }.map_err(RootlessError::Helper)?;
    match fork {
        nix::unistd::ForkResult::Child => {
            drop(ready_write);
            drop(done_read);
            // Wait until the parent is in its new namespace, then map it from outside.
            let mut byte = [0u8; 1];
            let ok = nix::unistd::read(&ready_read, &mut byte) == Ok(1)
                && run_map("newuidmap", parent.as_raw(), uid, uids)
                && run_map("newgidmap", parent.as_raw(), gid, gids);
            let _ = nix::unistd::write(&done_write, &[u8::from(ok)]);
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(i32::from(!ok)) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_read);
            drop(done_write);
            let unshared = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
            if unshared.is_ok() {
                let _ = nix::unistd::write(&ready_write, &[1]);
            }
            // Closed without a word, the helper maps nothing and ends.
            drop(ready_write);
            let mut answer = [0u8; 1];
            let mapped = nix::unistd::read(&done_read, &mut answer) == Ok(1) && answer[0] == 1;
            let _ = nix::sys::wait::waitpid(child, None);
            unshared.map_err(RootlessError::Unshare)?;
            Ok(if mapped {
                Ok(())
            } else {
                Err("the helpers refused the map (their message is above)".into())
            })
        }
    }
}

/// `newuidmap PID 0 ID 1 1 START COUNT` (or newgidmap); whether it worked. Its own message, if
/// any, goes to the daemon's stderr.
fn run_map(helper: &str, pid: i32, id: u32, (start, count): (u32, u32)) -> bool {
    std::process::Command::new(helper)
        .arg(pid.to_string())
        .args([
            "0",
            &id.to_string(),
            "1",
            "1",
            &start.to_string(),
            &count.to_string(),
        ])
        .status()
        .is_ok_and(|status| status.success())
}

/// Maps only the user's own ids to 0, as an unprivileged process may for itself (supplementary
/// groups can then not be changed: `setgroups` is denied first, as the kernel requires).
fn single_map(uid: u32, gid: u32) -> Result<(), RootlessError> {
    let write = |path: &'static str, text: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(Path::new(path))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| RootlessError::Map { path, source })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_range_is_found_by_name_or_uid() {
        let file = "# comment\nalice:100000:65536\n1001:165536:65536\nbob:0:0\n";
        assert_eq!(
            subordinate_range(file, "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(
            subordinate_range(file, "carol", 1001),
            Some((165536, 65536))
        );
        assert_eq!(subordinate_range(file, "bob", 1002), None, "an empty range");
        assert_eq!(subordinate_range(file, "dave", 1003), None);
        assert_eq!(subordinate_range("alice:x:1", "alice", 1000), None);
    }
}
