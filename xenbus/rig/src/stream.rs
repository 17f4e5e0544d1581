//! The byte stream to xenstored that dom0 user space has: `/dev/xen/xenbus`
//! (the kernel relays `xsd_sockmsg` messages to xenstored for us) or xenstored's
//! unix socket. The xenstore client frames messages on top of it.
//!
//! The descriptor is non-blocking; every wait goes through poll(2) with the
//! caller's timeout, so nothing here blocks for longer than asked.
//!
//! **One request at a time on `/dev/xen/xenbus`.** Linux's xenbus device
//! (drivers/xen/xenbus/xenbus_dev_frontend.c, xenbus_xs.c) queues a request
//! for its xenbus thread with the payload still in the file's single message
//! buffer, and reuses that buffer for the next `write`. A second request written
//! before the first one reached the ring overwrites the first one's payload (seen
//! in the rig: 64 pipelined reads, one answered with another key's value). So
//! over the device the stream holds each request back until the previous one is
//! answered ([`Pacer`]), keeping the others ([`Held`]) and sending the next
//! as soon as an answer is read; the socket, like the guest's shared ring,
//! takes many requests in flight.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xen_abi::xs_wire::{XENSTORE_PAYLOAD_MAX, XS_WATCH_EVENT, XsdSockmsg};
use xenbus_core::transport::{ByteStream, TransportError};

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
    /// Over [`Transport::Xenbus`] only: one request in flight...
    pacer: Option<Pacer>,
    /// ...the others waiting here, sent as answers arrive.
    held: Held,
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
            pacer: (transport == Transport::Xenbus).then(Pacer::default),
            held: Held::default(),
        })
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// A second descriptor for the same stream, to wait on with poll(2) while
    /// the client owns the stream.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// Writes all of `bytes`, waiting at most `timeout` in total for room (for
    /// tools and tests that speak the wire protocol themselves).
    ///
    /// `/dev/xen/xenbus` takes one message per `write` (it drops what follows
    /// the first message) and refuses a message larger than its 4096-byte
    /// buffer, header included.
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

/// The client's view: non-blocking, `EAGAIN` is "nothing now", end of file and
/// a reset connection are [`TransportError::Disconnected`].
impl ByteStream for XenstoreStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = loop {
            match (&self.file).read(buf) {
                Ok(0) if !buf.is_empty() => return Err(TransportError::Disconnected),
                Ok(n) => break n,
                Err(e) => {
                    if let Some(result) = classify(&e) {
                        return result;
                    }
                }
            }
        };
        if let Some(pacer) = &mut self.pacer {
            pacer.received(buf.get(..n).unwrap_or_default());
            // An answer frees the device: the next held request goes now,
            // not at the client's next send.
            let file = &self.file;
            self.held.flush(pacer, |chunk| (&*file).write(chunk))?;
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, TransportError> {
        if let Some(pacer) = &mut self.pacer {
            let taken = self.held.take(buf);
            let file = &self.file;
            self.held.flush(pacer, |chunk| (&*file).write(chunk))?;
            return Ok(taken);
        }
        loop {
            match (&self.file).write(buf) {
                Ok(n) => return Ok(n),
                Err(e) => {
                    if let Some(result) = classify(&e) {
                        return result;
                    }
                }
            }
        }
    }
}

/// What an I/O error means to the client; `None` means "retry" (a signal).
fn classify(e: &io::Error) -> Option<Result<usize, TransportError>> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock => Some(Ok(0)),
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof => Some(Err(TransportError::Disconnected)),
        _ => Some(Err(TransportError::Io(
            e.raw_os_error().unwrap_or(libc::EIO),
        ))),
    }
}

fn left_until(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}

/// Keeps at most one request unanswered: follows the message framing of both
/// directions (16-byte `xsd_sockmsg` header, `len` payload bytes) without
/// interpreting anything else. Every message xenstored (or the kernel) sends
/// except `XS_WATCH_EVENT` answers one request.
#[derive(Debug, Default)]
struct Pacer {
    out: Framer,
    inbound: Framer,
    /// Requests written whole whose answer has not been read.
    unanswered: u32,
}

impl Pacer {
    /// A new message may start only when nothing is unanswered; the rest of a
    /// message already started may always go.
    fn may_send(&self) -> bool {
        self.unanswered == 0 || self.out.in_message()
    }

    fn sent(&mut self, bytes: &[u8]) {
        let done = self.out.feed(bytes, |_| {});
        self.unanswered = self.unanswered.saturating_add(done);
    }

    fn received(&mut self, bytes: &[u8]) {
        let mut answers = 0u32;
        self.inbound.feed(bytes, |kind| {
            if kind != XS_WATCH_EVENT {
                answers = answers.saturating_add(1);
            }
        });
        self.unanswered = self.unanswered.saturating_sub(answers);
    }
}

/// Finds message boundaries in a byte stream.
#[derive(Clone, Debug, Default)]
struct Framer {
    header: [u8; XsdSockmsg::SIZE],
    have: usize,
    /// Payload bytes still to come of the current message (once its header is
    /// complete).
    body_left: usize,
}

impl Framer {
    fn in_message(&self) -> bool {
        self.have > 0
    }

    /// Consumes `bytes` up to the end of the current message at most:
    /// returns how many bytes it took and, if the message ended, its type.
    fn feed_one(&mut self, bytes: &[u8]) -> (usize, Option<u32>) {
        let mut taken = 0;
        if self.have < XsdSockmsg::SIZE {
            let take = (XsdSockmsg::SIZE - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            taken = take;
            if self.have < XsdSockmsg::SIZE {
                return (taken, None);
            }
            let len = u32::from_le_bytes([
                self.header[12],
                self.header[13],
                self.header[14],
                self.header[15],
            ]);
            self.body_left = usize::try_from(len).unwrap_or(usize::MAX);
        }
        let take = self.body_left.min(bytes.len() - taken);
        self.body_left -= take;
        taken += take;
        if self.body_left > 0 {
            return (taken, None);
        }
        self.have = 0;
        let kind = u32::from_le_bytes([
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ]);
        (taken, Some(kind))
    }

    /// Consumes `bytes`; calls `each` with the type of every message that ends
    /// in them, and returns how many ended.
    fn feed(&mut self, mut bytes: &[u8], mut each: impl FnMut(u32)) -> u32 {
        let mut done = 0u32;
        while !bytes.is_empty() {
            let (taken, ended) = self.feed_one(bytes);
            bytes = bytes.get(taken..).unwrap_or_default();
            if let Some(kind) = ended {
                each(kind);
                done = done.saturating_add(1);
            }
        }
        done
    }
}

/// Bytes the client handed over that may not reach `/dev/xen/xenbus` yet.
#[derive(Debug, Default)]
struct Held {
    bytes: VecDeque<u8>,
}

impl Held {
    /// Requests in flight (256 by default in the engine) of at most 4 KiB
    /// each: room for all of them.
    const MAX: usize = 256 * (XsdSockmsg::SIZE + XENSTORE_PAYLOAD_MAX);

    /// Takes `buf` whole, or nothing when full.
    fn take(&mut self, buf: &[u8]) -> usize {
        if self.bytes.len().saturating_add(buf.len()) > Self::MAX {
            return 0;
        }
        self.bytes.extend(buf);
        buf.len()
    }

    /// Writes held bytes to `sink` while `pacer` allows, never more than one
    /// message per write (the device ignores what follows the first).
    fn flush(
        &mut self,
        pacer: &mut Pacer,
        mut sink: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> Result<(), TransportError> {
        while !self.bytes.is_empty() && pacer.may_send() {
            let bytes = self.bytes.make_contiguous();
            let (len, _) = pacer.out.clone().feed_one(bytes);
            let chunk = &bytes[..len];
            match sink(chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let n = n.min(len);
                    pacer.sent(&chunk[..n]);
                    self.bytes.drain(..n);
                }
                Err(e) => match classify(&e) {
                    None => {}
                    Some(Ok(_)) => return Ok(()),
                    Some(Err(e)) => return Err(e),
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = XsdSockmsg {
            r#type: kind,
            req_id: 7,
            tx_id: 0,
            len: u32::try_from(payload.len()).unwrap(),
        }
        .to_bytes()
        .to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn pacer_holds_the_next_request_until_the_answer() {
        let mut p = Pacer::default();
        assert!(p.may_send());
        let read = msg(2, b"/local/domain/0/name\0");
        // Written in three pieces, splitting the header.
        p.sent(&read[..5]);
        assert!(p.may_send(), "the rest of a started message may go");
        p.sent(&read[5..20]);
        p.sent(&read[20..]);
        assert!(!p.may_send(), "a second request must wait");
        // A watch event is no answer.
        p.received(&msg(XS_WATCH_EVENT, b"/a\0tok\0"));
        assert!(!p.may_send());
        // The answer, split across reads, frees the stream.
        let reply = msg(2, b"Domain-0");
        p.received(&reply[..3]);
        assert!(!p.may_send());
        p.received(&reply[3..]);
        assert!(p.may_send());
    }

    #[test]
    fn framer_counts_messages_across_and_within_chunks() {
        let mut f = Framer::default();
        let mut stream = msg(11, b"/a\0v");
        stream.extend(msg(16, b"ENOENT\0"));
        stream.extend(msg(1, b""));
        let mut kinds = Vec::new();
        let mut total = 0;
        for chunk in stream.chunks(7) {
            total += f.feed(chunk, |k| kinds.push(k));
        }
        assert_eq!(total, 3);
        assert_eq!(kinds, [11, 16, 1]);
        assert!(!f.in_message());
        // Everything in one go.
        let mut g = Framer::default();
        assert_eq!(g.feed(&stream, |_| {}), 3);
    }

    #[test]
    fn framer_survives_arbitrary_bytes() {
        // Whatever the peer sends, feeding never panics (lengths are untrusted).
        let mut f = Framer::default();
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut chunk = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                chunk.push(seed.to_le_bytes()[2]);
            }
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let _ = f.feed(&chunk, |_| {});
        }
    }

    #[test]
    fn held_requests_go_one_message_per_write_as_answers_arrive() {
        let mut pacer = Pacer::default();
        let mut held = Held::default();
        let mut wire: Vec<Vec<u8>> = Vec::new();
        let a = msg(2, b"/a\0");
        let b = msg(2, b"/bb\0");
        let c = msg(11, b"/c\0value");
        // Three requests handed over at once (as a pipelining client does).
        let mut all = a.clone();
        all.extend(&b);
        all.extend(&c);
        assert_eq!(held.take(&all), all.len());
        held.flush(&mut pacer, |chunk| {
            wire.push(chunk.to_vec());
            Ok(chunk.len())
        })
        .unwrap();
        assert_eq!(wire.len(), 1, "only the first request goes");
        assert_eq!(wire[0], a);
        // A watch event answers nothing.
        pacer.received(&msg(XS_WATCH_EVENT, b"/w\0t\0"));
        held.flush(&mut pacer, |chunk| {
            wire.push(chunk.to_vec());
            Ok(chunk.len())
        })
        .unwrap();
        assert_eq!(wire.len(), 1);
        // The answer to `a` releases `b`, a short write splits it, and `c`
        // waits for `b`'s answer.
        pacer.received(&msg(2, b"x"));
        let mut first = true;
        held.flush(&mut pacer, |chunk| {
            let n = if first { 5 } else { chunk.len() };
            first = false;
            wire.push(chunk[..n].to_vec());
            Ok(n)
        })
        .unwrap();
        assert_eq!(wire[1..].concat(), b);
        pacer.received(&msg(16, b"ENOENT\0"));
        held.flush(&mut pacer, |chunk| {
            wire.push(chunk.to_vec());
            Ok(chunk.len())
        })
        .unwrap();
        assert_eq!(wire.last().unwrap(), &c);
        assert!(held.bytes.is_empty());
        // A device error is the client's error; EAGAIN keeps the bytes.
        assert_eq!(held.take(&a), a.len());
        pacer.received(&msg(11, b"OK\0"));
        let again = held.flush(&mut pacer, |_| Err(io::ErrorKind::WouldBlock.into()));
        assert_eq!(again, Ok(()));
        assert_eq!(held.bytes.len(), a.len());
        let failed = held.flush(&mut pacer, |_| {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        });
        assert_eq!(failed, Err(TransportError::Io(libc::EINVAL)));
    }
}
