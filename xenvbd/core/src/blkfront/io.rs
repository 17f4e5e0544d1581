//! The engine's I/O vocabulary: scatter lists of guest frames, requests,
//! completions, and the trait through which the engine copies bytes to and
//! from frames (persistent grants, bounce pages, indirect segment lists).

use core::fmt;

use xenbus_interface::api::{PAGE_SIZE, Pfn};

/// One element of a scatter list: `len` bytes at `offset` in frame `pfn`
/// (`offset + len <= PAGE_SIZE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The frame.
    pub pfn: Pfn,
    /// Byte offset in the frame.
    pub offset: u16,
    /// Byte count.
    pub len: u16,
}

impl Segment {
    /// A segment, if it stays inside its frame and is not empty.
    pub fn new(pfn: Pfn, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (len > 0 && end <= PAGE_SIZE).then(|| Self {
            pfn,
            offset: u16::try_from(offset).unwrap_or(0),
            len: u16::try_from(len).unwrap_or(0),
        })
    }

    /// Offset and length are whole 512-byte sectors (a blkif segment can name
    /// it directly).
    pub fn sector_aligned(&self) -> bool {
        self.offset % 512 == 0 && self.len % 512 == 0
    }
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read into the segments.
    Read,
    /// Write the segments; with `fua`, durable before completion.
    Write {
        /// Forced unit access.
        fua: bool,
    },
    /// Flush the backend's write cache (no segments).
    Flush,
    /// Discard `sectors` sectors (no segments); `secure` erases securely.
    Discard {
        /// Number of 512-byte sectors.
        sectors: u64,
        /// `BLKIF_DISCARD_SECURE`.
        secure: bool,
    },
}

/// A request from the caller (StorPort, the rig's load generator...).
#[derive(Clone, Copy, Debug)]
pub struct IoRequest<'a> {
    /// The caller's tag, returned in the [`Completion`].
    pub tag: u64,
    /// What to do.
    pub operation: Operation,
    /// First 512-byte sector (reads, writes, discards).
    pub sector: u64,
    /// The data (reads and writes): any alignment, total a whole number of
    /// sectors.
    pub segments: &'a [Segment],
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `BLKIF_RSP_OKAY`.
    Ok,
    /// `BLKIF_RSP_ERROR`: the backend failed the I/O.
    Error,
    /// `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
    /// The device failed (broken backend) or was removed: not attempted or
    /// outcome unknown.
    DeviceFailed,
}

/// A finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The caller's tag.
    pub tag: u64,
    /// Its outcome.
    pub status: Status,
    /// Some of the request's frames could not be taken back from the backend
    /// (it still maps them): the caller must never reuse or free them.
    pub frames_quarantined: bool,
}

/// Why a request was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// No ring slot, shadow, grant or pool page now: retry after a completion.
    Busy,
    /// The request is malformed; the text says how.
    Invalid(&'static str),
    /// The device does not offer this operation.
    NotSupported,
    /// The device is read-only.
    ReadOnly,
    /// The device has failed; nothing more is accepted.
    Broken,
    /// The device is not connected (yet, or any more).
    NotConnected,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("busy, retry"),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
            Self::NotSupported => f.write_str("operation not supported by the backend"),
            Self::ReadOnly => f.write_str("device is read-only"),
            Self::Broken => f.write_str("device failed"),
            Self::NotConnected => f.write_str("device not connected"),
        }
    }
}

/// The frame is not one the platform can access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFrame(pub Pfn);

/// Byte access to guest frames: what the engine needs to copy caller data to
/// and from persistent-grant and bounce pages, and to write indirect segment
/// lists. The engine always stays within one frame (`offset + len <=
/// PAGE_SIZE`). Called on submit and completion paths: never blocks.
pub trait Frames {
    /// Copies `len` bytes from `src`/`src_offset` to `dst`/`dst_offset`.
    fn copy(
        &self,
        dst: Pfn,
        dst_offset: usize,
        src: Pfn,
        src_offset: usize,
        len: usize,
    ) -> Result<(), BadFrame>;
    /// Writes `bytes` at `offset` in `dst`.
    fn write(&self, dst: Pfn, offset: usize, bytes: &[u8]) -> Result<(), BadFrame>;
}
