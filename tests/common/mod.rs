//! Helpers shared by the integration tests: unique segment names, child
//! processes that are the test binary itself, and cleanup that runs even
//! when a test fails.
#![allow(dead_code, unused_macros)]

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary which child to be.
pub const CHILD_ROLE: &str = "SHMRING_TEST_CHILD";

/// A segment name no other test (or test run) uses: pid plus a counter.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmring-test-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every segment whose name starts with `prefix` on drop (a
/// request-reply service's lanes and the reply rings of clients that were
/// killed), when the test ends, passed or not.
pub struct Sweep(pub String);

impl Drop for Sweep {
    fn drop(&mut self) {
        for entry in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&self.0) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Removes a segment name on drop, for segments a test did not create
/// through a guard-owning handle (children, hand-made files).
pub struct Unlink(pub String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

/// Removes a directory planted under a segment name, on drop.
pub struct RemoveDir(pub String);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(shm_path(&self.0));
    }
}

/// Where a segment name lives on Linux.
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

/// Whether a segment of that name exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new(&shm_path(name)).exists()
}

/// Whether `cond` holds within a few seconds, polling. For staleness: the
/// tests of a binary run in parallel and spawn children, and a child that
/// another thread forks holds copies of every descriptor this process has
/// (and so the locks on them) until it execs, which closes them. A segment
/// this test just let go can stay "in use" for that moment.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(5) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A child process that is killed if the test panics before reaping it.
pub struct ChildGuard(Option<Child>);

impl From<Child> for ChildGuard {
    fn from(child: Child) -> Self {
        ChildGuard(Some(child))
    }
}

impl ChildGuard {
    /// Wait for the child to exit, for at most `timeout`; panic if it fails.
    pub fn wait_success(mut self, timeout: Duration) {
        let mut child = self.0.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "child exited with {status}");
                return;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kill the child now and reap it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The child's piped stdout (spawned with `Stdio::piped()`).
    pub fn stdout(&mut self) -> std::process::ChildStdout {
        self.0
            .as_mut()
            .unwrap()
            .stdout
            .take()
            .expect("stdout piped")
    }

    /// The first line the child prints on its piped stdout, trimmed: what a
    /// child says once it holds what the test needs (taking stdout).
    pub fn first_line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        let n = std::io::BufReader::new(self.stdout())
            .read_line(&mut line)
            .unwrap();
        assert!(n > 0, "the child exited before it said anything");
        line.trim().to_owned()
    }

    /// The child's piped stderr.
    pub fn stderr(&mut self) -> std::process::ChildStderr {
        self.0
            .as_mut()
            .unwrap()
            .stderr
            .take()
            .expect("stderr piped")
    }

    /// Close the child's piped stdin, which it may take as "stop".
    pub fn close_stdin(&mut self) {
        drop(self.0.as_mut().unwrap().stdin.take());
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Re-run this test binary as child `role`, with `args` in its
/// environment; the binary's [`children!`] function runs instead of its
/// tests.
pub fn spawn_child(role: &str, args: &[(&str, String)]) -> ChildGuard {
    let mut cmd = child_command(role);
    for (k, v) in args {
        cmd.env(k, v);
    }
    ChildGuard(Some(cmd.spawn().expect("spawn test child")))
}

/// The command that re-runs this test binary as child `role`; add
/// environment and stdio before spawning.
pub fn child_command(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ROLE, role);
    cmd
}

/// Declares the function a test binary runs when it is re-run as a child
/// (by [`spawn_child`] or [`child_command`]): `children!(child)` with
/// `fn child(role: &str)`. It runs before the test harness starts, and the
/// process exits 0 when it returns; a panic in it aborts the process, which
/// the parent sees as a failed child. In a normal test run it does nothing.
macro_rules! children {
    ($child:path) => {
        // Before main: std's I/O, environment, threads and processes work;
        // what Rust's `main` would add (a named main thread, SIGPIPE
        // ignored) the children do not rely on. Nothing else runs yet, so
        // the child cannot race with the harness.
        #[ctor::ctor(unsafe)]
        fn run_as_child_before_the_tests() {
            if let Some(role) = crate::common::child_role() {
                $child(&role);
                std::process::exit(0);
            }
        }
    };
}

/// The command that re-runs this test binary as child `role` as pid 1 of
/// a new pid namespace (`unshare --pid --fork`, killed with its parent),
/// stdio piped; add environment before spawning. Spawning fails where
/// `unshare` is missing.
pub fn child_in_new_pid_namespace(role: &str) -> Command {
    let inner = child_command(role);
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Fork; run `$body` (an `i32` exit code) in the child and leave it with
/// `_exit` (no destructors: the parent's handles are not the child's to
/// drop). The parent gets the child's pid, for [`reap`].
macro_rules! fork_child {
    ($body:block) => {
        // SAFETY: the child runs only `$body`, then `_exit`s; it touches no
        // lock another thread of the parent could have held at the fork but
        // malloc's, which glibc makes safe across fork.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> i32 { $body }))
                        .unwrap_or(101);
                // SAFETY: ends the child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        }
    };
}

/// Wait for a child forked by [`fork_child!`]: its exit code.
pub fn reap(pid: nix::unistd::Pid) -> i32 {
    match nix::sys::wait::waitpid(pid, None).unwrap() {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("child ended with {other:?}"),
    }
}

/// The role this process was started as, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// A required child argument.
pub fn arg<T: std::str::FromStr>(key: &str) -> T {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("missing {key}"))
        .parse()
        .unwrap_or_else(|_| panic!("bad {key}"))
}

/// Spin, then yield: waiting without futexes, fair to a 2-core machine.
pub struct Backoff(u32);

impl Backoff {
    pub fn new() -> Self {
        Backoff(0)
    }
    pub fn snooze(&mut self) {
        if self.0 < 64 {
            std::hint::spin_loop();
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}
