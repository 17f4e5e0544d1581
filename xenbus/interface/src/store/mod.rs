//! STORE: xenstore access (`store_interface.h`). Version 2 is the only one the C
//! header still defines.
//!
//! Ownership across the table: `Read` and `Directory` hand the caller a buffer
//! the bus allocated (the value, or NUL-separated child names, followed by two
//! NULs); the caller gives it back with `Free`, exactly once. Transactions and
//! watches are handles the bus allocates in `TransactionStart` / `WatchAdd` and
//! frees in `TransactionEnd` (whatever its result) / `WatchRemove`.

pub mod bus;
pub mod child;

use crate::table::interface_table;
use crate::types::{Boolean, Guid, KEvent, NtStatus, Pcstr, Pinterface, Pstr, opaque};

/// `GUID_XENBUS_STORE_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x8682_4c3b,
    0xd34e,
    0x4753,
    [0xb2, 0x81, 0x2f, 0x1e, 0x3a, 0xd2, 0x14, 0xd7],
);
/// `XENBUS_STORE_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 2;
/// `XENBUS_STORE_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 2;

opaque! {
    /// `XENBUS_STORE_TRANSACTION`: a transaction handle.
    StoreTransaction;
    /// `XENBUS_STORE_WATCH`: a watch handle.
    StoreWatch;
}

/// `XENBUS_STORE_PERM_NONE`.
pub const PERM_NONE: u32 = 0;
/// `XENBUS_STORE_PERM_READ`.
pub const PERM_READ: u32 = 1;
/// `XENBUS_STORE_PERM_WRITE`.
pub const PERM_WRITE: u32 = 2;

/// `XENBUS_STORE_PERMISSION`: one domain's access to a node.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorePermission {
    /// `Domain`.
    pub domain: u16,
    /// `Mask`: `PERM_*` bits.
    pub mask: u32,
}

/// `XENBUS_STORE_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_STORE_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_STORE_FREE`.
pub type FreeFn = Option<unsafe extern "C" fn(interface: Pinterface, buffer: Pstr)>;
/// `XENBUS_STORE_READ`.
pub type ReadFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut StoreTransaction,
        prefix: Pstr,
        node: Pstr,
        buffer: *mut Pstr,
    ) -> NtStatus,
>;
/// `XENBUS_STORE_PRINTF`: variadic, like `printf`.
pub type PrintfFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut StoreTransaction,
        prefix: Pstr,
        node: Pstr,
        format: Pcstr,
        ...
    ) -> NtStatus,
>;
/// `XENBUS_STORE_REMOVE`.
pub type RemoveFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut StoreTransaction,
        prefix: Pstr,
        node: Pstr,
    ) -> NtStatus,
>;
/// `XENBUS_STORE_DIRECTORY`.
pub type DirectoryFn = ReadFn;
/// `XENBUS_STORE_TRANSACTION_START`.
pub type TransactionStartFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut *mut StoreTransaction,
    ) -> NtStatus,
>;
/// `XENBUS_STORE_TRANSACTION_END`: `STATUS_RETRY` on a conflict.
pub type TransactionEndFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut StoreTransaction,
        commit: Boolean,
    ) -> NtStatus,
>;
/// `XENBUS_STORE_WATCH_ADD`.
pub type WatchAddFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        prefix: Pstr,
        node: Pstr,
        event: *mut KEvent,
        watch: *mut *mut StoreWatch,
    ) -> NtStatus,
>;
/// `XENBUS_STORE_WATCH_REMOVE`.
pub type WatchRemoveFn =
    Option<unsafe extern "C" fn(interface: Pinterface, watch: *mut StoreWatch) -> NtStatus>;
/// `XENBUS_STORE_POLL`.
pub type PollFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_STORE_PERMISSIONS_SET`.
pub type PermissionsSetFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        transaction: *mut StoreTransaction,
        prefix: Pstr,
        node: Pstr,
        permissions: *mut StorePermission,
        count: u32,
    ) -> NtStatus,
>;

interface_table! {
    /// `struct _XENBUS_STORE_INTERFACE_V2`.
    StoreInterfaceV2 = (GUID, 2, "STORE") {
        /// `StoreAcquire`.
        acquire: AcquireFn,
        /// `StoreRelease`.
        release: ReleaseFn,
        /// `StoreFree`.
        free: FreeFn,
        /// `StoreRead`.
        read: ReadFn,
        /// `StorePrintf`.
        printf: PrintfFn,
        /// `StorePermissionsSet`.
        permissions_set: PermissionsSetFn,
        /// `StoreRemove`.
        remove: RemoveFn,
        /// `StoreDirectory`.
        directory: DirectoryFn,
        /// `StoreTransactionStart`.
        transaction_start: TransactionStartFn,
        /// `StoreTransactionEnd`.
        transaction_end: TransactionEndFn,
        /// `StoreWatchAdd`.
        watch_add: WatchAddFn,
        /// `StoreWatchRemove`.
        watch_remove: WatchRemoveFn,
        /// `StorePoll`.
        poll: PollFn,
    }
}

pub mod events;

use crate::api::{StoreError, XsError};
use crate::types::{
    STATUS_ACCESS_DENIED, STATUS_DEVICE_NOT_READY, STATUS_DIRECTORY_NOT_EMPTY,
    STATUS_FILE_IS_A_DIRECTORY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE,
    STATUS_INVALID_NETWORK_RESPONSE, STATUS_INVALID_PARAMETER, STATUS_IO_TIMEOUT,
    STATUS_MEDIA_WRITE_PROTECTED, STATUS_NO_MEMORY, STATUS_NOT_IMPLEMENTED,
    STATUS_OBJECT_NAME_INVALID, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_TYPE_MISMATCH,
    STATUS_OBJECTID_EXISTS, STATUS_PIPE_BUSY, STATUS_PIPE_CONNECTED, STATUS_QUOTA_EXCEEDED,
    STATUS_RETRY, STATUS_TOO_MANY_COMMANDS, STATUS_UNEXPECTED_IO_ERROR, STATUS_UNSUCCESSFUL,
};

/// `XENSTORE_PAYLOAD_MAX`: the largest request or reply payload.
pub const PAYLOAD_MAX: usize = 4096;

/// The status the bus returns for a failed store operation. xenstore error
/// names map as the C bus maps them (`ERRNO_TO_STATUS`: `EAGAIN` is
/// `STATUS_RETRY`, `ENOENT` `STATUS_OBJECT_NAME_NOT_FOUND`, unknown names
/// `STATUS_UNSUCCESSFUL`); the client's own failures get statuses of their own.
pub fn status_from_error(error: &StoreError) -> NtStatus {
    match error {
        StoreError::Xs(xs) => match xs {
            XsError::Einval => STATUS_INVALID_PARAMETER,
            XsError::Eacces | XsError::Eperm => STATUS_ACCESS_DENIED,
            XsError::Eexist => STATUS_OBJECTID_EXISTS,
            XsError::Eisdir => STATUS_FILE_IS_A_DIRECTORY,
            XsError::Enoent => STATUS_OBJECT_NAME_NOT_FOUND,
            XsError::Enomem => STATUS_NO_MEMORY,
            XsError::Enospc => STATUS_INSUFFICIENT_RESOURCES,
            XsError::Eio => STATUS_UNEXPECTED_IO_ERROR,
            XsError::Enotempty => STATUS_DIRECTORY_NOT_EMPTY,
            XsError::Enosys => STATUS_NOT_IMPLEMENTED,
            XsError::Erofs => STATUS_MEDIA_WRITE_PROTECTED,
            XsError::Ebusy => STATUS_PIPE_BUSY,
            XsError::Eagain => STATUS_RETRY,
            XsError::Eisconn => STATUS_PIPE_CONNECTED,
            XsError::E2big => STATUS_UNSUCCESSFUL,
        },
        StoreError::InvalidPath => STATUS_OBJECT_NAME_INVALID,
        StoreError::TooLarge { .. } => STATUS_INVALID_BUFFER_SIZE,
        StoreError::Protocol(_) => STATUS_INVALID_NETWORK_RESPONSE,
        StoreError::Timeout => STATUS_IO_TIMEOUT,
        StoreError::Disconnected => STATUS_DEVICE_NOT_READY,
        StoreError::Busy => STATUS_TOO_MANY_COMMANDS,
        StoreError::BadValue => STATUS_OBJECT_TYPE_MISMATCH,
    }
}

/// The error a child sees for a failed status: the inverse of
/// [`status_from_error`] (`access denied` reads back as `EACCES`; a quota
/// failure of the C bus as `ENOSPC`; `len` is the request's payload size, for
/// [`StoreError::TooLarge`]).
pub fn error_from_status(status: NtStatus, len: usize) -> StoreError {
    let xs = |e| StoreError::Xs(e);
    match status {
        STATUS_INVALID_PARAMETER => xs(XsError::Einval),
        STATUS_ACCESS_DENIED => xs(XsError::Eacces),
        STATUS_OBJECTID_EXISTS => xs(XsError::Eexist),
        STATUS_FILE_IS_A_DIRECTORY => xs(XsError::Eisdir),
        STATUS_OBJECT_NAME_NOT_FOUND => xs(XsError::Enoent),
        STATUS_NO_MEMORY => xs(XsError::Enomem),
        STATUS_INSUFFICIENT_RESOURCES | STATUS_QUOTA_EXCEEDED => xs(XsError::Enospc),
        STATUS_UNEXPECTED_IO_ERROR => xs(XsError::Eio),
        STATUS_DIRECTORY_NOT_EMPTY => xs(XsError::Enotempty),
        STATUS_NOT_IMPLEMENTED => xs(XsError::Enosys),
        STATUS_MEDIA_WRITE_PROTECTED => xs(XsError::Erofs),
        STATUS_PIPE_BUSY => xs(XsError::Ebusy),
        STATUS_RETRY => xs(XsError::Eagain),
        STATUS_PIPE_CONNECTED => xs(XsError::Eisconn),
        STATUS_OBJECT_NAME_INVALID => StoreError::InvalidPath,
        STATUS_INVALID_BUFFER_SIZE => StoreError::TooLarge {
            len,
            max: PAYLOAD_MAX,
        },
        STATUS_IO_TIMEOUT => StoreError::Timeout,
        STATUS_DEVICE_NOT_READY => StoreError::Disconnected,
        STATUS_TOO_MANY_COMMANDS => StoreError::Busy,
        STATUS_OBJECT_TYPE_MISMATCH => StoreError::BadValue,
        _ => StoreError::Protocol("the bus failed the request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_survives_the_status_round_trip() {
        let mut errors: alloc::vec::Vec<StoreError> = XsError::ALL
            .iter()
            .filter(|e| !matches!(e, XsError::Eperm | XsError::E2big))
            .map(|&e| StoreError::Xs(e))
            .collect();
        errors.extend([
            StoreError::InvalidPath,
            StoreError::TooLarge {
                len: 5000,
                max: PAYLOAD_MAX,
            },
            StoreError::Timeout,
            StoreError::Disconnected,
            StoreError::Busy,
            StoreError::BadValue,
        ]);
        for error in errors {
            let status = status_from_error(&error);
            assert!(!status.is_success(), "{error:?}");
            assert_eq!(error_from_status(status, 5000), error);
        }
        // The two the C mapping folds: EPERM reads back as EACCES, E2BIG as a failure.
        assert_eq!(
            error_from_status(status_from_error(&StoreError::Xs(XsError::Eperm)), 0),
            StoreError::Xs(XsError::Eacces)
        );
        assert_eq!(
            status_from_error(&StoreError::Xs(XsError::E2big)),
            STATUS_UNSUCCESSFUL
        );
        assert_eq!(
            status_from_error(&StoreError::Xs(XsError::Eagain)),
            STATUS_RETRY
        );
    }
}
