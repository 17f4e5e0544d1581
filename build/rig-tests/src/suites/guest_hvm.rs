//! `guest-hvm`: the same test kernel as `guest`, booted as an **HVM** domain
//! with QEMU's device model (the Xen platform PCI device, an emulated IDE
//! disk and rtl8139 NIC beside their PV backends). The kernel is the
//! domain's firmware (`firmware_override`, in place of hvmloader), so it
//! runs about a second after the domain starts. The kernel finds the Xen platform PCI device, puts shared info
//! and the grant frames in its memory BAR, unplugs the emulated devices and
//! checks that QEMU removed them (`platform_pci`, `unplug`,
//! `unplug_honoured`), then runs the PVH kernel's checks; this side serves
//! the same dom0 requests as `guest` (`super::guest::run_guest`).
//!
//! dom0 needs QEMU's device model for this: `cargo xtask rig test
//! guest-hvm` appends the HVM add-on to the initramfs (`rig --hvm`).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::guest::{GuestRun, GuestSpec, check_in, guest_tests, report_run, run_guest};
use crate::Suite;

/// The suite.
pub const SUITE: Suite = Suite {
    name: "guest-hvm",
    tests: guest_tests!(
        || report_run(hvm_run()?),
        check,
        "platform_pci",
        "unplug",
        "unplug_honoured"
    ),
    benches: &[],
};

/// The emulated (and PV) disk's image.
const DISK: &str = "/tmp/xenpv-guest-hvm.img";
/// QEMU's emulated serial port (unused by the kernel; kept for diagnosis).
const SERIAL_LOG: &str = "/tmp/xenpv-guest-hvm-serial.log";

/// The HVM domain: 32 MiB (no hvmloader or BIOS to hold, and less to copy
/// across save/restore), no display, the kernel as firmware, and `xvda`
/// and an rtl8139 NIC, which an HVM domain sees both emulated (IDE primary
/// master, PCI NIC: what the unplug checks remove) and as PV devices (after
/// the unplug, the vbd checks drive the same disk through blkfront, as
/// XENVBD does on Windows). Why not
/// hvmloader + SeaBIOS + `kernel=` (QEMU's Multiboot loader, which the
/// kernel's Multiboot header also serves): that option ROM's first fw_cfg
/// DMA transfer never completes under this Xen and QEMU 7.2 (`xenctx`
/// shows it spinning at c000:0100 on the descriptor's control word after
/// the write to port 0x518, for minutes), and `-global
/// fw_cfg_io.dma_enabled=off` does not make QEMU pick the port-I/O ROM.
const HVM: GuestSpec = GuestSpec {
    name: "xenpv-guest-hvm",
    config: |kernel| {
        format!(
            "type = \"hvm\"\nfirmware_override = \"{}\"\nmemory = 32\nvcpus = 1\n\
             vnc = 0\nsdl = 0\nvga = \"none\"\nserial = \"file:{SERIAL_LOG}\"\n\
             disk = [ \"format=raw,vdev=xvda,access=rw,target={DISK}\" ]\n\
             vif = [ \"bridge=xenbr0,model=rtl8139\" ]\n\
             on_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"preserve\"\n\
             tsc_mode = \"native\"\n",
            kernel.display()
        )
    },
    console_log: "/var/log/xen/console/guest-xenpv-guest-hvm.log",
    save_file: "/tmp/xenpv-guest-hvm.save",
    prepare,
    cleanup: || {
        let _ = std::fs::remove_file(DISK);
        let _ = std::fs::remove_file(SERIAL_LOG);
    },
};

/// The disk image, and the tun module QEMU's emulated NIC needs.
fn prepare() -> Result<(), String> {
    if !Path::new("/usr/libexec/xen-qemu-system-i386").exists() {
        return Err(
            "no device model in dom0 (/usr/libexec/xen-qemu-system-i386): boot with the HVM add-on (`cargo xtask rig test guest-hvm`)"
                .into(),
        );
    }
    let file = std::fs::File::create(DISK).map_err(|e| format!("{DISK}: {e}"))?;
    file.set_len(32 << 20).map_err(|e| format!("{DISK}: {e}"))?;
    let status = Command::new("modprobe")
        .arg("tun")
        .status()
        .map_err(|e| format!("modprobe tun: {e}"))?;
    if !status.success() {
        return Err(format!("modprobe tun: {status}"));
    }
    Ok(())
}

static RUN: OnceLock<Result<GuestRun, String>> = OnceLock::new();

fn hvm_run() -> Result<&'static GuestRun, String> {
    RUN.get_or_init(|| run_guest(&HVM))
        .as_ref()
        .map_err(Clone::clone)
}

fn check(name: &str) -> Result<(), String> {
    check_in(hvm_run()?, name)
}
