//! The Berth network's DHCP server (RFC 2131), for the VMs on it: each card (by its MAC) has
//! the one address berthd gave it, with the gateway, a /16 mask, pasta's DNS forwarder and the
//! cards' MTU (berthd's); a card berthd did not name gets no answer.
//!
//! **Decision: a DHCP server of Berth's own, not dnsmasq**: what it must answer is one fixed
//! table; dnsmasq would run as root under the root daemon parsing what guests send, and under a
//! rootless one its privilege drop (setgroups, setuid to `dnsmasq`) fails in a namespace whose
//! ids are only the user's. This one is a bounds-checked parser of one message at a time,
//! answering from the table only (fuzzed: `fuzz/dhcp`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::bridge::{BRIDGE, BridgeNetwork, GATEWAY, PREFIX};
use super::network::DNS_FORWARD;

/// The DHCP server's and client's UDP ports.
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// The magic cookie before the options.
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Where the options start: the fixed BOOTP fields and the cookie.
const OPTIONS_AT: usize = 240;
/// How long an address is leased: a day (the table does not change while the VM runs).
const LEASE_SECONDS: u32 = 86_400;

/// DHCP message types (option 53).
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const INFORM: u8 = 8;

/// Which card has which address.
pub type Table = Arc<Mutex<HashMap<[u8; 6], Ipv4Addr>>>;

/// A request the server answers: who asked, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request<'a> {
    kind: u8,
    xid: [u8; 4],
    flags: [u8; 2],
    ciaddr: Ipv4Addr,
    giaddr: [u8; 4],
    mac: [u8; 6],
    /// Option 50, the address a REQUEST asks for.
    requested: Option<Ipv4Addr>,
    /// Option 54, the server a REQUEST answers (another server's offer is not ours).
    server: Option<Ipv4Addr>,
    /// The client's hardware address field as sent, for the answer.
    chaddr: &'a [u8],
}

/// Reads a BOOTREQUEST of an Ethernet card; `None` for anything else.
fn parse(message: &[u8]) -> Option<Request<'_>> {
    // op BOOTREQUEST, htype Ethernet, hlen 6.
    if message.len() < OPTIONS_AT || message[0] != 1 || message[1] != 1 || message[2] != 6 {
        return None;
    }
    if message[236..240] != COOKIE {
        return None;
    }
    let ip = |at: usize| -> Option<Ipv4Addr> {
        let bytes: [u8; 4] = message.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(bytes))
    };
    let (mut kind, mut requested, mut server) = (None, None, None);
    let mut at = OPTIONS_AT;
    while let Some(&code) = message.get(at) {
        match code {
            0 => {
                at += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*message.get(at + 1)?);
        let value = message.get(at + 2..at + 2 + len)?;
        match (code, value) {
            (53, [k]) => kind = Some(*k),
            (50, [a, b, c, d]) => requested = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            (54, [a, b, c, d]) => server = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => {}
        }
        at += 2 + len;
    }
    Some(Request {
        kind: kind?,
        xid: message[4..8].try_into().ok()?,
        flags: message[10..12].try_into().ok()?,
        ciaddr: ip(12)?,
        giaddr: message[24..28].try_into().ok()?,
        mac: message[28..34].try_into().ok()?,
        requested,
        server,
        chaddr: &message[28..44],
    })
}

/// The answer to `message` from `table`, if it gets one; `mtu` is the cards'.
pub fn answer(message: &[u8], table: &HashMap<[u8; 6], Ipv4Addr>, mtu: u16) -> Option<Vec<u8>> {
    let request = parse(message)?;
    let address = *table.get(&request.mac)?;
    let (kind, yiaddr) = match request.kind {
        DISCOVER => (OFFER, address),
        REQUEST => {
            if request.server.is_some_and(|s| s != GATEWAY) {
                // It took another server's offer.
                return None;
            }
            let asked = request.requested.unwrap_or(request.ciaddr).to_bits();
            if asked == address.to_bits() {
                (ACK, address)
            } else {
                (NAK, Ipv4Addr::UNSPECIFIED)
            }
        }
        // The client has its address and asks for the rest.
        INFORM => (ACK, Ipv4Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut out = vec![0u8; OPTIONS_AT];
    out[0] = 2; // BOOTREPLY
    out[1] = 1;
    out[2] = 6;
    out[4..8].copy_from_slice(&request.xid);
    out[10..12].copy_from_slice(&request.flags);
    if request.kind == INFORM {
        out[12..16].copy_from_slice(&request.ciaddr.octets());
    }
    out[16..20].copy_from_slice(&yiaddr.octets());
    out[24..28].copy_from_slice(&request.giaddr);
    out[28..28 + request.chaddr.len()].copy_from_slice(request.chaddr);
    out[236..240].copy_from_slice(&COOKIE);
    let mut option = |code: u8, value: &[u8]| {
        out.push(code);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    };
    option(53, &[kind]);
    option(54, &GATEWAY.octets());
    if kind != NAK {
        let mask = u32::MAX << (32 - PREFIX);
        if request.kind != INFORM {
            option(51, &LEASE_SECONDS.to_be_bytes());
        }
        option(1, &mask.to_be_bytes());
        option(3, &GATEWAY.octets());
        if let Ok(dns) = DNS_FORWARD.parse::<Ipv4Addr>() {
            option(6, &dns.octets());
        }
        option(26, &mtu.to_be_bytes());
    }
    out.push(255);
    // BOOTP's smallest message, which some clients still expect.
    if out.len() < 300 {
        out.resize(300, 0);
    }
    Some(out)
}

/// The server, answering on the bridge until dropped.
pub struct Dhcp {
    socket: Arc<UdpSocket>,
    stopped: Arc<AtomicBool>,
}

impl Dhcp {
    /// Serves `table` on the bridge of `network`, handing out `mtu`.
    pub fn serve(network: &BridgeNetwork, table: Table, mtu: u16) -> std::io::Result<Dhcp> {
        let socket = network.socket(|| {
            let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT))?;
            socket.set_broadcast(true)?;
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::BindToDevice,
                &std::ffi::OsString::from(BRIDGE),
            )?;
            Ok(socket)
        })?;
        let socket = Arc::new(socket);
        let stopped = Arc::new(AtomicBool::new(false));
        let (serving, stop) = (Arc::clone(&socket), Arc::clone(&stopped));
        std::thread::Builder::new()
            .name("dhcp".into())
            .spawn(move || {
                let mut message = vec![0u8; 1500];
                loop {
                    let received = serving.recv_from(&mut message);
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok((len, _)) = received else { continue };
                    let reply = {
                        let table = table.lock().unwrap_or_else(PoisonError::into_inner);
                        answer(&message[..len], &table, mtu)
                    };
                    // The client has no address yet: the answer is broadcast on the bridge.
                    if let Some(reply) = reply {
                        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT);
                        let _ = serving.send_to(&reply, to);
                    }
                }
            })?;
        Ok(Dhcp { socket, stopped })
    }
}

impl Drop for Dhcp {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        super::proxy::wake_blocked(self.socket.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];
    const VM: Ipv4Addr = Ipv4Addr::new(10, 89, 128, 1);
    const MTU: u16 = 1500;

    fn request(kind: u8, options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; OPTIONS_AT];
        m[0] = 1;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&[1, 2, 3, 4]);
        m[10] = 0x80;
        m[28..34].copy_from_slice(&MAC);
        m[236..240].copy_from_slice(&COOKIE);
        m.extend_from_slice(&[53, 1, kind]);
        m.extend_from_slice(options);
        m.push(255);
        m
    }

    fn options(reply: &[u8]) -> HashMap<u8, Vec<u8>> {
        let mut found = HashMap::new();
        let mut at = OPTIONS_AT;
        while reply[at] != 255 {
            let len = usize::from(reply[at + 1]);
            found.insert(reply[at], reply[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        found
    }

    fn table() -> HashMap<[u8; 6], Ipv4Addr> {
        HashMap::from([(MAC, VM)])
    }

    #[test]
    fn a_known_card_is_offered_and_given_its_address_with_the_networks_settings() {
        let offer = answer(&request(DISCOVER, &[]), &table(), MTU).unwrap();
        assert_eq!(offer[0], 2);
        assert_eq!(offer[4..8], [1, 2, 3, 4], "the transaction");
        assert_eq!(offer[10], 0x80, "the broadcast flag");
        assert_eq!(offer[16..20], VM.octets());
        assert_eq!(offer[28..34], MAC);
        let o = options(&offer);
        assert_eq!(o[&53], [OFFER]);
        assert_eq!(o[&54], [10, 89, 0, 1]);
        assert_eq!(o[&1], [255, 255, 0, 0]);
        assert_eq!(o[&3], [10, 89, 0, 1]);
        assert_eq!(o[&6], [169, 254, 0, 1]);
        assert_eq!(o[&26], 1500u16.to_be_bytes());
        assert_eq!(o[&51], LEASE_SECONDS.to_be_bytes());

        let ack = answer(
            &request(REQUEST, &[50, 4, 10, 89, 128, 1, 54, 4, 10, 89, 0, 1]),
            &table(),
            MTU,
        )
        .unwrap();
        assert_eq!(options(&ack)[&53], [ACK]);
        assert_eq!(ack[16..20], VM.octets());
    }

    #[test]
    fn another_address_is_refused_and_strangers_and_garbage_get_nothing() {
        let nak = answer(&request(REQUEST, &[50, 4, 10, 89, 128, 9]), &table(), MTU).unwrap();
        assert_eq!(options(&nak)[&53], [NAK]);
        assert_eq!(nak[16..20], [0, 0, 0, 0]);
        // Another server's offer taken: not ours to answer.
        assert!(answer(&request(REQUEST, &[54, 4, 192, 168, 0, 1]), &table(), MTU).is_none());
        assert!(answer(&request(DISCOVER, &[]), &HashMap::new(), MTU).is_none());
        let mut cut = request(DISCOVER, &[]);
        cut.truncate(100);
        assert!(answer(&cut, &table(), MTU).is_none());
        // An option running past the end: the message is broken, not answered.
        let mut long = request(DISCOVER, &[]);
        long.pop();
        long.extend_from_slice(&[12, 200, 1]);
        assert!(answer(&long, &table(), MTU).is_none());
        let mut no_type = request(DISCOVER, &[]);
        no_type[OPTIONS_AT..OPTIONS_AT + 3].copy_from_slice(&[12, 250, 0]);
        assert!(answer(&no_type, &table(), MTU).is_none());
    }
}
