//! The window's one line to berthd: connect to the daemon that answers (system, then the
//! user's), start an embedded `berthd --user` when none does, forward pushed events, and
//! reconnect when the connection is lost. Runs as one subscription.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::client::{Client, ClientError};
use berth_api::paths::{SOCKET_ENV, user_socket};
use iced::futures::{SinkExt, Stream};

use crate::surface::SurfaceHandle;

/// What the connection reports to the window.
#[derive(Clone)]
pub enum Event {
    /// A daemon answers; `started` when the window started it.
    Connected { client: Arc<Client>, started: bool },
    /// Something changed in the daemon.
    Pushed(Box<berth_api::Event>),
    /// The connection broke or could not be made; it is retried.
    Lost(String),
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connected { client, started } => {
                write!(
                    f,
                    "Connected({}, started: {started})",
                    client.socket().display()
                )
            }
            Event::Pushed(event) => write!(f, "Pushed({event:?})"),
            Event::Lost(reason) => write!(f, "Lost({reason})"),
        }
    }
}

/// VMs whose display a console surface draws, with the surface: their `DisplayUpdate` events,
/// one a frame, go to the surface's thread instead of the window, which has nothing to do for
/// them and would otherwise be woken to build its view 60 times a second.
static ROUTED: Mutex<Vec<(String, SurfaceHandle)>> = Mutex::new(Vec::new());

/// Sends VM `.0`'s frame events to a surface while it lives.
#[derive(Debug)]
pub struct RoutedUpdates(String, SurfaceHandle);

impl RoutedUpdates {
    pub fn new(vm: &str, surface: SurfaceHandle) -> RoutedUpdates {
        if let Ok(mut routed) = ROUTED.lock() {
            routed.push((vm.to_owned(), surface.clone()));
        }
        RoutedUpdates(vm.to_owned(), surface)
    }
}

impl Drop for RoutedUpdates {
    fn drop(&mut self) {
        if let Ok(mut routed) = ROUTED.lock()
            && let Some(at) = routed
                .iter()
                .position(|(vm, surface)| *vm == self.0 && *surface == self.1)
        {
            routed.swap_remove(at);
        }
    }
}

/// Hands a frame event to the surfaces drawing its VM's display; whether there were any.
fn routed(event: &berth_api::Event) -> bool {
    let berth_api::Event::DisplayUpdate { name, .. } = event else {
        return false;
    };
    let Ok(routed) = ROUTED.lock() else {
        return false;
    };
    let mut any = false;
    for (_, surface) in routed.iter().filter(|(vm, _)| vm == name) {
        surface.wake();
        any = true;
    }
    any
}

/// The berthd binary: next to this one (a build or an install), else on PATH.
fn berthd_binary() -> PathBuf {
    crate::data::programs::program("berthd", None)
}

/// Start `berthd --user` detached from the window (its VMs and containers outlive the window)
/// and wait for it to answer.
async fn start_embedded() -> Result<(Client, berth_api::Events), String> {
    let socket = std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(user_socket);
    let log = std::env::temp_dir().join(format!("berthd-user-{}.log", std::process::id()));
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut command = tokio::process::Command::new(berthd_binary());
    command
        .arg("--user")
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    // Its own session: closing the window's terminal does not take the daemon with it.
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start berthd ({}): {e}", berthd_binary().display()))?;
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("berthd --user exited ({status}): {}", why.trim()));
        }
        if let Ok(connected) = Client::connect(&socket, "berth").await {
            return Ok(connected);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "berthd --user did not answer on {} within 5 s",
        socket.display()
    ))
}

async fn open() -> Result<(Client, berth_api::Events, bool), String> {
    match Client::connect_default("berth").await {
        Ok((client, events)) => Ok((client, events, false)),
        Err(ClientError::NoDaemon { .. }) => start_embedded().await.map(|(c, e)| (c, e, true)),
        Err(other) => Err(other.to_string()),
    }
}

/// The subscription's stream.
pub fn run() -> impl Stream<Item = Event> {
    iced::stream::channel(64, async |mut output| {
        loop {
            let reason = match open().await {
                Ok((client, mut events, started)) => {
                    let client = Arc::new(client);
                    match client.subscribe().await {
                        Ok(()) => {
                            let _ = output.send(Event::Connected { client, started }).await;
                            while let Some(event) = events.next().await {
                                if !routed(&event) {
                                    let _ = output.send(Event::Pushed(Box::new(event))).await;
                                }
                            }
                            "berthd closed the connection".to_owned()
                        }
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e,
            };
            let _ = output.send(Event::Lost(reason)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
