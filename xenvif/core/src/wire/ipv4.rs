//! IPv4 (RFC 791), options included.

use super::checksum;
use super::ip::{Ipv4Address, Protocol};
use super::{Error, field};

mod fields {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors other than the fixed
    /// header fields may panic until [`Packet::check_len`] has passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header, that the header length
    /// (IHL) is at least 20 and fits, and that the total length covers the header
    /// and fits in the buffer (trailing bytes, e.g. Ethernet padding, are
    /// allowed). The version field is not checked here: see
    /// [`Packet::version`].
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header_len()?;
        let total = usize::from(self.total_len());
        if total < self.header_len() || total > self.buffer.as_ref().len() {
            return Err(Error);
        }
        Ok(())
    }

    /// Checks only that the header, options included, is in the buffer: for a
    /// buffer holding just the headers of a packet (transmit side, where the
    /// payload is elsewhere and a segmentation offload packet's total length
    /// may be anything). Afterwards every accessor but [`Packet::payload`]
    /// is panic-free.
    pub fn check_header_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN || header_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a real IPv4 packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[fields::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[fields::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[fields::DSCP_ECN]
    }

    /// The total length field (header + payload).
    pub fn total_len(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::IDENT)
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        field::be16(self.buffer.as_ref(), fields::FLG_OFF) & 0x4000 != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        field::be16(self.buffer.as_ref(), fields::FLG_OFF) & 0x2000 != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (field::be16(self.buffer.as_ref(), fields::FLG_OFF) & 0x1fff) << 3
    }

    /// Whether this is a fragment (not the whole datagram): transport headers
    /// and checksums only make sense on whole datagrams.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[fields::TTL]
    }

    /// The upper-layer protocol.
    pub fn protocol(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[fields::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::CHECKSUM)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Address {
        Ipv4Address(field::array(self.buffer.as_ref(), fields::SRC))
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Address {
        Ipv4Address(field::array(self.buffer.as_ref(), fields::DST))
    }

    /// The options (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(
            checksum::Sum::new(),
            &self.buffer.as_ref()[..self.header_len()],
        )
    }

    /// The payload, as far as the total length says (not trailing padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the total length field.
    pub fn set_total_len(&mut self, len: u16) {
        field::set_be16(self.buffer.as_mut(), fields::LENGTH, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        field::set_be16(self.buffer.as_mut(), fields::IDENT, ident);
    }

    /// Sets the checksum field as is.
    pub fn set_checksum(&mut self, value: u16) {
        field::set_be16(self.buffer.as_mut(), fields::CHECKSUM, value);
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let value = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(value);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 20-byte header (+ `options`) for `payload_len` bytes of `protocol`.
    pub fn header(options: &[u8], payload_len: usize, protocol: Protocol) -> Vec<u8> {
        let header_len = MIN_HEADER_LEN + options.len();
        let total = u16::try_from(header_len + payload_len).unwrap();
        let mut h = vec![0u8; header_len];
        h[0] = 0x40 | u8::try_from(header_len / 4).unwrap();
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6] = 0x40;
        h[8] = 64;
        h[9] = protocol.0;
        h[12..16].copy_from_slice(&[192, 168, 0, 1]);
        h[16..20].copy_from_slice(&[192, 168, 0, 199]);
        h[20..].copy_from_slice(options);
        let mut p = Packet::new_unchecked(&mut h[..]);
        p.fill_checksum();
        h
    }

    #[test]
    fn accessors_and_options() {
        let mut bytes = header(&[1, 1, 1, 0], 3, Protocol::UDP);
        bytes.extend_from_slice(&[7, 8, 9, 0, 0]); // payload + Ethernet padding
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[7, 8, 9]);
        assert_eq!(p.protocol(), Protocol::UDP);
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.src().to_string(), "192.168.0.1");
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_lying_lengths() {
        let good = header(&[], 10, Protocol::TCP);
        // IHL below 5.
        let mut b = good.clone();
        b[0] = 0x44;
        assert!(Packet::new_checked(&b[..]).is_err());
        // IHL beyond the buffer.
        let mut b = good.clone();
        b[0] = 0x4f;
        assert!(Packet::new_checked(&b[..]).is_err());
        // Total length beyond the buffer (payload missing).
        assert!(Packet::new_checked(&good[..]).is_err());
        // Total length smaller than the header.
        let mut b = good.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(Packet::new_checked(&b[..]).is_err());
        assert!(Packet::new_checked(&good[..19]).is_err());
    }

    #[test]
    fn fragments() {
        let mut b = header(&[], 0, Protocol::TCP);
        b[6] = 0x20;
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        b[6] = 0x00;
        b[7] = 0x01;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 8);
        assert!(p.is_fragment());
    }
}
