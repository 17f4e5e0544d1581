//! The xenstore client: [`Client`] implements [`Store`] over any [`Transport`],
//! shared by reference between threads (one lock around the engine and the
//! transport), and usable from a single-threaded poll loop.
//!
//! # What a platform provides
//! * a [`Transport`]: [`crate::transport::StreamTransport`] over a
//!   [`crate::transport::ByteStream`], or [`crate::ring::RingTransport`] over a
//!   [`crate::ring::RingPage`] and a [`crate::ring::Notify`];
//! * a [`Wait`] + [`Clock`] ("platform"): how to sleep until the transport may
//!   have progressed, and a monotonic clock to bound every wait.
//!
//! The lock is a spin lock held only while bytes are copied and replies
//! dispatched, never while waiting, so a thread blocked in [`Wait::wait`] holds
//! nothing.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use xen_abi::xs_wire::XsError;
use xenbus_interface::api::{DomId, Permission, Store, StoreError, Txn, WatchId};

use crate::engine::{Engine, EngineConfig, EngineStats, Ticket};
use crate::transport::Transport;
use crate::wire::{self, Frame, Request, WireError};

/// A monotonic clock. Windows: `KeQueryInterruptTime` (100 ns units) as a
/// `Duration`; the rig: `std::time::Instant` against a fixed origin.
pub trait Clock {
    /// Time since an arbitrary fixed origin; never goes backwards.
    fn now(&self) -> Duration;
}

/// Sleeping until the transport may have something new.
///
/// Spurious and early returns are fine (the client re-checks and waits again
/// until its deadline); a wait must never exceed `timeout` by much.
///
/// * Windows (PASSIVE_LEVEL): the xenstore event-channel DPC sets a KEVENT;
///   `wait` is `KeWaitForSingleObject` on it with the relative timeout.
/// * The rig (`/dev/xen/xenbus` opened `O_NONBLOCK`): `poll(2)` for `POLLIN` on
///   the descriptor with the timeout in milliseconds (rounded up).
/// * A single-threaded guest loop: poll the event channel's pending bit, or
///   simply return (the client then polls until its deadline).
pub trait Wait {
    /// Blocks until the transport may have progressed, or `timeout` passes.
    fn wait(&self, timeout: Duration);
    /// Called after this thread dispatched replies while others were waiting:
    /// wake them (Windows: `KeSetEvent` on the same KEVENT). The default does
    /// nothing; waiters then notice within [`ClientConfig::wait_slice`].
    fn wake(&self) {}
}

/// Tunables of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Engine limits (requests in flight, watch queue length, watches).
    pub engine: EngineConfig,
    /// How long a [`Store`] operation waits for its reply.
    pub request_timeout: Duration,
    /// The longest single [`Wait::wait`]: bounds the delay when another thread
    /// consumed our wake-up.
    pub wait_slice: Duration,
    /// Attempts of [`Client::transaction`] before giving up with `EAGAIN`.
    pub transaction_attempts: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            request_timeout: Duration::from_secs(30),
            wait_slice: Duration::from_millis(10),
            transaction_attempts: 16,
        }
    }
}

struct State<T> {
    engine: Engine,
    transport: T,
    waiters: usize,
}

/// The xenstore client.
pub struct Client<T, P> {
    state: spin::Mutex<State<T>>,
    platform: P,
    config: ClientConfig,
}

impl<T, P> core::fmt::Debug for Client<T, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Transport, P: Wait + Clock> Client<T, P> {
    /// A client over `transport`, with default limits.
    pub fn new(transport: T, platform: P) -> Self {
        Self::with_config(transport, platform, ClientConfig::default())
    }

    /// A client with explicit limits.
    pub fn with_config(transport: T, platform: P, config: ClientConfig) -> Self {
        let engine = Engine::new(config.engine, transport.max_payload());
        Self {
            state: spin::Mutex::new(State {
                engine,
                transport,
                waiters: 0,
            }),
            platform,
            config,
        }
    }

    /// The platform (wait + clock).
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Runs `f` on the transport, under the client's lock.
    pub fn with_transport<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.state.lock().transport)
    }

    /// Counters of the connection.
    pub fn stats(&self) -> EngineStats {
        self.state.lock().engine.stats()
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<StoreError> {
        self.state.lock().engine.broken().cloned()
    }

    /// The largest request payload the transport carries.
    pub fn max_payload(&self) -> usize {
        self.state.lock().engine.max_payload()
    }

    /// Moves bytes once without waiting (for a poll loop or an event-channel
    /// callback at PASSIVE_LEVEL). Returns how many messages were dispatched.
    pub fn poll(&self) -> Result<usize, StoreError> {
        let (result, wake) = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let result = state.engine.pump(&mut state.transport);
            let wake = state.waiters > 0 && matches!(result, Ok(n) if n > 0);
            (result, wake)
        };
        if wake {
            self.platform.wake();
        }
        result
    }

    /// Sends `request` without waiting for its reply (pipelining: many requests
    /// may be in flight). Collect the reply with [`Client::wait_reply`].
    pub fn submit(&self, request: &Request) -> Result<Ticket, StoreError> {
        let ticket = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let ticket = state.engine.submit(request)?;
            // A transport failure is recorded in the engine; the ticket then
            // completes with it.
            let _ = state.engine.pump(&mut state.transport);
            ticket
        };
        Ok(ticket)
    }

    /// Queues every request of `requests`, then moves bytes once: on a ring, the
    /// whole batch costs one event-channel kick. Stops at the first request
    /// refused (its error is returned; the ones before it are in flight and
    /// their tickets are lost, so callers size batches within the limits).
    pub fn submit_batch(&self, requests: &[Request]) -> Result<Vec<Ticket>, StoreError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut tickets = Vec::with_capacity(requests.len());
        let mut result = Ok(());
        for request in requests {
            match state.engine.submit(request) {
                Ok(t) => tickets.push(t),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let _ = state.engine.pump(&mut state.transport);
        result.map(|()| tickets)
    }

    /// Waits up to `timeout` for the reply to `ticket`: the reply frame, the
    /// xenstore error, [`StoreError::Timeout`] (the request is abandoned), or the
    /// error that broke the connection.
    pub fn wait_reply(&self, ticket: Ticket, timeout: Duration) -> Result<Frame, StoreError> {
        let deadline = self.platform.now().saturating_add(timeout);
        loop {
            let (reply, wake) = {
                let mut state = self.state.lock();
                let state = &mut *state;
                let mut reply = state.engine.take(ticket);
                let mut dispatched = 0;
                if reply.is_none() {
                    dispatched = state.engine.pump(&mut state.transport).unwrap_or(0);
                    reply = state.engine.take(ticket);
                }
                (reply, dispatched > 0 && state.waiters > 0)
            };
            if wake {
                self.platform.wake();
            }
            if let Some(reply) = reply {
                return reply;
            }
            let now = self.platform.now();
            if now >= deadline {
                self.state.lock().engine.abandon(ticket);
                return Err(StoreError::Timeout);
            }
            self.sleep(deadline.saturating_sub(now));
        }
    }

    fn sleep(&self, remaining: Duration) {
        self.state.lock().waiters += 1;
        self.platform.wait(remaining.min(self.config.wait_slice));
        let mut state = self.state.lock();
        state.waiters = state.waiters.saturating_sub(1);
    }

    /// Sends `request` and waits (up to the configured request timeout) for its
    /// reply.
    pub fn call(&self, request: &Request) -> Result<Frame, StoreError> {
        let ticket = self.submit(request)?;
        self.wait_reply(ticket, self.config.request_timeout)
    }

    fn call_ok(&self, request: &Request) -> Result<(), StoreError> {
        let frame = self.call(request)?;
        wire::parse_ok(&frame.payload).map_err(WireError::into_protocol_error)
    }

    /// Reads a node's permissions (`XS_GET_PERMS`).
    pub fn get_permissions(&self, txn: Txn, path: &str) -> Result<Vec<Permission>, StoreError> {
        let frame =
            self.call(&Request::get_perms(txn.0, path).map_err(WireError::into_store_error)?)?;
        wire::parse_permissions(&frame.payload).map_err(WireError::into_protocol_error)
    }

    /// Drops every watch and transaction xenstored holds for this connection
    /// (`XS_RESET_WATCHES`): what a guest sends when it attaches to a ring a
    /// previous kernel used (after kexec or a crash dump), when
    /// `control/platform-feature-xs_reset_watches` says the daemon supports it.
    /// Watches registered through this client stay registered locally; call
    /// it before adding any.
    pub fn reset_watches(&self) -> Result<(), StoreError> {
        self.call_ok(&Request::reset_watches())
    }

    /// The home path of a domain (`XS_GET_DOMAIN_PATH`).
    pub fn get_domain_path(&self, domid: DomId) -> Result<String, StoreError> {
        let frame = self.call(&Request::get_domain_path(domid))?;
        let fields = wire::split_fields(&frame.payload).map_err(WireError::into_protocol_error)?;
        match fields.as_slice() {
            [path] => core::str::from_utf8(path)
                .map(String::from)
                .map_err(|_| StoreError::Protocol("domain path is not UTF-8")),
            _ => Err(StoreError::Protocol("malformed domain path reply")),
        }
    }

    /// Lists a directory with `XS_DIRECTORY_PART` (what [`Store::directory`]
    /// falls back to when a listing exceeds one payload). Restarts when the node
    /// changes between chunks; gives up with `EAGAIN` after a few restarts.
    pub fn directory_by_parts(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        const RESTARTS: usize = 8;
        // Every chunk but the last carries at least one name, and a directory
        // list can hold at most this many names of one byte.
        const MAX_CHUNKS: usize = 65_536;
        'restart: for _ in 0..RESTARTS {
            let mut children = Vec::new();
            let mut offset = 0usize;
            let mut generation: Option<String> = None;
            for _ in 0..MAX_CHUNKS {
                let request = Request::directory_part(txn.0, path, offset)
                    .map_err(WireError::into_protocol_error)?;
                let frame = self.call(&request)?;
                let part = wire::parse_directory_part(&frame.payload)
                    .map_err(WireError::into_protocol_error)?;
                match &generation {
                    Some(g) if *g != part.generation => continue 'restart,
                    Some(_) => {}
                    None => generation = Some(part.generation.clone()),
                }
                children.extend(part.children);
                if part.complete {
                    return Ok(children);
                }
                if part.consumed == 0 {
                    return Err(StoreError::Protocol("directory part made no progress"));
                }
                offset = offset
                    .checked_add(part.consumed)
                    .ok_or(StoreError::Protocol("directory offset overflow"))?;
            }
            return Err(StoreError::Protocol("directory listing does not end"));
        }
        Err(StoreError::Xs(XsError::Eagain))
    }

    /// The oldest queued change of a watch (the path that changed), after
    /// polling once; `Ok(None)` if none is queued.
    pub fn watch_next_event(&self, watch: WatchId) -> Result<Option<String>, StoreError> {
        let _ = self.poll();
        self.state.lock().engine.watch_next_event(watch.0)
    }

    /// Runs `body` in a transaction, committing it; redoes the whole body
    /// when xenstore reports a conflict (`EAGAIN`), up to
    /// [`ClientConfig::transaction_attempts`] times.
    pub fn transaction<R>(
        &self,
        body: impl FnMut(Txn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        with_transaction(self, self.config.transaction_attempts, body)
    }

    /// Starts over on a new transport (after the platform reconnected, or
    /// resumed from suspend): requests in flight fail with
    /// [`StoreError::Disconnected`], and every watch is registered again.
    pub fn reconnect(&self, transport: T) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        state.transport = transport;
        let max = state.transport.max_payload();
        state.engine.reset(max);
        state.engine.pump(&mut state.transport).map(|_| ())
    }
}

impl<T: Transport, P: Wait + Clock> Store for Client<T, P> {
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        let frame = self.call(&Request::read(txn.0, path).map_err(WireError::into_store_error)?)?;
        Ok(frame.payload)
    }

    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.call_ok(&Request::write(txn.0, path, value).map_err(WireError::into_store_error)?)
    }

    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        self.call_ok(&Request::mkdir(txn.0, path).map_err(WireError::into_store_error)?)
    }

    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        self.call_ok(&Request::rm(txn.0, path).map_err(WireError::into_store_error)?)
    }

    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        let request = Request::directory(txn.0, path).map_err(WireError::into_store_error)?;
        match self.call(&request) {
            Ok(frame) => {
                wire::parse_directory(&frame.payload).map_err(WireError::into_protocol_error)
            }
            Err(StoreError::Xs(XsError::E2big)) => self.directory_by_parts(txn, path),
            Err(e) => Err(e),
        }
    }

    fn set_permissions(
        &self,
        txn: Txn,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), StoreError> {
        self.call_ok(&Request::set_perms(txn.0, path, perms).map_err(WireError::into_store_error)?)
    }

    fn transaction_start(&self) -> Result<Txn, StoreError> {
        let frame = self.call(&Request::transaction_start())?;
        wire::parse_transaction_id(&frame.payload)
            .map(Txn)
            .map_err(WireError::into_protocol_error)
    }

    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError> {
        if txn == Txn::NONE {
            return Err(StoreError::Xs(XsError::Einval));
        }
        self.call_ok(&Request::transaction_end(txn.0, commit))
    }

    fn watch_add(&self, path: &str) -> Result<WatchId, StoreError> {
        let (id, request) = self.state.lock().engine.watch_register(path)?;
        match self.call_ok(&request) {
            Ok(()) => Ok(WatchId(id)),
            Err(e) => {
                self.state.lock().engine.watch_unregister(id);
                Err(e)
            }
        }
    }

    fn watch_remove(&self, watch: WatchId) -> Result<(), StoreError> {
        let request = self
            .state
            .lock()
            .engine
            .watch_unregister(watch.0)
            .ok_or(StoreError::Xs(XsError::Enoent))?;
        match self.call_ok(&request) {
            // xenstored no longer knew it (lost in a reconnect): gone either way.
            Ok(()) | Err(StoreError::Xs(XsError::Enoent)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn watch_wait(&self, watch: WatchId, timeout: Duration) -> Result<bool, StoreError> {
        let deadline = self.platform.now().saturating_add(timeout);
        loop {
            let (fired, wake) = {
                let mut state = self.state.lock();
                let state = &mut *state;
                let pumped = state.engine.pump(&mut state.transport);
                let fired = state.engine.watch_take_fired(watch.0);
                let wake = state.waiters > 0 && matches!(pumped, Ok(n) if n > 0);
                match (fired, pumped) {
                    (Ok(true), _) => (Ok(true), wake),
                    (Ok(false), Err(e)) | (Err(e), _) => (Err(e), wake),
                    (Ok(false), Ok(_)) => (Ok(false), wake),
                }
            };
            if wake {
                self.platform.wake();
            }
            if fired? {
                return Ok(true);
            }
            let now = self.platform.now();
            if now >= deadline {
                return Ok(false);
            }
            self.sleep(deadline.saturating_sub(now));
        }
    }
}

/// Runs `body` in a transaction of `store` and commits it, redoing everything
/// when xenstore reports a conflict (`EAGAIN` from the commit, or from an
/// operation inside), at most `attempts` times (at least once). A failing body
/// aborts its transaction and returns the body's error.
pub fn with_transaction<S, R, F>(store: &S, attempts: u32, mut body: F) -> Result<R, StoreError>
where
    S: Store + ?Sized,
    F: FnMut(Txn) -> Result<R, StoreError>,
{
    let eagain = StoreError::Xs(XsError::Eagain);
    for _ in 0..attempts.max(1) {
        let txn = store.transaction_start()?;
        match body(txn) {
            Ok(value) => match store.transaction_end(txn, true) {
                Ok(()) => return Ok(value),
                Err(e) if e == eagain => {}
                Err(e) => return Err(e),
            },
            Err(e) => {
                // The abort's own result does not matter: the body failed.
                let _ = store.transaction_end(txn, false);
                if e != eagain {
                    return Err(e);
                }
            }
        }
    }
    Err(eagain)
}
