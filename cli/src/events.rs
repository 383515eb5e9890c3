//! The library's lifecycle events (takeovers, repairs, stale removals,
//! names removed), which it sends through the `log` facade, printed on
//! stderr. `SHMRING_LOG` sets the level: `off`, `error`, `warn`, `info`
//! (the default), `debug` or `trace`.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            eprintln!("shmring: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Print events at the level `SHMRING_LOG` asks for (default `info`).
pub fn install() {
    let level = std::env::var("SHMRING_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
