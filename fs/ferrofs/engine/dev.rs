// SPDX-License-Identifier: GPL-2.0

//! The block-I/O interface the engine runs on.
//!
//! The kernel implements it over the block devices' page cache, the tools over files and block devices, and the
//! crash simulator over a recording wrapper. Offsets and lengths are in bytes and are
//! multiples of 4096.

use super::error::EngineResult;

/// One device of a ferrofs volume.
pub trait BlockDev {
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()>;
    /// Writes `buf` at `offset`. The data may sit in a volatile cache until [`Self::flush`].
    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> EngineResult<()>;
    /// Writes `buf` at `offset` durably (forced unit access): on return it is on stable
    /// media, whatever else is still cached.
    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()>;
    /// Hints that `len` bytes at `offset` are read next: a device that can starts reading
    /// them all at once, so the block-by-block reads that follow wait less. Only a hint:
    /// the reads report any error.
    fn prefetch(&mut self, _offset: u64, _len: u64) {}
}
