//! UNPLUG: emulated device unplug requests (`unplug_interface.h`), versions 1 to 3.

pub mod bus;
pub mod child;

use crate::table::interface_table;
use crate::types::{Boolean, Guid, NtStatus, Pinterface, Pstr};

/// `GUID_XENBUS_UNPLUG_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x73db_6517,
    0x3d06,
    0x4937,
    [0x98, 0x9f, 0x19, 0x9b, 0x75, 0x01, 0xe2, 0x29],
);
/// `XENBUS_UNPLUG_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_UNPLUG_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 3;

/// `XENBUS_UNPLUG_DEVICE_TYPE_INVALID`.
pub const DEVICE_TYPE_INVALID: u32 = 0;
/// `XENBUS_UNPLUG_DEVICE_TYPE_NICS`.
pub const DEVICE_TYPE_NICS: u32 = 1;
/// `XENBUS_UNPLUG_DEVICE_TYPE_DISKS`.
pub const DEVICE_TYPE_DISKS: u32 = 2;

/// `XENBUS_UNPLUG_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_UNPLUG_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_UNPLUG_REQUEST`: make (`make` TRUE) or revoke a request to unplug
/// the emulated devices of a type at the next boot.
pub type RequestFn = Option<unsafe extern "C" fn(interface: Pinterface, kind: u32, make: Boolean)>;
/// `XENBUS_UNPLUG_IS_REQUESTED`.
pub type IsRequestedFn = Option<unsafe extern "C" fn(interface: Pinterface, kind: u32) -> Boolean>;
/// `XENBUS_UNPLUG_BOOT_EMULATED`: whether the boot disk is emulated.
pub type BootEmulatedFn = Option<unsafe extern "C" fn(interface: Pinterface) -> Boolean>;
/// `XENBUS_UNPLUG_REBOOT`: ask for a reboot on behalf of `module`.
pub type RebootFn = Option<unsafe extern "C" fn(interface: Pinterface, module: Pstr)>;

interface_table! {
    /// `struct _XENBUS_UNPLUG_INTERFACE_V1`.
    UnplugInterfaceV1 = (GUID, 1, "UNPLUG") {
        /// `UnplugAcquire`.
        acquire: AcquireFn,
        /// `UnplugRelease`.
        release: ReleaseFn,
        /// `UnplugRequest`.
        request: RequestFn,
    }
}

interface_table! {
    /// `struct _XENBUS_UNPLUG_INTERFACE_V2`.
    UnplugInterfaceV2 = (GUID, 2, "UNPLUG") {
        /// `UnplugAcquire`.
        acquire: AcquireFn,
        /// `UnplugRelease`.
        release: ReleaseFn,
        /// `UnplugRequest`.
        request: RequestFn,
        /// `UnplugIsRequested`.
        is_requested: IsRequestedFn,
    }
}

interface_table! {
    /// `struct _XENBUS_UNPLUG_INTERFACE_V3`.
    UnplugInterfaceV3 = (GUID, 3, "UNPLUG") {
        /// `UnplugAcquire`.
        acquire: AcquireFn,
        /// `UnplugRelease`.
        release: ReleaseFn,
        /// `UnplugRequest`.
        request: RequestFn,
        /// `UnplugIsRequested`.
        is_requested: IsRequestedFn,
        /// `UnplugBootEmulated`.
        boot_emulated: BootEmulatedFn,
        /// `UnplugReboot`.
        reboot: RebootFn,
    }
}
