//! What errors and small public types say: each text names what went wrong
//! and where, and conversions into the umbrella `Error` keep every field.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use shmring::{Error, RecvError, Schema, SegmentName, Spsc};

#[test]
fn no_space_says_whether_the_segment_could_ever_fit() {
    let nospace = |bytes, free| Error::NoSpace {
        name: "quotes".into(),
        bytes,
        free,
        total: 1000,
    };
    let full = nospace(500, 100).to_string();
    assert!(
        full.contains("\"quotes\"") && full.contains("only 100 of /dev/shm's 1000 bytes are free"),
        "{full}"
    );
    let never = nospace(5000, 100).to_string();
    assert!(never.contains("larger than all of /dev/shm"), "{never}");
}

#[test]
fn an_invalid_schema_name_converts_into_the_umbrella_error_with_its_reason() {
    let bad = Schema::new("", 1).unwrap_err();
    let text = bad.to_string();
    assert!(text.contains("invalid schema name \"\""), "{text}");
    let reason = bad.reason;
    match Error::from(bad) {
        Error::InvalidSchema { name, reason: r } => assert_eq!((name.as_str(), r), ("", reason)),
        other => panic!("{other:?}"),
    }
}

/// A full ring hands the value back, and says so without printing it.
#[test]
fn a_refused_push_keeps_the_value_and_names_the_ring_on_timeout() {
    let name = unique_name("full");
    let ring = Spsc::<u64>::create(&name, 1).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    let full = tx.try_push(2).unwrap_err();
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert!(full.to_string().contains("full"), "{full}");
    assert_eq!(full.into_inner(), 2);
    // No consumer exists, so the wait can only time out.
    let timeout = tx.push_timeout(3, Duration::from_millis(1)).unwrap_err();
    let debug = format!("{timeout:?}");
    assert!(
        debug.contains("PushTimeout") && debug.contains(&name) && debug.contains("push_timeout"),
        "{debug}"
    );
    assert_eq!(timeout.into_inner(), 3);
}

#[test]
fn a_stall_names_the_ring_the_call_and_the_position_in_both_error_types() {
    let stalled = RecvError::Stalled {
        name: "feed".into(),
        op: "pop_timeout",
        position: 7,
    };
    let text = stalled.to_string();
    assert!(
        text.contains("pop_timeout on ring \"feed\" stalled at position 7"),
        "{text}"
    );
    let umbrella = Error::from(stalled);
    assert_eq!(umbrella.to_string(), text);
    assert!(matches!(
        umbrella,
        Error::Stalled {
            op: "pop_timeout",
            position: 7,
            ..
        }
    ));
}

#[test]
fn names_and_schemas_print_as_written() {
    assert_eq!(SegmentName::new("/quotes").unwrap().to_string(), "quotes");
    let schema = Schema::new("Quote", 2).unwrap();
    assert_eq!(format!("{schema:?}"), "Schema(\"Quote\" v2)");
}

/// 31 ASCII bytes then a two-byte letter: 33 bytes, one over the limit.
#[allow(dead_code)]
struct Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé;

/// A type name longer than a schema holds is cut at a character boundary,
/// never inside a character.
#[test]
fn a_long_non_ascii_type_name_is_cut_at_a_character_boundary() {
    let schema = Schema::of::<Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé>();
    assert_eq!(schema.name(), "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
}

/// `fn main() -> shmring::Result<()>` (the README's pattern) prints
/// `Error: ` and the error's `Debug`: that is the message naming the ring,
/// the call and the likely cause, not `NotFound { name: ".." }`.
#[test]
fn a_failing_main_prints_the_message() {
    let name = unique_name("no-such");
    let err = Spsc::<u64>::open(&name).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(format!("{err:?}").contains(&format!("{name:?}")), "{err:?}");

    let ring = Spsc::<u64>::create(&unique_name("debug"), 2).unwrap();
    let mut rx = ring.consumer().unwrap();
    let err = rx.pop_timeout(Duration::ZERO).unwrap_err();
    assert!(matches!(err, RecvError::Timeout { .. }), "{err}");
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(format!("{err:?}").contains(ring.name()), "{err:?}");
    let bytes = shmring::ByteRing::create(&unique_name("debug-bytes"), 64).unwrap();
    let err = bytes.producer().unwrap().try_send(&[0; 4096]).unwrap_err();
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(err.to_string().contains("4096"), "{err}");
}
