//! The C ABI's edges, called as C calls them: statuses, messages that
//! stay in the ring, lengths refused before they are trusted, NULL
//! out-pointers that make nothing, and timeouts of zero that do not wait.

use std::ffi::{CStr, CString};
use std::ptr;

use shmring_c::*;

fn name(tag: &str) -> CString {
    CString::new(format!("shmring-c-abi-{tag}-{}", std::process::id())).unwrap()
}

fn last_error() -> String {
    // SAFETY: a NUL-terminated string the library keeps for this thread.
    unsafe { CStr::from_ptr(shmring_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A ring with its producer and consumer (closed by `Drop`).
struct Rig(
    *mut ShmringBytes,
    *mut ShmringBytesProducer,
    *mut ShmringBytesConsumer,
);

impl Rig {
    fn new(tag: &str, capacity: usize) -> Rig {
        let (mut ring, mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        // SAFETY: a NUL-terminated name and writable out-pointers.
        unsafe {
            assert_eq!(
                shmring_bytes_create(name(tag).as_ptr(), capacity, &mut ring),
                SHMRING_OK
            );
            assert_eq!(shmring_bytes_producer(ring, &mut tx), SHMRING_OK);
            assert_eq!(shmring_bytes_consumer(ring, &mut rx), SHMRING_OK);
        }
        Rig(ring, tx, rx)
    }

    fn send(&self, data: &[u8]) -> i32 {
        // SAFETY: a live handle; `data` is readable.
        unsafe { shmring_bytes_try_send(self.1, data.as_ptr(), data.len()) }
    }

    fn recv(&self, cap: usize) -> (i32, Vec<u8>) {
        let (mut buf, mut len) = (vec![0u8; cap], 0usize);
        // SAFETY: a live handle; `buf` holds `cap` bytes.
        let status =
            unsafe { shmring_bytes_recv_timeout(self.2, buf.as_mut_ptr(), cap, &mut len, 0) };
        buf.truncate(len.min(cap));
        (status, buf)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // SAFETY: handles made above, closed once.
        unsafe {
            shmring_bytes_consumer_close(self.2);
            shmring_bytes_producer_close(self.1);
            shmring_bytes_close(self.0);
        }
    }
}

#[test]
fn a_message_too_long_for_the_buffer_stays_for_the_next_receive_even_by_another_handle() {
    let mut rig = Rig::new("too-small", 4096);
    assert_eq!(rig.send(b"a message of 25 bytes...."), SHMRING_OK);
    let (mut buf, mut len) = ([0u8; 4], 0usize);
    // SAFETY: a live handle; `buf` holds 4 bytes.
    let status = unsafe { shmring_bytes_try_recv(rig.2, buf.as_mut_ptr(), 4, &mut len) };
    assert_eq!((status, len), (SHMRING_BUFFER_TOO_SMALL, 25));
    // The consumer goes; the next one receives the message, once.
    // SAFETY: the consumer made by the rig, closed once (replaced below).
    unsafe {
        shmring_bytes_consumer_close(rig.2);
        assert_eq!(shmring_bytes_consumer(rig.0, &mut rig.2), SHMRING_OK);
    }
    assert_eq!(
        rig.recv(64),
        (SHMRING_OK, b"a message of 25 bytes....".to_vec())
    );
    assert_eq!(rig.recv(64).0, SHMRING_EMPTY);
}

#[test]
fn zero_timeouts_do_not_wait_and_report_full_or_empty() {
    let rig = Rig::new("zero", 256);
    assert_eq!(rig.recv(64).0, SHMRING_EMPTY);
    while rig.send(&[7; 40]) == SHMRING_OK {}
    let mut at = ptr::null_mut();
    // SAFETY: live handles; readable data; a writable out-pointer.
    unsafe {
        assert_eq!(
            shmring_bytes_send_timeout(rig.1, [1u8; 8].as_ptr(), 8, 0),
            SHMRING_FULL
        );
        assert_eq!(shmring_bytes_reserve(rig.1, 8, 0, &mut at), SHMRING_FULL);
        assert!(at.is_null());
        // A real wait on a full ring times out, naming the ring.
        assert_eq!(
            shmring_bytes_send_timeout(rig.1, [1u8; 8].as_ptr(), 8, 1_000_000),
            SHMRING_TIMEOUT
        );
    }
    assert!(
        last_error().contains("shmring-c-abi-zero"),
        "{}",
        last_error()
    );
}

#[test]
fn lengths_are_refused_before_they_are_trusted() {
    let rig = Rig::new("lengths", 4096);
    let one = [0u8; 1];
    // SAFETY: a live handle; the length is a lie the call must refuse
    // before it reads a byte past `one`.
    let status = unsafe { shmring_bytes_try_send(rig.1, one.as_ptr(), usize::MAX) };
    assert_eq!(status, SHMRING_MESSAGE_TOO_LARGE);
    assert!(last_error().contains("maximum"), "{}", last_error());
    // SAFETY: as above.
    let status = unsafe { shmring_bytes_send_timeout(rig.1, ptr::null(), 3, 0) };
    assert_eq!(status, SHMRING_INVALID_ARGUMENT);
    // SAFETY: a live handle; nothing is written through `data`.
    let status = unsafe { shmring_bytes_reserve(rig.1, usize::MAX, 0, &mut ptr::null_mut()) };
    assert_eq!(status, SHMRING_MESSAGE_TOO_LARGE);
    assert_eq!(rig.recv(64).0, SHMRING_EMPTY, "nothing was sent");
}

#[test]
fn a_null_out_pointer_makes_nothing_and_waits_for_nothing() {
    let n = name("null-out");
    // SAFETY: a NUL-terminated name; `out` is NULL on purpose.
    unsafe {
        assert_eq!(
            shmring_bytes_create(n.as_ptr(), 4096, ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
        let start = std::time::Instant::now();
        let an_hour = 3_600_000_000_000;
        assert_eq!(
            shmring_bytes_open_timeout(n.as_ptr(), an_hour, ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
        assert!(start.elapsed().as_secs() < 60, "it waited");
        let mut ring = ptr::null_mut();
        assert_eq!(shmring_bytes_open(n.as_ptr(), &mut ring), SHMRING_NOT_FOUND);
        assert!(ring.is_null());
    }
    assert!(last_error().contains("null-out"), "{}", last_error());
}

#[test]
fn an_aborted_reservation_publishes_nothing() {
    let rig = Rig::new("abort", 4096);
    let mut at = ptr::null_mut();
    // SAFETY: a live handle; `at` receives room for 16 bytes.
    unsafe {
        assert_eq!(shmring_bytes_reserve(rig.1, 16, 0, &mut at), SHMRING_OK);
        at.write_bytes(9, 16);
        assert_eq!(shmring_bytes_abort(rig.1), SHMRING_OK);
    }
    assert_eq!(rig.recv(64).0, SHMRING_EMPTY);
    assert_eq!(rig.send(b"after"), SHMRING_OK);
    assert_eq!(rig.recv(64), (SHMRING_OK, b"after".to_vec()));
}

impl Rig {
    /// Send `messages` in one call; status and how many went.
    fn send_many(&self, messages: &[&[u8]], timeout_ns: u64) -> (i32, usize) {
        let data: Vec<u8> = messages.concat();
        let lens: Vec<usize> = messages.iter().map(|m| m.len()).collect();
        let mut sent = usize::MAX;
        // SAFETY: a live handle; `lens` holds `count` lengths that add up
        // to `data`'s length.
        let status = unsafe {
            shmring_bytes_send_many(
                self.1,
                data.as_ptr(),
                lens.as_ptr(),
                lens.len(),
                timeout_ns,
                &mut sent,
            )
        };
        (status, sent)
    }

    /// Receive up to `max` messages into `cap` bytes in one call.
    fn recv_many(&self, cap: usize, max: usize) -> (i32, Vec<Vec<u8>>, usize) {
        let (mut buf, mut lens, mut count) = (vec![0u8; cap], vec![0usize; max], usize::MAX);
        // SAFETY: a live handle; `buf` holds `cap` bytes, `lens` `max`.
        let status = unsafe {
            shmring_bytes_recv_many(
                self.2,
                buf.as_mut_ptr(),
                cap,
                lens.as_mut_ptr(),
                max,
                &mut count,
                0,
            )
        };
        let mut at = 0;
        let messages = lens[..count.min(max)]
            .iter()
            .map(|&n| {
                at += n;
                buf[at - n..at].to_vec()
            })
            .collect();
        (status, messages, lens[0])
    }
}

#[test]
fn many_messages_go_in_one_call_each_way_and_none_is_lost_at_the_edges() {
    let rig = Rig::new("many", 256);
    let max = {
        // SAFETY: a live handle.
        unsafe { shmring_bytes_max_message_len(rig.0) }
    };
    // Every length checked before anything goes: nothing sent.
    let too_long = vec![7u8; max + 1];
    assert_eq!(
        rig.send_many(&[b"ok", &too_long], 0),
        (SHMRING_MESSAGE_TOO_LARGE, 0)
    );
    assert_eq!(rig.recv(64).0, SHMRING_EMPTY);
    // Room runs out after some: how many went, in order, the rest the
    // caller's to send again.
    let messages: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 1 + i as usize % 13]).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let (status, sent) = rig.send_many(&refs, 0);
    assert_eq!(status, SHMRING_OK);
    assert!(
        0 < sent && sent < messages.len(),
        "{sent} of 64 fit in 256 bytes"
    );
    // A buffer too small for the first: its length, and it stays.
    let first = messages[0].len();
    let (status, got, needed) = rig.recv_many(0, 4);
    assert_eq!(
        (status, got.len(), needed),
        (SHMRING_BUFFER_TOO_SMALL, 0, first)
    );
    // Taken in pieces by buffer room and by count, nothing skipped.
    let mut received = Vec::new();
    loop {
        let (status, got, _) = rig.recv_many(40, 5);
        if status == SHMRING_EMPTY {
            break;
        }
        assert_eq!(status, SHMRING_OK);
        assert!(!got.is_empty() && got.len() <= 5);
        assert!(got.iter().map(Vec::len).sum::<usize>() <= 40);
        received.extend(got);
    }
    assert_eq!(received, messages[..sent]);
    // A full ring: FULL now, and nothing sent.
    while rig.send(&[1; 32]) == SHMRING_OK {}
    assert_eq!(rig.send_many(&refs, 0), (SHMRING_FULL, 0));
    assert_eq!(rig.send_many(&refs, 1_000_000).0, SHMRING_TIMEOUT);
    assert!(last_error().contains("timed out"), "{}", last_error());
}

#[test]
fn the_batch_calls_refuse_null_pointers_and_a_zero_max() {
    let rig = Rig::new("many-null", 256);
    let (mut buf, mut lens, mut n) = ([0u8; 8], [0usize; 2], 0usize);
    // SAFETY: NULLs where the ABI checks for them; live handles.
    unsafe {
        assert_eq!(
            shmring_bytes_send_many(rig.1, ptr::null(), ptr::null(), 2, 0, &mut n),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_send_many(rig.1, buf.as_ptr(), lens.as_ptr(), 0, 0, ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_recv_many(rig.2, buf.as_mut_ptr(), 8, lens.as_mut_ptr(), 0, &mut n, 0),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_recv_many(rig.2, buf.as_mut_ptr(), 8, ptr::null_mut(), 2, &mut n, 0),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_recv_many(
                ptr::null_mut(),
                buf.as_mut_ptr(),
                8,
                lens.as_mut_ptr(),
                2,
                &mut n,
                0
            ),
            SHMRING_INVALID_ARGUMENT
        );
        // Zero messages: nothing to do, done.
        n = 9;
        assert_eq!(
            shmring_bytes_send_many(rig.1, ptr::null(), ptr::null(), 0, 0, &mut n),
            SHMRING_OK
        );
        assert_eq!(n, 0);
    }
}

#[test]
fn inspect_reads_a_ring_without_joining_it() {
    let rig = Rig::new("inspect", 4096);
    assert_eq!(rig.send(b"abc"), SHMRING_OK);
    // SAFETY: zeroes are a valid ShmringInfo (integers and bytes).
    let mut info: ShmringInfo = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated name and a writable out-pointer.
    let status = unsafe { shmring_inspect(name("inspect").as_ptr(), &mut info) };
    assert_eq!(status, SHMRING_OK, "{}", last_error());
    assert_eq!(info.kind, SHMRING_KIND_BYTES);
    assert_eq!(
        (info.capacity, info.producers, info.consumers),
        (4096, 1, 1)
    );
    assert!(info.fill > 3 && info.fill == info.written - info.read);
    assert_eq!((info.in_use, info.mode), (1, 0o600));
    // SAFETY: the library wrote a NUL-terminated name.
    let schema = unsafe { CStr::from_ptr(info.schema.as_ptr()) };
    assert!(!schema.to_bytes().is_empty());
    let before = info.written;
    // Looking joined nothing: the roles are still the rig's alone.
    let mut rx = ptr::null_mut();
    // SAFETY: a live ring handle and a writable out-pointer.
    let status = unsafe { shmring_bytes_consumer(rig.0, &mut rx) };
    assert_eq!(status, SHMRING_ROLE_TAKEN);
    assert_eq!(rig.recv(8), (SHMRING_OK, b"abc".to_vec()));
    // SAFETY: as above.
    let status = unsafe { shmring_inspect(name("inspect").as_ptr(), &mut info) };
    assert_eq!(status, SHMRING_OK);
    assert_eq!((info.written, info.fill), (before, 0));
    // SAFETY: as above; a ring that is not there, and a NULL out.
    unsafe {
        assert_eq!(
            shmring_inspect(name("nowhere").as_ptr(), &mut info),
            SHMRING_NOT_FOUND
        );
        assert_eq!(
            shmring_inspect(name("inspect").as_ptr(), ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
    }
}

#[test]
fn a_message_unread_stays_for_the_next_receive() {
    let rig = Rig::new("unread", 4096);
    assert_eq!(rig.send(b"again"), SHMRING_OK);
    let (mut data, mut len) = (ptr::null(), 0usize);
    // SAFETY: a live handle and writable out-pointers; the bytes at `data`
    // are read before the loan ends.
    unsafe {
        assert_eq!(
            shmring_bytes_read(rig.2, 0, &mut data, &mut len),
            SHMRING_OK
        );
        assert_eq!(std::slice::from_raw_parts(data, len), b"again");
        assert_eq!(shmring_bytes_unread(rig.2), SHMRING_OK);
        // The loan is over: no longer busy, and nothing lent to unread.
        assert_eq!(shmring_bytes_unread(rig.2), SHMRING_OK);
    }
    assert_eq!(rig.recv(8), (SHMRING_OK, b"again".to_vec()));
    assert_eq!(rig.recv(8).0, SHMRING_EMPTY);
}

/// The handle's wakeup socket, duplicated (the handle keeps its own).
fn wakeups(fd: i32) -> std::os::unix::net::UnixDatagram {
    use std::os::fd::BorrowedFd;
    // SAFETY: the handle's open fd, borrowed only to duplicate it.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned();
    std::os::unix::net::UnixDatagram::from(owned.expect("dup"))
}

/// Wait (bounded) until a wakeup comes on `fd`, and take it.
fn wait_for_wakeup(fd: i32) {
    let end = wakeups(fd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut byte = [0u8; 1];
    while end.recv(&mut byte).is_err() {
        assert!(std::time::Instant::now() < deadline, "no wakeup came");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Closes a handle when dropped, even when a test fails.
struct Closer<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Closer<T> {
    fn drop(&mut self) {
        // SAFETY: a handle made by the ABI (or NULL), closed once, here.
        unsafe { (self.1)(self.0) }
    }
}

#[test]
fn an_awaiting_consumer_is_woken_through_its_fd() {
    let (mut ring, mut tx, mut rx, mut fd) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), -1);
    let (mut buf, mut len) = ([0u8; 16], 0usize);
    let poll = |rx, buf: &mut [u8; 16], cap, len: &mut usize| {
        // SAFETY: a live handle; `buf` holds 16 >= `cap` bytes.
        unsafe { shmring_bytes_poll_recv(rx, buf.as_mut_ptr(), cap, len) }
    };
    // SAFETY: a NUL-terminated name and writable out-pointers; each handle
    // is closed once, by its closer.
    unsafe {
        let name = name("await");
        assert_eq!(
            shmring_bytes_create(name.as_ptr(), 4096, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_bytes_close);
        assert_eq!(shmring_bytes_producer(ring, &mut tx), SHMRING_OK);
        let _tx = Closer(tx, shmring_bytes_producer_close);
        assert_eq!(
            shmring_bytes_async_consumer(ring, &mut rx, &mut fd),
            SHMRING_OK
        );
        let _rx = Closer(rx, shmring_bytes_async_consumer_close);
        assert!(fd >= 0);
        // Nothing yet: EMPTY, with the waker registered, and no wakeup.
        assert_eq!(poll(rx, &mut buf, 16, &mut len), SHMRING_EMPTY);
        let quiet = wakeups(fd).recv(&mut [0u8; 1]).map_err(|e| e.kind());
        assert_eq!(quiet, Err(std::io::ErrorKind::WouldBlock));
        // A message sent after that wakes the fd (the waiter thread's
        // doing), and the next poll takes it.
        assert_eq!(shmring_bytes_try_send(tx, b"woken".as_ptr(), 5), SHMRING_OK);
        wait_for_wakeup(fd);
        assert_eq!(poll(rx, &mut buf, 16, &mut len), SHMRING_OK);
        assert_eq!(&buf[..len], b"woken");
        // Too long for the buffer: its length, and it stays.
        assert_eq!(
            shmring_bytes_try_send(tx, b"0123456789".as_ptr(), 10),
            SHMRING_OK
        );
        assert_eq!(poll(rx, &mut buf, 4, &mut len), SHMRING_BUFFER_TOO_SMALL);
        assert_eq!(len, 10);
        assert_eq!(poll(rx, &mut buf, 16, &mut len), SHMRING_OK);
        assert_eq!(&buf[..len], b"0123456789");
        assert_eq!(poll(rx, &mut buf, 16, &mut len), SHMRING_EMPTY);
        // The role is the awaiting consumer's.
        let mut other = ptr::null_mut();
        assert_eq!(shmring_bytes_consumer(ring, &mut other), SHMRING_ROLE_TAKEN);
    }
}

#[test]
fn an_awaiting_producer_is_woken_through_its_fd_when_room_comes() {
    let (mut ring, mut tx, mut rx, mut fd) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), -1);
    let message = [7u8; 100];
    // SAFETY: a NUL-terminated name and writable out-pointers; each handle
    // is closed once, by its closer; buffers as long as the lengths given.
    unsafe {
        let name = name("await-tx");
        assert_eq!(
            shmring_bytes_create(name.as_ptr(), 1024, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_bytes_close);
        assert_eq!(
            shmring_bytes_async_producer(ring, &mut tx, &mut fd),
            SHMRING_OK
        );
        let _tx = Closer(tx, shmring_bytes_async_producer_close);
        assert_eq!(shmring_bytes_consumer(ring, &mut rx), SHMRING_OK);
        let _rx = Closer(rx, shmring_bytes_consumer_close);
        assert!(fd >= 0);
        // Fill the ring: OK until there is no room, then FULL with the
        // waker registered, and no wakeup.
        let mut sent = 0;
        while shmring_bytes_poll_send(tx, message.as_ptr(), message.len()) == SHMRING_OK {
            sent += 1;
            assert!(sent <= 1024 / 100, "more sent than the ring holds");
        }
        assert!(sent > 0);
        assert_eq!(
            shmring_bytes_poll_send(tx, message.as_ptr(), message.len()),
            SHMRING_FULL
        );
        let quiet = wakeups(fd).recv(&mut [0u8; 1]).map_err(|e| e.kind());
        assert_eq!(quiet, Err(std::io::ErrorKind::WouldBlock));
        // A receive makes room: the fd wakes (the waiter thread's doing),
        // and the next poll sends.
        let (mut buf, mut len) = ([0u8; 128], 0usize);
        assert_eq!(
            shmring_bytes_try_recv(rx, buf.as_mut_ptr(), 128, &mut len),
            SHMRING_OK
        );
        wait_for_wakeup(fd);
        assert_eq!(
            shmring_bytes_poll_send(tx, message.as_ptr(), message.len()),
            SHMRING_OK
        );
        // A batch with no room for its first: FULL, none sent, armed.
        let lens = [100usize, 100];
        let two = [7u8; 200];
        let mut n = 9;
        assert_eq!(
            shmring_bytes_poll_send_many(tx, two.as_ptr(), lens.as_ptr(), 2, &mut n),
            SHMRING_FULL
        );
        assert_eq!(n, 0);
        // Room for one: one goes, and the count says so.
        assert_eq!(
            shmring_bytes_try_recv(rx, buf.as_mut_ptr(), 128, &mut len),
            SHMRING_OK
        );
        wait_for_wakeup(fd);
        assert_eq!(
            shmring_bytes_poll_send_many(tx, two.as_ptr(), lens.as_ptr(), 2, &mut n),
            SHMRING_OK
        );
        assert_eq!(n, 1);
        // Every message is whole, and as many as were sent are there.
        let mut got = 0;
        while shmring_bytes_try_recv(rx, buf.as_mut_ptr(), 128, &mut len) == SHMRING_OK {
            assert_eq!(&buf[..len], &message[..]);
            got += 1;
        }
        // Filled, less one taken, one sent, less one taken, one sent.
        assert_eq!(got, sent);
        // Too long for the ring, before anything is tried; NULLs refused.
        let huge = vec![0u8; 4096];
        assert_eq!(
            shmring_bytes_poll_send(tx, huge.as_ptr(), huge.len()),
            SHMRING_MESSAGE_TOO_LARGE
        );
        assert_eq!(
            shmring_bytes_poll_send(tx, ptr::null(), 3),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_poll_send_many(tx, two.as_ptr(), lens.as_ptr(), 2, ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_poll_send_many(tx, two.as_ptr(), ptr::null(), 2, &mut n),
            SHMRING_INVALID_ARGUMENT
        );
        // The producer's place is the awaiting producer's: the ring's
        // presence says so.
        assert_eq!(shmring_bytes_has_producer(ring), 1);
    }
}

#[test]
fn an_awaiting_consumer_takes_a_batch_once_woken() {
    let (mut ring, mut tx, mut rx, mut fd) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), -1);
    let (mut buf, mut lens, mut n) = ([0u8; 16], [0usize; 2], 9usize);
    // SAFETY: a NUL-terminated name and writable out-pointers; each handle
    // is closed once, by its closer; buffers as long as the lengths given.
    unsafe {
        let name = name("await-many");
        assert_eq!(
            shmring_bytes_create(name.as_ptr(), 4096, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_bytes_close);
        assert_eq!(shmring_bytes_producer(ring, &mut tx), SHMRING_OK);
        let _tx = Closer(tx, shmring_bytes_producer_close);
        assert_eq!(
            shmring_bytes_async_consumer(ring, &mut rx, &mut fd),
            SHMRING_OK
        );
        let _rx = Closer(rx, shmring_bytes_async_consumer_close);
        let poll = |cap, n: &mut usize, buf: &mut [u8; 16], lens: &mut [usize; 2]| {
            shmring_bytes_poll_recv_many(rx, buf.as_mut_ptr(), cap, lens.as_mut_ptr(), 2, n)
        };
        // None yet: EMPTY, 0 taken, armed, and no wakeup.
        assert_eq!(poll(16, &mut n, &mut buf, &mut lens), SHMRING_EMPTY);
        assert_eq!(n, 0);
        let quiet = wakeups(fd).recv(&mut [0u8; 1]).map_err(|e| e.kind());
        assert_eq!(quiet, Err(std::io::ErrorKind::WouldBlock));
        for m in [&b"one"[..], b"two", b"three", b"0123456789abcdef!"] {
            assert_eq!(shmring_bytes_try_send(tx, m.as_ptr(), m.len()), SHMRING_OK);
        }
        wait_for_wakeup(fd);
        // Two at most, the first woken for and the rest there now.
        assert_eq!(poll(16, &mut n, &mut buf, &mut lens), SHMRING_OK);
        assert_eq!((n, lens), (2, [3, 3]));
        assert_eq!(&buf[..6], b"onetwo");
        // One fits, the next does not: it stays.
        assert_eq!(poll(8, &mut n, &mut buf, &mut lens), SHMRING_OK);
        assert_eq!((n, lens[0]), (1, 5));
        assert_eq!(&buf[..5], b"three");
        // The first does not fit: its length, and it stays.
        assert_eq!(
            poll(16, &mut n, &mut buf, &mut lens),
            SHMRING_BUFFER_TOO_SMALL
        );
        assert_eq!((n, lens[0]), (0, 17));
        // Refused: a zero max, NULL lengths.
        assert_eq!(
            shmring_bytes_poll_recv_many(rx, buf.as_mut_ptr(), 16, lens.as_mut_ptr(), 0, &mut n),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_bytes_poll_recv_many(rx, buf.as_mut_ptr(), 16, ptr::null_mut(), 2, &mut n),
            SHMRING_INVALID_ARGUMENT
        );
    }
}

/// A typed ring of `u64` values made through the ABI, with its producer
/// and consumer (closed by their closers).
fn typed_layout(schema: &std::ffi::CStr) -> ShmringLayout {
    ShmringLayout {
        schema: schema.as_ptr(),
        version: 0,
        size: 8,
        align: 8,
    }
}

#[test]
fn typed_rings_check_their_layouts_kinds_and_lengths() {
    let schema = CString::new("u64").unwrap();
    let good = typed_layout(&schema);
    let name = name("typed-edges");
    let mut ring = ptr::null_mut();
    // SAFETY: NUL-terminated strings, readable layouts, writable out-pointers.
    unsafe {
        for (layout, why) in [
            (ShmringLayout { align: 3, ..good }, "an alignment of 3"),
            (ShmringLayout { size: 0, ..good }, "a size of 0"),
            (
                ShmringLayout { size: 12, ..good },
                "a size that is not a multiple of 8",
            ),
            (
                ShmringLayout {
                    schema: ptr::null(),
                    ..good
                },
                "no schema",
            ),
        ] {
            assert_eq!(
                shmring_typed_create(name.as_ptr(), SHMRING_KIND_SPSC, &layout, 8, &mut ring),
                SHMRING_INVALID_ARGUMENT,
                "{why}"
            );
            assert!(ring.is_null(), "{why}: no handle");
        }
        assert_eq!(
            shmring_typed_create(name.as_ptr(), SHMRING_KIND_SPSC, ptr::null(), 8, &mut ring),
            SHMRING_INVALID_ARGUMENT
        );
        // A schema name no header holds is the caller's error too.
        let long = CString::new("x".repeat(33)).unwrap();
        assert_eq!(
            shmring_typed_create(
                name.as_ptr(),
                SHMRING_KIND_SPSC,
                &typed_layout(&long),
                8,
                &mut ring
            ),
            SHMRING_INVALID_ARGUMENT
        );
        assert!(last_error().contains("schema"), "{}", last_error());
        assert_eq!(
            shmring_typed_create(name.as_ptr(), SHMRING_KIND_BYTES, &good, 8, &mut ring),
            SHMRING_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("SHMRING_KIND_SPSC"),
            "{}",
            last_error()
        );
        assert_eq!(
            shmring_typed_create(name.as_ptr(), SHMRING_KIND_MPMC, &good, 2, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_typed_close);
        assert_eq!(shmring_typed_value_len(ring), 8);
        assert_eq!(shmring_typed_value_len(ptr::null()), 0);
        // The ring a Rust process sees: an Mpmc<u64>.
        let rust = shmring::Mpmc::<u64>::open(name.to_str().unwrap()).unwrap();
        assert!(shmring::Spsc::<u64>::open(name.to_str().unwrap()).is_err());
        let mut other = ptr::null_mut();
        assert_eq!(
            shmring_typed_open(name.as_ptr(), SHMRING_KIND_SPSC, &good, &mut other),
            SHMRING_MISMATCH
        );
        let (mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut());
        assert_eq!(
            (
                shmring_typed_has_producer(ring),
                shmring_typed_has_consumer(ring)
            ),
            (0, 0)
        );
        assert_eq!(shmring_typed_producer(ring, &mut tx), SHMRING_OK);
        let _tx = Closer(tx, shmring_typed_producer_close);
        assert_eq!(shmring_typed_consumer(ring, &mut rx), SHMRING_OK);
        let _rx = Closer(rx, shmring_typed_consumer_close);
        assert_eq!(
            (
                shmring_typed_has_producer(ring),
                shmring_typed_has_consumer(ring)
            ),
            (1, 1)
        );
        assert_eq!(shmring_typed_has_producer(ptr::null()), 0);

        // Lengths other than the value's, and NULLs, are refused.
        let v = 7u64.to_ne_bytes();
        assert_eq!(
            shmring_typed_try_push(tx, v.as_ptr().cast(), 4),
            SHMRING_INVALID_ARGUMENT
        );
        let said = last_error();
        assert!(
            said.contains("shmring_typed_try_push") && said.contains(name.to_str().unwrap()),
            "{said}"
        );
        assert_eq!(shmring_typed_recover(ring), 0, "nothing to repair");
        assert_eq!(shmring_typed_recover(ptr::null()), 0);
        assert_eq!(
            shmring_typed_try_push(tx, ptr::null(), 8),
            SHMRING_INVALID_ARGUMENT
        );
        let mut out = [0u8; 8];
        assert_eq!(
            shmring_typed_try_pop(rx, out.as_mut_ptr().cast(), 9),
            SHMRING_INVALID_ARGUMENT
        );
        assert_eq!(
            shmring_typed_try_pop(rx, out.as_mut_ptr().cast(), 8),
            SHMRING_EMPTY
        );
        assert_eq!(
            shmring_typed_pop_timeout(rx, out.as_mut_ptr().cast(), 8, 1_000_000),
            SHMRING_TIMEOUT
        );

        // A batch: as many as fit (2), the count always said.
        let three: Vec<u8> = [1u64, 2, 3].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut n = 9;
        assert_eq!(
            shmring_typed_push_many(tx, three.as_ptr().cast(), 3, 0, &mut n),
            SHMRING_OK
        );
        assert_eq!(n, 2);
        assert_eq!(
            shmring_typed_push_many(tx, three.as_ptr().cast(), 3, 0, &mut n),
            SHMRING_FULL
        );
        assert_eq!(n, 0);
        assert_eq!(
            shmring_typed_push_many(tx, ptr::null(), 0, 0, &mut n),
            SHMRING_OK
        );
        assert_eq!(n, 0);
        assert_eq!(
            shmring_typed_push_many(tx, three.as_ptr().cast(), 3, 0, ptr::null_mut()),
            SHMRING_INVALID_ARGUMENT
        );
        // The Rust side takes one; the C side takes the other in a batch.
        assert_eq!(rust.consumer().unwrap().try_pop(), Some(1));
        let mut two = [0u8; 16];
        assert_eq!(
            shmring_typed_pop_many(rx, two.as_mut_ptr().cast(), 2, &mut n, 0),
            SHMRING_OK
        );
        assert_eq!(
            (n, u64::from_ne_bytes(two[..8].try_into().unwrap())),
            (1, 2)
        );
        assert_eq!(
            shmring_typed_pop_many(rx, two.as_mut_ptr().cast(), 2, &mut n, 0),
            SHMRING_EMPTY
        );
        assert_eq!(n, 0);
        assert_eq!(
            shmring_typed_pop_many(rx, two.as_mut_ptr().cast(), 0, &mut n, 0),
            SHMRING_INVALID_ARGUMENT
        );
        // A value pushed from Rust reaches C whole.
        rust.producer().unwrap().try_push(u64::MAX - 5).unwrap();
        assert_eq!(
            shmring_typed_try_pop(rx, out.as_mut_ptr().cast(), 8),
            SHMRING_OK
        );
        assert_eq!(u64::from_ne_bytes(out), u64::MAX - 5);
    }
}

/// Pop one `u64` from typed consumer `rx` without waiting: its status and
/// the value.
///
/// # Safety
/// `rx` is a live handle.
unsafe fn pop_u64(rx: *mut ShmringTypedConsumer) -> (i32, u64) {
    let mut out = [0u8; 8];
    // SAFETY: a live handle (the caller's word); `out` holds 8 bytes.
    let status = unsafe { shmring_typed_try_pop(rx, out.as_mut_ptr().cast(), 8) };
    (status, u64::from_ne_bytes(out))
}

#[test]
fn broadcast_subscribers_from_c_read_every_value_or_count_what_they_missed() {
    let schema = CString::new("u64").unwrap();
    let layout = typed_layout(&schema);
    let name = name("typed-bcast");
    let (mut ring, mut tx) = (ptr::null_mut(), ptr::null_mut());
    let (mut all, mut also, mut lossy) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: NUL-terminated strings, readable layouts and options,
    // writable out-pointers, live handles.
    unsafe {
        assert_eq!(
            shmring_typed_create(name.as_ptr(), SHMRING_KIND_BROADCAST, &layout, 4, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_typed_close);
        assert_eq!(shmring_typed_has_consumer(ring), 0);
        // Options are checked before a subscriber is made.
        let bad = [
            ShmringSubscriberOptions {
                policy: 7,
                ..Default::default()
            },
            ShmringSubscriberOptions {
                start: 9,
                ..Default::default()
            },
            ShmringSubscriberOptions {
                has_identity: 2,
                ..Default::default()
            },
            ShmringSubscriberOptions {
                reserved: 1,
                ..Default::default()
            },
        ];
        for opts in &bad {
            assert_eq!(
                shmring_typed_subscriber(ring, opts, &mut lossy),
                SHMRING_INVALID_ARGUMENT,
                "{opts:?}"
            );
            assert!(lossy.is_null());
        }
        assert!(
            last_error().contains("shmring_typed_subscriber"),
            "{}",
            last_error()
        );
        assert_eq!(shmring_typed_producer(ring, &mut tx), SHMRING_OK);
        let _tx = Closer(tx, shmring_typed_producer_close);
        // Lossless, by both calls; lossy; and a Rust subscriber, lossless.
        assert_eq!(
            shmring_typed_subscriber(ring, ptr::null(), &mut all),
            SHMRING_OK
        );
        let _all = Closer(all, shmring_typed_consumer_close);
        assert_eq!(shmring_typed_consumer(ring, &mut also), SHMRING_OK);
        let _also = Closer(also, shmring_typed_consumer_close);
        let opts = ShmringSubscriberOptions {
            policy: SHMRING_LOSSY,
            ..Default::default()
        };
        assert_eq!(
            shmring_typed_subscriber(ring, &opts, &mut lossy),
            SHMRING_OK
        );
        let _lossy = Closer(lossy, shmring_typed_consumer_close);
        // One live subscriber per identity.
        let named = ShmringSubscriberOptions {
            identity: 7,
            has_identity: 1,
            ..Default::default()
        };
        let (mut first, mut second) = (ptr::null_mut(), ptr::null_mut());
        assert_eq!(
            shmring_typed_subscriber(ring, &named, &mut first),
            SHMRING_OK
        );
        assert_eq!(
            shmring_typed_subscriber(ring, &named, &mut second),
            SHMRING_ROLE_TAKEN
        );
        assert!(second.is_null());
        shmring_typed_consumer_close(first);
        let rust = shmring::Broadcast::<u64>::open(name.to_str().unwrap()).unwrap();
        let mut rust_rx = rust.subscriber().unwrap();
        assert_eq!(shmring_typed_has_consumer(ring), 1);

        // The lossless ones hold the producer at a ring's worth.
        let four: Vec<u8> = (0..4u64).flat_map(u64::to_ne_bytes).collect();
        let mut n = 0;
        assert_eq!(
            shmring_typed_push_many(tx, four.as_ptr().cast(), 4, 0, &mut n),
            SHMRING_OK
        );
        assert_eq!(n, 4);
        let v = 4u64.to_ne_bytes();
        assert_eq!(
            shmring_typed_try_push(tx, v.as_ptr().cast(), 8),
            SHMRING_FULL
        );
        for rx in [all, also] {
            for want in 0..4 {
                assert_eq!(pop_u64(rx), (SHMRING_OK, want));
            }
            assert_eq!(pop_u64(rx).0, SHMRING_EMPTY);
        }
        assert_eq!((0..4).map(|_| rust_rx.try_pop().unwrap()).sum::<u64>(), 6);
        // The lossy one never read: the producer laps it.
        for v in 4..12u64 {
            let b = v.to_ne_bytes();
            assert_eq!(shmring_typed_try_push(tx, b.as_ptr().cast(), 8), SHMRING_OK);
            for rx in [all, also] {
                assert_eq!(pop_u64(rx), (SHMRING_OK, v));
            }
            assert_eq!(rust_rx.try_pop(), Some(v));
        }
        let (status, first) = pop_u64(lossy);
        assert_eq!(status, SHMRING_OK);
        assert!(first > 0);
        assert_eq!(shmring_typed_missed(lossy), first);
        assert_eq!(
            (shmring_typed_missed(all), shmring_typed_is_demoted(all)),
            (0, 0)
        );
        assert_eq!(shmring_typed_missed(ptr::null()), 0);

        // A subscriber of another kind of ring is a mismatch.
        let other = self::name("typed-bcast-mpmc");
        let mut mpmc = ptr::null_mut();
        assert_eq!(
            shmring_typed_create(other.as_ptr(), SHMRING_KIND_MPMC, &layout, 4, &mut mpmc),
            SHMRING_OK
        );
        let _mpmc = Closer(mpmc, shmring_typed_close);
        let mut none = ptr::null_mut();
        assert_eq!(
            shmring_typed_subscriber(mpmc, ptr::null(), &mut none),
            SHMRING_MISMATCH
        );
        assert!(none.is_null());
        assert!(
            last_error().contains("not a broadcast ring"),
            "{}",
            last_error()
        );

        // The end of the stream: what was published, then CLOSED.
        let b = 12u64.to_ne_bytes();
        assert_eq!(shmring_typed_try_push(tx, b.as_ptr().cast(), 8), SHMRING_OK);
        std::mem::forget(_tx);
        shmring_typed_producer_end(tx);
        let mut out = [0u8; 8];
        assert_eq!(
            shmring_typed_pop_timeout(all, out.as_mut_ptr().cast(), 8, 5_000_000_000),
            SHMRING_OK
        );
        assert_eq!(u64::from_ne_bytes(out), 12);
        assert_eq!(
            shmring_typed_pop_timeout(all, out.as_mut_ptr().cast(), 8, 5_000_000_000),
            SHMRING_CLOSED
        );
        assert_eq!(
            shmring_typed_has_producer(ring),
            0,
            "the handle is closed too"
        );
    }
}

#[test]
fn a_byte_ring_producer_ends_its_stream() {
    let rig = Rig::new("bytes-end", 256);
    assert_eq!(rig.send(b"last"), SHMRING_OK);
    let mut len = 0;
    let mut buf = [0u8; 16];
    // SAFETY: live handles; `buf` holds 16 bytes. The rig's producer is
    // ended here, so its closer must not close it again.
    unsafe {
        shmring_bytes_producer_end(rig.1);
        let rig = std::mem::ManuallyDrop::new(rig);
        assert_eq!(
            shmring_bytes_recv_timeout(rig.2, buf.as_mut_ptr(), 16, &mut len, 5_000_000_000),
            SHMRING_OK
        );
        assert_eq!(&buf[..len], b"last");
        assert_eq!(
            shmring_bytes_recv_timeout(rig.2, buf.as_mut_ptr(), 16, &mut len, 5_000_000_000),
            SHMRING_CLOSED
        );
        shmring_bytes_consumer_close(rig.2);
        shmring_bytes_close(rig.0);
    }
}

#[test]
fn typed_values_are_reserved_and_read_in_place() {
    let schema = CString::new("u64").unwrap();
    let layout = typed_layout(&schema);
    for kind in [SHMRING_KIND_SPSC, SHMRING_KIND_MPMC] {
        let name = name(&format!("typed-in-place-{kind}"));
        let (mut ring, mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        // SAFETY: NUL-terminated strings, readable layouts, writable
        // out-pointers, live handles; lent bytes used only while lent.
        unsafe {
            assert_eq!(
                shmring_typed_create(name.as_ptr(), kind, &layout, 2, &mut ring),
                SHMRING_OK
            );
            let _ring = Closer(ring, shmring_typed_close);
            assert_eq!(shmring_typed_producer(ring, &mut tx), SHMRING_OK);
            let _tx = Closer(tx, shmring_typed_producer_close);
            assert_eq!(shmring_typed_consumer(ring, &mut rx), SHMRING_OK);
            let _rx = Closer(rx, shmring_typed_consumer_close);
            let mut at: *mut std::ffi::c_void = ptr::null_mut();
            let mut seen: *const std::ffi::c_void = ptr::null();
            assert_eq!(
                shmring_typed_reserve(tx, 0, ptr::null_mut()),
                SHMRING_INVALID_ARGUMENT
            );
            assert_eq!(
                shmring_typed_commit(tx),
                SHMRING_INVALID_ARGUMENT,
                "none open"
            );
            assert_eq!(
                shmring_typed_abort(tx),
                SHMRING_INVALID_ARGUMENT,
                "none open"
            );
            assert_eq!(
                shmring_typed_release(rx),
                SHMRING_INVALID_ARGUMENT,
                "none lent"
            );

            // Given back: nothing to read.
            assert_eq!(shmring_typed_reserve(tx, 0, &mut at), SHMRING_OK);
            at.cast::<u64>().write(99);
            assert_eq!(shmring_typed_abort(tx), SHMRING_OK);
            assert_eq!(shmring_typed_read(rx, 0, &mut seen), SHMRING_EMPTY);

            for v in 1..=5u64 {
                assert_eq!(
                    shmring_typed_reserve(tx, 1_000_000_000, &mut at),
                    SHMRING_OK
                );
                assert_eq!(at as usize % 8, 0, "aligned as the layout says");
                at.cast::<u64>().write(v);
                let b = 0u64.to_ne_bytes();
                assert_eq!(
                    shmring_typed_try_push(tx, b.as_ptr().cast(), 8),
                    SHMRING_BUSY
                );
                assert!(last_error().contains("reserved"), "{}", last_error());
                assert_eq!(shmring_typed_commit(tx), SHMRING_OK);
                assert_eq!(shmring_typed_read(rx, 1_000_000_000, &mut seen), SHMRING_OK);
                assert_eq!(seen.cast::<u64>().read(), v);
                let mut out = [0u8; 8];
                assert_eq!(
                    shmring_typed_try_pop(rx, out.as_mut_ptr().cast(), 8),
                    SHMRING_BUSY
                );
                assert_eq!(shmring_typed_read(rx, 0, &mut seen), SHMRING_BUSY);
                assert_eq!(shmring_typed_release(rx), SHMRING_OK);
            }
            // Full: FULL at once, TIMEOUT after a wait; empty: EMPTY, TIMEOUT.
            let b = 6u64.to_ne_bytes();
            for _ in 0..2 {
                assert_eq!(shmring_typed_try_push(tx, b.as_ptr().cast(), 8), SHMRING_OK);
            }
            assert_eq!(shmring_typed_reserve(tx, 0, &mut at), SHMRING_FULL);
            assert_eq!(
                shmring_typed_reserve(tx, 1_000_000, &mut at),
                SHMRING_TIMEOUT
            );
            for _ in 0..2 {
                assert_eq!(shmring_typed_read(rx, 0, &mut seen), SHMRING_OK);
                assert_eq!(seen.cast::<u64>().read(), 6);
                assert_eq!(shmring_typed_release(rx), SHMRING_OK);
            }
            assert_eq!(
                shmring_typed_read(rx, 1_000_000, &mut seen),
                SHMRING_TIMEOUT
            );

            // Closing handles with values lent gives them back: a reserved
            // value is not published, a read one is released.
            let mut tx2 = ptr::null_mut();
            assert_eq!(shmring_typed_reserve(tx, 0, &mut at), SHMRING_OK);
            std::mem::forget(_tx);
            shmring_typed_producer_close(tx);
            assert_eq!(shmring_typed_producer(ring, &mut tx2), SHMRING_OK);
            let _tx2 = Closer(tx2, shmring_typed_producer_close);
            let b = 7u64.to_ne_bytes();
            assert_eq!(
                shmring_typed_try_push(tx2, b.as_ptr().cast(), 8),
                SHMRING_OK
            );
            assert_eq!(shmring_typed_read(rx, 0, &mut seen), SHMRING_OK);
            assert_eq!(
                seen.cast::<u64>().read(),
                7,
                "{kind}: the unpublished value is not read"
            );
            std::mem::forget(_rx);
            shmring_typed_consumer_close(rx);
            let mut rx2 = ptr::null_mut();
            assert_eq!(shmring_typed_consumer(ring, &mut rx2), SHMRING_OK);
            let _rx2 = Closer(rx2, shmring_typed_consumer_close);
            let mut out = [0u8; 8];
            assert_eq!(
                shmring_typed_try_pop(rx2, out.as_mut_ptr().cast(), 8),
                SHMRING_EMPTY,
                "{kind}: the value read in place was released at the close"
            );
        }
    }

    // A broadcast ring's values are copied, not lent.
    let name = name("typed-in-place-bcast");
    let (mut ring, mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            shmring_typed_create(name.as_ptr(), SHMRING_KIND_BROADCAST, &layout, 2, &mut ring),
            SHMRING_OK
        );
        let _ring = Closer(ring, shmring_typed_close);
        assert_eq!(shmring_typed_producer(ring, &mut tx), SHMRING_OK);
        let _tx = Closer(tx, shmring_typed_producer_close);
        assert_eq!(shmring_typed_consumer(ring, &mut rx), SHMRING_OK);
        let _rx = Closer(rx, shmring_typed_consumer_close);
        let (mut at, mut seen) = (ptr::null_mut(), ptr::null());
        assert_eq!(
            shmring_typed_reserve(tx, 0, &mut at),
            SHMRING_INVALID_ARGUMENT
        );
        assert!(last_error().contains("by copy"), "{}", last_error());
        assert_eq!(
            shmring_typed_read(rx, 0, &mut seen),
            SHMRING_INVALID_ARGUMENT
        );
    }
}
