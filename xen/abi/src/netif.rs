//! `io/netif.h`: the network device ring protocol (xen-netfront / xen-netback).
//!
//! Each queue has a transmit ring ([`NetifTxRequest`] / [`NetifTxResponse`]) and a
//! receive ring ([`NetifRxRequest`] / [`NetifRxResponse`]); a packet spans several
//! slots (`NETTXF_more_data` / `NETRXF_more_data`) and may be followed by
//! [`NetifExtraInfo`] slots (GSO, multicast, hash) overlaying a tx request or rx
//! response slot. An optional control ring ([`XenNetifCtrlRequest`] /
//! [`XenNetifCtrlResponse`]) configures hashing (Toeplitz, for RSS) and static
//! grant mappings.

use core::mem::size_of;

use crate::grant_table::GrantRef;
use crate::ring::{self, BackRing, FrontRing, RingEntry};

/// `XEN_NETIF_NR_SLOTS_MIN`: the fewest slots a backend must accept for one packet.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;

/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4`: hash IPv4 source and destination addresses.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4: u32 = 1 << 0;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`: hash IPv4 addresses and TCP ports.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP: u32 = 1 << 1;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6`: hash IPv6 source and destination addresses.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6: u32 = 1 << 2;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`: hash IPv6 addresses and TCP ports.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP: u32 = 1 << 3;

/// `XEN_NETIF_CTRL_HASH_ALGORITHM_NONE`: no hashing.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0;
/// `XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ`: Toeplitz hashing ([`toeplitz_hash`]).
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1;

/// `XEN_NETIF_CTRL_TYPE_INVALID`: never valid.
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS`: which hash types the backend supports.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS`: select hash types (`data[0]`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_KEY`: set the key (grant `data[0]`, length `data[1]`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE`: the largest mapping table size.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE`: set the mapping table size.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING`: fill part of the mapping table (grant
/// `data[0]`, count `data[1]`, offset `data[2]`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM`: select the algorithm (`data[0]`).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// `XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE`: how many static grants the backend
/// maps.
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// `XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING`: add static grant mappings.
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// `XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING`: remove static grant mappings.
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;

/// `XEN_NETIF_CTRL_STATUS_SUCCESS`: the control request succeeded.
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// `XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED`: the backend does not support it.
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// `XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER`: a parameter was invalid.
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// `XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`: a buffer was too small.
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

/// `XEN_NETIF_CTRLF_GREF_readonly`: the static grant is read-only.
pub const XEN_NETIF_CTRLF_GREF_READONLY: u16 = 1 << 0;

/// `NETTXF_csum_blank`: the packet's checksum is not computed yet (offload).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the packet's checksum was validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: a [`NetifExtraInfo`] slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request can describe.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xffff;

/// `XEN_NETIF_EXTRA_TYPE_NONE`: never used (invalid).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`: segmentation offload ([`NetifExtraGso`]).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`: add a multicast address ([`NetifExtraMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`: remove a multicast address ([`NetifExtraMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`: the packet's hash ([`NetifExtraHash`]).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: one more than the largest extra type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;

/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_GSO_TYPE_NONE`: no segmentation.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`: TCP over IPv4 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`: TCP over IPv6 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `NETRXF_data_validated`: the packet's checksum was validated.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the packet's checksum is not computed (validated
/// protocol-wise; the guest must not check it).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: a [`NetifExtraInfo`] slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`: the slot holds a GSO prefix descriptor, not data.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// `NETIF_RSP_DROPPED`: the packet was dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`: the request failed.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`: the request succeeded.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: no response (a tx response slot for an extra info request).
pub const NETIF_RSP_NULL: i16 = 1;

/// `struct xen_netif_ctrl_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifCtrlRequest {
    /// Private frontend value, echoed in the response.
    pub id: u16,
    /// `XEN_NETIF_CTRL_TYPE_*`.
    pub r#type: u16,
    /// Type-specific arguments.
    pub data: [u32; 3],
}

/// `struct xen_netif_ctrl_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifCtrlResponse {
    /// The request's `id`.
    pub id: u16,
    /// The request's `type`.
    pub r#type: u16,
    /// `XEN_NETIF_CTRL_STATUS_*`.
    pub status: u32,
    /// Type-specific result.
    pub data: u32,
}

/// `struct xen_netif_gref`: one entry of a static grant mapping table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifGref {
    /// The grant.
    pub r#ref: GrantRef,
    /// `XEN_NETIF_CTRLF_GREF_*`.
    pub flags: u16,
    /// Per-entry status, written by the backend (`GNTST_*`).
    pub status: u16,
}

/// `struct netif_tx_request`: one slot of a packet to transmit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// The grant of the frame holding the data.
    pub gref: GrantRef,
    /// Offset of the data within the frame.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Private frontend value, echoed in the response.
    pub id: u16,
    /// In the first slot, the whole packet's size; in others, this slot's.
    pub size: u16,
}

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request`: a buffer offered for received data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Private frontend value, echoed in the response.
    pub id: u16,
    /// Padding; zero.
    pub pad: u16,
    /// The grant of the buffer frame.
    pub gref: GrantRef,
}

/// `struct netif_rx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the buffer.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received if non-negative, else `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_extra_info`: an extra slot after a tx request or rx response
/// carrying `NETTXF_extra_info` / `NETRXF_extra_info`. `u` is a union; read it
/// with [`gso`](Self::gso), [`mcast`](Self::mcast), [`hash`](Self::hash)
/// according to `type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub r#type: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union's bytes (C: `u`, whose `pad[3]` member gives it this shape).
    pub u: [u16; 3],
}

/// `netif_extra_info.u.gso`: segmentation offload parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraGso {
    /// Maximum segment size (the MSS).
    pub size: u16,
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub r#type: u8,
    /// Padding; zero.
    pub pad: u8,
    /// GSO features (none defined); zero.
    pub features: u16,
}

/// `netif_extra_info.u.mcast`: a multicast address to add or remove.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraMcast {
    /// The Ethernet address.
    pub addr: [u8; 6],
}

/// `netif_extra_info.u.hash`: the hash of a packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraHash {
    /// `_XEN_NETIF_CTRL_HASH_TYPE_*` (a bit number, not a mask).
    pub r#type: u8,
    /// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
    pub algorithm: u8,
    /// The hash value, least significant byte first.
    pub value: [u8; 4],
}

/// Size of the union `netif_extra_info.u`.
const EXTRA_UNION_SIZE: usize = 6;

impl NetifExtraInfo {
    fn union_bytes(self) -> [u8; EXTRA_UNION_SIZE] {
        let [a, b, c] = self.u.map(u16::to_ne_bytes);
        [a[0], a[1], b[0], b[1], c[0], c[1]]
    }

    fn with_union(r#type: u8, flags: u8, bytes: [u8; EXTRA_UNION_SIZE]) -> Self {
        Self {
            r#type,
            flags,
            u: [
                u16::from_ne_bytes([bytes[0], bytes[1]]),
                u16::from_ne_bytes([bytes[2], bytes[3]]),
                u16::from_ne_bytes([bytes[4], bytes[5]]),
            ],
        }
    }

    /// A GSO extra.
    pub fn from_gso(flags: u8, gso: NetifExtraGso) -> Self {
        let size = gso.size.to_ne_bytes();
        let features = gso.features.to_ne_bytes();
        let bytes = [
            size[0],
            size[1],
            gso.r#type,
            gso.pad,
            features[0],
            features[1],
        ];
        Self::with_union(XEN_NETIF_EXTRA_TYPE_GSO, flags, bytes)
    }

    /// A multicast add ([`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`]) or remove extra.
    pub fn from_mcast(r#type: u8, flags: u8, mcast: NetifExtraMcast) -> Self {
        Self::with_union(r#type, flags, mcast.addr)
    }

    /// A hash extra.
    pub fn from_hash(flags: u8, hash: NetifExtraHash) -> Self {
        let v = hash.value;
        let bytes = [hash.r#type, hash.algorithm, v[0], v[1], v[2], v[3]];
        Self::with_union(XEN_NETIF_EXTRA_TYPE_HASH, flags, bytes)
    }

    /// `u` read as GSO parameters.
    pub fn gso(self) -> NetifExtraGso {
        let b = self.union_bytes();
        NetifExtraGso {
            size: u16::from_ne_bytes([b[0], b[1]]),
            r#type: b[2],
            pad: b[3],
            features: u16::from_ne_bytes([b[4], b[5]]),
        }
    }

    /// `u` read as a multicast address.
    pub fn mcast(self) -> NetifExtraMcast {
        NetifExtraMcast {
            addr: self.union_bytes(),
        }
    }

    /// `u` read as a hash.
    pub fn hash(self) -> NetifExtraHash {
        let b = self.union_bytes();
        NetifExtraHash {
            r#type: b[0],
            algorithm: b[1],
            value: [b[2], b[3], b[4], b[5]],
        }
    }
}

const _: () = assert!(size_of::<XenNetifCtrlRequest>() == 16);
const _: () = assert!(size_of::<XenNetifCtrlResponse>() == 12);
const _: () = assert!(size_of::<XenNetifGref>() == 8);
const _: () = assert!(size_of::<NetifTxRequest>() == 12);
const _: () = assert!(size_of::<NetifTxResponse>() == 4);
const _: () = assert!(size_of::<NetifRxRequest>() == 8);
const _: () = assert!(size_of::<NetifRxResponse>() == 8);
const _: () = assert!(size_of::<NetifExtraInfo>() == 8);
const _: () = assert!(size_of::<NetifExtraGso>() == EXTRA_UNION_SIZE);
const _: () = assert!(size_of::<NetifExtraMcast>() == EXTRA_UNION_SIZE);
const _: () = assert!(size_of::<NetifExtraHash>() == EXTRA_UNION_SIZE);

// All: `#[repr(C)]` structs of integers and integer arrays without implicit
// padding (the size asserts above pin that).
// SAFETY: see above: every bit pattern is valid, every byte initialised,
// alignment at most 4.
unsafe impl RingEntry for XenNetifCtrlRequest {}
// SAFETY: see above.
unsafe impl RingEntry for XenNetifCtrlResponse {}
// SAFETY: see above.
unsafe impl RingEntry for NetifTxRequest {}
// SAFETY: see above.
unsafe impl RingEntry for NetifTxResponse {}
// SAFETY: see above.
unsafe impl RingEntry for NetifRxRequest {}
// SAFETY: see above.
unsafe impl RingEntry for NetifRxResponse {}
// SAFETY: see above.
unsafe impl RingEntry for NetifExtraInfo {}

impl From<NetifExtraInfo> for NetifTxRequest {
    /// The extra info in a tx request slot (the rest zeroed).
    fn from(extra: NetifExtraInfo) -> Self {
        ring::cast_entry(&extra)
    }
}

impl NetifTxRequest {
    /// This slot read as extra info (meaningful after a request with
    /// [`NETTXF_EXTRA_INFO`]).
    pub fn to_extra_info(&self) -> NetifExtraInfo {
        ring::cast_entry(self)
    }
}

impl From<NetifExtraInfo> for NetifRxResponse {
    /// The extra info in an rx response slot.
    fn from(extra: NetifExtraInfo) -> Self {
        ring::cast_entry(&extra)
    }
}

impl NetifRxResponse {
    /// This slot read as extra info (meaningful after a response with
    /// [`NETRXF_EXTRA_INFO`]).
    pub fn to_extra_info(&self) -> NetifExtraInfo {
        ring::cast_entry(self)
    }
}

/// Size of a tx ring slot (`sizeof(union netif_tx_sring_entry)`).
pub const NETIF_TX_RING_ENTRY_SIZE: usize = ring::entry_size::<NetifTxRequest, NetifTxResponse>();
/// Size of an rx ring slot (`sizeof(union netif_rx_sring_entry)`).
pub const NETIF_RX_RING_ENTRY_SIZE: usize = ring::entry_size::<NetifRxRequest, NetifRxResponse>();
/// Size of a control ring slot (`sizeof(union xen_netif_ctrl_sring_entry)`).
pub const XEN_NETIF_CTRL_RING_ENTRY_SIZE: usize =
    ring::entry_size::<XenNetifCtrlRequest, XenNetifCtrlResponse>();

/// Slots in a one-page tx ring (`__CONST_RING_SIZE(netif_tx, PAGE_SIZE)`).
pub const NET_TX_RING_SIZE: usize = ring::ring_size(crate::XEN_PAGE_SIZE, NETIF_TX_RING_ENTRY_SIZE);
/// Slots in a one-page rx ring (`__CONST_RING_SIZE(netif_rx, PAGE_SIZE)`).
pub const NET_RX_RING_SIZE: usize = ring::ring_size(crate::XEN_PAGE_SIZE, NETIF_RX_RING_ENTRY_SIZE);
/// Slots in a one-page control ring (`__CONST_RING_SIZE(xen_netif_ctrl, PAGE_SIZE)`).
pub const XEN_NETIF_CTRL_RING_SIZE: usize =
    ring::ring_size(crate::XEN_PAGE_SIZE, XEN_NETIF_CTRL_RING_ENTRY_SIZE);

/// The frontend's half of a tx ring (`netif_tx_front_ring_t`).
pub type NetifTxFrontRing<M> = FrontRing<NetifTxRequest, NetifTxResponse, M>;
/// The backend's half of a tx ring (`netif_tx_back_ring_t`).
pub type NetifTxBackRing<M> = BackRing<NetifTxRequest, NetifTxResponse, M>;
/// The frontend's half of an rx ring (`netif_rx_front_ring_t`).
pub type NetifRxFrontRing<M> = FrontRing<NetifRxRequest, NetifRxResponse, M>;
/// The backend's half of an rx ring (`netif_rx_back_ring_t`).
pub type NetifRxBackRing<M> = BackRing<NetifRxRequest, NetifRxResponse, M>;
/// The frontend's half of a control ring (`xen_netif_ctrl_front_ring_t`).
pub type XenNetifCtrlFrontRing<M> = FrontRing<XenNetifCtrlRequest, XenNetifCtrlResponse, M>;
/// The backend's half of a control ring (`xen_netif_ctrl_back_ring_t`).
pub type XenNetifCtrlBackRing<M> = BackRing<XenNetifCtrlRequest, XenNetifCtrlResponse, M>;

/// `xen_netif_toeplitz_hash`: the Toeplitz hash of `data` under `key`, as netback
/// computes it (key bytes past the end of `key` count as zero).
pub fn toeplitz_hash(key: &[u8], data: &[u8]) -> u32 {
    let key_byte = |i: usize| key.get(i).copied().map_or(0, u64::from);
    // A 64-bit window on the key: the high 32 bits are the key bits aligned with
    // the data bit being processed.
    let mut prefix: u64 = (0..8).fold(0, |acc, i| (acc << 8) | key_byte(i));
    let mut hash: u64 = 0;
    for (i, &byte) in data.iter().enumerate() {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= prefix;
            }
            prefix <<= 1;
        }
        prefix |= key_byte(i + 8);
    }
    // The valid part of the hash is in the upper 32 bits.
    (hash >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_round_trip_through_slots() {
        let gso = NetifExtraGso {
            size: 1448,
            r#type: XEN_NETIF_GSO_TYPE_TCPV6,
            pad: 0,
            features: 0,
        };
        let extra = NetifExtraInfo::from_gso(XEN_NETIF_EXTRA_FLAG_MORE, gso);
        let slot = NetifTxRequest::from(extra);
        assert_eq!(slot.to_extra_info(), extra);
        assert_eq!(slot.to_extra_info().gso(), gso);
        assert_eq!(extra.r#type, XEN_NETIF_EXTRA_TYPE_GSO);

        let mcast = NetifExtraMcast {
            addr: [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
        };
        let extra = NetifExtraInfo::from_mcast(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, mcast);
        assert_eq!(extra.mcast(), mcast);

        let hash = NetifExtraHash {
            r#type: 1,
            algorithm: 1,
            value: [1, 2, 3, 4],
        };
        let extra = NetifExtraInfo::from_hash(0, hash);
        assert_eq!(NetifRxResponse::from(extra).to_extra_info().hash(), hash);
    }

    #[test]
    fn toeplitz_matches_the_microsoft_rss_verification_suite() {
        // The RSS key and first IPv4 vector from Microsoft's "Verifying the RSS
        // Hash Calculation": 66.9.149.187:2794 -> 161.142.100.80:1766.
        let key: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let ipv4 = [66, 9, 149, 187, 161, 142, 100, 80];
        assert_eq!(toeplitz_hash(&key, &ipv4), 0x323e_8fc2);
        let tcp = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(toeplitz_hash(&key, &tcp), 0x51cc_c178);
        assert_eq!(toeplitz_hash(&[], &tcp), 0);
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(NET_TX_RING_SIZE, 256);
        assert_eq!(NET_RX_RING_SIZE, 256);
        assert_eq!(XEN_NETIF_CTRL_RING_SIZE, 128);
    }
}
