//! SHARED_INFO: the shared info page's event and time fields
//! (`shared_info_interface.h`), versions 2 to 4.

use crate::table::interface_table;
use crate::types::{Boolean, Guid, LargeInteger, NtStatus, Pinterface, Pvoid};

/// `GUID_XENBUS_SHARED_INFO_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x7e73_c34f,
    0x1640,
    0x4649,
    [0xa8, 0xf3, 0x26, 0x3b, 0xc9, 0x30, 0xa0, 0x04],
);
/// `XENBUS_SHARED_INFO_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 2;
/// `XENBUS_SHARED_INFO_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 4;

/// `XENBUS_SHARED_INFO_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_SHARED_INFO_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_SHARED_INFO_UPCALL_SUPPORTED` / `_UPCALL_PENDING`: per vCPU index.
pub type UpcallFn = Option<unsafe extern "C" fn(interface: Pinterface, index: u32) -> Boolean>;
/// `XENBUS_SHARED_INFO_EVENT`: called for each pending port during a poll.
pub type EventFn = Option<unsafe extern "C" fn(argument: Pvoid, port: u32) -> Boolean>;
/// `XENBUS_SHARED_INFO_EVTCHN_POLL`.
pub type EvtchnPollFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        index: u32,
        event: EventFn,
        argument: Pvoid,
    ) -> Boolean,
>;
/// `XENBUS_SHARED_INFO_EVTCHN_ACK` / `_MASK`.
pub type EvtchnPortFn = Option<unsafe extern "C" fn(interface: Pinterface, port: u32)>;
/// `XENBUS_SHARED_INFO_EVTCHN_UNMASK`.
pub type EvtchnUnmaskFn = Option<unsafe extern "C" fn(interface: Pinterface, port: u32) -> Boolean>;
/// `XENBUS_SHARED_INFO_GET_TIME_V2` (version 2).
pub type GetTimeV2Fn = Option<unsafe extern "C" fn(interface: Pinterface) -> LargeInteger>;
/// `XENBUS_SHARED_INFO_GET_TIME` (versions 3 and 4): the wall clock, and
/// whether it is local time.
pub type GetTimeFn = Option<
    unsafe extern "C" fn(interface: Pinterface, time: *mut LargeInteger, local: *mut Boolean),
>;

interface_table! {
    /// `struct _XENBUS_SHARED_INFO_INTERFACE_V2`.
    SharedInfoInterfaceV2 = (GUID, 2, "SHARED_INFO") {
        /// `SharedInfoAcquire`.
        acquire: AcquireFn,
        /// `SharedInfoRelease`.
        release: ReleaseFn,
        /// `SharedInfoUpcallPending`.
        upcall_pending: UpcallFn,
        /// `SharedInfoEvtchnPoll`.
        evtchn_poll: EvtchnPollFn,
        /// `SharedInfoEvtchnAck`.
        evtchn_ack: EvtchnPortFn,
        /// `SharedInfoEvtchnMask`.
        evtchn_mask: EvtchnPortFn,
        /// `SharedInfoEvtchnUnmask`.
        evtchn_unmask: EvtchnUnmaskFn,
        /// `SharedInfoGetTimeVersion2`.
        get_time_v2: GetTimeV2Fn,
    }
}

interface_table! {
    /// `struct _XENBUS_SHARED_INFO_INTERFACE_V3`.
    SharedInfoInterfaceV3 = (GUID, 3, "SHARED_INFO") {
        /// `SharedInfoAcquire`.
        acquire: AcquireFn,
        /// `SharedInfoRelease`.
        release: ReleaseFn,
        /// `SharedInfoUpcallPending`.
        upcall_pending: UpcallFn,
        /// `SharedInfoEvtchnPoll`.
        evtchn_poll: EvtchnPollFn,
        /// `SharedInfoEvtchnAck`.
        evtchn_ack: EvtchnPortFn,
        /// `SharedInfoEvtchnMask`.
        evtchn_mask: EvtchnPortFn,
        /// `SharedInfoEvtchnUnmask`.
        evtchn_unmask: EvtchnUnmaskFn,
        /// `SharedInfoGetTime`.
        get_time: GetTimeFn,
    }
}

interface_table! {
    /// `struct _XENBUS_SHARED_INFO_INTERFACE_V4`.
    SharedInfoInterfaceV4 = (GUID, 4, "SHARED_INFO") {
        /// `SharedInfoAcquire`.
        acquire: AcquireFn,
        /// `SharedInfoRelease`.
        release: ReleaseFn,
        /// `SharedInfoUpcallSupported`.
        upcall_supported: UpcallFn,
        /// `SharedInfoUpcallPending`.
        upcall_pending: UpcallFn,
        /// `SharedInfoEvtchnPoll`.
        evtchn_poll: EvtchnPollFn,
        /// `SharedInfoEvtchnAck`.
        evtchn_ack: EvtchnPortFn,
        /// `SharedInfoEvtchnMask`.
        evtchn_mask: EvtchnPortFn,
        /// `SharedInfoEvtchnUnmask`.
        evtchn_unmask: EvtchnUnmaskFn,
        /// `SharedInfoGetTime`.
        get_time: GetTimeFn,
    }
}
