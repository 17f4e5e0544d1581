//! TCG or KVM.
//!
//! Xen needs real VMX/SVM under it. Where `/dev/kvm` exists but the CPU shows
//! neither flag, KVM is a software backend (on the development host: `kvm_pvm`,
//! whose instruction emulator stops at Xen's CET probe `rdsspq` with "KVM internal
//! error. Suberror: 1"), so the rig uses TCG without trying. Only where VMX/SVM is
//! present does it probe once (a full boot under KVM running `true`) and remember
//! the answer in the cache, keyed by the host kernel. `XENPV_RIG_ACCEL=tcg|kvm`
//! overrides the decision.

use std::fs;
use std::time::Duration;

use super::cache::Cache;
use super::vm::{self, Accel, BootOptions, Mode};

/// Environment override.
pub const ACCEL_ENV: &str = "XENPV_RIG_ACCEL";

/// Decides how QEMU runs the machine (see the module docs).
pub fn choose(cache: &Cache, opts: &BootOptions) -> Result<Accel, String> {
    match std::env::var(ACCEL_ENV).as_deref() {
        Ok("tcg") => return Ok(Accel::Tcg),
        Ok("kvm") => return Ok(Accel::Kvm),
        Ok(other) => return Err(format!("{ACCEL_ENV}={other}: expected tcg or kvm")),
        Err(_) => {}
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        return Ok(Accel::Tcg);
    }
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hardware = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !hardware || std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return Ok(Accel::Tcg);
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let record = cache.dir.join("accel-probe");
    if let Ok(text) = fs::read_to_string(&record) {
        match text.split_once(' ') {
            Some((kernel, "kvm")) if kernel == release.trim() => return Ok(Accel::Kvm),
            Some((kernel, "tcg")) if kernel == release.trim() => return Ok(Accel::Tcg),
            _ => {}
        }
    }
    eprintln!("rig: VMX/SVM present: probing once whether Xen boots under KVM (at most 60 s)");
    let probe = BootOptions {
        files: Vec::new(),
        share: None,
        timeout: Duration::from_secs(60),
        boot_timeout: Duration::from_secs(60),
        echo: false,
        relay: |_| false,
        log: Some(cache.logs().join("accel-probe.log")),
        accel: Some(Accel::Kvm),
        ..opts.clone()
    };
    let accel = match vm::boot(cache, &probe, &Mode::Run("true".into())) {
        Ok(outcome) if outcome.status == 0 => Accel::Kvm,
        _ => Accel::Tcg,
    };
    let word = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    eprintln!(
        "rig: accelerator: {word} (probe log {})",
        cache.logs().join("accel-probe.log").display()
    );
    fs::write(&record, format!("{} {word}", release.trim())).map_err(|e| e.to_string())?;
    Ok(accel)
}
