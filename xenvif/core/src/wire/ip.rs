//! Addresses and protocol numbers shared by IPv4 and IPv6.

use core::fmt;

/// An IPv4 address, network byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv4Address(pub [u8; 4]);

/// An IPv6 address, network byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv6Address(pub [u8; 16]);

/// Either address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpAddress {
    /// IPv4.
    V4(Ipv4Address),
    /// IPv6.
    V6(Ipv6Address),
}

impl IpAddress {
    /// The address bytes (4 or 16).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::V4(a) => &a.0,
            Self::V6(a) => &a.0,
        }
    }
}

impl fmt::Display for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let octets = self.0;
        write!(f, "{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3])
    }
}

/// An IP protocol / IPv6 next-header number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Protocol(pub u8);

impl Protocol {
    /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
    pub const HOP_BY_HOP: Self = Self(0);
    /// ICMP.
    pub const ICMP: Self = Self(1);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 Routing header (RFC 8200 §4.4).
    pub const IPV6_ROUTING: Self = Self(43);
    /// IPv6 Fragment header (RFC 8200 §4.5).
    pub const IPV6_FRAGMENT: Self = Self(44);
    /// Encapsulating Security Payload: opaque, ends header parsing.
    pub const ESP: Self = Self(50);
    /// Authentication Header (RFC 4302): length in 4-byte units minus 2.
    pub const AUTHENTICATION: Self = Self(51);
    /// ICMPv6.
    pub const ICMPV6: Self = Self(58);
    /// IPv6 No Next Header.
    pub const IPV6_NO_NEXT: Self = Self(59);
    /// IPv6 Destination Options (RFC 8200 §4.6).
    pub const IPV6_DEST_OPTS: Self = Self(60);
    /// Mobility header (RFC 6275), an extension header in the generic format.
    pub const MOBILITY: Self = Self(135);
}
