//! Model-based: random operation sequences give the same results through the
//! tables (child wrapper -> provider -> fake) as on the fake directly.

use proptest::prelude::*;
use xenbus_interface::api::{
    Access, DomId, GrantError, GrantRef, GrantTable, Permission, Pfn, Store, StoreError, Txn,
};
use xenbus_interface::fake::{FakeGnttab, FakeStore};
use xenbus_interface::gnttab::bus::GnttabProvider;
use xenbus_interface::gnttab::child::ChildGnttab;
use xenbus_interface::serve::Bus;
use xenbus_interface::store::bus::{Outstanding, StoreProvider};
use xenbus_interface::store::child::ChildStore;
use xenbus_interface::store::events::Loopback;

#[derive(Clone, Debug)]
enum StoreOp {
    Write(usize, Vec<u8>),
    Read(usize),
    Mkdir(usize),
    Remove(usize),
    Directory(usize),
    Perms(usize, u16),
    Begin,
    End(bool),
}

const PATHS: [&str; 6] = ["a", "a/b", "a/b/c", "a/d", "e", "e/f"];

fn store_op() -> impl Strategy<Value = StoreOp> {
    let path = 0..PATHS.len();
    prop_oneof![
        (path.clone(), proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(p, v)| StoreOp::Write(p, v)),
        path.clone().prop_map(StoreOp::Read),
        path.clone().prop_map(StoreOp::Mkdir),
        path.clone().prop_map(StoreOp::Remove),
        path.clone().prop_map(StoreOp::Directory),
        (path, any::<u16>()).prop_map(|(p, d)| StoreOp::Perms(p, d)),
        Just(StoreOp::Begin),
        any::<bool>().prop_map(StoreOp::End),
    ]
}

/// One step on a store, in the current transaction if any.
fn apply(store: &dyn Store, txn: &mut Option<Txn>, op: &StoreOp) -> Result<String, StoreError> {
    let t = txn.unwrap_or(Txn::NONE);
    Ok(match op {
        StoreOp::Write(p, v) => format!("{:?}", store.write(t, PATHS[*p], v)?),
        StoreOp::Read(p) => format!("{:?}", store.read(t, PATHS[*p])?),
        StoreOp::Mkdir(p) => format!("{:?}", store.mkdir(t, PATHS[*p])?),
        StoreOp::Remove(p) => format!("{:?}", store.remove(t, PATHS[*p])?),
        StoreOp::Directory(p) => format!("{:?}", store.directory(t, PATHS[*p])?),
        StoreOp::Perms(p, d) => {
            let perms = [Permission {
                domid: DomId(*d),
                access: Access::Read,
            }];
            format!("{:?}", store.set_permissions(t, PATHS[*p], &perms)?)
        }
        StoreOp::Begin => {
            if txn.is_some() {
                return Ok(String::from("nested: skipped"));
            }
            *txn = Some(store.transaction_start()?);
            String::from("begun")
        }
        StoreOp::End(commit) => match txn.take() {
            Some(t) => format!("{:?}", store.transaction_end(t, *commit)?),
            None => String::from("none: skipped"),
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn store_through_the_tables_is_the_store(ops in proptest::collection::vec(store_op(), 0..40)) {
        let direct = FakeStore::default();
        let provider = StoreProvider::new(FakeStore::default(), Loopback);
        let mut bus = Bus::new();
        bus.serve(&provider).unwrap();
        let child = ChildStore::new(&bus, Loopback).unwrap();
        let (mut direct_txn, mut child_txn) = (None, None);
        for op in &ops {
            // What the C interface cannot carry is refused before the bus.
            if let StoreOp::Write(_, v) = op {
                if v.contains(&0) {
                    prop_assert_eq!(apply(&child, &mut child_txn, op), Err(StoreError::BadValue));
                    continue;
                }
            }
            let want = apply(&direct, &mut direct_txn, op);
            let got = apply(&child, &mut child_txn, op);
            prop_assert_eq!(got, want, "{:?}", op);
            prop_assert_eq!(direct_txn.is_some(), child_txn.is_some());
        }
        if let Some(t) = child_txn {
            child.transaction_end(t, false).unwrap();
        }
        drop(child);
        prop_assert_eq!(provider.outstanding(), Outstanding::default());
    }

    #[test]
    fn grants_through_the_tables_are_the_grants(
        ops in proptest::collection::vec((0u8..4, 0usize..6, any::<bool>()), 0..60),
    ) {
        const CAPACITY: usize = 5;
        let direct = FakeGnttab::new(CAPACITY);
        let provider = GnttabProvider::new(FakeGnttab::new(64));
        let mut bus = Bus::new();
        bus.serve(&provider).unwrap();
        let child = ChildGnttab::new(&bus, c"model", u32::try_from(CAPACITY).unwrap()).unwrap();
        // Grants held, by slot, on each side (the references may differ).
        let mut held: Vec<Option<(GrantRef, GrantRef)>> = vec![None; 6];
        for (kind, slot, flag) in ops {
            match kind {
                0 => {
                    let pfn = Pfn(0x1000 + slot as u64);
                    let want = direct.grant(DomId(0), pfn, flag);
                    let got = child.grant(DomId(0), pfn, flag);
                    prop_assert_eq!(got.is_ok(), want.is_ok());
                    if let (Ok(g), Ok(w)) = (got, want) {
                        prop_assert_eq!(provider.gnttab().grant_of(g), Some((DomId(0), pfn, flag)));
                        // Keep one pair per slot; give back a displaced pair.
                        if let Some((og, ow)) = held[slot].replace((g, w)) {
                            provider.gnttab().set_mapped(og, false);
                            direct.set_mapped(ow, false);
                            child.revoke(og).unwrap();
                            direct.revoke(ow).unwrap();
                        }
                    } else {
                        prop_assert_eq!(got, Err(GrantError::Exhausted));
                    }
                }
                1 => {
                    if let Some((g, w)) = held[slot] {
                        let (want, got) = (direct.revoke(w), child.revoke(g));
                        prop_assert_eq!(got, want);
                        if got.is_ok() {
                            held[slot] = None;
                        }
                    }
                }
                2 => {
                    if let Some((g, w)) = held[slot] {
                        provider.gnttab().set_mapped(g, flag);
                        direct.set_mapped(w, flag);
                    }
                }
                _ => prop_assert_eq!(child.available(), direct.available()),
            }
            prop_assert_eq!(child.available(), direct.available());
        }
        for (g, _) in held.iter().flatten() {
            provider.gnttab().set_mapped(*g, false);
        }
        drop(child);
        prop_assert_eq!(provider.gnttab().active(), 0);
        prop_assert_eq!(provider.outstanding(), (0, 0));
    }
}
