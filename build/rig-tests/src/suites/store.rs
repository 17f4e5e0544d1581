//! `store`: the rig platform (`xenbus-rig`) against the real Xen in dom0: the
//! xenstore client through the STORE plumbing against the C xenstored, event
//! channels over `/dev/xen/evtchn`, grants over `/dev/xen/gntalloc` and
//! `/dev/xen/gntdev`; and the xenstore bench, ours against libxenstore.

use std::time::Duration;

use xenbus_interface::api::{DomId, EventChannels, GrantError, GrantRef, GrantTable, Memory, Pfn};
use xenbus_rig::evtchn::EvtchnDevice;
use xenbus_rig::gntalloc::GntallocDevice;
use xenbus_rig::gntdev::GntdevDevice;
use xenbus_rig::shared;

use crate::{Suite, Test};

/// The suite.
pub const SUITE: Suite = Suite {
    name: "store",
    tests: &[
        Test {
            name: "evtchn_loopback_notify",
            run: evtchn_loopback_notify,
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
    benches: &[],
};

/// How long a test waits for something that should happen at once.
const PROMPT: Duration = Duration::from_secs(2);

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// An unbound port offered to domain 0, bound back from domain 0 via
/// BIND_INTERDOMAIN: a notify on either end fires the other, and a masked port
/// fires again only after unmask.
fn evtchn_loopback_notify() -> Result<(), String> {
    let dev = EvtchnDevice::open().map_err(err("open evtchn"))?;
    let a = dev
        .open_unbound(DomId(0))
        .map_err(|e| format!("bind unbound: {e}"))?;
    let b = dev
        .bind_interdomain(DomId(0), dev.port(&a))
        .map_err(|e| format!("bind interdomain to port {}: {e}", dev.port(&a)))?;
    let result = (|| {
        if dev.port(&a) == dev.port(&b) {
            return Err(format!("both ends have port {}", dev.port(&a)));
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
        if !dev.wait(dev.port(&a), PROMPT).map_err(err("wait a"))? {
            return Err(format!(
                "port {} did not fire after notify from {}",
                dev.port(&a),
                dev.port(&b)
            ));
        }
        // b must not have fired: nobody notified it.
        if dev
            .wait(dev.port(&b), Duration::from_millis(100))
            .map_err(err("wait b"))?
        {
            return Err("the notifying end fired too".into());
        }
        dev.notify(&a);
        if !dev.wait(dev.port(&b), PROMPT).map_err(err("wait b"))? {
            return Err("port b did not fire after notify from a".into());
        }
        // a is masked (not unmasked since it fired): a second notify is held...
        dev.notify(&b);
        if dev
            .wait(dev.port(&a), Duration::from_millis(200))
            .map_err(err("wait a"))?
        {
            return Err("a masked port fired".into());
        }
        // ...and delivered once unmasked.
        dev.unmask(&a);
        if !dev.wait(dev.port(&a), PROMPT).map_err(err("wait a"))? {
            return Err("the held event was not delivered after unmask".into());
        }
        dev.unmask(&a);
        dev.unmask(&b);
        Ok(())
    })();
    dev.close(b);
    dev.close(a);
    result
}

/// Pages from Memory::alloc, granted to dom0 with GrantTable::grant, mapped back
/// through gntdev: what we write is seen through the mapping and the reverse.
fn grant_roundtrip_gntdev() -> Result<(), String> {
    let gnt = GntallocDevice::open(DomId(0)).map_err(err("open gntalloc"))?;
    let gntdev = GntdevDevice::open().map_err(err("open gntdev"))?;
    let pages = gnt.try_alloc(3).map_err(err("alloc 3 pages"))?;
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
        let before = gnt.available();
        let refs = pages
            .pfns()
            .iter()
            .map(|&pfn| gnt.grant(DomId(0), pfn, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("grant: {e}"))?;
        if gnt.available() + 3 != before {
            return Err(format!(
                "available went {before} -> {} after 3 grants",
                gnt.available()
            ));
        }
        for (i, page) in [b"page zero".as_slice(), b"page one", b"page two"]
            .iter()
            .enumerate()
        {
            shared::write_pages(&pages, i * 4096 + 100, page).map_err(|e| e.to_string())?;
        }
        let map = gntdev.map(DomId(0), &refs).map_err(err("gntdev map"))?;
        for (i, page) in [b"page zero".as_slice(), b"page one", b"page two"]
            .iter()
            .enumerate()
        {
            let mut seen = vec![0u8; page.len()];
            map.read(i * 4096 + 100, &mut seen)
                .map_err(|e| e.to_string())?;
            if seen != *page {
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
            gnt.revoke(gref)
                .map_err(|e| format!("revoke {gref}: {e}"))?;
        }
        if gnt.revoke(GrantRef(u32::MAX)) != Err(GrantError::Invalid) {
            return Err("revoking an unknown reference was not refused".into());
        }
        Ok(())
    })();
    gnt.try_free(pages).map_err(err("free"))?;
    result
}

/// Grants to another domain, of a frame that is not ours, or of a freed page are
/// refused.
fn grant_refuses_foreign() -> Result<(), String> {
    let gnt = GntallocDevice::open(DomId(0)).map_err(err("open gntalloc"))?;
    let pages = gnt.alloc(1).map_err(|e| format!("alloc: {e}"))?;
    let pfn = pages.pfn(0).ok_or("no pfn")?;
    if gnt.grant(DomId(1), pfn, false) != Err(GrantError::BadFrame) {
        return Err("grant to domain 1 was not refused".into());
    }
    if gnt.grant(DomId(0), Pfn(pfn.0 + 1), false) != Err(GrantError::BadFrame) {
        return Err("grant of a frame we do not own was not refused".into());
    }
    gnt.free(pages);
    if gnt.grant(DomId(0), pfn, false) != Err(GrantError::BadFrame) {
        return Err("grant of a freed page was not refused".into());
    }
    Ok(())
}
