//! The ids of the user namespace this process is in: whether a container's user exists there,
//! and whether supplementary groups may be set. A daemon run as root sees the host's ids; a
//! rootless one only those mapped for it (`berthd`'s `rootless` module).

use std::fs;

/// Whether `id` lies in one of a `uid_map`/`gid_map` file's ranges (`INSIDE OUTSIDE COUNT`).
pub fn in_map(map: &str, id: u32) -> bool {
    map.lines().any(|line| {
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(inside)), Some(Ok(_)), Some(Ok(count))) => {
                (inside..inside + count).contains(&u64::from(id))
            }
            _ => false,
        }
    })
}

/// Whether user id `id` exists in this process's user namespace.
pub fn uid_mapped(id: u32) -> bool {
    fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| in_map(&map, id))
}

/// Whether group id `id` exists in this process's user namespace.
pub fn gid_mapped(id: u32) -> bool {
    fs::read_to_string("/proc/self/gid_map").is_ok_and(|map| in_map(&map, id))
}

/// Whether a `uid_map` is the initial user namespace's (every id, each to itself).
pub fn is_initial_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Whether this process is in a user namespace other than the host's (a rootless daemon).
/// Read once: a daemon enters its namespace before it starts anything, and never leaves it.
pub fn in_user_namespace() -> bool {
    static INSIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSIDE.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| !is_initial_map(&map))
    })
}

/// Whether supplementary groups may be set here: not in a user namespace whose map was
/// written without privilege (`/proc/self/setgroups` is `deny` there).
pub fn setgroups_allowed() -> bool {
    fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_looked_up_in_the_ranges() {
        let host = "         0          0 4294967295\n";
        assert!(in_map(host, 0) && in_map(host, 65534) && in_map(host, u32::MAX - 1));
        let rootless = "0 1000 1\n1 100000 65536\n";
        assert!(in_map(rootless, 0) && in_map(rootless, 1) && in_map(rootless, 65536));
        assert!(!in_map(rootless, 65537));
        let single = "0 1000 1";
        assert!(in_map(single, 0) && !in_map(single, 1000));
        assert!(!in_map("garbage", 0));
        assert!(is_initial_map(host));
        assert!(!is_initial_map(rootless) && !is_initial_map(single));
        // This process: its own ids at least.
        assert!(uid_mapped(nix::unistd::getuid().as_raw()));
        assert!(gid_mapped(nix::unistd::getgid().as_raw()));
    }
}
