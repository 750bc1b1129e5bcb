//! `berth-console NAME`: the detached, full-size console window of a running VM. It maps the
//! VM's framebuffer (handed over by berthd with SCM_RIGHTS), draws it on a winit window, and
//! sends the keyboard, pointer and wheel to the guest's virtio-input devices.
//!
//! On X11 a console surface draws the display (`berth_surface`: MIT-SHM from a thread of its
//! own, as in the main window), because without a GPU `pixels` (wgpu on llvmpipe) showed a
//! 1280x800 guest at 22 frames a second and a 1080p one at 10 (README, performance); elsewhere,
//! when the X server refuses the surface, or with `BERTH_CONSOLE_SURFACE=0`, `pixels` draws it.
//!
//! It draws only when berthd says a frame was published (`DisplayUpdate` / `DisplayMode`, passed
//! from a tokio thread to the window's event loop as user events): a still display costs no CPU.
//! It ends when the VM stops (exit 0) or berthd goes away (exit 3); a VM that does not exist or
//! is not running is refused before any window opens (exit 1).

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use berth_api::input::tablet_position;
use berth_api::vm::VmState;
use berth_api::{Client, ClientError, Event, Events, Request};
use berth_console::args::Args;
use berth_console::display::{GuestDisplay, Refresh, blit};
use berth_console::keys;
use berth_console::pointer::{TYPICAL_MONITOR, Wheel, button_bit, window_size};
use berth_display::framebuffer::Rect;
use berth_display::resample::Scaling;
use berth_surface::{Options, Placement, Surface};
use clap::Parser;
use pixels::{Pixels, PixelsBuilder, ScalingMode, SurfaceTexture};
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::keyboard::PhysicalKey;
use winit::raw_window_handle::HasWindowHandle;
use winit::window::{Window, WindowId};

/// Exit codes, as berthctl's: 1 the VM cannot be shown, 3 no daemon (or it went away).
const EXIT_FAILED: u8 = 1;
const EXIT_NO_DAEMON: u8 = 3;

/// What the tokio side tells the window.
#[derive(Debug)]
enum Notice {
    /// A frame was published with this rectangle changed.
    Damage(Rect),
    /// The display changed mode (0x0: off), or events were missed: copy the whole frame.
    Whole,
    /// The VM was started again (a guest reset): its display is a new framebuffer.
    Framebuffer(OwnedFd),
    /// The VM is no longer running.
    Ended(VmState),
    /// berthd went away.
    Gone(String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berth-console: {e:#}");
            let no_daemon = e.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<ClientError>(),
                    Some(ClientError::NoDaemon { .. } | ClientError::Disconnected(_))
                )
            });
            ExitCode::from(if no_daemon {
                EXIT_NO_DAEMON
            } else {
                EXIT_FAILED
            })
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let name = args.name;
    // Everything the daemon can refuse is asked before a window opens.
    let (client, events, fd) = runtime.block_on(async {
        let (client, events) = match &args.socket {
            Some(socket) => Client::connect(socket, "berth-console").await?,
            None => Client::connect_default("berth-console").await?,
        };
        client.subscribe().await?;
        let vm = client
            .vm_show(&name)
            .await
            .with_context(|| format!("cannot show the console of `{name}`"))?;
        if !matches!(vm.state, VmState::Running | VmState::Paused) {
            return Err(anyhow!(
                "VM `{name}` is {}, not running: start it first (berthctl vm start {name})",
                vm.state
            ));
        }
        let (_, fd) = client
            .vm_display(&name)
            .await
            .with_context(|| format!("cannot show the console of `{name}`"))?;
        anyhow::Ok((Arc::new(client), events, fd))
    })?;
    let display =
        GuestDisplay::open(fd).with_context(|| format!("cannot show the console of `{name}`"))?;

    let event_loop = EventLoop::<Notice>::with_user_event()
        .build()
        .context("cannot open a window (is DISPLAY or WAYLAND_DISPLAY set?)")?;
    event_loop.set_control_flow(ControlFlow::Wait);
    let (input, input_rx) = mpsc::unbounded_channel();
    runtime.spawn(forward_events(
        Arc::clone(&client),
        events,
        name.clone(),
        event_loop.create_proxy(),
    ));
    runtime.spawn(send_input(Arc::clone(&client), input_rx));

    let mut app = Console {
        name,
        display,
        input,
        window: None,
        surface: None,
        pixels: None,
        picture: (0, 0),
        cursor: None,
        buttons: 0,
        pressed: BTreeSet::new(),
        wheel: Wheel::default(),
        started,
        shown: false,
        surface_warned: false,
        rate: std::env::var_os("BERTH_CONSOLE_FPS").map(|_| (Instant::now(), 0)),
        exit: None,
    };
    event_loop
        .run_app(&mut app)
        .context("the window's event loop failed")?;
    let code = app.exit.unwrap_or(0);
    // The runtime's tasks wait on the daemon; nothing of theirs needs to finish.
    runtime.shutdown_background();
    Ok(code)
}

/// Passes berthd's events about this VM to the window, as wake-ups of its event loop.
async fn forward_events(
    client: Arc<Client>,
    mut events: Events,
    name: String,
    proxy: EventLoopProxy<Notice>,
) {
    let mut restarting = false;
    loop {
        let notice = match events.next().await {
            None => Notice::Gone("berthd closed the connection".into()),
            Some(Event::DisplayUpdate {
                name: vm,
                x,
                y,
                width,
                height,
                ..
            }) if vm == name => Notice::Damage(Rect::new(x, y, width, height)),
            Some(Event::DisplayMode { name: vm, .. }) if vm == name => Notice::Whole,
            Some(Event::Lagged { .. }) => Notice::Whole,
            Some(Event::VmState { name: vm, state }) if vm == name => match state {
                VmState::Starting => {
                    restarting = true;
                    continue;
                }
                VmState::Running if restarting => {
                    restarting = false;
                    match client.vm_display(&name).await {
                        Ok((_, fd)) => Notice::Framebuffer(fd),
                        Err(ClientError::Disconnected(e)) => Notice::Gone(e),
                        Err(e) => {
                            eprintln!(
                                "berth-console: the VM was started again, but its display cannot be shown: {e}"
                            );
                            continue;
                        }
                    }
                }
                state if !state.is_active() => Notice::Ended(state),
                _ => continue,
            },
            Some(_) => continue,
        };
        let last = matches!(notice, Notice::Ended(_) | Notice::Gone(_));
        if proxy.send_event(notice).is_err() || last {
            return;
        }
    }
}

/// Sends the window's input requests in order, pointer moves collapsed while the daemon is
/// busy; a failure is reported once until another one happens.
async fn send_input(client: Arc<Client>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut last_error = None;
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        for request in collapse_moves(std::mem::take(&mut batch)) {
            match client.call(request).await {
                Ok(_) => last_error = None,
                Err(ClientError::Disconnected(_)) => return, // the event stream says so
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_ref() != Some(&message) {
                        eprintln!("berth-console: input not delivered: {message}");
                        last_error = Some(message);
                    }
                }
            }
        }
    }
}

/// Drops pointer moves that the next request supersedes (same buttons, only the place differs).
fn collapse_moves(requests: Vec<Request>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::with_capacity(requests.len());
    for request in requests {
        if let (
            Some(Request::VmPointer {
                buttons: held_before,
                ..
            }),
            Request::VmPointer { buttons, .. },
        ) = (out.last(), &request)
            && held_before == buttons
        {
            out.pop();
        }
        out.push(request);
    }
    out
}

/// The window's state.
struct Console {
    name: String,
    display: GuestDisplay,
    input: mpsc::UnboundedSender<Request>,
    window: Option<Arc<Window>>,
    /// The console surface drawing the display (X11), if one does; else `pixels` does.
    surface: Option<Surface>,
    pixels: Option<Pixels<'static>>,
    /// The guest's mode as last shown (the size of pixels' buffer).
    picture: (u32, u32),
    /// The tablet position last sent, while the pointer is over the picture.
    cursor: Option<(u32, u32)>,
    buttons: u8,
    /// evdev codes pressed in this window (released when it loses the keyboard).
    pressed: BTreeSet<u16>,
    wheel: Wheel,
    /// When the process started, for the one line saying when the first picture was shown.
    started: Instant,
    shown: bool,
    /// A frame could not be presented once already (reported once, not per frame).
    surface_warned: bool,
    /// With `BERTH_CONSOLE_FPS` set: when the current second of counting began and the frames
    /// shown in it (scripts/bench-display reads the rate from stderr).
    rate: Option<(Instant, u32)>,
    exit: Option<u8>,
}

impl Console {
    fn quit(&mut self, event_loop: &ActiveEventLoop, code: u8) {
        if self.exit.is_none() {
            self.exit = Some(code);
        }
        event_loop.exit();
    }

    fn fail(&mut self, event_loop: &ActiveEventLoop, message: impl std::fmt::Display) {
        eprintln!("berth-console: {message}");
        self.quit(event_loop, EXIT_FAILED);
    }

    fn send(&self, request: Request) {
        // The receiver lives as long as the runtime, which outlives the event loop.
        let _ = self.input.send(request);
    }

    fn key(&mut self, code: u16, pressed: bool) {
        let changed = if pressed {
            self.pressed.insert(code)
        } else {
            self.pressed.remove(&code)
        };
        if changed {
            self.send(Request::VmKeyEvent {
                name: self.name.clone(),
                code,
                pressed,
            });
        }
    }

    fn pointer(&self) {
        if let Some((x, y)) = self.cursor {
            self.send(Request::VmPointer {
                name: self.name.clone(),
                x,
                y,
                buttons: self.buttons,
            });
        }
    }

    fn open_window(&mut self, event_loop: &ActiveEventLoop) -> anyhow::Result<()> {
        let guest = self.display.geometry()?;
        let monitor = event_loop
            .primary_monitor()
            .or_else(|| event_loop.available_monitors().next())
            .map(|m| (m.size().width, m.size().height))
            .filter(|&(w, h)| w > 0 && h > 0)
            .unwrap_or(TYPICAL_MONITOR);
        let (w, h) = window_size(guest, monitor);
        let attributes = Window::default_attributes()
            .with_title(format!("{} — Berth console", self.name))
            .with_inner_size(PhysicalSize::new(w, h));
        let window = Arc::new(
            event_loop
                .create_window(attributes)
                .context("cannot open the window")?,
        );
        let picture = if guest.0 == 0 || guest.1 == 0 {
            (w, h)
        } else {
            guest
        };
        self.picture = picture;
        self.window = Some(Arc::clone(&window));
        match self.open_surface(&window) {
            Ok(surface) => {
                eprintln!("berth-console: drawing with a console surface (X11, MIT-SHM)");
                self.surface = Some(surface);
                self.place_surface();
                Ok(())
            }
            Err(why) => {
                eprintln!("berth-console: no console surface ({why}): pixels draws");
                self.use_pixels(&window)
            }
        }
    }

    /// A console surface showing the display in `window`, or why there is none.
    fn open_surface(&self, window: &Window) -> Result<Surface, String> {
        if !berth_surface::wanted() {
            return Err("BERTH_CONSOLE_SURFACE=0".into());
        }
        let handle = window.window_handle().map_err(|e| e.to_string())?;
        let parent = berth_surface::x11_window(handle.as_raw()).ok_or("not on X11")?;
        let fd = self
            .display
            .fd()
            .try_clone_to_owned()
            .map_err(|e| e.to_string())?;
        let options = Options {
            label: "berth-console",
            started: (!self.shown).then_some(self.started),
            black_host: true,
        };
        Surface::open(parent, fd, options)
    }

    /// Has the surface fill the window (the picture scaled to it, aspect kept).
    fn place_surface(&self) {
        let (Some(surface), Some(window)) = (&self.surface, &self.window) else {
            return;
        };
        let size = window.inner_size();
        let whole = berth_surface::Rect {
            x: 0,
            y: 0,
            width: size.width,
            height: size.height,
        };
        surface.handle().place(Some(Placement {
            area: whole,
            clip: whole,
            scaling: Scaling::Fill,
        }));
    }

    /// The guest changed mode: the window follows when it can (as `draw` has it follow).
    fn follow_mode(&mut self) {
        let Ok(mode) = self.display.geometry() else {
            return;
        };
        if mode.0 == 0 || mode.1 == 0 || mode == self.picture {
            return;
        }
        self.picture = mode;
        if let Some(window) = &self.window {
            let monitor = window
                .current_monitor()
                .map(|m| (m.size().width, m.size().height))
                .filter(|&(w, h)| w > 0 && h > 0)
                .unwrap_or(TYPICAL_MONITOR);
            let (w, h) = window_size(mode, monitor);
            let _ = window.request_inner_size(PhysicalSize::new(w, h));
        }
    }

    /// Draws with `pixels` from now on (no surface, or it failed).
    fn use_pixels(&mut self, window: &Arc<Window>) -> anyhow::Result<()> {
        let size = window.inner_size();
        let picture = self.picture;
        let surface =
            SurfaceTexture::new(size.width.max(1), size.height.max(1), Arc::clone(window));
        let mut pixels = PixelsBuilder::new(picture.0, picture.1, surface)
            .clear_color(pixels::wgpu::Color::BLACK)
            .build()
            .context("cannot draw in the window (no usable GPU adapter or renderer)")?;
        pixels.set_scaling_mode(ScalingMode::Fill);
        let info = pixels.adapter().get_info();
        eprintln!(
            "berth-console: drawing with {} ({:?})",
            info.name, info.backend
        );
        self.pixels = Some(pixels);
        // The whole frame, at once.
        self.display.invalidate();
        window.request_redraw();
        Ok(())
    }

    /// Copies what changed into the picture and shows it.
    fn draw(&mut self) -> anyhow::Result<()> {
        let (Some(pixels), Some(window)) = (self.pixels.as_mut(), self.window.as_ref()) else {
            return Ok(());
        };
        match self.display.refresh()? {
            Refresh::Nothing => {}
            Refresh::Off => fill_black(pixels.frame_mut()),
            Refresh::Whole {
                width,
                height,
                rgba,
            } => {
                if (width, height) != self.picture {
                    pixels
                        .resize_buffer(width, height)
                        .context("cannot follow the guest's new mode")?;
                    self.picture = (width, height);
                    let monitor = window
                        .current_monitor()
                        .map(|m| (m.size().width, m.size().height))
                        .filter(|&(w, h)| w > 0 && h > 0)
                        .unwrap_or(TYPICAL_MONITOR);
                    let (w, h) = window_size((width, height), monitor);
                    // The window follows when it can (a Resized event resizes the surface).
                    let _ = window.request_inner_size(PhysicalSize::new(w, h));
                }
                pixels.frame_mut().copy_from_slice(&rgba);
            }
            Refresh::Part { rect, rgba } => blit(pixels.frame_mut(), self.picture.0, rect, &rgba),
        }
        match pixels.render() {
            // pixels already reconfigured the surface and retried once: skip this frame (the
            // next one, or the next expose, draws the picture) and say so only once.
            Err(pixels::Error::Surface(e)) => {
                if !self.surface_warned {
                    eprintln!("berth-console: a frame could not be shown ({e}); going on");
                    self.surface_warned = true;
                }
                Ok(())
            }
            Ok(()) => {
                if let Some((since, frames)) = self.rate.as_mut() {
                    *frames += 1;
                    let elapsed = since.elapsed().as_secs_f64();
                    if elapsed >= 1.0 {
                        eprintln!(
                            "berth-console: {:.1} frames/s at {}x{}",
                            f64::from(*frames) / elapsed,
                            self.picture.0,
                            self.picture.1
                        );
                        *since = Instant::now();
                        *frames = 0;
                    }
                }
                if !self.shown {
                    self.shown = true;
                    eprintln!(
                        "berth-console: first picture shown {:.0} ms after start",
                        self.started.elapsed().as_secs_f64() * 1000.0
                    );
                }
                Ok(())
            }
            Err(e) => Err(e).context("cannot draw the guest's display"),
        }
    }
}

fn fill_black(frame: &mut [u8]) {
    for px in frame.chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 0, 0xff]);
    }
}

impl ApplicationHandler<Notice> for Console {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_none()
            && let Err(e) = self.open_window(event_loop)
        {
            self.fail(event_loop, format!("{e:#}"));
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, notice: Notice) {
        if let Some(why) = self.surface.as_ref().and_then(Surface::failure) {
            // The surface's thread reported why it stopped: pixels draws from now on.
            eprintln!("berth-console: pixels draws from now on ({why})");
            self.surface = None;
            if let Some(window) = self.window.clone()
                && let Err(e) = self.use_pixels(&window)
            {
                return self.fail(event_loop, format!("{e:#}"));
            }
        }
        match notice {
            Notice::Damage(_) if self.surface.is_some() => {
                if let Some(surface) = &self.surface {
                    surface.handle().wake();
                }
                return;
            }
            Notice::Whole if self.surface.is_some() => {
                self.follow_mode();
                if let Some(surface) = &self.surface {
                    surface.handle().wake();
                }
                return;
            }
            Notice::Damage(rect) => self.display.damage(rect),
            Notice::Whole => self.display.invalidate(),
            Notice::Framebuffer(fd) => match GuestDisplay::open(fd) {
                Ok(display) => {
                    self.display = display;
                    if self.surface.is_some() {
                        // The old surface maps the old framebuffer: a new one for the new.
                        self.surface = None;
                        let opened = self.window.clone().map(|w| self.open_surface(&w));
                        match opened {
                            Some(Ok(surface)) => {
                                self.surface = Some(surface);
                                self.place_surface();
                                self.follow_mode();
                            }
                            Some(Err(why)) => {
                                eprintln!("berth-console: pixels draws from now on ({why})");
                                if let Some(window) = self.window.clone()
                                    && let Err(e) = self.use_pixels(&window)
                                {
                                    return self.fail(event_loop, format!("{e:#}"));
                                }
                            }
                            None => {}
                        }
                        return;
                    }
                }
                Err(e) => return self.fail(event_loop, e),
            },
            Notice::Ended(state) => {
                match state {
                    VmState::Crashed { reason } => {
                        eprintln!("berth-console: VM `{}` crashed: {reason}", self.name)
                    }
                    state => eprintln!("berth-console: VM `{}` is {state}", self.name),
                }
                return self.quit(event_loop, 0);
            }
            Notice::Gone(why) => {
                eprintln!("berth-console: berthd went away: {why}");
                return self.quit(event_loop, EXIT_NO_DAEMON);
            }
        }
        if let Some(window) = &self.window {
            window.request_redraw();
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => self.quit(event_loop, 0),
            WindowEvent::Resized(_) if self.surface.is_some() => self.place_surface(),
            WindowEvent::Resized(size) => {
                if let Some(pixels) = self.pixels.as_mut()
                    && size.width > 0
                    && size.height > 0
                {
                    if let Err(e) = pixels.resize_surface(size.width, size.height) {
                        return self.fail(event_loop, format!("cannot resize the picture: {e}"));
                    }
                    if let Some(window) = &self.window {
                        window.request_redraw();
                    }
                }
            }
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.draw() {
                    self.fail(event_loop, format!("{e:#}"));
                }
            }
            // The window is the guest's whole display: while it has the keyboard, every key goes
            // to the guest (no host key); the guest repeats held keys itself.
            WindowEvent::KeyboardInput { event, .. } => {
                if let PhysicalKey::Code(key) = event.physical_key
                    && let Some(code) = keys::evdev_code(key)
                    && !event.repeat
                {
                    self.key(code, event.state == ElementState::Pressed);
                }
            }
            WindowEvent::Focused(false) => {
                // Keys held when the keyboard left would stay down in the guest.
                for code in std::mem::take(&mut self.pressed) {
                    self.send(Request::VmKeyEvent {
                        name: self.name.clone(),
                        code,
                        pressed: false,
                    });
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                let Some(window) = &self.window else { return };
                let size = window.inner_size();
                let at = tablet_position(
                    (position.x, position.y),
                    (f64::from(size.width), f64::from(size.height)),
                    self.picture,
                );
                if at.is_some() && at != self.cursor {
                    self.cursor = at;
                    self.pointer();
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let bit = button_bit(button);
                let before = self.buttons;
                if state == ElementState::Pressed {
                    self.buttons |= bit;
                } else {
                    self.buttons &= !bit;
                }
                if self.buttons != before {
                    self.pointer();
                }
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let clicks = self.wheel.clicks(delta);
                if clicks != 0 {
                    self.send(Request::VmWheel {
                        name: self.name.clone(),
                        clicks,
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(x: u32, buttons: u8) -> Request {
        Request::VmPointer {
            name: "vm".into(),
            x,
            y: 0,
            buttons,
        }
    }

    #[test]
    fn queued_moves_collapse_but_button_changes_and_keys_stay() {
        let key = Request::VmKeyEvent {
            name: "vm".into(),
            code: 30,
            pressed: true,
        };
        let out = collapse_moves(vec![
            pointer(1, 0),
            pointer(2, 0),
            pointer(3, 1),
            pointer(4, 1),
            key.clone(),
            pointer(5, 1),
        ]);
        assert_eq!(out, vec![pointer(2, 0), pointer(4, 1), key, pointer(5, 1)]);
    }
}
