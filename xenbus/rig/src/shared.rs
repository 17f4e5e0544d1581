//! Byte copies in and out of memory another domain shares with us.
//!
//! The other side may write such memory at any moment, so it is only touched with
//! volatile accesses, byte by byte, never through a Rust reference.

use std::fmt;
use std::ptr::NonNull;

use xenbus_interface::api::Pages;

/// A copy would run past the end of the shared region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Where the copy started.
    pub offset: usize,
    /// How many bytes it wanted.
    pub len: usize,
    /// The region's size.
    pub size: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {} exceed the {}-byte shared region",
            self.len, self.offset, self.size
        )
    }
}

impl std::error::Error for OutOfBounds {}

fn check(offset: usize, len: usize, size: usize) -> Result<(), OutOfBounds> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(OutOfBounds { offset, len, size }),
    }
}

/// Copies `out.len()` bytes from `base + offset`.
///
/// # Safety
/// `base` must be valid for reads of `size` bytes for the duration of the call.
pub unsafe fn read_volatile(
    base: NonNull<u8>,
    size: usize,
    offset: usize,
    out: &mut [u8],
) -> Result<(), OutOfBounds> {
    check(offset, out.len(), size)?;
    for (i, byte) in out.iter_mut().enumerate() {
        // SAFETY: `offset + i < size` (checked above) and the caller vouches for
        // `size` readable bytes at `base`.
        let at = base.as_ptr().wrapping_add(offset + i);
        // SAFETY: `at` is inside the `size` readable bytes (see above).
        *byte = unsafe { at.read_volatile() };
    }
    Ok(())
}

/// Copies `data` to `base + offset`.
///
/// # Safety
/// `base` must be valid for writes of `size` bytes for the duration of the call.
pub unsafe fn write_volatile(
    base: NonNull<u8>,
    size: usize,
    offset: usize,
    data: &[u8],
) -> Result<(), OutOfBounds> {
    check(offset, data.len(), size)?;
    for (i, byte) in data.iter().enumerate() {
        // SAFETY: `offset + i < size` (checked above) and the caller vouches for
        // `size` writable bytes at `base`.
        let at = base.as_ptr().wrapping_add(offset + i);
        // SAFETY: `at` is inside the `size` writable bytes (see above).
        unsafe { at.write_volatile(*byte) };
    }
    Ok(())
}

/// Copies bytes out of platform pages.
pub fn read_pages(pages: &Pages, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
    // SAFETY: `Pages` guarantees `len()` readable bytes while it exists.
    unsafe { read_volatile(pages.as_ptr(), pages.len(), offset, out) }
}

/// Copies bytes into platform pages.
pub fn write_pages(pages: &Pages, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
    // SAFETY: `Pages` guarantees `len()` writable bytes while it exists.
    unsafe { write_volatile(pages.as_ptr(), pages.len(), offset, data) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_within_bounds_and_refuses_beyond() {
        let mut region = [0u8; 16];
        let base = NonNull::from(&mut region).cast::<u8>();
        // SAFETY: `region` is 16 bytes, lives to the end of the test, and is not
        // otherwise borrowed until the final check (the same holds below).
        let wrote = unsafe { write_volatile(base, 16, 4, b"abcd") };
        assert_eq!(wrote, Ok(()));
        let mut out = [0u8; 6];
        // SAFETY: as above.
        let read = unsafe { read_volatile(base, 16, 3, &mut out) };
        assert_eq!(read, Ok(()));
        assert_eq!(&out, b"\0abcd\0");
        // SAFETY: as above.
        let past_end = unsafe { write_volatile(base, 16, 14, b"xyz") };
        assert_eq!(
            past_end,
            Err(OutOfBounds {
                offset: 14,
                len: 3,
                size: 16
            })
        );
        // SAFETY: as above.
        let overflow = unsafe { read_volatile(base, 16, usize::MAX, &mut [0u8; 2]) };
        assert!(overflow.is_err());
        // SAFETY: as above.
        let empty_at_end = unsafe { read_volatile(base, 16, 16, &mut []) };
        assert_eq!(empty_at_end, Ok(()));
        assert_eq!(&region[4..8], b"abcd");
    }
}
