//! The New VM wizard: a name, what to boot (a kernel with initrd and command line, or an ISO),
//! and CPUs, memory and disk on sliders that show U_vm, M_vm, P_vm and the host's overcommit
//! before anything is created. Every field is checked as it changes, with the same checks and
//! messages berthd applies; Create is offered only when all pass.

use std::path::PathBuf;

use berth_api::size::format_size;
use berth_api::utilisation::{Resources, host_allocation, vm_allocation};
use berth_api::validate;
use berth_api::vm::{BootSource, VmSpec};
use iced::widget::{button, checkbox, column, container, radio, row, slider, text, text_input};
use iced::{Element, Length};

use crate::widget::form::{danger, field};
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
    Cpus(u32),
    /// Memory in MiB.
    Memory(u32),
    /// Disk in GiB.
    Disk(u32),
    Overcommit(bool),
    Create,
    Cancel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Create(VmSpec),
    Cancel,
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
    pub cpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub overcommit: bool,
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
            boot: Boot::Kernel,
            kernel: String::new(),
            initrd: String::new(),
            cmdline: "console=ttyS0".into(),
            iso: String::new(),
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
            Boot::Iso => path(&self.iso, "ISO image", true),
            Boot::Nothing => None,
        }
    }

    fn resources_problem(&self) -> Option<String> {
        validate::vm_resources(&self.resources(), &self.host, self.overcommit).err()
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
        let boot = match self.boot {
            Boot::Kernel => Some(BootSource::Kernel {
                kernel: PathBuf::from(self.kernel.trim()),
                initrd: Some(self.initrd.trim())
                    .filter(|i| !i.is_empty())
                    .map(PathBuf::from),
                cmdline: self.cmdline.clone(),
            }),
            Boot::Iso => Some(BootSource::Iso {
                iso: PathBuf::from(self.iso.trim()),
                entry: None,
            }),
            Boot::Nothing => None,
        };
        let r = self.resources();
        Ok(VmSpec {
            name: self.name.clone(),
            cpus: self.cpus,
            memory: r.memory,
            disk: r.disk,
            boot,
            overcommit: self.overcommit,
        })
    }

    pub fn update(&mut self, message: Message) -> Option<Event> {
        match message {
            Message::Name(v) => self.name = v,
            Message::Boot(v) => self.boot = v,
            Message::Kernel(v) => self.kernel = v,
            Message::Initrd(v) => self.initrd = v,
            Message::Cmdline(v) => self.cmdline = v,
            Message::Iso(v) => self.iso = v,
            Message::Cpus(v) => self.cpus = v,
            Message::Memory(v) => self.memory_mib = v,
            Message::Disk(v) => self.disk_gib = v,
            Message::Overcommit(v) => self.overcommit = v,
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

    pub fn view(&self) -> Element<'_, Message> {
        let problem = |p: Option<String>| -> Element<'_, Message> {
            match p {
                Some(p) => text(p).size(13).style(danger).into(),
                None => text("").size(13).into(),
            }
        };
        let mut boot = column![
            row![
                radio("Linux kernel", Boot::Kernel, Some(self.boot), Message::Boot),
                radio("ISO image", Boot::Iso, Some(self.boot), Message::Boot),
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
                        .on_input(Message::Iso),
                ));
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
        ]
        .spacing(8);
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
}
