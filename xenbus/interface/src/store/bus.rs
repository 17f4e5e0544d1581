//! Serving STORE from any [`Store`] implementation.

use super::events::{BusEvents, WatchWait};
use super::{
    PAYLOAD_MAX, PERM_READ, PERM_WRITE, StoreInterfaceV2, StorePermission, StoreTransaction,
    StoreWatch, status_from_error,
};
use crate::api::{Access, DomId, Permission, Store, StoreError, Txn, WatchId};
use crate::printf::{self, SLOTS};
use crate::serve::{self, References, ServeInterface, served_header, write_table};
use crate::table::InterfaceTable;
use crate::types::{
    Boolean, Guid, Interface, KEvent, NtStatus, Pcstr, Pinterface, Pstr, STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;
use core::ptr::NonNull;
use core::time::Duration;

/// Serves STORE version 2 from `S`, watch events through `E`.
///
/// `Read` and `Directory` buffers, transactions and watches handed to children
/// are recorded, so `Free`, `TransactionEnd` and `WatchRemove` accept only
/// handles this provider gave out (others are refused, not dereferenced), and
/// [`StoreProvider::outstanding`] tells what children still hold.
pub struct StoreProvider<S: Store + Sync + 'static, E: BusEvents> {
    context: serve::Owned<Context<S, E>>,
}

/// The provider's state, what `Context` points at. `refs` first: the shared
/// reference functions find it at offset 0.
#[repr(C)]
struct Context<S, E> {
    refs: References,
    store: S,
    events: E,
    /// `Read` / `Directory` buffers by address.
    buffers: spin::Mutex<BTreeMap<usize, Box<[u8]>>>,
    /// Open transactions by handle address.
    transactions: spin::Mutex<BTreeMap<usize, Box<BusTransaction>>>,
    /// Watches by handle address.
    watches: spin::Mutex<BTreeMap<usize, Box<BusWatch>>>,
}

struct BusTransaction {
    txn: Txn,
}

struct BusWatch {
    id: WatchId,
    event: NonNull<KEvent>,
}

// SAFETY: `event` is only handed back to the provider's `BusEvents`, which is
// `Sync` and owns the cross-thread contract of the child's event.
unsafe impl Send for BusWatch {}

/// What children still hold of a provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Buffers not yet given back with `Free`.
    pub buffers: usize,
    /// Transactions not yet ended.
    pub transactions: usize,
    /// Watches not yet removed.
    pub watches: usize,
}

impl<S: Store + Sync + 'static, E: BusEvents> StoreProvider<S, E> {
    /// A provider serving `store`.
    pub fn new(store: S, events: E) -> Self {
        Self {
            context: serve::Owned::new(Context {
                refs: References::default(),
                store,
                events,
                buffers: spin::Mutex::new(BTreeMap::new()),
                transactions: spin::Mutex::new(BTreeMap::new()),
                watches: spin::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The implementation served.
    pub fn store(&self) -> &S {
        &self.context.store
    }

    /// Buffers, transactions and watches children have not given back.
    pub fn outstanding(&self) -> Outstanding {
        Outstanding {
            buffers: self.context.buffers.lock().len(),
            transactions: self.context.transactions.lock().len(),
            watches: self.context.watches.lock().len(),
        }
    }

    fn table(&self) -> StoreInterfaceV2 {
        let context = self.context.as_context();
        StoreInterfaceV2 {
            header: served_header::<StoreInterfaceV2>(context),
            acquire: Some(serve::acquire),
            release: Some(serve::release),
            free: Some(free::<S, E>),
            read: Some(read::<S, E>),
            // SAFETY: `printf` takes the fixed parameters of `PrintfFn` followed
            // by `SLOTS` integer-class slots, which the x86_64 conventions fill
            // exactly as they pass a variadic call's integer arguments (see the
            // `printf` module).
            printf: Some(unsafe {
                core::mem::transmute::<
                    PrintfFixed,
                    unsafe extern "C" fn(
                        Pinterface,
                        *mut StoreTransaction,
                        Pstr,
                        Pstr,
                        Pcstr,
                        ...
                    ) -> NtStatus,
                >(printf::<S, E>)
            }),
            permissions_set: Some(permissions_set::<S, E>),
            remove: Some(remove::<S, E>),
            directory: Some(directory::<S, E>),
            transaction_start: Some(transaction_start::<S, E>),
            transaction_end: Some(transaction_end::<S, E>),
            watch_add: Some(watch_add::<S, E>),
            watch_remove: Some(watch_remove::<S, E>),
            poll: Some(poll),
        }
    }
}

impl<S: Store + Sync + 'static, E: BusEvents> Drop for StoreProvider<S, E> {
    fn drop(&mut self) {
        // A child that went away without removing its watches: stop the
        // events from reaching the watch before it is freed, and remove it.
        let watches = core::mem::take(&mut *self.context.watches.lock());
        for watch in watches.values() {
            // SAFETY: every recorded watch's event was attached and not detached.
            unsafe { self.context.events.detach(watch.event) };
            let _ = self.context.store.watch_remove(watch.id);
        }
        // Transactions a child left open: abort them in the store too.
        let transactions = core::mem::take(&mut *self.context.transactions.lock());
        for transaction in transactions.values() {
            let _ = self.context.store.transaction_end(transaction.txn, false);
        }
    }
}

impl<S: Store + Sync + 'static, E: BusEvents> fmt::Debug for StoreProvider<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreProvider")
            .field("references", &self.context.refs)
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl<S: Store + Sync + 'static, E: BusEvents> ServeInterface for StoreProvider<S, E> {
    fn guid(&self) -> Guid {
        super::GUID
    }

    fn versions(&self) -> RangeInclusive<u16> {
        super::VERSION_MIN..=super::VERSION_MAX
    }

    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus {
        match version {
            // SAFETY: the caller's guarantee about `buffer`.
            StoreInterfaceV2::VERSION => unsafe { write_table(self.table(), buffer, size) },
            _ => STATUS_NOT_SUPPORTED,
        }
    }

    fn references(&self) -> &References {
        &self.context.refs
    }
}

// SAFETY: (for `Sync`) every method takes `&self` and reaches shared state only
// through `S: Sync`, `E: Sync` and spin locks; the raw pointers in the maps are
// owned handles.
unsafe impl<S: Store + Sync + 'static, E: BusEvents> Sync for StoreProvider<S, E> {}
// SAFETY: as above; ownership of the boxed context moves with the provider.
unsafe impl<S: Store + Sync + Send + 'static, E: BusEvents + Send> Send for StoreProvider<S, E> {}

type PrintfFixed = unsafe extern "C" fn(
    Pinterface,
    *mut StoreTransaction,
    Pstr,
    Pstr,
    Pcstr,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
) -> NtStatus;

/// The provider context behind a table header.
///
/// # Safety
/// `interface` is the header of a table this module served, whose provider is alive.
unsafe fn context<'a, S, E>(interface: Pinterface) -> &'a Context<S, E> {
    // SAFETY: the caller's guarantee: `Context` points at a live `Context<S, E>`.
    unsafe { serve::provider::<Context<S, E>>(interface) }
}

/// `Prefix` + `/` + `Node`, as a path.
///
/// # Safety
/// `prefix` is null or a NUL-terminated string; `node` likewise.
unsafe fn path(prefix: Pstr, node: Pstr) -> Result<String, NtStatus> {
    // SAFETY: the caller's guarantee.
    let node = unsafe { printf::c_str(node) }.ok_or(STATUS_INVALID_PARAMETER)?;
    // SAFETY: the caller's guarantee.
    let prefix = unsafe { printf::c_str(prefix) };
    let mut path = Vec::with_capacity(node.len() + prefix.map_or(0, |p| p.len() + 1));
    if let Some(prefix) = prefix {
        path.extend_from_slice(prefix);
        path.push(b'/');
    }
    path.extend_from_slice(node);
    String::from_utf8(path).map_err(|_| status_from_error(&StoreError::InvalidPath))
}

impl<S: Store, E> Context<S, E> {
    /// The transaction behind a handle (null: none).
    fn transaction(&self, handle: *mut StoreTransaction) -> Result<Txn, NtStatus> {
        if handle.is_null() {
            return Ok(Txn::NONE);
        }
        self.transactions
            .lock()
            .get(&(handle as usize))
            .map(|t| t.txn)
            .ok_or(STATUS_INVALID_PARAMETER)
    }

    /// Records `bytes` followed by two NULs as a buffer for the child.
    fn hand_out(&self, mut bytes: Vec<u8>, out: *mut Pstr) -> NtStatus {
        bytes.extend_from_slice(&[0, 0]);
        let mut buffer = bytes.into_boxed_slice();
        let ptr = buffer.as_mut_ptr();
        self.buffers.lock().insert(ptr as usize, buffer);
        // SAFETY: `out` is the child's output pointer, checked non-null by the caller.
        unsafe { out.write(ptr) };
        STATUS_SUCCESS
    }
}

fn status<T>(result: Result<T, StoreError>) -> NtStatus {
    match result {
        Ok(_) => STATUS_SUCCESS,
        Err(e) => status_from_error(&e),
    }
}

unsafe extern "C" fn free<S: Store, E>(interface: Pinterface, buffer: Pstr) {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    // A pointer we did not hand out is ignored rather than freed.
    context.buffers.lock().remove(&(buffer as usize));
}

unsafe extern "C" fn read<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    prefix: Pstr,
    node: Pstr,
    buffer: *mut Pstr,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    if buffer.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    let txn = match context.transaction(transaction) {
        Ok(txn) => txn,
        Err(status) => return status,
    };
    match context.store.read(txn, &path) {
        Ok(value) => context.hand_out(value, buffer),
        Err(e) => status_from_error(&e),
    }
}

unsafe extern "C" fn directory<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    prefix: Pstr,
    node: Pstr,
    buffer: *mut Pstr,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    if buffer.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    let txn = match context.transaction(transaction) {
        Ok(txn) => txn,
        Err(status) => return status,
    };
    match context.store.directory(txn, &path) {
        Ok(names) => {
            // The wire form: each name NUL-terminated.
            let mut bytes = Vec::new();
            for name in names {
                bytes.extend_from_slice(name.as_bytes());
                bytes.push(0);
            }
            context.hand_out(bytes, buffer)
        }
        Err(e) => status_from_error(&e),
    }
}

unsafe extern "C" fn printf<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    prefix: Pstr,
    node: Pstr,
    format: Pcstr,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    let txn = match context.transaction(transaction) {
        Ok(txn) => txn,
        Err(status) => return status,
    };
    // SAFETY: `format` is the caller's NUL-terminated format string.
    let Some(format) = (unsafe { printf::c_str(format) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    let slots: [u64; SLOTS] = [a0, a1, a2, a3, a4, a5, a6, a7];
    // SAFETY: a `%s` argument is, by the printf contract, a NUL-terminated
    // string (or null) that outlives the call.
    let read_str = |p: u64| {
        let ptr = usize::try_from(p).map_or(core::ptr::null(), |p| p as *const u8);
        // SAFETY: see above.
        unsafe { printf::c_str(ptr) }.unwrap_or(b"(null)")
    };
    match printf::format(format, &slots, read_str, PAYLOAD_MAX + 1) {
        Ok(value) => status(context.store.write(txn, &path, &value)),
        Err(printf::FormatError::TooLong) => status_from_error(&StoreError::TooLarge {
            len: PAYLOAD_MAX + 1,
            max: PAYLOAD_MAX,
        }),
        Err(_) => STATUS_INVALID_PARAMETER,
    }
}

unsafe extern "C" fn remove<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    prefix: Pstr,
    node: Pstr,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    match context.transaction(transaction) {
        Ok(txn) => status(context.store.remove(txn, &path)),
        Err(status) => status,
    }
}

unsafe extern "C" fn permissions_set<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    prefix: Pstr,
    node: Pstr,
    permissions: *mut StorePermission,
    count: u32,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    let txn = match context.transaction(transaction) {
        Ok(txn) => txn,
        Err(status) => return status,
    };
    let Ok(count) = usize::try_from(count) else {
        return STATUS_INVALID_PARAMETER;
    };
    if permissions.is_null() || count == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the C contract: `permissions` points at `count` entries.
    let entries = unsafe { core::slice::from_raw_parts(permissions, count) };
    let mut perms = Vec::with_capacity(count);
    for entry in entries {
        let access = match entry.mask {
            m if m == PERM_READ | PERM_WRITE => Access::Both,
            PERM_READ => Access::Read,
            PERM_WRITE => Access::Write,
            0 => Access::None,
            _ => return STATUS_INVALID_PARAMETER,
        };
        perms.push(Permission {
            domid: DomId(entry.domain),
            access,
        });
    }
    status(context.store.set_permissions(txn, &path, &perms))
}

unsafe extern "C" fn transaction_start<S: Store, E>(
    interface: Pinterface,
    transaction: *mut *mut StoreTransaction,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    if transaction.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    match context.store.transaction_start() {
        Ok(txn) => {
            let mut handle = Box::new(BusTransaction { txn });
            let ptr = core::ptr::from_mut(&mut *handle).cast::<StoreTransaction>();
            context.transactions.lock().insert(ptr as usize, handle);
            // SAFETY: `transaction` is the child's non-null output pointer.
            unsafe { transaction.write(ptr) };
            STATUS_SUCCESS
        }
        Err(e) => status_from_error(&e),
    }
}

unsafe extern "C" fn transaction_end<S: Store, E>(
    interface: Pinterface,
    transaction: *mut StoreTransaction,
    commit: Boolean,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    // The handle is consumed whatever the outcome, as in C.
    let Some(handle) = context.transactions.lock().remove(&(transaction as usize)) else {
        return STATUS_INVALID_PARAMETER;
    };
    status(context.store.transaction_end(handle.txn, commit != 0))
}

/// Waits for one watch of a provider's store.
struct WatchWaiter<S> {
    store: NonNull<S>,
    id: WatchId,
}

// SAFETY: `store` points at the provider's `S: Sync`, which outlives every
// waiter (the provider detaches all events before it goes).
unsafe impl<S: Sync> Send for WatchWaiter<S> {}
// SAFETY: as above.
unsafe impl<S: Sync> Sync for WatchWaiter<S> {}

impl<S: Store + Sync> WatchWait for WatchWaiter<S> {
    fn wait(&self, timeout: Duration) -> Result<bool, StoreError> {
        // SAFETY: see the `Send` impl: the store is alive.
        unsafe { self.store.as_ref() }.watch_wait(self.id, timeout)
    }
}

unsafe extern "C" fn watch_add<S: Store + Sync + 'static, E: BusEvents>(
    interface: Pinterface,
    prefix: Pstr,
    node: Pstr,
    event: *mut KEvent,
    watch: *mut *mut StoreWatch,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    let Some(event) = NonNull::new(event) else {
        return STATUS_INVALID_PARAMETER;
    };
    if watch.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the C contract: `prefix` optional, `node` a string.
    let path = match unsafe { path(prefix, node) } {
        Ok(path) => path,
        Err(status) => return status,
    };
    match context.store.watch_add(&path) {
        Ok(id) => {
            let waiter = Arc::new(WatchWaiter {
                store: NonNull::from(&context.store),
                id,
            });
            // SAFETY: the child's event, valid until its watch is removed.
            unsafe { context.events.attach(event, waiter) };
            let mut handle = Box::new(BusWatch { id, event });
            let ptr = core::ptr::from_mut(&mut *handle).cast::<StoreWatch>();
            context.watches.lock().insert(ptr as usize, handle);
            // SAFETY: `watch` is the child's non-null output pointer.
            unsafe { watch.write(ptr) };
            STATUS_SUCCESS
        }
        Err(e) => status_from_error(&e),
    }
}

unsafe extern "C" fn watch_remove<S: Store, E: BusEvents>(
    interface: Pinterface,
    watch: *mut StoreWatch,
) -> NtStatus {
    // SAFETY: called through a table this module served.
    let context = unsafe { context::<S, E>(interface) };
    let Some(handle) = context.watches.lock().remove(&(watch as usize)) else {
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: the event was attached in `watch_add` and not detached since.
    unsafe { context.events.detach(handle.event) };
    status(context.store.watch_remove(handle.id))
}

unsafe extern "C" fn poll(_interface: Pinterface) {
    // Nothing to do: the implementation makes progress on its own.
}
