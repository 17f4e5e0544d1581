//! The checks the test kernel runs, in order, and the little request protocol
//! with the dom0 side of the suite.
//!
//! dom0 protocol: the guest writes `data/xenpv/req` = `<seq> <command>` and
//! waits for `data/xenpv/ack` = `<seq> <answer>`. Commands:
//! * `evtchn-echo <port> [short]`: dom0 binds to our `port`, swallows the event Xen
//!   raises on its side at bind time, answers `bound <count>`, then answers
//!   each of our `count` notifications with one of its own and unbinds;
//!   `evtchn-result` then answers `received <n> sent <m>`;
//! * `gnt-map <gref>`: dom0 maps the page (gntdev), checks our pattern, writes
//!   its own into the second half, answers `mapped ok` (or `mapped bad <why>`)
//!   and keeps it mapped; `gnt-unmap` unmaps and answers `unmapped`;
//! * `mem-set <KiB>`: dom0 runs `xl mem-set` (the domain's `memory/target`)
//!   and answers `set`; `mem-info` answers `xl list`'s memory column (`<n> MiB`);
//! * `save-restore`: dom0 answers `saving`, then runs `xl save` + `xl restore`
//!   of this domain (the guest sees `control/shutdown` = `suspend`);
//! * `xl-shutdown`: dom0 answers `requested` and runs `xl shutdown` of this
//!   domain (the guest sees `control/shutdown` = `poweroff`);
//! * `vbd-verify <devid> <sectors> <written> <digest>`: dom0 reads the disk
//!   image of the guest's vbd `<devid>` (its backend's `params`) and checks every sector against the pattern of [`crate::vbd`]
//!   (each written sector names itself and its write stamp), answers
//!   `verified ...` if the `<written>` sectors and their digest match;
//! * `vif-setup <mac>`: dom0 answers `<dom0-mac> <dom0-ip> <guest-ip>` for
//!   the guest's network device (bridge `xenbr0`);
//! * `vif-ping`, `vif-echo`: dom0 pings the guest / runs the UDP echo against
//!   it and answers with its counts once done (the guest keeps answering
//!   traffic meanwhile); `vif-sink` answers `listening <port> count <n> window
//!   <w>` and receives the guest's datagrams, acknowledging every window by
//!   UDP; `vif-sink-result` answers its counts once all arrived (see [`crate::vif`]);
//! * `done`: dom0 stops serving.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString as _};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::Ordering;
use core::time::Duration;

use xenbus_core::guest::Shared;
use xenbus_core::guest::balloon::{self, Balloon};
use xenbus_core::guest::evtchn::{EvtchnAbi, PendingFlag};
use xenbus_core::guest::gnttab::GrantFailure;
use xenbus_core::guest::hypercall::{DOMID_SELF, Xen};
use xenbus_core::guest::platform::{
    FrameMapper, Platform, ShutdownRequest, SuspendHooks, SuspendOutcome,
};
use xenbus_core::guest::shared_info::VcpuInfo;
use xenbus_core::guest::store_ring::{StoreNotify, StoreRing};
use xenbus_core::{Client, Clock, RingTransport, Wait};
use xenbus_interface::api::{Memory, PAGE_SIZE, Pages, Store, Txn, WatchId};

use crate::log::Log;
use crate::pool::PagePool;
use crate::vif;
use crate::x86::{self, X86};
use crate::{
    FrameArea, LAPIC_BASE, PERCPU_UPCALL_VECTOR, PERCPU_UPCALLS, REPORT_PREFIX, SHARED_INFO_ADDR,
    UPCALL_VECTOR, UPCALLS,
};
use xenbus_interface::api::XenbusState;
use xenvif_core::wire::ethernet::MacAddress;

/// Most round trips dom0 may ask for (it says how many in its answer).
pub const ECHO_MAX: u32 = 100_000;
/// Local loopback notifications per ABI.
pub const LOOPBACK_COUNT: u32 = 1_000;
/// Grant frames the growth check reaches.
pub const GROW_TO_FRAMES: u32 = 4;
/// How far the guest's clock (TSC extrapolated from `vcpu_info`) and Xen's
/// may disagree when a timer fires (seen up to 1.7 ms in the rig).
const CLOCK_SKEW: Duration = Duration::from_millis(3);

/// How far dom0 lowers `memory/target` for the balloon check (2 MiB, so
/// `xl list`'s MiB column shows it).
pub const BALLOON_KIB: u64 = 2048;
/// Requests of the vbd's random I/O mix.
pub const VBD_IO_OPS: usize = 2000;

type Transport = RingTransport<StoreRing<X86>, StoreNotify<X86>>;

/// The xenstore port and its pending flag.
type StorePort = (u32, PendingFlag<X86>);

/// Xen system time as the xenstore client's clock; waiting blocks in
/// `SCHEDOP_poll` on the xenstore port (yields would give away whole time
/// slices to dom0: milliseconds each in the rig).
#[derive(Clone, Debug)]
pub struct Timebase {
    /// vCPU 0's `vcpu_info`, shared by every clone (it moves when the check
    /// `vcpu_info_placed` registers it elsewhere).
    vcpu: Rc<RefCell<VcpuInfo<X86>>>,
    xen: Xen<X86>,
    /// The xenstore port and its pending flag (refreshed when the event
    /// channel ABI changes).
    store: Rc<RefCell<Option<StorePort>>>,
}

impl Clock for Timebase {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.vcpu.borrow().system_time_ns().unwrap_or(0))
    }
}

impl Wait for Timebase {
    fn wait(&self, timeout: Duration) {
        let Some((port, flag)) = self.store.borrow().clone() else {
            self.xen.yield_now();
            return;
        };
        // A notification since the last look: return at once (the client
        // re-checks the ring). Otherwise block until the next one.
        if flag.take() {
            return;
        }
        let wake = self.now() + timeout.min(Duration::from_millis(100));
        let wake_ns = u64::try_from(wake.as_nanos()).unwrap_or(u64::MAX);
        if self.xen.poll(&mut [port], wake_ns).is_err() {
            self.xen.yield_now();
        }
    }
}

/// Xen's special pages (store, console) are ordinary frames of the identity map.
#[derive(Clone, Copy, Debug)]
struct IdentityMapper;

impl FrameMapper<X86> for IdentityMapper {
    fn map_frame(&self, gpfn: u64) -> Option<Shared<X86>> {
        // Only frames below 4 GiB are mapped by the boot page tables.
        if gpfn >= (1 << 20) {
            return None;
        }
        let addr = usize::try_from(gpfn << 12).ok()?;
        // SAFETY: the boot page tables identity-map 0-4 GiB; Xen's special
        // pages are populated frames the guest shares with the toolstack and
        // that no Rust reference points into.
        Some(unsafe { Shared::new(X86, addr, PAGE_SIZE) })
    }
}

/// Records the suspend callbacks.
#[derive(Debug, Default)]
struct Hooks {
    calls: Vec<&'static str>,
}

impl SuspendHooks for Hooks {
    fn suspend(&mut self) {
        self.calls.push("suspend");
    }
    fn early_resume(&mut self, _outcome: SuspendOutcome) {
        self.calls.push("early");
    }
    fn late_resume(&mut self, _outcome: SuspendOutcome) {
        self.calls.push("late");
    }
}

/// Counts of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks that passed.
    pub passed: u32,
    /// Checks that failed.
    pub failed: u32,
}

/// Everything the checks use.
struct Runner<'a> {
    log: &'a Log,
    pool: &'static PagePool,
    platform: Platform<X86, &'static PagePool>,
    store: Client<Transport, Timebase>,
    clock: Timebase,
    ack_watch: Option<WatchId>,
    seq: u32,
    summary: Summary,
    /// The connected vbd (`vbd_connect` on).
    vbd: Option<crate::vbd::Vbd>,
}

fn err<E: core::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}

/// Runs every check with the PVH frame area; returns the counts.
pub fn run(log: &Log, pool: &'static PagePool) -> Summary {
    run_with(log, pool, FrameArea::PVH, Summary::default())
}

/// Runs every check with shared info and grant frames in `frame_area`,
/// adding to `summary` (the counts of checks run before, e.g. by
/// [`crate::hvm`]).
pub fn run_with(
    log: &Log,
    pool: &'static PagePool,
    frame_area: FrameArea,
    mut summary: Summary,
) -> Summary {
    let xen = match hypercall_version(log) {
        Ok(xen) => xen,
        Err(e) => {
            report_fail(log, "hypercall_version", &e);
            summary.failed += 1;
            return summary;
        }
    };
    summary.passed += 1;
    let area_addr = usize::try_from(frame_area.gpfn << 12).unwrap_or(0);
    // SAFETY: the frame area is inside the identity map and unpopulated (or
    // the platform device's BAR) until Xen places shared info and grant
    // frames there; nothing else uses it.
    let area = unsafe { Shared::new(X86, area_addr, frame_area.pages * PAGE_SIZE) };
    SHARED_INFO_ADDR.store(area_addr, Ordering::SeqCst);
    let platform = match Platform::start(xen.clone(), pool, area, frame_area.gpfn, &IdentityMapper)
    {
        Ok(p) => p,
        Err(e) => {
            report_fail(log, "platform_start", &format!("{e}"));
            summary.failed += 1;
            return summary;
        }
    };
    log.set_console(platform.console.clone());
    let clock = Timebase {
        vcpu: Rc::new(RefCell::new(platform.evtchn.vcpu_info().clone())),
        xen: xen.clone(),
        store: Rc::default(),
    };
    let transport = match RingTransport::new(
        platform.store.clone(),
        StoreNotify::new(xen, platform.store_port),
    ) {
        Ok(t) => t,
        Err(e) => {
            report_fail(log, "platform_start", &format!("xenstore ring: {e:?}"));
            summary.failed += 1;
            return summary;
        }
    };
    let store = Client::new(transport, clock.clone());
    let mut r = Runner {
        log,
        pool,
        platform,
        store,
        clock,
        ack_watch: None,
        seq: 0,
        summary,
        vbd: None,
    };
    r.refresh_store_flag();
    r.check("shared_info_time", Runner::shared_info_time);
    r.check("xenstore_read_write", Runner::xenstore_read_write);
    r.check("xenstore_watch", Runner::xenstore_watch);
    let dom0 = r.dom0_setup();
    r.check("evtchn_2l_loopback", Runner::evtchn_loopback);
    r.check("evtchn_upcall_vector", Runner::evtchn_upcall);
    r.check("virq_timer", Runner::virq_timer);
    // From here on vcpu_info lives in a page of ours, as under XENBUS: every
    // later check (and the resume) runs on the placed one.
    r.check("vcpu_info_placed", Runner::vcpu_info_placed);
    if dom0.is_ok() {
        r.check("evtchn_2l_interdomain", Runner::evtchn_interdomain);
    }
    r.check("evtchn_fifo_loopback", |r| {
        r.platform
            .evtchn
            .enable_fifo()
            .map_err(err("init_control"))?;
        r.refresh_store_flag();
        r.evtchn_loopback()
    });
    if dom0.is_ok() {
        r.check("evtchn_fifo_interdomain", Runner::evtchn_interdomain);
    }
    r.check("gnttab_growth", Runner::gnttab_growth);
    if dom0.is_ok() {
        r.check("gnttab_dom0_map", Runner::gnttab_dom0_map);
    }
    r.vbd_checks(dom0.is_ok());
    r.check("balloon", Runner::balloon);
    r.check("watchdog", Runner::watchdog);
    if dom0.is_ok() {
        r.vif_checks();
    }
    if dom0.is_ok() {
        r.check("suspend_resume", Runner::suspend_resume);
        if r.vbd.is_some() {
            r.check("vbd_suspend_resume", Runner::vbd_suspend_resume);
        }
        r.check("after_resume", Runner::after_resume);
        if r.vbd.is_some() {
            r.check("vbd_close", Runner::vbd_close);
        }
        r.check("evtchn_upcall_percpu", Runner::evtchn_upcall_percpu);
        r.check("toolstack_shutdown", Runner::toolstack_shutdown);
        let _ = r.dom0("done", Duration::from_secs(10));
    } else if let Err(e) = dom0 {
        report_fail(log, "dom0_helper", &e);
        r.summary.failed += 1;
    }
    r.summary
}

fn report_fail(log: &Log, name: &str, reason: &str) {
    log.line(format_args!("{REPORT_PREFIX} FAIL {name}: {reason}"));
}

fn hypercall_version(log: &Log) -> Result<Xen<X86>, String> {
    let xen = Xen::new(X86, None).map_err(|e| format!("{e}"))?;
    let info = xen.info();
    let (major, minor) = xen.version().map_err(|e| format!("{e}"))?;
    if (major, minor) != (info.major, info.minor) {
        return Err(format!(
            "XENVER_version {major}.{minor} but CPUID says {}.{}",
            info.major, info.minor
        ));
    }
    let features = xen.features(0).map_err(|e| format!("{e}"))?;
    log.line(format_args!(
        "{REPORT_PREFIX} ok hypercall_version (0 ms) Xen {major}.{minor} at cpuid {:#x}, {:?}, features {features:#x}",
        info.cpuid_base,
        xen.insn()
    ));
    Ok(xen)
}

impl Runner<'_> {
    fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Points the xenstore waiter at the store port's current pending flag.
    fn refresh_store_flag(&mut self) {
        let port = self.platform.store_port;
        let flag = self.platform.evtchn.pending_flag(port).ok();
        *self.clock.store.borrow_mut() = flag.map(|f| (port, f));
    }

    /// Blocks for `duration` (`SCHEDOP_poll` on no port, woken by its timeout).
    fn sleep(&self, duration: Duration) {
        let wake = self.now() + duration;
        let wake_ns = u64::try_from(wake.as_nanos()).unwrap_or(u64::MAX);
        if self.platform.xen.poll(&mut [], wake_ns).is_err() {
            self.platform.xen.yield_now();
        }
    }

    fn check(&mut self, name: &str, f: impl FnOnce(&mut Self) -> Result<String, String>) {
        let t0 = self.now();
        match f(self) {
            Ok(detail) => {
                let ms = self.now().saturating_sub(t0).as_millis();
                self.log
                    .line(format_args!("{REPORT_PREFIX} ok {name} ({ms} ms) {detail}"));
                self.summary.passed += 1;
            }
            Err(reason) => {
                report_fail(self.log, name, &reason);
                self.summary.failed += 1;
            }
        }
    }

    fn read(&self, path: &str) -> Result<String, String> {
        let v = self
            .store
            .read(Txn::NONE, path)
            .map_err(|e| format!("read {path}: {e}"))?;
        String::from_utf8(v).map_err(|_| format!("read {path}: not UTF-8"))
    }

    fn write(&self, path: &str, value: &str) -> Result<(), String> {
        self.store
            .write(Txn::NONE, path, value.as_bytes())
            .map_err(|e| format!("write {path}: {e}"))
    }

    fn shared_info_time(&mut self) -> Result<String, String> {
        // The wallclock is whatever dom0 told Xen (0 in the rig, whose dom0
        // never sets it); only its consistent read is checked.
        let wc = self
            .platform
            .shared_info
            .wallclock()
            .map_err(err("wallclock"))?;
        let vcpu = self.platform.evtchn.vcpu_info().clone();
        let t1 = vcpu.system_time_ns().map_err(err("system time"))?;
        self.sleep(Duration::from_millis(10));
        let t2 = vcpu.system_time_ns().map_err(err("system time"))?;
        if t2 <= t1 {
            return Err(format!("system time did not advance: {t1} -> {t2}"));
        }
        Ok(format!(
            "wallclock {} s, system time {t1} -> {t2} ns (+{} us over a 10 ms SCHEDOP_poll)",
            wc.sec,
            (t2 - t1) / 1000
        ))
    }

    fn xenstore_read_write(&mut self) -> Result<String, String> {
        let name = self.read("name")?;
        let domid = self.read("domid")?;
        self.write("data/xenpv/probe", "hello from the guest")?;
        let back = self.read("data/xenpv/probe")?;
        if back != "hello from the guest" {
            return Err(format!("read back {back:?}"));
        }
        let dir = self
            .store
            .directory(Txn::NONE, "data/xenpv")
            .map_err(|e| format!("directory: {e}"))?;
        if !dir.iter().any(|d| d == "probe") {
            return Err(format!("directory lacks probe: {dir:?}"));
        }
        self.store
            .remove(Txn::NONE, "data/xenpv/probe")
            .map_err(|e| format!("rm: {e}"))?;
        if self.store.read(Txn::NONE, "data/xenpv/probe").is_ok() {
            return Err("node still there after rm".into());
        }
        Ok(format!("name={name} domid={domid}"))
    }

    fn xenstore_watch(&mut self) -> Result<String, String> {
        let w = self
            .store
            .watch_add("data/xenpv/watched")
            .map_err(|e| format!("watch: {e}"))?;
        let first = self
            .store
            .watch_wait(w, Duration::from_secs(5))
            .map_err(|e| format!("wait: {e}"))?;
        if !first {
            return Err("no initial watch event".into());
        }
        self.write("data/xenpv/watched", "1")?;
        let fired = self
            .store
            .watch_wait(w, Duration::from_secs(5))
            .map_err(|e| format!("wait: {e}"))?;
        self.store
            .watch_remove(w)
            .map_err(|e| format!("unwatch: {e}"))?;
        if !fired {
            return Err("no event after write".into());
        }
        Ok("initial event + event after write".into())
    }

    fn dom0_setup(&mut self) -> Result<(), String> {
        self.write("data/xenpv/ack", "0")?;
        self.ack_watch = Some(
            self.store
                .watch_add("data/xenpv/ack")
                .map_err(|e| format!("watch ack: {e}"))?,
        );
        let answer = self.dom0("hello", Duration::from_secs(30))?;
        if answer != "hello" {
            return Err(format!("dom0 helper answered {answer:?}"));
        }
        Ok(())
    }

    fn dom0(&mut self, cmd: &str, timeout: Duration) -> Result<String, String> {
        self.seq += 1;
        let prefix = format!("{} ", self.seq);
        self.write("data/xenpv/req", &format!("{prefix}{cmd}"))?;
        let deadline = self.now() + timeout;
        loop {
            if let Ok(ack) = self.read("data/xenpv/ack") {
                if let Some(answer) = ack.strip_prefix(&prefix) {
                    return Ok(answer.to_string());
                }
            }
            if self.now() > deadline {
                return Err(format!("dom0 did not answer {cmd:?}"));
            }
            match self.ack_watch {
                Some(w) => {
                    let _ = self.store.watch_wait(w, Duration::from_millis(500));
                }
                None => self.platform.xen.yield_now(),
            }
        }
    }

    /// Waits for `port` to be delivered, blocking in `SCHEDOP_poll` (woken by
    /// the event itself; a yield would give away a whole time slice).
    fn wait_port(&mut self, port: u32, timeout: Duration) -> Result<(), String> {
        let deadline = self.now() + timeout;
        loop {
            let mut hit = false;
            self.platform
                .evtchn
                .poll(64, |p| hit |= p == port)
                .map_err(err("poll"))?;
            if hit {
                return Ok(());
            }
            let now = self.now();
            if now > deadline {
                return Err(format!("no event on port {port} within {timeout:?}"));
            }
            let wake = (now + Duration::from_millis(100)).min(deadline);
            let wake_ns = u64::try_from(wake.as_nanos()).unwrap_or(u64::MAX);
            if self.platform.xen.poll(&mut [port], wake_ns).is_err() {
                self.platform.xen.yield_now();
            }
        }
    }

    fn abi_name(&self) -> &'static str {
        match self.platform.evtchn.abi() {
            EvtchnAbi::TwoLevel => "2-level",
            EvtchnAbi::Fifo => "FIFO",
        }
    }

    fn loopback_pair(&mut self) -> Result<(u32, u32), String> {
        let ev = &mut self.platform.evtchn;
        let a = ev.alloc_unbound(DOMID_SELF).map_err(err("alloc_unbound"))?;
        let b = ev
            .bind_interdomain(DOMID_SELF, a)
            .map_err(err("bind_interdomain"))?;
        Ok((a, b))
    }

    fn evtchn_loopback(&mut self) -> Result<String, String> {
        let (a, b) = self.loopback_pair()?;
        self.platform.evtchn.unmask(b).map_err(err("unmask"))?;
        for i in 0..LOOPBACK_COUNT {
            self.platform.evtchn.send(a).map_err(err("send"))?;
            self.wait_port(b, Duration::from_secs(5))
                .map_err(|e| format!("notification {i}: {e}"))?;
            self.platform.evtchn.unmask(b).map_err(err("unmask"))?;
        }
        // Coalescing: two sends while masked are one event.
        self.platform.evtchn.mask(b).map_err(err("mask"))?;
        self.platform.evtchn.send(a).map_err(err("send"))?;
        self.platform.evtchn.send(a).map_err(err("send"))?;
        if !self.platform.evtchn.is_pending(b).map_err(err("pending"))? {
            return Err("masked port not pending after send".into());
        }
        self.platform.evtchn.unmask(b).map_err(err("unmask"))?;
        self.wait_port(b, Duration::from_secs(5))?;
        self.platform.evtchn.close(b).map_err(err("close"))?;
        self.platform.evtchn.close(a).map_err(err("close"))?;
        Ok(format!(
            "{} ABI, ports {a}<->{b}, {LOOPBACK_COUNT} notifications",
            self.abi_name()
        ))
    }

    /// `VIRQ_TIMER` from the one-shot timer: fires, and never before its
    /// deadline.
    fn virq_timer(&mut self) -> Result<String, String> {
        let xen = self.platform.xen.clone();
        // A vCPU starts with a 10 ms periodic tick on the same VIRQ.
        xen.stop_periodic_timer(0)
            .map_err(err("stop_periodic_timer"))?;
        let port = self
            .platform
            .evtchn
            .bind_virq(xen_abi::hypercall::VIRQ_TIMER)
            .map_err(err("bind_virq"))?;
        let result = self.virq_timer_on(&xen, port);
        let _ = xen.stop_singleshot_timer(0);
        self.platform.evtchn.close(port).map_err(err("close"))?;
        result
    }

    fn virq_timer_on(&mut self, xen: &Xen<X86>, port: u32) -> Result<String, String> {
        self.platform.evtchn.unmask(port).map_err(err("unmask"))?;
        let mut late = Vec::new();
        for ms in [10u64, 20, 50] {
            let armed = self.now();
            let deadline = armed + Duration::from_millis(ms);
            let deadline_ns = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
            xen.set_singleshot_timer(0, deadline_ns, true)
                .map_err(err("set_singleshot_timer"))?;
            self.wait_port(port, Duration::from_secs(5))
                .map_err(|e| format!("{ms} ms timer: {e}"))?;
            let seen = self.now();
            // Xen's NOW() and our TSC extrapolation of the vcpu_info time
            // fields drift apart between calibrations, and more when the
            // vCPU moves between the rig's physical CPUs, whose TCG TSCs
            // differ (146 us under PVH, 1.7 ms under HVM seen). The slack
            // still catches a timer that fires at once.
            if seen + CLOCK_SKEW < deadline {
                return Err(format!(
                    "{ms} ms timer fired {} us early",
                    deadline.saturating_sub(seen).as_micros()
                ));
            }
            late.push(format!(
                "{ms} ms +{} us",
                seen.saturating_sub(deadline).as_micros()
            ));
            self.platform.evtchn.unmask(port).map_err(err("unmask"))?;
        }
        // A deadline already passed fires at once. `VCPU_SSHOTTMR_future` may
        // refuse it (-ETIME), but Xen is free to ignore the flag (4.17.x
        // does, since Linux misused it): either answer is correct, a lost
        // event is not.
        let past = u64::try_from(self.now().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_sub(1_000_000);
        let future_flag = match xen.set_singleshot_timer(0, past, true) {
            Ok(()) => {
                self.wait_port(port, Duration::from_secs(5))
                    .map_err(|e| format!("past deadline with VCPU_SSHOTTMR_future: {e}"))?;
                self.platform.evtchn.unmask(port).map_err(err("unmask"))?;
                "ignored"
            }
            Err(_) => "honoured (-ETIME)",
        };
        xen.set_singleshot_timer(0, past, false)
            .map_err(err("set_singleshot_timer (past)"))?;
        self.wait_port(port, Duration::from_secs(5))
            .map_err(|e| format!("past deadline: {e}"))?;
        Ok(format!(
            "port {port}: one-shot timers fired at {}; a past deadline fired at once (VCPU_SSHOTTMR_future {future_flag})",
            late.join(", ")
        ))
    }

    /// `VCPUOP_register_vcpu_info`: vCPU 0's `vcpu_info` moves into a page of
    /// ours; Xen keeps its time there (and no longer in the legacy slot) and
    /// events arrive through it.
    fn vcpu_info_placed(&mut self) -> Result<String, String> {
        let legacy = self
            .platform
            .shared_info
            .vcpu_info(0)
            .map_err(err("legacy slot"))?;
        // Never freed: Xen writes this page for the life of the domain.
        let page = self.pool_page()?;
        let pfn = page.pfn(0).ok_or("no pfn")?.0;
        let addr = page.as_ptr().as_ptr() as usize;
        core::mem::forget(page);
        // SAFETY: a pool page, identity-mapped, never freed (forgotten above)
        // and from now on only touched atomically through this window.
        let window = unsafe { Shared::new(X86, addr, PAGE_SIZE) };
        self.platform
            .place_vcpu_info(window, pfn)
            .map_err(err("register_vcpu_info"))?;
        crate::VCPU_INFO_ADDR.store(addr, Ordering::SeqCst);
        *self.clock.vcpu.borrow_mut() = self.platform.evtchn.vcpu_info().clone();
        let placed = self.platform.evtchn.vcpu_info().clone();
        let legacy_before = legacy.time().map_err(err("legacy time"))?;
        let placed_before = placed.time().map_err(err("placed time"))?;
        // Xen rewrites the time fields when its per-CPU time calibration
        // moves (about once a second) and the vCPU is scheduled in again.
        let deadline = self.now() + Duration::from_secs(5);
        let mut placed_after = placed_before;
        while placed_after.system_time == placed_before.system_time && self.now() < deadline {
            self.sleep(Duration::from_millis(50));
            placed_after = placed.time().map_err(err("placed time"))?;
        }
        let legacy_after = legacy.time().map_err(err("legacy time"))?;
        // The raw (tsc_timestamp, system_time) pair moves with calibration,
        // sometimes a little backwards; only the extrapolated time is
        // monotonic. A change is what shows Xen writes here.
        if placed_after == placed_before {
            return Err(format!(
                "Xen did not update the placed vcpu_info: system_time {} -> {}",
                placed_before.system_time, placed_after.system_time
            ));
        }
        if legacy_after != legacy_before {
            return Err(format!(
                "Xen still updates the legacy slot: system_time {} -> {}",
                legacy_before.system_time, legacy_after.system_time
            ));
        }
        let lo = self.evtchn_loopback()?;
        Ok(format!(
            "vcpu_info at gfn {pfn:#x}: its system_time {} -> {} ns, the legacy slot's frozen at {}; {lo}",
            placed_before.system_time, placed_after.system_time, legacy_before.system_time
        ))
    }

    fn evtchn_upcall(&mut self) -> Result<String, String> {
        self.platform
            .evtchn
            .set_callback_vector(UPCALL_VECTOR)
            .map_err(err("HVM_PARAM_CALLBACK_IRQ"))?;
        let (a, b) = self.loopback_pair()?;
        self.platform.evtchn.unmask(b).map_err(err("unmask"))?;
        let before = UPCALLS.load(Ordering::SeqCst);
        x86::enable_interrupts();
        self.platform.evtchn.send(a).map_err(err("send"))?;
        let deadline = self.now() + Duration::from_secs(5);
        while UPCALLS.load(Ordering::SeqCst) == before && self.now() < deadline {
            self.platform.xen.yield_now();
        }
        x86::disable_interrupts();
        let taken = UPCALLS.load(Ordering::SeqCst) - before;
        self.wait_port(b, Duration::from_secs(5))?;
        self.platform.evtchn.close(b).map_err(err("close"))?;
        self.platform.evtchn.close(a).map_err(err("close"))?;
        if taken == 0 {
            return Err(format!("no upcall on vector {UPCALL_VECTOR:#x} within 5 s"));
        }
        Ok(format!(
            "callback vector {UPCALL_VECTOR:#x}: {taken} upcall(s)"
        ))
    }

    /// The per-vCPU upcall vector (`HVMOP_set_evtchn_upcall_vector`), which
    /// arrives through the local APIC (enabled here) and needs an EOI.
    fn evtchn_upcall_percpu(&mut self) -> Result<String, String> {
        // SAFETY: the local APIC's spurious-vector register (offset 0xf0),
        // identity-mapped MMIO emulated by Xen; nothing else uses the APIC.
        let svr =
            unsafe { core::sync::atomic::AtomicU32::from_ptr((LAPIC_BASE + 0xf0) as *mut u32) };
        svr.store(svr.load(Ordering::SeqCst) | 0x100 | 0xff, Ordering::SeqCst);
        self.platform
            .evtchn
            .set_upcall_vector(0, PERCPU_UPCALL_VECTOR)
            .map_err(err("set_evtchn_upcall_vector"))?;
        let (a, b) = self.loopback_pair()?;
        self.platform.evtchn.unmask(b).map_err(err("unmask"))?;
        let before = PERCPU_UPCALLS.load(Ordering::SeqCst);
        self.platform
            .evtchn
            .vcpu_info()
            .take_upcall_pending()
            .map_err(err("upcall_pending"))?;
        x86::enable_interrupts();
        self.platform.evtchn.send(a).map_err(err("send"))?;
        let deadline = self.now() + Duration::from_secs(5);
        while PERCPU_UPCALLS.load(Ordering::SeqCst) == before && self.now() < deadline {
            self.sleep(Duration::from_millis(1));
        }
        x86::disable_interrupts();
        let taken = PERCPU_UPCALLS.load(Ordering::SeqCst) - before;
        self.wait_port(b, Duration::from_secs(5))?;
        self.platform.evtchn.close(b).map_err(err("close"))?;
        self.platform.evtchn.close(a).map_err(err("close"))?;
        if taken == 0 {
            return Err(format!(
                "no upcall on vector {PERCPU_UPCALL_VECTOR:#x} within 5 s"
            ));
        }
        Ok(format!(
            "per-vCPU vector {PERCPU_UPCALL_VECTOR:#x} through the local APIC: {taken} upcall(s)"
        ))
    }

    fn evtchn_interdomain(&mut self) -> Result<String, String> {
        self.evtchn_echo("")
    }

    /// Round trips with dom0 over a fresh interdomain channel; `mode` is
    /// appended to the request (`short` asks dom0 for a quick run).
    fn evtchn_echo(&mut self, mode: &str) -> Result<String, String> {
        let port = self
            .platform
            .evtchn
            .alloc_unbound(0)
            .map_err(err("alloc_unbound"))?;
        let answer = self.dom0(
            &format!("evtchn-echo {port} {mode}"),
            Duration::from_secs(30),
        )?;
        let count = answer
            .strip_prefix("bound ")
            .and_then(|c| c.parse::<u32>().ok())
            .filter(|&c| c > 0 && c <= ECHO_MAX)
            .ok_or_else(|| format!("dom0: {answer}"))?;
        self.platform.evtchn.unmask(port).map_err(err("unmask"))?;
        let t0 = self.now();
        for i in 0..count {
            self.platform.evtchn.send(port).map_err(err("send"))?;
            self.wait_port(port, Duration::from_secs(10))
                .map_err(|e| format!("round trip {i}: {e}"))?;
            self.platform.evtchn.unmask(port).map_err(err("unmask"))?;
        }
        let us = self.now().saturating_sub(t0).as_micros() / u128::from(count);
        let result = self.dom0("evtchn-result", Duration::from_secs(30))?;
        self.platform.evtchn.close(port).map_err(err("close"))?;
        let expect = format!("received {count} sent {count}");
        if result != expect {
            return Err(format!("dom0 counted {result:?}, expected {expect:?}"));
        }
        Ok(format!(
            "{} ABI, port {port}: {count} round trips = {} notifications with dom0, none lost, {us} us per round trip",
            self.abi_name(),
            2 * u64::from(count)
        ))
    }

    fn gnttab_growth(&mut self) -> Result<String, String> {
        let page = self.pool_page()?;
        let pfn = page.pfn(0).ok_or("no pfn")?.0;
        let gnttab = &mut self.platform.gnttab;
        let start = gnttab.frames();
        let max = gnttab.max_frames();
        let mut refs = Vec::new();
        while gnttab.frames() < GROW_TO_FRAMES {
            match gnttab.grant(0, pfn, true) {
                Ok(r) => refs.push(r),
                Err(e) => {
                    let n = refs.len();
                    for r in refs {
                        let _ = gnttab.revoke(r);
                    }
                    return Err(format!(
                        "grant {n} failed: {e:?} at {} frames (max {max})",
                        gnttab.frames()
                    ));
                }
            }
        }
        let n = refs.len();
        for r in refs {
            gnttab.revoke(r).map_err(|e| format!("revoke {r}: {e:?}"))?;
        }
        let frames = gnttab.frames();
        self.pool_free(page);
        Ok(format!(
            "{start} -> {frames} frames (max {max}), {n} grants made and revoked"
        ))
    }

    fn pool_page(&self) -> Result<Pages, String> {
        (&self.pool)
            .alloc(1)
            .map_err(|_| "page pool exhausted".to_string())
    }

    fn pool_free(&self, page: Pages) {
        (&self.pool).free(page);
    }

    fn gnttab_dom0_map(&mut self) -> Result<String, String> {
        let page = self.pool_page()?;
        let base = page.as_ptr().as_ptr();
        for i in 0..PAGE_SIZE / 2 {
            // SAFETY: `base` is our page, `i` inside its first half; nobody
            // else maps it yet.
            unsafe { core::ptr::write_volatile(base.wrapping_add(i), pattern_guest(i)) };
        }
        let pfn = page.pfn(0).ok_or("no pfn")?.0;
        let gref = self
            .platform
            .gnttab
            .grant(0, pfn, false)
            .map_err(err("grant"))?;
        let answer = self.dom0(&format!("gnt-map {gref}"), Duration::from_secs(30))?;
        if answer != "mapped ok" {
            let _ = self.platform.gnttab.revoke(gref);
            return Err(format!("dom0: {answer}"));
        }
        let refused = self.platform.gnttab.revoke(gref);
        let mut bad = None;
        for i in PAGE_SIZE / 2..PAGE_SIZE {
            // SAFETY: our page; dom0 wrote the second half before answering.
            let b = unsafe { core::ptr::read_volatile(base.wrapping_add(i)) };
            if b != pattern_dom0(i) {
                bad = Some(i);
                break;
            }
        }
        let unmapped = self.dom0("gnt-unmap", Duration::from_secs(30))?;
        let revoked = self.platform.gnttab.revoke(gref);
        if refused != Err(GrantFailure::InUse) {
            // Leak the page: it may still be mapped.
            return Err(format!("revoke while mapped returned {refused:?}"));
        }
        if unmapped != "unmapped" {
            return Err(format!("dom0: {unmapped}"));
        }
        revoked.map_err(|e| format!("revoke after unmap: {e:?}"))?;
        self.pool_free(page);
        if let Some(i) = bad {
            return Err(format!("dom0's bytes wrong at offset {i}"));
        }
        Ok(format!(
            "gref {gref}: dom0 read ours and wrote its own; revoke refused while mapped, accepted after unmap"
        ))
    }

    /// The balloon following `memory/target`: dom0 lowers the target with `xl
    /// mem-set`, the guest gives the difference back to Xen; dom0 raises it
    /// again, the guest takes the pages back. Both sides' view is checked: the
    /// domain's reservation here, `xl list` there.
    fn balloon(&mut self) -> Result<String, String> {
        // libxl does not make this key guest-writable (XENBUS writes it where
        // the toolstack does): EACCES is expected in the rig.
        let feature = match self.store.write(Txn::NONE, "control/feature-balloon", b"1") {
            Ok(()) => "feature-balloon written",
            Err(_) => "feature-balloon not writable",
        };
        let boot_target = self.target_kib()?;
        // What the balloon counts from: the target the domain booted with.
        let boot_pages = boot_target / 4;
        let low = boot_target
            .checked_sub(BALLOON_KIB)
            .ok_or_else(|| format!("memory/target {boot_target} KiB is too small"))?;
        let xen = self.platform.xen.clone();
        let before = xen
            .current_reservation()
            .map_err(err("current_reservation"))?;
        let mem_before = self.dom0("mem-info", Duration::from_secs(30))?;
        let watch = self
            .store
            .watch_add("memory/target")
            .map_err(|e| format!("watch memory/target: {e}"))?;
        let mut balloon = Balloon::new();
        let result = self.balloon_cycle(&mut balloon, watch, boot_pages, boot_target, low);
        let _ = self.store.watch_remove(watch);
        let (during, mem_during) = result?;
        let after = xen
            .current_reservation()
            .map_err(err("current_reservation"))?;
        let mem_after = self.dom0("mem-info", Duration::from_secs(30))?;
        let moved = BALLOON_KIB / 4;
        if during + moved != before || after != before || balloon.pages_out() != 0 {
            return Err(format!(
                "reservation {before} -> {during} -> {after} pages, {} still out",
                balloon.pages_out()
            ));
        }
        Ok(format!(
            "memory/target {boot_target} -> {low} -> {boot_target} KiB, {feature}; reservation {before} -> {during} -> {after} pages; xl list {mem_before} -> {mem_during} -> {mem_after}"
        ))
    }

    /// Target down, balloon out, target up, balloon in; returns the
    /// reservation and dom0's view while the target was low.
    fn balloon_cycle(
        &mut self,
        balloon: &mut Balloon,
        watch: WatchId,
        boot_pages: u64,
        boot_target: u64,
        low: u64,
    ) -> Result<(u64, String), String> {
        let xen = self.platform.xen.clone();
        let mut during = None;
        for target in [low, boot_target] {
            let answer = self.dom0(&format!("mem-set {target}"), Duration::from_secs(60))?;
            if answer != "set" {
                return Err(format!("dom0: {answer}"));
            }
            // Act on what the toolstack wrote, as a balloon driver does.
            let deadline = self.now() + Duration::from_secs(30);
            let seen = loop {
                let now = self.target_kib()?;
                if now == target || self.now() > deadline {
                    break now;
                }
                let _ = self.store.watch_wait(watch, Duration::from_millis(500));
            };
            if seen != target {
                return Err(format!("memory/target stayed {seen}, dom0 set {target}"));
            }
            let current = boot_pages - balloon.pages_out() as u64;
            let delta = balloon::pages_to_target(seen, current);
            let want = usize::try_from(delta.unsigned_abs()).map_err(|_| "huge delta")?;
            let moved = if delta > 0 {
                balloon.inflate(&xen, &self.pool, want)
            } else {
                balloon.deflate(&xen, &self.pool, want)
            }
            .map_err(err("balloon"))?;
            if moved != want {
                return Err(format!("moved {moved} of {want} pages toward {seen} KiB"));
            }
            if during.is_none() {
                let reservation = xen
                    .current_reservation()
                    .map_err(err("current_reservation"))?;
                during = Some((reservation, self.dom0("mem-info", Duration::from_secs(30))?));
            }
        }
        during.ok_or_else(|| "no low phase".into())
    }

    fn target_kib(&self) -> Result<u64, String> {
        let v = self.read("memory/target")?;
        v.trim()
            .parse()
            .map_err(|_| format!("memory/target {v:?} is not a number"))
    }

    fn watchdog(&mut self) -> Result<String, String> {
        let xen = &self.platform.xen;
        let id = xen.watchdog(0, 60).map_err(err("create"))?;
        if id == 0 {
            return Err("watchdog id 0".into());
        }
        xen.watchdog(id, 60).map_err(err("pet"))?;
        xen.watchdog(id, 0).map_err(err("destroy"))?;
        Ok(format!("watchdog {id} created, petted, destroyed"))
    }

    fn suspend_resume(&mut self) -> Result<String, String> {
        self.write("control/feature-suspend", "1")?;
        let domid_before = self.read("domid")?;
        self.write("control/shutdown", "")?;
        let w = self
            .store
            .watch_add("control/shutdown")
            .map_err(|e| format!("watch: {e}"))?;
        let answer = self.dom0("save-restore", Duration::from_secs(30))?;
        if answer != "saving" {
            return Err(format!("dom0: {answer}"));
        }
        let deadline = self.now() + Duration::from_secs(60);
        loop {
            if self.read("control/shutdown").is_ok_and(|v| v == "suspend") {
                break;
            }
            if self.now() > deadline {
                return Err("no control/shutdown = suspend within 60 s".into());
            }
            let _ = self.store.watch_wait(w, Duration::from_millis(500));
        }
        self.store
            .watch_remove(w)
            .map_err(|e| format!("unwatch: {e}"))?;
        // Acknowledge, as the toolstack expects, then suspend.
        self.write("control/shutdown", "")?;
        self.vbd_before_suspend();
        let mut hooks = Hooks::default();
        let t0 = self.now();
        let outcome = self
            .platform
            .suspend(&mut hooks, &IdentityMapper)
            .map_err(err("suspend"))?;
        *self.clock.vcpu.borrow_mut() = self.platform.evtchn.vcpu_info().clone();
        let transport = RingTransport::new(
            self.platform.store.clone(),
            StoreNotify::new(self.platform.xen.clone(), self.platform.store_port),
        )
        .map_err(err("xenstore ring after resume"))?;
        self.refresh_store_flag();
        self.store
            .reconnect(transport)
            .map_err(|e| format!("xenstore reconnect: {e}"))?;
        let domid_after = self.read("domid")?;
        // A new domain has a new home: re-create our protocol nodes there.
        self.write("data/xenpv/ack", "0")?;
        self.ack_watch = Some(
            self.store
                .watch_add("data/xenpv/ack")
                .map_err(|e| format!("watch ack: {e}"))?,
        );
        let ms = self.now().saturating_sub(t0).as_millis();
        if outcome != SuspendOutcome::Resumed {
            return Err(format!("suspend was cancelled ({outcome:?})"));
        }
        if hooks.calls != ["suspend", "early", "late"] {
            return Err(format!("hooks ran as {:?}", hooks.calls));
        }
        Ok(format!(
            "domid {domid_before} -> {domid_after}, {ms} ms of guest time across save/restore"
        ))
    }

    /// `xl shutdown` from dom0 arrives as `control/shutdown` = `poweroff`
    /// through a watch; the guest acknowledges it (empties the key, as the
    /// toolstack expects) and powers off after its report.
    fn toolstack_shutdown(&mut self) -> Result<String, String> {
        self.write("control/shutdown", "")?;
        let w = self
            .store
            .watch_add("control/shutdown")
            .map_err(|e| format!("watch: {e}"))?;
        let result = self.await_shutdown_request(w);
        let _ = self.store.watch_remove(w);
        let (request, raw) = result?;
        if request != ShutdownRequest::Poweroff {
            return Err(format!("control/shutdown = {raw:?}, expected poweroff"));
        }
        self.write("control/shutdown", "")?;
        Ok(format!(
            "xl shutdown seen as control/shutdown = {raw:?} ({request:?}), acknowledged"
        ))
    }

    fn await_shutdown_request(&mut self, w: WatchId) -> Result<(ShutdownRequest, String), String> {
        let answer = self.dom0("xl-shutdown", Duration::from_secs(30))?;
        if answer != "requested" {
            return Err(format!("dom0: {answer}"));
        }
        let deadline = self.now() + Duration::from_secs(60);
        loop {
            let raw = self.read("control/shutdown").unwrap_or_default();
            if let Some(request) = ShutdownRequest::parse(raw.as_bytes()) {
                return Ok((request, raw));
            }
            if self.now() > deadline {
                return Err("no control/shutdown request within 60 s".into());
            }
            let _ = self.store.watch_wait(w, Duration::from_millis(500));
        }
    }

    fn vbd_env(&mut self) -> crate::vbd::Env<'_, Client<Transport, Timebase>> {
        crate::vbd::Env {
            platform: &mut self.platform,
            store: &self.store,
            pool: self.pool,
        }
    }

    /// `vbd_connect`, `vbd_io` and (with the dom0 helper) `vbd_verify`, if
    /// the guest has an `xvd` disk (the PVH suite gives it one).
    fn vbd_checks(&mut self, dom0: bool) {
        let Some(dir) = crate::vbd::find_pv_disk(&self.store) else {
            return;
        };
        self.check("vbd_connect", |r| r.vbd_connect(&dir));
        if self.vbd.is_some() {
            self.check("vbd_io", Runner::vbd_io);
            if dom0 {
                self.check("vbd_verify", Runner::vbd_verify);
            }
        }
    }

    fn vbd_connect(&mut self, dir: &str) -> Result<String, String> {
        let (vbd, detail) = crate::vbd::Vbd::connect(&mut self.vbd_env(), dir)?;
        self.vbd = Some(vbd);
        Ok(detail)
    }

    fn vbd_io(&mut self) -> Result<String, String> {
        let mut vbd = self.vbd.take().ok_or("no connected vbd")?;
        let smoke = vbd.smoke(&mut self.vbd_env());
        let result = smoke.and_then(|smoke| {
            vbd.io_mix(&mut self.vbd_env(), VBD_IO_OPS, 0x5eed_0001)
                .map(|mix| format!("{smoke}{mix}"))
        });
        self.vbd = Some(vbd);
        result
    }

    /// Flushes, then has dom0 check the image against what the guest wrote.
    fn vbd_verify(&mut self) -> Result<String, String> {
        let mut vbd = self.vbd.take().ok_or("no connected vbd")?;
        let request = vbd.verify_request(&mut self.vbd_env());
        self.vbd = Some(vbd);
        let answer = self.dom0(&request?, Duration::from_secs(120))?;
        crate::vbd::check_verify_answer(&answer)
    }

    /// Called right before the suspend: leaves writes in flight.
    fn vbd_before_suspend(&mut self) {
        if let Some(mut vbd) = self.vbd.take() {
            vbd.before_suspend(&mut self.vbd_env(), 0x5eed_0002);
            self.vbd = Some(vbd);
        }
    }

    /// After the restore: the vbd reconnects in the new domain, replays the
    /// writes that were in flight, reads the disk back; dom0 checks the image.
    fn vbd_suspend_resume(&mut self) -> Result<String, String> {
        let mut vbd = self.vbd.take().ok_or("no connected vbd")?;
        let resumed = vbd.after_resume(&mut self.vbd_env());
        let request = resumed
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|_| vbd.verify_request(&mut self.vbd_env()));
        self.vbd = Some(vbd);
        let detail = resumed?;
        let answer = self.dom0(&request?, Duration::from_secs(120))?;
        let verified = crate::vbd::check_verify_answer(&answer)?;
        Ok(format!("{detail}; dom0: {verified}"))
    }

    /// Closes the vbd against blkback: every grant comes back.
    fn vbd_close(&mut self) -> Result<String, String> {
        let vbd = self.vbd.take().ok_or("no connected vbd")?;
        vbd.close(&mut self.vbd_env())
    }

    fn after_resume(&mut self) -> Result<String, String> {
        let answer = self.dom0("hello", Duration::from_secs(60))?;
        if answer != "hello" {
            return Err(format!("dom0 helper answered {answer:?}"));
        }
        let lo = self.evtchn_loopback()?;
        let inter = self.evtchn_echo("short")?;
        let gnt = self.gnttab_dom0_map()?;
        Ok(format!("xenstore ok; {lo}; {inter}; {gnt}"))
    }
}

/// The xenstore client the checks use.
type StoreClient = Client<Transport, Timebase>;

/// The network device checks ([`crate::vif`]): connect to dom0's netback,
/// ping, UDP echo, guest-originated UDP, close.
impl Runner<'_> {
    fn vif_checks(&mut self) {
        // A domain configured without a vif (the HVM variant) skips them.
        if self.read("device/vif/0/backend").is_err() {
            self.log.line(format_args!(
                "{REPORT_PREFIX} note: no device/vif/0, network checks skipped"
            ));
            return;
        }
        let mut dev: Option<vif::Device> = None;
        self.check("vif_connect", |r| {
            let (d, detail) = r.vif_connect()?;
            dev = Some(d);
            Ok(detail)
        });
        let Some(mut dev) = dev else {
            return;
        };
        self.check("vif_ping", |r| r.vif_ping(&mut dev));
        self.check("vif_udp_echo", |r| r.vif_udp_echo(&mut dev));
        self.check("vif_guest_tx", |r| r.vif_guest_tx(&mut dev));
        self.check("vif_close", |r| r.vif_close(&mut dev));
    }

    /// Lends the platform's event channel and grant tables to `f`.
    fn with_vif_env<R>(&mut self, f: impl FnOnce(&vif::Env<'_, '_, StoreClient>) -> R) -> R {
        let evtchn = RefCell::new(&mut self.platform.evtchn);
        let gnttab = RefCell::new(&mut self.platform.gnttab);
        let env = vif::Env {
            store: &self.store,
            evtchn: &evtchn,
            gnttab: &gnttab,
            pool: self.pool,
        };
        f(&env)
    }

    fn vif_pump(&mut self, dev: &mut vif::Device) -> Result<usize, String> {
        self.with_vif_env(|env| dev.pump(env))
    }

    /// Blocks in `SCHEDOP_poll` on the device's ports (and the xenstore port
    /// with `store`: its pending flag must have been taken), at most `max` and
    /// not past `deadline`.
    fn vif_wait(&self, dev: &vif::Device, store: bool, max: Duration, deadline: Duration) {
        let mut ports = [0u32; 3];
        let mut n = 0;
        let store = self
            .clock
            .store
            .borrow()
            .as_ref()
            .map(|(p, _)| *p)
            .filter(|_| store);
        for port in dev.ports().chain(store) {
            if let Some(slot) = ports.get_mut(n) {
                *slot = port;
                n += 1;
            }
        }
        let wake = (self.now() + max).min(deadline);
        let wake_ns = u64::try_from(wake.as_nanos()).unwrap_or(u64::MAX);
        if self.platform.xen.poll(&mut ports[..n], wake_ns).is_err() {
            self.platform.xen.yield_now();
        }
    }

    /// Sends `cmd` to dom0 and keeps the device answering traffic until dom0
    /// answers (its ack watch fires, or a look every 200 ms).
    fn dom0_pumping(
        &mut self,
        dev: &mut vif::Device,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        self.seq += 1;
        let prefix = format!("{} ", self.seq);
        self.write("data/xenpv/req", &format!("{prefix}{cmd}"))?;
        let deadline = self.now() + timeout;
        let mut last_look = self.now();
        loop {
            self.vif_pump(dev)?;
            let store_fired = self
                .clock
                .store
                .borrow()
                .as_ref()
                .is_some_and(|(_, flag)| flag.take());
            let periodic = self.now().saturating_sub(last_look) > Duration::from_millis(200);
            let fired = store_fired
                && self
                    .ack_watch
                    .is_none_or(|w| self.store.watch_wait(w, Duration::ZERO).unwrap_or(true));
            if fired || periodic {
                last_look = self.now();
                let ack = self.read("data/xenpv/ack");
                // Our own read left the store port pending: forget it.
                if let Some((_, flag)) = self.clock.store.borrow().as_ref() {
                    flag.take();
                }
                if let Some(answer) = ack
                    .ok()
                    .and_then(|a| a.strip_prefix(&prefix).map(String::from))
                {
                    return Ok(answer);
                }
            }
            if self.now() > deadline {
                return Err(format!("dom0 did not answer {cmd:?} within {timeout:?}"));
            }
            self.vif_wait(dev, true, Duration::from_millis(50), deadline);
        }
    }

    fn vif_connect(&mut self) -> Result<(vif::Device, String), String> {
        let t0 = self.now();
        let mut dev = self.with_vif_env(|env| vif::Device::connect(env, "device/vif/0"))?;
        let connect_ms = self.now().saturating_sub(t0).as_millis();
        let mac = vif::mac_text(dev.net.mac);
        let answer = match self.dom0_pumping(
            &mut dev,
            &format!("vif-setup {mac}"),
            Duration::from_secs(60),
        ) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.with_vif_env(|env| dev.close(env));
                return Err(e);
            }
        };
        let mut words = answer.split_whitespace();
        let peer_mac = words.next().and_then(|m| MacAddress::parse(m.as_bytes()));
        let peer_ip = words.next().and_then(vif::parse_ipv4);
        let ip = words.next().and_then(vif::parse_ipv4);
        let (Some(peer_mac), Some(peer_ip), Some(ip)) = (peer_mac, peer_ip, ip) else {
            let _ = self.with_vif_env(|env| dev.close(env));
            return Err(format!("dom0: {answer}"));
        };
        dev.net.peer_mac = peer_mac;
        dev.net.peer_ip = peer_ip;
        dev.net.ip = ip;
        let grants_used = dev
            .grants_before()
            .saturating_sub(self.platform.gnttab.available());
        let detail = format!(
            "{} in {connect_ms} ms; {grants_used} grants held; guest {ip}, dom0 {peer_ip} {}",
            dev.describe(),
            vif::mac_text(peer_mac)
        );
        Ok((dev, detail))
    }

    /// dom0 pings us; the answer is `sent <n> received <m> bad <b> sizes
    /// <list> rtt <avg ms>`.
    fn vif_ping(&mut self, dev: &mut vif::Device) -> Result<String, String> {
        let before = dev.counters;
        let t0 = self.now();
        let answer = self.dom0_pumping(dev, "vif-ping", Duration::from_secs(300))?;
        let ms = self.now().saturating_sub(t0).as_millis();
        let c = dev.counters;
        let sent = field(&answer, "sent");
        let received = field(&answer, "received");
        let bad = field(&answer, "bad");
        if sent.is_none() || sent != received || bad != Some(0) {
            return Err(format!("dom0: {answer}"));
        }
        Ok(format!(
            "dom0: {answer}; guest answered {} echo requests and {} ARP requests, {} frames / {} bytes in, {} frames / {} bytes out in {ms} ms, {} bad, {} tx busy",
            c.icmp_replies - before.icmp_replies,
            c.arp_replies - before.arp_replies,
            c.rx_frames - before.rx_frames,
            c.rx_bytes - before.rx_bytes,
            c.tx_frames - before.tx_frames,
            c.tx_bytes - before.tx_bytes,
            c.bad - before.bad,
            c.tx_busy - before.tx_busy,
        ))
    }

    /// dom0 sends datagrams of mixed sizes to our echo port, a window at a
    /// time, and checks every echo byte for byte; the answer is `sent <n> ok
    /// <m> lost <l> bad <b> bytes <B> ms <t>`.
    fn vif_udp_echo(&mut self, dev: &mut vif::Device) -> Result<String, String> {
        let before = dev.counters;
        let t0 = self.now();
        let answer = self.dom0_pumping(dev, "vif-echo", Duration::from_secs(600))?;
        let ms = self.now().saturating_sub(t0).as_millis().max(1);
        let c = dev.counters;
        let sent = field(&answer, "sent");
        let ok = field(&answer, "ok");
        if sent.is_none_or(|n| n == 0) || sent != ok || field(&answer, "bad") != Some(0) {
            return Err(format!("dom0: {answer}; guest: {c:?}"));
        }
        let echoed = c.udp_echoed - before.udp_echoed;
        let bytes = c.udp_echoed_bytes - before.udp_echoed_bytes;
        Ok(format!(
            "dom0: {answer}; guest echoed {echoed} datagrams / {bytes} payload bytes in {ms} ms ({} KiB/s each way); {} not dom0's pattern on arrival; rx checksum blank {} / validated {} / verified here {}; tx checksum offloaded {} / computed here {}; {} bad, {} tx busy, {} tx errors",
            u128::from(bytes) * 1000 / 1024 / ms,
            c.echo_pattern_bad - before.echo_pattern_bad,
            c.rx_csum_blank - before.rx_csum_blank,
            c.rx_validated - before.rx_validated,
            c.rx_csum_verified - before.rx_csum_verified,
            c.tx_csum_offloaded - before.tx_csum_offloaded,
            c.tx_csum_full - before.tx_csum_full,
            c.bad - before.bad,
            c.tx_busy - before.tx_busy,
            c.tx_errors - before.tx_errors,
        ))
    }

    /// We send datagrams to dom0's sink a window at a time (the next window
    /// once dom0 acknowledged the last); dom0 checks content and order.
    fn vif_guest_tx(&mut self, dev: &mut vif::Device) -> Result<String, String> {
        let answer = self.dom0_pumping(dev, "vif-sink", Duration::from_secs(60))?;
        let port = field(&answer, "listening").and_then(|p| u16::try_from(p).ok());
        let count = field(&answer, "count").and_then(|n| u32::try_from(n).ok());
        let window = field(&answer, "window").and_then(|n| u32::try_from(n).ok());
        let (Some(port), Some(count), Some(window)) = (port, count, window) else {
            return Err(format!("dom0: {answer}"));
        };
        if window == 0 || window > u32::try_from(vif::TX_PAGES).unwrap_or(0) {
            return Err(format!("dom0 asks for a window of {window}"));
        }
        let before = dev.counters;
        let t0 = self.now();
        let (mut seq, mut base, mut stalls) = (0u32, 0u32, 0u32);
        let mut bytes = 0u64;
        // Since when the whole window is out and unacknowledged.
        let mut waiting_since: Option<Duration> = None;
        while seq < count {
            let allowed = base.max(dev.counters.sink_acked).saturating_add(window);
            if seq < allowed {
                waiting_since = None;
                if self.with_vif_env(|env| dev.send_datagram(env, seq, port)) {
                    bytes += u64::try_from(vif::datagram_len(seq)).unwrap_or(0);
                    seq += 1;
                    continue;
                }
            } else {
                let since = *waiting_since.get_or_insert(self.now());
                if self.now().saturating_sub(since) > Duration::from_secs(2) {
                    // dom0 did not acknowledge the window: go on (its final
                    // counts show what was lost).
                    stalls += 1;
                    base = seq;
                    continue;
                }
            }
            self.vif_pump(dev)?;
            let allowed = base.max(dev.counters.sink_acked).saturating_add(window);
            // Wait for an ack, or for netback to give transmit pages back.
            if seq >= allowed || dev.tx_in_flight() >= vif::TX_PAGES {
                let deadline = self.now() + Duration::from_secs(2);
                self.vif_wait(dev, false, Duration::from_millis(50), deadline);
            }
        }
        let send_ms = self.now().saturating_sub(t0).as_millis().max(1);
        let result = self.dom0_pumping(dev, "vif-sink-result", Duration::from_secs(120))?;
        let c = dev.counters;
        let received = field(&result, "received");
        if received != Some(u64::from(count))
            || field(&result, "bad") != Some(0)
            || field(&result, "order") != Some(0)
            || stalls != 0
        {
            return Err(format!(
                "sent {count}, {stalls} window(s) not acknowledged within 2 s; dom0: {result}"
            ));
        }
        Ok(format!(
            "sent {count} datagrams / {bytes} payload bytes to dom0:{port} in windows of {window} in {send_ms} ms ({} KiB/s); checksums offloaded {} / computed here {}; {} acks; dom0: {result}",
            u128::from(bytes) * 1000 / 1024 / send_ms,
            c.tx_csum_offloaded - before.tx_csum_offloaded,
            c.tx_csum_full - before.tx_csum_full,
            c.sink_acks - before.sink_acks,
        ))
    }

    /// Closes the device: the backend must be `Closed`, every grant ended.
    fn vif_close(&mut self, dev: &mut vif::Device) -> Result<String, String> {
        let stats = dev.rx_stats();
        let c = dev.counters;
        let state = self.with_vif_env(|env| dev.close(env))?;
        let grants_after = self.platform.gnttab.available();
        if state != XenbusState::Closed {
            return Err(format!("backend in {state:?} after close"));
        }
        if grants_after != dev.grants_before() {
            return Err(format!(
                "grants available {} before connect, {grants_after} after close",
                dev.grants_before()
            ));
        }
        Ok(format!(
            "backend Closed, all grants ended ({grants_after} available as before connect), pages back in the pool; totals: {} frames / {} bytes in ({} rx packets, {} rx errors in the core), {} frames / {} bytes out, {} ignored, {} bad",
            c.rx_frames,
            c.rx_bytes,
            stats.rx_packets,
            stats.rx_errors,
            c.tx_frames,
            c.tx_bytes,
            c.ignored,
            c.bad
        ))
    }
}

/// The number after `key` in a `key value key value...` answer.
fn field(answer: &str, key: &str) -> Option<u64> {
    let mut words = answer.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

/// Byte `i` of what the guest writes into the first half of the granted page.
pub fn pattern_guest(i: usize) -> u8 {
    i.wrapping_mul(7).wrapping_add(3).to_le_bytes()[0]
}

/// Byte `i` of what dom0 writes into the second half.
pub fn pattern_dom0(i: usize) -> u8 {
    i.wrapping_mul(13).wrapping_add(1).to_le_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_and_cover_all_bytes() {
        let g: Vec<u8> = (0..256).map(pattern_guest).collect();
        let mut sorted = g.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        assert!((0..4096).any(|i| pattern_guest(i) != pattern_dom0(i)));
        assert_eq!(
            pattern_dom0(2048),
            u8::try_from((2048 * 13 + 1) % 256).unwrap()
        );
    }
}
