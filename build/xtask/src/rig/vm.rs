//! One boot of the rig: Xen + the dom0 kernel + the cached initramfs (plus a small
//! per-boot archive with the command and the shipped files) under QEMU, the serial
//! console kept in a log, the command's exit status read back from the console.
//!
//! No QEMU outlives a boot: QEMU runs in its own process group, which is killed
//! on every exit path (command done, timeout, boot failure, Ctrl-C/SIGTERM, error,
//! panic: a drop guard), and QEMU gets `PR_SET_PDEATHSIG` should xtask itself be
//! killed outright.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cache::Cache;
use super::cpio::Archive;
use super::setup;

/// Printed by `/init` when dom0 is up (xenstored, backends, bridge ready).
pub const READY_MARKER: &str = "XENPV-RIG-READY";
/// Printed by `/init` after the command: `XENPV-RIG-RESULT rc=N`.
pub const RESULT_MARKER: &str = "XENPV-RIG-RESULT rc=";

/// How QEMU runs the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (`-cpu max,-smap`: SMAP under TCG breaks PV dom0's
    /// bounce frames).
    Tcg,
    /// Hardware virtualization (only where a probe showed Xen boots under it).
    Kvm,
}

/// What goes into dom0 besides the base initramfs.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A host file (its permission bits are kept).
    Host(PathBuf),
    /// Bytes with permission bits.
    Bytes(Vec<u8>, u32),
}

/// One file shipped into dom0 at `dst` (absolute path in dom0).
#[derive(Debug, Clone)]
pub struct Shipped {
    /// Path in dom0.
    pub dst: String,
    /// Content.
    pub payload: Payload,
}

impl Shipped {
    /// Parses `SRC[:DST]` (DST defaults to `/rig/files/<file name>`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (src, dst) = if let Some((src, dst)) = spec.split_once(':') {
            (src, dst.to_string())
        } else {
            let name = Path::new(spec)
                .file_name()
                .ok_or_else(|| format!("--file {spec}: no file name"))?;
            (spec, format!("/rig/files/{}", name.to_string_lossy()))
        };
        if !dst.starts_with('/') {
            return Err(format!("--file {spec}: destination must be absolute"));
        }
        Ok(Self {
            dst,
            payload: Payload::Host(PathBuf::from(src)),
        })
    }
}

/// What a boot does in dom0.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Runs this bash command line and powers off.
    Run(String),
    /// An interactive shell on the serial console.
    Shell,
}

/// Everything that shapes one boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Files added to dom0.
    pub files: Vec<Shipped>,
    /// Host directory shared read-write at `/mnt/host` (virtio-9p).
    pub share: Option<PathBuf>,
    /// Hard limit for the whole boot.
    pub timeout: Duration,
    /// dom0 must print its ready marker within this.
    pub boot_timeout: Duration,
    /// Echo the whole console to stdout (else only the `relay` lines).
    pub echo: bool,
    /// Console lines (trimmed) for which this is true are printed (when not
    /// echoing) and returned in [`Outcome::relayed`].
    pub relay: fn(&str) -> bool,
    /// Serial log path (default: a new file in the cache's `logs/`).
    pub log: Option<PathBuf>,
    /// Machine RAM in MiB.
    pub mem_mib: u32,
    /// Xen's `dom0_mem`.
    pub dom0_mem: String,
    /// vCPUs.
    pub smp: u32,
    /// Extra Xen command line.
    pub xen_args: String,
    /// Extra dom0 kernel command line.
    pub dom0_args: String,
    /// Accelerator (`None`: [`super::accel::choose`]).
    pub accel: Option<Accel>,
    /// Append the HVM add-on (QEMU's device model and firmware, see
    /// [`super::pins::HVM_ADDON_PACKAGES`]) so that dom0 can create HVM domains.
    pub hvm: bool,
}

impl Default for BootOptions {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            share: None,
            timeout: Duration::from_secs(600),
            boot_timeout: Duration::from_secs(240),
            echo: true,
            relay: |_| false,
            log: None,
            // The initramfs with fio (about 160 MB unpacked) needs a dom0 bigger than 512M.
            mem_mib: 2048,
            dom0_mem: "1024M".into(),
            smp: 2,
            xen_args: String::new(),
            dom0_args: String::new(),
            accel: None,
            hvm: false,
        }
    }
}

/// A boot that ran the command to the end.
#[derive(Debug)]
pub struct Outcome {
    /// The command's exit status.
    pub status: i32,
    /// The serial log.
    pub log: PathBuf,
    /// Wall time of the whole boot.
    pub wall: Duration,
    /// Lines matched by [`BootOptions::relay`], in order.
    pub relayed: Vec<String>,
}

/// A boot that did not yield the command's status.
#[derive(Debug)]
pub struct Failure {
    /// What happened, the log path and the log's last lines.
    pub message: String,
    /// Suggested exit status (125: no result; 130: interrupted).
    pub exit: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { message, exit: 2 }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT/SIGTERM/SIGHUP set a flag that the boot loop acts on (killing
/// QEMU), instead of ending xtask with QEMU left behind.
fn catch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(signal, handler) };
    }
}

/// True once SIGINT/SIGTERM/SIGHUP arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `YYYYmmdd-HHMMSS` (UTC) for log names.
fn utc_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A per-boot scratch directory, removed on drop.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes scratch directories of boots whose xtask is gone (killed outright).
fn sweep_stale_runs(cache: &Cache) {
    let Ok(entries) = fs::read_dir(cache.runs()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .rsplit('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether `pid` exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Keeps the newest `keep` boot logs.
fn prune_logs(cache: &Cache, keep: usize) {
    let Ok(entries) = fs::read_dir(cache.logs()) else {
        return;
    };
    let mut logs: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("boot-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for (_, path) in logs.into_iter().take(excess) {
        let _ = fs::remove_file(path);
    }
}

/// The per-boot initramfs: the cached base archive, then ours (later entries win).
fn write_initrd(
    cache: &Cache,
    run: &Path,
    opts: &BootOptions,
    mode: &Mode,
) -> Result<PathBuf, String> {
    let mut archive = Archive::new();
    let io = |e: std::io::Error| e.to_string();
    archive.dir("rig/files").map_err(io)?;
    let (mode_name, command) = match mode {
        Mode::Run(command) => ("run", command.as_str()),
        Mode::Shell => ("shell", "true"),
    };
    archive
        .file("rig/mode", 0o644, format!("{mode_name}\n").as_bytes())
        .map_err(io)?;
    archive
        .file("rig/cmd", 0o644, format!("{command}\n").as_bytes())
        .map_err(io)?;
    if opts.share.is_some() {
        archive.file("rig/share", 0o644, b"").map_err(io)?;
    }
    for shipped in &opts.files {
        let (data, perm) = match &shipped.payload {
            Payload::Host(path) => {
                use std::os::unix::fs::PermissionsExt as _;
                let data = fs::read(path).map_err(|e| format!("--file {}: {e}", path.display()))?;
                let perm = fs::metadata(path)
                    .map_err(|e| e.to_string())?
                    .permissions()
                    .mode();
                (data, perm)
            }
            Payload::Bytes(data, perm) => (data.clone(), *perm),
        };
        archive.file(&shipped.dst, perm, &data).map_err(io)?;
    }
    let overlay = archive.finish().map_err(io)?;
    let initrd = run.join("initrd");
    let mut out = fs::File::create(&initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let mut base = fs::File::open(cache.base_cpio())
        .map_err(|e| format!("{}: {e}", cache.base_cpio().display()))?;
    std::io::copy(&mut base, &mut out).map_err(|e| format!("copying the base initramfs: {e}"))?;
    if opts.hvm {
        let mut addon = fs::File::open(cache.hvm_addon_cpio())
            .map_err(|e| format!("{}: {e}", cache.hvm_addon_cpio().display()))?;
        std::io::copy(&mut addon, &mut out).map_err(|e| format!("copying the HVM add-on: {e}"))?;
    }
    out.write_all(&overlay).map_err(|e| e.to_string())?;
    Ok(initrd)
}

fn qemu_command(cache: &Cache, opts: &BootOptions, accel: Accel, initrd: &Path) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Tcg => qemu.args(["-accel", "tcg,thread=multi", "-cpu", "max,-smap"]),
        Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
    };
    let xen_cmdline = format!(
        "console=com1 com1=115200,8n1 console_timestamps=boot loglvl=all guest_loglvl=all bootscrub=0 \
         dom0_mem={m},max:{m} dom0_max_vcpus={smp} {extra}",
        m = opts.dom0_mem,
        smp = opts.smp,
        extra = opts.xen_args
    );
    let dom0_cmdline = format!("console=hvc0 earlyprintk=xen {}", opts.dom0_args);
    // Multiboot modules are separated by ',', so commas inside arguments are doubled.
    let modules = format!(
        "{} {},{}",
        cache.dom0_kernel().display(),
        dom0_cmdline.trim_end().replace(',', ",,"),
        initrd.display()
    );
    qemu.args([
        "-m",
        &opts.mem_mib.to_string(),
        "-smp",
        &opts.smp.to_string(),
    ])
    .args([
        "-no-reboot",
        "-nodefaults",
        "-nic",
        "none",
        "-display",
        "none",
        "-vga",
        "none",
    ])
    .arg("-kernel")
    .arg(cache.xen_elf())
    .args(["-append", &xen_cmdline, "-initrd", &modules]);
    if let Some(share) = &opts.share {
        qemu.arg("-virtfs").arg(format!(
            "local,path={},mount_tag=hostshare,security_model=none,id=hostshare",
            share.display()
        ));
    }
    qemu
}

/// Owns the running QEMU; kills its whole process group when dropped.
struct Qemu {
    child: Child,
    own_group: bool,
}

impl Qemu {
    fn spawn(mut command: Command, own_group: bool) -> Result<Self, String> {
        if own_group {
            command.process_group(0);
        }
        let die_with_parent = || {
            // SAFETY: PR_SET_PDEATHSIG with a valid signal number has no memory effects.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the hook only calls prctl, which is async-signal-safe, between
        // fork and exec.
        unsafe { command.pre_exec(die_with_parent) };
        let child = command.spawn().map_err(|e| {
            format!("cannot start qemu-system-x86_64 (cargo xtask rig setup installs it): {e}")
        })?;
        Ok(Self { child, own_group })
    }

    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        if self.own_group {
            // SAFETY: kills exactly the process group QEMU leads (created by process_group(0)).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the console told us so far.
#[derive(Debug, Default)]
struct Console {
    ready: Option<Instant>,
    result: Option<(i32, Instant)>,
    panic: Option<(String, Instant)>,
    relayed: Vec<String>,
}

impl Console {
    fn see(&mut self, line: &str, opts: &BootOptions) {
        let line = line.trim_end_matches(['\r', '\n']);
        let text = line.trim_start();
        if text.starts_with(READY_MARKER) && self.ready.is_none() {
            self.ready = Some(Instant::now());
        } else if let Some(rc) = text.strip_prefix(RESULT_MARKER) {
            if let Ok(rc) = rc.trim().parse() {
                self.result = Some((rc, Instant::now()));
            }
        } else if self.panic.is_none() && self.result.is_none() && is_panic(text) {
            self.panic = Some((text.to_string(), Instant::now()));
        }
        if (opts.relay)(text) {
            if !opts.echo {
                println!("{text}");
                let _ = std::io::stdout().flush();
            }
            self.relayed.push(text.to_string());
        }
    }
    /// Why the boot must end now, if it must (`Some("")`: finished, poweroff slow).
    fn stop_reason(&self, started: Instant, opts: &BootOptions) -> Option<String> {
        let elapsed = started.elapsed();
        let boot_timeout = opts.boot_timeout.min(opts.timeout);
        if interrupted() {
            Some("interrupted (signal); QEMU killed".into())
        } else if let Some((line, at)) = &self.panic {
            // Give the console a moment to show the rest of the panic.
            (at.elapsed() > Duration::from_secs(3)).then(|| format!("panic on the console: {line}"))
        } else if self
            .result
            .is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(30))
        {
            // The command finished; a poweroff that hangs costs nothing but time.
            Some(String::new())
        } else if self.ready.is_none() && elapsed > boot_timeout {
            Some(format!(
                "dom0 did not come up within {} s (no {READY_MARKER} on the console)",
                boot_timeout.as_secs()
            ))
        } else if elapsed > opts.timeout {
            Some(format!(
                "timeout: the command was still running after {} s",
                opts.timeout.as_secs()
            ))
        } else {
            None
        }
    }
}

/// A readable reason for a boot without a result.
fn failure_reason(
    stopped: Option<String>,
    exit: Option<ExitStatus>,
    console: &Console,
    qemu_stderr: &str,
) -> String {
    match (stopped, exit) {
        (Some(reason), _) if !reason.is_empty() => reason,
        (_, Some(status)) => {
            let mut reason = format!("QEMU exited ({status}) before the command finished");
            if console.ready.is_none() {
                reason.push_str("; dom0 never came up");
            }
            if let Some((line, _)) = &console.panic {
                let _ = write!(reason, "; panic on the console: {line}");
            }
            if !qemu_stderr.trim().is_empty() {
                let _ = write!(reason, "; QEMU said: {}", qemu_stderr.trim());
            }
            reason
        }
        _ => "no result".into(),
    }
}

/// Lines after which this boot will not produce a result.
fn is_panic(line: &str) -> bool {
    [
        "Kernel panic - not syncing",
        "(XEN) Panic on CPU",
        "(XEN) Reboot in five seconds",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// Copies QEMU's output to the log (and stdout when echoing), sending lines on.
fn pump(mut from: impl std::io::Read, mut log: fs::File, echo: bool, lines: &mpsc::Sender<String>) {
    let mut buffer = [0u8; 16 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let _ = log.write_all(chunk);
        if echo {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(chunk);
            let _ = stdout.flush();
        }
        partial.extend_from_slice(chunk);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let _ = lines.send(String::from_utf8_lossy(&line).into_owned());
        }
    }
    if !partial.is_empty() {
        let _ = lines.send(String::from_utf8_lossy(&partial).into_owned());
    }
}

/// The scratch directory, the log path and the QEMU command of one boot.
fn prepare(
    cache: &Cache,
    opts: &BootOptions,
    mode: &Mode,
    accel: Accel,
) -> Result<(RunDir, PathBuf, Command), String> {
    sweep_stale_runs(cache);
    prune_logs(cache, 200);
    let stamp = utc_stamp();
    let run = RunDir(cache.runs().join(format!("{stamp}-{}", std::process::id())));
    fs::create_dir_all(&run.0).map_err(|e| format!("{}: {e}", run.0.display()))?;
    let log = opts.log.clone().unwrap_or_else(|| {
        let kind = match mode {
            Mode::Run(_) => "run",
            Mode::Shell => "shell",
        };
        cache
            .logs()
            .join(format!("boot-{stamp}-{kind}-{}.log", std::process::id()))
    });
    let initrd = write_initrd(cache, &run.0, opts, mode)?;
    let command = qemu_command(cache, opts, accel, &initrd);
    Ok((run, log, command))
}

/// Boots the rig (running `setup` first if the cache is not up to date).
pub fn boot(cache: &Cache, opts: &BootOptions, mode: &Mode) -> Result<Outcome, Failure> {
    catch_signals();
    setup::ensure(cache)?;
    if opts.hvm {
        setup::ensure_hvm_addon(cache)?;
    }
    let accel = match opts.accel {
        Some(accel) => accel,
        None => super::accel::choose(cache, opts)?,
    };
    let (run, log, mut command) = prepare(cache, opts, mode, accel)?;
    if matches!(mode, Mode::Shell) {
        // A shell is for a human and may last hours: it takes no boot slot.
        return shell(command, opts, &log, Instant::now());
    }

    command.args([
        "-monitor",
        "none",
        "-chardev",
        "stdio,id=con,signal=off",
        "-serial",
        "chardev:con",
    ]);
    let stderr_path = run.0.join("qemu.stderr");
    let stderr = fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let _slot = cache.boot_slot(interrupted)?;
    let started = Instant::now();
    let log_file =
        fs::File::create(&log).map_err(|e| format!("cannot create log {}: {e}", log.display()))?;
    let mut qemu = Qemu::spawn(command, true)?;
    let stdout = qemu
        .child
        .stdout
        .take()
        .ok_or_else(|| "no QEMU stdout".to_string())?;
    let (sender, receiver) = mpsc::channel();
    let echo = opts.echo;
    let reader = std::thread::spawn(move || pump(stdout, log_file, echo, &sender));

    let mut console = Console::default();
    let mut exit: Option<ExitStatus> = None;
    let mut stopped: Option<String> = None;
    loop {
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(100)) {
            console.see(&line, opts);
        }
        if let Ok(Some(status)) = qemu.child.try_wait() {
            exit = Some(status);
            break;
        }
        stopped = console.stop_reason(started, opts);
        if stopped.is_some() {
            break;
        }
    }
    qemu.kill();
    let _ = reader.join();
    while let Ok(line) = receiver.try_recv() {
        console.see(&line, opts);
    }
    let wall = started.elapsed();
    // QEMU's own complaints go into the log too.
    let qemu_stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    if !qemu_stderr.trim().is_empty() {
        if let Ok(mut f) = fs::OpenOptions::new().append(true).open(&log) {
            let _ = writeln!(f, "\n--- QEMU stderr ---\n{qemu_stderr}");
        }
    }
    if let Some((status, _)) = console.result {
        let ready = console.ready.map_or(String::new(), |at| {
            format!(
                ", dom0 ready after {:.1} s",
                at.duration_since(started).as_secs_f64()
            )
        });
        eprintln!(
            "rig: command exited {status}; wall {:.1} s{ready}; log {}",
            wall.as_secs_f64(),
            log.display()
        );
        return Ok(Outcome {
            status,
            log,
            wall,
            relayed: console.relayed,
        });
    }
    let reason = failure_reason(stopped, exit, &console, &qemu_stderr);
    let interrupted = interrupted();
    Err(Failure {
        message: format!(
            "rig: FAILED: {reason}\nrig: wall {:.1} s; serial log: {}\nrig: last lines of the log:\n{}",
            wall.as_secs_f64(),
            log.display(),
            setup::tail(&log, 25)
        ),
        exit: if interrupted { 130 } else { 125 },
    })
}

/// Interactive boot: the terminal is the serial console (QEMU's mux: Ctrl-a x quits,
/// Ctrl-a c the monitor); the console is also logged.
fn shell(
    mut command: Command,
    opts: &BootOptions,
    log: &Path,
    started: Instant,
) -> Result<Outcome, Failure> {
    command
        .arg("-chardev")
        .arg(format!(
            "stdio,id=con,mux=on,signal=off,logfile={}",
            log.display()
        ))
        .args([
            "-serial",
            "chardev:con",
            "-mon",
            "chardev=con,mode=readline",
        ]);
    eprintln!(
        "rig: interactive dom0 shell (log {}); `exit` powers off, Ctrl-a x kills QEMU",
        log.display()
    );
    // Same process group: QEMU must own the terminal to read it.
    let mut qemu = Qemu::spawn(command, false)?;
    loop {
        if let Ok(Some(_)) = qemu.child.try_wait() {
            break;
        }
        if interrupted() || started.elapsed() > opts.timeout {
            qemu.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let status = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(RESULT_MARKER))
        .filter_map(|rc| rc.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    Ok(Outcome {
        status,
        log: log.to_path_buf(),
        wall: started.elapsed(),
        relayed: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_specs_parse() {
        let s = Shipped::parse("target/foo").unwrap();
        assert_eq!(s.dst, "/rig/files/foo");
        let s = Shipped::parse("a/b.sh:/usr/local/bin/b").unwrap();
        assert_eq!(s.dst, "/usr/local/bin/b");
        assert!(Shipped::parse("a:relative").is_err());
    }

    #[test]
    fn console_sees_markers_relays_and_panics() {
        let opts = BootOptions {
            echo: true,
            relay: |l| l.starts_with("ok   ") || l.starts_with("FAIL "),
            ..BootOptions::default()
        };
        let mut console = Console::default();
        console.see("[    1.0] booting\r\n", &opts);
        assert!(console.ready.is_none());
        console.see("XENPV-RIG-READY uptime=9.1\r\n", &opts);
        assert!(console.ready.is_some());
        console.see("ok   platform::x (1 ms)\r\n", &opts);
        console.see("  FAIL platform::y: no\n", &opts);
        console.see("XENPV-RIG-RESULT rc=7\r\n", &opts);
        assert_eq!(console.result.map(|r| r.0), Some(7));
        assert_eq!(
            console.relayed,
            ["ok   platform::x (1 ms)", "FAIL platform::y: no"]
        );
        let mut console = Console::default();
        console.see(
            "[ 5.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
            &opts,
        );
        assert!(console.panic.is_some());
    }

    #[test]
    fn utc_stamp_has_the_expected_shape() {
        let stamp = utc_stamp();
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert!(stamp.starts_with("20"), "{stamp}");
    }
}
