//! The blkfront engine: the xenbus handshake, shared rings, grants and page
//! pools, request building (direct, indirect, persistent copy), response
//! validation, device failure, and replay across backend resets.
//!
//! Layers, bottom up: [`io`] (what callers hand in and get back), [`settings`]
//! and [`backend`] (both sides' limits), [`negotiate`] (fit them to a grant
//! budget), [`pool`] (pages granted for a connection's life), [`queue`] (one
//! ring and its shadow table), [`connection`] (the handshake and the
//! [`Frontend`] owning the queues).

pub mod backend;
pub mod connection;
pub mod io;
pub mod negotiate;
pub mod pool;
pub mod queue;
pub mod settings;

pub use backend::BackendInfo;
pub use connection::{Action, ConnectError, Frontend, Platform, backend_changed};
pub use io::{Completion, Frames, IoRequest, Operation, Segment, Status, SubmitError};
pub use queue::{BrokenReason, Features, PollOutcome};
pub use settings::Settings;

#[cfg(test)]
mod tests;
