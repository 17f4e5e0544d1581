//! The connection engine, without I/O of its own: requests in flight matched to
//! replies by `req_id`, watch events demultiplexed to per-watch queues as they
//! arrive between replies, and the connection's health.
//!
//! Single-threaded and non-blocking; [`crate::client::Client`] puts it behind a lock
//! and adds waiting. [`Engine::pump`] moves bytes through a [`Transport`] and is
//! bounded: it never loops on the peer's say-so.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use xen_abi::xs_wire::{XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE};
use xenbus_interface::api::StoreError;

use crate::transport::Transport;
use crate::wire::{self, Frame, FrameDecoder, MsgType, Request};

/// Limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Requests that may await a reply at once (including ones whose caller gave
    /// up); more is [`StoreError::Busy`].
    pub max_in_flight: usize,
    /// Watch events kept per watch; older ones are dropped beyond this (the
    /// watch is still reported as fired).
    pub watch_queue_len: usize,
    /// Watches registered at once; more is [`StoreError::Busy`].
    pub max_watches: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            watch_queue_len: 64,
            max_watches: 1024,
        }
    }
}

/// A request in flight: the key to its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u32);

impl Ticket {
    /// The `req_id` the request went out with.
    pub fn req_id(self) -> u32 {
        self.0
    }
}

#[derive(Debug)]
enum Slot {
    /// Sent (or queued), reply not yet here; the reply must have this type.
    Waiting(MsgType),
    /// The reply (or the error that ended the wait), not yet collected.
    Done(Result<Frame, StoreError>),
    /// The caller gave up; the reply is dropped when it comes.
    Abandoned(MsgType),
    /// Re-registration of a watch after a reconnect.
    Rewatch(u32),
}

#[derive(Debug)]
struct WatchState {
    path: String,
    token: String,
    events: VecDeque<String>,
    fired: bool,
    dropped: u64,
    error: Option<StoreError>,
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Replies matched to a request.
    pub replies: u64,
    /// Watch events queued.
    pub events: u64,
    /// Watch events whose token named no current watch (late events after an
    /// unwatch): ignored.
    pub stray_events: u64,
    /// Watch events dropped because a queue was full.
    pub dropped_events: u64,
}

/// The connection engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    max_payload: usize,
    next_req_id: u32,
    slots: BTreeMap<u32, Slot>,
    outbox: VecDeque<Vec<u8>>,
    /// Bytes of `outbox.front()` already taken by the transport.
    out_sent: usize,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    watches: BTreeMap<u32, WatchState>,
    next_watch: u32,
    broken: Option<StoreError>,
    stats: EngineStats,
}

/// Largest number of `recv` calls in one receive round of [`Engine::pump`].
const MAX_READS_PER_PUMP: usize = 64;
/// Send-then-receive rounds in one [`Engine::pump`].
const MAX_ROUNDS_PER_PUMP: usize = 64;
/// Prefix of our watch tokens; the rest is the watch number in decimal.
const TOKEN_PREFIX: &str = "xenbus-core/";

impl Engine {
    /// An idle connection whose transport carries payloads up to `max_payload`.
    pub fn new(config: EngineConfig, max_payload: usize) -> Self {
        Self {
            config,
            max_payload: max_payload.min(XENSTORE_PAYLOAD_MAX),
            next_req_id: 1,
            slots: BTreeMap::new(),
            outbox: VecDeque::new(),
            out_sent: 0,
            decoder: FrameDecoder::default(),
            scratch: vec![0; XENSTORE_RING_SIZE],
            watches: BTreeMap::new(),
            next_watch: 1,
            broken: None,
            stats: EngineStats::default(),
        }
    }

    /// The largest request payload accepted.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<&StoreError> {
        self.broken.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Requests awaiting a reply (including abandoned ones).
    pub fn in_flight(&self) -> usize {
        self.slots
            .values()
            .filter(|s| !matches!(s, Slot::Done(_)))
            .count()
    }

    /// True when bytes are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Queues `request`; the reply is collected with [`Engine::take`].
    pub fn submit(&mut self, request: &Request) -> Result<Ticket, StoreError> {
        self.enqueue(request, None)
    }

    fn enqueue(&mut self, request: &Request, rewatch: Option<u32>) -> Result<Ticket, StoreError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        request
            .check_len(self.max_payload)
            .map_err(wire::WireError::into_store_error)?;
        if self.slots.len() >= self.config.max_in_flight {
            return Err(StoreError::Busy);
        }
        // At most `max_in_flight` ids are taken, so this finds one quickly.
        let mut req_id = self.next_req_id;
        while self.slots.contains_key(&req_id) {
            req_id = req_id.wrapping_add(1);
        }
        self.next_req_id = req_id.wrapping_add(1);
        let bytes = request
            .encode(req_id, self.max_payload)
            .map_err(wire::WireError::into_store_error)?;
        let slot = match rewatch {
            Some(watch) => Slot::Rewatch(watch),
            None => Slot::Waiting(request.kind()),
        };
        self.slots.insert(req_id, slot);
        self.outbox.push_back(bytes);
        Ok(Ticket(req_id))
    }

    /// The reply to `ticket` if it is here: `Ok(frame)` for a reply of the
    /// request's type, `Err(StoreError::Xs(..))` for an `XS_ERROR` reply, or the
    /// error that broke the connection. `None` while still waiting. A ticket
    /// this connection does not know (already collected, or issued before a
    /// [`Engine::reset`]) is [`StoreError::Disconnected`].
    pub fn take(&mut self, ticket: Ticket) -> Option<Result<Frame, StoreError>> {
        match self.slots.get(&ticket.0) {
            Some(Slot::Done(_)) => match self.slots.remove(&ticket.0) {
                Some(Slot::Done(result)) => Some(result),
                _ => None,
            },
            Some(_) => None,
            None => Some(Err(StoreError::Disconnected)),
        }
    }

    /// The caller no longer wants the reply to `ticket` (it timed out). The
    /// `req_id` stays reserved until the reply comes, so a late reply is not
    /// mistaken for a stray one.
    pub fn abandon(&mut self, ticket: Ticket) {
        match self.slots.get(&ticket.0) {
            Some(Slot::Done(_)) => {
                self.slots.remove(&ticket.0);
            }
            Some(Slot::Waiting(kind)) => {
                let kind = *kind;
                self.slots.insert(ticket.0, Slot::Abandoned(kind));
            }
            _ => {}
        }
    }

    /// Sends what the transport takes, receives and dispatches what it has,
    /// and repeats while a receive may have made room for more output (at most
    /// `MAX_ROUNDS_PER_PUMP` rounds of at most `MAX_READS_PER_PUMP` reads), then
    /// flushes once. Returns how many messages were dispatched. A transport or
    /// protocol failure breaks the connection: every waiting request completes
    /// with that error.
    pub fn pump<T: Transport + ?Sized>(&mut self, transport: &mut T) -> Result<usize, StoreError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        match self.pump_inner(transport) {
            Ok(n) => Ok(n),
            Err(err) => {
                self.fail(&err);
                Err(err)
            }
        }
    }

    fn pump_inner<T: Transport + ?Sized>(
        &mut self,
        transport: &mut T,
    ) -> Result<usize, StoreError> {
        let mut dispatched = 0usize;
        // A reply can make room for the next request (a full ring, a transport
        // that paces one message at a time): send again after receiving, a
        // bounded number of rounds.
        for _ in 0..MAX_ROUNDS_PER_PUMP {
            self.send_pending(transport)?;
            let (bytes, frames) = self.receive_available(transport)?;
            dispatched = dispatched.saturating_add(frames);
            if bytes == 0 || self.outbox.is_empty() {
                break;
            }
        }
        transport
            .flush()
            .map_err(crate::transport::TransportError::into_store_error)?;
        Ok(dispatched)
    }

    fn send_pending<T: Transport + ?Sized>(&mut self, transport: &mut T) -> Result<(), StoreError> {
        while let Some(front) = self.outbox.front() {
            let rest = front.get(self.out_sent..).unwrap_or(&[]);
            if rest.is_empty() {
                self.outbox.pop_front();
                self.out_sent = 0;
                continue;
            }
            let n = transport
                .send(rest)
                .map_err(crate::transport::TransportError::into_store_error)?;
            if n == 0 {
                break;
            }
            self.out_sent = self.out_sent.saturating_add(n);
        }
        Ok(())
    }

    /// Reads until the transport has nothing (at most `MAX_READS_PER_PUMP`
    /// reads); returns the bytes read and the messages dispatched.
    fn receive_available<T: Transport + ?Sized>(
        &mut self,
        transport: &mut T,
    ) -> Result<(usize, usize), StoreError> {
        let mut bytes = 0usize;
        let mut dispatched = 0usize;
        let mut scratch = core::mem::take(&mut self.scratch);
        let mut result = Ok(());
        for _ in 0..MAX_READS_PER_PUMP {
            match transport.recv(&mut scratch) {
                Ok(0) => break,
                Ok(n) => {
                    bytes = bytes.saturating_add(n);
                    match self.receive(scratch.get(..n).unwrap_or(&[])) {
                        Ok(k) => dispatched = dispatched.saturating_add(k),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(e.into_store_error());
                    break;
                }
            }
        }
        self.scratch = scratch;
        result.map(|()| (bytes, dispatched))
    }

    /// Feeds received bytes: frames them and dispatches every complete message.
    /// Returns how many were dispatched. An error breaks the connection.
    pub fn receive(&mut self, mut bytes: &[u8]) -> Result<usize, StoreError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        let mut dispatched = 0usize;
        while !bytes.is_empty() {
            let frame = match self.decoder.decode(&mut bytes) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let err = e.into_protocol_error();
                    self.fail(&err);
                    return Err(err);
                }
            };
            if let Err(err) = self.dispatch(frame) {
                self.fail(&err);
                return Err(err);
            }
            dispatched = dispatched.saturating_add(1);
        }
        Ok(dispatched)
    }

    fn dispatch(&mut self, frame: Frame) -> Result<(), StoreError> {
        if frame.kind == MsgType::WatchEvent {
            // Linux's /dev/xen/xenbus leaves req_id and tx_id of an event
            // uninitialised: only the payload means anything.
            let event = wire::parse_watch_event(&frame.payload)
                .map_err(wire::WireError::into_protocol_error)?;
            self.queue_event(event);
            return Ok(());
        }
        let req_id = frame.req_id;
        let expected = match self.slots.get(&req_id) {
            None => return Err(StoreError::Protocol("reply with an unknown req_id")),
            Some(Slot::Waiting(kind) | Slot::Abandoned(kind)) => *kind,
            Some(Slot::Rewatch(_)) => MsgType::Watch,
            Some(Slot::Done(_)) => {
                return Err(StoreError::Protocol("second reply to one req_id"));
            }
        };
        let result = if frame.kind == MsgType::Error {
            Err(StoreError::Xs(
                wire::parse_error(&frame.payload).map_err(wire::WireError::into_protocol_error)?,
            ))
        } else if frame.kind == expected {
            Ok(frame)
        } else {
            return Err(StoreError::Protocol(
                "reply type does not match the request",
            ));
        };
        // Checked above: the slot exists.
        let Some(slot) = self.slots.remove(&req_id) else {
            return Err(StoreError::Protocol("reply with an unknown req_id"));
        };
        self.stats.replies = self.stats.replies.saturating_add(1);
        match slot {
            Slot::Waiting(_) => {
                self.slots.insert(req_id, Slot::Done(result));
            }
            Slot::Rewatch(watch) => {
                if let Some(state) = self.watches.get_mut(&watch) {
                    state.error = result
                        .and_then(|f| {
                            wire::parse_ok(&f.payload).map_err(wire::WireError::into_protocol_error)
                        })
                        .err();
                }
            }
            Slot::Abandoned(_) | Slot::Done(_) => {}
        }
        Ok(())
    }

    fn queue_event(&mut self, event: wire::WatchEvent) {
        let id = event
            .token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| wire::parse_decimal_u32(n.as_bytes()).ok());
        let state = id.and_then(|id| self.watches.get_mut(&id));
        let Some(state) = state.filter(|s| s.token == event.token) else {
            self.stats.stray_events = self.stats.stray_events.saturating_add(1);
            return;
        };
        if state.events.len() >= self.config.watch_queue_len {
            state.events.pop_front();
            state.dropped = state.dropped.saturating_add(1);
            self.stats.dropped_events = self.stats.dropped_events.saturating_add(1);
        }
        if self.config.watch_queue_len > 0 {
            state.events.push_back(event.path);
        }
        state.fired = true;
        self.stats.events = self.stats.events.saturating_add(1);
    }

    /// Marks the connection broken: waiting requests complete with `err`,
    /// abandoned ones and unsent bytes are dropped.
    pub fn fail(&mut self, err: &StoreError) {
        self.broken = Some(err.clone());
        self.outbox.clear();
        self.out_sent = 0;
        let ids: Vec<u32> = self.slots.keys().copied().collect();
        for id in ids {
            match self.slots.get(&id) {
                Some(Slot::Waiting(_)) => {
                    self.slots.insert(id, Slot::Done(Err(err.clone())));
                }
                Some(Slot::Abandoned(_) | Slot::Rewatch(_)) => {
                    self.slots.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// Starts over on a new connection (after a reconnect or a resume): waiting
    /// requests fail with [`StoreError::Disconnected`], partial input is dropped,
    /// and every registered watch is registered again (its events keep flowing
    /// to the same [`crate::client`] watch). Transactions of the old connection
    /// are gone; their next operation fails.
    pub fn reset(&mut self, max_payload: usize) {
        self.fail(&StoreError::Disconnected);
        self.broken = None;
        self.decoder.reset();
        self.max_payload = max_payload.min(XENSTORE_PAYLOAD_MAX);
        let ids: Vec<u32> = self.watches.keys().copied().collect();
        for id in ids {
            let request = self
                .watches
                .get(&id)
                .map(|w| Request::watch(&w.path, &w.token));
            match request {
                Some(Ok(request)) => {
                    if let Err(err) = self.enqueue(&request, Some(id)) {
                        if let Some(state) = self.watches.get_mut(&id) {
                            state.error = Some(err);
                        }
                    }
                }
                Some(Err(err)) => {
                    if let Some(state) = self.watches.get_mut(&id) {
                        state.error = Some(err.into_store_error());
                    }
                }
                None => {}
            }
        }
    }

    /// Registers a watch locally and returns its id and the `XS_WATCH` request to
    /// send. Events for it are queued from now on (xenstored may send the
    /// initial event before its reply).
    pub fn watch_register(&mut self, path: &str) -> Result<(u32, Request), StoreError> {
        if self.watches.len() >= self.config.max_watches {
            return Err(StoreError::Busy);
        }
        let mut id = self.next_watch;
        while self.watches.contains_key(&id) || id == 0 {
            id = id.wrapping_add(1);
        }
        self.next_watch = id.wrapping_add(1);
        let token = format!("{TOKEN_PREFIX}{id}");
        let request = Request::watch(path, &token).map_err(wire::WireError::into_store_error)?;
        self.watches.insert(
            id,
            WatchState {
                path: String::from(path),
                token,
                events: VecDeque::new(),
                fired: false,
                dropped: 0,
                error: None,
            },
        );
        Ok((id, request))
    }

    /// Forgets a watch (no event is reported for it afterwards) and returns the
    /// `XS_UNWATCH` request to send; `None` for an unknown watch.
    pub fn watch_unregister(&mut self, id: u32) -> Option<Request> {
        let state = self.watches.remove(&id)?;
        Request::unwatch(&state.path, &state.token).ok()
    }

    /// Whether the watch fired since the last call (clears the flag and the
    /// queued events). `Err` for an unknown watch, or one whose re-registration
    /// after a reconnect failed.
    pub fn watch_take_fired(&mut self, id: u32) -> Result<bool, StoreError> {
        let state = self
            .watches
            .get_mut(&id)
            .ok_or(StoreError::Xs(xen_abi::xs_wire::XsError::Enoent))?;
        if let Some(err) = &state.error {
            return Err(err.clone());
        }
        let fired = state.fired;
        state.fired = false;
        state.events.clear();
        Ok(fired)
    }

    /// The oldest queued event path of a watch. `Err` as for
    /// [`Engine::watch_take_fired`].
    pub fn watch_next_event(&mut self, id: u32) -> Result<Option<String>, StoreError> {
        let state = self
            .watches
            .get_mut(&id)
            .ok_or(StoreError::Xs(xen_abi::xs_wire::XsError::Enoent))?;
        if let Some(err) = &state.error {
            return Err(err.clone());
        }
        let next = state.events.pop_front();
        if state.events.is_empty() {
            state.fired = false;
        }
        Ok(next)
    }

    /// Events of a watch dropped because its queue was full.
    pub fn watch_dropped(&self, id: u32) -> Option<u64> {
        self.watches.get(&id).map(|w| w.dropped)
    }

    /// Number of registered watches.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::xs_wire::XsError;

    fn reply(kind: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        Frame {
            kind,
            req_id,
            tx_id: 0,
            payload: payload.to_vec(),
        }
        .encode()
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig::default(), XENSTORE_PAYLOAD_MAX)
    }

    #[test]
    fn many_requests_in_flight_match_out_of_order() {
        let mut e = engine();
        let tickets: Vec<Ticket> = (0..100)
            .map(|i| {
                e.submit(&Request::read(0, &format!("/k{i}")).unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(e.in_flight(), 100);
        let mut bytes = Vec::new();
        for (i, t) in tickets.iter().enumerate().rev() {
            bytes.extend(reply(MsgType::Read, t.req_id(), format!("v{i}").as_bytes()));
            if i % 10 == 0 {
                bytes.extend(reply(MsgType::WatchEvent, 0, b"/w\0stray\0"));
            }
        }
        assert_eq!(e.receive(&bytes).unwrap(), 110);
        for (i, t) in tickets.iter().enumerate() {
            let frame = e.take(*t).unwrap().unwrap();
            assert_eq!(frame.payload, format!("v{i}").into_bytes());
        }
        assert_eq!(e.in_flight(), 0);
        assert_eq!(e.stats().stray_events, 10);
    }

    #[test]
    fn error_reply_is_typed() {
        let mut e = engine();
        let t = e.submit(&Request::read(0, "/nope").unwrap()).unwrap();
        e.receive(&reply(MsgType::Error, t.req_id(), b"ENOENT\0"))
            .unwrap();
        assert_eq!(e.take(t), Some(Err(StoreError::Xs(XsError::Enoent))));
    }

    #[test]
    fn unknown_req_id_breaks_the_connection_and_fails_waiters() {
        let mut e = engine();
        let t = e.submit(&Request::read(0, "/a").unwrap()).unwrap();
        let err = e
            .receive(&reply(MsgType::Read, t.req_id() + 1000, b"x"))
            .unwrap_err();
        assert!(matches!(err, StoreError::Protocol(_)));
        assert_eq!(e.take(t), Some(Err(err.clone())));
        assert_eq!(e.submit(&Request::read(0, "/a").unwrap()).unwrap_err(), err);
        e.reset(XENSTORE_PAYLOAD_MAX);
        assert!(e.submit(&Request::read(0, "/a").unwrap()).is_ok());
    }

    #[test]
    fn mismatched_reply_type_is_a_protocol_error() {
        let mut e = engine();
        let t = e.submit(&Request::read(0, "/a").unwrap()).unwrap();
        assert!(matches!(
            e.receive(&reply(MsgType::Write, t.req_id(), b"OK\0")),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn abandoned_reply_is_dropped_quietly() {
        let mut e = engine();
        let t = e.submit(&Request::read(0, "/a").unwrap()).unwrap();
        e.abandon(t);
        assert_eq!(
            e.receive(&reply(MsgType::Read, t.req_id(), b"late"))
                .unwrap(),
            1
        );
        assert_eq!(e.in_flight(), 0);
        assert!(e.broken().is_none());
    }

    #[test]
    fn in_flight_limit_is_busy() {
        let mut e = Engine::new(
            EngineConfig {
                max_in_flight: 2,
                ..EngineConfig::default()
            },
            XENSTORE_PAYLOAD_MAX,
        );
        let r = Request::read(0, "/a").unwrap();
        e.submit(&r).unwrap();
        e.submit(&r).unwrap();
        assert_eq!(e.submit(&r), Err(StoreError::Busy));
    }

    #[test]
    fn watch_events_are_queued_per_watch_and_bounded() {
        let mut e = Engine::new(
            EngineConfig {
                watch_queue_len: 3,
                ..EngineConfig::default()
            },
            XENSTORE_PAYLOAD_MAX,
        );
        let (a, req_a) = e.watch_register("/a").unwrap();
        let (b, _) = e.watch_register("/b").unwrap();
        let token_a =
            String::from_utf8(req_a.payload()[3..req_a.payload().len() - 1].to_vec()).unwrap();
        for i in 0..5 {
            let payload = format!("/a/{i}\0{token_a}\0");
            e.receive(&reply(MsgType::WatchEvent, 0xdead, payload.as_bytes()))
                .unwrap();
        }
        assert_eq!(e.watch_dropped(a), Some(2));
        assert_eq!(e.watch_next_event(a).unwrap().as_deref(), Some("/a/2"));
        assert!(e.watch_take_fired(a).unwrap());
        assert!(!e.watch_take_fired(a).unwrap());
        assert!(!e.watch_take_fired(b).unwrap());
        let unwatch = e.watch_unregister(a).unwrap();
        assert_eq!(unwatch.kind(), MsgType::Unwatch);
        let payload = format!("/a/9\0{token_a}\0");
        e.receive(&reply(MsgType::WatchEvent, 0, payload.as_bytes()))
            .unwrap();
        assert!(e.watch_take_fired(a).is_err());
        assert_eq!(e.stats().stray_events, 1);
    }

    #[test]
    fn reset_re_registers_watches() {
        let mut e = engine();
        let (a, _) = e.watch_register("/a").unwrap();
        let t = e.submit(&Request::read(0, "/x").unwrap()).unwrap();
        e.reset(XENSTORE_PAYLOAD_MAX);
        assert_eq!(e.take(t), Some(Err(StoreError::Disconnected)));
        assert_eq!(e.in_flight(), 1, "one XS_WATCH re-registration queued");
        let rewatch_id = *e.slots.keys().next().unwrap();
        e.receive(&reply(MsgType::Error, rewatch_id, b"EACCES\0"))
            .unwrap();
        assert_eq!(e.watch_take_fired(a), Err(StoreError::Xs(XsError::Eacces)));
    }

    #[test]
    fn oversize_requests_are_refused_before_sending() {
        let mut e = Engine::new(EngineConfig::default(), 4080);
        let value = vec![b'x'; 4080];
        assert!(matches!(
            e.submit(&Request::write(0, "/k", &value).unwrap()),
            Err(StoreError::TooLarge { max: 4080, .. })
        ));
        assert!(!e.has_output());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Replies in any order, with watch events anywhere between them and
            /// the bytes split anywhere, reach exactly their own requests.
            #[test]
            fn replies_match_whatever_the_order_and_split(
                count in 1usize..80,
                order_seed in any::<u64>(),
                events in proptest::collection::vec(0usize..80, 0..20),
                chunk in 1usize..300,
            ) {
                let mut e = engine();
                let (watch, req) = e.watch_register("/w").unwrap();
                let token = String::from_utf8(
                    req.payload()[3..req.payload().len() - 1].to_vec(),
                ).unwrap();
                let tickets: Vec<Ticket> = (0..count)
                    .map(|i| e.submit(&Request::read(0, &format!("/k{i}")).unwrap()).unwrap())
                    .collect();
                // A deterministic shuffle of the reply order.
                let mut order: Vec<usize> = (0..count).collect();
                let mut x = order_seed | 1;
                for i in (1..order.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let j = usize::try_from(x % (i as u64 + 1)).unwrap();
                    order.swap(i, j);
                }
                let mut stream = Vec::new();
                for (pos, &i) in order.iter().enumerate() {
                    if events.contains(&pos) {
                        stream.extend(reply(
                            MsgType::WatchEvent,
                            0xffff_ffff,
                            format!("/w/{pos}\0{token}\0").as_bytes(),
                        ));
                    }
                    stream.extend(reply(MsgType::Read, tickets[i].req_id(), format!("v{i}").as_bytes()));
                }
                for piece in stream.chunks(chunk) {
                    e.receive(piece).unwrap();
                }
                for (i, t) in tickets.iter().enumerate() {
                    let frame = e.take(*t).unwrap().unwrap();
                    prop_assert_eq!(frame.payload, format!("v{i}").into_bytes());
                }
                let mut seen = 0;
                while e.watch_next_event(watch).unwrap().is_some() {
                    seen += 1;
                }
                let expected = (0..count).filter(|p| events.contains(p)).count();
                prop_assert_eq!(seen, expected);
                prop_assert_eq!(e.in_flight(), 0);
            }
        }
    }
}
