//! Grantable pages for the platform ([`Memory`]): a fixed region carved into
//! pages, handed out first-fit from a bitmap. Identity-mapped, so a page's
//! frame number is its address / 4096.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ptr::NonNull;

use xenbus_interface::api::{Memory, OutOfMemory, PAGE_SIZE, Pages, Pfn};

/// The pool.
#[derive(Debug)]
pub struct PagePool {
    base: usize,
    pages: usize,
    used: RefCell<Vec<bool>>,
}

impl PagePool {
    /// A pool over `pages` pages at `base`.
    ///
    /// # Safety
    /// `base` is page-aligned, identity-mapped (address == guest physical
    /// address), valid for `pages * 4096` bytes, used by nothing else, and
    /// lives for the rest of the program.
    pub unsafe fn new(base: usize, pages: usize) -> Self {
        Self {
            base,
            pages,
            used: RefCell::new(vec![false; pages]),
        }
    }

    /// Pages not handed out.
    pub fn free_pages(&self) -> usize {
        self.used.borrow().iter().filter(|u| !**u).count()
    }

    /// Total pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    fn alloc_run(&self, count: usize) -> Option<usize> {
        let mut used = self.used.borrow_mut();
        let mut run = 0;
        for i in 0..used.len() {
            run = if used[i] { 0 } else { run + 1 };
            if run == count {
                let first = i + 1 - count;
                used[first..=i].iter_mut().for_each(|u| *u = true);
                return Some(first);
            }
        }
        None
    }
}

impl Memory for &PagePool {
    fn alloc(&self, count: usize) -> Result<Pages, OutOfMemory> {
        if count == 0 {
            return Err(OutOfMemory);
        }
        let first = self.alloc_run(count).ok_or(OutOfMemory)?;
        let addr = self.base + first * PAGE_SIZE;
        let ptr = addr as *mut u8;
        // SAFETY: the pages are inside the pool (constructor contract) and were
        // just marked used, so nothing else writes them.
        unsafe { core::ptr::write_bytes(ptr, 0, count * PAGE_SIZE) };
        let pfns = (0..count)
            .map(|i| Pfn(((addr + i * PAGE_SIZE) / PAGE_SIZE) as u64))
            .collect();
        let ptr = NonNull::new(ptr).ok_or(OutOfMemory)?;
        // SAFETY: page-aligned, valid for `count` pages until freed (marked
        // used), identity-mapped so the frame numbers are right, non-empty.
        Ok(unsafe { Pages::new(ptr, pfns) })
    }

    fn free(&self, pages: Pages) {
        let first = (pages.as_ptr().as_ptr() as usize - self.base) / PAGE_SIZE;
        let mut used = self.used.borrow_mut();
        for u in used.iter_mut().skip(first).take(pages.count()) {
            *u = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    #[repr(C, align(4096))]
    struct Page([u8; PAGE_SIZE]);

    fn pool(pages: usize) -> PagePool {
        let mem: &'static mut [Page] = Box::leak(
            (0..pages)
                .map(|_| Page([0xaa; PAGE_SIZE]))
                .collect::<Box<[_]>>(),
        );
        // SAFETY: leaked, aligned, exclusively the pool's.
        unsafe { PagePool::new(mem.as_mut_ptr() as usize, pages) }
    }

    #[test]
    fn first_fit_contiguous_runs_zeroed() {
        let pool = pool(8);
        let mem = &pool;
        let first = mem.alloc(3).unwrap();
        let second = mem.alloc(2).unwrap();
        assert_eq!(second.pfn(0).unwrap().0, first.pfn(0).unwrap().0 + 3);
        assert_eq!(pool.free_pages(), 3);
        // SAFETY: the allocation is 3 pages long and ours.
        let bytes = unsafe { core::slice::from_raw_parts(first.as_ptr().as_ptr(), first.len()) };
        assert!(bytes.iter().all(|&x| x == 0));
        mem.free(first);
        assert!(mem.alloc(4).is_err(), "runs are 3 and 3, not 4");
        let third = mem.alloc(3).unwrap();
        assert_eq!(pool.free_pages(), 3);
        mem.free(third);
        mem.free(second);
        assert_eq!(pool.free_pages(), 8);
        assert!(mem.alloc(0).is_err());
    }
}
