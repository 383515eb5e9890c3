//! The floors every ring is measured against, between two processes:
//!
//! * a bare cache-line ping-pong (one word, each side spins until the other
//!   has written it): the hardware's cost of moving a line there and back;
//! * the same with two words on two lines, one per direction: what any pair
//!   of rings must pay at least, since each direction has its own line to
//!   invalidate and fetch (on the 2-vCPU VM this was developed on it costs
//!   about twice the one-line ping-pong);
//! * a bare futex ping-pong (the same word, but each side sleeps in
//!   `FUTEX_WAIT` and is woken with `FUTEX_WAKE`): the kernel's cost.
//!
//! A ring's round trip can approach these but not beat them. The words live
//! in a file under /dev/shm of their own, with no shmring header (so
//! `shmring ls` does not list it), mapped the way the rings map theirs. This
//! file is the one place in the command's crate with `unsafe`: turning the
//! mapping into atomics, and the futex system calls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use memmap2::MmapRaw;

/// How long a floor measurement waits for its peer before giving up.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The two words, each on a line of its own.
type Words = [CachePadded<AtomicU32>; 2];

/// Shared words that two processes hand back and forth. On one line, the
/// ping side writes odd values and the pong side even ones; on two lines,
/// each side writes only its own line.
///
/// ```
/// use shmring_bench_kit::floors::PingPong;
///
/// let name = format!("shmring-doc-floor-{}", std::process::id());
/// let ping = PingPong::create(&name)?;
/// let pong = PingPong::open(&name)?;
/// let echo = std::thread::spawn(move || pong.spin_pong(0));
/// ping.spin_ping(0)?;
/// echo.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PingPong {
    map: MmapRaw,
    /// The file to remove on drop (the creator's), or `None` (an opener's).
    owned: Option<PathBuf>,
}

fn path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

impl PingPong {
    /// Create the shared words under /dev/shm/`name` (which must not
    /// exist; mode 0600). The file is removed when this handle drops.
    pub fn create(name: &str) -> io::Result<Self> {
        let path = path(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let made = file
            .set_len(size_of::<Words>() as u64)
            .and_then(|()| Self::map(&file));
        match made {
            Ok(map) => Ok(PingPong {
                map,
                owned: Some(path),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Open words another process created.
    pub fn open(name: &str) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path(name))?;
        if file.metadata()?.len() < size_of::<Words>() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: too short for a ping-pong floor"),
            ));
        }
        Ok(PingPong {
            map: Self::map(&file)?,
            owned: None,
        })
    }

    fn map(file: &File) -> io::Result<MmapRaw> {
        memmap2::MmapOptions::new()
            .len(size_of::<Words>())
            .map_raw(file)
    }

    fn words(&self) -> &Words {
        // SAFETY: the mapping is at least `size_of::<Words>()` bytes (checked
        // by `open`, set by `create`), page-aligned (so aligned for the
        // cache-padded words), and lives as long as `self`. Atomics of u32
        // have u32's layout and any bit pattern is valid; both processes
        // touch these bytes only through atomics, never through references
        // to plain memory.
        unsafe { &*self.map.as_ptr().cast::<Words>() }
    }

    fn word(&self) -> &AtomicU32 {
        &self.words()[0]
    }

    fn reply(&self) -> &AtomicU32 {
        &self.words()[1]
    }

    /// Ping side of round `i` on two lines: write ours, wait for theirs.
    pub fn two_line_ping(&self, i: u32) -> io::Result<()> {
        self.word().store(i.wrapping_add(1), Ordering::Release);
        spin_until(self.reply(), i.wrapping_add(1))
    }

    /// Pong side of round `i` on two lines: wait for theirs, write ours.
    pub fn two_line_pong(&self, i: u32) -> io::Result<()> {
        spin_until(self.word(), i.wrapping_add(1))?;
        self.reply().store(i.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Ping side of round `i`, spinning: write `2i + 1`, wait for `2i + 2`.
    pub fn spin_ping(&self, i: u32) -> io::Result<()> {
        self.word().store(i.wrapping_mul(2) | 1, Ordering::Release);
        spin_until(self.word(), i.wrapping_mul(2).wrapping_add(2))
    }

    /// Pong side of round `i`, spinning: wait for `2i + 1`, write `2i + 2`.
    pub fn spin_pong(&self, i: u32) -> io::Result<()> {
        spin_until(self.word(), i.wrapping_mul(2) | 1)?;
        self.word()
            .store(i.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        Ok(())
    }

    /// Ping side of round `i` through the kernel: write, wake, sleep.
    pub fn futex_ping(&self, i: u32) -> io::Result<()> {
        let mine = i.wrapping_mul(2) | 1;
        self.word().store(mine, Ordering::Release);
        futex_wake(self.word());
        self.sleep_while(mine)
    }

    /// Pong side of round `i` through the kernel: sleep, write, wake.
    pub fn futex_pong(&self, i: u32) -> io::Result<()> {
        self.sleep_while(i.wrapping_mul(2))?;
        self.word()
            .store(i.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        futex_wake(self.word());
        Ok(())
    }

    fn sleep_while(&self, value: u32) -> io::Result<()> {
        let start = Instant::now();
        while self.word().load(Ordering::Acquire) == value {
            if start.elapsed() > PEER_TIMEOUT {
                return Err(timed_out());
            }
            futex_wait(self.word(), value, PEER_TIMEOUT);
        }
        Ok(())
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        if let Some(path) = &self.owned {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the floor's peer did not answer")
}

fn spin_until(word: &AtomicU32, value: u32) -> io::Result<()> {
    let start = Instant::now();
    let mut n = 0u32;
    while word.load(Ordering::Acquire) != value {
        std::hint::spin_loop();
        n = n.wrapping_add(1);
        if n.is_multiple_of(4096) && start.elapsed() > PEER_TIMEOUT {
            return Err(timed_out());
        }
    }
    Ok(())
}

/// Sleep while `*word == expected`, for at most `timeout` (shared futex: the
/// waker is another process).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 for the whole call (the mapping
    // outlives `&self`); the kernel only reads it. `ts` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wake every sleeper on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE does not even read the word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        format!("shmring-test-floor-{}-{tag}", std::process::id())
    }

    /// Each floor, 1000 rounds between two threads on two mappings: a
    /// broken hand-over (a wrong value, a lost wake) times out.
    #[test]
    fn every_floor_completes_its_rounds() {
        type Step = fn(&PingPong, u32) -> io::Result<()>;
        let floors: [(&str, Step, Step); 3] = [
            ("spin", PingPong::spin_ping, PingPong::spin_pong),
            ("lines", PingPong::two_line_ping, PingPong::two_line_pong),
            ("futex", PingPong::futex_ping, PingPong::futex_pong),
        ];
        for (tag, ping, pong) in floors {
            let name = name(tag);
            let ours = PingPong::create(&name).unwrap();
            let theirs = PingPong::open(&name).unwrap();
            let echo = std::thread::spawn(move || (0..1000).try_for_each(|i| pong(&theirs, i)));
            (0..1000).try_for_each(|i| ping(&ours, i)).unwrap();
            echo.join().unwrap().unwrap();
        }
    }

    #[test]
    fn the_creator_removes_its_file_and_a_second_create_is_refused() {
        let name = name("excl");
        let ours = PingPong::create(&name).unwrap();
        assert_eq!(
            PingPong::create(&name).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        drop(ours);
        assert!(!path(&name).exists());
    }
}
