//! Serving interface tables (bus side) and asking for them (child side), with
//! the semantics of the Xen Project's C bus.
//!
//! A child sends `IRP_MN_QUERY_INTERFACE` with a GUID, a version, a buffer and
//! its size. The bus answers:
//! * an unknown GUID: `STATUS_NOT_SUPPORTED` (the status PnP IRPs start with,
//!   which the C bus leaves in place when no entry of its table matches);
//! * a known GUID, unknown version: `STATUS_NOT_SUPPORTED`;
//! * a known version, buffer smaller than that version's table:
//!   `STATUS_BUFFER_OVERFLOW`, buffer untouched;
//! * otherwise: the table copied into the buffer with `Context` set, success.
//!
//! The child asks for the newest version it knows and steps down while the bus
//! says `STATUS_NOT_SUPPORTED`, within the range it supports ([`query_newest`]).
//!
//! Reference counting: the C bus leaves `InterfaceReference` /
//! `InterfaceDereference` null and counts users in each interface's `Acquire` /
//! `Release` (the first `Acquire` brings the subsystem up). Our tables fill all
//! four; both count into the provider's [`References`]. Our child wrappers
//! `Acquire` when they start and `Release` when dropped, which works with
//! either bus.

use crate::table::InterfaceTable;
use crate::types::{
    Guid, Interface, NtStatus, Pinterface, Pvoid, STATUS_BUFFER_OVERFLOW, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS,
};
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;
use core::sync::atomic::{AtomicUsize, Ordering};

/// How a child asks its bus for an interface (`IRP_MN_QUERY_INTERFACE`).
///
/// # Safety
/// When `query_interface` succeeds it must have written a complete table of the
/// requested GUID and version whose methods may be called, with its `Context`,
/// for as long as `self` stays borrowed.
pub unsafe trait QueryInterface {
    /// Asks for version `version` of interface `guid`, written to `buffer`.
    ///
    /// # Safety
    /// `buffer` must be valid for writes of `size` bytes and 8-byte aligned.
    unsafe fn query_interface(
        &self,
        guid: &Guid,
        version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus;
}

/// One interface a bus serves.
pub trait ServeInterface {
    /// The interface's GUID.
    fn guid(&self) -> Guid;
    /// The versions served.
    fn versions(&self) -> RangeInclusive<u16>;
    /// Writes the table of `version` to `buffer`, with the C semantics above.
    ///
    /// # Safety
    /// `buffer` must be valid for writes of `size` bytes and 8-byte aligned.
    unsafe fn get_interface(&self, version: u16, buffer: *mut Interface, size: u16) -> NtStatus;
    /// The provider's reference counts.
    fn references(&self) -> &References;
}

/// Writes `table` to a child's buffer: `STATUS_BUFFER_OVERFLOW` (buffer left
/// alone) when `size` is smaller than the table.
///
/// # Safety
/// `buffer` must be valid for writes of `size` bytes and 8-byte aligned.
pub unsafe fn write_table<T: InterfaceTable>(
    table: T,
    buffer: *mut Interface,
    size: u16,
) -> NtStatus {
    if size < T::size() {
        return STATUS_BUFFER_OVERFLOW;
    }
    // SAFETY: the caller guarantees `size` writable, aligned bytes at `buffer`,
    // and `size` is at least `size_of::<T>()`.
    unsafe { buffer.cast::<T>().write(table) };
    STATUS_SUCCESS
}

/// The header a provider puts at the start of each table it serves.
pub fn served_header<T: InterfaceTable>(context: Pvoid) -> Interface {
    Interface {
        size: T::size(),
        version: T::VERSION,
        context,
        interface_reference: Some(interface_reference),
        interface_dereference: Some(interface_dereference),
    }
}

/// Users of a served interface: `InterfaceReference` calls and `Acquire` calls
/// not yet balanced. A provider's context starts with this (at offset 0), so
/// the header's reference functions find it from `Context` alone.
#[repr(C)]
#[derive(Debug, Default)]
pub struct References {
    referenced: AtomicUsize,
    acquired: AtomicUsize,
}

impl References {
    /// Outstanding `InterfaceReference` calls.
    pub fn referenced(&self) -> usize {
        self.referenced.load(Ordering::Acquire)
    }

    /// Outstanding `Acquire` calls.
    pub fn acquired(&self) -> usize {
        self.acquired.load(Ordering::Acquire)
    }

    /// Whether no child holds the interface: the provider may go.
    pub fn idle(&self) -> bool {
        self.referenced() == 0 && self.acquired() == 0
    }

    /// Counts an `Acquire`.
    pub fn acquire(&self) {
        self.acquired.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a `Release`. An unbalanced release is ignored (and returns false)
    /// rather than wrapping.
    pub fn release(&self) -> bool {
        self.acquired
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn reference(&self) {
        self.referenced.fetch_add(1, Ordering::AcqRel);
    }

    fn dereference(&self) -> bool {
        self.referenced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// `InterfaceReference` of every table we serve.
unsafe extern "C" fn interface_reference(context: Pvoid) {
    // SAFETY: we only put this function in headers whose `Context` points at a
    // live provider context that starts with `References` (repr(C), offset 0).
    let refs = unsafe { &*context.cast::<References>() };
    refs.reference();
}

/// `InterfaceDereference` of every table we serve.
unsafe extern "C" fn interface_dereference(context: Pvoid) {
    // SAFETY: as in `interface_reference`.
    let refs = unsafe { &*context.cast::<References>() };
    refs.dereference();
}

/// A provider's context: one heap allocation whose address is the `Context`
/// of every table the provider serves. Owned through a raw pointer (not a
/// `Box` field) so that moving the provider never asserts unique access to
/// memory the tables' callers reach through that pointer; freed on drop.
pub(crate) struct Owned<T> {
    ptr: core::ptr::NonNull<T>,
}

impl<T> Owned<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            ptr: core::ptr::NonNull::from(alloc::boxed::Box::leak(alloc::boxed::Box::new(value))),
        }
    }

    /// The address to put in a header's `Context`.
    pub(crate) fn as_context(&self) -> Pvoid {
        self.ptr.as_ptr().cast()
    }
}

impl<T> core::ops::Deref for Owned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `ptr` comes from a leaked box freed only in `drop`; only
        // shared references are ever made from it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: the leaked box of `new`, freed once; the provider owning
        // this is going, so no table of it is in use (children borrow it).
        drop(unsafe { alloc::boxed::Box::from_raw(self.ptr.as_ptr()) });
    }
}

/// The provider context a served table's header points at.
///
/// # Safety
/// `interface` is the header of a table a provider with context type `T`
/// served, and that provider is alive for `'a`.
pub(crate) unsafe fn provider<'a, T>(interface: Pinterface) -> &'a T {
    // SAFETY: the caller's guarantee: a valid header.
    let context = unsafe { (*interface).context };
    // SAFETY: the caller's guarantee: `Context` points at a live `T`.
    unsafe { &*context.cast::<T>() }
}

/// `Acquire` from the `Interface` header: shared by every provider.
pub(crate) unsafe extern "C" fn acquire(interface: Pinterface) -> NtStatus {
    // SAFETY: the child passes the header of a table we served, whose
    // `Context` points at a live provider context starting with `References`.
    let refs = unsafe { provider::<References>(interface) };
    refs.acquire();
    STATUS_SUCCESS
}

/// `Release` from the `Interface` header: shared by every provider.
pub(crate) unsafe extern "C" fn release(interface: Pinterface) {
    // SAFETY: as in `acquire`.
    let refs = unsafe { provider::<References>(interface) };
    refs.release();
}

/// A bus: the interfaces it serves, found by GUID.
#[derive(Default)]
pub struct Bus<'a> {
    interfaces: Vec<&'a (dyn ServeInterface + Sync)>,
}

impl fmt::Debug for Bus<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.interfaces.iter().map(|i| (i.guid(), i.versions())))
            .finish()
    }
}

/// Why [`Bus::serve`] refused an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyServed(pub Guid);

impl<'a> Bus<'a> {
    /// A bus serving nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an interface. One provider per GUID.
    pub fn serve(
        &mut self,
        interface: &'a (dyn ServeInterface + Sync),
    ) -> Result<(), AlreadyServed> {
        let guid = interface.guid();
        if self.interfaces.iter().any(|i| i.guid() == guid) {
            return Err(AlreadyServed(guid));
        }
        self.interfaces.push(interface);
        Ok(())
    }

    /// Whether the bus serves version `version` of interface `guid`.
    pub fn serves(&self, guid: &Guid, version: u16) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.guid() == *guid && i.versions().contains(&version))
    }

    /// `IRP_MN_QUERY_INTERFACE`, as the C bus answers it.
    ///
    /// # Safety
    /// `buffer` must be valid for writes of `size` bytes and 8-byte aligned.
    pub unsafe fn get_interface(
        &self,
        guid: &Guid,
        version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus {
        match self.interfaces.iter().find(|i| i.guid() == *guid) {
            // SAFETY: the caller's guarantee about `buffer`, passed on.
            Some(interface) => unsafe { interface.get_interface(version, buffer, size) },
            None => STATUS_NOT_SUPPORTED,
        }
    }
}

// SAFETY: every provider's table stays valid while the provider lives, and the
// providers outlive `'a`, which outlives any borrow of the bus.
unsafe impl QueryInterface for Bus<'_> {
    unsafe fn query_interface(
        &self,
        guid: &Guid,
        version: u16,
        buffer: *mut Interface,
        size: u16,
    ) -> NtStatus {
        // SAFETY: the caller's guarantee about `buffer`, passed on.
        unsafe { self.get_interface(guid, version, buffer, size) }
    }
}

/// Why a child could not get an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// The bus serves no version of the interface in the child's range.
    NotSupported {
        /// The interface.
        name: &'static str,
        /// The oldest version the child accepts.
        min: u16,
        /// The newest version the child knows.
        max: u16,
    },
    /// The bus failed the query with another status.
    Failed {
        /// The interface.
        name: &'static str,
        /// The version asked for.
        version: u16,
        /// The bus's status.
        status: NtStatus,
    },
    /// The bus answered success with a table that is not what was asked for
    /// (wrong version or size in the header, or a null method the child needs).
    BadTable {
        /// The interface.
        name: &'static str,
        /// The version asked for.
        version: u16,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported { name, min, max } => {
                write!(f, "bus serves no {name} interface version in {min}..={max}")
            }
            Self::Failed {
                name,
                version,
                status,
            } => write!(
                f,
                "{name} interface version {version}: query failed with {status}"
            ),
            Self::BadTable {
                name,
                version,
                reason,
            } => write!(f, "{name} interface version {version}: bad table: {reason}"),
        }
    }
}

/// Asks `bus` for exactly version `T::VERSION` of `T`'s interface and checks
/// the header it wrote. `Ok(None)` when the bus does not serve that version.
pub fn query<T: InterfaceTable>(bus: &impl QueryInterface) -> Result<Option<T>, QueryError> {
    let mut table = T::zeroed();
    // SAFETY: `table` is a live, aligned `T` of `T::size()` bytes, and the
    // trait's contract says a successful query wrote a valid `T` there.
    let status = unsafe {
        bus.query_interface(
            &T::GUID,
            T::VERSION,
            core::ptr::from_mut(&mut table).cast::<Interface>(),
            T::size(),
        )
    };
    if status == STATUS_NOT_SUPPORTED {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(QueryError::Failed {
            name: T::NAME,
            version: T::VERSION,
            status,
        });
    }
    let header = table.header();
    let bad = |reason| QueryError::BadTable {
        name: T::NAME,
        version: T::VERSION,
        reason,
    };
    if header.version != T::VERSION {
        return Err(bad("header has another version"));
    }
    if header.size != T::size() {
        return Err(bad("header has another size"));
    }
    Ok(Some(table))
}

/// Child-side negotiation: tries `versions` newest first, calling `attempt`
/// (which usually calls [`query`] for the table type of that version) until
/// one answers `Some`. A failure other than "not supported" stops the search.
pub fn query_newest<R>(
    name: &'static str,
    versions: RangeInclusive<u16>,
    mut attempt: impl FnMut(u16) -> Result<Option<R>, QueryError>,
) -> Result<R, QueryError> {
    let (min, max) = (*versions.start(), *versions.end());
    for version in versions.rev() {
        if let Some(found) = attempt(version)? {
            return Ok(found);
        }
    }
    Err(QueryError::NotSupported { name, min, max })
}

/// Checks that a method a child needs is there.
pub(crate) fn method<F>(
    method: Option<F>,
    name: &'static str,
    version: u16,
    what: &'static str,
) -> Result<F, QueryError> {
    method.ok_or(QueryError::BadTable {
        name,
        version,
        reason: what,
    })
}
