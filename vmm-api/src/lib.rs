//! What berthd and berth-vmm say to each other, in one place both sides use (Cloud Hypervisor's
//! `vmm/src/api` is the model: one typed action, one typed error):
//!
//! - [`launch`]: berth-vmm's command line, built by berthd and parsed by berth-vmm;
//! - [`control`]: the control channel's commands, replies and errors, as text lines;
//! - [`channel`]: both ends of the control channel (berthd's client, berth-vmm's replies,
//!   a file descriptor riding on a reply as SCM_RIGHTS);
//! - [`exit`]: berth-vmm's exit codes and what each means;
//! - [`kvm`]: `/dev/kvm`, and the advice both give when it cannot be opened.
//!
//! The display notices, the third channel, are `berth_display::notice`.

pub mod channel;
pub mod control;
pub mod exit;
pub mod kvm;
pub mod launch;

pub use control::{Command, ControlError, Reply};
pub use exit::VmmExit;
pub use launch::LaunchOptions;
