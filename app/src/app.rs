//! The application, a router: the connection to berthd, the latest snapshot of its state, and
//! the screens (dashboard, console, New VM wizard, Launch Dockerfile). Each screen's `update`
//! returns an optional event that becomes a request here; pushed events refresh the snapshot.

use std::sync::Arc;
use std::time::Duration;

use berth_api::client::{Client, ClientError};
use berth_api::host::DaemonMode;
use berth_api::network::ContainerNetwork;
use berth_api::vm::VmState;
use berth_api::{Event as Pushed, Request};
use iced::widget::{column, container, row, text};
use iced::{Element, Length, Subscription, Task};

use crate::connection;
use crate::data::console::Sizing;
use crate::data::{HostHistory, Snapshot};
use crate::screen::about;
use crate::screen::console::{self, Console};
use crate::screen::dashboard::{self, Dashboard};
use crate::screen::launch::{self, Launch};
use crate::screen::terminal::{self, Terminal};
use crate::screen::vm_view::{self, VmView};
use crate::screen::wizard::{self, Wizard};

/// Where the connection to berthd stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Connecting,
    Connected { socket: String, started: bool },
    Lost(String),
}

#[derive(Debug, Clone)]
pub enum Message {
    Connection(connection::Event),
    Refreshed(Result<Snapshot, ClientError>),
    Dashboard(dashboard::Message),
    Console(console::Message),
    Wizard(wizard::Message),
    NewVm,
    Launch(launch::Message),
    OpenLaunch,
    /// The Launch Dockerfile form's container runs (its id), or why not.
    Launched(Result<String, LaunchFailure>),
    /// The output of a container, or the serial log of a VM, for the selection it was asked for.
    Logs(dashboard::Selection, Result<Vec<String>, ClientError>),
    Created(Result<String, ClientError>),
    /// An action of the dashboard's was done, or failed (what it was, and why).
    Done(Result<(), (String, ClientError)>),
    Tick,
    /// iced is drawing a frame (only listened to until the first, when it is to be reported).
    Frame,
    /// A keyboard shortcut was pressed (the console does not have the keyboard).
    Shortcut(Shortcut),
    OpenAbout,
    About(about::Message),
    VmView(vm_view::Message),
    /// A screenshot was saved here, or why not.
    ScreenshotSaved(Result<std::path::PathBuf, String>),
}

/// What the window shows first (`berth --new-vm`, `--launch-dockerfile`: the desktop entry's
/// actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Opening {
    #[default]
    Dashboard,
    NewVm,
    LaunchDockerfile,
}

impl From<&berth::args::Args> for Opening {
    fn from(args: &berth::args::Args) -> Opening {
        if args.new_vm {
            Opening::NewVm
        } else if args.launch_dockerfile {
            Opening::LaunchDockerfile
        } else {
            Opening::Dashboard
        }
    }
}

/// Why Launch Dockerfile did not end with a running container.
#[derive(Debug, Clone)]
pub enum LaunchFailure {
    Build(ClientError),
    /// The image was built; the container did not start.
    Run(ClientError),
}

impl std::fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchFailure::Build(e) => write!(f, "{e}"),
            LaunchFailure::Run(e) => write!(f, "the image built, but: {e}"),
        }
    }
}

/// The window's keyboard shortcuts, as in VirtualBox where it has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Ctrl+N.
    NewVm,
    /// Ctrl+L.
    LaunchDockerfile,
    /// Escape: the open form (New VM, Launch Dockerfile) is cancelled.
    Close,
    /// Ctrl+F: the sidebar's filter field takes the keyboard.
    Filter,
    /// F11: the VM view goes full screen, or back in its frame.
    FullScreen,
}

/// The shortcut `key` with `modifiers` is, if any.
pub fn shortcut(
    key: &iced::keyboard::Key,
    modifiers: iced::keyboard::Modifiers,
) -> Option<Shortcut> {
    use iced::keyboard::Key;
    use iced::keyboard::key::Named;
    match key {
        Key::Character(c) if modifiers.command() && c.as_str() == "n" => Some(Shortcut::NewVm),
        Key::Character(c) if modifiers.command() && c.as_str() == "l" => {
            Some(Shortcut::LaunchDockerfile)
        }
        Key::Character(c) if modifiers.command() && c.as_str() == "f" => Some(Shortcut::Filter),
        Key::Named(Named::Escape) if modifiers.is_empty() => Some(Shortcut::Close),
        Key::Named(Named::F11) if modifiers.is_empty() => Some(Shortcut::FullScreen),
        _ => None,
    }
}

pub struct Berth {
    client: Option<Arc<Client>>,
    pub status: Status,
    pub snapshot: Snapshot,
    pub history: HostHistory,
    pub dashboard: Dashboard,
    /// The selected VM's console.
    console: Console,
    /// A terminal in the selected container, while it is open.
    terminal: Option<Terminal>,
    /// The New VM wizard, while it is open.
    pub wizard: Option<Wizard>,
    /// The Launch Dockerfile form, while it is open, and the tag it is building.
    pub launch: Option<Launch>,
    building: Option<String>,
    /// The last failed action, shown until the next action.
    pub error: Option<String>,
    /// `BERTH_FIRST_FRAME` is set and the first frame has not been drawn yet.
    first_frame_pending: bool,
    /// The form to open once the daemon has answered (it fills in the host's totals).
    opening: Opening,
    /// The About dialog is open.
    pub about: bool,
    /// A running VM's display fills the window, while it does.
    pub vm_view: Option<VmView>,
    /// What the last action did, when it says something (a screenshot's file), until the next.
    pub notice: Option<String>,
}

impl Berth {
    pub fn new(opening: Opening) -> (Berth, Task<Message>) {
        let berth = Berth {
            client: None,
            status: Status::Connecting,
            snapshot: Snapshot::default(),
            history: HostHistory::default(),
            dashboard: Dashboard::default(),
            console: Console::default(),
            terminal: None,
            wizard: None,
            launch: None,
            building: None,
            error: None,
            first_frame_pending: std::env::var_os(FIRST_FRAME_ENV).is_some(),
            opening,
            about: false,
            vm_view: None,
            notice: None,
        };
        (berth, Task::none())
    }

    /// The window's title names the open form, as desktop applications' dialogs do, and says
    /// when the guest has the keyboard.
    pub fn title(&self) -> String {
        if self.about {
            "About Berth".into()
        } else if self.wizard.is_some() {
            "New VM - Berth".into()
        } else if self.launch.is_some() {
            "Launch Dockerfile - Berth".into()
        } else if let Some(name) = self.console_vm() {
            if self.console.has_keyboard() {
                // Whether the guest has the keyboard, always in sight (VirtualBox's host key).
                format!("{name} - Berth (keyboard in the guest: Right Ctrl releases it)")
            } else if self.vm_view.is_some() {
                format!("{name} - Berth")
            } else {
                "Berth".into()
            }
        } else {
            "Berth".into()
        }
    }

    pub fn update(&mut self, message: Message) -> Task<Message> {
        let task = self.handle(message);
        // The VM view closes when its VM stops (once the daemon has said so).
        let leave = match &self.vm_view {
            Some(view) if self.snapshot.host.is_some() => !self
                .snapshot
                .vm(&view.vm)
                .is_some_and(|vm| vm.state.is_active()),
            _ => false,
        };
        let left = if leave {
            self.close_vm_view()
        } else {
            Task::none()
        };
        // The console of the VM viewed, or else of the selected VM, opens when it runs and
        // closes when it stops or another selection is made, whatever message brought that
        // about.
        let shown = self
            .console_vm()
            .and_then(|name| self.snapshot.vm(name))
            .filter(|vm| matches!(vm.state, VmState::Running | VmState::Paused))
            .map(|vm| vm.config.name.clone());
        let console = self.console.show(shown, self.client.as_ref());
        Task::batch([task, left, console.map(Message::Console)])
    }

    /// The VM whose display the console shows: the VM view's, else the selected VM's.
    fn console_vm(&self) -> Option<&str> {
        match (&self.vm_view, &self.dashboard.selection) {
            (Some(view), _) => Some(&view.vm),
            (None, dashboard::Selection::Vm(name)) => Some(name),
            _ => None,
        }
    }

    /// Shows VM `name`'s display in the whole window.
    fn open_vm_view(&mut self, name: String) -> Task<Message> {
        self.dashboard.selection = dashboard::Selection::Vm(name.clone());
        let view = VmView::new(name);
        let task = self.console.set_sizing(view.sizing(), view.follows);
        self.vm_view = Some(view);
        task.map(Message::Console)
    }

    /// Back to the sidebar and details (and out of full screen): the display is a preview
    /// there again, and the guest keeps the size it has.
    fn close_vm_view(&mut self) -> Task<Message> {
        let Some(view) = self.vm_view.take() else {
            return Task::none();
        };
        let sizing = self
            .console
            .set_sizing(Sizing::Preview, false)
            .map(Message::Console);
        if view.full_screen {
            Task::batch([sizing, full_screen(false)])
        } else {
            sizing
        }
    }

    fn handle(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Frame => {
                if std::mem::take(&mut self.first_frame_pending) {
                    report_first_frame("berth");
                }
                Task::none()
            }
            Message::Shortcut(Shortcut::NewVm) => self.handle(Message::NewVm),
            Message::Shortcut(Shortcut::LaunchDockerfile) => self.handle(Message::OpenLaunch),
            Message::Shortcut(Shortcut::FullScreen) => match &self.vm_view {
                Some(view) => {
                    let on = !view.full_screen;
                    self.handle(Message::VmView(vm_view::Message::FullScreen(on)))
                }
                None => Task::none(),
            },
            // Escape leaves full screen, as in browsers and video players.
            Message::Shortcut(Shortcut::Close)
                if self.vm_view.as_ref().is_some_and(|v| v.full_screen) =>
            {
                self.handle(Message::VmView(vm_view::Message::FullScreen(false)))
            }
            Message::Shortcut(Shortcut::Close) => match (&self.wizard, &self.launch) {
                _ if self.about => self.handle(Message::About(about::Message::Close)),
                (Some(_), _) => self.handle(Message::Wizard(wizard::Message::Cancel)),
                (None, Some(_)) => self.handle(Message::Launch(launch::Message::Cancel)),
                (None, None) => Task::none(),
            },
            Message::Shortcut(Shortcut::Filter) => {
                // The forms and the VM view cover the sidebar: back to it first.
                self.wizard = None;
                self.launch = None;
                self.about = false;
                let left = self.close_vm_view();
                Task::batch([
                    left,
                    iced_runtime::widget::operation::focus(dashboard::FILTER_FIELD),
                ])
            }
            Message::VmView(message) => {
                let Some(view) = self.vm_view.as_mut() else {
                    return Task::none();
                };
                match view.update(message) {
                    Some(vm_view::Event::Back) => self.close_vm_view(),
                    Some(vm_view::Event::Request(request, what)) => {
                        self.error = None;
                        self.notice = None;
                        self.perform(request, what)
                    }
                    Some(vm_view::Event::Screenshot(name)) => {
                        self.notice = None;
                        let Some(client) = self.client.clone() else {
                            return Task::none();
                        };
                        Task::perform(save_screenshot(client, name), Message::ScreenshotSaved)
                    }
                    Some(vm_view::Event::Detach(name)) => self
                        .console
                        .detach(name, self.client.as_ref())
                        .map(Message::Console),
                    Some(vm_view::Event::Sizing(sizing, follows)) => self
                        .console
                        .set_sizing(sizing, follows)
                        .map(Message::Console),
                    Some(vm_view::Event::FullScreen(on)) => full_screen(on),
                    Some(vm_view::Event::Console(pointer)) => {
                        self.handle(Message::Console(console::Message::Pointer(pointer)))
                    }
                    Some(vm_view::Event::Resized(size)) => {
                        self.handle(Message::Console(console::Message::Resized(size)))
                    }
                    None => Task::none(),
                }
            }
            Message::ScreenshotSaved(Ok(path)) => {
                // The file's name first: the folder may be long, and the line is cut.
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let folder = path.parent().unwrap_or(&path).display();
                self.notice = Some(format!("Screenshot \"{name}\" saved in {folder}"));
                Task::none()
            }
            Message::ScreenshotSaved(Err(why)) => {
                self.error = Some(why);
                Task::none()
            }
            Message::OpenAbout => {
                self.about = true;
                Task::none()
            }
            Message::About(message) => {
                match about::update(message) {
                    Some(about::Event::Close) => self.about = false,
                    None => {}
                }
                Task::none()
            }
            Message::Console(message) => {
                let (task, event) = self.console.update(message, self.client.as_ref());
                if let Some(console::Event::Failed(why)) = event {
                    self.error = Some(why);
                }
                task.map(Message::Console)
            }
            Message::Connection(connection::Event::Connected { client, started }) => {
                self.status = Status::Connected {
                    socket: client.socket().display().to_string(),
                    started,
                };
                self.client = Some(client);
                self.refresh()
            }
            Message::Connection(connection::Event::Lost(reason)) => {
                self.client = None;
                self.status = Status::Lost(reason);
                Task::none()
            }
            Message::Connection(connection::Event::Pushed(event)) => self.pushed(*event),
            Message::Refreshed(Ok(snapshot)) => {
                self.snapshot = snapshot;
                match std::mem::take(&mut self.opening) {
                    Opening::Dashboard => Task::none(),
                    Opening::NewVm => self.handle(Message::NewVm),
                    Opening::LaunchDockerfile => self.handle(Message::OpenLaunch),
                }
            }
            Message::Refreshed(Err(e)) => {
                self.error = Some(e.to_string());
                Task::none()
            }
            Message::Done(Err((what, e))) => {
                self.error = Some(format!("cannot {what}: {e}"));
                Task::none()
            }
            Message::Done(Ok(())) => self.refresh(),
            Message::OpenLaunch => {
                self.wizard = None;
                let host = self.snapshot.host.as_ref();
                self.launch = Some(Launch::new(
                    host.map(|h| h.total).unwrap_or_default(),
                    ContainerNetwork::default_for(host.map_or(DaemonMode::User, |h| h.mode)),
                ));
                Task::none()
            }
            Message::Launch(message) => {
                let Some(form) = self.launch.as_mut() else {
                    return Task::none();
                };
                match form.update(message) {
                    Some(launch::Event::Cancel) => {
                        self.launch = None;
                        Task::none()
                    }
                    Some(launch::Event::Launch(requests)) => {
                        let (build, run) = *requests;
                        let Some(client) = self.client.clone() else {
                            form.failed("not connected to berthd".into());
                            return Task::none();
                        };
                        self.building = Some(build.tag.clone());
                        Task::perform(
                            async move {
                                client.build(build).await.map_err(LaunchFailure::Build)?;
                                let info = client.run(run).await.map_err(LaunchFailure::Run)?;
                                Ok(info.id)
                            },
                            Message::Launched,
                        )
                    }
                    None => Task::none(),
                }
            }
            Message::Launched(Ok(id)) => {
                self.launch = None;
                self.building = None;
                self.dashboard.selection = dashboard::Selection::Container(id.clone());
                Task::batch([self.refresh(), self.logs_of_selection()])
            }
            Message::Launched(Err(e)) => {
                self.building = None;
                if let Some(form) = self.launch.as_mut() {
                    form.failed(e.to_string());
                }
                Task::none()
            }
            Message::Logs(of, Ok(lines)) => {
                if self.dashboard.selection == of {
                    self.dashboard.logs = lines;
                }
                Task::none()
            }
            Message::Logs(_, Err(_)) => Task::none(),
            Message::NewVm => {
                self.launch = None;
                let host = self
                    .snapshot
                    .host
                    .as_ref()
                    .map(|h| h.total)
                    .unwrap_or_default();
                let allocated = self
                    .snapshot
                    .vms
                    .iter()
                    .map(|v| v.config.resources())
                    .collect();
                let mode = self
                    .snapshot
                    .host
                    .as_ref()
                    .map_or(DaemonMode::User, |h| h.mode);
                self.wizard = Some(Wizard::new(host, allocated).with_networks(
                    crate::data::networks::vm_choices(mode, std::path::Path::new("/sys/class/net")),
                ));
                Task::none()
            }
            Message::Wizard(message) => self.wizard(message),
            Message::Created(Ok(name)) => {
                self.wizard = None;
                self.dashboard.selection = dashboard::Selection::Vm(name);
                self.refresh()
            }
            Message::Created(Err(e)) => {
                if let Some(wizard) = self.wizard.as_mut() {
                    wizard.failed(e.to_string());
                }
                Task::none()
            }
            // The console's poll also notices a console surface that stopped (its frame events
            // go to the surface, not here).
            Message::Tick => Task::batch([
                self.refresh(),
                self.logs_of_selection(),
                self.console.poll().map(Message::Console),
            ]),
            Message::Dashboard(dashboard::Message::Terminal(message)) => {
                let Some(open) = self.terminal.as_mut() else {
                    return Task::none();
                };
                if let Some(terminal::Event::Ended) = open.update(message) {
                    self.terminal = None;
                }
                Task::none()
            }
            Message::Dashboard(message) => {
                let before = self.dashboard.selection.clone();
                match self.dashboard.update(message, &self.snapshot) {
                    Some(dashboard::Event::OpenTerminal(id)) => {
                        let Some(client) = self.client.as_ref() else {
                            return Task::none();
                        };
                        match Terminal::open(&id, client.socket()) {
                            Ok((open, focus)) => {
                                self.error = None;
                                self.terminal = Some(open);
                                focus.map(|m| Message::Dashboard(dashboard::Message::Terminal(m)))
                            }
                            Err(why) => {
                                self.error = Some(why);
                                Task::none()
                            }
                        }
                    }
                    Some(dashboard::Event::OpenUrl(url)) => {
                        self.error = crate::browser::open(&url).err();
                        Task::none()
                    }
                    Some(dashboard::Event::CloseTerminal) => {
                        self.terminal = None;
                        Task::none()
                    }
                    Some(dashboard::Event::Request(request, what)) => {
                        self.error = None;
                        self.perform(request, what)
                    }
                    Some(dashboard::Event::Console(pointer)) => {
                        self.handle(Message::Console(console::Message::Pointer(pointer)))
                    }
                    Some(dashboard::Event::ConsoleResized(size)) => {
                        self.handle(Message::Console(console::Message::Resized(size)))
                    }
                    Some(dashboard::Event::Detach(name)) => self
                        .console
                        .detach(name, self.client.as_ref())
                        .map(Message::Console),
                    Some(dashboard::Event::ShowScreen(name)) => self.open_vm_view(name),
                    None if self.dashboard.selection != before => {
                        // A terminal is the selected container's: another selection closes it.
                        self.terminal = None;
                        self.dashboard.logs.clear();
                        self.logs_of_selection()
                    }
                    None => Task::none(),
                }
            }
        }
    }

    /// Something changed in the daemon.
    fn pushed(&mut self, event: Pushed) -> Task<Message> {
        match event {
            Pushed::HostSample(sample) => {
                self.history.record(&sample);
                Task::none()
            }
            Pushed::BuildProgress(progress) => {
                if let Some(launch) = self.launch.as_mut()
                    && self.building.as_deref() == Some(progress.tag.as_str())
                {
                    launch.step(
                        format!(
                            "[{}/{}] {}",
                            progress.step, progress.steps, progress.instruction
                        ),
                        progress.cached,
                    );
                }
                Task::none()
            }
            Pushed::VmDefined(_)
            | Pushed::VmRemoved { .. }
            | Pushed::VmState { .. }
            | Pushed::ContainerState { .. } => self.refresh(),
            Pushed::DisplayUpdate { name, .. } | Pushed::DisplayMode { name, .. } => {
                self.console.published(&name).map(Message::Console)
            }
            // Missed events may have held a frame or a state change.
            Pushed::Lagged { .. } => {
                Task::batch([self.console.poll().map(Message::Console), self.refresh()])
            }
            Pushed::VmSerial { name, data } => {
                self.dashboard.vm_serial(&name, &data);
                Task::none()
            }
            // The window does not push images.
            Pushed::PushProgress(_) => Task::none(),
            // A build's FROM pulling its image: each layer shows among the build's steps.
            Pushed::PullProgress(progress) => {
                if let Some(launch) = self.launch.as_mut()
                    && self.building.is_some()
                    && progress.finished
                {
                    let short = progress.layer.trim_start_matches("sha256:");
                    launch.step(
                        format!(
                            "pull {}: layer {}",
                            progress.image,
                            short.get(..12).unwrap_or(short)
                        ),
                        progress.present,
                    );
                }
                Task::none()
            }
        }
    }

    fn wizard(&mut self, message: wizard::Message) -> Task<Message> {
        let Some(wizard) = self.wizard.as_mut() else {
            return Task::none();
        };
        match wizard.update(message) {
            Some(wizard::Event::Cancel) => {
                self.wizard = None;
                Task::none()
            }
            Some(wizard::Event::Inspect(path)) => {
                let Some(client) = self.client.clone() else {
                    let answer = Err("not connected to berthd".into());
                    wizard.update(wizard::Message::Inspected(path, answer));
                    return Task::none();
                };
                Task::perform(
                    async move {
                        let answer = client.iso_inspect(&path).await;
                        (path, answer.map(Box::new).map_err(|e| e.to_string()))
                    },
                    |(path, answer)| Message::Wizard(wizard::Message::Inspected(path, answer)),
                )
            }
            Some(wizard::Event::Create(spec)) => {
                let Some(client) = self.client.clone() else {
                    wizard.failed("not connected to berthd".into());
                    return Task::none();
                };
                Task::perform(
                    async move { client.vm_create(spec).await.map(|vm| vm.config.name) },
                    Message::Created,
                )
            }
            None => Task::none(),
        }
    }

    fn perform(&self, request: Request, what: String) -> Task<Message> {
        let Some(client) = self.client.clone() else {
            return Task::done(Message::Done(Err((
                what,
                ClientError::Disconnected("not connected to berthd".into()),
            ))));
        };
        Task::perform(
            async move { client.call(request).await.map(drop).map_err(|e| (what, e)) },
            Message::Done,
        )
    }

    /// Fetches the selected container's output or the selected VM's serial log.
    fn logs_of_selection(&self) -> Task<Message> {
        let Some(client) = self.client.clone() else {
            return Task::none();
        };
        let selection = self.dashboard.selection.clone();
        let of = selection.clone();
        match selection {
            dashboard::Selection::Container(id) => {
                Task::perform(async move { client.logs(&id).await }, move |result| {
                    Message::Logs(of.clone(), result)
                })
            }
            dashboard::Selection::Vm(name) => Task::perform(
                async move { client.vm_log(&name, dashboard::SERIAL_LINES as u32).await },
                move |result| Message::Logs(of.clone(), result),
            ),
            dashboard::Selection::Host => Task::none(),
        }
    }

    fn refresh(&self) -> Task<Message> {
        let Some(client) = self.client.clone() else {
            return Task::none();
        };
        Task::perform(fetch(client), Message::Refreshed)
    }

    pub fn subscription(&self) -> Subscription<Message> {
        Subscription::batch([
            Subscription::run(connection::run).map(Message::Connection),
            match &self.terminal {
                Some(open) => open
                    .subscription()
                    .map(|m| Message::Dashboard(dashboard::Message::Terminal(m))),
                None => Subscription::none(),
            },
            // Container and VM lists change by events; their live shares (disk) drift slowly.
            iced::time::every(Duration::from_secs(5)).map(|_| Message::Tick),
            if self.first_frame_pending {
                iced::window::frames().map(|_| Message::Frame)
            } else {
                Subscription::none()
            },
            if self.console.has_keyboard() {
                // The console has the keyboard: every key goes to the guest, Ctrl+N too.
                iced::keyboard::listen().filter_map(|event| {
                    use iced::keyboard::{Event, key::Physical};
                    match event {
                        Event::KeyPressed {
                            physical_key: Physical::Code(code),
                            ..
                        } => Some(Message::Console(console::Message::Key(code, true))),
                        Event::KeyReleased {
                            physical_key: Physical::Code(code),
                            ..
                        } => Some(Message::Console(console::Message::Key(code, false))),
                        _ => None,
                    }
                })
            } else {
                iced::keyboard::listen().filter_map(|event| match event {
                    iced::keyboard::Event::KeyPressed { key, modifiers, .. } => {
                        shortcut(&key, modifiers).map(Message::Shortcut)
                    }
                    _ => None,
                })
            },
        ])
    }

    pub fn view(&self) -> Element<'_, Message> {
        let status = match &self.status {
            Status::Connecting => "Connecting to berthd…".to_owned(),
            Status::Connected {
                socket,
                started: true,
            } => format!("berthd (started by Berth) at {socket}"),
            Status::Connected {
                socket,
                started: false,
            } => format!("berthd at {socket}"),
            Status::Lost(reason) => format!("Not connected: {reason}. Retrying…"),
        };
        let new_vm = iced::widget::button(text("New VM (Ctrl+N)"))
            .style(iced::widget::button::primary)
            .on_press(Message::NewVm);
        let launch = iced::widget::button(text("Launch Dockerfile (Ctrl+L)"))
            .style(iced::widget::button::primary)
            .on_press(Message::OpenLaunch);
        let about = iced::widget::button(text("About")).on_press(Message::OpenAbout);
        let header = row![
            text("Berth").size(20),
            new_vm,
            launch,
            about,
            text(status)
                .size(13)
                .width(Length::Fill)
                .align_x(iced::alignment::Horizontal::Right)
        ]
        .spacing(20)
        .align_y(iced::Alignment::Center);
        let mut page = column![container(header).padding(10).style(container::bordered_box)];
        if let Status::Lost(_) = &self.status {
            page = page.push(banner(
                "The connection to berthd is lost; the window reconnects by itself.",
            ));
        }
        if let Some(error) = &self.error {
            page = page.push(banner(error));
        }
        if let Some(notice) = &self.notice {
            page = page.push(banner(notice));
        }
        if let Some(view) = &self.vm_view {
            // The display takes the window: the header, sidebar and details give way to the
            // view's own toolbar, which also says what failed.
            let said = match (&self.error, &self.notice) {
                (Some(error), _) => Some(vm_view::Said::Failed(error)),
                (None, Some(notice)) => Some(vm_view::Said::Done(notice)),
                (None, None) => None,
            };
            return view
                .view(self.snapshot.vm(&view.vm), self.console.view(), said)
                .map(Message::VmView);
        }
        match (&self.wizard, &self.launch) {
            _ if self.about => page
                .push(about::view(&self.daemon(), crate::icon::about_picture()).map(Message::About))
                .into(),
            (Some(wizard), _) => page
                .push(iced::widget::scrollable(wizard.view().map(Message::Wizard)))
                .into(),
            (None, Some(form)) => page
                .push(iced::widget::scrollable(form.view().map(Message::Launch)))
                .into(),
            (None, None) => page
                .push(
                    self.dashboard
                        .view(
                            &self.snapshot,
                            &self.history,
                            self.console.view(),
                            self.terminal.as_ref(),
                        )
                        .map(Message::Dashboard),
                )
                .into(),
        }
    }
}

impl Berth {
    /// What the About dialog says of the daemon.
    fn daemon(&self) -> about::Daemon {
        let (socket, started) = match &self.status {
            Status::Connected { socket, started } => (Some(socket.clone()), *started),
            _ => (None, false),
        };
        let host = self.snapshot.host.as_ref().filter(|_| socket.is_some());
        about::Daemon {
            socket,
            started,
            mode: host.map(|h| h.mode),
            version: host.map(|h| h.server_version.clone()),
        }
    }
}

/// The window full screen (`on`), or back in its frame.
fn full_screen(on: bool) -> Task<Message> {
    let mode = if on {
        iced::window::Mode::Fullscreen
    } else {
        iced::window::Mode::Windowed
    };
    iced::window::latest().and_then(move |id| iced::window::set_mode(id, mode))
}

/// Saves VM `name`'s display as a PNG in the user's pictures folder; where.
async fn save_screenshot(client: Arc<Client>, name: String) -> Result<std::path::PathBuf, String> {
    let failed = |e: String| format!("cannot take a screenshot of {name}: {e}");
    let (_, fd) = client
        .vm_display(&name)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let file = crate::data::pictures::pictures_dir().join(format!(
        "{name} {}.png",
        berth_api::time::now_for_file_name()
    ));
    let written = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader =
            berth_display::framebuffer::FramebufferReader::open(fd).map_err(|e| e.to_string())?;
        berth_display::screenshot::write_png(&mut reader, &written).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(failed)?;
    Ok(file)
}

fn banner<'a>(message: &str) -> Element<'a, Message> {
    container(text(message.to_owned()))
        .padding(8)
        .width(Length::Fill)
        .style(crate::theme::banner)
        .into()
}

/// Host, VMs and containers, in one go.
async fn fetch(client: Arc<Client>) -> Result<Snapshot, ClientError> {
    let host = client.host().await?;
    let listing = client.vm_list().await?;
    let containers = client.ps(true).await?;
    Ok(Snapshot {
        host: Some(host),
        vms: listing.vms,
        problems: listing.problems,
        containers,
    })
}

/// Set, the window prints when it draws its first frame (for `scripts/bench-window`).
pub const FIRST_FRAME_ENV: &str = "BERTH_FIRST_FRAME";

/// Prints `PROGRAM: first frame at S.NNNNNNNNN` (wall-clock seconds): the script that started
/// the program knows when it did, so the difference is start to first frame, exec and loading
/// included. iced announces a frame just before it draws it, in the same turn of its loop.
pub fn report_first_frame(program: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "{program}: first frame at {}.{:09}",
        now.as_secs(),
        now.subsec_nanos()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced::keyboard::key::Named;
    use iced::keyboard::{Key, Modifiers};

    #[test]
    fn shortcuts_open_and_close_the_forms() {
        let key = |c: &str| Key::Character(c.into());
        assert_eq!(shortcut(&key("n"), Modifiers::CTRL), Some(Shortcut::NewVm));
        assert_eq!(
            shortcut(&key("l"), Modifiers::CTRL),
            Some(Shortcut::LaunchDockerfile)
        );
        assert_eq!(shortcut(&key("n"), Modifiers::empty()), None, "typing n");
        assert_eq!(
            shortcut(&Key::Named(Named::Escape), Modifiers::empty()),
            Some(Shortcut::Close)
        );

        let (mut berth, _) = Berth::new(Opening::Dashboard);
        let _ = berth.update(Message::Shortcut(Shortcut::NewVm));
        assert!(berth.wizard.is_some());
        let _ = berth.update(Message::Shortcut(Shortcut::LaunchDockerfile));
        assert!(
            berth.wizard.is_none() && berth.launch.is_some(),
            "one form at a time"
        );
        let _ = berth.update(Message::Shortcut(Shortcut::Close));
        assert!(berth.launch.is_none());
        let _ = berth.update(Message::Shortcut(Shortcut::NewVm));
        let _ = berth.update(Message::Shortcut(Shortcut::Close));
        assert!(berth.wizard.is_none());
    }

    #[test]
    fn the_vm_view_goes_full_screen_on_f11_and_escape_leaves_it() {
        assert_eq!(
            shortcut(&Key::Named(Named::F11), Modifiers::empty()),
            Some(Shortcut::FullScreen)
        );
        let (mut berth, _) = Berth::new(Opening::Dashboard);
        let _ = berth.update(Message::Shortcut(Shortcut::FullScreen));
        assert!(berth.vm_view.is_none(), "no VM view: F11 does nothing");
        berth.dashboard.selection = dashboard::Selection::Vm("web".into());
        let _ = berth.update(Message::Dashboard(dashboard::Message::ShowScreen));
        assert_eq!(berth.vm_view.as_ref().map(|v| v.vm.as_str()), Some("web"));
        assert_eq!(berth.title(), "web - Berth");
        let full = |berth: &Berth| berth.vm_view.as_ref().map(|v| v.full_screen);
        let _ = berth.update(Message::Shortcut(Shortcut::FullScreen));
        assert_eq!(full(&berth), Some(true));
        let _ = berth.update(Message::Shortcut(Shortcut::Close));
        assert_eq!(full(&berth), Some(false), "Escape leaves full screen");
        let _ = berth.update(Message::Shortcut(Shortcut::Close));
        assert_eq!(full(&berth), Some(false), "and keeps the VM view");
        let _ = berth.update(Message::VmView(vm_view::Message::Back));
        assert!(berth.vm_view.is_none());
        assert_eq!(berth.title(), "Berth");
    }
}
