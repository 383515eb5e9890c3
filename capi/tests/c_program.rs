//! A C program, built with the system compiler under AddressSanitizer and
//! UndefinedBehaviorSanitizer against this crate's static library and
//! header, talks to this Rust process over two byte rings: every message
//! either way is checked, by value, on both sides. It also checks the
//! ABI's errors (NULL arguments, a missing ring, a taken role, a buffer too
//! small, calls while a loan is open), and, on a ring of its own, the batch
//! calls, inspection and the awaiting handles' fds (`poll(2)`); and it
//! answers the ticks this process sends on an `Spsc<Tick>` on an
//! `Mpmc<Tick>`, through the typed calls, checking each; then it reads
//! the ticks this process publishes on a `Broadcast<Tick>` as two
//! subscribers (lossless: every tick, then the end; lossy: what is left,
//! and the count of what it missed); see `tests/c/peer.c`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shmring::{Broadcast, ByteRing, Mpmc, Spsc};

const WAIT: Duration = Duration::from_secs(30);
const COUNT: u64 = 3000;
const TICKS: u64 = 2000;

/// The C side's `Tick`, the same `#[repr(C)]` layout and schema name.
#[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
#[bytemuck(crate = "shmring::bytemuck")]
#[repr(C)]
struct Tick {
    px: f64,
    qty: u32,
    side: u32,
}

fn tick(i: u64) -> Tick {
    Tick {
        px: i as f64 / 2.0,
        qty: i as u32,
        side: (i % 2) as u32,
    }
}

/// Where cargo put this crate's static library: beside this test, in
/// `deps/` (built there with every crate type the lib declares, and
/// without a hash in its name because one of them is a `cdylib`).
fn libraries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_owned()
}

fn build_peer(out: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .args(["-fno-omit-frame-pointer", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("tests/c/peer.c"))
        .arg(libraries().join("libshmring_c.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-o"])
        .arg(out)
        .status()
        .expect("a C compiler (cc) runs");
    assert!(status.success(), "peer.c did not build");
}

/// Message i: (i % 200) bytes, byte k being (i * 7 + k) & 0xff.
fn message(i: u64) -> Vec<u8> {
    (0..i % 200).map(|k| (i * 7 + k) as u8).collect()
}

/// The C side's answer: i, little-endian, then the message reversed.
fn answer(i: u64) -> Vec<u8> {
    let mut a = i.to_le_bytes().to_vec();
    a.extend(message(i).iter().rev());
    a
}

/// Removes a segment when dropped (a no-op if it is gone).
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = shmring::remove(&self.0);
    }
}

#[test]
fn a_c_program_and_a_rust_process_talk_over_two_rings() {
    let name = format!("shmring-c-test-{}", std::process::id());
    let (to_c, from_c) = (format!("{name}-to-c"), format!("{name}-from-c"));
    // The C side's own ring (batches, inspection, awaiting), removed here
    // if the peer fails before it closes it.
    let scratch = format!("{name}-scratch");
    let _removed = Remove(scratch.clone());
    // Small rings: both wrap many times, and back-pressure is met.
    let ring_to_c = ByteRing::create(&to_c, 4096).unwrap();
    let ring_from_c = ByteRing::create(&from_c, 4096).unwrap();
    let mut tx = ring_to_c.producer().unwrap();
    let mut rx = ring_from_c.consumer().unwrap();
    // Typed rings of 8: the ticks wrap them many times.
    let (ticks_to_c, ticks_from_c) = (format!("{name}-ticks-to-c"), format!("{name}-ticks-from-c"));
    let typed_to_c = Spsc::<Tick>::create(&ticks_to_c, 8).unwrap();
    let typed_from_c = Mpmc::<Tick>::create(&ticks_from_c, 8).unwrap();
    // The C peer subscribes first thing; this process publishes once every
    // tick was answered, so after it subscribed.
    let broadcast = format!("{name}-broadcast");
    let published = Broadcast::<Tick>::create(&broadcast, 8).unwrap();

    let exe = std::env::temp_dir().join(format!("{name}-peer"));
    build_peer(&exe);
    let peer = Command::new(&exe)
        .args([&to_c, &from_c, &COUNT.to_string(), &scratch])
        .args([&ticks_to_c, &ticks_from_c, &TICKS.to_string(), &broadcast])
        // Leaks are checked; Rust's own start-up allocations are not C's.
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let sender = std::thread::spawn(move || {
        for i in 0..COUNT {
            tx.send_timeout(&message(i), WAIT).unwrap();
        }
        tx
    });
    for i in 0..COUNT {
        let got = rx.recv_timeout(WAIT).map(|m| m.to_vec());
        match got {
            Ok(got) => assert_eq!(got, answer(i), "answer {i}"),
            Err(e) => {
                let out = peer.wait_with_output().unwrap();
                panic!(
                    "answer {i}: {e}\nthe C peer said: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    drop(sender.join().unwrap());
    let mut ticks_tx = typed_to_c.producer().unwrap();
    let ticks_rx = typed_from_c.consumer().unwrap();
    let ticker = std::thread::spawn(move || {
        for i in 0..TICKS {
            if ticks_tx.push_timeout(tick(i), WAIT).is_err() {
                return false;
            }
        }
        true
    });
    for i in 0..TICKS {
        let want = Tick {
            qty: i as u32 + 1,
            ..tick(i)
        };
        match ticks_rx.pop_timeout(WAIT) {
            Ok(got) => assert_eq!(got, want, "answer to tick {i}"),
            Err(e) => {
                let out = peer.wait_with_output().unwrap();
                panic!(
                    "answer to tick {i}: {e}\nthe C peer said: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    assert!(ticker.join().unwrap(), "every tick was sent");
    assert!(published.has_consumer(), "the C peer subscribed");
    let mut publisher = published.producer().unwrap();
    for i in 0..TICKS {
        if let Err(e) = publisher.push_timeout(tick(i), WAIT) {
            let out = peer.wait_with_output().unwrap();
            panic!(
                "broadcast tick {i}: {e}\nthe C peer said: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    publisher.close();
    let out = peer.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&exe);
    assert!(
        out.status.success(),
        "the C peer failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {COUNT}")
    );
    assert!(rx.try_recv().unwrap().is_none(), "nothing more from C");
    assert_eq!(ticks_rx.try_pop(), None, "no more ticks from C");
}
