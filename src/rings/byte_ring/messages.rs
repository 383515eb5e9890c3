//! The byte ring as messages of bytes (see `rings/messages.rs`): what is
//! committed is one run (a batch), and the read position counts bytes of
//! the stream, framing and padding included.

use std::time::Duration;

use super::{ByteConsumer, ByteProducer};
use crate::error::{Error, RecvError, SendError};
use crate::rings::messages::{AfterRun, MessageLen, MessageReceiver, MessageSender, Messages, Run};

impl MessageSender for ByteProducer {
    fn message_len(&self) -> MessageLen {
        MessageLen::AtMost(self.max_message_len())
    }

    fn send_with(
        &mut self,
        len: usize,
        timeout: Duration,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), SendError> {
        let mut grant = match timeout.is_zero() {
            true => self.try_reserve(len)?,
            false => self.reserve_timeout(len, timeout)?,
        };
        fill(&mut grant);
        grant.commit();
        Ok(())
    }
}

impl MessageReceiver for ByteConsumer {
    fn released(&self) -> Option<u64> {
        Some(self.pos)
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
        // Wait for one message, leave it in the ring, and read it again
        // as the start of the batch.
        let first = self.recv_timeout(timeout)?;
        first.keep();
        let batch = self.batch(max)?;
        let n = batch.len();
        let next = |pos| batch.message_at(pos);
        let from = batch.positions().start;
        let run = Run::new(
            batch.positions(),
            n,
            Messages::Records { from, next: &next },
        );
        match each(run) {
            AfterRun::Release => {
                drop(batch);
                Ok(n)
            }
            AfterRun::Keep => {
                batch.keep();
                Ok(0)
            }
        }
    }

    fn take_over_runs(&mut self, _: &mut dyn FnMut(Run<'_>) -> AfterRun) -> Result<usize, Error> {
        // One consumer at a time: a restarted one reads on from `released`.
        Ok(0)
    }
}
