//! `/dev/kvm` and what to do when it cannot be opened: the one wording berth-vmm (when it
//! fails to start) and berthd (when it says whether VMs can run) both use.

/// The KVM device every VM needs.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// What a user can do about `error`, met opening [`KVM_DEVICE`].
pub fn kvm_advice(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "VMs need access to /dev/kvm through the kvm group: `sudo usermod -aG kvm $USER`, then log out and in again"
        }
        std::io::ErrorKind::NotFound => {
            "this machine has no KVM: turn on virtualisation (VT-x or AMD-V) in its firmware and load kvm_intel or kvm_amd"
        }
        _ => "check that KVM works on this machine (`ls -l /dev/kvm`, `dmesg | grep -i kvm`)",
    }
}

/// Whether this process can open [`KVM_DEVICE`] for reading and writing; why not, with the
/// advice, if it cannot.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(KVM_DEVICE)
        .map(drop)
        .map_err(|e| format!("cannot open {KVM_DEVICE}: {e}; {}", kvm_advice(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_group_and_the_command() {
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(kvm_advice(&denied).contains("kvm group"));
        assert!(kvm_advice(&denied).contains("usermod -aG kvm"));
        let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert!(kvm_advice(&missing).contains("no KVM"));
    }
}
