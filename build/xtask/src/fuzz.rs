//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every cargo-fuzz target of the
//! workspace, N seconds each, one after the other.
//!
//! * Fuzz crates are the `fuzz/` directories of the workspace (`*/fuzz`,
//!   `*/*/fuzz`) whose Cargo.toml carries `[package.metadata] cargo-fuzz = true`;
//!   their targets are what `cargo fuzz list` says.
//! * cargo-fuzz is installed from crates.io when missing. Only a stable toolchain
//!   is assumed: `RUSTC_BOOTSTRAP=1` lets its `-Z` flags through. AddressSanitizer
//!   is tried first; a crate whose sanitizer build or start-up fails is fuzzed
//!   with `-s none` instead, and the table says so.
//! * Builds are `--release` with debug assertions, so overflow checks are on:
//!   an unchecked foreign number that overflows is a finding.
//! * Corpora live in `target/fuzz-corpus/<crate>/<target>` (outside the source
//!   tree) and grow from run to run; seeds are read from the crate's
//!   `fuzz/seeds/<target>/` (committed) and `fuzz/corpus/<target>/` (generated).
//!   Findings go to `target/fuzz-artifacts/<crate>/<target>/`, logs to
//!   `target/fuzz-logs/<crate>/<target>.log`.
//! * Every target runs even after a finding; the task then fails, naming each
//!   reproducer with its bytes in hex and the panic message.
//!
//! Not part of `cargo xtask test`: fuzzing is open-ended, CI runs the fuzz
//! bodies from unit tests instead.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Usage of `cargo xtask fuzz`.
pub const USAGE: &str = "\
usage: cargo xtask fuzz [options] [TARGET...]

Runs every cargo-fuzz target of the workspace (or the TARGETs: `NAME`,
`CRATE/NAME` or `CRATE`, e.g. `ring`, `xen-abi/ring`, `xen-abi`) for N seconds each, then prints
executions, coverage and findings per target. Fails on any crash, leak, timeout
or out-of-memory, naming the reproducer.

options:
  --seconds N        fuzzing time per target (default 30)
  --sanitizer S      address | none (default: address, falling back to none
                     per crate when the sanitizer build or runtime fails)
  --timeout S        an input running longer than S seconds is a finding (default 10)
  --no-leaks         don't stop at memory leaks (LeakSanitizer), e.g. to fuzz past
                     a leak in a test fake
  --list             list the fuzz crates and targets, run nothing

corpora: target/fuzz-corpus/<crate>/<target> (seeded from fuzz/seeds/<target>
and fuzz/corpus/<target> of the crate); findings: target/fuzz-artifacts/...;
logs: target/fuzz-logs/...
";

/// Fuzzing time per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 30;
/// Per-input time limit unless `--timeout` says otherwise: every body is
/// bounded, so an input this slow is a hang, not bad luck.
const DEFAULT_TIMEOUT: u64 = 10;
/// Bytes of a reproducer shown in hex; longer ones are cut (the file is whole).
const HEX_LIMIT: usize = 4096;

/// Which sanitizer the targets are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sanitizer {
    /// AddressSanitizer (cargo-fuzz's default).
    Address,
    /// Coverage instrumentation only.
    None,
}

impl Sanitizer {
    fn name(self) -> &'static str {
        match self {
            Sanitizer::Address => "address",
            Sanitizer::None => "none",
        }
    }
}

/// The parsed command line.
#[derive(Debug)]
struct Options {
    seconds: u64,
    /// `None`: address, falling back to none.
    sanitizer: Option<Sanitizer>,
    timeout: u64,
    list: bool,
    help: bool,
    /// LeakSanitizer on (libFuzzer's `-detect_leaks`).
    leaks: bool,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        sanitizer: None,
        timeout: DEFAULT_TIMEOUT,
        list: false,
        help: false,
        leaks: true,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = seconds(value("--seconds")?)?,
            "--timeout" => options.timeout = seconds(value("--timeout")?)?,
            "--sanitizer" => {
                options.sanitizer = Some(match value("--sanitizer")?.as_str() {
                    "address" => Sanitizer::Address,
                    "none" => Sanitizer::None,
                    other => return Err(format!("unknown sanitizer `{other}`\n\n{USAGE}")),
                });
            }
            "--list" => options.list = true,
            "--no-leaks" => options.leaks = false,
            "help" | "--help" | "-h" => options.help = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option `{flag}`\n\n{USAGE}"));
            }
            target => options.targets.push(target.to_owned()),
        }
    }
    Ok(options)
}

fn seconds(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

/// One cargo-fuzz crate (`<crate>/fuzz`).
#[derive(Debug)]
struct FuzzCrate {
    /// The fuzzed crate's package name (`xen-abi`), naming corpora and logs.
    name: String,
    /// The `fuzz` directory.
    dir: PathBuf,
    /// Its targets, sorted.
    targets: Vec<String>,
    /// Why its targets could not be listed (a half-written manifest): the run
    /// goes on with the other crates and reports this one as failed.
    problem: Option<String>,
}

/// What one target's run gave.
#[derive(Debug)]
struct Outcome {
    label: String,
    /// The crate's `fuzz` directory.
    fuzz_dir: PathBuf,
    sanitizer: Sanitizer,
    stats: Stats,
    seconds: f64,
    verdict: Verdict,
    log: PathBuf,
}

/// Figures libFuzzer printed.
#[derive(Debug, Default)]
struct Stats {
    executions: Option<u64>,
    coverage_start: Option<u64>,
    coverage_end: Option<u64>,
    new_units: Option<u64>,
    corpus: Option<u64>,
}

#[derive(Debug)]
enum Verdict {
    /// Ran its time without a finding.
    Clean,
    /// libFuzzer wrote a reproducer.
    Finding(Finding),
    /// Build or run failed without a reproducer.
    Failed(String),
}

/// A crash, leak, timeout or out-of-memory with its input.
#[derive(Debug)]
struct Finding {
    /// `crash`, `leak`, `timeout`, `oom`.
    kind: String,
    artifact: PathBuf,
    /// The panic message (or sanitizer / libFuzzer error line).
    message: String,
    /// A smaller input with the same failure (`cargo fuzz tmin`), and its message.
    minimized: Option<(PathBuf, String)>,
}

/// `cargo xtask fuzz ARGS`.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.help {
        print!("{USAGE}");
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    let crates = discover(root);
    if crates.is_empty() {
        return Err("no fuzz crates (`*/fuzz`, `*/*/fuzz`) in the workspace".to_owned());
    }
    if options.list {
        for krate in &crates {
            println!("{} ({})", krate.name, krate.dir.display());
            if let Some(why) = &krate.problem {
                println!("  cannot list its targets: {why}");
            }
            for target in &krate.targets {
                println!("  {target}");
            }
        }
        return Ok(());
    }
    let selected = select(&crates, &options.targets)?;
    let out = root.join("target");
    let mut outcomes = Vec::new();
    for krate in &crates {
        if let (Some(why), true) = (&krate.problem, options.targets.is_empty()) {
            let outcome = Outcome {
                label: format!("{}/*", krate.name),
                fuzz_dir: krate.dir.clone(),
                sanitizer: options.sanitizer.unwrap_or(Sanitizer::Address),
                stats: Stats::default(),
                seconds: 0.0,
                verdict: Verdict::Failed(why.clone()),
                log: krate.dir.join("Cargo.toml"),
            };
            println!("{}", summary_line(&outcome));
            outcomes.push(outcome);
        }
        let targets: Vec<&str> = selected
            .iter()
            .filter(|(k, _)| std::ptr::eq(*k, krate))
            .map(|(_, t)| *t)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let logs = out.join("fuzz-logs").join(&krate.name);
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let built = build(krate, &targets, options.sanitizer, &logs);
        for target in targets {
            let outcome = match &built {
                Ok(sanitizer) => fuzz(krate, target, *sanitizer, &options, &out),
                Err(why) => Outcome {
                    label: format!("{}/{target}", krate.name),
                    fuzz_dir: krate.dir.clone(),
                    sanitizer: options.sanitizer.unwrap_or(Sanitizer::Address),
                    stats: Stats::default(),
                    seconds: 0.0,
                    verdict: Verdict::Failed(why.clone()),
                    log: logs.join("build.log"),
                },
            };
            println!("{}", summary_line(&outcome));
            outcomes.push(outcome);
        }
    }
    println!();
    print!("{}", table(&outcomes));
    verdict(&outcomes)
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("xtask: cargo-fuzz is missing: cargo install cargo-fuzz --locked");
    let status = cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo install cargo-fuzz --locked` failed ({status})"
        ))
    }
}

/// A `cargo` command for cargo-fuzz: nightly flags allowed, and no inherited
/// target dir, so each fuzz crate builds in its own (gitignored) `fuzz/target`.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    command
}

/// Every `*/fuzz` and `*/*/fuzz` cargo-fuzz crate below `root`, sorted by path.
fn discover(root: &Path) -> Vec<FuzzCrate> {
    let mut dirs = Vec::new();
    for top in subdirs(root) {
        dirs.push(top.join("fuzz"));
        for second in subdirs(&top) {
            dirs.push(second.join("fuzz"));
        }
    }
    dirs.retain(|dir| is_fuzz_manifest(&dir.join("Cargo.toml")));
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let owner = dir.parent().unwrap_or(root);
            let name = package_name(&owner.join("Cargo.toml")).unwrap_or_else(|| {
                owner
                    .strip_prefix(root)
                    .unwrap_or(owner)
                    .to_string_lossy()
                    .replace('/', "-")
            });
            let (targets, problem) = match list_targets(&dir) {
                Ok(targets) => (targets, None),
                Err(why) => (Vec::new(), Some(why)),
            };
            FuzzCrate {
                name,
                dir,
                targets,
                problem,
            }
        })
        .collect()
}

/// The directories directly in `dir`, except hidden ones, `target` and `fuzz`
/// itself (a fuzz crate does not hold fuzz crates).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "target" && name != "fuzz"
        })
        .map(|e| e.path())
        .collect()
}

fn is_fuzz_manifest(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|line| line.replace(' ', "").starts_with("cargo-fuzz=true"))
    })
}

/// `name` of the `[package]` table of a Cargo.toml (a line-based read is enough
/// for our manifests; `None` sends the caller to its fallback).
fn package_name(manifest: &Path) -> Option<String> {
    let text = fs::read_to_string(manifest).ok()?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name") {
                let value = value.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// `cargo fuzz list` of one fuzz crate.
fn list_targets(dir: &Path) -> Result<Vec<String>, String> {
    let output = cargo()
        .arg("fuzz")
        .arg("list")
        .arg("--fuzz-dir")
        .arg(dir)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run cargo fuzz list: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // cargo-fuzz's error, without the backtrace anyhow may append.
        let error = stderr.split("Stack backtrace:").next().unwrap_or_default();
        return Err(format!(
            "`cargo fuzz list --fuzz-dir {}` failed: {}",
            dir.display(),
            error.trim()
        ));
    }
    let mut targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    targets.sort();
    Ok(targets)
}

/// The (crate, target) pairs `wanted` names (all when empty): `CRATE/TARGET`,
/// `TARGET` (in every crate that has it) or `CRATE` (all its targets); an
/// unknown name is an error listing what exists.
fn select<'a>(
    crates: &'a [FuzzCrate],
    wanted: &[String],
) -> Result<Vec<(&'a FuzzCrate, &'a str)>, String> {
    let all: Vec<(&FuzzCrate, &str)> = crates
        .iter()
        .flat_map(|k| k.targets.iter().map(move |t| (k, t.as_str())))
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    let known = || {
        all.iter()
            .map(|(k, t)| format!("{}/{t}", k.name))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut selected: Vec<(&FuzzCrate, &str)> = Vec::new();
    for name in wanted {
        let matches: Vec<_> = all
            .iter()
            .filter(|(k, t)| match name.split_once('/') {
                Some((krate, target)) => k.name == krate && *t == target,
                None => *t == name || k.name == *name,
            })
            .collect();
        if matches.is_empty() {
            return Err(format!("no fuzz target `{name}`; there are: {}", known()));
        }
        for &(k, t) in matches {
            if !selected
                .iter()
                .any(|(sk, st)| std::ptr::eq(*sk, k) && *st == t)
            {
                selected.push((k, t));
            }
        }
    }
    Ok(selected)
}

/// Common `cargo fuzz build|run` options: release, debug assertions (overflow
/// checks), the sanitizer, this crate's fuzz dir.
fn fuzz_command(subcommand: &str, krate: &FuzzCrate, sanitizer: Sanitizer) -> Command {
    let mut command = cargo();
    command
        .arg("fuzz")
        .arg(subcommand)
        .arg("--fuzz-dir")
        .arg(&krate.dir)
        .args(["--release", "--debug-assertions", "--sanitizer"])
        .arg(sanitizer.name())
        .current_dir(&krate.dir);
    command
}

/// `--no-leaks`: libFuzzer's `-detect_leaks=0` only covers its own per-input
/// check; LeakSanitizer's exit-time check must be turned off too (cargo-fuzz
/// appends its own ASAN_OPTIONS to ours).
fn ignore_leaks(command: &mut Command) {
    let mut asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
    if !asan.is_empty() {
        asan.push(':');
    }
    asan.push_str("detect_leaks=0");
    command.env("ASAN_OPTIONS", asan);
}

/// Builds `targets` of `krate`, returning the sanitizer they were built with.
fn build(
    krate: &FuzzCrate,
    targets: &[&str],
    wanted: Option<Sanitizer>,
    logs: &Path,
) -> Result<Sanitizer, String> {
    let attempts: &[Sanitizer] = match wanted {
        Some(Sanitizer::Address) => &[Sanitizer::Address],
        Some(Sanitizer::None) => &[Sanitizer::None],
        None => &[Sanitizer::Address, Sanitizer::None],
    };
    let log = logs.join("build.log");
    let mut last = String::new();
    for &sanitizer in attempts {
        println!(
            "xtask: cargo fuzz build ({}, sanitizer {}) {}",
            krate.name,
            sanitizer.name(),
            targets.join(" ")
        );
        let mut failed = None;
        for target in targets {
            let mut command = fuzz_command("build", krate, sanitizer);
            command.arg(target);
            if let Err(why) = run_logged(&mut command, &log) {
                failed = Some(why);
                break;
            }
        }
        match failed {
            None => return Ok(sanitizer),
            Some(why) => {
                last = format!("build failed ({why}); log {}", log.display());
                if sanitizer == Sanitizer::Address && wanted.is_none() {
                    println!(
                        "xtask: note: the AddressSanitizer build of {} failed ({}), \
                         trying `--sanitizer none`:\n{}",
                        krate.name,
                        log.display(),
                        tail(&log, 8)
                    );
                }
            }
        }
    }
    Err(last)
}

/// Runs `command` with stdout and stderr appended to `log`; Err says how it exited.
fn run_logged(command: &mut Command, log: &Path) -> Result<(), String> {
    let file = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let status = command
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(status.to_string())
    }
}

/// The last `lines` lines of a log, indented.
fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "    {line}");
            out
        })
}

/// Fuzzes one target for `options.seconds`; an AddressSanitizer run that dies
/// without a reproducer (a runtime that cannot start) is retried without it
/// when the sanitizer was not forced.
fn fuzz(
    krate: &FuzzCrate,
    target: &str,
    sanitizer: Sanitizer,
    options: &Options,
    out: &Path,
) -> Outcome {
    let outcome = fuzz_once(krate, target, sanitizer, options, out);
    if sanitizer == Sanitizer::Address
        && options.sanitizer.is_none()
        && matches!(outcome.verdict, Verdict::Failed(_))
        && outcome.stats.executions.is_none()
    {
        println!(
            "xtask: note: {} did not start under AddressSanitizer ({}), \
             retrying with `--sanitizer none`:\n{}",
            outcome.label,
            outcome.log.display(),
            tail(&outcome.log, 8)
        );
        return fuzz_once(krate, target, Sanitizer::None, options, out);
    }
    outcome
}

fn fuzz_once(
    krate: &FuzzCrate,
    target: &str,
    sanitizer: Sanitizer,
    options: &Options,
    out: &Path,
) -> Outcome {
    let label = format!("{}/{target}", krate.name);
    let corpus = out.join("fuzz-corpus").join(&krate.name).join(target);
    let artifacts = out.join("fuzz-artifacts").join(&krate.name).join(target);
    let log = out
        .join("fuzz-logs")
        .join(&krate.name)
        .join(format!("{target}.log"));
    let failed = |why: String| Outcome {
        label: label.clone(),
        fuzz_dir: krate.dir.clone(),
        sanitizer,
        stats: Stats::default(),
        seconds: 0.0,
        verdict: Verdict::Failed(why),
        log: log.clone(),
    };
    for dir in [&corpus, &artifacts] {
        if let Err(e) = fs::create_dir_all(dir) {
            return failed(format!("{}: {e}", dir.display()));
        }
    }
    let seeds: Vec<PathBuf> = ["seeds", "corpus"]
        .iter()
        .map(|d| krate.dir.join(d).join(target))
        .filter(|d| d.is_dir())
        .collect();
    println!(
        "xtask: fuzzing {label} for {} s (sanitizer {}, seeds: {})",
        options.seconds,
        sanitizer.name(),
        if seeds.is_empty() {
            "none".to_owned()
        } else {
            seeds
                .iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut prefix = OsString::from("-artifact_prefix=");
    prefix.push(&artifacts);
    prefix.push("/");
    let mut command = fuzz_command("run", krate, sanitizer);
    command
        .arg(target)
        .arg(&corpus)
        .args(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={}", options.seconds))
        .arg(format!("-timeout={}", options.timeout))
        .arg("-print_final_stats=1")
        .arg(format!("-detect_leaks={}", u8::from(options.leaks)))
        .arg(prefix);
    if !options.leaks {
        ignore_leaks(&mut command);
    }
    let start = Instant::now();
    let status = run_logged(&mut command, &log);
    let wall = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let stats = parse_stats(&text);
    let verdict = match (status, finding(&text)) {
        (_, Some(mut found)) => {
            if found.kind == "crash" {
                found.minimized = minimize(
                    krate,
                    target,
                    sanitizer,
                    options.leaks,
                    &found.artifact,
                    &artifacts,
                );
            }
            Verdict::Finding(found)
        }
        (Ok(()), None) => Verdict::Clean,
        (Err(why), None) => Verdict::Failed(format!("exited {why}; log {}", log.display())),
    };
    Outcome {
        label,
        fuzz_dir: krate.dir.clone(),
        sanitizer,
        seconds: done_seconds(&text).unwrap_or(wall),
        stats,
        verdict,
        log,
    }
}

/// Shrinks a crashing input with `cargo fuzz tmin` (a bounded number of tries
/// per step), then replays the result for its own message: without a sanitizer
/// stack, libFuzzer cannot tell whether a smaller input hit the same panic.
fn minimize(
    krate: &FuzzCrate,
    target: &str,
    sanitizer: Sanitizer,
    leaks: bool,
    artifact: &Path,
    artifacts: &Path,
) -> Option<(PathBuf, String)> {
    let log = artifact.with_extension("tmin.log");
    println!("xtask: minimizing {}", artifact.display());
    let mut prefix = OsString::from("-artifact_prefix=");
    prefix.push(artifacts);
    prefix.push("/");
    let mut command = fuzz_command("tmin", krate, sanitizer);
    command
        .args(["--runs", "2000"])
        .arg(target)
        .arg(artifact)
        .arg("--")
        .arg(prefix);
    if !leaks {
        ignore_leaks(&mut command);
    }
    // tmin fails when it cannot shrink at all; what it confirmed still counts.
    let _ = run_logged(&mut command, &log);
    let text = fs::read_to_string(&log).unwrap_or_default();
    let smallest = smallest_crash(&text)?;
    if smallest == artifact {
        return None;
    }
    let replay = smallest.with_extension("replay.log");
    let mut command = fuzz_command("run", krate, sanitizer);
    command.arg(target).arg(&smallest);
    if !leaks {
        ignore_leaks(&mut command);
    }
    let _ = run_logged(&mut command, &replay);
    let message = failure_message(&fs::read_to_string(&replay).unwrap_or_default());
    Some((smallest, message))
}

/// The last input libFuzzer's crash minimization confirmed as crashing.
fn smallest_crash(text: &str) -> Option<PathBuf> {
    text.lines().rev().find_map(|line| {
        let rest = line.strip_prefix("CRASH_MIN: '")?;
        let (path, tail) = rest.split_once("' (")?;
        tail.contains("caused a crash").then(|| PathBuf::from(path))
    })
}

/// The number after `key` on the last line holding it, e.g. `cov: 123`.
fn last_number(text: &str, key: &str) -> Option<u64> {
    text.lines().rev().find_map(|line| number_after(line, key))
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn parse_stats(text: &str) -> Stats {
    Stats {
        executions: last_number(text, "stat::number_of_executed_units:"),
        new_units: last_number(text, "stat::new_units_added:"),
        coverage_start: text
            .lines()
            .find(|l| l.contains("INITED"))
            .and_then(|l| number_after(l, "cov:")),
        coverage_end: text
            .lines()
            .rev()
            .find(|l| l.starts_with('#') && l.contains("cov:"))
            .and_then(|l| number_after(l, "cov:")),
        corpus: text
            .lines()
            .rev()
            .find(|l| l.starts_with('#') && l.contains("corp:"))
            .and_then(|l| number_after(l, "corp:")),
    }
}

/// libFuzzer's "Done N runs in S second(s)".
fn done_seconds(text: &str) -> Option<f64> {
    text.lines()
        .rev()
        .find(|l| l.starts_with("Done ") && l.contains(" runs in "))
        .and_then(|l| number_after(l, " runs in "))
        .map(|s| {
            #[allow(clippy::cast_precision_loss, reason = "seconds of a fuzz run")]
            let s = s as f64;
            s
        })
}

/// The reproducer libFuzzer wrote, with the panic message or error line.
fn finding(text: &str) -> Option<Finding> {
    // libFuzzer also writes `slow-unit-*` for slow inputs that did not fail.
    let path = text.lines().find_map(|line| {
        let at = line.find("Test unit written to ")?;
        let path = PathBuf::from(line[at + "Test unit written to ".len()..].trim());
        let slow = path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("slow-unit-"));
        (!slow).then_some(path)
    })?;
    let file = path.file_name()?.to_string_lossy().into_owned();
    let kind = match file.split('-').next() {
        Some("leak") => "leak",
        Some("timeout") => "timeout",
        Some("oom") => "oom",
        _ => "crash",
    };
    Some(Finding {
        kind: kind.to_owned(),
        artifact: path,
        message: failure_message(text),
        minimized: None,
    })
}

/// The Rust panic (`panicked at` and its message lines), else the first
/// sanitizer or libFuzzer `ERROR:` line with the first stack frame in our code.
fn failure_message(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.contains("panicked at")) {
        // From `panicked at`: the thread name and id before it say nothing.
        let line = lines[at];
        let mut message = vec![line[line.find("panicked at").unwrap_or(0)..].trim()];
        message.extend(
            lines[at + 1..]
                .iter()
                .take_while(|l| {
                    !l.is_empty()
                        && !["note:", "stack backtrace:", "=="]
                            .iter()
                            .any(|end| l.starts_with(end))
                })
                .take(6)
                .map(|l| l.trim()),
        );
        return message.join(" | ");
    }
    let Some(at) = lines.iter().position(|l| l.contains("ERROR:")) else {
        return "no message".to_owned();
    };
    let error = lines[at].trim();
    // Frames look like `#14 0x5563 in <function> <file>:<line>:<column>`.
    let ours = lines[at + 1..].iter().map(|l| l.trim()).find(|l| {
        l.starts_with('#')
            && l.contains(" in ")
            && !["/rustc/", "/.cargo/registry/", "compiler-rt", "/libfuzzer"]
                .iter()
                .any(|foreign| l.contains(foreign))
    });
    match ours.and_then(|frame| frame.split_once(" in ")) {
        Some((_, frame)) => format!("{error} | at {frame}"),
        None => error.to_owned(),
    }
}

fn summary_line(outcome: &Outcome) -> String {
    let execs = outcome
        .stats
        .executions
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    let result = match &outcome.verdict {
        Verdict::Clean => "clean".to_owned(),
        Verdict::Finding(f) => format!("{} -> {}", f.kind, f.artifact.display()),
        Verdict::Failed(why) => format!("FAILED: {why}"),
    };
    format!(
        "xtask: {}: {execs} executions in {:.0} s: {result}",
        outcome.label, outcome.seconds
    )
}

/// The closing table: target, executions, seconds, coverage, finding.
fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 7]> = outcomes
        .iter()
        .map(|o| {
            let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |n| n.to_string());
            [
                o.label.clone(),
                o.sanitizer.name().to_owned(),
                n(o.stats.executions),
                format!("{:.0}", o.seconds),
                format!(
                    "{} -> {}",
                    n(o.stats.coverage_start),
                    n(o.stats.coverage_end)
                ),
                format!("{} ({} total)", n(o.stats.new_units), n(o.stats.corpus)),
                match &o.verdict {
                    Verdict::Clean => "none".to_owned(),
                    Verdict::Finding(f) => f.kind.clone(),
                    Verdict::Failed(_) => "FAILED".to_owned(),
                },
            ]
        })
        .collect();
    let header = [
        "target",
        "sanitizer",
        "executions",
        "seconds",
        "coverage",
        "new inputs",
        "finding",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                // Text left, figures right.
                if matches!(i, 2 | 3) {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// Ok when every target ran clean; otherwise each finding with its input in hex.
fn verdict(outcomes: &[Outcome]) -> Result<(), String> {
    let mut report = String::new();
    for outcome in outcomes {
        match &outcome.verdict {
            Verdict::Clean => {}
            Verdict::Failed(why) => {
                let _ = writeln!(report, "{}: did not run: {why}", outcome.label);
            }
            Verdict::Finding(f) => {
                let bytes = fs::read(&f.artifact).unwrap_or_default();
                let _ = writeln!(
                    report,
                    "{}: {} ({} bytes): {}\n  replay: {}\n  message: {}\n  input: {}",
                    outcome.label,
                    f.kind,
                    bytes.len(),
                    f.artifact.display(),
                    replay_hint(outcome, &f.artifact),
                    f.message,
                    hex(&bytes)
                );
                if let Some((path, message)) = &f.minimized {
                    let bytes = fs::read(path).unwrap_or_default();
                    let _ = writeln!(
                        report,
                        "  minimized ({} bytes): {}\n  message: {message}\n  input: {}",
                        bytes.len(),
                        path.display(),
                        hex(&bytes)
                    );
                }
            }
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing found problems:\n{report}"))
    }
}

fn replay_hint(outcome: &Outcome, artifact: &Path) -> String {
    let target = outcome.label.split_once('/').map_or("", |(_, t)| t);
    format!(
        "RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir {} -a -s {} {target} {}",
        outcome.fuzz_dir.display(),
        outcome.sanitizer.name(),
        artifact.display()
    )
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(HEX_LIMIT) * 2);
    for b in bytes.iter().take(HEX_LIMIT) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > HEX_LIMIT {
        let _ = write!(out, "... ({} more bytes)", bytes.len() - HEX_LIMIT);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
INFO: Seed: 1234
#2\tINITED cov: 55 ft: 60 corp: 1/1b exec/s: 0 rss: 30Mb
#1024\tNEW    cov: 80 ft: 99 corp: 7/90b lim: 14 exec/s: 512 rss: 31Mb
#524288\tpulse  cov: 81 ft: 120 corp: 9/120b lim: 4096 exec/s: 17476 rss: 33Mb
Done 600000 runs in 31 second(s)
stat::number_of_executed_units: 600000
stat::average_exec_per_sec:     19354
stat::new_units_added:          8
";

    #[test]
    fn clean_run_statistics() {
        let stats = parse_stats(CLEAN);
        assert_eq!(stats.executions, Some(600_000));
        assert_eq!(stats.new_units, Some(8));
        assert_eq!(stats.coverage_start, Some(55));
        assert_eq!(stats.coverage_end, Some(81));
        assert_eq!(stats.corpus, Some(9));
        assert_eq!(done_seconds(CLEAN), Some(31.0));
        assert!(finding(CLEAN).is_none());
    }

    #[test]
    fn crash_names_the_reproducer_and_the_panic() {
        let text = "\
#5\tNEW    cov: 90 ft: 99 corp: 3/9b
thread '<unnamed>' panicked at src/ring.rs:42:9:
attempt to subtract with overflow
stack backtrace:
   0: __rustc::rust_begin_unwind
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
==4242== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/target/fuzz-artifacts/xen-abi/ring/'; Test unit written to /w/target/fuzz-artifacts/xen-abi/ring/crash-0a1b
Base64: AAE=
stat::number_of_executed_units: 77
";
        let found = finding(text).expect("a finding");
        assert_eq!(found.kind, "crash");
        assert_eq!(
            found.artifact,
            Path::new("/w/target/fuzz-artifacts/xen-abi/ring/crash-0a1b")
        );
        assert_eq!(
            found.message,
            "panicked at src/ring.rs:42:9: | attempt to subtract with overflow"
        );
        assert_eq!(parse_stats(text).executions, Some(77));

        let tmin = "\
CRASH_MIN: minimizing crash input: '/a/crash-1' (40 bytes)
CRASH_MIN: '/a/crash-1' (40 bytes) caused a crash. Will try to minimize it further
*********************************
CRASH_MIN: minimizing crash input: '/a/minimized-from-2' (12 bytes)
CRASH_MIN: '/a/minimized-from-2' (12 bytes) caused a crash. Will try to minimize it further
CRASH_MIN: minimizing crash input: '/a/minimized-from-3' (9 bytes)
ERROR: the input /a/minimized-from-3 did not crash
";
        assert_eq!(
            smallest_crash(tmin).as_deref(),
            Some(Path::new("/a/minimized-from-2"))
        );
    }

    #[test]
    fn sanitizer_errors_and_finding_kinds() {
        let text = "\
==1==ERROR: libFuzzer: out-of-memory (malloc(4294967296))
Test unit written to ./oom-ffee
";
        let found = finding(text).expect("a finding");
        assert_eq!(found.kind, "oom");
        assert_eq!(
            found.message,
            "==1==ERROR: libFuzzer: out-of-memory (malloc(4294967296))"
        );
        assert!(finding("Test unit written to /a/slow-unit-01\n").is_none());
        let leak =
            finding("Test unit written to /a/slow-unit-01\nTest unit written to /a/leak-01\n")
                .expect("a finding");
        assert_eq!(leak.kind, "leak");
        assert_eq!(leak.message, "no message");
        let leak = "\
==5983==ERROR: LeakSanitizer: detected memory leaks
Direct leak of 88 byte(s) in 11 object(s) allocated from:
    #0 0x563b in malloc /rustc/llvm/src/llvm-project/compiler-rt/lib/asan/asan_malloc_linux.cpp:67:3
    #1 0x563b in alloc /rustc/5980/library/alloc/src/alloc.rs:95:9
    #14 0x563b in <x::fake::FakeXen as x::Memory>::alloc /work/x/src/fake.rs:216:14
    #15 0x563b in data_page /work/x/src/fake.rs:123:26
";
        assert_eq!(
            failure_message(leak),
            "==5983==ERROR: LeakSanitizer: detected memory leaks \
             | at <x::fake::FakeXen as x::Memory>::alloc /work/x/src/fake.rs:216:14"
        );
    }

    #[test]
    fn options_and_target_selection() {
        let args: Vec<String> = ["--seconds", "5", "ring", "xenbus-core/reply"]
            .map(str::to_owned)
            .to_vec();
        let options = parse(&args).expect("valid options");
        assert_eq!(options.seconds, 5);
        assert_eq!(options.targets, ["ring", "xenbus-core/reply"]);
        assert!(parse(&["--seconds".to_owned(), "0".to_owned()]).is_err());
        assert!(parse(&["--bogus".to_owned()]).is_err());

        let crates = [
            FuzzCrate {
                name: "xen-abi".into(),
                dir: "/x/fuzz".into(),
                targets: vec!["ring".into(), "wire".into()],
                problem: None,
            },
            FuzzCrate {
                name: "xenbus-core".into(),
                dir: "/b/fuzz".into(),
                targets: vec!["reply".into(), "ring".into()],
                problem: None,
            },
        ];
        let names = |wanted: &[&str]| {
            let wanted: Vec<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
            select(&crates, &wanted).map(|v| {
                v.iter()
                    .map(|(k, t)| format!("{}/{t}", k.name))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(names(&[]).expect("all").len(), 4);
        assert_eq!(names(&["wire"]).expect("one"), ["xen-abi/wire"]);
        assert_eq!(
            names(&["xenbus-core"]).expect("a crate"),
            ["xenbus-core/reply", "xenbus-core/ring"]
        );
        assert_eq!(
            names(&["ring"]).expect("two"),
            ["xen-abi/ring", "xenbus-core/ring"]
        );
        assert_eq!(
            names(&["xenbus-core/ring", "xenbus-core/ring"]).expect("one"),
            ["xenbus-core/ring"]
        );
        assert!(names(&["nope"]).is_err());
    }

    #[test]
    fn package_names_and_hex() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let manifest = dir.join("Cargo.toml");
        fs::write(
            &manifest,
            "[package]\nname = \"xen-abi\"\n\n[dependencies]\nname = \"x\"\n",
        )
        .expect("write");
        assert_eq!(package_name(&manifest).as_deref(), Some("xen-abi"));
        fs::write(&manifest, "[package.metadata]\ncargo-fuzz = true\n").expect("write");
        assert!(is_fuzz_manifest(&manifest));
        assert_eq!(package_name(&manifest), None);
        fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
