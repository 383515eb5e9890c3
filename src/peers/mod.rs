//! Who holds what in a header, and what happens when a holder dies: each
//! module defines the words it keeps in the header and the protocol on
//! them; `format::header` places them.

pub(crate) mod attach; // which processes map a segment
pub(crate) mod claims; // claim records and the repair lock
pub(crate) mod role; // single-holder roles (SPSC producer and consumer)
