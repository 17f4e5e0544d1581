//! `platform`: the dom0 plumbing every frontend test stands on (device nodes,
//! xenstore over `/dev/xen/xenbus`, event channels, grants, backends, the bridge,
//! the C helper convention).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::dom0::{Evtchn, GrantedPage, MappedGrant, Xenbus};
use crate::{Bench, BenchRow, Suite, Test, run_helper};

/// The suite.
pub const SUITE: Suite = Suite {
    name: "platform",
    tests: &[
        Test {
            name: "dev_xen_nodes",
            run: dev_xen_nodes,
        },
        Test {
            name: "xenbus_read_domid",
            run: xenbus_read_domid,
        },
        Test {
            name: "xenbus_write_read_rm",
            run: xenbus_write_read_rm,
        },
        Test {
            name: "evtchn_unbound_port",
            run: evtchn_unbound_port,
        },
        Test {
            name: "evtchn_loopback_delivers",
            run: evtchn_loopback_delivers,
        },
        Test {
            name: "gntalloc_page_mmap",
            run: gntalloc_page_mmap,
        },
        Test {
            name: "grant_loopback_gntdev",
            run: grant_loopback_gntdev,
        },
        Test {
            name: "backends_loaded",
            run: backends_loaded,
        },
        Test {
            name: "bridge_up",
            run: bridge_up,
        },
        Test {
            name: "c_helper_libxenstore",
            run: c_helper_libxenstore,
        },
    ],
    benches: &[Bench {
        name: "xenstore_read",
        run: xenstore_read,
    }],
};

fn dev_xen_nodes() -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt as _;
    let missing: Vec<&str> = ["xenbus", "evtchn", "gntalloc", "gntdev", "privcmd"]
        .into_iter()
        .filter(|name| {
            std::fs::metadata(format!("/dev/xen/{name}"))
                .map_or(true, |m| !m.file_type().is_char_device())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no character device /dev/xen/{{{}}}",
            missing.join(",")
        ))
    }
}

fn xenbus_read_domid() -> Result<(), String> {
    // Relative paths are relative to the connection's home, /local/domain/0.
    let value = Xenbus::open()?.read("domid")?;
    if value == "0" {
        Ok(())
    } else {
        Err(format!("domid reads {value:?}, expected \"0\""))
    }
}

fn xenbus_write_read_rm() -> Result<(), String> {
    let mut xs = Xenbus::open()?;
    let path = "/local/domain/0/data/rig-platform";
    xs.write(path, "hello from rig-tests")?;
    let value = xs.read(path);
    xs.remove(path)?;
    match value? {
        v if v == "hello from rig-tests" => {}
        v => return Err(format!("read back {v:?}")),
    }
    match xs.read(path) {
        Err(e) if e.contains("ENOENT") => Ok(()),
        other => Err(format!(
            "after XS_RM, read gives {other:?}, expected ENOENT"
        )),
    }
}

fn evtchn_unbound_port() -> Result<(), String> {
    let mut evtchn = Evtchn::open()?;
    let port = evtchn.bind_unbound(0)?;
    if port == 0 {
        return Err("port 0 is never a valid allocation".into());
    }
    evtchn.unbind(port)
}

fn evtchn_loopback_delivers() -> Result<(), String> {
    // dom0 plays both ends: an unbound port for domain 0, then an interdomain bind to it.
    let mut evtchn = Evtchn::open()?;
    let listener = evtchn.bind_unbound(0)?;
    let sender = evtchn.bind_interdomain(0, listener)?;
    evtchn.notify(sender)?;
    // Xen sets the freshly bound interdomain port pending itself (it may have
    // missed notifications while unbound), so `sender` may fire once too.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match evtchn.wait(left)? {
            Some(port) if port == listener => return Ok(()),
            Some(port) => seen.push(port),
            None => break,
        }
    }
    Err(format!(
        "no event on port {listener} within 2 s after notifying {sender} (events seen on {seen:?})"
    ))
}

fn gntalloc_page_mmap() -> Result<(), String> {
    let mut page = GrantedPage::new(0, true)?;
    let bytes = page.bytes();
    if bytes.iter().any(|b| *b != 0) {
        return Err("a fresh granted page is not zeroed".into());
    }
    bytes[..8].copy_from_slice(b"rigtests");
    if &page.bytes()[..8] == b"rigtests" {
        Ok(())
    } else {
        Err("granted page does not keep what was written".into())
    }
}

fn grant_loopback_gntdev() -> Result<(), String> {
    // Grant a page to dom0 itself and map it back the way a backend would.
    let mut page = GrantedPage::new(0, true)?;
    page.bytes()[100..116].copy_from_slice(b"front->back data");
    let mut mapped = MappedGrant::new(0, page.gref)?;
    if &mapped.bytes()[100..116] != b"front->back data" {
        return Err(format!(
            "gref {} mapped through gntdev shows other data",
            page.gref
        ));
    }
    mapped.bytes()[200..216].copy_from_slice(b"back->front data");
    drop(mapped);
    if &page.bytes()[200..216] == b"back->front data" {
        Ok(())
    } else {
        Err("a write through the gntdev mapping did not reach the granted page".into())
    }
}

fn backends_loaded() -> Result<(), String> {
    let missing: Vec<&str> = ["xen_blkback", "xen_netback"]
        .into_iter()
        .filter(|m| !Path::new("/sys/module").join(m).exists())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("modules not loaded: {}", missing.join(", ")))
    }
}

fn bridge_up() -> Result<(), String> {
    if !Path::new("/sys/class/net/xenbr0/bridge").is_dir() {
        return Err("no bridge xenbr0".into());
    }
    let state = std::fs::read_to_string("/sys/class/net/xenbr0/operstate")
        .map_err(|e| format!("xenbr0 operstate: {e}"))?;
    let flags = std::fs::read_to_string("/sys/class/net/xenbr0/flags")
        .map_err(|e| format!("xenbr0 flags: {e}"))?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
        .map_err(|e| format!("flags: {e}"))?;
    // IFF_UP; operstate stays "down"/"unknown" until a port joins, which is fine.
    if flags & 1 == 1 {
        Ok(())
    } else {
        Err(format!("xenbr0 is not up (operstate {})", state.trim()))
    }
}

/// Parses the `xs-read-loop` helper's output: `value=<v> count=<n> seconds=<s>`.
fn parse_helper(output: &str) -> Result<(String, f64, f64), String> {
    let mut value = None;
    let mut count = None;
    let mut seconds = None;
    for field in output.split_whitespace() {
        match field.split_once('=') {
            Some(("value", v)) => value = Some(v.to_string()),
            Some(("count", v)) => count = v.parse::<f64>().ok(),
            Some(("seconds", v)) => seconds = v.parse::<f64>().ok(),
            _ => {}
        }
    }
    match (value, count, seconds) {
        (Some(v), Some(c), Some(s)) => Ok((v, c, s)),
        _ => Err(format!("unexpected helper output {output:?}")),
    }
}

fn c_helper_libxenstore() -> Result<(), String> {
    let (value, _, _) = parse_helper(&run_helper("xs-read-loop", &["domid", "1"])?)?;
    if value == "0" {
        Ok(())
    } else {
        Err(format!("libxenstore reads domid {value:?}"))
    }
}

fn xenstore_read() -> Result<Vec<BenchRow>, String> {
    // Time-bounded: under TCG on a shared host a read costs 5-50 ms.
    const BUDGET: Duration = Duration::from_secs(3);
    let mut xs = Xenbus::open()?;
    let start = Instant::now();
    let mut reads: u32 = 0;
    while reads < 20 || start.elapsed() < BUDGET {
        xs.read("domid")?;
        reads += 1;
    }
    let ours = f64::from(reads) / start.elapsed().as_secs_f64();
    let output = run_helper("xs-read-loop", &["domid", &reads.to_string()])?;
    let (_, count, seconds) = parse_helper(&output)?;
    Ok(vec![BenchRow::new(
        "raw XS_READ vs libxenstore xs_read, /dev/xen/xenbus",
        ours,
        count / seconds,
        "ops/s",
    )])
}

#[cfg(test)]
mod tests {
    use super::parse_helper;

    #[test]
    fn helper_output_parses() {
        let (value, count, seconds) = parse_helper("value=0 count=10 seconds=0.5\n").unwrap();
        assert_eq!((value.as_str(), count, seconds), ("0", 10.0, 0.5));
        assert!(parse_helper("garbage").is_err());
    }
}
