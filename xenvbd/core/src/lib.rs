//! XENVBD's portable core (`no_std` + `alloc`).
//!
//! * [`scsi`]: the SCSI translation XENVBD's StorPort miniport feeds the engine:
//!   pure functions from a CDB and the disk's state to data, block transfers,
//!   flushes, discards or CHECK CONDITION with sense data.
//! * [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, also run by unit tests.
#![no_std]
#![deny(missing_docs, unsafe_code)]

extern crate alloc;

pub mod fuzz;
pub mod scsi;
