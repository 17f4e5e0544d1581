//! Negotiation: the minimum of our settings and the backend's maxima, fitted to
//! a grant budget so that rings x queues x indirect pages x pools never exhaust
//! the guest's grant table (small `max-grant-frames` hosts broke the C drivers).

use core::fmt;

use xen_abi::blkif::{
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_SEGMENTS_PER_INDIRECT_PAGE, blkif_ring_size,
};

use super::backend::BackendInfo;
use super::settings::{MAX_RING_PAGE_ORDER, Settings};

/// Ring layout, fixed when the backend is in InitWait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Ring size is 2^order pages.
    pub ring_page_order: u8,
    /// Number of queues (one ring and event channel each).
    pub queues: u16,
}

impl RingLayout {
    /// Pages per ring.
    pub fn ring_pages(&self) -> usize {
        1 << self.ring_page_order
    }

    /// Slots per ring.
    pub fn ring_slots(&self) -> usize {
        blkif_ring_size(self.ring_pages())
    }
}

/// Per-queue resources, fixed when the backend is Connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Segments per indirect request (0: direct requests only).
    pub indirect_segments: u32,
    /// Indirect pages a request may use.
    pub indirect_pages_per_request: u32,
    /// Indirect pages per queue.
    pub indirect_pool_pages: u32,
    /// Persistent grants are in use.
    pub persistent: bool,
    /// Pages in the per-queue copy pool (persistent grants, or bounce pages for
    /// misaligned buffers).
    pub pool_pages: u32,
}

/// The grant budget cannot hold even the smallest layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Grants the smallest layout needs.
    pub needed: usize,
    /// Grants the budget allows.
    pub budget: usize,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grant budget of {} references cannot hold {} (raise max-grant-frames)",
            self.budget, self.needed
        )
    }
}

/// The references this device may claim out of `available`.
pub fn budget(settings: &Settings, available: usize) -> usize {
    available / 100 * usize::from(settings.grant_budget_percent)
        + available % 100 * usize::from(settings.grant_budget_percent) / 100
}

/// Chooses ring order and queue count: the smaller of ours and the backend's,
/// then shrunk (order first, then queues) until the rings fit `budget`.
pub fn ring_layout(
    settings: &Settings,
    backend_max_order: u32,
    backend_max_queues: u32,
    budget: usize,
) -> Result<RingLayout, BudgetExceeded> {
    let mut order =
        u32::from(settings.max_ring_page_order.min(MAX_RING_PAGE_ORDER)).min(backend_max_order);
    let mut queues = u32::from(settings.max_queues.max(1)).min(backend_max_queues.max(1));
    loop {
        let needed = (1usize << order).saturating_mul(queues as usize);
        if needed <= budget {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "order <= 4, queues <= u16::MAX"
            )]
            return Ok(RingLayout {
                ring_page_order: order as u8,
                queues: queues as u16,
            });
        }
        if order > 0 {
            order -= 1;
        } else if queues > 1 {
            queues /= 2;
        } else {
            return Err(BudgetExceeded { needed, budget });
        }
    }
}

/// Smallest copy pool: enough for one direct request of 11 whole pages.
const MIN_POOL_PAGES: u32 = 11;

/// Chooses per-queue resources once the backend's features are known, shrinking
/// the pool, then indirect segments, until `queues` x per-queue grants fit what
/// is left of the budget after the rings.
pub fn queue_layout(
    settings: &Settings,
    backend: &BackendInfo,
    rings: &RingLayout,
    budget: usize,
) -> Result<QueueLayout, BudgetExceeded> {
    let queues = usize::from(rings.queues);
    let left = budget.saturating_sub(rings.ring_pages().saturating_mul(queues));
    let per_queue = left / queues.max(1);
    let max_segments =
        u32::try_from(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGMENTS_PER_INDIRECT_PAGE)
            .unwrap_or(u32::MAX);
    let mut segments = settings
        .max_indirect_segments
        .min(backend.max_indirect_segments)
        .min(max_segments);
    if segments <= 11 {
        segments = 0; // indirect requests would not carry more than direct ones
    }
    let persistent = settings.persistent && backend.persistent;
    let mut pool = settings.persistent_pool_pages.max(MIN_POOL_PAGES);
    let slots = u32::try_from(rings.ring_slots()).unwrap_or(u32::MAX);
    loop {
        let per_request = segments.div_ceil(512);
        let indirect_pool = per_request.saturating_mul(slots);
        let needed = u64::from(pool) + u64::from(indirect_pool);
        if needed <= per_queue as u64 {
            return Ok(QueueLayout {
                indirect_segments: segments,
                indirect_pages_per_request: per_request,
                indirect_pool_pages: indirect_pool,
                persistent,
                pool_pages: pool,
            });
        }
        if pool > MIN_POOL_PAGES {
            pool = (pool / 2).max(MIN_POOL_PAGES);
        } else if segments > 0 {
            segments = if segments / 2 <= 11 { 0 } else { segments / 2 };
        } else {
            return Err(BudgetExceeded {
                needed: usize::try_from(needed)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(queues)
                    + rings.ring_pages() * queues,
                budget,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> BackendInfo {
        BackendInfo {
            sectors: 1 << 20,
            sector_size: 512,
            physical_sector_size: 512,
            read_only: false,
            removable: false,
            cdrom: false,
            flush_cache: true,
            barrier: false,
            discard: None,
            max_indirect_segments: 256,
            persistent: true,
            max_queues: 4,
            max_ring_page_order: 4,
        }
    }

    #[test]
    fn takes_the_minimum() {
        let s = Settings::default();
        let r = ring_layout(&s, 2, 4, 100_000).unwrap();
        assert_eq!(
            r,
            RingLayout {
                ring_page_order: 2,
                queues: 4
            }
        );
        let q = queue_layout(&s, &backend(), &r, 100_000).unwrap();
        assert_eq!(q.indirect_segments, 256);
        assert_eq!(q.indirect_pages_per_request, 1);
        assert_eq!(q.indirect_pool_pages, 128);
        assert!(q.persistent);
        assert_eq!(q.pool_pages, 512);
        // Backend without multi-queue keys: one queue, one page.
        assert_eq!(
            ring_layout(&s, 0, 1, 100).unwrap(),
            RingLayout {
                ring_page_order: 0,
                queues: 1
            }
        );
    }

    #[test]
    fn shrinks_to_the_budget() {
        let s = Settings::default();
        // 8 queues x 16 pages = 128 > 40: order shrinks first.
        let r = ring_layout(&s, 4, 8, 40).unwrap();
        assert_eq!(
            r,
            RingLayout {
                ring_page_order: 2,
                queues: 8
            }
        );
        let r = ring_layout(&s, 0, 64, 3).unwrap();
        assert_eq!(r.queues, 2);
        assert!(ring_layout(&s, 0, 1, 0).is_err());
        // A small budget shrinks the pool, then indirect segments.
        let r = RingLayout {
            ring_page_order: 0,
            queues: 1,
        };
        let q = queue_layout(&s, &backend(), &r, 1 + 32 + 64).unwrap();
        assert_eq!(q.pool_pages, 64);
        assert_eq!(q.indirect_segments, 256);
        let q = queue_layout(&s, &backend(), &r, 1 + 11).unwrap();
        assert_eq!((q.pool_pages, q.indirect_segments), (11, 0));
        assert!(queue_layout(&s, &backend(), &r, 5).is_err());
    }

    #[test]
    fn every_layout_fits_its_budget() {
        let s = Settings::default();
        for available in [0usize, 10, 100, 1000, 4096, 32768, 1 << 20] {
            let b = budget(&s, available);
            for (order, queues) in [(0, 1), (4, 8), (2, 64)] {
                let Ok(r) = ring_layout(&s, order, queues, b) else {
                    continue;
                };
                let Ok(q) = queue_layout(&s, &backend(), &r, b) else {
                    continue;
                };
                let total = usize::from(r.queues)
                    * (r.ring_pages() + q.pool_pages as usize + q.indirect_pool_pages as usize);
                assert!(total <= b, "{total} > {b}");
            }
        }
    }
}
