//! The walk over a whole frame's headers: Ethernet, up to two VLAN tags, IPv4
//! (options) or IPv6 (extension headers), then TCP or UDP.
//!
//! The result says where each layer starts and what the transmit path (checksum
//! offload, segmentation offload) and RSS (hash input) need. The buffer may hold
//! only the headers: payload lengths are reported, not required.

use super::ethernet::{self, EtherType, MacAddress};
use super::ip::{IpAddress, Protocol};
use super::{Error, ipv4, ipv6, tcp, udp};

/// At most this many VLAN tags are stepped over (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;
/// At most this many IPv6 extension headers are stepped over; a chain longer
/// than that is treated as opaque (no transport layer found), bounding the walk.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Offset of the IP header in the frame.
    pub offset: usize,
    /// Length of the IP header: options for IPv4, every extension header for
    /// IPv6 (up to where the transport header starts).
    pub header_len: usize,
    /// Source address.
    pub src: IpAddress,
    /// Destination address.
    pub dst: IpAddress,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: Protocol,
    /// The datagram is a fragment (so no transport header, no checksum offload).
    pub fragment: bool,
    /// IPv6 extension headers were present (RSS's `_EX` hash types care).
    pub extension_headers: bool,
    /// The length field of the IP header: IPv4 total length or IPv6 payload
    /// length, as claimed (segmentation offload packets may claim anything).
    pub length_field: u16,
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// The transport layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportInfo {
    /// Which.
    pub kind: TransportKind,
    /// Offset of the transport header in the frame.
    pub offset: usize,
    /// Its length (TCP options included).
    pub header_len: usize,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl TransportInfo {
    /// Offset of the checksum field in the frame.
    pub fn checksum_offset(&self) -> usize {
        self.offset
            + match self.kind {
                TransportKind::Tcp => tcp::CHECKSUM_OFFSET,
                TransportKind::Udp => udp::CHECKSUM_OFFSET,
            }
    }
}

/// What [`parse`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Destination MAC.
    pub dst: MacAddress,
    /// Source MAC.
    pub src: MacAddress,
    /// The TCI of the outermost VLAN tag, if tagged.
    pub vlan_tci: Option<u16>,
    /// The EtherType after any tags.
    pub ethertype: EtherType,
    /// Where the network layer starts (after any tags).
    pub l3_offset: usize,
    /// The IP layer, when IPv4 or IPv6.
    pub network: Option<NetworkInfo>,
    /// The transport layer, when TCP or UDP in a whole datagram.
    pub transport: Option<TransportInfo>,
}

impl Headers {
    /// Where the transport payload starts: the total header length, what a
    /// segmentation offload repeats in every segment.
    pub fn payload_offset(&self) -> Option<usize> {
        self.transport.map(|t| t.offset + t.header_len)
    }
}

/// Which checksums [`fill_checksums`] computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumRequest {
    /// The IPv4 header checksum.
    pub ipv4_header: bool,
    /// The TCP or UDP checksum (pseudo-header included).
    pub transport: bool,
}

/// Computes the checksums `request` names into a whole frame (the software
/// fallback when the backend cannot offload them, and the receive side's
/// "checksum blank" completion). The datagram ends where the IP length field
/// says; that end must lie inside `frame`.
pub fn fill_checksums(frame: &mut [u8], request: ChecksumRequest) -> Result<Headers, Error> {
    let headers = parse(frame)?;
    let Some(network) = headers.network else {
        return Ok(headers);
    };
    let ip_end = match network.src {
        IpAddress::V4(_) => network.offset + usize::from(network.length_field),
        IpAddress::V6(_) => network.offset + ipv6::HEADER_LEN + usize::from(network.length_field),
    };
    let datagram = frame.get_mut(network.offset..ip_end).ok_or(Error)?;
    if request.ipv4_header && matches!(network.src, IpAddress::V4(_)) {
        let mut packet = ipv4::Packet::new_checked(&mut *datagram)?;
        packet.fill_checksum();
    }
    if let (true, Some(transport)) = (request.transport, headers.transport) {
        let segment = datagram.get_mut(network.header_len..).ok_or(Error)?;
        let length = u32::try_from(segment.len()).map_err(|_| Error)?;
        match transport.kind {
            TransportKind::Tcp => {
                let pseudo = super::checksum::pseudo_header(
                    &network.src,
                    &network.dst,
                    Protocol::TCP,
                    length,
                );
                tcp::Packet::new_checked(segment)?.fill_checksum(pseudo);
            }
            TransportKind::Udp => {
                let pseudo = super::checksum::pseudo_header(
                    &network.src,
                    &network.dst,
                    Protocol::UDP,
                    length,
                );
                udp::Packet::new_checked(segment)?.fill_checksum(pseudo);
            }
        }
    }
    Ok(headers)
}

/// Whether the frame's IPv4 header checksum (if IPv4) and TCP/UDP checksum (if
/// any) verify: `(ip_ok, transport_ok)`, each `None` when not applicable.
pub fn verify_checksums(frame: &[u8]) -> Result<(Option<bool>, Option<bool>), Error> {
    let headers = parse(frame)?;
    let Some(network) = headers.network else {
        return Ok((None, None));
    };
    let ip_end = match network.src {
        IpAddress::V4(_) => network.offset + usize::from(network.length_field),
        IpAddress::V6(_) => network.offset + ipv6::HEADER_LEN + usize::from(network.length_field),
    };
    let datagram = frame.get(network.offset..ip_end).ok_or(Error)?;
    let ip_ok = match network.src {
        IpAddress::V4(_) => Some(ipv4::Packet::new_checked(datagram)?.verify_checksum()),
        IpAddress::V6(_) => None,
    };
    let transport_ok = match headers.transport {
        None => None,
        Some(transport) => {
            let segment = datagram.get(network.header_len..).ok_or(Error)?;
            let length = u32::try_from(segment.len()).map_err(|_| Error)?;
            Some(match transport.kind {
                TransportKind::Tcp => {
                    let pseudo = super::checksum::pseudo_header(
                        &network.src,
                        &network.dst,
                        Protocol::TCP,
                        length,
                    );
                    tcp::Packet::new_checked(segment)?.verify_checksum(pseudo)
                }
                TransportKind::Udp => {
                    let pseudo = super::checksum::pseudo_header(
                        &network.src,
                        &network.dst,
                        Protocol::UDP,
                        length,
                    );
                    udp::Packet::new_checked(segment)?.verify_checksum(pseudo)
                }
            })
        }
    };
    Ok((ip_ok, transport_ok))
}

/// Walks `frame`'s headers.
///
/// Errors only when the Ethernet header or a header it announces (VLAN tag,
/// IP, TCP, UDP, extension header) is truncated or has impossible lengths;
/// unknown EtherTypes and protocols simply end the walk. An IPv4/IPv6
/// EtherType whose version field disagrees is an error too.
pub fn parse(frame: &[u8]) -> Result<Headers, Error> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut offset = ethernet::HEADER_LEN;
    let mut vlan_tci = None;
    for _ in 0..MAX_VLAN_TAGS {
        if !ethertype.is_vlan() {
            break;
        }
        let tag = ethernet::VlanTag::new_checked(frame.get(offset..).ok_or(Error)?)?;
        vlan_tci.get_or_insert(tag.tci());
        ethertype = tag.ethertype();
        offset += ethernet::TAG_LEN;
    }
    let mut headers = Headers {
        dst: eth.dst(),
        src: eth.src(),
        vlan_tci,
        ethertype,
        l3_offset: offset,
        network: None,
        transport: None,
    };
    let rest = frame.get(offset..).ok_or(Error)?;
    let network = match ethertype {
        EtherType::IPV4 => parse_ipv4(rest, offset)?,
        EtherType::IPV6 => parse_ipv6(rest, offset)?,
        _ => return Ok(headers),
    };
    headers.network = Some(network);
    if network.fragment {
        return Ok(headers);
    }
    let l4_offset = offset + network.header_len;
    let l4 = frame.get(l4_offset..).ok_or(Error)?;
    headers.transport = match network.protocol {
        Protocol::TCP => {
            let segment = tcp::Packet::new_checked(l4)?;
            Some(TransportInfo {
                kind: TransportKind::Tcp,
                offset: l4_offset,
                header_len: segment.header_len(),
                src_port: segment.src_port(),
                dst_port: segment.dst_port(),
            })
        }
        Protocol::UDP => {
            let datagram = udp::Packet::new_checked(l4)?;
            Some(TransportInfo {
                kind: TransportKind::Udp,
                offset: l4_offset,
                header_len: udp::HEADER_LEN,
                src_port: datagram.src_port(),
                dst_port: datagram.dst_port(),
            })
        }
        _ => None,
    };
    Ok(headers)
}

fn parse_ipv4(bytes: &[u8], offset: usize) -> Result<NetworkInfo, Error> {
    let packet = ipv4::Packet::new_unchecked(bytes);
    packet.check_header_len()?;
    if packet.version() != 4 {
        return Err(Error);
    }
    Ok(NetworkInfo {
        offset,
        header_len: packet.header_len(),
        src: IpAddress::V4(packet.src()),
        dst: IpAddress::V4(packet.dst()),
        protocol: packet.protocol(),
        fragment: packet.is_fragment(),
        extension_headers: false,
        length_field: packet.total_len(),
    })
}

fn parse_ipv6(bytes: &[u8], offset: usize) -> Result<NetworkInfo, Error> {
    let packet = ipv6::Packet::new_unchecked(bytes);
    packet.check_header_len()?;
    if packet.version() != 6 {
        return Err(Error);
    }
    let mut info = NetworkInfo {
        offset,
        header_len: ipv6::HEADER_LEN,
        src: IpAddress::V6(packet.src()),
        dst: IpAddress::V6(packet.dst()),
        protocol: packet.next_header(),
        fragment: false,
        extension_headers: false,
        length_field: packet.payload_len(),
    };
    for _ in 0..MAX_IPV6_EXTENSION_HEADERS {
        if !ipv6::is_extension(info.protocol) {
            return Ok(info);
        }
        let ext = ipv6::ExtHeader::new_checked(
            bytes.get(info.header_len..).ok_or(Error)?,
            info.protocol,
        )?;
        info.extension_headers = true;
        info.fragment |= ext.is_fragment();
        info.protocol = ext.next_header();
        // Bounded by the buffer length: `new_checked` proved it fits.
        info.header_len += ext.header_len();
    }
    if ipv6::is_extension(info.protocol) {
        // Too long a chain: report no transport layer rather than walk on.
        info.protocol = Protocol::IPV6_NO_NEXT;
    }
    Ok(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{ipv4, ipv6};

    /// An Ethernet header with `ethertype`, after optional VLAN tags.
    pub fn eth(ethertype: EtherType, tags: &[u16]) -> Vec<u8> {
        let mut b = vec![0x00, 0x16, 0x3e, 0, 0, 2, 0x00, 0x16, 0x3e, 0, 0, 1];
        for (i, tci) in tags.iter().enumerate() {
            let tpid = if i == 0 && tags.len() > 1 {
                EtherType::QINQ
            } else {
                EtherType::VLAN
            };
            b.extend_from_slice(&tpid.0.to_be_bytes());
            b.extend_from_slice(&tci.to_be_bytes());
        }
        b.extend_from_slice(&ethertype.0.to_be_bytes());
        b
    }

    /// A TCP header of `header_len` bytes.
    pub fn tcp(header_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; header_len];
        let mut p = tcp::Packet::new_unchecked(&mut b[..]);
        p.set_ports(40000, 5201);
        p.set_header_len_and_flags(header_len, tcp::FLAG_ACK);
        b
    }

    #[test]
    fn tagged_ipv4_tcp_with_options() {
        let mut f = eth(EtherType::IPV4, &[7, 100]);
        f.extend(ipv4::tests::header(&[0x94, 4, 0, 0], 32, Protocol::TCP));
        f.extend(tcp(32));
        let h = parse(&f).unwrap();
        assert_eq!(h.vlan_tci, Some(7));
        assert_eq!(h.l3_offset, 22);
        let n = h.network.unwrap();
        assert_eq!(
            (n.offset, n.header_len, n.protocol),
            (22, 24, Protocol::TCP)
        );
        let t = h.transport.unwrap();
        assert_eq!(
            (t.kind, t.offset, t.header_len),
            (TransportKind::Tcp, 46, 32)
        );
        assert_eq!((t.src_port, t.dst_port), (40000, 5201));
        assert_eq!(t.checksum_offset(), 62);
        assert_eq!(h.payload_offset(), Some(78));
        // Any truncation inside the headers is an error, never a panic.
        for cut in 0..f.len() {
            assert!(parse(&f[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn ipv6_extension_headers_to_udp() {
        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv6::tests::header(Protocol::HOP_BY_HOP, 0));
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP.
        f.extend([Protocol::IPV6_DEST_OPTS.0, 0, 1, 4, 0, 0, 0, 0]);
        f.extend([
            Protocol::UDP.0,
            1,
            1,
            12,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        f.extend([0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0]);
        let h = parse(&f).unwrap();
        let n = h.network.unwrap();
        assert!(n.extension_headers && !n.fragment);
        assert_eq!(n.header_len, 64);
        let t = h.transport.unwrap();
        assert_eq!(
            (t.kind, t.offset, t.src_port, t.dst_port),
            (TransportKind::Udp, 78, 5000, 53)
        );
    }

    #[test]
    fn fragments_have_no_transport() {
        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv6::tests::header(Protocol::IPV6_FRAGMENT, 0));
        f.extend([Protocol::TCP.0, 0, 0x05, 0x01, 1, 2, 3, 4]);
        let h = parse(&f).unwrap();
        assert!(h.network.unwrap().fragment);
        assert_eq!(h.transport, None);
    }

    #[test]
    fn other_protocols_end_the_walk() {
        let f = eth(EtherType::ARP, &[]);
        let h = parse(&f).unwrap();
        assert_eq!((h.network, h.transport), (None, None));
        let mut f = eth(EtherType::IPV4, &[]);
        f.extend(ipv4::tests::header(&[], 8, Protocol::ICMP));
        let h = parse(&f).unwrap();
        assert_eq!(h.network.unwrap().protocol, Protocol::ICMP);
        assert_eq!(h.transport, None);
        // Version mismatch.
        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv4::tests::header(&[], 40, Protocol::TCP));
        f.extend(tcp(20));
        assert!(parse(&f).is_err());
    }

    #[test]
    fn software_checksums_verify() {
        let mut f = eth(EtherType::IPV4, &[5]);
        f.extend(ipv4::tests::header(&[], 20 + 5, Protocol::TCP));
        f.extend(tcp(20));
        f.extend(b"hello");
        f.extend([0u8; 7]); // Ethernet padding, outside the datagram
        assert_eq!(verify_checksums(&f).unwrap(), (Some(true), Some(false)));
        fill_checksums(
            &mut f,
            ChecksumRequest {
                ipv4_header: true,
                transport: true,
            },
        )
        .unwrap();
        assert_eq!(verify_checksums(&f).unwrap(), (Some(true), Some(true)));
        f[60] ^= 1;
        assert_eq!(verify_checksums(&f).unwrap(), (Some(true), Some(false)));

        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv6::tests::header(Protocol::UDP, 8 + 3));
        f.extend([0x13, 0x88, 0x00, 0x35, 0, 11, 0, 0, 1, 2, 3]);
        fill_checksums(
            &mut f,
            ChecksumRequest {
                ipv4_header: false,
                transport: true,
            },
        )
        .unwrap();
        assert_eq!(verify_checksums(&f).unwrap(), (None, Some(true)));
        // A length field beyond the frame is an error, not a panic.
        f.truncate(f.len() - 1);
        assert!(
            fill_checksums(
                &mut f,
                ChecksumRequest {
                    ipv4_header: true,
                    transport: true
                }
            )
            .is_err()
        );
    }

    #[test]
    fn long_extension_chains_are_bounded() {
        let mut f = eth(EtherType::IPV6, &[]);
        f.extend(ipv6::tests::header(Protocol::IPV6_DEST_OPTS, 0));
        for _ in 0..=MAX_IPV6_EXTENSION_HEADERS {
            f.extend([Protocol::IPV6_DEST_OPTS.0, 0, 0, 0, 0, 0, 0, 0]);
        }
        let h = parse(&f).unwrap();
        assert_eq!(h.network.unwrap().protocol, Protocol::IPV6_NO_NEXT);
        assert_eq!(h.transport, None);
    }

    proptest::proptest! {
        #[test]
        fn parse_recovers_what_was_built(
            tags in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..=2),
            v6 in proptest::prelude::any::<bool>(),
            options in 0usize..=MAX_IPV6_EXTENSION_HEADERS,
            tcp_words in 5usize..=15,
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let tcp_len = tcp_words * 4;
            let mut f;
            let ip_len;
            if v6 {
                f = eth(EtherType::IPV6, &tags);
                // `options` destination-options headers of 8 bytes each.
                let mut h = ipv6::tests::header(if options == 0 { Protocol::TCP } else { Protocol::IPV6_DEST_OPTS }, options * 8 + tcp_len + payload.len());
                for i in 0..options {
                    let next = if i + 1 == options { Protocol::TCP } else { Protocol::IPV6_DEST_OPTS };
                    h.extend([next.0, 0, 1, 4, 0, 0, 0, 0]);
                }
                ip_len = h.len();
                f.extend(h);
            } else {
                f = eth(EtherType::IPV4, &tags);
                let h = ipv4::tests::header(&vec![1; options * 4], tcp_len + payload.len(), Protocol::TCP);
                ip_len = h.len();
                f.extend(h);
            }
            let mut t = tcp(tcp_len);
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            f.extend(t);
            f.extend(&payload);
            let h = parse(&f).unwrap();
            let l3 = 14 + 4 * tags.len();
            proptest::prop_assert_eq!(h.vlan_tci, tags.first().copied());
            proptest::prop_assert_eq!(h.l3_offset, l3);
            let n = h.network.unwrap();
            proptest::prop_assert_eq!(n.header_len, ip_len);
            proptest::prop_assert_eq!(n.extension_headers, v6 && options > 0);
            let t = h.transport.unwrap();
            proptest::prop_assert_eq!((t.offset, t.header_len, t.src_port, t.dst_port), (l3 + ip_len, tcp_len, sport, dport));
            proptest::prop_assert_eq!(h.payload_offset(), Some(f.len() - payload.len()));
            fill_checksums(&mut f, ChecksumRequest { ipv4_header: true, transport: true }).unwrap();
            let (ip_ok, tcp_ok) = verify_checksums(&f).unwrap();
            proptest::prop_assert!(ip_ok != Some(false) && tcp_ok == Some(true));
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            crate::fuzz::headers(&data);
        }
    }
}
