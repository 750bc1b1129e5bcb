//! The conversation on one connection.
//!
//! 1. On accept the daemon checks the peer's credentials; a peer that is not allowed gets one
//!    [`ServerFrame::Refused`] and the connection closes.
//! 2. The client sends [`ClientFrame::Hello`] with its protocol version; the daemon answers
//!    [`ServerFrame::Welcome`], or an error of kind `VersionMismatch` and closes.
//! 3. The client sends [`ClientFrame::Request`]s with ids of its choosing; each gets one
//!    [`ServerFrame::Response`] with the same id, in any order. [`ServerFrame::Event`]s arrive in
//!    between once the client has subscribed.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorKind};
use crate::event::Event;
use crate::frame::FrameError;
use crate::host::DaemonMode;
use crate::request::{Reply, Request};

/// The protocol version this crate speaks. Bumped on any incompatible change to the frames (3:
/// `ContainerInspect`, networks and published ports).
pub const PROTOCOL_VERSION: u32 = 3;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "frame")]
pub enum ClientFrame {
    Hello { protocol: u32, client: String },
    Request { id: u64, request: Request },
}

/// What the daemon sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "frame")]
pub enum ServerFrame {
    Welcome {
        protocol: u32,
        server_version: String,
        mode: DaemonMode,
    },
    /// The peer is not allowed; the connection closes after this frame.
    Refused {
        message: String,
    },
    Response {
        id: u64,
        result: Result<Reply, ApiError>,
    },
    /// A frame that could not be answered as a request: malformed, unknown, out of order.
    /// `id` is the request's when it could be read.
    Error {
        id: Option<u64>,
        error: ApiError,
    },
    Event(Event),
}

/// Read a client frame from a frame body. On failure, the id is recovered when the frame is
/// JSON with a numeric `id`, so the error can be matched to its request.
pub fn parse_client_frame(body: &[u8]) -> Result<ClientFrame, (Option<u64>, ApiError)> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        (
            None,
            ApiError::new(ErrorKind::Protocol, FrameError::Json(e).to_string()),
        )
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    serde_json::from_value(value).map_err(|e| {
        (
            id,
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!("not a valid request: {e}"),
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_readable_wire_form() {
        let frame = ClientFrame::Request {
            id: 7,
            request: Request::VmShow { name: "a".into() },
        };
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            json,
            r#"{"frame":"request","id":7,"request":{"request":"vm_show","args":{"name":"a"}}}"#
        );
        assert_eq!(parse_client_frame(json.as_bytes()).unwrap(), frame);
    }

    #[test]
    fn an_unknown_request_keeps_its_id_and_names_the_problem() {
        let body = br#"{"frame":"request","id":9,"request":{"request":"vm_explode"}}"#;
        let (id, err) = parse_client_frame(body).unwrap_err();
        assert_eq!(id, Some(9));
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(err.message.contains("vm_explode"), "{}", err.message);
    }

    #[test]
    fn truncated_json_is_a_protocol_error() {
        let (id, err) = parse_client_frame(br#"{"frame":"request","id":1,"#).unwrap_err();
        assert_eq!(id, None);
        assert_eq!(err.kind, ErrorKind::Protocol);
    }
}
