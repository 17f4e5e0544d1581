//! GNTTAB: grant tables (`gnttab_interface.h`), versions 2 to 4.
//!
//! A child first creates a cache (the bus's pool of grant entries, guarded by
//! the child's own lock through `AcquireLock` / `ReleaseLock`), then permits
//! and revokes foreign access to frames through it. An entry handle belongs to
//! the bus; it stays valid until a successful `RevokeForeignAccess`. A revoke
//! that fails (`STATUS_UNSUCCESSFUL`: the remote end still maps the page) leaves
//! the entry, and the page, in place.

pub mod bus;
pub mod child;

use crate::cache::{AcquireLockFn, ReleaseLockFn};
use crate::table::interface_table;
use crate::types::{
    Boolean, Guid, LargeInteger, NtStatus, Pcstr, PfnNumber, Pinterface, Pvoid, opaque,
};

/// `GUID_XENBUS_GNTTAB_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0x7636_79c5,
    0xe5c2,
    0x4a6d,
    [0x8b, 0x88, 0x6b, 0xb0, 0x2e, 0xc4, 0x2d, 0x8e],
);
/// `XENBUS_GNTTAB_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 2;
/// `XENBUS_GNTTAB_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 4;
/// `XENBUS_GNTTAB_CONSOLE_REFERENCE`: the reserved reference of the console ring.
pub const CONSOLE_REFERENCE: u32 = 0;
/// `XENBUS_GNTTAB_STORE_REFERENCE`: the reserved reference of the xenstore ring.
pub const STORE_REFERENCE: u32 = 1;

opaque! {
    /// `XENBUS_GNTTAB_ENTRY`: one granted frame.
    GnttabEntry;
    /// `XENBUS_GNTTAB_CACHE`: a pool of grant entries.
    GnttabCache;
}

/// `XENBUS_GNTTAB_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_GNTTAB_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_GNTTAB_CREATE_CACHE_V1` (versions 2 and 3).
pub type CreateCacheV1Fn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        name: Pcstr,
        reservation: u32,
        acquire_lock: AcquireLockFn,
        release_lock: ReleaseLockFn,
        argument: Pvoid,
        cache: *mut *mut GnttabCache,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_CREATE_CACHE` (version 4): `cap` bounds the entries (0: no bound).
pub type CreateCacheFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        name: Pcstr,
        reservation: u32,
        cap: u32,
        acquire_lock: AcquireLockFn,
        release_lock: ReleaseLockFn,
        argument: Pvoid,
        cache: *mut *mut GnttabCache,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_PERMIT_FOREIGN_ACCESS`.
pub type PermitForeignAccessFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        cache: *mut GnttabCache,
        locked: Boolean,
        domain: u16,
        pfn: PfnNumber,
        read_only: Boolean,
        entry: *mut *mut GnttabEntry,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_REVOKE_FOREIGN_ACCESS`.
pub type RevokeForeignAccessFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        cache: *mut GnttabCache,
        locked: Boolean,
        entry: *mut GnttabEntry,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_GET_REFERENCE`.
pub type GetReferenceFn =
    Option<unsafe extern "C" fn(interface: Pinterface, entry: *mut GnttabEntry) -> u32>;
/// `XENBUS_GNTTAB_QUERY_REFERENCE` (versions 3 and 4).
pub type QueryReferenceFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        reference: u32,
        pfn: *mut PfnNumber,
        read_only: *mut Boolean,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_DESTROY_CACHE`.
pub type DestroyCacheFn =
    Option<unsafe extern "C" fn(interface: Pinterface, cache: *mut GnttabCache)>;
/// `XENBUS_GNTTAB_MAP_FOREIGN_PAGES`.
pub type MapForeignPagesFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        domain: u16,
        number_pages: u32,
        references: *mut u32,
        read_only: Boolean,
        address: *mut LargeInteger,
    ) -> NtStatus,
>;
/// `XENBUS_GNTTAB_UNMAP_FOREIGN_PAGES`.
pub type UnmapForeignPagesFn =
    Option<unsafe extern "C" fn(interface: Pinterface, address: LargeInteger) -> NtStatus>;

interface_table! {
    /// `struct _XENBUS_GNTTAB_INTERFACE_V2`.
    GnttabInterfaceV2 = (GUID, 2, "GNTTAB") {
        /// `GnttabAcquire`.
        acquire: AcquireFn,
        /// `GnttabRelease`.
        release: ReleaseFn,
        /// `GnttabCreateCacheVersion1`.
        create_cache_v1: CreateCacheV1Fn,
        /// `GnttabPermitForeignAccess`.
        permit_foreign_access: PermitForeignAccessFn,
        /// `GnttabRevokeForeignAccess`.
        revoke_foreign_access: RevokeForeignAccessFn,
        /// `GnttabGetReference`.
        get_reference: GetReferenceFn,
        /// `GnttabDestroyCache`.
        destroy_cache: DestroyCacheFn,
        /// `GnttabMapForeignPages`.
        map_foreign_pages: MapForeignPagesFn,
        /// `GnttabUnmapForeignPages`.
        unmap_foreign_pages: UnmapForeignPagesFn,
    }
}

interface_table! {
    /// `struct _XENBUS_GNTTAB_INTERFACE_V3`.
    GnttabInterfaceV3 = (GUID, 3, "GNTTAB") {
        /// `GnttabAcquire`.
        acquire: AcquireFn,
        /// `GnttabRelease`.
        release: ReleaseFn,
        /// `GnttabCreateCacheVersion1`.
        create_cache_v1: CreateCacheV1Fn,
        /// `GnttabPermitForeignAccess`.
        permit_foreign_access: PermitForeignAccessFn,
        /// `GnttabRevokeForeignAccess`.
        revoke_foreign_access: RevokeForeignAccessFn,
        /// `GnttabGetReference`.
        get_reference: GetReferenceFn,
        /// `GnttabQueryReference`.
        query_reference: QueryReferenceFn,
        /// `GnttabDestroyCache`.
        destroy_cache: DestroyCacheFn,
        /// `GnttabMapForeignPages`.
        map_foreign_pages: MapForeignPagesFn,
        /// `GnttabUnmapForeignPages`.
        unmap_foreign_pages: UnmapForeignPagesFn,
    }
}

interface_table! {
    /// `struct _XENBUS_GNTTAB_INTERFACE_V4`.
    GnttabInterfaceV4 = (GUID, 4, "GNTTAB") {
        /// `GnttabAcquire`.
        acquire: AcquireFn,
        /// `GnttabRelease`.
        release: ReleaseFn,
        /// `GnttabCreateCache`.
        create_cache: CreateCacheFn,
        /// `GnttabPermitForeignAccess`.
        permit_foreign_access: PermitForeignAccessFn,
        /// `GnttabRevokeForeignAccess`.
        revoke_foreign_access: RevokeForeignAccessFn,
        /// `GnttabGetReference`.
        get_reference: GetReferenceFn,
        /// `GnttabQueryReference`.
        query_reference: QueryReferenceFn,
        /// `GnttabDestroyCache`.
        destroy_cache: DestroyCacheFn,
        /// `GnttabMapForeignPages`.
        map_foreign_pages: MapForeignPagesFn,
        /// `GnttabUnmapForeignPages`.
        unmap_foreign_pages: UnmapForeignPagesFn,
    }
}
