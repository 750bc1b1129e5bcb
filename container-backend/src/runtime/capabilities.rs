//! The capabilities a container's processes may hold: Docker's default set, less `MKNOD`.
//!
//! Root in a container is root over its own namespaces only if it cannot do what reaches
//! past them (mount a filesystem, load a module, trace the host's processes, make a device
//! node of the host's disk). Every capability outside the set is dropped from the bounding set
//! before exec, so a process exec'd as root holds exactly the set and a process of another
//! user none, as under Docker. `MKNOD` is left out because Berth sets no device cgroup that
//! would keep a made node of the host's disk unusable (Docker grants it behind one); Podman's
//! default leaves it out too.

// Capability numbers (linux/capability.h), those the set names and the ones tests look at.
const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_FOWNER: u32 = 3;
const CAP_FSETID: u32 = 4;
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_CHROOT: u32 = 18;
#[cfg(test)]
const CAP_SYS_ADMIN: u32 = 21;
#[cfg(test)]
const CAP_MKNOD: u32 = 27;
const CAP_AUDIT_WRITE: u32 = 29;
const CAP_SETFCAP: u32 = 31;

/// Docker's default capabilities without `MKNOD`, as a mask of capability numbers.
pub const CONTAINER_CAPABILITIES: u64 = bit(CAP_CHOWN)
    | bit(CAP_DAC_OVERRIDE)
    | bit(CAP_FOWNER)
    | bit(CAP_FSETID)
    | bit(CAP_KILL)
    | bit(CAP_SETGID)
    | bit(CAP_SETUID)
    | bit(CAP_SETPCAP)
    | bit(CAP_NET_BIND_SERVICE)
    | bit(CAP_NET_RAW)
    | bit(CAP_SYS_CHROOT)
    | bit(CAP_AUDIT_WRITE)
    | bit(CAP_SETFCAP);

const fn bit(capability: u32) -> u64 {
    1 << capability
}

/// The highest capability number this kernel knows (its later ones must go too).
pub fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(63)
}

/// Drops every capability up to `last` outside [`CONTAINER_CAPABILITIES`] from the calling
/// process's bounding set; false if one could not be dropped. A raw system call a capability:
/// it runs in a child between clone and exec.
///
/// # Safety
/// None beyond the caller's: prctl(PR_CAPBSET_DROP) touches no memory.
pub unsafe fn drop_bounding_set(last: u32) -> bool {
    for capability in 0..=last.min(63) {
        if CONTAINER_CAPABILITIES & bit(capability) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        let dropped =
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability as libc::c_ulong, 0, 0, 0) };
        // EINVAL: a number this kernel does not know, nothing to drop.
        // SAFETY: reading errno.
        if dropped != 0 && unsafe { *libc::__errno_location() } != libc::EINVAL {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_is_docker_s_without_mknod() {
        // Docker's CapBnd in a container is 00000000a80425fb; bit 27 is MKNOD.
        assert_eq!(CONTAINER_CAPABILITIES, 0xa804_25fb & !bit(CAP_MKNOD));
        assert_eq!(CONTAINER_CAPABILITIES & bit(CAP_SYS_ADMIN), 0);
    }
}
