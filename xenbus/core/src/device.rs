//! What every xenbus frontend does with the store, generic over
//! [`Store`]: find its backend, read and switch `XenbusState`s, wait for the
//! backend's state, read `feature-*` and numeric keys with defaults, and write
//! its keys in one transaction retried on conflict.
//!
//! The backend writes most of what is read here and is not trusted: a missing
//! optional key is its default, a present but malformed one is an error naming the
//! key ([`DeviceError::Malformed`]), never a guess.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use xen_abi::xs_wire::XsError;
use xenbus_interface::api::{DomId, Store, StoreError, Txn, XenbusState};

use crate::client::{Clock, with_transaction};
use crate::wire;

/// `DOMID_FIRST_RESERVED`: domain ids from here up are special, never a backend.
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;

/// Why a device-level store operation failed. Every variant names the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The store failed while reading or writing `key`.
    Store {
        /// The full path of the key.
        key: String,
        /// What the store said.
        error: StoreError,
    },
    /// `key` holds a value the protocol does not allow.
    Malformed {
        /// The full path of the key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The state at `key` did not become an accepted one in time.
    Timeout {
        /// The full path of the state key.
        key: String,
        /// The last state seen.
        last: XenbusState,
    },
}

impl DeviceError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Store { key, .. } | Self::Malformed { key, .. } | Self::Timeout { key, .. } => {
                key
            }
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store { key, error } => write!(f, "{key}: {error}"),
            Self::Malformed { key, reason } => write!(f, "{key}: {reason}"),
            Self::Timeout { key, last } => {
                write!(f, "{key}: timed out waiting, last state {last}")
            }
        }
    }
}

/// `dir/key`.
pub fn join(dir: &str, key: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{key}")
    } else {
        format!("{dir}/{key}")
    }
}

fn store_err(key: &str, error: StoreError) -> DeviceError {
    DeviceError::Store {
        key: String::from(key),
        error,
    }
}

fn malformed(key: &str, reason: &'static str) -> DeviceError {
    DeviceError::Malformed {
        key: String::from(key),
        reason,
    }
}

/// Reads `path`; `Ok(None)` if it does not exist.
pub fn read_optional<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    path: &str,
) -> Result<Option<Vec<u8>>, DeviceError> {
    match store.read(txn, path) {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Xs(XsError::Enoent)) => Ok(None),
        Err(e) => Err(store_err(path, e)),
    }
}

/// Reads `path` as UTF-8 text; `Ok(None)` if it does not exist.
pub fn read_string<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    path: &str,
) -> Result<Option<String>, DeviceError> {
    read_optional(store, txn, path)?
        .map(|v| String::from_utf8(v).map_err(|_| malformed(path, "value is not UTF-8")))
        .transpose()
}

/// Parses an unsigned decimal the way backends write them (`%u`, `%lu`):
/// digits only, surrounding ASCII white space and one trailing NUL tolerated.
pub fn parse_unsigned(value: &[u8]) -> Option<u64> {
    let value = value.strip_suffix(b"\0").unwrap_or(value).trim_ascii();
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Reads an unsigned integer key; `default` when it is missing, an error naming
/// the key when it is not a decimal number.
pub fn read_u64_or<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    path: &str,
    default: u64,
) -> Result<u64, DeviceError> {
    match read_optional(store, txn, path)? {
        None => Ok(default),
        Some(v) => parse_unsigned(&v).ok_or_else(|| malformed(path, "not an unsigned decimal")),
    }
}

/// As [`read_u64_or`], for a key that must fit a `u32`.
pub fn read_u32_or<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    path: &str,
    default: u32,
) -> Result<u32, DeviceError> {
    let value = read_u64_or(store, txn, path, u64::from(default))?;
    u32::try_from(value).map_err(|_| malformed(path, "number does not fit 32 bits"))
}

/// Reads a boolean key (`0` false, `1` true; as Linux, any other number is
/// true); `default` when missing.
pub fn read_bool_or<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    path: &str,
    default: bool,
) -> Result<bool, DeviceError> {
    Ok(read_u64_or(store, txn, path, u64::from(default))? != 0)
}

/// Reads `dir/feature-<name>`: false when missing.
pub fn read_feature<S: Store + ?Sized>(
    store: &S,
    txn: Txn,
    dir: &str,
    name: &str,
) -> Result<bool, DeviceError> {
    read_bool_or(store, txn, &join(dir, &format!("feature-{name}")), false)
}

/// Where a device's backend lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The backend's directory (`/local/domain/0/backend/vbd/5/768`).
    pub path: String,
    /// The backend's domain.
    pub domid: DomId,
}

/// Reads a frontend's `backend` (an absolute, valid path) and `backend-id` (a
/// domain id below `DOMID_FIRST_RESERVED`).
pub fn read_backend<S: Store + ?Sized>(store: &S, device: &str) -> Result<Backend, DeviceError> {
    let key = join(device, "backend");
    let path = read_string(store, Txn::NONE, &key)?
        .ok_or_else(|| store_err(&key, StoreError::Xs(XsError::Enoent)))?;
    if !path.starts_with('/') {
        return Err(malformed(&key, "backend path is not absolute"));
    }
    if path.len() <= 1 || wire::check_path(&path).is_err() {
        return Err(malformed(&key, "backend path is not a valid xenstore path"));
    }
    let key = join(device, "backend-id");
    let raw = read_optional(store, Txn::NONE, &key)?
        .ok_or_else(|| store_err(&key, StoreError::Xs(XsError::Enoent)))?;
    let domid = parse_unsigned(&raw)
        .and_then(|v| u16::try_from(v).ok())
        .filter(|&d| d < DOMID_FIRST_RESERVED)
        .ok_or_else(|| malformed(&key, "backend-id is not a domain id"))?;
    Ok(Backend {
        path,
        domid: DomId(domid),
    })
}

/// Reads `dir/state`. A missing node is `Unknown` (the peer has not started, or
/// is gone), as in Linux; a value that is not a state is an error.
pub fn read_state<S: Store + ?Sized>(store: &S, dir: &str) -> Result<XenbusState, DeviceError> {
    let key = join(dir, "state");
    match read_optional(store, Txn::NONE, &key)? {
        None => Ok(XenbusState::Unknown),
        Some(v) => XenbusState::parse(&v).ok_or_else(|| malformed(&key, "not a XenbusState")),
    }
}

/// Writes `dir/state` = `state`, in a transaction that first checks `dir` still
/// exists (a toolstack that removed the device must not see it recreated), and
/// writes nothing when the state is already `state` (no watch fires for
/// nothing).
pub fn switch_state<S: Store + ?Sized>(
    store: &S,
    dir: &str,
    state: XenbusState,
    attempts: u32,
) -> Result<(), DeviceError> {
    let key = join(dir, "state");
    let mut failing = String::from(dir);
    with_transaction(store, attempts, |txn| {
        failing = String::from(dir);
        store.read(txn, dir)?;
        failing.clone_from(&key);
        match store.read(txn, &key) {
            Ok(current) if XenbusState::parse(&current) == Some(state) => return Ok(()),
            Ok(_) | Err(StoreError::Xs(XsError::Enoent)) => {}
            Err(e) => return Err(e),
        }
        store.write(txn, &key, format!("{}", state.as_u32()).as_bytes())
    })
    .map_err(|error| store_err(&failing, error))
}

/// Waits until `dir/state` satisfies `accept`, up to `timeout` by `clock`, with a
/// watch on the key (woken by every change, re-reading the state each time).
/// Returns the accepted state. The watch is removed on every path out.
pub fn wait_for_state<S, C, F>(
    store: &S,
    clock: &C,
    dir: &str,
    timeout: Duration,
    accept: F,
) -> Result<XenbusState, DeviceError>
where
    S: Store + ?Sized,
    C: Clock + ?Sized,
    F: Fn(XenbusState) -> bool,
{
    let key = join(dir, "state");
    let deadline = clock.now().saturating_add(timeout);
    let watch = store.watch_add(&key).map_err(|e| store_err(&key, e))?;
    let result = (|| loop {
        let state = read_state(store, dir)?;
        if accept(state) {
            return Ok(state);
        }
        let now = clock.now();
        if now >= deadline {
            return Err(DeviceError::Timeout {
                key: key.clone(),
                last: state,
            });
        }
        store
            .watch_wait(watch, deadline.saturating_sub(now))
            .map_err(|e| store_err(&key, e))?;
    })();
    // Best effort: the result above is what the caller needs to know.
    let _ = store.watch_remove(watch);
    result
}

/// Writes `dir/<key>` = `value` for every pair, all in one transaction retried
/// on conflict up to `attempts` times (what `talk_to_backend` does with
/// `ring-ref`, `event-channel`, `protocol`...). The error names the key that
/// failed, or `dir` when the commit itself failed.
pub fn write_keys<S: Store + ?Sized>(
    store: &S,
    dir: &str,
    keys: &[(&str, &dyn fmt::Display)],
    attempts: u32,
) -> Result<(), DeviceError> {
    let mut failing = String::from(dir);
    with_transaction(store, attempts, |txn| {
        for (key, value) in keys {
            let path = join(dir, key);
            if let Err(e) = store.write(txn, &path, format!("{value}").as_bytes()) {
                failing = path;
                return Err(e);
            }
        }
        failing = String::from(dir);
        Ok(())
    })
    .map_err(|error| store_err(&failing, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, ClientConfig};
    use crate::fake::{FakePlatform, FakeStream, FakeXenstored, Fault};
    use crate::transport::StreamTransport;
    use xenbus_interface::api::{GrantRef, Port};

    type C = Client<StreamTransport<FakeStream>, FakePlatform>;

    fn setup() -> (FakeXenstored, C) {
        let server = FakeXenstored::new();
        let client = Client::with_config(
            StreamTransport::new(server.connect_stream()),
            FakePlatform::new(&server),
            ClientConfig {
                request_timeout: Duration::from_secs(1),
                ..ClientConfig::default()
            },
        );
        (server, client)
    }

    const DEV: &str = "/local/domain/1/device/vbd/768";

    #[test]
    fn backend_is_read_and_validated() {
        let (server, c) = setup();
        server.write_node(&join(DEV, "backend"), b"/local/domain/0/backend/vbd/1/768");
        server.write_node(&join(DEV, "backend-id"), b"0");
        assert_eq!(
            read_backend(&c, DEV).unwrap(),
            Backend {
                path: String::from("/local/domain/0/backend/vbd/1/768"),
                domid: DomId(0)
            }
        );
        for (bad_path, bad_id, key) in [
            (&b"relative/path"[..], &b"0"[..], "backend"),
            (b"/a//b", b"0", "backend"),
            (b"/", b"0", "backend"),
            (b"/ok", b"32752", "backend-id"),
            (b"/ok", b"-1", "backend-id"),
            (b"/ok", b"70000", "backend-id"),
            (b"/ok", b"", "backend-id"),
        ] {
            server.write_node(&join(DEV, "backend"), bad_path);
            server.write_node(&join(DEV, "backend-id"), bad_id);
            let err = read_backend(&c, DEV).unwrap_err();
            assert!(matches!(err, DeviceError::Malformed { .. }), "{err:?}");
            assert_eq!(err.key(), join(DEV, key));
        }
        let err = read_backend(&c, "/local/domain/1/device/vbd/999").unwrap_err();
        assert_eq!(
            err,
            DeviceError::Store {
                key: String::from("/local/domain/1/device/vbd/999/backend"),
                error: StoreError::Xs(XsError::Enoent)
            }
        );
    }

    #[test]
    fn typed_keys_have_defaults_and_name_bad_keys() {
        let (server, c) = setup();
        let dir = "/be";
        server.write_node("/be/feature-persistent", b"1");
        server.write_node("/be/feature-discard", b"0");
        server.write_node("/be/feature-barrier", b"yes");
        server.write_node("/be/sectors", b"  2097152\n");
        server.write_node("/be/huge", b"99999999999999999999999");
        server.write_node("/be/big32", b"4294967296");
        assert!(read_feature(&c, Txn::NONE, dir, "persistent").unwrap());
        assert!(!read_feature(&c, Txn::NONE, dir, "discard").unwrap());
        assert!(!read_feature(&c, Txn::NONE, dir, "absent").unwrap());
        assert_eq!(
            read_feature(&c, Txn::NONE, dir, "barrier").unwrap_err(),
            DeviceError::Malformed {
                key: String::from("/be/feature-barrier"),
                reason: "not an unsigned decimal"
            }
        );
        assert_eq!(
            read_u64_or(&c, Txn::NONE, "/be/sectors", 0).unwrap(),
            2_097_152
        );
        assert_eq!(read_u64_or(&c, Txn::NONE, "/be/none", 7).unwrap(), 7);
        assert!(read_u64_or(&c, Txn::NONE, "/be/huge", 0).is_err());
        assert_eq!(
            read_u32_or(&c, Txn::NONE, "/be/big32", 0)
                .unwrap_err()
                .key(),
            "/be/big32"
        );
        assert!(read_bool_or(&c, Txn::NONE, "/be/none", true).unwrap());
        assert_eq!(read_string(&c, Txn::NONE, "/be/none").unwrap(), None);
    }

    #[test]
    fn states_are_read_switched_and_waited_for() {
        let (server, c) = setup();
        server.write_node(DEV, b"");
        assert_eq!(read_state(&c, DEV).unwrap(), XenbusState::Unknown);
        switch_state(&c, DEV, XenbusState::Initialising, 4).unwrap();
        assert_eq!(read_state(&c, DEV).unwrap(), XenbusState::Initialising);
        // Switching to the current state writes nothing: no watch fires.
        let watch = c.watch_add(&join(DEV, "state")).unwrap();
        assert!(c.watch_wait(watch, Duration::from_millis(1)).unwrap());
        switch_state(&c, DEV, XenbusState::Initialising, 4).unwrap();
        assert!(!c.watch_wait(watch, Duration::from_millis(1)).unwrap());
        switch_state(&c, DEV, XenbusState::InitWait, 4).unwrap();
        assert!(c.watch_wait(watch, Duration::from_millis(1)).unwrap());
        c.watch_remove(watch).unwrap();
        switch_state(&c, DEV, XenbusState::Initialising, 4).unwrap();
        server.write_node(&join(DEV, "state"), b"9");
        assert!(matches!(
            read_state(&c, DEV),
            Err(DeviceError::Malformed { .. })
        ));
        // A removed device is not recreated.
        let err =
            switch_state(&c, "/local/domain/1/device/vbd/1", XenbusState::Closed, 4).unwrap_err();
        assert_eq!(err.key(), "/local/domain/1/device/vbd/1");
        assert_eq!(server.read_node("/local/domain/1/device/vbd/1/state"), None);

        // Waiting: times out (virtual clock), then succeeds once the peer moves.
        server.write_node(&join(DEV, "state"), b"1");
        let err = wait_for_state(&c, c.platform(), DEV, Duration::from_millis(50), |s| {
            s == XenbusState::Connected
        })
        .unwrap_err();
        assert_eq!(
            err,
            DeviceError::Timeout {
                key: join(DEV, "state"),
                last: XenbusState::Initialising
            }
        );
        assert_eq!(server.watch_count(), 0, "watch removed after a timeout");
        server.write_node(&join(DEV, "state"), b"4");
        let got = wait_for_state(&c, c.platform(), DEV, Duration::from_secs(1), |s| {
            s >= XenbusState::Connected
        })
        .unwrap();
        assert_eq!(got, XenbusState::Connected);
        assert_eq!(server.watch_count(), 0);
    }

    #[test]
    fn keys_are_written_in_one_transaction_naming_failures() {
        let (server, c) = setup();
        let fe = "/local/domain/1/device/vif/0";
        write_keys(
            &c,
            fe,
            &[
                ("tx-ring-ref", &GrantRef(8)),
                ("event-channel", &Port(17)),
                ("request-rx-copy", &1u8),
                ("protocol", &"x86_64-abi"),
            ],
            4,
        )
        .unwrap();
        assert_eq!(server.read_node(&join(fe, "tx-ring-ref")).unwrap(), b"8");
        assert_eq!(
            server.read_node(&join(fe, "protocol")).unwrap(),
            b"x86_64-abi"
        );

        // A conflict is retried; the result is still written once.
        server.inject(Fault::Pass);
        server.inject(Fault::Pass);
        server.inject(Fault::Eagain);
        write_keys(&c, fe, &[("a", &1u8)], 4).unwrap();
        assert_eq!(server.read_node(&join(fe, "a")).unwrap(), b"1");

        // A bad key is named.
        let err = write_keys(&c, fe, &[("ok", &1u8), ("bad key", &2u8)], 4).unwrap_err();
        assert_eq!(
            err,
            DeviceError::Store {
                key: join(fe, "bad key"),
                error: StoreError::InvalidPath
            }
        );
        assert_eq!(
            server.read_node(&join(fe, "ok")),
            None,
            "aborted as a whole"
        );
        assert_eq!(server.transaction_count(), 0);
    }

    #[test]
    fn unsigned_parser_is_strict() {
        assert_eq!(parse_unsigned(b"0"), Some(0));
        assert_eq!(parse_unsigned(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_unsigned(b"18446744073709551616"), None);
        assert_eq!(parse_unsigned(b"12\0"), Some(12));
        for bad in [&b""[..], b" ", b"+1", b"-1", b"0x10", b"1 2", b"1\0\0"] {
            assert_eq!(parse_unsigned(bad), None, "{bad:?}");
        }
    }
}
