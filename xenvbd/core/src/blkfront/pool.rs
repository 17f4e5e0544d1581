//! Pools of pages the engine owns and keeps granted to the backend for the life
//! of a connection: the copy pool (persistent grants, bounce pages) and the
//! indirect segment-list pages.

use alloc::vec::Vec;

use xenbus_interface::api::{DomId, GrantError, GrantRef, GrantTable, Memory, Pages, Pfn};

/// A pool of single pages, each granted once at setup.
#[derive(Debug, Default)]
pub struct PagePool {
    pages: Vec<Pages>,
    grants: Vec<GrantRef>,
    free: Vec<u32>,
}

/// Setting a pool up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Out of memory.
    Memory,
    /// Out of grants (or the platform refused).
    Grant(GrantError),
}

impl PagePool {
    /// Allocates and grants `count` pages to `domid` (`readonly` for the
    /// backend if set). On failure everything done so far is undone.
    pub fn new(
        count: u32,
        domid: DomId,
        readonly: bool,
        memory: &impl Memory,
        grants: &impl GrantTable,
        quarantine: &mut Vec<Pages>,
    ) -> Result<Self, PoolError> {
        let mut pool = Self {
            pages: Vec::with_capacity(count as usize),
            grants: Vec::with_capacity(count as usize),
            free: Vec::with_capacity(count as usize),
        };
        for i in 0..count {
            let Ok(page) = memory.alloc(1) else {
                pool.release(memory, grants, quarantine);
                return Err(PoolError::Memory);
            };
            let Some(pfn) = page.pfn(0) else {
                memory.free(page);
                pool.release(memory, grants, quarantine);
                return Err(PoolError::Memory);
            };
            match grants.grant(domid, pfn, readonly) {
                Ok(gref) => {
                    pool.pages.push(page);
                    pool.grants.push(gref);
                    // Hand pages out lowest index first.
                    pool.free.push(count - 1 - i);
                }
                Err(e) => {
                    memory.free(page);
                    pool.release(memory, grants, quarantine);
                    return Err(PoolError::Grant(e));
                }
            }
        }
        Ok(pool)
    }

    /// Pages in the pool.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// True if the pool has no pages.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Pages free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Takes a page.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Gives a page back.
    pub fn put(&mut self, index: u32) {
        debug_assert!(!self.free.contains(&index));
        self.free.push(index);
    }

    /// Frame and grant of page `index`.
    pub fn page(&self, index: u32) -> Option<(Pfn, GrantRef)> {
        let i = index as usize;
        Some((self.pages.get(i)?.pfn(0)?, *self.grants.get(i)?))
    }

    /// Revokes every grant and frees the pages; a page the backend still maps
    /// goes to `quarantine` instead (never freed). Returns how many were
    /// quarantined.
    pub fn release(
        &mut self,
        memory: &impl Memory,
        grants: &impl GrantTable,
        quarantine: &mut Vec<Pages>,
    ) -> usize {
        let mut kept = 0;
        for (page, gref) in self.pages.drain(..).zip(self.grants.drain(..)) {
            if grants.revoke(gref).is_ok() {
                memory.free(page);
            } else {
                log::error!("xenvbd: grant {gref} still mapped by the backend: page quarantined");
                quarantine.push(page);
                kept += 1;
            }
        }
        self.free.clear();
        kept
    }
}
