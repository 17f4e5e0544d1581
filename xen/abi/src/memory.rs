//! `memory.h`: the `memory_op` hypercall (reservation changes, physmap).

use crate::hypercall::{DomId, GuestHandle, XenPfn, XenUlong};

/// `XENMEM_increase_reservation`: allocate machine memory (PV).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `XENMEM_decrease_reservation`: give frames back to the hypervisor (balloon
/// inflate), a [`XenMemoryReservation`].
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `XENMEM_maximum_ram_page`: the largest machine frame number.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// `XENMEM_current_reservation`: pages a domain currently holds.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// `XENMEM_maximum_reservation`: pages a domain may hold.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `XENMEM_populate_physmap`: back guest frames with memory (balloon deflate), a
/// [`XenMemoryReservation`].
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap`: map a hypervisor page (shared info, grant table
/// frame) at a guest frame, a [`XenAddToPhysmap`].
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_maximum_gpfn`: the largest guest frame number in use.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// `XENMEM_remove_from_physmap`: unmap a guest frame, a [`XenRemoveFromPhysmap`].
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// `XENMEMF_populate_on_demand`: populate lazily (`mem_flags`).
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: the NUMA node is a requirement (`mem_flags`).
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node is a virtual node (`mem_flags`).
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `XENMAPSPACE_shared_info`: the shared info page ([`crate::shared_info`]).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`: a grant table frame (`idx`; or a status frame with
/// [`XENMAPIDX_GRANT_TABLE_STATUS`]).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`: move a guest frame.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: move a range of guest frames.
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: a frame of another domain.
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio`: device MMIO (Arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `XENMAPIDX_grant_table_status`: `idx` flag selecting a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: XenUlong = 0x8000_0000;

/// `struct xen_memory_reservation`: argument of increase/decrease_reservation and
/// populate_physmap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// The frame list: in for decrease/populate, out for increase/populate.
    pub extent_start: GuestHandle<XenPfn>,
    /// Number of extents in the list.
    pub nr_extents: XenUlong,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags, address bits and NUMA node.
    pub mem_flags: u32,
    /// The domain ([`crate::hypercall::DOMID_SELF`] for a guest).
    pub domid: DomId,
}

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// Number of pages for [`XENMAPSPACE_GMFN_RANGE`].
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space (e.g. grant table frame number).
    pub idx: XenUlong,
    /// The guest frame to map it at.
    pub gpfn: XenPfn,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// The guest frame to unmap.
    pub gpfn: XenPfn,
}

const _: () = assert!(core::mem::size_of::<XenMemoryReservation>() == 32);
const _: () = assert!(core::mem::size_of::<XenAddToPhysmap>() == 24);
const _: () = assert!(core::mem::size_of::<XenRemoveFromPhysmap>() == 16);
