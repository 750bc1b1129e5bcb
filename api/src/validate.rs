//! Checks every request passes before the daemon touches anything. They live here, not in the
//! daemon, so the GUI can show the same messages inline while the user types.
//! Checks that need the daemon's view of the filesystem (paths) live in the daemon.

use crate::network::{ContainerNetwork, PortForward, VmNetwork};
use crate::size::format_size;
use crate::utilisation::Resources;

/// Longest VM or container name.
pub const MAX_NAME_LEN: usize = 64;
/// Hard limits that hold even with overcommit: what KVM and a sane machine accept.
pub const MAX_VCPUS: u32 = 255;
pub const MIN_MEMORY: u64 = 64 << 20;
pub const MAX_MEMORY: u64 = 1 << 40;
pub const MIN_DISK: u64 = 1 << 20;
pub const MAX_DISK: u64 = 64 << 40;
/// Longest kernel command line the Linux boot protocol takes on x86 (including the NUL).
pub const MAX_CMDLINE: usize = 2047;

/// A name for a VM or container: it becomes a directory name, so a safe character set only.
pub fn name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {kind} needs a name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{kind} name is {} characters long; at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!(
            "{kind} name `{name}` may use only letters, digits, `.`, `_` and `-`, and must start with a letter or digit"
        ));
    }
    Ok(())
}

/// A container's environment variable as `-e` gives it: `NAME=VALUE`, a name without `=` or
/// NUL (the kernel's environment cannot hold them).
pub fn env_var(var: &str) -> Result<(), String> {
    match var.split_once('=') {
        Some((name, _)) if !name.is_empty() && !var.contains('\0') => Ok(()),
        _ => Err(format!(
            "environment variable `{var}`: expected NAME=VALUE, without NUL characters"
        )),
    }
}

/// A container's working directory: an absolute path without NUL.
pub fn workdir(dir: &str) -> Result<(), String> {
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err(format!(
            "working directory `{dir}`: give an absolute path (e.g. /app)"
        ));
    }
    Ok(())
}

/// A container's hostname: dot-separated labels of letters, digits and `-` (RFC 1123), at
/// most 64 characters (the kernel's limit).
pub fn hostname(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 64 || !name.split('.').all(label_ok) {
        return Err(format!(
            "hostname `{name}`: letters, digits and `-` in dot-separated labels, at most 64 characters"
        ));
    }
    Ok(())
}

/// CPUs, memory and disk of a VM against the host's totals. Beyond the totals is allowed only
/// with `overcommit`; beyond the hard limits never.
pub fn vm_resources(vm: &Resources, host: &Resources, overcommit: bool) -> Result<(), String> {
    let cpus = vm.cpus as u32;
    if cpus == 0 {
        return Err("a VM needs at least 1 CPU".into());
    }
    if cpus > MAX_VCPUS {
        return Err(format!(
            "{cpus} CPUs is more than the {MAX_VCPUS} a VM can have"
        ));
    }
    if vm.memory < MIN_MEMORY {
        return Err(format!(
            "{} of memory is too little; a VM needs at least {}",
            format_size(vm.memory),
            format_size(MIN_MEMORY)
        ));
    }
    if vm.memory > MAX_MEMORY {
        return Err(format!(
            "{} of memory is more than the {} a VM can have",
            format_size(vm.memory),
            format_size(MAX_MEMORY)
        ));
    }
    if vm.disk != 0 && vm.disk < MIN_DISK {
        return Err(format!(
            "a disk of {} is too small; at least {}",
            format_size(vm.disk),
            format_size(MIN_DISK)
        ));
    }
    if vm.disk > MAX_DISK {
        return Err(format!(
            "a disk of {} is larger than the {} allowed",
            format_size(vm.disk),
            format_size(MAX_DISK)
        ));
    }
    if !overcommit {
        let hint = "pass --overcommit to allow it";
        if vm.cpus > host.cpus {
            return Err(format!(
                "{cpus} CPUs is more than the host's {}; {hint}",
                host.cpus
            ));
        }
        if vm.memory > host.memory {
            return Err(format!(
                "{} of memory is more than the host's {}; {hint}",
                format_size(vm.memory),
                format_size(host.memory)
            ));
        }
        if vm.disk > host.disk {
            return Err(format!(
                "a disk of {} is larger than the host's {} filesystem; {hint}",
                format_size(vm.disk),
                format_size(host.disk)
            ));
        }
    }
    Ok(())
}

/// A container's published ports: none without a network, no host port twice.
pub fn ports(network: ContainerNetwork, ports: &[PortForward]) -> Result<(), String> {
    forwards_of(
        network != ContainerNetwork::None,
        ports,
        "-p with --network none: a container without a network publishes no ports",
        "published",
    )
}

/// A VM's port forwards: none without a network, no host port twice.
pub fn vm_forwards(network: &VmNetwork, forwards: &[PortForward]) -> Result<(), String> {
    if let VmNetwork::HostBridge(bridge) = network
        && !forwards.is_empty()
    {
        return Err(format!(
            "--forward with --network bridge:{bridge}: a VM on a bridge of the host's is reached at its own address on that network; forwards are for `nat` and `bridge`"
        ));
    }
    forwards_of(
        *network != VmNetwork::None,
        forwards,
        "--forward with --network none: a VM without a network has no ports to forward",
        "forwarded",
    )
}

/// A network interface's name as Linux takes one: 1 to 15 bytes, none of them `/`, `:`,
/// whitespace or a control character, and neither `.` nor `..`.
pub fn interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "`{name}` is no interface name (1 to 15 characters)"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{name}` is no interface name (no `/`, `:` or spaces)"
        ));
    }
    Ok(())
}

/// A VM's port forwards as a form's field has them, `[tcp:|udp:][IP:]HOST:GUEST` separated by
/// spaces or commas, parsed and checked as berthd checks them (the wizard, the VM's details).
pub fn parse_vm_forwards(network: &VmNetwork, text: &str) -> Result<Vec<PortForward>, String> {
    let forwards = text
        .split([' ', ','])
        .filter(|f| !f.is_empty())
        .map(PortForward::parse_vm_forward)
        .collect::<Result<Vec<_>, _>>()?;
    vm_forwards(network, &forwards)?;
    Ok(forwards)
}

/// Forwards are refused with `offline` when there is no network, and when a host port and
/// protocol come twice (`done`: what the user's word for it is).
fn forwards_of(
    networked: bool,
    forwards: &[PortForward],
    offline: &str,
    done: &str,
) -> Result<(), String> {
    if !networked && !forwards.is_empty() {
        return Err(offline.into());
    }
    let twice = forwards.iter().enumerate().find_map(|(i, p)| {
        forwards[..i]
            .iter()
            .any(|q| q.protocol == p.protocol && q.host_port == p.host_port)
            .then_some(p)
    });
    match twice {
        Some(p) => Err(format!(
            "host port {}/{} is {done} twice",
            p.host_port,
            p.protocol.name()
        )),
        None => Ok(()),
    }
}

/// A kernel command line: bounded length, no NUL, no newline (it is passed as one C string).
pub fn cmdline(cmdline: &str) -> Result<(), String> {
    if cmdline.len() >= MAX_CMDLINE {
        return Err(format!(
            "the kernel command line is {} bytes; at most {}",
            cmdline.len(),
            MAX_CMDLINE - 1
        ));
    }
    if cmdline.contains(['\0', '\n', '\r']) {
        return Err("the kernel command line may not contain NUL or line breaks".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_need_a_network_and_distinct_host_ports() {
        let p = |s: &str| s.parse::<PortForward>().unwrap();
        assert!(ports(ContainerNetwork::Pasta, &[p("8080:80"), p("8080:80/udp")]).is_ok());
        assert_eq!(
            ports(
                ContainerNetwork::Pasta,
                &[p("8080:80"), p("127.0.0.1:8080:81")]
            ),
            Err("host port 8080/tcp is published twice".into())
        );
        assert!(
            ports(ContainerNetwork::None, &[p("8080:80")])
                .unwrap_err()
                .contains("publishes no ports")
        );
        assert!(ports(ContainerNetwork::None, &[]).is_ok());
    }

    #[test]
    fn vm_forwards_need_a_network_and_distinct_host_ports() {
        let f = |s: &str| PortForward::parse_vm_forward(s).unwrap();
        assert!(vm_forwards(&VmNetwork::Nat, &[f("tcp:2222:22"), f("udp:2222:22")]).is_ok());
        assert_eq!(
            vm_forwards(
                &VmNetwork::Nat,
                &[f("tcp:2222:22"), f("tcp:0.0.0.0:2222:23")]
            ),
            Err("host port 2222/tcp is forwarded twice".into())
        );
        assert!(
            vm_forwards(&VmNetwork::None, &[f("tcp:2222:22")])
                .unwrap_err()
                .contains("no ports to forward")
        );
        let lan = VmNetwork::HostBridge("br0".into());
        assert!(vm_forwards(&lan, &[]).is_ok());
        assert!(
            vm_forwards(&lan, &[f("tcp:2222:22")])
                .unwrap_err()
                .contains("reached at its own address on that network")
        );
    }

    #[test]
    fn host_bridges_are_named_as_linux_names_interfaces() {
        assert_eq!(
            "bridge:br0".parse::<VmNetwork>(),
            Ok(VmNetwork::HostBridge("br0".into()))
        );
        assert_eq!(
            VmNetwork::HostBridge("br0".into()).to_string(),
            "bridge:br0"
        );
        assert_eq!("bridge".parse::<VmNetwork>(), Ok(VmNetwork::Bridge));
        for bad in [
            "bridge:",
            "bridge:a/b",
            "bridge:sixteen-bytes-xy",
            "bridge:a b",
            "bridge:..",
        ] {
            let why = bad.parse::<VmNetwork>().unwrap_err();
            assert!(why.contains("is no interface name"), "{bad}: {why}");
        }
        assert!(
            "bridged"
                .parse::<VmNetwork>()
                .unwrap_err()
                .contains("bridge:NAME")
        );
    }

    const HOST: Resources = Resources {
        cpus: 4.0,
        memory: 16 << 30,
        disk: 100 << 30,
    };

    #[test]
    fn names() {
        assert!(name("VM", "debian-12.5_test").is_ok());
        assert!(name("VM", "").unwrap_err().contains("needs a name"));
        assert!(name("VM", "..").unwrap_err().contains("may use only"));
        assert!(name("VM", "a/b").unwrap_err().contains("may use only"));
        assert!(name("VM", "-rf").unwrap_err().contains("start with"));
        assert!(
            name("VM", &"a".repeat(65))
                .unwrap_err()
                .contains("at most 64")
        );
        assert!(name("VM", "ümlaut").is_err());
    }

    #[test]
    fn resources_within_the_host_pass() {
        let vm = Resources {
            cpus: 2.0,
            memory: 8 << 30,
            disk: 50 << 30,
        };
        assert!(vm_resources(&vm, &HOST, false).is_ok());
    }

    #[test]
    fn beyond_the_host_needs_overcommit() {
        let vm = Resources {
            cpus: 8.0,
            memory: 1 << 30,
            disk: 0,
        };
        let err = vm_resources(&vm, &HOST, false).unwrap_err();
        assert!(
            err.contains("more than the host's 4") && err.contains("--overcommit"),
            "{err}"
        );
        assert!(vm_resources(&vm, &HOST, true).is_ok());
        let big_ram = Resources {
            cpus: 1.0,
            memory: 32 << 30,
            disk: 0,
        };
        assert!(
            vm_resources(&big_ram, &HOST, false)
                .unwrap_err()
                .contains("32 GiB of memory")
        );
    }

    #[test]
    fn hard_limits_hold_even_with_overcommit() {
        let zero = Resources {
            cpus: 0.0,
            memory: 1 << 30,
            disk: 0,
        };
        assert!(
            vm_resources(&zero, &HOST, true)
                .unwrap_err()
                .contains("at least 1 CPU")
        );
        let tiny = Resources {
            cpus: 1.0,
            memory: 1 << 20,
            disk: 0,
        };
        assert!(
            vm_resources(&tiny, &HOST, true)
                .unwrap_err()
                .contains("too little")
        );
        let huge = Resources {
            cpus: 1.0,
            memory: 2 << 40,
            disk: 0,
        };
        assert!(vm_resources(&huge, &HOST, true).is_err());
    }

    #[test]
    fn cmdlines() {
        assert!(cmdline("console=ttyS0 quiet").is_ok());
        assert!(cmdline("a\nb").is_err());
        assert!(cmdline(&"x".repeat(4096)).is_err());
    }

    #[test]
    fn container_run_options_are_checked_as_docker_does() {
        assert!(env_var("A=1").is_ok());
        assert!(env_var("A=").is_ok());
        assert!(env_var("A==b").is_ok());
        assert!(env_var("=1").is_err());
        assert!(env_var("A").is_err());
        assert!(env_var("A=\0").is_err());
        assert!(workdir("/srv/app").is_ok());
        assert!(workdir("srv").is_err());
        assert!(hostname("web-1.local").is_ok());
        assert!(hostname("-web").is_err());
        assert!(hostname("a_b").is_err());
        assert!(hostname(&"a".repeat(65)).is_err());
    }
}
