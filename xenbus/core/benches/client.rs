//! Client overhead without a daemon in the way: operations per second against
//! the in-process fake xenstored, through each transport, one at a time and 64
//! in flight. Prints figures; asserts nothing about time.
//!
//! `cargo bench -p xenbus-core --features test-utils --bench client`

use std::time::{Duration, Instant};

use xenbus_core::Client;
use xenbus_core::client::ClientConfig;
use xenbus_core::fake::{FakePlatform, FakeXenstored};
use xenbus_core::ring::RingTransport;
use xenbus_core::transport::{StreamTransport, Transport};
use xenbus_core::wire::Request;
use xenbus_interface::api::{Store, Txn};

const OPS: u32 = 20_000;

fn run<T: Transport>(name: &str, client: &Client<T, FakePlatform>) {
    client.write(Txn::NONE, "/bench/key", b"value").unwrap();

    let start = Instant::now();
    for _ in 0..OPS {
        client.read(Txn::NONE, "/bench/key").unwrap();
    }
    report(name, "read", OPS, start.elapsed());

    let start = Instant::now();
    for _ in 0..OPS {
        client.write(Txn::NONE, "/bench/key", b"value").unwrap();
    }
    report(name, "write", OPS, start.elapsed());

    let request = Request::read(0, "/bench/key").unwrap();
    let batch: Vec<Request> = (0..64).map(|_| request.clone()).collect();
    let start = Instant::now();
    for _ in 0..OPS / 64 {
        for t in client.submit_batch(&batch).unwrap() {
            client.wait_reply(t, Duration::from_secs(1)).unwrap();
        }
    }
    report(name, "read x64 in flight", OPS / 64 * 64, start.elapsed());
}

fn report(transport: &str, what: &str, ops: u32, took: Duration) {
    let per_sec = f64::from(ops) / took.as_secs_f64();
    println!("{transport:>6} {what:<20} {per_sec:>12.0} ops/s");
}

fn main() {
    let server = FakeXenstored::new();
    let stream = Client::with_config(
        StreamTransport::new(server.connect_stream()),
        FakePlatform::new(&server),
        ClientConfig::default(),
    );
    run("stream", &stream);

    let server = FakeXenstored::new();
    let platform = FakePlatform::new(&server);
    let ring = Client::with_config(
        RingTransport::new(server.connect_ring(), platform.clone()).unwrap(),
        platform,
        ClientConfig::default(),
    );
    run("ring", &ring);
}
