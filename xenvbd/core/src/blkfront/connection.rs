//! The xenbus handshake as a frontend: [`backend_changed`] is the pure
//! transition from (own state, backend state) to what to do; [`Frontend`]
//! carries it out over the [`Store`] and owns the queues.
//!
//! One [`Frontend::talk_to_backend`] serves first connect and every reconnect
//! (backend reset, migration): requests in flight when the backend left stay in
//! the shadow tables and are replayed, oldest first, once the new backend is
//! Connected and its features re-read.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::blkif::blkif_ring_size;
use xen_abi::ring::RingMemory;
use xenbus_interface::api::{
    DomId, EventChannels, GrantTable, Memory, Pages, Store, StoreError, Txn, XenbusState, XsError,
};

use super::backend::{BackendInfo, BackendInfoError, parse_u64, read_opt};
use super::io::{Completion, Frames, IoRequest, SubmitError};
use super::negotiate::{self, BudgetExceeded, QueueLayout, RingLayout};
use super::pool::{PagePool, PoolError};
use super::queue::{BrokenReason, Env, Features, PollOutcome, Queue, Ring};
use super::settings::Settings;
use crate::scsi::LogicalUnit;

/// What to do about a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing now.
    Wait,
    /// Set up rings and publish them (backend in InitWait).
    TalkToBackend,
    /// Read the disk and features, attach rings, replay, go Connected.
    Connect,
    /// Backend re-announced Connected: re-read the size (online resize).
    Resize,
    /// The backend left: take requests back for replay, drop the rings, start
    /// over.
    Reconnect,
}

/// The transition: from our state and the backend's to an [`Action`].
pub fn backend_changed(own: XenbusState, backend: XenbusState) -> Action {
    use XenbusState as S;
    match (own, backend) {
        (S::Initialising, S::InitWait) => Action::TalkToBackend,
        (S::Initialised, S::Connected) => Action::Connect,
        (S::Connected, S::Connected) => Action::Resize,
        // Initialised: the backend stays in InitWait until it has read our
        // keys; only leaving for Closing/Closed (or vanishing) is a reset.
        // Connected + InitWait is blkback being unbound and bound again: it
        // re-attaches to our rings by itself (as Linux's blkfront assumes);
        // a backend that really went away passes Closing/Closed.
        (S::Initialised | S::Connected, S::Unknown | S::Initialising | S::Closing | S::Closed) => {
            Action::Reconnect
        }
        _ => Action::Wait,
    }
}

/// The platform a frontend runs on, for one call.
#[derive(Debug)]
pub struct Platform<'a, S: ?Sized, E, G, M, F> {
    /// xenstore (handshake only).
    pub store: &'a S,
    /// Event channels.
    pub events: &'a E,
    /// Grant table.
    pub grants: &'a G,
    /// Grantable memory (handshake only).
    pub memory: &'a M,
    /// Frame access.
    pub frames: &'a F,
}

impl<S: ?Sized, E, G, M, F> Clone for Platform<'_, S, E, G, M, F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized, E, G, M, F> Copy for Platform<'_, S, E, G, M, F> {}

/// Why connecting failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// xenstore failed; the text names the key.
    Store(String, StoreError),
    /// The backend's keys are unusable.
    Backend(BackendInfoError),
    /// The grant budget is too small.
    Budget(BudgetExceeded),
    /// Memory or grants ran out while setting up.
    Resources(&'static str),
    /// The frontend's own keys are missing or bad (`backend`, `backend-id`).
    BadFrontendKey(&'static str),
    /// The device has failed.
    Broken,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(key, e) => write!(f, "xenstore {key}: {e}"),
            Self::Backend(e) => write!(f, "{e}"),
            Self::Budget(e) => write!(f, "{e}"),
            Self::Resources(what) => write!(f, "out of {what}"),
            Self::BadFrontendKey(key) => write!(f, "frontend key {key} missing or bad"),
            Self::Broken => f.write_str("device failed"),
        }
    }
}

/// The blkif protocol we speak (`protocol` key).
pub const PROTOCOL: &str = "x86_64-abi";

/// How often a conflicting xenstore transaction is retried.
const TRANSACTION_RETRIES: usize = 32;

/// Memory a ring lives in, made from (and given back as) platform [`Pages`].
/// Once `Pages` itself is ring memory this is just `Pages`.
pub trait RingPages: RingMemory + From<Pages> + Into<Pages> {}

impl<T: RingMemory + From<Pages> + Into<Pages>> RingPages for T {}

/// A block frontend over ring memory `R`: handshake state, queues, and the
/// device's health.
pub struct Frontend<C, R> {
    dir: String,
    device_id: u32,
    backend_dir: String,
    backend_id: DomId,
    settings: Settings,
    own: XenbusState,
    rings: Option<RingLayout>,
    pending: Vec<Ring<C, R>>,
    queues: Vec<Queue<C, R>>,
    info: Option<BackendInfo>,
    broken: Option<BrokenReason>,
    /// Pages the backend never let go of: never freed.
    quarantine: Vec<Pages>,
    reconnects: u32,
    /// A frontend-driven reconnect ([`Frontend::restart`]) is under way.
    restarting: bool,
}

impl<C, R> fmt::Debug for Frontend<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frontend")
            .field("dir", &self.dir)
            .field("backend_dir", &self.backend_dir)
            .field("own", &self.own)
            .field("queues", &self.queues.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn store_err(key: &str) -> impl FnOnce(StoreError) -> ConnectError + '_ {
    move |e| ConnectError::Store(String::from(key), e)
}

/// Reads our `backend` and `backend-id` keys (the toolstack writes them).
fn read_backend(store: &(impl Store + ?Sized), dir: &str) -> Result<(String, DomId), ConnectError> {
    let backend = store
        .read(Txn::NONE, &format!("{dir}/backend"))
        .map_err(store_err("backend"))?;
    let backend_dir = String::from_utf8(backend)
        .ok()
        .map(|s| String::from(s.trim_end_matches('\0')))
        .filter(|s| !s.is_empty())
        .ok_or(ConnectError::BadFrontendKey("backend"))?;
    let backend_id = store
        .read(Txn::NONE, &format!("{dir}/backend-id"))
        .map_err(store_err("backend-id"))?;
    let backend_id = parse_u64(&backend_id)
        .and_then(|d| u16::try_from(d).ok())
        .ok_or(ConnectError::BadFrontendKey("backend-id"))?;
    Ok((backend_dir, DomId(backend_id)))
}

impl<C, R: RingPages> Frontend<C, R> {
    /// A frontend for the device whose xenstore directory is `dir`
    /// (`device/vbd/<id>`): reads `backend` and `backend-id`.
    pub fn new(
        store: &(impl Store + ?Sized),
        dir: &str,
        settings: Settings,
    ) -> Result<Self, ConnectError> {
        let device_id = dir
            .rsplit('/')
            .next()
            .and_then(|id| parse_u64(id.as_bytes()))
            .and_then(|id| u32::try_from(id).ok())
            .ok_or(ConnectError::BadFrontendKey("device id"))?;
        let (backend_dir, backend_id) = read_backend(store, dir)?;
        Ok(Self {
            dir: String::from(dir),
            device_id,
            backend_dir,
            backend_id,
            settings,
            own: XenbusState::Initialising,
            rings: None,
            pending: Vec::new(),
            queues: Vec::new(),
            info: None,
            broken: None,
            quarantine: Vec::new(),
            reconnects: 0,
            restarting: false,
        })
    }

    /// Reconnects from our side (resume after suspend or migration, or an
    /// administrator's reset): goes Closing; [`Frontend::poll_state`] then
    /// goes Closed once the backend follows (blkback unmaps everything on our
    /// Closed), takes every request back for replay, releases rings and pools,
    /// and runs the handshake again.
    pub fn restart(&mut self, store: &(impl Store + ?Sized)) -> Result<(), ConnectError> {
        self.restarting = true;
        self.write_state(store, XenbusState::Closing)
    }

    /// The domain was suspended and now runs again as a NEW domain (`xl
    /// save`/`xl restore`, live migration): the backend that mapped our rings,
    /// our event channels and every mapping of our grants went away with the
    /// old domain, and the toolstack made a new backend for this one. Call it
    /// once, after xenstore works again and before anything else touches the
    /// device.
    ///
    /// Re-reads `backend` and `backend-id`; takes every request that was not
    /// completed back for replay, in submission order (an answer the old
    /// backend wrote but we never consumed is ignored: the request is simply
    /// done again, which is what Linux's `blkfront_resume` does too); drops
    /// rings and the persistent and indirect pools without waiting for any
    /// backend: their grants are revoked (nobody can map them in the new
    /// domain, so this cannot block) and the pages freed, but the event
    /// channels are forgotten, NOT closed (their port numbers belong to the new
    /// domain's own channels now). Then starts over at Initialising;
    /// [`Frontend::poll_state`] runs the handshake with the new backend,
    /// re-reads its features and replays.
    ///
    /// Returns how many requests wait for replay. A grant that still cannot be
    /// revoked fails the device (its requests complete with
    /// [`super::Status::DeviceFailed`] through `out`).
    pub fn resume<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) -> Result<usize, ConnectError>
    where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
        F: Frames,
    {
        if self.broken.is_some() {
            return Err(ConnectError::Broken);
        }
        let (backend_dir, backend_id) = read_backend(p.store, &self.dir)?;
        log::warn!(
            "xenvbd: {}: resumed in a new domain: backend {} -> {backend_dir}",
            self.dir,
            self.backend_dir
        );
        self.reconnects = self.reconnects.saturating_add(1);
        self.restarting = false;
        let env = Env {
            events: p.events,
            grants: p.grants,
            frames: p.frames,
            backend: self.backend_id,
        };
        let mut failure = None;
        let mut rings = core::mem::take(&mut self.pending);
        let mut replay = 0;
        for q in &mut self.queues {
            match q.detach(env) {
                Ok(Some(ring)) => rings.push(ring),
                Ok(None) => {}
                Err(reason) => failure = Some(reason),
            }
            replay += q.waiting();
            q.pool.release(p.memory, p.grants, &mut self.quarantine);
            q.indirect.release(p.memory, p.grants, &mut self.quarantine);
        }
        for ring in rings {
            // Dropped, not closed: the port is the new domain's to reuse.
            let Ring {
                front,
                grants,
                channel,
            } = ring;
            drop(channel);
            self.revoke_or_quarantine(p, &grants, front.into_memory().into());
        }
        self.backend_dir = backend_dir;
        self.backend_id = backend_id;
        if let Some(reason) = failure {
            self.fail(reason, p, out);
            return Err(ConnectError::Broken);
        }
        self.write_state(p.store, XenbusState::Initialising)?;
        Ok(replay)
    }

    /// The vbd's device id (the last element of its directory).
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The backend's directory (watch `<it>/state`).
    pub fn backend_dir(&self) -> &str {
        &self.backend_dir
    }

    /// Our state.
    pub fn state(&self) -> XenbusState {
        self.own
    }

    /// The disk, once connected.
    pub fn info(&self) -> Option<&BackendInfo> {
        self.info.as_ref()
    }

    /// Why the device failed, if it did.
    pub fn broken(&self) -> Option<BrokenReason> {
        self.broken
    }

    /// How many times the backend went away and we reconnected.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// The queues.
    pub fn queues(&self) -> &[Queue<C, R>] {
        &self.queues
    }

    /// Pages quarantined because the backend never released them.
    pub fn quarantined_pages(&self) -> usize {
        self.quarantine.len()
    }

    /// What the SCSI translation needs to know, once connected.
    pub fn logical_unit(&self) -> Option<LogicalUnit> {
        let info = self.info?;
        let features = self.queues.first()?.features();
        let max_bytes = features.max_bytes();
        Some(LogicalUnit {
            block_size: info.sector_size,
            physical_block_size: info.physical_sector_size,
            blocks: info.sectors / u64::from(info.sector_size / 512),
            read_only: info.read_only,
            removable: info.removable,
            write_cache: features.flush_cache || features.barrier,
            fua: features.flush_cache || features.barrier,
            discard: features.discard,
            max_transfer_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
            max_unmap_descriptors: 64,
            device_id: self.device_id,
        })
    }

    fn write_state(
        &mut self,
        store: &(impl Store + ?Sized),
        state: XenbusState,
    ) -> Result<(), ConnectError> {
        store
            .write(
                Txn::NONE,
                &format!("{}/state", self.dir),
                format!("{}", state as u32).as_bytes(),
            )
            .map_err(store_err("state"))?;
        self.own = state;
        Ok(())
    }

    /// Reads the backend's state.
    pub fn backend_state(
        &self,
        store: &(impl Store + ?Sized),
    ) -> Result<XenbusState, ConnectError> {
        let raw = store
            .read(Txn::NONE, &format!("{}/state", self.backend_dir))
            .map_err(store_err("backend state"))?;
        Ok(parse_u64(&raw)
            .and_then(|v| u32::try_from(v).ok())
            .and_then(XenbusState::from_u32)
            .unwrap_or(XenbusState::Unknown))
    }

    /// Reads both states and acts ([`backend_changed`]). Call it when the
    /// backend's `state` watch fires; returns the action taken.
    pub fn poll_state<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) -> Result<Action, ConnectError>
    where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
        F: Frames,
    {
        if self.broken.is_some() {
            return Err(ConnectError::Broken);
        }
        let backend = self.backend_state(p.store)?;
        if self.restarting {
            use XenbusState as S;
            match (self.own, backend) {
                (S::Closing, S::Closing | S::Closed) => self.write_state(p.store, S::Closed)?,
                (S::Closed, S::Closed) => {
                    self.restarting = false;
                    self.reconnect(p, out)?;
                    return Ok(Action::Reconnect);
                }
                _ => {}
            }
            return Ok(Action::Wait);
        }
        let action = backend_changed(self.own, backend);
        match action {
            Action::Wait => {}
            Action::TalkToBackend => self.talk_to_backend(p)?,
            Action::Connect => self.connect(p, out)?,
            Action::Resize => {
                let info =
                    BackendInfo::read(p.store, &self.backend_dir).map_err(ConnectError::Backend)?;
                for q in &mut self.queues {
                    q.features.sectors = info.sectors;
                }
                self.info = Some(info);
            }
            Action::Reconnect => {
                self.reconnect(p, out)?;
                // The backend may already wait for us.
                if backend == XenbusState::InitWait {
                    self.talk_to_backend(p)?;
                }
            }
        }
        Ok(action)
    }

    /// Sets up rings and publishes them: used when first connecting and after
    /// every reset.
    pub fn talk_to_backend<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
    ) -> Result<(), ConnectError>
    where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
    {
        let read_num = |key: &'static str, default: u64| -> Result<u64, ConnectError> {
            match read_opt(p.store, Txn::NONE, &self.backend_dir, key).map_err(store_err(key))? {
                None => Ok(default),
                Some(raw) => {
                    parse_u64(&raw).ok_or(ConnectError::Backend(BackendInfoError::BadKey {
                        key,
                        value: String::from_utf8_lossy(&raw).into_owned(),
                    }))
                }
            }
        };
        let max_order = u32::try_from(read_num("max-ring-page-order", 0)?).unwrap_or(u32::MAX);
        let max_queues = u32::try_from(read_num("multi-queue-max-queues", 1)?).unwrap_or(u32::MAX);
        let budget = negotiate::budget(&self.settings, p.grants.available());
        let layout = negotiate::ring_layout(&self.settings, max_order, max_queues, budget)
            .map_err(ConnectError::Budget)?;
        self.release_pending(p);
        for _ in 0..layout.queues {
            match self.make_ring(p, layout) {
                Ok(ring) => self.pending.push(ring),
                Err(e) => {
                    self.release_pending(p);
                    return Err(e);
                }
            }
        }
        self.rings = Some(layout);
        if let Err(e) = self.publish(p) {
            self.release_pending(p);
            return Err(e);
        }
        self.write_state(p.store, XenbusState::Initialised)
    }

    fn make_ring<S: ?Sized, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        layout: RingLayout,
    ) -> Result<Ring<C, R>, ConnectError>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
    {
        let pages = p
            .memory
            .alloc(layout.ring_pages())
            .map_err(|_| ConnectError::Resources("memory for a ring"))?;
        let pfns: Vec<_> = pages.pfns().to_vec();
        let mut grefs = Vec::with_capacity(pfns.len());
        for pfn in pfns {
            if let Ok(g) = p.grants.grant(self.backend_id, pfn, false) {
                grefs.push(g);
            } else {
                self.revoke_or_quarantine(p, &grefs, pages);
                return Err(ConnectError::Resources("grants for a ring"));
            }
        }
        // `Pages` are page-aligned whole pages, so this cannot fail; if it did,
        // the pages stay granted and are leaked, never reused.
        let Ok(front) = xen_abi::blkif::BlkifFrontRing::new(R::from(pages)) else {
            return Err(ConnectError::Resources("ring memory"));
        };
        let Ok(channel) = p.events.open_unbound(self.backend_id) else {
            let pages = front.into_memory().into();
            self.revoke_or_quarantine(p, &grefs, pages);
            return Err(ConnectError::Resources("event channels"));
        };
        Ok(Ring {
            front,
            grants: grefs,
            channel,
        })
    }

    fn revoke_or_quarantine<S: ?Sized, E, G: GrantTable, M: Memory, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        grefs: &[xenbus_interface::api::GrantRef],
        pages: Pages,
    ) {
        let mut held = false;
        for &g in grefs {
            if p.grants.revoke(g).is_err() {
                held = true;
            }
        }
        if held {
            log::error!("xenvbd: backend still maps a ring page: quarantined");
            self.quarantine.push(pages);
        } else {
            p.memory.free(pages);
        }
    }

    fn release_ring<S: ?Sized, E: EventChannels<Channel = C>, G: GrantTable, M: Memory, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        ring: Ring<C, R>,
    ) {
        p.events.close(ring.channel);
        let pages = ring.front.into_memory().into();
        self.revoke_or_quarantine(p, &ring.grants, pages);
    }

    fn release_pending<S: ?Sized, E: EventChannels<Channel = C>, G: GrantTable, M: Memory, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
    ) {
        let pending = core::mem::take(&mut self.pending);
        for ring in pending {
            self.release_ring(p, ring);
        }
    }

    /// Writes the frontend keys in one transaction, retried on conflict.
    fn publish<S: Store + ?Sized, E: EventChannels<Channel = C>, G, M, F>(
        &self,
        p: Platform<'_, S, E, G, M, F>,
    ) -> Result<(), ConnectError> {
        for _ in 0..TRANSACTION_RETRIES {
            let txn = p
                .store
                .transaction_start()
                .map_err(store_err("transaction"))?;
            let written = self.write_keys(p, txn);
            if let Err(e) = written {
                let _ = p.store.transaction_end(txn, false);
                return Err(e);
            }
            match p.store.transaction_end(txn, true) {
                Ok(()) => return Ok(()),
                Err(StoreError::Xs(XsError::Eagain)) => {}
                Err(e) => return Err(ConnectError::Store(String::from("transaction end"), e)),
            }
        }
        Err(ConnectError::Store(
            String::from("transaction"),
            StoreError::Xs(XsError::Eagain),
        ))
    }

    fn write_keys<S: Store + ?Sized, E: EventChannels<Channel = C>, G, M, F>(
        &self,
        p: Platform<'_, S, E, G, M, F>,
        txn: Txn,
    ) -> Result<(), ConnectError> {
        let Some(layout) = self.rings else {
            return Err(ConnectError::Resources("ring layout"));
        };
        let write = |key: &str, value: &str| {
            p.store
                .write(txn, &format!("{}/{key}", self.dir), value.as_bytes())
                .map_err(|e| ConnectError::Store(String::from(key), e))
        };
        let multi = self.pending.len() > 1;
        if layout.ring_page_order > 0 {
            write("ring-page-order", &format!("{}", layout.ring_page_order))?;
        }
        if multi {
            write("multi-queue-num-queues", &format!("{}", self.pending.len()))?;
        }
        for (q, ring) in self.pending.iter().enumerate() {
            let prefix = if multi {
                format!("queue-{q}/")
            } else {
                String::new()
            };
            if layout.ring_page_order == 0 {
                write(&format!("{prefix}ring-ref"), &format!("{}", ring.grants[0]))?;
            } else {
                for (i, g) in ring.grants.iter().enumerate() {
                    write(&format!("{prefix}ring-ref{i}"), &format!("{g}"))?;
                }
            }
            write(
                &format!("{prefix}event-channel"),
                &format!("{}", p.events.port(&ring.channel)),
            )?;
        }
        write("protocol", PROTOCOL)?;
        write(
            "feature-persistent",
            if self.settings.persistent { "1" } else { "0" },
        )?;
        Ok(())
    }

    /// Backend Connected: read the disk, size the pools, attach the rings,
    /// replay what waits, and go Connected.
    fn connect<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) -> Result<(), ConnectError>
    where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
        F: Frames,
    {
        let info = BackendInfo::read(p.store, &self.backend_dir).map_err(ConnectError::Backend)?;
        let Some(layout) = self.rings else {
            return Err(ConnectError::Resources("ring layout"));
        };
        // The rings are granted already: the budget is what is left plus them.
        let budget = negotiate::budget(&self.settings, p.grants.available())
            + layout.ring_pages() * usize::from(layout.queues);
        let mut settings = self.settings;
        settings.flush_cache &= info.flush_cache;
        let ql = negotiate::queue_layout(&settings, &info, &layout, budget)
            .map_err(ConnectError::Budget)?;
        let features = Features {
            handle: u16::try_from(self.device_id & 0xFFFF).unwrap_or(0),
            sectors: info.sectors,
            read_only: info.read_only,
            flush_cache: self.settings.flush_cache && info.flush_cache,
            barrier: self.settings.barrier && info.barrier,
            discard: if self.settings.discard {
                info.discard
            } else {
                None
            },
            indirect_segments: ql.indirect_segments,
            persistent: ql.persistent,
        };
        let slots = blkif_ring_size(layout.ring_pages());
        let pending = core::mem::take(&mut self.pending);
        // Queues beyond the new count keep their waiting requests; they are
        // moved to queue 0 so nothing is lost.
        let mut orphans = Vec::new();
        while self.queues.len() > pending.len() {
            if let Some(q) = self.queues.pop() {
                orphans.push(q);
            }
        }
        let env_of = |backend| Env {
            events: p.events,
            grants: p.grants,
            frames: p.frames,
            backend,
        };
        for (index, ring) in pending.into_iter().enumerate() {
            let (pool, indirect) = match self.pools(p, &ql) {
                Ok(x) => x,
                Err(e) => {
                    p.events.close(ring.channel);
                    let pages = ring.front.into_memory().into();
                    self.revoke_or_quarantine(p, &ring.grants, pages);
                    return Err(e);
                }
            };
            if index < self.queues.len() {
                let q = &mut self.queues[index];
                q.pool = pool;
                q.indirect = indirect;
                q.indirect_pages_per_request = ql.indirect_pages_per_request as usize;
                q.features = features;
                q.grow(slots);
            } else {
                self.queues.push(Queue::new(
                    slots,
                    features,
                    ql.indirect_pages_per_request as usize,
                    pool,
                    indirect,
                ));
            }
            let env = env_of(self.backend_id);
            self.queues[index].attach(ring, features, env, out);
        }
        for mut orphan in orphans {
            let env = env_of(self.backend_id);
            // Orphaned requests have no ring any more; fail them cleanly.
            orphan.fail_all(env, out);
        }
        self.info = Some(info);
        self.write_state(p.store, XenbusState::Connected)
    }

    fn pools<S: ?Sized, E, G: GrantTable, M: Memory, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        ql: &QueueLayout,
    ) -> Result<(PagePool, PagePool), ConnectError> {
        let map = |e: PoolError| match e {
            PoolError::Memory => ConnectError::Resources("memory for pools"),
            PoolError::Grant(_) => ConnectError::Resources("grants for pools"),
        };
        // Persistent grants must be writable for every use (blkif.h note 8).
        let pool = PagePool::new(
            ql.pool_pages,
            self.backend_id,
            false,
            p.memory,
            p.grants,
            &mut self.quarantine,
        )
        .map_err(map)?;
        // Indirect segment lists are only read by the backend, but with
        // persistent grants Linux's blkback maps every grant writable (it may
        // keep any of them for later data): read-only would fail them all.
        let indirect = PagePool::new(
            ql.indirect_pool_pages,
            self.backend_id,
            !ql.persistent,
            p.memory,
            p.grants,
            &mut self.quarantine,
        );
        match indirect {
            Ok(indirect) => Ok((pool, indirect)),
            Err(e) => {
                let mut pool = pool;
                pool.release(p.memory, p.grants, &mut self.quarantine);
                Err(map(e))
            }
        }
    }

    /// The backend left: requests go back to waiting, rings and pools are
    /// released, and we start over at Initialising.
    fn reconnect<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) -> Result<(), ConnectError>
    where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
        F: Frames,
    {
        log::warn!("xenvbd: backend {} reset: reconnecting", self.backend_dir);
        self.reconnects = self.reconnects.saturating_add(1);
        self.release_pending(p);
        let backend = self.backend_id;
        let mut failure = None;
        let mut rings = Vec::new();
        for q in &mut self.queues {
            let env = Env {
                events: p.events,
                grants: p.grants,
                frames: p.frames,
                backend,
            };
            match q.detach(env) {
                Ok(Some(ring)) => rings.push(ring),
                Ok(None) => {}
                Err(reason) => failure = Some(reason),
            }
            q.pool.release(p.memory, p.grants, &mut self.quarantine);
            q.indirect.release(p.memory, p.grants, &mut self.quarantine);
        }
        for ring in rings {
            self.release_ring(p, ring);
        }
        if let Some(reason) = failure {
            self.fail(reason, p, out);
            return Err(ConnectError::Broken);
        }
        self.write_state(p.store, XenbusState::Initialising)
    }

    /// Fails the device: logs why, completes every request with an error.
    fn fail<S: ?Sized, E, G: GrantTable, M, F>(
        &mut self,
        reason: BrokenReason,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) {
        log::error!("xenvbd: {}: disabled for further use: {reason}", self.dir);
        self.broken = Some(reason);
        let backend = self.backend_id;
        for q in &mut self.queues {
            let env = Env {
                events: p.events,
                grants: p.grants,
                frames: p.frames,
                backend,
            };
            q.fail_all(env, out);
        }
    }

    /// Submits a request on queue `queue`.
    pub fn submit<S: ?Sized, E, G, M, F>(
        &mut self,
        queue: usize,
        req: &IoRequest<'_>,
        p: Platform<'_, S, E, G, M, F>,
    ) -> Result<(), SubmitError>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        if self.broken.is_some() {
            return Err(SubmitError::Broken);
        }
        let backend = self.backend_id;
        let q = self
            .queues
            .get_mut(queue)
            .ok_or(SubmitError::NotConnected)?;
        q.submit(
            req,
            Env {
                events: p.events,
                grants: p.grants,
                frames: p.frames,
                backend,
            },
        )
    }

    /// Consumes at most `budget` responses on queue `queue` (its event channel
    /// fired). A protocol violation fails the whole device.
    pub fn poll<S: ?Sized, E, G, M, F>(
        &mut self,
        queue: usize,
        budget: usize,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) -> PollOutcome
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        let idle = PollOutcome {
            completed: 0,
            more: false,
        };
        if self.broken.is_some() {
            return idle;
        }
        let backend = self.backend_id;
        let Some(q) = self.queues.get_mut(queue) else {
            return idle;
        };
        let env = Env {
            events: p.events,
            grants: p.grants,
            frames: p.frames,
            backend,
        };
        match q.poll(env, budget, out) {
            Ok(outcome) => outcome,
            Err(reason) => {
                self.fail(reason, p, out);
                idle
            }
        }
    }

    /// Starts closing: goes Closing so that the backend lets go of the rings
    /// and grants. Wait (bounded) for the backend to reach Closing or Closed,
    /// then call [`Frontend::close`].
    pub fn begin_close(&mut self, store: &(impl Store + ?Sized)) -> Result<(), ConnectError> {
        self.write_state(store, XenbusState::Closing)
    }

    /// Goes Closed without releasing anything yet. Linux's blkback unmaps the
    /// rings and persistent grants only when it sees the frontend Closed, so
    /// a clean close is [`Frontend::begin_close`], wait for the backend's
    /// Closing, this, wait (bounded) for the backend's Closed, then
    /// [`Frontend::close`]: every grant then revokes and nothing is
    /// quarantined.
    pub fn end_close(&mut self, store: &(impl Store + ?Sized)) -> Result<(), ConnectError> {
        self.write_state(store, XenbusState::Closed)
    }

    /// Closes the device: fails what is outstanding, releases rings and pools
    /// (quarantining what the backend still maps), and goes Closed. Always
    /// finishes, whatever the backend does.
    pub fn close<S, E, G, M, F>(
        &mut self,
        p: Platform<'_, S, E, G, M, F>,
        out: &mut impl FnMut(Completion),
    ) where
        S: Store + ?Sized,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        M: Memory,
        F: Frames,
    {
        let backend = self.backend_id;
        let mut rings = Vec::new();
        for q in &mut self.queues {
            let env = Env {
                events: p.events,
                grants: p.grants,
                frames: p.frames,
                backend,
            };
            q.fail_all(env, out);
        }
        // Closed tells the backend to unmap; what it still maps when we revoke
        // is quarantined, never reused.
        let _ = self.write_state(p.store, XenbusState::Closed);
        for q in &mut self.queues {
            let env = Env {
                events: p.events,
                grants: p.grants,
                frames: p.frames,
                backend,
            };
            if let Ok(Some(ring)) = q.detach(env) {
                rings.push(ring);
            }
            q.pool.release(p.memory, p.grants, &mut self.quarantine);
            q.indirect.release(p.memory, p.grants, &mut self.quarantine);
        }
        for ring in rings {
            self.release_ring(p, ring);
        }
        self.release_pending(p);
    }

    /// The event channel port of queue `queue`, if connected.
    pub fn port<E: EventChannels<Channel = C>>(
        &self,
        events: &E,
        queue: usize,
    ) -> Option<xenbus_interface::api::Port> {
        self.queues
            .get(queue)?
            .ring
            .as_ref()
            .map(|r| events.port(&r.channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use XenbusState as S;

    #[test]
    fn transitions() {
        assert_eq!(
            backend_changed(S::Initialising, S::InitWait),
            Action::TalkToBackend
        );
        assert_eq!(
            backend_changed(S::Initialising, S::Initialising),
            Action::Wait
        );
        assert_eq!(backend_changed(S::Initialised, S::InitWait), Action::Wait);
        assert_eq!(
            backend_changed(S::Initialised, S::Closed),
            Action::Reconnect
        );
        assert_eq!(backend_changed(S::Connected, S::InitWait), Action::Wait);
        assert_eq!(
            backend_changed(S::Initialised, S::Connected),
            Action::Connect
        );
        assert_eq!(backend_changed(S::Connected, S::Connected), Action::Resize);
        for gone in [S::Closing, S::Closed, S::Initialising, S::Unknown] {
            assert_eq!(backend_changed(S::Connected, gone), Action::Reconnect);
        }
        assert_eq!(backend_changed(S::Initialising, S::Closed), Action::Wait);
        assert_eq!(backend_changed(S::Closed, S::InitWait), Action::Wait);
    }
}
