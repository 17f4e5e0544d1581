//! Every trait through the C tables and back: a child-side wrapper over a
//! bus-side provider over an in-memory fake. This is the plumbing Windows
//! uses, and the rig runs it against the real Linux platform.
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "a test plays a C child: one SAFETY note covers a call sequence"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use xenbus_interface::api::{
    Access, Debug, DomId, EventChannels, GrantError, GrantTable, Permission, Pfn, Store,
    StoreError, Suspend, SuspendPhase, Txn, XsError,
};
use xenbus_interface::debug::DebugInterfaceV1;
use xenbus_interface::debug::bus::DebugProvider;
use xenbus_interface::debug::child::ChildDebug;
use xenbus_interface::evtchn::bus::EvtchnProvider;
use xenbus_interface::evtchn::child::ChildEvtchn;
use xenbus_interface::fake::{FakeDebug, FakeEvtchn, FakeGnttab, FakeStore, FakeSuspend};
use xenbus_interface::gnttab::bus::GnttabProvider;
use xenbus_interface::gnttab::child::ChildGnttab;
use xenbus_interface::serve::{Bus, ServeInterface, query};
use xenbus_interface::store::bus::{Outstanding, StoreProvider};
use xenbus_interface::store::child::ChildStore;
use xenbus_interface::store::events::Loopback;
use xenbus_interface::store::{PAYLOAD_MAX, StoreInterfaceV2};
use xenbus_interface::suspend::bus::SuspendProvider;
use xenbus_interface::suspend::child::ChildSuspend;
use xenbus_interface::types::{STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SUCCESS};

fn store_pair(provider: &StoreProvider<FakeStore, Loopback>) -> Bus<'_> {
    let mut bus = Bus::new();
    bus.serve(provider).unwrap();
    bus
}

#[test]
fn store_operations_round_trip() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let bus = store_pair(&provider);
    let store = ChildStore::new(&bus, Loopback).unwrap();
    assert_eq!(store.version(), 2);

    store
        .write(Txn::NONE, "device/vbd/768/state", b"1")
        .unwrap();
    store
        .write(Txn::NONE, "device/vbd/768/ring-ref", b"8")
        .unwrap();
    store
        .write(Txn::NONE, "device/vbd/832/state", b"100% done")
        .unwrap();
    assert_eq!(store.read(Txn::NONE, "device/vbd/768/state").unwrap(), b"1");
    assert_eq!(
        store.read(Txn::NONE, "device/vbd/832/state").unwrap(),
        b"100% done"
    );
    assert_eq!(
        store.directory(Txn::NONE, "device/vbd").unwrap(),
        ["768", "832"]
    );
    assert_eq!(
        store.directory(Txn::NONE, "device/vbd/768").unwrap(),
        ["ring-ref", "state"]
    );
    assert_eq!(
        store.read(Txn::NONE, "device/vif").unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );
    assert_eq!(
        store.directory(Txn::NONE, "nowhere").unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );

    // mkdir: creates empty, leaves an existing value alone.
    store.mkdir(Txn::NONE, "data/empty").unwrap();
    assert_eq!(store.read(Txn::NONE, "data/empty").unwrap(), b"");
    store.mkdir(Txn::NONE, "device/vbd/768/state").unwrap();
    assert_eq!(store.read(Txn::NONE, "device/vbd/768/state").unwrap(), b"1");

    let perms = [
        Permission {
            domid: DomId(5),
            access: Access::None,
        },
        Permission {
            domid: DomId(0),
            access: Access::Both,
        },
        Permission {
            domid: DomId(7),
            access: Access::Read,
        },
        Permission {
            domid: DomId(8),
            access: Access::Write,
        },
    ];
    store
        .set_permissions(Txn::NONE, "device/vbd/768/state", &perms)
        .unwrap();
    assert_eq!(
        provider
            .store()
            .permissions("device/vbd/768/state")
            .unwrap(),
        perms
    );

    store.remove(Txn::NONE, "device/vbd/768").unwrap();
    assert_eq!(store.directory(Txn::NONE, "device/vbd").unwrap(), ["832"]);
    assert_eq!(
        store.remove(Txn::NONE, "device/vbd/768").unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );

    // What the C interface cannot carry is refused before the bus.
    assert_eq!(
        store.write(Txn::NONE, "a", b"x\0y").unwrap_err(),
        StoreError::BadValue
    );
    assert_eq!(
        store.read(Txn::NONE, "").unwrap_err(),
        StoreError::InvalidPath
    );
    assert_eq!(
        store.read(Txn::NONE, "a\0b").unwrap_err(),
        StoreError::InvalidPath
    );
    // Limits are the implementation's; the error survives the trip.
    let big = vec![b'v'; PAYLOAD_MAX + 1];
    assert!(matches!(
        store.write(Txn::NONE, "big", &big).unwrap_err(),
        StoreError::TooLarge {
            max: PAYLOAD_MAX,
            ..
        }
    ));
    let at_limit = vec![b'v'; PAYLOAD_MAX];
    store.write(Txn::NONE, "big", &at_limit).unwrap();
    assert_eq!(store.read(Txn::NONE, "big").unwrap(), at_limit);

    drop(store);
    assert_eq!(provider.outstanding(), Outstanding::default());
    assert!(provider.references().idle());
}

#[test]
fn store_transactions_round_trip() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let bus = store_pair(&provider);
    let store = ChildStore::new(&bus, Loopback).unwrap();

    let txn = store.transaction_start().unwrap();
    assert_ne!(txn, Txn::NONE);
    store.write(txn, "backend/state", b"4").unwrap();
    assert_eq!(store.read(txn, "backend/state").unwrap(), b"4");
    assert_eq!(provider.outstanding().transactions, 1);
    store.transaction_end(txn, true).unwrap();
    assert_eq!(provider.outstanding().transactions, 0);
    assert_eq!(provider.store().open_transactions(), 0);

    // A conflict comes back as EAGAIN and consumes the transaction.
    provider.store().inject_conflicts(1);
    let txn = store.transaction_start().unwrap();
    assert_eq!(
        store.transaction_end(txn, true).unwrap_err(),
        StoreError::Xs(XsError::Eagain)
    );
    assert_eq!(
        store.transaction_end(txn, true).unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );
    assert_eq!(
        store.read(txn, "backend/state").unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );

    // Transactions left open are aborted when the child goes.
    let _open = store.transaction_start().unwrap();
    drop(store);
    assert_eq!(provider.outstanding(), Outstanding::default());
    assert_eq!(provider.store().open_transactions(), 0);
}

#[test]
fn store_watches_round_trip() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let bus = store_pair(&provider);
    let store = ChildStore::new(&bus, Loopback).unwrap();
    let short = Duration::from_millis(1);

    let watch = store.watch_add("backend/vbd").unwrap();
    // xenstored fires a watch once when it is added.
    assert!(store.watch_wait(watch, short).unwrap());
    assert!(!store.watch_wait(watch, short).unwrap());
    store
        .write(Txn::NONE, "backend/vbd/0/768/state", b"2")
        .unwrap();
    assert!(store.watch_wait(watch, short).unwrap());
    store.write(Txn::NONE, "frontend/other", b"2").unwrap();
    assert!(!store.watch_wait(watch, short).unwrap());

    let other = store.watch_add("frontend").unwrap();
    assert_ne!(watch, other);
    assert_eq!(provider.outstanding().watches, 2);
    store.watch_remove(watch).unwrap();
    assert_eq!(
        store.watch_wait(watch, short).unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );
    assert_eq!(
        store.watch_remove(watch).unwrap_err(),
        StoreError::Xs(XsError::Enoent)
    );
    assert_eq!(provider.store().watch_count(), 1);

    // Watches left are removed when the child goes.
    drop(store);
    assert_eq!(provider.outstanding(), Outstanding::default());
    assert_eq!(provider.store().watch_count(), 0);
}

#[test]
fn store_is_usable_from_many_threads() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let bus = store_pair(&provider);
    let store = ChildStore::new(&bus, Loopback).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..200 {
                    let path = format!("data/{t}/{i}");
                    store.write(Txn::NONE, &path, path.as_bytes()).unwrap();
                    assert_eq!(store.read(Txn::NONE, &path).unwrap(), path.as_bytes());
                    let txn = store.transaction_start().unwrap();
                    store.transaction_end(txn, false).unwrap();
                }
            });
        }
    });
    assert_eq!(store.directory(Txn::NONE, "data").unwrap().len(), 4);
    drop(store);
    assert_eq!(provider.outstanding(), Outstanding::default());
}

/// A C child: calls the raw table, including the variadic Printf with
/// integer conversions, and frees what Read and Directory return.
#[test]
fn store_serves_a_c_child() {
    let provider = StoreProvider::new(FakeStore::default(), Loopback);
    let bus = store_pair(&provider);
    let table = query::<StoreInterfaceV2>(&bus).unwrap().unwrap();
    let interface = core::ptr::from_ref(&table.header).cast_mut();
    let (acquire, release, printf, read, directory, free) = (
        table.acquire.unwrap(),
        table.release.unwrap(),
        table.printf.unwrap(),
        table.read.unwrap(),
        table.directory.unwrap(),
        table.free.unwrap(),
    );
    // SAFETY: calls as a C child makes them: valid header, NUL-terminated
    // strings, output pointers, each buffer freed once.
    unsafe {
        assert_eq!(acquire(interface), STATUS_SUCCESS);
        let mut prefix = *b"device/vif/0\0";
        let mut node = *b"mac\0";
        let status = printf(
            interface,
            core::ptr::null_mut(),
            prefix.as_mut_ptr(),
            node.as_mut_ptr(),
            c"%02x:%02X:%s:%u:%d:%llu".as_ptr().cast(),
            0x0a_u32,
            0xbc_u32,
            c"de".as_ptr(),
            4_000_000_000_u32,
            -7_i32,
            u64::MAX,
        );
        assert_eq!(status, STATUS_SUCCESS);
        let mut path = *b"device/vif/0/mac\0";
        let mut buffer = core::ptr::null_mut();
        assert_eq!(
            read(
                interface,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                path.as_mut_ptr(),
                &raw mut buffer
            ),
            STATUS_SUCCESS
        );
        let value = core::ffi::CStr::from_ptr(buffer.cast()).to_bytes();
        assert_eq!(value, b"0a:BC:de:4000000000:-7:18446744073709551615");
        // Double NUL after the value.
        assert_eq!(*buffer.add(value.len() + 1), 0);
        assert_eq!(provider.outstanding().buffers, 1);
        free(interface, buffer);
        assert_eq!(provider.outstanding().buffers, 0);
        // Freeing twice (or a foreign pointer) is ignored, not a crash.
        free(interface, buffer);

        let mut dir = *b"device/vif\0";
        let mut buffer = core::ptr::null_mut();
        assert_eq!(
            directory(
                interface,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                dir.as_mut_ptr(),
                &raw mut buffer
            ),
            STATUS_SUCCESS
        );
        assert_eq!(core::slice::from_raw_parts(buffer, 4), b"0\0\0\0");
        free(interface, buffer);

        let mut missing = *b"nothing\0";
        let mut buffer = core::ptr::null_mut();
        assert_eq!(
            read(
                interface,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                missing.as_mut_ptr(),
                &raw mut buffer
            ),
            STATUS_OBJECT_NAME_NOT_FOUND
        );
        assert!(buffer.is_null());
        release(interface);
    }
    assert_eq!(provider.outstanding(), Outstanding::default());
    assert!(provider.references().idle());
}

#[test]
fn event_channels_round_trip() {
    let provider = EvtchnProvider::new(FakeEvtchn::default());
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    let evtchn = ChildEvtchn::new(&bus, 5).unwrap();
    assert_eq!(evtchn.version(), 9);

    let fired = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&fired);
    let channel = evtchn
        .open_unbound_with(
            DomId(0),
            Some(Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .unwrap();
    let port = evtchn.port(&channel);
    assert_eq!(provider.evtchn().port_state(port), Some((DomId(0), 0, 0)));

    evtchn.notify(&channel);
    evtchn.notify(&channel);
    evtchn.unmask(&channel);
    assert_eq!(provider.evtchn().port_state(port), Some((DomId(0), 2, 1)));

    // The platform delivers an event for the port: the child's handler runs.
    assert!(provider.deliver(port));
    assert!(!provider.deliver(xenbus_interface::api::Port(port.0 + 100)));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    evtchn.trigger(&channel);
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    assert_eq!(evtchn.events(&channel), 2);
    assert_eq!(evtchn.bus_count(&channel), Some(2));
    assert!(evtchn.wait(&channel, 2, 0));
    assert!(!evtchn.wait(&channel, 3, 0));

    let plain = evtchn.open_unbound(DomId(3)).unwrap();
    assert_ne!(evtchn.port(&plain), port);
    assert_eq!(provider.open_channels(), 2);
    evtchn.close(channel);
    evtchn.close(plain);
    assert_eq!(provider.open_channels(), 0);
    assert_eq!(provider.evtchn().open_count(), 0);
    assert!(!provider.deliver(port));

    // Exhaustion comes back as an error, not a crash.
    provider.evtchn().limit(0);
    assert!(evtchn.open_unbound(DomId(0)).is_err());
    drop(evtchn);
    assert!(provider.references().idle());
}

#[test]
fn grants_round_trip() {
    let provider = GnttabProvider::new(FakeGnttab::new(16));
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    let gnttab = ChildGnttab::new(&bus, c"vbd", 4).unwrap();
    assert_eq!(gnttab.version(), 4);
    assert_eq!(gnttab.available(), 4);

    let refs: Vec<_> = (0..4)
        .map(|i| gnttab.grant(DomId(0), Pfn(0x100 + i), i % 2 == 0).unwrap())
        .collect();
    assert_eq!(gnttab.available(), 0);
    assert_eq!(
        gnttab.grant(DomId(0), Pfn(1), false),
        Err(GrantError::Exhausted)
    );
    for (i, gref) in refs.iter().enumerate() {
        assert_eq!(
            provider.gnttab().grant_of(*gref),
            Some((DomId(0), Pfn(0x100 + i as u64), i % 2 == 0))
        );
    }

    // A page the backend still maps: the grant stays, the caller is told.
    provider.gnttab().set_mapped(refs[1], true);
    assert_eq!(gnttab.revoke(refs[1]), Err(GrantError::InUse));
    assert!(provider.gnttab().grant_of(refs[1]).is_some());
    provider.gnttab().set_mapped(refs[1], false);
    gnttab.revoke(refs[1]).unwrap();
    assert_eq!(gnttab.revoke(refs[1]), Err(GrantError::Invalid));
    assert_eq!(gnttab.available(), 1);

    gnttab.revoke(refs[0]).unwrap();
    assert_eq!(provider.gnttab().active(), 2);
    // Grants left are revoked when the child goes, and the cache destroyed.
    drop(gnttab);
    assert_eq!(provider.gnttab().active(), 0);
    assert_eq!(provider.outstanding(), (0, 0));
    assert!(provider.references().idle());
}

#[test]
fn a_grant_still_mapped_at_teardown_is_never_released() {
    let provider = GnttabProvider::new(FakeGnttab::new(16));
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    let gnttab = ChildGnttab::new(&bus, c"vif", 2).unwrap();
    let gref = gnttab.grant(DomId(0), Pfn(7), false).unwrap();
    provider.gnttab().set_mapped(gref, true);
    drop(gnttab);
    // Still granted, and the cache is kept rather than destroyed under it.
    assert_eq!(
        provider.gnttab().grant_of(gref),
        Some((DomId(0), Pfn(7), false))
    );
    assert_eq!(provider.outstanding(), (1, 1));
}

#[test]
fn suspend_round_trip() {
    let provider = SuspendProvider::new(FakeSuspend::default());
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    let suspend = ChildSuspend::new(&bus).unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (early, late) = (Arc::clone(&order), Arc::clone(&order));
    let late_reg = suspend
        .register(
            SuspendPhase::Late,
            Box::new(move || late.lock().unwrap().push("late")),
        )
        .unwrap();
    let early_reg = suspend
        .register(
            SuspendPhase::Early,
            Box::new(move || early.lock().unwrap().push("early")),
        )
        .unwrap();
    assert_eq!(provider.registered(), 2);
    assert_eq!(suspend.count(), 0);
    suspend.trigger().unwrap();
    assert_eq!(suspend.count(), 1);
    assert_eq!(*order.lock().unwrap(), ["early", "late"]);
    suspend.deregister(early_reg);
    suspend.trigger().unwrap();
    assert_eq!(*order.lock().unwrap(), ["early", "late", "late"]);
    suspend.deregister(late_reg);
    assert_eq!(provider.registered(), 0);
    assert_eq!(provider.suspend().registered(), 0);
    drop(suspend);
    assert!(provider.references().idle());
}

#[test]
fn debug_round_trip() {
    // Callbacks are `'static`: so is what they print through (on Windows the
    // device extension; here, leaked).
    let provider: &'static _ = Box::leak(Box::new(DebugProvider::new(FakeDebug::default())));
    let bus: &'static mut Bus<'static> = Box::leak(Box::new(Bus::new()));
    bus.serve(provider).unwrap();
    let bus: &'static Bus<'static> = bus;
    let debug = Arc::new(ChildDebug::new(bus).unwrap());
    // Callbacks print through the same interface, as C callbacks do.
    std::thread::scope(|_| {
        let printer = Arc::clone(&debug);
        let registration = debug
            .register(
                "XENVBD|RING",
                Box::new(move |crashing| printer.print(&format!("crashing={crashing} req=3\n"))),
            )
            .unwrap();
        assert_eq!(provider.debug().prefixes(), ["XENVBD|RING"]);
        debug.trigger(Some(&registration));
        debug.trigger(None);
        assert_eq!(
            provider.debug().output(),
            "crashing=false req=3\ncrashing=false req=3\n"
        );
        debug.print("100% plain, %s not expanded");
        assert!(
            provider
                .debug()
                .output()
                .ends_with("100% plain, %s not expanded")
        );
        debug.deregister(registration);
        assert_eq!(provider.registered(), 0);
    });
    assert!(matches!(
        debug.register("", Box::new(|_| {})),
        Err(xenbus_interface::api::DebugError::InvalidPrefix)
    ));

    // A C child's Printf with conversions.
    let table = xenbus_interface::serve::query::<DebugInterfaceV1>(bus)
        .unwrap()
        .unwrap();
    let printf = table.printf.unwrap();
    // SAFETY: as a C child calls it: valid header, format and arguments.
    unsafe {
        printf(
            core::ptr::from_ref(&table.header).cast_mut(),
            c"%s: %08x %u\n".as_ptr().cast(),
            c"EVTCHN".as_ptr(),
            0xbeef_u32,
            42_u32,
        );
    }
    assert!(provider.debug().output().ends_with("EVTCHN: 0000beef 42\n"));
    drop(debug);
    assert!(provider.references().idle());
}

/// The rig's pull-style delivery: a child's `Wait` makes the provider wait
/// on the platform and deliver what arrives.
#[test]
fn event_channel_waits_pull_from_the_platform() {
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let pending = Arc::new(AtomicU32::new(1));
    let events = Arc::clone(&pending);
    let provider = EvtchnProvider::with_waiter(
        FakeEvtchn::default(),
        Box::new(move |_evtchn, port, timeout| {
            log.lock().unwrap().push((port, timeout));
            // One event is pending on the platform, then none.
            events
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }),
    );
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    let evtchn = ChildEvtchn::new(&bus, 5).unwrap();
    let handled = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&handled);
    let channel = evtchn
        .open_unbound_with(
            DomId(0),
            Some(Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .unwrap();
    let port = evtchn.port(&channel);
    // 250 ms, in 100 ns units.
    assert!(evtchn.wait(&channel, 1, 2_500_000));
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert!(!evtchn.wait(&channel, 2, 10));
    assert_eq!(
        *asked.lock().unwrap(),
        [
            (port, Some(Duration::from_millis(250))),
            (port, Some(Duration::from_micros(1)))
        ]
    );
    // Already reached: no platform wait.
    assert!(evtchn.wait(&channel, 1, 0));
    assert_eq!(asked.lock().unwrap().len(), 2);
    evtchn.close(channel);
}

/// A C child that leaks its handles: the provider cleans up when it goes.
#[test]
fn a_store_provider_cleans_up_what_a_child_leaked() {
    let store = Arc::new(FakeStore::default());
    let provider = StoreProvider::new(Arc::clone(&store), Loopback);
    let bus = {
        let mut bus = Bus::new();
        bus.serve(&provider).unwrap();
        bus
    };
    let child = ChildStore::new(&bus, Loopback).unwrap();
    let _txn = child.transaction_start().unwrap();
    let _watch = child.watch_add("x").unwrap();
    // The child vanishes without its destructor (a crashed C driver).
    std::mem::forget(child);
    assert_eq!(provider.outstanding().transactions, 1);
    assert_eq!(store.open_transactions(), 1);
    drop(bus);
    drop(provider);
    assert_eq!(store.open_transactions(), 0);
    assert_eq!(store.watch_count(), 0);
}

/// A platform store whose `watch_wait` blocks (as the rig's does), over the
/// fake.
#[derive(Default)]
struct BlockingStore(FakeStore);

impl Store for BlockingStore {
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        self.0.read(txn, path)
    }
    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.write(txn, path, value)
    }
    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        self.0.mkdir(txn, path)
    }
    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        self.0.remove(txn, path)
    }
    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        self.0.directory(txn, path)
    }
    fn set_permissions(
        &self,
        txn: Txn,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), StoreError> {
        self.0.set_permissions(txn, path, perms)
    }
    fn transaction_start(&self) -> Result<Txn, StoreError> {
        self.0.transaction_start()
    }
    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError> {
        self.0.transaction_end(txn, commit)
    }
    fn watch_add(&self, path: &str) -> Result<xenbus_interface::api::WatchId, StoreError> {
        self.0.watch_add(path)
    }
    fn watch_remove(&self, watch: xenbus_interface::api::WatchId) -> Result<(), StoreError> {
        self.0.watch_remove(watch)
    }
    fn watch_wait(
        &self,
        watch: xenbus_interface::api::WatchId,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let start = std::time::Instant::now();
        loop {
            if self.0.watch_wait(watch, timeout)? {
                return Ok(true);
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A child blocked in `watch_wait` wakes when another thread writes, and a
/// watch removed during a wait ends it cleanly (no use after free: the event
/// lives until the last waiter is done).
#[test]
fn store_watch_waits_across_threads() {
    let provider = StoreProvider::new(BlockingStore::default(), Loopback);
    let bus = {
        let mut bus = Bus::new();
        bus.serve(&provider).unwrap();
        bus
    };
    let store = ChildStore::new(&bus, Loopback).unwrap();
    let watch = store.watch_add("backend/state").unwrap();
    assert!(store.watch_wait(watch, Duration::ZERO).unwrap());

    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| store.watch_wait(watch, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        store.write(Txn::NONE, "backend/state/x", b"4").unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(true));

        let waiter = scope.spawn(|| store.watch_wait(watch, Duration::from_millis(300)));
        std::thread::sleep(Duration::from_millis(20));
        store.watch_remove(watch).unwrap();
        // The wait ends: the platform reports the watch gone (or a timeout).
        let ended = waiter.join().unwrap();
        assert!(
            matches!(ended, Err(StoreError::Xs(XsError::Enoent)) | Ok(false)),
            "{ended:?}"
        );
    });
    assert_eq!(provider.outstanding(), Outstanding::default());
}

#[test]
fn unplug_round_trip_on_every_version() {
    use xenbus_interface::api::{Unplug, UnplugDevices};
    use xenbus_interface::fake::FakeUnplug;
    use xenbus_interface::serve::QueryInterface;
    use xenbus_interface::types::{Guid, Interface, NtStatus, STATUS_NOT_SUPPORTED};
    use xenbus_interface::unplug::bus::UnplugProvider;
    use xenbus_interface::unplug::child::ChildUnplug;

    /// A bus that knows UNPLUG up to `max` only.
    struct Older<'a>(&'a Bus<'a>, u16);
    // SAFETY: forwards to a bus whose tables live as long as `'a`.
    unsafe impl QueryInterface for Older<'_> {
        unsafe fn query_interface(
            &self,
            guid: &Guid,
            version: u16,
            buffer: *mut Interface,
            size: u16,
        ) -> NtStatus {
            if version > self.1 {
                return STATUS_NOT_SUPPORTED;
            }
            // SAFETY: the caller's guarantee, passed on.
            unsafe { self.0.query_interface(guid, version, buffer, size) }
        }
    }

    let provider = UnplugProvider::new(FakeUnplug::default());
    let mut bus = Bus::new();
    bus.serve(&provider).unwrap();
    provider.unplug().set_boot_emulated(true);

    let unplug = ChildUnplug::new(&bus).unwrap();
    assert_eq!(unplug.version(), 3);
    unplug.request(UnplugDevices::Disks, true);
    assert_eq!(unplug.is_requested(UnplugDevices::Disks), Some(true));
    assert_eq!(unplug.is_requested(UnplugDevices::Nics), Some(false));
    assert_eq!(unplug.boot_emulated(), Some(true));
    assert!(unplug.reboot("XENVBD"));
    assert_eq!(provider.unplug().reboots(), ["XENVBD"]);
    unplug.request(UnplugDevices::Disks, false);
    assert_eq!(unplug.is_requested(UnplugDevices::Disks), Some(false));
    drop(unplug);

    // Older buses: what the version lacks is reported as unknown.
    let v2 = Older(&bus, 2);
    let unplug = ChildUnplug::new(&v2).unwrap();
    assert_eq!(unplug.version(), 2);
    unplug.request(UnplugDevices::Nics, true);
    assert_eq!(unplug.is_requested(UnplugDevices::Nics), Some(true));
    assert_eq!(unplug.boot_emulated(), None);
    assert!(!unplug.reboot("XENVIF"));
    drop(unplug);
    let v1 = Older(&bus, 1);
    let unplug = ChildUnplug::new(&v1).unwrap();
    assert_eq!(unplug.version(), 1);
    assert_eq!(unplug.is_requested(UnplugDevices::Nics), None);
    unplug.request(UnplugDevices::Nics, false);
    drop(unplug);
    assert_eq!(
        provider.unplug().is_requested(UnplugDevices::Nics),
        Some(false)
    );
    assert_eq!(provider.unplug().reboots(), ["XENVBD"]);
    assert!(provider.references().idle());
}
