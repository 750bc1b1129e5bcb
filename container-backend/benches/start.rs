//! Container start, side by side with crun: `/bin/true` in the same busybox root filesystem,
//! alternating runs, wall time from the call to the reaped exit. Needs root, /bin/busybox and
//! crun. Run with `cargo bench -p container-backend --bench start` (N=20 runs each; `N=` to
//! change).
//!
//! crun 1.8 refuses a hybrid cgroup layout (v1 controllers + cgroup2 at /sys/fs/cgroup/unified),
//! so, as DESIGN.md records, the benchmark first enters a private mount namespace with an empty
//! file over `unified/cgroup.controllers`: only crun's view changes, and both runtimes run there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use container_backend::runtime::{self, ContainerConfig, Layout, Limits};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn hide_hybrid_cgroup2() {
    let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if !controllers.exists() {
        return;
    }
    // SAFETY: called first thing in main, while the process is single-threaded, as
    // unshare(CLONE_NEWNS) requires.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    let empty = std::env::temp_dir().join(format!("berth-bench-empty-{}", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    nix::mount::mount(
        Some(&empty),
        controllers,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("start benchmark skipped: needs root and /bin/busybox");
        return;
    }
    hide_hybrid_cgroup2();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).unwrap();
    let crun = Command::new("crun")
        .arg("spec")
        .current_dir(&bundle)
        .status();
    let have_crun = matches!(crun, Ok(s) if s.success());
    if have_crun {
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["process"]["args"] = serde_json::json!(["/bin/true"]);
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["root"]["path"] = serde_json::json!("rootfs");
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    } else {
        eprintln!("crun is missing (apt-get install crun): measuring Berth alone");
    }
    let layout = Layout::detect().unwrap();
    let mut run = 0usize;
    let mut berth = |record: bool, times: &mut Vec<Duration>| {
        run += 1;
        let cdir = dir.path().join(format!("c{run}"));
        std::fs::create_dir_all(&cdir).unwrap();
        let config = ContainerConfig {
            id: format!("bench{}-{run}", std::process::id()),
            hostname: None,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            terminal: false,
            stdin: false,
            log: cdir.join("log"),
            dir: cdir,
            lower: vec![rootfs.clone()],
            args: vec!["/bin/true".into()],
            env: vec![],
            cwd: String::new(),
            user: String::new(),
            limits: Limits::default(),
            network: None,
            hosts: Vec::new(),
        };
        let start = Instant::now();
        let exit = runtime::start(&config, &layout).expect("start").wait();
        let took = start.elapsed();
        assert_eq!(exit.code, 0);
        if record {
            times.push(took);
        }
    };
    let mut crun_id = 0usize;
    let mut crun_run = |record: bool, times: &mut Vec<Duration>| {
        crun_id += 1;
        let start = Instant::now();
        let status = Command::new("crun")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("berth-bench-{}-{crun_id}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        let took = start.elapsed();
        assert!(status.success(), "crun run failed");
        if record {
            times.push(took);
        }
    };
    let (mut b, mut c) = (Vec::new(), Vec::new());
    berth(false, &mut b);
    if have_crun {
        crun_run(false, &mut c);
    }
    for _ in 0..n {
        berth(true, &mut b);
        if have_crun {
            crun_run(true, &mut c);
        }
    }
    let mb = median(b);
    println!(
        "berth runtime run /bin/true: median {:.1} ms over {n} runs",
        mb.as_secs_f64() * 1e3
    );
    if have_crun {
        let mc = median(c);
        println!(
            "crun run /bin/true:          median {:.1} ms over {n} runs",
            mc.as_secs_f64() * 1e3
        );
        println!(
            "ratio berth/crun: {:.2}x",
            mb.as_secs_f64() / mc.as_secs_f64()
        );
    }
}
