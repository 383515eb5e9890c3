//! The floors every ring is measured against, between two processes:
//!
//! * a bare cache-line ping-pong (one word, each side spins until the other
//!   has written it): the hardware's cost of moving a line there and back;
//! * the same with two words on two lines, one per direction: what any pair
//!   of rings must pay at least, since each direction has its own line to
//!   invalidate and fetch (on the 2-vCPU VM this was developed on it costs
//!   about twice the one-line ping-pong);
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

/// Shared words that two processes hand back and forth. On one line, the
/// ping side writes odd values and the pong side even ones; on two lines,
/// each side writes only its own line.
pub struct PingPong {
    mem: RingMemory<CachePadded<AtomicU32>>,
}

impl std::fmt::Debug for PingPong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingPong")
            .field("name", &self.mem.segment().name().as_str())
            .finish()
    }
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
            2,
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

    fn reply(&self) -> &AtomicU32 {
        self.mem.slot(1)
    }

    /// Ping side of round `i` on two lines: write ours, wait for theirs.
    pub fn two_line_ping(&self, i: u32) -> Result<()> {
        self.word().store(i.wrapping_add(1), Ordering::Release);
        spin_until(self.reply(), i.wrapping_add(1))
    }

    /// Pong side of round `i` on two lines: wait for theirs, write ours.
    pub fn two_line_pong(&self, i: u32) -> Result<()> {
        spin_until(self.word(), i.wrapping_add(1))?;
        self.reply().store(i.wrapping_add(1), Ordering::Release);
        Ok(())
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
        spin_until(self.word(), value)
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

fn spin_until(word: &AtomicU32, value: u32) -> Result<()> {
    let start = std::time::Instant::now();
    let mut n = 0u32;
    while word.load(Ordering::Acquire) != value {
        spin_loop();
        n = n.wrapping_add(1);
        if n.is_multiple_of(4096) && start.elapsed() > PEER_TIMEOUT {
            return Err(Error::Timeout);
        }
    }
    Ok(())
}
