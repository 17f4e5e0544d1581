//! The shared-ring transport: `struct xenstore_domain_interface`, the page a guest
//! shares with xenstored (what XENBUS uses on Windows, what the guest kernel uses in
//! the rig).
//!
//! The page is written concurrently by the daemon, so this crate never touches it
//! directly: the platform implements [`RingPage`] with volatile/atomic accesses and
//! the barriers documented there, and this module keeps the protocol: private copies
//! of our own indices, every daemon index validated before use, messages split across
//! the wrap and across polls, one event-channel kick per batch and only when needed.

use xen_abi::xs_wire::{XENSTORE_RING_SIZE, mask_xenstore_idx};

use crate::transport::{Transport, TransportError};

/// Ring size as a `u32`, for index arithmetic.
#[allow(clippy::cast_possible_truncation)] // 1024: the assert proves it fits.
const RING_SIZE: u32 = {
    assert!(XENSTORE_RING_SIZE <= u32::MAX as usize);
    XENSTORE_RING_SIZE as u32
};

/// Access to the shared `xenstore_domain_interface` page.
///
/// # Ordering requirements (what the implementation must guarantee)
/// * [`RingPage::req_cons`] and [`RingPage::rsp_prod`] (indices the daemon writes)
///   are **acquire** loads: bytes read from `rsp` after loading `rsp_prod` are the
///   ones the daemon wrote before publishing it (Linux: `virt_rmb()` after the
///   load), and bytes written to `req` after loading `req_cons` cannot overwrite
///   bytes the daemon is still reading (Linux: `virt_mb()` before the copy).
/// * [`RingPage::set_req_prod`] and [`RingPage::set_rsp_cons`] are **release**
///   stores: the request bytes are visible before the new `req_prod`
///   (`virt_wmb()`), and the reply bytes have been copied out before the daemon
///   sees the space freed (`virt_mb()`).
/// * [`RingPage::fence`] is a **full** (sequentially consistent) barrier: after
///   freeing reply space the transport fences, then reloads `rsp_prod` to decide
///   whether the daemon may be waiting for space (a store-then-load ordering
///   that acquire/release alone do not give).
/// * Byte copies ([`RingPage::write_req`], [`RingPage::read_rsp`]) are volatile:
///   each byte is read once, and the daemon may change `rsp` concurrently. The
///   transport copies replies out before parsing them, so a racing daemon can
///   only corrupt its own reply, never our control flow.
///
/// On x86 Windows: `ReadULongAcquire`/`WriteULongRelease` (or volatile accesses
/// plus `KeMemoryBarrier`) and `KeMemoryBarrier` for the fence; in Rust user space,
/// `AtomicU32` over the mapped page with `Acquire`/`Release` and
/// `fence(SeqCst)`.
pub trait RingPage {
    /// `req_cons`, acquire.
    fn req_cons(&self) -> u32;
    /// `req_prod` as currently on the page (read once, at attach).
    fn req_prod(&self) -> u32;
    /// Publishes `req_prod`, release.
    fn set_req_prod(&self, value: u32);
    /// `rsp_prod`, acquire.
    fn rsp_prod(&self) -> u32;
    /// `rsp_cons` as currently on the page (read once, at attach).
    fn rsp_cons(&self) -> u32;
    /// Publishes `rsp_cons`, release.
    fn set_rsp_cons(&self, value: u32);
    /// Copies `bytes` into `req[offset..offset + bytes.len()]`. The transport
    /// guarantees `offset + bytes.len() <= XENSTORE_RING_SIZE`.
    fn write_req(&self, offset: usize, bytes: &[u8]);
    /// Copies `rsp[offset..offset + out.len()]` into `out`. The transport
    /// guarantees `offset + out.len() <= XENSTORE_RING_SIZE`.
    fn read_rsp(&self, offset: usize, out: &mut [u8]);
    /// A full memory barrier.
    fn fence(&self);
}

impl<R: RingPage + ?Sized> RingPage for &R {
    fn req_cons(&self) -> u32 {
        (**self).req_cons()
    }
    fn req_prod(&self) -> u32 {
        (**self).req_prod()
    }
    fn set_req_prod(&self, value: u32) {
        (**self).set_req_prod(value);
    }
    fn rsp_prod(&self) -> u32 {
        (**self).rsp_prod()
    }
    fn rsp_cons(&self) -> u32 {
        (**self).rsp_cons()
    }
    fn set_rsp_cons(&self, value: u32) {
        (**self).set_rsp_cons(value);
    }
    fn write_req(&self, offset: usize, bytes: &[u8]) {
        (**self).write_req(offset, bytes);
    }
    fn read_rsp(&self, offset: usize, out: &mut [u8]) {
        (**self).read_rsp(offset, out);
    }
    fn fence(&self) {
        (**self).fence();
    }
}

/// Signals the daemon over the xenstore event channel (`EVTCHNOP_send`). Called at
/// most once per [`Transport::flush`]; never blocks.
pub trait Notify {
    /// Kicks the remote end.
    fn notify(&self);
}

impl<N: Notify + ?Sized> Notify for &N {
    fn notify(&self) {
        (**self).notify();
    }
}

/// The xenstore transport over a shared [`RingPage`].
#[derive(Debug)]
pub struct RingTransport<R, N> {
    page: R,
    notifier: N,
    /// Our producer index; the page holds the published copy.
    req_prod: u32,
    /// Our consumer index; the page holds the published copy.
    rsp_cons: u32,
    /// The daemon's `req_cons` at our last look (it only moves forward).
    seen_req_cons: u32,
    /// The daemon's `rsp_prod` at our last look (it only moves forward).
    seen_rsp_prod: u32,
    /// An index moved since the last notification.
    kick: bool,
}

impl<R: RingPage, N: Notify> RingTransport<R, N> {
    /// Attaches to a ring whose indices may be anywhere (after hibernation or a
    /// kexec they are not 0). Refuses a ring whose indices are already
    /// inconsistent.
    pub fn new(page: R, notifier: N) -> Result<Self, TransportError> {
        let req_prod = page.req_prod();
        let req_cons = page.req_cons();
        let rsp_cons = page.rsp_cons();
        let rsp_prod = page.rsp_prod();
        if req_prod.wrapping_sub(req_cons) > RING_SIZE {
            return Err(TransportError::Protocol(
                "req_cons and req_prod more than a ring apart",
            ));
        }
        if rsp_prod.wrapping_sub(rsp_cons) > RING_SIZE {
            return Err(TransportError::Protocol(
                "rsp_prod and rsp_cons more than a ring apart",
            ));
        }
        Ok(Self {
            page,
            notifier,
            req_prod,
            rsp_cons,
            seen_req_cons: req_cons,
            seen_rsp_prod: rsp_prod,
            kick: false,
        })
    }

    /// The page.
    pub fn page(&self) -> &R {
        &self.page
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// Loads and validates `req_cons`: it may only have moved forward, and never
    /// past what we produced. Returns the free space in `req`.
    fn req_space(&mut self) -> Result<u32, TransportError> {
        let cons = self.page.req_cons();
        let advanced = cons.wrapping_sub(self.seen_req_cons);
        let outstanding = self.req_prod.wrapping_sub(self.seen_req_cons);
        if advanced > outstanding {
            return Err(TransportError::Protocol(
                "req_cons moved backwards or past req_prod",
            ));
        }
        self.seen_req_cons = cons;
        // `req_prod - cons <= RING_SIZE` holds: we never produce beyond the
        // space computed here, and `cons` did not pass `req_prod`.
        Ok(RING_SIZE - self.req_prod.wrapping_sub(cons))
    }

    /// Loads and validates `rsp_prod`: never more than a ring ahead of our
    /// consumer, never backwards. Returns the bytes available in `rsp`.
    fn rsp_available(&mut self) -> Result<u32, TransportError> {
        let prod = self.page.rsp_prod();
        let available = prod.wrapping_sub(self.rsp_cons);
        if available > RING_SIZE {
            return Err(TransportError::Protocol(
                "rsp_prod moved more than the ring size",
            ));
        }
        if available < self.seen_rsp_prod.wrapping_sub(self.rsp_cons) {
            return Err(TransportError::Protocol("rsp_prod moved backwards"));
        }
        self.seen_rsp_prod = prod;
        Ok(available)
    }
}

impl<R: RingPage, N: Notify> Transport for RingTransport<R, N> {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError> {
        let space = usize::try_from(self.req_space()?).unwrap_or(0);
        let mut sent = 0usize;
        let want = bytes.len().min(space);
        while sent < want {
            let offset = mask_xenstore_idx(self.req_prod.wrapping_add(sent_u32(sent)));
            // Up to the wrap, at most what is left.
            let chunk = (XENSTORE_RING_SIZE - offset).min(want - sent);
            self.page.write_req(offset, &bytes[sent..sent + chunk]);
            sent += chunk;
        }
        if sent > 0 {
            self.req_prod = self.req_prod.wrapping_add(sent_u32(sent));
            self.page.set_req_prod(self.req_prod);
            self.kick = true;
        }
        Ok(sent)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let available = usize::try_from(self.rsp_available()?).unwrap_or(0);
        let want = buf.len().min(available);
        let mut got = 0usize;
        while got < want {
            let offset = mask_xenstore_idx(self.rsp_cons.wrapping_add(sent_u32(got)));
            let chunk = (XENSTORE_RING_SIZE - offset).min(want - got);
            self.page.read_rsp(offset, &mut buf[got..got + chunk]);
            got += chunk;
        }
        if got > 0 {
            let old_cons = self.rsp_cons;
            self.rsp_cons = self.rsp_cons.wrapping_add(sent_u32(got));
            self.page.set_rsp_cons(self.rsp_cons);
            // The daemon stops producing when `rsp` is full and waits for our
            // kick; it may have filled the ring after our load above, so look
            // again after the fence.
            self.page.fence();
            if self.page.rsp_prod().wrapping_sub(old_cons) >= RING_SIZE {
                self.kick = true;
            }
        }
        Ok(got)
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        if self.kick {
            self.kick = false;
            self.notifier.notify();
        }
        Ok(())
    }
}

/// `n <= XENSTORE_RING_SIZE` at every call site, so the conversion is exact.
fn sent_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(RING_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::MemRing;
    use alloc::vec::Vec;
    use core::cell::Cell;

    #[derive(Default)]
    struct Count(Cell<u32>);
    impl Notify for Count {
        fn notify(&self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn bytes_cross_the_wrap_both_ways() {
        let ring = MemRing::new();
        ring.set_indices(1000, 1000, 1000, 1000);
        let count = Count::default();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        let msg: Vec<u8> = (0..100u8).collect();
        assert_eq!(t.send(&msg).unwrap(), 100);
        assert_eq!(ring.take_requests(), msg);
        ring.push_response(&msg);
        let mut buf = [0u8; 100];
        assert_eq!(t.recv(&mut buf).unwrap(), 100);
        assert_eq!(&buf[..], &msg[..]);
        t.flush().unwrap();
        assert_eq!(count.0.get(), 1, "one kick for the batch");
        t.flush().unwrap();
        assert_eq!(count.0.get(), 1, "no kick without index movement");
    }

    #[test]
    fn send_stops_at_a_full_ring() {
        let ring = MemRing::new();
        let count = Count::default();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        let big = [7u8; 1500];
        assert_eq!(t.send(&big).unwrap(), 1024);
        assert_eq!(t.send(&big).unwrap(), 0);
        assert_eq!(ring.take_requests().len(), 1024);
        assert_eq!(t.send(&big).unwrap(), 1024);
    }

    #[test]
    fn reading_a_full_ring_kicks_the_daemon() {
        let ring = MemRing::new();
        let count = Count::default();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        ring.push_response(&[1u8; 1024]);
        let mut buf = [0u8; 10];
        assert_eq!(t.recv(&mut buf).unwrap(), 10);
        t.flush().unwrap();
        assert_eq!(count.0.get(), 1);
        // Not full any more: consuming does not need a kick.
        assert_eq!(t.recv(&mut buf).unwrap(), 10);
        t.flush().unwrap();
        assert_eq!(count.0.get(), 1);
    }

    #[test]
    fn hostile_indices_are_refused() {
        let count = Count::default();
        // Attach to an inconsistent page.
        let ring = MemRing::new();
        ring.set_indices(0, 2000, 0, 0);
        assert!(RingTransport::new(&ring, &count).is_err());
        ring.set_indices(0, 0, 5, 3000);
        assert!(RingTransport::new(&ring, &count).is_err());

        // rsp_prod jumps by more than the ring.
        let ring = MemRing::new();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        ring.set_rsp_prod(1025);
        let mut buf = [0u8; 8];
        assert!(matches!(t.recv(&mut buf), Err(TransportError::Protocol(_))));

        // rsp_prod moves backwards.
        let ring = MemRing::new();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        ring.set_rsp_prod(100);
        assert_eq!(t.recv(&mut buf).unwrap(), 8);
        ring.set_rsp_prod(50);
        assert!(matches!(t.recv(&mut buf), Err(TransportError::Protocol(_))));

        // req_cons moves past req_prod, then backwards.
        let ring = MemRing::new();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        assert_eq!(t.send(b"abcd").unwrap(), 4);
        ring.set_req_cons(5);
        assert!(matches!(t.send(b"x"), Err(TransportError::Protocol(_))));
        let ring = MemRing::new();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        assert_eq!(t.send(b"abcd").unwrap(), 4);
        ring.set_req_cons(4);
        assert_eq!(t.send(b"x").unwrap(), 1);
        ring.set_req_cons(2);
        assert!(matches!(t.send(b"x"), Err(TransportError::Protocol(_))));
    }

    #[test]
    fn indices_wrap_at_u32() {
        let ring = MemRing::new();
        let start = u32::MAX - 10;
        ring.set_indices(start, start, start, start);
        let count = Count::default();
        let mut t = RingTransport::new(&ring, &count).unwrap();
        let msg = [9u8; 40];
        assert_eq!(t.send(&msg).unwrap(), 40);
        assert_eq!(ring.take_requests(), msg.to_vec());
        ring.push_response(&msg);
        let mut buf = [0u8; 64];
        assert_eq!(t.recv(&mut buf).unwrap(), 40);
        assert_eq!(ring.rsp_cons_now(), start.wrapping_add(40));
    }
}
