//! The client end to end against the fake xenstored, through both transports,
//! including the fake's hostile modes.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use xen_abi::xs_wire::XsError;
use xenbus_interface::api::{Access, DomId, Permission, Store, StoreError, Txn};

use crate::client::{Client, ClientConfig};
use crate::fake::{FakePlatform, FakeStream, FakeXenstored, Fault, MemRing};
use crate::ring::RingTransport;
use crate::transport::StreamTransport;
use crate::wire::Request;

type StreamClient = Client<StreamTransport<FakeStream>, FakePlatform>;
type RingClient = Client<RingTransport<Arc<MemRing>, FakePlatform>, FakePlatform>;

fn quick() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

fn stream_client(server: &FakeXenstored) -> StreamClient {
    Client::with_config(
        StreamTransport::new(server.connect_stream()),
        FakePlatform::new(server),
        quick(),
    )
}

fn ring_client(server: &FakeXenstored) -> RingClient {
    let platform = FakePlatform::new(server);
    let transport = RingTransport::new(server.connect_ring(), platform.clone()).unwrap();
    Client::with_config(transport, platform, quick())
}

/// The same scenario through any store.
fn basic_operations(store: &dyn Store) {
    store.write(Txn::NONE, "/a/b", b"hello").unwrap();
    assert_eq!(store.read(Txn::NONE, "/a/b").unwrap(), b"hello");
    store.write(Txn::NONE, "/a/c", b"").unwrap();
    store.mkdir(Txn::NONE, "/a/d").unwrap();
    let mut names = store.directory(Txn::NONE, "/a").unwrap();
    names.sort();
    assert_eq!(names, vec!["b", "c", "d"]);
    assert_eq!(
        store.read(Txn::NONE, "/nope"),
        Err(StoreError::Xs(XsError::Enoent))
    );
    store.remove(Txn::NONE, "/a/b").unwrap();
    assert_eq!(
        store.read(Txn::NONE, "/a/b"),
        Err(StoreError::Xs(XsError::Enoent))
    );
    // Relative paths resolve under the connection's home.
    store.write(Txn::NONE, "data/x", b"1").unwrap();
    assert_eq!(
        store.read(Txn::NONE, "/local/domain/0/data/x").unwrap(),
        b"1"
    );
    // Client-side limits: nothing reaches the daemon.
    assert_eq!(store.read(Txn::NONE, "/a//b"), Err(StoreError::InvalidPath));
    let too_big = vec![b'v'; 4096];
    assert!(matches!(
        store.write(Txn::NONE, "/a/big", &too_big),
        Err(StoreError::TooLarge { .. })
    ));
    // A value exactly at the limit goes through.
    let fits = vec![b'v'; 4096 - "/a/big".len() - 1];
    store.write(Txn::NONE, "/a/big", &fits).unwrap();
    assert_eq!(store.read(Txn::NONE, "/a/big").unwrap(), fits);
}

#[test]
fn stream_basic_operations() {
    let server = FakeXenstored::new();
    basic_operations(&stream_client(&server));
}

#[test]
fn ring_basic_operations_cross_wrap_and_polls() {
    let server = FakeXenstored::new();
    let client = ring_client(&server);
    basic_operations(&client);
    // 4 KiB values through a 1 KiB ring: every reply spans several polls and
    // wraps; kicks are batched (fewer than one per request byte chunk).
    assert!(client.platform().kicks() > 0);
}

#[test]
fn trickled_bytes_still_frame() {
    let server = FakeXenstored::new();
    let stream = server.connect_stream();
    server.set_trickle(&stream, true);
    let client = Client::with_config(
        StreamTransport::new(stream),
        FakePlatform::new(&server),
        quick(),
    );
    client.write(Txn::NONE, "/t", b"value").unwrap();
    assert_eq!(client.read(Txn::NONE, "/t").unwrap(), b"value");
}

#[test]
fn permissions_round_trip() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    client.write(Txn::NONE, "/p", b"").unwrap();
    let perms = [
        Permission {
            domid: DomId(0),
            access: Access::None,
        },
        Permission {
            domid: DomId(7),
            access: Access::Both,
        },
    ];
    client.set_permissions(Txn::NONE, "/p", &perms).unwrap();
    assert_eq!(client.get_permissions(Txn::NONE, "/p").unwrap(), perms);
    assert_eq!(client.get_domain_path(DomId(7)).unwrap(), "/local/domain/7");
}

#[test]
fn sixty_four_requests_in_flight() {
    for ring in [false, true] {
        let server = FakeXenstored::new();
        let stream;
        let ringc;
        let client: &dyn PipelinedStore = if ring {
            ringc = ring_client(&server);
            &ringc
        } else {
            stream = stream_client(&server);
            &stream
        };
        for i in 0..64 {
            server.write_node(&format!("/many/{i}"), format!("value-{i}").as_bytes());
        }
        let tickets: Vec<_> = (0..64)
            .map(|i| client.submit_read(&format!("/many/{i}")).unwrap())
            .collect();
        // Collect in reverse order: matching is by req_id, not arrival.
        for (i, t) in tickets.into_iter().enumerate().rev() {
            assert_eq!(
                client.collect(t).unwrap(),
                format!("value-{i}").into_bytes()
            );
        }
    }
}

/// Pipelining through either transport type in one test.
trait PipelinedStore {
    fn submit_read(&self, path: &str) -> Result<crate::Ticket, StoreError>;
    fn collect(&self, t: crate::Ticket) -> Result<Vec<u8>, StoreError>;
}

impl<T: crate::Transport> PipelinedStore for Client<T, FakePlatform> {
    fn submit_read(&self, path: &str) -> Result<crate::Ticket, StoreError> {
        self.submit(&Request::read(0, path).unwrap())
    }
    fn collect(&self, t: crate::Ticket) -> Result<Vec<u8>, StoreError> {
        self.wait_reply(t, Duration::from_secs(1))
            .map(|f| f.payload)
    }
}

#[test]
fn watches_fire_with_token_and_stop_after_removal() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    let watch = client.watch_add("/w").unwrap();
    // xenstored fires every new watch once.
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    assert!(!client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    server.write_node("/w/below/deep", b"1");
    server.write_node("/elsewhere", b"1");
    assert_eq!(
        client.watch_next_event(watch).unwrap().as_deref(),
        Some("/w/below/deep")
    );
    assert_eq!(client.watch_next_event(watch).unwrap(), None);
    client.write(Txn::NONE, "/w", b"x").unwrap();
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    client.watch_remove(watch).unwrap();
    assert_eq!(server.watch_count(), 0);
    server.write_node("/w/again", b"1");
    assert!(client.watch_wait(watch, Duration::from_millis(10)).is_err());
}

#[test]
fn watch_events_interleave_with_replies() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    let other = stream_client(&server);
    let watch = client.watch_add("/busy").unwrap();
    for i in 0..50 {
        other.write(Txn::NONE, &format!("/busy/{i}"), b"v").unwrap();
        // Our replies and the events arrive interleaved on one connection.
        client
            .write(Txn::NONE, &format!("/mine/{i}"), b"v")
            .unwrap();
    }
    let mut paths = Vec::new();
    while let Some(p) = client.watch_next_event(watch).unwrap() {
        paths.push(p);
    }
    assert_eq!(paths.len(), 51, "initial event + one per write");
    assert_eq!(paths[1], "/busy/0");
    assert_eq!(paths[50], "/busy/49");
}

#[test]
fn transaction_conflict_is_retried() {
    let server = FakeXenstored::new();
    let a = stream_client(&server);
    let b = stream_client(&server);
    a.write(Txn::NONE, "/counter", b"0").unwrap();
    let mut attempts = 0;
    a.transaction(|txn| {
        attempts += 1;
        let v = a.read(txn, "/counter")?;
        if attempts == 1 {
            // Another connection commits in between: our commit must conflict.
            b.write(Txn::NONE, "/counter", b"5")?;
        }
        let n: u32 = core::str::from_utf8(&v).unwrap().parse().unwrap();
        a.write(txn, "/counter", format!("{}", n + 1).as_bytes())
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(a.read(Txn::NONE, "/counter").unwrap(), b"6");
    assert_eq!(server.transaction_count(), 0);
}

#[test]
fn transaction_retry_is_bounded() {
    let server = FakeXenstored::new();
    let client = Client::with_config(
        StreamTransport::new(server.connect_stream()),
        FakePlatform::new(&server),
        ClientConfig {
            transaction_attempts: 3,
            ..quick()
        },
    );
    let mut runs = 0;
    let result = client.transaction(|txn| {
        runs += 1;
        client.write(txn, "/x", b"1")?;
        // Every commit conflicts.
        server.write_node("/other", b"1");
        Ok(())
    });
    assert_eq!(result, Err(StoreError::Xs(XsError::Eagain)));
    assert_eq!(runs, 3);
    // A failing body aborts its transaction and is not retried.
    let result: Result<(), _> = client.transaction(|_| Err(StoreError::BadValue));
    assert_eq!(result, Err(StoreError::BadValue));
    assert_eq!(server.transaction_count(), 0);
}

#[test]
fn large_directories_fall_back_to_parts() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    for i in 0..300 {
        server.write_node(&format!("/big/entry-{i:04}"), b"");
    }
    server.set_directory_limits(100, 200);
    let names = client.directory(Txn::NONE, "/big").unwrap();
    assert_eq!(names.len(), 300);
    assert_eq!(names[0], "entry-0000");
    assert_eq!(names[299], "entry-0299");
    assert!(server.request_count() > 10, "listed in many parts");
}

#[test]
fn hostile_replies_are_errors_not_panics() {
    let faults = [
        Fault::WrongReqId,
        Fault::GarbageType,
        Fault::OversizeLength,
        Fault::WrongType,
    ];
    for fault in faults {
        for ring in [false, true] {
            let server = FakeXenstored::new();
            let result = if ring {
                let client = ring_client(&server);
                server.inject(fault);
                let r = client.read(Txn::NONE, "/local");
                // The connection stays failed.
                assert!(client.broken().is_some());
                r
            } else {
                let client = stream_client(&server);
                server.inject(fault);
                let r = client.read(Txn::NONE, "/local");
                assert!(client.broken().is_some());
                assert!(client.read(Txn::NONE, "/local").is_err());
                r
            };
            assert!(
                matches!(result, Err(StoreError::Protocol(_))),
                "{fault:?} ring={ring}: {result:?}"
            );
        }
    }
}

#[test]
fn missing_nul_is_a_protocol_error() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    client.write(Txn::NONE, "/d/a", b"").unwrap();
    server.inject(Fault::MissingNul);
    assert!(matches!(
        client.directory(Txn::NONE, "/d"),
        Err(StoreError::Protocol(_))
    ));
}

#[test]
fn dropped_reply_times_out_and_late_ids_stay_reserved() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    server.inject(Fault::Drop);
    assert_eq!(client.read(Txn::NONE, "/local"), Err(StoreError::Timeout));
    // The connection is still usable.
    assert!(client.read(Txn::NONE, "/local").is_ok());
}

#[test]
fn ring_index_jump_breaks_the_connection() {
    let server = FakeXenstored::new();
    let platform = FakePlatform::new(&server);
    let ring = server.connect_ring();
    let client = Client::with_config(
        RingTransport::new(ring.clone(), platform.clone()).unwrap(),
        platform,
        quick(),
    );
    client.write(Txn::NONE, "/r", b"1").unwrap();
    ring.set_rsp_prod(ring.rsp_cons_now().wrapping_add(5000));
    let err = client.read(Txn::NONE, "/r").unwrap_err();
    assert!(matches!(err, StoreError::Protocol(_)), "{err:?}");
}

#[test]
fn reconnect_re_registers_watches() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    let watch = client.watch_add("/rw").unwrap();
    assert!(client.watch_wait(watch, Duration::from_millis(1)).unwrap());
    // The daemon loses the connection (a resume): a new one has no watches.
    client
        .reconnect(StreamTransport::new(server.connect_stream()))
        .unwrap();
    assert_eq!(server.watch_count(), 2, "old connection's + re-registered");
    // The re-registration fires once, then real changes come through.
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    server.write_node("/rw/x", b"1");
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    assert_eq!(client.read(Txn::NONE, "/rw/x").unwrap(), b"1");
    let _ = String::new();
}

mod props {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Write(u8, Vec<u8>),
        Read(u8),
        Remove(u8),
        List,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, proptest::collection::vec(any::<u8>(), 0..1500))
                .prop_map(|(k, v)| Op::Write(k, v)),
            (0u8..8).prop_map(Op::Read),
            (0u8..8).prop_map(Op::Remove),
            Just(Op::List),
        ]
    }

    fn run(store: &dyn Store, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        store.mkdir(Txn::NONE, "/m").unwrap();
        for op in ops {
            match op {
                Op::Write(k, v) => {
                    store.write(Txn::NONE, &format!("/m/k{k}"), v).unwrap();
                    model.insert(format!("k{k}"), v.clone());
                }
                Op::Read(k) => {
                    let got = store.read(Txn::NONE, &format!("/m/k{k}"));
                    let expected = model
                        .get(&format!("k{k}"))
                        .cloned()
                        .ok_or(StoreError::Xs(XsError::Enoent));
                    prop_assert_eq!(got, expected);
                }
                Op::Remove(k) => {
                    let got = store.remove(Txn::NONE, &format!("/m/k{k}"));
                    prop_assert_eq!(got.is_ok(), model.remove(&format!("k{k}")).is_some());
                }
                Op::List => {
                    let names = store.directory(Txn::NONE, "/m").unwrap();
                    let expected: Vec<String> = model.keys().cloned().collect();
                    prop_assert_eq!(names, expected);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn store_matches_a_model_through_both_transports(ops in proptest::collection::vec(op(), 1..40)) {
            let server = FakeXenstored::new();
            run(&stream_client(&server), &ops)?;
            let server = FakeXenstored::new();
            run(&ring_client(&server), &ops)?;
        }
    }
}

#[test]
fn one_client_is_shared_by_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    for ring in [false, true] {
        let server = FakeXenstored::new();
        let stream;
        let ringc;
        let client: &(dyn Store + Sync) = if ring {
            ringc = ring_client(&server);
            assert_send_sync(&ringc);
            &ringc
        } else {
            stream = stream_client(&server);
            assert_send_sync(&stream);
            &stream
        };
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for i in 0..100 {
                        let path = format!("/threads/{t}/{i}");
                        client.write(Txn::NONE, &path, path.as_bytes()).unwrap();
                        assert_eq!(client.read(Txn::NONE, &path).unwrap(), path.as_bytes());
                    }
                });
            }
        });
        for t in 0..4 {
            assert_eq!(
                client
                    .directory(Txn::NONE, &format!("/threads/{t}"))
                    .unwrap()
                    .len(),
                100
            );
        }
    }
}

#[test]
fn a_batch_costs_one_kick() {
    let server = FakeXenstored::new();
    let client = ring_client(&server);
    for i in 0..32 {
        server.write_node(&format!("/b/{i}"), b"v");
    }
    let requests: Vec<Request> = (0..32)
        .map(|i| Request::read(0, &format!("/b/{i}")).unwrap())
        .collect();
    let kicks = client.platform().kicks();
    let tickets = client.submit_batch(&requests).unwrap();
    assert_eq!(
        client.platform().kicks(),
        kicks + 1,
        "one kick for 32 requests"
    );
    for t in tickets {
        assert_eq!(
            client
                .wait_reply(t, Duration::from_secs(1))
                .unwrap()
                .payload,
            b"v"
        );
    }
    // Consuming replies from a ring that was never full needs no kick.
    let kicks = client.platform().kicks();
    let _ = client.poll();
    assert_eq!(client.platform().kicks(), kicks);
}

/// A stream that takes the next message only once the previous one's reply has
/// been read (what the rig does on Linux's `/dev/xen/xenbus`, whose write
/// buffer is still in use until the kernel has sent the message).
struct PacedStream {
    inner: FakeStream,
    replies: crate::wire::FrameDecoder,
    written: usize,
    answered: usize,
}

impl crate::transport::ByteStream for PacedStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, crate::TransportError> {
        let n = self.inner.read(buf)?;
        let mut input = &buf[..n];
        while let Ok(Some(frame)) = self.replies.decode(&mut input) {
            if frame.kind != crate::wire::MsgType::WatchEvent {
                self.answered += 1;
            }
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, crate::TransportError> {
        if self.written > self.answered {
            return Ok(0);
        }
        // The fake takes whole messages, as the client sends them.
        let n = self.inner.write(buf)?;
        self.written += 1;
        Ok(n)
    }
}

#[test]
fn a_paced_stream_sends_the_next_request_as_soon_as_a_reply_arrives() {
    let server = FakeXenstored::new();
    let paced = PacedStream {
        inner: server.connect_stream(),
        replies: crate::wire::FrameDecoder::default(),
        written: 0,
        answered: 0,
    };
    let client = Client::with_config(
        StreamTransport::new(paced),
        FakePlatform::new(&server),
        quick(),
    );
    for i in 0..32 {
        server.write_node(&format!("/p/{i}"), b"v");
    }
    let requests: Vec<Request> = (0..32)
        .map(|i| Request::read(0, &format!("/p/{i}")).unwrap())
        .collect();
    let tickets = client.submit_batch(&requests).unwrap();
    // The last one first: its reply needs all 31 before it through the pacer.
    for t in tickets.into_iter().rev() {
        assert_eq!(
            client
                .wait_reply(t, Duration::from_secs(1))
                .unwrap()
                .payload,
            b"v"
        );
    }
    assert_eq!(
        client.platform().waits(),
        0,
        "every paced request went out within the pumps"
    );
}

#[test]
fn reset_watches_drops_the_daemons_watches() {
    let server = FakeXenstored::new();
    let client = stream_client(&server);
    let _ = client.watch_add("/a").unwrap();
    let _ = client.watch_add("/b").unwrap();
    assert_eq!(server.watch_count(), 2);
    client.reset_watches().unwrap();
    assert_eq!(server.watch_count(), 0);
}

#[test]
fn a_broken_ring_connection_recovers_on_reconnect() {
    let server = FakeXenstored::new();
    let platform = FakePlatform::new(&server);
    let client = Client::with_config(
        RingTransport::new(server.connect_ring(), platform.clone()).unwrap(),
        platform.clone(),
        quick(),
    );
    let watch = client.watch_add("/rr").unwrap();
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    server.inject(Fault::GarbageType);
    assert!(matches!(
        client.read(Txn::NONE, "/local"),
        Err(StoreError::Protocol(_))
    ));
    assert!(client.broken().is_some());
    // The platform resets the ring (a resume) and hands the client a new one.
    client
        .reconnect(RingTransport::new(server.connect_ring(), platform).unwrap())
        .unwrap();
    assert!(client.broken().is_none());
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    server.write_node("/rr/x", b"1");
    assert!(client.watch_wait(watch, Duration::from_millis(10)).unwrap());
    assert_eq!(client.read(Txn::NONE, "/rr/x").unwrap(), b"1");
}
