//! The ACPI tables a firmware-less Linux boot needs: RSDP → XSDT → FADT (hardware-reduced, with
//! the sleep and reset registers of [`crate::devices::legacy::acpi_pm`]) → DSDT, and the MADT.
//!
//! Why ACPI at all: Debian kernels power off only through ACPI, and they find virtio-mmio devices
//! only in the DSDT (`virtio_mmio.device=` is not compiled in). The tables go in the BIOS area at
//! [`ACPI_TABLES_START`], where Linux also scans for the RSDP, and the zero page names the RSDP
//! directly (`acpi_rsdp_addr`).

use acpi_tables::Aml;
use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::legacy::acpi_pm::{
    ACPI_RESET_PORT, ACPI_RESET_VALUE, ACPI_SLEEP_CONTROL_PORT, ACPI_SLEEP_STATUS_PORT, SLP_TYP_S5,
};
use crate::devices::legacy::serial::{COM1_IRQ, COM1_PORT};

/// Guest-physical address of the RSDP, the first of the tables (16-byte aligned, inside the
/// 0xE0000-0xFFFFF range Linux scans).
pub const ACPI_TABLES_START: u64 = 0xE_0000;
/// End (exclusive) of the area the tables may use.
pub const ACPI_TABLES_END: u64 = 0x10_0000;
/// Guest-physical address of the local APICs (architectural default).
pub const LAPIC_ADDR: u32 = 0xFEE0_0000;
/// Guest-physical address of KVM's in-kernel IOAPIC.
pub const IOAPIC_ADDR: u32 = 0xFEC0_0000;

const OEM_ID: [u8; 6] = *b"BERTH ";
const OEM_TABLE_ID: [u8; 8] = *b"BERTHVM ";
const OEM_REVISION: u32 = 1;

/// A virtio-mmio device as the DSDT describes it (`_HID "LNRO0005"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest-physical base of its register window.
    pub base: u32,
    /// Size of the register window.
    pub len: u32,
    /// Its interrupt line (a GSI on the IOAPIC), edge-triggered.
    pub irq: u32,
}

/// What the tables describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Number of vCPUs: one local APIC each, APIC id = index.
    pub vcpus: u32,
    /// virtio-mmio devices for the DSDT.
    pub virtio_devices: Vec<VirtioMmioDevice>,
    /// The interrupt line of the Generic Event Device that reports the power button
    /// ([`crate::devices::power_button`]); `None` describes no power button.
    pub power_button_gsi: Option<u32>,
}

/// Errors while building the ACPI tables.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum AcpiError {
    /// the ACPI tables need {needed} bytes but only {available} fit in the BIOS area
    TooLarge {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// the MADT can describe at most 255 vCPUs, {0} were asked for
    TooManyVcpus(u32),
    /// writing the ACPI tables into guest RAM failed: {0}
    WriteMemory(#[from] vm_memory::GuestMemoryError),
}

/// The tables laid out for guest RAM: `(guest address, bytes)` pairs, RSDP first.
#[derive(Debug, Clone)]
pub struct AcpiTables {
    /// Each table and where it goes.
    pub tables: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// Address of the RSDP (for the zero page's `acpi_rsdp_addr`).
    pub fn rsdp_addr(&self) -> u64 {
        ACPI_TABLES_START
    }

    /// The table with this 4-byte signature (8 for the RSDP, `RSD PTR `), for tests and checks.
    pub fn find(&self, signature: &[u8]) -> Option<&[u8]> {
        self.tables
            .iter()
            .map(|(_, t)| t.as_slice())
            .find(|t| t.starts_with(signature))
    }

    /// Copies every table to its address.
    pub fn write(&self, mem: &GuestMemoryMmap) -> Result<(), AcpiError> {
        for (addr, bytes) in &self.tables {
            mem.write_slice(bytes, GuestAddress(*addr))?;
        }
        Ok(())
    }
}

fn to_bytes(table: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    bytes
}

fn align16(addr: u64) -> u64 {
    (addr + 15) & !15
}

/// Builds all tables for `config`.
pub fn build_tables(config: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    if config.vcpus > 255 {
        return Err(AcpiError::TooManyVcpus(config.vcpus));
    }
    let dsdt = build_dsdt(&config.virtio_devices, config.power_button_gsi);
    let madt = build_madt(config.vcpus);

    // RSDP, XSDT (two entries), FADT, MADT, DSDT, each 16-byte aligned.
    let xsdt_addr = align16(ACPI_TABLES_START + Rsdp::len() as u64);
    let xsdt_len = 36 + 2 * 8;
    let fadt_addr = align16(xsdt_addr + xsdt_len);
    let madt_addr = align16(fadt_addr + acpi_tables::fadt::FADT::len() as u64);
    let dsdt_addr = align16(madt_addr + madt.len() as u64);
    let end = dsdt_addr + dsdt.len() as u64;
    if end > ACPI_TABLES_END {
        return Err(AcpiError::TooLarge {
            needed: end - ACPI_TABLES_START,
            available: ACPI_TABLES_END - ACPI_TABLES_START,
        });
    }

    let fadt = build_fadt(dsdt_addr);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let rsdp = Rsdp::new(OEM_ID, xsdt_addr);

    Ok(AcpiTables {
        tables: vec![
            (ACPI_TABLES_START, to_bytes(&rsdp)),
            (xsdt_addr, to_bytes(&xsdt)),
            (fadt_addr, fadt),
            (madt_addr, madt.as_slice().to_vec()),
            (dsdt_addr, dsdt.as_slice().to_vec()),
        ],
    })
}

fn io_register(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(port),
    )
}

/// The FADT: hardware-reduced ACPI (no PM1 blocks, no SCI, no GPEs), the sleep control/status
/// registers and the reset register.
fn build_fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        // The power button is a device in the DSDT (or absent), not fixed hardware.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.sleep_control_reg = io_register(ACPI_SLEEP_CONTROL_PORT);
    fadt.sleep_status_reg = io_register(ACPI_SLEEP_STATUS_PORT);
    fadt.reset_reg = io_register(ACPI_RESET_PORT);
    fadt.reset_value = ACPI_RESET_VALUE;
    // IA-PC boot architecture flags: bit 2, no VGA; bit 4, MSIs are not supported (there is no
    // PCI). Bit 1 (8042 present) stays clear: Linux then skips probing the i8042 (seconds in the
    // lab for a keyboard nobody uses) and resets through RESET_REG instead; the i8042 stays on the
    // bus for guests that try it anyway.
    fadt.iapc_boot_arch = (0b1_0100u16).into();
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"BERTHVMM").into();
    to_bytes(&fadt.finalize())
}

/// The MADT: one enabled local APIC per vCPU, the IOAPIC, IRQ 0 routed to GSI 2 (the PIT's pin
/// on KVM's IOAPIC) and LINT1 as NMI on every processor.
fn build_madt(vcpus: u32) -> Sdt {
    let mut madt = Sdt::new(*b"APIC", 44, 5, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    madt.write_u32(36, LAPIC_ADDR);
    // PCAT_COMPAT: KVM's in-kernel irqchip also has the dual 8259s.
    madt.write_u32(40, 1);
    for id in 0..vcpus {
        // Processor Local APIC (type 0): ACPI processor UID, APIC id, flags = enabled.
        madt.append_slice(&[0, 8, id as u8, id as u8, 1, 0, 0, 0]);
    }
    // I/O APIC (type 1): id, reserved, address, GSI base.
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    madt.append_slice(&ioapic);
    // Interrupt Source Override (type 2): ISA bus, IRQ 0 -> GSI 2, flags conform to the bus.
    let mut iso = vec![2, 10, 0, 0];
    iso.extend_from_slice(&2u32.to_le_bytes());
    iso.extend_from_slice(&0u16.to_le_bytes());
    madt.append_slice(&iso);
    // Local APIC NMI (type 4): all processors (UID 0xff), flags conform, LINT1.
    madt.append_slice(&[4, 6, 0xff, 0, 0, 1]);
    madt
}

/// The DSDT: COM1, the RTC, the virtio-mmio devices, the power button, and `\_S5` for soft-off.
fn build_dsdt(virtio_devices: &[VirtioMmioDevice], power_button_gsi: Option<u32>) -> Sdt {
    let mut body = Vec::new();

    let s5_typ: u8 = SLP_TYP_S5;
    let zero: u8 = 0;
    aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&s5_typ, &s5_typ, &zero, &zero]),
    )
    .to_aml_bytes(&mut body);

    let com1_hid = aml::EISAName::new("PNP0501");
    let uid0: u8 = 0;
    let com1_io = aml::IO::new(COM1_PORT, COM1_PORT, 1, 8);
    let com1_irq = aml::Interrupt::new(true, true, false, false, COM1_IRQ);
    let com1_crs = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    let com1_hid_name = aml::Name::new("_HID".into(), &com1_hid);
    let com1_uid_name = aml::Name::new("_UID".into(), &uid0);
    let com1_crs_name = aml::Name::new("_CRS".into(), &com1_crs);
    aml::Device::new(
        "_SB_.COM1".into(),
        vec![&com1_hid_name, &com1_uid_name, &com1_crs_name],
    )
    .to_aml_bytes(&mut body);

    // The CMOS RTC at 0x70 (no interrupt: alarms are not modelled). Described so Linux's
    // rtc_cmos binds through PNP; its legacy platform-device fallback refuses a hardware-reduced
    // machine.
    let rtc_hid = aml::EISAName::new("PNP0B00");
    let rtc_io = aml::IO::new(0x70, 0x70, 1, 2);
    let rtc_crs = aml::ResourceTemplate::new(vec![&rtc_io]);
    let rtc_hid_name = aml::Name::new("_HID".into(), &rtc_hid);
    let rtc_crs_name = aml::Name::new("_CRS".into(), &rtc_crs);
    aml::Device::new("_SB_.RTC_".into(), vec![&rtc_hid_name, &rtc_crs_name])
        .to_aml_bytes(&mut body);

    for (index, device) in virtio_devices.iter().enumerate() {
        let path = format!("_SB_.V{index:03X}");
        let uid = index as u32;
        let window = aml::Memory32Fixed::new(true, device.base, device.len);
        let irq = aml::Interrupt::new(true, true, false, false, device.irq);
        let crs = aml::ResourceTemplate::new(vec![&window, &irq]);
        let hid = aml::Name::new("_HID".into(), &"LNRO0005");
        let uid = aml::Name::new("_UID".into(), &uid);
        // Cache-coherent DMA: guest RAM is ordinary host memory.
        let cca = aml::Name::new("_CCA".into(), &aml::ONE);
        let crs = aml::Name::new("_CRS".into(), &crs);
        aml::Device::new(path.as_str().into(), vec![&hid, &uid, &cca, &crs])
            .to_aml_bytes(&mut body);
    }

    if let Some(gsi) = power_button_gsi {
        power_button_aml(gsi, &mut body);
    }

    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    dsdt.append_slice(&body);
    dsdt
}

/// A control-method power button (`PNP0C0C`) and the Generic Event Device (`ACPI0013`) that
/// reports it: the GED's interrupt on `gsi` makes the guest call `_EVT(gsi)`, which notifies the
/// button with 0x80 (status change: pressed). The GED has no other event, so `_EVT` reads no
/// selector register.
fn power_button_aml(gsi: u32, body: &mut Vec<u8>) {
    let zero: u8 = 0;
    let button_hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0C0C"));
    let button_uid = aml::Name::new("_UID".into(), &zero);
    aml::Device::new("_SB_.PWRB".into(), vec![&button_hid, &button_uid]).to_aml_bytes(body);

    let ged_hid = aml::Name::new("_HID".into(), &"ACPI0013");
    let ged_uid = aml::Name::new("_UID".into(), &zero);
    let irq = aml::Interrupt::new(true, true, false, false, gsi);
    let crs = aml::ResourceTemplate::new(vec![&irq]);
    let ged_crs = aml::Name::new("_CRS".into(), &crs);
    let button: aml::Path = "\\_SB_.PWRB".into();
    let pressed: u8 = 0x80;
    let notify = aml::Notify::new(&button, &pressed);
    let is_ours = aml::Equal::new(&aml::Arg(0), &gsi);
    let if_ours = aml::If::new(&is_ours, vec![&notify]);
    let evt = aml::Method::new("_EVT".into(), 1, true, vec![&if_ours]);
    aml::Device::new("_SB_.GED_".into(), vec![&ged_hid, &ged_uid, &ged_crs, &evt])
        .to_aml_bytes(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    fn tables(vcpus: u32, virtio: Vec<VirtioMmioDevice>) -> AcpiTables {
        build_tables(&AcpiConfig {
            vcpus,
            virtio_devices: virtio,
            power_button_gsi: None,
        })
        .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn every_checksum_and_length_is_right() {
        let t = tables(2, vec![]);
        let rsdp = t.find(b"RSD PTR ").unwrap();
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(rsdp), 0, "RSDP extended checksum");
        for sig in [&b"XSDT"[..], b"FACP", b"APIC", b"DSDT"] {
            let table = t.find(sig).unwrap();
            assert_eq!(sum(table), 0, "{} checksum", String::from_utf8_lossy(sig));
            let len = u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize;
            assert_eq!(len, table.len());
        }
    }

    #[test]
    fn rsdp_xsdt_fadt_dsdt_chain_by_address() {
        let t = tables(1, vec![]);
        let at = |addr: u64| t.tables.iter().find(|(a, _)| *a == addr).unwrap().1.clone();
        let rsdp = at(ACPI_TABLES_START);
        let xsdt = at(u64::from_le_bytes(rsdp[24..32].try_into().unwrap()));
        assert_eq!(&xsdt[..4], b"XSDT");
        let entries: Vec<u64> = xsdt[36..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&at(entries[0])[..4], b"FACP");
        assert_eq!(&at(entries[1])[..4], b"APIC");
        let fadt = at(entries[0]);
        // X_DSDT at offset 140.
        let dsdt = at(u64::from_le_bytes(fadt[140..148].try_into().unwrap()));
        assert_eq!(&dsdt[..4], b"DSDT");
        for (addr, bytes) in &t.tables {
            assert!(*addr >= ACPI_TABLES_START && addr + bytes.len() as u64 <= ACPI_TABLES_END);
        }
    }

    #[test]
    fn fadt_is_hardware_reduced_with_sleep_and_reset_registers() {
        let t = tables(1, vec![]);
        let fadt = t.find(b"FACP").unwrap();
        let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        // RESET_REG (GAS at 116): system I/O, 8 bits, port 0x602; RESET_VALUE at 128.
        assert_eq!(fadt[116], 1);
        assert_eq!(fadt[117], 8);
        assert_eq!(
            u64::from_le_bytes(fadt[120..128].try_into().unwrap()),
            0x602
        );
        assert_eq!(fadt[128], 0x0f);
        // SLEEP_CONTROL_REG at 244, SLEEP_STATUS_REG at 256.
        assert_eq!(fadt[244], 1);
        assert_eq!(
            u64::from_le_bytes(fadt[248..256].try_into().unwrap()),
            0x600
        );
        assert_eq!(fadt[256], 1);
        assert_eq!(
            u64::from_le_bytes(fadt[260..268].try_into().unwrap()),
            0x601
        );
    }

    #[test]
    fn madt_has_one_enabled_local_apic_per_vcpu_and_the_ioapic() {
        for vcpus in [1u32, 2, 8] {
            let t = tables(vcpus, vec![]);
            let madt = t.find(b"APIC").unwrap();
            assert_eq!(
                u32::from_le_bytes(madt[36..40].try_into().unwrap()),
                LAPIC_ADDR
            );
            let mut lapics = Vec::new();
            let mut ioapics = 0;
            let mut nmis = 0;
            let mut at = 44;
            while at < madt.len() {
                let (kind, len) = (madt[at], madt[at + 1] as usize);
                match kind {
                    0 => {
                        assert_eq!(madt[at + 4] & 1, 1, "enabled");
                        lapics.push(madt[at + 3]);
                    }
                    1 => {
                        ioapics += 1;
                        assert_eq!(
                            u32::from_le_bytes(madt[at + 4..at + 8].try_into().unwrap()),
                            IOAPIC_ADDR
                        );
                    }
                    4 => nmis += 1,
                    _ => {}
                }
                at += len;
            }
            assert_eq!(at, madt.len());
            assert_eq!(lapics, (0..vcpus as u8).collect::<Vec<_>>());
            assert_eq!((ioapics, nmis), (1, 1));
        }
    }

    #[test]
    fn dsdt_has_s5_com1_and_the_virtio_devices() {
        let virtio = vec![
            VirtioMmioDevice {
                base: 0xd000_0000,
                len: 0x1000,
                irq: 5,
            },
            VirtioMmioDevice {
                base: 0xd000_1000,
                len: 0x1000,
                irq: 6,
            },
        ];
        let t = tables(1, virtio);
        let dsdt = t.find(b"DSDT").unwrap();
        // Name(_S5_, Package(4) {5, 5, 0, 0}): NameOp, name, PackageOp, length, count, elements.
        assert!(contains(dsdt, b"\x08_S5_\x12"));
        assert!(contains(dsdt, &[0x04, 0x0a, 0x05, 0x0a, 0x05]));
        assert!(contains(dsdt, b"COM1"));
        // EISAID("PNP0B00"), the CMOS RTC.
        assert!(contains(dsdt, &[0x0c, 0x41, 0xd0, 0x0b, 0x00]));
        // EISAID("PNP0501") as the DWord constant 0x0105D041.
        assert!(contains(dsdt, &[0x0c, 0x41, 0xd0, 0x05, 0x01]));
        // IO(Decode16, 0x3f8, 0x3f8, 1, 8).
        assert!(contains(
            dsdt,
            &[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]
        ));
        assert_eq!(dsdt.windows(8).filter(|w| w == b"LNRO0005").count(), 2);
        assert!(contains(dsdt, b"V000") && contains(dsdt, b"V001"));
        // Memory32Fixed(ReadWrite, 0xd0001000, 0x1000).
        assert!(contains(
            dsdt,
            &[
                0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00
            ]
        ));
    }

    #[test]
    fn too_many_vcpus_are_refused() {
        let err = build_tables(&AcpiConfig {
            vcpus: 300,
            virtio_devices: vec![],
            power_button_gsi: None,
        })
        .unwrap_err();
        assert!(matches!(err, AcpiError::TooManyVcpus(300)));
    }

    #[test]
    fn dsdt_has_a_ged_power_button_only_when_asked() {
        let without = tables(1, vec![]);
        let dsdt = without.find(b"DSDT").unwrap();
        assert!(!contains(dsdt, b"ACPI0013") && !contains(dsdt, b"PWRB"));

        let t = build_tables(&AcpiConfig {
            vcpus: 1,
            virtio_devices: vec![],
            power_button_gsi: Some(5),
        })
        .unwrap();
        let dsdt = t.find(b"DSDT").unwrap();
        assert_eq!(sum(dsdt), 0);
        assert!(contains(dsdt, b"ACPI0013"));
        // EISAID("PNP0C0C") as a DWord constant.
        assert!(contains(dsdt, &[0x0c, 0x41, 0xd0, 0x0c, 0x0c]));
        // Method(_EVT, 1, Serialized) { If (LEqual(Arg0, 5)) { Notify(\_SB_.PWRB, 0x80) } }
        assert!(contains(dsdt, b"_EVT\x09"));
        assert!(contains(dsdt, &[0x93, 0x68, 0x0a, 0x05]));
        assert!(contains(dsdt, b"\x86\\\x2e_SB_PWRB\x0a\x80"));
        // The GED's interrupt: Extended IRQ, consumer, edge, active high, GSI 5.
        assert!(contains(
            dsdt,
            &[0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0, 0, 0]
        ));
    }
}
