//! [`GrantTable`] over a GNTTAB table queried from the bus (versions 2 to 4).
//!
//! The wrapper creates one cache of `capacity` entries at start and keeps a
//! fixed-size map from grant reference to the bus's entry handle, allocated
//! then: `grant` and `revoke` never allocate (DISPATCH_LEVEL callers).

use super::{GnttabCache, GnttabEntry, GnttabInterfaceV2, GnttabInterfaceV3, GnttabInterfaceV4};
use crate::api::{DomId, GrantError, GrantRef, GrantTable, Pfn};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{
    Boolean, FALSE, Interface, NtStatus, PfnNumber, Pinterface, Pvoid, STATUS_UNSUCCESSFUL, boolean,
};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

type PermitFn = unsafe extern "C" fn(
    Pinterface,
    *mut GnttabCache,
    Boolean,
    u16,
    PfnNumber,
    Boolean,
    *mut *mut GnttabEntry,
) -> NtStatus;
type RevokeFn =
    unsafe extern "C" fn(Pinterface, *mut GnttabCache, Boolean, *mut GnttabEntry) -> NtStatus;

#[derive(Clone, Copy)]
enum Table {
    V2(GnttabInterfaceV2),
    V3(GnttabInterfaceV3),
    V4(GnttabInterfaceV4),
}

impl Table {
    fn header(&self) -> &Interface {
        match self {
            Self::V2(t) => &t.header,
            Self::V3(t) => &t.header,
            Self::V4(t) => &t.header,
        }
    }
}

#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    permit: PermitFn,
    revoke: RevokeFn,
    get_reference: unsafe extern "C" fn(Pinterface, *mut GnttabEntry) -> u32,
    destroy_cache: unsafe extern "C" fn(Pinterface, *mut GnttabCache),
}

/// The lock the bus takes around cache operations (`AcquireLock` /
/// `ReleaseLock` callbacks): a spin lock.
struct CacheLock(AtomicBool);

unsafe extern "C" fn acquire_lock(argument: Pvoid) {
    // SAFETY: `argument` is the wrapper's boxed `CacheLock`, alive until the
    // cache is destroyed.
    let lock = unsafe { &*argument.cast::<CacheLock>() };
    while lock
        .0
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
}

unsafe extern "C" fn release_lock(argument: Pvoid) {
    // SAFETY: as in `acquire_lock`.
    let lock = unsafe { &*argument.cast::<CacheLock>() };
    lock.0.store(false, Ordering::Release);
}

/// A fixed-capacity map from grant reference to entry handle (linear
/// probing, deletion by backward shift): no allocation after creation.
struct Slots {
    slots: Vec<Option<(u32, usize)>>,
    used: usize,
}

impl Slots {
    fn new(capacity: usize) -> Self {
        let size = capacity.saturating_mul(2).max(2).next_power_of_two();
        Self {
            slots: vec![None; size],
            used: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9e37_79b9) as usize) & self.mask()
    }

    fn find(&self, key: u32) -> Option<usize> {
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            match self.slots.get(i).copied().flatten() {
                Some((k, _)) if k == key => return Some(i),
                Some(_) => i = (i + 1) & self.mask(),
                None => return None,
            }
        }
        None
    }

    fn get(&self, key: u32) -> Option<usize> {
        self.find(key)
            .and_then(|i| self.slots.get(i).copied().flatten())
            .map(|(_, v)| v)
    }

    /// Inserts; the caller keeps `used` below half the slots.
    fn insert(&mut self, key: u32, value: usize) -> bool {
        if self.used >= self.slots.len() / 2 || self.find(key).is_some() {
            return false;
        }
        let mut i = self.home(key);
        while self.slots.get(i).copied().flatten().is_some() {
            i = (i + 1) & self.mask();
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some((key, value));
            self.used += 1;
        }
        true
    }

    fn remove(&mut self, key: u32) -> Option<usize> {
        let mut hole = self.find(key)?;
        let value = self.slots.get_mut(hole)?.take().map(|(_, v)| v);
        self.used -= 1;
        // Shift back entries whose probe run crossed the hole.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask();
            let Some((k, v)) = self.slots.get(j).copied().flatten() else {
                break;
            };
            let home = self.home(k);
            // Distance from home to j versus home to the hole (cyclic).
            let to_j = j.wrapping_sub(home) & self.mask();
            let to_hole = hole.wrapping_sub(home) & self.mask();
            if to_hole < to_j {
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = Some((k, v));
                }
                if let Some(slot) = self.slots.get_mut(j) {
                    *slot = None;
                }
                hole = j;
            }
        }
        value
    }

    fn entries(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.slots.iter().filter_map(|s| *s)
    }
}

/// Creates the wrapper's cache with whichever `CreateCache` the version has.
///
/// # Safety
/// `header` is `table`'s header; `lock` outlives the cache; `cache` is a
/// valid output pointer.
unsafe fn create_cache(
    table: &Table,
    header: Pinterface,
    name: &core::ffi::CStr,
    capacity: u32,
    lock: NonNull<CacheLock>,
    cache: *mut *mut GnttabCache,
) -> Option<NtStatus> {
    let argument = lock.as_ptr().cast();
    let name = name.as_ptr().cast();
    let (lock_fn, unlock_fn) = (
        Some(acquire_lock as unsafe extern "C" fn(Pvoid)),
        Some(release_lock as unsafe extern "C" fn(Pvoid)),
    );
    match table {
        // SAFETY: the caller's guarantees.
        Table::V4(t) => t.create_cache.map(|create| unsafe {
            create(
                header, name, 0, capacity, lock_fn, unlock_fn, argument, cache,
            )
        }),
        // SAFETY: the caller's guarantees (no cap before version 4).
        Table::V3(t) => t
            .create_cache_v1
            .map(|create| unsafe { create(header, name, 0, lock_fn, unlock_fn, argument, cache) }),
        // SAFETY: as above.
        Table::V2(t) => t
            .create_cache_v1
            .map(|create| unsafe { create(header, name, 0, lock_fn, unlock_fn, argument, cache) }),
    }
}

/// [`GrantTable`] over the bus's GNTTAB table.
pub struct ChildGnttab<'bus> {
    table: Table,
    methods: Methods,
    cache: *mut GnttabCache,
    /// The cache's lock, a leaked box: freed with the cache, or never if
    /// the cache must stay.
    lock: NonNull<CacheLock>,
    capacity: usize,
    slots: spin::Mutex<Slots>,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (C contract);
// the slot map is behind a spin lock; the cache handle belongs to the bus.
unsafe impl Sync for ChildGnttab<'_> {}
// SAFETY: as above.
unsafe impl Send for ChildGnttab<'_> {}

impl fmt::Debug for ChildGnttab<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildGnttab")
            .field("version", &self.version())
            .field("capacity", &self.capacity)
            .field("used", &self.slots.lock().used)
            .finish_non_exhaustive()
    }
}

impl<'bus> ChildGnttab<'bus> {
    /// Queries GNTTAB from `bus` (4 down to 2), acquires it and creates a
    /// cache named `name` for up to `capacity` grants.
    pub fn new(
        bus: &'bus impl QueryInterface,
        name: &core::ffi::CStr,
        capacity: u32,
    ) -> Result<Self, QueryError> {
        let table = query_newest(
            GnttabInterfaceV4::NAME,
            super::VERSION_MIN..=super::VERSION_MAX,
            |v| {
                Ok(match v {
                    4 => query::<GnttabInterfaceV4>(bus)?.map(Table::V4),
                    3 => query::<GnttabInterfaceV3>(bus)?.map(Table::V3),
                    2 => query::<GnttabInterfaceV2>(bus)?.map(Table::V2),
                    _ => None,
                })
            },
        )?;
        let name_s = GnttabInterfaceV4::NAME;
        let v = table.header().version;
        let methods = match table {
            Table::V2(t) => Methods {
                acquire: method(t.acquire, name_s, v, "no Acquire")?,
                release: method(t.release, name_s, v, "no Release")?,
                permit: method(t.permit_foreign_access, name_s, v, "no Permit")?,
                revoke: method(t.revoke_foreign_access, name_s, v, "no Revoke")?,
                get_reference: method(t.get_reference, name_s, v, "no GetReference")?,
                destroy_cache: method(t.destroy_cache, name_s, v, "no DestroyCache")?,
            },
            Table::V3(t) => Methods {
                acquire: method(t.acquire, name_s, v, "no Acquire")?,
                release: method(t.release, name_s, v, "no Release")?,
                permit: method(t.permit_foreign_access, name_s, v, "no Permit")?,
                revoke: method(t.revoke_foreign_access, name_s, v, "no Revoke")?,
                get_reference: method(t.get_reference, name_s, v, "no GetReference")?,
                destroy_cache: method(t.destroy_cache, name_s, v, "no DestroyCache")?,
            },
            Table::V4(t) => Methods {
                acquire: method(t.acquire, name_s, v, "no Acquire")?,
                release: method(t.release, name_s, v, "no Release")?,
                permit: method(t.permit_foreign_access, name_s, v, "no Permit")?,
                revoke: method(t.revoke_foreign_access, name_s, v, "no Revoke")?,
                get_reference: method(t.get_reference, name_s, v, "no GetReference")?,
                destroy_cache: method(t.destroy_cache, name_s, v, "no DestroyCache")?,
            },
        };
        let header = core::ptr::from_ref(table.header()).cast_mut();
        let failed = |status| QueryError::Failed {
            name: name_s,
            version: v,
            status,
        };
        // SAFETY: a table the bus wrote; the bus only reads the header.
        let status = unsafe { (methods.acquire)(header) };
        if !status.is_success() {
            return Err(failed(status));
        }
        let lock = NonNull::from(Box::leak(Box::new(CacheLock(AtomicBool::new(false)))));
        let mut cache: *mut GnttabCache = core::ptr::null_mut();
        // SAFETY: a valid table; `name` NUL-terminated; the lock lives until
        // the cache is destroyed; `cache` is a valid output pointer.
        let status = unsafe { create_cache(&table, header, name, capacity, lock, &raw mut cache) };
        let status = status.unwrap_or(STATUS_UNSUCCESSFUL);
        if !status.is_success() || cache.is_null() {
            // SAFETY: no cache uses the lock: free the leaked box, once.
            drop(unsafe { Box::from_raw(lock.as_ptr()) });
            // SAFETY: balances the `Acquire` above.
            unsafe { (methods.release)(header) };
            return Err(failed(status));
        }
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Ok(Self {
            table,
            methods,
            cache,
            lock,
            capacity,
            slots: spin::Mutex::new(Slots::new(capacity)),
            _bus: PhantomData,
        })
    }

    /// The version in use.
    pub fn version(&self) -> u16 {
        self.table.header().version
    }

    fn interface(&self) -> Pinterface {
        core::ptr::from_ref(self.table.header()).cast_mut()
    }
}

impl Drop for ChildGnttab<'_> {
    fn drop(&mut self) {
        let entries: Vec<(u32, usize)> = self.slots.get_mut().entries().collect();
        let mut in_use = false;
        for (_, entry) in entries {
            // SAFETY: a live entry of our cache, revoked once.
            let status = unsafe {
                (self.methods.revoke)(
                    self.interface(),
                    self.cache,
                    FALSE,
                    entry as *mut GnttabEntry,
                )
            };
            in_use |= !status.is_success();
        }
        // With a page still mapped by the remote end, the cache and its
        // lock stay (leaked) rather than free what the bus may still use.
        if !in_use {
            // SAFETY: our cache, now empty, destroyed once.
            unsafe { (self.methods.destroy_cache)(self.interface(), self.cache) };
            // SAFETY: the destroyed cache no longer uses the lock: free the
            // leaked box, once.
            drop(unsafe { Box::from_raw(self.lock.as_ptr()) });
        }
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl GrantTable for ChildGnttab<'_> {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        let mut slots = self.slots.lock();
        if slots.used >= self.capacity {
            return Err(GrantError::Exhausted);
        }
        let mut entry: *mut GnttabEntry = core::ptr::null_mut();
        // SAFETY: a valid table and our cache; the bus takes our lock itself
        // (`Locked` FALSE); `entry` is a valid output pointer.
        let status = unsafe {
            (self.methods.permit)(
                self.interface(),
                self.cache,
                FALSE,
                domid.0,
                pfn.0,
                boolean(readonly),
                &raw mut entry,
            )
        };
        if !status.is_success() || entry.is_null() {
            return Err(GrantError::Exhausted);
        }
        // SAFETY: a live entry the bus just made.
        let gref = unsafe { (self.methods.get_reference)(self.interface(), entry) };
        if !slots.insert(gref, entry as usize) {
            // The bus reused a reference we hold: give this one back.
            // SAFETY: the entry just made, revoked once.
            unsafe { (self.methods.revoke)(self.interface(), self.cache, FALSE, entry) };
            return Err(GrantError::Invalid);
        }
        Ok(GrantRef(gref))
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut slots = self.slots.lock();
        let entry = slots.get(gref.0).ok_or(GrantError::Invalid)? as *mut GnttabEntry;
        // SAFETY: a live entry of our cache.
        let status = unsafe { (self.methods.revoke)(self.interface(), self.cache, FALSE, entry) };
        if status.is_success() {
            slots.remove(gref.0);
            Ok(())
        } else if status == STATUS_UNSUCCESSFUL {
            // Still mapped remotely: the grant stays, the caller quarantines.
            Err(GrantError::InUse)
        } else {
            Err(GrantError::Invalid)
        }
    }

    fn available(&self) -> usize {
        self.capacity.saturating_sub(self.slots.lock().used)
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn slots_behave_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..64), 0..400)) {
            let mut slots = Slots::new(32);
            let mut model = alloc::collections::BTreeMap::new();
            for (insert, key) in ops {
                if insert {
                    let ok = slots.insert(key, key as usize + 1000);
                    let expect = model.len() < 32 && !model.contains_key(&key);
                    prop_assert_eq!(ok, expect);
                    if ok {
                        model.insert(key, key as usize + 1000);
                    }
                } else {
                    prop_assert_eq!(slots.remove(key), model.remove(&key));
                }
                for k in 0..64 {
                    prop_assert_eq!(slots.get(k), model.get(&k).copied());
                }
                prop_assert_eq!(slots.used, model.len());
            }
        }
    }
}
