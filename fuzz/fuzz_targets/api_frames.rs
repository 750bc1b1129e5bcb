//! Bytes from a peer, as berthd reads them: frame splitting, parsing, request validation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    berth_api::fuzzing::client_bytes(data);
});
