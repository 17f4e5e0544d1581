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
