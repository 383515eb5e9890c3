/*
 * The C side of tests/c_program.rs: opens the two rings a Rust process
 * made, checks every message it receives (copied and in place), answers
 * each (reserved in place and copied), and checks the ABI's errors; then,
 * on a ring of its own, the batch calls, inspection and the awaiting
 * handles' file descriptors; then it answers the typed ticks the Rust
 * process sends on an SPSC ring of its `Tick`, on an MPMC ring of the
 * same type (copied, read and reserved in place, and in batches); then it reads the ticks the Rust process publishes on a
 * broadcast ring, as two subscribers made at its start: a lossless one
 * reads each, a lossy one that never read while they came counts what it
 * missed. Built with ASan and UBSan. Exits 0 only if every check held.
 *
 *   peer TO_C FROM_C COUNT SCRATCH TICKS_TO_C TICKS_FROM_C TICKS BROADCAST
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmring.h"

static const uint64_t WAIT = 30ull * 1000 * 1000 * 1000;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "peer.c:%d: ", __LINE__);                        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, " (last error: %s)\n", shmring_last_error());    \
            exit(2);                                                         \
        }                                                                    \
    } while (0)

/* Message i: (i % 200) bytes, byte k being (i * 7 + k) & 0xff. */
static size_t expected_len(uint64_t i) { return (size_t)(i % 200); }
static uint8_t expected_byte(uint64_t i, size_t k) { return (uint8_t)((i * 7 + k) & 0xff); }

static void check_message(uint64_t i, const uint8_t *data, size_t len) {
    CHECK(len == expected_len(i), "message %llu: %zu bytes, not %zu",
          (unsigned long long)i, len, expected_len(i));
    for (size_t k = 0; k < len; k++) {
        CHECK(data[k] == expected_byte(i, k), "message %llu: byte %zu is %u",
              (unsigned long long)i, k, data[k]);
    }
}

/* The answer to message i: i (8 bytes, little-endian), then its bytes reversed. */
static void answer(uint64_t i, const uint8_t *msg, size_t len, uint8_t *out) {
    for (int b = 0; b < 8; b++) out[b] = (uint8_t)(i >> (8 * b));
    for (size_t k = 0; k < len; k++) out[8 + k] = msg[len - 1 - k];
}

static void check_errors(void) {
    ShmringBytes *ring = NULL;
    CHECK(shmring_abi_version() == SHMRING_C_ABI_VERSION, "ABI %u, header %u",
          shmring_abi_version(), SHMRING_C_ABI_VERSION);
    CHECK(strlen(shmring_version()) > 0, "no version");
    CHECK(shmring_bytes_open(NULL, &ring) == SHMRING_INVALID_ARGUMENT, "NULL name");
    CHECK(strstr(shmring_last_error(), "NULL") != NULL, "message: %s", shmring_last_error());
    CHECK(shmring_bytes_open("peer-c-no-such-ring", NULL) == SHMRING_INVALID_ARGUMENT, "NULL out");
    CHECK(shmring_bytes_open("peer-c-no-such-ring", &ring) == SHMRING_NOT_FOUND, "missing ring");
    CHECK(strstr(shmring_last_error(), "peer-c-no-such-ring") != NULL,
          "the message names the ring: %s", shmring_last_error());
    CHECK(ring == NULL, "no handle on failure");
    CHECK(shmring_bytes_try_send(NULL, (const uint8_t *)"x", 1) == SHMRING_INVALID_ARGUMENT,
          "NULL producer");
    CHECK(shmring_bytes_try_recv(NULL, NULL, 0, NULL) == SHMRING_INVALID_ARGUMENT, "NULL consumer");
    CHECK(shmring_bytes_max_message_len(NULL) == 0, "NULL ring");
    shmring_bytes_close(NULL);
    shmring_bytes_producer_close(NULL);
    shmring_bytes_consumer_close(NULL);
}

/* On ring `name`, made and removed here: many messages per call each way,
 * the ring seen by inspection, and a message and room awaited through fds. */
static void check_batches_inspection_and_awaiting(const char *name) {
    ShmringBytes *ring;
    ShmringBytesProducer *tx;
    ShmringBytesConsumer *rx;
    CHECK(shmring_bytes_create(name, 4096, &ring) == SHMRING_OK, "create %s", name);
    CHECK(shmring_bytes_producer(ring, &tx) == SHMRING_OK, "producer");

    /* 40 messages, message i being i + 1 bytes of value i, in one call:
     * as many as fit go, in order. */
    uint8_t data[40 * 41 / 2], out[2048];
    size_t lens[40], got_lens[40], at = 0, sent = 0, count = 0;
    for (size_t i = 0; i < 40; i++) {
        lens[i] = i + 1;
        memset(data + at, (int)i, lens[i]);
        at += lens[i];
    }
    CHECK(shmring_bytes_send_many(tx, data, lens, 40, 0, &sent) == SHMRING_OK, "send_many");
    CHECK(sent > 0 && sent <= 40, "sent %zu", sent);

    ShmringInfo info;
    CHECK(shmring_inspect(name, &info) == SHMRING_OK, "inspect");
    CHECK(info.kind == SHMRING_KIND_BYTES && info.producers == 1 && info.consumers == 0,
          "kind %u, %u producers, %u consumers", info.kind, info.producers, info.consumers);
    CHECK(info.fill > 0 && info.fill == info.written - info.read, "fill %llu",
          (unsigned long long)info.fill);

    CHECK(shmring_bytes_consumer(ring, &rx) == SHMRING_OK, "consumer");
    size_t taken = 0;
    while (taken < sent) {
        CHECK(shmring_bytes_recv_many(rx, out, sizeof out, got_lens, 7, &count, 0) == SHMRING_OK,
              "recv_many after %zu", taken);
        size_t off = 0;
        for (size_t j = 0; j < count; j++, taken++) {
            CHECK(got_lens[j] == taken + 1, "message %zu: %zu bytes", taken, got_lens[j]);
            for (size_t k = 0; k < got_lens[j]; k++)
                CHECK(out[off + k] == (uint8_t)taken, "message %zu, byte %zu", taken, k);
            off += got_lens[j];
        }
    }
    CHECK(shmring_bytes_recv_many(rx, out, sizeof out, got_lens, 7, &count, 0) == SHMRING_EMPTY &&
              count == 0,
          "drained");
    shmring_bytes_consumer_close(rx);

    /* Awaiting: EMPTY arms the fd; a message sent then makes it readable. */
    ShmringBytesAsyncConsumer *arx;
    int fd = -1;
    size_t len = 0;
    CHECK(shmring_bytes_async_consumer(ring, &arx, &fd) == SHMRING_OK && fd >= 0, "async consumer");
    CHECK(shmring_bytes_poll_recv(arx, out, sizeof out, &len) == SHMRING_EMPTY, "nothing yet");
    CHECK(shmring_bytes_try_send(tx, (const uint8_t *)"awaited", 7) == SHMRING_OK, "send");
    struct pollfd watch = {.fd = fd, .events = POLLIN};
    CHECK(poll(&watch, 1, 30000) == 1 && (watch.revents & POLLIN), "the fd turned readable");
    CHECK(shmring_bytes_poll_recv(arx, out, sizeof out, &len) == SHMRING_OK, "poll_recv");
    CHECK(len == 7 && memcmp(out, "awaited", 7) == 0, "the awaited message");
    shmring_bytes_async_consumer_close(arx);
    shmring_bytes_producer_close(tx);

    /* An awaiting producer: FULL arms the fd; a receive's room makes it
     * readable, and the next poll sends. */
    ShmringBytesAsyncProducer *atx;
    CHECK(shmring_bytes_async_producer(ring, &atx, &fd) == SHMRING_OK && fd >= 0, "async producer");
    CHECK(shmring_bytes_consumer(ring, &rx) == SHMRING_OK, "consumer again");
    uint8_t block[500];
    memset(block, 0xab, sizeof block);
    int filled = 0;
    while (shmring_bytes_poll_send(atx, block, sizeof block) == SHMRING_OK)
        CHECK(++filled <= 4096 / 500, "more sent than the ring holds");
    CHECK(filled > 0, "some room at first");
    CHECK(shmring_bytes_poll_send(atx, block, sizeof block) == SHMRING_FULL, "full");
    CHECK(shmring_bytes_try_recv(rx, out, sizeof out, &len) == SHMRING_OK && len == 500, "make room");
    watch.fd = fd;
    watch.revents = 0;
    CHECK(poll(&watch, 1, 30000) == 1 && (watch.revents & POLLIN), "the producer's fd turned readable");
    size_t two[2] = {500, 500};
    uint8_t both[1000];
    memset(both, 0xcd, sizeof both);
    CHECK(shmring_bytes_poll_send_many(atx, both, two, 2, &sent) == SHMRING_OK && sent == 1,
          "room for one of two: %zu sent", sent);
    int left = 0;
    while (shmring_bytes_try_recv(rx, out, sizeof out, &len) == SHMRING_OK) {
        CHECK(len == 500 && out[0] == (left < filled - 1 ? 0xab : 0xcd) && out[499] == out[0],
              "message %d whole", left);
        left++;
    }
    CHECK(left == filled, "%d left of %d", left, filled);
    shmring_bytes_consumer_close(rx);
    shmring_bytes_async_producer_close(atx);

    shmring_bytes_close(ring);
    CHECK(shmring_inspect(name, &info) == SHMRING_NOT_FOUND, "gone with its last handle");
}

/* The Rust side's `#[repr(C)] struct Tick`: tick i is (i / 2.0, i, i % 2). */
typedef struct {
    double px;
    uint32_t qty;
    uint32_t side;
} Tick;

/* Pop `count` ticks from the SPSC ring `to_c` in batches, check each, and
 * answer each with its qty plus one on the MPMC ring `from_c`. */
static void answer_ticks(const char *to_c, const char *from_c, uint64_t count) {
    ShmringLayout tick = {.schema = "Tick", .version = 0, .size = sizeof(Tick), .align = _Alignof(Tick)};
    ShmringLayout wider = tick, renamed = tick;
    wider.size = 24;
    renamed.schema = "Quote";
    ShmringTyped *in = NULL, *out = NULL;
    CHECK(shmring_typed_open_timeout(to_c, SHMRING_KIND_SPSC, &tick, WAIT, &in) == SHMRING_OK,
          "open %s", to_c);
    CHECK(shmring_typed_open(to_c, SHMRING_KIND_SPSC, &wider, &(ShmringTyped *){NULL}) ==
              SHMRING_MISMATCH,
          "another size refused");
    CHECK(shmring_typed_open(to_c, SHMRING_KIND_SPSC, &renamed, &(ShmringTyped *){NULL}) ==
              SHMRING_MISMATCH,
          "another schema refused");
    CHECK(shmring_typed_open(to_c, SHMRING_KIND_MPMC, &tick, &(ShmringTyped *){NULL}) ==
              SHMRING_MISMATCH,
          "another kind refused");
    CHECK(shmring_typed_open(to_c, 99, &tick, &(ShmringTyped *){NULL}) == SHMRING_INVALID_ARGUMENT,
          "no such kind");
    CHECK(shmring_typed_open_timeout(from_c, SHMRING_KIND_MPMC, &tick, WAIT, &out) == SHMRING_OK,
          "open %s", from_c);
    CHECK(shmring_typed_value_len(in) == sizeof(Tick), "value length");
    ShmringTypedConsumer *rx;
    ShmringTypedProducer *tx;
    CHECK(shmring_typed_consumer(in, &rx) == SHMRING_OK, "typed consumer");
    CHECK(shmring_typed_producer(out, &tx) == SHMRING_OK, "typed producer");
    CHECK(shmring_typed_try_push(tx, &(Tick){0}, 8) == SHMRING_INVALID_ARGUMENT,
          "a value of the wrong length");

    Tick batch[5];
    uint64_t got = 0;
    while (got < count) {
        size_t k = 0;
        if (got % 3 == 0) {
            CHECK(shmring_typed_pop_timeout(rx, batch, sizeof(Tick), WAIT) == SHMRING_OK,
                  "tick %llu", (unsigned long long)got);
            k = 1;
        } else if (got % 3 == 1) {
            /* In place: the tick in its slot, until the release. */
            const void *lent = NULL;
            CHECK(shmring_typed_read(rx, WAIT, &lent) == SHMRING_OK && lent != NULL,
                  "tick %llu in place", (unsigned long long)got);
            CHECK(shmring_typed_try_pop(rx, batch, sizeof(Tick)) == SHMRING_BUSY,
                  "a copy while a tick is lent");
            memcpy(batch, lent, sizeof(Tick));
            CHECK(shmring_typed_release(rx) == SHMRING_OK, "release");
            k = 1;
        } else {
            CHECK(shmring_typed_pop_many(rx, batch, 5, &k, WAIT) == SHMRING_OK && k > 0,
                  "ticks from %llu", (unsigned long long)got);
        }
        for (size_t j = 0; j < k; j++) {
            uint64_t i = got + j;
            CHECK(batch[j].px == (double)i / 2.0 && batch[j].qty == (uint32_t)i &&
                      batch[j].side == (uint32_t)(i % 2),
                  "tick %llu: (%f, %u, %u)", (unsigned long long)i, batch[j].px, batch[j].qty,
                  batch[j].side);
            batch[j].qty += 1;
        }
        if (k == 1 && got % 2 == 0) {
            /* In place: the answer written into its slot, then committed. */
            void *room = NULL;
            CHECK(shmring_typed_reserve(tx, WAIT, &room) == SHMRING_OK && room != NULL,
                  "reserve the answer to %llu", (unsigned long long)got);
            memcpy(room, batch, sizeof(Tick));
            CHECK(shmring_typed_commit(tx) == SHMRING_OK, "commit");
            got += 1;
            continue;
        }
        for (size_t sent = 0; sent < k;) {
            size_t pushed = 0;
            CHECK(shmring_typed_push_many(tx, batch + sent, k - sent, WAIT,
                                          &pushed) == SHMRING_OK && pushed > 0,
                  "answers from %llu", (unsigned long long)(got + sent));
            sent += pushed;
        }
        got += k;
    }
    CHECK(shmring_typed_try_pop(rx, batch, sizeof(Tick)) == SHMRING_EMPTY, "no more ticks");
    shmring_typed_consumer_close(rx);
    shmring_typed_producer_close(tx);
    shmring_typed_close(in);
    shmring_typed_close(out);
}

/* Whether `t` is tick `i` as the Rust process makes it. */
static int is_tick(const Tick *t, uint64_t i) {
    return t->px == (double)i / 2.0 && t->qty == (uint32_t)i && t->side == (uint32_t)(i % 2);
}

typedef struct Subscribers {
    ShmringTyped *ring;
    ShmringTypedConsumer *every, *glance;
} Subscribers;

/* Subscribe to the broadcast ring `name`, before the Rust process
 * publishes on it (it does once every tick was answered): a lossless
 * subscriber never made lossy, and a lossy one. */
static Subscribers subscribe(const char *name) {
    ShmringLayout tick = {.schema = "Tick", .version = 0, .size = sizeof(Tick), .align = _Alignof(Tick)};
    Subscribers s = {0};
    CHECK(shmring_typed_open_timeout(name, SHMRING_KIND_BROADCAST, &tick, WAIT, &s.ring) == SHMRING_OK,
          "open %s", name);
    ShmringSubscriberOptions bad = {.policy = 5};
    CHECK(shmring_typed_subscriber(s.ring, &bad, &(ShmringTypedConsumer *){NULL}) ==
              SHMRING_INVALID_ARGUMENT,
          "no such policy");
    ShmringSubscriberOptions lossless = {.policy = SHMRING_LOSSLESS, .demote_after_ns = UINT64_MAX};
    CHECK(shmring_typed_subscriber(s.ring, &lossless, &s.every) == SHMRING_OK, "lossless subscriber");
    ShmringSubscriberOptions lossy = {.policy = SHMRING_LOSSY, .start = SHMRING_START_NEXT};
    CHECK(shmring_typed_subscriber(s.ring, &lossy, &s.glance) == SHMRING_OK, "lossy subscriber");
    return s;
}

/* Read `count` broadcast ticks: every one, in order, then the end of the
 * stream; then what the lossy subscriber finds left, whole and in order,
 * with what it missed making up the rest. */
static void read_broadcast(Subscribers s, uint64_t count) {
    Tick batch[7];
    uint64_t got = 0;
    while (got < count) {
        size_t k = 0;
        CHECK(shmring_typed_pop_many(s.every, batch, 7, &k, WAIT) == SHMRING_OK && k > 0,
              "broadcast ticks from %llu", (unsigned long long)got);
        for (size_t j = 0; j < k; j++) {
            CHECK(is_tick(&batch[j], got + j), "broadcast tick %llu: (%f, %u, %u)",
                  (unsigned long long)(got + j), batch[j].px, batch[j].qty, batch[j].side);
        }
        got += k;
    }
    CHECK(shmring_typed_pop_timeout(s.every, batch, sizeof(Tick), WAIT) == SHMRING_CLOSED,
          "the end of the broadcast");
    CHECK(shmring_typed_missed(s.every) == 0 && !shmring_typed_is_demoted(s.every),
          "the lossless subscriber missed nothing");
    uint64_t seen = 0, last = 0;
    int status;
    while ((status = shmring_typed_try_pop(s.glance, batch, sizeof(Tick))) == SHMRING_OK) {
        /* The tick of the position it read: what it read and missed before. */
        CHECK(is_tick(&batch[0], seen + shmring_typed_missed(s.glance)), "a whole tick, its own");
        CHECK(seen == 0 || batch[0].qty > last, "in order");
        last = batch[0].qty;
        seen++;
    }
    CHECK(status == SHMRING_EMPTY, "the lossy subscriber's last status: %d", status);
    CHECK(seen > 0 && seen + shmring_typed_missed(s.glance) == count,
          "read %llu, missed %llu, of %llu", (unsigned long long)seen,
          (unsigned long long)shmring_typed_missed(s.glance), (unsigned long long)count);
    shmring_typed_consumer_close(s.every);
    shmring_typed_consumer_close(s.glance);
    shmring_typed_close(s.ring);
}

int main(int argc, char **argv) {
    CHECK(argc == 9, "usage: peer TO_C FROM_C COUNT SCRATCH TICKS_TO_C TICKS_FROM_C TICKS BROADCAST");
    uint64_t count = strtoull(argv[3], NULL, 10);
    check_errors();
    Subscribers subscribers = subscribe(argv[8]);

    ShmringBytes *to_c, *from_c;
    ShmringBytesConsumer *rx;
    ShmringBytesProducer *tx;
    CHECK(shmring_bytes_open_timeout(argv[1], WAIT, &to_c) == SHMRING_OK, "open %s", argv[1]);
    CHECK(shmring_bytes_open_timeout(argv[2], WAIT, &from_c) == SHMRING_OK, "open %s", argv[2]);
    CHECK(shmring_bytes_consumer(to_c, &rx) == SHMRING_OK, "consumer");
    CHECK(shmring_bytes_producer(from_c, &tx) == SHMRING_OK, "producer");
    ShmringBytesConsumer *second;
    CHECK(shmring_bytes_consumer(to_c, &second) == SHMRING_ROLE_TAKEN, "a second consumer");

    uint8_t buf[256], reply[8 + 256];
    for (uint64_t i = 0; i < count; i++) {
        size_t len = 0;
        const uint8_t *msg = buf;
        int lent = (i % 2 == 1);
        if (lent) {
            CHECK(shmring_bytes_read(rx, WAIT, &msg, &len) == SHMRING_OK, "read %llu",
                  (unsigned long long)i);
            CHECK(shmring_bytes_try_recv(rx, buf, sizeof buf, &len) == SHMRING_BUSY,
                  "a copy while a message is lent");
        } else {
            if (i % 3 == 0 && expected_len(i) > 1) {
                /* Too small: told its length, and it stays for the next call. */
                CHECK(shmring_bytes_recv_timeout(rx, buf, 1, &len, WAIT) == SHMRING_BUFFER_TOO_SMALL,
                      "buffer too small");
                CHECK(len == expected_len(i), "length reported: %zu", len);
            }
            CHECK(shmring_bytes_recv_timeout(rx, buf, sizeof buf, &len, WAIT) == SHMRING_OK,
                  "recv %llu", (unsigned long long)i);
        }
        check_message(i, msg, len);
        answer(i, msg, len, reply);
        if (lent) CHECK(shmring_bytes_release(rx) == SHMRING_OK, "release");

        if (i % 2 == 0) {
            uint8_t *room = NULL;
            /* Reserve more than needed; publish what was written. */
            CHECK(shmring_bytes_reserve(tx, 8 + len + 16, WAIT, &room) == SHMRING_OK, "reserve");
            CHECK(shmring_bytes_try_send(tx, reply, 1) == SHMRING_BUSY, "a send while reserved");
            CHECK(shmring_bytes_commit(tx, 8 + len + 17) == SHMRING_INVALID_ARGUMENT,
                  "a commit past the reservation");
            memcpy(room, reply, 8 + len);
            CHECK(shmring_bytes_commit(tx, 8 + len) == SHMRING_OK, "commit");
        } else {
            CHECK(shmring_bytes_send_timeout(tx, reply, 8 + len, WAIT) == SHMRING_OK, "send");
        }
    }
    CHECK(shmring_bytes_try_recv(rx, buf, sizeof buf, &(size_t){0}) == SHMRING_EMPTY, "drained");
    CHECK(shmring_bytes_commit(tx, 0) == SHMRING_INVALID_ARGUMENT, "a commit with none open");

    shmring_bytes_consumer_close(rx);
    shmring_bytes_producer_close(tx);
    shmring_bytes_close(to_c);
    shmring_bytes_close(from_c);
    check_batches_inspection_and_awaiting(argv[4]);
    answer_ticks(argv[5], argv[6], strtoull(argv[7], NULL, 10));
    read_broadcast(subscribers, strtoull(argv[7], NULL, 10));
    printf("ok %llu\n", (unsigned long long)count);
    return 0;
}
