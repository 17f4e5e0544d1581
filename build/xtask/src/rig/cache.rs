//! The rig's cache directory (outside the source tree), its lock, and the
//! per-step progress lines of `setup`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Environment variable that sets how many rig VMs may run at once.
pub const MAX_BOOTS_ENV: &str = "XENPV_RIG_MAX_BOOTS";
/// Environment variable that moves the cache.
pub const CACHE_ENV: &str = "XENPV_RIG_CACHE";
/// Default cache location (about 1 GB).
pub const DEFAULT_CACHE: &str = "/var/tmp/xenpv-rig";

/// The cache directory and the paths of what `setup` puts there.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Root of the cache.
    pub dir: PathBuf,
}

impl Cache {
    /// The cache named by `$XENPV_RIG_CACHE`, else [`DEFAULT_CACHE`]; created if missing.
    pub fn locate() -> Result<Self, String> {
        let dir =
            std::env::var_os(CACHE_ENV).map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from);
        for sub in ["", "logs", "runs", "debs"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        Ok(Self { dir })
    }

    /// The multiboot-loadable (uncompressed ELF) hypervisor.
    pub fn xen_elf(&self) -> PathBuf {
        self.dir.join("xen/xen.elf")
    }

    /// The extracted kernel package (`boot/vmlinuz-*`, `lib/modules/*`).
    pub fn kernel_dir(&self) -> PathBuf {
        self.dir.join("kernel")
    }

    /// The dom0 kernel image.
    /// (the uncompressed ELF `vmlinux` when it could be unpacked, else the bzImage).
    pub fn dom0_kernel(&self) -> PathBuf {
        self.dir.join("kernel/dom0-kernel")
    }

    /// The dom0 userland tarball from mmdebstrap.
    pub fn rootfs_tar(&self) -> PathBuf {
        self.dir.join("rootfs.tar")
    }

    /// The dom0 initramfs (uncompressed newc cpio).
    pub fn base_cpio(&self) -> PathBuf {
        self.dir.join("dom0-base.cpio")
    }

    /// The HVM add-on archive (uncompressed newc cpio appended to the
    /// initramfs of boots that create HVM domains).
    pub fn hvm_addon_cpio(&self) -> PathBuf {
        self.dir.join("hvm-addon.cpio")
    }

    /// Serial logs of every boot, and setup tool logs.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Per-boot scratch directories.
    pub fn runs(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Takes the cache lock (exclusive), waiting for another holder with a
    /// message. Held while anything in the cache is checked or rebuilt; boots
    /// need it only for that check, since every artifact is replaced by rename.
    pub fn lock(&self) -> Result<CacheLock, String> {
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            eprintln!(
                "rig: waiting for the cache lock {} (another rig setup is running)",
                path.display()
            );
            flock(&file, libc::LOCK_EX)
                .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        }
        Ok(CacheLock { _file: file })
    }
    /// Waits for one of the host's boot slots and holds it until dropped.
    ///
    /// Each TCG VM keeps up to two host threads busy; many more VMs than the host
    /// has cores only make every boot slower (past its timeouts), so boots queue
    /// here. Slots: `$XENPV_RIG_MAX_BOOTS`, else the host's CPU count (one slot
    /// per core was too strict for a team: short runs waited many minutes behind
    /// long benches).
    pub fn boot_slot(&self, interrupted: fn() -> bool) -> Result<CacheLock, String> {
        let slots = std::env::var(MAX_BOOTS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            })
            .max(1);
        let mut waiting_since: Option<Instant> = None;
        loop {
            for slot in 0..slots {
                let path = self.runs().join(format!("slot-{slot}.lock"));
                let file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
                    if let Some(since) = waiting_since {
                        eprintln!(
                            "rig: got a boot slot after {:.0} s",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(CacheLock { _file: file });
                }
            }
            if waiting_since.is_none() {
                eprintln!(
                    "rig: waiting for a boot slot: {slots} rig VM(s) already running \
                     (${MAX_BOOTS_ENV} sets the limit)"
                );
                waiting_since = Some(Instant::now());
            }
            if interrupted() {
                return Err("interrupted while waiting for a boot slot".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    loop {
        // SAFETY: flock on a descriptor `file` keeps open; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Holds the cache lock until dropped (closing the file releases the flock).
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// True if `stamp` holds exactly `key` and every path in `outputs` exists.
pub fn up_to_date(stamp: &Path, key: &str, outputs: &[&Path]) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s == key) && outputs.iter().all(|p| p.exists())
}

/// Records that the outputs of a step were built from `key`.
pub fn write_stamp(stamp: &Path, key: &str) -> Result<(), String> {
    fs::write(stamp, key).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// Runs one setup step, printing its name before and its duration after.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    eprintln!("rig: {name} ...");
    let start = Instant::now();
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("rig: {name}: done in {secs:.1} s"),
        Err(_) => eprintln!("rig: {name}: FAILED after {secs:.1} s"),
    }
    result
}

/// 64-bit FNV-1a, for cache keys over file contents (stable across toolchains,
/// unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn stamps_compare_exactly() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let stamp = dir.join("x.key");
        assert!(!up_to_date(&stamp, "k1", &[]));
        write_stamp(&stamp, "k1").unwrap();
        assert!(up_to_date(&stamp, "k1", &[&dir]));
        assert!(!up_to_date(&stamp, "k2", &[&dir]));
        assert!(!up_to_date(&stamp, "k1", &[&dir.join("missing")]));
        fs::remove_dir_all(&dir).unwrap();
    }
}
