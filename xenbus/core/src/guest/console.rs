//! The PV console ring (`struct xencons_interface`), output side: log lines end
//! up in xenconsoled's log in dom0.

use core::sync::atomic::{Ordering, fence};

use super::Error;
use super::cpu::Cpu;
use super::hypercall::Xen;
use super::shared::Shared;

const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// The console ring page and its event channel.
#[derive(Clone, Debug)]
pub struct Console<C> {
    xen: Xen<C>,
    ring: Shared<C>,
    port: u32,
}

impl<C: Cpu + Clone> Console<C> {
    /// The console Xen set up (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`), seen through
    /// `ring`.
    pub fn new(xen: Xen<C>, ring: Shared<C>, port: u32) -> Self {
        Self { xen, ring, port }
    }

    /// Writes `bytes`, waiting (yielding, at most `spins` times) while the
    /// ring is full. Returns how many bytes went in.
    pub fn write(&self, bytes: &[u8], spins: u32) -> Result<usize, Error> {
        let cons = self.ring.u32(OUT_CONS).ok_or(Error::OutOfBounds)?;
        let prod_word = self.ring.u32(OUT_PROD).ok_or(Error::OutOfBounds)?;
        let mut prod = prod_word.load(Ordering::Relaxed);
        let mut written = 0;
        let mut waits = 0;
        while written < bytes.len() {
            let used = prod.wrapping_sub(cons.load(Ordering::Acquire));
            if used > OUT_SIZE {
                return Err(Error::Inconsistent("console ring indices"));
            }
            if used == OUT_SIZE {
                prod_word.store(prod, Ordering::Release);
                self.xen.evtchn_send(self.port)?;
                waits += 1;
                if waits > spins {
                    break;
                }
                self.xen.yield_now();
                continue;
            }
            let slot = OUT + (prod % OUT_SIZE) as usize;
            self.ring
                .u8(slot)
                .ok_or(Error::OutOfBounds)?
                .store(bytes[written], Ordering::Relaxed);
            prod = prod.wrapping_add(1);
            written += 1;
        }
        fence(Ordering::Release);
        prod_word.store(prod, Ordering::Release);
        self.xen.evtchn_send(self.port)?;
        Ok(written)
    }

    /// Waits (yielding, at most `spins` times) until xenconsoled consumed
    /// everything; true if it did. Call before shutting down.
    pub fn drain(&self, spins: u32) -> Result<bool, Error> {
        let cons = self.ring.u32(OUT_CONS).ok_or(Error::OutOfBounds)?;
        let prod = self.ring.u32(OUT_PROD).ok_or(Error::OutOfBounds)?;
        for _ in 0..spins {
            if cons.load(Ordering::Acquire) == prod.load(Ordering::Acquire) {
                return Ok(true);
            }
            self.xen.yield_now();
        }
        Ok(false)
    }
}
