//! Bringing the guest platform up, and suspend/resume.
//!
//! Layout of the frame area the caller provides (on Windows the Xen platform
//! PCI device's BAR, in the test kernel an unpopulated guest-physical range):
//! page 0 holds shared info, pages 1.. the grant table frames.

use super::Error;
use super::console::Console;
use super::cpu::Cpu;
use super::evtchn::EventChannels;
use super::gnttab::GrantTable;
use super::hypercall::Xen;
use super::shared::Shared;
use super::shared_info::SharedInfo;
use super::store_ring::StoreRing;
use xenbus_interface::api::{Memory, PAGE_SIZE};

pub use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
pub use xen_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND};

/// Maps a guest frame Xen set up for us (store, console ring) into a window.
pub trait FrameMapper<C> {
    /// The page at guest frame `gpfn`, or `None` if it cannot be mapped.
    fn map_frame(&self, gpfn: u64) -> Option<Shared<C>>;
}

/// What a `control/shutdown` request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    /// `poweroff` (also `halt`).
    Poweroff,
    /// `reboot`.
    Reboot,
    /// `suspend`.
    Suspend,
    /// `crash`.
    Crash,
}

impl ShutdownRequest {
    /// Parses the value of `control/shutdown` (empty: no request).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let value = value.strip_suffix(b"\0").unwrap_or(value);
        match value {
            b"poweroff" | b"halt" => Some(Self::Poweroff),
            b"reboot" => Some(Self::Reboot),
            b"suspend" => Some(Self::Suspend),
            b"crash" => Some(Self::Crash),
            _ => None,
        }
    }
}

/// What the domain observed across [`Platform::suspend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// Resumed in a new domain (restore or migration): everything was re-set-up.
    Resumed,
    /// The toolstack cancelled (checkpoint): the old domain simply continues.
    Cancelled,
}

/// Callbacks around suspend, in XENBUS's order.
pub trait SuspendHooks {
    /// Before the suspend hypercall: quiesce (frontends stop submitting).
    fn suspend(&mut self);
    /// Right after resume, before xenstore: nothing may block here.
    fn early_resume(&mut self, outcome: SuspendOutcome);
    /// After xenstore works again: frontends reconnect.
    fn late_resume(&mut self, outcome: SuspendOutcome);
}

/// The guest platform, up and running.
#[derive(Debug)]
pub struct Platform<C, M: Memory> {
    /// The hypervisor.
    pub xen: Xen<C>,
    /// Shared info.
    pub shared_info: SharedInfo<C>,
    /// Event channels (2-level until [`EventChannels::enable_fifo`]).
    pub evtchn: EventChannels<C, M>,
    /// The grant table.
    pub gnttab: GrantTable<C>,
    /// The xenstore ring.
    pub store: StoreRing<C>,
    /// The xenstore event channel.
    pub store_port: u32,
    /// The PV console, if Xen gave us one.
    pub console: Option<Console<C>>,
    area: Shared<C>,
    area_gpfn: u64,
    /// Where vCPU 0's `vcpu_info` was registered (window, guest frame), if it
    /// left the legacy slot; registered again on resume.
    vcpu_area: Option<(Shared<C>, u64)>,
}

impl<C: Cpu + Clone, M: Memory> Platform<C, M> {
    /// Detects Xen and sets everything up. `area` (at guest frames
    /// `area_gpfn..`) holds shared info and grant frames; it must be at least
    /// two pages.
    pub fn start(
        xen: Xen<C>,
        mem: M,
        area: Shared<C>,
        area_gpfn: u64,
        mapper: &impl FrameMapper<C>,
    ) -> Result<Self, Error> {
        let shared_info = SharedInfo::map(&xen, area.window(0, PAGE_SIZE)?, area_gpfn)?;
        let vcpu = shared_info.vcpu_info(0)?;
        vcpu.set_upcall_mask(false)?;
        let grant_area = area.window(
            PAGE_SIZE,
            area.len()
                .checked_sub(PAGE_SIZE)
                .ok_or(Error::OutOfBounds)?,
        )?;
        let gnttab = GrantTable::new(xen.clone(), grant_area, area_gpfn + 1)?;
        let (store, store_port) = Self::store_ring(&xen, mapper)?;
        let console = Self::console(&xen, mapper);
        let mut evtchn = EventChannels::new(xen.clone(), shared_info.clone(), vcpu, mem);
        evtchn.adopt(store_port)?;
        Ok(Self {
            xen,
            shared_info,
            evtchn,
            gnttab,
            store,
            store_port,
            console,
            area,
            area_gpfn,
            vcpu_area: None,
        })
    }

    fn store_ring(
        xen: &Xen<C>,
        mapper: &impl FrameMapper<C>,
    ) -> Result<(StoreRing<C>, u32), Error> {
        let pfn = xen.get_param(HVM_PARAM_STORE_PFN)?;
        let port = u32::try_from(xen.get_param(HVM_PARAM_STORE_EVTCHN)?)
            .map_err(|_| Error::OutOfBounds)?;
        let page = mapper.map_frame(pfn).ok_or(Error::OutOfBounds)?;
        Ok((StoreRing::new(page), port))
    }

    fn console(xen: &Xen<C>, mapper: &impl FrameMapper<C>) -> Option<Console<C>> {
        let pfn = xen
            .get_param(HVM_PARAM_CONSOLE_PFN)
            .ok()
            .filter(|&p| p != 0)?;
        let port = u32::try_from(xen.get_param(HVM_PARAM_CONSOLE_EVTCHN).ok()?).ok()?;
        Some(Console::new(xen.clone(), mapper.map_frame(pfn)?, port))
    }

    /// Moves vCPU 0's `vcpu_info` out of the legacy shared-info slot into the
    /// page `window` maps (guest frame `gfn`), as XENBUS does for every vCPU
    /// (the legacy slots stop at 32 vCPUs). Event delivery and the clocks
    /// follow; resume registers the same place again. The page must stay
    /// mapped and unused otherwise for the life of the domain.
    pub fn place_vcpu_info(&mut self, window: Shared<C>, gfn: u64) -> Result<(), Error> {
        let vcpu = SharedInfo::register_vcpu_info(&self.xen, 0, &window, gfn, 0)?;
        vcpu.set_upcall_mask(false)?;
        self.evtchn.set_vcpu_info(vcpu);
        self.vcpu_area = Some((window, gfn));
        Ok(())
    }

    /// Suspends the domain (`SCHEDOP_shutdown(SHUTDOWN_suspend)`) and, when it
    /// runs again, restores what a new domain lacks: shared info, `vcpu_info`,
    /// grant frames, the event channel ABI and the xenstore and console ports.
    /// Interdomain channels are gone after a real resume: their owners rebind
    /// them in `late_resume`. The xenstore client must discard stale replies
    /// and re-register its watches there too.
    pub fn suspend(
        &mut self,
        hooks: &mut impl SuspendHooks,
        mapper: &impl FrameMapper<C>,
    ) -> Result<SuspendOutcome, Error> {
        hooks.suspend();
        let cancelled = self.xen.shutdown(SHUTDOWN_SUSPEND)?;
        let outcome = if cancelled {
            SuspendOutcome::Cancelled
        } else {
            SuspendOutcome::Resumed
        };
        if outcome == SuspendOutcome::Resumed {
            self.resume(mapper)?;
        }
        hooks.early_resume(outcome);
        hooks.late_resume(outcome);
        Ok(outcome)
    }

    /// The early-resume work of [`Platform::suspend`] for a new domain.
    pub fn resume(&mut self, mapper: &impl FrameMapper<C>) -> Result<(), Error> {
        let fifo = self.evtchn.abi() == super::evtchn::EvtchnAbi::Fifo;
        self.shared_info =
            SharedInfo::map(&self.xen, self.area.window(0, PAGE_SIZE)?, self.area_gpfn)?;
        let vcpu = match &self.vcpu_area {
            Some((window, gfn)) => SharedInfo::register_vcpu_info(&self.xen, 0, window, *gfn, 0)?,
            None => self.shared_info.vcpu_info(0)?,
        };
        vcpu.set_upcall_mask(false)?;
        self.gnttab.remap()?;
        self.evtchn
            .reset_after_resume(self.shared_info.clone(), vcpu);
        if fifo {
            self.evtchn.enable_fifo()?;
        }
        self.evtchn.restore_upcalls()?;
        let (store, port) = Self::store_ring(&self.xen, mapper)?;
        self.store = store;
        self.store_port = port;
        self.evtchn.adopt(port)?;
        self.console = Self::console(&self.xen, mapper);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ShutdownRequest;

    #[test]
    fn shutdown_requests_parse_like_toolstacks_write_them() {
        assert_eq!(
            ShutdownRequest::parse(b"suspend"),
            Some(ShutdownRequest::Suspend)
        );
        assert_eq!(
            ShutdownRequest::parse(b"poweroff\0"),
            Some(ShutdownRequest::Poweroff)
        );
        assert_eq!(
            ShutdownRequest::parse(b"halt"),
            Some(ShutdownRequest::Poweroff)
        );
        assert_eq!(
            ShutdownRequest::parse(b"reboot"),
            Some(ShutdownRequest::Reboot)
        );
        assert_eq!(ShutdownRequest::parse(b""), None);
        assert_eq!(ShutdownRequest::parse(b"suspendx"), None);
    }
}
