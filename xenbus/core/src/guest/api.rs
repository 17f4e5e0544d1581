//! The bus traits of `xenbus_interface::api` served by the guest platform, so
//! the frontend cores run inside a guest exactly as they run in the rig.
//!
//! These wrappers use `RefCell`: one execution context at a time (the test
//! kernel's single vCPU). The Windows shell puts its own spin lock around the
//! same objects instead.

use core::cell::RefCell;

use super::cpu::Cpu;
use super::evtchn::EventChannels;
use super::gnttab::{GrantFailure, GrantTable};
use xenbus_interface::api::{self, DomId, EvtchnError, GrantError, GrantRef, Memory, Pfn, Port};

/// An open event channel of [`GuestEventChannels`].
#[derive(Debug, PartialEq, Eq)]
pub struct GuestChannel {
    port: u32,
}

/// [`api::EventChannels`] over the platform's event channel table.
#[derive(Debug)]
pub struct GuestEventChannels<'a, C, M: Memory> {
    table: &'a RefCell<EventChannels<C, M>>,
}

impl<'a, C: Cpu + Clone, M: Memory> GuestEventChannels<'a, C, M> {
    /// Serves `table`.
    pub fn new(table: &'a RefCell<EventChannels<C, M>>) -> Self {
        Self { table }
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

impl<C: Cpu + Clone, M: Memory> api::EventChannels for GuestEventChannels<'_, C, M> {
    type Channel = GuestChannel;

    fn open_unbound(&self, remote: DomId) -> Result<GuestChannel, EvtchnError> {
        let port = self
            .table
            .borrow_mut()
            .alloc_unbound(remote.0)
            .map_err(evtchn_error)?;
        Ok(GuestChannel { port })
    }

    fn port(&self, channel: &GuestChannel) -> Port {
        Port(channel.port)
    }

    fn notify(&self, channel: &GuestChannel) {
        // A failed send on an open port means the remote end closed: the
        // frontend learns that from xenstore, not from here.
        let _ = self.table.borrow().send(channel.port);
    }

    fn unmask(&self, channel: &GuestChannel) {
        let _ = self.table.borrow().unmask(channel.port);
    }

    fn close(&self, channel: GuestChannel) {
        let _ = self.table.borrow_mut().close(channel.port);
    }
}

/// [`api::GrantTable`] over the platform's grant table.
#[derive(Debug)]
pub struct GuestGrantTable<'a, C> {
    table: &'a RefCell<GrantTable<C>>,
}

impl<'a, C: Cpu + Clone> GuestGrantTable<'a, C> {
    /// Serves `table`.
    pub fn new(table: &'a RefCell<GrantTable<C>>) -> Self {
        Self { table }
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

impl<C: Cpu + Clone> api::GrantTable for GuestGrantTable<'_, C> {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        self.table
            .borrow_mut()
            .grant(domid.0, pfn.0, readonly)
            .map(GrantRef)
            .map_err(grant_error)
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        self.table.borrow_mut().revoke(gref.0).map_err(grant_error)
    }

    fn available(&self) -> usize {
        self.table.borrow().available()
    }
}
