//! The bus traits of `xenbus_interface::api` served by the guest platform, so
//! the frontend cores run inside a guest exactly as they run in the rig.
//!
//! These wrappers use `RefCell`: one execution context at a time (the test
//! kernel's single vCPU). The Windows shell puts its own spin lock around the
//! same objects instead. The cell may hold the table itself or a `&mut` to the
//! platform's table ([`BorrowMut`]), so a caller can lend the tables of a
//! running [`super::Platform`] to a frontend for one call and still suspend the
//! platform between calls.

use core::borrow::BorrowMut;
use core::cell::RefCell;
use core::marker::PhantomData;

use super::cpu::Cpu;
use super::evtchn::EventChannels;
use super::gnttab::{GrantFailure, GrantTable};
use xenbus_interface::api::{self, DomId, EvtchnError, GrantError, GrantRef, Memory, Pfn, Port};

/// An open event channel of [`GuestEventChannels`].
#[derive(Debug, PartialEq, Eq)]
pub struct GuestChannel {
    port: u32,
}

/// [`api::EventChannels`] over the platform's event channel table (`T` is the
/// table or a `&mut` to it).
#[derive(Debug)]
pub struct GuestEventChannels<'a, C, M: Memory, T = EventChannels<C, M>> {
    table: &'a RefCell<T>,
    _table: PhantomData<fn() -> EventChannels<C, M>>,
}

impl<'a, C: Cpu + Clone, M: Memory, T: BorrowMut<EventChannels<C, M>>>
    GuestEventChannels<'a, C, M, T>
{
    /// Serves `table`.
    pub fn new(table: &'a RefCell<T>) -> Self {
        Self {
            table,
            _table: PhantomData,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut EventChannels<C, M>) -> R) -> R {
        f(BorrowMut::borrow_mut(&mut *self.table.borrow_mut()))
    }
}

fn evtchn_error(e: super::Error) -> EvtchnError {
    match e {
        super::Error::Hypercall { rc, .. } => {
            EvtchnError::Refused(i32::try_from(rc).unwrap_or(i32::MIN))
        }
        super::Error::OutOfMemory | super::Error::OutOfBounds => EvtchnError::Exhausted,
        _ => EvtchnError::Closed,
    }
}

impl<C: Cpu + Clone, M: Memory, T: BorrowMut<EventChannels<C, M>>> api::EventChannels
    for GuestEventChannels<'_, C, M, T>
{
    type Channel = GuestChannel;

    fn open_unbound(&self, remote: DomId) -> Result<GuestChannel, EvtchnError> {
        let port = self
            .with(|t| t.alloc_unbound(remote.0))
            .map_err(evtchn_error)?;
        Ok(GuestChannel { port })
    }

    fn port(&self, channel: &GuestChannel) -> Port {
        Port(channel.port)
    }

    fn notify(&self, channel: &GuestChannel) {
        // A failed send on an open port means the remote end closed: the
        // frontend learns that from xenstore, not from here.
        let _ = self.with(|t| t.send(channel.port));
    }

    fn unmask(&self, channel: &GuestChannel) {
        let _ = self.with(|t| t.unmask(channel.port));
    }

    fn close(&self, channel: GuestChannel) {
        let _ = self.with(|t| t.close(channel.port));
    }
}

/// [`api::GrantTable`] over the platform's grant table (`T` is the table or a
/// `&mut` to it).
#[derive(Debug)]
pub struct GuestGrantTable<'a, C, T = GrantTable<C>> {
    table: &'a RefCell<T>,
    _table: PhantomData<fn() -> GrantTable<C>>,
}

impl<'a, C: Cpu + Clone, T: BorrowMut<GrantTable<C>>> GuestGrantTable<'a, C, T> {
    /// Serves `table`.
    pub fn new(table: &'a RefCell<T>) -> Self {
        Self {
            table,
            _table: PhantomData,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut GrantTable<C>) -> R) -> R {
        f(BorrowMut::borrow_mut(&mut *self.table.borrow_mut()))
    }
}

fn grant_error(e: GrantFailure) -> GrantError {
    match e {
        GrantFailure::Exhausted | GrantFailure::Grow(_) => GrantError::Exhausted,
        GrantFailure::InUse => GrantError::InUse,
        GrantFailure::Invalid => GrantError::Invalid,
        GrantFailure::BadFrame => GrantError::BadFrame,
    }
}

impl<C: Cpu + Clone, T: BorrowMut<GrantTable<C>>> api::GrantTable for GuestGrantTable<'_, C, T> {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        self.with(|t| t.grant(domid.0, pfn.0, readonly))
            .map(GrantRef)
            .map_err(grant_error)
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        self.with(|t| t.revoke(gref.0)).map_err(grant_error)
    }

    fn available(&self) -> usize {
        self.with(|t| t.available())
    }
}
