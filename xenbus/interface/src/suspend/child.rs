//! [`Suspend`] over a SUSPEND table queried from the bus.

use super::{CALLBACK_EARLY, CALLBACK_LATE, SuspendCallback, SuspendInterfaceV1};
use crate::api::{ResumeCallback, Suspend, SuspendError, SuspendPhase};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{NtStatus, Pinterface, Pvoid};
use alloc::boxed::Box;
use core::fmt;
use core::marker::PhantomData;

#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    register: unsafe extern "C" fn(
        Pinterface,
        u32,
        Option<unsafe extern "C" fn(Pvoid)>,
        Pvoid,
        *mut *mut SuspendCallback,
    ) -> NtStatus,
    deregister: unsafe extern "C" fn(Pinterface, *mut SuspendCallback),
    trigger: unsafe extern "C" fn(Pinterface) -> NtStatus,
    get_count: unsafe extern "C" fn(Pinterface) -> u32,
}

/// A callback registered through [`ChildSuspend`].
pub struct ChildSuspendRegistration {
    handle: *mut SuspendCallback,
    callback: *mut ResumeCallback,
}

impl fmt::Debug for ChildSuspendRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSuspendRegistration")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

// SAFETY: an owned handle and an owned boxed `Send + Sync` callback.
unsafe impl Send for ChildSuspendRegistration {}

/// [`Suspend`] over the bus's SUSPEND table.
pub struct ChildSuspend<'bus> {
    table: SuspendInterfaceV1,
    methods: Methods,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (C contract).
unsafe impl Sync for ChildSuspend<'_> {}
// SAFETY: as above.
unsafe impl Send for ChildSuspend<'_> {}

impl fmt::Debug for ChildSuspend<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSuspend")
            .field("version", &self.table.header.version)
            .finish_non_exhaustive()
    }
}

unsafe extern "C" fn on_resume(argument: Pvoid) {
    // SAFETY: `argument` is the boxed callback `register` made, freed only
    // after `Deregister` returned.
    let callback = unsafe { &*argument.cast::<ResumeCallback>() };
    callback();
}

impl<'bus> ChildSuspend<'bus> {
    /// Queries SUSPEND (version 1) from `bus` and acquires it.
    pub fn new(bus: &'bus impl QueryInterface) -> Result<Self, QueryError> {
        let table = query_newest(
            SuspendInterfaceV1::NAME,
            super::VERSION_MIN..=super::VERSION_MAX,
            |v| match v {
                1 => query::<SuspendInterfaceV1>(bus),
                _ => Ok(None),
            },
        )?;
        let (name, v) = (SuspendInterfaceV1::NAME, table.header.version);
        let methods = Methods {
            acquire: method(table.acquire, name, v, "no Acquire")?,
            release: method(table.release, name, v, "no Release")?,
            register: method(table.register, name, v, "no Register")?,
            deregister: method(table.deregister, name, v, "no Deregister")?,
            trigger: method(table.trigger, name, v, "no Trigger")?,
            get_count: method(table.get_count, name, v, "no GetCount")?,
        };
        let header = core::ptr::from_ref(&table.header).cast_mut();
        // SAFETY: a table the bus wrote; the bus only reads the header.
        let status = unsafe { (methods.acquire)(header) };
        if !status.is_success() {
            return Err(QueryError::Failed {
                name,
                version: v,
                status,
            });
        }
        Ok(Self {
            table,
            methods,
            _bus: PhantomData,
        })
    }

    fn interface(&self) -> Pinterface {
        core::ptr::from_ref(&self.table.header).cast_mut()
    }
}

impl Drop for ChildSuspend<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl Suspend for ChildSuspend<'_> {
    type Registration = ChildSuspendRegistration;

    fn register(
        &self,
        phase: SuspendPhase,
        callback: ResumeCallback,
    ) -> Result<ChildSuspendRegistration, SuspendError> {
        let kind = match phase {
            SuspendPhase::Early => CALLBACK_EARLY,
            SuspendPhase::Late => CALLBACK_LATE,
        };
        let callback = Box::into_raw(Box::new(callback));
        let mut handle: *mut SuspendCallback = core::ptr::null_mut();
        // SAFETY: a valid table; `callback` lives until `deregister`;
        // `handle` is a valid output pointer.
        let status = unsafe {
            (self.methods.register)(
                self.interface(),
                kind,
                Some(on_resume),
                callback.cast(),
                &raw mut handle,
            )
        };
        if !status.is_success() || handle.is_null() {
            // SAFETY: the bus did not keep `callback`.
            drop(unsafe { Box::from_raw(callback) });
            return Err(SuspendError::Exhausted);
        }
        Ok(ChildSuspendRegistration { handle, callback })
    }

    fn deregister(&self, registration: ChildSuspendRegistration) {
        // SAFETY: a handle `register` got, deregistered once.
        unsafe { (self.methods.deregister)(self.interface(), registration.handle) };
        // SAFETY: the bus no longer calls the callback.
        drop(unsafe { Box::from_raw(registration.callback) });
    }

    fn trigger(&self) -> Result<(), SuspendError> {
        // SAFETY: a valid table.
        let status = unsafe { (self.methods.trigger)(self.interface()) };
        if status.is_success() {
            Ok(())
        } else {
            Err(SuspendError::Refused)
        }
    }

    fn count(&self) -> u32 {
        // SAFETY: a valid table.
        unsafe { (self.methods.get_count)(self.interface()) }
    }
}
