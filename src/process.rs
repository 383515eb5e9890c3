//! Process identity that survives pid reuse: a pid plus the process's start
//! time (from /proc), packed into one u64 so it can be compared-and-swapped.
//!
//! Linux pids are below 2^22 (`PID_MAX_LIMIT`); the start time, in clock
//! ticks since boot, keeps its low 42 bits (about 1400 years at 100 Hz).

use std::sync::OnceLock;

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// A packed (pid, start time) pair; never 0, so 0 can mean "nobody".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessId(u64);

impl ProcessId {
    pub(crate) fn from_raw(raw: u64) -> Option<Self> {
        (raw & PID_MASK != 0).then_some(ProcessId(raw))
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    pub(crate) fn pid(self) -> u32 {
        (self.0 & PID_MASK) as u32
    }

    #[cfg_attr(loom, allow(dead_code))]
    fn start_time(self) -> u64 {
        self.0 >> PID_BITS
    }

    fn pack(pid: u32, start_time: u64) -> Self {
        ProcessId((start_time << PID_BITS) | (u64::from(pid) & PID_MASK))
    }

    /// This process.
    pub(crate) fn current() -> Self {
        static CURRENT: OnceLock<ProcessId> = OnceLock::new();
        // Not cached across fork: a forked child has a new pid, so key on it.
        let pid = std::process::id();
        let cached = *CURRENT.get_or_init(|| Self::pack(pid, start_time_of(pid).unwrap_or(0)));
        if cached.pid() == pid {
            cached
        } else {
            Self::pack(pid, start_time_of(pid).unwrap_or(0))
        }
    }

    /// Whether the process this id names still runs. A live pid with a
    /// different start time is a reused pid: the original is dead.
    #[cfg(not(loom))]
    pub(crate) fn is_alive(self) -> bool {
        use nix::errno::Errno;
        use nix::sys::signal::kill;
        use nix::unistd::Pid;
        let pid = self.pid();
        if pid == std::process::id() {
            return true;
        }
        match kill(Pid::from_raw(pid as i32), None) {
            Err(Errno::ESRCH) => false,
            // Alive (EPERM: alive but another user's); check for reuse.
            // A zombie has exited; it only waits to be reaped.
            _ => match proc_stat(pid) {
                Some(('Z' | 'X', _)) => false,
                Some((_, t)) => self.start_time() == 0 || t == self.start_time(),
                // /proc unreadable: trust kill().
                None => true,
            },
        }
    }

    /// Under loom every handle lives in one process, which never dies,
    /// except the handles a model marks dead with [`Self::dead_for_model`].
    #[cfg(loom)]
    pub(crate) fn is_alive(self) -> bool {
        self.pid() != PID_MASK as u32
    }

    /// The id a loom model gives a handle whose process it lets die.
    #[cfg(loom)]
    pub(crate) fn dead_for_model() -> Self {
        Self::pack(PID_MASK as u32, 0)
    }
}

/// Field 22 of /proc/PID/stat: start time in clock ticks after boot.
fn start_time_of(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// From /proc/PID/stat: the state letter (field 3) and the start time
/// (field 22), truncated to the bits a `ProcessId` keeps.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': skip past the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields after the state start at field 4; the start time is field 22.
    let t: u64 = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, t & (u64::MAX >> PID_BITS)))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_round_trips() {
        let me = ProcessId::current();
        assert_eq!(me.pid(), std::process::id());
        assert!(me.start_time() > 0);
        assert!(me.is_alive());
        assert_eq!(ProcessId::from_raw(me.raw()), Some(me));
        assert_eq!(ProcessId::from_raw(0), None);
    }

    #[test]
    fn an_unreaped_child_that_exited_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let id = ProcessId::pack(pid, start_time_of(pid).unwrap_or(0));
        // Not reaped: a zombie until `wait`, which kill(pid, 0) still finds.
        let start = std::time::Instant::now();
        while proc_stat(pid).is_some_and(|(s, _)| s != 'Z') {
            assert!(start.elapsed().as_secs() < 10, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!id.is_alive());
        child.wait().unwrap();
    }

    #[test]
    fn a_reaped_child_is_dead_and_a_reused_pid_is_not_the_original() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let id = ProcessId::pack(pid, start_time_of(pid).unwrap_or(1));
        child.wait().unwrap();
        assert!(!id.is_alive());
        // Our own pid is alive, but with another start time it names a dead process.
        let me = ProcessId::current();
        let impostor = ProcessId::pack(1, me.start_time() + 12345);
        assert!(!impostor.is_alive() || start_time_of(1).is_none());
    }
}
