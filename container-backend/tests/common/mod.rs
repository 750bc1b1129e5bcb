//! The build tests' fixture: a store with Debian's static busybox imported as `busybox`, and
//! the builder over it.
#![allow(clippy::unwrap_used, dead_code)] // a panic in a test is a failed assertion

use berth_api::network::ContainerNetwork;
use std::fs;
use std::path::{Path, PathBuf};

use container_backend::build::builder::{BuildError, BuildOptions, Builder, Step};
use container_backend::image::layer::tar_directory;
use container_backend::image::{Image, ImageStore};
use container_backend::runtime::{self, ContainerConfig, Layout, Limits};

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "pwd", "ls", "mkdir", "true", "false", "touch",
];

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: ImageStore,
    pub layout: Layout,
}

/// A store with `busybox` imported, and a `rootfs/` tree to COPY from scratch.
pub fn fixture() -> Option<Fixture> {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: builds need root and /bin/busybox");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("busybox-rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let tarball = dir.path().join("busybox.tar");
    tar_directory(&rootfs, fs::File::create(&tarball).unwrap()).unwrap();
    store.import(&tarball, "busybox").unwrap();
    Some(Fixture {
        store,
        layout: Layout::detect().unwrap(),
        dir,
    })
}

impl Fixture {
    pub fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.dir.path().join(name);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        for (path, content) in files {
            let p = ctx.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        ctx
    }

    pub fn build(&self, ctx: &Path, tag: &str) -> (Result<Image, BuildError>, Vec<Step>) {
        self.build_with(ctx, tag, None, &[])
    }

    /// A build with a Dockerfile of another name and build args.
    pub fn build_with(
        &self,
        ctx: &Path,
        tag: &str,
        dockerfile: Option<&Path>,
        build_args: &[(&str, &str)],
    ) -> (Result<Image, BuildError>, Vec<Step>) {
        self.build_options(BuildOptions {
            context: ctx.to_owned(),
            dockerfile: dockerfile.map(Path::to_path_buf),
            tag: tag.into(),
            build_args: build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..BuildOptions::default()
        })
    }

    /// A build as `options` describe it.
    pub fn build_options(&self, options: BuildOptions) -> (Result<Image, BuildError>, Vec<Step>) {
        let work = self.dir.path().join("build-work");
        fs::create_dir_all(&work).unwrap();
        let builder = Builder {
            store: &self.store,
            layout: &self.layout,
            work: &work,
            // The Dockerfile semantics tested here need no network (tests/tests/network.rs
            // builds on it).
            network: ContainerNetwork::None,
            pull: None,
        };
        let mut steps = Vec::new();
        let result = builder.build(&options, &mut |s| steps.push(s));
        (result, steps)
    }

    /// Run an image as `berthctl run` would (entrypoint + cmd, or the override) and return
    /// its output.
    pub fn run(&self, image: &Image, command: &[&str]) -> String {
        let n = fs::read_dir(self.dir.path()).unwrap().count();
        let root = self.dir.path().join(format!("run-{n}"));
        let lower = root.join("lower");
        self.store.unpack(image, &lower).unwrap();
        let c = &image.config.config;
        let mut args = c.entrypoint.clone().unwrap_or_default();
        args.extend(if command.is_empty() {
            c.cmd.clone().unwrap_or_default()
        } else {
            command.iter().map(|s| s.to_string()).collect()
        });
        let config = ContainerConfig {
            id: format!("bt{}-{n}", std::process::id()),
            hostname: None,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            terminal: false,
            stdin: false,
            dir: root.join("c"),
            lower: vec![lower],
            args,
            env: c.env.clone().unwrap_or_default(),
            cwd: c.working_dir.clone().unwrap_or_default(),
            user: c.user.clone().unwrap_or_default(),
            limits: Limits::default(),
            log: root.join("log"),
            network: None,
            hosts: Vec::new(),
        };
        fs::create_dir_all(&config.dir).unwrap();
        let exit = runtime::start(&config, &self.layout).unwrap().wait();
        let out = fs::read_to_string(&config.log).unwrap();
        assert_eq!(exit.code, 0, "{out}");
        out
    }
}

pub fn tar_then_copy(from: &Path, to: &Path) {
    let mut bytes = Vec::new();
    tar_directory(from, &mut bytes).unwrap();
    fs::create_dir_all(to).unwrap();
    container_backend::image::layer::apply_layer(&bytes[..], to).unwrap();
}
