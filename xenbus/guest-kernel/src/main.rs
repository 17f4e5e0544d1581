//! The bare-metal binary: PVH entry (`start.S`), interrupt table, heap, page
//! pool, memory intrinsics and panic handler around [`xenbus_guest_kernel`].
//! Built only with `--features kernel` (by the xtask, with the flags that make
//! it freestanding); see the crate docs.
#![no_std]
#![no_main]

extern crate alloc;

use core::arch::{asm, global_asm};
use core::sync::atomic::Ordering;

use xenbus_core::guest::hypercall::Xen;
use xenbus_core::guest::platform::SHUTDOWN_POWEROFF;
use xenbus_guest_kernel::checks;
use xenbus_guest_kernel::heap::BumpHeap;
use xenbus_guest_kernel::log::Log;
use xenbus_guest_kernel::pool::PagePool;
use xenbus_guest_kernel::x86::{X86, debug_port_write};
use xenbus_guest_kernel::{
    LAPIC_BASE, PERCPU_UPCALL_VECTOR, PERCPU_UPCALLS, REPORT_PREFIX, UPCALL_VECTOR, UPCALLS, hvm,
    vcpu_info_addr,
};

global_asm!(include_str!("start.S"), options(att_syntax));

const HEAP_BYTES: usize = 4 << 20;
/// 12 MiB: the vbd alone takes about 1800 pages (rings, indirect and copy
/// pools of two queues, I/O buffers).
const POOL_PAGES: usize = 3072;

#[repr(C, align(4096))]
struct Region<const N: usize>([u8; N]);

static mut HEAP: Region<HEAP_BYTES> = Region([0; HEAP_BYTES]);
static mut POOL: Region<{ POOL_PAGES * 4096 }> = Region([0; POOL_PAGES * 4096]);

#[global_allocator]
static ALLOCATOR: BumpHeap = BumpHeap::empty();

/// One IDT gate (interrupt gate, ring 0, code selector 0x08).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: usize) -> Self {
        let b = (handler as u64).to_le_bytes();
        Self {
            offset_low: u16::from_le_bytes([b[0], b[1]]),
            selector: 0x08,
            ist: 0,
            attributes: 0x8e,
            offset_mid: u16::from_le_bytes([b[2], b[3]]),
            offset_high: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            reserved: 0,
        }
    }
}

static mut IDT: [Gate; 256] = [Gate::EMPTY; 256];

unsafe extern "C" {
    fn exc_stub_0();
    fn exc_stub_1();
    fn exc_stub_2();
    fn exc_stub_3();
    fn exc_stub_4();
    fn exc_stub_5();
    fn exc_stub_6();
    fn exc_stub_7();
    fn exc_stub_8();
    fn exc_stub_9();
    fn exc_stub_10();
    fn exc_stub_11();
    fn exc_stub_12();
    fn exc_stub_13();
    fn exc_stub_14();
    fn exc_stub_15();
    fn exc_stub_16();
    fn exc_stub_17();
    fn exc_stub_18();
    fn exc_stub_19();
    fn upcall_stub();
    fn upcall_percpu_stub();
}

/// The operand of `lidt`.
#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

/// `lidt`'s limit: the table's size minus one.
const IDT_LIMIT: u16 = 256 * 16 - 1;
const _: () = assert!(core::mem::size_of::<[Gate; 256]>() == IDT_LIMIT as usize + 1);

fn load_idt() {
    let stubs: [unsafe extern "C" fn(); 20] = [
        exc_stub_0,
        exc_stub_1,
        exc_stub_2,
        exc_stub_3,
        exc_stub_4,
        exc_stub_5,
        exc_stub_6,
        exc_stub_7,
        exc_stub_8,
        exc_stub_9,
        exc_stub_10,
        exc_stub_11,
        exc_stub_12,
        exc_stub_13,
        exc_stub_14,
        exc_stub_15,
        exc_stub_16,
        exc_stub_17,
        exc_stub_18,
        exc_stub_19,
    ];
    let idt = &raw mut IDT;
    for (i, stub) in stubs.iter().enumerate() {
        // SAFETY: single-threaded boot code, interrupts off; nothing else
        // touches the IDT.
        unsafe { (*idt)[i] = Gate::new(*stub as *const () as usize) };
    }
    // SAFETY: as above.
    unsafe { (*idt)[usize::from(UPCALL_VECTOR)] = Gate::new(upcall_stub as *const () as usize) };
    // SAFETY: as above.
    unsafe {
        (*idt)[usize::from(PERCPU_UPCALL_VECTOR)] =
            Gate::new(upcall_percpu_stub as *const () as usize);
    }
    let ptr = IdtPointer {
        limit: IDT_LIMIT,
        base: idt as u64,
    };
    // SAFETY: the table is static and fully initialised; every present gate
    // points at a stub in start.S.
    unsafe { asm!("lidt [{}]", in(reg) &raw const ptr, options(readonly, nostack)) };
}

/// Called by the upcall stub: the callback vector is level-triggered on
/// `evtchn_upcall_pending`, so clear it here (the events themselves stay
/// pending in the bitmaps/queues for the checks' `poll`) and count.
#[unsafe(no_mangle)]
extern "C" fn kernel_upcall() {
    let pending = vcpu_info_addr();
    // SAFETY: vCPU 0's vcpu_info (shared info at the frame area, mapped before
    // the callback vector is set, or the page it was placed in); byte 0 is
    // `evtchn_upcall_pending`.
    unsafe { core::sync::atomic::AtomicU8::from_ptr(pending as *mut u8) }
        .store(0, Ordering::SeqCst);
    UPCALLS.fetch_add(1, Ordering::SeqCst);
}

/// Called by the per-vCPU upcall stub: an edge-triggered local APIC
/// interrupt, so clear `evtchn_upcall_pending` (the next event sets it again
/// and raises the next interrupt), count, and EOI the local APIC.
#[unsafe(no_mangle)]
extern "C" fn kernel_upcall_percpu() {
    // SAFETY: as in `kernel_upcall`.
    unsafe { core::sync::atomic::AtomicU8::from_ptr(vcpu_info_addr() as *mut u8) }
        .store(0, Ordering::SeqCst);
    PERCPU_UPCALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the local APIC's EOI register (offset 0xb0), identity-mapped
    // MMIO emulated by Xen; writing 0 ends the interrupt in service.
    unsafe { core::sync::atomic::AtomicU32::from_ptr((LAPIC_BASE + 0xb0) as *mut u32) }
        .store(0, Ordering::SeqCst);
}

/// Called by the exception stubs: report and crash the domain (`on_crash`
/// keeps it for `xl dmesg`).
#[unsafe(no_mangle)]
extern "C" fn kernel_exception(vector: u64, frame: *const u64) -> ! {
    // SAFETY: the stub passes a pointer to the error code, followed by the
    // CPU's interrupt frame (rip, cs, rflags, rsp, ss).
    let code = unsafe { frame.read() };
    // SAFETY: as above.
    let rip = unsafe { frame.wrapping_add(1).read() };
    let mut buf = [0u8; 96];
    let line = format_line(&mut buf, vector, code, rip);
    debug_port_write(line);
    crash()
}

fn format_line(buf: &mut [u8; 96], vector: u64, code: u64, rip: u64) -> &[u8] {
    use core::fmt::Write as _;
    struct W<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if let Some(slot) = self.0.get_mut(self.1) {
                    *slot = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut w = W(buf, 0);
    let _ = writeln!(
        w,
        "{REPORT_PREFIX} FAIL exception: vector {vector} error {code:#x} rip {rip:#x}"
    );
    let n = w.1;
    &buf[..n]
}

fn crash() -> ! {
    if let Ok(xen) = Xen::new(X86, None) {
        let _ = xen.shutdown(3);
    }
    loop {
        // SAFETY: halting with interrupts off stops this vCPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Entered from `start.S` with the boot protocol's registers: `boot_magic`
/// is Multiboot's (booted by QEMU's `-kernel`) or anything (PVH, or HVM
/// firmware: then `boot_info` is `hvm_start_info`; neither is read beyond
/// the magic). HVM either way when the Xen platform PCI device answers.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(boot_magic: u32, _boot_info: u32) -> ! {
    debug_port_write(b"\nXENPV-GUEST booting\n");
    let heap = &raw mut HEAP;
    // SAFETY: the heap region is static, used only by the allocator, and this
    // runs once before any allocation.
    unsafe { ALLOCATOR.init(heap as usize, HEAP_BYTES) };
    load_idt();
    let pool_base = &raw mut POOL;
    // SAFETY: the pool region is static, page-aligned, identity-mapped and
    // used only by the pool, which lives for the rest of the program.
    let pool = unsafe { PagePool::new(pool_base as usize, POOL_PAGES) };
    let pool: &'static PagePool = alloc::boxed::Box::leak(alloc::boxed::Box::new(pool));
    let log = Log::new();
    let summary = if boot_magic == hvm::MULTIBOOT_BOOT_MAGIC || hvm::is_hvm() {
        hvm::run(&log, pool)
    } else {
        checks::run(&log, pool)
    };
    let ms = Xen::new(X86, None).ok().map_or(0, |_| uptime_ms());
    log.line(format_args!(
        "{REPORT_PREFIX} done {} passed, {} failed, Xen uptime {ms} ms",
        summary.passed, summary.failed
    ));
    log.drain();
    if let Ok(xen) = Xen::new(X86, None) {
        let _ = xen.shutdown(SHUTDOWN_POWEROFF);
    }
    crash()
}

/// Domain uptime from vCPU 0's time info in shared info.
fn uptime_ms() -> u64 {
    use core::sync::atomic::{AtomicI8, AtomicU32, AtomicU64};
    use xenbus_core::guest::Cpu as _;
    // vcpu_info 0 is mapped by now; its time fields are tsc_timestamp at 40,
    // system_time at 48, mul at 56, shift at 60.
    let v = vcpu_info_addr();
    // SAFETY: a mapped, shared, aligned word.
    let ts = unsafe { AtomicU64::from_ptr((v + 40) as *mut u64) }.load(Ordering::SeqCst);
    // SAFETY: as above.
    let st = unsafe { AtomicU64::from_ptr((v + 48) as *mut u64) }.load(Ordering::SeqCst);
    // SAFETY: as above.
    let mul = unsafe { AtomicU32::from_ptr((v + 56) as *mut u32) }.load(Ordering::SeqCst);
    // SAFETY: as above.
    let shift = unsafe { AtomicI8::from_ptr((v + 60) as *mut i8) }.load(Ordering::SeqCst);
    let t = xenbus_core::guest::shared_info::TimeInfo {
        tsc_timestamp: ts,
        system_time: st,
        mul,
        shift,
    };
    t.system_time_at(X86.rdtsc()) / 1_000_000
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let log = Log::new();
    log.line(format_args!("{REPORT_PREFIX} FAIL panic: {info}"));
    crash()
}

// Memory intrinsics: on a -linux-gnu target compiler_builtins expects libc to
// provide them. `rep movsb`/`rep stosb` so the compiler cannot turn these
// bodies back into calls to themselves.

/// `memcpy`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract (non-overlapping, valid ranges).
    unsafe {
        asm!("rep movsb", inout("rdi") dest => _, inout("rsi") src => _, inout("rcx") n => _, options(nostack, preserves_flags));
    }
    dest
}

/// `memmove`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: forward copy is correct when dest is below src or disjoint.
        unsafe {
            asm!("rep movsb", inout("rdi") dest => _, inout("rsi") src => _, inout("rcx") n => _, options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: backward copy (direction flag set for the copy, cleared after)
        // from the last byte; the ranges are the caller's.
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rdi") dest.wrapping_add(n - 1) => _,
                 inout("rsi") src.wrapping_add(n - 1) => _, inout("rcx") n => _, options(nostack));
        }
    }
    dest
}

/// `memset`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract (valid range).
    unsafe {
        asm!("rep stosb", inout("rdi") dest => _, inout("rcx") n => _, in("al") c.to_le_bytes()[0], options(nostack, preserves_flags));
    }
    dest
}

/// `memcmp`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
    for i in 0..len {
        // SAFETY: the caller's contract (both ranges valid for `len` bytes).
        let l = unsafe { left.wrapping_add(i).read() };
        // SAFETY: as above.
        let r = unsafe { right.wrapping_add(i).read() };
        if l != r {
            return i32::from(l) - i32::from(r);
        }
    }
    0
}

/// `bcmp`.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(left, right, len) }
}

// The prebuilt `alloc` was compiled for unwinding and names these two symbols;
// with `panic = abort` nothing ever calls them.

/// Never called (panics abort).
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    crash()
}

/// Never called (panics abort).
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
