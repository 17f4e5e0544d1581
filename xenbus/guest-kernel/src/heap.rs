//! The kernel heap: a bump allocator over one region that gives back the most
//! recent allocation (enough for a test kernel whose long-lived tables are
//! allocated once and whose xenstore traffic is short-lived).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The allocator; `init` gives it its region.
#[derive(Debug)]
pub struct BumpHeap {
    next: AtomicUsize,
    end: AtomicUsize,
}

impl BumpHeap {
    /// A heap with no memory yet (every allocation fails until `init`).
    pub const fn empty() -> Self {
        Self {
            next: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    /// Gives the heap `len` bytes at `base`.
    ///
    /// # Safety
    /// The region is valid, used by nothing else and lives forever; called once.
    pub unsafe fn init(&self, base: usize, len: usize) {
        self.next.store(base, Ordering::SeqCst);
        self.end.store(base + len, Ordering::SeqCst);
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.end
            .load(Ordering::SeqCst)
            .saturating_sub(self.next.load(Ordering::SeqCst))
    }
}

// SAFETY: `alloc` hands out disjoint, aligned ranges of the region (a CAS on
// `next` reserves each one), `dealloc` only rolls back the latest range.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut next = self.next.load(Ordering::SeqCst);
        loop {
            let Some(start) = next
                .checked_add(layout.align() - 1)
                .map(|n| n & !(layout.align() - 1))
            else {
                return core::ptr::null_mut();
            };
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > self.end.load(Ordering::SeqCst) {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(next, end, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return start as *mut u8,
                Err(seen) => next = seen,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let end = ptr as usize + layout.size();
        // Only the latest allocation can be given back.
        let _ = self
            .next
            .compare_exchange(end, ptr as usize, Ordering::SeqCst, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn bump_aligns_reuses_the_last_and_runs_out() {
        let mut region: Vec<u64> = std::vec![0; 512];
        let heap = BumpHeap::empty();
        // SAFETY: `region` outlives `heap` in this test and nothing else uses it.
        unsafe { heap.init(region.as_mut_ptr() as usize, 4096) };
        let small = Layout::from_size_align(10, 8).unwrap();
        let aligned = Layout::from_size_align(16, 64).unwrap();
        // SAFETY: valid layouts; each pointer goes back with its layout.
        let first = unsafe { heap.alloc(small) };
        assert!(!first.is_null() && first as usize % 8 == 0);
        // SAFETY: as above.
        let second = unsafe { heap.alloc(aligned) };
        assert_eq!(second as usize % 64, 0);
        // SAFETY: `second` came from `alloc(aligned)`.
        unsafe { heap.dealloc(second, aligned) };
        // SAFETY: as above.
        let third = unsafe { heap.alloc(aligned) };
        assert_eq!(second, third, "latest allocation not reused");
        // SAFETY: as above.
        let huge = unsafe { heap.alloc(Layout::from_size_align(8192, 8).unwrap()) };
        assert!(huge.is_null());
    }
}
