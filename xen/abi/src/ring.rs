//! `io/ring.h`: the shared request/response ring every split driver uses.
//!
//! A shared ring is one or more pages (granted to the peer) holding a 64-byte
//! [`SringHeader`] (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, padding)
//! followed by a power-of-two number of slots, each big enough for a request or
//! a response (C: `union <name>_sring_entry`). The frontend ([`FrontRing`])
//! produces requests and consumes responses; the backend ([`BackRing`]) does the
//! opposite. Each end keeps its private indices (`req_prod_pvt`/`rsp_cons`,
//! `rsp_prod_pvt`/`req_cons`) outside the shared memory.
//!
//! What this module adds to the C macros:
//! - **Safety.** The ring owns its memory through the [`RingMemory`] contract, so
//!   callers that `deny(unsafe_code)` can use it; entries are [`RingEntry`]
//!   plain-old-data, always copied whole (volatile) into a local before use: the
//!   peer cannot change a value after we validated it.
//! - **A hostile producer index is an error, not a trust.** Before yielding
//!   anything, [`FrontRing::responses`] checks that the backend produced no more
//!   responses than there are published, unanswered requests (so at most the ring
//!   size, which is all `RING_RESPONSE_PROD_OVERFLOW` checks), and [`BackRing::requests`] that the frontend
//!   did not queue more than the ring holds (`RING_REQUEST_PROD_OVERFLOW`). Either
//!   returns [`ProducerOverflow`] carrying the numbers; nothing panics.
//!
//! Barriers follow the C macros exactly: `xen_wmb()` before publishing a producer
//! index is a release fence, `xen_rmb()` after reading the peer's producer index is
//! an acquire fence, and `xen_mb()` (between publishing and reading the event
//! index, and in the final checks) is a sequentially consistent fence, which is a
//! full `mfence` on x86. Shared indices are accessed with 32-bit atomics.
//!
//! All index arithmetic is modulo 2^32 (`RING_IDX` wraps); the slot of index `i`
//! is `i & (size - 1)`.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering, fence};

use crate::XEN_PAGE_SIZE;

/// `RING_IDX`: a free-running producer or consumer index, wrapping at 2^32.
pub type RingIdx = u32;

/// The header at the start of every shared ring (`struct <name>_sring` up to its
/// `ring` member). The ring code accesses these fields atomically through the
/// shared memory; this type documents (and the conformance test checks) the layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants a notification when `req_prod` passes this index.
    pub req_event: RingIdx,
    /// Responses produced by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants a notification when `rsp_prod` passes this index.
    pub rsp_event: RingIdx,
    /// `pvt.pvt_pad`: protocol-private bytes (netif's `smartpoll_active`, unused by
    /// the protocols we speak); zeroed at initialisation.
    pub pvt: [u8; 4],
    /// `__pad`: reserved, zeroed at initialisation.
    pub pad: [u8; 44],
}

const _: () = assert!(size_of::<SringHeader>() == 64);

/// Byte offset of the first slot in a shared ring (`offsetof(struct x_sring, ring)`).
pub const SRING_HEADER_SIZE: usize = size_of::<SringHeader>();

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);

/// Shared memory a ring lives in.
///
/// # Safety
/// An implementor guarantees, for as long as the value lives (until it is dropped
/// or handed back by `into_memory`):
/// - [`as_ptr`](Self::as_ptr) always returns the same pointer, aligned to
///   [`XEN_PAGE_SIZE`], valid for reads and writes of [`len`](Self::len) bytes,
///   which are initialised (e.g. zeroed pages);
/// - [`len`](Self::len) always returns the same non-zero multiple of
///   [`XEN_PAGE_SIZE`];
/// - nothing in this address space accesses those bytes except through ring types
///   built on this memory (the remote domain does, which is the point, and is
///   handled by the ring's volatile copies and atomics).
pub unsafe trait RingMemory {
    /// The first byte of the ring.
    fn as_ptr(&self) -> NonNull<u8>;
    /// The ring's size in bytes.
    fn len(&self) -> usize;
    /// Whether the memory is empty (never, for memory that keeps the contract).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a shared reference keeps the referent (and so its contract) alive for
// as long as the reference lives; both methods forward.
unsafe impl<M: RingMemory + ?Sized> RingMemory for &M {
    fn as_ptr(&self) -> NonNull<u8> {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

// SAFETY: an `Arc` keeps the referent (and so its contract) alive for as long as
// any clone lives; both methods forward. Several clones let a test play both ends
// of one ring.
#[cfg(feature = "alloc")]
unsafe impl<M: RingMemory + ?Sized> RingMemory for alloc::sync::Arc<M> {
    fn as_ptr(&self) -> NonNull<u8> {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

/// A request or response that can travel through a shared ring.
///
/// # Safety
/// The type must be plain old data: `#[repr(C)]` (or a primitive), every bit
/// pattern a valid value (the peer writes whatever it likes into a slot), no
/// padding bytes (make padding an explicit field, so nothing uninitialised is
/// written to the peer), and an alignment of at most 8.
pub unsafe trait RingEntry: Copy + 'static {}

// SAFETY: primitive integers are plain old data without padding.
unsafe impl RingEntry for u8 {}
// SAFETY: as above.
unsafe impl RingEntry for u16 {}
// SAFETY: as above.
unsafe impl RingEntry for u32 {}
// SAFETY: as above.
unsafe impl RingEntry for u64 {}
// SAFETY: an array of plain old data is plain old data: no padding between
// elements (size is a multiple of alignment), any bits valid, same alignment.
unsafe impl<T: RingEntry, const N: usize> RingEntry for [T; N] {}

/// Reinterprets one ring entry as another (as C code does with the members of a
/// request union, e.g. a `blkif_request_discard` sent in a `blkif_request` slot):
/// copies the first `min(size_of::<Src>(), size_of::<Dst>())` bytes of `src` and
/// zero-fills the rest of the result.
pub fn cast_entry<Src: RingEntry, Dst: RingEntry>(src: &Src) -> Dst {
    let mut dst = core::mem::MaybeUninit::<Dst>::zeroed();
    let count = if size_of::<Src>() < size_of::<Dst>() {
        size_of::<Src>()
    } else {
        size_of::<Dst>()
    };
    let from = core::ptr::from_ref(src).cast::<u8>();
    let to = dst.as_mut_ptr().cast::<u8>();
    // SAFETY: `count` bytes are in bounds of both `src` and `dst`, which are
    // distinct objects; every byte of `src` is initialised (RingEntry: no padding).
    unsafe { core::ptr::copy_nonoverlapping(from, to, count) };
    // SAFETY: `dst` is fully initialised (zeroed, then partly overwritten), and any
    // bit pattern is a valid `Dst` (RingEntry contract).
    unsafe { dst.assume_init() }
}

/// Size in bytes of one slot of a ring carrying `Req` and `Rsp`
/// (`sizeof(union <name>_sring_entry)`).
pub const fn entry_size<Req: RingEntry, Rsp: RingEntry>() -> usize {
    let size = if size_of::<Req>() > size_of::<Rsp>() {
        size_of::<Req>()
    } else {
        size_of::<Rsp>()
    };
    let align = if align_of::<Req>() > align_of::<Rsp>() {
        align_of::<Req>()
    } else {
        align_of::<Rsp>()
    };
    // A union's size is its largest member rounded up to its largest alignment.
    size.div_ceil(align) * align
}

/// `__RD32`: `x` rounded down to a power of two (0 stays 0).
pub const fn round_down_pow2(x: usize) -> usize {
    if x == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - x.leading_zeros())
    }
}

/// `__CONST_RING_SIZE`: how many slots of `entry_size` bytes a ring of `bytes`
/// bytes holds (the largest power of two that fits after the header). Zero if
/// not even one fits.
pub const fn ring_size(bytes: usize, entry_size: usize) -> usize {
    if bytes < SRING_HEADER_SIZE || entry_size == 0 {
        return 0;
    }
    round_down_pow2((bytes - SRING_HEADER_SIZE) / entry_size)
}

/// Why memory cannot hold a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingSetupError {
    /// The memory does not start on a page boundary.
    Misaligned,
    /// The length is zero or not a multiple of [`XEN_PAGE_SIZE`].
    BadLength {
        /// The length offered.
        len: usize,
    },
    /// Not one slot fits, or the slot count does not fit in a `RING_IDX`.
    BadSize {
        /// The length offered.
        len: usize,
        /// The slot size of the ring type.
        entry_size: usize,
    },
}

impl fmt::Display for RingSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => f.write_str("ring memory is not page-aligned"),
            Self::BadLength { len } => {
                write!(
                    f,
                    "ring memory length {len} is not a non-zero number of pages"
                )
            }
            Self::BadSize { len, entry_size } => {
                write!(
                    f,
                    "{len} bytes cannot hold a ring of {entry_size}-byte entries"
                )
            }
        }
    }
}

/// The peer's producer index claims more entries than it may have produced: the
/// peer is broken or hostile, and the ring must not be used further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerOverflow {
    /// The producer index read from the shared ring.
    pub prod: RingIdx,
    /// Our consumer index.
    pub cons: RingIdx,
    /// How many entries the peer may have produced past `cons`.
    pub limit: u32,
}

impl fmt::Display for ProducerOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer producer index {} is {} past consumer index {} (at most {} allowed)",
            self.prod,
            self.prod.wrapping_sub(self.cons),
            self.cons,
            self.limit
        )
    }
}

/// No free slot: the front has `size` requests outstanding, or the back has no
/// consumed request left to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

impl fmt::Display for RingFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shared ring full")
    }
}

/// A snapshot of the four shared indices, for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedIndices {
    /// `req_prod`.
    pub req_prod: RingIdx,
    /// `req_event`.
    pub req_event: RingIdx,
    /// `rsp_prod`.
    pub rsp_prod: RingIdx,
    /// `rsp_event`.
    pub rsp_event: RingIdx,
}

/// The shared memory plus geometry; the part both ends have in common.
struct Shared<Req, Rsp, M> {
    mem: M,
    size: u32,
    _entries: PhantomData<fn() -> (Req, Rsp)>,
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> Shared<Req, Rsp, M> {
    const ENTRY_SIZE: usize = {
        assert!(align_of::<Req>() <= 8 && align_of::<Rsp>() <= 8);
        assert!(size_of::<Req>() > 0 && size_of::<Rsp>() > 0);
        entry_size::<Req, Rsp>()
    };

    fn new(mem: M) -> Result<Self, RingSetupError> {
        let len = mem.len();
        if mem.as_ptr().as_ptr().addr() % XEN_PAGE_SIZE != 0 {
            return Err(RingSetupError::Misaligned);
        }
        if len == 0 || len % XEN_PAGE_SIZE != 0 {
            return Err(RingSetupError::BadLength { len });
        }
        let slots = ring_size(len, Self::ENTRY_SIZE);
        // Indices are compared modulo 2^32, so at most 2^31 slots make sense.
        let size = match u32::try_from(slots) {
            Ok(size) if size != 0 && size <= 1 << 31 => size,
            _ => {
                return Err(RingSetupError::BadSize {
                    len,
                    entry_size: Self::ENTRY_SIZE,
                });
            }
        };
        Ok(Self {
            mem,
            size,
            _entries: PhantomData,
        })
    }

    /// The shared index at byte `offset` of the header.
    fn index(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset < SRING_HEADER_SIZE && offset % 4 == 0);
        let ptr = self.mem.as_ptr().as_ptr().wrapping_add(offset);
        // SAFETY: 1. the memory is valid for `len >= XEN_PAGE_SIZE` bytes while
        // `self.mem` lives (RingMemory contract), so `offset < 64` is in bounds;
        // 2. it is page-aligned, so `ptr` (base + a multiple of 4) is aligned for
        // a u32; 3. in this address space the header is only accessed atomically,
        // through this function; 4. the returned borrow is tied to `&self`.
        #[allow(clippy::cast_ptr_alignment, reason = "aligned: see SAFETY")]
        unsafe {
            AtomicU32::from_ptr(ptr.cast::<u32>())
        }
    }

    /// Pointer to the slot of index `idx`.
    fn slot(&self, idx: RingIdx) -> *mut u8 {
        let slot = (idx & (self.size - 1)) as usize;
        // `slot < size` and `64 + size * ENTRY_SIZE <= len` (how `size` was
        // computed in `new`), so the result stays inside the memory.
        self.mem
            .as_ptr()
            .as_ptr()
            .wrapping_add(SRING_HEADER_SIZE + slot * Self::ENTRY_SIZE)
    }

    /// Copies the entry in slot `idx` into a local, whole (`RING_COPY_*`).
    fn read<T: RingEntry>(&self, idx: RingIdx) -> T {
        // SAFETY: the slot is in bounds (`slot`), aligned (page-aligned base,
        // 64-byte header, slot size a multiple of T's alignment, which is at most
        // 8), initialised (RingMemory contract), and any bit pattern is a valid T
        // (RingEntry contract). Volatile: the peer may write it concurrently; we
        // read it exactly once and only use the copy.
        unsafe { self.slot(idx).cast::<T>().read_volatile() }
    }

    /// Writes `value` whole into slot `idx`.
    fn write<T: RingEntry>(&self, idx: RingIdx, value: &T) {
        // SAFETY: in bounds and aligned as in `read`; T has no padding
        // (RingEntry contract), so every written byte is initialised.
        unsafe { self.slot(idx).cast::<T>().write_volatile(*value) }
    }

    fn snapshot(&self) -> SharedIndices {
        SharedIndices {
            req_prod: self.index(REQ_PROD).load(Ordering::Relaxed),
            req_event: self.index(REQ_EVENT).load(Ordering::Relaxed),
            rsp_prod: self.index(RSP_PROD).load(Ordering::Relaxed),
            rsp_event: self.index(RSP_EVENT).load(Ordering::Relaxed),
        }
    }

    /// Publishes a producer index and says whether the peer asked to be woken for
    /// it (`RING_PUSH_*_AND_CHECK_NOTIFY`).
    fn push_and_check_notify(&self, prod: usize, event: usize, old: RingIdx, new: RingIdx) -> bool {
        fence(Ordering::Release); // xen_wmb(): entries before the index
        self.index(prod).store(new, Ordering::Relaxed);
        fence(Ordering::SeqCst); // xen_mb(): index before reading the event
        let event = self.index(event).load(Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    fn push(&self, prod: usize, new: RingIdx) {
        fence(Ordering::Release); // xen_wmb()
        self.index(prod).store(new, Ordering::Relaxed);
    }

    /// Reads the peer's producer index, then `xen_rmb()` so that entries read
    /// afterwards are at least as new as it.
    fn peer_prod(&self, prod: usize) -> RingIdx {
        let value = self.index(prod).load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        value
    }
}

/// The frontend's half of a shared ring (`<name>_front_ring`): produces `Req`,
/// consumes `Rsp`. Owns its memory `M`.
pub struct FrontRing<Req, Rsp, M> {
    shared: Shared<Req, Rsp, M>,
    req_prod_pvt: RingIdx,
    /// The `req_prod` we last published (the shared copy is peer-writable, so the
    /// notify decision uses ours).
    req_prod_pushed: RingIdx,
    rsp_cons: RingIdx,
}

impl<Req, Rsp, M> fmt::Debug for FrontRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("size", &self.shared.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_pushed", &self.req_prod_pushed)
            .field("rsp_cons", &self.rsp_cons)
            .finish_non_exhaustive()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> FrontRing<Req, Rsp, M> {
    /// `XEN_FRONT_RING_INIT`: initialises the shared ring in `mem` (indices 0,
    /// event indices 1, padding zeroed) and takes the front end of it.
    pub fn new(mem: M) -> Result<Self, RingSetupError> {
        let shared = Shared::new(mem)?;
        // SHARED_RING_INIT. The padding is zeroed byte-wise: nothing else in this
        // address space uses it.
        shared.index(REQ_PROD).store(0, Ordering::Relaxed);
        shared.index(RSP_PROD).store(0, Ordering::Relaxed);
        shared.index(REQ_EVENT).store(1, Ordering::Relaxed);
        shared.index(RSP_EVENT).store(1, Ordering::Relaxed);
        let base = shared.mem.as_ptr().as_ptr();
        for offset in offset_of!(SringHeader, pvt)..SRING_HEADER_SIZE {
            let byte = base.wrapping_add(offset);
            // SAFETY: `offset < 64 <= len`, inside the memory (RingMemory contract);
            // a byte store needs no alignment.
            unsafe { byte.write_volatile(0) };
        }
        fence(Ordering::Release);
        Ok(Self::from_shared(shared, 0))
    }

    /// `FRONT_RING_ATTACH`: takes the front end of an already initialised ring
    /// whose private indices both stand at `start` (the shared ring is untouched).
    pub fn attach(mem: M, start: RingIdx) -> Result<Self, RingSetupError> {
        Ok(Self::from_shared(Shared::new(mem)?, start))
    }

    fn from_shared(shared: Shared<Req, Rsp, M>, start: RingIdx) -> Self {
        Self {
            shared,
            req_prod_pvt: start,
            req_prod_pushed: start,
            rsp_cons: start,
        }
    }

    /// Gives the memory back.
    pub fn into_memory(self) -> M {
        self.shared.mem
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.shared.mem
    }

    /// `RING_SIZE`: the number of slots.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// `req_prod_pvt`: the index the next request goes to.
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// `rsp_cons`: the index of the next response to consume.
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// Requests written (pushed or not) whose responses are not consumed yet.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        self.shared.size - self.outstanding()
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes `req` whole into the next free slot (not yet visible to the
    /// backend: see [`push_requests_and_check_notify`](Self::push_requests_and_check_notify))
    /// and returns its index.
    pub fn write_request(&mut self, req: &Req) -> Result<RingIdx, RingFull> {
        if self.is_full() {
            return Err(RingFull);
        }
        let idx = self.req_prod_pvt;
        self.shared.write(idx, req);
        self.req_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_REQUESTS`: publishes the written requests, without asking
    /// whether the backend wants a notification.
    pub fn push_requests(&mut self) {
        self.shared.push(REQ_PROD, self.req_prod_pvt);
        self.req_prod_pushed = self.req_prod_pvt;
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the written requests and
    /// returns whether the backend must be notified (its `req_event` lies in the
    /// newly published range).
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod_pushed;
        let new = self.req_prod_pvt;
        self.req_prod_pushed = new;
        self.shared
            .push_and_check_notify(REQ_PROD, REQ_EVENT, old, new)
    }

    /// Reads `rsp_prod` and checks it: the backend cannot have answered more
    /// requests than we published (so never more than the ring size).
    fn checked_rsp_prod(&self) -> Result<RingIdx, ProducerOverflow> {
        let prod = self.shared.peer_prod(RSP_PROD);
        let limit = self.req_prod_pushed.wrapping_sub(self.rsp_cons);
        if prod.wrapping_sub(self.rsp_cons) > limit {
            return Err(ProducerOverflow {
                prod,
                cons: self.rsp_cons,
                limit,
            });
        }
        Ok(prod)
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`, checked: how many responses wait.
    pub fn unconsumed_responses(&self) -> Result<u32, ProducerOverflow> {
        Ok(self.checked_rsp_prod()?.wrapping_sub(self.rsp_cons))
    }

    /// The responses available now, each copied whole out of the ring; consuming
    /// one advances `rsp_cons`. Checks `rsp_prod` first (see
    /// [`ProducerOverflow`]); on error nothing is consumed.
    pub fn responses(&mut self) -> Result<Responses<'_, Req, Rsp, M>, ProducerOverflow> {
        let prod = self.checked_rsp_prod()?;
        Ok(Responses { ring: self, prod })
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if no response waits, asks for a
    /// notification on the next one (`rsp_event = rsp_cons + 1`) and checks again,
    /// closing the race with a backend that produced one meanwhile. `true` means
    /// responses wait: poll again instead of sleeping.
    pub fn final_check_for_responses(&mut self) -> Result<bool, ProducerOverflow> {
        if self.unconsumed_responses()? != 0 {
            return Ok(true);
        }
        self.shared
            .index(RSP_EVENT)
            .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst); // xen_mb()
        Ok(self.unconsumed_responses()? != 0)
    }

    /// A snapshot of the shared indices, for diagnostics.
    pub fn shared_indices(&self) -> SharedIndices {
        self.shared.snapshot()
    }
}

/// Iterator over the responses available when [`FrontRing::responses`] was called.
pub struct Responses<'a, Req, Rsp, M> {
    ring: &'a mut FrontRing<Req, Rsp, M>,
    prod: RingIdx,
}

impl<Req, Rsp, M> fmt::Debug for Responses<'_, Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responses")
            .field("cons", &self.ring.rsp_cons)
            .field("prod", &self.prod)
            .finish()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> Iterator for Responses<'_, Req, Rsp, M> {
    type Item = Rsp;

    fn next(&mut self) -> Option<Rsp> {
        let idx = self.ring.rsp_cons;
        if idx == self.prod {
            return None;
        }
        let rsp = self.ring.shared.read(idx);
        self.ring.rsp_cons = idx.wrapping_add(1);
        Some(rsp)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.prod.wrapping_sub(self.ring.rsp_cons) as usize;
        (left, Some(left))
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> ExactSizeIterator
    for Responses<'_, Req, Rsp, M>
{
}

/// The backend's half of a shared ring (`<name>_back_ring`): consumes `Req`,
/// produces `Rsp`. Owns its memory `M`. Used by tests and fakes that play the
/// backend, and by anything that serves a ring.
pub struct BackRing<Req, Rsp, M> {
    shared: Shared<Req, Rsp, M>,
    rsp_prod_pvt: RingIdx,
    /// The `rsp_prod` we last published.
    rsp_prod_pushed: RingIdx,
    req_cons: RingIdx,
}

impl<Req, Rsp, M> fmt::Debug for BackRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("size", &self.shared.size)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod_pushed", &self.rsp_prod_pushed)
            .field("req_cons", &self.req_cons)
            .finish_non_exhaustive()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> BackRing<Req, Rsp, M> {
    /// `BACK_RING_INIT`: takes the back end of a ring the frontend initialised.
    pub fn new(mem: M) -> Result<Self, RingSetupError> {
        Self::attach(mem, 0)
    }

    /// `BACK_RING_ATTACH`: as [`new`](Self::new), with both private indices at
    /// `start`.
    pub fn attach(mem: M, start: RingIdx) -> Result<Self, RingSetupError> {
        Ok(Self {
            shared: Shared::new(mem)?,
            rsp_prod_pvt: start,
            rsp_prod_pushed: start,
            req_cons: start,
        })
    }

    /// Gives the memory back.
    pub fn into_memory(self) -> M {
        self.shared.mem
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.shared.mem
    }

    /// `RING_SIZE`: the number of slots.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// `req_cons`: the index of the next request to consume.
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// `rsp_prod_pvt`: the index the next response goes to.
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Requests consumed but not answered yet.
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Reads `req_prod` and checks it (`RING_REQUEST_PROD_OVERFLOW`): the
    /// frontend cannot have more than `size` requests unanswered.
    fn checked_req_prod(&self) -> Result<RingIdx, ProducerOverflow> {
        let prod = self.shared.peer_prod(REQ_PROD);
        let limit = self.shared.size - self.unanswered();
        if prod.wrapping_sub(self.req_cons) > limit {
            return Err(ProducerOverflow {
                prod,
                cons: self.req_cons,
                limit,
            });
        }
        Ok(prod)
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`, checked: how many requests wait.
    pub fn unconsumed_requests(&self) -> Result<u32, ProducerOverflow> {
        Ok(self.checked_req_prod()?.wrapping_sub(self.req_cons))
    }

    /// The requests available now, each copied whole out of the ring; consuming
    /// one advances `req_cons`. Checks `req_prod` first; on error nothing is
    /// consumed.
    pub fn requests(&mut self) -> Result<Requests<'_, Req, Rsp, M>, ProducerOverflow> {
        let prod = self.checked_req_prod()?;
        Ok(Requests { ring: self, prod })
    }

    /// Writes `rsp` whole into the next response slot (not yet visible to the
    /// frontend) and returns its index. Fails if every consumed request has been
    /// answered: the slot still holds an unconsumed request.
    pub fn write_response(&mut self, rsp: &Rsp) -> Result<RingIdx, RingFull> {
        if self.unanswered() == 0 {
            return Err(RingFull);
        }
        let idx = self.rsp_prod_pvt;
        self.shared.write(idx, rsp);
        self.rsp_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_RESPONSES`.
    pub fn push_responses(&mut self) {
        self.shared.push(RSP_PROD, self.rsp_prod_pvt);
        self.rsp_prod_pushed = self.rsp_prod_pvt;
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the written responses and
    /// returns whether the frontend must be notified.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_pushed;
        let new = self.rsp_prod_pvt;
        self.rsp_prod_pushed = new;
        self.shared
            .push_and_check_notify(RSP_PROD, RSP_EVENT, old, new)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if no request waits, asks for a
    /// notification on the next one (`req_event = req_cons + 1`) and checks again.
    /// `true` means requests wait.
    pub fn final_check_for_requests(&mut self) -> Result<bool, ProducerOverflow> {
        if self.unconsumed_requests()? != 0 {
            return Ok(true);
        }
        self.shared
            .index(REQ_EVENT)
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst); // xen_mb()
        Ok(self.unconsumed_requests()? != 0)
    }

    /// A snapshot of the shared indices, for diagnostics.
    pub fn shared_indices(&self) -> SharedIndices {
        self.shared.snapshot()
    }
}

/// Iterator over the requests available when [`BackRing::requests`] was called.
pub struct Requests<'a, Req, Rsp, M> {
    ring: &'a mut BackRing<Req, Rsp, M>,
    prod: RingIdx,
}

impl<Req, Rsp, M> fmt::Debug for Requests<'_, Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requests")
            .field("cons", &self.ring.req_cons)
            .field("prod", &self.prod)
            .finish()
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> Iterator for Requests<'_, Req, Rsp, M> {
    type Item = Req;

    fn next(&mut self) -> Option<Req> {
        let idx = self.ring.req_cons;
        if idx == self.prod {
            return None;
        }
        let req = self.ring.shared.read(idx);
        self.ring.req_cons = idx.wrapping_add(1);
        Some(req)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.prod.wrapping_sub(self.ring.req_cons) as usize;
        (left, Some(left))
    }
}

impl<Req: RingEntry, Rsp: RingEntry, M: RingMemory> ExactSizeIterator
    for Requests<'_, Req, Rsp, M>
{
}

/// Zeroed, page-aligned heap pages: ring memory for tests and in-process fakes
/// (nothing a hypervisor can grant).
#[cfg(feature = "alloc")]
pub struct HeapRingMemory {
    ptr: NonNull<u8>,
    len: usize,
}

#[cfg(feature = "alloc")]
impl HeapRingMemory {
    fn layout(len: usize) -> Option<alloc::alloc::Layout> {
        alloc::alloc::Layout::from_size_align(len, XEN_PAGE_SIZE).ok()
    }

    /// Allocates `pages` zeroed pages; `None` if `pages` is zero, too large or the
    /// allocation fails.
    pub fn new(pages: usize) -> Option<Self> {
        let len = pages.checked_mul(XEN_PAGE_SIZE).filter(|&len| len != 0)?;
        let layout = Self::layout(len)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })?;
        Some(Self { ptr, len })
    }
}

#[cfg(feature = "alloc")]
impl Drop for HeapRingMemory {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: `ptr` came from `alloc_zeroed` with this very layout (same
            // `len`, same alignment) and is freed only here.
            unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(feature = "alloc")]
impl fmt::Debug for HeapRingMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapRingMemory")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the allocation is page-aligned, zeroed (initialised), `len` bytes long,
// a non-zero multiple of the page size, and lives until `drop`; `ptr` and `len`
// never change.
#[cfg(feature = "alloc")]
unsafe impl RingMemory for HeapRingMemory {
    fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

// SAFETY: the allocation is owned exclusively; the ring types only touch it
// through atomics (indices) and volatile copies (entries), which is what two ends
// on two threads do with one shared ring.
#[cfg(feature = "alloc")]
unsafe impl Send for HeapRingMemory {}
// SAFETY: as above: shared access goes through atomics and volatile copies only.
#[cfg(feature = "alloc")]
unsafe impl Sync for HeapRingMemory {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request: an id and a payload derived from it.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Req {
        id: u64,
        payload: u64,
    }
    // SAFETY: two u64, no padding, any bits valid.
    unsafe impl RingEntry for Req {}

    /// A response: shorter than a request, as in most protocols.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Rsp {
        id: u64,
        status: u32,
        pad: u32,
    }
    // SAFETY: u64 + two u32, no padding, any bits valid.
    unsafe impl RingEntry for Rsp {}

    type Front<'a> = FrontRing<Req, Rsp, &'a HeapRingMemory>;
    type Back<'a> = BackRing<Req, Rsp, &'a HeapRingMemory>;

    fn pair(mem: &HeapRingMemory) -> (Front<'_>, Back<'_>) {
        let front = FrontRing::new(mem).unwrap();
        let back = BackRing::new(mem).unwrap();
        (front, back)
    }

    fn header(mem: &HeapRingMemory, offset: usize) -> &AtomicU32 {
        // SAFETY: inside the first page, 4-aligned; the tests access the header
        // only atomically.
        unsafe { AtomicU32::from_ptr(mem.as_ptr().as_ptr().wrapping_add(offset).cast()) }
    }

    #[test]
    fn sizes_follow_const_ring_size() {
        assert_eq!(entry_size::<Req, Rsp>(), 16);
        assert_eq!(entry_size::<u8, u64>(), 8);
        assert_eq!(entry_size::<[u8; 12], u64>(), 16);
        // (4096 - 64) / 16 = 252 -> 128.
        assert_eq!(ring_size(4096, 16), 128);
        assert_eq!(ring_size(4096 * 4, 16), 1 << 9);
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(63, 1), 0);
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(255), 128);
        assert_eq!(round_down_pow2(256), 256);
        let mem = HeapRingMemory::new(4).unwrap();
        assert_eq!(Front::new(&mem).unwrap().size(), 1 << 9);
    }

    #[test]
    fn init_sets_events_and_clears_padding() {
        let mem = HeapRingMemory::new(1).unwrap();
        // SAFETY: in bounds; nothing else uses the memory yet.
        unsafe { mem.as_ptr().as_ptr().wrapping_add(30).write(0xaa) };
        header(&mem, REQ_PROD).store(7, Ordering::Relaxed);
        let front = Front::new(&mem).unwrap();
        assert_eq!(
            front.shared_indices(),
            SharedIndices {
                req_prod: 0,
                req_event: 1,
                rsp_prod: 0,
                rsp_event: 1
            }
        );
        // SAFETY: in bounds.
        assert_eq!(unsafe { mem.as_ptr().as_ptr().wrapping_add(30).read() }, 0);
        assert_eq!(front.free_requests(), 128);
    }

    #[test]
    fn round_trip_and_notify_decisions() {
        let mem = HeapRingMemory::new(1).unwrap();
        let (mut front, mut back) = pair(&mem);
        // The backend waits for req_event = 1: the first push notifies.
        front.write_request(&Req { id: 1, payload: 10 }).unwrap();
        assert!(front.push_requests_and_check_notify());
        // The backend has not re-armed: later pushes stay quiet.
        front.write_request(&Req { id: 2, payload: 20 }).unwrap();
        assert!(!front.push_requests_and_check_notify());
        // Pushing nothing never notifies.
        assert!(!front.push_requests_and_check_notify());

        let got: [Req; 2] = {
            let mut it = back.requests().unwrap();
            assert_eq!(it.len(), 2);
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got[0], Req { id: 1, payload: 10 });
        assert_eq!(got[1], Req { id: 2, payload: 20 });
        // Nothing left: final check re-arms req_event = req_cons + 1.
        assert!(!back.final_check_for_requests().unwrap());
        assert_eq!(back.shared_indices().req_event, 3);
        front.write_request(&Req { id: 3, payload: 30 }).unwrap();
        front.write_request(&Req { id: 4, payload: 40 }).unwrap();
        assert!(front.push_requests_and_check_notify());

        // Responses: the frontend waits for rsp_event = 1.
        back.write_response(&Rsp {
            id: 1,
            status: 0,
            pad: 0,
        })
        .unwrap();
        assert!(back.push_responses_and_check_notify());
        back.write_response(&Rsp {
            id: 2,
            status: 0,
            pad: 0,
        })
        .unwrap();
        assert!(!back.push_responses_and_check_notify());
        // Requests 3 and 4 are not consumed: no slot to answer in.
        assert_eq!(
            back.write_response(&Rsp {
                id: 9,
                status: 0,
                pad: 0
            }),
            Err(RingFull)
        );
        let ids: [u64; 2] = {
            let mut it = front.responses().unwrap();
            [it.next().unwrap().id, it.next().unwrap().id]
        };
        assert_eq!(ids, [1, 2]);
        assert!(!front.final_check_for_responses().unwrap());
        assert_eq!(front.shared_indices().rsp_event, 3);
        assert_eq!(front.outstanding(), 2);

        // A final check that finds work says so without re-arming.
        assert_eq!(back.requests().unwrap().count(), 2);
        back.write_response(&Rsp {
            id: 3,
            status: 0,
            pad: 0,
        })
        .unwrap();
        back.push_responses();
        assert!(front.final_check_for_responses().unwrap());
    }

    #[test]
    fn full_ring_refuses_requests() {
        let mem = HeapRingMemory::new(1).unwrap();
        let (mut front, _back) = pair(&mem);
        for id in 0..128 {
            front.write_request(&Req { id, payload: 0 }).unwrap();
        }
        assert!(front.is_full());
        assert_eq!(
            front.write_request(&Req { id: 0, payload: 0 }),
            Err(RingFull)
        );
    }

    #[test]
    fn hostile_response_producer_is_an_error() {
        let mem = HeapRingMemory::new(1).unwrap();
        let (mut front, _back) = pair(&mem);
        for id in 0..3 {
            front.write_request(&Req { id, payload: 0 }).unwrap();
        }
        front.push_requests();
        // Four responses to three requests.
        header(&mem, RSP_PROD).store(4, Ordering::Relaxed);
        let err = front.responses().unwrap_err();
        assert_eq!(
            err,
            ProducerOverflow {
                prod: 4,
                cons: 0,
                limit: 3
            }
        );
        assert!(front.final_check_for_responses().is_err());
        assert!(front.unconsumed_responses().is_err());
        // Nothing was consumed.
        assert_eq!(front.rsp_cons(), 0);
        // A written but unpublished request cannot have been answered.
        front.write_request(&Req { id: 3, payload: 0 }).unwrap();
        assert_eq!(front.responses().unwrap_err().limit, 3);
        // A producer index behind the consumer is a huge jump forward.
        header(&mem, RSP_PROD).store(u32::MAX, Ordering::Relaxed);
        assert!(front.responses().is_err());
        header(&mem, RSP_PROD).store(3, Ordering::Relaxed);
        assert_eq!(front.responses().unwrap().count(), 3);
    }

    #[test]
    fn hostile_request_producer_is_an_error() {
        let mem = HeapRingMemory::new(1).unwrap();
        let (_front, mut back) = pair(&mem);
        header(&mem, REQ_PROD).store(129, Ordering::Relaxed);
        assert_eq!(
            back.requests().unwrap_err(),
            ProducerOverflow {
                prod: 129,
                cons: 0,
                limit: 128
            }
        );
        assert!(back.final_check_for_requests().is_err());
        header(&mem, REQ_PROD).store(128, Ordering::Relaxed);
        assert_eq!(back.requests().unwrap().count(), 128);
        // One answered: the frontend may queue exactly one more.
        back.write_response(&Rsp {
            id: 0,
            status: 0,
            pad: 0,
        })
        .unwrap();
        back.push_responses();
        header(&mem, REQ_PROD).store(130, Ordering::Relaxed);
        assert_eq!(
            back.requests().unwrap_err(),
            ProducerOverflow {
                prod: 130,
                cons: 128,
                limit: 1
            }
        );
        header(&mem, REQ_PROD).store(129, Ordering::Relaxed);
        assert_eq!(back.requests().unwrap().count(), 1);
    }

    #[test]
    fn bad_memory_is_refused() {
        struct Odd(HeapRingMemory, usize, usize);
        // SAFETY: test-only: `new` must refuse these before touching anything.
        unsafe impl RingMemory for Odd {
            fn as_ptr(&self) -> NonNull<u8> {
                // SAFETY: in bounds (offset < one page).
                unsafe { self.0.as_ptr().add(self.1) }
            }
            fn len(&self) -> usize {
                self.2
            }
        }
        let misaligned = Odd(HeapRingMemory::new(2).unwrap(), 8, 4096);
        assert_eq!(
            FrontRing::<Req, Rsp, _>::new(misaligned).unwrap_err(),
            RingSetupError::Misaligned
        );
        let short = Odd(HeapRingMemory::new(1).unwrap(), 0, 100);
        assert_eq!(
            FrontRing::<Req, Rsp, _>::new(short).unwrap_err(),
            RingSetupError::BadLength { len: 100 }
        );
        let big = FrontRing::<[u64; 8], u8, _>::new(HeapRingMemory::new(1).unwrap()).unwrap();
        assert_eq!(big.size(), 32);
        let mem = HeapRingMemory::new(1).unwrap();
        let none = FrontRing::<[u64; 512], u8, _>::new(&mem).unwrap_err();
        assert_eq!(
            none,
            RingSetupError::BadSize {
                len: 4096,
                entry_size: 4096
            }
        );
    }

    #[test]
    fn into_memory_gives_it_back() {
        let mem = HeapRingMemory::new(2).unwrap();
        let ptr = mem.as_ptr();
        let front = FrontRing::<Req, Rsp, _>::new(mem).unwrap();
        let mem = front.into_memory();
        assert_eq!(mem.as_ptr(), ptr);
        assert_eq!(mem.len(), 8192);
    }
}
