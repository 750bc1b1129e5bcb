//! Networks as the API describes them: which network a container is on, and the ports it
//! publishes on the host (`-p [IP:]HOST:CONTAINER[/udp]`, Docker's syntax), written once for the
//! CLI, the daemon and the helper (pasta, later passt for VMs) that forwards them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The network a container is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerNetwork {
    /// User-mode networking through pasta (the `passt` package), as rootless Podman does: the
    /// container reaches what the host reaches, through the host's own sockets, and published
    /// ports are bound by pasta on the host.
    #[default]
    Pasta,
    /// Loopback only.
    None,
}

impl ContainerNetwork {
    /// The name `--network` takes and tables show.
    pub fn name(self) -> &'static str {
        match self {
            ContainerNetwork::Pasta => "pasta",
            ContainerNetwork::None => "none",
        }
    }
}

impl FromStr for ContainerNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "pasta" | "default" => Ok(ContainerNetwork::Pasta),
            "none" => Ok(ContainerNetwork::None),
            other => Err(format!(
                "unknown network `{other}`: use `pasta` (the default) or `none`"
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
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(n) => Err(format!("-p {spec}: the {what} port {n} is outside 1-65535")),
        Err(_) => Err(format!(
            "-p {spec}: `{text}` is not a {what} port (the form is [IP:]HOST:CONTAINER[/udp], e.g. 127.0.0.1:8080:80)"
        )),
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
    fn bad_port_specs_say_what_is_wrong() {
        let error = |s: &str| s.parse::<PortForward>().unwrap_err();
        assert_eq!(
            error("99999:80"),
            "-p 99999:80: the host port 99999 is outside 1-65535"
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
    fn networks_by_name() {
        assert_eq!("none".parse(), Ok(ContainerNetwork::None));
        assert_eq!("pasta".parse(), Ok(ContainerNetwork::Pasta));
        assert!(
            "bridge"
                .parse::<ContainerNetwork>()
                .unwrap_err()
                .contains("`bridge`")
        );
    }
}
