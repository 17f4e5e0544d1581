//! How a STORE watch's event crosses the table.
//!
//! In the C interface, `WatchAdd` takes a `PKEVENT` the child owns; the bus
//! signals it whenever the watch fires and the child waits on it. The two
//! ends of that event are platform code:
//! * on Windows, a real `KEVENT` (the child waits with
//!   `KeWaitForSingleObject`, the bus sets it with `KeSetEvent`);
//! * when both ends live in one process (the rig, unit tests), [`Loopback`]:
//!   the "event" is a small object the bus arms with the watch it belongs to,
//!   so a child's wait runs the bus-side [`Store::watch_wait`](crate::api::Store::watch_wait).

use crate::api::StoreError;
use crate::types::KEvent;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ptr::NonNull;
use core::time::Duration;

/// Waits for one bus-side watch.
pub trait WatchWait: Send + Sync {
    /// `Ok(true)` once the watch has fired since the last wait, `Ok(false)`
    /// after `timeout`.
    fn wait(&self, timeout: Duration) -> Result<bool, StoreError>;
}

/// The child's end of watch events.
///
/// # Safety
/// [`ChildEvents::create`] must return an event that stays valid until given
/// to [`ChildEvents::destroy`], of the kind the bus expects.
pub unsafe trait ChildEvents: Sync {
    /// Makes an event to hand to `WatchAdd`.
    fn create(&self) -> Option<NonNull<KEvent>>;
    /// Waits for `event`: `Ok(true)` if it was signalled (and resets it),
    /// `Ok(false)` on timeout.
    ///
    /// # Safety
    /// `event` came from [`ChildEvents::create`] and was not destroyed.
    unsafe fn wait(&self, event: NonNull<KEvent>, timeout: Duration) -> Result<bool, StoreError>;
    /// Frees `event`.
    ///
    /// # Safety
    /// `event` came from [`ChildEvents::create`], the bus no longer uses it
    /// (its watch was removed), and nobody waits on it.
    unsafe fn destroy(&self, event: NonNull<KEvent>);
}

/// The bus's end of watch events.
///
/// # Safety
/// An implementation must only touch the events it was given between
/// [`BusEvents::attach`] and [`BusEvents::detach`].
pub unsafe trait BusEvents: Sync {
    /// `event` now belongs to a watch; `watch` waits for that watch.
    ///
    /// # Safety
    /// `event` is a child's event of the kind this implementation handles,
    /// valid until [`BusEvents::detach`].
    unsafe fn attach(&self, event: NonNull<KEvent>, watch: Arc<dyn WatchWait>);
    /// The watch of `event` is being removed: stop using `event`.
    ///
    /// # Safety
    /// `event` was attached and not yet detached.
    unsafe fn detach(&self, event: NonNull<KEvent>);
}

/// Watch events when bus and child share a process: see the module docs. A
/// bus that uses `Loopback` must only serve children that use `Loopback`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loopback;

/// What a [`Loopback`] event points at.
struct LoopbackEvent {
    watch: spin::Mutex<Option<Arc<dyn WatchWait>>>,
}

// SAFETY: `create` returns a leaked box, valid until `destroy` takes it back.
unsafe impl ChildEvents for Loopback {
    fn create(&self) -> Option<NonNull<KEvent>> {
        let event = Box::new(LoopbackEvent {
            watch: spin::Mutex::new(None),
        });
        Some(NonNull::from(Box::leak(event)).cast())
    }

    unsafe fn wait(&self, event: NonNull<KEvent>, timeout: Duration) -> Result<bool, StoreError> {
        // SAFETY: `event` came from `create` (a `LoopbackEvent`) and is alive.
        let event = unsafe { event.cast::<LoopbackEvent>().as_ref() };
        // Take a reference and drop the lock before waiting, so the bus can
        // detach (watch removal) while a wait is in progress.
        let watch = event.watch.lock().clone();
        match watch {
            Some(watch) => watch.wait(timeout),
            None => Err(StoreError::Disconnected),
        }
    }

    unsafe fn destroy(&self, event: NonNull<KEvent>) {
        // SAFETY: `event` came from `create`'s leaked box and is not used again.
        drop(unsafe { Box::from_raw(event.cast::<LoopbackEvent>().as_ptr()) });
    }
}

// SAFETY: only touches an event between attach and detach.
unsafe impl BusEvents for Loopback {
    unsafe fn attach(&self, event: NonNull<KEvent>, watch: Arc<dyn WatchWait>) {
        // SAFETY: the caller guarantees a live `Loopback` child event.
        let event = unsafe { event.cast::<LoopbackEvent>().as_ref() };
        *event.watch.lock() = Some(watch);
    }

    unsafe fn detach(&self, event: NonNull<KEvent>) {
        // SAFETY: as in `attach`.
        let event = unsafe { event.cast::<LoopbackEvent>().as_ref() };
        event.watch.lock().take();
    }
}
