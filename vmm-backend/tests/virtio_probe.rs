//! The probe guest drives virtio-blk and virtio-rng through the virtio-mmio transport on this
//! machine's /dev/kvm, as a driver in a real guest would: it reads a known sector, writes
//! another (checked in the host file), flushes, reads random bytes, and powers off.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::probe::{PROBE_LOAD_ADDR, ProbeFinish, probe_image};
use common::{NoInterrupt, Serial};
use vmm_backend::devices::legacy::LegacyDevices;
use vmm_backend::virtio::VirtioDevice;
use vmm_backend::virtio::block::Block;
use vmm_backend::virtio::mmio::MmioTransport;
use vmm_backend::virtio::mmio_device::VirtioMmioDevices;
use vmm_backend::virtio::rng::Rng;
use vmm_backend::{BootSource, Vm, VmConfig, VmExitReason};

const BLK_BASE: u64 = 0xd000_1000;
const RNG_BASE: u64 = 0xd000_2000;

fn transport(vm: &Vm, device: Box<dyn VirtioDevice>) -> Arc<Mutex<MmioTransport>> {
    Arc::new(Mutex::new(MmioTransport::new(
        device,
        Arc::new(vm.memory().clone()),
        Arc::new(NoInterrupt),
    )))
}

/// How the devices are put on the VM.
#[derive(Clone, Copy)]
enum Wiring {
    /// Transports straight on the MMIO bus: QueueNotify is an MMIO exit handled on the vCPU.
    Bus,
    /// `VirtioMmioDevices`: irqfds, ioeventfds on QueueNotify and the device thread, as
    /// berth-vmm has them.
    Ioeventfd,
}

fn probe_drives_blk_and_rng(wiring: Wiring) {
    let disk = tempfile::NamedTempFile::new().expect("a temporary disk");
    let mut image = vec![0u8; 8 * 512];
    image[512..512 + 33].copy_from_slice(b"BERTH-SECTOR-ONE: a known pattern");
    std::fs::write(disk.path(), &image).expect("write the disk");

    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 16 << 20,
    })
    .expect("a VM");
    let serial = Serial::default();
    let _legacy = LegacyDevices::attach(&mut vm, Box::new(serial.clone())).expect("legacy devices");
    let block = Block::open(disk.path(), false, "probe-disk").expect("open the disk");
    let mut _device_thread = None;
    match wiring {
        Wiring::Bus => {
            vm.add_mmio_device(BLK_BASE, 0x200, transport(&vm, Box::new(block)))
                .expect("blk on the bus");
            vm.add_mmio_device(RNG_BASE, 0x200, transport(&vm, Box::new(Rng::new())))
                .expect("rng on the bus");
        }
        Wiring::Ioeventfd => {
            // The probe's fixed layout: blk at 0xd000_1000, rng one page above.
            let mut devices = VirtioMmioDevices::with_base(BLK_BASE);
            let blk = devices.attach(&mut vm, Box::new(block)).expect("blk");
            let rng = devices.attach(&mut vm, Box::new(Rng::new())).expect("rng");
            assert_eq!(
                (u64::from(blk.base), u64::from(rng.base)),
                (BLK_BASE, RNG_BASE)
            );
            assert_ne!(blk.irq, rng.irq);
            assert_eq!(devices.acpi_devices(), vec![blk, rng]);
            _device_thread = Some(devices.start().expect("the device thread"));
        }
    }
    let image = probe_image(ProbeFinish::Virtio);
    vm.load(&BootSource::Flat {
        image,
        load_addr: PROBE_LOAD_ADDR,
        entry: PROBE_LOAD_ADDR,
    })
    .expect("load");
    let reason = common::run_with_limit(vm, Duration::from_secs(20));

    let out =
        String::from_utf8_lossy(&serial.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert_eq!(reason, VmExitReason::PowerOff, "{out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("blk") || l.contains("rng"))
        .collect();
    assert_eq!(lines[0], "BERTH-PROBE: blk read used 513 status 0", "{out}");
    assert_eq!(
        lines[1], "BERTH-PROBE: blk sector 1: BERTH-SECTOR-ONE: a known pattern",
        "{out}"
    );
    assert_eq!(lines[2], "BERTH-PROBE: blk write used 1 status 0", "{out}");
    assert_eq!(lines[3], "BERTH-PROBE: blk flush used 1 status 0", "{out}");
    let rng = lines[4]
        .strip_prefix("BERTH-PROBE: rng used 16 bytes ")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(rng.len(), 32, "{out}");
    assert_ne!(rng, "0".repeat(32), "random bytes arrived: {out}");

    let on_disk = std::fs::read(disk.path()).expect("read the disk");
    let sector2 = &on_disk[1024..1024 + 39];
    assert_eq!(
        sector2, b"written by the probe through virtio-blk",
        "the guest's write is in the host file"
    );
}

#[test]
fn probe_reads_and_writes_a_disk_and_reads_entropy_through_virtio_mmio() {
    if !common::kvm_available("probe_reads_and_writes_a_disk_and_reads_entropy_through_virtio_mmio")
    {
        return;
    }
    probe_drives_blk_and_rng(Wiring::Bus);
}

#[test]
fn the_same_through_ioeventfds_and_the_device_thread() {
    if !common::kvm_available("the_same_through_ioeventfds_and_the_device_thread") {
        return;
    }
    probe_drives_blk_and_rng(Wiring::Ioeventfd);
}
