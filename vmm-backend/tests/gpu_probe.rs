//! The probe guest draws through virtio-gpu on this machine's /dev/kvm, as the Linux driver
//! would: display info, a 64x48 resource with guest backing, a known pattern, transfer, scanout,
//! flush. The test then reads the shared framebuffer and checks it pixel for pixel.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_display::framebuffer::FramebufferReader;
use berth_display::gpu::{DisplayEvent, GpuConfig};
use common::probe::{PROBE_LOAD_ADDR, ProbeFinish, probe_image};
use common::{NoInterrupt, Serial};
use vmm_backend::devices::legacy::LegacyDevices;

use vmm_backend::virtio::gpu::VirtioGpu;
use vmm_backend::virtio::mmio::MmioTransport;
use vmm_backend::{BootSource, Vm, VmConfig, VmExitReason};

const GPU_BASE: u64 = 0xd000_3000;

/// `gpu_pattern` in probe/gpu.h.
fn pattern(x: u32, y: u32) -> [u8; 4] {
    ((x * 4) | ((y * 5) << 8) | ((((x + y) * 3) & 0xff) << 16) | 0xff00_0000).to_le_bytes()
}

#[test]
fn probe_draws_a_pattern_that_reaches_the_framebuffer_pixel_for_pixel() {
    if !common::kvm_available("probe_draws_a_pattern_that_reaches_the_framebuffer_pixel_for_pixel")
    {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 16 << 20,
    })
    .expect("a VM");
    let serial = Serial::default();
    let _legacy = LegacyDevices::attach(&mut vm, Box::new(serial.clone())).expect("legacy devices");
    let mut gpu = VirtioGpu::new(GpuConfig {
        width: 64,
        height: 48,
        ..GpuConfig::default()
    })
    .expect("gpu");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    gpu.set_event_sink(Box::new(move |e| sink.lock().unwrap().push(e)));
    let fd = gpu.gpu().framebuffer().fd().try_clone_to_owned().unwrap();
    let mut reader = FramebufferReader::open(fd).expect("map the framebuffer");
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        Box::new(gpu),
        Arc::new(vm.memory().clone()),
        Arc::new(NoInterrupt),
    )));
    vm.add_mmio_device(GPU_BASE, 0x200, transport)
        .expect("gpu on the bus");
    vm.load(&BootSource::Flat {
        image: probe_image(ProbeFinish::Gpu),
        load_addr: PROBE_LOAD_ADDR,
        entry: PROBE_LOAD_ADDR,
    })
    .expect("load");
    let reason = common::run_with_limit(vm, Duration::from_secs(20));

    let out =
        String::from_utf8_lossy(&serial.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert_eq!(reason, VmExitReason::PowerOff, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" gpu ")).collect();
    assert_eq!(
        lines,
        [
            "BERTH-PROBE: gpu display-info used 408 type 0x1101",
            "BERTH-PROBE: gpu mode 64x48 enabled 1",
            "BERTH-PROBE: gpu create used 24 type 0x1100",
            "BERTH-PROBE: gpu attach used 24 type 0x1100",
            "BERTH-PROBE: gpu transfer used 24 type 0x1100",
            "BERTH-PROBE: gpu scanout used 24 type 0x1100",
            "BERTH-PROBE: gpu flush used 24 type 0x1100",
            "BERTH-PROBE: gpu bad-flush used 24 type 0x1203",
        ],
        "{out}"
    );

    let frame = reader.read_frame().expect("a frame");
    assert_eq!((frame.width, frame.height, frame.format), (64, 48, 2));
    for y in 0..48u32 {
        for x in 0..64u32 {
            let i = ((y * 64 + x) * 4) as usize;
            assert_eq!(frame.pixels[i..i + 4], pattern(x, y), "pixel {x},{y}");
        }
    }
    let events = events.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            DisplayEvent::Damage { rect, .. } if (rect.width, rect.height) == (64, 48)
        )),
        "{events:?}"
    );
}
