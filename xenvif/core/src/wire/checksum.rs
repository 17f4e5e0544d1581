//! The Internet checksum (RFC 1071): one's complement sum of 16-bit big-endian
//! words, and the pseudo-headers TCP and UDP add over IPv4 (RFC 793) and IPv6
//! (RFC 8200 §8.1).
//!
//! Sums are kept unfolded in a `u64` while accumulating: every word adds at most
//! `0xffff`, so a `u64` cannot overflow for any buffer that fits in memory
//! (2^48 words). [`fold`] turns a sum into the 16-bit field value.

use super::ip::{IpAddress, Protocol};

/// An unfolded one's complement sum in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    acc: u64,
    /// Whether an odd byte is pending from the previous chunk (its value is
    /// already in `acc`, shifted as a high byte).
    odd: bool,
}

impl Sum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self { acc: 0, odd: false }
    }

    /// Adds `data` as if it followed what was added before, so a packet split
    /// into arbitrary chunks sums the same as the whole.
    pub fn add_bytes(&mut self, data: &[u8]) {
        let mut data = data;
        if self.odd {
            if let Some((&first, rest)) = data.split_first() {
                self.acc += u64::from(first);
                self.odd = false;
                data = rest;
            }
        }
        let mut words = data.chunks_exact(2);
        for word in &mut words {
            self.acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.acc += u64::from(*last) << 8;
            self.odd = true;
        }
    }

    /// Adds one 16-bit word (must be at an even position).
    pub fn add_u16(&mut self, word: u16) {
        self.acc += u64::from(word);
    }

    /// Adds a 32-bit value as two words.
    pub fn add_u32(&mut self, value: u32) {
        self.acc += u64::from(value >> 16) + u64::from(value & 0xffff);
    }

    /// The folded 16-bit one's complement sum (not yet complemented).
    pub fn folded(&self) -> u16 {
        fold(self.acc)
    }

    /// The value to store in a checksum field: the complement of the folded sum.
    pub fn checksum(&self) -> u16 {
        !self.folded()
    }
}

/// Folds an unfolded sum into 16 bits with end-around carry.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 significant bits.
    u16::try_from(acc).unwrap_or(u16::MAX)
}

/// The one's complement sum of `data` (folded, not complemented).
pub fn sum(data: &[u8]) -> u16 {
    let mut s = Sum::new();
    s.add_bytes(data);
    s.folded()
}

/// The checksum of `data`: what an IPv4 header's checksum field holds (computed
/// with that field zero). A buffer including a correct checksum sums to
/// `0xffff`, so this returns 0 for it.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The TCP/UDP pseudo-header sum for `src`/`dst`, `protocol` and an upper-layer
/// length of `length` bytes. Both addresses must be of the same family; a mix
/// sums what it is given (callers never mix: they come from one IP header).
pub fn pseudo_header(src: &IpAddress, dst: &IpAddress, protocol: Protocol, length: u32) -> Sum {
    let mut s = Sum::new();
    s.add_bytes(src.as_bytes());
    s.add_bytes(dst.as_bytes());
    // IPv4 (RFC 793): zero byte + protocol, then a 16-bit length. IPv6 (RFC
    // 8200 §8.1): a 32-bit length, then 24 zero bits + next header. Word order
    // does not matter to a one's complement sum, and a length below 64 KiB has
    // a zero high word, so both are "length as 32 bits + protocol as a word".
    s.add_u32(length);
    s.add_u16(u16::from(protocol.0));
    s
}

/// Whether `data` (a header or segment whose checksum field is filled in, plus
/// `pseudo` for TCP/UDP) verifies.
pub fn verifies(pseudo: Sum, data: &[u8]) -> bool {
    let mut s = pseudo;
    s.add_bytes(data);
    s.folded() == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::{Ipv4Address, Ipv6Address};
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
        assert!(verifies(Sum::new(), &hdr));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn pseudo_header_families() {
        let v4 = pseudo_header(
            &IpAddress::V4(Ipv4Address([10, 0, 0, 1])),
            &IpAddress::V4(Ipv4Address([10, 0, 0, 2])),
            Protocol::TCP,
            20,
        );
        // 0a00 + 0001 + 0a00 + 0002 + 0006 + 0014
        assert_eq!(v4.folded(), 0x0a00 + 1 + 0x0a00 + 2 + 6 + 20);
        let mut a = [0u8; 16];
        a[15] = 1;
        let mut b = [0u8; 16];
        b[15] = 2;
        let v6 = pseudo_header(
            &IpAddress::V6(Ipv6Address(a)),
            &IpAddress::V6(Ipv6Address(b)),
            Protocol::UDP,
            0x1_0008,
        );
        assert_eq!(v6.folded(), 1 + 2 + 1 + 8 + 17);
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_sum(data in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..8)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut s = Sum::new();
            let mut start = 0;
            for cut in cuts {
                s.add_bytes(&data[start..cut]);
                start = cut;
            }
            s.add_bytes(&data[start..]);
            prop_assert_eq!(s.folded(), sum(&data));
        }

        #[test]
        fn filled_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..600)) {
            let len = data.len() & !1;
            data.truncate(len);
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data);
            data[..2].copy_from_slice(&c.to_be_bytes());
            prop_assert!(verifies(Sum::new(), &data));
        }
    }
}
