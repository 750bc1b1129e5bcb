//! The New VM wizard: a name, what to boot (a kernel with initrd and command line, or an ISO),
//! and CPUs, memory and disk on sliders that show U_vm, M_vm, P_vm and the host's overcommit
//! before anything is created. Every field is checked as it changes, with the same checks and
//! messages berthd applies; Create is offered only when all pass.
//!
//! An ISO path is read by berthd (`iso inspect`) as soon as it is given: the wizard shows what
//! the image is, lets the user pick one of its boot entries, and takes the image's suggested
//! resources for the sliders the user has not moved. An image whose kernel Berth cannot read
//! but whose El Torito boot image a PC BIOS starts is created to start through the firmware
//! from the CD drive. An image Berth cannot boot shows berthd's reason and Create stays
//! disabled.

use std::fmt;
use std::path::PathBuf;

use berth_api::iso::{IsoInfo, IsoKind};
use berth_api::network::{PortForward, VmNetwork};

use berth_api::size::format_size;
use berth_api::utilisation::{Resources, host_allocation, vm_allocation};
use berth_api::validate;
use berth_api::vm::{BootFrom, BootSource, VmSpec};
use iced::widget::{
    button, checkbox, column, container, pick_list, radio, row, slider, text, text_input,
};
use iced::{Element, Length};

use crate::data::networks::{Choice, VM_NETWORKS};
use crate::theme::danger;
use crate::widget::form::field;
use crate::widget::gauge::gauge;

/// What the VM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    Kernel,
    Iso,
    Nothing,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Name(String),
    Boot(Boot),
    Kernel(String),
    Initrd(String),
    Cmdline(String),
    Iso(String),
    /// Enter in the ISO field: read the image now, whatever its name ends with.
    IsoSubmit,
    /// berthd's answer to `iso inspect` of a path (ignored when the path has changed since).
    Inspected(PathBuf, Result<Box<IsoInfo>, String>),
    /// The boot entry of the ISO to boot, by its index.
    Entry(u32),
    Cpus(u32),
    /// Memory in MiB.
    Memory(u32),
    /// Disk in GiB.
    Disk(u32),
    Overcommit(bool),
    /// The network its card is on, or none.
    Network(Choice<VmNetwork>),
    /// Port forwards, `[tcp:|udp:][IP:]HOST:GUEST` separated by spaces or commas.
    Forwards(String),
    Create,
    Cancel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Create(VmSpec),
    /// Ask berthd what the image at this path is; the answer comes back as
    /// [`Message::Inspected`].
    Inspect(PathBuf),
    Cancel,
}

/// What is known of the ISO path in the form.
#[derive(Debug, Clone, PartialEq)]
pub enum IsoState {
    /// No absolute path yet, or not asked about.
    Unknown,
    /// berthd is reading the image at this path.
    Inspecting(PathBuf),
    Inspected(Box<IsoInfo>),
    /// berthd could not read it (missing, not an ISO, not readable by this user): its message.
    Failed(String),
}

/// Which sliders the user moved: those keep their values when an ISO's suggestion arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Touched {
    cpus: bool,
    memory: bool,
    disk: bool,
}

/// One line of the entry pick list.
#[derive(Debug, Clone, PartialEq)]
struct EntryChoice {
    index: u32,
    label: String,
}

/// What the wizard says of an image that starts only through the firmware.
const FIRMWARE_ONLY: &str = "Starts through the VM's firmware (a PC BIOS) from its CD drive: Berth reads no Linux kernel on it to start directly.";

/// The pick list's lines: the image's entries in its order (the default first).
fn entry_choices(info: &IsoInfo) -> Vec<EntryChoice> {
    info.entries
        .iter()
        .map(|e| EntryChoice {
            index: e.index,
            label: if e.default {
                format!("{}: {} (default)", e.index, e.title)
            } else {
                format!("{}: {}", e.index, e.title)
            },
        })
        .collect()
}

impl fmt::Display for EntryChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// The wizard's state.
#[derive(Debug, Clone)]
pub struct Wizard {
    pub name: String,
    pub boot: Boot,
    pub kernel: String,
    pub initrd: String,
    pub cmdline: String,
    pub iso: String,
    pub iso_state: IsoState,
    /// The ISO boot entry chosen (0, the image's default, until the user picks another).
    pub entry: u32,
    touched: Touched,
    pub cpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub overcommit: bool,
    /// NAT through passt unless the user picks another, as every peer puts a new VM.
    pub network: VmNetwork,
    /// The networks offered.
    networks: Vec<Choice<VmNetwork>>,
    pub forwards: String,
    /// The host's totals and what the existing VMs were given.
    host: Resources,
    allocated: Vec<Resources>,
    /// The daemon's answer to a failed create; the form stays usable.
    pub error: Option<String>,
    /// A create request is under way.
    pub busy: bool,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Wizard {
    pub fn new(host: Resources, allocated: Vec<Resources>) -> Wizard {
        Wizard {
            name: String::new(),
            // An ISO is what most users come with (an installer, a live system).
            boot: Boot::Iso,
            kernel: String::new(),
            initrd: String::new(),
            cmdline: "console=ttyS0".into(),
            network: VmNetwork::Nat,
            networks: VM_NETWORKS.to_vec(),
            forwards: String::new(),
            iso: String::new(),
            iso_state: IsoState::Unknown,
            entry: 0,
            touched: Touched::default(),
            cpus: 1,
            memory_mib: 1024,
            disk_gib: 8,
            overcommit: false,
            host,
            allocated,
            error: None,
            busy: false,
        }
    }

    /// The wizard offering `networks` (the daemon's and the host's, `data::networks`).
    pub fn with_networks(mut self, networks: Vec<Choice<VmNetwork>>) -> Wizard {
        self.networks = networks;
        self
    }

    fn resources(&self) -> Resources {
        Resources {
            cpus: f64::from(self.cpus),
            memory: u64::from(self.memory_mib) * MIB,
            disk: u64::from(self.disk_gib) * GIB,
        }
    }

    fn name_problem(&self) -> Option<String> {
        validate::name("VM", &self.name).err()
    }

    fn boot_problem(&self) -> Option<String> {
        let path = |p: &str, what: &str, required: bool| match p.trim() {
            "" if required => Some(format!("give the path of the {what}")),
            "" => None,
            p if !p.starts_with('/') => {
                Some(format!("the {what} path must be absolute (start with /)"))
            }
            _ => None,
        };
        match self.boot {
            Boot::Kernel => path(&self.kernel, "kernel", true)
                .or_else(|| path(&self.initrd, "initrd", false))
                .or_else(|| validate::cmdline(&self.cmdline).err()),
            Boot::Iso => path(&self.iso, "ISO image", true).or_else(|| self.iso_problem()),
            Boot::Nothing => None,
        }
    }

    /// Why the ISO cannot be booted yet: not read, being read, unreadable, or no Linux on it.
    fn iso_problem(&self) -> Option<String> {
        match &self.iso_state {
            IsoState::Unknown => Some("press Enter to read the ISO image".into()),
            IsoState::Inspecting(_) => Some("reading the ISO image…".into()),
            IsoState::Failed(e) => Some(e.clone()),
            // Berth reads no kernel on it, but the VM's firmware starts it.
            IsoState::Inspected(info) if info.firmware_only() => None,
            IsoState::Inspected(info) if info.entries.is_empty() => Some(format!(
                "Berth cannot boot this image: {}",
                info.unbootable
                    .as_deref()
                    .unwrap_or("it has no Linux kernel that Berth could boot")
            )),
            IsoState::Inspected(info) if info.entries.len() <= self.entry as usize => {
                Some(format!("the image has no boot entry {}", self.entry))
            }
            IsoState::Inspected(_) => None,
        }
    }

    /// A new path in the ISO field: forget what was known of the old one, and ask berthd about
    /// it when it looks like a whole path to an image (so typing does not ask at every key).
    fn iso_changed(&mut self, submitted: bool) -> Option<Event> {
        let path = self.iso.trim();
        let looks_whole = path.to_ascii_lowercase().ends_with(".iso");
        if !path.starts_with('/') || !(submitted || looks_whole) {
            self.iso_state = IsoState::Unknown;
            return None;
        }
        let path = PathBuf::from(path);
        if matches!(&self.iso_state, IsoState::Inspecting(p) if *p == path)
            || matches!(&self.iso_state, IsoState::Inspected(info) if info.path == path && !submitted)
        {
            return None;
        }
        self.iso_state = IsoState::Inspecting(path.clone());
        self.entry = 0;
        Some(Event::Inspect(path))
    }

    /// berthd's answer about `path`: kept only if the field still names it.
    fn inspected(&mut self, path: PathBuf, result: Result<Box<IsoInfo>, String>) {
        if path != std::path::Path::new(self.iso.trim()) {
            return;
        }
        self.entry = 0;
        self.iso_state = match result {
            Ok(info) => {
                self.suggest(&info);
                IsoState::Inspected(info)
            }
            Err(e) => IsoState::Failed(e),
        };
    }

    /// The image's suggested resources for the sliders the user has not moved, fitted to the
    /// host as berthctl does (at most its CPUs and half its memory and disk), so a suggestion
    /// never needs overcommit.
    fn suggest(&mut self, info: &IsoInfo) {
        let s = info.suggested;
        if !self.touched.cpus {
            self.cpus = s.cpus.min(self.host.cpus as u32).max(1);
        }
        if !self.touched.memory {
            let mib = (s.memory.min(self.host.memory / 2) / MIB) as u32;
            // The slider moves in 64 MiB steps from 64.
            self.memory_mib = (mib / 64 * 64).max(64);
        }
        if !self.touched.disk {
            self.disk_gib = (s.disk.min(self.host.disk / 2) / GIB) as u32;
        }
    }

    /// Whether the inspected ISO starts only through the firmware ([`IsoInfo::firmware_only`]).
    fn iso_firmware_only(&self) -> bool {
        matches!(&self.iso_state, IsoState::Inspected(info) if info.firmware_only())
    }

    fn resources_problem(&self) -> Option<String> {
        validate::vm_resources(&self.resources(), &self.host, self.overcommit).err()
    }

    /// The network and its forwards as the form has them, checked as berthd checks them.
    fn network(&self) -> Result<(VmNetwork, Vec<PortForward>), String> {
        let network = self.network.clone();
        let forwards = validate::parse_vm_forwards(&network, &self.forwards)?;
        Ok((network, forwards))
    }

    /// The request the form describes, once every check passes.
    pub fn spec(&self) -> Result<VmSpec, String> {
        if let Some(problem) = self
            .name_problem()
            .or_else(|| self.boot_problem())
            .or_else(|| self.resources_problem())
        {
            return Err(problem);
        }
        let (network, forwards) = self.network()?;
        let boot = match self.boot {
            Boot::Kernel => Some(BootSource::Kernel {
                kernel: PathBuf::from(self.kernel.trim()),
                initrd: Some(self.initrd.trim())
                    .filter(|i| !i.is_empty())
                    .map(PathBuf::from),
                cmdline: self.cmdline.clone(),
            }),
            Boot::Iso if self.iso_firmware_only() => Some(BootSource::Iso {
                iso: PathBuf::from(self.iso.trim()),
                entry: None,
            }),
            Boot::Iso => Some(BootSource::Iso {
                iso: PathBuf::from(self.iso.trim()),
                entry: Some(self.entry),
            }),
            Boot::Nothing => None,
        };
        let boot_from =
            (self.boot == Boot::Iso && self.iso_firmware_only()).then_some(BootFrom::Iso);
        let r = self.resources();
        Ok(VmSpec {
            name: self.name.clone(),
            cpus: self.cpus,
            memory: r.memory,
            disk: r.disk,
            boot,
            boot_from,
            overcommit: self.overcommit,
            network,
            forwards,
        })
    }

    pub fn update(&mut self, message: Message) -> Option<Event> {
        match message {
            Message::Name(v) => self.name = v,
            Message::Boot(v) => {
                self.boot = v;
                if v == Boot::Iso && self.iso_state == IsoState::Unknown {
                    self.error = None;
                    return self.iso_changed(false);
                }
            }
            Message::Kernel(v) => self.kernel = v,
            Message::Initrd(v) => self.initrd = v,
            Message::Cmdline(v) => self.cmdline = v,
            Message::Iso(v) => {
                self.iso = v;
                self.error = None;
                return self.iso_changed(false);
            }
            Message::IsoSubmit => {
                self.error = None;
                return self.iso_changed(true);
            }
            Message::Inspected(path, result) => {
                self.inspected(path, result);
                return None;
            }
            Message::Entry(v) => self.entry = v,
            Message::Cpus(v) => {
                self.cpus = v;
                self.touched.cpus = true;
            }
            Message::Memory(v) => {
                self.memory_mib = v;
                self.touched.memory = true;
            }
            Message::Disk(v) => {
                self.disk_gib = v;
                self.touched.disk = true;
            }
            Message::Overcommit(v) => self.overcommit = v,
            Message::Network(Choice(v)) => self.network = v,
            Message::Forwards(v) => self.forwards = v,
            Message::Cancel => return Some(Event::Cancel),
            Message::Create => {
                return match self.spec() {
                    Ok(spec) if !self.busy => {
                        self.busy = true;
                        self.error = None;
                        Some(Event::Create(spec))
                    }
                    _ => None,
                };
            }
        }
        self.error = None;
        None
    }

    /// The daemon refused the request: show why and let the user fix it.
    pub fn failed(&mut self, message: String) {
        self.busy = false;
        self.error = Some(message);
    }

    /// What the image is and its boot entries.
    fn iso_view<'a>(&self, info: &'a IsoInfo) -> Element<'a, Message> {
        let what = [info.distro.as_deref(), info.version.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let kind = match info.kind {
            IsoKind::Installer => "installer",
            IsoKind::Live => "live system",
            IsoKind::Unknown => "kind unknown",
        };
        let what = if what.is_empty() {
            format!("Unknown system ({kind}), volume {}", info.volume_id)
        } else {
            format!("{what} ({kind})")
        };
        let mut col = column![text(what)].spacing(6);
        if let Some(description) = &info.description {
            col = col.push(text(description.as_str()).size(13));
        }
        if info.firmware_only() {
            col = col.push(text(FIRMWARE_ONLY).size(13));
        }
        if info.entries.is_empty() {
            return col.into();
        }
        let choices = entry_choices(info);
        let selected = choices.iter().find(|c| c.index == self.entry).cloned();
        col = col.push(field(
            "Boot entry",
            pick_list(choices, selected, |c: EntryChoice| Message::Entry(c.index))
                .width(Length::Fixed(360.0)),
        ));
        if let Some(entry) = info.entries.iter().find(|e| e.index == self.entry) {
            col = col.push(text(format!("Command line: {}", entry.cmdline)).size(13));
        }
        col.into()
    }

    pub fn view(&self) -> Element<'_, Message> {
        let problem = |p: Option<String>| -> Element<'_, Message> {
            match p {
                Some(p) => text(p).size(13).style(danger).into(),
                None => text("").size(13).into(),
            }
        };
        let mut boot = column![
            row![
                radio("ISO image", Boot::Iso, Some(self.boot), Message::Boot),
                radio("Linux kernel", Boot::Kernel, Some(self.boot), Message::Boot),
                radio("Nothing yet", Boot::Nothing, Some(self.boot), Message::Boot),
            ]
            .spacing(20)
        ]
        .spacing(8);
        match self.boot {
            Boot::Kernel => {
                boot = boot
                    .push(field(
                        "Kernel",
                        text_input("/path/to/bzImage", &self.kernel)
                            .id("kernel")
                            .on_input(Message::Kernel),
                    ))
                    .push(field(
                        "Initrd",
                        text_input("optional", &self.initrd)
                            .id("initrd")
                            .on_input(Message::Initrd),
                    ))
                    .push(field(
                        "Command line",
                        text_input("", &self.cmdline)
                            .id("cmdline")
                            .on_input(Message::Cmdline),
                    ));
            }
            Boot::Iso => {
                boot = boot.push(field(
                    "ISO",
                    text_input("/path/to/image.iso", &self.iso)
                        .id("iso")
                        .on_input(Message::Iso)
                        .on_submit(Message::IsoSubmit),
                ));
                if let IsoState::Inspected(info) = &self.iso_state {
                    boot = boot.push(self.iso_view(info));
                }
            }
            Boot::Nothing => {}
        }
        let max_cpus = (self.host.cpus as u32).max(1);
        let max_memory = ((self.host.memory / MIB) as u32).max(128);
        let max_disk = ((self.host.disk / GIB) as u32).clamp(1, 2048);
        let r = self.resources();
        let share = vm_allocation(&r, &self.host);
        let with_this: Vec<Resources> = self.allocated.iter().copied().chain([r]).collect();
        let total = host_allocation(&with_this, &self.host);
        let cpu_max = if self.overcommit {
            max_cpus * 4
        } else {
            max_cpus
        };
        let mem_max = if self.overcommit {
            max_memory * 2
        } else {
            max_memory
        };
        let resources = column![
            field(
                "CPUs",
                slider(1..=cpu_max, self.cpus, Message::Cpus).width(Length::Fixed(260.0))
            ),
            gauge(
                "U_vm",
                share.cpu,
                format!("{} of {} CPUs", self.cpus, self.host.cpus)
            ),
            field(
                "Memory",
                slider(64..=mem_max, self.memory_mib, Message::Memory)
                    .step(64u32)
                    .width(Length::Fixed(260.0))
            ),
            gauge(
                "M_vm",
                share.memory,
                format!(
                    "{} of {}",
                    format_size(r.memory),
                    format_size(self.host.memory)
                )
            ),
            field(
                "Disk",
                slider(0..=max_disk, self.disk_gib, Message::Disk).width(Length::Fixed(260.0))
            ),
            gauge(
                "P_vm",
                share.disk,
                if r.disk == 0 {
                    "no disk".into()
                } else {
                    format!("{} sparse", format_size(r.disk))
                }
            ),
            text("With this VM, the host will have given out:").size(13),
            gauge("ΣU_vm", total.cpu, ""),
            gauge("ΣM_vm", total.memory, ""),
            checkbox(self.overcommit)
                .label("Allow more than the host has (overcommit)")
                .on_toggle(Message::Overcommit),
        ]
        .spacing(6);
        let create = button(text(if self.busy { "Creating…" } else { "Create" }))
            .style(button::primary)
            .on_press_maybe((self.spec().is_ok() && !self.busy).then_some(Message::Create));
        let mut page = column![
            text("New virtual machine").size(22),
            field(
                "Name",
                text_input("e.g. debian-12", &self.name)
                    .id("name")
                    .on_input(Message::Name)
            ),
            problem(self.name_problem().filter(|_| !self.name.is_empty())),
            text("Boot").size(15),
            boot,
            problem(self.boot_problem()),
            text("Resources").size(15),
            resources,
            problem(self.resources_problem()),
            row![
                field(
                    "Network",
                    pick_list(
                        self.networks.as_slice(),
                        Some(Choice(self.network.clone())),
                        Message::Network
                    )
                    .width(Length::Fixed(400.0))
                ),
                text("Forwards"),
                text_input("none, e.g. tcp:2222:22", &self.forwards)
                    .id("forwards")
                    .on_input(Message::Forwards)
                    .width(Length::Fixed(260.0)),
            ]
            .spacing(10)
            .align_y(iced::Alignment::Center),
        ]
        .spacing(8);
        if let Some(why) = self.network().err() {
            page = page.push(problem(Some(why)));
        }
        if let Some(error) = &self.error {
            page = page.push(problem(Some(error.clone())));
        }
        page = page.push(
            row![
                create,
                button(text("Cancel"))
                    .style(button::secondary)
                    .on_press(Message::Cancel)
            ]
            .spacing(10),
        );
        container(page).padding(16).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_test::simulator;

    const HOST: Resources = Resources {
        cpus: 2.0,
        memory: 8 << 30,
        disk: 100 << 30,
    };

    /// Click and type into the wizard as a user would; the messages it produced are applied.
    fn interact(
        wizard: &mut Wizard,
        act: impl FnOnce(&mut iced_test::Simulator<'_, Message>),
    ) -> Vec<Event> {
        let mut ui = simulator(wizard.view());
        act(&mut ui);
        let messages: Vec<Message> = ui.into_messages().collect();
        messages
            .into_iter()
            .filter_map(|m| wizard.update(m))
            .collect()
    }

    #[test]
    fn invalid_input_is_refused_with_its_message() {
        let mut wizard = Wizard::new(HOST, vec![]);
        assert_eq!(wizard.boot, Boot::Iso, "the wizard opens on an ISO image");
        wizard.update(Message::Boot(Boot::Kernel));
        interact(&mut wizard, |ui| {
            ui.click(iced::widget::Id::new("name")).unwrap();
            ui.typewrite("bad name!");
        });
        assert_eq!(wizard.name, "bad name!");
        {
            let mut ui = simulator(wizard.view());
            let message = "VM name `bad name!` may use only letters, digits, `.`, `_` and `-`, and must start with a letter or digit";
            assert!(ui.find(message).is_ok());
            assert!(ui.find("give the path of the kernel").is_ok());
        }
        // Create is not offered: clicking it sends nothing.
        let events = interact(&mut wizard, |ui| {
            let _ = ui.click("Create");
        });
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn valid_input_sends_the_create_request() {
        let mut wizard = Wizard::new(HOST, vec![]);
        wizard.update(Message::Boot(Boot::Kernel));
        interact(&mut wizard, |ui| {
            ui.click(iced::widget::Id::new("name")).unwrap();
            ui.typewrite("web-1");
            ui.click(iced::widget::Id::new("kernel")).unwrap();
            ui.typewrite("/boot/vmlinuz");
        });
        let events = interact(&mut wizard, |ui| {
            ui.click("Create").unwrap();
        });
        let [Event::Create(spec)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(spec.name, "web-1");
        assert_eq!((spec.cpus, spec.memory, spec.disk), (1, 1 << 30, 8 << 30));
        assert_eq!(
            spec.boot,
            Some(BootSource::Kernel {
                kernel: "/boot/vmlinuz".into(),
                initrd: None,
                cmdline: "console=ttyS0".into()
            })
        );
        assert!(wizard.busy, "a second click does not send a second request");
        assert!(wizard.update(Message::Create).is_none());
        wizard.failed("a VM named `web-1` exists already".into());
        let mut ui = simulator(wizard.view());
        assert!(
            ui.find("a VM named `web-1` exists already").is_ok(),
            "the daemon's refusal is shown"
        );
        assert!(!wizard.busy);
    }

    #[test]
    fn forwards_are_typed_checked_and_sent() {
        let mut wizard = Wizard::new(HOST, vec![]);
        wizard.update(Message::Name("ssh".into()));
        wizard.update(Message::Boot(Boot::Nothing));
        assert_eq!(wizard.spec().unwrap().network, VmNetwork::Nat);
        interact(&mut wizard, |ui| {
            ui.click(iced::widget::Id::new("forwards")).unwrap();
            ui.typewrite("tcp:2222:22, udp:99999:53");
        });
        let why = wizard.spec().unwrap_err();
        assert!(why.contains("the host port 99999 is outside"), "{why}");
        assert!(simulator(wizard.view()).find(why.as_str()).is_ok());
        wizard.update(Message::Forwards("tcp:2222:22 udp:5353:53".into()));
        let spec = wizard.spec().unwrap();
        let written: Vec<String> = spec.forwards.iter().map(PortForward::vm_forward).collect();
        assert_eq!(written, ["tcp:127.0.0.1:2222:22", "udp:127.0.0.1:5353:53"]);
        wizard.update(Message::Network(Choice(VmNetwork::None)));
        assert!(wizard.spec().unwrap_err().contains("no ports to forward"));
        wizard.update(Message::Forwards(String::new()));
        assert_eq!(wizard.spec().unwrap().network, VmNetwork::None);
    }

    #[test]
    fn overcommitment_needs_the_box_ticked() {
        let mut wizard = Wizard::new(
            HOST,
            vec![Resources {
                cpus: 2.0,
                memory: 1 << 30,
                disk: 0,
            }],
        );
        wizard.update(Message::Name("big".into()));
        wizard.update(Message::Boot(Boot::Nothing));
        wizard.update(Message::Memory(16 * 1024));
        assert!(wizard.spec().unwrap_err().contains("--overcommit"));
        wizard.update(Message::Overcommit(true));
        assert!(wizard.spec().unwrap().overcommit);
    }

    fn debian_info(path: &str) -> IsoInfo {
        use berth_api::iso::{IsoBootEntry, NameScheme, Suggested};
        let entry = |index: u32, title: &str, initrd: &str, default: bool| IsoBootEntry {
            index,
            title: title.into(),
            kernel: "/install.amd/vmlinuz".into(),
            initrds: vec![initrd.into()],
            cmdline: format!("vga=788 --- quiet berth.entry={index}"),
            source: "/isolinux/gtk.cfg".into(),
            default,
        };
        IsoInfo {
            path: path.into(),
            size: 600 << 20,
            volume_id: "Debian 12.5.0 amd64 n".into(),
            names: NameScheme::RockRidge,
            distro: Some("Debian".into()),
            version: Some("12.5.0".into()),
            description: Some(
                "Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 NETINST".into(),
            ),
            kind: IsoKind::Installer,
            boot_images: vec![],
            entries: vec![
                entry(0, "Graphical install", "/install.amd/gtk/initrd.gz", true),
                entry(1, "Install", "/install.amd/initrd.gz", false),
            ],
            suggested: Suggested {
                cpus: 2,
                memory: 2 << 30,
                disk: 20 << 30,
            },
            unbootable: None,
            warnings: vec![],
        }
    }

    /// Name the VM and type an ISO path into the form, as a user would.
    fn pick_iso(wizard: &mut Wizard, path: &str) -> Vec<Event> {
        interact(wizard, |ui| {
            ui.click(iced::widget::Id::new("name")).unwrap();
            ui.typewrite("deb");
        });
        // The simulator finds no text in a radio's label to click; its message is the same.
        wizard.update(Message::Boot(Boot::Iso));
        interact(wizard, |ui| {
            ui.click(iced::widget::Id::new("iso")).unwrap();
            ui.typewrite(path);
        })
    }

    #[test]
    fn an_iso_is_inspected_shown_and_its_chosen_entry_booted() {
        let mut wizard = Wizard::new(HOST, vec![]);
        let events = pick_iso(&mut wizard, "/isos/debian.iso");
        // Asked once, when the path became a whole image name, not at every key.
        assert_eq!(events, vec![Event::Inspect("/isos/debian.iso".into())]);
        {
            let mut ui = simulator(wizard.view());
            assert!(ui.find("reading the ISO image…").is_ok());
        }
        assert!(
            wizard.spec().is_err(),
            "no Create before berthd has answered"
        );

        wizard.update(Message::Inspected(
            "/isos/debian.iso".into(),
            Ok(Box::new(debian_info("/isos/debian.iso"))),
        ));
        // The suggestion, fitted to the 2-CPU, 8 GiB, 100 GiB host.
        assert_eq!(
            (wizard.cpus, wizard.memory_mib, wizard.disk_gib),
            (2, 2048, 20)
        );
        {
            let mut ui = simulator(wizard.view());
            assert!(ui.find("Debian 12.5.0 (installer)").is_ok());
            assert!(
                ui.find("Command line: vga=788 --- quiet berth.entry=0")
                    .is_ok()
            );
        }
        // The pick list draws its lines itself (no text widget for the simulator to find):
        // its options are checked as data, the choice through its message.
        let IsoState::Inspected(info) = &wizard.iso_state else {
            panic!("{:?}", wizard.iso_state)
        };
        let labels: Vec<String> = entry_choices(info).iter().map(|c| c.to_string()).collect();
        assert_eq!(labels, ["0: Graphical install (default)", "1: Install"]);
        wizard.update(Message::Entry(1));
        {
            let mut ui = simulator(wizard.view());
            assert!(
                ui.find("Command line: vga=788 --- quiet berth.entry=1")
                    .is_ok()
            );
        }
        let events = interact(&mut wizard, |ui| {
            ui.click("Create").unwrap();
        });
        let [Event::Create(spec)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(
            spec.boot,
            Some(BootSource::Iso {
                iso: "/isos/debian.iso".into(),
                entry: Some(1)
            })
        );
        assert_eq!((spec.cpus, spec.memory, spec.disk), (2, 2 << 30, 20 << 30));
    }

    #[test]
    fn sliders_the_user_moved_keep_their_values() {
        let mut wizard = Wizard::new(HOST, vec![]);
        wizard.update(Message::Boot(Boot::Iso));
        wizard.update(Message::Memory(512));
        let event = wizard.update(Message::Iso("/isos/debian.iso".into()));
        assert_eq!(event, Some(Event::Inspect("/isos/debian.iso".into())));
        wizard.update(Message::Inspected(
            "/isos/debian.iso".into(),
            Ok(Box::new(debian_info("/isos/debian.iso"))),
        ));
        assert_eq!(
            (wizard.cpus, wizard.memory_mib, wizard.disk_gib),
            (2, 512, 20)
        );
    }

    #[test]
    fn an_image_berth_cannot_boot_says_why_and_cannot_be_created() {
        let mut wizard = Wizard::new(HOST, vec![]);
        pick_iso(&mut wizard, "/isos/win.iso");
        let mut windows = debian_info("/isos/win.iso");
        windows.distro = None;
        windows.version = None;
        windows.kind = IsoKind::Unknown;
        windows.entries.clear();
        windows.unbootable =
            Some("it is a Windows image (sources/install.wim), which needs firmware".into());
        wizard.update(Message::Inspected(
            "/isos/win.iso".into(),
            Ok(Box::new(windows)),
        ));
        {
            let mut ui = simulator(wizard.view());
            assert!(ui
                .find("Berth cannot boot this image: it is a Windows image (sources/install.wim), which needs firmware")
                .is_ok());
        }
        let events = interact(&mut wizard, |ui| {
            let _ = ui.click("Create");
        });
        assert!(events.is_empty(), "{events:?}");

        // A file berthd cannot read as an ISO: its message, and still no Create.
        let event = wizard.update(Message::Iso("/isos/notes.txt".into()));
        assert_eq!(event, None, "not a whole image name yet");
        let event = wizard.update(Message::IsoSubmit);
        assert_eq!(event, Some(Event::Inspect("/isos/notes.txt".into())));
        // An answer about a path no longer in the field is dropped.
        wizard.update(Message::Inspected(
            "/isos/win.iso".into(),
            Ok(Box::new(debian_info("/isos/win.iso"))),
        ));
        assert!(matches!(wizard.iso_state, IsoState::Inspecting(_)));
        wizard.update(Message::Inspected(
            "/isos/notes.txt".into(),
            Err("not an ISO 9660 image: no CD001 volume descriptor".into()),
        ));
        let mut ui = simulator(wizard.view());
        assert!(
            ui.find("not an ISO 9660 image: no CD001 volume descriptor")
                .is_ok()
        );
        assert!(wizard.spec().is_err());
    }

    #[test]
    fn an_image_only_the_firmware_starts_is_created_to_start_from_the_cd() {
        use berth_api::iso::BootImage;
        let mut wizard = Wizard::new(HOST, vec![]);
        pick_iso(&mut wizard, "/isos/rescue.iso");
        let mut rescue = debian_info("/isos/rescue.iso");
        rescue.entries.clear();
        rescue.boot_images = vec![BootImage {
            platform: BootImage::BIOS.into(),
            bootable: true,
            emulation: "none".into(),
            lba: 40,
            sectors: 4,
        }];
        wizard.update(Message::Inspected(
            "/isos/rescue.iso".into(),
            Ok(Box::new(rescue)),
        ));
        {
            let mut ui = simulator(wizard.view());
            assert!(ui.find(FIRMWARE_ONLY).is_ok());
        }
        let events = interact(&mut wizard, |ui| {
            ui.click("Create").unwrap();
        });
        let [Event::Create(spec)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(spec.boot_from, Some(BootFrom::Iso));
        assert_eq!(
            spec.boot,
            Some(BootSource::Iso {
                iso: "/isos/rescue.iso".into(),
                entry: None
            })
        );
    }
}
