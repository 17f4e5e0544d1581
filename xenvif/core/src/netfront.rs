//! The netfront device: the xenbus handshake with netback (used both to
//! connect and to reconnect after a backend reset), its queues, its control
//! ring, and the teardown that never frees a page the backend may still map.
//!
//! Handshake (as Linux's `talk_to_netback` and the C XENVIF frontend): read the
//! backend's features once it says `InitWait`, build one tx and one rx ring per
//! queue (plus the control ring when offered), grant them, open event channels,
//! write every key in one transaction (retried on `EAGAIN`), switch to
//! `Connected`, wait for the backend's `Connected`.
//!
//! Runs at PASSIVE_LEVEL: store operations block, each wait bounded by the
//! caller's timeout. The data path (the queues' `submit`/`poll`) does not touch
//! the store.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use xen_abi::ring::{RingMemory, RingSetupError};
use xen_abi::xs_wire::XsError;
use xenbus_interface::api::{
    DomId, EventChannels, EvtchnError, GrantError, GrantRef, GrantTable, Memory, OutOfMemory,
    Pages, Pfn, Port, Store, StoreError, Txn, XenbusState,
};

use crate::backend::{BackendFeatures, FrontendKeys, join, read_u32};
use crate::coalesce::TxCopyPool;
use crate::ctrl::CtrlQueue;
use crate::rx::{RxEvent, RxQueue};
use crate::settings::Settings;
use crate::stats::Statistics;
use crate::tx::{TxCompletion, TxQueue};
use crate::wire::ethernet::MacAddress;

/// Where the engine gets the pages its shared rings live in: one zeroed page
/// per ring, and the frame number to grant. On Windows non-paged pages; in
/// the rig, gntalloc pages; in unit tests heap pages.
pub trait RingPages {
    /// One ring's memory.
    type Ring: RingMemory;
    /// A zeroed page for a ring.
    fn alloc_ring(&self) -> Result<(Self::Ring, Pfn), OutOfMemory>;
    /// Gives a ring page back; called only once its grant has ended.
    fn free_ring(&self, ring: Self::Ring);
}

/// [`RingPages`] from any platform [`Memory`]: one page per ring, the
/// allocation's only frame granted.
#[derive(Debug, Clone, Copy)]
pub struct MemoryRings<'a, M>(pub &'a M);

impl<M: Memory> RingPages for MemoryRings<'_, M> {
    type Ring = Pages;

    fn alloc_ring(&self) -> Result<(Pages, Pfn), OutOfMemory> {
        let pages = self.0.alloc(1)?;
        let pfn = pages.pfn(0).ok_or(OutOfMemory)?;
        Ok((pages, pfn))
    }

    fn free_ring(&self, ring: Pages) {
        self.0.free(ring);
    }
}

/// Why connecting failed. Everything built so far has been torn down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// A store operation on `path` failed.
    Store {
        /// The node.
        path: String,
        /// The error.
        error: StoreError,
    },
    /// The backend's directory is missing or says nonsense (`what`).
    BadBackend(&'static str),
    /// The backend does not offer `feature-rx-copy`, the only receive mode.
    NoRxCopy,
    /// The backend did not reach `want` in time (it was at `state`).
    Timeout {
        /// The state waited for.
        want: XenbusState,
        /// The state last seen.
        state: XenbusState,
    },
    /// The backend closed during the handshake.
    BackendClosed,
    /// No memory for a ring.
    OutOfMemory,
    /// A ring page could not be granted.
    Grant(GrantError),
    /// An event channel could not be opened.
    Evtchn(EvtchnError),
    /// A ring page was unusable.
    Ring(RingSetupError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store { path, error } => write!(f, "xenstore {path}: {error}"),
            Self::BadBackend(what) => write!(f, "backend directory unusable: {what}"),
            Self::NoRxCopy => f.write_str("backend does not offer feature-rx-copy"),
            Self::Timeout { want, state } => {
                write!(f, "backend did not reach {want:?} (still {state:?})")
            }
            Self::BackendClosed => f.write_str("backend closed during the handshake"),
            Self::OutOfMemory => f.write_str("out of memory for rings"),
            Self::Grant(e) => write!(f, "granting a ring: {e}"),
            Self::Evtchn(e) => write!(f, "opening an event channel: {e}"),
            Self::Ring(e) => write!(f, "ring setup: {e}"),
        }
    }
}

/// A queue's event channels.
#[derive(Debug)]
pub enum QueueChannels<C> {
    /// One channel for both directions (`event-channel`).
    Shared(C),
    /// `event-channel-tx` and `event-channel-rx`.
    Split {
        /// Transmit completions.
        tx: C,
        /// Receive.
        rx: C,
    },
}

impl<C> QueueChannels<C> {
    /// The channel transmit notifications go through.
    pub fn tx(&self) -> &C {
        match self {
            Self::Shared(c) | Self::Split { tx: c, .. } => c,
        }
    }

    /// The channel receive notifications go through.
    pub fn rx(&self) -> &C {
        match self {
            Self::Shared(c) | Self::Split { rx: c, .. } => c,
        }
    }
}

/// One granted ring page.
#[derive(Debug)]
struct RingGrant<R> {
    gref: GrantRef,
    memory_pfn: Pfn,
    _marker: core::marker::PhantomData<R>,
}

/// One queue: its rings and channels.
#[derive(Debug)]
pub struct Queue<R, C> {
    /// Transmit side.
    pub tx: TxQueue<R>,
    /// Receive side.
    pub rx: RxQueue<R>,
    /// Its event channels.
    pub channels: QueueChannels<C>,
    tx_grant: RingGrant<R>,
    rx_grant: RingGrant<R>,
}

/// The control ring and its channel.
#[derive(Debug)]
pub struct Control<R, C> {
    /// The ring.
    pub queue: CtrlQueue<R>,
    /// Its channel.
    pub channel: C,
    grant: RingGrant<R>,
}

/// A connected netfront.
#[derive(Debug)]
pub struct Netfront<R, C> {
    frontend: String,
    backend: String,
    backend_id: DomId,
    settings: Settings,
    features: BackendFeatures,
    mac: MacAddress,
    mtu: u16,
    /// The queues.
    pub queues: Vec<Queue<R, C>>,
    /// The control ring, when the backend offers one and Toeplitz is allowed.
    pub control: Option<Control<R, C>>,
    /// Counters.
    pub stats: Statistics,
    /// Ring pages whose grant the backend would not release: never freed.
    quarantined_rings: Vec<R>,
    /// Coalescing pools taken off queues torn down, attached again to the
    /// next connection's queues (see [`Netfront::take_copy_pools`]).
    copy_pools: Vec<TxCopyPool>,
}

/// The platform a netfront runs on, borrowed for a connection step.
#[derive(Debug)]
pub struct Platform<'a, S, E, G, P> {
    /// xenstore.
    pub store: &'a S,
    /// Event channels.
    pub evtchn: &'a E,
    /// Grant table.
    pub grants: &'a G,
    /// Ring pages.
    pub rings: &'a P,
}

// Manual: a derive would demand `S: Copy` etc., but only references are copied.
impl<S, E, G, P> Clone for Platform<'_, S, E, G, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, E, G, P> Copy for Platform<'_, S, E, G, P> {}

/// How many times a conflicting key-writing transaction is retried.
const TRANSACTION_RETRIES: usize = 16;

fn store_err(path: &str, error: StoreError) -> ConnectError {
    ConnectError::Store {
        path: String::from(path),
        error,
    }
}

fn read_string(store: &impl Store, path: &str) -> Result<String, ConnectError> {
    let bytes = store
        .read(Txn::NONE, path)
        .map_err(|e| store_err(path, e))?;
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| ConnectError::BadBackend("not UTF-8"))
}

/// Reads a device's state node (missing or garbage: `Unknown`).
pub fn read_state(store: &impl Store, dir: &str) -> Result<XenbusState, StoreError> {
    match store.read(Txn::NONE, &join(dir, "state")) {
        Ok(bytes) => Ok(XenbusState::parse(&bytes).unwrap_or(XenbusState::Unknown)),
        Err(StoreError::Xs(XsError::Enoent)) => Ok(XenbusState::Unknown),
        Err(e) => Err(e),
    }
}

/// Writes our state.
pub fn write_state(store: &impl Store, dir: &str, state: XenbusState) -> Result<(), ConnectError> {
    let path = join(dir, "state");
    store
        .write(
            Txn::NONE,
            &path,
            alloc::format!("{}", state.as_u32()).as_bytes(),
        )
        .map_err(|e| store_err(&path, e))
}

/// Waits until `dir/state` satisfies `done`, at most `timeout` (in steps of
/// the store's watch). Waiting for `Connected`, `Closing`/`Closed` fail at
/// once with [`ConnectError::BackendClosed`].
pub fn wait_state(
    store: &impl Store,
    dir: &str,
    want: XenbusState,
    timeout: Duration,
    done: impl Fn(XenbusState) -> bool,
) -> Result<XenbusState, ConnectError> {
    let path = join(dir, "state");
    let watch = store.watch_add(&path).map_err(|e| store_err(&path, e))?;
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    let result = loop {
        let state = match read_state(store, dir) {
            Ok(s) => s,
            Err(e) => break Err(store_err(&path, e)),
        };
        if done(state) {
            break Ok(state);
        }
        // Waiting for `Connected`, a closing backend has given up on us; waiting
        // for `InitWait`, a closed backend is on its way back (netback offers
        // `InitWait` again once the frontend says `Initialising`).
        if want == XenbusState::Connected
            && matches!(state, XenbusState::Closing | XenbusState::Closed)
        {
            break Err(ConnectError::BackendClosed);
        }
        if waited >= timeout {
            break Err(ConnectError::Timeout { want, state });
        }
        match store.watch_wait(watch, step) {
            Ok(_) => waited += step,
            Err(e) => break Err(store_err(&path, e)),
        }
    };
    let _ = store.watch_remove(watch);
    result
}

/// The keys to write, given the chosen queue count, ring references and ports.
/// Pure, so every branch of the layout is testable without a store.
#[allow(clippy::too_many_arguments, reason = "the handshake's inputs, named")]
pub fn frontend_keys(
    features: &BackendFeatures,
    settings: &Settings,
    rings: &[(GrantRef, GrantRef)],
    ports: &[(Port, Option<Port>)],
    control: Option<(GrantRef, Port)>,
) -> FrontendKeys {
    let mut keys = FrontendKeys::default();
    let multi = rings.len() > 1;
    if multi {
        keys.push("multi-queue-num-queues", rings.len());
    }
    for (i, ((tx_ref, rx_ref), (port, rx_port))) in rings.iter().zip(ports).enumerate() {
        let prefix = if multi {
            alloc::format!("queue-{i}/")
        } else {
            String::new()
        };
        keys.push(alloc::format!("{prefix}tx-ring-ref"), tx_ref);
        keys.push(alloc::format!("{prefix}rx-ring-ref"), rx_ref);
        match rx_port {
            Some(rx_port) => {
                keys.push(alloc::format!("{prefix}event-channel-tx"), port);
                keys.push(alloc::format!("{prefix}event-channel-rx"), rx_port);
            }
            None => keys.push(alloc::format!("{prefix}event-channel"), port),
        }
    }
    keys.push("request-rx-copy", 1);
    keys.push("feature-rx-notify", 1);
    keys.push("feature-sg", 1);
    keys.push(
        "feature-gso-tcpv4",
        u8::from(!settings.receiver_disable_gso),
    );
    keys.push(
        "feature-gso-tcpv6",
        u8::from(!settings.receiver_disable_gso),
    );
    keys.push(
        "feature-no-csum-offload",
        u8::from(settings.receiver_disable_checksum_offload),
    );
    keys.push(
        "feature-ipv6-csum-offload",
        u8::from(!settings.receiver_disable_checksum_offload),
    );
    if features.multicast_control(settings) {
        keys.push("request-multicast-control", 1);
    }
    if let Some((gref, port)) = control {
        keys.push("ctrl-ring-ref", gref);
        keys.push("event-channel-ctrl", port);
    }
    keys
}

/// What connecting builds before the keys are written.
struct Built<R, C> {
    queues: Vec<Queue<R, C>>,
    control: Option<Control<R, C>>,
}

impl<R: RingMemory, C> Netfront<R, C> {
    /// Connects the device whose frontend directory is `frontend` (e.g.
    /// `device/vif/0`): waits for the backend's `InitWait` (at most `timeout`
    /// per wait), negotiates, builds and publishes rings, and waits for the
    /// backend's `Connected`. The rx rings start empty: post pages with
    /// [`RxQueue::post`].
    pub fn connect<S, E, G, P>(
        platform: Platform<'_, S, E, G, P>,
        frontend: &str,
        settings: Settings,
        timeout: Duration,
    ) -> Result<Self, ConnectError>
    where
        S: Store,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        let store = platform.store;
        let backend = read_string(store, &join(frontend, "backend"))?;
        if backend.is_empty() {
            return Err(ConnectError::BadBackend("empty backend path"));
        }
        let backend_id = read_u32(store, frontend, "backend-id")
            .map_err(|e| store_err(&join(frontend, "backend-id"), e))?
            .and_then(|id| u16::try_from(id).ok())
            .map_or(DomId(0), DomId);
        let mut this = Self {
            frontend: String::from(frontend),
            backend,
            backend_id,
            settings,
            features: BackendFeatures::default(),
            mac: MacAddress::default(),
            mtu: settings.default_mtu,
            queues: Vec::new(),
            control: None,
            stats: Statistics::default(),
            quarantined_rings: Vec::new(),
            copy_pools: Vec::new(),
        };
        this.talk_to_backend(platform, timeout)?;
        Ok(this)
    }

    /// The handshake proper, for [`Netfront::connect`] and
    /// [`Netfront::reconnect`]. On error, everything it built is torn down.
    fn talk_to_backend<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
        timeout: Duration,
    ) -> Result<(), ConnectError>
    where
        S: Store,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        let store = platform.store;
        write_state(store, &self.frontend, XenbusState::Initialising)?;
        wait_state(store, &self.backend, XenbusState::InitWait, timeout, |s| {
            s == XenbusState::InitWait
        })?;
        self.features =
            BackendFeatures::read(store, &self.backend).map_err(|e| store_err(&self.backend, e))?;
        if !self.features.rx_copy {
            return Err(ConnectError::NoRxCopy);
        }
        self.mac = if let Some(mac) = self.settings.mac_address {
            mac
        } else {
            let text = read_string(store, &join(&self.frontend, "mac"))?;
            MacAddress::parse(text.as_bytes())
                .ok_or(ConnectError::BadBackend("mac is not aa:bb:cc:dd:ee:ff"))?
        };
        if let Ok(Some(mtu)) = read_u32(store, &self.frontend, "mtu") {
            self.mtu = u16::try_from(mtu).unwrap_or(self.settings.default_mtu);
        }
        let built = self.build(platform)?;
        let rings: Vec<_> = built
            .queues
            .iter()
            .map(|q| (q.tx_grant.gref, q.rx_grant.gref))
            .collect();
        let ports: Vec<_> = built
            .queues
            .iter()
            .map(|q| match &q.channels {
                QueueChannels::Shared(c) => (platform.evtchn.port(c), None),
                QueueChannels::Split { tx, rx } => {
                    (platform.evtchn.port(tx), Some(platform.evtchn.port(rx)))
                }
            })
            .collect();
        let control = built
            .control
            .as_ref()
            .map(|c| (c.grant.gref, platform.evtchn.port(&c.channel)));
        let keys = frontend_keys(&self.features, &self.settings, &rings, &ports, control);
        self.queues = built.queues;
        self.control = built.control;
        self.reattach_copy_pools();
        let result = self
            .write_keys(store, &keys)
            .and_then(|()| write_state(store, &self.frontend, XenbusState::Connected))
            .and_then(|()| {
                wait_state(store, &self.backend, XenbusState::Connected, timeout, |s| {
                    s == XenbusState::Connected
                })
            });
        if let Err(e) = result {
            self.release(platform, &mut |_| {}, &mut |_| {});
            return Err(e);
        }
        for queue in &self.queues {
            platform.evtchn.unmask(queue.channels.tx());
            platform.evtchn.unmask(queue.channels.rx());
        }
        if let Some(control) = &self.control {
            platform.evtchn.unmask(&control.channel);
        }
        Ok(())
    }

    fn build<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
    ) -> Result<Built<R, C>, ConnectError>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        let count = self.features.queues(&self.settings);
        let split = self.features.split(&self.settings);
        let caps = self.features.tx_capabilities(&self.settings);
        let mut built = Built {
            queues: Vec::new(),
            control: None,
        };
        let result = (|| {
            for _ in 0..count {
                let (tx_mem, tx_grant) = self.ring(platform)?;
                let (rx_mem, rx_grant) = match self.ring(platform) {
                    Ok(r) => r,
                    Err(e) => {
                        self.drop_ring(platform, tx_mem, &tx_grant);
                        return Err(e);
                    }
                };
                let channels = match open_channels(platform.evtchn, self.backend_id, split) {
                    Ok(c) => c,
                    Err(e) => {
                        self.drop_ring(platform, tx_mem, &tx_grant);
                        self.drop_ring(platform, rx_mem, &rx_grant);
                        return Err(e);
                    }
                };
                let tx = TxQueue::new(tx_mem, self.backend_id, caps).map_err(ConnectError::Ring)?;
                let rx = RxQueue::new(rx_mem, self.backend_id).map_err(ConnectError::Ring)?;
                built.queues.push(Queue {
                    tx,
                    rx,
                    channels,
                    tx_grant,
                    rx_grant,
                });
            }
            if self.features.ctrl_ring && !self.settings.frontend_disable_toeplitz {
                let (mem, grant) = self.ring(platform)?;
                let channel = match platform.evtchn.open_unbound(self.backend_id) {
                    Ok(c) => c,
                    Err(e) => {
                        self.drop_ring(platform, mem, &grant);
                        return Err(ConnectError::Evtchn(e));
                    }
                };
                let queue = CtrlQueue::new(mem).map_err(ConnectError::Ring)?;
                built.control = Some(Control {
                    queue,
                    channel,
                    grant,
                });
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(built),
            Err(e) => {
                self.queues = built.queues;
                self.control = built.control;
                self.release(platform, &mut |_| {}, &mut |_| {});
                Err(e)
            }
        }
    }

    fn ring<S, E, G, P>(
        &self,
        platform: Platform<'_, S, E, G, P>,
    ) -> Result<(R, RingGrant<R>), ConnectError>
    where
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        let (memory, pfn) = platform
            .rings
            .alloc_ring()
            .map_err(|_| ConnectError::OutOfMemory)?;
        match platform.grants.grant(self.backend_id, pfn, false) {
            Ok(gref) => Ok((
                memory,
                RingGrant {
                    gref,
                    memory_pfn: pfn,
                    _marker: core::marker::PhantomData,
                },
            )),
            Err(e) => {
                platform.rings.free_ring(memory);
                Err(ConnectError::Grant(e))
            }
        }
    }

    /// Ends a ring's grant and frees its page, or quarantines the page when the
    /// backend still maps it.
    fn drop_ring<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
        memory: R,
        grant: &RingGrant<R>,
    ) where
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        if platform.grants.revoke(grant.gref) == Err(GrantError::InUse) {
            self.quarantined_rings.push(memory);
        } else {
            platform.rings.free_ring(memory);
        }
    }

    fn write_keys(&self, store: &impl Store, keys: &FrontendKeys) -> Result<(), ConnectError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = store
                .transaction_start()
                .map_err(|e| store_err(&self.frontend, e))?;
            let mut failed = None;
            for (key, value) in &keys.entries {
                let path = join(&self.frontend, key);
                if let Err(e) = store.write(txn, &path, value.as_bytes()) {
                    failed = Some(store_err(&path, e));
                    break;
                }
            }
            if let Some(e) = failed {
                let _ = store.transaction_end(txn, false);
                return Err(e);
            }
            match store.transaction_end(txn, true) {
                Ok(()) => return Ok(()),
                Err(StoreError::Xs(XsError::Eagain)) if attempts < TRANSACTION_RETRIES => {}
                Err(e) => return Err(store_err(&self.frontend, e)),
            }
        }
    }

    /// Tears the rings down: fails every packet in flight (`complete`), hands
    /// back every rx page (`recycle`), ends the ring grants (quarantining pages
    /// still mapped), closes the channels. The device can then connect anew.
    pub fn release<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
        complete: &mut impl FnMut(TxCompletion),
        recycle: &mut impl FnMut(Pfn),
    ) where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        for mut queue in core::mem::take(&mut self.queues) {
            queue
                .tx
                .fail_all(platform.grants, &mut self.stats, complete);
            queue.rx.release_all(platform.grants, &mut |event| {
                if let RxEvent::Recycle(pfn) = event {
                    recycle(pfn);
                }
            });
            match queue.channels {
                QueueChannels::Shared(c) => platform.evtchn.close(c),
                QueueChannels::Split { tx, rx } => {
                    platform.evtchn.close(tx);
                    platform.evtchn.close(rx);
                }
            }
            let Queue {
                mut tx,
                rx,
                tx_grant,
                rx_grant,
                ..
            } = queue;
            // fail_all gave every pool page back: the pool (still granted)
            // outlives its ring.
            if let Some(pool) = tx.detach_copy_pool() {
                self.copy_pools.push(pool);
            }
            self.drop_ring(platform, tx.into_memory(), &tx_grant);
            self.drop_ring(platform, rx.into_memory(), &rx_grant);
        }
        if let Some(control) = self.control.take() {
            platform.evtchn.close(control.channel);
            self.drop_ring(platform, control.queue.into_memory(), &control.grant);
        }
    }

    /// Gives queues without a coalescing pool the pools kept from queues torn
    /// down, in order.
    fn reattach_copy_pools(&mut self) {
        for queue in &mut self.queues {
            if queue.tx.copy_pool().is_some() {
                continue;
            }
            let Some(pool) = self.copy_pools.pop() else {
                break;
            };
            if let Err(pool) = queue.tx.attach_copy_pool(pool) {
                self.copy_pools.push(pool);
                break;
            }
        }
    }

    /// The coalescing pools not attached to any queue: those of a closed
    /// device, or more than the queues of the last connection. Their pages
    /// are still granted: end that with [`TxCopyPool::revoke_all`] before
    /// freeing them.
    pub fn take_copy_pools(&mut self) -> Vec<TxCopyPool> {
        core::mem::take(&mut self.copy_pools)
    }

    /// After a backend reset (its state left `Connected`): closes our side of
    /// the old session first (`Closing`, so a backend that came back and
    /// re-attached to the old rings lets go of them, or one that is closing
    /// finishes), tears everything down like [`Netfront::release`], says
    /// `Closed`, waits for the backend to be `Closed` or `InitWait`, then runs
    /// the handshake again. Packets in flight complete with an error (the
    /// network layer retransmits); rx pages come back through `recycle` to be
    /// posted again.
    pub fn reconnect<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
        timeout: Duration,
        complete: &mut impl FnMut(TxCompletion),
        recycle: &mut impl FnMut(Pfn),
    ) -> Result<(), ConnectError>
    where
        S: Store,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        let store = platform.store;
        write_state(store, &self.frontend, XenbusState::Closing)?;
        let closing = wait_state(store, &self.backend, XenbusState::Closing, timeout, |s| {
            !matches!(
                s,
                XenbusState::Connected | XenbusState::Reconfiguring | XenbusState::Reconfigured
            )
        });
        // Whatever the backend did, the old rings go now (grants it still
        // maps are quarantined).
        self.release(platform, complete, recycle);
        closing?;
        write_state(store, &self.frontend, XenbusState::Closed)?;
        wait_state(store, &self.backend, XenbusState::Closed, timeout, |s| {
            matches!(
                s,
                XenbusState::Closed | XenbusState::InitWait | XenbusState::Unknown
            )
        })?;
        self.stats.reconnects += 1;
        self.talk_to_backend(platform, timeout)
    }

    /// Closes the device: `Closing`, wait for the backend's `Closed` (bounded),
    /// release everything, `Closed`.
    pub fn close<S, E, G, P>(
        &mut self,
        platform: Platform<'_, S, E, G, P>,
        timeout: Duration,
        complete: &mut impl FnMut(TxCompletion),
        recycle: &mut impl FnMut(Pfn),
    ) -> Result<(), ConnectError>
    where
        S: Store,
        E: EventChannels<Channel = C>,
        G: GrantTable,
        P: RingPages<Ring = R>,
    {
        write_state(platform.store, &self.frontend, XenbusState::Closing)?;
        let waited = wait_state(
            platform.store,
            &self.backend,
            XenbusState::Closed,
            timeout,
            |s| {
                matches!(
                    s,
                    XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown
                )
            },
        );
        // Whatever the backend did, the rings go now (grants it still maps are
        // quarantined, never freed).
        self.release(platform, complete, recycle);
        write_state(platform.store, &self.frontend, XenbusState::Closed)?;
        waited.map(|_| ())
    }

    /// The backend's current state (to notice a reset).
    pub fn backend_state(&self, store: &impl Store) -> Result<XenbusState, StoreError> {
        read_state(store, &self.backend)
    }

    /// The frontend directory.
    pub fn frontend_path(&self) -> &str {
        &self.frontend
    }

    /// The backend directory.
    pub fn backend_path(&self) -> &str {
        &self.backend
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// What the backend offered.
    pub fn features(&self) -> BackendFeatures {
        self.features
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The MAC in use.
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// The MTU in use.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Ring pages kept because the backend never released them.
    pub fn quarantined_rings(&self) -> usize {
        self.quarantined_rings.len()
    }

    /// The frame of queue `index`'s tx and rx ring pages (diagnostics).
    pub fn ring_frames(&self, index: usize) -> Option<(Pfn, Pfn)> {
        self.queues
            .get(index)
            .map(|q| (q.tx_grant.memory_pfn, q.rx_grant.memory_pfn))
    }
}

fn open_channels<E: EventChannels>(
    evtchn: &E,
    backend: DomId,
    split: bool,
) -> Result<QueueChannels<E::Channel>, ConnectError> {
    let first = evtchn.open_unbound(backend).map_err(ConnectError::Evtchn)?;
    if !split {
        return Ok(QueueChannels::Shared(first));
    }
    match evtchn.open_unbound(backend) {
        Ok(rx) => Ok(QueueChannels::Split { tx: first, rx }),
        Err(e) => {
            evtchn.close(first);
            Err(ConnectError::Evtchn(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_queue_flat_layout() {
        let f = BackendFeatures {
            rx_copy: true,
            sg: true,
            dynamic_multicast_control: true,
            ..BackendFeatures::default()
        };
        let keys = frontend_keys(
            &f,
            &Settings::default(),
            &[(GrantRef(8), GrantRef(9))],
            &[(Port(5), None)],
            None,
        );
        assert_eq!(keys.get("tx-ring-ref"), Some("8"));
        assert_eq!(keys.get("rx-ring-ref"), Some("9"));
        assert_eq!(keys.get("event-channel"), Some("5"));
        assert_eq!(keys.get("multi-queue-num-queues"), None);
        assert_eq!(keys.get("request-rx-copy"), Some("1"));
        assert_eq!(keys.get("feature-rx-notify"), Some("1"));
        assert_eq!(keys.get("request-multicast-control"), Some("1"));
        assert_eq!(keys.get("ctrl-ring-ref"), None);
        assert_eq!(keys.get("feature-no-csum-offload"), Some("0"));
    }

    #[test]
    fn multi_queue_split_layout_with_control() {
        let f = BackendFeatures {
            rx_copy: true,
            ..BackendFeatures::default()
        };
        let s = Settings {
            receiver_disable_gso: true,
            transmitter_disable_multicast_control: true,
            ..Settings::default()
        };
        let keys = frontend_keys(
            &f,
            &s,
            &[(GrantRef(1), GrantRef(2)), (GrantRef(3), GrantRef(4))],
            &[(Port(10), Some(Port(11))), (Port(12), Some(Port(13)))],
            Some((GrantRef(20), Port(30))),
        );
        assert_eq!(keys.get("multi-queue-num-queues"), Some("2"));
        assert_eq!(keys.get("queue-1/tx-ring-ref"), Some("3"));
        assert_eq!(keys.get("queue-1/event-channel-rx"), Some("13"));
        assert_eq!(keys.get("queue-0/event-channel-tx"), Some("10"));
        assert_eq!(keys.get("tx-ring-ref"), None);
        assert_eq!(keys.get("feature-gso-tcpv4"), Some("0"));
        assert_eq!(keys.get("request-multicast-control"), None);
        assert_eq!(keys.get("ctrl-ring-ref"), Some("20"));
        assert_eq!(keys.get("event-channel-ctrl"), Some("30"));
    }

    use crate::fake::{FakeChannel, FakePlatform};
    use crate::rss::HashTypes;
    use crate::tx::{TxBuffer, TxOffload, TxPacket, TxStatus};
    use alloc::sync::Arc;
    use xen_abi::netif::{NETIF_RSP_OKAY, XenNetifCtrlResponse};
    use xen_abi::ring::HeapRingMemory;

    type Device = Netfront<Arc<HeapRingMemory>, FakeChannel>;

    const FULL: &[(&str, &str)] = &[
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-rx-copy", "1"),
        ("feature-ipv6-csum-offload", "1"),
        ("feature-rx-notify", "1"),
        ("feature-dynamic-multicast-control", "1"),
    ];

    fn connect(fake: &FakePlatform, settings: Settings) -> Result<Device, ConnectError> {
        Netfront::connect(
            fake.platform(),
            "device/vif/0",
            settings,
            Duration::from_secs(1),
        )
    }

    /// Sends one packet on queue `q` and receives one, through the fake netback.
    fn traffic(fake: &FakePlatform, dev: &mut Device, q: usize) {
        let pfn = fake.memory.alloc();
        fake.memory.write(pfn, 0, &[0xab; 64]);
        let buffers = [TxBuffer {
            pfn,
            offset: 0,
            len: 64,
        }];
        let queue = &mut dev.queues[q];
        queue
            .tx
            .submit(
                &*fake.grants,
                &TxPacket {
                    buffers: &buffers,
                    offload: TxOffload::default(),
                    tag: 5,
                },
                &mut dev.stats,
            )
            .unwrap();
        queue.tx.push();
        let mut netback = fake.netback.borrow_mut();
        let sent = netback.queues[q].take_tx(&fake.grants, &fake.memory, NETIF_RSP_OKAY, true);
        assert_eq!(sent[0].data, [0xab; 64]);
        let mut done = Vec::new();
        queue
            .tx
            .poll(&*fake.grants, 64, &mut dev.stats, &mut |c| done.push(c));
        assert_eq!(
            done,
            [TxCompletion {
                tag: 5,
                status: TxStatus::Okay
            }]
        );
        for _ in 0..4 {
            queue.rx.post(&*fake.grants, fake.memory.alloc()).unwrap();
        }
        queue.rx.push();
        assert!(netback.queues[q].deliver_rx(&fake.grants, &fake.memory, &[7; 100], 0, &[], 4096));
        let mut got = 0;
        queue.rx.poll(&*fake.grants, 64, &mut dev.stats, &mut |e| {
            if let RxEvent::Packet(p) = e {
                got += p.len;
            }
        });
        assert_eq!(got, 100);
    }

    #[test]
    fn connects_and_carries_traffic() {
        let fake = FakePlatform::new(FULL);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        assert_eq!(fake.store.get("device/vif/0/state").as_deref(), Some("4"));
        assert_eq!(dev.queues.len(), 1);
        assert!(dev.control.is_none());
        assert_eq!(dev.mac().to_string(), "00:16:3e:12:34:56");
        let caps = dev.queues[0].tx.capabilities();
        assert!(caps.gso_tcpv4 && caps.gso_tcpv6 && caps.csum_ipv6 && caps.multicast_control);
        let seen = fake.netback.borrow().keys_seen.clone();
        assert!(
            seen.iter()
                .any(|(k, v)| k == "request-multicast-control" && v == "1")
        );
        assert!(seen.iter().any(|(k, _)| k == "event-channel"));
        traffic(&fake, &mut dev, 0);
        dev.close(
            fake.platform(),
            Duration::from_secs(1),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(fake.rings.live(), 0);
        assert!(fake.evtchn.open.borrow().is_empty());
    }

    #[test]
    fn multi_queue_split_channels_and_control_ring() {
        let mut features = FULL.to_vec();
        features.extend([
            ("multi-queue-max-queues", "4"),
            ("feature-split-event-channels", "1"),
            ("feature-ctrl-ring", "1"),
        ]);
        let fake = FakePlatform::new(&features);
        fake.store.conflicts.set(3);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        assert_eq!(
            fake.store.conflicted.get(),
            3,
            "EAGAIN commits were retried"
        );
        assert_eq!(dev.queues.len(), 4);
        assert!(matches!(
            dev.queues[3].channels,
            QueueChannels::Split { .. }
        ));
        assert_eq!(fake.netback.borrow().queues.len(), 4);
        for q in 0..4 {
            traffic(&fake, &mut dev, q);
        }
        // RSS over the control ring, answered by the fake backend.
        let control = dev.control.as_mut().unwrap();
        let requests = crate::ctrl::rss_sequence(HashTypes::ALL, 128, GrantRef(1), GrantRef(2));
        for request in requests {
            control.queue.submit(request).unwrap();
            let mut netback = fake.netback.borrow_mut();
            let back = netback.control.as_mut().unwrap();
            let wire = back.requests().unwrap().next().unwrap();
            back.write_response(&XenNetifCtrlResponse {
                id: wire.id,
                r#type: wire.r#type,
                status: 0,
                data: 0,
            })
            .unwrap();
            back.push_responses();
            assert_eq!(
                control.queue.poll(),
                Some(Ok(crate::ctrl::CtrlStatus::Success(0)))
            );
        }
        let settings = Settings {
            frontend_max_queues: 2,
            frontend_disable_toeplitz: true,
            ..Settings::default()
        };
        let fake = FakePlatform::new(&features);
        let dev = connect(&fake, settings).unwrap();
        assert_eq!((dev.queues.len(), dev.control.is_some()), (2, false));
    }

    #[test]
    fn refusal_leaves_nothing_behind() {
        let fake = FakePlatform::new(&[("feature-sg", "1")]);
        assert_eq!(
            connect(&fake, Settings::default()).unwrap_err(),
            ConnectError::NoRxCopy
        );
        let fake = FakePlatform::new(FULL);
        *fake.grants.limit.borrow_mut() = Some(1);
        assert_eq!(
            connect(&fake, Settings::default()).unwrap_err(),
            ConnectError::Grant(GrantError::Exhausted)
        );
        assert_eq!((fake.rings.live(), fake.grants.active()), (0, 0));
        assert!(fake.evtchn.open.borrow().is_empty());
        let fake = FakePlatform::new(FULL);
        fake.store.set("device/vif/0/mac", "zz");
        assert!(matches!(
            connect(&fake, Settings::default()),
            Err(ConnectError::BadBackend(_))
        ));
        let mac = MacAddress([2, 0, 0, 0, 0, 9]);
        let dev = connect(
            &fake,
            Settings {
                mac_address: Some(mac),
                ..Settings::default()
            },
        )
        .unwrap();
        assert_eq!(dev.mac(), mac);
    }

    #[test]
    fn reconnects_after_a_backend_reset_under_traffic() {
        let fake = FakePlatform::new(FULL);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        traffic(&fake, &mut dev, 0);
        // Traffic in flight when the backend goes away.
        let pfn = fake.memory.alloc();
        let buffers = [TxBuffer {
            pfn,
            offset: 0,
            len: 60,
        }];
        dev.queues[0]
            .tx
            .submit(
                &*fake.grants,
                &TxPacket {
                    buffers: &buffers,
                    offload: TxOffload::default(),
                    tag: 9,
                },
                &mut dev.stats,
            )
            .unwrap();
        dev.queues[0].tx.push();
        let posted = dev.queues[0].rx.posted();
        fake.netback.borrow_mut().reset(&fake.store);
        assert_eq!(dev.backend_state(&*fake.store), Ok(XenbusState::Closing));
        let (mut failed, mut recycled) = (Vec::new(), Vec::new());
        let old_rings = fake.rings.freed.get();
        dev.reconnect(
            fake.platform(),
            Duration::from_secs(1),
            &mut |c| failed.push(c),
            &mut |p| recycled.push(p),
        )
        .unwrap();
        assert_eq!(
            failed,
            [TxCompletion {
                tag: 9,
                status: TxStatus::Error
            }]
        );
        assert_eq!(recycled.len(), posted);
        assert_eq!(
            fake.rings.freed.get(),
            old_rings + 2,
            "old rings freed once their grants ended"
        );
        assert_eq!(dev.stats.reconnects, 1);
        assert_eq!(fake.store.get("device/vif/0/state").as_deref(), Some("4"));
        traffic(&fake, &mut dev, 0);
    }

    #[test]
    fn copy_pools_survive_a_reconnect_and_come_back_on_close() {
        let fake = FakePlatform::new(FULL);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        let pfns: Vec<Pfn> = (0..4).map(|_| fake.memory.alloc()).collect();
        let pool = TxCopyPool::new(&*fake.grants, DomId(0), &pfns).unwrap();
        assert!(dev.queues[0].tx.attach_copy_pool(pool).unwrap().is_none());
        fake.netback.borrow_mut().reset(&fake.store);
        dev.reconnect(
            fake.platform(),
            Duration::from_secs(1),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            dev.queues[0].tx.copy_pool().map(TxCopyPool::free_pages),
            Some(4),
            "the pool follows the new queue"
        );
        assert!(dev.take_copy_pools().is_empty());
        traffic(&fake, &mut dev, 0);
        dev.close(
            fake.platform(),
            Duration::from_secs(1),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        let mut pools = dev.take_copy_pools();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].granted(), 4, "still granted until revoked");
        assert_eq!(pools[0].revoke_all(&*fake.grants), pfns);
        assert_eq!(pools[0].granted(), 0);
    }

    #[test]
    fn reconnects_when_the_backend_comes_back_on_its_own() {
        let fake = FakePlatform::new(FULL);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        // netback unbound and bound again: a fresh InitWait while we still
        // say Connected.
        fake.netback.borrow_mut().queues.clear();
        fake.store.set("/local/domain/0/backend/vif/1/0/state", "2");
        dev.reconnect(
            fake.platform(),
            Duration::from_secs(1),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(dev.stats.reconnects, 1);
        traffic(&fake, &mut dev, 0);
    }

    #[test]
    fn a_ring_still_mapped_is_never_freed() {
        let fake = FakePlatform::new(FULL);
        let mut dev = connect(&fake, Settings::default()).unwrap();
        let gref = dev.queues[0].tx_grant.gref;
        fake.grants.keep_mapped(gref, true);
        dev.close(
            fake.platform(),
            Duration::from_secs(1),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(dev.quarantined_rings(), 1);
        assert_eq!(fake.rings.live(), 1);
    }
}
