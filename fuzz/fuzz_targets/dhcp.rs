//! Arbitrary bytes as a message a guest sends the Berth network's DHCP server; the card they
//! name has an address, so the answer is built as for a real request.
#![no_main]

use std::collections::HashMap;
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mac: [u8; 6] = data
        .get(28..34)
        .and_then(|m| m.try_into().ok())
        .unwrap_or_default();
    let table = HashMap::from([(mac, Ipv4Addr::new(10, 89, 128, 1))]);
    let _ = container_backend::runtime::dhcp::answer(data, &table, 1500);
});
