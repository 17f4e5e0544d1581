//! The rig platform: the bus traits of `xenbus_interface::api` over Linux's Xen
//! devices, for running the portable cores as user-space programs in a Xen dom0.
//!
//! * [`evtchn`]: [`EventChannels`](xenbus_interface::api::EventChannels) over
//!   `/dev/xen/evtchn`, with a wait helper for the rig's event loop.
//! * [`gntalloc`]: [`GrantTable`](xenbus_interface::api::GrantTable) and
//!   [`Memory`](xenbus_interface::api::Memory) over `/dev/xen/gntalloc` (what a
//!   [`Pfn`](xenbus_interface::api::Pfn) means here is documented there).
//! * [`gntdev`]: mapping another domain's grants (the backend's view).
//! * [`stream`]: the byte stream to xenstored (`/dev/xen/xenbus` or its socket).
//! * [`store`]: the `xenbus-core` xenstore client over that stream.
//! * [`sys`]: the ioctl numbers and argument layouts of Linux's uapi headers.
//! * [`shared`]: volatile copies in and out of shared memory.
//!
//! Linux user space only: on other systems the crate is empty, so the workspace
//! still builds there.
#![cfg(target_os = "linux")]
#![deny(missing_docs)]

mod fd;

pub mod bus;
pub mod evtchn;
pub mod gntalloc;
pub mod gntdev;
pub mod shared;
pub mod store;
pub mod stream;
pub mod sys;
