//! INQUIRY data: standard data and the VPD pages 00h, 80h, 83h, B0h, B1h, B2h.

use super::LogicalUnit;
use super::sense::copy_truncated;

/// T10 vendor identification (8 bytes, space padded).
pub const VENDOR: &[u8; 8] = b"XENPV   ";
/// Product identification (16 bytes, space padded).
pub const PRODUCT: &[u8; 16] = b"PV DISK         ";
/// Product revision level (4 bytes).
pub const REVISION: &[u8; 4] = b"0001";

/// The VPD pages offered, in ascending order (SPC-4 7.8.13 requires it).
pub const SUPPORTED_VPD_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2];

/// Length of the standard INQUIRY data emitted.
pub const STANDARD_LEN: usize = 36;

/// Largest VPD page emitted (B0h/B1h: 4 + 3Ch).
const VPD_MAX_LEN: usize = 64;

/// Writes standard INQUIRY data; returns the bytes written.
pub fn standard(lu: &LogicalUnit, out: &mut [u8]) -> usize {
    let mut d = [0u8; STANDARD_LEN];
    d[0] = 0x00; // peripheral qualifier 0, direct-access block device
    if lu.removable {
        d[1] = 0x80; // RMB
    }
    d[2] = 0x06; // SPC-4
    d[3] = 0x12; // HISUP, response data format 2
    #[allow(clippy::cast_possible_truncation, reason = "constant 36 - 5 = 31")]
    {
        d[4] = (STANDARD_LEN - 5) as u8;
    }
    d[7] = 0x02; // CMDQUE
    d[8..16].copy_from_slice(VENDOR);
    d[16..32].copy_from_slice(PRODUCT);
    d[32..36].copy_from_slice(REVISION);
    copy_truncated(&d, out)
}

/// The unit serial number: the vbd's device id in decimal, as 10 ASCII digits
/// (`u32::MAX` has 10), so that it is stable across boots and migrations.
fn serial(lu: &LogicalUnit) -> [u8; 10] {
    let mut s = [b'0'; 10];
    let mut v = lu.device_id;
    for slot in s.iter_mut().rev() {
        #[allow(clippy::cast_possible_truncation, reason = "v % 10 < 10")]
        {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
    }
    s
}

/// Writes VPD page `page`; `None` if the page is not offered.
pub fn vpd(lu: &LogicalUnit, page: u8, out: &mut [u8]) -> Option<usize> {
    let mut d = [0u8; VPD_MAX_LEN];
    d[1] = page;
    let body_len: usize = match page {
        0x00 => {
            d[4..4 + SUPPORTED_VPD_PAGES.len()].copy_from_slice(&SUPPORTED_VPD_PAGES);
            SUPPORTED_VPD_PAGES.len()
        }
        0x80 => {
            d[4..14].copy_from_slice(&serial(lu));
            10
        }
        0x83 => {
            // One designator: T10 vendor ID based (type 1, ASCII), associated
            // with the logical unit: vendor + product + serial.
            d[4] = 0x02; // protocol 0, code set ASCII
            d[5] = 0x01; // PIV 0, association LU, designator type T10 vendor ID
            d[7] = 8 + 16 + 10;
            d[8..16].copy_from_slice(VENDOR);
            d[16..32].copy_from_slice(PRODUCT);
            d[32..42].copy_from_slice(&serial(lu));
            4 + 8 + 16 + 10
        }
        0xB0 => {
            block_limits(lu, &mut d[4..VPD_MAX_LEN]);
            0x3C
        }
        0xB1 => {
            // MEDIUM ROTATION RATE: 1 = non-rotating when the backend can
            // discard (thin storage: Windows then retrims instead of
            // defragmenting), else 0 = not reported.
            d[5] = u8::from(lu.discard.is_some());
            0x3C
        }
        0xB2 => {
            if lu.discard.is_some() {
                d[5] = 0x80; // LBPU: UNMAP supported
                d[6] = 0x02; // provisioning type: thin
            }
            4
        }
        _ => return None,
    };
    let [hi, lo] = u16::try_from(body_len).unwrap_or(0).to_be_bytes();
    d[2] = hi;
    d[3] = lo;
    Some(copy_truncated(&d[..4 + body_len], out))
}

/// The Block Limits page body (bytes 4.. of VPD B0h).
fn block_limits(lu: &LogicalUnit, b: &mut [u8]) {
    let lbs = u64::from(lu.block_size.max(1));
    let per_physical = u16::try_from(lu.physical_block_size / lu.block_size.max(1)).unwrap_or(1);
    // Offsets below are relative to byte 4 of the page.
    b[2..4].copy_from_slice(&per_physical.max(1).to_be_bytes()); // optimal granularity
    let max_blocks = u32::try_from(u64::from(lu.max_transfer_bytes) / lbs).unwrap_or(u32::MAX);
    b[4..8].copy_from_slice(&max_blocks.to_be_bytes()); // maximum transfer length
    b[8..12].copy_from_slice(&max_blocks.to_be_bytes()); // optimal transfer length
    if let Some(discard) = &lu.discard {
        b[16..20].copy_from_slice(&u32::MAX.to_be_bytes()); // max unmap LBA count
        b[20..24].copy_from_slice(&lu.max_unmap_descriptors.to_be_bytes());
        let granularity = u32::try_from(u64::from(discard.granularity) / lbs).unwrap_or(u32::MAX);
        b[24..28].copy_from_slice(&granularity.to_be_bytes());
        let alignment =
            u32::try_from(u64::from(discard.alignment) / lbs).unwrap_or(0) & 0x7FFF_FFFF;
        b[28..32].copy_from_slice(&(alignment | 0x8000_0000).to_be_bytes()); // UGAVALID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::disk;

    #[test]
    fn standard_data() {
        let mut out = [0u8; 96];
        assert_eq!(standard(&disk(), &mut out), 36);
        assert_eq!(out[0], 0);
        assert_eq!(out[4], 31);
        assert_eq!(&out[8..16], VENDOR);
        assert_eq!(&out[16..32], PRODUCT);
        assert_eq!(out[36], 0);
    }

    #[test]
    fn serial_number_is_the_device_id() {
        let mut out = [0u8; 64];
        assert_eq!(vpd(&disk(), 0x80, &mut out), Some(14));
        assert_eq!(&out[..4], &[0, 0x80, 0, 10]);
        assert_eq!(&out[4..14], b"0000051712");
    }

    #[test]
    fn supported_pages_list_every_page_that_answers() {
        let mut out = [0u8; 64];
        let n = vpd(&disk(), 0, &mut out).unwrap();
        let list = &out[4..n];
        for page in 0..=255u8 {
            let mut scratch = [0u8; 64];
            assert_eq!(
                vpd(&disk(), page, &mut scratch).is_some(),
                list.contains(&page),
                "page {page:#x}"
            );
        }
    }

    #[test]
    fn block_limits_follow_the_disk() {
        let mut lu = disk();
        lu.block_size = 4096;
        lu.physical_block_size = 4096;
        lu.max_transfer_bytes = 1 << 20;
        let mut out = [0u8; 64];
        assert_eq!(vpd(&lu, 0xB0, &mut out), Some(64));
        assert_eq!(u32::from_be_bytes(out[8..12].try_into().unwrap()), 256);
        assert_eq!(u32::from_be_bytes(out[28..32].try_into().unwrap()), 1); // 4 KiB granularity
        assert_eq!(out[32] & 0x80, 0x80);
        lu.discard = None;
        vpd(&lu, 0xB0, &mut out).unwrap();
        assert_eq!(&out[24..36], &[0; 12]);
    }

    #[test]
    fn provisioning_page() {
        let mut out = [0u8; 8];
        assert_eq!(vpd(&disk(), 0xB2, &mut out), Some(8));
        assert_eq!(out[5], 0x80);
        let mut lu = disk();
        lu.discard = None;
        vpd(&lu, 0xB2, &mut out).unwrap();
        assert_eq!(out[5], 0);
    }
}
