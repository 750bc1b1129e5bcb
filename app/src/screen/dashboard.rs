//! The main window's content: a sidebar of the host, VMs and containers with state badges, a
//! toolbar of actions on the selection, and the selection's details with its gauges.

use berth_api::Request;
use berth_api::container::{ContainerInfo, ContainerState};
use berth_api::host::Availability;
use berth_api::network::VmNetwork;
use berth_api::size::format_size;
use berth_api::validate;
use berth_api::vm::{BootFrom, BootSource, VmEdit, VmInfo, VmState};
use iced::widget::{
    button, checkbox, column, container, row, rule, scrollable, space, text, text_input,
};
use iced::{Alignment, Color, Element, Length, Theme};

use crate::data::console::Pointer;
use crate::data::sidebar::{Filter, count, listed};
use crate::data::{HostHistory, Snapshot};
use crate::screen::console::ConsoleView;
use crate::screen::terminal::{self, Terminal};
use crate::widget::gauge::gauge;
use crate::widget::port_links::port_links;
use crate::widget::sparkline::sparkline;
use crate::widget::surface_clip::surface_clip;

/// What is selected in the sidebar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    #[default]
    Host,
    Vm(String),
    Container(String),
}

#[derive(Debug, Clone)]
pub enum Message {
    Select(Selection),
    Start,
    Stop,
    Pause,
    Resume,
    Restart,
    Delete,
    ConfirmDelete,
    CancelDelete,
    /// The mouse did something over the VM console.
    Console(Pointer),
    /// The VM console's picture area has this size (logical pixels).
    ConsoleResized(iced::Size),
    /// Open the selected VM's display in its own window (berth-console).
    Detach,
    /// Show the selected VM's display in the whole window (the VM view).
    ShowScreen,
    /// Detach the selected VM's ISO, so it starts from the disk installed from it.
    EjectIso,
    /// The sidebar's filter field was edited.
    FilterText(String),
    /// The sidebar shows only running VMs and containers, or all.
    RunningOnly(bool),
    /// The selected VM's forwards field was edited.
    Forwards(String),
    /// Give the selected VM the forwards its field has.
    ApplyForwards,
    /// Open this address (a published port's) in the desktop's browser.
    OpenUrl(String),
    /// Open a terminal in the selected container, or close the one open.
    OpenTerminal,
    CloseTerminal,
    /// The open terminal's widget did something (the application hands it to the terminal).
    Terminal(terminal::Message),
}

/// The sidebar's filter field (Ctrl+F focuses it).
pub const FILTER_FIELD: &str = "sidebar-filter";

/// What the dashboard asks of the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Send this request; the string says what it does, for messages.
    Request(Request, String),
    /// The mouse did something over the VM console (a press also gives it the keyboard).
    Console(Pointer),
    /// The VM console's picture area has this size (logical pixels).
    ConsoleResized(iced::Size),
    /// Open VM `.0`'s display in a window of its own.
    Detach(String),
    /// Show VM `.0`'s display in the whole window.
    ShowScreen(String),
    /// Open this address in the desktop's browser.
    OpenUrl(String),
    /// Open a terminal in container `.0` (its id).
    OpenTerminal(String),
    CloseTerminal,
}

#[derive(Debug, Default)]
pub struct Dashboard {
    pub selection: Selection,
    /// Delete was pressed and awaits confirmation.
    pub confirming_delete: bool,
    /// The selected container's output or VM's serial console, as last fetched and (for a VM)
    /// followed since.
    pub logs: Vec<String>,
    /// What the sidebar lists.
    pub filter: Filter,
    /// The selected VM's forwards as being edited (until applied or another selection).
    pub forwards: Option<String>,
}

/// How many lines of a VM's serial console the details pane keeps.
pub const SERIAL_LINES: usize = 500;

impl Dashboard {
    /// A VM wrote `data` on its serial console: follow it if that VM is the one shown.
    pub fn vm_serial(&mut self, name: &str, data: &[u8]) {
        if !matches!(&self.selection, Selection::Vm(shown) if shown == name) {
            return;
        }
        let text = String::from_utf8_lossy(data);
        for (n, piece) in text.split('\n').enumerate() {
            let piece = piece.trim_end_matches('\r');
            match self.logs.last_mut() {
                Some(last) if n == 0 => last.push_str(piece),
                _ => self.logs.push(piece.to_owned()),
            }
        }
        if self.logs.len() > SERIAL_LINES {
            self.logs.drain(..self.logs.len() - SERIAL_LINES);
        }
    }

    pub fn update(&mut self, message: Message, snapshot: &Snapshot) -> Option<Event> {
        let request = |r: Request, what: String| Some(Event::Request(r, what));
        match (message, &self.selection) {
            (Message::Select(selection), _) => {
                self.selection = selection;
                self.confirming_delete = false;
                self.forwards = None;
                None
            }
            (Message::Forwards(text), Selection::Vm(_)) => {
                self.forwards = Some(text);
                None
            }
            (Message::ApplyForwards, Selection::Vm(name)) => {
                let vm = snapshot.vm(name)?;
                let text = self.forwards.as_deref()?;
                let forwards = validate::parse_vm_forwards(&vm.config.network.mode, text).ok()?;
                let name = name.clone();
                self.forwards = None;
                request(
                    Request::VmEdit {
                        name: name.clone(),
                        edit: Box::new(VmEdit {
                            forwards: Some(forwards),
                            ..VmEdit::default()
                        }),
                    },
                    format!("change VM {name}'s port forwards"),
                )
            }
            (Message::FilterText(text), _) => {
                self.filter.text = text;
                None
            }
            (Message::RunningOnly(running_only), _) => {
                self.filter.running_only = running_only;
                None
            }
            (Message::Delete, Selection::Vm(_) | Selection::Container(_)) => {
                self.confirming_delete = true;
                None
            }
            (Message::Console(pointer), Selection::Vm(_)) => Some(Event::Console(pointer)),
            (Message::ConsoleResized(size), _) => Some(Event::ConsoleResized(size)),
            (Message::Detach, Selection::Vm(name)) => Some(Event::Detach(name.clone())),
            (Message::ShowScreen, Selection::Vm(name)) => Some(Event::ShowScreen(name.clone())),
            (Message::OpenTerminal, Selection::Container(id)) => {
                Some(Event::OpenTerminal(id.clone()))
            }
            (Message::CloseTerminal, _) => Some(Event::CloseTerminal),
            (Message::OpenUrl(url), _) => Some(Event::OpenUrl(url)),
            // The application gives the terminal its messages before the dashboard sees them.
            (Message::Terminal(_), _) => None,
            (Message::CancelDelete, _) => {
                self.confirming_delete = false;
                None
            }
            (Message::ConfirmDelete, Selection::Vm(name)) => {
                let name = name.clone();
                self.confirming_delete = false;
                self.selection = Selection::Host;
                request(
                    Request::VmDelete { name: name.clone() },
                    format!("delete VM {name}"),
                )
            }
            (Message::ConfirmDelete, Selection::Container(id)) => {
                let (id, name) = (
                    id.clone(),
                    snapshot
                        .container(id)
                        .map_or(id.clone(), |c| c.name.clone()),
                );
                self.confirming_delete = false;
                self.selection = Selection::Host;
                request(
                    Request::ContainerRm {
                        container: id,
                        force: true,
                        volumes: false,
                    },
                    format!("remove container {name}"),
                )
            }
            (Message::EjectIso, Selection::Vm(name)) => request(
                Request::VmEdit {
                    name: name.clone(),
                    edit: Box::new(VmEdit {
                        eject: true,
                        ..VmEdit::default()
                    }),
                },
                format!("eject VM {name}'s ISO"),
            ),
            (Message::Start, Selection::Vm(name)) => request(
                Request::VmStart { name: name.clone() },
                format!("start VM {name}"),
            ),
            (Message::Stop, Selection::Vm(name)) => request(
                Request::VmStop {
                    name: name.clone(),
                    force: false,
                    timeout_secs: None,
                },
                format!("stop VM {name}"),
            ),
            (Message::Pause, Selection::Vm(name)) => request(
                Request::VmPause { name: name.clone() },
                format!("pause VM {name}"),
            ),
            (Message::Resume, Selection::Vm(name)) => request(
                Request::VmResume { name: name.clone() },
                format!("resume VM {name}"),
            ),
            (Message::Start, Selection::Container(id)) => request(
                Request::ContainerStart {
                    container: id.clone(),
                },
                "start the container".into(),
            ),
            (Message::Stop, Selection::Container(id)) => request(
                Request::ContainerStop {
                    container: id.clone(),
                    timeout_secs: None,
                },
                "stop the container".into(),
            ),
            (Message::Restart, Selection::Container(id)) => request(
                Request::ContainerRestart {
                    container: id.clone(),
                },
                "restart the container".into(),
            ),
            _ => None,
        }
    }

    pub fn view<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        history: &'a HostHistory,
        console: &'a ConsoleView,
        terminal: Option<&'a Terminal>,
    ) -> Element<'a, Message> {
        let details = match &self.selection {
            Selection::Host => host_details(snapshot, history),
            Selection::Vm(name) => match snapshot.vm(name) {
                Some(vm) => vm_details(vm, &self.logs, console, self.forwards.as_deref()),
                None => text(format!("VM {name} is gone.")).into(),
            },
            Selection::Container(id) => match snapshot.container(id) {
                Some(c) => {
                    container_details(c, &self.logs, terminal.filter(|t| t.container() == c.id))
                }
                None => text("That container is gone.").into(),
            },
        };
        let body = row![
            container(self.sidebar(snapshot))
                .width(Length::Fixed(250.0))
                .height(Length::Fill)
                .padding(10),
            rule::vertical(1),
            column![
                self.toolbar(snapshot, terminal),
                // The console surface, if any, is placed where the scrolled pane shows it.
                surface_clip(
                    scrollable(container(details).padding(16)),
                    console.surface()
                )
            ]
            .spacing(0)
            .width(Length::Fill),
        ];
        body.height(Length::Fill).into()
    }

    fn sidebar<'a>(&'a self, snapshot: &'a Snapshot) -> Element<'a, Message> {
        let item = |label: String, badge: Option<(String, Badge)>, selection: Selection| {
            let selected = self.selection == selection;
            let mut content = row![text(label).width(Length::Fill)]
                .align_y(Alignment::Center)
                .spacing(6);
            if let Some((badge, state)) = badge {
                content = content.push(text(badge).size(12).style(move |theme: &Theme| {
                    text::Style {
                        // On the selection's primary background the state colours would not
                        // read.
                        color: Some(if selected {
                            theme.extended_palette().primary.base.text
                        } else {
                            state.color(theme)
                        }),
                    }
                }));
            }
            button(content)
                .width(Length::Fill)
                .style(if selected {
                    button::primary
                } else {
                    button::text
                })
                .on_press(Message::Select(selection))
        };
        let filtered = self.filter.is_active();
        let search = text_input("Filter (Ctrl+F)", &self.filter.text)
            .id(FILTER_FIELD)
            .on_input(Message::FilterText)
            .size(13);
        let running_only = checkbox(self.filter.running_only)
            .label("Running only")
            .on_toggle(Message::RunningOnly)
            .size(14)
            .text_size(13);
        let heading = |title: &'static str, counted: String| {
            row![
                text(title).size(13).width(Length::Fill),
                text(counted).size(11)
            ]
            .align_y(Alignment::Center)
        };
        let mut list = column![
            search,
            running_only,
            item("Host".into(), None, Selection::Host)
        ]
        .spacing(4);

        let vm_running = |vm: &VmInfo| matches!(vm.state, VmState::Running | VmState::Paused);
        let vms = listed(
            &snapshot.vms,
            |vm| &vm.config.name,
            vm_running,
            &self.filter,
        );
        let running = snapshot.vms.iter().filter(|vm| vm_running(vm)).count();
        list = list
            .push(heading(
                "Virtual machines",
                count(vms.len(), running, snapshot.vms.len(), filtered),
            ))
            .push(rule::horizontal(1));
        if vms.is_empty() {
            list = list.push(text(if filtered { "none match" } else { "none yet" }).size(13));
        }
        for vm in vms {
            let badge = (vm.state.to_string(), Badge::Vm(vm.state.clone()));
            list = list.push(item(
                vm.config.name.clone(),
                Some(badge),
                Selection::Vm(vm.config.name.clone()),
            ));
        }

        let ct_running = |c: &ContainerInfo| matches!(c.state, ContainerState::Running { .. });
        let containers = listed(&snapshot.containers, |c| &c.name, ct_running, &self.filter);
        let running = snapshot.containers.iter().filter(|c| ct_running(c)).count();
        list = list
            .push(space::vertical().height(8))
            .push(heading(
                "Containers",
                count(
                    containers.len(),
                    running,
                    snapshot.containers.len(),
                    filtered,
                ),
            ))
            .push(rule::horizontal(1));
        if containers.is_empty() {
            list = list.push(text(if filtered { "none match" } else { "none yet" }).size(13));
        }
        for c in containers {
            let badge = (short_state(&c.state), Badge::Container(c.state.clone()));
            list = list.push(item(
                c.name.clone(),
                Some(badge),
                Selection::Container(c.id.clone()),
            ));
        }
        scrollable(list).into()
    }

    fn toolbar<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        terminal: Option<&'a Terminal>,
    ) -> Element<'a, Message> {
        let action = |label: &'static str, message: Option<Message>| {
            button(text(label))
                .style(button::secondary)
                .on_press_maybe(message)
        };
        let bar: Element<'a, Message> = if self.confirming_delete {
            let what = match &self.selection {
                Selection::Vm(name) => format!("Delete VM {name} and its disk?"),
                Selection::Container(id) => {
                    format!(
                        "Remove container {}?",
                        snapshot
                            .container(id)
                            .map_or(id.as_str(), |c| c.name.as_str())
                    )
                }
                Selection::Host => String::new(),
            };
            row![
                text(what),
                button(text("Delete"))
                    .style(button::danger)
                    .on_press(Message::ConfirmDelete),
                button(text("Cancel"))
                    .style(button::secondary)
                    .on_press(Message::CancelDelete),
            ]
            .spacing(10)
            .align_y(Alignment::Center)
            .into()
        } else {
            match &self.selection {
                Selection::Host => {
                    row![text("Select a VM or a container to act on it.").size(14)].into()
                }
                Selection::Vm(name) => {
                    let state = snapshot.vm(name).map(|v| v.state.clone());
                    let stopped = matches!(state, Some(VmState::Stopped | VmState::Crashed { .. }));
                    let running = matches!(state, Some(VmState::Running));
                    let paused = matches!(state, Some(VmState::Paused));
                    let mut bar = row![
                        action("Start", stopped.then_some(Message::Start)),
                        action("Stop", (running || paused).then_some(Message::Stop)),
                        action("Pause", running.then_some(Message::Pause)),
                        action("Resume", paused.then_some(Message::Resume)),
                        action(
                            "Detach console",
                            (running || paused).then_some(Message::Detach)
                        ),
                        action("Delete", stopped.then_some(Message::Delete)),
                    ];
                    // Once an installer has run (the guest powered off), the ISO can go: what
                    // VirtualBox and GNOME Boxes offer at that point.
                    let installed_from_iso = snapshot.vm(name).is_some_and(|vm| {
                        matches!(vm.config.boot, Some(BootSource::Iso { .. }))
                            && vm.config.disk.is_some()
                    });
                    if stopped && installed_from_iso {
                        bar = bar.push(action(
                            "Eject the ISO and boot from disk",
                            Some(Message::EjectIso),
                        ));
                    }
                    // The display in the whole window: what a user of a running VM came for.
                    bar = bar.push(
                        button(text("Show screen"))
                            .style(button::primary)
                            .on_press_maybe((running || paused).then_some(Message::ShowScreen)),
                    );
                    bar.spacing(8).into()
                }
                Selection::Container(id) => {
                    let running = snapshot.container(id).is_some_and(|c| c.state.is_running());
                    let open = terminal.is_some_and(|t| t.container() == id);
                    let shell = if open {
                        action("Close terminal", Some(Message::CloseTerminal))
                    } else {
                        action("Terminal", running.then_some(Message::OpenTerminal))
                    };
                    row![
                        action("Start", (!running).then_some(Message::Start)),
                        action("Stop", running.then_some(Message::Stop)),
                        action("Restart", Some(Message::Restart)),
                        shell,
                        action("Delete", Some(Message::Delete)),
                    ]
                    .spacing(8)
                    .into()
                }
            }
        };
        container(bar)
            .padding(10)
            .width(Length::Fill)
            .style(container::bordered_box)
            .into()
    }
}

/// Whose state a sidebar badge shows, coloured by the theme.
#[derive(Clone)]
enum Badge {
    Vm(VmState),
    Container(ContainerState),
}

impl Badge {
    fn color(&self, theme: &Theme) -> Color {
        match self {
            Badge::Vm(state) => crate::theme::vm_state(theme, state),
            Badge::Container(state) => crate::theme::container_state(theme, state),
        }
    }
}

fn short_state(state: &ContainerState) -> String {
    match state {
        ContainerState::Running { .. } => "running".into(),
        ContainerState::Created => "created".into(),
        ContainerState::Stopped {
            exit_code: Some(code),
            ..
        } => format!("exited {code}"),
        ContainerState::Stopped {
            exit_code: None, ..
        } => "exited".into(),
    }
}

fn heading<'a, Message: 'a>(title: impl Into<String>) -> Element<'a, Message> {
    text(title.into()).size(22).into()
}

fn section<'a, Message: 'a>(title: &'static str) -> Element<'a, Message> {
    column![
        space::vertical().height(10),
        text(title).size(15),
        rule::horizontal(1)
    ]
    .spacing(4)
    .into()
}

fn host_details<'a>(snapshot: &'a Snapshot, history: &'a HostHistory) -> Element<'a, Message> {
    let Some(host) = &snapshot.host else {
        return text("Waiting for berthd…").into();
    };
    let mut page = column![
        heading("Host"),
        text(format!(
            "N = {} CPUs · M = {} memory · P = {} disk ({} free) · berthd {} ({} mode)",
            host.total.cpus,
            format_size(host.total.memory),
            format_size(host.total.disk),
            format_size(host.disk_free),
            host.server_version,
            host.mode
        ))
        .size(14),
        support(
            "VMs",
            &match &host.vms {
                Availability::Yes => Ok("can run here".to_owned()),
                Availability::No { why } => Err(why.clone()),
            }
        ),
        support("Containers", &Ok(host.containers.describe())),
        section("Given to VMs (allocated over the host's totals)"),
        gauge(
            "ΣU_vm",
            host.allocation.cpu,
            format!("{} vCPUs of {}", host.allocated.cpus, host.total.cpus)
        ),
        gauge(
            "ΣM_vm",
            host.allocation.memory,
            format!(
                "{} of {}",
                format_size(host.allocated.memory),
                format_size(host.total.memory)
            )
        ),
        gauge(
            "ΣP_vm",
            host.allocation.disk,
            format!(
                "{} of {}",
                format_size(host.allocated.disk),
                format_size(host.total.disk)
            )
        ),
    ]
    .spacing(8);
    if let Some(warning) = snapshot.overcommit_warning() {
        page = page.push(text(warning).style(crate::theme::danger));
    }
    page = page.push(section("Measured use (used over total), last minute"));
    for (label, h) in [
        ("CPU", &history.cpu),
        ("Memory", &history.memory),
        ("Disk", &history.disk),
    ] {
        page = page.push(
            row![
                gauge(label, f64::from(h.last().unwrap_or(0.0)), ""),
                sparkline(h.values(), 240.0)
            ]
            .spacing(10)
            .align_y(Alignment::Center),
        );
    }
    for problem in &snapshot.problems {
        page = page.push(text(format!("Skipped an unreadable definition: {problem}")).size(13));
    }
    page.into()
}

/// What works under this daemon: `what: yes` in the usual colour, or why not in the danger
/// colour (with what to do).
fn support<'a>(what: &str, said: &Result<String, String>) -> Element<'a, Message> {
    match said {
        Ok(yes) => text(format!("{what}: {yes}")).size(14).into(),
        Err(why) => text(format!("{what}: {why}"))
            .size(14)
            .style(crate::theme::danger)
            .into(),
    }
}

fn vm_details<'a>(
    vm: &'a VmInfo,
    serial: &'a [String],
    console: &'a ConsoleView,
    forwards: Option<&'a str>,
) -> Element<'a, Message> {
    let c = &vm.config;
    let boot = match &c.boot {
        Some(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }) => format!(
            "kernel {}{}, command line \"{cmdline}\"",
            kernel.display(),
            initrd
                .as_ref()
                .map(|i| format!(", initrd {}", i.display()))
                .unwrap_or_default()
        ),
        Some(BootSource::Iso { iso, .. }) => format!("ISO {}", iso.display()),
        None if c.boot_from == BootFrom::Disk => "the system on its disk".into(),
        None => "nothing to boot yet".into(),
    };
    let disk = c.disk.as_ref().map_or(0, |d| d.size);
    column![
        heading(format!("VM {}", c.name)),
        text(format!("State: {}", vm.state)),
        // One line, so the console below keeps its room.
        text(format!(
            "Boots: {boot} · starts from {}",
            c.boot_from.describe()
        ))
        .size(14),
        vm_network_line(vm, forwards),
        // The guest's screen first, as in VirtualBox and GNOME Boxes: what a user came to see.
        console_section(console),
        section("Allocation (share of the host)"),
        gauge("U_vm", vm.allocation.cpu, format!("{} vCPUs", c.cpus)),
        gauge("M_vm", vm.allocation.memory, format_size(c.memory)),
        gauge(
            "P_vm",
            vm.allocation.disk,
            if disk == 0 {
                "no disk".into()
            } else {
                format!("{} sparse disk", format_size(disk))
            }
        ),
        text(format!("Directory: {}", vm.dir.display())).size(13),
        section("Serial console"),
        output_pane(serial),
    ]
    .spacing(8)
    .into()
}

/// The VM's network on one line (so the console below keeps its room), with its port forwards
/// in a field editable while it is stopped (they are passt's, set at start): the field, Apply,
/// and below, what is wrong with what was typed.
fn vm_network_line<'a>(vm: &'a VmInfo, draft: Option<&'a str>) -> Element<'a, Message> {
    let c = &vm.config;
    if c.network.mode == VmNetwork::None {
        return text(format!("Network: {}", c.network.describe(&c.name)))
            .size(14)
            .into();
    }
    let current: Vec<String> = c.network.forwards.iter().map(|f| f.vm_forward()).collect();
    let current = current.join(" ");
    let value = draft.unwrap_or(&current);
    let editable = !vm.state.is_active();
    let checked = draft.map(|d| validate::parse_vm_forwards(&c.network.mode, d));
    let mut field = text_input(
        if editable {
            "none, e.g. tcp:2222:22"
        } else {
            "none (stop the VM to add some)"
        },
        value,
    )
    .size(14);
    if editable {
        field = field
            .on_input(Message::Forwards)
            .on_submit(Message::ApplyForwards);
    }
    let apply = button(text("Apply").size(14))
        .style(button::secondary)
        .on_press_maybe(
            (editable && matches!(checked, Some(Ok(_))) && draft != Some(current.as_str()))
                .then_some(Message::ApplyForwards),
        );
    let address = vm.address.map(|a| format!(" at {a}")).unwrap_or_default();
    let line = row![
        text(format!(
            "Network: {}, {}{address} · forwards",
            c.network.mode,
            c.network.mac_of(&c.name)
        ))
        .size(14),
        field,
        apply
    ]
    .spacing(8)
    .align_y(Alignment::Center);
    // Always a column with the line first, so the field keeps the keyboard when an error
    // appears under it (iced keeps a widget's state by its place in the tree).
    let mut lines = column![line].spacing(4);
    if let Some(Err(why)) = checked {
        lines = lines.push(text(why).size(13).style(crate::theme::danger));
    }
    // The forwards lead somewhere while the guest runs.
    if vm.state == VmState::Running && !c.network.forwards.is_empty() {
        lines = lines.push(port_links(
            "Open".to_owned(),
            &c.network.forwards,
            Message::OpenUrl,
        ));
    }
    lines.into()
}

/// The VM's display, as its console shows it.
fn console_section(view: &ConsoleView) -> Element<'_, Message> {
    match view {
        ConsoleView::None => space::vertical().height(0).into(),
        ConsoleView::Unavailable(why) => text(format!("No screen: {why}")).size(13).into(),
        ConsoleView::Shown { focused, .. } => column![
            section(if *focused {
                "Screen — has the keyboard; Right Ctrl releases it"
            } else {
                "Screen — click it to type into the guest"
            }),
            container(view.widget(Message::Console, Message::ConsoleResized)).height(420),
        ]
        .spacing(6)
        .into(),
    }
}

/// Lines of output (a container's, a VM's serial console), newest at the bottom.
fn output_pane(lines: &[String]) -> Element<'_, Message> {
    container(
        scrollable(
            lines
                .iter()
                .rev()
                .take(200)
                .rev()
                .fold(column![].spacing(1), |col, line| {
                    col.push(text(line.as_str()).size(13).font(iced::Font::MONOSPACE))
                }),
        )
        .anchor_bottom(),
    )
    .max_height(260.0)
    .width(Length::Fill)
    .padding(8)
    .style(container::bordered_box)
    .into()
}

/// "Network: bridge 10.89.0.2 · ports" and the published ports as links (the address on the
/// bridge only); "no ports published" when there are none.
fn network_line(c: &ContainerInfo) -> Element<'_, Message> {
    let address = c.address.map(|a| format!(" {a}")).unwrap_or_default();
    if c.ports.is_empty() {
        return text(format!(
            "Network: {}{address} · no ports published",
            c.network.name()
        ))
        .size(14)
        .into();
    }
    let label = format!("Network: {}{address} · ports", c.network.name());
    port_links(label, &c.ports, Message::OpenUrl)
}

fn container_details<'a>(
    c: &'a ContainerInfo,
    logs: &'a [String],
    terminal: Option<&'a Terminal>,
) -> Element<'a, Message> {
    let limit = |v: Option<String>| v.unwrap_or_else(|| "no limit".into());
    let details = column![
        heading(format!("Container {}", c.name)),
        text(format!("{} · image {} · {}", c.id, c.image, c.state)),
        text(format!("Command: {}", c.command.join(" "))).size(14),
        network_line(c),
        section("Allocation (share of the host)"),
        gauge(
            "U_ct",
            c.allocation.cpu,
            limit(c.limits.cpus.map(|n| format!("{n} CPUs")))
        ),
        gauge(
            "M_ct",
            c.allocation.memory,
            limit(c.limits.memory.map(format_size))
        ),
        gauge("P_ct", c.allocation.disk, "its writable layer"),
        text(format!(
            "Limits: pids {}",
            limit(c.limits.pids.map(|p| p.to_string()))
        ))
        .size(13),
    ]
    .spacing(8);
    let details = match terminal {
        Some(terminal) => details
            .push(section("Terminal"))
            .push(terminal.view().map(Message::Terminal)),
        None => details,
    };
    details
        .push(section("Output"))
        .push(output_pane(logs))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with_vm() -> Snapshot {
        let vm = VmInfo {
            config: berth_api::vm::VmConfig {
                name: "web".into(),
                cpus: 1,
                memory: 1 << 30,
                disk: None,
                boot: None,
                boot_from: Default::default(),
                created: 0,
                display: Default::default(),
                network: Default::default(),
            },
            state: VmState::Stopped,
            dir: "/x/web".into(),
            allocation: Default::default(),
            address: None,
        };
        Snapshot {
            vms: vec![vm],
            ..Snapshot::default()
        }
    }

    #[test]
    fn eject_asks_to_detach_the_iso() {
        let snapshot = snapshot_with_vm();
        let mut d = Dashboard::default();
        d.update(Message::Select(Selection::Vm("web".into())), &snapshot);
        let Some(Event::Request(Request::VmEdit { name, edit }, _)) =
            d.update(Message::EjectIso, &snapshot)
        else {
            panic!("no request");
        };
        assert_eq!(name, "web");
        assert!(edit.eject);
        assert_eq!(
            *edit,
            VmEdit {
                eject: true,
                ..VmEdit::default()
            }
        );
    }

    #[test]
    fn apply_sends_the_forwards_typed_and_only_valid_ones() {
        let mut snapshot = snapshot_with_vm();
        snapshot.vms[0].config.network.mode = VmNetwork::Nat;
        let mut d = Dashboard::default();
        d.update(Message::Select(Selection::Vm("web".into())), &snapshot);
        d.update(Message::Forwards("tcp:2222:22 nonsense".into()), &snapshot);
        assert_eq!(d.update(Message::ApplyForwards, &snapshot), None);
        d.update(
            Message::Forwards("tcp:2222:22, udp:5353:53".into()),
            &snapshot,
        );
        let Some(Event::Request(Request::VmEdit { name, edit }, _)) =
            d.update(Message::ApplyForwards, &snapshot)
        else {
            panic!("no request");
        };
        assert_eq!(name, "web");
        let forwards: Vec<String> = edit
            .forwards
            .unwrap()
            .iter()
            .map(|f| f.vm_forward())
            .collect();
        assert_eq!(forwards.len(), 2, "{forwards:?}");
        assert!(
            forwards[0].contains("2222") && forwards[1].starts_with("udp:"),
            "{forwards:?}"
        );
        assert_eq!(d.forwards, None, "the field shows the VM's forwards again");
        // Another selection drops what was typed.
        d.update(Message::Forwards("tcp:1:1".into()), &snapshot);
        d.update(Message::Select(Selection::Host), &snapshot);
        assert_eq!(d.forwards, None);
    }

    #[test]
    fn a_running_vms_forwards_are_links_and_its_bridge_address_is_shown() {
        let mut snapshot = snapshot_with_vm();
        let vm = &mut snapshot.vms[0];
        vm.config.network.mode = VmNetwork::Bridge;
        vm.config.network.forwards =
            vec![berth_api::network::PortForward::parse_vm_forward("tcp:8080:80").unwrap()];
        vm.address = Some("10.89.128.0".parse().unwrap());
        let link = "http://127.0.0.1:8080/ → 80";
        // Stopped: nothing to open.
        let view = vm_details(&snapshot.vms[0], &[], &ConsoleView::None, None);
        assert!(iced_test::simulator(view).find(link).is_err());
        snapshot.vms[0].state = VmState::Running;
        let vm = &snapshot.vms[0];
        let mut ui = iced_test::simulator(vm_details(vm, &[], &ConsoleView::None, None));
        let line = format!(
            "Network: bridge, {} at 10.89.128.0 · forwards",
            vm.config.network.mac_of("web")
        );
        assert!(ui.find(line.as_str()).is_ok(), "{line}");
        ui.click(link).unwrap();
        let mut d = Dashboard::default();
        let asked: Vec<Event> = ui
            .into_messages()
            .filter_map(|m| d.update(m, &snapshot))
            .collect();
        assert_eq!(asked, [Event::OpenUrl("http://127.0.0.1:8080/".into())]);
    }

    #[test]
    fn the_shown_vm_console_is_followed_line_by_line() {
        let mut d = Dashboard {
            selection: Selection::Vm("web".into()),
            logs: vec!["booting".into()],
            ..Default::default()
        };
        d.vm_serial("web", b"... done\r\nlogin: ");
        d.vm_serial("other", b"not shown\n");
        d.vm_serial("web", b"root\n");
        assert_eq!(d.logs, ["booting... done", "login: root", ""]);
        for _ in 0..SERIAL_LINES {
            d.vm_serial("web", b"line\n");
        }
        assert_eq!(d.logs.len(), SERIAL_LINES, "the pane keeps a bounded tail");
    }

    #[test]
    fn delete_asks_first_and_then_sends_the_request() {
        let snapshot = snapshot_with_vm();
        let mut d = Dashboard::default();
        assert_eq!(
            d.update(Message::Select(Selection::Vm("web".into())), &snapshot),
            None
        );
        assert_eq!(d.update(Message::Delete, &snapshot), None);
        assert!(d.confirming_delete);
        assert_eq!(d.update(Message::CancelDelete, &snapshot), None);
        assert!(!d.confirming_delete);
        d.update(Message::Delete, &snapshot);
        let event = d.update(Message::ConfirmDelete, &snapshot);
        assert_eq!(
            event,
            Some(Event::Request(
                Request::VmDelete { name: "web".into() },
                "delete VM web".into()
            ))
        );
        assert_eq!(
            d.selection,
            Selection::Host,
            "the deleted VM is no longer selected"
        );
    }

    #[test]
    fn detach_asks_for_the_selected_vms_console_window() {
        let snapshot = snapshot_with_vm();
        let mut d = Dashboard::default();
        assert_eq!(
            d.update(Message::Detach, &snapshot),
            None,
            "nothing selected"
        );
        d.update(Message::Select(Selection::Vm("web".into())), &snapshot);
        assert_eq!(
            d.update(Message::Detach, &snapshot),
            Some(Event::Detach("web".into()))
        );
    }

    #[test]
    fn actions_go_to_the_selection() {
        let snapshot = snapshot_with_vm();
        let mut d = Dashboard::default();
        assert_eq!(
            d.update(Message::Start, &snapshot),
            None,
            "nothing selected, nothing sent"
        );
        d.update(Message::Select(Selection::Vm("web".into())), &snapshot);
        assert!(matches!(
            d.update(Message::Start, &snapshot),
            Some(Event::Request(Request::VmStart { .. }, _))
        ));
        d.update(
            Message::Select(Selection::Container("abc".into())),
            &snapshot,
        );
        assert!(matches!(
            d.update(Message::Stop, &snapshot),
            Some(Event::Request(Request::ContainerStop { container, .. }, _)) if container == "abc"
        ));
    }
}
