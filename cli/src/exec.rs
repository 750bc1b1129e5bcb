//! `berthctl exec`: a process in a running container, its standard streams joined to ours.
//!
//! berthd answers with the process's terminal (`-t`) or pipes as descriptors, so the bytes
//! never pass through the daemon: berthctl copies between them and its own streams (a
//! terminal through [`crate::terminal`]).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use berth_api::client::Client;
use berth_api::container::ExecSpec;

use crate::Failure;
use crate::terminal;
use berthctl::args::ExecArgs;

pub async fn exec(client: &Client, args: ExecArgs) -> Result<(), Failure> {
    let env = args
        .env
        .iter()
        .filter_map(|v| crate::container::env_var(v, |name| std::env::var(name).ok()))
        .collect();
    let spec = ExecSpec {
        container: args.container,
        command: args.command,
        env,
        workdir: args.workdir,
        user: args.user,
        tty: args.tty,
    };
    let (info, fds) = client.exec(spec).await?;
    if args.tty {
        let master = fds
            .into_iter()
            .next()
            .ok_or_else(|| Failure::Failed("berthd sent no terminal for the process".into()))?;
        terminal::attach(master, args.interactive).await?;
    } else {
        let copies = on_pipes(fds, args.interactive)?;
        let failed =
            |e: String| Failure::Failed(format!("copying the process's output failed: {e}"));
        tokio::task::spawn_blocking(move || terminal::join(copies))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed)?;
    }
    match client.exec_wait(info.id).await? {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}

/// Copies the process's stdout and stderr to ours until both end, and with `interactive` our
/// stdin to its stdin (closed at our end of file, or at once without it).
fn on_pipes(fds: Vec<OwnedFd>, interactive: bool) -> Result<Vec<JoinHandle<()>>, Failure> {
    let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
        .try_into()
        .map_err(|_| Failure::Failed("berthd sent the wrong pipes for the process".into()))?;
    if interactive {
        let input = File::from(stdin);
        std::thread::spawn(move || terminal::copy(std::io::stdin(), input));
    } else {
        drop(stdin);
    }
    let (out, err) = (File::from(stdout), File::from(stderr));
    Ok(vec![
        std::thread::spawn(move || terminal::copy(out, std::io::stdout())),
        std::thread::spawn(move || terminal::copy(err, std::io::stderr())),
    ])
}
