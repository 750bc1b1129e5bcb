//! The host's totals (N CPUs, M memory, P disk of the state filesystem) and samples of its
//! measured use, read from /proc and statvfs.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::host::{Availability, ContainerSupport, HostInfo, HostSample};
use berth_api::utilisation::{Resources, host_allocation, ratio};

use crate::config::DaemonConfig;
use crate::registry::Registry;
use crate::server::SERVER_VERSION;

/// `berthctl host`: the host's totals, what the VMs of `registry` were given of them, and the
/// daemon that answers.
pub fn host_info(
    registry: &Registry,
    config: &DaemonConfig,
    containers: ContainerSupport,
) -> HostInfo {
    let (total, disk_free) = totals(&config.state_dir);
    let given = registry.allocated();
    let allocated = given.iter().fold(Resources::default(), |sum, r| Resources {
        cpus: sum.cpus + r.cpus,
        memory: sum.memory + r.memory,
        disk: sum.disk + r.disk,
    });
    HostInfo {
        total,
        disk_free,
        allocated,
        allocation: host_allocation(&given, &total),
        vm_count: given.len() as u32,
        state_dir: config.state_dir.clone(),
        mode: config.mode,
        server_version: SERVER_VERSION.into(),
        vms: match berth_vmm_api::kvm::kvm_usable() {
            Ok(()) => Availability::Yes,
            Err(why) => Availability::No { why },
        },
        containers,
    }
}

/// The host's totals, and the bytes free on the state filesystem.
pub fn totals(state_dir: &Path) -> (Resources, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let memory = meminfo_kib("MemTotal:").unwrap_or(0) * 1024;
    let (disk, free) = filesystem_size(state_dir).unwrap_or((0, 0));
    (Resources { cpus, memory, disk }, free)
}

/// Total and available bytes of the filesystem holding `path`.
fn filesystem_size(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    Some((
        st.blocks() as u64 * frag,
        st.blocks_available() as u64 * frag,
    ))
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Busy and total jiffies of all CPUs, from the first line of /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total - idle.min(total), total))
}

/// Turns successive readings into samples of use since the previous one.
pub struct Sampler {
    previous: Option<(u64, u64)>,
}

impl Sampler {
    pub fn new() -> Self {
        Sampler {
            previous: cpu_jiffies(),
        }
    }

    /// A sample of CPU use since the last call, and of memory and disk use now.
    pub fn sample(&mut self, state_dir: &Path) -> HostSample {
        let now = cpu_jiffies();
        let cpu = match (self.previous, now) {
            (Some((busy0, total0)), Some((busy1, total1))) => ratio(
                busy1.saturating_sub(busy0) as f64,
                total1.saturating_sub(total0) as f64,
            ),
            _ => 0.0,
        };
        self.previous = now;
        let total = meminfo_kib("MemTotal:").unwrap_or(0);
        let available = meminfo_kib("MemAvailable:").unwrap_or(0);
        let (disk_total, disk_free) = filesystem_size(state_dir).unwrap_or((0, 0));
        HostSample {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            cpu,
            memory: ratio(total.saturating_sub(available) as f64, total as f64),
            disk: ratio(
                disk_total.saturating_sub(disk_free) as f64,
                disk_total as f64,
            ),
        }
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_match_the_machine() {
        let (total, free) = totals(Path::new("/"));
        assert_eq!(
            total.cpus as usize,
            std::thread::available_parallelism().unwrap().get()
        );
        assert!(total.memory > 64 << 20, "memory {}", total.memory);
        assert!(total.disk > 0 && free <= total.disk);
    }

    #[test]
    fn samples_are_fractions() {
        let mut sampler = Sampler::new();
        // Burn a little CPU so the interval has something to measure.
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < 50 {
            std::hint::black_box(0u64);
        }
        let s = sampler.sample(Path::new("/"));
        for v in [s.cpu, s.memory, s.disk] {
            assert!((0.0..=1.0).contains(&v), "{s:?}");
        }
        assert!(s.memory > 0.0 && s.disk > 0.0, "{s:?}");
    }
}
