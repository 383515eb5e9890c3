//! Waiting for a name to appear in the shm directory: an inotify watch on
//! the directory for names created or moved in (a new segment gets its name
//! with `linkat`, which is a creation), so a process that opens a ring
//! before its creator starts sleeps until something is created instead of
//! polling. Each wakeup is only a hint (any name in the directory wakes
//! it): the caller tries its open again. Waits are capped, so a missed
//! event (a watch that could not be made, a directory replaced) costs at
//! most a slice, never a hang.

use std::time::Duration;

/// The longest sleep between two looks, whatever the watch says.
const SLICE: Duration = Duration::from_millis(100);

#[cfg(not(shmring_loom))]
pub(crate) use imp::NameWatch;

#[cfg(not(shmring_loom))]
mod imp {
    use std::os::fd::AsFd;
    use std::time::Duration;

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

    use super::SLICE;
    use crate::platform::segment::SHM_DIR;

    /// A watch on the shm directory (`None`: inotify is unavailable, and
    /// waits are plain sleeps of a slice).
    pub(crate) struct NameWatch(Option<Inotify>);

    impl NameWatch {
        /// Start watching. Made before the caller's first look, so that a
        /// name created between that look and the wait still wakes it.
        pub(crate) fn new() -> Self {
            let watch = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .ok()
                .filter(|ino| {
                    ino.add_watch(
                        SHM_DIR,
                        AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
                    )
                    .is_ok()
                });
            NameWatch(watch)
        }

        /// Sleep until a name is created in the directory, or for `max`
        /// (at most a slice).
        pub(crate) fn wait(&self, max: Duration) {
            let max = max.min(SLICE);
            let Some(ino) = &self.0 else {
                std::thread::sleep(max);
                return;
            };
            let ms = u16::try_from(max.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
                // Drain the events: they are only a hint to look again.
                let _ = ino.read_events();
            }
        }
    }
}

/// The model has no directory: a wait is a yield.
#[cfg(shmring_loom)]
pub(crate) struct NameWatch;

#[cfg(shmring_loom)]
impl NameWatch {
    pub(crate) fn new() -> Self {
        NameWatch
    }

    pub(crate) fn wait(&self, max: Duration) {
        let _ = (max, SLICE);
        crate::platform::sync::yield_now();
    }
}
