//! Bodies of the cargo-fuzz targets in `fuzz/`, kept here so that unit tests run
//! them over deterministic inputs in every CI run.
//!
//! Each body derives everything it needs from the input bytes, runs the code
//! under test, and asserts the invariants that must hold for any input (a failed
//! assertion is a finding, exactly like a panic inside the code).

use crate::scsi::{self, Discard, LogicalUnit, Outcome, Request};

/// Reads bytes off the front of the fuzz input, zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }
}

/// Fuzz target `scsi_command`: a unit shaped by the input, then a CDB and a
/// parameter list from the rest; checks that every outcome stays within the
/// unit and the buffers.
///
/// # Panics
/// When an invariant is broken: that is the finding.
pub fn scsi_command(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let block_size = 512u32 << (input.byte() % 4);
    let blocks = input.u64() >> (input.byte() % 64);
    let lu = LogicalUnit {
        block_size,
        physical_block_size: block_size << (input.byte() % 4),
        blocks,
        read_only: flags & 1 != 0,
        removable: flags & 2 != 0,
        write_cache: flags & 4 != 0,
        fua: flags & 8 != 0,
        discard: (flags & 16 != 0).then(|| Discard {
            granularity: input.u32() >> (input.byte() % 32),
            alignment: input.u32() >> (input.byte() % 32),
            secure: flags & 32 != 0,
        }),
        max_transfer_bytes: input.u32(),
        max_unmap_descriptors: u32::from(input.byte()),
        device_id: input.u32(),
    };
    let transfer_len = input.u64() >> (input.byte() % 64);
    let data_in_len = usize::from(input.byte()) * 2;
    let cdb_len = usize::from(input.byte() % 20);
    let rest = input.0;
    let (cdb, data_out) = rest.split_at(cdb_len.min(rest.len()));
    let mut data_in = alloc::vec![0u8; data_in_len];
    let outcome = scsi::execute(
        Request {
            cdb,
            data_out,
            data_in: &mut data_in,
            transfer_len,
        },
        &lu,
    );
    let capacity_sectors = u128::from(lu.blocks) * u128::from(block_size / 512);
    match outcome {
        Outcome::Good { data_len } => assert!(data_len <= data_in_len),
        Outcome::Transfer(t) => {
            assert!(t.sectors > 0);
            assert!(u128::from(t.sector) + u128::from(t.sectors) <= capacity_sectors);
            assert!(t.bytes() <= transfer_len && t.bytes() <= u64::from(lu.max_transfer_bytes));
            assert!(!(t.write && lu.read_only));
            assert!(!t.fua || t.write);
        }
        Outcome::Flush => assert!(lu.write_cache),
        Outcome::Unmap(list) => {
            assert!(!lu.read_only);
            let discard = lu.discard.expect("UNMAP only with discard");
            assert!(list.len() <= usize::try_from(lu.max_unmap_descriptors).unwrap_or(usize::MAX));
            for range in list.discard_ranges(discard) {
                assert!(range.sectors > 0);
                assert!(u128::from(range.sector) + u128::from(range.sectors) <= capacity_sectors);
            }
        }
        Outcome::CheckCondition(sense) => {
            let mut buf = [0u8; 32];
            assert_eq!(sense.write_fixed(&mut buf), scsi::sense::FIXED_SENSE_LEN);
            assert!(sense.write_descriptor(&mut buf) <= scsi::sense::DESCRIPTOR_SENSE_MAX_LEN);
        }
    }
}

/// Fuzz target `blkif_responses` (needs feature `test-utils`): a connected
/// frontend with requests in flight, then responses made of the input bytes
/// (ids, operations, statuses, producer jumps) from a hostile backend. Checks
/// that nothing is acknowledged twice, that a failed device has nothing
/// outstanding, and that no page is freed while granted.
///
/// # Panics
/// When an invariant is broken: that is the finding.
#[cfg(any(test, feature = "test-utils"))]
pub fn blkif_responses(data: &[u8]) {
    use crate::blkfront::{
        Completion, Frontend, IoRequest, Operation, Platform, Segment, Settings,
    };
    use crate::fake::{BackendKeys, FakeBlkback, FakeChannel, FakeRingPages, FakeXen};
    use xen_abi::blkif::BlkifResponse;

    let mut input = Input(data);
    let flags = input.byte();
    let xen = FakeXen::new();
    let mut keys = BackendKeys::linux_like(4096)
        .with("multi-queue-max-queues", "1")
        .with("max-ring-page-order", "0");
    if flags & 1 != 0 {
        keys = keys.with("feature-persistent", "0");
    }
    if flags & 2 != 0 {
        keys = keys.with("feature-max-indirect-segments", "0");
    }
    let mut be = FakeBlkback::new(&xen, 51712, &keys);
    let p = Platform {
        store: &xen,
        events: &xen,
        grants: &xen,
        memory: &xen,
        frames: &xen,
    };
    let mut done: alloc::vec::Vec<Completion> = alloc::vec::Vec::new();
    let mut fe: Frontend<FakeChannel, FakeRingPages> =
        Frontend::new(&xen, &be.frontend, Settings::default()).expect("frontend");
    fe.poll_state(p, &mut |c| done.push(c)).expect("talk");
    be.connect();
    fe.poll_state(p, &mut |c| done.push(c)).expect("connect");
    let requests = usize::from(input.byte() % 32) + 1;
    let mut submitted = 0u64;
    for i in 0..requests {
        let pages = usize::from(input.byte() % 20) + 1;
        let segs: alloc::vec::Vec<Segment> = (0..pages)
            .map(|_| Segment::new(xen.data_page(), 0, 4096).expect("segment"))
            .collect();
        let operation = match input.byte() % 4 {
            0 => Operation::Read,
            1 => Operation::Write { fua: false },
            2 => Operation::Write { fua: true },
            _ => Operation::Flush,
        };
        let segments = if operation == Operation::Flush {
            &[][..]
        } else {
            &segs[..]
        };
        let req = IoRequest {
            tag: i as u64,
            operation,
            sector: u64::from(input.byte()) * 8,
            segments,
        };
        if fe.submit(0, &req, p).is_ok() {
            submitted += 1;
        }
    }
    while !input.0.is_empty() {
        let kind = input.byte();
        match kind % 8 {
            0 => be.jump_rsp_prod(0, input.u32() % 64),
            1 => {
                be.serve_queue(0, usize::from(input.byte() % 4));
            }
            _ => {
                let rsp = BlkifResponse {
                    id: u64::from(input.byte() % 40),
                    operation: input.byte() % 8,
                    pad1: 0,
                    status: i16::from(i8::from_le_bytes([input.byte()]) % 4),
                    pad2: 0,
                };
                be.raw_response(0, &rsp);
            }
        }
        let budget = usize::from(input.byte() % 8) + 1;
        fe.poll(0, budget, p, &mut |c| done.push(c));
    }
    let mut tags: alloc::vec::Vec<u64> = done.iter().map(|c| c.tag).collect();
    tags.sort_unstable();
    let before = tags.len();
    tags.dedup();
    assert_eq!(before, tags.len(), "a request was acknowledged twice");
    assert!(tags.len() as u64 <= submitted);
    if fe.broken().is_some() {
        assert_eq!(
            fe.queues()[0].outstanding(),
            0,
            "failed device left requests"
        );
        assert_eq!(tags.len() as u64, submitted);
    }
    assert!(
        xen.freed_while_granted.borrow().is_empty(),
        "page freed while granted"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use alloc::vec::Vec;

    /// A small deterministic generator (xorshift64*), so the fuzz bodies run
    /// over the same inputs in every CI run.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        pub(crate) fn bytes(&mut self, max: usize) -> Vec<u8> {
            let len = usize::try_from(self.next() % (max as u64 + 1)).unwrap();
            (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
        }
    }

    #[test]
    fn scsi_command_fuzz_body_over_random_inputs() {
        let mut rng = Rng(0x5EED_0001);
        for _ in 0..20_000 {
            super::scsi_command(&rng.bytes(160));
        }
    }

    #[test]
    fn blkif_responses_fuzz_body_over_random_inputs() {
        let mut rng = Rng(0x5EED_0003);
        for _ in 0..1500 {
            super::blkif_responses(&rng.bytes(120));
        }
    }

    #[test]
    fn scsi_command_fuzz_body_over_real_cdbs() {
        // Well-formed CDBs of every supported opcode on a plain unit, with
        // random fields: reaches the deep paths random bytes rarely hit.
        let ops = [
            0x00u8, 0x03, 0x08, 0x0A, 0x12, 0x1A, 0x1B, 0x25, 0x28, 0x2A, 0x2F, 0x35, 0x42, 0x5A,
            0x88, 0x8A, 0x8F, 0x91, 0x9E, 0xA0, 0xA8, 0xAA, 0xAF,
        ];
        let mut rng = Rng(0x5EED_0002);
        for i in 0..20_000 {
            let mut input = Vec::new();
            input.push(0x1C); // flags: write cache, FUA, discard
            input.push(1);
            input.extend_from_slice(&[0, 0, 0, 0x10, 0, 0, 0, 0, 0]); // blocks
            input.push(1);
            input.extend_from_slice(&[0, 0x10, 0, 0, 0]); // granularity
            input.extend_from_slice(&[0, 0, 0, 0, 0]); // alignment
            input.extend_from_slice(&[0, 0, 0x10, 0]); // max transfer
            input.push(8);
            input.extend_from_slice(&[1, 2, 3, 4]);
            input.extend_from_slice(&[0, 0, 0x40, 0, 0, 0, 0, 0, 0]); // transfer_len
            input.push(128);
            input.push(16);
            let mut cdb = rng.bytes(16);
            cdb.resize(16, 0);
            cdb[0] = ops[i % ops.len()];
            cdb[1] &= 0x1F;
            input.extend_from_slice(&cdb);
            input.extend_from_slice(&rng.bytes(200));
            super::scsi_command(&input);
        }
    }
}
