//! What a XENBUS child sees of its bus.
//!
//! * [`api`]: the safe traits every portable core is written against (`Store`,
//!   `EventChannels`, `GrantTable`, `Suspend`, `Debug`, `Memory`, ...). The
//!   Windows shells, the Linux rig platform and the unit-test fakes implement
//!   them.
//! * The C-layout interface tables XENBUS serves to its children through
//!   `IRP_MN_QUERY_INTERFACE`, one module per interface, one type per released
//!   version, layout-compatible with the Xen Project's C drivers on x86_64 (the
//!   only target they are defined for): [`store`], [`evtchn`], [`gnttab`],
//!   [`suspend`], [`debug`], [`unplug`], [`shared_info`], [`console`],
//!   [`range_set`], [`cache`], [`emulated`] (XENFILT) and [`vif`] (XENVIF).
//! * [`serve`]: the bus side of a query (C semantics: `STATUS_NOT_SUPPORTED`,
//!   `STATUS_BUFFER_OVERFLOW`), reference counting, and the child side's
//!   negotiation (newest version first, falling back within its range).
//! * [`revision`]: the PDO revision table (revision number to the version of
//!   every interface) and the hardware and compatible IDs it implies.
//! * [`types`] (Windows scalars, `NTSTATUS` values, `GUID`, the `INTERFACE`
//!   header), [`table`] (what every table version has in common) and
//!   [`printf`] (the format subset behind the bus-side `Printf`s).
//! * `fake` (feature `test-utils`): in-memory implementations of the traits
//!   for unit tests; `fuzz_bodies` (feature `fuzzing`): the bodies of the
//!   cargo-fuzz targets in `fuzz/`.
//!
//! # The round trip: trait → table → trait
//!
//! Cores never touch a table. For STORE, EVTCHN, GNTTAB, SUSPEND and DEBUG this
//! crate has both ends:
//! * a **bus-side provider** (`store::bus::StoreProvider`,
//!   `evtchn::bus::EvtchnProvider`, ...) that serves the C table from *any*
//!   implementation of the trait: `Context` points at the provider, and each
//!   table method is an `unsafe extern "C"` trampoline into the trait;
//! * a **child-side wrapper** (`store::child::ChildStore`,
//!   `evtchn::child::ChildEvtchn`, ...) that queries the table from a
//!   [`serve::QueryInterface`] and implements the trait by calling it.
//!
//! On Windows, XENBUS serves its own implementation through the providers and
//! the shells of XENVBD, XENVIF and XENIFACE consume XENBUS (ours or the Xen
//! Project's) through the wrappers. The rig does both in one process, so every
//! rig test runs through the same tables Windows uses:
//!
//! ```
//! use xenbus_interface::api::{Store, Txn};
//! use xenbus_interface::fake::FakeStore;
//! use xenbus_interface::serve::Bus;
//! use xenbus_interface::store::{bus::StoreProvider, child::ChildStore, events::Loopback};
//!
//! // Bus side: serve the platform's implementation (here an in-memory fake;
//! // in the rig, the Linux platform over /dev/xen/xenbus).
//! let provider = StoreProvider::new(FakeStore::default(), Loopback);
//! let mut bus = Bus::new();
//! bus.serve(&provider).unwrap();
//!
//! // Child side: query the table and use it as a `Store`.
//! let store = ChildStore::new(&bus, Loopback).unwrap();
//! store.write(Txn::NONE, "device/vbd/768/state", b"1").unwrap();
//! assert_eq!(store.read(Txn::NONE, "device/vbd/768/state").unwrap(), b"1");
//! drop(store);
//! assert!(provider.outstanding() == Default::default());
//! ```
//!
//! The others go the same way:
//!
//! | trait | bus side (serve) | child side (consume) |
//! |---|---|---|
//! | `Store` | `store::bus::StoreProvider::new(impl, Loopback)` | `store::child::ChildStore::new(&bus, Loopback)` |
//! | `EventChannels` | `evtchn::bus::EvtchnProvider::new(impl)` or `::with_waiter(impl, waiter)` | `evtchn::child::ChildEvtchn::new(&bus, 5)` |
//! | `GrantTable` | `gnttab::bus::GnttabProvider::new(impl)` | `gnttab::child::ChildGnttab::new(&bus, c"name", capacity)` |
//! | `Suspend` | `suspend::bus::SuspendProvider::new(impl)` | `suspend::child::ChildSuspend::new(&bus)` |
//! | `Debug` | `debug::bus::DebugProvider::new(impl)` | `debug::child::ChildDebug::new(&bus)` |
//! | `Unplug` | `unplug::bus::UnplugProvider::new(impl)` | `unplug::child::ChildUnplug::new(&bus)` |
//!
//! Notes for a platform serving itself (the rig):
//! * one [`serve::Bus`] holds every provider (`bus.serve(&provider)`); or
//!   implement [`serve::QueryInterface`] on the platform object and forward to
//!   a `Bus` built on the spot. A child borrows the bus (`ChildStore<'bus, _>`),
//!   so the providers outlive the children by construction;
//! * events reach a child's channel callback when the platform calls
//!   `EvtchnProvider::deliver(port)` (push), or when the child waits
//!   (`ChildEvtchn::wait`) on a provider made `with_waiter` (pull: the
//!   provider waits on the platform's port for the child's timeout);
//! * STORE watches carry a `KEVENT` the child owns; in one process,
//!   [`store::events::Loopback`] on both sides makes a child's `watch_wait`
//!   run the platform's `Store::watch_wait` (which should block up to the
//!   timeout);
//! * the `Debug` and `Suspend` callbacks are `'static`: what a callback prints
//!   through must be too (on Windows, the device extension).
//!
//! Ownership across the boundary is the C interface's: buffers `Read` and
//! `Directory` return are freed with `Free` by the wrapper, exactly once;
//! handles (transactions, watches, channels, grant entries, callbacks) are
//! owned by the bus from creation until the call that ends them. Providers
//! record what they handed out, refuse handles they did not make, and clean
//! up what a vanished child left (watches, transactions, channels); a grant
//! whose page the remote end still maps is never revoked behind its back.
//!
//! Variadic methods (STORE and DEBUG `Printf`, EVTCHN `Open`): children call
//! them as C does; the bus-side trampolines are fixed-arity functions reading
//! integer-class argument slots, which is how both x86_64 conventions pass
//! variadic integer and pointer arguments ([`printf`] has the details and the
//! format subset). Stable Rust cannot define a C variadic function.
//!
//! `unsafe` lives here, at the C boundary, each block with its reason.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod api;
pub mod cache;
pub mod console;
pub mod debug;
pub mod emulated;
pub mod evtchn;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_bodies;
pub mod gnttab;
pub mod printf;
pub mod range_set;
pub mod revision;
pub mod serve;
pub mod shared_info;
pub mod store;
pub mod suspend;
pub mod table;
pub mod types;
pub mod unplug;
pub mod vif;
