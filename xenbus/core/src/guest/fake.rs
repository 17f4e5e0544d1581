//! A fake processor and hypervisor for unit tests: CPUID from a table, memory
//! from leaked heap arrays (their addresses stand in for guest addresses), and
//! a hypercall handler that plays enough of Xen for the logic under test.
#![allow(unsafe_code)]

extern crate std;

use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use super::abi::{self, nr};
use super::cpu::{Cpu, CpuidResult, HypercallInsn};
use super::shared::Shared;
use xenbus_interface::api::{Memory, OutOfMemory, PAGE_SIZE, Pages, Pfn};

/// Recorded state of the fake hypervisor.
#[derive(Debug, Default)]
pub struct State {
    pub cpuid: Vec<(u32, CpuidResult)>,
    pub msr_writes: Vec<(u32, u64)>,
    pub calls: Vec<(HypercallInsn, u32, u64)>,
    pub physmap: Vec<(u32, u64, u64)>,
    pub sends: Vec<u32>,
    pub unmasks: Vec<u32>,
    pub next_port: u32,
    pub grant_frames: (u32, u32),
    /// 2-level emulation for `EVTCHNOP_unmask`: the shared info page.
    pub shared_info: Option<usize>,
}

/// The fake, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct FakeCpu(pub Rc<RefCell<State>>);

pub const AMD: CpuidResult = CpuidResult {
    eax: 0xd,
    ebx: 0x6874_7541,
    ecx: 0x444d_4163,
    edx: 0x6974_6e65,
};

impl FakeCpu {
    /// Xen 4.17 at `base`, AMD CPU, grant table with 1 of `max_frames` frames.
    pub fn xen_at(base: u32, max_frames: u32) -> Self {
        let f = Self::default();
        {
            let mut s = f.0.borrow_mut();
            s.cpuid.push((0, AMD));
            s.cpuid.push((
                base,
                CpuidResult {
                    eax: base + 5,
                    ebx: 0x566e_6558,
                    ecx: 0x6558_4d4d,
                    edx: 0x4d4d_566e,
                },
            ));
            s.cpuid.push((
                base + 1,
                CpuidResult {
                    eax: 0x0004_0011,
                    ..CpuidResult::default()
                },
            ));
            s.cpuid.push((
                base + 2,
                CpuidResult {
                    eax: 1,
                    ebx: 0x4000_0000,
                    ..CpuidResult::default()
                },
            ));
            s.grant_frames = (1, max_frames);
            s.next_port = 10;
        }
        f
    }

    /// A zeroed window of `pages` pages.
    pub fn window(&self, pages: usize) -> Shared<Self> {
        let mem: &'static [AtomicU64] = Box::leak(
            (0..pages * PAGE_SIZE / 8)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[_]>>(),
        );
        // SAFETY: leaked, so valid forever; only accessed atomically.
        unsafe { Shared::new(self.clone(), mem.as_ptr() as usize, pages * PAGE_SIZE) }
    }
}

impl Cpu for FakeCpu {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
        self.0
            .borrow()
            .cpuid
            .iter()
            .find(|(l, _)| *l == leaf)
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    fn rdtsc(&self) -> u64 {
        0
    }

    unsafe fn rdmsr(&self, _msr: u32) -> u64 {
        0
    }

    unsafe fn wrmsr(&self, msr: u32, value: u64) {
        self.0.borrow_mut().msr_writes.push((msr, value));
    }

    unsafe fn inb(&self, _port: u16) -> u8 {
        0xff
    }

    unsafe fn inw(&self, _port: u16) -> u16 {
        0xffff
    }

    unsafe fn inl(&self, _port: u16) -> u32 {
        0xffff_ffff
    }

    unsafe fn outb(&self, _port: u16, _value: u8) {}

    unsafe fn outw(&self, _port: u16, _value: u16) {}

    unsafe fn outl(&self, _port: u16, _value: u32) {}

    unsafe fn hypercall(&self, insn: HypercallInsn, op: u32, args: [u64; 5]) -> i64 {
        let mut s = self.0.borrow_mut();
        s.calls.push((insn, op, args[0]));
        match (op, args[0]) {
            (nr::XEN_VERSION, 0) => 0x0004_0011,
            (nr::MEMORY_OP, abi::XENMEM_ADD_TO_PHYSMAP) => {
                // SAFETY: the platform passes a live `xen_add_to_physmap`.
                let a = unsafe { &*(args[1] as *const abi::AddToPhysmap) };
                s.physmap.push((a.space, a.idx, a.gpfn));
                if a.space == abi::XENMAPSPACE_GRANT_TABLE && a.idx >= u64::from(s.grant_frames.1) {
                    return -22;
                }
                0
            }
            (nr::GRANT_TABLE_OP, abi::GNTTABOP_QUERY_SIZE) => {
                // SAFETY: the platform passes a live `gnttab_query_size`.
                let q = unsafe { &mut *(args[1] as *mut abi::GnttabQuerySize) };
                (q.nr_frames, q.max_nr_frames) = s.grant_frames;
                0
            }
            (nr::EVENT_CHANNEL_OP, abi::evtchnop::ALLOC_UNBOUND) => {
                // SAFETY: the platform passes a live `evtchn_alloc_unbound`.
                let a = unsafe { &mut *(args[1] as *mut abi::EvtchnAllocUnbound) };
                a.port = s.next_port;
                s.next_port += 1;
                0
            }
            (nr::EVENT_CHANNEL_OP, abi::evtchnop::SEND) => {
                // SAFETY: the platform passes a live port number.
                let p = unsafe { *(args[1] as *const u32) };
                s.sends.push(p);
                0
            }
            (nr::EVENT_CHANNEL_OP, abi::evtchnop::UNMASK) => {
                // SAFETY: the platform passes a live port number.
                let p = unsafe { *(args[1] as *const u32) };
                s.unmasks.push(p);
                if let Some(si) = s.shared_info {
                    let w = (p / 64) as usize * 8;
                    let bit = 1u64 << (p % 64);
                    // SAFETY: the test's shared info window (leaked).
                    let mask =
                        unsafe { &*((si + abi::shared_info::EVTCHN_MASK + w) as *const AtomicU64) };
                    mask.fetch_and(!bit, core::sync::atomic::Ordering::SeqCst);
                    // Like Xen: a pending port is raised again on unmask.
                    // SAFETY: as above.
                    let pending = unsafe {
                        &*((si + abi::shared_info::EVTCHN_PENDING + w) as *const AtomicU64)
                    };
                    if pending.load(core::sync::atomic::Ordering::SeqCst) & bit != 0 {
                        // SAFETY: as above.
                        let sel =
                            unsafe { &*((si + abi::shared_info::PENDING_SEL) as *const AtomicU64) };
                        sel.fetch_or(1 << (p / 64), core::sync::atomic::Ordering::SeqCst);
                    }
                }
                0
            }
            _ => 0,
        }
    }

    unsafe fn atomic_u8(&self, addr: usize) -> &AtomicU8 {
        // SAFETY: the caller's contract: a live, aligned, shared address.
        unsafe { &*(addr as *const AtomicU8) }
    }

    unsafe fn atomic_u16(&self, addr: usize) -> &AtomicU16 {
        // SAFETY: as above.
        unsafe { &*(addr as *const AtomicU16) }
    }

    unsafe fn atomic_u32(&self, addr: usize) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*(addr as *const AtomicU32) }
    }

    unsafe fn atomic_u64(&self, addr: usize) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { &*(addr as *const AtomicU64) }
    }
}

/// Pages from leaked heap arrays; the frame number is the address / 4096.
#[derive(Clone, Debug, Default)]
pub struct FakeMemory {
    pub freed: Rc<RefCell<usize>>,
    /// Base address of every allocation, in order.
    pub allocated: Rc<RefCell<Vec<usize>>>,
}

impl Memory for FakeMemory {
    fn alloc(&self, count: usize) -> Result<Pages, OutOfMemory> {
        let mem: &'static mut [AtomicU64] = Box::leak(
            (0..count * PAGE_SIZE / 8)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[_]>>(),
        );
        let base = mem.as_mut_ptr().cast::<u8>();
        self.allocated.borrow_mut().push(base as usize);
        let pfns = (0..count)
            .map(|i| Pfn((base as u64 + (i * PAGE_SIZE) as u64) >> 12))
            .collect();
        // SAFETY: leaked memory, valid forever, `count` pages long.
        Ok(unsafe { Pages::new(NonNull::new(base).ok_or(OutOfMemory)?, pfns) })
    }

    fn free(&self, _pages: Pages) {
        *self.freed.borrow_mut() += 1;
    }
}
