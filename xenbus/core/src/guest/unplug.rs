//! Unplugging QEMU's emulated disks and NICs (`docs/misc/hvm-emulated-unplug`):
//! the magic I/O ports 0x10/0x12 the Xen platform device decodes, so the PV
//! drivers own the devices and nothing sees them twice.
//!
//! [`Inventory`] records which emulated devices a guest sees (NICs in PCI
//! configuration space, ATA disks on the legacy IDE channels), so that what
//! was there before [`unplug`] and is gone after proves the device model
//! honoured the request ([`Inventory::remaining_after`]).
// The port accesses are the only unsafe operations here.
#![allow(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::cpu::Cpu;
use super::pci::{self, ConfigSpace, PciFunction};

/// The unplug/magic port.
pub const PORT_MAGIC: u16 = 0x10;
/// The version/product port.
pub const PORT_PRODUCT: u16 = 0x12;
/// What [`PORT_MAGIC`] reads when the protocol is there.
pub const MAGIC: u16 = 0x49d2;
/// What [`PORT_MAGIC`] reads after a blacklisted product registered.
pub const MAGIC_BLACKLISTED: u16 = 0xd249;
/// The product number of the Windows PV drivers in the protocol's registry
/// (QEMU logs it as such).
pub const PRODUCT_WINDOWS_PV: u16 = 1;

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

/// One of the four legacy ATA positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdePosition {
    /// The channel's command block (0x1F0 primary, 0x170 secondary).
    pub base: u16,
    /// The slave (device 1) rather than the master.
    pub slave: bool,
}

/// Primary master, primary slave, secondary master, secondary slave.
pub const IDE_POSITIONS: [IdePosition; 4] = [
    IdePosition {
        base: 0x1f0,
        slave: false,
    },
    IdePosition {
        base: 0x1f0,
        slave: true,
    },
    IdePosition {
        base: 0x170,
        slave: false,
    },
    IdePosition {
        base: 0x170,
        slave: true,
    },
];

impl fmt::Display for IdePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channel = if self.base == 0x1f0 {
            "primary"
        } else {
            "secondary"
        };
        let device = if self.slave { "slave" } else { "master" };
        write!(f, "{channel} {device}")
    }
}

/// ATA status register bits.
mod status {
    pub const ERR: u8 = 0x01;
    pub const DRQ: u8 = 0x08;
    pub const DRDY: u8 = 0x40;
    pub const BSY: u8 = 0x80;
}

/// `IDENTIFY DEVICE`.
const ATA_IDENTIFY: u8 = 0xec;
/// Status reads allowed while the drive is busy (QEMU answers at once).
const BUSY_POLLS: usize = 100_000;

/// What an `IDENTIFY DEVICE` answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identify {
    /// Model string (words 27-46, byte-swapped pairs, trailing spaces cut).
    pub model: String,
    /// 28-bit addressable sectors (words 60-61).
    pub sectors: u32,
}

impl Identify {
    /// Parses the 256 words of an answer (any words are accepted: the model
    /// keeps printable ASCII only).
    pub fn parse(words: &[u16; 256]) -> Self {
        let mut model = String::new();
        for w in &words[27..47] {
            for b in w.to_be_bytes() {
                model.push(if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '?'
                });
            }
        }
        let model = String::from(model.trim_end());
        let sectors = u32::from(words[60]) | u32::from(words[61]) << 16;
        Self { model, sectors }
    }
}

/// What a legacy IDE position holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveProbe {
    /// Nothing answers (status 0 or floating all-ones).
    Absent,
    /// Something answers but refuses `IDENTIFY DEVICE` (an ATAPI drive:
    /// CD-ROMs are never unplugged).
    NotAta,
    /// An ATA disk.
    Ata(Identify),
}

/// Probes `at` with `IDENTIFY DEVICE`.
///
/// # Safety
/// The legacy IDE ports are the caller's (no driver of its own uses them):
/// the probe selects a drive and issues a command there.
pub unsafe fn probe_ide<C: Cpu>(cpu: &C, at: IdePosition) -> DriveProbe {
    // SAFETY: the caller owns the channel; selecting a drive has no other effect.
    unsafe { cpu.outb(at.base + 6, if at.slave { 0xb0 } else { 0xa0 }) };
    // SAFETY: reading the status register only reports.
    let read_status = || unsafe { cpu.inb(at.base + 7) };
    // The 400 ns a selection takes to settle: four status reads.
    let mut s = 0;
    for _ in 0..4 {
        s = read_status();
    }
    if s == 0 || s == 0xff {
        return DriveProbe::Absent;
    }
    // SAFETY: the caller owns the channel; IDENTIFY only reports.
    unsafe { cpu.outb(at.base + 7, ATA_IDENTIFY) };
    let mut polls = 0;
    loop {
        s = read_status();
        if s & status::BSY == 0 || polls >= BUSY_POLLS {
            break;
        }
        polls += 1;
    }
    if s == 0 || s & (status::BSY | status::ERR) != 0 || s & status::DRQ == 0 {
        return if s == 0 {
            DriveProbe::Absent
        } else {
            DriveProbe::NotAta
        };
    }
    let mut words = [0u16; 256];
    for w in &mut words {
        // SAFETY: DRQ is set: the data register hands out the answer.
        *w = unsafe { cpu.inw(at.base) };
    }
    if s & status::DRDY == 0 {
        return DriveProbe::NotAta;
    }
    DriveProbe::Ata(Identify::parse(&words))
}

/// The emulated devices a guest sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Network controllers on bus 0.
    pub nics: Vec<PciFunction>,
    /// ATA disks on the legacy channels, by position.
    pub disks: Vec<(IdePosition, Identify)>,
}

impl Inventory {
    /// Takes the inventory through `cfg` (bus 0) and `cpu`'s IDE ports.
    ///
    /// # Safety
    /// As for [`probe_ide`].
    pub unsafe fn take<C: Cpu>(cpu: &C, cfg: &impl ConfigSpace) -> Self {
        let nics = pci::scan_bus(cfg, 0)
            .into_iter()
            .filter(PciFunction::is_network)
            .collect();
        let disks = IDE_POSITIONS
            .iter()
            .filter_map(|&at| {
                // SAFETY: the caller's contract.
                match unsafe { probe_ide(cpu, at) } {
                    DriveProbe::Ata(id) => Some((at, id)),
                    DriveProbe::Absent | DriveProbe::NotAta => None,
                }
            })
            .collect();
        Self { nics, disks }
    }

    /// What of `self` (taken before unplugging `mask`) is still in `after`
    /// although `mask` asked for it to go; empty when the device model
    /// honoured the request. A primary master under [`UnplugMask::AUX_DISKS`]
    /// alone is allowed to stay.
    pub fn remaining_after(&self, after: &Self, mask: UnplugMask) -> Vec<String> {
        let mut left = Vec::new();
        if mask.0 & UnplugMask::ALL_NICS.0 != 0 {
            for nic in &self.nics {
                if after.nics.iter().any(|n| n.address == nic.address) {
                    left.push(format!("NIC {nic}"));
                }
            }
        }
        let all_disks = mask.0 & UnplugMask::ALL_DISKS.0 != 0;
        let aux_disks = mask.0 & UnplugMask::AUX_DISKS.0 != 0;
        for (at, id) in &self.disks {
            let wanted = all_disks || (aux_disks && *at != IDE_POSITIONS[0]);
            if wanted && after.disks.iter().any(|(a, _)| a == at) {
                left.push(format!("IDE {at} disk {:?}", id.model));
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::fake_machine::{FakeFunction, FakeMachine};
    use crate::guest::pci::PortConfigSpace;

    fn machine() -> FakeMachine {
        let m = FakeMachine::with_platform();
        m.add(2, 0, FakeFunction::new(0x5853, 0x0001, 0xff, 0x80));
        m.add(4, 0, FakeFunction::new(0x10ec, 0x8139, 0x02, 0x00));
        m.add(1, 1, FakeFunction::new(0x8086, 0x7010, 0x01, 0x01));
        m.add(
            1,
            0,
            FakeFunction::new(0x8086, 0x7000, 0x06, 0x01).multifunction(),
        );
        m.add_disk(0, "QEMU HARDDISK");
        m
    }

    fn inventory(m: &FakeMachine) -> Inventory {
        // SAFETY: the fake machine's ports are ours.
        let cfg = unsafe { PortConfigSpace::new(m.clone()) };
        // SAFETY: as above.
        unsafe { Inventory::take(m, &cfg) }
    }

    #[test]
    fn unplug_registers_then_unplugs_and_qemu_honours_it() {
        let m = machine();
        let before = inventory(&m);
        assert_eq!(before.nics.len(), 1);
        assert_eq!(before.disks.len(), 1);
        assert_eq!(before.disks[0].1.model, "QEMU HARDDISK");
        assert_eq!(before.disks[0].1.sectors, 0x4000);
        let mask = UnplugMask::ALL_DISKS.union(UnplugMask::ALL_NICS);
        assert_eq!(unplug(&m, PRODUCT_WINDOWS_PV, 0x1234, mask), Ok(1));
        {
            let s = m.0.borrow();
            assert_eq!(s.product, Some(1));
            assert_eq!(s.build, Some(0x1234));
            assert_eq!(s.unplugged, [3]);
        }
        let after = inventory(&m);
        assert!(after.nics.is_empty() && after.disks.is_empty());
        assert!(before.remaining_after(&after, mask).is_empty());
    }

    #[test]
    fn a_device_model_that_ignores_the_request_is_caught() {
        let m = machine();
        let before = inventory(&m);
        // Nothing unplugged: the same devices are there after.
        let left =
            before.remaining_after(&before, UnplugMask::ALL_DISKS.union(UnplugMask::ALL_NICS));
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[0].starts_with("NIC 00:04.0 10ec:8139"), "{left:?}");
        assert!(left[1].contains("primary master"), "{left:?}");
        // Only NICs asked for: the disk may stay.
        assert_eq!(
            before.remaining_after(&before, UnplugMask::ALL_NICS).len(),
            1
        );
        // AUX disks only: the primary master may stay.
        assert_eq!(
            before.remaining_after(&before, UnplugMask::AUX_DISKS).len(),
            0
        );
    }

    #[test]
    fn no_platform_device_no_protocol() {
        let m = FakeMachine::default();
        assert_eq!(
            unplug(&m, PRODUCT_WINDOWS_PV, 1, UnplugMask::ALL_NICS),
            Err(UnplugError::NoProtocol)
        );
        assert!(m.0.borrow().unplugged.is_empty());
    }

    #[test]
    fn blacklisted_products_unplug_nothing() {
        let m = machine();
        m.0.borrow_mut().blacklist = true;
        assert_eq!(
            unplug(&m, PRODUCT_WINDOWS_PV, 1, UnplugMask::ALL_NICS),
            Err(UnplugError::Blacklisted)
        );
        assert!(m.0.borrow().unplugged.is_empty());
    }

    #[test]
    fn version_zero_skips_registration() {
        let m = machine();
        m.0.borrow_mut().unplug_version = 0;
        assert_eq!(
            unplug(&m, PRODUCT_WINDOWS_PV, 1, UnplugMask::ALL_NICS),
            Ok(0)
        );
        let s = m.0.borrow();
        assert_eq!((s.product, s.build), (None, None));
        assert_eq!(s.unplugged, [2]);
    }

    #[test]
    fn empty_positions_are_absent() {
        let m = FakeMachine::default();
        for at in IDE_POSITIONS {
            // SAFETY: the fake machine's ports are ours.
            assert_eq!(unsafe { probe_ide(&m, at) }, DriveProbe::Absent);
        }
    }

    #[test]
    fn identify_parses_any_words() {
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut words = [0u16; 256];
            for w in &mut words {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                *w = u16::try_from(seed >> 48).unwrap_or(0);
            }
            let id = Identify::parse(&words);
            assert!(id.model.len() <= 40);
            assert!(id.model.bytes().all(|b| b.is_ascii()));
        }
    }
}
