//! Loopback helpers of the network tests (this crate's, and container-backend's runtime tests,
//! which include this file): a free port, and an HTTP GET retried until something answers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port of the host's loopback nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `GET path` on 127.0.0.1:port, retried until it answers (10 s at most); the whole response.
pub fn http_get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match answer {
            Ok(text) if !text.is_empty() => return text,
            other => assert!(
                Instant::now() < deadline,
                "nothing answered on port {port}: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
