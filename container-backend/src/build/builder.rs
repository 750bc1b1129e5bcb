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

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use berth_api::network::ContainerNetwork;
use sha2::{Digest, Sha256};

use super::context::{Context, clean_relative};
use super::dockerfile::{self, Command, Instruction, Line};
use crate::image::layer::{apply_layer, hex, maybe_gunzip, tar_directory, tar_overlay_upper};
use crate::image::oci::{Descriptor, History, ImageConfig, MEDIA_LAYER_GZIP};
use crate::image::store::now_rfc3339;
use crate::image::{Image, ImageStore, Reference};
use crate::runtime::{self, ContainerConfig, Layout, Limits};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    pub tag: String,
    pub build_args: Vec<(String, String)>,
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

/// The cache index: step key → (layer digest, diff id, size).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct CacheIndex {
    layers: BTreeMap<String, (String, String, u64)>,
}

struct Stage {
    name: Option<String>,
    rootfs: PathBuf,
    config: ImageConfig,
    layers: Vec<Descriptor>,
    key: String,
    shell: Vec<String>,
    args: HashMap<String, String>,
}

impl Stage {
    /// Variables in scope for substitution: ARGs, then ENV over them.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            let env = self.config.config.env.as_deref().unwrap_or_default();
            env.iter()
                .rev()
                .find_map(|e| {
                    e.strip_prefix(name)
                        .and_then(|r| r.strip_prefix('='))
                        .map(str::to_owned)
                })
                .or_else(|| self.args.get(name).cloned())
        }
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
}

fn key_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Copy a tree (files, directories, symlinks) preserving modes; used to start a stage from
/// another stage's root.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    tar_directory(from, &mut bytes)?;
    fs::create_dir_all(to)?;
    apply_layer(&bytes[..], to).map_err(std::io::Error::other)
}

/// The builder.
pub struct Builder<'a> {
    pub store: &'a ImageStore,
    pub layout: &'a Layout,
    /// Scratch space for stage roots and RUN containers, and the cache index.
    pub work: &'a Path,
    /// RUN steps' network.
    pub network: ContainerNetwork,
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
        let context = Context::open(&options.context).map_err(general)?;
        let dockerfile_path = options
            .dockerfile
            .clone()
            .unwrap_or_else(|| context.root().join("Dockerfile"));
        let text = fs::read_to_string(&dockerfile_path)
            .map_err(|e| general(format!("cannot read {}: {e}", dockerfile_path.display())))?;
        let lines = dockerfile::parse(&text).map_err(|e| BuildError {
            line: Some(e.line),
            message: e.message,
        })?;
        let build_dir = self.work.join(format!(
            "build-{}-{}",
            std::process::id(),
            key_of(&[&options.tag, &now_rfc3339()])[..8].to_owned()
        ));
        fs::create_dir_all(&build_dir).map_err(general)?;
        let result = self.run_lines(&lines, &context, options, &tag, &build_dir, progress);
        let _ = fs::remove_dir_all(&build_dir);
        if result.is_err() {
            let _ = self.store.collect_garbage();
        }
        result
    }

    fn run_lines(
        &self,
        lines: &[Line],
        context: &Context,
        options: &BuildOptions,
        tag: &Reference,
        build_dir: &Path,
        progress: &mut dyn FnMut(Step),
    ) -> Result<Image, BuildError> {
        let supplied: HashMap<String, String> = options.build_args.iter().cloned().collect();
        let mut global_args: HashMap<String, String> = HashMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        let mut cache = self.load_cache();
        let total = lines.len() as u32;
        for (index, line) in lines.iter().enumerate() {
            let mut cached = false;
            let err = at(line.number);
            match &line.instruction {
                Instruction::Arg { name, default } if stages.is_empty() => {
                    if let Some(v) = supplied.get(name).cloned().or_else(|| default.clone()) {
                        global_args.insert(name.clone(), v);
                    }
                }
                Instruction::From { image, alias, .. } => {
                    let lookup = |n: &str| global_args.get(n).cloned();
                    let image = dockerfile::substitute(image, '\\', &lookup).map_err(&err)?;
                    let rootfs = build_dir.join(format!("stage{}", stages.len()));
                    let stage = if image == "scratch" {
                        fs::create_dir_all(&rootfs).map_err(|e| err(e.to_string()))?;
                        Stage {
                            name: alias.clone(),
                            rootfs,
                            config: ImageConfig {
                                architecture: "amd64".into(),
                                os: "linux".into(),
                                ..ImageConfig::default()
                            },
                            layers: vec![],
                            key: key_of(&["scratch"]),
                            shell: vec!["/bin/sh".into(), "-c".into()],
                            args: HashMap::new(),
                        }
                    } else if let Some(prev) = stages
                        .iter()
                        .find(|s| s.name.as_deref() == Some(&image.to_ascii_lowercase()))
                    {
                        copy_tree(&prev.rootfs, &rootfs).map_err(|e| err(e.to_string()))?;
                        Stage {
                            name: alias.clone(),
                            rootfs,
                            config: prev.config.clone(),
                            layers: prev.layers.clone(),
                            key: prev.key.clone(),
                            shell: prev.shell.clone(),
                            args: HashMap::new(),
                        }
                    } else {
                        let base = self
                            .store
                            .resolve(&image)
                            .map_err(|e| err(format!("FROM {image}: {e}")))?;
                        self.store
                            .unpack(&base, &rootfs)
                            .map_err(|e| err(e.to_string()))?;
                        Stage {
                            name: alias.clone(),
                            rootfs,
                            config: base.config.clone(),
                            layers: base.manifest.layers.clone(),
                            key: key_of(&[&base.manifest_digest]),
                            shell: vec!["/bin/sh".into(), "-c".into()],
                            args: HashMap::new(),
                        }
                    };
                    stages.push(stage);
                }
                instruction => {
                    let stage_index = stages.len().saturating_sub(1);
                    let (before, rest) = stages.split_at_mut(stage_index);
                    let Some(stage) = rest.first_mut() else {
                        return Err(err("an instruction before FROM".into()));
                    };
                    cached = self.step(
                        instruction,
                        line,
                        stage,
                        before,
                        context,
                        &supplied,
                        build_dir,
                        &mut cache,
                    )?;
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

    /// One instruction in a stage; returns whether it came from the cache.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        instruction: &Instruction,
        line: &Line,
        stage: &mut Stage,
        earlier: &[Stage],
        context: &Context,
        supplied: &HashMap<String, String>,
        build_dir: &Path,
        cache: &mut CacheIndex,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let sub = |text: &str, stage: &Stage| {
            dockerfile::substitute(text, '\\', &stage.lookup()).map_err(&err)
        };
        let history = |stage: &mut Stage, empty: bool| {
            stage.config.history.push(History {
                created: Some(now_rfc3339()),
                created_by: Some(line.text.clone()),
                empty_layer: empty,
            });
        };
        let run = &mut stage.config.config;
        match instruction {
            Instruction::Arg { name, default } => {
                let value = supplied
                    .get(name)
                    .cloned()
                    .or_else(|| default.clone())
                    .unwrap_or_default();
                stage.args.insert(name.clone(), value);
                stage.key = key_of(&[&stage.key, &line.text]);
                return Ok(false);
            }
            Instruction::Env(pairs) => {
                for (k, v) in pairs {
                    let v = sub(v, stage)?;
                    stage.set_env(k, &v);
                }
            }
            Instruction::Label(pairs) => {
                for (k, v) in pairs {
                    let v = sub(v, stage)?;
                    stage.config.config.labels.insert(k.clone(), v);
                }
            }
            Instruction::User(user) => stage.config.config.user = Some(sub(user, stage)?),
            Instruction::Expose(ports) => {
                for p in ports {
                    let p = sub(p, stage)?;
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    stage
                        .config
                        .config
                        .exposed_ports
                        .insert(p, serde_json::json!({}));
                }
            }
            Instruction::Volume(paths) => {
                for p in paths {
                    let p = sub(p, stage)?;
                    stage.config.config.volumes.insert(p, serde_json::json!({}));
                }
            }
            Instruction::StopSignal(s) => stage.config.config.stop_signal = Some(sub(s, stage)?),
            Instruction::Shell(argv) => stage.shell = argv.clone(),
            Instruction::Cmd(c) => run.cmd = Some(argv(c, &stage.shell)),
            Instruction::Entrypoint(c) => {
                run.entrypoint = Some(argv(c, &stage.shell));
                // Docker: ENTRYPOINT resets a CMD inherited from the base image.
                run.cmd = None;
            }
            Instruction::Healthcheck(check) => {
                stage.config.config.healthcheck = Some(healthcheck(check.as_ref()).map_err(&err)?);
            }
            Instruction::Maintainer(_) => {}
            Instruction::Onbuild(_) => return Err(err("ONBUILD is not supported yet".into())),
            Instruction::Workdir(dir) => {
                let dir = sub(dir, stage)?;
                let path = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{}/{dir}", stage.workdir().trim_end_matches('/'))
                };
                stage.config.config.working_dir = Some(path.clone());
                let rel = clean_relative(path.trim_start_matches('/')).unwrap_or_default();
                if !stage.rootfs.join(&rel).is_dir() {
                    let key = key_of(&[&stage.key, "WORKDIR", &path]);
                    return self.layer_step(stage, key, line, cache, |dir| {
                        fs::create_dir_all(dir.join(&rel)).map_err(|e| e.to_string())?;
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
            } => {
                let copy = CopySpec {
                    sources,
                    dest,
                    from: from.as_deref(),
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    add: false,
                };
                return self.copy_step(copy, line, stage, earlier, context, cache);
            }
            Instruction::Add {
                sources,
                dest,
                chown,
                chmod,
            } => {
                if let Some(url) = sources.iter().find(|s| s.contains("://")) {
                    return Err(err(format!(
                        "ADD {url}: adding from URLs is not supported yet"
                    )));
                }
                let copy = CopySpec {
                    sources,
                    dest,
                    from: None,
                    chown: chown.as_deref(),
                    chmod: chmod.as_deref(),
                    add: true,
                };
                return self.copy_step(copy, line, stage, earlier, context, cache);
            }
            Instruction::Run { command, .. } => {
                let args = argv(command, &stage.shell);
                let mut env = stage.config.config.env.clone().unwrap_or_default();
                // Build args are in RUN's environment, as in Docker, unless ENV set them.
                for (k, v) in &stage.args {
                    if !env.iter().any(|e| e.starts_with(&format!("{k}="))) {
                        env.push(format!("{k}={v}"));
                    }
                }
                let key = key_of(&[
                    &stage.key,
                    &line.text,
                    &env.join("\n"),
                    &stage.workdir(),
                    stage.config.config.user.as_deref().unwrap_or(""),
                    // A step that needs the network has another result without it.
                    self.network.name(),
                ]);
                let config = ContainerConfig {
                    id: format!("build-{}", &key[..12]),
                    dir: build_dir.join(format!("run-{}", line.number)),
                    lower: vec![stage.rootfs.clone()],
                    args,
                    env,
                    cwd: stage.workdir(),
                    user: stage.config.config.user.clone().unwrap_or_default(),
                    limits: Limits::default(),
                    log: build_dir.join(format!("run-{}.log", line.number)),
                    // On the network as a container is, unless the build asked for none.
                    network: match self.network {
                        ContainerNetwork::Pasta => Some(Vec::new()),
                        ContainerNetwork::None => None,
                    },
                };
                let layout = self.layout;
                return self.layer_step(stage, key, line, cache, |_| {
                    let _ = fs::create_dir_all(&config.dir);
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
                    if config.network.is_some() {
                        runtime::network::remove_mount_stubs(&config.upper(), &config.lower);
                    }
                    let mut bytes = Vec::new();
                    tar_overlay_upper(&config.upper(), &mut bytes).map_err(|e| e.to_string())?;
                    Ok(bytes)
                });
            }
            Instruction::From { .. } => {}
        }
        stage.key = key_of(&[&stage.key, &line.text]);
        history(stage, true);
        Ok(false)
    }

    /// COPY and ADD: resolve the sources (in the context, or in an earlier stage with
    /// `--from`), key the step on their content, and stage them as one layer.
    fn copy_step(
        &self,
        copy: CopySpec<'_>,
        line: &Line,
        stage: &mut Stage,
        earlier: &[Stage],
        context: &Context,
        cache: &mut CacheIndex,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let sub = |text: &str, stage: &Stage| {
            dockerfile::substitute(text, '\\', &stage.lookup()).map_err(&err)
        };
        let keyword = if copy.add { "ADD" } else { "COPY" };
        let dest = sub(copy.dest, stage)?;
        let chown = copy.chown.map(|c| sub(c, stage)).transpose()?;
        let owner = chown
            .as_deref()
            .map(|c| runtime::user::resolve(c, &stage.rootfs).map(|u| (u.uid, u.gid)))
            .transpose()
            .map_err(&err)?;
        let mode = copy
            .chmod
            .map(|m| {
                u32::from_str_radix(m, 8).map_err(|_| err(format!("--chmod={m} is not octal")))
            })
            .transpose()?;
        let (source_root, paths, content) = match copy.from {
            None => {
                let mut all = Vec::new();
                for s in copy.sources {
                    all.extend(context.resolve(&sub(s, stage)?).map_err(&err)?);
                }
                let digest = context.digest(&all);
                (context.root().to_path_buf(), all, digest)
            }
            Some(from) => {
                let from = sub(from, stage)?;
                let other = earlier
                    .iter()
                    .enumerate()
                    .find(|(i, s)| {
                        s.name.as_deref() == Some(&from.to_ascii_lowercase())
                            || from == i.to_string()
                    })
                    .map(|(_, s)| s)
                    .ok_or_else(|| {
                        err(format!(
                            "{keyword} --from={from}: no earlier stage has that name"
                        ))
                    })?;
                let mut all = Vec::new();
                for s in copy.sources {
                    let s = sub(s, stage)?;
                    let rel = clean_relative(s.trim_start_matches('/'))
                        .ok_or_else(|| err(format!("`{s}` climbs out of the stage")))?;
                    if fs::symlink_metadata(other.rootfs.join(&rel)).is_err() {
                        return Err(err(format!(
                            "{keyword} --from={from}: `{s}` does not exist in that stage"
                        )));
                    }
                    all.push(rel);
                }
                (other.rootfs.clone(), all, other.key.clone())
            }
        };
        let into_dir = paths.len() > 1
            || copy.sources.iter().any(|s| s.contains(['*', '?']))
            || dest.ends_with('/');
        let target = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", stage.workdir().trim_end_matches('/'))
        };
        let key = key_of(&[&stage.key, &line.text, &target, &content]);
        let rootfs = stage.rootfs.clone();
        self.layer_step(stage, key, line, cache, |dir| {
            let place = Placement {
                target: &target,
                into_dir,
                image_root: &rootfs,
                owner,
                mode,
                unpack_archives: copy.add,
            };
            stage_copy(&source_root, &paths, &place, dir)?;
            let mut bytes = Vec::new();
            tar_directory(dir, &mut bytes).map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    }

    /// A step that makes a layer: reuse the cached one for `key`, or call `make` with an empty
    /// directory to get the layer's tar bytes. The layer is applied to the stage's root.
    fn layer_step(
        &self,
        stage: &mut Stage,
        key: String,
        line: &Line,
        cache: &mut CacheIndex,
        make: impl FnOnce(&Path) -> Result<Vec<u8>, String>,
    ) -> Result<bool, BuildError> {
        let err = at(line.number);
        let hit = cache.layers.get(&key).cloned().filter(|(digest, _, _)| {
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
                let blob = fs::File::open(
                    self.store
                        .root()
                        .join("blobs/sha256")
                        .join(descriptor.digest.trim_start_matches("sha256:")),
                )
                .map_err(|e| err(e.to_string()))?;
                apply_layer(
                    maybe_gunzip(blob).map_err(|e| err(e.to_string()))?,
                    &stage.rootfs,
                )
                .map_err(|e| err(e.to_string()))?;
                (descriptor, diff_id, true)
            }
            None => {
                let staging = stage.rootfs.with_extension(format!("step{}", line.number));
                fs::create_dir_all(&staging).map_err(|e| err(e.to_string()))?;
                let bytes = make(&staging);
                let _ = fs::remove_dir_all(&staging);
                let bytes = bytes.map_err(&err)?;
                apply_layer(&bytes[..], &stage.rootfs).map_err(|e| err(e.to_string()))?;
                let (descriptor, diff_id) = self
                    .store
                    .put_layer(&bytes[..])
                    .map_err(|e| err(e.to_string()))?;
                cache.layers.insert(
                    key.clone(),
                    (descriptor.digest.clone(), diff_id.clone(), descriptor.size),
                );
                self.save_cache(cache);
                (descriptor, diff_id, false)
            }
        };
        stage.layers.push(descriptor);
        stage.config.rootfs.diff_ids.push(diff_id);
        stage.config.history.push(History {
            created: Some(now_rfc3339()),
            created_by: Some(line.text.clone()),
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

/// The arguments of a COPY or ADD.
struct CopySpec<'a> {
    sources: &'a [String],
    dest: &'a str,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    /// ADD: local tar archives are unpacked.
    add: bool,
}

/// Where and how copied files land in a layer.
#[derive(Clone, Copy)]
struct Placement<'a> {
    target: &'a str,
    into_dir: bool,
    image_root: &'a Path,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
    unpack_archives: bool,
}

/// A command in exec form, or wrapped in the stage's SHELL.
fn argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Put `paths` (relative to `source_root`) into `layer_dir` at `target`, as COPY/ADD do:
/// a directory's contents go into the target directory; with several sources, or a target
/// ending in `/`, or an existing directory there in the image, the target is a directory. ADD
/// unpacks local tar archives.
fn stage_copy(
    source_root: &Path,
    paths: &[PathBuf],
    place: &Placement<'_>,
    layer_dir: &Path,
) -> Result<(), String> {
    let Placement {
        target,
        into_dir,
        image_root,
        owner,
        mode,
        unpack_archives,
    } = *place;
    let target_rel = clean_relative(target.trim_start_matches('/')).unwrap_or_default();
    let target_is_dir = into_dir || image_root.join(&target_rel).is_dir();
    for rel in paths {
        let source = source_root.join(rel);
        let meta = fs::symlink_metadata(&source).map_err(|e| format!("{}: {e}", rel.display()))?;
        if unpack_archives && meta.is_file() && is_archive(&source) {
            let dest = layer_dir.join(&target_rel);
            fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            let file = fs::File::open(&source).map_err(|e| e.to_string())?;
            apply_layer(maybe_gunzip(file).map_err(|e| e.to_string())?, &dest)
                .map_err(|e| format!("{}: {e}", rel.display()))?;
            continue;
        }
        let dest = if meta.is_dir() {
            layer_dir.join(&target_rel)
        } else if target_is_dir {
            layer_dir
                .join(&target_rel)
                .join(rel.file_name().unwrap_or_default())
        } else {
            layer_dir.join(&target_rel)
        };
        if meta.is_dir() {
            let mut bytes = Vec::new();
            tar_directory(&source, &mut bytes).map_err(|e| e.to_string())?;
            fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            apply_layer(&bytes[..], &dest).map_err(|e| e.to_string())?;
        } else {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            if meta.file_type().is_symlink() {
                let link = fs::read_link(&source).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(link, &dest).map_err(|e| e.to_string())?;
            } else {
                fs::copy(&source, &dest).map_err(|e| format!("{}: {e}", rel.display()))?;
            }
        }
    }
    // Ownership and mode apply to everything the step wrote (not the parent directories of
    // the target that only exist to hold it), as Docker's --chown and --chmod do.
    if owner.is_some() || mode.is_some() {
        let top = layer_dir.join(&target_rel);
        let mut all = vec![top.clone()];
        let mut stack = vec![top];
        while let Some(dir) = stack.pop() {
            if let Ok(entries) = fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                    all.push(e.path());
                }
            }
        }
        for path in all {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                    .map_err(|e| e.to_string())?;
            }
            if let Some(mode) = mode
                && !fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Whether a file is a tar archive (plain or gzip), which ADD unpacks.
fn is_archive(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let Ok(mut reader) = maybe_gunzip(file) else {
        return false;
    };
    let mut header = [0u8; 512];
    let mut got = 0;
    while got < header.len() {
        match std::io::Read::read(&mut reader, &mut header[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &header[257..262] == b"ustar"
}
