//! Sense data (SPC-4 clause 4.5): why a command ended in CHECK CONDITION.
//!
//! A [`Sense`] is the high-level form (key, additional sense code and qualifier,
//! optional field pointer); [`Sense::write_fixed`] and
//! [`Sense::write_descriptor`] emit the two wire formats. Every CHECK CONDITION
//! carries its sense data with it (autosense), so nothing is kept for a later
//! REQUEST SENSE.

/// A sense key (SPC-4 table 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SenseKey {
    /// No error to report.
    NoSense = 0x0,
    /// The logical unit cannot be accessed now.
    NotReady = 0x2,
    /// The command ended with an unrecovered error in the medium.
    MediumError = 0x3,
    /// The device failed (here: the backend or the connection to it).
    HardwareError = 0x4,
    /// Something in the CDB or parameter list is wrong.
    IllegalRequest = 0x5,
    /// The unit changed state (reset, capacity change).
    UnitAttention = 0x6,
    /// A write was attempted on a write-protected unit.
    DataProtect = 0x7,
    /// The command was aborted.
    AbortedCommand = 0xB,
}

/// An additional sense code and its qualifier (ASC, ASCQ), SPC-4 table D.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdditionalSense {
    /// ASC.
    pub code: u8,
    /// ASCQ.
    pub qualifier: u8,
}

impl AdditionalSense {
    /// 00/00: no additional sense information.
    pub const NONE: Self = Self::new(0x00, 0x00);
    /// 04/03: logical unit not ready, manual intervention required.
    pub const NOT_READY_MANUAL_INTERVENTION: Self = Self::new(0x04, 0x03);
    /// 0C/00: write error.
    pub const WRITE_ERROR: Self = Self::new(0x0C, 0x00);
    /// 11/00: unrecovered read error.
    pub const UNRECOVERED_READ_ERROR: Self = Self::new(0x11, 0x00);
    /// 1A/00: parameter list length error.
    pub const PARAMETER_LIST_LENGTH_ERROR: Self = Self::new(0x1A, 0x00);
    /// 20/00: invalid command operation code.
    pub const INVALID_COMMAND_OPERATION_CODE: Self = Self::new(0x20, 0x00);
    /// 21/00: logical block address out of range.
    pub const LBA_OUT_OF_RANGE: Self = Self::new(0x21, 0x00);
    /// 24/00: invalid field in CDB.
    pub const INVALID_FIELD_IN_CDB: Self = Self::new(0x24, 0x00);
    /// 25/00: logical unit not supported.
    pub const LOGICAL_UNIT_NOT_SUPPORTED: Self = Self::new(0x25, 0x00);
    /// 26/00: invalid field in parameter list.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Self = Self::new(0x26, 0x00);
    /// 27/00: write protected.
    pub const WRITE_PROTECTED: Self = Self::new(0x27, 0x00);
    /// 29/00: power on, reset, or bus device reset occurred.
    pub const POWER_ON_OR_RESET: Self = Self::new(0x29, 0x00);
    /// 2A/09: capacity data has changed.
    pub const CAPACITY_DATA_HAS_CHANGED: Self = Self::new(0x2A, 0x09);
    /// 39/00: saving parameters not supported.
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Self = Self::new(0x39, 0x00);
    /// 44/00: internal target failure.
    pub const INTERNAL_TARGET_FAILURE: Self = Self::new(0x44, 0x00);

    /// An ASC/ASCQ pair.
    pub const fn new(code: u8, qualifier: u8) -> Self {
        Self { code, qualifier }
    }
}

/// Where in the CDB or parameter list the offending field is (the
/// sense-key-specific "field pointer", SPC-4 4.5.2.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldPointer {
    /// True: the field is in the CDB; false: in the parameter list.
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// The field's most significant bit within that byte, if it is not whole
    /// bytes.
    pub bit: Option<u8>,
}

/// Sense data: the reason for a CHECK CONDITION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sense {
    /// Sense key.
    pub key: SenseKey,
    /// ASC/ASCQ.
    pub additional: AdditionalSense,
    /// The offending field, for ILLEGAL REQUEST.
    pub field: Option<FieldPointer>,
}

/// Length of fixed-format sense data as emitted by [`Sense::write_fixed`].
pub const FIXED_SENSE_LEN: usize = 18;
/// Length of descriptor-format sense data as emitted by
/// [`Sense::write_descriptor`] (header plus, when there is a field pointer, one
/// sense-key-specific descriptor).
pub const DESCRIPTOR_SENSE_MAX_LEN: usize = 16;

impl Sense {
    /// Sense with a key and ASC/ASCQ, no field pointer.
    pub const fn new(key: SenseKey, additional: AdditionalSense) -> Self {
        Self {
            key,
            additional,
            field: None,
        }
    }

    /// NO SENSE: what REQUEST SENSE reports when nothing is pending.
    pub const NO_SENSE: Self = Self::new(SenseKey::NoSense, AdditionalSense::NONE);

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (pointing at byte 0).
    pub const fn invalid_opcode() -> Self {
        Self::invalid_field_in_cdb_with(AdditionalSense::INVALID_COMMAND_OPERATION_CODE, 0, None)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB at `byte` (and `bit`).
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Self {
        Self::invalid_field_in_cdb_with(AdditionalSense::INVALID_FIELD_IN_CDB, byte, bit)
    }

    const fn invalid_field_in_cdb_with(
        additional: AdditionalSense,
        byte: u16,
        bit: Option<u8>,
    ) -> Self {
        Self {
            key: SenseKey::IllegalRequest,
            additional,
            field: Some(FieldPointer {
                in_cdb: true,
                byte,
                bit,
            }),
        }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST at `byte`.
    pub const fn invalid_field_in_parameter_list(byte: u16) -> Self {
        Self {
            key: SenseKey::IllegalRequest,
            additional: AdditionalSense::INVALID_FIELD_IN_PARAMETER_LIST,
            field: Some(FieldPointer {
                in_cdb: false,
                byte,
                bit: None,
            }),
        }
    }

    /// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
    pub const fn parameter_list_length_error() -> Self {
        Self::new(
            SenseKey::IllegalRequest,
            AdditionalSense::PARAMETER_LIST_LENGTH_ERROR,
        )
    }

    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const fn lba_out_of_range() -> Self {
        Self::new(SenseKey::IllegalRequest, AdditionalSense::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED.
    pub const fn lun_not_supported() -> Self {
        Self::new(
            SenseKey::IllegalRequest,
            AdditionalSense::LOGICAL_UNIT_NOT_SUPPORTED,
        )
    }

    /// DATA PROTECT, WRITE PROTECTED.
    pub const fn write_protected() -> Self {
        Self::new(SenseKey::DataProtect, AdditionalSense::WRITE_PROTECTED)
    }

    /// What a failed block transfer reports: MEDIUM ERROR with UNRECOVERED
    /// READ ERROR or WRITE ERROR.
    pub const fn medium_error(write: bool) -> Self {
        let additional = if write {
            AdditionalSense::WRITE_ERROR
        } else {
            AdditionalSense::UNRECOVERED_READ_ERROR
        };
        Self::new(SenseKey::MediumError, additional)
    }

    /// What any command reports once the device has failed (backend broken or
    /// gone): HARDWARE ERROR, INTERNAL TARGET FAILURE.
    pub const fn device_failed() -> Self {
        Self::new(
            SenseKey::HardwareError,
            AdditionalSense::INTERNAL_TARGET_FAILURE,
        )
    }

    /// The three sense-key-specific bytes (SKSV set) for a field pointer.
    fn sense_key_specific(&self) -> Option<[u8; 3]> {
        let field = self.field?;
        let mut first = 0x80; // SKSV
        if field.in_cdb {
            first |= 0x40; // C/D
        }
        if let Some(bit) = field.bit {
            first |= 0x08 | (bit & 0x07); // BPV + bit pointer
        }
        let [hi, lo] = field.byte.to_be_bytes();
        Some([first, hi, lo])
    }

    /// Emits fixed-format sense data (response code 70h) into `buf`, truncated
    /// to `buf.len()`. Returns the number of bytes written.
    pub fn write_fixed(&self, buf: &mut [u8]) -> usize {
        let mut out = [0u8; FIXED_SENSE_LEN];
        out[0] = 0x70; // current error, fixed format
        out[2] = self.key as u8;
        #[allow(clippy::cast_possible_truncation, reason = "constant 18 - 8 = 10")]
        {
            out[7] = (FIXED_SENSE_LEN - 8) as u8;
        }
        out[12] = self.additional.code;
        out[13] = self.additional.qualifier;
        if let Some(sks) = self.sense_key_specific() {
            out[15..18].copy_from_slice(&sks);
        }
        copy_truncated(&out, buf)
    }

    /// Emits descriptor-format sense data (response code 72h) into `buf`,
    /// truncated to `buf.len()`. Returns the number of bytes written.
    pub fn write_descriptor(&self, buf: &mut [u8]) -> usize {
        let mut out = [0u8; DESCRIPTOR_SENSE_MAX_LEN];
        out[0] = 0x72;
        out[1] = self.key as u8;
        out[2] = self.additional.code;
        out[3] = self.additional.qualifier;
        let mut len = 8;
        if let Some(sks) = self.sense_key_specific() {
            // Sense key specific sense data descriptor (type 02h, length 06h).
            out[8] = 0x02;
            out[9] = 0x06;
            out[12..15].copy_from_slice(&sks);
            len = 16;
        }
        #[allow(clippy::cast_possible_truncation, reason = "len is 8 or 16")]
        {
            out[7] = (len - 8) as u8;
        }
        copy_truncated(&out[..len], buf)
    }
}

/// Copies as much of `src` as fits into `dst`; returns the count.
pub(crate) fn copy_truncated(src: &[u8], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_of_invalid_field() {
        let mut buf = [0xAAu8; 32];
        let n = Sense::invalid_field_in_cdb(2, Some(5)).write_fixed(&mut buf);
        assert_eq!(n, 18);
        assert_eq!(buf[0], 0x70);
        assert_eq!(buf[2], 0x05);
        assert_eq!(buf[7], 10);
        assert_eq!((buf[12], buf[13]), (0x24, 0x00));
        assert_eq!(&buf[15..18], &[0x80 | 0x40 | 0x08 | 5, 0, 2]);
        assert_eq!(buf[18], 0xAA, "nothing written past the sense data");
    }

    #[test]
    fn fixed_format_without_field_pointer_has_no_sksv() {
        let mut buf = [0u8; 18];
        Sense::write_protected().write_fixed(&mut buf);
        assert_eq!(buf[2], 0x07);
        assert_eq!((buf[12], buf[13]), (0x27, 0x00));
        assert_eq!(&buf[15..18], &[0, 0, 0]);
    }

    #[test]
    fn descriptor_format() {
        let mut buf = [0u8; 32];
        assert_eq!(Sense::lba_out_of_range().write_descriptor(&mut buf), 8);
        assert_eq!(&buf[..8], &[0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
        let n = Sense::invalid_field_in_parameter_list(9).write_descriptor(&mut buf);
        assert_eq!(n, 16);
        assert_eq!(buf[7], 8);
        assert_eq!(&buf[8..16], &[0x02, 0x06, 0, 0, 0x80, 0, 9, 0]);
    }

    #[test]
    fn truncates_to_the_buffer() {
        let mut buf = [0u8; 4];
        assert_eq!(Sense::invalid_opcode().write_fixed(&mut buf), 4);
        assert_eq!(buf, [0x70, 0, 0x05, 0]);
        assert_eq!(Sense::invalid_opcode().write_fixed(&mut []), 0);
    }
}
