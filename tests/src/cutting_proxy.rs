//! A TCP proxy on loopback in front of an HTTP server that breaks connections the way a flaky
//! network does: the response to the next `cuts` requests whose request line holds a given
//! text (a blob's digest) is cut off after a number of bytes. It notes every request line with
//! its `Range` header, so a test sees whether a client asked for the rest or for everything.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A request the proxy passed on: its request line and its `Range` header if it had one.
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    pub line: String,
    pub range: Option<String>,
}

pub struct CuttingProxy {
    /// `127.0.0.1:PORT`, to use in place of the server's address.
    pub address: String,
    cuts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ProxiedRequest>>>,
}

impl CuttingProxy {
    /// Starts one in front of `upstream` that cuts the responses to requests naming `target`
    /// after `after` bytes (headers included), none until [`CuttingProxy::cut_next`] says.
    pub fn start(upstream: &str, target: &str, after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address").to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (upstream, target) = (upstream.to_owned(), target.to_owned());
        let (thread_cuts, thread_requests) = (cuts.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                relay(
                    client,
                    server,
                    &target,
                    after,
                    thread_cuts.clone(),
                    thread_requests.clone(),
                );
            }
        });
        CuttingProxy {
            address,
            cuts,
            requests,
        }
    }

    /// Cuts the next `n` responses to requests naming the target.
    pub fn cut_next(&self, n: usize) {
        self.cuts.store(n, Ordering::SeqCst);
    }

    /// How many of the cuts asked for are still to come.
    pub fn cuts_left(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// The requests naming `text` so far, and forgets all.
    pub fn take_requests(&self, text: &str) -> Vec<ProxiedRequest> {
        std::mem::take(
            &mut *self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .filter(|r| r.line.contains(text))
        .collect()
    }
}

/// Passes bytes both ways between `client` and `server` on two threads. A client sends its
/// next request on a connection only after the last response, so a request naming the target
/// arms the cut of the response that follows it.
fn relay(
    client: TcpStream,
    server: TcpStream,
    target: &str,
    after: usize,
    cuts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ProxiedRequest>>>,
) {
    let armed = Arc::new(AtomicBool::new(false));
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let target = target.to_owned();
    let upstream_armed = armed.clone();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let text = String::from_utf8_lossy(&buffer[..n]);
            let mut lines = text.split("\r\n");
            if let Some(line) = lines.next()
                && line.contains(" HTTP/1.")
            {
                let range = lines
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(name, _)| name.eq_ignore_ascii_case("range"))
                    })
                    .map(|(_, value)| value.trim().to_owned());
                requests
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(ProxiedRequest {
                        line: line.to_owned(),
                        range,
                    });
                if line.contains(&target)
                    && cuts
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                        .is_ok()
                {
                    upstream_armed.store(true, Ordering::SeqCst);
                }
            }
            if to_server.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        let mut sent = 0;
        loop {
            let n = match from_server.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if armed.load(Ordering::SeqCst) {
                if sent + n >= after {
                    let _ = to_client.write_all(&buffer[..after - sent]);
                    // The network breaks: both ends see the connection go.
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    return;
                }
                sent += n;
            }
            if to_client.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
}
