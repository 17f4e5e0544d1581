//! The traits a portable core is generic over.
//!
//! A core never learns whether Windows, the Linux rig or a unit-test fake is below
//! it. Each trait is small and maps onto one XENBUS interface (STORE, EVTCHN,
//! GNTTAB, ...), so the Windows shell implements it by calling the interface table
//! it queried from the bus, and the rig platform by calling Linux's `/dev/xen/*`.
//!
//! IRQL contract (Windows): [`Store`] runs at PASSIVE_LEVEL and may block, always
//! bounded by a timeout. [`EventChannels::notify`], [`EventChannels::unmask`],
//! [`GrantTable::grant`] and [`GrantTable::revoke`] may be called at
//! DISPATCH_LEVEL and never block or allocate. Opening and closing channels,
//! allocating pages: PASSIVE_LEVEL.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;

pub use xen_abi::xenbus::XenbusState;
pub use xen_abi::xs_wire::XsError;

/// The size of a Xen page, the unit of granting and of shared rings.
pub const PAGE_SIZE: usize = 4096;

/// A Xen domain id (`domid_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    /// `DOMID_SELF`.
    pub const SELF: Self = Self(0x7ff0);
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An event channel port number (`evtchn_port_t`), as published in xenstore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u32);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A grant reference (`grant_ref_t`), as published in xenstore or put in a ring
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A guest page frame number (of a 4 KiB Xen page). On Windows it comes from an
/// MDL or an SRB scatter-gather list; in the rig it names a page the platform
/// allocated. Cores pass it through and never dereference it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

/// A xenstore transaction. [`Txn::NONE`] means "outside any transaction".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Txn(pub u32);

impl Txn {
    /// Not in a transaction (`tx_id` 0 on the wire).
    pub const NONE: Self = Self(0);
}

/// A watch registered with [`Store::watch_add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(pub u32);

/// One entry of a node's permission list (`XS_SET_PERMS`): the first entry names
/// the owner and the access everyone else gets; later entries grant `domid`
/// the given access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The domain the entry is about.
    pub domid: DomId,
    /// What it may do.
    pub access: Access,
}

/// Access in a [`Permission`] (`n`, `r`, `w`, `b` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub const fn letter(self) -> u8 {
        match self {
            Self::None => b'n',
            Self::Read => b'r',
            Self::Write => b'w',
            Self::Both => b'b',
        }
    }

    /// Parses a wire letter.
    pub const fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'n' => Some(Self::None),
            b'r' => Some(Self::Read),
            b'w' => Some(Self::Write),
            b'b' => Some(Self::Both),
            _ => None,
        }
    }
}

/// Why a xenstore operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// xenstored answered with an error name; [`XsError::Eagain`] on a
    /// transaction end means "conflict, retry".
    Xs(XsError),
    /// A path is empty, too long, or contains a NUL.
    InvalidPath,
    /// A request's payload would exceed `XENSTORE_PAYLOAD_MAX`.
    TooLarge {
        /// Bytes the payload needed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The reply broke the protocol (bad length, unknown type, missing NUL,
    /// unexpected request id, ring index jump...). The connection is unusable.
    Protocol(&'static str),
    /// No reply or event within the caller's timeout.
    Timeout,
    /// The connection to xenstored is gone.
    Disconnected,
    /// Too many requests or watches at once.
    Busy,
    /// A value was not what the caller asked for (not UTF-8, not a number...).
    BadValue,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xs(e) => write!(f, "xenstore error {e}"),
            Self::InvalidPath => f.write_str("invalid xenstore path"),
            Self::TooLarge { len, max } => write!(f, "payload of {len} bytes exceeds {max}"),
            Self::Protocol(why) => write!(f, "xenstore protocol violation: {why}"),
            Self::Timeout => f.write_str("xenstore timed out"),
            Self::Disconnected => f.write_str("xenstore disconnected"),
            Self::Busy => f.write_str("xenstore client busy"),
            Self::BadValue => f.write_str("unexpected xenstore value"),
        }
    }
}

/// xenstore: maps onto XENBUS's STORE interface.
///
/// Paths are absolute (`/local/domain/...`) or relative to the caller's domain
/// home, exactly as xenstored interprets them. Values are bytes; xenstore does not
/// NUL-terminate them.
pub trait Store {
    /// Reads a node's value.
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError>;
    /// Writes a node, creating it and missing parents.
    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Creates a node with an empty value (no error if it exists).
    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError>;
    /// Removes a node and everything below it.
    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError>;
    /// Lists a node's children (names, not paths).
    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError>;
    /// Replaces a node's permission list.
    fn set_permissions(&self, txn: Txn, path: &str, perms: &[Permission])
    -> Result<(), StoreError>;
    /// Starts a transaction.
    fn transaction_start(&self) -> Result<Txn, StoreError>;
    /// Ends a transaction. With `commit`, `Err(StoreError::Xs(XsError::Eagain))`
    /// means another writer conflicted and the whole transaction must be redone.
    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError>;
    /// Watches `path` and everything below it. The watch fires once at
    /// registration (xenstored's rule) and after every change.
    fn watch_add(&self, path: &str) -> Result<WatchId, StoreError>;
    /// Removes a watch; no event for it is reported afterwards.
    fn watch_remove(&self, watch: WatchId) -> Result<(), StoreError>;
    /// Waits until `watch` has fired since the last call (returns `Ok(true)`), or
    /// `timeout` passes (`Ok(false)`). Events of one watch coalesce.
    fn watch_wait(&self, watch: WatchId, timeout: Duration) -> Result<bool, StoreError>;
}

/// Why an event channel operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// The hypervisor (or platform) refused, with its errno.
    Refused(i32),
    /// No more ports or handles.
    Exhausted,
    /// The channel is closed or was never open.
    Closed,
}

impl fmt::Display for EvtchnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(errno) => write!(f, "event channel operation refused (errno {errno})"),
            Self::Exhausted => f.write_str("no event channel available"),
            Self::Closed => f.write_str("event channel closed"),
        }
    }
}

/// Event channels: maps onto XENBUS's EVTCHN interface.
///
/// Delivery is the platform's business: on Windows the shell's DPC, in the rig a
/// thread waiting on `/dev/xen/evtchn`, calls the core's bounded `poll_*` entry
/// point for the channel that fired. The core only opens, notifies, unmasks and
/// closes.
pub trait EventChannels {
    /// An open channel. Dropping it without [`EventChannels::close`] leaks the port.
    type Channel;
    /// Allocates an unbound port that domain `remote` may bind to (what a frontend
    /// publishes as `event-channel`). It starts masked until the first
    /// [`EventChannels::unmask`].
    fn open_unbound(&self, remote: DomId) -> Result<Self::Channel, EvtchnError>;
    /// The local port number of `channel`.
    fn port(&self, channel: &Self::Channel) -> Port;
    /// Signals the remote end. Never blocks.
    fn notify(&self, channel: &Self::Channel);
    /// Re-enables delivery after the core has processed an event. Never blocks.
    fn unmask(&self, channel: &Self::Channel);
    /// Closes the port.
    fn close(&self, channel: Self::Channel);
}

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// No free grant reference (the grant table is full).
    Exhausted,
    /// The remote domain still maps or copies the page (`GTF_reading` /
    /// `GTF_writing`): access was not ended, and the page must not be reused.
    InUse,
    /// The reference is not one this table handed out.
    Invalid,
    /// The platform cannot grant this frame (in the rig: not one of its pages).
    BadFrame,
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("grant table exhausted"),
            Self::InUse => f.write_str("grant still in use by the remote domain"),
            Self::Invalid => f.write_str("invalid grant reference"),
            Self::BadFrame => f.write_str("frame cannot be granted"),
        }
    }
}

/// Grant tables: maps onto XENBUS's GNTTAB interface.
pub trait GrantTable {
    /// Lets domain `domid` map `pfn` (read-only if `readonly`).
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError>;
    /// Ends foreign access to `gref` and frees the reference. Returns
    /// [`GrantError::InUse`] while the remote side still maps the page: the grant
    /// then stays in place and the caller must neither reuse nor free the page
    /// (quarantine it and try again later).
    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError>;
    /// How many more references [`GrantTable::grant`] can hand out now, so that a
    /// frontend can size its rings, queues and indirect pages to a budget.
    fn available(&self) -> usize;
}

/// Pages of guest memory owned by the platform: one allocation of `count`
/// pages, contiguous in this address space (what a multi-page shared ring needs),
/// each with its own frame number, zeroed when allocated, valid until handed back
/// with [`Memory::free`].
#[derive(Debug)]
pub struct Pages {
    ptr: NonNull<u8>,
    pfns: Vec<Pfn>,
}

impl Pages {
    /// Wraps a platform allocation.
    ///
    /// # Safety
    /// `ptr` must be page-aligned and valid for reads and writes of
    /// `pfns.len() * PAGE_SIZE` bytes until the `Pages` is given back to the
    /// [`Memory`] that made it; `pfns[i]` must be the frame the hypervisor knows
    /// the `i`-th page by; `pfns` must not be empty.
    pub unsafe fn new(ptr: NonNull<u8>, pfns: Vec<Pfn>) -> Self {
        debug_assert!(!pfns.is_empty());
        Self { ptr, pfns }
    }

    /// How many pages.
    pub fn count(&self) -> usize {
        self.pfns.len()
    }

    /// Size in bytes (`count() * PAGE_SIZE`).
    pub fn len(&self) -> usize {
        self.pfns.len() * PAGE_SIZE
    }

    /// Never true: an allocation has at least one page.
    pub fn is_empty(&self) -> bool {
        self.pfns.is_empty()
    }

    /// The frame number of page `index`, what gets granted.
    pub fn pfn(&self, index: usize) -> Option<Pfn> {
        self.pfns.get(index).copied()
    }

    /// Every page's frame number, in address order.
    pub fn pfns(&self) -> &[Pfn] {
        &self.pfns
    }

    /// The first byte's address in this address space. Valid for [`Pages::len`]
    /// bytes (the constructor's contract). Shared pages are accessed with volatile
    /// or atomic operations only, since the remote side writes them concurrently.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

// SAFETY: `Pages` is an owned, exclusive handle to platform memory (the
// constructor's contract); moving it to another thread moves that ownership.
unsafe impl Send for Pages {}

/// Why a memory allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of memory")
    }
}

/// Grantable pages: on Windows non-paged, physically backed pool; in the rig,
/// pages from `/dev/xen/gntalloc`.
pub trait Memory {
    /// Allocates `count` zeroed pages, contiguous in this address space.
    fn alloc(&self, count: usize) -> Result<Pages, OutOfMemory>;
    /// Gives pages back. The caller guarantees no grant of them is still active.
    fn free(&self, pages: Pages);
}

/// When a [`Suspend`] callback runs after the domain resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuspendPhase {
    /// Right after resume, on one CPU with interrupts off (HIGH_LEVEL on
    /// Windows): no blocking, no allocation, no lock another CPU may hold.
    Early,
    /// Once every CPU is back (DISPATCH_LEVEL on Windows): re-connect rings
    /// and re-publish xenstore keys from here (by scheduling PASSIVE work).
    Late,
}

/// A resume callback.
pub type ResumeCallback = Box<dyn Fn() + Send + Sync>;

/// Why a suspend operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendError {
    /// Out of memory or registration slots.
    Exhausted,
    /// The platform refused (e.g. a suspend is already in progress).
    Refused,
}

impl fmt::Display for SuspendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("no room for a suspend callback"),
            Self::Refused => f.write_str("suspend refused"),
        }
    }
}

/// Suspend and resume: maps onto XENBUS's SUSPEND interface.
///
/// After a resume (save/restore, live migration) every shared ring, grant and
/// event channel is gone from the backend's point of view: frontends learn of
/// it from their callbacks and reconnect.
pub trait Suspend {
    /// A registered callback. Dropping it without [`Suspend::deregister`]
    /// leaks the registration (the callback keeps running).
    type Registration;
    /// Runs `callback` in `phase` after every resume.
    fn register(
        &self,
        phase: SuspendPhase,
        callback: ResumeCallback,
    ) -> Result<Self::Registration, SuspendError>;
    /// Stops a callback; it does not run again once this returns.
    fn deregister(&self, registration: Self::Registration);
    /// Suspends the domain now (what the toolstack's `control/shutdown` =
    /// `suspend` asks for); returns after the resume.
    fn trigger(&self) -> Result<(), SuspendError>;
    /// How many times the domain has been suspended since boot: a frontend
    /// compares it to notice a resume it slept through.
    fn count(&self) -> u32;
}

/// A debug dump callback; the argument says whether the system is crashing
/// (then: no locks, no allocation, print what is cheap).
pub type DumpCallback = Box<dyn Fn(bool) + Send + Sync>;

/// Why a debug operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugError {
    /// Out of memory or registration slots.
    Exhausted,
    /// The prefix is empty or contains a NUL.
    InvalidPrefix,
}

impl fmt::Display for DebugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("no room for a debug callback"),
            Self::InvalidPrefix => f.write_str("invalid debug prefix"),
        }
    }
}

/// Debug dumps: maps onto XENBUS's DEBUG interface.
///
/// A core registers a callback that prints its state (rings, shadows,
/// counters) with [`Debug::print`] when the platform dumps: on demand, or on a
/// crash.
pub trait Debug {
    /// A registered callback. Dropping it without [`Debug::deregister`] leaks
    /// the registration.
    type Registration;
    /// Registers `callback` under `prefix` (the name lines are tagged with).
    fn register(
        &self,
        prefix: &str,
        callback: DumpCallback,
    ) -> Result<Self::Registration, DebugError>;
    /// Prints one piece of a dump. Call it only from a dump callback: the Xen
    /// Project's bus tags each line with the running callback's prefix (and
    /// asserts there is one).
    fn print(&self, text: &str);
    /// Runs one callback now, or every callback with `None`.
    fn trigger(&self, registration: Option<&Self::Registration>);
    /// Stops a callback.
    fn deregister(&self, registration: Self::Registration);
}

/// Emulated devices QEMU can unplug at the next boot, so the PV drivers own
/// the disks and NICs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnplugDevices {
    /// Emulated network cards.
    Nics,
    /// Emulated disks (IDE/AHCI), except what the bus must keep to boot.
    Disks,
}

/// Emulated device unplug: maps onto XENBUS's UNPLUG interface. Requests
/// count per device type (each frontend driver makes one) and take effect at
/// the next boot.
pub trait Unplug {
    /// Makes (`make`) or withdraws a request to unplug `devices`.
    fn request(&self, devices: UnplugDevices, make: bool);
    /// Whether an unplug of `devices` is requested; `None` when the bus is too
    /// old to say (UNPLUG version 1).
    fn is_requested(&self, devices: UnplugDevices) -> Option<bool>;
    /// Whether the system booted from an emulated disk (then disks cannot be
    /// unplugged); `None` when the bus is too old to say (before version 3).
    fn boot_emulated(&self) -> Option<bool>;
    /// Asks for a reboot on behalf of `module` (a driver name); false when the
    /// bus is too old to take the request (before version 3).
    fn reboot(&self, module: &str) -> bool;
}

/// A shared implementation is an implementation (a platform object held by
/// both a provider and the test that inspects it).
impl<S: Store + ?Sized> Store for alloc::sync::Arc<S> {
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        (**self).read(txn, path)
    }
    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).write(txn, path, value)
    }
    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        (**self).mkdir(txn, path)
    }
    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        (**self).remove(txn, path)
    }
    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        (**self).directory(txn, path)
    }
    fn set_permissions(
        &self,
        txn: Txn,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), StoreError> {
        (**self).set_permissions(txn, path, perms)
    }
    fn transaction_start(&self) -> Result<Txn, StoreError> {
        (**self).transaction_start()
    }
    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError> {
        (**self).transaction_end(txn, commit)
    }
    fn watch_add(&self, path: &str) -> Result<WatchId, StoreError> {
        (**self).watch_add(path)
    }
    fn watch_remove(&self, watch: WatchId) -> Result<(), StoreError> {
        (**self).watch_remove(watch)
    }
    fn watch_wait(&self, watch: WatchId, timeout: Duration) -> Result<bool, StoreError> {
        (**self).watch_wait(watch, timeout)
    }
}

impl<E: EventChannels + ?Sized> EventChannels for alloc::sync::Arc<E> {
    type Channel = E::Channel;
    fn open_unbound(&self, remote: DomId) -> Result<Self::Channel, EvtchnError> {
        (**self).open_unbound(remote)
    }
    fn port(&self, channel: &Self::Channel) -> Port {
        (**self).port(channel)
    }
    fn notify(&self, channel: &Self::Channel) {
        (**self).notify(channel);
    }
    fn unmask(&self, channel: &Self::Channel) {
        (**self).unmask(channel);
    }
    fn close(&self, channel: Self::Channel) {
        (**self).close(channel);
    }
}

impl<G: GrantTable + ?Sized> GrantTable for alloc::sync::Arc<G> {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        (**self).grant(domid, pfn, readonly)
    }
    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        (**self).revoke(gref)
    }
    fn available(&self) -> usize {
        (**self).available()
    }
}

// SAFETY: the constructor's contract gives a page-aligned pointer valid for
// reads and writes of `count() * PAGE_SIZE` bytes (PAGE_SIZE is Xen's page
// size) until the `Pages` is handed back, and `Memory::alloc` zeroes them, so
// the bytes are initialised; `as_ptr` and `len` never change for a value;
// `pfns` is never empty, so `len` is a non-zero multiple of the page size.
// Shared pages are accessed through the ring types only (the type's docs).
unsafe impl xen_abi::ring::RingMemory for Pages {
    fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn len(&self) -> usize {
        self.pfns.len() * PAGE_SIZE
    }
}

const _: () = assert!(PAGE_SIZE == xen_abi::XEN_PAGE_SIZE);

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use xen_abi::netif::{NetifTxRequest, NetifTxResponse};
    use xen_abi::ring::{BackRing, FrontRing, RingMemory};

    /// Zeroed, page-aligned heap pages standing in for platform memory.
    struct HeapPages {
        ptr: NonNull<u8>,
        layout: std::alloc::Layout,
    }

    impl HeapPages {
        fn new(count: usize) -> Self {
            let layout = std::alloc::Layout::from_size_align(count * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: a non-zero size.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            Self {
                ptr: NonNull::new(ptr).unwrap(),
                layout,
            }
        }
    }

    impl Drop for HeapPages {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }

    #[test]
    fn pages_carry_a_shared_ring() {
        let heap = HeapPages::new(2);
        let pfns = alloc::vec![Pfn(0x100), Pfn(0x101)];
        // SAFETY: `heap` is page-aligned, zeroed, two pages, and outlives `pages`.
        let pages = unsafe { Pages::new(heap.ptr, pfns) };
        assert_eq!(RingMemory::len(&pages), 2 * PAGE_SIZE);
        assert_eq!(RingMemory::as_ptr(&pages), heap.ptr);

        let mut front = FrontRing::<NetifTxRequest, NetifTxResponse, _>::new(&pages).unwrap();
        let mut back = BackRing::<NetifTxRequest, NetifTxResponse, _>::attach(&pages, 0).unwrap();
        let request = NetifTxRequest {
            id: 7,
            size: 60,
            ..NetifTxRequest::default()
        };
        front.write_request(&request).unwrap();
        front.push_requests();
        let got: alloc::vec::Vec<_> = back.requests().unwrap().collect();
        assert_eq!(got, [request]);
        back.write_response(&NetifTxResponse { id: 7, status: 0 })
            .unwrap();
        back.push_responses();
        let responses: alloc::vec::Vec<_> = front.responses().unwrap().collect();
        assert_eq!(responses, [NetifTxResponse { id: 7, status: 0 }]);
        // The rings borrow `pages`, which goes before `heap`.
        let _ = (front, back);
        drop(pages);
    }
}
