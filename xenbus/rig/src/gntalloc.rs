//! Grantable memory and grant references over `/dev/xen/gntalloc`.
//!
//! gntalloc grants pages when it allocates them: `IOCTL_GNTALLOC_ALLOC_GREF`
//! allocates `count` zeroed pages, grants each to one domain and returns one
//! reference per page plus an `mmap` offset under which the pages map
//! contiguously. So here [`Memory::alloc`] does the allocation *and* the granting
//! (to domain 0, writable), and [`GrantTable::grant`] hands out the reference the
//! page already has.
//!
//! **What a [`Pfn`] is in the rig:** the page's virtual page number in this
//! process (`address >> 12`). It is unique while the page is allocated, the
//! pages of one allocation have consecutive numbers, and the rig can turn it back
//! into an address. Only frames of pages this allocator made can be granted.
//!
//! Differences from a real grant table, all stated in the trait's terms:
//! * [`GrantTable::grant`] only grants to the domain the allocator was opened for
//!   (0 in the rig); other domains and foreign frames give
//!   [`GrantError::BadFrame`]. Grants are always writable (gntalloc fixes that at
//!   allocation; a read-only request gets a writable grant, which only widens
//!   what the backend may do to our own page).
//! * Granting a page that is already granted returns the same reference and
//!   counts it; each grant needs its own [`GrantTable::revoke`].
//! * [`GrantTable::revoke`] marks the reference revoked; gntalloc ends the grant
//!   in Xen when the pages are freed ([`Memory::free`]), and the kernel keeps a
//!   page the remote side still maps until it unmaps it. So revoke never says
//!   [`GrantError::InUse`], and a freed page is never reused while mapped.
//! * Dropping the device leaves live allocations mapped (their [`Pages`] may
//!   still be in use); the kernel frees them when the process exits.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

use xenbus_interface::api::{
    DomId, GrantError, GrantRef, GrantTable, Memory, OutOfMemory, PAGE_SIZE, Pages, Pfn,
};

use crate::fd;
use crate::sys;

/// The device node.
pub const GNTALLOC_PATH: &str = "/dev/xen/gntalloc";
/// gntalloc's module parameter: how many grants all its users may hold.
const LIMIT_PATH: &str = "/sys/module/xen_gntalloc/parameters/limit";
/// gntalloc's default `limit`, used when the parameter cannot be read.
const DEFAULT_LIMIT: usize = 1024;
/// log2 of [`PAGE_SIZE`]: a [`Pfn`] is an address shifted by this.
const PAGE_SHIFT: u32 = 12;

/// An open `/dev/xen/gntalloc`, granting to one domain.
#[derive(Debug)]
pub struct GntallocDevice {
    file: File,
    domid: DomId,
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Live allocations by the [`Pfn`] of their first page.
    allocations: BTreeMap<u64, Allocation>,
    /// Every live page by its [`Pfn`].
    pages: BTreeMap<u64, PageGrant>,
    /// Grant reference -> the page's [`Pfn`].
    by_ref: BTreeMap<u32, u64>,
    /// Pages with at least one active grant.
    granted: usize,
}

#[derive(Debug)]
struct Allocation {
    /// The `mmap` offset gntalloc gave the pages.
    index: u64,
    count: usize,
}

#[derive(Debug)]
struct PageGrant {
    gref: GrantRef,
    /// Active grants handed out for this page (granted minus revoked).
    grants: u32,
}

impl GntallocDevice {
    /// Opens [`GNTALLOC_PATH`] for grants to domain `domid` (0 when the rig's
    /// backends run in dom0).
    pub fn open(domid: DomId) -> io::Result<Self> {
        let limit = std::fs::read_to_string(LIMIT_PATH)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(DEFAULT_LIMIT);
        Ok(Self {
            file: fd::open_device(GNTALLOC_PATH)?,
            domid,
            limit,
            state: Mutex::new(State::default()),
        })
    }

    /// The domain this allocator grants to.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The address of frame `pfn` if it is one of our live pages: what the rig
    /// uses to look at a page a core only knows by number.
    pub fn address_of(&self, pfn: Pfn) -> Option<NonNull<u8>> {
        if !self.lock().pages.contains_key(&pfn.0) {
            return None;
        }
        let addr = usize::try_from(pfn.0.checked_shl(PAGE_SHIFT)?).ok()?;
        // The mapping's provenance was exposed when it was made (`try_alloc`).
        NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(addr))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The maps are updated so that a panic cannot leave them inconsistent
        // in a way that matters more than a leaked page.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `IOCTL_GNTALLOC_ALLOC_GREF` for `count` pages: the mmap offset and the
    /// references.
    fn alloc_grefs(&self, count: usize) -> io::Result<(u64, Vec<GrantRef>)> {
        let too_many = || io::Error::new(io::ErrorKind::InvalidInput, "too many pages");
        let words = sys::gntalloc_alloc_buffer_words(count).ok_or_else(too_many)?;
        let mut buf = vec![0u64; words];
        let header = sys::GntallocAllocGrefHeader {
            domid: self.domid.0,
            flags: sys::GNTALLOC_FLAG_WRITABLE,
            count: u32::try_from(count).map_err(|_| too_many())?,
            index: 0,
        };
        let head = buf.as_mut_ptr().cast::<sys::GntallocAllocGrefHeader>();
        // SAFETY: `buf` is 8-aligned and at least 24 bytes long, so it holds a
        // header (16 bytes, align 8).
        unsafe { head.write(header) };
        // SAFETY: `buf` holds the header followed by room for `count` u32
        // references (`gntalloc_alloc_buffer_words`), which the ioctl fills.
        unsafe { fd::ioctl(self.file.as_fd(), sys::IOCTL_GNTALLOC_ALLOC_GREF, head) }?;
        // SAFETY: the header is still in place, now with `index` filled in.
        let index = unsafe { head.read() }.index;
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let refs = bytes
            .get(size_of::<sys::GntallocAllocGrefHeader>()..)
            .unwrap_or_default()
            .chunks_exact(4)
            .take(count)
            .map(|c| GrantRef(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        Ok((index, refs))
    }

    fn dealloc_grefs(&self, index: u64, count: usize) -> io::Result<()> {
        let mut arg = sys::GntallocDeallocGref {
            index,
            count: u32::try_from(count)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many pages"))?,
        };
        // SAFETY: `arg` is the `ioctl_gntalloc_dealloc_gref` the request expects.
        unsafe {
            fd::ioctl(
                self.file.as_fd(),
                sys::IOCTL_GNTALLOC_DEALLOC_GREF,
                &raw mut arg,
            )
        }?;
        Ok(())
    }

    /// Allocates, grants and maps `count` pages; the error says why not.
    pub fn try_alloc(&self, count: usize) -> io::Result<Pages> {
        if count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "zero pages"));
        }
        let len = count
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many pages"))?;
        let (index, refs) = self.alloc_grefs(count)?;
        let ptr = match fd::mmap_shared(self.file.as_fd(), len, index) {
            Ok(ptr) => ptr,
            Err(e) => {
                let _ = self.dealloc_grefs(index, count);
                return Err(e);
            }
        };
        // gntalloc zeroes new pages; zero again so the trait's promise does not
        // rest on a kernel detail.
        // SAFETY: the mapping is `len` bytes, writable, and ours alone so far.
        unsafe { ptr.as_ptr().write_bytes(0, len) };
        // Exposed so that `address_of` may turn a frame number back into a pointer.
        let first = (ptr.as_ptr().expose_provenance() as u64) >> PAGE_SHIFT;
        let pfns: Vec<Pfn> = (0..count as u64).map(|i| Pfn(first + i)).collect();
        let mut state = self.lock();
        for (pfn, gref) in pfns.iter().zip(&refs) {
            state.pages.insert(
                pfn.0,
                PageGrant {
                    gref: *gref,
                    grants: 0,
                },
            );
            state.by_ref.insert(gref.0, pfn.0);
        }
        state.allocations.insert(first, Allocation { index, count });
        drop(state);
        // SAFETY: `ptr` is a page-aligned mapping of `count` pages that stays
        // until `free`; `pfns[i]` names page `i` in this allocator; non-empty.
        Ok(unsafe { Pages::new(ptr, pfns) })
    }

    /// Frees an allocation; the error says why not.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "taking the handle ends the caller's access to the pages"
    )]
    pub fn try_free(&self, pages: Pages) -> io::Result<()> {
        let first = pages.pfns().first().map_or(0, |p| p.0);
        let mut state = self.lock();
        let Some(alloc) = state.allocations.remove(&first) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pages not allocated by this gntalloc device",
            ));
        };
        for pfn in pages.pfns() {
            if let Some(page) = state.pages.remove(&pfn.0) {
                state.by_ref.remove(&page.gref.0);
                if page.grants > 0 {
                    state.granted = state.granted.saturating_sub(1);
                }
            }
        }
        drop(state);
        let len = alloc.count * PAGE_SIZE;
        // SAFETY: this is the whole mapping `try_alloc` made for these pages; the
        // caller gave up the `Pages` handle, the only way to reach it.
        unsafe { fd::munmap(pages.as_ptr(), len) }?;
        self.dealloc_grefs(alloc.index, alloc.count)
    }
}

impl Memory for GntallocDevice {
    fn alloc(&self, count: usize) -> Result<Pages, OutOfMemory> {
        self.try_alloc(count).map_err(|_| OutOfMemory)
    }

    fn free(&self, pages: Pages) {
        // The trait has no error path; pages not ours are left alone (leaked
        // rather than unmapped under someone else).
        let _ = self.try_free(pages);
    }
}

impl GrantTable for GntallocDevice {
    fn grant(&self, domid: DomId, pfn: Pfn, _readonly: bool) -> Result<GrantRef, GrantError> {
        if domid != self.domid {
            return Err(GrantError::BadFrame);
        }
        let mut state = self.lock();
        let page = state.pages.get_mut(&pfn.0).ok_or(GrantError::BadFrame)?;
        let first = page.grants == 0;
        page.grants = page.grants.checked_add(1).ok_or(GrantError::Exhausted)?;
        let gref = page.gref;
        if first {
            state.granted += 1;
        }
        Ok(gref)
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut state = self.lock();
        let pfn = *state.by_ref.get(&gref.0).ok_or(GrantError::Invalid)?;
        let page = state.pages.get_mut(&pfn).ok_or(GrantError::Invalid)?;
        page.grants = page.grants.checked_sub(1).ok_or(GrantError::Invalid)?;
        if page.grants == 0 {
            state.granted = state.granted.saturating_sub(1);
        }
        Ok(())
    }

    /// gntalloc's global limit minus the pages we have granted: how many more
    /// grants allocating and granting could give, if no other process uses
    /// gntalloc meanwhile.
    fn available(&self) -> usize {
        self.limit.saturating_sub(self.lock().granted)
    }
}
