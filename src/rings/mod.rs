//! The rings, over one vocabulary: create/open a ring, take producer
//! and consumer handles, write in place through guards, read in place.
//! Each kind is a folder: the ring itself and its protocol in `mod.rs`,
//! then one file per role (`producer.rs`, `consumer.rs`), where dead
//! handles leave work behind `repair.rs`, and `messages.rs`: the kind's
//! side of the interface every kind shares (`messages.rs` here).

pub(crate) mod messages; // every kind as messages of bytes: one interface

pub(crate) mod broadcast; // one producer, many subscribers, each its own policy
pub(crate) mod byte_ring; // variable-length byte messages: grants, batches
pub(crate) mod mpmc; // many producers, many consumers (Vyukov's turns)
pub(crate) mod runtime; // rings of a layout known at run time (bindings)
pub(crate) mod spsc; // one producer, one consumer, chunks
