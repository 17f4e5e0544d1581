//! Builds what `rig test|bench|demo` ship into dom0: the `rig-tests` binary
//! (static, so it runs whatever dom0's glibc) and the C helpers of
//! `build/rig-tests/c/*.c` (see the `rig-tests` crate docs for the convention).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::vm::{Payload, Shipped};

/// Where the programs land in dom0 (together, so helpers sit beside the binary).
pub const DOM0_DIR: &str = "/rig/files";
/// The test binary's name.
pub const BINARY: &str = "xenpv-rig-tests";
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The cargo target directory xtask's cargo uses.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// Builds the binary and the helpers; returns them as files to ship.
pub fn build(root: &Path) -> Result<Vec<Shipped>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    rustflags.push_str(" -C target-feature=+crt-static");
    eprintln!("rig: building {BINARY} (static, {TARGET})");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "rig-tests",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", rustflags.trim())
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("building rig-tests failed ({status})"));
    }
    let binary = target_dir(root).join(TARGET).join("release").join(BINARY);
    let mut files = vec![Shipped {
        dst: format!("{DOM0_DIR}/{BINARY}"),
        payload: Payload::Host(binary),
    }];
    let out = target_dir(root).join("rig-helpers");
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for source in c_sources(&root.join("build/rig-tests/c")) {
        let name = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: no name", source.display()))?;
        let text = fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        let program = out.join(&name);
        let status = Command::new("gcc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&program)
            .arg(&source)
            .args(link_flags(&text))
            .status()
            .map_err(|e| format!("cannot run gcc (cargo xtask rig setup installs it): {e}"))?;
        if !status.success() {
            return Err(format!("gcc {} failed ({status})", source.display()));
        }
        files.push(Shipped {
            dst: format!("{DOM0_DIR}/{name}"),
            payload: Payload::Host(program),
        });
    }
    files.push(super::guest_kernel::build(root, DOM0_DIR)?);
    Ok(files)
}

fn c_sources(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sources: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    sources
}

/// The flags of a first line `// link: FLAGS...`.
fn link_flags(source: &str) -> Vec<String> {
    source
        .lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("//"))
        .and_then(|l| l.trim().strip_prefix("link:"))
        .map(|flags| flags.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// True for the runner's closing line `N passed, M failed`.
pub fn is_summary(line: &str) -> bool {
    let Some((passed, failed)) = line.split_once(" passed, ") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(passed) && failed.strip_suffix(" failed").is_some_and(digits)
}

/// The runner's result and table lines, relayed from the console.
pub fn is_runner_line(line: &str) -> bool {
    line.starts_with("ok   ")
        || line.starts_with("FAIL ")
        || line.starts_with("BENCH ")
        || is_summary(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_flags_come_from_the_first_line() {
        assert_eq!(
            link_flags("// link: -lxenstore -lxenctrl\nint x;"),
            ["-lxenstore", "-lxenctrl"]
        );
        assert!(link_flags("/* nothing */\n// link: -lm").is_empty());
    }

    #[test]
    fn summary_lines_are_recognised() {
        assert!(is_summary("10 passed, 0 failed"));
        assert!(is_summary("0 passed, 3 failed"));
        assert!(!is_summary("x passed, 0 failed"));
        assert!(!is_summary("10 passed, 0 failed!"));
        assert!(is_runner_line("ok   platform::x (1 ms)"));
        assert!(!is_runner_line("[  1.2] ok"));
    }
}
