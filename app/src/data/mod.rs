//! What the window shows, without the window: the latest snapshot of the daemon's state, the
//! history behind each sparkline, and the words and numbers the views print. Tested without
//! a display.

pub mod console;
pub mod networks;
pub mod pictures;
pub mod programs;
pub mod sidebar;

use std::collections::VecDeque;

use berth_api::container::ContainerInfo;
use berth_api::host::{HostInfo, HostSample};
use berth_api::vm::{DefinitionProblem, VmInfo};

/// How many samples a sparkline keeps: 60 at one a second, a minute of history.
pub const HISTORY: usize = 60;

/// A fixed-length history of ratios (0..=1, or above for overcommitment), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    values: VecDeque<f32>,
}

impl History {
    pub fn push(&mut self, value: f64) {
        if self.values.len() == HISTORY {
            self.values.pop_front();
        }
        self.values.push_back(value as f32);
    }
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.values.iter().copied()
    }
    #[cfg(test)]
    fn len(&self) -> usize {
        self.values.len()
    }
    pub fn last(&self) -> Option<f32> {
        self.values.back().copied()
    }
}

/// The host's measured use over the last minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostHistory {
    pub cpu: History,
    pub memory: History,
    pub disk: History,
}

impl HostHistory {
    pub fn record(&mut self, sample: &HostSample) {
        self.cpu.push(sample.cpu);
        self.memory.push(sample.memory);
        self.disk.push(sample.disk);
    }
}

/// Everything listed in the window, as last fetched from berthd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub host: Option<HostInfo>,
    pub vms: Vec<VmInfo>,
    pub problems: Vec<DefinitionProblem>,
    pub containers: Vec<ContainerInfo>,
}

impl Snapshot {
    pub fn vm(&self, name: &str) -> Option<&VmInfo> {
        self.vms.iter().find(|v| v.config.name == name)
    }
    pub fn container(&self, id: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.id == id)
    }
    /// The host's overcommitment warning, if CPUs or memory are given out beyond its totals.
    pub fn overcommit_warning(&self) -> Option<String> {
        let host = self.host.as_ref()?;
        let mut over = Vec::new();
        if host.allocation.cpu > 1.0 {
            over.push(format!(
                "{} vCPUs on {} CPUs",
                host.allocated.cpus, host.total.cpus
            ));
        }
        if host.allocation.memory > 1.0 {
            over.push(format!(
                "{} of memory on {}",
                berth_api::size::format_size(host.allocated.memory),
                berth_api::size::format_size(host.total.memory)
            ));
        }
        (!over.is_empty()).then(|| format!("Overcommitted: {}", over.join(", ")))
    }
}

/// A ratio as a whole percentage, e.g. `50%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::host::DaemonMode;
    use berth_api::utilisation::{Resources, Shares};

    #[test]
    fn history_keeps_the_last_minute() {
        let mut h = History::default();
        for i in 0..100 {
            h.push(f64::from(i) / 100.0);
        }
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.values().next(), Some(0.40));
        assert_eq!(h.last(), Some(0.99));
    }

    #[test]
    fn overcommitment_is_worded_for_people() {
        let host = HostInfo {
            total: Resources {
                cpus: 2.0,
                memory: 8 << 30,
                disk: 100 << 30,
            },
            disk_free: 50 << 30,
            allocated: Resources {
                cpus: 3.0,
                memory: 4 << 30,
                disk: 0,
            },
            allocation: Shares {
                cpu: 1.5,
                memory: 0.5,
                disk: 0.0,
            },
            vm_count: 2,
            state_dir: "/x".into(),
            mode: DaemonMode::User,
            server_version: "0".into(),
            vms: berth_api::host::Availability::Yes,
            containers: berth_api::host::ContainerSupport {
                ids: berth_api::host::IdMap::Host,
                limits: berth_api::host::Availability::Yes,
            },
        };
        let mut snapshot = Snapshot {
            host: Some(host),
            ..Snapshot::default()
        };
        assert_eq!(
            snapshot.overcommit_warning().as_deref(),
            Some("Overcommitted: 3 vCPUs on 2 CPUs")
        );
        if let Some(h) = snapshot.host.as_mut() {
            h.allocation.cpu = 1.0;
        }
        assert_eq!(snapshot.overcommit_warning(), None);
        assert_eq!(percent(0.5), "50%");
    }
}
