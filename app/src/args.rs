//! The window's command line, as clap reads it (also the source of its man page and shell
//! completions, `packaging/`). The desktop entry's actions start it with a form open.

use clap::Parser;

/// The Berth window: virtual machines and containers side by side, with live gauges.
///
/// It connects to the system daemon, else to your own (`berthd --user`, which it starts when
/// none answers); $BERTH_SOCKET names another daemon's socket.
#[derive(Parser, Debug, Default)]
#[command(name = "berth", version)]
pub struct Args {
    /// Open the New VM wizard once the daemon answers (the desktop entry's "New Virtual
    /// Machine").
    #[arg(long, conflicts_with = "launch_dockerfile")]
    pub new_vm: bool,
    /// Open the Launch Dockerfile form once the daemon answers.
    #[arg(long)]
    pub launch_dockerfile: bool,
}
