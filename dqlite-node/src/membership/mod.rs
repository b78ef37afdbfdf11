//! Membership: who the members are and their roles ([`Member`]), moving members between
//! roles (by ASSIGN or automatic role management), joining a cluster, and handing leadership
//! over (graceful stop and TRANSFER).

pub(crate) mod assign;
pub(crate) mod handover;
pub(crate) mod join;
mod member;
pub(crate) mod roles;

pub use member::Member;
pub use roles::RoleOptions;
