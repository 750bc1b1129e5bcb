//! The VMM core without any compiler: a few hand-assembled instructions entered in 64-bit mode
//! reach devices on the port-I/O bus, and a device's PowerOff action ends the VM.

// Helpers here are test code too: a panic is a failed assertion (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vmm_backend::bus::{BusAction, BusDevice};
use vmm_backend::{BootSource, CrashReason, Vm, VmConfig, VmError, VmExitReason};

/// Records the bytes written to it; optionally asks for power-off on any write.
#[derive(Default)]
struct Recorder {
    written: Vec<u8>,
    power_off_on_write: bool,
}

impl BusDevice for Recorder {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u64, data: &[u8]) -> BusAction {
        self.written.extend_from_slice(data);
        if self.power_off_on_write {
            BusAction::PowerOff
        } else {
            BusAction::None
        }
    }
}

#[test]
fn port_writes_reach_devices_and_power_off_ends_the_vm() {
    if !common::kvm_available("port_writes_reach_devices_and_power_off_ends_the_vm") {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 4 << 20,
    })
    .unwrap();
    let console = Arc::new(Mutex::new(Recorder::default()));
    let power = Arc::new(Mutex::new(Recorder {
        power_off_on_write: true,
        ..Default::default()
    }));
    vm.add_pio_device(0x3f8, 8, console.clone()).unwrap();
    vm.add_pio_device(0x600, 1, power.clone()).unwrap();

    #[rustfmt::skip]
    let code = vec![
        0xb0, b'A',             // mov al, 'A'
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee,                   // out dx, al
        0x66, 0xba, 0x00, 0x06, // mov dx, 0x600
        0xb0, 0x34,             // mov al, 0x34
        0xee,                   // out dx, al
        0xf4,                   // hlt (not reached)
    ];
    vm.load(&BootSource::Flat {
        image: code,
        load_addr: 0x10_0000,
        entry: 0x10_0000,
    })
    .unwrap();

    let reason = common::run_with_limit(vm, Duration::from_secs(20));
    assert_eq!(reason, VmExitReason::PowerOff);
    assert_eq!(console.lock().unwrap().written, b"A");
    assert_eq!(power.lock().unwrap().written, [0x34]);
}

#[test]
fn a_vm_with_ram_above_the_mmio_hole_runs() {
    if !common::kvm_available("a_vm_with_ram_above_the_mmio_hole_runs") {
        return;
    }
    // Two KVM memory slots (below 3 GiB and from 4 GiB); the memfd is sparse, so this costs
    // only the pages the guest and the boot tables touch.
    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: (3 << 30) + (64 << 20),
    })
    .unwrap();
    let power = Arc::new(Mutex::new(Recorder {
        power_off_on_write: true,
        ..Default::default()
    }));
    vm.add_pio_device(0x600, 1, power.clone()).unwrap();
    #[rustfmt::skip]
    let code = vec![
        0x66, 0xba, 0x00, 0x06, // mov dx, 0x600
        0xb0, 0x34,             // mov al, 0x34
        0xee,                   // out dx, al
    ];
    vm.load(&BootSource::Flat {
        image: code,
        load_addr: 0x10_0000,
        entry: 0x10_0000,
    })
    .unwrap();
    assert_eq!(
        common::run_with_limit(vm, Duration::from_secs(20)),
        VmExitReason::PowerOff
    );
}

/// A device with a bug: panics on any write.
struct Panicking;

impl BusDevice for Panicking {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) -> BusAction {
        panic!("device bug");
    }
}

#[test]
fn a_panicking_device_crashes_the_vm_instead_of_hanging_it() {
    if !common::kvm_available("a_panicking_device_crashes_the_vm_instead_of_hanging_it") {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 2,
        memory_size: 4 << 20,
    })
    .unwrap();
    vm.add_pio_device(0x600, 1, Arc::new(Mutex::new(Panicking)))
        .unwrap();
    // Both vCPUs run this; whichever writes first takes the VM down, the other is stopped.
    #[rustfmt::skip]
    let code = vec![
        0x66, 0xba, 0x00, 0x06, // mov dx, 0x600
        0xee,                   // out dx, al
        0xfa, 0xf4,             // cli; hlt
    ];
    vm.load(&BootSource::Flat {
        image: code,
        load_addr: 0x10_0000,
        entry: 0x10_0000,
    })
    .unwrap();
    let reason = common::run_with_limit(vm, Duration::from_secs(20));
    match reason {
        VmExitReason::Crash(CrashReason::VcpuThread { message, .. }) => {
            assert_eq!(message, "device bug");
        }
        other => panic!("expected a vCPU thread crash, got {other:?}"),
    }
}

#[test]
fn vm_sizes_kvm_cannot_have_are_refused() {
    if !common::kvm_available("vm_sizes_kvm_cannot_have_are_refused") {
        return;
    }
    let err = Vm::new(&VmConfig {
        vcpus: 0,
        memory_size: 4 << 20,
    })
    .unwrap_err();
    assert!(
        matches!(err, VmError::VcpuCount { requested: 0, .. }),
        "{err}"
    );
    let err = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 4096,
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "guest RAM size 0x1000 is not a multiple of the 4 KiB page size or is below the minimum of 2 MiB"
    );
}

#[test]
fn a_halted_guest_is_stopped_by_the_host() {
    if !common::kvm_available("a_halted_guest_is_stopped_by_the_host") {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 2,
        memory_size: 4 << 20,
    })
    .unwrap();
    // cli; hlt; jmp back: with the in-kernel irqchip KVM keeps a halted vCPU inside the kernel,
    // so only a kick from the host gets the threads out.
    let code = vec![0xfa, 0xf4, 0xeb, 0xfd];
    vm.load(&BootSource::Flat {
        image: code,
        load_addr: 0x10_0000,
        entry: 0x10_0000,
    })
    .unwrap();
    let started = std::time::Instant::now();
    let reason = common::run_with_limit(vm, Duration::from_millis(300));
    assert_eq!(reason, VmExitReason::Stopped);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn pause_parks_every_vcpu_and_resume_lets_them_go_on() {
    use vm_memory::{Bytes, GuestAddress};
    if !common::kvm_available("pause_parks_every_vcpu_and_resume_lets_them_go_on") {
        return;
    }
    const COUNTER: u64 = 0x30_0000;
    // On the huge-page RAM berth-vmm uses, so that backing runs a guest here too.
    let mut vm = Vm::with_ram(
        &VmConfig {
            vcpus: 2,
            memory_size: 8 << 20,
        },
        vmm_backend::GuestRam::AnonymousHugePages,
    )
    .unwrap();
    // Both vCPUs count forever in guest RAM, with no exit of their own.
    #[rustfmt::skip]
    let code = vec![
        0x48, 0xff, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, // inc qword [0x300000]
        0xeb, 0xf6,                                     // jmp back to the inc
    ];
    vm.load(&BootSource::Flat {
        image: code,
        load_addr: 0x10_0000,
        entry: 0x10_0000,
    })
    .unwrap();
    let mem = vm.memory().clone();
    let count = || mem.read_obj::<u64>(GuestAddress(COUNTER)).unwrap();
    let handle = vm.handle();
    let runner = std::thread::spawn(move || vm.run().unwrap());

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the guest never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.pause().unwrap();
    let paused = count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(), paused, "a paused vCPU ran");
    handle.pause().unwrap(); // pausing a paused VM is harmless

    handle.resume().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() == paused {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest did not resume"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Stopping works from a pause too.
    handle.pause().unwrap();
    handle.stop();
    assert_eq!(runner.join().unwrap(), VmExitReason::Stopped);
    assert_eq!(handle.pause(), Err(vmm_backend::VmEnded), "the VM is gone");
}
