/*
 * shmring: lock-free rings in POSIX shared memory, from C.
 *
 * Generated from the shmring-c crate by cbindgen; do not edit. Regenerate
 * with `SHMRING_BLESS=1 cargo test -p shmring-c --test header`.
 *
 * Every call that can fail returns a status: SHMRING_OK, a non-error outcome
 * (SHMRING_EMPTY, SHMRING_FULL) or an error code, whose message
 * shmring_last_error() gives on the calling thread. Handles are opaque,
 * closed by their *_close call (NULL: nothing), and used by one thread at
 * a time. Every pointer argument is checked for NULL; no panic crosses
 * the boundary. Timeouts are in nanoseconds.
 */

#ifndef SHMRING_H
#define SHMRING_H

#include <stddef.h>
#include <stdint.h>

// The version of this C ABI. It changes when a function of an earlier
// version changes its prototype or meaning, or goes; new functions keep
// it.
#define SHMRING_C_ABI_VERSION 1

// The shared-memory format version of a ring made through this ABI (the
// `version` word of its header; Rust processes of the same format open
// it).
#define SHMRING_FORMAT_VERSION 7

// `ShmringInfo::kind` of a single-producer single-consumer ring.
#define SHMRING_KIND_SPSC 1

// `ShmringInfo::kind` of a multi-producer multi-consumer ring.
#define SHMRING_KIND_MPMC 2

// `ShmringInfo::kind` of a byte ring.
#define SHMRING_KIND_BYTES 3

// `ShmringInfo::kind` of a broadcast ring.
#define SHMRING_KIND_BROADCAST 4

// Done.
#define SHMRING_OK 0

// Nothing to read now (not an error).
#define SHMRING_EMPTY 1

// No room now (not an error).
#define SHMRING_FULL 2

// A wait ended before it could be done.
#define SHMRING_TIMEOUT 3

// The ring was closed by its producer and everything in it was read.
#define SHMRING_CLOSED 4

// No ring of that name.
#define SHMRING_NOT_FOUND 5

// A ring of that name exists already.
#define SHMRING_ALREADY_EXISTS 6

// A NULL pointer, a name that is not UTF-8, a length that does not fit.
#define SHMRING_INVALID_ARGUMENT 7

// The caller's buffer is shorter than the message (its length is
// reported; the message stays in the ring).
#define SHMRING_BUFFER_TOO_SMALL 8

// The message is longer than the ring's largest.
#define SHMRING_MESSAGE_TOO_LARGE 9

// Another live handle holds the consumer role, or the ring has its most
// producers already.
#define SHMRING_ROLE_TAKEN 10

// The ring is of another kind, type, capacity or format than asked.
#define SHMRING_MISMATCH 11

// The caller may not open or create it.
#define SHMRING_PERMISSION_DENIED 12

// The ring holds what no honest peer writes.
#define SHMRING_CORRUPT 13

// A wait ended behind a message a producer claimed and never committed
// (it may have died; it is repaired).
#define SHMRING_STALLED 14

// The handle lends a reservation or a message: commit or release first.
#define SHMRING_BUSY 15

// A bug in the library was caught at the boundary.
#define SHMRING_PANIC 16

// Any other error: the message says which.
#define SHMRING_OTHER 99

// `ShmringSubscriberOptions::policy`: the producer waits for this
// subscriber (unless it holds the producer up past its bounds).
#define SHMRING_LOSSLESS 0

// `ShmringSubscriberOptions::policy`: the producer never waits for
// this subscriber; it skips what was overwritten and counts it.
#define SHMRING_LOSSY 1

// `ShmringSubscriberOptions::start`: at the next value published.
#define SHMRING_START_NEXT 0

// `ShmringSubscriberOptions::start`: at the oldest value still in the
// ring.
#define SHMRING_START_OLDEST 1

// `ShmringSubscriberOptions::start`: at position `start_at` (values
// published before it).
#define SHMRING_START_AT 2

// A byte ring, as opened or created. Close with `shmring_bytes_close`.
typedef struct ShmringBytes ShmringBytes;

// A byte ring's consumer whose waits an event loop awaits. Close with
// `shmring_bytes_async_consumer_close`.
typedef struct ShmringBytesAsyncConsumer ShmringBytesAsyncConsumer;

// A byte ring's producer whose waits for room an event loop awaits.
// Close with `shmring_bytes_async_producer_close`.
typedef struct ShmringBytesAsyncProducer ShmringBytesAsyncProducer;

// A byte ring's consumer. Close with `shmring_bytes_consumer_close`.
typedef struct ShmringBytesConsumer ShmringBytesConsumer;

// A byte ring's producer. Close with `shmring_bytes_producer_close`.
typedef struct ShmringBytesProducer ShmringBytesProducer;

// A typed ring, as opened or created. Close with `shmring_typed_close`.
typedef struct ShmringTyped ShmringTyped;

// A typed ring's consumer. Close with `shmring_typed_consumer_close`.
typedef struct ShmringTypedConsumer ShmringTypedConsumer;

// A typed ring's producer. Close with `shmring_typed_producer_close`.
typedef struct ShmringTypedProducer ShmringTypedProducer;

// A ring's state, as `shmring_inspect` read it from its header. The
// peers' counts are the kernel's word (locks they hold), not pids'.
// Fields are added only with a new ABI version.
typedef struct ShmringInfo {
  // `SHMRING_KIND_SPSC`, `_MPMC`, `_BYTES` or `_BROADCAST` (0: a kind
  // newer than this ABI).
  uint32_t kind;
  // The element type's size in bytes (a byte ring: its 16-byte unit).
  uint32_t elem_size;
  // The element type's alignment.
  uint32_t elem_align;
  // The schema's version.
  uint32_t schema_version;
  // The schema's name, NUL-terminated (at most 32 bytes before it).
  char schema[33];
  // Whether the name stays after its last user leaves (0 or 1).
  uint8_t persistent;
  // Whether readers zero what they release (0 or 1).
  uint8_t zero_after_use;
  // Whether any process maps it or holds a role in it (0 or 1): a ring
  // not in use can be removed.
  uint8_t in_use;
  // The schema, size and alignment's fingerprint (as the header has it).
  uint64_t fingerprint;
  // Capacity: values, or bytes for a byte ring.
  uint64_t capacity;
  // Values (bytes) written so far.
  uint64_t written;
  // Values (bytes) read so far; a broadcast ring's slowest live
  // subscriber's position.
  uint64_t read;
  // Written and not yet read, at most `capacity`.
  uint64_t fill;
  // Positions that dead holders left unfinished and a repair skipped.
  uint64_t repaired;
  // Live producer handles (an SPSC or broadcast ring: 0 or 1).
  uint32_t producers;
  // Live consumer handles (broadcast: live subscribers).
  uint32_t consumers;
  // Calls that found the ring full (back-pressure).
  uint64_t producer_blocked;
  // Blocking receives that found it empty and waited.
  uint64_t consumer_blocked;
  // Roles taken over from dead handles, producers' and consumers'.
  uint64_t takeovers;
  // The segment's size in bytes.
  uint64_t segment_len;
  // The uid owning the segment file.
  uint32_t owner_uid;
  // The segment file's mode (0600 unless its creator asked).
  uint32_t mode;
} ShmringInfo;

// A value type as C describes it: what a Rust peer's
// `TypeLayout::of::<T>()` says of the same `#[repr(C)]` type.
typedef struct ShmringLayout {
  // The schema's name, NUL-terminated, at most 32 bytes: a Rust type's
  // name without its module path (`Quote` for `feed::Quote`), or the
  // name a Rust peer pins with `.schema()`.
  const char *schema;
  // The schema's version (a Rust type's default is 0).
  uint32_t version;
  // `sizeof` the type.
  uint32_t size;
  // `_Alignof` the type: a power of two up to 4096.
  uint32_t align;
} ShmringLayout;

// How a broadcast subscriber reads (Rust's `SubscriberOptions`). All
// zeros is the default: lossless, from the next value, anonymous, made
// lossy after holding the producer up for 1 s.
typedef struct ShmringSubscriberOptions {
  // `SHMRING_LOSSLESS` or `SHMRING_LOSSY`.
  uint32_t policy;
  // `SHMRING_START_NEXT`, `SHMRING_START_OLDEST` or
  // `SHMRING_START_AT`; a subscriber resuming an identity starts
  // where the last one of it left off instead.
  uint32_t start;
  // The position to start at, for `SHMRING_START_AT`.
  uint64_t start_at;
  // The identity to resume under, if `has_identity` is 1.
  uint64_t identity;
  // 1: resume under `identity` (and leave a position for the next
  // subscriber of it); 0: anonymous.
  uint32_t has_identity;
  // 0 (kept for later versions).
  uint32_t reserved;
  // How long a lossless subscriber may hold the producer up before it
  // is made lossy, in nanoseconds: 0 is the default (1 s),
  // `UINT64_MAX` never.
  uint64_t demote_after_ns;
  // How many values a lossless subscriber may fall behind before it is
  // made lossy at once: 0 is no such bound.
  uint64_t demote_after_lag;
} ShmringSubscriberOptions;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The C ABI's version: `SHMRING_C_ABI_VERSION` of the library loaded,
// to compare with the header's at run time.
uint32_t shmring_abi_version(void);

// The library's version, as text ("0.1.0"): a static string.
const char *shmring_version(void);

// Take `ring`'s consumer role for receives an event loop awaits; the
// handle goes to `*out`, and the file descriptor to watch for
// readability to `*fd` (owned by the handle: closed with it, not by the
// caller). Costs a socket pair, and on the first wait a place in the
// process's waiter thread (Linux 5.16: `futex_waitv`).
//
// # Safety
// `ring` is NULL or a live handle; `out` and `fd` are NULL or writable.
int shmring_bytes_async_consumer(struct ShmringBytes *ring,
                                 struct ShmringBytesAsyncConsumer **out,
                                 int *fd);

// Copy the oldest message into `buf` (of `cap` bytes) and release it,
// its length to `*len`, if there is one; else `SHMRING_EMPTY`, and the
// handle's file descriptor becomes readable when one may have come (poll
// again then: only a poll that answered EMPTY arms it, so whoever waits
// on the fd polls again after another caller's poll took a message).
// `SHMRING_BUFFER_TOO_SMALL` as for
// `shmring_bytes_try_recv` (the message
// stays); `SHMRING_CLOSED` once a producer
// closed the ring (Rust's `ByteProducer::close`; closing a producer
// handle here does not) and everything was read. Never blocks.
//
// # Safety
// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
// `len` is NULL or writable.
int shmring_bytes_poll_recv(struct ShmringBytesAsyncConsumer *rx,
                            uint8_t *buf,
                            size_t cap,
                            size_t *len);

// Receive up to `max` messages at once, laid out as
// `shmring_bytes_recv_many` lays them
// out: the first if there is one now, then the rest there now that fit;
// how many goes to `*count`. If there is none, `SHMRING_EMPTY`, and
// the handle's file descriptor becomes readable when one may have come
// (poll again then). `SHMRING_BUFFER_TOO_SMALL` as for
// `shmring_bytes_recv_many`; `SHMRING_CLOSED`
// as for `shmring_bytes_poll_recv`. Never blocks.
//
// # Safety
// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
// `lens` is NULL or `max` writable lengths; `count` is NULL or writable.
int shmring_bytes_poll_recv_many(struct ShmringBytesAsyncConsumer *rx,
                                 uint8_t *buf,
                                 size_t cap,
                                 size_t *lens,
                                 size_t max,
                                 size_t *count);

// Close an awaiting consumer (NULL: nothing), giving its role back and
// closing its file descriptor (stop watching it first).
//
// # Safety
// `rx` is NULL or a handle not closed before.
void shmring_bytes_async_consumer_close(struct ShmringBytesAsyncConsumer *rx);

// Become a producer of `ring` for sends an event loop awaits; the handle
// goes to `*out`, and the file descriptor to watch for readability to
// `*fd` (owned by the handle: closed with it, not by the caller). Costs
// a socket pair, and on the first wait a place in the process's waiter
// thread (Linux 5.16: `futex_waitv`).
//
// # Safety
// `ring` is NULL or a live handle; `out` and `fd` are NULL or writable.
int shmring_bytes_async_producer(struct ShmringBytes *ring,
                                 struct ShmringBytesAsyncProducer **out,
                                 int *fd);

// Copy the `len` bytes at `data` in as one message, if there is room
// now; else `SHMRING_FULL`, and the handle's file descriptor becomes
// readable when there may be room (poll again then: only a poll that
// answered FULL arms it).
// `SHMRING_MESSAGE_TOO_LARGE` for a
// message longer than the ring's largest. Never blocks.
//
// # Safety
// `tx` is NULL or a live handle; `data` is NULL or `len` readable bytes.
int shmring_bytes_poll_send(struct ShmringBytesAsyncProducer *tx, const uint8_t *data, size_t len);

// Send `count` messages at once, laid out as
// `shmring_bytes_send_many` takes
// them: the first if there is room now, then the rest while there is
// room; how many went goes to `*sent` (whatever the status). If there is
// no room for the first, `SHMRING_FULL` (0 sent), and the handle's
// file descriptor becomes readable when there may be room (poll again
// then: only FULL arms it, so after a batch that sent some, call again
// for the rest). Lengths and errors as for `shmring_bytes_send_many`.
// Never blocks.
//
// # Safety
// `tx` is NULL or a live handle; `lens` is NULL or `count` readable
// lengths; `data` is NULL or as many readable bytes as they add up to;
// `sent` is NULL or writable.
int shmring_bytes_poll_send_many(struct ShmringBytesAsyncProducer *tx,
                                 const uint8_t *data,
                                 const size_t *lens,
                                 size_t count,
                                 size_t *sent);

// Close an awaiting producer (NULL: nothing), giving its place back and
// closing its file descriptor (stop watching it first).
//
// # Safety
// `tx` is NULL or a handle not closed before.
void shmring_bytes_async_producer_close(struct ShmringBytesAsyncProducer *tx);

// Create a byte ring named `name` with `capacity` bytes of data area
// (rounded up to a power of two), mode 0600; `SHMRING_ALREADY_EXISTS`
// if there is one. The handle goes to `*out`.
//
// # Safety
// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
int shmring_bytes_create(const char *name,
                         size_t capacity,
                         struct ShmringBytes **out);

// Open the byte ring named `name`; `SHMRING_NOT_FOUND`
// if there is none.
//
// # Safety
// As `shmring_bytes_create`.
int shmring_bytes_open(const char *name, struct ShmringBytes **out);

// Open the byte ring named `name`, or create it with `capacity` bytes if
// there is none (either side may start first).
//
// # Safety
// As `shmring_bytes_create`.
int shmring_bytes_open_or_create(const char *name, size_t capacity, struct ShmringBytes **out);

// Open the byte ring named `name`, waiting up to `timeout_ns` for its
// creator to make it.
//
// # Safety
// As `shmring_bytes_create`.
int shmring_bytes_open_timeout(const char *name, uint64_t timeout_ns, struct ShmringBytes **out);

// Close a ring handle (NULL: nothing). Producers and consumers made from
// it stay usable until closed themselves.
//
// # Safety
// `ring` is NULL or a handle not closed before.
void shmring_bytes_close(struct ShmringBytes *ring);

// The largest message `ring` takes, in bytes (0 for NULL).
//
// # Safety
// `ring` is NULL or a live handle.
size_t shmring_bytes_max_message_len(const struct ShmringBytes *ring);

// Whether a live process holds `ring`'s consumer role (0 or 1; 0 for
// NULL): the kernel's answer, not a pid's.
//
// # Safety
// `ring` is NULL or a live handle.
int shmring_bytes_has_consumer(const struct ShmringBytes *ring);

// Whether a live process holds `ring`'s producer role (0 or 1; 0 for
// NULL).
//
// # Safety
// `ring` is NULL or a live handle.
int shmring_bytes_has_producer(const struct ShmringBytes *ring);

// Make a producer of `ring` (a byte ring takes up to 32 at once, across
// processes; `SHMRING_ROLE_TAKEN` past
// that); the handle goes to `*out`.
//
// # Safety
// `ring` is NULL or a live handle; `out` is NULL or writable.
int shmring_bytes_producer(struct ShmringBytes *ring, struct ShmringBytesProducer **out);

// Take `ring`'s consumer role (one live handle holds it at a time:
// `SHMRING_ROLE_TAKEN`); the handle goes to
// `*out`.
//
// # Safety
// As `shmring_bytes_producer`.
int shmring_bytes_consumer(struct ShmringBytes *ring, struct ShmringBytesConsumer **out);

// Close a producer (NULL: nothing), giving its role back; an open
// reservation is aborted.
//
// # Safety
// `tx` is NULL or a handle not closed before.
void shmring_bytes_producer_close(struct ShmringBytesProducer *tx);

// End the stream and close producer `tx` (NULL: nothing): an open
// reservation is aborted, and the consumer receives every message sent
// before, then `SHMRING_CLOSED` from its waiting
// calls. A new producer reopens the ring.
//
// # Safety
// `tx` is NULL or a handle not closed before.
void shmring_bytes_producer_end(struct ShmringBytesProducer *tx);

// Close a consumer (NULL: nothing), giving its role back; a lent message
// is released.
//
// # Safety
// `rx` is NULL or a handle not closed before.
void shmring_bytes_consumer_close(struct ShmringBytesConsumer *rx);

// Copy `len` bytes at `data` into the ring as one message, if there is
// room now (`SHMRING_FULL` if not).
//
// # Safety
// `tx` is NULL or a live handle; `data` is NULL or `len` readable bytes.
int shmring_bytes_try_send(struct ShmringBytesProducer *tx, const uint8_t *data, size_t len);

// `shmring_bytes_try_send`, waiting up to `timeout_ns` for room
// (`SHMRING_TIMEOUT` if none came; 0: not at
// all, `SHMRING_FULL` if there is none now).
//
// # Safety
// As `shmring_bytes_try_send`.
int shmring_bytes_send_timeout(struct ShmringBytesProducer *tx,
                               const uint8_t *data,
                               size_t len,
                               uint64_t timeout_ns);

// Reserve `len` bytes in the ring, waiting up to `timeout_ns` for room
// (0: not at all, `SHMRING_FULL` if there is none now);
// `*data` points to them, to be written in place and published with
// `shmring_bytes_commit` (or given back with `shmring_bytes_abort`).
// Until then, the producer's other calls answer `SHMRING_BUSY`.
//
// # Safety
// `tx` is NULL or a live handle; `data` is NULL or writable. The bytes at
// `*data` are the caller's to write until it commits or aborts, no
// longer.
int shmring_bytes_reserve(struct ShmringBytesProducer *tx,
                          size_t len,
                          uint64_t timeout_ns,
                          uint8_t **data);

// Publish the first `len` bytes of the open reservation as a message (the
// rest is skipped). `SHMRING_INVALID_ARGUMENT`
// if none is open or `len` is more than was reserved (the reservation
// stays open).
//
// # Safety
// `tx` is NULL or a live handle.
int shmring_bytes_commit(struct ShmringBytesProducer *tx, size_t len);

// Give the open reservation back unpublished (none open: nothing).
//
// # Safety
// `tx` is NULL or a live handle.
int shmring_bytes_abort(struct ShmringBytesProducer *tx);

// Copy the oldest message into `buf` (of `cap` bytes) and release it;
// its length goes to `*len`. `SHMRING_EMPTY` if there is none now;
// `SHMRING_BUFFER_TOO_SMALL` if it is longer than `cap` (its length
// goes to `*len`; it stays in the ring, for the next receive). Each byte
// of shared memory is read once (a copy safe from a producer that
// rewrites the message as it is read).
//
// # Safety
// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
// `len` is NULL or writable.
int shmring_bytes_try_recv(struct ShmringBytesConsumer *rx, uint8_t *buf, size_t cap, size_t *len);

// `shmring_bytes_try_recv`, waiting up to `timeout_ns` for a message
// (`SHMRING_TIMEOUT` if none came; 0: not at
// all, `SHMRING_EMPTY` if there is none now).
//
// # Safety
// As `shmring_bytes_try_recv`.
int shmring_bytes_recv_timeout(struct ShmringBytesConsumer *rx,
                               uint8_t *buf,
                               size_t cap,
                               size_t *len,
                               uint64_t timeout_ns);

// Lend the oldest message in place, waiting up to `timeout_ns` for one
// (0: not at all, `SHMRING_EMPTY` if there is none): `*data` points to
// its `*len` bytes until `shmring_bytes_release`. Until then, the
// consumer's other calls answer `SHMRING_BUSY`.
//
// # Safety
// `rx` is NULL or a live handle; `data` and `len` are NULL or writable.
// The bytes at `*data` are readable until the release, no longer.
int shmring_bytes_read(struct ShmringBytesConsumer *rx,
                       uint64_t timeout_ns,
                       const uint8_t **data,
                       size_t *len);

// Release the message `shmring_bytes_read` lent (none lent: nothing).
//
// # Safety
// `rx` is NULL or a live handle.
int shmring_bytes_release(struct ShmringBytesConsumer *rx);

// End the loan of the message `shmring_bytes_read` lent without
// releasing it: it stays at the ring's head, and the next receive (by
// any handle) gets it again (none lent: nothing). For a reader stopped
// before it could handle the message (Python's Ctrl-C).
//
// # Safety
// `rx` is NULL or a live handle.
int shmring_bytes_unread(struct ShmringBytesConsumer *rx);

// Send `count` messages at once, one call for many (a caller in a slow
// language pays its crossing once): the messages lie one after another
// at `data`, message `i` being `lens[i]` bytes long. Waits up to
// `timeout_ns` for room for the first (0: not at all), sends the rest
// while there is room now, in order; how many were sent goes to `*sent`
// (whatever the status). `SHMRING_FULL` (0 sent) if there was no room
// now for the first, `SHMRING_TIMEOUT` if none
// came in time. An error after the first ends the batch with
// `SHMRING_OK` and the count of those sent; the next call reports it.
// Every length is checked before anything is sent: one longer than the
// ring's largest message is `SHMRING_MESSAGE_TOO_LARGE`,
// and none is sent.
//
// # Safety
// `tx` is NULL or a live handle; `lens` is NULL or `count` readable
// lengths; `data` is NULL or as many readable bytes as they add up to;
// `sent` is NULL or writable.
int shmring_bytes_send_many(struct ShmringBytesProducer *tx,
                            const uint8_t *data,
                            const size_t *lens,
                            size_t count,
                            uint64_t timeout_ns,
                            size_t *sent);

// Receive up to `max` messages at once, copied one after another into
// `buf` (of `cap` bytes), message `i` being `lens[i]` bytes long; how
// many goes to `*count`. Waits up to `timeout_ns` for the first (0: not
// at all, `SHMRING_EMPTY` if there is none;
// `SHMRING_TIMEOUT` if none came in time), then
// takes what is there now, up to the first that does not fit (it stays
// in the ring, its length not reported). `SHMRING_BUFFER_TOO_SMALL` if
// the first does not fit: its length goes to `lens[0]`, `*count` is 0.
// An error after the first (a corrupt ring) ends the batch with
// `SHMRING_OK` and what was taken; the next call reports it. Copied as
// `shmring_bytes_try_recv` copies: each byte of shared memory read
// once.
//
// # Safety
// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
// `lens` is NULL or `max` writable lengths; `count` is NULL or writable.
int shmring_bytes_recv_many(struct ShmringBytesConsumer *rx,
                            uint8_t *buf,
                            size_t cap,
                            size_t *lens,
                            size_t max,
                            size_t *count,
                            uint64_t timeout_ns);

// Read ring `name`'s header into `*out` without joining the ring;
// `SHMRING_NOT_FOUND` if there is none.
//
// # Safety
// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
int shmring_inspect(const char *name, struct ShmringInfo *out);

// Reserve the next value's bytes in place, waiting up to `timeout_ns` for
// room (0: not at all, `SHMRING_FULL` if there is none now;
// `SHMRING_TIMEOUT` if none came): `*value`
// points to them (the layout's size, aligned as the layout says), to be
// written and published with `shmring_typed_commit` or given back with
// `shmring_typed_abort`. What the bytes hold before is not the
// caller's to read (an SPSC slot keeps an earlier value, an MPMC one is
// zeroed). `SHMRING_INVALID_ARGUMENT`
// for a broadcast producer, which publishes by copy.
//
// # Safety
// `tx` is NULL or a live handle; `value` is NULL or writable. The bytes
// at `*value` are the caller's to write until it commits or aborts, no
// longer.
int shmring_typed_reserve(struct ShmringTypedProducer *tx, uint64_t timeout_ns, void **value);

// Publish the reserved value: consumers may read it from now on.
// `SHMRING_INVALID_ARGUMENT` if none
// is reserved.
//
// # Safety
// `tx` is NULL or a live handle.
int shmring_typed_commit(struct ShmringTypedProducer *tx);

// Give the reserved value back unpublished (an MPMC ring skips its
// position). `SHMRING_INVALID_ARGUMENT`
// if none is reserved.
//
// # Safety
// `tx` is NULL or a live handle.
int shmring_typed_abort(struct ShmringTypedProducer *tx);

// Lend the oldest value in place, waiting up to `timeout_ns` for one (0:
// not at all, `SHMRING_EMPTY` if there is none now;
// `SHMRING_TIMEOUT` if none came;
// `SHMRING_CLOSED` once a producer closed the
// ring and every value was read): `*value` points to its bytes (the
// layout's size), valid until `shmring_typed_release`.
// `SHMRING_INVALID_ARGUMENT` for a
// broadcast subscriber, which reads by copy.
//
// # Safety
// `rx` is NULL or a live handle; `value` is NULL or writable. The bytes at
// `*value` are readable until the release, no longer; a producer that
// cooperates does not write them meanwhile (one that does not can: a
// reader that must not see bytes change copies them with
// `shmring_typed_pop_timeout`).
int shmring_typed_read(struct ShmringTypedConsumer *rx, uint64_t timeout_ns, const void **value);

// Release the value `shmring_typed_read` lent, to the producer.
// `SHMRING_INVALID_ARGUMENT` if none
// is lent.
//
// # Safety
// `rx` is NULL or a live handle.
int shmring_typed_release(struct ShmringTypedConsumer *rx);

// The message of the last error on the calling thread ("" if none): valid
// until the thread's next failing call.
const char *shmring_last_error(void);

// Create a typed ring named `name`: `kind` is `SHMRING_KIND_SPSC`,
// `SHMRING_KIND_MPMC` or `SHMRING_KIND_BROADCAST`, of `capacity` values (rounded up to a power of
// two) of `*layout`, mode 0600; `SHMRING_ALREADY_EXISTS`
// if there is one. The handle goes to `*out`. A Rust process opens it as
// an `Spsc<T>`, `Mpmc<T>` or `Broadcast<T>` of a `#[repr(C)]` `T` of
// that layout.
//
// # Safety
// `name` is NULL or a NUL-terminated string; `layout` is NULL or
// readable, its `schema` NULL or a NUL-terminated string; `out` is NULL
// or writable.
int shmring_typed_create(const char *name,
                         uint32_t kind,
                         const struct ShmringLayout *layout,
                         size_t capacity,
                         struct ShmringTyped **out);

// Open the typed ring named `name`, of `kind` and `*layout`;
// `SHMRING_NOT_FOUND` if there is none,
// `SHMRING_MISMATCH` if it is of another kind
// or layout (the message says which).
//
// # Safety
// As `shmring_typed_create`.
int shmring_typed_open(const char *name,
                       uint32_t kind,
                       const struct ShmringLayout *layout,
                       struct ShmringTyped **out);

// Open the typed ring named `name`, or create it with `capacity` values
// if there is none (either side may start first).
//
// # Safety
// As `shmring_typed_create`.
int shmring_typed_open_or_create(const char *name,
                                 uint32_t kind,
                                 const struct ShmringLayout *layout,
                                 size_t capacity,
                                 struct ShmringTyped **out);

// Open the typed ring named `name`, waiting up to `timeout_ns` for its
// creator to make it.
//
// # Safety
// As `shmring_typed_create`.
int shmring_typed_open_timeout(const char *name,
                               uint32_t kind,
                               const struct ShmringLayout *layout,
                               uint64_t timeout_ns,
                               struct ShmringTyped **out);

// Close a typed ring handle (NULL: nothing). Producers and consumers
// made from it stay usable until closed themselves.
//
// # Safety
// `ring` is NULL or a handle not closed before.
void shmring_typed_close(struct ShmringTyped *ring);

// The size of one value of `ring`, in bytes (0 for NULL).
//
// # Safety
// `ring` is NULL or a live handle.
size_t shmring_typed_value_len(const struct ShmringTyped *ring);

// Whether a live process holds a producer of `ring` (0 or 1; 0 for
// NULL): an SPSC ring's producer role, any of an MPMC ring's producers.
//
// # Safety
// `ring` is NULL or a live handle.
int shmring_typed_has_producer(const struct ShmringTyped *ring);

// Whether a live process holds a consumer of `ring` (0 or 1; 0 for
// NULL): a broadcast ring's, any live subscriber.
//
// # Safety
// `ring` is NULL or a live handle.
int shmring_typed_has_consumer(const struct ShmringTyped *ring);

// Repair what dead processes left in `ring`, for callers that only poll
// (a blocked call repairs on its own): an MPMC ring's positions a dead
// producer claimed and never published are skipped, values a dead
// consumer took are handed on; how many (0 for an SPSC or broadcast
// ring, whose successor handles resume on their own, and for NULL).
//
// # Safety
// `ring` is NULL or a live handle.
uint64_t shmring_typed_recover(const struct ShmringTyped *ring);

// Take `ring`'s producer role (an SPSC or broadcast ring:
// `SHMRING_ROLE_TAKEN` while a live handle
// holds it; an MPMC ring has many producers). The handle goes to `*out`.
//
// # Safety
// `ring` is NULL or a live handle; `out` is NULL or writable.
int shmring_typed_producer(struct ShmringTyped *ring, struct ShmringTypedProducer **out);

// Take `ring`'s consumer role (an SPSC ring: one consumer; an MPMC ring
// has many, each value reaching one; a broadcast ring: a lossless
// subscriber from the next value, as `shmring_typed_subscriber` with
// NULL options). The handle goes to `*out`.
//
// # Safety
// `ring` is NULL or a live handle; `out` is NULL or writable.
int shmring_typed_consumer(struct ShmringTyped *ring, struct ShmringTypedConsumer **out);

// A subscriber of broadcast ring `ring`, reading as `*opts` says (NULL:
// the defaults, as all zeros): it reads every value from where it
// starts, at its own pace, through the consumer calls
// (`shmring_typed_try_pop`, `shmring_typed_pop_timeout`,
// `shmring_typed_pop_many`). `SHMRING_MISMATCH`
// for a ring of another kind; `SHMRING_ROLE_TAKEN`
// when every entry of the ring's table (64) is held, or the identity is.
// The handle goes to `*out`; close it with `shmring_typed_consumer_close`.
//
// # Safety
// `ring` is NULL or a live handle; `opts` is NULL or readable; `out` is
// NULL or writable.
int shmring_typed_subscriber(struct ShmringTyped *ring,
                             const struct ShmringSubscriberOptions *opts,
                             struct ShmringTypedConsumer **out);

// Values subscriber `rx` missed: overwritten before it read them (a
// lossy subscriber, or one made lossy, or one that started at a position
// already overwritten). 0 for a consumer of another kind of ring, and
// for NULL.
//
// # Safety
// `rx` is NULL or a live handle.
uint64_t shmring_typed_missed(const struct ShmringTypedConsumer *rx);

// Whether the producer made subscriber `rx` lossy, held up past its
// bounds (0 or 1; 0 for a consumer of another kind of ring, and for
// NULL).
//
// # Safety
// `rx` is NULL or a live handle.
int shmring_typed_is_demoted(const struct ShmringTypedConsumer *rx);

// End the stream and close producer `tx` (NULL: nothing): consumers take
// every value pushed before it, then `SHMRING_CLOSED`
// from their waiting calls. A new producer reopens the ring.
//
// # Safety
// `tx` is NULL or a handle not closed before.
void shmring_typed_producer_end(struct ShmringTypedProducer *tx);

// Close a producer (NULL: nothing), giving its role back.
//
// # Safety
// `tx` is NULL or a handle not closed before.
void shmring_typed_producer_close(struct ShmringTypedProducer *tx);

// Close a consumer (NULL: nothing), giving its role back.
//
// # Safety
// `rx` is NULL or a handle not closed before.
void shmring_typed_consumer_close(struct ShmringTypedConsumer *rx);

// Copy the value at `value` (`len` bytes: the layout's size, else
// `SHMRING_INVALID_ARGUMENT`) in, if
// there is room now; `SHMRING_FULL` if not.
//
// # Safety
// `tx` is NULL or a live handle; `value` is NULL or `len` readable bytes.
int shmring_typed_try_push(struct ShmringTypedProducer *tx, const void *value, size_t len);

// Copy the value at `value` in, waiting up to `timeout_ns` for room
// (`SHMRING_TIMEOUT` if none came; 0: as
// `shmring_typed_try_push`).
//
// # Safety
// As `shmring_typed_try_push`.
int shmring_typed_push_timeout(struct ShmringTypedProducer *tx,
                               const void *value,
                               size_t len,
                               uint64_t timeout_ns);

// Copy the oldest value into `out` (`len` bytes: the layout's size, else
// `SHMRING_INVALID_ARGUMENT`) and
// release it, if there is one now; `SHMRING_EMPTY` if not.
//
// # Safety
// `rx` is NULL or a live handle; `out` is NULL or `len` writable bytes.
int shmring_typed_try_pop(struct ShmringTypedConsumer *rx, void *out, size_t len);

// Copy the oldest value into `out`, waiting up to `timeout_ns` for one
// (`SHMRING_TIMEOUT` if none came;
// `SHMRING_CLOSED` once a producer closed the
// ring and every value was popped; 0: as `shmring_typed_try_pop`).
//
// # Safety
// As `shmring_typed_try_pop`.
int shmring_typed_pop_timeout(struct ShmringTypedConsumer *rx,
                              void *out,
                              size_t len,
                              uint64_t timeout_ns);

// Push `count` values at once, laid out one after another at `values`
// (`count` times the layout's size): waits up to `timeout_ns` for room
// for the first (0: not at all), then pushes while there is room now,
// in order; how many went goes to `*pushed` (whatever the status).
// `SHMRING_FULL` (0 pushed) if there was no room now for the first,
// `SHMRING_TIMEOUT` if none came in time. An
// error after the first ends the batch with `SHMRING_OK` and the count
// of those pushed; the next call reports it.
//
// # Safety
// `tx` is NULL or a live handle; `values` is NULL or `count` values'
// readable bytes; `pushed` is NULL or writable.
int shmring_typed_push_many(struct ShmringTypedProducer *tx,
                            const void *values,
                            size_t count,
                            uint64_t timeout_ns,
                            size_t *pushed);

// Pop up to `max` values at once into `out` (room for `max` values, one
// after another): waits up to `timeout_ns` for the first (0: not at all,
// `SHMRING_EMPTY` if there is none; `SHMRING_TIMEOUT`
// if none came in time), then takes those there now; how many goes to
// `*count` (`max` is at least 1). An error after the first ends the
// batch with `SHMRING_OK` and what was taken; the next call reports it.
//
// # Safety
// `rx` is NULL or a live handle; `out` is NULL or room for `max`
// values; `count` is NULL or writable.
int shmring_typed_pop_many(struct ShmringTypedConsumer *rx,
                           void *out,
                           size_t max,
                           size_t *count,
                           uint64_t timeout_ns);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* SHMRING_H */
