//! In-memory implementations of the bus traits, for unit tests here and in
//! other crates (feature `test-utils`). They prove plumbing, never a protocol:
//! the rig does that against the real xenstored and backends.

use crate::api::{
    Debug, DebugError, DomId, DumpCallback, EventChannels, EvtchnError, GrantError, GrantRef,
    GrantTable, Permission, Pfn, Port, ResumeCallback, Store, StoreError, Suspend, SuspendError,
    SuspendPhase, Txn, WatchId, XsError,
};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;
use spin::Mutex;

/// One watch of a [`FakeStore`].
#[derive(Debug)]
struct FakeWatch {
    path: String,
    fired: bool,
}

#[derive(Debug, Default)]
struct StoreState {
    nodes: BTreeMap<String, Vec<u8>>,
    perms: BTreeMap<String, Vec<Permission>>,
    transactions: BTreeMap<u32, bool>,
    next_txn: u32,
    watches: BTreeMap<u32, FakeWatch>,
    next_watch: u32,
    conflicts: u32,
}

/// xenstore in a map. Paths are taken as given (no home-directory
/// resolution); parents appear in `directory` because it lists every node
/// below a path. A watch fires when added and when a node at or below its
/// path changes; `watch_wait` never sleeps (it reports whether the watch has
/// fired, whatever the timeout).
#[derive(Debug, Default)]
pub struct FakeStore {
    state: Mutex<StoreState>,
}

fn below(path: &str, watched: &str) -> bool {
    path == watched
        || (path.starts_with(watched) && path.as_bytes().get(watched.len()) == Some(&b'/'))
}

fn check_path(path: &str) -> Result<(), StoreError> {
    if path.is_empty() || path.contains('\0') || path.len() > 3072 {
        return Err(StoreError::InvalidPath);
    }
    Ok(())
}

impl FakeStore {
    /// Makes the next `count` transaction commits fail with `EAGAIN`.
    pub fn inject_conflicts(&self, count: u32) {
        self.state.lock().conflicts = count;
    }

    /// The permissions last set on `path`.
    pub fn permissions(&self, path: &str) -> Option<Vec<Permission>> {
        self.state.lock().perms.get(path).cloned()
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.state.lock().transactions.len()
    }

    /// Registered watches.
    pub fn watch_count(&self) -> usize {
        self.state.lock().watches.len()
    }

    fn changed(state: &mut StoreState, path: &str) {
        for watch in state.watches.values_mut() {
            if below(path, &watch.path) || below(&watch.path, path) {
                watch.fired = true;
            }
        }
    }

    fn check_txn(state: &StoreState, txn: Txn) -> Result<(), StoreError> {
        if txn == Txn::NONE || state.transactions.contains_key(&txn.0) {
            Ok(())
        } else {
            Err(StoreError::Xs(XsError::Enoent))
        }
    }
}

impl Store for FakeStore {
    fn read(&self, txn: Txn, path: &str) -> Result<Vec<u8>, StoreError> {
        check_path(path)?;
        let state = self.state.lock();
        Self::check_txn(&state, txn)?;
        state
            .nodes
            .get(path)
            .cloned()
            .ok_or(StoreError::Xs(XsError::Enoent))
    }

    fn write(&self, txn: Txn, path: &str, value: &[u8]) -> Result<(), StoreError> {
        check_path(path)?;
        if value.len() > crate::store::PAYLOAD_MAX {
            return Err(StoreError::TooLarge {
                len: value.len(),
                max: crate::store::PAYLOAD_MAX,
            });
        }
        let mut state = self.state.lock();
        Self::check_txn(&state, txn)?;
        state.nodes.insert(path.to_string(), value.to_vec());
        Self::changed(&mut state, path);
        Ok(())
    }

    fn mkdir(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        let mut state = self.state.lock();
        Self::check_txn(&state, txn)?;
        if !state.nodes.contains_key(path) {
            state.nodes.insert(path.to_string(), Vec::new());
            Self::changed(&mut state, path);
        }
        Ok(())
    }

    fn remove(&self, txn: Txn, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        let mut state = self.state.lock();
        Self::check_txn(&state, txn)?;
        let doomed: Vec<String> = state
            .nodes
            .keys()
            .filter(|k| below(k, path))
            .cloned()
            .collect();
        if doomed.is_empty() {
            return Err(StoreError::Xs(XsError::Enoent));
        }
        for key in doomed {
            state.nodes.remove(&key);
        }
        Self::changed(&mut state, path);
        Ok(())
    }

    fn directory(&self, txn: Txn, path: &str) -> Result<Vec<String>, StoreError> {
        check_path(path)?;
        let state = self.state.lock();
        Self::check_txn(&state, txn)?;
        let mut names: Vec<String> = Vec::new();
        let mut found = state.nodes.contains_key(path);
        for key in state.nodes.keys() {
            if let Some(rest) = key.strip_prefix(path).and_then(|r| r.strip_prefix('/')) {
                found = true;
                let name = rest.split('/').next().unwrap_or(rest);
                if names.last().is_none_or(|last| last != name) && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_string());
                }
            }
        }
        if found {
            Ok(names)
        } else {
            Err(StoreError::Xs(XsError::Enoent))
        }
    }

    fn set_permissions(
        &self,
        txn: Txn,
        path: &str,
        perms: &[Permission],
    ) -> Result<(), StoreError> {
        check_path(path)?;
        let mut state = self.state.lock();
        Self::check_txn(&state, txn)?;
        if !state.nodes.contains_key(path) {
            return Err(StoreError::Xs(XsError::Enoent));
        }
        state.perms.insert(path.to_string(), perms.to_vec());
        Ok(())
    }

    fn transaction_start(&self) -> Result<Txn, StoreError> {
        let mut state = self.state.lock();
        state.next_txn = state.next_txn.wrapping_add(1).max(1);
        let id = state.next_txn;
        state.transactions.insert(id, true);
        Ok(Txn(id))
    }

    fn transaction_end(&self, txn: Txn, commit: bool) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if state.transactions.remove(&txn.0).is_none() {
            return Err(StoreError::Xs(XsError::Enoent));
        }
        if commit && state.conflicts > 0 {
            state.conflicts -= 1;
            return Err(StoreError::Xs(XsError::Eagain));
        }
        Ok(())
    }

    fn watch_add(&self, path: &str) -> Result<WatchId, StoreError> {
        check_path(path)?;
        let mut state = self.state.lock();
        state.next_watch = state.next_watch.wrapping_add(1).max(1);
        let id = state.next_watch;
        state.watches.insert(
            id,
            FakeWatch {
                path: path.to_string(),
                fired: true,
            },
        );
        Ok(WatchId(id))
    }

    fn watch_remove(&self, watch: WatchId) -> Result<(), StoreError> {
        self.state
            .lock()
            .watches
            .remove(&watch.0)
            .map(|_| ())
            .ok_or(StoreError::Xs(XsError::Enoent))
    }

    fn watch_wait(&self, watch: WatchId, _timeout: Duration) -> Result<bool, StoreError> {
        let mut state = self.state.lock();
        let watch = state
            .watches
            .get_mut(&watch.0)
            .ok_or(StoreError::Xs(XsError::Enoent))?;
        Ok(core::mem::replace(&mut watch.fired, false))
    }
}

/// An open channel of [`FakeEvtchn`].
#[derive(Debug, PartialEq, Eq)]
pub struct FakeChannel(Port);

#[derive(Debug, Default)]
struct EvtchnState {
    next_port: u32,
    open: BTreeMap<u32, (DomId, u32, u32)>,
    limit: Option<usize>,
}

/// Event channels as counters: ports from 1 up, per port the remote domain,
/// notifications sent and unmasks.
#[derive(Debug, Default)]
pub struct FakeEvtchn {
    state: Mutex<EvtchnState>,
}

impl FakeEvtchn {
    /// At most `limit` channels open at once.
    pub fn limit(&self, limit: usize) {
        self.state.lock().limit = Some(limit);
    }

    /// (remote domain, notifications, unmasks) of an open port.
    pub fn port_state(&self, port: Port) -> Option<(DomId, u32, u32)> {
        self.state.lock().open.get(&port.0).copied()
    }

    /// Open ports.
    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }
}

impl EventChannels for FakeEvtchn {
    type Channel = FakeChannel;

    fn open_unbound(&self, remote: DomId) -> Result<FakeChannel, EvtchnError> {
        let mut state = self.state.lock();
        if state.limit.is_some_and(|l| state.open.len() >= l) {
            return Err(EvtchnError::Exhausted);
        }
        state.next_port = state
            .next_port
            .checked_add(1)
            .ok_or(EvtchnError::Exhausted)?;
        let port = state.next_port;
        state.open.insert(port, (remote, 0, 0));
        Ok(FakeChannel(Port(port)))
    }

    fn port(&self, channel: &FakeChannel) -> Port {
        channel.0
    }

    fn notify(&self, channel: &FakeChannel) {
        if let Some(entry) = self.state.lock().open.get_mut(&channel.0.0) {
            entry.1 = entry.1.saturating_add(1);
        }
    }

    fn unmask(&self, channel: &FakeChannel) {
        if let Some(entry) = self.state.lock().open.get_mut(&channel.0.0) {
            entry.2 = entry.2.saturating_add(1);
        }
    }

    fn close(&self, channel: FakeChannel) {
        self.state.lock().open.remove(&channel.0.0);
    }
}

#[derive(Debug, Default)]
struct GrantState {
    grants: BTreeMap<u32, (DomId, Pfn, bool)>,
    mapped: BTreeSet<u32>,
    next: u32,
    capacity: usize,
}

/// A grant table of `capacity` references (from 8 up: the C bus reserves the
/// first ones), with a switch to play a backend that still maps a page.
#[derive(Debug)]
pub struct FakeGnttab {
    state: Mutex<GrantState>,
}

impl FakeGnttab {
    /// A table with room for `capacity` grants.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(GrantState {
                capacity,
                next: 8,
                ..GrantState::default()
            }),
        }
    }

    /// Pretends the remote domain maps (or stopped mapping) `gref`.
    pub fn set_mapped(&self, gref: GrantRef, mapped: bool) {
        let mut state = self.state.lock();
        if mapped {
            state.mapped.insert(gref.0);
        } else {
            state.mapped.remove(&gref.0);
        }
    }

    /// What `gref` grants.
    pub fn grant_of(&self, gref: GrantRef) -> Option<(DomId, Pfn, bool)> {
        self.state.lock().grants.get(&gref.0).copied()
    }

    /// Active grants.
    pub fn active(&self) -> usize {
        self.state.lock().grants.len()
    }
}

impl GrantTable for FakeGnttab {
    fn grant(&self, domid: DomId, pfn: Pfn, readonly: bool) -> Result<GrantRef, GrantError> {
        let mut state = self.state.lock();
        if state.grants.len() >= state.capacity {
            return Err(GrantError::Exhausted);
        }
        let mut gref = state.next;
        while state.grants.contains_key(&gref) {
            gref = gref.checked_add(1).unwrap_or(8);
        }
        state.next = gref.checked_add(1).unwrap_or(8);
        state.grants.insert(gref, (domid, pfn, readonly));
        Ok(GrantRef(gref))
    }

    fn revoke(&self, gref: GrantRef) -> Result<(), GrantError> {
        let mut state = self.state.lock();
        if !state.grants.contains_key(&gref.0) {
            return Err(GrantError::Invalid);
        }
        if state.mapped.contains(&gref.0) {
            return Err(GrantError::InUse);
        }
        state.grants.remove(&gref.0);
        Ok(())
    }

    fn available(&self) -> usize {
        let state = self.state.lock();
        state.capacity.saturating_sub(state.grants.len())
    }
}

/// A registration of [`FakeSuspend`].
#[derive(Debug)]
pub struct FakeSuspendRegistration(u32);

#[derive(Default)]
struct SuspendState {
    callbacks: BTreeMap<u32, (SuspendPhase, ResumeCallback)>,
    next: u32,
    count: u32,
}

/// Suspend that "resumes" at once: `trigger` counts and runs the early, then
/// the late callbacks.
#[derive(Default)]
pub struct FakeSuspend {
    state: Mutex<SuspendState>,
}

impl core::fmt::Debug for FakeSuspend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeSuspend")
            .field("callbacks", &self.state.lock().callbacks.len())
            .finish()
    }
}

impl FakeSuspend {
    /// Registered callbacks.
    pub fn registered(&self) -> usize {
        self.state.lock().callbacks.len()
    }
}

impl Suspend for FakeSuspend {
    type Registration = FakeSuspendRegistration;

    fn register(
        &self,
        phase: SuspendPhase,
        callback: ResumeCallback,
    ) -> Result<FakeSuspendRegistration, SuspendError> {
        let mut state = self.state.lock();
        state.next = state.next.checked_add(1).ok_or(SuspendError::Exhausted)?;
        let id = state.next;
        state.callbacks.insert(id, (phase, callback));
        Ok(FakeSuspendRegistration(id))
    }

    fn deregister(&self, registration: FakeSuspendRegistration) {
        self.state.lock().callbacks.remove(&registration.0);
    }

    fn trigger(&self) -> Result<(), SuspendError> {
        let state = {
            let mut state = self.state.lock();
            state.count = state.count.wrapping_add(1);
            core::mem::take(&mut state.callbacks)
        };
        for phase in [SuspendPhase::Early, SuspendPhase::Late] {
            for (p, callback) in state.values() {
                if *p == phase {
                    callback();
                }
            }
        }
        let mut current = self.state.lock();
        let added = core::mem::replace(&mut current.callbacks, state);
        current.callbacks.extend(added);
        Ok(())
    }

    fn count(&self) -> u32 {
        self.state.lock().count
    }
}

/// A registration of [`FakeDebug`].
#[derive(Debug)]
pub struct FakeDebugRegistration(u32);

#[derive(Default)]
struct DebugState {
    callbacks: BTreeMap<u32, (String, DumpCallback)>,
    next: u32,
}

/// Debug output collected in memory; `trigger` runs callbacks with
/// `crashing` false.
#[derive(Default)]
pub struct FakeDebug {
    state: Mutex<DebugState>,
    output: Mutex<String>,
}

impl core::fmt::Debug for FakeDebug {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeDebug")
            .field("output", &*self.output.lock())
            .finish_non_exhaustive()
    }
}

impl FakeDebug {
    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().clone()
    }

    /// Registered callbacks and their prefixes.
    pub fn prefixes(&self) -> Vec<String> {
        self.state
            .lock()
            .callbacks
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl Debug for FakeDebug {
    type Registration = FakeDebugRegistration;

    fn register(
        &self,
        prefix: &str,
        callback: DumpCallback,
    ) -> Result<FakeDebugRegistration, DebugError> {
        if prefix.is_empty() || prefix.contains('\0') {
            return Err(DebugError::InvalidPrefix);
        }
        let mut state = self.state.lock();
        state.next = state.next.checked_add(1).ok_or(DebugError::Exhausted)?;
        let id = state.next;
        state.callbacks.insert(id, (prefix.to_string(), callback));
        Ok(FakeDebugRegistration(id))
    }

    fn print(&self, text: &str) {
        self.output.lock().push_str(text);
    }

    fn trigger(&self, registration: Option<&FakeDebugRegistration>) {
        // Run outside the lock: callbacks print, and may register.
        let callbacks = core::mem::take(&mut self.state.lock().callbacks);
        for (id, (_, callback)) in &callbacks {
            if registration.is_none_or(|r| r.0 == *id) {
                callback(false);
            }
        }
        let mut state = self.state.lock();
        let added = core::mem::replace(&mut state.callbacks, callbacks);
        state.callbacks.extend(added);
    }

    fn deregister(&self, registration: FakeDebugRegistration) {
        self.state.lock().callbacks.remove(&registration.0);
    }
}

/// Unplug requests as counters per device type (each `make` adds one, each
/// withdrawal takes one away), with what booted and the reboots asked for.
#[derive(Debug, Default)]
pub struct FakeUnplug {
    state: Mutex<(u32, u32, bool, Vec<String>)>,
}

impl FakeUnplug {
    /// Pretends the system booted from an emulated disk.
    pub fn set_boot_emulated(&self, emulated: bool) {
        self.state.lock().2 = emulated;
    }

    /// The modules that asked for a reboot.
    pub fn reboots(&self) -> Vec<String> {
        self.state.lock().3.clone()
    }
}

impl crate::api::Unplug for FakeUnplug {
    fn request(&self, devices: crate::api::UnplugDevices, make: bool) {
        let mut state = self.state.lock();
        let count = match devices {
            crate::api::UnplugDevices::Nics => &mut state.0,
            crate::api::UnplugDevices::Disks => &mut state.1,
        };
        *count = if make {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
    }

    fn is_requested(&self, devices: crate::api::UnplugDevices) -> Option<bool> {
        let state = self.state.lock();
        Some(match devices {
            crate::api::UnplugDevices::Nics => state.0 > 0,
            crate::api::UnplugDevices::Disks => state.1 > 0,
        })
    }

    fn boot_emulated(&self) -> Option<bool> {
        Some(self.state.lock().2)
    }

    fn reboot(&self, module: &str) -> bool {
        self.state.lock().3.push(module.to_string());
        true
    }
}
