//! IPv6 (RFC 8200) and its extension headers.

use super::ip::{Ipv6Address, Protocol};
use super::{Error, field};

mod fields {
    use crate::wire::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LENGTH: usize = 1;
    pub const FRAG_OFF_M: Field = 2..4;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header and the payload length it
    /// claims (trailing bytes allowed). A zero payload length (jumbogram, or a
    /// GSO super-packet whose length the sender left to the segmenter) means
    /// "the rest of the buffer".
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header_len()?;
        let len = self.buffer.as_ref().len();
        let payload = usize::from(self.payload_len());
        if HEADER_LEN + payload > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Checks only that the fixed header is in the buffer (see the IPv4
    /// view's `check_header_len`); afterwards every accessor but
    /// [`Packet::payload`] is panic-free.
    pub fn check_header_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (6 for a real IPv6 packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        field::be32(self.buffer.as_ref(), fields::VER_TC_FLOW) & 0x000f_ffff
    }

    /// The payload length field (extension headers included).
    pub fn payload_len(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::LENGTH)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[fields::NEXT_HEADER])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[fields::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Address {
        Ipv6Address(field::array(self.buffer.as_ref(), fields::SRC))
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Address {
        Ipv6Address(field::array(self.buffer.as_ref(), fields::DST))
    }

    /// What follows the fixed header: as far as the payload length says, or the
    /// rest of the buffer when it is zero.
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        match self.payload_len() {
            0 => &buf[HEADER_LEN..],
            n => &buf[HEADER_LEN..HEADER_LEN + usize::from(n)],
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the payload length field.
    pub fn set_payload_len(&mut self, len: u16) {
        field::set_be16(self.buffer.as_mut(), fields::LENGTH, len);
    }
}

/// Whether `protocol` is an extension header [`ExtHeader`] can step over.
/// ESP and No Next Header end the walk: what follows is opaque.
pub fn is_extension(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::HOP_BY_HOP
            | Protocol::IPV6_ROUTING
            | Protocol::IPV6_FRAGMENT
            | Protocol::AUTHENTICATION
            | Protocol::IPV6_DEST_OPTS
            | Protocol::MOBILITY
    )
}

/// A view of one extension header of kind `kind` (the next-header value that
/// announced it). All share the first two bytes (next header, length); how the
/// length counts differs (RFC 8200 §4, RFC 4302 §2.2).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    kind: Protocol,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps `buffer` (starting at the extension header) after checking the
    /// header's own length fits.
    pub fn new_checked(buffer: T, kind: Protocol) -> Result<Self, Error> {
        let header = Self { buffer, kind };
        if !is_extension(kind) {
            return Err(Error);
        }
        let len = header.buffer.as_ref().len();
        if len < 8 || header.header_len() > len {
            return Err(Error);
        }
        Ok(header)
    }

    /// What announced this header.
    pub fn kind(&self) -> Protocol {
        self.kind
    }

    /// The header that follows.
    pub fn next_header(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[fields::EXT_NEXT_HEADER])
    }

    /// This header's length in bytes.
    pub fn header_len(&self) -> usize {
        let raw = usize::from(self.buffer.as_ref()[fields::EXT_LENGTH]);
        match self.kind {
            // Fixed 8 bytes; the length byte is reserved.
            Protocol::IPV6_FRAGMENT => 8,
            // RFC 4302: in 4-byte units, minus 2.
            Protocol::AUTHENTICATION => (raw + 2) * 4,
            // RFC 8200: in 8-byte units, not counting the first 8.
            _ => (raw + 1) * 8,
        }
    }

    /// For a Fragment header: whether this is a fragment other than a whole
    /// datagram (offset non-zero or more fragments follow). False for other
    /// kinds.
    pub fn is_fragment(&self) -> bool {
        self.kind == Protocol::IPV6_FRAGMENT
            && field::be16(self.buffer.as_ref(), fields::FRAG_OFF_M) & 0xfff9 != 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed header announcing `next` and `payload_len` bytes.
    pub fn header(next: Protocol, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0] = 0x60;
        h[3] = 0x2a;
        h[4..6].copy_from_slice(&u16::try_from(payload_len).unwrap().to_be_bytes());
        h[6] = next.0;
        h[7] = 64;
        h[8] = 0xfe;
        h[9] = 0x80;
        h[23] = 1;
        h[24] = 0xfe;
        h[25] = 0x80;
        h[39] = 2;
        h
    }

    #[test]
    fn fixed_header() {
        let mut b = header(Protocol::UDP, 4);
        b.extend_from_slice(&[1, 2, 3, 4, 0xee]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.flow_label(), 0x2a);
        assert_eq!(p.next_header(), Protocol::UDP);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(p.src().0[15], 1);
        assert_eq!(p.dst().0[15], 2);
        assert!(Packet::new_checked(&b[..43]).is_err());
        assert!(Packet::new_checked(&b[..39]).is_err());
        let zero = header(Protocol::TCP, 0);
        assert_eq!(Packet::new_checked(&zero[..]).unwrap().payload().len(), 0);
    }

    #[test]
    fn extension_lengths() {
        let b = [Protocol::TCP.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let h = ExtHeader::new_checked(&b[..], Protocol::HOP_BY_HOP).unwrap();
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.next_header(), Protocol::TCP);
        assert!(ExtHeader::new_checked(&b[..15], Protocol::HOP_BY_HOP).is_err());
        let ah = ExtHeader::new_checked(&b[..12], Protocol::AUTHENTICATION);
        assert!(ah.is_ok_and(|h| h.header_len() == 12));
        let frag = [6, 0, 0, 1, 0, 0, 0, 0];
        let f = ExtHeader::new_checked(&frag[..], Protocol::IPV6_FRAGMENT).unwrap();
        assert!(f.is_fragment());
        let whole = [6, 0, 0, 0, 0, 0, 0, 0];
        assert!(
            !ExtHeader::new_checked(&whole[..], Protocol::IPV6_FRAGMENT)
                .unwrap()
                .is_fragment()
        );
        assert!(ExtHeader::new_checked(&b[..], Protocol::TCP).is_err());
    }
}
