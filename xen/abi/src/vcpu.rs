//! `vcpu.h`: the `vcpu_op` hypercall (the part HVM guests use).

/// `VCPUOP_up`: bring a vCPU up.
pub const VCPUOP_UP: u32 = 1;
/// `VCPUOP_down`: take a vCPU down.
pub const VCPUOP_DOWN: u32 = 2;
/// `VCPUOP_is_up`: whether a vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// `VCPUOP_stop_periodic_timer`: stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: arm the one-shot timer.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`: disarm the one-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `VCPUOP_register_vcpu_info`: move a vCPU's `vcpu_info` out of the shared info
/// page into guest memory, a [`VcpuRegisterVcpuInfo`] (needed past vCPU 31 and
/// for FIFO event channels on every vCPU).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `VCPUOP_send_nmi`: send an NMI to a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` instead of firing at once when the
/// deadline has already passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1;

/// `struct vcpu_set_singleshot_timer`: the argument of
/// [`VCPUOP_SET_SINGLESHOT_TIMER`]; the timer raises `VIRQ_TIMER` on that vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time, in nanoseconds.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() == 16);

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// The guest frame to place the `vcpu_info` in.
    pub mfn: u64,
    /// Its byte offset within the frame (the structure must not cross it).
    pub offset: u32,
    /// Unused; zero.
    pub rsvd: u32,
}

const _: () = assert!(core::mem::size_of::<VcpuRegisterVcpuInfo>() == 16);
