//! What each request does: one call into the machines, the VM registry, the container engine
//! or the images, run on the blocking pool (requests touch the filesystem). Requests that
//! wait (`ContainerWait`) or answer with a file descriptor (`vm display`, `LogFile`) are
//! served by the connection itself.

use std::os::fd::OwnedFd;
use std::time::Duration;

use berth_api::error::ApiError;
use berth_api::event::Event;
use berth_api::host::{Availability, ContainerSupport};
use berth_api::request::{Reply, Request};
use berth_api::vm::{VmInfo, VmListing};

use crate::auth::Peer;
use crate::host::host_info;
use crate::machines::{DEFAULT_STOP_TIMEOUT, serial_log};
use crate::server::{Daemon, lock, log};

impl Daemon {
    /// Carries out one of the requests answered with descriptors (`vm display`, `exec`, a log file) for
    /// `peer`: the reply and the descriptors for its frame.
    pub fn handle_with_fds(
        &self,
        peer: &Peer,
        request: Request,
    ) -> Result<(Reply, Vec<OwnedFd>), ApiError> {
        match request {
            Request::VmDisplay { name } => {
                let (info, fd) = self.machines.display(&name)?;
                Ok((Reply::Display(info), vec![fd]))
            }
            Request::Run(spec) => self
                .run(peer, *spec)
                .map(|(info, master)| (Reply::Container(info), master.into_iter().collect())),
            Request::Attach { container } => {
                let (info, fds) = self.engine.attach(&container)?;
                log(format!(
                    "uid {} attached to container {}",
                    peer.uid, info.container.name
                ));
                Ok((Reply::Attached(info), fds))
            }
            Request::LogFile { container } => {
                Ok((Reply::Done, vec![self.engine.log_file(&container)?]))
            }
            Request::Export { container } => {
                let pipe = self.engine.export(&container)?;
                log(format!("uid {} exported container {container}", peer.uid));
                Ok((Reply::Done, vec![pipe]))
            }
            Request::Save { images } => {
                let pipe = self.images.save(&images)?;
                log(format!("uid {} saved {}", peer.uid, images.join(", ")));
                Ok((Reply::Done, vec![pipe]))
            }
            Request::Exec(spec) => {
                let (info, fds) = self.engine.exec(spec)?;
                log(format!(
                    "uid {} started process {} (exec {}) in a container",
                    peer.uid, info.pid, info.id
                ));
                Ok((Reply::Exec(info), fds))
            }
            other => self.handle(peer, other).map(|reply| (reply, Vec::new())),
        }
    }

    /// Carries out one request for `peer`.
    pub fn handle(&self, peer: &Peer, request: Request) -> Result<Reply, ApiError> {
        let host = || crate::host::totals(&self.config.state_dir).0;
        match request {
            Request::Host => {
                let limits = self.engine.layout().map(|layout| layout.limits());
                let limits = match limits {
                    Ok(Ok(())) => Availability::Yes,
                    Ok(Err(why)) => Availability::No { why },
                    Err(e) => Availability::No { why: e.message },
                };
                let containers = ContainerSupport {
                    ids: self.config.ids.clone(),
                    limits,
                };
                let registry = lock(&self.registry);
                Ok(Reply::Host(host_info(&registry, &self.config, containers)))
            }
            Request::Subscribe => Ok(Reply::Done),
            Request::VmCreate(spec) => {
                let info = lock(&self.registry).create(spec, peer, &host())?;
                log(format!(
                    "uid {} created VM `{}`",
                    peer.uid, info.config.name
                ));
                self.publish(Event::VmDefined(Box::new(info.clone())));
                Ok(Reply::Vm(Box::new(info)))
            }
            Request::VmList => {
                let registry = lock(&self.registry);
                Ok(Reply::VmList(VmListing {
                    vms: registry
                        .list(&host())
                        .into_iter()
                        .map(|info| self.on_network(info))
                        .collect(),
                    problems: registry.problems().to_vec(),
                }))
            }
            Request::VmShow { name } => self.vm(&name),
            Request::VmEdit { name, edit } => {
                let info = lock(&self.registry).edit(&name, *edit, peer, &host())?;
                self.publish(Event::VmDefined(Box::new(info.clone())));
                Ok(Reply::Vm(Box::new(info)))
            }
            Request::VmDelete { name } => {
                lock(&self.registry).delete(&name)?;
                log(format!("uid {} deleted VM `{name}`", peer.uid));
                self.publish(Event::VmRemoved { name });
                Ok(Reply::Done)
            }
            Request::VmStart { name } => {
                self.machines.start(&name)?;
                log(format!("uid {} started VM `{name}`", peer.uid));
                self.vm(&name)
            }
            Request::VmStop {
                name,
                force,
                timeout_secs,
            } => {
                let timeout = timeout_secs
                    .map_or(DEFAULT_STOP_TIMEOUT, |s| Duration::from_secs(u64::from(s)));
                self.machines.stop(&name, force, timeout)?;
                let how = if force { " (forced)" } else { "" };
                log(format!("uid {} stopped VM `{name}`{how}", peer.uid));
                self.vm(&name)
            }
            Request::VmPause { name } => {
                self.machines.pause(&name, true)?;
                self.vm(&name)
            }
            Request::VmResume { name } => {
                self.machines.pause(&name, false)?;
                self.vm(&name)
            }
            Request::VmSerialInput { name, data } => {
                self.machines.serial_input(&name, &data).map(done)
            }
            Request::VmType { name, text } => self.machines.type_text(&name, &text).map(done),
            Request::VmKey { name, keys } => self.machines.press_keys(&name, &keys).map(done),
            Request::VmKeyEvent {
                name,
                code,
                pressed,
            } => self.machines.key_event(&name, code, pressed).map(done),
            Request::VmPointer {
                name,
                x,
                y,
                buttons,
            } => self.machines.pointer(&name, x, y, buttons).map(done),
            Request::VmWheel { name, clicks } => self.machines.wheel(&name, clicks).map(done),
            Request::VmDisplaySize {
                name,
                width,
                height,
            } => self.machines.display_size(&name, width, height).map(done),
            Request::VmDisplay { .. }
            | Request::Exec(_)
            | Request::Save { .. }
            | Request::Export { .. }
            | Request::LogFile { .. }
            | Request::Attach { .. } => Err(ApiError::internal(
                "this request is answered with descriptors (handle_with_fds)",
            )),
            Request::ContainerWait { .. } => Err(ApiError::internal(
                "this request is answered by the connection once the container ends",
            )),
            Request::VmLog { name, lines } => {
                let (_, dir, _) = lock(&self.registry).definition(&name)?;
                Ok(Reply::Lines(serial_log(&dir, lines)?))
            }
            Request::IsoInspect { path } => crate::iso::inspect(&path, peer).map(Reply::Iso),
            Request::Images => self.images.list().map(Reply::Images),
            Request::Rmi { image } => {
                self.images.remove(&image, &self.engine)?;
                log(format!("uid {} removed image `{image}`", peer.uid));
                Ok(Reply::Done)
            }
            Request::Import { path, name } => {
                self.images.import(&path, &name, peer).map(Reply::Images)
            }
            Request::Pull {
                image,
                logins,
                platform,
            } => {
                let info = self
                    .images
                    .pull(&image, platform.as_deref(), &logins, &|progress| {
                        self.publish(Event::PullProgress(progress))
                    })?;
                log(format!("uid {} pulled image {}", peer.uid, info.reference));
                Ok(Reply::Images(vec![info]))
            }
            Request::Push {
                image,
                destination,
                logins,
            } => {
                let info =
                    self.images
                        .push(&image, destination.as_deref(), &logins, &|progress| {
                            self.publish(Event::PushProgress(progress))
                        })?;
                log(format!(
                    "uid {} pushed image {image} to {}",
                    peer.uid, info.reference
                ));
                Ok(Reply::Images(vec![info]))
            }
            Request::Login(login) => {
                crate::images::check_login(&login)?;
                log(format!(
                    "uid {} logged in to {} as {}",
                    peer.uid, login.scope, login.username
                ));
                Ok(Reply::Done)
            }
            Request::Load { path } => {
                let images = self.images.load(&path, peer)?;
                log(format!(
                    "uid {} loaded {}",
                    peer.uid,
                    images
                        .iter()
                        .map(|i| i.reference.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                Ok(Reply::Images(images))
            }
            Request::Commit { container, image } => {
                let info = self.images.commit(&self.engine, &container, &image)?;
                log(format!(
                    "uid {} committed container {container} as {}",
                    peer.uid, info.reference
                ));
                Ok(Reply::Images(vec![info]))
            }
            Request::SystemDf => self.system_df().map(Reply::DiskUsage),
            Request::SystemPrune { all, volumes } => {
                let pruned = self.system_prune(all, volumes)?;
                log(format!(
                    "uid {} pruned {} bytes: containers {:?}, images {:?}, volumes {:?}",
                    peer.uid, pruned.reclaimed, pruned.containers, pruned.images, pruned.volumes
                ));
                Ok(Reply::Pruned(pruned))
            }
            Request::ImageInspect { image } => self
                .images
                .inspect(&image)
                .map(|d| Reply::Image(Box::new(d))),
            Request::Tag { image, name } => self
                .images
                .tag(&image, &name)
                .map(|i| Reply::Images(vec![i])),
            Request::Build(spec) => {
                let layout = self.engine.layout()?;
                let image = self.images.build(
                    &spec,
                    peer,
                    layout,
                    &mut |progress| self.publish(Event::BuildProgress(progress)),
                    &|progress| self.publish(Event::PullProgress(progress)),
                )?;
                log(format!("uid {} built image {}", peer.uid, image.reference));
                Ok(Reply::Images(vec![image]))
            }
            Request::Run(spec) => self
                .run(peer, *spec)
                .map(|(info, _)| Reply::Container(info)),
            Request::Ps { all } => Ok(Reply::Containers(self.engine.list(all))),
            Request::VolumeCreate { name } => self
                .volumes
                .create(&name, &self.engine)
                .map(|v| Reply::Volumes(vec![v])),
            Request::VolumeLs => self.volumes.list(&self.engine).map(Reply::Volumes),
            Request::VolumeRm { name } => {
                self.volumes.remove(&name, &self.engine)?;
                log(format!("uid {} removed volume `{name}`", peer.uid));
                Ok(Reply::Done)
            }
            Request::ExecWait { id } => self
                .engine
                .exec_wait(id)
                .map(|code| Reply::ExecExit { code }),
            Request::Logs { container, .. } => Ok(Reply::Lines(self.engine.logs(&container)?)),
            Request::ContainerInspect { container } => {
                self.engine.inspect(&container).map(Reply::Container)
            }
            Request::ContainerStart { container } => {
                self.engine.start(&container).map(Reply::Container)
            }
            Request::ContainerStop {
                container,
                timeout_secs,
            } => {
                let grace = timeout_secs.map(|s| Duration::from_secs(u64::from(s)));
                self.engine.stop(&container, grace).map(Reply::Container)
            }
            Request::ContainerRestart { container } => {
                self.engine.restart(&container).map(Reply::Container)
            }
            Request::ContainerRm {
                container,
                force,
                volumes,
            } => self.engine.remove(&container, force, volumes).map(done),
            Request::Stats { container } => {
                self.engine.stats(container.as_deref()).map(Reply::Stats)
            }
        }
    }

    /// `run`: pulls what the store lacks, resolves the volumes, starts the container; the
    /// master of its terminal with `-t`.
    fn run(
        &self,
        peer: &Peer,
        mut spec: berth_api::container::RunSpec,
    ) -> Result<(berth_api::container::ContainerInfo, Option<OwnedFd>), ApiError> {
        // An image not in the store is pulled first, as `docker run` does; one it has under
        // Docker's familiar name (`docker.io/library/busybox` is `busybox`) runs as that.
        let logins = std::mem::take(&mut spec.logins);
        spec.image = self.images.ensure(&spec.image, &logins, &|progress| {
            self.publish(Event::PullProgress(progress))
        })?;
        // Each VOLUME of the image no -v covers gets an anonymous volume, as under Docker.
        if let Ok(image) = self.images.store().resolve(&spec.image) {
            for path in image.config.config.volumes.keys() {
                if !spec.volumes.iter().any(|v| &v.target == path) {
                    spec.volumes.push(berth_api::volume::VolumeMount {
                        source: berth_api::volume::VolumeSource::Anonymous,
                        target: path.clone(),
                        read_only: false,
                        no_copy: false,
                    });
                }
            }
        }
        let mounts = self.volumes.resolve(&mut spec.volumes, peer)?;
        let (info, master) = self.engine.run(spec, mounts, &self.images.store())?;
        log(format!(
            "uid {} started container {} ({})",
            peer.uid, info.name, info.id
        ));
        Ok((info, master))
    }

    /// VM `name` as it is now.
    fn vm(&self, name: &str) -> Result<Reply, ApiError> {
        let host = crate::host::totals(&self.config.state_dir).0;
        let info = lock(&self.registry).show(name, &host)?;
        Ok(Reply::Vm(Box::new(self.on_network(info))))
    }

    /// `info` with the VM's address on the Berth network, which the network knows.
    fn on_network(&self, mut info: VmInfo) -> VmInfo {
        info.address = self.bridge.vm_address(&info.config.name);
        info
    }
}

fn done(_: ()) -> Reply {
    Reply::Done
}
