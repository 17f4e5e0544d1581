//! The shared info page, `vcpu_info` and Xen's clocks (wallclock and per-vCPU
//! system time).

use core::sync::atomic::{Ordering, fence};

use super::Error;
use super::abi::{self, shared_info as si};
use super::cpu::Cpu;
use super::hypercall::Xen;
use super::shared::Shared;

/// Wall-clock time at system time 0, as Xen publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wallclock {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Nanoseconds.
    pub nsec: u32,
}

/// One snapshot of a `vcpu_time_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeInfo {
    /// TSC value at `system_time`.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point).
    pub mul: u32,
    /// Power-of-two pre-shift of the TSC delta.
    pub shift: i8,
}

impl TimeInfo {
    /// System time in ns at TSC value `tsc` (the pvclock formula).
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        if self.shift >= 0 {
            delta <<= self.shift.unsigned_abs().min(63);
        } else {
            delta >>= self.shift.unsigned_abs().min(63);
        }
        let ns = (u128::from(delta) * u128::from(self.mul)) >> 32;
        // A u64 >> 32 product of a u64 and a u32 fits in 96 bits; the clamp only
        // guards against nonsense in the page.
        self.system_time
            .wrapping_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// Where a vCPU's `vcpu_info` lives: in the shared info page (vCPUs below 32) or
/// wherever `VCPUOP_register_vcpu_info` put it.
#[derive(Clone, Debug)]
pub struct VcpuInfo<C> {
    window: Shared<C>,
}

impl<C: Cpu + Clone> VcpuInfo<C> {
    fn word8(&self, off: usize) -> Result<&core::sync::atomic::AtomicU8, Error> {
        self.window.u8(off).ok_or(Error::OutOfBounds)
    }

    /// Reads and clears `evtchn_upcall_pending`; true if it was set.
    pub fn take_upcall_pending(&self) -> Result<bool, Error> {
        Ok(self.word8(si::UPCALL_PENDING)?.swap(0, Ordering::SeqCst) != 0)
    }

    /// Whether `evtchn_upcall_pending` is set.
    pub fn upcall_pending(&self) -> Result<bool, Error> {
        Ok(self.word8(si::UPCALL_PENDING)?.load(Ordering::SeqCst) != 0)
    }

    /// Sets `evtchn_upcall_mask` (true: Xen raises no upcall).
    pub fn set_upcall_mask(&self, masked: bool) -> Result<(), Error> {
        self.word8(si::UPCALL_MASK)?
            .store(u8::from(masked), Ordering::SeqCst);
        Ok(())
    }

    /// Atomically takes `evtchn_pending_sel` (2-level ABI).
    pub fn take_pending_sel(&self) -> Result<u64, Error> {
        Ok(self
            .window
            .u64(si::PENDING_SEL)
            .ok_or(Error::OutOfBounds)?
            .swap(0, Ordering::SeqCst))
    }

    /// A consistent snapshot of this vCPU's time info (retried while Xen
    /// updates it: odd or changed version).
    pub fn time(&self) -> Result<TimeInfo, Error> {
        let w = &self.window;
        let version = w
            .u32(si::TIME + si::TIME_VERSION)
            .ok_or(Error::OutOfBounds)?;
        for _ in 0..1000 {
            let v1 = version.load(Ordering::Acquire);
            fence(Ordering::Acquire);
            let t = TimeInfo {
                tsc_timestamp: w
                    .u64(si::TIME + si::TIME_TSC_TIMESTAMP)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed),
                system_time: w
                    .u64(si::TIME + si::TIME_SYSTEM_TIME)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed),
                mul: w
                    .u32(si::TIME + si::TIME_MUL)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed),
                shift: i8::from_ne_bytes([w
                    .u8(si::TIME + si::TIME_SHIFT)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed)]),
            };
            fence(Ordering::Acquire);
            if v1 & 1 == 0 && version.load(Ordering::Acquire) == v1 {
                return Ok(t);
            }
        }
        Err(Error::Inconsistent("vcpu_time_info version never settled"))
    }

    /// Nanoseconds since the domain booted, now.
    pub fn system_time_ns(&self) -> Result<u64, Error> {
        let t = self.time()?;
        Ok(t.system_time_at(self.window.cpu().rdtsc()))
    }
}

/// The mapped shared info page.
#[derive(Clone, Debug)]
pub struct SharedInfo<C> {
    page: Shared<C>,
    gpfn: u64,
}

impl<C: Cpu + Clone> SharedInfo<C> {
    /// Asks Xen to place the shared info page at guest frame `gpfn`, which
    /// `page` (one page) maps. Also used after resume: the new domain starts
    /// without one.
    pub fn map(xen: &Xen<C>, page: Shared<C>, gpfn: u64) -> Result<Self, Error> {
        if page.len() < xenbus_interface::api::PAGE_SIZE {
            return Err(Error::OutOfBounds);
        }
        xen.add_to_physmap(abi::XENMAPSPACE_SHARED_INFO, 0, gpfn)?;
        Ok(Self { page, gpfn })
    }

    /// The guest frame the page sits at.
    pub fn gpfn(&self) -> u64 {
        self.gpfn
    }

    /// The page itself (event bitmaps for the 2-level ABI).
    pub fn page(&self) -> &Shared<C> {
        &self.page
    }

    /// The legacy `vcpu_info` slot of `vcpu` in this page.
    pub fn vcpu_info(&self, vcpu: u32) -> Result<VcpuInfo<C>, Error> {
        if vcpu >= si::LEGACY_MAX_VCPUS {
            return Err(Error::OutOfBounds);
        }
        Ok(VcpuInfo {
            window: self
                .page
                .window(vcpu as usize * si::VCPU_INFO_SIZE, si::VCPU_INFO_SIZE)?,
        })
    }

    /// Registers `vcpu`'s `vcpu_info` at `offset` into the page `window` maps
    /// (guest frame `gfn`), what XENBUS does for vCPUs beyond the legacy 32.
    pub fn register_vcpu_info(
        xen: &Xen<C>,
        vcpu: u32,
        window: &Shared<C>,
        gfn: u64,
        offset: usize,
    ) -> Result<VcpuInfo<C>, Error> {
        let w = window.window(offset, si::VCPU_INFO_SIZE)?;
        xen.register_vcpu_info(
            vcpu,
            gfn,
            u32::try_from(offset).map_err(|_| Error::OutOfBounds)?,
        )?;
        Ok(VcpuInfo { window: w })
    }

    /// The wallclock at system time 0, read consistently.
    pub fn wallclock(&self) -> Result<Wallclock, Error> {
        let p = &self.page;
        let version = p.u32(si::WC_VERSION).ok_or(Error::OutOfBounds)?;
        for _ in 0..1000 {
            let v1 = version.load(Ordering::Acquire);
            fence(Ordering::Acquire);
            let sec = u64::from(
                p.u32(si::WC_SEC)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed),
            );
            let hi = u64::from(
                p.u32(si::WC_SEC_HI)
                    .ok_or(Error::OutOfBounds)?
                    .load(Ordering::Relaxed),
            );
            let nsec = p
                .u32(si::WC_NSEC)
                .ok_or(Error::OutOfBounds)?
                .load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if v1 & 1 == 0 && version.load(Ordering::Acquire) == v1 {
                return Ok(Wallclock {
                    sec: sec | (hi << 32),
                    nsec,
                });
            }
        }
        Err(Error::Inconsistent("wallclock version never settled"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_formula_matches_hand_computation() {
        // 1 GHz TSC: mul = 2^32 (1.0), shift 0 -> 1 ns per tick... use mul 2^31, shift 1.
        let t = TimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            mul: 1 << 31,
            shift: 1,
        };
        assert_eq!(t.system_time_at(1000), 5_000);
        assert_eq!(t.system_time_at(3000), 5_000 + 2000);
        let t = TimeInfo {
            tsc_timestamp: 0,
            system_time: 0,
            mul: 0x8000_0000,
            shift: -1,
        };
        // delta 4000 >> 1 = 2000, * 0.5 = 1000
        assert_eq!(t.system_time_at(4000), 1000);
    }

    #[test]
    fn pvclock_survives_extreme_values() {
        let t = TimeInfo {
            tsc_timestamp: u64::MAX,
            system_time: u64::MAX,
            mul: u32::MAX,
            shift: 127,
        };
        let _ = t.system_time_at(0);
        let t = TimeInfo {
            tsc_timestamp: 0,
            system_time: 1,
            mul: u32::MAX,
            shift: -128,
        };
        assert_eq!(t.system_time_at(u64::MAX), 1);
    }
}
