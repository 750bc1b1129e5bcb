//! `ContainerWait`: answered once a container is not running, for `run` in the foreground and
//! `logs -f`, which read its output from its log file meanwhile.

use std::sync::Arc;
use std::time::Duration;

use berth_api::event::Event;
use berth_api::protocol::ServerFrame;
use berth_api::request::Reply;
use tokio::sync::{broadcast, mpsc};

use crate::server::Daemon;

/// How often the container is looked at again besides its state events (a daemon that missed
/// one, lagging, still answers).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Answers request `id` on `out` once `container` is not running.
pub async fn container_wait(
    daemon: Arc<Daemon>,
    id: u64,
    container: String,
    out: mpsc::Sender<ServerFrame>,
) {
    let result = match daemon.engine.inspect(&container) {
        Err(error) => Err(error),
        Ok(info) => {
            // Subscribed before the first look, so its end cannot slip between. The event is
            // what says it ended: berthd tells it (its state saved) a moment before it drops
            // the container from those running, so looking again at once could still find it
            // running and wait out LOOK_AGAIN for nothing.
            let mut changes = daemon.events.subscribe();
            while daemon.engine.is_running(&info.id) {
                let ended = async {
                    loop {
                        match changes.recv().await {
                            Ok(Event::ContainerState { id, state })
                                if id == info.id && !state.is_running() =>
                            {
                                break;
                            }
                            Err(broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await;
                            }
                            _ => {}
                        }
                    }
                };
                if tokio::time::timeout(LOOK_AGAIN, ended).await.is_ok() {
                    break;
                }
            }
            daemon.engine.inspect(&info.id).map(Reply::Container)
        }
    };
    let _ = out.send(ServerFrame::Response { id, result }).await;
}
