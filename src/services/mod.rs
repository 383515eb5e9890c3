//! Services: patterns built from rings, above them. Each uses the rings'
//! public handles only (no `unsafe`, no layout of its own but its
//! messages' headers), so their guarantees are the rings' plus what the
//! service's own protocol states.

pub mod request_reply;
