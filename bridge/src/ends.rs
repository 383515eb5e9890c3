//! The ring ends a bridge uses, one vocabulary over the three kinds: an
//! outbound bridge reads batches of messages with their place in the
//! ring; an inbound bridge writes one message at a time. Byte rings carry
//! their messages; `Spsc<T>` and `Mpmc<T>` carry each value as its bytes
//! (`bytemuck`), so a typed ring on one host can feed a typed ring of the
//! same `T` (or a byte ring) on another.

use std::ops::Range;
use std::time::Duration;

use shmring::{bytemuck, ByteRing, Error as RingError, Mpmc, Pod, Spsc};

use crate::Result;

/// Most values an outbound bridge takes from a typed ring at once.
const TYPED_BATCH: usize = 256;

/// What [`Reader::forward`] hands on: the batch's place in the ring (`None`
/// when the ring has no single read position: MPMC), how many messages,
/// and the messages.
pub(crate) type Send<'a> =
    dyn FnMut(Option<Range<u64>>, u64, &mut dyn Iterator<Item = &[u8]>) -> Result<()> + 'a;

/// The ring an outbound bridge reads, as its consumer.
pub(crate) trait Reader: std::marker::Send {
    /// The read position, if the ring has one this consumer owns: what a
    /// restarted bridge compares with its record.
    fn position(&self) -> Option<u64>;

    /// Wait up to `timeout` for messages, hand everything committed to
    /// `send`, and release it once `send` returns `Ok`; how many.
    fn forward(&mut self, timeout: Duration, send: &mut Send<'_>) -> Result<u64>;
}

/// Timeout and a closed ring (its producers finished; a restarted one may
/// come back) are both "nothing now".
fn idle(e: RingError, timeout: Duration) -> Result<u64> {
    match e {
        RingError::Timeout { .. } => Ok(0),
        RingError::Closed { .. } => {
            std::thread::sleep(timeout);
            Ok(0)
        }
        e => Err(e.into()),
    }
}

pub(crate) struct BytesReader {
    pub(crate) ring: ByteRing,
    pub(crate) rx: shmring::bytes::Consumer,
}

impl Reader for BytesReader {
    fn position(&self) -> Option<u64> {
        Some(self.ring.bytes_released())
    }

    fn forward(&mut self, timeout: Duration, send: &mut Send<'_>) -> Result<u64> {
        {
            let batch = self.rx.read_batch()?;
            let span = batch.positions();
            // Padding alone moves the position too: record it.
            if span.start != span.end {
                let n = batch.len() as u64;
                send(Some(span), n, &mut batch.iter())?;
                if n > 0 {
                    return Ok(n);
                }
            }
        }
        match self.rx.recv_timeout(timeout) {
            Ok(msg) => {
                send(Some(msg.positions()), 1, &mut std::iter::once(&*msg))?;
                Ok(1)
            }
            Err(e) => idle(e, timeout),
        }
    }
}

pub(crate) struct SpscReader<T: Pod + std::marker::Send> {
    pub(crate) rx: shmring::spsc::Consumer<T>,
    pub(crate) _ring: Spsc<T>,
}

impl<T: Pod + std::marker::Send> Reader for SpscReader<T> {
    fn position(&self) -> Option<u64> {
        Some(self.rx.popped())
    }

    fn forward(&mut self, timeout: Duration, send: &mut Send<'_>) -> Result<u64> {
        let start = self.rx.popped();
        let chunk = match self.rx.read_chunk_timeout(TYPED_BATCH, timeout) {
            Ok(chunk) => chunk,
            Err(e) => return idle(e, timeout),
        };
        let n = chunk.len() as u64;
        send(
            Some(start..start + n),
            n,
            &mut chunk.iter().map(bytemuck::bytes_of),
        )?;
        chunk.release_all();
        Ok(n)
    }
}

pub(crate) struct MpmcReader<T: Pod + std::marker::Send> {
    pub(crate) rx: shmring::MpmcConsumer<T>,
    pub(crate) _ring: Mpmc<T>,
    pub(crate) buf: Vec<T>,
}

impl<T: Pod + std::marker::Send> Reader for MpmcReader<T> {
    fn position(&self) -> Option<u64> {
        // Consumers of an MPMC ring share one position: none is ours.
        None
    }

    fn forward(&mut self, timeout: Duration, send: &mut Send<'_>) -> Result<u64> {
        self.buf.clear();
        match self.rx.pop_timeout(timeout) {
            Ok(v) => self.buf.push(v),
            Err(e) => return idle(e, timeout),
        }
        while self.buf.len() < TYPED_BATCH {
            match self.rx.try_pop() {
                Some(v) => self.buf.push(v),
                None => break,
            }
        }
        let n = self.buf.len() as u64;
        send(None, n, &mut self.buf.iter().map(bytemuck::bytes_of))?;
        Ok(n)
    }
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
pub(crate) trait Writer: std::marker::Send {
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
            Err(RingError::Timeout { .. }) => return Ok(Written::Full),
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
        Err(e) if matches!(e.cause(), RingError::Timeout { .. }) => Ok(Written::Full),
        Err(e) => Err(RingError::from(e).into()),
    }
}

pub(crate) struct SpscWriter<T: Pod + std::marker::Send> {
    pub(crate) tx: shmring::spsc::Producer<T>,
    pub(crate) _ring: Spsc<T>,
}

impl<T: Pod + std::marker::Send> Writer for SpscWriter<T> {
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written> {
        match value::<T>(payload) {
            Some(v) => pushed(self.tx.push_timeout(v, wait)),
            None => Ok(Written::Malformed),
        }
    }
}

pub(crate) struct MpmcWriter<T: Pod + std::marker::Send> {
    pub(crate) tx: shmring::MpmcProducer<T>,
    pub(crate) _ring: Mpmc<T>,
}

impl<T: Pod + std::marker::Send> Writer for MpmcWriter<T> {
    fn write(&mut self, payload: &zenoh::bytes::ZBytes, wait: Duration) -> Result<Written> {
        match value::<T>(payload) {
            Some(v) => pushed(self.tx.push_timeout(v, wait)),
            None => Ok(Written::Malformed),
        }
    }
}
