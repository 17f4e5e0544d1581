//! A freestanding PVH test kernel for the rig: it boots as a Xen domU, brings
//! up `xenbus-core`'s guest platform against the real hypervisor, xenstored and
//! dom0, runs the checks of [`checks`] and reports each one on its consoles.
//! With real cross-domain grants it also runs `xenvbd-core`'s blkfront engine
//! as the frontend of its `xvda` against dom0's blkback ([`vbd`]: handshake,
//! a random I/O mix checked against a model, an image check by dom0, and
//! writes in flight across `xl save`/`xl restore` replayed in the new domain).
//! Its network device ([`vif`]) is `xenvif-core`'s netfront connected to dom0's
//! netback through the guest platform's own event channels and grants.
//!
//! The library is ordinary `no_std` code that also builds (and unit-tests) on
//! the host; the binary (`--features kernel`, built by `cargo xtask rig test
//! guest` with the flags in `build/xtask/src/rig/guest_kernel.rs`) adds the entry
//! code, the linker script, the interrupt table, the heap and the panic
//! handler.
//!
//! Report format, one line each, on the PV console and port 0xE9:
//! ```text
//! XENPV-GUEST ok <check> (<ms> ms) <details>
//! XENPV-GUEST FAIL <check>: <reason>
//! XENPV-GUEST done <passed> passed, <failed> failed, <ms> ms since boot
//! ```
//! The dom0 side (`build/rig-tests/src/suites/guest.rs`) answers the requests of
//! [`checks`] under `data/xenpv/` in the guest's xenstore home.
#![no_std]

extern crate alloc;

pub mod checks;
pub mod heap;
pub mod hvm;
pub mod log;
pub mod pool;
pub mod vbd;
pub mod vif;
pub mod x86;

/// The prefix of every report line.
pub const REPORT_PREFIX: &str = "XENPV-GUEST";
/// The vector the event-channel upcall arrives on (`HVM_PARAM_CALLBACK_IRQ`).
pub const UPCALL_VECTOR: u8 = 0xf3;
/// Guest frame where shared info and the grant frames are placed: an
/// unpopulated range inside the kernel's identity map (PVH has no MMIO there).
pub const FRAME_AREA_GPFN: u64 = 0xf_0000;
/// Pages in that area: shared info + up to 64 grant frames.
pub const FRAME_AREA_PAGES: usize = 65;

/// Where shared info and the grant frames go: an unpopulated range under PVH
/// ([`FrameArea::PVH`]), the Xen platform PCI device's memory BAR under HVM
/// (as XENBUS does on Windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameArea {
    /// First guest frame (identity-mapped: its address is `gpfn << 12`).
    pub gpfn: u64,
    /// Pages (shared info + grant frames).
    pub pages: usize,
}

impl FrameArea {
    /// The PVH kernel's area.
    pub const PVH: Self = Self {
        gpfn: FRAME_AREA_GPFN,
        pages: FRAME_AREA_PAGES,
    };
}

/// Address of shared info once mapped (0 before), where the legacy
/// `vcpu_info` slots are.
pub static SHARED_INFO_ADDR: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// The vector of the per-vCPU upcall (`HVMOP_set_evtchn_upcall_vector`).
pub const PERCPU_UPCALL_VECTOR: u8 = 0xf4;
/// The local APIC's MMIO base (xAPIC mode, identity-mapped).
pub const LAPIC_BASE: usize = 0xfee0_0000;

/// Where vCPU 0's `vcpu_info` lives once moved out of shared info
/// (`VCPUOP_register_vcpu_info`); 0 while it is the legacy slot.
pub static VCPU_INFO_ADDR: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// The address of vCPU 0's `vcpu_info`: the placed one, else the legacy slot
/// at the start of shared info (the frame area's first page).
pub fn vcpu_info_addr() -> usize {
    match VCPU_INFO_ADDR.load(core::sync::atomic::Ordering::SeqCst) {
        0 => SHARED_INFO_ADDR.load(core::sync::atomic::Ordering::SeqCst),
        addr => addr,
    }
}

/// Per-vCPU upcalls taken (incremented by their interrupt handler).
pub static PERCPU_UPCALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Upcalls taken (incremented by the interrupt handler).
pub static UPCALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
