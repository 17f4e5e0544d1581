//! UDP (RFC 768).

use super::checksum::{self, Sum};
use super::{Error, field};

mod fields {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field, for checksum offload.
pub const CHECKSUM_OFFSET: usize = 6;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the header. The length field is not trusted for
    /// slicing (use [`Packet::len`] and compare yourself): a transmit-side
    /// header buffer holds only the headers.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::DST_PORT)
    }

    /// The length field (header + data).
    pub fn len(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::LENGTH)
    }

    /// Whether the length field says no data follows the header.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0 over IPv4 means "none").
    pub fn checksum(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::CHECKSUM)
    }

    /// Whether the datagram in the buffer verifies against `pseudo` (a zero
    /// checksum, "none", verifies: RFC 768).
    pub fn verify_checksum(&self, pseudo: Sum) -> bool {
        self.checksum() == 0 || checksum::verifies(pseudo, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the ports.
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        field::set_be16(self.buffer.as_mut(), fields::SRC_PORT, src);
        field::set_be16(self.buffer.as_mut(), fields::DST_PORT, dst);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len: u16) {
        field::set_be16(self.buffer.as_mut(), fields::LENGTH, len);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        field::set_be16(self.buffer.as_mut(), fields::CHECKSUM, value);
    }

    /// Computes the checksum over the whole buffer plus `pseudo` and stores it
    /// (a computed 0 is sent as `0xffff`, RFC 768).
    pub fn fill_checksum(&mut self, pseudo: Sum) {
        self.set_checksum(0);
        let mut s = pseudo;
        s.add_bytes(self.buffer.as_ref());
        let value = match s.checksum() {
            0 => 0xffff,
            v => v,
        };
        self.set_checksum(value);
    }
}
