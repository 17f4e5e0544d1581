//! Serving DEBUG (version 1) from any [`Debug`] implementation.

use super::{DebugCallback, DebugInterfaceV1, FunctionFn};
use crate::api::Debug;
use crate::printf::{self, SLOTS};
use crate::serve::{self, References, ServeInterface, served_header, write_table};
use crate::table::InterfaceTable;
use crate::types::{
    Guid, Interface, NtStatus, Pcstr, Pinterface, Pstr, Pvoid, STATUS_INVALID_PARAMETER,
    STATUS_NO_MEMORY, STATUS_NOT_SUPPORTED, STATUS_SUCCESS, boolean,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::fmt;
use core::ops::RangeInclusive;

/// The longest text one `Printf` produces.
pub const PRINTF_LIMIT: usize = 4096;

/// Serves DEBUG from `D`.
pub struct DebugProvider<D: Debug + Sync> {
    context: serve::Owned<Context<D>>,
}

#[repr(C)]
struct Context<D: Debug> {
    refs: References,
    debug: D,
    registrations: spin::Mutex<BTreeMap<usize, Arc<D::Registration>>>,
}

/// A child's C callback, callable from any CPU (the C contract).
struct CFunction {
    function: unsafe extern "C" fn(Pvoid, u8),
    argument: Pvoid,
}

// SAFETY: the C interface lets the bus call a registered callback with its
// argument from any CPU.
unsafe impl Send for CFunction {}
// SAFETY: as above.
unsafe impl Sync for CFunction {}

impl CFunction {
    fn call(&self, crashing: bool) {
        // SAFETY: the child's function and argument, registered for this and
        // valid until `Deregister` returns.
        unsafe { (self.function)(self.argument, boolean(crashing)) };
    }
}

impl<D: Debug + Sync> DebugProvider<D> {
    /// A provider serving `debug`.
    pub fn new(debug: D) -> Self {
        Self {
            context: serve::Owned::new(Context {
                refs: References::default(),
                debug,
                registrations: spin::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The implementation served.
    pub fn debug(&self) -> &D {
        &self.context.debug
    }

    /// Callbacks children have registered.
    pub fn registered(&self) -> usize {
        self.context.registrations.lock().len()
    }
}

impl<D: Debug + Sync> fmt::Debug for DebugProvider<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugProvider")
            .field("references", &self.context.refs)
            .field("registered", &self.registered())
            .finish_non_exhaustive()
    }
}

// SAFETY: shared state is `D: Sync` and a spin-locked map of registrations.
unsafe impl<D: Debug + Sync> Sync for DebugProvider<D> where D::Registration: Send + Sync {}
// SAFETY: the boxed context moves with the provider.
unsafe impl<D: Debug + Sync + Send> Send for DebugProvider<D> where D::Registration: Send + Sync {}

type PrintfFixed = unsafe extern "C" fn(Pinterface, Pcstr, u64, u64, u64, u64, u64, u64, u64, u64);
type PrintfVariadic = unsafe extern "C" fn(Pinterface, Pcstr, ...);

impl<D: Debug + Sync> ServeInterface for DebugProvider<D> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        if version != DebugInterfaceV1::VERSION {
            return STATUS_NOT_SUPPORTED;
        }
        let context = self.context.as_context();
        let table = DebugInterfaceV1 {
            header: served_header::<DebugInterfaceV1>(context),
            acquire: Some(serve::acquire),
            release: Some(serve::release),
            register: Some(register::<D>),
            // SAFETY: `printf` takes `Printf`'s fixed parameters then `SLOTS`
            // integer-class slots, where the x86_64 conventions put a variadic
            // call's integer arguments (see `crate::printf`).
            printf: Some(unsafe {
                core::mem::transmute::<PrintfFixed, PrintfVariadic>(printf::<D>)
            }),
            trigger: Some(trigger::<D>),
            deregister: Some(deregister::<D>),
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
unsafe fn context<'a, D: Debug>(interface: Pinterface) -> &'a Context<D> {
    // SAFETY: the caller's guarantee.
    unsafe { serve::provider::<Context<D>>(interface) }
}

unsafe extern "C" fn register<D: Debug>(
    interface: Pinterface,
    prefix: Pstr,
    function: FunctionFn,
    argument: Pvoid,
    callback: *mut *mut DebugCallback,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<D>(interface) };
    // SAFETY: the C contract: a NUL-terminated prefix.
    let prefix = unsafe { printf::c_str(prefix) };
    let Some(prefix) = prefix.and_then(|p| core::str::from_utf8(p).ok()) else {
        return STATUS_INVALID_PARAMETER;
    };
    let Some(function) = function else {
        return STATUS_INVALID_PARAMETER;
    };
    if callback.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let c = CFunction { function, argument };
    let registration = match context
        .debug
        .register(prefix, Box::new(move |crashing| c.call(crashing)))
    {
        Ok(registration) => Arc::new(registration),
        Err(_) => return STATUS_NO_MEMORY,
    };
    let ptr = Arc::as_ptr(&registration)
        .cast_mut()
        .cast::<DebugCallback>();
    context
        .registrations
        .lock()
        .insert(ptr as usize, registration);
    // SAFETY: the child's non-null output pointer.
    unsafe { callback.write(ptr) };
    STATUS_SUCCESS
}

unsafe extern "C" fn printf<D: Debug>(
    interface: Pinterface,
    format: Pcstr,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<D>(interface) };
    // SAFETY: the caller's NUL-terminated format string.
    let Some(format) = (unsafe { printf::c_str(format) }) else {
        return;
    };
    let slots: [u64; SLOTS] = [a0, a1, a2, a3, a4, a5, a6, a7];
    let read_str = |p: u64| {
        let ptr = usize::try_from(p).map_or(core::ptr::null(), |p| p as *const u8);
        // SAFETY: a `%s` argument is, by the printf contract, a
        // NUL-terminated string (or null) that outlives the call.
        unsafe { printf::c_str(ptr) }.unwrap_or(b"(null)")
    };
    if let Ok(text) = printf::format(format, &slots, read_str, PRINTF_LIMIT) {
        context
            .debug
            .print(&alloc::string::String::from_utf8_lossy(&text));
    }
}

unsafe extern "C" fn trigger<D: Debug>(interface: Pinterface, callback: *mut DebugCallback) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<D>(interface) };
    if callback.is_null() {
        context.debug.trigger(None);
        return;
    }
    // Run without the lock: the callback prints, and may register.
    let registration = context
        .registrations
        .lock()
        .get(&(callback as usize))
        .cloned();
    if let Some(registration) = registration {
        context.debug.trigger(Some(&registration));
    }
}

unsafe extern "C" fn deregister<D: Debug>(interface: Pinterface, callback: *mut DebugCallback) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<D>(interface) };
    let Some(mut entry) = context.registrations.lock().remove(&(callback as usize)) else {
        return;
    };
    // A trigger in progress holds a clone: wait for it, so the callback never
    // runs after `Deregister` returns.
    let registration = loop {
        match Arc::try_unwrap(entry) {
            Ok(registration) => break registration,
            Err(shared) => {
                entry = shared;
                core::hint::spin_loop();
            }
        }
    };
    context.debug.deregister(registration);
}
