//! Round trips and throughput from C: builds `examples/c/round_trip.c`
//! with the system compiler against this crate's static library, and runs
//! it: two C processes ping-pong 8-byte messages through two byte rings,
//! then through a Unix socketpair (p50 and mean of each), then one sends
//! 8-byte messages one at a time to the other through a ring and through
//! a socketpair (messages a second); then the same through typed SPSC
//! rings of `uint64_t`: a round trip, and one way by copy and in place
//! (`shmring_typed_reserve`/`_commit`, `shmring_typed_read`/`_release`).
//!
//! `cargo run --release -p shmring-c --example round_trip [ROUNDS]`

use std::path::Path;
use std::process::Command;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |r| r.parse().expect("ROUNDS is a number"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Cargo builds the static library into `deps/`, next to `examples/`.
    let exe = std::env::current_exe().unwrap();
    let libs = exe.parent().and_then(Path::parent).unwrap().join("deps");
    let out = std::env::temp_dir().join(format!("shmring-c-round-trip-{}", std::process::id()));
    let built = Command::new("cc")
        .args(["-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Werror", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("examples/c/round_trip.c"))
        .arg(libs.join("libshmring_c.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-o"])
        .arg(&out)
        .status()
        .expect("a C compiler (cc) runs");
    assert!(built.success(), "round_trip.c did not build");
    let name = format!("shmring-c-rtt-{}", std::process::id());
    let ran = Command::new(&out)
        .args([&name, &rounds.to_string()])
        .status()
        .unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(ran.success(), "round_trip failed");
}
