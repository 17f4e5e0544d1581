//! `io/blkif.h`: the block device ring protocol (xen-blkfront / xen-blkback).
//!
//! One ring of [`BlkifRequest`] / [`BlkifResponse`] slots (112 bytes each). A slot
//! carries a read/write/flush/barrier request ([`BlkifRequest`]), a discard
//! ([`BlkifRequestDiscard`]) or an indirect request ([`BlkifRequestIndirect`]),
//! distinguished by `operation`; [`BlkifRequest::from`] and the `to_*` methods
//! convert between those views of one slot. Layouts are x86_64's (the same as
//! arm64's; i386 differs and is not supported).

use core::mem::size_of;

use crate::grant_table::GrantRef;
use crate::ring::{self, BackRing, FrontRing, RingEntry};

/// `blkif_vdev_t`: the virtual device handle in a request.
pub type BlkifVdev = u16;
/// `blkif_sector_t`: a sector number, always in 512-byte units.
pub type BlkifSector = u64;

/// `BLKIF_OP_READ`: read from the device into the granted segments.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`: write the granted segments to the device.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after all earlier ones
/// (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: flush the device's write cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`: reserved (was a vendor extension); never send it.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`: discard a range of sectors (`feature-discard`), a
/// [`BlkifRequestDiscard`].
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`: a read or write whose segments are listed in granted
/// pages (`feature-max-indirect-segments`), a [`BlkifRequestIndirect`].
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`: segment-list pages an indirect request
/// can carry.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments that fit in one indirect page (`PAGE_SIZE / sizeof(struct
/// blkif_request_segment)`, which blkif.h spells out in prose).
pub const BLKIF_SEGMENTS_PER_INDIRECT_PAGE: usize =
    crate::XEN_PAGE_SIZE / size_of::<BlkifRequestSegment>();

/// `BLKIF_DISCARD_SECURE`: the discard must erase securely (`discard-secure`).
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `BLKIF_RSP_EOPNOTSUPP`: the operation is not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_RSP_ERROR`: the operation failed.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_OKAY`: the operation succeeded.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `VDISK_CDROM`: `info` bit: the device is a CD-ROM.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`: `info` bit: the media is removable.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`: `info` bit: the device is read-only.
pub const VDISK_READONLY: u32 = 0x4;

/// `struct blkif_request_segment`: one granted frame and the sectors of it to
/// transfer (`first_sect..=last_sect`, in 512-byte units within the 4 KiB frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// The grant of the I/O buffer frame.
    pub gref: GrantRef,
    /// First sector in the frame to transfer (inclusive).
    pub first_sect: u8,
    /// Last sector in the frame to transfer (inclusive).
    pub last_sect: u8,
    /// Padding (implicit in C); zero.
    pub pad: u16,
}

/// `struct blkif_request`: a read, write, barrier or flush.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Number of valid entries in `seg`.
    pub nr_segments: u8,
    /// The device handle (read/write only).
    pub handle: BlkifVdev,
    /// Padding (implicit in C on x86_64); zero.
    pub pad: u32,
    /// Private guest value, echoed in the response.
    pub id: u64,
    /// First sector on the device (read/write only).
    pub sector_number: BlkifSector,
    /// The data segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request_discard`: discard `nr_sectors` sectors from
/// `sector_number`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`].
    pub operation: u8,
    /// [`BLKIF_DISCARD_SECURE`] or zero.
    pub flag: u8,
    /// The device handle.
    pub handle: BlkifVdev,
    /// Padding (implicit in C on x86_64); zero.
    pub pad: u32,
    /// Private guest value, echoed in the response.
    pub id: u64,
    /// First sector to discard.
    pub sector_number: BlkifSector,
    /// Number of contiguous sectors to discard.
    pub nr_sectors: u64,
}

/// `struct blkif_request_indirect`: a read or write whose segments
/// ([`BlkifRequestSegment`]s, [`BLKIF_SEGMENTS_PER_INDIRECT_PAGE`] per page) are
/// in granted pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`].
    pub operation: u8,
    /// [`BLKIF_OP_READ`] or [`BLKIF_OP_WRITE`].
    pub indirect_op: u8,
    /// Number of segments, across all indirect pages.
    pub nr_segments: u16,
    /// Padding (implicit in C on x86_64); zero.
    pub pad1: u32,
    /// Private guest value, echoed in the response.
    pub id: u64,
    /// First sector on the device.
    pub sector_number: BlkifSector,
    /// The device handle.
    pub handle: BlkifVdev,
    /// Padding (implicit in C); zero.
    pub pad2: u16,
    /// Grants of the pages holding the segment list.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Trailing padding (implicit in C on x86_64); zero.
    pub pad3: u32,
}

/// `struct blkif_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's `operation`.
    pub operation: u8,
    /// Padding (implicit in C); whatever the backend left.
    pub pad1: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Trailing padding (implicit in C on x86_64).
    pub pad2: u32,
}

const _: () = assert!(size_of::<BlkifRequestSegment>() == 8);
const _: () = assert!(size_of::<BlkifRequest>() == 112);
const _: () = assert!(size_of::<BlkifRequestDiscard>() == 32);
const _: () = assert!(size_of::<BlkifRequestIndirect>() == 64);
const _: () = assert!(size_of::<BlkifResponse>() == 16);

// All five: `#[repr(C)]` structs of integers and integer arrays whose explicit
// `pad*` fields leave no implicit padding (the size asserts above pin that).
// SAFETY: see above: every bit pattern is valid, every byte initialised,
// alignment at most 8.
unsafe impl RingEntry for BlkifRequestSegment {}
// SAFETY: see above.
unsafe impl RingEntry for BlkifRequest {}
// SAFETY: see above.
unsafe impl RingEntry for BlkifRequestDiscard {}
// SAFETY: see above.
unsafe impl RingEntry for BlkifRequestIndirect {}
// SAFETY: see above.
unsafe impl RingEntry for BlkifResponse {}

impl From<BlkifRequestDiscard> for BlkifRequest {
    /// The discard request in a request slot (the rest of the slot zeroed).
    fn from(discard: BlkifRequestDiscard) -> Self {
        ring::cast_entry(&discard)
    }
}

impl From<BlkifRequestIndirect> for BlkifRequest {
    /// The indirect request in a request slot (the rest of the slot zeroed).
    fn from(indirect: BlkifRequestIndirect) -> Self {
        ring::cast_entry(&indirect)
    }
}

impl BlkifRequest {
    /// This slot read as a discard request (meaningful when `operation` is
    /// [`BLKIF_OP_DISCARD`]).
    pub fn to_discard(&self) -> BlkifRequestDiscard {
        ring::cast_entry(self)
    }

    /// This slot read as an indirect request (meaningful when `operation` is
    /// [`BLKIF_OP_INDIRECT`]).
    pub fn to_indirect(&self) -> BlkifRequestIndirect {
        ring::cast_entry(self)
    }
}

/// Size of one blkif ring slot (`sizeof(union blkif_sring_entry)`).
pub const BLKIF_RING_ENTRY_SIZE: usize = ring::entry_size::<BlkifRequest, BlkifResponse>();

/// Slots in a blkif ring of `pages` pages (`__CONST_RING_SIZE(blkif, pages *
/// PAGE_SIZE)`).
pub const fn blkif_ring_size(pages: usize) -> usize {
    ring::ring_size(pages * crate::XEN_PAGE_SIZE, BLKIF_RING_ENTRY_SIZE)
}

/// The frontend's half of a blkif ring (`blkif_front_ring_t`).
pub type BlkifFrontRing<M> = FrontRing<BlkifRequest, BlkifResponse, M>;
/// The backend's half of a blkif ring (`blkif_back_ring_t`).
pub type BlkifBackRing<M> = BackRing<BlkifRequest, BlkifResponse, M>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discard_and_indirect_round_trip_through_a_slot() {
        let discard = BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            flag: BLKIF_DISCARD_SECURE,
            handle: 51712,
            id: 7,
            sector_number: 1 << 40,
            nr_sectors: 4096,
            ..BlkifRequestDiscard::default()
        };
        let slot = BlkifRequest::from(discard);
        assert_eq!(slot.operation, BLKIF_OP_DISCARD);
        assert_eq!(slot.id, 7);
        assert_eq!(slot.to_discard(), discard);
        // Bytes past the discard request are zero.
        assert_eq!(slot.seg[1], BlkifRequestSegment::default());

        let mut indirect = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: BLKIF_OP_WRITE,
            nr_segments: 4000,
            id: 9,
            sector_number: 3,
            handle: 768,
            ..BlkifRequestIndirect::default()
        };
        indirect.indirect_grefs[7] = 0xdead_beef;
        assert_eq!(BlkifRequest::from(indirect).to_indirect(), indirect);
        assert_eq!(BLKIF_SEGMENTS_PER_INDIRECT_PAGE, 512);
        assert_eq!(blkif_ring_size(1), 32);
        assert_eq!(blkif_ring_size(16), 512);
    }
}
