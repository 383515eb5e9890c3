//! Rings of a layout known only at run time (`shmring::runtime`): each
//! opens a ring a typed `Spsc<T>` of that layout made and the other way
//! round, values crossing whole over many laps, for layouts of every
//! alignment a slot can have (value at offset 8, or at its alignment);
//! another layout is refused; lengths are checked; the typed ring's
//! options and recovery hold.

#[macro_use]
mod common;

use std::io::{Read, Seek};
use std::time::Duration;

use common::*;
use shmring::{
    runtime::Spsc as RuntimeSpsc, Broadcast, CreateOptions, Error, Mpmc, Pod, RuntimeBroadcast,
    RuntimeMpmc, Schema, Spsc, SubscriberOptions, TypeLayout,
};

#[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
#[repr(C)]
struct Tick {
    px: f64,
    qty: u32,
    side: u32,
}

/// Aligned past the stamp: the value starts 16 bytes into its slot.
#[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
#[repr(C, align(16))]
struct Wide {
    a: u64,
    b: u64,
    c: [u8; 16],
}

/// `n` distinct values of `T`: bytes that differ per value and per byte.
fn values<T: Pod>(n: usize) -> Vec<T> {
    (0..n)
        .map(|i| {
            let mut v = T::zeroed();
            for (k, b) in bytemuck::bytes_of_mut(&mut v).iter_mut().enumerate() {
                *b = (i * 31 + k * 7 + 1) as u8;
            }
            v
        })
        .collect()
}

/// Values of `T` pushed typed and popped at run time, then pushed at run
/// time and popped typed, over several laps of a ring of 4.
fn round_trip<T: Pod + Send + PartialEq + std::fmt::Debug>(tag: &str) {
    let layout = TypeLayout::of::<T>();
    let wanted = values::<T>(19);
    let name = unique_name(tag);
    let typed = Spsc::<T>::create(&name, 4).unwrap();
    let runtime = RuntimeSpsc::open(&name, layout).unwrap();
    let (mut tx, mut rx) = (typed.producer().unwrap(), runtime.consumer().unwrap());
    let mut out = vec![0u8; layout.size as usize];
    for v in &wanted {
        tx.try_push(*v).unwrap();
        assert!(rx.try_pop(&mut out).unwrap(), "{tag}: popped");
        assert_eq!(out, bytemuck::bytes_of(v), "{tag}: typed to run time");
    }
    assert!(!rx.try_pop(&mut out).unwrap(), "{tag}: nothing more");
    drop((tx, rx, typed, runtime));

    let name = unique_name(tag);
    let runtime = RuntimeSpsc::create(&name, layout, 4).unwrap();
    let typed = Spsc::<T>::open(&name).unwrap();
    let (mut tx, mut rx) = (runtime.producer().unwrap(), typed.consumer().unwrap());
    for v in &wanted {
        tx.try_push(bytemuck::bytes_of(v)).unwrap();
        assert_eq!(rx.try_pop(), Some(*v), "{tag}: run time to typed");
    }
    assert_eq!(rx.try_pop(), None);
}

/// [`round_trip`] on MPMC rings.
fn round_trip_mpmc<T: Pod + Send + PartialEq + std::fmt::Debug>(tag: &str) {
    let layout = TypeLayout::of::<T>();
    let wanted = values::<T>(19);
    let name = unique_name(tag);
    let typed = Mpmc::<T>::create(&name, 4).unwrap();
    let runtime = RuntimeMpmc::open(&name, layout).unwrap();
    let (tx, rx) = (typed.producer().unwrap(), runtime.consumer().unwrap());
    let mut out = vec![0u8; layout.size as usize];
    for v in &wanted {
        tx.try_push(*v).unwrap();
        assert!(rx.try_pop(&mut out).unwrap(), "{tag}: popped");
        assert_eq!(out, bytemuck::bytes_of(v), "{tag}: typed to run time");
    }
    assert!(!rx.try_pop(&mut out).unwrap(), "{tag}: nothing more");
    drop((tx, rx, typed, runtime));

    let name = unique_name(tag);
    let runtime = RuntimeMpmc::create(&name, layout, 4).unwrap();
    let typed = Mpmc::<T>::open(&name).unwrap();
    let (tx, rx) = (runtime.producer().unwrap(), typed.consumer().unwrap());
    for v in &wanted {
        tx.try_push(bytemuck::bytes_of(v)).unwrap();
        assert_eq!(rx.try_pop(), Some(*v), "{tag}: run time to typed");
    }
    assert_eq!(rx.try_pop(), None);
}

#[test]
fn values_cross_whole_between_typed_and_run_time_rings_of_every_alignment() {
    round_trip::<u8>("rt-u8");
    round_trip::<[u32; 3]>("rt-u32x3");
    round_trip::<Tick>("rt-tick");
    round_trip::<[u64; 9]>("rt-u64x9");
    round_trip::<Wide>("rt-wide");
    round_trip_mpmc::<u8>("rt-mpmc-u8");
    round_trip_mpmc::<[u32; 3]>("rt-mpmc-u32x3");
    round_trip_mpmc::<Tick>("rt-mpmc-tick");
    round_trip_mpmc::<Wide>("rt-mpmc-wide");
}

/// Two producers and two consumers on threads: every value arrives once,
/// whole (each value's bytes say which it is in every word).
#[test]
fn many_producers_and_consumers_deliver_every_run_time_value_once() {
    const EACH: u64 = 20_000;
    let name = unique_name("rt-mpmc-threads");
    let ring = RuntimeMpmc::create(&name, TypeLayout::of::<[u64; 3]>(), 8).unwrap();
    let wait = Duration::from_secs(30);
    let got = std::thread::scope(|s| {
        for p in 0..2u64 {
            let tx = ring.producer().unwrap();
            s.spawn(move || {
                for i in 0..EACH {
                    let v = p * EACH + i;
                    tx.push_timeout(bytemuck::bytes_of(&[v, !v, v ^ 0x5a5a]), wait)
                        .unwrap();
                }
            });
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let rx = ring.consumer().unwrap();
                s.spawn(move || {
                    let mut seen = Vec::new();
                    let mut out = [0u8; 24];
                    while rx.pop_timeout(&mut out, Duration::from_millis(200)).is_ok() {
                        let [v, not, x]: [u64; 3] = bytemuck::cast(out);
                        assert_eq!((not, x), (!v, v ^ 0x5a5a), "a torn value");
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<u64> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        all
    });
    assert_eq!(got, (0..2 * EACH).collect::<Vec<_>>());
}

#[test]
fn an_opener_of_another_layout_is_refused() {
    let name = unique_name("rt-mismatch");
    let _typed = Spsc::<Tick>::create(&name, 4).unwrap();
    let tick = TypeLayout::of::<Tick>();
    let others = [
        TypeLayout::new(tick.schema, 16, 4).unwrap(),
        TypeLayout::new(tick.schema, 24, 8).unwrap(),
        TypeLayout::new(Schema::new("Quote", 0).unwrap(), 16, 8).unwrap(),
        TypeLayout::new(Schema::new("Tick", 1).unwrap(), 16, 8).unwrap(),
    ];
    for other in others {
        match RuntimeSpsc::open(&name, other) {
            Err(Error::TypeMismatch { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(RuntimeSpsc::open(&name, tick).is_ok());

    let name = unique_name("rt-mismatch-typed");
    let _runtime = RuntimeSpsc::create(&name, tick, 4).unwrap();
    assert!(matches!(
        Spsc::<[u64; 2]>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(Spsc::<Tick>::open(&name).is_ok());
}

#[test]
fn layouts_no_ring_can_hold_are_refused() {
    let schema = Schema::new("x", 0).unwrap();
    for (size, align) in [(8, 3), (8, 0), (8, 8192), (12, 8)] {
        assert!(
            matches!(
                TypeLayout::new(schema, size, align),
                Err(Error::InvalidLayout { .. })
            ),
            "size {size}, align {align}"
        );
    }
    // Its fields are public: a layout built by hand is checked too.
    let mut odd = TypeLayout::of::<u64>();
    odd.align = 3;
    assert!(matches!(
        RuntimeSpsc::create(&unique_name("rt-odd"), odd, 4),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(
        RuntimeMpmc::open(&unique_name("rt-odd"), odd),
        Err(Error::InvalidLayout { .. })
    ));
}

#[test]
fn values_of_the_wrong_length_are_refused_and_nothing_moves() {
    let name = unique_name("rt-length");
    let ring = RuntimeSpsc::create(&name, TypeLayout::of::<Tick>(), 4).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for len in [0, 15, 17] {
        assert!(matches!(
            tx.try_push(&vec![1; len]),
            Err(Error::WrongLength { expected: 16, .. })
        ));
        assert!(matches!(
            tx.push_timeout(&vec![1; len], Duration::from_millis(1)),
            Err(Error::WrongLength { .. })
        ));
    }
    let mut out = [0u8; 16];
    assert!(!rx.try_pop(&mut out).unwrap(), "nothing was pushed");
    tx.try_push(&[9; 16]).unwrap();
    assert!(matches!(
        rx.try_pop(&mut [0u8; 8]),
        Err(Error::WrongLength { len: 8, .. })
    ));
    assert!(rx.try_pop(&mut out).unwrap(), "the value waited");
    assert_eq!(out, [9; 16]);
}

#[test]
fn full_and_empty_rings_time_out_and_a_restarted_producer_resumes() {
    let name = unique_name("rt-full");
    let ring = RuntimeSpsc::create(&name, TypeLayout::of::<u64>(), 2).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(&1u64.to_ne_bytes()).unwrap();
    tx.try_push(&2u64.to_ne_bytes()).unwrap();
    assert!(matches!(tx.try_push(&3u64.to_ne_bytes()), Err(Error::Full)));
    assert!(matches!(
        tx.push_timeout(&3u64.to_ne_bytes(), Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));
    // A producer handle let go and taken again resumes after the last
    // value committed.
    drop(tx);
    let mut rx = ring.consumer().unwrap();
    let mut out = [0u8; 8];
    rx.pop_timeout(&mut out, Duration::from_secs(1)).unwrap();
    assert_eq!(u64::from_ne_bytes(out), 1);
    let mut tx = ring.producer().unwrap();
    tx.push_timeout(&3u64.to_ne_bytes(), Duration::from_secs(1))
        .unwrap();
    for want in [2u64, 3] {
        rx.pop_timeout(&mut out, Duration::from_secs(1)).unwrap();
        assert_eq!(u64::from_ne_bytes(out), want);
    }
    assert!(matches!(
        rx.pop_timeout(&mut out, Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(rx.popped(), 3);
}

/// `zero_after_use` holds for run-time values too: run without the
/// option, the popped values are still in the segment, so a run that
/// finds them gone found them zeroed.
#[test]
fn zero_after_use_zeroes_popped_run_time_values() {
    const SECRET: u64 = 0x5EC2_E7C0_FFEE_1234;
    for zero in [false, true] {
        let name = unique_name("rt-zero");
        let opts = CreateOptions::new().zero_after_use(zero);
        let layout = TypeLayout::of::<[u64; 3]>();
        let ring = RuntimeSpsc::create_with(&name, layout, 4, &opts).unwrap();
        let mut file = std::fs::File::open(shm_path(&name)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let value = bytemuck::bytes_of(&[SECRET, SECRET + 1, SECRET + 2]).to_vec();
        tx.try_push(&value).unwrap();
        let mut out = vec![0u8; 24];
        assert!(rx.try_pop(&mut out).unwrap());
        assert_eq!(out, value);
        // Written and read in place, then released: zeroed too.
        let mut slot = tx.try_reserve().unwrap();
        slot.bytes_mut().copy_from_slice(&value);
        slot.commit();
        assert_eq!(rx.try_read().unwrap().bytes(), value);
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        let found = bytes.windows(24).any(|w| w == value.as_slice());
        assert_eq!(found, !zero, "zero_after_use({zero})");

        let name = unique_name("rt-zero-mpmc");
        let ring = RuntimeMpmc::create_with(&name, layout, 4, &opts).unwrap();
        let mut file = std::fs::File::open(shm_path(&name)).unwrap();
        let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_push(&value).unwrap();
        assert!(rx.try_pop(&mut out).unwrap());
        let mut slot = tx.try_reserve().unwrap();
        slot.bytes_mut().copy_from_slice(&value);
        slot.commit();
        assert_eq!(rx.try_read().unwrap().bytes(), value);
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        let found = bytes.windows(24).any(|w| w == value.as_slice());
        assert_eq!(found, !zero, "MPMC, zero_after_use({zero})");
    }
}

/// Batches: as many as there is room for (wrapping the ring's end), in
/// order; as many as are ready, up to what the buffer holds; partial
/// values refused.
#[test]
fn batches_go_in_order_across_the_rings_end() {
    let bytes = |vs: &[u64]| -> Vec<u8> { vs.iter().flat_map(|v| v.to_ne_bytes()).collect() };
    let words = |b: &[u8]| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    };
    let name = unique_name("rt-batch");
    let ring = RuntimeSpsc::create(&name, TypeLayout::of::<u64>(), 4).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut out = [0u8; 8];
    for v in 0..3u64 {
        tx.try_push(&v.to_ne_bytes()).unwrap();
        assert!(rx.try_pop(&mut out).unwrap());
    }
    // Head and tail at 3: a batch of 6 wraps, and 4 fit.
    assert_eq!(
        tx.try_push_many(&bytes(&[10, 11, 12, 13, 14, 15])).unwrap(),
        4
    );
    assert_eq!(tx.try_push_many(&bytes(&[14])).unwrap(), 0, "full");
    let mut three = [0u8; 24];
    assert_eq!(rx.try_pop_many(&mut three).unwrap(), 3);
    assert_eq!(words(&three), [10, 11, 12]);
    assert_eq!(rx.try_pop_many(&mut three).unwrap(), 1);
    assert_eq!(words(&three[..8]), [13]);
    assert_eq!(rx.try_pop_many(&mut three).unwrap(), 0, "empty");
    assert_eq!(tx.try_push_many(&[]).unwrap(), 0);
    assert!(matches!(
        tx.try_push_many(&[0; 12]),
        Err(Error::WrongLength { len: 12, .. })
    ));
    assert!(matches!(
        rx.try_pop_many(&mut [0; 4]),
        Err(Error::WrongLength { len: 4, .. })
    ));

    let name = unique_name("rt-batch-mpmc");
    let ring = RuntimeMpmc::create(&name, TypeLayout::of::<u64>(), 4).unwrap();
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(tx.try_push_many(&bytes(&[1, 2, 3, 4, 5])).unwrap(), 4);
    assert_eq!(rx.try_pop_many(&mut three).unwrap(), 3);
    assert_eq!(words(&three), [1, 2, 3]);
    assert_eq!(rx.try_pop_many(&mut three).unwrap(), 1);
    assert_eq!(words(&three[..8]), [4]);
}

/// What dead handles leave, on a run-time MPMC ring: a position a dead
/// producer claimed and never published stalls a polling consumer until
/// `recover` skips it; a value a dead consumer took and never released
/// reaches a waiting run-time consumer, as bytes. (The dead handles are
/// typed ones on the same ring: their guards forgotten, then dropped.)
#[test]
fn dead_handles_leftovers_are_repaired_and_taken_over_as_bytes() {
    let name = unique_name("rt-dead");
    let ring = RuntimeMpmc::create(&name, TypeLayout::of::<u64>(), 8).unwrap();
    let typed = Mpmc::<u64>::open(&name).unwrap();
    // Made first: a new handle repairs what it finds.
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let dead = typed.producer().unwrap();
    std::mem::forget(dead.try_reserve().unwrap()); // position 0, never published
    drop(dead);
    tx.try_push(&5u64.to_ne_bytes()).unwrap(); // position 1
    let mut out = [0u8; 8];
    assert!(!rx.try_pop(&mut out).unwrap(), "stalled behind position 0");
    assert_eq!(ring.stalled_at(), Some(0));
    assert!(ring.recover() >= 1);
    assert!(rx.try_pop(&mut out).unwrap());
    assert_eq!(u64::from_ne_bytes(out), 5);

    tx.try_push(&6u64.to_ne_bytes()).unwrap();
    let dead = typed.consumer().unwrap();
    std::mem::forget(dead.try_read().unwrap()); // taken, never released
    drop(dead);
    rx.pop_timeout(&mut out, Duration::from_secs(10)).unwrap();
    assert_eq!(u64::from_ne_bytes(out), 6, "taken over");
    assert_eq!((ring.pushed(), ring.popped()), (3, 3));
}

/// A run-time producer closes the stream: what it pushed arrives, then
/// `Closed`.
#[test]
fn a_closed_run_time_ring_ends_after_what_was_pushed() {
    let name = unique_name("rt-close");
    let ring = RuntimeSpsc::create(&name, TypeLayout::of::<u64>(), 4).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(&1u64.to_ne_bytes()).unwrap();
    tx.close();
    let mut out = [0u8; 8];
    rx.pop_timeout(&mut out, Duration::from_secs(10)).unwrap();
    assert!(matches!(
        rx.pop_timeout(&mut out, Duration::from_secs(10)),
        Err(Error::Closed { .. })
    ));
    assert_eq!((ring.pushed(), ring.popped()), (1, 1));
    // A layout of no bytes is refused.
    let none = TypeLayout::new(Schema::new("unit", 0).unwrap(), 0, 1).unwrap();
    assert!(matches!(
        RuntimeSpsc::create(&unique_name("rt-unit"), none, 4),
        Err(Error::InvalidLayout { .. })
    ));
}

/// Values of `T` published typed and read by run-time subscribers (one
/// lossless, one lossy), then published at run time and read by a typed
/// subscriber, over several laps of a broadcast ring of 4.
fn round_trip_broadcast<T: Pod + Send + PartialEq + std::fmt::Debug>(tag: &str) {
    let layout = TypeLayout::of::<T>();
    let wanted = values::<T>(19);
    let name = unique_name(tag);
    let typed = Broadcast::<T>::create(&name, 4).unwrap();
    let runtime = RuntimeBroadcast::open(&name, layout).unwrap();
    let mut tx = typed.producer().unwrap();
    let mut a = runtime.subscriber().unwrap();
    let mut b = runtime
        .subscriber_with(&SubscriberOptions::lossy())
        .unwrap();
    let mut out = vec![0u8; layout.size as usize];
    for v in &wanted {
        tx.try_push(*v).unwrap();
        for rx in [&mut a, &mut b] {
            assert!(rx.try_pop(&mut out).unwrap());
            assert_eq!(bytemuck::pod_read_unaligned::<T>(&out), *v);
            assert!(!rx.try_pop(&mut out).unwrap());
        }
    }
    assert_eq!((a.missed(), b.missed()), (0, 0));
    drop((tx, a, b));
    let mut tx = runtime.producer().unwrap();
    let mut rx = typed.subscriber().unwrap();
    for v in &wanted {
        tx.try_push(bytemuck::bytes_of(v)).unwrap();
        assert_eq!(rx.try_pop(), Some(*v));
    }
    assert_eq!(runtime.pushed(), 38);
}

#[test]
fn broadcast_values_cross_whole_between_typed_and_run_time_rings() {
    round_trip_broadcast::<u8>("rt-bcast-u8");
    round_trip_broadcast::<[u32; 3]>("rt-bcast-u32x3");
    round_trip_broadcast::<Tick>("rt-bcast-tick");
    round_trip_broadcast::<[u64; 9]>("rt-bcast-u64x9");
    round_trip_broadcast::<Wide>("rt-bcast-wide");
}

#[test]
fn run_time_subscribers_count_what_they_missed_and_end_at_the_close() {
    let layout = TypeLayout::of::<u64>();
    let name = unique_name("rt-bcast-missed");
    let ring = RuntimeBroadcast::create(&name, layout, 4).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut lossy = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    let mut slow = ring.subscriber().unwrap();
    let mut out = [0u8; 8];
    // The lossless one holds the producer at a ring's worth.
    let four: Vec<u8> = (0..4u64).flat_map(u64::to_ne_bytes).collect();
    assert_eq!(tx.try_push_many(&four).unwrap(), 4);
    assert!(matches!(tx.try_push(&[0; 8]), Err(Error::Full)));
    assert!(matches!(
        tx.push_timeout(&[0; 8], Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));
    let mut got = [0u8; 32];
    assert_eq!(slow.try_pop_many(&mut got).unwrap(), 4);
    assert_eq!(got.to_vec(), four);
    drop(slow);
    // The lossy one alone: the producer laps it, and it says by how much.
    for v in 4..20u64 {
        tx.try_push(&v.to_ne_bytes()).unwrap();
    }
    assert!(lossy.try_pop(&mut out).unwrap());
    let first = u64::from_ne_bytes(out);
    assert!(first > 0);
    assert_eq!(lossy.missed(), first);
    let mut read = 1;
    while lossy.try_pop(&mut out).unwrap() {
        read += 1;
    }
    assert_eq!(read + lossy.missed(), 20);
    assert_eq!((lossy.lag(), lossy.position()), (0, 20));
    // Wrong lengths move nothing.
    assert!(matches!(
        lossy.try_pop(&mut [0; 7]),
        Err(Error::WrongLength {
            len: 7,
            expected: 8
        })
    ));
    assert!(matches!(
        tx.try_push_many(&[0; 12]),
        Err(Error::WrongLength { .. })
    ));
    // Closed: what was published, then `Closed`.
    tx.try_push(&20u64.to_ne_bytes()).unwrap();
    tx.close();
    lossy.pop_timeout(&mut out, Duration::from_secs(5)).unwrap();
    assert_eq!(u64::from_ne_bytes(out), 20);
    assert!(matches!(
        lossy.pop_timeout(&mut out, Duration::from_secs(5)),
        Err(Error::Closed { .. })
    ));
    // Another kind or layout is refused.
    assert!(matches!(
        RuntimeSpsc::open(&name, layout),
        Err(Error::KindMismatch { .. })
    ));
    let other = TypeLayout::of::<u32>();
    assert!(matches!(
        RuntimeBroadcast::open(&name, other),
        Err(Error::TypeMismatch { .. })
    ));
}

/// A lossy subscriber lapped over and over while it copies: every value
/// it returns is whole (each word of a value is the same number), and
/// what it read plus what it missed is how far it moved. Torn copies are
/// the seqlock's to discard; its loom model (`loom-tests`, `runtime`)
/// is what proves the discarding, this checks the real copy's bounds and
/// bookkeeping under contention.
#[test]
fn lapped_run_time_subscribers_never_return_a_torn_value() {
    let layout = TypeLayout::of::<[u64; 8]>();
    let name = unique_name("rt-bcast-torn");
    let ring = RuntimeBroadcast::create(&name, layout, 2).unwrap();
    let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    let mut tx = ring.producer().unwrap();
    const N: u64 = 200_000;
    let writer = std::thread::spawn(move || {
        for v in 1..=N {
            let value: Vec<u8> = [v; 8].iter().flat_map(|w| w.to_ne_bytes()).collect();
            tx.try_push(&value).unwrap();
        }
        tx.close();
    });
    let mut out = [0u8; 64];
    let (mut read, mut last) = (0u64, 0u64);
    loop {
        match rx.pop_timeout(&mut out, Duration::from_secs(30)) {
            Ok(()) => {}
            Err(Error::Closed { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        let words: Vec<u64> = out
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
            .collect();
        assert!(words.iter().all(|w| *w == words[0]), "torn: {words:?}");
        assert!(words[0] > last, "out of order: {} after {last}", words[0]);
        last = words[0];
        read += 1;
    }
    writer.join().unwrap();
    assert_eq!(read + rx.missed(), N);
}

/// In place both ways, over several laps of SPSC and MPMC rings of 4: a
/// value written into its reserved slot reaches a typed consumer whole,
/// and a typed value is read in its slot; a reservation dropped
/// uncommitted publishes nothing (an MPMC one: its position is skipped,
/// never delivered), and a read slot dropped releases its value.
#[test]
fn values_are_written_and_read_in_place() {
    let layout = TypeLayout::of::<Tick>();
    let wanted = values::<Tick>(11);
    let name = unique_name("rt-in-place");
    let typed = Spsc::<Tick>::create(&name, 4).unwrap();
    let ring = RuntimeSpsc::open(&name, layout).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), typed.consumer().unwrap());
    for v in &wanted {
        drop(tx.try_reserve().unwrap()); // not committed
        let mut slot = tx.try_reserve().unwrap();
        assert_eq!(slot.len(), 16);
        slot.bytes_mut().copy_from_slice(bytemuck::bytes_of(v));
        slot.commit();
        assert_eq!(rx.try_pop(), Some(*v));
        assert_eq!(
            rx.try_pop(),
            None,
            "the dropped reservation published nothing"
        );
    }
    drop((tx, rx));
    let (mut tx, mut rx) = (typed.producer().unwrap(), ring.consumer().unwrap());
    for v in &wanted {
        tx.try_push(*v).unwrap();
        let slot = rx.try_read().unwrap();
        assert_eq!(slot.bytes(), bytemuck::bytes_of(v));
        drop(slot); // released
    }
    assert!(rx.try_read().is_none());
    // Full and empty: `Full` at once, `Timeout` after a wait.
    drop((tx, rx));
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for v in &wanted[..4] {
        tx.try_push(bytemuck::bytes_of(v)).unwrap();
    }
    assert!(matches!(tx.try_reserve(), Err(Error::Full)));
    assert!(matches!(
        tx.reserve_timeout(Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));
    for v in &wanted[..4] {
        rx.read_timeout(Duration::from_secs(5))
            .map(|s| assert_eq!(s.bytes(), bytemuck::bytes_of(v)))
            .unwrap();
    }
    assert!(matches!(
        rx.read_timeout(Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));

    let name = unique_name("rt-in-place-mpmc");
    let typed = Mpmc::<Tick>::create(&name, 4).unwrap();
    let ring = RuntimeMpmc::open(&name, layout).unwrap();
    let (tx, rx) = (ring.producer().unwrap(), typed.consumer().unwrap());
    for v in &wanted {
        let mut skipped = tx.try_reserve().unwrap();
        skipped.bytes_mut().fill(0xAB);
        drop(skipped); // not committed: its position is skipped
        let mut slot = tx.reserve_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            slot.bytes_mut().iter().all(|b| *b == 0),
            "zeroed at the claim"
        );
        slot.bytes_mut().copy_from_slice(bytemuck::bytes_of(v));
        slot.commit();
        assert_eq!(rx.try_pop(), Some(*v));
        assert_eq!(rx.try_pop(), None, "the skipped position delivered nothing");
    }
    let (tx, rx) = (typed.producer().unwrap(), ring.consumer().unwrap());
    for v in &wanted {
        tx.try_push(*v).unwrap();
        let slot = rx.try_read().unwrap();
        assert_eq!(slot.bytes(), bytemuck::bytes_of(v));
        slot.release();
    }
    assert!(rx.try_read().is_none());
    assert!(matches!(
        rx.read_timeout(Duration::from_millis(1)),
        Err(Error::Timeout { .. })
    ));
    for v in &wanted[..4] {
        tx.try_push(*v).unwrap();
    }
    let mpmc_tx = ring.producer().unwrap();
    assert!(matches!(mpmc_tx.try_reserve(), Err(Error::Full)));
}

/// The lifecycle's options reach run-time rings: a persisted one outlives
/// its last handle, and `open_or_create` says who created it.
#[test]
fn run_time_rings_persist_and_say_who_created_them() {
    let layout = TypeLayout::of::<u64>();
    let name = unique_name("rt-persist");
    let _unlink = Unlink(name.clone()); // even if an assertion fails first
    let first = RuntimeMpmc::open_or_create(&name, layout, 8).unwrap();
    let second = RuntimeMpmc::open_or_create(&name, layout, 8).unwrap();
    assert!(first.is_creator() && !second.is_creator());
    first.persist();
    first
        .producer()
        .unwrap()
        .try_push(&5u64.to_ne_bytes())
        .unwrap();
    drop((first, second));
    let again = RuntimeMpmc::open(&name, layout).unwrap();
    let mut out = [0u8; 8];
    assert!(again.consumer().unwrap().try_pop(&mut out).unwrap());
    assert_eq!(u64::from_ne_bytes(out), 5, "kept with its name");
    drop(again);
    shmring::remove(&name).unwrap();
    assert!(matches!(
        RuntimeMpmc::open(&name, layout),
        Err(Error::NotFound { .. })
    ));
}
