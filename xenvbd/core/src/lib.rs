//! XENVBD's portable core (`no_std` + `alloc`).
//!
//! * [`scsi`]: the SCSI translation XENVBD's StorPort miniport feeds the engine:
//!   pure functions from a CDB and the disk's state to data, block transfers,
//!   flushes, discards or CHECK CONDITION with sense data.
//! * [`blkfront`]: the blkif frontend engine: handshake, rings, grants, requests,
//!   validated responses, replay across backend resets.
//! * `fake` (feature `test-utils`): a fake Xen and a scripted blkback for tests.
//! * [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, also run by unit tests.
#![no_std]
#![deny(missing_docs, unsafe_code)]

extern crate alloc;

pub mod blkfront;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod fuzz;
pub mod scsi;
