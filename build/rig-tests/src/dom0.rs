//! Thin wrappers over dom0's `/dev/xen/*` devices for tests: raw xenstore messages
//! on `/dev/xen/xenbus`, event channels on `/dev/xen/evtchn`, grants on
//! `/dev/xen/gntalloc` (give) and `/dev/xen/gntdev` (map). Each owns its file
//! descriptor or mapping and releases it on drop, so a failing test leaves dom0 clean.
//!
//! The ioctl numbers and layouts are Linux's `include/uapi/xen/{evtchn,gntalloc,gntdev}.h`
//! (`_IOC(_IOC_NONE, 'E'|'G', nr, size)`), checked against `/usr/include/xen/sys/*.h`.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

/// Size of a Xen page.
pub const PAGE_SIZE: usize = 4096;

/// `_IOC(_IOC_NONE, kind, nr, size)` on x86-64 Linux.
const fn ioc_none(kind: u8, nr: u8, size: usize) -> libc::c_ulong {
    // size < 2^14 for every struct used here; the shifts are Linux's _IOC layout.
    ((size as libc::c_ulong) << 16) | ((kind as libc::c_ulong) << 8) | nr as libc::c_ulong
}

fn open_rw(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))
}

/// Issues `ioctl(fd, request, arg)` on a `#[repr(C)]` argument struct.
fn ioctl<T>(file: &File, name: &str, request: libc::c_ulong, arg: &mut T) -> Result<i32, String> {
    // SAFETY: `file` is an open descriptor; `arg` is a live, exclusively borrowed
    // `#[repr(C)]` struct of exactly the size encoded in `request`, which the kernel
    // reads and writes only within that size.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, std::ptr::from_mut(arg)) };
    if rc < 0 {
        Err(format!("ioctl {name}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

// ---------------------------------------------------------------- xenstore

/// xenstore message types used here (xen/include/public/io/xs_wire.h).
pub mod xs {
    /// `XS_DIRECTORY`
    pub const DIRECTORY: u32 = 1;
    /// `XS_READ`
    pub const READ: u32 = 2;
    /// `XS_WRITE`
    pub const WRITE: u32 = 11;
    /// `XS_RM`
    pub const RM: u32 = 13;
    /// `XS_ERROR`
    pub const ERROR: u32 = 16;
}

/// A raw xenstore connection over `/dev/xen/xenbus` (the kernel relays whole
/// `xsd_sockmsg` messages to xenstored).
#[derive(Debug)]
pub struct Xenbus {
    file: File,
    next_id: u32,
}

impl Xenbus {
    /// Opens `/dev/xen/xenbus`.
    pub fn open() -> Result<Self, String> {
        Ok(Self {
            file: open_rw("/dev/xen/xenbus")?,
            next_id: 1,
        })
    }

    /// Sends one request (`payload` already NUL-separated) outside any transaction
    /// and returns the reply payload; an `XS_ERROR` reply is an `Err` with its text.
    pub fn request(&mut self, kind: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let len = u32::try_from(payload.len()).map_err(|_| "payload too long".to_string())?;
        let mut message = Vec::with_capacity(16 + payload.len());
        for word in [kind, id, 0, len] {
            message.extend_from_slice(&word.to_le_bytes());
        }
        message.extend_from_slice(payload);
        // The device wants a whole message per write.
        self.file
            .write_all(&message)
            .map_err(|e| format!("xenbus write: {e}"))?;
        let mut header = [0u8; 16];
        self.file
            .read_exact(&mut header)
            .map_err(|e| format!("xenbus read header: {e}"))?;
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (reply_kind, reply_id, reply_len) = (word(0), word(4), word(12));
        if reply_len > 4096 {
            return Err(format!("xenbus reply length {reply_len} > 4096"));
        }
        let mut body = vec![0u8; reply_len as usize];
        self.file
            .read_exact(&mut body)
            .map_err(|e| format!("xenbus read body: {e}"))?;
        if reply_id != id {
            return Err(format!("xenbus reply id {reply_id}, expected {id}"));
        }
        if reply_kind == xs::ERROR {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("xenstore error {}", text.trim_end_matches('\0')));
        }
        if reply_kind != kind {
            return Err(format!("xenbus reply type {reply_kind}, expected {kind}"));
        }
        Ok(body)
    }

    /// `XS_READ path`, as text (a trailing NUL, if any, removed).
    pub fn read(&mut self, path: &str) -> Result<String, String> {
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        let body = self.request(xs::READ, &payload)?;
        let text = String::from_utf8(body).map_err(|e| format!("read {path}: {e}"))?;
        Ok(text.trim_end_matches('\0').to_string())
    }

    /// `XS_WRITE path value`.
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(value.as_bytes());
        self.request(xs::WRITE, &payload).map(drop)
    }

    /// `XS_RM path`.
    pub fn remove(&mut self, path: &str) -> Result<(), String> {
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        self.request(xs::RM, &payload).map(drop)
    }
}

// ---------------------------------------------------------------- event channels

#[repr(C)]
struct BindUnbound {
    remote_domain: u32,
}
#[repr(C)]
struct BindInterdomain {
    remote_domain: u32,
    remote_port: u32,
}
#[repr(C)]
struct PortArg {
    port: u32,
}

const EVTCHN_BIND_INTERDOMAIN: libc::c_ulong = ioc_none(b'E', 1, size_of::<BindInterdomain>());
const EVTCHN_BIND_UNBOUND_PORT: libc::c_ulong = ioc_none(b'E', 2, size_of::<BindUnbound>());
const EVTCHN_UNBIND: libc::c_ulong = ioc_none(b'E', 3, size_of::<PortArg>());
const EVTCHN_NOTIFY: libc::c_ulong = ioc_none(b'E', 4, size_of::<PortArg>());

/// An open `/dev/xen/evtchn`; every port bound through it is closed on drop.
#[derive(Debug)]
pub struct Evtchn {
    file: File,
    bound: Vec<u32>,
}

impl Evtchn {
    /// Opens `/dev/xen/evtchn`.
    pub fn open() -> Result<Self, String> {
        Ok(Self {
            file: open_rw("/dev/xen/evtchn")?,
            bound: Vec::new(),
        })
    }

    /// Allocates an unbound port that `remote_domain` may bind to.
    pub fn bind_unbound(&mut self, remote_domain: u16) -> Result<u32, String> {
        let mut arg = BindUnbound {
            remote_domain: remote_domain.into(),
        };
        let port = ioctl(
            &self.file,
            "EVTCHN_BIND_UNBOUND_PORT",
            EVTCHN_BIND_UNBOUND_PORT,
            &mut arg,
        )?;
        let port = u32::try_from(port).map_err(|_| format!("bad port {port}"))?;
        self.bound.push(port);
        Ok(port)
    }

    /// Binds a local port to `remote_port` of `remote_domain`.
    pub fn bind_interdomain(
        &mut self,
        remote_domain: u16,
        remote_port: u32,
    ) -> Result<u32, String> {
        let mut arg = BindInterdomain {
            remote_domain: remote_domain.into(),
            remote_port,
        };
        let port = ioctl(
            &self.file,
            "EVTCHN_BIND_INTERDOMAIN",
            EVTCHN_BIND_INTERDOMAIN,
            &mut arg,
        )?;
        let port = u32::try_from(port).map_err(|_| format!("bad port {port}"))?;
        self.bound.push(port);
        Ok(port)
    }

    /// Sends an event on `port`.
    pub fn notify(&self, port: u32) -> Result<(), String> {
        ioctl(
            &self.file,
            "EVTCHN_NOTIFY",
            EVTCHN_NOTIFY,
            &mut PortArg { port },
        )
        .map(drop)
    }

    /// Closes `port`.
    pub fn unbind(&mut self, port: u32) -> Result<(), String> {
        self.bound.retain(|p| *p != port);
        ioctl(
            &self.file,
            "EVTCHN_UNBIND",
            EVTCHN_UNBIND,
            &mut PortArg { port },
        )
        .map(drop)
    }

    /// Waits up to `timeout` for a pending port; returns it (and unmasks it again),
    /// or `None` on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<u32>, String> {
        let mut pollfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, count 1, it lives across the call.
        let rc = unsafe { libc::poll(&raw mut pollfd, 1, ms) };
        match rc {
            0 => return Ok(None),
            rc if rc < 0 => {
                return Err(format!("poll evtchn: {}", std::io::Error::last_os_error()));
            }
            _ => {}
        }
        let mut raw = [0u8; 4];
        self.file
            .read_exact(&mut raw)
            .map_err(|e| format!("read evtchn: {e}"))?;
        // Writing the port back unmasks it (the device masks a port once it fires).
        self.file
            .write_all(&raw)
            .map_err(|e| format!("unmask evtchn: {e}"))?;
        Ok(Some(u32::from_ne_bytes(raw)))
    }
}

impl Drop for Evtchn {
    fn drop(&mut self) {
        for port in std::mem::take(&mut self.bound) {
            // Closing the file would unbind too; be explicit anyway.
            let _ = ioctl(
                &self.file,
                "EVTCHN_UNBIND",
                EVTCHN_UNBIND,
                &mut PortArg { port },
            );
        }
    }
}

// ---------------------------------------------------------------- grants

#[repr(C)]
struct GntallocAlloc {
    domid: u16,
    flags: u16,
    count: u32,
    index: u64,
    gref_ids: [u32; 1],
}
#[repr(C)]
struct GntallocDealloc {
    index: u64,
    count: u32,
}
#[repr(C)]
struct GntdevGrantRef {
    domid: u32,
    reference: u32,
}
#[repr(C)]
struct GntdevMap {
    count: u32,
    pad: u32,
    index: u64,
    refs: [GntdevGrantRef; 1],
}
#[repr(C)]
struct GntdevUnmap {
    index: u64,
    count: u32,
    pad: u32,
}

const GNTALLOC_ALLOC_GREF: libc::c_ulong = ioc_none(b'G', 5, size_of::<GntallocAlloc>());
const GNTALLOC_DEALLOC_GREF: libc::c_ulong = ioc_none(b'G', 6, size_of::<GntallocDealloc>());
const GNTALLOC_FLAG_WRITABLE: u16 = 1;
const GNTDEV_MAP_GRANT_REF: libc::c_ulong = ioc_none(b'G', 0, size_of::<GntdevMap>());
const GNTDEV_UNMAP_GRANT_REF: libc::c_ulong = ioc_none(b'G', 1, size_of::<GntdevUnmap>());

/// One page shared mapping of a grant device; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    addr: *mut libc::c_void,
}

impl Mapping {
    fn map(file: &File, index: u64, what: &str) -> Result<Self, String> {
        let offset =
            libc::off_t::try_from(index).map_err(|_| format!("{what}: index {index} too big"))?;
        // SAFETY: a fresh shared mapping of one page of a grant device at the offset
        // the kernel handed out; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!("mmap {what}: {}", std::io::Error::last_os_error()));
        }
        Ok(Self { addr })
    }

    /// The page's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `addr` is a live PAGE_SIZE read/write mapping owned by `self`,
        // borrowed exclusively for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.addr.cast::<u8>(), PAGE_SIZE) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr` is the PAGE_SIZE mapping made in `map`, unmapped only here.
        unsafe { libc::munmap(self.addr, PAGE_SIZE) };
    }
}

/// A page of dom0 memory granted to a domain through `/dev/xen/gntalloc`; the grant
/// is ended and the page freed on drop (after the mapping is gone).
#[derive(Debug)]
pub struct GrantedPage {
    mapping: Option<Mapping>,
    file: File,
    index: u64,
    /// The grant reference the peer maps.
    pub gref: u32,
}

impl GrantedPage {
    /// Grants one new, zeroed, page to `domid` (read-write if `writable`) and maps it here.
    pub fn new(domid: u16, writable: bool) -> Result<Self, String> {
        let file = open_rw("/dev/xen/gntalloc")?;
        let mut arg = GntallocAlloc {
            domid,
            flags: if writable { GNTALLOC_FLAG_WRITABLE } else { 0 },
            count: 1,
            index: 0,
            gref_ids: [0],
        };
        ioctl(&file, "GNTALLOC_ALLOC_GREF", GNTALLOC_ALLOC_GREF, &mut arg)?;
        let mapping = Mapping::map(&file, arg.index, "gntalloc")?;
        Ok(Self {
            mapping: Some(mapping),
            file,
            index: arg.index,
            gref: arg.gref_ids[0],
        })
    }

    /// The page's bytes as this domain sees them.
    pub fn bytes(&mut self) -> &mut [u8] {
        match &mut self.mapping {
            Some(mapping) => mapping.bytes(),
            None => &mut [],
        }
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        self.mapping = None;
        let mut arg = GntallocDealloc {
            index: self.index,
            count: 1,
        };
        let _ = ioctl(
            &self.file,
            "GNTALLOC_DEALLOC_GREF",
            GNTALLOC_DEALLOC_GREF,
            &mut arg,
        );
    }
}

/// A foreign grant mapped through `/dev/xen/gntdev` (what a backend does); unmapped on drop.
#[derive(Debug)]
pub struct MappedGrant {
    mapping: Option<Mapping>,
    file: File,
    index: u64,
}

impl MappedGrant {
    /// Maps grant `gref` of domain `domid`.
    pub fn new(domid: u16, gref: u32) -> Result<Self, String> {
        let file = open_rw("/dev/xen/gntdev")?;
        let mut arg = GntdevMap {
            count: 1,
            pad: 0,
            index: 0,
            refs: [GntdevGrantRef {
                domid: domid.into(),
                reference: gref,
            }],
        };
        ioctl(
            &file,
            "GNTDEV_MAP_GRANT_REF",
            GNTDEV_MAP_GRANT_REF,
            &mut arg,
        )?;
        let index = arg.index;
        let mapping = match Mapping::map(&file, index, "gntdev") {
            Ok(mapping) => mapping,
            Err(e) => {
                let mut unmap = GntdevUnmap {
                    index,
                    count: 1,
                    pad: 0,
                };
                let _ = ioctl(
                    &file,
                    "GNTDEV_UNMAP_GRANT_REF",
                    GNTDEV_UNMAP_GRANT_REF,
                    &mut unmap,
                );
                return Err(e);
            }
        };
        Ok(Self {
            mapping: Some(mapping),
            file,
            index,
        })
    }

    /// The granted page's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        match &mut self.mapping {
            Some(mapping) => mapping.bytes(),
            None => &mut [],
        }
    }
}

impl Drop for MappedGrant {
    fn drop(&mut self) {
        self.mapping = None;
        let mut arg = GntdevUnmap {
            index: self.index,
            count: 1,
            pad: 0,
        };
        let _ = ioctl(
            &self.file,
            "GNTDEV_UNMAP_GRANT_REF",
            GNTDEV_UNMAP_GRANT_REF,
            &mut arg,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_headers() {
        // Values printed by a C program including /usr/include/xen/sys/*.h.
        assert_eq!(EVTCHN_BIND_INTERDOMAIN, 0x84501);
        assert_eq!(EVTCHN_BIND_UNBOUND_PORT, 0x44502);
        assert_eq!(EVTCHN_UNBIND, 0x44503);
        assert_eq!(EVTCHN_NOTIFY, 0x44504);
        assert_eq!(GNTALLOC_ALLOC_GREF, 0x18_4705);
        assert_eq!(GNTALLOC_DEALLOC_GREF, 0x10_4706);
        assert_eq!(GNTDEV_MAP_GRANT_REF, 0x18_4700);
        assert_eq!(GNTDEV_UNMAP_GRANT_REF, 0x10_4701);
    }
}
