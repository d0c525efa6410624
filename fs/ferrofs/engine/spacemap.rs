// SPDX-License-Identifier: GPL-2.0

//! The space map's on-disk encoding, dm-thin style.
//!
//! Every 4096-byte block of every chunk has a reference count. Counts 0, 1 and 2 are kept
//! as 2-bit entries in bitmap items of the space tree, [`BLOCKS_PER_BITMAP`] blocks per
//! item, keyed (chunk logical, BITMAP, index); an entry of 3 means "3 or more", and the
//! count itself is a `u32` in a REFCOUNT item keyed (block logical, REFCOUNT, 0). The
//! REFCOUNT item is removed when the count drops below 3, and a bitmap item whose entries
//! are all zero is removed, so the tree only holds what is in use.

/// Bytes of one bitmap item.
pub const BITMAP_BYTES: usize = 512;
/// Blocks covered by one bitmap item (four 2-bit entries per byte).
pub const BLOCKS_PER_BITMAP: u64 = (BITMAP_BYTES as u64) * 4;
/// The 2-bit entry value meaning "3 or more: see the REFCOUNT item".
pub const OVERFLOW: u8 = 3;

/// The bitmap item index and the entry index within it for block number `n` of a chunk.
pub fn position(n: u64) -> (u64, usize) {
    let entry = n % BLOCKS_PER_BITMAP;
    (n / BLOCKS_PER_BITMAP, entry as usize)
}

/// Reads the 2-bit entry `entry` of `bitmap`; missing bytes read as zero.
pub fn get_entry(bitmap: &[u8], entry: usize) -> u8 {
    let byte = bitmap.get(entry / 4).copied().unwrap_or(0);
    (byte >> ((entry % 4).saturating_mul(2))) & 3
}

/// Sets the 2-bit entry `entry` of `bitmap` to `value` (0..=3); `false` if out of range.
pub fn set_entry(bitmap: &mut [u8], entry: usize, value: u8) -> bool {
    let shift = (entry % 4).saturating_mul(2);
    match bitmap.get_mut(entry / 4) {
        Some(byte) => {
            *byte = (*byte & !(3 << shift)) | ((value & 3) << shift);
            true
        }
        None => false,
    }
}

/// The entry to store for a count.
pub fn entry_for(count: u64) -> u8 {
    count.min(u64::from(OVERFLOW)) as u8
}
