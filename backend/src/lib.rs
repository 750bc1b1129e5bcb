//! berthd, the Berth daemon: it owns all state, authorises every peer, and serves the berth API
//! on a Unix socket to the GUI and berthctl. It supervises one berth-vmm per running VM and
//! drives the container engine.
//!
//! - [`server`]: the daemon's life (state dir, socket, services, accept loop, shutdown);
//!   [`connection`]: one client's frames, handshake and events; [`handler`]: what each request
//!   does; [`wait`]: answering once a container has ended.
//! - [`auth`]: who may connect; [`access`]: which files a peer may name.
//! - [`iso`]: `iso inspect` and the bootability check of `vm create --iso`.
//! - [`containers`]: containers (records, waiter threads, run/stop/rm/stats); [`images`]: the
//!   image store as served (list, rmi, import, build); [`volumes`]: named volumes;
//!   [`system`]: `system df` and `system prune`;
//! - [`registry`]: VM definitions; [`machines`]: running VMs (one berth-vmm each);
//!   [`store`]: atomic RON files.
//! - [`host`]: the host's totals and live samples; [`config`]: paths by mode;
//!   [`activation`]: a listening socket handed over by systemd; [`args`]: the command line;
//!   [`rootless`]: a normal user's daemon in a user namespace of its own.

pub mod access;
pub mod activation;
pub mod args;
pub mod attach;
pub mod auth;
pub mod bridge;
pub mod config;
pub mod connection;
pub mod containers;
pub mod handler;
pub mod host;
pub mod images;
pub mod iso;
pub mod machines;
pub mod registry;
pub mod rootless;
pub mod server;
pub mod store;
pub mod system;
pub mod volumes;
pub mod wait;
