//! The Xen public ABI as `#[repr(C)]` Rust: everything the xenpv-rs drivers say to
//! the hypervisor, to xenstored and to backends over shared rings.
//!
//! Every type and constant here is compared, item by item, with Xen's canonical C
//! headers (Debian's `libxen-dev`) by the conformance test in `tests/`.
//!
//! Tracks Xen's public interface as of Xen 4.17 (`__XEN_LATEST_INTERFACE_VERSION__`
//! 0x00040e00 and later); nothing here depends on a newer hypervisor.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod blkif;
pub mod console;
pub mod event_channel;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_bodies;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod netif;
pub mod ring;
pub mod sched;
pub mod shared_info;
pub mod vcpu;
pub mod xen_version;
pub mod xenbus;
pub mod xs_wire;

/// The Xen public interface version these definitions track
/// (`__XEN_LATEST_INTERFACE_VERSION__` of Xen 4.17's headers); callers building
/// against Xen's C headers define `__XEN_INTERFACE_VERSION__` to this.
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;

/// The size of a Xen page (`XEN_PAGE_SIZE`, 4 KiB on every architecture), the unit
/// of grants and shared rings.
pub const XEN_PAGE_SIZE: usize = 4096;
