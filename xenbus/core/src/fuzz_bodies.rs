//! The bodies of the cargo-fuzz targets in `xenbus/core/fuzz/` (feature
//! `fuzzing`), also run by unit tests over thousands of deterministic inputs so
//! CI exercises them without a fuzzer.
//!
//! Each body asserts invariants, not just "no panic".

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use xen_abi::xs_wire::XENSTORE_RING_SIZE;
use xenbus_interface::api::StoreError;

use crate::engine::{Engine, EngineConfig};
use crate::fake::MemRing;
use crate::ring::{Notify, RingTransport};
use crate::transport::Transport;
use crate::wire::{self, FrameDecoder, Request};

/// Reply parsing: `data` is what a hostile xenstored sends, delivered in chunks
/// whose sizes come from the first byte, to an engine with requests of several
/// types in flight (`req_id`s 1..=8). Also every payload parser on the raw
/// bytes.
///
/// # Panics
/// When an invariant breaks: that is the finding the fuzzer reports.
pub fn reply_parsing(data: &[u8]) {
    let Some((&chunk_seed, stream)) = data.split_first() else {
        return;
    };
    for parse in [
        |b: &[u8]| wire::parse_directory(b).is_ok(),
        |b: &[u8]| wire::parse_directory_part(b).is_ok(),
        |b: &[u8]| wire::parse_permissions(b).is_ok(),
        |b: &[u8]| wire::parse_transaction_id(b).is_ok(),
        |b: &[u8]| wire::parse_watch_event(b).is_ok(),
        |b: &[u8]| wire::parse_error(b).is_ok(),
        |b: &[u8]| wire::parse_ok(b).is_ok(),
    ] {
        let _ = parse(stream);
    }

    let mut engine = Engine::new(
        EngineConfig {
            watch_queue_len: 4,
            ..EngineConfig::default()
        },
        4096,
    );
    let requests = [
        Request::read(0, "/a"),
        Request::directory(0, "/a"),
        Request::write(0, "/a", b"v"),
        Request::get_perms(0, "/a"),
        Request::watch("/a", "xenbus-core/1"),
        Request::rm(0, "/a"),
        Request::mkdir(0, "/a"),
        Request::directory_part(0, "/a", 0),
    ];
    let mut tickets = Vec::new();
    for request in requests.into_iter().flatten() {
        if let Ok(t) = engine.submit(&request) {
            tickets.push(t);
        }
    }
    let _ = engine.watch_register("/a");
    let submitted = tickets.len();
    let chunk = usize::from(chunk_seed % 32) + 1;
    let mut failed = false;
    for piece in stream.chunks(chunk) {
        match engine.receive(piece) {
            Ok(_) => assert!(!failed, "a broken engine accepted input"),
            Err(e) => {
                failed = true;
                assert_eq!(engine.broken(), Some(&e));
            }
        }
    }
    assert!(engine.in_flight() <= submitted);
    for t in tickets {
        match engine.take(t) {
            // A reply arrived (it matched the request's type, or was an error),
            // or the connection broke and the waiter got that error.
            Some(Ok(frame)) => assert!(frame.payload.len() <= 4096),
            Some(Err(StoreError::Xs(_))) | None => {}
            Some(Err(e)) => assert_eq!(engine.broken(), Some(&e)),
        }
    }

    // The bare decoder: whatever the split, it frames the same messages.
    let whole = frames(stream, stream.len().max(1));
    let split = frames(stream, chunk);
    assert_eq!(whole, split);
}

fn frames(stream: &[u8], chunk: usize) -> (Vec<wire::Frame>, bool) {
    let mut decoder = FrameDecoder::default();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        let mut input = piece;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

struct NoKick;
impl Notify for NoKick {
    fn notify(&self) {}
}

/// Ring transport index handling: `data` is a script of daemon moves (index
/// jumps, backwards moves, honest produce/consume) interleaved with client sends
/// and receives. The transport must refuse every impossible index, and while
/// the daemon is honest, deliver exactly the bytes sent, in order, both ways.
///
/// # Panics
/// When an invariant breaks: that is the finding the fuzzer reports.
pub fn ring_transport(data: &[u8]) {
    let ring = MemRing::new();
    let start = data
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    ring.set_indices(start, start, start, start);
    let Ok(mut transport) = RingTransport::new(&ring, NoKick) else {
        panic!("a consistent ring must attach");
    };
    let script = data.get(4..).unwrap_or(&[]);
    let mut buf = [0u8; XENSTORE_RING_SIZE + 16];
    let mut honest = true;
    // Bytes in flight each way, as the honest model sees them.
    let mut to_daemon: VecDeque<u8> = VecDeque::new();
    let mut to_client: VecDeque<u8> = VecDeque::new();
    let mut counter = 0u8;
    let mut next_bytes = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                counter = counter.wrapping_add(1);
                counter
            })
            .collect()
    };
    for step in script.chunks(3) {
        let op = step[0];
        let arg = step.get(1).copied().unwrap_or(0);
        let arg16 = u16::from_le_bytes([arg, step.get(2).copied().unwrap_or(0)]);
        match op % 8 {
            0 => {
                let payload = next_bytes(usize::from(arg16) % (XENSTORE_RING_SIZE + 200));
                let before = ring_req_prod(&ring);
                let impossible = before.wrapping_sub(ring_req_cons(&ring)) > RING;
                match transport.send(&payload) {
                    Ok(n) => {
                        assert!(!impossible, "accepted req_cons past req_prod");
                        assert!(n <= payload.len());
                        assert_eq!(ring_req_prod(&ring).wrapping_sub(before) as usize, n);
                        assert!(ring_req_prod(&ring).wrapping_sub(ring_req_cons(&ring)) <= RING);
                        to_daemon.extend(&payload[..n]);
                    }
                    Err(_) => return,
                }
            }
            1 => {
                let len = usize::from(arg16) % buf.len();
                let before = ring.rsp_cons_now();
                let impossible = ring_rsp_prod(&ring).wrapping_sub(before) > RING;
                let Ok(n) = transport.recv(&mut buf[..len]) else {
                    assert!(!honest, "an honest daemon was refused");
                    return;
                };
                assert!(!impossible, "accepted rsp_prod more than a ring ahead");
                assert!(n <= len);
                assert_eq!(ring.rsp_cons_now().wrapping_sub(before) as usize, n);
                assert!(ring_rsp_prod(&ring).wrapping_sub(ring.rsp_cons_now()) <= RING);
                if honest {
                    let expected: Vec<u8> = to_client.drain(..n).collect();
                    assert_eq!(&buf[..n], &expected[..], "reply bytes corrupted");
                }
            }
            2 => {
                let got = ring.take_requests();
                if honest {
                    let expected: Vec<u8> = to_daemon.drain(..got.len()).collect();
                    assert_eq!(got, expected, "request bytes corrupted");
                }
            }
            3 => {
                let reply = next_bytes(usize::from(arg16) % (XENSTORE_RING_SIZE + 200));
                let n = ring.push_response(&reply);
                to_client.extend(&reply[..n]);
            }
            4 => {
                honest = false;
                ring.set_rsp_prod(ring_rsp_prod(&ring).wrapping_add(u32::from(arg16)));
            }
            5 => {
                honest = false;
                ring.set_rsp_prod(ring_rsp_prod(&ring).wrapping_sub(u32::from(arg)));
            }
            6 => {
                honest = false;
                ring.set_req_cons(ring_req_cons(&ring).wrapping_add(u32::from(arg16)));
            }
            _ => {
                honest = false;
                ring.set_req_cons(ring_req_cons(&ring).wrapping_sub(u32::from(arg)));
            }
        }
        assert!(transport.flush().is_ok());
    }
}

/// The ring size as a `u32` (1024).
const RING: u32 = 1024;

fn ring_req_prod(ring: &MemRing) -> u32 {
    crate::ring::RingPage::req_prod(ring)
}

fn ring_req_cons(ring: &MemRing) -> u32 {
    crate::ring::RingPage::req_cons(ring)
}

fn ring_rsp_prod(ring: &MemRing) -> u32 {
    crate::ring::RingPage::rsp_prod(ring)
}

/// A deterministic pseudo-random generator for the unit tests that drive the
/// fuzz bodies (xorshift64*).
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64().to_le_bytes()[0]).collect()
    }
}

/// Configuration space made of fuzzer bytes: function `(device, function)`
/// of bus 0 owns the 256 bytes at `(device * 8 + function) * 256` (missing
/// bytes read as all-ones, as an empty slot does); writes land in a copy,
/// and a BAR written with all-ones reads back the next slice's bytes as its
/// size mask.
struct BytesConfig {
    bytes: core::cell::RefCell<Vec<u8>>,
}

impl BytesConfig {
    fn offset(at: crate::guest::pci::PciAddress, offset: u8) -> usize {
        (usize::from(at.device()) * 8 + usize::from(at.function())) * 256
            + usize::from(offset & 0xfc)
    }
}

impl crate::guest::pci::ConfigSpace for BytesConfig {
    fn read32(&self, at: crate::guest::pci::PciAddress, offset: u8) -> u32 {
        if at.bus() != 0 {
            return u32::MAX;
        }
        let i = Self::offset(at, offset);
        let b = self.bytes.borrow();
        let byte = |k: usize| b.get(i + k).copied().unwrap_or(0xff);
        u32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)])
    }

    fn write32(&self, at: crate::guest::pci::PciAddress, offset: u8, value: u32) {
        let i = Self::offset(at, offset);
        let mut b = self.bytes.borrow_mut();
        let value = if value == u32::MAX && (0x10..0x28).contains(&offset) {
            // Sizing: a device-chosen mask (the bytes 24 further on).
            let byte = |k: usize| b.get(i + 24 + k).copied().unwrap_or(0);
            u32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)])
        } else {
            value
        };
        if let Some(slot) = b.get_mut(i..i + 4) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// The guest's view of PCI and IDE: `data` is configuration space as a
/// hostile device model presents it (see `BytesConfig`), and also BAR
/// pairs and an IDENTIFY answer. Checks the scan, the BAR decoder, the
/// platform device search and the IDENTIFY parser.
///
/// # Panics
/// When an invariant breaks: that is the finding the fuzzer reports.
pub fn guest_pci(data: &[u8]) {
    use crate::guest::pci::{Bar, XenPlatformDevice, scan_bus};
    use crate::guest::unplug::Identify;

    let word = |i: usize| {
        let b = |k: usize| data.get(i * 4 + k).copied().unwrap_or(0);
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    };
    for i in 0..8 {
        let high = (word(i) & 1 == 0).then(|| (word(i + 2), word(i + 3)));
        match Bar::decode(word(i), word(i + 1), high) {
            Ok(Some(Bar::Memory { size, .. })) => assert!(size.is_power_of_two()),
            Ok(Some(Bar::Io { size, .. })) => assert!(size.is_power_of_two() && size <= 1 << 16),
            Ok(None) | Err(_) => {}
        }
    }
    let mut words = [0u16; 256];
    for (i, w) in words.iter_mut().enumerate() {
        let b = |k: usize| data.get(i * 2 + k).copied().unwrap_or(0);
        *w = u16::from_le_bytes([b(0), b(1)]);
    }
    let id = Identify::parse(&words);
    assert!(id.model.len() <= 40 && id.model.is_ascii());

    let cfg = BytesConfig {
        bytes: core::cell::RefCell::new(data.to_vec()),
    };
    assert!(scan_bus(&cfg, 0).len() <= 256);
    if let Ok(dev) = XenPlatformDevice::find(&cfg) {
        assert!(dev.function.is_xen_platform());
        assert!(dev.mmio_base != 0 && dev.mmio_base % 4096 == 0);
        if let Ok((addr, gpfn)) = dev.frame_area(65) {
            assert!(dev.mmio_size >= 65 * 4096);
            assert_eq!(addr >> 12, gpfn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, MsgType};

    /// Valid replies to the requests `reply_parsing` submits, to mix in.
    fn plausible(rng: &mut Prng) -> Vec<u8> {
        let req_id = u32::try_from(rng.next_u64() % 10).unwrap_or(0);
        let (kind, payload): (MsgType, &[u8]) = match rng.next_u64() % 7 {
            0 => (MsgType::Read, b"value"),
            1 => (MsgType::Directory, b"a\0b\0"),
            2 => (MsgType::Write, b"OK\0"),
            3 => (MsgType::Error, b"EACCES\0"),
            4 => (MsgType::WatchEvent, b"/a/b\0xenbus-core/1\0"),
            5 => (MsgType::GetPerms, b"n0\0r1\0"),
            _ => (MsgType::DirectoryPart, b"7\0x\0\0"),
        };
        Frame {
            kind,
            req_id,
            tx_id: 0,
            payload: payload.to_vec(),
        }
        .encode()
    }

    #[test]
    fn reply_parsing_survives_random_and_mutated_streams() {
        let mut rng = Prng::new(1);
        for _ in 0..3000 {
            let mut data = Vec::new();
            data.push(rng.bytes(1)[0]);
            for _ in 0..(rng.next_u64() % 6) {
                data.extend(plausible(&mut rng));
            }
            // Mutate a few bytes, or append noise.
            match rng.next_u64() % 3 {
                0 => {
                    for _ in 0..(rng.next_u64() % 4) {
                        if data.len() > 1 {
                            let i =
                                1 + usize::try_from(rng.next_u64()).unwrap_or(0) % (data.len() - 1);
                            data[i] = rng.bytes(1)[0];
                        }
                    }
                }
                1 => {
                    let n = usize::try_from(rng.next_u64() % 64).unwrap_or(0);
                    data.extend(rng.bytes(n));
                }
                _ => {}
            }
            reply_parsing(&data);
        }
        for len in 0..64 {
            reply_parsing(&rng.bytes(len));
        }
    }

    #[test]
    fn ring_transport_survives_random_scripts() {
        let mut rng = Prng::new(2);
        for round in 0..3000 {
            let len = 4 + usize::try_from(rng.next_u64() % 120).unwrap_or(0);
            let mut data = rng.bytes(len);
            if round % 2 == 0 {
                // Mostly honest scripts: only ops 0..=3.
                for op in data.iter_mut().skip(4).step_by(3) {
                    *op %= 4;
                }
            }
            ring_transport(&data);
        }
    }

    #[test]
    fn honest_ring_script_moves_data_both_ways() {
        // send 300, daemon takes, daemon replies 2000 (fills 1024), client reads
        // twice across the wrap.
        let mut data = vec![0xf0, 0xff, 0xff, 0xff];
        data.extend([
            0, 0x2c, 0x01, 2, 0, 0, 3, 0xd0, 0x07, 1, 0x00, 0x03, 1, 0x00, 0x04,
        ]);
        ring_transport(&data);
    }

    #[test]
    fn guest_pci_survives_random_configuration_spaces() {
        let mut rng = Prng::new(7);
        for round in 0..3000 {
            let len = usize::try_from(rng.next_u64() % 9000).unwrap_or(0);
            let mut data = rng.bytes(len);
            // Every other round, plant a platform device with a sane header.
            let at = 2 * 8 * 256;
            if round % 2 == 0 && data.len() >= at + 64 {
                data[at..at + 4].copy_from_slice(&0x0001_5853u32.to_le_bytes());
                data[at + 14] = 0;
            }
            guest_pci(&data);
        }
    }

    #[test]
    fn committed_seeds_run_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let mut count = 0;
        for (target, body) in [
            ("reply_parsing", reply_parsing as fn(&[u8])),
            ("ring_transport", ring_transport),
        ] {
            for entry in std::fs::read_dir(dir.join(target)).unwrap() {
                body(&std::fs::read(entry.unwrap().path()).unwrap());
                count += 1;
            }
        }
        assert!(count >= 16, "{count} seeds");
    }

    use alloc::vec;
}
