"""shmring's lock-free rings in POSIX shared memory, from Python.

A thin layer over the C ABI of the ``shmring-c`` crate (``ctypes``): every
call is the C call, its status turned into a return value or an exception
whose message names the ring, the operation and the cause.

Why ``ctypes`` over the C ABI rather than PyO3: one boundary to keep right
(the C ABI, tested under sanitizers from C), nothing to compile per Python
version, and no dependency; a call costs a ``ctypes`` crossing (about a
microsecond), which a Python caller pays anyway.

Byte rings (typed rings of numpy dtypes: ``TypedRing``)::

    with ByteRing.open_or_create("orders", 1 << 16) as ring:
        with ring.producer() as tx:
            tx.send(b"buy 100")
            with tx.reserve(64) as room:     # in place: write, then commit
                room[:4] = b"sell"
                room.commit(4)
        with ring.consumer() as rx:
            assert rx.recv(timeout=1.0) == b"buy 100"
            with rx.read(timeout=1.0) as view:   # in place, read-only
                assert bytes(view) == b"sell"

A view lent by ``read`` or ``reserve`` is valid inside its ``with`` block
only (and a reservation's until its ``commit``): it is released then
(using it raises ``ValueError``), and so is the loan in the ring, even if
something still holds a buffer of it. Copy it with ``bytes(view)`` to
keep it; a slice or ``cast`` of it, or its ``obj``, must not leave the
block either (Python cannot revoke those), as they point into the ring.
Closing a handle ends its loan first. Handles are closed by their ``with``
block or ``close()``; each has a lock, so threads that share one take
turns (the C ABI allows one thread at a time).

Many messages per call: ``Producer.send_many`` and ``Consumer.recv_many``
pay the ``ctypes`` crossing once for a batch. ``inspect(name)`` reads any
ring's header (a typed one made in Rust too) without joining it.

``ByteRing.async_consumer()`` gives receives an ``asyncio`` loop awaits
(``await rx.recv()``, ``await rx.recv_many()``), and
``ByteRing.async_producer()`` sends that await room (``await
tx.send(data)``, ``await tx.send_many(messages)``): the loop watches a file descriptor that
the library's waiter thread makes readable, so no Python thread waits.

Ctrl-C ends a wait in the main thread: Python runs signal handlers there
between bytecodes, never inside a C call, so such a wait is made of C
calls of at most 0.25 s (each counts in the ring's counters as a wait of
its own). A message lent by ``read`` when Ctrl-C lands stays in the ring;
one a copying receive already took (its C call returned) is lost with
the interrupted call, as a socket's would be.
"""

import asyncio
import ctypes
import os
import sys
from array import array
import threading
from contextlib import contextmanager
from pathlib import Path
import time
from dataclasses import dataclass
from itertools import accumulate
from typing import Iterator, List, Optional, Sequence

__all__ = [
    "ByteRing",
    "Producer",
    "Consumer",
    "AsyncConsumer",
    "AsyncProducer",
    "Layout",
    "TypedRing",
    "TypedProducer",
    "TypedConsumer",
    "Reservation",
    "ShmringError",
    "NotFound",
    "AlreadyExists",
    "Timeout",
    "Closed",
    "InvalidArgument",
    "MessageTooLarge",
    "RoleTaken",
    "Mismatch",
    "PermissionDenied",
    "Corrupt",
    "Stalled",
    "Busy",
    "abi_version",
    "inspect",
    "RingInfo",
    "ABI_VERSION",
]

# The statuses of include/shmring.h (a test compares them with it).
OK, EMPTY, FULL, TIMEOUT, CLOSED, NOT_FOUND, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5, 6
INVALID_ARGUMENT, BUFFER_TOO_SMALL, MESSAGE_TOO_LARGE, ROLE_TAKEN = 7, 8, 9, 10
MISMATCH, PERMISSION_DENIED, CORRUPT, STALLED, BUSY, PANIC, OTHER = 11, 12, 13, 14, 15, 16, 99
# A broadcast subscriber's policy and start, as the header names them.
LOSSLESS, LOSSY = 0, 1
START_NEXT, START_OLDEST, START_AT = 0, 1, 2
#: The C ABI version these bindings were written for.
ABI_VERSION = 1


class ShmringError(Exception):
    """A failed call: ``code`` is the C status, the message says why."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class NotFound(ShmringError):
    """No ring of that name."""


class AlreadyExists(ShmringError):
    """A ring of that name exists already."""


class Timeout(ShmringError, TimeoutError):
    """A wait ended before it could be done."""


class Closed(ShmringError):
    """The producer closed the ring and everything in it was read."""


class InvalidArgument(ShmringError, ValueError):
    """An argument the C ABI refused (a bad name, a length that does not fit)."""


class MessageTooLarge(ShmringError, ValueError):
    """The message is longer than the ring's largest."""


class RoleTaken(ShmringError):
    """Another live handle holds the producer or consumer role."""


class Mismatch(ShmringError):
    """The ring is of another kind, type, capacity or format."""


class PermissionDenied(ShmringError, PermissionError):
    """The caller may not open or create it."""


class Corrupt(ShmringError):
    """The ring holds what no honest peer writes."""


class Stalled(ShmringError):
    """A wait ended behind a message a producer claimed and never committed."""


class Busy(ShmringError):
    """The handle lends a reservation or a message: finish that first."""


_ERRORS = {
    TIMEOUT: Timeout,
    CLOSED: Closed,
    NOT_FOUND: NotFound,
    ALREADY_EXISTS: AlreadyExists,
    INVALID_ARGUMENT: InvalidArgument,
    MESSAGE_TOO_LARGE: MessageTooLarge,
    ROLE_TAKEN: RoleTaken,
    MISMATCH: Mismatch,
    PERMISSION_DENIED: PermissionDenied,
    CORRUPT: Corrupt,
    STALLED: Stalled,
    BUSY: Busy,
}


def _library_path() -> str:
    """The C library: $SHMRING_C_LIB, or the one installed with this package."""
    explicit = os.environ.get("SHMRING_C_LIB")
    if explicit:
        return explicit
    return str(Path(__file__).resolve().parent / "libshmring_c.so")


def _missing(name: str):
    def call(*_):
        raise ShmringError(OTHER, f"{_library_path()} has no {name}: it is older than these bindings")

    return call


_c = ctypes.CDLL(_library_path())
_c.shmring_abi_version.argtypes, _c.shmring_abi_version.restype = [], ctypes.c_uint32
if _c.shmring_abi_version() != ABI_VERSION:
    raise ImportError(
        f"{_library_path()} has C ABI version {_c.shmring_abi_version()}, "
        f"these bindings were written for {ABI_VERSION}"
    )
_P = ctypes.c_void_p
_u8p = ctypes.POINTER(ctypes.c_uint8)
_size = ctypes.c_size_t
#: The ``array`` type code of a ``size_t``.
_SIZE_T = next(c for c in "LQI" if array(c).itemsize == ctypes.sizeof(_size))
for _name, _args, _ret in [
    ("shmring_last_error", [], ctypes.c_char_p),
    ("shmring_bytes_create", [ctypes.c_char_p, _size, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_open", [ctypes.c_char_p, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_open_or_create", [ctypes.c_char_p, _size, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_open_timeout", [ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_close", [_P], None),
    ("shmring_bytes_max_message_len", [_P], _size),
    ("shmring_bytes_has_producer", [_P], ctypes.c_int),
    ("shmring_bytes_has_consumer", [_P], ctypes.c_int),
    ("shmring_bytes_producer", [_P, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_consumer", [_P, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_bytes_producer_close", [_P], None),
    ("shmring_bytes_consumer_close", [_P], None),
    ("shmring_bytes_try_send", [_P, ctypes.c_char_p, _size], ctypes.c_int),
    ("shmring_bytes_send_timeout", [_P, ctypes.c_char_p, _size, ctypes.c_uint64], ctypes.c_int),
    ("shmring_bytes_reserve", [_P, _size, ctypes.c_uint64, ctypes.POINTER(_u8p)], ctypes.c_int),
    ("shmring_bytes_commit", [_P, _size], ctypes.c_int),
    ("shmring_bytes_abort", [_P], ctypes.c_int),
    ("shmring_bytes_try_recv", [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size)], ctypes.c_int),
    (
        "shmring_bytes_recv_timeout",
        [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size), ctypes.c_uint64],
        ctypes.c_int,
    ),
    ("shmring_bytes_read", [_P, ctypes.c_uint64, ctypes.POINTER(_u8p), ctypes.POINTER(_size)], ctypes.c_int),
    ("shmring_bytes_release", [_P], ctypes.c_int),
    ("shmring_bytes_unread", [_P], ctypes.c_int),
    ("shmring_bytes_async_consumer", [_P, ctypes.POINTER(_P), ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    ("shmring_bytes_poll_recv", [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size)], ctypes.c_int),
    ("shmring_bytes_async_consumer_close", [_P], None),
    (
        "shmring_bytes_poll_recv_many",
        [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size), _size, ctypes.POINTER(_size)],
        ctypes.c_int,
    ),
    ("shmring_bytes_async_producer", [_P, ctypes.POINTER(_P), ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    ("shmring_bytes_poll_send", [_P, ctypes.c_char_p, _size], ctypes.c_int),
    (
        "shmring_bytes_poll_send_many",
        [_P, ctypes.c_char_p, ctypes.c_void_p, _size, ctypes.POINTER(_size)],
        ctypes.c_int,
    ),
    ("shmring_bytes_async_producer_close", [_P], None),
    ("shmring_typed_create", [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_void_p, _size, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_typed_open", [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.POINTER(_P)], ctypes.c_int),
    (
        "shmring_typed_open_or_create",
        [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_void_p, _size, ctypes.POINTER(_P)],
        ctypes.c_int,
    ),
    (
        "shmring_typed_open_timeout",
        [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(_P)],
        ctypes.c_int,
    ),
    ("shmring_typed_close", [_P], None),
    ("shmring_typed_value_len", [_P], _size),
    ("shmring_typed_has_producer", [_P], ctypes.c_int),
    ("shmring_typed_has_consumer", [_P], ctypes.c_int),
    ("shmring_typed_recover", [_P], ctypes.c_uint64),
    ("shmring_typed_producer", [_P, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_typed_consumer", [_P, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_typed_producer_close", [_P], None),
    ("shmring_typed_producer_end", [_P], None),
    ("shmring_bytes_producer_end", [_P], None),
    ("shmring_typed_subscriber", [_P, ctypes.c_void_p, ctypes.POINTER(_P)], ctypes.c_int),
    ("shmring_typed_missed", [_P], ctypes.c_uint64),
    ("shmring_typed_reserve", [_P, ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)], ctypes.c_int),
    ("shmring_typed_commit", [_P], ctypes.c_int),
    ("shmring_typed_abort", [_P], ctypes.c_int),
    ("shmring_typed_read", [_P, ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)], ctypes.c_int),
    ("shmring_typed_release", [_P], ctypes.c_int),
    ("shmring_typed_is_demoted", [_P], ctypes.c_int),
    ("shmring_typed_consumer_close", [_P], None),
    ("shmring_typed_push_timeout", [_P, ctypes.c_void_p, _size, ctypes.c_uint64], ctypes.c_int),
    ("shmring_typed_pop_timeout", [_P, ctypes.c_void_p, _size, ctypes.c_uint64], ctypes.c_int),
    (
        "shmring_typed_push_many",
        [_P, ctypes.c_void_p, _size, ctypes.c_uint64, ctypes.POINTER(_size)],
        ctypes.c_int,
    ),
    (
        "shmring_typed_pop_many",
        [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size), ctypes.c_uint64],
        ctypes.c_int,
    ),
    (
        "shmring_bytes_send_many",
        [_P, ctypes.c_char_p, ctypes.c_void_p, _size, ctypes.c_uint64, ctypes.POINTER(_size)],
        ctypes.c_int,
    ),
    (
        "shmring_bytes_recv_many",
        [_P, ctypes.c_void_p, _size, ctypes.POINTER(_size), _size, ctypes.POINTER(_size), ctypes.c_uint64],
        ctypes.c_int,
    ),
]:
    # A function added to ABI version 1 later than the library loaded
    # (an older build through SHMRING_C_LIB) fails when called, not here.
    _f = getattr(_c, _name, None)
    if _f is None:
        setattr(_c, _name, _missing(_name))
        continue
    _f.argtypes, _f.restype = _args, _ret



class _Info(ctypes.Structure):
    """``ShmringInfo`` of include/shmring.h (a test compares the two)."""

    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("elem_size", ctypes.c_uint32),
        ("elem_align", ctypes.c_uint32),
        ("schema_version", ctypes.c_uint32),
        ("schema", ctypes.c_char * 33),
        ("persistent", ctypes.c_uint8),
        ("zero_after_use", ctypes.c_uint8),
        ("in_use", ctypes.c_uint8),
        ("fingerprint", ctypes.c_uint64),
        ("capacity", ctypes.c_uint64),
        ("written", ctypes.c_uint64),
        ("read", ctypes.c_uint64),
        ("fill", ctypes.c_uint64),
        ("repaired", ctypes.c_uint64),
        ("producers", ctypes.c_uint32),
        ("consumers", ctypes.c_uint32),
        ("producer_blocked", ctypes.c_uint64),
        ("consumer_blocked", ctypes.c_uint64),
        ("takeovers", ctypes.c_uint64),
        ("segment_len", ctypes.c_uint64),
        ("owner_uid", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
    ]


if hasattr(_c, "shmring_inspect"):
    _c.shmring_inspect.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Info)]
    _c.shmring_inspect.restype = ctypes.c_int
else:
    _c.shmring_inspect = _missing("shmring_inspect")


def abi_version() -> int:
    """The C ABI version of the library loaded."""
    return _c.shmring_abi_version()


#: ``RingInfo.kind`` by the header's SHMRING_KIND_ values.
_KINDS = {1: "spsc", 2: "mpmc", 3: "bytes", 4: "broadcast"}


@dataclass(frozen=True)
class RingInfo:
    """A ring's state as its header says (see ``ShmringInfo`` in
    include/shmring.h): what ``shmring stat`` shows. Peer counts are the
    kernel's word, not pids'."""

    kind: str
    elem_size: int
    elem_align: int
    schema: str
    schema_version: int
    fingerprint: int
    capacity: int
    written: int
    read: int
    fill: int
    repaired: int
    producers: int
    consumers: int
    producer_blocked: int
    consumer_blocked: int
    takeovers: int
    persistent: bool
    zero_after_use: bool
    in_use: bool
    segment_len: int
    owner_uid: int
    mode: int


def inspect(name: str) -> RingInfo:
    """Read ring ``name``'s header without joining it (no role taken,
    nothing written); NotFound if there is none. Any kind of ring: a
    typed one made in Rust too."""
    if "\0" in name:
        raise InvalidArgument(INVALID_ARGUMENT, f"ring name {name!r} holds a NUL")
    c = _Info()
    _check(_c.shmring_inspect(name.encode(), ctypes.byref(c)))
    fields = {f: getattr(c, f) for f, _ in _Info._fields_}
    fields["kind"] = _KINDS.get(c.kind, "unknown")
    fields["schema"] = c.schema.decode("utf-8", "replace")
    for flag in ("persistent", "zero_after_use", "in_use"):
        fields[flag] = bool(fields[flag])
    return RingInfo(**fields)


def _check(status: int) -> int:
    """``status`` if it is not an error; else the error, raised."""
    if status in (OK, EMPTY, FULL, BUFFER_TOO_SMALL):
        return status
    message = (_c.shmring_last_error() or b"").decode("utf-8", "replace")
    raise _ERRORS.get(status, ShmringError)(status, message)


_FOREVER = 2**64 - 1


class _Batch:
    """Where a batch receive's C call copies: a buffer (64 KiB, as much as
    a socket's receive takes, grown for a longer message), lengths, and a
    count; made on a consumer's first batch."""

    def __init__(self):
        self.cap = 0
        self.buf = None
        self.lens = (_size * 0)()
        self.count = _size()

    def ready(self, limit: int) -> "_Batch":
        if len(self.lens) < limit:
            self.lens = (_size * limit)()
        if self.buf is None:
            self.cap = 1 << 16
            self.buf = ctypes.create_string_buffer(self.cap)
        return self

    def grow(self) -> None:
        """The first message did not fit (it waits in the ring): a buffer
        that holds it."""
        self.cap = max(self.lens[0], 2 * self.cap)
        self.buf = ctypes.create_string_buffer(self.cap)

    def messages(self) -> List[bytes]:
        sizes = self.lens[: self.count.value]
        raw = ctypes.string_at(self.buf, sum(sizes))
        ends = list(accumulate(sizes))
        return [raw[end - n : end] for n, end in zip(sizes, ends)]


def _ns(timeout: Optional[float]) -> int:
    """Seconds (None: as long as it takes) as the C ABI's nanoseconds."""
    if timeout is None:
        return _FOREVER
    if timeout < 0:
        raise ValueError("a timeout is not negative")
    return min(int(timeout * 1e9), _FOREVER)


#: How long one C call of a wait in the main thread lasts at most. Python
#: runs its signal handlers (Ctrl-C's KeyboardInterrupt) in the main
#: thread between bytecodes, never inside a C call: a wait there is made
#: of calls this long, so that it ends within one. Each call counts in
#: the ring's counters as a wait of its own (``consumer_blocked``, and a
#: timeout if it ended empty); other threads wait in one call.
_SLICE = 0.25


def _waiting(timeout: Optional[float], attempt, again=(TIMEOUT, STALLED)) -> int:
    """``attempt(ns)``'s status, for a wait of ``timeout`` seconds (None:
    for ever; 0: one call that does not wait). In the main thread, made of
    calls of at most ``_SLICE`` seconds, repeated while their status is in
    ``again`` (a slice that ended empty, or behind a message not yet
    committed) and time is left; the last one's status at the deadline."""
    if timeout is not None and (timeout != timeout or timeout < 0):
        raise ValueError(f"a timeout is a number of seconds, not {timeout!r}")
    if (timeout is not None and timeout <= _SLICE) or threading.current_thread() is not threading.main_thread():
        return attempt(_ns(timeout))
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _SLICE if end is None else min(_SLICE, end - time.monotonic())
        status = attempt(max(1, _ns(max(left, 0.0))))
        if status not in again:
            return status
        if end is not None and time.monotonic() >= end:
            if status == TIMEOUT:
                # The C message names the last slice's length, not the wait's.
                message = (_c.shmring_last_error() or b"").decode("utf-8", "replace")
                raise Timeout(TIMEOUT, f"{message} (the last slice of a {timeout:g} s wait)")
            return status


class _Handle:
    """A C handle, closed once, by ``close()`` or its ``with`` block; its
    lock makes threads that share it take turns."""

    _closer = None

    def __init__(self, ptr: int):
        self._ptr: Optional[int] = ptr
        self._lock = threading.RLock()
        self._loan: Optional[memoryview] = None

    @property
    def _p(self) -> int:
        if self._ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._ptr

    def _end_loan(self) -> None:
        """Release the view lent from this handle (if any), then the loan."""

    def close(self) -> None:
        with self._lock:
            if self._ptr is None:
                return
            try:
                self._end_loan()
            finally:
                ptr, self._ptr = self._ptr, None
                type(self)._closer(ptr)

    def _close_with(self, closer) -> None:
        """Close the handle with ``closer`` instead of its own closer
        (ValueError if it is closed already: what ``closer`` does, such as
        ending a stream, did not happen)."""
        with self._lock:
            try:
                self._end_loan()
            finally:
                ptr, self._ptr = self._p, None
                closer(ptr)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            self.close()


def _release_view(view: memoryview) -> None:
    """Release ``view``; a buffer still exported from it keeps it alive,
    which is the holder's error, not a reason to keep the loan."""
    try:
        view.release()
    except BufferError:
        pass


class ByteRing(_Handle):
    """A ring of byte messages of any length up to ``max_message_len``."""

    _closer = _c.shmring_bytes_close

    def __init__(self, ptr: int, name: str):
        super().__init__(ptr)
        self.name = name

    @classmethod
    def _made(cls, call, name: str, *args) -> "ByteRing":
        if "\0" in name:
            # C would read the name only up to it: another ring.
            raise InvalidArgument(INVALID_ARGUMENT, f"ring name {name!r} holds a NUL")
        out = _P()
        _check(call(name.encode(), *args, ctypes.byref(out)))
        return cls(out.value, name)

    @classmethod
    def create(cls, name: str, capacity: int) -> "ByteRing":
        """Create ring ``name`` with ``capacity`` bytes (mode 0600); AlreadyExists if it is there."""
        return cls._made(_c.shmring_bytes_create, name, capacity)

    @classmethod
    def open(cls, name: str) -> "ByteRing":
        """Open ring ``name``; NotFound if there is none."""
        return cls._made(_c.shmring_bytes_open, name)

    @classmethod
    def open_or_create(cls, name: str, capacity: int) -> "ByteRing":
        """Open ring ``name``, or create it with ``capacity`` bytes."""
        return cls._made(_c.shmring_bytes_open_or_create, name, capacity)

    @classmethod
    def open_timeout(cls, name: str, timeout: float) -> "ByteRing":
        """Open ring ``name``, waiting up to ``timeout`` seconds for it to be made."""
        if "\0" in name:
            raise InvalidArgument(INVALID_ARGUMENT, f"ring name {name!r} holds a NUL")
        out, encoded = _P(), name.encode()
        _check(
            _waiting(
                timeout,
                lambda ns: _c.shmring_bytes_open_timeout(encoded, ns, ctypes.byref(out)),
                again=(TIMEOUT, NOT_FOUND),
            )
        )
        return cls(out.value, name)

    @property
    def max_message_len(self) -> int:
        return _c.shmring_bytes_max_message_len(self._p)

    @property
    def has_producer(self) -> bool:
        """Whether a live process holds the producer role (the kernel's answer)."""
        return bool(_c.shmring_bytes_has_producer(self._p))

    @property
    def has_consumer(self) -> bool:
        """Whether a live process holds the consumer role."""
        return bool(_c.shmring_bytes_has_consumer(self._p))

    def producer(self) -> "Producer":
        """Take the producer role (RoleTaken if a live handle holds it)."""
        out = _P()
        _check(_c.shmring_bytes_producer(self._p, ctypes.byref(out)))
        return Producer(out.value, self.name)

    def consumer(self) -> "Consumer":
        """Take the consumer role."""
        out = _P()
        _check(_c.shmring_bytes_consumer(self._p, ctypes.byref(out)))
        return Consumer(out.value, self.name)

    def async_consumer(self) -> "AsyncConsumer":
        """Take the consumer role for receives an ``asyncio`` loop awaits."""
        out, fd = _P(), ctypes.c_int(-1)
        _check(_c.shmring_bytes_async_consumer(self._p, ctypes.byref(out), ctypes.byref(fd)))
        return AsyncConsumer(out.value, self.name, fd.value)

    def async_producer(self) -> "AsyncProducer":
        """Become a producer for sends an ``asyncio`` loop awaits."""
        out, fd = _P(), ctypes.c_int(-1)
        _check(_c.shmring_bytes_async_producer(self._p, ctypes.byref(out), ctypes.byref(fd)))
        return AsyncProducer(out.value, self.name, fd.value)

    def __repr__(self) -> str:
        return f"ByteRing({self.name!r})"


class Reservation:
    """Room reserved in place: write into it (a writable memoryview), then
    ``commit(n)`` the first ``n`` bytes; left uncommitted, it is aborted."""

    def __init__(self, producer: "Producer", view: memoryview):
        self._producer = producer
        self.view = view
        self.done = False

    def __len__(self) -> int:
        return len(self.view)

    def __setitem__(self, key, value) -> None:
        self.view[key] = value

    def commit(self, n: Optional[int] = None) -> None:
        """Publish the first ``n`` bytes (all of them if ``n`` is None); the
        view is released."""
        n = len(self.view) if n is None else n
        with self._producer._lock:
            _check(_c.shmring_bytes_commit(self._producer._p, n))
            self.done = True
            self._producer._loan = None
            _release_view(self.view)


def _pack(messages: Sequence[bytes]):
    """A batch as the C ABI takes it: the messages one after another, their
    lengths in bytes, and the address of those lengths."""
    if not isinstance(messages, (list, tuple)):
        messages = list(messages)  # read once: it may be an iterator
    if set(map(type, messages)) != {bytes}:
        # Lengths in bytes: a memoryview's len() counts its items.
        messages = [m if type(m) is bytes else bytes(m) for m in messages]
    lens = array(_SIZE_T, map(len, messages))
    return b"".join(messages), lens, lens.buffer_info()[0]


class Producer(_Handle):
    """A byte ring's producer."""

    _closer = _c.shmring_bytes_producer_close

    def __init__(self, ptr: int, name: str):
        super().__init__(ptr)
        self.name = name

    def try_send(self, data: bytes) -> bool:
        """Copy ``data`` in as one message if there is room now; whether there was."""
        b = bytes(data)
        with self._lock:
            return _check(_c.shmring_bytes_try_send(self._p, b, len(b))) == OK

    def send(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Copy ``data`` in as one message, waiting up to ``timeout`` seconds for
        room (0: not at all, and Timeout if there is none)."""
        b = bytes(data)
        with self._lock:
            p = self._p
            status = _waiting(timeout, lambda ns: _c.shmring_bytes_send_timeout(p, b, len(b), ns))
            if _check(status) == FULL:
                raise Timeout(TIMEOUT, f"send to ring {self.name!r}: no room now")

    def send_many(self, messages: Sequence[bytes], timeout: Optional[float] = None) -> int:
        """Copy ``messages`` in, in order, in one call: waits up to ``timeout``
        seconds for room for the first (0: not at all), then sends while
        there is room now; how many went (0 if there was no room now; the
        caller sends the rest). Every length is checked first: one too
        long raises MessageTooLarge, and none is sent."""
        if not messages:
            return 0
        data, lens, at = _pack(messages)
        sent = _size()
        with self._lock:
            p = self._p
            status = _waiting(
                timeout,
                lambda ns: _c.shmring_bytes_send_many(p, data, at, len(lens), ns, ctypes.byref(sent)),
            )
            _check(status)
            return sent.value

    def _end_loan(self) -> None:
        view, self._loan = self._loan, None
        if view is not None:
            _release_view(view)
            _c.shmring_bytes_abort(self._ptr)

    @contextmanager
    def reserve(self, n: int, timeout: Optional[float] = None) -> Iterator[Reservation]:
        """Reserve ``n`` bytes in place, waiting up to ``timeout`` seconds for
        room (0: not at all, and Timeout if there is none)."""
        at = _u8p()
        with self._lock:
            p = self._p
            status = _waiting(timeout, lambda ns: _c.shmring_bytes_reserve(p, n, ns, ctypes.byref(at)))
            if _check(status) == FULL:
                raise Timeout(TIMEOUT, f"reserve in ring {self.name!r}: no room now")
            try:
                room = (ctypes.c_uint8 * n).from_address(ctypes.cast(at, ctypes.c_void_p).value or 0)
                view = memoryview(room).cast("B")
                self._loan = view
            except BaseException:
                # Ctrl-C (or anything) before the loan is recorded: given back.
                _c.shmring_bytes_abort(p)
                raise
        grant = Reservation(self, view)
        try:
            yield grant
        finally:
            with self._lock:
                if self._loan is view:  # not committed, nor closed
                    self._end_loan()

    def end(self) -> None:
        """End the stream and close the producer (an open reservation is
        given back): the consumer receives every message sent before, then
        Closed. A new producer reopens the ring."""
        self._close_with(_c.shmring_bytes_producer_end)


class Consumer(_Handle):
    """A byte ring's consumer."""

    _closer = _c.shmring_bytes_consumer_close

    def __init__(self, ptr: int, name: str):
        super().__init__(ptr)
        self.name = name
        self._buf = ctypes.create_string_buffer(4096)
        self._cap = 4096
        self._n = _size()
        self._n_ref = ctypes.byref(self._n)
        self._batch = _Batch()

    def _copy(self, call, *wait) -> Optional[bytes]:
        with self._lock:
            return self._copy_locked(call, *wait)

    def _copy_locked(self, call, *wait) -> Optional[bytes]:
        n, p = self._n, self._p
        while True:
            if wait:
                status = _waiting(wait[0], lambda ns: call(p, self._buf, self._cap, self._n_ref, ns))
            else:
                status = call(p, self._buf, self._cap, self._n_ref)
            if status == OK:
                return ctypes.string_at(self._buf, n.value)
            if status == EMPTY:
                return None
            if status == BUFFER_TOO_SMALL:
                # The message waits in the ring for a buffer that holds it.
                self._buf = ctypes.create_string_buffer(n.value)
                self._cap = n.value
                continue
            _check(status)

    def try_recv(self) -> Optional[bytes]:
        """The oldest message, copied out and released, or None if there is none now."""
        return self._copy(_c.shmring_bytes_try_recv)

    def recv(self, timeout: Optional[float] = None) -> bytes:
        """The oldest message, copied out, waiting up to ``timeout`` seconds
        (Timeout if none came)."""
        if timeout is not None and timeout < 0:
            raise ValueError("a timeout is not negative")
        m = self._copy(_c.shmring_bytes_recv_timeout, timeout)
        if m is None:
            raise Timeout(TIMEOUT, f"recv from ring {self.name!r}: nothing now")
        return m

    def recv_many(self, limit: int = 64, timeout: Optional[float] = None) -> List[bytes]:
        """Up to ``limit`` messages, copied out and released in one call: waits
        up to ``timeout`` seconds for the first (0: not at all, and the list
        is empty if there is none; Timeout if none came in a longer wait),
        then takes those there now."""
        if limit < 1:
            raise ValueError("limit is at least 1")
        if timeout is not None and timeout < 0:
            raise ValueError("a timeout is not negative")
        with self._lock:
            batch = self._batch.ready(limit)
            p = self._p
            while True:
                status = _waiting(
                    timeout,
                    lambda ns: _c.shmring_bytes_recv_many(
                        p, batch.buf, batch.cap, batch.lens, limit, ctypes.byref(batch.count), ns
                    ),
                )
                if status != BUFFER_TOO_SMALL:
                    break
                batch.grow()
            if _check(status) == EMPTY:
                if timeout == 0:
                    return []
                raise Timeout(TIMEOUT, f"recv_many from ring {self.name!r}: nothing now")
            return batch.messages()

    def _end_loan(self) -> None:
        view, self._loan = self._loan, None
        if view is not None:
            _release_view(view)
            _c.shmring_bytes_release(self._ptr)

    @contextmanager
    def read(self, timeout: Optional[float] = None) -> Iterator[Optional[memoryview]]:
        """The oldest message in place, as a read-only memoryview valid inside
        the block, released at its end; waits up to ``timeout`` seconds
        (0: not at all, and the view is None if there is none)."""
        at, n = _u8p(), _size()
        with self._lock:
            p = self._p
            if self._loan is not None:
                raise Busy(BUSY, f"read on ring {self.name!r}: a message is lent: release it first")
            try:
                status = _waiting(
                    timeout, lambda ns: _c.shmring_bytes_read(p, ns, ctypes.byref(at), ctypes.byref(n))
                )
                status = _check(status)
                if status == EMPTY:
                    view = None
                else:
                    lent = (ctypes.c_uint8 * n.value).from_address(ctypes.cast(at, ctypes.c_void_p).value or 0)
                    view = memoryview(lent).cast("B").toreadonly()
                    self._loan = view
            except BaseException:
                # Ctrl-C (or anything) before the loan is recorded, even
                # just after the C call lent it: the message stays in the
                # ring, for the next receive (nothing lent, which the
                # check above makes sure of on entry: a no-op).
                self._loan = None
                _c.shmring_bytes_unread(p)
                raise
        if view is None:
            yield None
            return
        try:
            yield view
        finally:
            with self._lock:
                if self._loan is view:  # not closed meanwhile
                    self._end_loan()


class _Awaiting(_Handle):
    """What the handles an ``asyncio`` loop awaits share: a file descriptor
    the library's waiter thread makes readable when a poll that answered
    EMPTY or FULL may succeed, watched by the loop (``add_reader``); turns
    for the coroutines that wait on one handle; and closing."""

    #: What a waiting coroutine does, for the message of ``Busy``.
    _waits = "an operation"

    def __init__(self, ptr: int, name: str, fd: int):
        super().__init__(ptr)
        self.name = name
        self._fd = fd
        self._turn: Optional[asyncio.Lock] = None
        self._turn_loop = None
        # The waiting coroutine's loop and future, while one waits.
        self._parked = None

    def _polled(self, status: int, idle: int) -> int:
        """``status`` of a poll; one that did not answer ``idle`` (EMPTY,
        FULL) left nothing armed, so a waiting coroutine must try again, or
        it waits for ever."""
        if status != idle and self._parked is not None:
            loop, woken = self._parked
            loop.call_soon_threadsafe(_wake, woken)
        return status

    async def _await(self, attempt):
        """``attempt()`` until it is done: ``(True, result)``, or
        ``(False, _)`` with the waker armed."""
        loop = asyncio.get_running_loop()
        if self._turn is None or (self._turn_loop is not loop and not self._turn.locked()):
            # A lock serves one loop: a new one for a handle used by another.
            self._turn, self._turn_loop = asyncio.Lock(), loop
        async with self._turn:
            while True:
                # Tried and parked under the handle's lock: a try_* of
                # another thread in between would spend the wakeup and find
                # no one parked to hand the turn to.
                with self._lock:
                    done, result = attempt()
                    if done:
                        return result
                    # The fd turns readable once trying again may succeed
                    # (the next poll drains it).
                    woken = loop.create_future()
                    loop.add_reader(self._fd, _wake, woken)
                    self._parked = (loop, woken)
                try:
                    await woken
                finally:
                    self._parked = None
                    if self._ptr is not None:
                        loop.remove_reader(self._fd)

    def close(self) -> None:
        parked = self._parked
        if parked is not None:
            loop, woken = parked
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                raise Busy(BUSY, f"{type(self).__name__} of ring {self.name!r}: {self._waits} waits; cancel it first")
            # Its loop stops watching the fd before the fd is closed.
            loop.remove_reader(self._fd)
            if not woken.done():
                woken.set_exception(ValueError(f"{type(self).__name__} closed while {self._waits} waited"))
        super().close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class AsyncConsumer(_Awaiting):
    """A byte ring's consumer whose receives an ``asyncio`` loop awaits::

        async with ring.async_consumer() as rx:   # or with, or close()
            message = await rx.recv()

    No thread of Python's waits: the library's waiter thread makes a file
    descriptor readable when a message may have come, and the loop
    watches it (``add_reader``). A receive takes a message only when it
    returns it, so one cancelled (``asyncio.wait_for`` on Python 3.9+, a
    lost race in ``asyncio.wait``) loses nothing. Receives on one consumer
    take turns; a ``try_recv`` meanwhile hands the waiting one its turn to
    look again. Closing it from its loop ends a waiting receive with
    ``ValueError``."""

    _closer = _c.shmring_bytes_async_consumer_close
    _waits = "a receive"

    def __init__(self, ptr: int, name: str, fd: int):
        super().__init__(ptr, name, fd)
        self._buf = ctypes.create_string_buffer(4096)
        self._cap = 4096
        self._n = _size()
        self._batch = _Batch()

    def try_recv(self) -> Optional[bytes]:
        """The oldest message, copied out and released, or None if there is none now."""
        with self._lock:
            while True:
                status = self._polled(
                    _c.shmring_bytes_poll_recv(self._p, self._buf, self._cap, ctypes.byref(self._n)),
                    EMPTY,
                )
                if status == OK:
                    return ctypes.string_at(self._buf, self._n.value)
                if status == BUFFER_TOO_SMALL:
                    # The message waits in the ring for a buffer that holds it.
                    self._cap = self._n.value
                    self._buf = ctypes.create_string_buffer(self._cap)
                    continue
                if _check(status) == EMPTY:
                    return None

    async def recv(self) -> bytes:
        """The oldest message, copied out, awaiting one (Closed once a
        producer closed the ring and all was read)."""

        def attempt():
            message = self.try_recv()
            return message is not None, message

        return await self._await(attempt)

    def try_recv_many(self, limit: int = 64) -> List[bytes]:
        """Up to ``limit`` messages there now, copied out and released in one
        call (an empty list if there is none)."""
        if limit < 1:
            raise ValueError("limit is at least 1")
        with self._lock:
            batch = self._batch.ready(limit)
            while True:
                status = self._polled(
                    _c.shmring_bytes_poll_recv_many(
                        self._p, batch.buf, batch.cap, batch.lens, limit, ctypes.byref(batch.count)
                    ),
                    EMPTY,
                )
                if status != BUFFER_TOO_SMALL:
                    break
                batch.grow()
            if _check(status) == EMPTY:
                return []
            return batch.messages()

    async def recv_many(self, limit: int = 64) -> List[bytes]:
        """Up to ``limit`` messages, copied out: awaits the first, then takes
        those there now (Closed once a producer closed the ring and all was
        read)."""

        def attempt():
            messages = self.try_recv_many(limit)
            return bool(messages), messages

        return await self._await(attempt)

    def __aiter__(self) -> "AsyncConsumer":
        return self

    async def __anext__(self) -> bytes:
        """``async for message in rx``: every message, until a producer
        closes the ring and all was read."""
        try:
            return await self.recv()
        except Closed:
            raise StopAsyncIteration from None


class AsyncProducer(_Awaiting):
    """A byte ring's producer whose sends an ``asyncio`` loop awaits::

        async with ring.async_producer() as tx:   # or with, or close()
            await tx.send(b"tick")
            sent = await tx.send_many(messages)   # at least one of them

    As for ``AsyncConsumer``, no thread of Python's waits: the fd turns
    readable when there may be room. A send sends only when it returns,
    so one cancelled while it waits sent nothing. Sends on one producer
    take turns; a ``try_send`` meanwhile hands the waiting one its turn to
    try again. Closing it from its loop ends a waiting send with
    ``ValueError``."""

    _closer = _c.shmring_bytes_async_producer_close
    _waits = "a send"

    def try_send(self, data: bytes) -> bool:
        """Copy ``data`` in as one message if there is room now (False if
        not); MessageTooLarge if it is longer than the ring's largest."""
        b = data if type(data) is bytes else bytes(data)
        with self._lock:
            status = self._polled(_c.shmring_bytes_poll_send(self._p, b, len(b)), FULL)
            return _check(status) == OK

    def try_send_many(self, messages: Sequence[bytes]) -> int:
        """Copy ``messages`` in, in order, while there is room now; how many
        went (0 if there was no room for the first)."""
        return self._send_packed(_pack(messages))[1]

    def _send_packed(self, packed):
        """Send a packed batch while there is room now: whether it is done
        (some went, or there were none), and how many went."""
        data, lens, at = packed
        if not lens:
            return True, 0
        sent = _size()
        with self._lock:
            status = _c.shmring_bytes_poll_send_many(self._p, data, at, len(lens), ctypes.byref(sent))
            # Only FULL arms the waker (and sends none).
            return _check(self._polled(status, FULL)) != FULL, sent.value

    async def send(self, data: bytes) -> None:
        """Copy ``data`` in as one message, awaiting room."""
        b = data if type(data) is bytes else bytes(data)
        await self._await(lambda: (self.try_send(b), None))

    async def send_many(self, messages: Sequence[bytes]) -> int:
        """Copy ``messages`` in, in order: awaits room for the first, then
        sends while there is room now; how many went (the caller sends the
        rest)."""
        packed = _pack(messages)
        return await self._await(lambda: self._send_packed(packed))


def _wake(woken: "asyncio.Future") -> None:
    if not woken.done():
        woken.set_result(None)


# Typed rings: SPSC and MPMC rings of one fixed-size type.


class _Layout(ctypes.Structure):
    """``ShmringLayout`` of include/shmring.h."""

    _fields_ = [
        ("schema", ctypes.c_char_p),
        ("version", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("align", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class Layout:
    """A value type as the ring's header records it: what a Rust peer's
    ``#[repr(C)]`` type of that size and alignment is, by its schema (the
    type's name without its module path, or the name it pins with
    ``.schema()``) and version."""

    schema: str
    size: int
    align: int
    version: int = 0

    def __post_init__(self):
        # The C struct's fields are 32-bit: a value past them would wrap.
        if not 0 < self.size < 2**32 or not 0 <= self.version < 2**32:
            raise ValueError(f"a layout's size is 1 to 2**32 - 1 bytes and its version a u32: {self}")
        if self.align <= 0 or self.align & (self.align - 1) or self.align > 4096:
            raise ValueError(f"a layout's alignment is a power of two up to 4096: {self}")

    @classmethod
    def of(cls, dtype, schema: str, version: int = 0) -> "Layout":
        """The layout of a numpy dtype: a structured one made with
        ``align=True`` is laid out as the C struct of the same fields (one
        made without is packed, alignment 1, as a ``#[repr(C, packed)]``
        struct is). A dtype holding Python objects cannot cross processes
        (a peer's bytes would be taken for pointers), and is refused."""
        import numpy

        dtype = numpy.dtype(dtype)
        if dtype.hasobject:
            raise ValueError(f"{dtype} holds Python objects, which are pointers into this process")
        return cls(schema, dtype.itemsize, dtype.alignment, version)

    def _c(self) -> _Layout:
        return _Layout(self.schema.encode(), self.version, self.size, self.align)


_TYPED_KINDS = {"spsc": 1, "mpmc": 2, "broadcast": 4}


class _SubscriberOptions(ctypes.Structure):
    """The header's ``ShmringSubscriberOptions``."""

    _fields_ = [
        ("policy", ctypes.c_uint32),
        ("start", ctypes.c_uint32),
        ("start_at", ctypes.c_uint64),
        ("identity", ctypes.c_uint64),
        ("has_identity", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("demote_after_ns", ctypes.c_uint64),
        ("demote_after_lag", ctypes.c_uint64),
    ]


class TypedRing(_Handle):
    """An SPSC (``kind="spsc"``), MPMC (``kind="mpmc"``) or broadcast
    (``kind="broadcast"``) ring of values of one ``Layout``: the same ring
    a Rust process has as an ``Spsc<T>``, ``Mpmc<T>`` or ``Broadcast<T>``
    of a ``#[repr(C)]`` ``T`` of that layout, whichever side made it. A
    ring of another layout or kind is refused (Mismatch). A broadcast
    ring's consumers are its subscribers (``subscriber()``), each reading
    every value.
    Values are bytes of the layout's size, or, given a numpy ``dtype``,
    arrays of it::

        tick = numpy.dtype([("px", "<f8"), ("qty", "<u4"), ("side", "<u4")], align=True)
        with TypedRing.open_or_create("ticks", Layout.of(tick, "Tick"), 1024, dtype=tick) as ring:
            with ring.consumer() as rx:
                ticks = rx.pop_many(256, timeout=1.0)   # a numpy array of tick
    """

    _closer = _c.shmring_typed_close

    def __init__(self, ptr: int, name: str, layout: Layout, kind: str, dtype):
        super().__init__(ptr)
        self.name, self.layout, self.kind, self.dtype = name, layout, kind, dtype

    @classmethod
    def _made(cls, call, name: str, layout: Layout, kind: str, dtype, *args) -> "TypedRing":
        if kind not in _TYPED_KINDS:
            raise ValueError(f"kind is 'spsc', 'mpmc' or 'broadcast', not {kind!r}")
        if dtype is not None:
            import numpy

            dtype = numpy.dtype(dtype)
            if dtype.hasobject:
                raise ValueError(f"{dtype} holds Python objects, which are pointers into this process")
            if dtype.itemsize != layout.size:
                raise ValueError(f"a {dtype} is {dtype.itemsize} bytes, the layout's values {layout.size}")
        out = _P()
        c_layout = layout._c()
        _check(call(name.encode(), _TYPED_KINDS[kind], ctypes.byref(c_layout), *args, ctypes.byref(out)))
        return cls(out.value, name, layout, kind, dtype)

    @classmethod
    def create(cls, name: str, layout: Layout, capacity: int, kind: str = "spsc", dtype=None) -> "TypedRing":
        """Create ring ``name`` of ``capacity`` values (AlreadyExists if there is one)."""
        return cls._made(_c.shmring_typed_create, name, layout, kind, dtype, capacity)

    @classmethod
    def open(cls, name: str, layout: Layout, kind: str = "spsc", dtype=None) -> "TypedRing":
        """Open ring ``name`` (NotFound if there is none)."""
        return cls._made(_c.shmring_typed_open, name, layout, kind, dtype)

    @classmethod
    def open_or_create(cls, name: str, layout: Layout, capacity: int, kind: str = "spsc", dtype=None) -> "TypedRing":
        """Open ring ``name``, or create it if there is none."""
        return cls._made(_c.shmring_typed_open_or_create, name, layout, kind, dtype, capacity)

    @classmethod
    def open_timeout(cls, name: str, layout: Layout, timeout: float, kind: str = "spsc", dtype=None) -> "TypedRing":
        """Open ring ``name``, waiting up to ``timeout`` seconds for it to be made."""
        return cls._made(_c.shmring_typed_open_timeout, name, layout, kind, dtype, _ns(timeout))

    @property
    def has_producer(self) -> bool:
        """Whether a live process holds a producer of the ring."""
        return bool(_c.shmring_typed_has_producer(self._p))

    @property
    def has_consumer(self) -> bool:
        """Whether a live process holds a consumer of the ring."""
        return bool(_c.shmring_typed_has_consumer(self._p))

    def recover(self) -> int:
        """Repair what dead processes left, for handles that only poll (a
        wait repairs on its own): an MPMC ring's positions a dead producer
        claimed and never published are skipped, values a dead consumer
        took are handed on; how many (an SPSC ring's successors resume on
        their own: 0)."""
        return _c.shmring_typed_recover(self._p)

    def producer(self) -> "TypedProducer":
        """Take the producer role (an SPSC ring: RoleTaken while a live handle holds it)."""
        out = _P()
        _check(_c.shmring_typed_producer(self._p, ctypes.byref(out)))
        return TypedProducer(out.value, self)

    def consumer(self) -> "TypedConsumer":
        """Take the consumer role (an MPMC ring has many consumers, each
        value reaching one; a broadcast ring: a lossless ``subscriber()``)."""
        out = _P()
        _check(_c.shmring_typed_consumer(self._p, ctypes.byref(out)))
        return TypedConsumer(out.value, self)

    def subscriber(
        self,
        lossy: bool = False,
        start="next",
        identity: Optional[int] = None,
        demote_after: Optional[float] = 1.0,
        demote_after_lag: Optional[int] = None,
    ) -> "TypedConsumer":
        """A subscriber of a broadcast ring (Mismatch for another kind): it
        reads every value from ``start`` (``"next"``, ``"oldest"``, or a
        position), at its own pace. Lossless, the producer waits for it,
        until it holds the producer up for ``demote_after`` seconds (None:
        for ever) or falls ``demote_after_lag`` values behind; then, or if
        ``lossy``, it skips what was overwritten and counts it
        (``missed``). Under an ``identity`` it resumes where the last
        subscriber of that identity left off."""
        opts = _SubscriberOptions(policy=LOSSY if lossy else LOSSLESS)
        if start == "next":
            opts.start = START_NEXT
        elif start == "oldest":
            opts.start = START_OLDEST
        elif isinstance(start, int) and not isinstance(start, bool) and 0 <= start < 2**64:
            opts.start, opts.start_at = START_AT, start
        else:
            raise ValueError(f"start is 'next', 'oldest' or a position, not {start!r}")
        if identity is not None:
            if not 0 <= identity < 2**64:
                raise ValueError(f"identity is from 0 to 2**64 - 1, not {identity}")
            opts.identity, opts.has_identity = identity, 1
        if demote_after is None:
            opts.demote_after_ns = 2**64 - 1
        elif demote_after <= 0:
            raise ValueError("demote_after is a positive number of seconds, or None")
        else:
            opts.demote_after_ns = max(1, min(int(demote_after * 1e9), 2**64 - 2))
        if demote_after_lag is not None:
            if not 1 <= demote_after_lag < 2**64:
                raise ValueError("demote_after_lag is from 1 to 2**64 - 1, or None")
            opts.demote_after_lag = demote_after_lag
        out = _P()
        _check(_c.shmring_typed_subscriber(self._p, ctypes.byref(opts), ctypes.byref(out)))
        return TypedConsumer(out.value, self)

    def __repr__(self) -> str:
        return f"TypedRing({self.name!r}, {self.layout}, kind={self.kind!r})"


def _values(data, size: int, dtype=None):
    """``data`` (a numpy array, bytes, any buffer) as whole values in one
    C-contiguous run: its address, how many values, and what keeps the
    memory alive meanwhile. An array must be of the ring's dtype, if it
    has one (its bytes are not reinterpreted as another's)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(data, numpy.ndarray):
        if data.dtype.hasobject:
            raise ValueError(f"{data.dtype} holds Python objects, which are pointers into this process")
        if dtype is not None and data.dtype != dtype:
            raise ValueError(f"an array of {data.dtype}, not of the ring's {dtype}")
    if numpy is not None and isinstance(data, numpy.ndarray) and data.flags.c_contiguous:
        n, keep = data.nbytes, data
        # A buffer's address: a fifth of the time of `data.ctypes.data`.
        at = ctypes.addressof(ctypes.c_char.from_buffer(data)) if data.flags.writeable and n else data.ctypes.data
    else:
        keep = data if type(data) is bytes else bytes(memoryview(data))
        n = len(keep)
        at = ctypes.cast(ctypes.c_char_p(keep), ctypes.c_void_p).value
    if size == 0 or n % size:
        raise ValueError(f"{n} bytes are not whole values of {size} bytes")
    return at, n // size, keep


class TypedProducer(_Handle):
    """A typed ring's producer: values copied in, one or an array per call."""

    _closer = _c.shmring_typed_producer_close

    def __init__(self, ptr: int, ring: TypedRing):
        super().__init__(ptr)
        self.name, self._size, self._dtype = ring.name, ring.layout.size, ring.dtype
        self._count = _size()
        self._count_ref = ctypes.byref(self._count)

    def push(self, value, timeout: Optional[float] = None) -> bool:
        """Copy ``value`` (bytes or any buffer of the layout's size, a numpy
        record) in, waiting up to ``timeout`` seconds for room (0: not at
        all, and False if there is none; Timeout if none came in a longer
        wait)."""
        at, n, keep = _values(value, self._size, self._dtype)
        if n != 1:
            raise ValueError(f"a value is {self._size} bytes, not {n * self._size}")
        with self._lock:
            p = self._p
            status = _waiting(timeout, lambda ns: _c.shmring_typed_push_timeout(p, at, self._size, ns))
        del keep
        return _check(status) == OK

    def push_many(self, values, timeout: Optional[float] = None) -> int:
        """Copy ``values`` (a numpy array of the ring's dtype, or bytes of
        whole values) in, in order: waits up to ``timeout`` seconds for room
        for the first (0: not at all), then pushes while there is room now;
        how many went (the caller pushes the rest)."""
        at, n, keep = _values(values, self._size, self._dtype)
        if n == 0:
            return 0
        with self._lock:
            p, pushed = self._p, self._count
            if timeout == 0:
                # The common case of a stream, without a wait's machinery.
                status = _c.shmring_typed_push_many(p, at, n, 0, self._count_ref)
            else:
                status = _waiting(timeout, lambda ns: _c.shmring_typed_push_many(p, at, n, ns, self._count_ref))
            del keep
            _check(status)
            return pushed.value

    def end(self) -> None:
        """End the stream and close the producer: consumers take every
        value pushed before, then Closed. A new producer reopens the ring."""
        self._close_with(_c.shmring_typed_producer_end)

    def _end_loan(self) -> None:
        slot, self._loan = self._loan, None
        if slot is not None:
            slot._invalidate()
            _c.shmring_typed_abort(self._ptr)

    @contextmanager
    def reserve(self, timeout: Optional[float] = None) -> Iterator["TypedSlot"]:
        """The next value's bytes in place (an SPSC or MPMC ring), waiting
        up to ``timeout`` seconds for room (0: not at all, and Timeout if
        there is none): write them through ``slot.view`` (or, with a dtype,
        ``slot.array``, a one-record numpy array over them), then
        ``slot.commit()``; left uncommitted, the value is given back. Valid
        inside the block only."""
        at = ctypes.c_void_p()
        with self._lock:
            p = self._p
            status = _waiting(timeout, lambda ns: _c.shmring_typed_reserve(p, ns, ctypes.byref(at)))
            if _check(status) == FULL:
                raise Timeout(TIMEOUT, f"reserve in ring {self.name!r}: no room now")
            try:
                room = (ctypes.c_uint8 * self._size).from_address(at.value or 0)
                slot = TypedSlot(self, memoryview(room).cast("B"), self._dtype, reserved=True)
                self._loan = slot
            except BaseException:
                # Ctrl-C (or anything) before the loan is recorded: given back.
                _c.shmring_typed_abort(p)
                raise
        try:
            yield slot
        finally:
            with self._lock:
                if self._loan is slot:  # not committed, nor closed
                    self._end_loan()


class TypedSlot:
    """A value lent in place: ``view`` is a memoryview of its bytes
    (read-only for a read), ``array`` a numpy array of one record of the
    ring's dtype over them (None without a dtype). Both end with the loan
    (``view`` is released, ``array`` set to None): a reference kept to the
    array past the block outlives the loan, which is the holder's error.
    A reservation's ``commit()`` publishes it."""

    def __init__(self, handle: _Handle, view: memoryview, dtype, reserved: bool):
        self._handle, self.view, self._reserved = handle, view, reserved
        self.array = None
        if dtype is not None:
            import numpy

            self.array = numpy.frombuffer(view, dtype=dtype)

    def __len__(self) -> int:
        return len(self.view)

    def _invalidate(self) -> None:
        self.array = None
        _release_view(self.view)

    def commit(self) -> None:
        """Publish the reserved value; the view is released."""
        if not self._reserved:
            raise ValueError("a value read is released at the end of its block, not committed")
        with self._handle._lock:
            if self._handle._loan is not self:
                raise ValueError("this value is no longer lent")
            _check(_c.shmring_typed_commit(self._handle._p))
            self._handle._loan = None
            self._invalidate()


class TypedConsumer(_Handle):
    """A typed ring's consumer: values copied out, one or an array per call."""

    _closer = _c.shmring_typed_consumer_close

    def __init__(self, ptr: int, ring: TypedRing):
        super().__init__(ptr)
        self.name, self._size, self._dtype = ring.name, ring.layout.size, ring.dtype
        self._count = _size()
        self._count_ref = ctypes.byref(self._count)

    def pop(self, timeout: Optional[float] = None):
        """The oldest value, copied out (bytes, or a numpy record of the
        ring's dtype), waiting up to ``timeout`` seconds (0: not at all, and
        None if there is none; Timeout if none came in a longer wait)."""
        out = ctypes.create_string_buffer(self._size)
        with self._lock:
            p = self._p
            status = _waiting(timeout, lambda ns: _c.shmring_typed_pop_timeout(p, out, self._size, ns))
        if _check(status) == EMPTY:
            return None
        if self._dtype is not None:
            import numpy

            return numpy.frombuffer(out.raw, dtype=self._dtype)[0]
        return out.raw

    def _end_loan(self) -> None:
        slot, self._loan = self._loan, None
        if slot is not None:
            slot._invalidate()
            _c.shmring_typed_release(self._ptr)

    @contextmanager
    def read(self, timeout: Optional[float] = None) -> Iterator[Optional[TypedSlot]]:
        """The oldest value in place (an SPSC or MPMC ring), waiting up to
        ``timeout`` seconds (0: not at all, and None if there is none):
        ``slot.view`` is a read-only memoryview of its bytes, ``slot.array``
        a read-only numpy record array over them (with a dtype). Released
        at the end of the block; valid inside it only. A Ctrl-C between the
        C call and the block releases the value, as one after a ``pop``
        returns loses it."""
        at = ctypes.c_void_p()
        with self._lock:
            p = self._p
            if self._loan is not None:
                raise Busy(BUSY, f"read on ring {self.name!r}: a value is lent: release it first")
            try:
                status = _check(_waiting(timeout, lambda ns: _c.shmring_typed_read(p, ns, ctypes.byref(at))))
                slot = None
                if status != EMPTY:
                    lent = (ctypes.c_uint8 * self._size).from_address(at.value or 0)
                    slot = TypedSlot(self, memoryview(lent).cast("B").toreadonly(), self._dtype, reserved=False)
                    self._loan = slot
            except BaseException:
                # Anything after the C call lent a value, before the loan
                # is recorded: released (nothing lent, which the check
                # above makes sure of on entry: a no-op).
                self._loan = None
                _c.shmring_typed_release(p)
                raise
        if slot is None:
            yield None
            return
        try:
            yield slot
        finally:
            with self._lock:
                if self._loan is slot:  # not closed meanwhile
                    self._end_loan()

    @property
    def missed(self) -> int:
        """A broadcast subscriber's values overwritten before it read them
        (0 for other consumers)."""
        with self._lock:
            return _c.shmring_typed_missed(self._p)

    @property
    def demoted(self) -> bool:
        """Whether the producer made this lossless subscriber lossy, held
        up past its bounds."""
        with self._lock:
            return bool(_c.shmring_typed_is_demoted(self._p))

    def pop_many(self, limit: int = 1024, timeout: Optional[float] = None):
        """Up to ``limit`` values in one call: waits up to ``timeout`` seconds
        for the first (0: not at all, and none if there is none; Timeout if
        none came in a longer wait), then takes those there now. A numpy
        array of the ring's dtype, or bytes of the values one after
        another."""
        if limit < 1:
            raise ValueError("limit is at least 1")
        if self._dtype is not None:
            import numpy

            out = numpy.empty(limit, dtype=self._dtype)
            at = ctypes.addressof(ctypes.c_char.from_buffer(out))
        else:
            out = ctypes.create_string_buffer(limit * self._size)
            at = ctypes.addressof(out)
        with self._lock:
            p, count = self._p, self._count
            if timeout == 0:
                status = _c.shmring_typed_pop_many(p, at, limit, self._count_ref, 0)
            else:
                status = _waiting(timeout, lambda ns: _c.shmring_typed_pop_many(p, at, limit, self._count_ref, ns))
            n = count.value if _check(status) == OK else 0
        if self._dtype is not None:
            out.resize(n, refcheck=False)  # not a view holding the whole buffer
            return out
        return ctypes.string_at(at, n * self._size)
