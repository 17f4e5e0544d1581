//! The registered suites: one `mod` line and one `ALL` line per suite.

use crate::Suite;

mod guest;
mod guest_hvm;
mod platform;
mod store;
mod vbd;
mod vif;

/// Every suite, in the order `xenpv-rig-tests test` (no arguments) runs them.
#[rustfmt::skip] // one line per suite, so parallel additions merge cleanly
pub const ALL: &[Suite] = &[
    platform::SUITE,
    store::SUITE,
    vif::SUITE,
    guest::SUITE,
    guest_hvm::SUITE,
    vbd::SUITE,
];
