//! The engine against the scripted blkback: handshake keys, data integrity
//! against a model, back-pressure, hostile responses, reconnect and replay.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use xen_abi::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER,
};
use xenbus_interface::api::{Pfn, XenbusState};

use super::*;
use crate::fake::{BackendKeys, FakeBlkback, FakeChannel, FakeRingPages, FakeXen, Fault};
use crate::fuzz::tests::Rng;

type Fe = Frontend<FakeChannel, FakeRingPages>;

fn platform(xen: &FakeXen) -> Platform<'_, FakeXen, FakeXen, FakeXen, FakeXen, FakeXen> {
    Platform {
        store: xen,
        events: xen,
        grants: xen,
        memory: xen,
        frames: xen,
    }
}

/// Backend and frontend, connected.
fn connect<'a>(xen: &'a FakeXen, keys: &BackendKeys, settings: Settings) -> (Fe, FakeBlkback<'a>) {
    let mut be = FakeBlkback::new(xen, 51712, keys);
    let mut fe = Fe::new(xen, &be.frontend, settings).unwrap();
    let mut sink = |c: Completion| panic!("unexpected completion {c:?}");
    assert_eq!(
        fe.poll_state(platform(xen), &mut sink).unwrap(),
        Action::TalkToBackend
    );
    // The backend takes its time: polling again must not redo the handshake.
    assert_eq!(
        fe.poll_state(platform(xen), &mut sink).unwrap(),
        Action::Wait
    );
    be.connect();
    assert_eq!(
        fe.poll_state(platform(xen), &mut sink).unwrap(),
        Action::Connect
    );
    assert_eq!(fe.state(), XenbusState::Connected);
    (fe, be)
}

/// Polls every queue until idle, collecting completions.
fn poll_all(fe: &mut Fe, xen: &FakeXen, done: &mut Vec<Completion>) {
    for q in 0..fe.queues().len() {
        loop {
            let o = fe.poll(q, 64, platform(xen), &mut |c| done.push(c));
            if !o.more && o.completed == 0 {
                break;
            }
        }
    }
}

/// A caller buffer: `pages` fresh frames.
fn buffer(xen: &FakeXen, pages: usize) -> Vec<Pfn> {
    (0..pages).map(|_| xen.data_page()).collect()
}

#[test]
fn handshake_single_queue_single_page() {
    let xen = FakeXen::new();
    let keys = BackendKeys::linux_like(2048)
        .with("multi-queue-max-queues", "1")
        .with("max-ring-page-order", "0");
    let (fe, be) = connect(&xen, &keys, Settings::default());
    assert!(be.frontend_key("ring-ref").is_some());
    assert!(be.frontend_key("ring-page-order").is_none());
    assert!(be.frontend_key("multi-queue-num-queues").is_none());
    assert!(be.frontend_key("event-channel").is_some());
    assert_eq!(be.frontend_key("feature-persistent").as_deref(), Some("1"));
    assert_eq!(be.frontend_key("state").as_deref(), Some("4"));
    assert_eq!(fe.queues().len(), 1);
    let lu = fe.logical_unit().unwrap();
    assert_eq!((lu.blocks, lu.block_size), (2048, 512));
    assert!(lu.write_cache && lu.discard.is_some());
    assert_eq!(lu.max_transfer_bytes, 256 * 4096);
}

#[test]
fn handshake_multi_queue_multi_page() {
    let xen = FakeXen::new();
    let (fe, be) = connect(&xen, &BackendKeys::linux_like(2048), Settings::default());
    assert_eq!(
        be.frontend_key("multi-queue-num-queues").as_deref(),
        Some("4")
    );
    assert_eq!(be.frontend_key("ring-page-order").as_deref(), Some("4"));
    for q in 0..4 {
        for i in 0..16 {
            assert!(
                be.frontend_key(&alloc::format!("queue-{q}/ring-ref{i}"))
                    .is_some()
            );
        }
        assert!(
            be.frontend_key(&alloc::format!("queue-{q}/event-channel"))
                .is_some()
        );
    }
    assert_eq!(be.queue_count(), 4);
    assert_eq!(fe.queues().len(), 4);
}

#[test]
fn transaction_conflicts_are_retried() {
    let xen = FakeXen::new();
    xen.eagain.set(3);
    let (fe, _be) = connect(&xen, &BackendKeys::linux_like(64), Settings::default());
    assert_eq!(fe.state(), XenbusState::Connected);
}

#[test]
fn grant_budget_shrinks_layout() {
    let xen = FakeXen::new();
    xen.grant_limit.set(Some(400));
    let (fe, _be) = connect(&xen, &BackendKeys::linux_like(64), Settings::default());
    // 50% of 400 = 200 grants for rings + pools of every queue.
    let pools: usize =
        fe.queues().len() * (fe.queues()[0].pool.len() + fe.queues()[0].indirect.len());
    assert!(pools + fe.queues().len() <= 200 + 64, "{pools}");
    assert!(xen.active_grants() <= 200);
}

/// Writes and reads random extents with random alignment through the engine,
/// checking every read against a model of the disk.
fn model_run(keys: &BackendKeys, settings: Settings, seed: u64, rounds: usize, reverse: bool) {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, keys, settings);
    be.reverse = reverse;
    let sectors = fe.info().unwrap().sectors;
    let max_bytes = fe.logical_unit().unwrap().max_transfer_bytes as usize;
    let mut model = vec![0u8; usize::try_from(sectors).unwrap() * 512];
    let mut rng = Rng(seed);
    let mut done = Vec::new();
    for round in 0..rounds {
        let len = (usize::try_from(rng.next() % 64).unwrap() + 1) * 512;
        let len = len.min(max_bytes / 2);
        let sector = rng.next() % (sectors - (len / 512) as u64);
        // Misaligned offset on some rounds (forces bounce pages when not
        // persistent).
        let offset = if round % 3 == 0 {
            usize::try_from(rng.next() % 4096).unwrap() & !7
        } else {
            0
        };
        let pages = (offset + len).div_ceil(4096);
        let frames = buffer(&xen, pages);
        let mut segs = Vec::new();
        let mut left = len;
        let mut pos = offset;
        for f in &frames {
            let start = pos % 4096;
            let n = left.min(4096 - start);
            if n == 0 {
                break;
            }
            segs.push(Segment::new(*f, start, n).unwrap());
            left -= n;
            pos += n;
        }
        let write = rng.next() % 2 == 0;
        if write {
            let data: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
            let mut at = 0;
            for s in &segs {
                xen.write_frame(s.pfn, s.offset.into(), &data[at..at + usize::from(s.len)]);
                at += usize::from(s.len);
            }
            let base = usize::try_from(sector).unwrap() * 512;
            model[base..base + len].copy_from_slice(&data);
        }
        let req = IoRequest {
            tag: round as u64,
            operation: if write {
                Operation::Write {
                    fua: round % 5 == 0,
                }
            } else {
                Operation::Read
            },
            sector,
            segments: &segs,
        };
        let queue = round % fe.queues().len();
        fe.submit(queue, &req, platform(&xen)).unwrap();
        // Serve until complete (FUA may need a second round trip).
        let before = done.len();
        for _ in 0..4 {
            be.serve();
            poll_all(&mut fe, &xen, &mut done);
            if done.len() > before {
                break;
            }
        }
        assert_eq!(done.len(), before + 1, "round {round} not completed");
        assert_eq!(
            done[before].status,
            Status::Ok,
            "round {round}: {:?}",
            fe.broken()
        );
        assert_eq!(done[before].tag, round as u64);
        if !write {
            let mut got = vec![0u8; len];
            let mut at = 0;
            for s in &segs {
                xen.read_frame(
                    s.pfn,
                    s.offset.into(),
                    &mut got[at..at + usize::from(s.len)],
                );
                at += usize::from(s.len);
            }
            let base = usize::try_from(sector).unwrap() * 512;
            assert!(
                got == model[base..base + len],
                "round {round}: read differs from model"
            );
        }
    }
    assert_eq!(be.disk, model);
    let mut sink = |c: Completion| panic!("nothing outstanding, got {c:?}");
    be.reset();
    fe.close(platform(&xen), &mut sink);
    assert!(xen.freed_while_granted.borrow().is_empty());
    assert_eq!(fe.quarantined_pages(), 0);
}

#[test]
fn data_integrity_persistent_indirect() {
    model_run(
        &BackendKeys::linux_like(8192),
        Settings::default(),
        1,
        300,
        false,
    );
}

#[test]
fn data_integrity_without_persistent_grants() {
    let s = Settings {
        persistent: false,
        ..Settings::default()
    };
    model_run(&BackendKeys::linux_like(8192), s, 2, 300, false);
}

#[test]
fn data_integrity_direct_only_single_queue() {
    let s = Settings {
        persistent: false,
        max_indirect_segments: 0,
        max_queues: 1,
        max_ring_page_order: 0,
        ..Settings::default()
    };
    model_run(&BackendKeys::linux_like(8192), s, 3, 200, false);
}

#[test]
fn data_integrity_out_of_order_completion() {
    model_run(
        &BackendKeys::linux_like(8192),
        Settings::default(),
        4,
        100,
        true,
    );
}

#[test]
fn data_integrity_backend_without_features() {
    let keys = BackendKeys::linux_like(4096)
        .with("feature-persistent", "0")
        .with("feature-max-indirect-segments", "0")
        .with("feature-flush-cache", "0")
        .with("multi-queue-max-queues", "1")
        .with("max-ring-page-order", "0");
    model_run(&keys, Settings::default(), 5, 150, false);
}

/// Submits `n` one-page writes of `byte` at sectors 0, 8, 16...
fn submit_writes(
    fe: &mut Fe,
    xen: &FakeXen,
    n: usize,
    first_tag: u64,
) -> Vec<Result<(), SubmitError>> {
    (0..n)
        .map(|i| {
            let f = xen.data_page();
            xen.write_frame(f, 0, &[u8::try_from(i % 251).unwrap(); 4096]);
            let segs = [Segment::new(f, 0, 4096).unwrap()];
            fe.submit(
                0,
                &IoRequest {
                    tag: first_tag + i as u64,
                    operation: Operation::Write { fua: false },
                    sector: (i as u64) * 8,
                    segments: &segs,
                },
                platform(xen),
            )
        })
        .collect()
}

fn one_queue() -> Settings {
    Settings {
        max_queues: 1,
        max_ring_page_order: 0,
        ..Settings::default()
    }
}

#[test]
fn ring_full_is_busy_then_drains() {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), one_queue());
    let results = submit_writes(&mut fe, &xen, 40, 0);
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 32, "one ring page holds 32 requests");
    assert!(results[32..].iter().all(|r| *r == Err(SubmitError::Busy)));
    let mut done = Vec::new();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 32);
    assert!(submit_writes(&mut fe, &xen, 1, 100)[0].is_ok());
}

#[test]
fn grant_exhaustion_is_busy() {
    let xen = FakeXen::new();
    let mut s = one_queue();
    s.persistent = false;
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), s);
    xen.grant_limit.set(Some(xen.active_grants() + 3));
    let results = submit_writes(&mut fe, &xen, 5, 0);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert_eq!(results[3], Err(SubmitError::Busy));
    let mut done = Vec::new();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 3);
    assert!(submit_writes(&mut fe, &xen, 1, 10)[0].is_ok());
}

#[test]
fn requests_are_checked() {
    let xen = FakeXen::new();
    let keys = BackendKeys::linux_like(64).with("info", "4");
    let (mut fe, _be) = connect(&xen, &keys, one_queue());
    let f = xen.data_page();
    let seg = [Segment::new(f, 0, 4096).unwrap()];
    let p = platform(&xen);
    let mut req = IoRequest {
        tag: 1,
        operation: Operation::Write { fua: false },
        sector: 0,
        segments: &seg,
    };
    assert_eq!(fe.submit(0, &req, p), Err(SubmitError::ReadOnly));
    req.operation = Operation::Read;
    req.sector = 60;
    assert!(matches!(
        fe.submit(0, &req, p),
        Err(SubmitError::Invalid(_))
    ));
    let odd = [Segment::new(f, 0, 100).unwrap()];
    req.sector = 0;
    req.segments = &odd;
    assert!(matches!(
        fe.submit(0, &req, p),
        Err(SubmitError::Invalid(_))
    ));
    req.segments = &[];
    assert!(matches!(
        fe.submit(0, &req, p),
        Err(SubmitError::Invalid(_))
    ));
    req.operation = Operation::Discard {
        sectors: 8,
        secure: false,
    };
    assert_eq!(fe.submit(0, &req, p), Err(SubmitError::ReadOnly));
    assert!(Segment::new(f, 4000, 200).is_none());
    assert_eq!(fe.submit(7, &req, p), Err(SubmitError::NotConnected));
}

#[test]
fn flush_discard_and_fua_operations() {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(
        &xen,
        &BackendKeys::linux_like(4096).with("discard-secure", "1"),
        one_queue(),
    );
    let p = platform(&xen);
    let mut done = Vec::new();
    fe.submit(
        0,
        &IoRequest {
            tag: 1,
            operation: Operation::Flush,
            sector: 0,
            segments: &[],
        },
        p,
    )
    .unwrap();
    fe.submit(
        0,
        &IoRequest {
            tag: 2,
            operation: Operation::Discard {
                sectors: 16,
                secure: true,
            },
            sector: 8,
            segments: &[],
        },
        p,
    )
    .unwrap();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 2);
    assert_eq!(be.seen[0].operation, BLKIF_OP_FLUSH_DISKCACHE);
    assert_eq!(
        (be.seen[1].operation, be.seen[1].sector, be.seen[1].sectors),
        (BLKIF_OP_DISCARD, 8, 16)
    );
    // FUA on a flush-only backend: the write, then a flush, then completion.
    let f = xen.data_page();
    let seg = [Segment::new(f, 0, 4096).unwrap()];
    fe.submit(
        0,
        &IoRequest {
            tag: 3,
            operation: Operation::Write { fua: true },
            sector: 0,
            segments: &seg,
        },
        p,
    )
    .unwrap();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 2, "not complete before the flush");
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 3);
    assert_eq!(be.seen[2].operation, BLKIF_OP_WRITE);
    assert_eq!(be.seen[3].operation, BLKIF_OP_FLUSH_DISKCACHE);
}

#[test]
fn fua_uses_barrier_when_offered() {
    let xen = FakeXen::new();
    let keys = BackendKeys::linux_like(4096)
        .with("feature-barrier", "1")
        .with("feature-flush-cache", "0");
    let (mut fe, mut be) = connect(&xen, &keys, one_queue());
    let f = xen.data_page();
    let seg = [Segment::new(f, 0, 4096).unwrap()];
    let mut done = Vec::new();
    fe.submit(
        0,
        &IoRequest {
            tag: 3,
            operation: Operation::Write { fua: true },
            sector: 0,
            segments: &seg,
        },
        platform(&xen),
    )
    .unwrap();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 1);
    assert_eq!(be.seen[0].operation, BLKIF_OP_WRITE_BARRIER);
}

#[test]
fn large_requests_go_indirect_with_persistent_grants() {
    // Linux's blkback maps every grant of a persistent-grant frontend
    // writable, indirect segment pages included: granting those read-only
    // fails every indirect request ("invalid buffer -- could not remap it"),
    // as the guest kernel's rig check found.
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(8192), one_queue());
    assert!(fe.queues()[0].features().persistent);
    let frames = buffer(&xen, 64);
    for (i, f) in frames.iter().enumerate() {
        xen.write_frame(*f, 0, &[u8::try_from(i).unwrap(); 4096]);
    }
    let segs: Vec<Segment> = frames
        .iter()
        .map(|f| Segment::new(*f, 0, 4096).unwrap())
        .collect();
    let mut done = Vec::new();
    for (tag, operation) in [(1, Operation::Write { fua: false }), (2, Operation::Read)] {
        fe.submit(
            0,
            &IoRequest {
                tag,
                operation,
                sector: 64,
                segments: &segs,
            },
            platform(&xen),
        )
        .unwrap();
        be.serve();
        poll_all(&mut fe, &xen, &mut done);
    }
    assert_eq!(
        done.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Status::Ok, Status::Ok]
    );
    assert!(be.seen.iter().all(|s| s.indirect && s.segments == 64));
    for i in 0..64 {
        assert!(
            be.disk[(64 + 8 * i) * 512..(72 + 8 * i) * 512]
                .iter()
                .all(|&b| usize::from(b) == i)
        );
    }
}

#[test]
fn large_requests_go_indirect() {
    let xen = FakeXen::new();
    let mut s = one_queue();
    s.persistent = false;
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(8192), s);
    let frames = buffer(&xen, 256);
    let segs: Vec<Segment> = frames
        .iter()
        .map(|f| Segment::new(*f, 0, 4096).unwrap())
        .collect();
    let mut done = Vec::new();
    fe.submit(
        0,
        &IoRequest {
            tag: 9,
            operation: Operation::Read,
            sector: 0,
            segments: &segs,
        },
        platform(&xen),
    )
    .unwrap();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done[0].status, Status::Ok);
    assert!(be.seen[0].indirect);
    assert_eq!(
        (be.seen[0].operation, be.seen[0].segments),
        (BLKIF_OP_READ, 256)
    );
    // A misaligned 1 MiB buffer has 257 elements: it goes through the pool.
    let misaligned: Vec<Segment> = core::iter::once(Segment::new(frames[0], 512, 3584).unwrap())
        .chain(
            frames[1..]
                .iter()
                .map(|f| Segment::new(*f, 0, 4096).unwrap()),
        )
        .chain(core::iter::once(Segment::new(frames[0], 0, 512).unwrap()))
        .collect();
    assert_eq!(misaligned.len(), 257);
    fe.submit(
        0,
        &IoRequest {
            tag: 11,
            operation: Operation::Read,
            sector: 0,
            segments: &misaligned,
        },
        platform(&xen),
    )
    .unwrap();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done[1].status, Status::Ok);
    let too_many: Vec<Segment> = segs.iter().chain(segs.iter().take(1)).copied().collect();
    assert!(matches!(
        fe.submit(
            0,
            &IoRequest {
                tag: 10,
                operation: Operation::Read,
                sector: 0,
                segments: &too_many
            },
            platform(&xen)
        ),
        Err(SubmitError::Invalid(_))
    ));
}

/// A hostile backend fails the device: every outstanding request completes
/// with DeviceFailed at once, nothing more is accepted, nothing is acked twice.
fn hostile(fault: Fault) -> (Fe, Vec<Completion>) {
    let xen = FakeXen::new();
    let mut s = one_queue();
    s.persistent = false;
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), s);
    assert!(submit_writes(&mut fe, &xen, 6, 0).iter().all(Result::is_ok));
    be.faults.push(fault);
    let mut done = Vec::new();
    // Two requests: a duplicate answer takes the second one's slot.
    be.serve_queue(0, if fault == Fault::DuplicateId { 2 } else { 1 });
    poll_all(&mut fe, &xen, &mut done);
    assert!(fe.broken().is_some(), "{fault:?} not detected");
    let tags: BTreeSet<u64> = done.iter().map(|c| c.tag).collect();
    assert_eq!(tags.len(), done.len(), "a request was acknowledged twice");
    assert_eq!(done.len(), 6, "every request completes at once");
    assert_eq!(fe.queues()[0].outstanding(), 0);
    assert_eq!(
        submit_writes(&mut fe, &xen, 1, 50)[0],
        Err(SubmitError::Broken)
    );
    // More responses change nothing.
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 6);
    assert!(xen.freed_while_granted.borrow().is_empty());
    (fe, done)
}

#[test]
fn duplicate_id_fails_the_device() {
    let (fe, done) = hostile(Fault::DuplicateId);
    assert!(matches!(fe.broken(), Some(BrokenReason::BadId(_))));
    // The first answer was valid: that request succeeded; the rest failed.
    assert_eq!(done.iter().filter(|c| c.status == Status::Ok).count(), 1);
}

#[test]
fn unknown_id_fails_the_device() {
    let (fe, done) = hostile(Fault::UnknownId);
    assert!(matches!(fe.broken(), Some(BrokenReason::BadId(_))));
    assert!(done.iter().all(|c| c.status == Status::DeviceFailed));
}

#[test]
fn bad_status_fails_the_device() {
    let (fe, _) = hostile(Fault::BadStatus);
    assert!(matches!(
        fe.broken(),
        Some(BrokenReason::BadStatus { status: 7, .. })
    ));
}

#[test]
fn bad_operation_fails_the_device() {
    let (fe, _) = hostile(Fault::BadOperation);
    assert!(matches!(
        fe.broken(),
        Some(BrokenReason::BadOperation { got: 42, .. })
    ));
}

#[test]
fn producer_jump_fails_the_device() {
    let (fe, _) = hostile(Fault::ProducerJump);
    assert!(matches!(
        fe.broken(),
        Some(BrokenReason::ProducerOverflow { .. })
    ));
}

#[test]
fn grant_kept_mapped_is_quarantined() {
    let (fe, done) = hostile(Fault::KeepGrantMapped);
    assert!(matches!(
        fe.broken(),
        Some(BrokenReason::GrantStillMapped(_))
    ));
    assert_eq!(done.iter().filter(|c| c.frames_quarantined).count(), 1);
    assert_eq!(fe.queues()[0].quarantined_grants().len(), 1);
}

#[test]
fn io_error_is_reported_not_fatal() {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), one_queue());
    assert!(submit_writes(&mut fe, &xen, 2, 0).iter().all(Result::is_ok));
    be.faults.push(Fault::IoError);
    let mut done = Vec::new();
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(
        done.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Status::Error, Status::Ok]
    );
    assert!(fe.broken().is_none());
}

/// The backend resets with requests in flight (some answered, some consumed
/// and unanswered, some never seen): after the reconnect every request
/// completes exactly once and the disk holds every write.
fn reset_mid_io(persistent: bool) {
    let xen = FakeXen::new();
    let s = Settings {
        persistent,
        ..Settings::default()
    };
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), s);
    let mut done = Vec::new();
    let n = 24;
    assert!(submit_writes(&mut fe, &xen, n, 0).iter().all(Result::is_ok));
    be.serve_queue(0, 10); // answered
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 10);
    // The backend consumes a few more, does them, but dies before answering.
    be.faults.clear();
    be.reset();
    let mut p_done = Vec::new();
    assert_eq!(
        fe.poll_state(platform(&xen), &mut |c| p_done.push(c))
            .unwrap(),
        Action::Reconnect
    );
    assert!(p_done.is_empty(), "nothing completes across a reset");
    assert_eq!(fe.queues()[0].waiting(), n - 10);
    // The toolstack brings the backend back.
    be.set_state(XenbusState::InitWait);
    assert_eq!(
        fe.poll_state(platform(&xen), &mut |c| p_done.push(c))
            .unwrap(),
        Action::TalkToBackend
    );
    be.connect();
    assert_eq!(
        fe.poll_state(platform(&xen), &mut |c| p_done.push(c))
            .unwrap(),
        Action::Connect
    );
    assert_eq!(fe.reconnects(), 1);
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    let tags: BTreeSet<u64> = done.iter().map(|c| c.tag).collect();
    assert_eq!(done.len(), n, "every request completed");
    assert_eq!(tags.len(), n, "none twice");
    assert!(done.iter().all(|c| c.status == Status::Ok));
    for i in 0..n {
        let byte = u8::try_from(i % 251).unwrap();
        assert!(
            be.disk[i * 4096..(i + 1) * 4096].iter().all(|&b| b == byte),
            "write {i} lost"
        );
    }
    assert!(xen.freed_while_granted.borrow().is_empty());
}

#[test]
fn reset_mid_io_replays_everything_once() {
    reset_mid_io(false);
}

#[test]
fn reset_mid_io_with_persistent_grants() {
    reset_mid_io(true);
}

#[test]
fn restart_replays_everything_once() {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), Settings::default());
    let mut done = Vec::new();
    let n = 20;
    assert!(submit_writes(&mut fe, &xen, n, 0).iter().all(Result::is_ok));
    be.serve_queue(0, 5);
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 5);
    let p = platform(&xen);
    fe.restart(&xen).unwrap();
    assert_eq!(fe.state(), XenbusState::Closing);
    assert_eq!(
        fe.poll_state(p, &mut |c| done.push(c)).unwrap(),
        Action::Wait
    );
    be.set_state(XenbusState::Closing);
    fe.poll_state(p, &mut |c| done.push(c)).unwrap();
    assert_eq!(fe.state(), XenbusState::Closed);
    // Our Closed makes blkback disconnect.
    be.reset();
    assert_eq!(
        fe.poll_state(p, &mut |c| done.push(c)).unwrap(),
        Action::Reconnect
    );
    assert_eq!(fe.state(), XenbusState::Initialising);
    be.set_state(XenbusState::InitWait);
    assert_eq!(
        fe.poll_state(p, &mut |c| done.push(c)).unwrap(),
        Action::TalkToBackend
    );
    be.connect();
    assert_eq!(
        fe.poll_state(p, &mut |c| done.push(c)).unwrap(),
        Action::Connect
    );
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    let tags: BTreeSet<u64> = done.iter().map(|c| c.tag).collect();
    assert_eq!((done.len(), tags.len()), (n, n));
    for i in 0..n {
        let byte = u8::try_from(i % 251).unwrap();
        assert!(
            be.disk[i * 4096..(i + 1) * 4096].iter().all(|&b| b == byte),
            "write {i} lost"
        );
    }
}

/// `xl save` + `xl restore` with requests in every state (completed and
/// seen, answered by the old backend but not consumed, consumed and not
/// answered, never consumed): [`Frontend::resume`] takes back all that we did
/// not see complete, closes no port (the numbers belong to the new domain),
/// leaves no grant behind, and the new backend gets every write once more.
fn resume_in_a_new_domain(persistent: bool) {
    let xen = FakeXen::new();
    let s = Settings {
        persistent,
        ..Settings::default()
    };
    let keys = BackendKeys::linux_like(4096);
    let (mut fe, mut be) = connect(&xen, &keys, s);
    let mut done = Vec::new();
    let n = 24;
    assert!(submit_writes(&mut fe, &xen, n, 0).iter().all(Result::is_ok));
    be.serve_queue(0, 10);
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 10);
    // Answered by the old backend, never consumed by us.
    be.serve_queue(0, 5);
    let old_backend = be.backend.clone();
    let old_ports: Vec<_> = (0..fe.queues().len())
        .filter_map(|q| fe.port(&xen, q))
        .collect();
    assert_eq!(old_ports.len(), 4);
    // Suspended here; the new domain is number 7.
    be.migrate(7, &keys);
    let seen_before = be.seen.len();
    let replay = fe
        .resume(platform(&xen), &mut |c| panic!("completion {c:?}"))
        .unwrap();
    assert_eq!(replay, n - 10, "everything not seen to complete");
    assert!(xen.closed.borrow().is_empty(), "no port closed");
    assert_eq!(xen.active_grants(), 0, "every grant revoked");
    assert_ne!(fe.backend_dir(), old_backend);
    assert_eq!(fe.backend_dir(), be.backend);
    assert_eq!(fe.state(), XenbusState::Initialising);
    assert_eq!(be.frontend_key("state").as_deref(), Some("1"));
    assert_eq!(fe.reconnects(), 1);
    // Nothing goes anywhere until the new backend is connected.
    assert_eq!(
        submit_writes(&mut fe, &xen, 1, 100)[0],
        Err(SubmitError::NotConnected)
    );
    let mut sink = |c: Completion| panic!("completion {c:?}");
    assert_eq!(
        fe.poll_state(platform(&xen), &mut sink).unwrap(),
        Action::TalkToBackend
    );
    be.connect();
    assert_eq!(
        fe.poll_state(platform(&xen), &mut |c| done.push(c))
            .unwrap(),
        Action::Connect
    );
    assert_eq!(be.queue_count(), 4);
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(be.seen.len() - seen_before, n - 10, "each replayed once");
    let tags: BTreeSet<u64> = done.iter().map(|c| c.tag).collect();
    assert_eq!((done.len(), tags.len()), (n, n), "each completed once");
    assert!(done.iter().all(|c| c.status == Status::Ok));
    for i in 0..n {
        let byte = u8::try_from(i % 251).unwrap();
        assert!(
            be.disk[i * 4096..(i + 1) * 4096].iter().all(|&b| b == byte),
            "write {i} lost"
        );
    }
    assert!(xen.freed_while_granted.borrow().is_empty());
    assert_eq!(fe.quarantined_pages(), 0);
}

#[test]
fn resume_in_a_new_domain_replays_everything_once() {
    resume_in_a_new_domain(false);
}

#[test]
fn resume_in_a_new_domain_with_persistent_grants() {
    resume_in_a_new_domain(true);
}

/// Suspended between publishing the rings and the backend's Connected: the
/// half-made rings are dropped the same way and the handshake starts over.
#[test]
fn resume_mid_handshake() {
    let xen = FakeXen::new();
    let keys = BackendKeys::linux_like(4096);
    let mut be = FakeBlkback::new(&xen, 51712, &keys);
    let mut fe = Fe::new(&xen, &be.frontend, Settings::default()).unwrap();
    let mut sink = |c: Completion| panic!("completion {c:?}");
    assert_eq!(
        fe.poll_state(platform(&xen), &mut sink).unwrap(),
        Action::TalkToBackend
    );
    assert!(xen.active_grants() > 0);
    be.migrate(9, &keys);
    assert_eq!(fe.resume(platform(&xen), &mut sink).unwrap(), 0);
    assert_eq!(xen.active_grants(), 0);
    assert!(xen.closed.borrow().is_empty());
    assert_eq!(
        fe.poll_state(platform(&xen), &mut sink).unwrap(),
        Action::TalkToBackend
    );
    be.connect();
    assert_eq!(
        fe.poll_state(platform(&xen), &mut sink).unwrap(),
        Action::Connect
    );
    let mut done = Vec::new();
    assert!(submit_writes(&mut fe, &xen, 3, 0).iter().all(Result::is_ok));
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 3);
}

/// A device that failed before the suspend stays failed.
#[test]
fn resume_of_a_broken_device_is_refused() {
    let (mut fe, _) = hostile(Fault::BadStatus);
    let xen = FakeXen::new();
    let _be = FakeBlkback::new(&xen, 51712, &BackendKeys::linux_like(64));
    assert_eq!(
        fe.resume(platform(&xen), &mut |_| {}),
        Err(ConnectError::Broken)
    );
}

/// Closing, Closed, the backend unmaps, then close: every grant revokes,
/// nothing is quarantined (closing before the backend let go quarantines).
#[test]
fn clean_close_quarantines_nothing() {
    let xen = FakeXen::new();
    let (mut fe, mut be) = connect(&xen, &BackendKeys::linux_like(4096), Settings::default());
    let mut done = Vec::new();
    assert!(submit_writes(&mut fe, &xen, 4, 0).iter().all(Result::is_ok));
    be.serve();
    poll_all(&mut fe, &xen, &mut done);
    assert_eq!(done.len(), 4);
    assert!(xen.active_grants() > 0);
    fe.begin_close(&xen).unwrap();
    be.set_state(XenbusState::Closing);
    fe.end_close(&xen).unwrap();
    assert_eq!(be.frontend_key("state").as_deref(), Some("6"));
    // blkback disconnects (unmaps everything) on our Closed.
    be.reset();
    fe.close(platform(&xen), &mut |c| panic!("completion {c:?}"));
    assert_eq!(fe.quarantined_pages(), 0);
    assert_eq!(xen.active_grants(), 0);
    assert!(xen.freed_while_granted.borrow().is_empty());
}

/// The two layers together, as the miniport will use them: SCSI WRITE(10) and
/// READ(10) on a 4K-sector disk become engine transfers in 512-byte sectors;
/// UNMAP becomes discards on extent boundaries; SYNCHRONIZE CACHE a flush.
#[test]
fn scsi_commands_through_the_engine() {
    use crate::scsi::{self, Outcome, Request};
    let xen = FakeXen::new();
    let keys = BackendKeys::linux_like(8192).with("sector-size", "4096");
    let (mut fe, mut be) = connect(&xen, &keys, one_queue());
    let lu = fe.logical_unit().unwrap();
    assert_eq!((lu.block_size, lu.blocks), (4096, 1024));
    let page = xen.data_page();
    xen.write_frame(page, 0, &[0x5A; 4096]);
    let seg = [Segment::new(page, 0, 4096).unwrap()];
    let mut done = Vec::new();
    let mut run = |fe: &mut Fe, be: &mut FakeBlkback<'_>, cdb: &[u8], data_out: &[u8]| {
        let outcome = scsi::execute(
            Request {
                cdb,
                data_out,
                data_in: &mut [],
                transfer_len: 4096,
            },
            &lu,
        );
        let p = platform(&xen);
        match outcome {
            Outcome::Transfer(t) => {
                let operation = if t.write {
                    Operation::Write { fua: t.fua }
                } else {
                    Operation::Read
                };
                fe.submit(
                    0,
                    &IoRequest {
                        tag: 1,
                        operation,
                        sector: t.sector,
                        segments: &seg,
                    },
                    p,
                )
                .unwrap();
            }
            Outcome::Flush => {
                fe.submit(
                    0,
                    &IoRequest {
                        tag: 2,
                        operation: Operation::Flush,
                        sector: 0,
                        segments: &[],
                    },
                    p,
                )
                .unwrap();
            }
            Outcome::Unmap(list) => {
                for r in list.discard_ranges(lu.discard.unwrap()) {
                    let operation = Operation::Discard {
                        sectors: r.sectors,
                        secure: false,
                    };
                    fe.submit(
                        0,
                        &IoRequest {
                            tag: 3,
                            operation,
                            sector: r.sector,
                            segments: &[],
                        },
                        p,
                    )
                    .unwrap();
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        for _ in 0..2 {
            be.serve();
            poll_all(fe, &xen, &mut done);
        }
    };
    // WRITE(10) LBA 3, 1 block, FUA.
    run(&mut fe, &mut be, &[0x2A, 0x08, 0, 0, 0, 3, 0, 0, 1, 0], &[]);
    assert!(be.disk[3 * 4096..4 * 4096].iter().all(|&b| b == 0x5A));
    assert_eq!(be.seen[0].sector, 24, "4K LBA 3 is 512-byte sector 24");
    // READ(10) LBA 3 into a cleared page.
    xen.write_frame(page, 0, &[0; 4096]);
    run(&mut fe, &mut be, &[0x28, 0, 0, 0, 0, 3, 0, 0, 1, 0], &[]);
    let mut back = [0u8; 4096];
    xen.read_frame(page, 0, &mut back);
    assert!(back.iter().all(|&b| b == 0x5A));
    // UNMAP LBA 3, 1 block: one 4 KiB extent.
    let mut list = vec![0u8, 22, 0, 16];
    list.extend_from_slice(&[0; 4]);
    list.extend_from_slice(&3u64.to_be_bytes());
    list.extend_from_slice(&1u32.to_be_bytes());
    list.extend_from_slice(&[0; 4]);
    run(&mut fe, &mut be, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &list);
    assert!(be.disk[3 * 4096..4 * 4096].iter().all(|&b| b == 0));
    // SYNCHRONIZE CACHE(10).
    run(&mut fe, &mut be, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    assert_eq!(be.seen.last().unwrap().operation, BLKIF_OP_FLUSH_DISKCACHE);
    assert!(done.iter().all(|c| c.status == Status::Ok), "{done:?}");
    assert_eq!(done.len(), 4);
}
