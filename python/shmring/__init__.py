"""shmring's lock-free rings in POSIX shared memory, from Python.

A thin layer over the C ABI of the ``shmring-c`` crate (``ctypes``): every
call is the C call, its status turned into a return value or an exception
whose message names the ring, the operation and the cause.

Why ``ctypes`` over the C ABI rather than PyO3: one boundary to keep right
(the C ABI, tested under sanitizers from C), nothing to compile per Python
version, and no dependency; a call costs a ``ctypes`` crossing (about a
microsecond), which a Python caller pays anyway.

Byte rings so far::

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
"""

import ctypes
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

__all__ = [
    "ByteRing",
    "Producer",
    "Consumer",
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
    "ABI_VERSION",
]

# The statuses of include/shmring.h (a test compares them with it).
OK, EMPTY, FULL, TIMEOUT, CLOSED, NOT_FOUND, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5, 6
INVALID_ARGUMENT, BUFFER_TOO_SMALL, MESSAGE_TOO_LARGE, ROLE_TAKEN = 7, 8, 9, 10
MISMATCH, PERMISSION_DENIED, CORRUPT, STALLED, BUSY, PANIC, OTHER = 11, 12, 13, 14, 15, 16, 99
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


_c = ctypes.CDLL(_library_path())
_P = ctypes.c_void_p
_u8p = ctypes.POINTER(ctypes.c_uint8)
_size = ctypes.c_size_t
for _name, _args, _ret in [
    ("shmring_abi_version", [], ctypes.c_uint32),
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
]:
    _f = getattr(_c, _name)
    _f.argtypes, _f.restype = _args, _ret

if _c.shmring_abi_version() != ABI_VERSION:
    raise ImportError(
        f"{_library_path()} has C ABI version {_c.shmring_abi_version()}, "
        f"these bindings were written for {ABI_VERSION}"
    )


def abi_version() -> int:
    """The C ABI version of the library loaded."""
    return _c.shmring_abi_version()


def _check(status: int) -> int:
    """``status`` if it is not an error; else the error, raised."""
    if status in (OK, EMPTY, FULL, BUFFER_TOO_SMALL):
        return status
    message = (_c.shmring_last_error() or b"").decode("utf-8", "replace")
    raise _ERRORS.get(status, ShmringError)(status, message)


_FOREVER = 2**64 - 1


def _ns(timeout: Optional[float]) -> int:
    """Seconds (None: as long as it takes) as the C ABI's nanoseconds."""
    if timeout is None:
        return _FOREVER
    if timeout < 0:
        raise ValueError("a timeout is not negative")
    return min(int(timeout * 1e9), _FOREVER)


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
        return cls._made(_c.shmring_bytes_open_timeout, name, _ns(timeout))

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
            if _check(_c.shmring_bytes_send_timeout(self._p, b, len(b), _ns(timeout))) == FULL:
                raise Timeout(TIMEOUT, f"send to ring {self.name!r}: no room now")

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
            if _check(_c.shmring_bytes_reserve(self._p, n, _ns(timeout), ctypes.byref(at))) == FULL:
                raise Timeout(TIMEOUT, f"reserve in ring {self.name!r}: no room now")
            array = (ctypes.c_uint8 * n).from_address(ctypes.cast(at, ctypes.c_void_p).value or 0)
            view = memoryview(array).cast("B")
            self._loan = view
        grant = Reservation(self, view)
        try:
            yield grant
        finally:
            with self._lock:
                if self._loan is view:  # not committed, nor closed
                    self._end_loan()


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

    def _copy(self, call, *wait) -> Optional[bytes]:
        with self._lock:
            return self._copy_locked(call, *wait)

    def _copy_locked(self, call, *wait) -> Optional[bytes]:
        n, p = self._n, self._p
        while True:
            status = call(p, self._buf, self._cap, self._n_ref, *wait)
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
        m = self._copy(_c.shmring_bytes_recv_timeout, _ns(timeout))
        if m is None:
            raise Timeout(TIMEOUT, f"recv from ring {self.name!r}: nothing now")
        return m

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
            status = _check(_c.shmring_bytes_read(self._p, _ns(timeout), ctypes.byref(at), ctypes.byref(n)))
            if status == EMPTY:
                view = None
            else:
                array = (ctypes.c_uint8 * n.value).from_address(ctypes.cast(at, ctypes.c_void_p).value or 0)
                view = memoryview(array).cast("B").toreadonly()
                self._loan = view
        if view is None:
            yield None
            return
        try:
            yield view
        finally:
            with self._lock:
                if self._loan is view:  # not closed meanwhile
                    self._end_loan()
