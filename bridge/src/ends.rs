//! The ring ends a bridge uses, one vocabulary over the three kinds: an
//! outbound bridge reads batches of messages with their place in the
//! ring; an inbound bridge writes one message at a time. Byte rings carry
//! their messages; `Spsc<T>` and `Mpmc<T>` carry each value as its bytes
//! (`bytemuck`), so a typed ring on one host can feed a typed ring of the
//! same `T` (or a byte ring) on another.

use std::ops::Range;
use std::time::Duration;

use shmring::{bytemuck, ByteRing, Mpmc, MpmcReadSlot, Pod, RecvError, SendError, Spsc};
use shmring_bridge_state::{OutState, Resume, Span};

use crate::Result;

/// Most values an outbound bridge takes from a typed ring at once.
const TYPED_BATCH: usize = 256;

/// One batch [`Reader::forward`] hands on.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// Where it lies in the ring, to be recorded before it is sent: bytes
    /// of a byte ring, one position per value of a typed ring; `None` for
    /// a batch that is sent again and was recorded already.
    pub(crate) positions: Option<Range<u64>>,
    /// For a batch a previous bridge recorded and sent (perhaps in part)
    /// before it died: the number of its first message, to send it again
    /// under its numbers. `None`: new numbers.
    pub(crate) resend_from: Option<u64>,
    /// How many messages.
    pub(crate) count: u64,
}

/// What a reader hands each batch to: it records the batch, sends it and
/// returns `Ok`, and only then is the batch released.
pub(crate) type Forward<'a> = dyn FnMut(Batch, &mut dyn Iterator<Item = &[u8]>) -> Result<()> + 'a;

/// The ring an outbound bridge reads, as its consumer.
pub(crate) trait Reader: Send {
    /// How a bridge with a state file goes on, given the ring's identity.
    fn resume(&mut self, state: &OutState, ring_id: u64) -> Resume;

    /// Wait up to `timeout` for messages, hand everything committed to
    /// `send`, and release it once `send` returns `Ok`; how many.
    fn forward(&mut self, timeout: Duration, send: &mut Forward<'_>) -> Result<u64>;
}

/// Timeout and a closed ring (its producers finished; a restarted one may
/// come back) are both "nothing now".
fn idle(e: RecvError, timeout: Duration) -> Result<u64> {
    match e {
        RecvError::Timeout { .. } => Ok(0),
        RecvError::Closed { .. } => {
            std::thread::sleep(timeout);
            Ok(0)
        }
        e => Err(e.into()),
    }
}

/// A new batch at `positions`, numbered after what was sent before.
fn fresh(positions: Range<u64>, count: u64) -> Batch {
    Batch {
        positions: Some(positions),
        resend_from: None,
        count,
    }
}

pub(crate) struct BytesReader {
    pub(crate) ring: ByteRing,
    pub(crate) rx: shmring::bytes::Consumer,
}

impl Reader for BytesReader {
    fn resume(&mut self, state: &OutState, ring_id: u64) -> Resume {
        state.resume(ring_id, self.ring.bytes_released())
    }

    fn forward(&mut self, timeout: Duration, send: &mut Forward<'_>) -> Result<u64> {
        {
            let batch = self.rx.read_batch()?;
            let span = batch.positions();
            // Padding alone moves the position too: record it.
            if span.start != span.end {
                let n = batch.len() as u64;
                send(fresh(span, n), &mut batch.iter())?;
                if n > 0 {
                    return Ok(n);
                }
            }
        }
        match self.rx.recv_timeout(timeout) {
            Ok(msg) => {
                send(fresh(msg.positions(), 1), &mut std::iter::once(&*msg))?;
                Ok(1)
            }
            Err(e) => idle(e, timeout),
        }
    }
}

pub(crate) struct SpscReader<T: Pod + Send> {
    pub(crate) rx: shmring::spsc::Consumer<T>,
    pub(crate) _ring: Spsc<T>,
}

impl<T: Pod + Send> Reader for SpscReader<T> {
    fn resume(&mut self, state: &OutState, ring_id: u64) -> Resume {
        state.resume(ring_id, self.rx.popped())
    }

    fn forward(&mut self, timeout: Duration, send: &mut Forward<'_>) -> Result<u64> {
        let start = self.rx.popped();
        let chunk = match self.rx.read_timeout(TYPED_BATCH, timeout) {
            Ok(chunk) => chunk,
            Err(e) => return idle(e, timeout),
        };
        let n = chunk.len() as u64;
        send(
            fresh(start..start + n, n),
            &mut chunk.iter().map(bytemuck::bytes_of),
        )?;
        chunk.release_all();
        Ok(n)
    }
}

/// An MPMC ring's consumer. Its consumers share one read position, so a
/// batch is the values this one holds, read in place: each run of
/// consecutive positions is recorded, sent and released before the next
/// is recorded, so the record always covers what the bridge holds sent.
/// A restarted bridge first takes over what its predecessor held
/// (`take_over`): values in the recorded run go again under their
/// numbers, the others (taken, never recorded, so never sent) get new
/// ones.
pub(crate) struct MpmcReader<T: Pod + Send> {
    pub(crate) rx: shmring::MpmcConsumer<T>,
    pub(crate) _ring: Mpmc<T>,
    /// The run the previous bridge recorded last, until what it held has
    /// been taken over.
    recorded: Option<Span>,
    /// Whether what dead consumers held is still to be taken over (on the
    /// first call).
    taking_over: bool,
}

impl<T: Pod + Send> MpmcReader<T> {
    pub(crate) fn new(rx: shmring::MpmcConsumer<T>, ring: Mpmc<T>) -> Self {
        MpmcReader {
            rx,
            _ring: ring,
            recorded: None,
            taking_over: true,
        }
    }
}

impl<T: Pod + Send> Reader for MpmcReader<T> {
    fn resume(&mut self, state: &OutState, ring_id: u64) -> Resume {
        let r = state.resume_shared(ring_id);
        self.recorded = r.resumed.then(|| state.span());
        r
    }

    fn forward(&mut self, timeout: Duration, send: &mut Forward<'_>) -> Result<u64> {
        let rx = &self.rx;
        let mut held = Vec::new();
        if self.taking_over {
            // All at once (at most a lap), so that no new record is made
            // before what was recorded last has been sent again.
            while let Some(slot) = rx.take_over()? {
                held.push(slot);
            }
            // Sent before: again, under the numbers recorded for them.
            let recorded = self.recorded;
            let seq = |pos| recorded.and_then(|span| span.seq_of(pos));
            let (mut again, fresh): (Vec<_>, Vec<_>) =
                held.into_iter().partition(|s| seq(s.position()).is_some());
            again.sort_by_key(MpmcReadSlot::position);
            while !again.is_empty() {
                let n = run_len(&again);
                let batch = Batch {
                    positions: None,
                    resend_from: seq(again[0].position()),
                    count: n as u64,
                };
                send(
                    batch,
                    &mut again[..n].iter().map(|s| bytemuck::bytes_of(&**s)),
                )?;
                again.drain(..n);
            }
            held = fresh;
            self.taking_over = false;
            self.recorded = None;
        }
        if held.is_empty() {
            match rx.read_timeout(timeout) {
                Ok(slot) => held.push(slot),
                Err(e) => return idle(e, timeout),
            }
        }
        while held.len() < TYPED_BATCH {
            match rx.try_read() {
                Some(slot) => held.push(slot),
                None => break,
            }
        }
        let total = held.len() as u64;
        while !held.is_empty() {
            let n = run_len(&held);
            let first = held[0].position();
            send(
                fresh(first..first + n as u64, n as u64),
                &mut held[..n].iter().map(|s| bytemuck::bytes_of(&**s)),
            )?;
            // Released before the next run is recorded over this one.
            held.drain(..n);
        }
        Ok(total)
    }
}

/// How many of `slots`, from the first, hold consecutive positions.
fn run_len<T>(slots: &[MpmcReadSlot<'_, T>]) -> usize {
    let first = slots[0].position();
    slots
        .iter()
        .enumerate()
        .take_while(|(i, s)| s.position() == first.wrapping_add(*i as u64))
        .count()
}

/// What became of one message offered to a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Committed.
    Yes,
    /// The ring stayed full (or the message can never fit it).
    Full,
    /// Not a value of the ring's type: the wrong length.
    Malformed,
}

/// The ring an inbound bridge writes, as a producer.
pub(crate) trait Writer: Send {
    /// Write `payload`, waiting up to `wait` for room.
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written>;
}

pub(crate) struct BytesWriter {
    pub(crate) tx: shmring::bytes::Producer,
    pub(crate) _ring: ByteRing,
}

impl Writer for BytesWriter {
    /// Reserve, copy once, commit.
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written> {
        let len = payload.len();
        if len > self.tx.max_message_len() {
            return Ok(Written::Full);
        }
        let mut grant = match self.tx.reserve_timeout(len, wait) {
            Ok(g) => g,
            Err(SendError::Timeout { .. }) => return Ok(Written::Full),
            Err(e) => return Err(e.into()),
        };
        let mut at = 0;
        for slice in payload.slices() {
            grant[at..at + slice.len()].copy_from_slice(slice);
            at += slice.len();
        }
        grant.commit();
        Ok(Written::Yes)
    }
}

/// A value of `T` from a payload of exactly its size.
fn value<T: Pod>(payload: &zenoh::bytes::ZBytes) -> Option<T> {
    if payload.len() != std::mem::size_of::<T>() {
        return None;
    }
    Some(bytemuck::pod_read_unaligned(&payload.to_bytes()))
}

fn pushed<T>(r: std::result::Result<(), shmring::PushTimeout<T>>) -> Result<Written> {
    match r {
        Ok(()) => Ok(Written::Yes),
        Err(e) if matches!(e.cause(), SendError::Timeout { .. }) => Ok(Written::Full),
        Err(e) => Err(shmring::Error::from(e).into()),
    }
}

pub(crate) struct SpscWriter<T: Pod + Send> {
    pub(crate) tx: shmring::spsc::Producer<T>,
    pub(crate) _ring: Spsc<T>,
}

impl<T: Pod + Send> Writer for SpscWriter<T> {
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written> {
        match value::<T>(payload) {
            Some(v) => pushed(self.tx.push_timeout(v, wait)),
            None => Ok(Written::Malformed),
        }
    }
}

pub(crate) struct MpmcWriter<T: Pod + Send> {
    pub(crate) tx: shmring::MpmcProducer<T>,
    pub(crate) _ring: Mpmc<T>,
}

impl<T: Pod + Send> Writer for MpmcWriter<T> {
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written> {
        match value::<T>(payload) {
            Some(v) => pushed(self.tx.push_timeout(v, wait)),
            None => Ok(Written::Malformed),
        }
    }
}
