//! MODE SENSE(6/10) data: header, block descriptor, caching page (08h) and
//! control page (0Ah).

use super::LogicalUnit;
use super::cdb::PageControl;
use super::sense::copy_truncated;

/// Caching mode page code.
pub const CACHING_PAGE: u8 = 0x08;
/// Control mode page code.
pub const CONTROL_PAGE: u8 = 0x0A;
/// "Return all pages".
pub const ALL_PAGES: u8 = 0x3F;

const CACHING_LEN: usize = 20;
const CONTROL_LEN: usize = 12;
/// Header (8) + long block descriptor (16) + both pages.
const MAX_LEN: usize = 8 + 16 + CACHING_LEN + CONTROL_LEN;

/// What MODE SENSE asked for.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Page code.
    pub page: u8,
    /// Subpage code.
    pub subpage: u8,
    /// Page control (not [`PageControl::Saved`]: the caller refuses it).
    pub control: PageControl,
    /// DBD.
    pub no_block_descriptors: bool,
    /// LLBAA.
    pub long_lba: bool,
    /// MODE SENSE(10).
    pub ten: bool,
}

/// Writes the mode parameter data; `None` if the page/subpage is not offered.
pub fn sense(lu: &LogicalUnit, req: Request, out: &mut [u8]) -> Option<usize> {
    let (caching, control) = match (req.page, req.subpage) {
        (CACHING_PAGE, 0) => (true, false),
        (CONTROL_PAGE, 0) => (false, true),
        (ALL_PAGES, 0x00 | 0xFF) => (true, true),
        _ => return None,
    };
    let mut d = [0u8; MAX_LEN];
    let header = if req.ten { 8 } else { 4 };
    let mut at = header;

    // Device-specific parameter: WP, and DPOFUA when FUA is honoured.
    let mut device_specific = 0;
    if lu.read_only {
        device_specific |= 0x80;
    }
    if lu.fua {
        device_specific |= 0x10;
    }

    let descriptor_len = match (req.no_block_descriptors, req.ten && req.long_lba) {
        (true, _) => 0,
        (false, false) => {
            let blocks = u32::try_from(lu.blocks).unwrap_or(u32::MAX);
            d[at..at + 4].copy_from_slice(&blocks.to_be_bytes());
            let len = lu.block_size.to_be_bytes();
            d[at + 5..at + 8].copy_from_slice(&len[1..4]);
            8
        }
        (false, true) => {
            d[at..at + 8].copy_from_slice(&lu.blocks.to_be_bytes());
            d[at + 12..at + 16].copy_from_slice(&lu.block_size.to_be_bytes());
            16
        }
    };
    at += descriptor_len;

    let changeable = req.control == PageControl::Changeable;
    if caching {
        d[at] = CACHING_PAGE;
        #[allow(clippy::cast_possible_truncation, reason = "constant 18")]
        {
            d[at + 1] = (CACHING_LEN - 2) as u8;
        }
        // WCE: the backend has a volatile cache to flush. Nothing is changeable.
        if lu.write_cache && !changeable {
            d[at + 2] = 0x04;
        }
        at += CACHING_LEN;
    }
    if control {
        d[at] = CONTROL_PAGE;
        #[allow(clippy::cast_possible_truncation, reason = "constant 10")]
        {
            d[at + 1] = (CONTROL_LEN - 2) as u8;
        }
        if !changeable {
            d[at + 3] = 0x10; // QUEUE ALGORITHM MODIFIER: unrestricted reordering
        }
        at += CONTROL_LEN;
    }

    // MODE DATA LENGTH excludes itself.
    if req.ten {
        let [hi, lo] = u16::try_from(at - 2).unwrap_or(0).to_be_bytes();
        d[0] = hi;
        d[1] = lo;
        d[3] = device_specific;
        if descriptor_len == 16 {
            d[4] = 0x01; // LONGLBA
        }
        d[7] = u8::try_from(descriptor_len).unwrap_or(0);
    } else {
        d[0] = u8::try_from(at - 1).unwrap_or(0);
        d[2] = device_specific;
        d[3] = u8::try_from(descriptor_len).unwrap_or(0);
    }
    Some(copy_truncated(&d[..at], out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::disk;

    fn req(page: u8, ten: bool) -> Request {
        Request {
            page,
            subpage: 0,
            control: PageControl::Current,
            no_block_descriptors: false,
            long_lba: false,
            ten,
        }
    }

    #[test]
    fn caching_page_six() {
        let mut out = [0u8; 255];
        let n = sense(&disk(), req(CACHING_PAGE, false), &mut out).unwrap();
        assert_eq!(n, 4 + 8 + 20);
        assert_eq!(usize::from(out[0]), n - 1);
        assert_eq!(out[2], 0x10, "FUA, not write protected");
        assert_eq!(out[3], 8);
        assert_eq!(&out[4..8], &2048u32.to_be_bytes());
        assert_eq!(&out[9..12], &[0, 2, 0]);
        assert_eq!(&out[12..15], &[0x08, 0x12, 0x04]);
    }

    #[test]
    fn write_protect_bit_and_all_pages_ten() {
        let mut lu = disk();
        lu.read_only = true;
        lu.write_cache = false;
        let mut r = req(ALL_PAGES, true);
        r.long_lba = true;
        let mut out = [0u8; 255];
        let n = sense(&lu, r, &mut out).unwrap();
        assert_eq!(n, 8 + 16 + 20 + 12);
        assert_eq!(usize::from(u16::from_be_bytes([out[0], out[1]])), n - 2);
        assert_eq!(out[3] & 0x80, 0x80);
        assert_eq!(out[4], 1);
        assert_eq!(out[7], 16);
        assert_eq!(&out[24..27], &[0x08, 0x12, 0x00], "no WCE without flush");
        assert_eq!(out[44], 0x0A);
    }

    #[test]
    fn unknown_page() {
        let mut out = [0u8; 8];
        assert!(sense(&disk(), req(0x1C, false), &mut out).is_none());
        let mut r = req(CACHING_PAGE, false);
        r.subpage = 1;
        assert!(sense(&disk(), r, &mut out).is_none());
    }

    #[test]
    fn truncated_to_allocation() {
        let mut out = [0u8; 3];
        assert_eq!(sense(&disk(), req(ALL_PAGES, false), &mut out), Some(3));
    }
}
