//! Arbitrary bytes as guest memory and split-ring descriptor chains, fed to virtio-blk
//! (read-write and read-only) and virtio-rng through the virtio-mmio transport.
#![no_main]

use std::fs::File;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One small sparse disk image for the whole run: the targets write to it.
fn disk() -> &'static File {
    static DISK: OnceLock<File> = OnceLock::new();
    DISK.get_or_init(|| {
        let file = tempfile::tempfile().expect("temp disk");
        file.set_len(64 * 1024).expect("disk size");
        file
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = vmm_backend::virtio::fuzzing::virtio_queue(data, disk());
});
