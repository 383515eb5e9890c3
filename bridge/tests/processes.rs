//! The bridge as it is deployed: `shmring-bridge out` and `in` processes,
//! Zenoh over 127.0.0.1 between them (scouting off, explicit endpoints),
//! and the rings' producer and consumer in processes of their own or in
//! this one. Killing and restarting bridges mid-stream, the delivery
//! guarantees the crate docs state are checked against what the consumer
//! actually got and what the bridges' state files count.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, unique};
use shmring::{ByteRing, Mpmc};
use shmring_bridge::{Link, OutOptions, Outbound};
use shmring_bridge_state::{
    locate, locator_path, read, Direction, InSnapshot, OutSnapshot, Snapshot,
};

const PATIENCE: Duration = Duration::from_secs(120);
const CHILD: &str = "SHMRING_BRIDGE_TEST_CHILD";

/// Message `i`: its number, then 0..1500 more bytes (mixed sizes), each
/// derived from `i`, so a consumer can check every byte.
fn message(i: u64) -> Vec<u8> {
    let extra = (i.wrapping_mul(7919) % 1500) as usize;
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..extra).map(|k| (i as usize + k) as u8));
    m
}

/// A typed value of 1 KiB: value `i` has word `k` = `i * (k + 1) ^ k`.
type Value = [u64; 128];

fn value(i: u64) -> Value {
    std::array::from_fn(|k| i.wrapping_mul(k as u64 + 1) ^ k as u64)
}

fn number(m: &[u8]) -> u64 {
    let i = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(m, &message(i)[..], "message {i} arrived damaged");
    i
}

// Children: this test binary run again, dispatched before the harness.
// SAFETY (what ctor(unsafe) asks): it runs before main, using only std
// and the ring, none of which needs the runtime's setup beyond what the
// library does lazily; nothing else runs yet, so it races with nothing.
#[ctor::ctor(unsafe)]
fn dispatch_child() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let arg = |k: &str| std::env::var(k).unwrap();
    let ring = arg("RING");
    let n: u64 = arg("COUNT").parse().unwrap();
    match role.as_str() {
        "producer" => {
            let r = ByteRing::open_or_create(&ring, 1 << 20).unwrap();
            let mut tx = r.producer().unwrap();
            for i in 0..n {
                tx.send_timeout(&message(i), PATIENCE).unwrap();
            }
            tx.close();
        }
        "mpmc-out" => {
            // An outbound bridge of an MPMC ring, as a service embeds it.
            let link = Link {
                connect: vec![arg("ENDPOINT")],
                ..Link::default()
            };
            let session = link.open().unwrap();
            let opts = OutOptions {
                state: Some(arg("STATE").into()),
                ..OutOptions::default()
            };
            let mut out = Outbound::mpmc::<Value>(&session, &ring, &arg("KEY"), &opts).unwrap();
            println!("mpmc out ready");
            // Awaited, as a service runs it on its runtime (until killed).
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(out.run(std::future::pending())).unwrap();
        }
        "consumer" => {
            let r = ByteRing::open_or_create(&ring, 1 << 20).unwrap();
            let mut rx = r.consumer().unwrap();
            for want in 0..n {
                let msg = rx.recv_timeout(PATIENCE).unwrap();
                assert_eq!(number(&msg), want, "out of order, lost or duplicated");
            }
            println!("received {n}");
        }
        other => panic!("unknown child {other}"),
    }
    std::process::exit(0);
}

/// Everything a test made, removed when it ends, passed or failed: its
/// children killed, its rings' names and its state files removed.
struct Scene {
    children: Vec<Child>,
    /// The bridges' stdout, kept open so they can print their counters.
    outputs: Vec<BufReader<ChildStdout>>,
    files: Vec<PathBuf>,
}

impl Scene {
    fn new() -> Scene {
        Scene {
            children: Vec::new(),
            outputs: Vec::new(),
            files: Vec::new(),
        }
    }

    fn ring(&mut self, tag: &str) -> String {
        let name = unique(tag);
        self.files.push(Path::new("/dev/shm").join(&name));
        name
    }

    fn state(&mut self, tag: &str) -> PathBuf {
        let path = Path::new("/dev/shm").join(unique(tag) + ".state");
        self.files.push(path.clone());
        path
    }

    /// Start `shmring-bridge ARGS` and wait for its "ready" line.
    fn bridge(&mut self, args: &[&str]) -> usize {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmring-bridge"));
        cmd.args(args);
        self.start_ready(cmd, &format!("bridge {args:?}"))
    }

    /// Start this binary as child `role` with `env`, and wait for its
    /// "ready" line.
    fn ready_child(&mut self, role: &str, env: &[(&str, &str)]) -> usize {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(CHILD, role)
            .env("COUNT", "0")
            .envs(env.iter().copied());
        self.start_ready(cmd, &format!("child {role}"))
    }

    /// Spawn `cmd` with its stdout piped and kept, and wait for the line
    /// that says it is ready.
    fn start_ready(&mut self, mut cmd: Command, what: &str) -> usize {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        self.children.push(child);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("ready"), "{what} said {line:?}");
        self.outputs.push(out);
        self.children.len() - 1
    }

    /// Stop (SIGSTOP) or continue (SIGCONT) child `i`.
    fn pause(&mut self, i: usize, paused: bool) {
        use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
        let pid = nix::unistd::Pid::from_raw(self.children[i].id() as i32);
        nix::sys::signal::kill(pid, if paused { SIGSTOP } else { SIGCONT }).unwrap();
    }

    fn child(&mut self, role: &str, ring: &str, count: u64) -> usize {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, role)
            .env("RING", ring)
            .env("COUNT", count.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    fn kill(&mut self, i: usize) {
        let c = &mut self.children[i];
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM child `i` (a bridge: it stops cleanly, and exits 130 as
    /// an interrupted command, like `shmring`) and check its exit.
    fn stop(&mut self, i: usize) {
        let c = &mut self.children[i];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = c.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "a bridge failed to stop cleanly: {status}"
        );
    }

    fn wait_success(&mut self, i: usize) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.children[i].try_wait().unwrap() {
                assert!(status.success(), "child {i} failed: {status}");
                return;
            }
            assert!(start.elapsed() < PATIENCE, "child {i} never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn out_state(path: &Path) -> OutSnapshot {
    match read(path).unwrap() {
        Some(Snapshot::Out(s)) => s,
        other => panic!("{other:?}"),
    }
}

fn in_state(path: &Path) -> InSnapshot {
    match read(path).unwrap() {
        Some(Snapshot::In(s)) => s,
        other => panic!("{other:?}"),
    }
}

/// Poll `cond` until it holds; panic with `what` after PATIENCE.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Bridges {
    ring_a: String,
    ring_b: String,
    out_state: PathBuf,
    in_state: PathBuf,
    out_args: Vec<String>,
    in_args: Vec<String>,
}

fn bridges(scene: &mut Scene, congestion: &str) -> Bridges {
    let port = free_port();
    let key = unique("key").replace('-', "/");
    let (ring_a, ring_b) = (scene.ring("a"), scene.ring("b"));
    let (out_state, in_state) = (scene.state("out"), scene.state("in"));
    // Where each bridge says its state is (kept elsewhere than the default).
    scene.files.push(locator_path(&ring_a, Direction::Out));
    scene.files.push(locator_path(&ring_b, Direction::In));
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let in_args = [
        "in",
        "--key",
        &key,
        "--ring",
        &ring_b,
        "--listen",
        &endpoint,
        "--state",
        in_state.to_str().unwrap(),
        "--full-wait-ms",
        "5000",
    ]
    .map(String::from)
    .to_vec();
    let out_args = [
        "out",
        "--ring",
        &ring_a,
        "--key",
        &key,
        "--connect",
        &endpoint,
        "--congestion",
        congestion,
        "--state",
        out_state.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    Bridges {
        ring_a,
        ring_b,
        out_state,
        in_state,
        out_args,
        in_args,
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_hundred_thousand_messages_cross_between_processes_once_in_order_byte_for_byte() {
    const N: u64 = 100_000;
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "block");
    let consumer = scene.child("consumer", &b.ring_b, N);
    let inb = scene.bridge(&args(&b.in_args));
    let producer = scene.child("producer", &b.ring_a, N);
    let out = scene.bridge(&args(&b.out_args));
    scene.wait_success(producer);
    scene.wait_success(consumer);
    scene.stop(out);
    scene.stop(inb);
    // Each bridge left a locator, so `shmring stat` finds its counters.
    assert_eq!(
        locate(&b.ring_a, Direction::Out).unwrap(),
        Some(b.out_state.clone())
    );
    assert_eq!(
        locate(&b.ring_b, Direction::In).unwrap(),
        Some(b.in_state.clone())
    );
    let (o, i) = (out_state(&b.out_state), in_state(&b.in_state));
    assert_eq!((o.sent, o.next_seq), (N, N), "{o:?}");
    let t = i.totals();
    assert_eq!(
        (t.delivered, t.lost, t.duplicates, t.dropped_full),
        (N, 0, 0, 0),
        "{i:?}"
    );
    // Both rings' users are gone: their names went with them.
    assert!(!Path::new("/dev/shm").join(&b.ring_a).exists());
    assert!(!Path::new("/dev/shm").join(&b.ring_b).exists());
}

/// CPU time child `i` has used, all its threads: utime and stime of
/// /proc/PID/stat, in clock ticks of 10 ms (USER_HZ, fixed at 100 on
/// Linux's x86 and arm ABIs).
fn cpu_time(scene: &Scene, i: usize) -> Duration {
    let pid = scene.children[i].id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name (which may hold spaces), field 3 onwards.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Bridges of idle rings cost no CPU: the outbound one awaits its ring as
/// a task (no thread blocked on the ring for it, none spinning), the
/// inbound one waits for Zenoh's callbacks. A second of idleness costs
/// each well under 100 ms (a spinning thread would cost the whole
/// second); the next message then crosses at once.
#[test]
fn idle_bridges_cost_no_cpu_and_carry_the_next_message() {
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "block");
    let inb = scene.bridge(&args(&b.in_args));
    let ring_a = ByteRing::create(&b.ring_a, 1 << 16).unwrap();
    let ring_b = ByteRing::open(&b.ring_b).unwrap();
    let out = scene.bridge(&args(&b.out_args));
    let mut rx = ring_b.consumer().unwrap();
    let mut tx = ring_a.producer().unwrap();
    // Through once: the bridges have met, and the outbound one has parked
    // on an empty ring since.
    tx.try_send(&message(0)).unwrap();
    assert_eq!(number(&rx.recv_timeout(PATIENCE).unwrap()), 0);
    let before = [cpu_time(&scene, out), cpu_time(&scene, inb)];
    std::thread::sleep(Duration::from_secs(1));
    let after = [cpu_time(&scene, out), cpu_time(&scene, inb)];
    for (name, (a, b)) in ["out", "in"].iter().zip(after.iter().zip(before)) {
        let used = *a - b;
        assert!(
            used < Duration::from_millis(100),
            "the idle {name} bridge used {used:?} of CPU in a second"
        );
    }
    tx.try_send(&message(1)).unwrap();
    assert_eq!(number(&rx.recv_timeout(PATIENCE).unwrap()), 1);
    drop((tx, rx));
    scene.stop(out);
    scene.stop(inb);
}

/// Reads ring `name` in this process, slowly if asked, checking that
/// numbers only go up; how many arrived, and the numbers that did not.
struct Reader {
    got: AtomicU64,
    missing: AtomicU64,
    stop: AtomicBool,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            got: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn run(&self, ring: &ByteRing, pause_every: u64) {
        let mut rx = ring.consumer().unwrap();
        let mut next = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(msg) = rx.try_recv().unwrap() else {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            };
            let i = number(&msg);
            assert!(i >= next, "{i} after {next}: duplicated or reordered");
            self.missing.fetch_add(i - next, Ordering::Relaxed);
            next = i + 1;
            let got = self.got.fetch_add(1, Ordering::Relaxed) + 1;
            if pause_every > 0 && got.is_multiple_of(pause_every) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn produce(ring: &ByteRing, n: u64) {
    let mut tx = ring.producer().unwrap();
    for i in 0..n {
        tx.send_timeout(&message(i), PATIENCE).unwrap();
    }
}

#[test]
fn in_drop_mode_with_a_slow_receiver_delivered_plus_lost_is_sent() {
    const N: u64 = 100_000;
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "drop");
    let ring_a = ByteRing::create(&b.ring_a, 1 << 20).unwrap();
    // The receiving side: a small ring read slowly, so the inbound bridge
    // waits, Zenoh's queues fill and the sender's Zenoh drops.
    let ring_b = ByteRing::create(&b.ring_b, 1 << 14).unwrap();
    let inb = scene.bridge(&args(&b.in_args));
    let out = scene.bridge(&args(&b.out_args));
    let reader = Reader::new();
    std::thread::scope(|s| {
        s.spawn(|| reader.run(&ring_b, 100));
        produce(&ring_a, N);
        // Everything left ring A, and the receiver has accounted for every
        // number sent: delivered, or lost (a heartbeat tells it the tail).
        until("every message accounted for", || {
            let sent = out_state(&b.out_state).next_seq;
            let t = in_state(&b.in_state).totals();
            sent == N && t.delivered + t.lost + t.dropped_full == N
        });
        until("the reader caught up", || {
            reader.got.load(Ordering::Relaxed) == in_state(&b.in_state).totals().delivered
        });
        reader.stop.store(true, Ordering::Relaxed);
    });
    scene.stop(out);
    scene.stop(inb);
    let t = in_state(&b.in_state).totals();
    assert_eq!(t.delivered + t.lost + t.dropped_full, N, "{t:?}");
    assert!(t.lost + t.dropped_full > 0, "nothing was dropped: {t:?}");
    assert_eq!(t.duplicates, 0);
    let (got, missing) = (reader.got.into_inner(), reader.missing.into_inner());
    assert_eq!(got, t.delivered);
    // The reader saw the same holes, apart from a lost tail it cannot see.
    assert!(
        missing <= t.lost + t.dropped_full,
        "{missing} missing, {t:?}"
    );
    eprintln!("drop mode: {t:?}");
}

#[test]
fn a_receiving_bridge_killed_mid_stream_resumes_and_counts_the_gap() {
    const N: u64 = 100_000;
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "block");
    let ring_a = ByteRing::create(&b.ring_a, 1 << 20).unwrap();
    let ring_b = ByteRing::create(&b.ring_b, 1 << 20).unwrap();
    let inb = scene.bridge(&args(&b.in_args));
    let _out = scene.bridge(&args(&b.out_args));
    let reader = Reader::new();
    std::thread::scope(|s| {
        s.spawn(|| reader.run(&ring_b, 0));
        s.spawn(|| produce(&ring_a, N));
        until("a third arrived", || {
            reader.got.load(Ordering::Relaxed) >= N / 3
        });
        scene.kill(inb);
        let _inb = scene.bridge(&args(&b.in_args));
        until("every message accounted for", || {
            let t = in_state(&b.in_state).totals();
            t.delivered + t.lost == N
        });
        until("the reader caught up", || {
            let t = in_state(&b.in_state).totals();
            reader.got.load(Ordering::Relaxed) >= t.delivered
        });
        reader.stop.store(true, Ordering::Relaxed);
    });
    let i = in_state(&b.in_state);
    let t = i.totals();
    let (got, missing) = (reader.got.into_inner(), reader.missing.into_inner());
    assert_eq!(i.restarts, 1);
    assert_eq!(t.duplicates, 0, "{t:?}");
    // What the reader missed is what was counted lost; a kill between a
    // commit and its record counts one delivered message as lost.
    assert_eq!(got + missing, N);
    assert!(
        t.lost == missing || t.lost == missing + 1,
        "counted {t:?}, reader missed {missing}"
    );
    assert!(got == t.delivered || got == t.delivered + 1);
    eprintln!("receiver restart: {t:?}, reader missed {missing}");
}

#[test]
fn a_sending_bridge_killed_mid_stream_resends_under_the_same_numbers() {
    const N: u64 = 100_000;
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "block");
    let ring_a = ByteRing::create(&b.ring_a, 1 << 20).unwrap();
    let ring_b = ByteRing::create(&b.ring_b, 1 << 20).unwrap();
    let _inb = scene.bridge(&args(&b.in_args));
    let out = scene.bridge(&args(&b.out_args));
    let reader = Reader::new();
    let source = out_state(&b.out_state).source;
    std::thread::scope(|s| {
        s.spawn(|| reader.run(&ring_b, 0));
        s.spawn(|| produce(&ring_a, N));
        until("a third arrived", || {
            reader.got.load(Ordering::Relaxed) >= N / 3
        });
        scene.kill(out);
        let _out = scene.bridge(&args(&b.out_args));
        until("every message accounted for", || {
            let t = in_state(&b.in_state).totals();
            t.delivered + t.lost == N
        });
        until("the reader caught up", || {
            reader.got.load(Ordering::Relaxed) == in_state(&b.in_state).totals().delivered
        });
        reader.stop.store(true, Ordering::Relaxed);
    });
    let i = in_state(&b.in_state);
    let t = i.totals();
    let o = out_state(&b.out_state);
    assert_eq!(o.source, source, "the restarted bridge is the same source");
    assert_eq!((o.restarts, o.next_seq), (1, N));
    let (got, missing) = (reader.got.into_inner(), reader.missing.into_inner());
    // Nothing delivered twice (the reader checks numbers only go up);
    // what was in flight when the sender died is counted, not silent.
    assert_eq!(got, t.delivered);
    assert_eq!(missing, t.lost, "{t:?}");
    assert_eq!(got + missing, N);
    eprintln!("sender restart: {t:?}, {} handed to Zenoh", o.sent);
}

/// Sets its flag when dropped, also while unwinding.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn an_mpmc_bridge_killed_holding_values_sends_them_again_under_their_numbers() {
    const N: u64 = 60_000;
    const FIRST: u64 = 1000;
    let mut scene = Scene::new();
    let b = bridges(&mut scene, "block");
    let ring_a = Mpmc::<Value>::create(&b.ring_a, 1024).unwrap();
    let ring_b = ByteRing::create(&b.ring_b, 1 << 20).unwrap();
    let inb = scene.bridge(&args(&b.in_args));
    let (key, endpoint) = (&b.out_args[4], &b.out_args[6]);
    let out_env = [
        ("RING", b.ring_a.as_str()),
        ("KEY", key.as_str()),
        ("ENDPOINT", endpoint.as_str()),
        ("STATE", b.out_state.to_str().unwrap()),
    ];
    let out = scene.ready_child("mpmc-out", &out_env);
    let source = out_state(&b.out_state).source;
    let seen = std::sync::Mutex::new(vec![false; N as usize]);
    let (got, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    std::thread::scope(|s| {
        // A failing check below stops the threads, so the scene is cleaned.
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut rx = ring_b.consumer().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let Some(msg) = rx.try_recv().unwrap() else {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                };
                let v: Value = shmring::bytemuck::pod_read_unaligned(&msg);
                let i = v[0];
                assert!(i < N && v == value(i), "value {i} arrived damaged");
                let mut seen = seen.lock().unwrap();
                assert!(!seen[i as usize], "value {i} delivered twice");
                seen[i as usize] = true;
                got.fetch_add(1, Ordering::Relaxed);
            }
        });
        let tx = ring_a.producer().unwrap();
        for i in 0..FIRST {
            tx.push_timeout(value(i), PATIENCE).unwrap();
        }
        until("the first values arrived", || {
            got.load(Ordering::Relaxed) == FIRST
        });
        // The receiver stops: Zenoh's queues and the sockets fill (they
        // hold far less than the rest), and the sending bridge blocks inside
        // a put, holding the run it was sending (Block congestion). It takes
        // nothing more, so the ring fills up and the producer waits.
        scene.pause(inb, true);
        let stop = &stop;
        s.spawn(move || {
            for i in FIRST..N {
                // Until pushed, or the test gave up.
                while let Err(e) = tx.push_timeout(value(i), Duration::from_millis(50)) {
                    assert!(
                        matches!(e.cause(), shmring::SendError::Timeout { .. }),
                        "{e}"
                    );
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        });
        until("the sending bridge is stuck holding a run", || {
            let before = (out_state(&b.out_state).sent, ring_a.pushed());
            std::thread::sleep(Duration::from_millis(300));
            let now = (out_state(&b.out_state).sent, ring_a.pushed());
            now == before && now.1 < N
        });
        let repaired = ring_a.repaired();
        scene.kill(out);
        scene.pause(inb, false);
        let _out = scene.ready_child("mpmc-out", &out_env);
        until("every value accounted for", || {
            let t = in_state(&b.in_state).totals();
            t.delivered + t.lost == N
        });
        until("the reader caught up", || {
            got.load(Ordering::Relaxed) == in_state(&b.in_state).totals().delivered
        });
        stop.store(true, Ordering::Relaxed);
        // What the killed bridge held was taken over, not left for later.
        assert!(ring_a.repaired() > repaired, "nothing was taken over");
    });
    let t = in_state(&b.in_state).totals();
    let o = out_state(&b.out_state);
    assert_eq!(o.source, source, "the restarted bridge is the same source");
    assert_eq!((o.restarts, o.next_seq), (1, N));
    // No value twice (the reader checks), and what was lost is what was
    // in flight inside the killed bridge's Zenoh, counted.
    let seen = seen.into_inner().unwrap();
    let missing = seen.iter().filter(|s| !**s).count() as u64;
    assert_eq!((got.into_inner(), missing), (t.delivered, t.lost), "{t:?}");
    eprintln!("mpmc sender restart: {t:?}, {} handed to Zenoh", o.sent);
}

/// What a user sees for two mistakes: a typed ring given to the command
/// (it forwards byte rings only, and says so, with the way out), and an
/// endpoint Zenoh cannot use (its message, without the source paths of
/// Zenoh's build that it used to carry).
#[test]
fn a_typed_ring_and_a_bad_endpoint_are_refused_in_words() {
    let mut scene = Scene::new();
    let name = scene.ring("typed");
    let _typed = shmring::Spsc::<u64>::create(&name, 8).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shmring-bridge"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = run(&[
        "out",
        "--ring",
        &name,
        "--key",
        "t/typed",
        "--open-wait",
        "1",
    ]);
    assert!(said.contains("forwards byte rings only"), "{said}");
    assert!(said.contains("Outbound::spsc"), "{said}");

    let said = run(&[
        "out",
        "--ring",
        &name,
        "--key",
        "t/x",
        "--listen",
        "tcp/localhost:99999",
    ]);
    assert!(said.contains("invalid port"), "{said}");
    assert!(!said.contains(".cargo") && !said.contains(".rs:"), "{said}");
}

/// Run `openssl` with `args` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (CI installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, and a server and a client certificate it signed (P-256 keys),
/// in `dir`.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=shmring test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let (key, csr, crt) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.crt"),
        );
        let subject = format!("/CN={who}");
        let mut req = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
        req.extend(ec);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "san.ext",
                "-out",
                &crt,
            ],
        );
    }
}

/// The README's safe setup: each bridge starts from a Zenoh configuration
/// file (`--zenoh-config`) for mutual TLS, and messages cross between
/// bridges holding certificates of one CA.
#[test]
fn bridges_speak_mutual_tls_from_a_zenoh_configuration_file() {
    const N: u64 = 100;
    let dir = std::env::temp_dir().join(unique("tls"));
    std::fs::create_dir(&dir).unwrap();
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _dir = RemoveDir(dir.clone());
    certificates(&dir);
    let endpoint = format!("tls/localhost:{}", free_port());
    let file = |p: &str| dir.join(p).display().to_string();
    let config = |side: &str, role: &str| {
        format!(
            r#"{{
  mode: "peer",
  {side}: {{ endpoints: ["{endpoint}"] }},
  scouting: {{ multicast: {{ enabled: false }}, gossip: {{ enabled: false }} }},
  transport: {{ link: {{ tls: {{
    root_ca_certificate: "{ca}",
    {role}_private_key: "{key}",
    {role}_certificate: "{crt}",
    enable_mtls: true,
  }} }} }},
}}"#,
            ca = file("ca.crt"),
            key = file(&format!(
                "{}.key",
                if role == "listen" { "server" } else { "client" }
            )),
            crt = file(&format!(
                "{}.crt",
                if role == "listen" { "server" } else { "client" }
            )),
        )
    };
    let (listen, connect) = (dir.join("listen.json5"), dir.join("connect.json5"));
    std::fs::write(&listen, config("listen", "listen")).unwrap();
    std::fs::write(&connect, config("connect", "connect")).unwrap();

    let mut scene = Scene::new();
    let key = unique("tls-key").replace('-', "/");
    let (ring_a, ring_b) = (scene.ring("tls-a"), scene.ring("tls-b"));
    // Held here, so that the name outlives a producer done before the
    // bridge opens it.
    let _ring_a = ByteRing::create(&ring_a, 1 << 20).unwrap();
    let consumer = scene.child("consumer", &ring_b, N);
    let inb = scene.bridge(&[
        "in",
        "--key",
        &key,
        "--ring",
        &ring_b,
        "--no-state",
        "--zenoh-config",
        listen.to_str().unwrap(),
    ]);
    let producer = scene.child("producer", &ring_a, N);
    let out = scene.bridge(&[
        "out",
        "--ring",
        &ring_a,
        "--key",
        &key,
        "--no-state",
        "--zenoh-config",
        connect.to_str().unwrap(),
    ]);
    scene.wait_success(producer);
    scene.wait_success(consumer);
    scene.stop(out);
    scene.stop(inb);
}
