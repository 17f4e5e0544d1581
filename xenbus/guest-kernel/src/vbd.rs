//! A block frontend inside the guest: `xenvbd-core`'s blkfront engine on this
//! guest's own event channels, grant table and page pool, against dom0's real
//! blkback (the suite's xl config gives the guest `xvda`, a file in dom0's
//! `/tmp` behind a loop device).
//!
//! The engine is the code the Windows miniport runs; this module is its
//! platform glue: [`GuestFrames`] (the identity map), [`GuestRing`], tables
//! lent to the engine for one call at a time (so the platform stays free to
//! suspend between calls), and a waiter that blocks in `SCHEDOP_poll` on the
//! queues' ports.
//!
//! The data: every 512-byte sector written carries a magic, the write's stamp
//! and its own sector number, then a pattern derived from both
//! ([`sector_word`]). The guest checks every read against a model (one stamp
//! per sector); dom0 checks the image file on its own (`vbd-verify`, answered
//! by `build/rig-tests/src/suites/guest.rs`, which recomputes the same words)
//! and compares a digest of (sector, stamp) pairs ([`Digest`]).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::ptr::NonNull;
use core::time::Duration;

use xen_abi::ring::RingMemory;
use xenbus_core::guest::api::GuestChannel;
use xenbus_core::guest::platform::Platform as GuestPlatform;
use xenbus_interface::api::{Memory, PAGE_SIZE, Pages, Pfn, Store, Txn, XenbusState};
use xenvbd_core::blkfront::io::BadFrame;
use xenvbd_core::blkfront::{
    Completion, Frames, Frontend, IoRequest, Operation, Segment, Settings, Status, SubmitError,
};

use crate::pool::PagePool;
use crate::x86::X86;

/// Lends the platform's event channel and grant tables to the engine for the
/// rest of the enclosing block: binds `$p` to the engine's `Platform` and
/// `$events` to the event channel wrapper.
macro_rules! lend {
    ($env:expr, $p:ident, $events:ident) => {
        let lent_events = core::cell::RefCell::new(&mut $env.platform.evtchn);
        let lent_grants = core::cell::RefCell::new(&mut $env.platform.gnttab);
        let $events = xenbus_core::guest::api::GuestEventChannels::new(&lent_events);
        let grants = xenbus_core::guest::api::GuestGrantTable::new(&lent_grants);
        let $p = xenvbd_core::blkfront::Platform {
            store: $env.store,
            events: &$events,
            grants: &grants,
            memory: &$env.pool,
            frames: &GuestFrames,
        };
    };
}

/// Frames the boot page tables identity-map (below 4 GiB).
const MAPPED_FRAMES: u64 = 1 << 20;

/// Frame access over the identity map: frame `pfn` is at address `pfn * 4096`.
#[derive(Clone, Copy, Debug)]
pub struct GuestFrames;

impl GuestFrames {
    fn addr(pfn: Pfn, offset: usize, len: usize) -> Result<*mut u8, BadFrame> {
        if pfn.0 == 0
            || pfn.0 >= MAPPED_FRAMES
            || offset.checked_add(len).is_none_or(|e| e > PAGE_SIZE)
        {
            return Err(BadFrame(pfn));
        }
        let base = usize::try_from(pfn.0 << 12).map_err(|_| BadFrame(pfn))?;
        Ok((base + offset) as *mut u8)
    }
}

impl Frames for GuestFrames {
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), BadFrame> {
        let d = Self::addr(dst, dst_offset, len)?;
        let s = Self::addr(src, src_offset, len)?;
        // SAFETY: the engine names only frames it was given (its pools and the
        // callers' buffers, all pages of this guest's pool): identity-mapped
        // RAM, each range inside one page (checked above); `copy` tolerates
        // overlap.
        unsafe { core::ptr::copy(s, d, len) };
        Ok(())
    }

    fn write(&self, dst: Pfn, offset: usize, bytes: &[u8]) -> Result<(), BadFrame> {
        let d = Self::addr(dst, offset, bytes.len())?;
        // SAFETY: as in `copy`; `bytes` is ordinary memory, not in that page.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), d, bytes.len()) };
        Ok(())
    }
}

/// Ring memory: pool pages.
#[derive(Debug)]
pub struct GuestRing(Pages);

impl From<Pages> for GuestRing {
    fn from(pages: Pages) -> Self {
        Self(pages)
    }
}

impl From<GuestRing> for Pages {
    fn from(ring: GuestRing) -> Self {
        ring.0
    }
}

// SAFETY: `Pages`' contract: page-aligned, valid, initialised (zeroed) memory
// of `len()` bytes, a non-zero multiple of the page size, for as long as the
// value lives; neither pointer nor length changes.
unsafe impl RingMemory for GuestRing {
    fn as_ptr(&self) -> NonNull<u8> {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Event channels with the notifications held back: requests put on a ring
/// through it wait there, unseen by the backend, until the next
/// notification (the suspend check leaves some writes so).
#[derive(Debug)]
struct Silent<'a, E>(&'a E);

impl<E: xenbus_interface::api::EventChannels> xenbus_interface::api::EventChannels
    for Silent<'_, E>
{
    type Channel = E::Channel;

    fn open_unbound(
        &self,
        remote: xenbus_interface::api::DomId,
    ) -> Result<E::Channel, xenbus_interface::api::EvtchnError> {
        self.0.open_unbound(remote)
    }

    fn port(&self, channel: &E::Channel) -> xenbus_interface::api::Port {
        self.0.port(channel)
    }

    fn notify(&self, _channel: &E::Channel) {}

    fn unmask(&self, channel: &E::Channel) {
        self.0.unmask(channel);
    }

    fn close(&self, channel: E::Channel) {
        self.0.close(channel);
    }
}

/// The engine as this guest instantiates it.
pub type Fe = Frontend<GuestChannel, GuestRing>;

/// What the engine needs from the guest for one call.
#[derive(Debug)]
pub struct Env<'a, S: ?Sized> {
    /// The platform; its tables are lent to the engine per call.
    pub platform: &'a mut GuestPlatform<X86, &'static PagePool>,
    /// xenstore.
    pub store: &'a S,
    /// Grantable memory.
    pub pool: &'static PagePool,
}

impl<S: ?Sized> Env<'_, S> {
    fn now(&self) -> Duration {
        Duration::from_nanos(
            self.platform
                .evtchn
                .vcpu_info()
                .system_time_ns()
                .unwrap_or(0),
        )
    }

    /// Blocks in `SCHEDOP_poll` until one of `ports` is pending or `timeout`.
    fn block(&self, ports: &mut [u32], timeout: Duration) {
        let wake = self.now() + timeout;
        let wake_ns = u64::try_from(wake.as_nanos()).unwrap_or(u64::MAX);
        if self.platform.xen.poll(ports, wake_ns).is_err() {
            self.platform.xen.yield_now();
        }
    }
}

/// Most queues this guest asks for (memory: each costs a ring, an indirect
/// page per slot and a copy pool).
pub const MAX_QUEUES: usize = 2;
/// Requests in flight in the random mix.
pub const QD: usize = 4;
/// Writes left in flight across the suspend.
pub const SUSPEND_WRITES: usize = 48;
/// Bytes of buffer per write left in flight across the suspend (16 sectors
/// at most, at any byte offset).
const SUSPEND_SLOT: usize = 3 * PAGE_SIZE;

/// The engine's limits in this 32 MiB guest: order-3 rings (256 slots), two
/// queues, 128-segment (512 KiB) indirect requests, a 160-page copy pool
/// (persistent grants) per queue.
pub fn settings() -> Settings {
    Settings {
        max_ring_page_order: 3,
        max_queues: u16::try_from(MAX_QUEUES).unwrap_or(1),
        max_indirect_segments: 128,
        persistent_pool_pages: 160,
        ..Settings::default()
    }
}

/// First word of every written sector: "XVBD".
pub const SECTOR_MAGIC: u32 = u32::from_le_bytes(*b"XVBD");

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the pattern of `sector` written with `stamp`.
pub fn sector_seed(stamp: u32, sector: u64) -> u64 {
    mix((u64::from(stamp) << 40) ^ sector)
}

/// Word `j` (0..64, little-endian in the sector) of `sector` as written with
/// `stamp`; `seed` is [`sector_seed`]. Stamp 0 is a sector never written:
/// zeros.
pub fn sector_word(stamp: u32, sector: u64, seed: u64, j: usize) -> u64 {
    match (stamp, j) {
        (0, _) => 0,
        (_, 0) => u64::from(SECTOR_MAGIC) | (u64::from(stamp) << 32),
        (_, 1) => sector,
        _ => mix(seed ^ j as u64),
    }
}

/// FNV-1a over (sector, stamp) of every written sector, in sector order:
/// what dom0 recomputes from the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(pub u64);

impl Digest {
    /// The empty digest.
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds a written sector.
    pub fn add(&mut self, sector: u64, stamp: u32) {
        for b in sector.to_le_bytes().into_iter().chain(stamp.to_le_bytes()) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

/// xorshift64*.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn us(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// A contiguous run of pool pages used as an I/O buffer.
#[derive(Debug)]
struct Buffer {
    pages: Pages,
}

impl Buffer {
    fn new(pool: &'static PagePool, bytes: usize) -> Result<Self, String> {
        let pages = (&pool)
            .alloc(bytes.div_ceil(PAGE_SIZE).max(1))
            .map_err(|_| format!("page pool exhausted ({bytes} bytes)"))?;
        Ok(Self { pages })
    }

    fn len(&self) -> usize {
        self.pages.len()
    }

    /// Scatter list of `len` bytes from byte `start`, split at page ends.
    fn segments(&self, start: usize, len: usize, out: &mut Vec<Segment>) -> Result<(), String> {
        out.clear();
        if start + len > self.len() {
            return Err("buffer too small".into());
        }
        let mut pos = start;
        while pos < start + len {
            let off = pos % PAGE_SIZE;
            let n = (start + len - pos).min(PAGE_SIZE - off);
            let pfn = self.pages.pfn(pos / PAGE_SIZE).ok_or("no frame")?;
            out.push(Segment::new(pfn, off, n).ok_or("bad segment")?);
            pos += n;
        }
        Ok(())
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "the words are only read and written unaligned"
    )]
    fn word_ptr(&self, byte: usize) -> *mut u64 {
        self.pages
            .as_ptr()
            .as_ptr()
            .wrapping_add(byte)
            .cast::<u64>()
    }

    /// Writes the sectors `sector..sector + count` as stamped by `stamps`
    /// at byte `start`.
    fn fill(&self, start: usize, sector: u64, stamps: &[u32]) {
        for (k, &stamp) in stamps.iter().enumerate() {
            let s = sector + k as u64;
            let seed = sector_seed(stamp, s);
            for j in 0..64 {
                let at = start + k * 512 + j * 8;
                if at + 8 > self.len() {
                    return;
                }
                // SAFETY: inside the buffer (checked), our pool pages, not
                // granted to anyone while we fill them.
                unsafe {
                    self.word_ptr(at)
                        .write_unaligned(sector_word(stamp, s, seed, j));
                };
            }
        }
    }

    /// Checks the sectors read into byte `start` against `stamps`.
    fn check(&self, start: usize, sector: u64, stamps: &[u32]) -> Result<(), String> {
        for (k, &stamp) in stamps.iter().enumerate() {
            let s = sector + k as u64;
            let seed = sector_seed(stamp, s);
            for j in 0..64 {
                let at = start + k * 512 + j * 8;
                if at + 8 > self.len() {
                    return Err("buffer too small".into());
                }
                // SAFETY: inside the buffer; the read completed, so the
                // backend no longer writes it.
                let got = unsafe { self.word_ptr(at).read_unaligned() };
                let want = sector_word(stamp, s, seed, j);
                if got != want {
                    return Err(format!(
                        "sector {s} word {j}: read {got:#018x}, want {want:#018x} (stamp {stamp})"
                    ));
                }
            }
        }
        Ok(())
    }

    fn free(self, pool: &'static PagePool) {
        (&pool).free(self.pages);
    }
}

/// One operation in flight.
#[derive(Clone, Copy, Debug)]
struct Op {
    write: bool,
    sector: u64,
    sectors: u64,
    buf_start: usize,
}

/// Counts of a run of I/O.
#[derive(Clone, Copy, Debug, Default)]
struct Moved {
    ops: u64,
    bytes: u64,
}

/// A connected vbd, its model and its buffers.
#[derive(Debug)]
pub struct Vbd {
    fe: Fe,
    done: Vec<Completion>,
    /// Stamp of every sector (0: never written).
    model: Vec<u32>,
    next_stamp: u32,
    slots: Vec<Buffer>,
    segs: Vec<Segment>,
    max_bytes: usize,
    /// Writes left in flight across the suspend: (tag, op).
    suspended: Vec<(u64, Op)>,
    suspend_buffer: Option<Buffer>,
    /// What happened before the suspend (or why it failed).
    before_suspend: Result<String, String>,
    /// Responses the old backend had published but we never consumed.
    answered_unseen: usize,
}

/// Tags of the writes left in flight across the suspend.
const SUSPEND_TAG: u64 = 1 << 40;

/// The first `xvd` disk's directory (`device/vbd/<id>`, id 202 << 8 and
/// up), if the guest has one. An `hd`/`sd` vbd is the PV twin of an
/// emulated disk (the HVM variant's): the checks leave it alone (with it
/// connected, `xl save` of the HVM domain crashed xl in the one run tried).
pub fn find_pv_disk(store: &(impl Store + ?Sized)) -> Option<String> {
    let ids = store.directory(Txn::NONE, "device/vbd").ok()?;
    ids.iter()
        .find(|id| id.parse::<u32>().is_ok_and(|id| id >= XVD_FIRST))
        .map(|id| format!("device/vbd/{id}"))
}

/// The first `xvd` device id (Xen's major 202).
const XVD_FIRST: u32 = 202 << 8;

impl Vbd {
    /// Connects `dir` (see [`find_pv_disk`]): runs the handshake against the
    /// real blkback and reports the negotiated features.
    pub fn connect<S: Store + ?Sized>(
        env: &mut Env<'_, S>,
        dir: &str,
    ) -> Result<(Self, String), String> {
        let t0 = env.now();
        let dir = String::from(dir);
        let fe = Fe::new(env.store, &dir, settings()).map_err(|e| format!("frontend: {e}"))?;
        let mut vbd = Self {
            fe,
            done: Vec::with_capacity(1024),
            model: Vec::new(),
            next_stamp: 1,
            slots: Vec::new(),
            segs: Vec::new(),
            max_bytes: 0,
            suspended: Vec::new(),
            suspend_buffer: None,
            before_suspend: Err("no suspend yet".into()),
            answered_unseen: 0,
        };
        vbd.wait_state(env, XenbusState::Connected, Duration::from_secs(60))?;
        let ms = env.now().saturating_sub(t0).as_millis();
        let info = *vbd.fe.info().ok_or("connected without disk info")?;
        let lu = vbd.fe.logical_unit().ok_or("no logical unit")?;
        let f = *vbd.fe.queues().first().ok_or("no queue")?.features();
        if info.sector_size != 512 {
            return Err(format!(
                "sector size {}, the checks want 512",
                info.sector_size
            ));
        }
        vbd.model = vec![0; us(info.sectors)];
        vbd.max_bytes = lu.max_transfer_bytes as usize;
        vbd.segs = Vec::with_capacity(2 * f.max_caller_segments() + 2);
        let order = env
            .store
            .read(Txn::NONE, &format!("{dir}/ring-page-order"))
            .map_or_else(
                |_| String::from("0"),
                |v| String::from_utf8_lossy(&v).into_owned(),
            );
        let backend = String::from(vbd.fe.backend_dir());
        let queues = vbd.fe.queues().len();
        Ok((
            vbd,
            format!(
                "{dir} -> {backend}: {} queue(s), ring order {order}, indirect {} segments \
                 (max transfer {} KiB), persistent {}, flush {}, barrier {}, discard {}, \
                 {} sectors of {} B ({} MiB){}; Connected in {ms} ms",
                queues,
                f.indirect_segments,
                lu.max_transfer_bytes >> 10,
                f.persistent,
                f.flush_cache,
                f.barrier,
                f.discard
                    .map_or_else(|| String::from("no"), |d| format!("{d:?}")),
                info.sectors,
                info.sector_size,
                info.sectors >> 11,
                if info.read_only { ", read-only" } else { "" },
            ),
        ))
    }

    /// Follows the backend's state until ours is `want`.
    fn wait_state<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        want: XenbusState,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = env.now() + timeout;
        loop {
            {
                lend!(env, p, _events);
                let done = &mut self.done;
                self.fe
                    .poll_state(p, &mut |c| done.push(c))
                    .map_err(|e| format!("handshake: {e}"))?;
            }
            if self.fe.state() == want {
                return Ok(());
            }
            if env.now() > deadline {
                return Err(format!(
                    "state {want:?} not reached within {timeout:?} (ours {:?}, backend {:?})",
                    self.fe.state(),
                    self.fe.backend_state(env.store).ok()
                ));
            }
            env.block(&mut [], Duration::from_millis(5));
        }
    }

    /// Consumes responses on every queue; returns how many.
    fn poll_queues<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>) -> usize {
        lend!(env, p, _events);
        let done = &mut self.done;
        let mut n = 0;
        for q in 0..self.fe.queues().len() {
            loop {
                let o = self.fe.poll(q, 64, p, &mut |c| done.push(c));
                n += o.completed;
                if !o.more {
                    break;
                }
            }
        }
        n
    }

    /// Waits at most `max` for completions: clears the queues' pending flags,
    /// polls the rings, and if nothing came blocks in `SCHEDOP_poll` on the
    /// queues' ports (woken by blkback's notification).
    fn wait_io<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>, max: Duration) -> usize {
        let mut ports = [0u32; MAX_QUEUES];
        let mut n = 0;
        {
            lend!(env, _p, events);
            for q in 0..self.fe.queues().len().min(MAX_QUEUES) {
                if let Some(port) = self.fe.port(&events, q) {
                    ports[n] = port.0;
                    n += 1;
                }
            }
        }
        for &port in &ports[..n] {
            if let Ok(flag) = env.platform.evtchn.pending_flag(port) {
                flag.take();
            }
        }
        let got = self.poll_queues(env);
        if got > 0 {
            return got;
        }
        env.block(&mut ports[..n], max);
        self.poll_queues(env)
    }

    fn submit<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        queue: usize,
        tag: u64,
        operation: Operation,
        sector: u64,
    ) -> Result<(), SubmitError> {
        self.submit_maybe_silent(env, queue, tag, operation, sector, false)
    }

    /// Submits; `silent`: without notifying the backend.
    fn submit_maybe_silent<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        queue: usize,
        tag: u64,
        operation: Operation,
        sector: u64,
        silent: bool,
    ) -> Result<(), SubmitError> {
        lend!(env, p, events);
        let req = IoRequest {
            tag,
            operation,
            sector,
            segments: &self.segs,
        };
        if silent {
            let quiet = Silent(&events);
            let p = xenvbd_core::blkfront::Platform {
                store: p.store,
                events: &quiet,
                grants: p.grants,
                memory: p.memory,
                frames: p.frames,
            };
            self.fe.submit(queue, &req, p)
        } else {
            self.fe.submit(queue, &req, p)
        }
    }

    fn queues(&self) -> usize {
        self.fe.queues().len().max(1)
    }

    /// A first look at the data path, one request at a time: an aligned
    /// 4 KiB write and its read-back (direct requests), then the largest
    /// transfer written and read back at an odd buffer offset (indirect).
    pub fn smoke<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>) -> Result<String, String> {
        if self.slots.is_empty() {
            for _ in 0..QD {
                self.slots
                    .push(Buffer::new(env.pool, self.max_bytes + PAGE_SIZE)?);
            }
        }
        let max_sectors = (self.max_bytes / 512) as u64;
        let mut report = String::new();
        for (i, (sector, sectors, start)) in [(0u64, 8u64, 0usize), (4096, max_sectors, 1234)]
            .into_iter()
            .enumerate()
        {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            let range = us(sector)..us(sector + sectors);
            self.model[range.clone()]
                .iter_mut()
                .for_each(|s| *s = stamp);
            self.slots[0].fill(start, sector, &self.model[range.clone()]);
            self.slots[0].segments(start, us(sectors) * 512, &mut self.segs)?;
            let w = self.one(
                env,
                (1 << 43) + 2 * i as u64,
                Operation::Write { fua: false },
                sector,
            )?;
            self.slots[1].segments(start, us(sectors) * 512, &mut self.segs)?;
            let r = self.one(env, (1 << 43) + 2 * i as u64 + 1, Operation::Read, sector)?;
            if w != Status::Ok || r != Status::Ok {
                return Err(format!(
                    "{sectors} sectors at {sector} (buffer offset {start}): write {w:?}, read {r:?}; {}",
                    self.diagnostics()
                ));
            }
            self.slots[1].check(start, sector, &self.model[range])?;
            let _ = write!(report, "{} KiB written and read back; ", sectors / 2);
        }
        Ok(report)
    }

    /// The random mix: `ops` reads and writes of 512 B to the largest
    /// transfer (log-uniform sizes), at random sectors and random buffer
    /// alignments (a quarter at any byte offset in the page), up to [`QD`] in
    /// flight on non-overlapping ranges, one FUA write in eight; every read is
    /// checked against the model.
    pub fn io_mix<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        ops: usize,
        seed: u64,
    ) -> Result<String, String> {
        if self.slots.is_empty() {
            for _ in 0..QD {
                self.slots
                    .push(Buffer::new(env.pool, self.max_bytes + PAGE_SIZE)?);
            }
        }
        let mut rng = Rng(seed | 1);
        let mut inflight: [Option<(u64, Op)>; QD] = [None; QD];
        let mut moved = Moved::default();
        let (mut reads, mut writes, mut unaligned, mut largest) = (0u64, 0u64, 0u64, 0usize);
        let t0 = env.now();
        let deadline = t0 + Duration::from_secs(600);
        let disk = self.model.len() as u64;
        let max_sectors = (self.max_bytes / 512) as u64;
        let mut issued = 0usize;
        let mut tag = 0u64;
        while issued < ops || inflight.iter().any(Option::is_some) {
            if env.now() > deadline {
                return Err(format!("stalled: {}", self.diagnostics()));
            }
            let free = inflight.iter().position(Option::is_none);
            if let (true, Some(slot)) = (issued < ops, free) {
                let shift = rng.below(11);
                let sectors = ((1u64 << shift) + rng.below(1 << shift)).clamp(1, max_sectors);
                let sector = rng.below(disk - sectors + 1);
                let overlaps = inflight
                    .iter()
                    .flatten()
                    .any(|(_, o)| sector < o.sector + o.sectors && o.sector < sector + sectors);
                if overlaps {
                    self.complete_some(env, &mut inflight, &mut moved)?;
                    continue;
                }
                let buf_start = match rng.below(4) {
                    0 => us(rng.below(PAGE_SIZE as u64)),
                    1 => us(rng.below(8)) * 512,
                    _ => 0,
                };
                unaligned += u64::from(buf_start % 512 != 0);
                let write = rng.below(2) == 0;
                let op = Op {
                    write,
                    sector,
                    sectors,
                    buf_start,
                };
                let operation = if write {
                    let stamp = self.next_stamp;
                    self.next_stamp += 1;
                    let range = us(sector)..us(sector + sectors);
                    self.model[range.clone()]
                        .iter_mut()
                        .for_each(|s| *s = stamp);
                    self.slots[slot].fill(buf_start, sector, &self.model[range]);
                    writes += 1;
                    Operation::Write {
                        fua: rng.below(8) == 0,
                    }
                } else {
                    reads += 1;
                    Operation::Read
                };
                largest = largest.max(us(sectors) * 512);
                tag += 1;
                let t = (tag << 4) | slot as u64;
                self.slots[slot].segments(buf_start, us(sectors) * 512, &mut self.segs)?;
                loop {
                    match self.submit(env, us(tag) % self.queues(), t, operation, sector) {
                        Ok(()) => break,
                        Err(SubmitError::Busy) => {
                            if env.now() > deadline {
                                return Err(format!("busy forever: {}", self.diagnostics()));
                            }
                            self.complete_some(env, &mut inflight, &mut moved)?;
                        }
                        Err(e) => {
                            return Err(format!("submit of {sectors} sectors at {sector}: {e}"));
                        }
                    }
                }
                inflight[slot] = Some((t, op));
                issued += 1;
                continue;
            }
            self.complete_some(env, &mut inflight, &mut moved)?;
        }
        let secs = env.now().saturating_sub(t0).as_secs_f64().max(1e-6);
        #[allow(clippy::cast_precision_loss, reason = "figures for a report")]
        let (mbs, iops) = (moved.bytes as f64 / secs / 1e6, moved.ops as f64 / secs);
        Ok(format!(
            "{ops} ops ({reads} reads, {writes} writes, {unaligned} at odd byte offsets), \
             {} MiB moved, largest {} KiB, {secs:.1} s: {mbs:.1} MB/s, {iops:.0} IOPS; \
             every read matched the model",
            moved.bytes >> 20,
            largest >> 10
        ))
    }

    /// Waits for completions and accounts them.
    fn complete_some<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        inflight: &mut [Option<(u64, Op)>; QD],
        moved: &mut Moved,
    ) -> Result<(), String> {
        if self.done.is_empty() {
            self.wait_io(env, Duration::from_millis(100));
        }
        let mut i = 0;
        while i < self.done.len() {
            let c = self.done[i];
            i += 1;
            let slot = us(c.tag & 0xf);
            let entry = inflight.get_mut(slot).ok_or("tag names no slot")?;
            let Some((t, op)) = *entry else {
                return Err(format!(
                    "completion for idle slot {slot} (tag {:#x})",
                    c.tag
                ));
            };
            if t != c.tag {
                return Err(format!("completion tag {:#x}, slot has {t:#x}", c.tag));
            }
            *entry = None;
            let kind = if op.write { "write" } else { "read" };
            if c.status != Status::Ok {
                return Err(format!(
                    "{kind} of {} sectors at {} ended {:?} (broken: {:?})",
                    op.sectors,
                    op.sector,
                    c.status,
                    self.fe.broken()
                ));
            }
            if !op.write {
                let range = us(op.sector)..us(op.sector + op.sectors);
                self.slots[slot]
                    .check(op.buf_start, op.sector, &self.model[range])
                    .map_err(|e| format!("read of {} sectors at {}: {e}", op.sectors, op.sector))?;
            }
            moved.ops += 1;
            moved.bytes += op.sectors * 512;
        }
        self.done.clear();
        Ok(())
    }

    /// Runs one request to completion (nothing else in flight).
    fn one<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        tag: u64,
        operation: Operation,
        sector: u64,
    ) -> Result<Status, String> {
        let deadline = env.now() + Duration::from_secs(60);
        loop {
            match self.submit(env, 0, tag, operation, sector) {
                Ok(()) => break,
                Err(SubmitError::Busy) if env.now() < deadline => {
                    self.wait_io(env, Duration::from_millis(100));
                }
                Err(e) => return Err(format!("submit: {e}")),
            }
        }
        loop {
            if let Some(i) = self.done.iter().position(|c| c.tag == tag) {
                let c = self.done.swap_remove(i);
                return Ok(c.status);
            }
            if env.now() > deadline {
                return Err(format!(
                    "request {tag:#x} not answered: {}",
                    self.diagnostics()
                ));
            }
            self.wait_io(env, Duration::from_millis(100));
        }
    }

    /// Flushes (if the backend can) and returns the `vbd-verify` request for
    /// dom0: every request must have completed.
    pub fn verify_request<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
    ) -> Result<String, String> {
        let f = *self.fe.queues().first().ok_or("not connected")?.features();
        let flushed = if f.flush_cache || f.barrier {
            self.segs.clear();
            let status = self.one(env, 1 << 41, Operation::Flush, 0)?;
            if status != Status::Ok {
                return Err(format!("flush ended {status:?}"));
            }
            "flushed"
        } else {
            "no flush offered"
        };
        let mut digest = Digest::new();
        let mut written = 0u64;
        for (s, &stamp) in self.model.iter().enumerate() {
            if stamp != 0 {
                digest.add(s as u64, stamp);
                written += 1;
            }
        }
        Ok(format!(
            "vbd-verify {} {} {written} {:016x} {flushed}",
            self.fe.device_id(),
            self.model.len(),
            digest.0
        ))
    }

    /// Called right before the suspend: leaves [`SUSPEND_WRITES`] writes of
    /// 1 to 16 sectors (random places, random buffer offsets) in flight
    /// across it. The first half is notified and answered by the backend
    /// (waited for without consuming the answers); the second half is put
    /// on the rings without a notification, so the old backend never sees
    /// it.
    pub fn before_suspend<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>, seed: u64) {
        self.before_suspend = self.start_suspend_writes(env, seed);
    }

    fn start_suspend_writes<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
        seed: u64,
    ) -> Result<String, String> {
        let buffer = match self.suspend_buffer.take() {
            Some(b) => b,
            None => Buffer::new(env.pool, SUSPEND_WRITES * SUSPEND_SLOT)?,
        };
        let mut rng = Rng(seed | 1);
        let chunk = self.model.len() as u64 / SUSPEND_WRITES as u64;
        let mut submitted = 0;
        let mut bytes = 0;
        let mut answered = 0;
        for i in 0..SUSPEND_WRITES {
            let silent = i >= SUSPEND_WRITES / 2;
            if i == SUSPEND_WRITES / 2 {
                answered = self.wait_answered(env, submitted);
            }
            let sectors = 1 + rng.below(16);
            let sector = i as u64 * chunk + rng.below(chunk - sectors);
            let buf_start = i * SUSPEND_SLOT + us(rng.below(PAGE_SIZE as u64));
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            let range = us(sector)..us(sector + sectors);
            let old: Vec<u32> = self.model[range.clone()].to_vec();
            self.model[range.clone()]
                .iter_mut()
                .for_each(|s| *s = stamp);
            buffer.fill(buf_start, sector, &self.model[range.clone()]);
            buffer.segments(buf_start, us(sectors) * 512, &mut self.segs)?;
            let tag = SUSPEND_TAG + i as u64;
            let write = Operation::Write { fua: false };
            match self.submit_maybe_silent(env, i % self.queues(), tag, write, sector, silent) {
                Ok(()) => {
                    self.suspended.push((
                        tag,
                        Op {
                            write: true,
                            sector,
                            sectors,
                            buf_start,
                        },
                    ));
                    submitted += 1;
                    bytes += sectors * 512;
                }
                Err(SubmitError::Busy) => {
                    self.model[range].copy_from_slice(&old);
                    break;
                }
                Err(e) => {
                    self.model[range].copy_from_slice(&old);
                    self.suspend_buffer = Some(buffer);
                    return Err(format!("submit before suspend: {e}"));
                }
            }
        }
        self.suspend_buffer = Some(buffer);
        Ok(format!(
            "{submitted} writes ({bytes} bytes) in flight at suspend: {answered} answered \
             by the old backend but not consumed, {} never notified to it",
            submitted.saturating_sub(SUSPEND_WRITES / 2)
        ))
    }

    /// Waits (at most a second) until the backend has answered `count`
    /// requests, without consuming the answers; returns how many it has.
    fn wait_answered<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>, count: usize) -> usize {
        let deadline = env.now() + Duration::from_secs(1);
        loop {
            let answered: usize = self
                .fe
                .queues()
                .iter()
                .map(xenvbd_core::blkfront::queue::Queue::responses_waiting)
                .sum();
            if answered >= count || env.now() > deadline {
                return answered;
            }
            env.block(&mut [], Duration::from_millis(1));
        }
    }

    /// After the resume in a new domain: the engine takes the writes back,
    /// connects to the new backend and replays them; waits for every one to
    /// complete exactly once, then reads the whole disk back against the
    /// model.
    pub fn after_resume<S: Store + ?Sized>(
        &mut self,
        env: &mut Env<'_, S>,
    ) -> Result<String, String> {
        let before = self.before_suspend.clone()?;
        let old_backend = String::from(self.fe.backend_dir());
        // The old rings are our own pages, saved and restored with the rest of
        // memory: they show what the old backend had answered at the save.
        self.answered_unseen = self
            .fe
            .queues()
            .iter()
            .map(xenvbd_core::blkfront::queue::Queue::responses_waiting)
            .sum();
        let t0 = env.now();
        let replay = {
            lend!(env, p, _events);
            let done = &mut self.done;
            self.fe
                .resume(p, &mut |c| done.push(c))
                .map_err(|e| format!("resume: {e}"))?
        };
        if !self.done.is_empty() {
            return Err(format!("{} completions during resume", self.done.len()));
        }
        let new_backend = String::from(self.fe.backend_dir());
        if new_backend == old_backend {
            return Err(format!("backend still {old_backend} after restore"));
        }
        self.wait_state(env, XenbusState::Connected, Duration::from_secs(60))?;
        let connected_ms = env.now().saturating_sub(t0).as_millis();
        let deadline = env.now() + Duration::from_secs(60);
        let mut left: Vec<u64> = self.suspended.iter().map(|(t, _)| *t).collect();
        while !left.is_empty() {
            if env.now() > deadline {
                return Err(format!(
                    "{} of {} replayed writes never completed: {}",
                    left.len(),
                    self.suspended.len(),
                    self.diagnostics()
                ));
            }
            self.wait_io(env, Duration::from_millis(100));
            for k in 0..self.done.len() {
                let c = self.done[k];
                let Some(i) = left.iter().position(|&t| t == c.tag) else {
                    return Err(format!("completion {:#x} twice or unknown", c.tag));
                };
                left.swap_remove(i);
                if c.status != Status::Ok {
                    return Err(format!("replayed write {:#x} ended {:?}", c.tag, c.status));
                }
            }
            self.done.clear();
        }
        let replayed = self.suspended.len();
        self.suspended.clear();
        let read_back = self.read_all(env)?;
        Ok(format!(
            "{before} ({} answers in the restored rings); {old_backend} -> {new_backend}; \
             {replay} taken back and replayed, Connected again in {connected_ms} ms, all \
             {replayed} completed once; {read_back}",
            self.answered_unseen
        ))
    }

    /// Reads the whole disk in the largest transfers, checking every sector.
    fn read_all<S: Store + ?Sized>(&mut self, env: &mut Env<'_, S>) -> Result<String, String> {
        if self.slots.is_empty() {
            self.slots
                .push(Buffer::new(env.pool, self.max_bytes + PAGE_SIZE)?);
        }
        let t0 = env.now();
        let step = (self.max_bytes / 512) as u64;
        let disk = self.model.len() as u64;
        let mut sector = 0;
        while sector < disk {
            let sectors = step.min(disk - sector);
            self.slots[0].segments(0, us(sectors) * 512, &mut self.segs)?;
            let status = self.one(env, (1 << 42) + sector, Operation::Read, sector)?;
            if status != Status::Ok {
                return Err(format!("read at {sector}: {status:?}"));
            }
            let range = us(sector)..us(sector + sectors);
            self.slots[0].check(0, sector, &self.model[range])?;
            sector += sectors;
        }
        let secs = env.now().saturating_sub(t0).as_secs_f64().max(1e-6);
        #[allow(clippy::cast_precision_loss, reason = "a figure for a report")]
        let mbs = (disk * 512) as f64 / secs / 1e6;
        Ok(format!(
            "whole disk read back ({} MiB, {mbs:.1} MB/s) and matched the model",
            disk >> 11
        ))
    }

    /// Closes the device: Closing, Closed (blkback then unmaps rings and
    /// persistent grants), and once the backend is Closed the engine revokes
    /// everything; the buffers go back to the pool. Fails if a grant could
    /// not be revoked (a page quarantined) or the backend never followed.
    pub fn close<S: Store + ?Sized>(mut self, env: &mut Env<'_, S>) -> Result<String, String> {
        let t0 = env.now();
        let grants_before = env.platform.gnttab.available();
        self.fe
            .begin_close(env.store)
            .map_err(|e| format!("Closing: {e}"))?;
        let follows = |fe: &Fe, env: &Env<'_, S>, states: &[XenbusState]| {
            fe.backend_state(env.store)
                .is_ok_and(|state| states.contains(&state))
        };
        let deadline = t0 + Duration::from_secs(10);
        while !follows(&self.fe, env, &[XenbusState::Closing, XenbusState::Closed]) {
            if env.now() > deadline {
                return Err(format!(
                    "backend still {:?} 10 s after our Closing",
                    self.fe.backend_state(env.store).ok()
                ));
            }
            env.block(&mut [], Duration::from_millis(5));
        }
        // blkback unmaps rings and persistent grants when it sees Closed.
        self.fe
            .end_close(env.store)
            .map_err(|e| format!("Closed: {e}"))?;
        while !follows(&self.fe, env, &[XenbusState::Closed]) && env.now() < deadline {
            env.block(&mut [], Duration::from_millis(5));
        }
        let backend = self.fe.backend_state(env.store).ok();
        {
            lend!(env, p, _events);
            let done = &mut self.done;
            self.fe.close(p, &mut |c| done.push(c));
        }
        let ms = env.now().saturating_sub(t0).as_millis();
        let released = env
            .platform
            .gnttab
            .available()
            .saturating_sub(grants_before);
        let quarantined = self.fe.quarantined_pages();
        let completed = self.done.len();
        for b in self.slots.drain(..) {
            b.free(env.pool);
        }
        if let Some(b) = self.suspend_buffer.take() {
            b.free(env.pool);
        }
        if quarantined > 0 || completed > 0 {
            return Err(format!(
                "{quarantined} pages quarantined, {completed} requests failed at close"
            ));
        }
        Ok(format!(
            "Closed in {ms} ms (backend {backend:?}); {released} grants revoked, none still \
             mapped, pool pages back ({} free)",
            env.pool.free_pages()
        ))
    }

    fn diagnostics(&self) -> String {
        let mut s = String::new();
        for q in self.fe.queues() {
            s.push_str(&q.diagnostics());
            s.push_str("; ");
        }
        s
    }
}

/// Checks dom0's answer to `vbd-verify`.
pub fn check_verify_answer(answer: &str) -> Result<String, String> {
    if answer.starts_with("verified ") {
        Ok(String::from(answer))
    } else {
        Err(format!("dom0: {answer}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_words_are_self_describing() {
        let seed = sector_seed(7, 100);
        assert_eq!(
            sector_word(7, 100, seed, 0),
            u64::from(SECTOR_MAGIC) | (7 << 32)
        );
        assert_eq!(sector_word(7, 100, seed, 1), 100);
        assert_ne!(
            sector_word(7, 100, seed, 2),
            sector_word(8, 100, sector_seed(8, 100), 2)
        );
        assert_ne!(
            sector_word(7, 100, seed, 2),
            sector_word(7, 101, sector_seed(7, 101), 2)
        );
        assert_eq!(sector_word(0, 100, seed, 5), 0);
        // Pinned: dom0's copy in rig-tests must agree.
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
        let mut d = Digest::new();
        d.add(1, 2);
        assert_ne!(d, Digest::new());
    }
}
