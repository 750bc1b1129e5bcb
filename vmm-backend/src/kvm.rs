//! The host's KVM: opening /dev/kvm and checking it offers what Berth relies on, so a missing
//! feature is one clear error at start-up instead of a failure halfway through building a VM.

use kvm_ioctls::{Cap, Kvm};

/// Capabilities every Berth VM needs, with why.
const REQUIRED_CAPS: &[(Cap, &str)] = &[
    (Cap::UserMemory, "guest RAM from VMM memory"),
    (Cap::Irqchip, "in-kernel PIC, IOAPIC and LAPIC"),
    (Cap::Irqfd, "device interrupts through eventfds"),
    (
        Cap::Ioeventfd,
        "virtio queue notifications through eventfds",
    ),
    (Cap::ExtCpuid, "CPUID set by the VMM"),
    (Cap::SetTssAddr, "the TSS area Intel VMX needs"),
    (Cap::Pit2, "the in-kernel PIT"),
];

/// Errors while opening KVM.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum KvmError {
    /// cannot open /dev/kvm: {error}; {advice}
    Open {
        #[source]
        error: std::io::Error,
        /// What the user can do about it (`berth_vmm_api::kvm::kvm_advice`).
        advice: &'static str,
    },
    /// /dev/kvm speaks KVM API version {0}, Berth needs 12
    ApiVersion(i32),
    /// /dev/kvm lacks {name}, needed for {why}
    MissingCap {
        /// The capability, as kvm-ioctls names it.
        name: String,
        /// What Berth uses it for.
        why: &'static str,
    },
}

/// Opens /dev/kvm and checks the API version and the capabilities Berth needs (user memory,
/// irqchip, irqfd, ioeventfd, CPUID, TSS address, PIT2).
pub fn open_kvm() -> Result<Kvm, KvmError> {
    let kvm = Kvm::new().map_err(|e| {
        let error = std::io::Error::from_raw_os_error(e.errno());
        let advice = berth_vmm_api::kvm::kvm_advice(&error);
        KvmError::Open { error, advice }
    })?;
    let version = kvm.get_api_version();
    if version != kvm_bindings::KVM_API_VERSION as i32 {
        return Err(KvmError::ApiVersion(version));
    }
    for (cap, why) in REQUIRED_CAPS {
        if !kvm.check_extension(*cap) {
            return Err(KvmError::MissingCap {
                name: format!("{cap:?}"),
                why,
            });
        }
    }
    Ok(kvm)
}
