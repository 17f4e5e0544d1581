//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use super::{Error, field};

/// An EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: Self = Self(0x0800);
    /// ARP.
    pub const ARP: Self = Self(0x0806);
    /// 802.1Q customer VLAN tag.
    pub const VLAN: Self = Self(0x8100);
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: Self = Self(0x88a8);
    /// IPv6.
    pub const IPV6: Self = Self(0x86dd);

    /// Whether a VLAN tag follows instead of a payload.
    pub fn is_vlan(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

/// A MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The broadcast address.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// Group (multicast or broadcast) bit.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// The broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (what a backend writes to its `mac` node;
    /// hex digits in either case). `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let text = text.strip_suffix(b"\0").unwrap_or(text).trim_ascii();
        if text.len() != 17 {
            return None;
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            let at = i * 3;
            let hi = hex_digit(*text.get(at)?)?;
            let lo = hex_digit(*text.get(at + 1)?)?;
            if i < 5 && text.get(at + 2) != Some(&b':') {
                return None;
            }
            *byte = (hi << 4) | lo;
        }
        Some(Self(mac))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl core::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

mod fields {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const TAG_TCI: Field = 0..2;
    pub const TAG_ETHERTYPE: Field = 2..4;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const TAG_LEN: usize = 4;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checking it; accessors may panic until
    /// [`Frame::check_len`] has passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the buffer holds a whole header; afterwards no accessor panics.
    pub fn check_len(&self) -> Result<(), Error> {
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

    /// Destination MAC.
    pub fn dst(&self) -> MacAddress {
        MacAddress(field::array(self.buffer.as_ref(), fields::DST))
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddress {
        MacAddress(field::array(self.buffer.as_ref(), fields::SRC))
    }

    /// The EtherType (or the tag protocol identifier of a first VLAN tag).
    pub fn ethertype(&self) -> EtherType {
        EtherType(field::be16(self.buffer.as_ref(), fields::ETHERTYPE))
    }

    /// What follows the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: MacAddress) {
        self.buffer.as_mut()[fields::DST].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: MacAddress) {
        self.buffer.as_mut()[fields::SRC].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[fields::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
    }
}

/// A view of one VLAN tag (the 4 bytes after a `0x8100`/`0x88a8` EtherType:
/// TCI then the next EtherType).
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole tag.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// Checks the buffer holds a whole tag.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// The tag control information (priority, DEI, VLAN id).
    pub fn tci(&self) -> u16 {
        field::be16(self.buffer.as_ref(), fields::TAG_TCI)
    }

    /// The VLAN id (low 12 bits of the TCI).
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The priority code point (top 3 bits of the TCI).
    pub fn priority(&self) -> u8 {
        // Three bits: always fits.
        u8::try_from(self.tci() >> 13).unwrap_or(0)
    }

    /// The EtherType that follows the tag.
    pub fn ethertype(&self) -> EtherType {
        EtherType(field::be16(self.buffer.as_ref(), fields::TAG_ETHERTYPE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mac_text() {
        assert_eq!(
            MacAddress::parse(b"00:16:3e:0A:bC:ff"),
            Some(MacAddress([0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff]))
        );
        assert_eq!(
            MacAddress::parse(b"00:16:3e:0a:bc:ff\0"),
            MacAddress::parse(b"00:16:3e:0a:bc:ff")
        );
        for bad in [
            &b"00:16:3e:0a:bc"[..],
            b"00-16-3e-0a-bc-ff",
            b"00:16:3e:0a:bc:fg",
            b"",
            b"0:16:3e:0a:bc:ff:",
        ] {
            assert_eq!(MacAddress::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            MacAddress([0, 0x16, 0x3e, 1, 2, 3]).to_string(),
            "00:16:3e:01:02:03"
        );
    }

    #[test]
    fn frame_and_tag() {
        let mut bytes = [0u8; 18];
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst(MacAddress::BROADCAST);
        frame.set_src(MacAddress([2, 0, 0, 0, 0, 1]));
        frame.set_ethertype(EtherType::VLAN);
        bytes[14..18].copy_from_slice(&[0xa0, 0x64, 0x86, 0xdd]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert!(frame.dst().is_broadcast() && frame.dst().is_multicast());
        assert!(!frame.src().is_multicast());
        assert!(frame.ethertype().is_vlan());
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.priority(), 5);
        assert_eq!(tag.ethertype(), EtherType::IPV6);
        assert!(Frame::new_checked(&bytes[..13]).is_err());
        assert!(VlanTag::new_checked(&bytes[..3]).is_err());
    }
}
