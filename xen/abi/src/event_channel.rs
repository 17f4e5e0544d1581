//! `event_channel.h`: the `event_channel_op` hypercall and the FIFO event
//! channel ABI (control block and event words).

use crate::hypercall::DomId;

/// `evtchn_port_t`: an event channel port number.
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain`: connect to a remote domain's unbound port, an
/// [`EvtchnBindInterdomain`].
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq`: bind a virtual IRQ, an [`EvtchnBindVirq`].
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_bind_pirq`: bind a physical IRQ.
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `EVTCHNOP_close`: close a port, an [`EvtchnClose`].
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send`: notify the remote end, an [`EvtchnSend`].
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status`: query a port, an [`EvtchnStatus`].
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound`: allocate a port for a remote domain to bind, an
/// [`EvtchnAllocUnbound`].
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_ipi`: bind an inter-processor interrupt.
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_bind_vcpu`: deliver a port's events to another vCPU, an
/// [`EvtchnBindVcpu`].
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask`: unmask a port (and re-deliver if pending), an
/// [`EvtchnUnmask`].
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_reset`: close all of a domain's ports.
pub const EVTCHNOP_RESET: u32 = 10;
/// `EVTCHNOP_init_control`: switch to the FIFO ABI, registering a vCPU's control
/// block, an [`EvtchnInitControl`].
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `EVTCHNOP_expand_array`: add a page of FIFO event words, an
/// [`EvtchnExpandArray`].
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `EVTCHNOP_set_priority`: set a port's FIFO priority, an [`EvtchnSetPriority`].
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// `EVTCHNSTAT_closed`: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// The domain allocating ([`crate::hypercall::DOMID_SELF`]).
    pub dom: DomId,
    /// The domain allowed to bind.
    pub remote_dom: DomId,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// The remote domain.
    pub remote_dom: DomId,
    /// Its unbound port.
    pub remote_port: EvtchnPort,
    /// Out: our new port.
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// `VIRQ_*`.
    pub virq: u32,
    /// The vCPU to deliver to.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: EvtchnPort,
}

/// `struct evtchn_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_status`. `u` is a union read with the accessors according to
/// `status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// The domain ([`crate::hypercall::DOMID_SELF`]).
    pub dom: DomId,
    /// The port.
    pub port: EvtchnPort,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out: the vCPU the port is bound to.
    pub vcpu: u32,
    /// Out: the union's words (`unbound.dom`; `interdomain.dom`/`.port`;
    /// `pirq`; `virq`).
    pub u: [u32; 2],
}

impl EvtchnStatus {
    /// `u.unbound.dom` / `u.interdomain.dom`: the remote domain.
    pub fn remote_dom(&self) -> DomId {
        let [lo, hi, ..] = self.u[0].to_ne_bytes();
        DomId::from_ne_bytes([lo, hi])
    }

    /// `u.interdomain.port`: the remote port.
    pub fn remote_port(&self) -> EvtchnPort {
        self.u[1]
    }

    /// `u.virq` / `u.pirq`.
    pub fn irq(&self) -> u32 {
        self.u[0]
    }
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// The port.
    pub port: EvtchnPort,
    /// The vCPU to deliver to.
    pub vcpu: u32,
}

/// `struct evtchn_unmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// The port.
    pub port: EvtchnPort,
}

/// `struct evtchn_init_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    /// Guest frame of the page holding the control block.
    pub control_gfn: u64,
    /// Byte offset of the [`EvtchnFifoControlBlock`] in it.
    pub offset: u32,
    /// The vCPU.
    pub vcpu: u32,
    /// Out: the number of link bits ([`EVTCHN_FIFO_LINK_BITS`]).
    pub link_bits: u8,
    /// Padding; zero.
    pub pad: [u8; 7],
}

/// `struct evtchn_expand_array`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    /// Guest frame of the next page of event words.
    pub array_gfn: u64,
}

/// `struct evtchn_set_priority`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    /// The port.
    pub port: EvtchnPort,
    /// `EVTCHN_FIFO_PRIORITY_*` range.
    pub priority: u32,
}

const _: () = assert!(core::mem::size_of::<EvtchnAllocUnbound>() == 8);
const _: () = assert!(core::mem::size_of::<EvtchnBindInterdomain>() == 12);
const _: () = assert!(core::mem::size_of::<EvtchnBindVirq>() == 12);
const _: () = assert!(core::mem::size_of::<EvtchnStatus>() == 24);
const _: () = assert!(core::mem::size_of::<EvtchnInitControl>() == 24);

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI (x86_64).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// `event_word_t`: one FIFO event word (pending, masked, linked, busy bits and the
/// link to the next port in its queue).
pub type EventWord = u32;

/// `EVTCHN_FIFO_PRIORITY_MAX`: the highest priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`: the priority of a new port.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`: the lowest priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`: one queue per priority.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;

/// `EVTCHN_FIFO_PENDING`: bit number of the pending flag in an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`: bit number of the masked flag.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`: bit number of the linked flag.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`: bit number of the busy flag.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_BITS`: width of the link field.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_LINK_MASK`: the link field of an event word.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_NR_CHANNELS`: ports of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_fifo_control_block`: per-vCPU FIFO state, in guest memory
/// registered with [`EVTCHNOP_INIT_CONTROL`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    /// Bit `q` set: queue `q` has events.
    pub ready: u32,
    /// Reserved.
    pub rsvd: u32,
    /// The head port of each queue.
    pub head: [EvtchnPort; EVTCHN_FIFO_MAX_QUEUES],
}

const _: () = assert!(core::mem::size_of::<EvtchnFifoControlBlock>() == 72);
