//! ABI conformance: every type and constant of `xen-abi` against Xen's own C
//! headers (Debian's `libxen-dev`, /usr/include/xen).
//!
//! One table lists each item once; the macros below turn every row into both a C
//! expression (`sizeof`, `_Alignof`, `offsetof`, the constant, a macro applied to
//! sample inputs) and the matching Rust value. The test writes a C program that
//! prints every expression, compiles it with the system C compiler for x86_64,
//! runs it and compares row by row. A coverage test checks that every public item
//! of the crate is in the table (or on a short, explained list of non-ABI items).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use xen_abi::blkif::*;
use xen_abi::console::*;
use xen_abi::event_channel::*;
use xen_abi::grant_table::*;
use xen_abi::hvm::*;
use xen_abi::hypercall::*;
use xen_abi::memory::*;
use xen_abi::netif::*;
use xen_abi::ring::{
    self, BackRing, FrontRing, HeapRingMemory, RingEntry, RingIdx, SRING_HEADER_SIZE, SringHeader,
};
use xen_abi::sched::*;
use xen_abi::shared_info::*;
use xen_abi::vcpu::*;
use xen_abi::xen_version::*;
use xen_abi::xenbus::XenbusState;
use xen_abi::xs_wire::*;
use xen_abi::{XEN_INTERFACE_VERSION, XEN_PAGE_SIZE};

/// Where Xen's headers are.
const XEN_INCLUDE: &str = "/usr/include/xen";

/// A value on either side of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Int(i128),
    Str(String),
}

/// Rust values a row can hold.
trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i128::from(*self))
            }
        }
    )*};
}
int_to_value!(u8, u16, u32, u64, i8, i16, i32, i64, bool);

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i128::try_from(*self).expect("usize fits in i128"))
    }
}

impl ToValue for &str {
    fn to_value(&self) -> Value {
        Value::Str((*self).to_owned())
    }
}

/// Integer types' signedness, for typedef rows.
trait Signedness {
    const SIGNED: bool;
}
macro_rules! signedness {
    ($($t:ty: $s:expr),*) => {$( impl Signedness for $t { const SIGNED: bool = $s; } )*};
}
signedness!(u8: false, u16: false, u32: false, u64: false, i8: true, i16: true, i32: true, i64: true);

/// One comparison.
#[derive(Clone, Debug)]
struct Row {
    /// What is compared, named after the Rust item.
    label: String,
    /// A C expression of integer type, or of type `const char *` if `rust` is a
    /// string.
    c_expr: String,
    rust: Value,
}

/// What a row checks, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Type,
    Field,
    Constant,
    Ring,
    Function,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<(Kind, Row)>,
    /// Rust items the rows cover.
    covered: BTreeSet<String>,
    /// C declarations needed by function rows.
    c_prelude: String,
}

impl Table {
    fn push(&mut self, kind: Kind, label: String, c_expr: String, rust: Value) {
        self.rows.push((
            kind,
            Row {
                label,
                c_expr,
                rust,
            },
        ));
    }

    fn cover(&mut self, item: &str) {
        self.covered.insert(item.to_owned());
    }

    fn constant(&mut self, rust_name: &str, c_expr: &str, value: &dyn ToValue) {
        self.cover(rust_name);
        self.push(
            Kind::Constant,
            rust_name.to_owned(),
            format!("({c_expr})"),
            value.to_value(),
        );
    }

    fn layout(&mut self, rust: &str, c_type: &str, size: usize, align: usize) {
        self.cover(rust);
        self.push(
            Kind::Type,
            format!("sizeof {rust}"),
            format!("sizeof({c_type})"),
            size.to_value(),
        );
        self.push(
            Kind::Type,
            format!("alignof {rust}"),
            format!("_Alignof({c_type})"),
            align.to_value(),
        );
    }

    fn field(
        &mut self,
        rust: &str,
        field: &str,
        c_type: &str,
        c_field: &str,
        offset: usize,
        size: usize,
    ) {
        let c_field = c_field.trim_start_matches("r#");
        self.push(
            Kind::Field,
            format!("offset {rust}.{field}"),
            format!("offsetof({c_type}, {c_field})"),
            offset.to_value(),
        );
        self.push(
            Kind::Field,
            format!("size {rust}.{field}"),
            format!("sizeof(((({c_type} *)0)->{c_field}))"),
            size.to_value(),
        );
    }

    fn typedef(
        &mut self,
        rust: &str,
        c_type: &str,
        size: usize,
        align: usize,
        signed: Option<bool>,
    ) {
        self.layout(rust, c_type, size, align);
        if let Some(signed) = signed {
            self.push(
                Kind::Type,
                format!("signed {rust}"),
                format!("(({c_type})-1 < 0)"),
                signed.to_value(),
            );
        }
    }

    fn function(&mut self, rust_name: &str, label: String, c_expr: String, value: &dyn ToValue) {
        self.cover(rust_name);
        self.push(Kind::Function, label, c_expr, value.to_value());
    }
}

/// The size of a field, from a projection (works for any field name).
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The C name of a constant: the Rust name unless given.
macro_rules! c_name {
    ($n:ident) => {
        stringify!($n)
    };
    ($n:ident, $c:literal) => {
        $c
    };
}

/// Constant rows: `NAME` (same name in C) or `NAME = "c expression"`.
macro_rules! consts {
    ($t:ident; $($name:ident $(= $c:literal)?),* $(,)?) => {$(
        $t.constant(stringify!($name), c_name!($name $(, $c)?), &$name);
    )*};
}

/// A field row: `field` (same name in C), `field => "c.path"`, or `field => _`
/// for Rust-only explicit padding (covered by the size row).
macro_rules! field {
    ($t:ident, $rust:ident, $c:expr, $field:ident) => {
        field!($t, $rust, $c, $field => (stringify!($field)))
    };
    ($t:ident, $rust:ident, $c:expr, $field:ident => _) => {};
    ($t:ident, $rust:ident, $c:expr, $field:ident => $cf:expr) => {
        $t.field(
            stringify!($rust),
            stringify!($field),
            $c,
            $cf,
            offset_of!($rust, $field),
            field_size(|v: &$rust| &v.$field),
        )
    };
}

/// Layout rows of a struct: size, alignment, and offset and size of every field.
/// The destructuring pattern makes the build fail if a Rust field is not listed.
macro_rules! layout {
    ($t:ident; $rust:ident = $c:expr, { $($field:ident $(=> $cf:tt)?),* $(,)? }) => {{
        $t.layout(stringify!($rust), $c, size_of::<$rust>(), align_of::<$rust>());
        fields!($t; $rust = $c, { $($field $(=> $cf)?),* });
    }};
}

/// Field rows only (for a Rust type that is a prefix of a C type).
macro_rules! fields {
    ($t:ident; $rust:ident = $c:expr, { $($field:ident $(=> $cf:tt)?),* $(,)? }) => {{
        #[allow(dead_code)]
        fn every_field_is_listed(v: &$rust) {
            let $rust { $($field: _),* } = v;
        }
        $t.cover(stringify!($rust));
        $( field!($t, $rust, $c, $field $(=> $cf)?); )*
    }};
}

/// Typedef rows: size, alignment and signedness.
macro_rules! typedefs {
    ($t:ident; $($rust:ident = $c:literal),* $(,)?) => {$(
        $t.typedef(
            stringify!($rust),
            $c,
            size_of::<$rust>(),
            align_of::<$rust>(),
            Some(<$rust as Signedness>::SIGNED),
        );
    )*};
}

/// Rows of one `DEFINE_RING_TYPES(name, req, rsp)`: the slot union, the header
/// of `struct name_sring`, and `__CONST_RING_SIZE` for 1..32 pages against the
/// size of real front and back rings built on that many pages.
macro_rules! ring {
    ($t:ident; $name:literal, $front:ident, $back:ident, $req:ident, $rsp:ident) => {{
        let sring = concat!("struct ", $name, "_sring");
        let entry = concat!("union ", $name, "_sring_entry");
        $t.cover(stringify!($front));
        $t.cover(stringify!($back));
        $t.cover("entry_size");
        $t.cover("ring_size");
        $t.cover("XEN_PAGE_SIZE");
        $t.push(
            Kind::Ring,
            format!("sizeof {} slot", $name),
            format!("sizeof({entry})"),
            ring::entry_size::<$req, $rsp>().to_value(),
        );
        $t.push(
            Kind::Ring,
            format!("alignof {} slot", $name),
            format!("_Alignof({entry})"),
            align_of::<$req>().max(align_of::<$rsp>()).to_value(),
        );
        $t.push(
            Kind::Ring,
            format!("offsetof {} ring", $name),
            format!("offsetof({sring}, ring)"),
            SRING_HEADER_SIZE.to_value(),
        );
        // The header is the sring up to `ring` (checked above), field by field.
        fields!($t; SringHeader = sring, {
            req_prod, req_event, rsp_prod, rsp_event, pvt => "pvt", pad => "__pad",
        });
        for pages in [1_usize, 2, 4, 8, 16, 32] {
            let front = $front::new(HeapRingMemory::new(pages).expect("ring memory"))
                .expect("front ring");
            let back = $back::new(HeapRingMemory::new(pages).expect("ring memory"))
                .expect("back ring");
            let bytes = pages * XEN_PAGE_SIZE;
            $t.push(
                Kind::Ring,
                format!("{} front ring size, {pages} pages", $name),
                format!("__CONST_RING_SIZE({}, 4096 * {pages})", $name),
                front.size().to_value(),
            );
            $t.push(
                Kind::Ring,
                format!("{} back ring size, {pages} pages", $name),
                format!("__CONST_RING_SIZE({}, 4096 * {pages})", $name),
                back.size().to_value(),
            );
            $t.push(
                Kind::Ring,
                format!("{} ring_size(), {pages} pages", $name),
                format!("__CONST_RING_SIZE({}, 4096 * {pages})", $name),
                ring::ring_size(bytes, ring::entry_size::<$req, $rsp>()).to_value(),
            );
        }
    }};
}

/// The key and inputs the Toeplitz rows hash (Microsoft's RSS verification key).
const TOEPLITZ_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];
const TOEPLITZ_DATA: [u8; 36] = [
    0x3f, 0xfe, 0x19, 0x00, 0x45, 0x45, 0x00, 0x03, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf,
    0x0a, 0xea, 0x06, 0xe6,
];

fn c_array(name: &str, bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(|b| format!("{b:#04x}")).collect();
    format!(
        "static const uint8_t {name}[{}] = {{ {} }};\n",
        bytes.len(),
        items.join(", ")
    )
}

/// The table: every item of the crate, once.
#[allow(clippy::too_many_lines)]
fn table() -> Table {
    let mut t = Table::default();

    // lib.rs
    consts!(t; XEN_INTERFACE_VERSION = "__XEN_LATEST_INTERFACE_VERSION__");

    // hypercall (xen.h)
    typedefs!(t; DomId = "domid_t", XenPfn = "xen_pfn_t", XenUlong = "xen_ulong_t");
    t.typedef(
        "GuestHandle",
        "XEN_GUEST_HANDLE(xen_pfn_t)",
        size_of::<GuestHandle<XenPfn>>(),
        align_of::<GuestHandle<XenPfn>>(),
        None,
    );
    consts!(t;
        HYPERVISOR_SET_TRAP_TABLE = "__HYPERVISOR_set_trap_table",
        HYPERVISOR_MMU_UPDATE = "__HYPERVISOR_mmu_update",
        HYPERVISOR_SET_TIMER_OP = "__HYPERVISOR_set_timer_op",
        HYPERVISOR_PLATFORM_OP = "__HYPERVISOR_platform_op",
        HYPERVISOR_MEMORY_OP = "__HYPERVISOR_memory_op",
        HYPERVISOR_MULTICALL = "__HYPERVISOR_multicall",
        HYPERVISOR_XEN_VERSION = "__HYPERVISOR_xen_version",
        HYPERVISOR_CONSOLE_IO = "__HYPERVISOR_console_io",
        HYPERVISOR_GRANT_TABLE_OP = "__HYPERVISOR_grant_table_op",
        HYPERVISOR_VM_ASSIST = "__HYPERVISOR_vm_assist",
        HYPERVISOR_VCPU_OP = "__HYPERVISOR_vcpu_op",
        HYPERVISOR_MMUEXT_OP = "__HYPERVISOR_mmuext_op",
        HYPERVISOR_XSM_OP = "__HYPERVISOR_xsm_op",
        HYPERVISOR_NMI_OP = "__HYPERVISOR_nmi_op",
        HYPERVISOR_SCHED_OP = "__HYPERVISOR_sched_op",
        HYPERVISOR_CALLBACK_OP = "__HYPERVISOR_callback_op",
        HYPERVISOR_EVENT_CHANNEL_OP = "__HYPERVISOR_event_channel_op",
        HYPERVISOR_PHYSDEV_OP = "__HYPERVISOR_physdev_op",
        HYPERVISOR_HVM_OP = "__HYPERVISOR_hvm_op",
        HYPERVISOR_SYSCTL = "__HYPERVISOR_sysctl",
        HYPERVISOR_DOMCTL = "__HYPERVISOR_domctl",
        HYPERVISOR_ARGO_OP = "__HYPERVISOR_argo_op",
        HYPERVISOR_DM_OP = "__HYPERVISOR_dm_op",
        HYPERVISOR_HYPFS_OP = "__HYPERVISOR_hypfs_op",
        HYPERVISOR_ARCH_0 = "__HYPERVISOR_arch_0",
        CONSOLEIO_WRITE = "CONSOLEIO_write",
        CONSOLEIO_READ = "CONSOLEIO_read",
        VIRQ_TIMER, VIRQ_DEBUG, VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TBUF, VIRQ_DEBUGGER,
        VIRQ_XENOPROF, VIRQ_CON_RING, VIRQ_PCPU_STATE, VIRQ_MEM_EVENT, VIRQ_ARGO, VIRQ_ENOMEM,
        VIRQ_XENPMU, NR_VIRQS,
        DOMID_FIRST_RESERVED, DOMID_SELF, DOMID_IO, DOMID_XEN, DOMID_COW, DOMID_INVALID,
        DOMID_IDLE, DOMID_MASK,
    );

    // memory.h
    consts!(t;
        XENMEM_INCREASE_RESERVATION = "XENMEM_increase_reservation",
        XENMEM_DECREASE_RESERVATION = "XENMEM_decrease_reservation",
        XENMEM_MAXIMUM_RAM_PAGE = "XENMEM_maximum_ram_page",
        XENMEM_CURRENT_RESERVATION = "XENMEM_current_reservation",
        XENMEM_MAXIMUM_RESERVATION = "XENMEM_maximum_reservation",
        XENMEM_POPULATE_PHYSMAP = "XENMEM_populate_physmap",
        XENMEM_ADD_TO_PHYSMAP = "XENMEM_add_to_physmap",
        XENMEM_MAXIMUM_GPFN = "XENMEM_maximum_gpfn",
        XENMEM_REMOVE_FROM_PHYSMAP = "XENMEM_remove_from_physmap",
        XENMEMF_POPULATE_ON_DEMAND = "XENMEMF_populate_on_demand",
        XENMEMF_EXACT_NODE_REQUEST = "XENMEMF_exact_node_request",
        XENMEMF_VNODE = "XENMEMF_vnode",
        XENMAPSPACE_SHARED_INFO = "XENMAPSPACE_shared_info",
        XENMAPSPACE_GRANT_TABLE = "XENMAPSPACE_grant_table",
        XENMAPSPACE_GMFN = "XENMAPSPACE_gmfn",
        XENMAPSPACE_GMFN_RANGE = "XENMAPSPACE_gmfn_range",
        XENMAPSPACE_GMFN_FOREIGN = "XENMAPSPACE_gmfn_foreign",
        XENMAPSPACE_DEV_MMIO = "XENMAPSPACE_dev_mmio",
        XENMAPIDX_GRANT_TABLE_STATUS = "XENMAPIDX_grant_table_status",
    );
    layout!(t; XenMemoryReservation = "struct xen_memory_reservation", {
        extent_start, nr_extents, extent_order, mem_flags, domid,
    });
    layout!(t; XenAddToPhysmap = "struct xen_add_to_physmap", { domid, size, space, idx, gpfn });
    layout!(t; XenRemoveFromPhysmap = "struct xen_remove_from_physmap", { domid, gpfn });

    // hvm/hvm_op.h, hvm/params.h
    consts!(t;
        HVMOP_SET_PARAM = "HVMOP_set_param",
        HVMOP_GET_PARAM = "HVMOP_get_param",
        HVMOP_PAGETABLE_DYING = "HVMOP_pagetable_dying",
        HVMOP_GET_TIME = "HVMOP_get_time",
        HVMOP_SET_EVTCHN_UPCALL_VECTOR = "HVMOP_set_evtchn_upcall_vector",
        HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN,
        HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN, HVM_NR_PARAMS,
        HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, HVM_PARAM_CALLBACK_TYPE_GSI,
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX, HVM_PARAM_CALLBACK_TYPE_VECTOR,
    );
    layout!(t; XenHvmParam = "struct xen_hvm_param", { domid, pad, index, value });
    layout!(t; XenHvmEvtchnUpcallVector = "struct xen_hvm_evtchn_upcall_vector", {
        vcpu, vector,
    });
    // The encodings, from the layout params.h documents for HVM_PARAM_CALLBACK_IRQ.
    for gsi in [1_u32, 28, 0x00ff_ffff] {
        t.function(
            "callback_via_gsi",
            format!("callback_via_gsi({gsi})"),
            format!("((uint64_t)HVM_PARAM_CALLBACK_TYPE_GSI << 56) | {gsi}"),
            &callback_via_gsi(gsi),
        );
    }
    for (domain, bus, devfn, intx) in [(0_u16, 0_u8, 0x18_u8, 0_u8), (0xabcd, 0x12, 0xff, 3)] {
        t.function(
            "callback_via_pci_intx",
            format!("callback_via_pci_intx({domain}, {bus}, {devfn}, {intx})"),
            format!(
                "((uint64_t)HVM_PARAM_CALLBACK_TYPE_PCI_INTX << 56) | ((uint64_t){domain} << 32) \
                 | ({bus} << 16) | ({devfn} << 8) | {intx}"
            ),
            &callback_via_pci_intx(domain, bus, devfn, intx),
        );
    }
    for vector in [0x20_u8, 0xf3] {
        t.function(
            "callback_via_vector",
            format!("callback_via_vector({vector})"),
            format!("((uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | {vector}"),
            &callback_via_vector(vector),
        );
    }

    // sched.h
    consts!(t;
        SCHEDOP_YIELD = "SCHEDOP_yield",
        SCHEDOP_BLOCK = "SCHEDOP_block",
        SCHEDOP_SHUTDOWN = "SCHEDOP_shutdown",
        SCHEDOP_POLL = "SCHEDOP_poll",
        SCHEDOP_REMOTE_SHUTDOWN = "SCHEDOP_remote_shutdown",
        SCHEDOP_SHUTDOWN_CODE = "SCHEDOP_shutdown_code",
        SCHEDOP_WATCHDOG = "SCHEDOP_watchdog",
        SCHEDOP_PIN_OVERRIDE = "SCHEDOP_pin_override",
        SHUTDOWN_POWEROFF = "SHUTDOWN_poweroff",
        SHUTDOWN_REBOOT = "SHUTDOWN_reboot",
        SHUTDOWN_SUSPEND = "SHUTDOWN_suspend",
        SHUTDOWN_CRASH = "SHUTDOWN_crash",
        SHUTDOWN_WATCHDOG = "SHUTDOWN_watchdog",
        SHUTDOWN_SOFT_RESET = "SHUTDOWN_soft_reset",
        SHUTDOWN_MAX,
    );
    layout!(t; SchedShutdown = "struct sched_shutdown", { reason });
    layout!(t; SchedPoll = "struct sched_poll", { ports, nr_ports, timeout });
    layout!(t; SchedRemoteShutdown = "struct sched_remote_shutdown", { domain_id, reason });
    layout!(t; SchedWatchdog = "struct sched_watchdog", { id, timeout });

    // vcpu.h
    consts!(t;
        VCPUOP_UP = "VCPUOP_up",
        VCPUOP_DOWN = "VCPUOP_down",
        VCPUOP_IS_UP = "VCPUOP_is_up",
        VCPUOP_STOP_PERIODIC_TIMER = "VCPUOP_stop_periodic_timer",
        VCPUOP_SET_SINGLESHOT_TIMER = "VCPUOP_set_singleshot_timer",
        VCPUOP_STOP_SINGLESHOT_TIMER = "VCPUOP_stop_singleshot_timer",
        VCPUOP_REGISTER_VCPU_INFO = "VCPUOP_register_vcpu_info",
        VCPUOP_SEND_NMI = "VCPUOP_send_nmi",
        VCPU_SSHOTTMR_FUTURE = "VCPU_SSHOTTMR_future",
    );
    layout!(t; VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer", { timeout_abs_ns, flags });
    layout!(t; VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info", { mfn, offset, rsvd });

    // version.h, features.h
    consts!(t;
        XENVER_VERSION = "XENVER_version",
        XENVER_EXTRAVERSION = "XENVER_extraversion",
        XENVER_COMPILE_INFO = "XENVER_compile_info",
        XENVER_CAPABILITIES = "XENVER_capabilities",
        XENVER_CHANGESET = "XENVER_changeset",
        XENVER_PLATFORM_PARAMETERS = "XENVER_platform_parameters",
        XENVER_GET_FEATURES = "XENVER_get_features",
        XENVER_PAGESIZE = "XENVER_pagesize",
        XENVER_GUEST_HANDLE = "XENVER_guest_handle",
        XENVER_COMMANDLINE = "XENVER_commandline",
        XENVER_BUILD_ID = "XENVER_build_id",
        XEN_EXTRAVERSION_LEN, XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN,
        XENFEAT_WRITABLE_PAGE_TABLES = "XENFEAT_writable_page_tables",
        XENFEAT_WRITABLE_DESCRIPTOR_TABLES = "XENFEAT_writable_descriptor_tables",
        XENFEAT_AUTO_TRANSLATED_PHYSMAP = "XENFEAT_auto_translated_physmap",
        XENFEAT_SUPERVISOR_MODE_KERNEL = "XENFEAT_supervisor_mode_kernel",
        XENFEAT_PAE_PGDIR_ABOVE_4GB = "XENFEAT_pae_pgdir_above_4gb",
        XENFEAT_MMU_PT_UPDATE_PRESERVE_AD = "XENFEAT_mmu_pt_update_preserve_ad",
        XENFEAT_HIGHMEM_ASSIST = "XENFEAT_highmem_assist",
        XENFEAT_GNTTAB_MAP_AVAIL_BITS = "XENFEAT_gnttab_map_avail_bits",
        XENFEAT_HVM_CALLBACK_VECTOR = "XENFEAT_hvm_callback_vector",
        XENFEAT_HVM_SAFE_PVCLOCK = "XENFEAT_hvm_safe_pvclock",
        XENFEAT_HVM_PIRQS = "XENFEAT_hvm_pirqs",
        XENFEAT_DOM0 = "XENFEAT_dom0",
        XENFEAT_MEMORY_OP_VNODE_SUPPORTED = "XENFEAT_memory_op_vnode_supported",
        XENFEAT_ARM_SMCCC_SUPPORTED = "XENFEAT_ARM_SMCCC_supported",
        XENFEAT_LINUX_RSDP_UNRESTRICTED = "XENFEAT_linux_rsdp_unrestricted",
        XENFEAT_NOT_DIRECT_MAPPED = "XENFEAT_not_direct_mapped",
        XENFEAT_DIRECT_MAPPED = "XENFEAT_direct_mapped",
        XENFEAT_NR_SUBMAPS,
    );
    layout!(t; XenCompileInfo = "struct xen_compile_info", {
        compiler, compile_by, compile_domain, compile_date,
    });
    layout!(t; XenFeatureInfo = "struct xen_feature_info", { submap_idx, submap });

    // xen.h / arch-x86: shared info
    consts!(t;
        XEN_LEGACY_MAX_VCPUS, XEN_PVCLOCK_TSC_STABLE_BIT, XEN_PVCLOCK_GUEST_STOPPED,
        EVTCHN_2L_WORDS = "sizeof(xen_ulong_t) * 8",
    );
    layout!(t; VcpuTimeInfo = "struct vcpu_time_info", {
        version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1,
    });
    layout!(t; ArchVcpuInfo = "struct arch_vcpu_info", { cr2, pad });
    layout!(t; VcpuInfo = "struct vcpu_info", {
        evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time,
    });
    layout!(t; ArchSharedInfo = "struct arch_shared_info", {
        max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation,
    });
    layout!(t; SharedInfo = "struct shared_info", {
        vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch,
    });

    // event_channel.h
    typedefs!(t; EvtchnPort = "evtchn_port_t", EventWord = "event_word_t");
    consts!(t;
        EVTCHNOP_BIND_INTERDOMAIN = "EVTCHNOP_bind_interdomain",
        EVTCHNOP_BIND_VIRQ = "EVTCHNOP_bind_virq",
        EVTCHNOP_BIND_PIRQ = "EVTCHNOP_bind_pirq",
        EVTCHNOP_CLOSE = "EVTCHNOP_close",
        EVTCHNOP_SEND = "EVTCHNOP_send",
        EVTCHNOP_STATUS = "EVTCHNOP_status",
        EVTCHNOP_ALLOC_UNBOUND = "EVTCHNOP_alloc_unbound",
        EVTCHNOP_BIND_IPI = "EVTCHNOP_bind_ipi",
        EVTCHNOP_BIND_VCPU = "EVTCHNOP_bind_vcpu",
        EVTCHNOP_UNMASK = "EVTCHNOP_unmask",
        EVTCHNOP_RESET = "EVTCHNOP_reset",
        EVTCHNOP_INIT_CONTROL = "EVTCHNOP_init_control",
        EVTCHNOP_EXPAND_ARRAY = "EVTCHNOP_expand_array",
        EVTCHNOP_SET_PRIORITY = "EVTCHNOP_set_priority",
        EVTCHNSTAT_CLOSED = "EVTCHNSTAT_closed",
        EVTCHNSTAT_UNBOUND = "EVTCHNSTAT_unbound",
        EVTCHNSTAT_INTERDOMAIN = "EVTCHNSTAT_interdomain",
        EVTCHNSTAT_PIRQ = "EVTCHNSTAT_pirq",
        EVTCHNSTAT_VIRQ = "EVTCHNSTAT_virq",
        EVTCHNSTAT_IPI = "EVTCHNSTAT_ipi",
        EVTCHN_2L_NR_CHANNELS,
        EVTCHN_FIFO_PRIORITY_MAX, EVTCHN_FIFO_PRIORITY_DEFAULT, EVTCHN_FIFO_PRIORITY_MIN,
        EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_PENDING, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_LINKED,
        EVTCHN_FIFO_BUSY, EVTCHN_FIFO_LINK_BITS, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_NR_CHANNELS,
    );
    layout!(t; EvtchnAllocUnbound = "struct evtchn_alloc_unbound", { dom, remote_dom, port });
    layout!(t; EvtchnBindInterdomain = "struct evtchn_bind_interdomain", {
        remote_dom, remote_port, local_port,
    });
    layout!(t; EvtchnBindVirq = "struct evtchn_bind_virq", { virq, vcpu, port });
    layout!(t; EvtchnClose = "struct evtchn_close", { port });
    layout!(t; EvtchnSend = "struct evtchn_send", { port });
    layout!(t; EvtchnStatus = "struct evtchn_status", { dom, port, status, vcpu, u });
    // The union members the accessors read.
    let status_union = "__typeof__(((struct evtchn_status *)0)->u)";
    for (label, c_field, rust_offset) in [
        (
            "EvtchnStatus::remote_dom (u.unbound.dom)",
            "unbound.dom",
            0_usize,
        ),
        (
            "EvtchnStatus::remote_dom (u.interdomain.dom)",
            "interdomain.dom",
            0,
        ),
        (
            "EvtchnStatus::remote_port (u.interdomain.port)",
            "interdomain.port",
            4,
        ),
        ("EvtchnStatus::irq (u.virq)", "virq", 0),
        ("EvtchnStatus::irq (u.pirq)", "pirq", 0),
    ] {
        t.push(
            Kind::Field,
            label.to_owned(),
            format!("offsetof({status_union}, {c_field})"),
            rust_offset.to_value(),
        );
    }
    layout!(t; EvtchnBindVcpu = "struct evtchn_bind_vcpu", { port, vcpu });
    layout!(t; EvtchnUnmask = "struct evtchn_unmask", { port });
    layout!(t; EvtchnInitControl = "struct evtchn_init_control", {
        control_gfn, offset, vcpu, link_bits, pad => "_pad",
    });
    layout!(t; EvtchnExpandArray = "struct evtchn_expand_array", { array_gfn });
    layout!(t; EvtchnSetPriority = "struct evtchn_set_priority", { port, priority });
    layout!(t; EvtchnFifoControlBlock = "struct evtchn_fifo_control_block", {
        ready, rsvd => "_rsvd", head,
    });

    // grant_table.h
    typedefs!(t; GrantRef = "grant_ref_t", GrantHandle = "grant_handle_t");
    consts!(t;
        GNTTAB_NR_RESERVED_ENTRIES, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE,
        GTF_INVALID = "GTF_invalid",
        GTF_PERMIT_ACCESS = "GTF_permit_access",
        GTF_ACCEPT_TRANSFER = "GTF_accept_transfer",
        GTF_TRANSITIVE = "GTF_transitive",
        GTF_TYPE_MASK = "GTF_type_mask",
        GTF_READONLY = "GTF_readonly",
        GTF_READING = "GTF_reading",
        GTF_WRITING = "GTF_writing",
        GTF_PWT, GTF_PCD, GTF_PAT,
        GTF_SUB_PAGE = "GTF_sub_page",
        GTF_TRANSFER_COMMITTED = "GTF_transfer_committed",
        GTF_TRANSFER_COMPLETED = "GTF_transfer_completed",
        GNTTABOP_MAP_GRANT_REF = "GNTTABOP_map_grant_ref",
        GNTTABOP_UNMAP_GRANT_REF = "GNTTABOP_unmap_grant_ref",
        GNTTABOP_SETUP_TABLE = "GNTTABOP_setup_table",
        GNTTABOP_DUMP_TABLE = "GNTTABOP_dump_table",
        GNTTABOP_TRANSFER = "GNTTABOP_transfer",
        GNTTABOP_COPY = "GNTTABOP_copy",
        GNTTABOP_QUERY_SIZE = "GNTTABOP_query_size",
        GNTTABOP_UNMAP_AND_REPLACE = "GNTTABOP_unmap_and_replace",
        GNTTABOP_SET_VERSION = "GNTTABOP_set_version",
        GNTTABOP_GET_STATUS_FRAMES = "GNTTABOP_get_status_frames",
        GNTTABOP_GET_VERSION = "GNTTABOP_get_version",
        GNTMAP_DEVICE_MAP = "GNTMAP_device_map",
        GNTMAP_HOST_MAP = "GNTMAP_host_map",
        GNTMAP_READONLY = "GNTMAP_readonly",
        GNTMAP_APPLICATION_MAP = "GNTMAP_application_map",
        GNTMAP_CONTAINS_PTE = "GNTMAP_contains_pte",
        GNTCOPY_SOURCE_GREF = "GNTCOPY_source_gref",
        GNTCOPY_DEST_GREF = "GNTCOPY_dest_gref",
        GNTST_OKAY = "GNTST_okay",
        GNTST_GENERAL_ERROR = "GNTST_general_error",
        GNTST_BAD_DOMAIN = "GNTST_bad_domain",
        GNTST_BAD_GNTREF = "GNTST_bad_gntref",
        GNTST_BAD_HANDLE = "GNTST_bad_handle",
        GNTST_BAD_VIRT_ADDR = "GNTST_bad_virt_addr",
        GNTST_BAD_DEV_ADDR = "GNTST_bad_dev_addr",
        GNTST_NO_DEVICE_SPACE = "GNTST_no_device_space",
        GNTST_PERMISSION_DENIED = "GNTST_permission_denied",
        GNTST_BAD_PAGE = "GNTST_bad_page",
        GNTST_BAD_COPY_ARG = "GNTST_bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG = "GNTST_address_too_big",
        GNTST_EAGAIN = "GNTST_eagain",
        GNTST_NO_SPACE = "GNTST_no_space",
    );
    layout!(t; GrantEntryV1 = "struct grant_entry_v1", { flags, domid, frame });
    layout!(t; GnttabMapGrantRef = "struct gnttab_map_grant_ref", {
        host_addr, flags, r#ref, dom, status, handle, dev_bus_addr,
    });
    layout!(t; GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref", {
        host_addr, dev_bus_addr, handle, status,
    });
    layout!(t; GnttabSetupTable = "struct gnttab_setup_table", {
        dom, nr_frames, status, frame_list,
    });
    layout!(t; GnttabCopyPtr = "struct gnttab_copy_ptr", { u, domid, offset });
    t.push(
        Kind::Field,
        "GnttabCopyPtr::gref (u.ref)".to_owned(),
        "offsetof(struct gnttab_copy_ptr, u.ref)".to_owned(),
        0_usize.to_value(),
    );
    t.push(
        Kind::Field,
        "GnttabCopyPtr::gmfn (u.gmfn)".to_owned(),
        "offsetof(struct gnttab_copy_ptr, u.gmfn)".to_owned(),
        0_usize.to_value(),
    );
    layout!(t; GnttabCopy = "struct gnttab_copy", { source, dest, len, flags, status });
    layout!(t; GnttabQuerySize = "struct gnttab_query_size", {
        dom, nr_frames, max_nr_frames, status,
    });
    layout!(t; GnttabSetVersion = "struct gnttab_set_version", { version });

    // io/ring.h
    typedefs!(t; RingIdx = "RING_IDX");
    consts!(t; SRING_HEADER_SIZE = "offsetof(struct blkif_sring, ring)");
    for x in [
        0_usize,
        1,
        2,
        3,
        36,
        63,
        64,
        65,
        252,
        0x8000_0001,
        0xffff_ffff,
    ] {
        t.function(
            "round_down_pow2",
            format!("round_down_pow2({x})"),
            format!("__RD32({x}u)"),
            &ring::round_down_pow2(x),
        );
    }

    // io/blkif.h
    typedefs!(t; BlkifVdev = "blkif_vdev_t", BlkifSector = "blkif_sector_t");
    consts!(t;
        BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE,
        BLKIF_OP_RESERVED_1, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT,
        BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
        BLKIF_SEGMENTS_PER_INDIRECT_PAGE = "4096 / sizeof(struct blkif_request_segment)",
        BLKIF_DISCARD_SECURE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
        VDISK_CDROM, VDISK_REMOVABLE, VDISK_READONLY,
        BLKIF_RING_ENTRY_SIZE = "sizeof(union blkif_sring_entry)",
    );
    layout!(t; BlkifRequestSegment = "struct blkif_request_segment", {
        gref, first_sect, last_sect, pad => _,
    });
    layout!(t; BlkifRequest = "struct blkif_request", {
        operation, nr_segments, handle, pad => _, id, sector_number, seg,
    });
    layout!(t; BlkifRequestDiscard = "struct blkif_request_discard", {
        operation, flag, handle, pad => _, id, sector_number, nr_sectors,
    });
    layout!(t; BlkifRequestIndirect = "struct blkif_request_indirect", {
        operation, indirect_op, nr_segments, pad1 => _, id, sector_number, handle, pad2 => _,
        indirect_grefs, pad3 => _,
    });
    layout!(t; BlkifResponse = "struct blkif_response", {
        id, operation, pad1 => _, status, pad2 => _,
    });
    ring!(t; "blkif", BlkifFrontRing, BlkifBackRing, BlkifRequest, BlkifResponse);
    for pages in [1_usize, 4, 16] {
        t.function(
            "blkif_ring_size",
            format!("blkif_ring_size({pages})"),
            format!("__CONST_RING_SIZE(blkif, 4096 * {pages})"),
            &blkif_ring_size(pages),
        );
    }

    // io/netif.h
    consts!(t;
        XEN_NETIF_NR_SLOTS_MIN,
        XEN_NETIF_CTRL_HASH_TYPE_IPV4, XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP,
        XEN_NETIF_CTRL_HASH_TYPE_IPV6, XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP,
        XEN_NETIF_CTRL_HASH_ALGORITHM_NONE, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ,
        XEN_NETIF_CTRL_TYPE_INVALID, XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS,
        XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
        XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
        XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
        XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING,
        XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING,
        XEN_NETIF_CTRL_STATUS_SUCCESS, XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
        XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER, XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
        XEN_NETIF_CTRLF_GREF_READONLY = "XEN_NETIF_CTRLF_GREF_readonly",
        NETTXF_CSUM_BLANK = "NETTXF_csum_blank",
        NETTXF_DATA_VALIDATED = "NETTXF_data_validated",
        NETTXF_MORE_DATA = "NETTXF_more_data",
        NETTXF_EXTRA_INFO = "NETTXF_extra_info",
        XEN_NETIF_MAX_TX_SIZE,
        XEN_NETIF_EXTRA_TYPE_NONE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
        XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_TYPE_MAX,
        XEN_NETIF_EXTRA_FLAG_MORE,
        XEN_NETIF_GSO_TYPE_NONE, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
        NETRXF_DATA_VALIDATED = "NETRXF_data_validated",
        NETRXF_CSUM_BLANK = "NETRXF_csum_blank",
        NETRXF_MORE_DATA = "NETRXF_more_data",
        NETRXF_EXTRA_INFO = "NETRXF_extra_info",
        NETRXF_GSO_PREFIX = "NETRXF_gso_prefix",
        NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETIF_RSP_NULL,
        NETIF_TX_RING_ENTRY_SIZE = "sizeof(union netif_tx_sring_entry)",
        NETIF_RX_RING_ENTRY_SIZE = "sizeof(union netif_rx_sring_entry)",
        XEN_NETIF_CTRL_RING_ENTRY_SIZE = "sizeof(union xen_netif_ctrl_sring_entry)",
        NET_TX_RING_SIZE = "__CONST_RING_SIZE(netif_tx, 4096)",
        NET_RX_RING_SIZE = "__CONST_RING_SIZE(netif_rx, 4096)",
        XEN_NETIF_CTRL_RING_SIZE = "__CONST_RING_SIZE(xen_netif_ctrl, 4096)",
    );
    layout!(t; XenNetifCtrlRequest = "struct xen_netif_ctrl_request", { id, r#type, data });
    layout!(t; XenNetifCtrlResponse = "struct xen_netif_ctrl_response", {
        id, r#type, status, data,
    });
    layout!(t; XenNetifGref = "struct xen_netif_gref", { r#ref, flags, status });
    layout!(t; NetifTxRequest = "struct netif_tx_request", { gref, offset, flags, id, size });
    layout!(t; NetifTxResponse = "struct netif_tx_response", { id, status });
    layout!(t; NetifRxRequest = "struct netif_rx_request", { id, pad, gref });
    layout!(t; NetifRxResponse = "struct netif_rx_response", { id, offset, flags, status });
    layout!(t; NetifExtraInfo = "struct netif_extra_info", { r#type, flags, u });
    layout!(t; NetifExtraGso = "__typeof__(((struct netif_extra_info *)0)->u.gso)", {
        size, r#type, pad, features,
    });
    layout!(t; NetifExtraMcast = "__typeof__(((struct netif_extra_info *)0)->u.mcast)", {
        addr,
    });
    layout!(t; NetifExtraHash = "__typeof__(((struct netif_extra_info *)0)->u.hash)", {
        r#type, algorithm, value,
    });
    ring!(t; "netif_tx", NetifTxFrontRing, NetifTxBackRing, NetifTxRequest, NetifTxResponse);
    ring!(t; "netif_rx", NetifRxFrontRing, NetifRxBackRing, NetifRxRequest, NetifRxResponse);
    ring!(t; "xen_netif_ctrl", XenNetifCtrlFrontRing, XenNetifCtrlBackRing,
        XenNetifCtrlRequest, XenNetifCtrlResponse);
    // Extra info slots overlay tx request and rx response slots: they must fit.
    t.push(
        Kind::Ring,
        "extra info fits a tx request slot".to_owned(),
        "sizeof(struct netif_extra_info) <= sizeof(struct netif_tx_request)".to_owned(),
        (size_of::<NetifExtraInfo>() <= size_of::<NetifTxRequest>()).to_value(),
    );
    t.push(
        Kind::Ring,
        "extra info fits an rx response slot".to_owned(),
        "sizeof(struct netif_extra_info) <= sizeof(struct netif_rx_response)".to_owned(),
        (size_of::<NetifExtraInfo>() <= size_of::<NetifRxResponse>()).to_value(),
    );
    let _ = writeln!(t.c_prelude, "{}", c_array("toeplitz_key", &TOEPLITZ_KEY));
    let _ = writeln!(t.c_prelude, "{}", c_array("toeplitz_data", &TOEPLITZ_DATA));
    for (key_len, data_len) in [
        (40_usize, 8_usize),
        (40, 12),
        (40, 36),
        (16, 36),
        (0, 12),
        (3, 5),
    ] {
        t.function(
            "toeplitz_hash",
            format!("toeplitz_hash(key[..{key_len}], data[..{data_len}])"),
            format!("xen_netif_toeplitz_hash(toeplitz_key, {key_len}, toeplitz_data, {data_len})"),
            &toeplitz_hash(&TOEPLITZ_KEY[..key_len], &TOEPLITZ_DATA[..data_len]),
        );
    }

    // io/console.h
    typedefs!(t; XenconsRingIdx = "XENCONS_RING_IDX");
    consts!(t;
        XENCONS_IN_SIZE = "sizeof(((struct xencons_interface *)0)->in)",
        XENCONS_OUT_SIZE = "sizeof(((struct xencons_interface *)0)->out)",
    );
    layout!(t; XenconsInterface = "struct xencons_interface", {
        r#in, out, in_cons, in_prod, out_cons, out_prod,
    });
    for idx in [0_u32, 1, 1023, 1024, 2047, 2048, 0xffff_ffff] {
        let intf = "((struct xencons_interface *)0)";
        t.function(
            "mask_xencons_in_idx",
            format!("mask_xencons_in_idx({idx})"),
            format!("MASK_XENCONS_IDX({idx}u, {intf}->in)"),
            &mask_xencons_in_idx(idx),
        );
        t.function(
            "mask_xencons_out_idx",
            format!("mask_xencons_out_idx({idx})"),
            format!("MASK_XENCONS_IDX({idx}u, {intf}->out)"),
            &mask_xencons_out_idx(idx),
        );
    }

    // io/xenbus.h
    t.cover("XenbusState");
    t.push(
        Kind::Type,
        "sizeof XenbusState".to_owned(),
        "sizeof(enum xenbus_state)".to_owned(),
        size_of::<XenbusState>().to_value(),
    );
    for state in XenbusState::ALL {
        t.push(
            Kind::Constant,
            format!("XenbusState::{state:?}"),
            format!("XenbusState{state:?}"),
            state.as_u32().to_value(),
        );
    }

    // io/xs_wire.h
    consts!(t;
        XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH,
        XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE, XS_GET_DOMAIN_PATH,
        XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT, XS_ERROR,
        XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART,
        XS_TYPE_COUNT, XS_INVALID, XS_WATCH_PATH, XS_WATCH_TOKEN,
        XENSTORE_RING_SIZE, XENSTORE_PAYLOAD_MAX, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX,
        XENSTORE_SERVER_FEATURE_RECONNECTION, XENSTORE_SERVER_FEATURE_ERROR,
        XENSTORE_CONNECTED, XENSTORE_RECONNECT,
        XENSTORE_ERROR_NONE, XENSTORE_ERROR_COMM, XENSTORE_ERROR_RINGIDX, XENSTORE_ERROR_PROTO,
        XS_WRITE_NONE, XS_WRITE_CREATE, XS_WRITE_CREATE_EXCL,
    );
    layout!(t; XsdSockmsg = "struct xsd_sockmsg", { r#type, req_id, tx_id, len });
    t.push(
        Kind::Type,
        "XsdSockmsg::SIZE".to_owned(),
        "sizeof(struct xsd_sockmsg)".to_owned(),
        XsdSockmsg::SIZE.to_value(),
    );
    layout!(t; XenstoreDomainInterface = "struct xenstore_domain_interface", {
        req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features, connection, error,
    });
    for idx in [0_u32, 5, 1023, 1024, 0xffff_ffff] {
        t.function(
            "mask_xenstore_idx",
            format!("mask_xenstore_idx({idx})"),
            format!("MASK_XENSTORE_IDX({idx}u)"),
            &mask_xenstore_idx(idx),
        );
    }
    t.function(
        "XsError",
        "XsError::ALL.len()".to_owned(),
        "sizeof(xsd_errors) / sizeof(xsd_errors[0])".to_owned(),
        &XsError::ALL.len(),
    );
    for (i, error) in XsError::ALL.into_iter().enumerate() {
        t.function(
            "XsError",
            format!("XsError::{error:?}.name()"),
            format!("xsd_errors[{i}].errstring"),
            &error.name(),
        );
        t.function(
            "XsError",
            format!("XsError::{error:?}.errno()"),
            format!("xsd_errors[{i}].errnum"),
            &error.errno(),
        );
    }

    t
}

/// The C program printing every row's C value, one `index kind value` per line.
fn c_program(table: &Table) -> String {
    let mut c = String::from(
        "/* Generated by xen-abi's conformance test. */\n\
         #include <errno.h>\n\
         #include <stddef.h>\n\
         #include <stdint.h>\n\
         #include <stdio.h>\n\
         #if !defined(__x86_64__)\n\
         #error \"xen-abi's layouts are checked for x86_64\"\n\
         #endif\n",
    );
    let _ = writeln!(
        c,
        "#define __XEN_INTERFACE_VERSION__ {XEN_INTERFACE_VERSION:#010x}"
    );
    c.push_str(
        "#define XEN_NETIF_DEFINE_TOEPLITZ\n\
         #include <xen/xen.h>\n\
         #include <xen/memory.h>\n\
         #include <xen/hvm/hvm_op.h>\n\
         #include <xen/hvm/params.h>\n\
         #include <xen/sched.h>\n\
         #include <xen/vcpu.h>\n\
         #include <xen/version.h>\n\
         #include <xen/features.h>\n\
         #include <xen/event_channel.h>\n\
         #include <xen/grant_table.h>\n\
         #include <xen/io/ring.h>\n\
         #include <xen/io/blkif.h>\n\
         #include <xen/io/netif.h>\n\
         #include <xen/io/console.h>\n\
         #include <xen/io/xenbus.h>\n\
         #include <xen/io/xs_wire.h>\n\
         #define INT_ROW(i, e) do { __typeof__(e) v_ = (e); \\\n\
             if (v_ < 0) printf(\"%d i %lld\\n\", (i), (long long)v_); \\\n\
             else printf(\"%d i %llu\\n\", (i), (unsigned long long)v_); } while (0)\n\
         #define STR_ROW(i, e) printf(\"%d s %s\\n\", (i), (e))\n",
    );
    c.push_str(&table.c_prelude);
    c.push_str("int main(void)\n{\n");
    for (i, (_, row)) in table.rows.iter().enumerate() {
        let macro_name = match row.rust {
            Value::Int(_) => "INT_ROW",
            Value::Str(_) => "STR_ROW",
        };
        let _ = writeln!(c, "    {macro_name}({i}, {});", row.c_expr);
    }
    c.push_str("    return 0;\n}\n");
    c
}

/// Compiles and runs the C program; returns each row's C value.
fn c_values(table: &Table) -> BTreeMap<usize, Value> {
    assert!(
        Path::new(XEN_INCLUDE).join("io/ring.h").exists(),
        "Xen's C headers are missing from {XEN_INCLUDE}: install libxen-dev"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xen-abi-conformance");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    let source = dir.join(format!("conformance-{}.c", std::process::id()));
    let binary = dir.join(format!("conformance-{}", std::process::id()));
    std::fs::write(&source, c_program(table)).expect("write the C program");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(&cc)
        .args(["-std=gnu11", "-O0", "-w", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        output.status.success(),
        "the C program ({}) does not compile:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(&binary).output().expect("run the C program");
    assert!(output.status.success(), "the C program failed");
    let _ = std::fs::remove_file(&binary);
    let _ = std::fs::remove_file(&source);
    let stdout = String::from_utf8(output.stdout).expect("C output is UTF-8");
    let mut values = BTreeMap::new();
    for line in stdout.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(index), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad C output line {line:?}");
        };
        let index: usize = index.parse().expect("row index");
        let value = match kind {
            "i" => Value::Int(value.parse().expect("integer value")),
            _ => Value::Str(value.to_owned()),
        };
        values.insert(index, value);
    }
    values
}

/// The table and the C side's values, computed once for all tests.
fn compared() -> &'static (Table, BTreeMap<usize, Value>) {
    static COMPARED: OnceLock<(Table, BTreeMap<usize, Value>)> = OnceLock::new();
    COMPARED.get_or_init(|| {
        let table = table();
        let values = c_values(&table);
        (table, values)
    })
}

/// Rows whose Rust value differs from C's, as readable lines.
fn mismatches(rows: &[(Kind, Row)], c: &BTreeMap<usize, Value>) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, (_, row)) in rows.iter().enumerate() {
        match c.get(&i) {
            Some(value) if *value == row.rust => {}
            Some(value) => bad.push(format!(
                "{}: Rust {:?}, C `{}` = {:?}",
                row.label, row.rust, row.c_expr, value
            )),
            None => bad.push(format!("{}: the C program printed no value", row.label)),
        }
    }
    bad
}

#[test]
fn every_row_matches_xens_headers() {
    let (table, c) = compared();
    let bad = mismatches(&table.rows, c);
    let count = |kind| table.rows.iter().filter(|(k, _)| *k == kind).count();
    println!(
        "xen-abi conformance: {} rows compared with {XEN_INCLUDE} (interface {XEN_INTERFACE_VERSION:#010x}): \
         {} type rows, {} field rows, {} constant rows, {} ring rows, {} function rows; \
         {} Rust items covered; {} mismatches",
        table.rows.len(),
        count(Kind::Type),
        count(Kind::Field),
        count(Kind::Constant),
        count(Kind::Ring),
        count(Kind::Function),
        table.covered.len(),
        bad.len(),
    );
    assert!(
        bad.is_empty(),
        "xen-abi disagrees with Xen's headers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_wrong_offset_or_constant_is_reported() {
    // The comparison itself must catch a wrong value: perturb one field offset and
    // one constant on the Rust side and expect exactly those two reports.
    let (table, c) = compared();
    let mut rows = table.rows.clone();
    let tamper = |rows: &mut Vec<(Kind, Row)>, label: &str| {
        let (_, row) = rows
            .iter_mut()
            .find(|(_, row)| row.label == label)
            .unwrap_or_else(|| panic!("no row {label}"));
        let Value::Int(value) = row.rust else {
            panic!("{label} is not an integer")
        };
        row.rust = Value::Int(value + 1);
    };
    tamper(&mut rows, "offset BlkifRequest.id");
    tamper(&mut rows, "GNTTABOP_COPY");
    let bad = mismatches(&rows, c);
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(bad[0].starts_with("GNTTABOP_COPY") || bad[1].starts_with("GNTTABOP_COPY"));
    assert!(
        bad.iter()
            .any(|line| line.starts_with("offset BlkifRequest.id"))
    );
}

/// Public items that are not part of Xen's ABI, so have no C counterpart.
const NOT_ABI: &[(&str, &str)] = &[
    ("RingMemory", "contract for the memory a ring owns"),
    ("RingEntry", "marker for plain-old-data ring entries"),
    (
        "FrontRing",
        "ring logic, checked by the ring rows and ring tests",
    ),
    (
        "BackRing",
        "ring logic, checked by the ring rows and ring tests",
    ),
    ("Responses", "iterator"),
    ("Requests", "iterator"),
    ("RingSetupError", "error type"),
    ("ProducerOverflow", "error type"),
    ("RingFull", "error type"),
    ("SharedIndices", "diagnostic snapshot"),
    ("HeapRingMemory", "test memory"),
    ("cast_entry", "byte copy between POD entries"),
    ("ring", "fuzz body (feature fuzzing)"),
    ("wire", "fuzz body (feature fuzzing)"),
];

/// Top-level public items declared in the crate's sources.
fn public_items() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut items = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub ") else {
                continue;
            };
            let rest = rest.strip_prefix("unsafe ").unwrap_or(rest);
            let keywords = [
                "const fn ",
                "const ",
                "struct ",
                "enum ",
                "type ",
                "fn ",
                "trait ",
                "union ",
            ];
            let Some(name) = keywords.iter().find_map(|kw| rest.strip_prefix(kw)) else {
                continue;
            };
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                items.insert(name);
            }
        }
    }
    items
}

#[test]
fn every_public_item_is_covered() {
    let (table, _) = compared();
    let items = public_items();
    assert!(
        items.len() > 300,
        "the source scan found only {} items",
        items.len()
    );
    let exempt: BTreeSet<&str> = NOT_ABI.iter().map(|(name, _)| *name).collect();
    let uncovered: Vec<&String> = items
        .iter()
        .filter(|name| !table.covered.contains(*name) && !exempt.contains(name.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "public items missing from the conformance table: {uncovered:?}"
    );
    let stale: Vec<&String> = table
        .covered
        .iter()
        .filter(|name| !items.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "table rows for items the crate no longer has: {stale:?}"
    );
    println!(
        "xen-abi coverage: {} public items, {} in the conformance table, {} exempt (not ABI)",
        items.len(),
        table.covered.len(),
        exempt.len()
    );
}

#[test]
fn ring_entries_are_ring_entries() {
    // Everything the table calls a slot type must be usable in a ring.
    fn is_entry<T: RingEntry>() {}
    is_entry::<BlkifRequest>();
    is_entry::<BlkifResponse>();
    is_entry::<NetifTxRequest>();
    is_entry::<NetifTxResponse>();
    is_entry::<NetifRxRequest>();
    is_entry::<NetifRxResponse>();
    is_entry::<XenNetifCtrlRequest>();
    is_entry::<XenNetifCtrlResponse>();
    let _: Option<FrontRing<BlkifRequest, BlkifResponse, HeapRingMemory>> = None;
    let _: Option<BackRing<BlkifRequest, BlkifResponse, HeapRingMemory>> = None;
}
