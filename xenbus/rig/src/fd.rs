//! Small, checked wrappers over the system calls the devices need: `open`,
//! `ioctl`, `poll`, `read`, `write`, `mmap`, `munmap`.
//!
//! Each wrapper turns a failure into an [`io::Error`] carrying errno, so callers
//! report the kernel's reason.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Opens a character device read-write, close-on-exec and non-blocking (reads
/// then wait only in [`poll_readable`], always with a timeout).
pub fn open_device(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))
}

/// `ioctl(fd, request, arg)`; returns the non-negative result.
///
/// # Safety
/// `arg` must point to the argument structure `request` expects, valid for the
/// reads and writes the driver does (including any variable-length tail).
pub unsafe fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: *mut T) -> io::Result<i32> {
    // SAFETY: the caller guarantees `arg` matches `request`; `fd` is open for the
    // borrow's lifetime.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), ioctl_request(request), arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The request number in the type libc wants (`c_ulong` on glibc, `c_int` on
/// musl).
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_lossless,
    clippy::unnecessary_cast,
    reason = "the requests used here have no direction bits set, so they are below 2^30 and fit every libc's type"
)]
fn ioctl_request(request: u32) -> libc::Ioctl {
    debug_assert!(request < 1 << 30);
    request as libc::Ioctl
}

/// Waits until `fd` is readable (or hung up / in error, which the following read
/// reports), at most `timeout`. Returns `false` on timeout. Restarts after signals.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    poll_for(fd, libc::POLLIN, timeout)
}

/// Waits until `fd` is writable, at most `timeout`; `false` on timeout.
pub fn poll_writable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    poll_for(fd, libc::POLLOUT, timeout)
}

fn poll_for(fd: BorrowedFd<'_>, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        // poll(2) takes milliseconds as an int; round up so a 0.5 ms wait still waits.
        let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd and we pass a count of 1.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, millis) };
        if rc > 0 {
            return Ok(true);
        }
        if rc == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A shared read-write mapping of `len` bytes of `fd` at `offset`.
pub fn mmap_shared(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<NonNull<u8>> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset out of range"))?;
    // SAFETY: a fresh mapping chosen by the kernel (address NULL) aliases no Rust
    // object; failure is reported as MAP_FAILED and checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Undoes [`mmap_shared`].
///
/// # Safety
/// `ptr`/`len` must be exactly a mapping made by [`mmap_shared`] that nothing
/// will access afterwards.
pub unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: the caller hands over a whole mapping nobody uses any more.
    let rc = unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
