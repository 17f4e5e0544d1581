//! The guest platform: what XENBUS itself does inside a Xen HVM/PVH guest.
//!
//! Detection and hypercalls ([`hypercall`]), shared info and clocks
//! ([`shared_info`]), event channels in the 2-level and FIFO ABIs ([`evtchn`]),
//! grant table v1 ([`gnttab`]), the xenstore ring ([`store_ring`]), the PV
//! console ([`console`]), balloon ([`balloon`]), the Xen platform PCI device
//! ([`pci`]), emulated-device unplug ([`unplug`]) and suspend/resume ([`platform`]), all generic over the small
//! [`Cpu`] trait the kernel (or the Windows shell) implements with a handful of
//! instructions. [`api`] implements the bus traits (`api.rs`) on top, so the
//! frontend cores run unchanged inside a guest.
//!
//! Unsafe code: only calls of [`Cpu`]'s unsafe methods, each under a `SAFETY`
//! line (shared-memory windows in [`shared`], hypercalls in [`hypercall`], ports
//! in [`pci`] and [`unplug`]).

// `alloc` for this module's tables, independent of the crate root's imports.
extern crate alloc;

mod abi;
pub mod api;
pub mod balloon;
pub mod console;
pub mod cpu;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod pci;
pub mod platform;
pub mod shared;
pub mod shared_info;
pub mod store_ring;
pub mod unplug;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod fake_machine;
#[cfg(test)]
mod tests;

pub use cpu::{Cpu, CpuidResult, HypercallInsn};
pub use platform::Platform;
pub use shared::Shared;

use core::fmt;

/// Why a guest-platform operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No Xen signature in the hypervisor CPUID leaves.
    NotXen,
    /// Unknown CPU vendor and no hypercall page to fall back to.
    NoHypercallInsn,
    /// A hypercall returned a negative errno.
    Hypercall {
        /// Which operation.
        op: &'static str,
        /// Xen's return value (`-errno`).
        rc: i64,
    },
    /// An offset, index or size outside the memory or table it names.
    OutOfBounds,
    /// A port number Xen's data or the caller named that this table has no
    /// word for.
    BadPort(u32),
    /// Shared memory held values that cannot be (ring indices, versions).
    Inconsistent(&'static str),
    /// The platform had no page to give.
    OutOfMemory,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotXen => f.write_str("not running on Xen"),
            Self::NoHypercallInsn => f.write_str("unknown CPU vendor and no hypercall page"),
            Self::Hypercall { op, rc } => write!(f, "hypercall {op} failed ({rc})"),
            Self::OutOfBounds => f.write_str("out of bounds"),
            Self::BadPort(p) => write!(f, "bad event channel port {p}"),
            Self::Inconsistent(what) => write!(f, "inconsistent shared state: {what}"),
            Self::OutOfMemory => f.write_str("out of memory"),
        }
    }
}
