// SPDX-License-Identifier: GPL-2.0

//! The block-I/O interface the engine runs on.
//!
//! The kernel implements it with bios, the tools over files and block devices, and the
//! crash simulator over a recording wrapper. Offsets and lengths are in bytes and are
//! multiples of 4096.

use super::error::EngineResult;

/// One device of a ferrofs volume.
pub trait BlockDev {
    /// Size of the device in bytes.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> EngineResult<()>;
    /// Writes `buf` at `offset`. The write may still be in flight, or sit in a volatile
    /// cache, until [`Self::flush`]; a later read of the same blocks returns it all the same.
    fn write(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()>;
    /// Waits for every earlier write and makes it durable; reports an error of any of them.
    fn flush(&mut self) -> EngineResult<()>;
    /// Writes `buf` at `offset` durably (forced unit access): on return it is on stable
    /// media, whatever else is still cached.
    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> EngineResult<()>;
}
