//! PCI configuration space as an HVM guest sees it, and the one device
//! XENBUS needs from it: the Xen platform device (vendor 0x5853), whose
//! memory BAR is where XENBUS places shared info and the grant frames, and
//! whose presence says the unplug protocol ([`super::unplug`]) is there.
//!
//! [`ConfigSpace`] is the access method (configuration mechanism #1 over
//! ports 0xCF8/0xCFC in [`PortConfigSpace`], a table in tests); everything
//! else is plain logic over it. Values read from configuration space come
//! from the device model: every one is decoded with checked arithmetic and
//! every walk is bounded by the 256 functions of a bus.
// The port accesses of `PortConfigSpace` are the only unsafe operations here.
#![allow(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use super::cpu::Cpu;

/// Configuration mechanism #1: the address port.
pub const CONFIG_ADDRESS: u16 = 0xcf8;
/// Configuration mechanism #1: the data port.
pub const CONFIG_DATA: u16 = 0xcfc;

/// The Xen platform device's vendor ID ("XenSource").
pub const XEN_PLATFORM_VENDOR: u16 = 0x5853;
/// Its device IDs: 0x0001 (QEMU's `xen-platform`) and 0x0002 (the variant
/// some toolstacks expose for a vendor-specific driver set).
pub const XEN_PLATFORM_DEVICES: [u16; 2] = [0x0001, 0x0002];

/// Register offsets of a type-0 header.
pub mod reg {
    /// Vendor ID (low 16 bits) and device ID (high 16 bits).
    pub const ID: u8 = 0x00;
    /// Command (low 16 bits) and status (high 16 bits).
    pub const COMMAND: u8 = 0x04;
    /// Revision, programming interface, subclass, class (low to high byte).
    pub const CLASS: u8 = 0x08;
    /// Cache line size, latency timer, header type, BIST.
    pub const HEADER: u8 = 0x0c;
    /// Base address register 0; BAR n is at `BAR0 + 4 * n`.
    pub const BAR0: u8 = 0x10;
}

/// Command register: I/O space decoding.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command register: memory space decoding.
pub const COMMAND_MEMORY: u16 = 1 << 1;

/// Header type (low 7 bits) of an ordinary device.
pub const HEADER_TYPE_DEVICE: u8 = 0;

/// Class code of network controllers.
pub const CLASS_NETWORK: u8 = 0x02;
/// Class code of mass storage controllers.
pub const CLASS_STORAGE: u8 = 0x01;

/// Bus, device and function of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciAddress {
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// `bus:device.function`, or `None` if `device` > 31 or `function` > 7.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < 32 && function < 8 {
            Some(Self {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// The bus.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device (0-31).
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function (0-7).
    pub const fn function(self) -> u8 {
        self.function
    }

    /// The value of [`CONFIG_ADDRESS`] that selects dword `offset` of this
    /// function (the low two bits of `offset` are ignored).
    pub const fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (self.bus as u32) << 16
            | (self.device as u32) << 11
            | (self.function as u32) << 8
            | (offset & 0xfc) as u32
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Dword access to configuration space.
pub trait ConfigSpace {
    /// Reads the dword at `offset` (a multiple of 4) of `at`; all-ones when
    /// no function answers.
    fn read32(&self, at: PciAddress, offset: u8) -> u32;
    /// Writes the dword at `offset` (a multiple of 4) of `at`.
    fn write32(&self, at: PciAddress, offset: u8, value: u32);
}

/// Configuration mechanism #1 over [`CONFIG_ADDRESS`]/[`CONFIG_DATA`].
#[derive(Clone, Debug)]
pub struct PortConfigSpace<C> {
    cpu: C,
}

impl<C: Cpu> PortConfigSpace<C> {
    /// Configuration space through `cpu`'s ports.
    ///
    /// # Safety
    /// Nothing else uses ports 0xCF8-0xCFF while this value lives (the
    /// address/data pair is not atomic), and the caller owns the devices it
    /// writes the registers of through it.
    pub const unsafe fn new(cpu: C) -> Self {
        Self { cpu }
    }
}

impl<C: Cpu> ConfigSpace for PortConfigSpace<C> {
    fn read32(&self, at: PciAddress, offset: u8) -> u32 {
        // SAFETY: `new`'s contract: we own the mechanism; selecting a
        // register and reading it has no effect on the function.
        unsafe { self.cpu.outl(CONFIG_ADDRESS, at.config_address(offset)) };
        // SAFETY: as above.
        unsafe { self.cpu.inl(CONFIG_DATA) }
    }

    fn write32(&self, at: PciAddress, offset: u8, value: u32) {
        // SAFETY: `new`'s contract: we own the mechanism.
        unsafe { self.cpu.outl(CONFIG_ADDRESS, at.config_address(offset)) };
        // SAFETY: `new`'s contract: the caller owns the device it writes.
        unsafe { self.cpu.outl(CONFIG_DATA, value) };
    }
}

/// The identity of one present function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// Where it is.
    pub address: PciAddress,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Base class.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision.
    pub revision: u8,
    /// Header type (bit 7: multi-function device).
    pub header_type: u8,
}

impl PciFunction {
    /// Reads the identity of the function at `at`; `None` if nothing answers
    /// (vendor all-ones, or zero as some emulations return).
    pub fn read(cfg: &impl ConfigSpace, at: PciAddress) -> Option<Self> {
        let id = cfg.read32(at, reg::ID);
        let [v0, v1, d0, d1] = id.to_le_bytes();
        let vendor = u16::from_le_bytes([v0, v1]);
        if vendor == 0xffff || vendor == 0 {
            return None;
        }
        let [revision, prog_if, subclass, class] = cfg.read32(at, reg::CLASS).to_le_bytes();
        let header_type = cfg.read32(at, reg::HEADER).to_le_bytes()[2];
        Some(Self {
            address: at,
            vendor,
            device: u16::from_le_bytes([d0, d1]),
            class,
            subclass,
            prog_if,
            revision,
            header_type,
        })
    }

    /// A network controller (what "unplug all NICs" removes).
    pub const fn is_network(&self) -> bool {
        self.class == CLASS_NETWORK
    }

    /// The Xen platform device.
    pub fn is_xen_platform(&self) -> bool {
        self.vendor == XEN_PLATFORM_VENDOR && XEN_PLATFORM_DEVICES.contains(&self.device)
    }

    const fn is_multifunction(&self) -> bool {
        self.header_type & 0x80 != 0
    }

    /// A type-0 (ordinary device) header, the only kind with six BARs.
    pub const fn is_type0(&self) -> bool {
        self.header_type & 0x7f == HEADER_TYPE_DEVICE
    }
}

impl fmt::Display for PciFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:02x}{:02x}",
            self.address, self.vendor, self.device, self.class, self.subclass
        )
    }
}

/// Every function present on `bus` (functions 1-7 only behind a
/// multi-function function 0, as the specification requires). At most 256.
pub fn scan_bus(cfg: &impl ConfigSpace, bus: u8) -> Vec<PciFunction> {
    let mut found = Vec::new();
    for device in 0..32 {
        let Some(at) = PciAddress::new(bus, device, 0) else {
            continue;
        };
        let Some(first) = PciFunction::read(cfg, at) else {
            continue;
        };
        found.push(first);
        if first.is_multifunction() {
            for function in 1..8 {
                if let Some(f) =
                    PciAddress::new(bus, device, function).and_then(|a| PciFunction::read(cfg, a))
                {
                    found.push(f);
                }
            }
        }
    }
    found
}

/// One decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// A memory range.
    Memory {
        /// Guest-physical base.
        base: u64,
        /// Length in bytes (a power of two).
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
        /// A 64-bit BAR (it takes the next register too).
        wide: bool,
    },
    /// An I/O port range.
    Io {
        /// First port.
        base: u32,
        /// Number of ports (a power of two).
        size: u32,
    },
}

/// Why a BAR could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// The BAR index is past the header's six (or a 64-bit BAR in BAR 5).
    BadIndex(u8),
    /// The device answered the sizing write with a value no BAR can have
    /// (memory type 1 or 3, or a size mask with holes).
    Malformed {
        /// The register as read.
        value: u32,
        /// What it read back after all-ones were written.
        sized: u32,
    },
}

impl Bar {
    /// Decodes a BAR from its value and what it read back after all-ones
    /// were written (`high`: the same pair for the upper register of a
    /// 64-bit BAR). `Ok(None)`: the BAR is not implemented.
    pub fn decode(
        value: u32,
        sized: u32,
        high: Option<(u32, u32)>,
    ) -> Result<Option<Self>, BarError> {
        let malformed = BarError::Malformed { value, sized };
        if value & 1 == 1 {
            let mask = sized & 0xffff_fffc;
            if mask == 0 {
                return Ok(None);
            }
            // Only the 16 low bits decode on x86; the upper ones may read 0.
            let mask = mask | 0xffff_0000;
            let size = (!mask).wrapping_add(1);
            if !size.is_power_of_two() {
                return Err(malformed);
            }
            return Ok(Some(Self::Io {
                base: value & 0xffff_fffc,
                size,
            }));
        }
        let prefetchable = value & 0x8 != 0;
        let (base, mask, wide) = match (value >> 1) & 3 {
            0 => (
                u64::from(value & 0xffff_fff0),
                u64::from(sized & 0xffff_fff0) | 0xffff_ffff_0000_0000,
                false,
            ),
            2 => {
                let (hv, hs) = high.ok_or(malformed)?;
                (
                    u64::from(value & 0xffff_fff0) | u64::from(hv) << 32,
                    u64::from(sized & 0xffff_fff0) | u64::from(hs) << 32,
                    true,
                )
            }
            _ => return Err(malformed),
        };
        if mask & 0xffff_fff0 == 0 && (!wide || mask >> 32 == 0) {
            return Ok(None);
        }
        let size = (!mask).wrapping_add(1);
        if size == 0 || !size.is_power_of_two() {
            return Err(malformed);
        }
        Ok(Some(Self::Memory {
            base,
            size,
            prefetchable,
            wide,
        }))
    }

    /// Reads and sizes BAR `index` of the type-0 function at `at`, with
    /// decoding switched off while all-ones sit in the register (else the
    /// device would claim the whole address space for a moment), and
    /// everything put back as it was.
    pub fn read(
        cfg: &impl ConfigSpace,
        at: PciAddress,
        index: u8,
    ) -> Result<Option<Self>, BarError> {
        if index > 5 {
            return Err(BarError::BadIndex(index));
        }
        let offset = reg::BAR0 + 4 * index;
        let command = cfg.read32(at, reg::COMMAND);
        cfg.write32(
            at,
            reg::COMMAND,
            command & !u32::from(COMMAND_IO | COMMAND_MEMORY),
        );
        let size = |offset: u8| {
            let value = cfg.read32(at, offset);
            cfg.write32(at, offset, 0xffff_ffff);
            let sized = cfg.read32(at, offset);
            cfg.write32(at, offset, value);
            (value, sized)
        };
        let (value, sized) = size(offset);
        let high = if value & 1 == 0 && (value >> 1) & 3 == 2 {
            if index == 5 {
                cfg.write32(at, reg::COMMAND, command);
                return Err(BarError::BadIndex(index));
            }
            Some(size(offset + 4))
        } else {
            None
        };
        cfg.write32(at, reg::COMMAND, command);
        Self::decode(value, sized, high)
    }

    /// Whether this takes two registers.
    pub const fn is_wide(&self) -> bool {
        matches!(self, Self::Memory { wide: true, .. })
    }
}

impl fmt::Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory {
                base,
                size,
                prefetchable,
                ..
            } => write!(
                f,
                "mem {base:#x} {} KiB{}",
                size / 1024,
                if *prefetchable { " pref" } else { "" }
            ),
            Self::Io { base, size } => write!(f, "io {base:#x} {size} ports"),
        }
    }
}

/// Why the platform device cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformPciError {
    /// No 5853:0001/0002 on bus 0 (PVH, or no device model).
    NotFound,
    /// Its header is not type 0.
    NotType0(PciAddress),
    /// A BAR did not decode.
    Bar(BarError),
    /// No memory BAR.
    NoMemoryBar,
    /// The memory BAR is not where a frame can go (unassigned, not
    /// page-aligned, or above the guest-physical range we can name).
    Misplaced {
        /// Its base.
        base: u64,
    },
    /// The memory BAR is smaller than what the caller needs.
    TooSmall {
        /// Its size in bytes.
        size: u64,
        /// Bytes needed.
        needed: u64,
    },
}

impl fmt::Display for PlatformPciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no Xen platform PCI device on bus 0"),
            Self::NotType0(at) => write!(f, "platform device {at}: not a type-0 header"),
            Self::Bar(e) => write!(f, "platform device BAR: {e:?}"),
            Self::NoMemoryBar => f.write_str("platform device has no memory BAR"),
            Self::Misplaced { base } => {
                write!(f, "platform device memory BAR at {base:#x} is unusable")
            }
            Self::TooSmall { size, needed } => write!(
                f,
                "platform device memory BAR of {size} bytes, {needed} needed"
            ),
        }
    }
}

/// The Xen platform device, found and decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenPlatformDevice {
    /// Its identity.
    pub function: PciFunction,
    /// Its I/O BAR, if any.
    pub io: Option<Bar>,
    /// Base of its memory BAR.
    pub mmio_base: u64,
    /// Size of its memory BAR.
    pub mmio_size: u64,
    /// The memory BAR was unassigned (no firmware ran) and
    /// [`XenPlatformDevice::find_placing`] placed it.
    pub placed: bool,
}

impl XenPlatformDevice {
    /// Finds the platform device on bus 0, decodes its BARs and makes sure
    /// memory and I/O decoding are on (firmware normally did).
    pub fn find(cfg: &impl ConfigSpace) -> Result<Self, PlatformPciError> {
        Self::find_placing(cfg, None)
    }

    /// As [`XenPlatformDevice::find`], but when no firmware assigned the
    /// memory BAR (it reads 0), places it at `place` (rounded up to the
    /// BAR's natural alignment), as firmware would. Only for a guest that
    /// is its own firmware and knows `place` is free guest-physical space.
    pub fn find_placing(
        cfg: &impl ConfigSpace,
        place: Option<u64>,
    ) -> Result<Self, PlatformPciError> {
        let function = scan_bus(cfg, 0)
            .into_iter()
            .find(PciFunction::is_xen_platform)
            .ok_or(PlatformPciError::NotFound)?;
        let at = function.address;
        if !function.is_type0() {
            return Err(PlatformPciError::NotType0(at));
        }
        let mut io = None;
        let mut mmio = None;
        let mut index = 0;
        while index < 6 {
            let bar = Bar::read(cfg, at, index).map_err(PlatformPciError::Bar)?;
            let bar_index = index;
            index += if bar.is_some_and(|b| b.is_wide()) {
                2
            } else {
                1
            };
            match bar {
                Some(b @ Bar::Io { .. }) if io.is_none() => io = Some(b),
                Some(Bar::Memory { base, size, .. }) if mmio.is_none() => {
                    mmio = Some((bar_index, base, size));
                }
                _ => {}
            }
        }
        let (bar_index, mut mmio_base, mmio_size) = mmio.ok_or(PlatformPciError::NoMemoryBar)?;
        let mut placed = false;
        if let (0, Some(place)) = (mmio_base, place) {
            let aligned = place
                .checked_next_multiple_of(mmio_size)
                .filter(|b| b.checked_add(mmio_size).is_some_and(|end| end <= 1 << 32))
                .ok_or(PlatformPciError::Misplaced { base: place })?;
            let offset = reg::BAR0 + 4 * bar_index;
            let flags = cfg.read32(at, offset) & 0xf;
            let low = u32::try_from(aligned)
                .map_err(|_| PlatformPciError::Misplaced { base: aligned })?;
            cfg.write32(at, offset, low | flags);
            if flags & 0x6 == 0x4 {
                cfg.write32(at, offset + 4, 0);
            }
            mmio_base = match Bar::read(cfg, at, bar_index).map_err(PlatformPciError::Bar)? {
                Some(Bar::Memory { base, .. }) => base,
                _ => 0,
            };
            placed = true;
        }
        if mmio_base == 0 || mmio_base % 4096 != 0 {
            return Err(PlatformPciError::Misplaced { base: mmio_base });
        }
        let command = cfg.read32(at, reg::COMMAND);
        let io_assigned = matches!(io, Some(Bar::Io { base, .. }) if base != 0);
        let wanted = u32::from(COMMAND_MEMORY | if io_assigned { COMMAND_IO } else { 0 });
        if command & wanted != wanted {
            // Keep the status half untouched: its bits are write-1-to-clear.
            cfg.write32(at, reg::COMMAND, (command & 0xffff) | wanted);
        }
        Ok(Self {
            function,
            io,
            mmio_base,
            mmio_size,
            placed,
        })
    }

    /// The first `pages` pages of the memory BAR as a frame area: its
    /// address and first guest frame number.
    pub fn frame_area(&self, pages: usize) -> Result<(u64, u64), PlatformPciError> {
        let needed = u64::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(4096))
            .ok_or(PlatformPciError::TooSmall {
                size: self.mmio_size,
                needed: u64::MAX,
            })?;
        if needed > self.mmio_size {
            return Err(PlatformPciError::TooSmall {
                size: self.mmio_size,
                needed,
            });
        }
        Ok((self.mmio_base, self.mmio_base >> 12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::fake_machine::{FakeFunction, FakeMachine};
    use proptest::prelude::*;

    fn platform() -> FakeFunction {
        FakeFunction::new(0x5853, 0x0001, 0xff, 0x80)
            .with_bar(0, 0xc001, 0xffff_ff01)
            .with_bar(1, 0xf000_0008, 0xff00_0008)
    }

    fn machine() -> FakeMachine {
        let m = FakeMachine::default();
        m.add(0, 0, FakeFunction::new(0x8086, 0x1237, 0x06, 0x00));
        m.add(
            1,
            0,
            FakeFunction::new(0x8086, 0x7000, 0x06, 0x01).multifunction(),
        );
        m.add(1, 1, FakeFunction::new(0x8086, 0x7010, 0x01, 0x01));
        m.add(2, 0, platform());
        m.add(4, 0, FakeFunction::new(0x10ec, 0x8139, 0x02, 0x00));
        m
    }

    fn cfg(m: &FakeMachine) -> PortConfigSpace<FakeMachine> {
        // SAFETY: the fake machine has no one else on its ports.
        unsafe { PortConfigSpace::new(m.clone()) }
    }

    #[test]
    fn config_addresses_follow_mechanism_one() {
        let at = PciAddress::new(0, 3, 0).unwrap();
        assert_eq!(at.config_address(0x10), 0x8000_1810);
        assert_eq!(
            PciAddress::new(1, 31, 7).unwrap().config_address(0xff),
            0x8001_fffc
        );
        assert!(PciAddress::new(0, 32, 0).is_none());
        assert!(PciAddress::new(0, 0, 8).is_none());
        assert_eq!(alloc::format!("{at}"), "00:03.0");
    }

    #[test]
    fn scan_finds_functions_behind_multifunction_devices_only() {
        let m = machine();
        // A function 1 behind a single-function device must not be reported.
        m.add(4, 1, FakeFunction::new(0x1234, 0x5678, 0x02, 0x00));
        let found = scan_bus(&cfg(&m), 0);
        let ids: Vec<(u8, u8, u16)> = found
            .iter()
            .map(|f| (f.address.device(), f.address.function(), f.device))
            .collect();
        assert_eq!(
            ids,
            [
                (0, 0, 0x1237),
                (1, 0, 0x7000),
                (1, 1, 0x7010),
                (2, 0, 1),
                (4, 0, 0x8139)
            ]
        );
        assert!(found[4].is_network());
        assert!(found[3].is_xen_platform());
    }

    #[test]
    fn platform_device_found_with_its_bars_and_decoding_on() {
        let m = machine();
        let dev = XenPlatformDevice::find(&cfg(&m)).unwrap();
        assert_eq!(dev.function.address, PciAddress::new(0, 2, 0).unwrap());
        assert_eq!(
            dev.io,
            Some(Bar::Io {
                base: 0xc000,
                size: 256
            })
        );
        assert_eq!((dev.mmio_base, dev.mmio_size), (0xf000_0000, 16 << 20));
        assert_eq!(dev.frame_area(65), Ok((0xf000_0000, 0xf_0000)));
        assert_eq!(
            dev.frame_area(4097),
            Err(PlatformPciError::TooSmall {
                size: 16 << 20,
                needed: 4097 * 4096
            })
        );
        let command = m.config(2, 0, reg::COMMAND);
        assert_eq!(command & 3, 3, "decoding switched on");
        // BARs are back to their values after sizing.
        assert_eq!(m.config(2, 0, reg::BAR0), 0xc001);
        assert_eq!(m.config(2, 0, reg::BAR0 + 4), 0xf000_0008);
    }

    #[test]
    fn without_firmware_the_memory_bar_is_placed() {
        let m = FakeMachine::default();
        m.add(
            3,
            0,
            FakeFunction::new(0x5853, 0x0001, 0xff, 0x80)
                .with_bar(0, 0x1, 0xffff_ff01)
                .with_bar(1, 0x8, 0xff00_0008),
        );
        assert_eq!(
            XenPlatformDevice::find(&cfg(&m)),
            Err(PlatformPciError::Misplaced { base: 0 })
        );
        let dev = XenPlatformDevice::find_placing(&cfg(&m), Some(0xf000_1000)).unwrap();
        assert!(dev.placed);
        // Rounded up to the 16 MiB alignment, flags kept.
        assert_eq!(dev.mmio_base, 0xf100_0000);
        assert_eq!(m.config(3, 0, reg::BAR0 + 4), 0xf100_0008);
        // Memory decoding on; I/O decoding stays off for the unassigned I/O BAR.
        assert_eq!(m.config(3, 0, reg::COMMAND) & 3, 2);
        // A place that does not fit below 4 GiB is refused.
        let m2 = FakeMachine::default();
        m2.add(
            3,
            0,
            FakeFunction::new(0x5853, 0x0001, 0xff, 0x80).with_bar(1, 0x8, 0xff00_0008),
        );
        assert_eq!(
            XenPlatformDevice::find_placing(&cfg(&m2), Some(0xff80_0000)),
            Err(PlatformPciError::Misplaced { base: 0xff80_0000 })
        );
    }

    #[test]
    fn missing_or_unusable_platform_devices_are_refused() {
        let m = FakeMachine::default();
        m.add(0, 0, FakeFunction::new(0x8086, 0x1237, 0x06, 0x00));
        assert_eq!(
            XenPlatformDevice::find(&cfg(&m)),
            Err(PlatformPciError::NotFound)
        );
        let m = FakeMachine::default();
        m.add(
            3,
            0,
            FakeFunction::new(0x5853, 0x0001, 0xff, 0x80).with_bar(0, 0xc001, 0xffff_ff01),
        );
        assert_eq!(
            XenPlatformDevice::find(&cfg(&m)),
            Err(PlatformPciError::NoMemoryBar)
        );
        let m = FakeMachine::default();
        m.add(
            3,
            0,
            FakeFunction::new(0x5853, 0x0002, 0xff, 0x80).with_bar(1, 0x0000_0008, 0xff00_0008),
        );
        assert_eq!(
            XenPlatformDevice::find(&cfg(&m)),
            Err(PlatformPciError::Misplaced { base: 0 })
        );
    }

    #[test]
    fn bars_decode() {
        assert_eq!(Bar::decode(0, 0, None), Ok(None));
        assert_eq!(Bar::decode(1, 1, None), Ok(None));
        assert_eq!(
            Bar::decode(0xfebf_0000, 0xffff_f000, None),
            Ok(Some(Bar::Memory {
                base: 0xfebf_0000,
                size: 4096,
                prefetchable: false,
                wide: false
            }))
        );
        assert_eq!(
            Bar::decode(0xe000_000c, 0xf000_000c, Some((0x1, 0xffff_ffff))),
            Ok(Some(Bar::Memory {
                base: 0x1_e000_000c & !0xf,
                size: 256 << 20,
                prefetchable: true,
                wide: true
            }))
        );
        // Memory type 1 (below 1 MiB, obsolete) and 3 (reserved).
        assert!(Bar::decode(0x2, 0xfff0_0002, None).is_err());
        assert!(Bar::decode(0x6, 0xfff0_0006, None).is_err());
        // A 64-bit BAR without its upper half.
        assert!(Bar::decode(0x4, 0xfff0_0004, None).is_err());
        // A mask with a hole.
        assert!(Bar::decode(0x0, 0xfff0_f000, None).is_err());
    }

    proptest! {
        #[test]
        fn bar_decode_never_panics_and_sizes_are_powers_of_two(
            value in any::<u32>(), sized in any::<u32>(), high in proptest::option::of((any::<u32>(), any::<u32>()))
        ) {
            match Bar::decode(value, sized, high) {
                Ok(Some(Bar::Memory { size, .. })) => prop_assert!(size.is_power_of_two()),
                Ok(Some(Bar::Io { size, .. })) => prop_assert!(size.is_power_of_two() && size <= 1 << 16),
                Ok(None) | Err(_) => {}
            }
        }

        #[test]
        fn any_well_formed_bar_round_trips(log2 in 4u32..32, base_page in any::<u32>(), pref in any::<bool>()) {
            let size = 1u64 << log2;
            let base = (u64::from(base_page) << 4) & !(size - 1) & 0xffff_fff0;
            let flags = if pref { 8 } else { 0 };
            let value = u32::try_from(base).unwrap() | flags;
            let sized = u32::try_from((!(size - 1)) & 0xffff_fff0).unwrap() | flags;
            prop_assert_eq!(
                Bar::decode(value, sized, None),
                Ok(Some(Bar::Memory { base, size, prefetchable: pref, wide: false }))
            );
        }
    }

    /// Configuration space full of random values: the scan and the search
    /// stay bounded and never panic (the body of the `guest_pci` fuzz target).
    #[test]
    fn random_configuration_space_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0_u64;
        for _ in 0..300 {
            let m = FakeMachine::default();
            for device in 0..32 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                if seed >> 60 < 4 {
                    let f = FakeFunction::random(seed);
                    m.add(device, 0, f);
                }
            }
            let c = cfg(&m);
            assert!(scan_bus(&c, 0).len() <= 256);
            let _ = XenPlatformDevice::find(&c);
        }
    }
}
