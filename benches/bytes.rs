//! Byte messages of 64 B, 1 KiB and 64 KiB between two threads: shmring's
//! byte ring (one message at a time, in batches, and copied out into the
//! reader's buffer as a socket reader gets them, and one at a time with
//! each message zeroed as it is released), a Unix socketpair and
//! a pipe carrying the same messages, and a plain memcpy of the same bytes
//! in one thread (the bandwidth ceiling). Same run, same messages.
//!
//! Work per message, for every transport: the sender copies the message
//! from its own buffer into the transport once; the receiver gets the
//! bytes (in place for shmring, copied into its buffer by the kernel for
//! the socket and the pipe) and checks the sequence number in the first
//! and last 8 bytes.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmring::ByteRing;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];
const RING_BYTES: usize = 1 << 20;

mod common;
use common::name;

/// A message of `size` bytes carrying `seq` at both ends.
fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

fn check(msg: &[u8], seq: u64) {
    let n = msg.len();
    let head = u64::from_le_bytes(msg[..8].try_into().unwrap());
    let tail = u64::from_le_bytes(msg[n - 8..].try_into().unwrap());
    assert!(head == seq && tail == seq, "message {seq} arrived damaged");
}

/// `send` n messages on a new thread while this thread runs `recv`.
fn pair(n: u64, send: impl FnOnce(u64) + Send + 'static, recv: impl FnOnce(u64)) -> Duration {
    let start = Instant::now();
    let sender = std::thread::spawn(move || send(n));
    recv(n);
    sender.join().unwrap();
    start.elapsed()
}

/// How the shmring consumer takes its messages.
#[derive(Clone, Copy, PartialEq)]
enum Recv {
    /// One at a time, in place.
    One,
    /// All committed messages at once, in place.
    Batch,
    /// One at a time, copied out into the consumer's buffer (what a socket
    /// reader gets): every byte crosses to the consumer's core.
    CopyOut,
}

/// shmring's byte ring; `zero`: made with `zero_after_use`, so each
/// message is zeroed as it is released.
fn shmring_pair(n: u64, size: usize, how: Recv, zero: bool) -> Duration {
    let opts = shmring::CreateOptions::new().zero_after_use(zero);
    let ring = ByteRing::create_with(&name("bytes"), RING_BYTES, &opts).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    pair(
        n,
        move |n| {
            let mut src = vec![0xa5u8; size];
            for seq in 0..n {
                stamp(&mut src, seq);
                loop {
                    match tx.try_reserve(size) {
                        Ok(mut grant) => {
                            grant.copy_from_slice(&src);
                            grant.commit();
                            break;
                        }
                        Err(shmring::SendError::Full) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        },
        |n| {
            let mut seq = 0;
            let mut buf = vec![0u8; size];
            while seq < n {
                let before = seq;
                if how == Recv::Batch {
                    let batch = rx.read_batch().unwrap();
                    for msg in &batch {
                        check(msg, seq);
                        seq += 1;
                    }
                } else if let Some(msg) = rx.try_recv().unwrap() {
                    if how == Recv::CopyOut {
                        buf.copy_from_slice(&msg);
                        check(&buf, seq);
                    } else {
                        check(&msg, seq);
                    }
                    seq += 1;
                }
                if seq == before {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// The same messages through a byte stream (socketpair or pipe).
fn stream_pair<W, R>(n: u64, size: usize, mut writer: W, mut reader: R) -> Duration
where
    W: Write + Send + 'static,
    R: Read,
{
    pair(
        n,
        move |n| {
            let mut src = vec![0xa5u8; size];
            for seq in 0..n {
                stamp(&mut src, seq);
                writer.write_all(&src).unwrap();
            }
        },
        |n| {
            let mut buf = vec![0u8; size];
            for seq in 0..n {
                reader.read_exact(&mut buf).unwrap();
                check(&buf, seq);
            }
        },
    )
}

fn memcpy(n: u64, size: usize) -> Duration {
    let mut src = vec![0xa5u8; size];
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    for seq in 0..n {
        stamp(&mut src, seq);
        dst.copy_from_slice(black_box(&src));
        check(black_box(&dst), seq);
    }
    start.elapsed()
}

fn bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("bytes");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (size, label) in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("shmring", label), |b| {
            b.iter_custom(|n| shmring_pair(n, size, Recv::One, false))
        });
        g.bench_function(BenchmarkId::new("shmring_zeroed", label), |b| {
            b.iter_custom(|n| shmring_pair(n, size, Recv::One, true))
        });
        g.bench_function(BenchmarkId::new("shmring_batch", label), |b| {
            b.iter_custom(|n| shmring_pair(n, size, Recv::Batch, false))
        });
        g.bench_function(BenchmarkId::new("shmring_copy_out", label), |b| {
            b.iter_custom(|n| shmring_pair(n, size, Recv::CopyOut, false))
        });
        g.bench_function(BenchmarkId::new("unix_socketpair", label), |b| {
            b.iter_custom(|n| {
                let (w, r) = std::os::unix::net::UnixStream::pair().unwrap();
                stream_pair(n, size, w, r)
            })
        });
        g.bench_function(BenchmarkId::new("pipe", label), |b| {
            b.iter_custom(|n| {
                let (r, w) = nix::unistd::pipe().unwrap();
                stream_pair(n, size, std::fs::File::from(w), std::fs::File::from(r))
            })
        });
        g.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter_custom(|n| memcpy(n, size))
        });
    }
    g.finish();
}

criterion_group!(benches, bytes);
criterion_main!(benches);
