//! Arbitrary bytes as guest memory, descriptor chains and what the peer (passt) sends, fed to
//! the virtio-net card through the virtio-mmio transport.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmm_backend::virtio::fuzzing::virtio_net(data);
});
