//! The byte ring's memory: its mapped segment, seen through the framing of
//! `format/record.rs`, and the one place that turns the data area's bytes
//! into typed access (stamps and length words as atomics, payloads as
//! slices, each checked against the area's bounds).

use crate::error::{Corruption, Error, Result};
use crate::format::header::Header;
use crate::format::record::{
    record_len, rounded_capacity, seed, stamp, Kind, Record, Unit, ALIGN, HEADER_LEN, MAX_CAPACITY,
    MIN_CAPACITY,
};
use crate::kind::{RingKind, TypeLayout};
use crate::lifecycle::memory::{check_capacity, RingMemory};
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::platform::sync::{AtomicU64, Ordering, UnitWords};

/// A byte ring's memory: the segment, its header, and the data area (`pub`
/// for `lifecycle::sealed::Kind`, as `RingMemory` is).
pub struct Records {
    mem: RingMemory<Unit>,
    base: *mut u8,
    capacity: u64,
    seed: u64,
    /// Each record's commit and length words (see `sync::UnitWords`).
    words: UnitWords,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("ring", &self.mem)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

// SAFETY: the area is reached only through atomics and through the payload
// accessors, whose callers own the bytes by the ring's protocol.
unsafe impl Send for Records {}
// SAFETY: as above.
unsafe impl Sync for Records {}

impl Records {
    /// Create a byte ring of at least `capacity` bytes.
    pub(crate) fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        let units = (capacity as u64).max(MIN_CAPACITY).div_ceil(ALIGN);
        if rounded_capacity(capacity) > MAX_CAPACITY {
            return Err(Error::CapacityTooLarge {
                requested: capacity as u64,
            });
        }
        let elem = opts.message.unwrap_or_else(elem);
        let mem = RingMemory::create(name, RingKind::Bytes, elem, units, opts, |_| Unit([0; 16]))?;
        Ok(Self::new(mem))
    }

    /// Open byte ring `name`, validating its header; with `capacity`, it
    /// must have the data area `create` would have made for it; with
    /// `opts.message`, its messages' recorded type must be that one (an
    /// opener that names none reads bytes of any). Checked before the
    /// opener joins.
    pub(crate) fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self> {
        let open = |elem| {
            RingMemory::<Unit>::open(name, RingKind::Bytes, elem, opts, |info| {
                let bytes = info.layout.capacity.saturating_mul(ALIGN);
                if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&bytes) {
                    return Err(Error::Corrupt {
                        name: name.to_owned(),
                        what: format!(
                            "a byte ring of {bytes} bytes is outside {MIN_CAPACITY}..={MAX_CAPACITY}"
                        ),
                    });
                }
                match capacity {
                    Some(asked) => check_capacity(name, rounded_capacity(asked), bytes),
                    None => Ok(()),
                }
            })
        };
        let mem = match (opts.message, open(opts.message.unwrap_or_else(elem))) {
            // Typed by its creator, opened as bytes: opened as what it is.
            (None, Err(Error::TypeMismatch { found, .. })) => open(*found)?,
            (_, r) => r?,
        };
        Ok(Self::new(mem))
    }

    fn new(mem: RingMemory<Unit>) -> Self {
        let info = mem.info();
        let capacity = mem.capacity() * ALIGN;
        Records {
            base: mem.base().cast::<u8>(),
            capacity,
            seed: seed(info.created_unix_ns, info.creator_pid),
            words: UnitWords::new(mem.base().cast::<u8>(), capacity / ALIGN),
            mem,
        }
    }

    pub(crate) fn ring(&self) -> &RingMemory<Unit> {
        &self.mem
    }

    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        self.mem.header()
    }

    /// `Corrupt`, naming this ring.
    #[cold]
    pub(crate) fn corrupt(&self, what: String) -> Corruption {
        Corruption {
            name: self.mem.segment().name().as_str().to_owned(),
            what,
        }
    }

    /// Size of the data area in bytes.
    #[inline(always)]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The longest payload: a record of half the area always fits once the
    /// consumer has caught up, wherever the write position is (either the
    /// space before the end or the space after the wrap is at least half).
    pub(crate) fn max_message_len(&self) -> u64 {
        self.capacity / 2 - HEADER_LEN
    }

    /// The offset of position `pos` in the area, on the 16-byte grid even
    /// if a hostile peer handed us an unaligned position (whose stamp then
    /// matches nothing), so header words are always aligned atomics.
    #[inline(always)]
    pub(crate) fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1) & !(ALIGN - 1)
    }

    /// The commit stamp of the record at `pos`: a bijective mix of the
    /// position with the ring's seed, so that stamps of nearby positions
    /// differ in every byte (see the module docs).
    #[inline(always)]
    fn stamp(&self, pos: u64) -> u64 {
        stamp(self.seed, pos)
    }

    /// Commit a record at `pos` (an offset that lies inside the area, a
    /// multiple of 16): write its length word, then its stamp with Release.
    #[inline]
    pub(crate) fn publish(&self, pos: u64, kind: Kind, len: u64) {
        let off = self.offset(pos);
        self.len_word(off)
            .store((kind as u64) << 32 | len, Ordering::Relaxed);
        self.commit_word(off)
            .store(self.stamp(pos), Ordering::Release);
    }

    /// The committed record at `pos`, if there is one. A committed record
    /// must lie before the write position: `tail_hint` is a write position
    /// read earlier (it only grows), re-read only when the record reaches
    /// past it, so that the consumer does not pull the producers' tail line
    /// into its cache for every record.
    #[inline]
    pub(crate) fn read(&self, pos: u64, tail_hint: &mut u64) -> Result<Option<Record>, Corruption> {
        let off = self.offset(pos);
        // Acquire pairs with the Release in `publish`: the length word and
        // the payload written before it are visible.
        if self.commit_word(off).load(Ordering::Acquire) != self.stamp(pos) {
            return Ok(None);
        }
        let word = self.len_word(off).load(Ordering::Relaxed);
        let len = word & u64::from(u32::MAX);
        let kind = match word >> 32 {
            1 => Kind::Message,
            2 => Kind::Padding,
            other => {
                return Err(
                    self.corrupt(format!("record at position {pos} has unknown kind {other}"))
                )
            }
        };
        if kind == Kind::Message && len > self.max_message_len() {
            return Err(self.corrupt(format!(
                "record at position {pos} holds {len} bytes, more than the ring's largest \
                 message of {} bytes",
                self.max_message_len()
            )));
        }
        let rec = record_len(len);
        if rec > self.capacity - off {
            return Err(self.corrupt(format!(
                "record at position {pos} of {len} bytes runs past the ring's end"
            )));
        }
        let within = |tail: u64| (rec..=self.capacity).contains(&tail.wrapping_sub(pos));
        if !within(*tail_hint) {
            // Relaxed: the producer moved the tail before committing, so the
            // Acquire above already makes that tail visible.
            *tail_hint = self.header().tail.load(Ordering::Relaxed);
            if !within(*tail_hint) {
                return Err(self.corrupt(format!(
                    "record at position {pos} of {len} bytes runs past the write position"
                )));
            }
        }
        Ok(Some(Record {
            kind,
            offset: off,
            len,
            next: pos.wrapping_add(rec),
        }))
    }

    /// The payload of a claimed record, for writing.
    ///
    /// # Safety
    /// The caller has claimed the record at `off` (of a `len`-byte payload,
    /// inside the area) and not yet committed it, and the consumer has
    /// released the space.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn payload_mut(&self, off: u64, len: u64) -> &mut [u8] {
        self.words.touch(off, len, true);
        // SAFETY: in bounds by the caller's contract (the record fits before
        // the area's end), and no one else reads or writes it until commit.
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add((off + HEADER_LEN) as usize), len as usize)
        }
    }

    /// The payload of a committed record, for reading.
    ///
    /// # Safety
    /// `off`/`len` come from a [`Record`] this consumer read and has not yet
    /// released. Bytes are valid whatever a peer writes, so a hostile writer
    /// can change what is read but not make it invalid.
    #[inline]
    pub(crate) unsafe fn payload(&self, off: u64, len: u64) -> &[u8] {
        self.words.touch(off, len, false);
        // SAFETY: `Records::read` checked the record lies inside the area.
        unsafe {
            std::slice::from_raw_parts(self.base.add((off + HEADER_LEN) as usize), len as usize)
        }
    }

    /// Copy the payload of the record at `off` into `out` (replacing what
    /// it held) with volatile reads, never forming a reference to memory a
    /// hostile peer may be writing: each byte is read once, as it is.
    ///
    /// # Safety
    /// As for [`payload`](Self::payload).
    pub(crate) unsafe fn copy_payload(&self, off: u64, len: u64, out: &mut Vec<u8>) {
        self.words.touch(off, len, false);
        out.clear();
        out.reserve(len as usize);
        // SAFETY: `Records::read` checked the record lies inside the area;
        // payloads start 16 bytes after a 16-aligned record, so the words
        // are aligned.
        unsafe {
            let src = self.base.add((off + HEADER_LEN) as usize);
            let words = len as usize / 8;
            for i in 0..words {
                let w = src.add(i * 8).cast::<u64>().read_volatile();
                out.extend_from_slice(&w.to_ne_bytes());
            }
            for i in words * 8..len as usize {
                out.push(src.add(i).read_volatile());
            }
        }
    }

    /// Zero the area from position `from` to `to` (records the consumer
    /// read and is about to release, framing included), a word at a
    /// time as atomics: a repairer may be reading the commit words
    /// there meanwhile. Zero matches no record's stamp, so a zeroed
    /// record reads as not committed.
    #[cold]
    #[inline(never)]
    pub(crate) fn zero(&self, from: u64, to: u64) {
        let units = to.wrapping_sub(from).min(self.capacity) / ALIGN;
        for i in 0..units {
            let off = self.offset(from.wrapping_add(i * ALIGN));
            // SAFETY: `offset` masks into the area, on the 16-byte grid.
            let (commit, len) = unsafe { self.words.words(off) };
            commit.store(0, Ordering::Relaxed);
            len.store(0, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn commit_word(&self, off: u64) -> &AtomicU64 {
        // SAFETY: every caller passes a record position masked into the
        // area, a multiple of 16 (`ALIGN`); the area lives as long as `self`.
        unsafe { self.words.words(off).0 }
    }

    #[inline(always)]
    fn len_word(&self, off: u64) -> &AtomicU64 {
        // SAFETY: as for `commit_word`.
        unsafe { self.words.words(off).1 }
    }
}

/// The header's element layout for byte rings.
/// A byte ring's identity when its messages have no type: plain bytes.
pub(super) fn elem() -> TypeLayout {
    TypeLayout::of::<Unit>()
}

impl crate::hook::HasHeader for Records {
    fn header(&self) -> &Header {
        Records::header(self)
    }
    fn ring_name(&self) -> &str {
        self.mem.segment().name().as_str()
    }
}
