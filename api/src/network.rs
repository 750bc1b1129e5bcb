//! Networks as the API describes them: which network a container is on, and the ports it
//! publishes on the host (`-p [IP:]HOST:CONTAINER[/udp]`, Docker's syntax), written once for the
//! CLI, the daemon and the helper (pasta, later passt for VMs) that forwards them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::host::DaemonMode;

/// The network a container is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerNetwork {
    /// (The default of a build's RUN steps and of what was kept before the field existed.)
    /// User-mode networking through pasta (the `passt` package), as rootless Podman does: the
    /// container reaches what the host reaches, through the host's own sockets, and published
    /// ports are bound by pasta on the host.
    #[default]
    Pasta,
    /// The Berth network: a bridge of the daemon's where containers reach each other by name
    /// (as on a Docker network made with `docker network create`), out through the same NAT.
    Bridge,
    /// Loopback only.
    None,
}

impl ContainerNetwork {
    /// The network a container is on when its `run` names none: the Berth network under the
    /// system daemon, as Docker's and rootful Podman's containers are on their bridge; pasta
    /// under a user's, as rootless Podman's are (a bridge is one `--network bridge` away).
    pub fn default_for(mode: DaemonMode) -> ContainerNetwork {
        match mode {
            DaemonMode::System => ContainerNetwork::Bridge,
            DaemonMode::User => ContainerNetwork::Pasta,
        }
    }

    /// The name `--network` takes and tables show.
    pub fn name(self) -> &'static str {
        match self {
            ContainerNetwork::Pasta => "pasta",
            ContainerNetwork::Bridge => "bridge",
            ContainerNetwork::None => "none",
        }
    }
}

impl FromStr for ContainerNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "pasta" => Ok(ContainerNetwork::Pasta),
            "bridge" | "berth" => Ok(ContainerNetwork::Bridge),
            "none" => Ok(ContainerNetwork::None),
            other => Err(format!(
                "unknown network `{other}`: use `bridge`, `pasta` or `none`"
            )),
        }
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port of the host forwarded to a port of the container (or guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    pub protocol: Protocol,
    /// The host address to listen on; every address when `None` (Docker's default).
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub target_port: u16,
}

/// Parses one port number of a spec, naming the spec when it is not one.
fn port(text: &str, spec: &str, what: &str) -> Result<u16, String> {
    port_of(text, what).map_err(|why| {
        format!("-p {spec}: {why} (the form is [IP:]HOST:CONTAINER[/udp], e.g. 127.0.0.1:8080:80)")
    })
}

/// One port number, 1-65535; `what` names it in the error.
fn port_of(text: &str, what: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(n) => Err(format!("the {what} port {n} is outside 1-65535")),
        Err(_) => Err(format!("`{text}` is not a {what} port")),
    }
}

impl FromStr for PortForward {
    type Err = String;

    /// `[IP:]HOST:CONTAINER[/tcp|/udp]`; an IPv6 address in brackets (`[::1]:8080:80`).
    fn from_str(spec: &str) -> Result<Self, String> {
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Protocol::Tcp),
            Some((ports, "udp")) => (ports, Protocol::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "-p {spec}: unknown protocol `{other}` (tcp or udp)"
                ));
            }
            None => (spec, Protocol::Tcp),
        };
        let (address, rest) = if let Some(bracketed) = ports.strip_prefix('[') {
            let (address, rest) = bracketed.split_once("]:").ok_or_else(|| {
                format!("-p {spec}: an IPv6 address is written [ADDRESS]:HOST:CONTAINER")
            })?;
            (Some(address), rest)
        } else {
            match ports.matches(':').count() {
                0 | 1 => (None, ports),
                2 => {
                    let (address, rest) = ports.split_once(':').unwrap_or_default();
                    (Some(address), rest)
                }
                _ => {
                    return Err(format!(
                        "-p {spec}: the form is [IP:]HOST:CONTAINER[/udp], e.g. 127.0.0.1:8080:80"
                    ));
                }
            }
        };
        let host_ip = match address {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| format!("-p {spec}: `{text}` is not an IP address"))?,
            ),
        };
        let Some((host, target)) = rest.split_once(':') else {
            return Err(if rest.parse::<u16>().is_ok() {
                format!("-p {spec}: give the host port too: HOST:CONTAINER, e.g. 8080:{rest}")
            } else {
                format!(
                    "-p {spec}: `{rest}` is not a port (the form is [IP:]HOST:CONTAINER[/udp], e.g. 127.0.0.1:8080:80)"
                )
            });
        };
        Ok(PortForward {
            protocol,
            host_ip,
            host_port: port(host, spec, "host")?,
            target_port: port(target, spec, "container")?,
        })
    }
}

impl PortForward {
    /// The host side as an address: `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`.
    fn host(&self) -> String {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.host_port),
            Some(IpAddr::V4(ip)) => format!("{ip}:{}", self.host_port),
            None => format!("0.0.0.0:{}", self.host_port),
        }
    }

    /// Where a browser on this host reaches it: `http://127.0.0.1:8080/`; a port published on
    /// every address is reached on the loopback. `None` for UDP.
    pub fn url(&self) -> Option<String> {
        if self.protocol != Protocol::Tcp {
            return None;
        }
        let host = match self.host_ip {
            None => "127.0.0.1".to_owned(),
            Some(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            Some(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_owned(),
            Some(IpAddr::V4(ip)) => ip.to_string(),
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
        };
        Some(format!("http://{host}:{}/", self.host_port))
    }

    /// As Docker's `ps` shows it: `127.0.0.1:8080->80/tcp`.
    pub fn published(&self) -> String {
        format!(
            "{}->{}/{}",
            self.host(),
            self.target_port,
            self.protocol.name()
        )
    }
}

impl fmt::Display for PortForward {
    /// As Docker's `port` shows it: `80/tcp -> 127.0.0.1:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.target_port,
            self.protocol.name(),
            self.host()
        )
    }
}

/// The network a VM is on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmNetwork {
    /// User-mode NAT through passt, as GNOME Boxes and libvirt's `type='user'` give it: the
    /// guest gets the host's address by DHCP and reaches what the host reaches, through the
    /// host's own sockets; no root needed.
    #[default]
    Nat,
    /// The Berth network (a TAP on the daemon's bridge): the guest gets an address of its own
    /// there by DHCP, reaches the containers and other VMs on it, and the host's loopback at
    /// its gateway.
    Bridge,
    /// A bridge of the host's own, by its name (`bridge:NAME`, e.g. one on the user's LAN): the
    /// guest is a machine on that network, with whatever address its DHCP gives, as
    /// libvirt's `<interface type='bridge'>` and VirtualBox's bridged adapter put it. The
    /// system daemon's only (a TAP on the host's network needs root).
    HostBridge(String),
    /// No network device.
    None,
}

impl fmt::Display for VmNetwork {
    /// The name `--network` takes and tables show: `nat`, `bridge`, `bridge:br0`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmNetwork::Nat => f.write_str("nat"),
            VmNetwork::Bridge => f.write_str("bridge"),
            VmNetwork::HostBridge(name) => write!(f, "bridge:{name}"),
            VmNetwork::None => f.write_str("none"),
        }
    }
}

impl FromStr for VmNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "nat" | "user" | "default" => Ok(VmNetwork::Nat),
            "bridge" | "berth" => Ok(VmNetwork::Bridge),
            "none" => Ok(VmNetwork::None),
            other => match other.strip_prefix("bridge:") {
                Some(name) => {
                    crate::validate::interface_name(name)
                        .map_err(|why| format!("--network {other}: {why}"))?;
                    Ok(VmNetwork::HostBridge(name.to_owned()))
                }
                None => Err(format!(
                    "unknown network `{other}`: use `nat` (the default), `bridge` (the Berth network), `bridge:NAME` (a bridge of the host's) or `none`"
                )),
            },
        }
    }
}

/// A network card's hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MacAddress(pub [u8; 6]);

/// The first three bytes of the addresses Berth makes: QEMU's and libvirt's prefix, a locally
/// administered unicast range that guests and DHCP servers already know as a VM's.
const MAC_PREFIX: [u8; 3] = [0x52, 0x54, 0x00];

impl MacAddress {
    /// The address a VM called `name` gets: the same name always gives the same address (FNV-1a
    /// of the name in the last three bytes), so a guest's DHCP lease and udev names survive a
    /// definition being recreated.
    pub fn for_vm(name: &str) -> MacAddress {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in name.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        let [a, b, c, _] = hash.to_be_bytes();
        MacAddress([MAC_PREFIX[0], MAC_PREFIX[1], MAC_PREFIX[2], a, b, c])
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddress {
    type Err = String;

    /// Six hexadecimal bytes separated by colons, a unicast address.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a MAC address (six hex bytes, e.g. 52:54:00:12:34:56)");
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut bytes {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if bytes[0] & 1 != 0 {
            return Err(format!(
                "`{text}` is a multicast address; a network card needs a unicast one"
            ));
        }
        Ok(MacAddress(bytes))
    }
}

/// A VM's network as its definition keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmNetworkConfig {
    #[serde(default)]
    pub mode: VmNetwork,
    /// The card's address; definitions from before networks existed get
    /// [`MacAddress::for_vm`] of their name.
    #[serde(default)]
    pub mac: Option<MacAddress>,
    /// Host ports forwarded to the guest (NAT only).
    #[serde(default)]
    pub forwards: Vec<PortForward>,
}

impl VmNetworkConfig {
    /// The card's address: the one kept, else the one its name gives.
    pub fn mac_of(&self, vm_name: &str) -> MacAddress {
        self.mac.unwrap_or_else(|| MacAddress::for_vm(vm_name))
    }

    /// One line for `vm show` and the window: `nat, 52:54:00:8a:1f:03; forwards
    /// tcp:127.0.0.1:2222:22`, or `none`.
    pub fn describe(&self, vm_name: &str) -> String {
        match &self.mode {
            VmNetwork::None => VmNetwork::None.to_string(),
            mode @ (VmNetwork::Nat | VmNetwork::Bridge | VmNetwork::HostBridge(_)) => {
                let mut text = format!("{mode}, {}", self.mac_of(vm_name));
                if !self.forwards.is_empty() {
                    let forwards: Vec<String> =
                        self.forwards.iter().map(PortForward::vm_forward).collect();
                    text.push_str(&format!("; forwards {}", forwards.join(", ")));
                }
                text
            }
        }
    }
}

impl PortForward {
    /// A VM's port forward as `vm create --forward` takes it: `[tcp:|udp:][IP:]HOST:GUEST`, e.g.
    /// `tcp:2222:22`. Without an address the host side is its loopback (127.0.0.1), as
    /// VirtualBox's and Boxes' forwards are: a guest's ssh is not opened to the whole network
    /// unless the user names an address.
    pub fn parse_vm_forward(spec: &str) -> Result<PortForward, String> {
        let (protocol, rest) = match spec.split_once(':') {
            Some(("tcp", rest)) => (Protocol::Tcp, rest),
            Some(("udp", rest)) => (Protocol::Udp, rest),
            _ => (Protocol::Tcp, spec),
        };
        let form = "the form is [tcp:|udp:][IP:]HOST:GUEST, e.g. tcp:2222:22";
        let (address, ports) = match rest.rsplitn(3, ':').collect::<Vec<_>>()[..] {
            [guest, host] => (None, (host, guest)),
            [guest, host, address] => (Some(address), (host, guest)),
            _ => return Err(format!("--forward {spec}: {form}")),
        };
        let host_ip = match address.map(|a| a.trim_start_matches('[').trim_end_matches(']')) {
            None => Some(IpAddr::from([127, 0, 0, 1])),
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| format!("--forward {spec}: `{text}` is not an IP address"))?,
            ),
        };
        let port = |text, what| {
            port_of(text, what).map_err(|why| format!("--forward {spec}: {why} ({form})"))
        };
        Ok(PortForward {
            protocol,
            host_ip,
            host_port: port(ports.0, "host")?,
            target_port: port(ports.1, "guest")?,
        })
    }

    /// As a VM's forward is written back: `tcp:127.0.0.1:2222:22`.
    pub fn vm_forward(&self) -> String {
        let address = match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:"),
            Some(IpAddr::V4(ip)) => format!("{ip}:"),
            None => "0.0.0.0:".to_owned(),
        };
        format!(
            "{}:{address}{}:{}",
            self.protocol.name(),
            self.host_port,
            self.target_port
        )
    }
}

/// A port as an image's `ExposedPorts` names it: `80/tcp`, `53/udp`, or `80` (TCP).
pub fn exposed_port(key: &str) -> Option<(u16, Protocol)> {
    let (port, protocol) = match key.split_once('/') {
        Some((port, "tcp")) => (port, Protocol::Tcp),
        Some((port, "udp")) => (port, Protocol::Udp),
        Some(_) => return None,
        None => (key, Protocol::Tcp),
    };
    port_of(port, "container").ok().map(|port| (port, protocol))
}

/// The port options of passt and pasta for `forwards`: `-t ADDRESS/HOST:TARGET` each, and
/// `none` for a protocol with no forward (pasta's default would forward every bound port).
pub fn passt_port_args(forwards: &[PortForward]) -> Vec<String> {
    let mut args = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let flag = match protocol {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        };
        let mine: Vec<_> = forwards.iter().filter(|f| f.protocol == protocol).collect();
        if mine.is_empty() {
            args.extend([flag.to_owned(), "none".to_owned()]);
        }
        for forward in mine {
            let address = forward
                .host_ip
                .map(|ip| format!("{ip}/"))
                .unwrap_or_default();
            args.extend([
                flag.to_owned(),
                format!("{address}{}:{}", forward.host_port, forward.target_port),
            ]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_port_specs_parse() {
        let parse = |s: &str| s.parse::<PortForward>().unwrap();
        assert_eq!(
            parse("8080:80"),
            PortForward {
                protocol: Protocol::Tcp,
                host_ip: None,
                host_port: 8080,
                target_port: 80
            }
        );
        let local = parse("127.0.0.1:18080:80/udp");
        assert_eq!(local.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(local.protocol, Protocol::Udp);
        assert_eq!(parse("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(parse(":53:53/tcp").host_ip, None);
        assert_eq!(local.to_string(), "80/udp -> 127.0.0.1:18080");
        assert_eq!(parse("[::1]:8080:80").to_string(), "80/tcp -> [::1]:8080");
        assert_eq!(local.published(), "127.0.0.1:18080->80/udp");
        assert_eq!(parse("8080:80").published(), "0.0.0.0:8080->80/tcp");
    }

    #[test]
    fn a_browser_reaches_a_tcp_port_on_its_address_or_the_loopback() {
        let url = |s: &str| s.parse::<PortForward>().unwrap().url();
        assert_eq!(url("8080:80").as_deref(), Some("http://127.0.0.1:8080/"));
        assert_eq!(
            url("0.0.0.0:81:80").as_deref(),
            Some("http://127.0.0.1:81/")
        );
        assert_eq!(url("[::]:82:80").as_deref(), Some("http://[::1]:82/"));
        assert_eq!(url("[::1]:83:80").as_deref(), Some("http://[::1]:83/"));
        assert_eq!(
            url("192.168.1.5:84:80").as_deref(),
            Some("http://192.168.1.5:84/")
        );
        assert_eq!(url("85:53/udp"), None);
        let ssh = PortForward::parse_vm_forward("tcp:2222:22").unwrap();
        assert_eq!(ssh.url().as_deref(), Some("http://127.0.0.1:2222/"));
    }

    #[test]
    fn bad_port_specs_say_what_is_wrong() {
        let error = |s: &str| s.parse::<PortForward>().unwrap_err();
        assert!(
            error("99999:80").starts_with("-p 99999:80: the host port 99999 is outside 1-65535"),
            "{}",
            error("99999:80")
        );
        assert!(
            error("abc").contains("`abc` is not a port"),
            "{}",
            error("abc")
        );
        assert!(error("abc:80").contains("`abc` is not a host port"));
        assert!(error("80:x").contains("`x` is not a container port"));
        assert_eq!(
            error("80"),
            "-p 80: give the host port too: HOST:CONTAINER, e.g. 8080:80"
        );
        assert!(error("0:80").contains("outside 1-65535"));
        assert!(error("8080:80/sctp").contains("unknown protocol `sctp`"));
        assert!(error("localhost:8080:80").contains("`localhost` is not an IP address"));
        assert!(error("1:2:3:4").contains("the form is"));
        assert!(error("[::1:8080:80").contains("IPv6"));
    }

    #[test]
    fn passt_options_name_every_forward_and_close_the_rest() {
        let forwards = [
            "127.0.0.1:18080:80".parse().unwrap(),
            "2222:22".parse().unwrap(),
        ];
        assert_eq!(
            passt_port_args(&forwards),
            ["-t", "127.0.0.1/18080:80", "-t", "2222:22", "-u", "none"]
        );
        assert_eq!(passt_port_args(&[]), ["-t", "none", "-u", "none"]);
    }

    #[test]
    fn exposed_ports_are_read_as_images_write_them() {
        assert_eq!(exposed_port("80/tcp"), Some((80, Protocol::Tcp)));
        assert_eq!(exposed_port("53/udp"), Some((53, Protocol::Udp)));
        assert_eq!(exposed_port("8080"), Some((8080, Protocol::Tcp)));
        for bad in ["80/sctp", "http/tcp", "0/tcp", "70000"] {
            assert_eq!(exposed_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn vm_forwards_default_to_loopback() {
        let forward = PortForward::parse_vm_forward("tcp:2222:22").unwrap();
        assert_eq!(forward.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((forward.host_port, forward.target_port), (2222, 22));
        assert_eq!(forward.vm_forward(), "tcp:127.0.0.1:2222:22");
        let udp = PortForward::parse_vm_forward("udp:0.0.0.0:5353:53").unwrap();
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!(udp.host_ip, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(
            PortForward::parse_vm_forward("8080:80").unwrap().protocol,
            Protocol::Tcp
        );
        assert_eq!(
            PortForward::parse_vm_forward(&udp.vm_forward()).unwrap(),
            udp
        );
        let six = PortForward::parse_vm_forward("tcp:[::1]:2222:22").unwrap();
        assert_eq!(six.host_ip, Some("::1".parse().unwrap()));
        for bad in [
            "tcp:22",
            "tcp:x:22",
            "tcp:2222:0",
            "sctp:1:2:3:4",
            "tcp:here:1:2",
        ] {
            let why = PortForward::parse_vm_forward(bad).unwrap_err();
            assert!(why.starts_with(&format!("--forward {bad}: ")), "{why}");
        }
    }

    #[test]
    fn mac_addresses_are_stable_per_name_and_parse_back() {
        let mac = MacAddress::for_vm("debian");
        assert_eq!(mac, MacAddress::for_vm("debian"));
        assert_ne!(mac, MacAddress::for_vm("debian2"));
        assert_eq!(mac.0[..3], MAC_PREFIX);
        assert_eq!(mac.to_string().parse(), Ok(mac));
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddress>()
                .unwrap_err()
                .contains("multicast")
        );
        assert!("52:54:00:12:34".parse::<MacAddress>().is_err());
        assert!("52:54:00:12:34:5g".parse::<MacAddress>().is_err());
        assert_eq!("nat".parse(), Ok(VmNetwork::Nat));
        let config = VmNetworkConfig {
            mode: VmNetwork::Nat,
            mac: None,
            forwards: vec![PortForward::parse_vm_forward("tcp:2222:22").unwrap()],
        };
        assert_eq!(
            config.describe("debian"),
            format!("nat, {mac}; forwards tcp:127.0.0.1:2222:22")
        );
        assert_eq!("bridge".parse(), Ok(VmNetwork::Bridge));
        assert!("host".parse::<VmNetwork>().is_err());
    }

    #[test]
    fn networks_by_name() {
        assert_eq!("none".parse(), Ok(ContainerNetwork::None));
        assert_eq!("pasta".parse(), Ok(ContainerNetwork::Pasta));
        assert_eq!("bridge".parse(), Ok(ContainerNetwork::Bridge));
        assert!(
            "host"
                .parse::<ContainerNetwork>()
                .unwrap_err()
                .contains("`host`")
        );
    }
}
