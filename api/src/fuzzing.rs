//! The path bytes from a peer take through this crate before the daemon acts on them: split
//! into frames, parse, and run the request's pure validations. The `api_frames` fuzz target
//! feeds it arbitrary bytes; a unit test feeds it fixed inputs so it cannot rot.

use crate::frame::split_frame;
use crate::protocol::{ClientFrame, parse_client_frame};
use crate::request::Request;
use crate::utilisation::Resources;
use crate::validate;

/// Feed `data` as if a peer had sent it; returns how many frames were parsed as requests.
/// Must never panic, whatever the bytes.
pub fn client_bytes(data: &[u8]) -> usize {
    let host = Resources {
        cpus: 4.0,
        memory: 16 << 30,
        disk: 100 << 30,
    };
    let mut rest = data;
    let mut requests = 0;
    while let Ok(Some((body, used))) = split_frame(rest) {
        rest = &rest[used..];
        let Ok(ClientFrame::Request { request, .. }) = parse_client_frame(body) else {
            continue;
        };
        requests += 1;
        let _ = request.title();
        if let Request::VmCreate(spec) = &request {
            let _ = validate::name("VM", &spec.name);
            let asked = Resources {
                cpus: f64::from(spec.cpus),
                memory: spec.memory,
                disk: spec.disk,
            };
            let _ = validate::vm_resources(&asked, &host, spec.overcommit);
            if let Some(crate::vm::BootSource::Kernel { cmdline, .. }) = &spec.boot {
                let _ = validate::cmdline(cmdline);
            }
        }
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;
    use crate::vm::VmSpec;

    #[test]
    fn fixed_inputs() {
        let create = ClientFrame::Request {
            id: 1,
            request: Request::VmCreate(VmSpec {
                name: "x".into(),
                cpus: u32::MAX,
                memory: u64::MAX,
                disk: u64::MAX,
                boot: None,
                overcommit: true,
                ..Default::default()
            }),
        };
        let mut two = encode(&create).unwrap();
        two.extend(
            encode(&ClientFrame::Request {
                id: 2,
                request: Request::Host,
            })
            .unwrap(),
        );
        assert_eq!(client_bytes(&two), 2);
        assert_eq!(client_bytes(b""), 0);
        assert_eq!(client_bytes(&[0xff; 64]), 0);
        assert_eq!(client_bytes(&[0, 0, 0, 2, b'{', b'}']), 0);
        assert_eq!(
            client_bytes(&two[..two.len() - 1]),
            1,
            "a cut-off second frame is not parsed"
        );
    }
}
