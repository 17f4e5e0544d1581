//! What a XENBUS child sees of its bus.
//!
//! * [`api`]: the safe traits every portable core is written against (`Store`,
//!   `EventChannels`, `GrantTable`, `Memory`, ...). The Windows shells, the Linux rig
//!   platform and the unit-test fakes implement them.
//! * The C-layout interface tables (one module per interface) that XENBUS serves to
//!   children through `IRP_MN_QUERY_INTERFACE`, layout-compatible with the Xen
//!   Project's C drivers, with version negotiation and the PDO revision table.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod api;
