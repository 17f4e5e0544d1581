//! Transmit coalescing: a packet whose fragments need more slots than the
//! backend accepts (or every packet, with `TransmitterAlwaysCopy`) is copied
//! into pages of a per-queue pool, so it goes out in as few slots as its
//! length needs.
//!
//! The pool's pages are handed in and granted read-only to the backend once,
//! when the pool is built (connect time): the submit path neither allocates
//! nor grants. A page is written only while it is free, and becomes free again
//! only when the backend answered the request that carried it, so the backend
//! never sees a page change under a request it still owns. The copy packs the
//! packet from offset 0 of the first page, so the headers are in the first
//! slot, as netback requires.

use alloc::vec::Vec;

use xenbus_interface::api::{DomId, GrantError, GrantRef, GrantTable, PAGE_SIZE, Pfn};

/// A frame number the platform could not copy from or to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFrame;

/// Copies bytes between guest frames: the caller's packet fragments and the
/// pool's pages (the same shape as xenvbd-core's bounce-buffer `Frames`).
pub trait TxFrames {
    /// Copies `len` bytes from `src`/`src_offset` to `dst`/`dst_offset`;
    /// neither range crosses its page.
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), BadFrame>;
}

#[derive(Clone, Copy, Debug)]
struct PoolPage {
    pfn: Pfn,
    /// `None` once revoked by [`TxCopyPool::revoke_all`].
    gref: Option<GrantRef>,
    /// Carrying a request the backend has not answered.
    busy: bool,
}

/// One queue's coalescing pages, granted to the backend for the pool's life.
#[derive(Debug)]
pub struct TxCopyPool {
    pages: Vec<PoolPage>,
    free: Vec<u16>,
    backend: DomId,
}

/// Why a pool could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// No page given, or more than ids can name.
    BadSize,
    /// Granting a page failed (every grant already made was revoked).
    Grant(GrantError),
}

impl TxCopyPool {
    /// Pages one queue needs to coalesce the largest packet: 64 KiB in
    /// page-sized pieces.
    pub const PAGES_PER_PACKET: usize =
        (xen_abi::netif::XEN_NETIF_MAX_TX_SIZE as usize).div_ceil(PAGE_SIZE);

    /// Grants `pfns` read-only to `backend` and makes them the pool. The
    /// frames stay the caller's: get them back with [`TxCopyPool::revoke_all`].
    pub fn new(grants: &impl GrantTable, backend: DomId, pfns: &[Pfn]) -> Result<Self, PoolError> {
        if pfns.is_empty() || pfns.len() > usize::from(u16::MAX) {
            return Err(PoolError::BadSize);
        }
        let mut pages = Vec::with_capacity(pfns.len());
        for &pfn in pfns {
            match grants.grant(backend, pfn, true) {
                Ok(gref) => pages.push(PoolPage {
                    pfn,
                    gref: Some(gref),
                    busy: false,
                }),
                Err(e) => {
                    for page in &pages {
                        if let Some(gref) = page.gref {
                            // Never handed to the backend yet: cannot be mapped.
                            let _ = grants.revoke(gref);
                        }
                    }
                    return Err(PoolError::Grant(e));
                }
            }
        }
        let free = (0..pages.len())
            .rev()
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        Ok(Self {
            pages,
            free,
            backend,
        })
    }

    /// The backend the pages are granted to.
    pub fn backend(&self) -> DomId {
        self.backend
    }

    /// Pages in the pool.
    pub fn capacity(&self) -> usize {
        self.pages.len()
    }

    /// Pages free to copy into now.
    pub fn free_pages(&self) -> usize {
        self.free.len()
    }

    /// Takes a free page: its index, frame and grant.
    pub(crate) fn take(&mut self) -> Option<(u16, Pfn, GrantRef)> {
        let index = self.free.pop()?;
        let page = self.pages.get_mut(usize::from(index))?;
        let gref = page.gref?;
        page.busy = true;
        Some((index, page.pfn, gref))
    }

    /// Gives back a page taken with [`TxCopyPool::take`] (its request was
    /// answered, or never published). Indices not out are ignored.
    pub(crate) fn put(&mut self, index: u16) {
        if let Some(page) = self.pages.get_mut(usize::from(index)) {
            if page.busy {
                page.busy = false;
                self.free.push(index);
            }
        }
    }

    /// Revokes every page's grant (teardown, with nothing in flight) and
    /// returns the frames that may be freed; a page the backend still maps,
    /// or whose request is unanswered, keeps its grant and stays in the pool
    /// (call again later).
    pub fn revoke_all(&mut self, grants: &impl GrantTable) -> Vec<Pfn> {
        let mut released = Vec::new();
        for page in &mut self.pages {
            if page.busy {
                continue;
            }
            if let Some(gref) = page.gref {
                if grants.revoke(gref) == Err(GrantError::InUse) {
                    continue;
                }
                page.gref = None;
                released.push(page.pfn);
            }
        }
        released
    }

    /// Grants not yet revoked.
    pub fn granted(&self) -> usize {
        self.pages.iter().filter(|p| p.gref.is_some()).count()
    }
}
