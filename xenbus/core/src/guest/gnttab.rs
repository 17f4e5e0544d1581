//! Grant table v1: frames mapped with `XENMEM_add_to_physmap`, growth on demand
//! up to the domain's maximum, a free-list allocator with a reserved pool (for
//! the crash-dump path), grant and revoke with the ordering Xen relies on.

use super::alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::Error;
use super::abi;
use super::cpu::Cpu;
use super::hypercall::Xen;
use super::shared::Shared;
use xenbus_interface::api::PAGE_SIZE;

/// `grant_entry_v1`s per frame.
pub const ENTRIES_PER_FRAME: u32 = {
    const { assert!(PAGE_SIZE / 8 <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation, reason = "asserted to fit above")]
    let entries = (PAGE_SIZE / 8) as u32;
    entries
};
/// References the toolstack owns (`GNTTAB_NR_RESERVED_ENTRIES`: console, xenstore).
pub const TOOLSTACK_RESERVED: u32 = 8;

use xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING};

/// Why a grant call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantFailure {
    /// Every reference is in use and the table cannot grow.
    Exhausted,
    /// The remote domain maps or copies the page: not revoked.
    InUse,
    /// Not a reference this table handed out (or not in the expected pool).
    Invalid,
    /// The frame does not fit a v1 entry (32-bit frame numbers).
    BadFrame,
    /// Growing the table failed.
    Grow(Error),
}

/// The grant table.
#[derive(Debug)]
pub struct GrantTable<C> {
    xen: Xen<C>,
    /// Where frames are mapped: `area_gpfn + i` for frame `i`, seen at `area`.
    area: Shared<C>,
    area_gpfn: u64,
    frames: u32,
    max_frames: u32,
    free: Vec<u32>,
    /// State per reference: granted by `grant`, or held in the reserved pool.
    granted: Vec<bool>,
    reserved: Vec<bool>,
}

impl<C: Cpu + Clone> GrantTable<C> {
    /// Maps the frames Xen already has for us (at least one) into `area`
    /// (guest frames `area_gpfn..`, the platform PCI device's BAR on Windows);
    /// the table can grow to `min(max_grant_frames, area pages)`.
    pub fn new(xen: Xen<C>, area: Shared<C>, area_gpfn: u64) -> Result<Self, Error> {
        let (current, max) = xen.grant_query_size()?;
        let max_frames = max.min(u32::try_from(area.pages()).unwrap_or(u32::MAX));
        if max_frames == 0 {
            return Err(Error::OutOfBounds);
        }
        let mut table = Self {
            xen,
            area,
            area_gpfn,
            frames: 0,
            max_frames,
            free: Vec::new(),
            granted: Vec::new(),
            reserved: Vec::new(),
        };
        for _ in 0..current.clamp(1, max_frames) {
            table.grow()?;
        }
        Ok(table)
    }

    /// Frames mapped now.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The most frames this table may grow to.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Free references now (without growing).
    pub fn free_now(&self) -> usize {
        self.free.len()
    }

    /// References that could still be handed out (growing included).
    pub fn available(&self) -> usize {
        let growable = (self.max_frames - self.frames) as usize * ENTRIES_PER_FRAME as usize;
        self.free.len() + growable
    }

    /// Maps one more frame and adds its references to the free list.
    pub fn grow(&mut self) -> Result<(), Error> {
        if self.frames >= self.max_frames {
            return Err(Error::OutOfBounds);
        }
        let index = self.frames;
        self.xen.add_to_physmap(
            abi::XENMAPSPACE_GRANT_TABLE,
            u64::from(index),
            self.area_gpfn + u64::from(index),
        )?;
        self.frames += 1;
        let first = index * ENTRIES_PER_FRAME;
        let end = first + ENTRIES_PER_FRAME;
        self.granted.resize(end as usize, false);
        self.reserved.resize(end as usize, false);
        // Hand out low references first (pop takes from the end).
        for r in (first.max(TOOLSTACK_RESERVED)..end).rev() {
            self.free.push(r);
        }
        Ok(())
    }

    /// Re-maps every frame after resume (the new domain has none mapped yet);
    /// entries keep their content because the frames are ours.
    pub fn remap(&mut self) -> Result<(), Error> {
        for index in 0..self.frames {
            self.xen.add_to_physmap(
                abi::XENMAPSPACE_GRANT_TABLE,
                u64::from(index),
                self.area_gpfn + u64::from(index),
            )?;
        }
        Ok(())
    }

    fn take(&mut self) -> Result<u32, GrantFailure> {
        if self.free.is_empty() {
            self.grow().map_err(|e| {
                if matches!(e, Error::OutOfBounds) {
                    GrantFailure::Exhausted
                } else {
                    GrantFailure::Grow(e)
                }
            })?;
        }
        self.free.pop().ok_or(GrantFailure::Exhausted)
    }

    fn entry_words(
        &self,
        r: u32,
    ) -> Result<
        (
            &core::sync::atomic::AtomicU16,
            &core::sync::atomic::AtomicU16,
            &core::sync::atomic::AtomicU32,
        ),
        GrantFailure,
    > {
        let off = r as usize * 8;
        let flags = self.area.u16(off).ok_or(GrantFailure::Invalid)?;
        let domid = self.area.u16(off + 2).ok_or(GrantFailure::Invalid)?;
        let frame = self.area.u32(off + 4).ok_or(GrantFailure::Invalid)?;
        Ok((flags, domid, frame))
    }

    fn write_entry(
        &self,
        r: u32,
        domid: u16,
        pfn: u64,
        readonly: bool,
    ) -> Result<(), GrantFailure> {
        let frame = u32::try_from(pfn).map_err(|_| GrantFailure::BadFrame)?;
        let (flags, dom, fr) = self.entry_words(r)?;
        fr.store(frame, Ordering::Relaxed);
        dom.store(domid, Ordering::Relaxed);
        // Xen must see domid and frame before the entry becomes valid.
        fence(Ordering::Release);
        flags.store(
            GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 },
            Ordering::Release,
        );
        Ok(())
    }

    /// Ends access to `r` unless the remote domain still reads or writes it.
    fn end_access(&self, r: u32) -> Result<(), GrantFailure> {
        let (flags, _, _) = self.entry_words(r)?;
        let mut f = flags.load(Ordering::SeqCst);
        loop {
            if f & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantFailure::InUse);
            }
            // A compare-exchange, so a map that Xen starts between our read and
            // our write makes us re-check instead of pulling the page away.
            match flags.compare_exchange(f, 0, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(seen) => f = seen,
            }
        }
        // Later reuse of the page must not move above the end of access.
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Grants `domid` access to guest frame `pfn`; grows the table if needed.
    pub fn grant(&mut self, domid: u16, pfn: u64, readonly: bool) -> Result<u32, GrantFailure> {
        let r = self.take()?;
        if let Err(e) = self.write_entry(r, domid, pfn, readonly) {
            self.free.push(r);
            return Err(e);
        }
        if let Some(g) = self.granted.get_mut(r as usize) {
            *g = true;
        }
        Ok(r)
    }

    /// Revokes `r` and frees it. [`GrantFailure::InUse`] while the remote side
    /// maps the page: the grant stays and the page must not be reused.
    pub fn revoke(&mut self, r: u32) -> Result<(), GrantFailure> {
        if !self.granted.get(r as usize).copied().unwrap_or(false) {
            return Err(GrantFailure::Invalid);
        }
        self.end_access(r)?;
        if let Some(g) = self.granted.get_mut(r as usize) {
            *g = false;
        }
        self.free.push(r);
        Ok(())
    }

    /// Takes `count` references out of the free list into the reserved pool
    /// (XENBUS keeps such a pool so the crash-dump path never allocates).
    pub fn reserve(&mut self, count: usize) -> Result<Vec<u32>, GrantFailure> {
        let mut refs = Vec::with_capacity(count);
        for _ in 0..count {
            match self.take() {
                Ok(r) => {
                    if let Some(x) = self.reserved.get_mut(r as usize) {
                        *x = true;
                    }
                    refs.push(r);
                }
                Err(e) => {
                    for r in refs {
                        self.unreserve_one(r);
                    }
                    return Err(e);
                }
            }
        }
        Ok(refs)
    }

    fn unreserve_one(&mut self, r: u32) {
        if let Some(x) = self.reserved.get_mut(r as usize) {
            *x = false;
        }
        self.free.push(r);
    }

    /// Grants with a reference from the reserved pool (never allocates).
    pub fn grant_reserved(
        &self,
        r: u32,
        domid: u16,
        pfn: u64,
        readonly: bool,
    ) -> Result<(), GrantFailure> {
        if !self.reserved.get(r as usize).copied().unwrap_or(false) {
            return Err(GrantFailure::Invalid);
        }
        self.write_entry(r, domid, pfn, readonly)
    }

    /// Ends access of a reserved reference, which stays in the pool.
    pub fn revoke_reserved(&self, r: u32) -> Result<(), GrantFailure> {
        if !self.reserved.get(r as usize).copied().unwrap_or(false) {
            return Err(GrantFailure::Invalid);
        }
        self.end_access(r)
    }

    /// Gives a reserved reference back to the free list (access must be ended).
    pub fn unreserve(&mut self, r: u32) -> Result<(), GrantFailure> {
        if !self.reserved.get(r as usize).copied().unwrap_or(false) {
            return Err(GrantFailure::Invalid);
        }
        let (flags, _, _) = self.entry_words(r)?;
        if flags.load(Ordering::SeqCst) != 0 {
            return Err(GrantFailure::InUse);
        }
        self.unreserve_one(r);
        Ok(())
    }
}
