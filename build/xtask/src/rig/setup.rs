//! `cargo xtask rig setup`: host packages, the pinned Xen and kernel packages
//! (downloaded and unpacked, never installed), the dom0 userland and initramfs.
//! Idempotent: each step records the key of its inputs beside its output and is
//! skipped while that key matches.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::cache::{self, Cache};
use super::pins;

/// The dom0 `/init`, embedded so the built rig never reads the source tree.
pub const DOM0_INIT: &str = include_str!("../../rig/dom0-init.sh");

/// Brings the cache up to date (under the cache lock).
pub fn ensure(cache: &Cache) -> Result<(), String> {
    need_root()?;
    let _lock = cache.lock()?;
    let start = Instant::now();
    let mut worked = false;
    worked |= host_packages(cache)?;
    worked |= hypervisor(cache)?;
    worked |= kernel(cache)?;
    worked |= rootfs(cache)?;
    worked |= initramfs(cache)?;
    if worked {
        eprintln!(
            "rig: setup complete in {:.1} s (cache {})",
            start.elapsed().as_secs_f64(),
            cache.dir.display()
        );
    }
    Ok(())
}

fn need_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        Ok(())
    } else {
        Err("the rig needs root (apt-get, mmdebstrap, device nodes in the initramfs)".into())
    }
}

/// Runs `command`, its output going to `log` (the tail is shown on failure).
fn run_logged(command: &mut Command, log: &Path) -> Result<(), String> {
    let shown = format!("{command:?}");
    let file =
        fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({status}); its output is in {}:\n{}",
            log.display(),
            tail(log, 15)
        ))
    }
}

/// The last `n` lines of a text file (lossy), for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn run_quiet(command: &mut Command) -> Result<String, String> {
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

/// Installs the missing [`pins::HOST_PACKAGES`]; returns whether it did anything.
fn host_packages(cache: &Cache) -> Result<bool, String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Status}\n"])
        .args(pins::HOST_PACKAGES)
        .output()
        .map_err(|e| format!("cannot run dpkg-query (is this Debian?): {e}"))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> = pins::HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !listing
                .lines()
                .any(|l| l.starts_with(&format!("{p} ")) && l.ends_with(" installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    cache::step(&format!("apt-get install {}", missing.join(" ")), || {
        let log = cache.logs().join("setup-apt-get.log");
        let install = || {
            run_logged(
                Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(&missing),
                &log,
            )
        };
        install().or_else(|_| {
            eprintln!("rig: apt-get install failed; apt-get update and retry");
            run_logged(
                Command::new("apt-get").arg("update"),
                &cache.logs().join("setup-apt-update.log"),
            )?;
            install()
        })
    })?;
    Ok(true)
}

/// `apt-get download`s `package` into a fresh directory and returns the .deb's path;
/// a version the archive no longer has gives a message naming the pin to bump.
fn download(cache: &Cache, package: pins::Package) -> Result<PathBuf, String> {
    let dir = cache.dir.join("debs").join(package.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = cache
        .logs()
        .join(format!("setup-download-{}.log", package.name));
    let fetch = || {
        run_logged(
            Command::new("apt-get")
                .arg("download")
                .arg(package.spec())
                .current_dir(&dir),
            &log,
        )
    };
    if fetch().is_err() {
        // Maybe only the package lists are stale.
        run_logged(
            Command::new("apt-get").arg("update"),
            &cache.logs().join("setup-apt-update.log"),
        )?;
        if let Err(e) = fetch() {
            let policy = run_quiet(Command::new("apt-cache").args(["policy", package.name]))
                .unwrap_or_default();
            let candidate = policy
                .lines()
                .find_map(|l| l.trim().strip_prefix("Candidate: "))
                .unwrap_or("(none)");
            return Err(format!(
                "the Debian archive no longer offers {} (candidate now: {candidate}).\n\
                 Bump the pin in build/xtask/src/rig/pins.rs, then run `cargo xtask rig setup` \
                 and `cargo xtask rig selftest`.\n{e}",
                package.spec()
            ));
        }
    }
    let deb = fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            format!(
                "apt-get download {} left no .deb in {}",
                package.spec(),
                dir.display()
            )
        })?;
    Ok(deb)
}

/// Replaces directory `to` with `from` (rename; `to` removed first).
fn replace_dir(from: &Path, to: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(to);
    fs::rename(from, to)
        .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
}

fn hypervisor(cache: &Cache) -> Result<bool, String> {
    let dir = cache.dir.join("xen");
    let stamp = cache.dir.join("xen.key");
    let key = pins::XEN_HYPERVISOR.spec();
    if cache::up_to_date(&stamp, &key, &[&cache.xen_elf()]) {
        return Ok(false);
    }
    cache::step(&format!("download and unpack {key}"), || {
        let deb = download(cache, pins::XEN_HYPERVISOR)?;
        let tmp = cache.dir.join("xen.tmp");
        let _ = fs::remove_dir_all(&tmp);
        run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        // QEMU's multiboot loader takes the uncompressed 32-bit ELF, not the .gz.
        let elf = fs::File::create(tmp.join("xen.elf")).map_err(|e| e.to_string())?;
        let status = Command::new("zcat")
            .arg(tmp.join(pins::XEN_IMAGE))
            .stdout(elf)
            .status()
            .map_err(|e| format!("cannot run zcat: {e}"))?;
        if !status.success() {
            return Err(format!("zcat {} failed ({status})", pins::XEN_IMAGE));
        }
        replace_dir(&tmp, &dir)?;
        cache::write_stamp(&stamp, &key)
    })?;
    Ok(true)
}

/// The kernel release (`lib/modules/<release>`) of the unpacked kernel.
pub fn kernel_release(cache: &Cache) -> Result<String, String> {
    let modules = cache.kernel_dir().join("lib/modules");
    fs::read_dir(&modules)
        .map_err(|e| format!("{}: {e}", modules.display()))?
        .filter_map(Result::ok)
        .find_map(|e| e.file_name().into_string().ok())
        .ok_or_else(|| format!("no kernel release under {}", modules.display()))
}

fn kernel(cache: &Cache) -> Result<bool, String> {
    let stamp = cache.dir.join("kernel.key");
    let key = format!("{} unpacked-elf", pins::KERNEL.spec());
    if cache::up_to_date(&stamp, &key, &[&cache.dom0_kernel()]) {
        return Ok(false);
    }
    cache::step(&format!("download and unpack {key}"), || {
        let deb = download(cache, pins::KERNEL)?;
        let tmp = cache.dir.join("kernel.tmp");
        let _ = fs::remove_dir_all(&tmp);
        run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        let image = fs::read_dir(tmp.join("boot"))
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .find(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            .ok_or("no boot/vmlinuz-* in the kernel package")?;
        let bzimage = fs::read(tmp.join("boot").join(&image)).map_err(|e| e.to_string())?;
        let kernel = match unpack_vmlinux(&bzimage, &tmp) {
            Ok(elf) => elf,
            Err(why) => {
                eprintln!("rig: keeping the bzImage ({why}); Xen will decompress it at every boot");
                bzimage
            }
        };
        fs::write(tmp.join("dom0-kernel"), kernel).map_err(|e| e.to_string())?;
        replace_dir(&tmp, &cache.kernel_dir())?;
        let release = kernel_release(cache)?;
        run_quiet(
            Command::new("depmod")
                .arg("-b")
                .arg(cache.kernel_dir())
                .arg(&release),
        )?;
        cache::write_stamp(&stamp, &key)
    })?;
    Ok(true)
}

/// The ELF `vmlinux` inside a bzImage.
///
/// Xen decompresses a bzImage's payload itself when it builds dom0, which under
/// TCG costs about 3 s of every boot; unpacking it once here saves that. The
/// payload's place is in the boot protocol header (`payload_offset` and
/// `payload_length`, protocol 2.08+); its compressor is told by its magic. The
/// kernel appends the uncompressed size to the stream, which some tools call
/// trailing garbage, so success is judged by the output being an ELF file.
fn unpack_vmlinux(bzimage: &[u8], scratch: &Path) -> Result<Vec<u8>, String> {
    let u32_at = |at: usize| -> Option<usize> {
        let bytes = bzimage.get(at..at + 4)?;
        usize::try_from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).ok()
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("not a bzImage".into());
    }
    let setup_sectors = match bzimage.get(0x1f1) {
        Some(0) => 4,
        Some(n) => usize::from(*n),
        None => return Err("truncated header".into()),
    };
    let (offset, length) = u32_at(0x248).zip(u32_at(0x24c)).ok_or("truncated header")?;
    let start = (setup_sectors + 1) * 512 + offset;
    let payload = bzimage
        .get(start..start + length)
        .ok_or("payload outside the image")?;
    let tool: &[&str] = match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => &["xz", "-dc", "--single-stream"],
        [0x28, 0xb5, 0x2f, 0xfd, ..] => &["zstd", "-dcq"],
        [0x1f, 0x8b, ..] => &["gzip", "-dc"],
        _ => return Err("unknown payload compression".into()),
    };
    let compressed = scratch.join("payload");
    fs::write(&compressed, payload).map_err(|e| e.to_string())?;
    let input = fs::File::open(&compressed).map_err(|e| e.to_string())?;
    let output = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(input)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool[0]))?;
    let _ = fs::remove_file(&compressed);
    if output.stdout.starts_with(b"\x7fELF") && output.stdout.len() > payload.len() {
        Ok(output.stdout)
    } else {
        Err(format!("{} did not give an ELF file", tool.join(" ")))
    }
}

/// `pkg=version,...` for mmdebstrap's `--include`.
fn dom0_include() -> String {
    pins::DOM0_PACKAGES
        .iter()
        .map(|(name, version)| {
            version.map_or_else(|| (*name).to_string(), |v| format!("{name}={v}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn rootfs_key() -> String {
    format!("{} {} {}", pins::SUITE, pins::MIRROR, dom0_include())
}

fn rootfs(cache: &Cache) -> Result<bool, String> {
    let stamp = cache.dir.join("rootfs.key");
    let key = rootfs_key();
    if cache::up_to_date(&stamp, &key, &[&cache.rootfs_tar()]) {
        return Ok(false);
    }
    cache::step("mmdebstrap the dom0 userland (about 30-60 s)", || {
        let tmp = cache.dir.join("rootfs.tar.tmp");
        let mut command = Command::new("mmdebstrap");
        command
            .args(["--variant=essential", "--format=tar"])
            .arg(format!("--include={}", dom0_include()));
        for excluded in ["doc", "man", "locale", "info"] {
            command.arg(format!("--dpkgopt=path-exclude=/usr/share/{excluded}/*"));
        }
        command
            .args([pins::SUITE])
            .arg(&tmp)
            .args([pins::MIRROR, pins::SECURITY_SOURCE]);
        run_logged(&mut command, &cache.logs().join("setup-mmdebstrap.log")).map_err(|e| {
            format!("{e}\n(a pinned dom0 package version that the archive no longer has shows up above as \"Version ... was not found\"; bump it in build/xtask/src/rig/pins.rs)")
        })?;
        fs::rename(&tmp, cache.rootfs_tar()).map_err(|e| e.to_string())?;
        cache::write_stamp(&stamp, &key)
    })?;
    Ok(true)
}

fn initramfs_key() -> String {
    format!(
        "rootfs[{}] kernel[{}] modules[{}] trim[{}] init[{:016x}]",
        rootfs_key(),
        pins::KERNEL.spec(),
        pins::DOM0_MODULES.join(","),
        pins::DOM0_TRIM.join(","),
        cache::fnv1a(DOM0_INIT.as_bytes())
    )
}

fn initramfs(cache: &Cache) -> Result<bool, String> {
    let stamp = cache.dir.join("dom0-base.key");
    let key = initramfs_key();
    if cache::up_to_date(&stamp, &key, &[&cache.base_cpio()]) {
        return Ok(false);
    }
    cache::step("build the dom0 initramfs", || {
        let root = cache.dir.join("root.tmp");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        run_quiet(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-xf")
                .arg(cache.rootfs_tar()),
        )?;
        for path in pins::DOM0_TRIM {
            let path = root.join(path);
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
        copy_modules(cache, &root)?;
        let init = root.join("init");
        fs::write(&init, DOM0_INIT).map_err(|e| e.to_string())?;
        run_quiet(Command::new("chmod").arg("0755").arg(&init))?;
        for dir in ["rig/files", "mnt/host", "proc/xen"] {
            fs::create_dir_all(root.join(dir)).map_err(|e| e.to_string())?;
        }
        fs::write(root.join("etc/hostname"), "dom0\n").map_err(|e| e.to_string())?;
        // Uncompressed on purpose: under TCG the kernel unpacks it about 2 s faster.
        let tmp = cache.dir.join("dom0-base.cpio.tmp");
        let out = fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let status = Command::new("sh")
            .args(["-c", "find . -print0 | cpio --null -o -H newc --quiet"])
            .current_dir(&root)
            .stdout(out)
            .status()
            .map_err(|e| format!("cannot run cpio: {e}"))?;
        if !status.success() {
            return Err(format!("cpio failed ({status})"));
        }
        fs::rename(&tmp, cache.base_cpio()).map_err(|e| e.to_string())?;
        let _ = fs::remove_dir_all(&root);
        let size = fs::metadata(cache.base_cpio()).map_or(0, |m| m.len());
        eprintln!("rig: initramfs {} MB", size / 1_000_000);
        cache::write_stamp(&stamp, &key)
    })?;
    Ok(true)
}

fn hvm_addon_key() -> String {
    let packages: Vec<String> = pins::HVM_ADDON_PACKAGES
        .iter()
        .map(|(name, version)| {
            version.map_or_else(|| (*name).to_string(), |v| format!("{name}={v}"))
        })
        .collect();
    format!(
        "rootfs[{}] addon[{}] trim[{}]",
        rootfs_key(),
        packages.join(","),
        pins::HVM_ADDON_TRIM.join(",")
    )
}

/// Brings the HVM add-on ([`pins::HVM_ADDON_PACKAGES`]) up to date (under the
/// cache lock; after [`ensure`]): a second mmdebstrap of the dom0 userland
/// plus those packages, of which only the paths the base userland lacks are
/// packed (and `etc/ld.so.cache`, which then knows the new libraries).
pub fn ensure_hvm_addon(cache: &Cache) -> Result<(), String> {
    need_root()?;
    let _lock = cache.lock()?;
    let stamp = cache.dir.join("hvm-addon.key");
    let key = hvm_addon_key();
    if cache::up_to_date(&stamp, &key, &[&cache.hvm_addon_cpio()]) {
        return Ok(());
    }
    cache::step(
        "mmdebstrap the HVM add-on (qemu-system-xen, SeaBIOS; about 40-90 s)",
        || {
            let tar = cache.dir.join("rootfs-hvm.tar.tmp");
            let mut command = Command::new("mmdebstrap");
            let include: Vec<String> = pins::HVM_ADDON_PACKAGES
                .iter()
                .map(|(name, version)| {
                    version.map_or_else(|| (*name).to_string(), |v| format!("{name}={v}"))
                })
                .collect();
            command
                .args(["--variant=essential", "--format=tar"])
                .arg(format!(
                    "--include={},{}",
                    dom0_include(),
                    include.join(",")
                ));
            for excluded in ["doc", "man", "locale", "info"] {
                command.arg(format!("--dpkgopt=path-exclude=/usr/share/{excluded}/*"));
            }
            command
                .args([pins::SUITE])
                .arg(&tar)
                .args([pins::MIRROR, pins::SECURITY_SOURCE]);
            run_logged(&mut command, &cache.logs().join("setup-mmdebstrap-hvm.log")).map_err(|e| {
            format!("{e}\n(a pinned add-on package version that the archive no longer has shows up above as \"Version ... was not found\"; bump it in build/xtask/src/rig/pins.rs)")
        })?;
            let list = |path: &Path| -> Result<std::collections::BTreeSet<String>, String> {
                let out = run_quiet(Command::new("tar").arg("-tf").arg(path))?;
                Ok(out
                    .lines()
                    .map(|l| l.trim_end_matches('/').to_string())
                    .collect())
            };
            let base = list(&cache.rootfs_tar())?;
            let trimmed = |p: &str| {
                let p = p.trim_start_matches("./");
                pins::HVM_ADDON_TRIM
                    .iter()
                    .any(|t| p == *t || p.starts_with(&format!("{t}/")))
            };
            let mut extra: Vec<String> = list(&tar)?
                .into_iter()
                .filter(|p| !base.contains(p) && !trimmed(p))
                .collect();
            extra.push("./etc/ld.so.cache".into());
            let root = cache.dir.join("hvm-addon.tmp");
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root).map_err(|e| e.to_string())?;
            let names = cache.dir.join("hvm-addon.list");
            fs::write(&names, extra.join("\n") + "\n").map_err(|e| e.to_string())?;
            run_quiet(
                Command::new("tar")
                    .arg("-C")
                    .arg(&root)
                    .arg("--no-recursion")
                    .arg("-xf")
                    .arg(&tar)
                    .arg("-T")
                    .arg(&names),
            )?;
            let out_tmp = cache.dir.join("hvm-addon.cpio.tmp");
            let out = fs::File::create(&out_tmp).map_err(|e| e.to_string())?;
            let status = Command::new("sh")
                .args([
                    "-c",
                    "find . -mindepth 1 -print0 | cpio --null -o -H newc --quiet",
                ])
                .current_dir(&root)
                .stdout(out)
                .status()
                .map_err(|e| format!("cannot run cpio: {e}"))?;
            if !status.success() {
                return Err(format!("cpio failed ({status})"));
            }
            fs::rename(&out_tmp, cache.hvm_addon_cpio()).map_err(|e| e.to_string())?;
            let _ = fs::remove_dir_all(&root);
            let _ = fs::remove_file(&names);
            let _ = fs::remove_file(&tar);
            let size = fs::metadata(cache.hvm_addon_cpio()).map_or(0, |m| m.len());
            eprintln!(
                "rig: HVM add-on {} paths, {} MB",
                extra.len(),
                size / 1_000_000
            );
            cache::write_stamp(&stamp, &key)
        },
    )
}

/// Copies [`pins::DOM0_MODULES`] and their dependencies into `root`, then runs depmod.
fn copy_modules(cache: &Cache, root: &Path) -> Result<(), String> {
    let kernel = cache.kernel_dir();
    let release = kernel_release(cache)?;
    let modules = format!("lib/modules/{release}");
    fs::create_dir_all(root.join(&modules)).map_err(|e| e.to_string())?;
    for file in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(
            kernel.join(&modules).join(file),
            root.join(&modules).join(file),
        )
        .map_err(|e| format!("{modules}/{file}: {e}"))?;
    }
    for module in pins::DOM0_MODULES {
        let deps = run_quiet(Command::new("modprobe").arg("-d").arg(&kernel).args([
            "-S",
            &release,
            "--show-depends",
            module,
        ]))?;
        for line in deps.lines() {
            // "insmod /path/to/module.ko[.xz] [args]"; "builtin foo" needs nothing.
            let Some(path) = line
                .strip_prefix("insmod ")
                .and_then(|rest| rest.split_whitespace().next())
            else {
                continue;
            };
            let relative = Path::new(path)
                .strip_prefix(&kernel)
                .map_err(|_| format!("modprobe named {path} outside {}", kernel.display()))?;
            let target = root.join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            fs::copy(path, &target).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    run_quiet(Command::new("depmod").arg("-b").arg(root).arg(&release)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: 4 setup sectors (`setup_sects` = 0), the "HdrS" magic,
    /// and a gzip payload right after the setup code, followed by the 4-byte size
    /// the kernel build appends.
    fn fake_bzimage(elf: &[u8]) -> Vec<u8> {
        let mut gzip = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut gzip.stdin.take().unwrap(), elf).unwrap();
        let mut payload = gzip.wait_with_output().unwrap().stdout;
        let length = u32::try_from(payload.len()).unwrap();
        payload.extend_from_slice(&u32::try_from(elf.len()).unwrap().to_le_bytes());
        let mut image = vec![0u8; 5 * 512];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&length.to_le_bytes());
        image.extend_from_slice(&payload);
        image
    }

    #[test]
    fn vmlinux_comes_out_of_a_bzimage() {
        let mut elf = b"\x7fELF".to_vec();
        elf.extend((0..20_000u32).map(|i| (i % 251) as u8));
        let scratch = std::env::temp_dir().join(format!("xtask-bz-{}", std::process::id()));
        fs::create_dir_all(&scratch).unwrap();
        let unpacked = unpack_vmlinux(&fake_bzimage(&elf), &scratch);
        fs::remove_dir_all(&scratch).unwrap();
        assert_eq!(unpacked.unwrap(), elf);
    }

    #[test]
    fn non_bzimages_are_refused() {
        let scratch = std::env::temp_dir();
        assert!(unpack_vmlinux(b"not a kernel", &scratch).is_err());
        let mut image = fake_bzimage(b"\x7fELF");
        image[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack_vmlinux(&image, &scratch).is_err());
    }
}
