//! The guest platform's view of the Xen ABI: the `xen-abi` items it uses,
//! under short local names, with sub-op numbers widened to the `u64` a
//! hypercall argument register takes and shared-info offsets derived from
//! `xen-abi`'s layout-checked structures.

use core::mem::offset_of;

use xen_abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};

/// Hypercall numbers (`__HYPERVISOR_*`).
pub mod nr {
    pub use xen_abi::hypercall::{
        HYPERVISOR_EVENT_CHANNEL_OP as EVENT_CHANNEL_OP,
        HYPERVISOR_GRANT_TABLE_OP as GRANT_TABLE_OP, HYPERVISOR_HVM_OP as HVM_OP,
        HYPERVISOR_MEMORY_OP as MEMORY_OP, HYPERVISOR_SCHED_OP as SCHED_OP,
        HYPERVISOR_VCPU_OP as VCPU_OP, HYPERVISOR_XEN_VERSION as XEN_VERSION,
    };
}

pub use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnExpandArray, EvtchnInitControl,
};
pub use xen_abi::grant_table::GnttabQuerySize;
pub use xen_abi::hvm::{XenHvmEvtchnUpcallVector as UpcallVector, XenHvmParam as HvmParam};
pub use xen_abi::memory::{
    XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO, XenAddToPhysmap as AddToPhysmap,
    XenMemoryReservation as MemoryReservation,
};
pub use xen_abi::sched::{SchedPoll, SchedShutdown, SchedWatchdog};
pub use xen_abi::vcpu::VcpuRegisterVcpuInfo as RegisterVcpuInfo;
pub use xen_abi::vcpu::{VCPU_SSHOTTMR_FUTURE, VcpuSetSingleshotTimer as SingleshotTimer};
pub use xen_abi::xen_version::XenFeatureInfo as FeatureInfo;

// Sub-operation numbers as hypercall arguments (`as`: lossless u32 -> u64 in
// a const context, where `From` is not available).

/// `XENVER_version`.
pub const XENVER_VERSION: u64 = xen_abi::xen_version::XENVER_VERSION as u64;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: u64 = xen_abi::xen_version::XENVER_GET_FEATURES as u64;
/// `XENMEM_decrease_reservation`.
pub const XENMEM_DECREASE_RESERVATION: u64 = xen_abi::memory::XENMEM_DECREASE_RESERVATION as u64;
/// `XENMEM_current_reservation`.
pub const XENMEM_CURRENT_RESERVATION: u64 = xen_abi::memory::XENMEM_CURRENT_RESERVATION as u64;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = xen_abi::memory::XENMEM_POPULATE_PHYSMAP as u64;
/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = xen_abi::memory::XENMEM_ADD_TO_PHYSMAP as u64;
/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = xen_abi::hvm::HVMOP_SET_PARAM as u64;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = xen_abi::hvm::HVMOP_GET_PARAM as u64;
/// `HVMOP_set_evtchn_upcall_vector`.
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u64 = xen_abi::hvm::HVMOP_SET_EVTCHN_UPCALL_VECTOR as u64;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u64 = xen_abi::grant_table::GNTTABOP_QUERY_SIZE as u64;
/// `VCPUOP_register_vcpu_info`.
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = xen_abi::vcpu::VCPUOP_REGISTER_VCPU_INFO as u64;
/// `VCPUOP_set_singleshot_timer`.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = xen_abi::vcpu::VCPUOP_SET_SINGLESHOT_TIMER as u64;
/// `VCPUOP_stop_periodic_timer`.
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = xen_abi::vcpu::VCPUOP_STOP_PERIODIC_TIMER as u64;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u64 = xen_abi::vcpu::VCPUOP_STOP_SINGLESHOT_TIMER as u64;
/// `SCHEDOP_yield`.
pub const SCHEDOP_YIELD: u64 = xen_abi::sched::SCHEDOP_YIELD as u64;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = xen_abi::sched::SCHEDOP_SHUTDOWN as u64;
/// `SCHEDOP_poll`.
pub const SCHEDOP_POLL: u64 = xen_abi::sched::SCHEDOP_POLL as u64;
/// `SCHEDOP_watchdog`.
pub const SCHEDOP_WATCHDOG: u64 = xen_abi::sched::SCHEDOP_WATCHDOG as u64;

/// `EVTCHNOP_*` sub-ops of `event_channel_op`.
pub mod evtchnop {
    use xen_abi::event_channel as ec;
    /// `EVTCHNOP_bind_interdomain`.
    pub const BIND_INTERDOMAIN: u64 = ec::EVTCHNOP_BIND_INTERDOMAIN as u64;
    /// `EVTCHNOP_bind_virq`.
    pub const BIND_VIRQ: u64 = ec::EVTCHNOP_BIND_VIRQ as u64;
    /// `EVTCHNOP_close`.
    pub const CLOSE: u64 = ec::EVTCHNOP_CLOSE as u64;
    /// `EVTCHNOP_send`.
    pub const SEND: u64 = ec::EVTCHNOP_SEND as u64;
    /// `EVTCHNOP_alloc_unbound`.
    pub const ALLOC_UNBOUND: u64 = ec::EVTCHNOP_ALLOC_UNBOUND as u64;
    /// `EVTCHNOP_unmask`.
    pub const UNMASK: u64 = ec::EVTCHNOP_UNMASK as u64;
    /// `EVTCHNOP_init_control`.
    pub const INIT_CONTROL: u64 = ec::EVTCHNOP_INIT_CONTROL as u64;
    /// `EVTCHNOP_expand_array`.
    pub const EXPAND_ARRAY: u64 = ec::EVTCHNOP_EXPAND_ARRAY as u64;
}

/// Offsets into `struct shared_info` / `struct vcpu_info` (x86_64).
pub mod shared_info {
    use super::{SharedInfo, VcpuInfo, VcpuTimeInfo, offset_of};

    /// Size of one `struct vcpu_info`.
    pub const VCPU_INFO_SIZE: usize = size_of::<VcpuInfo>();
    /// `vcpu_info` slots in the shared info page (`XEN_LEGACY_MAX_VCPUS`).
    pub const LEGACY_MAX_VCPUS: u32 = 32;
    /// `evtchn_pending[]`.
    pub const EVTCHN_PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
    /// `evtchn_mask[]`.
    pub const EVTCHN_MASK: usize = offset_of!(SharedInfo, evtchn_mask);
    /// `wc_version`.
    pub const WC_VERSION: usize = offset_of!(SharedInfo, wc_version);
    /// `wc_sec`.
    pub const WC_SEC: usize = offset_of!(SharedInfo, wc_sec);
    /// `wc_nsec`.
    pub const WC_NSEC: usize = offset_of!(SharedInfo, wc_nsec);
    /// `wc_sec_hi`.
    pub const WC_SEC_HI: usize = offset_of!(SharedInfo, wc_sec_hi);
    /// `vcpu_info.evtchn_upcall_pending`.
    pub const UPCALL_PENDING: usize = offset_of!(VcpuInfo, evtchn_upcall_pending);
    /// `vcpu_info.evtchn_upcall_mask`.
    pub const UPCALL_MASK: usize = offset_of!(VcpuInfo, evtchn_upcall_mask);
    /// `vcpu_info.evtchn_pending_sel`.
    pub const PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);
    /// `vcpu_info.time`.
    pub const TIME: usize = offset_of!(VcpuInfo, time);
    /// `vcpu_time_info.version` (relative to `TIME`).
    pub const TIME_VERSION: usize = offset_of!(VcpuTimeInfo, version);
    /// `vcpu_time_info.tsc_timestamp`.
    pub const TIME_TSC_TIMESTAMP: usize = offset_of!(VcpuTimeInfo, tsc_timestamp);
    /// `vcpu_time_info.system_time`.
    pub const TIME_SYSTEM_TIME: usize = offset_of!(VcpuTimeInfo, system_time);
    /// `vcpu_time_info.tsc_to_system_mul`.
    pub const TIME_MUL: usize = offset_of!(VcpuTimeInfo, tsc_to_system_mul);
    /// `vcpu_time_info.tsc_shift` (one signed byte).
    pub const TIME_SHIFT: usize = offset_of!(VcpuTimeInfo, tsc_shift);

    // What the code was first written against (Xen 4.17's headers).
    const _: () = assert!(VCPU_INFO_SIZE == 64 && EVTCHN_PENDING == 2048 && EVTCHN_MASK == 2560);
    const _: () =
        assert!(WC_VERSION == 3072 && WC_SEC_HI == 3084 && TIME == 32 && TIME_SHIFT == 28);
}
