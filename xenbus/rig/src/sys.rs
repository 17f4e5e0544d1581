//! The Linux user-space ABI of `/dev/xen/{evtchn,gntalloc,gntdev}`: ioctl numbers
//! and argument layouts, from Linux's `include/uapi/xen/{evtchn,gntalloc,gntdev}.h`.
//!
//! Every number is built the way the headers build it (`_IOC(_IOC_NONE, type, nr,
//! sizeof(arg))`), and the tests pin both the numbers and the struct layouts to the
//! values the C headers give on x86_64.

use core::mem::size_of;

/// `_IOC_NONE`: the ioctl copies nothing by the generic code (these drivers copy
/// their arguments themselves).
const IOC_NONE: u32 = 0;
/// Bit positions of `_IOC`'s fields (asm-generic/ioctl.h, as on x86).
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
/// `_IOC_SIZEBITS`: 14 bits of argument size.
const IOC_SIZEMASK: usize = (1 << 14) - 1;

/// `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size <= IOC_SIZEMASK, "ioctl argument too large for _IOC");
    #[allow(clippy::cast_possible_truncation, reason = "size <= 14 bits, asserted")]
    let size = size as u32;
    (dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
        | (size << IOC_SIZESHIFT)
}

// ---- /dev/xen/evtchn (uapi/xen/evtchn.h) ----

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    /// `remote_domain`.
    pub remote_domain: u32,
    /// `remote_port`.
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindUnboundPort {
    /// `remote_domain`: the domain allowed to bind the new port.
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (one port each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnPort {
    /// `port`.
    pub port: u32,
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: binds a local port to a remote domain's
/// unbound port; returns the local port.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 =
    ioc(IOC_NONE, b'E', 1, size_of::<EvtchnBindInterdomain>());
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: allocates a port a remote domain may bind;
/// returns the local port.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 =
    ioc(IOC_NONE, b'E', 2, size_of::<EvtchnBindUnboundPort>());
/// `IOCTL_EVTCHN_UNBIND`: closes a port bound through this file.
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc(IOC_NONE, b'E', 3, size_of::<EvtchnPort>());
/// `IOCTL_EVTCHN_NOTIFY`: signals a port's remote end.
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc(IOC_NONE, b'E', 4, size_of::<EvtchnPort>());

// ---- /dev/xen/gntalloc (uapi/xen/gntalloc.h) ----

/// `GNTALLOC_FLAG_WRITABLE`: the remote domain may map the pages writable.
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_alloc_gref` without its variable-length `gref_ids`
/// tail: the ioctl writes `count` `u32` references right after this header (at
/// offset 16), so callers pass a buffer of `GntallocAllocGref` followed by room
/// for `count` references (see [`gntalloc_alloc_buffer_words`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntallocAllocGrefHeader {
    /// `domid`: who may map the pages.
    pub domid: u16,
    /// `flags`: [`GNTALLOC_FLAG_WRITABLE`] or 0.
    pub flags: u16,
    /// `count`: pages to allocate.
    pub count: u32,
    /// `index` (out): the `mmap` offset of the new pages.
    pub index: u64,
}

/// `sizeof(struct ioctl_gntalloc_alloc_gref)`: the header plus one reference,
/// padded to 8 bytes. The ioctl number encodes this size.
const GNTALLOC_ALLOC_GREF_SIZE: usize = 24;

/// How many `u64` words a buffer for an `IOCTL_GNTALLOC_ALLOC_GREF` of `count`
/// pages needs (header, then `count` `u32` references; `u64` keeps it aligned),
/// or `None` on overflow.
pub fn gntalloc_alloc_buffer_words(count: usize) -> Option<usize> {
    let bytes = count
        .checked_mul(size_of::<u32>())?
        .checked_add(size_of::<GntallocAllocGrefHeader>())?
        .max(GNTALLOC_ALLOC_GREF_SIZE);
    Some(bytes.div_ceil(size_of::<u64>()))
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntallocDeallocGref {
    /// `index`: the offset `IOCTL_GNTALLOC_ALLOC_GREF` returned.
    pub index: u64,
    /// `count`: pages to release.
    pub count: u32,
}

/// `IOCTL_GNTALLOC_ALLOC_GREF`: allocates pages, grants them, returns the
/// references and an `mmap` offset.
pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc(IOC_NONE, b'G', 5, GNTALLOC_ALLOC_GREF_SIZE);
/// `IOCTL_GNTALLOC_DEALLOC_GREF`: ends the grants; the pages go once unmapped
/// (the kernel defers the free while the remote domain still maps one).
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 =
    ioc(IOC_NONE, b'G', 6, size_of::<GntallocDeallocGref>());

// ---- /dev/xen/gntdev (uapi/xen/gntdev.h) ----

/// `struct ioctl_gntdev_grant_ref`: one foreign grant to map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevGrantRef {
    /// `domid`: the granting domain.
    pub domid: u32,
    /// `ref`: its grant reference.
    pub gref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` without its variable-length `refs` tail
/// (`count` [`GntdevGrantRef`]s follow at offset 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevMapGrantRefHeader {
    /// `count`: grants to map.
    pub count: u32,
    /// `pad`.
    pub pad: u32,
    /// `index` (out): the `mmap` offset of the mapping.
    pub index: u64,
}

/// `sizeof(struct ioctl_gntdev_map_grant_ref)`: header plus one reference.
const GNTDEV_MAP_GRANT_REF_SIZE: usize = 24;

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GntdevUnmapGrantRef {
    /// `index`: the offset `IOCTL_GNTDEV_MAP_GRANT_REF` returned.
    pub index: u64,
    /// `count`: pages.
    pub count: u32,
    /// `pad`.
    pub pad: u32,
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`: reserves an `mmap` offset for foreign grants
/// (the mapping itself happens at `mmap`).
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc(IOC_NONE, b'G', 0, GNTDEV_MAP_GRANT_REF_SIZE);
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`: releases the offset (after `munmap`).
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 =
    ioc(IOC_NONE, b'G', 1, size_of::<GntdevUnmapGrantRef>());

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of};

    /// The numbers the C headers give on x86_64 (`printf("%#x", IOCTL_...)` with
    /// Linux's uapi headers).
    #[test]
    fn ioctl_numbers_match_the_c_headers() {
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705);
        assert_eq!(IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706);
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
    }

    #[test]
    fn ioc_places_each_field() {
        assert_eq!(ioc(0, 0, 0, 0), 0);
        assert_eq!(ioc(0, 0, 0xff, 0), 0xff);
        assert_eq!(ioc(0, 0xff, 0, 0), 0xff00);
        assert_eq!(ioc(0, 0, 0, IOC_SIZEMASK), 0x3fff_0000);
        assert_eq!(ioc(3, 0, 0, 0), 0xc000_0000);
    }

    #[test]
    fn layouts_match_the_c_headers() {
        assert_eq!(size_of::<EvtchnBindInterdomain>(), 8);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(size_of::<EvtchnBindUnboundPort>(), 4);
        assert_eq!(size_of::<EvtchnPort>(), 4);

        assert_eq!(size_of::<GntallocAllocGrefHeader>(), 16);
        assert_eq!(offset_of!(GntallocAllocGrefHeader, flags), 2);
        assert_eq!(offset_of!(GntallocAllocGrefHeader, count), 4);
        assert_eq!(offset_of!(GntallocAllocGrefHeader, index), 8);
        assert_eq!(align_of::<GntallocAllocGrefHeader>(), 8);
        assert_eq!(size_of::<GntallocDeallocGref>(), 16);

        assert_eq!(size_of::<GntdevGrantRef>(), 8);
        assert_eq!(offset_of!(GntdevGrantRef, gref), 4);
        assert_eq!(size_of::<GntdevMapGrantRefHeader>(), 16);
        assert_eq!(offset_of!(GntdevMapGrantRefHeader, index), 8);
        assert_eq!(size_of::<GntdevUnmapGrantRef>(), 16);
        assert_eq!(offset_of!(GntdevUnmapGrantRef, count), 8);
    }

    #[test]
    fn alloc_buffer_holds_header_and_refs() {
        // One page: the C struct's own size (24 bytes = 3 words).
        assert_eq!(gntalloc_alloc_buffer_words(1), Some(3));
        assert_eq!(gntalloc_alloc_buffer_words(0), Some(3));
        // 16 + 3 * 4 = 28 bytes -> 4 words.
        assert_eq!(gntalloc_alloc_buffer_words(3), Some(4));
        assert_eq!(gntalloc_alloc_buffer_words(usize::MAX), None);
    }
}
