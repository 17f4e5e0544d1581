//! EVTCHN: event channels (`evtchn_interface.h`), versions 5 to 9.
//!
//! `Open` is variadic: after the callback and its argument come the
//! type's own parameters (C default promotions: each is passed as an `int`):
//! * `TYPE_FIXED`: local port, mask-before-callback flag;
//! * `TYPE_UNBOUND`: remote domain, mask flag;
//! * `TYPE_INTER_DOMAIN`: remote domain, remote port, mask flag;
//! * `TYPE_VIRQ`: VIRQ index, CPU group, CPU number.
//!
//! The channel handle `Open` returns (null on failure) belongs to the bus until
//! the child gives it back with `Close`.

pub mod bus;
pub mod child;

use crate::table::interface_table;
use crate::types::{
    Boolean, Guid, KServiceRoutine, LargeInteger, NtStatus, Pinterface, Pvoid, opaque,
};

/// `GUID_XENBUS_EVTCHN_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0xbe24_40ac,
    0x1098,
    0x4150,
    [0xaf, 0x4d, 0x45, 0x2f, 0xad, 0xce, 0xf9, 0x23],
);
/// `XENBUS_EVTCHN_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 5;
/// `XENBUS_EVTCHN_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 9;

/// `XENBUS_EVTCHN_TYPE_INVALID`.
pub const TYPE_INVALID: u32 = 0;
/// `XENBUS_EVTCHN_TYPE_FIXED`: an already bound local port.
pub const TYPE_FIXED: u32 = 1;
/// `XENBUS_EVTCHN_TYPE_UNBOUND`: a new port a remote domain may bind to.
pub const TYPE_UNBOUND: u32 = 2;
/// `XENBUS_EVTCHN_TYPE_INTER_DOMAIN`: bind to a remote domain's port.
pub const TYPE_INTER_DOMAIN: u32 = 3;
/// `XENBUS_EVTCHN_TYPE_VIRQ`: a virtual IRQ.
pub const TYPE_VIRQ: u32 = 4;

opaque! {
    /// `XENBUS_EVTCHN_CHANNEL`: an open channel.
    EvtchnChannel;
}

/// `XENBUS_EVTCHN_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_EVTCHN_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_EVTCHN_OPEN` (variadic, see the module docs).
pub type OpenFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        kind: u32,
        function: KServiceRoutine,
        argument: Pvoid,
        ...
    ) -> *mut EvtchnChannel,
>;
/// `XENBUS_EVTCHN_BIND`: moves delivery to CPU (`group`, `number`).
pub type BindFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        channel: *mut EvtchnChannel,
        group: u16,
        number: u8,
    ) -> NtStatus,
>;
/// `XENBUS_EVTCHN_UNMASK_V4` (versions 5 to 7).
pub type UnmaskV4Fn = Option<
    unsafe extern "C" fn(interface: Pinterface, channel: *mut EvtchnChannel, in_callback: Boolean),
>;
/// `XENBUS_EVTCHN_UNMASK` (versions 8 and 9): without `force`, returns TRUE if
/// an event is still pending and the channel stayed masked.
pub type UnmaskFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        channel: *mut EvtchnChannel,
        in_callback: Boolean,
        force: Boolean,
    ) -> Boolean,
>;
/// `XENBUS_EVTCHN_SEND` (and `SEND_V1`, same signature): notify the remote end.
pub type SendFn = Option<unsafe extern "C" fn(interface: Pinterface, channel: *mut EvtchnChannel)>;
/// `XENBUS_EVTCHN_TRIGGER`: raise the event locally.
pub type TriggerFn = SendFn;
/// `XENBUS_EVTCHN_GET_COUNT`: events received since open.
pub type GetCountFn =
    Option<unsafe extern "C" fn(interface: Pinterface, channel: *mut EvtchnChannel) -> u32>;
/// `XENBUS_EVTCHN_WAIT_V5` (versions 5 and 6).
pub type WaitV5Fn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        channel: *mut EvtchnChannel,
        timeout: *mut LargeInteger,
    ) -> NtStatus,
>;
/// `XENBUS_EVTCHN_WAIT` (versions 7 to 9): wait until the event count reaches `count`.
pub type WaitFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        channel: *mut EvtchnChannel,
        count: u32,
        timeout: *mut LargeInteger,
    ) -> NtStatus,
>;
/// `XENBUS_EVTCHN_GET_PORT`.
pub type GetPortFn = GetCountFn;
/// `XENBUS_EVTCHN_CLOSE`.
pub type CloseFn = SendFn;

interface_table! {
    /// `struct _XENBUS_EVTCHN_INTERFACE_V5`.
    EvtchnInterfaceV5 = (GUID, 5, "EVTCHN") {
        /// `EvtchnAcquire`.
        acquire: AcquireFn,
        /// `EvtchnRelease`.
        release: ReleaseFn,
        /// `EvtchnOpen`.
        open: OpenFn,
        /// `EvtchnBind`.
        bind: BindFn,
        /// `EvtchnUnmaskVersion4`.
        unmask_v4: UnmaskV4Fn,
        /// `EvtchnSendVersion1`.
        send_v1: SendFn,
        /// `EvtchnTrigger`.
        trigger: TriggerFn,
        /// `EvtchnWaitVersion5`.
        wait_v5: WaitV5Fn,
        /// `EvtchnGetPort`.
        get_port: GetPortFn,
        /// `EvtchnClose`.
        close: CloseFn,
    }
}

interface_table! {
    /// `struct _XENBUS_EVTCHN_INTERFACE_V6`.
    EvtchnInterfaceV6 = (GUID, 6, "EVTCHN") {
        /// `EvtchnAcquire`.
        acquire: AcquireFn,
        /// `EvtchnRelease`.
        release: ReleaseFn,
        /// `EvtchnOpen`.
        open: OpenFn,
        /// `EvtchnBind`.
        bind: BindFn,
        /// `EvtchnUnmaskVersion4`.
        unmask_v4: UnmaskV4Fn,
        /// `EvtchnSend`.
        send: SendFn,
        /// `EvtchnTrigger`.
        trigger: TriggerFn,
        /// `EvtchnWaitVersion5`.
        wait_v5: WaitV5Fn,
        /// `EvtchnGetPort`.
        get_port: GetPortFn,
        /// `EvtchnClose`.
        close: CloseFn,
    }
}

interface_table! {
    /// `struct _XENBUS_EVTCHN_INTERFACE_V7`.
    EvtchnInterfaceV7 = (GUID, 7, "EVTCHN") {
        /// `EvtchnAcquire`.
        acquire: AcquireFn,
        /// `EvtchnRelease`.
        release: ReleaseFn,
        /// `EvtchnOpen`.
        open: OpenFn,
        /// `EvtchnBind`.
        bind: BindFn,
        /// `EvtchnUnmaskVersion4`.
        unmask_v4: UnmaskV4Fn,
        /// `EvtchnSend`.
        send: SendFn,
        /// `EvtchnTrigger`.
        trigger: TriggerFn,
        /// `EvtchnGetCount`.
        get_count: GetCountFn,
        /// `EvtchnWait`.
        wait: WaitFn,
        /// `EvtchnGetPort`.
        get_port: GetPortFn,
        /// `EvtchnClose`.
        close: CloseFn,
    }
}

interface_table! {
    /// `struct _XENBUS_EVTCHN_INTERFACE_V8`.
    EvtchnInterfaceV8 = (GUID, 8, "EVTCHN") {
        /// `EvtchnAcquire`.
        acquire: AcquireFn,
        /// `EvtchnRelease`.
        release: ReleaseFn,
        /// `EvtchnOpen`.
        open: OpenFn,
        /// `EvtchnBind`.
        bind: BindFn,
        /// `EvtchnUnmask`.
        unmask: UnmaskFn,
        /// `EvtchnSend`.
        send: SendFn,
        /// `EvtchnTrigger`.
        trigger: TriggerFn,
        /// `EvtchnGetCount`.
        get_count: GetCountFn,
        /// `EvtchnWait`.
        wait: WaitFn,
        /// `EvtchnGetPort`.
        get_port: GetPortFn,
        /// `EvtchnClose`.
        close: CloseFn,
    }
}

interface_table! {
    /// `struct _XENBUS_EVTCHN_INTERFACE_V9` (same members as version 8; the
    /// version records a change of behaviour, not of layout).
    EvtchnInterfaceV9 = (GUID, 9, "EVTCHN") {
        /// `EvtchnAcquire`.
        acquire: AcquireFn,
        /// `EvtchnRelease`.
        release: ReleaseFn,
        /// `EvtchnOpen`.
        open: OpenFn,
        /// `EvtchnBind`.
        bind: BindFn,
        /// `EvtchnUnmask`.
        unmask: UnmaskFn,
        /// `EvtchnSend`.
        send: SendFn,
        /// `EvtchnTrigger`.
        trigger: TriggerFn,
        /// `EvtchnGetCount`.
        get_count: GetCountFn,
        /// `EvtchnWait`.
        wait: WaitFn,
        /// `EvtchnGetPort`.
        get_port: GetPortFn,
        /// `EvtchnClose`.
        close: CloseFn,
    }
}
