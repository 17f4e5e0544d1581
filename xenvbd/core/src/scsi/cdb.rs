//! Command descriptor blocks: a typed view over the bytes ([`Cdb`]) and the
//! parsed, validated form ([`Command`]).
//!
//! The contract is smoltcp's: once [`Cdb::new_checked`] has accepted a buffer no
//! accessor panics; [`Command::parse`] turns it into a [`Command`] or the sense
//! data that says which field is wrong.

use super::sense::Sense;

/// Operation codes this translation knows (SPC-4 / SBC-3).
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ(6).
    pub const READ_6: u8 = 0x08;
    /// WRITE(6).
    pub const WRITE_6: u8 = 0x0A;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SENSE(6).
    pub const MODE_SENSE_6: u8 = 0x1A;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1B;
    /// READ CAPACITY(10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ(10).
    pub const READ_10: u8 = 0x28;
    /// WRITE(10).
    pub const WRITE_10: u8 = 0x2A;
    /// VERIFY(10).
    pub const VERIFY_10: u8 = 0x2F;
    /// SYNCHRONIZE CACHE(10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// UNMAP.
    pub const UNMAP: u8 = 0x42;
    /// MODE SENSE(10).
    pub const MODE_SENSE_10: u8 = 0x5A;
    /// READ(16).
    pub const READ_16: u8 = 0x88;
    /// WRITE(16).
    pub const WRITE_16: u8 = 0x8A;
    /// VERIFY(16).
    pub const VERIFY_16: u8 = 0x8F;
    /// SYNCHRONIZE CACHE(16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// SERVICE ACTION IN(16) (READ CAPACITY(16) is its service action 10h).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xA0;
    /// READ(12).
    pub const READ_12: u8 = 0xA8;
    /// WRITE(12).
    pub const WRITE_12: u8 = 0xAA;
    /// VERIFY(12).
    pub const VERIFY_12: u8 = 0xAF;
}

/// SERVICE ACTION IN(16) service action: READ CAPACITY(16).
const SA_READ_CAPACITY_16: u8 = 0x10;

/// The CDB length an operation code's group implies (SPC-4 4.2.5.1), or `None`
/// for the reserved and vendor-specific groups (and variable-length CDBs, which
/// nothing here supports).
pub const fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A read-only view over CDB bytes.
#[derive(Clone, Copy, Debug)]
pub struct Cdb<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Cdb<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Cdb::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Sense> {
        let cdb = Self::new_unchecked(buffer);
        cdb.check_len()?;
        Ok(cdb)
    }

    /// Checks that the buffer holds a whole CDB of a known group. An empty
    /// buffer or an unknown group is INVALID COMMAND OPERATION CODE; a buffer
    /// shorter than its group's length is INVALID FIELD IN CDB.
    pub fn check_len(&self) -> Result<(), Sense> {
        let bytes = self.buffer.as_ref();
        let Some(&op) = bytes.first() else {
            return Err(Sense::invalid_opcode());
        };
        let Some(len) = cdb_len(op) else {
            return Err(Sense::invalid_opcode());
        };
        if bytes.len() < len {
            #[allow(clippy::cast_possible_truncation, reason = "CDB lengths are <= 16")]
            return Err(Sense::invalid_field_in_cdb(bytes.len() as u16, None));
        }
        Ok(())
    }

    /// The operation code.
    pub fn opcode(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The CDB's length as its group implies.
    pub fn len(&self) -> usize {
        cdb_len(self.opcode()).unwrap_or(0)
    }

    /// Never true for a checked CDB.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The CONTROL byte (the CDB's last).
    pub fn control(&self) -> u8 {
        self.byte(self.len() - 1)
    }

    /// Byte `index`.
    pub fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref()[index]
    }

    /// Big-endian 16-bit field at `index`.
    pub fn be16(&self, index: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[index], b[index + 1]])
    }

    /// Big-endian 32-bit field at `index`.
    pub fn be32(&self, index: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[index], b[index + 1], b[index + 2], b[index + 3]])
    }

    /// Big-endian 64-bit field at `index`.
    pub fn be64(&self, index: usize) -> u64 {
        (u64::from(self.be32(index)) << 32) | u64::from(self.be32(index + 4))
    }
}

/// MODE SENSE page control (PC field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageControl {
    /// Current values.
    Current,
    /// Which bits are changeable (none here).
    Changeable,
    /// Default values.
    Default,
    /// Saved values (not supported: SAVING PARAMETERS NOT SUPPORTED).
    Saved,
}

/// The block-transfer fields READ/WRITE/VERIFY/SYNCHRONIZE CACHE share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRange {
    /// First logical block.
    pub lba: u64,
    /// Number of logical blocks.
    pub blocks: u32,
    /// CDB byte of the transfer-length field (for the field pointer).
    pub length_field: u16,
}

/// A parsed, field-checked command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE.
    RequestSense {
        /// DESC bit: descriptor-format sense wanted.
        descriptor: bool,
        /// Allocation length.
        alloc_len: u16,
    },
    /// INQUIRY.
    Inquiry {
        /// The VPD page asked for, or `None` for standard data.
        vpd_page: Option<u8>,
        /// Allocation length.
        alloc_len: u16,
    },
    /// READ CAPACITY(10).
    ReadCapacity10,
    /// READ CAPACITY(16).
    ReadCapacity16 {
        /// Allocation length.
        alloc_len: u32,
    },
    /// READ(6/10/12/16).
    Read {
        /// What to read.
        range: BlockRange,
        /// FUA bit.
        fua: bool,
    },
    /// WRITE(6/10/12/16).
    Write {
        /// What to write.
        range: BlockRange,
        /// FUA bit.
        fua: bool,
    },
    /// VERIFY(10/12/16) without byte check.
    Verify {
        /// What to verify.
        range: BlockRange,
    },
    /// SYNCHRONIZE CACHE(10/16); `blocks` 0 means "to the end".
    SynchronizeCache {
        /// What to synchronize.
        range: BlockRange,
    },
    /// UNMAP.
    Unmap {
        /// Parameter list length.
        param_len: u16,
    },
    /// MODE SENSE(6/10).
    ModeSense {
        /// Page code.
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Page control.
        control: PageControl,
        /// DBD: no block descriptors.
        no_block_descriptors: bool,
        /// LLBAA: long LBA block descriptor allowed (MODE SENSE(10) only).
        long_lba: bool,
        /// MODE SENSE(10) rather than (6).
        ten: bool,
        /// Allocation length.
        alloc_len: u16,
    },
    /// REPORT LUNS.
    ReportLuns {
        /// Allocation length.
        alloc_len: u32,
    },
    /// START STOP UNIT.
    StartStopUnit {
        /// START bit.
        start: bool,
        /// LOEJ bit.
        load_eject: bool,
    },
}

/// Fails with INVALID FIELD IN CDB when `value` is non-zero.
fn zero(value: u8, byte: u16, bit: u8) -> Result<(), Sense> {
    if value == 0 {
        Ok(())
    } else {
        Err(Sense::invalid_field_in_cdb(byte, Some(bit)))
    }
}

impl Command {
    /// Parses and checks a CDB. Unknown operation codes are INVALID COMMAND
    /// OPERATION CODE; reserved or unsupported field values are INVALID FIELD IN
    /// CDB pointing at the field.
    pub fn parse<T: AsRef<[u8]>>(cdb: &Cdb<T>) -> Result<Self, Sense> {
        use opcode as op;
        cdb.check_len()?;
        // NACA (control bit 2) asks for ACA handling, which we do not offer.
        #[allow(clippy::cast_possible_truncation, reason = "CDB lengths are <= 16")]
        zero(cdb.control() & 0x04, (cdb.len() - 1) as u16, 2)?;
        let code = cdb.opcode();
        let cmd = match code {
            op::TEST_UNIT_READY => Self::TestUnitReady,
            op::REQUEST_SENSE => Self::RequestSense {
                descriptor: cdb.byte(1) & 0x01 != 0,
                alloc_len: u16::from(cdb.byte(4)),
            },
            op::INQUIRY => {
                zero(cdb.byte(1) & 0x02, 1, 1)?; // CMDDT (obsolete)
                let evpd = cdb.byte(1) & 0x01 != 0;
                let page = cdb.byte(2);
                if !evpd && page != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Self::Inquiry {
                    vpd_page: evpd.then_some(page),
                    alloc_len: cdb.be16(3),
                }
            }
            op::READ_CAPACITY_10 => {
                // Without PMI the LBA field must be zero (SBC-3 5.15).
                if cdb.byte(8) & 0x01 == 0 && cdb.be32(2) != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Self::ReadCapacity10
            }
            op::SERVICE_ACTION_IN_16 => {
                if cdb.byte(1) & 0x1F != SA_READ_CAPACITY_16 {
                    return Err(Sense::invalid_field_in_cdb(1, Some(4)));
                }
                if cdb.byte(14) & 0x01 == 0 && cdb.be64(2) != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Self::ReadCapacity16 {
                    alloc_len: cdb.be32(10),
                }
            }
            op::READ_6
            | op::WRITE_6
            | op::READ_10
            | op::WRITE_10
            | op::READ_12
            | op::WRITE_12
            | op::READ_16
            | op::WRITE_16
            | op::VERIFY_10
            | op::VERIFY_12
            | op::VERIFY_16
            | op::SYNCHRONIZE_CACHE_10
            | op::SYNCHRONIZE_CACHE_16 => Self::parse_block(cdb)?,
            op::UNMAP => {
                zero(cdb.byte(1) & 0x01, 1, 0)?; // ANCHOR
                Self::Unmap {
                    param_len: cdb.be16(7),
                }
            }
            op::MODE_SENSE_6 | op::MODE_SENSE_10 => Self::parse_mode_sense(cdb),
            op::REPORT_LUNS => {
                // SELECT REPORT 00h-02h all list LUN 0 only; others are reserved
                // or name well-known/administrative LUNs we do not have.
                if cdb.byte(2) > 0x02 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                let alloc_len = cdb.be32(6);
                // SPC-4 6.33: an allocation length under 16 is invalid.
                if alloc_len < 16 {
                    return Err(Sense::invalid_field_in_cdb(6, None));
                }
                Self::ReportLuns { alloc_len }
            }
            op::START_STOP_UNIT => {
                // POWER CONDITION: START_VALID, ACTIVE, IDLE, STANDBY,
                // LU_CONTROL, FORCE_IDLE_0, FORCE_STANDBY_0 (SBC-3 table 76).
                let power = cdb.byte(4) >> 4;
                if !matches!(power, 0x0..=0x3 | 0x7 | 0xA | 0xB) {
                    return Err(Sense::invalid_field_in_cdb(4, Some(7)));
                }
                Self::StartStopUnit {
                    start: cdb.byte(4) & 0x01 != 0,
                    load_eject: cdb.byte(4) & 0x02 != 0,
                }
            }
            _ => return Err(Sense::invalid_opcode()),
        };
        Ok(cmd)
    }

    /// MODE SENSE(6) and (10).
    fn parse_mode_sense<T: AsRef<[u8]>>(cdb: &Cdb<T>) -> Self {
        let ten = cdb.opcode() == opcode::MODE_SENSE_10;
        let control = match cdb.byte(2) >> 6 {
            0 => PageControl::Current,
            1 => PageControl::Changeable,
            2 => PageControl::Default,
            _ => PageControl::Saved,
        };
        Self::ModeSense {
            page: cdb.byte(2) & 0x3F,
            subpage: cdb.byte(3),
            control,
            no_block_descriptors: cdb.byte(1) & 0x08 != 0,
            long_lba: ten && cdb.byte(1) & 0x10 != 0,
            ten,
            alloc_len: if ten {
                cdb.be16(7)
            } else {
                u16::from(cdb.byte(4))
            },
        }
    }

    /// The commands that name a range of blocks.
    fn parse_block<T: AsRef<[u8]>>(cdb: &Cdb<T>) -> Result<Self, Sense> {
        use opcode as op;
        let code = cdb.opcode();
        Ok(match code {
            op::READ_6 | op::WRITE_6 => {
                let lba = (u64::from(cdb.byte(1) & 0x1F) << 16) | u64::from(cdb.be16(2));
                // A transfer length of 0 means 256 blocks in the 6-byte CDBs.
                let blocks = match cdb.byte(4) {
                    0 => 256,
                    n => u32::from(n),
                };
                let range = BlockRange {
                    lba,
                    blocks,
                    length_field: 4,
                };
                if code == op::READ_6 {
                    Self::Read { range, fua: false }
                } else {
                    Self::Write { range, fua: false }
                }
            }
            op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
                zero(cdb.byte(1) >> 5, 1, 7)?; // VRPROTECT
                // BYTCHK: comparing data is not offered; medium verification
                // (BYTCHK 0) always succeeds on a virtual disk.
                zero(cdb.byte(1) & 0x06, 1, 2)?;
                Self::Verify {
                    range: Self::range(cdb)?,
                }
            }
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => Self::SynchronizeCache {
                range: Self::range(cdb)?,
            },
            _ => {
                zero(cdb.byte(1) >> 5, 1, 7)?; // RDPROTECT / WRPROTECT
                let fua = cdb.byte(1) & 0x08 != 0;
                let range = Self::range(cdb)?;
                if matches!(code, op::READ_10 | op::READ_12 | op::READ_16) {
                    Self::Read { range, fua }
                } else {
                    Self::Write { range, fua }
                }
            }
        })
    }

    /// LBA and transfer length of a 10-, 12- or 16-byte block CDB.
    fn range<T: AsRef<[u8]>>(cdb: &Cdb<T>) -> Result<BlockRange, Sense> {
        Ok(match cdb.len() {
            10 => BlockRange {
                lba: u64::from(cdb.be32(2)),
                blocks: u32::from(cdb.be16(7)),
                length_field: 7,
            },
            12 => BlockRange {
                lba: u64::from(cdb.be32(2)),
                blocks: cdb.be32(6),
                length_field: 6,
            },
            16 => BlockRange {
                lba: cdb.be64(2),
                blocks: cdb.be32(10),
                length_field: 10,
            },
            _ => return Err(Sense::invalid_opcode()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::sense::AdditionalSense;

    fn parse(bytes: &[u8]) -> Result<Command, Sense> {
        Command::parse(&Cdb::new_unchecked(bytes))
    }

    #[test]
    fn lengths_by_group() {
        assert_eq!(cdb_len(0x00), Some(6));
        assert_eq!(cdb_len(0x28), Some(10));
        assert_eq!(cdb_len(0x5A), Some(10));
        assert_eq!(cdb_len(0x7F), None);
        assert_eq!(cdb_len(0x88), Some(16));
        assert_eq!(cdb_len(0xA8), Some(12));
        assert_eq!(cdb_len(0xC0), None);
        assert_eq!(cdb_len(0xFF), None);
    }

    #[test]
    fn short_and_empty_cdbs() {
        assert_eq!(parse(&[]), Err(Sense::invalid_opcode()));
        assert_eq!(
            parse(&[0x28, 0, 0, 0]),
            Err(Sense::invalid_field_in_cdb(4, None))
        );
        assert_eq!(parse(&[0xC5; 16]), Err(Sense::invalid_opcode()));
        // Longer buffers are fine (StorPort hands out 16-byte CDB arrays).
        assert_eq!(parse(&[0; 16]), Ok(Command::TestUnitReady));
    }

    #[test]
    fn read_write_fields() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x88;
        cdb[1] = 0x08;
        cdb[2..10].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        cdb[10..14].copy_from_slice(&77u32.to_be_bytes());
        let Ok(Command::Read { range, fua }) = parse(&cdb) else {
            panic!("READ(16) not parsed")
        };
        assert!(fua);
        assert_eq!(range.lba, 0x0102_0304_0506_0708);
        assert_eq!(range.blocks, 77);
        assert_eq!(range.length_field, 10);

        let cdb10 = [0x2A, 0, 0, 0, 1, 0, 0, 0, 8, 0];
        assert_eq!(
            parse(&cdb10),
            Ok(Command::Write {
                range: BlockRange {
                    lba: 256,
                    blocks: 8,
                    length_field: 7
                },
                fua: false
            })
        );
        let cdb12 = [0xA8, 0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0];
        let Ok(Command::Read { range, .. }) = parse(&cdb12) else {
            panic!("READ(12) not parsed")
        };
        assert_eq!((range.lba, range.blocks), (9, 0x0001_0000));
    }

    #[test]
    fn six_byte_read_zero_means_256() {
        let Ok(Command::Read { range, .. }) = parse(&[0x08, 0x1F, 0xFF, 0xFF, 0, 0]) else {
            panic!("READ(6) not parsed")
        };
        assert_eq!(range.lba, 0x1F_FFFF);
        assert_eq!(range.blocks, 256);
    }

    #[test]
    fn protection_and_naca_are_refused() {
        assert_eq!(
            parse(&[0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(Sense::invalid_field_in_cdb(1, Some(7)))
        );
        assert_eq!(
            parse(&[0x00, 0, 0, 0, 0, 0x04]),
            Err(Sense::invalid_field_in_cdb(5, Some(2)))
        );
    }

    #[test]
    fn inquiry_fields() {
        assert_eq!(
            parse(&[0x12, 0, 0, 0x01, 0x00, 0]),
            Ok(Command::Inquiry {
                vpd_page: None,
                alloc_len: 256
            })
        );
        assert_eq!(
            parse(&[0x12, 1, 0x83, 0, 0xFF, 0]),
            Ok(Command::Inquiry {
                vpd_page: Some(0x83),
                alloc_len: 255
            })
        );
        assert_eq!(
            parse(&[0x12, 0, 0x83, 0, 0xFF, 0]),
            Err(Sense::invalid_field_in_cdb(2, None))
        );
        assert_eq!(
            parse(&[0x12, 2, 0, 0, 0xFF, 0]),
            Err(Sense::invalid_field_in_cdb(1, Some(1)))
        );
    }

    #[test]
    fn service_actions() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9E;
        cdb[1] = 0x10;
        cdb[13] = 32;
        assert_eq!(parse(&cdb), Ok(Command::ReadCapacity16 { alloc_len: 32 }));
        cdb[1] = 0x12; // GET LBA STATUS: not offered
        assert_eq!(parse(&cdb), Err(Sense::invalid_field_in_cdb(1, Some(4))));
        cdb[1] = 0x10;
        cdb[9] = 1; // LBA without PMI
        assert_eq!(parse(&cdb), Err(Sense::invalid_field_in_cdb(2, None)));
    }

    #[test]
    fn report_luns_needs_16_bytes() {
        let mut cdb = [0u8; 12];
        cdb[0] = 0xA0;
        cdb[9] = 15;
        assert_eq!(parse(&cdb), Err(Sense::invalid_field_in_cdb(6, None)));
        cdb[9] = 16;
        assert_eq!(parse(&cdb), Ok(Command::ReportLuns { alloc_len: 16 }));
        cdb[2] = 0x10;
        assert_eq!(parse(&cdb), Err(Sense::invalid_field_in_cdb(2, None)));
    }

    #[test]
    fn verify_with_byte_check_is_refused() {
        assert_eq!(
            parse(&[0x2F, 0x02, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(Sense::invalid_field_in_cdb(1, Some(2)))
        );
    }

    #[test]
    fn unknown_opcode() {
        let e = parse(&[0x04, 0, 0, 0, 0, 0]).unwrap_err(); // FORMAT UNIT
        assert_eq!(
            e.additional,
            AdditionalSense::INVALID_COMMAND_OPERATION_CODE
        );
    }
}
