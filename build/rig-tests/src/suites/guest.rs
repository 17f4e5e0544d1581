//! `guest`: our own PVH test kernel (`xenbus/guest-kernel`, shipped beside the
//! runner by `cargo xtask rig test`) boots as a domU and runs `xenbus-core`'s
//! guest platform against the real hypervisor and xenstored; this side starts
//! it, serves its dom0 requests (event channel echo, grant mapping through
//! gntdev, `xl save`/`xl restore`, the network traffic of `guest_vif.rs`
//! against its vif on `xenbr0`) and turns its report lines into tests.
//!
//! The first test boots the guest and runs everything (the whole conversation
//! takes one domain lifetime); each following test reports one of the guest's
//! checks. Protocol and report format: `xenbus/guest-kernel/src/checks.rs`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::dom0::{Evtchn, MappedGrant, Xenbus};

#[path = "guest_vif.rs"]
mod vif;
use crate::{Suite, helper};

/// A guest suite's tests: `boot_and_run` (`$boot`, which runs the guest),
/// then one test per check the kernel reports, looked up with `$check`: the
/// variant's own checks (`$first`), then those every variant runs, in report
/// order.
macro_rules! guest_tests {
    ($boot:expr, $check:path $(, $first:literal)* $(,)?) => {
        guest_tests!(@tests $boot, $check; $($first,)*
            "hypercall_version",
            "shared_info_time",
            "xenstore_read_write",
            "xenstore_watch",
            "evtchn_2l_loopback",
            "evtchn_upcall_vector",
            "virq_timer",
            "vcpu_info_placed",
            "evtchn_2l_interdomain",
            "evtchn_fifo_loopback",
            "evtchn_fifo_interdomain",
            "gnttab_growth",
            "gnttab_dom0_map",
            "vbd_connect",
            "vbd_io",
            "vbd_verify",
            "balloon",
            "watchdog",
            "vif_connect",
            "vif_ping",
            "vif_udp_echo",
            "vif_guest_tx",
            "vif_close",
            "suspend_resume",
            "vbd_suspend_resume",
            "after_resume",
            "vbd_close",
            "evtchn_upcall_percpu",
            "toolstack_shutdown",
        )
    };
    (@tests $boot:expr, $check:path; $($name:literal,)*) => {
        &[
            $crate::Test {
                name: "boot_and_run",
                run: $boot,
            },
            $($crate::Test {
                name: $name,
                run: || $check($name),
            },)*
        ]
    };
}
pub(super) use guest_tests;

/// The suite.
pub const SUITE: Suite = Suite {
    name: "guest",
    tests: guest_tests!(boot_and_run, check),
    benches: &[],
};

/// Round trips per event-channel ABI: 5000 = 10^4 notifications exchanged
/// (`XENPV_GUEST_ECHO` overrides).
fn echo_count() -> u32 {
    std::env::var("XENPV_GUEST_ECHO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

/// The kernel's file name beside the runner.
const KERNEL: &str = "xenbus-guest-kernel";
/// The report prefix (`REPORT_PREFIX` in the kernel).
const PREFIX: &str = "XENPV-GUEST";
/// Upper bound for one guest run.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// One way to run the test kernel: its domain and where its lines appear
/// (the PVH domain here, the HVM one in `guest_hvm`).
pub(super) struct GuestSpec {
    /// The domain's name.
    pub name: &'static str,
    /// The xl configuration after `name`, for the kernel at this path.
    pub config: fn(&Path) -> String,
    /// xenconsoled's log of the domain's PV console.
    pub console_log: &'static str,
    /// Where `xl save` puts the domain.
    pub save_file: &'static str,
    /// Runs before `xl create` (disk images, modules).
    pub prepare: fn() -> Result<(), String>,
    /// Runs after the domain is gone (undoes `prepare`).
    pub cleanup: fn(),
}

/// The PVH domain.
const PVH: GuestSpec = GuestSpec {
    name: "xenpv-guest",
    config: |kernel| {
        format!(
            "type = \"pvh\"\nkernel = \"{}\"\nmemory = 32\nvcpus = 1\n\
             on_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"preserve\"\n\
             tsc_mode = \"native\"\n\
             disk = [ \"format=raw,vdev=xvda,access=rw,target={DISK_IMAGE}\" ]\n{}",
            kernel.display(),
            vif::config_line()
        )
    },
    console_log: "/var/log/xen/console/guest-xenpv-guest.log",
    save_file: "/tmp/xenpv-guest.save",
    prepare: || {
        let _ = std::fs::remove_file(DISK_IMAGE);
        std::fs::File::create(DISK_IMAGE)
            .and_then(|f| f.set_len(DISK_BYTES))
            .map_err(|e| format!("create {DISK_IMAGE}: {e}"))
    },
    cleanup: || {
        let _ = std::fs::remove_file(DISK_IMAGE);
    },
};

/// The PVH guest's disk (`xvda`; `/tmp` is a tmpfs) and its size.
const DISK_IMAGE: &str = "/tmp/xenpv-guest-disk.img";
const DISK_BYTES: u64 = 32 << 20;

/// What one guest run produced.
#[derive(Debug)]
pub(super) struct GuestRun {
    /// Report lines, prefix removed (`ok <check> ...`, `FAIL <check>: ...`).
    lines: Vec<String>,
    /// `xl create` to the `done` line.
    boot_to_result: Option<Duration>,
    /// Things the dom0 side noticed (failed requests, save/restore output).
    notes: Vec<String>,
}

static RUN: OnceLock<Result<GuestRun, String>> = OnceLock::new();

fn guest_run() -> Result<&'static GuestRun, String> {
    RUN.get_or_init(|| run_guest(&PVH))
        .as_ref()
        .map_err(Clone::clone)
}

fn boot_and_run() -> Result<(), String> {
    report_run(guest_run()?)
}

/// The first test of a guest suite: the run's notes and its `done` line.
pub(super) fn report_run(run: &GuestRun) -> Result<(), String> {
    for note in &run.notes {
        println!("guest: dom0 side: {note}");
    }
    let done = run.lines.iter().find(|l| l.starts_with("done "));
    match (done, run.boot_to_result) {
        (Some(done), Some(t)) => {
            println!(
                "guest: {done}; boot-to-result {:.1} s from xl create",
                t.as_secs_f64()
            );
            Ok(())
        }
        _ => Err(format!(
            "the guest did not finish; its last lines: {}",
            run.lines
                .iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        )),
    }
}

fn check(name: &str) -> Result<(), String> {
    check_in(guest_run()?, name)
}

/// One of the guest's checks, as the run reported it.
pub(super) fn check_in(run: &GuestRun, name: &str) -> Result<(), String> {
    for line in &run.lines {
        if let Some(rest) = line.strip_prefix("ok ") {
            if rest.split_whitespace().next() == Some(name) {
                println!("guest: {line}");
                return Ok(());
            }
        }
        if let Some(rest) = line.strip_prefix("FAIL ") {
            if let Some(reason) = rest.strip_prefix(name).and_then(|r| r.strip_prefix(": ")) {
                return Err(reason.to_string());
            }
        }
    }
    Err("the guest did not report this check".into())
}

/// Byte `i` the guest writes into the first half of its granted page
/// (`pattern_guest` in `xenbus/guest-kernel/src/checks.rs`).
fn pattern_guest(i: usize) -> u8 {
    i.wrapping_mul(7).wrapping_add(3).to_le_bytes()[0]
}

/// Byte `i` dom0 writes into the second half (`pattern_dom0` there).
fn pattern_dom0(i: usize) -> u8 {
    i.wrapping_mul(13).wrapping_add(1).to_le_bytes()[0]
}

/// `mix`, `sector_seed` and `sector_word` of `xenbus/guest-kernel/src/vbd.rs`:
/// every sector the guest writes names itself and its write's stamp.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// "XVBD", the first word of every written sector.
const SECTOR_MAGIC: u32 = u32::from_le_bytes(*b"XVBD");

/// Checks the guest's disk image at `path`: every sector is zero (never written) or
/// carries the magic, its own number, a stamp and the pattern of both; the
/// written sectors' count and FNV-1a digest of (sector, stamp) must be the
/// guest's.
fn verify_disk(path: &str, sectors: u64, written: u64, digest: u64) -> Result<String, String> {
    let image = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    if image.len() as u64 != sectors * 512 {
        return Ok(format!(
            "bad size: image {} bytes, guest says {sectors} sectors",
            image.len()
        ));
    }
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    let mut seen = 0u64;
    for (s, sector) in image.chunks_exact(512).enumerate() {
        let s = s as u64;
        let word = |j: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&sector[j * 8..j * 8 + 8]);
            u64::from_le_bytes(b)
        };
        if sector.iter().all(|&b| b == 0) {
            continue;
        }
        let head = word(0);
        let stamp = u32::try_from(head >> 32).unwrap_or(0);
        if head & 0xffff_ffff != u64::from(SECTOR_MAGIC) || stamp == 0 || word(1) != s {
            return Ok(format!(
                "bad sector {s}: header {head:#018x} {:#x}",
                word(1)
            ));
        }
        let seed = mix((u64::from(stamp) << 40) ^ s);
        if let Some(j) = (2..64).find(|&j| word(j) != mix(seed ^ j as u64)) {
            return Ok(format!("bad sector {s}: word {j} (stamp {stamp})"));
        }
        for b in s.to_le_bytes().into_iter().chain(stamp.to_le_bytes()) {
            fnv ^= u64::from(b);
            fnv = fnv.wrapping_mul(0x0000_0100_0000_01b3);
        }
        seen += 1;
    }
    if seen != written || fnv != digest {
        return Ok(format!(
            "bad content: {seen} written sectors with digest {fnv:016x}, guest says {written} with {digest:016x}"
        ));
    }
    Ok(format!(
        "verified {seen} written sectors of {sectors} in {path}, digest {fnv:016x}"
    ))
}

/// `xl` subcommands that may simply run again: they only read, or set a
/// value to the same thing twice.
const XL_IDEMPOTENT: &[&str] = &["domid", "list", "dmesg", "mem-set", "destroy"];

/// Runs `xl`. In the rig's dom0 (PV, under TCG) `xl` now and then dies of a
/// signal in the dynamic loader, libc's malloc or libxenlight, with its heap
/// corrupt (about one boot in fifteen, never reproducible; pinning it to one
/// vCPU did not help): an idempotent command is then run again, up to twice,
/// with a note in the output; `xl create` goes through [`xl_create`].
fn xl(args: &[&str]) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt as _;
    let retry = args.first().is_some_and(|a| XL_IDEMPOTENT.contains(a));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = Command::new("xl")
            .args(args)
            .output()
            .map_err(|e| format!("xl: {e}"))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if let Some(signal) = out.status.signal() {
            if retry && attempt < 3 {
                println!(
                    "guest: dom0 side: xl {} died of signal {signal}; running it again",
                    args.join(" ")
                );
                continue;
            }
            return Err(format!("xl {}: killed by signal {signal}", args.join(" ")));
        }
        return Err(format!(
            "xl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
}

/// `xl create`; when xl, or the domain-monitoring child it forks, dies of a
/// signal (see [`xl`]) whatever it left is destroyed and the domain created
/// again, up to twice.
fn xl_create(name: &str, cfg_path: &str) -> Result<String, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match xl(&["create", cfg_path]) {
            Err(e)
                if (e.contains("killed by signal") || e.contains("died due to fatal signal"))
                    && attempt < 3 =>
            {
                println!("guest: dom0 side: {e}; destroying what it left and creating again");
                let _ = xl(&["destroy", name]);
            }
            result => return result,
        }
    }
}

fn lookup_domid(name: &str) -> Option<u16> {
    xl(&["domid", name]).ok()?.trim().parse().ok()
}

/// Restarts xenconsoled so that it logs guest consoles to files (`true`) or
/// as the rig's init starts it, `--log=none` (`false`, at the end: later
/// suites find dom0 as it was).
fn console_logging(on: bool, console_log: &str) {
    if let Ok(pid) = std::fs::read_to_string("/run/xen/xenconsoled.pid") {
        let _ = Command::new("kill").arg(pid.trim()).status();
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = std::fs::create_dir_all("/var/log/xen/console");
    let log = if on {
        let _ = std::fs::remove_file(console_log);
        "--log=guest"
    } else {
        "--log=none"
    };
    let _ = Command::new("/usr/lib/xen-4.17/bin/xenconsoled")
        .args([
            "--pid-file=/run/xen/xenconsoled.pid",
            log,
            "--log-dir=/var/log/xen/console",
        ])
        .status();
}

/// The report lines so far: the PV console log if xenconsoled wrote one, else
/// port 0xE9 output from `xl dmesg`.
fn report_lines(console_log: &str) -> Vec<String> {
    let from = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                l.find(PREFIX)
                    .map(|i| l[i + PREFIX.len()..].trim().to_string())
            })
            .filter(|l| !l.is_empty() && l != "booting")
            .collect()
    };
    let console = std::fs::read_to_string(console_log)
        .map(|t| from(&t))
        .unwrap_or_default();
    if console.iter().any(|l| l.starts_with("done ")) {
        return console;
    }
    let dmesg = xl(&["dmesg"]).map(|t| from(&t)).unwrap_or_default();
    if dmesg.len() >= console.len() {
        dmesg
    } else {
        console
    }
}

/// Creates the domain of `spec`, serves its requests until it is done and
/// collects its report lines.
pub(super) fn run_guest(spec: &GuestSpec) -> Result<GuestRun, String> {
    let kernel = helper(KERNEL)?;
    let name = spec.name;
    let _ = xl(&["destroy", name]);
    (spec.prepare)()?;
    console_logging(true, spec.console_log);
    // Port 0xE9 lines of earlier domains must not count as this one's.
    let _ = xl(&["dmesg", "-c"]);
    let cfg = format!("name = \"{name}\"\n{}", (spec.config)(&kernel));
    let cfg_path = format!("/tmp/{name}.cfg");
    std::fs::write(&cfg_path, cfg).map_err(|e| format!("write {cfg_path}: {e}"))?;
    let t0 = Instant::now();
    if let Err(e) = xl_create(name, &cfg_path) {
        console_logging(false, spec.console_log);
        (spec.cleanup)();
        return Err(e);
    }
    let mut helper = Dom0Helper::new(spec)?;
    let mut notes = Vec::new();
    let mut boot_to_result = None;
    let done = |lines: &[String]| lines.iter().any(|l| l.starts_with("done "));
    while t0.elapsed() < RUN_LIMIT {
        if let Err(e) = helper.step() {
            notes.push(e);
        }
        if boot_to_result.is_none() && helper.done {
            // The guest prints `done` right after the helper's last answer.
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if done(&report_lines(spec.console_log)) {
                    boot_to_result = Some(t0.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            break;
        }
        if helper.domid.is_none() && !helper.saving() && lookup_domid(name).is_none() {
            notes.push("the domain went away early".into());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if boot_to_result.is_none() && done(&report_lines(spec.console_log)) {
        boot_to_result = Some(t0.elapsed());
    }
    let lines = report_lines(spec.console_log);
    notes.extend(helper.finish());
    let deadline = Instant::now() + Duration::from_secs(10);
    while lookup_domid(name).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if lookup_domid(name).is_some() {
        notes.push("domain still there at the end: destroyed".into());
        let _ = xl(&["destroy", name]);
    }
    let _ = std::fs::remove_file(spec.save_file);
    console_logging(false, spec.console_log);
    (spec.cleanup)();
    Ok(GuestRun {
        lines,
        boot_to_result,
        notes,
    })
}

/// Binds to the guest's `port` and prepares the echo of `count` round trips,
/// run once the answer is written (the guest starts sending then).
fn echo(domid: u16, port: u32, count: u32) -> Result<(String, AfterAck), String> {
    let mut evtchn = Evtchn::open()?;
    let local = evtchn.bind_interdomain(domid, port)?;
    // Xen raises our new port once at bind time (lost notifications on the
    // unbound port are conservatively assumed): swallow it, or every answer
    // would be one early.
    let _ = evtchn.wait(Duration::from_millis(300))?;
    let work: AfterAck = Box::new(move |h: &mut Dom0Helper| {
        // Busy-poll: waking a blocked dom0 task costs tens of milliseconds
        // under TCG, which would measure dom0, not the guest.
        let (mut received, mut sent) = (0u32, 0u32);
        let mut last = Instant::now();
        while received < count && last.elapsed() < Duration::from_secs(10) {
            match evtchn.wait(Duration::ZERO)? {
                Some(p) if p == local => {
                    received += 1;
                    evtchn.notify(local)?;
                    sent += 1;
                    last = Instant::now();
                }
                _ => std::hint::spin_loop(),
            }
        }
        drop(evtchn);
        h.echo_result = format!("received {received} sent {sent}");
        Ok(())
    });
    Ok((format!("bound {count}"), work))
}

/// Work to do once the answer is written (the guest acts on the answer).
type AfterAck = Box<dyn FnOnce(&mut Dom0Helper) -> Result<(), String>>;

/// Serves the guest's requests under `data/xenpv/`.
struct Dom0Helper {
    xs: Xenbus,
    name: &'static str,
    save_file: &'static str,
    domid: Option<u16>,
    last_seq: u64,
    last_lookup: Instant,
    echo_result: String,
    mapped: Option<MappedGrant>,
    save: Option<Arc<Mutex<Option<String>>>>,
    done: bool,
    vif: vif::VifHelper,
}

impl Dom0Helper {
    fn new(spec: &GuestSpec) -> Result<Self, String> {
        Ok(Self {
            xs: Xenbus::open()?,
            name: spec.name,
            save_file: spec.save_file,
            domid: lookup_domid(spec.name),
            last_seq: 0,
            last_lookup: Instant::now(),
            echo_result: String::from("no echo yet"),
            mapped: None,
            save: None,
            done: false,
            vif: vif::VifHelper::default(),
        })
    }

    fn saving(&self) -> bool {
        self.save
            .as_ref()
            .is_some_and(|s| s.lock().is_ok_and(|s| s.is_none()))
    }

    /// One look at the request node; serves a new request.
    fn step(&mut self) -> Result<(), String> {
        let Some(domid) = self.domid else {
            if self.last_lookup.elapsed() > Duration::from_millis(500) {
                self.last_lookup = Instant::now();
                self.domid = lookup_domid(self.name);
            }
            return Ok(());
        };
        let base = format!("/local/domain/{domid}/data/xenpv");
        if let Some((seq, answer)) = self.vif.finished() {
            self.xs
                .write(&format!("{base}/ack"), &format!("{seq} {answer}"))?;
        }
        let Ok(req) = self.xs.read(&format!("{base}/req")) else {
            // Not written yet, or the domain went away (save/restore): look it up again.
            if self.last_lookup.elapsed() > Duration::from_millis(500) {
                self.last_lookup = Instant::now();
                self.domid = lookup_domid(self.name);
            }
            return Ok(());
        };
        let Some((seq, cmd)) = req.split_once(' ') else {
            return Ok(());
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return Ok(());
        };
        if seq == self.last_seq {
            return Ok(());
        }
        self.last_seq = seq;
        if cmd.starts_with("vif-") {
            let answer = match self.vif.serve(domid, seq, cmd) {
                Ok(vif::Answer::Later) => return Ok(()),
                Ok(vif::Answer::Now(a)) => a,
                Err(e) => format!("error {e}"),
            };
            return self
                .xs
                .write(&format!("{base}/ack"), &format!("{seq} {answer}"));
        }
        let mut after_ack: Option<AfterAck> = None;
        let answer = self.serve(domid, cmd, &mut after_ack);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => format!("error {e}"),
        };
        self.xs
            .write(&format!("{base}/ack"), &format!("{seq} {answer}"))?;
        if let Some(f) = after_ack {
            f(self)?;
        }
        Ok(())
    }

    fn serve(
        &mut self,
        domid: u16,
        cmd: &str,
        after_ack: &mut Option<AfterAck>,
    ) -> Result<String, String> {
        let mut words = cmd.split_whitespace();
        match words.next() {
            Some("hello") => Ok("hello".into()),
            Some("evtchn-echo") => {
                let port: u32 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or("bad port")?;
                // `short`: a quick proof (after resume), not the full count.
                let count = if words.next() == Some("short") {
                    100
                } else {
                    echo_count()
                };
                let (answer, work) = echo(domid, port, count)?;
                *after_ack = Some(work);
                Ok(answer)
            }
            Some("evtchn-result") => Ok(self.echo_result.clone()),
            Some("gnt-map") => {
                let gref: u32 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or("bad gref")?;
                self.gnt_map(domid, gref)
            }
            Some("gnt-unmap") => {
                self.mapped = None;
                Ok("unmapped".into())
            }
            Some("mem-set") => {
                let kib: u64 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or("bad size")?;
                xl(&["mem-set", self.name, &format!("{kib}k")])?;
                Ok("set".into())
            }
            Some("mem-info") => {
                // `xl list NAME`: a header, then name, id, Mem (MiB), ...
                let out = xl(&["list", self.name])?;
                let mib = out
                    .lines()
                    .nth(1)
                    .and_then(|l| l.split_whitespace().nth(2))
                    .ok_or_else(|| format!("xl list: {out:?}"))?;
                Ok(format!("{mib} MiB"))
            }
            Some("save-restore") => Ok(self.save_restore(after_ack)),
            Some("xl-shutdown") => {
                // Without -w: it writes control/shutdown and returns; the
                // guest reports, then powers off on its own.
                let name = self.name;
                *after_ack = Some(Box::new(move |_: &mut Self| {
                    xl(&["shutdown", name]).map(|_| ())
                }));
                Ok("requested".into())
            }
            Some("vbd-verify") => {
                let mut num = || words.next().and_then(|w| w.parse::<u64>().ok());
                let (Some(devid), Some(sectors), Some(written)) = (num(), num(), num()) else {
                    return Err("bad vbd-verify".into());
                };
                let digest = words
                    .next()
                    .and_then(|w| u64::from_str_radix(w, 16).ok())
                    .ok_or("bad digest")?;
                // The image is what libxl gave the backend (`params`).
                let image = self.xs.read(&format!(
                    "/local/domain/0/backend/vbd/{domid}/{devid}/params"
                ))?;
                verify_disk(image.trim_end_matches('\0'), sectors, written, digest)
            }
            Some("done") => {
                self.done = true;
                Ok("done".into())
            }
            _ => Err(format!("unknown request {cmd:?}")),
        }
    }

    /// Maps the guest's `gref`, checks its half, writes ours, keeps it mapped.
    fn gnt_map(&mut self, domid: u16, gref: u32) -> Result<String, String> {
        let mut mapped = MappedGrant::new(domid, gref)?;
        let bytes = mapped.bytes();
        if bytes.len() < 4096 {
            return Ok(format!("mapped bad length {}", bytes.len()));
        }
        let bad = (0..2048).find(|&i| bytes[i] != pattern_guest(i));
        for (i, b) in bytes.iter_mut().enumerate().skip(2048).take(2048) {
            *b = pattern_dom0(i);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.mapped = Some(mapped);
        Ok(match bad {
            None => "mapped ok".into(),
            Some(i) => format!("mapped bad offset {i}"),
        })
    }

    /// Answers `saving`; once the answer is written, runs `xl save` and `xl
    /// restore` of the guest in a thread.
    fn save_restore(&mut self, after_ack: &mut Option<AfterAck>) -> String {
        let state = Arc::new(Mutex::new(None));
        self.save = Some(state.clone());
        let (name, save_file) = (self.name, self.save_file);
        *after_ack = Some(Box::new(move |h: &mut Self| {
            h.domid = None;
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut log = String::new();
                let _ = std::fs::remove_file(save_file);
                match xl(&["save", name, save_file]) {
                    Ok(_) => {
                        let _ = write!(log, "xl save {:.1} s", t.elapsed().as_secs_f64());
                        let t = Instant::now();
                        match xl(&["restore", save_file]) {
                            Ok(_) => {
                                let _ =
                                    write!(log, ", xl restore {:.1} s", t.elapsed().as_secs_f64());
                            }
                            Err(e) => log.push_str(&e),
                        }
                    }
                    Err(e) => log.push_str(&e),
                }
                if let Ok(mut s) = state.lock() {
                    *s = Some(log);
                }
            });
            Ok(())
        }));
        "saving".into()
    }

    /// Notes for the log; unmaps anything still mapped.
    fn finish(&mut self) -> Vec<String> {
        self.mapped = None;
        let mut notes = Vec::new();
        if let Some(state) = &self.save {
            match state.lock().ok().and_then(|s| s.clone()) {
                Some(log) => notes.push(log),
                None => notes.push("xl save/restore still running at the end".into()),
            }
        }
        notes
    }
}
