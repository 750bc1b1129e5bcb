//! berthctl: the scriptable twin of every action of the Berth window. Human tables by default,
//! `--json` for scripts (the daemon's answer as JSON: the object itself, no envelope).
//!
//! Exit codes: 0 done; 1 berthd refused or failed the request; 2 the command line is wrong;
//! 3 no berthd could be reached (none running, not allowed, or a different protocol).
//!
//! - [`args`]: the command line; [`vm`] and [`container`]: what each subcommand asks berthd;
//! - [`render`] and [`table`]: what is printed; [`serial`]: `vm serial`; [`screenshot`].

mod container;
mod exec;
mod login;
mod render;
mod screenshot;
mod serial;
mod table;
mod terminal;
mod vm;

use std::process::ExitCode;

use berth_api::client::{Client, ClientError};
use clap::Parser;
use serde::Serialize;

use berthctl::args::{self, Cli, Command};

/// Why berthctl stopped, with its exit code.
pub enum Failure {
    /// The container berthctl ran in the foreground ended with this code: pass it on.
    Exit(i32),
    /// The daemon could not be reached or did not admit us: exit 3.
    Unreachable(String),
    /// The request failed: exit 1.
    Failed(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NoDaemon { .. }
            | ClientError::Refused { .. }
            | ClientError::VersionMismatch(_) => Failure::Unreachable(e.to_string()),
            other => Failure::Failed(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(message)) => {
            eprintln!("berthctl: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(message)) => {
            eprintln!("berthctl: {message}");
            ExitCode::from(3)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code.clamp(0, 255) as u8),
    }
}

async fn connect(cli: &Cli) -> Result<(Client, berth_api::Events), Failure> {
    let name = concat!("berthctl ", env!("CARGO_PKG_VERSION"));
    Ok(match &cli.socket {
        Some(socket) => Client::connect(socket, name).await?,
        None => Client::connect_default(name).await?,
    })
}

/// How an answer is printed: as JSON with `--json`, else as `text` makes it.
pub struct Output {
    json: bool,
}

impl Output {
    /// Prints `value`: JSON, or its text (nothing when the text is empty).
    pub fn show<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(), Failure> {
        if self.json {
            let json =
                serde_json::to_string_pretty(value).map_err(|e| Failure::Failed(e.to_string()))?;
            println!("{json}");
        } else {
            print!("{}", text(value));
        }
        Ok(())
    }

    pub fn json(&self) -> bool {
        self.json
    }
}

/// Asks on the terminal before `system prune`, as Docker does; without one, `-f` is needed.
fn confirm_prune(all: bool, volumes: bool) -> Result<bool, Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Failed(
            "system prune removes things: give -f (there is no terminal to ask on)".into(),
        ));
    }
    let mut what = vec!["stopped containers", "the build cache"];
    what.push(if all {
        "images no container uses"
    } else {
        "blobs no image uses"
    });
    if volumes {
        what.push("volumes no container mounts");
    }
    eprint!("This removes {}. Go on? [y/N] ", what.join(", "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // Logging out edits the user's own file; no daemon is needed for it.
    if let Command::Container(args::ContainerCommand::Logout { registry, all }) = &cli.command {
        return login::logout(registry.as_deref(), *all);
    }
    let (client, mut events) = connect(&cli).await?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Host => out.show(&client.host().await?, render::show_host),
        Command::Vm(command) => vm::run(&client, &mut events, &out, command).await,
        Command::Iso(args::IsoCommand::Inspect { file }) => {
            let info = client.iso_inspect(&args::absolute(&file)).await?;
            out.show(&info, render::show_iso)
        }
        Command::Volume(command) => match command {
            args::VolumeCommand::Create { name } => out
                .show(&client.volume_create(&name).await?, |v| {
                    v.iter().map(|v| format!("{}\n", v.name)).collect()
                }),
            args::VolumeCommand::Ls => {
                out.show(&client.volume_ls().await?, |v| render::list_volumes(v))
            }
            args::VolumeCommand::Rm { name } => Ok(client.volume_rm(&name).await?),
        },
        Command::System(args::SystemCommand::Df) => out.show(&client.system_df().await?, |lines| {
            render::disk_usage(lines)
        }),
        Command::System(args::SystemCommand::Prune {
            all,
            volumes,
            force,
        }) => {
            if !force && !confirm_prune(all, volumes)? {
                return Err(Failure::Failed("nothing removed".into()));
            }
            let pruned = client.system_prune(all, volumes).await?;
            out.show(&pruned, render::pruned)
        }
        Command::Events { count } => {
            client.subscribe().await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(event) = events.next().await else {
                    return Err(Failure::Failed("berthd closed the connection".into()));
                };
                let line =
                    serde_json::to_string(&event).map_err(|e| Failure::Failed(e.to_string()))?;
                println!("{line}");
                seen += 1;
            }
            Ok(())
        }
        Command::Container(command) => container::run(&client, &mut events, &out, command).await,
    }
}
