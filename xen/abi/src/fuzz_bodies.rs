//! Bodies of the cargo-fuzz targets in `fuzz/` (feature `fuzzing`), also run by
//! the unit tests below over deterministic pseudo-random inputs so that CI
//! exercises them without a fuzzer.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::blkif::BlkifRequest;
use crate::netif::{NetifRxResponse, NetifTxRequest};
use crate::ring::{BackRing, FrontRing, HeapRingMemory, RingEntry, RingMemory};
use crate::xenbus::XenbusState;
use crate::xs_wire::{XsError, XsdSockmsg};

/// Offsets of the four shared indices.
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

fn poke(memory: &HeapRingMemory, offset: usize, value: u32) {
    debug_assert!(offset <= RSP_EVENT && offset % 4 == 0);
    #[allow(clippy::cast_ptr_alignment, reason = "page-aligned base + 0/4/8/12")]
    let ptr = memory.as_ptr().as_ptr().wrapping_add(offset).cast::<u32>();
    // SAFETY: `offset` is a header index offset: in bounds and 4-aligned; the
    // rings access the header only atomically.
    let index = unsafe { AtomicU32::from_ptr(ptr) };
    index.store(value, Ordering::SeqCst);
}

/// Reads a little-endian u32 from `data` at `*at`, advancing; zero past the end.
fn take_u32(data: &[u8], at: &mut usize) -> u32 {
    let mut bytes = [0; 4];
    for byte in &mut bytes {
        *byte = data.get(*at).copied().unwrap_or(0);
        *at += 1;
    }
    u32::from_le_bytes(bytes)
}

fn check_front<M: RingMemory>(front: &mut FrontRing<u64, u64, M>) {
    let cons = front.rsp_cons();
    let bound = front.req_prod_pvt().wrapping_sub(cons) as usize;
    if let Ok(responses) = front.responses() {
        let n = responses.len();
        assert!(n <= bound, "{n} responses, at most {bound} requests");
        assert_eq!(responses.count(), n);
    } else {
        assert_eq!(front.rsp_cons(), cons, "nothing consumed on error");
    }
    let _ = front.final_check_for_responses();
}

/// A hostile peer on a shared ring: the input is a script of API calls on both
/// ends interleaved with arbitrary writes to the shared indices. Whatever the
/// peer writes, no call panics, consumers never move past what a well-behaved
/// producer could have produced, and errors consume nothing.
///
/// # Panics
/// When one of those properties fails (that is the finding).
pub fn ring(data: &[u8]) {
    let Some(memory) = HeapRingMemory::new(1) else {
        return;
    };
    let Ok(mut front) = FrontRing::<u64, u64, _>::new(&memory) else {
        return;
    };
    let Ok(mut back) = BackRing::<u64, u64, _>::new(&memory) else {
        return;
    };
    let size = front.size();
    let mut at = 0;
    let mut steps = 0;
    while at < data.len() && steps < 4096 {
        steps += 1;
        let op = data[at];
        at += 1;
        match op % 10 {
            0 => {
                let _ = front.write_request(&u64::from(op));
            }
            1 => {
                let _ = front.push_requests_and_check_notify();
            }
            2 => check_front(&mut front),
            3 => {
                let cons = back.req_cons();
                match back.requests() {
                    Ok(requests) => assert!(requests.count() <= size as usize),
                    Err(_) => assert_eq!(back.req_cons(), cons),
                }
            }
            4 => {
                let _ = back.write_response(&u64::from(op));
            }
            5 => {
                let _ = back.push_responses_and_check_notify();
            }
            6 => {
                let _ = back.final_check_for_requests();
            }
            7 => poke(&memory, RSP_PROD, take_u32(data, &mut at)),
            8 => poke(&memory, REQ_PROD, take_u32(data, &mut at)),
            _ => {
                let value = take_u32(data, &mut at);
                poke(
                    &memory,
                    if value & 1 == 0 { REQ_EVENT } else { RSP_EVENT },
                    value,
                );
            }
        }
        assert!(front.outstanding() <= size);
        assert!(back.unanswered() <= size);
    }
}

/// Copies `data` into a `T` (zero-padded), as a peer-written slot would be read.
fn slot<T: RingEntry, const N: usize>(data: &[u8]) -> T {
    let mut bytes = [0_u8; N];
    for (byte, value) in bytes.iter_mut().zip(data) {
        *byte = *value;
    }
    crate::ring::cast_entry::<[u8; N], T>(&bytes)
}

/// Every decoder of peer-written bytes in the crate: ring slots read as their
/// union members, the xenstore header, error names and xenbus states.
///
/// # Panics
/// When a decoder panics or a round trip differs (that is the finding).
pub fn wire(data: &[u8]) {
    let request: BlkifRequest = slot::<_, 112>(data);
    let discard = request.to_discard();
    assert_eq!(discard.id, request.id);
    let indirect = request.to_indirect();
    assert_eq!(BlkifRequest::from(indirect).to_indirect(), indirect);
    let tx: NetifTxRequest = slot::<_, 12>(data);
    let extra = tx.to_extra_info();
    let _ = (extra.gso(), extra.mcast(), extra.hash());
    assert_eq!(NetifTxRequest::from(extra).to_extra_info(), extra);
    let rx: NetifRxResponse = slot::<_, 8>(data);
    assert_eq!(NetifRxResponse::from(rx.to_extra_info()), rx);

    let mut header = [0_u8; XsdSockmsg::SIZE];
    for (byte, value) in header.iter_mut().zip(data) {
        *byte = *value;
    }
    let msg = XsdSockmsg::from_bytes(&header);
    assert_eq!(msg.to_bytes(), header);
    if let Some(error) = XsError::from_name(data) {
        assert_eq!(XsError::from_name(error.name().as_bytes()), Some(error));
    }
    if let Some(state) = XenbusState::parse(data) {
        assert_eq!(XenbusState::from_u32(state.as_u32()), Some(state));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    /// Deterministic pseudo-random inputs (xorshift), biased to interesting bytes.
    fn inputs(count: usize, max_len: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count).map(move |_| {
            let len = usize::try_from(next() % (max_len as u64 + 1)).unwrap_or(0);
            (0..len)
                .map(|_| {
                    let r = next();
                    match r % 8 {
                        0 => 0,
                        1 => 0xff,
                        2 => u8::try_from(r >> 56).unwrap_or(0) % 10,
                        _ => u8::try_from(r >> 56).unwrap_or(0),
                    }
                })
                .collect()
        })
    }

    #[test]
    fn ring_body_survives_hostile_peers() {
        for input in inputs(3000, 600) {
            super::ring(&input);
        }
    }

    #[test]
    fn wire_body_survives_arbitrary_bytes() {
        for input in inputs(5000, 140) {
            super::wire(&input);
        }
        super::wire(b"EAGAIN\0");
        super::wire(b"4");
    }
}
