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
//! [`fake`] (feature `test-utils`) is an in-memory xenstored behind both
//! transports, with hostile modes, for unit tests.
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
pub mod ring;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod wire;

pub use client::{Client, ClientConfig, Clock, Wait, with_transaction};
pub use engine::{EngineConfig, Ticket};
pub use ring::{Notify, RingPage, RingTransport};
pub use transport::{ByteStream, StreamTransport, Transport, TransportError};
