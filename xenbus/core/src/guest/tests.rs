//! Unit tests of the platform logic against the fake processor/hypervisor.
// Two windows over the fake's pages are built with `Shared::new`.
#![allow(unsafe_code)]

extern crate std;

use std::vec::Vec;

use core::sync::atomic::Ordering;

use super::Error;
use super::abi::shared_info as si;
use super::cpu::{CpuidResult, HypercallInsn};
use super::evtchn::EventChannels;
use super::fake::{FakeCpu, FakeMemory};
use super::gnttab::{ENTRIES_PER_FRAME, GrantFailure, GrantTable, TOOLSTACK_RESERVED};
use super::hypercall::{Xen, detect};
use super::shared_info::SharedInfo;
use super::store_ring::StoreRing;

#[test]
fn xen_is_found_above_viridian() {
    let cpu = FakeCpu::xen_at(0x4000_0100, 4);
    cpu.0.borrow_mut().cpuid.push((
        0x4000_0000,
        CpuidResult {
            eax: 0x4000_0006,
            ebx: 0x7263_694d,
            ecx: 0x666f_736f,
            edx: 0x7648_2074,
        },
    ));
    let info = detect(&cpu).unwrap();
    assert_eq!(info.cpuid_base, 0x4000_0100);
    assert_eq!((info.major, info.minor), (4, 17));
    assert_eq!(info.hypercall_msr, 0x4000_0000);
}

#[test]
fn no_signature_means_not_xen() {
    let cpu = FakeCpu::default();
    assert!(detect(&cpu).is_none());
    assert_eq!(Xen::new(cpu, None).unwrap_err(), Error::NotXen);
}

#[test]
fn vendor_picks_the_instruction_and_the_page_is_only_a_fallback() {
    let amd = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(amd.clone(), Some((0x1000, 0x1000))).unwrap();
    assert_eq!(xen.insn(), HypercallInsn::Vmmcall);
    assert!(
        amd.0.borrow().msr_writes.is_empty(),
        "page installed although the vendor is known"
    );
    assert_eq!(xen.version().unwrap(), (4, 17));

    let intel = FakeCpu::xen_at(0x4000_0000, 4);
    intel.0.borrow_mut().cpuid[0].1 = CpuidResult {
        eax: 0xd,
        ebx: 0x756e_6547,
        ecx: 0x6c65_746e,
        edx: 0x4965_6e69,
    };
    assert_eq!(Xen::new(intel, None).unwrap().insn(), HypercallInsn::Vmcall);

    let odd = FakeCpu::xen_at(0x4000_0000, 4);
    odd.0.borrow_mut().cpuid[0].1 = CpuidResult::default();
    assert_eq!(
        Xen::new(odd.clone(), None).unwrap_err(),
        Error::NoHypercallInsn
    );
    let xen = Xen::new(odd.clone(), Some((0x5000, 0x9000))).unwrap();
    assert_eq!(xen.insn(), HypercallInsn::Page(0x5000));
    assert_eq!(odd.0.borrow().msr_writes, [(0x4000_0000, 0x9000)]);
}

fn grant_table(max_frames: u32) -> (FakeCpu, GrantTable<FakeCpu>, super::Shared<FakeCpu>) {
    let cpu = FakeCpu::xen_at(0x4000_0000, max_frames);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let area = cpu.window(8);
    let table = GrantTable::new(xen, area.clone(), 0xf0001).unwrap();
    (cpu, table, area)
}

#[test]
fn grant_writes_the_entry_and_skips_toolstack_refs() {
    let (cpu, mut table, area) = grant_table(4);
    assert_eq!(cpu.0.borrow().physmap, [(1, 0, 0xf0001)]);
    let r = table.grant(0, 0x1234, true).unwrap();
    assert!(r >= TOOLSTACK_RESERVED);
    let off = r as usize * 8;
    assert_eq!(area.u16(off).unwrap().load(Ordering::SeqCst), 1 | 4);
    assert_eq!(area.u16(off + 2).unwrap().load(Ordering::SeqCst), 0);
    assert_eq!(area.u32(off + 4).unwrap().load(Ordering::SeqCst), 0x1234);
    assert_eq!(table.grant(0, 1 << 40, false), Err(GrantFailure::BadFrame));
}

#[test]
fn revoke_is_refused_while_the_remote_maps_the_page() {
    let (_cpu, mut table, area) = grant_table(4);
    let r = table.grant(0, 0x55, false).unwrap();
    let flags = area.u16(r as usize * 8).unwrap();
    for busy in [1 << 3, 1 << 4, (1 << 3) | (1 << 4)] {
        flags.fetch_or(busy, Ordering::SeqCst);
        assert_eq!(table.revoke(r), Err(GrantFailure::InUse));
        assert_eq!(
            flags.load(Ordering::SeqCst) & 1,
            1,
            "access ended while mapped"
        );
        flags.fetch_and(!busy, Ordering::SeqCst);
    }
    table.revoke(r).unwrap();
    assert_eq!(flags.load(Ordering::SeqCst), 0);
    assert_eq!(table.revoke(r), Err(GrantFailure::Invalid), "double revoke");
    assert_eq!(table.revoke(100_000), Err(GrantFailure::Invalid));
}

#[test]
fn the_table_grows_frame_by_frame_up_to_its_maximum() {
    let (cpu, mut table, _area) = grant_table(3);
    let total = 3 * ENTRIES_PER_FRAME - TOOLSTACK_RESERVED;
    assert_eq!(table.available(), total as usize);
    let mut refs = Vec::new();
    for i in 0..total {
        refs.push(table.grant(0, u64::from(i), false).unwrap());
    }
    assert_eq!(table.frames(), 3);
    assert_eq!(
        cpu.0
            .borrow()
            .physmap
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(table.grant(0, 1, false), Err(GrantFailure::Exhausted));
    refs.sort_unstable();
    refs.dedup();
    assert_eq!(
        refs.len(),
        total as usize,
        "a reference was handed out twice"
    );
    table.revoke(refs[0]).unwrap();
    assert_eq!(table.grant(0, 7, false).unwrap(), refs[0]);
}

#[test]
fn reserved_refs_are_kept_apart() {
    let (_cpu, mut table, area) = grant_table(1);
    let before = table.available();
    let pool = table.reserve(4).unwrap();
    assert_eq!(table.available(), before - 4);
    table.grant_reserved(pool[0], 0, 9, false).unwrap();
    assert_eq!(
        area.u32(pool[0] as usize * 8 + 4)
            .unwrap()
            .load(Ordering::SeqCst),
        9
    );
    assert_eq!(
        table.revoke(pool[0]),
        Err(GrantFailure::Invalid),
        "reserved ref freed to the general list"
    );
    assert_eq!(table.unreserve(pool[0]), Err(GrantFailure::InUse));
    table.revoke_reserved(pool[0]).unwrap();
    table.unreserve(pool[0]).unwrap();
    assert_eq!(table.available(), before - 3);
    let normal = table.grant(0, 1, false).unwrap();
    assert_eq!(
        table.grant_reserved(normal, 0, 1, false),
        Err(GrantFailure::Invalid)
    );
    assert_eq!(table.reserve(10_000), Err(GrantFailure::Exhausted));
    assert_eq!(
        table.available(),
        before - 4,
        "failed reservation leaked refs"
    );
}

fn two_level() -> (
    FakeCpu,
    EventChannels<FakeCpu, FakeMemory>,
    super::Shared<FakeCpu>,
) {
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let page = cpu.window(1);
    cpu.0.borrow_mut().shared_info = Some(page.vaddr());
    let shared = SharedInfo::map(&xen, page.clone(), 0xf0000).unwrap();
    let vcpu = shared.vcpu_info(0).unwrap();
    (
        cpu,
        EventChannels::new(xen, shared, vcpu, FakeMemory::default()),
        page,
    )
}

fn raise_2l(page: &super::Shared<FakeCpu>, port: u32) {
    page.u64(si::EVTCHN_PENDING + (port / 64) as usize * 8)
        .unwrap()
        .fetch_or(1 << (port % 64), Ordering::SeqCst);
    page.u64(si::PENDING_SEL)
        .unwrap()
        .fetch_or(1 << (port / 64), Ordering::SeqCst);
    page.u8(si::UPCALL_PENDING)
        .unwrap()
        .store(1, Ordering::SeqCst);
}

#[test]
fn two_level_delivers_masked_and_cleared() {
    let (cpu, mut ev, page) = two_level();
    let port = ev.alloc_unbound(0).unwrap();
    assert_eq!(port, 10);
    raise_2l(&page, port);
    let mut got = Vec::new();
    assert_eq!(
        ev.poll(8, |p| got.push(p)).unwrap(),
        0,
        "delivered while masked"
    );
    ev.unmask(port).unwrap();
    assert_eq!(cpu.0.borrow().unmasks, [port]);
    assert_eq!(ev.poll(8, |p| got.push(p)).unwrap(), 1);
    assert_eq!(got, [port]);
    assert!(!ev.is_pending(port).unwrap());
    assert_eq!(
        page.u8(si::UPCALL_PENDING).unwrap().load(Ordering::SeqCst),
        0
    );
    raise_2l(&page, port);
    assert_eq!(ev.poll(8, |_| ()).unwrap(), 0, "not masked after delivery");
    let flag = ev.pending_flag(port).unwrap();
    assert!(flag.take());
    assert!(!flag.take());
    assert!(!ev.is_pending(port).unwrap());
}

#[test]
fn two_level_scan_is_fair_across_ports() {
    let (_cpu, mut ev, page) = two_level();
    let ports = [3u32, 5, 70, 4000];
    for &p in &ports {
        ev.adopt(p).unwrap();
        ev.unmask(p).unwrap();
        raise_2l(&page, p);
    }
    let mut got = Vec::new();
    // One at a time; port 3 fires again after each delivery.
    for _ in 0..4 {
        ev.poll(1, |p| got.push(p)).unwrap();
        let last = *got.last().unwrap();
        ev.unmask(last).unwrap();
        raise_2l(&page, 3);
    }
    assert_eq!(got, [3, 5, 70, 4000], "a busy low port starved the others");
    ev.poll(1, |p| got.push(p)).unwrap();
    assert_eq!(got[4], 3);
    assert_eq!(ev.adopt(4096), Err(Error::OutOfBounds));
}

const PENDING: u32 = 1 << 31;
const MASKED: u32 = 1 << 30;
const LINKED: u32 = 1 << 29;

#[test]
fn fifo_queues_are_consumed_in_order_and_validated() {
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let page = cpu.window(1);
    let shared = SharedInfo::map(&xen, page, 0xf0000).unwrap();
    let vcpu = shared.vcpu_info(0).unwrap();
    let mem = FakeMemory::default();
    let mut ev = EventChannels::new(xen, shared, vcpu, mem.clone());
    ev.enable_fifo().unwrap();
    let allocs = mem.allocated.borrow().clone();
    assert_eq!(allocs.len(), 2, "control block + one array page");
    // SAFETY: the fake's leaked pages, one page each.
    let control = unsafe { super::Shared::new(cpu.clone(), allocs[0], 4096) };
    // SAFETY: as above.
    let array = unsafe { super::Shared::new(cpu.clone(), allocs[1], 4096) };
    let word = |p: u32| array.u32(p as usize * 4).unwrap();
    // Xen queued 5 -> 9 on priority 7 and 3 on priority 2 (higher).
    word(5).store(PENDING | LINKED | 9, Ordering::SeqCst);
    word(9).store(PENDING | LINKED, Ordering::SeqCst);
    word(3).store(PENDING | LINKED, Ordering::SeqCst);
    control.u32(8 + 7 * 4).unwrap().store(5, Ordering::SeqCst);
    control.u32(8 + 2 * 4).unwrap().store(3, Ordering::SeqCst);
    control
        .u32(0)
        .unwrap()
        .store((1 << 7) | (1 << 2), Ordering::SeqCst);
    let mut got = Vec::new();
    assert_eq!(ev.poll(2, |p| got.push(p)).unwrap(), 2);
    assert_eq!(
        ev.poll(8, |p| got.push(p)).unwrap(),
        1,
        "bounded poll lost the rest of the queue"
    );
    assert_eq!(got, [3, 5, 9]);
    for p in [3, 5, 9] {
        assert_eq!(
            word(p).load(Ordering::SeqCst),
            MASKED,
            "port {p} not unlinked+masked+cleared"
        );
    }
    // Unmask of a non-pending port is local; of a pending one asks Xen.
    ev.unmask(3).unwrap();
    assert_eq!(word(3).load(Ordering::SeqCst), 0);
    word(5).fetch_or(PENDING, Ordering::SeqCst);
    ev.unmask(5).unwrap();
    assert_eq!(cpu.0.borrow().unmasks, [5]);
    // A head naming a port beyond the array is refused, not followed.
    control
        .u32(8 + 4 * 4)
        .unwrap()
        .store(5000, Ordering::SeqCst);
    control.u32(0).unwrap().store(1 << 4, Ordering::SeqCst);
    assert_eq!(ev.poll(8, |_| ()), Err(Error::BadPort(5000)));
    assert_eq!(ev.poll(8, |_| ()), Ok(0), "bad queue not dropped");
    word(9).store(PENDING | MASKED, Ordering::SeqCst);
    let flag = ev.pending_flag(9).unwrap();
    assert!(flag.take());
    assert_eq!(word(9).load(Ordering::SeqCst), MASKED);
    assert_eq!(ev.adopt(2000), Ok(2000), "array did not grow");
    assert_eq!(mem.allocated.borrow().len(), 3);
    assert_eq!(ev.adopt(1 << 17), Err(Error::OutOfBounds));
}

#[test]
fn store_ring_moves_bytes_and_rejects_bad_indices() {
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let page = cpu.window(1);
    let ring = StoreRing::new(page.clone());
    let msg: Vec<u8> = (0..1500u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    assert_eq!(ring.write(&msg).unwrap(), 1024, "ring overfilled");
    assert_eq!(ring.write(&msg).unwrap(), 0);
    // xenstored consumes 100 bytes and answers with 3.
    page.u32(2048).unwrap().store(100, Ordering::SeqCst);
    assert_eq!(ring.write(&msg[1024..]).unwrap(), 100);
    for (i, b) in [7u8, 8, 9].iter().enumerate() {
        page.u8(1024 + i).unwrap().store(*b, Ordering::SeqCst);
    }
    page.u32(2060).unwrap().store(3, Ordering::SeqCst);
    let mut buf = [0u8; 8];
    assert_eq!(ring.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], &[7, 8, 9]);
    assert!(!ring.readable().unwrap());
    page.u32(2060).unwrap().store(3 + 2000, Ordering::SeqCst);
    assert!(matches!(ring.read(&mut buf), Err(Error::Inconsistent(_))));
}

#[test]
fn console_wraps_notifies_and_stops_when_full() {
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let page = cpu.window(1);
    let console = super::console::Console::new(xen, page.clone(), 2);
    // xenconsoled has consumed up to 2040 of 2040: the next bytes wrap.
    page.u32(3080).unwrap().store(2040, Ordering::SeqCst);
    page.u32(3084).unwrap().store(2040, Ordering::SeqCst);
    assert_eq!(console.write(b"0123456789abcdef", 0).unwrap(), 16);
    assert_eq!(page.u32(3084).unwrap().load(Ordering::SeqCst), 2056);
    assert_eq!(page.u8(1024 + 2047).unwrap().load(Ordering::SeqCst), b'7');
    assert_eq!(page.u8(1024).unwrap().load(Ordering::SeqCst), b'8');
    assert_eq!(cpu.0.borrow().sends, [2]);
    // Full ring, nobody draining: gives up after the allowed waits.
    let big = [b'x'; 4096];
    let n = console.write(&big, 3).unwrap();
    assert_eq!(n, 2048 - 16);
    assert!(!console.drain(5).unwrap());
    page.u32(3080).unwrap().store(2056 + 2032, Ordering::SeqCst);
    assert!(console.drain(5).unwrap());
    // Indices more than a ring apart are refused.
    page.u32(3080).unwrap().store(0, Ordering::SeqCst);
    assert!(matches!(
        console.write(b"y", 0),
        Err(Error::Inconsistent(_))
    ));
}

#[test]
fn balloon_gives_back_and_takes_pages_through_the_memory_ops() {
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let mem = FakeMemory::default();
    let mut balloon = super::balloon::Balloon::new();
    // The fake answers 0 (no extent done) to memory ops it does not know.
    assert_eq!(balloon.inflate(&xen, &mem, 4).unwrap(), 0);
    assert_eq!(balloon.pages_out(), 0);
    assert_eq!(*mem.freed.borrow(), 1, "page not returned to the platform");
    assert_eq!(balloon.deflate(&xen, &mem, 4).unwrap(), 0);
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Whatever Xen leaves in the 2-level bitmaps, `poll` delivers each
        /// pending, unmasked port exactly once (masked and cleared), nothing
        /// else, and terminates.
        #[test]
        fn two_level_delivers_exactly_the_ready_ports(
            pending in proptest::collection::vec(any::<u64>(), 64),
            mask in proptest::collection::vec(any::<u64>(), 64),
            sel in any::<u64>(),
            budget in 1usize..64,
        ) {
            let (_cpu, mut ev, page) = two_level();
            for w in 0..64 {
                page.u64(si::EVTCHN_PENDING + w * 8).unwrap().store(pending[w], Ordering::SeqCst);
                page.u64(si::EVTCHN_MASK + w * 8).unwrap().store(mask[w], Ordering::SeqCst);
            }
            page.u64(si::PENDING_SEL).unwrap().store(sel, Ordering::SeqCst);
            let mut expect = BTreeSet::new();
            for w in 0..64u32 {
                if sel & (1 << w) != 0 {
                    let ready = pending[w as usize] & !mask[w as usize];
                    for b in 0..64u32 {
                        if ready & (1 << b) != 0 {
                            expect.insert(w * 64 + b);
                        }
                    }
                }
            }
            let mut got = Vec::new();
            // Bounded: at most one call per expected port plus one.
            for _ in 0..=expect.len() {
                let n = ev.poll(budget, |p| got.push(p)).unwrap();
                if n == 0 {
                    break;
                }
            }
            let set: BTreeSet<u32> = got.iter().copied().collect();
            prop_assert_eq!(set.len(), got.len(), "a port was delivered twice");
            prop_assert_eq!(set, expect);
            for &p in &got {
                prop_assert!(!ev.is_pending(p).unwrap());
            }
        }

        /// Whatever Xen (or a corruption) leaves in the FIFO control block and
        /// event words, `poll` terminates, never names a port outside the
        /// event array, and every delivered port ends masked and not pending.
        #[test]
        fn fifo_never_follows_a_link_out_of_the_array(
            words in proptest::collection::vec(any::<u32>(), 1024),
            heads in proptest::collection::vec(0u32..1100, 16),
            ready in any::<u32>(),
        ) {
            let cpu = FakeCpu::xen_at(0x4000_0000, 4);
            let xen = Xen::new(cpu.clone(), None).unwrap();
            let shared = SharedInfo::map(&xen, cpu.window(1), 0xf0000).unwrap();
            let vcpu = shared.vcpu_info(0).unwrap();
            let mem = FakeMemory::default();
            let mut ev = EventChannels::new(xen, shared, vcpu, mem.clone());
            ev.enable_fifo().unwrap();
            let allocs = mem.allocated.borrow().clone();
            // SAFETY: the fake's leaked pages, one page each.
            let control = unsafe { super::super::Shared::new(cpu.clone(), allocs[0], 4096) };
            // SAFETY: as above.
            let array = unsafe { super::super::Shared::new(cpu.clone(), allocs[1], 4096) };
            for (i, w) in words.iter().enumerate() {
                array.u32(i * 4).unwrap().store(*w, Ordering::SeqCst);
            }
            for (q, h) in heads.iter().enumerate() {
                control.u32(8 + q * 4).unwrap().store(*h, Ordering::SeqCst);
            }
            control.u32(0).unwrap().store(ready & 0xffff, Ordering::SeqCst);
            let mut got = Vec::new();
            let mut calls = 0;
            loop {
                calls += 1;
                prop_assert!(calls < 10_000, "poll never settles");
                match ev.poll(16, |p| got.push(p)) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(Error::BadPort(p)) => prop_assert!(p >= 1024),
                    Err(e) => prop_assert!(false, "unexpected error {e:?}"),
                }
            }
            for &p in &got {
                prop_assert!(p < 1024);
                let w = array.u32(p as usize * 4).unwrap().load(Ordering::SeqCst);
                prop_assert_eq!(w & (PENDING | MASKED), MASKED);
            }
        }
    }
}

#[test]
fn bus_trait_wrappers_serve_owned_and_lent_tables() {
    use super::api::{GuestEventChannels, GuestGrantTable};
    use core::cell::RefCell;
    use xenbus_interface::api::{self, DomId, GrantError, Pfn, Port};

    // Owned: the cell holds the table.
    let (_cpu, table, area) = grant_table(4);
    let owned = RefCell::new(table);
    let grants = GuestGrantTable::new(&owned);
    let before = api::GrantTable::available(&grants);
    let r = api::GrantTable::grant(&grants, DomId(0), Pfn(0x42), true).unwrap();
    assert_eq!(api::GrantTable::available(&grants), before - 1);
    let flags = area.u16(r.0 as usize * 8).unwrap();
    flags.fetch_or(1 << 3, Ordering::SeqCst);
    assert_eq!(api::GrantTable::revoke(&grants, r), Err(GrantError::InUse));
    flags.fetch_and(!(1 << 3), Ordering::SeqCst);
    api::GrantTable::revoke(&grants, r).unwrap();
    assert_eq!(api::GrantTable::available(&grants), before);

    // Lent: the cell holds a `&mut` to a table that lives on elsewhere.
    let (cpu, mut ev, _page) = two_level();
    let port = {
        let lent = RefCell::new(&mut ev);
        let events = GuestEventChannels::new(&lent);
        let channel = api::EventChannels::open_unbound(&events, DomId(0)).unwrap();
        let port = api::EventChannels::port(&events, &channel);
        api::EventChannels::notify(&events, &channel);
        api::EventChannels::unmask(&events, &channel);
        api::EventChannels::close(&events, channel);
        port
    };
    assert_ne!(port, Port(0));
    let s = cpu.0.borrow();
    assert_eq!(s.sends, [port.0]);
    // The table is usable again once the loan ends.
    drop(s);
    assert!(ev.alloc_unbound(0).is_ok());
}

/// Maps every frame Xen names (store, console) to one fake page.
struct OnePage(super::Shared<FakeCpu>);

impl super::platform::FrameMapper<FakeCpu> for OnePage {
    fn map_frame(&self, _gpfn: u64) -> Option<super::Shared<FakeCpu>> {
        Some(self.0.clone())
    }
}

#[test]
fn placed_vcpu_info_carries_events_and_is_registered_again_on_resume() {
    use super::abi::{VCPUOP_REGISTER_VCPU_INFO, nr};
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let area = cpu.window(4);
    cpu.0.borrow_mut().shared_info = Some(area.vaddr());
    let mapper = OnePage(cpu.window(1));
    let mut platform =
        super::Platform::start(xen, FakeMemory::default(), area.clone(), 0xf0000, &mapper).unwrap();
    let registrations = |cpu: &FakeCpu| {
        cpu.0
            .borrow()
            .calls
            .iter()
            .filter(|c| c.1 == nr::VCPU_OP && c.2 == VCPUOP_REGISTER_VCPU_INFO)
            .count()
    };
    assert_eq!(registrations(&cpu), 0);

    let page = cpu.window(1);
    platform.place_vcpu_info(page.clone(), 0x777).unwrap();
    assert_eq!(registrations(&cpu), 1);
    // Xen now raises events in the new place only: a port pending in shared
    // info with its selector bit in the placed vcpu_info is delivered.
    let port = platform.evtchn.alloc_unbound(0).unwrap();
    platform.evtchn.unmask(port).unwrap();
    area.u64(si::EVTCHN_PENDING + (port / 64) as usize * 8)
        .unwrap()
        .fetch_or(1 << (port % 64), Ordering::SeqCst);
    page.u64(si::PENDING_SEL)
        .unwrap()
        .fetch_or(1 << (port / 64), Ordering::SeqCst);
    page.u8(si::UPCALL_PENDING)
        .unwrap()
        .store(1, Ordering::SeqCst);
    let mut seen = Vec::new();
    platform.evtchn.poll(8, |p| seen.push(p)).unwrap();
    assert_eq!(seen, [port]);
    assert_eq!(
        area.u64(si::PENDING_SEL).unwrap().load(Ordering::SeqCst),
        0,
        "the legacy slot was used"
    );

    platform.resume(&mapper).unwrap();
    assert_eq!(registrations(&cpu), 2, "not registered again on resume");
}

#[test]
fn upcall_vectors_are_set_again_on_resume() {
    use super::abi::{HVMOP_SET_EVTCHN_UPCALL_VECTOR, HVMOP_SET_PARAM, nr};
    let cpu = FakeCpu::xen_at(0x4000_0000, 4);
    let xen = Xen::new(cpu.clone(), None).unwrap();
    let area = cpu.window(4);
    cpu.0.borrow_mut().shared_info = Some(area.vaddr());
    let mapper = OnePage(cpu.window(1));
    let mut platform =
        super::Platform::start(xen, FakeMemory::default(), area, 0xf0000, &mapper).unwrap();
    let count = |cpu: &FakeCpu, sub: u64| {
        cpu.0
            .borrow()
            .calls
            .iter()
            .filter(|c| c.1 == nr::HVM_OP && c.2 == sub)
            .count()
    };
    let params = count(&cpu, HVMOP_SET_PARAM);
    // Nothing set: nothing to restore.
    platform.resume(&mapper).unwrap();
    assert_eq!(count(&cpu, HVMOP_SET_PARAM), params);
    assert_eq!(count(&cpu, HVMOP_SET_EVTCHN_UPCALL_VECTOR), 0);

    platform.evtchn.set_callback_vector(0xf3).unwrap();
    platform.evtchn.set_upcall_vector(0, 0xf4).unwrap();
    platform.evtchn.set_upcall_vector(0, 0xf5).unwrap();
    assert_eq!(count(&cpu, HVMOP_SET_PARAM), params + 1);
    assert_eq!(count(&cpu, HVMOP_SET_EVTCHN_UPCALL_VECTOR), 2);
    platform.resume(&mapper).unwrap();
    assert_eq!(
        count(&cpu, HVMOP_SET_PARAM),
        params + 2,
        "callback vector not set again"
    );
    // One vCPU, the latest vector only.
    assert_eq!(count(&cpu, HVMOP_SET_EVTCHN_UPCALL_VECTOR), 3);
}
