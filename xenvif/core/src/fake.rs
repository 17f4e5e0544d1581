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

use alloc::string::String;
use core::time::Duration;
use xen_abi::netif::XenNetifCtrlBackRing;
use xen_abi::netif::{
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, NetifExtraInfo, NetifRxBackRing, NetifRxFrontRing, NetifRxRequest,
    NetifRxResponse, NetifTxBackRing, NetifTxFrontRing, NetifTxRequest, NetifTxResponse,
    XEN_NETIF_EXTRA_FLAG_MORE,
};
use xen_abi::ring::HeapRingMemory;
use xen_abi::xs_wire::XsError;
use xenbus_interface::api::{
    DomId, EventChannels, EvtchnError, GrantError, GrantRef, GrantTable, OutOfMemory, PAGE_SIZE,
    Permission, Pfn, Port, Store, StoreError, Txn, WatchId,
};

use crate::netfront::{Platform, RingPages};

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

impl crate::coalesce::TxFrames for FakeMemory {
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), crate::coalesce::BadFrame> {
        let mut pages = self.pages.borrow_mut();
        let bytes = pages
            .get(&src.0)
            .and_then(|p| p.get(src_offset..src_offset.checked_add(len)?))
            .ok_or(crate::coalesce::BadFrame)?
            .to_vec();
        pages
            .get_mut(&dst.0)
            .and_then(|p| p.get_mut(dst_offset..dst_offset.checked_add(len)?))
            .ok_or(crate::coalesce::BadFrame)?
            .copy_from_slice(&bytes);
        Ok(())
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

    /// The frame a grant names (`None` if unknown, or read-only when
    /// `want_write`).
    pub fn resolve(&self, gref: u32, want_write: bool) -> Option<Pfn> {
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

/// What runs when the frontend waits on a watch.
type WaitHook = alloc::boxed::Box<dyn FnMut(&FakeStore)>;

/// A fake xenstore: a flat map of paths, transactions applied at once (with an
/// optional number of `EAGAIN` conflicts first), and a hook run whenever the
/// frontend waits on a watch: that is where a scripted backend reacts.
#[derive(Default)]
pub struct FakeStore {
    nodes: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Transaction commits to refuse with `EAGAIN` before accepting.
    pub conflicts: core::cell::Cell<u32>,
    /// Commits refused so far.
    pub conflicted: core::cell::Cell<u32>,
    hook: RefCell<Option<WaitHook>>,
    next_watch: core::cell::Cell<u32>,
}

impl core::fmt::Debug for FakeStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeStore")
            .field("nodes", &self.nodes.borrow().len())
            .finish_non_exhaustive()
    }
}

impl FakeStore {
    /// Sets a node.
    pub fn set(&self, path: &str, value: &str) {
        self.nodes
            .borrow_mut()
            .insert(String::from(path), value.as_bytes().to_vec());
    }

    /// A node's value as text.
    pub fn get(&self, path: &str) -> Option<String> {
        self.nodes
            .borrow()
            .get(path)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Installs the hook run on every watch wait.
    pub fn on_wait(&self, hook: impl FnMut(&FakeStore) + 'static) {
        *self.hook.borrow_mut() = Some(alloc::boxed::Box::new(hook));
    }
}

impl Store for FakeStore {
    fn read(&self, _txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        self.nodes
            .borrow()
            .get(path)
            .cloned()
            .ok_or(StoreError::Xs(XsError::Enoent))
    }
    fn write(&self, _txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.nodes
            .borrow_mut()
            .insert(String::from(path), value.to_vec());
        Ok(())
    }
    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        if self.read(txn, path).is_err() {
            self.write(txn, path, b"")?;
        }
        Ok(())
    }
    fn remove(&self, _txn: Txn, path: &str) -> Result<(), StoreError> {
        let prefix = alloc::format!("{path}/");
        self.nodes
            .borrow_mut()
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        Ok(())
    }
    fn directory(&self, _txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = alloc::format!("{path}/");
        let mut names: Vec<String> = self
            .nodes
            .borrow()
            .keys()
            .filter_map(|k| {
                k.strip_prefix(&prefix)
                    .map(|rest| String::from(rest.split('/').next().unwrap_or("")))
            })
            .collect();
        names.dedup();
        Ok(names)
    }
    fn set_permissions(
        &self,
        _txn: Txn,
        _path: &str,
        _perms: &[Permission],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    fn transaction_start(&self) -> Result<Txn, StoreError> {
        Ok(Txn(1))
    }
    fn transaction_end(&self, _txn: Txn, commit: bool) -> Result<(), StoreError> {
        if commit && self.conflicts.get() > 0 {
            self.conflicts.set(self.conflicts.get() - 1);
            self.conflicted.set(self.conflicted.get() + 1);
            return Err(StoreError::Xs(XsError::Eagain));
        }
        Ok(())
    }
    fn watch_add(&self, _path: &str) -> Result<WatchId, StoreError> {
        self.next_watch.set(self.next_watch.get() + 1);
        Ok(WatchId(self.next_watch.get()))
    }
    fn watch_remove(&self, _watch: WatchId) -> Result<(), StoreError> {
        Ok(())
    }
    fn watch_wait(&self, _watch: WatchId, _timeout: Duration) -> Result<bool, StoreError> {
        let hook = self.hook.borrow_mut().take();
        if let Some(mut hook) = hook {
            hook(self);
            let mut slot = self.hook.borrow_mut();
            if slot.is_none() {
                *slot = Some(hook);
            }
        }
        Ok(true)
    }
}

/// A fake event channel: its port.
#[derive(Debug, PartialEq, Eq)]
pub struct FakeChannel(pub Port);

/// Fake event channels: ports count up; notifications are recorded.
#[derive(Debug, Default)]
pub struct FakeEvtchn {
    next: core::cell::Cell<u32>,
    /// Ports open now.
    pub open: RefCell<alloc::collections::BTreeSet<u32>>,
    /// Every notify, by port.
    pub notified: RefCell<Vec<u32>>,
}

impl EventChannels for FakeEvtchn {
    type Channel = FakeChannel;
    fn open_unbound(&self, _remote: DomId) -> Result<FakeChannel, EvtchnError> {
        self.next.set(self.next.get() + 1);
        self.open.borrow_mut().insert(self.next.get());
        Ok(FakeChannel(Port(self.next.get())))
    }
    fn port(&self, channel: &FakeChannel) -> Port {
        channel.0
    }
    fn notify(&self, channel: &FakeChannel) {
        self.notified.borrow_mut().push(channel.0.0);
    }
    fn unmask(&self, _channel: &FakeChannel) {}
    fn close(&self, channel: FakeChannel) {
        self.open.borrow_mut().remove(&channel.0.0);
    }
}

/// Fake ring pages: heap pages by frame number, so the fake backend can find
/// the very memory a ring reference names.
#[derive(Debug, Default)]
pub struct FakeRingPages {
    pages: RefCell<BTreeMap<u64, Arc<HeapRingMemory>>>,
    next: core::cell::Cell<u64>,
    /// Pages given back.
    pub freed: core::cell::Cell<usize>,
}

impl FakeRingPages {
    /// The memory of ring page `pfn`.
    pub fn memory(&self, pfn: Pfn) -> Option<Arc<HeapRingMemory>> {
        self.pages.borrow().get(&pfn.0).cloned()
    }

    /// Ring pages allocated and not freed.
    pub fn live(&self) -> usize {
        self.pages.borrow().len()
    }
}

impl RingPages for FakeRingPages {
    type Ring = Arc<HeapRingMemory>;
    fn alloc_ring(&self) -> Result<(Self::Ring, Pfn), OutOfMemory> {
        self.next.set(self.next.get() + 1);
        let pfn = 0x10_0000 + self.next.get();
        let memory = Arc::new(HeapRingMemory::new(1).ok_or(OutOfMemory)?);
        self.pages.borrow_mut().insert(pfn, memory.clone());
        Ok((memory, Pfn(pfn)))
    }
    fn free_ring(&self, ring: Self::Ring) {
        self.pages
            .borrow_mut()
            .retain(|_, m| !Arc::ptr_eq(m, &ring));
        self.freed.set(self.freed.get() + 1);
    }
}

/// A scripted netback for the handshake: publishes features, waits for the
/// frontend's keys, attaches to its rings, goes `Connected`; can reset.
#[derive(Debug)]
pub struct FakeNetback {
    /// Backend directory.
    pub backend: String,
    /// Frontend directory.
    pub frontend: String,
    /// Per queue, once connected.
    pub queues: Vec<FakeBackend>,
    /// The control ring's back end, once connected.
    pub control: Option<XenNetifCtrlBackRing<Arc<HeapRingMemory>>>,
    /// The keys the frontend wrote, as read at connection.
    pub keys_seen: Vec<(String, String)>,
}

impl FakeNetback {
    /// Creates the device directories the way a toolstack and netback do:
    /// frontend `backend`, `backend-id`, `mac`; backend `features` and state
    /// `InitWait`.
    pub fn install(
        store: &FakeStore,
        frontend: &str,
        backend: &str,
        features: &[(&str, &str)],
    ) -> Self {
        store.set(&alloc::format!("{frontend}/backend"), backend);
        store.set(&alloc::format!("{frontend}/backend-id"), "0");
        store.set(&alloc::format!("{frontend}/mac"), "00:16:3e:12:34:56");
        store.set(&alloc::format!("{frontend}/state"), "1");
        for (key, value) in features {
            store.set(&alloc::format!("{backend}/{key}"), value);
        }
        store.set(&alloc::format!("{backend}/state"), "2");
        Self {
            backend: String::from(backend),
            frontend: String::from(frontend),
            queues: Vec::new(),
            control: None,
            keys_seen: Vec::new(),
        }
    }

    fn key(&self, store: &FakeStore, key: &str) -> Option<u32> {
        store
            .get(&alloc::format!("{}/{key}", self.frontend))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Reacts to the frontend: when it says `Connected`, attach its rings and
    /// say `Connected`; when it says `Closed` after a reset, offer `InitWait`.
    pub fn step(&mut self, store: &FakeStore, grants: &FakeGrants, rings: &FakeRingPages) {
        let front = store
            .get(&alloc::format!("{}/state", self.frontend))
            .unwrap_or_default();
        let back = store
            .get(&alloc::format!("{}/state", self.backend))
            .unwrap_or_default();
        match (front.as_str(), back.as_str()) {
            ("4", "2") => {
                let queues = self.key(store, "multi-queue-num-queues").unwrap_or(1);
                let memory = |gref: u32| {
                    grants
                        .resolve(gref, true)
                        .and_then(|pfn| rings.memory(pfn))
                        .expect("ring ref names a ring page")
                };
                self.queues.clear();
                for i in 0..queues {
                    let prefix = if queues > 1 {
                        alloc::format!("queue-{i}/")
                    } else {
                        String::new()
                    };
                    let tx = self
                        .key(store, &alloc::format!("{prefix}tx-ring-ref"))
                        .expect("tx-ring-ref");
                    let rx = self
                        .key(store, &alloc::format!("{prefix}rx-ring-ref"))
                        .expect("rx-ring-ref");
                    self.queues
                        .push(FakeBackend::attach(memory(tx), memory(rx)));
                }
                self.control = self
                    .key(store, "ctrl-ring-ref")
                    .map(|gref| XenNetifCtrlBackRing::attach(memory(gref), 0).expect("ctrl ring"));
                let prefix = alloc::format!("{}/", self.frontend);
                self.keys_seen = store
                    .nodes
                    .borrow()
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix(&prefix)
                            .map(|k| (String::from(k), String::from_utf8_lossy(v).into_owned()))
                    })
                    .collect();
                store.set(&alloc::format!("{}/state", self.backend), "4");
            }
            ("6" | "5", "5") | ("5", "4" | "2") => {
                self.queues.clear();
                self.control = None;
                store.set(&alloc::format!("{}/state", self.backend), "6");
            }
            ("1", "6") => store.set(&alloc::format!("{}/state", self.backend), "2"),
            _ => {}
        }
    }

    /// The backend resets (e.g. netback unbound and rebound): it drops its
    /// ring mappings and goes `Closing`.
    pub fn reset(&mut self, store: &FakeStore) {
        self.queues.clear();
        self.control = None;
        store.set(&alloc::format!("{}/state", self.backend), "5");
    }
}

/// A complete fake platform around one [`FakeNetback`], shared with the store
/// hook.
#[derive(Debug, Clone)]
pub struct FakePlatform {
    /// xenstore.
    pub store: alloc::rc::Rc<FakeStore>,
    /// Event channels.
    pub evtchn: alloc::rc::Rc<FakeEvtchn>,
    /// Grants.
    pub grants: alloc::rc::Rc<FakeGrants>,
    /// Ring pages.
    pub rings: alloc::rc::Rc<FakeRingPages>,
    /// Data pages.
    pub memory: alloc::rc::Rc<FakeMemory>,
    /// The backend.
    pub netback: alloc::rc::Rc<RefCell<FakeNetback>>,
}

impl FakePlatform {
    /// A platform with a netback offering `features` for frontend
    /// `device/vif/0`; the netback steps whenever the frontend waits.
    pub fn new(features: &[(&str, &str)]) -> Self {
        let store = alloc::rc::Rc::new(FakeStore::default());
        let netback = FakeNetback::install(
            &store,
            "device/vif/0",
            "/local/domain/0/backend/vif/1/0",
            features,
        );
        let this = Self {
            store,
            evtchn: alloc::rc::Rc::default(),
            grants: alloc::rc::Rc::default(),
            rings: alloc::rc::Rc::default(),
            memory: alloc::rc::Rc::default(),
            netback: alloc::rc::Rc::new(RefCell::new(netback)),
        };
        let (netback, grants, rings) = (
            this.netback.clone(),
            this.grants.clone(),
            this.rings.clone(),
        );
        this.store
            .on_wait(move |store| netback.borrow_mut().step(store, &grants, &rings));
        this
    }

    /// The borrowed form the engine takes.
    pub fn platform(&self) -> Platform<'_, FakeStore, FakeEvtchn, FakeGrants, FakeRingPages> {
        Platform {
            store: &self.store,
            evtchn: &self.evtchn,
            grants: &self.grants,
            rings: &self.rings,
        }
    }
}
