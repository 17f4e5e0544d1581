//! SUSPEND: suspend/resume notifications (`suspend_interface.h`), version 1.
//!
//! `Register` hands out a callback handle the bus owns until `Deregister`.
//! Early callbacks run right after resume with interrupts still off (one CPU,
//! HIGH_LEVEL on Windows: no blocking, no allocation); late callbacks run after
//! every CPU is back, at DISPATCH_LEVEL.

pub mod bus;
pub mod child;

use crate::table::interface_table;
use crate::types::{Guid, NtStatus, Pinterface, Pvoid, opaque};

/// `GUID_XENBUS_SUSPEND_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x0554_f2af,
    0xb510,
    0x4c71,
    [0xac, 0x03, 0x1c, 0x50, 0x3e, 0x39, 0x42, 0x38],
);
/// `XENBUS_SUSPEND_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_SUSPEND_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 1;

/// `SUSPEND_CALLBACK_TYPE_INVALID`.
pub const CALLBACK_TYPE_INVALID: u32 = 0;
/// `SUSPEND_CALLBACK_EARLY`.
pub const CALLBACK_EARLY: u32 = 1;
/// `SUSPEND_CALLBACK_LATE`.
pub const CALLBACK_LATE: u32 = 2;

opaque! {
    /// `XENBUS_SUSPEND_CALLBACK`: a registered callback.
    SuspendCallback;
}

/// `XENBUS_SUSPEND_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_SUSPEND_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_SUSPEND_FUNCTION`.
pub type FunctionFn = Option<unsafe extern "C" fn(argument: Pvoid)>;
/// `XENBUS_SUSPEND_REGISTER`.
pub type RegisterFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        kind: u32,
        function: FunctionFn,
        argument: Pvoid,
        callback: *mut *mut SuspendCallback,
    ) -> NtStatus,
>;
/// `XENBUS_SUSPEND_DEREGISTER`.
pub type DeregisterFn =
    Option<unsafe extern "C" fn(interface: Pinterface, callback: *mut SuspendCallback)>;
/// `XENBUS_SUSPEND_TRIGGER`: suspend the domain now.
pub type TriggerFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_SUSPEND_GET_COUNT`: suspends since boot.
pub type GetCountFn = Option<unsafe extern "C" fn(interface: Pinterface) -> u32>;

interface_table! {
    /// `struct _XENBUS_SUSPEND_INTERFACE_V1`.
    SuspendInterfaceV1 = (GUID, 1, "SUSPEND") {
        /// `Acquire`.
        acquire: AcquireFn,
        /// `Release`.
        release: ReleaseFn,
        /// `Register`.
        register: RegisterFn,
        /// `Deregister`.
        deregister: DeregisterFn,
        /// `Trigger`.
        trigger: TriggerFn,
        /// `GetCount`.
        get_count: GetCountFn,
    }
}
