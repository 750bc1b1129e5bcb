//! Test tier 2: the probe guest (built from `vmm-backend/probe/` with the host's gcc) runs on
//! /dev/kvm with the legacy devices, and the tests check what a user would see: the serial
//! console text and why the VM ended.

// Helpers here are test code too: a panic is a failed assertion (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::probe::{
    PROBE_LOAD_ADDR, PROBE_MMIO_MAGIC, PROBE_MMIO_SCRATCH, ProbeFinish, probe_image,
};
use vmm_backend::boot::BootError;
use vmm_backend::bus::{BusAction, BusDevice};
use vmm_backend::devices::legacy::LegacyDevices;
use vmm_backend::{BootSource, CrashReason, Vm, VmConfig, VmError, VmExitReason};

/// How long a probe may run before the test calls it hung (it needs milliseconds).
const PROBE_TIME_LIMIT: Duration = Duration::from_secs(10);
/// What the scratch MMIO device answers at offset 4.
const SCRATCH_ANSWER: u32 = 0x5ca1_ab1e;

/// A console sink the test can read while the VM owns the writer.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The MMIO device the probe pokes: records 32-bit writes at offset 0, answers at offset 4.
#[derive(Default)]
struct Scratch {
    written: Vec<u32>,
}

impl BusDevice for Scratch {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == 4 && data.len() == 4 {
            data.copy_from_slice(&SCRATCH_ANSWER.to_le_bytes());
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        if let (0, Ok(word)) = (offset, <[u8; 4]>::try_from(data)) {
            self.written.push(u32::from_le_bytes(word));
        }
        BusAction::None
    }
}

struct ProbeRun {
    reason: VmExitReason,
    console: String,
    scratch_writes: Vec<u32>,
}

fn run_probe(finish: ProbeFinish, vcpus: u32) -> ProbeRun {
    run_probe_with_input(finish, vcpus, b"")
}

/// Runs the probe with `input` already waiting in COM1's receive FIFO.
fn run_probe_with_input(finish: ProbeFinish, vcpus: u32, input: &[u8]) -> ProbeRun {
    let image = probe_image(finish);
    let mut vm = Vm::new(&VmConfig {
        vcpus,
        memory_size: 16 << 20,
    })
    .unwrap();
    let console = Console::default();
    let legacy = LegacyDevices::attach(&mut vm, Box::new(console.clone())).unwrap();
    if !input.is_empty() {
        let fed = legacy.serial.lock().unwrap().feed_input(input).unwrap();
        assert_eq!(fed, input.len());
    }
    let scratch = Arc::new(Mutex::new(Scratch::default()));
    vm.add_mmio_device(PROBE_MMIO_SCRATCH, 0x1000, scratch.clone())
        .unwrap();
    vm.load(&BootSource::Flat {
        image,
        load_addr: PROBE_LOAD_ADDR,
        entry: PROBE_LOAD_ADDR,
    })
    .unwrap();

    let reason = common::run_with_limit(vm, PROBE_TIME_LIMIT);
    let run = ProbeRun {
        reason,
        console: console.text(),
        scratch_writes: scratch.lock().unwrap().written.clone(),
    };
    eprintln!("probe console:\n{}", run.console);
    run
}

#[test]
fn probe_says_hello_on_serial_and_powers_off_through_acpi() {
    if !common::kvm_available("probe_says_hello_on_serial_and_powers_off_through_acpi") {
        return;
    }
    let run = run_probe(ProbeFinish::PowerOff, 1);
    assert_eq!(
        run.console,
        "BERTH-PROBE: mmio read 0x5ca1ab1e\n\
         BERTH-PROBE: hello from vcpu 0 of 1, apic id 0\n\
         BERTH-PROBE: all vcpus reported\n"
    );
    assert_eq!(run.scratch_writes, [PROBE_MMIO_MAGIC]);
    assert_eq!(run.reason, VmExitReason::PowerOff);
}

#[test]
fn probe_receives_serial_input_fed_by_the_host() {
    if !common::kvm_available("probe_receives_serial_input_fed_by_the_host") {
        return;
    }
    let run = run_probe_with_input(ProbeFinish::PowerOff, 1, b"ping 42");
    assert!(
        run.console.contains("BERTH-PROBE: input ping 42\n"),
        "{}",
        run.console
    );
    assert_eq!(run.reason, VmExitReason::PowerOff);
}

#[test]
fn serial_input_raises_irq_4_in_the_in_kernel_pic() {
    if !common::kvm_available("serial_input_raises_irq_4_in_the_in_kernel_pic") {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 4 << 20,
    })
    .unwrap();
    let legacy = LegacyDevices::attach(&mut vm, Box::new(Console::default())).unwrap();
    // Receive interrupts on, as a guest driver would (IER bit 0).
    legacy.serial.lock().unwrap().write(1, &[0x01]);

    let pic_irr = |vm: &Vm| {
        let mut chip = kvm_bindings::kvm_irqchip {
            chip_id: kvm_bindings::KVM_IRQCHIP_PIC_MASTER,
            ..Default::default()
        };
        vm.fd().get_irqchip(&mut chip).unwrap();
        // SAFETY: chip_id PIC_MASTER makes KVM fill the `pic` member of the union.
        unsafe { chip.chip.pic.irr }
    };
    // Only receive interrupts are enabled, so nothing has raised the line yet.
    let before = pic_irr(&vm);
    assert_eq!(before & (1 << 4), 0, "IRR before {before:#x}");
    legacy.serial.lock().unwrap().feed_input(b"x").unwrap();
    // KVM may inject an irqfd interrupt from a work queue rather than at once: poll a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut after = pic_irr(&vm);
    while after & (1 << 4) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        after = pic_irr(&vm);
    }
    assert_ne!(
        after & (1 << 4),
        0,
        "IRR before {before:#x}, after {after:#x}"
    );
}

#[test]
fn probe_resets_through_the_i8042() {
    if !common::kvm_available("probe_resets_through_the_i8042") {
        return;
    }
    let run = run_probe(ProbeFinish::Reset, 1);
    assert!(run.console.contains("hello from vcpu 0 of 1, apic id 0\n"));
    assert!(!run.console.contains("still running"), "{}", run.console);
    assert_eq!(run.reason, VmExitReason::Reset);
}

#[test]
fn probe_resets_through_the_acpi_reset_register() {
    if !common::kvm_available("probe_resets_through_the_acpi_reset_register") {
        return;
    }
    let run = run_probe(ProbeFinish::AcpiReset, 1);
    assert!(run.console.contains("all vcpus reported\n"));
    assert!(!run.console.contains("still running"), "{}", run.console);
    assert_eq!(run.reason, VmExitReason::Reset);
}

#[test]
fn probe_runs_on_two_vcpus_and_each_reports() {
    if !common::kvm_available("probe_runs_on_two_vcpus_and_each_reports") {
        return;
    }
    let run = run_probe(ProbeFinish::PowerOff, 2);
    assert_eq!(
        run.console,
        "BERTH-PROBE: mmio read 0x5ca1ab1e\n\
         BERTH-PROBE: hello from vcpu 0 of 2, apic id 0\n\
         BERTH-PROBE: hello from vcpu 1 of 2, apic id 1\n\
         BERTH-PROBE: all vcpus reported\n"
    );
    assert_eq!(run.reason, VmExitReason::PowerOff);
}

#[test]
fn probe_triple_fault_is_reported_as_a_crash() {
    if !common::kvm_available("probe_triple_fault_is_reported_as_a_crash") {
        return;
    }
    let run = run_probe(ProbeFinish::Crash, 1);
    assert!(run.console.contains("all vcpus reported\n"));
    assert!(!run.console.contains("still running"), "{}", run.console);
    assert_eq!(
        run.reason,
        VmExitReason::Crash(CrashReason::TripleFault { vcpu: 0 })
    );
    assert_eq!(
        run.reason.to_string(),
        "the VM crashed: vCPU 0 triple-faulted (KVM_EXIT_SHUTDOWN)"
    );
}

#[test]
fn bad_flat_images_are_refused_with_a_clear_error() {
    if !common::kvm_available("bad_flat_images_are_refused_with_a_clear_error") {
        return;
    }
    let config = VmConfig {
        vcpus: 1,
        memory_size: 4 << 20,
    };

    let mut vm = Vm::new(&config).unwrap();
    let too_large = BootSource::Flat {
        image: vec![0x90; 8 << 20],
        load_addr: PROBE_LOAD_ADDR,
        entry: PROBE_LOAD_ADDR,
    };
    let err = vm.load(&too_large).unwrap_err();
    assert!(
        matches!(err, VmError::Boot(BootError::ImageTooLarge { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the boot image of 8388608 bytes does not fit in guest RAM at 0x100000: \
         3145728 bytes are available there"
    );
    // Nothing was loaded, so there is nothing to run.
    assert!(matches!(vm.run(), Err(VmError::NotLoaded)));

    let mut vm = Vm::new(&config).unwrap();
    let outside = BootSource::Flat {
        image: probe_image(ProbeFinish::PowerOff),
        load_addr: 0x4000_0000,
        entry: 0x4000_0000,
    };
    let err = vm.load(&outside).unwrap_err();
    assert_eq!(
        err.to_string(),
        "load address 0x40000000 is outside guest RAM (RAM ends at 0x400000)"
    );
}
