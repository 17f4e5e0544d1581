//! The byte stream to xenstored that dom0 user space has: `/dev/xen/xenbus`
//! (the kernel relays `xsd_sockmsg` messages to xenstored for us) or xenstored's
//! unix socket. The xenstore client frames messages on top of it.
//!
//! The descriptor is non-blocking; every wait goes through poll(2) with the
//! caller's timeout, so nothing here blocks for longer than asked.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::fd;

/// `/dev/xen/xenbus`: the kernel's xenstore relay for user space.
pub const XENBUS_PATH: &str = "/dev/xen/xenbus";
/// xenstored's unix socket.
pub const XENSTORED_SOCKET: &str = "/run/xenstored/socket";

/// Which way to reach xenstored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// [`XENBUS_PATH`].
    Xenbus,
    /// [`XENSTORED_SOCKET`].
    Socket,
}

/// A non-blocking byte stream to xenstored.
#[derive(Debug)]
pub struct XenstoreStream {
    /// Either transport's descriptor: both are plain read(2)/write(2) streams.
    file: File,
    transport: Transport,
}

impl XenstoreStream {
    /// Opens a stream over `transport`.
    pub fn open(transport: Transport) -> io::Result<Self> {
        let fd = match transport {
            Transport::Xenbus => OwnedFd::from(fd::open_device(XENBUS_PATH)?),
            Transport::Socket => {
                let sock = UnixStream::connect(XENSTORED_SOCKET).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot connect to {XENSTORED_SOCKET}: {e}"),
                    )
                })?;
                sock.set_nonblocking(true)?;
                OwnedFd::from(sock)
            }
        };
        Ok(Self {
            file: File::from(fd),
            transport,
        })
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Writes all of `bytes`, waiting at most `timeout` in total for room.
    ///
    /// `/dev/xen/xenbus` takes messages whole or in pieces (it reassembles them)
    /// and refuses, with `EINVAL`, a message whose header announces more than
    /// `XENSTORE_PAYLOAD_MAX` bytes.
    pub fn send(&self, mut bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now().checked_add(timeout);
        while !bytes.is_empty() {
            match (&self.file).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = left_until(deadline);
                    if left.is_zero() || !fd::poll_writable(self.file.as_fd(), left)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what is available into `buf`, waiting at most `timeout` for the
    /// first byte. `Ok(0)` means timeout; end of stream is
    /// [`io::ErrorKind::UnexpectedEof`].
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match (&self.file).read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = left_until(deadline);
                    if left.is_zero() || !fd::poll_readable(self.file.as_fd(), left)? {
                        return Ok(0);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn left_until(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}
