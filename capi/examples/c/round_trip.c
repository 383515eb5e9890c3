/*
 * Round trips between two C processes (a fork): 8-byte messages through
 * two shmring byte rings, spinning (try calls in a loop), then the same
 * through a Unix socketpair; nanoseconds per round trip, p50 and mean.
 * Then one-at-a-time throughput: one process sends ROUNDS 8-byte
 * messages, the other receives each, through a ring and a socketpair.
 * Run by `cargo run --release -p shmring-c --example round_trip`.
 *
 *   round_trip NAME ROUNDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, ": %s\n", shmring_last_error()); exit(2); } while (0)

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, long rounds, uint64_t total) {
    qsort(ns, (size_t)rounds, sizeof *ns, cmp);
    printf("%-22s p50 %6llu ns  mean %6llu ns\n", what, (unsigned long long)ns[rounds / 2],
           (unsigned long long)(total / (uint64_t)rounds));
}

/* Open a ring by name and take one role, in this process. */
static void open_side(const char *name, ShmringBytes **ring, ShmringBytesProducer **tx,
                      ShmringBytesConsumer **rx) {
    if (shmring_bytes_open_timeout(name, 5000000000u, ring) != SHMRING_OK) DIE("open %s", name);
    if (tx && shmring_bytes_producer(*ring, tx) != SHMRING_OK) DIE("producer %s", name);
    if (rx && shmring_bytes_consumer(*ring, rx) != SHMRING_OK) DIE("consumer %s", name);
}

static void send_spin(ShmringBytesProducer *tx, const uint8_t *v) {
    int s;
    while ((s = shmring_bytes_try_send(tx, v, 8)) == SHMRING_FULL) {}
    if (s != SHMRING_OK) DIE("send");
}

static void recv_spin(ShmringBytesConsumer *rx, uint8_t *v) {
    size_t len;
    int s;
    while ((s = shmring_bytes_try_recv(rx, v, 8, &len)) == SHMRING_EMPTY) {}
    if (s != SHMRING_OK || len != 8) DIE("recv");
}

static const ShmringLayout U64 = {.schema = "u64", .version = 0, .size = 8, .align = 8};

static void typed_side(const char *name, ShmringTyped **ring) {
    if (shmring_typed_open_timeout(name, SHMRING_KIND_SPSC, &U64, 5000000000u, ring) != SHMRING_OK)
        DIE("open %s", name);
}

/* Typed SPSC rings of uint64_t: a round trip by copy, then one value at a
 * time one way, by copy and in place (reserve/commit, read/release). */
static void typed_rings(const char *ping, const char *pong, long rounds, uint64_t *ns) {
    ShmringTyped *a, *b;
    if (shmring_typed_create(ping, SHMRING_KIND_SPSC, &U64, 1024, &a) != SHMRING_OK) DIE("create %s", ping);
    if (shmring_typed_create(pong, SHMRING_KIND_SPSC, &U64, 1024, &b) != SHMRING_OK) DIE("create %s", pong);
    pid_t echo = fork();
    if (echo == 0) {
        ShmringTyped *x, *y;
        ShmringTypedConsumer *rx;
        ShmringTypedProducer *tx;
        typed_side(ping, &x);
        typed_side(pong, &y);
        if (shmring_typed_consumer(x, &rx) != SHMRING_OK || shmring_typed_producer(y, &tx) != SHMRING_OK)
            DIE("echo handles");
        uint64_t v;
        for (long i = 0; i <= rounds; i++) {
            while (shmring_typed_try_pop(rx, &v, 8) != SHMRING_OK) {}
            while (shmring_typed_try_push(tx, &v, 8) != SHMRING_OK) {}
        }
        shmring_typed_consumer_close(rx);
        shmring_typed_producer_close(tx);
        shmring_typed_close(x);
        shmring_typed_close(y);
        _exit(0);
    }
    ShmringTypedProducer *tx;
    ShmringTypedConsumer *rx;
    if (shmring_typed_producer(a, &tx) != SHMRING_OK || shmring_typed_consumer(b, &rx) != SHMRING_OK)
        DIE("typed handles");
    uint64_t start = 0, w;
    for (long i = 0; i <= rounds; i++) {
        uint64_t t0 = now_ns(), v = (uint64_t)i;
        if (i == 1) start = t0;
        while (shmring_typed_try_push(tx, &v, 8) != SHMRING_OK) {}
        while (shmring_typed_try_pop(rx, &w, 8) != SHMRING_OK) {}
        if (w != v) DIE("typed echo %ld", i);
        if (i > 0) ns[i - 1] = now_ns() - t0;
    }
    uint64_t total = now_ns() - start;
    int status;
    waitpid(echo, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("typed echo process");
    report("shmring typed rings", ns, rounds, total);
    shmring_typed_consumer_close(rx);
    /* Given back before the sender below takes the producer role. */
    shmring_typed_producer_close(tx);

    /* One way, by copy then in place, on ring `a` (the echo is gone). */
    for (int in_place = 0; in_place < 2; in_place++) {
        pid_t sender = fork();
        if (sender == 0) {
            ShmringTyped *x;
            ShmringTypedProducer *stx;
            typed_side(ping, &x);
            if (shmring_typed_producer(x, &stx) != SHMRING_OK) DIE("sender producer");
            for (long i = 0; i < rounds; i++) {
                uint64_t v = (uint64_t)i;
                if (in_place) {
                    void *room;
                    while (shmring_typed_reserve(stx, 0, &room) != SHMRING_OK) {}
                    memcpy(room, &v, 8);
                    shmring_typed_commit(stx);
                } else {
                    while (shmring_typed_try_push(stx, &v, 8) != SHMRING_OK) {}
                }
            }
            shmring_typed_producer_close(stx);
            shmring_typed_close(x);
            _exit(0);
        }
        if (shmring_typed_consumer(a, &rx) != SHMRING_OK) DIE("typed consumer");
        start = now_ns();
        for (long i = 0; i < rounds; i++) {
            if (in_place) {
                const void *seen;
                while (shmring_typed_read(rx, 0, &seen) != SHMRING_OK) {}
                memcpy(&w, seen, 8);
                shmring_typed_release(rx);
            } else {
                while (shmring_typed_try_pop(rx, &w, 8) != SHMRING_OK) {}
            }
            if (w != (uint64_t)i) DIE("typed value %ld", i);
        }
        total = now_ns() - start;
        waitpid(sender, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("typed sender process");
        printf("%-22s %6.2f M msg/s\n", in_place ? "typed ring, in place" : "typed ring, by copy",
               rounds / (total / 1e3));
        shmring_typed_consumer_close(rx);
    }
    shmring_typed_close(a);
    shmring_typed_close(b);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: round_trip NAME ROUNDS\n"); return 2; }
    long rounds = atol(argv[2]);
    if (rounds < 1) { fprintf(stderr, "ROUNDS is at least 1\n"); return 2; }
    char ping[200], pong[200];
    snprintf(ping, sizeof ping, "%s-ping", argv[1]);
    snprintf(pong, sizeof pong, "%s-pong", argv[1]);
    uint64_t *ns = malloc(sizeof *ns * (size_t)rounds);

    ShmringBytes *a, *b;
    if (shmring_bytes_create(ping, 1 << 16, &a) != SHMRING_OK) DIE("create %s", ping);
    if (shmring_bytes_create(pong, 1 << 16, &b) != SHMRING_OK) DIE("create %s", pong);
    pid_t echo = fork();
    if (echo == 0) {
        /* The child opens its own handles: a handle is never shared across fork. */
        ShmringBytes *x, *y;
        ShmringBytesConsumer *rx;
        ShmringBytesProducer *tx;
        open_side(ping, &x, NULL, &rx);
        open_side(pong, &y, &tx, NULL);
        uint8_t v[8];
        for (long i = 0; i <= rounds; i++) {
            recv_spin(rx, v);
            send_spin(tx, v);
        }
        shmring_bytes_consumer_close(rx);
        shmring_bytes_producer_close(tx);
        shmring_bytes_close(x);
        shmring_bytes_close(y);
        _exit(0);
    }
    ShmringBytesProducer *tx;
    ShmringBytesConsumer *rx;
    if (shmring_bytes_producer(a, &tx) != SHMRING_OK) DIE("producer");
    if (shmring_bytes_consumer(b, &rx) != SHMRING_OK) DIE("consumer");
    uint8_t v[8] = {0}, w[8];
    uint64_t start = 0;
    for (long i = 0; i <= rounds; i++) {
        uint64_t t0 = now_ns();
        if (i == 1) start = t0; /* round 0 warms up, untimed */
        memcpy(v, &i, sizeof v);
        send_spin(tx, v);
        recv_spin(rx, w);
        if (memcmp(v, w, 8) != 0) DIE("echo %ld", i);
        if (i > 0) ns[i - 1] = now_ns() - t0;
    }
    uint64_t total = now_ns() - start;
    int status;
    waitpid(echo, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("echo process");
    report("shmring byte rings", ns, rounds, total);
    shmring_bytes_producer_close(tx);
    shmring_bytes_consumer_close(rx);
    shmring_bytes_close(a);
    shmring_bytes_close(b);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) DIE("socketpair");
    echo = fork();
    if (echo == 0) {
        close(sv[0]);
        for (long i = 0; i <= rounds; i++) {
            if (read(sv[1], v, 8) != 8 || write(sv[1], v, 8) != 8) _exit(3);
        }
        _exit(0);
    }
    close(sv[1]);
    for (long i = 0; i <= rounds; i++) {
        uint64_t t0 = now_ns();
        if (i == 1) start = t0;
        memcpy(v, &i, sizeof v);
        if (write(sv[0], v, 8) != 8 || read(sv[0], w, 8) != 8) DIE("socket");
        if (i > 0) ns[i - 1] = now_ns() - t0;
    }
    total = now_ns() - start;
    waitpid(echo, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("echo process");
    report("Unix socketpair", ns, rounds, total);
    close(sv[0]);

    /* One at a time, one way. */
    if (shmring_bytes_create(ping, 1 << 16, &a) != SHMRING_OK) DIE("create %s", ping);
    pid_t sender = fork();
    if (sender == 0) {
        ShmringBytes *x;
        ShmringBytesProducer *stx;
        open_side(ping, &x, &stx, NULL);
        for (long i = 0; i < rounds; i++) { memcpy(v, &i, 8); send_spin(stx, v); }
        shmring_bytes_producer_close(stx);
        shmring_bytes_close(x);
        _exit(0);
    }
    if (shmring_bytes_consumer(a, &rx) != SHMRING_OK) DIE("consumer");
    start = now_ns();
    for (long i = 0; i < rounds; i++) {
        recv_spin(rx, w);
        if (memcmp(&i, w, 8) != 0) DIE("message %ld", i);
    }
    total = now_ns() - start;
    waitpid(sender, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("sender process");
    printf("%-22s %6.2f M msg/s\n", "shmring byte ring", rounds / (total / 1e3));
    shmring_bytes_consumer_close(rx);
    shmring_bytes_close(a);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) DIE("socketpair");
    sender = fork();
    if (sender == 0) {
        close(sv[0]);
        for (long i = 0; i < rounds; i++) {
            memcpy(v, &i, 8);
            if (write(sv[1], v, 8) != 8) _exit(3);
        }
        _exit(0);
    }
    close(sv[1]);
    start = now_ns();
    for (long i = 0; i < rounds; i++) {
        size_t got = 0;
        while (got < 8) {
            ssize_t r = read(sv[0], w + got, 8 - got);
            if (r <= 0) DIE("socket");
            got += (size_t)r;
        }
        if (memcmp(&i, w, 8) != 0) DIE("message %ld", i);
    }
    total = now_ns() - start;
    waitpid(sender, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DIE("sender process");
    printf("%-22s %6.2f M msg/s\n", "Unix socketpair", rounds / (total / 1e3));
    close(sv[0]);
    typed_rings(ping, pong, rounds, ns);
    free(ns);
    return 0;
}
