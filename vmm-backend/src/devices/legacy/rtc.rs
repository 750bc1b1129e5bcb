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

/// A UTC time broken down as the RTC's registers hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utc {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday
    weekday: u32,
}

impl Utc {
    /// The UTC date and time `secs` seconds after 1970-01-01 00:00:00: the proleptic Gregorian
    /// calendar, days to year/month/day by the era method (H. Hinnant's `civil_from_days`).
    /// In Rust, not libc's gmtime_r: glibc opens time-zone files there, which a vCPU thread in
    /// the sandbox may not.
    fn from_unix(secs: i64) -> Utc {
        let days = secs.div_euclid(86_400);
        let time = secs.rem_euclid(86_400);
        let shifted = days + 719_468; // from 0000-03-01
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (time / 3600) as u32,
            minute: (time / 60 % 60) as u32,
            second: (time % 60) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// The register `index` for the UTC time `t`.
fn register(index: u8, t: &Utc) -> u8 {
    match index {
        REG_SECONDS => bcd(t.second as i32),
        REG_MINUTES => bcd(t.minute as i32),
        REG_HOURS => bcd(t.hour as i32),
        REG_WEEKDAY => bcd(t.weekday as i32 + 1),
        REG_DAY => bcd(t.day as i32),
        REG_MONTH => bcd(t.month as i32),
        REG_YEAR => bcd(t.year.rem_euclid(100) as i32),
        REG_CENTURY => bcd(t.year.div_euclid(100).rem_euclid(100) as i32),
        REG_STATUS_A => STATUS_A,
        REG_STATUS_B => STATUS_B,
        REG_STATUS_D => STATUS_D,
        _ => 0,
    }
}

fn now_utc() -> Utc {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Utc::from_unix(i64::try_from(secs).unwrap_or(0))
}

impl BusDevice for CmosRtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match (offset, data.first_mut()) {
            // The index port is write-only: it reads as the floating bus, as in QEMU. SeaBIOS
            // reads it around each of its mode switches to save the NMI mask (bit 7), and a
            // zero there costs it a write and a read to mask NMIs and as many to unmask them.
            (0, Some(byte)) => *byte = 0xff,
            (1, Some(byte)) => *byte = register(self.index, &now_utc()),
            _ => {}
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
    fn unix_seconds_become_the_calendar() {
        let at = |secs| Utc::from_unix(secs);
        let utc = |year, month, day, hour, minute, second, weekday| Utc {
            year,
            month,
            day,
            hour,
            minute,
            second,
            weekday,
        };
        assert_eq!(at(0), utc(1970, 1, 1, 0, 0, 0, 4));
        assert_eq!(at(951_782_400), utc(2000, 2, 29, 0, 0, 0, 2), "a leap day");
        assert_eq!(at(1_795_355_107), utc(2026, 11, 22, 13, 45, 7, 0));
        assert_eq!(at(4_102_444_799), utc(2099, 12, 31, 23, 59, 59, 4));
        assert_eq!(at(-1), utc(1969, 12, 31, 23, 59, 59, 3));
        // Against libc for every day of four centuries and some.
        for day in (-3650..150_000).step_by(7) {
            let secs = day * 86_400 + 12_345;
            // SAFETY: an all-zero `tm` is valid; gmtime_r fills it from a live local.
            let tm = unsafe {
                let mut tm: libc::tm = std::mem::zeroed();
                libc::gmtime_r(&secs, &mut tm);
                tm
            };
            let ours = at(secs);
            assert_eq!(
                (ours.year, ours.month, ours.day, ours.weekday),
                (
                    i64::from(tm.tm_year) + 1900,
                    tm.tm_mon as u32 + 1,
                    tm.tm_mday as u32,
                    tm.tm_wday as u32
                ),
                "{secs}"
            );
        }
    }

    #[test]
    fn registers_are_bcd_utc_in_24_hour_mode() {
        // 2026-11-22 13:45:07 UTC, a Sunday.
        let tm = Utc::from_unix(1_795_355_107);
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

    #[test]
    fn the_index_port_reads_as_the_floating_bus() {
        let mut rtc = CmosRtc::new();
        rtc.write(0, &[REG_STATUS_B]);
        let mut byte = [0u8];
        rtc.read(0, &mut byte);
        assert_eq!(
            byte,
            [0xff],
            "NMIs look masked already: SeaBIOS leaves them be"
        );
        rtc.read(1, &mut byte);
        assert_eq!(byte, [STATUS_B], "reading the index did not change it");
    }
}
