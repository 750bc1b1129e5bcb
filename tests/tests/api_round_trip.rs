//! Every request of the API, through a real berthd on a temporary socket and state dir.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

use std::path::PathBuf;
use std::time::Duration;

use berth_api::container::BuildSpec;
use berth_api::error::ErrorKind;
use berth_api::vm::{BootSource, VmEdit, VmSpec, VmState};
use berth_api::{ClientError, Event, Reply, Request};
use berth_e2e::{Daemon, open_tempdir};

/// What a request is expected to do in this build: the exhaustive match makes a new request
/// fail to compile here until the test says what it should do.
enum Expect {
    Answered,
}

fn expectation(request: &Request) -> Expect {
    match request {
        Request::Host
        | Request::Subscribe
        | Request::VmCreate(_)
        | Request::VmList
        | Request::VmShow { .. }
        | Request::VmEdit { .. }
        | Request::VmDelete { .. }
        | Request::Images
        | Request::Rmi { .. }
        | Request::Import { .. }
        | Request::Pull { .. }
        | Request::Push { .. }
        | Request::Login(_)
        | Request::ImageInspect { .. }
        | Request::Save { .. }
        | Request::Load { .. }
        | Request::SystemDf
        | Request::SystemPrune { .. }
        | Request::Export { .. }
        | Request::Commit { .. }
        | Request::Tag { .. }
        | Request::Run(_)
        | Request::Ps { .. }
        | Request::Logs { .. }
        | Request::LogFile { .. }
        | Request::ContainerWait { .. }
        | Request::Attach { .. }
        | Request::ContainerInspect { .. }
        | Request::Exec(_)
        | Request::ExecWait { .. }
        | Request::VolumeCreate { .. }
        | Request::VolumeLs
        | Request::VolumeRm { .. }
        | Request::ContainerStart { .. }
        | Request::ContainerStop { .. }
        | Request::ContainerRestart { .. }
        | Request::ContainerRm { .. }
        | Request::Stats { .. }
        | Request::Build(_)
        | Request::IsoInspect { .. }
        | Request::VmStart { .. }
        | Request::VmStop { .. }
        | Request::VmPause { .. }
        | Request::VmResume { .. }
        | Request::VmSerialInput { .. }
        | Request::VmLog { .. }
        | Request::VmType { .. }
        | Request::VmKey { .. }
        | Request::VmDisplay { .. }
        | Request::VmPointer { .. }
        | Request::VmKeyEvent { .. }
        | Request::VmDisplaySize { .. }
        | Request::VmWheel { .. } => Expect::Answered,
    }
}

async fn next_event(events: &mut berth_api::Events, want: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.next().await.expect("the connection stays open");
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event arrives within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_round_trips() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, mut events) = daemon.client().await;
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, b"not really a kernel").unwrap();

    // Subscribe first so the changes below arrive as events.
    client.subscribe().await.unwrap();

    let host = client.host().await.unwrap();
    assert_eq!(
        host.total.cpus as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(host.vm_count, 0);
    assert_eq!(host.state_dir, daemon.state_dir);

    let created = client
        .vm_create(VmSpec {
            name: "alpha".into(),
            cpus: 1,
            memory: 256 << 20,
            disk: 64 << 20,
            boot: Some(BootSource::Kernel {
                kernel: kernel.clone(),
                initrd: None,
                cmdline: "console=ttyS0".into(),
            }),
            overcommit: false,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.state, VmState::Stopped);
    assert_eq!(created.allocation.cpu, 1.0 / host.total.cpus);
    let disk = created.dir.join("disk.raw");
    assert_eq!(
        std::fs::metadata(&disk).unwrap().len(),
        64 << 20,
        "a sparse disk of the asked size"
    );
    match next_event(&mut events, |e| matches!(e, Event::VmDefined(_))).await {
        Event::VmDefined(info) => assert_eq!(info.config.name, "alpha"),
        other => unreachable!("{other:?}"),
    }

    let listing = client.vm_list().await.unwrap();
    assert_eq!(listing.vms.len(), 1);
    assert!(listing.problems.is_empty());
    assert_eq!(
        client.vm_show("alpha").await.unwrap().config,
        created.config
    );

    let edited = client
        .vm_edit(
            "alpha",
            VmEdit {
                cpus: Some(2),
                cmdline: Some("quiet".into()),
                disk: Some(128 << 20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.config.cpus, 2);
    assert_eq!(
        std::fs::metadata(&disk).unwrap().len(),
        128 << 20,
        "the disk grew"
    );
    match edited.config.boot {
        Some(BootSource::Kernel {
            cmdline, kernel: k, ..
        }) => {
            assert_eq!(cmdline, "quiet");
            assert_eq!(k, kernel.canonicalize().unwrap());
        }
        other => panic!("boot source lost: {other:?}"),
    }
    assert_eq!(client.host().await.unwrap().vm_count, 1);

    // A host sample arrives about once a second while someone listens.
    match next_event(&mut events, |e| matches!(e, Event::HostSample(_))).await {
        Event::HostSample(s) => assert!((0.0..=1.0).contains(&s.memory) && s.memory > 0.0),
        other => unreachable!("{other:?}"),
    }

    // A kernel that is not one: berth-vmm's reason comes back and the VM stays stopped.
    let name = || "alpha".to_owned();
    match client.call(Request::VmStart { name: name() }).await {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
            assert!(e.message.starts_with("cannot start VM `alpha`: "), "{e}");
        }
        other => panic!("a bogus kernel started: {other:?}"),
    }
    assert_eq!(
        client.vm_show("alpha").await.unwrap().state,
        VmState::Stopped
    );
    // What needs a running VM says it is not running.
    for request in [
        Request::VmStop {
            name: name(),
            force: false,
            timeout_secs: None,
        },
        Request::VmPause { name: name() },
        Request::VmResume { name: name() },
        Request::VmSerialInput {
            name: name(),
            data: b"ls\n".to_vec(),
        },
    ] {
        let title = request.title();
        match client.call(request).await {
            Err(ClientError::Api(e)) => {
                assert_eq!(e.kind, ErrorKind::Conflict, "{title}: {e}");
                assert!(e.message.contains("is not running"), "{title}: {e}");
            }
            other => panic!("{title}: expected `not running`, got {other:?}"),
        }
    }
    assert_eq!(
        client
            .call(Request::VmLog {
                name: name(),
                lines: 10
            })
            .await
            .unwrap(),
        Reply::Lines(Vec::new()),
        "a VM that never ran has an empty log"
    );

    // Every request not yet backed by machinery answers a typed error that names it.
    // The screen and input requests need a running VM.
    for request in [
        Request::VmType {
            name: name(),
            text: "hello".into(),
        },
        Request::VmKey {
            name: name(),
            keys: "ctrl+alt+f2".into(),
        },
        Request::VmDisplay { name: name() },
        Request::VmPointer {
            name: name(),
            x: 100,
            y: 200,
            buttons: 1,
        },
        Request::VmWheel {
            name: name(),
            clicks: -1,
        },
        Request::VmKeyEvent {
            name: name(),
            code: 30,
            pressed: true,
        },
        Request::VmDisplaySize {
            name: name(),
            width: 1024,
            height: 768,
        },
    ] {
        let title = request.title();
        match client.call(request).await {
            Err(ClientError::Api(e)) => {
                assert_eq!(e.kind, ErrorKind::Conflict, "{title}: {e}");
                assert!(
                    e.message.contains("is not running"),
                    "{title}: {}",
                    e.message
                );
            }
            other => panic!("{title}: expected `not running`, got {other:?}"),
        }
    }
    // `iso inspect` is answered: a missing file or one that is no ISO is the request's fault.
    for (path, want) in [
        (PathBuf::from("/nonexistent.iso"), "does not exist"),
        (kernel.clone(), "not an ISO 9660 image"),
    ] {
        match client.call(Request::IsoInspect { path }).await {
            Err(ClientError::Api(e)) => {
                assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
                assert!(e.message.contains(want), "{}", e.message);
            }
            other => panic!("iso inspect: expected an error, got {other:?}"),
        }
    }

    // Images: import a root filesystem tarball, list it, remove it.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), b"berth\n").unwrap();
    let tarball = dir.path().join("rootfs.tar");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let import = Request::Import {
        path: tarball.clone(),
        name: "base:1".into(),
    };
    assert!(matches!(expectation(&import), Expect::Answered));
    match client.call(import).await.unwrap() {
        Reply::Images(images) => {
            assert_eq!(images.len(), 1);
            assert_eq!(images[0].reference, "base:1");
            assert_eq!(images[0].layers, 1);
            assert!(images[0].id.starts_with("sha256:"));
        }
        other => panic!("{other:?}"),
    }
    // A registry nobody listens on: answered with the reason (tests/tests/registry.rs pulls
    // from a real one).
    let pull = Request::Pull {
        image: "127.0.0.1:1/nothing:1".into(),
        logins: vec![],
        platform: None,
    };
    assert!(matches!(expectation(&pull), Expect::Answered));
    match client.call(pull).await {
        Err(berth_api::ClientError::Api(e)) => {
            assert!(e.message.contains("127.0.0.1:1/nothing:1"), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    let push = Request::Push {
        image: "base:1".into(),
        destination: Some("127.0.0.1:1/base:1".into()),
        logins: vec![],
    };
    assert!(matches!(expectation(&push), Expect::Answered));
    match client.call(push).await {
        Err(berth_api::ClientError::Api(e)) => {
            assert!(e.message.contains("127.0.0.1:1/base:1"), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    // An exec in a container that does not exist, and a wait for an exec that never was.
    let exec = Request::Exec(berth_api::container::ExecSpec {
        container: "nobody".into(),
        command: vec!["true".into()],
        ..Default::default()
    });
    assert!(matches!(expectation(&exec), Expect::Answered));
    match client.call(exec).await {
        Err(berth_api::ClientError::Api(e)) => {
            assert_eq!(e.kind, berth_api::ErrorKind::NotFound, "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    // Named volumes: made, listed, removed; a bad name refused.
    for request in [
        Request::VolumeCreate { name: "v1".into() },
        Request::VolumeLs,
        Request::VolumeRm { name: "v1".into() },
        Request::VolumeLs,
    ] {
        assert!(matches!(expectation(&request), Expect::Answered));
        match (&request, client.call(request.clone()).await.unwrap()) {
            (Request::VolumeCreate { .. }, Reply::Volumes(v)) => assert_eq!(v[0].name, "v1"),
            (Request::VolumeRm { .. }, Reply::Done) => {}
            (Request::VolumeLs, Reply::Volumes(v)) => assert!(v.len() <= 1),
            other => panic!("{other:?}"),
        }
    }
    match client.volume_create("../up").await {
        Err(ClientError::Api(e)) => assert!(e.message.contains("volume name"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Export and commit of a container that does not exist.
    for request in [
        Request::Export {
            container: "nobody".into(),
        },
        Request::Commit {
            container: "nobody".into(),
            image: "x:1".into(),
        },
    ] {
        assert!(matches!(expectation(&request), Expect::Answered));
        match client.call_with_fds(request).await {
            Err(berth_api::ClientError::Api(e)) => {
                assert_eq!(e.kind, berth_api::ErrorKind::NotFound, "{e:?}")
            }
            other => panic!("{other:?}"),
        }
    }
    let wait = Request::ExecWait { id: 12345 };
    assert!(matches!(expectation(&wait), Expect::Answered));
    match client.call(wait).await {
        Err(berth_api::ClientError::Api(e)) => {
            assert_eq!(e.kind, berth_api::ErrorKind::NotFound, "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    // A login to a registry nobody listens on: answered with where it tried.
    let login = Request::Login(berth_api::registry_login::RegistryLogin {
        scope: "127.0.0.1:1".into(),
        username: "u".into(),
        password: "p".into(),
    });
    assert!(matches!(expectation(&login), Expect::Answered));
    match client.call(login).await {
        Err(berth_api::ClientError::Api(e)) => {
            assert!(e.message.contains("127.0.0.1:1/v2/"), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    // save answers with a pipe carrying a tar; load refuses what is not an archive.
    let pipe = client.save(&["base:1".to_owned()]).await.unwrap();
    let archive = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(pipe), &mut bytes).unwrap();
        bytes
    })
    .await
    .unwrap();
    let names: Vec<String> = tar::Archive::new(&archive[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.contains(&"index.json".to_owned()) && names.contains(&"manifest.json".to_owned()),
        "{names:?}"
    );
    let load = Request::Load {
        path: kernel.clone(),
    };
    assert!(matches!(expectation(&load), Expect::Answered));
    match client.call(load).await {
        Err(ClientError::Api(e)) => assert!(e.message.contains("not"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Disk use: one line a kind; a prune without `all` keeps every named image.
    assert!(matches!(expectation(&Request::SystemDf), Expect::Answered));
    let kinds: Vec<String> = client
        .system_df()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.kind)
        .collect();
    assert_eq!(kinds, ["images", "containers", "volumes", "build cache"]);
    let prune = Request::SystemPrune {
        all: false,
        volumes: false,
    };
    assert!(matches!(expectation(&prune), Expect::Answered));
    match client.call(prune).await.unwrap() {
        Reply::Pruned(p) => assert!(p.images.is_empty(), "{p:?}"),
        other => panic!("{other:?}"),
    }
    let inspect = Request::ImageInspect {
        image: "base:1".into(),
    };
    assert!(matches!(expectation(&inspect), Expect::Answered));
    match client.call(inspect).await.unwrap() {
        Reply::Image(detail) => {
            assert_eq!(detail.reference, "base:1");
            assert_eq!(detail.manifest["config"]["digest"], detail.id.as_str());
            assert_eq!(detail.config["os"], "linux");
        }
        other => panic!("{other:?}"),
    }
    let tag = Request::Tag {
        image: "base:1".into(),
        name: "base:2".into(),
    };
    assert!(matches!(expectation(&tag), Expect::Answered));
    match client.call(tag).await.unwrap() {
        Reply::Images(images) => assert_eq!(images[0].reference, "base:2"),
        other => panic!("{other:?}"),
    }
    client
        .call(Request::Rmi {
            image: "base:2".into(),
        })
        .await
        .unwrap();
    match client.call(Request::Images).await.unwrap() {
        Reply::Images(images) => {
            assert_eq!(
                images
                    .iter()
                    .map(|i| i.reference.as_str())
                    .collect::<Vec<_>>(),
                ["base:1"]
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(daemon.state_dir.join("images/index.json").exists());
    assert_eq!(
        client
            .call(Request::Rmi {
                image: "base:1".into()
            })
            .await
            .unwrap(),
        Reply::Done
    );
    match client
        .call(Request::Rmi {
            image: "base:1".into(),
        })
        .await
    {
        Err(ClientError::Api(e)) => assert_eq!(e.kind, ErrorKind::NotFound, "{e}"),
        other => panic!("{other:?}"),
    }
    let blobs = std::fs::read_dir(daemon.state_dir.join("images/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "removing the only image leaves no blob");
    match client
        .call(Request::Import {
            path: dir.path().join("missing.tar"),
            name: "x".into(),
        })
        .await
    {
        Err(ClientError::Api(e)) => assert!(e.message.contains("does not exist"), "{e}"),
        other => panic!("{other:?}"),
    }

    // A build whose Dockerfile is broken answers with the line, before touching the store.
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nFROB it\n").unwrap();
    let build = Request::Build(Box::new(BuildSpec {
        context: dir.path().into(),
        dockerfile: None,
        tag: "t".into(),
        build_args: vec![],
        network: Default::default(),
        ..Default::default()
    }));
    assert!(matches!(expectation(&build), Expect::Answered));
    match client.call(build).await {
        Err(ClientError::Api(e)) => assert!(
            e.message
                .contains("Dockerfile line 2: unknown instruction `FROB`"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }

    // Deleting removes the directory and the disk, and says so to subscribers.
    assert!(matches!(
        expectation(&Request::VmDelete { name: name() }),
        Expect::Answered
    ));
    client.vm_delete("alpha").await.unwrap();
    assert!(!created.dir.exists());
    next_event(
        &mut events,
        |e| matches!(e, Event::VmRemoved { name } if name == "alpha"),
    )
    .await;
    match client.vm_show("alpha").await {
        Err(ClientError::Api(e)) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(client.call(Request::VmList).await.unwrap(), Reply::VmList(l) if l.vms.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_before_anything_is_touched() {
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    let (client, _events) = daemon.client().await;
    let spec = |name: &str| VmSpec {
        name: name.into(),
        cpus: 1,
        memory: 256 << 20,
        disk: 0,
        boot: None,
        overcommit: false,
        ..Default::default()
    };
    let refused = |r: Result<_, ClientError>| match r {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };

    let e = refused(client.vm_create(spec("../escape")).await);
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("may use only"), "{e}");

    let e = refused(
        client
            .vm_create(VmSpec {
                cpus: 999,
                ..spec("many")
            })
            .await,
    );
    assert!(e.message.contains("more than the 255"), "{e}");
    let e = refused(
        client
            .vm_create(VmSpec {
                memory: 1 << 50,
                ..spec("huge")
            })
            .await,
    );
    assert!(e.message.contains("memory"), "{e}");

    let missing = dir.path().join("missing-kernel");
    let e = refused(
        client
            .vm_create(VmSpec {
                boot: Some(BootSource::Kernel {
                    kernel: missing,
                    initrd: None,
                    cmdline: String::new(),
                }),
                ..spec("nokernel")
            })
            .await,
    );
    assert!(
        e.message.contains("kernel") && e.message.contains("does not exist"),
        "{e}"
    );
    let e = refused(
        client
            .vm_create(VmSpec {
                boot: Some(BootSource::Iso {
                    iso: dir.path().to_owned(),
                    entry: None,
                }),
                ..spec("dir-iso")
            })
            .await,
    );
    assert!(e.message.contains("not a regular file"), "{e}");

    // Nothing was created for any of them.
    let vms_dir = daemon.state_dir.join("vms");
    assert_eq!(
        std::fs::read_dir(&vms_dir).unwrap().count(),
        0,
        "no VM directory was made"
    );
    assert!(client.vm_list().await.unwrap().vms.is_empty());

    client.vm_create(spec("one")).await.unwrap();
    let e = refused(client.vm_create(spec("one")).await);
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    let e = refused(
        client
            .vm_edit(
                "one",
                VmEdit {
                    cmdline: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    assert!(e.message.contains("needs a kernel"), "{e}");
    let e = refused(client.vm_edit("ghost", VmEdit::default()).await);
    assert_eq!(e.kind, ErrorKind::NotFound);
}
