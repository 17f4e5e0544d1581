//! Unplugging QEMU's emulated disks and NICs (`docs/misc/hvm-emulated-unplug`):
//! the magic I/O ports 0x10/0x12 the Xen platform device decodes, so the PV
//! drivers own the devices and nothing sees them twice.
// The port accesses are the only unsafe operations here.
#![allow(unsafe_code)]

use super::cpu::Cpu;

/// The unplug/magic port.
pub const PORT_MAGIC: u16 = 0x10;
/// The version/product port.
pub const PORT_PRODUCT: u16 = 0x12;
/// What [`PORT_MAGIC`] reads when the protocol is there.
pub const MAGIC: u16 = 0x49d2;

/// Devices to unplug (bits written to [`PORT_MAGIC`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnplugMask(pub u16);

impl UnplugMask {
    /// All emulated IDE and SCSI disks.
    pub const ALL_DISKS: Self = Self(1);
    /// All emulated NICs.
    pub const ALL_NICS: Self = Self(2);
    /// Auxiliary IDE disks (all but the primary master).
    pub const AUX_DISKS: Self = Self(4);
    /// All emulated NVMe disks.
    pub const NVME_DISKS: Self = Self(8);

    /// Both masks' devices.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Why unplugging did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnplugError {
    /// No magic at port 0x10: no Xen platform device (PVH, or an old QEMU).
    NoProtocol,
    /// The device model refused our product/build (blacklisted).
    Blacklisted,
}

/// Registers `product`/`build` with the device model and unplugs `mask`.
/// Returns the protocol version the device model speaks.
pub fn unplug<C: Cpu>(
    cpu: &C,
    product: u16,
    build: u32,
    mask: UnplugMask,
) -> Result<u8, UnplugError> {
    // SAFETY: reading the magic port of the Xen platform device has no side
    // effect; on a machine without it the read returns all-ones.
    let magic = unsafe { cpu.inw(PORT_MAGIC) };
    if magic != MAGIC {
        return Err(UnplugError::NoProtocol);
    }
    // SAFETY: the platform device decodes this port (magic seen).
    let version = unsafe { cpu.inb(PORT_PRODUCT) };
    if version >= 1 {
        // SAFETY: product then build registration, as the protocol orders.
        unsafe { cpu.outw(PORT_PRODUCT, product) };
        // SAFETY: as above.
        unsafe { cpu.outl(PORT_MAGIC, build) };
        // SAFETY: re-reading the magic tells whether we were accepted.
        if unsafe { cpu.inw(PORT_MAGIC) } != MAGIC {
            return Err(UnplugError::Blacklisted);
        }
    }
    // SAFETY: the caller asked for these devices to go; the PV drivers take over.
    unsafe { cpu.outw(PORT_MAGIC, mask.0) };
    Ok(version)
}
