// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked little-endian field access in on-disk buffers.
//!
//! Every reader returns `None` when the field does not lie inside the buffer, so parsers
//! turn short or lying lengths into corruption errors instead of panics.

/// Reads `N` bytes at `offset`.
pub fn array<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    buf.get(offset..end)?.try_into().ok()
}

/// Reads a `u8` at `offset`.
pub fn u8_at(buf: &[u8], offset: usize) -> Option<u8> {
    buf.get(offset).copied()
}

/// Reads a little-endian `u32` at `offset`.
pub fn u32_at(buf: &[u8], offset: usize) -> Option<u32> {
    array(buf, offset).map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `offset`.
pub fn u64_at(buf: &[u8], offset: usize) -> Option<u64> {
    array(buf, offset).map(u64::from_le_bytes)
}

/// Writes `bytes` at `offset`; `None` if they do not fit.
pub fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) -> Option<()> {
    let end = offset.checked_add(bytes.len())?;
    buf.get_mut(offset..end)?.copy_from_slice(bytes);
    Some(())
}

/// Writes a `u8` at `offset`.
pub fn put_u8(buf: &mut [u8], offset: usize, value: u8) -> Option<()> {
    put(buf, offset, &[value])
}

/// Writes a little-endian `u32` at `offset`.
pub fn put_u32(buf: &mut [u8], offset: usize, value: u32) -> Option<()> {
    put(buf, offset, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `offset`.
pub fn put_u64(buf: &mut [u8], offset: usize, value: u64) -> Option<()> {
    put(buf, offset, &value.to_le_bytes())
}
