//! Reused buffers for what goes out in large pieces: stream writes and
//! `/message` batches.
//!
//! A stream write or a batch of packets is encoded into a buffer that
//! HTTP/2 frees once it is on the wire, on whichever runtime thread wrote it
//! out. With glibc's malloc,
//! a steady churn of 64–128 KiB blocks makes each thread's arena hand its
//! heap top back to the kernel (`madvise`) and fault the pages in again on
//! the next write: measured on the stream benchmark, about half the
//! throughput went to page faults. Large writes take their buffer from a
//! small bounded pool instead and give it back when HTTP/2 drops it, so a
//! busy stream cycles through the same few blocks. Small writes allocate
//! exactly what they need: a pooled block for them would waste memory while
//! they wait for flow control.

use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// Writes of at least this many bytes use a pooled buffer.
pub(crate) const POOLED_WRITE_MIN: usize = 16 << 10;

/// Bytes of free buffers a pool keeps: an idle transport that was once busy
/// holds at most this much per pool.
const POOL_BYTES: usize = 1 << 20;

/// A transport's free write buffers, all of one capacity.
pub(crate) struct WriteBuffers {
    capacity: usize,
    /// How many free buffers fit in [`POOL_BYTES`] (none when one would not).
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl WriteBuffers {
    /// A pool of buffers of `capacity` bytes each, empty until first used.
    pub(crate) fn new(capacity: usize) -> Arc<WriteBuffers> {
        Arc::new(WriteBuffers {
            capacity,
            keep: POOL_BYTES / capacity.max(1),
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer with room for `len` bytes: pooled when `len` is
    /// large enough and fits, freshly allocated otherwise.
    pub(crate) fn take(self: &Arc<Self>, len: usize) -> WriteBuffer {
        let pooled = self.keep > 0 && (POOLED_WRITE_MIN..=self.capacity).contains(&len);
        let buf = if pooled {
            self.free
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.capacity))
        } else {
            Vec::with_capacity(len)
        };
        WriteBuffer {
            buf,
            home: pooled.then(|| self.clone()),
        }
    }

    /// Free buffers held right now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

/// A buffer being filled, then (as [`Bytes`]) on its way out; a pooled one
/// goes back to its pool when the last reference to it is dropped.
pub(crate) struct WriteBuffer {
    buf: Vec<u8>,
    home: Option<Arc<WriteBuffers>>,
}

impl WriteBuffer {
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Hands the filled buffer over as `Bytes`, without copying it.
    pub(crate) fn freeze(mut self) -> Bytes {
        if self.home.is_some() {
            return Bytes::from_owner(self);
        }
        Bytes::from(std::mem::take(&mut self.buf))
    }
}

impl AsRef<[u8]> for WriteBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for WriteBuffer {
    fn drop(&mut self) {
        let Some(home) = self.home.take() else {
            return;
        };
        // A buffer that grew (it cannot: writes are capped at the pool's
        // capacity) would not be the pool's size any more; let it go.
        if self.buf.capacity() != home.capacity {
            return;
        }
        let mut free = home.free.lock().unwrap();
        if free.len() < home.keep {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_write_buffer_returns_to_the_pool_when_its_bytes_are_dropped() {
        let pool = WriteBuffers::new(64 << 10);
        let mut b = pool.take(40 << 10);
        b.extend_from_slice(&[7u8; 40 << 10]);
        let bytes = b.freeze();
        let clone = bytes.slice(10..20);
        assert_eq!(pool.held(), 0);
        drop(bytes);
        assert_eq!(pool.held(), 0, "a slice still refers to it");
        assert_eq!(&clone[..], &[7u8; 10]);
        drop(clone);
        assert_eq!(pool.held(), 1);

        // The next large write reuses it, empty.
        let again = pool.take(20 << 10);
        assert_eq!(pool.held(), 0);
        assert!(again.buf.is_empty());
        assert_eq!(again.buf.capacity(), 64 << 10);
    }

    #[test]
    fn small_and_oversized_writes_are_not_pooled() {
        let pool = WriteBuffers::new(64 << 10);
        let mut small = pool.take(100);
        small.extend_from_slice(b"hello");
        assert_eq!(&small.freeze()[..], b"hello");
        drop(pool.take((64 << 10) + 1).freeze());
        assert_eq!(pool.held(), 0);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let pool = WriteBuffers::new(256 << 10);
        assert_eq!(pool.keep, 4);
        let all: Vec<Bytes> = (0..pool.keep + 5)
            .map(|_| {
                let mut b = pool.take(100 << 10);
                b.extend_from_slice(&[1u8; 100 << 10]);
                b.freeze()
            })
            .collect();
        drop(all);
        assert_eq!(pool.held(), pool.keep);
    }

    #[test]
    fn buffers_too_large_for_the_budget_are_never_pooled() {
        let pool = WriteBuffers::new(4 << 20);
        let mut b = pool.take(1 << 20);
        b.extend_from_slice(&[0u8; 1 << 20]);
        drop(b.freeze());
        assert_eq!(pool.held(), 0);
    }
}
