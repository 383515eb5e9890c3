//! What the bridge's integration tests share: names and ports no other
//! test uses.

use std::sync::atomic::{AtomicU32, Ordering};

/// A ring (or key) name unique to this process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmring-bridge-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free port on 127.0.0.1 (bound, then released for Zenoh to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
