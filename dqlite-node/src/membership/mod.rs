//! Membership: who the members are and their roles ([`Member`]), joining a cluster, and
//! handing leadership over (graceful stop and TRANSFER).

pub(crate) mod handover;
pub(crate) mod join;
mod member;

pub use member::Member;
