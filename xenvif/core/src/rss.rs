//! Receive-side scaling: the Toeplitz hash, the hash input NDIS defines for each
//! hash type, and queue selection through an indirection table.
//!
//! The hash is what Microsoft specifies ("RSS Hashing Functions") and what
//! netback computes when the control ring sets algorithm Toeplitz: for each
//! input bit set, from the most significant bit of the first byte on, XOR in the
//! 32 key bits starting at that bit position.

use crate::wire::headers::{Headers, TransportKind};
use crate::wire::ip::IpAddress;

/// Length of the key NDIS hands a miniport and netback accepts
/// (`XEN_NETBK_MAX_HASH_KEY_SIZE`).
pub const KEY_LEN: usize = 40;

/// The longest hash input: two IPv6 addresses and two ports.
pub const MAX_INPUT_LEN: usize = 36;

/// The largest mapping (indirection) table netback accepts
/// (`XEN_NETBK_MAX_HASH_MAPPING_SIZE`), and NDIS's own maximum.
pub const MAX_MAPPING_SIZE: usize = 128;

/// Computes the Toeplitz hash of `input` under `key`. Key bits past the end of
/// `key` count as zero, as in Xen's reference implementation, so a short key
/// never panics.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
    // A 64-bit window over the key: its top 32 bits are the key bits aligned
    // with the input bit being looked at; 8 more bytes are shifted in per input
    // byte.
    let mut window: u64 = 0;
    for i in 0..8 {
        window = (window << 8) | key_byte(i);
    }
    let mut hash: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= window;
            }
            window <<= 1;
        }
        window |= key_byte(i + 8);
    }
    // The valid 32 bits are the top half.
    u32::try_from(hash >> 32).unwrap_or(0)
}

/// Which packet kinds are hashed, and over what. Same bits as
/// `XEN_NETIF_CTRL_HASH_TYPE_*` (what the control ring's SET_HASH_FLAGS
/// carries), onto which NDIS's `NDIS_HASH_IPV4` / `_TCP_IPV4` / `_IPV6` /
/// `_TCP_IPV6` map one to one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HashTypes(u32);

impl HashTypes {
    /// None.
    pub const NONE: Self = Self(0);
    /// IPv4 addresses only.
    pub const IPV4: Self = Self(1 << 0);
    /// IPv4 addresses and TCP ports.
    pub const IPV4_TCP: Self = Self(1 << 1);
    /// IPv6 addresses only.
    pub const IPV6: Self = Self(1 << 2);
    /// IPv6 addresses and TCP ports.
    pub const IPV6_TCP: Self = Self(1 << 3);
    /// Every type defined.
    pub const ALL: Self = Self(0xf);

    /// The wire bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// From wire bits, dropping undefined ones.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for HashTypes {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitAnd for HashTypes {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

/// A hash input built from a frame's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashInput {
    bytes: [u8; MAX_INPUT_LEN],
    len: usize,
    /// The hash type this input is for (exactly one bit).
    pub hash_type: HashTypes,
}

impl HashInput {
    /// The bytes to hash.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Builds NDIS's input for `headers` under the enabled `types`: source
    /// address, destination address, then (for TCP, when the TCP type is on)
    /// source and destination ports; `None` when no enabled type applies.
    /// Like netback, IPv6 packets with extension headers are hashed by
    /// addresses as well: the `_EX` variants are not offered.
    pub fn from_headers(headers: &Headers, types: HashTypes) -> Option<Self> {
        let network = headers.network?;
        let tcp_ports = headers
            .transport
            .filter(|t| t.kind == TransportKind::Tcp)
            .map(|t| (t.src_port, t.dst_port));
        let (tcp_type, addr_type) = match network.src {
            IpAddress::V4(_) => (HashTypes::IPV4_TCP, HashTypes::IPV4),
            IpAddress::V6(_) => (HashTypes::IPV6_TCP, HashTypes::IPV6),
        };
        let mut input = Self {
            bytes: [0; MAX_INPUT_LEN],
            len: 0,
            hash_type: addr_type,
        };
        input.push(network.src.as_bytes());
        input.push(network.dst.as_bytes());
        match tcp_ports {
            Some((src, dst)) if types.contains(tcp_type) => {
                input.push(&src.to_be_bytes());
                input.push(&dst.to_be_bytes());
                input.hash_type = tcp_type;
            }
            _ if types.contains(addr_type) => {}
            _ => return None,
        }
        Some(input)
    }

    fn push(&mut self, data: &[u8]) {
        // Inputs are at most 16 + 16 + 2 + 2 bytes by construction.
        if let Some(slot) = self.bytes.get_mut(self.len..self.len + data.len()) {
            slot.copy_from_slice(data);
            self.len += data.len();
        }
    }
}

/// A complete RSS configuration: key, enabled types and indirection table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// The Toeplitz key.
    pub key: [u8; KEY_LEN],
    /// Enabled hash types.
    pub types: HashTypes,
    /// Indirection table: queue number for `hash % len` (netback's rule).
    /// Never empty once configured.
    pub mapping: heapless_vec::MappingTable,
}

impl RssConfig {
    /// The queue a packet with `hash` goes to, or `None` with an empty table.
    pub fn queue_for_hash(&self, hash: u32) -> Option<u32> {
        let len = u32::try_from(self.mapping.len()).ok().filter(|&n| n > 0)?;
        self.mapping.get(usize::try_from(hash % len).ok()?).copied()
    }

    /// Hashes `headers` and picks the queue: `(hash, type, queue)`.
    pub fn classify(&self, headers: &Headers) -> Option<(u32, HashTypes, u32)> {
        let input = HashInput::from_headers(headers, self.types)?;
        let hash = toeplitz(&self.key, input.as_bytes());
        Some((hash, input.hash_type, self.queue_for_hash(hash)?))
    }
}

/// The fixed-capacity mapping table (no allocation when reconfigured on a
/// DISPATCH_LEVEL path).
pub mod heapless_vec {
    use super::MAX_MAPPING_SIZE;

    /// Up to [`MAX_MAPPING_SIZE`] queue numbers.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MappingTable {
        entries: [u32; MAX_MAPPING_SIZE],
        len: usize,
    }

    impl Default for MappingTable {
        fn default() -> Self {
            Self {
                entries: [0; MAX_MAPPING_SIZE],
                len: 0,
            }
        }
    }

    impl MappingTable {
        /// A table from `entries`, or `None` when longer than
        /// [`MAX_MAPPING_SIZE`].
        pub fn from_slice(entries: &[u32]) -> Option<Self> {
            let mut table = Self::default();
            table
                .entries
                .get_mut(..entries.len())?
                .copy_from_slice(entries);
            table.len = entries.len();
            Some(table)
        }

        /// Spreads `queues` queues round-robin over `size` entries.
        pub fn round_robin(queues: u32, size: usize) -> Option<Self> {
            if queues == 0 || size == 0 || size > MAX_MAPPING_SIZE {
                return None;
            }
            let mut table = Self::default();
            for (i, entry) in table.entries.iter_mut().take(size).enumerate() {
                *entry = u32::try_from(i).ok()? % queues;
            }
            table.len = size;
            Some(table)
        }

        /// Number of entries.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether the table has no entry.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// Entry `index`.
        pub fn get(&self, index: usize) -> Option<&u32> {
            self.as_slice().get(index)
        }

        /// The entries.
        pub fn as_slice(&self) -> &[u32] {
            self.entries.get(..self.len).unwrap_or(&[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EtherType;
    use crate::wire::headers::parse;
    use crate::wire::headers::tests::{eth, tcp};
    use crate::wire::ip::Protocol;
    use crate::wire::{ipv4, ipv6};

    /// Microsoft's verification key ("Verifying the RSS Hash Calculation").
    pub const MS_KEY: [u8; KEY_LEN] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// (destination, destination port, source, source port, addresses-only
    /// hash, hash with TCP ports).
    type Vector<const N: usize> = ([u8; N], u16, [u8; N], u16, u32, u32);

    const V4_VECTORS: [Vector<4>; 5] = [
        (
            [161, 142, 100, 80],
            1766,
            [66, 9, 149, 187],
            2794,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            [65, 69, 140, 83],
            4739,
            [199, 92, 111, 2],
            14230,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            [12, 22, 207, 184],
            38024,
            [24, 19, 198, 95],
            12898,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            [209, 142, 163, 6],
            2217,
            [38, 27, 205, 30],
            48228,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            [202, 188, 127, 2],
            1303,
            [153, 39, 163, 191],
            44251,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];

    fn v6(groups: [u16; 8]) -> [u8; 16] {
        let mut a = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            a[i * 2..i * 2 + 2].copy_from_slice(&g.to_be_bytes());
        }
        a
    }

    fn v6_vectors() -> [Vector<16>; 3] {
        [
            (
                v6([0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1]),
                1766,
                v6([0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7]),
                2794,
                0x2cc1_8cd5,
                0x4020_7d3d,
            ),
            (
                v6([0xff02, 0, 0, 0, 0, 0, 0, 1]),
                4739,
                v6([0x3ffe, 0x501, 8, 0, 0x260, 0x97ff, 0xfe40, 0xefab]),
                14230,
                0x0f0c_461c,
                0xdde5_1bbf,
            ),
            (
                v6([0xfe80, 0, 0, 0, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                38024,
                v6([0x3ffe, 0x1900, 0x4545, 3, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                44251,
                0x4b61_e985,
                0x02d1_feef,
            ),
        ]
    }

    #[test]
    fn microsoft_ipv4_vectors() {
        for (dst, dport, src, sport, addr_hash, tcp_hash) in V4_VECTORS {
            let mut input = Vec::new();
            input.extend_from_slice(&src);
            input.extend_from_slice(&dst);
            assert_eq!(toeplitz(&MS_KEY, &input), addr_hash);
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&MS_KEY, &input), tcp_hash);
        }
    }

    #[test]
    fn microsoft_ipv6_vectors() {
        for (dst, dport, src, sport, addr_hash, tcp_hash) in v6_vectors() {
            let mut input = Vec::new();
            input.extend_from_slice(&src);
            input.extend_from_slice(&dst);
            assert_eq!(toeplitz(&MS_KEY, &input), addr_hash);
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&MS_KEY, &input), tcp_hash);
        }
    }

    fn v4_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = eth(EtherType::IPV4, &[]);
        let mut ip = ipv4::tests::header(&[], 20, Protocol::TCP);
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        f.extend(ip);
        let mut t = tcp(20);
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        f.extend(t);
        f
    }

    #[test]
    fn hash_inputs_from_real_headers_match_the_vectors() {
        let all = HashTypes::IPV4 | HashTypes::IPV4_TCP | HashTypes::IPV6 | HashTypes::IPV6_TCP;
        for (dst, dport, src, sport, addr_hash, tcp_hash) in V4_VECTORS {
            let h = parse(&v4_frame(src, dst, sport, dport)).unwrap();
            let i = HashInput::from_headers(&h, all).unwrap();
            assert_eq!(
                (i.hash_type, toeplitz(&MS_KEY, i.as_bytes())),
                (HashTypes::IPV4_TCP, tcp_hash)
            );
            let i = HashInput::from_headers(&h, HashTypes::IPV4).unwrap();
            assert_eq!(
                (i.hash_type, toeplitz(&MS_KEY, i.as_bytes())),
                (HashTypes::IPV4, addr_hash)
            );
            assert_eq!(
                HashInput::from_headers(&h, HashTypes::IPV6 | HashTypes::IPV6_TCP),
                None
            );
            // TCP only enabled: still hashed with ports.
            assert!(HashInput::from_headers(&h, HashTypes::IPV4_TCP).is_some());
        }
        for (dst, dport, src, sport, _, tcp_hash) in v6_vectors() {
            let mut f = eth(EtherType::IPV6, &[]);
            let mut ip = ipv6::tests::header(Protocol::TCP, 20);
            ip[8..24].copy_from_slice(&src);
            ip[24..40].copy_from_slice(&dst);
            f.extend(ip);
            let mut t = tcp(20);
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            f.extend(t);
            let config = RssConfig {
                key: MS_KEY,
                types: all,
                mapping: heapless_vec::MappingTable::round_robin(4, 128).unwrap(),
            };
            let (hash, kind, queue) = config.classify(&parse(&f).unwrap()).unwrap();
            assert_eq!(
                (hash, kind, queue),
                (tcp_hash, HashTypes::IPV6_TCP, (tcp_hash % 128) % 4)
            );
        }
    }

    #[test]
    fn queue_selection() {
        let mut config = RssConfig {
            key: MS_KEY,
            types: HashTypes::IPV4,
            mapping: heapless_vec::MappingTable::from_slice(&[3, 1, 2]).unwrap(),
        };
        assert_eq!(config.queue_for_hash(0), Some(3));
        assert_eq!(config.queue_for_hash(4), Some(1));
        assert_eq!(config.queue_for_hash(u32::MAX), Some(3));
        config.mapping = heapless_vec::MappingTable::default();
        assert_eq!(config.queue_for_hash(7), None);
        assert!(heapless_vec::MappingTable::from_slice(&[0; MAX_MAPPING_SIZE + 1]).is_none());
        assert!(heapless_vec::MappingTable::round_robin(0, 8).is_none());
    }

    #[test]
    fn short_keys_do_not_panic() {
        assert_eq!(toeplitz(&[], &[0xff; 36]), 0);
        assert_eq!(toeplitz(&[0x80], &[0x80]), 0x8000_0000);
    }
}
