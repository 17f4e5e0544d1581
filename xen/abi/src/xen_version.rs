//! `version.h` and `features.h`: the `xen_version` hypercall and feature flags.

/// `XENVER_version`: returns `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_extraversion`: fills a `[u8; XEN_EXTRAVERSION_LEN]` (e.g. `.3`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `XENVER_compile_info`: fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `XENVER_capabilities`: fills a `[u8; XEN_CAPABILITIES_INFO_LEN]`.
pub const XENVER_CAPABILITIES: u32 = 3;
/// `XENVER_changeset`: fills a `[u8; XEN_CHANGESET_INFO_LEN]`.
pub const XENVER_CHANGESET: u32 = 4;
/// `XENVER_platform_parameters`: the hypervisor's virtual start address.
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `XENVER_get_features`: one 32-bit word of feature flags, a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// `XENVER_pagesize`: returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// `XENVER_guest_handle`: fills the domain's handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// `XENVER_commandline`: the hypervisor command line (privileged).
pub const XENVER_COMMANDLINE: u32 = 9;
/// `XENVER_build_id`: the hypervisor build id (privileged).
pub const XENVER_BUILD_ID: u32 = 10;

/// `XEN_EXTRAVERSION_LEN`: size of the extraversion buffer.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `XEN_CAPABILITIES_INFO_LEN`: size of the capabilities buffer.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_CHANGESET_INFO_LEN`: size of the changeset buffer.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

/// `struct xen_compile_info`: NUL-padded strings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    /// The compiler.
    pub compiler: [u8; 64],
    /// Who built it.
    pub compile_by: [u8; 16],
    /// Where it was built.
    pub compile_domain: [u8; 32],
    /// When it was built.
    pub compile_date: [u8; 32],
}

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// Which 32-bit word of flags to return (below [`XENFEAT_NR_SUBMAPS`]).
    pub submap_idx: u32,
    /// The flags: bit `n` is feature `32 * submap_idx + n`.
    pub submap: u32,
}

const _: () = assert!(core::mem::size_of::<XenCompileInfo>() == 144);
const _: () = assert!(core::mem::size_of::<XenFeatureInfo>() == 8);

/// `XENFEAT_writable_page_tables` (PV).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables` (PV).
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: the guest sees guest frame numbers only.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel` (PV).
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb` (PV).
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad` (PV).
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist` (PV).
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`: grant mappings may use the available PTE bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`: events can be delivered on a vector
/// ([`crate::hvm::callback_via_vector`]).
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`: the PV clock is safe to use in HVM guests.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`: physical IRQs can be routed over event channels.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`: this domain is dom0.
pub const XENFEAT_DOM0: u32 = 11;
/// `XENFEAT_memory_op_vnode_supported`: `XENMEMF_vnode` is supported.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`: Arm SMCCC is supported.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`: the RSDP may be anywhere (PVH dom0).
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// `XENFEAT_not_direct_mapped`: dom0 is not 1:1 mapped (Arm).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// `XENFEAT_direct_mapped`: dom0 is 1:1 mapped (Arm).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: number of 32-bit feature words.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
