//! DEBUG: debug dump callbacks (`debug_interface.h`), version 1.
//!
//! A child registers a callback with a prefix; when the bus dumps state (a
//! `Trigger`, or a crash with `crashing` TRUE) it calls each callback, which
//! prints lines with the variadic `Printf`.

pub mod bus;
pub mod child;

use crate::table::interface_table;
use crate::types::{Boolean, Guid, NtStatus, Pcstr, Pinterface, Pstr, Pvoid, opaque};

/// `GUID_XENBUS_DEBUG_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x0df6_00ae,
    0x6b20,
    0x4227,
    [0xbf, 0x94, 0x03, 0xda, 0x9a, 0x26, 0xa1, 0x14],
);
/// `XENBUS_DEBUG_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_DEBUG_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 1;

opaque! {
    /// `XENBUS_DEBUG_CALLBACK`: a registered callback.
    DebugCallback;
}

/// `XENBUS_DEBUG_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_DEBUG_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_DEBUG_FUNCTION`.
pub type FunctionFn = Option<unsafe extern "C" fn(argument: Pvoid, crashing: Boolean)>;
/// `XENBUS_DEBUG_REGISTER`.
pub type RegisterFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        prefix: Pstr,
        function: FunctionFn,
        argument: Pvoid,
        callback: *mut *mut DebugCallback,
    ) -> NtStatus,
>;
/// `XENBUS_DEBUG_PRINTF` (variadic).
pub type PrintfFn = Option<unsafe extern "C" fn(interface: Pinterface, format: Pcstr, ...)>;
/// `XENBUS_DEBUG_DEREGISTER`.
pub type DeregisterFn =
    Option<unsafe extern "C" fn(interface: Pinterface, callback: *mut DebugCallback)>;
/// `XENBUS_DEBUG_TRIGGER`: run one callback, or all with a null handle.
pub type TriggerFn = DeregisterFn;

interface_table! {
    /// `struct _XENBUS_DEBUG_INTERFACE_V1`.
    DebugInterfaceV1 = (GUID, 1, "DEBUG") {
        /// `DebugAcquire`.
        acquire: AcquireFn,
        /// `DebugRelease`.
        release: ReleaseFn,
        /// `DebugRegister`.
        register: RegisterFn,
        /// `DebugPrintf`.
        printf: PrintfFn,
        /// `DebugTrigger`.
        trigger: TriggerFn,
        /// `DebugDeregister`.
        deregister: DeregisterFn,
    }
}
