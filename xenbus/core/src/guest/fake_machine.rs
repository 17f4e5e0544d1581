//! A fake HVM machine for unit tests of the port-I/O logic: PCI
//! configuration space behind 0xCF8/0xCFC, the Xen platform device's unplug
//! ports 0x10/0x12 (with QEMU's behaviour: unplugged NICs vanish from
//! configuration space, unplugged IDE disks stop answering), and the two
//! legacy IDE channels.
#![allow(unsafe_code)]

extern crate std;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use super::cpu::{Cpu, CpuidResult, HypercallInsn};

/// One PCI function: its 64 configuration dwords and the writable bits of
/// its BARs (what sizing reads back).
#[derive(Clone, Debug)]
pub struct FakeFunction {
    pub config: [u32; 64],
    pub bar_masks: [u32; 6],
}

impl FakeFunction {
    pub fn new(vendor: u16, device: u16, class: u8, subclass: u8) -> Self {
        let mut config = [0; 64];
        config[0] = u32::from(vendor) | u32::from(device) << 16;
        config[2] = u32::from(class) << 24 | u32::from(subclass) << 16 | 1;
        Self {
            config,
            bar_masks: [0; 6],
        }
    }

    /// BAR `index` = `value`; sizing reads back `sized` (flag bits included).
    pub fn with_bar(mut self, index: usize, value: u32, sized: u32) -> Self {
        self.config[4 + index] = value;
        self.bar_masks[index] = sized;
        self
    }

    pub fn multifunction(mut self) -> Self {
        self.config[3] |= 0x80 << 16;
        self
    }

    /// Everything random (a device model that says anything).
    pub fn random(mut seed: u64) -> Self {
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            u32::try_from(seed >> 32).unwrap_or(0)
        };
        let mut config = [0; 64];
        for c in &mut config {
            *c = next();
        }
        // Often a Xen platform device, so the search goes deep.
        if next() % 2 == 0 {
            config[0] = 0x0001_5853;
            config[3] &= !(0x7f << 16);
        }
        let mut bar_masks = [0; 6];
        for m in &mut bar_masks {
            *m = next();
        }
        Self { config, bar_masks }
    }
}

/// An IDE drive position's state.
#[derive(Clone, Debug, Default)]
struct Drive {
    model: Option<String>,
    data: Vec<u16>,
}

#[derive(Debug, Default)]
pub struct MachineState {
    pub functions: BTreeMap<(u8, u8), FakeFunction>,
    address: u32,
    /// Unplug ports answer (a Xen platform device is there).
    pub unplug_ports: bool,
    /// The protocol version port 0x12 reads.
    pub unplug_version: u8,
    /// Blacklist the product once registered.
    pub blacklist: bool,
    blacklisted: bool,
    pub product: Option<u16>,
    pub build: Option<u32>,
    pub unplugged: Vec<u16>,
    /// Primary master, primary slave, secondary master, secondary slave.
    drives: [Drive; 4],
    selected: [usize; 2],
}

/// The fake machine, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct FakeMachine(pub Rc<RefCell<MachineState>>);

impl FakeMachine {
    /// A machine with QEMU's platform device ports (protocol version 1).
    pub fn with_platform() -> Self {
        let m = Self::default();
        {
            let mut s = m.0.borrow_mut();
            s.unplug_ports = true;
            s.unplug_version = 1;
        }
        m
    }

    pub fn add(&self, device: u8, function: u8, f: FakeFunction) {
        self.0.borrow_mut().functions.insert((device, function), f);
    }

    pub fn config(&self, device: u8, function: u8, offset: u8) -> u32 {
        self.0.borrow().functions[&(device, function)].config[usize::from(offset / 4)]
    }

    /// An ATA disk at position `index` (0 = primary master).
    pub fn add_disk(&self, index: usize, model: &str) {
        self.0.borrow_mut().drives[index].model = Some(model.into());
    }

    fn unplug(s: &mut MachineState, mask: u16) {
        s.unplugged.push(mask);
        if mask & 2 != 0 {
            s.functions.retain(|_, f| (f.config[2] >> 24) != 0x02);
        }
        if mask & 1 != 0 {
            for d in &mut s.drives {
                *d = Drive::default();
            }
        }
    }

    fn ide(port: u16) -> Option<(usize, u16)> {
        match port {
            0x1f0..=0x1f7 => Some((0, port - 0x1f0)),
            0x170..=0x177 => Some((1, port - 0x170)),
            _ => None,
        }
    }

    fn config_read(s: &MachineState) -> u32 {
        let a = s.address;
        if a & 0x8000_0000 == 0 || (a >> 16) & 0xff != 0 {
            return 0xffff_ffff;
        }
        let dev = u8::try_from((a >> 11) & 0x1f).unwrap_or(0);
        let func = u8::try_from((a >> 8) & 7).unwrap_or(0);
        let reg = usize::try_from((a & 0xfc) / 4).unwrap_or(0);
        s.functions
            .get(&(dev, func))
            .map_or(0xffff_ffff, |f| f.config[reg])
    }

    fn config_write(s: &mut MachineState, value: u32) {
        let a = s.address;
        if a & 0x8000_0000 == 0 {
            return;
        }
        let dev = u8::try_from((a >> 11) & 0x1f).unwrap_or(0);
        let func = u8::try_from((a >> 8) & 7).unwrap_or(0);
        let reg = usize::try_from((a & 0xfc) / 4).unwrap_or(0);
        if let Some(f) = s.functions.get_mut(&(dev, func)) {
            match reg {
                4..=9 => {
                    let mask = f.bar_masks[reg - 4];
                    f.config[reg] = if value == 0xffff_ffff { mask } else { value };
                }
                0 | 2 | 3 => {}
                _ => f.config[reg] = value,
            }
        }
    }

    fn ide_status(s: &MachineState, channel: usize) -> u8 {
        let both_absent =
            s.drives[2 * channel].model.is_none() && s.drives[2 * channel + 1].model.is_none();
        let d = &s.drives[2 * channel + s.selected[channel]];
        if both_absent || d.model.is_none() {
            0
        } else if d.data.is_empty() {
            0x50
        } else {
            0x58
        }
    }
}

impl Cpu for FakeMachine {
    fn cpuid(&self, _leaf: u32, _subleaf: u32) -> CpuidResult {
        CpuidResult::default()
    }

    fn rdtsc(&self) -> u64 {
        0
    }

    unsafe fn rdmsr(&self, _msr: u32) -> u64 {
        0
    }

    unsafe fn wrmsr(&self, _msr: u32, _value: u64) {}

    unsafe fn inb(&self, port: u16) -> u8 {
        let s = self.0.borrow();
        match (port, Self::ide(port)) {
            (0x12, _) if s.unplug_ports => s.unplug_version,
            (_, Some((channel, 7))) => Self::ide_status(&s, channel),
            _ => 0xff,
        }
    }

    unsafe fn inw(&self, port: u16) -> u16 {
        let mut s = self.0.borrow_mut();
        match (port, Self::ide(port)) {
            (0x10, _) if s.unplug_ports => {
                if s.blacklisted {
                    0xd249
                } else {
                    0x49d2
                }
            }
            (_, Some((channel, 0))) => {
                let index = 2 * channel + s.selected[channel];
                let d = &mut s.drives[index];
                if d.data.is_empty() {
                    0xffff
                } else {
                    d.data.remove(0)
                }
            }
            _ => 0xffff,
        }
    }

    unsafe fn inl(&self, port: u16) -> u32 {
        let s = self.0.borrow();
        if port == 0xcfc {
            Self::config_read(&s)
        } else {
            0xffff_ffff
        }
    }

    unsafe fn outb(&self, port: u16, value: u8) {
        let mut s = self.0.borrow_mut();
        match Self::ide(port) {
            Some((channel, 6)) => s.selected[channel] = usize::from((value >> 4) & 1),
            Some((channel, 7)) if value == 0xec => {
                let index = 2 * channel + s.selected[channel];
                let d = &mut s.drives[index];
                if let Some(model) = d.model.clone() {
                    let mut words = std::vec![0u16; 256];
                    let mut bytes = std::vec![b' '; 40];
                    for (b, m) in bytes.iter_mut().zip(model.bytes()) {
                        *b = m;
                    }
                    for (i, pair) in bytes.chunks(2).enumerate() {
                        words[27 + i] = u16::from(pair[0]) << 8 | u16::from(pair[1]);
                    }
                    words[60] = 0x4000;
                    d.data = words;
                }
            }
            _ => {}
        }
    }

    unsafe fn outw(&self, port: u16, value: u16) {
        let mut s = self.0.borrow_mut();
        if !s.unplug_ports {
            return;
        }
        match port {
            0x10 => Self::unplug(&mut s, value),
            0x12 => {
                s.product = Some(value);
                if s.blacklist {
                    s.blacklisted = true;
                }
            }
            _ => {}
        }
    }

    unsafe fn outl(&self, port: u16, value: u32) {
        let mut s = self.0.borrow_mut();
        match port {
            0xcf8 => s.address = value,
            0xcfc => Self::config_write(&mut s, value),
            0x10 if s.unplug_ports => s.build = Some(value),
            _ => {}
        }
    }

    unsafe fn hypercall(&self, _insn: HypercallInsn, _op: u32, _args: [u64; 5]) -> i64 {
        -38
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
