//! The Xen public ABI as `#[repr(C)]` Rust: everything the xenpv-rs drivers say to
//! the hypervisor, to xenstored and to backends over shared rings.
//!
//! **Interface version.** Tracks Xen 4.17's public headers
//! (`__XEN_LATEST_INTERFACE_VERSION__` = [`XEN_INTERFACE_VERSION`], 0x00040e00);
//! nothing here needs a newer hypervisor. Layouts are x86_64's as the hypervisor
//! sees them (LP64: `xen_ulong_t` and `xen_pfn_t` are 64-bit even where a Windows
//! compiler's `unsigned long` is 32-bit).
//!
//! **Checked against Xen's headers.** `tests/conformance.rs` compiles a C program
//! against /usr/include/xen (Debian's `libxen-dev`) and compares, item by item,
//! every type's size and alignment, every field's offset and size, every constant
//! and the ring geometry of each `DEFINE_RING_TYPES`; a coverage test keeps every
//! public item in that table. Compile-time asserts pin each size as well.
//!
//! **Modules** mirror Xen's headers: [`hypercall`] (xen.h: hypercall numbers, basic
//! types, `console_io`, VIRQs, domain ids), [`memory`], [`hvm`] (hvm_op and HVM
//! params), [`sched`], [`vcpu`], [`xen_version`] (version.h, features.h),
//! [`shared_info`], [`event_channel`] (incl. the FIFO ABI), [`grant_table`],
//! [`xs_wire`], [`xenbus`] (io/xenbus.h states), [`ring`] (io/ring.h as a safe
//! generic ring), [`blkif`], [`netif`], [`console`].
//!
//! **Peer data.** Everything read from shared memory is copied whole into a local
//! before use, and every producer index is checked before it is trusted (see
//! [`ring`]); the C unions become raw words with typed accessors.
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
