//! Everything the rig takes from Debian, pinned in one place.
//!
//! The versions are what `apt-cache policy` offered when they were last bumped.
//! Debian's security archive keeps only the newest build of a package, so a pin
//! eventually disappears: `cargo xtask rig setup` then fails naming the pin and
//! the version the archive offers now. Bump it here (and nowhere else), then run
//! `cargo xtask rig setup` and `cargo xtask rig selftest`.

/// Debian release of the dom0 userland (and of the hypervisor and kernel packages).
pub const SUITE: &str = "bookworm";
/// Main archive for `mmdebstrap`.
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Security archive (the pinned Xen and kernel builds come from there).
pub const SECURITY_SOURCE: &str =
    "deb http://deb.debian.org/debian-security bookworm-security main";

/// A Debian binary package at an exact version.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// Package name.
    pub name: &'static str,
    /// Exact Debian version.
    pub version: &'static str,
}

impl Package {
    /// `name=version`, as apt-get takes it.
    pub fn spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

/// Version of every Xen package (hypervisor, tools, xenstored, libraries).
pub const XEN_VERSION: &str = "4.17.7+13-g2445b30a44-0+deb12u1";

/// The hypervisor (only `apt-get download`ed, never installed on the host).
pub const XEN_HYPERVISOR: Package = Package {
    name: "xen-hypervisor-4.17-amd64",
    version: XEN_VERSION,
};
/// Compressed hypervisor image inside [`XEN_HYPERVISOR`].
pub const XEN_IMAGE: &str = "boot/xen-4.17-amd64.gz";

/// The dom0 kernel (only `apt-get download`ed, never installed on the host).
pub const KERNEL: Package = Package {
    name: "linux-image-6.1.0-56-amd64",
    version: "6.1.192-2",
};

/// Host packages the rig needs (QEMU, the initramfs tools, and gcc + Xen's
/// headers and libraries for the C helpers of `build/rig-tests/c`).
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "mmdebstrap",
    "cpio",
    "kmod",
    "gcc",
    "libc6-dev",
    "libxen-dev",
];

/// The dom0 userland: `(package, pinned version)`; unpinned packages follow the
/// release (bookworm is stable: they only get security fixes).
pub const DOM0_PACKAGES: &[(&str, Option<&str>)] = &[
    ("xen-utils-4.17", Some(XEN_VERSION)),
    ("xenstore-utils", Some(XEN_VERSION)),
    ("busybox", None),
    ("kmod", None),
    ("mount", None),
    ("iproute2", None),
    ("procps", None),
    ("util-linux", None),
    ("e2fsprogs", None),
    ("iputils-ping", None),
    ("strace", None),
    // benchmarks
    ("fio", None),
    ("iperf3", None),
    ("ethtool", None),
];

/// Kernel modules copied into the initramfs (with their dependencies); `/init`
/// loads the Xen ones, loop and bridge; the others are there for tests to load.
pub const DOM0_MODULES: &[&str] = &[
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xen-blkback",
    "xen-netback",
    "xen-blkfront",
    "xen-netfront",
    "loop",
    "bridge",
    "tun",
    "veth",
    "nbd",
    "ext4",
    "9p",
    "9pnet_virtio",
    "virtio_pci",
];

/// Paths removed from the dom0 root before packing it: unpacking the initramfs is
/// one of the slowest parts of a boot under TCG, and nothing in dom0 uses these
/// (python: only pygrub; perl: debconf; the PV shim: PVH guests).
pub const DOM0_TRIM: &[&str] = &[
    "usr/lib/python3",
    "usr/lib/python3.11",
    "usr/bin/python3",
    "usr/bin/python3.11",
    "usr/share/perl",
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/udev/hwdb.bin",
    "usr/lib/udev/hwdb.d",
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/lib/xen-4.17/boot/xen-shim",
    "var/cache/apt",
    "var/lib/apt/lists",
];

/// Version of QEMU's packages in the HVM add-on (the Xen build of the device
/// model and its firmware blobs come from the same source package).
pub const QEMU_VERSION: &str = "1:7.2+dfsg-7+deb12u18";

/// The HVM add-on (`rig test guest-hvm`, `rig run --hvm`): the device model
/// `xl create` starts for an HVM domain (`/usr/libexec/xen-qemu-system-i386`),
/// its option ROMs (`multiboot_dma.bin` boots our test kernel) and SeaBIOS.
/// hvmloader is already in `xen-utils-4.17`. Only the files these add to the
/// dom0 userland are packed, into a second archive that such boots append to
/// the initramfs; the base initramfs of every other boot stays as it is.
pub const HVM_ADDON_PACKAGES: &[(&str, Option<&str>)] = &[
    ("qemu-system-xen", Some("1:7.2+dfsg-7+deb12u18+b3")),
    ("qemu-system-data", Some(QEMU_VERSION)),
    ("seabios", Some("1.16.2-1")),
    ("ipxe-qemu", Some("1.0.0+git-20190125.36a4c85-5.1")),
];

/// Paths of the add-on's userland left out of it (large, and nothing the
/// device model of a test domain uses: it has no display and boots no
/// network ROM for other architectures).
pub const HVM_ADDON_TRIM: &[&str] = &[
    "usr/share/qemu/openbios-ppc",
    "usr/share/qemu/openbios-sparc32",
    "usr/share/qemu/openbios-sparc64",
    "usr/share/qemu/skiboot.lid",
    "usr/share/qemu/slof.bin",
    "usr/share/qemu/s390-ccw.img",
    "usr/share/qemu/s390-netboot.img",
    "usr/share/qemu/hppa-firmware.img",
    "usr/share/qemu/palcode-clipper",
    "usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin",
    "usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.elf",
];
