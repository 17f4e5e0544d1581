//! One queue: a shared ring, its event channel, the shadow table (the single
//! record of every request from submit to completion, and what is replayed
//! after a reconnect) and the per-queue page pools.
//!
//! Submit and completion never allocate: shadows, their segment lists and the
//! pools are sized when the queue is set up.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
    BLKIF_SEGMENTS_PER_INDIRECT_PAGE, BlkifFrontRing, BlkifRequest, BlkifRequestDiscard,
    BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
};
use xen_abi::ring::RingMemory;
use xenbus_interface::api::{EventChannels, GrantRef, GrantTable, PAGE_SIZE, Pfn};

use super::io::{Completion, Frames, IoRequest, Operation, Segment, Status, SubmitError};
use super::pool::PagePool;
use crate::scsi::Discard;

/// What the connected backend lets this queue do.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent features, one per backend key"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// The `handle` put in requests (the vbd's device id, truncated as blkif
    /// does).
    pub handle: u16,
    /// Disk size in 512-byte sectors.
    pub sectors: u64,
    /// No writes or discards.
    pub read_only: bool,
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// Discard parameters, if offered.
    pub discard: Option<Discard>,
    /// Segments per indirect request (0: none).
    pub indirect_segments: u32,
    /// Persistent grants: all data goes through the copy pool.
    pub persistent: bool,
}

impl Features {
    /// Most segments one request can carry.
    pub fn max_segments(&self) -> usize {
        if self.indirect_segments as usize > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            self.indirect_segments as usize
        } else {
            BLKIF_MAX_SEGMENTS_PER_REQUEST
        }
    }

    /// Most scatter-list elements one request may have: twice the blkif
    /// segments, so that a misaligned buffer (one element more than it has
    /// pages) or a list of sub-page pieces still fits; such lists go through
    /// the copy pool.
    pub fn max_caller_segments(&self) -> usize {
        2 * self.max_segments()
    }

    /// Largest request in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_segments() * PAGE_SIZE
    }
}

/// Why a queue stopped trusting its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenReason {
    /// `rsp_prod` claims more responses than requests outstanding.
    ProducerOverflow {
        /// The backend's `rsp_prod`.
        prod: u32,
        /// Our `rsp_cons`.
        cons: u32,
    },
    /// A response names an id that is not in flight (unknown or duplicate).
    BadId(u64),
    /// A response's operation is not its request's.
    BadOperation {
        /// The id.
        id: u64,
        /// What the backend said.
        got: u8,
        /// What we sent.
        sent: u8,
    },
    /// A response status is not one blkif defines.
    BadStatus {
        /// The id.
        id: u64,
        /// The status.
        status: i16,
    },
    /// The backend answered but still maps a data grant.
    GrantStillMapped(GrantRef),
}

impl fmt::Display for BrokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProducerOverflow { prod, cons } => {
                write!(f, "response producer {prod} overflows consumer {cons}")
            }
            Self::BadId(id) => write!(f, "response for unknown or completed id {id}"),
            Self::BadOperation { id, got, sent } => {
                write!(f, "response {id} has operation {got}, request had {sent}")
            }
            Self::BadStatus { id, status } => write!(f, "response {id} has bad status {status}"),
            Self::GrantStillMapped(gref) => {
                write!(f, "backend completed a request but still maps grant {gref}")
            }
        }
    }
}

/// Where a shadow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Unused.
    Free,
    /// Waiting to be put on the ring (new, or replayed after reconnect).
    Waiting,
    /// On the ring, response pending.
    InFlight,
}

/// Which blkif operation a write-with-FUA is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The data transfer (or the only phase).
    Data,
    /// The cache flush that makes an FUA write durable.
    Flush,
}

/// The record of one request.
#[derive(Debug)]
struct Shadow {
    state: State,
    seq: u64,
    tag: u64,
    operation: Operation,
    sector: u64,
    /// The caller's scatter list (for copies and replay).
    segments: Vec<Segment>,
    phase: Phase,
    /// The blkif operation sent (responses must echo it).
    sent_op: u8,
    /// Data grants of the caller's frames (direct path).
    grants: Vec<GrantRef>,
    /// Copy-pool pages in use (copy path).
    pool_pages: Vec<u32>,
    /// Indirect pages in use.
    indirect_pages: Vec<u32>,
    /// Segments as sent (scratch, kept to avoid allocation).
    wire: Vec<BlkifRequestSegment>,
}

impl Shadow {
    fn new(max_segments: usize, max_indirect_pages: usize) -> Self {
        Self {
            state: State::Free,
            seq: 0,
            tag: 0,
            operation: Operation::Flush,
            sector: 0,
            segments: Vec::with_capacity(2 * max_segments),
            phase: Phase::Data,
            sent_op: 0,
            grants: Vec::with_capacity(max_segments),
            pool_pages: Vec::with_capacity(max_segments),
            indirect_pages: Vec::with_capacity(max_indirect_pages),
            wire: Vec::with_capacity(max_segments),
        }
    }

    fn bytes(&self) -> usize {
        self.segments.iter().map(|s| usize::from(s.len)).sum()
    }
}

/// The platform handles a queue works with.
#[derive(Debug)]
pub struct Env<'a, E, G, F> {
    /// Event channels.
    pub events: &'a E,
    /// Grant table.
    pub grants: &'a G,
    /// Frame access.
    pub frames: &'a F,
    /// The backend domain.
    pub backend: xenbus_interface::api::DomId,
}

impl<E, G, F> Clone for Env<'_, E, G, F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, G, F> Copy for Env<'_, E, G, F> {}

/// A connected ring.
pub(crate) struct Ring<C, R> {
    pub(crate) front: BlkifFrontRing<R>,
    pub(crate) grants: Vec<GrantRef>,
    pub(crate) channel: C,
}

impl<C, R> fmt::Debug for Ring<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("front", &self.front)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// Result of a bounded poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollOutcome {
    /// Responses consumed.
    pub completed: usize,
    /// More responses wait: poll again rather than waiting for an event.
    pub more: bool,
}

/// One blkif queue.
#[derive(Debug)]
pub struct Queue<C, R> {
    pub(crate) ring: Option<Ring<C, R>>,
    shadows: Vec<Shadow>,
    free: Vec<u32>,
    waiting: VecDeque<u32>,
    next_seq: u64,
    pub(crate) pool: PagePool,
    pub(crate) indirect: PagePool,
    pub(crate) indirect_pages_per_request: usize,
    pub(crate) features: Features,
    /// Frames of the caller still granted after a failure (never to be reused).
    quarantined_grants: Vec<(GrantRef, Pfn)>,
}

impl<C, R: RingMemory> Queue<C, R> {
    /// A queue without a ring, with `shadows` request records.
    pub(crate) fn new(
        shadows: usize,
        features: Features,
        indirect_pages_per_request: usize,
        pool: PagePool,
        indirect: PagePool,
    ) -> Self {
        let mut queue = Self {
            ring: None,
            shadows: Vec::new(),
            free: Vec::new(),
            waiting: VecDeque::new(),
            next_seq: 0,
            pool,
            indirect,
            indirect_pages_per_request,
            features,
            quarantined_grants: Vec::new(),
        };
        queue.grow(shadows);
        queue
    }

    /// Makes sure there are at least `count` shadows, each able to hold the
    /// current features' largest request (connect time only: allocates).
    pub(crate) fn grow(&mut self, count: usize) {
        let max_segments = self.features.max_segments();
        for shadow in &mut self.shadows {
            if shadow.segments.capacity() < 2 * max_segments {
                let extra = 2 * max_segments - shadow.segments.len();
                shadow.segments.reserve(extra);
                shadow.grants.reserve(max_segments - shadow.grants.len());
                shadow
                    .pool_pages
                    .reserve(max_segments - shadow.pool_pages.len());
                shadow.wire.reserve(max_segments - shadow.wire.len());
            }
            let ind = self.indirect_pages_per_request;
            if shadow.indirect_pages.capacity() < ind {
                shadow
                    .indirect_pages
                    .reserve(ind - shadow.indirect_pages.len());
            }
        }
        while self.shadows.len() < count {
            let id = u32::try_from(self.shadows.len()).unwrap_or(u32::MAX);
            self.shadows
                .push(Shadow::new(max_segments, self.indirect_pages_per_request));
            self.free.push(id);
        }
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        let waiting = self.waiting.len();
        self.waiting
            .reserve(self.shadows.len().saturating_sub(waiting));
    }

    /// Requests accepted and not completed.
    pub fn outstanding(&self) -> usize {
        self.shadows.len() - self.free.len()
    }

    /// Requests waiting to be put on the ring.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Responses the backend has published that we have not consumed yet
    /// (0 without a ring; at most the ring's size, whatever `rsp_prod` says).
    pub fn responses_waiting(&self) -> usize {
        self.ring.as_ref().map_or(0, |r| {
            let waiting = r
                .front
                .shared_indices()
                .rsp_prod
                .wrapping_sub(r.front.rsp_cons());
            (waiting as usize).min(r.front.outstanding() as usize)
        })
    }

    /// A one-line snapshot for diagnostics: shadow states, pools, ring indices.
    pub fn diagnostics(&self) -> alloc::string::String {
        let in_flight = self
            .shadows
            .iter()
            .filter(|s| s.state == State::InFlight)
            .count();
        let ring = self.ring.as_ref().map(|r| {
            let i = r.front.shared_indices();
            alloc::format!(
                "req_prod {} req_event {} rsp_prod {} rsp_event {} req_prod_pvt {} rsp_cons {}",
                i.req_prod,
                i.req_event,
                i.rsp_prod,
                i.rsp_event,
                r.front.req_prod_pvt(),
                r.front.rsp_cons()
            )
        });
        alloc::format!(
            "in flight {in_flight}, waiting {}, free shadows {}, pool {}/{}, indirect {}/{}, ring: {}",
            self.waiting.len(),
            self.free.len(),
            self.pool.available(),
            self.pool.len(),
            self.indirect.available(),
            self.indirect.len(),
            ring.as_deref().unwrap_or("none")
        )
    }

    /// The features in force.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Caller frames that stay granted because the backend never let go.
    pub fn quarantined_grants(&self) -> &[(GrantRef, Pfn)] {
        &self.quarantined_grants
    }

    /// Checks a request against the features; returns the number of bytes.
    fn validate(&self, req: &IoRequest<'_>) -> Result<usize, SubmitError> {
        let f = &self.features;
        let needs_data = matches!(req.operation, Operation::Read | Operation::Write { .. });
        if needs_data == req.segments.is_empty() {
            return Err(SubmitError::Invalid(if needs_data {
                "read or write without data"
            } else {
                "flush or discard with data"
            }));
        }
        let mut bytes: usize = 0;
        for seg in req.segments {
            let end = usize::from(seg.offset) + usize::from(seg.len);
            if seg.len == 0 || end > PAGE_SIZE {
                return Err(SubmitError::Invalid("segment crosses its page or is empty"));
            }
            bytes += usize::from(seg.len);
        }
        if bytes % 512 != 0 {
            return Err(SubmitError::Invalid(
                "length is not a whole number of sectors",
            ));
        }
        if req.segments.len() > f.max_caller_segments() {
            return Err(SubmitError::Invalid("more segments than the device takes"));
        }
        if bytes > f.max_bytes() {
            return Err(SubmitError::Invalid("larger than the maximum transfer"));
        }
        let sectors = match req.operation {
            Operation::Read => bytes as u64 / 512,
            Operation::Write { .. } => {
                if f.read_only {
                    return Err(SubmitError::ReadOnly);
                }
                bytes as u64 / 512
            }
            Operation::Flush => {
                if !f.flush_cache && !f.barrier {
                    return Err(SubmitError::NotSupported);
                }
                0
            }
            Operation::Discard { sectors, secure } => {
                if f.read_only {
                    return Err(SubmitError::ReadOnly);
                }
                match f.discard {
                    Some(d) if d.secure || !secure => {}
                    _ => return Err(SubmitError::NotSupported),
                }
                if sectors == 0 {
                    return Err(SubmitError::Invalid("empty discard"));
                }
                sectors
            }
        };
        match req.sector.checked_add(sectors) {
            Some(end) if end <= f.sectors => Ok(bytes),
            _ => Err(SubmitError::Invalid("beyond the end of the disk")),
        }
    }

    /// Accepts a request: records it in a shadow and puts it on the ring, or
    /// refuses it ([`SubmitError::Busy`]: retry after a completion).
    pub fn submit<E, G, F>(
        &mut self,
        req: &IoRequest<'_>,
        env: Env<'_, E, G, F>,
    ) -> Result<(), SubmitError>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        if self.ring.is_none() {
            return Err(SubmitError::NotConnected);
        }
        self.validate(req)?;
        // Keep order: nothing overtakes requests waiting for replay.
        if !self.waiting.is_empty() {
            return Err(SubmitError::Busy);
        }
        let Some(id) = self.free.pop() else {
            return Err(SubmitError::Busy);
        };
        let seq = self.next_seq;
        let shadow = &mut self.shadows[id as usize];
        shadow.seq = seq;
        shadow.tag = req.tag;
        shadow.operation = req.operation;
        shadow.sector = req.sector;
        shadow.phase = Phase::Data;
        shadow.segments.clear();
        shadow.segments.extend_from_slice(req.segments);
        match self.issue(id, env) {
            Ok(()) => {
                self.next_seq += 1;
                self.shadows[id as usize].state = State::InFlight;
                self.push(env);
                Ok(())
            }
            Err(e) => {
                self.shadows[id as usize].state = State::Free;
                self.free.push(id);
                Err(e)
            }
        }
    }

    /// Publishes written requests and notifies the backend if it asked.
    fn push<E: EventChannels<Channel = C>, G, F>(&mut self, env: Env<'_, E, G, F>) {
        if let Some(ring) = &mut self.ring {
            if ring.front.push_requests_and_check_notify() {
                env.events.notify(&ring.channel);
            }
        }
    }

    /// Puts shadow `id` on the ring (data phase or flush phase). On failure
    /// every resource taken is given back and the shadow is unchanged.
    fn issue<E, G, F>(&mut self, id: u32, env: Env<'_, E, G, F>) -> Result<(), SubmitError>
    where
        G: GrantTable,
        F: Frames,
    {
        let Some(ring) = &self.ring else {
            return Err(SubmitError::NotConnected);
        };
        if ring.front.is_full() {
            return Err(SubmitError::Busy);
        }
        let f = self.features;
        let (operation, phase, sector) = {
            let shadow = &self.shadows[id as usize];
            (shadow.operation, shadow.phase, shadow.sector)
        };
        let slot: BlkifRequest = match (operation, phase) {
            (Operation::Flush, _) | (Operation::Write { .. }, Phase::Flush) => {
                let op = if f.flush_cache {
                    BLKIF_OP_FLUSH_DISKCACHE
                } else {
                    BLKIF_OP_WRITE_BARRIER
                };
                self.shadows[id as usize].sent_op = op;
                BlkifRequest {
                    operation: op,
                    nr_segments: 0,
                    handle: f.handle,
                    pad: 0,
                    id: u64::from(id),
                    sector_number: sector,
                    seg: [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST],
                }
            }
            (Operation::Discard { sectors, secure }, _) => {
                self.shadows[id as usize].sent_op = BLKIF_OP_DISCARD;
                BlkifRequest::from(BlkifRequestDiscard {
                    operation: BLKIF_OP_DISCARD,
                    flag: if secure { BLKIF_DISCARD_SECURE } else { 0 },
                    handle: f.handle,
                    pad: 0,
                    id: u64::from(id),
                    sector_number: sector,
                    nr_sectors: sectors,
                })
            }
            (Operation::Read, _) | (Operation::Write { .. }, Phase::Data) => {
                self.data_request(id, env)?
            }
        };
        let Some(ring) = &mut self.ring else {
            return Err(SubmitError::NotConnected);
        };
        if ring.front.write_request(&slot).is_err() {
            // Checked above; give everything back if it happens anyway.
            self.release(id, env);
            return Err(SubmitError::Busy);
        }
        Ok(())
    }

    /// Builds a read or write: grants (or copies into pool pages) the data and,
    /// past 11 segments, writes an indirect segment list.
    fn data_request<E, G, F>(
        &mut self,
        id: u32,
        env: Env<'_, E, G, F>,
    ) -> Result<BlkifRequest, SubmitError>
    where
        G: GrantTable,
        F: Frames,
    {
        let f = self.features;
        let shadow = &mut self.shadows[id as usize];
        let write = matches!(shadow.operation, Operation::Write { .. });
        let bytes = shadow.bytes();
        let aligned = shadow.segments.iter().all(Segment::sector_aligned);
        let copy = f.persistent || !aligned || shadow.segments.len() > f.max_segments();
        let count = if copy {
            bytes.div_ceil(PAGE_SIZE)
        } else {
            shadow.segments.len()
        };
        if count > f.max_segments() {
            return Err(SubmitError::Invalid("more segments than the device takes"));
        }
        let indirect = count > BLKIF_MAX_SEGMENTS_PER_REQUEST;
        let indirect_pages = if indirect {
            count.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_PAGE)
        } else {
            0
        };
        if copy && self.pool.available() < count || self.indirect.available() < indirect_pages {
            return Err(SubmitError::Busy);
        }
        shadow.wire.clear();
        shadow.grants.clear();
        shadow.pool_pages.clear();
        shadow.indirect_pages.clear();
        if copy {
            let mut left = bytes;
            for _ in 0..count {
                let Some(page) = self.pool.take() else {
                    self.release(id, env);
                    return Err(SubmitError::Busy);
                };
                let Some((_, gref)) = self.pool.page(page) else {
                    self.release(id, env);
                    return Err(SubmitError::Busy);
                };
                let shadow = &mut self.shadows[id as usize];
                shadow.pool_pages.push(page);
                let in_page = left.min(PAGE_SIZE);
                left -= in_page;
                shadow.wire.push(wire_segment(gref, 0, in_page));
            }
            if write && self.copy_to_pool(id, env.frames).is_err() {
                self.release(id, env);
                return Err(SubmitError::Invalid(
                    "a frame of the request is not accessible",
                ));
            }
        } else {
            for i in 0..count {
                let seg = self.shadows[id as usize].segments[i];
                // Reads need write access; writes only read the frame.
                let Ok(gref) = env.grants.grant(env.backend, seg.pfn, write) else {
                    self.release(id, env);
                    return Err(SubmitError::Busy);
                };
                let shadow = &mut self.shadows[id as usize];
                shadow.grants.push(gref);
                shadow.wire.push(wire_segment(
                    gref,
                    usize::from(seg.offset),
                    usize::from(seg.len),
                ));
            }
        }
        let shadow = &self.shadows[id as usize];
        let op = match shadow.operation {
            Operation::Write { fua: true } if f.barrier => BLKIF_OP_WRITE_BARRIER,
            Operation::Write { .. } => BLKIF_OP_WRITE,
            _ => BLKIF_OP_READ,
        };
        let sector = shadow.sector;
        if !indirect {
            let mut seg = [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
            seg[..count].copy_from_slice(&shadow.wire[..count]);
            self.shadows[id as usize].sent_op = op;
            #[allow(clippy::cast_possible_truncation, reason = "count <= 11")]
            return Ok(BlkifRequest {
                operation: op,
                nr_segments: count as u8,
                handle: f.handle,
                pad: 0,
                id: u64::from(id),
                sector_number: sector,
                seg,
            });
        }
        self.indirect_request(id, op, count, indirect_pages, env)
    }

    /// Builds an indirect request: the segment list goes into indirect pages.
    fn indirect_request<E, G, F>(
        &mut self,
        id: u32,
        op: u8,
        count: usize,
        indirect_pages: usize,
        env: Env<'_, E, G, F>,
    ) -> Result<BlkifRequest, SubmitError>
    where
        G: GrantTable,
        F: Frames,
    {
        let f = self.features;
        let sector = self.shadows[id as usize].sector;
        // Indirect: the segment list goes into indirect pages (granted at
        // setup, read-only unless grants are persistent); barrier writes
        // cannot be indirect, so an FUA write that needs indirect segments is
        // a write followed by a flush.
        let indirect_op = if op == BLKIF_OP_WRITE_BARRIER {
            BLKIF_OP_WRITE
        } else {
            op
        };
        let mut grefs = [0u32; xen_abi::blkif::BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
        for (i, gref_slot) in grefs.iter_mut().enumerate().take(indirect_pages) {
            let Some(page) = self.indirect.take() else {
                self.release(id, env);
                return Err(SubmitError::Busy);
            };
            self.shadows[id as usize].indirect_pages.push(page);
            let Some((pfn, gref)) = self.indirect.page(page) else {
                self.release(id, env);
                return Err(SubmitError::Busy);
            };
            *gref_slot = gref.0;
            let wire = &self.shadows[id as usize].wire;
            let start = i * BLKIF_SEGMENTS_PER_INDIRECT_PAGE;
            let end = (start + BLKIF_SEGMENTS_PER_INDIRECT_PAGE).min(wire.len());
            if write_segments(env.frames, pfn, &wire[start..end]).is_err() {
                self.release(id, env);
                return Err(SubmitError::Invalid("indirect page not accessible"));
            }
        }
        self.shadows[id as usize].sent_op = BLKIF_OP_INDIRECT;
        Ok(BlkifRequest::from(BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op,
            nr_segments: u16::try_from(count).unwrap_or(u16::MAX),
            pad1: 0,
            id: u64::from(id),
            sector_number: sector,
            handle: f.handle,
            pad2: 0,
            indirect_grefs: grefs,
            pad3: 0,
        }))
    }

    /// Copies the caller's data into the shadow's pool pages.
    fn copy_to_pool(&self, id: u32, frames: &impl Frames) -> Result<(), super::io::BadFrame> {
        let shadow = &self.shadows[id as usize];
        self.walk_pool(shadow, |pool_pfn, pool_off, seg_pfn, seg_off, len| {
            frames.copy(pool_pfn, pool_off, seg_pfn, seg_off, len)
        })
    }

    /// Copies read data from the shadow's pool pages to the caller.
    fn copy_from_pool(&self, id: u32, frames: &impl Frames) -> Result<(), super::io::BadFrame> {
        let shadow = &self.shadows[id as usize];
        self.walk_pool(shadow, |pool_pfn, pool_off, seg_pfn, seg_off, len| {
            frames.copy(seg_pfn, seg_off, pool_pfn, pool_off, len)
        })
    }

    /// Pairs the caller's scatter list with the packed pool pages, chunk by
    /// chunk: `(pool pfn, offset, caller pfn, offset, len)`.
    fn walk_pool(
        &self,
        shadow: &Shadow,
        mut each: impl FnMut(Pfn, usize, Pfn, usize, usize) -> Result<(), super::io::BadFrame>,
    ) -> Result<(), super::io::BadFrame> {
        let mut pos = 0usize; // byte position in the packed stream
        for seg in &shadow.segments {
            let mut done = 0usize;
            let len = usize::from(seg.len);
            while done < len {
                let page_index = pos / PAGE_SIZE;
                let page_off = pos % PAGE_SIZE;
                let n = (len - done).min(PAGE_SIZE - page_off);
                let Some(&page) = shadow.pool_pages.get(page_index) else {
                    return Err(super::io::BadFrame(seg.pfn));
                };
                let Some((pfn, _)) = self.pool.page(page) else {
                    return Err(super::io::BadFrame(seg.pfn));
                };
                each(pfn, page_off, seg.pfn, usize::from(seg.offset) + done, n)?;
                done += n;
                pos += n;
            }
        }
        Ok(())
    }

    /// Gives back what shadow `id` took for its current issue: revokes data
    /// grants (quarantining any the backend still maps), returns pool and
    /// indirect pages. Returns the first grant that could not be revoked.
    fn release<E, G: GrantTable, F>(&mut self, id: u32, env: Env<'_, E, G, F>) -> Option<GrantRef> {
        let mut stuck = None;
        let shadow = &mut self.shadows[id as usize];
        for (i, gref) in shadow.grants.drain(..).enumerate() {
            if env.grants.revoke(gref).is_err() {
                let pfn = shadow.segments.get(i).map_or(Pfn(0), |s| s.pfn);
                self.quarantined_grants.push((gref, pfn));
                stuck.get_or_insert(gref);
            }
        }
        for page in shadow.pool_pages.drain(..) {
            self.pool.put(page);
        }
        for page in shadow.indirect_pages.drain(..) {
            self.indirect.put(page);
        }
        shadow.wire.clear();
        stuck
    }

    /// Frees shadow `id` and reports its completion.
    fn complete(
        &mut self,
        id: u32,
        status: Status,
        quarantined: bool,
        out: &mut impl FnMut(Completion),
    ) {
        let shadow = &mut self.shadows[id as usize];
        shadow.state = State::Free;
        let tag = shadow.tag;
        self.free.push(id);
        out(Completion {
            tag,
            status,
            frames_quarantined: quarantined,
        });
    }

    /// Consumes at most `budget` responses, completing their requests, then
    /// puts waiting requests on the ring. On a protocol violation returns why;
    /// the caller must then fail the device ([`Queue::fail_all`]).
    pub fn poll<E, G, F>(
        &mut self,
        env: Env<'_, E, G, F>,
        budget: usize,
        out: &mut impl FnMut(Completion),
    ) -> Result<PollOutcome, BrokenReason>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        let mut completed = 0;
        while completed < budget {
            let Some(rsp) = self.next_response()? else {
                break;
            };
            completed += 1;
            self.handle_response(&rsp, env, out)?;
        }
        self.issue_waiting(env, out);
        let more = match &mut self.ring {
            Some(ring) => ring.front.final_check_for_responses().map_err(|e| {
                BrokenReason::ProducerOverflow {
                    prod: e.prod,
                    cons: e.cons,
                }
            })?,
            None => false,
        };
        if let Some(ring) = &self.ring {
            env.events.unmask(&ring.channel);
        }
        Ok(PollOutcome { completed, more })
    }

    /// The next response, copied out of the ring, with `rsp_prod` checked.
    fn next_response(&mut self) -> Result<Option<BlkifResponse>, BrokenReason> {
        let Some(ring) = &mut self.ring else {
            return Ok(None);
        };
        let mut responses = ring
            .front
            .responses()
            .map_err(|e| BrokenReason::ProducerOverflow {
                prod: e.prod,
                cons: e.cons,
            })?;
        Ok(responses.next())
    }

    fn handle_response<E, G, F>(
        &mut self,
        rsp: &BlkifResponse,
        env: Env<'_, E, G, F>,
        out: &mut impl FnMut(Completion),
    ) -> Result<(), BrokenReason>
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        let raw_id = rsp.id;
        let id = u32::try_from(raw_id)
            .ok()
            .filter(|&id| {
                self.shadows
                    .get(id as usize)
                    .is_some_and(|s| s.state == State::InFlight)
            })
            .ok_or(BrokenReason::BadId(raw_id))?;
        let shadow = &self.shadows[id as usize];
        let sent = shadow.sent_op;
        let inner_ok =
            sent == BLKIF_OP_INDIRECT && matches!(rsp.operation, BLKIF_OP_READ | BLKIF_OP_WRITE);
        if rsp.operation != sent && !inner_ok {
            return Err(BrokenReason::BadOperation {
                id: raw_id,
                got: rsp.operation,
                sent,
            });
        }
        let status = match rsp.status {
            BLKIF_RSP_OKAY => Status::Ok,
            BLKIF_RSP_ERROR => Status::Error,
            BLKIF_RSP_EOPNOTSUPP => Status::NotSupported,
            status => return Err(BrokenReason::BadStatus { id: raw_id, status }),
        };
        if status == Status::NotSupported
            && matches!(sent, BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER)
        {
            // As Linux does: the backend lied about the feature; stop using it.
            log::warn!("xenvbd: backend refused operation {sent}: disabling it");
            if sent == BLKIF_OP_FLUSH_DISKCACHE {
                self.features.flush_cache = false;
            } else {
                self.features.barrier = false;
            }
        }
        let read = matches!(shadow.operation, Operation::Read);
        let copied = !shadow.pool_pages.is_empty();
        let mut status = status;
        if status == Status::Ok && read && copied && self.copy_from_pool(id, env.frames).is_err() {
            status = Status::Error;
        }
        if let Some(gref) = self.release(id, env) {
            // The backend says it is done but still maps the caller's frame.
            self.shadows[id as usize].state = State::Free;
            let tag = self.shadows[id as usize].tag;
            self.free.push(id);
            out(Completion {
                tag,
                status: Status::DeviceFailed,
                frames_quarantined: true,
            });
            return Err(BrokenReason::GrantStillMapped(gref));
        }
        let shadow = &mut self.shadows[id as usize];
        let needs_flush = status == Status::Ok
            && shadow.phase == Phase::Data
            && matches!(shadow.operation, Operation::Write { fua: true })
            && sent != BLKIF_OP_WRITE_BARRIER
            && (self.features.flush_cache || self.features.barrier);
        if needs_flush {
            // FUA without a barrier: durable once the flush that follows ends.
            shadow.phase = Phase::Flush;
            shadow.state = State::Waiting;
            self.waiting.push_front(id);
            return Ok(());
        }
        self.complete(id, status, false, out);
        Ok(())
    }

    /// Puts waiting requests (flush phases, replays) on the ring, oldest
    /// first, while resources last. A waiting request the current backend can
    /// no longer take (smaller limits after a reconnect) fails.
    fn issue_waiting<E, G, F>(&mut self, env: Env<'_, E, G, F>, out: &mut impl FnMut(Completion))
    where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        if self.ring.is_none() {
            return;
        }
        let mut issued = false;
        while let Some(&id) = self.waiting.front() {
            match self.issue(id, env) {
                Ok(()) => {
                    self.waiting.pop_front();
                    self.shadows[id as usize].state = State::InFlight;
                    issued = true;
                }
                Err(SubmitError::Busy) => break,
                Err(e) => {
                    self.waiting.pop_front();
                    log::error!("xenvbd: request {id} cannot be replayed: {e}");
                    self.complete(id, Status::DeviceFailed, false, out);
                }
            }
        }
        if issued {
            self.push(env);
        }
    }

    /// Fails every accepted request at once (device broken or removed): takes
    /// back what can be taken back, and marks the requests whose frames the
    /// backend still maps.
    pub fn fail_all<E, G: GrantTable, F>(
        &mut self,
        env: Env<'_, E, G, F>,
        out: &mut impl FnMut(Completion),
    ) {
        self.waiting.clear();
        for index in 0..self.shadows.len() {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "shadow ids fit in u32 by construction"
            )]
            let id = index as u32;
            match self.shadows[index].state {
                State::Free => {}
                State::Waiting => self.complete(id, Status::DeviceFailed, false, out),
                State::InFlight => {
                    let stuck = self.release(id, env).is_some();
                    self.complete(id, Status::DeviceFailed, stuck, out);
                }
            }
        }
    }

    /// The backend went away (reset, migration): takes back every in-flight
    /// request's grants and pages and queues it, in submission order, for
    /// replay on the next ring. Returns the ring for the caller to tear down.
    /// A grant the old backend still maps fails the device (`Err`).
    pub(crate) fn detach(
        &mut self,
        env: Env<'_, impl Sized, impl GrantTable, impl Sized>,
    ) -> Result<Option<Ring<C, R>>, BrokenReason> {
        let mut stuck = None;
        let mut ids: Vec<u32> = Vec::with_capacity(self.shadows.len());
        for index in 0..self.shadows.len() {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "shadow ids fit in u32 by construction"
            )]
            let id = index as u32;
            match self.shadows[index].state {
                State::Free => {}
                State::Waiting => ids.push(id),
                State::InFlight => {
                    if let Some(gref) = self.release(id, env) {
                        stuck.get_or_insert(gref);
                    }
                    self.shadows[index].state = State::Waiting;
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable_by_key(|&id| (self.shadows[id as usize].seq, id));
        self.waiting.clear();
        self.waiting.extend(ids);
        let ring = self.ring.take();
        match stuck {
            Some(gref) => Err(BrokenReason::GrantStillMapped(gref)),
            None => Ok(ring),
        }
    }

    /// Attaches a new ring (after connect or reconnect) with the backend's
    /// current features, then replays waiting requests.
    pub(crate) fn attach<E, G, F>(
        &mut self,
        ring: Ring<C, R>,
        features: Features,
        env: Env<'_, E, G, F>,
        out: &mut impl FnMut(Completion),
    ) where
        E: EventChannels<Channel = C>,
        G: GrantTable,
        F: Frames,
    {
        self.features = features;
        self.ring = Some(ring);
        self.issue_waiting(env, out);
        if let Some(ring) = &self.ring {
            env.events.unmask(&ring.channel);
        }
    }
}

/// A blkif segment for `len` bytes at `offset` of a granted frame.
fn wire_segment(gref: GrantRef, offset: usize, len: usize) -> BlkifRequestSegment {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "offset + len <= 4096: sectors <= 8"
    )]
    BlkifRequestSegment {
        gref: gref.0,
        first_sect: (offset / 512) as u8,
        last_sect: ((offset + len) / 512 - 1) as u8,
        pad: 0,
    }
}

/// Writes a segment list into an indirect page.
fn write_segments(
    frames: &impl Frames,
    pfn: Pfn,
    segments: &[BlkifRequestSegment],
) -> Result<(), super::io::BadFrame> {
    // 64 segments (512 bytes) per copy keeps the stack small.
    let mut buf = [0u8; 512];
    for (chunk_index, chunk) in segments.chunks(64).enumerate() {
        for (i, seg) in chunk.iter().enumerate() {
            let b = &mut buf[i * 8..i * 8 + 8];
            b[..4].copy_from_slice(&seg.gref.to_le_bytes());
            b[4] = seg.first_sect;
            b[5] = seg.last_sect;
            b[6..8].copy_from_slice(&seg.pad.to_le_bytes());
        }
        frames.write(pfn, chunk_index * 512, &buf[..chunk.len() * 8])?;
    }
    Ok(())
}
