"""Round trips, one-at-a-time throughput and batched throughput between
two Python processes: 8-byte messages through shmring byte rings (spinning
on the try calls) beside the same through a Unix socketpair. Batched:
``send_many`` of 64 messages per call and ``recv_many`` of up to 8192
(64 KiB of messages), beside a socket written 64 messages per ``sendall``
and read 64 KiB per ``recv``. Typed (numpy, when installed): ``u64``
values through a typed SPSC ring, 64 per ``push_many`` and up to 8192 per
``pop_many`` as numpy arrays, beside the same arrays' bytes through the
socketpair, read 64 KiB at a time into arrays.

    python3 python/bench.py [ROUNDS]        # after pip install ./python
"""

import os
import socket
import statistics
import sys
import time

import shmring

ROUNDS = max(1, int(sys.argv[1])) if len(sys.argv) > 1 else 50_000


def spin_recv(rx):
    while True:
        m = rx.try_recv()
        if m is not None:
            return m


def spin_send(tx, m):
    while not tx.try_send(m):
        pass


def child(work):
    """Run ``work`` in a forked child that never returns to the parent's code."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os._exit(0)
        finally:
            os._exit(1)
    return pid


def reap(pid):
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the other process failed"


def rings_round_trip(name):
    ping, pong = f"{name}-ping", f"{name}-pong"
    with shmring.ByteRing.create(ping, 1 << 16) as a, shmring.ByteRing.create(pong, 1 << 16) as b:
        def echo():
            # The child opens its own handles: none is shared across fork.
            with shmring.ByteRing.open(ping) as x, shmring.ByteRing.open(pong) as y:
                with x.consumer() as rx, y.producer() as tx:
                    for _ in range(ROUNDS + 1):
                        spin_send(tx, spin_recv(rx))

        pid = child(echo)
        with a.producer() as tx, b.consumer() as rx:
            times = []
            for i in range(ROUNDS + 1):
                m = i.to_bytes(8, "little")
                t0 = time.perf_counter_ns()
                spin_send(tx, m)
                assert spin_recv(rx) == m
                times.append(time.perf_counter_ns() - t0)
        reap(pid)
    return times[1:]


def socket_round_trip():
    a, b = socket.socketpair()
    def echo():
        a.close()
        for _ in range(ROUNDS + 1):
            b.sendall(b.recv(8))

    pid = child(echo)
    b.close()
    times = []
    for i in range(ROUNDS + 1):
        m = i.to_bytes(8, "little")
        t0 = time.perf_counter_ns()
        a.sendall(m)
        assert a.recv(8) == m
        times.append(time.perf_counter_ns() - t0)
    reap(pid)
    a.close()
    return times[1:]


def rings_throughput(name):
    with shmring.ByteRing.create(name, 1 << 16) as ring:
        def send():
            with shmring.ByteRing.open(name) as r, r.producer() as tx:
                for i in range(ROUNDS):
                    spin_send(tx, i.to_bytes(8, "little"))

        pid = child(send)
        with ring.consumer() as rx:
            t0 = time.perf_counter_ns()
            for i in range(ROUNDS):
                assert spin_recv(rx) == i.to_bytes(8, "little")
            took = time.perf_counter_ns() - t0
        reap(pid)
    return ROUNDS / took * 1e9


def socket_throughput():
    a, b = socket.socketpair()
    def send():
        a.close()
        for i in range(ROUNDS):
            b.sendall(i.to_bytes(8, "little"))

    pid = child(send)
    b.close()
    t0 = time.perf_counter_ns()
    for i in range(ROUNDS):
        m = b""
        while len(m) < 8:
            m += a.recv(8 - len(m))
        assert m == i.to_bytes(8, "little")
    took = time.perf_counter_ns() - t0
    reap(pid)
    a.close()
    return ROUNDS / took * 1e9


BATCH = 64


def rings_batch_throughput(name):
    # 256 KiB: 8192 records of an 8-byte message (32 bytes each), so that
    # a receive may take the 64 KiB of messages a socket's recv reads.
    with shmring.ByteRing.create(name, 1 << 18) as ring:
        def send():
            with shmring.ByteRing.open(name) as r, r.producer() as tx:
                for at in range(0, ROUNDS, BATCH):
                    batch = [i.to_bytes(8, "little") for i in range(at, min(at + BATCH, ROUNDS))]
                    while batch:
                        batch = batch[tx.send_many(batch, timeout=0):]

        pid = child(send)
        with ring.consumer() as rx:
            t0 = time.perf_counter_ns()
            i = 0
            while i < ROUNDS:
                for m in rx.recv_many(8192, timeout=0):
                    assert m == i.to_bytes(8, "little")
                    i += 1
            took = time.perf_counter_ns() - t0
        reap(pid)
    return ROUNDS / took * 1e9


def socket_batch_throughput():
    a, b = socket.socketpair()
    def send():
        a.close()
        for at in range(0, ROUNDS, BATCH):
            b.sendall(b"".join(i.to_bytes(8, "little") for i in range(at, min(at + BATCH, ROUNDS))))

    pid = child(send)
    b.close()
    t0 = time.perf_counter_ns()
    i, rest = 0, b""
    while i < ROUNDS:
        rest += a.recv(1 << 16)
        whole = len(rest) // 8 * 8
        for k in range(0, whole, 8):
            assert rest[k : k + 8] == i.to_bytes(8, "little")
            i += 1
        rest = rest[whole:]
    took = time.perf_counter_ns() - t0
    reap(pid)
    a.close()
    return ROUNDS / took * 1e9


def rings_typed_throughput(name, numpy):
    layout = shmring.Layout.of(numpy.uint64, "u64")
    with shmring.TypedRing.create(name, layout, 8192, dtype=numpy.uint64) as ring:
        def send():
            with shmring.TypedRing.open(name, layout, dtype=numpy.uint64) as r, r.producer() as tx:
                for at in range(0, ROUNDS, BATCH):
                    batch = numpy.arange(at, min(at + BATCH, ROUNDS), dtype=numpy.uint64)
                    while len(batch):
                        batch = batch[tx.push_many(batch, timeout=0):]

        pid = child(send)
        with ring.consumer() as rx:
            t0 = time.perf_counter_ns()
            i = 0
            while i < ROUNDS:
                got = rx.pop_many(8192, timeout=0)
                assert (got == numpy.arange(i, i + len(got), dtype=numpy.uint64)).all()
                i += len(got)
            took = time.perf_counter_ns() - t0
        reap(pid)
    return ROUNDS / took * 1e9


def socket_typed_throughput(numpy):
    a, b = socket.socketpair()
    def send():
        a.close()
        for at in range(0, ROUNDS, BATCH):
            b.sendall(numpy.arange(at, min(at + BATCH, ROUNDS), dtype=numpy.uint64).tobytes())

    pid = child(send)
    b.close()
    t0 = time.perf_counter_ns()
    i, rest = 0, b""
    while i < ROUNDS:
        rest += a.recv(1 << 16)
        whole = len(rest) // 8 * 8
        got = numpy.frombuffer(rest[:whole], dtype=numpy.uint64)
        assert (got == numpy.arange(i, i + len(got), dtype=numpy.uint64)).all()
        i += len(got)
        rest = rest[whole:]
    took = time.perf_counter_ns() - t0
    reap(pid)
    a.close()
    return ROUNDS / took * 1e9


def main():
    name = f"shmring-py-bench-{os.getpid()}"
    r, s = rings_round_trip(name), socket_round_trip()
    print(f"round trip   shmring p50 {statistics.median(r) / 1000:6.2f} µs   "
          f"socketpair p50 {statistics.median(s) / 1000:6.2f} µs   "
          f"({statistics.median(s) / statistics.median(r):.1f}x)")
    rt, st = rings_throughput(name + "-t"), socket_throughput()
    print(f"throughput   shmring {rt / 1e6:6.3f} M msg/s   socketpair {st / 1e6:6.3f} M msg/s   "
          f"({rt / st:.1f}x)")
    rb, sb = rings_batch_throughput(name + "-b"), socket_batch_throughput()
    print(f"batched      shmring {rb / 1e6:6.3f} M msg/s   socketpair {sb / 1e6:6.3f} M msg/s   "
          f"({rb / sb:.1f}x)")
    try:
        import numpy
    except ImportError:
        print("typed        (numpy is not installed)")
        return
    rn, sn = rings_typed_throughput(name + "-n", numpy), socket_typed_throughput(numpy)
    print(f"typed numpy  shmring {rn / 1e6:6.3f} M msg/s   socketpair {sn / 1e6:6.3f} M msg/s   "
          f"({rn / sn:.1f}x)")


if __name__ == "__main__":
    main()
