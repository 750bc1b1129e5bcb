//! One virtual CPU: its set-up (CPUID, registers) and the exit loop its thread runs.
//!
//! The loop hands port I/O and MMIO exits to the buses and ends on anything that ends the VM.
//! Other vCPUs are stopped by the VM (a shared flag plus [`kick_signal`] to interrupt KVM_RUN);
//! see `Vm::run`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use kvm_bindings::{
    CpuId, KVM_MP_STATE_RUNNABLE, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET,
    KVM_SYSTEM_EVENT_SHUTDOWN, kvm_fpu, kvm_mp_state, kvm_regs,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::bus::{Bus, BusAction};
use crate::long_mode;

/// Errors while setting up a vCPU.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum VcpuError {
    /// KVM_SET_CPUID2 on vCPU {0} failed: {1}
    SetCpuid(u32, #[source] kvm_ioctls::Error),
    /// reading the special registers of vCPU {0} failed: {1}
    GetSregs(u32, #[source] kvm_ioctls::Error),
    /// setting the special registers of vCPU {0} failed: {1}
    SetSregs(u32, #[source] kvm_ioctls::Error),
    /// setting the registers of vCPU {0} failed: {1}
    SetRegs(u32, #[source] kvm_ioctls::Error),
    /// setting the FPU state of vCPU {0} failed: {1}
    SetFpu(u32, #[source] kvm_ioctls::Error),
    /// making vCPU {0} runnable failed: {1}
    SetMpState(u32, #[source] kvm_ioctls::Error),
    /// reading or writing the local APIC of vCPU {0} failed: {1}
    Lapic(u32, #[source] kvm_ioctls::Error),
    /// setting the MSRs of vCPU {0} failed: {1}
    SetMsrs(u32, #[source] kvm_ioctls::Error),
}

/// Why a VM stopped running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExitReason {
    /// The guest powered off (ACPI S5, or KVM reported a shutdown system event).
    PowerOff,
    /// The guest asked for a reset (i8042 pulse, ACPI reset register, reset system event).
    Reset,
    /// The host stopped the VM through a [`crate::vm::StopHandle`].
    Stopped,
    /// The guest or the VMM failed; the VM cannot go on.
    Crash(CrashReason),
}

/// What went wrong when a VM crashed.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display)]
pub enum CrashReason {
    /// vCPU {vcpu} halted and left KVM (HLT exit)
    Halted {
        /// The vCPU.
        vcpu: u32,
    },
    /// vCPU {vcpu} triple-faulted (KVM_EXIT_SHUTDOWN)
    TripleFault {
        /// The vCPU.
        vcpu: u32,
    },
    /// the guest on vCPU {vcpu} reported a crash (KVM system event {event})
    GuestCrash {
        /// The vCPU.
        vcpu: u32,
        /// The KVM_SYSTEM_EVENT_* type.
        event: u32,
    },
    /// KVM hit an internal error on vCPU {vcpu} (suberror {suberror}; 1 = the instruction emulator failed)
    InternalError {
        /// The vCPU.
        vcpu: u32,
        /// `kvm_run.internal.suberror`.
        suberror: u32,
    },
    /// vCPU {vcpu} could not enter the guest (hardware entry failure reason {reason:#x})
    FailEntry {
        /// The vCPU.
        vcpu: u32,
        /// `hardware_entry_failure_reason`.
        reason: u64,
    },
    /// vCPU {vcpu} stopped on a KVM exit Berth does not handle: {exit}
    UnhandledExit {
        /// The vCPU.
        vcpu: u32,
        /// The exit as KVM reported it.
        exit: String,
    },
    /// KVM_RUN on vCPU {vcpu} failed: {error}
    RunFailed {
        /// The vCPU.
        vcpu: u32,
        /// The OS error.
        error: String,
    },
    /// the thread of vCPU {vcpu} failed: {message}
    VcpuThread {
        /// The vCPU.
        vcpu: u32,
        /// What happened (a panic message, a failed spawn).
        message: String,
    },
}

impl std::fmt::Display for VmExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PowerOff => f.write_str("the guest powered off"),
            Self::Reset => f.write_str("the guest reset the machine"),
            Self::Stopped => f.write_str("the host stopped the VM"),
            Self::Crash(reason) => write!(f, "the VM crashed: {reason}"),
        }
    }
}

/// The real-time signal used to interrupt a vCPU thread blocked in KVM_RUN. SIGRTMIN+0, left
/// alone by the C runtime; the daemon must not use it for anything else in a VMM process.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

/// A vCPU, owned by the VM until `Vm::run` moves it to its thread.
#[derive(Debug)]
pub struct Vcpu {
    index: u32,
    fd: VcpuFd,
}

impl Vcpu {
    pub(crate) fn new(index: u32, fd: VcpuFd) -> Self {
        Self { index, fd }
    }

    /// The vCPU's index, which is also its APIC id.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Sets CPUID to what KVM supports, with this vCPU's index as its APIC id. `tsc_deadline`:
    /// KVM's in-kernel LAPIC has the TSC-deadline timer (KVM_CAP_TSC_DEADLINE_TIMER), which
    /// KVM_GET_SUPPORTED_CPUID does not advertise because it depends on the irqchip.
    pub(crate) fn set_cpuid(&self, supported: &CpuId, tsc_deadline: bool) -> Result<(), VcpuError> {
        let mut cpuid = supported.clone();
        for entry in cpuid.as_mut_slice() {
            match entry.function {
                1 => {
                    // EBX[31:24]: initial APIC id. ECX[31]: running under a hypervisor.
                    entry.ebx = (entry.ebx & 0x00ff_ffff) | (self.index << 24);
                    entry.ecx |= 1 << 31;
                    // ECX[24]: TSC-deadline. Without it Linux calibrates the LAPIC timer
                    // against the PIT for 100 ms of wall-clock time at every boot.
                    if tsc_deadline {
                        entry.ecx |= 1 << 24;
                    }
                }
                // Extended topology leaves: EDX is the x2APIC id.
                0xb | 0x1f => entry.edx = self.index,
                _ => {}
            }
        }
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| VcpuError::SetCpuid(self.index, e))
    }

    /// Puts the vCPU in 64-bit mode at `rip`, with `rdi`/`rsi` as the first two arguments of a
    /// C entry function and `rsp` as its stack. The tables must already be in guest RAM
    /// ([`long_mode::write_boot_tables`]).
    pub(crate) fn enter_long_mode(
        &self,
        rip: u64,
        rsp: u64,
        rdi: u64,
        rsi: u64,
    ) -> Result<(), VcpuError> {
        let index = self.index;
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(|e| VcpuError::GetSregs(index, e))?;
        long_mode::set_long_mode(&mut sregs);
        self.fd
            .set_sregs(&sregs)
            .map_err(|e| VcpuError::SetSregs(index, e))?;

        // The x87 and SSE control words a CPU has after FNINIT / reset.
        let fpu = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        self.fd
            .set_fpu(&fpu)
            .map_err(|e| VcpuError::SetFpu(index, e))?;

        let regs = kvm_regs {
            rip,
            rsp,
            rbp: rsp,
            rdi,
            rsi,
            rflags: 0x2, // bit 1 is reserved and must be set; interrupts off
            ..Default::default()
        };
        self.fd
            .set_regs(&regs)
            .map_err(|e| VcpuError::SetRegs(index, e))
    }

    /// LINT0 = ExtINT (the 8259's output, virtual-wire mode) and LINT1 = NMI, as a PC's
    /// firmware leaves them: Linux keeps what it finds.
    pub(crate) fn set_lapic_lint_modes(&self) -> Result<(), VcpuError> {
        const APIC_LVT0: usize = 0x350;
        const APIC_LVT1: usize = 0x360;
        const DELIVERY_MODE_MASK: u32 = 0x700;
        const DELIVERY_EXTINT: u32 = 0x700;
        const DELIVERY_NMI: u32 = 0x400;
        let mut lapic = self
            .fd
            .get_lapic()
            .map_err(|e| VcpuError::Lapic(self.index, e))?;
        let update = |regs: &mut [libc::c_char; 1024], offset: usize, mode: u32| {
            let mut bytes = [0u8; 4];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = regs[offset + i] as u8;
            }
            let value = (u32::from_le_bytes(bytes) & !DELIVERY_MODE_MASK) | mode;
            for (i, b) in value.to_le_bytes().iter().enumerate() {
                regs[offset + i] = *b as libc::c_char;
            }
        };
        update(&mut lapic.regs, APIC_LVT0, DELIVERY_EXTINT);
        update(&mut lapic.regs, APIC_LVT1, DELIVERY_NMI);
        self.fd
            .set_lapic(&lapic)
            .map_err(|e| VcpuError::Lapic(self.index, e))
    }

    /// The MSRs a firmware would have set before handing over to Linux: fast string operations
    /// on, and MTRRs enabled with write-back as the default type (without it Linux sees every
    /// page as uncached and runs with PAT off).
    pub(crate) fn set_boot_msrs(&self) -> Result<(), VcpuError> {
        const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
        const MISC_ENABLE_FAST_STRING: u64 = 1;
        const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
        const MTRR_ENABLE: u64 = 1 << 11;
        const MTRR_TYPE_WRITE_BACK: u64 = 6;
        let entries = [
            kvm_bindings::kvm_msr_entry {
                index: MSR_IA32_MISC_ENABLE,
                data: MISC_ENABLE_FAST_STRING,
                ..Default::default()
            },
            kvm_bindings::kvm_msr_entry {
                index: MSR_MTRR_DEF_TYPE,
                data: MTRR_ENABLE | MTRR_TYPE_WRITE_BACK,
                ..Default::default()
            },
        ];
        let msrs = kvm_bindings::Msrs::from_entries(&entries)
            .map_err(|_| VcpuError::SetMsrs(self.index, kvm_ioctls::Error::new(libc::E2BIG)))?;
        let written = self
            .fd
            .set_msrs(&msrs)
            .map_err(|e| VcpuError::SetMsrs(self.index, e))?;
        if written != entries.len() {
            return Err(VcpuError::SetMsrs(
                self.index,
                kvm_ioctls::Error::new(libc::EINVAL),
            ));
        }
        Ok(())
    }

    /// With an in-kernel LAPIC, vCPUs other than 0 wait for INIT/SIPI; a flat boot starts them
    /// all at once instead.
    pub(crate) fn make_runnable(&self) -> Result<(), VcpuError> {
        self.fd
            .set_mp_state(kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            })
            .map_err(|e| VcpuError::SetMpState(self.index, e))
    }

    /// Runs the guest until something ends the VM or `stop` is set (then returns `None`).
    pub(crate) fn run_loop(
        &mut self,
        pio: &Bus,
        mmio: &Bus,
        stop: &AtomicBool,
        pause: &PauseGate,
    ) -> Option<VmExitReason> {
        let vcpu = self.index;
        loop {
            // Checked before every entry: a kick that lands between this check and KVM_RUN is
            // caught because the VM keeps kicking until the thread is gone (or parked).
            if stop.load(Ordering::Acquire) {
                return None;
            }
            pause.park_if_paused(stop);
            if stop.load(Ordering::Acquire) {
                return None;
            }
            let crash = |reason| Some(VmExitReason::Crash(reason));
            let action = match self.fd.run() {
                Ok(VcpuExit::IoIn(port, data)) => {
                    pio.read(u64::from(port), data);
                    BusAction::None
                }
                Ok(VcpuExit::IoOut(port, data)) => pio.write(u64::from(port), data),
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    mmio.read(addr, data);
                    BusAction::None
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => mmio.write(addr, data),
                // With the in-kernel irqchip KVM keeps halted vCPUs to itself; a HLT that still
                // reaches us cannot be woken by anything we have.
                Ok(VcpuExit::Hlt) => return crash(CrashReason::Halted { vcpu }),
                Ok(VcpuExit::Shutdown) => return crash(CrashReason::TripleFault { vcpu }),
                Ok(VcpuExit::SystemEvent(event, _)) => {
                    return match event {
                        KVM_SYSTEM_EVENT_SHUTDOWN => Some(VmExitReason::PowerOff),
                        KVM_SYSTEM_EVENT_RESET => Some(VmExitReason::Reset),
                        KVM_SYSTEM_EVENT_CRASH => crash(CrashReason::GuestCrash { vcpu, event }),
                        _ => crash(CrashReason::UnhandledExit {
                            vcpu,
                            exit: format!("system event {event}"),
                        }),
                    };
                }
                Ok(VcpuExit::InternalError) => {
                    // SAFETY: KVM filled the `internal` member of the exit union: the exit
                    // reason was KVM_EXIT_INTERNAL_ERROR. It is plain integers.
                    let suberror =
                        unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                    return crash(CrashReason::InternalError { vcpu, suberror });
                }
                Ok(VcpuExit::FailEntry(reason, _)) => {
                    return crash(CrashReason::FailEntry { vcpu, reason });
                }
                // Nothing to do: KVM left to let us look at signals or an interrupt window.
                Ok(VcpuExit::Intr | VcpuExit::IrqWindowOpen) => BusAction::None,
                Ok(other) => {
                    return crash(CrashReason::UnhandledExit {
                        vcpu,
                        exit: format!("{other:?}"),
                    });
                }
                // EINTR: a kick (the stop flag is checked above). EAGAIN: KVM asks to retry.
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => BusAction::None,
                Err(e) => {
                    return crash(CrashReason::RunFailed {
                        vcpu,
                        error: e.to_string(),
                    });
                }
            };
            match action {
                BusAction::None => {}
                BusAction::PowerOff => return Some(VmExitReason::PowerOff),
                BusAction::Reset => return Some(VmExitReason::Reset),
            }
        }
    }
}

/// What every vCPU thread shares: the buses, the flag that stops them all and the pause gate.
#[derive(Clone)]
pub(crate) struct ExitLoopContext {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub stop: Arc<AtomicBool>,
    pub pause: Arc<PauseGate>,
}

/// Where vCPU threads park while the VM is paused: outside KVM_RUN, so the guest's state is
/// still and consistent (no vCPU half-way through an exit).
///
/// The fast path is one atomic load per KVM_RUN; the mutex and condition variable are only
/// touched while a pause is requested.
#[derive(Debug, Default)]
pub(crate) struct PauseGate {
    requested: AtomicBool,
    state: Mutex<PauseState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PauseState {
    requested: bool,
    parked: usize,
}

impl PauseGate {
    /// Called by a vCPU thread before each KVM_RUN: waits while a pause is requested (and the VM
    /// is not stopping).
    pub(crate) fn park_if_paused(&self, stop: &AtomicBool) {
        if !self.requested.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.parked += 1;
        self.changed.notify_all();
        while state.requested && !stop.load(Ordering::Acquire) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.parked -= 1;
        self.changed.notify_all();
    }

    /// Asks every vCPU to park; [`Self::parked`] then counts those that did.
    pub(crate) fn request(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requested = true;
        self.requested.store(true, Ordering::Release);
    }

    /// Lets parked vCPUs go on.
    pub(crate) fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requested = false;
        self.requested.store(false, Ordering::Release);
        self.changed.notify_all();
    }

    /// Wakes parked vCPUs so they see the stop flag.
    pub(crate) fn wake(&self) {
        let _state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.changed.notify_all();
    }

    /// How many vCPUs are parked now.
    pub(crate) fn parked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .parked
    }
}
