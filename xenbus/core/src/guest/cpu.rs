//! The processor and machine operations the guest platform needs, as a trait the
//! kernel (or the Windows shell) implements with a few instructions each.
//!
//! Everything that touches memory Xen shares with us, a model-specific register or
//! an I/O port is an `unsafe` method here, so the rest of the platform states in one
//! `// SAFETY:` line why each access is sound and contains no other unsafe code.
// The only unsafe in this file is the declaration of the trait's unsafe methods.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

/// The four registers a `CPUID` leaf returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// `eax`.
    pub eax: u32,
    /// `ebx`.
    pub ebx: u32,
    /// `ecx`.
    pub ecx: u32,
    /// `edx`.
    pub edx: u32,
}

/// How a hypercall traps into Xen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallInsn {
    /// Intel VT-x `VMCALL` (`0f 01 c1`).
    Vmcall,
    /// AMD-V `VMMCALL` (`0f 01 d9`).
    Vmmcall,
    /// A `call` into the hypercall page Xen wrote at this address (32 bytes per
    /// hypercall). Only the fallback: since XSA-466 the page is not to be
    /// trusted for the vendor choice, so direct instructions come first.
    Page(usize),
}

/// Processor, port and shared-memory access for the guest platform.
///
/// Addresses are the ones this code dereferences (virtual addresses); the kernel
/// in the rig identity-maps all memory, so they equal guest physical addresses
/// there, while on Windows the shell maps frames first. Hypercall arguments that
/// point to memory are virtual addresses of the caller's structures, as Xen
/// expects from an HVM/PVH guest.
pub trait Cpu {
    /// Executes `CPUID` for `leaf`/`subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;

    /// Reads the time stamp counter.
    fn rdtsc(&self) -> u64;

    /// Reads a model-specific register.
    ///
    /// # Safety
    /// `msr` must exist on this processor (else #GP).
    unsafe fn rdmsr(&self, msr: u32) -> u64;

    /// Writes a model-specific register.
    ///
    /// # Safety
    /// `msr` must exist and `value` must be a value whose side effects the caller
    /// has accounted for (for Xen's hypercall-page MSR: the page is the caller's).
    unsafe fn wrmsr(&self, msr: u32, value: u64);

    /// Reads a byte from an I/O port.
    ///
    /// # Safety
    /// Reading `port` must have no side effect the caller did not intend.
    unsafe fn inb(&self, port: u16) -> u8;

    /// Reads a 16-bit word from an I/O port.
    ///
    /// # Safety
    /// As for [`Cpu::inb`].
    unsafe fn inw(&self, port: u16) -> u16;

    /// Reads a 32-bit word from an I/O port.
    ///
    /// # Safety
    /// As for [`Cpu::inb`].
    unsafe fn inl(&self, port: u16) -> u32;

    /// Writes a byte to an I/O port.
    ///
    /// # Safety
    /// The caller owns the device behind `port` and means the write.
    unsafe fn outb(&self, port: u16, value: u8);

    /// Writes a 16-bit word to an I/O port.
    ///
    /// # Safety
    /// As for [`Cpu::outb`].
    unsafe fn outw(&self, port: u16, value: u16);

    /// Writes a 32-bit word to an I/O port.
    ///
    /// # Safety
    /// As for [`Cpu::outb`].
    unsafe fn outl(&self, port: u16, value: u32);

    /// Issues hypercall `op` with up to five arguments (`rdi`, `rsi`, `rdx`,
    /// `r10`, `r8`) and returns `rax`.
    ///
    /// # Safety
    /// Every argument that Xen interprets as a pointer must point to memory of
    /// the layout `op` expects, valid for the duration of the call, and the
    /// operation's effects on guest memory (pages mapped or removed) must be
    /// ones the caller owns.
    unsafe fn hypercall(&self, insn: HypercallInsn, op: u32, args: [u64; 5]) -> i64;

    /// Views the naturally aligned byte at `addr` as an atomic.
    ///
    /// # Safety
    /// `addr` must stay mapped and be memory the caller shares with Xen or a
    /// remote domain (never memory Rust code holds a reference to) for as long
    /// as the returned reference lives.
    unsafe fn atomic_u8(&self, addr: usize) -> &AtomicU8;

    /// Views the 2-byte-aligned word at `addr` as an atomic.
    ///
    /// # Safety
    /// As for [`Cpu::atomic_u8`]; `addr` is 2-byte aligned.
    unsafe fn atomic_u16(&self, addr: usize) -> &AtomicU16;

    /// Views the 4-byte-aligned word at `addr` as an atomic.
    ///
    /// # Safety
    /// As for [`Cpu::atomic_u8`]; `addr` is 4-byte aligned.
    unsafe fn atomic_u32(&self, addr: usize) -> &AtomicU32;

    /// Views the 8-byte-aligned word at `addr` as an atomic.
    ///
    /// # Safety
    /// As for [`Cpu::atomic_u8`]; `addr` is 8-byte aligned.
    unsafe fn atomic_u64(&self, addr: usize) -> &AtomicU64;
}
