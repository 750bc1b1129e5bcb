//! Containers and images as the API describes them. The engine behind these requests arrives
//! with the container backend; the shapes are fixed here so clients can be written against them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What `build` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// What `run` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Stopped { exit_code: i32, oom_killed: bool },
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
