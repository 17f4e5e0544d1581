//! Finding Xen and talking to it: CPUID detection, the hypercall instruction, and
//! one typed wrapper per hypercall the platform uses.
// Each wrapper passes the address of a local argument structure to
// `Cpu::hypercall`; that call is the only unsafe operation here.
#![allow(unsafe_code)]

use super::Error;
use super::abi::{self, evtchnop, nr};
use super::cpu::{Cpu, CpuidResult, HypercallInsn};

/// First CPUID leaf probed for a hypervisor signature.
pub const CPUID_BASE_FIRST: u32 = 0x4000_0000;
/// Last leaf (exclusive) probed: Xen may sit above Viridian at `+0x100` steps.
pub const CPUID_BASE_END: u32 = 0x4001_0000;
/// Distance between probed leaves.
pub const CPUID_BASE_STEP: u32 = 0x100;

/// `XenVMMXenVMM` in `ebx`, `ecx`, `edx`.
const XEN_SIGNATURE: (u32, u32, u32) = (0x566e_6558, 0x6558_4d4d, 0x4d4d_566e);

/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;

/// What detection learnt about the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenInfo {
    /// The CPUID leaf holding `XenVMMXenVMM`.
    pub cpuid_base: u32,
    /// Major version (CPUID).
    pub major: u16,
    /// Minor version (CPUID).
    pub minor: u16,
    /// The MSR that installs the hypercall page.
    pub hypercall_msr: u32,
    /// Number of hypercall pages Xen wants.
    pub hypercall_pages: u32,
}

/// Searches the hypervisor CPUID leaves for Xen's signature. Viridian (Hyper-V
/// enlightenments) may occupy `0x40000000`, with Xen at `0x40000100`.
pub fn detect<C: Cpu>(cpu: &C) -> Option<XenInfo> {
    let mut leaf = CPUID_BASE_FIRST;
    while leaf < CPUID_BASE_END {
        let r = cpu.cpuid(leaf, 0);
        // eax is the highest leaf of this block; Xen has at least base+2.
        if (r.ebx, r.ecx, r.edx) == XEN_SIGNATURE && r.eax >= leaf + 2 {
            let version = cpu.cpuid(leaf + 1, 0).eax;
            let pages = cpu.cpuid(leaf + 2, 0);
            return Some(XenInfo {
                cpuid_base: leaf,
                major: (version >> 16) as u16,
                minor: (version & 0xffff) as u16,
                hypercall_msr: pages.ebx,
                hypercall_pages: pages.eax,
            });
        }
        leaf += CPUID_BASE_STEP;
    }
    None
}

/// The trapping instruction for this CPU vendor (XSA-466: issue hypercalls
/// directly rather than trusting the hypercall page's contents). `None` for a
/// vendor we do not know, where only the hypercall page can be used.
pub fn vendor_insn(leaf0: CpuidResult) -> Option<HypercallInsn> {
    match (leaf0.ebx, leaf0.edx, leaf0.ecx) {
        // "GenuineIntel", "CentaurHauls", "  Shanghai  ", "GenuineIotel" (Zhaoxin quirk)
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
        | (0x746e_6543, 0x4872_7561, 0x736c_7561)
        | (0x2020_6853, 0x6168_676e, 0x2020_6961) => Some(HypercallInsn::Vmcall),
        // "AuthenticAMD", "HygonGenuine"
        (0x6874_7541, 0x6974_6e65, 0x444d_4163) | (0x6f67_7948, 0x6e65_476e, 0x656e_6975) => {
            Some(HypercallInsn::Vmmcall)
        }
        _ => None,
    }
}

/// The hypervisor, reached through one [`Cpu`].
#[derive(Clone, Debug)]
pub struct Xen<C> {
    cpu: C,
    insn: HypercallInsn,
    info: XenInfo,
}

impl<C: Cpu + Clone> Xen<C> {
    /// Detects Xen and picks the hypercall instruction by CPU vendor.
    /// `hypercall_page` (virtual and physical address of a page the caller
    /// gives away for good) is installed and used only when the vendor is
    /// unknown; without one such a CPU gets [`Error::NoHypercallInsn`].
    pub fn new(cpu: C, hypercall_page: Option<(usize, u64)>) -> Result<Self, Error> {
        let info = detect(&cpu).ok_or(Error::NotXen)?;
        let insn = match (vendor_insn(cpu.cpuid(0, 0)), hypercall_page) {
            (Some(insn), _) => insn,
            (None, Some((vaddr, paddr))) => {
                // SAFETY: the MSR was advertised by Xen's CPUID leaf; the caller
                // gave us the page, which Xen now fills with trampolines.
                unsafe { cpu.wrmsr(info.hypercall_msr, paddr) };
                HypercallInsn::Page(vaddr)
            }
            (None, None) => return Err(Error::NoHypercallInsn),
        };
        Ok(Self { cpu, insn, info })
    }

    /// What detection found.
    pub fn info(&self) -> XenInfo {
        self.info
    }

    /// The instruction hypercalls use.
    pub fn insn(&self) -> HypercallInsn {
        self.insn
    }

    /// The processor interface.
    pub fn cpu(&self) -> &C {
        &self.cpu
    }

    /// One hypercall whose pointer arguments point to `arg` (or to nothing).
    fn call<T>(&self, op: u32, cmd: u64, arg: Option<&mut T>, extra: u64) -> i64 {
        let ptr = arg.map_or(0, |a| core::ptr::from_mut(a) as u64);
        // SAFETY: `ptr` is null or the address of a live `#[repr(C)]` argument
        // structure of the layout `op`/`cmd` expects (checked in `abi`),
        // exclusively borrowed for the call.
        unsafe { self.cpu.hypercall(self.insn, op, [cmd, ptr, extra, 0, 0]) }
    }

    fn check(op: &'static str, rc: i64) -> Result<i64, Error> {
        if rc < 0 {
            Err(Error::Hypercall { op, rc })
        } else {
            Ok(rc)
        }
    }

    /// `XENVER_version`: `(major, minor)` through a real hypercall.
    pub fn version(&self) -> Result<(u16, u16), Error> {
        let rc = Self::check(
            "xen_version",
            self.call::<u8>(nr::XEN_VERSION, abi::XENVER_VERSION, None, 0),
        )?;
        let rc = u32::try_from(rc).map_err(|_| Error::Hypercall {
            op: "xen_version",
            rc,
        })?;
        Ok(((rc >> 16) as u16, (rc & 0xffff) as u16))
    }

    /// `XENVER_get_features` for submap `index` (32 feature bits).
    pub fn features(&self, index: u32) -> Result<u32, Error> {
        let mut fi = abi::FeatureInfo {
            submap_idx: index,
            submap: 0,
        };
        Self::check(
            "get_features",
            self.call(nr::XEN_VERSION, abi::XENVER_GET_FEATURES, Some(&mut fi), 0),
        )?;
        Ok(fi.submap)
    }

    /// `HVMOP_get_param`.
    pub fn get_param(&self, index: u32) -> Result<u64, Error> {
        let mut p = abi::HvmParam {
            pad: 0,
            domid: DOMID_SELF,
            index,
            value: 0,
        };
        Self::check(
            "hvm_get_param",
            self.call(nr::HVM_OP, abi::HVMOP_GET_PARAM, Some(&mut p), 0),
        )?;
        Ok(p.value)
    }

    /// `HVMOP_set_param`.
    pub fn set_param(&self, index: u32, value: u64) -> Result<(), Error> {
        let mut p = abi::HvmParam {
            pad: 0,
            domid: DOMID_SELF,
            index,
            value,
        };
        Self::check(
            "hvm_set_param",
            self.call(nr::HVM_OP, abi::HVMOP_SET_PARAM, Some(&mut p), 0),
        )?;
        Ok(())
    }

    /// `HVMOP_set_evtchn_upcall_vector`: per-vCPU upcall vector.
    pub fn set_upcall_vector(&self, vcpu: u32, vector: u8) -> Result<(), Error> {
        let mut v = abi::UpcallVector { vcpu, vector };
        Self::check(
            "set_evtchn_upcall_vector",
            self.call(
                nr::HVM_OP,
                abi::HVMOP_SET_EVTCHN_UPCALL_VECTOR,
                Some(&mut v),
                0,
            ),
        )?;
        Ok(())
    }

    /// `XENMEM_add_to_physmap` of `space`/`idx` at guest frame `gpfn`.
    pub fn add_to_physmap(&self, space: u32, idx: u64, gpfn: u64) -> Result<(), Error> {
        let mut a = abi::AddToPhysmap {
            domid: DOMID_SELF,
            size: 0,
            space,
            idx,
            gpfn,
        };
        Self::check(
            "add_to_physmap",
            self.call(nr::MEMORY_OP, abi::XENMEM_ADD_TO_PHYSMAP, Some(&mut a), 0),
        )?;
        Ok(())
    }

    /// `XENMEM_decrease_reservation` of single pages; returns how many went.
    pub fn decrease_reservation(&self, gpfns: &mut [u64]) -> Result<usize, Error> {
        self.reservation(
            "decrease_reservation",
            abi::XENMEM_DECREASE_RESERVATION,
            gpfns,
        )
    }

    /// `XENMEM_populate_physmap` of single pages; returns how many came back.
    pub fn populate_physmap(&self, gpfns: &mut [u64]) -> Result<usize, Error> {
        self.reservation("populate_physmap", abi::XENMEM_POPULATE_PHYSMAP, gpfns)
    }

    fn reservation(&self, op: &'static str, cmd: u64, gpfns: &mut [u64]) -> Result<usize, Error> {
        let mut r = abi::MemoryReservation {
            extent_start: xen_abi::hypercall::GuestHandle::from_addr(gpfns.as_mut_ptr() as u64),
            nr_extents: gpfns.len() as u64,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
        };
        let done = Self::check(op, self.call(nr::MEMORY_OP, cmd, Some(&mut r), 0))?;
        usize::try_from(done).map_err(|_| Error::Hypercall { op, rc: done })
    }

    /// `XENMEM_current_reservation`: pages this domain holds now.
    pub fn current_reservation(&self) -> Result<u64, Error> {
        let mut domid = DOMID_SELF;
        let rc = Self::check(
            "current_reservation",
            self.call(
                nr::MEMORY_OP,
                abi::XENMEM_CURRENT_RESERVATION,
                Some(&mut domid),
                0,
            ),
        )?;
        Ok(rc.unsigned_abs())
    }

    /// `GNTTABOP_query_size`: `(frames in use, maximum frames)`.
    pub fn grant_query_size(&self) -> Result<(u32, u32), Error> {
        let mut q = abi::GnttabQuerySize {
            dom: DOMID_SELF,
            nr_frames: 0,
            max_nr_frames: 0,
            status: 0,
        };
        Self::check(
            "gnttab_query_size",
            self.call(
                nr::GRANT_TABLE_OP,
                abi::GNTTABOP_QUERY_SIZE,
                Some(&mut q),
                1,
            ),
        )?;
        if q.status != 0 {
            return Err(Error::Hypercall {
                op: "gnttab_query_size",
                rc: i64::from(q.status),
            });
        }
        Ok((q.nr_frames, q.max_nr_frames))
    }

    /// `VCPUOP_register_vcpu_info`: moves `vcpu`'s `vcpu_info` to `gfn`+`offset`.
    pub fn register_vcpu_info(&self, vcpu: u32, gfn: u64, offset: u32) -> Result<(), Error> {
        let mut r = abi::RegisterVcpuInfo {
            mfn: gfn,
            offset,
            rsvd: 0,
        };
        let ptr = core::ptr::from_mut(&mut r) as u64;
        // SAFETY: `ptr` is the address of a live `vcpu_register_vcpu_info`.
        let rc = unsafe {
            self.cpu.hypercall(
                self.insn,
                nr::VCPU_OP,
                [abi::VCPUOP_REGISTER_VCPU_INFO, u64::from(vcpu), ptr, 0, 0],
            )
        };
        Self::check("register_vcpu_info", rc)?;
        Ok(())
    }

    /// `VCPUOP_set_singleshot_timer`: `VIRQ_TIMER` on `vcpu` once Xen system
    /// time reaches `deadline_ns`. With `future`, Xen may refuse a deadline
    /// already passed (`-ETIME`) instead of firing at once; it is allowed to
    /// ignore the flag (4.17.x does).
    pub fn set_singleshot_timer(
        &self,
        vcpu: u32,
        deadline_ns: u64,
        future: bool,
    ) -> Result<(), Error> {
        let mut t = abi::SingleshotTimer {
            timeout_abs_ns: deadline_ns,
            flags: if future { abi::VCPU_SSHOTTMR_FUTURE } else { 0 },
        };
        let ptr = core::ptr::from_mut(&mut t) as u64;
        // SAFETY: `ptr` is the address of a live `vcpu_set_singleshot_timer`.
        let rc = unsafe {
            self.cpu.hypercall(
                self.insn,
                nr::VCPU_OP,
                [abi::VCPUOP_SET_SINGLESHOT_TIMER, u64::from(vcpu), ptr, 0, 0],
            )
        };
        Self::check("set_singleshot_timer", rc)?;
        Ok(())
    }

    /// `VCPUOP_stop_singleshot_timer`.
    pub fn stop_singleshot_timer(&self, vcpu: u32) -> Result<(), Error> {
        self.vcpu_op_no_arg(
            "stop_singleshot_timer",
            abi::VCPUOP_STOP_SINGLESHOT_TIMER,
            vcpu,
        )
    }

    /// `VCPUOP_stop_periodic_timer`: no more periodic `VIRQ_TIMER` ticks (a
    /// vCPU starts with a 10 ms one).
    pub fn stop_periodic_timer(&self, vcpu: u32) -> Result<(), Error> {
        self.vcpu_op_no_arg("stop_periodic_timer", abi::VCPUOP_STOP_PERIODIC_TIMER, vcpu)
    }

    fn vcpu_op_no_arg(&self, op: &'static str, cmd: u64, vcpu: u32) -> Result<(), Error> {
        // SAFETY: these sub-ops take no argument structure.
        let rc = unsafe {
            self.cpu
                .hypercall(self.insn, nr::VCPU_OP, [cmd, u64::from(vcpu), 0, 0, 0])
        };
        Self::check(op, rc)?;
        Ok(())
    }

    /// `SCHEDOP_yield`.
    pub fn yield_now(&self) {
        // Yield cannot fail.
        let _ = self.call::<u8>(nr::SCHED_OP, abi::SCHEDOP_YIELD, None, 0);
    }

    /// `SCHEDOP_shutdown(reason)`. For `SHUTDOWN_suspend` it returns when the
    /// domain runs again: `Ok(false)` resumed in a new domain, `Ok(true)`
    /// suspend cancelled (the old domain continues).
    pub fn shutdown(&self, reason: u32) -> Result<bool, Error> {
        let mut s = abi::SchedShutdown { reason };
        let rc = Self::check(
            "sched_shutdown",
            self.call(nr::SCHED_OP, abi::SCHEDOP_SHUTDOWN, Some(&mut s), 0),
        )?;
        Ok(rc != 0)
    }

    /// `SCHEDOP_poll`: blocks until one of `ports` is pending or the absolute
    /// system time `timeout_ns` (0: none) passes.
    pub fn poll(&self, ports: &mut [u32], timeout_ns: u64) -> Result<(), Error> {
        let mut p = abi::SchedPoll {
            ports: xen_abi::hypercall::GuestHandle::from_addr(ports.as_mut_ptr() as u64),
            nr_ports: u32::try_from(ports.len()).map_err(|_| Error::OutOfBounds)?,
            timeout: timeout_ns,
        };
        Self::check(
            "sched_poll",
            self.call(nr::SCHED_OP, abi::SCHEDOP_POLL, Some(&mut p), 0),
        )?;
        Ok(())
    }

    /// `SCHEDOP_watchdog`: `id` 0 with a timeout creates a watchdog and returns
    /// its id; an id with a timeout pets it; an id with 0 destroys it.
    pub fn watchdog(&self, id: u32, timeout_s: u32) -> Result<u32, Error> {
        let mut w = abi::SchedWatchdog {
            id,
            timeout: timeout_s,
        };
        let rc = Self::check(
            "sched_watchdog",
            self.call(nr::SCHED_OP, abi::SCHEDOP_WATCHDOG, Some(&mut w), 0),
        )?;
        u32::try_from(rc).map_err(|_| Error::Hypercall {
            op: "sched_watchdog",
            rc,
        })
    }

    /// `EVTCHNOP_alloc_unbound` for `remote`.
    pub fn evtchn_alloc_unbound(&self, remote: u16) -> Result<u32, Error> {
        let mut a = abi::EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: remote,
            port: 0,
        };
        self.evtchn(evtchnop::ALLOC_UNBOUND, &mut a, "evtchn_alloc_unbound")?;
        Ok(a.port)
    }

    /// `EVTCHNOP_bind_interdomain` to `remote`'s `remote_port`.
    pub fn evtchn_bind_interdomain(&self, remote: u16, remote_port: u32) -> Result<u32, Error> {
        let mut b = abi::EvtchnBindInterdomain {
            remote_dom: remote,
            remote_port,
            local_port: 0,
        };
        self.evtchn(
            evtchnop::BIND_INTERDOMAIN,
            &mut b,
            "evtchn_bind_interdomain",
        )?;
        Ok(b.local_port)
    }

    /// `EVTCHNOP_bind_virq`.
    pub fn evtchn_bind_virq(&self, virq: u32, vcpu: u32) -> Result<u32, Error> {
        let mut b = abi::EvtchnBindVirq {
            virq,
            vcpu,
            port: 0,
        };
        self.evtchn(evtchnop::BIND_VIRQ, &mut b, "evtchn_bind_virq")?;
        Ok(b.port)
    }

    /// `EVTCHNOP_close`.
    pub fn evtchn_close(&self, port: u32) -> Result<(), Error> {
        let mut p = port;
        self.evtchn(evtchnop::CLOSE, &mut p, "evtchn_close")
    }

    /// `EVTCHNOP_send`.
    pub fn evtchn_send(&self, port: u32) -> Result<(), Error> {
        let mut p = port;
        self.evtchn(evtchnop::SEND, &mut p, "evtchn_send")
    }

    /// `EVTCHNOP_unmask`.
    pub fn evtchn_unmask(&self, port: u32) -> Result<(), Error> {
        let mut p = port;
        self.evtchn(evtchnop::UNMASK, &mut p, "evtchn_unmask")
    }

    /// `EVTCHNOP_init_control`: switches to the FIFO ABI.
    pub fn evtchn_init_control(
        &self,
        control_gfn: u64,
        offset: u32,
        vcpu: u32,
    ) -> Result<u8, Error> {
        let mut c = abi::EvtchnInitControl {
            control_gfn,
            offset,
            vcpu,
            link_bits: 0,
            pad: [0; 7],
        };
        self.evtchn(evtchnop::INIT_CONTROL, &mut c, "evtchn_init_control")?;
        Ok(c.link_bits)
    }

    /// `EVTCHNOP_expand_array`: adds one page of FIFO event words.
    pub fn evtchn_expand_array(&self, array_gfn: u64) -> Result<(), Error> {
        let mut e = abi::EvtchnExpandArray { array_gfn };
        self.evtchn(evtchnop::EXPAND_ARRAY, &mut e, "evtchn_expand_array")
    }

    fn evtchn<T>(&self, cmd: u64, arg: &mut T, op: &'static str) -> Result<(), Error> {
        Self::check(op, self.call(nr::EVENT_CHANNEL_OP, cmd, Some(arg), 0))?;
        Ok(())
    }
}
