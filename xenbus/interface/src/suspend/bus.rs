//! Serving SUSPEND (version 1) from any [`Suspend`] implementation.

use super::{CALLBACK_EARLY, CALLBACK_LATE, FunctionFn, SuspendCallback, SuspendInterfaceV1};
use crate::api::{Suspend, SuspendPhase};
use crate::serve::{self, References, ServeInterface, served_header, write_table};
use crate::table::InterfaceTable;
use crate::types::{
    Guid, Interface, NtStatus, Pinterface, Pvoid, STATUS_INVALID_PARAMETER, STATUS_NO_MEMORY,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use core::fmt;
use core::ops::RangeInclusive;

/// Serves SUSPEND from `S`.
pub struct SuspendProvider<S: Suspend + Sync> {
    context: serve::Owned<Context<S>>,
}

#[repr(C)]
struct Context<S: Suspend> {
    refs: References,
    suspend: S,
    registrations: spin::Mutex<BTreeMap<usize, Box<Option<S::Registration>>>>,
}

/// A child's C callback, callable from any CPU (the C contract).
struct CFunction {
    function: unsafe extern "C" fn(Pvoid),
    argument: Pvoid,
}

// SAFETY: the C interface lets the bus call a registered callback with its
// argument from any CPU.
unsafe impl Send for CFunction {}
// SAFETY: as above.
unsafe impl Sync for CFunction {}

impl CFunction {
    fn call(&self) {
        // SAFETY: the child's function and argument, registered for this and
        // valid until `Deregister` returns.
        unsafe { (self.function)(self.argument) };
    }
}

impl<S: Suspend + Sync> SuspendProvider<S> {
    /// A provider serving `suspend`.
    pub fn new(suspend: S) -> Self {
        Self {
            context: serve::Owned::new(Context {
                refs: References::default(),
                suspend,
                registrations: spin::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The implementation served.
    pub fn suspend(&self) -> &S {
        &self.context.suspend
    }

    /// Callbacks children have registered.
    pub fn registered(&self) -> usize {
        self.context.registrations.lock().len()
    }
}

impl<S: Suspend + Sync> fmt::Debug for SuspendProvider<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuspendProvider")
            .field("references", &self.context.refs)
            .field("registered", &self.registered())
            .finish_non_exhaustive()
    }
}

// SAFETY: shared state is `S: Sync` and a spin-locked map of owned boxes.
unsafe impl<S: Suspend + Sync> Sync for SuspendProvider<S> where S::Registration: Send {}
// SAFETY: the boxed context moves with the provider.
unsafe impl<S: Suspend + Sync + Send> Send for SuspendProvider<S> where S::Registration: Send {}

impl<S: Suspend + Sync> ServeInterface for SuspendProvider<S> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        if version != SuspendInterfaceV1::VERSION {
            return STATUS_NOT_SUPPORTED;
        }
        let context = self.context.as_context();
        let table = SuspendInterfaceV1 {
            header: served_header::<SuspendInterfaceV1>(context),
            acquire: Some(serve::acquire),
            release: Some(serve::release),
            register: Some(register::<S>),
            deregister: Some(deregister::<S>),
            trigger: Some(trigger::<S>),
            get_count: Some(get_count::<S>),
        };
        // SAFETY: the caller's guarantee about `buffer`.
        unsafe { write_table(table, buffer, size) }
    }

    fn references(&self) -> &References {
        &self.context.refs
    }
}

/// # Safety
/// `interface` is the header of a table this module served, provider alive.
unsafe fn context<'a, S: Suspend>(interface: Pinterface) -> &'a Context<S> {
    // SAFETY: the caller's guarantee.
    unsafe { serve::provider::<Context<S>>(interface) }
}

unsafe extern "C" fn register<S: Suspend>(
    interface: Pinterface,
    kind: u32,
    function: FunctionFn,
    argument: Pvoid,
    callback: *mut *mut SuspendCallback,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S>(interface) };
    let phase = match kind {
        CALLBACK_EARLY => SuspendPhase::Early,
        CALLBACK_LATE => SuspendPhase::Late,
        _ => return STATUS_INVALID_PARAMETER,
    };
    let Some(function) = function else {
        return STATUS_INVALID_PARAMETER;
    };
    if callback.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let c = CFunction { function, argument };
    let Ok(registration) = context.suspend.register(phase, Box::new(move || c.call())) else {
        return STATUS_NO_MEMORY;
    };
    let mut handle = Box::new(Some(registration));
    let ptr = core::ptr::from_mut(&mut *handle).cast::<SuspendCallback>();
    context.registrations.lock().insert(ptr as usize, handle);
    // SAFETY: the child's non-null output pointer.
    unsafe { callback.write(ptr) };
    STATUS_SUCCESS
}

unsafe extern "C" fn deregister<S: Suspend>(interface: Pinterface, callback: *mut SuspendCallback) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S>(interface) };
    let entry = context.registrations.lock().remove(&(callback as usize));
    if let Some(registration) = entry.and_then(|mut e| e.take()) {
        context.suspend.deregister(registration);
    }
}

unsafe extern "C" fn trigger<S: Suspend>(interface: Pinterface) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S>(interface) };
    match context.suspend.trigger() {
        Ok(()) => STATUS_SUCCESS,
        Err(_) => STATUS_UNSUCCESSFUL,
    }
}

unsafe extern "C" fn get_count<S: Suspend>(interface: Pinterface) -> u32 {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S>(interface) };
    context.suspend.count()
}
