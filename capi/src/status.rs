//! Statuses, the last error's message, and the guard every call runs in.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmring::Error;

/// Done.
pub const SHMRING_OK: c_int = 0;
/// Nothing to read now (not an error).
pub const SHMRING_EMPTY: c_int = 1;
/// No room now (not an error).
pub const SHMRING_FULL: c_int = 2;
/// A wait ended before it could be done.
pub const SHMRING_TIMEOUT: c_int = 3;
/// The ring was closed by its producer and everything in it was read.
pub const SHMRING_CLOSED: c_int = 4;
/// No ring of that name.
pub const SHMRING_NOT_FOUND: c_int = 5;
/// A ring of that name exists already.
pub const SHMRING_ALREADY_EXISTS: c_int = 6;
/// A NULL pointer, a name that is not UTF-8, a length that does not fit.
pub const SHMRING_INVALID_ARGUMENT: c_int = 7;
/// The caller's buffer is shorter than the message (its length is
/// reported; the message stays in the ring).
pub const SHMRING_BUFFER_TOO_SMALL: c_int = 8;
/// The message is longer than the ring's largest.
pub const SHMRING_MESSAGE_TOO_LARGE: c_int = 9;
/// Another live handle holds the consumer role, or the ring has its most
/// producers already.
pub const SHMRING_ROLE_TAKEN: c_int = 10;
/// The ring is of another kind, type, capacity or format than asked.
pub const SHMRING_MISMATCH: c_int = 11;
/// The caller may not open or create it.
pub const SHMRING_PERMISSION_DENIED: c_int = 12;
/// The ring holds what no honest peer writes.
pub const SHMRING_CORRUPT: c_int = 13;
/// A wait ended behind a message a producer claimed and never committed
/// (it may have died; it is repaired).
pub const SHMRING_STALLED: c_int = 14;
/// The handle lends a reservation or a message: commit or release first.
pub const SHMRING_BUSY: c_int = 15;
/// A bug in the library was caught at the boundary.
pub const SHMRING_PANIC: c_int = 16;
/// Any other error: the message says which.
pub const SHMRING_OTHER: c_int = 99;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// The message of the last error on the calling thread ("" if none): valid
/// until the thread's next failing call.
#[no_mangle]
pub extern "C" fn shmring_last_error() -> *const c_char {
    // A thread being torn down has no message left: "".
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// A call's failure: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: c_int,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: c_int, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(function: &str, what: &str) -> Failure {
        Failure::new(SHMRING_INVALID_ARGUMENT, format!("{function}: {what}"))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match &e {
            Error::NotFound { .. } => SHMRING_NOT_FOUND,
            Error::AlreadyExists { .. } => SHMRING_ALREADY_EXISTS,
            Error::InvalidName { .. }
            | Error::ZeroCapacity
            | Error::CapacityTooLarge { .. }
            | Error::InvalidLayout { .. }
            | Error::WrongLength { .. } => SHMRING_INVALID_ARGUMENT,
            Error::PermissionDenied { .. }
            | Error::ForeignOwner { .. }
            | Error::NotReadable { .. } => SHMRING_PERMISSION_DENIED,
            Error::RoleTaken { .. }
            | Error::TooManyHandles { .. }
            | Error::SubscriberTaken { .. } => SHMRING_ROLE_TAKEN,
            Error::CapacityMismatch { .. }
            | Error::KindMismatch { .. }
            | Error::TypeMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::VersionMismatch { .. }
            | Error::UnknownFeatures { .. }
            | Error::InvalidSchema { .. }
            | Error::NotAFile { .. }
            | Error::SegmentTooSmall { .. } => SHMRING_MISMATCH,
            Error::Corrupt { .. } | Error::BadMagic { .. } => SHMRING_CORRUPT,
            Error::Timeout { .. } => SHMRING_TIMEOUT,
            Error::Closed { .. } => SHMRING_CLOSED,
            Error::Stalled { .. } => SHMRING_STALLED,
            Error::Full => SHMRING_FULL,
            Error::MessageTooLarge { .. } => SHMRING_MESSAGE_TOO_LARGE,
            _ => SHMRING_OTHER,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<shmring::SendError> for Failure {
    fn from(e: shmring::SendError) -> Failure {
        Error::from(e).into()
    }
}

impl From<shmring::RecvError> for Failure {
    fn from(e: shmring::RecvError) -> Failure {
        Error::from(e).into()
    }
}

/// Run a call's body: its status, its failure's message kept for
/// [`shmring_last_error`], a panic caught as [`SHMRING_PANIC`].
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Result<c_int, Failure>) -> c_int {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => return status,
        Ok(Err(f)) => f,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Failure::new(
                SHMRING_PANIC,
                format!("{function}: a bug in shmring: {why}"),
            )
        }
    };
    let message = CString::new(failure.message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = message);
    failure.code
}
