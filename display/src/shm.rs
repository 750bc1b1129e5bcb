//! Shared memory, the one place Berth makes and maps it: a memfd of a given size and shared
//! mappings of it. The framebuffer carries guest frames from berth-vmm to the windows through
//! it; the window's console surface hands scaled frames to the X server through it.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// A new memfd called `name`, `len` bytes long, closed on exec; `sealable` allows seals
/// (`F_ADD_SEALS`) later.
pub fn memfd(name: &CStr, len: usize, sealable: bool) -> std::io::Result<OwnedFd> {
    let mut flags = libc::MFD_CLOEXEC;
    if sealable {
        flags |= libc::MFD_ALLOW_SEALING;
    }
    // SAFETY: a NUL-terminated name and valid flags; the result is checked.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_len(fd.as_fd(), len)?;
    Ok(fd)
}

/// Makes the file `len` bytes long.
pub fn set_len(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: ftruncate on a descriptor the caller holds; it only changes the file's size.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A shared mapping of the first `len` bytes of a file, unmapped when dropped. What may be
/// made of its bytes is the owner's business: another process may write or read them at any
/// time, so the framebuffer touches them only through atomics.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; moving it to another thread
// moves that ownership with it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, read-write when `writable`, else read-only.
    pub fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> std::io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of `len` bytes of a file the caller holds open; the
        // kernel picks the address, so no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte, page-aligned.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; nothing refers to it afterwards.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_mapping_writes_another_reads() {
        let fd = memfd(c"berth-shm-test", 4096, false).unwrap();
        let writer = Mapping::new(fd.as_fd(), 4096, true).unwrap();
        let reader = Mapping::new(fd.as_fd(), 4096, false).unwrap();
        // SAFETY: both map the same 4096 bytes of a file only this test uses.
        unsafe {
            writer.ptr().as_ptr().add(100).write(42);
            assert_eq!(reader.ptr().as_ptr().add(100).read(), 42);
        }
        assert_eq!(reader.len(), 4096);
        assert!(memfd(c"berth-shm-test", usize::MAX, false).is_err());
    }
}
