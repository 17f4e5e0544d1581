//! A scripted netback for unit tests: it plays the backend on real in-memory
//! rings (the frontend's very ring memory, shared through an `Arc`), resolves
//! grants through a fake grant table onto fake guest pages, and can be told to
//! misbehave (bad ids, overflowing producers, grants kept mapped).
//!
//! A fake panics on a test's own mistakes (unknown frames, rings set up
//! wrongly): that is the test failing, not input handling.
#![allow(
    clippy::missing_panics_doc,
    reason = "test fake: panics are test failures"
)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use xen_abi::netif::{
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, NetifExtraInfo, NetifRxBackRing, NetifRxFrontRing, NetifRxRequest,
    NetifRxResponse, NetifTxBackRing, NetifTxFrontRing, NetifTxRequest, NetifTxResponse,
    XEN_NETIF_EXTRA_FLAG_MORE,
};
use xen_abi::ring::HeapRingMemory;
use xenbus_interface::api::{DomId, GrantError, GrantRef, GrantTable, PAGE_SIZE, Pfn};

/// Fake guest memory: frame number to page contents.
#[derive(Debug, Default)]
pub struct FakeMemory {
    pages: RefCell<BTreeMap<u64, Vec<u8>>>,
    next: RefCell<u64>,
}

impl FakeMemory {
    /// A new zeroed page.
    pub fn alloc(&self) -> Pfn {
        let mut next = self.next.borrow_mut();
        *next += 1;
        let pfn = 0x1000 + *next;
        self.pages.borrow_mut().insert(pfn, vec![0; PAGE_SIZE]);
        Pfn(pfn)
    }

    /// Writes into a page (panics on a frame never allocated: a test bug).
    pub fn write(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        let mut pages = self.pages.borrow_mut();
        let page = pages.get_mut(&pfn.0).expect("unknown pfn");
        page[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Reads from a page.
    pub fn read(&self, pfn: Pfn, offset: usize, len: usize) -> Vec<u8> {
        let pages = self.pages.borrow();
        pages.get(&pfn.0).expect("unknown pfn")[offset..offset + len].to_vec()
    }
}

#[derive(Clone, Copy, Debug)]
struct Grant {
    pfn: Pfn,
    domid: DomId,
    readonly: bool,
    /// The "backend" still maps it: revoke must fail.
    mapped: bool,
}

/// A fake grant table.
#[derive(Debug, Default)]
pub struct FakeGrants {
    grants: RefCell<BTreeMap<u32, Grant>>,
    next: RefCell<u32>,
    /// Refuse new grants once this many are active.
    pub limit: RefCell<Option<usize>>,
}

impl FakeGrants {
    /// Active grants.
    pub fn active(&self) -> usize {
        self.grants.borrow().len()
    }

    fn resolve(&self, gref: u32, want_write: bool) -> Option<Pfn> {
        let grants = self.grants.borrow();
        let g = grants.get(&gref)?;
        if want_write && g.readonly {
            return None;
        }
        Some(g.pfn)
    }

    /// Makes the backend keep `gref` mapped (revoke fails with `InUse`).
    pub fn keep_mapped(&self, gref: GrantRef, mapped: bool) {
        if let Some(g) = self.grants.borrow_mut().get_mut(&gref.0) {
            g.mapped = mapped;
        }
    }

    /// The domain a grant was made to.
    pub fn domid_of(&self, gref: GrantRef) -> Option<DomId> {
        self.grants.borrow().get(&gref.0).map(|g| g.domid)
    }
}

impl GrantTable for FakeGrants {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        if self.limit.borrow().is_some_and(|l| self.active() >= l) {
            return Err(GrantError::Exhausted);
        }
        let mut next = self.next.borrow_mut();
        *next += 1;
        self.grants.borrow_mut().insert(
            *next,
            Grant {
                pfn,
                domid,
                readonly,
                mapped: false,
            },
        );
        Ok(GrantRef(*next))
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut grants = self.grants.borrow_mut();
        match grants.get(&gref.0) {
            None => Err(GrantError::Invalid),
            Some(g) if g.mapped => Err(GrantError::InUse),
            Some(_) => {
                grants.remove(&gref.0);
                Ok(())
            }
        }
    }

    fn available(&self) -> usize {
        self.limit
            .borrow()
            .map_or(usize::MAX, |l| l.saturating_sub(self.active()))
    }
}

/// A packet the fake backend took off the tx ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPacket {
    /// Its bytes.
    pub data: Vec<u8>,
    /// The first request's flags.
    pub flags: u16,
    /// Extra-info slots that came with it.
    pub extras: Vec<NetifExtraInfo>,
    /// Request slots used.
    pub slots: usize,
    /// The grants of its data slots.
    pub grefs: Vec<GrantRef>,
}

/// The backend's ends of one queue's rings.
pub struct FakeBackend {
    /// tx ring, back end.
    pub tx: NetifTxBackRing<Arc<HeapRingMemory>>,
    /// rx ring, back end.
    pub rx: NetifRxBackRing<Arc<HeapRingMemory>>,
}

impl core::fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeBackend").finish_non_exhaustive()
    }
}

impl FakeBackend {
    /// Ring memory for a queue: `(tx, rx)` pages to give the frontend, and the
    /// backend attached to the same pages (call after the frontend initialised
    /// them: see [`FakeBackend::attach`]).
    pub fn ring_pages() -> (Arc<HeapRingMemory>, Arc<HeapRingMemory>) {
        (
            Arc::new(HeapRingMemory::new(1).expect("page")),
            Arc::new(HeapRingMemory::new(1).expect("page")),
        )
    }

    /// The backend ends of rings the frontend has initialised.
    pub fn attach(tx: Arc<HeapRingMemory>, rx: Arc<HeapRingMemory>) -> Self {
        Self {
            tx: NetifTxBackRing::attach(tx, 0).expect("tx ring"),
            rx: NetifRxBackRing::attach(rx, 0).expect("rx ring"),
        }
    }

    /// Takes every complete packet off the tx ring, copying its data out of
    /// the granted pages and answering each request with `status` (extras with
    /// `NETIF_RSP_NULL`) unless `answer` is false.
    pub fn take_tx(
        &mut self,
        grants: &FakeGrants,
        memory: &FakeMemory,
        status: i16,
        answer: bool,
    ) -> Vec<SentPacket> {
        let requests: Vec<_> = self.tx.requests().expect("tx requests").collect();
        let mut packets = Vec::new();
        let mut i = 0;
        while i < requests.len() {
            // Gather the packet's chain: data slots and the extras after the first.
            let first = requests[i];
            let mut data_slots = vec![first];
            let mut extras = Vec::new();
            let mut answers = vec![(first.id, status)];
            i += 1;
            if first.flags & NETTXF_EXTRA_INFO != 0 {
                loop {
                    let extra = requests[i].to_extra_info();
                    i += 1;
                    extras.push(extra);
                    answers.push((0, NETIF_RSP_NULL));
                    if extra.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                        break;
                    }
                }
            }
            let mut more = first.flags & NETTXF_MORE_DATA != 0;
            while more {
                let request = requests[i];
                i += 1;
                data_slots.push(request);
                answers.push((request.id, status));
                more = request.flags & NETTXF_MORE_DATA != 0;
            }
            // The first slot's own length is the total minus the others'.
            let rest: usize = data_slots[1..].iter().map(|r| usize::from(r.size)).sum();
            let mut packet = SentPacket {
                data: Vec::new(),
                flags: first.flags,
                extras,
                slots: answers.len(),
                grefs: Vec::new(),
            };
            for (n, request) in data_slots.iter().enumerate() {
                let len = if n == 0 {
                    usize::from(first.size) - rest
                } else {
                    usize::from(request.size)
                };
                if len > 0 {
                    packet.grefs.push(GrantRef(request.gref));
                    packet.data.extend(Self::read_granted(
                        grants,
                        memory,
                        request.gref,
                        usize::from(request.offset),
                        len,
                    ));
                }
            }
            if answer {
                for (id, status) in answers {
                    self.tx
                        .write_response(&NetifTxResponse { id, status })
                        .expect("tx response");
                }
            }
            packets.push(packet);
        }
        self.tx.push_responses();
        packets
    }

    fn read_granted(
        grants: &FakeGrants,
        memory: &FakeMemory,
        gref: u32,
        offset: usize,
        len: usize,
    ) -> Vec<u8> {
        let pfn = grants
            .resolve(gref, false)
            .expect("tx request names an unknown grant");
        memory.read(pfn, offset, len)
    }

    /// Writes one raw tx response (hostile tests), answering the next request
    /// the frontend queued, or, when none waits, one it never made (a phantom
    /// request is slipped in behind its back, so `rsp_prod` overruns).
    pub fn raw_tx_response(&mut self, id: u16, status: i16) {
        if self.tx.unanswered() == 0 && self.tx.requests().expect("tx requests").next().is_none() {
            let mut phantom =
                NetifTxFrontRing::attach(self.tx.memory().clone(), self.tx.req_cons())
                    .expect("ring");
            phantom
                .write_request(&NetifTxRequest::default())
                .expect("phantom request");
            phantom.push_requests();
            let _ = self.tx.requests().expect("tx requests").next();
        }
        self.tx
            .write_response(&NetifTxResponse { id, status })
            .expect("tx response");
        self.tx.push_responses();
    }

    /// Delivers `data` as one packet: split over posted buffers of at most
    /// `chunk` bytes each, the first response carrying `flags`, followed by
    /// `extras`. Returns false when not enough buffers are posted.
    pub fn deliver_rx(
        &mut self,
        grants: &FakeGrants,
        memory: &FakeMemory,
        data: &[u8],
        flags: u16,
        extras: &[NetifExtraInfo],
        chunk: usize,
    ) -> bool {
        let pieces: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(chunk.clamp(1, PAGE_SIZE)).collect()
        };
        let needed = pieces.len() + extras.len();
        if self.rx.unconsumed_requests().unwrap_or(0) < u32::try_from(needed).unwrap_or(u32::MAX) {
            return false;
        }
        let mut requests = self
            .rx
            .requests()
            .expect("rx requests")
            .take(needed)
            .collect::<Vec<_>>()
            .into_iter();
        for (n, piece) in pieces.iter().enumerate() {
            let request = requests.next().expect("counted");
            let pfn = grants
                .resolve(request.gref, true)
                .expect("rx request names an unknown or read-only grant");
            memory.write(pfn, 0, piece);
            let mut f = if n == 0 { flags } else { 0 };
            if n + 1 < pieces.len() {
                f |= NETRXF_MORE_DATA;
            }
            if n == 0 && !extras.is_empty() {
                f |= NETRXF_EXTRA_INFO;
            }
            let status = i16::try_from(piece.len()).expect("chunk fits");
            self.rx
                .write_response(&NetifRxResponse {
                    id: request.id,
                    offset: 0,
                    flags: f,
                    status,
                })
                .expect("rx response");
            if n == 0 {
                for (k, extra) in extras.iter().enumerate() {
                    let _ = requests.next();
                    let mut e = *extra;
                    if k + 1 < extras.len() {
                        e.flags |= XEN_NETIF_EXTRA_FLAG_MORE;
                    }
                    self.rx
                        .write_response(&NetifRxResponse::from(e))
                        .expect("rx response");
                }
            }
        }
        self.rx.push_responses();
        true
    }

    /// Consumes one rx request and answers it with `response` as given
    /// (hostile tests); returns the request's id and grant.
    pub fn raw_rx_response(&mut self, response: NetifRxResponse) -> Option<(u16, GrantRef)> {
        let request = self.rx.requests().ok()?.next()?;
        self.rx.write_response(&response).ok()?;
        self.rx.push_responses();
        Some((request.id, GrantRef(request.gref)))
    }

    /// Like [`FakeBackend::raw_rx_response`], but echoing the request's id as
    /// netback does.
    pub fn rx_response_echoing_id(
        &mut self,
        mut response: NetifRxResponse,
    ) -> Option<(u16, GrantRef)> {
        let request = self.rx.requests().ok()?.next()?;
        response.id = request.id;
        self.rx.write_response(&response).ok()?;
        self.rx.push_responses();
        Some((request.id, GrantRef(request.gref)))
    }

    /// Answers an rx request the frontend never made (a phantom slipped in
    /// behind its back), so `rsp_prod` overruns what it posted.
    pub fn rx_phantom_response(&mut self, response: NetifRxResponse) -> bool {
        let Ok(mut phantom) =
            NetifRxFrontRing::attach(self.rx.memory().clone(), self.rx.req_cons())
        else {
            return false;
        };
        if phantom.write_request(&NetifRxRequest::default()).is_err() {
            return false;
        }
        phantom.push_requests();
        self.raw_rx_response(response).is_some()
    }

    /// Whether `status` is `NETIF_RSP_OKAY` (helper for readability).
    pub fn okay() -> i16 {
        NETIF_RSP_OKAY
    }
}
