//! A window of memory shared with Xen or a remote domain (shared info, grant
//! frames, event-channel control blocks, rings), accessed only through atomics at
//! bounds-checked offsets.
// The constructor carries the validity contract; the accessors rely on it.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use super::cpu::Cpu;
use crate::guest::Error;
use xenbus_interface::api::{PAGE_SIZE, Pages};

/// A mapped range of shared memory: `len` bytes at virtual address `vaddr`.
///
/// Accessors return `None` for an offset outside the range or misaligned for
/// the width, so a bad port or grant reference can never reach other memory.
#[derive(Clone, Debug)]
pub struct Shared<C> {
    cpu: C,
    vaddr: usize,
    len: usize,
}

impl<C: Cpu + Clone> Shared<C> {
    /// Wraps `len` bytes at `vaddr`.
    ///
    /// # Safety
    /// `vaddr..vaddr + len` must stay mapped for as long as this value or any
    /// clone of it lives, and must be memory shared with Xen or a remote domain
    /// that no Rust reference points into (it is only accessed atomically).
    pub unsafe fn new(cpu: C, vaddr: usize, len: usize) -> Self {
        Self { cpu, vaddr, len }
    }

    /// Views a platform page allocation. The caller keeps `pages` alive (and
    /// does not free it) for as long as the returned window or a clone lives.
    pub(crate) fn of_pages(cpu: C, pages: &Pages) -> Self {
        // SAFETY: `Pages::new`'s contract makes `as_ptr()` valid for `len()`
        // bytes until the pages are freed, and every holder of a window over
        // them keeps the `Pages` (see callers); Rust code reaches the pages
        // only through this window.
        unsafe { Self::new(cpu, pages.as_ptr().as_ptr() as usize, pages.len()) }
    }

    /// The first byte's virtual address.
    pub fn vaddr(&self) -> usize {
        self.vaddr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true for a real mapping.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The processor interface the window was made with.
    pub fn cpu(&self) -> &C {
        &self.cpu
    }

    /// A sub-window of `len` bytes at `offset` (for example one page).
    pub fn window(&self, offset: usize, len: usize) -> Result<Self, Error> {
        let end = offset.checked_add(len).ok_or(Error::OutOfBounds)?;
        if end > self.len {
            return Err(Error::OutOfBounds);
        }
        Ok(Self {
            cpu: self.cpu.clone(),
            vaddr: self.vaddr + offset,
            len,
        })
    }

    /// The address of `size` bytes at `offset`, if inside and aligned.
    fn at(&self, offset: usize, size: usize) -> Option<usize> {
        let end = offset.checked_add(size)?;
        if end > self.len || offset % size != 0 {
            return None;
        }
        // Cannot overflow: `vaddr + len` is a mapped range.
        Some(self.vaddr + offset)
    }

    /// The byte at `offset`.
    pub fn u8(&self, offset: usize) -> Option<&AtomicU8> {
        let addr = self.at(offset, 1)?;
        // SAFETY: `addr` is inside the window, which the constructor's contract
        // keeps mapped and shared while `self` lives.
        Some(unsafe { self.cpu.atomic_u8(addr) })
    }

    /// The aligned 16-bit word at `offset`.
    pub fn u16(&self, offset: usize) -> Option<&AtomicU16> {
        let addr = self.at(offset, 2)?;
        // SAFETY: as in `u8`; `at` checked the alignment.
        Some(unsafe { self.cpu.atomic_u16(addr) })
    }

    /// The aligned 32-bit word at `offset`.
    pub fn u32(&self, offset: usize) -> Option<&AtomicU32> {
        let addr = self.at(offset, 4)?;
        // SAFETY: as in `u8`; `at` checked the alignment.
        Some(unsafe { self.cpu.atomic_u32(addr) })
    }

    /// The aligned 64-bit word at `offset`.
    pub fn u64(&self, offset: usize) -> Option<&AtomicU64> {
        let addr = self.at(offset, 8)?;
        // SAFETY: as in `u8`; `at` checked the alignment.
        Some(unsafe { self.cpu.atomic_u64(addr) })
    }

    /// Number of whole pages in the window.
    pub fn pages(&self) -> usize {
        self.len / PAGE_SIZE
    }
}
