//! The console of the selected VM: its display in the details pane (opened when the VM runs,
//! closed when it stops or another one is selected), the keyboard while it has it, the
//! pointer over it, and Detach (the same display in `berth-console`). Its `update` returns an
//! optional [`Event`] for the application, as every screen's does.
//!
//! Frames come from `data::console::Session` (no window needed); on X11 a console surface
//! draws them past the renderer (`surface.rs`), elsewhere the renderer does, each new picture
//! allocated before it replaces the shown one.

use std::sync::Arc;

use berth_api::client::{Client, ClientError};
use iced::Task;
use iced::keyboard::key::Code;

use crate::data::console::{HOST_KEY, Pointer, Polled, Session, Sizing, Tablet, evdev_code};
use crate::surface::SurfaceHandle;
use crate::widget::console::{Shown, console};

/// A file descriptor carried in a message (messages are cloned; the fd is shared, not copied).
#[derive(Debug, Clone)]
pub struct SharedFd(Arc<std::os::fd::OwnedFd>);

#[derive(Debug, Clone)]
pub enum Message {
    /// berthd answered for VM `.0`'s display: its framebuffer memfd, or why there is none.
    Opened(String, Result<SharedFd, ClientError>),
    /// The console's VM `.0` published a frame too soon after the last one read; now is later.
    Due(String),
    /// The renderer took (or refused) a new picture of VM `.0`'s display.
    Allocated(String, Result<iced_runtime::image::Allocation, String>),
    /// A key went down or up while the console has the keyboard.
    Key(Code, bool),
    /// The mouse did something over the console (a press also gives it the keyboard).
    Pointer(Pointer),
    /// The console's picture area has this size (logical pixels).
    Resized(iced::Size),
    /// The window's scale factor (physical pixels per logical one), asked when the area changed.
    ScaleFactor(f32),
    /// The window's X11 window, for a console surface (none: not on X11).
    ParentWindow(Option<u32>),
    /// A key or pointer event reached the VM (nothing to refresh), or why not.
    Input(Result<(), ClientError>),
    /// A detached console window closed, or why it failed.
    Detached(Result<(), String>),
    /// The area has kept its size for a while since resize `.1` of VM `.0`: the guest is told.
    Settled(String, u64),
    /// The guest was told its preferred size, or why not.
    SizeTold(Result<(), ClientError>),
}

/// How long the console's area must keep its size before the guest is told it: a window being
/// dragged larger sends one size, not one per step (each is a mode change in the guest).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// The smallest preferred size the guest is told: in a smaller window it keeps a usable
/// screen, shown scaled down (a desktop guest below 640x480 cannot show its own dialogs).
const SMALLEST_FOLLOWED: (u32, u32) = (640, 480);

/// What the console asks of the application.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user did failed: show it.
    Failed(String),
}

/// What the details pane shows of the console.
#[derive(Debug, Clone, Default)]
pub enum ConsoleView {
    /// Not running, or not asked for yet.
    #[default]
    None,
    /// The VM's display: the picture, the guest's display size, whether the picture was
    /// sized for the console's area, whether the console has the keyboard, the console
    /// surface that draws it instead of the renderer, if one does, how it is sized and the
    /// window's scale factor.
    Shown {
        picture: Option<iced_runtime::image::Allocation>,
        display: (u32, u32),
        fitted: bool,
        focused: bool,
        surface: Option<SurfaceHandle>,
        sizing: Sizing,
        scale: f32,
    },
    /// Why there is no display to show.
    Unavailable(String),
}

impl ConsoleView {
    /// The console widget showing the display (nothing when there is none to show);
    /// `on_pointer` for what the mouse does over it, `on_resize` for its area's size.
    pub fn widget<'a, M: Clone + 'a>(
        &'a self,
        on_pointer: impl Fn(crate::data::console::Pointer) -> M + Clone + 'a,
        on_resize: impl Fn(iced::Size) -> M + 'a,
    ) -> iced::Element<'a, M> {
        let ConsoleView::Shown {
            picture,
            display,
            fitted,
            focused,
            surface,
            sizing,
            scale,
        } = self
        else {
            return iced::widget::space::vertical().height(0).into();
        };
        let shown = match surface {
            Some(handle) => Some(Shown::Surface {
                handle: handle.clone(),
                display: *display,
            }),
            None => picture.as_ref().map(|picture| Shown::Picture {
                picture,
                display: *display,
                fitted: *fitted,
            }),
        };
        console(shown, *focused, *sizing, *scale, on_pointer, on_resize)
    }

    /// The console surface drawing the display, if one does.
    pub fn surface(&self) -> Option<SurfaceHandle> {
        match self {
            ConsoleView::Shown { surface, .. } => surface.clone(),
            _ => None,
        }
    }
}

pub struct Console {
    /// The shown VM's session, while it runs.
    session: Option<Session>,
    /// The VM whose display was asked for (not asked again until it stops or is deselected).
    asked: Option<String>,
    /// What the details pane shows (kept in step with `session`).
    view: ConsoleView,
    /// The picture area (logical pixels, once laid out) and the window's scale factor:
    /// pictures are scaled to the product.
    area: Option<iced::Size>,
    scale_factor: f32,
    /// The window's X11 window, which console surfaces are made in: not asked yet, or none
    /// (not on X11, surfaces turned off, or one could not be made there).
    x11_parent: Option<Option<u32>>,
    /// How the display is sized in the area.
    sizing: Sizing,
    /// The guest's display follows the area's size (the VM view with its setting on).
    follows: bool,
    /// The preferred size last told to the shown VM's guest, and the count of area changes
    /// (only the last one, once settled, is told).
    told: Option<(u32, u32)>,
    resizes: u64,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            session: None,
            asked: None,
            view: ConsoleView::None,
            area: None,
            scale_factor: 1.0,
            x11_parent: (!berth_surface::wanted()).then_some(None),
            sizing: Sizing::default(),
            follows: false,
            told: None,
            resizes: 0,
        }
    }
}

impl Console {
    /// What the details pane shows.
    pub fn view(&self) -> &ConsoleView {
        &self.view
    }

    /// How the display is sized, and whether the guest follows the area's size (told once the
    /// area has settled, and again whenever it changes).
    pub fn set_sizing(&mut self, sizing: Sizing, follows: bool) -> Task<Message> {
        self.sizing = sizing;
        if let Some(session) = self.session.as_mut() {
            session.set_sizing(sizing);
        }
        if follows != self.follows {
            self.follows = follows;
            self.told = None;
        }
        let task = Task::batch([self.poll(), self.follow()]);
        self.refresh_view();
        task
    }

    /// Whether the console has the keyboard (every key then goes to the guest).
    pub fn has_keyboard(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.focused)
    }

    /// Shows VM `vm`'s display (the selected VM, when it runs), or none: opens it when it
    /// changes, closes the one shown.
    pub fn show(&mut self, vm: Option<String>, client: Option<&Arc<Client>>) -> Task<Message> {
        if self.session.as_ref().map(|s| &s.vm) != vm.as_ref() {
            self.session = None;
            self.told = None;
        }
        if self.asked != vm {
            self.asked = None;
            self.view = ConsoleView::None;
        }
        let task = match (vm, &self.session, &self.asked, client) {
            (Some(name), None, None, Some(client)) => {
                self.asked = Some(name.clone());
                let client = Arc::clone(client);
                let asked = name.clone();
                Task::perform(
                    async move {
                        client
                            .vm_display(&asked)
                            .await
                            .map(|(_, fd)| SharedFd(Arc::new(fd)))
                    },
                    move |result| Message::Opened(name.clone(), result),
                )
            }
            _ => Task::none(),
        };
        self.refresh_view();
        task
    }

    /// VM `vm` published a frame or changed mode.
    pub fn published(&mut self, vm: &str) -> Task<Message> {
        if self.session.as_ref().is_some_and(|s| s.vm == vm) {
            self.poll()
        } else {
            Task::none()
        }
    }

    /// Reads the console's new frame, if there is one and none is being allocated, and has the
    /// renderer allocate it before it replaces the shown one. Also notices a console surface
    /// that stopped (its frame events go to the surface, not here).
    pub fn poll(&mut self) -> Task<Message> {
        let Some(session) = self.session.as_mut() else {
            return Task::none();
        };
        if self.x11_parent.is_none() {
            // Whether a surface will draw is not known yet: nothing for the renderer until it is.
            return Task::none();
        }
        let task = match session.poll(std::time::Instant::now()) {
            Ok(Polled::Later(wait)) => {
                let vm = session.vm.clone();
                Task::perform(tokio::time::sleep(wait), move |()| Message::Due(vm.clone()))
            }
            Ok(Polled::Picture(picture)) => {
                let vm = session.vm.clone();
                let handle = iced::widget::image::Handle::from_rgba(
                    picture.width,
                    picture.height,
                    picture.rgba,
                );
                iced_runtime::image::allocate(handle).map(move |result| {
                    Message::Allocated(vm.clone(), result.map_err(|e| e.to_string()))
                })
            }
            Ok(Polled::Nothing) => Task::none(),
            Err(why) => {
                self.session = None;
                self.view = ConsoleView::Unavailable(why);
                Task::none()
            }
        };
        self.refresh_view();
        task
    }

    pub fn update(
        &mut self,
        message: Message,
        client: Option<&Arc<Client>>,
    ) -> (Task<Message>, Option<Event>) {
        let mut event = None;
        let task = match message {
            Message::Opened(name, result) => self.opened(name, result),
            Message::Due(vm) => match self.session.as_mut().filter(|s| s.vm == vm) {
                Some(session) => {
                    session.due();
                    self.poll()
                }
                None => Task::none(),
            },
            Message::Allocated(vm, result) => match self.session.as_mut().filter(|s| s.vm == vm) {
                Some(session) => {
                    session.allocated(result.ok());
                    // Frames published while this one was allocated were not read.
                    self.poll()
                }
                None => Task::none(),
            },
            Message::Key(code, pressed) => self.key(code, pressed, client),
            Message::Pointer(pointer) => self.pointer(pointer, client),
            Message::Resized(size) => {
                self.area = Some(size);
                // The scale factor may have changed with it (a move to another monitor).
                let scale = iced::window::latest()
                    .and_then(iced::window::scale_factor)
                    .map(Message::ScaleFactor);
                Task::batch([self.fit(), scale, self.follow()])
            }
            Message::ScaleFactor(scale) => {
                if !scale.is_finite() || scale <= 0.0 {
                    return (Task::none(), None);
                }
                if let Some(surface) = self.session.as_ref().and_then(Session::surface) {
                    surface.set_scale(scale);
                }
                if scale != self.scale_factor {
                    self.scale_factor = scale;
                    Task::batch([self.fit(), self.follow()])
                } else {
                    Task::none()
                }
            }
            Message::ParentWindow(window) => {
                self.x11_parent = Some(window);
                // The surface first: a picture the renderer drew before it, where the layout
                // later moves, can stay on screen (tiny-skia's damage tracking leaves it).
                let surface = self.use_surface();
                Task::batch([surface, self.poll()])
            }
            Message::Input(Ok(())) | Message::Detached(Ok(())) => Task::none(),
            Message::Input(Err(e)) => {
                event = Some(Event::Failed(format!("cannot send input to the VM: {e}")));
                Task::none()
            }
            Message::Detached(Err(e)) => {
                event = Some(Event::Failed(e));
                Task::none()
            }
            Message::Settled(vm, resize) => self.tell_size(&vm, resize, client),
            Message::SizeTold(Ok(())) => Task::none(),
            Message::SizeTold(Err(e)) => {
                self.told = None;
                event = Some(Event::Failed(format!(
                    "cannot tell the guest the window's size: {e}"
                )));
                Task::none()
            }
        };
        self.refresh_view();
        (task, event)
    }

    fn opened(&mut self, name: String, result: Result<SharedFd, ClientError>) -> Task<Message> {
        if self.asked.as_ref() != Some(&name) {
            return Task::none();
        }
        let opened = result.map_err(|e| e.to_string()).and_then(|fd| {
            let fd = fd.0.try_clone().map_err(|e| e.to_string())?;
            Session::new(name, fd)
        });
        match opened {
            Ok(mut session) => {
                if let Some(area) = self.pixels() {
                    session.resized(area);
                }
                session.set_sizing(self.sizing);
                self.session = Some(session);
                // What the guest drew before the display was opened.
                // The surface first, so the renderer never draws a picture it then covers.
                let surface = self.use_surface();
                Task::batch([surface, self.poll(), self.follow()])
            }
            Err(why) => {
                self.view = ConsoleView::Unavailable(why);
                Task::none()
            }
        }
    }

    /// Has a console surface draw the display, once the window's X11 window is known (asked
    /// the first time).
    fn use_surface(&mut self) -> Task<Message> {
        let Some(session) = self.session.as_mut().filter(|s| s.surface().is_none()) else {
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

    /// The picture area in physical pixels, once known.
    fn pixels(&self) -> Option<(u32, u32)> {
        let size = self.area?;
        let pixels = |logical: f32| (logical * self.scale_factor).floor().max(0.0) as u32;
        Some((pixels(size.width), pixels(size.height)))
    }

    /// When the guest follows the area: waits for its size to settle ([`SETTLE`]), then tells
    /// the guest (unless it was told that size already).
    fn follow(&mut self) -> Task<Message> {
        let (true, Some(session), Some(_)) = (self.follows, self.session.as_ref(), self.pixels())
        else {
            return Task::none();
        };
        self.resizes += 1;
        let (vm, resize) = (session.vm.clone(), self.resizes);
        Task::perform(tokio::time::sleep(SETTLE), move |()| {
            Message::Settled(vm.clone(), resize)
        })
    }

    /// Tells VM `vm`'s guest the area's size in pixels as its preferred display size, if the
    /// area has not changed since resize `resize` and the guest was not told that size yet.
    fn tell_size(&mut self, vm: &str, resize: u64, client: Option<&Arc<Client>>) -> Task<Message> {
        let shown = self.session.as_ref().is_some_and(|s| s.vm == vm);
        let (true, true, Some(area), Some(client)) = (
            self.follows && shown,
            resize == self.resizes,
            self.pixels(),
            client,
        ) else {
            return Task::none();
        };
        let size = (
            area.0.max(SMALLEST_FOLLOWED.0),
            area.1.max(SMALLEST_FOLLOWED.1),
        );
        if self.told == Some(size) || berth_display::gpu::check_mode(size.0, size.1).is_err() {
            return Task::none();
        }
        self.told = Some(size);
        let (client, vm) = (Arc::clone(client), vm.to_owned());
        Task::perform(
            async move { client.vm_display_size(&vm, size.0, size.1).await },
            Message::SizeTold,
        )
    }

    /// Scales the next picture to the current area (the same frame again if the area changed).
    fn fit(&mut self) -> Task<Message> {
        let area = self.pixels();
        match (self.session.as_mut(), area) {
            (Some(session), Some(area)) => {
                session.resized(area);
                self.poll()
            }
            _ => Task::none(),
        }
    }

    fn key(&mut self, code: Code, pressed: bool, client: Option<&Arc<Client>>) -> Task<Message> {
        let Some(session) = self.session.as_mut().filter(|s| s.focused) else {
            return Task::none();
        };
        if code == HOST_KEY {
            session.focused = false;
            return Task::none();
        }
        let (Some(evdev), Some(client)) = (evdev_code(code), client.cloned()) else {
            return Task::none();
        };
        let vm = session.vm.clone();
        Task::perform(
            async move { client.vm_key_event(&vm, evdev, pressed).await },
            Message::Input,
        )
    }

    /// The mouse over the console: a press takes the keyboard; moves, buttons and the wheel go
    /// to the guest's tablet.
    fn pointer(&mut self, pointer: Pointer, client: Option<&Arc<Client>>) -> Task<Message> {
        let (Some(session), Some(client)) = (self.session.as_mut(), client.cloned()) else {
            return Task::none();
        };
        if matches!(pointer, Pointer::Button { pressed: true, .. }) {
            session.focused = true;
        }
        let vm = session.vm.clone();
        match session.tablet(pointer) {
            Some(Tablet::Wheel(clicks)) => Task::perform(
                async move { client.vm_wheel(&vm, clicks).await },
                Message::Input,
            ),
            Some(Tablet::At { x, y, buttons }) => Task::perform(
                async move { client.vm_pointer(&vm, x, y, buttons).await },
                Message::Input,
            ),
            None => Task::none(),
        }
    }

    /// Opens the shown VM's display in berth-console, on the daemon `client` talks to; what it
    /// said, if it failed, comes back as the window's error.
    pub fn detach(&self, name: String, client: Option<&Arc<Client>>) -> Task<Message> {
        let Some(client) = client else {
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

    /// Keeps the view in step with the session.
    fn refresh_view(&mut self) {
        self.view = match &self.session {
            Some(session) => ConsoleView::Shown {
                picture: session.shown.clone(),
                display: session.size,
                fitted: session.fitted,
                focused: session.focused,
                surface: session.surface(),
                sizing: self.sizing,
                scale: self.scale_factor,
            },
            None => match std::mem::take(&mut self.view) {
                ConsoleView::Unavailable(why) => ConsoleView::Unavailable(why),
                _ => ConsoleView::None,
            },
        };
    }
}

/// The X11 window id of an iced window, when it is on X11.
fn x11_window(window: &dyn iced::window::Window) -> Option<u32> {
    berth_surface::x11_window(window.window_handle().ok()?.as_raw())
}

/// Where the window finds berth-console: `$BERTH_CONSOLE`, else next to its own executable,
/// else on the PATH.
fn console_binary() -> std::path::PathBuf {
    crate::data::programs::program("berth-console", Some("BERTH_CONSOLE"))
}
