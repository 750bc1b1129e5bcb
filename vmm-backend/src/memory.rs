//! Guest RAM: one memfd holds all of it, mapped into this process as vm-memory regions.
//!
//! A memfd rather than anonymous memory so the same pages can later be handed to another process
//! (a vhost-user device, a snapshot writer) with SCM_RIGHTS. RAM above the 32-bit MMIO gap is a
//! second region backed by the same memfd at the following file offset, so the file stays one
//! contiguous image of guest RAM in guest-physical order.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Guest-physical start of the hole below 4 GiB kept free of RAM for device MMIO windows
/// (virtio-mmio, later a PCI hole and the LAPIC/IOAPIC pages).
pub const MMIO_GAP_START: u64 = 0xC000_0000;
/// Guest-physical end (exclusive) of the MMIO hole: RAM resumes at 4 GiB.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;

/// The smallest RAM a VM may have: the boot structures live in the first 1 MiB.
pub const MIN_RAM_SIZE: u64 = 2 << 20;

/// How much RAM from address 0 [`populate_low_ram`] allocates before a firmware boot: where boot
/// loaders put a kernel and its initramfs and where the kernel decompresses itself.
pub const POPULATED_LOW_RAM: u64 = 128 << 20;

/// Errors while creating guest RAM.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum MemoryError {
    /// guest RAM size {0:#x} is not a multiple of the 4 KiB page size or is below the minimum of 2 MiB
    BadSize(u64),
    /// memfd_create for guest RAM failed: {0}
    CreateMemfd(#[source] std::io::Error),
    /// mapping anonymous memory for guest RAM failed: {0}
    Anonymous(#[source] std::io::Error),
    /// sizing the guest RAM memfd to {size:#x} bytes failed: {source}
    SizeMemfd {
        /// The requested size.
        size: u64,
        /// Why ftruncate failed.
        #[source]
        source: std::io::Error,
    },
    /// mapping guest RAM into the VMM failed: {0}
    Map(#[source] vm_memory::mmap::FromRangesError),
}

/// One contiguous run of guest RAM: where it starts in the guest and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamRange {
    /// Guest-physical start address.
    pub start: GuestAddress,
    /// Length in bytes.
    pub len: u64,
}

/// Where `size` bytes of RAM go in guest-physical space: from 0 up to the MMIO hole, the rest
/// from 4 GiB upwards.
pub fn ram_layout(size: u64) -> Vec<RamRange> {
    let low = size.min(MMIO_GAP_START);
    let mut ranges = vec![RamRange {
        start: GuestAddress(0),
        len: low,
    }];
    if size > low {
        ranges.push(RamRange {
            start: GuestAddress(MMIO_GAP_END),
            len: size - low,
        });
    }
    ranges
}

/// Creates `size` bytes of zeroed guest RAM on a fresh memfd, laid out by [`ram_layout`].
///
/// Each region keeps its `FileOffset` (the memfd and where in it the region starts), so the file
/// can be found again through `GuestMemoryRegion::file_offset`.
pub fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    if size < MIN_RAM_SIZE || size & 0xfff != 0 {
        return Err(MemoryError::BadSize(size));
    }
    let file = create_memfd("berth-guest-ram")?;
    file.set_len(size)
        .map_err(|source| MemoryError::SizeMemfd { size, source })?;

    let mut file_offset = 0u64;
    let mut ranges = Vec::new();
    for range in ram_layout(size) {
        let len = usize::try_from(range.len).map_err(|_| MemoryError::BadSize(size))?;
        // Each region holds its own handle to the one memfd.
        let file = file.try_clone().map_err(MemoryError::CreateMemfd)?;
        ranges.push((range.start, len, Some(FileOffset::new(file, file_offset))));
        file_offset += range.len;
    }
    GuestMemoryMmap::from_ranges_with_files(ranges).map_err(MemoryError::Map)
}

/// Creates `size` bytes of guest RAM as private anonymous memory that Linux may back with
/// transparent huge pages: each region's host mapping starts on a 2 MiB boundary, like its
/// guest-physical start (0 and 4 GiB), and is advised MADV_HUGEPAGE.
///
/// Why: with 4 KiB host pages every first touch of a guest page is one nested-paging fault
/// (very dear under nested virtualisation); with aligned 2 MiB pages KVM maps 512 at once. The
/// memfd of [`create_guest_memory`] cannot have huge pages unless the host's
/// `shmem_enabled` allows it (Debian: `never`), so this is the choice until a device process
/// needs the RAM shared.
///
/// The mappings are never unmapped: a device thread may still hold the memory when the VM is
/// dropped, and `berth-vmm` is one process per VM, so they go when the process does.
pub fn create_anonymous_guest_memory(size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    const HUGE_PAGE: usize = 2 << 20;
    if size < MIN_RAM_SIZE || size & 0xfff != 0 {
        return Err(MemoryError::BadSize(size));
    }
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let mut regions = Vec::new();
    for range in ram_layout(size) {
        let len = usize::try_from(range.len).map_err(|_| MemoryError::BadSize(size))?;
        let reserve = len
            .checked_add(HUGE_PAGE)
            .ok_or(MemoryError::BadSize(size))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks; nothing else is
        // affected. The result is checked before use.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), reserve, prot, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(MemoryError::Anonymous(std::io::Error::last_os_error()));
        }
        let start = base as usize;
        let aligned = (start + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
        let head = aligned - start;
        let tail = reserve - head - len;
        // SAFETY: both ranges lie inside the mapping just made and outside the part kept; an
        // unmapping failure only leaves unused address space behind.
        unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
            // Advice only: without THP on the host the RAM works the same with small pages.
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }

        // SAFETY: [aligned, aligned + len) is a live private anonymous mapping made above with
        // exactly these protection and flags, and it is never unmapped (see above).
        let region = unsafe { MmapRegion::build_raw(aligned as *mut u8, len, prot, flags) }
            .map_err(|e| MemoryError::Map(e.into()))?;
        let region = GuestRegionMmap::new(region, range.start).ok_or(MemoryError::Map(
            vm_memory::mmap::FromRangesError::InvalidGuestRegion,
        ))?;
        regions.push(region);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| MemoryError::Map(e.into()))
}

/// Allocates the first [`POPULATED_LOW_RAM`] bytes of guest RAM now (huge pages where the RAM
/// is advised for them) rather than as the guest first touches them.
///
/// Why, for a boot through firmware: Linux maps a read of untouched anonymous memory to its
/// shared huge zero page, and the first write there splits it into small pages for good.
/// Linux's decompressor reads memory nobody wrote before writing it (its backward copy to the
/// end of its buffer), and behind a boot loader that memory is untouched (a direct boot writes
/// the kernel there itself): 16 to 64 MiB of guest RAM ended up on 4 KiB pages, 24,609 nested
/// page faults and 1.2 s of a 45 s firmware boot in the lab (the same under QEMU), and a guest
/// kernel image on small pages for the VM's whole life. Advice only: a host kernel older than
/// 5.14 refuses it, and the RAM is then faulted in as the guest touches it.
pub fn populate_low_ram(memory: &GuestMemoryMmap) {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    for region in memory.iter() {
        let start = region.start_addr().0;
        if start >= POPULATED_LOW_RAM {
            continue;
        }
        let len = (POPULATED_LOW_RAM - start).min(region.len());
        // SAFETY: [as_ptr, as_ptr + len) lies in the region's live mapping; populating for
        // writing allocates the pages the RAM already reads as, and changes no byte in it.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast::<libc::c_void>(),
                len as usize,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc != 0 {
            log::debug!(
                "populating low guest RAM: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The memfd behind a region of guest memory created by [`create_guest_memory`].
pub fn backing_file(region: &GuestRegionMmap) -> Option<&File> {
    use vm_memory::GuestMemoryRegion;
    region.file_offset().map(FileOffset::file)
}

fn create_memfd(name: &str) -> Result<File, MemoryError> {
    let name =
        CString::new(name).map_err(|e| MemoryError::CreateMemfd(std::io::Error::other(e)))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the flags are
    // plain constants. The return value is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemoryError::CreateMemfd(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create just returned this descriptor to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn small_ram_is_one_region_from_zero() {
        assert_eq!(
            ram_layout(64 << 20),
            vec![RamRange {
                start: GuestAddress(0),
                len: 64 << 20
            }]
        );
    }

    #[test]
    fn large_ram_skips_the_mmio_gap() {
        let layout = ram_layout(4 << 30);
        assert_eq!(layout.len(), 2);
        assert_eq!(layout[0].len, MMIO_GAP_START);
        assert_eq!(layout[1].start, GuestAddress(MMIO_GAP_END));
        assert_eq!(layout[1].len, (4 << 30) - MMIO_GAP_START);
    }

    #[test]
    fn rejects_odd_or_tiny_sizes() {
        assert!(matches!(
            create_guest_memory(4096),
            Err(MemoryError::BadSize(4096))
        ));
        assert!(matches!(
            create_guest_memory((4 << 20) + 1),
            Err(MemoryError::BadSize(_))
        ));
    }

    #[test]
    fn ram_above_the_hole_continues_the_memfd() {
        // 3 GiB + 8 MiB: the last 8 MiB go above 4 GiB. Sparse memfd + MAP_NORESERVE: only the
        // pages touched here are ever allocated.
        let mem = create_guest_memory(MMIO_GAP_START + (8 << 20)).unwrap();
        assert_eq!(mem.num_regions(), 2);
        mem.write_slice(b"high", GuestAddress(MMIO_GAP_END + 0x10))
            .unwrap();
        // No RAM in the hole.
        assert!(mem.write_slice(b"x", GuestAddress(MMIO_GAP_START)).is_err());

        let high = mem.iter().nth(1).unwrap();
        let file = backing_file(high).unwrap();
        let mut buf = [0u8; 4];
        // File offset: right after the 3 GiB of low RAM.
        file.read_exact_at(&mut buf, MMIO_GAP_START + 0x10).unwrap();
        assert_eq!(&buf, b"high");
    }

    #[test]
    fn anonymous_ram_is_aligned_for_huge_pages_and_skips_the_hole() {
        let mem = create_anonymous_guest_memory(MMIO_GAP_START + (4 << 20)).unwrap();
        assert_eq!(mem.num_regions(), 2);
        for region in mem.iter() {
            assert_eq!(
                region.as_ptr() as usize % (2 << 20),
                0,
                "2 MiB-aligned host mapping"
            );
            assert!(backing_file(region).is_none());
        }
        mem.write_slice(b"low", GuestAddress(0x1000)).unwrap();
        mem.write_slice(b"high", GuestAddress(MMIO_GAP_END + 0x10))
            .unwrap();
        assert!(mem.write_slice(b"x", GuestAddress(MMIO_GAP_START)).is_err());
        let mut buf = [0u8; 4];
        mem.read_slice(&mut buf, GuestAddress(MMIO_GAP_END + 0x10))
            .unwrap();
        assert_eq!(&buf, b"high");
        assert!(matches!(
            create_anonymous_guest_memory(4097),
            Err(MemoryError::BadSize(4097))
        ));
    }

    #[test]
    fn low_ram_is_populated_and_the_rest_is_not() {
        let size = 2 * POPULATED_LOW_RAM as usize;
        let mem = create_anonymous_guest_memory(size as u64).unwrap();
        mem.write_slice(b"kept", GuestAddress(0x1000)).unwrap();
        populate_low_ram(&mem);
        let region = mem.iter().next().unwrap();
        let pages = size / 4096;
        let mut resident = vec![0u8; pages];
        // SAFETY: the range is the region's live mapping; `resident` has one byte per page.
        let rc = unsafe {
            libc::mincore(
                region.as_ptr().cast::<libc::c_void>(),
                size,
                resident.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let low = pages / 2;
        assert!(
            resident[..low].iter().all(|p| p & 1 == 1),
            "low RAM in place"
        );
        assert!(
            resident[low..].iter().all(|p| p & 1 == 0),
            "the rest untouched"
        );
        let mut buf = [0u8; 4];
        mem.read_slice(&mut buf, GuestAddress(0x1000)).unwrap();
        assert_eq!(&buf, b"kept", "populating changed no byte");
    }

    #[test]
    fn guest_writes_land_in_the_memfd() {
        let mem = create_guest_memory(4 << 20).unwrap();
        assert_eq!(mem.num_regions(), 1);
        mem.write_slice(b"berth", GuestAddress(0x1234)).unwrap();

        // Reading through the file shows the same bytes: the memory is the memfd, not a copy.
        let region = mem.iter().next().unwrap();
        let file = backing_file(region).unwrap();
        let mut buf = [0u8; 5];
        file.read_exact_at(&mut buf, 0x1234).unwrap();
        assert_eq!(&buf, b"berth");
        assert_eq!(file.metadata().unwrap().len(), 4 << 20);
    }
}
