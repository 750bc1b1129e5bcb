//! berth-vmm's command line: berthd builds [`LaunchOptions`] and turns them into arguments,
//! berth-vmm parses them back, so the two cannot drift apart.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use berth_api::network::MacAddress;
use berth_api::size::parse_size;
use berth_api::vm::DisplayMode;

/// The usage line berth-vmm prints.
pub const USAGE: &str = "usage: berth-vmm {--kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] | \
--firmware FILE [--boot-disk N | --boot-cdrom]} [--memory SIZE (e.g. 512M, 2G)] [--cpus N] [--serial-log FILE] [--disk FILE [--read-only]]... \
[--cdrom FILE] [--display WIDTHxHEIGHT] [--control-fd N] [--events-fd N] [--net-fd N [--net-tap] --mac MAC] \
[--sandbox [--sandbox-ids UID:GID]]";

/// Why berth-vmm's arguments gave no options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `-h` or `--help`: the usage goes to stdout and berth-vmm ends successfully.
    Help,
    /// What is wrong with the arguments.
    Invalid(String),
}

impl From<String> for ParseError {
    fn from(message: String) -> ParseError {
        ParseError::Invalid(message)
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Help => f.write_str(USAGE),
            ParseError::Invalid(message) => f.write_str(message),
        }
    }
}

/// The kernel command line when none is given.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1";
/// Guest memory when none is given.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// The fd berthd puts berth-vmm's control socket on.
pub const CONTROL_FD: i32 = 3;
/// The fd berthd puts the display-notice socket on.
pub const EVENTS_FD: i32 = 4;
/// The fd berthd puts the network card's socket on (passt's other end).
pub const NET_FD: i32 = 5;

/// The first of the ids the system daemon gives its VMs' berth-vmm processes, one uid and gid
/// per running VM: far above real users (Debian gives them from 1000), their subordinate ids
/// (from 100000, 65536 each) and systemd's dynamic users (61184-65519), below 2^31.
pub const SANDBOX_ID_BASE: u32 = 0x7000_0000;

/// berth-vmm's sandbox (`vmm_backend::sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sandbox {
    /// The uid and gid it drops to; `None` keeps the ones it was started with (a rootless
    /// daemon's VMs, already unprivileged).
    pub ids: Option<(u32, u32)>,
}

/// A disk attached as virtio-blk (`/dev/vda`, `/dev/vdb`, ... in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
}

/// The network card's MTU: what berth-vmm's virtio-net reports and berthd has passt hand out
/// by DHCP. Ethernet's, so every frame fits the receive buffers a Linux driver posts without
/// mergeable buffers.
pub const NET_MTU: u16 = 1500;

/// A virtio-net card whose frames go through an inherited descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkCard {
    /// The inherited socket or TAP device.
    pub fd: i32,
    pub mac: MacAddress,
    /// What `fd` is: a TAP device (`--net-tap`), one frame per read and write, each after a
    /// virtio-net header of [`TAP_HEADER_LEN`] bytes (`IFF_VNET_HDR`), so checksum and
    /// segmentation offloads pass between the guest and the host's stack; else a connected
    /// stream socket, each frame preceded by its length (4 bytes, big-endian): what passt and
    /// QEMU's `-netdev stream` speak.
    pub tap: bool,
}

/// The virtio-net header a TAP's frames carry (`TUNSETVNETHDRSZ`): `struct virtio_net_hdr_v1`,
/// the one a modern driver's buffers start with, so the card passes it through as it is.
pub const TAP_HEADER_LEN: usize = 12;

/// What the VM starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootImage {
    /// A kernel entered directly.
    Kernel {
        /// A bzImage, or a Berth flat image (test guests).
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// A firmware image (SeaBIOS's `bios-microvm.bin`) that boots from the disks or the CD.
    Firmware {
        firmware: PathBuf,
        /// What the firmware tries first; `None`: its own order (the disks in their order,
        /// then the CD drive).
        boot_first: Option<BootDevice>,
    },
}

/// A device the firmware can boot from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    /// The disk at this index in [`LaunchOptions::disks`].
    Disk(usize),
    /// The CD drive ([`LaunchOptions::cdrom`]).
    Cdrom,
}

/// Where Debian's `seabios` package puts SeaBIOS's microvm build, the firmware berthd boots
/// disks with. (The file of the same name under /usr/share/qemu is qboot, which boots no
/// disk.)
pub const SEABIOS_MICROVM: &str = "/usr/share/seabios/bios-microvm.bin";

/// Everything berth-vmm is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    pub boot: BootImage,
    /// Guest memory in bytes.
    pub memory: u64,
    pub cpus: u32,
    /// A file the serial console is copied to.
    pub serial_log: Option<PathBuf>,
    pub disks: Vec<Disk>,
    /// An ISO in a CD drive (virtio-scsi, after the disks), read-only: the firmware boots a
    /// pure El Torito image from it (SeaBIOS tries it after the disks), and Linux sees it as
    /// `/dev/sr0`.
    pub cdrom: Option<PathBuf>,
    /// The display's mode: attaches virtio-gpu and the virtio-input keyboard and tablet.
    pub display: Option<DisplayMode>,
    /// The control channel ([`crate::channel`]), an inherited socket.
    pub control_fd: Option<i32>,
    /// A SOCK_SEQPACKET socket the display notices go to (`berth_display::notice`).
    pub events_fd: Option<i32>,
    /// The network card, when the VM has one.
    pub network: Option<NetworkCard>,
    /// Run the VM sandboxed: a mount namespace of only its files, seccomp, maybe other ids.
    pub sandbox: Option<Sandbox>,
}

impl LaunchOptions {
    /// Options for booting `kernel`, everything else as berth-vmm's defaults.
    pub fn new(kernel: PathBuf) -> LaunchOptions {
        Self::booting(BootImage::Kernel {
            kernel,
            initrd: None,
            cmdline: DEFAULT_CMDLINE.into(),
        })
    }

    /// Options for starting `boot`, everything else as berth-vmm's defaults.
    pub fn booting(boot: BootImage) -> LaunchOptions {
        LaunchOptions {
            boot,
            memory: DEFAULT_MEMORY,
            cpus: 1,
            serial_log: None,
            disks: Vec::new(),
            cdrom: None,
            display: None,
            control_fd: None,
            events_fd: None,
            network: None,
            sandbox: None,
        }
    }

    /// The arguments that give berth-vmm these options.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        match &self.boot {
            BootImage::Kernel {
                kernel,
                initrd,
                cmdline,
            } => {
                args.extend(["--kernel".into(), kernel.clone().into()]);
                if let Some(initrd) = initrd {
                    args.extend(["--initrd".into(), initrd.clone().into()]);
                }
                args.extend(["--cmdline".into(), cmdline.clone().into()]);
            }
            BootImage::Firmware {
                firmware,
                boot_first,
            } => {
                args.extend(["--firmware".into(), firmware.clone().into()]);
                match boot_first {
                    Some(BootDevice::Disk(index)) => {
                        args.extend(["--boot-disk".into(), index.to_string().into()]);
                    }
                    Some(BootDevice::Cdrom) => args.push("--boot-cdrom".into()),
                    None => {}
                }
            }
        }
        args.extend([
            "--memory".into(),
            self.memory.to_string().into(),
            "--cpus".into(),
            self.cpus.to_string().into(),
        ]);
        if let Some(log) = &self.serial_log {
            args.extend(["--serial-log".into(), log.clone().into()]);
        }
        for disk in &self.disks {
            args.extend(["--disk".into(), disk.path.clone().into()]);
            if disk.read_only {
                args.push("--read-only".into());
            }
        }
        if let Some(cdrom) = &self.cdrom {
            args.extend(["--cdrom".into(), cdrom.clone().into()]);
        }
        if let Some(display) = self.display {
            args.extend(["--display".into(), display.to_string().into()]);
        }
        if let Some(fd) = self.control_fd {
            args.extend(["--control-fd".into(), fd.to_string().into()]);
        }
        if let Some(fd) = self.events_fd {
            args.extend(["--events-fd".into(), fd.to_string().into()]);
        }
        if let Some(card) = self.network {
            args.extend(["--net-fd".into(), card.fd.to_string().into()]);
            if card.tap {
                args.push("--net-tap".into());
            }
            args.extend(["--mac".into(), card.mac.to_string().into()]);
        }
        if let Some(sandbox) = self.sandbox {
            args.push("--sandbox".into());
            if let Some((uid, gid)) = sandbox.ids {
                args.extend(["--sandbox-ids".into(), format!("{uid}:{gid}").into()]);
            }
        }
        args
    }

    /// Parses berth-vmm's arguments (without the program name). `Err` carries what to print:
    /// the usage for `--help`, else what is wrong.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<LaunchOptions, ParseError> {
        let mut args = args.into_iter();
        let (mut kernel, mut initrd, mut cmdline) = (None, None, None);
        let (mut firmware, mut boot_first) = (None, None);
        let mut options = LaunchOptions::new(PathBuf::new());
        let (mut net_fd, mut mac, mut net_tap) = (None, None, false);
        while let Some(flag) = args.next() {
            let flag = flag.to_string_lossy().into_owned();
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--kernel" => kernel = Some(PathBuf::from(value()?)),
                "--initrd" => initrd = Some(PathBuf::from(value()?)),
                "--cmdline" => cmdline = Some(text(&flag, &value()?)?),
                "--firmware" => firmware = Some(PathBuf::from(value()?)),
                "--boot-disk" | "--boot-cdrom" if boot_first.is_some() => {
                    return Err(ParseError::Invalid(
                        "one device boots first: give one --boot-disk or --boot-cdrom".into(),
                    ));
                }
                "--boot-disk" => boot_first = Some(BootDevice::Disk(number(&flag, &value()?)?)),
                "--boot-cdrom" => boot_first = Some(BootDevice::Cdrom),
                "--memory" => options.memory = parse_size(&text(&flag, &value()?)?)?,
                "--cpus" => options.cpus = number(&flag, &value()?)?,
                "--serial-log" => options.serial_log = Some(PathBuf::from(value()?)),
                "--disk" => options.disks.push(Disk {
                    path: PathBuf::from(value()?),
                    read_only: false,
                }),
                "--cdrom" => options.cdrom = Some(PathBuf::from(value()?)),
                "--read-only" => match options.disks.last_mut() {
                    Some(disk) => disk.read_only = true,
                    None => {
                        return Err(ParseError::Invalid(
                            "--read-only must follow a --disk".into(),
                        ));
                    }
                },
                "--display" => {
                    let mode = text(&flag, &value()?)?;
                    options.display = Some(mode.parse().map_err(|e| format!("--display: {e}"))?);
                }
                "--control-fd" => options.control_fd = Some(number(&flag, &value()?)?),
                "--events-fd" => options.events_fd = Some(number(&flag, &value()?)?),
                "--net-fd" => net_fd = Some(number(&flag, &value()?)?),
                "--net-tap" => net_tap = true,
                "--mac" => {
                    let text = text(&flag, &value()?)?;
                    mac = Some(text.parse().map_err(|e| format!("--mac: {e}"))?);
                }
                "--sandbox" => {
                    options.sandbox.get_or_insert(Sandbox { ids: None });
                }
                "--sandbox-ids" => {
                    let ids = text(&flag, &value()?)?;
                    let bad = || format!("bad --sandbox-ids {ids:?}: use UID:GID");
                    let (uid, gid) = ids.split_once(':').ok_or_else(bad)?;
                    let ids = (
                        uid.parse().map_err(|_| bad())?,
                        gid.parse().map_err(|_| bad())?,
                    );
                    options.sandbox = Some(Sandbox { ids: Some(ids) });
                }
                "-h" | "--help" => return Err(ParseError::Help),
                other => {
                    return Err(ParseError::Invalid(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        options.boot = match (kernel, firmware) {
            (Some(kernel), None) if boot_first.is_none() => BootImage::Kernel {
                kernel,
                initrd,
                cmdline: cmdline.unwrap_or_else(|| DEFAULT_CMDLINE.into()),
            },
            (None, Some(firmware)) if initrd.is_none() && cmdline.is_none() => {
                match boot_first {
                    Some(BootDevice::Disk(i)) if i >= options.disks.len() => {
                        return Err(ParseError::Invalid(format!(
                            "--boot-disk names no --disk\n{USAGE}"
                        )));
                    }
                    Some(BootDevice::Cdrom) if options.cdrom.is_none() => {
                        return Err(ParseError::Invalid(format!(
                            "--boot-cdrom needs a --cdrom\n{USAGE}"
                        )));
                    }
                    _ => {}
                }
                BootImage::Firmware {
                    firmware,
                    boot_first,
                }
            }
            (None, None) => {
                return Err(ParseError::Invalid(format!(
                    "--kernel or --firmware is required\n{USAGE}"
                )));
            }
            (Some(_), Some(_)) => {
                return Err(ParseError::Invalid(format!(
                    "--kernel and --firmware exclude each other\n{USAGE}"
                )));
            }
            (Some(_), None) => {
                return Err(ParseError::Invalid(format!(
                    "--boot-disk and --boot-cdrom go with --firmware\n{USAGE}"
                )));
            }
            (None, Some(_)) => {
                return Err(ParseError::Invalid(format!(
                    "--initrd and --cmdline go with --kernel\n{USAGE}"
                )));
            }
        };
        options.network = match (net_fd, mac) {
            (Some(fd), Some(mac)) => Some(NetworkCard {
                fd,
                mac,
                tap: net_tap,
            }),
            (None, None) if !net_tap => None,
            _ => {
                return Err(ParseError::Invalid(format!(
                    "--net-fd and --mac go together\n{USAGE}"
                )));
            }
        };
        Ok(options)
    }
}

fn text(flag: &str, value: &OsStr) -> Result<String, String> {
    value
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{flag}: {value:?} is not UTF-8 text"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &OsStr) -> Result<T, String> {
    text(flag, value)?
        .parse()
        .map_err(|_| format!("bad {flag} {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_go_there_and_back() {
        let mut options = LaunchOptions::booting(BootImage::Kernel {
            kernel: "/vms/a/kernel".into(),
            initrd: Some("/vms/a/initrd".into()),
            cmdline: "console=ttyS0 quiet".into(),
        });
        options.memory = 2 << 30;
        options.cpus = 2;
        options.serial_log = Some("/vms/a/serial.log".into());
        options.disks = vec![
            Disk {
                path: "/vms/a/disk.raw".into(),
                read_only: false,
            },
            Disk {
                // Paths need not be UTF-8.
                path: PathBuf::from(OsStr::from_bytes(b"/isos/\xffdebian.iso")),
                read_only: true,
            },
        ];
        options.cdrom = Some("/isos/plain-el-torito.iso".into());
        options.display = Some(DisplayMode {
            width: 1280,
            height: 800,
        });
        options.control_fd = Some(CONTROL_FD);
        options.events_fd = Some(EVENTS_FD);
        options.network = Some(NetworkCard {
            fd: NET_FD,
            mac: MacAddress::for_vm("a"),
            tap: false,
        });
        assert_eq!(LaunchOptions::parse(options.to_args()), Ok(options.clone()));
        options.network = Some(NetworkCard {
            fd: NET_FD,
            mac: MacAddress::for_vm("a"),
            tap: true,
        });
        options.sandbox = Some(Sandbox {
            ids: Some((SANDBOX_ID_BASE, SANDBOX_ID_BASE)),
        });
        assert_eq!(LaunchOptions::parse(options.to_args()), Ok(options.clone()));
        options.sandbox = Some(Sandbox { ids: None });
        assert_eq!(LaunchOptions::parse(options.to_args()), Ok(options.clone()));
        let plain = LaunchOptions::new("k".into());
        assert_eq!(LaunchOptions::parse(plain.to_args()), Ok(plain));
        options.boot = BootImage::Firmware {
            firmware: SEABIOS_MICROVM.into(),
            boot_first: Some(BootDevice::Disk(1)),
        };
        assert_eq!(LaunchOptions::parse(options.to_args()), Ok(options.clone()));
        options.boot = BootImage::Firmware {
            firmware: SEABIOS_MICROVM.into(),
            boot_first: Some(BootDevice::Cdrom),
        };
        assert_eq!(LaunchOptions::parse(options.to_args()), Ok(options.clone()));
    }

    #[test]
    fn what_a_person_types_is_read_and_mistakes_are_named() {
        let options = LaunchOptions::parse(args(&[
            "--kernel",
            "bz",
            "--memory",
            "512M",
            "--display",
            "64X48",
        ]))
        .unwrap();
        assert_eq!(options.memory, 512 << 20);
        assert!(
            matches!(options.boot, BootImage::Kernel { cmdline, .. } if cmdline == DEFAULT_CMDLINE)
        );
        assert_eq!(options.display.map(|d| (d.width, d.height)), Some((64, 48)));
        for (bad, says) in [
            (
                &["--memory", "1G"][..],
                "--kernel or --firmware is required",
            ),
            (&["--kernel", "k", "--firmware", "f"], "exclude each other"),
            (
                &["--firmware", "f", "--cmdline", "quiet"],
                "go with --kernel",
            ),
            (&["--kernel", "k", "--boot-disk", "0"], "go with --firmware"),
            (&["--firmware", "f", "--boot-disk", "0"], "names no --disk"),
            (&["--firmware", "f", "--boot-cdrom"], "needs a --cdrom"),
            (
                &[
                    "--firmware",
                    "f",
                    "--cdrom",
                    "c",
                    "--disk",
                    "d",
                    "--boot-disk",
                    "0",
                    "--boot-cdrom",
                ],
                "one device boots first",
            ),
            (&["--kernel", "k", "--read-only"], "must follow a --disk"),
            (&["--kernel", "k", "--cpus", "two"], "bad --cpus"),
            (&["--kernel", "k", "--display", "4096x10"], "--display"),
            (&["--kernel", "k", "--frobnicate"], "unknown argument"),
            (&["--kernel", "k", "--sandbox-ids", "7"], "UID:GID"),
            (&["--kernel", "k", "--net-fd", "5"], "go together"),
            (
                &["--kernel", "k", "--mac", "ff:00:00:00:00:00"],
                "multicast",
            ),
            (&["--kernel"], "needs a value"),
        ] {
            let error = LaunchOptions::parse(args(bad)).unwrap_err();
            assert!(matches!(error, ParseError::Invalid(_)), "{bad:?}");
            assert!(error.to_string().contains(says), "{bad:?}: {error}");
        }
        let help = LaunchOptions::parse(args(&["--kernel", "k", "--help"])).unwrap_err();
        assert_eq!(help, ParseError::Help);
        assert!(help.to_string().starts_with("usage: berth-vmm"));
    }
}
