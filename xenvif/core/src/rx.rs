//! The receive side of one queue: granted pages are posted to the backend; its
//! responses are validated and reassembled into packets.
//!
//! Response `i` always describes the buffer posted by request `i` (netback
//! answers requests in order, one response per request, extra-info slots
//! included), so the buffer table is indexed by ring index; the id echoed in a
//! data response must be that request's id. A packet is a first response
//! (offload flags), optional extra-info slots (GSO, hash) chained by
//! `XEN_NETIF_EXTRA_FLAG_MORE`, then more data responses while
//! `NETRXF_more_data` is set. A packet may straddle two polls.

use alloc::vec::Vec;

use xen_abi::netif::{
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_GSO_PREFIX,
    NETRXF_MORE_DATA, NetifRxFrontRing, NetifRxRequest, NetifRxResponse,
    XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use xen_abi::ring::{RingMemory, RingSetupError};
use xenbus_interface::api::{DomId, GrantError, GrantRef, GrantTable, PAGE_SIZE, Pfn};

use crate::error::Violation;
use crate::rss::HashTypes;
use crate::stats::Statistics;
use crate::tx::{Gso, GsoKind};

/// Most data slots one received packet may use: 64 KiB in pages plus one for
/// an unaligned start, plus one (Linux netfront's allowance).
pub const MAX_RX_SLOTS: usize = xen_abi::netif::XEN_NETIF_NR_SLOTS_MIN + 1;

/// Most extra-info slots after one response: one per type the backend may send
/// on receive (GSO, hash).
const MAX_RX_EXTRAS: usize = 2;

/// One piece of a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFragment {
    /// The page (no longer granted: the caller owns it again).
    pub pfn: Pfn,
    /// Offset of the data in the page.
    pub offset: u16,
    /// Bytes.
    pub len: u16,
}

/// The hash the backend computed for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxHash {
    /// Which input was hashed (exactly one bit).
    pub hash_type: HashTypes,
    /// The Toeplitz hash.
    pub value: u32,
}

/// A received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket<'a> {
    /// Its pieces, in order; the pages are the caller's again.
    pub fragments: &'a [RxFragment],
    /// Total bytes.
    pub len: usize,
    /// The backend vouches for the data (`NETRXF_data_validated`): checksums
    /// need not be verified.
    pub data_validated: bool,
    /// The TCP/UDP checksum field is blank (`NETRXF_csum_blank`: the packet came
    /// from a local domain that offloaded it); the data is good.
    pub checksum_blank: bool,
    /// A large (coalesced) packet and its segment size.
    pub gso: Option<Gso>,
    /// The backend's hash of it.
    pub hash: Option<RxHash>,
}

/// What a poll hands to the caller.
#[derive(Debug)]
pub enum RxEvent<'a> {
    /// A whole packet.
    Packet(RxPacket<'a>),
    /// A page that held no packet data (an extra-info slot, a failed packet,
    /// or teardown): the caller's again, to post anew or free.
    Recycle(Pfn),
}

/// Why a page was not posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPostError {
    /// Every slot holds a buffer already.
    Full,
    /// No grant reference available now.
    NoGrants,
    /// The device is broken.
    Broken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Expecting a packet's first response.
    Idle,
    /// Expecting extra-info slots (then data if `more_data`).
    Extras,
    /// Expecting more data responses.
    Data,
}

#[derive(Debug)]
struct Partial {
    stage: Stage,
    fragments: [RxFragment; MAX_RX_SLOTS],
    count: usize,
    len: usize,
    first_flags: u16,
    more_data: bool,
    failed: bool,
    extras: usize,
    gso: Option<Gso>,
    hash: Option<RxHash>,
}

impl Partial {
    fn new() -> Self {
        Self {
            stage: Stage::Idle,
            fragments: [RxFragment {
                pfn: Pfn(0),
                offset: 0,
                len: 0,
            }; MAX_RX_SLOTS],
            count: 0,
            len: 0,
            first_flags: 0,
            more_data: false,
            failed: false,
            extras: 0,
            gso: None,
            hash: None,
        }
    }
}

/// The receive half of one queue over ring memory `R`.
#[derive(Debug)]
pub struct RxQueue<R> {
    ring: NetifRxFrontRing<R>,
    backend: DomId,
    /// Indexed by ring index modulo the ring size.
    buffers: Vec<Option<(Pfn, GrantRef)>>,
    partial: Partial,
    /// Pages whose grant the backend would not release: never handed back.
    quarantine: Vec<(Pfn, GrantRef)>,
    broken: Option<Violation>,
}

impl<R: RingMemory> RxQueue<R> {
    /// Initialises an rx ring in `memory` (one page, granted to the backend by
    /// the caller).
    pub fn new(memory: R, backend: DomId) -> Result<Self, RingSetupError> {
        let ring = NetifRxFrontRing::new(memory)?;
        let size = usize::try_from(ring.size()).unwrap_or(0);
        Ok(Self {
            ring,
            backend,
            buffers: alloc::vec![None; size],
            partial: Partial::new(),
            quarantine: Vec::with_capacity(size),
            broken: None,
        })
    }

    /// Why the queue is broken, if it is.
    pub fn broken(&self) -> Option<Violation> {
        self.broken
    }

    /// How many more pages [`RxQueue::post`] accepts now.
    pub fn free_slots(&self) -> usize {
        usize::try_from(self.ring.free_requests()).unwrap_or(0)
    }

    /// Pages held by the backend now.
    pub fn posted(&self) -> usize {
        self.buffers.iter().filter(|b| b.is_some()).count()
    }

    /// Pages quarantined because the backend kept them mapped.
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Gives the ring memory back.
    pub fn into_memory(self) -> R {
        self.ring.into_memory()
    }

    /// Grants `pfn` to the backend (writable) and queues it as a receive
    /// buffer. Call [`RxQueue::push`] after a batch.
    pub fn post(&mut self, grants: &impl GrantTable, pfn: Pfn) -> Result<(), RxPostError> {
        if self.broken.is_some() {
            return Err(RxPostError::Broken);
        }
        let idx = self.ring.req_prod_pvt();
        let slot = self.slot_of(idx);
        if self.ring.is_full() || self.buffers.get(slot).is_none_or(Option::is_some) {
            return Err(RxPostError::Full);
        }
        let gref = grants
            .grant(self.backend, pfn, false)
            .map_err(|_| RxPostError::NoGrants)?;
        let id = u16::try_from(slot).unwrap_or(0);
        if self
            .ring
            .write_request(&NetifRxRequest {
                id,
                pad: 0,
                gref: gref.0,
            })
            .is_err()
        {
            let _ = grants.revoke(gref);
            return Err(RxPostError::Full);
        }
        self.buffers[slot] = Some((pfn, gref));
        Ok(())
    }

    /// Publishes posted buffers; `true` when the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_requests_and_check_notify()
    }

    /// `true` when responses wait (after re-arming the event): poll again.
    pub fn more_to_do(&mut self) -> bool {
        self.broken.is_none() && self.ring.final_check_for_responses().unwrap_or(true)
    }

    fn slot_of(&self, idx: u32) -> usize {
        // Ring sizes are powers of two no larger than the buffer table.
        usize::try_from(idx).unwrap_or(0) % self.buffers.len().max(1)
    }

    /// Consumes up to `budget` responses, handing whole packets and freed
    /// pages to `deliver`. Returns how many responses were consumed. A protocol
    /// violation breaks the queue and hands back every page it can.
    pub fn poll(
        &mut self,
        grants: &impl GrantTable,
        budget: usize,
        stats: &mut Statistics,
        deliver: &mut impl FnMut(RxEvent<'_>),
    ) -> usize {
        if self.broken.is_some() {
            return 0;
        }
        let mut consumed = 0;
        let result = loop {
            if consumed >= budget {
                break Ok(());
            }
            let idx = self.ring.rsp_cons();
            let response = match self.ring.responses() {
                Err(e) => {
                    break Err(Violation::ProducerOverflow {
                        ring: "rx",
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
            if let Err(v) = self.one_response(grants, idx, response, stats, deliver) {
                break Err(v);
            }
        };
        if let Err(violation) = result {
            self.fail(grants, violation, deliver);
        }
        consumed
    }

    fn one_response(
        &mut self,
        grants: &impl GrantTable,
        idx: u32,
        response: NetifRxResponse,
        stats: &mut Statistics,
        deliver: &mut impl FnMut(RxEvent<'_>),
    ) -> Result<(), Violation> {
        let slot = self.slot_of(idx);
        let Some((pfn, gref)) = self.buffers.get_mut(slot).and_then(Option::take) else {
            return Err(Violation::UnknownId {
                ring: "rx",
                id: response.id,
            });
        };
        if grants.revoke(gref) == Err(GrantError::InUse) {
            self.quarantine.push((pfn, gref));
            return Err(Violation::GrantStillMapped { ring: "rx" });
        }
        if self.partial.stage == Stage::Extras {
            deliver(RxEvent::Recycle(pfn));
            return self.extra(response, stats, deliver);
        }
        if usize::from(response.id) != slot {
            deliver(RxEvent::Recycle(pfn));
            return Err(Violation::UnknownId {
                ring: "rx",
                id: response.id,
            });
        }
        if response.flags & NETRXF_GSO_PREFIX != 0 {
            deliver(RxEvent::Recycle(pfn));
            return Err(Violation::UnexpectedFlags {
                ring: "rx",
                flags: response.flags,
            });
        }
        let len = if let Ok(len) = u16::try_from(response.status) {
            if usize::from(response.offset) + usize::from(len) > PAGE_SIZE {
                deliver(RxEvent::Recycle(pfn));
                return Err(Violation::RxOutOfPage {
                    offset: response.offset,
                    len: response.status,
                });
            }
            len
        } else {
            // A negative status: the backend failed this packet.
            self.partial.failed = true;
            0
        };
        let partial = &mut self.partial;
        if partial.count >= MAX_RX_SLOTS {
            deliver(RxEvent::Recycle(pfn));
            return Err(Violation::RxTooManySlots { max: MAX_RX_SLOTS });
        }
        partial.fragments[partial.count] = RxFragment {
            pfn,
            offset: response.offset,
            len,
        };
        partial.count += 1;
        partial.len += usize::from(len);
        partial.more_data = response.flags & NETRXF_MORE_DATA != 0;
        if partial.stage == Stage::Idle {
            partial.first_flags = response.flags;
            if response.flags & NETRXF_EXTRA_INFO != 0 {
                partial.stage = Stage::Extras;
                return Ok(());
            }
        }
        if partial.more_data {
            partial.stage = Stage::Data;
            Ok(())
        } else {
            self.finish(stats, deliver);
            Ok(())
        }
    }

    fn extra(
        &mut self,
        response: NetifRxResponse,
        stats: &mut Statistics,
        deliver: &mut impl FnMut(RxEvent<'_>),
    ) -> Result<(), Violation> {
        let extra = response.to_extra_info();
        let partial = &mut self.partial;
        partial.extras += 1;
        if partial.extras > MAX_RX_EXTRAS {
            return Err(Violation::BadExtraInfo { kind: extra.r#type });
        }
        match extra.r#type {
            XEN_NETIF_EXTRA_TYPE_GSO if partial.gso.is_none() => {
                let gso = extra.gso();
                let kind = match gso.r#type {
                    XEN_NETIF_GSO_TYPE_TCPV4 => GsoKind::TcpV4,
                    XEN_NETIF_GSO_TYPE_TCPV6 => GsoKind::TcpV6,
                    _ => {
                        return Err(Violation::BadGso {
                            kind: gso.r#type,
                            size: gso.size,
                        });
                    }
                };
                if gso.size == 0 {
                    return Err(Violation::BadGso {
                        kind: gso.r#type,
                        size: gso.size,
                    });
                }
                partial.gso = Some(Gso {
                    kind,
                    mss: gso.size,
                });
            }
            XEN_NETIF_EXTRA_TYPE_HASH if partial.hash.is_none() => {
                let hash = extra.hash();
                // The type is a bit number (`_XEN_NETIF_CTRL_HASH_TYPE_*`).
                let hash_type = HashTypes::from_bits_truncate(
                    1u32.checked_shl(u32::from(hash.r#type)).unwrap_or(0),
                );
                if hash_type.is_empty()
                    || u32::from(hash.algorithm) != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ
                {
                    return Err(Violation::BadExtraInfo { kind: extra.r#type });
                }
                // netback stores the hash in host order (little-endian x86).
                partial.hash = Some(RxHash {
                    hash_type,
                    value: u32::from_le_bytes(hash.value),
                });
            }
            kind => return Err(Violation::BadExtraInfo { kind }),
        }
        if extra.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0 {
            return Ok(());
        }
        if partial.more_data {
            partial.stage = Stage::Data;
        } else {
            self.finish(stats, deliver);
        }
        Ok(())
    }

    fn finish(&mut self, stats: &mut Statistics, deliver: &mut impl FnMut(RxEvent<'_>)) {
        let partial = core::mem::replace(&mut self.partial, Partial::new());
        let fragments = partial.fragments.get(..partial.count).unwrap_or(&[]);
        if partial.failed {
            stats.rx_errors += 1;
            for fragment in fragments {
                deliver(RxEvent::Recycle(fragment.pfn));
            }
            return;
        }
        stats.rx_packets += 1;
        stats.rx_bytes += u64::try_from(partial.len).unwrap_or(0);
        let checksum_blank = partial.first_flags & NETRXF_CSUM_BLANK != 0;
        stats.rx_checksum_blank += u64::from(checksum_blank);
        stats.rx_gso_packets += u64::from(partial.gso.is_some());
        stats.rx_hashed_packets += u64::from(partial.hash.is_some());
        deliver(RxEvent::Packet(RxPacket {
            fragments,
            len: partial.len,
            data_validated: partial.first_flags & NETRXF_DATA_VALIDATED != 0,
            checksum_blank,
            gso: partial.gso,
            hash: partial.hash,
        }));
    }

    /// Marks the queue broken for `violation` and hands back every page.
    pub fn fail(
        &mut self,
        grants: &impl GrantTable,
        violation: Violation,
        deliver: &mut impl FnMut(RxEvent<'_>),
    ) {
        if self.broken.is_none() {
            self.broken = Some(violation);
        }
        self.release_all(grants, deliver);
    }

    /// Revokes every posted buffer and hands back every page whose grant
    /// ended (teardown, backend reset); the others are quarantined.
    pub fn release_all(&mut self, grants: &impl GrantTable, deliver: &mut impl FnMut(RxEvent<'_>)) {
        let partial = core::mem::replace(&mut self.partial, Partial::new());
        for fragment in partial.fragments.get(..partial.count).unwrap_or(&[]) {
            deliver(RxEvent::Recycle(fragment.pfn));
        }
        for entry in &mut self.buffers {
            if let Some((pfn, gref)) = entry.take() {
                if grants.revoke(gref) == Err(GrantError::InUse) {
                    self.quarantine.push((pfn, gref));
                } else {
                    deliver(RxEvent::Recycle(pfn));
                }
            }
        }
        let mut i = 0;
        while i < self.quarantine.len() {
            let (pfn, gref) = self.quarantine[i];
            if grants.revoke(gref) == Err(GrantError::InUse) {
                i += 1;
            } else {
                self.quarantine.swap_remove(i);
                deliver(RxEvent::Recycle(pfn));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeBackend, FakeGrants, FakeMemory};
    use alloc::sync::Arc;
    use xen_abi::netif::{
        NetifExtraGso, NetifExtraHash, NetifExtraInfo, NetifExtraMcast,
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
    };
    use xen_abi::ring::HeapRingMemory;

    /// A delivered packet: bytes, data validated, checksum blank, GSO, hash.
    type Delivered = (Vec<u8>, bool, bool, Option<Gso>, Option<RxHash>);

    struct Rig {
        memory: FakeMemory,
        grants: FakeGrants,
        queue: RxQueue<Arc<HeapRingMemory>>,
        backend: FakeBackend,
        stats: Statistics,
        /// Packets delivered.
        packets: Vec<Delivered>,
        recycled: Vec<Pfn>,
    }

    fn rig(pages: usize) -> Rig {
        let (tx, rx) = FakeBackend::ring_pages();
        let _tx = crate::tx::TxQueue::new(
            tx.clone(),
            DomId(0),
            crate::tx::TxCapabilities {
                max_slots: 1,
                csum_ipv4: false,
                csum_ipv6: false,
                gso_tcpv4: false,
                gso_tcpv6: false,
                multicast_control: false,
                always_copy: false,
            },
        )
        .unwrap();
        let mut r = Rig {
            memory: FakeMemory::default(),
            grants: FakeGrants::default(),
            queue: RxQueue::new(rx.clone(), DomId(0)).unwrap(),
            backend: FakeBackend::attach(tx, rx),
            stats: Statistics::default(),
            packets: Vec::new(),
            recycled: Vec::new(),
        };
        for _ in 0..pages {
            let pfn = r.memory.alloc();
            r.queue.post(&r.grants, pfn).unwrap();
        }
        r.queue.push();
        r
    }

    impl Rig {
        fn poll(&mut self, budget: usize) -> usize {
            let (memory, packets, recycled) = (&self.memory, &mut self.packets, &mut self.recycled);
            self.queue.poll(
                &self.grants,
                budget,
                &mut self.stats,
                &mut |event| match event {
                    RxEvent::Packet(p) => {
                        let mut data = Vec::new();
                        for f in p.fragments {
                            data.extend(memory.read(
                                f.pfn,
                                usize::from(f.offset),
                                usize::from(f.len),
                            ));
                            recycled.push(f.pfn);
                        }
                        assert_eq!(data.len(), p.len);
                        packets.push((data, p.data_validated, p.checksum_blank, p.gso, p.hash));
                    }
                    RxEvent::Recycle(pfn) => recycled.push(pfn),
                },
            )
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 253).unwrap()).collect()
    }

    fn gso_extra(kind: u8, size: u16) -> NetifExtraInfo {
        NetifExtraInfo::from_gso(
            0,
            NetifExtraGso {
                size,
                r#type: kind,
                pad: 0,
                features: 0,
            },
        )
    }

    fn hash_extra(bit: u8, value: u32, algorithm: u8) -> NetifExtraInfo {
        NetifExtraInfo::from_hash(
            0,
            NetifExtraHash {
                r#type: bit,
                algorithm,
                value: value.to_le_bytes(),
            },
        )
    }

    #[test]
    fn multi_slot_packet_with_gso_and_hash() {
        let mut r = rig(16);
        let data = pattern(9000);
        let extras = [
            gso_extra(XEN_NETIF_GSO_TYPE_TCPV4, 1448),
            hash_extra(1, 0x51cc_c178, 1),
        ];
        assert!(r.backend.deliver_rx(
            &r.grants,
            &r.memory,
            &data,
            NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK,
            &extras,
            4096
        ));
        assert_eq!(r.poll(usize::MAX), 5);
        assert_eq!(r.packets.len(), 1);
        let (got, validated, blank, gso, hash) = r.packets[0].clone();
        assert_eq!(got, data);
        assert!(validated && blank);
        assert_eq!(
            gso,
            Some(Gso {
                kind: GsoKind::TcpV4,
                mss: 1448
            })
        );
        assert_eq!(
            hash,
            Some(RxHash {
                hash_type: HashTypes::IPV4_TCP,
                value: 0x51cc_c178
            })
        );
        assert_eq!(
            r.recycled.len(),
            5,
            "3 data pages + 2 extra-slot pages come back"
        );
        assert_eq!(r.grants.active(), 11);
        assert_eq!(
            (
                r.stats.rx_packets,
                r.stats.rx_gso_packets,
                r.stats.rx_hashed_packets
            ),
            (1, 1, 1)
        );
        // Re-posting keeps the ring full.
        for pfn in core::mem::take(&mut r.recycled) {
            r.queue.post(&r.grants, pfn).unwrap();
        }
        r.queue.push();
        assert_eq!(r.queue.posted(), 16);
    }

    #[test]
    fn a_packet_may_straddle_polls() {
        let mut r = rig(8);
        let data = pattern(3000);
        assert!(
            r.backend
                .deliver_rx(&r.grants, &r.memory, &data, 0, &[hash_extra(2, 7, 1)], 1000)
        );
        let mut consumed = 0;
        while r.packets.is_empty() {
            consumed += r.poll(1);
            assert!(consumed <= 4);
        }
        assert_eq!(r.packets[0].0, data);
        assert_eq!(
            r.packets[0].4,
            Some(RxHash {
                hash_type: HashTypes::IPV6,
                value: 7
            })
        );
    }

    #[test]
    fn backend_reported_errors_drop_the_packet_only() {
        let mut r = rig(4);
        r.backend.raw_rx_response(NetifRxResponse {
            id: 0,
            offset: 0,
            flags: 0,
            status: -1,
        });
        r.poll(usize::MAX);
        assert_eq!(r.queue.broken(), None);
        assert_eq!(
            (r.packets.len(), r.recycled.len(), r.stats.rx_errors),
            (0, 1, 1)
        );
    }

    fn expect_broken(r: &mut Rig, violation: Violation) {
        r.poll(usize::MAX);
        assert_eq!(r.queue.broken(), Some(violation));
        assert_eq!(r.grants.active(), 0, "every grant ended");
        assert_eq!(r.queue.posted(), 0);
        assert_eq!(
            r.recycled.len() + r.queue.quarantined(),
            8,
            "every page handed back or quarantined"
        );
        assert_eq!(r.queue.post(&r.grants, Pfn(1)), Err(RxPostError::Broken));
    }

    #[test]
    fn data_past_the_page_end_breaks() {
        let mut r = rig(8);
        r.backend.raw_rx_response(NetifRxResponse {
            id: 0,
            offset: 4000,
            flags: 0,
            status: 97,
        });
        expect_broken(
            &mut r,
            Violation::RxOutOfPage {
                offset: 4000,
                len: 97,
            },
        );
    }

    #[test]
    fn wrong_id_breaks() {
        let mut r = rig(8);
        r.backend.raw_rx_response(NetifRxResponse {
            id: 5,
            offset: 0,
            flags: 0,
            status: 10,
        });
        expect_broken(&mut r, Violation::UnknownId { ring: "rx", id: 5 });
    }

    #[test]
    fn gso_prefix_breaks() {
        let mut r = rig(8);
        r.backend.raw_rx_response(NetifRxResponse {
            id: 0,
            offset: 0,
            flags: NETRXF_GSO_PREFIX,
            status: 10,
        });
        expect_broken(
            &mut r,
            Violation::UnexpectedFlags {
                ring: "rx",
                flags: NETRXF_GSO_PREFIX,
            },
        );
    }

    #[test]
    fn bad_extras_break() {
        let mcast = NetifExtraInfo::from_mcast(
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
            0,
            NetifExtraMcast { addr: [1; 6] },
        );
        let cases = [
            (
                vec![mcast],
                Violation::BadExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
                },
            ),
            (
                vec![gso_extra(9, 1000)],
                Violation::BadGso {
                    kind: 9,
                    size: 1000,
                },
            ),
            (
                vec![gso_extra(XEN_NETIF_GSO_TYPE_TCPV6, 0)],
                Violation::BadGso {
                    kind: XEN_NETIF_GSO_TYPE_TCPV6,
                    size: 0,
                },
            ),
            (
                vec![hash_extra(1, 1, 0)],
                Violation::BadExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_HASH,
                },
            ),
            (
                vec![hash_extra(9, 1, 1)],
                Violation::BadExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_HASH,
                },
            ),
            (
                vec![hash_extra(1, 1, 1), hash_extra(1, 1, 1)],
                Violation::BadExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_HASH,
                },
            ),
            (
                vec![
                    hash_extra(1, 1, 1),
                    gso_extra(XEN_NETIF_GSO_TYPE_TCPV4, 1),
                    hash_extra(1, 1, 1),
                ],
                Violation::BadExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_HASH,
                },
            ),
        ];
        for (extras, violation) in cases {
            let mut r = rig(8);
            assert!(
                r.backend
                    .deliver_rx(&r.grants, &r.memory, &pattern(100), 0, &extras, 4096)
            );
            expect_broken(&mut r, violation);
        }
    }

    #[test]
    fn endless_chains_break() {
        let mut r = rig(64);
        assert!(
            r.backend
                .deliver_rx(&r.grants, &r.memory, &pattern(40), 0, &[], 2)
        );
        r.poll(usize::MAX);
        assert_eq!(
            r.queue.broken(),
            Some(Violation::RxTooManySlots { max: MAX_RX_SLOTS })
        );
        assert_eq!(r.grants.active(), 0);
    }

    #[test]
    fn producer_overflow_breaks() {
        let mut r = rig(2);
        assert!(
            r.backend
                .deliver_rx(&r.grants, &r.memory, &pattern(10), 0, &[], 4096)
        );
        assert!(
            r.backend
                .deliver_rx(&r.grants, &r.memory, &pattern(10), 0, &[], 4096)
        );
        r.poll(usize::MAX);
        assert_eq!(r.packets.len(), 2);
        // Nothing posted any more: a further response overruns.
        assert!(r.backend.rx_phantom_response(NetifRxResponse {
            id: 0,
            offset: 0,
            flags: 0,
            status: 1
        }));
        r.poll(usize::MAX);
        assert!(matches!(
            r.queue.broken(),
            Some(Violation::ProducerOverflow { ring: "rx", .. })
        ));
    }

    #[test]
    fn a_page_still_mapped_is_quarantined() {
        let mut r = rig(8);
        let (_, gref) = r
            .backend
            .raw_rx_response(NetifRxResponse {
                id: 0,
                offset: 0,
                flags: 0,
                status: 10,
            })
            .unwrap();
        r.grants.keep_mapped(gref, true);
        r.poll(usize::MAX);
        assert_eq!(
            r.queue.broken(),
            Some(Violation::GrantStillMapped { ring: "rx" })
        );
        assert_eq!(r.queue.quarantined(), 1);
        assert_eq!(r.recycled.len(), 7);
        assert!(r.packets.is_empty());
    }
}
