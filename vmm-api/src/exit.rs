//! berth-vmm's exit codes: how its VM ended, which berthd turns into the VM's state.

/// How berth-vmm ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmExit {
    /// The guest powered off (ACPI sleep state 5).
    PowerOff,
    /// Something failed before the guest ran (bad options, a missing file, no /dev/kvm); the
    /// reason is on stderr.
    Error,
    /// The guest reset itself: the supervisor starts the VM again.
    Reset,
    /// The VM crashed (a triple fault, an internal error); the reason is on stderr.
    Crash,
    /// The host ended it (`kill` on the control channel, or the channel closed).
    Stopped,
}

impl VmmExit {
    /// The process's exit code.
    pub const fn code(self) -> u8 {
        match self {
            VmmExit::PowerOff => 0,
            VmmExit::Error => 1,
            VmmExit::Reset => 2,
            VmmExit::Crash => 3,
            VmmExit::Stopped => 4,
        }
    }

    /// Every way berth-vmm ends.
    pub const ALL: [VmmExit; 5] = [
        VmmExit::PowerOff,
        VmmExit::Error,
        VmmExit::Reset,
        VmmExit::Crash,
        VmmExit::Stopped,
    ];

    /// The exit an exit code means; `None` for a code berth-vmm never uses.
    pub fn from_code(code: i32) -> Option<VmmExit> {
        Self::ALL
            .into_iter()
            .find(|exit| i32::from(exit.code()) == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_go_both_ways() {
        for code in 0..=4 {
            let exit = VmmExit::from_code(code).unwrap();
            assert_eq!(i32::from(exit.code()), code);
        }
        assert_eq!(VmmExit::from_code(0), Some(VmmExit::PowerOff));
        assert_eq!(VmmExit::from_code(2), Some(VmmExit::Reset));
        assert_eq!(VmmExit::from_code(5), None);
        assert_eq!(VmmExit::from_code(-1), None);
    }
}
