//! The berth API: everything the GUI, the CLI and the daemon agree on.
//!
//! - [`frame`]: length-prefixed JSON frames (u32 big-endian length, 1 MiB cap) on a Unix stream.
//! - [`protocol`]: the handshake and the frames each side sends.
//! - [`request`], [`vm`], [`iso`], [`host`], [`container`], [`event`]: typed requests, replies and pushed events.
//! - [`network`]: the network a container is on and the ports it publishes.
//! - [`volume`]: what `run -v` mounts, and the named volumes.
//! - [`error`]: the typed error every failed request answers with, carrying a human message.
//! - [`validate`] and [`size`]: the checks a request passes before anything is touched, shared so
//!   the GUI can show the same messages inline before it sends anything.
//! - [`utilisation`]: the allocation and live-use formulas behind every gauge.
//! - [`input`]: keys, pointer and wheel as the guest's evdev events, the one input contract.
//! - [`registry_login`], [`auth_file`], [`credential_helper`]: a user's registry logins and the
//!   files and helpers their tools keep them in, read by clients and sent with the requests that may reach a registry.
//! - [`time`]: wall-clock times as Berth writes them.
//! - [`client`]: the async client the GUI and berthctl share; [`paths`]: where daemons listen.
//!
//! This crate has no UI and no daemon logic: both sides depend on it, never on each other.

pub mod auth_file;
pub mod client;
pub mod container;
pub mod credential_helper;
pub mod error;
pub mod event;
pub mod fdpass;
pub mod frame;
/// The fuzz target's entry point (`fuzz/`), with the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod host;
pub mod input;
pub mod iso;
pub mod network;
pub mod paths;
pub mod protocol;
pub mod registry_login;
pub mod request;
pub mod size;
pub mod time;
pub mod utilisation;
pub mod validate;
pub mod vm;
pub mod volume;

pub use client::{Client, ClientError, Events};
pub use error::{ApiError, ErrorKind};
pub use event::Event;
pub use request::{Reply, Request};
