//! The utilisation formulas behind every gauge, in one pure place.
//!
//! Allocation is what was given over what there is:
//! U_vm = n/N, M_vm = m/M, P_vm = p/P (a VM's CPUs, memory and disk over the host's), and
//! U_ct = n'/n, M_ct = m'/m, P_ct = p'/p (a container's over its parent's: a VM's when it runs in
//! one, the host's when it runs on the host). Summed over all VMs, ΣU_vm and ΣM_vm above 1 mean
//! the host is overcommitted. Live use is used over total of the same thing.

use serde::{Deserialize, Serialize};

/// An amount of each resource: CPUs (fractional for containers, e.g. `--cpus 0.2`), memory and
/// disk in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: f64,
    pub memory: u64,
    pub disk: u64,
}

/// One ratio per resource. 1.0 is all of the parent; above 1.0 is overcommitment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Shares {
    pub cpu: f64,
    pub memory: f64,
    pub disk: f64,
}

impl Shares {
    /// Whether any resource is given out beyond what the parent has.
    pub fn overcommitted(&self) -> bool {
        self.cpu > 1.0 || self.memory > 1.0 || self.disk > 1.0
    }
}

/// used / total, with an empty total counting as nothing used (a gauge of nothing is empty,
/// not infinite).
pub fn ratio(used: f64, total: f64) -> f64 {
    if total > 0.0 { used / total } else { 0.0 }
}

/// The share of `parent` that `part` was given.
pub fn allocation(part: &Resources, parent: &Resources) -> Shares {
    Shares {
        cpu: ratio(part.cpus, parent.cpus),
        memory: ratio(part.memory as f64, parent.memory as f64),
        disk: ratio(part.disk as f64, parent.disk as f64),
    }
}

/// U_vm, M_vm, P_vm: a VM's allocation over the host's totals.
pub fn vm_allocation(vm: &Resources, host: &Resources) -> Shares {
    allocation(vm, host)
}

/// U_ct, M_ct, P_ct: a container's limits over its parent's (a VM, or the host).
pub fn container_allocation(container: &Resources, parent: &Resources) -> Shares {
    allocation(container, parent)
}

/// ΣU_vm, ΣM_vm, ΣP_vm: everything given to VMs over the host's totals.
pub fn host_allocation<'a>(
    vms: impl IntoIterator<Item = &'a Resources>,
    host: &Resources,
) -> Shares {
    let total = vms
        .into_iter()
        .fold(Resources::default(), |sum, vm| Resources {
            cpus: sum.cpus + vm.cpus,
            memory: sum.memory.saturating_add(vm.memory),
            disk: sum.disk.saturating_add(vm.disk),
        });
    allocation(&total, host)
}

/// Live CPU use over an interval: CPU time spent over the time the CPUs had (wall time × cores).
pub fn cpu_use(cpu_seconds: f64, wall_seconds: f64, cores: f64) -> f64 {
    ratio(cpu_seconds, wall_seconds * cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    /// The seeds' own example: N=4, M=16 GB, P=100 GB; a VM with n=2, m=8 GB, p=50 GB; a
    /// container in it with n'=1, m'=4 GB, p'=25 GB. Every ratio is one half.
    #[test]
    fn the_seeds_example_gives_one_half_everywhere() {
        let host = Resources {
            cpus: 4.0,
            memory: 16 * GB,
            disk: 100 * GB,
        };
        let vm = Resources {
            cpus: 2.0,
            memory: 8 * GB,
            disk: 50 * GB,
        };
        let container = Resources {
            cpus: 1.0,
            memory: 4 * GB,
            disk: 25 * GB,
        };
        let half = Shares {
            cpu: 0.5,
            memory: 0.5,
            disk: 0.5,
        };
        assert_eq!(vm_allocation(&vm, &host), half);
        assert_eq!(container_allocation(&container, &vm), half);
        assert!(!half.overcommitted());
    }

    #[test]
    fn sums_over_vms_show_overcommitment() {
        let host = Resources {
            cpus: 4.0,
            memory: 16 * GB,
            disk: 100 * GB,
        };
        let vm = Resources {
            cpus: 3.0,
            memory: 8 * GB,
            disk: 10 * GB,
        };
        let sum = host_allocation([&vm, &vm], &host);
        assert_eq!(sum.cpu, 1.5);
        assert_eq!(sum.memory, 1.0);
        assert_eq!(sum.disk, 0.2);
        assert!(sum.overcommitted());
        assert_eq!(host_allocation([], &host), Shares::default());
    }

    #[test]
    fn live_use_is_used_over_total() {
        // 1 CPU-second over 2 s of wall time on 2 cores: a quarter of the machine.
        assert_eq!(cpu_use(1.0, 2.0, 2.0), 0.25);
        assert_eq!(ratio(3.0, 12.0), 0.25);
        assert_eq!(ratio(3.0, 0.0), 0.0);
    }

    #[test]
    fn fractional_container_cpus() {
        let host = Resources {
            cpus: 2.0,
            memory: GB,
            disk: GB,
        };
        let ct = Resources {
            cpus: 0.2,
            memory: 0,
            disk: 0,
        };
        assert!((container_allocation(&ct, &host).cpu - 0.1).abs() < 1e-12);
    }
}
