//! TCP (RFC 9293) header, options included.

use super::checksum::{self, Sum};
use super::{Error, field};

mod fields {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const OFF_FLAGS: Field = 12..14;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field, for checksum offload.
pub const CHECKSUM_OFFSET: usize = 16;

/// FIN flag.
pub const FLAG_FIN: u16 = 0x001;
/// SYN flag.
pub const FLAG_SYN: u16 = 0x002;
/// RST flag.
pub const FLAG_RST: u16 = 0x004;
/// PSH flag.
pub const FLAG_PSH: u16 = 0x008;
/// ACK flag.
pub const FLAG_ACK: u16 = 0x010;

/// A view of a TCP segment.
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

    /// Checks the buffer holds the fixed header and the options the data
    /// offset claims (at least 5 words).
    pub fn check_len(&self) -> Result<(), Error> {
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        field::be32(self.buffer.as_ref(), fields::SEQ)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        field::be32(self.buffer.as_ref(), fields::ACK)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[fields::OFF_FLAGS.start] >> 4) * 4
    }

    /// The flag bits (low 12 bits of the offset/flags word).
    pub fn flags(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::OFF_FLAGS) & 0x0fff
    }

    /// Window.
    pub fn window(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::CHECKSUM)
    }

    /// Options.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The data after the header, as far as the buffer goes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the segment in the buffer verifies against `pseudo`.
    pub fn verify_checksum(&self, pseudo: Sum) -> bool {
        checksum::verifies(pseudo, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the ports.
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        field::set_be16(self.buffer.as_mut(), fields::SRC_PORT, src);
        field::set_be16(self.buffer.as_mut(), fields::DST_PORT, dst);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        field::set_be32(self.buffer.as_mut(), fields::SEQ, seq);
    }

    /// Sets data offset (`header_len` bytes, a multiple of 4) and flags.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: u16) {
        let words = u16::try_from(header_len / 4).unwrap_or(5) & 0xf;
        field::set_be16(
            self.buffer.as_mut(),
            fields::OFF_FLAGS,
            (words << 12) | (flags & 0x0fff),
        );
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        field::set_be16(self.buffer.as_mut(), fields::CHECKSUM, value);
    }

    /// Computes the checksum over the whole buffer plus `pseudo` and stores it.
    pub fn fill_checksum(&mut self, pseudo: Sum) {
        self.set_checksum(0);
        let mut s = pseudo;
        s.add_bytes(self.buffer.as_ref());
        let value = s.checksum();
        self.set_checksum(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_options() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ports(1234, 80);
        p.set_seq_number(0xdead_beef);
        p.set_header_len_and_flags(24, FLAG_SYN | FLAG_ACK);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1234, 80));
        assert_eq!(p.seq_number(), 0xdead_beef);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), FLAG_SYN | FLAG_ACK);
        assert_eq!(p.options().len(), 4);
        assert_eq!(p.payload().len(), 4);
        assert!(Packet::new_checked(&b[..23]).is_err());
        let mut bad = b;
        bad[12] = 0x40; // data offset 4 words
        assert!(Packet::new_checked(&bad[..]).is_err());
    }
}
