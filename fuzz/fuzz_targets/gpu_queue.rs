//! Arbitrary bytes as guest memory and split-ring descriptor chains, fed to the virtio-gpu 2D
//! command processor's control queue (even first byte) or cursor queue (odd).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth_display::fuzzing::gpu_queue(data);
});
