//! `cargo xtask rig ...`: the real Xen 4.17 hypervisor with a Debian Linux 6.1 PV
//! dom0 (C xenstored, xen-blkback, xen-netback) under QEMU, all from Debian's
//! packages, and our programs running in that dom0.
//!
//! * `setup`: host packages, the pinned Xen/kernel packages, the dom0 initramfs
//!   (cached in `/var/tmp/xenpv-rig`, `$XENPV_RIG_CACHE`; every boot does it first).
//! * `run [opts] -- CMD`: boot, run CMD in dom0, power off, exit with CMD's status.
//! * `shell`: an interactive dom0 shell.
//! * `selftest`: Linux's own blkfront/netfront against dom0's backends.
//! * `test [SUITE...]` / `bench [SUITE...]`: the `rig-tests` suites, one boot.
//! * `demo`: the README's main job ([`demo::STEPS`]).
//!
//! Modules: [`pins`] (every Debian version, in one place), [`cache`] (cache dir,
//! lock, step progress), [`setup`], [`cpio`] (per-boot archive), [`accel`] (TCG or
//! KVM), [`vm`] (one boot), [`programs`] (building what is shipped), [`demo`].

pub mod accel;
pub mod cache;
pub mod cpio;
pub mod demo;
pub mod guest_kernel;
pub mod pins;
pub mod programs;
pub mod setup;
pub mod vm;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cache::Cache;
use vm::{Accel, BootOptions, Failure, Mode, Payload, Shipped};

/// The dom0 side of `selftest`, embedded (the rig never reads the source tree
/// for its own assets).
pub const SELFTEST: &str = include_str!("../../rig/selftest.sh");

/// The workspace root and the cache.
#[derive(Debug)]
pub struct Rig {
    /// Workspace root (for building the test programs).
    pub root: PathBuf,
    /// The rig cache.
    pub cache: Cache,
}

/// Usage of `cargo xtask rig`.
pub const USAGE: &str = "\
usage: cargo xtask rig <command> [options] [-- CMD]

commands:
  setup               install host packages, fetch Xen + kernel, build the dom0 initramfs
  run [opts] -- CMD   boot, run CMD (bash) in dom0, power off; exit with CMD's status
  shell [opts]        interactive dom0 root shell (`exit` powers off; Ctrl-a x kills QEMU)
  selftest [opts]     Linux's blkfront/netfront vs dom0's blkback/netback (xl *-attach 0)
  test [SUITE...]     run the rig-tests suites in one boot (SUITE or SUITE::TEST_PREFIX;
                      guest-hvm and a run of every suite boot with --hvm)
  bench [SUITE...]    run the rig-tests benches in one boot; prints ours / reference
  demo                the main job: selftest + all suites, one boot
  clean               remove the cache

options:
  --file SRC[:DST]    ship a host file into dom0 (default DST /rig/files/<name>); repeatable
  --share DIR         host DIR read-write at /mnt/host in dom0 (virtio-9p)
  --timeout S         hard limit for the boot (default run 600, selftest 300,
                      test/bench/demo 2400)
  --boot-timeout S    dom0 must be up within S (default 240)
  --quiet             run: don't echo the console (it is always logged)
  --verbose           selftest/test/bench/demo: echo the whole console
  --log FILE          serial log (default <cache>/logs/boot-<time>-<kind>-<pid>.log)
  --mem MIB           machine RAM (default 2048)      --dom0-mem SIZE  (default 1024M)
  --smp N             vCPUs (default 2)
  --hvm               add QEMU's Xen device model + SeaBIOS to dom0 (HVM domains;
                      implied by `test` when the suite guest-hvm is selected)
  --xen-args S        extra Xen command line          --dom0-args S    extra dom0 command line
  --accel tcg|kvm     override the accelerator choice (env XENPV_RIG_ACCEL)

environment: XENPV_RIG_CACHE (default /var/tmp/xenpv-rig)
exit status: run: CMD's; 125: dom0 never came up or timed out (message, log path and
its last lines on stderr); 130: interrupted
";

/// Parsed command line of one rig command.
#[derive(Debug, Default)]
struct Args {
    opts: BootOptions,
    quiet: bool,
    verbose: bool,
    timeout: Option<Duration>,
    rest: Vec<String>,
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{flag} {value}: expected whole seconds"))
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let value = || {
            args.get(i + 1)
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--" => {
                parsed.rest.extend(args[i + 1..].iter().cloned());
                break;
            }
            "--quiet" => parsed.quiet = true,
            "--hvm" => parsed.opts.hvm = true,
            "--verbose" => parsed.verbose = true,
            "--file" => parsed.opts.files.push(Shipped::parse(value()?)?),
            "--share" => {
                let dir = std::fs::canonicalize(value()?)
                    .map_err(|e| format!("--share {}: {e}", value().unwrap_or("")))?;
                parsed.opts.share = Some(dir);
            }
            "--timeout" => parsed.timeout = Some(seconds(flag, value()?)?),
            "--boot-timeout" => parsed.opts.boot_timeout = seconds(flag, value()?)?,
            "--log" => parsed.opts.log = Some(PathBuf::from(value()?)),
            "--mem" => {
                parsed.opts.mem_mib = value()?
                    .parse()
                    .map_err(|_| "--mem: MiB expected".to_string())?;
            }
            "--dom0-mem" => parsed.opts.dom0_mem = value()?.to_string(),
            "--smp" => {
                parsed.opts.smp = value()?
                    .parse()
                    .map_err(|_| "--smp: a number expected".to_string())?;
            }
            "--xen-args" => parsed.opts.xen_args = value()?.to_string(),
            "--dom0-args" => parsed.opts.dom0_args = value()?.to_string(),
            "--accel" => {
                parsed.opts.accel = Some(match value()? {
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    other => return Err(format!("--accel {other}: expected tcg or kvm")),
                });
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => parsed.rest.push(args[i].clone()),
        }
        i += if matches!(flag, "--" | "--quiet" | "--verbose" | "--hvm") || !flag.starts_with("--")
        {
            1
        } else {
            2
        };
    }
    Ok(parsed)
}

/// `cargo xtask rig <args>`.
pub fn main(root: PathBuf, args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = parse(rest).and_then(|parsed| {
        let rig = Rig {
            root,
            cache: Cache::locate()?,
        };
        Ok((rig, parsed))
    });
    let (rig, parsed) = match result {
        Ok(ok) => ok,
        Err(message) => {
            eprintln!("rig: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command.as_str() {
        "setup" => setup::ensure(&rig.cache).map(|()| 0).map_err(Failure::from),
        "clean" => clean(&rig.cache).map(|()| 0).map_err(Failure::from),
        "run" => run(&rig, parsed),
        "shell" => shell(&rig, parsed),
        "selftest" => selftest(&rig, parsed),
        "test" => suites(&rig, parsed, "test"),
        "bench" => suites(&rig, parsed, "bench"),
        "demo" => {
            let opts = boot_options(parsed, 2400, false);
            demo::run(&rig, opts)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(Failure::from(format!(
            "unknown rig command `{other}`\n\n{USAGE}"
        ))),
    };
    match outcome {
        Ok(status) => ExitCode::from(u8::try_from(status & 0xff).unwrap_or(1)),
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

/// Options of a boot, with the command's default timeout; `echo_default`: whether
/// the console is echoed unless `--quiet`/`--verbose` say otherwise.
fn boot_options(parsed: Args, default_timeout: u64, echo_default: bool) -> BootOptions {
    let mut opts = parsed.opts;
    opts.timeout = parsed
        .timeout
        .unwrap_or(Duration::from_secs(default_timeout));
    opts.echo = if echo_default {
        !parsed.quiet
    } else {
        parsed.verbose
    };
    opts
}

fn clean(cache: &Cache) -> Result<(), String> {
    let _lock = cache.lock()?;
    std::fs::remove_dir_all(&cache.dir)
        .map_err(|e| format!("cannot remove {}: {e}", cache.dir.display()))
}

fn run(rig: &Rig, parsed: Args) -> Result<i32, Failure> {
    if parsed.rest.is_empty() {
        return Err(Failure::from(format!(
            "run needs a command: cargo xtask rig run -- 'CMD'\n\n{USAGE}"
        )));
    }
    let command = parsed.rest.join(" ");
    let opts = boot_options(parsed, 600, true);
    vm::boot(&rig.cache, &opts, &Mode::Run(command)).map(|o| o.status)
}

fn shell(rig: &Rig, parsed: Args) -> Result<i32, Failure> {
    let opts = boot_options(parsed, 24 * 3600, true);
    vm::boot(&rig.cache, &opts, &Mode::Shell).map(|o| o.status)
}

fn is_selftest_line(line: &str) -> bool {
    line.starts_with("=== SELFTEST")
        || line.starts_with("SELFTEST ")
        || line.starts_with("sha256 ")
        || line.contains("packets transmitted")
}

fn selftest(rig: &Rig, parsed: Args) -> Result<i32, Failure> {
    let mut opts = boot_options(parsed, 300, false);
    opts.files.push(Shipped {
        dst: "/rig/files/selftest.sh".into(),
        payload: Payload::Bytes(SELFTEST.as_bytes().to_vec(), 0o755),
    });
    opts.relay = is_selftest_line;
    let outcome = vm::boot(
        &rig.cache,
        &opts,
        &Mode::Run("bash /rig/files/selftest.sh".into()),
    )?;
    let passed = outcome.status == 0 && outcome.relayed.iter().any(|l| l == "SELFTEST PASSED");
    println!(
        "rig selftest {} (wall {:.1} s, log {})",
        if passed { "PASSED" } else { "FAILED" },
        outcome.wall.as_secs_f64(),
        outcome.log.display()
    );
    Ok(if passed { 0 } else { outcome.status.max(1) })
}

/// `rig test|bench [SUITE...]`: builds and ships the programs, runs them in one boot.
fn suites(rig: &Rig, parsed: Args, kind: &str) -> Result<i32, Failure> {
    for selector in &parsed.rest {
        if !selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'-')
        {
            return Err(Failure::from(format!("bad suite name {selector:?}")));
        }
    }
    let hvm = needs_hvm(&parsed.rest);
    let selectors = parsed.rest.join(" ");
    // All suites took 15 min in one boot on a loaded 2-core host (vif: 11 min).
    let mut opts = boot_options(parsed, 2400, false);
    opts.hvm |= hvm;
    opts.files.extend(programs::build(&rig.root)?);
    opts.relay = programs::is_runner_line;
    let command = format!(
        "{}/{} {kind} {selectors}",
        programs::DOM0_DIR,
        programs::BINARY
    );
    let outcome = vm::boot(&rig.cache, &opts, &Mode::Run(command))?;
    let Some(summary) = outcome
        .relayed
        .iter()
        .rev()
        .find(|l| programs::is_summary(l))
    else {
        return Err(Failure {
            message: format!(
                "rig {kind}: the test program did not finish (no `N passed, M failed` line; exit {}); log {}\n{}",
                outcome.status,
                outcome.log.display(),
                setup::tail(&outcome.log, 25)
            ),
            exit: 1,
        });
    };
    eprintln!(
        "rig {kind}: {summary} (wall {:.1} s, log {})",
        outcome.wall.as_secs_f64(),
        outcome.log.display()
    );
    Ok(outcome.status)
}

/// The suite that creates an HVM domain (QEMU's device model in dom0).
pub const HVM_SUITE: &str = "guest-hvm";

/// Whether a `test`/`bench` run with these selectors needs the HVM add-on:
/// when it runs every suite, or names [`HVM_SUITE`].
pub fn needs_hvm(selectors: &[String]) -> bool {
    selectors.is_empty()
        || selectors
            .iter()
            .any(|s| s.split("::").next() == Some(HVM_SUITE))
}

/// `rig test` with every suite, for `cargo xtask test`.
pub fn test_all(root: PathBuf) -> Result<(), String> {
    let rig = Rig {
        root,
        cache: Cache::locate()?,
    };
    match suites(&rig, Args::default(), "test") {
        Ok(0) => Ok(()),
        Ok(status) => Err(format!("rig test failed (exit {status})")),
        Err(failure) => Err(failure.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn options_then_command() {
        let parsed = parse(&strings(&[
            "--timeout",
            "9",
            "--quiet",
            "--file",
            "/bin/true",
            "--",
            "exit",
            "7",
        ]))
        .unwrap();
        assert_eq!(parsed.timeout, Some(Duration::from_secs(9)));
        assert!(parsed.quiet);
        assert_eq!(parsed.opts.files.len(), 1);
        assert_eq!(parsed.rest, ["exit", "7"]);
    }

    #[test]
    fn suites_are_positional() {
        let parsed = parse(&strings(&["platform", "store::watch", "--verbose"])).unwrap();
        assert_eq!(parsed.rest, ["platform", "store::watch"]);
        assert!(parsed.verbose);
    }

    #[test]
    fn the_hvm_suite_brings_the_add_on() {
        assert!(needs_hvm(&[]));
        assert!(needs_hvm(&strings(&["guest", "guest-hvm::unplug"])));
        assert!(!needs_hvm(&strings(&["guest", "store"])));
        assert!(parse(&strings(&["--hvm", "--", "true"])).unwrap().opts.hvm);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&strings(&["--timeout", "soon"])).is_err());
        assert!(parse(&strings(&["--nope"])).is_err());
        assert!(parse(&strings(&["--log"])).is_err());
    }
}
