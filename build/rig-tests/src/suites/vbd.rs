//! `vbd`: the xenvbd-core blkfront engine against Linux's real xen-blkback in
//! dom0, and the bench against Linux's own xen-blkfront on the same backing
//! file in the same boot.
//!
//! Each test makes a RAM-backed file (`/tmp` is a tmpfs), puts a loop device on
//! it, and writes the frontend and backend nodes as libxl does (with
//! `physical-device` = `major:minor`, what the `block` hotplug script adds).
//! Linux's xen-blkfront is unloaded so that our engine gets the device.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use xen_abi::ring::RingMemory;
use xenbus_interface::api::{PAGE_SIZE, Pages, Pfn, Store, Txn, XenbusState};
use xenbus_interface::evtchn::child::ChildChannel;
use xenbus_rig::bus::RigBus;
use xenbus_rig::gntalloc::GntallocDevice;
use xenbus_rig::stream::Transport;
use xenvbd_core::blkfront::io::BadFrame;
use xenvbd_core::blkfront::{
    Completion, Frames, Frontend, IoRequest, Operation, Platform, Segment, Settings, Status,
    SubmitError,
};

use crate::{Bench, BenchRow, Suite, Test, sh};

/// The suite.
pub const SUITE: Suite = Suite {
    name: "vbd",
    tests: &[
        Test {
            name: "handshake_keys",
            run: handshake_keys,
        },
        Test {
            name: "integrity_mix_persistent",
            run: integrity_mix_persistent,
        },
        Test {
            name: "integrity_mix_no_persistent",
            run: integrity_mix_no_persistent,
        },
        Test {
            name: "integrity_direct_single_page_ring",
            run: integrity_direct_single_page_ring,
        },
        Test {
            name: "sector_4k",
            run: sector_4k,
        },
        Test {
            name: "flush_and_discard_hole",
            run: flush_and_discard_hole,
        },
        Test {
            name: "read_only_refuses_writes",
            run: read_only_refuses_writes,
        },
        Test {
            name: "backend_rebind_mid_io",
            run: backend_rebind_mid_io,
        },
        Test {
            name: "backend_reset_mid_io",
            run: backend_reset_mid_io,
        },
        Test {
            name: "filesystem_over_nbd",
            run: filesystem_over_nbd,
        },
    ],
    benches: &[Bench {
        name: "blkfront",
        run: bench,
    }],
};

/// Frame access in the rig: a frame number is a page of ours (`gntalloc`).
struct RigFrames<'a>(&'a GntallocDevice);

impl RigFrames<'_> {
    fn addr(&self, pfn: Pfn, offset: usize, len: usize) -> Result<*mut u8, BadFrame> {
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(BadFrame(pfn));
        }
        let base = self.0.address_of(pfn).ok_or(BadFrame(pfn))?;
        Ok(base.as_ptr().wrapping_add(offset))
    }
}

impl Frames for RigFrames<'_> {
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), BadFrame> {
        let d = self.addr(dst, dst_offset, len)?;
        let s = self.addr(src, src_offset, len)?;
        // SAFETY: both ranges lie inside live gntalloc pages of this process
        // (`address_of` knows them); `copy` tolerates overlap.
        unsafe { std::ptr::copy(s, d, len) };
        Ok(())
    }

    fn write(&self, dst: Pfn, offset: usize, bytes: &[u8]) -> Result<(), BadFrame> {
        let d = self.addr(dst, offset, bytes.len())?;
        // SAFETY: the range lies inside a live gntalloc page of this process.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), d, bytes.len()) };
        Ok(())
    }
}

/// Ring memory over gntalloc pages.
struct RigRing(Pages);

impl From<Pages> for RigRing {
    fn from(pages: Pages) -> Self {
        Self(pages)
    }
}

impl From<RigRing> for Pages {
    fn from(ring: RigRing) -> Self {
        ring.0
    }
}

// SAFETY: `Pages`' contract: page-aligned, valid, initialised (zeroed) memory of
// `len()` bytes, a non-zero multiple of the page size, for as long as the value
// lives; neither pointer nor length changes.
unsafe impl RingMemory for RigRing {
    fn as_ptr(&self) -> NonNull<u8> {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

type Fe = Frontend<ChildChannel, RigRing>;

/// A backing file, its loop device, and the xenstore nodes of one vbd.
struct Disk {
    file: String,
    loopdev: String,
    frontend: String,
    backend: String,
}

/// Options of a disk.
#[derive(Clone, Copy)]
struct DiskSpec {
    mib: u64,
    sector_size: u32,
    read_only: bool,
}

const PLAIN: DiskSpec = DiskSpec {
    mib: 64,
    sector_size: 512,
    read_only: false,
};

fn xs(what: &str) -> impl Fn(xenbus_interface::api::StoreError) -> String + '_ {
    move |e| format!("xenstore {what}: {e}")
}

impl Disk {
    /// Creates the file, the loop device and the nodes, with the backend left to
    /// reach InitWait.
    fn create(store: &dyn Store, devid: u32, spec: DiskSpec) -> Result<Self, String> {
        let file = format!("/tmp/vbd-{devid}.img");
        sh(&format!("rm -f {file}; truncate -s {}M {file}", spec.mib))?;
        let loopdev = sh(&format!(
            "losetup -f --show --sector-size {} {file}",
            spec.sector_size
        ))?
        .trim()
        .to_string();
        let majmin = sh(&format!(
            "printf '%x:%x' $(stat -L -c '0x%t 0x%T' {loopdev})"
        ))?;
        let frontend = format!("/local/domain/0/device/vbd/{devid}");
        let backend = format!("/local/domain/0/backend/vbd/0/{devid}");
        let disk = Self {
            file,
            loopdev,
            frontend,
            backend,
        };
        // One transaction, as libxl does: blkback must never see a half-made
        // device (it reads `frontend` and `frontend-id` when it probes).
        for _ in 0..16 {
            let txn = store.transaction_start().map_err(xs("transaction"))?;
            let written = disk.write_nodes(store, txn, devid, spec, majmin.trim());
            if let Err(e) = written {
                let _ = store.transaction_end(txn, false);
                return Err(e);
            }
            match store.transaction_end(txn, true) {
                Ok(()) => return Ok(disk),
                Err(xenbus_interface::api::StoreError::Xs(
                    xenbus_interface::api::XsError::Eagain,
                )) => {}
                Err(e) => return Err(format!("xenstore transaction end: {e}")),
            }
        }
        Err("xenstore transaction kept conflicting".into())
    }

    /// The nodes libxl writes, plus `physical-device` (the hotplug script's).
    fn write_nodes(
        &self,
        store: &dyn Store,
        txn: Txn,
        devid: u32,
        spec: DiskSpec,
        majmin: &str,
    ) -> Result<(), String> {
        let w = |path: String, value: &str| {
            store
                .write(txn, &path, value.as_bytes())
                .map_err(xs("write"))
        };
        let (fe, be) = (&self.frontend, &self.backend);
        w(format!("{fe}/backend"), be)?;
        w(format!("{fe}/backend-id"), "0")?;
        w(format!("{fe}/virtual-device"), &devid.to_string())?;
        w(format!("{fe}/device-type"), "disk")?;
        w(format!("{fe}/state"), "1")?;
        w(format!("{be}/frontend"), fe)?;
        w(format!("{be}/frontend-id"), "0")?;
        w(format!("{be}/online"), "1")?;
        w(format!("{be}/removable"), "0")?;
        w(format!("{be}/bootable"), "1")?;
        w(format!("{be}/dev"), "xvdz")?;
        w(format!("{be}/type"), "phy")?;
        w(format!("{be}/mode"), if spec.read_only { "r" } else { "w" })?;
        w(format!("{be}/device-type"), "disk")?;
        w(format!("{be}/params"), &self.file)?;
        w(format!("{be}/state"), "1")?;
        w(format!("{be}/physical-device"), majmin)?;
        Ok(())
    }

    /// Reads the backing file.
    fn contents(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.file).map_err(|e| format!("read {}: {e}", self.file))
    }

    /// Removes the nodes, the loop device and the file.
    fn remove(&self, store: &dyn Store) {
        let _ = store.remove(Txn::NONE, &self.frontend);
        let _ = store.remove(Txn::NONE, &self.backend);
        // blkback lets go of the loop device once it has seen the removal.
        for _ in 0..50 {
            if sh(&format!("losetup -d {}", self.loopdev)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Makes sure our engine, not Linux's, gets `device/vbd/*`, and that gntalloc
/// may hand out enough grants for multi-queue rings, pools and data buffers.
fn prepare() -> Result<(), String> {
    let _ = sh("modprobe -r xen-blkfront");
    sh("echo 16384 > /sys/module/xen_gntalloc/parameters/limit").map(drop)
}

fn open_bus() -> Result<RigBus, String> {
    // The xenstored socket is ~10x faster for writes than /dev/xen/xenbus.
    RigBus::open_with(Transport::Socket)
        .or_else(|_| RigBus::open())
        .map_err(|e| format!("open the rig bus: {e}"))
}

/// One frontend session: the engine and the platform it runs on.
struct Session<'a> {
    bus: &'a RigBus,
    frames: RigFrames<'a>,
    fe: Fe,
    done: Vec<Completion>,
}

impl<'a> Session<'a> {
    /// Runs the handshake until Connected (or `timeout`).
    fn connect(bus: &'a RigBus, disk: &Disk, settings: Settings) -> Result<Self, String> {
        let fe =
            Fe::new(bus.store(), &disk.frontend, settings).map_err(|e| format!("frontend: {e}"))?;
        let mut s = Self {
            bus,
            frames: RigFrames(bus.grants()),
            fe,
            done: Vec::new(),
        };
        s.wait_state(XenbusState::Connected, Duration::from_secs(30))?;
        Ok(s)
    }

    /// Follows the backend's state until ours is `want`.
    fn wait_state(&mut self, want: XenbusState, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = Platform {
                store: self.bus.store(),
                events: self.bus.child_evtchn(),
                grants: self.bus.child_gnttab(),
                memory: self.bus.grants(),
                frames: &self.frames,
            };
            let done = &mut self.done;
            let result = self.fe.poll_state(p, &mut |c| done.push(c));
            result.map_err(|e| format!("handshake: {e}"))?;
            if self.fe.state() == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                let dump = sh(&format!(
                    "xenstore-ls -f {} {} 2>&1 | head -60",
                    self.fe.backend_dir(),
                    self.fe.backend_dir().replace("backend/vbd/0", "device/vbd")
                ))
                .unwrap_or_default();
                println!("{dump}");
                return Err(format!(
                    "state {:?} not reached within {timeout:?} (ours {:?}, backend {:?})",
                    want,
                    self.fe.state(),
                    self.fe.backend_state(self.bus.store()).ok()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn submit(&mut self, queue: usize, req: &IoRequest<'_>) -> Result<(), SubmitError> {
        let p = Platform {
            store: self.bus.store(),
            events: self.bus.child_evtchn(),
            grants: self.bus.child_gnttab(),
            memory: self.bus.grants(),
            frames: &self.frames,
        };
        self.fe.submit(queue, req, p)
    }

    /// Waits briefly for an event, then polls every queue.
    fn poll(&mut self) {
        let _ = self.bus.evtchn().wait_any(Duration::from_millis(50));
        let p = Platform {
            store: self.bus.store(),
            events: self.bus.child_evtchn(),
            grants: self.bus.child_gnttab(),
            memory: self.bus.grants(),
            frames: &self.frames,
        };
        let done = &mut self.done;
        for q in 0..self.fe.queues().len() {
            loop {
                let o = self.fe.poll(q, 64, p, &mut |c| done.push(c));
                if !o.more {
                    break;
                }
            }
        }
    }

    fn close(mut self) {
        // Let blkback unmap the rings and persistent grants before they go.
        if self.fe.begin_close(self.bus.store()).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && !matches!(
                    self.fe.backend_state(self.bus.store()),
                    Ok(XenbusState::Closing | XenbusState::Closed) | Err(_)
                )
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let p = Platform {
            store: self.bus.store(),
            events: self.bus.child_evtchn(),
            grants: self.bus.child_gnttab(),
            memory: self.bus.grants(),
            frames: &self.frames,
        };
        let done = &mut self.done;
        self.fe.close(p, &mut |c| done.push(c));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !matches!(
                self.fe.backend_state(self.bus.store()),
                Ok(XenbusState::Closed) | Err(_)
            )
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A data buffer: pages of ours.
struct Buffer {
    pages: Pages,
}

impl Buffer {
    fn new(bus: &RigBus, bytes: usize) -> Result<Self, String> {
        let pages =
            xenbus_interface::api::Memory::alloc(bus.grants(), bytes.div_ceil(PAGE_SIZE).max(1))
                .map_err(|_| "out of grantable memory".to_string())?;
        Ok(Self { pages })
    }

    /// The scatter list of `len` bytes from byte `start` of the buffer.
    fn segments(&self, start: usize, len: usize) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut pos = start;
        let end = start + len;
        while pos < end {
            let page = pos / PAGE_SIZE;
            let off = pos % PAGE_SIZE;
            let n = (end - pos).min(PAGE_SIZE - off);
            if let Some(seg) = self
                .pages
                .pfn(page)
                .and_then(|pfn| Segment::new(pfn, off, n))
            {
                out.push(seg);
            }
            pos += n;
        }
        out
    }

    fn write(&self, offset: usize, data: &[u8]) -> Result<(), String> {
        xenbus_rig::shared::write_pages(&self.pages, offset, data).map_err(|e| e.to_string())
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), String> {
        xenbus_rig::shared::read_pages(&self.pages, offset, out).map_err(|e| e.to_string())
    }

    fn free(self, bus: &RigBus) {
        xenbus_interface::api::Memory::free(bus.grants(), self.pages);
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `x` as a `usize` (dom0 is 64-bit).
fn us(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// One operation of the integrity mix, split into requests of at most the
/// engine's maximum transfer.
struct Op {
    write: bool,
    offset: usize,
    len: usize,
    buf_start: usize,
    parts_left: usize,
    failed: bool,
}

/// A random mix of reads and writes of every size from 512 B to 4 MiB (log
/// uniform), at random block offsets and random buffer alignments, with up to
/// [`Mix::QD`] operations in flight on non-overlapping ranges, checked against
/// a model; finally the backing file is compared with the model.
fn integrity_mix(
    spec: DiskSpec,
    settings: Settings,
    ops: usize,
    seed: u64,
) -> Result<String, String> {
    prepare()?;
    let bus = open_bus()?;
    let disk = Disk::create(
        bus.store(),
        51712 + u32::try_from(seed % 16).unwrap_or(0) * 16,
        spec,
    )?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, settings)?;
        let r = run_mix(&mut s, &disk, spec, ops, seed);
        s.close();
        r
    })();
    disk.remove(bus.store());
    result
}

/// The state of an integrity mix.
struct Mix {
    model: Vec<u8>,
    block: usize,
    max_bytes: usize,
    buffers: Vec<Buffer>,
    inflight: BTreeMap<usize, Op>,
    tags: BTreeMap<u64, usize>,
    next_tag: u64,
    rng: Rng,
    bytes_moved: u64,
    largest: usize,
    start: Instant,
}

impl Mix {
    const QD: usize = 4;
    const SLOT_BYTES: usize = 4 << 20;
    const LIMIT: Duration = Duration::from_secs(240);

    fn stalled(&self, s: &Session<'_>) -> Option<String> {
        if self.start.elapsed() < Self::LIMIT {
            return None;
        }
        for q in s.fe.queues() {
            println!("  queue: {}", q.diagnostics());
        }
        Some(format!(
            "stalled with {} operations in flight",
            self.inflight.len()
        ))
    }

    /// Picks and submits one operation into a free slot; `Ok(false)` if it
    /// would overlap one in flight (poll and retry).
    fn issue(&mut self, s: &mut Session<'_>) -> Result<bool, String> {
        let slot = (0..Self::QD)
            .find(|i| !self.inflight.contains_key(i))
            .ok_or("no slot")?;
        // Sizes 512 B .. 4 MiB, log-uniform, in whole logical blocks.
        let shift = self.rng.below(14);
        let raw = us((512u64 << shift) + self.rng.below(512u64 << shift));
        let len =
            (raw.min(Self::SLOT_BYTES).div_ceil(self.block) * self.block).min(Self::SLOT_BYTES);
        let blocks = (self.model.len() - len) / self.block;
        let offset = us(self.rng.below(blocks as u64 + 1)) * self.block;
        if self
            .inflight
            .values()
            .any(|o| offset < o.offset + o.len && o.offset < offset + len)
        {
            return Ok(false);
        }
        let buf_start = match self.rng.below(4) {
            0 => us(self.rng.below(PAGE_SIZE as u64)), // any byte alignment
            1 => us(self.rng.below(8)) * 512,          // sector aligned
            _ => 0,
        };
        let write = self.rng.below(2) == 0;
        if write {
            let mut data = vec![0u8; len];
            self.rng.fill(&mut data);
            self.buffers[slot].write(buf_start, &data)?;
            self.model[offset..offset + len].copy_from_slice(&data);
        }
        let parts = len.div_ceil(self.max_bytes);
        let queues = s.fe.queues().len().max(1);
        for part in 0..parts {
            let part_off = part * self.max_bytes;
            let part_len = (len - part_off).min(self.max_bytes);
            let segs = self.buffers[slot].segments(buf_start + part_off, part_len);
            let tag = self.next_tag;
            self.next_tag += 1;
            let operation = if write {
                Operation::Write {
                    fua: self.rng.below(8) == 0,
                }
            } else {
                Operation::Read
            };
            let req = IoRequest {
                tag,
                operation,
                sector: ((offset + part_off) / 512) as u64,
                segments: &segs,
            };
            loop {
                match s.submit(us(tag) % queues, &req) {
                    Ok(()) => break,
                    Err(SubmitError::Busy) => {
                        if let Some(why) = self.stalled(s) {
                            return Err(format!("{why}; submit of {part_len} bytes stayed busy"));
                        }
                        s.poll();
                        // Completions of earlier parts wait in `s.done`.
                    }
                    Err(e) => return Err(format!("submit {len} bytes at {offset}: {e}")),
                }
            }
            self.tags.insert(tag, slot);
        }
        self.largest = self.largest.max(len);
        self.inflight.insert(
            slot,
            Op {
                write,
                offset,
                len,
                buf_start,
                parts_left: parts,
                failed: false,
            },
        );
        Ok(true)
    }

    /// Accounts one completion; checks a finished read against the model.
    fn complete(&mut self, s: &Session<'_>, c: Completion) -> Result<(), String> {
        let slot = self
            .tags
            .remove(&c.tag)
            .ok_or_else(|| format!("completion for unknown tag {}", c.tag))?;
        let op = self
            .inflight
            .get_mut(&slot)
            .ok_or("completion for an idle slot")?;
        op.failed |= c.status != Status::Ok;
        op.parts_left -= 1;
        if op.parts_left > 0 {
            return Ok(());
        }
        let op = self.inflight.remove(&slot).ok_or("slot vanished")?;
        let kind = if op.write { "write" } else { "read" };
        if op.failed {
            return Err(format!(
                "{kind} of {} bytes at {} failed (broken: {:?})",
                op.len,
                op.offset,
                s.fe.broken()
            ));
        }
        self.bytes_moved += op.len as u64;
        if !op.write {
            let mut got = vec![0u8; op.len];
            self.buffers[slot].read(op.buf_start, &mut got)?;
            let want = &self.model[op.offset..op.offset + op.len];
            if let Some(first) = got.iter().zip(want).position(|(a, b)| a != b) {
                return Err(format!(
                    "read of {} bytes at {} differs from the model at byte {first}",
                    op.len, op.offset
                ));
            }
        }
        Ok(())
    }
}

fn run_mix(
    s: &mut Session<'_>,
    disk: &Disk,
    spec: DiskSpec,
    ops: usize,
    seed: u64,
) -> Result<String, String> {
    let info = *s.fe.info().ok_or("no disk info")?;
    let lu = s.fe.logical_unit().ok_or("no logical unit")?;
    let mut buffers = Vec::new();
    for _ in 0..Mix::QD {
        buffers.push(Buffer::new(s.bus, Mix::SLOT_BYTES + PAGE_SIZE)?);
    }
    let mut mix = Mix {
        model: vec![0u8; us(info.sectors * 512)],
        block: spec.sector_size as usize,
        max_bytes: lu.max_transfer_bytes as usize,
        buffers,
        inflight: BTreeMap::new(),
        tags: BTreeMap::new(),
        next_tag: 0,
        rng: Rng(seed | 1),
        bytes_moved: 0,
        largest: 0,
        start: Instant::now(),
    };
    let mut issued = 0;
    let outcome = (|| {
        while issued < ops || !mix.inflight.is_empty() {
            if let Some(why) = mix.stalled(s) {
                return Err(why);
            }
            if issued < ops && mix.inflight.len() < Mix::QD && mix.issue(s)? {
                issued += 1;
                continue;
            }
            s.poll();
            for c in std::mem::take(&mut s.done) {
                mix.complete(s, c)?;
            }
        }
        Ok(())
    })();
    for b in std::mem::take(&mut mix.buffers) {
        b.free(s.bus);
    }
    outcome?;
    let file = disk.contents()?;
    if let Some(first) = file.iter().zip(&mix.model).position(|(a, b)| a != b) {
        return Err(format!(
            "backing file differs from the model at byte {first}"
        ));
    }
    let order = s
        .bus
        .store()
        .read(Txn::NONE, &format!("{}/ring-page-order", disk.frontend))
        .map_or_else(|_| "0".into(), |v| String::from_utf8_lossy(&v).into_owned());
    let f = s.fe.queues()[0].features();
    Ok(format!(
        "{ops} ops, {} MiB moved, largest {} KiB, {} queue(s), ring order {order}, indirect {}, persistent {}",
        mix.bytes_moved >> 20,
        mix.largest >> 10,
        s.fe.queues().len(),
        f.indirect_segments,
        f.persistent,
    ))
}

fn report(r: Result<String, String>) -> Result<(), String> {
    let line = r?;
    println!("  {line}");
    Ok(())
}

fn handshake_keys() -> Result<(), String> {
    prepare()?;
    let bus = open_bus()?;
    let disk = Disk::create(bus.store(), 51712, PLAIN)?;
    let result = (|| {
        let s = Session::connect(&bus, &disk, Settings::default())?;
        let read = |dir: &str, key: &str| {
            bus.store()
                .read(Txn::NONE, &format!("{dir}/{key}"))
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default()
        };
        let be_queues: usize = read(&disk.backend, "multi-queue-max-queues")
            .parse()
            .unwrap_or(1);
        let be_order: u32 = read(&disk.backend, "max-ring-page-order")
            .parse()
            .unwrap_or(0);
        let queues = s.fe.queues().len();
        if queues != be_queues.min(8) {
            return Err(format!("{queues} queues, backend offers {be_queues}"));
        }
        let order: u32 = read(&disk.frontend, "ring-page-order").parse().unwrap_or(0);
        if order != be_order.min(4) {
            return Err(format!("ring order {order}, backend offers {be_order}"));
        }
        if read(&disk.frontend, "protocol") != "x86_64-abi" {
            return Err("protocol key missing".into());
        }
        if read(&disk.backend, "state") != "4" || read(&disk.frontend, "state") != "4" {
            return Err("not both Connected".into());
        }
        let f = s.fe.queues()[0].features();
        println!(
            "  backend: {be_queues} queues, order {be_order}, indirect {}, persistent {}, flush {}, discard {:?}",
            f.indirect_segments, f.persistent, f.flush_cache, f.discard
        );
        s.close();
        Ok(())
    })();
    disk.remove(bus.store());
    result
}

fn integrity_mix_persistent() -> Result<(), String> {
    report(integrity_mix(PLAIN, Settings::default(), 150, 1))
}

fn integrity_mix_no_persistent() -> Result<(), String> {
    let settings = Settings {
        persistent: false,
        ..Settings::default()
    };
    report(integrity_mix(PLAIN, settings, 150, 2))
}

fn integrity_direct_single_page_ring() -> Result<(), String> {
    let settings = Settings {
        persistent: false,
        max_indirect_segments: 0,
        max_queues: 1,
        max_ring_page_order: 0,
        ..Settings::default()
    };
    report(integrity_mix(PLAIN, settings, 100, 3))
}

fn sector_4k() -> Result<(), String> {
    let spec = DiskSpec {
        sector_size: 4096,
        ..PLAIN
    };
    prepare()?;
    let bus = open_bus()?;
    let disk = Disk::create(bus.store(), 51712 + 4 * 16, spec)?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        let lu = s.fe.logical_unit().ok_or("no logical unit")?;
        if lu.block_size != 4096 {
            s.close();
            return Err(format!("block size {} reported, want 4096", lu.block_size));
        }
        let r = run_mix(&mut s, &disk, spec, 100, 4);
        s.close();
        r.map(|line| format!("4K logical blocks, {} blocks; {line}", lu.blocks))
    })();
    disk.remove(bus.store());
    report(result)
}

/// Waits until every submitted request completed; returns their statuses.
fn drain(s: &mut Session<'_>, n: usize) -> Result<Vec<Completion>, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.done.len() < n {
        if Instant::now() > deadline {
            return Err(format!("{} of {n} completions", s.done.len()));
        }
        s.poll();
    }
    Ok(std::mem::take(&mut s.done))
}

fn flush_and_discard_hole() -> Result<(), String> {
    prepare()?;
    let bus = open_bus()?;
    let disk = Disk::create(bus.store(), 51712 + 5 * 16, PLAIN)?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        // Fill 8 MiB with data, in 1 MiB writes.
        let buf = Buffer::new(&bus, 1 << 20)?;
        buf.write(0, &vec![0xA5; 1 << 20])?;
        for i in 0..8u64 {
            let segs = buf.segments(0, 1 << 20);
            s.submit(
                0,
                &IoRequest {
                    tag: i,
                    operation: Operation::Write { fua: false },
                    sector: i * 2048,
                    segments: &segs,
                },
            )
            .map_err(|e| format!("write: {e}"))?;
            drain(&mut s, 1)?;
        }
        s.submit(
            0,
            &IoRequest {
                tag: 100,
                operation: Operation::Flush,
                sector: 0,
                segments: &[],
            },
        )
        .map_err(|e| format!("flush: {e}"))?;
        let flushed = drain(&mut s, 1)?;
        if flushed[0].status != Status::Ok {
            return Err(format!("flush: {:?}", flushed[0].status));
        }
        let blocks = |f: &str| -> Result<u64, String> {
            sh(&format!("stat -c %b {f}"))?
                .trim()
                .parse()
                .map_err(|e| format!("stat: {e}"))
        };
        let before = blocks(&disk.file)?;
        // Discard 4 MiB in the middle.
        s.submit(
            0,
            &IoRequest {
                tag: 101,
                operation: Operation::Discard {
                    sectors: 8192,
                    secure: false,
                },
                sector: 4096,
                segments: &[],
            },
        )
        .map_err(|e| format!("discard: {e}"))?;
        let discarded = drain(&mut s, 1)?;
        if discarded[0].status != Status::Ok {
            return Err(format!("discard: {:?}", discarded[0].status));
        }
        let _ = sh("sync");
        let after = blocks(&disk.file)?;
        buf.free(&bus);
        s.close();
        let data = disk.contents()?;
        let hole = &data[2 << 20..6 << 20];
        if hole.iter().any(|&b| b != 0) {
            return Err("discarded range still holds data".into());
        }
        if data[..2 << 20].iter().any(|&b| b != 0xA5)
            || data[6 << 20..8 << 20].iter().any(|&b| b != 0xA5)
        {
            return Err("data around the discarded range lost".into());
        }
        if after + 4096 > before {
            return Err(format!(
                "no hole: {before} blocks before discard, {after} after"
            ));
        }
        println!(
            "  flush ok; discard of 4 MiB freed {} KiB in the backing file",
            (before - after) / 2
        );
        Ok(())
    })();
    disk.remove(bus.store());
    result
}

fn read_only_refuses_writes() -> Result<(), String> {
    prepare()?;
    let bus = open_bus()?;
    let spec = DiskSpec {
        read_only: true,
        ..PLAIN
    };
    sh(&format!("rm -f /tmp/vbd-{}.img", 51712 + 6 * 16))?;
    let disk = Disk::create(bus.store(), 51712 + 6 * 16, spec)?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        let lu = s.fe.logical_unit().ok_or("no logical unit")?;
        let buf = Buffer::new(&bus, 4096)?;
        let segs = buf.segments(0, 4096);
        let w = s.submit(
            0,
            &IoRequest {
                tag: 1,
                operation: Operation::Write { fua: false },
                sector: 0,
                segments: &segs,
            },
        );
        s.submit(
            0,
            &IoRequest {
                tag: 2,
                operation: Operation::Read,
                sector: 0,
                segments: &segs,
            },
        )
        .map_err(|e| format!("read: {e}"))?;
        let read = drain(&mut s, 1)?;
        buf.free(&bus);
        s.close();
        if !lu.read_only {
            return Err("backend mode r but the unit is not read-only".into());
        }
        if w != Err(SubmitError::ReadOnly) {
            return Err(format!("write on a read-only disk: {w:?}"));
        }
        if read[0].status != Status::Ok {
            return Err(format!("read: {:?}", read[0].status));
        }
        // And the SCSI layer says WRITE PROTECTED.
        let mut data_in = [0u8; 0];
        let outcome = xenvbd_core::scsi::execute(
            xenvbd_core::scsi::Request {
                cdb: &[0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                data_out: &[],
                data_in: &mut data_in,
                transfer_len: 512,
            },
            &lu,
        );
        if outcome
            != xenvbd_core::scsi::Outcome::CheckCondition(
                xenvbd_core::scsi::Sense::write_protected(),
            )
        {
            return Err(format!("SCSI WRITE(10): {outcome:?}"));
        }
        Ok(())
    })();
    disk.remove(bus.store());
    result
}

/// Unbinds and rebinds blkback while writes are in flight: every write is
/// acknowledged exactly once and is in the backing file.
/// blkback unbound and bound again with writes in flight: it drains, then
/// re-attaches to our rings by itself.
fn backend_rebind_mid_io() -> Result<(), String> {
    reset_mid_io(Reset::Rebind, 51712 + 7 * 16)
}

/// Our side reconnects (what resume after migration does) with writes in
/// flight: Closing, Closed, new rings, replay.
fn backend_reset_mid_io() -> Result<(), String> {
    reset_mid_io(Reset::Restart, 51712 + 9 * 16)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reset {
    Rebind,
    Restart,
}

/// Resets the backend (or our side) while the session has I/O in flight.
fn reset(how: Reset, devid: u32, s: &mut Session<'_>) -> Result<(), String> {
    let bus = s.bus;
    if how == Reset::Rebind {
        sh(&format!(
            "echo vbd-0-{devid} > /sys/bus/xen-backend/drivers/vbd/unbind"
        ))?;
        sh(&format!(
            "echo vbd-0-{devid} > /sys/bus/xen-backend/drivers/vbd/bind"
        ))?;
        // blkback probes again and re-attaches to the rings.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(s.fe.backend_state(bus.store()), Ok(XenbusState::Connected)) {
            if Instant::now() > deadline {
                return Err("blkback did not come back".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        s.wait_state(XenbusState::Connected, Duration::from_secs(30))
    } else {
        s.fe.restart(bus.store())
            .map_err(|e| format!("restart: {e}"))?;
        s.wait_state(XenbusState::Connected, Duration::from_secs(60))
    }
}

fn reset_mid_io(how: Reset, devid: u32) -> Result<(), String> {
    prepare()?;
    let bus = open_bus()?;
    let disk = Disk::create(bus.store(), devid, PLAIN)?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        let writes = 256usize;
        let len = 64 * 1024;
        let qd = 16;
        let mut bufs = Vec::new();
        for _ in 0..qd {
            bufs.push(Buffer::new(&bus, len)?);
        }
        let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
        let mut slot_of: BTreeMap<u64, usize> = BTreeMap::new();
        let mut free: Vec<usize> = (0..qd).collect();
        let mut next = 0usize;
        let mut reset_done = false;
        let deadline = Instant::now() + Duration::from_secs(180);
        let queues = s.fe.queues().len();
        while acked.len() < writes {
            if Instant::now() > deadline {
                return Err(format!("{} of {writes} writes acknowledged", acked.len()));
            }
            while next < writes && !free.is_empty() {
                let slot = free.pop().ok_or("no slot")?;
                let byte = u8::try_from(next % 251 + 1).unwrap_or(1);
                bufs[slot].write(0, &vec![byte; len])?;
                let segs = bufs[slot].segments(0, len);
                let req = IoRequest {
                    tag: next as u64,
                    operation: Operation::Write { fua: false },
                    sector: (next * len / 512) as u64,
                    segments: &segs,
                };
                match s.submit(next % queues.max(1), &req) {
                    Ok(()) => {
                        slot_of.insert(next as u64, slot);
                        next += 1;
                    }
                    Err(SubmitError::Busy | SubmitError::NotConnected) => {
                        free.push(slot);
                        break;
                    }
                    Err(e) => return Err(format!("submit: {e}")),
                }
            }
            if !reset_done && acked.len() >= 64 {
                reset_done = true;
                println!("  reset with {} writes in flight", next - acked.len());
                reset(how, devid, &mut s)?;
            }
            s.poll();
            for c in std::mem::take(&mut s.done) {
                if c.status != Status::Ok {
                    return Err(format!(
                        "write {} failed: {:?} ({:?})",
                        c.tag,
                        c.status,
                        s.fe.broken()
                    ));
                }
                if let Some(prev) = acked.insert(c.tag, 1) {
                    return Err(format!("write {} acknowledged twice ({prev})", c.tag));
                }
                let slot = slot_of.remove(&c.tag).ok_or("unknown tag")?;
                free.push(slot);
            }
        }
        let reconnects = s.fe.reconnects();
        for b in bufs {
            b.free(&bus);
        }
        s.close();
        let want = u32::from(how == Reset::Restart);
        if reconnects != want {
            return Err(format!("{reconnects} reconnects, want {want}"));
        }
        let data = disk.contents()?;
        for i in 0..writes {
            let byte = u8::try_from(i % 251 + 1).unwrap_or(1);
            if data[i * len..(i + 1) * len].iter().any(|&b| b != byte) {
                return Err(format!("write {i} lost after the reset"));
            }
        }
        println!("  {writes} writes of 64 KiB, reset after 64: all acknowledged once, all on disk");
        Ok(())
    })();
    disk.remove(bus.store());
    result
}

/// Figures of one workload.
#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    write: bool,
    random: bool,
    bs: usize,
    qd: usize,
}

const LOADS: [Load; 4] = [
    Load {
        name: "4k randread QD32",
        write: false,
        random: true,
        bs: 4096,
        qd: 32,
    },
    Load {
        name: "4k randwrite QD32",
        write: true,
        random: true,
        bs: 4096,
        qd: 32,
    },
    Load {
        name: "1M seqread QD8",
        write: false,
        random: false,
        bs: 1 << 20,
        qd: 8,
    },
    Load {
        name: "1M seqwrite QD8",
        write: true,
        random: false,
        bs: 1 << 20,
        qd: 8,
    },
];

const BENCH_SECS: u64 = 5;
const BENCH_MIB: u64 = 256;

/// Our engine's load generator: IOPS over `BENCH_SECS`.
fn ours(s: &mut Session<'_>, load: Load, disk_bytes: u64) -> Result<f64, String> {
    let mut bufs = Vec::new();
    for _ in 0..load.qd {
        bufs.push(Buffer::new(s.bus, load.bs)?);
    }
    let mut rng = Rng(7);
    let mut free: Vec<usize> = (0..load.qd).collect();
    let mut slot_of = BTreeMap::new();
    let mut seq = 0u64;
    let mut done = 0u64;
    let mut tag = 0u64;
    let queues = s.fe.queues().len().max(1);
    let start = Instant::now();
    let end = start + Duration::from_secs(BENCH_SECS);
    while Instant::now() < end {
        while let Some(slot) = free.pop() {
            let blocks = disk_bytes / load.bs as u64;
            let block = if load.random {
                rng.below(blocks)
            } else {
                seq = (seq + 1) % blocks;
                seq
            };
            let segs = bufs[slot].segments(0, load.bs);
            let req = IoRequest {
                tag,
                operation: if load.write {
                    Operation::Write { fua: false }
                } else {
                    Operation::Read
                },
                sector: block * (load.bs / 512) as u64,
                segments: &segs,
            };
            match s.submit(usize::try_from(tag).unwrap_or(0) % queues, &req) {
                Ok(()) => {
                    slot_of.insert(tag, slot);
                    tag += 1;
                }
                Err(SubmitError::Busy) => {
                    free.push(slot);
                    break;
                }
                Err(e) => return Err(format!("submit: {e}")),
            }
        }
        s.poll();
        for c in std::mem::take(&mut s.done) {
            if c.status != Status::Ok {
                return Err(format!("I/O failed: {:?}", c.status));
            }
            free.push(slot_of.remove(&c.tag).ok_or("unknown tag")?);
            done += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Let the rest finish before freeing the buffers.
    let outstanding = slot_of.len();
    drain(s, outstanding)?;
    for b in bufs {
        b.free(s.bus);
    }
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    Ok(done as f64 / secs)
}

/// fio on Linux's xen-blkfront: IOPS.
fn linux(dev: &str, load: Load) -> Result<f64, String> {
    let rw = match (load.write, load.random) {
        (false, true) => "randread",
        (true, true) => "randwrite",
        (false, false) => "read",
        (true, false) => "write",
    };
    let out = sh(&format!(
        "fio --name=b --filename={dev} --direct=1 --ioengine=libaio --rw={rw} --bs={} --iodepth={} \
         --runtime={BENCH_SECS} --time_based --group_reporting --output-format=json",
        load.bs, load.qd
    ))?;
    // JSON: the first `"iops" : N` in the job's `"read" : {` or `"write" : {`
    // object (not the `"rw" : "write"` option).
    let section = if load.write {
        "\"write\" : {"
    } else {
        "\"read\" : {"
    };
    let at = out
        .find(section)
        .ok_or_else(|| format!("no {section} in fio output"))?;
    let rest = &out[at..];
    let key = rest.find("\"iops\"").ok_or("no iops in fio output")?;
    let value = rest[key + 6..]
        .trim_start_matches([' ', ':'])
        .split([',', '\n'])
        .next()
        .unwrap_or("");
    value
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("fio iops {value:?}: {e}"))
}

fn bench() -> Result<Vec<BenchRow>, String> {
    prepare()?;
    let bus = open_bus()?;
    let spec = DiskSpec {
        mib: BENCH_MIB,
        ..PLAIN
    };
    let disk = Disk::create(bus.store(), 51712, spec)?;
    let mut figures = Vec::new();
    let ours_result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        for load in LOADS {
            figures.push(ours(&mut s, load, BENCH_MIB << 20)?);
        }
        s.close();
        Ok::<(), String>(())
    })();
    disk.remove(bus.store());
    ours_result?;
    // Linux's blkfront on a device backed by the same kind of file, same boot.
    sh("modprobe xen-blkfront")?;
    let linux_devid = 51760; // xvdd
    let disk = Disk::create(bus.store(), linux_devid, spec)?;
    let linux_result = (|| {
        let dev = "/dev/xvdd";
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::path::Path::new(dev).exists() {
            if Instant::now() > deadline {
                return Err(format!("{dev} did not appear"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut rows = Vec::new();
        for (load, our) in LOADS.iter().zip(&figures) {
            let theirs = linux(dev, *load)?;
            let unit = if load.bs >= 1 << 20 { "MB/s" } else { "IOPS" };
            #[allow(clippy::cast_precision_loss, reason = "block sizes are small")]
            let scale = if load.bs >= 1 << 20 {
                load.bs as f64 / 1e6
            } else {
                1.0
            };
            rows.push(BenchRow::new(load.name, our * scale, theirs * scale, unit));
        }
        Ok(rows)
    })();
    // Linux's frontend closes when its nodes go.
    let _ = bus
        .store()
        .write(Txn::NONE, &format!("{}/state", disk.backend), b"5");
    std::thread::sleep(Duration::from_secs(1));
    disk.remove(bus.store());
    let _ = sh("modprobe -r xen-blkfront");
    linux_result
}

/// NBD's ioctls (`linux/nbd.h`: `_IO(0xab, n)`).
mod nbd {
    pub const SET_SOCK: libc::c_ulong = 0xab00;
    pub const SET_BLKSIZE: libc::c_ulong = 0xab01;
    pub const DO_IT: libc::c_ulong = 0xab03;
    pub const CLEAR_SOCK: libc::c_ulong = 0xab04;
    pub const SET_SIZE_BLOCKS: libc::c_ulong = 0xab07;
    pub const DISCONNECT: libc::c_ulong = 0xab08;
    pub const SET_FLAGS: libc::c_ulong = 0xab0a;
    pub const FLAG_HAS_FLAGS: libc::c_ulong = 1;
    pub const FLAG_SEND_FLUSH: libc::c_ulong = 1 << 2;
    pub const FLAG_SEND_TRIM: libc::c_ulong = 1 << 5;
    pub const REQUEST_MAGIC: u32 = 0x2560_9513;
    pub const REPLY_MAGIC: u32 = 0x6744_6698;
    pub const CMD_READ: u16 = 0;
    pub const CMD_WRITE: u16 = 1;
    pub const CMD_DISC: u16 = 2;
    pub const CMD_FLUSH: u16 = 3;
    pub const CMD_TRIM: u16 = 4;
}

fn ioctl(fd: libc::c_int, request: libc::c_ulong, arg: libc::c_ulong) -> Result<(), String> {
    // SAFETY: NBD ioctls take an integer argument (or none); `fd` is open.
    let r = unsafe { libc::ioctl(fd, request, arg) };
    if r < 0 {
        Err(format!(
            "ioctl {request:#x}: {}",
            std::io::Error::last_os_error()
        ))
    } else {
        Ok(())
    }
}

/// Runs one request of the NBD server through the engine (QD 1, split into
/// the engine's maximum transfer); returns the NBD error (0 or EIO).
fn nbd_io(
    s: &mut Session<'_>,
    buf: &Buffer,
    operation: Operation,
    offset: u64,
    len: usize,
    max: usize,
) -> u32 {
    let mut done_bytes = 0;
    while done_bytes < len || (len == 0 && done_bytes == 0) {
        let part = (len - done_bytes).min(max);
        let segs = if matches!(operation, Operation::Read | Operation::Write { .. }) {
            buf.segments(done_bytes, part)
        } else {
            Vec::new()
        };
        let req = IoRequest {
            tag: 0,
            operation,
            sector: (offset + done_bytes as u64) / 512,
            segments: &segs,
        };
        loop {
            match s.submit(0, &req) {
                Ok(()) => break,
                Err(SubmitError::Busy) => s.poll(),
                Err(_) => return libc::EIO as u32,
            }
        }
        match drain(s, 1) {
            Ok(c) if c.iter().all(|c| c.status == Status::Ok) => {}
            _ => return libc::EIO as u32,
        }
        if part == 0 {
            break;
        }
        done_bytes += part;
    }
    0
}

/// Reads `len` bytes at `offset` through the engine in chunks of `chunk`;
/// sets `error` on failure.
fn nbd_read(
    s: &mut Session<'_>,
    buf: &Buffer,
    offset: u64,
    len: usize,
    chunk: usize,
    max: usize,
    error: &mut u32,
) -> Result<Vec<Vec<u8>>, String> {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < len && *error == 0 {
        let n = (len - at).min(chunk);
        *error = nbd_io(s, buf, Operation::Read, offset + at as u64, n, max);
        let mut data = vec![0u8; n];
        buf.read(0, &mut data)?;
        chunks.push(data);
        at += n;
    }
    Ok(chunks)
}

/// Sends one NBD reply (with the read data when it succeeded).
fn nbd_reply(
    sock: &mut std::os::unix::net::UnixStream,
    error: u32,
    handle: &[u8],
    chunks: &[Vec<u8>],
) -> Result<(), String> {
    use std::io::Write;
    let mut reply = Vec::with_capacity(16);
    reply.extend_from_slice(&nbd::REPLY_MAGIC.to_be_bytes());
    reply.extend_from_slice(&error.to_be_bytes());
    reply.extend_from_slice(handle);
    sock.write_all(&reply)
        .map_err(|e| format!("nbd write: {e}"))?;
    if error == 0 {
        for c in chunks {
            sock.write_all(c).map_err(|e| format!("nbd write: {e}"))?;
        }
    }
    Ok(())
}

/// Serves NBD requests from `sock` through the engine until the kernel sends
/// NBD_CMD_DISC.
fn nbd_serve(
    s: &mut Session<'_>,
    mut sock: std::os::unix::net::UnixStream,
) -> Result<usize, String> {
    use std::io::Read;
    let max =
        s.fe.logical_unit()
            .ok_or("no logical unit")?
            .max_transfer_bytes as usize;
    let sectors = s.fe.info().ok_or("no disk info")?.sectors;
    let buf = Buffer::new(s.bus, 4 << 20)?;
    let mut data = vec![0u8; 4 << 20];
    let mut served = 0;
    loop {
        let mut h = [0u8; 28];
        if let Err(e) = sock.read_exact(&mut h) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                break;
            }
            return Err(format!("nbd read: {e}"));
        }
        let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let cmd = u16::from_be_bytes([h[6], h[7]]);
        let handle = &h[8..16];
        let offset = u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]);
        let len = us(u64::from(u32::from_be_bytes([h[24], h[25], h[26], h[27]])));
        if magic != nbd::REQUEST_MAGIC {
            return Err(format!("bad NBD magic {magic:#x}"));
        }
        if cmd == nbd::CMD_DISC {
            break;
        }
        let mut error = 0u32;
        let in_range =
            offset % 512 == 0 && len % 512 == 0 && offset / 512 + (len / 512) as u64 <= sectors;
        let mut reply_data = 0;
        match cmd {
            nbd::CMD_WRITE => {
                let mut at = 0;
                while at < len {
                    let n = (len - at).min(data.len());
                    sock.read_exact(&mut data[..n])
                        .map_err(|e| format!("nbd read: {e}"))?;
                    error = if in_range {
                        buf.write(0, &data[..n])?;
                        nbd_io(
                            s,
                            &buf,
                            Operation::Write { fua: false },
                            offset + at as u64,
                            n,
                            max,
                        )
                    } else {
                        libc::EINVAL as u32
                    };
                    at += n;
                }
            }
            nbd::CMD_READ => {
                reply_data = len;
            }
            nbd::CMD_FLUSH => error = nbd_io(s, &buf, Operation::Flush, 0, 0, max),
            nbd::CMD_TRIM => {
                error = if in_range {
                    nbd_io(
                        s,
                        &buf,
                        Operation::Discard {
                            sectors: (len / 512) as u64,
                            secure: false,
                        },
                        offset,
                        0,
                        max,
                    )
                } else {
                    libc::EINVAL as u32
                };
            }
            _ => error = libc::EINVAL as u32,
        }
        if reply_data > 0 && !in_range {
            error = libc::EINVAL as u32;
            reply_data = 0;
        }
        // A read's status is only known after the engine ran it: do it first.
        let chunks = if reply_data > 0 {
            nbd_read(s, &buf, offset, len, data.len(), max, &mut error)?
        } else {
            Vec::new()
        };
        nbd_reply(&mut sock, error, handle, &chunks)?;
        served += 1;
    }
    buf.free(s.bus);
    Ok(served)
}

/// The demo's filesystem: ext4 made through our engine (exposed to dom0 as
/// /dev/nbd0 by an NBD server running on the engine), files written,
/// unmounted, mounted again and checked.
fn filesystem_over_nbd() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    prepare()?;
    sh("modprobe nbd nbds_max=2")?;
    let bus = open_bus()?;
    let disk = Disk::create(bus.store(), 51712 + 8 * 16, PLAIN)?;
    let result = (|| {
        let mut s = Session::connect(&bus, &disk, Settings::default())?;
        let sectors = s.fe.info().ok_or("no disk info")?.sectors;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/nbd0")
            .map_err(|e| format!("open /dev/nbd0: {e}"))?;
        let (ours, kernel) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
        let fd = dev.as_raw_fd();
        ioctl(fd, nbd::SET_BLKSIZE, 4096)?;
        ioctl(
            fd,
            nbd::SET_SIZE_BLOCKS,
            libc::c_ulong::try_from(sectors / 8).unwrap_or(0),
        )?;
        ioctl(
            fd,
            nbd::SET_FLAGS,
            nbd::FLAG_HAS_FLAGS | nbd::FLAG_SEND_FLUSH | nbd::FLAG_SEND_TRIM,
        )?;
        ioctl(
            fd,
            nbd::SET_SOCK,
            libc::c_ulong::try_from(kernel.as_raw_fd()).unwrap_or(0),
        )?;
        let do_it = std::thread::spawn(move || {
            let r = ioctl(fd, nbd::DO_IT, 0);
            drop(kernel);
            r
        });
        let script = std::thread::spawn(move || {
            let out = sh(
                "set -e; mkfs.ext4 -q -F /dev/nbd0; mkdir -p /mnt/vbd; mount /dev/nbd0 /mnt/vbd; \
                for i in 1 2 3 4 5; do head -c $((i * 700000)) /dev/urandom > /mnt/vbd/file$i; done; \
                (cd /mnt/vbd && sha256sum file* > /tmp/vbd-demo.sha256); umount /mnt/vbd; \
                echo 3 > /proc/sys/vm/drop_caches; mount /dev/nbd0 /mnt/vbd; \
                (cd /mnt/vbd && sha256sum -c /tmp/vbd-demo.sha256); df -h /mnt/vbd | tail -1; umount /mnt/vbd",
            );
            // Done (or failed): the kernel sends NBD_CMD_DISC to our server.
            let _ = ioctl(fd, nbd::DISCONNECT, 0);
            out
        });
        let serve = nbd_serve(&mut s, ours);
        let out = script.join().map_err(|_| "script panicked".to_string())?;
        let _ = ioctl(fd, nbd::CLEAR_SOCK, 0);
        let _ = do_it.join();
        s.close();
        let served = serve?;
        let out = out?;
        for line in out.lines() {
            println!("  {line}");
        }
        println!("  ext4 over our engine via /dev/nbd0: {served} NBD requests served");
        Ok(())
    })();
    disk.remove(bus.store());
    result
}
