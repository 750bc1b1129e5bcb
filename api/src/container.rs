//! Containers and images as the API describes them. The engine behind these requests arrives
//! with the container backend; the shapes are fixed here so clients can be written against them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::network::{ContainerNetwork, PortForward};
use crate::registry_login::RegistryLogin;
use crate::utilisation::Shares;
use crate::volume::VolumeMount;

/// What `build` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when absent.
    #[serde(default)]
    pub dockerfile: Option<PathBuf>,
    /// The tag to give the result, e.g. `hello:latest`.
    pub tag: String,
    /// `--build-arg NAME=VALUE` pairs.
    #[serde(default)]
    pub build_args: Vec<(String, String)>,
    /// RUN steps' network (`--network none` for a hermetic build).
    #[serde(default)]
    pub network: ContainerNetwork,
    /// The user's registry logins, for the images a FROM or `COPY --from` pulls.
    #[serde(default)]
    pub logins: Vec<RegistryLogin>,
    /// `--target`: build up to this stage, which becomes the image.
    #[serde(default)]
    pub target: Option<String>,
    /// `--no-cache`: run every step again.
    #[serde(default)]
    pub no_cache: bool,
    /// `--pull`: pull every FROM image from its registry even when the store has it.
    #[serde(default)]
    pub pull: bool,
    /// `--secret id=ID,src=PATH`: files a `RUN --mount=type=secret` sees, never in a layer.
    #[serde(default)]
    pub secrets: Vec<BuildSecret>,
    /// `--ssh ID=SOCKET`: SSH agents a `RUN --mount=type=ssh` reaches, their keys never in
    /// the build.
    #[serde(default)]
    pub ssh: Vec<BuildSsh>,
}

/// An SSH agent for a build: the client's agent socket (it may connect to it) under an id
/// (`default` unless named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSsh {
    pub id: String,
    pub socket: PathBuf,
}

impl BuildSsh {
    /// Docker's `--ssh default|ID[=SOCKET]`: without a socket, the agent `SSH_AUTH_SOCK`
    /// names (`agent`, the client's own). Key files in place of an agent are not taken.
    pub fn parse(text: &str, agent: Option<&std::ffi::OsStr>) -> Result<BuildSsh, String> {
        let (id, socket) = match text.split_once('=') {
            Some((id, socket)) => (id, PathBuf::from(socket)),
            None => match agent {
                Some(agent) if !agent.is_empty() => (text, PathBuf::from(agent)),
                _ => {
                    return Err(format!(
                        "--ssh {text}: SSH_AUTH_SOCK is not set: start an agent (eval $(ssh-agent); ssh-add) or give its socket, --ssh {text}=PATH"
                    ));
                }
            },
        };
        if id.is_empty() || id.contains(['/', ',', '\0']) {
            return Err(format!("--ssh {text}: `{id}` is not an ssh id"));
        }
        if socket.as_os_str().to_string_lossy().contains(',') {
            return Err(format!(
                "--ssh {text}: only an agent's socket is taken, not key files"
            ));
        }
        Ok(BuildSsh {
            id: id.to_owned(),
            socket,
        })
    }
}

/// A build secret: a file of the client's (readable by it) under an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSecret {
    pub id: String,
    pub path: PathBuf,
}

impl std::str::FromStr for BuildSecret {
    type Err = String;

    /// Docker's `id=ID,src=PATH` (`source=` too; the id defaults to the file's name).
    fn from_str(text: &str) -> Result<Self, String> {
        let (mut id, mut path) = (None, None);
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => path = Some(PathBuf::from(v)),
                Some(("type", "file")) => {}
                _ => {
                    return Err(format!(
                        "--secret {text}: the form is id=ID,src=PATH (`{part}` is not part of it)"
                    ));
                }
            }
        }
        let path = path.ok_or_else(|| format!("--secret {text}: give the file with src=PATH"))?;
        let id = match id {
            Some(id) => id,
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("--secret {text}: give an id"))?,
        };
        if id.is_empty() || id.contains(['/', '\0']) {
            return Err(format!("--secret {text}: `{id}` is not a secret id"));
        }
        Ok(BuildSecret { id, path })
    }
}

/// What `run` asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub image: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces the image's CMD when not empty.
    #[serde(default)]
    pub command: Vec<String>,
    /// Return once started instead of when it exits.
    #[serde(default)]
    pub detach: bool,
    /// n': CPUs, fractional (0.2 is a fifth of one CPU).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// m': memory limit in bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Most processes the container may have.
    #[serde(default)]
    pub pids: Option<u64>,
    /// `--network`; the daemon's default ([`ContainerNetwork::default_for`]) when `None`.
    #[serde(default)]
    pub network: Option<ContainerNetwork>,
    /// Host ports forwarded to the container (`-p`).
    #[serde(default)]
    pub ports: Vec<PortForward>,
    /// Also publish every port the image EXPOSEs on a free host port (`-P`), as Docker does.
    #[serde(default)]
    pub publish_all: bool,
    /// The user's registry logins, for an image `run` pulls.
    #[serde(default)]
    pub logins: Vec<RegistryLogin>,
    /// `-e`: `NAME=VALUE`s over the image's environment (the client resolves `-e NAME` and
    /// `--env-file` into these).
    #[serde(default)]
    pub env: Vec<String>,
    /// `-w`: the working directory instead of the image's WORKDIR (made if missing).
    #[serde(default)]
    pub workdir: Option<String>,
    /// `-u`: `USER[:GROUP]`, names or ids, instead of the image's USER.
    #[serde(default)]
    pub user: Option<String>,
    /// `--entrypoint`: the program instead of the image's ENTRYPOINT, whose CMD is then not
    /// used; empty clears the ENTRYPOINT and keeps the CMD (Docker's rules).
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// `--hostname`: instead of the container's short id.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `--rm`: remove the container and its files once it has ended.
    #[serde(default)]
    pub remove: bool,
    /// `-v`: host paths and named volumes mounted into it.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// `--restart`: what berthd does when it ends, and when berthd starts.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `-i` without `-t`: its stdin is a pipe whose write end comes with the answer
    /// (SCM_RIGHTS), its output goes to its log as without `-i`.
    #[serde(default)]
    pub interactive: bool,
    /// `-t`: on a terminal, whose master comes with the answer (SCM_RIGHTS); its output goes
    /// there, not to the log.
    #[serde(default)]
    pub tty: bool,
    /// `-d` with `-t` or `-i`: berthd keeps the terminal (its output to the log) or the stdin
    /// pipe for `attach`, instead of handing it over with the answer.
    #[serde(default)]
    pub attachable: bool,
}

/// `--restart`, Docker's policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum RestartPolicy {
    /// Never restarted.
    #[default]
    No,
    /// Restarted when it exits with a code other than 0, at most `max_retries` times if
    /// given; and when berthd starts, if it was running when berthd went away.
    OnFailure { max_retries: Option<u32> },
    /// Restarted whenever it ends but for `stop`; stopped ones too when berthd starts.
    Always,
    /// As `Always`, but one that was stopped stays stopped when berthd starts.
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, count) = match text.split_once(':') {
            Some((name, count)) => (name, Some(count)),
            None => (text, None),
        };
        let policy = match name {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure {
                max_retries: count
                    .map(|c| {
                        c.parse()
                            .map_err(|_| format!("--restart {text}: `{c}` is not a count"))
                    })
                    .transpose()?,
            },
            _ => {
                return Err(format!(
                    "--restart {text}: no, on-failure[:N], always or unless-stopped"
                ));
            }
        };
        if count.is_some() && !matches!(policy, RestartPolicy::OnFailure { .. }) {
            return Err(format!("--restart {text}: only on-failure takes a count"));
        }
        Ok(policy)
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// What `exec` asks for: a process in a running container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// By id, id prefix or name.
    pub container: String,
    pub command: Vec<String>,
    /// `-e`: `NAME=VALUE`s over the container's environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// `-w`: instead of the container's working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `-u`: `USER[:GROUP]` instead of the container's user.
    #[serde(default)]
    pub user: Option<String>,
    /// `-t`: on a terminal, whose master comes with the answer; else three pipes' ends do
    /// (stdin's write end, stdout's and stderr's read ends).
    #[serde(default)]
    pub tty: bool,
}

/// A process `exec` started: wait for its end with `ExecWait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInfo {
    pub id: u64,
    /// Its pid as the daemon sees it.
    pub pid: i32,
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running {
        pid: i32,
    },
    /// It ended; `exit_code` is 128 + the signal when a signal ended it, `None` when berthd
    /// could not learn it (it was restarted while the container ran).
    Stopped {
        exit_code: Option<i32>,
        oom_killed: bool,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerState::Created => f.write_str("created"),
            ContainerState::Running { .. } => f.write_str("running"),
            ContainerState::Stopped {
                exit_code: Some(code),
                oom_killed: true,
            } => {
                write!(f, "exited ({code}, OOM-killed)")
            }
            ContainerState::Stopped {
                exit_code: Some(code),
                ..
            } => write!(f, "exited ({code})"),
            ContainerState::Stopped {
                exit_code: None, ..
            } => f.write_str("exited (code unknown)"),
        }
    }
}

/// Limits a container runs under; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerLimits {
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub memory: Option<u64>,
    #[serde(default)]
    pub pids: Option<u64>,
}

/// A container as `ps` and `inspect` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub state: ContainerState,
    pub limits: ContainerLimits,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// U_ct, M_ct, P_ct: its limits over its parent's (the host's) totals; an unlimited
    /// resource counts as all of the parent's.
    pub allocation: Shares,
    #[serde(default)]
    pub network: ContainerNetwork,
    /// Its address on the bridge network, where other containers reach it.
    #[serde(default)]
    pub address: Option<std::net::Ipv4Addr>,
    /// Its published ports.
    #[serde(default)]
    pub ports: Vec<PortForward>,
    /// What is mounted into it (`-v`).
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times berthd has restarted it by its policy.
    #[serde(default)]
    pub restart_count: u32,
}

/// What `attach` joins: the container, and what it was started with. On the answer's frame
/// (SCM_RIGHTS): with `terminal`, a stream socket carrying the terminal's bytes both ways and
/// the terminal's master, for its size only; else with `stdin`, its stdin pipe's write end;
/// else nothing (its output is followed from its log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachInfo {
    pub container: ContainerInfo,
    pub terminal: bool,
    pub stdin: bool,
}

/// Live use of one container, for `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// CPU time over wall time since the previous sample, in CPUs (0.5 = half a CPU).
    pub cpu: f64,
    /// Memory in use, in bytes, and over its limit (or the host's memory when unlimited).
    pub memory: u64,
    pub memory_use: f64,
    /// Bytes written into its own layer, and over the disk given (the host's free space).
    pub disk: u64,
    pub pids: u64,
    pub allocation: Shares,
}

/// What `build` reports while it works, one event per step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildProgress {
    pub tag: String,
    /// 1-based step number and the number of steps.
    pub step: u32,
    pub steps: u32,
    /// The instruction, as written in the Dockerfile.
    pub instruction: String,
    pub cached: bool,
}

/// What `pull` (and a build or run that pulls) reports while a blob arrives, and `push` while
/// one is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobProgress {
    /// The image as asked for.
    pub image: String,
    /// The blob's digest (`sha256:…`).
    pub layer: String,
    /// Bytes moved, and the blob's size.
    pub done: u64,
    pub size: u64,
    /// The blob is at its destination (the store, or the registry): `present` when it was
    /// there already.
    pub finished: bool,
    pub present: bool,
}

/// One line of `system df`: what berthd keeps of one kind, and what `system prune` could free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// `images`, `containers`, `volumes` or `build cache`.
    pub kind: String,
    pub total: u32,
    /// In use: images a container runs on, running containers, mounted volumes.
    pub active: u32,
    /// Bytes on disk (blobs shared between images counted once).
    pub size: u64,
    /// Bytes `system prune -a --volumes` would free.
    pub reclaimable: u64,
}

/// What `system prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    /// Bytes freed.
    pub reclaimed: u64,
}

/// An image in the store in full, for `inspect`: its manifest and its OCI config as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDetail {
    pub reference: String,
    /// The config digest, as Docker shows image ids.
    pub id: String,
    /// The manifest's digest: the image's digest in a registry it is pushed to.
    pub manifest_digest: String,
    pub manifest: serde_json::Value,
    pub config: serde_json::Value,
}

/// An image in the store, as `images` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `name:tag`.
    pub reference: String,
    /// The config digest (`sha256:…`), as Docker shows image ids.
    pub id: String,
    /// Compressed size of its layers in bytes.
    pub size: u64,
    pub layers: u32,
    /// RFC 3339 creation time, when the image records one.
    #[serde(default)]
    pub created: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn ssh_agents_are_read_as_docker_takes_them() {
        let agent = std::ffi::OsStr::new("/run/user/1000/agent.sock");
        assert_eq!(
            BuildSsh::parse("default", Some(agent)).unwrap(),
            BuildSsh {
                id: "default".into(),
                socket: agent.into()
            }
        );
        assert_eq!(
            BuildSsh::parse("work=/tmp/a.sock", None).unwrap(),
            BuildSsh {
                id: "work".into(),
                socket: "/tmp/a.sock".into()
            }
        );
        let e = BuildSsh::parse("default", None).unwrap_err();
        assert!(e.contains("SSH_AUTH_SOCK is not set"), "{e}");
        let e = BuildSsh::parse("k=/a/id_rsa,/b/id_ed25519", None).unwrap_err();
        assert!(e.contains("not key files"), "{e}");
    }

    #[test]
    fn restart_policies_and_secrets_are_read_as_docker_writes_them() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            let policy: RestartPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert!("always:2".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        let secret: BuildSecret = "id=npm,src=/home/me/.npmrc".parse().unwrap();
        assert_eq!(
            (secret.id.as_str(), secret.path.as_path()),
            ("npm", Path::new("/home/me/.npmrc"))
        );
        let secret: BuildSecret = "src=/run/token".parse().unwrap();
        assert_eq!(secret.id, "token");
        assert!("id=x".parse::<BuildSecret>().is_err());
        assert!("id=x,src=/a,env=Y".parse::<BuildSecret>().is_err());
    }
}
