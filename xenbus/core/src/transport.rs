//! How encoded messages reach xenstored: the [`Transport`] the client drives, and
//! its byte-stream flavour ([`ByteStream`], [`StreamTransport`]). The shared-ring
//! flavour is in [`crate::ring`].
//!
//! A transport never blocks: it moves what it can and says how much. Waiting is the
//! client's business (see [`crate::client::Wait`]).

use core::fmt;

use xen_abi::xs_wire::{XENSTORE_PAYLOAD_MAX, XsdSockmsg};
use xenbus_interface::api::StoreError;

/// Why a transport cannot move bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The connection is closed (end of file, ring torn down).
    Disconnected,
    /// The platform's I/O failed, with its errno or status.
    Io(i32),
    /// The peer broke the transport's rules (a ring index jump); the
    /// connection is unusable.
    Protocol(&'static str),
}

impl TransportError {
    /// The error a store caller sees.
    pub fn into_store_error(self) -> StoreError {
        match self {
            Self::Disconnected | Self::Io(_) => StoreError::Disconnected,
            Self::Protocol(why) => StoreError::Protocol(why),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => f.write_str("xenstore connection closed"),
            Self::Io(code) => write!(f, "xenstore I/O error {code}"),
            Self::Protocol(why) => write!(f, "xenstore transport violation: {why}"),
        }
    }
}

/// A non-blocking, ordered, reliable byte pipe to xenstored.
///
/// The client calls [`Transport::send`] with the unsent rest of ONE message at a
/// time (never bytes of two messages in one call: Linux's `/dev/xen/xenbus` drops
/// whatever follows the first message of a `write`), [`Transport::recv`] until it
/// returns 0, then [`Transport::flush`] once per batch.
pub trait Transport {
    /// Sends a prefix of `bytes`; returns how many were taken, 0 when there is no
    /// room now.
    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError>;
    /// Receives available bytes into `buf`; returns how many, 0 when none are
    /// available now.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
    /// Ends a batch of sends and receives: a ring notifies the daemon here, once,
    /// and only if it moved an index the daemon may be waiting on.
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    /// The largest request payload this transport can carry (at most
    /// `XENSTORE_PAYLOAD_MAX`). The client refuses larger requests before sending.
    fn max_payload(&self) -> usize {
        XENSTORE_PAYLOAD_MAX
    }
}

/// A platform byte stream: `/dev/xen/xenbus` or the xenstored socket in dom0.
///
/// Both calls are non-blocking: open the file with `O_NONBLOCK` and map `EAGAIN`
/// to `Ok(0)`; map end of file (a `read` of 0 on a blocking descriptor, `EPIPE`,
/// `ECONNRESET`) to [`TransportError::Disconnected`]. Readiness is waited for by the
/// platform's [`crate::client::Wait`] (in the rig: `poll(2)` for `POLLIN` on the
/// same descriptor).
pub trait ByteStream {
    /// Reads available bytes; `Ok(0)` when none are available now.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
    /// Writes a prefix of `buf`; `Ok(0)` when the stream cannot take bytes now.
    fn write(&mut self, buf: &[u8]) -> Result<usize, TransportError>;
}

/// The byte-stream transport: xenstore messages framed on a [`ByteStream`].
#[derive(Debug)]
pub struct StreamTransport<S> {
    stream: S,
    max_payload: usize,
}

impl<S: ByteStream> StreamTransport<S> {
    /// Over the xenstored socket: the full `XENSTORE_PAYLOAD_MAX` payload.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            max_payload: XENSTORE_PAYLOAD_MAX,
        }
    }

    /// Over Linux's `/dev/xen/xenbus`, whose write buffer holds
    /// `XENSTORE_PAYLOAD_MAX` bytes including the 16-byte header, so a request
    /// payload is at most 4080 bytes there (a larger write fails with `E2BIG`).
    pub fn xenbus_device(stream: S) -> Self {
        Self {
            stream,
            max_payload: XENSTORE_PAYLOAD_MAX - XsdSockmsg::SIZE,
        }
    }

    /// The stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: ByteStream> Transport for StreamTransport<S> {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError> {
        let n = self.stream.write(bytes)?;
        if n > bytes.len() {
            return Err(TransportError::Protocol("stream wrote more than asked"));
        }
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = self.stream.read(buf)?;
        if n > buf.len() {
            return Err(TransportError::Protocol("stream read more than the buffer"));
        }
        Ok(n)
    }

    fn max_payload(&self) -> usize {
        self.max_payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    struct Liar;
    impl ByteStream for Liar {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            Ok(buf.len() + 1)
        }
        fn write(&mut self, buf: &[u8]) -> Result<usize, TransportError> {
            Ok(buf.len() + 1)
        }
    }

    struct Pipe(Vec<u8>);
    impl ByteStream for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
        fn write(&mut self, buf: &[u8]) -> Result<usize, TransportError> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
    }

    #[test]
    fn stream_counts_are_checked() {
        let mut t = StreamTransport::new(Liar);
        assert!(matches!(t.send(b"ab"), Err(TransportError::Protocol(_))));
        let mut buf = [0u8; 4];
        assert!(matches!(t.recv(&mut buf), Err(TransportError::Protocol(_))));
    }

    #[test]
    fn stream_moves_bytes_and_reports_limits() {
        let mut t = StreamTransport::xenbus_device(Pipe(Vec::new()));
        assert_eq!(t.max_payload(), 4080);
        assert_eq!(StreamTransport::new(Pipe(Vec::new())).max_payload(), 4096);
        assert_eq!(t.send(b"hello").unwrap(), 5);
        let mut buf = [0u8; 3];
        assert_eq!(t.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(t.stream().0, b"lo");
        assert_eq!(
            TransportError::Protocol("x").into_store_error(),
            StoreError::Protocol("x")
        );
        assert_eq!(
            TransportError::Io(5).into_store_error(),
            StoreError::Disconnected
        );
    }
}
