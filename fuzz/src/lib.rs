//! The fuzz targets' logic, shared by the cargo-fuzz binaries (nightly,
//! libFuzzer, AddressSanitizer) and by `tests/fuzz_regressions.rs`, which
//! replays every kept input as an ordinary test on stable.
//!
//! Each target takes arbitrary bytes and drives the public API; the ring
//! targets compare every observable result with a simple model. A target
//! returns normally when the library behaved; it panics (a finding) when a
//! result differs from the model or a call panicked.
//!
//! Segments are real (shm_open in /dev/shm), named `shmring-fuzz-<pid>-<n>`
//! and removed when the target returns, also when it panics.

#![allow(clippy::missing_panics_doc)]

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmring::{ByteRing, Mpmc, OpenOptions, RecvError, SendError, Spsc};

/// Removes its segment name on drop.
struct Scratch(String);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Scratch(format!(
            "shmring-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }

    /// Overwrite bytes of the segment through the file, as another process
    /// writing into its mapping would.
    fn poke(&self, offset: u64, bytes: &[u8]) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(self.path()) {
            let len = f.metadata().map_or(0, |m| m.len());
            if len > 0 {
                let offset = offset % len;
                let n = bytes.len().min((len - offset) as usize);
                let _ = f.write_all_at(&bytes[..n], offset);
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// Reads the fuzzer's bytes as a sequence of small numbers.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn quick() -> OpenOptions {
    OpenOptions::new().init_timeout(Duration::ZERO)
}

/// Every way to open a segment, on whatever it holds: each returns `Ok`
/// or a typed error; what opens must then behave (try calls only).
fn open_everything(name: &str) {
    if let Ok(ring) = Spsc::<u64>::open_with(name, &quick()) {
        if let Ok(mut rx) = ring.consumer() {
            let _ = rx.len();
            for _ in 0..4 {
                let _ = rx.try_pop();
            }
            if let Some(chunk) = rx.try_read(usize::MAX) {
                assert!(chunk.len() <= ring.capacity());
            }
        }
        if let Ok(mut tx) = ring.producer() {
            let _ = tx.free();
            let _ = tx.try_push(1);
        }
    }
    if let Ok(ring) = Mpmc::<u64>::open_with(name, &quick()) {
        let rx = ring.consumer().unwrap();
        let tx = ring.producer().unwrap();
        for _ in 0..4 {
            let _ = rx.try_pop();
            let _ = tx.try_push(2);
        }
    }
    if let Ok(ring) = ByteRing::open_with(name, &quick()) {
        if let Ok(mut rx) = ring.consumer() {
            for _ in 0..4 {
                if let Ok(Some(msg)) = rx.try_recv() {
                    assert!(msg.len() <= ring.max_message_len());
                }
            }
            if let Ok(batch) = rx.read_batch() {
                for msg in &batch {
                    assert!(msg.len() <= ring.max_message_len());
                }
            }
        }
        let mut tx = ring.producer().unwrap();
        let _ = tx.try_send(&[3; 40]);
    }
    if let Ok(info) = shmring::inspect_with(name, &quick()) {
        let _ = (info.fill(), info.is_stale());
    }
}

/// `open_header`: the first byte picks raw mode (the rest is the whole
/// file) or patch mode (a valid ring of a kind the second byte picks, then
/// `offset: u16, len: u8, bytes` patches over it).
pub fn open_header(data: &[u8]) {
    let mut input = Input(data);
    let Some(mode) = input.byte() else { return };
    let seg = Scratch::new();
    if mode & 1 == 0 {
        if std::fs::write(seg.path(), input.0).is_err() {
            return;
        }
    } else {
        let kind = input.byte().unwrap_or(0) % 3;
        let ring: Box<dyn std::any::Any> = match kind {
            0 => Box::new(Spsc::<u64>::create(&seg.0, 8).unwrap()),
            1 => Box::new(Mpmc::<u64>::create(&seg.0, 8).unwrap()),
            _ => Box::new(ByteRing::create(&seg.0, 256).unwrap()),
        };
        while let (Some(offset), Some(len)) = (input.u16(), input.byte()) {
            let bytes = input.bytes(len as usize % 16).to_vec();
            seg.poke(u64::from(offset) % 2048, &bytes);
        }
        // Open while the creator still holds it (attached, roles free).
        open_everything(&seg.0);
        drop(ring);
        return;
    }
    open_everything(&seg.0);
}

/// `spsc_ops`: a capacity, then operations on one producer and one
/// consumer, checked against a `VecDeque`.
pub fn spsc_ops(data: &[u8]) {
    let mut input = Input(data);
    let cap = 1usize << (input.byte().unwrap_or(0) % 5);
    let seg = Scratch::new();
    let ring = Spsc::<u32>::create(&seg.0, cap).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut model = VecDeque::new();
    let mut next = 0u32;
    while let Some(op) = input.byte() {
        let arg = usize::from(op >> 3);
        match op & 7 {
            0 | 4 => {
                let r = if op & 7 == 0 {
                    tx.try_push(next)
                } else {
                    tx.push_timeout(next, Duration::ZERO)
                        .map_err(|e| shmring::Full(e.into_inner()))
                };
                if model.len() < cap {
                    assert_eq!(r, Ok(()));
                    model.push_back(next);
                } else {
                    assert_eq!(r, Err(shmring::Full(next)));
                }
                next += 1;
            }
            1 => assert_eq!(rx.try_pop(), model.pop_front()),
            5 => match rx.pop_timeout(Duration::ZERO) {
                Ok(v) => assert_eq!(Some(v), model.pop_front()),
                Err(RecvError::Timeout { .. }) => assert!(model.is_empty()),
                Err(e) => panic!("pop_timeout: {e}"),
            },
            2 => {
                let room = arg.min(cap - model.len());
                match tx.try_reserve(arg) {
                    Some(mut chunk) => {
                        assert_eq!(chunk.len(), room);
                        let filled = chunk.fill_from_iter(next..);
                        let keep = filled.min(arg / 2 + 1);
                        chunk.commit(keep);
                        model.extend(next..next + keep as u32);
                        next += keep as u32;
                    }
                    None => assert_eq!(room, 0),
                }
            }
            3 => {
                let ready = arg.min(model.len());
                match rx.try_read(arg) {
                    Some(chunk) => {
                        assert_eq!(chunk.len(), ready);
                        let seen: Vec<u32> = chunk.iter().copied().collect();
                        assert!(seen.iter().eq(model.iter().take(seen.len())));
                        let n = seen.len().min(arg / 2 + 1);
                        chunk.release(n);
                        model.drain(..n);
                    }
                    None => assert_eq!(ready, 0),
                }
            }
            _ => {
                assert_eq!(rx.len().unwrap(), model.len());
                assert_eq!(tx.free().unwrap(), cap - model.len());
            }
        }
    }
}

/// `mpmc_ops`: a capacity, then operations through two producer and two
/// consumer handles, checked against a `VecDeque`.
pub fn mpmc_ops(data: &[u8]) {
    let mut input = Input(data);
    let cap = 1usize << (input.byte().unwrap_or(0) % 5);
    let seg = Scratch::new();
    let ring = Mpmc::<u32>::create(&seg.0, cap).unwrap();
    let txs = [ring.producer().unwrap(), ring.producer().unwrap()];
    let rxs = [ring.consumer().unwrap(), ring.consumer().unwrap()];
    let mut model = VecDeque::new();
    let mut next = 0u32;
    while let Some(op) = input.byte() {
        let (tx, rx) = (&txs[usize::from(op >> 7)], &rxs[usize::from(op >> 6 & 1)]);
        match op & 7 {
            0 | 1 => {
                let r = if op & 7 == 0 {
                    tx.try_push(next)
                } else {
                    tx.push_timeout(next, Duration::ZERO)
                        .map_err(|e| shmring::Full(e.into_inner()))
                };
                if model.len() < cap {
                    assert_eq!(r, Ok(()));
                    model.push_back(next);
                } else {
                    assert_eq!(r, Err(shmring::Full(next)));
                }
                next += 1;
            }
            2 => match tx.try_reserve() {
                Some(mut slot) => {
                    assert!(model.len() < cap);
                    assert_eq!(*slot, 0, "a claimed slot is zeroed");
                    *slot = next;
                    slot.commit();
                    model.push_back(next);
                    next += 1;
                }
                None => assert_eq!(model.len(), cap),
            },
            3 => assert_eq!(rx.try_pop(), model.pop_front()),
            4 => match rx.pop_timeout(Duration::ZERO) {
                Ok(v) => assert_eq!(Some(v), model.pop_front()),
                Err(RecvError::Timeout { .. }) => assert!(model.is_empty()),
                Err(e) => panic!("pop_timeout: {e}"),
            },
            5 => match rx.try_read() {
                Some(slot) => assert_eq!(Some(*slot), model.pop_front()),
                None => assert!(model.is_empty()),
            },
            _ => {
                assert_eq!((ring.pushed() - ring.popped()) as usize, model.len());
                assert_eq!(ring.stalled_at(), None);
            }
        }
    }
}

/// The byte ring's framing, restated independently for the model: a
/// record is 16 bytes of header plus the payload rounded up to 16.
fn record_len(len: usize) -> u64 {
    16 + len.next_multiple_of(16) as u64
}

/// The bytes of message `seq`.
fn body(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(7) ^ i as u8)
        .collect()
}

/// `bytes_ops`: a capacity, then sends, reservations (committed whole,
/// shrunk or aborted), receives and batches, checked against a model of
/// the messages and of the ring's byte positions (so `Full` is predicted
/// exactly, padding included).
pub fn bytes_ops(data: &[u8]) {
    let mut input = Input(data);
    let cap = 64u64 << (input.byte().unwrap_or(0) % 5);
    let seg = Scratch::new();
    let ring = ByteRing::create(&seg.0, cap as usize).unwrap();
    assert_eq!(ring.capacity() as u64, cap);
    let max = ring.max_message_len();
    assert_eq!(max as u64, cap / 2 - 16);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let (mut tail, mut head) = (0u64, 0u64);
    let mut model: VecDeque<(Vec<u8>, u64)> = VecDeque::new(); // message, end position
    let mut seq = 0u32;
    while let Some(op) = input.byte() {
        match op & 3 {
            0 => {
                // Send (or reserve) a message of a length the next byte picks.
                let len = usize::from(input.byte().unwrap_or(0)) * (max + 2) / 256;
                let how = op >> 2 & 3;
                let need = record_len(len);
                let to_end = cap - tail % cap;
                let total = if need <= to_end { need } else { to_end + need };
                let fits = tail + total - head <= cap;
                let msg = body(seq, len);
                let r = if how == 0 {
                    tx.try_send(&msg)
                } else {
                    tx.try_reserve(len).map(|mut grant| {
                        grant.copy_from_slice(&msg);
                        match how {
                            1 => grant.commit(),
                            2 => grant.commit_len(len / 2),
                            _ => drop(grant),
                        }
                    })
                };
                match r {
                    Err(SendError::MessageTooLarge { len: l, max: m }) => {
                        assert!(len > max && l == len && m == max)
                    }
                    Err(SendError::Full) => assert!(len <= max && !fits, "full with room"),
                    Ok(()) => {
                        assert!(len <= max && fits, "sent without room");
                        tail += total;
                        let start = tail - need;
                        match how {
                            0 | 1 => model.push_back((msg, tail)),
                            2 => model
                                .push_back((msg[..len / 2].to_vec(), start + record_len(len / 2))),
                            _ => {}
                        }
                        seq += 1;
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            1 => match rx.try_recv().unwrap() {
                Some(msg) => {
                    let (want, end) = model.pop_front().expect("a message from nowhere");
                    assert_eq!(&*msg, &want[..]);
                    drop(msg);
                    head = end;
                }
                None => {
                    assert!(model.is_empty());
                    head = tail; // trailing padding is released at once
                }
            },
            2 => {
                let batch = rx.read_batch().unwrap();
                assert_eq!(batch.len(), model.len());
                for (msg, (want, _)) in batch.iter().zip(&model) {
                    assert_eq!(msg, &want[..]);
                }
                drop(batch);
                // Everything up to the tail is committed, so the batch ran to
                // it, padding included, and released it all.
                model.clear();
                head = tail;
            }
            _ => {
                assert_eq!(ring.bytes_written(), tail);
                assert_eq!(ring.bytes_released(), head);
                assert_eq!(rx.pending().unwrap(), tail - head);
            }
        }
    }
}

/// `hostile_peer`: a ring of the kind the first byte picks (252 and up: a
/// broadcast ring, whose subscriber table a peer can scribble on too; 246
/// to 251: an SPSC, MPMC or broadcast ring of a run-time layout, the C and
/// Python bindings' rings; else its remainder by 3), then operations interleaved with writes of
/// arbitrary bytes anywhere in the segment (`0xff, offset: u16, len,
/// bytes`). Calls must return data or a typed error, stay in bounds and
/// return; nothing is compared.
pub fn hostile_peer(data: &[u8]) {
    let mut input = Input(data);
    let first = input.byte().unwrap_or(0);
    if first >= 252 {
        return hostile_broadcast_peer(input);
    }
    if first >= 246 {
        return hostile_runtime_peer(first - 246, input);
    }
    let kind = first % 3;
    let seg = Scratch::new();
    let poke = |input: &mut Input<'_>| {
        if let (Some(offset), Some(len)) = (input.u16(), input.byte()) {
            let bytes = input.bytes(usize::from(len % 32)).to_vec();
            seg.poke(u64::from(offset), &bytes);
        }
    };
    match kind {
        0 => {
            let ring = Spsc::<u64>::create(&seg.0, 8).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            while let Some(op) = input.byte() {
                match op % 8 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_push(u64::from(op))),
                    2 => drop(rx.try_pop()),
                    3 => {
                        if let Some(mut c) = tx.try_reserve(usize::from(op)) {
                            assert!(c.len() <= ring.capacity());
                            let n = c.fill_from_iter(0..);
                            c.commit(n);
                        }
                    }
                    4 => {
                        if let Some(c) = rx.try_read(usize::from(op)) {
                            assert!(c.len() <= ring.capacity());
                            let n = c.iter().count();
                            c.release(n);
                        }
                    }
                    5 => drop(rx.pop_timeout(Duration::from_micros(50))),
                    6 => drop(tx.push_timeout(7, Duration::from_micros(50))),
                    _ => drop((rx.len(), tx.free(), rx.is_empty())),
                }
            }
        }
        1 => {
            let ring = Mpmc::<u64>::create(&seg.0, 8).unwrap();
            let tx = ring.producer().unwrap();
            let rx = ring.consumer().unwrap();
            while let Some(op) = input.byte() {
                match op % 7 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_push(u64::from(op))),
                    2 => drop(rx.try_pop()),
                    3 => drop(tx.try_reserve().map(|mut s| {
                        *s = 5;
                        s.commit()
                    })),
                    4 => drop(rx.try_read().map(|s| *s)),
                    5 => drop(rx.pop_timeout(Duration::from_micros(50))),
                    _ => drop((ring.stalled_at(), tx.push_timeout(1, Duration::ZERO))),
                }
            }
        }
        _ => {
            let ring = ByteRing::create(&seg.0, 256).unwrap();
            let max = ring.max_message_len();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            while let Some(op) = input.byte() {
                match op % 7 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_send(&vec![op; usize::from(op) % (max + 1)])),
                    2 => {
                        if let Ok(Some(msg)) = rx.try_recv() {
                            assert!(msg.len() <= max);
                        }
                    }
                    3 => {
                        if let Ok(batch) = rx.read_batch() {
                            assert!(batch.iter().all(|m| m.len() <= max));
                        }
                    }
                    4 => {
                        if let Ok(mut g) = tx.try_reserve(usize::from(op) % (max + 1)) {
                            g.fill(op);
                            if op & 1 == 0 {
                                let half = g.len() / 2;
                                g.commit_len(half);
                            }
                        }
                    }
                    5 => drop(rx.recv_timeout(Duration::from_micros(50)).map(|m| m.len())),
                    _ => drop((rx.pending(), tx.send_timeout(&[1; 8], Duration::ZERO))),
                }
            }
        }
    }
}

/// `hostile_peer` on a broadcast ring: a producer, a lossless and a lossy
/// subscriber, joins and leaves under identities, and inspection (which
/// reads the subscriber table), interleaved with arbitrary writes.
/// The hostile peer against rings of a layout known at run time (what C
/// and Python use): an SPSC, MPMC or broadcast ring of 24-byte values,
/// every copying and lending call, with the peer's pokes between them.
/// Every value returned or lent is exactly the layout's size.
fn hostile_runtime_peer(which: u8, mut input: Input<'_>) {
    use shmring::{
        RuntimeBroadcast, RuntimeMpmc, RuntimeSpsc, Schema, SubscriberOptions, TypeLayout,
    };
    const SIZE: usize = 24;
    let layout = TypeLayout::new(Schema::new("triple", 0).unwrap(), SIZE as u32, 8).unwrap();
    let seg = Scratch::new();
    let poke = |input: &mut Input<'_>| {
        if let (Some(offset), Some(len)) = (input.u16(), input.byte()) {
            let bytes = input.bytes(usize::from(len % 32)).to_vec();
            seg.poke(u64::from(offset), &bytes);
        }
    };
    let wait = Duration::from_micros(50);
    let (mut one, mut many) = ([0u8; SIZE], [0u8; SIZE * 5]);
    match which % 3 {
        0 => {
            let ring = RuntimeSpsc::create(&seg.0, layout, 8).unwrap();
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            while let Some(op) = input.byte() {
                match op % 8 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_push(&[op; SIZE])),
                    2 => drop(rx.try_pop(&mut one)),
                    3 => drop(tx.try_push_many(&many[..SIZE * usize::from(op % 6)])),
                    4 => {
                        let n = rx.try_pop_many(&mut many).unwrap();
                        assert!(n <= 5);
                    }
                    5 => {
                        if let Ok(mut slot) = tx.try_reserve() {
                            slot.bytes_mut().fill(op);
                            if op & 16 == 0 {
                                slot.commit();
                            }
                        }
                    }
                    6 => {
                        if let Some(slot) = rx.try_read() {
                            assert_eq!(slot.bytes().len(), SIZE);
                            std::hint::black_box(slot.bytes().iter().fold(0u8, |a, b| a ^ b));
                        }
                    }
                    _ => drop((rx.pop_timeout(&mut one, wait), tx.push_timeout(&one, wait))),
                }
            }
        }
        1 => {
            let ring = RuntimeMpmc::create(&seg.0, layout, 8).unwrap();
            let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            while let Some(op) = input.byte() {
                match op % 8 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_push(&[op; SIZE])),
                    2 => drop(rx.try_pop(&mut one)),
                    3 => drop(tx.try_push_many(&many[..SIZE * usize::from(op % 6)])),
                    4 => drop(rx.try_pop_many(&mut many)),
                    5 => {
                        if let Ok(mut slot) = tx.try_reserve() {
                            slot.bytes_mut().fill(op);
                            if op & 16 == 0 {
                                slot.commit();
                            }
                        }
                    }
                    6 => {
                        if let Some(slot) = rx.try_read() {
                            assert_eq!(slot.bytes().len(), SIZE);
                        }
                    }
                    _ => drop((
                        rx.pop_timeout(&mut one, wait),
                        ring.recover(),
                        ring.stalled_at(),
                    )),
                }
            }
        }
        _ => {
            let ring = RuntimeBroadcast::create(&seg.0, layout, 8).unwrap();
            let mut tx = ring.producer().unwrap();
            let lossless = SubscriberOptions::lossless().demote_after(Some(Duration::ZERO));
            let mut a = ring.subscriber_with(&lossless).unwrap();
            let mut b = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
            while let Some(op) = input.byte() {
                match op % 7 {
                    0 => poke(&mut input),
                    1 => drop(tx.try_push(&[op; SIZE])),
                    2 => drop(a.try_pop(&mut one)),
                    3 => drop(b.try_pop_many(&mut many)),
                    4 => drop(tx.try_push_many(&many[..SIZE * usize::from(op % 6)])),
                    5 => drop(b.pop_timeout(&mut one, wait)),
                    _ => drop((tx.push_timeout(&one, wait), a.lag(), b.missed())),
                }
            }
        }
    }
}

fn hostile_broadcast_peer(mut input: Input<'_>) {
    use shmring::{Broadcast, Start, SubscriberOptions};
    let seg = Scratch::new();
    let ring = Broadcast::<u64>::create(&seg.0, 8).unwrap();
    let mut tx = ring.producer().unwrap();
    let lossless = SubscriberOptions::lossless().demote_after(Some(Duration::ZERO));
    let mut a = ring.subscriber_with(&lossless).unwrap();
    let mut b = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    let mut joined = Vec::new();
    while let Some(op) = input.byte() {
        match op % 11 {
            0 => {
                if let (Some(offset), Some(len)) = (input.u16(), input.byte()) {
                    let bytes = input.bytes(usize::from(len % 32)).to_vec();
                    seg.poke(u64::from(offset), &bytes);
                }
            }
            1 => drop(tx.try_push(u64::from(op))),
            2 => drop(a.try_pop()),
            3 => drop(b.try_pop()),
            4 => drop(a.pop_timeout(Duration::from_micros(50))),
            5 => drop(tx.push_timeout(7, Duration::from_micros(50))),
            6 => {
                let start = match op >> 4 {
                    0 => Start::Next,
                    1 => Start::Oldest,
                    n => Start::At(u64::from(n)),
                };
                let opts = SubscriberOptions::lossy()
                    .identity(u64::from(op & 3))
                    .start(start);
                if let Ok(s) = ring.subscriber_with(&opts) {
                    joined.push(s);
                }
            }
            7 => drop(joined.pop()),
            8 => {
                if let Some(mut chunk) = tx.try_reserve(usize::from(op >> 4) + 1) {
                    let n = chunk.fill_from_iter(0..u64::from(op));
                    chunk.commit(n / 2 + usize::from(op & 1) * (n - n / 2));
                }
            }
            9 => {
                let rx = if op & 1 == 0 { &mut a } else { &mut b };
                if let Some(chunk) = rx.try_read(usize::from(op >> 4) + 1) {
                    assert!(chunk.len() <= 8);
                    let sum: u64 = chunk.iter().fold(0, u64::wrapping_add);
                    std::hint::black_box(sum);
                    if let Err(overrun) = chunk.release_all() {
                        assert!(overrun.whole() <= 8);
                    }
                }
            }
            _ => {
                if let Ok(info) = shmring::inspect(&seg.0) {
                    assert!(info.subscribers.len() <= 64);
                }
                std::hint::black_box((a.lag(), b.missed(), a.policy()));
            }
        }
    }
}
