//! Images from registries (issue 18): a real distribution registry (Debian's `docker-registry`,
//! the reference registry) on loopback, images put into it by `skopeo` (a foreign client) in OCI
//! and Docker v2 form, pulled by berthd run as a desk user: `pull`, `run` and `FROM` pulling on
//! demand, the pulled image's digests the ones skopeo reads from the registry; an image built
//! and pushed by Berth read back by skopeo; a blob the registry corrupted refused with the
//! store naming nothing; a registry behind a login (htpasswd basic auth), where
//! `berthctl login` and skopeo read each other's files; a registry behind a token server, as
//! Docker Hub is; and a transfer broken by a proxy, taken up where it stopped.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use berth_e2e::cutting_proxy::CuttingProxy;
use berth_e2e::token_server::TokenServer;
use berth_e2e::user::TestUser;
use berth_e2e::{Daemon, busybox_tarball, on_path, open_tempdir, text};

/// A registry on 127.0.0.1 with its storage in a directory, killed when dropped.
struct Registry {
    child: Child,
    address: String,
    data: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        Self::start_with(dir, "")
    }

    /// A registry that lets in only `user` with `password` (HTTP basic, its htpasswd file).
    fn start_with_login(dir: &Path, user: &str, password: &str) -> Registry {
        let out = Command::new("python3")
            .args([
                "-c",
                "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                password,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "bcrypt: {}", text(&out).1);
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{}", text(&out).0)).unwrap();
        Self::start_with(
            dir,
            &format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ),
        )
    }

    /// A registry with `extra` appended to its configuration.
    fn start_with(dir: &Path, extra: &str) -> Registry {
        assert!(
            on_path("docker-registry") && on_path("skopeo"),
            "the registry tests need Debian's docker-registry and skopeo (scripts/test installs them)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let data = dir.join("registry-data");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\nlog:\n  level: error\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            // Its log is every 404 of a client checking for a blob before pushing it.
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            address,
            data,
        }
    }

    /// `skopeo copy` from an OCI layout (a Berth store is one) into this registry.
    fn push(&self, layout: &Path, name: &str, target: &str, format: &str) {
        self.push_as(layout, name, target, format, None);
    }

    /// [`Registry::push`] with `USER:PASSWORD`.
    fn push_as(&self, layout: &Path, name: &str, target: &str, format: &str, creds: Option<&str>) {
        self.push_with(layout, name, target, format, creds, &[]);
    }

    /// [`Registry::push_as`] with more of skopeo's options (`--dest-compress-format zstd`).
    fn push_with(
        &self,
        layout: &Path,
        name: &str,
        target: &str,
        format: &str,
        creds: Option<&str>,
        options: &[&str],
    ) {
        let mut command = Command::new("skopeo");
        if let Some(creds) = creds {
            command.args(["copy", "--dest-creds", creds]);
        } else {
            command.arg("copy");
        }
        command.args(options);
        let out = command
            .args(["--dest-tls-verify=false", "--format", format])
            .arg(format!("oci:{}:{name}", layout.display()))
            .arg(format!("docker://{}/{target}", self.address))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy: {}", text(&out).1);
    }

    /// What skopeo reads of an image in this registry: the manifest's digest and the raw
    /// manifest.
    fn inspect(&self, target: &str) -> (String, serde_json::Value) {
        let image = format!("docker://{}/{target}", self.address);
        let digest = Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &image,
            ])
            .output()
            .unwrap();
        assert!(digest.status.success(), "{}", text(&digest).1);
        let raw = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw", &image])
            .output()
            .unwrap();
        assert!(raw.status.success(), "{}", text(&raw).1);
        (
            text(&digest).0.trim().to_owned(),
            serde_json::from_slice(&raw.stdout).unwrap(),
        )
    }

    /// The registry's own file of a blob.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.data
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.berthctl(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}\n{}", daemon.log());
    stdout
}

/// An OCI layout at `out` holding one image index named `multi`: image `name` of the layout
/// at `from` for linux/amd64, and the same layers under a config that says linux/arm64.
fn multi_platform_layout(from: &Path, name: &str, out: &Path) -> PathBuf {
    use container_backend::image::layer::digest_of;
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let read_blob = |digest: &str| {
        std::fs::read(
            from.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = digest_of(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        (digest, bytes.len())
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap()
        .clone();
    let amd_manifest_bytes = read_blob(entry["digest"].as_str().unwrap());
    let amd_manifest: serde_json::Value = serde_json::from_slice(&amd_manifest_bytes).unwrap();
    for layer in amd_manifest["layers"].as_array().unwrap() {
        put(&read_blob(layer["digest"].as_str().unwrap()));
    }
    let amd_config_bytes = read_blob(amd_manifest["config"]["digest"].as_str().unwrap());
    put(&amd_config_bytes);
    let (amd, amd_size) = put(&amd_manifest_bytes);
    let mut arm_config: serde_json::Value = serde_json::from_slice(&amd_config_bytes).unwrap();
    arm_config["architecture"] = "arm64".into();
    let (config_digest, config_size) = put(&serde_json::to_vec(&arm_config).unwrap());
    let mut arm_manifest = amd_manifest.clone();
    arm_manifest["config"]["digest"] = config_digest.into();
    arm_manifest["config"]["size"] = config_size.into();
    let (arm, arm_size) = put(&serde_json::to_vec(&arm_manifest).unwrap());
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let image_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": manifest_type, "digest": amd, "size": amd_size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": manifest_type, "digest": arm, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let (index_digest, index_size) = put(&serde_json::to_vec(&image_index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(out.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    out.to_owned()
}

/// `berthctl` as the daemon's user, its registry logins in the file `auth`.
fn berthctl_logged(
    daemon: &Daemon,
    auth: &Path,
    args: &[&str],
    input: &str,
) -> (bool, String, String) {
    let out = daemon.berthctl_with(
        args,
        &[("REGISTRY_AUTH_FILE", auth.to_str().unwrap())],
        input.as_bytes(),
    );
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// The desk user the tests make and a temporary directory; `None` (skipped, saying why) when
/// the tests do not run as root, who makes users.
fn desk_user_and_dir() -> Option<(TestUser, tempfile::TempDir)> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the registry tests make their users as root");
        return None;
    }
    let user = TestUser::desk()?;
    Some((user, open_tempdir()))
}

/// A root daemon in `dir` with busybox imported: its store is the OCI layout the tests push
/// into registries with skopeo (`state_dir/images`). `None` (skipped) without busybox.
fn busybox_source(dir: &Path) -> Option<Daemon> {
    std::fs::create_dir_all(dir).unwrap();
    let tarball = busybox_tarball(dir, None)?;
    let source = Daemon::start(dir, &[]);
    ok(&source, &["import", tarball.to_str().unwrap(), "busybox"]);
    Some(source)
}

/// What busybox's `/home/dev/notes` says in a container of `image` (removed after).
fn notes(daemon: &Daemon, image: &str) -> String {
    ok(
        daemon,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "cat",
            "/home/dev/notes",
        ],
    )
}

/// The names of the files in `dir` of the daemon's image store (none if it does not exist).
fn store_dir(daemon: &Daemon, dir: &str) -> Vec<String> {
    let dir = daemon.state_dir.join("images").join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The store's index: which images it names.
fn store_index(daemon: &Daemon) -> String {
    std::fs::read_to_string(daemon.state_dir.join("images/index.json")).unwrap()
}

#[test]
fn a_desk_user_pulls_runs_and_builds_from_a_registry_and_a_corrupt_blob_changes_nothing() {
    let Some((user, dir)) = desk_user_and_dir() else {
        return;
    };
    let registry = Registry::start(dir.path());

    // The images to push: busybox imported into a root daemon's store (an OCI layout), and a
    // second image built on it whose own layer will be corrupted in the registry.
    let source_dir = dir.path().join("source");
    let Some(source) = busybox_source(&source_dir) else {
        return;
    };
    let other = source_dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("Dockerfile"),
        "FROM busybox\nRUN echo a layer of its own > /own\n",
    )
    .unwrap();
    ok(
        &source,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "other",
            other.to_str().unwrap(),
        ],
    );
    // A name Docker normalises is the image the store has under its familiar name.
    assert_eq!(
        ok(
            &source,
            &[
                "run",
                "--network",
                "none",
                "docker.io/library/busybox:latest",
                "cat",
                "/home/dev/notes"
            ]
        ),
        "mine\n"
    );
    let layout = source.state_dir.join("images");
    registry.push(&layout, "busybox:latest", "tools/busybox:1", "oci");
    registry.push(&layout, "busybox:latest", "tools/busybox:v2s2", "v2s2");
    registry.push(&layout, "other:latest", "tools/other:1", "oci");
    // A layer of its own compressed with zstd (skopeo reuses the gzip blob the registry has
    // for the busybox layer under it: a mixed image).
    let zstd_dir = source_dir.join("zstd");
    std::fs::create_dir_all(&zstd_dir).unwrap();
    std::fs::write(
        zstd_dir.join("Dockerfile"),
        "FROM busybox\nRUN echo zstd layer > /z\n",
    )
    .unwrap();
    ok(
        &source,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "zimage",
            zstd_dir.to_str().unwrap(),
        ],
    );
    let zstd = ["--dest-compress", "--dest-compress-format", "zstd"];
    registry.push_with(
        &layout,
        "zimage:latest",
        "tools/zimage:1",
        "oci",
        None,
        &zstd,
    );

    // A multi-platform image: an index of busybox for amd64 and a copy whose config says
    // arm64, put in by skopeo (`--all`) from an OCI layout the test writes.
    let multi = multi_platform_layout(&layout, "busybox:latest", &dir.path().join("multi"));
    let out = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", multi.display()))
        .arg(format!("docker://{}/tools/multi:1", registry.address))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy --all: {}", text(&out).1);

    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    // The index gives the host's platform by default, another with --platform, and says so
    // when it has none of what is asked.
    let multi_ref = format!("{}/tools/multi:1", registry.address);
    let arch = |daemon: &Daemon| -> serde_json::Value {
        let detail: serde_json::Value =
            serde_json::from_str(&ok(daemon, &["inspect", "--image", &multi_ref])).unwrap();
        detail["config"]["architecture"].clone()
    };
    ok(&daemon, &["pull", &multi_ref]);
    assert_eq!(arch(&daemon), "amd64");
    ok(&daemon, &["pull", "--platform", "linux/arm64", &multi_ref]);
    assert_eq!(arch(&daemon), "arm64");
    let out = daemon.berthctl(&["pull", "--platform", "linux/s390x", &multi_ref]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no linux/s390x image"),
        "{}",
        text(&out).1
    );
    ok(&daemon, &["rmi", &multi_ref]);

    let reference = format!("{}/tools/busybox:1", registry.address);
    let out = daemon.berthctl(&["pull", &reference]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{}", daemon.log());
    assert!(
        stdout.starts_with(&format!("pulled {reference} sha256:")),
        "{stdout}"
    );
    assert!(stderr.contains(": pulled"), "progress per layer: {stderr}");

    // The image is the registry's: the manifest digest and config skopeo reads there.
    let (digest, manifest) = registry.inspect("tools/busybox:1");
    let images: serde_json::Value =
        serde_json::from_str(&ok(&daemon, &["--json", "images"])).unwrap();
    let pulled = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference.as_str())
        .unwrap_or_else(|| panic!("{images}"));
    assert_eq!(pulled["id"], manifest["config"]["digest"]);
    let index = std::fs::read_to_string(daemon.state_dir.join("images/index.json")).unwrap();
    assert!(
        index.contains(&digest),
        "the store keeps the registry's manifest: {index}"
    );

    // `run` pulls what the store lacks (here the Docker v2 form, its layers already present).
    let v2 = format!("{}/tools/busybox:v2s2", registry.address);
    assert_eq!(
        ok(
            &daemon,
            &["run", "--network", "none", &v2, "cat", "/home/dev/notes"]
        ),
        "mine\n"
    );

    // A zstd-compressed layer (skopeo wrote it so) unpacks as a gzip one does.
    let (_, manifest) = registry.inspect("tools/zimage:1");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap()["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );
    let zstd_image = format!("{}/tools/zimage:1", registry.address);
    assert_eq!(
        ok(
            &daemon,
            &["run", "--rm", "--network", "none", &zstd_image, "cat", "/z"]
        ),
        "zstd layer\n"
    );

    // A FROM pulls too, and a build on the pulled image runs.
    let ctx = dir.path().join(user.name).join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/tools/other:1\nRUN cat /own > /copied\nCMD [\"cat\", \"/copied\"]\n",
            registry.address
        ),
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    ok(&daemon, &["rmi", &reference]);
    ok(
        &daemon,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "app",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ok(
            &daemon,
            &["run", "--network", "none", "--name", "appc", "app"]
        ),
        "a layer of its own\n"
    );

    // Berth pushes: the image built here, tagged with the registry's name and pushed there, is
    // what skopeo reads back (the same manifest digest; skopeo's copy checks every blob).
    let local = format!("{}/team/app:2", registry.address);
    ok(&daemon, &["tag", "app", &local]);
    let pushed = ok(&daemon, &["push", &local]);
    let (their_digest, _) = registry.inspect("team/app:2");
    assert_eq!(pushed, format!("pushed {local} {their_digest}\n"));
    let copy = dir.path().join("copied");
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{local}"))
        .arg(format!("oci:{}:app", copy.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy back: {}", text(&out).1);

    // A blob the registry serves corrupted: refused naming the digest, the store unchanged.
    ok(&daemon, &["rm", "appc"]);
    ok(&daemon, &["rmi", "app"]);
    ok(&daemon, &["rmi", &local]);
    ok(
        &daemon,
        &["rmi", &format!("{}/tools/other:1", registry.address)],
    );
    let (_, other_manifest) = registry.inspect("tools/other:1");
    let top = other_manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = registry.blob_file(&top);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let index = store_index(&daemon);
    let out = daemon.berthctl(&["pull", &format!("{}/tools/other:1", registry.address)]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "a corrupt blob was accepted");
    assert!(stderr.contains(&top), "the error names the blob: {stderr}");
    // Blobs that arrived whole may stay for the next pull (as Docker keeps them); the image is
    // not named, and the corrupt blob is nowhere, not even as a part kept for resuming.
    assert_eq!(store_index(&daemon), index, "no image was named");
    let hex = top.trim_start_matches("sha256:");
    assert!(
        !store_dir(&daemon, "blobs/sha256").iter().any(|b| b == hex),
        "the corrupt blob was stored"
    );
    assert_eq!(store_dir(&daemon, "ingest"), Vec::<String>::new());
    assert!(
        !store_dir(&daemon, "")
            .iter()
            .any(|f| f.starts_with(".tmp-")),
        "temporary files were left"
    );
}

#[test]
fn a_desk_user_logs_in_to_a_private_registry_as_podman_and_skopeo_do() {
    let Some((user, dir)) = desk_user_and_dir() else {
        return;
    };
    let registry = Registry::start_with_login(dir.path(), "berth", "s3cret:pass");

    let source_dir = dir.path().join("source");
    let Some(source) = busybox_source(&source_dir) else {
        return;
    };
    let layout = source.state_dir.join("images");
    let creds = Some("berth:s3cret:pass");
    registry.push_as(&layout, "busybox:latest", "team/busybox:1", "oci", creds);
    registry.push_as(&layout, "busybox:latest", "team/busybox:2", "v2s2", creds);

    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let home = dir.path().join(user.name);
    let auth = home.join("auth.json");
    let image = format!("{}/team/busybox:1", registry.address);

    // Without a login the registry says no, and the error says so.
    let (pulled, _, stderr) = berthctl_logged(&daemon, &auth, &["pull", &image], "");
    assert!(!pulled, "an anonymous pull from a private registry");
    assert!(stderr.contains(&image), "{stderr}");

    // A wrong password is refused by the registry, and nothing is kept.
    let login = [
        "login",
        "-u",
        "berth",
        "--password-stdin",
        registry.address.as_str(),
    ];
    let (logged, _, stderr) = berthctl_logged(&daemon, &auth, &login, "wrong\n");
    assert!(!logged, "a wrong password was taken");
    assert!(
        stderr.contains("refused the login of `berth`") && stderr.contains("wrong"),
        "{stderr}"
    );
    assert!(!auth.exists(), "a refused login was kept");

    // The right one is kept where podman keeps it, readable by the user alone, and skopeo (a
    // foreign client) logs in with the file Berth wrote.
    let (logged, stdout, stderr) = berthctl_logged(&daemon, &auth, &login, "s3cret:pass\n");
    assert!(logged, "{stderr}\n{}", daemon.log());
    assert_eq!(stdout, "Login Succeeded\n");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&auth).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), user.uid, "the file is the user's");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo with Berth's file: {}",
        text(&inspect).1
    );

    // Logged in: pull, run pulling on demand, a build FROM the registry, push.
    let (pulled, stdout, stderr) = berthctl_logged(&daemon, &auth, &["pull", &image], "");
    assert!(pulled, "{stderr}\n{}", daemon.log());
    assert!(
        stdout.starts_with(&format!("pulled {image} sha256:")),
        "{stdout}"
    );
    let second = format!("{}/team/busybox:2", registry.address);
    let (ran, stdout, stderr) = berthctl_logged(
        &daemon,
        &auth,
        &[
            "run",
            "--network",
            "none",
            &second,
            "cat",
            "/home/dev/notes",
        ],
        "",
    );
    assert!(ran, "{stderr}");
    assert_eq!(stdout, "mine\n");
    let ctx = home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN echo built > /built\n"),
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    ok(&daemon, &["rmi", &image]);
    let (built, _, stderr) = berthctl_logged(
        &daemon,
        &auth,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "app",
            ctx.to_str().unwrap(),
        ],
        "",
    );
    assert!(built, "a FROM the private registry: {stderr}");
    let pushed = format!("{}/team/app:1", registry.address);
    ok(&daemon, &["tag", "app", &pushed]);
    let (sent, _, stderr) = berthctl_logged(&daemon, &auth, &["push", &pushed], "");
    assert!(sent, "{stderr}");

    // Logged out, the registry says no again; a login skopeo made is one Berth uses.
    let (out, stdout, stderr) = berthctl_logged(&daemon, &auth, &["logout", &registry.address], "");
    assert!(out, "{stderr}");
    assert_eq!(stdout, format!("Removed login for {}\n", registry.address));
    ok(&daemon, &["rmi", &image]);
    let (pulled, _, _) = berthctl_logged(&daemon, &auth, &["pull", &image], "");
    assert!(!pulled, "pulled after logging out");
    let theirs = home.join("skopeo-auth.json");
    let login = Command::new("skopeo")
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "berth",
            "-p",
            "s3cret:pass",
            "--authfile",
        ])
        .arg(&theirs)
        .arg(&registry.address)
        .output()
        .unwrap();
    assert!(login.status.success(), "skopeo login: {}", text(&login).1);
    user.own(&theirs);
    let (pulled, _, stderr) = berthctl_logged(&daemon, &theirs, &["pull", &image], "");
    assert!(pulled, "with skopeo's file: {stderr}");
}

#[test]
fn a_desk_user_saves_and_loads_archives_skopeo_reads_and_writes() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the archive test makes its users as root");
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    assert!(on_path("skopeo"), "scripts/test installs skopeo");
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let first = dir.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    let daemon = Daemon::start_as(&user, &first, &[]);
    ok(&daemon, &["import", tarball.to_str().unwrap(), "busybox"]);
    let home = first.join(user.name);
    let ctx = home.join("app");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo saved > /app\n",
    )
    .unwrap();
    user.own(&ctx);
    user.own(&ctx.join("Dockerfile"));
    ok(
        &daemon,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "app",
            ctx.to_str().unwrap(),
        ],
    );

    // One archive, read by skopeo as a docker-archive and as an oci-archive.
    let archive = home.join("images.tar");
    ok(
        &daemon,
        &["save", "-o", archive.to_str().unwrap(), "busybox", "app"],
    );
    for image in [
        format!("docker-archive:{}:app:latest", archive.display()),
        format!("oci-archive:{}:busybox:latest", archive.display()),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", &image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {image}: {}",
            text(&out).1
        );
    }

    // Loaded by another daemon of the user's, the images run.
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let other = Daemon::start_as(&user, &second, &[]);
    let loaded = ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        loaded,
        "Loaded image: busybox:latest\nLoaded image: app:latest\n"
    );
    assert_eq!(
        ok(
            &other,
            &["run", "--rm", "--network", "none", "app", "cat", "/app"]
        ),
        "saved\n"
    );

    // A classic docker-archive skopeo writes (plain layers, RepoTags fully qualified), on stdin.
    let classic = home.join("classic.tar");
    let layout = daemon.state_dir.join("images");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:app:latest", layout.display()))
        .arg(format!("docker-archive:{}:team/app:7", classic.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", text(&out).1);
    user.own(&classic);
    let out = other.berthctl_with(&["load"], &[], &std::fs::read(&classic).unwrap());
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, "Loaded image: team/app:7\n");
    assert_eq!(
        ok(
            &other,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "team/app:7",
                "cat",
                "/app"
            ]
        ),
        "saved\n"
    );

    // Not an archive, and an archive whose layer is not what its config says: refused, and
    // nothing is named.
    let out = other.berthctl(&["load", "-i", tarball.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("not an image archive"),
        "{}",
        text(&out).1
    );
    let unpacked = home.join("tampered");
    std::fs::create_dir_all(&unpacked).unwrap();
    let run = |args: &[&str], cwd: &Path| {
        let out = Command::new("tar")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "tar {args:?}: {}", text(&out).1);
    };
    run(&["-xf", classic.to_str().unwrap()], &unpacked);
    let layer = std::fs::read_dir(&unpacked)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .map(|d| d.join("layer.tar"))
        .filter(|l| l.exists())
        .or_else(|| {
            std::fs::read_dir(&unpacked)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "tar"))
        })
        .unwrap();
    std::fs::write(unpacked.join("extra"), "not in the image\n").unwrap();
    run(&["-rf", layer.to_str().unwrap(), "extra"], &unpacked);
    std::fs::remove_file(unpacked.join("extra")).unwrap();
    let tampered = home.join("tampered.tar");
    run(&["-cf", tampered.to_str().unwrap(), "."], &unpacked);
    user.own(&tampered);
    let before = text(&other.berthctl(&["images"])).0;
    let out = other.berthctl(&["load", "-i", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).0);
    assert!(text(&out).1.contains("not the sha256:"), "{}", text(&out).1);
    assert_eq!(text(&other.berthctl(&["images"])).0, before);
}

#[test]
fn a_pull_whose_connection_breaks_takes_up_where_it_stopped() {
    let Some((user, dir)) = desk_user_and_dir() else {
        return;
    };
    let registry = Registry::start(dir.path());
    let source_dir = dir.path().join("source");
    let Some(source) = busybox_source(&source_dir) else {
        return;
    };
    let layout = source.state_dir.join("images");
    registry.push(&layout, "busybox:latest", "tools/busybox:1", "oci");
    let (_, manifest) = registry.inspect("tools/busybox:1");
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()
        .clone();
    let (digest, size) = (
        layer["digest"].as_str().unwrap().to_owned(),
        layer["size"].as_u64().unwrap(),
    );
    // Each broken transfer passes this much of the response (headers and the first bytes).
    const CUT: usize = 32 * 1024;
    assert!(
        size > 8 * CUT as u64,
        "the layer ({size} bytes) is too small to cut"
    );
    let proxy = CuttingProxy::start(&registry.address, &digest, CUT);
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let image = format!("{}/tools/busybox:1", proxy.address);
    let hex = digest.trim_start_matches("sha256:");
    let offset = |range: &Option<String>| -> Option<u64> {
        let range = range.as_deref()?;
        let start = range.strip_prefix("bytes=")?.strip_suffix('-')?;
        start.parse().ok()
    };

    // The connection breaks once: the same pull asks for the rest, and the image is whole.
    proxy.cut_next(1);
    let out = ok(&daemon, &["pull", &image]);
    assert!(out.starts_with(&format!("pulled {image} sha256:")), "{out}");
    let asked = proxy.take_requests(&digest);
    assert_eq!(
        asked.len(),
        2,
        "one transfer and one for the rest: {asked:?}"
    );
    assert_eq!(asked[0].range, None, "{asked:?}");
    let resumed_at = offset(&asked[1].range).unwrap_or(0);
    assert!(
        resumed_at > 0 && resumed_at < size,
        "the second request asks for the rest: {asked:?}"
    );
    assert_eq!(notes(&daemon, &image), "mine\n");
    assert_eq!(store_dir(&daemon, "ingest"), Vec::<String>::new());

    // It breaks every time: the pull gives up naming the blob and names no image, keeping
    // what arrived; the next pull asks only for the rest.
    ok(&daemon, &["rmi", &image]);
    proxy.cut_next(100);
    let out = daemon.berthctl(&["pull", &image]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "a pull that never got its layer");
    assert!(
        stderr.contains(&digest),
        "the error names the blob: {stderr}"
    );
    let attempts = 100 - proxy.cuts_left();
    assert!(
        (2..=10).contains(&attempts),
        "a few attempts, then it gives up: {attempts}"
    );
    proxy.cut_next(0);
    assert!(
        !store_index(&daemon).contains("tools/busybox"),
        "a broken pull named the image"
    );
    assert_eq!(store_dir(&daemon, "ingest"), vec![hex.to_owned()]);
    let kept = std::fs::metadata(daemon.state_dir.join("images/ingest").join(hex))
        .unwrap()
        .len();
    assert!(kept > 0 && kept < size, "the part that arrived: {kept}");
    proxy.take_requests(&digest);
    ok(&daemon, &["pull", &image]);
    let asked = proxy.take_requests(&digest);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(offset(&asked[0].range), Some(kept), "{asked:?}");
    assert_eq!(store_dir(&daemon, "ingest"), Vec::<String>::new());
    assert_eq!(notes(&daemon, &image), "mine\n");

    // What a broken pull kept goes with `system prune`.
    ok(&daemon, &["rmi", &image]);
    proxy.cut_next(100);
    assert!(!daemon.berthctl(&["pull", &image]).status.success());
    proxy.cut_next(0);
    assert_eq!(store_dir(&daemon, "ingest"), vec![hex.to_owned()]);
    ok(&daemon, &["system", "prune", "-f"]);
    assert_eq!(store_dir(&daemon, "ingest"), Vec::<String>::new());
}

#[test]
fn a_registry_behind_a_token_server_gives_anonymous_pulls_and_logged_in_pushes() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the registry test makes its users as root");
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    assert!(on_path("openssl"), "scripts/test installs openssl");
    let dir = open_tempdir();
    let tokens = TokenServer::start(dir.path(), "dev", "t0ken:pass");
    let registry = Registry::start_with(dir.path(), &tokens.registry_config());
    let source_dir = dir.path().join("source");
    let Some(source) = busybox_source(&source_dir) else {
        return;
    };
    let layout = source.state_dir.join("images");
    let creds = Some("dev:t0ken:pass");
    registry.push_as(&layout, "busybox:latest", "public/busybox:1", "oci", creds);
    registry.push_as(
        &layout,
        "busybox:latest",
        "private/busybox:1",
        "v2s2",
        creds,
    );

    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let home = dir.path().join(user.name);
    let auth = home.join("auth.json");
    let granted = |account: Option<&str>, scope: &str| {
        tokens.requests().iter().any(|r| {
            r.granted && r.account.as_deref() == account && r.scopes.iter().any(|s| s == scope)
        })
    };

    // Anonymous, as on Docker Hub: a token for the public repository, none for the other.
    let public = format!("{}/public/busybox:1", registry.address);
    let (pulled, _, stderr) = berthctl_logged(&daemon, &auth, &["pull", &public], "");
    assert!(
        pulled,
        "an anonymous pull through a token: {stderr}\n{}",
        daemon.log()
    );
    assert!(
        granted(None, "repository:public/busybox:pull"),
        "{:?}",
        tokens.requests()
    );
    assert_eq!(notes(&daemon, &public), "mine\n");
    let private = format!("{}/private/busybox:1", registry.address);
    let (pulled, _, stderr) = berthctl_logged(&daemon, &auth, &["pull", &private], "");
    assert!(!pulled, "an anonymous pull of a private repository");
    assert!(stderr.contains(&private), "{stderr}");

    // A login: the wrong password is refused by the token server, the right one kept.
    let login = ["login", "-u", "dev", "--password-stdin", &registry.address];
    let (logged, _, stderr) = berthctl_logged(&daemon, &auth, &login, "nope\n");
    assert!(!logged, "a wrong password was taken");
    assert!(stderr.contains("refused the login of `dev`"), "{stderr}");
    let (logged, _, stderr) = berthctl_logged(&daemon, &auth, &login, "t0ken:pass\n");
    assert!(logged, "{stderr}");

    // Logged in: the private image pulls, and an image built here is pushed with a token for
    // pull and push, and reads back in skopeo as Berth pushed it.
    let (pulled, _, stderr) = berthctl_logged(&daemon, &auth, &["pull", &private], "");
    assert!(pulled, "{stderr}\n{}", daemon.log());
    assert!(granted(Some("dev"), "repository:private/busybox:pull"));
    let pushed = format!("{}/private/app:1", registry.address);
    ok(&daemon, &["tag", &private, &pushed]);
    let (sent, stdout, stderr) = berthctl_logged(&daemon, &auth, &["push", &pushed], "");
    assert!(sent, "{stderr}");
    // Its progress: the config and the layer, each said once it is in the registry.
    assert_eq!(
        stderr.lines().filter(|l| l.ends_with(": pushed")).count(),
        2,
        "{stderr}"
    );
    assert!(
        granted(Some("dev"), "repository:private/app:pull,push"),
        "{:?}",
        tokens.requests()
    );
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            "dev:t0ken:pass",
            "--format",
            "{{.Digest}}",
        ])
        .arg(format!("docker://{pushed}"))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect).1);
    let digest = text(&inspect).0.trim().to_owned();
    assert!(
        stdout.contains(&digest),
        "push says the registry's digest {digest}: {stdout}"
    );
}

/// Whether this machine reaches Debian's mirror (the one a debootstrapped image's apt sources
/// name), as a build's `RUN apt-get` must.
fn debian_mirror_reachable() -> bool {
    use std::net::ToSocketAddrs;
    ("deb.debian.org", 80)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok())
}

#[test]
fn a_desk_user_builds_a_c_program_on_debian_from_a_registry_into_a_slim_image() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the registry test makes its users as root");
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    if !debian_mirror_reachable() {
        eprintln!(
            "skipped: deb.debian.org is out of reach, and the base image and the build's apt-get both need it"
        );
        return;
    }
    // debian:bookworm as Docker Hub's is made: debootstrap's minbase (cached).
    let minbase =
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/debian-minbase"))
            .output()
            .unwrap();
    assert!(
        minbase.status.success(),
        "debian-minbase: {}",
        text(&minbase).1
    );
    let tarball = PathBuf::from(text(&minbase).0.trim());
    let dir = open_tempdir();
    let registry = Registry::start(dir.path());
    let source_dir = dir.path().join("source");
    std::fs::create_dir_all(&source_dir).unwrap();
    let source = Daemon::start(&source_dir, &[]);
    ok(
        &source,
        &["import", tarball.to_str().unwrap(), "debian:bookworm"],
    );
    let layout = source.state_dir.join("images");
    registry.push(&layout, "debian:bookworm", "debian:bookworm", "v2s2");
    drop(source);

    // A project as a developer has it: a C program, built with Debian's compiler installed
    // by apt in one stage, copied alone into an image of its own.
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    let home = dir.path().join(user.name);
    let ctx = home.join("hello");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("hello.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hello from C, built on Debian\"); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/debian:bookworm AS build\n\
             # The mirror's Release files may be older than their Valid-Until on a machine whose\n\
             # apt is pinned to a snapshot; the test only wants packages.\n\
             RUN apt-get -o Acquire::Check-Valid-Until=false update \\\n\
             \x20&& apt-get install -y --no-install-recommends gcc libc6-dev \\\n\
             \x20&& rm -rf /var/lib/apt/lists/*\n\
             COPY hello.c /src/\n\
             RUN gcc -O2 -static -o /hello /src/hello.c\n\
             FROM scratch\n\
             COPY --from=build /hello /hello\n\
             CMD [\"/hello\"]\n",
            registry.address
        ),
    )
    .unwrap();
    for path in [&ctx, &ctx.join("hello.c"), &ctx.join("Dockerfile")] {
        user.own(path);
    }
    let started = Instant::now();
    ok(&daemon, &["build", "-t", "hello", ctx.to_str().unwrap()]);
    eprintln!("the build took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(
        ok(&daemon, &["run", "--rm", "--network", "none", "hello"]),
        "hello from C, built on Debian\n"
    );
    let images: serde_json::Value =
        serde_json::from_str(&ok(&daemon, &["--json", "images"])).unwrap();
    let hello = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == "hello:latest")
        .unwrap();
    assert_eq!(hello["layers"], 1, "the slim image holds the program alone");

    // The build stage, from the cache: apt's packages installed as dpkg records them, and apt's
    // own user (uid 42, a subordinate id of the desk user's outside) owning its directory.
    let out = ok(
        &daemon,
        &[
            "build",
            "--target",
            "build",
            "-t",
            "hello-build",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.contains("built hello-build:latest"), "{out}");
    assert_eq!(
        ok(
            &daemon,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "hello-build",
                "dpkg-query",
                "-W",
                "-f",
                "${Status}",
                "gcc"
            ]
        ),
        // Passed as it came, no newline added (as Docker passes it).
        "install ok installed"
    );
    assert_eq!(
        ok(
            &daemon,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "hello-build",
                "stat",
                "-c",
                "%u:%g",
                "/var/cache/apt/archives/partial"
            ]
        ),
        "42:0\n"
    );
}
