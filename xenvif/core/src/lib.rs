//! XENVIF's portable core (`no_std` + `alloc`): the netfront engine that drives
//! Xen's netif protocol against a backend (netback), and the packet header
//! parsing, checksums and RSS hashing it needs.
//!
//! Layers are modules, as in smoltcp: [`wire`] holds byte formats (Ethernet,
//! VLAN, IPv4, IPv6, TCP, UDP, checksums) as typed views; [`rss`] the Toeplitz
//! hash and queue selection. Nothing here reads a clock, blocks, or trusts a
//! byte that came from a packet or from the backend.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs, unsafe_code)]

extern crate alloc;

pub mod backend;
pub mod ctrl;
pub mod error;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzz;
pub mod netfront;
pub mod rss;
pub mod rx;
pub mod settings;
pub mod stats;
pub mod tx;
pub mod wire;
