//! In-process fakes (feature `test-utils`): a fake Xen ([`FakeXen`]: memory,
//! grants, event channels, xenstore, frame access) and a scripted blkback
//! ([`FakeBlkback`]) that serves a real shared ring in that memory, with
//! faults on demand (bad or duplicate ids, bad status or operation, producer
//! jumps, grants kept mapped, out-of-order completion, resets).
//!
//! Fine for unit tests; never the proof that the protocol works (that is the
//! rig's job against Linux's blkback).
//!
//! This module is the crate's only `unsafe`: it plays the platform, so it hands
//! out heap pages as [`Pages`] and touches them by frame number.
#![allow(
    unsafe_code,
    reason = "the fake platform owns raw pages, as a real platform does"
)]

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use core::time::Duration;

use xen_abi::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifBackRing, BlkifRequest,
    BlkifRequestSegment, BlkifResponse,
};
use xen_abi::ring::RingMemory;
use xenbus_interface::api::{
    DomId, EventChannels, EvtchnError, GrantError, GrantRef, GrantTable, Memory, OutOfMemory,
    PAGE_SIZE, Pages, Permission, Pfn, Port, Store, StoreError, Txn, WatchId, XenbusState, XsError,
};

use crate::blkfront::io::{BadFrame, Frames};

/// One allocation: base pointer and page count.
#[derive(Debug)]
struct Allocation {
    ptr: NonNull<u8>,
    pages: usize,
}

/// An active grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Granted to.
    pub domid: DomId,
    /// The frame.
    pub pfn: Pfn,
    /// Read-only for the grantee.
    pub readonly: bool,
    /// How many mappings the backend holds.
    pub mapped: u32,
}

/// A fake Xen: memory, grants, event channels, xenstore, frame access.
#[derive(Debug)]
pub struct FakeXen {
    allocations: RefCell<Vec<Allocation>>,
    /// Live frames: pfn -> address.
    frames: RefCell<BTreeMap<u64, usize>>,
    grants: RefCell<BTreeMap<u32, Grant>>,
    next_gref: Cell<u32>,
    /// Most grants at once (`None`: unlimited).
    pub grant_limit: Cell<Option<usize>>,
    /// Frames freed while a grant of them was active (must stay empty).
    pub freed_while_granted: RefCell<Vec<Pfn>>,
    next_port: Cell<u32>,
    /// Notifications per port.
    pub notified: RefCell<BTreeMap<u32, u32>>,
    /// Ports closed, in order.
    pub closed: RefCell<Vec<u32>>,
    store: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Handles of the pages [`FakeXen::data_page`] gave out.
    data_pages: RefCell<Vec<Pages>>,
    /// Transaction ends that report a conflict before one succeeds.
    pub eagain: Cell<u32>,
}

impl Drop for FakeXen {
    fn drop(&mut self) {
        for a in self.allocations.get_mut().drain(..) {
            if let Ok(layout) = Layout::from_size_align(a.pages * PAGE_SIZE, PAGE_SIZE) {
                // SAFETY: `ptr` came from `alloc_zeroed` with this layout and is
                // deallocated once, here, when nothing can use it any more.
                unsafe { dealloc(a.ptr.as_ptr(), layout) };
            }
        }
    }
}

impl Default for FakeXen {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeXen {
    /// An empty fake.
    pub fn new() -> Self {
        Self {
            allocations: RefCell::default(),
            frames: RefCell::default(),
            grants: RefCell::default(),
            next_gref: Cell::new(8),
            grant_limit: Cell::new(None),
            freed_while_granted: RefCell::default(),
            next_port: Cell::new(1),
            notified: RefCell::default(),
            closed: RefCell::default(),
            store: RefCell::default(),
            data_pages: RefCell::default(),
            eagain: Cell::new(0),
        }
    }

    /// Address of a live frame.
    fn addr(&self, pfn: Pfn) -> Option<usize> {
        self.frames.borrow().get(&pfn.0).copied()
    }

    /// Allocates one zeroed data page for a test (the caller's buffers).
    ///
    /// # Panics
    /// If the heap is exhausted.
    pub fn data_page(&self) -> Pfn {
        let pages = self.alloc(1).expect("heap");
        let pfn = pages.pfns()[0];
        // The test keeps using the frame by number; the handle lives here.
        self.data_pages.borrow_mut().push(pages);
        pfn
    }

    /// Reads bytes from a frame (test side).
    ///
    /// # Panics
    /// If the frame is not live or the range leaves the page.
    pub fn read_frame(&self, pfn: Pfn, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= PAGE_SIZE);
        let addr = self.addr(pfn).expect("live frame");
        // SAFETY: `addr` is a live page of ours (it stays allocated until drop)
        // and the range is inside it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (addr + offset) as *const u8,
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    /// Writes bytes into a frame (test side).
    ///
    /// # Panics
    /// If the frame is not live or the range leaves the page.
    pub fn write_frame(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        Frames::write(self, pfn, offset, data).expect("live frame");
    }

    /// The active grant `gref`.
    pub fn grant_info(&self, gref: u32) -> Option<Grant> {
        self.grants.borrow().get(&gref).copied()
    }

    /// Active grants.
    pub fn active_grants(&self) -> usize {
        self.grants.borrow().len()
    }

    /// Backend side: maps a grant (`write` access wanted); returns its frame.
    pub fn map(&self, gref: u32, write: bool) -> Option<Pfn> {
        let mut grants = self.grants.borrow_mut();
        let g = grants.get_mut(&gref)?;
        if write && g.readonly {
            return None;
        }
        g.mapped += 1;
        Some(g.pfn)
    }

    /// Backend side: drops a mapping.
    pub fn unmap(&self, gref: u32) {
        if let Some(g) = self.grants.borrow_mut().get_mut(&gref) {
            g.mapped = g.mapped.saturating_sub(1);
        }
    }

    /// A xenstore value (test side).
    pub fn get(&self, path: &str) -> Option<String> {
        self.store
            .borrow()
            .get(path)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Sets a xenstore value (test side).
    pub fn set(&self, path: &str, value: &str) {
        self.store
            .borrow_mut()
            .insert(path.to_string(), value.as_bytes().to_vec());
    }

    /// Notifications sent on `port`.
    pub fn notifications(&self, port: Port) -> u32 {
        self.notified.borrow().get(&port.0).copied().unwrap_or(0)
    }
}

impl Memory for FakeXen {
    fn alloc(&self, count: usize) -> Result<Pages, OutOfMemory> {
        let len = count
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0)
            .ok_or(OutOfMemory)?;
        let layout = Layout::from_size_align(len, PAGE_SIZE).map_err(|_| OutOfMemory)?;
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(OutOfMemory)?;
        let base = ptr.as_ptr() as usize;
        let pfns: Vec<Pfn> = (0..count)
            .map(|i| Pfn((base / PAGE_SIZE + i) as u64))
            .collect();
        let mut frames = self.frames.borrow_mut();
        for (i, pfn) in pfns.iter().enumerate() {
            frames.insert(pfn.0, base + i * PAGE_SIZE);
        }
        self.allocations
            .borrow_mut()
            .push(Allocation { ptr, pages: count });
        // SAFETY: page-aligned, valid for `len` bytes until FakeXen drops (it
        // never deallocates earlier), frame numbers are the page addresses / 4096,
        // `pfns` is not empty.
        Ok(unsafe { Pages::new(ptr, pfns) })
    }

    fn free(&self, pages: Pages) {
        let grants = self.grants.borrow();
        let mut frames = self.frames.borrow_mut();
        for pfn in pages.pfns() {
            if grants.values().any(|g| g.pfn == *pfn) {
                self.freed_while_granted.borrow_mut().push(*pfn);
            }
            // The memory stays allocated (until drop): later access by pfn fails.
            frames.remove(&pfn.0);
        }
    }
}

impl GrantTable for FakeXen {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        if self.addr(pfn).is_none() {
            return Err(GrantError::BadFrame);
        }
        let mut grants = self.grants.borrow_mut();
        if self.grant_limit.get().is_some_and(|l| grants.len() >= l) {
            return Err(GrantError::Exhausted);
        }
        let gref = self.next_gref.get();
        self.next_gref.set(gref.wrapping_add(1).max(8));
        grants.insert(
            gref,
            Grant {
                domid,
                pfn,
                readonly,
                mapped: 0,
            },
        );
        Ok(GrantRef(gref))
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut grants = self.grants.borrow_mut();
        match grants.get(&gref.0) {
            None => Err(GrantError::Invalid),
            Some(g) if g.mapped > 0 => Err(GrantError::InUse),
            Some(_) => {
                grants.remove(&gref.0);
                Ok(())
            }
        }
    }

    fn available(&self) -> usize {
        self.grant_limit
            .get()
            .map_or(1 << 20, |l| l.saturating_sub(self.grants.borrow().len()))
    }
}

/// A fake event channel.
#[derive(Debug, PartialEq, Eq)]
pub struct FakeChannel(pub u32);

impl EventChannels for FakeXen {
    type Channel = FakeChannel;

    fn open_unbound(&self, _remote: DomId) -> Result<FakeChannel, EvtchnError> {
        let port = self.next_port.get();
        self.next_port.set(port + 1);
        Ok(FakeChannel(port))
    }

    fn port(&self, channel: &FakeChannel) -> Port {
        Port(channel.0)
    }

    fn notify(&self, channel: &FakeChannel) {
        *self.notified.borrow_mut().entry(channel.0).or_default() += 1;
    }

    fn unmask(&self, _channel: &FakeChannel) {}

    fn close(&self, channel: FakeChannel) {
        self.closed.borrow_mut().push(channel.0);
    }
}

impl Frames for FakeXen {
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), BadFrame> {
        let d = self.addr(dst).ok_or(BadFrame(dst))?;
        let s = self.addr(src).ok_or(BadFrame(src))?;
        if dst_offset + len > PAGE_SIZE || src_offset + len > PAGE_SIZE {
            return Err(BadFrame(dst));
        }
        // SAFETY: both are live pages of ours, the ranges are inside them;
        // `copy` allows overlap.
        unsafe {
            core::ptr::copy(
                (s + src_offset) as *const u8,
                (d + dst_offset) as *mut u8,
                len,
            );
        }
        Ok(())
    }

    fn write(&self, dst: Pfn, offset: usize, bytes: &[u8]) -> Result<(), BadFrame> {
        let d = self.addr(dst).ok_or(BadFrame(dst))?;
        if offset + bytes.len() > PAGE_SIZE {
            return Err(BadFrame(dst));
        }
        // SAFETY: a live page of ours, range inside it.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (d + offset) as *mut u8, bytes.len());
        }
        Ok(())
    }
}

impl Store for FakeXen {
    fn read(&self, _txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        self.store
            .borrow()
            .get(path)
            .cloned()
            .ok_or(StoreError::Xs(XsError::Enoent))
    }

    fn write(&self, _txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store
            .borrow_mut()
            .insert(path.to_string(), value.to_vec());
        Ok(())
    }

    fn mkdir(&self, _txn: Txn, path: &str) -> Result<(), StoreError> {
        self.store.borrow_mut().entry(path.to_string()).or_default();
        Ok(())
    }

    fn remove(&self, _txn: Txn, path: &str) -> Result<(), StoreError> {
        let prefix = alloc::format!("{path}/");
        self.store
            .borrow_mut()
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        Ok(())
    }

    fn directory(&self, _txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = alloc::format!("{path}/");
        let names: BTreeSet<String> = self
            .store
            .borrow()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        Ok(names.into_iter().collect())
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
        if commit && self.eagain.get() > 0 {
            self.eagain.set(self.eagain.get() - 1);
            return Err(StoreError::Xs(XsError::Eagain));
        }
        Ok(())
    }

    fn watch_add(&self, _path: &str) -> Result<WatchId, StoreError> {
        Ok(WatchId(1))
    }

    fn watch_remove(&self, _watch: WatchId) -> Result<(), StoreError> {
        Ok(())
    }

    fn watch_wait(&self, _watch: WatchId, _timeout: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// Ring memory over fake [`Pages`] (what `Pages` itself will be once the
/// interface crate makes it ring memory).
#[derive(Debug)]
pub struct FakeRingPages(Pages);

impl From<Pages> for FakeRingPages {
    fn from(pages: Pages) -> Self {
        Self(pages)
    }
}

impl From<FakeRingPages> for Pages {
    fn from(ring: FakeRingPages) -> Self {
        ring.0
    }
}

// SAFETY: `Pages`' own contract: page-aligned, valid and initialised (zeroed)
// for `len()` bytes while the value lives, a non-zero multiple of the page size;
// neither pointer nor length ever changes.
unsafe impl RingMemory for FakeRingPages {
    fn as_ptr(&self) -> NonNull<u8> {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The backend's view of a ring: the frontend's pages, found by frame number.
#[derive(Debug)]
pub struct Mapping<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _xen: &'a FakeXen,
}

// SAFETY: `ptr` is a page-aligned address of `len` bytes inside one FakeXen
// allocation (checked in `FakeBlkback::map_ring`), which stays allocated and
// initialised until the FakeXen drops, which the borrow `'a` outlives.
unsafe impl RingMemory for Mapping<'_> {
    fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// A misbehaviour the scripted backend can be told to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer the next request twice.
    DuplicateId,
    /// Answer with an id nobody sent.
    UnknownId,
    /// Answer with status 7.
    BadStatus,
    /// Answer with a different operation.
    BadOperation,
    /// Publish `rsp_prod` far beyond what was asked.
    ProducerJump,
    /// Keep the data grants of the next request mapped after answering.
    KeepGrantMapped,
    /// Answer the next request with BLKIF_RSP_ERROR.
    IoError,
}

/// A request as the scripted backend saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Operation (the inner one for indirect requests).
    pub operation: u8,
    /// Came as BLKIF_OP_INDIRECT.
    pub indirect: bool,
    /// First sector.
    pub sector: u64,
    /// Sectors moved or discarded.
    pub sectors: u64,
    /// Segments.
    pub segments: usize,
}

/// One queue's ring as the backend holds it.
#[derive(Debug)]
struct BackQueue<'a> {
    ring: BlkifBackRing<Mapping<'a>>,
    port: u32,
}

/// A scripted blkback over [`FakeXen`], serving a disk held in memory.
#[derive(Debug)]
pub struct FakeBlkback<'a> {
    xen: &'a FakeXen,
    /// Frontend directory (`device/vbd/<id>`).
    pub frontend: String,
    /// Backend directory.
    pub backend: String,
    /// The disk.
    pub disk: Vec<u8>,
    queues: Vec<BackQueue<'a>>,
    /// Faults to commit, in order, one per request.
    pub faults: Vec<Fault>,
    /// Every request served, in service order.
    pub seen: Vec<Seen>,
    /// Answer in reverse order of arrival (out-of-order completion).
    pub reverse: bool,
    /// Persistent grants kept mapped (gref -> frame).
    persistent: BTreeMap<u32, Pfn>,
    /// Use persistent mappings (if the frontend asked for them).
    pub persistent_enabled: bool,
}

/// Backend keys published in InitWait and Connected.
#[derive(Clone, Debug)]
pub struct BackendKeys {
    /// (key, value) pairs.
    pub keys: Vec<(&'static str, String)>,
}

impl BackendKeys {
    /// What Linux's blkback publishes for a plain writable disk of `sectors`
    /// 512-byte sectors, with flush, discard, 256 indirect segments,
    /// persistent grants, 4 queues and order-4 rings.
    pub fn linux_like(sectors: u64) -> Self {
        Self {
            keys: alloc::vec![
                ("sectors", sectors.to_string()),
                ("sector-size", "512".to_string()),
                ("info", "0".to_string()),
                ("feature-flush-cache", "1".to_string()),
                ("feature-discard", "1".to_string()),
                ("discard-granularity", "4096".to_string()),
                ("discard-alignment", "0".to_string()),
                ("discard-secure", "0".to_string()),
                ("feature-max-indirect-segments", "256".to_string()),
                ("feature-persistent", "1".to_string()),
                ("multi-queue-max-queues", "4".to_string()),
                ("max-ring-page-order", "4".to_string()),
            ],
        }
    }

    /// Replaces or adds a key.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: &str) -> Self {
        self.keys.retain(|(k, _)| *k != key);
        self.keys.push((key, value.to_string()));
        self
    }
}

impl<'a> FakeBlkback<'a> {
    /// Creates the frontend and backend nodes (as a toolstack does) for device
    /// `devid` and publishes `keys` with the backend in InitWait.
    pub fn new(xen: &'a FakeXen, devid: u32, keys: &BackendKeys) -> Self {
        let frontend = alloc::format!("device/vbd/{devid}");
        let backend = alloc::format!("/local/domain/0/backend/vbd/1/{devid}");
        xen.set(&alloc::format!("{frontend}/backend"), &backend);
        xen.set(&alloc::format!("{frontend}/backend-id"), "0");
        xen.set(&alloc::format!("{frontend}/state"), "1");
        let sectors = keys
            .keys
            .iter()
            .find(|(k, _)| *k == "sectors")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut this = Self {
            xen,
            frontend,
            backend,
            disk: alloc::vec![0u8; sectors * 512],
            queues: Vec::new(),
            faults: Vec::new(),
            seen: Vec::new(),
            reverse: false,
            persistent: BTreeMap::new(),
            persistent_enabled: true,
        };
        this.publish(keys);
        this.set_state(XenbusState::InitWait);
        this
    }

    /// Writes the backend keys.
    pub fn publish(&mut self, keys: &BackendKeys) {
        for (k, v) in &keys.keys {
            self.xen.set(&alloc::format!("{}/{k}", self.backend), v);
            if *k == "feature-persistent" {
                self.persistent_enabled = v == "1";
            }
        }
    }

    /// Sets the backend state.
    pub fn set_state(&self, state: XenbusState) {
        self.xen.set(
            &alloc::format!("{}/state", self.backend),
            &alloc::format!("{}", state as u32),
        );
    }

    /// A frontend key.
    pub fn frontend_key(&self, key: &str) -> Option<String> {
        self.xen.get(&alloc::format!("{}/{key}", self.frontend))
    }

    /// Maps the ring pages named by `prefix` keys.
    fn map_ring(&self, prefix: &str) -> Option<BackQueue<'a>> {
        let order: usize = self
            .frontend_key("ring-page-order")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let pages = 1usize << order;
        let mut pfns = Vec::new();
        if order == 0 {
            let g: u32 = self
                .frontend_key(&alloc::format!("{prefix}ring-ref"))?
                .parse()
                .ok()?;
            pfns.push(self.xen.map(g, true)?);
        } else {
            for i in 0..pages {
                let g: u32 = self
                    .frontend_key(&alloc::format!("{prefix}ring-ref{i}"))?
                    .parse()
                    .ok()?;
                pfns.push(self.xen.map(g, true)?);
            }
        }
        // The fake's multi-page allocations are contiguous: check it.
        let base = self.xen.addr(pfns[0])?;
        for (i, pfn) in pfns.iter().enumerate() {
            if self.xen.addr(*pfn)? != base + i * PAGE_SIZE {
                return None;
            }
        }
        let mapping = Mapping {
            ptr: NonNull::new(base as *mut u8)?,
            len: pages * PAGE_SIZE,
            _xen: self.xen,
        };
        let port: u32 = self
            .frontend_key(&alloc::format!("{prefix}event-channel"))?
            .parse()
            .ok()?;
        Some(BackQueue {
            ring: BlkifBackRing::new(mapping).ok()?,
            port,
        })
    }

    /// Frontend Initialised: maps every queue's ring and goes Connected.
    ///
    /// # Panics
    /// If the frontend's keys are missing or wrong.
    pub fn connect(&mut self) {
        assert_eq!(
            self.frontend_key("state").as_deref(),
            Some("3"),
            "frontend not Initialised"
        );
        assert_eq!(self.frontend_key("protocol").as_deref(), Some("x86_64-abi"));
        let queues: usize = self
            .frontend_key("multi-queue-num-queues")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        self.queues.clear();
        for q in 0..queues {
            let prefix = if queues > 1 {
                alloc::format!("queue-{q}/")
            } else {
                String::new()
            };
            self.queues
                .push(self.map_ring(&prefix).expect("frontend ring keys"));
        }
        self.persistent_enabled &= self.frontend_key("feature-persistent").as_deref() == Some("1");
        self.set_state(XenbusState::Connected);
    }

    /// Number of queues connected.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The backend goes away (reset): unmaps everything, drops the rings, and
    /// comes back in InitWait.
    pub fn reset(&mut self) {
        self.drop_rings();
        self.set_state(XenbusState::Closed);
    }

    /// The frontend's domain is saved and restored as domain `domid` (`xl
    /// save`/`xl restore`): the old backend goes with the old domain (every
    /// mapping dropped, its directory removed) and the toolstack makes a new
    /// one under `backend/vbd/<domid>/<devid>` (in InitWait, same disk and
    /// keys), pointing the frontend's `backend` key at it and its `state` back
    /// to Initialising. Event channel ports start again from 1, as in a fresh
    /// domain.
    pub fn migrate(&mut self, domid: u16, keys: &BackendKeys) {
        self.drop_rings();
        let old = self.backend.clone();
        let _ = self.xen.remove(Txn::NONE, &old);
        let devid = self.frontend.rsplit('/').next().unwrap_or("0").to_string();
        self.backend = alloc::format!("/local/domain/0/backend/vbd/{domid}/{devid}");
        self.xen
            .set(&alloc::format!("{}/backend", self.frontend), &self.backend);
        self.xen
            .set(&alloc::format!("{}/state", self.frontend), "1");
        self.xen.next_port.set(1);
        self.publish(keys);
        self.set_state(XenbusState::InitWait);
    }

    /// Drops every mapping (rings and persistent grants).
    fn drop_rings(&mut self) {
        self.queues.clear();
        // A backend that goes away drops every mapping it held: rings,
        // persistent grants, anything still in progress.
        let grefs: Vec<u32> = self.xen.grants.borrow().keys().copied().collect();
        for g in grefs {
            while self.xen.grant_info(g).is_some_and(|i| i.mapped > 0) {
                self.xen.unmap(g);
            }
        }
        self.persistent.clear();
    }

    /// Frames of a data segment, mapping it (or reusing a persistent mapping).
    fn map_data(&mut self, gref: u32, write: bool) -> Option<Pfn> {
        if let Some(&pfn) = self.persistent.get(&gref) {
            return Some(pfn);
        }
        let pfn = self.xen.map(gref, write || self.persistent_enabled)?;
        if self.persistent_enabled {
            self.persistent.insert(gref, pfn);
        }
        Some(pfn)
    }

    fn unmap_data(&mut self, gref: u32) {
        if !self.persistent_enabled {
            self.xen.unmap(gref);
        }
    }

    /// Serves every queued request on every queue; returns how many.
    pub fn serve(&mut self) -> usize {
        let mut served = 0;
        for q in 0..self.queues.len() {
            served += self.serve_queue(q, usize::MAX);
        }
        served
    }

    /// Consumes up to `max` requests of queue `q` and answers them.
    ///
    /// # Panics
    /// On a malformed request from the frontend (that is a frontend bug).
    pub fn serve_queue(&mut self, q: usize, max: usize) -> usize {
        let reqs: Vec<BlkifRequest> = {
            let ring = &mut self.queues[q].ring;
            let Ok(it) = ring.requests() else {
                panic!("frontend overflowed req_prod");
            };
            it.take(max).collect()
        };
        let mut responses = Vec::new();
        let mut jump = false;
        for req in &reqs {
            let fault = if self.faults.is_empty() {
                None
            } else {
                Some(self.faults.remove(0))
            };
            let (id, op, mut status) = self.execute(req, fault == Some(Fault::KeepGrantMapped));
            if fault == Some(Fault::IoError) {
                status = BLKIF_RSP_ERROR;
            }
            jump |= fault == Some(Fault::ProducerJump);
            let rsp = |id, operation, status| BlkifResponse {
                id,
                operation,
                pad1: 0,
                status,
                pad2: 0,
            };
            match fault {
                Some(Fault::DuplicateId) => {
                    responses.push(rsp(id, op, status));
                    responses.push(rsp(id, op, status));
                }
                Some(Fault::UnknownId) => responses.push(rsp(id + 1_000_000, op, status)),
                Some(Fault::BadStatus) => responses.push(rsp(id, op, 7)),
                Some(Fault::BadOperation) => responses.push(rsp(id, 42, status)),
                _ => responses.push(rsp(id, op, status)),
            }
        }
        if self.reverse {
            responses.reverse();
        }
        let ring = &mut self.queues[q].ring;
        for r in &responses {
            // A duplicate has no slot of its own: it overwrites the next one,
            // which is exactly what a hostile backend can do.
            if ring.write_response(r).is_err() {
                break;
            }
        }
        if ring.push_responses_and_check_notify() {
            *self
                .xen
                .notified
                .borrow_mut()
                .entry(self.queues[q].port + 10_000)
                .or_default() += 1;
        }
        if jump {
            self.jump_rsp_prod(q, 100_000);
        }
        reqs.len()
    }

    /// Writes `rsp_prod` = current + `by` directly into the shared header.
    pub fn jump_rsp_prod(&self, q: usize, by: u32) {
        let ring = &self.queues[q].ring;
        let now = ring.shared_indices().rsp_prod;
        let ptr = ring.memory().as_ptr().as_ptr();
        let field = ptr.wrapping_add(8);
        // SAFETY: the header's `rsp_prod` is at byte 8 of a page-aligned mapped
        // ring page, so 4-byte aligned and in bounds; it is only ever accessed
        // atomically.
        #[allow(clippy::cast_ptr_alignment, reason = "aligned: see SAFETY")]
        let rsp_prod = unsafe { core::sync::atomic::AtomicU32::from_ptr(field.cast::<u32>()) };
        rsp_prod.store(now.wrapping_add(by), core::sync::atomic::Ordering::SeqCst);
    }

    /// Writes a raw response and pushes it (for fuzzing): succeeds only while
    /// some request is unanswered.
    pub fn raw_response(&mut self, q: usize, rsp: &BlkifResponse) -> bool {
        let ring = &mut self.queues[q].ring;
        let _ = ring.requests().map(Iterator::count);
        let ok = ring.write_response(rsp).is_ok();
        ring.push_responses();
        ok
    }

    /// Carries out one request on the disk; returns (id, operation, status).
    fn execute(&mut self, req: &BlkifRequest, keep_mapped: bool) -> (u64, u8, i16) {
        match req.operation {
            BLKIF_OP_READ | BLKIF_OP_WRITE | BLKIF_OP_WRITE_BARRIER => {
                let n = usize::from(req.nr_segments).min(req.seg.len());
                let segs: Vec<BlkifRequestSegment> = req.seg[..n].to_vec();
                let status =
                    self.transfer(req.operation, req.sector_number, &segs, false, keep_mapped);
                (req.id, req.operation, status)
            }
            BLKIF_OP_FLUSH_DISKCACHE => {
                self.seen.push(Seen {
                    operation: req.operation,
                    indirect: false,
                    sector: 0,
                    sectors: 0,
                    segments: 0,
                });
                (req.id, req.operation, BLKIF_RSP_OKAY)
            }
            BLKIF_OP_DISCARD => {
                let d = req.to_discard();
                let start = usize::try_from(d.sector_number).unwrap_or(usize::MAX);
                let count = usize::try_from(d.nr_sectors).unwrap_or(usize::MAX);
                self.seen.push(Seen {
                    operation: BLKIF_OP_DISCARD,
                    indirect: false,
                    sector: d.sector_number,
                    sectors: d.nr_sectors,
                    segments: 0,
                });
                let status = match start.checked_add(count) {
                    Some(end) if end * 512 <= self.disk.len() => {
                        self.disk[start * 512..end * 512].fill(0);
                        BLKIF_RSP_OKAY
                    }
                    _ => BLKIF_RSP_ERROR,
                };
                (d.id, BLKIF_OP_DISCARD, status)
            }
            BLKIF_OP_INDIRECT => {
                let ind = req.to_indirect();
                let n = usize::from(ind.nr_segments);
                let mut segs = Vec::with_capacity(n);
                for (page, gref) in ind.indirect_grefs.iter().enumerate() {
                    let first = page * 512;
                    if first >= n {
                        break;
                    }
                    // As Linux's blkback: with persistent grants every grant,
                    // indirect pages included, is mapped writable.
                    let Some(pfn) = self.xen.map(*gref, self.persistent_enabled) else {
                        return (ind.id, BLKIF_OP_INDIRECT, BLKIF_RSP_ERROR);
                    };
                    let count = (n - first).min(512);
                    let mut raw = alloc::vec![0u8; count * 8];
                    self.xen.read_frame(pfn, 0, &mut raw);
                    self.xen.unmap(*gref);
                    for c in raw.chunks_exact(8) {
                        segs.push(BlkifRequestSegment {
                            gref: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                            first_sect: c[4],
                            last_sect: c[5],
                            pad: 0,
                        });
                    }
                }
                let status =
                    self.transfer(ind.indirect_op, ind.sector_number, &segs, true, keep_mapped);
                (ind.id, BLKIF_OP_INDIRECT, status)
            }
            op => (req.id, op, xen_abi::blkif::BLKIF_RSP_EOPNOTSUPP),
        }
    }

    fn transfer(
        &mut self,
        op: u8,
        sector: u64,
        segs: &[BlkifRequestSegment],
        indirect: bool,
        keep_mapped: bool,
    ) -> i16 {
        let write = op != BLKIF_OP_READ;
        let mut pos = usize::try_from(sector)
            .unwrap_or(usize::MAX)
            .saturating_mul(512);
        let mut total = 0u64;
        for s in segs {
            if s.first_sect > s.last_sect || s.last_sect > 7 {
                return BLKIF_RSP_ERROR;
            }
            let len = (usize::from(s.last_sect) - usize::from(s.first_sect) + 1) * 512;
            let off = usize::from(s.first_sect) * 512;
            if pos + len > self.disk.len() {
                return BLKIF_RSP_ERROR;
            }
            // Reads need a writable mapping, writes a readable one.
            let Some(pfn) = self.map_data(s.gref, !write) else {
                return BLKIF_RSP_ERROR;
            };
            if write {
                let mut buf = alloc::vec![0u8; len];
                self.xen.read_frame(pfn, off, &mut buf);
                self.disk[pos..pos + len].copy_from_slice(&buf);
            } else {
                let data = self.disk[pos..pos + len].to_vec();
                self.xen.write_frame(pfn, off, &data);
            }
            if !keep_mapped {
                self.unmap_data(s.gref);
            }
            pos += len;
            total += (len / 512) as u64;
        }
        self.seen.push(Seen {
            operation: op,
            indirect,
            sector,
            sectors: total,
            segments: segs.len(),
        });
        BLKIF_RSP_OKAY
    }
}
