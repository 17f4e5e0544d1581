//! `xen.h` / `arch-x86/xen.h` / `arch-x86/xen-x86_64.h`: the shared info page,
//! per-vCPU info and the PV clock, as the hypervisor lays them out on x86_64.
//!
//! These live in memory the hypervisor writes concurrently: read them with
//! volatile or atomic accesses (the platform layer's job); the types here give
//! the layout.

use core::mem::size_of;

use crate::hypercall::{XenPfn, XenUlong};

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a `vcpu_info` slot in the shared info page.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: the TSC is stable across vCPUs (`flags`).
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: the guest was stopped (`flags`).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: the PV clock. Consistent when `version` is even and
/// unchanged across the read (a seqlock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter: odd while an update is in progress.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at the last update.
    pub system_time: u64,
    /// TSC-to-nanoseconds multiplier (32.32 fixed point, after `tsc_shift`).
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta before multiplying.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*`.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault (PV).
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}

/// `struct vcpu_info`: one vCPU's event state and clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU; cleared by the guest
    /// before scanning.
    pub evtchn_upcall_pending: u8,
    /// Non-zero masks upcalls to this vCPU.
    pub evtchn_upcall_mask: u8,
    /// 2-level ABI: which words of `evtchn_pending` to scan.
    pub evtchn_pending_sel: XenUlong,
    /// Architecture part.
    pub arch: ArchVcpuInfo,
    /// The PV clock.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Valid entries in the p2m (PV).
    pub max_pfn: u64,
    /// Frame of the p2m frame list list (PV).
    pub pfn_to_mfn_frame_list_list: XenPfn,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// cr3 of the p2m address space (PV).
    pub p2m_cr3: u64,
    /// Virtual address of the linear p2m (PV).
    pub p2m_vaddr: u64,
    /// p2m generation count (PV).
    pub p2m_generation: u64,
}

/// Words in the 2-level pending and mask bitmaps.
pub const EVTCHN_2L_WORDS: usize = XenUlong::BITS as usize;

/// `struct shared_info`: the page mapped with `XENMAPSPACE_shared_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Per-vCPU info of vCPUs 0..32 (unless registered elsewhere).
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level ABI: pending bit per port.
    pub evtchn_pending: [XenUlong; EVTCHN_2L_WORDS],
    /// 2-level ABI: mask bit per port.
    pub evtchn_mask: [XenUlong; EVTCHN_2L_WORDS],
    /// Wallclock update counter (a seqlock, as `VcpuTimeInfo::version`).
    pub wc_version: u32,
    /// Wallclock seconds since the epoch at boot (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}

const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(size_of::<ArchVcpuInfo>() == 16);
const _: () = assert!(size_of::<VcpuInfo>() == 64);
const _: () = assert!(size_of::<ArchSharedInfo>() == 48);
const _: () = assert!(size_of::<SharedInfo>() == 3136);
const _: () = assert!(size_of::<SharedInfo>() <= crate::XEN_PAGE_SIZE);
