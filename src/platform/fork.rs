//! Fork: a child never acts for its parent, and never keeps its parent's
//! locks alive.
//!
//! A forked child gets a copy of everything its parent had: the handles in
//! memory, and the descriptors under them, which share their open file
//! descriptions (and so the locks on them, `lease.rs`) with the parent's.
//! Two things follow, and this module handles both, through `pthread_atfork`
//! handlers installed the first time the library opens a descriptor or
//! makes a handle ([`install`]):
//!
//! * **Who am I.** A handle asks "am I in the process that made this?"
//!   before it releases a role, clears a record or removes a name. A pid
//!   cannot answer: a child forked into a new pid namespace is pid 1 there,
//!   as its parent may be in its own (a container's entrypoint forking a
//!   sandboxed helper). An [`Origin`] is this process's *incarnation*, a
//!   counter that the child handler bumps, so a child, and every descendant
//!   of it, differs from its parent whatever their pids.
//! * **What do I hold.** A child that inherits a description keeps its
//!   locks alive after the parent dies: a SIGKILLed service's roles would
//!   stay taken while a helper it forked sleeps on. Every descriptor the
//!   library keeps is a [`KeptFd`], recorded in a table; the child handler
//!   points each recorded number at `/dev/null` (`dup3`, which is
//!   async-signal-safe), so the child's copies no longer refer to the
//!   parent's descriptions and the parent's locks live and die with the
//!   parent alone. The numbers stay taken, so the child's inherited handles
//!   close them as usual when dropped, and close nothing else. A mapping
//!   holds its file description too (the kernel keeps a description, and
//!   its locks, while any mapping of it lives), so every mapping the
//!   library makes is a [`KeptMap`], and the child handler replaces each
//!   with private zeroed memory of the same size (`mmap` with
//!   `MAP_FIXED`, a bare system call): the child's inherited handles still
//!   point at memory they may read and write, but it is no longer the
//!   ring's, and whatever they do there reaches no one.
//!
//! A gate makes "open a descriptor and record it" and "forget it and close
//! it" atomic with respect to fork: threads pass it in shared mode, and the
//! prepare handler takes it exclusively, waiting for those in progress, so
//! no child is ever made between an open and its record. Gated sections
//! are single system calls and never nest, so the wait is short and cannot
//! deadlock.
//!
//! Limits: the handlers run for forks through the C library (`fork()`,
//! which std, nix and every runtime use; `posix_spawn` and `vfork` children
//! exec at once, and exec closes these descriptors, all `O_CLOEXEC`). A
//! child made by a raw `clone` system call runs no handler: it still never
//! acts for its parent when its pid differs (an [`Origin`] compares pids
//! too), but it keeps the parent's locks until it exits or execs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use memmap2::MmapRaw;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// The incarnation: 1 in a process that was exec'd, bumped in every forked
/// child. Not a loom atomic: fork is outside the model.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The identity of the process that made something: its incarnation, and
/// its pid for a child forked without the handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    generation: u64,
    pid: u32,
}

impl Origin {
    /// This process.
    pub(crate) fn here() -> Self {
        install();
        Origin {
            generation: GENERATION.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    /// Whether this is the process it names (not a child forked since).
    pub(crate) fn is_here(&self) -> bool {
        *self == Origin::here()
    }
}

/// This process's incarnation and pid (see [`Origin`]), for state kept
/// per process outside the library.
pub(crate) fn incarnation() -> (u64, u32) {
    let o = Origin::here();
    (o.generation, o.pid)
}

/// Install the handlers, once per process image (a forked child inherits
/// them; an exec'd one installs its own).
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        if let Ok(null) = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            NULL_FD.store(null.into_raw_fd(), Ordering::Relaxed);
        } else {
            log::warn!(
                target: "shmring",
                "cannot open /dev/null: forked children will keep this process's ring locks \
                 until they exit or exec"
            );
        }
        // SAFETY: the handlers are plain `extern "C"` functions that touch
        // only atomics and make async-signal-safe calls (`dup3`,
        // `sched_yield`), as the child of a multithreaded fork requires.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            log::warn!(target: "shmring", "pthread_atfork failed ({rc}): forks are told apart by pid only");
        }
    });
}

/// A descriptor for the child handler to point recorded numbers at.
static NULL_FD: AtomicI32 = AtomicI32::new(-1);

/// Threads inside a gated section (low bits), or [`FORKING`].
static GATE: AtomicU64 = AtomicU64::new(0);
const FORKING: u64 = 1 << 63;

fn enter() {
    let mut spins = 0u32;
    loop {
        let seen = GATE.load(Ordering::Relaxed);
        if seen & FORKING == 0
            && GATE
                .compare_exchange_weak(seen, seen + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        backoff(&mut spins);
    }
}

fn leave() {
    GATE.fetch_sub(1, Ordering::Release);
}

fn backoff(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

extern "C" fn prepare() {
    let mut spins = 0u32;
    while GATE
        .compare_exchange_weak(0, FORKING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        if spins < 64 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions (std's yield_now
            // is the same call; this spells it out in a fork handler).
            unsafe { libc::sched_yield() };
        }
    }
}

extern "C" fn parent() {
    GATE.store(0, Ordering::Release);
}

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    for slot in &MAPS {
        let addr = slot.addr.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        if addr != 0 && len != 0 {
            // SAFETY: a bare system call on a range this process mapped
            // (recorded only while mapped; the gate kept any unmap from
            // racing the fork); the handles that point into it find
            // memory of the same size there, zeroed.
            unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
        }
    }
    let null = NULL_FD.load(Ordering::Relaxed);
    if null >= 0 {
        let mut block: *const Block = &FIRST;
        while !block.is_null() {
            // SAFETY: blocks are leaked, never freed: a pointer to one is
            // valid for the life of the process, in the child too.
            let b = unsafe { &*block };
            for fd in &b.fds {
                let fd = fd.load(Ordering::Relaxed);
                if fd >= 0 {
                    // SAFETY: dup3 is async-signal-safe; `fd` is open (it
                    // is recorded only while open, and the gate kept any
                    // close from racing the fork), and replacing it
                    // closes only the child's reference to its
                    // description.
                    unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
                }
            }
            block = b.next.load(Ordering::Acquire);
        }
    }
    crate::platform::process::forget_seed();
    GATE.store(0, Ordering::Release);
}

/// The table of recorded descriptors: blocks of slots (-1: free), linked,
/// grown by leaking a new block when every slot is taken, never shrunk.
struct Block {
    fds: [AtomicI32; SLOTS],
    next: AtomicPtr<Block>,
}

const SLOTS: usize = 128;

static FIRST: Block = Block::new();

impl Block {
    const fn new() -> Self {
        Block {
            fds: [const { AtomicI32::new(-1) }; SLOTS],
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

fn record(fd: RawFd) {
    let mut block: &'static Block = &FIRST;
    loop {
        for slot in &block.fds {
            if slot
                .compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        let next = block.next.load(Ordering::Acquire);
        block = if next.is_null() {
            let fresh = Box::into_raw(Box::new(Block::new()));
            match block.next.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: just leaked, never freed.
                Ok(_) => unsafe { &*fresh },
                Err(theirs) => {
                    // SAFETY: `fresh` came from `Box::into_raw` above and
                    // was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    // SAFETY: linked blocks are leaked, never freed.
                    unsafe { &*theirs }
                }
            }
        } else {
            // SAFETY: linked blocks are leaked, never freed.
            unsafe { &*next }
        };
    }
}

fn forget(fd: RawFd) {
    let mut block: &'static Block = &FIRST;
    loop {
        for slot in &block.fds {
            if slot
                .compare_exchange(fd, -1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        let next = block.next.load(Ordering::Acquire);
        if next.is_null() {
            return;
        }
        // SAFETY: linked blocks are leaked, never freed.
        block = unsafe { &*next };
    }
}

/// One recorded mapping: its address (0: free slot) and length.
struct MapSlot {
    addr: AtomicUsize,
    len: AtomicUsize,
}

/// Mappings a process keeps at once; past this a mapping is not recorded
/// and a forked child keeps its file description (a warning says so).
const MAP_SLOTS: usize = 4096;

static MAPS: [MapSlot; MAP_SLOTS] = [const {
    MapSlot {
        addr: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
    }
}; MAP_SLOTS];

/// A shared mapping the library keeps (a segment's), recorded so that a
/// forked child lets go of it; see the module docs.
pub(crate) struct KeptMap {
    map: Option<MmapRaw>,
    slot: Option<usize>,
}

impl KeptMap {
    /// Map with `map` and record the mapping, with no fork between.
    pub(crate) fn map<E>(map: impl FnOnce() -> Result<MmapRaw, E>) -> Result<KeptMap, E> {
        install();
        enter();
        let mapped = map();
        let slot = mapped.as_ref().ok().and_then(|m| {
            let addr = m.as_mut_ptr() as usize;
            let slot = MAPS.iter().position(|s| {
                s.addr
                    .compare_exchange(0, addr, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            });
            match slot {
                Some(i) => MAPS[i].len.store(m.len(), Ordering::Relaxed),
                None => log::warn!(
                    target: "shmring",
                    "more than {MAP_SLOTS} rings mapped: a child forked now keeps one alive"
                ),
            }
            slot
        });
        leave();
        mapped.map(|m| KeptMap { map: Some(m), slot })
    }

    /// The mapping.
    pub(crate) fn raw(&self) -> &MmapRaw {
        self.map.as_ref().expect("mapped until dropped")
    }
}

impl Drop for KeptMap {
    fn drop(&mut self) {
        enter();
        if let Some(i) = self.slot {
            MAPS[i].len.store(0, Ordering::Relaxed);
            MAPS[i].addr.store(0, Ordering::Relaxed);
        }
        drop(self.map.take());
        leave();
    }
}

/// A descriptor the library keeps (a segment's file, a lease's own
/// description), recorded so that a forked child lets go of it; see the
/// module docs.
#[derive(Debug)]
pub(crate) struct KeptFd(Option<OwnedFd>);

impl KeptFd {
    /// Open a descriptor with `open` and record it, with no fork between.
    pub(crate) fn open<E>(open: impl FnOnce() -> Result<OwnedFd, E>) -> Result<KeptFd, E> {
        install();
        enter();
        let opened = open();
        if let Ok(fd) = &opened {
            record(fd.as_raw_fd());
        }
        leave();
        opened.map(|fd| KeptFd(Some(fd)))
    }
}

impl AsFd for KeptFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("open until dropped").as_fd()
    }
}

impl AsRawFd for KeptFd {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for KeptFd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            enter();
            forget(fd.as_raw_fd());
            drop(fd);
            leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(fd: RawFd) -> bool {
        FIRST.fds.iter().any(|s| s.load(Ordering::Relaxed) == fd)
    }

    #[test]
    fn a_kept_descriptor_is_recorded_while_open() {
        let kept = KeptFd::open(|| std::fs::File::open("/dev/null").map(OwnedFd::from)).unwrap();
        let fd = kept.as_raw_fd();
        assert!(recorded(fd));
        drop(kept);
        assert!(!recorded(fd));
    }

    #[test]
    fn a_forked_child_is_another_origin_and_keeps_no_description_or_mapping() {
        let origin = Origin::here();
        assert!(origin.is_here());
        let kept =
            KeptFd::open(|| std::fs::File::open("/proc/self/exe").map(OwnedFd::from)).unwrap();
        let null = nix::sys::stat::stat("/dev/null").unwrap().st_rdev;
        let path = std::env::temp_dir().join(format!("shmring-unit-fork-{}", std::process::id()));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.set_len(4096).unwrap();
        let map = KeptMap::map(|| MmapRaw::map_raw(&file)).unwrap();
        let byte = map.raw().as_mut_ptr();
        // SAFETY: the mapping is 4096 bytes long and this thread's alone.
        unsafe { byte.write(7) };
        // SAFETY: the child makes only system calls (getpid, fstat) and
        // `_exit`s; it takes no lock another thread could have held.
        match unsafe { libc::fork() } {
            0 => {
                let moved = !origin.is_here();
                let st = nix::sys::stat::fstat(kept.as_fd());
                let nulled = st.is_ok_and(|st| st.st_rdev == null);
                // SAFETY: the child handler left 4096 bytes mapped there.
                let unmapped = unsafe { byte.read() } == 0;
                // SAFETY: leaves the child without running the parent's
                // destructors.
                unsafe { libc::_exit(if moved && nulled && unmapped { 0 } else { 1 }) }
            }
            -1 => panic!("fork failed"),
            pid => {
                let mut status = 0;
                // SAFETY: waits for the child forked above.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
        }
        assert!(origin.is_here());
        let st = nix::sys::stat::fstat(kept.as_fd()).unwrap();
        assert_ne!(st.st_rdev, null, "the parent's descriptor is its own");
        // SAFETY: as above.
        assert_eq!(unsafe { byte.read() }, 7, "the parent's mapping is its own");
    }
}
