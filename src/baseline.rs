//! The floors every ring is measured against, between two processes:
//!
//! * a bare cache-line ping-pong (one word, each side spins until the other
//!   has written it): the hardware's cost of moving a line there and back;
//! * a bare futex ping-pong (the same word, but each side sleeps in
//!   `FUTEX_WAIT` and is woken with `FUTEX_WAKE`): the kernel's cost.
//!
//! A ring's round trip can approach these but not beat them. They live in
//! the library, in a real segment, so that the demo and the benches measure
//! them exactly as they measure the rings.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::error::{Error, Result, RingKind, TypeLayout};
use crate::futex;
use crate::ring::RingMemory;
use crate::segment::{CreateOptions, OpenOptions};
use crate::sync::{spin_loop, AtomicU32, Ordering};

/// Marker type whose fingerprint tags baseline segments.
struct PingPongWord;

/// One shared word that two processes hand back and forth: the ping side
/// writes odd values, the pong side even ones.
pub struct PingPong {
    mem: RingMemory<CachePadded<AtomicU32>>,
}

/// How long a floor measurement waits for its peer before giving up.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

impl PingPong {
    /// Create the shared word.
    pub fn create(name: &str) -> Result<Self> {
        let mem = RingMemory::create(
            name,
            RingKind::Baseline,
            TypeLayout::of::<PingPongWord>(),
            1,
            &CreateOptions::default(),
            |_| CachePadded::new(AtomicU32::new(0)),
        )?;
        Ok(PingPong { mem })
    }

    /// Open a word another process created.
    pub fn open(name: &str) -> Result<Self> {
        let mem = RingMemory::open(
            name,
            RingKind::Baseline,
            TypeLayout::of::<PingPongWord>(),
            &OpenOptions::default(),
        )?;
        Ok(PingPong { mem })
    }

    fn word(&self) -> &AtomicU32 {
        self.mem.slot(0)
    }

    /// Ping side of round `i`, spinning: write `2i + 1`, wait for `2i + 2`.
    pub fn spin_ping(&self, i: u32) -> Result<()> {
        self.word().store(i.wrapping_mul(2) | 1, Ordering::Release);
        self.spin_for(i.wrapping_mul(2).wrapping_add(2))
    }

    /// Pong side of round `i`, spinning: wait for `2i + 1`, write `2i + 2`.
    pub fn spin_pong(&self, i: u32) -> Result<()> {
        self.spin_for(i.wrapping_mul(2) | 1)?;
        self.word()
            .store(i.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        Ok(())
    }

    /// Ping side of round `i` through the kernel: write, wake, sleep.
    pub fn futex_ping(&self, i: u32) -> Result<()> {
        let mine = i.wrapping_mul(2) | 1;
        self.word().store(mine, Ordering::Release);
        futex::wake_all(self.word());
        self.sleep_while(mine)
    }

    /// Pong side of round `i` through the kernel: sleep, write, wake.
    pub fn futex_pong(&self, i: u32) -> Result<()> {
        self.sleep_while(i.wrapping_mul(2))?;
        self.word()
            .store(i.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        futex::wake_all(self.word());
        Ok(())
    }

    fn spin_for(&self, value: u32) -> Result<()> {
        let start = std::time::Instant::now();
        let mut n = 0u32;
        while self.word().load(Ordering::Acquire) != value {
            spin_loop();
            n = n.wrapping_add(1);
            if n % 4096 == 0 && start.elapsed() > PEER_TIMEOUT {
                return Err(Error::Timeout);
            }
        }
        Ok(())
    }

    fn sleep_while(&self, value: u32) -> Result<()> {
        let start = std::time::Instant::now();
        while self.word().load(Ordering::Acquire) == value {
            if start.elapsed() > PEER_TIMEOUT {
                return Err(Error::Timeout);
            }
            futex::wait(self.word(), value, PEER_TIMEOUT);
        }
        Ok(())
    }
}
