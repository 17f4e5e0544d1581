//! SCSI translation: what XENVBD's StorPort miniport feeds the engine.
//!
//! [`execute`] is a pure function from a CDB, the unit's state
//! ([`LogicalUnit`]) and the request's buffers to an [`Outcome`]: data to
//! return now, a block transfer, a flush, discards, or CHECK CONDITION with
//! sense data. It never panics, whatever the CDB or buffers hold.
//!
//! Block quantities leave this module in 512-byte sectors, blkif's unit for
//! `sector_number` and segments whatever the disk's logical block size (Linux's
//! blkback and blkfront agree on that; `feature-large-sector-size` is not used).
//! The unit is always a direct-access block device (type 00h); CD-ROMs are left
//! to the emulated device.

pub mod cdb;
pub mod inquiry;
pub mod mode;
pub mod sense;
pub mod unmap;

use cdb::{BlockRange, Cdb, Command, PageControl};
pub use sense::Sense;
use sense::{AdditionalSense, SenseKey, copy_truncated};
pub use unmap::{SectorRange, UnmapList};

/// The backend's discard parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discard {
    /// `discard-granularity`, bytes (0: the logical block size).
    pub granularity: u32,
    /// `discard-alignment`, bytes.
    pub alignment: u32,
    /// `discard-secure`.
    pub secure: bool,
}

/// What the translation knows about the disk (from the backend's keys and the
/// engine's limits).
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent attributes of the disk, as the backend's keys state them"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalUnit {
    /// Logical block size in bytes (`sector-size`): a power of two, >= 512.
    pub block_size: u32,
    /// Physical block size in bytes (`physical-sector-size`).
    pub physical_block_size: u32,
    /// Capacity in logical blocks.
    pub blocks: u64,
    /// `info` has VDISK_READONLY (or the frontend was told to be read-only).
    pub read_only: bool,
    /// `info` has VDISK_REMOVABLE.
    pub removable: bool,
    /// The backend can flush a volatile cache (`feature-flush-cache` or
    /// `feature-barrier`): WCE is reported and SYNCHRONIZE CACHE flushes.
    pub write_cache: bool,
    /// Forced unit access is honoured (reported as DPOFUA).
    pub fua: bool,
    /// Discard support, if the backend offers it.
    pub discard: Option<Discard>,
    /// Largest transfer one command may ask for, bytes.
    pub max_transfer_bytes: u32,
    /// Most UNMAP descriptors one command may carry.
    pub max_unmap_descriptors: u32,
    /// The vbd's device id (the xenstore `device/vbd/<id>` name): the serial.
    pub device_id: u32,
}

/// A block transfer to run through the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Write (true) or read.
    pub write: bool,
    /// First 512-byte sector.
    pub sector: u64,
    /// Number of 512-byte sectors (never 0).
    pub sectors: u64,
    /// Forced unit access (writes only).
    pub fua: bool,
}

impl Transfer {
    /// Bytes moved.
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(512)
    }
}

/// What a command turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// GOOD status; the first `data_len` bytes of the data-in buffer hold the
    /// response.
    Good {
        /// Bytes of data returned.
        data_len: usize,
    },
    /// Run this transfer; GOOD when it completes, else
    /// [`Sense::medium_error`].
    Transfer(Transfer),
    /// Flush the backend's cache (SYNCHRONIZE CACHE on a unit with a write
    /// cache).
    Flush,
    /// Discard these blocks ([`UnmapList::discard_ranges`]).
    Unmap(UnmapList<'a>),
    /// CHECK CONDITION with this sense data.
    CheckCondition(Sense),
}

/// A SCSI request as the miniport received it.
#[derive(Debug)]
pub struct Request<'a, 'b> {
    /// The CDB (may be longer than the command's length, e.g. StorPort's
    /// 16-byte array).
    pub cdb: &'a [u8],
    /// Data-out buffer (parameter lists), empty if none.
    pub data_out: &'a [u8],
    /// Data-in buffer for emulated responses (INQUIRY...), empty if none.
    pub data_in: &'b mut [u8],
    /// The request's transfer length (SRB `DataTransferLength`): a block
    /// transfer larger than this is refused.
    pub transfer_len: u64,
}

/// Translates one SCSI command for logical unit 0 (other LUNs are the
/// miniport's to refuse, e.g. with [`Sense::lun_not_supported`]).
pub fn execute<'a>(request: Request<'a, '_>, lu: &LogicalUnit) -> Outcome<'a> {
    match run(request, lu) {
        Ok(outcome) => outcome,
        Err(sense) => Outcome::CheckCondition(sense),
    }
}

fn run<'a>(request: Request<'a, '_>, lu: &LogicalUnit) -> Result<Outcome<'a>, Sense> {
    let command = Command::parse(&Cdb::new_unchecked(request.cdb))?;
    let data_in = request.data_in;
    let good = |data_len| Ok(Outcome::Good { data_len });
    match command {
        Command::TestUnitReady | Command::StartStopUnit { .. } => good(0),
        Command::RequestSense {
            descriptor,
            alloc_len,
        } => {
            // Autosense delivered every earlier error with its CHECK CONDITION.
            let out = limit(data_in, u64::from(alloc_len));
            good(if descriptor {
                Sense::NO_SENSE.write_descriptor(out)
            } else {
                Sense::NO_SENSE.write_fixed(out)
            })
        }
        Command::Inquiry {
            vpd_page,
            alloc_len,
        } => {
            let out = limit(data_in, u64::from(alloc_len));
            match vpd_page {
                None => good(inquiry::standard(lu, out)),
                Some(page) => inquiry::vpd(lu, page, out)
                    .map_or(Err(Sense::invalid_field_in_cdb(2, None)), good),
            }
        }
        Command::ReadCapacity10 => good(read_capacity_10(lu, data_in)),
        Command::ReadCapacity16 { alloc_len } => {
            good(read_capacity_16(lu, limit(data_in, u64::from(alloc_len))))
        }
        Command::Read { range, .. } => transfer(range, false, false, lu, request.transfer_len),
        Command::Write { range, fua } => {
            if lu.read_only {
                return Err(Sense::write_protected());
            }
            transfer(range, true, fua, lu, request.transfer_len)
        }
        Command::Verify { range } => {
            check_range(&range, lu)?;
            good(0)
        }
        Command::SynchronizeCache { range } => {
            // A zero block count means "to the end of the medium"; the whole
            // cache is flushed either way, the range is only checked.
            check_range(&range, lu)?;
            if lu.write_cache {
                Ok(Outcome::Flush)
            } else {
                good(0)
            }
        }
        Command::Unmap { param_len } => {
            if lu.discard.is_none() {
                // Not advertised (LBPU 0): not a command of this unit.
                return Err(Sense::invalid_opcode());
            }
            if lu.read_only {
                return Err(Sense::write_protected());
            }
            let list = UnmapList::parse(request.data_out, param_len, lu)?;
            if list.is_empty() {
                good(0)
            } else {
                Ok(Outcome::Unmap(list))
            }
        }
        Command::ModeSense {
            page,
            subpage,
            control,
            no_block_descriptors,
            long_lba,
            ten,
            alloc_len,
        } => {
            let req = mode::Request {
                page,
                subpage,
                control,
                no_block_descriptors,
                long_lba,
                ten,
            };
            mode_sense(lu, req, limit(data_in, u64::from(alloc_len))).and_then(good)
        }
        Command::ReportLuns { alloc_len } => {
            // One LUN (0): list length 8, then the all-zero LUN.
            let mut d = [0u8; 16];
            d[3] = 8;
            good(copy_truncated(&d, limit(data_in, u64::from(alloc_len))))
        }
    }
}

/// READ CAPACITY(10) data.
fn read_capacity_10(lu: &LogicalUnit, out: &mut [u8]) -> usize {
    let last = lu.blocks.saturating_sub(1);
    let mut d = [0u8; 8];
    // Larger disks report FFFFFFFFh: "use READ CAPACITY(16)".
    d[..4].copy_from_slice(&u32::try_from(last).unwrap_or(u32::MAX).to_be_bytes());
    d[4..].copy_from_slice(&lu.block_size.to_be_bytes());
    copy_truncated(&d, out)
}

/// READ CAPACITY(16) data.
fn read_capacity_16(lu: &LogicalUnit, out: &mut [u8]) -> usize {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&lu.blocks.saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&lu.block_size.to_be_bytes());
    let per_physical = (lu.physical_block_size / lu.block_size.max(1)).max(1);
    // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
    #[allow(clippy::cast_possible_truncation, reason = "trailing_zeros < 32")]
    {
        d[13] = (per_physical.trailing_zeros() as u8) & 0x0F;
    }
    if lu.discard.is_some() {
        d[14] = 0x80; // LBPME
    }
    copy_truncated(&d, out)
}

/// MODE SENSE data, or why not.
fn mode_sense(lu: &LogicalUnit, req: mode::Request, out: &mut [u8]) -> Result<usize, Sense> {
    if req.control == PageControl::Saved {
        return Err(Sense::new(
            SenseKey::IllegalRequest,
            AdditionalSense::SAVING_PARAMETERS_NOT_SUPPORTED,
        ));
    }
    mode::sense(lu, req, out).ok_or(Sense::invalid_field_in_cdb(2, Some(5)))
}

/// `buf` cut to the allocation length.
fn limit(buf: &mut [u8], alloc_len: u64) -> &mut [u8] {
    let n = usize::try_from(alloc_len).map_or(buf.len(), |a| a.min(buf.len()));
    &mut buf[..n]
}

/// LBA OUT OF RANGE unless `range` lies inside the unit.
fn check_range(range: &BlockRange, lu: &LogicalUnit) -> Result<(), Sense> {
    match range.lba.checked_add(u64::from(range.blocks)) {
        Some(end) if end <= lu.blocks => Ok(()),
        _ => Err(Sense::lba_out_of_range()),
    }
}

fn transfer<'a>(
    range: BlockRange,
    write: bool,
    fua: bool,
    lu: &LogicalUnit,
    transfer_len: u64,
) -> Result<Outcome<'a>, Sense> {
    check_range(&range, lu)?;
    if range.blocks == 0 {
        return Ok(Outcome::Good { data_len: 0 });
    }
    let too_long = Sense::invalid_field_in_cdb(range.length_field, None);
    let bytes = u64::from(range.blocks)
        .checked_mul(u64::from(lu.block_size))
        .ok_or(too_long)?;
    if bytes > u64::from(lu.max_transfer_bytes) || bytes > transfer_len {
        return Err(too_long);
    }
    let per_block = u64::from(lu.block_size / 512);
    let sector = range
        .lba
        .checked_mul(per_block)
        .ok_or(Sense::lba_out_of_range())?;
    Ok(Outcome::Transfer(Transfer {
        write,
        sector,
        sectors: bytes / 512,
        fua: write && fua,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A 1 GiB, 512-byte-sector disk with every feature.
    pub(crate) fn disk() -> LogicalUnit {
        LogicalUnit {
            block_size: 512,
            physical_block_size: 512,
            blocks: 2048,
            read_only: false,
            removable: false,
            write_cache: true,
            fua: true,
            discard: Some(Discard {
                granularity: 4096,
                alignment: 0,
                secure: false,
            }),
            max_transfer_bytes: 1 << 20,
            max_unmap_descriptors: 64,
            device_id: 51712,
        }
    }

    fn run_cdb(cdb: &[u8], lu: &LogicalUnit) -> (Outcome<'static>, Vec<u8>) {
        let mut data = vec![0u8; 512];
        let out = execute(
            Request {
                cdb,
                data_out: &[],
                data_in: &mut data,
                transfer_len: u64::MAX,
            },
            lu,
        );
        // Nothing borrowed from data_out survives: it was empty.
        let out = match out {
            Outcome::Unmap(_) => panic!("no UNMAP without data"),
            Outcome::Good { data_len } => Outcome::Good { data_len },
            Outcome::Transfer(t) => Outcome::Transfer(t),
            Outcome::Flush => Outcome::Flush,
            Outcome::CheckCondition(s) => Outcome::CheckCondition(s),
        };
        (out, data)
    }

    #[test]
    fn test_unit_ready_and_start_stop() {
        assert_eq!(run_cdb(&[0; 6], &disk()).0, Outcome::Good { data_len: 0 });
        assert_eq!(
            run_cdb(&[0x1B, 0, 0, 0, 0x01, 0], &disk()).0,
            Outcome::Good { data_len: 0 }
        );
        assert_eq!(
            run_cdb(&[0x1B, 0, 0, 0, 0x50, 0], &disk()).0,
            Outcome::CheckCondition(Sense::invalid_field_in_cdb(4, Some(7)))
        );
    }

    #[test]
    fn read_capacity() {
        let mut lu = disk();
        lu.block_size = 4096;
        lu.physical_block_size = 4096;
        lu.blocks = 1 << 33;
        let (o, d) = run_cdb(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lu);
        assert_eq!(o, Outcome::Good { data_len: 8 });
        assert_eq!(&d[..8], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]);
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9E;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let (o, d) = run_cdb(&cdb, &lu);
        assert_eq!(o, Outcome::Good { data_len: 32 });
        assert_eq!(&d[..8], &((1u64 << 33) - 1).to_be_bytes());
        assert_eq!(&d[8..12], &4096u32.to_be_bytes());
        assert_eq!(d[13], 0);
        assert_eq!(d[14], 0x80);
        lu.block_size = 512;
        let (_, d) = run_cdb(&cdb, &lu);
        assert_eq!(d[13], 3, "8 logical blocks per physical block");
    }

    #[test]
    fn transfers_in_sectors() {
        let mut lu = disk();
        let (o, _) = run_cdb(&[0x28, 0, 0, 0, 0, 10, 0, 0, 4, 0], &lu);
        assert_eq!(
            o,
            Outcome::Transfer(Transfer {
                write: false,
                sector: 10,
                sectors: 4,
                fua: false
            })
        );
        lu.block_size = 4096;
        let (o, _) = run_cdb(&[0x2A, 0x08, 0, 0, 0, 10, 0, 0, 4, 0], &lu);
        assert_eq!(
            o,
            Outcome::Transfer(Transfer {
                write: true,
                sector: 80,
                sectors: 32,
                fua: true
            })
        );
        // READ with FUA just reads.
        let (o, _) = run_cdb(&[0x28, 0x08, 0, 0, 0, 10, 0, 0, 4, 0], &lu);
        assert!(matches!(o, Outcome::Transfer(Transfer { fua: false, .. })));
    }

    #[test]
    fn transfer_limits() {
        let lu = disk();
        // Past the end.
        assert_eq!(
            run_cdb(&[0x28, 0, 0, 0, 0x07, 0xFF, 0, 0, 2, 0], &lu).0,
            Outcome::CheckCondition(Sense::lba_out_of_range())
        );
        // Ends exactly at the end.
        assert!(matches!(
            run_cdb(&[0x28, 0, 0, 0, 0x07, 0xFE, 0, 0, 2, 0], &lu).0,
            Outcome::Transfer(_)
        ));
        // Zero length: nothing to do, but the LBA is still checked.
        assert_eq!(
            run_cdb(&[0x28, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0], &lu).0,
            Outcome::Good { data_len: 0 }
        );
        assert_eq!(
            run_cdb(&[0x28, 0, 0, 0, 0x08, 0x01, 0, 0, 0, 0], &lu).0,
            Outcome::CheckCondition(Sense::lba_out_of_range())
        );
        // Larger than the maximum transfer.
        let mut big = disk();
        big.blocks = 1 << 20;
        assert_eq!(
            run_cdb(&[0x28, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0], &big).0,
            Outcome::CheckCondition(Sense::invalid_field_in_cdb(7, None))
        );
        // Larger than the SRB's buffer.
        let mut data = [0u8; 0];
        let o = execute(
            Request {
                cdb: &[0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0],
                data_out: &[],
                data_in: &mut data,
                transfer_len: 512,
            },
            &lu,
        );
        assert_eq!(
            o,
            Outcome::CheckCondition(Sense::invalid_field_in_cdb(7, None))
        );
    }

    #[test]
    fn read_only_refuses_writes_and_unmap() {
        let mut lu = disk();
        lu.read_only = true;
        assert_eq!(
            run_cdb(&[0x0A, 0, 0, 0, 1, 0], &lu).0,
            Outcome::CheckCondition(Sense::write_protected())
        );
        let o = execute(
            Request {
                cdb: &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0],
                data_out: &[0; 24],
                data_in: &mut [],
                transfer_len: 24,
            },
            &lu,
        );
        assert_eq!(o, Outcome::CheckCondition(Sense::write_protected()));
        assert!(matches!(
            run_cdb(&[0x08, 0, 0, 0, 1, 0], &lu).0,
            Outcome::Transfer(_)
        ));
    }

    #[test]
    fn synchronize_cache() {
        let mut lu = disk();
        assert_eq!(
            run_cdb(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lu).0,
            Outcome::Flush
        );
        lu.write_cache = false;
        assert_eq!(
            run_cdb(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lu).0,
            Outcome::Good { data_len: 0 }
        );
        let mut cdb = [0u8; 16];
        cdb[0] = 0x91;
        cdb[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            run_cdb(&cdb, &lu).0,
            Outcome::CheckCondition(Sense::lba_out_of_range())
        );
    }

    #[test]
    fn unmap_to_discard() {
        let lu = disk();
        let mut data = vec![0u8; 8];
        data[3] = 32;
        for (lba, n) in [(0u64, 16u32), (9, 2)] {
            data.extend_from_slice(&lba.to_be_bytes());
            data.extend_from_slice(&n.to_be_bytes());
            data.extend_from_slice(&[0; 4]);
        }
        let o = execute(
            Request {
                cdb: &[0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0],
                data_out: &data,
                data_in: &mut [],
                transfer_len: 40,
            },
            &lu,
        );
        let Outcome::Unmap(list) = o else {
            panic!("UNMAP not translated: {o:?}")
        };
        let ranges: Vec<_> = list.discard_ranges(lu.discard.unwrap()).collect();
        // 16 blocks = two 4 KiB extents; 2 blocks at 9 hold no whole extent.
        assert_eq!(
            ranges,
            [SectorRange {
                sector: 0,
                sectors: 16
            }]
        );
        let mut no_discard = lu;
        no_discard.discard = None;
        let o = execute(
            Request {
                cdb: &[0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0],
                data_out: &data,
                data_in: &mut [],
                transfer_len: 40,
            },
            &no_discard,
        );
        assert_eq!(o, Outcome::CheckCondition(Sense::invalid_opcode()));
    }

    #[test]
    fn mode_sense() {
        let (o, d) = run_cdb(&[0x1A, 0, 0x08, 0, 0xFF, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 32 });
        assert_eq!(d[14] & 0x04, 0x04, "WCE");
        assert_eq!(
            run_cdb(&[0x1A, 0, 0xC8, 0, 0xFF, 0], &disk()).0,
            Outcome::CheckCondition(Sense::new(
                SenseKey::IllegalRequest,
                AdditionalSense::SAVING_PARAMETERS_NOT_SUPPORTED
            ))
        );
        assert_eq!(
            run_cdb(&[0x1A, 0, 0x19, 0, 0xFF, 0], &disk()).0,
            Outcome::CheckCondition(Sense::invalid_field_in_cdb(2, Some(5)))
        );
        let (o, _) = run_cdb(&[0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0, 0xFF, 0], &disk());
        assert_eq!(
            o,
            Outcome::Good {
                data_len: 8 + 20 + 12
            }
        );
        // Allocation length truncates.
        let (o, _) = run_cdb(&[0x1A, 0, 0x3F, 0, 4, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 4 });
    }

    #[test]
    fn inquiry_and_request_sense_and_report_luns() {
        let (o, d) = run_cdb(&[0x12, 0, 0, 0, 36, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 36 });
        assert_eq!(&d[8..16], inquiry::VENDOR);
        assert_eq!(
            run_cdb(&[0x12, 1, 0x81, 0, 0xFF, 0], &disk()).0,
            Outcome::CheckCondition(Sense::invalid_field_in_cdb(2, None))
        );
        let (o, d) = run_cdb(&[0x12, 1, 0xB0, 0, 0xFF, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 64 });
        assert_eq!(d[1], 0xB0);
        let (o, d) = run_cdb(&[0x03, 0, 0, 0, 18, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 18 });
        assert_eq!((d[0], d[2], d[12]), (0x70, 0, 0));
        let (o, d) = run_cdb(&[0x03, 1, 0, 0, 252, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 8 });
        assert_eq!(d[0], 0x72);
        let (o, d) = run_cdb(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &disk());
        assert_eq!(o, Outcome::Good { data_len: 16 });
        assert_eq!(&d[..16], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn verify() {
        assert_eq!(
            run_cdb(&[0x2F, 0, 0, 0, 0, 0, 0, 0, 8, 0], &disk()).0,
            Outcome::Good { data_len: 0 }
        );
        let mut cdb = [0u8; 16];
        cdb[0] = 0x8F;
        cdb[2] = 0xFF;
        cdb[13] = 1;
        assert_eq!(
            run_cdb(&cdb, &disk()).0,
            Outcome::CheckCondition(Sense::lba_out_of_range())
        );
    }

    #[test]
    fn every_opcode_is_answered_without_panic() {
        // Every opcode, zero fields and all-ones fields, every short length.
        for op in 0..=255u8 {
            for fill in [0u8, 0xFF, 0x5A] {
                for len in 0..=16 {
                    let mut cdb = [fill; 16];
                    cdb[0] = op;
                    let _ = run_cdb(&cdb[..len], &disk());
                }
            }
        }
    }
}
