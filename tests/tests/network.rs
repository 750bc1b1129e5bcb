//! Containers and VMs on the network through berthd and berthctl, as a user runs them, under a
//! root daemon and a user's own. Containers: a published port answers on the host's loopback,
//! the container reaches a server on the host, `--network none` has loopback only, and the
//! ports show in `ps` and `port`. VMs: the probe guest's virtio-net card gets a DHCP offer from
//! passt, greets a server on the host through the gateway, and echoes what the host sends to a
//! forwarded port. Nothing leaves this machine: the servers are on loopback.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed assertion

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::net::{free_port, http_get};
use berth_e2e::user::TestUser;
use berth_e2e::{Daemon, busybox_tarball, on_path, open_tempdir, text};
use common::probe::{NET_ECHO_PORT, NET_HOST_PORT, ProbeFinish};

/// A one-answer HTTP server on the host's loopback; its port.
fn host_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The same checks under whichever daemon: (daemon, the busybox tarball it may read, a
/// directory it may read, the network a container is on when `run` names none).
fn containers_are_on_the_network(daemon: &Daemon, tarball: &Path, dir: &Path, default: &str) {
    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // Without --network, the daemon's default: the bridge under root (as Docker's), pasta
    // under a user (as rootless Podman's).
    let out = daemon.berthctl(&["run", "-d", "--name", "plain", "busybox", "sleep", "60"]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    let inspected: serde_json::Value =
        serde_json::from_slice(&daemon.berthctl(&["inspect", "plain"]).stdout).unwrap();
    assert_eq!(inspected["network"], default, "{inspected}");
    assert!(daemon.berthctl(&["rm", "-f", "plain"]).status.success());

    // A published port on pasta: busybox httpd serves the container's /etc on the host's
    // loopback.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "pasta",
        "-p",
        &publish,
        "busybox",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    let id = text(&out).0.trim().to_owned();
    let answer = http_get(port, "/hostname");
    assert!(answer.contains(" 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(&format!("\n{}\n", &id[..12])), "{answer}");
    assert_eq!(
        text(&daemon.berthctl(&["port", "web"])).0,
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    let inspected: serde_json::Value =
        serde_json::from_slice(&daemon.berthctl(&["inspect", "web"]).stdout).unwrap();
    assert_eq!(inspected["network"], "pasta", "{inspected}");
    assert_eq!(inspected["ports"][0]["host_port"], port, "{inspected}");
    assert_eq!(inspected["ports"][0]["target_port"], 80, "{inspected}");
    let ps = text(&daemon.berthctl(&["ps"])).0;
    assert!(
        ps.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "ps shows the port:\n{ps}"
    );

    // The same host port again is refused with pasta's reason, and the first goes on.
    let out = daemon.berthctl(&[
        "run",
        "-d",
        "--network",
        "pasta",
        "-p",
        &publish,
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("pasta could not connect the container"),
        "{}",
        text(&out).1
    );
    assert!(http_get(port, "/hostname").contains(" 200 OK\r\n"));

    // Stopped, its port is free again (pasta ended with it).
    let out = daemon.berthctl(&["stop", "-t", "1", "web"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} is still held");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Out: the container reaches a server on the host's loopback through its gateway, which
    // pasta maps to the host.
    let server = host_server("hello from the host\n");
    let fetch = format!(
        "gw=$(busybox ip route | busybox awk '/default/ {{print $3}}'); busybox wget -q -O - http://$gw:{server}/"
    );
    let out = daemon.berthctl(&["run", "busybox", "sh", "-c", &fetch]);
    assert_eq!(
        text(&out),
        ("hello from the host\n".into(), String::new()),
        "{}",
        daemon.log()
    );

    // Builds: RUN steps are on the network too, and leave no trace of it (the /etc files mounted
    // for it) in the image; `build --network none` is hermetic.
    let context = dir.join("fetching");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM busybox\nRUN gw=$(busybox ip route | busybox awk '/default/ {{print $3}}') && busybox wget -q -O /fetched http://$gw:{server}/\n"
        ),
    )
    .unwrap();
    let context = context.to_str().unwrap();
    let out = daemon.berthctl(&["build", "-t", "fetched", context]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    let shown = |args: &[&str]| {
        let mut all = vec!["run", "--network", "none", "fetched"];
        all.extend_from_slice(args);
        text(&daemon.berthctl(&all))
    };
    assert_eq!(shown(&["cat", "/fetched"]).0, "hello from the host\n");
    assert_eq!(shown(&["ls", "/etc"]).0, "group\npasswd\n");
    let out = daemon.berthctl(&["build", "--network", "none", "-t", "offline", context]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).0);
    assert!(
        text(&out).1.contains("RUN exited with code"),
        "{}",
        text(&out).1
    );

    // -P publishes what the Dockerfile EXPOSEs on a free host port, which `port` tells.
    let exposing = dir.join("exposing");
    std::fs::create_dir_all(&exposing).unwrap();
    std::fs::write(
        exposing.join("Dockerfile"),
        "FROM busybox\nEXPOSE 80/tcp\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/etc\"]\n",
    )
    .unwrap();
    let out = daemon.berthctl(&["build", "-t", "exposing", exposing.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["run", "-d", "-P", "--name", "exposed", "exposing"]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    let port_line = text(&daemon.berthctl(&["port", "exposed"])).0;
    let host_port: u16 = port_line
        .trim()
        .strip_prefix("80/tcp -> 0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("one EXPOSEd port published: {port_line:?}"));
    assert!(http_get(host_port, "/hostname").contains(" 200 OK\r\n"));
    let out = daemon.berthctl(&["rm", "-f", "exposed"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // --network none: loopback only.
    let out = daemon.berthctl(&[
        "run",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/net/dev",
    ]);
    let (stdout, stderr) = text(&out);
    let interfaces = interfaces_in_proc_net_dev(&stdout);
    assert_eq!(interfaces, ["lo"], "{stdout}{stderr}");
    let out = daemon.berthctl(&[
        "run",
        "--network",
        "none",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    assert!(
        text(&out)
            .1
            .contains("a container without a network publishes no ports"),
        "{}",
        text(&out).1
    );
    let out = daemon.berthctl(&["run", "-p", "8080:80", "-p", "8080:81", "busybox", "true"]);
    assert!(
        text(&out)
            .1
            .contains("host port 8080/tcp is published twice"),
        "{}",
        text(&out).1
    );

    containers_reach_each_other_on_the_bridge(daemon);
}

/// On the bridge network: containers reach each other by name (a neighbour that starts later
/// too), the host by `host.containers.internal`, and a published port from the host; a
/// container that went is no longer named; its ports are free again.
fn containers_reach_each_other_on_the_bridge(daemon: &Daemon) {
    let run = |args: &[&str]| {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let out = daemon.berthctl(&all);
        let (stdout, stderr) = text(&out);
        // A container's output (what failed in it) is on stdout.
        assert!(out.status.success(), "{stdout}{stderr}\n{}", daemon.log());
        stdout
    };
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let front = run(&[
        "-d",
        "--name",
        "front",
        "--network",
        "bridge",
        "-p",
        &publish,
        "busybox",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/etc",
    ]);
    let db = run(&[
        "-d",
        "--network",
        "bridge",
        "--name",
        "db",
        "busybox",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let (front, db) = (&front.trim()[..12], &db.trim()[..12]);

    // From the host through the published port: front answers, and its /etc/hosts names db,
    // which started after it.
    let hosts = http_get(port, "/hosts");
    assert!(hosts.contains(" 200 OK\r\n"), "{hosts}");
    let db_line = hosts
        .lines()
        .find(|l| l.contains("\tdb "))
        .unwrap_or_else(|| panic!("front's /etc/hosts names db: {hosts}"));
    assert!(db_line.starts_with("10.89."), "{db_line}");
    let inspected: serde_json::Value =
        serde_json::from_slice(&daemon.berthctl(&["inspect", "db"]).stdout).unwrap();
    assert_eq!(inspected["network"], "bridge", "{inspected}");
    assert_eq!(
        Some(db_line.split('\t').next().unwrap()),
        inspected["address"].as_str(),
        "{inspected}"
    );

    // Between containers, by name and by short id, and to the host's loopback.
    let server = host_server("hello from the host\n");
    let script = format!(
        "busybox wget -q -O - http://db/hostname && busybox wget -q -O - http://{front}:8080/hostname && busybox wget -q -O - http://host.containers.internal:{server}/"
    );
    assert_eq!(
        run(&[
            "--rm",
            "--network",
            "bridge",
            "busybox",
            "sh",
            "-c",
            &script
        ]),
        format!("{db}\n{front}\nhello from the host\n")
    );

    // db gone: its name is gone with it, and front's port is free once front is.
    let out = daemon.berthctl(&["rm", "-f", "db"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "busybox",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://db/hostname",
    ]);
    let said = format!("{}{}", text(&out).0, text(&out).1);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("bad address 'db"), "{said}");
    assert!(!http_get(port, "/hosts").contains("\tdb "));
    let out = daemon.berthctl(&["rm", "-f", "front"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} is free once front is gone"
    );
}

/// The interface names in a container's `/proc/net/dev` (two header lines, then `name: counters`).
fn interfaces_in_proc_net_dev(text: &str) -> Vec<&str> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect()
}

/// Whether pasta and passt are installed and this machine has a default route, which they
/// need.
fn pasta_installed() -> bool {
    let found = on_path("pasta") && on_path("passt");
    if !found {
        eprintln!("skipped: pasta or passt is missing (apt-get install passt)");
    }
    let online = container_backend::runtime::network::host_has_route();
    if !online {
        eprintln!("skipped: this machine has no default route, which passt needs");
    }
    found && online
}

/// A VM on the network, under whichever daemon (`owner`: the user it runs as).
fn a_vm_is_on_the_network(daemon: &Daemon, dir: &Path, owner: Option<&TestUser>) {
    a_vm_is_on(daemon, dir, owner, "nat");
}

/// The probe on network `mode` (`nat`: passt; `bridge`: the Berth network, whose DHCP server,
/// gateway and carried forwards stand in for passt's): its card's DHCP offer (on the bridge,
/// an address of the VMs' half of 10.89.0.0/16), its greeting to the host's loopback through
/// the gateway answered, a datagram to its forwarded port echoed, and the port free again
/// after; on passt, a port in use and `--network none` too.
fn a_vm_is_on(daemon: &Daemon, dir: &Path, owner: Option<&TestUser>, mode: &str) {
    // One probe at a time: each greets the same host port.
    static GREETED_PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = GREETED_PORT.lock().unwrap_or_else(|e| e.into_inner());
    // A name of its own per daemon and network: the probe greets from a port its card's
    // address gives, and passt and pasta keep that port for the host side of its flow, which
    // an earlier probe's helper (the lingering network's pasta) may still hold.
    let name = format!("{}probe-{mode}", if owner.is_some() { "desk-" } else { "" });
    let name = name.as_str();
    common::create_probe_vm(daemon, dir, name, ProbeFinish::Net, owner);
    let forward_port = free_port();
    let forward = format!("udp:{forward_port}:{NET_ECHO_PORT}");
    let out = daemon.berthctl(&["vm", "edit", name, "--network", mode, "--forward", &forward]);
    let shown = text(&out).0;
    let network = shown
        .lines()
        .find_map(|l| l.strip_prefix("Network"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mac = berth_api::network::MacAddress::for_vm(name);
    assert_eq!(
        network,
        format!("{mode}, {mac}; forwards udp:127.0.0.1:{forward_port}:{NET_ECHO_PORT}"),
        "{shown}"
    );

    // The probe greets the host's loopback through the gateway's address, which passt maps.
    let greeted = UdpSocket::bind(("127.0.0.1", NET_HOST_PORT)).unwrap();
    greeted
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let out = daemon.berthctl(&["vm", "start", name]);
    assert!(
        out.status.success(),
        "{}
{}",
        text(&out).1,
        daemon.log()
    );
    common::serial_log_shows(daemon, name, &format!("BERTH-PROBE: net mac {mac} link up"));
    let offered = match mode {
        "bridge" => "BERTH-PROBE: net offer type 2 address 10.89.128.",
        _ => "BERTH-PROBE: net offer type 2 address ",
    };
    common::serial_log_shows(daemon, name, offered);
    if mode == "bridge" {
        // A container on the bridge finds the VM by its name, at the address it was offered.
        let log = text(&daemon.berthctl(&["vm", "log", name])).0;
        let address = log
            .split(offered)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|last| format!("10.89.128.{last}"))
            .unwrap();
        // `vm show` tells the address too.
        let shown = text(&daemon.berthctl(&["vm", "show", name])).0;
        assert!(
            shown.contains(&format!("Address      {address}\n")),
            "{shown}"
        );
        let tarball = busybox_tarball(dir, owner).unwrap();
        let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
        assert!(out.status.success(), "{}", text(&out).1);
        let out = daemon.berthctl(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "busybox",
            "cat",
            "/etc/hosts",
        ]);
        assert!(
            text(&out).0.contains(&format!("{address}\t{name}\n")),
            "{}{}",
            text(&out).0,
            text(&out).1
        );
    }
    let mut greeting = [0u8; 64];
    let (len, from) = greeted.recv_from(&mut greeting).unwrap();
    assert_eq!(&greeting[..len], b"hello from the probe");
    // Answered, and answered again every 2 s until the probe says it heard: a datagram may be
    // lost (one waiting on the bridge for the guest's address to be resolved), and a UDP
    // server that is not heard is asked again; here the host repeats instead.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        greeted.send_to(b"hello from the host", from).unwrap();
        let heard = Instant::now() + Duration::from_secs(2);
        while Instant::now() < heard
            && !text(&daemon.berthctl(&["vm", "log", name]))
                .0
                .contains("BERTH-PROBE: net reply")
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Instant::now() >= deadline || Instant::now() < heard {
            break;
        }
    }
    common::serial_log_shows(daemon, name, "BERTH-PROBE: net reply hello from the host");
    let log = text(&daemon.berthctl(&["vm", "log", name])).0;
    assert!(
        log.contains(" mtu 1500\n"),
        "passt hands out the card's MTU:\n{log}"
    );

    // The forwarded host port reaches the guest, whose echo comes back.
    common::serial_log_shows(daemon, name, "BERTH-PROBE: net echo ready");
    // Sent again each second until the echo comes, as a UDP client does: a datagram may be
    // lost (one that meets a neighbour entry still being resolved).
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut echo = [0u8; 64];
    let mut echoed = None;
    for _ in 0..10 {
        client
            .send_to(b"through the forward", ("127.0.0.1", forward_port))
            .unwrap();
        if let Ok(len) = client.recv(&mut echo) {
            echoed = Some(len);
            break;
        }
    }
    let len = echoed.unwrap_or_else(|| panic!("no echo in 10 s\n{}", daemon.log()));
    assert_eq!(&echo[..len], b"through the forward");

    // The probe powers off after its echo: passt ends with the VM, the port is free again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&daemon.berthctl(&["vm", "show", name]))
        .0
        .contains("stopped")
    {
        assert!(Instant::now() < deadline, "the probe did not power off");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(("127.0.0.1", forward_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {forward_port} is still held"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(greeted);
    if mode != "nat" {
        let out = daemon.berthctl(&["vm", "delete", name]);
        assert!(out.status.success(), "{}", text(&out).1);
        return;
    }

    // A forwarded port in use: the VM does not start, and passt's reason is given.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let out = daemon.berthctl(&[
        "vm",
        "edit",
        name,
        "--forward",
        &format!("tcp:{taken_port}:22"),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["vm", "start", name]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out).1;
    assert!(
        said.contains("its network did not start: the host port tcp:127.0.0.1:")
            && said.contains(&format!("{taken_port}:22 is in use")),
        "{said}"
    );
    assert!(!said.contains("syslog"), "{said}");

    // --network none: the guest has no card where the probe looks for one.
    let out = daemon.berthctl(&["vm", "edit", name, "--network", "none"]);
    assert!(
        text(&out)
            .1
            .contains("a VM without a network has no ports to forward"),
        "{}",
        text(&out).1
    );
    let out = daemon.berthctl(&["vm", "edit", name, "--network", "none", "--no-forwards"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("Network      none"),
        "{}",
        text(&out).0
    );
    let out = daemon.berthctl(&["vm", "start", name]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    common::serial_log_shows(daemon, name, "BERTH-PROBE: net init failed at step 1");
}

/// Offline (no default route: pasta cannot start), containers on pasta run on loopback and
/// publishing a port there is refused with the reason; the Berth network (the root daemon's
/// default) still joins containers, with no way out; builds go on.
#[test]
fn an_offline_hosts_containers_run_on_loopback() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), None) else {
        return;
    };
    let daemon = Daemon::start_offline(dir.path(), &[]);
    let out = daemon.berthctl(&["import", tarball.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let interfaces_on = |network: &str| {
        let out = daemon.berthctl(&[
            "run",
            "--network",
            network,
            "busybox",
            "cat",
            "/proc/net/dev",
        ]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}\n{}", daemon.log());
        interfaces_in_proc_net_dev(&stdout)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(interfaces_on("pasta"), ["lo"]);
    assert_eq!(interfaces_on("bridge"), ["lo", "eth0"]);
    let out = daemon.berthctl(&[
        "run",
        "--network",
        "pasta",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("this host has no default route"),
        "{}",
        text(&out).1
    );
    let context = dir.path().join("offline");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /built\n",
    )
    .unwrap();
    let out = daemon.berthctl(&["build", "-t", "built", context.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn a_root_daemons_containers_are_on_the_network() {
    if !nix::unistd::Uid::effective().is_root() || !pasta_installed() {
        return;
    }
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), None) else {
        return;
    };
    let daemon = Daemon::start(dir.path(), &[]);
    containers_are_on_the_network(&daemon, &tarball, dir.path(), "bridge");
    // Its containers all gone, the Berth network lingers for the next one; the daemon stopped
    // (SIGTERM, as systemd stops it), it goes.
    let netns = daemon.state_dir.join("network/netns");
    let is_namespace = |path: &Path| {
        nix::sys::statfs::statfs(path)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
    };
    let running = text(&daemon.berthctl(&["ps"])).0;
    assert_eq!(running.lines().count(), 1, "no container runs: {running}");
    assert!(is_namespace(&netns), "the network lingers");
    drop(daemon);
    assert!(!is_namespace(&netns), "the network went with the daemon");
}

#[test]
fn a_desk_users_containers_are_on_the_network() {
    if !pasta_installed() {
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let Some(tarball) = busybox_tarball(dir.path(), Some(&user)) else {
        return;
    };
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    containers_are_on_the_network(&daemon, &tarball, dir.path(), "pasta");
}

#[test]
fn a_root_daemons_vm_is_on_the_network() {
    if !nix::unistd::Uid::effective().is_root()
        || !common::kvm_available("a_root_daemons_vm_is_on_the_network")
        || !pasta_installed()
    {
        return;
    }
    let dir = open_tempdir();
    let daemon = Daemon::start(dir.path(), &[]);
    a_vm_is_on(&daemon, dir.path(), None, "bridge");
    a_vm_is_on_the_network(&daemon, dir.path(), None);
}

#[test]
fn a_desk_users_vm_is_on_the_network() {
    if !common::kvm_available("a_desk_users_vm_is_on_the_network") || !pasta_installed() {
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    a_vm_is_on(&daemon, dir.path(), Some(&user), "bridge");
    a_vm_is_on_the_network(&daemon, dir.path(), Some(&user));
}

/// A network namespace the test makes, named after the test process, gone when dropped.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(suffix: &str) -> TestNetns {
        let name = format!("berth-{}-{suffix}", std::process::id());
        let status = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip (iproute2)");
        assert!(status.success(), "ip netns add {name}");
        TestNetns { name }
    }

    fn path(&self) -> std::path::PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS…`, which must succeed.
    fn ip(&self, args: &str) {
        let status = std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args.split(' '))
            .status()
            .unwrap();
        assert!(status.success(), "ip -n {} {args}", self.name);
    }

    /// Runs `f` on a thread inside the namespace (its sockets are the namespace's).
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let namespace = std::fs::File::open(self.path()).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `--network bridge:NAME`: the VM's card is a TAP on a bridge of the host's, and the guest a
/// machine on that network: its DHCP server's address, a greeting to a host on it answered, a
/// datagram from that host echoed; no forwards there; the TAP gone with the VM. The "host" is
/// a network namespace of the test's with a bridge, busybox udhcpd on it, and berthd in it.
#[test]
fn a_vm_on_a_host_bridge_is_a_machine_on_that_network() {
    if !nix::unistd::Uid::effective().is_root()
        || !common::kvm_available("a_vm_on_a_host_bridge_is_a_machine_on_that_network")
        || !Path::new("/bin/busybox").exists()
    {
        return;
    }
    let dir = open_tempdir();
    let lan = TestNetns::new("lan");
    lan.ip("link set lo up");
    lan.ip("link add lan0 type bridge");
    lan.ip("addr add 10.77.0.1/24 dev lan0");
    lan.ip("link set lan0 up");
    let conf = dir.path().join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 10.77.0.50\nend 10.77.0.60\ninterface lan0\nlease_file {}\nopt router 10.77.0.1\nopt subnet 255.255.255.0\n",
            dir.path().join("leases").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("leases"), "").unwrap();
    let _dhcp = common::xvfb::Killed(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lan.name, "/bin/busybox", "udhcpd", "-f"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let daemon = Daemon::start_in_netns(dir.path(), &lan.path(), &[]);
    common::create_probe_vm(&daemon, dir.path(), "lanprobe", ProbeFinish::Net, None);
    // Forwards make no sense there: the guest has an address of its own on that network.
    let out = daemon.berthctl(&[
        "vm",
        "edit",
        "lanprobe",
        "--network",
        "bridge:lan0",
        "--forward",
        "udp:5353:7",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("reached at its own address"),
        "{}",
        text(&out).1
    );
    let out = daemon.berthctl(&["vm", "edit", "lanprobe", "--network", "bridge:lan0"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let mac = berth_api::network::MacAddress::for_vm("lanprobe");
    assert!(
        text(&out)
            .0
            .contains(&format!("Network      bridge:lan0, {mac}\n")),
        "{}",
        text(&out).0
    );

    // A host on that network answers the guest's greeting.
    let greeted = lan.spawn(|| {
        let socket = UdpSocket::bind(("10.77.0.1", NET_HOST_PORT)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut greeting = [0u8; 64];
        let (len, from) = socket.recv_from(&mut greeting).unwrap();
        socket.send_to(b"hello from the lan", from).unwrap();
        (greeting[..len].to_vec(), from)
    });
    let out = daemon.berthctl(&["vm", "start", "lanprobe"]);
    assert!(out.status.success(), "{}\n{}", text(&out).1, daemon.log());
    // udhcpd's address, within its range (it picks one by the card's address).
    let offered = "BERTH-PROBE: net offer type 2 address 10.77.0.";
    common::serial_log_shows(&daemon, "lanprobe", offered);
    let log = text(&daemon.berthctl(&["vm", "log", "lanprobe"])).0;
    let address = log
        .split(offered)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|last| last.parse::<u8>().ok())
        .map(|last| std::net::Ipv4Addr::new(10, 77, 0, last))
        .unwrap_or_else(|| panic!("no offer: {log}"));
    assert!((50..=60).contains(&address.octets()[3]), "{log}");
    assert!(
        log.contains(&format!("address {address} router 10.77.0.1")),
        "{log}"
    );
    let (greeting, from) = greeted.join().unwrap();
    assert_eq!(greeting, b"hello from the probe");
    assert_eq!(from.ip(), address);
    common::serial_log_shows(
        &daemon,
        "lanprobe",
        "BERTH-PROBE: net reply hello from the lan",
    );
    // The same host's datagram to the guest's echo port comes back (sent again each second,
    // as a UDP client does).
    common::serial_log_shows(&daemon, "lanprobe", "BERTH-PROBE: net echo ready");
    let echoed = lan
        .spawn(move || {
            let client = UdpSocket::bind("10.77.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut echo = [0u8; 64];
            for _ in 0..10 {
                client
                    .send_to(b"across the lan", (address, NET_ECHO_PORT))
                    .unwrap();
                if let Ok(len) = client.recv(&mut echo) {
                    return echo[..len].to_vec();
                }
            }
            Vec::new()
        })
        .join()
        .unwrap();
    assert_eq!(echoed, b"across the lan");
    // The probe powers off after its echo; its TAP goes with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&daemon.berthctl(&["vm", "show", "lanprobe"]))
        .0
        .contains("stopped")
    {
        assert!(Instant::now() < deadline, "the probe did not power off");
        std::thread::sleep(Duration::from_millis(100));
    }
    let links = std::process::Command::new("ip")
        .args(["-n", &lan.name, "-o", "link", "show", "master", "lan0"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&links.stdout), "");
}

/// A user's daemon cannot put a VM on a bridge of the host's, and says what it has instead.
#[test]
fn a_users_daemon_refuses_a_host_bridge_saying_why() {
    if !common::kvm_available("a_users_daemon_refuses_a_host_bridge_saying_why") {
        return;
    }
    let Some(user) = TestUser::desk() else { return };
    let dir = open_tempdir();
    let daemon = Daemon::start_as(&user, dir.path(), &[]);
    common::create_probe_vm(
        &daemon,
        dir.path(),
        "lanprobe",
        ProbeFinish::Net,
        Some(&user),
    );
    let out = daemon.berthctl(&["vm", "edit", "lanprobe", "--network", "bridge:br0"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = daemon.berthctl(&["vm", "start", "lanprobe"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out).1;
    assert!(said.contains("needs the system daemon (root)"), "{said}");
    assert!(said.contains("--network bridge"), "{said}");
    assert!(
        text(&daemon.berthctl(&["vm", "show", "lanprobe"]))
            .0
            .contains("stopped")
    );
}
