//! The waiter threads and the registrations tasks make with them (the
//! protocol is stated in the crate docs, "How a task waits").

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use shmring::hook::{self, WaitAny, WakeWord, WAIT_ANY_MAX};

use crate::sync::{lock, spawn, AtomicU32, JoinHandle, Mutex};

/// Ring words one waiter thread sleeps on (the kernel takes 128 words per
/// `futex_waitv`; one is the thread's own control word).
pub(crate) const SHARD_WORDS: usize = WAIT_ANY_MAX - 1;

/// How soon the waiter first looks for dead peers (they wake no one) of an
/// MPMC or byte ring a task waits on, as the blocking calls do; it wakes
/// the task only if a repair publishes. Each look that finds the task
/// still waiting doubles the interval, up to [`REPAIR_AT_MOST`]: a waiter
/// wakeup costs tens of microseconds of CPU on a VM, and a task awaiting
/// an idle ring for a second then costs 3 looks, not 10, while a peer
/// that died mid-claim is still found within a second.
const REPAIR_EVERY: Duration = Duration::from_millis(100);

/// The longest interval between two looks for dead peers.
const REPAIR_AT_MOST: Duration = Duration::from_millis(800);

/// How often an armed word is looked at when the heavy barrier was not
/// available (no `membarrier`): the notifier's light barrier is then no
/// barrier, and a wakeup can be missed; the blocking calls do the same.
const UNPAIRED_EVERY: Duration = Duration::from_millis(1);

/// How often a waiter looks at its words when the kernel has no
/// `futex_waitv` (before Linux 5.16, or refused by seccomp): degraded, and
/// counted in [`Stats::polls`].
const DEGRADED_EVERY: Duration = Duration::from_millis(1);

/// One registered handle: its word, and while a task waits on it, what the
/// task saw and how to wake it.
struct Entry {
    word: WakeWord,
    armed: Option<Armed>,
}

struct Armed {
    snapshot: u32,
    waker: Waker,
    /// Look at the word at least this often: to repair (the task is woken
    /// only if a repair publishes), or, unpaired, to wake the task.
    every: Option<(Duration, Every)>,
    since: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Every {
    Repair,
    Wake,
}

#[derive(Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    /// Bumped by every change of an entry's identity, so a stale
    /// registration never acts on another handle's entry.
    generations: Vec<u64>,
    live: usize,
    shutdown: bool,
    stats: Stats,
}

/// What the waiter threads did, for tests and `shmring-async`'s benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tasks registered with a waker now.
    pub armed: usize,
    /// Times a waiter thread woke a task.
    pub fired: u64,
    /// Times a waiter thread returned from its wait.
    pub wakeups: u64,
    /// Waits cut short by a timer (repairs, degraded modes).
    pub polls: u64,
}

/// One waiter thread and the words it sleeps on.
pub(crate) struct Shard {
    /// The thread's own word: bumped (and woken) when the set of armed
    /// words changes, so a wait built before the change ends.
    ctl: AtomicU32,
    table: Mutex<Table>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            ctl: AtomicU32::new(0),
            table: Mutex::new(Table::default()),
        }
    }

    /// Make the waiter rebuild its set of words.
    fn changed(&self) {
        // Relaxed: the table is under the mutex; the waiter reads `ctl`
        // before it locks the table, so a bump it reads comes after an
        // unlock its lock follows (and one it missed makes its wait
        // return at once: the kernel compares the word).
        self.ctl.fetch_add(1, Relaxed);
        hook::wake_local(&self.ctl);
    }

    /// The waiter thread's loop.
    fn run(&self) {
        loop {
            // Read before the table: see `changed`.
            let ctl = self.ctl.load(Relaxed);
            let mut timeout: Option<Duration> = None;
            let words: Vec<(WakeWord, u32)> = {
                let table = lock(&self.table);
                if table.shutdown {
                    return;
                }
                table
                    .entries
                    .iter()
                    .flatten()
                    .filter_map(|e| {
                        let a = e.armed.as_ref()?;
                        if let Some((every, _)) = a.every {
                            let left = every.saturating_sub(a.since.elapsed());
                            timeout = Some(timeout.map_or(left, |t| t.min(left)));
                        }
                        Some((e.word.clone(), a.snapshot))
                    })
                    .collect()
            };
            let mut list: Vec<(&AtomicU32, u32)> = Vec::with_capacity(words.len() + 1);
            list.push((&self.ctl, ctl));
            list.extend(words.iter().map(|(w, s)| (w.futex(), *s)));
            let outcome = hook::wait_any(&list, timeout);
            let outcome = match outcome {
                WaitAny::Unsupported => {
                    std::thread::sleep(DEGRADED_EVERY);
                    WaitAny::TimedOut
                }
                o => o,
            };
            drop(list);
            drop(words);
            let (woken, repairs) = self.fire(outcome == WaitAny::TimedOut);
            // Outside the lock: a repair takes the ring's repair lock and
            // may take a while; one that publishes wakes the word, and the
            // next wait returns at once for it.
            for r in repairs {
                r.repair();
            }
            for w in woken {
                w.wake();
            }
        }
    }

    /// Take the wakers of every armed entry whose word changed (or whose
    /// interval passed, unpaired), disarming it; and the words due for a
    /// repair.
    fn fire(&self, timed_out: bool) -> (Vec<Waker>, Vec<WakeWord>) {
        let mut table = lock(&self.table);
        let table = &mut *table;
        table.stats.wakeups += 1;
        if timed_out {
            table.stats.polls += 1;
        }
        let (mut woken, mut repairs) = (Vec::new(), Vec::new());
        for e in table.entries.iter_mut().flatten() {
            let Some(a) = e.armed.as_mut() else { continue };
            let due = match a.every {
                Some((every, how)) if a.since.elapsed() >= every => Some(how),
                _ => None,
            };
            if due == Some(Every::Repair) {
                a.since = Instant::now();
                if let Some((every, _)) = a.every.as_mut() {
                    *every = (*every * 2).min(REPAIR_AT_MOST);
                }
                repairs.push(e.word.clone());
            }
            if e.word.seq() != a.snapshot || due == Some(Every::Wake) {
                if let Some(a) = e.armed.take() {
                    e.word.disarm();
                    table.stats.armed -= 1;
                    woken.push(a.waker);
                }
            }
        }
        table.stats.fired += woken.len() as u64;
        (woken, repairs)
    }
}

/// The waiter threads of a process, each with up to 127 ring
/// words. Every handle made with `new` uses the process's reactor
/// ([`Reactor::global`]); tests and models make their own.
#[derive(Clone)]
pub struct Reactor {
    inner: Arc<ReactorInner>,
}

struct ReactorInner {
    shards: Mutex<Vec<Arc<Shard>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    incarnation: (u64, u32),
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("shards", &lock(&self.inner.shards).len())
            .finish_non_exhaustive()
    }
}

impl Default for Reactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Reactor {
    /// A reactor of its own: its waiter threads start with the first
    /// registration and end at [`shutdown`](Self::shutdown).
    ///
    /// ```
    /// let reactor = shmring_async::Reactor::new();
    /// assert_eq!(reactor.stats().armed, 0);
    /// reactor.shutdown();
    /// ```
    pub fn new() -> Self {
        Reactor {
            inner: Arc::new(ReactorInner {
                shards: Mutex::new(Vec::new()),
                threads: Mutex::new(Vec::new()),
                incarnation: hook::incarnation(),
            }),
        }
    }

    /// The process's reactor (made again in a forked child, which has no
    /// threads of its parent's).
    ///
    /// ```
    /// let stats = shmring_async::Reactor::global().stats();
    /// assert_eq!(stats.armed, 0);
    /// ```
    #[cfg(not(shmring_loom))]
    pub fn global() -> Reactor {
        static GLOBAL: std::sync::Mutex<Option<Reactor>> = std::sync::Mutex::new(None);
        let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(r) if r.inner.incarnation == hook::incarnation() => r.clone(),
            _ => {
                let r = Reactor::new();
                *g = Some(r.clone());
                r
            }
        }
    }

    /// What the waiter threads did so far, summed over shards.
    pub fn stats(&self) -> Stats {
        lock(&self.inner.shards)
            .iter()
            .fold(Stats::default(), |mut s, shard| {
                let t = lock(&shard.table).stats;
                s.armed += t.armed;
                s.fired += t.fired;
                s.wakeups += t.wakeups;
                s.polls += t.polls;
                s
            })
    }

    /// End the waiter threads and wait for them. Registrations still
    /// alive are never woken again.
    pub fn shutdown(self) {
        for shard in lock(&self.inner.shards).iter() {
            lock(&shard.table).shutdown = true;
            shard.changed();
        }
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    /// Register `word` in a shard with room, starting a waiter thread for
    /// a new shard.
    pub(crate) fn register(&self, word: WakeWord) -> Registration {
        let mut shards = lock(&self.inner.shards);
        let found = shards.iter().find_map(|s| {
            let mut t = lock(&s.table);
            (t.live < SHARD_WORDS).then(|| (Arc::clone(s), insert(&mut t, word.clone())))
        });
        let (shard, (index, generation)) = match found {
            Some(f) => f,
            None => {
                let shard = Arc::new(Shard::new());
                let at = insert(&mut lock(&shard.table), word.clone());
                shards.push(Arc::clone(&shard));
                let runs = Arc::clone(&shard);
                let t = spawn(move || runs.run());
                lock(&self.inner.threads).push(t);
                (shard, at)
            }
        };
        Registration {
            reactor: self.clone(),
            shard,
            index,
            generation,
            word,
            parked: false,
            unpaired: false,
        }
    }

    fn is_current(&self) -> bool {
        self.inner.incarnation == hook::incarnation()
    }
}

fn insert(t: &mut Table, word: WakeWord) -> (usize, u64) {
    t.live += 1;
    let entry = Some(Entry { word, armed: None });
    let index = match t.entries.iter().position(Option::is_none) {
        Some(i) => {
            t.entries[i] = entry;
            i
        }
        None => {
            t.entries.push(entry);
            t.generations.push(0);
            t.entries.len() - 1
        }
    };
    t.generations[index] += 1;
    (index, t.generations[index])
}

/// A handle's place in a shard, for its life.
pub(crate) struct Registration {
    reactor: Reactor,
    shard: Arc<Shard>,
    index: usize,
    generation: u64,
    word: WakeWord,
    /// Whether its entry may be armed: it armed it, and has not disarmed
    /// it since (the waiter may have, firing). Lets a look that finds a
    /// value disarm without taking the lock when nothing is armed.
    parked: bool,
    /// Whether its last arming found no heavy barrier (no `membarrier`):
    /// the waiter then wakes the task every [`UNPAIRED_EVERY`] and makes
    /// no looks for dead peers, which a task may make itself.
    pub(crate) unpaired: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("word", &self.word)
            .finish_non_exhaustive()
    }
}

/// Whether a registration's entry is armed, after `keep_waker`.
enum Kept {
    /// Still armed; the task's waker is the one it holds now.
    Armed,
    /// Fired (or never armed): arm again.
    Idle,
}

impl Registration {
    /// Wait for `check` to return `Some`: the task's slow path, once it
    /// looked and found nothing. Arms the entry (snapshot, flag, heavy
    /// barrier, a look again) or, when it is armed already, only swaps in
    /// this poll's waker.
    pub(crate) fn poll_wait<R>(
        &mut self,
        cx: &mut Context<'_>,
        mut check: impl FnMut() -> Option<R>,
    ) -> Poll<R> {
        if !self.reactor.is_current() {
            // A forked child: its parent's waiter threads are not here.
            *self = Reactor::global_or(&self.reactor).register(self.word.clone());
        }
        if let Kept::Armed = self.keep_waker(cx.waker()) {
            self.parked = true;
            return Poll::Pending;
        }
        // 1. The snapshot, before the flag.
        let snapshot = self.word.seq();
        // 2. The flag and the heavy barrier.
        let paired = self.word.arm();
        self.unpaired = !paired;
        let every = match (paired, self.word.repairs()) {
            (false, _) => Some((UNPAIRED_EVERY, Every::Wake)),
            (true, true) => Some((REPAIR_EVERY, Every::Repair)),
            (true, false) => None,
        };
        // 3. The snapshot, for the waiter.
        {
            let mut t = lock(&self.shard.table);
            if t.generations[self.index] == self.generation {
                if let Some(e) = t.entries[self.index].as_mut() {
                    e.armed = Some(Armed {
                        snapshot,
                        waker: cx.waker().clone(),
                        every,
                        since: Instant::now(),
                    });
                }
                t.stats.armed += 1;
            }
        }
        self.parked = true;
        // 4. Look again: a value published before the flag was seen is
        // visible now.
        if let Some(r) = check() {
            self.disarm();
            return Poll::Ready(r);
        }
        // 5. Let the waiter sleep on the snapshot.
        self.shard.changed();
        Poll::Pending
    }

    /// If the entry is still armed, make `waker` the one it wakes.
    fn keep_waker(&self, waker: &Waker) -> Kept {
        let mut t = lock(&self.shard.table);
        if t.generations[self.index] != self.generation {
            return Kept::Idle;
        }
        match t.entries[self.index]
            .as_mut()
            .and_then(|e| e.armed.as_mut())
        {
            Some(a) => {
                a.waker.clone_from(waker);
                Kept::Armed
            }
            None => Kept::Idle,
        }
    }

    /// The task stops waiting (it found a value, or its future was
    /// dropped): its waker goes, and the word's sleeper count with it.
    pub(crate) fn disarm(&mut self) {
        self.parked = false;
        let mut t = lock(&self.shard.table);
        if t.generations[self.index] != self.generation {
            return;
        }
        let was = t.entries[self.index].as_mut().and_then(|e| e.armed.take());
        if was.is_some() {
            self.word.disarm();
            t.stats.armed -= 1;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let was_armed = {
            let mut t = lock(&self.shard.table);
            if t.generations[self.index] != self.generation {
                return;
            }
            let entry = t.entries[self.index].take();
            t.generations[self.index] += 1;
            t.live -= 1;
            let armed = entry.is_some_and(|e| e.armed.is_some());
            if armed {
                self.word.disarm();
                t.stats.armed -= 1;
            }
            armed
        };
        // The waiter holds the word (and the ring's mapping) while it
        // sleeps on it: let it go now.
        if was_armed {
            self.shard.changed();
        }
    }
}

/// What an async handle keeps to wait: its word, its reactor, and its
/// registration from the first time it waited.
pub(crate) struct Waiting {
    pub(crate) word: WakeWord,
    pub(crate) reactor: Reactor,
    pub(crate) reg: Option<Registration>,
}

impl Waiting {
    pub(crate) fn new(word: WakeWord, reactor: &Reactor) -> Self {
        Waiting {
            word,
            reactor: reactor.clone(),
            reg: None,
        }
    }

    /// The waiting task is gone: its waker goes too.
    pub(crate) fn stop(&mut self) {
        if let Some(reg) = &mut self.reg {
            reg.disarm();
        }
    }

    /// Debug output for the handle `what`.
    pub(crate) fn fmt_as(&self, what: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(what)
            .field("ring", &self.word.ring_name())
            .field("waited", &self.reg.is_some())
            .finish_non_exhaustive()
    }
}

/// Look with `look`, and `spins` times more while it finds nothing; then
/// register `word` with `reactor` (once for the handle's life, in `reg`)
/// and wait for it ([`Registration::poll_wait`]). Free of `Waiting` so
/// that `look` may borrow its word.
pub(crate) fn poll_look<R>(
    reg: &mut Option<Registration>,
    reactor: &Reactor,
    word: &WakeWord,
    cx: &mut Context<'_>,
    spins: u32,
    mut look: impl FnMut() -> Option<R>,
) -> Poll<R> {
    for _ in 0..=spins {
        if let Some(r) = look() {
            // Found without the waiter's wake (a select! polling every
            // branch, a value that came as the task parked): its entry,
            // if still armed, is disarmed, so no stale waker stays behind
            // and the producers stop paying for a sleeper that is gone.
            if let Some(reg) = reg.as_mut().filter(|r| r.parked) {
                reg.disarm();
            }
            return Poll::Ready(r);
        }
        std::hint::spin_loop();
    }
    reg.get_or_insert_with(|| reactor.register(word.clone()))
        .poll_wait(cx, look)
}

impl Reactor {
    /// The process's reactor, or under loom (one process, no fork) `r`.
    fn global_or(r: &Reactor) -> Reactor {
        #[cfg(not(shmring_loom))]
        {
            let _ = r;
            Reactor::global()
        }
        #[cfg(shmring_loom)]
        r.clone()
    }
}
