//! [`Store`](xenbus_interface::api::Store) in the rig: the portable xenstore client
//! of `xenbus-core` over a [`XenstoreStream`], with poll(2) as its way to wait
//! and `Instant` as its clock.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use xenbus_core::client::{Client, ClientConfig, Clock, Wait};
use xenbus_core::transport::StreamTransport;

use crate::fd;
use crate::stream::{Transport, XenstoreStream};

/// The rig's xenstore client.
pub type RigStore = Client<StreamTransport<XenstoreStream>, RigWait>;

/// The client's platform in the rig: waits with poll(2) on (a duplicate of) the
/// stream's descriptor, reads time from a monotonic `Instant`.
#[derive(Debug)]
pub struct RigWait {
    fd: OwnedFd,
    origin: Instant,
}

impl Wait for RigWait {
    fn wait(&self, timeout: Duration) {
        // An error (a dead descriptor) shows up at the next read; returning
        // early is always allowed.
        let _ = fd::poll_readable(self.fd.as_fd(), timeout);
    }
}

impl Clock for RigWait {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Connects a client to xenstored over `transport`.
pub fn open_store(transport: Transport) -> io::Result<RigStore> {
    open_store_with(transport, ClientConfig::default())
}

/// Connects a client with explicit limits.
pub fn open_store_with(transport: Transport, config: ClientConfig) -> io::Result<RigStore> {
    let stream = XenstoreStream::open(transport)?;
    let wait = RigWait {
        fd: stream.try_clone_fd()?,
        origin: Instant::now(),
    };
    let transport = match transport {
        // The device's write buffer holds 4096 bytes including the header.
        Transport::Xenbus => StreamTransport::xenbus_device(stream),
        Transport::Socket => StreamTransport::new(stream),
    };
    Ok(Client::with_config(transport, wait, config))
}
