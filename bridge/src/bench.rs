//! `shmring-bridge bench`: what the bridge costs on top of Zenoh, measured
//! side by side in one run over the same loopback link.
//!
//! Two Zenoh sessions in this process, peers over 127.0.0.1 TCP (scouting
//! off), stand for the two hosts. For each message size:
//!
//! - **throughput**, Zenoh alone: a publisher puts N messages (congestion
//!   control Block), a FIFO subscriber takes them. Bridged: a producer
//!   writes N messages into ring A; `Outbound` publishes them; `Inbound`
//!   writes them into ring B; a consumer reads them. Messages per second
//!   from the first send to the last receipt.
//! - **round trip**, Zenoh alone: ping on one key, an echo on the other
//!   session answers on a second key. Bridged: ring → out → Zenoh → in →
//!   ring → echo → ring → out → Zenoh → in → ring, every hop a bridge
//!   pump thread. Percentiles of one message in flight at a time.
//!
//! Both sides of each comparison use the same sessions and sizes. The
//! outbound bridges run as tasks on one thread, as the command runs one
//! (`Outbound::run`); the inbound ones in Zenoh's callbacks, as always.
//! No thread here spins: Zenoh's publisher blocks in a congested put and
//! its subscriber's reader parks; the rings' writers sleep, and their
//! readers yield a few times and sleep ([`READER_WAIT`] says why). Each
//! throughput figure is the median of alternated runs. The ratio, not the
//! absolute figure, is the claim (the machine is shared).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmring::ByteRing;
use shmring_bridge::{Congestion, InOptions, Inbound, Link, OutOptions, Outbound, Result};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

fn zerr(e: impl std::fmt::Display) -> shmring_bridge::Error {
    shmring_bridge::Error::Zenoh(e.to_string())
}

/// Names for this run's rings and keys.
fn name(tag: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmring-bridge-bench-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn key(tag: &str) -> String {
    name(tag).replace('-', "/")
}

/// Two peers over 127.0.0.1.
fn sessions() -> Result<(Session, Session)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(zerr)?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let a = Link {
        listen: vec![endpoint.clone()],
        ..Link::default()
    }
    .open()?;
    let b = Link {
        connect: vec![endpoint],
        ..Link::default()
    }
    .open()?;
    Ok((a, b))
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| i as u8).collect()
}

fn wait_matching(p: &zenoh::pubsub::Publisher<'_>) -> Result<()> {
    let start = Instant::now();
    while !p.matching_status().wait().map_err(zerr)?.matching() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(zerr("no subscriber matched within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Zenoh alone: messages per second, publisher to FIFO subscriber.
fn zenoh_throughput(a: &Session, b: &Session, size: usize, n: u64) -> Result<f64> {
    let k = key("zt");
    let sub = b
        .declare_subscriber(k.clone())
        .with(zenoh::handlers::FifoChannel::new(1024))
        .wait()
        .map_err(zerr)?;
    let publisher = a
        .declare_publisher(k)
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(zerr)?;
    wait_matching(&publisher)?;
    let msg = payload(size);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let rx = s.spawn(|| -> Result<()> {
            for _ in 0..n {
                let sample = sub.recv().map_err(zerr)?;
                if sample.payload().len() != size {
                    return Err(zerr("a sample of the wrong size"));
                }
            }
            Ok(())
        });
        for _ in 0..n {
            publisher.put(&msg[..]).wait().map_err(zerr)?;
        }
        rx.join().expect("receiver")
    })?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// How the application's ring readers here wait: a few yields, then sleep.
/// Never a spin (Zenoh's threads need the cores), and not a sleep at
/// once either: a reader that sleeps pays the heavy barrier, an IPI to
/// the other core (some microseconds in a VM), and a reader keeping up
/// with a stream empties its ring between most messages. Sleeping at
/// once measured 0.66-0.78x Zenoh's throughput here, where the yields
/// give 0.9-1.4x: the application's choice, not the bridge's cost, so
/// the bench makes the one this crate recommends for a streaming reader
/// on shared cores.
const READER_WAIT: shmring::WaitStrategy = shmring::WaitStrategy::SpinThenSleep {
    spins: 0,
    yields: 4,
};

/// Runs outbound bridges as tasks on one thread (as the command runs
/// one) until `stop` says so.
fn run_out(outs: Vec<Outbound>, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(zerr)?;
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for mut out in outs {
            let mut stop = stop.clone();
            tasks.spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|&s| s).await;
                };
                out.run(stopped).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(zerr)??;
        }
        Ok(())
    })
}

fn in_options(capacity: usize) -> InOptions {
    InOptions {
        capacity,
        full_wait: Duration::from_secs(10),
        state: None,
    }
}

fn out_options(express: bool) -> OutOptions {
    OutOptions {
        congestion: Congestion::Block,
        open_wait: Duration::ZERO,
        express,
        wait: shmring::WaitStrategy::Sleep,
        state: None,
    }
}

/// Ring → bridge → Zenoh → bridge → ring: messages per second.
fn bridge_throughput(a: &Session, b: &Session, size: usize, n: u64) -> Result<f64> {
    let (ring_a, ring_b, k) = (name("a"), name("b"), key("bt"));
    let src = ByteRing::create(&ring_a, 1 << 22)?;
    let dst = ByteRing::create(&ring_b, 1 << 22)?;
    // Delivery runs in Zenoh's callbacks: the inbound side needs no task.
    let _inb = Inbound::new(b, &k, &ring_b, &in_options(1 << 22))?;
    let out = Outbound::new(a, &ring_a, &k, &out_options(false))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let msg = payload(size);
    let mut tx = src.producer()?;
    let mut rx = dst.consumer()?;
    // Like Zenoh's publisher (blocked in a congested put): no spinning on
    // a core Zenoh's threads need.
    tx.set_wait_strategy(shmring::WaitStrategy::Sleep);
    rx.set_wait_strategy(READER_WAIT);
    std::thread::scope(|s| -> Result<f64> {
        let o = s.spawn(|| run_out(vec![out], stopped));
        let mut run = || -> Result<f64> {
            // One message through first: the peers have met and matched.
            tx.send_timeout(&msg, Duration::from_secs(10))?;
            drop(rx.recv_timeout(Duration::from_secs(10))?);
            let start = Instant::now();
            std::thread::scope(|s2| -> Result<()> {
                let c = s2.spawn(|| -> Result<()> {
                    for _ in 0..n {
                        let m = rx.recv_timeout(Duration::from_secs(10))?;
                        if m.len() != size {
                            return Err(zerr("a message of the wrong size"));
                        }
                    }
                    Ok(())
                });
                for _ in 0..n {
                    tx.send_timeout(&msg, Duration::from_secs(10))?;
                }
                c.join().expect("consumer")
            })?;
            Ok(n as f64 / start.elapsed().as_secs_f64())
        };
        let result = run();
        let _ = stop.send(true);
        o.join().expect("outbound bridges")?;
        result
    })
}

/// Percentiles (50, 99, 99.9) of round trips, in microseconds.
fn percentiles(mut rtts: Vec<Duration>) -> [f64; 3] {
    rtts.sort();
    let at = |q: f64| {
        let i = ((rtts.len() as f64 * q) as usize).min(rtts.len() - 1);
        rtts[i].as_secs_f64() * 1e6
    };
    [at(0.5), at(0.99), at(0.999)]
}

/// Zenoh alone: ping on one key, echoed on another.
fn zenoh_round_trip(a: &Session, b: &Session, size: usize, n: u64) -> Result<[f64; 3]> {
    let (ping_k, pong_k) = (key("zping"), key("zpong"));
    let ping_sub = b
        .declare_subscriber(ping_k.clone())
        .with(zenoh::handlers::FifoChannel::new(1024))
        .wait()
        .map_err(zerr)?;
    let pong_sub = a
        .declare_subscriber(pong_k.clone())
        .with(zenoh::handlers::FifoChannel::new(1024))
        .wait()
        .map_err(zerr)?;
    let ping = a
        .declare_publisher(ping_k)
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait()
        .map_err(zerr)?;
    let pong = b
        .declare_publisher(pong_k)
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait()
        .map_err(zerr)?;
    wait_matching(&ping)?;
    wait_matching(&pong)?;
    let msg = payload(size);
    std::thread::scope(|s| -> Result<[f64; 3]> {
        let echo = s.spawn(|| -> Result<()> {
            for _ in 0..n + WARM {
                let sample = ping_sub.recv().map_err(zerr)?;
                pong.put(sample.payload().clone()).wait().map_err(zerr)?;
            }
            Ok(())
        });
        let mut rtts = Vec::with_capacity(n as usize);
        for i in 0..n + WARM {
            let t = Instant::now();
            ping.put(&msg[..]).wait().map_err(zerr)?;
            pong_sub.recv().map_err(zerr)?;
            if i >= WARM {
                rtts.push(t.elapsed());
            }
        }
        echo.join().expect("echo")?;
        Ok(percentiles(rtts))
    })
}

/// Round trips discarded first.
const WARM: u64 = 200;

/// Ring → out → Zenoh → in → ring → echo → ring → out → Zenoh → in → ring.
fn bridge_round_trip(a: &Session, b: &Session, size: usize, n: u64) -> Result<[f64; 3]> {
    let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|t| name(t)).collect();
    let rings: Vec<ByteRing> = names
        .iter()
        .map(|r| ByteRing::create(r, 1 << 20))
        .collect::<shmring::Result<_>>()?;
    let (k1, k2) = (key("bping"), key("bpong"));
    let _in1 = Inbound::new(b, &k1, &names[1], &in_options(1 << 20))?;
    let _in2 = Inbound::new(a, &k2, &names[3], &in_options(1 << 20))?;
    let out1 = Outbound::new(a, &names[0], &k1, &out_options(true))?;
    let out2 = Outbound::new(b, &names[2], &k2, &out_options(true))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let msg = payload(size);
    let (mut ping_tx, mut echo_rx) = (rings[0].producer()?, rings[1].consumer()?);
    let (mut echo_tx, mut pong_rx) = (rings[2].producer()?, rings[3].consumer()?);
    for rx in [&mut echo_rx, &mut pong_rx] {
        rx.set_wait_strategy(READER_WAIT);
    }
    for tx in [&mut ping_tx, &mut echo_tx] {
        tx.set_wait_strategy(shmring::WaitStrategy::Sleep);
    }
    let wait = Duration::from_secs(10);
    std::thread::scope(|s| -> Result<[f64; 3]> {
        let outs = s.spawn(|| run_out(vec![out1, out2], stopped));
        let echo = s.spawn(|| -> Result<()> {
            let mut buf = Vec::new();
            for _ in 0..n + WARM {
                echo_rx.recv_timeout(wait)?.copy_into(&mut buf);
                echo_tx.send_timeout(&buf, wait)?;
            }
            Ok(())
        });
        let mut run = || -> Result<[f64; 3]> {
            let mut rtts = Vec::with_capacity(n as usize);
            for i in 0..n + WARM {
                let t = Instant::now();
                ping_tx.send_timeout(&msg, wait)?;
                drop(pong_rx.recv_timeout(wait)?);
                if i >= WARM {
                    rtts.push(t.elapsed());
                }
            }
            Ok(percentiles(rtts))
        };
        let result = run();
        let _ = stop.send(true);
        echo.join().expect("echo")?;
        outs.join().expect("outbound bridges")?;
        result
    })
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run the comparison and print it.
pub fn run(count: u64, rounds: usize, round_trips: u64, sizes: &[usize]) -> Result<()> {
    let (a, b) = sessions()?;
    println!(
        "shmring-bridge bench: two Zenoh peers over tcp/127.0.0.1, {count} messages per \
         throughput run (the median of {rounds} alternated runs a side), {round_trips} round \
         trips (after {WARM} discarded)"
    );
    println!();
    println!(
        "{:>6}  {:>14} {:>14} {:>7}   {:>24} {:>24} {:>9}",
        "size",
        "zenoh msg/s",
        "bridged msg/s",
        "ratio",
        "zenoh rtt p50/p99/p99.9",
        "bridged rtt p50/p99/p99.9",
        "+p50"
    );
    for &size in sizes {
        // Alternate, so drift on a shared machine hits both alike, and
        // compare the medians: one run is a fraction of a second, and
        // another tenant's burst can halve it.
        let (mut zts, mut bts) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            zts.push(zenoh_throughput(&a, &b, size, count)?);
            bts.push(bridge_throughput(&a, &b, size, count)?);
        }
        let (zt, bt) = (median(zts), median(bts));
        let zr = zenoh_round_trip(&a, &b, size, round_trips)?;
        let br = bridge_round_trip(&a, &b, size, round_trips)?;
        let us = |p: [f64; 3]| format!("{:.1}/{:.1}/{:.1} us", p[0], p[1], p[2]);
        println!(
            "{:>6}  {:>14.0} {:>14.0} {:>6.2}x   {:>24} {:>24} {:>6.1} us",
            size,
            zt,
            bt,
            bt / zt,
            us(zr),
            us(br),
            br[0] - zr[0]
        );
    }
    drop((a, b));
    Ok(())
}
