//! Dockerfile conformance: one case per rule of the Dockerfile reference and of BuildKit's
//! behaviour (issue 17), each asserting the built filesystem (content, owner, mode, symlink
//! target), the image config, or the exact error line. Where buildah on this machine builds the
//! same case the same way, Berth's result is compared with its result too (`-o type=local`
//! export, `buildah inspect`): a real builder the suite cannot drift from. Where buildah 1.28
//! (Debian 12) differs from BuildKit, the case says so and asserts BuildKit's behaviour.
//!
//! Needs root (builds write files of other owners) and buildah (scripts/test installs it).
#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, fixture};
use container_backend::build::builder::BuildOptions;
use container_backend::image::Image;

/// Every path below `under` in `root`: `kind mode uid:gid` and the content or link target.
fn listing(root: &Path, under: &str) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let full = root.join(rel);
        let Ok(meta) = fs::symlink_metadata(&full) else {
            return;
        };
        let owner = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
        let entry = if meta.file_type().is_symlink() {
            format!(
                "link {}:{} -> {}",
                meta.uid(),
                meta.gid(),
                fs::read_link(&full).unwrap().display()
            )
        } else if meta.is_dir() {
            format!("dir {owner}")
        } else {
            format!(
                "file {owner} {:?}",
                String::from_utf8_lossy(&fs::read(&full).unwrap())
            )
        };
        out.insert(rel.display().to_string(), entry);
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&full)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for name in names {
                walk(root, &rel.join(name), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(under), &mut out);
    out
}

/// buildah with its state in the fixture's directory, `busybox` imported from the same tree.
struct Buildah {
    dir: PathBuf,
}

impl Buildah {
    fn new(f: &Fixture) -> Buildah {
        assert!(
            Command::new("buildah")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "the conformance suite compares with buildah: apt install buildah runc (scripts/test does)"
        );
        let dir = f.dir.path().join("buildah");
        fs::create_dir_all(dir.join("tmp")).unwrap();
        // runc with plain cgroupfs: this host's hybrid cgroups are not crun's or systemd's.
        fs::write(
            dir.join("containers.conf"),
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )
        .unwrap();
        let b = Buildah { dir };
        let ctx = f.dir.path().join("buildah-busybox");
        fs::create_dir_all(&ctx).unwrap();
        common::tar_then_copy(&f.dir.path().join("busybox-rootfs"), &ctx.join("rootfs"));
        fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").unwrap();
        b.build(&ctx, None, &[], "busybox").unwrap();
        b
    }

    fn command(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs"])
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("TMPDIR", self.dir.join("tmp"));
        c
    }

    /// Builds and exports the final filesystem; the directory it is in, or buildah's error.
    fn build(
        &self,
        ctx: &Path,
        dockerfile: Option<&Path>,
        args: &[(&str, &str)],
        tag: &str,
    ) -> Result<PathBuf, String> {
        let out = self.dir.join(format!("out-{tag}"));
        let mut c = self.command();
        c.args([
            "bud",
            "--pull=never",
            "--network=none",
            "--layers=false",
            "-t",
            tag,
        ])
        .arg(format!("--output=type=local,dest={}", out.display()));
        if let Some(d) = dockerfile {
            c.arg("-f").arg(d);
        }
        for (k, v) in args {
            c.arg(format!("--build-arg={k}={v}"));
        }
        let o = c.arg(ctx).output().unwrap();
        if o.status.success() {
            Ok(out)
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// The built image's OCI config (`config` of the image JSON).
    fn config(&self, tag: &str) -> serde_json::Value {
        let o = self
            .command()
            .args(["inspect", "--type", "image", tag])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        all["OCIv1"]["config"].clone()
    }
}

struct Case<'a> {
    f: &'a Fixture,
    ctx: PathBuf,
    name: &'a str,
}

impl<'a> Case<'a> {
    fn new(f: &'a Fixture, name: &'a str, dockerfile: &str, files: &[(&str, &str)]) -> Case<'a> {
        Case {
            ctx: f.context(name, dockerfile, files),
            f,
            name,
        }
    }

    /// Berth's build: the image and its unpacked root.
    fn berth(&self, dockerfile: Option<&Path>, args: &[(&str, &str)]) -> (Image, PathBuf) {
        let (image, _) = self.f.build_with(&self.ctx, self.name, dockerfile, args);
        let image = image.unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let root = self.f.dir.path().join(format!("berth-out-{}", self.name));
        self.f.store.unpack(&image, &root).unwrap();
        (image, root)
    }

    /// Berth's error for a build that must fail.
    fn berth_error(&self) -> String {
        self.f
            .build(&self.ctx, self.name)
            .0
            .err()
            .unwrap_or_else(|| panic!("{}: built", self.name))
            .to_string()
    }
}

fn env_of(image: &Image) -> Vec<String> {
    image.config.config.env.clone().unwrap_or_default()
}

#[test]
fn dockerignore_applies_to_every_copy_as_buildah_applies_it() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "ignore",
        "FROM scratch\nCOPY . /app/\nCOPY sub /sub/\nCOPY vendor /vendor/\n",
        &[
            (
                ".dockerignore",
                "# secrets never reach an image\n.env\n**/*.log\n!keep.log\nnode_modules\n/build\nvendor\n!vendor/keep\n",
            ),
            (".env", "SECRET=1"),
            ("a.txt", "a"),
            ("x.log", "x"),
            ("keep.log", "k"),
            ("sub/y.log", "y"),
            ("sub/z.txt", "z"),
            ("node_modules/m/i.js", "i"),
            ("build/out", "o"),
            ("src/build/kept", "kept"),
            ("vendor/v", "v"),
            ("vendor/keep/k", "k"),
        ],
    );
    let (_, root) = case.berth(None, &[]);
    let app = listing(&root, "app");
    for present in [
        "app/Dockerfile",
        "app/.dockerignore",
        "app/a.txt",
        "app/keep.log",
        "app/sub/z.txt",
        "app/src/build/kept",
        "app/vendor/keep/k",
    ] {
        assert!(app.contains_key(present), "{present} missing: {app:#?}");
    }
    for absent in [
        "app/.env",
        "app/x.log",
        "app/sub/y.log",
        "app/node_modules",
        "app/build",
        "app/vendor/v",
    ] {
        assert!(!app.contains_key(absent), "{absent} copied: {app:#?}");
    }
    let theirs = b.build(&case.ctx, None, &[], "ignore").unwrap();
    for under in ["app", "sub", "vendor"] {
        assert_eq!(listing(&root, under), listing(&theirs, under), "{under}");
    }

    let named = Case::new(
        &f,
        "ignore-named",
        "FROM scratch\nCOPY .env /\n",
        &[(".dockerignore", ".env\n"), (".env", "s")],
    );
    let e = named.berth_error();
    assert!(
        e.starts_with("Dockerfile line 2: `.env` is not in the build context"),
        "{e}"
    );
    assert!(
        b.build(&named.ctx, None, &[], "ignore-named").is_err(),
        "buildah refuses it too"
    );
}

#[test]
fn the_dockerfile_and_ignore_file_are_copied_unless_ignored_and_a_dockerfile_s_own_ignore_file_wins()
 {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "ignore-self",
        "FROM scratch\nCOPY . /app/\n",
        &[
            (".dockerignore", "Dockerfile\n.dockerignore\n"),
            ("a.txt", "a"),
        ],
    );
    let (_, root) = case.berth(None, &[]);
    let theirs = b.build(&case.ctx, None, &[], "ignore-self").unwrap();
    assert_eq!(listing(&root, "app"), listing(&theirs, "app"));
    assert_eq!(listing(&root, "app").len(), 2, "only /app and a.txt");

    // BuildKit reads app.Dockerfile.dockerignore instead of .dockerignore (buildah 1.28 does not).
    let own = Case::new(
        &f,
        "ignore-own",
        "FROM scratch\n",
        &[
            ("app.Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("app.Dockerfile.dockerignore", "a.txt\n"),
            (".dockerignore", "b.txt\n"),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    let (_, root) = own.berth(Some(&own.ctx.join("app.Dockerfile")), &[]);
    assert!(!root.join("app/a.txt").exists());
    assert!(root.join("app/b.txt").exists());
}

#[test]
fn every_substitution_form_expands_as_buildkit_expands_it() {
    let Some(f) = fixture() else { return };
    let case = Case::new(
        &f,
        "forms",
        r#"ARG FILE=archive.tar.gz
FROM scratch
ARG FILE
ARG EMPTY=
ARG UNSET
ENV a=${FILE#*.} b=${FILE##*.} c=${FILE%.*} d=${FILE%%.*} \
    e=${UNSET:-dflt} f=${EMPTY:-dflt} g=${EMPTY-dflt} h=${FILE:+alt} i=${EMPTY:+alt} j=${EMPTY+alt} \
    k=${FILE/a/A} l=${FILE//a/A} m=\$FILE n='$FILE' o="$FILE x" p=${FILE:?} q=1 r=$q
ENV s=$q
"#,
        &[],
    );
    let (image, _) = case.berth(None, &[]);
    let env = env_of(&image);
    let expected = [
        "a=tar.gz",
        "b=gz",
        "c=archive.tar",
        "d=archive",
        "e=dflt",
        "f=dflt",
        "g=",
        "h=alt",
        "i=",
        "j=alt",
        "k=Archive.tar.gz",
        "l=Archive.tAr.gz",
        "m=$FILE",
        "n=$FILE",
        "o=archive.tar.gz x",
        "p=archive.tar.gz",
        "q=1",
        // One ENV line sees the values from before it.
        "r=",
        "s=1",
    ];
    for e in expected {
        assert!(env.contains(&e.to_string()), "{e} not in {env:?}");
    }
    // A FROM scratch image gets the default PATH.
    assert!(env.contains(
        &"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
    ));

    // The forms buildah 1.28 knows too (it refuses `-`, `+`, `?` without a colon and the
    // pattern forms, which BuildKit has): the same environment, PATH included.
    let b = Buildah::new(&f);
    let common = Case::new(
        &f,
        "forms-common",
        r#"ARG FILE=archive.tar.gz
FROM scratch
ARG FILE
ARG EMPTY=
ARG UNSET
ENV e=${UNSET:-dflt} f=${EMPTY:-dflt} h=${FILE:+alt} i=${EMPTY:+alt} \
    m=\$FILE n='$FILE' o="$FILE x" q=1 r=$q
ENV s=$q
"#,
        &[],
    );
    let (image, _) = common.berth(None, &[]);
    b.build(&common.ctx, None, &[], "forms-common").unwrap();
    assert_eq!(
        serde_json::json!(env_of(&image)),
        b.config("forms-common")["Env"]
    );

    for (name, dockerfile, message) in [
        (
            "form-substring",
            "FROM scratch\nENV a=1\nENV x=${a:0:1}\n",
            "Dockerfile line 3: `${a:0:1}`: the modifier `:0` is not supported",
        ),
        (
            "form-required",
            "FROM scratch\nENV x=\"${NOPE:?needs a value}\"\n",
            "Dockerfile line 2: `\"${NOPE:?needs a value}\"`: NOPE: needs a value",
        ),
        (
            "form-unclosed",
            "FROM scratch\nLABEL x=${a\n",
            "Dockerfile line 2: `${a`: `${` without its `}`",
        ),
    ] {
        let e = Case::new(&f, name, dockerfile, &[]).berth_error();
        assert!(e.starts_with(message), "{name}: {e}");
    }
}

#[test]
fn variables_expand_in_copy_workdir_user_expose_label_stopsignal_volume_and_from() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "where",
        r#"ARG BASE=busybox
FROM ${BASE}
ARG DIR=/opt/app OWNER=app MODE=0640 PORTS="80 443/tcp" SIG=SIGINT
WORKDIR $DIR
COPY --chown=${OWNER}:${OWNER} --chmod=$MODE a.txt ./
EXPOSE $PORTS 53/udp
LABEL "com.example.dir"=$DIR other="${OWNER} and ${SIG}"
STOPSIGNAL $SIG
VOLUME $DIR/data
USER ${OWNER}
"#,
        &[("a.txt", "a")],
    );
    let (image, root) = case.berth(None, &[]);
    assert_eq!(
        listing(&root, "opt/app/a.txt")["opt/app/a.txt"],
        "file 640 1000:1000 \"a\""
    );
    let c = &image.config.config;
    assert_eq!(c.working_dir.as_deref(), Some("/opt/app"));
    assert_eq!(c.user.as_deref(), Some("app"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    let ports: Vec<&String> = c.exposed_ports.keys().collect();
    assert_eq!(ports, ["443/tcp", "53/udp", "80/tcp"]);
    assert_eq!(c.labels["com.example.dir"], "/opt/app");
    assert_eq!(c.labels["other"], "app and SIGINT");
    assert!(c.volumes.contains_key("/opt/app/data"));

    let theirs = b.build(&case.ctx, None, &[], "where").unwrap();
    assert_eq!(
        listing(&root, "opt/app/a.txt"),
        listing(&theirs, "opt/app/a.txt")
    );
    let config = b.config("where");
    let mut their_ports: Vec<&String> =
        config["ExposedPorts"].as_object().unwrap().keys().collect();
    their_ports.sort();
    assert_eq!(ports, their_ports);
    assert_eq!(config["Labels"]["com.example.dir"], "/opt/app");
    assert_eq!(config["Labels"]["other"], "app and SIGINT");
    assert_eq!(config["WorkingDir"], "/opt/app");
    assert_eq!(config["User"], "app");
    assert_eq!(config["StopSignal"], "SIGINT");

    let bad = Case::new(
        &f,
        "chmod-range",
        "FROM busybox\nARG M=10000\nCOPY --chmod=$M a.txt /\n",
        &[("a.txt", "a")],
    );
    let e = bad.berth_error();
    assert!(
        e.starts_with("Dockerfile line 3: --chmod=10000: not a mode"),
        "{e}"
    );
}

#[test]
fn args_are_scoped_defaulted_and_overridden_and_proxies_stay_out_of_the_image() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "args",
        r#"ARG GLOBAL=from-global
ARG BASE=busybox
FROM $BASE
ARG GLOBAL
ARG A=1
ARG B=${A}2 UNSET C=${B}3
ARG OVER=default
RUN env > /env.txt
"#,
        &[],
    );
    let args = [
        ("OVER", "given"),
        ("http_proxy", "http://proxy.invalid:3128"),
    ];
    let (image, root) = case.berth(None, &args);
    let ours = fs::read_to_string(root.join("env.txt")).unwrap();
    let pick = |text: &str| {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| {
                ["GLOBAL=", "A=", "B=", "C=", "UNSET", "OVER=", "http_proxy="]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        pick(&ours),
        [
            "A=1",
            "B=12",
            "C=3",
            "GLOBAL=from-global",
            "OVER=given",
            "http_proxy=http://proxy.invalid:3128"
        ],
        "an unset ARG is not in RUN's environment; one ARG line sees the values from before it"
    );
    let config = serde_json::to_string(&image.config).unwrap();
    assert!(
        !config.contains("proxy.invalid"),
        "a proxy arg stays out of the image: {config}"
    );
    assert!(
        !env_of(&image)
            .iter()
            .any(|e| e.starts_with("GLOBAL=") || e.starts_with("OVER=")),
        "ARGs are not ENV"
    );
    assert!(
        config.contains("OVER=given"),
        "the history names the args RUN saw: {config}"
    );

    let theirs = b.build(&case.ctx, None, &args, "args").unwrap();
    assert_eq!(
        pick(&ours),
        pick(&fs::read_to_string(theirs.join("env.txt")).unwrap())
    );
}

#[test]
fn copy_places_files_as_buildkit_does() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "copy",
        r#"FROM busybox
RUN mkdir -p /real && ln -s /real /linked && mkdir -m 700 /existing /owned && chown 1000:1000 /existing
COPY f*.txt /single
COPY nomatch* f1.txt /multi/
COPY link /followed
COPY f1.txt /linked/
COPY dir /existing/
COPY dir /new/
COPY --chown=1000:1000 dir /owned/
"#,
        &[("f1.txt", "one"), ("data/one", "data"), ("dir/sub/x", "x")],
    );
    std::os::unix::fs::symlink("data/one", case.ctx.join("link")).unwrap();
    std::os::unix::fs::symlink("../f1.txt", case.ctx.join("dir/up")).unwrap();
    let (_, root) = case.berth(None, &[]);
    let all = listing(&root, "");
    assert_eq!(
        all["single"], "file 644 0:0 \"one\"",
        "a wildcard onto a file destination"
    );
    assert_eq!(
        all["multi/f1.txt"], "file 644 0:0 \"one\"",
        "a wildcard matching nothing beside a source that matches"
    );
    assert_eq!(
        all["followed"], "file 644 0:0 \"data\"",
        "a named symlink is followed"
    );
    assert_eq!(
        all["real/f1.txt"], "file 644 0:0 \"one\"",
        "a destination through a symlink"
    );
    assert!(
        all["linked"].starts_with("link"),
        "the image's symlink stays one"
    );
    assert_eq!(
        all["existing"], "dir 700 1000:1000",
        "an existing directory is untouched"
    );
    assert_eq!(all["existing/sub/x"], "file 644 0:0 \"x\"");
    assert_eq!(
        all["existing/up"], "link 0:0 -> ../f1.txt",
        "a symlink inside a directory stays one"
    );
    let theirs = b.build(&case.ctx, None, &[], "copy").unwrap();
    assert_eq!(
        all["owned"], "dir 700 0:0",
        "an existing destination stays as it is under --chown too"
    );
    assert_eq!(all["owned/sub/x"], "file 644 1000:1000 \"x\"");
    for under in [
        "single", "multi", "followed", "real", "linked", "existing", "new", "owned",
    ] {
        assert_eq!(listing(&root, under), listing(&theirs, under), "{under}");
    }

    let from = Case::new(
        &f,
        "copy-from",
        "FROM busybox AS one\nCOPY --chown=1000:1000 f1.txt /owned/f\nFROM scratch\nCOPY --from=one /owned /kept/\nCOPY --from=busybox /etc/passwd /image/\n",
        &[("f1.txt", "one")],
    );
    let (_, root) = from.berth(None, &[]);
    assert_eq!(
        listing(&root, "kept/f")["kept/f"],
        "file 644 1000:1000 \"one\"",
        "--from keeps owners"
    );
    assert!(
        root.join("image/passwd").is_file(),
        "--from an image in the store"
    );
    let theirs = b.build(&from.ctx, None, &[], "copy-from").unwrap();
    for under in ["kept", "image"] {
        assert_eq!(listing(&root, under), listing(&theirs, under), "{under}");
    }

    let several = Case::new(
        &f,
        "copy-several",
        "FROM busybox\nCOPY a b /nodir\n",
        &[("a", "a"), ("b", "b")],
    );
    assert!(
        several
            .berth_error()
            .starts_with("Dockerfile line 2: COPY with more than one source needs a directory")
    );
    let nothing = Case::new(&f, "copy-nothing", "FROM busybox\nCOPY nomatch* /x/\n", &[]);
    assert!(
        nothing
            .berth_error()
            .starts_with("Dockerfile line 2: COPY nomatch*: no source file matches")
    );
}

#[test]
fn workdir_is_made_by_the_user_and_user_with_a_group_has_only_that_group() {
    let Some(f) = fixture() else { return };
    let case = Case::new(
        &f,
        "user",
        r#"FROM busybox
RUN echo 'wheel:x:10:app' >> /etc/group
USER app
WORKDIR /home/app/work
RUN id -G > all-groups
USER app:app
RUN id -G > one-group
"#,
        &[],
    );
    let (_, root) = case.berth(None, &[]);
    let all = listing(&root, "home");
    assert_eq!(
        all["home/app"], "dir 755 1000:1000",
        "WORKDIR makes what is missing as USER"
    );
    assert_eq!(all["home/app/work"], "dir 755 1000:1000");
    assert_eq!(
        all["home/app/work/all-groups"],
        "file 644 1000:1000 \"1000 10\\n\""
    );
    assert_eq!(
        all["home/app/work/one-group"],
        "file 644 1000:1000 \"1000\\n\""
    );
}

/// `COPY --parents`, on BuildKit's own cases (frontend/dockerfile/dockerfile_parents_test.go):
/// each source keeps its directories below the pivot (`/./`), or from the root without one,
/// with `*` and `**`; the directories on the way are made as the source has them; a pattern
/// that matches nothing copies nothing, a missing path is an error.
#[test]
fn copy_parents_keeps_the_directories_below_the_pivot_as_buildkit_does() {
    let Some(f) = fixture() else { return };
    let dockerfile = r#"FROM busybox AS base
WORKDIR /test
RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz

FROM scratch
COPY --parents foo1/foo2/bar /
WORKDIR /test
COPY --parents foo1/foo2/ba* .
COPY --from=base --parents /test/a/b/./c/d /middle/
COPY --from=base --parents /test/a/b/c/d/. /end/
COPY --from=base --parents ./test/a/b/c/d /start/
COPY --from=base --parents /test/a/./b/./c /double/
COPY --from=base --parents /test/a/./*/c /wildcard/
COPY --from=base --parents /test/a/b*/./c/**/e /doublewildcard/
COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /doubleinputs/
COPY --from=base --parents /test/a/b2*/c /nothing/
"#;
    let ctx = f.context(
        "parents",
        dockerfile,
        &[("foo1/foo2/bar", "testing"), ("foo1/foo2/baz", "testing2")],
    );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(ctx.join("foo1"), fs::Permissions::from_mode(0o700)).unwrap();
    let (image, _) = f.build(&ctx, "parents");
    let root = f.dir.path().join("parents-out");
    f.store.unpack(&image.unwrap(), &root).unwrap();
    let read =
        |path: &str| fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(read("foo1/foo2/bar"), "testing");
    assert_eq!(read("test/foo1/foo2/bar"), "testing");
    assert_eq!(read("test/foo1/foo2/baz"), "testing2");
    assert_eq!(
        listing(&root, "foo1")["foo1"],
        "dir 700 0:0",
        "a directory on the way is made as the context has it"
    );
    for (present, absent) in [
        (
            &["middle/c/d/e", "middle/c/d/foo"][..],
            &["middle/a", "middle/e"][..],
        ),
        (&["end/test/a/b/c/d/e", "end/test/a/b/c/d/foo"], &[]),
        (&["start/test/a/b/c/d/e", "start/test/a/b/c/d/foo"], &[]),
        (&["double/b/c/d/e", "double/b/c/d/foo"], &[]),
        (&["wildcard/b/c/d/e", "wildcard/b2/c/d/e/bar"], &[]),
        (
            &[
                "doublewildcard/c/d/e",
                "doublewildcard/c/d/e/bay",
                "doublewildcard/c/d/e/bar",
            ],
            &[],
        ),
        (
            &[
                "doubleinputs/d/e/baz",
                "doubleinputs/d/e2/baz",
                "doubleinputs/c/d/e/bar",
            ],
            &["doubleinputs/d/e/bay"],
        ),
        (&["nothing"], &["nothing/a"]),
    ] {
        for path in present {
            assert!(root.join(path).exists(), "{path} is missing");
        }
        for path in absent {
            assert!(!root.join(path).exists(), "{path} is there");
        }
    }

    let ctx = f.context(
        "parents-missing",
        "FROM busybox AS base\nFROM scratch\nCOPY --from=base --parents /test/nonexistent-file /out/\n",
        &[],
    );
    let (error, _) = f.build(&ctx, "parents-missing");
    let error = error.unwrap_err().to_string();
    assert!(
        error.contains("line 3") && error.contains("nonexistent-file"),
        "{error}"
    );
}

/// `RUN --mount=type=cache,from=STAGE,source=DIR`: the cache starts as a copy of the stage's
/// directory, keeps what steps write to it between builds, never reaches a layer, and another
/// base (the stage changed) is another cache, as BuildKit keys its cache directories; a file
/// is refused as a cache's base.
#[test]
fn a_cache_mount_is_seeded_from_a_stage_and_is_that_bases_own() {
    let Some(f) = fixture() else { return };
    let dockerfile = |seed: &str| {
        format!(
            r#"FROM busybox AS deps
RUN mkdir /out && echo {seed} > /out/lib.txt
FROM busybox
RUN --mount=type=cache,target=/deps,from=deps,source=/out,id=deps sh -c 'cat /deps/lib.txt > /got; echo again >> /deps/lib.txt'
"#
        )
    };
    let build = |name: &str, seed: &str| {
        let ctx = f.context(name, &dockerfile(seed), &[]);
        let (image, _) = f.build_options(BuildOptions {
            context: ctx,
            tag: format!("{name}:latest"),
            no_cache: true,
            ..BuildOptions::default()
        });
        let root = f.dir.path().join(format!("{name}-out"));
        f.store.unpack(&image.unwrap(), &root).unwrap();
        root
    };
    let root = build("seeded", "seeded");
    assert_eq!(fs::read_to_string(root.join("got")).unwrap(), "seeded\n");
    assert!(
        !root.join("deps").exists(),
        "the cache's mount point is in the image"
    );
    // The same base again: the cache kept what the first build added.
    let root = build("seeded-again", "seeded");
    assert_eq!(
        fs::read_to_string(root.join("got")).unwrap(),
        "seeded\nagain\n"
    );
    // Another base: a cache of its own, filled from it.
    let root = build("reseeded", "reseeded");
    assert_eq!(fs::read_to_string(root.join("got")).unwrap(), "reseeded\n");

    let ctx = f.context(
        "seeded-from-a-file",
        "FROM busybox AS deps\nRUN echo x > /file\nFROM busybox\nRUN --mount=type=cache,target=/c,from=deps,source=/file true\n",
        &[],
    );
    let (error, _) = f.build(&ctx, "seeded-from-a-file");
    let error = error.unwrap_err().to_string();
    assert!(
        error.contains("line 4") && error.contains("`/file` is not a directory"),
        "{error}"
    );
}

#[test]
fn run_mounts_keep_caches_and_secrets_out_of_layers_and_target_no_cache_choose_what_runs() {
    let Some(f) = fixture() else { return };
    let secret = f.dir.path().join("token.txt");
    fs::write(&secret, "s3cret\n").unwrap();
    let dockerfile = r#"FROM busybox AS base
RUN --mount=type=cache,target=/cache,id=counter sh -c 'n=$(cat /cache/n 2>/dev/null || echo 0); echo $((n + 1)) > /cache/n; cp /cache/n /seen'
RUN --mount=type=secret,id=token grep -q s3cret /run/secrets/token && echo used > /secret-used
FROM base AS other
RUN echo other > /other
FROM base
RUN echo final > /final
"#;
    let ctx = f.context("mounts", dockerfile, &[]);
    let options = |target: Option<&str>, no_cache: bool| BuildOptions {
        context: ctx.clone(),
        tag: format!("mounts-{}-{no_cache}", target.unwrap_or("all")),
        target: target.map(str::to_owned),
        no_cache,
        secrets: vec![("token".into(), secret.clone())],
        ..BuildOptions::default()
    };
    let root_of = |image: &Image, name: &str| {
        let root = f.dir.path().join(format!("mounts-out-{name}"));
        f.store.unpack(image, &root).unwrap();
        root
    };

    // The cache's file and the secret are seen by the steps and kept out of the layers, their
    // mount points with them (BuildKit removes its mount stubs).
    let (image, _) = f.build_options(options(None, false));
    let root = root_of(&image.unwrap(), "first");
    assert_eq!(fs::read_to_string(root.join("seen")).unwrap(), "1\n");
    assert_eq!(
        fs::read_to_string(root.join("secret-used")).unwrap(),
        "used\n"
    );
    assert_eq!(fs::read_to_string(root.join("final")).unwrap(), "final\n");
    for absent in ["cache", "run/secrets", "other"] {
        assert!(!root.join(absent).exists(), "{absent} is in the image");
    }

    // Built again: every step from the cache. With --no-cache every step runs again, and the
    // cache mount still holds what the first build left.
    let (_, steps) = f.build_options(options(None, false));
    assert!(
        steps
            .iter()
            .filter(|s| s.text.starts_with("RUN"))
            .all(|s| s.cached)
    );
    let (image, steps) = f.build_options(options(None, true));
    assert!(steps.iter().all(|s| !s.cached), "--no-cache used the cache");
    let root = root_of(&image.unwrap(), "again");
    assert_eq!(fs::read_to_string(root.join("seen")).unwrap(), "2\n");

    // --target: the named stage is the image; later stages do not run.
    let (image, steps) = f.build_options(options(Some("other"), false));
    let root = root_of(&image.unwrap(), "other");
    assert_eq!(fs::read_to_string(root.join("other")).unwrap(), "other\n");
    assert!(!root.join("final").exists());
    assert_eq!(steps.len(), 5, "{steps:?}");
    let (error, _) = f.build_options(options(Some("nope"), false));
    assert!(
        error.unwrap_err().to_string().contains("no stage named"),
        "an unknown target"
    );

    // A required secret the build was not given, and a mount type not supported, say so.
    let ctx = f.context(
        "mount-errors",
        "FROM busybox\nRUN --mount=type=secret,id=npmrc,required=true true\n",
        &[],
    );
    let (error, _) = f.build_with(&ctx, "mount-errors", None, &[]);
    let error = error.unwrap_err().to_string();
    assert!(
        error.starts_with("Dockerfile line 2:") && error.contains("--secret id=npmrc"),
        "{error}"
    );
    let ctx = f.context(
        "mount-ssh",
        "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
        &[],
    );
    let (error, _) = f.build_with(&ctx, "mount-ssh", None, &[]);
    let error = error.unwrap_err().to_string();
    assert!(
        error.starts_with("Dockerfile line 2:") && error.contains("--ssh default"),
        "{error}"
    );
}

#[test]
fn a_tmpfs_mount_is_an_empty_memory_filesystem_of_its_size_and_gone_after_the_step() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let case = Case::new(
        &f,
        "tmpfs",
        r#"FROM busybox
WORKDIR /work
RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c 'grep " /scratch " /proc/mounts | cut -d" " -f3 > /scratch-fs; ls -A /scratch > /scratch-before; echo x > /scratch/file; if dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null; then echo fits; else echo full; fi > /scratch-size'
RUN --mount=type=tmpfs,target=tmp sh -c 'echo y > tmp/y && cat tmp/y > /relative'
RUN if [ -e /scratch ]; then echo left; else echo gone; fi > /after
"#,
        &[],
    );
    let (_, root) = case.berth(None, &[]);
    let read = |name: &str| fs::read_to_string(root.join(name)).unwrap();
    assert_eq!(read("scratch-fs"), "tmpfs\n");
    assert_eq!(read("scratch-before"), "", "empty at the start");
    assert_eq!(read("scratch-size"), "full\n", "2 MiB in a 1 MiB tmpfs");
    assert_eq!(read("relative"), "y\n");
    assert_eq!(
        read("after"),
        "gone\n",
        "the mount point is not in the layer"
    );
    assert!(!root.join("work/tmp").exists());
    // buildah 1.28 wants an absolute target and names the size `tmpfs-size` (podman's word
    // for BuildKit's `size`): its Dockerfile, outside the context, says so.
    let theirs_dockerfile = f.dir.path().join("tmpfs-buildah.Dockerfile");
    let ours = fs::read_to_string(case.ctx.join("Dockerfile")).unwrap();
    fs::write(
        &theirs_dockerfile,
        ours.replace("target=tmp ", "target=/work/tmp ")
            .replace(",size=1m", ",tmpfs-size=1m"),
    )
    .unwrap();
    let theirs = b
        .build(&case.ctx, Some(&theirs_dockerfile), &[], "tmpfs")
        .unwrap();
    for under in ["scratch-fs", "scratch-before", "scratch-size", "after"] {
        assert_eq!(listing(&root, under), listing(&theirs, under), "{under}");
    }
}

#[test]
fn bind_mounts_show_the_context_a_stage_or_an_image_to_a_step_as_buildah_does() {
    let Some(f) = fixture() else { return };
    let b = Buildah::new(&f);
    let dockerfile = r#"FROM busybox AS build
RUN mkdir -p /out && echo built > /out/artifact
FROM busybox
WORKDIR /work
RUN --mount=type=bind,source=req.txt,target=/tmp/req.txt cp /tmp/req.txt /got-req
RUN --mount=target=/ctx sh -c 'ls -a /ctx | sort > /ctx-listing; if touch /ctx/new 2>/dev/null; then echo writable; else echo read-only; fi > /ctx-ro'
RUN --mount=type=bind,target=/rw,rw sh -c 'echo scribble > /rw/req.txt && cat /rw/req.txt > /rw-seen && ls /rw > /rw-listing'
RUN --mount=type=bind,from=build,source=/out,target=/art cp /art/artifact /from-stage
RUN --mount=type=bind,from=busybox,source=/etc/passwd,target=/pw head -n 1 /pw > /from-image
RUN --mount=type=bind,source=sub,target=sub cat sub/inner > /relative
"#;
    let case = Case::new(
        &f,
        "bind",
        dockerfile,
        &[
            ("req.txt", "requests==2\n"),
            ("sub/inner", "inner\n"),
            ("secret.key", "not for the build\n"),
            (".dockerignore", "secret.key\n"),
        ],
    );
    let (_, root) = case.berth(None, &[]);
    let all = listing(&root, "");
    assert_eq!(all["got-req"], "file 644 0:0 \"requests==2\\n\"", "{all:?}");
    let listed = fs::read_to_string(root.join("ctx-listing")).unwrap();
    assert!(
        listed.contains("req.txt") && listed.contains("sub"),
        "{listed}"
    );
    assert!(
        !listed.contains("secret.key"),
        "an ignored file is mounted: {listed}"
    );
    assert_eq!(
        fs::read_to_string(root.join("ctx-ro")).unwrap(),
        "read-only\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("rw-seen")).unwrap(),
        "scribble\n"
    );
    assert_eq!(
        fs::read_to_string(case.ctx.join("req.txt")).unwrap(),
        "requests==2\n",
        "a writable mount's writes stay out of the context"
    );
    assert_eq!(
        fs::read_to_string(root.join("from-stage")).unwrap(),
        "built\n"
    );
    assert!(
        fs::read_to_string(root.join("from-image"))
            .unwrap()
            .starts_with("root:")
    );
    assert_eq!(
        fs::read_to_string(root.join("relative")).unwrap(),
        "inner\n"
    );
    for absent in ["ctx", "rw", "art", "pw", "work/sub", "tmp/req.txt"] {
        assert!(
            !root.join(absent).exists(),
            "{absent}: a mount point left in the image"
        );
    }

    // Built again: every step from the cache; a changed file a step mounts runs it again.
    let (_, steps) = f.build(&case.ctx, "bind");
    assert!(
        steps
            .iter()
            .filter(|s| s.text.starts_with("RUN"))
            .all(|s| s.cached),
        "{steps:?}"
    );
    fs::write(case.ctx.join("req.txt"), "requests==3\n").unwrap();
    let (image, steps) = f.build(&case.ctx, "bind");
    let ran: Vec<&str> = steps
        .iter()
        .filter(|s| !s.cached && s.text.starts_with("RUN"))
        .map(|s| s.text.as_str())
        .collect();
    assert!(
        ran.first().is_some_and(|t| t.contains("source=req.txt")),
        "the step mounting req.txt runs again: {ran:?}"
    );
    let root = f.dir.path().join("berth-out-bind-again");
    f.store.unpack(&image.unwrap(), &root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("got-req")).unwrap(),
        "requests==3\n"
    );

    // The same files from buildah (1.28 wants an absolute target, where BuildKit takes one
    // relative to the WORKDIR: its Dockerfile, outside the context, says /work/sub). Last:
    // buildah's `rw` mount writes through to the context (BuildKit's, and Berth's, do not).
    let theirs_dockerfile = f.dir.path().join("bind-buildah.Dockerfile");
    fs::write(
        &theirs_dockerfile,
        dockerfile.replace("target=sub cat", "target=/work/sub cat"),
    )
    .unwrap();
    let theirs = b
        .build(&case.ctx, Some(&theirs_dockerfile), &[], "bind")
        .unwrap();
    // buildah 1.28 mounts the context's directory as it is on disk, the ignored file with
    // it; BuildKit mounts what it was sent, which .dockerignore left out: Berth does so.
    for listing_file in ["ctx-listing", "rw-listing"] {
        let ours = fs::read_to_string(root.join(listing_file)).unwrap();
        let theirs = fs::read_to_string(theirs.join(listing_file)).unwrap();
        assert_eq!(ours, theirs.replace("secret.key\n", ""), "{listing_file}");
    }
    for under in [
        "got-req",
        "ctx-ro",
        "rw-seen",
        "from-stage",
        "from-image",
        "relative",
    ] {
        assert_eq!(listing(&root, under), listing(&theirs, under), "{under}");
    }

    // What cannot be mounted says so, naming the line.
    let missing = Case::new(
        &f,
        "bind-missing",
        "FROM busybox\nRUN --mount=source=nope,target=/n true\n",
        &[],
    );
    let error = missing.berth_error();
    assert!(
        error.starts_with("Dockerfile line 2:") && error.contains("nope"),
        "{error}"
    );
}

#[test]
fn heredocs_run_scripts_and_make_files_as_buildkit_does() {
    // Berth only: buildah 1.28 has no here-documents; the expectations are the Dockerfile
    // reference's.
    let Some(f) = fixture() else { return };
    let dockerfile = "FROM busybox
ARG NAME=world
RUN <<EOF
echo one > /one
echo two > /two
EOF
RUN cat > /three <<'EOT'
$NAME stays
EOT
RUN cat > /four <<EOT
$NAME expanded by the shell
EOT
COPY <<EOF /greeting
hello ${NAME} \\$NAME \"quoted\"
EOF
COPY <<-EOF <<\"RAW\" /files/
\ttabbed $NAME
\tEOF
raw $NAME
RAW
RUN <<SCRIPT
#!/bin/sh -e
echo \"ran as $0 with $NAME\" > /shebang
SCRIPT
";
    let case = Case::new(&f, "heredocs", dockerfile, &[]);
    let (_, root) = case.berth(None, &[]);
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("one"), "one\n");
    assert_eq!(read("two"), "two\n");
    assert_eq!(read("three"), "$NAME stays\n");
    assert_eq!(read("four"), "world expanded by the shell\n");
    assert_eq!(read("greeting"), "hello world $NAME \"quoted\"\n");
    assert_eq!(read("files/EOF"), "tabbed world\n");
    assert_eq!(read("files/RAW"), "raw $NAME\n");
    // A here-document with a #! line is a file its interpreter runs (at /dev/pipes, as
    // BuildKit puts it), nowhere in the image.
    assert_eq!(read("shebang"), "ran as /dev/pipes/SCRIPT with world\n");
    assert!(!root.join("dev/pipes").exists());
    let all = listing(&root, "greeting");
    assert_eq!(
        all["greeting"].split(' ').take(3).collect::<Vec<_>>(),
        ["file", "644", "0:0"]
    );
}

#[test]
fn onbuild_triggers_run_in_the_child_build_and_are_not_handed_on() {
    // Berth only: buildah 1.28 keeps ONBUILD only in Docker-format images; the expectations
    // are the Dockerfile reference's.
    let Some(f) = fixture() else { return };
    let base = Case::new(
        &f,
        "onbase",
        "FROM busybox\nONBUILD COPY marker.txt /from-child\nONBUILD RUN echo triggered > /triggered\n",
        &[],
    );
    let (image, root) = base.berth(None, &[]);
    assert_eq!(
        image.config.config.on_build,
        [
            "COPY marker.txt /from-child",
            "RUN echo triggered > /triggered"
        ]
    );
    assert!(
        !root.join("triggered").exists(),
        "a trigger ran in its own build"
    );

    let child = Case::new(
        &f,
        "onchild",
        "FROM onbase\nRUN cat /from-child > /seen\n",
        &[("marker.txt", "from the child's context\n")],
    );
    let (image, root) = child.berth(None, &[]);
    assert!(
        image.config.config.on_build.is_empty(),
        "triggers handed on"
    );
    assert_eq!(
        fs::read_to_string(root.join("triggered")).unwrap(),
        "triggered\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("seen")).unwrap(),
        "from the child's context\n"
    );

    // A trigger that fails names the FROM line and the trigger.
    let broken = Case::new(&f, "onbroken", "FROM onbase\n", &[]);
    let error = broken.berth_error();
    assert!(
        error.starts_with("Dockerfile line 1:") && error.contains("marker.txt"),
        "{error}"
    );
}

/// A server on a free loopback port (`command` given the port), killed when dropped.
struct LoopbackServer(std::process::Child, u16);

impl LoopbackServer {
    /// Starts `command(port)` and waits until it accepts connections; `what` names it.
    fn start(what: &str, command: impl FnOnce(u16) -> Command) -> LoopbackServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = command(port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "no {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        LoopbackServer(child, port)
    }

    /// `python3 -m http.server` serving `dir`.
    fn files(dir: &Path) -> LoopbackServer {
        LoopbackServer::start("file server", |port| {
            let mut command = Command::new("python3");
            command
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .current_dir(dir);
            command
        })
    }

    /// `git daemon` serving the repositories under `base` (git://).
    fn git(base: &Path) -> LoopbackServer {
        LoopbackServer::start("git daemon", |port| {
            let mut command = Command::new("git");
            command
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                ])
                .arg(format!("--base-path={}", base.display()))
                .arg(base);
            command
        })
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn add_from_a_url_downloads_checks_and_keeps_the_file_unpacked_with_mode_600() {
    // Berth only: the expectations are the Dockerfile reference's (mode 600, not unpacked,
    // --checksum).
    let Some(f) = fixture() else { return };
    let served = f.dir.path().join("served");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join("tool.sh"), "echo tool\n").unwrap();
    // An archive: ADD unpacks local ones, never downloaded ones.
    let status = Command::new("tar")
        .args(["-czf", "pack.tar.gz", "tool.sh"])
        .current_dir(&served)
        .status()
        .unwrap();
    assert!(status.success());
    let server = LoopbackServer::files(&served);
    let base = format!("http://127.0.0.1:{}", server.1);
    let digest =
        container_backend::image::layer::digest_of(&fs::read(served.join("tool.sh")).unwrap());
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {base}/tool.sh /opt/\n\
         ADD --checksum={digest} {base}/tool.sh /bin/tool\n\
         ADD {base}/pack.tar.gz /packs/\n"
    );
    let case = Case::new(&f, "addurl", &dockerfile, &[]);
    let (_, root) = case.berth(None, &[]);
    let all = listing(&root, "opt");
    assert_eq!(all["opt/tool.sh"], "file 600 0:0 \"echo tool\\n\"");
    let all = listing(&root, "bin/tool");
    assert_eq!(all["bin/tool"], "file 600 0:0 \"echo tool\\n\"");
    assert!(
        root.join("packs/pack.tar.gz").is_file(),
        "a download was unpacked"
    );

    // A wrong checksum, a missing file: errors naming the line and what was wrong.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let case = Case::new(
        &f,
        "addurl-wrong",
        &format!("FROM busybox\nADD --checksum={wrong} {base}/tool.sh /x\n"),
        &[],
    );
    let error = case.berth_error();
    assert!(
        error.starts_with("Dockerfile line 2:")
            && error.contains(&digest)
            && error.contains(&wrong),
        "{error}"
    );
    let case = Case::new(
        &f,
        "addurl-404",
        &format!("FROM busybox\nADD {base}/missing /x\n"),
        &[],
    );
    let error = case.berth_error();
    assert!(error.contains("404"), "{error}");
}

#[test]
fn copy_exclude_leaves_out_what_its_patterns_match_below_each_copied_directory() {
    // Berth only: buildah 1.28 has no --exclude; the expectations are BuildKit's (its
    // exclude_patterns_test.go: dockerignore patterns matched below each source directory,
    // never against a source itself).
    let Some(f) = fixture() else { return };
    let files = [
        ("dir1/a.txt", "a"),
        ("dir1/b.png", "b"),
        ("dir1/sub/c.txt", "c"),
        ("dir1/sub/d.md", "d"),
        ("dir2/e.txt", "e"),
        ("dir2/f.mp3", "f"),
        ("top.txt", "t"),
        ("keep/x.log", "x"),
        ("keep/y.log", "y"),
    ];
    let dockerfile = "FROM busybox AS base
ARG KIND=png
COPY --exclude=*/*.$KIND --exclude=**/*.md . /all/
COPY --exclude=*.txt dir1 /one/
COPY --exclude=*.mp3 dir* top.txt /wild/
COPY --exclude=* dir2 /none/
COPY --exclude=keep --exclude=!keep/y.log . /exception/
FROM busybox
COPY --from=base /all /all
COPY --from=base /one /one
COPY --from=base /wild /wild
COPY --from=base /none /none
COPY --from=base /exception /exception
COPY --from=base --exclude=sub /one /from-stage/
ADD --exclude=*.txt dir2 /added/
";
    let case = Case::new(&f, "exclude", dockerfile, &files);
    let (_, root) = case.berth(None, &[]);
    let present = |paths: &[&str]| {
        for p in paths {
            assert!(root.join(p).exists(), "{p} is missing");
        }
    };
    let absent = |paths: &[&str]| {
        for p in paths {
            assert!(!root.join(p).exists(), "{p} was copied");
        }
    };
    // `*/*.png` (with a variable) one level down, `**/*.md` at any depth.
    present(&[
        "all/dir1/a.txt",
        "all/dir1/sub/c.txt",
        "all/dir2/f.mp3",
        "all/top.txt",
    ]);
    absent(&["all/dir1/b.png", "all/dir1/sub/d.md"]);
    // Relative to the source directory: `*.txt` is its own top level only.
    present(&["one/b.png", "one/sub/c.txt", "one/sub/d.md"]);
    absent(&["one/a.txt"]);
    // A wildcard source: each matched directory's own paths; the file source itself is kept.
    present(&["wild/a.txt", "wild/e.txt", "wild/top.txt", "wild/sub/c.txt"]);
    absent(&["wild/f.mp3"]);
    // Everything left out: the destination directory alone.
    assert!(root.join("none").is_dir());
    assert_eq!(fs::read_dir(root.join("none")).unwrap().count(), 0);
    // An exception brings one file back out of an excluded directory.
    present(&["exception/keep/y.log", "exception/dir1/a.txt"]);
    absent(&["exception/keep/x.log"]);
    // From a stage, and ADD.
    present(&["from-stage/b.png"]);
    absent(&["from-stage/sub"]);
    present(&["added/f.mp3"]);
    absent(&["added/e.txt"]);
}

#[test]
fn a_layer_of_several_gzip_members_is_read_whole_by_buildah() {
    // Berth writes big layers as several gzip members compressed side by side
    // (image/gzip.rs); Go's reader, which skopeo, buildah, podman and Docker use, must read
    // every member: a file spanning several of them comes out whole.
    let Some(f) = fixture() else { return };
    let buildah = Buildah::new(&f);
    let dockerfile = "FROM busybox
RUN dd if=/dev/urandom of=/big bs=1M count=20 2>/dev/null && sha256sum /big > /big.sum
";
    let case = Case::new(&f, "members", dockerfile, &[]);
    let (image, root) = case.berth(None, &[]);
    let layer = image.manifest.layers.last().unwrap();
    assert!(
        layer.size > 2 * container_backend::image::gzip::MEMBER_SIZE as u64,
        "the layer ({} bytes) spans several members",
        layer.size
    );
    let ours = fs::read_to_string(root.join("big.sum")).unwrap();
    // Into buildah's storage through skopeo (which decompresses every layer to apply it).
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!(
            "oci:{}:{}",
            f.store.root().display(),
            image.reference
        ))
        .arg(format!(
            "containers-storage:[vfs@{}+{}]members:latest",
            buildah.dir.join("root").display(),
            buildah.dir.join("run").display()
        ))
        .env("TMPDIR", buildah.dir.join("tmp"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |args: &[&str]| {
        let o = buildah.command().args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let container = run(&["from", "members:latest"]);
    let mounted = PathBuf::from(run(&["mount", &container]));
    assert_eq!(fs::read_to_string(mounted.join("big.sum")).unwrap(), ours);
    use sha2::Digest;
    let sum = |path: &Path| -> String {
        sha2::Sha256::digest(fs::read(path).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    // The file as buildah read the layer, and as Berth's own store unpacked it.
    assert!(
        ours.starts_with(&sum(&mounted.join("big"))),
        "buildah's copy"
    );
    assert!(ours.starts_with(&sum(&root.join("big"))), "Berth's copy");
    run(&["rm", &container]);
}

/// `git ARGS…` in `dir`, which must succeed; its output.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Berth", "-c", "user.email=berth@localhost"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn add_of_a_git_repository_copies_its_checkout_as_buildkit_does() {
    // Berth only: buildah 1.28 takes no git sources in ADD; the expectations are the Dockerfile
    // reference's and BuildKit's (dfgitutil's ref syntax, the checkout's modes kept, no .git
    // unless --keep-git-dir, --checksum a commit).
    use std::os::unix::fs::PermissionsExt;
    let Some(f) = fixture() else { return };
    let work = f.dir.path().join("git-work");
    fs::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("README"), "one\n").unwrap();
    fs::write(work.join("sub/run.sh"), "echo sub\n").unwrap();
    fs::set_permissions(work.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    let v1 = git(&work, &["rev-parse", "HEAD"]);
    fs::write(work.join("README"), "two\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let repos = f.dir.path().join("git-repos");
    fs::create_dir_all(&repos).unwrap();
    git(
        &repos,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "app.git"],
    );
    // Served as git:// by git daemon and as plain files (git's "dumb" HTTP, no shallow
    // fetches: the whole ref is fetched instead).
    git(&repos.join("app.git"), &["update-server-info"]);
    let daemon = LoopbackServer::git(&repos);
    let files = LoopbackServer::files(&repos);
    let (git_base, http_base) = (
        format!("git://127.0.0.1:{}", daemon.1),
        format!("http://127.0.0.1:{}", files.1),
    );
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {git_base}/app.git /app\n\
         ADD {git_base}/app.git#v1:sub /v1sub\n\
         ADD --keep-git-dir {http_base}/app.git /kept\n\
         ADD --checksum={v1} {http_base}/app.git?tag=v1 /pinned\n"
    );
    let case = Case::new(&f, "addgit", &dockerfile, &[]);
    let (_, root) = case.berth(None, &[]);
    let app = listing(&root, "app");
    assert_eq!(app["app/README"], "file 644 0:0 \"two\\n\"", "{app:?}");
    assert_eq!(
        app["app/sub/run.sh"], "file 755 0:0 \"echo sub\\n\"",
        "{app:?}"
    );
    assert!(!app.keys().any(|k| k.contains(".git")), "{app:?}");
    let sub = listing(&root, "v1sub");
    assert_eq!(
        sub.keys().cloned().collect::<Vec<_>>(),
        ["v1sub", "v1sub/run.sh"],
        "{sub:?}"
    );
    assert!(root.join("kept/.git").is_dir());
    assert_eq!(
        fs::read_to_string(root.join("kept/README")).unwrap(),
        "two\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("pinned/README")).unwrap(),
        "one\n"
    );

    // A checkout that is not the commit asked for, a ref the repository does not have, a
    // subdirectory it does not have: errors naming the line and what was wrong.
    let wrong = "0".repeat(40);
    let fails = |name: &str, add: &str| {
        Case::new(&f, name, &format!("FROM busybox\n{add}\n"), &[]).berth_error()
    };
    let error = fails(
        "addgit-commit",
        &format!("ADD --checksum={wrong} {git_base}/app.git /x"),
    );
    assert!(
        error.starts_with("Dockerfile line 2:")
            && error.contains(&wrong)
            && error.contains("the checkout is commit"),
        "{error}"
    );
    let error = fails("addgit-ref", &format!("ADD {git_base}/app.git#nope /x"));
    assert!(
        error.starts_with("Dockerfile line 2:")
            && error.contains("git fetch")
            && error.contains("nope"),
        "{error}"
    );
    let error = fails(
        "addgit-subdir",
        &format!("ADD {git_base}/app.git#main:missing /x"),
    );
    assert!(
        error.contains("`missing` is not a directory of the repository"),
        "{error}"
    );
    let error = fails("addgit-keep", "ADD --keep-git-dir README /x");
    assert!(error.contains("only for git repositories"), "{error}");
}
