//! One suite, run against every ring kind through the interface they share
//! (`MessageSender`, `MessageReceiver`): each test states a promise of that
//! interface and checks it on SPSC, MPMC and byte rings alike. Messages are
//! 8 bytes (one `u64` of a typed ring).

mod common;

use std::time::Duration;

use common::unique_name;
use shmring::{
    AfterRun, ByteRing, MessageLen, MessageReceiver, MessageSender, Mpmc, RecvError, SendError,
    Spsc,
};

const SHORT: Duration = Duration::from_millis(2);
const LONG: Duration = Duration::from_secs(10);

/// A ring of one kind with a sender and a receiver, and a way to open
/// another receiver (a restarted consumer).
struct Case {
    kind: &'static str,
    tx: Box<dyn MessageSender>,
    rx: Option<Box<dyn MessageReceiver>>,
    reopen: Box<dyn Fn() -> Box<dyn MessageReceiver>>,
}

impl Case {
    fn rx(&mut self) -> &mut dyn MessageReceiver {
        self.rx.as_deref_mut().unwrap()
    }

    /// Everything the receiver lends within `max`, released, as
    /// (position, message) pairs; checks each run's positions.
    fn take(&mut self, max: usize) -> Vec<(u64, u64)> {
        let kind = self.kind;
        let mut got = Vec::new();
        let result = self.rx().recv_runs(max, SHORT, &mut |run| {
            let values: Vec<u64> = run.iter().map(value).collect();
            assert_eq!(values.len(), run.len(), "{kind}: a run's length");
            assert!(!run.is_empty(), "{kind}: a run holds a message");
            let said = format!("{run:?} {:?}", run.iter());
            assert!(
                said.contains(&format!("len: {}", run.len())),
                "{kind}: {said}"
            );
            let span = run.positions();
            assert!(span.start < span.end, "{kind}: an empty span {span:?}");
            let step = (span.end - span.start) / run.len() as u64;
            got.extend((0..).map(|i| span.start + i * step).zip(values));
            AfterRun::Release
        });
        match result {
            Ok(n) => assert_eq!(n, got.len(), "{kind}: the count released"),
            Err(RecvError::Timeout { .. }) => assert!(got.is_empty()),
            Err(e) => panic!("{kind}: {e}"),
        }
        got
    }

    fn send(&mut self, v: u64) -> Result<(), SendError> {
        self.tx.send_bytes(&v.to_le_bytes(), Duration::ZERO)
    }
}

fn value(message: &[u8]) -> u64 {
    u64::from_le_bytes(message.try_into().expect("an 8-byte message"))
}

/// One case per kind, each with room for `capacity` messages.
fn cases(tag: &str, capacity: usize) -> Vec<Case> {
    let spsc = Spsc::<u64>::create(&unique_name(&format!("{tag}-spsc")), capacity).unwrap();
    let mpmc = Mpmc::<u64>::create(&unique_name(&format!("{tag}-mpmc")), capacity).unwrap();
    // 16 bytes of framing and 8 of payload, on a 16-byte grid: 32 each.
    let bytes = ByteRing::create(&unique_name(&format!("{tag}-bytes")), capacity * 32).unwrap();
    vec![
        Case {
            kind: "spsc",
            tx: Box::new(spsc.producer().unwrap()),
            rx: Some(Box::new(spsc.consumer().unwrap())),
            reopen: Box::new(move || Box::new(spsc.consumer().unwrap())),
        },
        Case {
            kind: "mpmc",
            tx: Box::new(mpmc.producer().unwrap()),
            rx: Some(Box::new(mpmc.consumer().unwrap())),
            reopen: Box::new(move || Box::new(mpmc.consumer().unwrap())),
        },
        Case {
            kind: "bytes",
            tx: Box::new(bytes.producer().unwrap()),
            rx: Some(Box::new(bytes.consumer().unwrap())),
            reopen: Box::new(move || Box::new(bytes.consumer().unwrap())),
        },
    ]
}

#[test]
fn messages_arrive_once_in_order_at_rising_positions_over_many_laps() {
    for mut case in cases("order", 4) {
        let kind = case.kind;
        let (mut next, mut expected, mut last) = (0u64, 0u64, None);
        while expected < 100 {
            while next < 100 && case.send(next).is_ok() {
                next += 1;
            }
            for (pos, v) in case.take(3) {
                assert_eq!(v, expected, "{kind}: lost, duplicated or reordered");
                assert!(
                    last.is_none_or(|l| pos > l),
                    "{kind}: position {pos} after {last:?}"
                );
                last = Some(pos);
                expected += 1;
            }
        }
        if let Some(released) = case.rx().released() {
            assert!(released > last.unwrap(), "{kind}: read position {released}");
        }
    }
}

#[test]
fn a_call_lends_at_most_max_messages() {
    for mut case in cases("max", 8) {
        for v in 0..5 {
            case.send(v).unwrap();
        }
        let first: Vec<u64> = case.take(2).into_iter().map(|(_, v)| v).collect();
        assert_eq!(first, [0, 1], "{}", case.kind);
        let rest: Vec<u64> = case.take(8).into_iter().map(|(_, v)| v).collect();
        assert_eq!(rest, [2, 3, 4], "{}", case.kind);
        assert_eq!(
            case.rx()
                .recv_runs(0, LONG, &mut |_| AfterRun::Release)
                .unwrap(),
            0
        );
    }
}

#[test]
fn a_kept_run_is_lent_again_first_and_nothing_after_it_is_lost() {
    for mut case in cases("keep", 8) {
        let kind = case.kind;
        for v in 0..4 {
            case.send(v).unwrap();
        }
        let mut seen = Vec::new();
        let released = case
            .rx()
            .recv_runs(8, LONG, &mut |run| {
                seen.extend(run.iter().map(value));
                AfterRun::Keep
            })
            .unwrap();
        assert_eq!(released, 0, "{kind}: a kept run is not released");
        assert_eq!(seen.first(), Some(&0), "{kind}");
        case.send(4).unwrap();
        let all: Vec<u64> = case.take(8).into_iter().map(|(_, v)| v).collect();
        assert_eq!(all, [0, 1, 2, 3, 4], "{kind}: kept first, then the rest");
    }
}

#[test]
fn what_a_consumer_kept_when_it_went_away_reaches_the_next_one() {
    for mut case in cases("handover", 8) {
        let kind = case.kind;
        for v in 0..3 {
            case.send(v).unwrap();
        }
        case.rx()
            .recv_runs(2, LONG, &mut |_| AfterRun::Keep)
            .unwrap();
        drop(case.rx.take()); // its process is gone: nothing was released
        case.rx = Some((case.reopen)());
        let mut got = Vec::new();
        case.rx()
            .take_over_runs(&mut |run| {
                got.extend(run.iter().map(value));
                AfterRun::Release
            })
            .unwrap();
        got.extend(case.take(8).into_iter().map(|(_, v)| v));
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2], "{kind}: each message once");
    }
}

#[test]
fn a_message_the_ring_cannot_carry_is_refused_before_anything_is_reserved() {
    for mut case in cases("length", 4) {
        let kind = case.kind;
        let refused = match case.tx.message_len() {
            MessageLen::Exactly(n) => {
                assert_eq!(n, 8, "{kind}");
                let e = case.tx.send_bytes(&[1; 7], LONG).unwrap_err();
                assert!(
                    matches!(
                        e,
                        SendError::WrongLength {
                            len: 7,
                            expected: 8
                        }
                    ),
                    "{e}"
                );
                e
            }
            MessageLen::AtMost(max) => {
                let e = case.tx.send_bytes(&vec![1; max + 1], LONG).unwrap_err();
                assert!(matches!(e, SendError::MessageTooLarge { .. }), "{e}");
                e
            }
        };
        assert!(refused.to_string().contains("bytes"), "{kind}: {refused}");
        case.send(9).unwrap();
        let got: Vec<u64> = case.take(8).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, [9], "{kind}: only the message that fits");
    }
}

#[test]
fn a_full_ring_says_full_at_once_and_times_out_after_a_wait() {
    for mut case in cases("full", 2) {
        let kind = case.kind;
        let mut sent = 0;
        while case.send(sent).is_ok() {
            sent += 1;
        }
        assert!(sent >= 2, "{kind}: room for {sent}");
        assert!(matches!(case.send(0), Err(SendError::Full)), "{kind}");
        let e = case.tx.send_bytes(&[0; 8], SHORT).unwrap_err();
        assert!(matches!(e, SendError::Timeout { .. }), "{kind}: {e}");
        assert_eq!(
            case.take(64).len() as u64,
            sent,
            "{kind}: what fitted arrives"
        );
    }
}

#[test]
fn an_empty_ring_times_out() {
    for mut case in cases("empty", 2) {
        let e = case
            .rx()
            .recv_runs(8, SHORT, &mut |_| panic!("nothing to lend"))
            .unwrap_err();
        assert!(matches!(e, RecvError::Timeout { .. }), "{}: {e}", case.kind);
    }
}

#[test]
fn a_fill_that_panics_publishes_nothing() {
    for mut case in cases("panic", 4) {
        let kind = case.kind;
        let tx = &mut case.tx;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tx.send_with(8, LONG, &mut |room| {
                room.fill(0xAB);
                panic!("the fill fails halfway");
            })
        }));
        assert!(result.is_err(), "{kind}");
        case.send(5).unwrap();
        let got: Vec<u64> = case.take(8).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, [5], "{kind}: the abandoned message is not delivered");
    }
}
