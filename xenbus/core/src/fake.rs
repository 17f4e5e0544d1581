//! An in-memory xenstored for tests (feature `test-utils`): a node tree with
//! permissions, transactions (a conflicting commit gets `EAGAIN`), watches, and
//! `XS_DIRECTORY_PART`, reachable through both transports: a [`FakeStream`]
//! ([`ByteStream`]) and a [`MemRing`] (the shared page, served by
//! [`FakeXenstored::service`]).
//!
//! It can misbehave on purpose ([`Fault`]): wrong `req_id`, garbage type, oversize
//! length, missing NUL, dropped reply, byte-at-a-time delivery; ring index abuse is
//! done directly with [`MemRing`]'s setters. A unit-test fake, never the proof that
//! the protocol works (that is the rig against the real xenstored).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use xen_abi::xs_wire::{
    XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE, XsError, XsdSockmsg, mask_xenstore_idx,
};
use xenbus_interface::api::{Access, DomId, Permission};

use crate::client::{Clock, Wait};
use crate::ring::{Notify, RingPage};
use crate::transport::{ByteStream, TransportError};
use crate::wire::{self, Frame, MsgType};

/// A deliberate misbehaviour, applied to the next reply the fake sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: lets one reply through (to aim a later fault).
    Pass,
    /// The reply carries a `req_id` nobody asked for.
    WrongReqId,
    /// The reply's type is a number `xs_wire.h` does not define.
    GarbageType,
    /// The reply's header announces 5000 payload bytes.
    OversizeLength,
    /// The reply's last byte (its NUL) is dropped.
    MissingNul,
    /// No reply at all.
    Drop,
    /// The reply is `XS_ERROR EAGAIN` whatever the request.
    Eagain,
    /// The reply has the wrong (but valid) type.
    WrongType,
}

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Permission>,
}

type Tree = BTreeMap<String, Node>;

#[derive(Debug)]
struct TxnState {
    tree: Tree,
    start_generation: u64,
    touched: Vec<(String, bool)>,
    conn: usize,
}

#[derive(Debug, Default)]
struct Conn {
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    watches: Vec<(String, String)>,
    ring: Option<Arc<MemRing>>,
    trickle: bool,
    closed: bool,
}

#[derive(Debug)]
struct Server {
    tree: Tree,
    generation: u64,
    txns: BTreeMap<u32, TxnState>,
    next_txn: u32,
    conns: Vec<Conn>,
    faults: VecDeque<Fault>,
    directory_limit: usize,
    part_chunk: usize,
    requests: u64,
}

/// The fake daemon. Clones share one store.
#[derive(Clone, Debug)]
pub struct FakeXenstored {
    server: Arc<spin::Mutex<Server>>,
}

impl Default for FakeXenstored {
    fn default() -> Self {
        Self::new()
    }
}

const HOME: &str = "/local/domain/0";

fn dom0_perms() -> Vec<Permission> {
    vec![Permission {
        domid: DomId(0),
        access: Access::None,
    }]
}

impl FakeXenstored {
    /// A store holding `/`, `/local`, `/local/domain` and `/local/domain/0`.
    pub fn new() -> Self {
        let mut tree = Tree::new();
        for path in ["/", "/local", "/local/domain", HOME] {
            tree.insert(
                String::from(path),
                Node {
                    value: Vec::new(),
                    perms: dom0_perms(),
                },
            );
        }
        Self {
            server: Arc::new(spin::Mutex::new(Server {
                tree,
                generation: 1,
                txns: BTreeMap::new(),
                next_txn: 1,
                conns: Vec::new(),
                faults: VecDeque::new(),
                directory_limit: XENSTORE_PAYLOAD_MAX,
                part_chunk: XENSTORE_PAYLOAD_MAX - 64,
                requests: 0,
            })),
        }
    }

    /// A new byte-stream connection.
    pub fn connect_stream(&self) -> FakeStream {
        let mut server = self.server.lock();
        server.conns.push(Conn::default());
        FakeStream {
            server: self.clone(),
            conn: server.conns.len() - 1,
        }
    }

    /// A new shared-ring connection: the page the client's
    /// [`crate::ring::RingTransport`] uses; [`FakeXenstored::service`] plays the
    /// daemon's side of it.
    pub fn connect_ring(&self) -> Arc<MemRing> {
        let ring = Arc::new(MemRing::new());
        let mut server = self.server.lock();
        server.conns.push(Conn {
            ring: Some(ring.clone()),
            ..Conn::default()
        });
        ring
    }

    /// Queues a misbehaviour for the next reply.
    pub fn inject(&self, fault: Fault) {
        self.server.lock().faults.push_back(fault);
    }

    /// `XS_DIRECTORY` answers `E2BIG` when the listing exceeds `limit` bytes, and
    /// `XS_DIRECTORY_PART` returns at most `chunk` bytes of names per reply.
    pub fn set_directory_limits(&self, limit: usize, chunk: usize) {
        let mut server = self.server.lock();
        server.directory_limit = limit;
        server.part_chunk = chunk.max(1);
    }

    /// Delivers a stream connection's replies one byte per read.
    pub fn set_trickle(&self, stream: &FakeStream, trickle: bool) {
        if let Some(conn) = self.server.lock().conns.get_mut(stream.conn) {
            conn.trickle = trickle;
        }
    }

    /// Writes a node as another domain would (fires watches).
    pub fn write_node(&self, path: &str, value: &[u8]) {
        let mut server = self.server.lock();
        write_tree(&mut server.tree, path, value);
        server.generation += 1;
        server.fire(path, false);
    }

    /// A node's value, if it exists.
    pub fn read_node(&self, path: &str) -> Option<Vec<u8>> {
        self.server.lock().tree.get(path).map(|n| n.value.clone())
    }

    /// Watches registered over all connections.
    pub fn watch_count(&self) -> usize {
        self.server
            .lock()
            .conns
            .iter()
            .map(|c| c.watches.len())
            .sum()
    }

    /// Open transactions.
    pub fn transaction_count(&self) -> usize {
        self.server.lock().txns.len()
    }

    /// Requests handled so far.
    pub fn request_count(&self) -> u64 {
        self.server.lock().requests
    }

    /// Plays the daemon on every ring: consumes requests, handles them, produces
    /// as much of the replies as the rings have room for (the rest waits for
    /// the next call).
    pub fn service(&self) {
        let mut server = self.server.lock();
        for i in 0..server.conns.len() {
            let Some(ring) = server.conns[i].ring.clone() else {
                continue;
            };
            let bytes = ring.take_requests();
            server.conns[i].inbox.extend(bytes);
            server.process(i);
            let conn = &mut server.conns[i];
            let (a, b) = conn.outbox.as_slices();
            let mut pending = a.to_vec();
            pending.extend_from_slice(b);
            let n = ring.push_response(&pending);
            conn.outbox.drain(..n);
        }
    }
}

impl Server {
    fn process(&mut self, conn: usize) {
        loop {
            let Some(c) = self.conns.get_mut(conn) else {
                return;
            };
            if c.closed || c.inbox.len() < XsdSockmsg::SIZE {
                return;
            }
            let mut header = [0u8; XsdSockmsg::SIZE];
            header.copy_from_slice(&c.inbox[..XsdSockmsg::SIZE]);
            let header = XsdSockmsg::from_bytes(&header);
            let len = header.len as usize;
            if len > XENSTORE_PAYLOAD_MAX {
                // What xenstored does with an oversize request: drop the client.
                c.closed = true;
                return;
            }
            if c.inbox.len() < XsdSockmsg::SIZE + len {
                return;
            }
            let payload: Vec<u8> = c.inbox.drain(..XsdSockmsg::SIZE + len).skip(16).collect();
            self.requests += 1;
            self.handle(conn, header, &payload);
        }
    }

    fn send(&mut self, conn: usize, frame: Frame) {
        let mut frame = frame;
        let fault = if frame.kind == MsgType::WatchEvent {
            None
        } else {
            self.faults.pop_front()
        };
        let mut bytes = match fault {
            None | Some(Fault::Pass) => frame.encode(),
            Some(Fault::Drop) => return,
            Some(Fault::WrongReqId) => {
                frame.req_id = frame.req_id.wrapping_add(1000);
                frame.encode()
            }
            Some(Fault::MissingNul) => {
                if frame.payload.last() == Some(&0) {
                    frame.payload.pop();
                }
                frame.encode()
            }
            Some(Fault::Eagain) => {
                frame.kind = MsgType::Error;
                frame.payload = b"EAGAIN\0".to_vec();
                frame.encode()
            }
            Some(Fault::WrongType) => {
                frame.kind = if frame.kind == MsgType::Read {
                    MsgType::Write
                } else {
                    MsgType::Read
                };
                frame.encode()
            }
            Some(Fault::GarbageType | Fault::OversizeLength) => {
                let mut b = frame.encode();
                if fault == Some(Fault::GarbageType) {
                    b[0..4].copy_from_slice(&99u32.to_le_bytes());
                } else {
                    b[12..16].copy_from_slice(&5000u32.to_le_bytes());
                }
                b
            }
        };
        if let Some(c) = self.conns.get_mut(conn) {
            c.outbox.extend(bytes.drain(..));
        }
    }

    fn reply(&mut self, conn: usize, header: &XsdSockmsg, kind: MsgType, payload: Vec<u8>) {
        self.send(
            conn,
            Frame {
                kind,
                req_id: header.req_id,
                tx_id: header.tx_id,
                payload,
            },
        );
    }

    fn error(&mut self, conn: usize, header: &XsdSockmsg, err: XsError) {
        let mut payload = err.name().as_bytes().to_vec();
        payload.push(0);
        self.reply(conn, header, MsgType::Error, payload);
    }

    /// Fires watches for a committed change of `path` (`removed`: the subtree
    /// went away, which also fires watches below it).
    fn fire(&mut self, path: &str, removed: bool) {
        for conn in 0..self.conns.len() {
            let hits: Vec<(String, String)> = self.conns[conn]
                .watches
                .iter()
                .filter(|(w, _)| {
                    let w = canonical(w);
                    is_at_or_below(path, &w) || (removed && is_at_or_below(&w, path))
                })
                .cloned()
                .collect();
            for (watch_path, token) in hits {
                let reported = if watch_path.starts_with('/') {
                    String::from(path)
                } else {
                    String::from(
                        path.strip_prefix(HOME)
                            .and_then(|p| p.strip_prefix('/'))
                            .unwrap_or(path),
                    )
                };
                let mut payload = reported.into_bytes();
                payload.push(0);
                payload.extend_from_slice(token.as_bytes());
                payload.push(0);
                self.send(
                    conn,
                    Frame {
                        kind: MsgType::WatchEvent,
                        req_id: 0,
                        tx_id: 0,
                        payload,
                    },
                );
            }
        }
    }

    #[allow(clippy::too_many_lines)] // One arm per message type reads best.
    fn handle(&mut self, conn: usize, header: XsdSockmsg, payload: &[u8]) {
        let Some(kind) = MsgType::from_u32(header.r#type) else {
            self.error(conn, &header, XsError::Einval);
            return;
        };
        let fields = wire::split_fields(payload).unwrap_or_default();
        let first = fields
            .first()
            .and_then(|f| core::str::from_utf8(f).ok())
            .unwrap_or("");
        let tx = header.tx_id;
        if tx != 0 && !self.txns.contains_key(&tx) {
            self.error(conn, &header, XsError::Enoent);
            return;
        }
        let ok = b"OK\0".to_vec();
        match kind {
            MsgType::Read => {
                let path = canonical(first);
                match self.tree_for(tx).get(&path) {
                    Some(node) => {
                        let value = node.value.clone();
                        self.reply(conn, &header, kind, value);
                    }
                    None => self.error(conn, &header, XsError::Enoent),
                }
            }
            MsgType::Write | MsgType::Mkdir => {
                // The value is everything after the path's NUL.
                let Some(nul) = payload.iter().position(|&b| b == 0) else {
                    self.error(conn, &header, XsError::Einval);
                    return;
                };
                let path = canonical(core::str::from_utf8(&payload[..nul]).unwrap_or(""));
                if wire::check_path(&path).is_err() {
                    self.error(conn, &header, XsError::Einval);
                    return;
                }
                if kind == MsgType::Mkdir {
                    if !self.tree_for(tx).contains_key(&path) {
                        write_tree(self.tree_for_mut(tx), &path, b"");
                        self.changed(tx, &path, false);
                    }
                } else {
                    let value = payload[nul + 1..].to_vec();
                    write_tree(self.tree_for_mut(tx), &path, &value);
                    self.changed(tx, &path, false);
                }
                self.reply(conn, &header, kind, ok);
            }
            MsgType::Rm => {
                let path = canonical(first);
                if path == "/" || !self.tree_for(tx).contains_key(&path) {
                    self.error(
                        conn,
                        &header,
                        if path == "/" {
                            XsError::Einval
                        } else {
                            XsError::Enoent
                        },
                    );
                    return;
                }
                let tree = self.tree_for_mut(tx);
                let doomed: Vec<String> = tree
                    .keys()
                    .filter(|k| is_at_or_below(k, &path))
                    .cloned()
                    .collect();
                for k in doomed {
                    tree.remove(&k);
                }
                self.changed(tx, &path, true);
                self.reply(conn, &header, kind, ok);
            }
            MsgType::Directory | MsgType::DirectoryPart => {
                let path = canonical(first);
                let Some(list) = children(self.tree_for(tx), &path) else {
                    self.error(conn, &header, XsError::Enoent);
                    return;
                };
                let mut flat = Vec::new();
                for name in &list {
                    flat.extend_from_slice(name.as_bytes());
                    flat.push(0);
                }
                if kind == MsgType::Directory {
                    if flat.len() > self.directory_limit {
                        self.error(conn, &header, XsError::E2big);
                    } else {
                        self.reply(conn, &header, kind, flat);
                    }
                    return;
                }
                let offset = fields
                    .get(1)
                    .and_then(|f| wire::parse_decimal_u32(f).ok())
                    .map_or(usize::MAX, |o| o as usize);
                if offset > flat.len() {
                    self.error(conn, &header, XsError::Einval);
                    return;
                }
                // Whole names only, up to the chunk size (at least one name).
                let mut end = offset;
                for name in flat[offset..].split_inclusive(|&b| b == 0) {
                    if end > offset && end - offset + name.len() > self.part_chunk {
                        break;
                    }
                    end += name.len();
                }
                let mut out = format!("{}", self.generation).into_bytes();
                out.push(0);
                out.extend_from_slice(&flat[offset..end]);
                if end == flat.len() {
                    out.push(0);
                }
                self.reply(conn, &header, kind, out);
            }
            MsgType::GetPerms => {
                let path = canonical(first);
                match self.tree_for(tx).get(&path) {
                    Some(node) => {
                        let mut out = Vec::new();
                        for p in &node.perms {
                            out.extend(
                                format!("{}{}", char::from(p.access.letter()), p.domid.0).bytes(),
                            );
                            out.push(0);
                        }
                        self.reply(conn, &header, kind, out);
                    }
                    None => self.error(conn, &header, XsError::Enoent),
                }
            }
            MsgType::SetPerms => {
                let path = canonical(first);
                let mut perms = Vec::new();
                for f in fields.iter().skip(1) {
                    let mut entry = f.to_vec();
                    entry.push(0);
                    if let Ok(p) = wire::parse_permissions(&entry) {
                        perms.extend(p);
                    } else {
                        self.error(conn, &header, XsError::Einval);
                        return;
                    }
                }
                if perms.is_empty() {
                    self.error(conn, &header, XsError::Einval);
                    return;
                }
                match self.tree_for_mut(tx).get_mut(&path) {
                    Some(node) => {
                        node.perms = perms;
                        self.changed(tx, &path, false);
                        self.reply(conn, &header, kind, ok);
                    }
                    None => self.error(conn, &header, XsError::Enoent),
                }
            }
            MsgType::Watch => {
                let token = fields
                    .get(1)
                    .and_then(|f| core::str::from_utf8(f).ok())
                    .unwrap_or("");
                if first.is_empty() || fields.len() < 2 {
                    self.error(conn, &header, XsError::Einval);
                    return;
                }
                if self.conns[conn]
                    .watches
                    .iter()
                    .any(|(p, t)| p == first && t == token)
                {
                    self.error(conn, &header, XsError::Eexist);
                    return;
                }
                let entry = (String::from(first), String::from(token));
                self.conns[conn].watches.push(entry.clone());
                self.reply(conn, &header, kind, ok);
                // xenstored fires every new watch once.
                let mut payload = entry.0.into_bytes();
                payload.push(0);
                payload.extend_from_slice(entry.1.as_bytes());
                payload.push(0);
                self.send(
                    conn,
                    Frame {
                        kind: MsgType::WatchEvent,
                        req_id: 0,
                        tx_id: 0,
                        payload,
                    },
                );
            }
            MsgType::Unwatch => {
                let token = fields
                    .get(1)
                    .and_then(|f| core::str::from_utf8(f).ok())
                    .unwrap_or("");
                let watches = &mut self.conns[conn].watches;
                let before = watches.len();
                watches.retain(|(p, t)| !(p == first && t == token));
                if watches.len() == before {
                    self.error(conn, &header, XsError::Enoent);
                } else {
                    self.reply(conn, &header, kind, ok);
                }
            }
            MsgType::TransactionStart => {
                let id = self.next_txn;
                self.next_txn += 1;
                self.txns.insert(
                    id,
                    TxnState {
                        tree: self.tree.clone(),
                        start_generation: self.generation,
                        touched: Vec::new(),
                        conn,
                    },
                );
                let mut out = format!("{id}").into_bytes();
                out.push(0);
                self.reply(conn, &header, kind, out);
            }
            MsgType::TransactionEnd => {
                let Some(txn) = self.txns.remove(&tx) else {
                    self.error(conn, &header, XsError::Enoent);
                    return;
                };
                if txn.conn != conn {
                    self.error(conn, &header, XsError::Enoent);
                    return;
                }
                match payload {
                    b"T\0" => {
                        if txn.start_generation != self.generation {
                            self.error(conn, &header, XsError::Eagain);
                            return;
                        }
                        self.tree = txn.tree;
                        if !txn.touched.is_empty() {
                            self.generation += 1;
                        }
                        for (path, removed) in txn.touched {
                            self.fire(&path, removed);
                        }
                        self.reply(conn, &header, kind, ok);
                    }
                    b"F\0" => self.reply(conn, &header, kind, ok),
                    _ => self.error(conn, &header, XsError::Einval),
                }
            }
            MsgType::GetDomainPath => {
                let mut out = format!("/local/domain/{first}").into_bytes();
                out.push(0);
                self.reply(conn, &header, kind, out);
            }
            MsgType::ResetWatches => {
                self.conns[conn].watches.clear();
                self.txns.retain(|_, t| t.conn != conn);
                self.reply(conn, &header, kind, ok);
            }
            _ => self.error(conn, &header, XsError::Enosys),
        }
    }

    fn tree_for(&self, tx: u32) -> &Tree {
        self.txns.get(&tx).map_or(&self.tree, |t| &t.tree)
    }

    fn tree_for_mut(&mut self, tx: u32) -> &mut Tree {
        match self.txns.get_mut(&tx) {
            Some(t) => &mut t.tree,
            None => &mut self.tree,
        }
    }

    fn changed(&mut self, tx: u32, path: &str, removed: bool) {
        if let Some(t) = self.txns.get_mut(&tx) {
            t.touched.push((String::from(path), removed));
        } else {
            self.generation += 1;
            self.fire(path, removed);
        }
    }
}

fn canonical(path: &str) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        String::from(path)
    } else {
        format!("{HOME}/{path}")
    }
}

fn is_at_or_below(path: &str, top: &str) -> bool {
    top == "/"
        || path == top
        || path
            .strip_prefix(top)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn write_tree(tree: &mut Tree, path: &str, value: &[u8]) {
    // Create missing parents with the nearest existing ancestor's permissions.
    let mut missing = Vec::new();
    let mut cursor = parent(path);
    while let Some(p) = cursor {
        if tree.contains_key(p) {
            break;
        }
        missing.push(String::from(p));
        cursor = parent(p);
    }
    let inherited = cursor
        .and_then(|p| tree.get(p))
        .map_or_else(dom0_perms, |n| n.perms.clone());
    for p in missing.into_iter().rev() {
        tree.insert(
            p,
            Node {
                value: Vec::new(),
                perms: inherited.clone(),
            },
        );
    }
    match tree.get_mut(path) {
        Some(node) => node.value = value.to_vec(),
        None => {
            tree.insert(
                String::from(path),
                Node {
                    value: value.to_vec(),
                    perms: inherited,
                },
            );
        }
    }
}

fn children(tree: &Tree, path: &str) -> Option<Vec<String>> {
    tree.get(path)?;
    let prefix = if path == "/" {
        String::from("/")
    } else {
        format!("{path}/")
    };
    Some(
        tree.keys()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(String::from)
            .collect(),
    )
}

/// One byte-stream connection to a [`FakeXenstored`].
#[derive(Debug)]
pub struct FakeStream {
    server: FakeXenstored,
    conn: usize,
}

impl FakeStream {
    /// The daemon behind this stream.
    pub fn server(&self) -> &FakeXenstored {
        &self.server
    }
}

impl ByteStream for FakeStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut server = self.server.server.lock();
        let Some(conn) = server.conns.get_mut(self.conn) else {
            return Err(TransportError::Disconnected);
        };
        if conn.closed {
            return Err(TransportError::Disconnected);
        }
        let limit = if conn.trickle { 1 } else { buf.len() };
        let n = limit.min(buf.len()).min(conn.outbox.len());
        for (dst, src) in buf.iter_mut().zip(conn.outbox.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, TransportError> {
        let mut server = self.server.server.lock();
        let Some(conn) = server.conns.get_mut(self.conn) else {
            return Err(TransportError::Disconnected);
        };
        if conn.closed {
            return Err(TransportError::Disconnected);
        }
        conn.inbox.extend_from_slice(buf);
        server.process(self.conn);
        Ok(buf.len())
    }
}

/// A `xenstore_domain_interface` in ordinary memory: the client side through
/// [`RingPage`], the daemon side through the inherent methods (and the index
/// setters tests use to misbehave).
#[derive(Debug)]
pub struct MemRing {
    req: spin::Mutex<[u8; XENSTORE_RING_SIZE]>,
    rsp: spin::Mutex<[u8; XENSTORE_RING_SIZE]>,
    req_cons: AtomicU32,
    req_prod: AtomicU32,
    rsp_cons: AtomicU32,
    rsp_prod: AtomicU32,
}

impl Default for MemRing {
    fn default() -> Self {
        Self::new()
    }
}

impl MemRing {
    /// An empty ring, all indices 0.
    pub fn new() -> Self {
        Self {
            req: spin::Mutex::new([0; XENSTORE_RING_SIZE]),
            rsp: spin::Mutex::new([0; XENSTORE_RING_SIZE]),
            req_cons: AtomicU32::new(0),
            req_prod: AtomicU32::new(0),
            rsp_cons: AtomicU32::new(0),
            rsp_prod: AtomicU32::new(0),
        }
    }

    /// Sets all four indices (`req_cons`, `req_prod`, `rsp_cons`, `rsp_prod`).
    pub fn set_indices(&self, req_cons: u32, req_prod: u32, rsp_cons: u32, rsp_prod: u32) {
        self.req_cons.store(req_cons, Ordering::SeqCst);
        self.req_prod.store(req_prod, Ordering::SeqCst);
        self.rsp_cons.store(rsp_cons, Ordering::SeqCst);
        self.rsp_prod.store(rsp_prod, Ordering::SeqCst);
    }

    /// Daemon side: sets `rsp_prod` (to misbehave).
    pub fn set_rsp_prod(&self, value: u32) {
        self.rsp_prod.store(value, Ordering::SeqCst);
    }

    /// Daemon side: sets `req_cons` (to misbehave).
    pub fn set_req_cons(&self, value: u32) {
        self.req_cons.store(value, Ordering::SeqCst);
    }

    /// The client's published `rsp_cons`.
    pub fn rsp_cons_now(&self) -> u32 {
        self.rsp_cons.load(Ordering::SeqCst)
    }

    /// Daemon side: consumes every request byte the client published.
    pub fn take_requests(&self) -> Vec<u8> {
        let cons = self.req_cons.load(Ordering::SeqCst);
        let prod = self.req_prod.load(Ordering::SeqCst);
        let n = prod.wrapping_sub(cons).min(1024);
        let req = self.req.lock();
        let out = (0..n)
            .map(|i| req[mask_xenstore_idx(cons.wrapping_add(i))])
            .collect();
        self.req_cons.store(cons.wrapping_add(n), Ordering::SeqCst);
        out
    }

    /// Daemon side: produces as much of `bytes` as fits; returns how much.
    pub fn push_response(&self, bytes: &[u8]) -> usize {
        let cons = self.rsp_cons.load(Ordering::SeqCst);
        let prod = self.rsp_prod.load(Ordering::SeqCst);
        let used = prod.wrapping_sub(cons) as usize;
        let n = XENSTORE_RING_SIZE.saturating_sub(used).min(bytes.len());
        let mut rsp = self.rsp.lock();
        let mut idx = prod;
        for &b in &bytes[..n] {
            rsp[mask_xenstore_idx(idx)] = b;
            idx = idx.wrapping_add(1);
        }
        self.rsp_prod.store(idx, Ordering::SeqCst);
        n
    }
}

impl RingPage for MemRing {
    fn req_cons(&self) -> u32 {
        self.req_cons.load(Ordering::Acquire)
    }
    fn req_prod(&self) -> u32 {
        self.req_prod.load(Ordering::Relaxed)
    }
    fn set_req_prod(&self, value: u32) {
        self.req_prod.store(value, Ordering::Release);
    }
    fn rsp_prod(&self) -> u32 {
        self.rsp_prod.load(Ordering::Acquire)
    }
    fn rsp_cons(&self) -> u32 {
        self.rsp_cons.load(Ordering::Relaxed)
    }
    fn set_rsp_cons(&self, value: u32) {
        self.rsp_cons.store(value, Ordering::Release);
    }
    fn write_req(&self, offset: usize, bytes: &[u8]) {
        if let Some(dst) = self.req.lock().get_mut(offset..offset + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    fn read_rsp(&self, offset: usize, out: &mut [u8]) {
        if let Some(src) = self.rsp.lock().get(offset..offset + out.len()) {
            out.copy_from_slice(src);
        }
    }
    fn fence(&self) {
        core::sync::atomic::fence(Ordering::SeqCst);
    }
}

impl RingPage for Arc<MemRing> {
    fn req_cons(&self) -> u32 {
        (**self).req_cons()
    }
    fn req_prod(&self) -> u32 {
        RingPage::req_prod(&**self)
    }
    fn set_req_prod(&self, value: u32) {
        (**self).set_req_prod(value);
    }
    fn rsp_prod(&self) -> u32 {
        (**self).rsp_prod()
    }
    fn rsp_cons(&self) -> u32 {
        RingPage::rsp_cons(&**self)
    }
    fn set_rsp_cons(&self, value: u32) {
        (**self).set_rsp_cons(value);
    }
    fn write_req(&self, offset: usize, bytes: &[u8]) {
        (**self).write_req(offset, bytes);
    }
    fn read_rsp(&self, offset: usize, out: &mut [u8]) {
        (**self).read_rsp(offset, out);
    }
    fn fence(&self) {
        (**self).fence();
    }
}

/// A test platform: a virtual clock that advances by each wait's timeout (so
/// timeouts are instant and deterministic), and waits that let the fake daemon
/// serve its rings. Also the ring's [`Notify`] (counting kicks).
#[derive(Clone, Debug)]
pub struct FakePlatform {
    server: FakeXenstored,
    nanos: Arc<AtomicU64>,
    kicks: Arc<AtomicU64>,
    waits: Arc<AtomicU64>,
}

impl FakePlatform {
    /// A platform serving `server` on every wait.
    pub fn new(server: &FakeXenstored) -> Self {
        Self {
            server: server.clone(),
            nanos: Arc::new(AtomicU64::new(0)),
            kicks: Arc::new(AtomicU64::new(0)),
            waits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Event-channel kicks so far.
    pub fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::SeqCst)
    }

    /// Waits so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::SeqCst)
    }
}

impl Clock for FakePlatform {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl Wait for FakePlatform {
    fn wait(&self, timeout: Duration) {
        self.waits.fetch_add(1, Ordering::SeqCst);
        self.server.service();
        let step = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(step, Ordering::SeqCst);
    }
}

impl Notify for FakePlatform {
    fn notify(&self) {
        self.kicks.fetch_add(1, Ordering::SeqCst);
    }
}
