//! What berthctl prints for people: tables and key/value blocks of the daemon's answers
//! (`--json` prints the answers themselves).

use berth_api::container::{BlobProgress, ContainerInfo, ContainerStats, ImageInfo};
use berth_api::container::{Pruned, UsageLine};
use berth_api::host::{Availability, HostInfo};
use berth_api::iso::{IsoInfo, IsoKind};
use berth_api::network::PortForward;
use berth_api::size::format_size;
use berth_api::vm::{BootFrom, BootSource, VmInfo};
use berth_api::volume::VolumeInfo;

use crate::table::{pairs, percent, table};

/// Lines of a log, one a line.
pub fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

pub fn show_host(host: &HostInfo) -> String {
    // "25.0 %  (2 of 8 CPUs given)", marked when the VMs were given more than the host has.
    let given = |ratio: f64, given: String, total: String| {
        let over = if ratio > 1.0 { "  OVERCOMMITTED" } else { "" };
        format!("{}  ({given} of {total} given){over}", percent(ratio))
    };
    pairs(&[
        ("CPUs (N)", format!("{}", host.total.cpus)),
        ("Memory (M)", format_size(host.total.memory)),
        (
            "Disk (P)",
            format!(
                "{} ({} free) at {}",
                format_size(host.total.disk),
                format_size(host.disk_free),
                host.state_dir.display()
            ),
        ),
        ("VMs", host.vm_count.to_string()),
        (
            "ΣU_vm",
            given(
                host.allocation.cpu,
                host.allocated.cpus.to_string(),
                format!("{} CPUs", host.total.cpus),
            ),
        ),
        (
            "ΣM_vm",
            given(
                host.allocation.memory,
                format_size(host.allocated.memory),
                format_size(host.total.memory),
            ),
        ),
        (
            "ΣP_vm",
            given(
                host.allocation.disk,
                format_size(host.allocated.disk),
                format_size(host.total.disk),
            ),
        ),
        (
            "berthd",
            format!("{} ({} mode)", host.server_version, host.mode),
        ),
        (
            "VM support",
            match &host.vms {
                Availability::Yes => "yes".into(),
                Availability::No { why } => format!("no: {why}"),
            },
        ),
        ("Containers", host.containers.describe()),
    ])
}

pub fn list_vms(vms: &[VmInfo]) -> String {
    let rows: Vec<Vec<String>> = vms
        .iter()
        .map(|vm| {
            let c = &vm.config;
            vec![
                c.name.clone(),
                vm.state.to_string(),
                c.cpus.to_string(),
                format_size(c.memory),
                c.disk.as_ref().map_or("-".into(), |d| format_size(d.size)),
                percent(vm.allocation.cpu),
                percent(vm.allocation.memory),
                percent(vm.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATE", "CPUS", "MEMORY", "DISK", "U_vm", "M_vm", "P_vm",
        ],
        &rows,
    )
}

pub fn list_images(images: &[ImageInfo]) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            vec![
                i.reference.clone(),
                i.id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                format_size(i.size),
                i.layers.to_string(),
                i.created.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["IMAGE", "ID", "SIZE", "LAYERS", "CREATED"], &rows)
}

pub fn disk_usage(lines: &[UsageLine]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.kind.clone(),
                l.total.to_string(),
                l.active.to_string(),
                format_size(l.size),
                format_size(l.reclaimable),
            ]
        })
        .collect();
    table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
}

pub fn pruned(pruned: &Pruned) -> String {
    let mut out = String::new();
    for (what, names) in [
        ("container", &pruned.containers),
        ("image", &pruned.images),
        ("volume", &pruned.volumes),
    ] {
        for name in names {
            out.push_str(&format!("removed {what} {name}\n"));
        }
    }
    out.push_str(&format!("reclaimed {}\n", format_size(pruned.reclaimed)));
    out
}

pub fn list_volumes(volumes: &[VolumeInfo]) -> String {
    let rows: Vec<Vec<String>> = volumes
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                if v.used_by.is_empty() {
                    "-".into()
                } else {
                    v.used_by.join(",")
                },
                v.path.display().to_string(),
            ]
        })
        .collect();
    table(&["VOLUME", "USED BY", "PATH"], &rows)
}

pub fn list_containers(list: &[ContainerInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let mut command = c.command.join(" ");
            if command.chars().count() > 30 {
                command = command.chars().take(29).collect::<String>() + "…";
            }
            vec![
                c.id.clone(),
                c.name.clone(),
                c.image.clone(),
                format!("\"{command}\""),
                c.state.to_string(),
                c.ports
                    .iter()
                    .map(PortForward::published)
                    .collect::<Vec<_>>()
                    .join(", "),
                percent(c.allocation.cpu),
                percent(c.allocation.memory),
                percent(c.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "NAME",
            "IMAGE",
            "COMMAND",
            "STATUS",
            "PORTS",
            "U_ct",
            "M_ct",
            "P_ct",
        ],
        &rows,
    )
}

/// `port`: one line a published port, as Docker's `port` prints it.
pub fn ports(ports: &[PortForward]) -> String {
    ports.iter().map(|p| format!("{p}\n")).collect()
}

pub fn show_stats(stats: &[ContainerStats]) -> String {
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{:.1}%", s.cpu * 100.0),
                format!("{} ({})", format_size(s.memory), percent(s.memory_use)),
                format_size(s.disk),
                s.pids.to_string(),
                percent(s.allocation.cpu),
                percent(s.allocation.memory),
                percent(s.allocation.disk),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "CPU", "MEMORY", "DISK", "PIDS", "U_ct", "M_ct", "P_ct",
        ],
        &rows,
    )
}

pub fn show_vm(vm: &VmInfo) -> String {
    let c = &vm.config;
    let mut rows = vec![
        ("Name", c.name.clone()),
        ("State", vm.state.to_string()),
        (
            "CPUs",
            format!("{}  (U_vm {})", c.cpus, percent(vm.allocation.cpu)),
        ),
        (
            "Memory",
            format!(
                "{}  (M_vm {})",
                format_size(c.memory),
                percent(vm.allocation.memory)
            ),
        ),
        (
            "Disk",
            match &c.disk {
                Some(d) => format!(
                    "{} sparse raw, {}  (P_vm {})",
                    format_size(d.size),
                    vm.dir.join(&d.file).display(),
                    percent(vm.allocation.disk)
                ),
                None => "none".into(),
            },
        ),
        ("Network", c.network.describe(&c.name)),
    ];
    if let Some(address) = vm.address {
        rows.push(("Address", address.to_string()));
    }
    match &c.boot {
        Some(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }) => {
            rows.push(("Kernel", kernel.display().to_string()));
            rows.push((
                "Initrd",
                initrd
                    .as_ref()
                    .map_or("none".into(), |i| i.display().to_string()),
            ));
            rows.push(("Cmdline", cmdline.clone()));
        }
        Some(BootSource::Iso { iso, entry }) => {
            rows.push(("ISO", iso.display().to_string()));
            rows.push(("Entry", entry.map_or("default".into(), |e| e.to_string())));
        }
        None if c.boot_from == BootFrom::Kernel => rows.push((
            "Boot",
            "nothing to boot yet (set --kernel or --iso with vm edit)".into(),
        )),
        None => {}
    }
    rows.push(("Starts from", c.boot_from.describe().into()));
    rows.push(("Display", c.display.to_string()));
    rows.push(("Directory", vm.dir.display().to_string()));
    pairs(&rows)
}

/// What `iso inspect` says of an image Berth starts only through the firmware.
const FIRMWARE_ONLY: &str = "Berth starts this image through the VM's firmware (a PC BIOS) from its CD drive (`vm create --iso FILE` does so by default): it names no Linux kernel Berth starts directly.";

pub fn show_iso(info: &IsoInfo) -> String {
    let what = match (&info.distro, &info.version) {
        (Some(d), Some(v)) => format!("{d} {v}"),
        (Some(d), None) => d.clone(),
        _ => "unknown".into(),
    };
    let kind = match info.kind {
        IsoKind::Installer => "installer",
        IsoKind::Live => "live system",
        IsoKind::Unknown => "unknown",
    };
    let firmware: Vec<String> = info
        .boot_images
        .iter()
        .map(|b| format!("{} ({} emulation)", b.platform, b.emulation))
        .collect();
    let mut rows = vec![
        ("File", info.path.display().to_string()),
        ("Size", format_size(info.size)),
        ("Volume", info.volume_id.clone()),
        ("Distro", what),
        ("Kind", kind.to_owned()),
    ];
    if let Some(d) = &info.description {
        rows.push(("Description", d.clone()));
    }
    rows.push((
        "Firmware boot",
        if firmware.is_empty() {
            "none".into()
        } else {
            firmware.join(", ")
        },
    ));
    let s = info.suggested;
    rows.push((
        "Suggested",
        format!(
            "--cpus {} --memory {} --disk {}",
            s.cpus,
            format_size(s.memory),
            format_size(s.disk)
        ),
    ));
    let mut out = pairs(&rows);
    out.push('\n');
    if info.firmware_only() {
        out.push_str(FIRMWARE_ONLY);
        out.push('\n');
    } else if info.entries.is_empty() {
        out.push_str(&format!(
            "Berth cannot boot this image: {}\n",
            info.unbootable
                .as_deref()
                .unwrap_or("it has no Linux kernel")
        ));
    } else {
        let entries: Vec<Vec<String>> = info
            .entries
            .iter()
            .map(|e| {
                vec![
                    format!("{}{}", e.index, if e.default { "*" } else { "" }),
                    e.title.clone(),
                    e.kernel.clone(),
                    e.initrds.join(","),
                    e.cmdline.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ENTRY", "TITLE", "KERNEL", "INITRD", "CMDLINE"],
            &entries,
        ));
    }
    for warning in &info.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// The lines `pull` and `push` print on stderr as blobs move: a layer of a megabyte or more
/// at most twice a second with its bytes and rate, and each blob once when it is done.
pub struct BlobProgressLines {
    started: std::time::Instant,
    shown: std::collections::HashMap<String, std::time::Instant>,
    moved: &'static str,
    present: &'static str,
}

impl BlobProgressLines {
    /// `moved` and `present` say what happened to a finished blob.
    pub fn new(moved: &'static str, present: &'static str) -> BlobProgressLines {
        BlobProgressLines {
            started: std::time::Instant::now(),
            shown: Default::default(),
            moved,
            present,
        }
    }

    pub fn show(&mut self, p: &BlobProgress) {
        if let Some(line) = self.line(p) {
            eprintln!("{line}");
        }
    }

    fn line(&mut self, p: &BlobProgress) -> Option<String> {
        let hex = p.layer.trim_start_matches("sha256:");
        let short = hex.get(..12).unwrap_or(hex).to_owned();
        if p.finished {
            let what = if p.present { self.present } else { self.moved };
            return Some(format!("{short}: {what}"));
        }
        if p.size < 1_000_000
            || self
                .shown
                .get(&short)
                .is_some_and(|t| t.elapsed().as_millis() < 500)
        {
            return None;
        }
        let rate = p.done as f64 / self.started.elapsed().as_secs_f64().max(0.001) / 1e6;
        let line = format!(
            "{short}: {:.1}/{:.1} MB ({rate:.1} MB/s)",
            p.done as f64 / 1e6,
            p.size as f64 / 1e6
        );
        self.shown.insert(short, std::time::Instant::now());
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::container::{ContainerLimits, ContainerState};
    use berth_api::host::{ContainerSupport, DaemonMode, IdMap};
    use berth_api::iso::{BootImage, IsoBootEntry, NameScheme, Suggested};
    use berth_api::network::ContainerNetwork;
    use berth_api::utilisation::{Resources, Shares};
    use berth_api::vm::{DiskConfig, DisplayMode, VmConfig, VmState};

    const GIB: u64 = 1 << 30;
    /// Every ratio of the seeds' example: half.
    use berth_api::network::{MacAddress, PortForward, VmNetwork, VmNetworkConfig};

    const HALF: Shares = Shares {
        cpu: 0.5,
        memory: 0.5,
        disk: 0.5,
    };

    fn vm() -> VmInfo {
        VmInfo {
            config: VmConfig {
                name: "web".into(),
                cpus: 2,
                memory: 8 * GIB,
                disk: Some(DiskConfig {
                    file: "disk.raw".into(),
                    size: 50 * GIB,
                }),
                boot: Some(BootSource::Kernel {
                    kernel: "/k/bzImage".into(),
                    initrd: None,
                    cmdline: "console=ttyS0".into(),
                }),
                boot_from: BootFrom::Kernel,
                created: 0,
                display: DisplayMode::default(),
                network: VmNetworkConfig {
                    mode: VmNetwork::Nat,
                    mac: Some(MacAddress([0x52, 0x54, 0, 1, 2, 3])),
                    forwards: vec![PortForward::parse_vm_forward("tcp:2222:22").unwrap()],
                },
            },
            state: VmState::Running,
            dir: "/var/lib/berth/vms/web".into(),
            allocation: HALF,
            address: None,
        }
    }

    #[test]
    fn the_host_shows_its_totals_and_what_vms_were_given() {
        let host = HostInfo {
            total: Resources {
                cpus: 4.0,
                memory: 16 * GIB,
                disk: 100 * GIB,
            },
            disk_free: 60 * GIB,
            allocated: Resources {
                cpus: 6.0,
                memory: 8 * GIB,
                disk: 50 * GIB,
            },
            allocation: Shares {
                cpu: 1.5,
                memory: 0.5,
                disk: 0.5,
            },
            vm_count: 2,
            state_dir: "/var/lib/berth".into(),
            mode: DaemonMode::System,
            server_version: "0.1.0".into(),
            vms: Availability::Yes,
            containers: ContainerSupport {
                ids: IdMap::Host,
                limits: Availability::Yes,
            },
        };
        let text = show_host(&host);
        assert!(text.contains("CPUs (N)    4\n"), "{text}");
        assert!(
            text.contains("Disk (P)    100 GiB (60 GiB free) at /var/lib/berth"),
            "{text}"
        );
        assert!(
            text.contains("ΣU_vm       150%  (6 of 4 CPUs given)  OVERCOMMITTED"),
            "{text}"
        );
        assert!(
            text.contains("ΣM_vm       50%  (8 GiB of 16 GiB given)\n"),
            "{text}"
        );
        assert!(text.contains("berthd      0.1.0 (system mode)"), "{text}");
        assert!(text.contains("VM support  yes\n"), "{text}");
        assert!(
            text.contains("Containers  as root; limits: CPU, memory, processes"),
            "{text}"
        );
        let rootless = HostInfo {
            vms: Availability::No {
                why: "cannot open /dev/kvm: Permission denied".into(),
            },
            containers: ContainerSupport {
                ids: IdMap::Subordinate {
                    uids: (100000, 65536),
                    gids: (100000, 65536),
                },
                limits: Availability::No {
                    why: "no delegated cgroup controllers".into(),
                },
            },
            ..host
        };
        let text = show_host(&rootless);
        assert!(
            text.contains("VM support  no: cannot open /dev/kvm"),
            "{text}"
        );
        assert!(
            text.contains("Containers  rootless (subordinate ids 100000-165535); no limits (no delegated cgroup controllers)"),
            "{text}"
        );
    }

    #[test]
    fn vms_list_with_their_shares_and_show_their_settings() {
        let list = list_vms(&[vm()]);
        let mut rows = list.lines();
        assert_eq!(
            rows.next(),
            Some("NAME  STATE    CPUS  MEMORY  DISK    U_vm  M_vm  P_vm")
        );
        assert_eq!(
            rows.next(),
            Some("web   running  2     8 GiB   50 GiB  50%   50%   50%")
        );
        let shown = show_vm(&vm());
        assert!(shown.contains("CPUs         2  (U_vm 50%)"), "{shown}");
        assert!(
            shown.contains(
                "Disk         50 GiB sparse raw, /var/lib/berth/vms/web/disk.raw  (P_vm 50%)"
            ),
            "{shown}"
        );
        assert!(shown.contains("Cmdline      console=ttyS0"), "{shown}");
        assert!(shown.contains("Display      1280x800"), "{shown}");
        assert!(
            shown.contains("Starts from  its kernel (direct boot)\n"),
            "{shown}"
        );
        assert!(
            shown.contains("Network      nat, 52:54:00:01:02:03; forwards tcp:127.0.0.1:2222:22\n"),
            "{shown}"
        );
    }

    #[test]
    fn containers_images_and_stats_are_tables() {
        let container = ContainerInfo {
            id: "0123456789ab".into(),
            name: "db".into(),
            image: "busybox:latest".into(),
            command: vec!["sh".into(), "-c".into(), "x".repeat(40)],
            state: ContainerState::Stopped {
                exit_code: Some(3),
                oom_killed: false,
            },
            limits: ContainerLimits::default(),
            created: 0,
            allocation: HALF,
            network: ContainerNetwork::Pasta,
            address: None,
            ports: vec!["127.0.0.1:18080:80".parse().unwrap()],
            volumes: vec![],
            restart: Default::default(),
            restart_count: 0,
        };
        let list = list_containers(std::slice::from_ref(&container));
        let row = list.lines().nth(1).unwrap_or_default();
        assert!(
            row.starts_with("0123456789ab  db    busybox:latest  \"sh -c xxx"),
            "{row}"
        );
        assert!(row.contains("…\""), "a long command is cut: {row}");
        assert!(row.ends_with("50%   50%   50%"), "{row}");
        assert!(row.contains("  127.0.0.1:18080->80/tcp  "), "{row}");
        assert_eq!(ports(&container.ports), "80/tcp -> 127.0.0.1:18080\n");
        let images = list_images(&[ImageInfo {
            reference: "hello:latest".into(),
            id: "sha256:feedfacecafe0123".into(),
            size: 3 << 20,
            layers: 2,
            created: None,
        }]);
        assert_eq!(
            images.lines().nth(1),
            Some("hello:latest  feedfacecafe  3 MiB  2       -")
        );
        let stats = show_stats(&[ContainerStats {
            id: "0123456789ab".into(),
            name: "db".into(),
            cpu: 0.25,
            memory: 4 * GIB,
            memory_use: 0.5,
            disk: 25 * GIB,
            pids: 3,
            allocation: HALF,
        }]);
        assert_eq!(
            stats.lines().nth(1),
            Some("db    25.0%  4 GiB (50%)  25 GiB  3     50%   50%   50%")
        );
    }

    #[test]
    fn an_iso_shows_its_entries_or_why_it_cannot_boot() {
        let mut info = IsoInfo {
            path: "/isos/debian.iso".into(),
            size: 600 << 20,
            volume_id: "Debian 12.8.0 amd64 n".into(),
            names: NameScheme::RockRidge,
            distro: Some("Debian".into()),
            version: Some("12.8.0".into()),
            description: None,
            kind: IsoKind::Installer,
            boot_images: Vec::new(),
            entries: vec![IsoBootEntry {
                index: 0,
                title: "Install".into(),
                kernel: "/install.amd/vmlinuz".into(),
                initrds: vec!["/install.amd/initrd.gz".into()],
                cmdline: "vga=788".into(),
                source: "/isolinux/txt.cfg".into(),
                default: true,
            }],
            suggested: Suggested {
                cpus: 2,
                memory: 2 * GIB,
                disk: 20 * GIB,
            },
            unbootable: None,
            warnings: vec!["an entry's kernel is missing".into()],
        };
        let text = show_iso(&info);
        assert!(text.contains("Distro         Debian 12.8.0"), "{text}");
        assert!(text.contains("Kind           installer"), "{text}");
        assert!(
            text.contains("Suggested      --cpus 2 --memory 2 GiB --disk 20 GiB"),
            "{text}"
        );
        assert!(
            text.contains("0*     Install  /install.amd/vmlinuz"),
            "{text}"
        );
        assert!(
            text.ends_with("warning: an entry's kernel is missing\n"),
            "{text}"
        );
        info.entries.clear();
        info.unbootable = Some("it is a Windows image".into());
        assert!(show_iso(&info).contains("Berth cannot boot this image: it is a Windows image"));
        info.unbootable = None;
        info.boot_images = vec![BootImage {
            platform: BootImage::BIOS.into(),
            bootable: true,
            emulation: "none".into(),
            lba: 30,
            sectors: 4,
        }];
        let text = show_iso(&info);
        assert!(
            text.contains("Firmware boot  bios (none emulation)"),
            "{text}"
        );
        assert!(text.contains("through the VM's firmware"), "{text}");
        assert!(!text.contains("cannot boot"), "{text}");
    }

    #[test]
    fn log_lines_end_each_with_a_newline() {
        assert_eq!(lines(&["a".into(), "b".into()]), "a\nb\n");
        assert_eq!(lines(&[]), "");
    }

    #[test]
    fn blob_progress_shows_big_layers_at_most_twice_a_second_and_every_finished_blob() {
        let mut lines = BlobProgressLines::new("pushed", "already in the registry");
        let blob = |done, size, finished, present| BlobProgress {
            image: "app".into(),
            layer: format!("sha256:{}", "ab".repeat(32)),
            done,
            size,
            finished,
            present,
        };
        let first = lines.line(&blob(1_000_000, 4_000_000, false, false));
        assert!(
            first
                .as_deref()
                .is_some_and(|l| l.starts_with("abababababab: 1.0/4.0 MB (")),
            "{first:?}"
        );
        assert_eq!(
            lines.line(&blob(2_000_000, 4_000_000, false, false)),
            None,
            "a second line within half a second"
        );
        assert_eq!(lines.line(&blob(10, 300, false, false)), None);
        assert_eq!(
            lines.line(&blob(0, 0, true, false)).as_deref(),
            Some("abababababab: pushed")
        );
        assert_eq!(
            lines.line(&blob(0, 0, true, true)).as_deref(),
            Some("abababababab: already in the registry")
        );
    }
}
