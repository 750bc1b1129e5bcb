//! The probe guest reads a virtio-input keyboard on this machine's /dev/kvm: its name through
//! the select/subsel config space, then key events another host thread pushes while the guest
//! runs.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::probe::{PROBE_LOAD_ADDR, ProbeFinish, probe_image};
use common::{NoInterrupt, Serial};
use vmm_backend::devices::legacy::LegacyDevices;

use berth_api::input::{InputDevice, key_events};
use vmm_backend::virtio::input::Input;
use vmm_backend::virtio::mmio::MmioTransport;
use vmm_backend::{BootSource, Vm, VmConfig, VmExitReason};

const INPUT_BASE: u64 = 0xd000_4000;
const KEY_A: u16 = 30;

#[test]
fn probe_reads_the_keyboard_name_and_queued_key_events() {
    if !common::kvm_available("probe_reads_the_keyboard_name_and_queued_key_events") {
        return;
    }
    let mut vm = Vm::new(&VmConfig {
        vcpus: 1,
        memory_size: 16 << 20,
    })
    .expect("a VM");
    let serial = Serial::default();
    let _legacy = LegacyDevices::attach(&mut vm, Box::new(serial.clone())).expect("legacy devices");
    let keyboard = Input::new(InputDevice::Keyboard, "probe-kbd").expect("keyboard");
    let handle = keyboard.handle();
    let transport = Arc::new(Mutex::new(MmioTransport::new(
        Box::new(keyboard),
        Arc::new(vm.memory().clone()),
        Arc::new(NoInterrupt),
    )));
    vm.add_mmio_device(INPUT_BASE, 0x200, transport.clone())
        .expect("input on the bus");
    // Another thread types once the guest's driver is up (a reset drops earlier events), and
    // plays the VMM loop's part: on each wake-up it processes the event queue.
    let feeder = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while transport.lock().unwrap().status() & 4 == 0 {
            if Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        handle.push(&key_events(KEY_A, true).unwrap()).unwrap();
        handle.push(&key_events(KEY_A, false).unwrap()).unwrap();
        while handle.pending() > 0 && Instant::now() < deadline {
            if handle.wake_fd().read().is_ok() || handle.pending() > 0 {
                transport.lock().unwrap().process_queue(0);
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    });
    vm.load(&BootSource::Flat {
        image: probe_image(ProbeFinish::Input),
        load_addr: PROBE_LOAD_ADDR,
        entry: PROBE_LOAD_ADDR,
    })
    .expect("load");
    let reason = common::run_with_limit(vm, Duration::from_secs(20));
    feeder.join().unwrap();

    let out =
        String::from_utf8_lossy(&serial.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert_eq!(reason, VmExitReason::PowerOff, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" input ")).collect();
    assert_eq!(
        lines,
        [
            "BERTH-PROBE: input name Berth Keyboard",
            "BERTH-PROBE: input event used 8 0001 001e 00000001",
            "BERTH-PROBE: input event used 8 0000 0000 00000000",
            "BERTH-PROBE: input event used 8 0001 001e 00000000",
            "BERTH-PROBE: input event used 8 0000 0000 00000000",
        ],
        "{out}"
    );
}
