//! The three rings, over one vocabulary: create/open a ring, take producer
//! and consumer handles, write in place through guards, read in place.

pub(crate) mod byte_ring; // variable-length byte messages: grants, batches
pub(crate) mod mpmc; // many producers, many consumers (Vyukov's turns)
pub(crate) mod record; // the byte ring's framing: stamps, bounds checks
pub(crate) mod spsc; // one producer, one consumer, chunks
