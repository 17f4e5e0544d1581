//! Mapping other domains' grants into this process over `/dev/xen/gntdev`: what
//! a backend does with a frontend's grant references. The rig uses it to check
//! from the "remote" side what a core put into granted pages (and to play a
//! backend in tests).
//!
//! `IOCTL_GNTDEV_MAP_GRANT_REF` reserves an `mmap` offset for a list of
//! (domain, reference) pairs; the grants are mapped when that offset is
//! `mmap`ed, and released by `munmap` plus `IOCTL_GNTDEV_UNMAP_GRANT_REF`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use xenbus_interface::api::{DomId, GrantRef, PAGE_SIZE};

use crate::fd;
use crate::shared;
use crate::sys;

/// The device node.
pub const GNTDEV_PATH: &str = "/dev/xen/gntdev";

/// An open `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct GntdevDevice {
    file: File,
}

/// Foreign pages mapped contiguously into this process; unmapped on drop.
#[derive(Debug)]
pub struct ForeignMapping<'dev> {
    dev: &'dev GntdevDevice,
    ptr: NonNull<u8>,
    count: usize,
    index: u64,
}

impl GntdevDevice {
    /// Opens [`GNTDEV_PATH`].
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: fd::open_device(GNTDEV_PATH)?,
        })
    }

    /// Maps `refs` (grants of domain `domid`) read-write, in order, as one
    /// contiguous range.
    pub fn map(&self, domid: DomId, refs: &[GrantRef]) -> io::Result<ForeignMapping<'_>> {
        if refs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no grants to map",
            ));
        }
        let count = u32::try_from(refs.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many grants"))?;
        let len = refs
            .len()
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many grants"))?;
        // Header (16 bytes) then `count` (domid, ref) pairs of 8 bytes: as u64
        // words, one for the header's first half, one for `index`, one per pair.
        let mut buf = vec![0u64; 2 + refs.len()];
        let head = buf.as_mut_ptr().cast::<sys::GntdevMapGrantRefHeader>();
        // SAFETY: `buf` is 8-aligned and at least 24 bytes, room for the header.
        unsafe {
            head.write(sys::GntdevMapGrantRefHeader {
                count,
                pad: 0,
                index: 0,
            });
        }
        for (i, gref) in refs.iter().enumerate() {
            let pair = sys::GntdevGrantRef {
                domid: u32::from(domid.0),
                gref: gref.0,
            };
            let slot = buf
                .as_mut_ptr()
                .wrapping_add(2 + i)
                .cast::<sys::GntdevGrantRef>();
            // SAFETY: pair `i` lives in word `2 + i`, inside `buf`; a pair is 8
            // bytes with alignment 4.
            unsafe { slot.write(pair) };
        }
        // SAFETY: `buf` is a `ioctl_gntdev_map_grant_ref` with `count` refs.
        unsafe { fd::ioctl(self.file.as_fd(), sys::IOCTL_GNTDEV_MAP_GRANT_REF, head) }?;
        // SAFETY: the header is still there, with `index` filled in.
        let index = unsafe { head.read() }.index;
        match fd::mmap_shared(self.file.as_fd(), len, index) {
            Ok(ptr) => Ok(ForeignMapping {
                dev: self,
                ptr,
                count: refs.len(),
                index,
            }),
            Err(e) => {
                let _ = self.unmap_index(index, refs.len());
                Err(e)
            }
        }
    }

    fn unmap_index(&self, index: u64, count: usize) -> io::Result<()> {
        let mut arg = sys::GntdevUnmapGrantRef {
            index,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            pad: 0,
        };
        // SAFETY: `arg` is the `ioctl_gntdev_unmap_grant_ref` the request expects.
        unsafe {
            fd::ioctl(
                self.file.as_fd(),
                sys::IOCTL_GNTDEV_UNMAP_GRANT_REF,
                &raw mut arg,
            )
        }?;
        Ok(())
    }
}

impl ForeignMapping<'_> {
    /// Bytes mapped (`pages * PAGE_SIZE`).
    pub fn len(&self) -> usize {
        self.count * PAGE_SIZE
    }

    /// Never true: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first mapped byte. Accesses must be volatile or atomic: the granting
    /// domain writes the pages concurrently.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Copies bytes out of the mapping, from `offset`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), shared::OutOfBounds> {
        // SAFETY: the mapping is live and `len()` bytes long while `self` exists.
        unsafe { shared::read_volatile(self.ptr, self.len(), offset, out) }
    }

    /// Copies bytes into the mapping, at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), shared::OutOfBounds> {
        // SAFETY: the mapping is live, writable and `len()` bytes long.
        unsafe { shared::write_volatile(self.ptr, self.len(), offset, data) }
    }
}

impl Drop for ForeignMapping<'_> {
    fn drop(&mut self) {
        // SAFETY: the whole mapping made in `map`; nothing can reach it after drop.
        let _ = unsafe { fd::munmap(self.ptr, self.len()) };
        let _ = self.dev.unmap_index(self.index, self.count);
    }
}
