//! The application: the connection to berthd, the latest snapshot of its state, and the
//! screens. Messages from screens become requests here; pushed events refresh the snapshot.

use std::sync::Arc;
use std::time::Duration;

use berth_api::client::Client;
use berth_api::vm::VmState;
use berth_api::{Event as Pushed, Reply, Request};
use iced::widget::{column, container, row, text};
use iced::{Element, Length, Subscription, Task, Theme};

use crate::connection;
use crate::console::{HOST_KEY, Pointer, Polled, Session, evdev_code};
use crate::data::{HostHistory, Snapshot};
use crate::screen::dashboard::ConsoleView;
use crate::screen::dashboard::{self, Dashboard};
use crate::screen::launch::{self, Launch};
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
    Refreshed(Result<Snapshot, String>),
    Dashboard(dashboard::Message),
    Wizard(wizard::Message),
    NewVm,
    Launch(launch::Message),
    OpenLaunch,
    Launched(Result<String, String>),
    /// The output of a container, or the serial log of a VM, for the selection it was asked for.
    Logs(dashboard::Selection, Result<Vec<String>, String>),
    Created(Result<String, String>),
    Done(Result<(), String>),
    Tick,
    /// berthd answered for VM `.0`'s screen: its framebuffer memfd, or why there is none.
    DisplayOpened(String, Result<SharedFd, String>),
    /// The console's VM `.0` published a frame too soon after the last one read; now is later.
    ConsoleDue(String),
    /// The renderer took (or refused) a new picture of VM `.0`'s screen.
    ConsoleAllocated(String, Result<iced_runtime::image::Allocation, String>),
    /// A key went down or up while the console has the keyboard.
    ConsoleKey(iced::keyboard::key::Code, bool),
    /// A detached console window closed, or why it failed.
    Detached(Result<(), String>),
    /// A key or pointer event reached the VM (nothing to refresh), or why not.
    Input(Result<(), String>),
    /// The window's scale factor (physical pixels per logical one), asked when the console's
    /// area changed.
    ScaleFactor(f32),
    /// iced is drawing a frame (only listened to until the first, when it is to be reported).
    Frame,
    /// The window's X11 window, for a console surface (none: not on X11).
    ParentWindow(Option<u32>),
    /// A keyboard shortcut was pressed (the console does not have the keyboard).
    Shortcut(Shortcut),
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
        Key::Named(Named::Escape) if modifiers.is_empty() => Some(Shortcut::Close),
        _ => None,
    }
}

/// A file descriptor carried in a message (messages are cloned; the fd is shared, not copied).
#[derive(Debug, Clone)]
pub struct SharedFd(Arc<std::os::fd::OwnedFd>);

pub struct Berth {
    client: Option<Arc<Client>>,
    pub status: Status,
    pub snapshot: Snapshot,
    pub history: HostHistory,
    pub dashboard: Dashboard,
    /// The New VM wizard, while it is open.
    pub wizard: Option<Wizard>,
    /// The Launch Dockerfile form, while it is open, and the tag it is building.
    pub launch: Option<Launch>,
    building: Option<String>,
    /// The last failed action, shown until the next action.
    pub error: Option<String>,
    /// The selected VM's screen, while it runs.
    console: Option<Session>,
    /// The VM whose screen was asked for (not asked again until it stops or is deselected).
    console_asked: Option<String>,
    /// What the details pane shows of the screen (kept in step with `console`).
    screen: ConsoleView,
    /// The console's picture area (logical pixels, once laid out) and the window's scale
    /// factor: pictures are scaled to the product.
    console_area: Option<iced::Size>,
    scale_factor: f32,
    /// `BERTH_FIRST_FRAME` is set and the first frame has not been drawn yet.
    first_frame_pending: bool,
    /// The window's X11 window, which console surfaces are made in: not asked yet, or none
    /// (not on X11, surfaces turned off, or one could not be made there).
    x11_parent: Option<Option<u32>>,
}

impl Berth {
    pub fn new() -> (Berth, Task<Message>) {
        let berth = Berth {
            client: None,
            status: Status::Connecting,
            snapshot: Snapshot::default(),
            history: HostHistory::default(),
            dashboard: Dashboard::default(),
            wizard: None,
            launch: None,
            building: None,
            error: None,
            console: None,
            console_asked: None,
            screen: ConsoleView::None,
            console_area: None,
            scale_factor: 1.0,
            first_frame_pending: std::env::var_os(FIRST_FRAME_ENV).is_some(),
            x11_parent: (!surfaces_wanted()).then_some(None),
        };
        (berth, Task::none())
    }

    pub fn title(&self) -> String {
        "Berth".into()
    }

    pub fn update(&mut self, message: Message) -> Task<Message> {
        let task = self.handle(message);
        let console = self.sync_console();
        self.screen = match &self.console {
            Some(session) => ConsoleView::Screen {
                picture: session.shown.clone(),
                screen: session.size,
                fitted: session.fitted,
                focused: session.focused,
                surface: session.surface(),
            },
            None => std::mem::take(&mut self.screen).unavailable_only(),
        };
        Task::batch([task, console])
    }

    /// Opens the selected VM's screen when it runs; closes it when it stops or is deselected.
    fn sync_console(&mut self) -> Task<Message> {
        let wanted = match &self.dashboard.selection {
            dashboard::Selection::Vm(name) => self
                .snapshot
                .vm(name)
                .filter(|vm| matches!(vm.state, VmState::Running | VmState::Paused))
                .map(|vm| vm.config.name.clone()),
            _ => None,
        };
        if self.console.as_ref().map(|c| &c.vm) != wanted.as_ref() {
            self.console = None;
        }
        if self.console_asked != wanted {
            self.console_asked = None;
            self.screen = ConsoleView::None;
        }
        let (Some(name), None, None) = (wanted, &self.console, &self.console_asked) else {
            return Task::none();
        };
        let Some(client) = self.client.clone() else {
            return Task::none();
        };
        self.console_asked = Some(name.clone());
        let asked = name.clone();
        Task::perform(
            async move {
                client
                    .vm_display(&asked)
                    .await
                    .map(|(_, fd)| SharedFd(Arc::new(fd)))
                    .map_err(|e| e.to_string())
            },
            move |result| Message::DisplayOpened(name.clone(), result),
        )
    }

    /// Reads the console's new frame, if there is one and none is being allocated, and has the
    /// renderer allocate it before it replaces the shown one.
    fn poll_console(&mut self) -> Task<Message> {
        let Some(session) = self.console.as_mut() else {
            return Task::none();
        };
        match session.poll(std::time::Instant::now()) {
            Ok(Polled::Later(wait)) => {
                let vm = session.vm.clone();
                Task::perform(tokio::time::sleep(wait), move |()| {
                    Message::ConsoleDue(vm.clone())
                })
            }
            Ok(Polled::Picture(picture)) => {
                let vm = session.vm.clone();
                let handle = iced::widget::image::Handle::from_rgba(
                    picture.width,
                    picture.height,
                    picture.rgba,
                );
                iced_runtime::image::allocate(handle).map(move |result| {
                    Message::ConsoleAllocated(vm.clone(), result.map_err(|e| e.to_string()))
                })
            }
            Ok(Polled::Nothing) => Task::none(),
            Err(why) => {
                self.console = None;
                self.screen = ConsoleView::Unavailable(why);
                Task::none()
            }
        }
    }

    /// Has a console surface draw the console's screen, once the window's X11 window is known
    /// (asked the first time).
    fn console_surface(&mut self) -> Task<Message> {
        let Some(session) = self.console.as_mut().filter(|s| s.surface().is_none()) else {
            return Task::none();
        };
        match self.x11_parent {
            None => iced::window::latest()
                .and_then(|id| iced::window::run(id, x11_window))
                .map(Message::ParentWindow),
            Some(None) => Task::none(),
            Some(Some(parent)) => match session.use_surface(parent) {
                Ok(()) => iced::window::latest()
                    .and_then(iced::window::scale_factor)
                    .map(Message::ScaleFactor),
                Err(why) => {
                    // The X server would refuse the next VM's surface too.
                    eprintln!("berth: the renderer draws the console ({why})");
                    self.x11_parent = Some(None);
                    Task::none()
                }
            },
        }
    }

    /// The console's area in physical pixels, once known.
    fn console_pixels(&self) -> Option<(u32, u32)> {
        let size = self.console_area?;
        let pixels = |logical: f32| (logical * self.scale_factor).floor().max(0.0) as u32;
        Some((pixels(size.width), pixels(size.height)))
    }

    /// Scales the console's next picture to its current area (the same frame again if the
    /// area changed).
    fn fit_console(&mut self) -> Task<Message> {
        let area = self.console_pixels();
        match (self.console.as_mut(), area) {
            (Some(session), Some(area)) => {
                session.resized(area);
                self.poll_console()
            }
            _ => Task::none(),
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
            Message::Shortcut(Shortcut::Close) => match (&self.wizard, &self.launch) {
                (Some(_), _) => self.handle(Message::Wizard(wizard::Message::Cancel)),
                (None, Some(_)) => self.handle(Message::Launch(launch::Message::Cancel)),
                (None, None) => Task::none(),
            },
            Message::ParentWindow(window) => {
                self.x11_parent = Some(window);
                self.console_surface()
            }
            Message::ScaleFactor(scale) => {
                if !scale.is_finite() || scale <= 0.0 {
                    return Task::none();
                }
                if let Some(surface) = self.console.as_ref().and_then(Session::surface) {
                    surface.set_scale(scale);
                }
                if scale != self.scale_factor {
                    self.scale_factor = scale;
                    return self.fit_console();
                }
                Task::none()
            }
            Message::DisplayOpened(name, result) => {
                if self.console_asked.as_ref() != Some(&name) {
                    return Task::none();
                }
                let opened = result.and_then(|fd| {
                    let fd = fd.0.try_clone().map_err(|e| e.to_string())?;
                    Session::new(name, fd)
                });
                match opened {
                    Ok(mut session) => {
                        if let Some(area) = self.console_pixels() {
                            session.resized(area);
                        }
                        self.console = Some(session);
                        // What the guest drew before the screen was opened.
                        Task::batch([self.poll_console(), self.console_surface()])
                    }
                    Err(why) => {
                        self.screen = ConsoleView::Unavailable(why);
                        Task::none()
                    }
                }
            }
            Message::ConsoleDue(vm) => match self.console.as_mut().filter(|s| s.vm == vm) {
                Some(session) => {
                    session.due();
                    self.poll_console()
                }
                None => Task::none(),
            },
            Message::ConsoleAllocated(vm, result) => {
                match self.console.as_mut().filter(|s| s.vm == vm) {
                    Some(session) => {
                        session.allocated(result.ok());
                        // Frames published while this one was allocated were not read.
                        self.poll_console()
                    }
                    None => Task::none(),
                }
            }
            Message::ConsoleKey(code, pressed) => {
                let Some(session) = self.console.as_mut().filter(|s| s.focused) else {
                    return Task::none();
                };
                if code == HOST_KEY {
                    session.focused = false;
                    return Task::none();
                }
                let (Some(evdev), Some(client)) = (evdev_code(code), self.client.clone()) else {
                    return Task::none();
                };
                let request = Request::VmKeyEvent {
                    name: session.vm.clone(),
                    code: evdev,
                    pressed,
                };
                send_input(client, request, "cannot type into the VM")
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
            Message::Connection(connection::Event::Pushed(event)) => match *event {
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
                Pushed::ConsoleUpdate { name, .. } | Pushed::ConsoleMode { name, .. }
                    if self.console.as_ref().is_some_and(|c| c.vm == name) =>
                {
                    self.poll_console()
                }
                Pushed::Lagged { .. } => {
                    // Missed events may have held a frame or a state change.
                    Task::batch([self.poll_console(), self.refresh()])
                }
                Pushed::VmConsole { name, data } => {
                    self.dashboard.vm_console(&name, &data);
                    Task::none()
                }
                _ => Task::none(),
            },
            Message::Refreshed(Ok(snapshot)) => {
                self.snapshot = snapshot;
                Task::none()
            }
            Message::Refreshed(Err(e)) | Message::Done(Err(e)) => {
                self.error = Some(e);
                Task::none()
            }
            Message::Done(Ok(())) => self.refresh(),
            Message::Input(Ok(())) | Message::Detached(Ok(())) => Task::none(),
            Message::Detached(Err(e)) => {
                self.error = Some(e);
                Task::none()
            }
            Message::Input(Err(e)) => {
                self.error = Some(e);
                Task::none()
            }
            Message::OpenLaunch => {
                self.wizard = None;
                self.launch = Some(Launch::new(
                    self.snapshot
                        .host
                        .as_ref()
                        .map(|h| h.total)
                        .unwrap_or_default(),
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
                                client
                                    .call(Request::Build(build))
                                    .await
                                    .map_err(|e| e.to_string())?;
                                match client
                                    .call(Request::Run(run))
                                    .await
                                    .map_err(|e| format!("the image built, but: {e}"))?
                                {
                                    Reply::Container(info) => Ok(info.id),
                                    other => Err(format!("unexpected reply {other:?}")),
                                }
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
                    form.failed(e);
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
                self.wizard = Some(Wizard::new(host, allocated));
                Task::none()
            }
            Message::Wizard(message) => {
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
                            |(path, answer)| {
                                Message::Wizard(wizard::Message::Inspected(path, answer))
                            },
                        )
                    }
                    Some(wizard::Event::Create(spec)) => {
                        let Some(client) = self.client.clone() else {
                            wizard.failed("not connected to berthd".into());
                            return Task::none();
                        };
                        Task::perform(
                            async move {
                                client
                                    .vm_create(spec)
                                    .await
                                    .map(|vm| vm.config.name)
                                    .map_err(|e| e.to_string())
                            },
                            Message::Created,
                        )
                    }
                    None => Task::none(),
                }
            }
            Message::Created(Ok(name)) => {
                self.wizard = None;
                self.dashboard.selection = dashboard::Selection::Vm(name);
                self.refresh()
            }
            Message::Created(Err(e)) => {
                if let Some(wizard) = self.wizard.as_mut() {
                    wizard.failed(e);
                }
                Task::none()
            }
            // The poll also notices a console surface that stopped (its frame events go to the
            // surface, not here).
            Message::Tick => Task::batch([
                self.refresh(),
                self.logs_of_selection(),
                self.poll_console(),
            ]),
            Message::Dashboard(message) => {
                let before = self.dashboard.selection.clone();
                match self.dashboard.update(message, &self.snapshot) {
                    Some(dashboard::Event::Request(request, what)) => {
                        self.error = None;
                        self.perform(request, what)
                    }
                    Some(dashboard::Event::Console(pointer)) => self.pointer(pointer),
                    Some(dashboard::Event::ConsoleResized(size)) => {
                        self.console_area = Some(size);
                        // The scale factor may have changed with it (a move to another monitor).
                        let scale = iced::window::latest()
                            .and_then(iced::window::scale_factor)
                            .map(Message::ScaleFactor);
                        Task::batch([self.fit_console(), scale])
                    }
                    Some(dashboard::Event::Detach(name)) => self.detach(name),
                    None if self.dashboard.selection != before => {
                        self.dashboard.logs.clear();
                        self.logs_of_selection()
                    }
                    None => Task::none(),
                }
            }
        }
    }

    /// The mouse over the console: a press takes the keyboard; moves, buttons and the wheel go
    /// to the guest's tablet.
    /// Opens VM `name`'s screen in berth-console, on the daemon this window talks to; what it
    /// said, if it failed, comes back as the window's error.
    fn detach(&mut self, name: String) -> Task<Message> {
        let Some(client) = self.client.as_ref() else {
            return Task::none();
        };
        let mut command = tokio::process::Command::new(console_binary());
        command
            .arg(&name)
            .arg("--socket")
            .arg(client.socket())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(false);
        Task::perform(
            async move {
                let child = command
                    .spawn()
                    .map_err(|e| format!("cannot open berth-console: {e}"))?;
                let out = child
                    .wait_with_output()
                    .await
                    .map_err(|e| format!("berth-console: {e}"))?;
                if out.status.success() {
                    return Ok(());
                }
                let said = String::from_utf8_lossy(&out.stderr);
                // Its last line says why (earlier ones are progress).
                let why = said
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Err(format!(
                    "the detached console of VM {name} ended ({}): {}",
                    out.status,
                    why.trim_start_matches("berth-console: ")
                ))
            },
            Message::Detached,
        )
    }

    fn pointer(&mut self, pointer: Pointer) -> Task<Message> {
        let (Some(session), Some(client)) = (self.console.as_mut(), self.client.clone()) else {
            return Task::none();
        };
        if matches!(pointer, Pointer::Button { pressed: true, .. }) {
            session.focused = true;
        }
        let Some(request) = session.pointer_request(pointer) else {
            return Task::none();
        };
        send_input(client, request, "cannot move the VM's pointer")
    }

    fn perform(&self, request: Request, what: String) -> Task<Message> {
        let Some(client) = self.client.clone() else {
            return Task::done(Message::Done(Err(format!(
                "cannot {what}: not connected to berthd"
            ))));
        };
        Task::perform(
            async move {
                client
                    .call(request)
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot {what}: {e}"))
            },
            Message::Done,
        )
    }

    /// Fetches the selected container's output or the selected VM's serial log.
    fn logs_of_selection(&self) -> Task<Message> {
        let selection = self.dashboard.selection.clone();
        let request = match &selection {
            dashboard::Selection::Container(id) => Request::Logs {
                container: id.clone(),
                follow: false,
            },
            dashboard::Selection::Vm(name) => Request::VmLog {
                name: name.clone(),
                lines: dashboard::CONSOLE_LINES as u32,
            },
            dashboard::Selection::Host => return Task::none(),
        };
        let Some(client) = self.client.clone() else {
            return Task::none();
        };
        Task::perform(
            async move {
                match client.call(request).await {
                    Ok(Reply::Lines(lines)) => Ok(lines),
                    Ok(other) => Err(format!("unexpected reply {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            },
            move |result| Message::Logs(selection.clone(), result),
        )
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
            // Container and VM lists change by events; their live shares (disk) drift slowly.
            iced::time::every(Duration::from_secs(5)).map(|_| Message::Tick),
            if self.first_frame_pending {
                iced::window::frames().map(|_| Message::Frame)
            } else {
                Subscription::none()
            },
            if self.console.as_ref().is_some_and(|c| c.focused) {
                // The console has the keyboard: every key goes to the guest, Ctrl+N too.
                iced::keyboard::listen().filter_map(|event| {
                    use iced::keyboard::{Event, key::Physical};
                    match event {
                        Event::KeyPressed {
                            physical_key: Physical::Code(code),
                            ..
                        } => Some(Message::ConsoleKey(code, true)),
                        Event::KeyReleased {
                            physical_key: Physical::Code(code),
                            ..
                        } => Some(Message::ConsoleKey(code, false)),
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
        let header = row![
            text("Berth").size(20),
            new_vm,
            launch,
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
        match (&self.wizard, &self.launch) {
            (Some(wizard), _) => page
                .push(iced::widget::scrollable(wizard.view().map(Message::Wizard)))
                .into(),
            (None, Some(form)) => page
                .push(iced::widget::scrollable(form.view().map(Message::Launch)))
                .into(),
            (None, None) => page
                .push(
                    self.dashboard
                        .view(&self.snapshot, &self.history, &self.screen)
                        .map(Message::Dashboard),
                )
                .into(),
        }
    }
}

/// `BERTH_CONSOLE_SURFACE=0` has the renderer draw the console even on X11 (to compare the
/// two, and to test the renderer's path).
fn surfaces_wanted() -> bool {
    std::env::var_os("BERTH_CONSOLE_SURFACE").is_none_or(|v| v != "0")
}

/// The X11 window id of an iced window, when it is on X11.
fn x11_window(window: &dyn iced::window::Window) -> Option<u32> {
    use iced::window::raw_window_handle::RawWindowHandle;
    match window.window_handle().ok()?.as_raw() {
        RawWindowHandle::Xlib(handle) => u32::try_from(handle.window).ok(),
        RawWindowHandle::Xcb(handle) => Some(handle.window.get()),
        _ => None,
    }
}

/// Sends a key or pointer request; only a failure is news (it becomes the banner).
fn send_input(client: Arc<Client>, request: Request, failure: &'static str) -> Task<Message> {
    Task::perform(
        async move { client.call(request).await.map(drop) },
        move |result| Message::Input(result.map_err(|e| format!("{failure}: {e}"))),
    )
}

fn banner<'a>(message: &str) -> Element<'a, Message> {
    container(text(message.to_owned()))
        .padding(8)
        .width(Length::Fill)
        .style(|theme: &Theme| {
            let palette = theme.extended_palette();
            container::Style::default()
                .background(palette.danger.weak.color)
                .color(palette.danger.weak.text)
        })
        .into()
}

/// Host, VMs and containers, in one go.
async fn fetch(client: Arc<Client>) -> Result<Snapshot, String> {
    let host = client.host().await.map_err(|e| e.to_string())?;
    let listing = client.vm_list().await.map_err(|e| e.to_string())?;
    let containers = match client
        .call(Request::Ps { all: true })
        .await
        .map_err(|e| e.to_string())?
    {
        Reply::Containers(list) => list,
        other => return Err(format!("unexpected reply {other:?}")),
    };
    Ok(Snapshot {
        host: Some(host),
        vms: listing.vms,
        problems: listing.problems,
        containers,
    })
}

/// Where the window finds berth-console: `$BERTH_CONSOLE`, else next to its own executable,
/// else on the PATH.
fn console_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("BERTH_CONSOLE") {
        return path.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("berth-console")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| "berth-console".into())
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

        let (mut berth, _) = Berth::new();
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
}
