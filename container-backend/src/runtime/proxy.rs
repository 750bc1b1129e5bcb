//! The published ports of a container on the Berth network: the daemon listens on the host and
//! carries each TCP connection, and each UDP peer's datagrams, to the container's address inside
//! the network's namespace, as Docker's docker-proxy and Podman's rootlessport carry theirs.
//! (pasta publishes the ports of a container on its own pasta; the bridge's pasta is shared and
//! its ports are fixed when it starts.) The container sees connections come from the gateway.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_api::network::{PortForward, Protocol};

use super::bridge::BridgeNetwork;
use super::network::NetworkError;

/// How long a UDP peer's way to the container is kept without a datagram either way.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How long a connection to the container may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The sockets inside the network of a UDP port's peers, by peer.
type UdpPeers = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// A socket listening on the host for one published port.
#[derive(Debug)]
enum Listening {
    Tcp(Arc<TcpListener>),
    /// With its peers' sockets, whose threads hold it to answer them.
    Udp(Arc<UdpSocket>, UdpPeers),
}

/// The published ports of one container, carried until [`Published::close`].
#[derive(Debug)]
pub struct Published {
    listening: Vec<Listening>,
    closed: Arc<AtomicBool>,
}

impl Published {
    /// Listens on the host for each of `ports` and carries what arrives to `address` in
    /// `network`. Every port is bound before any is carried: one in use fails them all.
    pub fn open(
        network: &BridgeNetwork,
        address: Ipv4Addr,
        ports: &[PortForward],
    ) -> Result<Published, NetworkError> {
        let mut listening = Vec::new();
        for port in ports {
            let host = SocketAddr::new(
                port.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                port.host_port,
            );
            let bound = match port.protocol {
                Protocol::Tcp => TcpListener::bind(host).map(|l| Listening::Tcp(Arc::new(l))),
                Protocol::Udp => {
                    UdpSocket::bind(host).map(|s| Listening::Udp(Arc::new(s), UdpPeers::default()))
                }
            };
            listening.push(bound.map_err(|source| NetworkError::Publish {
                port: port.published(),
                source,
            })?);
        }
        let published = Published {
            listening,
            closed: Arc::new(AtomicBool::new(false)),
        };
        for (listening, port) in published.listening.iter().zip(ports) {
            let target = SocketAddr::new(IpAddr::V4(address), port.target_port);
            let (network, closed) = (network.clone(), Arc::clone(&published.closed));
            match listening {
                Listening::Tcp(listener) => {
                    let listener = Arc::clone(listener);
                    std::thread::spawn(move || carry_tcp(&listener, &network, target, &closed));
                }
                Listening::Udp(socket, peers) => {
                    let (socket, peers) = (Arc::clone(socket), Arc::clone(peers));
                    std::thread::spawn(move || {
                        carry_udp(&socket, &peers, &network, target, &closed);
                    });
                }
            }
        }
        Ok(published)
    }

    /// Stops listening, and answering UDP peers, so the host's ports are free at once (TCP
    /// connections under way go on until either side ends them).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for listening in &self.listening {
            match listening {
                Listening::Tcp(l) => wake_blocked(l.as_ref()),
                Listening::Udp(s, peers) => {
                    wake_blocked(s.as_ref());
                    for inner in peers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .values()
                    {
                        wake_blocked(inner.as_ref());
                    }
                }
            }
        }
    }
}

/// Shuts `socket` down both ways, which wakes a thread blocked on it (in accept or recv) to
/// see that it is to stop; the socket stays open for whoever still holds it.
pub(crate) fn wake_blocked(socket: &impl AsRawFd) {
    let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

impl Drop for Published {
    fn drop(&mut self) {
        self.close();
    }
}

/// Accepts connections on `listener` and joins each to a connection to `target`, until
/// `closed`.
fn carry_tcp(
    listener: &TcpListener,
    network: &BridgeNetwork,
    target: SocketAddr,
    closed: &AtomicBool,
) {
    loop {
        let accepted = listener.accept();
        if closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok((client, _)) = accepted else {
            // Out of descriptors, or a connection reset before it was taken: go on shortly.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let network = network.clone();
        std::thread::spawn(move || {
            match network.socket(|| TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)) {
                Ok(upstream) => join(client, upstream),
                // Nothing listens in the container: the client sees the connection end.
                Err(_) => drop(client),
            }
        });
    }
}

/// A connected stream a relay joins to another.
pub(crate) trait Stream: io::Read + io::Write + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    /// Tells the other side nothing more comes (a half close).
    fn end_writes(&self);
}

impl Stream for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn end_writes(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Stream for std::os::unix::net::UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn end_writes(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// Copies both ways between `a` and `b`; each side's end is passed on as a half close.
pub(crate) fn join<A: Stream, B: Stream>(a: A, b: B) {
    let (Ok(mut a_read), Ok(mut b_read)) = (a.duplicate(), b.duplicate()) else {
        return;
    };
    let (mut a_write, mut b_write) = (a, b);
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut b_read, &mut a_write);
        a_write.end_writes();
    });
    let _ = io::copy(&mut a_read, &mut b_write);
    b_write.end_writes();
    let _ = back.join();
}

/// Receives datagrams on `socket` and sends each on to `target` from a socket of the sender's
/// own inside the network, whose answers go back to the sender, until `closed`.
fn carry_udp(
    socket: &Arc<UdpSocket>,
    peers: &UdpPeers,
    network: &BridgeNetwork,
    target: SocketAddr,
    closed: &AtomicBool,
) {
    let mut datagram = vec![0u8; 65536];
    loop {
        let received = socket.recv_from(&mut datagram);
        if closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok((length, peer)) = received else {
            continue;
        };
        let existing = peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .cloned();
        let inner = match existing {
            Some(inner) => inner,
            None => {
                let Ok(inner) = network.socket(|| {
                    let inner = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                    inner.connect(target)?;
                    inner.set_read_timeout(Some(UDP_IDLE))?;
                    Ok(Arc::new(inner))
                }) else {
                    continue;
                };
                peers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(peer, Arc::clone(&inner));
                let (outer, answering, peers) =
                    (Arc::clone(socket), Arc::clone(&inner), Arc::clone(peers));
                std::thread::spawn(move || {
                    let mut answer = vec![0u8; 65536];
                    // Answers until the peer has been quiet for a while, or the port closes
                    // (the socket shut down reads empty; an empty answer ends it too).
                    while let Ok(length) = answering.recv(&mut answer) {
                        if length == 0 {
                            break;
                        }
                        if outer.send_to(&answer[..length], peer).is_err() {
                            break;
                        }
                    }
                    peers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&peer);
                });
                inner
            }
        };
        let _ = inner.send(&datagram[..length]);
    }
}
