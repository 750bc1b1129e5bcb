//! The async client the GUI and berthctl share: connect, handshake, typed calls, and a stream of
//! pushed events.
//!
//! One background task reads frames and routes each response to the call waiting on its id and
//! each event to the [`Events`] stream, so calls may overlap and events never block replies.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::container::{AttachInfo, ExecInfo, ExecSpec, ImageDetail, Pruned, UsageLine};
use crate::container::{BuildSpec, ContainerInfo, ContainerStats, ImageInfo, RunSpec};
use crate::error::{ApiError, ErrorKind};
use crate::event::Event;
use crate::fdpass::FdFrameReader;
use crate::frame::{read_frame, write_frame};
use crate::host::{DaemonMode, HostInfo};
use crate::paths::candidate_sockets;
use crate::protocol::{ClientFrame, PROTOCOL_VERSION, ServerFrame};
use crate::registry_login::RegistryLogin;
use crate::request::{Reply, Request};
use crate::vm::{DisplayInfo, VmEdit, VmInfo, VmListing, VmSpec};
use crate::volume::VolumeInfo;

/// How long the daemon has to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call could not be made or was refused. Clone, so a GUI can keep it in its state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens at any of the places tried.
    #[error("no berthd answers at {}; start one with `sudo berthd` (for the whole machine) or `berthd --user` (for yourself)", list(.tried))]
    NoDaemon { tried: Vec<PathBuf> },
    /// The daemon does not admit this user.
    #[error("berthd at {} refused the connection: {message}", socket.display())]
    Refused { socket: PathBuf, message: String },
    /// Client and daemon speak different protocol versions.
    #[error("{0}")]
    VersionMismatch(String),
    /// The connection broke.
    #[error("the connection to berthd was lost: {0}")]
    Disconnected(String),
    /// The daemon sent something this client does not understand.
    #[error("berthd answered something unexpected: {0}")]
    Protocol(String),
    /// The daemon answered the request with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A response and the fds its frame carried.
type Answer = Result<(Reply, Vec<OwnedFd>), ClientError>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

/// A connection to berthd.
pub struct Client {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    socket: PathBuf,
    server_version: String,
    mode: DaemonMode,
}

/// Events pushed by the daemon after [`Client::subscribe`]. Ends when the connection does.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event, or `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Client {
    /// Connect to the first daemon that answers: `$BERTH_SOCKET`, else the system daemon, else
    /// the user's own.
    pub async fn connect_default(client_name: &str) -> Result<(Client, Events), ClientError> {
        let tried = candidate_sockets();
        for socket in &tried {
            match Client::connect(socket, client_name).await {
                Err(ClientError::NoDaemon { .. }) => continue,
                other => return other,
            }
        }
        Err(ClientError::NoDaemon { tried })
    }

    /// Connect to the daemon at `socket` and shake hands.
    pub async fn connect(
        socket: &Path,
        client_name: &str,
    ) -> Result<(Client, Events), ClientError> {
        let no_daemon = || ClientError::NoDaemon {
            tried: vec![socket.to_owned()],
        };
        let stream = match UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(e) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                        no_daemon()
                    }
                    std::io::ErrorKind::PermissionDenied => ClientError::Refused {
                        socket: socket.to_owned(),
                        message: format!("no permission to open the socket ({e})"),
                    },
                    _ => ClientError::Disconnected(format!("{}: {e}", socket.display())),
                });
            }
        };
        let (mut reader, mut writer) = stream.into_split();
        let hello = ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            client: client_name.to_owned(),
        };
        // A refusal may already be waiting and the daemon may have closed: a failed write is
        // not the end of the story, the frame to read says why.
        let wrote = write_frame(&mut writer, &hello).await;
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut reader))
            .await
            .map_err(|_| ClientError::Protocol("no answer to the handshake within 10 s".into()))?;
        let body = first.map_err(|e| match wrote {
            Err(w) => ClientError::Disconnected(w.to_string()),
            Ok(()) => ClientError::Disconnected(e.to_string()),
        })?;
        let (server_version, mode) = match crate::frame::decode::<ServerFrame>(&body) {
            Ok(ServerFrame::Welcome {
                protocol,
                server_version,
                mode,
            }) => {
                if protocol != PROTOCOL_VERSION {
                    return Err(ClientError::VersionMismatch(format!(
                        "this client speaks protocol {PROTOCOL_VERSION}, berthd {server_version} speaks {protocol}"
                    )));
                }
                (server_version, mode)
            }
            Ok(ServerFrame::Refused { message }) => {
                return Err(ClientError::Refused {
                    socket: socket.to_owned(),
                    message,
                });
            }
            Ok(ServerFrame::Error { error, .. }) if error.kind == ErrorKind::VersionMismatch => {
                return Err(ClientError::VersionMismatch(error.message));
            }
            Ok(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected a welcome, got {other:?}"
                )));
            }
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };

        let pending: Pending = Arc::default();
        let (events_tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(route_frames(
            FdFrameReader::new(reader),
            Arc::clone(&pending),
            events_tx,
        ));
        let client = Client {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            socket: socket.to_owned(),
            server_version,
            mode,
        };
        Ok((client, Events { rx }))
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's version, from the handshake.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether the daemon is the system daemon or a user's.
    pub fn mode(&self) -> DaemonMode {
        self.mode
    }

    /// Send a request and wait for its answer.
    pub async fn call(&self, request: Request) -> Result<Reply, ClientError> {
        // Fds nobody asked for are closed here.
        self.call_with_fds(request).await.map(|(reply, _)| reply)
    }

    /// Send a request and wait for its answer and the file descriptors its frame carried.
    pub async fn call_with_fds(
        &self,
        request: Request,
    ) -> Result<(Reply, Vec<OwnedFd>), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let frame = ClientFrame::Request { id, request };
        let sent = write_frame(&mut *self.writer.lock().await, &frame).await;
        if let Err(e) = sent {
            lock(&self.pending).remove(&id);
            return Err(match e {
                crate::frame::FrameError::TooLong(_) => {
                    ClientError::Api(ApiError::invalid(e.to_string()))
                }
                e => ClientError::Disconnected(e.to_string()),
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ClientError::Disconnected(
                "berthd closed the connection".into(),
            ))
        })
    }

    /// Start receiving events on this connection's [`Events`].
    pub async fn subscribe(&self) -> Result<(), ClientError> {
        self.done(Request::Subscribe).await
    }

    pub async fn host(&self) -> Result<HostInfo, ClientError> {
        match self.call(Request::Host).await? {
            Reply::Host(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// What the ISO at `path` (absolute, readable by this user) is and how it boots.
    pub async fn iso_inspect(&self, path: &Path) -> Result<crate::iso::IsoInfo, ClientError> {
        match self
            .call(Request::IsoInspect {
                path: path.to_owned(),
            })
            .await?
        {
            Reply::Iso(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// VM `name`'s display: its geometry and the framebuffer memfd, to map read-only (with
    /// `berth_display::framebuffer::FramebufferReader`).
    pub async fn vm_display(&self, name: &str) -> Result<(DisplayInfo, OwnedFd), ClientError> {
        match self
            .call_with_fds(Request::VmDisplay {
                name: name.to_owned(),
            })
            .await?
        {
            (Reply::Display(info), fds) if fds.len() == 1 => {
                Ok((info, fds.into_iter().next().ok_or_else(no_fds)?))
            }
            (Reply::Display(_), _) => Err(ClientError::Protocol(
                "the display answer did not come with exactly its framebuffer".into(),
            )),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Starts `spec` in its container: the process's id for [`Client::exec_wait`], and the
    /// ends of its standard streams that are ours: the terminal's master with `tty`, else its
    /// stdin's write end and its stdout's and stderr's read ends.
    pub async fn exec(&self, spec: ExecSpec) -> Result<(ExecInfo, Vec<OwnedFd>), ClientError> {
        let tty = spec.tty;
        match self.call_with_fds(Request::Exec(spec)).await? {
            (Reply::Exec(info), fds) if fds.len() == if tty { 1 } else { 3 } => Ok((info, fds)),
            (Reply::Exec(_), fds) => Err(ClientError::Protocol(format!(
                "the exec answer came with {} descriptors",
                fds.len()
            ))),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// A request answered `Done` with one descriptor on its frame: that descriptor.
    async fn one_fd(&self, request: Request) -> Result<OwnedFd, ClientError> {
        match self.call_with_fds(request).await? {
            (Reply::Done, fds) if fds.len() == 1 => fds.into_iter().next().ok_or_else(no_fds),
            (Reply::Done, _) => Err(no_fds()),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// `images` as one archive: the read end of the pipe it comes through.
    pub async fn save(&self, images: &[String]) -> Result<OwnedFd, ClientError> {
        self.one_fd(Request::Save {
            images: images.to_vec(),
        })
        .await
    }

    /// Loads the image archive at `path` (absolute, readable by this user); the images in it.
    pub async fn load(&self, path: &Path) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Load {
            path: path.to_owned(),
        })
        .await
    }

    /// A container's filesystem as one tar: the read end of the pipe it comes through.
    pub async fn export(&self, container: &str) -> Result<OwnedFd, ClientError> {
        self.one_fd(Request::Export {
            container: container.to_owned(),
        })
        .await
    }

    /// A new image of a container's image with its changes on top.
    pub async fn commit(
        &self,
        container: &str,
        image: &str,
    ) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Commit {
            container: container.to_owned(),
            image: image.to_owned(),
        })
        .await
    }

    /// `system df`.
    pub async fn system_df(&self) -> Result<Vec<UsageLine>, ClientError> {
        match self.call(Request::SystemDf).await? {
            Reply::DiskUsage(lines) => Ok(lines),
            other => Err(unexpected(other)),
        }
    }

    /// `system prune`.
    pub async fn system_prune(&self, all: bool, volumes: bool) -> Result<Pruned, ClientError> {
        match self.call(Request::SystemPrune { all, volumes }).await? {
            Reply::Pruned(pruned) => Ok(pruned),
            other => Err(unexpected(other)),
        }
    }

    /// An image in full: its manifest and config.
    pub async fn image_inspect(&self, image: &str) -> Result<ImageDetail, ClientError> {
        match self
            .call(Request::ImageInspect {
                image: image.to_owned(),
            })
            .await?
        {
            Reply::Image(detail) => Ok(*detail),
            other => Err(unexpected(other)),
        }
    }

    /// Makes the named volume `name` (or finds it).
    pub async fn volume_create(&self, name: &str) -> Result<Vec<VolumeInfo>, ClientError> {
        self.volumes_reply(Request::VolumeCreate {
            name: name.to_owned(),
        })
        .await
    }

    pub async fn volume_ls(&self) -> Result<Vec<VolumeInfo>, ClientError> {
        self.volumes_reply(Request::VolumeLs).await
    }

    pub async fn volume_rm(&self, name: &str) -> Result<(), ClientError> {
        self.done(Request::VolumeRm {
            name: name.to_owned(),
        })
        .await
    }

    async fn volumes_reply(&self, request: Request) -> Result<Vec<VolumeInfo>, ClientError> {
        match self.call(request).await? {
            Reply::Volumes(volumes) => Ok(volumes),
            other => Err(unexpected(other)),
        }
    }

    /// Waits for an exec'd process to end; its exit code (128 + N for signal N).
    pub async fn exec_wait(&self, id: u64) -> Result<i32, ClientError> {
        match self.call(Request::ExecWait { id }).await? {
            Reply::ExecExit { code } => Ok(code),
            other => Err(unexpected(other)),
        }
    }

    pub async fn vm_create(&self, spec: VmSpec) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmCreate(spec)).await
    }

    pub async fn vm_list(&self) -> Result<VmListing, ClientError> {
        match self.call(Request::VmList).await? {
            Reply::VmList(listing) => Ok(listing),
            other => Err(unexpected(other)),
        }
    }

    pub async fn vm_show(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmShow {
            name: name.to_owned(),
        })
        .await
    }

    pub async fn vm_edit(&self, name: &str, edit: VmEdit) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmEdit {
            name: name.to_owned(),
            edit: Box::new(edit),
        })
        .await
    }

    pub async fn vm_delete(&self, name: &str) -> Result<(), ClientError> {
        self.done(Request::VmDelete {
            name: name.to_owned(),
        })
        .await
    }

    pub async fn vm_start(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmStart {
            name: name.to_owned(),
        })
        .await
    }

    /// Asks the guest to power off (the power button) and answers once it has, ending it after
    /// `timeout_secs` (berthd's default: 30); with `force`, ends it at once.
    pub async fn vm_stop(
        &self,
        name: &str,
        force: bool,
        timeout_secs: Option<u32>,
    ) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmStop {
            name: name.to_owned(),
            force,
            timeout_secs,
        })
        .await
    }

    pub async fn vm_pause(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmPause {
            name: name.to_owned(),
        })
        .await
    }

    pub async fn vm_resume(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.vm_reply(Request::VmResume {
            name: name.to_owned(),
        })
        .await
    }

    /// Sends bytes to the VM's serial console.
    pub async fn vm_serial_input(&self, name: &str, data: Vec<u8>) -> Result<(), ClientError> {
        self.done(Request::VmSerialInput {
            name: name.to_owned(),
            data,
        })
        .await
    }

    /// The last `lines` lines of the VM's serial log.
    pub async fn vm_log(&self, name: &str, lines: u32) -> Result<Vec<String>, ClientError> {
        self.lines(Request::VmLog {
            name: name.to_owned(),
            lines,
        })
        .await
    }

    /// Types `text` on the VM's keyboard (US layout).
    pub async fn vm_type(&self, name: &str, text: &str) -> Result<(), ClientError> {
        self.done(Request::VmType {
            name: name.to_owned(),
            text: text.to_owned(),
        })
        .await
    }

    /// Presses key combinations such as `ctrl+alt+f2`.
    pub async fn vm_key(&self, name: &str, keys: &str) -> Result<(), ClientError> {
        self.done(Request::VmKey {
            name: name.to_owned(),
            keys: keys.to_owned(),
        })
        .await
    }

    /// One key (an evdev code) goes down or up.
    pub async fn vm_key_event(
        &self,
        name: &str,
        code: u16,
        pressed: bool,
    ) -> Result<(), ClientError> {
        self.done(Request::VmKeyEvent {
            name: name.to_owned(),
            code,
            pressed,
        })
        .await
    }

    /// Tells the guest its display's preferred size.
    pub async fn vm_display_size(
        &self,
        name: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ClientError> {
        self.done(Request::VmDisplaySize {
            name: name.to_owned(),
            width,
            height,
        })
        .await
    }

    /// The tablet at `x`,`y` (0..=`input::TABLET_MAX`) with `buttons` held.
    pub async fn vm_pointer(
        &self,
        name: &str,
        x: u32,
        y: u32,
        buttons: u8,
    ) -> Result<(), ClientError> {
        self.done(Request::VmPointer {
            name: name.to_owned(),
            x,
            y,
            buttons,
        })
        .await
    }

    /// A wheel turn of `clicks` (positive: away from the user).
    pub async fn vm_wheel(&self, name: &str, clicks: i32) -> Result<(), ClientError> {
        self.done(Request::VmWheel {
            name: name.to_owned(),
            clicks,
        })
        .await
    }

    /// Builds an image; progress comes as `BuildProgress` events to a subscribed client.
    pub async fn build(&self, spec: BuildSpec) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Build(Box::new(spec))).await
    }

    /// Starts a container; answered once it runs.
    /// `run -t`: the container and the master of its terminal.
    pub async fn run_with_terminal(
        &self,
        spec: RunSpec,
    ) -> Result<(ContainerInfo, OwnedFd), ClientError> {
        self.run_with_fd(spec).await
    }

    /// `run` answered with one descriptor (a terminal's master, a stdin pipe's write end).
    async fn run_with_fd(&self, spec: RunSpec) -> Result<(ContainerInfo, OwnedFd), ClientError> {
        match self.call_with_fds(Request::Run(Box::new(spec))).await? {
            (Reply::Container(info), fds) if fds.len() == 1 => {
                Ok((info, fds.into_iter().next().ok_or_else(no_fds)?))
            }
            (Reply::Container(_), _) => Err(no_fds()),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// `run -i` without `-t`: the container and the write end of its stdin's pipe.
    pub async fn run_with_stdin(
        &self,
        spec: RunSpec,
    ) -> Result<(ContainerInfo, OwnedFd), ClientError> {
        self.run_with_fd(spec).await
    }

    pub async fn run(&self, spec: RunSpec) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::Run(Box::new(spec))).await
    }

    pub async fn ps(&self, all: bool) -> Result<Vec<ContainerInfo>, ClientError> {
        match self.call(Request::Ps { all }).await? {
            Reply::Containers(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    /// A container's output so far.
    pub async fn logs(&self, container: &str) -> Result<Vec<String>, ClientError> {
        self.lines(Request::Logs {
            container: container.to_owned(),
        })
        .await
    }

    /// A container's log file, read-only: its output byte for byte, to read as it grows.
    pub async fn log_file(&self, container: &str) -> Result<OwnedFd, ClientError> {
        self.one_fd(Request::LogFile {
            container: container.to_owned(),
        })
        .await
    }

    /// Joins a container started with `-d` and `-t` or `-i`: what it has, and its descriptors
    /// (see [`AttachInfo`]).
    pub async fn attach(&self, container: &str) -> Result<(AttachInfo, Vec<OwnedFd>), ClientError> {
        match self
            .call_with_fds(Request::Attach {
                container: container.to_owned(),
            })
            .await?
        {
            (Reply::Attached(info), fds) => Ok((info, fds)),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Answers once the container is not running, with how it is then.
    pub async fn container_wait(&self, container: &str) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::ContainerWait {
            container: container.to_owned(),
        })
        .await
    }

    pub async fn container_inspect(&self, container: &str) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::ContainerInspect {
            container: container.to_owned(),
        })
        .await
    }

    pub async fn container_start(&self, container: &str) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::ContainerStart {
            container: container.to_owned(),
        })
        .await
    }

    /// Its stop signal, then SIGKILL after `timeout_secs` (berthd's default: 10).
    pub async fn container_stop(
        &self,
        container: &str,
        timeout_secs: Option<u32>,
    ) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::ContainerStop {
            container: container.to_owned(),
            timeout_secs,
        })
        .await
    }

    pub async fn container_restart(&self, container: &str) -> Result<ContainerInfo, ClientError> {
        self.container_reply(Request::ContainerRestart {
            container: container.to_owned(),
        })
        .await
    }

    /// `rm`: the container (running only with `force`), and its anonymous volumes with
    /// `volumes`.
    pub async fn container_rm(
        &self,
        container: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ClientError> {
        self.done(Request::ContainerRm {
            container: container.to_owned(),
            force,
            volumes,
        })
        .await
    }

    /// Live use and shares of one container, or of every running one.
    pub async fn stats(&self, container: Option<&str>) -> Result<Vec<ContainerStats>, ClientError> {
        match self
            .call(Request::Stats {
                container: container.map(str::to_owned),
            })
            .await?
        {
            Reply::Stats(stats) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }

    pub async fn images(&self) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Images).await
    }

    pub async fn rmi(&self, image: &str) -> Result<(), ClientError> {
        self.done(Request::Rmi {
            image: image.to_owned(),
        })
        .await
    }

    /// Pulls an image from a registry; progress comes as `PullProgress` events to a
    /// subscribed client.
    pub async fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        logins: Vec<RegistryLogin>,
    ) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Pull {
            image: image.to_owned(),
            logins,
            platform: platform.map(str::to_owned),
        })
        .await
    }

    /// Pushes an image; answers with the image as the registry now holds it (its reference
    /// there, the manifest digest as its id). Progress comes as `PushProgress` events to a
    /// subscribed client.
    pub async fn push(
        &self,
        image: &str,
        destination: Option<&str>,
        logins: Vec<RegistryLogin>,
    ) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Push {
            image: image.to_owned(),
            destination: destination.map(str::to_owned),
            logins,
        })
        .await
    }

    /// Checks `login` with its registry (nothing is kept by the daemon).
    pub async fn login(&self, login: RegistryLogin) -> Result<(), ClientError> {
        self.done(Request::Login(login)).await
    }

    pub async fn tag(&self, image: &str, name: &str) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Tag {
            image: image.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    /// Imports a root filesystem tarball or an OCI archive (`path` absolute, readable by this
    /// user) as image `name`; the images it made.
    pub async fn import(&self, path: &Path, name: &str) -> Result<Vec<ImageInfo>, ClientError> {
        self.images_reply(Request::Import {
            path: path.to_owned(),
            name: name.to_owned(),
        })
        .await
    }

    async fn done(&self, request: Request) -> Result<(), ClientError> {
        match self.call(request).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn lines(&self, request: Request) -> Result<Vec<String>, ClientError> {
        match self.call(request).await? {
            Reply::Lines(lines) => Ok(lines),
            other => Err(unexpected(other)),
        }
    }

    async fn vm_reply(&self, request: Request) -> Result<VmInfo, ClientError> {
        match self.call(request).await? {
            Reply::Vm(info) => Ok(*info),
            other => Err(unexpected(other)),
        }
    }

    async fn images_reply(&self, request: Request) -> Result<Vec<ImageInfo>, ClientError> {
        match self.call(request).await? {
            Reply::Images(images) => Ok(images),
            other => Err(unexpected(other)),
        }
    }

    async fn container_reply(&self, request: Request) -> Result<ContainerInfo, ClientError> {
        match self.call(request).await? {
            Reply::Container(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a map that is still consistent: take it anyway.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn no_fds() -> ClientError {
    ClientError::Protocol("an answer came without its descriptors".into())
}

async fn route_frames(
    mut reader: FdFrameReader,
    pending: Pending,
    events: mpsc::UnboundedSender<Event>,
) {
    let reason = loop {
        // Fds that come with any frame but a response are dropped, so closed, right here.
        let (body, mut fds) = match reader.read_frame().await {
            Ok(frame) => frame,
            Err(e) => break e.to_string(),
        };
        match crate::frame::decode::<ServerFrame>(&body) {
            Ok(ServerFrame::Response { id, result }) => {
                if let Some(waiter) = lock(&pending).remove(&id) {
                    let fds = std::mem::take(&mut fds);
                    let _ = waiter.send(result.map(|r| (r, fds)).map_err(ClientError::Api));
                }
            }
            Ok(ServerFrame::Error {
                id: Some(id),
                error,
            }) => {
                if let Some(waiter) = lock(&pending).remove(&id) {
                    let _ = waiter.send(Err(ClientError::Api(error)));
                }
            }
            Ok(ServerFrame::Event(event)) => {
                let _ = events.send(event);
            }
            Ok(ServerFrame::Error { id: None, error }) => break error.message,
            Ok(other) => break format!("unexpected frame {other:?}"),
            Err(e) => break e.to_string(),
        }
    };
    for (_, waiter) in lock(&pending).drain() {
        let _ = waiter.send(Err(ClientError::Disconnected(reason.clone())));
    }
}
