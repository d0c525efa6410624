// SPDX-License-Identifier: GPL-2.0

//! A hash map from `u64` (block addresses, inode numbers) to values, with fallible growth.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones). The
//! table size is a power of two and grows at 3/4 load; growing allocates the new table
//! first, so a failed allocation leaves the map unchanged.

use super::error::EngineResult;
use super::mem::{self, FVec};

/// Scrambles a key so that sequential block numbers spread over the table.
fn hash(key: u64) -> u64 {
    // The 64-bit finaliser of MurmurHash3: a bijection with good avalanche.
    let mut h = key;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A map from `u64` keys to `V`.
pub struct U64Map<V> {
    slots: FVec<Option<(u64, V)>>,
    len: usize,
}

impl<V> Default for U64Map<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> U64Map<V> {
    /// An empty map; allocates nothing.
    pub const fn new() -> Self {
        Self {
            slots: FVec::new(),
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, key: u64) -> usize {
        // Truncation is intended: the mask keeps the low bits only.
        (hash(key) as usize) & self.mask()
    }

    /// Index of the slot holding `key`, if present.
    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        loop {
            match self.slots.get(i)? {
                None => return None,
                Some((k, _)) if *k == key => return Some(i),
                Some(_) => i = i.wrapping_add(1) & self.mask(),
            }
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: u64) -> Option<&V> {
        let i = self.find(key)?;
        self.slots.get(i)?.as_ref().map(|(_, v)| v)
    }

    /// The value for `key`, mutably.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let i = self.find(key)?;
        self.slots.get_mut(i)?.as_mut().map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// Grows the table if one more entry would pass 3/4 load.
    fn reserve_one(&mut self) -> EngineResult<()> {
        let cap = self.slots.len();
        if self.len.saturating_add(1).saturating_mul(4) <= cap.saturating_mul(3) {
            return Ok(());
        }
        let new_cap = if cap == 0 { 16 } else { cap.saturating_mul(2) };
        let mut slots = FVec::try_with_capacity(new_cap)?;
        for _ in 0..new_cap {
            slots.try_push(None)?;
        }
        let old = core::mem::replace(&mut self.slots, slots);
        self.len = 0;
        for (k, v) in old.into_iter_owned() {
            self.place(k, v);
        }
        Ok(())
    }

    /// Puts an entry into a table known to have a free slot and no entry for `key`.
    fn place(&mut self, key: u64, value: V) {
        let mut i = self.home(key);
        loop {
            match self.slots.get_mut(i) {
                Some(slot @ None) => {
                    *slot = Some((key, value));
                    self.len = self.len.saturating_add(1);
                    return;
                }
                Some(Some(_)) => i = i.wrapping_add(1) & self.mask(),
                // Unreachable while the table has a free slot; drop the value rather than
                // loop forever if that ever failed.
                None => return,
            }
        }
    }

    /// Inserts or replaces the value for `key`, returning the old one.
    pub fn insert(&mut self, key: u64, value: V) -> EngineResult<Option<V>> {
        if let Some(slot) = self.get_mut(key) {
            return Ok(Some(core::mem::replace(slot, value)));
        }
        self.reserve_one()?;
        self.place(key, value);
        Ok(None)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let mut hole = self.find(key)?;
        let (_, value) = self.slots.get_mut(hole)?.take()?;
        self.len = self.len.saturating_sub(1);
        // Backward shift: move later entries of the probe run into the hole when their home
        // position does not lie (cyclically) between the hole and their slot.
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = i.wrapping_add(1) & mask;
            let home = match self.slots.get(i) {
                Some(Some((k, _))) => self.home(*k),
                _ => break,
            };
            let dist_home = i.wrapping_sub(home) & mask;
            let dist_hole = i.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                let moved = self.slots.get_mut(i).and_then(Option::take);
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = moved;
                }
                hole = i;
            }
        }
        Some(value)
    }

    /// Visits every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.as_ref().map(|(k, v)| (*k, v)))
    }

    /// Visits every entry mutably, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut V)> {
        self.slots
            .iter_mut()
            .filter_map(|slot| slot.as_mut().map(|(k, v)| (*k, v)))
    }

    /// All keys, sorted.
    pub fn sorted_keys(&self) -> EngineResult<FVec<u64>> {
        let mut keys = FVec::try_with_capacity(self.len)?;
        for (k, _) in self.iter() {
            keys.try_push(k)?;
        }
        mem::sort(&mut keys);
        Ok(keys)
    }

    /// Removes every entry (keeps the table).
    pub fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            *slot = None;
        }
        self.len = 0;
    }
}

impl<T> FVec<Option<T>> {
    /// Consumes the vector, yielding the `Some` values (in reverse order).
    fn into_iter_owned(mut self) -> impl Iterator<Item = T> {
        core::iter::from_fn(move || loop {
            match self.pop() {
                Some(Some(value)) => return Some(value),
                Some(None) => continue,
                None => return None,
            }
        })
    }
}
