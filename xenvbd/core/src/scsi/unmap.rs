//! UNMAP (SBC-3 5.28): the parameter list, and its translation to blkif discard
//! ranges that honour the backend's `discard-granularity` and
//! `discard-alignment`.

use super::sense::Sense;
use super::{Discard, LogicalUnit};

/// Bytes of the parameter list header.
const HEADER_LEN: usize = 8;
/// Bytes of one UNMAP block descriptor.
const DESCRIPTOR_LEN: usize = 16;

/// A checked UNMAP parameter list: every descriptor lies inside the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmapList<'a> {
    descriptors: &'a [u8],
    block_size: u32,
}

/// A range of 512-byte sectors, the unit of blkif's `sector_number`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorRange {
    /// First sector.
    pub sector: u64,
    /// Number of sectors (never 0).
    pub sectors: u64,
}

impl<'a> UnmapList<'a> {
    /// Checks the parameter list (`data_out`, of which the CDB says `param_len`
    /// bytes are valid) against the unit.
    pub fn parse(data_out: &'a [u8], param_len: u16, lu: &LogicalUnit) -> Result<Self, Sense> {
        let len = usize::from(param_len).min(data_out.len());
        let list = &data_out[..len];
        if param_len == 0 {
            // SBC-3: a zero-length list is not an error; nothing to do.
            return Ok(Self {
                descriptors: &[],
                block_size: lu.block_size,
            });
        }
        let Some(header) = list.get(..HEADER_LEN) else {
            return Err(Sense::parameter_list_length_error());
        };
        // BLOCK DESCRIPTOR DATA LENGTH; like Linux's target, a value larger than
        // what was sent is clamped rather than trusted.
        let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let available = len - HEADER_LEN;
        let bytes = declared.min(available) / DESCRIPTOR_LEN * DESCRIPTOR_LEN;
        let descriptors = &list[HEADER_LEN..HEADER_LEN + bytes];
        let count = descriptors.len() / DESCRIPTOR_LEN;
        if u32::try_from(count).map_or(true, |c| c > lu.max_unmap_descriptors) {
            return Err(Sense::invalid_field_in_parameter_list(2));
        }
        let this = Self {
            descriptors,
            block_size: lu.block_size,
        };
        for (lba, blocks) in this.blocks() {
            let end = lba.checked_add(u64::from(blocks));
            if end.is_none_or(|end| end > lu.blocks) {
                return Err(Sense::lba_out_of_range());
            }
        }
        Ok(this)
    }

    /// The descriptors as (first logical block, number of blocks).
    pub fn blocks(&self) -> impl Iterator<Item = (u64, u32)> + 'a {
        self.descriptors.chunks_exact(DESCRIPTOR_LEN).map(|d| {
            let mut lba = [0u8; 8];
            lba.copy_from_slice(&d[..8]);
            let mut count = [0u8; 4];
            count.copy_from_slice(&d[8..12]);
            (u64::from_be_bytes(lba), u32::from_be_bytes(count))
        })
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.descriptors.len() / DESCRIPTOR_LEN
    }

    /// True if there is nothing to unmap.
    pub fn is_empty(&self) -> bool {
        self.descriptors.is_empty()
    }

    /// The discard ranges to send: each descriptor shrunk inward to whole
    /// discard extents (UNMAP is advisory, and the unit reports LBPRZ 0, so
    /// leaving partial extents mapped is correct); empty results are skipped.
    pub fn discard_ranges(&self, discard: Discard) -> impl Iterator<Item = SectorRange> + 'a {
        let lbs = u64::from(self.block_size);
        self.blocks().filter_map(move |(lba, blocks)| {
            let start = lba.checked_mul(lbs)?;
            let end = start.checked_add(u64::from(blocks).checked_mul(lbs)?)?;
            align_inward(start, end, discard)
        })
    }
}

/// Shrinks the byte range `[start, end)` to whole discard extents and converts
/// it to 512-byte sectors.
pub fn align_inward(start: u64, end: u64, discard: Discard) -> Option<SectorRange> {
    // Extents are at least a sector; alignment is an offset within one extent.
    let granularity = u64::from(discard.granularity).max(512);
    let alignment = u64::from(discard.alignment) % granularity;
    let up = |x: u64| -> Option<u64> {
        let rem = (x % granularity + granularity - alignment) % granularity;
        if rem == 0 {
            Some(x)
        } else {
            x.checked_add(granularity - rem)
        }
    };
    let down = |x: u64| -> Option<u64> {
        let rem = (x % granularity + granularity - alignment) % granularity;
        x.checked_sub(rem)
    };
    let first = up(start)?;
    let last = down(end)?;
    if first >= last {
        return None;
    }
    // Extents of a granularity that is not a multiple of 512 cannot be named
    // in sectors; round further inward to sectors.
    let sector = first.div_ceil(512);
    let end_sector = last / 512;
    (sector < end_sector).then(|| SectorRange {
        sector,
        sectors: end_sector - sector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::disk;

    fn list(descriptors: &[(u64, u32)]) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0u8; 8];
        for (lba, n) in descriptors {
            v.extend_from_slice(&lba.to_be_bytes());
            v.extend_from_slice(&n.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        let bd = u16::try_from(v.len() - 8).unwrap();
        v[2..4].copy_from_slice(&bd.to_be_bytes());
        v[0..2].copy_from_slice(&(bd + 6).to_be_bytes());
        v
    }

    #[test]
    fn parses_descriptors() {
        let data = list(&[(0, 8), (100, 1)]);
        let lu = disk();
        let l = UnmapList::parse(&data, u16::try_from(data.len()).unwrap(), &lu).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.blocks().eq([(0, 8), (100, 1)]));
    }

    #[test]
    fn length_errors() {
        let lu = disk();
        assert_eq!(
            UnmapList::parse(&[0; 7], 7, &lu),
            Err(Sense::parameter_list_length_error())
        );
        assert!(UnmapList::parse(&[], 0, &lu).unwrap().is_empty());
        // Declared descriptor bytes beyond what was sent are clamped.
        let mut data = list(&[(1, 1)]);
        data[2..4].copy_from_slice(&64u16.to_be_bytes());
        assert_eq!(UnmapList::parse(&data, 24, &lu).unwrap().len(), 1);
    }

    #[test]
    fn out_of_range_and_too_many() {
        let mut lu = disk();
        let data = list(&[(lu.blocks - 1, 2)]);
        assert_eq!(
            UnmapList::parse(&data, 24, &lu),
            Err(Sense::lba_out_of_range())
        );
        let data = list(&[(u64::MAX, 2)]);
        assert_eq!(
            UnmapList::parse(&data, 24, &lu),
            Err(Sense::lba_out_of_range())
        );
        lu.max_unmap_descriptors = 1;
        let data = list(&[(0, 1), (1, 1)]);
        assert_eq!(
            UnmapList::parse(&data, 40, &lu),
            Err(Sense::invalid_field_in_parameter_list(2))
        );
    }

    #[test]
    fn inward_alignment() {
        let d = Discard {
            granularity: 4096,
            alignment: 0,
            secure: false,
        };
        assert_eq!(
            align_inward(0, 4096, d),
            Some(SectorRange {
                sector: 0,
                sectors: 8
            })
        );
        assert_eq!(align_inward(512, 4096, d), None);
        assert_eq!(
            align_inward(512, 12288, d),
            Some(SectorRange {
                sector: 8,
                sectors: 16
            })
        );
        let d = Discard {
            granularity: 4096,
            alignment: 1024,
            secure: false,
        };
        assert_eq!(
            align_inward(0, 8192, d),
            Some(SectorRange {
                sector: 2,
                sectors: 8
            })
        );
        let d = Discard {
            granularity: 0,
            alignment: 0,
            secure: false,
        };
        assert_eq!(
            align_inward(512, 1024, d),
            Some(SectorRange {
                sector: 1,
                sectors: 1
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn aligned_ranges_are_inside_and_on_extents(
            start in 0u64..1 << 40,
            len in 0u64..1 << 30,
            shift in 9u32..22,
            align_sectors in 0u64..1 << 12,
        ) {
            let granularity = 1u32 << shift;
            let d = Discard {
                granularity,
                alignment: u32::try_from(align_sectors * 512 % u64::from(granularity)).unwrap(),
                secure: false,
            };
            if let Some(r) = align_inward(start, start + len, d) {
                let first = r.sector * 512;
                let end = (r.sector + r.sectors) * 512;
                let g = u64::from(granularity);
                let a = u64::from(d.alignment);
                proptest::prop_assert!(first >= start && end <= start + len);
                proptest::prop_assert_eq!((first + g - a) % g, 0);
                proptest::prop_assert_eq!((end + g - a) % g, 0);
            } else {
                // Nothing was dropped that held a whole extent.
                proptest::prop_assert!(len < 2 * u64::from(granularity));
            }
        }
    }
}
