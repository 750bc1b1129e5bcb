//! Helpers shared by the tests that run guests on /dev/kvm.
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use vmm_backend::{Vm, VmExitReason};

/// True when /dev/kvm exists; otherwise prints why the calling test does nothing.
pub fn kvm_available(test: &str) -> bool {
    let present = std::path::Path::new("/dev/kvm").exists();
    if !present {
        eprintln!("skipping {test}: /dev/kvm is absent on this machine");
    }
    present
}

/// Runs `vm` but stops it after `limit`, so a guest that hangs fails the test
/// (as `VmExitReason::Stopped`) instead of hanging it.
pub fn run_with_limit(vm: Vm, limit: Duration) -> VmExitReason {
    let stop = vm.stop_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            stop.stop();
        }
    });
    let reason = vm.run().expect("the VM starts");
    let _ = done_tx.send(());
    watchdog.join().expect("the watchdog thread does not panic");
    reason
}

pub mod probe;

/// For probes that poll their used rings: interrupts are not wired.
pub struct NoInterrupt;
impl vmm_backend::virtio::InterruptSink for NoInterrupt {
    fn signal_used_queue(&self) {}
    fn signal_config(&self) {}
}

/// The serial port's output, collected for assertions.
#[derive(Clone, Default)]
pub struct Serial(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Serial {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
