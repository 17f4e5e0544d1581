//! `grant_table.h`: grant references, grant entries and the `grant_table_op`
//! hypercall.

/// `grant_ref_t`: an index into a domain's grant table.
pub type GrantRef = u32;
