//! [`Cpu`] for the real processor: one instruction per method.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use xenbus_core::guest::{Cpu, CpuidResult, HypercallInsn};

/// The processor this kernel runs on (identity-mapped memory: virtual ==
/// guest physical).
#[derive(Clone, Copy, Debug, Default)]
pub struct X86;

/// Writes bytes to the Xen debug port 0xE9 (shown as `(dN)` lines in `xl dmesg`
/// when Xen runs with `guest_loglvl=all`). Works before anything else.
pub fn debug_port_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: port 0xE9 is Xen's write-only debug console; writing it has no
        // other effect.
        unsafe { asm!("out 0xe9, al", in("al") b, options(nomem, nostack, preserves_flags)) };
    }
}

/// Enables interrupts.
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before the kernel calls this (see `main.rs`).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disables interrupts.
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

impl Cpu for X86 {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    fn rdtsc(&self) -> u64 {
        // RDTSC, not RDTSCP: nested SVM under TCG mis-emulates RDTSCP.
        // SAFETY: RDTSC has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    unsafe fn rdmsr(&self, msr: u32) -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: the caller guarantees `msr` exists.
        unsafe {
            asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack));
        }
        u64::from(lo) | (u64::from(hi) << 32)
    }

    unsafe fn wrmsr(&self, msr: u32, value: u64) {
        let lo = u32::try_from(value & 0xffff_ffff).unwrap_or(0);
        let hi = u32::try_from(value >> 32).unwrap_or(0);
        // SAFETY: the caller guarantees `msr` exists and means the write.
        unsafe { asm!("wrmsr", in("ecx") msr, in("eax") lo, in("edx") hi, options(nostack)) };
    }

    unsafe fn inb(&self, port: u16) -> u8 {
        let v: u8;
        // SAFETY: the caller accepts the read's side effects.
        unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
        v
    }

    unsafe fn inw(&self, port: u16) -> u16 {
        let v: u16;
        // SAFETY: as for `inb`.
        unsafe { asm!("in ax, dx", in("dx") port, out("ax") v, options(nomem, nostack)) };
        v
    }

    unsafe fn inl(&self, port: u16) -> u32 {
        let v: u32;
        // SAFETY: as for `inb`.
        unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)) };
        v
    }

    unsafe fn outb(&self, port: u16, value: u8) {
        // SAFETY: the caller owns the device behind `port`.
        unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
    }

    unsafe fn outw(&self, port: u16, value: u16) {
        // SAFETY: as for `outb`.
        unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack)) };
    }

    unsafe fn outl(&self, port: u16, value: u32) {
        // SAFETY: as for `outb`.
        unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)) };
    }

    unsafe fn hypercall(&self, insn: HypercallInsn, op: u32, args: [u64; 5]) -> i64 {
        let ret: i64;
        match insn {
            // SAFETY: the caller guarantees the arguments (Xen's 64-bit HVM
            // hypercall ABI: rax = op, rdi rsi rdx r10 r8; result in rax).
            HypercallInsn::Vmcall => unsafe {
                asm!("vmcall", inlateout("rax") u64::from(op) => ret, in("rdi") args[0], in("rsi") args[1],
                     in("rdx") args[2], in("r10") args[3], in("r8") args[4], options(nostack));
            },
            // SAFETY: as above, AMD's instruction.
            HypercallInsn::Vmmcall => unsafe {
                asm!("vmmcall", inlateout("rax") u64::from(op) => ret, in("rdi") args[0], in("rsi") args[1],
                     in("rdx") args[2], in("r10") args[3], in("r8") args[4], options(nostack));
            },
            HypercallInsn::Page(page) => {
                let entry = page + op as usize * 32;
                // SAFETY: as above; `entry` is the trampoline Xen wrote for `op`
                // (the page was installed through the hypercall MSR). The
                // trampoline clobbers only what a call may clobber.
                unsafe {
                    asm!("call {entry}", entry = in(reg) entry, inlateout("rax") u64::from(op) => ret,
                         inlateout("rdi") args[0] => _, inlateout("rsi") args[1] => _, inlateout("rdx") args[2] => _,
                         inlateout("r10") args[3] => _, inlateout("r8") args[4] => _, out("rcx") _, out("r9") _, out("r11") _);
                }
            }
        }
        ret
    }

    unsafe fn atomic_u8(&self, addr: usize) -> &AtomicU8 {
        // SAFETY: the caller guarantees a mapped, shared, aligned address.
        unsafe { AtomicU8::from_ptr(addr as *mut u8) }
    }

    unsafe fn atomic_u16(&self, addr: usize) -> &AtomicU16 {
        // SAFETY: as above.
        unsafe { AtomicU16::from_ptr(addr as *mut u16) }
    }

    unsafe fn atomic_u32(&self, addr: usize) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(addr as *mut u32) }
    }

    unsafe fn atomic_u64(&self, addr: usize) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { AtomicU64::from_ptr(addr as *mut u64) }
    }
}
