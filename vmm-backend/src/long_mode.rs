//! Entering a guest directly in 64-bit long mode, skipping real and protected mode: the VMM
//! writes a GDT and identity-mapped page tables into guest RAM and loads the control registers
//! and segments itself through KVM_SET_SREGS.
//!
//! Why: firmware-less boot (flat probes now, Linux's 64-bit entry later) needs no mode switching
//! code in the guest, and on an emulated CPU every instruction saved counts.

use kvm_bindings::{kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest-physical address of the GDT.
pub const GDT_ADDR: u64 = 0x500;
/// Guest-physical address of the top-level page table (PML4), 4 KiB aligned.
pub const PML4_ADDR: u64 = 0x9000;
/// Guest-physical address of the one page-directory-pointer table.
pub const PDPT_ADDR: u64 = 0xA000;
/// Guest-physical address of the first of [`IDENTITY_MAP_GIB`] page directories (one per GiB).
pub const PD_ADDR: u64 = 0xB000;
/// How much of guest-physical space the boot page tables identity-map, in GiB: all of the 32-bit
/// space, so the MMIO hole below 4 GiB is reachable without the guest touching page tables.
pub const IDENTITY_MAP_GIB: u64 = 4;
/// Guest-physical end (exclusive) of everything this module writes.
pub const BOOT_TABLES_END: u64 = PD_ADDR + IDENTITY_MAP_GIB * 0x1000;

/// Code segment selector loaded into CS (GDT entry 1).
pub const CODE64_SELECTOR: u16 = 0x08;
/// Data segment selector loaded into DS, ES, FS, GS, SS (GDT entry 2).
pub const DATA_SELECTOR: u16 = 0x10;
/// Task state segment selector loaded into TR (GDT entry 3). VM entry on Intel insists on a
/// usable TR even though nothing here switches tasks.
pub const TSS_SELECTOR: u16 = 0x18;

// Control register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

// Page table entry bits.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PDE_HUGE: u64 = 1 << 7;

/// One GDT entry with the usual split of base, limit and flags, built from the fields KVM's
/// `kvm_segment` also uses, so the table in memory and the hidden segment state agree.
fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << 32)
        | ((u64::from(flags) & 0xf0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << 32)
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

/// Flags of the entries (type in bits 0-3, S, DPL, P, then AVL, L, D/B, G in bits 12-15).
const CODE64_FLAGS: u16 = 0xa09b; // present, ring 0, execute/read accessed, L=1, G=1
const DATA_FLAGS: u16 = 0xc093; // present, ring 0, read/write accessed, D/B=1, G=1
const TSS_FLAGS: u16 = 0x008b; // present, 64-bit busy TSS

/// The GDT: null, 64-bit code, data, TSS.
fn gdt() -> [u64; 4] {
    [
        0,
        gdt_entry(CODE64_FLAGS, 0, 0xfffff),
        gdt_entry(DATA_FLAGS, 0, 0xfffff),
        gdt_entry(TSS_FLAGS, 0, 0xfffff),
    ]
}

/// The hidden segment-register state matching GDT entry `selector >> 3`.
fn segment(selector: u16, flags: u16) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: (flags & 0xf) as u8,
        present: ((flags >> 7) & 1) as u8,
        dpl: ((flags >> 5) & 3) as u8,
        db: ((flags >> 14) & 1) as u8,
        s: ((flags >> 4) & 1) as u8,
        l: ((flags >> 13) & 1) as u8,
        g: ((flags >> 15) & 1) as u8,
        avl: ((flags >> 12) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Writes the GDT and the identity-mapping page tables into guest RAM.
///
/// Fails only if guest RAM does not cover `[GDT_ADDR, BOOT_TABLES_END)`, which RAM of at least
/// [`crate::memory::MIN_RAM_SIZE`] always does.
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), vm_memory::GuestMemoryError> {
    for (i, entry) in gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))?;
    }

    mem.write_obj(
        PDPT_ADDR | PTE_PRESENT | PTE_WRITABLE,
        GuestAddress(PML4_ADDR),
    )?;
    for gib in 0..IDENTITY_MAP_GIB {
        let pd = PD_ADDR + gib * 0x1000;
        mem.write_obj(
            pd | PTE_PRESENT | PTE_WRITABLE,
            GuestAddress(PDPT_ADDR + gib * 8),
        )?;
        // 2 MiB pages: 1 GiB pages would need a CPUID feature the emulated CPU may not offer.
        for i in 0..512u64 {
            let phys = (gib << 30) | (i << 21);
            mem.write_obj(
                phys | PTE_PRESENT | PTE_WRITABLE | PDE_HUGE,
                GuestAddress(pd + i * 8),
            )?;
        }
    }
    Ok(())
}

/// Turns `sregs` (as read from a fresh vCPU) into 64-bit long mode with paging on the tables
/// [`write_boot_tables`] wrote.
pub fn set_long_mode(sregs: &mut kvm_sregs) {
    let code = segment(CODE64_SELECTOR, CODE64_FLAGS);
    let data = segment(DATA_SELECTOR, DATA_FLAGS);
    let mut tss = segment(TSS_SELECTOR, TSS_FLAGS);
    tss.limit = 0xfffff;
    tss.g = 0;

    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt()) - 1) as u16;
    // No IDT: the guest installs its own before enabling interrupts; until then any exception
    // triple-faults, which the exit loop reports as a crash.
    sregs.idt.base = 0;
    sregs.idt.limit = 0;

    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;

    sregs.cr3 = PML4_ADDR;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_PG | CR0_ET;
    sregs.efer |= EFER_LME | EFER_LMA;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    #[test]
    fn gdt_entries_are_the_well_known_values() {
        // The values every x86-64 boot path uses; a typo in the bit shuffling shows here.
        assert_eq!(gdt()[1], 0x00af_9b00_0000_ffff);
        assert_eq!(gdt()[2], 0x00cf_9300_0000_ffff);
        // TSS: byte granular (G=0), as the hidden TR state set below says.
        assert_eq!(gdt()[3], 0x000f_8b00_0000_ffff);
    }

    #[test]
    fn page_tables_identity_map_four_gib() {
        let mem = create_guest_memory(2 << 20).unwrap();
        write_boot_tables(&mem).unwrap();

        // Walk the tables for a few addresses, like the MMU would.
        for addr in [0u64, 0x10_0000, 0xd000_0000, 0xffe0_0000] {
            let pml4e: u64 = mem
                .read_obj(GuestAddress(PML4_ADDR + ((addr >> 39) & 0x1ff) * 8))
                .unwrap();
            assert_eq!(pml4e & 1, 1);
            let pdpte: u64 = mem
                .read_obj(GuestAddress((pml4e & !0xfff) + ((addr >> 30) & 0x1ff) * 8))
                .unwrap();
            assert_eq!(pdpte & 1, 1);
            let pde: u64 = mem
                .read_obj(GuestAddress((pdpte & !0xfff) + ((addr >> 21) & 0x1ff) * 8))
                .unwrap();
            assert_eq!(pde & (PTE_PRESENT | PDE_HUGE), PTE_PRESENT | PDE_HUGE);
            assert_eq!(pde & !0x1f_ffff & !(1 << 63), addr & !0x1f_ffff);
        }
    }

    #[test]
    fn long_mode_sregs_are_consistent() {
        let mut sregs = kvm_sregs::default();
        set_long_mode(&mut sregs);
        assert_eq!(sregs.cs.l, 1);
        assert_eq!(sregs.cs.db, 0, "L and D/B together are reserved");
        assert_eq!(sregs.cs.type_, 0xb);
        assert_eq!(sregs.ss.type_, 0x3);
        assert_eq!(sregs.tr.type_, 0xb);
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_ne!(sregs.cr0 & CR0_PG, 0);
        assert_ne!(sregs.cr4 & CR4_PAE, 0);
        assert_eq!(sregs.cr3, PML4_ADDR);
        assert_eq!(sregs.gdt.limit, 31);
    }
}
