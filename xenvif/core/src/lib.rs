//! XENVIF's portable core (`no_std` + `alloc`): the netfront engine that drives
//! Xen's netif protocol against a backend (netback), and the packet header
//! parsing, checksums and RSS hashing it needs.
//!
//! Layers are modules, as in smoltcp:
//! - [`wire`]: byte formats (Ethernet, VLAN, IPv4, IPv6 with extension
//!   headers, TCP, UDP, Internet checksums) as typed views;
//! - [`rss`]: the Toeplitz hash (Microsoft's verification vectors), hash
//!   inputs per type, queue selection through a mapping table;
//! - [`tx`], [`rx`], [`ctrl`]: one queue's transmit and receive rings and the
//!   control ring, every response validated ([`error::Violation`]);
//!   [`coalesce`]: the per-queue copy pool for packets with too many
//!   fragments (or `TransmitterAlwaysCopy`);
//! - [`backend`], [`settings`], [`netfront`]: what the backend offers, our
//!   knobs, the xenbus handshake, reconnect and teardown;
//! - [`stats`]: NDIS-shaped counters;
//! - [`filter`]: receive filter levels (unicast / multicast / broadcast:
//!   none, matching, all) and the multicast list, an opt-in check on received
//!   frames;
//! - `fake` (feature `test-utils`): a scripted netback on real in-memory
//!   rings; `fuzz`: the bodies of the cargo-fuzz targets in `fuzz/`.
//!
//! Nothing here reads a clock, blocks outside the handshake's bounded store
//! waits, allocates on the data path, or trusts a byte that came from a packet
//! or from the backend.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs, unsafe_code)]

extern crate alloc;

pub mod backend;
pub mod coalesce;
pub mod ctrl;
pub mod error;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod filter;
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzz;
pub mod netfront;
pub mod rss;
pub mod rx;
pub mod settings;
pub mod stats;
pub mod tx;
pub mod wire;
