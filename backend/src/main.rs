//! berthd: the Berth daemon. `berthd` serves the whole machine (root); `berthd --user` serves
//! the user who starts it.

use berthd::activation::Activated;
use berthd::args::Args;
use berthd::config::DaemonConfig;
use clap::Parser;

fn main() -> std::process::ExitCode {
    // SAFETY: first thing in main: no other thread exists yet.
    let inherited = match unsafe { berthd::activation::take_inherited() } {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("berthd: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(Args::parse(), inherited) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each error's message already says what failed and why: print it once, not as
            // a chain of causes or a backtrace.
            eprintln!("berthd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args, inherited: Option<Activated>) -> anyhow::Result<()> {
    let mut config = if args.user {
        DaemonConfig::user()
    } else {
        DaemonConfig::system()
    };
    if !args.user && !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!(
            "the system daemon needs root; run `sudo berthd`, or `berthd --user` for a daemon of your own"
        );
    }
    // Where clients connect: a handed-over socket's own path (for the log and `host`), else
    // --socket, else the mode's usual place.
    if let Some(socket) = inherited
        .as_ref()
        .and_then(|a| a.path.clone())
        .or(args.socket)
    {
        config.socket = socket;
        config.private_socket_dir = false;
    }
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    config.group = args.group;
    // A normal user's daemon becomes root of a user namespace of its own, before any thread
    // exists (the runtime's are started below): containers then run rootless.
    if !nix::unistd::Uid::effective().is_root() {
        config.ids = berthd::rootless::enter()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(berthd::server::run(config, inherited.map(|a| a.listener)))?;
    Ok(())
}
