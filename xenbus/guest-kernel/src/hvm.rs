//! The HVM variant: the same kernel as an HVM domain's firmware
//! (`firmware_override`, entered like PVH in place of hvmloader, QEMU's
//! device model running beside it), or booted by a Multiboot loader (QEMU's
//! `-kernel`). It does what XENBUS does first on Windows, then runs the PVH
//! kernel's checks:
//! * `platform_pci`: finds the Xen platform PCI device (5853:0001) through
//!   configuration space and takes its memory BAR as the frame area for
//!   shared info and the grant frames (placing the BAR first when no
//!   firmware did, as hvmloader would);
//! * `unplug`: takes an inventory of the emulated NICs and IDE disks, then
//!   runs the unplug handshake (magic, product/build registration, unplug
//!   of all disks and NICs);
//! * `unplug_honoured`: the inventory again: every NIC function has left
//!   configuration space and no IDE disk answers `IDENTIFY` any more.
//!
//! The logic is `xenbus_core::guest::{pci, unplug}`; this is the wiring.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus_core::guest::Cpu as _;
use xenbus_core::guest::pci::{self, PciFunction, PortConfigSpace, XenPlatformDevice};
use xenbus_core::guest::unplug::{self, Inventory, PRODUCT_WINDOWS_PV, UnplugMask};

use crate::checks::{self, Summary};
use crate::log::Log;
use crate::pool::PagePool;
use crate::x86::X86;
use crate::{FRAME_AREA_PAGES, FrameArea, REPORT_PREFIX};

/// What a Multiboot loader leaves in `%eax`.
pub const MULTIBOOT_BOOT_MAGIC: u32 = 0x2BAD_B002;

/// Where the platform device's memory BAR goes when no firmware placed it:
/// the start of hvmloader's default PCI hole, free in a small domain.
pub const PLATFORM_BAR_PLACE: u64 = 0xf000_0000;

/// Whether this is an HVM domain: a Xen platform PCI device answers in
/// configuration space. (Under PVH nothing decodes ports 0xCF8/0xCFC: Xen
/// reads all-ones.)
pub fn is_hvm() -> bool {
    // SAFETY: nothing else in this kernel uses the configuration ports;
    // the scan only reads.
    let cfg = unsafe { PortConfigSpace::new(X86) };
    pci::scan_bus(&cfg, 0)
        .iter()
        .any(PciFunction::is_xen_platform)
}

/// The build number registered with the device model (this crate's version
/// as `major << 16 | minor << 8 | patch`).
pub fn build_number() -> u32 {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0).min(255));
    let mut next = || parts.next().unwrap_or(0);
    (next() << 16) | (next() << 8) | next()
}

fn report(log: &Log, summary: &mut Summary, name: &str, result: Result<String, String>) {
    match result {
        Ok(detail) => {
            log.line(format_args!("{REPORT_PREFIX} ok {name} (0 ms) {detail}"));
            summary.passed += 1;
        }
        Err(reason) => {
            log.line(format_args!("{REPORT_PREFIX} FAIL {name}: {reason}"));
            summary.failed += 1;
        }
    }
}

/// Masks both 8259 PICs: SeaBIOS left the timer on IRQ 0 at vector 8, which
/// would arrive as a double fault once the checks enable interrupts.
fn mask_legacy_pic() {
    // SAFETY: the PIC's mask registers; nothing in this kernel uses legacy
    // interrupts (event channels arrive on their own vectors).
    unsafe { X86.outb(0x21, 0xff) };
    // SAFETY: as above, the slave PIC.
    unsafe { X86.outb(0xa1, 0xff) };
}

fn describe(inventory: &Inventory) -> String {
    let nics: Vec<String> = inventory.nics.iter().map(|n| format!("{n}")).collect();
    let disks: Vec<String> = inventory
        .disks
        .iter()
        .map(|(at, id)| format!("{at} {:?} {} sectors", id.model, id.sectors))
        .collect();
    format!(
        "NICs [{}], IDE disks [{}]",
        nics.join(", "),
        disks.join(", ")
    )
}

/// Runs the HVM checks, then [`checks::run_with`] in the platform device's
/// BAR.
pub fn run(log: &Log, pool: &'static PagePool) -> Summary {
    let mut summary = Summary::default();
    mask_legacy_pic();
    // SAFETY: this kernel is the only user of ports 0xCF8-0xCFF and owns
    // every device on the bus.
    let cfg = unsafe { PortConfigSpace::new(X86) };
    let platform = XenPlatformDevice::find_placing(&cfg, Some(PLATFORM_BAR_PLACE))
        .and_then(|dev| dev.frame_area(FRAME_AREA_PAGES).map(|area| (dev, area)));
    let area = match platform {
        Ok((dev, (addr, gpfn))) => {
            let io = dev
                .io
                .map_or_else(|| String::from("none"), |b| format!("{b}"));
            report(
                log,
                &mut summary,
                "platform_pci",
                Ok(format!(
                    "{} rev {}, I/O BAR {io}, memory BAR {:#x} {} KiB ({}); frame area {FRAME_AREA_PAGES} pages at {addr:#x}",
                    dev.function,
                    dev.function.revision,
                    dev.mmio_base,
                    dev.mmio_size / 1024,
                    if dev.placed {
                        "placed here: no firmware ran"
                    } else {
                        "as firmware assigned it"
                    }
                )),
            );
            Some(FrameArea {
                gpfn,
                pages: FRAME_AREA_PAGES,
            })
        }
        Err(e) => {
            report(log, &mut summary, "platform_pci", Err(format!("{e}")));
            None
        }
    };
    // SAFETY: nothing else drives the legacy IDE channels.
    let before = unsafe { Inventory::take(&X86, &cfg) };
    let mask = UnplugMask::ALL_DISKS.union(UnplugMask::ALL_NICS);
    let build = build_number();
    let unplugged = unplug::unplug(&X86, PRODUCT_WINDOWS_PV, build, mask);
    report(
        log,
        &mut summary,
        "unplug",
        unplugged
            .map(|version| {
                format!(
                    "protocol version {version}, product {PRODUCT_WINDOWS_PV} build {build:#x} registered, mask {:#x}; before: {}",
                    mask.0,
                    describe(&before)
                )
            })
            .map_err(|e| format!("{e:?}")),
    );
    if unplugged.is_ok() {
        // SAFETY: as above.
        let after = unsafe { Inventory::take(&X86, &cfg) };
        let left = before.remaining_after(&after, mask);
        let result = if before.nics.is_empty() || before.disks.is_empty() {
            Err(format!(
                "nothing to prove it with (the domain needs an emulated NIC and IDE disk): {}",
                describe(&before)
            ))
        } else if left.is_empty() {
            Ok(format!(
                "{} NIC function(s) left configuration space, {} IDE disk(s) stopped answering; after: {}",
                before.nics.len(),
                before.disks.len(),
                describe(&after)
            ))
        } else {
            Err(format!("still there after unplug: {}", left.join("; ")))
        };
        report(log, &mut summary, "unplug_honoured", result);
    }
    match area {
        Some(area) => checks::run_with(log, pool, area, summary),
        None => summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_number_packs_the_version() {
        let b = build_number();
        let v: Vec<u32> = env!("CARGO_PKG_VERSION")
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(b, (v[0] << 16) | (v[1] << 8) | v[2]);
    }
}
