//! RANGE_SET: sets of integer ranges (`range_set_interface.h`), version 1.

use crate::table::interface_table;
use crate::types::{Guid, NtStatus, Pcstr, Pinterface, opaque};

/// `GUID_XENBUS_RANGE_SET_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0xee7e_78a2,
    0x6847,
    0x48c5,
    [0xb1, 0x23, 0xbb, 0x01, 0x2f, 0x0e, 0xab, 0xf4],
);
/// `XENBUS_RANGE_SET_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_RANGE_SET_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 1;

opaque! {
    /// `XENBUS_RANGE_SET`: a set of ranges.
    RangeSet;
}

/// `XENBUS_RANGE_SET_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_RANGE_SET_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_RANGE_SET_CREATE`.
pub type CreateFn = Option<
    unsafe extern "C" fn(interface: Pinterface, name: Pcstr, set: *mut *mut RangeSet) -> NtStatus,
>;
/// `XENBUS_RANGE_SET_PUT` / `_GET`: add or take out `count` items from `start`.
pub type RangeFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        set: *mut RangeSet,
        start: i64,
        count: u64,
    ) -> NtStatus,
>;
/// `XENBUS_RANGE_SET_POP`: take out any `count` consecutive items.
pub type PopFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        set: *mut RangeSet,
        count: u64,
        start: *mut i64,
    ) -> NtStatus,
>;
/// `XENBUS_RANGE_SET_DESTROY`.
pub type DestroyFn = Option<unsafe extern "C" fn(interface: Pinterface, set: *mut RangeSet)>;

interface_table! {
    /// `struct _XENBUS_RANGE_SET_INTERFACE_V1`.
    RangeSetInterfaceV1 = (GUID, 1, "RANGE_SET") {
        /// `RangeSetAcquire`.
        acquire: AcquireFn,
        /// `RangeSetRelease`.
        release: ReleaseFn,
        /// `RangeSetCreate`.
        create: CreateFn,
        /// `RangeSetPut`.
        put: RangeFn,
        /// `RangeSetPop`.
        pop: PopFn,
        /// `RangeSetGet`.
        get: RangeFn,
        /// `RangeSetDestroy`.
        destroy: DestroyFn,
    }
}
