//! Serving EVTCHN (versions 5 to 9) from any [`EventChannels`] implementation.
//!
//! Only `TYPE_UNBOUND` channels can be opened (what frontends use, and all the
//! trait offers); other types get a null handle, as a failed open does in C.
//! Events reach a channel's callback in one of two ways:
//! * push: the platform calls [`EvtchnProvider::deliver`] for the port (on
//!   Windows the bus's upcall DPC; in the rig a thread reading
//!   `/dev/xen/evtchn`);
//! * pull: a provider made with [`EvtchnProvider::with_waiter`] answers a
//!   child's `Wait` by waiting on the platform (in the rig, `poll` on
//!   `/dev/xen/evtchn`) and delivering what arrives.
//!
//! Without a waiter `Wait` cannot block: it returns at once, success if the
//! event count already reached the target, `STATUS_TIMEOUT` otherwise.

use super::{
    EvtchnChannel, EvtchnInterfaceV5, EvtchnInterfaceV6, EvtchnInterfaceV7, EvtchnInterfaceV8,
    EvtchnInterfaceV9, TYPE_UNBOUND,
};
use crate::api::{DomId, EventChannels, Port};
use crate::serve::{self, References, ServeInterface, served_header, write_table};
use crate::types::{
    Boolean, FALSE, Guid, Interface, KServiceRoutine, LargeInteger, NtStatus, Pinterface, Pvoid,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS, STATUS_TIMEOUT,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::fmt;
use core::ops::RangeInclusive;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

/// Serves EVTCHN from `C`.
pub struct EvtchnProvider<C: EventChannels + Sync> {
    context: serve::Owned<Context<C>>,
}

/// Waits on the platform for an event on a port: `Some(timeout)` at most that
/// long, `None` without limit. True if an event arrived.
pub type Waiter<C> = Box<dyn Fn(&C, Port, Option<Duration>) -> bool + Send + Sync>;

#[repr(C)]
struct Context<C: EventChannels> {
    refs: References,
    evtchn: C,
    waiter: Option<Waiter<C>>,
    /// Open channels by local port.
    channels: spin::Mutex<BTreeMap<u32, Arc<BusChannel<C::Channel>>>>,
}

struct BusChannel<T> {
    channel: T,
    port: Port,
    function: KServiceRoutine,
    argument: Pvoid,
    count: AtomicU32,
}

// SAFETY: `argument` is the child's callback context, which the C contract
// lets the bus pass to the callback from any CPU; `T` is the trait's channel,
// only used through `&C` where `C: Sync`.
unsafe impl<T> Send for BusChannel<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for BusChannel<T> {}

impl<C: EventChannels + Sync> EvtchnProvider<C> {
    /// A provider serving `evtchn`.
    pub fn new(evtchn: C) -> Self {
        Self::build(evtchn, None)
    }

    /// A provider serving `evtchn` that answers `Wait` by calling `waiter`
    /// (see the module docs).
    pub fn with_waiter(evtchn: C, waiter: Waiter<C>) -> Self {
        Self::build(evtchn, Some(waiter))
    }

    fn build(evtchn: C, waiter: Option<Waiter<C>>) -> Self {
        Self {
            context: serve::Owned::new(Context {
                refs: References::default(),
                evtchn,
                waiter,
                channels: spin::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The implementation served.
    pub fn evtchn(&self) -> &C {
        &self.context.evtchn
    }

    /// Channels children have open.
    pub fn open_channels(&self) -> usize {
        self.context.channels.lock().len()
    }

    /// An event arrived for `port`: counts it and runs the channel's callback.
    /// Returns false if no child has `port` open.
    pub fn deliver(&self, port: Port) -> bool {
        let channel = self.context.channels.lock().get(&port.0).cloned();
        match channel {
            Some(channel) => {
                // `Close` waits until this clone is gone.
                fire(&channel);
                true
            }
            None => false,
        }
    }

    fn context_ptr(&self) -> Pvoid {
        self.context.as_context()
    }
}

fn fire<T>(channel: &BusChannel<T>) {
    channel.count.fetch_add(1, Ordering::AcqRel);
    if let Some(function) = channel.function {
        // SAFETY: the child's callback and argument, given to `Open` for
        // exactly this; XENBUS passes no interrupt object.
        unsafe { function(core::ptr::null_mut(), channel.argument) };
    }
}

impl<C: EventChannels + Sync> Drop for EvtchnProvider<C> {
    fn drop(&mut self) {
        // Close what children left open, so the platform's ports go too.
        let channels = core::mem::take(&mut *self.context.channels.lock());
        for (_, channel) in channels {
            if let Some(channel) = Arc::into_inner(channel) {
                self.context.evtchn.close(channel.channel);
            }
        }
    }
}

impl<C: EventChannels + Sync> fmt::Debug for EvtchnProvider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvtchnProvider")
            .field("references", &self.context.refs)
            .field("open_channels", &self.open_channels())
            .finish_non_exhaustive()
    }
}

// SAFETY: shared state is `C: Sync` and spin-locked maps of `Sync` channels.
unsafe impl<C: EventChannels + Sync> Sync for EvtchnProvider<C> {}
// SAFETY: the boxed context moves with the provider; nothing is thread-bound
// beyond `C: Send`.
unsafe impl<C: EventChannels + Sync + Send> Send for EvtchnProvider<C> {}

type OpenFixed = unsafe extern "C" fn(
    Pinterface,
    u32,
    KServiceRoutine,
    Pvoid,
    u64,
    u64,
    u64,
) -> *mut EvtchnChannel;
type OpenVariadic =
    unsafe extern "C" fn(Pinterface, u32, KServiceRoutine, Pvoid, ...) -> *mut EvtchnChannel;

fn open_fn<C: EventChannels + Sync>() -> OpenVariadic {
    // SAFETY: `open` takes `Open`'s fixed parameters then three integer-class
    // slots, where the x86_64 conventions put a variadic call's first three
    // integer arguments (see `crate::printf`); it reads only the slots the
    // channel type defines.
    unsafe { core::mem::transmute::<OpenFixed, OpenVariadic>(open::<C>) }
}

impl<C: EventChannels + Sync> ServeInterface for EvtchnProvider<C> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        let tables = Tables::<C> {
            context: self.context_ptr(),
            _evtchn: core::marker::PhantomData,
        };
        match version {
            5 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(tables.v5(), buffer, size) }
            }
            6 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(tables.v6(), buffer, size) }
            }
            7 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(tables.v7(), buffer, size) }
            }
            8 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(tables.v8(), buffer, size) }
            }
            9 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(tables.v9(), buffer, size) }
            }
            _ => STATUS_NOT_SUPPORTED,
        }
    }

    fn references(&self) -> &References {
        &self.context.refs
    }
}

/// Builds each version's table for one provider.
struct Tables<C> {
    context: Pvoid,
    _evtchn: core::marker::PhantomData<C>,
}

const ACQUIRE: crate::evtchn::AcquireFn = Some(serve::acquire);
const RELEASE: crate::evtchn::ReleaseFn = Some(serve::release);

impl<C: EventChannels + Sync> Tables<C> {
    fn v5(&self) -> EvtchnInterfaceV5 {
        EvtchnInterfaceV5 {
            header: served_header::<EvtchnInterfaceV5>(self.context),
            acquire: ACQUIRE,
            release: RELEASE,
            open: Some(open_fn::<C>()),
            bind: Some(bind),
            unmask_v4: Some(unmask_v4::<C>),
            send_v1: Some(send::<C>),
            trigger: Some(trigger::<C>),
            wait_v5: Some(wait_v5::<C>),
            get_port: Some(get_port::<C>),
            close: Some(close::<C>),
        }
    }

    fn v6(&self) -> EvtchnInterfaceV6 {
        EvtchnInterfaceV6 {
            header: served_header::<EvtchnInterfaceV6>(self.context),
            acquire: ACQUIRE,
            release: RELEASE,
            open: Some(open_fn::<C>()),
            bind: Some(bind),
            unmask_v4: Some(unmask_v4::<C>),
            send: Some(send::<C>),
            trigger: Some(trigger::<C>),
            wait_v5: Some(wait_v5::<C>),
            get_port: Some(get_port::<C>),
            close: Some(close::<C>),
        }
    }

    fn v7(&self) -> EvtchnInterfaceV7 {
        EvtchnInterfaceV7 {
            header: served_header::<EvtchnInterfaceV7>(self.context),
            acquire: ACQUIRE,
            release: RELEASE,
            open: Some(open_fn::<C>()),
            bind: Some(bind),
            unmask_v4: Some(unmask_v4::<C>),
            send: Some(send::<C>),
            trigger: Some(trigger::<C>),
            get_count: Some(get_count::<C>),
            wait: Some(wait::<C>),
            get_port: Some(get_port::<C>),
            close: Some(close::<C>),
        }
    }

    fn v8(&self) -> EvtchnInterfaceV8 {
        EvtchnInterfaceV8 {
            header: served_header::<EvtchnInterfaceV8>(self.context),
            acquire: ACQUIRE,
            release: RELEASE,
            open: Some(open_fn::<C>()),
            bind: Some(bind),
            unmask: Some(unmask::<C>),
            send: Some(send::<C>),
            trigger: Some(trigger::<C>),
            get_count: Some(get_count::<C>),
            wait: Some(wait::<C>),
            get_port: Some(get_port::<C>),
            close: Some(close::<C>),
        }
    }

    fn v9(&self) -> EvtchnInterfaceV9 {
        EvtchnInterfaceV9 {
            header: served_header::<EvtchnInterfaceV9>(self.context),
            acquire: ACQUIRE,
            release: RELEASE,
            open: Some(open_fn::<C>()),
            bind: Some(bind),
            unmask: Some(unmask::<C>),
            send: Some(send::<C>),
            trigger: Some(trigger::<C>),
            get_count: Some(get_count::<C>),
            wait: Some(wait::<C>),
            get_port: Some(get_port::<C>),
            close: Some(close::<C>),
        }
    }
}

/// The provider context behind a table header.
///
/// # Safety
/// `interface` is the header of a table this module served, provider alive.
unsafe fn context<'a, C: EventChannels>(interface: Pinterface) -> &'a Context<C> {
    // SAFETY: the caller's guarantee.
    unsafe { serve::provider::<Context<C>>(interface) }
}

/// The channel behind a handle.
///
/// # Safety
/// `channel` is a handle `open` returned and `close` has not consumed.
unsafe fn bus_channel<'a, T>(channel: *mut EvtchnChannel) -> &'a BusChannel<T> {
    // SAFETY: the caller's guarantee: an `Arc<BusChannel<T>>` the map holds.
    unsafe { &*channel.cast::<BusChannel<T>>() }
}

unsafe extern "C" fn open<C: EventChannels + Sync>(
    interface: Pinterface,
    kind: u32,
    function: KServiceRoutine,
    argument: Pvoid,
    a0: u64,
    _a1: u64,
    _a2: u64,
) -> *mut EvtchnChannel {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<C>(interface) };
    if kind != TYPE_UNBOUND {
        return core::ptr::null_mut();
    }
    // The remote domain is a USHORT promoted to int: its low 16 bits.
    let remote = DomId(u16::from_le_bytes([
        a0.to_le_bytes()[0],
        a0.to_le_bytes()[1],
    ]));
    // The mask flag (`a1`) is moot: the trait's channels stay masked until
    // the child unmasks them after each event.
    let Ok(opened) = context.evtchn.open_unbound(remote) else {
        return core::ptr::null_mut();
    };
    let port = context.evtchn.port(&opened);
    let channel = Arc::new(BusChannel {
        channel: opened,
        port,
        function,
        argument,
        count: AtomicU32::new(0),
    });
    let handle = Arc::as_ptr(&channel).cast_mut().cast::<EvtchnChannel>();
    context.channels.lock().insert(port.0, channel);
    handle
}

unsafe extern "C" fn bind(
    _interface: Pinterface,
    _channel: *mut EvtchnChannel,
    _group: u16,
    _number: u8,
) -> NtStatus {
    // Which CPU takes the upcall is the platform's business here.
    STATUS_SUCCESS
}

unsafe extern "C" fn unmask<C: EventChannels>(
    interface: Pinterface,
    channel: *mut EvtchnChannel,
    _in_callback: Boolean,
    _force: Boolean,
) -> Boolean {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<C>(interface) };
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    context.evtchn.unmask(&channel.channel);
    // Nothing is left pending: a pending event is delivered by the platform.
    FALSE
}

unsafe extern "C" fn unmask_v4<C: EventChannels>(
    interface: Pinterface,
    channel: *mut EvtchnChannel,
    in_callback: Boolean,
) {
    // SAFETY: forwarded with the same guarantees.
    unsafe { unmask::<C>(interface, channel, in_callback, FALSE) };
}

unsafe extern "C" fn send<C: EventChannels>(interface: Pinterface, channel: *mut EvtchnChannel) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<C>(interface) };
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    context.evtchn.notify(&channel.channel);
}

unsafe extern "C" fn trigger<C: EventChannels>(
    _interface: Pinterface,
    channel: *mut EvtchnChannel,
) {
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    fire(channel);
}

unsafe extern "C" fn get_count<C: EventChannels>(
    _interface: Pinterface,
    channel: *mut EvtchnChannel,
) -> u32 {
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    channel.count.load(Ordering::Acquire)
}

/// Whether a channel's count reached `count` (counts wrap: "reached" means
/// at most half the range behind).
fn reached<T>(channel: &BusChannel<T>, count: u32) -> bool {
    channel.count.load(Ordering::Acquire).wrapping_sub(count) < 0x8000_0000
}

/// A `Wait` timeout: null is none; negative is relative, in 100 ns units;
/// positive is absolute system time, which a provider without a clock
/// treats as "now" (no wait).
///
/// # Safety
/// `timeout` is null or points at a readable `LARGE_INTEGER`.
unsafe fn timeout_of(timeout: *mut LargeInteger) -> Option<Duration> {
    if timeout.is_null() {
        return None;
    }
    // SAFETY: the caller's guarantee.
    let value = unsafe { timeout.read() }.0;
    let ticks = if value < 0 { value.unsigned_abs() } else { 0 };
    Some(Duration::from_nanos(ticks.saturating_mul(100)))
}

unsafe extern "C" fn wait<C: EventChannels>(
    interface: Pinterface,
    channel: *mut EvtchnChannel,
    count: u32,
    timeout: *mut LargeInteger,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<C>(interface) };
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    if reached(channel, count) {
        return STATUS_SUCCESS;
    }
    if let Some(waiter) = &context.waiter {
        // SAFETY: the C contract: null or a valid timeout.
        let timeout = unsafe { timeout_of(timeout) };
        if waiter(&context.evtchn, channel.port, timeout) {
            fire(channel);
        }
        if reached(channel, count) {
            return STATUS_SUCCESS;
        }
    }
    STATUS_TIMEOUT
}

unsafe extern "C" fn wait_v5<C: EventChannels>(
    interface: Pinterface,
    channel: *mut EvtchnChannel,
    timeout: *mut LargeInteger,
) -> NtStatus {
    // SAFETY: called through a table this module served, with a live handle.
    let count = unsafe { get_count::<C>(interface, channel) };
    // "The next event": one more than seen so far.
    // SAFETY: forwarded with the caller's guarantees.
    unsafe { wait::<C>(interface, channel, count.wrapping_add(1), timeout) }
}

unsafe extern "C" fn get_port<C: EventChannels>(
    _interface: Pinterface,
    channel: *mut EvtchnChannel,
) -> u32 {
    // SAFETY: a live handle.
    let channel = unsafe { bus_channel::<C::Channel>(channel) };
    channel.port.0
}

unsafe extern "C" fn close<C: EventChannels>(interface: Pinterface, channel: *mut EvtchnChannel) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<C>(interface) };
    let mut channels = context.channels.lock();
    // Only a handle this provider gave out is closed.
    let port = channels
        .iter()
        .find(|(_, c)| core::ptr::eq(Arc::as_ptr(c).cast::<EvtchnChannel>(), channel))
        .map(|(port, _)| *port);
    let Some(entry) = port.and_then(|port| channels.remove(&port)) else {
        return;
    };
    drop(channels);
    // A delivery in progress holds a clone: wait for it to finish, so the
    // callback never runs after `Close` returns (the child frees its
    // argument then). Hence: never close a channel from its own callback.
    let mut entry = entry;
    let channel = loop {
        match Arc::try_unwrap(entry) {
            Ok(channel) => break channel,
            Err(shared) => {
                entry = shared;
                core::hint::spin_loop();
            }
        }
    };
    context.evtchn.close(channel.channel);
}
