//! The error a failed request answers with: a kind a program can branch on and a message a
//! person can act on. Clone, so the GUI can keep it in its state and show it.

use serde::{Deserialize, Serialize};

/// What kind of failure an [`ApiError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong: a bad name, size or path, or an unknown request.
    InvalidRequest,
    /// The named VM, container or image does not exist.
    NotFound,
    /// Something with that name exists already.
    AlreadyExists,
    /// The request does not fit the current state (e.g. editing a running VM).
    Conflict,
    /// The peer is not allowed to talk to this daemon.
    PermissionDenied,
    /// The two sides speak different protocol versions.
    VersionMismatch,
    /// This daemon does not implement the request yet.
    Unsupported,
    /// The frame could not be read as a message.
    Protocol,
    /// The daemon failed doing something it should have been able to do (disk full, I/O error).
    Internal,
}

/// A failed request, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}
