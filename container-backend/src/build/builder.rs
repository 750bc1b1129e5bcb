//! The builder: runs a parsed Dockerfile against a context and commits the result to the
//! image store.
//!
//! Each stage keeps a working root filesystem (a directory) beside the image it describes.
//! Filesystem steps (COPY, ADD, RUN, WORKDIR that creates a directory) each produce one layer:
//! COPY/ADD stage their files in a fresh directory, RUN runs in a container whose overlay upper
//! directory is the layer. The layer is stored, then applied to the working root, so the next
//! step sees it. Metadata steps (ENV, CMD, …) only change the config.
//!
//! Cache: every filesystem step has a key, the digest of the previous key, the step's text
//! after substitution and, for COPY/ADD, the digest of the copied files. A key seen before
//! whose layer is still in the store is reused (its layer applied, nothing run), so a rebuild
//! with nothing changed reuses every step, and a changed file rebuilds from its COPY on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use berth_api::network::ContainerNetwork;
use sha2::{Digest, Sha256};

use super::context::{Context, ParentsGroup, Source, clean_relative, resolve_in_root};
use super::copy::{self, Placement};
use super::dockerfile::Heredoc;
use super::dockerfile::{self, Command, Instruction, Line};
use super::fetch;
use super::git;
use super::ignore::IgnoreRules;
use super::run_mount::{self, RunMount};
use super::shell_word::Lexer;
use super::ssh_relay::SshRelay;
use crate::image::layer::{apply_layer, hex, tar_directory, tar_overlay_upper};
use crate::image::oci::{Descriptor, History, ImageConfig, MEDIA_LAYER_GZIP};
use crate::image::remote::RemoteImage;
use crate::image::{Image, ImageError, ImageStore, Reference};
use crate::runtime::{self, Connection, ContainerConfig, Layout, Limits};
use berth_api::time::now_rfc3339;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    pub tag: String,
    pub build_args: Vec<(String, String)>,
    /// Build up to this stage (its name), which becomes the image.
    pub target: Option<String>,
    /// Look nothing up in the cache (steps are still recorded in it).
    pub no_cache: bool,
    /// Pull each FROM image from its registry even when the store has it.
    pub pull: bool,
    /// `RUN --mount=type=secret` files: (id, a file the daemon may read).
    pub secrets: Vec<(String, PathBuf)>,
    /// `--ssh`: SSH agents' sockets by id, for `RUN --mount=type=ssh`.
    pub ssh: Vec<(String, PathBuf)>,
}

/// A step reached, for progress reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub number: u32,
    pub of: u32,
    pub line: usize,
    pub text: String,
    pub cached: bool,
}

/// A failed build: the Dockerfile line when one is to blame, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("Dockerfile line {l}: ")).unwrap_or_default())]
pub struct BuildError {
    pub line: Option<usize>,
    pub message: String,
}

fn at(line: usize) -> impl Fn(String) -> BuildError {
    move |message| BuildError {
        line: Some(line),
        message,
    }
}

fn general(message: impl std::fmt::Display) -> BuildError {
    BuildError {
        line: None,
        message: message.to_string(),
    }
}

/// The lines a `--target` build runs: up to the end of the stage named `target`.
fn up_to_stage<'l>(lines: &'l [Line], target: &str) -> Result<&'l [Line], BuildError> {
    let wanted = target.to_ascii_lowercase();
    let start = lines
        .iter()
        .position(
            |l| matches!(&l.instruction, Instruction::From { alias: Some(a), .. } if *a == wanted),
        )
        .ok_or_else(|| {
            general(format!(
                "--target {target}: the Dockerfile has no stage named so"
            ))
        })?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| matches!(l.instruction, Instruction::From { .. }))
        .map_or(lines.len(), |i| start + 1 + i);
    Ok(&lines[..end])
}

/// The cache index: step key → (layer digest, diff id, size); and the keys of WORKDIR steps
/// that found their directory there (no layer).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct CacheIndex {
    layers: BTreeMap<String, (String, String, u64)>,
    #[serde(default)]
    unchanged: BTreeSet<String>,
    /// `--no-cache`: steps are recorded, never looked up.
    #[serde(skip)]
    no_lookups: bool,
}

impl CacheIndex {
    fn layer(&self, key: &str) -> Option<&(String, String, u64)> {
        if self.no_lookups {
            return None;
        }
        self.layers.get(key)
    }

    fn is_unchanged(&self, key: &str) -> bool {
        !self.no_lookups && self.unchanged.contains(key)
    }
}

/// The platform every image is built for, and the predefined ARGs that name it (BuildKit's
/// automatic platform ARGs: in scope for FROM, and inside a stage once declared by name).
const PLATFORM_ARGS: &[(&str, &str)] = &[
    ("TARGETPLATFORM", "linux/amd64"),
    ("TARGETOS", "linux"),
    ("TARGETARCH", "amd64"),
    ("TARGETVARIANT", ""),
    ("BUILDPLATFORM", "linux/amd64"),
    ("BUILDOS", "linux"),
    ("BUILDARCH", "amd64"),
    ("BUILDVARIANT", ""),
];

/// The build args Docker passes to every RUN when given (`--build-arg`), declared or not, and
/// keeps out of the image's history (they often hold credentials).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The PATH an image without one gets (BuildKit's default for Linux).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// ARGs in scope, in the order declared: a name with no value is declared but unset (absent
/// from RUN's environment, empty when expanded).
#[derive(Debug, Clone, Default)]
struct Args(Vec<(String, Option<String>)>);

impl Args {
    fn set(&mut self, name: &str, value: Option<String>) {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value));
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }

    fn with_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v)))
    }
}

/// A stage being built. Its root directory is made from its layers only when a step needs to
/// look at it (a RUN or COPY that is not cached, a WORKDIR, a `COPY --from` of it): a step's key
/// depends on the key before it, never on the files, so a build whose steps are all cached
/// unpacks nothing.
struct Stage {
    name: Option<String>,
    rootfs: PathBuf,
    config: ImageConfig,
    layers: Vec<Descriptor>,
    /// How many of `layers` are applied to `rootfs`.
    applied: usize,
    /// The last layer this build made, uncompressed, until the root needs it: its index in
    /// `layers` and its tar (the final step's layer is never applied at all).
    fresh: Option<(usize, Vec<u8>)>,
    key: String,
    shell: Vec<String>,
    args: Args,
}

/// A RUN step's bind mount as planned before its key: whose tree, what in it, where in the
/// container (relative to its root), and what stands for its content.
struct BindPlan {
    tree: BindTree,
    source: String,
    target: String,
    kind: PlanKind,
    content: String,
}

/// What a planned mount mounts.
enum PlanKind {
    /// The source itself: read-only, or a copy thrown away after the step (`rw`).
    Bind { read_write: bool },
    /// A cache directory the source fills when it is made (`type=cache,from=…`), which is
    /// that source's: another base is another cache, as in BuildKit.
    SeededCache { id: String, read_only: bool },
}

/// Where a bind mount's source is.
enum BindTree {
    /// The build context (as its ignore rules leave it).
    Context,
    /// An earlier stage, by its index.
    Stage(usize),
    /// An image's filesystem, unpacked in the build directory.
    Image(Box<Image>),
}

/// What a RUN runs: its command, its flags, and its here-document run as a file, if any.
struct RunStep<'a> {
    command: &'a Command,
    flags: &'a [(String, String)],
    script: Option<&'a Heredoc>,
}

/// A RUN here-document that starts with `#!`, written to a file of mode 755 in `dir` and
/// mounted read-only at `/dev/pipes/NAME`, as BuildKit mounts it (its body as written: the
/// interpreter, not the builder, reads it).
fn pipe_script(script: &Heredoc, dir: &Path) -> Result<runtime::BindMount, String> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| format!("the here-document {}: {e}", script.name);
    fs::create_dir_all(dir).map_err(failed)?;
    let file = dir.join(&script.name);
    fs::write(&file, &script.body).map_err(failed)?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).map_err(failed)?;
    Ok(runtime::BindMount {
        source: fs::canonicalize(&file).map_err(failed)?,
        target: format!("{}/{}", dockerfile::PIPES, script.name)
            .trim_start_matches('/')
            .to_owned(),
        read_only: true,
        optional: false,
    })
}

/// A RUN step's `--mount`s, each as written and as read: parsed once per step.
type Mounts<'a> = [(&'a str, RunMount)];

/// Where a RUN step's first `--mount=type=ssh` puts its agent's socket, if it has one.
fn first_ssh_target(mounts: &Mounts<'_>, stage: &Stage) -> Option<String> {
    mounts.iter().find_map(|(_, mount)| match mount {
        RunMount::Ssh { target, .. } => Some(stage.absolute(target)),
        _ => None,
    })
}

/// A RUN step's `--mount=type=tmpfs`s as the runtime mounts them.
fn tmpfs_mounts(mounts: &Mounts<'_>, stage: &Stage) -> Vec<runtime::TmpfsMount> {
    mounts
        .iter()
        .filter_map(|(_, mount)| match mount {
            RunMount::Tmpfs { target, size } => Some(runtime::TmpfsMount {
                target: stage.absolute(target).trim_start_matches('/').to_owned(),
                size: *size,
            }),
            _ => None,
        })
        .collect()
}

/// A bind mount's source as the tree resolves it: its root when none was given.
fn bind_source(source: &str) -> &str {
    if source.trim_matches('/').is_empty() {
        "."
    } else {
        source
    }
}

impl Stage {
    fn env_value(&self, name: &str) -> Option<String> {
        let env = self.config.config.env.as_deref().unwrap_or_default();
        env.iter().rev().find_map(|e| {
            e.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_owned)
        })
    }

    /// Variables in scope for expansion: ENV, then the ARGs (ENV wins, as in Docker).
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| self.env_value(name).or_else(|| self.args.get(name))
    }

    fn set_env(&mut self, name: &str, value: &str) {
        let env = self.config.config.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(name));
        env.push(format!("{name}={value}"));
    }

    fn workdir(&self) -> String {
        self.config
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    /// The owner of what the current USER creates (WORKDIR): root when none is set.
    fn user_ids(&self) -> Result<(u32, u32), String> {
        match self.config.config.user.as_deref().filter(|u| !u.is_empty()) {
            None => Ok((0, 0)),
            Some(user) => runtime::user::resolve(user, &self.rootfs).map(|u| (u.uid, u.gid)),
        }
    }

    /// `path` made absolute against WORKDIR.
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.workdir().trim_end_matches('/'))
        }
    }
}

fn key_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// A port EXPOSE records: `80`, `80/tcp`, `53/udp`, `8000-8010/tcp`, checked as Docker checks
/// it; the protocol defaults to tcp.
fn exposed_port(spec: &str) -> Result<String, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "EXPOSE {spec}: the protocol must be tcp, udp or sctp"
        ));
    }
    let valid = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match ports.split_once('-') {
        Some((a, b)) => valid(a) && valid(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => valid(ports),
    };
    if !ok {
        return Err(format!(
            "EXPOSE {spec}: `{ports}` is not a port or a port range"
        ));
    }
    Ok(format!("{ports}/{proto}"))
}

/// `--chmod`'s octal mode, refused beyond 7777 as BuildKit refuses it.
fn chmod_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={text}: not a mode (octal digits, at most 7777)"))
}

/// How a build fetches an image it does not have: the name as FROM wrote it, to the image in
/// the store, or why not.
pub type PullImage<'a> = dyn Fn(&str) -> Result<Image, String> + 'a;

/// The builder.
pub struct Builder<'a> {
    pub store: &'a ImageStore,
    pub layout: &'a Layout,
    /// Scratch space for stage roots and RUN containers, and the cache index.
    pub work: &'a Path,
    /// RUN steps' network.
    pub network: ContainerNetwork,
    /// Fetches an image FROM names that the store does not have (from its registry).
    pub pull: Option<&'a PullImage<'a>>,
}

/// What every step of one build shares.
struct Build<'a> {
    context: &'a Context,
    lexer: Lexer,
    supplied: HashMap<String, String>,
    /// ARGs before the first FROM, and the platform ARGs.
    global: Args,
    build_dir: &'a Path,
    /// `--pull`: FROM images are pulled even when the store has them.
    pull: bool,
    secrets: &'a [(String, PathBuf)],
    ssh: &'a [(String, PathBuf)],
}

impl Builder<'_> {
    fn cache_path(&self) -> PathBuf {
        self.work.join("cache.json")
    }

    fn load_cache(&self) -> CacheIndex {
        fs::read(self.cache_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_cache(&self, cache: &CacheIndex) {
        let temp = self
            .work
            .join(format!(".cache.json.{}", std::process::id()));
        if serde_json::to_vec(cache).is_ok_and(|b| fs::write(&temp, b).is_ok()) {
            let _ = fs::rename(&temp, self.cache_path());
        }
    }

    /// Build, reporting each step to `progress`. On failure nothing new is named in the store
    /// and unreferenced blobs are removed.
    pub fn build(
        &self,
        options: &BuildOptions,
        progress: &mut dyn FnMut(Step),
    ) -> Result<Image, BuildError> {
        let tag = Reference::parse(&options.tag).map_err(general)?;
        let root = options.context.canonicalize().map_err(|e| {
            general(format!(
                "the build context {}: {e}",
                options.context.display()
            ))
        })?;
        let dockerfile_path = options
            .dockerfile
            .clone()
            .unwrap_or_else(|| root.join("Dockerfile"));
        let context = Context::open(&root, Some(&dockerfile_path)).map_err(general)?;
        let text = fs::read_to_string(&dockerfile_path)
            .map_err(|e| general(format!("cannot read {}: {e}", dockerfile_path.display())))?;
        let dockerfile = dockerfile::parse(&text).map_err(|e| BuildError {
            line: Some(e.line),
            message: e.message,
        })?;
        let build_dir = self.work.join(format!(
            "build-{}-{}",
            std::process::id(),
            key_of(&[&options.tag, &now_rfc3339()])[..8].to_owned()
        ));
        fs::create_dir_all(&build_dir).map_err(general)?;
        let mut global = Args::default();
        for (name, value) in PLATFORM_ARGS {
            global.set(name, Some((*value).to_owned()));
        }
        let build = Build {
            context: &context,
            lexer: Lexer {
                escape: dockerfile.escape,
            },
            supplied: options.build_args.iter().cloned().collect(),
            global,
            build_dir: &build_dir,
            pull: options.pull,
            secrets: &options.secrets,
            ssh: &options.ssh,
        };
        let lines = match &options.target {
            Some(target) => up_to_stage(&dockerfile.lines, target)?,
            None => &dockerfile.lines[..],
        };
        let result = self.run_lines(lines, build, &tag, options.no_cache, progress);
        let _ = fs::remove_dir_all(&build_dir);
        if result.is_err() {
            let _ = self.store.collect_garbage();
        }
        result
    }

    fn run_lines(
        &self,
        lines: &[Line],
        mut build: Build<'_>,
        tag: &Reference,
        no_cache: bool,
        progress: &mut dyn FnMut(Step),
    ) -> Result<Image, BuildError> {
        let mut stages: Vec<Stage> = Vec::new();
        let mut cache = self.load_cache();
        cache.no_lookups = no_cache;
        let total = lines.len() as u32;
        for (index, line) in lines.iter().enumerate() {
            let mut cached = false;
            let err = at(line.number);
            match &line.instruction {
                Instruction::Arg(list) if stages.is_empty() => {
                    for (name, default) in list {
                        let value = match build.supplied.get(name) {
                            Some(v) => Some(v.clone()),
                            None => default
                                .as_deref()
                                .map(|d| {
                                    let global = &build.global;
                                    build.lexer.word(d, &|n: &str| global.get(n))
                                })
                                .transpose()
                                .map_err(|e| err(e.to_string()))?,
                        };
                        build.global.set(name, value);
                    }
                }
                Instruction::From {
                    image,
                    alias,
                    platform,
                } => {
                    let global = &build.global;
                    let lookup = |n: &str| global.get(n);
                    let image = build
                        .lexer
                        .word(image, &lookup)
                        .map_err(|e| err(e.to_string()))?;
                    if let Some(platform) = platform {
                        let platform = build
                            .lexer
                            .word(platform, &lookup)
                            .map_err(|e| err(e.to_string()))?;
                        if platform != "linux/amd64" {
                            return Err(err(format!(
                                "FROM --platform={platform}: Berth builds linux/amd64 images only"
                            )));
                        }
                    }
                    let mut stage = self.from(&image, alias, stages.as_slice(), &build, line)?;
                    // The base's ONBUILD triggers run first, in this build's context; they are
                    // not handed on to images built from this one.
                    for trigger in std::mem::take(&mut stage.config.config.on_build) {
                        let instruction =
                            dockerfile::parse_trigger(&trigger, build.lexer.escape, line.number)
                                .map_err(|e| err(format!("ONBUILD {trigger}: {}", e.message)))?;
                        let trigger_line = Line {
                            number: line.number,
                            text: trigger.clone(),
                            instruction: instruction.clone(),
                        };
                        self.step(
                            &instruction,
                            &trigger_line,
                            &mut stage,
                            &mut stages,
                            &build,
                            &mut cache,
                        )?;
                    }
                    stages.push(stage);
                }
                instruction => {
                    let stage_index = stages.len().saturating_sub(1);
                    let (before, rest) = stages.split_at_mut(stage_index);
                    let Some(stage) = rest.first_mut() else {
                        return Err(err("an instruction before FROM".into()));
                    };
                    cached = self.step(instruction, line, stage, before, &build, &mut cache)?;
                }
            }
            progress(Step {
                number: index as u32 + 1,
                of: total,
                line: line.number,
                text: line.text.clone(),
                cached,
            });
        }
        let Some(stage) = stages.pop() else {
            return Err(general("the Dockerfile has no FROM"));
        };
        let mut config = stage.config;
        config.created = Some(now_rfc3339());
        self.store
            .commit(tag, &config, stage.layers)
            .map_err(general)
    }

    /// A stage's start: an empty root, an earlier stage's, or an image's.
    fn from(
        &self,
        image: &str,
        alias: &Option<String>,
        stages: &[Stage],
        build: &Build<'_>,
        line: &Line,
    ) -> Result<Stage, BuildError> {
        let err = at(line.number);
        let rootfs = build.build_dir.join(format!("stage{}", stages.len()));
        fs::create_dir_all(&rootfs).map_err(|e| err(e.to_string()))?;
        let mut stage = if image == "scratch" {
            Stage {
                name: alias.clone(),
                rootfs,
                config: ImageConfig {
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    ..ImageConfig::default()
                },
                layers: vec![],
                applied: 0,
                fresh: None,
                key: key_of(&["scratch"]),
                shell: vec!["/bin/sh".into(), "-c".into()],
                args: Args::default(),
            }
        } else if let Some(prev) = stages
            .iter()
            .find(|s| s.name.as_deref() == Some(&image.to_ascii_lowercase()))
        {
            Stage {
                name: alias.clone(),
                rootfs,
                config: prev.config.clone(),
                layers: prev.layers.clone(),
                applied: 0,
                fresh: None,
                key: prev.key.clone(),
                shell: prev.shell.clone(),
                args: Args::default(),
            }
        } else {
            let base = self
                .base_image(image, build.pull)
                .map_err(|e| err(format!("FROM {image}: {e}")))?;
            Stage {
                name: alias.clone(),
                rootfs,
                config: base.config.clone(),
                layers: base.manifest.layers.clone(),
                applied: 0,
                fresh: None,
                key: key_of(&[&base.manifest_digest]),
                shell: vec!["/bin/sh".into(), "-c".into()],
                args: Args::default(),
            }
        };
        // An image without a PATH gets the default one, as BuildKit gives it.
        if stage.env_value("PATH").is_none() {
            stage.set_env("PATH", DEFAULT_PATH);
        }
        Ok(stage)
    }

    /// One instruction in a stage; returns whether it came from the cache.
    fn step(
        &self,
        instruction: &Instruction,
        line: &Line,
        stage: &mut Stage,
        earlier: &mut [Stage],
        build: &Build<'_>,
        cache: &mut CacheIndex,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let word = |text: &str, stage: &Stage| {
            build
                .lexer
                .word(text, &stage.lookup())
                .map_err(|e| err(e.to_string()))
        };
        let words = |text: &str, stage: &Stage| {
            build
                .lexer
                .words(text, &stage.lookup())
                .map_err(|e| err(e.to_string()))
        };
        let history = |stage: &mut Stage, empty: bool| {
            stage.config.history.push(History {
                created: Some(now_rfc3339()),
                created_by: Some(line.text.clone()),
                empty_layer: empty,
            });
        };
        match instruction {
            Instruction::Arg(list) => {
                // Every default on the line sees the variables as they were before it, as
                // BuildKit expands the whole line first.
                let mut values = Vec::new();
                for (name, default) in list {
                    values.push(match build.supplied.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(word(d, stage)?),
                            None => build.global.get(name),
                        },
                    });
                }
                for ((name, _), value) in list.iter().zip(values) {
                    stage.args.set(name, value);
                }
                stage.key = key_of(&[&stage.key, &line.text]);
                return Ok(false);
            }
            Instruction::Env(pairs) => {
                // Every value on the line sees the variables as they were before it.
                let expanded = pairs
                    .iter()
                    .map(|(k, v)| Ok((word(k, stage)?, word(v, stage)?)))
                    .collect::<Result<Vec<_>, BuildError>>()?;
                for (k, v) in expanded {
                    stage.set_env(&k, &v);
                }
            }
            Instruction::Label(pairs) => {
                let expanded = pairs
                    .iter()
                    .map(|(k, v)| Ok((word(k, stage)?, word(v, stage)?)))
                    .collect::<Result<Vec<_>, BuildError>>()?;
                for (k, v) in expanded {
                    stage.config.config.labels.insert(k, v);
                }
            }
            Instruction::User(user) => stage.config.config.user = Some(word(user, stage)?),
            Instruction::Expose(ports) => {
                for p in words(ports, stage)? {
                    let p = exposed_port(&p).map_err(&err)?;
                    stage
                        .config
                        .config
                        .exposed_ports
                        .insert(p, serde_json::json!({}));
                }
            }
            Instruction::Volume(paths) => {
                for p in paths {
                    let p = word(p, stage)?;
                    stage.config.config.volumes.insert(p, serde_json::json!({}));
                }
            }
            Instruction::StopSignal(s) => stage.config.config.stop_signal = Some(word(s, stage)?),
            Instruction::Shell(argv) => stage.shell = argv.clone(),
            Instruction::Cmd(c) => stage.config.config.cmd = Some(argv(c, &stage.shell)),
            Instruction::Entrypoint(c) => {
                let run = &mut stage.config.config;
                run.entrypoint = Some(argv(c, &stage.shell));
                // Docker: ENTRYPOINT resets a CMD inherited from the base image.
                run.cmd = None;
            }
            Instruction::Healthcheck(check) => {
                stage.config.config.healthcheck = Some(healthcheck(check.as_ref()).map_err(&err)?);
            }
            Instruction::Maintainer(_) => {}
            Instruction::Onbuild(_) => {
                // Kept as written after the keyword, for the builds FROM this image.
                let trigger = line
                    .text
                    .trim_start()
                    .get("ONBUILD".len()..)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                stage.config.config.on_build.push(trigger);
            }
            Instruction::Workdir(dir) => {
                let path = stage.absolute(&word(dir, stage)?);
                stage.config.config.working_dir = Some(path.clone());
                let user = stage.config.config.user.clone().unwrap_or_default();
                let key = key_of(&[&stage.key, "WORKDIR", &path, &user]);
                if cache.layer(&key).is_none() && !cache.is_unchanged(&key) {
                    self.materialize(stage).map_err(&err)?;
                    let written = clean_relative(path.trim_start_matches('/')).unwrap_or_default();
                    let rel = resolve_in_root(&stage.rootfs, &written, true).map_err(&err)?;
                    if stage.rootfs.join(&rel).is_dir() {
                        cache.unchanged.insert(key.clone());
                        self.save_cache(cache);
                    }
                }
                if !cache.is_unchanged(&key) {
                    return self.layer_step(stage, key, line, &line.text, cache, |dir, stage| {
                        let written =
                            clean_relative(path.trim_start_matches('/')).unwrap_or_default();
                        let rel = resolve_in_root(&stage.rootfs, &written, true)?;
                        // Made as the current USER would make it, as BuildKit does.
                        let owner = stage
                            .user_ids()
                            .map_err(|e| format!("WORKDIR {path}: {e}"))?;
                        copy::make_dirs(dir, &stage.rootfs, &rel, owner)?;
                        let mut bytes = Vec::new();
                        tar_directory(dir, &mut bytes).map_err(|e| e.to_string())?;
                        Ok(bytes)
                    });
                }
            }
            Instruction::Copy {
                sources,
                dest,
                from,
                chown,
                chmod,
                exclude,
                parents,
                heredocs,
            } => {
                let copy = CopySpec {
                    sources,
                    dest,
                    from: from.as_deref(),
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    add: false,
                    exclude,
                    parents: *parents,
                    heredocs,
                    fetched: None,
                };
                return self.copy_step(copy, line, stage, earlier, build, cache);
            }
            Instruction::Add {
                sources,
                dest,
                chown,
                chmod,
                checksum,
                keep_git_dir,
                exclude,
                heredocs,
            } => {
                // Remote sources: git repositories and http(s) files (expanded to be told
                // apart); the rest is the context's.
                let remote: Vec<String> = sources
                    .iter()
                    .filter(|s| s.contains("://") || s.contains('@'))
                    .map(|s| word(s, stage))
                    .collect::<Result<_, _>>()?;
                let repositories: Vec<git::GitSource> = remote
                    .iter()
                    .filter_map(|s| git::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(&err)?;
                let urls: Vec<&String> = remote
                    .iter()
                    .filter(|s| s.contains("://") && git::parse(s).is_none())
                    .collect();
                if !(repositories.is_empty() && urls.is_empty())
                    && repositories.len() + urls.len() != sources.len()
                {
                    return Err(err(
                        "ADD: URLs and repositories cannot be mixed with files of the context in one ADD".into(),
                    ));
                }
                if !repositories.is_empty() && !urls.is_empty() {
                    return Err(err(
                        "ADD: git repositories and http(s) files cannot be mixed in one ADD".into(),
                    ));
                }
                if keep_git_dir.is_some() && repositories.is_empty() {
                    return Err(err(
                        "ADD --keep-git-dir is only for git repositories, as in BuildKit".into(),
                    ));
                }
                if checksum.is_some() && repositories.is_empty() && urls.is_empty() {
                    return Err(err(
                        "ADD --checksum is only for http(s) sources and git repositories, as in BuildKit".into(),
                    ));
                }
                let checksum = checksum.as_deref().map(|c| word(c, stage)).transpose()?;
                let fetched_dir = build.build_dir.join(format!("fetched-{}", line.number));
                let names = if !repositories.is_empty() {
                    if repositories.len() > 1 && checksum.is_some() {
                        return Err(err("ADD --checksum takes one repository".into()));
                    }
                    if let Some(commit) = &checksum {
                        git::check_commit(commit)
                            .map_err(|why| err(format!("--checksum: {why}")))?;
                    }
                    repositories
                        .iter()
                        .enumerate()
                        .map(|(i, repository)| {
                            let repository = git::GitSource {
                                commit: repository.commit.clone().or(checksum.clone()),
                                keep_git_dir: repository.keep_git_dir.or(*keep_git_dir),
                                ..repository.clone()
                            };
                            let dir = fetched_dir.join(format!("git-{i}"));
                            fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
                            let tree =
                                git::fetch(&repository, &dir).map_err(|e| err(e.to_string()))?;
                            tree.strip_prefix(&fetched_dir)
                                .map(|rel| rel.to_string_lossy().into_owned())
                                .map_err(|e| err(e.to_string()))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                } else if !urls.is_empty() {
                    if urls.len() > 1 && checksum.is_some() {
                        return Err(err("ADD --checksum takes one URL".into()));
                    }
                    fs::create_dir_all(&fetched_dir).map_err(|e| err(e.to_string()))?;
                    urls.iter()
                        .map(|url| fetch::download(url, &fetched_dir, checksum.as_deref()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| err(e.to_string()))?
                } else {
                    Vec::new()
                };
                let copy = CopySpec {
                    sources: if names.is_empty() { sources } else { &names },
                    dest,
                    from: None,
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    add: true,
                    exclude,
                    parents: false,
                    heredocs,
                    fetched: (!names.is_empty()).then_some(Fetched {
                        dir: fetched_dir.as_path(),
                        // A checkout keeps its files' modes; a download is 0600, as BuildKit
                        // writes both.
                        keep_modes: !repositories.is_empty(),
                    }),
                };
                return self.copy_step(copy, line, stage, earlier, build, cache);
            }
            Instruction::Run {
                command,
                flags,
                script,
            } => {
                let run = RunStep {
                    command,
                    flags,
                    script: script.as_ref(),
                };
                return self.run_step(run, line, stage, earlier, build, cache);
            }
            Instruction::From { .. } => {}
        }
        stage.key = key_of(&[&stage.key, &line.text]);
        history(stage, true);
        Ok(false)
    }

    /// RUN: the command in a container on the stage's root; what it changes is the layer.
    fn run_step(
        &self,
        run: RunStep<'_>,
        line: &Line,
        stage: &mut Stage,
        earlier: &mut [Stage],
        build: &Build<'_>,
        cache: &mut CacheIndex,
    ) -> Result<bool, BuildError> {
        let RunStep {
            command,
            flags,
            script,
        } = run;
        let args = argv(command, &stage.shell);
        let mut env = stage.config.config.env.clone().unwrap_or_default();
        let declared: Vec<(String, String)> = stage
            .args
            .with_values()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        // Build args with a value are in RUN's environment, as in Docker, unless ENV set them;
        // so are the proxy args given to the build, declared or not.
        let proxies = PROXY_ARGS
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), build.supplied.get(*name)?.clone())));
        for (k, v) in declared.iter().cloned().chain(proxies) {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str()))
            {
                env.push(format!("{k}={v}"));
            }
        }
        // The history names the args the command ran with, as BuildKit's does, but never a
        // proxy's value.
        let shown: Vec<String> = declared
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if shown.is_empty() {
            line.text.clone()
        } else {
            format!(
                "RUN |{} {} {}",
                shown.len(),
                shown.join(" "),
                args.join(" ")
            )
        };
        let run_mounts: Vec<(&str, RunMount)> = flags
            .iter()
            .filter(|(name, _)| name == "mount")
            .map(|(_, text)| run_mount::parse(text).map(|m| (text.as_str(), m)))
            .collect::<Result<_, _>>()
            .map_err(at(line.number))?;
        // An SSH mount's socket is the step's agent, unless its environment names another
        // (as BuildKit sets it).
        if let Some(agent) = first_ssh_target(&run_mounts, stage)
            && !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK="))
        {
            env.push(format!("SSH_AUTH_SOCK={agent}"));
        }
        let binds = self
            .bind_plans(&run_mounts, stage, earlier, build)
            .map_err(at(line.number))?;
        let bound: Vec<&str> = binds.iter().map(|b| b.content.as_str()).collect();
        let key = key_of(&[
            &stage.key,
            &line.text,
            &env.join("\n"),
            &stage.workdir(),
            stage.config.config.user.as_deref().unwrap_or(""),
            // A step that needs the network has another result without it.
            self.network.name(),
            // What its bind mounts hold: a changed file in the context runs it again.
            &bound.join("\n"),
        ]);
        // The relays of ssh sockets for another owner live until the step is done.
        let (mut mounts, _relays) = self
            .run_mounts(&run_mounts, stage, build, line.number)
            .map_err(at(line.number))?;
        if let Some(script) = script {
            mounts.push(
                pipe_script(
                    script,
                    &build.build_dir.join(format!("pipes-{}", line.number)),
                )
                .map_err(at(line.number))?,
            );
        }
        let config = ContainerConfig {
            id: format!("build-{}", &key[..12]),
            hostname: None,
            mounts,
            tmpfs: tmpfs_mounts(&run_mounts, stage),
            terminal: false,
            stdin: false,
            dir: build.build_dir.join(format!("run-{}", line.number)),
            lower: vec![stage.rootfs.clone()],
            args,
            env,
            cwd: stage.workdir(),
            user: stage.config.config.user.clone().unwrap_or_default(),
            limits: Limits::default(),
            log: build.build_dir.join(format!("run-{}.log", line.number)),
            // On the network through pasta, unless the build asked for none (a step needs no
            // names of other containers: the bridge is for running ones).
            network: match self.network {
                ContainerNetwork::Pasta | ContainerNetwork::Bridge => {
                    Some(Connection::Pasta(Vec::new()))
                }
                ContainerNetwork::None => None,
            },
            hosts: Vec::new(),
        };
        let layout = self.layout;
        self.layer_step(stage, key, line, &created_by, cache, |_, _| {
            let _ = fs::create_dir_all(&config.dir);
            let mut config = config;
            for (n, bind) in binds.into_iter().enumerate() {
                let scratch = build.build_dir.join(format!("bind-{}-{n}", line.number));
                config
                    .mounts
                    .push(self.bind_mount(bind, earlier, build, &scratch)?);
            }
            let container = runtime::start(&config, layout).map_err(|e| e.to_string())?;
            let exit = container.wait();
            if exit.code != 0 {
                let output = fs::read_to_string(&config.log).unwrap_or_default();
                let tail: Vec<&str> = output
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(format!(
                    "RUN exited with code {}{}",
                    exit.code,
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(":\n{}", tail.join("\n"))
                    }
                ));
            }
            runtime::remove_mount_stubs(&config);
            let mut bytes = Vec::new();
            tar_overlay_upper(&config.upper(), &mut bytes).map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    }

    /// A RUN step's bind mounts, resolved (a source the tree lacks fails the step before it
    /// runs) and each with what stands for its content in the step's key.
    fn bind_plans(
        &self,
        mounts: &Mounts<'_>,
        stage: &Stage,
        earlier: &[Stage],
        build: &Build<'_>,
    ) -> Result<Vec<BindPlan>, String> {
        let mut plans = Vec::new();
        for (text, mount) in mounts {
            let (target, source, from, kind) = match mount {
                RunMount::Bind {
                    target,
                    source,
                    from,
                    read_write,
                } => (
                    target,
                    source,
                    from,
                    PlanKind::Bind {
                        read_write: *read_write,
                    },
                ),
                RunMount::Cache {
                    target,
                    id,
                    from: from @ Some(_),
                    source,
                    read_only,
                    ..
                } => (
                    target,
                    source,
                    from,
                    PlanKind::SeededCache {
                        id: id.clone(),
                        read_only: *read_only,
                    },
                ),
                _ => continue,
            };
            let bad = |why: String| format!("RUN --mount={text}: {why}");
            if super::context::has_wildcard(source) {
                return Err(bad(
                    "a bind mount's source is one path, not a pattern".into()
                ));
            }
            let (tree, content) = match from {
                None => {
                    let sources = build.context.resolve(bind_source(source)).map_err(&bad)?;
                    (BindTree::Context, build.context.digest(&sources))
                }
                Some(from) => {
                    let from = build
                        .lexer
                        .word(from, &stage.lookup())
                        .map_err(|e| bad(e.to_string()))?;
                    let position = earlier.iter().enumerate().position(|(i, s)| {
                        s.name.as_deref() == Some(&from.to_ascii_lowercase())
                            || from == i.to_string()
                    });
                    match position {
                        // The stage's key stands for its files, resolved when the step runs.
                        Some(i) => (BindTree::Stage(i), format!("{}:{source}", earlier[i].key)),
                        // Not a stage: an image, as BuildKit takes it.
                        None => {
                            let image = self.base_image(&from, build.pull).map_err(|e| {
                                bad(format!("no earlier stage is named `{from}`, and {e}"))
                            })?;
                            let content = format!("{}:{source}", image.manifest_digest);
                            (BindTree::Image(Box::new(image)), content)
                        }
                    }
                }
            };
            plans.push(BindPlan {
                tree,
                source: source.clone(),
                target: stage.absolute(target).trim_start_matches('/').to_owned(),
                kind,
                content,
            });
        }
        Ok(plans)
    }

    /// A bind mount as the runtime mounts it, when the step runs: the path itself, read-only;
    /// or a copy of it in `scratch` (thrown away with the build directory) when writes are
    /// allowed, or when the context's ignore rules leave out some of what is on disk there.
    fn bind_mount(
        &self,
        bind: BindPlan,
        earlier: &mut [Stage],
        build: &Build<'_>,
        scratch: &Path,
    ) -> Result<runtime::BindMount, String> {
        let from_tree;
        let tree = match bind.tree {
            BindTree::Context => build.context,
            BindTree::Stage(i) => {
                let other = earlier.get_mut(i).ok_or_else(|| format!("no stage {i}"))?;
                self.materialize(other)?;
                from_tree = Context::of_tree(&other.rootfs);
                &from_tree
            }
            BindTree::Image(image) => {
                let root = self.unpacked(&image, build)?;
                from_tree = Context::of_tree(&root);
                &from_tree
            }
        };
        let mut sources = tree.resolve(bind_source(&bind.source))?;
        let (Some(source), true) = (sources.pop(), sources.is_empty()) else {
            return Err(format!("`{}`: one path to mount", bind.source));
        };
        let full = tree.root().join(&source.path);
        let read_write = match bind.kind {
            PlanKind::Bind { read_write } => read_write,
            PlanKind::SeededCache { id, read_only } => {
                let dir = self
                    .work
                    .join("cache-mounts")
                    .join(&key_of(&[&id, &bind.content])[..32]);
                if !dir.exists() {
                    if !fs::metadata(&full).is_ok_and(|m| m.is_dir()) {
                        return Err(format!(
                            "cache `{id}`: `{}` is not a directory to fill it with",
                            bind.source
                        ));
                    }
                    let temp = dir.with_extension(format!("new.{}", std::process::id()));
                    let _ = fs::remove_dir_all(&temp);
                    fs::create_dir_all(&temp).map_err(|e| format!("cache `{id}`: {e}"))?;
                    let place = Placement {
                        target: "/",
                        into_dir: true,
                        image_root: &temp,
                        owner: None,
                        mode: None,
                        unpack_archives: false,
                        keep_owners: true,
                        exclude: None,
                    };
                    copy::stage_copy(tree, std::slice::from_ref(&source), &place, &temp)?;
                    fs::rename(&temp, &dir).map_err(|e| format!("cache `{id}`: {e}"))?;
                }
                return Ok(runtime::BindMount {
                    source: fs::canonicalize(&dir).map_err(|e| format!("cache `{id}`: {e}"))?,
                    target: bind.target,
                    read_only,
                    optional: false,
                });
            }
        };
        let copied = read_write || (std::ptr::eq(tree, build.context) && tree.filters());
        let path = if copied {
            let _ = fs::remove_dir_all(scratch);
            fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
            let is_dir = fs::metadata(&full).is_ok_and(|m| m.is_dir());
            let name = source.name.to_string_lossy().into_owned();
            let target = if is_dir {
                "/".to_owned()
            } else {
                format!("/{name}")
            };
            let place = Placement {
                target: &target,
                into_dir: is_dir,
                image_root: scratch,
                owner: None,
                mode: None,
                unpack_archives: false,
                keep_owners: !std::ptr::eq(tree, build.context),
                exclude: None,
            };
            copy::stage_copy(tree, std::slice::from_ref(&source), &place, scratch)?;
            if is_dir {
                scratch.to_path_buf()
            } else {
                scratch.join(name)
            }
        } else {
            full
        };
        Ok(runtime::BindMount {
            source: fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?,
            target: bind.target,
            read_only: !read_write,
            optional: false,
        })
    }

    /// A RUN step's `--mount`s as the runtime mounts them: a cache's directory under the
    /// builder's work directory (made with its owner and mode the first time), a secret's file.
    fn run_mounts(
        &self,
        run_mounts: &Mounts<'_>,
        stage: &Stage,
        build: &Build<'_>,
        line: usize,
    ) -> Result<(Vec<runtime::BindMount>, Vec<SshRelay>), String> {
        let mut relays = Vec::new();
        // What the build was given under an id (a secret's file, an agent's socket), mounted;
        // nothing when it was not given, unless it is `required` (`missing` says what to give).
        let given = |list: &[(String, PathBuf)],
                     (id, target, required): (&str, &str, bool),
                     read_only: bool,
                     missing: &dyn Fn() -> String| {
            match list.iter().find(|(have, _)| have == id) {
                Some((_, path)) => Ok(Some(runtime::BindMount {
                    source: path.clone(),
                    target: stage.absolute(target).trim_start_matches('/').to_owned(),
                    read_only,
                    optional: false,
                })),
                None if required => Err(missing()),
                None => Ok(None),
            }
        };
        let mut mounts = Vec::new();
        for (_, mount) in run_mounts {
            match mount {
                // A cache another tree fills is a planned mount (`bind_plans`).
                RunMount::Cache { from: Some(_), .. } => {}
                RunMount::Cache {
                    target,
                    id,
                    from: None,
                    source,
                    read_only,
                    uid,
                    gid,
                    mode,
                } => {
                    let dir = self.work.join("cache-mounts").join(&key_of(&[id])[..32]);
                    if !dir.exists() {
                        let temp = dir.with_extension(format!("new.{}", std::process::id()));
                        let _ = fs::remove_dir_all(&temp);
                        fs::create_dir_all(&temp).map_err(|e| format!("cache `{id}`: {e}"))?;
                        std::os::unix::fs::chown(&temp, Some(*uid), Some(*gid))
                            .map_err(|e| format!("cache `{id}`: {e}"))?;
                        use std::os::unix::fs::PermissionsExt;
                        fs::set_permissions(&temp, fs::Permissions::from_mode(*mode))
                            .map_err(|e| format!("cache `{id}`: {e}"))?;
                        fs::rename(&temp, &dir).map_err(|e| format!("cache `{id}`: {e}"))?;
                    }
                    // `source=` without `from=`: a directory of the cache is mounted, as
                    // BuildKit mounts that path of a cache based on nothing.
                    let below = Path::new(source.trim_start_matches('/'));
                    if below
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                    {
                        return Err(format!("cache `{id}`: source={source} leaves the cache"));
                    }
                    let mounted = dir.join(below);
                    fs::create_dir_all(&mounted).map_err(|e| format!("cache `{id}`: {e}"))?;
                    mounts.push(runtime::BindMount {
                        source: fs::canonicalize(&mounted)
                            .map_err(|e| format!("cache `{id}`: {e}"))?,
                        target: stage.absolute(target).trim_start_matches('/').to_owned(),
                        read_only: *read_only,
                        optional: false,
                    });
                }
                RunMount::Secret {
                    id,
                    target,
                    required,
                } => mounts.extend(given(
                    build.secrets,
                    (id, target, *required),
                    true,
                    &|| {
                        format!(
                            "the secret `{id}` is required: give it with --secret id={id},src=PATH"
                        )
                    },
                )?),
                RunMount::Ssh {
                    id,
                    target,
                    required,
                    owner,
                } => {
                    let mount = given(build.ssh, (id, target, *required), false, &|| {
                        format!(
                            "the ssh agent `{id}` is required: give it with --ssh {id}[=SOCKET]"
                        )
                    })?;
                    // Another owner or mode: a socket of the step's own, relaying.
                    let mount = match (mount, owner) {
                        (Some(mut mount), Some(owner)) => {
                            let socket = build
                                .build_dir
                                .join(format!("ssh-{line}-{}.sock", relays.len()));
                            relays.push(
                                SshRelay::start(&mount.source, &socket, *owner)
                                    .map_err(|e| format!("the ssh agent `{id}`: {e}"))?,
                            );
                            mount.source = socket;
                            Some(mount)
                        }
                        (mount, _) => mount,
                    };
                    mounts.extend(mount);
                }
                // Mounted when the step runs (`bind_mount`), or not a bind mount (`tmpfs_mounts`).
                RunMount::Bind { .. } | RunMount::Tmpfs { .. } => {}
            }
        }
        Ok((mounts, relays))
    }

    /// COPY and ADD: resolve the sources (in the context, or in an earlier stage with
    /// `--from`), key the step on their content, and stage them as one layer. What depends on
    /// the stage's files (owners by name, the destination's kind) is worked out only when the
    /// step is not cached: the key before it already fixes those files.
    fn copy_step(
        &self,
        copy: CopySpec<'_>,
        line: &Line,
        stage: &mut Stage,
        earlier: &mut [Stage],
        build: &Build<'_>,
        cache: &mut CacheIndex,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let word = |text: &str, stage: &Stage| {
            build
                .lexer
                .word(text, &stage.lookup())
                .map_err(|e| err(e.to_string()))
        };
        let keyword = if copy.add { "ADD" } else { "COPY" };
        let dest = word(copy.dest, stage)?;
        let chown = copy.chown.map(|c| word(c, stage)).transpose()?;
        let mode = match copy.chmod {
            None if copy.fetched.is_some_and(|f| !f.keep_modes) => Some(0o600),
            None => None,
            Some(m) => Some(chmod_mode(&word(m, stage)?).map_err(&err)?),
        };
        let written: Vec<String> = copy
            .sources
            .iter()
            .map(|s| word(s, stage))
            .collect::<Result<_, _>>()?;
        // `--exclude`: dockerignore patterns, matched as BuildKit matches them (fsutil's copy)
        // against the paths below each copied directory; the flags are in the step's key
        // through its line.
        let exclude = if copy.exclude.is_empty() {
            None
        } else {
            let patterns: Vec<String> = copy
                .exclude
                .iter()
                .map(|p| word(p, stage))
                .collect::<Result<_, _>>()?;
            Some(IgnoreRules::parse(&patterns.join("\n")))
        };
        // Here-documents: files of a tree of their own, their bodies expanded unless quoted.
        let heredoc_tree = if let Some(fetched) = copy.fetched {
            Some(Context::of_tree(fetched.dir))
        } else if copy.heredocs.is_empty() {
            None
        } else {
            if copy.from.is_some() || written.iter().any(|s| !s.starts_with("<<")) {
                return Err(err(format!(
                    "{keyword}: here-documents cannot be mixed with other sources or --from"
                )));
            }
            let dir = build.build_dir.join(format!("heredocs-{}", line.number));
            fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
            for heredoc in copy.heredocs {
                let body = if heredoc.expand {
                    build
                        .lexer
                        .heredoc(&heredoc.body, &stage.lookup())
                        .map_err(|e| err(e.to_string()))?
                } else {
                    heredoc.body.clone()
                };
                let file = dir.join(&heredoc.name);
                fs::write(&file, body).map_err(|e| err(e.to_string()))?;
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&file, fs::Permissions::from_mode(0o644))
                    .map_err(|e| err(e.to_string()))?;
            }
            Some(Context::of_tree(&dir))
        };
        let written: Vec<String> = match &heredoc_tree {
            Some(_) if copy.fetched.is_none() => written
                .iter()
                .map(|s| s.trim_start_matches("<<").to_owned())
                .collect(),
            _ => written,
        };
        let context = heredoc_tree.as_ref().unwrap_or(build.context);
        let no_match = || format!("{keyword} {}: no source file matches", written.join(" "));
        // From the context: resolved now, their content is in the key. From a stage: its key
        // stands for its files, resolved when the step runs.
        let (from_stage, context_sources, content) = match copy.from {
            None => {
                let sources = resolve_sources(context, &written, copy.parents).map_err(&err)?;
                if sources.is_empty() && !copy.parents {
                    return Err(err(no_match()));
                }
                let digest = context.digest(&sources.flat());
                (None, sources, digest)
            }
            Some(from) => {
                let from = word(from, stage)?;
                let position = earlier.iter().enumerate().position(|(i, s)| {
                    s.name.as_deref() == Some(&from.to_ascii_lowercase()) || from == i.to_string()
                });
                match position.and_then(|i| earlier.get_mut(i)) {
                    Some(other) => {
                        let content = other.key.clone();
                        (
                            Some((from, CopyFrom::Stage(other))),
                            Resolved::default(),
                            content,
                        )
                    }
                    // Not a stage: an image, as BuildKit takes it (pulled if the store lacks it).
                    None => {
                        let image = self.base_image(&from, build.pull).map_err(|e| {
                            err(format!(
                                "{keyword} --from={from}: no earlier stage has that name, and {e}"
                            ))
                        })?;
                        let content = image.manifest_digest.clone();
                        (
                            Some((from, CopyFrom::Image(Box::new(image)))),
                            Resolved::default(),
                            content,
                        )
                    }
                }
            }
        };
        let ends_as_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
        let target = stage.absolute(&dest);
        let key = key_of(&[
            &stage.key,
            &line.text,
            &target,
            &content,
            &format!("{chown:?}{mode:?}"),
        ]);
        self.layer_step(stage, key, line, &line.text, cache, |dir, stage| {
            let owned;
            let (tree, keep_owners, sources) = match from_stage {
                None => (context, false, context_sources),
                Some((from, source)) => {
                    owned = match source {
                        CopyFrom::Stage(other) => {
                            self.materialize(other)?;
                            Context::of_tree(&other.rootfs)
                        }
                        CopyFrom::Image(image) => {
                            let root = self
                                .unpacked(&image, build)
                                .map_err(|e| format!("{keyword} --from={from}: {e}"))?;
                            Context::of_tree(&root)
                        }
                    };
                    let sources = resolve_sources(&owned, &written, copy.parents)
                        .map_err(|e| format!("{keyword} --from={from}: {e}"))?;
                    if sources.is_empty() && !copy.parents {
                        return Err(no_match());
                    }
                    (&owned, true, sources)
                }
            };
            // With --parents the destination is a directory, as BuildKit copies into it.
            if written.len() > 1 && !ends_as_dir && !copy.parents {
                let existing = clean_relative(target.trim_start_matches('/'))
                    .and_then(|rel| resolve_in_root(&stage.rootfs, &rel, true).ok())
                    .is_some_and(|rel| stage.rootfs.join(rel).is_dir());
                if !existing {
                    return Err(format!(
                        "{keyword} with more than one source needs a directory destination ending in /: `{dest}`"
                    ));
                }
            }
            let owner = match &chown {
                None => None,
                Some(c) => {
                    let user = runtime::user::resolve(c, &stage.rootfs)
                        .map_err(|e| format!("--chown={c}: {e}"))?;
                    Some((user.uid, user.gid))
                }
            };
            let place = Placement {
                target: &target,
                into_dir: ends_as_dir || sources.flat().len() > 1 || copy.parents,
                image_root: &stage.rootfs,
                owner,
                mode,
                // Neither here-documents nor downloads are unpacked, as in BuildKit.
                unpack_archives: copy.add && heredoc_tree.is_none(),
                keep_owners,
                exclude: exclude.as_ref(),
            };
            match &sources {
                Resolved::Plain(sources) => copy::stage_copy(tree, sources, &place, dir)?,
                Resolved::Parents(groups) => {
                    for (pivot, sources) in groups {
                        copy::stage_copy_parents(tree, pivot, sources, &place, dir)?;
                    }
                }
            }
            let mut bytes = Vec::new();
            tar_directory(dir, &mut bytes).map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    }

    /// `image`'s filesystem, unpacked in the build directory (once a build), for a step that
    /// copies from it or mounts it.
    fn unpacked(&self, image: &Image, build: &Build<'_>) -> Result<PathBuf, String> {
        let digest = image.manifest_digest.trim_start_matches("sha256:");
        let root = build
            .build_dir
            .join(format!("from-{}", &digest[..digest.len().min(16)]));
        if !root.exists() {
            self.store.unpack(image, &root).map_err(|e| e.to_string())?;
        }
        Ok(root)
    }

    /// The image a FROM names: in the store under that name or Docker's familiar name for it
    /// (`docker.io/library/busybox` is `busybox`), else pulled; with `always_pull`, pulled
    /// first in any case (`build --pull`).
    fn base_image(&self, image: &str, always_pull: bool) -> Result<Image, String> {
        if always_pull {
            let pull = self
                .pull
                .ok_or("--pull: this build cannot reach registries")?;
            return pull(image).map_err(|e| format!("--pull: pulling it failed: {e}"));
        }
        let familiar = RemoteImage::parse(image).map(|r| r.local_name().to_string());
        let found = match self.store.resolve(image) {
            Err(ImageError::NotFound(_) | ImageError::BadReference(_)) => match &familiar {
                Ok(name) => self.store.resolve(name),
                Err(e) => Err(ImageError::BadReference(e.clone())),
            },
            found => found,
        };
        match (found, self.pull) {
            (Ok(image), _) => Ok(image),
            (Err(ImageError::NotFound(_)), Some(pull)) => pull(image)
                .map_err(|e| format!("not in the image store, and pulling it failed: {e}")),
            (Err(e), _) => Err(e.to_string()),
        }
    }

    /// Applies the stage's layers its root does not have yet: the one this build just made
    /// from its tar, the others from the store.
    fn materialize(&self, stage: &mut Stage) -> Result<(), String> {
        let fresh = stage.fresh.take();
        for i in stage.applied..stage.layers.len() {
            match &fresh {
                Some((index, tar)) if *index == i => {
                    apply_layer(&tar[..], &stage.rootfs).map_err(|e| e.to_string())?;
                }
                _ => {
                    let diff_ids = stage.config.rootfs.diff_ids.get(i..=i).unwrap_or_default();
                    self.store
                        .apply_layers(&stage.layers[i..=i], diff_ids, &stage.rootfs)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        stage.applied = stage.layers.len();
        Ok(())
    }

    /// A step that makes a layer: reuse the cached one for `key`, or call `make` with an empty
    /// directory and the stage, its root brought up to date, to get the layer's tar bytes.
    /// Either way the layer is applied to the stage's root only when a later step needs it.
    fn layer_step(
        &self,
        stage: &mut Stage,
        key: String,
        line: &Line,
        created_by: &str,
        cache: &mut CacheIndex,
        make: impl FnOnce(&Path, &Stage) -> Result<Vec<u8>, String>,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let hit = cache.layer(&key).cloned().filter(|(digest, _, _)| {
            self.store
                .root()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"))
                .exists()
        });
        let (descriptor, diff_id, cached) = match hit {
            Some((digest, diff_id, size)) => {
                let descriptor = Descriptor {
                    media_type: MEDIA_LAYER_GZIP.into(),
                    digest,
                    size,
                    annotations: BTreeMap::new(),
                };
                (descriptor, diff_id, true)
            }
            None => {
                self.materialize(stage).map_err(&err)?;
                let staging = stage.rootfs.with_extension(format!("step{}", line.number));
                fs::create_dir_all(&staging).map_err(|e| err(e.to_string()))?;
                let bytes = make(&staging, stage);
                let _ = fs::remove_dir_all(&staging);
                let bytes = bytes.map_err(&err)?;
                let (descriptor, diff_id) = self
                    .store
                    .put_layer(&bytes[..])
                    .map_err(|e| err(e.to_string()))?;
                cache.layers.insert(
                    key.clone(),
                    (descriptor.digest.clone(), diff_id.clone(), descriptor.size),
                );
                self.save_cache(cache);
                stage.fresh = Some((stage.layers.len(), bytes));
                (descriptor, diff_id, false)
            }
        };
        stage.layers.push(descriptor);
        stage.config.rootfs.diff_ids.push(diff_id);
        stage.config.history.push(History {
            created: Some(now_rfc3339()),
            created_by: Some(created_by.to_owned()),
            empty_layer: false,
        });
        stage.key = key;
        Ok(cached)
    }
}

/// A Go-style duration (`30s`, `1m30s`, `500ms`, `2h`) in nanoseconds.
fn duration_ns(text: &str) -> Result<u64, String> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            unit.extend(chars.next());
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        number.clear();
        total += value
            * match unit.as_str() {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => {
                    return Err(format!(
                        "`{text}` is not a duration (units ns, us, ms, s, m, h)"
                    ));
                }
            };
    }
    if !number.is_empty() {
        return Err(format!("`{text}` needs a unit, e.g. 30s"));
    }
    Ok(total as u64)
}

/// HEALTHCHECK as the image config records it.
fn healthcheck(
    check: Option<&(Command, Vec<(String, String)>)>,
) -> Result<serde_json::Value, String> {
    let Some((command, flags)) = check else {
        return Ok(serde_json::json!({ "Test": ["NONE"] }));
    };
    let test: Vec<String> = match command {
        Command::Exec(argv) => std::iter::once("CMD".to_owned())
            .chain(argv.iter().cloned())
            .collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
    };
    let mut value = serde_json::json!({ "Test": test });
    for (name, flag_value) in flags {
        let key = match name.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let retries: u64 = flag_value
                    .parse()
                    .map_err(|_| format!("--retries={flag_value} is not a number"))?;
                value["Retries"] = retries.into();
                continue;
            }
            _ => continue,
        };
        value[key] = duration_ns(flag_value)?.into();
    }
    Ok(value)
}

/// Where a `COPY --from` copies from.
enum CopyFrom<'a> {
    Stage(&'a mut Stage),
    Image(Box<Image>),
}

/// The arguments of a COPY or ADD, as written.
struct CopySpec<'a> {
    sources: &'a [String],
    dest: &'a str,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    /// ADD: local tar archives are unpacked.
    add: bool,
    /// `--exclude` patterns, as written.
    exclude: &'a [String],
    /// `--parents`: each source keeps its directories below its pivot.
    parents: bool,
    /// The here-documents the sources written `<<NAME` are.
    heredocs: &'a [Heredoc],
    /// ADD's downloads and checkouts: where they were fetched, the sources their names there.
    fetched: Option<Fetched<'a>>,
}

/// What ADD fetched for a step: the directory, and whether its files keep their modes (a git
/// checkout) or get 0600 (downloads).
#[derive(Clone, Copy)]
struct Fetched<'a> {
    dir: &'a Path,
    keep_modes: bool,
}

/// The sources of a COPY or ADD, resolved in their tree.
enum Resolved {
    Plain(Vec<Source>),
    /// `COPY --parents`: per argument, its pivot and each source with its place below the
    /// destination.
    Parents(Vec<ParentsGroup>),
}

impl Default for Resolved {
    fn default() -> Self {
        Resolved::Plain(Vec::new())
    }
}

impl Resolved {
    /// Every source, wherever it goes.
    fn flat(&self) -> Vec<Source> {
        match self {
            Resolved::Plain(sources) => sources.clone(),
            Resolved::Parents(groups) => groups
                .iter()
                .flat_map(|(_, sources)| sources.iter().map(|(s, _)| s.clone()))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.flat().is_empty()
    }
}

/// Resolves the `written` sources of a COPY or ADD in `tree`, keeping their directories with
/// `parents`.
fn resolve_sources(tree: &Context, written: &[String], parents: bool) -> Result<Resolved, String> {
    if parents {
        let mut groups = Vec::new();
        for s in written {
            groups.extend(tree.resolve_parents(s)?);
        }
        return Ok(Resolved::Parents(groups));
    }
    let mut sources = Vec::new();
    for s in written {
        sources.extend(tree.resolve(s)?);
    }
    Ok(Resolved::Plain(sources))
}

/// A command in exec form, or wrapped in the stage's SHELL.
fn argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}
