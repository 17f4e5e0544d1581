//! `xen.h`: hypercall numbers, the basic ABI types, `console_io`, virtual IRQs
//! and reserved domain ids.
//!
//! A hypercall takes up to five word-sized arguments; argument structures are
//! passed by guest-virtual address. On x86_64 Xen's `unsigned long` is 64 bits
//! (the hypervisor is LP64), whatever the guest compiler says: these types spell
//! the widths out.

use core::fmt;
use core::marker::PhantomData;

/// `domid_t`: a domain id.
pub type DomId = u16;
/// `xen_pfn_t`: a (guest or machine) page frame number.
pub type XenPfn = u64;
/// `xen_ulong_t`: an unsigned machine word as the hypervisor sees it.
pub type XenUlong = u64;

/// `XEN_GUEST_HANDLE(T)`: the guest-virtual address of a `T` (or an array of
/// them) in the caller's address space, as stored in an argument structure.
#[repr(transparent)]
pub struct GuestHandle<T> {
    addr: u64,
    _target: PhantomData<fn() -> T>,
}

impl<T> GuestHandle<T> {
    /// The null handle.
    pub const fn null() -> Self {
        Self::from_addr(0)
    }

    /// A handle to the address `addr`.
    pub const fn from_addr(addr: u64) -> Self {
        Self {
            addr,
            _target: PhantomData,
        }
    }

    /// A handle to `ptr` (the pointer's address; it is not dereferenced here).
    pub fn from_ptr(ptr: *const T) -> Self {
        Self::from_addr(ptr.addr() as u64)
    }

    /// The address.
    pub const fn addr(self) -> u64 {
        self.addr
    }
}

impl<T> Clone for GuestHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GuestHandle<T> {}
impl<T> Default for GuestHandle<T> {
    fn default() -> Self {
        Self::null()
    }
}
impl<T> PartialEq for GuestHandle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}
impl<T> Eq for GuestHandle<T> {}
impl<T> fmt::Debug for GuestHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestHandle({:#x})", self.addr)
    }
}

const _: () = assert!(core::mem::size_of::<GuestHandle<u8>>() == 8);

/// `__HYPERVISOR_set_trap_table` (PV only).
pub const HYPERVISOR_SET_TRAP_TABLE: u32 = 0;
/// `__HYPERVISOR_mmu_update` (PV only).
pub const HYPERVISOR_MMU_UPDATE: u32 = 1;
/// `__HYPERVISOR_set_timer_op`: arm the one-shot timer.
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_platform_op`: dom0 platform control.
pub const HYPERVISOR_PLATFORM_OP: u32 = 7;
/// `__HYPERVISOR_memory_op`: memory reservation and physmap ([`crate::memory`]).
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_multicall`: several hypercalls in one.
pub const HYPERVISOR_MULTICALL: u32 = 13;
/// `__HYPERVISOR_xen_version`: version and features ([`crate::xen_version`]).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io`: the hypervisor's debug console (`CONSOLEIO_*`).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_grant_table_op`: grant tables ([`crate::grant_table`]).
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vm_assist`: enable or disable VM assists.
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
/// `__HYPERVISOR_vcpu_op`: per-vCPU operations ([`crate::vcpu`]).
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `__HYPERVISOR_mmuext_op` (PV only).
pub const HYPERVISOR_MMUEXT_OP: u32 = 26;
/// `__HYPERVISOR_xsm_op`: security module operations.
pub const HYPERVISOR_XSM_OP: u32 = 27;
/// `__HYPERVISOR_nmi_op`: NMI callbacks.
pub const HYPERVISOR_NMI_OP: u32 = 28;
/// `__HYPERVISOR_sched_op`: yield, block, shutdown, poll ([`crate::sched`]).
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `__HYPERVISOR_callback_op`: register callbacks (PV only).
pub const HYPERVISOR_CALLBACK_OP: u32 = 30;
/// `__HYPERVISOR_event_channel_op`: event channels ([`crate::event_channel`]).
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_physdev_op`: physical device operations.
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `__HYPERVISOR_hvm_op`: HVM parameters and control ([`crate::hvm`]).
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `__HYPERVISOR_sysctl`: toolstack system control.
pub const HYPERVISOR_SYSCTL: u32 = 35;
/// `__HYPERVISOR_domctl`: toolstack domain control.
pub const HYPERVISOR_DOMCTL: u32 = 36;
/// `__HYPERVISOR_argo_op`: Argo inter-domain messaging.
pub const HYPERVISOR_ARGO_OP: u32 = 39;
/// `__HYPERVISOR_dm_op`: device model operations.
pub const HYPERVISOR_DM_OP: u32 = 41;
/// `__HYPERVISOR_hypfs_op`: the hypervisor file system.
pub const HYPERVISOR_HYPFS_OP: u32 = 42;
/// `__HYPERVISOR_arch_0`: first architecture-specific hypercall.
pub const HYPERVISOR_ARCH_0: u32 = 48;

/// `CONSOLEIO_write`: write bytes to the hypervisor console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `CONSOLEIO_read`: read bytes from the hypervisor console (dom0).
pub const CONSOLEIO_READ: u32 = 1;

/// `VIRQ_TIMER`: per-vCPU timer.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG`: request to dump debug information.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE`: bytes on the emergency console (dom0).
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC`: exceptional event for some domain (dom0).
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF`: trace buffer records available (dom0).
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER`: a domain paused for debugging (dom0).
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF`: profiling sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING`: bytes on the console ring (dom0).
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE`: physical CPU state changed (dom0).
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT`: a memory event occurred (dom0).
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO`: Argo message notification.
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM`: the hypervisor is low on heap memory (dom0).
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU`: performance counter interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// `NR_VIRQS`: number of virtual IRQs.
pub const NR_VIRQS: u32 = 24;

/// `DOMID_FIRST_RESERVED`: ids from here on are not real domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: DomId = 0x7ff0;
/// `DOMID_IO`: I/O memory owner.
pub const DOMID_IO: DomId = 0x7ff1;
/// `DOMID_XEN`: the hypervisor.
pub const DOMID_XEN: DomId = 0x7ff2;
/// `DOMID_COW`: copy-on-write shared pages owner.
pub const DOMID_COW: DomId = 0x7ff3;
/// `DOMID_INVALID`: no domain.
pub const DOMID_INVALID: DomId = 0x7ff4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: DomId = 0x7fff;
/// `DOMID_MASK`: mask of the domain id bits.
pub const DOMID_MASK: DomId = 0x7fff;
