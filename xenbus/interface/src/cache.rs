//! CACHE: object caches (`cache_interface.h`), versions 1 and 2.

use crate::table::interface_table;
use crate::types::{Boolean, Guid, NtStatus, Pcstr, Pinterface, Pvoid, opaque};

/// `GUID_XENBUS_CACHE_INTERFACE`.
pub const GUID: Guid = Guid::new(
    0xa98d_fd78,
    0x416a,
    0x4949,
    [0x92, 0xa5, 0xe0, 0x84, 0xf2, 0xf4, 0xb4, 0x4e],
);
/// `XENBUS_CACHE_INTERFACE_VERSION_MIN`.
pub const VERSION_MIN: u16 = 1;
/// `XENBUS_CACHE_INTERFACE_VERSION_MAX`.
pub const VERSION_MAX: u16 = 2;

opaque! {
    /// `XENBUS_CACHE`: an object cache.
    Cache;
}

/// `XENBUS_CACHE_ACQUIRE`.
pub type AcquireFn = Option<unsafe extern "C" fn(interface: Pinterface) -> NtStatus>;
/// `XENBUS_CACHE_RELEASE`.
pub type ReleaseFn = Option<unsafe extern "C" fn(interface: Pinterface)>;
/// `XENBUS_CACHE_CTOR`.
pub type CtorFn = Option<unsafe extern "C" fn(argument: Pvoid, object: Pvoid) -> NtStatus>;
/// `XENBUS_CACHE_DTOR`.
pub type DtorFn = Option<unsafe extern "C" fn(argument: Pvoid, object: Pvoid)>;
/// `XENBUS_CACHE_ACQUIRE_LOCK`: the creator's lock around cache operations.
pub type AcquireLockFn = Option<unsafe extern "C" fn(argument: Pvoid)>;
/// `XENBUS_CACHE_RELEASE_LOCK`.
pub type ReleaseLockFn = Option<unsafe extern "C" fn(argument: Pvoid)>;
/// `XENBUS_CACHE_CREATE_V1` (version 1).
pub type CreateV1Fn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        name: Pcstr,
        size: u32,
        reservation: u32,
        ctor: CtorFn,
        dtor: DtorFn,
        acquire_lock: AcquireLockFn,
        release_lock: ReleaseLockFn,
        argument: Pvoid,
        cache: *mut *mut Cache,
    ) -> NtStatus,
>;
/// `XENBUS_CACHE_CREATE` (version 2): `cap` bounds the objects (0: no bound).
pub type CreateFn = Option<
    unsafe extern "C" fn(
        interface: Pinterface,
        name: Pcstr,
        size: u32,
        reservation: u32,
        cap: u32,
        ctor: CtorFn,
        dtor: DtorFn,
        acquire_lock: AcquireLockFn,
        release_lock: ReleaseLockFn,
        argument: Pvoid,
        cache: *mut *mut Cache,
    ) -> NtStatus,
>;
/// `XENBUS_CACHE_GET`: an object, or null.
pub type GetFn = Option<
    unsafe extern "C" fn(interface: Pinterface, cache: *mut Cache, locked: Boolean) -> Pvoid,
>;
/// `XENBUS_CACHE_PUT`.
pub type PutFn = Option<
    unsafe extern "C" fn(interface: Pinterface, cache: *mut Cache, object: Pvoid, locked: Boolean),
>;
/// `XENBUS_CACHE_DESTROY`.
pub type DestroyFn = Option<unsafe extern "C" fn(interface: Pinterface, cache: *mut Cache)>;

interface_table! {
    /// `struct _XENBUS_CACHE_INTERFACE_V1`.
    CacheInterfaceV1 = (GUID, 1, "CACHE") {
        /// `CacheAcquire`.
        acquire: AcquireFn,
        /// `CacheRelease`.
        release: ReleaseFn,
        /// `CacheCreateVersion1`.
        create_v1: CreateV1Fn,
        /// `CacheGet`.
        get: GetFn,
        /// `CachePut`.
        put: PutFn,
        /// `CacheDestroy`.
        destroy: DestroyFn,
    }
}

interface_table! {
    /// `struct _XENBUS_CACHE_INTERFACE_V2`.
    CacheInterfaceV2 = (GUID, 2, "CACHE") {
        /// `CacheAcquire`.
        acquire: AcquireFn,
        /// `CacheRelease`.
        release: ReleaseFn,
        /// `CacheCreate`.
        create: CreateFn,
        /// `CacheGet`.
        get: GetFn,
        /// `CachePut`.
        put: PutFn,
        /// `CacheDestroy`.
        destroy: DestroyFn,
    }
}
