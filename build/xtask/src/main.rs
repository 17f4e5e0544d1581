//! `cargo xtask`: the project's task runner.
//!
//! * `cargo xtask test`: formatting, clippy (`-D warnings`), every unit test of the
//!   workspace, then every rig suite in the real Xen rig: what CI runs.
//! * `cargo xtask rig ...`: the Xen rig (see [`rig`]).

mod fuzz;
mod rig;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("rig") => return rig::main(workspace_root(), &args[1..]),
        Some("fuzz") => fuzz::run(&workspace_root(), &args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test    cargo fmt --check, clippy -D warnings, all unit and conformance tests,
          then every rig suite in the Xen rig (needs root; see `cargo xtask rig`)
  rig     the Xen rig: setup, run, shell, selftest, test, bench, demo
          (`cargo xtask rig help`)
  fuzz    run every cargo-fuzz target N seconds (default 30), report findings
          (`cargo xtask fuzz --help`; not part of `test`)
";

/// Runs `cargo` with `args` in the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The workspace root: two levels above this crate.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), std::path::Path::to_path_buf)
}

fn test() -> Result<(), String> {
    let start = std::time::Instant::now();
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    println!("xtask: rig test (all suites, one boot of the Xen rig)");
    rig::test_all(workspace_root())?;
    println!(
        "xtask: all tests passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
