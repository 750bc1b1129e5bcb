//! The surface: its thread, which draws each new frame once where it was placed, and the
//! handle the host window tells it through.

use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_display::framebuffer::FramebufferReader;
use berth_display::gpu::Format;
use berth_display::rate::FrameRate;
use berth_display::resample::{self, Order};

use crate::child::ChildWindow;
use crate::layout::{Layout, Placement};

/// How long the surface waits for word of a new frame before it looks by itself (an update
/// event missed, the window exposed): a wait this long costs a still display nothing (a 4 ms
/// poll cost 2 % of a core here, in timer wake-ups alone).
const IDLE_LOOK: Duration = Duration::from_millis(250);

/// The least time between the starts of two frames drawn (at most ~83 a second): a guest
/// flushing faster than a display can show costs nothing more. Well below a 60 Hz frame
/// (16.7 ms), so each of a 60 Hz guest's frames, told a little late or early, is drawn.
const MIN_GAP: Duration = Duration::from_millis(12);

/// What the surface's thread is told.
#[derive(Debug)]
enum Command {
    /// Show the picture here (`None`: hide it).
    Place(Option<Placement>),
    /// The guest published a frame (its `DisplayUpdate` event came).
    Wake,
    /// The surface is being dropped.
    Stop,
}

/// The host window's side of a surface: cheap to clone.
#[derive(Debug, Clone)]
pub struct SurfaceHandle {
    commands: Sender<Command>,
}

impl SurfaceHandle {
    /// Shows the picture at `placement` (`None`: hides it).
    pub fn place(&self, placement: Option<Placement>) {
        // A surface whose thread ended has nothing to show: the send may fail.
        let _ = self.commands.send(Command::Place(placement));
    }

    /// The guest published a new frame: draw it (when its turn comes).
    pub fn wake(&self) {
        let _ = self.commands.send(Command::Wake);
    }
}

/// A running surface; dropping it ends its thread and removes its window.
pub struct Surface {
    handle: SurfaceHandle,
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Surface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surface").finish_non_exhaustive()
    }
}

/// How a surface behaves in its host window.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// What starts its lines on stderr (the program's name).
    pub label: &'static str,
    /// When the program started: it says once how long after that the first picture was shown.
    pub started: Option<Instant>,
    /// The host window draws nothing itself (berth-console): its background is made black, so
    /// the bars beside a picture of another shape are.
    pub black_host: bool,
}

impl Surface {
    /// A surface in X11 window `parent` showing the framebuffer `fd`; why not, when the X
    /// server cannot take frames this way.
    pub fn open(parent: u32, fd: OwnedFd, options: Options) -> Result<Surface, String> {
        let reader = FramebufferReader::open(fd).map_err(|e| e.to_string())?;
        let child = ChildWindow::create(parent).map_err(|e| format!("console surface: {e}"))?;
        if options.black_host {
            child
                .black_parent(parent)
                .map_err(|e| format!("console surface: {e}"))?;
        }
        let (commands, receiver) = mpsc::channel();
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let report = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("console-surface".into())
            .spawn(move || {
                if let Err(why) = present(child, reader, &receiver, options) {
                    eprintln!("{}: the console surface stopped: {why}", options.label);
                    if let Ok(mut failure) = report.lock() {
                        *failure = Some(why);
                    }
                }
            })
            .map_err(|e| format!("console surface: cannot start its thread: {e}"))?;
        Ok(Surface {
            handle: SurfaceHandle { commands },
            failure,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> SurfaceHandle {
        self.handle.clone()
    }

    /// Why the surface stopped drawing, once it has.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

impl Drop for Surface {
    fn drop(&mut self) {
        // The host may hold clones of the handle (so of the channel) a little longer: the
        // thread is told to stop rather than left to find the channel closed.
        let _ = self.handle.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            // At most one frame being drawn; its window goes with its X connection.
            let _ = thread.join();
        }
    }
}

/// The thread: waits for placements and frames, and draws each new frame once.
fn present(
    mut child: ChildWindow,
    mut reader: FramebufferReader,
    commands: &Receiver<Command>,
    options: Options,
) -> Result<(), String> {
    let mut first = options.started;
    let mut placement: Option<Placement> = None;
    // The frame and layout last drawn, and when.
    let mut drawn: Option<(u64, Layout)> = None;
    let mut last_draw: Option<Instant> = None;
    let mut rate = std::env::var_os("BERTH_CONSOLE_FPS").map(|_| FrameRate::new(Instant::now()));
    // Views of the framebuffer made (a view the guest raced is made again), for the report.
    let (mut views, mut frames) = (0u32, 0u32);
    // How long to wait for the next command: until a frame that came too soon is due.
    let mut wait = IDLE_LOOK;
    loop {
        let mut command = match commands.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        while let Some(c) = command.take().or_else(|| commands.try_recv().ok()) {
            match c {
                Command::Place(p) => placement = p,
                Command::Wake => {}
                Command::Stop => return Ok(()),
            }
        }
        wait = IDLE_LOOK;
        let exposed = child.exposed().map_err(|e| e.to_string())?;
        let Some(placement) = placement else {
            child.hide().map_err(|e| e.to_string())?;
            drawn = None;
            continue;
        };
        let frame = reader.frame();
        let Ok((width, height, _, _)) = reader.geometry() else {
            // The writer is publishing for longer than the reader waits: look again soon.
            wait = MIN_GAP;
            continue;
        };
        let Some(layout) = Layout::of((width, height), &placement) else {
            child.hide().map_err(|e| e.to_string())?;
            drawn = None;
            continue;
        };
        let stale = drawn != Some((frame, layout));
        let since = last_draw.map(|at| at.elapsed());
        if stale && let Some(since) = since.filter(|&since| since < MIN_GAP) {
            // Too soon after the last: drawn when its turn comes (the newest frame by then).
            wait = MIN_GAP - since;
            continue;
        }
        if stale {
            // The gap is kept between starts: a frame that takes long to draw must not push
            // the next one out of its turn.
            let started = Instant::now();
            child
                .reserve(placement.area.width as usize * placement.area.height as usize * 4)
                .map_err(|e| e.to_string())?;
            let pixels = child.pixels();
            let viewed = reader
                .view_frame(|view| {
                    views += 1;
                    let Some(format) = Format::from_code(view.format()) else {
                        return Err(format!(
                            "the guest's display has an unknown format {}",
                            view.format()
                        ));
                    };
                    // The mode may have changed since the geometry was read: lay it out again.
                    let layout = Layout::of((view.width(), view.height()), &placement);
                    if let Some(layout) = layout {
                        resample::scale_into(view, format, layout.picture, Order::Bgrx, pixels);
                    }
                    Ok(layout)
                })
                .map_err(|e| e.to_string())?;
            let Some(layout) = viewed.value? else {
                continue;
            };
            child.show(&layout).map_err(|e| e.to_string())?;
            drawn = Some((viewed.frame, layout));
            last_draw = Some(started);
            frames += 1;
            if let Some(started) = first.take() {
                // For berth-console's start-up figure (scripts/bench-window).
                eprintln!(
                    "{}: first picture shown {:.0} ms after start",
                    options.label,
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            if let Some(rate) = rate.as_mut()
                && let Some(fps) = rate.shown(Instant::now())
            {
                // For scripts/bench-display, as the renderer's path options it.
                eprintln!(
                    "{}: {fps:.1} frames/s at {}x{} (surface, {:.2} views a frame)",
                    options.label,
                    viewed.width,
                    viewed.height,
                    f64::from(views) / f64::from(frames.max(1))
                );
                (views, frames) = (0, 0);
            }
        } else if exposed && let Some((_, layout)) = drawn {
            child.show(&layout).map_err(|e| e.to_string())?;
        }
    }
}
