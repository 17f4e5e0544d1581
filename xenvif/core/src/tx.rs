//! The transmit side of one queue: packets (chains of page fragments) become
//! netif tx requests; responses are validated and complete packets.
//!
//! Slot layout of a packet (netif.h): the first request carries the whole
//! packet's size and the offload flags, `NETTXF_extra_info` announces extra
//! slots (GSO, multicast) right after it, `NETTXF_more_data` chains the rest.
//! netback answers every request, extra slots with `NETIF_RSP_NULL`.
//!
//! Everything is pre-allocated when the queue is built: submitting and polling
//! never allocate (DISPATCH_LEVEL on Windows).

use alloc::vec::Vec;

use xen_abi::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK,
    NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, NetifExtraGso, NetifExtraInfo,
    NetifExtraMcast, NetifTxFrontRing, NetifTxRequest, NetifTxResponse,
    XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_GSO_TYPE_TCPV6, XEN_NETIF_MAX_TX_SIZE,
};
use xen_abi::ring::{RingMemory, RingSetupError};
use xenbus_interface::api::{DomId, GrantError, GrantRef, GrantTable, PAGE_SIZE, Pfn};

use crate::coalesce::{TxCopyPool, TxFrames};
use crate::error::Violation;
use crate::stats::Statistics;
use crate::wire::ethernet::MacAddress;

/// One fragment of a packet: `len` bytes at `offset` in frame `pfn`. A
/// fragment never crosses its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxBuffer {
    /// The frame.
    pub pfn: Pfn,
    /// Offset of the data in the frame.
    pub offset: u16,
    /// Bytes.
    pub len: u16,
}

/// Segmentation offload kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4.
    TcpV4,
    /// TCP over IPv6.
    TcpV6,
}

/// A segmentation offload request: the backend cuts the packet into segments of
/// at most `mss` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// Kind.
    pub kind: GsoKind,
    /// Maximum segment size.
    pub mss: u16,
}

/// What the backend is asked to do for a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The TCP/UDP checksum is blank (only the pseudo-header sum is in the
    /// field): the backend completes it (`NETTXF_csum_blank`).
    pub checksum_blank: bool,
    /// The data is known good (`NETTXF_data_validated`); set with
    /// `checksum_blank`, as Linux and the Windows drivers do.
    pub data_validated: bool,
    /// Segmentation offload.
    pub gso: Option<Gso>,
}

/// A packet to send.
#[derive(Clone, Copy, Debug)]
pub struct TxPacket<'a> {
    /// Its fragments, in order.
    pub buffers: &'a [TxBuffer],
    /// Offloads.
    pub offload: TxOffload,
    /// The caller's cookie, handed back on completion.
    pub tag: u64,
}

/// How a packet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Sent.
    Okay,
    /// The backend dropped it.
    Dropped,
    /// The backend reported an error, or the device failed with it in flight.
    Error,
}

/// A finished packet: its buffers may be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxCompletion {
    /// The packet's tag.
    pub tag: u64,
    /// How it ended.
    pub status: TxStatus,
}

/// Why a packet was not queued (nothing was written; the caller keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Not enough free slots or ids now; retry after completions.
    RingFull,
    /// No grant reference available now.
    NoGrants,
    /// More fragments than the backend accepts: coalesce and retry (see
    /// [`TxQueue::max_slots`]).
    TooManySlots {
        /// Fragments given.
        needed: usize,
        /// The limit.
        max: usize,
    },
    /// No fragment, a fragment crossing its page or empty, or a packet over
    /// 64 KiB − 1.
    BadPacket,
    /// An offload the backend did not offer.
    Unsupported,
    /// The device is broken.
    Broken,
    /// The packet must be coalesced but the queue's copy pool has too few
    /// free pages now (or no pool is attached): retry after completions.
    Busy,
    /// The platform could not copy a fragment while coalescing.
    BadFrame,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// `None` for a data-less request (multicast control).
    gref: Option<GrantRef>,
    /// Id of the packet's first slot (its entry in `packets`).
    head: u16,
    /// The copy-pool page carrying the data (its grant is the pool's: kept,
    /// the page goes back to the pool when answered).
    page: Option<u16>,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    tag: u64,
    /// Slots not yet answered and revoked.
    pending: u16,
    status: TxStatus,
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "one flag per backend feature"
)]
/// What the transmit path may use, decided at connect time from the backend's
/// features and our settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxCapabilities {
    /// Most fragments per packet (1 without `feature-sg`).
    pub max_slots: usize,
    /// Checksum offload over IPv4.
    pub csum_ipv4: bool,
    /// Checksum offload over IPv6.
    pub csum_ipv6: bool,
    /// TSO over IPv4.
    pub gso_tcpv4: bool,
    /// TSO over IPv6.
    pub gso_tcpv6: bool,
    /// Multicast control through extra info.
    pub multicast_control: bool,
    /// `TransmitterAlwaysCopy`: every packet is copied before it is sent;
    /// [`TxQueue::submit_coalesced`] does so into its copy pool (plain
    /// [`TxQueue::submit`] never reads data and ignores this).
    pub always_copy: bool,
}

/// The transmit half of one queue over ring memory `R`.
#[derive(Debug)]
pub struct TxQueue<R> {
    ring: NetifTxFrontRing<R>,
    backend: DomId,
    caps: TxCapabilities,
    slots: Vec<Option<Slot>>,
    free_ids: Vec<u16>,
    packets: Vec<Option<InFlight>>,
    /// Grants the backend would not release; their packets stay pending.
    quarantine: Vec<(GrantRef, u16)>,
    broken: Option<Violation>,
    /// Pages to coalesce into ([`crate::coalesce`]).
    pool: Option<TxCopyPool>,
}

impl<R: RingMemory> TxQueue<R> {
    /// Initialises a tx ring in `memory` (one page, already granted to the
    /// backend by the caller) for `backend` with `caps`.
    pub fn new(memory: R, backend: DomId, caps: TxCapabilities) -> Result<Self, RingSetupError> {
        let ring = NetifTxFrontRing::new(memory)?;
        let size = usize::try_from(ring.size()).unwrap_or(0);
        // Ids are u16: a one-page tx ring has 256 slots.
        let ids = size.min(usize::from(u16::MAX));
        Ok(Self {
            ring,
            backend,
            caps,
            slots: alloc::vec![None; ids],
            free_ids: (0..ids)
                .rev()
                .filter_map(|i| u16::try_from(i).ok())
                .collect(),
            packets: alloc::vec![None; ids],
            quarantine: Vec::with_capacity(ids),
            broken: None,
            pool: None,
        })
    }

    /// The most fragments one packet may have.
    pub fn max_slots(&self) -> usize {
        self.caps.max_slots
    }

    /// The capabilities in force.
    pub fn capabilities(&self) -> TxCapabilities {
        self.caps
    }

    /// Why the queue is broken, if it is.
    pub fn broken(&self) -> Option<Violation> {
        self.broken
    }

    /// Packets queued and not completed.
    pub fn in_flight(&self) -> usize {
        self.packets.iter().filter(|p| p.is_some()).count()
    }

    /// Gives the ring memory back (after [`TxQueue::fail_all`] or when idle).
    pub fn into_memory(self) -> R {
        self.ring.into_memory()
    }

    /// Queues `packet`. On error nothing was written and no grant is held.
    /// Call [`TxQueue::push`] after a batch to publish it.
    pub fn submit(
        &mut self,
        grants: &impl GrantTable,
        packet: &TxPacket<'_>,
        stats: &mut Statistics,
    ) -> Result<(), TxError> {
        if self.broken.is_some() {
            return Err(TxError::Broken);
        }
        let total = validate_buffers(packet.buffers)?;
        let count = packet.buffers.len();
        if count > self.caps.max_slots {
            return Err(TxError::TooManySlots {
                needed: count,
                max: self.caps.max_slots,
            });
        }
        let gso = match packet.offload.gso {
            None => None,
            Some(gso) => {
                let allowed = match gso.kind {
                    GsoKind::TcpV4 => self.caps.gso_tcpv4,
                    GsoKind::TcpV6 => self.caps.gso_tcpv6,
                };
                if !allowed || gso.mss == 0 {
                    return Err(TxError::Unsupported);
                }
                Some(gso)
            }
        };
        let extras = usize::from(gso.is_some());
        let free = usize::try_from(self.ring.free_requests()).unwrap_or(0);
        if free < count + extras || self.free_ids.len() < count {
            return Err(TxError::RingFull);
        }
        let grefs = self.grant_all(grants, packet.buffers)?;
        let mut head = None;
        for (i, buffer) in packet.buffers.iter().enumerate() {
            // Checked above: enough free ids.
            let Some(id) = self.free_ids.pop() else {
                return Err(TxError::RingFull);
            };
            let head_id = *head.get_or_insert(id);
            self.slots[usize::from(id)] = Some(Slot {
                gref: Some(grefs[i]),
                head: head_id,
                page: None,
            });
            let mut flags = 0;
            if i + 1 < count {
                flags |= NETTXF_MORE_DATA;
            }
            let size = if i == 0 {
                if packet.offload.checksum_blank {
                    flags |= NETTXF_CSUM_BLANK;
                }
                if packet.offload.data_validated || packet.offload.checksum_blank {
                    flags |= NETTXF_DATA_VALIDATED;
                }
                if gso.is_some() {
                    flags |= NETTXF_EXTRA_INFO;
                }
                total
            } else {
                buffer.len
            };
            let request = NetifTxRequest {
                gref: grefs[i].0,
                offset: buffer.offset,
                flags,
                id,
                size,
            };
            // Space was checked above; a failure here cannot happen.
            let _ = self.ring.write_request(&request);
            if let (0, Some(gso)) = (i, gso) {
                let kind = match gso.kind {
                    GsoKind::TcpV4 => XEN_NETIF_GSO_TYPE_TCPV4,
                    GsoKind::TcpV6 => XEN_NETIF_GSO_TYPE_TCPV6,
                };
                let extra = NetifExtraInfo::from_gso(
                    0,
                    NetifExtraGso {
                        size: gso.mss,
                        r#type: kind,
                        pad: 0,
                        features: 0,
                    },
                );
                let _ = self.ring.write_request(&NetifTxRequest::from(extra));
            }
        }
        if let Some(head) = head {
            self.packets[usize::from(head)] = Some(InFlight {
                tag: packet.tag,
                pending: u16::try_from(count).unwrap_or(u16::MAX),
                status: TxStatus::Okay,
            });
        }
        stats.tx_packets_queued += 1;
        Ok(())
    }

    /// Grants every fragment read-only, or none.
    fn grant_all(
        &self,
        grants: &impl GrantTable,
        buffers: &[TxBuffer],
    ) -> Result<[GrantRef; MAX_FRAGMENTS], TxError> {
        let mut grefs = [GrantRef(0); MAX_FRAGMENTS];
        for (i, buffer) in buffers.iter().enumerate() {
            if let Ok(gref) = grants.grant(self.backend, buffer.pfn, true) {
                grefs[i] = gref;
            } else {
                for gref in &grefs[..i] {
                    // Never mapped by anyone yet: revoking cannot be refused.
                    let _ = grants.revoke(*gref);
                }
                return Err(TxError::NoGrants);
            }
        }
        Ok(grefs)
    }

    /// Queues a multicast filter change (`feature-dynamic-multicast-control`):
    /// a data-less request (no grant, size 0) carrying an `MCAST_ADD`/`_DEL`
    /// extra. netback applies it and answers the request; the completion
    /// carries `tag` (an error status means the backend refused the address).
    pub fn submit_multicast(
        &mut self,
        address: MacAddress,
        add: bool,
        tag: u64,
        stats: &mut Statistics,
    ) -> Result<(), TxError> {
        if !self.caps.multicast_control {
            return Err(TxError::Unsupported);
        }
        if self.broken.is_some() {
            return Err(TxError::Broken);
        }
        if self.ring.free_requests() < 2 {
            return Err(TxError::RingFull);
        }
        let Some(id) = self.free_ids.pop() else {
            return Err(TxError::RingFull);
        };
        self.slots[usize::from(id)] = Some(Slot {
            gref: None,
            head: id,
            page: None,
        });
        let request = NetifTxRequest {
            gref: 0,
            offset: 0,
            flags: NETTXF_EXTRA_INFO,
            id,
            size: 0,
        };
        let _ = self.ring.write_request(&request);
        let kind = if add {
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD
        } else {
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL
        };
        let extra = NetifExtraInfo::from_mcast(kind, 0, NetifExtraMcast { addr: address.0 });
        let _ = self.ring.write_request(&NetifTxRequest::from(extra));
        self.packets[usize::from(id)] = Some(InFlight {
            tag,
            pending: 1,
            status: TxStatus::Okay,
        });
        stats.tx_packets_queued += 1;
        Ok(())
    }

    /// Gives the queue its coalescing pages (connect time; see
    /// [`crate::coalesce`]). The pool must be granted to this queue's backend.
    /// Returns the pool already attached, if any, when that one is idle;
    /// otherwise keeps it and hands `pool` back.
    pub fn attach_copy_pool(&mut self, pool: TxCopyPool) -> Result<Option<TxCopyPool>, TxCopyPool> {
        if pool.backend() != self.backend {
            return Err(pool);
        }
        match self.pool.take() {
            Some(old) if old.free_pages() != old.capacity() => {
                self.pool = Some(old);
                Err(pool)
            }
            old => {
                self.pool = Some(pool);
                Ok(old)
            }
        }
    }

    /// Takes the coalescing pool back (teardown) when none of its pages
    /// carries an unanswered request.
    pub fn detach_copy_pool(&mut self) -> Option<TxCopyPool> {
        match self.pool.take() {
            Some(pool) if pool.free_pages() != pool.capacity() => {
                self.pool = Some(pool);
                None
            }
            pool => pool,
        }
    }

    /// The coalescing pool, if one is attached.
    pub fn copy_pool(&self) -> Option<&TxCopyPool> {
        self.pool.as_ref()
    }

    fn return_page(&mut self, page: u16) {
        if let Some(pool) = self.pool.as_mut() {
            pool.put(page);
        }
    }

    /// The backend's say on `offload.gso`.
    fn allowed_gso(&self, offload: TxOffload) -> Result<Option<Gso>, TxError> {
        match offload.gso {
            None => Ok(None),
            Some(gso) => {
                let allowed = match gso.kind {
                    GsoKind::TcpV4 => self.caps.gso_tcpv4,
                    GsoKind::TcpV6 => self.caps.gso_tcpv6,
                };
                if !allowed || gso.mss == 0 {
                    return Err(TxError::Unsupported);
                }
                Ok(Some(gso))
            }
        }
    }

    /// Queues `packet` like [`TxQueue::submit`], coalescing it first when it
    /// has more fragments than [`TxQueue::max_slots`] or when
    /// [`TxCapabilities::always_copy`] is set: its bytes are copied with
    /// `frames` into free pages of the attached pool, packed from the first
    /// page's start (headers in the first slot), flags and GSO kept. Packets
    /// that fit go through [`TxQueue::submit`] unchanged.
    ///
    /// On error nothing was written, no pool page is held and the caller
    /// keeps the packet; [`TxError::Busy`] means too few pool pages are free
    /// now. On success the caller's fragments are no longer needed once this
    /// returns for a copied packet (its completion still carries `tag`).
    pub fn submit_coalesced(
        &mut self,
        grants: &impl GrantTable,
        frames: &impl TxFrames,
        packet: &TxPacket<'_>,
        stats: &mut Statistics,
    ) -> Result<(), TxError> {
        if self.broken.is_some() {
            return Err(TxError::Broken);
        }
        let count = packet.buffers.len();
        if !self.caps.always_copy && count <= self.caps.max_slots && count <= MAX_FRAGMENTS {
            return self.submit(grants, packet, stats);
        }
        let total = validate_any_count(packet.buffers)?;
        let pages = usize::from(total).div_ceil(PAGE_SIZE);
        if pages > self.caps.max_slots {
            return Err(TxError::TooManySlots {
                needed: pages,
                max: self.caps.max_slots,
            });
        }
        let gso = self.allowed_gso(packet.offload)?;
        let extras = usize::from(gso.is_some());
        let free = usize::try_from(self.ring.free_requests()).unwrap_or(0);
        if free < pages + extras || self.free_ids.len() < pages {
            return Err(TxError::RingFull);
        }
        let mut taken = [(0u16, Pfn(0), GrantRef(0)); MAX_FRAGMENTS];
        let Some(pool) = self.pool.as_mut() else {
            return Err(TxError::Busy);
        };
        if pool.free_pages() < pages {
            return Err(TxError::Busy);
        }
        for slot in taken.iter_mut().take(pages) {
            let Some(page) = pool.take() else {
                for &(index, _, _) in &taken[..pages] {
                    pool.put(index);
                }
                return Err(TxError::Busy);
            };
            *slot = page;
        }
        let taken = &taken[..pages];
        if copy_packed(frames, packet.buffers, taken).is_err() {
            for &(index, _, _) in taken {
                pool.put(index);
            }
            return Err(TxError::BadFrame);
        }
        let mut head = None;
        let mut left = usize::from(total);
        for (i, &(page, _, gref)) in taken.iter().enumerate() {
            // Checked above: enough free ids.
            let Some(id) = self.free_ids.pop() else {
                return Err(TxError::RingFull);
            };
            let head_id = *head.get_or_insert(id);
            self.slots[usize::from(id)] = Some(Slot {
                gref: Some(gref),
                head: head_id,
                page: Some(page),
            });
            let len = left.min(PAGE_SIZE);
            left -= len;
            let mut flags = 0;
            if i + 1 < pages {
                flags |= NETTXF_MORE_DATA;
            }
            let size = if i == 0 {
                if packet.offload.checksum_blank {
                    flags |= NETTXF_CSUM_BLANK;
                }
                if packet.offload.data_validated || packet.offload.checksum_blank {
                    flags |= NETTXF_DATA_VALIDATED;
                }
                if gso.is_some() {
                    flags |= NETTXF_EXTRA_INFO;
                }
                total
            } else {
                // At most a page: fits.
                u16::try_from(len).unwrap_or(u16::MAX)
            };
            let request = NetifTxRequest {
                gref: gref.0,
                offset: 0,
                flags,
                id,
                size,
            };
            let _ = self.ring.write_request(&request);
            if let (0, Some(gso)) = (i, gso) {
                let _ = self
                    .ring
                    .write_request(&NetifTxRequest::from(gso_extra(gso)));
            }
        }
        if let Some(head) = head {
            self.packets[usize::from(head)] = Some(InFlight {
                tag: packet.tag,
                pending: u16::try_from(pages).unwrap_or(u16::MAX),
                status: TxStatus::Okay,
            });
        }
        stats.tx_packets_queued += 1;
        stats.tx_packets_coalesced += 1;
        Ok(())
    }

    /// Publishes queued requests; `true` when the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_requests_and_check_notify()
    }

    /// Consumes up to `budget` responses, completing finished packets through
    /// `complete`. Returns how many responses were consumed. A protocol
    /// violation breaks the queue (see [`TxQueue::broken`]) and completes every
    /// packet in flight with [`TxStatus::Error`].
    pub fn poll(
        &mut self,
        grants: &impl GrantTable,
        budget: usize,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) -> usize {
        self.retry_quarantine(grants, stats, complete);
        if self.broken.is_some() {
            return 0;
        }
        let mut consumed = 0;
        let result = loop {
            if consumed >= budget {
                break Ok(());
            }
            let response = match self.ring.responses() {
                Err(e) => {
                    break Err(Violation::ProducerOverflow {
                        ring: "tx",
                        prod: e.prod,
                        cons: e.cons,
                    });
                }
                Ok(mut responses) => match responses.next() {
                    None => break Ok(()),
                    Some(r) => r,
                },
            };
            consumed += 1;
            if let Err(v) = self.one_response(grants, response, stats, complete) {
                break Err(v);
            }
        };
        if let Err(violation) = result {
            self.fail(grants, violation, stats, complete);
        }
        consumed
    }

    fn one_response(
        &mut self,
        grants: &impl GrantTable,
        response: NetifTxResponse,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) -> Result<(), Violation> {
        if response.status == NETIF_RSP_NULL {
            // The answer to an extra-info slot.
            return Ok(());
        }
        let status = match response.status {
            NETIF_RSP_OKAY => TxStatus::Okay,
            NETIF_RSP_DROPPED => TxStatus::Dropped,
            NETIF_RSP_ERROR => TxStatus::Error,
            status => {
                return Err(Violation::BadTxStatus {
                    id: response.id,
                    status,
                });
            }
        };
        let id = response.id;
        let Some(slot) = self.slots.get_mut(usize::from(id)).and_then(Option::take) else {
            return Err(Violation::UnknownId { ring: "tx", id });
        };
        self.free_ids.push(id);
        if let Some(packet) = self
            .packets
            .get_mut(usize::from(slot.head))
            .and_then(Option::as_mut)
        {
            if status != TxStatus::Okay {
                packet.status = status;
            }
        }
        if let Some(page) = slot.page {
            self.return_page(page);
            self.finish_slot(slot.head, stats, complete);
            return Ok(());
        }
        if let Some(gref) = slot
            .gref
            .filter(|&g| grants.revoke(g) == Err(GrantError::InUse))
        {
            self.quarantine.push((gref, slot.head));
            return Err(Violation::GrantStillMapped { ring: "tx" });
        }
        self.finish_slot(slot.head, stats, complete);
        Ok(())
    }

    /// `true` when responses wait (after re-arming the event): poll again.
    pub fn more_to_do(&mut self) -> bool {
        self.broken.is_none() && self.ring.final_check_for_responses().unwrap_or(true)
    }

    /// Marks the queue broken for `violation` and completes every packet in
    /// flight with an error, except those whose grants the backend still maps
    /// (retried on every poll, never completed while mapped).
    pub fn fail(
        &mut self,
        grants: &impl GrantTable,
        violation: Violation,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        if self.broken.is_none() {
            self.broken = Some(violation);
        }
        self.fail_all(grants, stats, complete);
    }

    /// Completes every packet in flight with [`TxStatus::Error`] (teardown, or a
    /// backend reset: nothing will answer them any more).
    pub fn fail_all(
        &mut self,
        grants: &impl GrantTable,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        for id in 0..self.slots.len() {
            let Some(slot) = self.slots[id].take() else {
                continue;
            };
            if let Ok(id) = u16::try_from(id) {
                self.free_ids.push(id);
            }
            if let Some(packet) = self
                .packets
                .get_mut(usize::from(slot.head))
                .and_then(Option::as_mut)
            {
                packet.status = TxStatus::Error;
            }
            if let Some(page) = slot.page {
                // Nothing will answer it any more; the page stays granted
                // (the pool's) and is reused only by a queue that is not broken.
                self.return_page(page);
                self.finish_slot(slot.head, stats, complete);
                continue;
            }
            if let Some(gref) = slot
                .gref
                .filter(|&g| grants.revoke(g) == Err(GrantError::InUse))
            {
                self.quarantine.push((gref, slot.head));
                continue;
            }
            self.finish_slot(slot.head, stats, complete);
        }
    }

    fn retry_quarantine(
        &mut self,
        grants: &impl GrantTable,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        let mut i = 0;
        while i < self.quarantine.len() {
            let (gref, head) = self.quarantine[i];
            if grants.revoke(gref) == Err(GrantError::InUse) {
                i += 1;
            } else {
                self.quarantine.swap_remove(i);
                self.finish_slot(head, stats, complete);
            }
        }
    }

    /// Grants the backend still maps (their packets are held back).
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    fn finish_slot(
        &mut self,
        head: u16,
        stats: &mut Statistics,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        let Some(entry) = self.packets.get_mut(usize::from(head)) else {
            return;
        };
        let Some(packet) = entry.as_mut() else {
            return;
        };
        packet.pending = packet.pending.saturating_sub(1);
        if packet.pending == 0 {
            let done = TxCompletion {
                tag: packet.tag,
                status: packet.status,
            };
            *entry = None;
            match done.status {
                TxStatus::Okay => stats.tx_packets_ok += 1,
                TxStatus::Dropped => stats.tx_packets_dropped += 1,
                TxStatus::Error => stats.tx_packets_error += 1,
            }
            complete(done);
        }
    }
}

/// Most fragments any packet may have: 64 KiB of data in page-sized pieces,
/// each possibly split across two pages, bounded by netback's own limit.
pub const MAX_FRAGMENTS: usize = xen_abi::netif::XEN_NETIF_NR_SLOTS_MIN;

/// The GSO extra-info slot for `gso`.
fn gso_extra(gso: Gso) -> NetifExtraInfo {
    let kind = match gso.kind {
        GsoKind::TcpV4 => XEN_NETIF_GSO_TYPE_TCPV4,
        GsoKind::TcpV6 => XEN_NETIF_GSO_TYPE_TCPV6,
    };
    NetifExtraInfo::from_gso(
        0,
        NetifExtraGso {
            size: gso.mss,
            r#type: kind,
            pad: 0,
            features: 0,
        },
    )
}

/// Checks fragments of a packet to coalesce (any count) and returns the
/// total length.
fn validate_any_count(buffers: &[TxBuffer]) -> Result<u16, TxError> {
    if buffers.is_empty() {
        return Err(TxError::BadPacket);
    }
    let mut total: u32 = 0;
    for buffer in buffers {
        let end = usize::from(buffer.offset) + usize::from(buffer.len);
        if buffer.len == 0 || end > PAGE_SIZE {
            return Err(TxError::BadPacket);
        }
        total = total.saturating_add(u32::from(buffer.len));
        if total > XEN_NETIF_MAX_TX_SIZE {
            return Err(TxError::BadPacket);
        }
    }
    u16::try_from(total).map_err(|_| TxError::BadPacket)
}

/// Copies the fragments back to back into `pages` from the first one's
/// start; `pages` hold at least their total length.
fn copy_packed(
    frames: &impl TxFrames,
    buffers: &[TxBuffer],
    pages: &[(u16, Pfn, GrantRef)],
) -> Result<(), crate::coalesce::BadFrame> {
    let mut at = 0usize;
    for buffer in buffers {
        let mut src_offset = usize::from(buffer.offset);
        let mut left = usize::from(buffer.len);
        while left > 0 {
            let page = pages.get(at / PAGE_SIZE).ok_or(crate::coalesce::BadFrame)?;
            let dst_offset = at % PAGE_SIZE;
            let chunk = left.min(PAGE_SIZE - dst_offset);
            frames.copy(page.1, dst_offset, buffer.pfn, src_offset, chunk)?;
            at += chunk;
            src_offset += chunk;
            left -= chunk;
        }
    }
    Ok(())
}

/// Checks fragments and returns the total length.
fn validate_buffers(buffers: &[TxBuffer]) -> Result<u16, TxError> {
    if buffers.is_empty() || buffers.len() > MAX_FRAGMENTS {
        return Err(if buffers.is_empty() {
            TxError::BadPacket
        } else {
            TxError::TooManySlots {
                needed: buffers.len(),
                max: MAX_FRAGMENTS,
            }
        });
    }
    let mut total: u32 = 0;
    for buffer in buffers {
        let end = usize::from(buffer.offset) + usize::from(buffer.len);
        if buffer.len == 0 || end > PAGE_SIZE {
            return Err(TxError::BadPacket);
        }
        total += u32::from(buffer.len);
    }
    if total > XEN_NETIF_MAX_TX_SIZE {
        return Err(TxError::BadPacket);
    }
    u16::try_from(total).map_err(|_| TxError::BadPacket)
}

/// Splits `len` bytes of a contiguous run starting at byte `offset` of the
/// page list `pfns` into page-bounded fragments (what an MDL chain becomes).
/// Returns how many were written to `out`, or `None` when they do not fit, the
/// run leaves the pages, or the length is zero.
pub fn fragments_of(
    pfns: &[Pfn],
    offset: usize,
    len: usize,
    out: &mut [TxBuffer],
) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let end = offset.checked_add(len)?;
    if end > pfns.len().checked_mul(PAGE_SIZE)? {
        return None;
    }
    let mut at = offset;
    let mut n = 0;
    while at < end {
        let page = at / PAGE_SIZE;
        let in_page = at % PAGE_SIZE;
        let chunk = (PAGE_SIZE - in_page).min(end - at);
        *out.get_mut(n)? = TxBuffer {
            pfn: *pfns.get(page)?,
            offset: u16::try_from(in_page).ok()?,
            len: u16::try_from(chunk).ok()?,
        };
        n += 1;
        at += chunk;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::TxCopyPool;
    use crate::fake::{FakeBackend, FakeGrants, FakeMemory};
    use alloc::sync::Arc;
    use xen_abi::netif::XEN_NETIF_EXTRA_TYPE_GSO;
    use xen_abi::ring::HeapRingMemory;

    const CAPS: TxCapabilities = TxCapabilities {
        max_slots: MAX_FRAGMENTS,
        csum_ipv4: true,
        csum_ipv6: true,
        gso_tcpv4: true,
        gso_tcpv6: true,
        multicast_control: true,
        always_copy: false,
    };

    struct Rig {
        memory: FakeMemory,
        grants: FakeGrants,
        queue: TxQueue<Arc<HeapRingMemory>>,
        backend: FakeBackend,
        stats: Statistics,
        done: Vec<TxCompletion>,
    }

    fn rig(caps: TxCapabilities) -> Rig {
        let (tx, rx) = FakeBackend::ring_pages();
        let queue = TxQueue::new(tx.clone(), DomId(0), caps).unwrap();
        let _rx = crate::rx::RxQueue::new(rx.clone(), DomId(0)).unwrap();
        Rig {
            memory: FakeMemory::default(),
            grants: FakeGrants::default(),
            queue,
            backend: FakeBackend::attach(tx, rx),
            stats: Statistics::default(),
            done: Vec::new(),
        }
    }

    impl Rig {
        /// A packet of `data` laid out from byte `offset` of fresh pages.
        fn buffers(&self, data: &[u8], offset: usize) -> Vec<TxBuffer> {
            let pages = (offset + data.len()).div_ceil(PAGE_SIZE);
            let pfns: Vec<Pfn> = (0..pages).map(|_| self.memory.alloc()).collect();
            for (i, chunk) in data.chunks(1).enumerate() {
                let at = offset + i;
                self.memory
                    .write(pfns[at / PAGE_SIZE], at % PAGE_SIZE, chunk);
            }
            let mut out = [TxBuffer {
                pfn: Pfn(0),
                offset: 0,
                len: 0,
            }; MAX_FRAGMENTS];
            let n = fragments_of(&pfns, offset, data.len(), &mut out).unwrap();
            out[..n].to_vec()
        }

        fn poll(&mut self) -> usize {
            let done = &mut self.done;
            self.queue
                .poll(&self.grants, usize::MAX, &mut self.stats, &mut |c| {
                    done.push(c);
                })
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn single_slot_with_checksum_offload() {
        let mut r = rig(CAPS);
        let data = pattern(60);
        let buffers = r.buffers(&data, 100);
        let offload = TxOffload {
            checksum_blank: true,
            ..TxOffload::default()
        };
        r.queue
            .submit(
                &r.grants,
                &TxPacket {
                    buffers: &buffers,
                    offload,
                    tag: 7,
                },
                &mut r.stats,
            )
            .unwrap();
        assert!(r.queue.push());
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].data, data);
        assert_eq!(sent[0].flags, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED);
        assert_eq!(r.grants.active(), 1, "granted until answered");
        assert_eq!(r.poll(), 1);
        assert_eq!(
            r.done,
            [TxCompletion {
                tag: 7,
                status: TxStatus::Okay
            }]
        );
        assert_eq!(r.grants.active(), 0);
        assert_eq!((r.stats.tx_packets_queued, r.stats.tx_packets_ok), (1, 1));
    }

    #[test]
    fn gso_chain_over_pages() {
        let mut r = rig(CAPS);
        let data = pattern(65_000);
        let buffers = r.buffers(&data, 4000);
        assert_eq!(buffers.len(), 17);
        let gso = Some(Gso {
            kind: GsoKind::TcpV6,
            mss: 1440,
        });
        let offload = TxOffload {
            checksum_blank: true,
            data_validated: true,
            gso,
        };
        r.queue
            .submit(
                &r.grants,
                &TxPacket {
                    buffers: &buffers,
                    offload,
                    tag: 1,
                },
                &mut r.stats,
            )
            .unwrap();
        r.queue.push();
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!(sent[0].data, data);
        assert_eq!(sent[0].slots, 18);
        assert!(sent[0].flags & NETTXF_EXTRA_INFO != 0 && sent[0].flags & NETTXF_MORE_DATA != 0);
        let extra = sent[0].extras[0];
        assert_eq!(extra.r#type, XEN_NETIF_EXTRA_TYPE_GSO);
        assert_eq!(
            (extra.gso().size, extra.gso().r#type),
            (1440, XEN_NETIF_GSO_TYPE_TCPV6)
        );
        assert_eq!(r.poll(), 18);
        assert_eq!(
            r.done,
            [TxCompletion {
                tag: 1,
                status: TxStatus::Okay
            }]
        );
        assert_eq!(r.grants.active(), 0);
    }

    #[test]
    fn refusals_write_nothing() {
        let caps = TxCapabilities {
            max_slots: 1,
            gso_tcpv4: false,
            multicast_control: false,
            always_copy: true,
            ..CAPS
        };
        let mut r = rig(caps);
        let two = r.buffers(&pattern(5000), 0);
        let p = TxPacket {
            buffers: &two,
            offload: TxOffload::default(),
            tag: 0,
        };
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::TooManySlots { needed: 2, max: 1 })
        );
        let one = r.buffers(&pattern(100), 0);
        let gso = TxOffload {
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1000,
            }),
            ..TxOffload::default()
        };
        let p = TxPacket {
            buffers: &one,
            offload: gso,
            tag: 0,
        };
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::Unsupported)
        );
        assert_eq!(
            r.queue
                .submit_multicast(MacAddress([1, 0, 0x5e, 0, 0, 1]), true, 0, &mut r.stats),
            Err(TxError::Unsupported)
        );
        let bad = [TxBuffer {
            pfn: Pfn(1),
            offset: 4000,
            len: 200,
        }];
        let p = TxPacket {
            buffers: &bad,
            offload: TxOffload::default(),
            tag: 0,
        };
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::BadPacket)
        );
        *r.grants.limit.borrow_mut() = Some(0);
        let p = TxPacket {
            buffers: &one,
            offload: TxOffload::default(),
            tag: 0,
        };
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::NoGrants)
        );
        *r.grants.limit.borrow_mut() = None;
        for _ in 0..256 {
            r.queue.submit(&r.grants, &p, &mut r.stats).unwrap();
        }
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::RingFull)
        );
        assert_eq!(r.grants.active(), 256);
    }

    #[test]
    fn multicast_control_is_a_dataless_extra() {
        let mut r = rig(CAPS);
        let mac = MacAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        r.queue
            .submit_multicast(mac, true, 99, &mut r.stats)
            .unwrap();
        r.queue.push();
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!(sent[0].data.len(), 0);
        assert_eq!(sent[0].extras[0].r#type, XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
        assert_eq!(sent[0].extras[0].mcast().addr, mac.0);
        r.poll();
        assert_eq!(
            r.done,
            [TxCompletion {
                tag: 99,
                status: TxStatus::Okay
            }]
        );
    }

    fn hostile(setup: impl FnOnce(&mut Rig)) -> Rig {
        let mut r = rig(CAPS);
        for tag in 0..3 {
            let b = r.buffers(&pattern(3000), 2000);
            r.queue
                .submit(
                    &r.grants,
                    &TxPacket {
                        buffers: &b,
                        offload: TxOffload::default(),
                        tag,
                    },
                    &mut r.stats,
                )
                .unwrap();
        }
        r.queue.push();
        setup(&mut r);
        r.poll();
        r
    }

    #[test]
    fn unknown_id_breaks_and_fails_everything() {
        let r = hostile(|r| r.backend.raw_tx_response(200, NETIF_RSP_OKAY));
        assert_eq!(
            r.queue.broken(),
            Some(Violation::UnknownId {
                ring: "tx",
                id: 200
            })
        );
        assert_eq!(r.done.len(), 3);
        assert!(r.done.iter().all(|c| c.status == TxStatus::Error));
        assert_eq!(r.grants.active(), 0);
        assert_eq!(r.queue.in_flight(), 0);
    }

    #[test]
    fn duplicate_and_bad_status_break() {
        let r = hostile(|r| {
            r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
            r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
        });
        assert_eq!(
            r.queue.broken(),
            Some(Violation::UnknownId { ring: "tx", id: 0 })
        );
        let r = hostile(|r| r.backend.raw_tx_response(0, 5));
        assert_eq!(
            r.queue.broken(),
            Some(Violation::BadTxStatus { id: 0, status: 5 })
        );
    }

    #[test]
    fn producer_overflow_breaks() {
        let mut r = hostile(|r| {
            r.backend
                .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        });
        assert_eq!(r.done.len(), 3);
        // Nothing outstanding now: any response is one too many.
        r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
        r.poll();
        assert!(matches!(
            r.queue.broken(),
            Some(Violation::ProducerOverflow { ring: "tx", .. })
        ));
        let p = TxPacket {
            buffers: &[],
            offload: TxOffload::default(),
            tag: 0,
        };
        assert_eq!(
            r.queue.submit(&r.grants, &p, &mut r.stats),
            Err(TxError::Broken)
        );
    }

    #[test]
    fn a_grant_still_mapped_holds_its_packet_back() {
        let mut r = hostile(|r| {
            let sent = r
                .backend
                .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, false);
            r.grants.keep_mapped(sent[1].grefs[0], true);
            r.backend
                .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, false);
            // Answer the second packet's slots only.
            r.backend.raw_tx_response(2, NETIF_RSP_OKAY);
        });
        assert_eq!(
            r.queue.broken(),
            Some(Violation::GrantStillMapped { ring: "tx" })
        );
        let tags: Vec<u64> = r.done.iter().map(|c| c.tag).collect();
        assert_eq!(
            tags,
            [0, 2],
            "packet 1's page must not be handed back while mapped"
        );
        assert_eq!(r.queue.quarantined(), 1);
        let gref = GrantRef(3);
        r.grants.keep_mapped(gref, false);
        r.poll();
        assert_eq!(r.queue.quarantined(), 0);
        assert_eq!(r.done.len(), 3);
        assert_eq!(r.grants.active(), 0);
    }

    /// `count` fragments of `len` bytes, each alone in a fresh page at a
    /// varying offset, and the bytes they carry.
    fn scattered(r: &Rig, count: usize, len: usize) -> (Vec<TxBuffer>, Vec<u8>) {
        let mut data = Vec::new();
        let mut buffers = Vec::new();
        for i in 0..count {
            let pfn = r.memory.alloc();
            let offset = (i * 37) % (PAGE_SIZE - len);
            let bytes: Vec<u8> = (0..len)
                .map(|j| u8::try_from((i * 7 + j) % 256).unwrap())
                .collect();
            r.memory.write(pfn, offset, &bytes);
            data.extend_from_slice(&bytes);
            buffers.push(TxBuffer {
                pfn,
                offset: u16::try_from(offset).unwrap(),
                len: u16::try_from(len).unwrap(),
            });
        }
        (buffers, data)
    }

    fn with_pool(caps: TxCapabilities, pages: usize) -> Rig {
        let mut r = rig(caps);
        let pfns: Vec<Pfn> = (0..pages).map(|_| r.memory.alloc()).collect();
        let pool = TxCopyPool::new(&r.grants, DomId(0), &pfns).unwrap();
        assert!(r.queue.attach_copy_pool(pool).unwrap().is_none());
        r
    }

    fn coalesce(
        r: &mut Rig,
        buffers: &[TxBuffer],
        offload: TxOffload,
        tag: u64,
    ) -> Result<(), TxError> {
        r.queue.submit_coalesced(
            &r.grants,
            &r.memory,
            &TxPacket {
                buffers,
                offload,
                tag,
            },
            &mut r.stats,
        )
    }

    const SLOTS_18: TxCapabilities = TxCapabilities {
        max_slots: 18,
        ..CAPS
    };

    #[test]
    fn forty_fragments_coalesce_into_an_18_slot_backend() {
        let mut r = with_pool(SLOTS_18, 2 * TxCopyPool::PAGES_PER_PACKET);
        let (buffers, data) = scattered(&r, 40, 1500);
        let offload = TxOffload {
            checksum_blank: true,
            data_validated: true,
            gso: Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448,
            }),
        };
        assert_eq!(
            r.queue.submit(
                &r.grants,
                &TxPacket {
                    buffers: &buffers,
                    offload,
                    tag: 5
                },
                &mut r.stats
            ),
            Err(TxError::TooManySlots {
                needed: 40,
                max: MAX_FRAGMENTS
            }),
            "the plain path still refuses"
        );
        let granted = r.grants.active();
        coalesce(&mut r, &buffers, offload, 5).unwrap();
        assert_eq!(r.grants.active(), granted, "pool pages are granted once");
        assert_eq!(r.stats.tx_packets_coalesced, 1);
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 32 - 15);
        r.queue.push();
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].data, data, "byte-exact");
        assert_eq!(sent[0].slots, 15 + 1, "60000 bytes in 15 pages, plus GSO");
        assert_eq!(
            sent[0].flags,
            NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED | NETTXF_EXTRA_INFO | NETTXF_MORE_DATA
        );
        assert_eq!(
            (sent[0].extras[0].gso().size, sent[0].extras[0].gso().r#type),
            (1448, XEN_NETIF_GSO_TYPE_TCPV4)
        );
        assert_eq!(r.poll(), 16);
        assert_eq!(
            r.done,
            [TxCompletion {
                tag: 5,
                status: TxStatus::Okay
            }]
        );
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 32);
        assert_eq!(r.grants.active(), granted, "answers do not revoke the pool");
        // A packet that fits still takes the zero-copy path.
        let (few, few_data) = scattered(&r, 3, 100);
        coalesce(&mut r, &few, TxOffload::default(), 6).unwrap();
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 32);
        r.queue.push();
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!((sent[0].data.clone(), sent[0].slots), (few_data, 3));
        r.poll();
        let mut pool = r.queue.detach_copy_pool().unwrap();
        assert_eq!(pool.revoke_all(&r.grants).len(), 32);
        assert_eq!(r.grants.active(), 0);
    }

    #[test]
    fn always_copy_copies_even_one_fragment() {
        let caps = TxCapabilities {
            always_copy: true,
            ..CAPS
        };
        let mut r = with_pool(caps, 4);
        let (buffers, data) = scattered(&r, 2, 700);
        coalesce(&mut r, &buffers, TxOffload::default(), 1).unwrap();
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 3);
        r.queue.push();
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, true);
        assert_eq!(
            (sent[0].data.clone(), sent[0].slots, sent[0].flags),
            (data, 1, 0)
        );
        let pool_pfn = r.grants.resolve(sent[0].grefs[0].0, false).unwrap();
        assert!(buffers.iter().all(|b| b.pfn != pool_pfn));
        r.poll();
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 4);
    }

    #[test]
    fn pool_exhaustion_is_busy_and_pages_wait_for_their_answer() {
        let mut r = with_pool(
            TxCapabilities {
                max_slots: 2,
                ..CAPS
            },
            3,
        );
        let (a, a_data) = scattered(&r, 3, 2000);
        coalesce(&mut r, &a, TxOffload::default(), 1).unwrap();
        let (b, _) = scattered(&r, 3, 2000);
        assert_eq!(
            coalesce(&mut r, &b, TxOffload::default(), 2),
            Err(TxError::Busy)
        );
        assert_eq!(
            r.queue.copy_pool().unwrap().free_pages(),
            1,
            "nothing held on refusal"
        );
        assert_eq!(r.queue.in_flight(), 1);
        // Too long for two slots even when packed.
        let (c, _) = scattered(&r, 5, 2000);
        assert_eq!(
            coalesce(&mut r, &c, TxOffload::default(), 3),
            Err(TxError::TooManySlots { needed: 3, max: 2 })
        );
        r.queue.push();
        // Not answered yet: the pages stay out of the pool.
        let sent = r
            .backend
            .take_tx(&r.grants, &r.memory, NETIF_RSP_OKAY, false);
        assert_eq!(sent[0].data, a_data);
        assert_eq!(
            coalesce(&mut r, &b, TxOffload::default(), 2),
            Err(TxError::Busy)
        );
        assert!(r.queue.detach_copy_pool().is_none(), "pages in flight");
        r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
        r.poll();
        assert!(r.done.is_empty(), "one of two slots answered");
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 2);
        r.backend.raw_tx_response(1, NETIF_RSP_DROPPED);
        r.poll();
        assert_eq!(
            r.done,
            [TxCompletion {
                tag: 1,
                status: TxStatus::Dropped
            }]
        );
        coalesce(&mut r, &b, TxOffload::default(), 2).unwrap();
    }

    #[test]
    fn coalescing_refusals_write_nothing() {
        let mut r = rig(TxCapabilities {
            max_slots: 4,
            ..CAPS
        });
        let (many, _) = scattered(&r, 6, 100);
        assert_eq!(
            coalesce(&mut r, &many, TxOffload::default(), 0),
            Err(TxError::Busy),
            "no pool"
        );
        let mut r = with_pool(
            TxCapabilities {
                max_slots: 4,
                gso_tcpv6: false,
                ..CAPS
            },
            4,
        );
        let (many, _) = scattered(&r, 6, 100);
        let gso = TxOffload {
            gso: Some(Gso {
                kind: GsoKind::TcpV6,
                mss: 1000,
            }),
            ..TxOffload::default()
        };
        assert_eq!(coalesce(&mut r, &many, gso, 0), Err(TxError::Unsupported));
        let mut bad = many.clone();
        bad[3].pfn = Pfn(0xdead_0000);
        assert_eq!(
            coalesce(&mut r, &bad, TxOffload::default(), 0),
            Err(TxError::BadFrame)
        );
        bad[3] = TxBuffer {
            pfn: many[3].pfn,
            offset: 4000,
            len: 200,
        };
        assert_eq!(
            coalesce(&mut r, &bad, TxOffload::default(), 0),
            Err(TxError::BadPacket)
        );
        assert_eq!(
            coalesce(&mut r, &[], TxOffload::default(), 0),
            Err(TxError::BadPacket)
        );
        assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 4);
        assert_eq!(r.queue.in_flight(), 0);
        assert!(!r.queue.push());
        // Another backend's pool is refused.
        let other = TxCopyPool::new(&r.grants, DomId(7), &[r.memory.alloc()]).unwrap();
        assert!(r.queue.attach_copy_pool(other).is_err());
    }

    #[test]
    fn hostile_answers_to_copied_packets() {
        for case in 0..3 {
            let mut r = with_pool(SLOTS_18, 40);
            for tag in 0..2 {
                let (b, _) = scattered(&r, 20, 1000);
                coalesce(&mut r, &b, TxOffload::default(), tag).unwrap();
            }
            assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 30);
            r.queue.push();
            match case {
                0 => r.backend.raw_tx_response(200, NETIF_RSP_OKAY),
                1 => {
                    r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
                    r.backend.raw_tx_response(0, NETIF_RSP_OKAY);
                }
                _ => r.backend.raw_tx_response(1, 9),
            }
            r.poll();
            assert!(r.queue.broken().is_some(), "case {case}");
            assert_eq!(r.done.len(), 2);
            assert!(r.done.iter().all(|c| c.status == TxStatus::Error));
            assert_eq!(r.queue.copy_pool().unwrap().free_pages(), 40);
            assert_eq!(r.grants.active(), 40, "pool grants kept until revoke_all");
            let (b, _) = scattered(&r, 20, 1000);
            assert_eq!(
                coalesce(&mut r, &b, TxOffload::default(), 9),
                Err(TxError::Broken)
            );
            let mut pool = r.queue.detach_copy_pool().unwrap();
            assert_eq!(pool.revoke_all(&r.grants).len(), 40);
            assert_eq!(r.grants.active(), 0);
        }
    }

    #[test]
    fn a_pool_page_still_mapped_is_not_released() {
        let r = rig(CAPS);
        let pfns: Vec<Pfn> = (0..3).map(|_| r.memory.alloc()).collect();
        let mut pool = TxCopyPool::new(&r.grants, DomId(0), &pfns).unwrap();
        r.grants.keep_mapped(GrantRef(2), true);
        assert_eq!(pool.revoke_all(&r.grants).len(), 2);
        assert_eq!(pool.granted(), 1);
        r.grants.keep_mapped(GrantRef(2), false);
        assert_eq!(pool.revoke_all(&r.grants), [pfns[1]]);
        assert_eq!(r.grants.active(), 0);
        *r.grants.limit.borrow_mut() = Some(1);
        assert_eq!(
            TxCopyPool::new(&r.grants, DomId(0), &pfns).map(|_| ()),
            Err(crate::coalesce::PoolError::Grant(GrantError::Exhausted))
        );
        assert_eq!(r.grants.active(), 0, "partial grants undone");
        assert_eq!(
            TxCopyPool::new(&r.grants, DomId(0), &[]).map(|_| ()),
            Err(crate::coalesce::PoolError::BadSize)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any fragment layout, any slot limit: the packet arrives byte-exact
        /// within the limit with its flags, or is refused with nothing held;
        /// pool pages all come back once answered.
        #[test]
        fn coalescing_is_byte_exact_or_refused(
            max_slots in 1usize..=MAX_FRAGMENTS,
            always_copy in proptest::prelude::any::<bool>(),
            fragments in proptest::collection::vec((0usize..4096, 1usize..=4096), 1..48),
            blank in proptest::prelude::any::<bool>(),
            status in 0usize..3,
        ) {
            let caps = TxCapabilities { max_slots, always_copy, ..CAPS };
            let mut r = with_pool(caps, TxCopyPool::PAGES_PER_PACKET);
            let mut data = Vec::new();
            let mut buffers = Vec::new();
            for (i, &(offset, len)) in fragments.iter().enumerate() {
                let len = len.min(PAGE_SIZE - offset).max(1);
                let offset = offset.min(PAGE_SIZE - len);
                let pfn = r.memory.alloc();
                let bytes: Vec<u8> = (0..len).map(|j| u8::try_from((i * 13 + j * 7) % 256).unwrap()).collect();
                r.memory.write(pfn, offset, &bytes);
                data.extend_from_slice(&bytes);
                buffers.push(TxBuffer { pfn, offset: u16::try_from(offset).unwrap(), len: u16::try_from(len).unwrap() });
            }
            let offload = TxOffload { checksum_blank: blank, ..TxOffload::default() };
            let result = coalesce(&mut r, &buffers, offload, 77);
            let copy = always_copy || buffers.len() > max_slots;
            if data.len() > 65_535 {
                proptest::prop_assert_eq!(result, Err(TxError::BadPacket));
            } else if copy && data.len().div_ceil(PAGE_SIZE) > max_slots {
                proptest::prop_assert_eq!(result, Err(TxError::TooManySlots { needed: data.len().div_ceil(PAGE_SIZE), max: max_slots }));
            } else {
                proptest::prop_assert_eq!(result, Ok(()));
                r.queue.push();
                let answer = [NETIF_RSP_OKAY, NETIF_RSP_DROPPED, NETIF_RSP_ERROR][status];
                let sent = r.backend.take_tx(&r.grants, &r.memory, answer, true);
                proptest::prop_assert_eq!(sent.len(), 1);
                proptest::prop_assert!(sent[0].data == data, "byte-exact");
                proptest::prop_assert!(sent[0].slots <= max_slots);
                let want = if blank { NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED } else { 0 };
                proptest::prop_assert_eq!(sent[0].flags & !NETTXF_MORE_DATA, want);
                r.poll();
                let want = [TxStatus::Okay, TxStatus::Dropped, TxStatus::Error][status];
                proptest::prop_assert_eq!(r.done.clone(), vec![TxCompletion { tag: 77, status: want }]);
                proptest::prop_assert_eq!(r.stats.tx_packets_coalesced, u64::from(copy));
            }
            proptest::prop_assert_eq!(r.queue.in_flight(), 0);
            proptest::prop_assert_eq!(r.queue.copy_pool().unwrap().free_pages(), TxCopyPool::PAGES_PER_PACKET);
            proptest::prop_assert_eq!(r.grants.active(), TxCopyPool::PAGES_PER_PACKET);
        }
    }
}
