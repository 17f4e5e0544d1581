//! `sched.h`: the `sched_op` hypercall (yield, block, shutdown, poll, watchdog).

use crate::event_channel::EvtchnPort;
use crate::hypercall::{DomId, GuestHandle};

/// `SCHEDOP_yield`: give up the CPU voluntarily.
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_block`: block until an event is pending.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_shutdown`: shut this domain down, a [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_poll`: block until one of some ports is pending, a [`SchedPoll`].
pub const SCHEDOP_POLL: u32 = 3;
/// `SCHEDOP_remote_shutdown`: shut another domain down, a [`SchedRemoteShutdown`].
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `SCHEDOP_shutdown_code`: record a shutdown reason without shutting down.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `SCHEDOP_watchdog`: create, refresh or destroy a watchdog, a [`SchedWatchdog`].
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// `SCHEDOP_pin_override`: temporarily pin to a physical CPU (dom0).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// `SHUTDOWN_poweroff`: exited normally; destroy the domain.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot`: destroy and restart the domain.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend`: save the domain (suspend, migration); the hypercall
/// returns on resume (1 if the suspend was cancelled).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash`: the domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// `SHUTDOWN_watchdog`: a watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// `SHUTDOWN_soft_reset`: reset the domain's state without destroying it.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// `SHUTDOWN_MAX`: the largest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct sched_poll`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// The ports to wait on.
    pub ports: GuestHandle<EvtchnPort>,
    /// Number of ports.
    pub nr_ports: u32,
    /// Absolute Xen system time (ns) to give up at; 0 waits forever.
    pub timeout: u64,
}

/// `struct sched_remote_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: DomId,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct sched_watchdog`: `id` 0 with a timeout creates one (the id comes back
/// as the result); a non-zero `id` refreshes it, or destroys it with timeout 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// Watchdog id.
    pub id: u32,
    /// Timeout in seconds.
    pub timeout: u32,
}

const _: () = assert!(core::mem::size_of::<SchedShutdown>() == 4);
const _: () = assert!(core::mem::size_of::<SchedPoll>() == 24);
const _: () = assert!(core::mem::size_of::<SchedRemoteShutdown>() == 8);
const _: () = assert!(core::mem::size_of::<SchedWatchdog>() == 8);
