//! [`Store`] over a STORE table queried from the bus.

use super::events::ChildEvents;
use super::{
    PAYLOAD_MAX, PERM_NONE, PERM_READ, PERM_WRITE, StoreInterfaceV2, StorePermission,
    StoreTransaction, StoreWatch, error_from_status,
};
use crate::api::{Access, Permission, Store, StoreError, Txn, WatchId, XsError};
use crate::serve::{QueryError, QueryInterface, method, query, query_newest};
use crate::table::InterfaceTable;
use crate::types::{KEvent, NtStatus, Pinterface, Pstr, boolean};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

/// The methods of STORE version 2 this wrapper calls, checked present.
#[derive(Clone, Copy)]
struct Methods {
    acquire: unsafe extern "C" fn(Pinterface) -> NtStatus,
    release: unsafe extern "C" fn(Pinterface),
    free: unsafe extern "C" fn(Pinterface, Pstr),
    read:
        unsafe extern "C" fn(Pinterface, *mut StoreTransaction, Pstr, Pstr, *mut Pstr) -> NtStatus,
    printf: unsafe extern "C" fn(
        Pinterface,
        *mut StoreTransaction,
        Pstr,
        Pstr,
        *const u8,
        ...
    ) -> NtStatus,
    permissions_set: unsafe extern "C" fn(
        Pinterface,
        *mut StoreTransaction,
        Pstr,
        Pstr,
        *mut StorePermission,
        u32,
    ) -> NtStatus,
    remove: unsafe extern "C" fn(Pinterface, *mut StoreTransaction, Pstr, Pstr) -> NtStatus,
    directory:
        unsafe extern "C" fn(Pinterface, *mut StoreTransaction, Pstr, Pstr, *mut Pstr) -> NtStatus,
    transaction_start: unsafe extern "C" fn(Pinterface, *mut *mut StoreTransaction) -> NtStatus,
    transaction_end: unsafe extern "C" fn(Pinterface, *mut StoreTransaction, u8) -> NtStatus,
    watch_add:
        unsafe extern "C" fn(Pinterface, Pstr, Pstr, *mut KEvent, *mut *mut StoreWatch) -> NtStatus,
    watch_remove: unsafe extern "C" fn(Pinterface, *mut StoreWatch) -> NtStatus,
}

impl Methods {
    fn of(table: &StoreInterfaceV2) -> Result<Self, QueryError> {
        let v = StoreInterfaceV2::VERSION;
        let name = StoreInterfaceV2::NAME;
        Ok(Self {
            acquire: method(table.acquire, name, v, "no Acquire")?,
            release: method(table.release, name, v, "no Release")?,
            free: method(table.free, name, v, "no Free")?,
            read: method(table.read, name, v, "no Read")?,
            printf: method(table.printf, name, v, "no Printf")?,
            permissions_set: method(table.permissions_set, name, v, "no PermissionsSet")?,
            remove: method(table.remove, name, v, "no Remove")?,
            directory: method(table.directory, name, v, "no Directory")?,
            transaction_start: method(table.transaction_start, name, v, "no TransactionStart")?,
            transaction_end: method(table.transaction_end, name, v, "no TransactionEnd")?,
            watch_add: method(table.watch_add, name, v, "no WatchAdd")?,
            watch_remove: method(table.watch_remove, name, v, "no WatchRemove")?,
        })
    }
}

/// A child's watch: the bus handle and the event the bus signals.
struct ChildWatch {
    handle: *mut StoreWatch,
    event: NonNull<KEvent>,
}

/// A child's transaction handle.
#[derive(Clone, Copy)]
struct TransactionHandle(*mut StoreTransaction);

/// [`Store`] over the bus's STORE table: what a core uses on Windows (over
/// XENBUS, ours or the Xen Project's) and in the rig (over the platform served
/// through [`StoreProvider`](super::bus::StoreProvider)).
///
/// Acquires the interface when made, releases it when dropped (after removing
/// the watches and aborting the transactions still open).
///
/// Differences from xenstore's own operations, all inherited from the C
/// interface: values cannot contain NUL bytes ([`StoreError::BadValue`]);
/// `mkdir` is a read followed by an empty write when the node is missing.
pub struct ChildStore<'bus, E: ChildEvents> {
    table: StoreInterfaceV2,
    methods: Methods,
    events: E,
    transactions: spin::Mutex<BTreeMap<u32, TransactionHandle>>,
    next_transaction: AtomicU32,
    watches: spin::Mutex<BTreeMap<u32, Arc<ChildWatch>>>,
    next_watch: AtomicU32,
    _bus: PhantomData<&'bus ()>,
}

// SAFETY: the table's methods may be called from any thread (the C interface
// contract, and our providers require `Sync` implementations); the handle maps
// are behind spin locks; the events are `E: Sync`.
unsafe impl<E: ChildEvents> Sync for ChildStore<'_, E> {}
// SAFETY: as above; nothing is tied to the creating thread.
unsafe impl<E: ChildEvents + Send> Send for ChildStore<'_, E> {}
// SAFETY: `ChildWatch` is an owned pair of handles used under the store's rules.
unsafe impl Send for ChildWatch {}
// SAFETY: as above: waiting is done through `ChildEvents: Sync`.
unsafe impl Sync for ChildWatch {}
// SAFETY: an owned handle, only passed back to the bus.
unsafe impl Send for TransactionHandle {}

impl<E: ChildEvents> fmt::Debug for ChildStore<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStore")
            .field("version", &self.table.header.version)
            .field("transactions", &self.transactions.lock().len())
            .field("watches", &self.watches.lock().len())
            .finish_non_exhaustive()
    }
}

/// A NUL-terminated copy of a path.
fn c_path(path: &str) -> Result<Vec<u8>, StoreError> {
    if path.is_empty() || path.as_bytes().contains(&0) {
        return Err(StoreError::InvalidPath);
    }
    let mut bytes = Vec::with_capacity(path.len() + 1);
    bytes.extend_from_slice(path.as_bytes());
    bytes.push(0);
    Ok(bytes)
}

fn check(status: NtStatus, len: usize) -> Result<(), StoreError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(error_from_status(status, len))
    }
}

/// Hands out ids from 1 up, skipping 0 (`Txn::NONE`) on wrap.
fn next_id(counter: &AtomicU32) -> u32 {
    loop {
        let id = counter.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

impl<'bus, E: ChildEvents> ChildStore<'bus, E> {
    /// Queries STORE from `bus` (the newest version known, down to the oldest
    /// supported) and acquires it.
    pub fn new(bus: &'bus impl QueryInterface, events: E) -> Result<Self, QueryError> {
        let table = query_newest(
            StoreInterfaceV2::NAME,
            super::VERSION_MIN..=super::VERSION_MAX,
            |version| match version {
                2 => query::<StoreInterfaceV2>(bus),
                _ => Ok(None),
            },
        )?;
        let methods = Methods::of(&table)?;
        let store = Self {
            table,
            methods,
            events,
            transactions: spin::Mutex::new(BTreeMap::new()),
            next_transaction: AtomicU32::new(1),
            watches: spin::Mutex::new(BTreeMap::new()),
            next_watch: AtomicU32::new(1),
            _bus: PhantomData,
        };
        // SAFETY: a table the bus wrote, valid while `bus` is borrowed.
        let status = unsafe { (store.methods.acquire)(store.interface()) };
        if !status.is_success() {
            // Not acquired: nothing to release.
            core::mem::forget(store);
            return Err(QueryError::Failed {
                name: StoreInterfaceV2::NAME,
                version: table.header.version,
                status,
            });
        }
        Ok(store)
    }

    /// The version in use.
    pub fn version(&self) -> u16 {
        self.table.header.version
    }

    /// The header passed to every method. The bus only reads it.
    fn interface(&self) -> Pinterface {
        core::ptr::from_ref(&self.table.header).cast_mut()
    }

    fn transaction(&self, txn: Txn) -> Result<*mut StoreTransaction, StoreError> {
        if txn == Txn::NONE {
            return Ok(core::ptr::null_mut());
        }
        self.transactions
            .lock()
            .get(&txn.0)
            .map(|h| h.0)
            .ok_or(StoreError::Xs(XsError::Enoent))
    }

    /// Copies the bus's buffer out and frees it (exactly once).
    fn take_buffer(&self, buffer: Pstr) -> Result<Vec<u8>, StoreError> {
        if buffer.is_null() {
            return Err(StoreError::Protocol("bus returned success and no buffer"));
        }
        // SAFETY: the bus returned a NUL-terminated (double-NUL) buffer it
        // allocated; it stays valid until `free`.
        let bytes = unsafe { core::ffi::CStr::from_ptr(buffer.cast()) }
            .to_bytes()
            .to_vec();
        // SAFETY: giving the buffer back, once.
        unsafe { (self.methods.free)(self.interface(), buffer) };
        Ok(bytes)
    }

    /// Copies the names of a directory buffer out and frees it.
    fn take_names(&self, buffer: Pstr) -> Result<Vec<String>, StoreError> {
        if buffer.is_null() {
            return Err(StoreError::Protocol("bus returned success and no buffer"));
        }
        let mut names = Vec::new();
        let mut offset = 0usize;
        let mut bad = false;
        // A reply carries at most PAYLOAD_MAX bytes of names: stop there even
        // if the terminator is missing.
        while offset <= PAYLOAD_MAX {
            // SAFETY: `offset` is within the bus's double-NUL-terminated
            // buffer: it is the start of a name or of the terminator.
            let at = unsafe { buffer.add(offset) };
            // SAFETY: every name before the terminator is NUL-terminated.
            let name = unsafe { core::ffi::CStr::from_ptr(at.cast()) }.to_bytes();
            if name.is_empty() {
                break;
            }
            offset += name.len() + 1;
            match core::str::from_utf8(name) {
                Ok(name) => names.push(String::from(name)),
                Err(_) => bad = true,
            }
        }
        // SAFETY: giving the buffer back, once.
        unsafe { (self.methods.free)(self.interface(), buffer) };
        if bad {
            return Err(StoreError::BadValue);
        }
        Ok(names)
    }
}

impl<E: ChildEvents> Drop for ChildStore<'_, E> {
    fn drop(&mut self) {
        let watches = core::mem::take(&mut *self.watches.lock());
        for watch in watches.values() {
            // SAFETY: a watch handle this store added and did not remove.
            unsafe { (self.methods.watch_remove)(self.interface(), watch.handle) };
            // SAFETY: the bus no longer uses the event; `&mut self` means no
            // wait is in progress.
            unsafe { self.events.destroy(watch.event) };
        }
        let transactions = core::mem::take(&mut *self.transactions.lock());
        for handle in transactions.values() {
            // SAFETY: a transaction this store started and did not end.
            unsafe { (self.methods.transaction_end)(self.interface(), handle.0, boolean(false)) };
        }
        // SAFETY: balances the `Acquire` of `new`.
        unsafe { (self.methods.release)(self.interface()) };
    }
}

impl<E: ChildEvents> Store for ChildStore<'_, E> {
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        let handle = self.transaction(txn)?;
        let mut node = c_path(path)?;
        let mut buffer: Pstr = core::ptr::null_mut();
        // SAFETY: a valid table; `node` is NUL-terminated; `buffer` is a
        // valid output pointer.
        let status = unsafe {
            (self.methods.read)(
                self.interface(),
                handle,
                core::ptr::null_mut(),
                node.as_mut_ptr(),
                &raw mut buffer,
            )
        };
        check(status, node.len())?;
        self.take_buffer(buffer)
    }

    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        if value.contains(&0) {
            return Err(StoreError::BadValue);
        }
        let handle = self.transaction(txn)?;
        let mut node = c_path(path)?;
        let mut text = Vec::with_capacity(value.len() + 1);
        text.extend_from_slice(value);
        text.push(0);
        // SAFETY: a valid table; `node`, the format and `text` are
        // NUL-terminated and outlive the call; `%s` takes one string.
        let status = unsafe {
            (self.methods.printf)(
                self.interface(),
                handle,
                core::ptr::null_mut(),
                node.as_mut_ptr(),
                c"%s".as_ptr().cast::<u8>(),
                text.as_ptr(),
            )
        };
        check(status, node.len() + value.len())
    }

    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        // STORE has no mkdir: create the node empty only if it is missing.
        match self.read(txn, path) {
            Ok(_) => Ok(()),
            Err(StoreError::Xs(XsError::Enoent)) => self.write(txn, path, b""),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        let handle = self.transaction(txn)?;
        let mut node = c_path(path)?;
        // SAFETY: a valid table; `node` is NUL-terminated.
        let status = unsafe {
            (self.methods.remove)(
                self.interface(),
                handle,
                core::ptr::null_mut(),
                node.as_mut_ptr(),
            )
        };
        check(status, node.len())
    }

    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        let handle = self.transaction(txn)?;
        let mut node = c_path(path)?;
        let mut buffer: Pstr = core::ptr::null_mut();
        // SAFETY: as in `read`.
        let status = unsafe {
            (self.methods.directory)(
                self.interface(),
                handle,
                core::ptr::null_mut(),
                node.as_mut_ptr(),
                &raw mut buffer,
            )
        };
        check(status, node.len())?;
        self.take_names(buffer)
    }

    fn set_permissions(
        &self,
        txn: Txn,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), StoreError> {
        let handle = self.transaction(txn)?;
        let mut node = c_path(path)?;
        let mut entries: Vec<StorePermission> = perms
            .iter()
            .map(|p| StorePermission {
                domain: p.domid.0,
                mask: match p.access {
                    Access::None => PERM_NONE,
                    Access::Read => PERM_READ,
                    Access::Write => PERM_WRITE,
                    Access::Both => PERM_READ | PERM_WRITE,
                },
            })
            .collect();
        let count = u32::try_from(entries.len()).map_err(|_| StoreError::TooLarge {
            len: entries.len(),
            max: PAYLOAD_MAX,
        })?;
        // SAFETY: a valid table; `node` NUL-terminated; `entries` holds `count` entries.
        let status = unsafe {
            (self.methods.permissions_set)(
                self.interface(),
                handle,
                core::ptr::null_mut(),
                node.as_mut_ptr(),
                entries.as_mut_ptr(),
                count,
            )
        };
        check(status, node.len())
    }

    fn transaction_start(&self) -> Result<Txn, StoreError> {
        let mut handle: *mut StoreTransaction = core::ptr::null_mut();
        // SAFETY: a valid table; `handle` is a valid output pointer.
        let status = unsafe { (self.methods.transaction_start)(self.interface(), &raw mut handle) };
        check(status, 0)?;
        if handle.is_null() {
            return Err(StoreError::Protocol(
                "bus started a transaction without a handle",
            ));
        }
        let id = next_id(&self.next_transaction);
        self.transactions
            .lock()
            .insert(id, TransactionHandle(handle));
        Ok(Txn(id))
    }

    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError> {
        let handle = self
            .transactions
            .lock()
            .remove(&txn.0)
            .ok_or(StoreError::Xs(XsError::Enoent))?;
        // SAFETY: a handle this store started; the bus consumes it whatever
        // the result.
        let status =
            unsafe { (self.methods.transaction_end)(self.interface(), handle.0, boolean(commit)) };
        check(status, 0)
    }

    fn watch_add(&self, path: &str) -> Result<WatchId, StoreError> {
        let mut node = c_path(path)?;
        let event = self.events.create().ok_or(StoreError::Busy)?;
        let mut handle: *mut StoreWatch = core::ptr::null_mut();
        // SAFETY: a valid table; `node` NUL-terminated; `event` a live event
        // of the kind the bus expects; `handle` a valid output pointer.
        let status = unsafe {
            (self.methods.watch_add)(
                self.interface(),
                core::ptr::null_mut(),
                node.as_mut_ptr(),
                event.as_ptr(),
                &raw mut handle,
            )
        };
        if !status.is_success() || handle.is_null() {
            // SAFETY: the bus did not take the event.
            unsafe { self.events.destroy(event) };
            check(status, node.len())?;
            return Err(StoreError::Protocol("bus added a watch without a handle"));
        }
        let id = next_id(&self.next_watch);
        self.watches
            .lock()
            .insert(id, Arc::new(ChildWatch { handle, event }));
        Ok(WatchId(id))
    }

    fn watch_remove(&self, watch: WatchId) -> Result<(), StoreError> {
        let entry = self
            .watches
            .lock()
            .remove(&watch.0)
            .ok_or(StoreError::Xs(XsError::Enoent))?;
        // SAFETY: a handle this store added, removed once.
        let status = unsafe { (self.methods.watch_remove)(self.interface(), entry.handle) };
        // The event goes once no wait uses it: waits hold a clone of `entry`.
        if let Some(entry) = Arc::into_inner(entry) {
            // SAFETY: the bus dropped the event with the watch; no wait holds it.
            unsafe { self.events.destroy(entry.event) };
        }
        check(status, 0)
    }

    fn watch_wait(&self, watch: WatchId, timeout: Duration) -> Result<bool, StoreError> {
        let entry = self
            .watches
            .lock()
            .get(&watch.0)
            .cloned()
            .ok_or(StoreError::Xs(XsError::Enoent))?;
        // SAFETY: the event lives while `entry` (an `Arc`) does.
        let fired = unsafe { self.events.wait(entry.event, timeout) };
        if let Some(entry) = Arc::into_inner(entry) {
            // The watch was removed during the wait and this was the last user.
            // SAFETY: the bus dropped the event with the watch.
            unsafe { self.events.destroy(entry.event) };
        }
        fired
    }
}
