"""Python and Rust on one ring, both ways; the bindings' errors, views and
handles. The Rust side is the shmring-c crate's `echo` example, built here
with cargo; it answers message i with i (8 bytes, little-endian) and the
message reversed, and (`--ticks`) a typed tick with its qty plus one.
numpy is needed here (the package itself needs it only for dtypes)."""

import _thread
import asyncio
import select
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy
import pytest

import shmring

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WAIT = 30.0


def unique(tag: str) -> str:
    unique.n = getattr(unique, "n", 0) + 1
    return f"shmring-py-{tag}-{os.getpid()}-{unique.n}"


@pytest.fixture(scope="session")
def echo() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "shmring-c", "--example", "echo"],
        cwd=ROOT,
        check=True,
    )
    target = TARGET if TARGET.is_absolute() else ROOT / TARGET
    return target / "release" / "examples" / "echo"


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    left = [p for p in os.listdir("/dev/shm") if p.startswith("shmring-py-")]
    assert left == [], f"left in /dev/shm: {left}"


def message(i: int) -> bytes:
    """Message i: (i * 37) % 9000 bytes (some longer than the consumer's
    first buffer), byte k being (i * 7 + k) & 0xff."""
    return bytes((i * 7 + k) & 0xFF for k in range((i * 37) % 9000))


def answer(i: int) -> bytes:
    return i.to_bytes(8, "little") + message(i)[::-1]


def test_python_and_rust_exchange_messages_both_ways(echo):
    count = 400
    to_rust, from_rust = unique("to-rust"), unique("from-rust")
    with shmring.ByteRing.create(to_rust, 1 << 15) as out_ring, shmring.ByteRing.create(
        from_rust, 1 << 15
    ) as in_ring, out_ring.producer() as tx, in_ring.consumer() as rx:
        rust = subprocess.Popen(
            [str(echo), to_rust, from_rust, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            sent = 0
            for i in range(count):
                # Ahead of the answers by up to 4, to meet back-pressure and
                # a ring that wraps; half copied in, half written in place.
                while sent < count and sent <= i + 4:
                    data = message(sent)
                    if sent % 2 == 0:
                        tx.send(data, timeout=WAIT)
                    else:
                        with tx.reserve(len(data) + 32, timeout=WAIT) as room:
                            room[: len(data)] = data
                            room.commit(len(data))
                    sent += 1
                if i % 2 == 0:
                    got = rx.recv(timeout=WAIT)
                else:
                    with rx.read(timeout=WAIT) as view:
                        assert view.readonly
                        got = bytes(view)
                assert got == answer(i), f"answer {i}"
            assert rx.try_recv() is None
            out, err = rust.communicate(timeout=WAIT)
            assert rust.returncode == 0, err.decode()
            assert out.decode().strip() == f"echoed {count}"
        finally:
            rust.kill()
            rust.wait()


def test_errors_name_the_ring_and_the_cause():
    missing = unique("missing")
    with pytest.raises(shmring.NotFound, match=re.escape(missing)):
        shmring.ByteRing.open(missing)
    name = unique("errors")
    with shmring.ByteRing.create(name, 4096) as ring:
        with pytest.raises(shmring.AlreadyExists):
            shmring.ByteRing.create(name, 4096)
        with ring.consumer() as rx:
            with pytest.raises(shmring.RoleTaken):
                ring.consumer()
            with pytest.raises(shmring.Timeout, match=re.escape(name)):
                rx.recv(timeout=0.001)
            assert rx.try_recv() is None
            with rx.read(timeout=0) as view:
                assert view is None
        with ring.producer() as tx:
            with pytest.raises(shmring.MessageTooLarge):
                tx.send(b"x" * (ring.max_message_len + 1))
            with tx.reserve(8) as room:
                with pytest.raises(shmring.Busy):
                    tx.try_send(b"no")
                with pytest.raises(shmring.InvalidArgument):
                    room.commit(9)
            # Left uncommitted: aborted, and the producer is free again.
            assert tx.try_send(b"yes")
    with pytest.raises(shmring.InvalidArgument):
        shmring.ByteRing.open("bad\0name")


def test_views_do_not_outlive_their_block():
    with shmring.ByteRing.create(unique("views"), 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        tx.send(b"kept")
        with rx.read(timeout=WAIT) as view:
            assert bytes(view) == b"kept"
        with pytest.raises(ValueError):
            bytes(view)
        with tx.reserve(4) as room:
            room[:] = b"abcd"
            room.commit()
            # Committed: the view is gone at once, not at the block's end.
            with pytest.raises(ValueError):
                room.view[0] = 1
        assert rx.recv(timeout=WAIT) == b"abcd"


def test_a_loan_ends_even_when_something_holds_its_view():
    import pickle

    with shmring.ByteRing.create(unique("held"), 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        tx.send(b"one")
        tx.send(b"two")
        with rx.read(timeout=WAIT) as view:
            held = pickle.PickleBuffer(view)  # an export the view cannot revoke
        # The loan ended all the same: the consumer is not stuck.
        assert rx.recv(timeout=WAIT) == b"two"
        held.release()


def test_closing_a_handle_ends_its_loan_first():
    with shmring.ByteRing.create(unique("close-loan"), 4096) as ring:
        tx, rx = ring.producer(), ring.consumer()
        tx.send(b"x")
        with rx.read(timeout=WAIT) as view:
            rx.close()
            with pytest.raises(ValueError):
                bytes(view)
        with tx.reserve(8) as room:
            tx.close()
            with pytest.raises(ValueError):
                room[0] = 1
        assert not ring.has_consumer and not ring.has_producer


def test_threads_sharing_a_consumer_take_turns():
    count = 2000
    with shmring.ByteRing.create(unique("threads"), 1 << 16) as ring, ring.producer() as tx, ring.consumer() as rx:
        got, lock = [], threading.Lock()

        def drain():
            while True:
                with lock:
                    if len(got) == count:
                        return
                m = rx.try_recv()
                if m is not None:
                    with lock:
                        got.append(int.from_bytes(m, "little"))

        threads = [threading.Thread(target=drain) for _ in range(2)]
        for t in threads:
            t.start()
        for i in range(count):
            tx.send(i.to_bytes(4, "little"), timeout=WAIT)
        for t in threads:
            t.join()
        assert sorted(got) == list(range(count))


def test_a_buffer_of_other_items_is_sent_whole():
    from array import array

    with shmring.ByteRing.create(unique("array"), 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        tx.send(array("I", [1, 2]))
        assert rx.recv(timeout=WAIT) == array("I", [1, 2]).tobytes()
        assert tx.try_send(array("H", [3]))
        assert len(rx.recv(timeout=0)) == 2
        with pytest.raises(shmring.Timeout):
            rx.recv(timeout=0)


def test_handles_close_and_give_their_roles_back():
    name = unique("close")
    ring = shmring.ByteRing.create(name, 4096)
    with ring.consumer():
        assert ring.has_consumer
    assert not ring.has_consumer
    ring.consumer().close()  # the role is free again
    ring.close()
    ring.close()  # twice: nothing
    with pytest.raises(ValueError, match="closed"):
        ring.producer()
    with pytest.raises(shmring.NotFound):
        shmring.ByteRing.open(name)


def test_statuses_are_the_headers():
    header = (ROOT / "capi" / "include" / "shmring.h").read_text()
    defined = dict(re.findall(r"#define SHMRING_(\w+) (\d+)", header))
    assert int(defined.pop("C_ABI_VERSION")) == shmring.ABI_VERSION == shmring.abi_version()
    defined.pop("FORMAT_VERSION")
    for name, value in list(defined.items()):
        if name.startswith("KIND_"):
            assert shmring._KINDS[int(defined.pop(name))] == name[5:].lower(), name
    for name, value in defined.items():
        assert getattr(shmring, name) == int(value), name


def test_ring_info_is_the_headers_struct():
    header = (ROOT / "capi" / "include" / "shmring.h").read_text()
    body = re.search(r"typedef struct ShmringInfo \{(.*?)\} ShmringInfo;", header, re.S).group(1)
    fields = re.findall(r"^\s*(\w+) (\w+)(?:\[(\d+)\])?;", body, re.M)
    c_types = {"uint8_t": "c_uint8", "uint32_t": "c_uint32", "uint64_t": "c_uint64", "char": "c_char"}
    ours = [(f, t) for f, t in shmring._Info._fields_]
    assert len(ours) == len(fields)
    for (name, kind), (c_type, c_name, n) in zip(ours, fields):
        assert name == c_name
        expected = getattr(ctypes, c_types[c_type])
        assert kind == (expected * int(n) if n else expected) or (n and kind._type_ is expected
                                                              and kind._length_ == int(n)), name


def test_layout_is_the_headers_struct():
    header = (ROOT / "capi" / "include" / "shmring.h").read_text()
    body = re.search(r"typedef struct ShmringLayout \{(.*?)\} ShmringLayout;", header, re.S).group(1)
    fields = re.findall(r"^\s*(const char \*|uint32_t )(\w+);", body, re.M)
    c_types = {"const char *": ctypes.c_char_p, "uint32_t ": ctypes.c_uint32}
    assert [(n, c_types[t]) for t, n in fields] == shmring._Layout._fields_


def test_subscriber_options_are_the_headers_struct():
    header = (ROOT / "capi" / "include" / "shmring.h").read_text()
    body = re.search(r"typedef struct ShmringSubscriberOptions \{(.*?)\} ShmringSubscriberOptions;", header, re.S)
    fields = re.findall(r"^\s*(uint32_t|uint64_t) (\w+);", body.group(1), re.M)
    c_types = {"uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64}
    assert [(n, c_types[t]) for t, n in fields] == shmring._SubscriberOptions._fields_


def test_batches_go_both_ways_in_one_call_each():
    with shmring.ByteRing.create(unique("batch"), 1 << 14) as ring, ring.producer() as tx, ring.consumer() as rx:
        messages = [message(i) for i in range(1, 40)]  # up to 1.4 KB each
        sent = 0
        got = []
        while len(got) < len(messages):
            sent += tx.send_many(messages[sent:], timeout=0)
            # Longer than the consumer's first buffer: it grows, nothing lost.
            got += rx.recv_many(limit=7, timeout=WAIT)
        assert got == messages
        assert rx.recv_many(timeout=0) == []
        with pytest.raises(shmring.Timeout):
            rx.recv_many(timeout=0.001)
        with pytest.raises(shmring.MessageTooLarge):
            tx.send_many([b"fits", b"x" * (ring.max_message_len + 1)])
        assert rx.try_recv() is None  # nothing of a refused batch went
        assert tx.send_many([]) == 0
        # Any iterable of buffers: a generator is read once.
        assert tx.send_many(m for m in (b"g1", bytearray(b"g2"), memoryview(b"g3"))) == 3
        assert rx.recv_many(timeout=0) == [b"g1", b"g2", b"g3"]


def test_inspect_reads_a_ring_without_joining_it():
    name = unique("inspect")
    with shmring.ByteRing.create(name, 4096) as ring, ring.producer() as tx:
        tx.send(b"abc")
        info = shmring.inspect(name)
        assert (info.kind, info.capacity, info.producers, info.consumers) == ("bytes", 4096, 1, 0)
        assert info.fill == info.written - info.read > 3
        assert info.in_use and info.mode == 0o600
        with ring.consumer() as rx:  # the role was not taken by looking
            assert rx.recv(timeout=WAIT) == b"abc"
            assert shmring.inspect(name).consumers == 1
        assert shmring.inspect(name).fill == 0
    with pytest.raises(shmring.NotFound):
        shmring.inspect(name)


@pytest.fixture
def ctrl_c_handler():
    """Ctrl-C's handler, whatever this process inherited: a shell's
    background job starts with SIGINT ignored, and Python then has none."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_ends_a_wait_for_ever(ctrl_c_handler):
    name = unique("ctrl-c")
    with shmring.ByteRing.create(name, 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        interrupted = threading.Event()
        gave_up = []

        def press_ctrl_c():
            try:
                # Once the receive waits (the header counts it), not before.
                deadline = time.monotonic() + WAIT
                while shmring.inspect(name).consumer_blocked == 0 and time.monotonic() < deadline:
                    time.sleep(0.001)
                _thread.interrupt_main()
                # A wait that ignored it would end only when a message came.
                if not interrupted.wait(WAIT):
                    gave_up.append(True)
            finally:
                if not interrupted.is_set():
                    tx.send(b"unblock")  # never leave the main thread waiting

        helper = threading.Thread(target=press_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            try:
                helper.start()
                rx.recv(timeout=None)
            finally:
                interrupted.set()
        helper.join()
        assert gave_up == [], "the wait ran on past Ctrl-C"


def test_a_read_stopped_before_its_block_leaves_the_message_in_the_ring(monkeypatch):
    with shmring.ByteRing.create(unique("unread"), 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        tx.send(b"kept")
        # Ctrl-C lands after the C call lent the message, before the view
        # is made: the loan ends, the message stays.
        def interrupted(*_):
            raise KeyboardInterrupt

        monkeypatch.setattr(shmring.ctypes, "cast", interrupted)
        with pytest.raises(KeyboardInterrupt):
            with rx.read(timeout=WAIT):
                pass
        monkeypatch.undo()
        assert rx.recv(timeout=0) == b"kept"
        assert rx.try_recv() is None


def test_a_message_longer_than_the_batch_buffer_grows_it():
    with shmring.ByteRing.create(unique("grow"), 1 << 18) as ring, ring.producer() as tx, ring.consumer() as rx:
        big = bytes(range(256)) * 400  # 100 KiB, past the 64 KiB buffer
        tx.send(b"a")
        tx.send(big)
        tx.send(b"b")
        got = []
        while len(got) < 3:
            got += rx.recv_many(timeout=WAIT)
        assert got == [b"a", big, b"b"]


def test_asyncio_awaits_a_message_and_a_cancelled_receive_loses_nothing():
    async def main():
        with shmring.ByteRing.create(unique("async"), 4096) as ring, ring.producer() as tx:
            async with ring.async_consumer() as rx:
                waiting = asyncio.create_task(rx.recv())
                await asyncio.sleep(0)  # the task ran to its await: parked
                assert not waiting.done()
                tx.send(b"woken")
                assert await asyncio.wait_for(waiting, WAIT) == b"woken"
                # Cancelled while parked, with a message there already (its
                # wakeup on the way): the message stays for the next.
                lost = asyncio.create_task(rx.recv())
                await asyncio.sleep(0)
                tx.send(b"kept")
                lost.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await lost
                assert await asyncio.wait_for(rx.recv(), WAIT) == b"kept"
                # A try_recv while a receive waits hands it its turn again:
                # it must not wait for ever for the next message.
                waiting = asyncio.create_task(rx.recv())
                await asyncio.sleep(0)
                tx.send(b"taken by try_recv")
                readable(rx)  # its wakeup is there, for try_recv to drain
                assert rx.try_recv() == b"taken by try_recv"
                await asyncio.sleep(0)  # the waiting one looked, and waits again
                tx.send(b"next")
                assert await asyncio.wait_for(waiting, WAIT) == b"next"
                # Two receives on one consumer take turns, each gets one.
                both = [asyncio.create_task(rx.recv()) for _ in range(2)]
                await asyncio.sleep(0)
                tx.send(b"one")
                tx.send(b"two")
                got = await asyncio.wait_for(asyncio.gather(*both), WAIT)
                assert sorted(got) == [b"one", b"two"]
                assert rx.try_recv() is None
                # As an async iterator.
                for m in (b"a", b"b", b"c"):
                    tx.send(m)
                seen = []
                async for m in rx:
                    seen.append(m)
                    if len(seen) == 3:
                        break
                assert seen == [b"a", b"b", b"c"]
                # A batch: awaits the first, then takes those there now.
                batch = asyncio.create_task(rx.recv_many(2))
                await asyncio.sleep(0)
                assert not batch.done()
                assert rx.try_recv_many() == []
                for m in (b"d", b"e", b"f"):
                    tx.send(m)
                assert await asyncio.wait_for(batch, WAIT) == [b"d", b"e"]
                assert await asyncio.wait_for(rx.recv_many(), WAIT) == [b"f"]

    asyncio.run(main())


def readable(handle):
    """Wait until an awaiting handle's fd has a wakeup, without taking it
    (and without running the loop, which would)."""
    assert select.select([handle._fd], [], [], WAIT)[0], "no wakeup came"


def test_asyncio_awaits_room_and_a_cancelled_send_sends_nothing():
    async def main():
        with shmring.ByteRing.create(unique("async-tx"), 1024) as ring, ring.consumer() as rx:
            async with ring.async_producer() as tx:
                sent = 0
                while tx.try_send(bytes([sent]) * 100):
                    sent += 1
                assert sent > 0
                # Full: a send parks until a receive makes room.
                waiting = asyncio.create_task(tx.send(b"x" * 100))
                await asyncio.sleep(0)
                assert not waiting.done()
                assert rx.recv(timeout=0) == bytes([0]) * 100
                await asyncio.wait_for(waiting, WAIT)
                # Cancelled while parked: nothing was sent.
                lost = asyncio.create_task(tx.send(b"lost"))
                await asyncio.sleep(0)
                lost.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await lost
                # A try_send that takes the room while a send waits hands
                # it its turn again: it must not wait for ever.
                waiting = asyncio.create_task(tx.send(b"y" * 100))
                await asyncio.sleep(0)
                assert rx.recv(timeout=0) == bytes([1]) * 100
                readable(tx)  # its wakeup is there, for try_send to drain
                assert tx.try_send(b"z" * 100)
                await asyncio.sleep(0)  # its wakeup, if any, is still to come
                assert rx.recv(timeout=0) == bytes([2]) * 100
                await asyncio.wait_for(waiting, WAIT)
                # A batch awaits room for its first, then sends what fits.
                batch = asyncio.create_task(tx.send_many([b"m1", b"m2", b"m3"]))
                await asyncio.sleep(0)
                assert not batch.done()
                # In order, each once, and the cancelled send nowhere.
                got = rx.recv_many(1000, timeout=0)
                assert got == [bytes([i]) * 100 for i in range(3, sent)] + [b"x" * 100, b"z" * 100, b"y" * 100]
                assert await asyncio.wait_for(batch, WAIT) == 3
                assert rx.recv_many(1000, timeout=0) == [b"m1", b"m2", b"m3"]
                # Any buffer; any iterable, read once.
                await asyncio.wait_for(tx.send(bytearray(b"ba")), WAIT)
                assert await asyncio.wait_for(tx.send_many(m for m in (b"g1", b"g2")), WAIT) == 2
                assert await asyncio.wait_for(tx.send_many([]), WAIT) == 0
                assert rx.recv_many(10, timeout=0) == [b"ba", b"g1", b"g2"]

    asyncio.run(main())


def test_closing_an_async_consumer_ends_its_waiting_receive():
    async def main():
        with shmring.ByteRing.create(unique("async-close"), 4096) as ring:
            rx = ring.async_consumer()
            waiting = asyncio.create_task(rx.recv())
            await asyncio.sleep(0)
            rx.close()
            with pytest.raises(ValueError, match="closed"):
                await asyncio.wait_for(waiting, WAIT)
            assert not ring.has_consumer
            # The loop watches nothing stale: another consumer works.
            with ring.producer() as tx:
                async with ring.async_consumer() as again:
                    tx.send(b"after")
                    assert await asyncio.wait_for(again.recv(), WAIT) == b"after"

    asyncio.run(main())


def test_asyncio_awaits_a_rust_process(echo):
    count = 60
    to_rust, from_rust = unique("async-to-rust"), unique("async-from-rust")

    async def main():
        with shmring.ByteRing.create(to_rust, 1 << 15) as out_ring, shmring.ByteRing.create(
            from_rust, 1 << 15
        ) as in_ring, out_ring.producer() as tx:
            async with in_ring.async_consumer() as rx:
                rust = subprocess.Popen(
                    [str(echo), to_rust, from_rust, str(count)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                try:
                    for i in range(count):
                        tx.send(message(i), timeout=WAIT)
                        assert await asyncio.wait_for(rx.recv(), WAIT) == answer(i), f"answer {i}"
                    out, err = rust.communicate(timeout=WAIT)
                    assert rust.returncode == 0, err.decode()
                finally:
                    rust.kill()
                    rust.wait()

    asyncio.run(main())


TICK = numpy.dtype([("px", "<f8"), ("qty", "<u4"), ("side", "<u4")], align=True)


def ticks(n: int):
    t = numpy.zeros(n, dtype=TICK)
    t["px"] = numpy.arange(n) / 2.0
    t["qty"] = numpy.arange(n)
    t["side"] = numpy.arange(n) % 2
    return t


def test_numpy_records_cross_to_a_rust_process_and_back(echo):
    count = 3000
    to_rust, from_rust = unique("ticks-to-rust"), unique("ticks-from-rust")
    layout = shmring.Layout.of(TICK, "Tick")
    assert (layout.size, layout.align) == (16, 8)
    with shmring.TypedRing.create(to_rust, layout, 64, dtype=TICK) as out_ring, shmring.TypedRing.create(
        from_rust, layout, 64, kind="mpmc", dtype=TICK
    ) as in_ring, out_ring.producer() as tx, in_ring.consumer() as rx:
        rust = subprocess.Popen(
            [str(echo), "--ticks", to_rust, from_rust, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            sent, got = ticks(count), []
            at, have = 0, 0
            while have < count:
                if at < count:
                    at += tx.push_many(sent[at:], timeout=0)
                batch = rx.pop_many(256, timeout=0 if at < count else WAIT)
                got.append(batch)
                have += len(batch)
            answers = numpy.concatenate(got)
            expected = sent.copy()
            expected["qty"] += 1
            assert answers.dtype == TICK
            assert numpy.array_equal(answers, expected)
            out, err = rust.communicate(timeout=WAIT)
            assert rust.returncode == 0, err.decode()
        finally:
            rust.kill()
            rust.wait()


def test_typed_rings_check_layouts_kinds_and_lengths():
    name = unique("typed")
    u64 = shmring.Layout("u64", 8, 8)
    with shmring.TypedRing.create(name, u64, 2, kind="mpmc") as ring:
        for other, kind in [
            (shmring.Layout("u64", 8, 4), "mpmc"),
            (shmring.Layout("i64", 8, 8), "mpmc"),
            (shmring.Layout("u64", 8, 8, version=1), "mpmc"),
            (u64, "spsc"),
        ]:
            with pytest.raises(shmring.Mismatch):
                shmring.TypedRing.open(name, other, kind=kind)
        with pytest.raises(ValueError, match="power of two"):
            shmring.TypedRing.open(name, shmring.Layout("u64", 8, 3), kind="mpmc")
        with pytest.raises(ValueError):
            shmring.TypedRing.open(name, u64, kind="bytes")
        with pytest.raises(ValueError):
            shmring.TypedRing.open(name, u64, kind="mpmc", dtype="<u4")
        assert not (ring.has_producer or ring.has_consumer)
        with shmring.TypedRing.open(name, u64, kind="mpmc", dtype="<u8") as same, ring.producer() as tx:
            with same.consumer() as a, ring.consumer() as b:
                assert ring.has_producer and same.has_consumer
                assert a.pop(timeout=0) is None
                with pytest.raises(shmring.Timeout):
                    b.pop(timeout=0.001)
                with pytest.raises(ValueError):
                    tx.push(b"short")
                assert tx.push((7).to_bytes(8, "little"), timeout=0)
                assert tx.push(numpy.uint64(8), timeout=0)
                assert not tx.push(b"\0" * 8, timeout=0)  # full
                assert a.pop(timeout=0) == 7  # a numpy scalar of the dtype
                assert b.pop(timeout=0) == (8).to_bytes(8, "little")  # bytes: no dtype
                # Many at once: as many as fit, in order, each once.
                assert tx.push_many(numpy.arange(10, 15, dtype="<u8"), timeout=0) == 2
                assert list(a.pop_many(8, timeout=0)) == [10, 11]
                assert tx.push_many(b"".join(i.to_bytes(8, "little") for i in (20, 21)), timeout=0) == 2
                assert b.pop_many(8, timeout=0) == (20).to_bytes(8, "little") + (21).to_bytes(8, "little")
                assert len(a.pop_many(8, timeout=0)) == 0
        # An array of another dtype is not reinterpreted; objects never cross.
        with shmring.TypedRing.open(name, u64, kind="mpmc", dtype="<u8") as same, same.producer() as tx:
            with pytest.raises(ValueError, match="not of the ring"):
                tx.push_many(numpy.zeros(2, dtype="<f8"))
            with pytest.raises(ValueError, match="objects"):
                tx.push_many(numpy.array([None], dtype=object))
            assert same.recover() == 0  # every holder alive: nothing to repair
    with pytest.raises(ValueError, match="objects"):
        shmring.Layout.of(numpy.dtype([("o", object)]), "O")
    for size, align in [(0, 8), (-8, 8), (2**32, 8), (8, 3), (8, 0)]:
        with pytest.raises(ValueError):
            shmring.Layout("x", size, align)
    with pytest.raises(shmring.InvalidArgument, match="schema"):
        shmring.TypedRing.create(unique("typed-schema"), shmring.Layout("x" * 33, 8, 8), 2)


def test_broadcast_subscribers_read_a_rust_publisher_and_end_at_its_close(echo):
    count = 2000
    to_rust, from_rust = unique("bcast-to-rust"), unique("bcast-from-rust")
    layout = shmring.Layout.of(TICK, "Tick")
    with shmring.TypedRing.create(to_rust, layout, 64, kind="broadcast", dtype=TICK) as out_ring, shmring.TypedRing.create(
        from_rust, layout, 64, kind="broadcast", dtype=TICK
    ) as in_ring, out_ring.producer() as tx, in_ring.subscriber(demote_after=None) as every, in_ring.subscriber(
        lossy=True
    ) as glance:
        rust = subprocess.Popen(
            [str(echo), "--broadcast", to_rust, from_rust, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Published before Rust subscribes: it starts at the oldest value.
            sent = ticks(count)
            at = tx.push_many(sent[:32], timeout=0)
            assert at == 32  # no subscriber yet holds the producer back
            # From here on the producer waits for Rust's subscriber.
            assert rust.stdout.readline() == b"subscribed\n"
            got = []
            have = 0
            while have < count:
                if at < count:
                    at += tx.push_many(sent[at:], timeout=0)
                batch = every.pop_many(256, timeout=0 if at < count else WAIT)
                got.append(batch)
                have += len(batch)
            answers = numpy.concatenate(got)
            expected = sent.copy()
            expected["qty"] += 1
            assert numpy.array_equal(answers, expected)
            with pytest.raises(shmring.Closed):
                every.pop(timeout=WAIT)
            assert every.missed == 0 and not every.demoted
            # The lossy one read nothing meanwhile: it skips to what is
            # left, every value it returns whole and in order, and says
            # how many it missed.
            seen = glance.pop_many(count, timeout=0)
            assert len(seen) + glance.missed == count
            assert numpy.array_equal(seen, expected[count - len(seen) :])
            out, err = rust.communicate(timeout=WAIT)
            assert rust.returncode == 0, err.decode()
        finally:
            rust.kill()
            rust.wait()


def test_broadcast_subscriber_options_and_the_end_of_a_stream():
    name = unique("bcast-opts")
    u64 = shmring.Layout("u64", 8, 8)
    with shmring.TypedRing.create(name, u64, 4, kind="broadcast", dtype="<u8") as ring:
        for bad in [
            dict(start="middle"),
            dict(start=-1),
            dict(start=2**64),
            dict(identity=-1),
            dict(demote_after=0),
            dict(demote_after_lag=0),
        ]:
            with pytest.raises(ValueError):
                ring.subscriber(**bad)
        with ring.producer() as tx, ring.subscriber(start="oldest") as a:
            assert tx.push_many(numpy.arange(4, dtype="<u8"), timeout=0) == 4
            assert not tx.push(numpy.uint64(4), timeout=0)  # `a` holds it back
            with ring.subscriber(start=2, lossy=True) as b, ring.subscriber(identity=7) as c:
                assert list(b.pop_many(8, timeout=0)) == [2, 3]
                assert c.pop(timeout=0) is None  # from the next value
                assert list(a.pop_many(8, timeout=0)) == [0, 1, 2, 3]
                tx.push(numpy.uint64(4), timeout=0)
                assert c.pop(timeout=0) == 4
            tx.push(numpy.uint64(5), timeout=0)
            # Identity 7 resumes where it left off.
            with ring.subscriber(identity=7) as c:
                with pytest.raises(shmring.RoleTaken):
                    ring.subscriber(identity=7)  # one live subscriber per identity
                assert c.pop(timeout=0) == 5
            tx.end()
            with pytest.raises(ValueError):
                tx.push(numpy.uint64(6))  # the handle is closed
            assert list(a.pop_many(8, timeout=0)) == [4, 5]
            with pytest.raises(shmring.Closed):
                a.pop(timeout=WAIT)
        with pytest.raises(shmring.Mismatch):
            shmring.TypedRing.open(name, u64, kind="spsc")
    with shmring.ByteRing.create(unique("bytes-end"), 4096) as ring, ring.consumer() as rx:
        tx = ring.producer()
        tx.send(b"last")
        tx.end()
        assert rx.recv(timeout=WAIT) == b"last"
        with pytest.raises(shmring.Closed):
            rx.recv(timeout=WAIT)
    other = unique("mpmc-not-bcast")
    with shmring.TypedRing.create(other, u64, 4, kind="mpmc") as ring:
        with pytest.raises(shmring.Mismatch):
            ring.subscriber()


def test_typed_values_are_written_and_read_in_place():
    for kind in ("spsc", "mpmc"):
        name = unique(f"typed-in-place-{kind}")
        with shmring.TypedRing.create(name, shmring.Layout.of(TICK, "Tick"), 2, kind=kind, dtype=TICK) as ring:
            with ring.producer() as tx, ring.consumer() as rx:
                with tx.reserve(timeout=0) as slot:
                    slot.array["px"] = 1.5
                    slot.array["qty"] = 7
                    with pytest.raises(shmring.Busy):
                        tx.push(ticks(1)[0], timeout=0)  # one thing at a time
                    slot.commit()
                with tx.reserve(timeout=0) as slot:
                    slot.array["qty"] = 99  # never committed: given back
                assert slot.array is None, "the loan's array ends with it"
                with rx.read(timeout=WAIT) as slot:
                    assert (slot.array["px"][0], slot.array["qty"][0]) == (1.5, 7)
                    assert not slot.array.flags.writeable
                    with pytest.raises(shmring.Busy):
                        rx.pop(timeout=0)
                    with pytest.raises(shmring.Busy):
                        with rx.read(timeout=0):
                            pass
                    assert slot.array["qty"][0] == 7, "the nested read left the outer loan alone"
                    with pytest.raises(ValueError):
                        slot.commit()
                with rx.read(timeout=0) as slot:
                    assert slot is None, f"{kind}: the given-back value is not read"
                # Room for two, then none.
                assert tx.push_many(ticks(2), timeout=0) == 2
                with pytest.raises(shmring.Timeout):
                    with tx.reserve(timeout=0):
                        pass
                assert len(rx.pop_many(8, timeout=0)) == 2
    # A broadcast ring's values are copied, not lent.
    with shmring.TypedRing.create(unique("bcast-not-lent"), shmring.Layout("u64", 8, 8), 2, kind="broadcast") as ring:
        with ring.producer() as tx, pytest.raises(ValueError, match="by copy"):
            with tx.reserve(timeout=0):
                pass


def test_a_nested_read_leaves_the_outer_loan_alone():
    with shmring.ByteRing.create(unique("nested-read"), 4096) as ring, ring.producer() as tx, ring.consumer() as rx:
        tx.send(b"outer")
        tx.send(b"next")
        with rx.read(timeout=0) as view:
            with pytest.raises(shmring.Busy):
                with rx.read(timeout=0):
                    pass
            assert bytes(view) == b"outer"
        assert rx.recv(timeout=0) == b"next"
