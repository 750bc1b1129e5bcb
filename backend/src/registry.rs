//! The VM definitions: one directory per VM under `<state>/vms/`, holding `vm.ron` and the VM's
//! disk. Loaded at start; every change is written through before it is acknowledged.
//!
//! A `vm.ron` that cannot be read is reported and skipped, and its name stays taken: nothing
//! here deletes or overwrites a definition it could not read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::error::{ApiError, ErrorKind};
use berth_api::network::{MacAddress, VmNetworkConfig};
use berth_api::utilisation::{Resources, vm_allocation};
use berth_api::validate;
use berth_api::vm::{
    BootFrom, BootSource, DefinitionProblem, DiskConfig, VmConfig, VmEdit, VmInfo, VmSpec, VmState,
};

use crate::access::readable_file;
use crate::auth::Peer;
use crate::store::{self, StoreError};

/// File name of a VM's definition inside its directory.
pub const DEFINITION: &str = "vm.ron";
/// File name of a VM's own disk inside its directory.
pub const DISK: &str = "disk.raw";

struct VmRecord {
    config: VmConfig,
    state: VmState,
}

/// All VM definitions of one daemon.
pub struct Registry {
    root: PathBuf,
    vms: BTreeMap<String, VmRecord>,
    problems: Vec<DefinitionProblem>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

impl Registry {
    /// Load every definition under `root` (created if missing).
    pub fn load(root: &Path) -> Result<Registry, StoreError> {
        fs::create_dir_all(root).map_err(|source| StoreError::Io {
            op: "create",
            path: root.to_owned(),
            source,
        })?;
        let mut registry = Registry {
            root: root.to_owned(),
            vms: BTreeMap::new(),
            problems: Vec::new(),
        };
        let entries = fs::read_dir(root).map_err(|source| StoreError::Io {
            op: "read",
            path: root.to_owned(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            store::remove_stale_temps(&dir);
            let path = dir.join(DEFINITION);
            let dir_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match store::read_ron::<VmConfig>(&path) {
                Ok(config) if config.name == dir_name => {
                    registry.vms.insert(
                        dir_name,
                        VmRecord {
                            config,
                            state: VmState::Stopped,
                        },
                    );
                }
                Ok(config) => registry.problems.push(DefinitionProblem {
                    path,
                    message: format!(
                        "it names the VM `{}` but lives in directory `{dir_name}`",
                        config.name
                    ),
                }),
                Err(e) => registry.problems.push(DefinitionProblem {
                    path,
                    message: match e {
                        StoreError::Parse {
                            line, col, message, ..
                        } => {
                            format!("line {line}, column {col}: {message}")
                        }
                        other => other.to_string(),
                    },
                }),
            }
        }
        Ok(registry)
    }

    /// Definitions that could not be read.
    pub fn problems(&self) -> &[DefinitionProblem] {
        &self.problems
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn info(&self, record: &VmRecord, host: &Resources) -> VmInfo {
        VmInfo {
            config: record.config.clone(),
            state: record.state.clone(),
            dir: self.dir(&record.config.name),
            allocation: vm_allocation(&record.config.resources(), host),
            // The network's to know (Daemon::vm_info).
            address: None,
        }
    }

    /// Every readable VM, by name.
    pub fn list(&self, host: &Resources) -> Vec<VmInfo> {
        self.vms.values().map(|r| self.info(r, host)).collect()
    }

    /// What all VMs were given, for ΣU_vm and ΣM_vm.
    pub fn allocated(&self) -> Vec<Resources> {
        self.vms.values().map(|r| r.config.resources()).collect()
    }

    fn record(&self, name: &str) -> Result<&VmRecord, ApiError> {
        self.vms.get(name).ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> ApiError {
        match self
            .problems
            .iter()
            .find(|p| p.path.parent() == Some(&self.dir(name)))
        {
            Some(problem) => ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "VM `{name}` has a definition berthd cannot read ({problem}); fix or remove it by hand"
                ),
            ),
            None => ApiError::not_found(format!("there is no VM named `{name}`")),
        }
    }

    /// A VM's definition, directory and state, for starting it.
    pub fn definition(&self, name: &str) -> Result<(VmConfig, PathBuf, VmState), ApiError> {
        let record = self.record(name)?;
        Ok((record.config.clone(), self.dir(name), record.state.clone()))
    }

    /// Where VM `name` is in its life.
    pub fn state(&self, name: &str) -> Result<VmState, ApiError> {
        Ok(self.record(name)?.state.clone())
    }

    /// Records the state the VM supervisor reports; the state is not persisted (a VM does not
    /// outlive its daemon).
    pub fn set_state(&mut self, name: &str, state: VmState) {
        if let Some(record) = self.vms.get_mut(name) {
            record.state = state;
        }
    }

    /// Where VM `name` starts from next, saved (the supervisor's change after an install).
    pub fn set_boot_from(&mut self, name: &str, from: BootFrom) -> Result<VmConfig, ApiError> {
        let mut config = self.record(name)?.config.clone();
        config.boot_from = from;
        store::write_ron(&self.dir(name).join(DEFINITION), &config).map_err(internal)?;
        if let Some(record) = self.vms.get_mut(name) {
            record.config = config.clone();
        }
        Ok(config)
    }

    pub fn show(&self, name: &str, host: &Resources) -> Result<VmInfo, ApiError> {
        Ok(self.info(self.record(name)?, host))
    }

    /// Create a VM: validate everything, then make its directory, disk and definition. A failure
    /// part-way removes what this call made.
    pub fn create(
        &mut self,
        spec: VmSpec,
        peer: &Peer,
        host: &Resources,
    ) -> Result<VmInfo, ApiError> {
        validate::name("VM", &spec.name).map_err(ApiError::invalid)?;
        let resources = Resources {
            cpus: f64::from(spec.cpus),
            memory: spec.memory,
            disk: spec.disk,
        };
        validate::vm_resources(&resources, host, spec.overcommit).map_err(ApiError::invalid)?;
        validate::vm_forwards(&spec.network, &spec.forwards).map_err(ApiError::invalid)?;
        let boot = spec.boot.map(|b| readable_boot(b, peer)).transpose()?;
        let boot_from = spec
            .boot_from
            .unwrap_or_else(|| default_boot_from(boot.as_ref(), spec.disk > 0));
        check_boot_from(boot_from, boot.as_ref(), spec.disk > 0)?;
        let dir = self.dir(&spec.name);
        if self.vms.contains_key(&spec.name) || dir.exists() {
            return match self.vms.contains_key(&spec.name) {
                true => Err(ApiError::new(
                    ErrorKind::AlreadyExists,
                    format!("a VM named `{}` exists already", spec.name),
                )),
                false => Err(ApiError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{} exists already (an unreadable or foreign definition); pick another name",
                        dir.display()
                    ),
                )),
            };
        }
        let config = VmConfig {
            name: spec.name.clone(),
            cpus: spec.cpus,
            memory: spec.memory,
            disk: (spec.disk > 0).then(|| DiskConfig {
                file: DISK.into(),
                size: spec.disk,
            }),
            boot,
            boot_from,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            display: Default::default(),
            network: VmNetworkConfig {
                mode: spec.network,
                mac: Some(MacAddress::for_vm(&spec.name)),
                forwards: spec.forwards,
            },
        };
        fs::create_dir(&dir).map_err(|e| internal(format!("create {}: {e}", dir.display())))?;
        let made = (|| {
            if let Some(disk) = &config.disk {
                let path = dir.join(&disk.file);
                let file = fs::File::create_new(&path)
                    .map_err(|e| internal(format!("create {}: {e}", path.display())))?;
                // A sparse file: no blocks are used until the guest writes.
                file.set_len(disk.size)
                    .map_err(|e| internal(format!("size {}: {e}", path.display())))?;
            }
            store::write_ron(&dir.join(DEFINITION), &config).map_err(internal)
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.vms.insert(
            spec.name.clone(),
            VmRecord {
                config,
                state: VmState::Stopped,
            },
        );
        self.show(&spec.name, host)
    }

    /// Change a stopped VM's definition.
    pub fn edit(
        &mut self,
        name: &str,
        edit: VmEdit,
        peer: &Peer,
        host: &Resources,
    ) -> Result<VmInfo, ApiError> {
        let record = self.record(name)?;
        if record.state.is_active() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("VM `{name}` is {}; stop it before editing", record.state),
            ));
        }
        let mut config = record.config.clone();
        if let Some(cpus) = edit.cpus {
            config.cpus = cpus;
        }
        if let Some(memory) = edit.memory {
            config.memory = memory;
        }
        if let Some(display) = edit.display {
            display.check().map_err(ApiError::invalid)?;
            config.display = display;
        }
        if let Some(network) = &edit.network {
            config.network.mode = network.clone();
        }
        if let Some(forwards) = &edit.forwards {
            config.network.forwards = forwards.clone();
        }
        validate::vm_forwards(&config.network.mode, &config.network.forwards)
            .map_err(ApiError::invalid)?;
        let mut grow_disk = None;
        if let Some(size) = edit.disk {
            let current = config.disk.as_ref().map_or(0, |d| d.size);
            if size < current {
                return Err(ApiError::invalid(format!(
                    "the disk can only grow: shrinking it from {} to {} would cut off the guest's data",
                    berth_api::size::format_size(current),
                    berth_api::size::format_size(size)
                )));
            }
            if size > current {
                grow_disk = Some(size);
                config.disk = Some(DiskConfig {
                    file: config.disk.map_or_else(|| DISK.into(), |d| d.file),
                    size,
                });
            }
        }
        validate::vm_resources(&config.resources(), host, edit.overcommit)
            .map_err(ApiError::invalid)?;
        let media_changed = edit.iso.is_some() || edit.kernel.is_some();
        if edit.eject {
            if media_changed {
                return Err(ApiError::invalid("eject the ISO or attach one, not both"));
            }
            let Some(BootSource::Iso { .. }) = config.boot else {
                return Err(ApiError::invalid(format!(
                    "VM `{name}` has no ISO to eject"
                )));
            };
            config.boot = None;
            // What started from the ISO starts from the disk the guest was installed on; a VM
            // without a disk has nothing left to start (`vm start` says what to give it).
            config.boot_from = match config.disk {
                Some(_) => BootFrom::Disk,
                None => BootFrom::Kernel,
            };
        }
        let boot = edited_boot(config.boot.take(), &edit)?
            .map(|b| readable_boot(b, peer))
            .transpose()?;
        config.boot_from = match edit.boot_from {
            Some(from) => from,
            // New boot media are what the user wants to start next.
            None if media_changed => default_boot_from(boot.as_ref(), config.disk.is_some()),
            None => config.boot_from,
        };
        config.boot = boot;
        check_boot_from(
            config.boot_from,
            config.boot.as_ref(),
            config.disk.is_some(),
        )?;

        let dir = self.dir(name);
        if let (Some(size), Some(disk)) = (grow_disk, &config.disk) {
            let path = if disk.file.is_absolute() {
                disk.file.clone()
            } else {
                dir.join(&disk.file)
            };
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| internal(format!("open {}: {e}", path.display())))?;
            file.set_len(size)
                .map_err(|e| internal(format!("grow {}: {e}", path.display())))?;
        }
        store::write_ron(&dir.join(DEFINITION), &config).map_err(internal)?;
        if let Some(record) = self.vms.get_mut(name) {
            record.config = config;
        }
        self.show(name, host)
    }

    /// Delete a stopped VM and everything in its directory.
    pub fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        let record = self.record(name)?;
        if record.state.is_active() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("VM `{name}` is {}; stop it first", record.state),
            ));
        }
        let dir = self.dir(name);
        // Remove the definition first: if removing the rest fails half-way, what remains is
        // not mistaken for a VM at the next start.
        fs::remove_file(dir.join(DEFINITION))
            .map_err(|e| internal(format!("remove {}: {e}", dir.display())))?;
        self.vms.remove(name);
        fs::remove_dir_all(&dir).map_err(|e| internal(format!("remove {}: {e}", dir.display())))
    }
}

/// Apply the boot-related fields of an edit to the current boot source.
fn edited_boot(current: Option<BootSource>, edit: &VmEdit) -> Result<Option<BootSource>, ApiError> {
    if let Some(iso) = &edit.iso {
        if edit.kernel.is_some() || edit.initrd.is_some() || edit.cmdline.is_some() {
            return Err(ApiError::invalid(
                "give either an ISO or a kernel, initrd and command line, not both",
            ));
        }
        return Ok(Some(BootSource::Iso {
            iso: iso.clone(),
            entry: edit.entry,
        }));
    }
    if edit.entry.is_some() {
        return Err(ApiError::invalid(
            "a boot entry goes with the ISO it is on: pass --iso too",
        ));
    }
    if edit.kernel.is_none() && edit.initrd.is_none() && edit.cmdline.is_none() {
        return Ok(current);
    }
    let (kernel, initrd, cmdline) = match current {
        Some(BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        }) => (Some(kernel), initrd, cmdline),
        _ => (None, None, String::new()),
    };
    let Some(kernel) = edit.kernel.clone().or(kernel) else {
        return Err(ApiError::invalid(
            "an initrd or command line needs a kernel: pass --kernel too",
        ));
    };
    Ok(Some(BootSource::Kernel {
        kernel,
        initrd: edit.initrd.clone().or(initrd),
        cmdline: edit.cmdline.clone().unwrap_or(cmdline),
    }))
}

/// Where a VM starts from when the user does not say: what it was given to boot (an ISO's
/// kernel directly when Berth reads one, else the ISO through the firmware), else its disk.
fn default_boot_from(boot: Option<&BootSource>, disk: bool) -> BootFrom {
    match boot {
        Some(BootSource::Iso { iso, entry: None }) => crate::iso::default_boot_from(iso),
        Some(_) => BootFrom::Kernel,
        None if disk => BootFrom::Disk,
        None => BootFrom::Kernel,
    }
}

/// Refuses starting from what the VM does not have, or from an ISO that cannot start that way.
/// (A VM with nothing at all to boot may exist; `vm start` says what to give it.)
fn check_boot_from(from: BootFrom, boot: Option<&BootSource>, disk: bool) -> Result<(), ApiError> {
    match (from, boot) {
        (BootFrom::Iso, Some(BootSource::Iso { iso, .. })) => {
            crate::iso::check_firmware_bootable(iso)
        }
        (BootFrom::Iso, _) => Err(ApiError::invalid(
            "--boot iso needs an ISO: attach one with --iso",
        )),
        // Berth reads its boot entry: it must hold a Linux kernel.
        (BootFrom::Kernel, Some(BootSource::Iso { iso, entry })) => {
            crate::iso::check_bootable(iso, *entry)
        }
        (BootFrom::Disk, _) if !disk => Err(ApiError::invalid(
            "--boot disk needs a disk: give the VM one with --disk SIZE",
        )),
        // An ISO a VM starts from its disk is only in its CD drive.
        _ => Ok(()),
    }
}

/// Check a boot source's files as readable by the peer and make its paths canonical.
fn readable_boot(boot: BootSource, peer: &Peer) -> Result<BootSource, ApiError> {
    let check = |p: &Path, what| readable_file(p, peer, what).map_err(ApiError::invalid);
    Ok(match boot {
        BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            validate::cmdline(&cmdline).map_err(ApiError::invalid)?;
            BootSource::Kernel {
                kernel: check(&kernel, "kernel")?,
                initrd: initrd.map(|i| check(&i, "initrd")).transpose()?,
                cmdline,
            }
        }
        BootSource::Iso { iso, entry } => BootSource::Iso {
            iso: check(&iso, "ISO image")?,
            entry,
        },
    })
}
