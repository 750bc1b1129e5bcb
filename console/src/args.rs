//! berth-console's command line, as clap reads it (also the source of its man page and shell
//! completions, `packaging/`).

use std::path::PathBuf;

use clap::Parser;

/// The detached console window of a running VM: its screen at full size, keyboard and pointer.
#[derive(Parser, Debug)]
#[command(name = "berth-console", version)]
pub struct Args {
    /// The VM whose display to show.
    pub name: String,
    /// The berthd socket; default: $BERTH_SOCKET, else the system daemon, else your user daemon.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}
