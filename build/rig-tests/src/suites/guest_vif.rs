//! The dom0 side of the guest kernel's network checks
//! (`xenbus/guest-kernel/src/vif.rs`): the guest's vif joins the bridge
//! `xenbr0` (dom0 is 10.99.0.1 there, the guest 10.99.0.20); dom0 pings it,
//! runs a windowed UDP echo against it, and sinks the guest's own datagrams,
//! checking every byte and the order, and acknowledging each window so that
//! nothing should drop.
//!
//! Requests that take long (`vif-ping`, `vif-echo`, `vif-sink-result`) run in
//! a thread; their answer is written when it finishes ([`VifHelper::finished`]),
//! while the guest keeps its device running.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest's MAC (xl config) and addresses.
pub const GUEST_MAC: &str = "00:16:3e:00:00:20";
const GUEST_IP: &str = "10.99.0.20";
const DOM0_IP: &str = "10.99.0.1";
const BRIDGE: &str = "xenbr0";
/// The guest's echo port (`ECHO_PORT` there).
const ECHO_PORT: u16 = 7;
/// Datagrams in flight per window, both ways.
const WINDOW: u32 = 32;
/// Largest and smallest payload (`MAX_PAYLOAD`, `MIN_PAYLOAD` there).
const MAX_PAYLOAD: usize = 1472;
const MIN_PAYLOAD: usize = 6;

/// The xl config line of the guest's network device.
pub fn config_line() -> String {
    format!("vif = [ \"bridge={BRIDGE},mac={GUEST_MAC}\" ]\n")
}

fn env_count(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pings per size (`XENPV_GUEST_VIF_PINGS`, default 50: 200 in all).
fn pings_per_size() -> u32 {
    env_count("XENPV_GUEST_VIF_PINGS", 50)
}

/// Datagrams each way (`XENPV_GUEST_VIF_UDP`, default 3000).
fn datagrams() -> u32 {
    env_count("XENPV_GUEST_VIF_UDP", 3000)
}

/// Byte `i` of datagram `seq` (`payload_byte` in the guest's `vif.rs`).
fn payload_byte(seq: u32, i: usize) -> u8 {
    let s = seq.to_le_bytes();
    let i = i.to_le_bytes();
    (s[0] ^ s[1].rotate_left(3))
        .wrapping_add(i[0].wrapping_mul(7))
        .wrapping_add(i[1].wrapping_mul(13))
}

/// Payload size of datagram `seq` (`datagram_len` there).
fn datagram_len(seq: u32) -> usize {
    match seq % 50 {
        0 => MAX_PAYLOAD,
        1 => MIN_PAYLOAD,
        _ => {
            let span = u32::try_from(MAX_PAYLOAD - MIN_PAYLOAD + 1).unwrap_or(1);
            MIN_PAYLOAD + usize::try_from(seq.wrapping_mul(7919) % span).unwrap_or(0)
        }
    }
}

/// Datagram `seq` (`fill_datagram` there).
fn datagram(seq: u32) -> Vec<u8> {
    let len = datagram_len(seq);
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    (0..len)
        .map(|i| match i {
            0..4 => seq.to_be_bytes()[i],
            4..6 => len16.to_be_bytes()[i - 4],
            _ => payload_byte(seq, i),
        })
        .collect()
}

/// The sequence number of a well-formed datagram (`None` for any wrong
/// byte), and whether only a second look found it well formed.
///
/// Under the rig's TCG, dom0 user space now and then computes wrongly (seen:
/// a datagram first compared different, then equal byte for byte; glibc
/// malloc aborts in unrelated dom0 processes). A second, independent
/// comparison tells such a glitch of dom0's CPU from a corrupt datagram;
/// glitches are counted and reported, corrupt datagrams fail the check.
fn check_datagram(data: &[u8]) -> Option<(u32, bool)> {
    let seq = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    if data == datagram(seq).as_slice() {
        return Some((seq, false));
    }
    let again = datagram(std::hint::black_box(seq));
    (std::hint::black_box(data) == again.as_slice()).then_some((seq, true))
}

/// What a request gets.
pub enum Answer {
    /// Answer at once.
    Now(String),
    /// Answered when the work finishes.
    Later,
}

/// The vif requests' state.
#[derive(Default)]
pub struct VifHelper {
    /// The request being worked on and where its answer comes from.
    deferred: Option<(u64, mpsc::Receiver<String>)>,
    /// The sink thread's result, once `vif-sink` started it.
    sink: Option<mpsc::Receiver<String>>,
}

impl VifHelper {
    /// Serves request `seq`, a `vif-*` command.
    pub fn serve(&mut self, domid: u16, seq: u64, cmd: &str) -> Result<Answer, String> {
        let mut words = cmd.split_whitespace();
        match words.next() {
            Some("vif-setup") => setup(domid).map(Answer::Now),
            Some("vif-ping") => Ok(self.later(seq, Box::new(ping))),
            Some("vif-echo") => Ok(self.later(seq, Box::new(move || udp_echo(domid)))),
            Some("vif-sink") => {
                let (answer, result) = sink()?;
                self.sink = Some(result);
                Ok(Answer::Now(answer))
            }
            Some("vif-sink-result") => {
                let result = self.sink.take().ok_or("no sink running")?;
                self.deferred = Some((seq, result));
                Ok(Answer::Later)
            }
            _ => Err(format!("unknown request {cmd:?}")),
        }
    }

    fn later(&mut self, seq: u64, work: Box<dyn FnOnce() -> String + Send>) -> Answer {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(work());
        });
        self.deferred = Some((seq, rx));
        Answer::Later
    }

    /// A deferred answer that is ready: `(seq, answer)`.
    pub fn finished(&mut self) -> Option<(u64, String)> {
        let (seq, rx) = self.deferred.as_ref()?;
        let answer = match rx.try_recv() {
            Ok(a) => a,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => "error the worker died".into(),
        };
        let seq = *seq;
        self.deferred = None;
        Some((seq, answer))
    }
}

/// Checks the guest's vif joined the bridge; answers dom0's MAC and both
/// addresses.
fn setup(domid: u16) -> Result<String, String> {
    let vif = format!("/sys/class/net/vif{domid}.0");
    if !std::path::Path::new(&format!("{vif}/brport")).exists() {
        return Err(format!("vif{domid}.0 is not in {BRIDGE}"));
    }
    let mac = std::fs::read_to_string(format!("/sys/class/net/{BRIDGE}/address"))
        .map_err(|e| format!("{BRIDGE} address: {e}"))?;
    // A stale neighbour entry from an earlier run would skip the ARP check.
    let _ = Command::new("ip")
        .args(["neigh", "flush", "to", GUEST_IP])
        .status();
    Ok(format!("{} {DOM0_IP} {GUEST_IP}", mac.trim()))
}

/// 4 sizes up to the MTU, each with its own payload pattern; ping checks
/// every reply's data against the pattern ("wrong data byte").
fn ping() -> String {
    let count = pings_per_size();
    let (mut sent, mut received, mut bad) = (0u64, 0u64, 0u64);
    let mut rtts = Vec::new();
    let t0 = Instant::now();
    let sizes = [(56, "a5"), (512, "0f1e2d3c"), (1000, "ff00"), (1472, "5a")];
    for (size, pattern) in sizes {
        let out = match Command::new("ping")
            .args(["-n", "-c", &count.to_string(), "-i", "0.02", "-W", "5"])
            .args(["-s", &size.to_string(), "-p", pattern, GUEST_IP])
            .output()
        {
            Ok(o) => o,
            Err(e) => return format!("error ping: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        bad += u64::try_from(text.matches("wrong data byte").count()).unwrap_or(u64::MAX);
        bad += u64::try_from(text.matches("(DUP!)").count()).unwrap_or(u64::MAX);
        // "50 packets transmitted, 50 received, 0% packet loss, time 1234ms"
        let Some(line) = text.lines().find(|l| l.contains("packets transmitted")) else {
            return format!("error ping -s {size}: {}", text.trim());
        };
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        sent += numbers.first().copied().unwrap_or(0);
        received += numbers.get(1).copied().unwrap_or(0);
        // "rtt min/avg/max/mdev = 0.412/0.562/1.234/0.101 ms"
        if let Some(avg) = text
            .lines()
            .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
            .and_then(|v| v.split('/').nth(1))
        {
            rtts.push(format!("{size}:{avg}"));
        }
    }
    format!(
        "sent {sent} received {received} bad {bad} sizes 56,512,1000,1472 avg-rtt-ms {} ms {}",
        rtts.join(","),
        t0.elapsed().as_millis()
    )
}

/// UDP echo: windows of [`WINDOW`] datagrams, each echo checked byte for
/// byte; the answer ends with the drop counters of the guest's vif and of
/// dom0's UDP (deltas).
fn udp_echo(domid: u16) -> String {
    let before = drop_counters(domid);
    let answer = match udp_echo_inner() {
        Ok(a) | Err(a) => a,
    };
    let after = drop_counters(domid);
    let deltas: Vec<String> = after
        .iter()
        .zip(&before)
        .map(|((name, a), (_, b))| format!("{name} {}", a.saturating_sub(*b)))
        .collect();
    format!("{answer} {}", deltas.join(" "))
}

/// Drop counters: the vif's (netback's netdev: `tx` is towards the guest)
/// and dom0's UDP (`/proc/net/snmp`).
fn drop_counters(domid: u16) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for stat in ["tx_dropped", "rx_dropped", "tx_errors", "rx_errors"] {
        let v = std::fs::read_to_string(format!("/sys/class/net/vif{domid}.0/statistics/{stat}"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        out.push((format!("vif-{stat}"), v));
    }
    for name in ["InErrors", "RcvbufErrors", "InCsumErrors"] {
        out.push((format!("udp-{name}"), udp_snmp(name).unwrap_or(0)));
    }
    out
}

fn udp_echo_inner() -> Result<String, String> {
    let count = datagrams();
    let sock = UdpSocket::bind((DOM0_IP, 0)).map_err(|e| format!("error bind: {e}"))?;
    sock.connect((GUEST_IP, ECHO_PORT))
        .map_err(|e| format!("error connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("error timeout: {e}"))?;
    let (mut ok, mut lost, mut dup, mut late, mut bytes) = (0u32, 0u32, 0u32, 0u32, 0u64);
    let (mut corrupt, mut glitches) = (0u32, 0u32);
    let mut first_corrupt = String::new();
    let mut buf = vec![0u8; 65536];
    let t0 = Instant::now();
    let mut seq = 0u32;
    while seq < count {
        let n = WINDOW.min(count - seq);
        let mut seen = vec![false; usize::try_from(n).unwrap_or(0)];
        // What was sent is what the echo must equal.
        let mut sent = Vec::with_capacity(seen.len());
        for s in seq..seq + n {
            let d = stable_datagram(s, &mut glitches);
            sock.send(&d).map_err(|e| format!("error send {s}: {e}"))?;
            sent.push(d);
        }
        let mut got = 0;
        while got < n {
            let Ok(len) = sock.recv(&mut buf) else {
                break;
            };
            let data = &buf[..len];
            let echoed = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
            let index = echoed
                .filter(|s| (seq..seq + n).contains(s))
                .and_then(|s| usize::try_from(s - seq).ok());
            let Some(index) = index else {
                if echoed.is_some_and(|s| s < seq) {
                    late += 1;
                } else {
                    corrupt += 1;
                    if first_corrupt.is_empty() {
                        first_corrupt = describe_corrupt(data, None);
                    }
                }
                continue;
            };
            let expected = &sent[index];
            let equal = if data == expected.as_slice() {
                true
            } else {
                // A second, independent look (see `check_datagram`).
                let again = std::hint::black_box(data) == std::hint::black_box(expected.as_slice());
                glitches += u32::from(again);
                again
            };
            if !equal {
                corrupt += 1;
                if first_corrupt.is_empty() {
                    first_corrupt = describe_corrupt(data, Some(expected));
                }
            } else if seen[index] {
                dup += 1;
            } else {
                seen[index] = true;
                got += 1;
                ok += 1;
                bytes += u64::try_from(len).unwrap_or(0);
            }
        }
        lost += n - got;
        seq += n;
    }
    Ok(format!(
        "sent {count} ok {ok} lost {lost} bad {} late {late} dup {dup} corrupt {corrupt}{first_corrupt} dom0-cpu-glitches {glitches} bytes {bytes} window {WINDOW} ms {}",
        dup + corrupt,
        t0.elapsed().as_millis()
    ))
}

/// Where a datagram differs from `expected` (by default the datagram its
/// sequence number names).
fn describe_corrupt(data: &[u8], expected: Option<&[u8]>) -> String {
    let Some(seq) = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
    else {
        return format!(" (first: {} bytes)", data.len());
    };
    let canonical = datagram(seq);
    let want = expected.unwrap_or(&canonical);
    let at = data.iter().zip(want).position(|(a, b)| a != b);
    let differ = data.iter().zip(want).filter(|(a, b)| a != b).count();
    let sample = at.map_or_else(String::new, |at| {
        let end = (at + 8).min(data.len()).min(want.len());
        format!(", got {:02x?} want {:02x?}", &data[at..end], &want[at..end])
    });
    format!(
        " (first: seq {seq}, {} bytes for {}, {differ} bytes differ, the first at {at:?}{sample})",
        data.len(),
        want.len()
    )
}

/// Datagram `seq`, built until two builds agree (counting the glitches of
/// dom0's CPU, see [`check_datagram`]).
fn stable_datagram(seq: u32, glitches: &mut u32) -> Vec<u8> {
    let mut d = datagram(seq);
    for _ in 0..4 {
        let again = datagram(std::hint::black_box(seq));
        if again == d {
            break;
        }
        *glitches += 1;
        d = again;
    }
    d
}

/// Counter `name` of the `Udp:` lines of /proc/net/snmp.
fn udp_snmp(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp: "));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// `InCsumErrors` of dom0's UDP.
fn udp_csum_errors() -> Option<u64> {
    udp_snmp("InCsumErrors")
}

/// Opens the sink; answers `listening <port> count <n> window <w>` and
/// receives in a thread until every datagram came or 10 s pass without one.
fn sink() -> Result<(String, mpsc::Receiver<String>), String> {
    let count = datagrams();
    let sock = UdpSocket::bind((DOM0_IP, 0)).map_err(|e| format!("bind: {e}"))?;
    let port = sock
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| format!("timeout: {e}"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sink_run(&sock, count));
    });
    Ok((
        format!("listening {port} count {count} window {WINDOW}"),
        rx,
    ))
}

fn sink_run(sock: &UdpSocket, count: u32) -> String {
    let csum_before = udp_csum_errors();
    let (mut received, mut bad, mut order, mut bytes) = (0u32, 0u32, 0u32, 0u64);
    let mut expected = 0u32;
    let mut guest: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65536];
    let mut last = Instant::now();
    let mut first: Option<Instant> = None;
    let mut first_bad = String::new();
    let mut glitches = 0u32;
    let ack = |to: Option<SocketAddr>, n: u32| {
        if let Some(to) = to {
            let _ = sock.send_to(format!("ack {n}").as_bytes(), to);
        }
    };
    while received < count && last.elapsed() < Duration::from_secs(10) {
        match sock.recv_from(&mut buf) {
            Ok((len, from)) => {
                last = Instant::now();
                first.get_or_insert(last);
                guest = Some(from);
                if let Some((seq, glitch)) = check_datagram(&buf[..len]) {
                    glitches += u32::from(glitch);
                    received += 1;
                    bytes += u64::try_from(len).unwrap_or(0);
                    if seq != expected {
                        order += 1;
                    }
                    expected = seq.wrapping_add(1);
                    if received % WINDOW == 0 || received == count {
                        ack(guest, received);
                    }
                } else {
                    bad += 1;
                    if first_bad.is_empty() {
                        first_bad = describe_corrupt(&buf[..len], None);
                    }
                }
            }
            // Idle: acknowledge again (an ack may have been lost).
            Err(_) => ack(guest, received),
        }
    }
    let ms = first.map_or(0, |f| f.elapsed().as_millis());
    let csum = match (csum_before, udp_csum_errors()) {
        (Some(a), Some(b)) => b.saturating_sub(a).to_string(),
        _ => "unknown".into(),
    };
    format!(
        "received {received} bytes {bytes} bad {bad}{first_bad} order {order} csum-errors {csum} dom0-cpu-glitches {glitches} ms {ms}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_check_and_cover_sizes() {
        let sizes: Vec<usize> = (0..3000).map(datagram_len).collect();
        assert!(sizes.contains(&MIN_PAYLOAD) && sizes.contains(&MAX_PAYLOAD));
        for seq in [0, 1, 2, 77, 4095] {
            let mut d = datagram(seq);
            assert_eq!(check_datagram(&d), Some((seq, false)));
            let last = d.len() - 1;
            d[last] ^= 1;
            assert_eq!(check_datagram(&d), None);
        }
        assert_eq!(check_datagram(&[1, 2]), None);
        assert!(config_line().contains(GUEST_MAC));
    }
}
