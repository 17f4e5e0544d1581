//! Event channels over `/dev/xen/evtchn`.
//!
//! Linux's evtchn device binds ports to the open file: `IOCTL_EVTCHN_BIND_*`
//! returns the local port, `IOCTL_EVTCHN_NOTIFY` signals the remote end, and
//! `IOCTL_EVTCHN_UNBIND` closes the port. When a port fires, the kernel masks it
//! and queues its number (a native-endian `u32`) for `read`; writing the number
//! back unmasks it. One file serves every channel, so [`EvtchnDevice::wait`]
//! keeps ports that fired for another channel until someone asks for them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xenbus_interface::api::{DomId, EventChannels, EvtchnError, Port};

use crate::fd;
use crate::sys;

/// The device node.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// How many fired ports one `read` collects at most.
const READ_BATCH: usize = 64;

/// An open `/dev/xen/evtchn`.
#[derive(Debug)]
pub struct EvtchnDevice {
    file: File,
    /// Ports read from the device that nobody has waited for yet. Each stays
    /// masked in the kernel until [`EventChannels::unmask`] writes it back.
    fired: Mutex<BTreeSet<u32>>,
}

/// A port bound through an [`EvtchnDevice`]. Not `Clone`: closing it consumes it.
#[derive(Debug, PartialEq, Eq)]
pub struct RigChannel {
    port: Port,
}

impl RigChannel {
    /// The local port.
    pub fn port(&self) -> Port {
        self.port
    }
}

impl EvtchnDevice {
    /// Opens [`EVTCHN_PATH`].
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: fd::open_device(EVTCHN_PATH)?,
            fired: Mutex::new(BTreeSet::new()),
        })
    }

    /// Binds a new local port to `remote_port` of domain `remote` (which must be
    /// unbound and offered to us): the other half of [`EventChannels::open_unbound`].
    /// In the rig, binding to our own unbound port (domain 0) gives a loopback
    /// pair.
    pub fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<RigChannel, EvtchnError> {
        let mut arg = sys::EvtchnBindInterdomain {
            remote_domain: u32::from(remote.0),
            remote_port: remote_port.0,
        };
        // SAFETY: `arg` is the `ioctl_evtchn_bind_interdomain` the request expects.
        let rc = unsafe {
            fd::ioctl(
                self.file.as_fd(),
                sys::IOCTL_EVTCHN_BIND_INTERDOMAIN,
                &raw mut arg,
            )
        };
        port_from(rc)
    }

    /// Waits until local `port` (bound through this device, directly or through
    /// an interface table served from it) fires, at most `timeout`: `Ok(true)`
    /// if it did (it then stays masked until [`EventChannels::unmask`]),
    /// `Ok(false)` on timeout. Ports of other channels read meanwhile are kept
    /// for their own waiters.
    pub fn wait(&self, port: Port, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.lock_fired().remove(&port.0) {
                return Ok(true);
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() || !self.collect(left)? {
                return Ok(self.lock_fired().remove(&port.0));
            }
        }
    }

    /// Re-enables delivery on local `port` (what [`EventChannels::unmask`] does
    /// for a channel), for ports known only by number.
    pub fn unmask_port(&self, port: Port) -> io::Result<()> {
        let n = (&self.file).write(&port.0.to_ne_bytes())?;
        if n == 4 {
            Ok(())
        } else {
            Err(io::ErrorKind::WriteZero.into())
        }
    }

    /// Waits until any port fires, at most `timeout`, and returns every port that
    /// has fired and not been claimed (empty on timeout). The rig's event loop
    /// dispatches them to the cores' `poll_*` entry points.
    pub fn wait_any(&self, timeout: Duration) -> io::Result<Vec<Port>> {
        if self.lock_fired().is_empty() {
            self.collect(timeout)?;
        }
        let mut fired = self.lock_fired();
        let ports = fired.iter().map(|&p| Port(p)).collect();
        fired.clear();
        Ok(ports)
    }

    /// Reads fired ports into `fired`, waiting at most `timeout` for the first.
    /// Returns `false` if nothing fired in time.
    fn collect(&self, timeout: Duration) -> io::Result<bool> {
        if !fd::poll_readable(self.file.as_fd(), timeout)? {
            return Ok(false);
        }
        let mut buf = [0u8; READ_BATCH * 4];
        let n = match (&self.file).read(&mut buf) {
            Ok(n) => n,
            // Another thread took the ports between our poll and read.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        };
        let mut fired = self.lock_fired();
        for chunk in buf.get(..n).unwrap_or_default().chunks_exact(4) {
            let mut word = [0u8; 4];
            word.copy_from_slice(chunk);
            fired.insert(u32::from_ne_bytes(word));
        }
        Ok(true)
    }

    fn lock_fired(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        // A panic while holding this lock leaves a plain set behind: still valid.
        self.fired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn port_ioctl(&self, request: u32, port: Port) -> io::Result<i32> {
        let mut arg = sys::EvtchnPort { port: port.0 };
        // SAFETY: `arg` is the one-port structure (`ioctl_evtchn_notify` /
        // `ioctl_evtchn_unbind`) that NOTIFY and UNBIND expect.
        unsafe { fd::ioctl(self.file.as_fd(), request, &raw mut arg) }
    }
}

/// Turns a bind ioctl's result into a channel.
fn port_from(rc: io::Result<i32>) -> Result<RigChannel, EvtchnError> {
    match rc {
        Ok(port) => Ok(RigChannel {
            port: Port(port.unsigned_abs()),
        }),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EMFILE | libc::ENOMEM) => EvtchnError::Exhausted,
            Some(errno) => EvtchnError::Refused(errno),
            None => EvtchnError::Refused(libc::EIO),
        }),
    }
}

impl EventChannels for EvtchnDevice {
    type Channel = RigChannel;

    fn open_unbound(&self, remote: DomId) -> Result<RigChannel, EvtchnError> {
        let mut arg = sys::EvtchnBindUnboundPort {
            remote_domain: u32::from(remote.0),
        };
        // SAFETY: `arg` is the `ioctl_evtchn_bind_unbound_port` the request expects.
        let rc = unsafe {
            fd::ioctl(
                self.file.as_fd(),
                sys::IOCTL_EVTCHN_BIND_UNBOUND_PORT,
                &raw mut arg,
            )
        };
        port_from(rc)
    }

    fn port(&self, channel: &RigChannel) -> Port {
        channel.port
    }

    fn notify(&self, channel: &RigChannel) {
        // The trait's notify cannot fail: the only errors are a port not bound
        // through this file (impossible for a `RigChannel` of ours) or a dead
        // device, which the next wait reports.
        let _ = self.port_ioctl(sys::IOCTL_EVTCHN_NOTIFY, channel.port);
    }

    fn unmask(&self, channel: &RigChannel) {
        // Writing the port number re-enables delivery; a port that is not masked
        // is left alone by the kernel. A short or failed write leaves the port
        // masked, which the caller's next wait times out on: nothing to recover
        // here on a non-blocking path.
        let _ = self.unmask_port(channel.port);
    }

    fn close(&self, channel: RigChannel) {
        self.lock_fired().remove(&channel.port.0);
        // UNBIND only fails for a port this file does not own.
        let _ = self.port_ioctl(sys::IOCTL_EVTCHN_UNBIND, channel.port);
    }
}
