//! XENFILT EMULATED: which emulated devices are present
//! (`emulated_interface.h`), versions 1 to 3. Served by XENFILT (XENBUS passes
//! the query down to it); unlike the others its presence methods take the
//! `Context`, not the header.

use crate::table::interface_table;
use crate::types::{Boolean, Guid, NtStatus, Pinterface, Pstr, Pvoid};

/// `GUID_XENFILT_EMULATED_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x9590_27a1,
    0xfcce,
    0x4e78,
    [0xbc, 0xf4, 0x63, 0x73, 0x84, 0xf4, 0x99, 0xc5],
);
/// `XENFILT_EMULATED_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENFILT_EMULATED_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 3;

/// `XENBUS_EMULATED_ACTIVATE_NEUTRAL`.
pub const ACTIVATE_NEUTRAL: u32 = 0;
/// `XENBUS_EMULATED_FORCE_ACTIVATED`.
pub const FORCE_ACTIVATED: u32 = 1;
/// `XENBUS_EMULATED_FORCE_DEACTIVATED`.
pub const FORCE_DEACTIVATED: u32 = 2;

/// `XENFILT_EMULATED_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENFILT_EMULATED_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENFILT_EMULATED_IS_DEVICE_PRESENT_V1` (versions 1 and 2).
pub type IsDevicePresentV1Fn =
    Option<unsafe extern "C" fn(context: Pvoid, device_id: Pstr, instance_id: Pstr) -> Boolean>;
/// `XENFILT_EMULATED_IS_DEVICE_PRESENT` (version 3): also says whether the
/// device was forced on or off (`ACTIVATE_*` / `FORCE_*`).
pub type IsDevicePresentFn = Option<
    unsafe extern "C" fn(
        context: Pvoid,
        device_id: Pstr,
        instance_id: Pstr,
        is_force_activated: *mut u32,
    ) -> Boolean,
>;
/// `XENFILT_EMULATED_IS_DISK_PRESENT_V1` (version 1).
pub type IsDiskPresentV1Fn =
    Option<unsafe extern "C" fn(context: Pvoid, controller: u32, target: u32, lun: u32) -> Boolean>;
/// `XENFILT_EMULATED_IS_DISK_PRESENT` (versions 2 and 3).
pub type IsDiskPresentFn = Option<unsafe extern "C" fn(context: Pvoid, index: u32) -> Boolean>;

interface_table! {
    /// `struct _XENFILT_EMULATED_INTERFACE_V1`.
    EmulatedInterfaceV1 = (GUID, 1, "EMULATED") {
        /// `EmulatedAcquire`.
        acquire: AcquireFn,
        /// `EmulatedRelease`.
        release: ReleaseFn,
        /// `EmulatedIsDevicePresentVersion1`.
        is_device_present_v1: IsDevicePresentV1Fn,
        /// `EmulatedIsDiskPresentVersion1`.
        is_disk_present_v1: IsDiskPresentV1Fn,
    }
}

interface_table! {
    /// `struct _XENFILT_EMULATED_INTERFACE_V2`.
    EmulatedInterfaceV2 = (GUID, 2, "EMULATED") {
        /// `EmulatedAcquire`.
        acquire: AcquireFn,
        /// `EmulatedRelease`.
        release: ReleaseFn,
        /// `EmulatedIsDevicePresentVersion1`.
        is_device_present_v1: IsDevicePresentV1Fn,
        /// `EmulatedIsDiskPresent`.
        is_disk_present: IsDiskPresentFn,
    }
}

interface_table! {
    /// `struct _XENFILT_EMULATED_INTERFACE_V3`.
    EmulatedInterfaceV3 = (GUID, 3, "EMULATED") {
        /// `EmulatedAcquire`.
        acquire: AcquireFn,
        /// `EmulatedRelease`.
        release: ReleaseFn,
        /// `EmulatedIsDevicePresent`.
        is_device_present: IsDevicePresentFn,
        /// `EmulatedIsDiskPresent`.
        is_disk_present: IsDiskPresentFn,
    }
}
