//! [`EventChannels`] over an EVTCHN table queried from the bus (versions 5
//! to 9: the newest the bus serves).

use super::{
    EvtchnChannel, EvtchnInterfaceV5, EvtchnInterfaceV6, EvtchnInterfaceV7, EvtchnInterfaceV8,
    EvtchnInterfaceV9, TYPE_UNBOUND,
};
use crate::api::{DomId, EventChannels, EvtchnError, Port};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{
    Boolean, Interface, KInterrupt, KServiceRoutine, LargeInteger, NtStatus, Pinterface, Pvoid,
    STATUS_TIMEOUT, TRUE, boolean,
};
use alloc::boxed::Box;
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};

type OpenFn =
    unsafe extern "C" fn(Pinterface, u32, KServiceRoutine, Pvoid, ...) -> *mut EvtchnChannel;
type ChannelFn = unsafe extern "C" fn(Pinterface, *mut EvtchnChannel);
type GetFn = unsafe extern "C" fn(Pinterface, *mut EvtchnChannel) -> u32;

#[derive(Clone, Copy)]
enum Unmask {
    /// Versions 5 to 7: no result.
    V4(unsafe extern "C" fn(Pinterface, *mut EvtchnChannel, Boolean)),
    /// Versions 8 and 9: `force`, and a "still pending" result.
    V8(unsafe extern "C" fn(Pinterface, *mut EvtchnChannel, Boolean, Boolean) -> Boolean),
}

#[derive(Clone, Copy)]
enum Wait {
    /// Versions 5 and 6: the next event.
    V5(unsafe extern "C" fn(Pinterface, *mut EvtchnChannel, *mut LargeInteger) -> NtStatus),
    /// Versions 7 to 9: until the count reaches a value.
    V7(unsafe extern "C" fn(Pinterface, *mut EvtchnChannel, u32, *mut LargeInteger) -> NtStatus),
}

/// The methods in use, whatever the version.
#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    open: OpenFn,
    unmask: Unmask,
    send: ChannelFn,
    trigger: ChannelFn,
    get_count: Option<GetFn>,
    wait: Wait,
    get_port: GetFn,
    close: ChannelFn,
}

/// The table the bus gave, kept whole (its header is what methods get).
#[derive(Clone, Copy)]
enum Table {
    V5(EvtchnInterfaceV5),
    V6(EvtchnInterfaceV6),
    V7(EvtchnInterfaceV7),
    V8(EvtchnInterfaceV8),
    V9(EvtchnInterfaceV9),
}

impl Table {
    fn header(&self) -> &Interface {
        match self {
            Self::V5(t) => &t.header,
            Self::V6(t) => &t.header,
            Self::V7(t) => &t.header,
            Self::V8(t) => &t.header,
            Self::V9(t) => &t.header,
        }
    }

    fn methods(&self) -> Result<Methods, QueryError> {
        let name = EvtchnInterfaceV9::NAME;
        let v = self.header().version;
        let missing = |what| QueryError::BadTable {
            name,
            version: v,
            reason: what,
        };
        Ok(match *self {
            Self::V5(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                open: method(t.open, name, v, "no Open")?,
                unmask: Unmask::V4(t.unmask_v4.ok_or_else(|| missing("no Unmask"))?),
                send: method(t.send_v1, name, v, "no Send")?,
                trigger: method(t.trigger, name, v, "no Trigger")?,
                get_count: None,
                wait: Wait::V5(t.wait_v5.ok_or_else(|| missing("no Wait"))?),
                get_port: method(t.get_port, name, v, "no GetPort")?,
                close: method(t.close, name, v, "no Close")?,
            },
            Self::V6(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                open: method(t.open, name, v, "no Open")?,
                unmask: Unmask::V4(t.unmask_v4.ok_or_else(|| missing("no Unmask"))?),
                send: method(t.send, name, v, "no Send")?,
                trigger: method(t.trigger, name, v, "no Trigger")?,
                get_count: None,
                wait: Wait::V5(t.wait_v5.ok_or_else(|| missing("no Wait"))?),
                get_port: method(t.get_port, name, v, "no GetPort")?,
                close: method(t.close, name, v, "no Close")?,
            },
            Self::V7(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                open: method(t.open, name, v, "no Open")?,
                unmask: Unmask::V4(t.unmask_v4.ok_or_else(|| missing("no Unmask"))?),
                send: method(t.send, name, v, "no Send")?,
                trigger: method(t.trigger, name, v, "no Trigger")?,
                get_count: t.get_count,
                wait: Wait::V7(t.wait.ok_or_else(|| missing("no Wait"))?),
                get_port: method(t.get_port, name, v, "no GetPort")?,
                close: method(t.close, name, v, "no Close")?,
            },
            Self::V8(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                open: method(t.open, name, v, "no Open")?,
                unmask: Unmask::V8(t.unmask.ok_or_else(|| missing("no Unmask"))?),
                send: method(t.send, name, v, "no Send")?,
                trigger: method(t.trigger, name, v, "no Trigger")?,
                get_count: t.get_count,
                wait: Wait::V7(t.wait.ok_or_else(|| missing("no Wait"))?),
                get_port: method(t.get_port, name, v, "no GetPort")?,
                close: method(t.close, name, v, "no Close")?,
            },
            Self::V9(t) => Methods {
                acquire: method(t.acquire, name, v, "no Acquire")?,
                release: method(t.release, name, v, "no Release")?,
                open: method(t.open, name, v, "no Open")?,
                unmask: Unmask::V8(t.unmask.ok_or_else(|| missing("no Unmask"))?),
                send: method(t.send, name, v, "no Send")?,
                trigger: method(t.trigger, name, v, "no Trigger")?,
                get_count: t.get_count,
                wait: Wait::V7(t.wait.ok_or_else(|| missing("no Wait"))?),
                get_port: method(t.get_port, name, v, "no GetPort")?,
                close: method(t.close, name, v, "no Close")?,
            },
        })
    }
}

/// A handler run (at DISPATCH_LEVEL or above on Windows) when an event arrives.
pub type EventHandler = Box<dyn Fn() + Send + Sync>;

/// What a channel's callback reaches: its count of events and its handler.
struct ChannelState {
    events: AtomicU32,
    handler: Option<EventHandler>,
}

/// An open channel of [`ChildEvtchn`]. Close it with
/// [`EventChannels::close`]; dropping it leaks the port and its callback state.
pub struct ChildChannel {
    handle: *mut EvtchnChannel,
    state: *mut ChannelState,
}

impl fmt::Debug for ChildChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildChannel")
            .field("handle", &self.handle)
            .field("state", &self.state)
            .finish()
    }
}

// SAFETY: the handle may be used from any CPU (C contract); the state is only
// read through atomics and a `Sync` handler.
unsafe impl Send for ChildChannel {}
// SAFETY: as above.
unsafe impl Sync for ChildChannel {}

/// [`EventChannels`] over the bus's EVTCHN table.
pub struct ChildEvtchn<'bus> {
    table: Table,
    methods: Methods,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (C contract;
// our providers require `Sync`).
unsafe impl Sync for ChildEvtchn<'_> {}
// SAFETY: as above.
unsafe impl Send for ChildEvtchn<'_> {}

impl fmt::Debug for ChildEvtchn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildEvtchn")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// The callback given to `Open`: counts the event and runs the handler.
unsafe extern "C" fn on_event(_interrupt: *mut KInterrupt, argument: Pvoid) -> Boolean {
    // SAFETY: `argument` is the `ChannelState` `open` made for this channel,
    // freed only after `Close` (after which the bus calls no more).
    let state = unsafe { &*argument.cast::<ChannelState>() };
    state.events.fetch_add(1, Ordering::AcqRel);
    if let Some(handler) = &state.handler {
        handler();
    }
    TRUE
}

impl<'bus> ChildEvtchn<'bus> {
    /// Queries EVTCHN from `bus`, newest version first (9 down to
    /// `oldest`, at least 5), and acquires it.
    pub fn new(bus: &'bus impl QueryInterface, oldest: u16) -> Result<Self, QueryError> {
        let oldest = oldest.max(super::VERSION_MIN);
        let table = query_newest(EvtchnInterfaceV9::NAME, oldest..=super::VERSION_MAX, |v| {
            Ok(match v {
                9 => query::<EvtchnInterfaceV9>(bus)?.map(Table::V9),
                8 => query::<EvtchnInterfaceV8>(bus)?.map(Table::V8),
                7 => query::<EvtchnInterfaceV7>(bus)?.map(Table::V7),
                6 => query::<EvtchnInterfaceV6>(bus)?.map(Table::V6),
                5 => query::<EvtchnInterfaceV5>(bus)?.map(Table::V5),
                _ => None,
            })
        })?;
        let methods = table.methods()?;
        let header = core::ptr::from_ref(table.header()).cast_mut();
        // SAFETY: a table the bus wrote; the bus only reads the header.
        let status = unsafe { (methods.acquire)(header) };
        if !status.is_success() {
            return Err(QueryError::Failed {
                name: EvtchnInterfaceV9::NAME,
                version: table.header().version,
                status,
            });
        }
        Ok(Self {
            table,
            methods,
            _bus: PhantomData,
        })
    }

    /// The version in use.
    pub fn version(&self) -> u16 {
        self.table.header().version
    }

    fn interface(&self) -> Pinterface {
        core::ptr::from_ref(self.table.header()).cast_mut()
    }

    /// Opens an unbound port for `remote`, running `handler` on each event.
    pub fn open_unbound_with(
        &self,
        remote: DomId,
        handler: Option<EventHandler>,
    ) -> Result<ChildChannel, EvtchnError> {
        let state = Box::into_raw(Box::new(ChannelState {
            events: AtomicU32::new(0),
            handler,
        }));
        // SAFETY: a valid table; variadic arguments as `Open` defines them for
        // `TYPE_UNBOUND` (remote domain, mask flag), each promoted to an int;
        // `state` lives until `close`.
        let handle = unsafe {
            (self.methods.open)(
                self.interface(),
                TYPE_UNBOUND,
                Some(on_event),
                state.cast(),
                u32::from(remote.0),
                u32::from(TRUE),
            )
        };
        if handle.is_null() {
            // SAFETY: the bus did not take `state`.
            drop(unsafe { Box::from_raw(state) });
            return Err(EvtchnError::Exhausted);
        }
        Ok(ChildChannel { handle, state })
    }

    /// Events the channel's callback has seen.
    pub fn events(&self, channel: &ChildChannel) -> u32 {
        // SAFETY: the state lives while the channel is open.
        unsafe { &*channel.state }.events.load(Ordering::Acquire)
    }

    /// Events the bus counted on the channel (versions 7 and later).
    pub fn bus_count(&self, channel: &ChildChannel) -> Option<u32> {
        // SAFETY: a valid table and an open channel.
        self.methods
            .get_count
            .map(|get| unsafe { get(self.interface(), channel.handle) })
    }

    /// Raises the event locally (the callback runs as if the remote end
    /// had notified).
    pub fn trigger(&self, channel: &ChildChannel) {
        // SAFETY: a valid table and an open channel.
        unsafe { (self.methods.trigger)(self.interface(), channel.handle) };
    }

    /// Waits until the bus's count reaches `count` (versions 7 and later) or
    /// for the next event (5 and 6), at most `timeout_100ns` (relative,
    /// in 100 ns units). True if reached.
    pub fn wait(&self, channel: &ChildChannel, count: u32, timeout_100ns: u64) -> bool {
        // Relative timeouts are negative, as `KeWaitForSingleObject` takes them.
        let mut timeout = LargeInteger(i64::try_from(timeout_100ns).map_or(i64::MIN, |t| -t));
        let status = match self.methods.wait {
            // SAFETY: a valid table, an open channel, a live timeout.
            Wait::V5(wait) => unsafe { wait(self.interface(), channel.handle, &raw mut timeout) },
            // SAFETY: as above.
            Wait::V7(wait) => unsafe {
                wait(self.interface(), channel.handle, count, &raw mut timeout)
            },
        };
        status.is_success() && status != STATUS_TIMEOUT
    }
}

impl Drop for ChildEvtchn<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl EventChannels for ChildEvtchn<'_> {
    type Channel = ChildChannel;

    fn open_unbound(&self, remote: DomId) -> Result<ChildChannel, EvtchnError> {
        self.open_unbound_with(remote, None)
    }

    fn port(&self, channel: &ChildChannel) -> Port {
        // SAFETY: a valid table and an open channel.
        Port(unsafe { (self.methods.get_port)(self.interface(), channel.handle) })
    }

    fn notify(&self, channel: &ChildChannel) {
        // SAFETY: a valid table and an open channel.
        unsafe { (self.methods.send)(self.interface(), channel.handle) };
    }

    fn unmask(&self, channel: &ChildChannel) {
        // Not from the callback; forced, so the channel ends up unmasked.
        match self.methods.unmask {
            // SAFETY: a valid table and an open channel.
            Unmask::V4(unmask) => unsafe {
                unmask(self.interface(), channel.handle, boolean(false));
            },
            // SAFETY: as above.
            Unmask::V8(unmask) => unsafe {
                unmask(
                    self.interface(),
                    channel.handle,
                    boolean(false),
                    boolean(true),
                );
            },
        }
    }

    fn close(&self, channel: ChildChannel) {
        // SAFETY: a valid table and an open channel, closed once.
        unsafe { (self.methods.close)(self.interface(), channel.handle) };
        // SAFETY: the bus calls the callback no more after `Close`.
        drop(unsafe { Box::from_raw(channel.state) });
    }
}
