//! The naming scheme's promises: the renamed calls keep their old names as
//! deprecated aliases that behave as before, the new `try_` calls say
//! `None` where the old ones lent an empty guard, and each operation's
//! error converts into the umbrella `Error` with nothing lost.

#![allow(deprecated)] // the old names are what is tested

mod common;

use std::time::Duration;

use common::unique_name;
use shmring::{ByteRing, Error, Mpmc, RecvError, Role, SendError, Spsc};

const SHORT: Duration = Duration::from_millis(2);

#[test]
fn the_old_spsc_chunk_names_lend_empty_chunks_where_the_new_ones_say_none() {
    let ring = Spsc::<u64>::create(&unique_name("old-spsc"), 2).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(rx.read_chunk(2).is_empty());
    assert!(rx.try_read(2).is_none());
    assert!(rx.try_read(0).is_none());

    let mut chunk = tx.write_chunk(8);
    assert_eq!(chunk.fill_from_iter(1..), 2);
    chunk.commit_all();
    assert!(tx.write_chunk(1).is_empty(), "full: an empty chunk");
    assert!(tx.try_reserve(1).is_none(), "full: None");
    assert!(matches!(
        tx.write_chunk_timeout(1, SHORT),
        Err(Error::Timeout {
            op: "reserve_timeout",
            ..
        })
    ));

    let chunk = rx.read_chunk(8);
    assert_eq!(chunk.iter().copied().collect::<Vec<_>>(), [1, 2]);
    drop(chunk);
    assert!(matches!(
        rx.read_chunk_timeout(1, SHORT),
        Err(Error::Timeout {
            op: "read_timeout",
            ..
        })
    ));
}

#[test]
fn the_old_mpmc_names_reserve_and_read_as_the_new_ones() {
    let ring = Mpmc::<u64>::create(&unique_name("old-mpmc"), 1).unwrap();
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(rx.read().is_none());
    let mut slot = tx.claim().expect("room");
    *slot = 9;
    slot.commit();
    assert!(tx.claim().is_none(), "full");
    assert!(matches!(
        tx.claim_timeout(SHORT),
        Err(Error::Timeout {
            op: "reserve_timeout",
            ..
        })
    ));
    assert_eq!(rx.read().map(|slot| *slot), Some(9));

    let mut stream = ring.producer_stream(3).unwrap();
    stream.claim().expect("room again").commit();
    assert!(stream.claim_timeout(SHORT).is_err());
    assert_eq!(stream.committed(), 1);
}

#[test]
fn each_operations_error_converts_into_the_umbrella_with_its_fields() {
    let ring = Spsc::<u64>::create(&unique_name("convert"), 1).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());

    let recv = rx.pop_timeout(SHORT).unwrap_err();
    let text = recv.to_string();
    let RecvError::Timeout { waited, .. } = recv else {
        panic!("{recv}")
    };
    match Error::from(rx.pop_timeout(SHORT).unwrap_err()) {
        Error::Timeout {
            name,
            op,
            peer,
            peer_attached,
            ..
        } => {
            assert_eq!((name.as_str(), op), (ring.name(), "pop_timeout"));
            assert_eq!((peer, peer_attached), (Role::Producer, true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(waited, SHORT);
    assert!(
        text.contains("pop_timeout") && text.contains(ring.name()),
        "{text}"
    );

    tx.try_push(1).unwrap();
    let full = tx.try_push(2).unwrap_err();
    assert!(matches!(Error::from(full), Error::Full));
    let late = tx.push_timeout(2, SHORT).unwrap_err();
    let said = late.to_string();
    let umbrella = Error::from(late);
    assert_eq!(umbrella.to_string(), said, "one text at both levels");
    assert!(matches!(
        umbrella,
        Error::Timeout {
            peer: Role::Consumer,
            ..
        }
    ));

    tx.close();
    assert_eq!(rx.pop_timeout(SHORT).unwrap(), 1);
    let closed = rx.pop_timeout(SHORT).unwrap_err();
    assert!(matches!(closed, RecvError::Closed { .. }), "{closed}");
    assert!(matches!(Error::from(closed), Error::Closed { name } if name == ring.name()));

    let bytes = ByteRing::create(&unique_name("convert-bytes"), 64).unwrap();
    let mut tx = bytes.producer().unwrap();
    let long = vec![0; bytes.max_message_len() + 1];
    let too_long = tx.try_send(&long).unwrap_err();
    assert!(matches!(too_long, SendError::MessageTooLarge { .. }));
    assert!(matches!(
        Error::from(too_long),
        Error::MessageTooLarge { len, max } if len == long.len() && max == bytes.max_message_len()
    ));
    while tx.try_send(b"x").is_ok() {}
    assert!(matches!(tx.try_send(b"x"), Err(SendError::Full)));
    assert!(matches!(Error::from(SendError::Full), Error::Full));
}
