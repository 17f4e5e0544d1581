//! CONSOLE: the PV console (`console_interface.h`), version 1.

use crate::table::interface_table;
use crate::types::{Boolean, Guid, KEvent, NtStatus, Pinterface, Pstr, opaque};

/// `GUID_XENBUS_CONSOLE_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x04c4_f738,
    0x034a,
    0x4268,
    [0xbd, 0x20, 0xa9, 0x2a, 0xc9, 0x0d, 0x4f, 0x82],
);
/// `XENBUS_CONSOLE_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_CONSOLE_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 1;

opaque! {
    /// `XENBUS_CONSOLE_WAKEUP`: a registered wakeup event.
    ConsoleWakeup;
}

/// `XENBUS_CONSOLE_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_CONSOLE_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_CONSOLE_CAN_READ` / `_CAN_WRITE`.
pub type CanFn = Option<unsafe extern "C" fn(interface: Pinterface) -> Boolean>;
/// `XENBUS_CONSOLE_READ` / `_WRITE`: returns the bytes moved.
pub type TransferFn =
    Option<unsafe extern "C" fn(interface: Pinterface, data: Pstr, length: u32) -> u32>;
/// `XENBUS_CONSOLE_WAKEUP_ADD`.
pub type WakeupAddFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        event: *mut KEvent,
        wakeup: *mut *mut ConsoleWakeup,
    ) -> NtStatus,
>;
/// `XENBUS_CONSOLE_WAKEUP_REMOVE`.
pub type WakeupRemoveFn =
    Option<unsafe extern "C" fn(interface: Pinterface, wakeup: *mut ConsoleWakeup)>;

interface_table! {
    /// `struct _XENBUS_CONSOLE_INTERFACE_V1`.
    ConsoleInterfaceV1 = (GUID, 1, "CONSOLE") {
        /// `ConsoleAcquire`.
        acquire: AcquireFn,
        /// `ConsoleRelease`.
        release: ReleaseFn,
        /// `ConsoleCanRead`.
        can_read: CanFn,
        /// `ConsoleRead`.
        read: TransferFn,
        /// `ConsoleCanWrite`.
        can_write: CanFn,
        /// `ConsoleWrite`.
        write: TransferFn,
        /// `ConsoleWakeupAdd`.
        wakeup_add: WakeupAddFn,
        /// `ConsoleWakeupRemove`.
        wakeup_remove: WakeupRemoveFn,
    }
}
