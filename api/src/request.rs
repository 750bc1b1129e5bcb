//! Every request a client can make, and the replies they get.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::{
    AttachInfo, BuildSpec, ContainerInfo, ContainerStats, ExecInfo, ExecSpec, ImageDetail,
    ImageInfo, Pruned, RunSpec, UsageLine,
};
use crate::host::HostInfo;
use crate::iso::IsoInfo;
use crate::registry_login::RegistryLogin;
use crate::vm::{DisplayInfo, VmEdit, VmInfo, VmListing, VmSpec};
use crate::volume::VolumeInfo;

/// A request. Serialised as `{"request": "<name>", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request", content = "args")]
pub enum Request {
    /// The host's totals and what VMs were given: `berthctl host`.
    Host,
    /// Start receiving [`crate::Event`]s on this connection.
    Subscribe,

    VmCreate(VmSpec),
    VmList,
    VmShow {
        name: String,
    },
    VmEdit {
        name: String,
        edit: Box<VmEdit>,
    },
    /// Delete the definition and everything in the VM's directory (its disk included).
    VmDelete {
        name: String,
    },
    VmStart {
        name: String,
    },
    /// Ask the guest to power off (ACPI power button), or end it at once with `force`. A guest
    /// that has not powered off after `timeout_secs` (30 by default) is ended.
    VmStop {
        name: String,
        force: bool,
        #[serde(default)]
        timeout_secs: Option<u32>,
    },
    VmPause {
        name: String,
    },
    VmResume {
        name: String,
    },
    /// Send bytes to the VM's serial console.
    VmSerialInput {
        name: String,
        data: Vec<u8>,
    },
    /// The last `lines` lines of the VM's serial log.
    VmLog {
        name: String,
        lines: u32,
    },
    /// Type text on the VM's keyboard.
    VmType {
        name: String,
        text: String,
    },
    /// Press a key combination, e.g. `ctrl+alt+f2`.
    VmKey {
        name: String,
        keys: String,
    },
    /// One key of the VM's keyboard goes down (`pressed`) or up: `code` is a Linux evdev key
    /// code (input-event-codes.h), as the window sends them while its console has the keyboard.
    VmKeyEvent {
        name: String,
        code: u16,
        pressed: bool,
    },
    /// The VM's display: answered with [`Reply::Display`], the framebuffer memfd riding on the
    /// response frame as SCM_RIGHTS (map it read-only; see `berth_display::framebuffer`).
    VmDisplay {
        name: String,
    },
    /// Moves the tablet pointer to `x`,`y` (0..=`input::TABLET_MAX` across the display, whatever its size)
    /// with `buttons` held (bit 0 left, bit 1 right, bit 2 middle).
    VmPointer {
        name: String,
        x: u32,
        y: u32,
        buttons: u8,
    },
    /// Tells the running guest its display's preferred size (the window's, for a guest that
    /// follows it): a desktop guest resizes its screen to it, as under SPICE or GNOME Boxes.
    VmDisplaySize {
        name: String,
        width: u32,
        height: u32,
    },
    /// Turns the wheel by `clicks` (positive: away from the user).
    VmWheel {
        name: String,
        clicks: i32,
    },
    /// Boot entries and identity of an ISO image.
    IsoInspect {
        path: PathBuf,
    },

    /// Boxed, as Run: one of the largest requests, and frames are moved around whole.
    Build(Box<BuildSpec>),
    /// Boxed: the largest request by far, and frames are moved around whole.
    Run(Box<RunSpec>),
    Ps {
        all: bool,
    },
    /// Start a process in a running container (`docker exec`); answered with
    /// [`Reply::Exec`] and, on the answer's frame, the process's terminal or pipes (SCM_RIGHTS).
    Exec(ExecSpec),
    /// Wait until an exec'd process has ended: [`Reply::ExecExit`].
    ExecWait {
        id: u64,
    },
    /// Make a named volume (nothing happens if it exists, as with Docker).
    VolumeCreate {
        name: String,
    },
    VolumeLs,
    /// Remove a named volume and its files; refused while a container mounts it.
    VolumeRm {
        name: String,
    },
    /// A container's output so far, as lines: [`Reply::Lines`] (the window, `--json`).
    Logs {
        container: String,
    },
    /// A container's log file, read-only, on the answer's frame: its output byte for byte,
    /// read by the client as it grows (`run` in the foreground, `logs`, `logs -f`), never
    /// through berthd.
    LogFile {
        container: String,
    },
    /// Answered once the container is not running (at once if it is not): [`Reply::Container`].
    ContainerWait {
        container: String,
    },
    /// Join a running container started with `-d` and `-t` or `-i`: [`Reply::Attached`] and
    /// what [`AttachInfo`] says on the answer's frame.
    Attach {
        container: String,
    },
    /// One container, by id, id prefix or name.
    ContainerInspect {
        container: String,
    },
    ContainerStart {
        container: String,
    },
    ContainerStop {
        container: String,
        timeout_secs: Option<u32>,
    },
    ContainerRestart {
        container: String,
    },
    ContainerRm {
        container: String,
        force: bool,
        /// Its anonymous volumes too (`rm -v`, `run --rm`).
        #[serde(default)]
        volumes: bool,
    },
    Stats {
        container: Option<String>,
    },
    Images,
    Rmi {
        image: String,
    },
    /// Import a root filesystem tarball or an OCI archive as an image.
    Import {
        path: PathBuf,
        name: String,
    },
    /// Pull an image from a registry (`[REGISTRY/]NAME[:TAG|@DIGEST]`, as Docker reads it);
    /// progress comes as `PullProgress` events.
    Pull {
        image: String,
        /// The user's registry logins (see [`crate::registry_login`]).
        #[serde(default)]
        logins: Vec<RegistryLogin>,
        /// `OS/ARCH[/VARIANT]` of an index to take; linux/amd64 when absent.
        #[serde(default)]
        platform: Option<String>,
    },
    /// Push an image to a registry: to `destination` (`REGISTRY/NAME[:TAG]`), or to the
    /// registry its own name starts with; progress comes as `PushProgress` events.
    Push {
        image: String,
        destination: Option<String>,
        #[serde(default)]
        logins: Vec<RegistryLogin>,
    },
    /// Check a login with its registry, as `docker login` does before keeping it (the client
    /// keeps it, in the user's files).
    Login(RegistryLogin),
    /// Images as one archive (an OCI layout with Docker's manifest.json: loadable as
    /// oci-archive and docker-archive): answered with `Done` and, on the answer's frame, the
    /// read end of a pipe the archive comes through.
    Save {
        images: Vec<String>,
    },
    /// Load the image archive at `path` (readable by the requester): an OCI archive or a
    /// docker-archive, its images under the names it gives them.
    Load {
        path: PathBuf,
    },
    /// A container's filesystem as one tar: answered with `Done` and, on the answer's frame,
    /// the read end of a pipe the tar comes through.
    Export {
        container: String,
    },
    /// A new image `image` of a container's image with its changes as a layer on top.
    Commit {
        container: String,
        image: String,
    },
    /// What images, containers, volumes and the build cache take on disk.
    SystemDf,
    /// Remove stopped containers, the build cache and blobs no image uses; with `all`, images
    /// no container uses; with `volumes`, volumes no container mounts.
    SystemPrune {
        all: bool,
        volumes: bool,
    },
    /// An image in full (`inspect`).
    ImageInspect {
        image: String,
    },
    /// Give an image another name.
    Tag {
        image: String,
        name: String,
    },
}

impl Request {
    /// The request's wire name (`vm_start`), for logs.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("request").and_then(|n| n.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "request".to_owned())
    }

    /// The request as a person would say it: `vm start`.
    pub fn title(&self) -> String {
        self.name().replace('_', " ")
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply", content = "data")]
pub enum Reply {
    /// Done; nothing to report.
    Done,
    Host(HostInfo),
    Vm(Box<VmInfo>),
    VmList(VmListing),
    /// Lines of a log.
    Lines(Vec<String>),
    /// Images: all of them for `images`, the new ones for `import`.
    Images(Vec<ImageInfo>),
    Container(ContainerInfo),
    Containers(Vec<ContainerInfo>),
    Stats(Vec<ContainerStats>),
    /// What an ISO image is and how it boots.
    Iso(IsoInfo),
    /// The VM's display; the frame carries its framebuffer memfd.
    Display(DisplayInfo),
    /// An exec'd process; the frame carries its terminal or pipes.
    Exec(ExecInfo),
    Attached(AttachInfo),
    ExecExit {
        code: i32,
    },
    Volumes(Vec<VolumeInfo>),
    Image(Box<ImageDetail>),
    DiskUsage(Vec<UsageLine>),
    Pruned(Pruned),
}
