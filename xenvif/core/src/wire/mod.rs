//! Packet formats as typed views over bytes, in the smoltcp manner.
//!
//! Each header is a `Packet<T: AsRef<[u8]>>` (or `Frame`, `VlanTag`...) with
//! `new_unchecked`, `check_len` and `new_checked`. **Contract**: once
//! `check_len` (or `new_checked`) has succeeded, no accessor panics, whatever
//! the bytes say; every length a header claims is checked against the buffer
//! there. Untrusted bytes (a guest's packet, a backend's receive data) go
//! through `new_checked`. Setters exist only for `T: AsMut<[u8]>`.
//!
//! [`headers::parse`] walks a whole frame (Ethernet, VLAN tags, IPv4 with
//! options or IPv6 with extension headers, TCP or UDP) into the offsets and
//! facts the transmit path and RSS need.

pub mod checksum;
pub mod ethernet;
pub mod headers;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;

/// A buffer too short for the header it should hold, or a header whose length
/// fields contradict the buffer. Deliberately carries nothing: the caller knows
/// which header it was parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed packet header")
    }
}

/// A byte range of a header field.
pub(crate) type Field = core::ops::Range<usize>;

/// Field readers used by the views after `check_len`; they index, and
/// `check_len` has proven the indices are in bounds.
pub(crate) mod field {
    use super::Field;

    pub fn be16(buf: &[u8], field: Field) -> u16 {
        u16::from_be_bytes(array(buf, field))
    }

    pub fn be32(buf: &[u8], field: Field) -> u32 {
        u32::from_be_bytes(array(buf, field))
    }

    pub fn array<const N: usize>(buf: &[u8], field: Field) -> [u8; N] {
        // The slice has exactly N bytes whenever `field` has width N, which the
        // `fields` tables guarantee; the fallback is never taken.
        buf[field].try_into().unwrap_or([0; N])
    }

    pub fn set_be16(buf: &mut [u8], field: Field, value: u16) {
        buf[field].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_be32(buf: &mut [u8], field: Field, value: u32) {
        buf[field].copy_from_slice(&value.to_be_bytes());
    }
}
