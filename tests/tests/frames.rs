//! Malformed frames: each gets an error frame or a closed connection; berthd stays up and its
//! other clients do not notice.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth_api::error::ErrorKind;
use berth_api::frame::{encode, split_frame};
use berth_api::protocol::{ClientFrame, PROTOCOL_VERSION, ServerFrame};
use berth_api::{Reply, Request};
use berth_e2e::{Daemon, open_tempdir};

/// A raw connection that has said hello.
fn connect(daemon: &Daemon) -> UnixStream {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello = ClientFrame::Hello {
        protocol: PROTOCOL_VERSION,
        client: "raw".into(),
    };
    stream.write_all(&encode(&hello).unwrap()).unwrap();
    assert!(matches!(
        read(&mut stream),
        Some(ServerFrame::Welcome { .. })
    ));
    stream
}

/// The next frame, or None when the daemon closed the connection.
fn read(stream: &mut UnixStream) -> Option<ServerFrame> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((body, _)) = split_frame(&buf).unwrap() {
            return Some(serde_json::from_slice(body).unwrap());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading from berthd: {e}"),
        }
    }
}

fn closed(stream: &mut UnixStream) -> bool {
    read(stream).is_none()
}

fn error_of(frame: Option<ServerFrame>) -> (Option<u64>, berth_api::ApiError) {
    match frame {
        Some(ServerFrame::Error { id, error }) => (id, error),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn request(stream: &mut UnixStream, id: u64, request: Request) -> ServerFrame {
    stream
        .write_all(&encode(&ClientFrame::Request { id, request }).unwrap())
        .unwrap();
    read(stream).expect("an answer")
}

#[test]
fn malformed_frames_get_errors_and_hurt_no_one_else() {
    let dir = open_tempdir();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let mut bystander = connect(&daemon);

    // Garbage: an HTTP request read as a length prefix is ~1.2 GB: refused, connection closed.
    let mut s = connect(&daemon);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (_, e) = error_of(read(&mut s));
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(
        e.message.contains("exceeds the limit of 1048576 bytes"),
        "{e}"
    );
    assert!(closed(&mut s));

    // A 2 GiB length prefix: refused before any of it is read or allocated.
    let mut s = connect(&daemon);
    s.write_all(&(2u32 << 30).to_be_bytes()).unwrap();
    let (_, e) = error_of(read(&mut s));
    assert!(
        e.message.contains("frame of 2147483648 bytes exceeds"),
        "{e}"
    );
    assert!(closed(&mut s));

    // Truncated JSON in a well-formed frame: an error, and the connection stays usable.
    let mut s = connect(&daemon);
    let body = br#"{"frame":"request","id":1,"request":{"requ"#;
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    let (id, e) = error_of(read(&mut s));
    assert_eq!((id, e.kind), (None, ErrorKind::Protocol), "{e}");
    assert!(matches!(
        request(&mut s, 2, Request::VmList),
        ServerFrame::Response {
            id: 2,
            result: Ok(Reply::VmList(_))
        }
    ));

    // An unknown request: an error that carries its id and names it.
    let body = br#"{"frame":"request","id":41,"request":{"request":"vm_self_destruct"}}"#;
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    let (id, e) = error_of(read(&mut s));
    assert_eq!(id, Some(41));
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("vm_self_destruct"), "{e}");

    // Valid JSON of the wrong shape, and a second hello.
    s.write_all(&encode(&serde_json::json!([1, 2, 3])).unwrap())
        .unwrap();
    assert_eq!(error_of(read(&mut s)).1.kind, ErrorKind::InvalidRequest);
    s.write_all(
        &encode(&ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            client: "again".into(),
        })
        .unwrap(),
    )
    .unwrap();
    assert!(error_of(read(&mut s)).1.message.contains("already"));
    assert!(matches!(
        request(&mut s, 3, Request::Host),
        ServerFrame::Response {
            id: 3,
            result: Ok(_)
        }
    ));

    // A frame cut off by a hang-up.
    let mut s = connect(&daemon);
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(b"{\"frame\"").unwrap();
    drop(s);

    // No hello at all, and a wrong protocol version.
    let mut s = UnixStream::connect(&daemon.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        &encode(&ClientFrame::Request {
            id: 1,
            request: Request::Host,
        })
        .unwrap(),
    )
    .unwrap();
    assert!(error_of(read(&mut s)).1.message.contains("must be a hello"));
    assert!(closed(&mut s));
    let mut s = UnixStream::connect(&daemon.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        &encode(&ClientFrame::Hello {
            protocol: 999,
            client: "future".into(),
        })
        .unwrap(),
    )
    .unwrap();
    let (_, e) = error_of(read(&mut s));
    assert_eq!(e.kind, ErrorKind::VersionMismatch);
    assert!(e.message.contains("protocol 999"), "{e}");

    // Through all of it the daemon stayed up and the bystander is served as before.
    assert!(daemon.is_running(), "{}", daemon.log());
    assert!(matches!(
        request(&mut bystander, 7, Request::Host),
        ServerFrame::Response {
            id: 7,
            result: Ok(_)
        }
    ));
    let _fresh = connect(&daemon);
}
