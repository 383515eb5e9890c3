//! The demo's progress line: which measurement runs now, on stderr, only
//! when stderr is a terminal (so piped output stays clean).

use std::io::{IsTerminal, Write};

/// A one-line progress display of `total` steps.
pub struct Progress {
    done: usize,
    total: usize,
    shown: bool,
    enabled: bool,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            done: 0,
            total,
            shown: false,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Show that the next step, `label`, has started.
    pub fn step(&mut self, label: &str) {
        self.done += 1;
        if !self.enabled {
            return;
        }
        const WIDTH: usize = 24;
        let filled = WIDTH * (self.done - 1) / self.total.max(1);
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH - filled));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K[{bar}] {}/{} {label}", self.done, self.total);
        let _ = err.flush();
        self.shown = true;
    }

    /// Erase the line before printing results.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
