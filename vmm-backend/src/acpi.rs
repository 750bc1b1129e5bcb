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
/// End (exclusive) of the area the tables may use: up to the reset vector's 16 bytes
/// ([`crate::linux::RESET_VECTOR`]).
pub const ACPI_TABLES_END: u64 = 0xF_FFF0;
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

/// Builds all tables for `config`, at their addresses in the BIOS area (a boot without
/// firmware).
pub fn build_tables(config: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    let tables_start = align16(ACPI_TABLES_START + Rsdp::len() as u64);
    let tables = build_from(config, tables_start)?;
    let end = tables.end();
    if end > ACPI_TABLES_END {
        return Err(AcpiError::TooLarge {
            needed: end - ACPI_TABLES_START,
            available: ACPI_TABLES_END - ACPI_TABLES_START,
        });
    }
    let rsdp = to_bytes(&Rsdp::new(OEM_ID, tables.xsdt_addr()));
    let mut all = vec![(ACPI_TABLES_START, rsdp)];
    all.extend(tables.tables);
    Ok(AcpiTables { tables: all })
}

/// The tables from `start` on: XSDT (two entries), FADT, MADT, DSDT, each 16-byte aligned.
fn build_from(config: &AcpiConfig, start: u64) -> Result<AcpiTables, AcpiError> {
    if config.vcpus > 255 {
        return Err(AcpiError::TooManyVcpus(config.vcpus));
    }
    let dsdt = build_dsdt(&config.virtio_devices, config.power_button_gsi);
    let madt = build_madt(config.vcpus);

    let xsdt_addr = align16(start);
    let xsdt_len = 36 + 2 * 8;
    let fadt_addr = align16(xsdt_addr + xsdt_len);
    let madt_addr = align16(fadt_addr + acpi_tables::fadt::FADT::len() as u64);
    let dsdt_addr = align16(madt_addr + madt.len() as u64);

    let fadt = build_fadt(dsdt_addr);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);

    Ok(AcpiTables {
        tables: vec![
            (xsdt_addr, to_bytes(&xsdt)),
            (fadt_addr, fadt),
            (madt_addr, madt.as_slice().to_vec()),
            (dsdt_addr, dsdt.as_slice().to_vec()),
        ],
    })
}

impl AcpiTables {
    /// The XSDT's address (the RSDP names it).
    fn xsdt_addr(&self) -> u64 {
        self.tables
            .iter()
            .find(|(_, t)| t.starts_with(b"XSDT"))
            .map_or(0, |(addr, _)| *addr)
    }

    /// First address past the last table.
    fn end(&self) -> u64 {
        self.tables
            .iter()
            .map(|(addr, t)| addr + t.len() as u64)
            .max()
            .unwrap_or(0)
    }
}

/// The fw_cfg file firmware reads the tables from.
pub const FW_CFG_TABLES_FILE: &str = "etc/acpi/tables";
/// The fw_cfg file holding the RSDP.
pub const FW_CFG_RSDP_FILE: &str = "etc/acpi/rsdp";
/// The fw_cfg file of commands that place and link the two (QEMU's BIOS linker/loader).
pub const FW_CFG_LOADER_FILE: &str = "etc/table-loader";

/// The tables for a firmware boot, as QEMU hands them to SeaBIOS: `tables` holds the XSDT,
/// FADT, MADT and DSDT with every pointer between them an offset into `tables`; the firmware
/// allocates both files, adds the addresses it chose to those pointers and fixes the checksums,
/// as `loader`'s commands say. Where the firmware puts them is its business: the RSDP in its
/// F segment, where a booted kernel scans for it.
#[derive(Debug, Clone)]
pub struct FirmwareTables {
    /// [`FW_CFG_RSDP_FILE`].
    pub rsdp: Vec<u8>,
    /// [`FW_CFG_TABLES_FILE`].
    pub tables: Vec<u8>,
    /// [`FW_CFG_LOADER_FILE`].
    pub loader: Vec<u8>,
}

/// The loader's commands (SeaBIOS `romfile_loader.h`): 128 bytes each, little-endian, file
/// names in 56 NUL-padded bytes.
mod loader {
    pub const ENTRY_LEN: usize = 128;
    pub const FILE_NAME_LEN: usize = 56;
    pub const ALLOCATE: u32 = 1;
    pub const ADD_POINTER: u32 = 2;
    pub const ADD_CHECKSUM: u32 = 3;
    /// ALLOCATE's zones: anywhere in high memory, or the F segment (0xF0000-0xFFFFF).
    pub const ZONE_HIGH: u8 = 1;
    pub const ZONE_FSEG: u8 = 2;

    pub fn name(out: &mut Vec<u8>, file: &str) {
        let mut padded = [0u8; FILE_NAME_LEN];
        padded[..file.len()].copy_from_slice(file.as_bytes());
        out.extend_from_slice(&padded);
    }

    pub fn finish(out: &mut Vec<u8>, start: usize) {
        out.resize(start + ENTRY_LEN, 0);
    }
}

/// Offsets of the pointers the loader patches.
const FADT_DSDT_OFFSET: u32 = 40;
const FADT_X_DSDT_OFFSET: u32 = 140;
const XSDT_ENTRIES_OFFSET: u32 = 36;
const RSDP_XSDT_OFFSET: u32 = 24;
/// Where a table's checksum byte is, and the RSDP's two (first 20 bytes, all 36).
const TABLE_CHECKSUM_OFFSET: u32 = 9;
const RSDP_CHECKSUM_OFFSET: u32 = 8;
const RSDP_V1_LEN: u32 = 20;
const RSDP_EXTENDED_CHECKSUM_OFFSET: u32 = 32;

/// Builds the tables of `config` for a firmware boot (see [`FirmwareTables`]).
pub fn build_firmware_tables(config: &AcpiConfig) -> Result<FirmwareTables, AcpiError> {
    let laid_out = build_from(config, 0)?;
    let mut tables = vec![0u8; laid_out.end() as usize];
    for (offset, bytes) in &laid_out.tables {
        let at = *offset as usize;
        tables[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let rsdp = to_bytes(&Rsdp::new(OEM_ID, laid_out.xsdt_addr()));
    let offset_of = |signature: &[u8; 4]| {
        laid_out
            .tables
            .iter()
            .find(|(_, t)| t.starts_with(signature))
            .map_or((0, 0), |(addr, t)| (*addr as u32, t.len() as u32))
    };
    let (xsdt, xsdt_len) = offset_of(b"XSDT");
    let (fadt, fadt_len) = offset_of(b"FACP");

    let mut commands = Vec::new();
    allocate(&mut commands, FW_CFG_RSDP_FILE, 16, loader::ZONE_FSEG);
    allocate(&mut commands, FW_CFG_TABLES_FILE, 64, loader::ZONE_HIGH);
    let tables_file = FW_CFG_TABLES_FILE;
    add_pointer(
        &mut commands,
        tables_file,
        tables_file,
        fadt + FADT_DSDT_OFFSET,
        4,
    );
    add_pointer(
        &mut commands,
        tables_file,
        tables_file,
        fadt + FADT_X_DSDT_OFFSET,
        8,
    );
    add_checksum(
        &mut commands,
        tables_file,
        fadt + TABLE_CHECKSUM_OFFSET,
        fadt,
        fadt_len,
    );
    for entry in 0..(xsdt_len - XSDT_ENTRIES_OFFSET) / 8 {
        let at = xsdt + XSDT_ENTRIES_OFFSET + entry * 8;
        add_pointer(&mut commands, tables_file, tables_file, at, 8);
    }
    add_checksum(
        &mut commands,
        tables_file,
        xsdt + TABLE_CHECKSUM_OFFSET,
        xsdt,
        xsdt_len,
    );
    add_pointer(
        &mut commands,
        FW_CFG_RSDP_FILE,
        tables_file,
        RSDP_XSDT_OFFSET,
        8,
    );
    add_checksum(
        &mut commands,
        FW_CFG_RSDP_FILE,
        RSDP_CHECKSUM_OFFSET,
        0,
        RSDP_V1_LEN,
    );
    let rsdp_len = rsdp.len() as u32;
    add_checksum(
        &mut commands,
        FW_CFG_RSDP_FILE,
        RSDP_EXTENDED_CHECKSUM_OFFSET,
        0,
        rsdp_len,
    );
    Ok(FirmwareTables {
        rsdp,
        tables,
        loader: commands,
    })
}

fn allocate(out: &mut Vec<u8>, file: &str, align: u32, zone: u8) {
    let start = out.len();
    out.extend_from_slice(&loader::ALLOCATE.to_le_bytes());
    loader::name(out, file);
    out.extend_from_slice(&align.to_le_bytes());
    out.push(zone);
    loader::finish(out, start);
}

fn add_pointer(out: &mut Vec<u8>, dest: &str, src: &str, offset: u32, size: u8) {
    let start = out.len();
    out.extend_from_slice(&loader::ADD_POINTER.to_le_bytes());
    loader::name(out, dest);
    loader::name(out, src);
    out.extend_from_slice(&offset.to_le_bytes());
    out.push(size);
    loader::finish(out, start);
}

fn add_checksum(out: &mut Vec<u8>, file: &str, offset: u32, start_at: u32, len: u32) {
    let start = out.len();
    out.extend_from_slice(&loader::ADD_CHECKSUM.to_le_bytes());
    loader::name(out, file);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&start_at.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    loader::finish(out, start);
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
    let mut bytes = to_bytes(&fadt.finalize());
    // The 32-bit DSDT pointer too, as QEMU writes both: SeaBIOS finds the DSDT only there.
    // Tables live below 4 GiB, so the two agree.
    let dsdt32 = u32::try_from(dsdt_addr).unwrap_or(0);
    let at = FADT_DSDT_OFFSET as usize;
    bytes[at..at + 4].copy_from_slice(&dsdt32.to_le_bytes());
    let sum = bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    bytes[TABLE_CHECKSUM_OFFSET as usize] = bytes[TABLE_CHECKSUM_OFFSET as usize].wrapping_sub(sum);
    bytes
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

    /// Runs the loader's commands as SeaBIOS does, with the files placed at `rsdp_at` and
    /// `tables_at`; returns the patched files.
    fn run_loader(t: &FirmwareTables, rsdp_at: u64, tables_at: u64) -> (Vec<u8>, Vec<u8>) {
        let (mut rsdp, mut tables) = (t.rsdp.clone(), t.tables.clone());
        let name = |raw: &[u8]| {
            let end = raw.iter().position(|b| *b == 0).unwrap();
            String::from_utf8(raw[..end].to_vec()).unwrap()
        };
        let word = |raw: &[u8]| u32::from_le_bytes(raw[..4].try_into().unwrap());
        assert_eq!(t.loader.len() % 128, 0);
        for entry in t.loader.chunks(128) {
            match word(entry) {
                1 => {
                    let file = name(&entry[4..60]);
                    let zone = entry[64];
                    match file.as_str() {
                        FW_CFG_RSDP_FILE => assert_eq!(zone, 2, "the RSDP goes in the F segment"),
                        FW_CFG_TABLES_FILE => assert_eq!(zone, 1),
                        other => panic!("allocates {other}"),
                    }
                }
                2 => {
                    let (dest, src) = (name(&entry[4..60]), name(&entry[60..116]));
                    assert_eq!(src, FW_CFG_TABLES_FILE);
                    let offset = word(&entry[116..]) as usize;
                    let size = entry[120] as usize;
                    let file = if dest == FW_CFG_RSDP_FILE {
                        &mut rsdp
                    } else {
                        &mut tables
                    };
                    let mut value = [0u8; 8];
                    value[..size].copy_from_slice(&file[offset..offset + size]);
                    let patched = u64::from_le_bytes(value) + tables_at;
                    file[offset..offset + size].copy_from_slice(&patched.to_le_bytes()[..size]);
                }
                3 => {
                    let file_name = name(&entry[4..60]);
                    let file = if file_name == FW_CFG_RSDP_FILE {
                        &mut rsdp
                    } else {
                        &mut tables
                    };
                    let (at, start, len) = (
                        word(&entry[60..]) as usize,
                        word(&entry[64..]) as usize,
                        word(&entry[68..]) as usize,
                    );
                    let s = sum(&file[start..start + len]);
                    file[at] = file[at].wrapping_sub(s);
                }
                other => panic!("command {other}"),
            }
        }
        let _ = rsdp_at;
        (rsdp, tables)
    }

    #[test]
    fn firmware_tables_link_and_checksum_wherever_the_firmware_puts_them() {
        let config = AcpiConfig {
            vcpus: 2,
            virtio_devices: vec![VirtioMmioDevice {
                base: 0xd000_0000,
                len: 0x1000,
                irq: 16,
            }],
            power_button_gsi: Some(23),
        };
        let t = build_firmware_tables(&config).unwrap();
        let tables_at = 0x7ff_0000;
        let (rsdp, tables) = run_loader(&t, 0xf_5a00, tables_at);
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
        let at = |addr: u64| -> &[u8] {
            let offset = (addr - tables_at) as usize;
            let len = u32::from_le_bytes(tables[offset + 4..offset + 8].try_into().unwrap());
            &tables[offset..offset + len as usize]
        };
        let xsdt = at(u64::from_le_bytes(rsdp[24..32].try_into().unwrap()));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(xsdt), 0);
        let fadt = at(u64::from_le_bytes(xsdt[36..44].try_into().unwrap()));
        assert_eq!(&fadt[..4], b"FACP");
        assert_eq!(sum(fadt), 0);
        assert_eq!(
            &at(u64::from_le_bytes(xsdt[44..52].try_into().unwrap()))[..4],
            b"APIC"
        );
        let dsdt32 = u32::from_le_bytes(fadt[40..44].try_into().unwrap());
        let dsdt64 = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
        assert_eq!(u64::from(dsdt32), dsdt64);
        let dsdt = at(dsdt64);
        assert_eq!(&dsdt[..4], b"DSDT");
        assert_eq!(sum(dsdt), 0);
        assert!(contains(dsdt, b"LNRO0005"));
    }
}
