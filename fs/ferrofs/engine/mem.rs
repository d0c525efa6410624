// SPDX-License-Identifier: GPL-2.0

//! Fallible containers for the engine.
//!
//! Each host provides `crate::platform::FVec` with a handful of primitives (`new`,
//! `try_reserve`, `try_push`, `pop`, `as_slice`, `as_mut_slice`, and the bulk ones
//! `truncate`, `try_extend_from_slice`, `try_extend_with`, which copy and fill whole
//! ranges at once); the rest is built here from them, so both hosts run the same code. Nothing here panics: out-of-range positions
//! are errors, and every allocation is reported.
//!
//! [`sort`] and [`sort_by`] stand in for `slice::sort_unstable{,_by}`, whose code in `core`
//! panics when a comparison is not a total order.

use core::cmp::Ordering;
use core::ops::{Deref, DerefMut};

pub use crate::platform::FVec;

use super::error::{EngineError, EngineResult};

impl<T> Default for FVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for FVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for FVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for FVec<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PartialEq> PartialEq for FVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for FVec<T> {}

impl<T> FVec<T> {
    /// An empty vector with room for `capacity` elements.
    pub fn try_with_capacity(capacity: usize) -> EngineResult<Self> {
        let mut v = Self::new();
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Inserts `value` at `index`, shifting later elements right.
    pub fn try_insert(&mut self, index: usize, value: T) -> EngineResult<()> {
        if index > self.len() {
            return Err(EngineError::Invalid("vector insert past the end"));
        }
        self.try_push(value)?;
        // Never empty (it holds `value`): rotate_right(1) of an empty slice would panic.
        if let Some(tail) = self.as_mut_slice().get_mut(index..) {
            if !tail.is_empty() {
                tail.rotate_right(1);
            }
        }
        Ok(())
    }

    /// Removes and returns the element at `index`, shifting later elements left.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len() {
            return None;
        }
        if let Some(tail) = self.as_mut_slice().get_mut(index..) {
            if !tail.is_empty() {
                tail.rotate_left(1);
            }
        }
        self.pop()
    }

    /// Moves the elements from `at` on into a new vector.
    pub fn try_split_off(&mut self, at: usize) -> EngineResult<Self> {
        let n = self
            .len()
            .checked_sub(at)
            .ok_or(EngineError::Invalid("vector split past the end"))?;
        let mut tail = Self::try_with_capacity(n)?;
        while self.len() > at {
            match self.pop() {
                // Cannot fail: capacity for `n` elements was reserved above.
                Some(value) => tail.try_push(value)?,
                None => break,
            }
        }
        tail.as_mut_slice().reverse();
        Ok(tail)
    }

    /// Moves every element of `other` to the end of `self`, leaving `other` empty.
    pub fn try_append(&mut self, other: &mut Self) -> EngineResult<()> {
        self.try_reserve(other.len())?;
        let start = self.len();
        while let Some(value) = other.pop() {
            self.try_push(value)?;
        }
        if let Some(moved) = self.as_mut_slice().get_mut(start..) {
            moved.reverse();
        }
        Ok(())
    }
}

impl<T: Clone> FVec<T> {
    /// A vector holding clones of `items`.
    pub fn try_from_slice(items: &[T]) -> EngineResult<Self> {
        let mut v = Self::try_with_capacity(items.len())?;
        v.try_extend_from_slice(items)?;
        Ok(v)
    }

    /// Grows to `len` elements with clones of `value`, or shortens to `len`.
    pub fn try_resize(&mut self, len: usize, value: T) -> EngineResult<()> {
        if len <= self.len() {
            self.truncate(len);
            return Ok(());
        }
        self.try_extend_with(len.saturating_sub(self.len()), value)
    }

    /// A copy of the vector.
    pub fn try_clone(&self) -> EngineResult<Self> {
        Self::try_from_slice(self.as_slice())
    }
}

/// A zero-filled byte buffer of `len` bytes.
pub fn zeroed_bytes(len: usize) -> EngineResult<FVec<u8>> {
    let mut v = FVec::new();
    v.try_resize(len, 0)?;
    Ok(v)
}

/// The number of items of `iter`, like `Iterator::count`, whose sum over some adapters
/// (`Filter`) keeps an overflow panic where overflow checks are on, as in the kernel.
pub fn count<I: Iterator>(iter: I) -> usize {
    iter.fold(0, |n, _| n.saturating_add(1))
}

/// Sorts `v` in ascending order, in place: an unstable sort like `slice::sort_unstable`, but
/// without a panic path (a heapsort, `O(n log n)` comparisons, no allocation).
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// Sorts `v` in place in the order of `compare`, like `slice::sort_unstable_by`. A `compare`
/// that is not a total order leaves the elements in some order, never panics.
pub fn sort_by<T, F: FnMut(&T, &T) -> Ordering>(v: &mut [T], mut compare: F) {
    let len = v.len();
    // A max-heap: every element at least as large as its children at 2i + 1 and 2i + 2.
    let mut root = len / 2;
    while let Some(r) = root.checked_sub(1) {
        root = r;
        sift_down(v, root, len, &mut compare);
    }
    // The largest to the end, the heap shrinks by one, again.
    let mut end = len;
    while let Some(e) = end.checked_sub(1).filter(|&e| e > 0) {
        end = e;
        swap(v, 0, end);
        sift_down(v, 0, end, &mut compare);
    }
}

/// Moves the element at `root` down the heap of `v[..end]` until no child is larger.
fn sift_down<T, F: FnMut(&T, &T) -> Ordering>(
    v: &mut [T],
    mut root: usize,
    end: usize,
    compare: &mut F,
) {
    while let Some(left) = root.checked_mul(2).and_then(|c| c.checked_add(1)) {
        if left >= end {
            return;
        }
        let mut child = left;
        if let Some(right) = left.checked_add(1) {
            if right < end && less(v, left, right, compare) {
                child = right;
            }
        }
        if !less(v, root, child, compare) {
            return;
        }
        swap(v, root, child);
        root = child;
    }
}

/// Whether `v[a]` orders before `v[b]` (false if either is out of range).
fn less<T, F: FnMut(&T, &T) -> Ordering>(v: &[T], a: usize, b: usize, compare: &mut F) -> bool {
    match (v.get(a), v.get(b)) {
        (Some(x), Some(y)) => compare(x, y) == Ordering::Less,
        _ => false,
    }
}

/// Swaps `v[a]` and `v[b]`; nothing if either is out of range (`slice::swap` would panic,
/// and the check here lets the compiler drop its own).
fn swap<T>(v: &mut [T], a: usize, b: usize) {
    if a < v.len() && b < v.len() {
        v.swap(a, b);
    }
}
