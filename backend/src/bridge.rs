//! The Berth network as the daemon shares it between containers and VMs: made by the first
//! that joins, taken down (its namespace and pasta) once the last has been gone for
//! [`NETWORK_LINGER`], or when the daemon stops with nothing on it; the VMs' addresses and
//! the DHCP server that gives them out live with it.
//!
//! **Decision: the network lingers** after its last member, as Docker's bridge stays up: made
//! for every `run --rm` it cost each ~60 ms (the namespace, pasta, the bridge and its
//! firewall: 73.5 ms end to end against 18-28 ms on a network already up); Podman, which
//! takes its rootless network down at once, pays it on every run.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use berth_api::error::{ApiError, ErrorKind};
use berth_api::network::MacAddress;
use berth_vmm_api::launch::NET_MTU;
use container_backend::runtime::BridgeNetwork;
use container_backend::runtime::bridge::{VM_NUMBERS, address};
use container_backend::runtime::dhcp::{Dhcp, Table};

/// How long the network stays up after its last member left.
pub const NETWORK_LINGER: Duration = Duration::from_secs(120);

/// The network while containers or VMs are on it.
pub struct Bridge {
    /// Where its namespace is kept.
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    /// Told when a VM joins or leaves (the containers' /etc/hosts name the VMs).
    vms_changed: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

#[derive(Default)]
struct State {
    network: Option<BridgeNetwork>,
    /// How many running containers and VMs are on it.
    members: usize,
    /// Since when nothing has been on it (while it lingers).
    idle_since: Option<Instant>,
    /// A thread is waiting out the linger (one at a time, however many runs come and go).
    reaper: bool,
    /// The VMs' cards and their addresses, which the DHCP server gives out.
    table: Table,
    /// The VMs' names, by card.
    names: HashMap<[u8; 6], String>,
    dhcp: Option<Dhcp>,
}

impl Bridge {
    pub fn new(dir: PathBuf) -> Arc<Bridge> {
        Arc::new(Bridge {
            dir,
            state: Arc::new(Mutex::new(State::default())),
            vms_changed: OnceLock::new(),
        })
    }

    /// Calls `changed` whenever a VM joins or leaves (set once).
    pub fn on_vms_changed(&self, changed: Box<dyn Fn() + Send + Sync>) {
        let _ = self.vms_changed.set(changed);
    }

    fn tell_vms_changed(&self) {
        if let Some(changed) = self.vms_changed.get() {
            changed();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The network for one more member, set up for the first.
    pub fn join(&self) -> Result<BridgeNetwork, ApiError> {
        let mut state = self.state();
        Self::join_locked(&mut state, &self.dir)
    }

    fn join_locked(state: &mut State, dir: &std::path::Path) -> Result<BridgeNetwork, ApiError> {
        let network = match &state.network {
            Some(network) => network.clone(),
            None => BridgeNetwork::open(dir)
                .map_err(|e| ApiError::new(ErrorKind::Unsupported, e.to_string()))?,
        };
        state.network = Some(network.clone());
        state.members += 1;
        state.idle_since = None;
        Ok(network)
    }

    /// One member less; the network is taken down once the last has been gone for
    /// [`NETWORK_LINGER`].
    pub fn leave(&self) {
        let mut state = self.state();
        self.leave_locked(&mut state);
    }

    fn leave_locked(&self, state: &mut State) {
        state.members = state.members.saturating_sub(1);
        if state.members != 0 || state.network.is_none() {
            return;
        }
        state.idle_since = Some(Instant::now());
        if state.reaper {
            return;
        }
        state.reaper = true;
        let shared = Arc::clone(&self.state);
        std::thread::spawn(move || {
            let mut wait = NETWORK_LINGER;
            loop {
                std::thread::sleep(wait);
                let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                match state.idle_since.map(|since| since.elapsed()) {
                    // Idle again since, after a member came and went: wait out the rest.
                    Some(idle) if idle < NETWORK_LINGER => wait = NETWORK_LINGER - idle,
                    Some(_) => {
                        Self::take_down(&mut state);
                        state.reaper = false;
                        break;
                    }
                    // In use again.
                    None => {
                        state.reaper = false;
                        break;
                    }
                }
            }
        });
    }

    fn take_down(state: &mut State) {
        state.idle_since = None;
        state.dhcp = None;
        if let Some(network) = state.network.take() {
            network.close();
        }
    }

    /// The daemon is stopping (its VMs killed): the network goes now if nothing is on it once
    /// the VMs have left (within 2 s); running containers keep it for the next daemon, which
    /// adopts them.
    pub fn shutdown(&self) {
        for _ in 0..20 {
            let mut state = self.state();
            if state.members == 0 {
                Self::take_down(&mut state);
                return;
            }
            // Containers on it (the members that are not VMs): it stays.
            if state.members > state.names.len() {
                return;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// VM `name`'s card joins: the network, and the address the DHCP server gives it (the
    /// lowest a VM does not have).
    pub fn join_vm(
        &self,
        mac: MacAddress,
        name: &str,
    ) -> Result<(BridgeNetwork, Ipv4Addr), ApiError> {
        let joined = self.join_vm_locked(mac, name);
        if joined.is_ok() {
            self.tell_vms_changed();
        }
        joined
    }

    fn join_vm_locked(
        &self,
        mac: MacAddress,
        name: &str,
    ) -> Result<(BridgeNetwork, Ipv4Addr), ApiError> {
        let mut state = self.state();
        let network = Self::join_locked(&mut state, &self.dir)?;
        let given = {
            let mut table = state.table.lock().unwrap_or_else(PoisonError::into_inner);
            let taken: Vec<Ipv4Addr> = table.values().copied().collect();
            let free = VM_NUMBERS.filter_map(address).find(|a| !taken.contains(a));
            match free {
                Some(given) => {
                    table.insert(mac.0, given);
                    Ok(given)
                }
                None => Err(ApiError::new(
                    ErrorKind::Conflict,
                    "the bridge network has no free address for another VM",
                )),
            }
        };
        let given = match given {
            Ok(given) => given,
            Err(e) => {
                self.leave_locked(&mut state);
                return Err(e);
            }
        };
        if state.dhcp.is_none() {
            match Dhcp::serve(&network, Arc::clone(&state.table), NET_MTU) {
                Ok(dhcp) => state.dhcp = Some(dhcp),
                Err(e) => {
                    Self::release(&mut state, mac);
                    self.leave_locked(&mut state);
                    return Err(ApiError::internal(format!(
                        "cannot serve DHCP on the bridge network: {e}"
                    )));
                }
            }
        }
        state.names.insert(mac.0, name.to_owned());
        Ok((network, given))
    }

    /// A VM's card leaves: its address is free again.
    pub fn leave_vm(&self, mac: MacAddress) {
        {
            let mut state = self.state();
            Self::release(&mut state, mac);
            self.leave_locked(&mut state);
        }
        self.tell_vms_changed();
    }

    fn release(state: &mut State, mac: MacAddress) {
        state.names.remove(&mac.0);
        state
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&mac.0);
    }

    /// The address VM `name` has on it, if it is there.
    pub fn vm_address(&self, name: &str) -> Option<Ipv4Addr> {
        self.vms()
            .into_iter()
            .find_map(|(vm, address)| (vm == name).then_some(address))
    }

    /// The VMs on it now: each one's name and address.
    pub fn vms(&self) -> Vec<(String, Ipv4Addr)> {
        let state = self.state();
        let table = state.table.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .names
            .iter()
            .filter_map(|(mac, name)| Some((name.clone(), *table.get(mac)?)))
            .collect()
    }
}
