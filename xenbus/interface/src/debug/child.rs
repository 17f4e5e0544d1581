//! [`Debug`] over a DEBUG table queried from the bus.

use super::{DebugCallback, DebugInterfaceV1};
use crate::api::{Debug, DebugError, DumpCallback};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{Boolean, NtStatus, Pcstr, Pinterface, Pstr, Pvoid};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    register: unsafe extern "C" fn(
        Pinterface,
        Pstr,
        Option<unsafe extern "C" fn(Pvoid, Boolean)>,
        Pvoid,
        *mut *mut DebugCallback,
    ) -> NtStatus,
    printf: unsafe extern "C" fn(Pinterface, Pcstr, ...),
    trigger: unsafe extern "C" fn(Pinterface, *mut DebugCallback),
    deregister: unsafe extern "C" fn(Pinterface, *mut DebugCallback),
}

/// A callback registered through [`ChildDebug`].
pub struct ChildDebugRegistration {
    handle: *mut DebugCallback,
    callback: *mut DumpCallback,
}

impl fmt::Debug for ChildDebugRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildDebugRegistration")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

// SAFETY: an owned handle and an owned boxed `Send + Sync` callback.
unsafe impl Send for ChildDebugRegistration {}
// SAFETY: shared access only passes the handle back to the bus.
unsafe impl Sync for ChildDebugRegistration {}

/// [`Debug`] over the bus's DEBUG table.
pub struct ChildDebug<'bus> {
    table: DebugInterfaceV1,
    methods: Methods,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (C contract).
unsafe impl Sync for ChildDebug<'_> {}
// SAFETY: as above.
unsafe impl Send for ChildDebug<'_> {}

impl fmt::Debug for ChildDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildDebug")
            .field("version", &self.table.header.version)
            .finish_non_exhaustive()
    }
}

unsafe extern "C" fn on_dump(argument: Pvoid, crashing: Boolean) {
    // SAFETY: `argument` is the boxed callback `register` made, freed only
    // after `Deregister` returned.
    let callback = unsafe { &*argument.cast::<DumpCallback>() };
    callback(crashing != 0);
}

/// A NUL-terminated copy of `text`, cut at its first NUL.
fn c_text(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut out = Vec::with_capacity(end + 1);
    out.extend_from_slice(bytes.get(..end).unwrap_or(bytes));
    out.push(0);
    out
}

impl<'bus> ChildDebug<'bus> {
    /// Queries DEBUG (version 1) from `bus` and acquires it.
    pub fn new(bus: &'bus impl QueryInterface) -> Result<Self, QueryError> {
        let table = query_newest(
            DebugInterfaceV1::NAME,
            super::VERSION_MIN..=super::VERSION_MAX,
            |v| match v {
                1 => query::<DebugInterfaceV1>(bus),
                _ => Ok(None),
            },
        )?;
        let (name, v) = (DebugInterfaceV1::NAME, table.header.version);
        let methods = Methods {
            acquire: method(table.acquire, name, v, "no Acquire")?,
            release: method(table.release, name, v, "no Release")?,
            register: method(table.register, name, v, "no Register")?,
            printf: method(table.printf, name, v, "no Printf")?,
            trigger: method(table.trigger, name, v, "no Trigger")?,
            deregister: method(table.deregister, name, v, "no Deregister")?,
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

impl Drop for ChildDebug<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl Debug for ChildDebug<'_> {
    type Registration = ChildDebugRegistration;

    fn register(
        &self,
        prefix: &str,
        callback: DumpCallback,
    ) -> Result<ChildDebugRegistration, DebugError> {
        if prefix.is_empty() || prefix.as_bytes().contains(&0) {
            return Err(DebugError::InvalidPrefix);
        }
        let mut prefix = c_text(prefix);
        let callback = Box::into_raw(Box::new(callback));
        let mut handle: *mut DebugCallback = core::ptr::null_mut();
        // SAFETY: a valid table; `prefix` NUL-terminated (the bus copies it);
        // `callback` lives until `deregister`; `handle` a valid output pointer.
        let status = unsafe {
            (self.methods.register)(
                self.interface(),
                prefix.as_mut_ptr(),
                Some(on_dump),
                callback.cast(),
                &raw mut handle,
            )
        };
        if !status.is_success() || handle.is_null() {
            // SAFETY: the bus did not keep `callback`.
            drop(unsafe { Box::from_raw(callback) });
            return Err(DebugError::Exhausted);
        }
        Ok(ChildDebugRegistration { handle, callback })
    }

    fn print(&self, text: &str) {
        let text = c_text(text);
        // SAFETY: a valid table; the format and `text` are NUL-terminated;
        // `%s` takes one string.
        unsafe {
            (self.methods.printf)(self.interface(), c"%s".as_ptr().cast(), text.as_ptr());
        }
    }

    fn trigger(&self, registration: Option<&ChildDebugRegistration>) {
        let handle = registration.map_or(core::ptr::null_mut(), |r| r.handle);
        // SAFETY: a valid table; a live handle or null (all callbacks).
        unsafe { (self.methods.trigger)(self.interface(), handle) };
    }

    fn deregister(&self, registration: ChildDebugRegistration) {
        // SAFETY: a handle `register` got, deregistered once.
        unsafe { (self.methods.deregister)(self.interface(), registration.handle) };
        // SAFETY: the bus no longer calls the callback.
        drop(unsafe { Box::from_raw(registration.callback) });
    }
}
