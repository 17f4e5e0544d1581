//! The xenstore shared ring (`struct xenstore_domain_interface`) as a byte
//! transport: the page from `HVM_PARAM_STORE_PFN`, kicked through the port from
//! `HVM_PARAM_STORE_EVTCHN`. The xenstore client frames messages on top.

use core::sync::atomic::{Ordering, fence};

use super::Error;
use super::cpu::Cpu;
use super::shared::Shared;
use xen_abi::xs_wire::XENSTORE_RING_SIZE;

const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
const RING: u32 = {
    const { assert!(XENSTORE_RING_SIZE <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation, reason = "asserted to fit above")]
    let size = XENSTORE_RING_SIZE as u32;
    size
};

/// One end of the xenstore ring.
#[derive(Clone, Debug)]
pub struct StoreRing<C> {
    page: Shared<C>,
}

impl<C: Cpu + Clone> StoreRing<C> {
    /// The ring seen through `page`.
    pub fn new(page: Shared<C>) -> Self {
        Self { page }
    }

    fn word(&self, off: usize) -> Result<&core::sync::atomic::AtomicU32, Error> {
        self.page.u32(off).ok_or(Error::OutOfBounds)
    }

    /// Copies as much of `bytes` as fits into the request ring; returns the
    /// count (0 when full). The caller notifies the store port afterwards.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, Error> {
        let cons = self.word(REQ_CONS)?.load(Ordering::Acquire);
        let prod_word = self.word(REQ_PROD)?;
        let mut prod = prod_word.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > RING {
            return Err(Error::Inconsistent("xenstore request ring indices"));
        }
        let room = (RING - used) as usize;
        let n = room.min(bytes.len());
        for &b in &bytes[..n] {
            self.page
                .u8(REQ + (prod % RING) as usize)
                .ok_or(Error::OutOfBounds)?
                .store(b, Ordering::Relaxed);
            prod = prod.wrapping_add(1);
        }
        fence(Ordering::Release);
        prod_word.store(prod, Ordering::Release);
        Ok(n)
    }

    /// Copies available response bytes into `buf`; returns the count.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let prod = self.word(RSP_PROD)?.load(Ordering::Acquire);
        let cons_word = self.word(RSP_CONS)?;
        let mut cons = cons_word.load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(cons);
        if avail > RING {
            return Err(Error::Inconsistent("xenstore response ring indices"));
        }
        fence(Ordering::Acquire);
        let n = (avail as usize).min(buf.len());
        for slot in &mut buf[..n] {
            *slot = self
                .page
                .u8(RSP + (cons % RING) as usize)
                .ok_or(Error::OutOfBounds)?
                .load(Ordering::Relaxed);
            cons = cons.wrapping_add(1);
        }
        fence(Ordering::Release);
        cons_word.store(cons, Ordering::Release);
        Ok(n)
    }

    /// Whether a response byte is waiting.
    pub fn readable(&self) -> Result<bool, Error> {
        Ok(self.word(RSP_PROD)?.load(Ordering::Acquire)
            != self.word(RSP_CONS)?.load(Ordering::Acquire))
    }
}

/// The ring as the xenstore client's transport sees it
/// ([`crate::ring::RingTransport`]): acquire loads of the daemon's indices,
/// release stores of ours, byte copies through atomics.
impl<C: Cpu + Clone> crate::ring::RingPage for StoreRing<C> {
    fn req_cons(&self) -> u32 {
        self.word(REQ_CONS).map_or(0, |w| w.load(Ordering::Acquire))
    }
    fn req_prod(&self) -> u32 {
        self.word(REQ_PROD).map_or(0, |w| w.load(Ordering::Acquire))
    }
    fn set_req_prod(&self, value: u32) {
        if let Ok(w) = self.word(REQ_PROD) {
            w.store(value, Ordering::Release);
        }
    }
    fn rsp_prod(&self) -> u32 {
        self.word(RSP_PROD).map_or(0, |w| w.load(Ordering::Acquire))
    }
    fn rsp_cons(&self) -> u32 {
        self.word(RSP_CONS).map_or(0, |w| w.load(Ordering::Acquire))
    }
    fn set_rsp_cons(&self, value: u32) {
        if let Ok(w) = self.word(RSP_CONS) {
            w.store(value, Ordering::Release);
        }
    }
    fn write_req(&self, offset: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(slot) = self.page.u8(REQ + ((offset + i) % XENSTORE_RING_SIZE)) {
                slot.store(b, Ordering::Relaxed);
            }
        }
    }
    fn read_rsp(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self
                .page
                .u8(RSP + ((offset + i) % XENSTORE_RING_SIZE))
                .map_or(0, |s| s.load(Ordering::Relaxed));
        }
    }
    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// Kicks xenstored over the store event channel.
#[derive(Clone, Debug)]
pub struct StoreNotify<C> {
    xen: super::hypercall::Xen<C>,
    port: u32,
}

impl<C: Cpu + Clone> StoreNotify<C> {
    /// Notifies `port` (from `HVM_PARAM_STORE_EVTCHN`).
    pub fn new(xen: super::hypercall::Xen<C>, port: u32) -> Self {
        Self { xen, port }
    }
}

impl<C: Cpu + Clone> crate::ring::Notify for StoreNotify<C> {
    fn notify(&self) {
        // A failed send leaves the request in the ring; the client's timeout
        // reports it.
        let _ = self.xen.evtchn_send(self.port);
    }
}
