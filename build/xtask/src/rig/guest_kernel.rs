//! Builds the freestanding test kernel (`xenbus/guest-kernel`, suites
//! `guest` as PVH and `guest-hvm` as HVM firmware) that `rig test` ships
//! beside the test runner.
//!
//! It is an ordinary `x86_64-unknown-linux-gnu` binary of the workspace built
//! with `--features kernel` and the flags that make it freestanding: static
//! relocation model (linked at 1 MiB by its own linker script), no red zone
//! (interrupts run on the kernel stack), and `panic=abort` (no unwinder). Its
//! own target directory keeps those flags from invalidating the host build.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::vm::{Payload, Shipped};

/// The kernel's name, in the target directory and beside the runner in dom0.
pub const KERNEL: &str = "xenbus-guest-kernel";
const TARGET: &str = "x86_64-unknown-linux-gnu";
const RUSTFLAGS: &str = "-C relocation-model=static -C no-redzone=yes -C panic=abort";

fn target_dir(root: &Path) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    base.join("guest-kernel")
}

/// Builds the kernel; returns it as a file to ship to `dom0_dir`.
pub fn build(root: &Path, dom0_dir: &str) -> Result<Shipped, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = target_dir(root);
    eprintln!("rig: building {KERNEL} (freestanding PVH/HVM kernel)");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            KERNEL,
            "--features",
            "kernel",
            "--bin",
            KERNEL,
        ])
        .args(["--target", TARGET])
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &dir)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("building {KERNEL} failed ({status})"));
    }
    Ok(Shipped {
        dst: format!("{dom0_dir}/{KERNEL}"),
        payload: Payload::Host(dir.join(TARGET).join("release").join(KERNEL)),
    })
}
