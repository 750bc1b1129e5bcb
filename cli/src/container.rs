//! `berthctl build`, `run`, `ps`, `logs`, … : what each container and image subcommand asks
//! berthd, and what it prints.

use std::io::Write;
use std::path::Path;

use berth_api::client::{Client, ClientError};
use berth_api::container::{
    BlobProgress, BuildSpec, ContainerInfo, ContainerState, ImageInfo, RunSpec,
};
use berth_api::error::ErrorKind;
use berth_api::event::Event;

use crate::login::{self, logins};
use crate::{Failure, Output, render};
use berthctl::args::{BuildArgs, ContainerCommand as Command, RunArgs, absolute};

pub async fn run(
    client: &Client,
    events: &mut berth_api::Events,
    out: &Output,
    command: Command,
) -> Result<(), Failure> {
    let id = |info: &berth_api::container::ContainerInfo| format!("{}\n", info.id);
    match command {
        Command::Build(args) => build(client, events, out, args).await,
        Command::Run(args) => run_container(client, out, args).await,
        Command::Exec(args) => crate::exec::exec(client, args).await,
        Command::Ps { all } => out.show(&client.ps(all).await?, |l| render::list_containers(l)),
        Command::Logs { container, .. } if out.json() => {
            out.show(&client.logs(&container).await?, |l| render::lines(l))
        }
        Command::Logs { follow, container } => {
            let wait = follow.then(|| client.container_wait(&container));
            follow_output(client, &container, wait).await.map(drop)
        }
        Command::Attach { container } => attach(client, &container).await,
        Command::Port { container } => {
            let info = client.container_inspect(&container).await?;
            out.show(&info.ports, |p| render::ports(p))
        }
        Command::Inspect { image, name } => {
            let container = if image {
                None
            } else {
                match client.container_inspect(&name).await {
                    Ok(info) => Some(info),
                    Err(ClientError::Api(e)) if e.kind == ErrorKind::NotFound => None,
                    Err(e) => return Err(e.into()),
                }
            };
            let json = match container {
                Some(info) => serde_json::to_string_pretty(&info),
                None => match client.image_inspect(&name).await {
                    Ok(detail) => serde_json::to_string_pretty(&detail),
                    Err(ClientError::Api(e)) if e.kind == ErrorKind::NotFound && !image => {
                        return Err(Failure::Failed(format!(
                            "there is no container or image `{name}`"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                },
            }
            .map_err(|e| Failure::Failed(e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        Command::Start { container } => out.show(&client.container_start(&container).await?, id),
        Command::Stop { time, container } => {
            out.show(&client.container_stop(&container, time).await?, id)
        }
        Command::Restart { container } => {
            out.show(&client.container_restart(&container).await?, id)
        }
        Command::Rm {
            force,
            volumes,
            container,
        } => Ok(client.container_rm(&container, force, volumes).await?),
        Command::Stats { container } => out.show(&client.stats(container.as_deref()).await?, |s| {
            render::show_stats(s)
        }),
        Command::Images => out.show(&client.images().await?, |i| render::list_images(i)),
        Command::Rmi { image } => Ok(client.rmi(&image).await?),
        Command::Pull { platform, image } => {
            pull(client, events, out, &image, platform.as_deref()).await
        }
        Command::Push { image, destination } => {
            push(client, events, out, &image, destination.as_deref()).await
        }
        Command::Tag { image, name } => out.show(&client.tag(&image, &name).await?, |i| {
            render::list_images(i)
        }),
        Command::Login {
            username,
            password,
            password_stdin,
            registry,
        } => {
            login::login(
                client,
                registry.as_deref(),
                username,
                password,
                password_stdin,
            )
            .await
        }
        Command::Logout { registry, all } => login::logout(registry.as_deref(), all),
        Command::Save { output, images } => {
            let pipe = client.save(&images).await?;
            copy_out(pipe, output.as_deref()).await
        }
        Command::Export { output, container } => {
            let pipe = client.export(&container).await?;
            copy_out(pipe, output.as_deref()).await
        }
        Command::Commit { container, image } => {
            out.show(&client.commit(&container, &image).await?, |images| {
                images
                    .iter()
                    .map(|i| format!("committed {} {}\n", i.reference, i.id))
                    .collect()
            })
        }
        Command::Load { input } => {
            let loaded = match input {
                Some(path) => client.load(&absolute(&path)).await?,
                None => {
                    // berthd reads a file: stdin is spooled into one of ours first.
                    let spool = spool_stdin()?;
                    let loaded = client.load(spool.path()).await;
                    drop(spool);
                    loaded?
                }
            };
            out.show(&loaded, |images| {
                images
                    .iter()
                    .map(|i| format!("Loaded image: {}\n", i.reference))
                    .collect()
            })
        }
        Command::Import { file, name } => out
            .show(&client.import(&absolute(&file), &name).await?, |i| {
                render::list_images(i)
            }),
    }
}

/// `run`: the daemon answers once the container has started; in the foreground, berthctl
/// then follows its output and ends with its exit code.
async fn run_container(client: &Client, out: &Output, args: RunArgs) -> Result<(), Failure> {
    let id = |info: &ContainerInfo| format!("{}\n", info.id);
    if args.rm && args.restart != berth_api::container::RestartPolicy::No {
        // Said here too: in the foreground berthctl removes it itself, so berthd never sees
        // the two together.
        return Err(Failure::Failed(
            "--rm and --restart conflict: a container removed when it ends cannot be restarted"
                .into(),
        ));
    }
    let mut env = Vec::new();
    for file in &args.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::Failed(format!("--env-file {}: {e}", file.display())))?;
        env.extend(env_file_vars(&text, |name| std::env::var(name).ok()));
    }
    env.extend(
        args.env
            .iter()
            .filter_map(|v| env_var(v, |name| std::env::var(name).ok())),
    );
    let spec = RunSpec {
        image: args.image,
        name: args.name,
        command: args.command,
        detach: true,
        cpus: args.cpus,
        memory: args.memory,
        pids: args.pids,
        network: args.network,
        ports: args.publish,
        publish_all: args.publish_all,
        logins: logins()?,
        env,
        workdir: args.workdir,
        user: args.user,
        entrypoint: args.entrypoint,
        hostname: args.hostname,
        volumes: args.volume,
        restart: args.restart,
        tty: args.tty,
        interactive: args.interactive && !args.tty,
        // In the foreground berthctl removes it once it has read how it ended; detached, the
        // daemon does when it ends.
        remove: args.rm && args.detach,
        // Detached, berthd keeps its terminal or stdin for `attach`.
        attachable: args.detach && (args.tty || args.interactive),
    };
    let (info, ended) = if args.detach {
        let info = client.run(spec).await?;
        return out.show(&info, id);
    } else if args.tty {
        let (info, master) = client.run_with_terminal(spec).await?;
        crate::terminal::attach(master, args.interactive).await?;
        (info, None)
    } else if args.interactive {
        let (info, stdin) = client.run_with_stdin(spec).await?;
        // Our stdin into its pipe until it ends (the container then reads EOF), while its
        // output is followed from its log.
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(stdin);
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut pipe);
        });
        let ended = follow_output(client, &info.id, Some(client.container_wait(&info.id))).await?;
        (info, ended)
    } else {
        let info = client.run(spec).await?;
        let ended = follow_output(client, &info.id, Some(client.container_wait(&info.id))).await?;
        (info, ended)
    };
    if args.rm {
        let exit = exit_of(client, &info, ended).await;
        // Its anonymous volumes with it, as `docker run --rm` removes them.
        client.container_rm(&info.id, true, true).await?;
        return exit;
    }
    exit_of(client, &info, ended).await
}

/// `attach`: a kept terminal joined to ours until the container ends or Ctrl-P Ctrl-Q leaves
/// it; else our stdin to its pipe (when it has one) while its output from now on is followed
/// until it ends. Ends with its exit code, as `run` does.
async fn attach(client: &Client, container: &str) -> Result<(), Failure> {
    let (attached, fds) = client.attach(container).await?;
    let info = attached.container;
    let mut fds = fds.into_iter();
    if attached.terminal {
        let (Some(socket), Some(master)) = (fds.next(), fds.next()) else {
            return Err(Failure::Failed(
                "berthd sent no terminal to attach to".into(),
            ));
        };
        if crate::terminal::join_relayed(socket, master).await? == crate::terminal::Left::Detached {
            return Ok(());
        }
    } else {
        // Its output from now on: the log is placed at its end before our input can make more.
        let mut log = std::fs::File::from(client.log_file(&info.id).await?);
        use std::io::Seek;
        log.seek(std::io::SeekFrom::End(0))
            .map_err(|e| Failure::Failed(format!("the log: {e}")))?;
        if let Some(stdin) = fds.next().filter(|_| attached.stdin) {
            std::thread::spawn(move || {
                let mut pipe = std::fs::File::from(stdin);
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut pipe);
            });
        }
        let ended = follow_log(log, Some(client.container_wait(&info.id))).await?;
        return exit_of(client, &info, ended).await;
    }
    exit_of(client, &info, None).await
}

/// How a container that is ending ended, as an exit status of ours: its code, 137 and a word
/// when the OOM killer ended it. `ended` is what berthd's wait answered when there was one;
/// else its terminal has ended, so it is ending, and its state (looked at until it has
/// stopped) says how.
async fn exit_of(
    client: &Client,
    info: &ContainerInfo,
    ended: Option<ContainerInfo>,
) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ended = ended.map(|c| c.state);
    let state = loop {
        let state = match ended.take() {
            Some(state) => state,
            None => client.container_inspect(&info.id).await?.state,
        };
        if !state.is_running() || std::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    match state {
        ContainerState::Stopped {
            exit_code: Some(0), ..
        } => Ok(()),
        ContainerState::Stopped {
            exit_code: Some(code),
            oom_killed,
        } => {
            if oom_killed {
                eprintln!(
                    "berthctl: container {} was killed: out of memory",
                    info.name
                );
            }
            Err(Failure::Exit(code))
        }
        other => Err(Failure::Failed(format!(
            "container {} ended in state {other:?}",
            info.name
        ))),
    }
}

/// `-e NAME=VALUE` as given; `-e NAME` takes the value NAME has here, and is left out when
/// it has none (Docker's rule).
pub fn env_var(arg: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    if arg.contains('=') {
        return Some(arg.to_owned());
    }
    lookup(arg).map(|value| format!("{arg}={value}"))
}

/// An `--env-file`'s variables: a `NAME=VALUE` or `NAME` a line, the value verbatim (no
/// quotes removed), blank lines and `#` comments skipped, as Docker reads one.
fn env_file_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    text.lines()
        .map(|line| line.trim_start())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| env_var(line, &lookup))
        .collect()
}

/// `save` and `export`: copies the tar berthd writes into a pipe to FILE, or to stdout when
/// that is not a terminal.
async fn copy_out(pipe: std::os::fd::OwnedFd, output: Option<&Path>) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if output.is_none() && std::io::stdout().is_terminal() {
        return Err(Failure::Failed(
            "the archive would go to the terminal: give -o FILE or redirect stdout".into(),
        ));
    }
    let output = output.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let mut from = std::fs::File::from(pipe);
        match &output {
            Some(path) => {
                let mut file =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                std::io::copy(&mut from, &mut file).map_err(|e| e.to_string())
            }
            None => {
                std::io::copy(&mut from, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
            }
        }
    })
    .await
    .map_err(|e| Failure::Failed(e.to_string()))?
    .map_err(Failure::Failed)?;
    Ok(())
}

/// A private file holding what came on stdin, removed when dropped.
struct Spool(std::path::PathBuf);

impl Spool {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool_stdin() -> Result<Spool, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let path = dir.join(format!("berthctl-load-{}.tar", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
    let spool = Spool(path);
    std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .map_err(|e| Failure::Failed(format!("reading stdin: {e}")))?;
    Ok(spool)
}

/// `build`: subscribes first, so every step of this build is printed as it starts.
async fn build(
    client: &Client,
    events: &mut berth_api::Events,
    out: &Output,
    args: BuildArgs,
) -> Result<(), Failure> {
    let BuildArgs {
        tag,
        file,
        build_args,
        network,
        target,
        no_cache,
        pull,
        secret,
        ssh,
        context,
    } = args;
    // `default` and a bare id are this client's own agent, as Docker takes them.
    let agent = std::env::var_os("SSH_AUTH_SOCK");
    let ssh = ssh
        .iter()
        .map(|s| {
            berth_api::container::BuildSsh::parse(s, agent.as_deref())
                .map(|a| berth_api::container::BuildSsh {
                    socket: absolute(&a.socket),
                    ..a
                })
                .map_err(Failure::Failed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let build_args = build_args
        .iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::Failed(format!("--build-arg {a}: expected NAME=VALUE")))
        })
        .collect::<Result<_, _>>()?;
    let spec = BuildSpec {
        context: absolute(&context),
        dockerfile: file.as_deref().map(absolute),
        tag: tag.clone(),
        build_args,
        network,
        logins: logins()?,
        target,
        no_cache,
        pull,
        secrets: secret
            .into_iter()
            .map(|s| berth_api::container::BuildSecret {
                path: absolute(&s.path),
                ..s
            })
            .collect(),
        ssh,
    };
    client.subscribe().await?;
    let call = client.build(spec);
    tokio::pin!(call);
    let images = loop {
        // Events first, as `transfer` takes them: the last step's line is queued before the
        // answer.
        tokio::select! {
            biased;
            event = events.next() => match event {
                Some(Event::BuildProgress(p)) if p.tag == tag && !out.json() => {
                    let cached = if p.cached { " (cached)" } else { "" };
                    eprintln!("[{}/{}] {}{cached}", p.step, p.steps, p.instruction);
                }
                Some(_) => {}
                None => break (&mut call).await?,
            },
            images = &mut call => break images?,
        }
    };
    out.show(&images, |images| {
        images
            .iter()
            .map(|i| format!("built {} {}\n", i.reference, i.id))
            .collect()
    })
}

/// Which way blobs move, and what `pull` and `push` say of them.
#[derive(Clone, Copy)]
enum Transfer {
    Pull,
    Push,
}

impl Transfer {
    /// The progress of this direction in an event.
    fn progress(self, event: Event) -> Option<BlobProgress> {
        match (self, event) {
            (Transfer::Pull, Event::PullProgress(p)) | (Transfer::Push, Event::PushProgress(p)) => {
                Some(p)
            }
            _ => None,
        }
    }

    /// What a finished image, a moved blob, and a blob that was there already are called.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Transfer::Pull => ("pulled", "pulled", "already present"),
            Transfer::Push => ("pushed", "pushed", "already in the registry"),
        }
    }
}

/// `pull` and `push`: subscribes first, then prints each layer of `image` as it moves and
/// once it is at its destination, and the images `call` answers with.
async fn transfer(
    events: &mut berth_api::Events,
    out: &Output,
    image: &str,
    direction: Transfer,
    call: impl std::future::Future<Output = Result<Vec<ImageInfo>, ClientError>>,
) -> Result<(), Failure> {
    let (done, moved, present) = direction.words();
    tokio::pin!(call);
    let mut shown = render::BlobProgressLines::new(moved, present);
    let images = loop {
        // Events first: berthd sends a blob's last progress before its answer, on the same
        // connection, so they are queued when the answer is; an unbiased select may take the
        // answer first and leave them unprinted.
        tokio::select! {
            biased;
            event = events.next() => match event {
                Some(event) => {
                    if let Some(p) = direction.progress(event)
                        && p.image == image
                        && !out.json()
                    {
                        shown.show(&p);
                    }
                }
                // No more events (the connection is going): only the answer is left.
                None => break (&mut call).await?,
            },
            images = &mut call => break images?,
        }
    };
    out.show(&images, |images| {
        images
            .iter()
            .map(|i| format!("{done} {} {}\n", i.reference, i.id))
            .collect()
    })
}

/// `pull`: progress per layer until it is in the store.
async fn pull(
    client: &Client,
    events: &mut berth_api::Events,
    out: &Output,
    image: &str,
    platform: Option<&str>,
) -> Result<(), Failure> {
    client.subscribe().await?;
    let call = client.pull(image, platform, logins()?);
    transfer(events, out, image, Transfer::Pull, call).await
}

/// `push`: progress per layer until the registry has it.
async fn push(
    client: &Client,
    events: &mut berth_api::Events,
    out: &Output,
    image: &str,
    destination: Option<&str>,
) -> Result<(), Failure> {
    client.subscribe().await?;
    let call = client.push(image, destination, logins()?);
    transfer(events, out, image, Transfer::Push, call).await
}

/// How often a followed log is read again for what was written since.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Writes a container's output to our stdout byte for byte, read from its log file (which
/// berthd hands over, so nothing passes through it): what there is, and with `wait` (a
/// `ContainerWait` call) what comes until the container has stopped.
/// With `wait`, until it answers, and then with its answer: how the container ended.
async fn follow_output(
    client: &Client,
    container: &str,
    wait: Option<impl std::future::Future<Output = Result<ContainerInfo, ClientError>>>,
) -> Result<Option<ContainerInfo>, Failure> {
    let log = std::fs::File::from(client.log_file(container).await?);
    follow_log(log, wait).await
}

/// [`follow_output`] of a log already open, from where it stands.
async fn follow_log(
    mut log: std::fs::File,
    wait: Option<impl std::future::Future<Output = Result<ContainerInfo, ClientError>>>,
) -> Result<Option<ContainerInfo>, Failure> {
    let mut copy = || -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        match std::io::copy(&mut log, &mut stdout).and_then(|_| stdout.flush()) {
            Ok(()) => Ok(()),
            // Whoever reads us has gone (`| head`): nothing more to write.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Failure::Failed(format!("writing the output: {e}"))),
        }
    };
    let Some(wait) = wait else {
        return copy().map(|()| None);
    };
    tokio::pin!(wait);
    loop {
        copy()?;
        tokio::select! {
            ended = &mut wait => {
                let ended = ended?;
                // Everything it wrote is in the file now.
                return copy().map(|()| Some(ended));
            }
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_are_read_as_docker_reads_them() {
        let here = |name: &str| (name == "HOME_HERE").then(|| "/home/me".to_owned());
        assert_eq!(env_var("A=1", here).as_deref(), Some("A=1"));
        assert_eq!(
            env_var("HOME_HERE", here).as_deref(),
            Some("HOME_HERE=/home/me")
        );
        assert_eq!(env_var("UNSET", here), None);
        let file = "# settings\n\nA=1\n  B=\"quoted\" \nHOME_HERE\nUNSET\n";
        assert_eq!(
            env_file_vars(file, here),
            ["A=1", "B=\"quoted\" ", "HOME_HERE=/home/me"]
        );
    }
}
