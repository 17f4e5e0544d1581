//! Event channels: the 2-level and FIFO ABIs, binding, and bounded, fair
//! delivery.
//!
//! Delivery model: [`EventChannels::poll`] hands each ready port to the caller
//! **masked and with its pending bit cleared**; the consumer processes it and
//! calls [`EventChannels::unmask`], after which a notification that arrived in
//! between is delivered again. New ports start masked (the `api.rs` contract).
//!
//! Fairness: the 2-level scan resumes after the last port it delivered (a busy
//! low port cannot starve higher ones); FIFO queues are first-in first-out per
//! priority by construction, and a bounded `poll` leaves the rest of a queue
//! for the next call.

use super::alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering, fence};

use super::Error;
use super::abi::shared_info as si;
use super::cpu::Cpu;
use super::hypercall::Xen;
use super::shared::Shared;
use super::shared_info::{SharedInfo, VcpuInfo};
use xen_abi::event_channel as ec;
use xenbus_interface::api::{Memory, PAGE_SIZE, Pages};

/// Ports the 2-level ABI has on x86_64 (64 words of 64 bits).
pub const TWO_LEVEL_PORTS: u32 = 64 * 64;
/// Event words per FIFO array page.
pub const FIFO_WORDS_PER_PAGE: u32 = {
    const { assert!(PAGE_SIZE / 4 <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation, reason = "asserted to fit above")]
    let words = (PAGE_SIZE / 4) as u32;
    words
};
/// Ports the FIFO ABI can name (`EVTCHN_FIFO_NR_CHANNELS`).
pub const FIFO_MAX_PORTS: u32 = 1 << ec::EVTCHN_FIFO_LINK_BITS;
/// FIFO priority queues (`EVTCHN_FIFO_MAX_QUEUES`).
pub const FIFO_QUEUES: usize = ec::EVTCHN_FIFO_MAX_QUEUES;

const FIFO_PENDING: u32 = 1 << ec::EVTCHN_FIFO_PENDING;
const FIFO_MASKED: u32 = 1 << ec::EVTCHN_FIFO_MASKED;
const FIFO_LINKED: u32 = 1 << ec::EVTCHN_FIFO_LINKED;
const FIFO_BUSY: u32 = 1 << ec::EVTCHN_FIFO_BUSY;
const FIFO_LINK_MASK: u32 = ec::EVTCHN_FIFO_LINK_MASK;
/// Offset of `head[]` in `struct evtchn_fifo_control_block` (after `ready`, `_rsvd`).
const FIFO_CONTROL_HEAD: usize = 8;

/// The pending flag of one port, detached from the table so that a waiter
/// elsewhere (the xenstore client's `Wait`) can consume it before blocking in
/// `SCHEDOP_poll`. Valid until the ABI changes (FIFO switch, resume): fetch it
/// again then.
#[derive(Clone, Debug)]
pub struct PendingFlag<C> {
    window: Shared<C>,
    offset: usize,
    bit: u64,
    wide: bool,
}

impl<C: Cpu + Clone> PendingFlag<C> {
    /// Clears the flag; true if it was set.
    pub fn take(&self) -> bool {
        if self.wide {
            self.window
                .u64(self.offset)
                .is_some_and(|w| w.fetch_and(!self.bit, Ordering::SeqCst) & self.bit != 0)
        } else {
            let bit = u32::try_from(self.bit).unwrap_or(0);
            self.window
                .u32(self.offset)
                .is_some_and(|w| w.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
        }
    }
}

/// Which ABI is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnAbi {
    /// Bitmaps in the shared info page, 4096 ports.
    TwoLevel,
    /// Per-port event words and per-vCPU priority queues.
    Fifo,
}

struct Fifo<C> {
    control_pages: Pages,
    control: Shared<C>,
    array: Vec<(Pages, Shared<C>)>,
    heads: [u32; FIFO_QUEUES],
    ready: u32,
}

impl<C> core::fmt::Debug for Fifo<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fifo")
            .field("array_pages", &self.array.len())
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// Event channels of this domain, delivered to vCPU 0.
#[derive(Debug)]
pub struct EventChannels<C, M: Memory> {
    xen: Xen<C>,
    shared: SharedInfo<C>,
    vcpu: VcpuInfo<C>,
    mem: M,
    fifo: Option<Fifo<C>>,
    /// 2-level words whose selector bit Xen set and we have not emptied yet.
    sel: u64,
    /// 2-level: the next port to look at (fairness cursor).
    cursor: u32,
    /// The callback vector set, for [`EventChannels::restore_upcalls`].
    callback_vector: core::cell::Cell<Option<u8>>,
    /// The per-vCPU upcall vectors set, likewise.
    upcall_vectors: core::cell::RefCell<Vec<(u32, u8)>>,
}

impl<C: Cpu + Clone, M: Memory> EventChannels<C, M> {
    /// Starts with the 2-level ABI (what a fresh domain has).
    pub fn new(xen: Xen<C>, shared: SharedInfo<C>, vcpu: VcpuInfo<C>, mem: M) -> Self {
        Self {
            xen,
            shared,
            vcpu,
            mem,
            fifo: None,
            sel: 0,
            cursor: 0,
            callback_vector: core::cell::Cell::new(None),
            upcall_vectors: core::cell::RefCell::new(Vec::new()),
        }
    }

    /// The active ABI.
    pub fn abi(&self) -> EvtchnAbi {
        if self.fifo.is_some() {
            EvtchnAbi::Fifo
        } else {
            EvtchnAbi::TwoLevel
        }
    }

    /// The hypervisor handle.
    pub fn xen(&self) -> &Xen<C> {
        &self.xen
    }

    /// The `vcpu_info` events are delivered through.
    pub fn vcpu_info(&self) -> &VcpuInfo<C> {
        &self.vcpu
    }

    /// Switches to the FIFO ABI (`EVTCHNOP_init_control` + one array page).
    /// Ports bound so far keep working: Xen moves them over.
    pub fn enable_fifo(&mut self) -> Result<(), Error> {
        if self.fifo.is_some() {
            return Ok(());
        }
        let control_pages = self.mem.alloc(1).map_err(|_| Error::OutOfMemory)?;
        let control = Shared::of_pages(self.xen.cpu().clone(), &control_pages);
        let gfn = control_pages.pfn(0).ok_or(Error::OutOfBounds)?.0;
        if let Err(e) = self.xen.evtchn_init_control(gfn, 0, 0) {
            self.mem.free(control_pages);
            return Err(e);
        }
        self.fifo = Some(Fifo {
            control_pages,
            control,
            array: Vec::new(),
            heads: [0; FIFO_QUEUES],
            ready: 0,
        });
        self.expand_to(FIFO_WORDS_PER_PAGE - 1)
    }

    /// Delivers through `vcpu` from now on: after `VCPUOP_register_vcpu_info`
    /// Xen stops updating the legacy slot in shared info. Xen marks every
    /// selector bit pending in the new location, so the next poll rescans.
    pub fn set_vcpu_info(&mut self, vcpu: VcpuInfo<C>) {
        self.vcpu = vcpu;
        self.sel = 0;
    }

    /// Forgets the FIFO state without telling Xen: after resume the new domain
    /// starts with the 2-level ABI (the pages are freed).
    pub fn reset_after_resume(&mut self, shared: SharedInfo<C>, vcpu: VcpuInfo<C>) {
        if let Some(fifo) = self.fifo.take() {
            for (pages, _) in fifo.array {
                self.mem.free(pages);
            }
            self.mem.free(fifo.control_pages);
        }
        self.shared = shared;
        self.vcpu = vcpu;
        self.sel = 0;
        self.cursor = 0;
    }

    /// Makes sure `port` has an event word (FIFO) or exists (2-level).
    fn expand_to(&mut self, port: u32) -> Result<(), Error> {
        let Some(fifo) = self.fifo.as_mut() else {
            return if port < TWO_LEVEL_PORTS {
                Ok(())
            } else {
                Err(Error::OutOfBounds)
            };
        };
        if port >= FIFO_MAX_PORTS {
            return Err(Error::OutOfBounds);
        }
        while fifo.array.len() * (FIFO_WORDS_PER_PAGE as usize) <= port as usize {
            let pages = self.mem.alloc(1).map_err(|_| Error::OutOfMemory)?;
            let gfn = pages.pfn(0).ok_or(Error::OutOfBounds)?.0;
            if let Err(e) = self.xen.evtchn_expand_array(gfn) {
                self.mem.free(pages);
                return Err(e);
            }
            let window = Shared::of_pages(self.xen.cpu().clone(), &pages);
            fifo.array.push((pages, window));
        }
        Ok(())
    }

    fn bound(&mut self, port: u32) -> Result<u32, Error> {
        if let Err(e) = self.expand_to(port) {
            let _ = self.xen.evtchn_close(port);
            return Err(e);
        }
        self.mask(port)?;
        Ok(port)
    }

    /// Allocates a port that domain `remote` may bind to; starts masked.
    pub fn alloc_unbound(&mut self, remote: u16) -> Result<u32, Error> {
        let port = self.xen.evtchn_alloc_unbound(remote)?;
        self.bound(port)
    }

    /// Binds to `remote`'s `remote_port`; starts masked.
    pub fn bind_interdomain(&mut self, remote: u16, remote_port: u32) -> Result<u32, Error> {
        let port = self.xen.evtchn_bind_interdomain(remote, remote_port)?;
        self.bound(port)
    }

    /// Binds virtual IRQ `virq` on vCPU 0; starts masked.
    pub fn bind_virq(&mut self, virq: u32) -> Result<u32, Error> {
        let port = self.xen.evtchn_bind_virq(virq, 0)?;
        self.bound(port)
    }

    /// Takes over a port Xen bound for us (xenstore, console) so it is
    /// delivered through this table; starts masked.
    pub fn adopt(&mut self, port: u32) -> Result<u32, Error> {
        self.expand_to(port)?;
        self.mask(port)?;
        Ok(port)
    }

    /// Masks and closes `port`.
    pub fn close(&mut self, port: u32) -> Result<(), Error> {
        self.mask(port)?;
        self.xen.evtchn_close(port)
    }

    /// Notifies the other end of `port`.
    pub fn send(&self, port: u32) -> Result<(), Error> {
        self.xen.evtchn_send(port)
    }

    fn fifo_word(&self, port: u32) -> Result<Option<&AtomicU32>, Error> {
        let Some(fifo) = self.fifo.as_ref() else {
            return Ok(None);
        };
        let page = (port / FIFO_WORDS_PER_PAGE) as usize;
        let (_, window) = fifo.array.get(page).ok_or(Error::BadPort(port))?;
        let word = window
            .u32((port % FIFO_WORDS_PER_PAGE) as usize * 4)
            .ok_or(Error::BadPort(port))?;
        Ok(Some(word))
    }

    fn two_level_bit(
        &self,
        base: usize,
        port: u32,
    ) -> Result<(&core::sync::atomic::AtomicU64, u64), Error> {
        if port >= TWO_LEVEL_PORTS {
            return Err(Error::BadPort(port));
        }
        let word = self
            .shared
            .page()
            .u64(base + (port / 64) as usize * 8)
            .ok_or(Error::BadPort(port))?;
        Ok((word, 1u64 << (port % 64)))
    }

    /// `port`'s pending flag, for a waiter outside this table.
    pub fn pending_flag(&self, port: u32) -> Result<PendingFlag<C>, Error> {
        if let Some(fifo) = self.fifo.as_ref() {
            let page = (port / FIFO_WORDS_PER_PAGE) as usize;
            let (_, window) = fifo.array.get(page).ok_or(Error::BadPort(port))?;
            let offset = (port % FIFO_WORDS_PER_PAGE) as usize * 4;
            window.u32(offset).ok_or(Error::BadPort(port))?;
            return Ok(PendingFlag {
                window: window.clone(),
                offset,
                bit: u64::from(FIFO_PENDING),
                wide: false,
            });
        }
        self.two_level_bit(si::EVTCHN_PENDING, port)?;
        Ok(PendingFlag {
            window: self.shared.page().clone(),
            offset: si::EVTCHN_PENDING + (port / 64) as usize * 8,
            bit: 1 << (port % 64),
            wide: true,
        })
    }

    /// Stops delivery of `port`.
    pub fn mask(&self, port: u32) -> Result<(), Error> {
        if let Some(word) = self.fifo_word(port)? {
            word.fetch_or(FIFO_MASKED, Ordering::SeqCst);
        } else {
            let (word, bit) = self.two_level_bit(si::EVTCHN_MASK, port)?;
            word.fetch_or(bit, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Re-enables delivery of `port`; an event that arrived while masked is
    /// delivered again (Xen re-links / re-raises it on `EVTCHNOP_unmask`).
    pub fn unmask(&self, port: u32) -> Result<(), Error> {
        if let Some(word) = self.fifo_word(port)? {
            let mut w = word.load(Ordering::SeqCst);
            loop {
                if w & FIFO_MASKED == 0 {
                    return Ok(());
                }
                if w & FIFO_PENDING != 0 {
                    // Xen clears MASKED and links the pending event.
                    return self.xen.evtchn_unmask(port);
                }
                let new = w & !(FIFO_MASKED | FIFO_BUSY);
                match word.compare_exchange(w, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => return Ok(()),
                    Err(seen) => w = seen,
                }
            }
        }
        self.two_level_bit(si::EVTCHN_MASK, port)?;
        // Xen clears the mask bit and, if the port is pending, raises it again.
        self.xen.evtchn_unmask(port)
    }

    /// Whether `port` is pending (set by Xen, not yet delivered by `poll`).
    pub fn is_pending(&self, port: u32) -> Result<bool, Error> {
        if let Some(word) = self.fifo_word(port)? {
            return Ok(word.load(Ordering::SeqCst) & FIFO_PENDING != 0);
        }
        let (word, bit) = self.two_level_bit(si::EVTCHN_PENDING, port)?;
        Ok(word.load(Ordering::SeqCst) & bit != 0)
    }

    /// Delivers up to `budget` ready ports to `deliver` (each masked, pending
    /// cleared) and returns how many. A port number Xen's data makes up that is
    /// outside our array fails with [`Error::BadPort`] after what was delivered.
    pub fn poll(&mut self, budget: usize, mut deliver: impl FnMut(u32)) -> Result<usize, Error> {
        self.vcpu.take_upcall_pending()?;
        let mut done = 0;
        while done < budget {
            let next = if self.fifo.is_some() {
                self.next_fifo()?
            } else {
                self.next_two_level()?
            };
            match next {
                Some(port) => {
                    deliver(port);
                    done += 1;
                }
                None => break,
            }
        }
        Ok(done)
    }

    /// The next ready 2-level port at or after the cursor, masked and cleared.
    fn next_two_level(&mut self) -> Result<Option<u32>, Error> {
        self.sel |= self.vcpu.take_pending_sel()?;
        let page = self.shared.page();
        let start_word = (self.cursor / 64) as usize;
        let start_bit = self.cursor % 64;
        // 65 visits: every word once, then the low bits of the first word.
        for visit in 0..=64usize {
            let w = (start_word + visit) % 64;
            if self.sel & (1 << w) == 0 {
                continue;
            }
            let pending = page
                .u64(si::EVTCHN_PENDING + w * 8)
                .ok_or(Error::OutOfBounds)?;
            let mask = page
                .u64(si::EVTCHN_MASK + w * 8)
                .ok_or(Error::OutOfBounds)?;
            let all = pending.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
            let mut bits = all;
            if visit == 0 {
                bits &= u64::MAX << start_bit;
            } else if visit == 64 {
                bits &= (1u64 << start_bit).wrapping_sub(1);
            }
            if bits == 0 {
                // Only forget the selector when the whole word is empty.
                if all == 0 {
                    self.sel &= !(1 << w);
                }
                continue;
            }
            let bit = bits.trailing_zeros();
            // `w` < 64: the cast is exact.
            let port = u32::try_from(w).unwrap_or(0) * 64 + bit;
            mask.fetch_or(1 << bit, Ordering::SeqCst);
            pending.fetch_and(!(1 << bit), Ordering::SeqCst);
            self.cursor = (port + 1) % TWO_LEVEL_PORTS;
            return Ok(Some(port));
        }
        Ok(None)
    }

    /// The head of the highest-priority ready FIFO queue, masked and cleared.
    fn next_fifo(&mut self) -> Result<Option<u32>, Error> {
        let Some(fifo) = self.fifo.as_mut() else {
            return Ok(None);
        };
        let ready_word = fifo.control.u32(0).ok_or(Error::OutOfBounds)?;
        fifo.ready |= ready_word.swap(0, Ordering::SeqCst);
        while fifo.ready != 0 {
            let q = fifo.ready.trailing_zeros() as usize;
            let mut head = fifo.heads[q];
            if head == 0 {
                // Reached the tail last time: Xen may have queued more since.
                fence(Ordering::Acquire);
                head = fifo
                    .control
                    .u32(FIFO_CONTROL_HEAD + q * 4)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Acquire);
            }
            if head == 0 {
                fifo.ready &= !(1 << q);
                continue;
            }
            let port = head;
            let page = (port / FIFO_WORDS_PER_PAGE) as usize;
            let Some((_, window)) = fifo.array.get(page) else {
                fifo.ready &= !(1 << q);
                fifo.heads[q] = 0;
                return Err(Error::BadPort(port));
            };
            let word = window
                .u32((port % FIFO_WORDS_PER_PAGE) as usize * 4)
                .ok_or(Error::BadPort(port))?;
            // Unlink: clear LINKED and the link, keep the rest; the old link
            // is the next head.
            let mut w = word.load(Ordering::SeqCst);
            let next = loop {
                let new = w & !(FIFO_LINKED | FIFO_LINK_MASK);
                match word.compare_exchange(w, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => break w & FIFO_LINK_MASK,
                    Err(seen) => w = seen,
                }
            };
            if next == 0 {
                fifo.ready &= !(1 << q);
            }
            fifo.heads[q] = next;
            let now = word.load(Ordering::SeqCst);
            if now & FIFO_PENDING != 0 && now & FIFO_MASKED == 0 {
                word.fetch_or(FIFO_MASKED, Ordering::SeqCst);
                word.fetch_and(!FIFO_PENDING, Ordering::SeqCst);
                return Ok(Some(port));
            }
        }
        Ok(None)
    }

    /// Upcall through the HVM callback vector (`HVM_PARAM_CALLBACK_IRQ`, type
    /// 2), the way XENBUS asks for it when no per-vCPU vector is available.
    pub fn set_callback_vector(&self, vector: u8) -> Result<(), Error> {
        const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
        const CALLBACK_VIA_TYPE_VECTOR: u64 = 2 << 56;
        self.xen.set_param(
            HVM_PARAM_CALLBACK_IRQ,
            CALLBACK_VIA_TYPE_VECTOR | u64::from(vector),
        )?;
        self.callback_vector.set(Some(vector));
        Ok(())
    }

    /// Upcall through a per-vCPU vector (`HVMOP_set_evtchn_upcall_vector`).
    pub fn set_upcall_vector(&self, vcpu: u32, vector: u8) -> Result<(), Error> {
        self.xen.set_upcall_vector(vcpu, vector)?;
        let mut set = self.upcall_vectors.borrow_mut();
        set.retain(|(v, _)| *v != vcpu);
        set.push((vcpu, vector));
        Ok(())
    }

    /// Sets the callback and per-vCPU upcall vectors again in a new domain
    /// (after a real resume): Xen's save/restore carries neither, and
    /// without `HVM_PARAM_CALLBACK_IRQ` the toolstack also takes an HVM
    /// domain for one without PV drivers (`xl shutdown` is refused).
    pub fn restore_upcalls(&self) -> Result<(), Error> {
        if let Some(vector) = self.callback_vector.get() {
            self.set_callback_vector(vector)?;
        }
        let set: Vec<(u32, u8)> = self.upcall_vectors.borrow().clone();
        for (vcpu, vector) in set {
            self.xen.set_upcall_vector(vcpu, vector)?;
        }
        Ok(())
    }
}
