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
    free(ns);
    return 0;
}
