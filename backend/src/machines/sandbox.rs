//! The sandbox each VM's berth-vmm runs in (`vmm_backend::sandbox`): always a mount namespace of
//! only the VM's files and seccomp per thread; under a daemon that is root on the host, also an
//! unprivileged uid and gid of the VM's own, so no two VMs share one (they could signal or trace
//! each other) and none shares a user's.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use berth_vmm_api::launch::{SANDBOX_ID_BASE, Sandbox};

/// The ids given to running VMs.
#[derive(Debug)]
pub struct SandboxIds {
    /// Whether VMs get ids of their own (the daemon is root on the host); a rootless daemon's
    /// VMs keep its own, already unprivileged.
    give: bool,
    used: Arc<Mutex<BTreeSet<u32>>>,
}

/// A VM's ids while it runs; they are free again when this is dropped.
#[derive(Debug)]
pub struct Lease {
    slot: u32,
    used: Arc<Mutex<BTreeSet<u32>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.slot);
    }
}

impl SandboxIds {
    pub fn new(give: bool) -> SandboxIds {
        SandboxIds {
            give,
            used: Arc::default(),
        }
    }

    /// The sandbox of a VM about to start, and its ids' lease (none when it keeps the
    /// daemon's).
    pub fn take(&self) -> (Sandbox, Option<Lease>) {
        if !self.give {
            return (Sandbox { ids: None }, None);
        }
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (0..).find(|s| !used.contains(s)).unwrap_or(0);
        used.insert(slot);
        let id = SANDBOX_ID_BASE + slot;
        let lease = Lease {
            slot,
            used: Arc::clone(&self.used),
        };
        (
            Sandbox {
                ids: Some((id, id)),
            },
            Some(lease),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_running_vm_has_ids_of_its_own_and_they_are_reused() {
        let ids = SandboxIds::new(true);
        let (first, lease1) = ids.take();
        let (second, lease2) = ids.take();
        assert_eq!(first.ids, Some((SANDBOX_ID_BASE, SANDBOX_ID_BASE)));
        assert_eq!(second.ids, Some((SANDBOX_ID_BASE + 1, SANDBOX_ID_BASE + 1)));
        drop(lease1);
        assert_eq!(ids.take().0.ids, first.ids, "a freed slot is taken again");
        drop(lease2);
        let rootless = SandboxIds::new(false);
        let (sandbox, lease) = rootless.take();
        assert_eq!(sandbox.ids, None);
        assert!(lease.is_none());
    }
}
