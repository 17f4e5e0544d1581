//! Shared ring tests: two threads playing frontend and backend over one ring,
//! hostile producer indices, and index arithmetic across the 2^32 wrap.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use xen_abi::XEN_PAGE_SIZE;
use xen_abi::ring::{
    BackRing, FrontRing, HeapRingMemory, ProducerOverflow, RingEntry, RingFull, RingIdx, RingMemory,
};

/// A request: a sequence number and a payload derived from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    id: u64,
    payload: u64,
}
// SAFETY: two u64, no padding, any bits valid.
unsafe impl RingEntry for Req {}

/// A response: the request's id and a value computed from its payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rsp {
    id: u64,
    check: u32,
    pad: u32,
}
// SAFETY: u64 + two u32, no padding, any bits valid.
unsafe impl RingEntry for Rsp {}

fn payload(id: u64) -> u64 {
    id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555
}

fn check(payload: u64) -> u32 {
    low32(payload ^ (payload >> 32))
}

/// The low 32 bits: ring indices count modulo 2^32.
#[allow(clippy::cast_possible_truncation, reason = "truncation is the point")]
fn low32(value: u64) -> u32 {
    value as u32
}

type Shared = Arc<HeapRingMemory>;

/// An event channel: `notify` sets it pending; `wait` consumes a pending event or
/// sleeps until one arrives.
#[derive(Default)]
struct EventChannel {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl EventChannel {
    fn notify(&self) {
        *self.pending.lock().unwrap() = true;
        self.cond.notify_one();
    }

    /// Waits for an event; `false` if none came within `timeout` (a lost wakeup:
    /// the other side had work for us but decided not to notify).
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap();
        let (mut pending, result) = self
            .cond
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap();
        if result.timed_out() {
            return false;
        }
        *pending = false;
        true
    }
}

/// How long a side may sleep before we call the wakeup lost.
const LOST_WAKEUP: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct SideStats {
    messages: u64,
    notifies: u64,
    final_checks: u64,
    sleeps: u64,
}

/// The frontend: sends `total` requests, checks every response (in order, each
/// exactly once, with the right value).
fn frontend(
    mut ring: FrontRing<Req, Rsp, Shared>,
    total: u64,
    to_back: &EventChannel,
    from_back: &EventChannel,
) -> Result<SideStats, String> {
    let mut stats = SideStats::default();
    let mut next_id = 0_u64;
    let mut next_rsp = 0_u64;
    while next_rsp < total {
        let mut progressed = false;
        while next_id < total {
            match ring.write_request(&Req {
                id: next_id,
                payload: payload(next_id),
            }) {
                Ok(_) => next_id += 1,
                Err(RingFull) => break,
            }
            progressed = true;
        }
        if progressed && ring.push_requests_and_check_notify() {
            stats.notifies += 1;
            to_back.notify();
        }
        for rsp in ring.responses().map_err(|e| e.to_string())? {
            if rsp.id != next_rsp || rsp.check != check(payload(rsp.id)) {
                return Err(format!("response {rsp:?}, expected id {next_rsp}"));
            }
            next_rsp += 1;
            progressed = true;
        }
        if progressed || next_rsp == total {
            continue;
        }
        // Nothing to send and nothing received: sleep unless a response slipped in.
        stats.final_checks += 1;
        if ring
            .final_check_for_responses()
            .map_err(|e| e.to_string())?
        {
            continue;
        }
        stats.sleeps += 1;
        if !from_back.wait(LOST_WAKEUP) {
            return Err(format!(
                "frontend never woken (lost notification) at {ring:?}"
            ));
        }
    }
    stats.messages = next_rsp;
    Ok(stats)
}

/// The backend: answers every request in order.
fn backend(
    mut ring: BackRing<Req, Rsp, Shared>,
    total: u64,
    to_front: &EventChannel,
    from_front: &EventChannel,
) -> Result<SideStats, String> {
    let mut stats = SideStats::default();
    let mut expected = 0_u64;
    let mut batch: Vec<Req> = Vec::with_capacity(ring.size() as usize);
    while expected < total {
        batch.extend(ring.requests().map_err(|e| e.to_string())?);
        if batch.is_empty() {
            stats.final_checks += 1;
            if ring.final_check_for_requests().map_err(|e| e.to_string())? {
                continue;
            }
            stats.sleeps += 1;
            if !from_front.wait(LOST_WAKEUP) {
                return Err(format!(
                    "backend never woken (lost notification) at {ring:?}"
                ));
            }
            continue;
        }
        for req in batch.drain(..) {
            if req.id != expected || req.payload != payload(req.id) {
                return Err(format!("request {req:?}, expected id {expected}"));
            }
            expected += 1;
            let rsp = Rsp {
                id: req.id,
                check: check(req.payload),
                pad: 0,
            };
            ring.write_response(&rsp).map_err(|e| e.to_string())?;
        }
        if ring.push_responses_and_check_notify() {
            stats.notifies += 1;
            to_front.notify();
        }
    }
    stats.messages = expected;
    Ok(stats)
}

/// Runs `total` requests and responses between two threads over a ring of
/// `pages` pages, checks the notification accounting, and returns the stats.
fn exchange(pages: usize, total: u64) -> (SideStats, SideStats, Duration) {
    let memory: Shared = Arc::new(HeapRingMemory::new(pages).expect("ring memory"));
    let front = FrontRing::<Req, Rsp, _>::new(Arc::clone(&memory)).expect("front ring");
    let back = BackRing::<Req, Rsp, _>::new(Arc::clone(&memory)).expect("back ring");
    let size = front.size();
    let to_back = Arc::new(EventChannel::default());
    let to_front = Arc::new(EventChannel::default());
    let start = Instant::now();
    let back_thread = {
        let (to_back, to_front) = (Arc::clone(&to_back), Arc::clone(&to_front));
        thread::spawn(move || backend(back, total, &to_front, &to_back))
    };
    let front_stats = frontend(front, total, &to_back, &to_front);
    let back_stats = back_thread.join().expect("backend thread");
    let elapsed = start.elapsed();
    let front_stats = front_stats.expect("frontend");
    let back_stats = back_stats.expect("backend");
    assert_eq!(front_stats.messages, total);
    assert_eq!(back_stats.messages, total);
    // A notification is only sent when the peer asked for one: each final check
    // arms at most one, plus the one armed at initialisation (event index 1).
    assert!(
        front_stats.notifies <= back_stats.final_checks + 1,
        "{front_stats:?} {back_stats:?}"
    );
    assert!(
        back_stats.notifies <= front_stats.final_checks + 1,
        "{front_stats:?} {back_stats:?}"
    );
    // No lost wakeup: every sleep was ended by a notification (each one wakes at
    // most one sleep; a sleep that timed out already failed its side).
    assert!(
        back_stats.notifies >= front_stats.sleeps,
        "{front_stats:?} {back_stats:?}"
    );
    assert!(
        front_stats.notifies >= back_stats.sleeps,
        "{front_stats:?} {back_stats:?}"
    );
    // Batching works: far fewer notifications than messages.
    assert!(front_stats.notifies < total / 2 && back_stats.notifies < total / 2);
    println!(
        "{pages}-page ring ({size} slots): {total} requests + {total} responses in {elapsed:?}; \
         front {front_stats:?}; back {back_stats:?}"
    );
    (front_stats, back_stats, elapsed)
}

#[test]
fn million_requests_over_one_page() {
    exchange(1, 1_000_000);
}

#[test]
fn million_requests_over_four_pages() {
    exchange(4, 1_000_000);
}

/// Writes a shared index directly, as a hostile or buggy peer would.
fn poke(memory: &HeapRingMemory, offset: usize, value: u32) {
    #[allow(clippy::cast_ptr_alignment, reason = "page-aligned base + 0/4/8/12")]
    let ptr = memory.as_ptr().as_ptr().wrapping_add(offset).cast::<u32>();
    // SAFETY: `offset` is one of the header's index offsets (0, 4, 8, 12): inside
    // the first page and 4-aligned; the rings access the header only atomically.
    let index = unsafe { AtomicU32::from_ptr(ptr) };
    index.store(value, Ordering::SeqCst);
}

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Sets the shared indices as if `start` messages had gone both ways already.
fn preset(memory: &HeapRingMemory, start: RingIdx) {
    poke(memory, REQ_PROD, start);
    poke(memory, RSP_PROD, start);
    poke(memory, REQ_EVENT, start.wrapping_add(1));
    poke(memory, RSP_EVENT, start.wrapping_add(1));
}

#[test]
fn hostile_indices_are_errors_never_panics() {
    let memory = HeapRingMemory::new(1).unwrap();
    let mut front = FrontRing::<Req, Rsp, _>::new(&memory).unwrap();
    let mut back = BackRing::<Req, Rsp, _>::new(&memory).unwrap();
    for id in 0..10 {
        front
            .write_request(&Req {
                id,
                payload: payload(id),
            })
            .unwrap();
    }
    front.push_requests();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut errors = 0;
    for _ in 0..100_000 {
        // xorshift: deterministic hostile values, with a bias to the edges.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let value = match rng % 4 {
            0 => (rng >> 32) as u32,
            1 => 11,
            2 => u32::MAX,
            _ => (rng >> 40) as u32 % 12,
        };
        poke(&memory, RSP_PROD, value);
        let before = front.rsp_cons();
        match front.unconsumed_responses() {
            Ok(n) => assert!(n <= front.outstanding()),
            Err(ProducerOverflow { prod, cons, limit }) => {
                assert_eq!((prod, cons, limit), (value, before, front.outstanding()));
                assert!(front.responses().is_err());
                assert!(front.final_check_for_responses().is_err());
                assert_eq!(front.rsp_cons(), before, "nothing consumed on error");
                errors += 1;
            }
        }
        poke(&memory, REQ_PROD, value);
        if let Ok(n) = back.unconsumed_requests() {
            assert!(n <= back.size());
        } else {
            assert!(back.requests().is_err());
            assert!(back.final_check_for_requests().is_err());
        }
    }
    assert!(
        errors > 50_000,
        "only {errors} hostile indices were rejected"
    );
}

/// One step of a random front/back interleaving.
#[derive(Clone, Debug)]
enum Op {
    /// The frontend writes up to n requests and pushes them.
    Send(u32),
    /// The backend consumes up to n requests.
    Take(u32),
    /// The backend answers up to n consumed requests and pushes.
    Answer(u32),
    /// The frontend consumes up to n responses.
    Receive(u32),
    /// The frontend runs its final check.
    FrontFinal,
    /// The backend runs its final check.
    BackFinal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0_u32..40).prop_map(Op::Send),
        (0_u32..40).prop_map(Op::Take),
        (0_u32..40).prop_map(Op::Answer),
        (0_u32..40).prop_map(Op::Receive),
        Just(Op::FrontFinal),
        Just(Op::BackFinal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any legal interleaving, starting anywhere in the index space (including just
    /// before the 2^32 wrap), keeps both ends consistent with a simple model, and
    /// each notify decision matches the event index the peer published.
    #[test]
    fn index_arithmetic_survives_the_wrap(
        start in prop_oneof![Just(u32::MAX - 5), Just(u32::MAX), Just(0_u32), any::<u32>()],
        pages in prop_oneof![Just(1_usize), Just(2)],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let memory = HeapRingMemory::new(pages).unwrap();
        preset(&memory, start);
        let mut front = FrontRing::<Req, Rsp, _>::attach(&memory, start).unwrap();
        let mut back = BackRing::<Req, Rsp, _>::attach(&memory, start).unwrap();
        let size = front.size();
        // (pages * 4096 - 64) / 16 slots fit; rounded down to a power of two.
        prop_assert_eq!(size as usize, pages * XEN_PAGE_SIZE / 32);
        // The model: counts of requests written, consumed by the back, answered,
        // and responses consumed by the front.
        let (mut sent, mut taken, mut answered, mut received) = (0_u64, 0_u64, 0_u64, 0_u64);
        let mut queue: Vec<Req> = Vec::new();
        for op in ops {
            match op {
                Op::Send(n) => {
                    let before = front.shared_indices();
                    let mut wrote = 0;
                    for _ in 0..n {
                        let req = Req { id: sent, payload: payload(sent) };
                        let Ok(idx) = front.write_request(&req) else {
                            prop_assert_eq!(sent - received, u64::from(size));
                            break;
                        };
                        prop_assert_eq!(idx, start.wrapping_add(low32(sent)));
                        sent += 1;
                        wrote += 1;
                    }
                    let notify = front.push_requests_and_check_notify();
                    // Notify iff req_event lies in (old, new].
                    let old = before.req_prod;
                    let new = front.req_prod_pvt();
                    let event = before.req_event;
                    let expected = wrote > 0 && new.wrapping_sub(event) < new.wrapping_sub(old);
                    prop_assert_eq!(notify, expected);
                }
                Op::Take(n) => {
                    let mut it = back.requests().unwrap();
                    prop_assert_eq!(it.len() as u64, sent - taken);
                    for _ in 0..n {
                        let Some(req) = it.next() else { break };
                        prop_assert_eq!(req, Req { id: taken, payload: payload(taken) });
                        queue.push(req);
                        taken += 1;
                    }
                }
                Op::Answer(n) => {
                    let before = back.shared_indices();
                    let mut wrote = 0;
                    for _ in 0..n {
                        if queue.is_empty() {
                            prop_assert_eq!(back.write_response(&Rsp { id: 0, check: 0, pad: 0 }), Err(RingFull));
                            break;
                        }
                        let req = queue.remove(0);
                        back.write_response(&Rsp { id: req.id, check: check(req.payload), pad: 0 }).unwrap();
                        answered += 1;
                        wrote += 1;
                    }
                    let notify = back.push_responses_and_check_notify();
                    let new = back.rsp_prod_pvt();
                    let expected = wrote > 0
                        && new.wrapping_sub(before.rsp_event) < new.wrapping_sub(before.rsp_prod);
                    prop_assert_eq!(notify, expected);
                }
                Op::Receive(n) => {
                    let mut it = front.responses().unwrap();
                    prop_assert_eq!(it.len() as u64, answered - received);
                    for _ in 0..n {
                        let Some(rsp) = it.next() else { break };
                        prop_assert_eq!(rsp.id, received);
                        prop_assert_eq!(rsp.check, check(payload(received)));
                        received += 1;
                    }
                }
                Op::FrontFinal => {
                    let waiting = front.final_check_for_responses().unwrap();
                    prop_assert_eq!(waiting, answered > received);
                    if !waiting {
                        prop_assert_eq!(front.shared_indices().rsp_event, front.rsp_cons().wrapping_add(1));
                    }
                }
                Op::BackFinal => {
                    let waiting = back.final_check_for_requests().unwrap();
                    prop_assert_eq!(waiting, sent > taken);
                    if !waiting {
                        prop_assert_eq!(back.shared_indices().req_event, back.req_cons().wrapping_add(1));
                    }
                }
            }
            // Invariants, in index space modulo 2^32.
            prop_assert_eq!(front.req_prod_pvt(), start.wrapping_add(low32(sent)));
            prop_assert_eq!(front.rsp_cons(), start.wrapping_add(low32(received)));
            prop_assert_eq!(back.req_cons(), start.wrapping_add(low32(taken)));
            prop_assert_eq!(back.rsp_prod_pvt(), start.wrapping_add(low32(answered)));
            prop_assert_eq!(u64::from(front.outstanding()), sent - received);
            prop_assert_eq!(u64::from(front.free_requests()), u64::from(size) - (sent - received));
            prop_assert_eq!(u64::from(back.unanswered()), taken - answered);
            prop_assert!(received <= answered && answered <= taken && taken <= sent);
        }
    }

    /// The overflow checks agree with `RING_RESPONSE_PROD_OVERFLOW` /
    /// `RING_REQUEST_PROD_OVERFLOW` for any producer index, anywhere in the index
    /// space.
    #[test]
    fn overflow_checks_match_the_c_macros(
        start in any::<u32>(),
        sent in 0_u32..=128,
        prod_delta in any::<u32>(),
    ) {
        let memory = HeapRingMemory::new(1).unwrap();
        preset(&memory, start);
        let mut front = FrontRing::<Req, Rsp, _>::attach(&memory, start).unwrap();
        let back = BackRing::<Req, Rsp, _>::attach(&memory, start).unwrap();
        for id in 0..sent {
            front.write_request(&Req { id: u64::from(id), payload: 0 }).unwrap();
        }
        front.push_requests();
        let prod = start.wrapping_add(prod_delta);
        poke(&memory, RSP_PROD, prod);
        // Ours is stricter than the C macro: no more responses than requests sent.
        let c_overflow = prod.wrapping_sub(front.rsp_cons()) > front.size();
        let ours = front.unconsumed_responses();
        prop_assert_eq!(ours.is_err(), prod_delta > sent);
        if c_overflow {
            prop_assert!(ours.is_err());
        }
        poke(&memory, REQ_PROD, prod);
        let c_overflow = prod.wrapping_sub(back.rsp_prod_pvt()) > back.size();
        prop_assert_eq!(back.unconsumed_requests().is_err(), c_overflow);
    }
}
