//! The few Xen public-ABI items the guest platform needs that `xen-abi` does not
//! carry yet (hypercall numbers, sub-ops, argument structures, shared-info
//! offsets). Private minimal definitions checked against Xen 4.17's headers by
//! the layout asserts below; to be replaced by `xen-abi`'s modules once they land.

/// Hypercall numbers (`xen.h`).
pub mod nr {
    /// `__HYPERVISOR_memory_op`.
    pub const MEMORY_OP: u32 = 12;
    /// `__HYPERVISOR_xen_version`.
    pub const XEN_VERSION: u32 = 17;
    /// `__HYPERVISOR_grant_table_op`.
    pub const GRANT_TABLE_OP: u32 = 20;
    /// `__HYPERVISOR_vcpu_op`.
    pub const VCPU_OP: u32 = 24;
    /// `__HYPERVISOR_sched_op`.
    pub const SCHED_OP: u32 = 29;
    /// `__HYPERVISOR_event_channel_op`.
    pub const EVENT_CHANNEL_OP: u32 = 32;
    /// `__HYPERVISOR_hvm_op`.
    pub const HVM_OP: u32 = 34;
}

/// `XENVER_version`.
pub const XENVER_VERSION: u64 = 0;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: u64 = 6;

/// `XENMEM_increase_reservation`... sub-ops of `memory_op`.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `XENMEM_current_reservation`.
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;
/// `HVMOP_set_evtchn_upcall_vector`.
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u64 = 23;

/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u64 = 6;

/// `VCPUOP_register_vcpu_info`.
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;

/// `SCHEDOP_yield`.
pub const SCHEDOP_YIELD: u64 = 0;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SCHEDOP_poll`.
pub const SCHEDOP_POLL: u64 = 3;
/// `SCHEDOP_watchdog`.
pub const SCHEDOP_WATCHDOG: u64 = 6;

/// `EVTCHNOP_*` sub-ops of `event_channel_op`.
pub mod evtchnop {
    /// `EVTCHNOP_bind_interdomain`.
    pub const BIND_INTERDOMAIN: u64 = 0;
    /// `EVTCHNOP_bind_virq`.
    pub const BIND_VIRQ: u64 = 1;
    /// `EVTCHNOP_close`.
    pub const CLOSE: u64 = 3;
    /// `EVTCHNOP_send`.
    pub const SEND: u64 = 4;
    /// `EVTCHNOP_alloc_unbound`.
    pub const ALLOC_UNBOUND: u64 = 6;
    /// `EVTCHNOP_unmask`.
    pub const UNMASK: u64 = 9;
    /// `EVTCHNOP_init_control`.
    pub const INIT_CONTROL: u64 = 11;
    /// `EVTCHNOP_expand_array`.
    pub const EXPAND_ARRAY: u64 = 12;
}

/// `struct xen_feature_info`.
#[repr(C)]
pub struct FeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}

/// `struct xen_hvm_param`.
#[repr(C)]
pub struct HvmParam {
    pub domid: u16,
    pub index: u32,
    pub value: u64,
}

/// `struct xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
pub struct UpcallVector {
    pub vcpu: u32,
    pub vector: u8,
}

/// `struct xen_add_to_physmap`.
#[repr(C)]
pub struct AddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// `struct xen_memory_reservation`.
#[repr(C)]
pub struct MemoryReservation {
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
}

/// `struct gnttab_query_size`.
#[repr(C)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
}

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
pub struct RegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}

/// `struct sched_shutdown`.
#[repr(C)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll`.
#[repr(C)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub timeout: u64,
}

/// `struct sched_watchdog`.
#[repr(C)]
pub struct SchedWatchdog {
    pub id: u32,
    pub timeout: u32,
}

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    pub port: u32,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub remote_port: u32,
    pub local_port: u32,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: u32,
}

/// `struct evtchn_init_control`.
#[repr(C)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    pub link_bits: u8,
    pub pad: [u8; 7],
}

/// `struct evtchn_expand_array`.
#[repr(C)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}

/// `struct shared_info` / `struct vcpu_info` offsets (x86_64).
pub mod shared_info {
    /// Size of one `struct vcpu_info`.
    pub const VCPU_INFO_SIZE: usize = 64;
    /// `vcpu_info` slots in the shared info page (`XEN_LEGACY_MAX_VCPUS`).
    pub const LEGACY_MAX_VCPUS: u32 = 32;
    /// `evtchn_pending[]`.
    pub const EVTCHN_PENDING: usize = 2048;
    /// `evtchn_mask[]`.
    pub const EVTCHN_MASK: usize = 2560;
    /// `wc_version`.
    pub const WC_VERSION: usize = 3072;
    /// `wc_sec`.
    pub const WC_SEC: usize = 3076;
    /// `wc_nsec`.
    pub const WC_NSEC: usize = 3080;
    /// `wc_sec_hi`.
    pub const WC_SEC_HI: usize = 3084;
    /// `vcpu_info.evtchn_upcall_pending`.
    pub const UPCALL_PENDING: usize = 0;
    /// `vcpu_info.evtchn_upcall_mask`.
    pub const UPCALL_MASK: usize = 1;
    /// `vcpu_info.evtchn_pending_sel`.
    pub const PENDING_SEL: usize = 8;
    /// `vcpu_info.time` (`struct vcpu_time_info`).
    pub const TIME: usize = 32;
    /// `vcpu_time_info.version` (relative to `TIME`).
    pub const TIME_VERSION: usize = 0;
    /// `vcpu_time_info.tsc_timestamp`.
    pub const TIME_TSC_TIMESTAMP: usize = 8;
    /// `vcpu_time_info.system_time`.
    pub const TIME_SYSTEM_TIME: usize = 16;
    /// `vcpu_time_info.tsc_to_system_mul`.
    pub const TIME_MUL: usize = 24;
    /// `vcpu_time_info.tsc_shift` (one signed byte) and `flags` next to it.
    pub const TIME_SHIFT: usize = 28;
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<HvmParam>() == 16);
    assert!(size_of::<AddToPhysmap>() == 24);
    assert!(offset_of!(AddToPhysmap, idx) == 8);
    assert!(size_of::<MemoryReservation>() == 32);
    assert!(offset_of!(MemoryReservation, domid) == 24);
    assert!(size_of::<GnttabQuerySize>() == 16);
    assert!(offset_of!(GnttabQuerySize, status) == 12);
    assert!(size_of::<RegisterVcpuInfo>() == 16);
    assert!(size_of::<SchedPoll>() == 24);
    assert!(offset_of!(SchedPoll, timeout) == 16);
    assert!(size_of::<EvtchnAllocUnbound>() == 8);
    assert!(size_of::<EvtchnBindInterdomain>() == 12);
    assert!(offset_of!(EvtchnBindInterdomain, local_port) == 8);
    assert!(size_of::<EvtchnInitControl>() == 24);
    assert!(offset_of!(EvtchnInitControl, link_bits) == 16);
    assert!(size_of::<UpcallVector>() == 8);
};
