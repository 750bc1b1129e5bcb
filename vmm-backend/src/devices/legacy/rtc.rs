//! A read-only CMOS real-time clock (MC146818 registers at ports 0x70/0x71) that answers the
//! host's current time in UTC. Linux's built-in rtc_cmos driver probes it on every PC; without
//! it the guest reads zeros and registers a clock stuck in the year 2000. Writes (setting the
//! time, alarms, periodic interrupts) are ignored: the guest's wall clock comes from kvm-clock.

use crate::bus::{BusAction, BusDevice};

/// Index port; the data port follows it.
pub const RTC_PORT: u16 = 0x70;
/// Number of ports decoded.
pub const RTC_PORT_LEN: u16 = 2;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Status A: 32.768 kHz time base, 1024 Hz rate, update-in-progress never set.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour mode, BCD values, no interrupts.
const STATUS_B: u8 = 0x02;
/// Status D: the battery is good (VRT).
const STATUS_D: u8 = 0x80;

/// The RTC.
#[derive(Debug, Default)]
pub struct CmosRtc {
    index: u8,
}

impl CmosRtc {
    /// The RTC with register 0 selected.
    pub fn new() -> Self {
        Self::default()
    }
}

fn bcd(value: i32) -> u8 {
    let value = value.rem_euclid(100) as u8;
    ((value / 10) << 4) | (value % 10)
}

/// The register `index` for the broken-down UTC time `tm`.
fn register(index: u8, tm: &libc::tm) -> u8 {
    match index {
        REG_SECONDS => bcd(tm.tm_sec),
        REG_MINUTES => bcd(tm.tm_min),
        REG_HOURS => bcd(tm.tm_hour),
        REG_WEEKDAY => bcd(tm.tm_wday + 1),
        REG_DAY => bcd(tm.tm_mday),
        REG_MONTH => bcd(tm.tm_mon + 1),
        REG_YEAR => bcd(tm.tm_year + 1900),
        REG_CENTURY => bcd((tm.tm_year + 1900) / 100),
        REG_STATUS_A => STATUS_A,
        REG_STATUS_B => STATUS_B,
        REG_STATUS_D => STATUS_D,
        _ => 0,
    }
}

fn now_utc() -> libc::tm {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals for the duration of the call; gmtime_r is the
    // re-entrant variant and keeps no pointer to them.
    unsafe { libc::gmtime_r(&secs, &mut tm) };
    tm
}

impl BusDevice for CmosRtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (1, Some(byte)) = (offset, data.first_mut()) {
            *byte = register(self.index, &now_utc());
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        // Bit 7 of the index port is the NMI mask on real boards: not modelled.
        if let (0, Some(&value)) = (offset, data.first()) {
            self.index = value & 0x7f;
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_bcd_utc_in_24_hour_mode() {
        // 2026-11-22 13:45:07 UTC, a Sunday.
        // SAFETY: an all-zero `tm` is valid.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = 126;
        tm.tm_mon = 10;
        tm.tm_mday = 22;
        tm.tm_hour = 13;
        tm.tm_min = 45;
        tm.tm_sec = 7;
        tm.tm_wday = 0;
        let regs: Vec<u8> = [0, 2, 4, 6, 7, 8, 9, 0x32]
            .iter()
            .map(|&i| register(i, &tm))
            .collect();
        assert_eq!(regs, [0x07, 0x45, 0x13, 0x01, 0x22, 0x11, 0x26, 0x20]);
        assert_eq!(
            register(REG_STATUS_A, &tm) & 0x80,
            0,
            "never update-in-progress"
        );
        assert_eq!(register(REG_STATUS_B, &tm), 0x02);
    }

    #[test]
    fn index_then_data_reads_the_selected_register() {
        let mut rtc = CmosRtc::new();
        rtc.write(0, &[0x8b]); // NMI-mask bit set, register B
        let mut byte = [0u8];
        rtc.read(1, &mut byte);
        assert_eq!(byte, [STATUS_B]);
        rtc.write(0, &[REG_YEAR]);
        rtc.read(1, &mut byte);
        let year = (byte[0] >> 4) * 10 + (byte[0] & 0xf);
        assert!(year >= 25, "the host clock says 20{year:02}");
    }
}
