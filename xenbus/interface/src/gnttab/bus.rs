//! Serving GNTTAB (versions 2 to 4) from any [`GrantTable`] implementation.
//!
//! Caches are bookkeeping here (the trait hands out references itself): a
//! cache records its cap and entries; the child's lock callbacks are not
//! needed because the provider locks its own state. `QueryReference` and
//! foreign mapping are not offered by the trait: `STATUS_NOT_SUPPORTED`.
//!
//! `PermitForeignAccess` allocates a small record per grant (and a map node):
//! right for the rig and tests; a Windows XENBUS serving DISPATCH_LEVEL
//! callers should pre-allocate entries per cache (up to its cap) instead.

use super::{GnttabCache, GnttabEntry, GnttabInterfaceV2, GnttabInterfaceV3, GnttabInterfaceV4};
use crate::api::{DomId, GrantError, GrantRef, GrantTable, Pfn};
use crate::cache::{AcquireLockFn, ReleaseLockFn};
use crate::serve::{self, References, ServeInterface, served_header, write_table};
use crate::types::{
    Boolean, Guid, Interface, LargeInteger, NtStatus, Pcstr, PfnNumber, Pinterface, Pvoid,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    STATUS_UNSUCCESSFUL,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use core::fmt;
use core::ops::RangeInclusive;

/// Serves GNTTAB from `G`.
pub struct GnttabProvider<G: GrantTable + Sync> {
    context: serve::Owned<Context<G>>,
}

#[repr(C)]
struct Context<G> {
    refs: References,
    gnttab: G,
    state: spin::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Caches by handle address: (cap, entries).
    caches: BTreeMap<usize, Box<BusCache>>,
    /// Entries by handle address.
    entries: BTreeMap<usize, Box<BusEntry>>,
}

struct BusCache {
    cap: u32,
    entries: u32,
}

struct BusEntry {
    cache: usize,
    gref: GrantRef,
}

impl<G: GrantTable + Sync> GnttabProvider<G> {
    /// A provider serving `gnttab`.
    pub fn new(gnttab: G) -> Self {
        Self {
            context: serve::Owned::new(Context {
                refs: References::default(),
                gnttab,
                state: spin::Mutex::new(State::default()),
            }),
        }
    }

    /// The implementation served.
    pub fn gnttab(&self) -> &G {
        &self.context.gnttab
    }

    /// (caches, entries) children hold.
    pub fn outstanding(&self) -> (usize, usize) {
        let state = self.context.state.lock();
        (state.caches.len(), state.entries.len())
    }
}

impl<G: GrantTable + Sync> fmt::Debug for GnttabProvider<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GnttabProvider")
            .field("references", &self.context.refs)
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

// SAFETY: shared state is `G: Sync` and a spin-locked map of owned boxes.
unsafe impl<G: GrantTable + Sync> Sync for GnttabProvider<G> {}
// SAFETY: the boxed context moves with the provider.
unsafe impl<G: GrantTable + Sync + Send> Send for GnttabProvider<G> {}

impl<G: GrantTable + Sync> ServeInterface for GnttabProvider<G> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        let context = self.context.as_context();
        match version {
            2 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table_v2::<G>(context), buffer, size) }
            }
            3 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table_v3::<G>(context), buffer, size) }
            }
            4 => {
                // SAFETY: the caller's guarantee about `buffer`.
                unsafe { write_table(table_v4::<G>(context), buffer, size) }
            }
            _ => STATUS_NOT_SUPPORTED,
        }
    }

    fn references(&self) -> &References {
        &self.context.refs
    }
}

fn table_v2<G: GrantTable>(context: Pvoid) -> GnttabInterfaceV2 {
    GnttabInterfaceV2 {
        header: served_header::<GnttabInterfaceV2>(context),
        acquire: Some(serve::acquire),
        release: Some(serve::release),
        create_cache_v1: Some(create_cache_v1::<G>),
        permit_foreign_access: Some(permit::<G>),
        revoke_foreign_access: Some(revoke::<G>),
        get_reference: Some(get_reference::<G>),
        destroy_cache: Some(destroy_cache::<G>),
        map_foreign_pages: Some(map_foreign_pages),
        unmap_foreign_pages: Some(unmap_foreign_pages),
    }
}

fn table_v3<G: GrantTable>(context: Pvoid) -> GnttabInterfaceV3 {
    GnttabInterfaceV3 {
        header: served_header::<GnttabInterfaceV3>(context),
        acquire: Some(serve::acquire),
        release: Some(serve::release),
        create_cache_v1: Some(create_cache_v1::<G>),
        permit_foreign_access: Some(permit::<G>),
        revoke_foreign_access: Some(revoke::<G>),
        get_reference: Some(get_reference::<G>),
        query_reference: Some(query_reference),
        destroy_cache: Some(destroy_cache::<G>),
        map_foreign_pages: Some(map_foreign_pages),
        unmap_foreign_pages: Some(unmap_foreign_pages),
    }
}

fn table_v4<G: GrantTable>(context: Pvoid) -> GnttabInterfaceV4 {
    GnttabInterfaceV4 {
        header: served_header::<GnttabInterfaceV4>(context),
        acquire: Some(serve::acquire),
        release: Some(serve::release),
        create_cache: Some(create_cache::<G>),
        permit_foreign_access: Some(permit::<G>),
        revoke_foreign_access: Some(revoke::<G>),
        get_reference: Some(get_reference::<G>),
        query_reference: Some(query_reference),
        destroy_cache: Some(destroy_cache::<G>),
        map_foreign_pages: Some(map_foreign_pages),
        unmap_foreign_pages: Some(unmap_foreign_pages),
    }
}

/// # Safety
/// `interface` is the header of a table this module served, provider alive.
unsafe fn context<'a, G>(interface: Pinterface) -> &'a Context<G> {
    // SAFETY: the caller's guarantee.
    unsafe { serve::provider::<Context<G>>(interface) }
}

unsafe extern "C" fn create_cache<G: GrantTable>(
    interface: Pinterface,
    _name: Pcstr,
    _reservation: u32,
    cap: u32,
    _acquire_lock: AcquireLockFn,
    _release_lock: ReleaseLockFn,
    _argument: Pvoid,
    cache: *mut *mut GnttabCache,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<G>(interface) };
    if cache.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut handle = Box::new(BusCache { cap, entries: 0 });
    let ptr = core::ptr::from_mut(&mut *handle).cast::<GnttabCache>();
    context.state.lock().caches.insert(ptr as usize, handle);
    // SAFETY: the child's non-null output pointer.
    unsafe { cache.write(ptr) };
    STATUS_SUCCESS
}

unsafe extern "C" fn create_cache_v1<G: GrantTable>(
    interface: Pinterface,
    name: Pcstr,
    reservation: u32,
    acquire_lock: AcquireLockFn,
    release_lock: ReleaseLockFn,
    argument: Pvoid,
    cache: *mut *mut GnttabCache,
) -> NtStatus {
    // SAFETY: forwarded with the caller's guarantees; cap 0 is "no cap".
    unsafe {
        create_cache::<G>(
            interface,
            name,
            reservation,
            0,
            acquire_lock,
            release_lock,
            argument,
            cache,
        )
    }
}

unsafe extern "C" fn permit<G: GrantTable>(
    interface: Pinterface,
    cache: *mut GnttabCache,
    _locked: Boolean,
    domain: u16,
    pfn: PfnNumber,
    read_only: Boolean,
    entry: *mut *mut GnttabEntry,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<G>(interface) };
    if entry.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut state = context.state.lock();
    let Some(owner) = state.caches.get_mut(&(cache as usize)) else {
        return STATUS_INVALID_PARAMETER;
    };
    if owner.cap != 0 && owner.entries >= owner.cap {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let gref = match context
        .gnttab
        .grant(DomId(domain), Pfn(pfn), read_only != 0)
    {
        Ok(gref) => gref,
        Err(GrantError::BadFrame) => return STATUS_INVALID_PARAMETER,
        Err(_) => return STATUS_INSUFFICIENT_RESOURCES,
    };
    owner.entries += 1;
    let mut handle = Box::new(BusEntry {
        cache: cache as usize,
        gref,
    });
    let ptr = core::ptr::from_mut(&mut *handle).cast::<GnttabEntry>();
    state.entries.insert(ptr as usize, handle);
    // SAFETY: the child's non-null output pointer.
    unsafe { entry.write(ptr) };
    STATUS_SUCCESS
}

unsafe extern "C" fn revoke<G: GrantTable>(
    interface: Pinterface,
    _cache: *mut GnttabCache,
    _locked: Boolean,
    entry: *mut GnttabEntry,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<G>(interface) };
    let mut state = context.state.lock();
    let Some(found) = state.entries.get(&(entry as usize)) else {
        return STATUS_INVALID_PARAMETER;
    };
    match context.gnttab.revoke(found.gref) {
        Ok(()) => {
            let cache = found.cache;
            state.entries.remove(&(entry as usize));
            if let Some(owner) = state.caches.get_mut(&cache) {
                owner.entries = owner.entries.saturating_sub(1);
            }
            STATUS_SUCCESS
        }
        // Still mapped: the entry (and the page) stay, as in C.
        Err(GrantError::InUse) => STATUS_UNSUCCESSFUL,
        Err(_) => STATUS_INVALID_PARAMETER,
    }
}

unsafe extern "C" fn get_reference<G: GrantTable>(
    interface: Pinterface,
    entry: *mut GnttabEntry,
) -> u32 {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<G>(interface) };
    // An unknown handle reads as reference 0, which no entry ever has (it is
    // the console's).
    context
        .state
        .lock()
        .entries
        .get(&(entry as usize))
        .map_or(0, |e| e.gref.0)
}

unsafe extern "C" fn query_reference(
    _interface: Pinterface,
    _reference: u32,
    _pfn: *mut PfnNumber,
    _read_only: *mut Boolean,
) -> NtStatus {
    STATUS_NOT_SUPPORTED
}

unsafe extern "C" fn destroy_cache<G: GrantTable>(interface: Pinterface, cache: *mut GnttabCache) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<G>(interface) };
    // Entries left in it stay granted (never reuse a page still granted);
    // they are the child's leak.
    context.state.lock().caches.remove(&(cache as usize));
}

unsafe extern "C" fn map_foreign_pages(
    _interface: Pinterface,
    _domain: u16,
    _number_pages: u32,
    _references: *mut u32,
    _read_only: Boolean,
    _address: *mut LargeInteger,
) -> NtStatus {
    STATUS_NOT_SUPPORTED
}

unsafe extern "C" fn unmap_foreign_pages(
    _interface: Pinterface,
    _address: LargeInteger,
) -> NtStatus {
    STATUS_NOT_SUPPORTED
}
