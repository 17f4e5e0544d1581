//! Test and benchmark programs that run **inside the rig's Xen dom0**.
//!
//! `cargo xtask rig test [SUITE...]` builds this crate's binary `xenpv-rig-tests`
//! (static, `x86_64-unknown-linux-gnu` with `+crt-static`), compiles the C helpers in
//! `build/rig-tests/c/`, ships all of them into dom0 next to each other
//! (`/rig/files/`), boots the rig once and runs `xenpv-rig-tests test SUITE...`.
//! `cargo xtask rig bench [SUITE...]` does the same with `bench`.
//!
//! # Adding a suite
//!
//! 1. Write `src/suites/<suite>.rs` with a `pub const SUITE: Suite`:
//!    ```ignore
//!    use crate::{Bench, BenchRow, Suite, Test};
//!
//!    pub const SUITE: Suite = Suite {
//!        name: "store",
//!        tests: &[Test { name: "watch_fires", run: watch_fires }],
//!        benches: &[Bench { name: "read_latency", run: read_latency }],
//!    };
//!
//!    fn watch_fires() -> Result<(), String> { /* ... */ Ok(()) }
//!
//!    fn read_latency() -> Result<Vec<BenchRow>, String> {
//!        Ok(vec![BenchRow::new("xs read", ours, linux, "ops/s")])
//!    }
//!    ```
//! 2. Register it in `src/suites/mod.rs` with **one line** in each of the two lists
//!    there (`mod <suite>;` and `<suite>::SUITE,` in `ALL`).
//!
//! That is all: `cargo xtask rig test <suite>` runs it, and `cargo xtask test` (CI)
//! runs every registered suite.
//!
//! # What a test is
//!
//! A `fn() -> Result<(), String>`; `Err(reason)` is a failure with a readable reason.
//! A panic is caught and counted as a failure too (so one test cannot end the run),
//! but write `Err`s. Each test prints exactly one result line:
//!
//! ```text
//! ok   platform::xenbus_read_domid (3 ms)
//! FAIL platform::evtchn_loopback: no event within 2 s
//! ```
//!
//! The xtask relays only the console lines that start with `ok   `, `FAIL `, `BENCH `
//! and the closing line; anything else a test prints (to stdout or stderr) stays in
//! the serial log (its path is printed at the end); keep it short.
//! Budget: CI runs every suite in one boot within a 30-minute total, under TCG on a
//! small host; keep a suite to a minute or two and put long runs in benches. The run ends with the line `N passed, M failed` (this exact plain
//! form is what the xtask and CI recognise) and exits non-zero if anything failed.
//! Tests run in dom0 as root, one after the other, in registration order; each must
//! leave dom0 as it found it (unbind ports, free grants, remove xenstore nodes,
//! detach devices), because later tests share the same boot. A test that needs a
//! kernel module unloaded (e.g. `xen-blkfront` so that our frontend gets
//! `device/vbd/*`) unloads it and loads it back at the end.
//!
//! # What a bench is
//!
//! A `fn() -> Result<Vec<BenchRow>, String>`; each row is one metric with our figure
//! and the reference figure (Linux's own frontend, libxenstore, ...) **measured in the
//! same boot** (TCG timings swing between boots; only ratios mean anything). The runner
//! prints one table for all benches with the ratio ours/reference. Benchmarks never
//! assert timings; an `Err` only means the bench could not run.
//!
//! # C helper programs
//!
//! Some references are easiest in C (e.g. a loop over libxenstore's `xs_read`). Put
//! them in `build/rig-tests/c/<name>.c`. The xtask compiles every such file on the
//! host with `gcc -O2 -Wall -Werror -o <name> <name>.c <link flags>`, where the link
//! flags come from an optional **first line** `// link: -lxenstore` (anything after
//! `link:` is passed to gcc). Helpers link dynamically against the dom0's Debian
//! libraries (dom0 is Debian bookworm with `xen-utils-4.17`, so `libxenstore`,
//! `libxenctrl`, ... are there); add `-static` to the link line if a helper must not
//! depend on them. Suites find a helper with [`helper`] (it lives beside
//! [`std::env::current_exe`]) and usually run it with [`run_helper`].
//!
//! # dom0 environment
//!
//! Xen 4.17 + Linux 6.1 PV dom0, C `xenstored`, `xen-init-dom0`, `xenconsoled`;
//! loaded: xenfs, xen-evtchn, xen-gntdev, xen-gntalloc, xen-privcmd, xen-blkback,
//! xen-netback, xen-blkfront, xen-netfront, loop, bridge; the bridge `xenbr0` with
//! address `10.99.0.1/24` is up. Tools: `xl`, `xenstore-*`, `fio`, `iperf3`,
//! `ethtool`, `ping`, `ip`, `losetup`, `mkfs.ext4`. `/tmp` is a tmpfs.

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

pub mod dom0;
pub mod suites;

/// One test: a name (unique within its suite) and the function that runs it.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    /// Printed as `<suite>::<name>`.
    pub name: &'static str,
    /// `Ok(())` = pass; `Err(reason)` = fail with that reason.
    pub run: fn() -> Result<(), String>,
}

/// One benchmark: a name and the function that measures it.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    /// Printed as `<suite>::<name>`.
    pub name: &'static str,
    /// Rows of figures, ours beside the reference, measured in this boot.
    pub run: fn() -> Result<Vec<BenchRow>, String>,
}

/// One row of the benchmark table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// What is measured, e.g. `"4k randread QD32"`.
    pub metric: String,
    /// Our figure.
    pub ours: f64,
    /// The reference figure (Linux's own frontend, libxenstore, ...); `None` if
    /// there is nothing to compare with.
    pub reference: Option<f64>,
    /// Unit of both figures, e.g. `"IOPS"`, `"MB/s"`, `"ops/s"`.
    pub unit: &'static str,
}

impl BenchRow {
    /// A row with a reference figure.
    pub fn new(metric: impl Into<String>, ours: f64, reference: f64, unit: &'static str) -> Self {
        Self {
            metric: metric.into(),
            ours,
            reference: Some(reference),
            unit,
        }
    }

    /// ours / reference, if there is a non-zero reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference
            .filter(|r| r.is_finite() && *r != 0.0)
            .map(|r| self.ours / r)
    }
}

/// A named group of tests and benches (one module in `src/suites/`).
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// The name given on the command line (`cargo xtask rig test <name>`).
    pub name: &'static str,
    /// Tests, run in this order.
    pub tests: &'static [Test],
    /// Benches, run in this order.
    pub benches: &'static [Bench],
}

/// Totals of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests (or benches) that returned `Ok`.
    pub passed: usize,
    /// Tests (or benches) that returned `Err` or panicked.
    pub failed: usize,
}

impl Summary {
    /// The closing line, exactly `N passed, M failed`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// Picks the suites named in `selectors` (all of `all` when empty). A selector is
/// `suite` or `suite::test_prefix`; the second element of each result is the test
/// name prefix (empty = every test).
pub fn select<'a>(
    all: &'a [Suite],
    selectors: &[String],
) -> Result<Vec<(&'a Suite, String)>, String> {
    if selectors.is_empty() {
        return Ok(all.iter().map(|s| (s, String::new())).collect());
    }
    selectors
        .iter()
        .map(|selector| {
            let (suite, prefix) = selector.split_once("::").unwrap_or((selector, ""));
            all.iter()
                .find(|s| s.name == suite)
                .map(|s| (s, prefix.to_string()))
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                    format!("no suite `{suite}` (suites: {})", names.join(", "))
                })
        })
        .collect()
}

/// Runs `f`, turning a panic into an `Err` carrying the panic message.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".into());
            Err(format!("panicked: {message}"))
        }
    }
}

/// Runs the selected tests, printing one line per test, and returns the totals
/// (the caller prints the closing line).
pub fn run_tests(selected: &[(&Suite, String)], out: &mut impl std::io::Write) -> Summary {
    let mut summary = Summary::default();
    for (suite, prefix) in selected {
        for test in suite
            .tests
            .iter()
            .filter(|t| t.name.starts_with(prefix.as_str()))
        {
            let start = Instant::now();
            let result = guarded(test.run);
            let ms = start.elapsed().as_millis();
            let line = match result {
                Ok(()) => {
                    summary.passed += 1;
                    format!("ok   {}::{} ({ms} ms)", suite.name, test.name)
                }
                Err(reason) => {
                    summary.failed += 1;
                    // One line per result, whatever the reason contains.
                    let reason = reason.replace('\n', " | ");
                    format!("FAIL {}::{}: {reason}", suite.name, test.name)
                }
            };
            // A broken console is no reason to stop testing.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
    summary
}

/// Runs the selected benches, printing one line per bench as it finishes and then
/// the table; returns the totals (a bench that returned `Err` counts as failed).
pub fn run_benches(selected: &[(&Suite, String)], out: &mut impl std::io::Write) -> Summary {
    let mut summary = Summary::default();
    let mut rows: Vec<(String, BenchRow)> = Vec::new();
    for (suite, prefix) in selected {
        for bench in suite
            .benches
            .iter()
            .filter(|b| b.name.starts_with(prefix.as_str()))
        {
            let name = format!("{}::{}", suite.name, bench.name);
            let start = Instant::now();
            let result = guarded(bench.run);
            let secs = start.elapsed().as_secs_f64();
            match result {
                Ok(bench_rows) => {
                    summary.passed += 1;
                    let _ = writeln!(out, "ok   {name} ({secs:.1} s)");
                    rows.extend(bench_rows.into_iter().map(|r| (name.clone(), r)));
                }
                Err(reason) => {
                    summary.failed += 1;
                    let _ = writeln!(out, "FAIL {name}: {}", reason.replace('\n', " | "));
                }
            }
            let _ = out.flush();
        }
    }
    let _ = write!(out, "{}", bench_table(&rows));
    summary
}

/// Formats benchmark rows as an aligned table with the ratio ours/reference.
pub fn bench_table(rows: &[(String, BenchRow)]) -> String {
    let header = [
        "bench".to_string(),
        "metric".to_string(),
        "ours".to_string(),
        "reference".to_string(),
        "unit".to_string(),
        "ours/ref".to_string(),
    ];
    let mut cells: Vec<[String; 6]> = vec![header];
    for (bench, row) in rows {
        cells.push([
            bench.clone(),
            row.metric.clone(),
            format_figure(row.ours),
            row.reference.map_or_else(|| "-".into(), format_figure),
            row.unit.to_string(),
            row.ratio()
                .map_or_else(|| "-".into(), |r| format!("{r:.2}")),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::from("BENCH TABLE\n");
    for row in &cells {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            // Text columns left-aligned, figures right-aligned.
            if i < 2 || i == 4 {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        table.push_str("BENCH ");
        table.push_str(line.trim_end());
        table.push('\n');
    }
    table
}

/// A figure with three significant digits' worth of precision, no exponent.
fn format_figure(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// Path of the C helper program `name` (built from `c/<name>.c`), which the rig
/// ships beside this binary.
pub fn helper(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "helper {} not found (is build/rig-tests/c/{name}.c built and shipped?)",
            path.display()
        ))
    }
}

/// Runs the C helper `name` with `args` and returns its stdout; a non-zero exit is
/// an `Err` carrying its stderr.
pub fn run_helper(name: &str, args: &[&str]) -> Result<String, String> {
    let path = helper(name)?;
    sh_output(Command::new(&path).args(args))
}

/// Runs a shell command line in dom0 (`bash -c`) and returns its stdout; a non-zero
/// exit is an `Err` with the command, its status and its stderr.
pub fn sh(command_line: &str) -> Result<String, String> {
    sh_output(Command::new("bash").arg("-c").arg(command_line))
}

fn sh_output(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
// The fixtures must have the runner's function types.
#[allow(clippy::unnecessary_wraps)]
mod tests {
    use super::*;

    fn pass() -> Result<(), String> {
        Ok(())
    }
    fn fail() -> Result<(), String> {
        Err("bad\nthing".into())
    }
    fn boom() -> Result<(), String> {
        panic!("kaboom")
    }
    fn rows() -> Result<Vec<BenchRow>, String> {
        Ok(vec![
            BenchRow::new("read", 50.0, 100.0, "ops/s"),
            BenchRow {
                metric: "alone".into(),
                ours: 1.5,
                reference: None,
                unit: "s",
            },
        ])
    }

    const DEMO: Suite = Suite {
        name: "demo",
        tests: &[
            Test {
                name: "pass",
                run: pass,
            },
            Test {
                name: "fail",
                run: fail,
            },
            Test {
                name: "panics",
                run: boom,
            },
        ],
        benches: &[Bench {
            name: "rows",
            run: rows,
        }],
    };

    #[test]
    fn runner_prints_one_line_per_test_and_counts() {
        let selected = select(&[DEMO], &[]).unwrap();
        let mut out = Vec::new();
        let summary = run_tests(&selected, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ok   demo::pass ("));
        assert_eq!(lines[1], "FAIL demo::fail: bad | thing");
        assert!(lines[2].starts_with("FAIL demo::panics: panicked: kaboom"));
        assert_eq!(summary.line(), "1 passed, 2 failed");
    }

    #[test]
    fn selectors_pick_suites_and_test_prefixes() {
        let all = [DEMO];
        let selected = select(&all, &["demo::pa".into()]).unwrap();
        let mut out = Vec::new();
        let summary = run_tests(&selected, &mut out);
        assert_eq!((summary.passed, summary.failed), (1, 1)); // pass + panics
        assert!(select(&all, &["nope".into()]).unwrap_err().contains("demo"));
    }

    #[test]
    fn bench_table_has_ratio_ours_over_reference() {
        let selected = select(&[DEMO], &[]).unwrap();
        let mut out = Vec::new();
        let summary = run_benches(&selected, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(summary.line(), "1 passed, 0 failed");
        let read = text.lines().find(|l| l.contains(" read ")).unwrap();
        assert!(read.ends_with("0.50"), "{read}");
        let alone = text.lines().find(|l| l.contains("alone")).unwrap();
        assert!(alone.ends_with('-'), "{alone}");
    }

    #[test]
    fn registered_suites_have_unique_names() {
        let all = suites::ALL;
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
            for (j, t) in a.tests.iter().enumerate() {
                assert!(
                    a.tests[j + 1..].iter().all(|u| u.name != t.name),
                    "{}",
                    t.name
                );
            }
        }
    }
}
