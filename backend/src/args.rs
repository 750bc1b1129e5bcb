//! berthd's command line, as clap reads it (also the source of its man page and shell
//! completions, `packaging/`).

use std::path::PathBuf;

use clap::Parser;

/// The Berth daemon: runs VMs and containers and serves the berth API to berth and berthctl.
///
/// `berthd` is the system daemon (root; the packaged berthd.socket starts it): its socket is
/// /run/berth/berthd.sock, its state /var/lib/berth, and it admits root and the members of the
/// group `berth`. `berthd --user` serves the user who runs it, from that user's runtime and data
/// directories. Either takes a listening socket handed over by systemd (socket activation).
#[derive(Parser, Debug)]
#[command(name = "berthd", version)]
pub struct Args {
    /// Serve only the user who runs it, with socket and state under that user's XDG dirs.
    #[arg(long)]
    pub user: bool,
    /// Listen on this socket instead of the mode's usual one.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Keep state here instead of the mode's usual place.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// In system mode, admit members of this group besides root.
    #[arg(long, value_name = "NAME", default_value = "berth")]
    pub group: String,
}
