//! Arbitrary bytes as an ISO image: volume descriptors, directories (Rock Ridge, Joliet), the
//! El Torito catalog, boot configs and file reads must give errors, never panics or hangs.
//! The same entry point replays fixed inputs in berth-iso's unit tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_iso::fuzz_inspect(data);
});
