//! XENBUS's portable core (`no_std` + `alloc`): the xenstore client and the xenbus
//! device helpers every frontend needs.
//!
//! Layers, bottom up:
//! * [`wire`]: the `xs_wire` codec (requests checked against the limits before
//!   sending, replies framed and parsed without trusting them);
//! * [`transport`] and [`ring`]: how bytes reach xenstored, a byte stream
//!   (`/dev/xen/xenbus`, the xenstored socket) or the shared ring page;
//! * [`engine`]: requests in flight matched by `req_id`, watch events
//!   demultiplexed, connection health; no I/O, no locks;
//! * [`client`]: [`client::Client`], the [`xenbus_interface::api::Store`]
//!   implementation (lock, waiting with timeouts, transactions with retry,
//!   watches, reconnect);
//! * [`device`]: what every frontend does with a store (backend path and id,
//!   `XenbusState`s, typed `feature-*` keys, keys written in a transaction).
//!
//! `fake` (feature `test-utils`) is an in-memory xenstored behind both
//! transports, with hostile modes, for unit tests.
//!
//! # Building a client on a platform
//! * dom0 user space (the rig): implement [`transport::ByteStream`] on the
//!   non-blocking descriptor (`EAGAIN` = `Ok(0)`), wrap it in
//!   [`StreamTransport::xenbus_device`] (`/dev/xen/xenbus`, 4080-byte payloads)
//!   or [`StreamTransport::new`] (xenstored's socket), and give
//!   [`Client::new`] a platform implementing [`Wait`] (`poll(2)` on the
//!   descriptor) and [`Clock`].
//! * a guest (Windows XENBUS, the rig's guest kernel): implement
//!   [`RingPage`] over the mapped `xenstore_domain_interface` (ordering
//!   contract in [`ring`]) and [`Notify`] over the xenstore event channel, build
//!   [`RingTransport::new`], and give [`Client::new`] a [`Wait`] woken by that
//!   event channel.
//!
//! The client is then a [`xenbus_interface::api::Store`]; [`Client::submit`] /
//! [`Client::wait_reply`] pipeline requests, [`Client::transaction`] retries on
//! conflict, [`Client::reconnect`] resumes on a new transport with every watch
//! registered again.
#![no_std]
#![deny(missing_docs, unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod client;
pub mod device;
pub mod engine;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_bodies;
pub mod guest;
pub mod ring;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod wire;

pub use client::{Client, ClientConfig, Clock, Wait, with_transaction};
pub use engine::{EngineConfig, Ticket};
pub use ring::{Notify, RingPage, RingTransport};
pub use transport::{ByteStream, StreamTransport, Transport, TransportError};
