//! The balloon: gives pages back to Xen (`XENMEM_decrease_reservation`) and
//! takes them again (`XENMEM_populate_physmap`) to follow `memory/target`.

use super::alloc::vec::Vec;

use super::Error;
use super::cpu::Cpu;
use super::hypercall::Xen;
use xenbus_interface::api::{Memory, Pages};

/// Pages the balloon must move to reach `target_kib` (from `memory/target`)
/// from `current_pages`: positive to give back, negative to take.
pub fn pages_to_target(target_kib: u64, current_pages: u64) -> i64 {
    let target_pages = target_kib / 4;
    let diff = i128::from(current_pages) - i128::from(target_pages);
    i64::try_from(diff).unwrap_or(if diff > 0 { i64::MAX } else { i64::MIN })
}

/// Pages currently given back to Xen. Each is a platform allocation whose
/// frame is unpopulated: nothing may touch it until it is populated again.
#[derive(Debug, Default)]
pub struct Balloon {
    out: Vec<Pages>,
}

impl Balloon {
    /// An empty balloon.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pages given back now.
    pub fn pages_out(&self) -> usize {
        self.out.len()
    }

    /// Gives up to `count` pages back; returns how many went.
    pub fn inflate<C: Cpu + Clone>(
        &mut self,
        xen: &Xen<C>,
        mem: &impl Memory,
        count: usize,
    ) -> Result<usize, Error> {
        let mut done = 0;
        while done < count {
            let Ok(page) = mem.alloc(1) else { break };
            let mut gpfn = [page.pfn(0).ok_or(Error::OutOfBounds)?.0];
            match xen.decrease_reservation(&mut gpfn) {
                Ok(1) => {
                    self.out.push(page);
                    done += 1;
                }
                Ok(_) => {
                    mem.free(page);
                    break;
                }
                Err(e) => {
                    mem.free(page);
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Takes up to `count` pages back from Xen; returns how many came.
    pub fn deflate<C: Cpu + Clone>(
        &mut self,
        xen: &Xen<C>,
        mem: &impl Memory,
        count: usize,
    ) -> Result<usize, Error> {
        let mut done = 0;
        while done < count {
            let Some(page) = self.out.pop() else { break };
            let mut gpfn = [page.pfn(0).ok_or(Error::OutOfBounds)?.0];
            match xen.populate_physmap(&mut gpfn) {
                Ok(1) => {
                    mem.free(page);
                    done += 1;
                }
                Ok(_) => {
                    // Xen has no memory for it now: keep it out.
                    self.out.push(page);
                    break;
                }
                Err(e) => {
                    self.out.push(page);
                    return Err(e);
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::pages_to_target;

    #[test]
    fn target_arithmetic() {
        assert_eq!(pages_to_target(32 * 1024, 8192), 0);
        assert_eq!(pages_to_target(28 * 1024, 8192), 1024);
        assert_eq!(pages_to_target(36 * 1024, 8192), -1024);
        assert_eq!(pages_to_target(0, u64::MAX), i64::MAX);
        assert_eq!(
            pages_to_target(u64::MAX, 0),
            -(i64::try_from(u64::MAX / 4).unwrap())
        );
    }
}
