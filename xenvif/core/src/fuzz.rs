//! Bodies of the cargo-fuzz targets in `fuzz/`, here so that unit tests run them
//! over thousands of inputs on every CI run, not only under a fuzzer.

use crate::rss::{self, HashInput, HashTypes};
use crate::wire::headers::{self, ChecksumRequest};

/// Header parsing, software checksums and RSS hash input on arbitrary bytes.
///
/// # Panics
/// When an invariant breaks: that panic is the fuzzer's finding.
pub fn headers(data: &[u8]) {
    let Ok(parsed) = headers::parse(data) else {
        return;
    };
    assert!(parsed.l3_offset <= data.len());
    if let Some(network) = parsed.network {
        assert_eq!(network.offset, parsed.l3_offset);
        assert!(network.offset + network.header_len <= data.len());
    }
    if let Some(transport) = parsed.transport {
        let network = parsed.network.expect("transport without network");
        assert_eq!(transport.offset, network.offset + network.header_len);
        assert!(transport.offset + transport.header_len <= data.len());
        assert!(transport.checksum_offset() + 2 <= data.len());
        assert!(!network.fragment);
    }
    if let Some(input) = HashInput::from_headers(&parsed, HashTypes::ALL) {
        assert!(input.as_bytes().len() <= rss::MAX_INPUT_LEN);
        let _ = rss::toeplitz(&[0x6d; rss::KEY_LEN], input.as_bytes());
    }
    let mut copy = alloc::vec::Vec::from(data);
    let request = ChecksumRequest {
        ipv4_header: true,
        transport: true,
    };
    if let Ok(filled) = headers::fill_checksums(&mut copy, request) {
        assert_eq!(filled, parsed, "filling checksums changed the headers");
        let (ip_ok, transport_ok) =
            headers::verify_checksums(&copy).expect("filled frame no longer parses");
        assert_ne!(
            ip_ok,
            Some(false),
            "filled IPv4 header checksum does not verify"
        );
        assert_ne!(
            transport_ok,
            Some(false),
            "filled transport checksum does not verify"
        );
    }
}

/// The rx ring against a backend that writes arbitrary responses: `data` is
/// a script of backend responses and frontend calls (post, poll, a grant kept
/// mapped). Checks that no grant leaks or ends early and that every page is in
/// exactly one place: posted, back with the caller, or quarantined.
///
/// # Panics
/// When an invariant breaks: that panic is the fuzzer's finding.
#[allow(
    clippy::too_many_lines,
    reason = "one script interpreter, read top to bottom"
)]
pub fn rx_responses(data: &[u8]) -> RxOutcome {
    use crate::fake::{FakeBackend, FakeGrants, FakeMemory};
    use crate::rx::{RxEvent, RxQueue};
    use crate::stats::Statistics;
    use alloc::collections::BTreeSet;
    use xen_abi::netif::{NetifExtraInfo, NetifRxResponse};
    use xenbus_interface::api::{DomId, GrantRef, Pfn};

    let mut outcome = RxOutcome::default();
    let Some((&first, script)) = data.split_first() else {
        return outcome;
    };
    let (tx, rx) = FakeBackend::ring_pages();
    let _tx = xen_abi::netif::NetifTxFrontRing::new(tx.clone()).expect("tx ring");
    let mut queue = RxQueue::new(rx.clone(), DomId(0)).expect("rx ring");
    let mut backend = FakeBackend::attach(tx, rx);
    let memory = FakeMemory::default();
    let grants = FakeGrants::default();
    let mut stats = Statistics::default();
    let total = usize::from(first % 64) + 1;
    let mut held: alloc::vec::Vec<Pfn> = (0..total).map(|_| memory.alloc()).collect();
    let mut granted: alloc::vec::Vec<GrantRef> = alloc::vec::Vec::new();
    let repost = |queue: &mut RxQueue<_>, held: &mut alloc::vec::Vec<Pfn>| {
        while let Some(&pfn) = held.last() {
            if queue.post(&grants, pfn).is_err() {
                break;
            }
            held.pop();
        }
        queue.push();
    };
    repost(&mut queue, &mut held);
    for op in script.chunks_exact(9) {
        let [kind, arg, ..] = *op else {
            break;
        };
        // Little-endian word `i` of the 8 argument bytes.
        let word = |i: usize| u16::from_le_bytes([op[1 + 2 * i], op[2 + 2 * i]]);
        match kind % 8 {
            0..=2 => {
                let response = NetifRxResponse {
                    id: word(0),
                    offset: word(1),
                    flags: word(2),
                    status: i16::from_le_bytes(word(3).to_le_bytes()),
                };
                let answered = if kind % 8 == 0 {
                    backend.rx_response_echoing_id(response)
                } else {
                    backend.raw_rx_response(response)
                };
                if let Some((_, gref)) = answered {
                    granted.push(gref);
                } else {
                    let _ = backend.rx_phantom_response(response);
                }
            }
            3 => {
                let extra = NetifExtraInfo {
                    r#type: arg % 6,
                    flags: op[2] % 2,
                    u: [word(1), word(2), word(3)],
                };
                if let Some((_, gref)) = backend.raw_rx_response(NetifRxResponse::from(extra)) {
                    granted.push(gref);
                }
            }
            4 | 5 => {
                let mut seen = BTreeSet::new();
                queue.poll(
                    &grants,
                    usize::from(arg) + 1,
                    &mut stats,
                    &mut |event| match event {
                        RxEvent::Packet(p) => {
                            let mut len = 0;
                            for fragment in p.fragments {
                                assert!(
                                    usize::from(fragment.offset) + usize::from(fragment.len)
                                        <= xenbus_interface::api::PAGE_SIZE
                                );
                                len += usize::from(fragment.len);
                                assert!(seen.insert(fragment.pfn.0), "page delivered twice");
                                held.push(fragment.pfn);
                            }
                            assert_eq!(len, p.len);
                            outcome.packets += 1;
                        }
                        RxEvent::Recycle(pfn) => {
                            assert!(seen.insert(pfn.0), "page delivered twice");
                            held.push(pfn);
                        }
                    },
                );
            }
            6 => {
                if let Some(&gref) = granted.get(usize::from(arg) % granted.len().max(1)) {
                    grants.keep_mapped(gref, op[2] % 2 == 0);
                }
            }
            _ => repost(&mut queue, &mut held),
        }
        assert_eq!(
            grants.active(),
            queue.posted() + queue.quarantined(),
            "a grant leaked or ended early"
        );
        let mut all: alloc::vec::Vec<u64> = held.iter().map(|p| p.0).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), held.len(), "a page is held twice");
        assert!(held.len() + queue.posted() + queue.quarantined() <= total);
    }
    outcome.broken = queue.broken().is_some();
    outcome
}

/// What one [`rx_responses`] run reached (so tests can check the generator
/// explores both good traffic and violations).
#[derive(Clone, Copy, Debug, Default)]
pub struct RxOutcome {
    /// Packets delivered.
    pub packets: usize,
    /// The queue ended broken.
    pub broken: bool,
}

/// A small deterministic generator for the unit tests that drive these bodies.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX);
        if bound == 0 {
            0
        } else {
            usize::try_from(self.next_u64() % bound).unwrap_or(0)
        }
    }

    /// Mutates `data` a little: flips, overwrites, truncates or extends.
    pub fn mutate(&mut self, data: &mut alloc::vec::Vec<u8>) {
        for _ in 0..=self.below(4) {
            match self.below(5) {
                0 | 1 if !data.is_empty() => {
                    let at = self.below(data.len());
                    data[at] ^= 1 << self.below(8);
                }
                2 if !data.is_empty() => {
                    let at = self.below(data.len());
                    data[at] = self.next_u64().to_le_bytes()[0];
                }
                3 => {
                    let keep = self.below(data.len() + 1);
                    data.truncate(keep);
                }
                _ => {
                    let extra = self.below(16);
                    for _ in 0..extra {
                        data.push(self.next_u64().to_le_bytes()[0]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EtherType;
    use crate::wire::headers::tests::{eth, tcp};
    use crate::wire::ip::Protocol;
    use crate::wire::{ipv4, ipv6};

    /// Valid frames of every shape the parser knows, as mutation seeds (also
    /// what `fuzz/` writes as its seed corpus).
    pub fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for tags in [&[][..], &[3], &[1, 2]] {
            let mut f = eth(EtherType::IPV4, tags);
            f.extend(ipv4::tests::header(&[1, 1, 1, 0], 28, Protocol::TCP));
            f.extend(tcp(24));
            f.extend([9, 9, 9, 9]);
            seeds.push(f);
            let mut f = eth(EtherType::IPV6, tags);
            f.extend(ipv6::tests::header(Protocol::HOP_BY_HOP, 8 + 8 + 4));
            f.extend([Protocol::UDP.0, 0, 0, 0, 0, 0, 0, 0]);
            f.extend([0x13, 0x88, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
            seeds.push(f);
        }
        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv6::tests::header(Protocol::TCP, 20));
        f.extend(tcp(20));
        seeds.push(f);
        seeds
    }

    #[test]
    fn rx_fuzz_body_on_random_scripts() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut packets, mut broken) = (0, 0);
        for _ in 0..3000 {
            let len = rng.below(400);
            let mut script: Vec<u8> = (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
            // Half the scripts are plausible traffic: id-echoing responses with
            // in-range offsets, lengths and flags, polls and re-posts, and now
            // and then an extra slot; the other half stay raw.
            if rng.below(2) == 0 {
                for op in script.chunks_exact_mut(9).skip(1) {
                    op[0] = [0, 0, 0, 0, 4, 7, 3][rng.below(7)];
                    op[4] = 0;
                    op[8] = 0;
                    op[6] = 0;
                    op[5] &= 0x0d;
                }
            }
            let outcome = rx_responses(&script);
            packets += outcome.packets;
            broken += usize::from(outcome.broken);
        }
        assert!(
            packets > 100 && broken > 100,
            "explored {packets} packets, {broken} violations"
        );
    }

    #[test]
    fn header_fuzz_body_on_mutated_frames() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let seeds = seeds();
        for round in 0..6000 {
            let mut data = seeds[round % seeds.len()].clone();
            rng.mutate(&mut data);
            headers(&data);
        }
        for _ in 0..2000 {
            let len = rng.below(128);
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
            headers(&data);
        }
    }
}
