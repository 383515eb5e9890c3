//! The MPMC ring as messages of bytes (see `rings/messages.rs`): a value
//! is a message at its ticket's position. A consumer holds positions of
//! its own, claimed from the shared sequence, so its runs are the
//! consecutive stretches of what it holds, and it keeps a run by holding
//! on to it (in `kept`) until the next call.

use std::time::Duration;

use bytemuck::Pod;

use super::{MpmcConsumer, MpmcProducer, MpmcReadSlot, MpmcStream};
use crate::error::{Error, RecvError, SendError};
use crate::rings::messages::{
    check_value_len, run_len, AfterRun, MessageLen, MessageReceiver, MessageSender, Messages, Run,
};

impl<T: Pod + Send> MessageSender for MpmcProducer<T> {
    fn message_len(&self) -> MessageLen {
        MessageLen::of::<T>()
    }

    fn send_with(
        &mut self,
        len: usize,
        timeout: Duration,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), SendError> {
        check_value_len::<T>(len)?;
        let mut slot = match timeout.is_zero() {
            true => self.try_reserve().ok_or(SendError::Full)?,
            false => self.reserve_timeout(timeout)?,
        };
        fill(bytemuck::bytes_of_mut(&mut *slot));
        slot.commit();
        Ok(())
    }
}

impl<T: Pod + Send> MessageSender for MpmcStream<T> {
    fn message_len(&self) -> MessageLen {
        self.tx.message_len()
    }

    fn send_with(
        &mut self,
        len: usize,
        timeout: Duration,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), SendError> {
        self.tx.send_with(len, timeout, fill)
    }
}

impl<T: Pod + Send> MessageReceiver for MpmcConsumer<T> {
    fn released(&self) -> Option<u64> {
        None
    }

    fn recv_runs(
        &mut self,
        max: usize,
        timeout: Duration,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        let mut held = std::mem::take(&mut self.kept);
        if held.is_empty() {
            let first = self.read_timeout(timeout)?;
            held.push(first.pos);
            std::mem::forget(first); // held in `held` from here on
        }
        while held.len() < max {
            match self.try_claim() {
                Some(pos) => held.push(pos),
                None => break,
            }
        }
        let (released, kept) = self.lend(held, max, usize::MAX, each);
        self.kept = kept;
        Ok(released)
    }

    fn take_over_runs(
        &mut self,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, Error> {
        let mut held = Vec::new();
        // All at once (at most a lap), so that the caller sees every run
        // a dead consumer left before it decides about the first.
        while let Some(slot) = self.take_over()? {
            held.push(slot.pos);
            std::mem::forget(slot);
        }
        let (released, mut kept) = self.lend(held, usize::MAX, 1, each);
        kept.append(&mut self.kept);
        self.kept = kept;
        Ok(released)
    }
}

impl<T: Pod + Send> MpmcConsumer<T> {
    /// Lend the values at `held` (positions this handle holds), oldest
    /// first and at most `max`, in runs of consecutive positions of at
    /// most `longest`; release each run `each` is done with. How many were
    /// released, and the positions still held.
    fn lend(
        &self,
        mut held: Vec<u64>,
        max: usize,
        longest: usize,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> (usize, Vec<u64>) {
        held.sort_unstable();
        let mut slots: Vec<MpmcReadSlot<'_, T>> = held
            .iter()
            .map(|&pos| MpmcReadSlot { rx: self, pos })
            .collect();
        let mut kept = Vec::new();
        let (mut released, mut lent) = (0, 0);
        while lent < held.len().min(max) {
            let n = run_len(&held[lent..]).min(max - lent).min(longest);
            let first = held[lent];
            let value = |i: usize| bytemuck::bytes_of(&*slots[i]);
            let run = Run::new(first..first + n as u64, n, Messages::Values(&value));
            let after = each(run);
            let done = slots.drain(..n);
            match after {
                AfterRun::Release => {
                    drop(done); // the guards release their values
                    released += n;
                }
                AfterRun::Keep => {
                    done.for_each(std::mem::forget);
                    kept.extend_from_slice(&held[lent..lent + n]);
                }
            }
            lent += n;
        }
        // Past `max`, or kept: held, and lent again first next time.
        kept.extend_from_slice(&held[lent..]);
        slots.into_iter().for_each(std::mem::forget);
        (released, kept)
    }
}
