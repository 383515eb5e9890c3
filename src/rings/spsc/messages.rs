//! The SPSC ring as messages of bytes (see `rings/messages.rs`): a value
//! is a message, a chunk is one run, and the read position is the count
//! of values popped.

use std::time::Duration;

use bytemuck::Pod;

use super::{Consumer, Producer};
use crate::error::{Error, RecvError, SendError};
use crate::rings::messages::{
    check_value_len, AfterRun, MessageLen, MessageReceiver, MessageSender, Messages, Run,
};

impl<T: Pod + Send> MessageSender for Producer<T> {
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
        let mut chunk = match timeout.is_zero() {
            true => self.try_reserve(1).ok_or(SendError::Full)?,
            false => self.reserve_timeout(1, timeout)?,
        };
        fill(bytemuck::bytes_of_mut(chunk.get_mut(0)));
        chunk.commit(1);
        Ok(())
    }
}

impl<T: Pod + Send> MessageReceiver for Consumer<T> {
    fn released(&self) -> Option<u64> {
        Some(self.popped())
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
        let start = self.popped();
        let chunk = self.read_timeout(max, timeout)?;
        let n = chunk.len();
        let value = |i| bytemuck::bytes_of(chunk.get(i));
        let run = Run::new(start..start + n as u64, n, Messages::Values(&value));
        match each(run) {
            AfterRun::Release => {
                chunk.release_all();
                Ok(n)
            }
            AfterRun::Keep => {
                chunk.release(0);
                Ok(0)
            }
        }
    }

    fn take_over_runs(&mut self, _: &mut dyn FnMut(Run<'_>) -> AfterRun) -> Result<usize, Error> {
        // A restarted consumer takes the role and reads on from `released`.
        Ok(0)
    }
}
