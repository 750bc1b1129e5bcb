//! One virtual machine: the KVM VM with its in-kernel interrupt controllers, guest RAM, vCPUs and
//! the two device buses; `Vm::run` runs it to the end and says why it ended.
//!
//! Life cycle: [`Vm::new`] → add devices and irqfds → [`Vm::load`] a boot source → [`Vm::run`]
//! (consumes the VM; a reset is carried out by the caller building a fresh VM, which is what a
//! power cycle is).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MemoryRegionAddress, MmapRegion,
};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::Killable;

use crate::boot::{self, BootError, BootSource, Entry};
use crate::bus::{Bus, BusError, SharedDevice};
use crate::devices::fw_cfg::{FW_CFG_PORT, FW_CFG_PORT_LEN};
use crate::kvm::{KvmError, open_kvm};
use crate::long_mode;
use crate::memory::{
    MemoryError, create_anonymous_guest_memory, create_guest_memory, populate_low_ram,
};
use crate::sandbox::seccomp::ThreadRole;
use crate::vcpu::{
    CrashReason, ExitLoopContext, PauseGate, Vcpu, VcpuError, VmExitReason, kick_signal,
};

/// Where KVM puts the three pages of TSS that Intel VMX needs to run real-mode code: just below
/// the BIOS area at the top of the 32-bit space, inside the MMIO hole, where no RAM or device is.
pub const KVM_TSS_ADDR: usize = 0xfffb_d000;

/// The size and shape of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmConfig {
    /// Number of vCPUs (at least 1).
    pub vcpus: u32,
    /// Guest RAM in bytes (a multiple of 4 KiB, at least 2 MiB).
    pub memory_size: u64,
}

/// What guest RAM is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestRam {
    /// One memfd, shareable with device processes later (vhost-user); small pages unless the
    /// host's shmem huge-page policy allows more.
    #[default]
    Memfd,
    /// Private anonymous memory on 2 MiB boundaries, advised for transparent huge pages: far
    /// fewer nested-paging faults while the guest first touches its RAM. Never unmapped before
    /// the process ends ([`crate::memory::create_anonymous_guest_memory`]).
    AnonymousHugePages,
}

/// Errors while building or running a VM.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum VmError {
    /// {0}
    Kvm(#[from] KvmError),
    /// KVM_CREATE_VM failed: {0}
    CreateVm(#[source] kvm_ioctls::Error),
    /// KVM_SET_TSS_ADDR failed: {0}
    SetTssAddress(#[source] kvm_ioctls::Error),
    /// creating the in-kernel interrupt controllers failed: {0}
    CreateIrqchip(#[source] kvm_ioctls::Error),
    /// creating the in-kernel PIT failed: {0}
    CreatePit(#[source] kvm_ioctls::Error),
    /// {0}
    Memory(#[from] MemoryError),
    /// registering guest RAM slot {slot} with KVM failed: {source}
    SetMemoryRegion {
        /// The KVM memory slot.
        slot: u32,
        /// Why KVM refused it.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// asking KVM for the CPUID it supports failed: {0}
    SupportedCpuid(#[source] kvm_ioctls::Error),
    /// a VM needs 1 to {max} vCPUs, {requested} were asked for
    VcpuCount {
        /// Requested vCPUs.
        requested: u32,
        /// What KVM allows.
        max: u32,
    },
    /// creating vCPU {index} failed: {source}
    CreateVcpu {
        /// The vCPU.
        index: u32,
        /// Why KVM refused it.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// {0}
    Vcpu(#[from] VcpuError),
    /// cannot place the device: {0}
    Bus(#[from] BusError),
    /// {0}
    Boot(#[from] BootError),
    /// connecting an interrupt eventfd to GSI {gsi} failed: {source}
    Irqfd {
        /// The interrupt line.
        gsi: u32,
        /// Why KVM refused it.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// creating an eventfd failed: {0}
    EventFd(#[source] std::io::Error),
    /// the VM has nothing to run: load a boot source first
    NotLoaded,
    /// cannot map the firmware image: {0}
    Rom(String),
    /// installing the vCPU kick signal handler failed: {0}
    KickHandler(#[source] vmm_sys_util::errno::Error),
}

/// What the vCPU threads and handles tell the thread in [`Vm::run`].
enum RunEvent {
    /// A vCPU's loop ended; `None` means it was stopped because another vCPU ended the VM.
    VcpuEnded(Option<VmExitReason>),
    /// The host asked the VM to stop.
    Stop,
    /// Park every vCPU outside KVM_RUN, then answer on the sender.
    Pause(Sender<()>),
    /// Let parked vCPUs run again, then answer on the sender.
    Resume(Sender<()>),
}

/// Controls a running VM from any thread: stop it ([`Vm::run`] then returns
/// [`VmExitReason::Stopped`]), pause and resume its vCPUs. Harmless after the VM has ended.
#[derive(Clone, Debug)]
pub struct VmHandle(Sender<RunEvent>);

/// The name this handle had when stopping was all it did.
pub type StopHandle = VmHandle;

/// the VM is no longer running
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, displaydoc::Display)]
pub struct VmEnded;

impl VmHandle {
    /// Asks the VM to stop.
    pub fn stop(&self) {
        // A closed channel means the VM is gone already: nothing to stop.
        let _ = self.0.send(RunEvent::Stop);
    }

    /// Parks every vCPU outside KVM_RUN; returns once all are parked. Pausing a paused VM is
    /// harmless. Devices keep finishing requests already made.
    pub fn pause(&self) -> Result<(), VmEnded> {
        self.ask(RunEvent::Pause)
    }

    /// Lets the vCPUs of a paused VM run again; harmless on a running VM.
    pub fn resume(&self) -> Result<(), VmEnded> {
        self.ask(RunEvent::Resume)
    }

    fn ask(&self, event: fn(Sender<()>) -> RunEvent) -> Result<(), VmEnded> {
        let (done, wait) = channel();
        self.0.send(event(done)).map_err(|_| VmEnded)?;
        // The run thread drops the sender without answering only when the VM ends.
        wait.recv().map_err(|_| VmEnded)
    }
}

impl std::fmt::Debug for RunEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::VcpuEnded(reason) => write!(f, "VcpuEnded({reason:?})"),
            Self::Stop => f.write_str("Stop"),
            Self::Pause(_) => f.write_str("Pause"),
            Self::Resume(_) => f.write_str("Resume"),
        }
    }
}

/// Called at the start of every thread the VM starts, with its role (berth-vmm installs the
/// thread's seccomp filter there); the thread that runs the VM calls it once the vCPUs are
/// started.
pub type ThreadStart = Arc<dyn Fn(ThreadRole) + Send + Sync>;

/// A virtual machine being built, then run.
pub struct Vm {
    // Dropped in declaration order: vCPUs before the VM fd before guest RAM, the reverse of
    // how they depend on each other.
    vcpus: Vec<Vcpu>,
    fd: VmFd,
    memory: GuestMemoryMmap,
    /// A firmware's read-only image, when one is mapped (a slot of its own).
    rom: Option<GuestRegionMmap>,
    pio_bus: Bus,
    mmio_bus: Bus,
    events: (Sender<RunEvent>, Receiver<RunEvent>),
    loaded: bool,
    thread_start: Option<ThreadStart>,
    _kvm: Kvm,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("vcpus", &self.vcpus.len())
            .field("pio_bus", &self.pio_bus)
            .field("mmio_bus", &self.mmio_bus)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Creates the KVM VM: interrupt controllers, PIT, guest RAM registered with KVM, and the
    /// vCPUs with their CPUID. No devices yet and nothing loaded.
    pub fn new(config: &VmConfig) -> Result<Self, VmError> {
        Self::with_ram(config, GuestRam::Memfd)
    }

    /// [`Vm::new`] with guest RAM of the given kind.
    pub fn with_ram(config: &VmConfig, ram: GuestRam) -> Result<Self, VmError> {
        let kvm = open_kvm()?;
        let max = u32::try_from(kvm.get_max_vcpus()).unwrap_or(u32::MAX);
        if config.vcpus == 0 || config.vcpus > max {
            return Err(VmError::VcpuCount {
                requested: config.vcpus,
                max,
            });
        }

        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(KVM_TSS_ADDR)
            .map_err(VmError::SetTssAddress)?;
        fd.create_irq_chip().map_err(VmError::CreateIrqchip)?;
        // The dummy speaker keeps port 0x61 (PC speaker gate, read by Linux's PIT calibration)
        // inside KVM.
        fd.create_pit2(kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .map_err(VmError::CreatePit)?;

        let memory = match ram {
            GuestRam::Memfd => create_guest_memory(config.memory_size)?,
            GuestRam::AnonymousHugePages => create_anonymous_guest_memory(config.memory_size)?,
        };
        for (slot, region) in memory.iter().enumerate() {
            let slot = slot as u32;
            let mem_region = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the host range is a live mapping owned by `memory`, which the Vm keeps
            // until after the VM fd (and so the slot) is dropped; slots do not overlap because
            // the regions of one GuestMemoryMmap do not.
            unsafe { fd.set_user_memory_region(mem_region) }
                .map_err(|source| VmError::SetMemoryRegion { slot, source })?;
        }

        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VmError::SupportedCpuid)?;
        let tsc_deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
        let mut vcpus = Vec::with_capacity(config.vcpus as usize);
        for index in 0..config.vcpus {
            let vcpu_fd = fd
                .create_vcpu(u64::from(index))
                .map_err(|source| VmError::CreateVcpu { index, source })?;
            let vcpu = Vcpu::new(index, vcpu_fd);
            vcpu.set_cpuid(&supported, tsc_deadline)?;
            vcpus.push(vcpu);
        }

        Ok(Self {
            vcpus,
            fd,
            memory,
            rom: None,
            pio_bus: Bus::port_io(),
            mmio_bus: Bus::mmio(),
            events: channel(),
            loaded: false,
            thread_start: None,
            _kvm: kvm,
        })
    }

    /// Has `hook` called at the start of every vCPU thread, and by the thread that runs the VM
    /// once they are started.
    pub fn on_thread_start(&mut self, hook: ThreadStart) {
        self.thread_start = Some(hook);
    }

    /// Guest RAM (for device models and loaders).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// The KVM VM, for wiring ioeventfds and irqfds that this type does not wrap.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> u32 {
        self.vcpus.len() as u32
    }

    /// Puts `device` on the port-I/O bus at `[base, base + len)`.
    pub fn add_pio_device(
        &mut self,
        base: u16,
        len: u16,
        device: SharedDevice,
    ) -> Result<(), VmError> {
        Ok(self
            .pio_bus
            .insert(u64::from(base), u64::from(len), device)?)
    }

    /// Puts `device` on the MMIO bus at `[base, base + len)` (guest-physical addresses with no
    /// RAM behind them).
    pub fn add_mmio_device(
        &mut self,
        base: u64,
        len: u64,
        device: SharedDevice,
    ) -> Result<(), VmError> {
        Ok(self.mmio_bus.insert(base, len, device)?)
    }

    /// Makes every write to `event` raise interrupt line `gsi` (IRQ 0-15 are the PIC/IOAPIC
    /// legacy lines, 16-23 further IOAPIC pins).
    pub fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd
            .register_irqfd(event, gsi)
            .map_err(|source| VmError::Irqfd { gsi, source })
    }

    /// Places `source` in guest RAM and sets every vCPU up to start it.
    pub fn load(&mut self, source: &BootSource) -> Result<(), VmError> {
        let vcpus = self.vcpu_count();
        match boot::load(&self.memory, source, vcpus)? {
            Entry::Linux { rip, zero_page } => {
                long_mode::write_boot_tables(&self.memory).map_err(BootError::WriteMemory)?;
                // The 64-bit boot protocol: the boot vCPU enters with RSI = zero page; Linux
                // brings the others up with INIT/SIPI through the in-kernel LAPICs.
                for vcpu in &self.vcpus {
                    vcpu.set_lapic_lint_modes()?;
                }
                if let Some(bsp) = self.vcpus.first() {
                    bsp.enter_long_mode(rip, 0, 0, zero_page)?;
                    bsp.set_boot_msrs()?;
                }
            }
            Entry::Flat { rip } => {
                long_mode::write_boot_tables(&self.memory).map_err(BootError::WriteMemory)?;
                for vcpu in &self.vcpus {
                    let index = vcpu.index();
                    vcpu.enter_long_mode(
                        rip,
                        boot::boot_stack_pointer(index),
                        u64::from(index),
                        u64::from(vcpus),
                    )?;
                    if index != 0 {
                        vcpu.make_runnable()?;
                    }
                }
            }
            // The vCPUs keep the reset state KVM made them in: the boot vCPU fetches from
            // 0xFFFFFFF0, in the image; the others wait for the firmware's INIT/SIPI.
            Entry::Firmware(prepared) => {
                // A boot loader will place a kernel there, which decompresses itself there.
                populate_low_ram(&self.memory);
                self.add_rom(prepared.rom_base, &prepared.image)?;
                self.add_pio_device(
                    FW_CFG_PORT,
                    FW_CFG_PORT_LEN,
                    Arc::new(Mutex::new(prepared.fw_cfg)),
                )?;
            }
        }
        self.loaded = true;
        Ok(())
    }

    /// Maps `image` read-only at guest address `base` (a firmware's ROM): the guest's writes
    /// there reach the MMIO bus, where nothing claims them.
    fn add_rom(&mut self, base: u64, image: &[u8]) -> Result<(), VmError> {
        let rom = MmapRegion::new(image.len()).map_err(|e| VmError::Rom(e.to_string()))?;
        let rom = GuestRegionMmap::new(rom, GuestAddress(base))
            .ok_or_else(|| VmError::Rom(format!("{base:#x} + {:#x} wraps", image.len())))?;
        rom.write_slice(image, MemoryRegionAddress(0))
            .map_err(|e| VmError::Rom(e.to_string()))?;
        let slot = self.memory.num_regions() as u32;
        let region = kvm_userspace_memory_region {
            slot,
            flags: KVM_MEM_READONLY,
            guest_phys_addr: base,
            memory_size: image.len() as u64,
            userspace_addr: rom.as_ptr() as u64,
        };
        // SAFETY: the host range is a live mapping owned by `rom`, which the Vm keeps until
        // after the VM fd (and so the slot) is dropped; the slot number follows RAM's and the
        // range lies in the MMIO hole, clear of RAM.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(|source| VmError::SetMemoryRegion { slot, source })?;
        self.rom = Some(rom);
        Ok(())
    }

    /// A handle that stops, pauses and resumes this VM while [`Vm::run`] runs it.
    pub fn handle(&self) -> VmHandle {
        VmHandle(self.events.0.clone())
    }

    /// The same as [`Vm::handle`], for callers that only stop.
    pub fn stop_handle(&self) -> StopHandle {
        self.handle()
    }

    /// Runs the VM, one thread per vCPU, until the guest powers off or resets, the VM crashes,
    /// or a [`StopHandle`] stops it; then stops every vCPU and says why the VM ended.
    ///
    /// `Err` only for failures before any guest code ran.
    pub fn run(mut self) -> Result<VmExitReason, VmError> {
        if !self.loaded {
            return Err(VmError::NotLoaded);
        }
        install_kick_handler()?;

        let context = ExitLoopContext {
            pio: Arc::new(std::mem::take(&mut self.pio_bus)),
            mmio: Arc::new(std::mem::take(&mut self.mmio_bus)),
            stop: Arc::new(AtomicBool::new(false)),
            pause: Arc::new(PauseGate::default()),
        };
        let (events_tx, events_rx) = &self.events;

        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut spawn_failure = None;
        for mut vcpu in self.vcpus.drain(..) {
            let index = vcpu.index();
            let context = context.clone();
            let events = events_tx.clone();
            let hook = self.thread_start.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || {
                    if let Some(hook) = hook {
                        hook(ThreadRole::Vcpu);
                    }
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        vcpu.run_loop(&context.pio, &context.mmio, &context.stop, &context.pause)
                    }));
                    let reason = outcome.unwrap_or_else(|panic| {
                        Some(VmExitReason::Crash(CrashReason::VcpuThread {
                            vcpu: index,
                            message: panic_message(panic.as_ref()),
                        }))
                    });
                    // The receiver lives in `run` until every thread is joined.
                    let _ = events.send(RunEvent::VcpuEnded(reason));
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    spawn_failure = Some(VmExitReason::Crash(CrashReason::VcpuThread {
                        vcpu: index,
                        message: format!("cannot spawn the thread: {e}"),
                    }));
                    break;
                }
            }
        }

        if let Some(hook) = &self.thread_start {
            hook(ThreadRole::Main);
        }
        let reason = match spawn_failure {
            Some(reason) => reason,
            None => loop {
                // `self.events.0` is still alive, so recv cannot fail; treat it as a stop anyway.
                match events_rx.recv() {
                    Ok(RunEvent::VcpuEnded(Some(reason))) => break reason,
                    Ok(RunEvent::VcpuEnded(None)) => {}
                    Ok(RunEvent::Stop) | Err(_) => break VmExitReason::Stopped,
                    Ok(RunEvent::Pause(done)) => {
                        park_vcpu_threads(&context.pause, &threads);
                        // The asker may have given up waiting: nothing to tell then.
                        let _ = done.send(());
                    }
                    Ok(RunEvent::Resume(done)) => {
                        context.pause.release();
                        let _ = done.send(());
                    }
                }
            },
        };

        stop_vcpu_threads(&context, threads);
        Ok(reason)
    }
}

/// Asks every vCPU to park and kicks those still in KVM_RUN until each live thread is parked.
/// A thread that has ended (its vCPU ended the VM) is not waited for: the VM is ending anyway.
///
/// Kicking repeatedly closes the same race as in [`stop_vcpu_threads`].
fn park_vcpu_threads(pause: &PauseGate, threads: &[JoinHandle<()>]) {
    pause.request();
    loop {
        let live = threads.iter().filter(|t| !t.is_finished()).count();
        if pause.parked() >= live {
            return;
        }
        for thread in threads.iter().filter(|t| !t.is_finished()) {
            if let Err(e) = thread.kill(kick_signal()) {
                log::debug!("kicking a vCPU thread failed: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sets the stop flag and kicks every vCPU thread out of KVM_RUN (or its pause) until all have
/// ended.
///
/// Kicking again and again closes the race where a thread checks the flag, is then signalled,
/// and only afterwards enters KVM_RUN (where a halted guest could keep it forever).
fn stop_vcpu_threads(context: &ExitLoopContext, threads: Vec<JoinHandle<()>>) {
    context.stop.store(true, Ordering::Release);
    while threads.iter().any(|t| !t.is_finished()) {
        context.pause.wake();
        for thread in threads.iter().filter(|t| !t.is_finished()) {
            if let Err(e) = thread.kill(kick_signal()) {
                log::debug!("kicking a vCPU thread failed: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for thread in threads {
        // Panics were caught in the thread and reported as a crash.
        let _ = thread.join();
    }
}

/// Installs the (empty) handler for [`kick_signal`] once per process: its only job is to make
/// KVM_RUN return EINTR. Without a handler the default action would kill the process.
fn install_kick_handler() -> Result<(), VmError> {
    extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

    static INSTALLED: OnceLock<Result<(), vmm_sys_util::errno::Error>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick))
        .map_err(VmError::KickHandler)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_string())
}
