//! The library's lifecycle events (takeovers, repairs, stale removals,
//! names removed), which it sends through the `log` facade, printed on
//! stderr. `SHMRING_LOG` sets the level: `off`, `error`, `warn`, `info`
//! (the default), `debug` or `trace`. `SHMRING_LOG_FORMAT=json` prints
//! each as a JSON line (`ts` in RFC 3339 UTC, `level`, `target`,
//! `message`) for a log collector, instead of text.
//!
//! A command that reports its removals itself (`rm`) says so, and the
//! library's removal events (target `shmring::removal`) are then not
//! printed a second time.

use std::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Log, Metadata, Record};

use crate::clock;

struct Stderr {
    json: bool,
}

impl Stderr {
    /// What `record`, logged at `unix_ms`, prints.
    fn line(&self, record: &Record, unix_ms: u64) -> String {
        let level = record.level().as_str().to_ascii_lowercase();
        if self.json {
            serde_json::json!({
                "ts": clock::rfc3339(unix_ms),
                "level": level,
                "target": record.target(),
                "message": record.args().to_string(),
            })
            .to_string()
        } else {
            format!("shmring: {level}: {}", record.args())
        }
    }
}

/// Set once a command prints its own line for each removal.
static OWN_REMOVALS: AtomicBool = AtomicBool::new(false);

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
            && !(metadata.target() == "shmring::removal" && OWN_REMOVALS.load(Ordering::Relaxed))
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}", self.line(record, clock::now_ms()));
        }
    }

    fn flush(&self) {}
}

/// Print events at the level `SHMRING_LOG` asks for (default `info`), in
/// the format `SHMRING_LOG_FORMAT` asks for (`text`, the default, or
/// `json`).
pub fn install() {
    let level = std::env::var("SHMRING_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    let json = std::env::var("SHMRING_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if log::set_logger(Box::leak(Box::new(Stderr { json }))).is_ok() {
        log::set_max_level(level);
    }
}

/// The running command prints a line for each segment it removes: the
/// library's removal events would say it again.
pub fn command_reports_removals() {
    OWN_REMOVALS.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_a_json_line_or_a_text_line() {
        let args = format_args!("ring \"a\": took over");
        let record = Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target("shmring")
            .build();
        let line = Stderr { json: true }.line(&record, 951_827_696_789);
        assert!(!line.contains('\n'), "{line}");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["ts"], "2000-02-29T12:34:56.789Z");
        assert_eq!(event["level"], "info");
        assert_eq!(event["target"], "shmring");
        assert_eq!(event["message"], "ring \"a\": took over");
        let line = Stderr { json: false }.line(&record, 0);
        assert_eq!(line, "shmring: info: ring \"a\": took over");
    }
}
