//! `store`: the rig platform (`xenbus-rig`) against the real Xen in dom0: the
//! xenstore client through the STORE plumbing against the C xenstored, event
//! channels over `/dev/xen/evtchn`, grants over `/dev/xen/gntalloc` and
//! `/dev/xen/gntdev`; and the xenstore bench, ours against libxenstore.

use std::time::Duration;

use xenbus_core::device;
use xenbus_core::wire::{FrameDecoder, MsgType, Request, parse_watch_event};
use xenbus_core::with_transaction;
use xenbus_interface::api::{
    Access, DomId, EventChannels, GrantError, GrantRef, GrantTable, Memory, Permission, Pfn, Port,
    Store, StoreError, Txn, XenbusState, XsError,
};
use xenbus_interface::store::bus::Outstanding;
use xenbus_rig::bus::RigBus;
use xenbus_rig::gntdev::GntdevDevice;
use xenbus_rig::shared;
use xenbus_rig::stream::{Transport as StreamKind, XenstoreStream};

use crate::{Bench, BenchRow, Suite, Test};

/// The suite.
pub const SUITE: Suite = Suite {
    name: "store",
    tests: &[
        Test {
            name: "basic_operations",
            run: store_basic_operations,
        },
        Test {
            name: "permissions",
            run: store_permissions,
        },
        Test {
            name: "transactions",
            run: store_transactions,
        },
        Test {
            name: "transaction_conflict_retry",
            run: store_transaction_conflict_retry,
        },
        Test {
            name: "watch_fires_and_stops",
            run: store_watch_fires_and_stops,
        },
        Test {
            name: "watch_token_intact",
            run: store_watch_token_intact,
        },
        Test {
            name: "value_size_limit",
            run: store_value_size_limit,
        },
        Test {
            name: "64_in_flight",
            run: store_64_in_flight,
        },
        Test {
            name: "cross_check_xen_tools",
            run: store_cross_check_xen_tools,
        },
        Test {
            name: "xenbus_handshake",
            run: store_xenbus_handshake,
        },
        Test {
            name: "evtchn_loopback_notify",
            run: evtchn_loopback_notify,
        },
        Test {
            name: "evtchn_callback_dispatch",
            run: evtchn_callback_dispatch,
        },
        Test {
            name: "grant_roundtrip_gntdev",
            run: grant_roundtrip_gntdev,
        },
        Test {
            name: "grant_refuses_foreign",
            run: grant_refuses_foreign,
        },
    ],
    benches: &[Bench {
        name: "xenstore_ops",
        run: bench_xenstore_ops,
    }],
};

/// How long a test waits for something that should happen at once.
const PROMPT: Duration = Duration::from_secs(2);

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// 100 ns units of a duration, for EVTCHN's `Wait`.
fn ticks(d: Duration) -> u64 {
    u64::try_from(d.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// A child's unbound port (through the EVTCHN table), bound back from the bus
/// side's `/dev/xen/evtchn` with BIND_INTERDOMAIN (the backend's half): a
/// notify on either end fires the other; a masked port holds its event until
/// the child unmasks it; `Wait` counts events.
fn evtchn_loopback_notify() -> Result<(), String> {
    let bus = open_bus()?;
    let ev = bus.child_evtchn();
    let dev = bus.evtchn();
    let a = ev
        .open_unbound(DomId(0))
        .map_err(|e| format!("open unbound through EVTCHN: {e}"))?;
    let port_a = ev.port(&a);
    let b = dev
        .bind_interdomain(DomId(0), port_a)
        .map_err(|e| format!("bind interdomain to port {port_a}: {e}"))?;
    let result = (|| {
        if port_a == dev.port(&b) {
            return Err(format!("both ends have port {port_a}"));
        }
        // Xen sets the newly bound end pending at bind time (notifications sent
        // to the unbound port before the bind would otherwise be lost): take
        // that one first.
        if dev
            .wait(dev.port(&b), Duration::from_millis(200))
            .map_err(err("wait b"))?
        {
            dev.unmask(&b);
        }
        dev.notify(&b);
        if !ev.wait(&a, 1, ticks(PROMPT)) {
            return Err(format!(
                "port {port_a} did not fire after notify from {}",
                dev.port(&b)
            ));
        }
        expect_eq("callback count", ev.events(&a), 1)?;
        expect_eq("bus count", ev.bus_count(&a), Some(1))?;
        ev.notify(&a);
        if !dev.wait(dev.port(&b), PROMPT).map_err(err("wait b"))? {
            return Err("the backend end did not fire after the child's notify".into());
        }
        // The child has not unmasked: a second event is held...
        dev.notify(&b);
        if ev.wait(&a, 2, ticks(Duration::from_millis(300))) {
            return Err("a masked port fired".into());
        }
        // ...and delivered once it does.
        ev.unmask(&a);
        if !ev.wait(&a, 2, ticks(PROMPT)) {
            return Err("the held event was not delivered after unmask".into());
        }
        ev.unmask(&a);
        dev.unmask(&b);
        Ok(())
    })();
    ev.close(a);
    dev.close(b);
    result?;
    expect_eq("channels left open", bus.open_channels(), 0)
}

/// A channel opened with a handler: the rig's event loop
/// ([`RigBus::dispatch_events`]) runs it when the port fires, as the upcall
/// DPC does on Windows.
fn evtchn_callback_dispatch() -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let bus = open_bus()?;
    let ev = bus.child_evtchn();
    let dev = bus.evtchn();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let a = ev
        .open_unbound_with(
            DomId(0),
            Some(Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .map_err(|e| format!("open unbound with a handler: {e}"))?;
    let b = dev
        .bind_interdomain(DomId(0), ev.port(&a))
        .map_err(|e| format!("bind interdomain: {e}"))?;
    let result = (|| {
        if dev
            .wait(dev.port(&b), Duration::from_millis(200))
            .map_err(err("wait b"))?
        {
            dev.unmask(&b);
        }
        dev.notify(&b);
        let delivered = bus.dispatch_events(PROMPT).map_err(err("dispatch"))?;
        expect_eq("delivered", delivered, 1)?;
        expect_eq("handler calls", calls.load(Ordering::SeqCst), 1)?;
        ev.unmask(&a);
        // Nothing more pending: the loop times out quietly.
        expect_eq(
            "delivered when idle",
            bus.dispatch_events(Duration::from_millis(100))
                .map_err(err("dispatch"))?,
            0,
        )
    })();
    ev.close(a);
    dev.close(b);
    result
}

/// Pages from the platform's Memory, granted to dom0 through the GNTTAB
/// table, mapped back with gntdev (the backend's view): what we write is seen
/// through the mapping and the reverse; revoking gives the grants back.
fn grant_roundtrip_gntdev() -> Result<(), String> {
    let bus = open_bus()?;
    let memory = bus.memory();
    let gnttab = bus.child_gnttab();
    let gntdev = GntdevDevice::open().map_err(err("open gntdev"))?;
    let pages = memory.try_alloc(3).map_err(err("alloc 3 pages"))?;
    let result = (|| {
        let mut zero = vec![0xffu8; pages.len()];
        shared::read_pages(&pages, 0, &mut zero).map_err(|e| e.to_string())?;
        if zero.iter().any(|&b| b != 0) {
            return Err("fresh pages are not zeroed".into());
        }
        for i in 0..3 {
            if pages.pfn(i).map(|p| p.0) != pages.pfn(0).map(|p| p.0 + i as u64) {
                return Err(format!("pfns not consecutive: {:?}", pages.pfns()));
            }
        }
        let before = GrantTable::available(memory);
        let refs = pages
            .pfns()
            .iter()
            .map(|&pfn| gnttab.grant(DomId(0), pfn, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("grant through GNTTAB: {e}"))?;
        expect_eq(
            "platform grants available after 3",
            GrantTable::available(memory) + 3,
            before,
        )?;
        expect_eq("grants held through GNTTAB", bus.gnttab_outstanding().1, 3)?;
        let texts = [b"page zero".as_slice(), b"page one", b"page two"];
        for (i, text) in texts.iter().enumerate() {
            shared::write_pages(&pages, i * 4096 + 100, text).map_err(|e| e.to_string())?;
        }
        let map = gntdev.map(DomId(0), &refs).map_err(err("gntdev map"))?;
        for (i, text) in texts.iter().enumerate() {
            let mut seen = vec![0u8; text.len()];
            map.read(i * 4096 + 100, &mut seen)
                .map_err(|e| e.to_string())?;
            if seen != *text {
                return Err(format!("page {i} through gntdev: {seen:?}"));
            }
        }
        map.write(2 * 4096 + 7, b"from the backend")
            .map_err(|e| e.to_string())?;
        let mut back = [0u8; 16];
        shared::read_pages(&pages, 2 * 4096 + 7, &mut back).map_err(|e| e.to_string())?;
        if &back != b"from the backend" {
            return Err(format!("gntdev write not seen in our page: {back:?}"));
        }
        drop(map);
        for gref in refs {
            gnttab
                .revoke(gref)
                .map_err(|e| format!("revoke {gref}: {e}"))?;
        }
        expect_eq("grants held after revoke", bus.gnttab_outstanding().1, 0)?;
        if gnttab.revoke(GrantRef(u32::MAX)).is_ok() {
            return Err("revoking an unknown reference was not refused".into());
        }
        Ok(())
    })();
    memory.try_free(pages).map_err(err("free"))?;
    result
}

/// Grants to another domain, of a frame that is not ours, or of a freed page
/// are refused: exactly (BadFrame) by the platform, and through the table.
fn grant_refuses_foreign() -> Result<(), String> {
    let bus = open_bus()?;
    let memory = bus.memory();
    let pages = memory.alloc(1).map_err(|e| format!("alloc: {e}"))?;
    let pfn = pages.pfn(0).ok_or("no pfn")?;
    let cases = [
        ("to domain 1", DomId(1), pfn),
        ("of a frame not ours", DomId(0), Pfn(pfn.0 + 1)),
    ];
    for (what, domid, frame) in cases {
        expect_eq(
            what,
            memory.grant(domid, frame, false),
            Err(GrantError::BadFrame),
        )?;
        if bus.child_gnttab().grant(domid, frame, false).is_ok() {
            return Err(format!("grant {what} through GNTTAB was not refused"));
        }
    }
    memory.free(pages);
    expect_eq(
        "grant of a freed page",
        memory.grant(DomId(0), pfn, false),
        Err(GrantError::BadFrame),
    )?;
    expect_eq("grants held", bus.gnttab_outstanding().1, 0)
}

// ---- xenstore ----

/// Where the tests put their nodes; each test removes its own subtree.
const BASE: &str = "/local/domain/0/xenpv-rig-store";

/// A test's own subtree, removed (with everything below) when dropped.
struct Scratch<'a> {
    store: &'a dyn Store,
    path: String,
}

impl<'a> Scratch<'a> {
    fn new(store: &'a dyn Store, test: &str) -> Result<Self, String> {
        let path = format!("{BASE}/{test}");
        // A previous run may have died half-way.
        match store.remove(Txn::NONE, &path) {
            Ok(()) | Err(StoreError::Xs(XsError::Enoent)) => {}
            Err(e) => return Err(format!("clean {path}: {e}")),
        }
        Ok(Self { store, path })
    }

    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", self.path)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.store.remove(Txn::NONE, &self.path);
        let _ = self.store.remove(Txn::NONE, BASE);
    }
}

fn open_bus() -> Result<RigBus, String> {
    RigBus::open().map_err(|e| format!("open the rig bus: {e}"))
}

fn xs(what: String) -> impl Fn(StoreError) -> String {
    move |e| format!("{what}: {e}")
}

fn read_string(store: &dyn Store, path: &str) -> Result<String, String> {
    let value = store
        .read(Txn::NONE, path)
        .map_err(xs(format!("read {path}")))?;
    String::from_utf8(value).map_err(|_| format!("{path} is not UTF-8"))
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers pass fresh values; taking them keeps the call sites short"
)]
fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// read, write, mkdir, rm, directory through the bus's Store.
fn store_basic_operations() -> Result<(), String> {
    let bus = open_bus()?;
    let store = bus.store();
    let s = Scratch::new(store, "basic")?;
    let a = s.at("a");
    store
        .write(Txn::NONE, &a, b"alpha")
        .map_err(xs(format!("write {a}")))?;
    expect_eq("read back", read_string(store, &a)?, "alpha".into())?;
    // Values are bytes: non-UTF-8 bytes survive the table. The STORE table
    // (C semantics: Printf "%s") cannot carry a NUL and says so; the client
    // behind it can.
    let bin = s.at("bin");
    store
        .write(Txn::NONE, &bin, &[1, 2, 0xfe, 0xff])
        .map_err(xs(format!("write {bin}")))?;
    expect_eq(
        "binary",
        store.read(Txn::NONE, &bin).map_err(xs(bin.clone()))?,
        vec![1, 2, 0xfe, 0xff],
    )?;
    expect_eq(
        "NUL through the table",
        store.write(Txn::NONE, &bin, &[0, 1]),
        Err(StoreError::BadValue),
    )?;
    bus.client()
        .write(Txn::NONE, &bin, &[0, 1, 2, 0xff, 0])
        .map_err(xs(format!("client write {bin}")))?;
    expect_eq(
        "NUL through the client",
        bus.client()
            .read(Txn::NONE, &bin)
            .map_err(xs(bin.clone()))?,
        vec![0, 1, 2, 0xff, 0],
    )?;
    // Parents are created by a write; mkdir makes an empty node, twice is fine.
    let deep = s.at("d/e/f");
    store
        .write(Txn::NONE, &deep, b"deep")
        .map_err(xs(format!("write {deep}")))?;
    let dir = s.at("empty");
    store
        .mkdir(Txn::NONE, &dir)
        .map_err(xs(format!("mkdir {dir}")))?;
    store
        .mkdir(Txn::NONE, &dir)
        .map_err(xs(format!("mkdir {dir} again")))?;
    expect_eq(
        "empty node",
        store.read(Txn::NONE, &dir).map_err(xs(dir.clone()))?,
        Vec::new(),
    )?;
    let mut children = store
        .directory(Txn::NONE, &s.path)
        .map_err(xs(format!("directory {}", s.path)))?;
    children.sort();
    expect_eq(
        "children",
        children,
        vec!["a".to_string(), "bin".into(), "d".into(), "empty".into()],
    )?;
    expect_eq(
        "d/e",
        store
            .directory(Txn::NONE, &s.at("d/e"))
            .map_err(xs("dir d/e".into()))?,
        vec!["f".to_string()],
    )?;
    // rm takes the subtree; reading it then is ENOENT.
    store
        .remove(Txn::NONE, &s.at("d"))
        .map_err(xs("rm d".into()))?;
    expect_eq(
        "read removed",
        store.read(Txn::NONE, &deep),
        Err(StoreError::Xs(XsError::Enoent)),
    )?;
    expect_eq(
        "missing node",
        store.read(Txn::NONE, &s.at("nope")),
        Err(StoreError::Xs(XsError::Enoent)),
    )?;
    // Malformed paths are refused before they reach xenstored.
    expect_eq(
        "empty path",
        store.read(Txn::NONE, ""),
        Err(StoreError::InvalidPath),
    )?;
    expect_eq(
        "NUL in path",
        store.read(Txn::NONE, "/local/a\0b"),
        Err(StoreError::InvalidPath),
    )?;
    expect_eq("STORE, EVTCHN, GNTTAB versions", bus.versions(), (2, 9, 4))?;
    expect_eq(
        "handles left with the provider",
        bus.store_outstanding(),
        Outstanding::default(),
    )?;
    Ok(())
}

/// set_permissions through the Store, read back with XS_GET_PERMS, and seen by
/// `xenstore-ls -p`.
fn store_permissions() -> Result<(), String> {
    let bus = open_bus()?;
    let store = bus.store();
    let s = Scratch::new(store, "perms")?;
    let node = s.at("node");
    store
        .write(Txn::NONE, &node, b"x")
        .map_err(xs(format!("write {node}")))?;
    let perms = [
        Permission {
            domid: DomId(0),
            access: Access::None,
        },
        Permission {
            domid: DomId(5),
            access: Access::Read,
        },
        Permission {
            domid: DomId(7),
            access: Access::Both,
        },
    ];
    store
        .set_permissions(Txn::NONE, &node, &perms)
        .map_err(xs(format!("set perms {node}")))?;
    let got = bus
        .client()
        .get_permissions(Txn::NONE, &node)
        .map_err(xs(format!("get perms {node}")))?;
    expect_eq("permissions", got.as_slice(), perms.as_slice())?;
    let tool = crate::sh(&format!("xenstore-ls -p {}", s.path))?;
    if !tool.contains("(n0,r5,b7)") {
        return Err(format!("xenstore-ls -p shows {tool:?}, want (n0,r5,b7)"));
    }
    Ok(())
}

/// A transaction sees its own writes, others do not until commit; an aborted
/// transaction leaves nothing.
fn store_transactions() -> Result<(), String> {
    let bus = open_bus()?;
    let store = bus.store();
    let s = Scratch::new(store, "txn")?;
    let key = s.at("key");
    store
        .write(Txn::NONE, &key, b"before")
        .map_err(xs("write".into()))?;
    let txn = store.transaction_start().map_err(xs("start".into()))?;
    store
        .write(txn, &key, b"inside")
        .map_err(xs("write in txn".into()))?;
    expect_eq(
        "own write",
        store.read(txn, &key).map_err(xs("read in txn".into()))?,
        b"inside".to_vec(),
    )?;
    expect_eq(
        "outside before commit",
        read_string(store, &key)?,
        "before".into(),
    )?;
    store
        .transaction_end(txn, true)
        .map_err(xs("commit".into()))?;
    expect_eq("after commit", read_string(store, &key)?, "inside".into())?;
    let txn = store.transaction_start().map_err(xs("start 2".into()))?;
    store
        .write(txn, &key, b"aborted")
        .map_err(xs("write in txn 2".into()))?;
    store
        .write(txn, &s.at("new"), b"aborted")
        .map_err(xs("create in txn 2".into()))?;
    store
        .transaction_end(txn, false)
        .map_err(xs("abort".into()))?;
    expect_eq("after abort", read_string(store, &key)?, "inside".into())?;
    expect_eq(
        "created then aborted",
        store.read(Txn::NONE, &s.at("new")),
        Err(StoreError::Xs(XsError::Enoent)),
    )?;
    Ok(())
}

/// Two connections: the first reads a counter in a transaction, the second
/// changes it meanwhile, so the first commit fails with EAGAIN; the client's
/// retry redoes the body and the increment lands exactly once.
fn store_transaction_conflict_retry() -> Result<(), String> {
    let bus = open_bus()?;
    let other = RigBus::open().map_err(|e| format!("second connection: {e}"))?;
    let store = bus.store();
    let s = Scratch::new(store, "conflict")?;
    let counter = s.at("counter");
    store
        .write(Txn::NONE, &counter, b"10")
        .map_err(xs("write".into()))?;
    // Without retry: the conflict is reported as EAGAIN.
    let txn = store.transaction_start().map_err(xs("start".into()))?;
    let _ = store
        .read(txn, &counter)
        .map_err(xs("read in txn".into()))?;
    other
        .store()
        .write(Txn::NONE, &counter, b"20")
        .map_err(xs("other write".into()))?;
    store
        .write(txn, &counter, b"11")
        .map_err(xs("write in txn".into()))?;
    expect_eq(
        "commit after conflict",
        store.transaction_end(txn, true),
        Err(StoreError::Xs(XsError::Eagain)),
    )?;
    expect_eq(
        "value after failed commit",
        read_string(store, &counter)?,
        "20".into(),
    )?;
    // With retry: the first attempt conflicts, the second succeeds.
    let mut attempts = 0;
    with_transaction(store, 16, |txn| {
        attempts += 1;
        let value = store.read(txn, &counter)?;
        let n: u32 = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(StoreError::BadValue)?;
        if attempts == 1 {
            other.store().write(Txn::NONE, &counter, b"30")?;
        }
        store.write(txn, &counter, (n + 1).to_string().as_bytes())
    })
    .map_err(xs("transaction with retry".into()))?;
    expect_eq("attempts", attempts, 2)?;
    expect_eq("counter", read_string(store, &counter)?, "31".into())
}

/// A watch fires once at registration, then for writes at and below its path
/// (not beside it); the client's own watch reports the changed path (the STORE
/// table only signals); after removal xenstored sends nothing more for it.
fn store_watch_fires_and_stops() -> Result<(), String> {
    let bus = open_bus()?;
    let writer = RigBus::open().map_err(|e| format!("second connection: {e}"))?;
    let store = bus.store();
    let client = bus.client();
    let s = Scratch::new(store, "watch")?;
    let watched = s.at("w");
    store
        .mkdir(Txn::NONE, &watched)
        .map_err(xs("mkdir".into()))?;
    let watch = store
        .watch_add(&watched)
        .map_err(xs(format!("watch {watched}")))?;
    let paths_watch = client
        .watch_add(&watched)
        .map_err(xs(format!("client watch {watched}")))?;
    let quiet = Duration::from_millis(300);
    let fired = |what: &str| -> Result<(), String> {
        if store
            .watch_wait(watch, PROMPT)
            .map_err(xs(format!("wait {what}")))?
        {
            Ok(())
        } else {
            Err(format!("no watch event for {what}"))
        }
    };
    fired("registration")?;
    let child = s.at("w/child/grandchild");
    writer
        .store()
        .write(Txn::NONE, &child, b"1")
        .map_err(xs("write child".into()))?;
    fired("a write below the path")?;
    let mut paths = Vec::new();
    let deadline = std::time::Instant::now() + PROMPT;
    while !paths.contains(&child) {
        match client
            .watch_next_event(paths_watch)
            .map_err(xs("event".into()))?
        {
            Some(p) => paths.push(p),
            None if std::time::Instant::now() >= deadline => {
                return Err(format!("events {paths:?} do not name {child}"));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // Consume what is left (the write may have fired more than once).
    store
        .watch_wait(watch, Duration::from_millis(50))
        .map_err(xs("drain".into()))?;
    writer
        .store()
        .write(Txn::NONE, &s.at("beside"), b"1")
        .map_err(xs("write beside".into()))?;
    if store
        .watch_wait(watch, quiet)
        .map_err(xs("wait beside".into()))?
    {
        return Err("the watch fired for a write beside its path".into());
    }
    store.watch_remove(watch).map_err(xs("unwatch".into()))?;
    client
        .watch_remove(paths_watch)
        .map_err(xs("client unwatch".into()))?;
    expect_eq(
        "wait on a removed watch",
        store.watch_wait(watch, Duration::ZERO),
        Err(StoreError::Xs(XsError::Enoent)),
    )?;
    // Had xenstored kept either watch, this write would bring an event with
    // a token the client no longer knows (a "stray" event).
    let stray = client.stats().stray_events;
    writer
        .store()
        .write(Txn::NONE, &child, b"2")
        .map_err(xs("write after unwatch".into()))?;
    std::thread::sleep(quiet);
    client.poll().map_err(xs("poll".into()))?;
    expect_eq("events after removal", client.stats().stray_events, stray)
}

/// The watch token goes to xenstored and comes back byte for byte in every
/// event (checked on the wire, below the client).
fn store_watch_token_intact() -> Result<(), String> {
    let bus = open_bus()?;
    let s = Scratch::new(bus.store(), "token")?;
    let stream = XenstoreStream::open(StreamKind::Xenbus).map_err(err("open xenbus"))?;
    let token = "tok-\u{e9}t\u{e9} with spaces/and:punctuation 12345";
    let path = s.at("w");
    let watch = Request::watch(&path, token).map_err(|e| format!("watch request: {e:?}"))?;
    let bytes = watch
        .encode(0x77, 4080)
        .map_err(|e| format!("encode: {e:?}"))?;
    stream.send(&bytes, PROMPT).map_err(err("send XS_WATCH"))?;
    bus.store()
        .write(Txn::NONE, &s.at("w/x"), b"1")
        .map_err(xs("write".into()))?;
    let mut decoder = FrameDecoder::new(4096);
    let mut events = Vec::new();
    let mut acked = false;
    let deadline = std::time::Instant::now() + PROMPT;
    while (events.len() < 2 || !acked) && std::time::Instant::now() < deadline {
        let mut buf = [0u8; 8192];
        let n = stream
            .recv(&mut buf, Duration::from_millis(100))
            .map_err(err("recv"))?;
        let mut input = &buf[..n];
        while let Some(frame) = decoder
            .decode(&mut input)
            .map_err(|e| format!("decode: {e:?}"))?
        {
            match frame.kind {
                MsgType::WatchEvent => events
                    .push(parse_watch_event(&frame.payload).map_err(|e| format!("event: {e:?}"))?),
                MsgType::Watch => acked = frame.req_id == 0x77,
                other => return Err(format!("unexpected {other:?}")),
            }
        }
    }
    if !acked {
        return Err("no XS_WATCH acknowledgement with our req_id".into());
    }
    let paths: Vec<&str> = events.iter().map(|e| e.path.as_str()).collect();
    if !paths.contains(&path.as_str()) || !paths.contains(&s.at("w/x").as_str()) {
        return Err(format!(
            "events for {paths:?}, want the registration and w/x"
        ));
    }
    if let Some(bad) = events.iter().find(|e| e.token != token) {
        return Err(format!("token came back as {:?}", bad.token));
    }
    Ok(())
}

/// The largest value the transport carries is written and read back intact;
/// one byte more is refused by the client with TooLarge, before sending.
fn store_value_size_limit() -> Result<(), String> {
    for kind in [StreamKind::Xenbus, StreamKind::Socket] {
        let bus = RigBus::open_with(kind).map_err(|e| format!("open over {kind:?}: {e}"))?;
        let store = bus.store();
        let s = Scratch::new(store, "limit")?;
        let path = s.at("v");
        let max = bus.client().max_payload();
        // XS_WRITE payload: path, NUL, value.
        let fits = max - path.len() - 1;
        let value: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz"
            .iter()
            .copied()
            .cycle()
            .take(fits)
            .collect();
        store
            .write(Txn::NONE, &path, &value)
            .map_err(xs(format!("{kind:?}: write {fits} bytes")))?;
        let back = store
            .read(Txn::NONE, &path)
            .map_err(xs(format!("{kind:?}: read back")))?;
        if back != value {
            return Err(format!(
                "{kind:?}: {fits}-byte value read back as {} bytes",
                back.len()
            ));
        }
        let over = vec![b'z'; fits + 1];
        // The client refuses it before sending, naming the transport's limit.
        expect_eq(
            &format!("{kind:?}: one byte over, client"),
            bus.client().write(Txn::NONE, &path, &over),
            Err(StoreError::TooLarge { len: max + 1, max }),
        )?;
        // Through the STORE table the refusal arrives as an NTSTATUS
        // (STATUS_INVALID_BUFFER_SIZE), which carries no numbers: the child
        // sees TooLarge with its own request size and XENSTORE_PAYLOAD_MAX.
        match store.write(Txn::NONE, &path, &over) {
            Err(StoreError::TooLarge { .. }) => {}
            other => return Err(format!("{kind:?}: one byte over the limit gave {other:?}")),
        }
        // The connection is still good afterwards.
        expect_eq(
            &format!("{kind:?}: after refusal"),
            store
                .read(Txn::NONE, &path)
                .map_err(xs("read".into()))?
                .len(),
            fits,
        )?;
    }
    Ok(())
}

/// 64 requests submitted before any reply is read; every reply matches its
/// request. Over the socket all 64 are on the wire at once; over
/// `/dev/xen/xenbus` the platform paces them one at a time (the kernel reuses
/// its message buffer, see `xenbus_rig::stream`), and they still complete.
fn store_64_in_flight() -> Result<(), String> {
    for kind in [StreamKind::Socket, StreamKind::Xenbus] {
        let bus = RigBus::open_with(kind).map_err(|e| format!("open over {kind:?}: {e}"))?;
        let store = bus.store();
        let s = Scratch::new(store, "inflight")?;
        let started = std::time::Instant::now();
        for i in 0..64 {
            store
                .write(
                    Txn::NONE,
                    &s.at(&format!("k{i}")),
                    format!("value-{i}").as_bytes(),
                )
                .map_err(xs(format!("write k{i}")))?;
        }
        let written = started.elapsed();
        let client = bus.client();
        let tickets = (0..64)
            .map(|i| {
                let request = Request::read(0, &s.at(&format!("k{i}")))
                    .map_err(|e| format!("request: {e:?}"))?;
                client
                    .submit(&request)
                    .map_err(xs(format!("{kind:?}: submit k{i}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Collect in reverse order: replies are matched by id, not by position.
        for (i, ticket) in tickets.into_iter().enumerate().rev() {
            let frame = client
                .wait_reply(ticket, Duration::from_secs(60))
                .map_err(xs(format!("{kind:?}: reply k{i}")))?;
            expect_eq(
                &format!("{kind:?}: k{i}"),
                frame.payload,
                format!("value-{i}").into_bytes(),
            )?;
        }
        println!(
            "  {kind:?}: 64 writes {} ms, 64 pipelined reads {} ms",
            written.as_millis(),
            started.elapsed().saturating_sub(written).as_millis()
        );
    }
    Ok(())
}

/// What we write, Xen's own tools read, and the reverse.
fn store_cross_check_xen_tools() -> Result<(), String> {
    let bus = open_bus()?;
    let store = bus.store();
    let s = Scratch::new(store, "tools")?;
    let ours = s.at("ours");
    store
        .write(Txn::NONE, &ours, b"written by xenpv-rs")
        .map_err(xs("write".into()))?;
    expect_eq(
        "xenstore-read",
        crate::sh(&format!("xenstore-read {ours}"))?
            .trim_end()
            .to_string(),
        "written by xenpv-rs".into(),
    )?;
    let theirs = s.at("theirs");
    crate::sh(&format!(
        "xenstore-write {theirs} 'written by xenstore-write'"
    ))?;
    expect_eq(
        "our read",
        read_string(store, &theirs)?,
        "written by xenstore-write".into(),
    )?;
    let mut listed: Vec<String> = crate::sh(&format!("xenstore-list {}", s.path))?
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    let mut ours_listed = store
        .directory(Txn::NONE, &s.path)
        .map_err(xs("directory".into()))?;
    ours_listed.sort();
    expect_eq("xenstore-list vs directory", listed, ours_listed)?;
    crate::sh(&format!("xenstore-rm {theirs}"))?;
    expect_eq(
        "after xenstore-rm",
        store.read(Txn::NONE, &theirs),
        Err(StoreError::Xs(XsError::Enoent)),
    )?;
    Ok(())
}

/// Two of our endpoints play frontend and backend of a device, each on its own
/// rig bus, through the xenbus device helpers of `xenbus-core`: the frontend
/// finds its backend, grants a page and opens an event channel (through the
/// GNTTAB and EVTCHN tables), publishes them in one transaction and walks
/// Initialising -> Initialised -> Connected; the backend waits for it, maps the
/// page with gntdev, binds the channel and answers. Then Closing -> Closed.
fn store_xenbus_handshake() -> Result<(), String> {
    let front_bus = open_bus()?;
    let back_bus = open_bus()?;
    let s = Scratch::new(front_bus.store(), "handshake")?;
    let fe = s.at("device/vfoo/0");
    let be = s.at("backend/vfoo/0/0");
    let front = front_bus.store();
    // The toolstack's part, in one transaction.
    with_transaction(front, 16, |t| {
        front.write(t, &format!("{fe}/backend"), be.as_bytes())?;
        front.write(t, &format!("{fe}/backend-id"), b"0")?;
        front.write(t, &format!("{fe}/state"), b"1")?;
        front.write(t, &format!("{be}/frontend"), fe.as_bytes())?;
        front.write(t, &format!("{be}/frontend-id"), b"0")?;
        front.write(t, &format!("{be}/state"), b"1")
    })
    .map_err(xs("toolstack transaction".into()))?;
    std::thread::scope(|scope| {
        let backend = scope.spawn(|| play_backend(&back_bus, &fe, &be));
        let frontend = play_frontend(&front_bus, &fe);
        let backend = backend
            .join()
            .unwrap_or_else(|_| Err("backend thread panicked".into()));
        frontend
            .map_err(|e| format!("frontend: {e}"))
            .and(backend.map_err(|e| format!("backend: {e}")))
    })
}

const MAGIC: &[u8] = b"xenpv-rs shared page";

fn dev(what: &'static str) -> impl Fn(device::DeviceError) -> String {
    move |e| format!("{what}: {e}")
}

fn play_frontend(bus: &RigBus, fe: &str) -> Result<(), String> {
    let store = bus.store();
    let clock = bus.client().platform();
    let limit = PROMPT * 5;
    let backend = device::read_backend(store, fe).map_err(dev("read backend"))?;
    expect_eq("backend-id", backend.domid, DomId(0))?;
    device::wait_for_state(store, clock, &backend.path, limit, |s| {
        s == XenbusState::InitWait
    })
    .map_err(dev("wait InitWait"))?;
    if !device::read_feature(store, Txn::NONE, &backend.path, "magic").map_err(dev("feature"))? {
        return Err("feature-magic not offered".into());
    }
    if device::read_feature(store, Txn::NONE, &backend.path, "absent").map_err(dev("feature"))? {
        return Err("a missing feature read as on".into());
    }
    let pages = bus.memory().try_alloc(1).map_err(err("alloc"))?;
    shared::write_pages(&pages, 0, MAGIC).map_err(|e| e.to_string())?;
    let pfn = pages.pfn(0).ok_or("no pfn")?;
    let gref = bus
        .child_gnttab()
        .grant(backend.domid, pfn, false)
        .map_err(|e| format!("grant: {e}"))?;
    let ev = bus.child_evtchn();
    let channel = ev
        .open_unbound(backend.domid)
        .map_err(|e| format!("open unbound: {e}"))?;
    let result = (|| {
        let port = ev.port(&channel);
        device::write_keys(
            store,
            fe,
            &[("ring-ref", &gref), ("event-channel", &port)],
            16,
        )
        .map_err(dev("write keys"))?;
        device::switch_state(store, fe, XenbusState::Initialised, 16)
            .map_err(dev("Initialised"))?;
        device::wait_for_state(store, clock, &backend.path, limit, |s| {
            s == XenbusState::Connected
        })
        .map_err(dev("wait Connected"))?;
        device::switch_state(store, fe, XenbusState::Connected, 16).map_err(dev("Connected"))?;
        // The backend notifies once it has checked the page.
        if !ev.wait(&channel, 1, ticks(limit)) {
            return Err("no event from the backend".into());
        }
        let mut answer = vec![0u8; MAGIC.len()];
        shared::read_pages(&pages, 2048, &mut answer).map_err(|e| e.to_string())?;
        expect_eq("backend's answer in the page", answer.as_slice(), MAGIC)?;
        device::switch_state(store, fe, XenbusState::Closing, 16).map_err(dev("Closing"))?;
        device::wait_for_state(store, clock, &backend.path, limit, |s| {
            s == XenbusState::Closed
        })
        .map_err(dev("wait Closed"))?;
        device::switch_state(store, fe, XenbusState::Closed, 16).map_err(dev("Closed"))
    })();
    ev.close(channel);
    let revoked = bus.child_gnttab().revoke(gref);
    bus.memory().try_free(pages).map_err(err("free"))?;
    result?;
    revoked.map_err(|e| format!("revoke: {e}"))
}

fn play_backend(bus: &RigBus, fe: &str, be: &str) -> Result<(), String> {
    let store = bus.store();
    let clock = bus.client().platform();
    let limit = PROMPT * 5;
    device::write_keys(store, be, &[("feature-magic", &1)], 16).map_err(dev("features"))?;
    device::switch_state(store, be, XenbusState::InitWait, 16).map_err(dev("InitWait"))?;
    device::wait_for_state(store, clock, fe, limit, |s| s == XenbusState::Initialised)
        .map_err(dev("wait Initialised"))?;
    let gref = device::read_u32_or(store, Txn::NONE, &device::join(fe, "ring-ref"), u32::MAX)
        .map_err(dev("ring-ref"))?;
    let port = device::read_u32_or(store, Txn::NONE, &device::join(fe, "event-channel"), 0)
        .map_err(dev("event-channel"))?;
    let gntdev = GntdevDevice::open().map_err(err("open gntdev"))?;
    let map = gntdev
        .map(DomId(0), &[GrantRef(gref)])
        .map_err(err("map the frontend's grant"))?;
    let mut seen = vec![0u8; MAGIC.len()];
    map.read(0, &mut seen).map_err(|e| e.to_string())?;
    expect_eq("frontend's page", seen.as_slice(), MAGIC)?;
    map.write(2048, MAGIC).map_err(|e| e.to_string())?;
    let evtchn = bus.evtchn();
    let channel = evtchn
        .bind_interdomain(DomId(0), Port(port))
        .map_err(|e| format!("bind to port {port}: {e}"))?;
    let result = (|| {
        device::switch_state(store, be, XenbusState::Connected, 16).map_err(dev("Connected"))?;
        device::wait_for_state(store, clock, fe, limit, |s| s == XenbusState::Connected)
            .map_err(dev("wait frontend Connected"))?;
        evtchn.notify(&channel);
        device::wait_for_state(store, clock, fe, limit, |s| s == XenbusState::Closing)
            .map_err(dev("wait Closing"))?;
        device::switch_state(store, be, XenbusState::Closed, 16).map_err(dev("Closed"))
    })();
    evtchn.close(channel);
    drop(map);
    result
}

// ---- bench ----

/// How long each measured loop should take (the operation count is calibrated
/// to it, then used for both sides).
const BENCH_SECONDS: f64 = 1.5;
/// Alternating measurements of each side per row.
const ROUNDS: u32 = 3;

/// Read and write operations per second, ours (the `xenbus-core` client through
/// the rig platform) against libxenstore (`c/xs-bench.c`), on the same node,
/// over the same transport, in the same boot; both do one operation at a time.
fn bench_xenstore_ops() -> Result<Vec<BenchRow>, String> {
    let mut rows = Vec::new();
    for (kind, name) in [
        (StreamKind::Xenbus, "xenbus"),
        (StreamKind::Socket, "socket"),
    ] {
        let bus = RigBus::open_with(kind).map_err(|e| format!("open over {kind:?}: {e}"))?;
        let store = bus.store();
        let s = Scratch::new(store, "bench")?;
        let key = s.at("key");
        store
            .write(Txn::NONE, &key, b"01234567")
            .map_err(xs("write".into()))?;
        for op in ["read", "write"] {
            let once = || -> Result<(), String> {
                if op == "read" {
                    store
                        .read(Txn::NONE, &key)
                        .map(drop)
                        .map_err(xs("read".into()))
                } else {
                    store
                        .write(Txn::NONE, &key, b"01234567")
                        .map_err(xs("write".into()))
                }
            };
            // Calibrate on ours, then measure both with the same count, three
            // times each, alternating which goes first, so that drift in a
            // noisy TCG boot hits both.
            let probe = 20;
            let probe_secs = timed(probe, &once)?;
            let count = ops_for(probe, probe_secs);
            let (mut ours_secs, mut ref_secs) = (0.0, 0.0);
            for round in 0..ROUNDS {
                if round % 2 == 0 {
                    ours_secs += timed(count, &once)?;
                    ref_secs += reference_seconds(name, op, &key, count)?;
                } else {
                    ref_secs += reference_seconds(name, op, &key, count)?;
                    ours_secs += timed(count, &once)?;
                }
            }
            let total = f64::from(ROUNDS) * f64::from(count);
            rows.push(BenchRow::new(
                format!("{op} over {name} ({count} x{ROUNDS} ops)"),
                total / ours_secs,
                total / ref_secs,
                "ops/s",
            ));
        }
        if kind == StreamKind::Socket {
            // What one connection can do with requests in flight (the guest's
            // ring allows it too; libxenstore waits for each reply).
            let reads = 64 * 8;
            let start = std::time::Instant::now();
            for _ in 0..8 {
                let request = Request::read(0, &key).map_err(|e| format!("request: {e:?}"))?;
                let tickets = (0..64)
                    .map(|_| bus.client().submit(&request).map_err(xs("submit".into())))
                    .collect::<Result<Vec<_>, _>>()?;
                for ticket in tickets {
                    bus.client()
                        .wait_reply(ticket, Duration::from_secs(60))
                        .map_err(xs("reply".into()))?;
                }
            }
            let rate = f64::from(reads) / start.elapsed().as_secs_f64().max(1e-9);
            if let Some(sequential) = sequential_read_rate(&rows) {
                rows.push(BenchRow::new(
                    "read over socket, ours 64 in flight vs libxenstore sequential",
                    rate,
                    sequential,
                    "ops/s",
                ));
            }
        }
    }
    Ok(rows)
}

/// Seconds `count` calls of `once` take.
fn timed(count: u32, once: &dyn Fn() -> Result<(), String>) -> Result<f64, String> {
    let start = std::time::Instant::now();
    for _ in 0..count {
        once()?;
    }
    Ok(start.elapsed().as_secs_f64().max(1e-9))
}

/// An operation count that takes about [`BENCH_SECONDS`] at the probed rate.
fn ops_for(probe: u32, probe_secs: f64) -> u32 {
    let rate = f64::from(probe) / probe_secs;
    let wanted = (rate * BENCH_SECONDS).clamp(30.0, 20_000.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the clamp keeps it within 30..=20000"
    )]
    let count = wanted as u32;
    count
}

/// Runs the libxenstore helper and returns the seconds it reports.
fn reference_seconds(transport: &str, op: &str, path: &str, count: u32) -> Result<f64, String> {
    let out = crate::run_helper("xs-bench", &[transport, op, path, &count.to_string()])?;
    out.split_whitespace()
        .find_map(|field| field.strip_prefix("seconds="))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .ok_or_else(|| format!("xs-bench printed {out:?}"))
}

/// libxenstore's sequential read rate over the socket, from the rows so far.
fn sequential_read_rate(rows: &[BenchRow]) -> Option<f64> {
    rows.iter()
        .find(|r| r.metric.starts_with("read over socket ("))
        .and_then(|r| r.reference)
}
