//! `grant_table.h`: grant references, grant entries (v1) and the
//! `grant_table_op` hypercall.
//!
//! A grant table is an array of [`GrantEntryV1`] in frames mapped with
//! `XENMAPSPACE_grant_table`; granting a frame to a domain is writing an entry
//! (frame and domain first, then `flags` with [`GTF_PERMIT_ACCESS`], after a
//! write barrier); revoking is clearing `flags` with a compare-and-swap that
//! fails while the hypervisor has [`GTF_READING`] / [`GTF_WRITING`] set.

use crate::hypercall::{DomId, GuestHandle, XenPfn};

/// `grant_ref_t`: an index into a domain's grant table.
pub type GrantRef = u32;
/// `grant_handle_t`: the handle of a mapping made with `map_grant_ref`.
pub type GrantHandle = u32;

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*`: type, permissions and the hypervisor's in-use bits.
    pub flags: u16,
    /// The domain the frame is granted to.
    pub domid: DomId,
    /// The granted frame.
    pub frame: u32,
}

const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries the toolstack reserves at the start.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the console ring's entry.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the xenstore ring's entry.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// `GTF_invalid`: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the domain may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: the domain may transfer a frame to us.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive`: a transitive grant (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: the type bits.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: the grant is read-only.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the frame is mapped or copied from.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the frame is mapped writable or copied to.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`: map write-through.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`: map cache-disabled.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`: map with the PAT bit.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page`: a sub-page grant (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed`: a transfer is committed.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed`: a transfer is complete.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `GNTTABOP_map_grant_ref`: map a foreign grant, a [`GnttabMapGrantRef`].
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`: unmap it, a [`GnttabUnmapGrantRef`].
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table`: get the grant table's frames (PV), a
/// [`GnttabSetupTable`].
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_dump_table`: dump the table to the console.
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `GNTTABOP_transfer`: transfer a frame.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `GNTTABOP_copy`: copy between grants and frames, [`GnttabCopy`]s.
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size`: current and maximum table frames, a
/// [`GnttabQuerySize`].
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_unmap_and_replace`: unmap, replacing with another mapping.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `GNTTABOP_set_version`: select the table format, a [`GnttabSetVersion`].
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `GNTTABOP_get_status_frames`: v2 status frames.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `GNTTABOP_get_version`: the table format in use.
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// `GNTMAP_device_map`: map for device access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map into the host address space.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: map for user space (PV).
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is a PTE address (PV).
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

/// `GNTCOPY_source_gref`: the copy source is a grant (else a frame).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the copy destination is a grant (else a frame).
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`: unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`: unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`: unrecognised or inappropriate handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`: inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`: inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`: out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`: the page was invalid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`: copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`: transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`: not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`: out of space (handles etc.).
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// Where to map (`GNTMAP_host_map`).
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The grant.
    pub r#ref: GrantRef,
    /// The granting domain.
    pub dom: DomId,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: the mapping's handle.
    pub handle: GrantHandle,
    /// Out: bus address for device maps.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// The host mapping's address.
    pub host_addr: u64,
    /// The device mapping's bus address.
    pub dev_bus_addr: u64,
    /// The mapping's handle.
    pub handle: GrantHandle,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// The domain ([`crate::hypercall::DOMID_SELF`]).
    pub dom: DomId,
    /// Number of frames wanted.
    pub nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: the frames.
    pub frame_list: GuestHandle<XenPfn>,
}

/// `struct gnttab_copy_ptr`: one side of a copy, a grant or a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// The union `u`: `ref` (a [`GrantRef`], in the low 32 bits) or `gmfn`.
    pub u: u64,
    /// The domain owning the grant or frame.
    pub domid: DomId,
    /// Byte offset in the page.
    pub offset: u16,
}

impl GnttabCopyPtr {
    /// A grant side (set the matching `GNTCOPY_*_gref` flag).
    pub const fn gref(r#ref: GrantRef, domid: DomId, offset: u16) -> Self {
        // `u.ref` is the union's first four bytes: the low half on little-endian
        // targets, which are the only ones Xen guests run on.
        Self {
            u: r#ref as u64,
            domid,
            offset,
        }
    }

    /// A frame side.
    pub const fn gmfn(gmfn: XenPfn, domid: DomId, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid,
            offset,
        }
    }
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// The source.
    pub source: GnttabCopyPtr,
    /// The destination.
    pub dest: GnttabCopyPtr,
    /// Bytes to copy (neither side may cross a page).
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// The domain ([`crate::hypercall::DOMID_SELF`]).
    pub dom: DomId,
    /// Out: frames in use.
    pub nr_frames: u32,
    /// Out: the most frames the table may have.
    pub max_nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// In: 1 or 2; out: the version in use.
    pub version: u32,
}

const _: () = assert!(core::mem::size_of::<GnttabMapGrantRef>() == 32);
const _: () = assert!(core::mem::size_of::<GnttabUnmapGrantRef>() == 24);
const _: () = assert!(core::mem::size_of::<GnttabSetupTable>() == 24);
const _: () = assert!(core::mem::size_of::<GnttabCopyPtr>() == 16);
const _: () = assert!(core::mem::size_of::<GnttabCopy>() == 40);
const _: () = assert!(core::mem::size_of::<GnttabQuerySize>() == 16);
