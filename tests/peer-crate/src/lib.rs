//! Another service's crate, as the tests see it: its own definition of the
//! `Quote` message (same name and layout as the test crate's, another crate
//! and module path), for the test that a ring created with one opens with
//! the other.

/// A market quote, as this crate defines it.
#[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
#[bytemuck(crate = "shmring::bytemuck")]
#[repr(C)]
pub struct Quote {
    /// Price.
    pub px: f64,
    /// Quantity.
    pub qty: u32,
    /// Venue code.
    pub venue: u32,
}
