// SPDX-License-Identifier: GPL-2.0

//! On-disk format constants and the superblock probe.
//!
//! Only the start of the superblock is fixed so far: enough to tell a ferrofs device from
//! anything else and to verify the block's checksum. `Documentation/filesystems/ferrofs.rst`
//! describes it.

use super::crc32c;
use super::error::EngineError;

/// Size of a metadata block, and the unit the kernel reads the superblock in.
pub const BLOCK_SIZE: u32 = 4096;

/// Byte offset of the primary superblock on every device (leaves room for boot loaders and
/// partition tables in front of it).
pub const SUPERBLOCK_OFFSET: u64 = 64 * 1024;

/// Magic number of a ferrofs superblock, at [`MAGIC_RANGE`].
pub const MAGIC: [u8; 8] = *b"FERROFS\0";

/// Where the checksum (CRC-32C, little-endian) lives in the superblock: it covers every byte
/// of the block after it.
pub const CSUM_RANGE: core::ops::Range<usize> = 0..4;
/// Where the magic number lives in the superblock.
pub const MAGIC_RANGE: core::ops::Range<usize> = 8..16;
/// Where the format version (little-endian `u32`) lives in the superblock.
pub const VERSION_RANGE: core::ops::Range<usize> = 16..20;

/// What a device holds at [`SUPERBLOCK_OFFSET`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No ferrofs magic: another filesystem, or nothing.
    NotFerrofs,
    /// The magic is there, but the block fails its checks.
    Damaged(EngineError),
    /// A ferrofs superblock of this format version, checksum verified.
    Ferrofs {
        /// The format version it was written in.
        version: u32,
    },
}

/// Reads a `u32` stored little-endian at `range` of `block`, if the block is long enough.
fn le_u32(block: &[u8], range: core::ops::Range<usize>) -> Option<u32> {
    let bytes: [u8; 4] = block.get(range)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Computes the checksum a superblock block should carry.
pub fn superblock_csum(block: &[u8]) -> u32 {
    crc32c::checksum(block.get(CSUM_RANGE.end..).unwrap_or(&[]))
}

/// Examines the block read from [`SUPERBLOCK_OFFSET`].
pub fn probe(block: &[u8]) -> Probe {
    if block.get(MAGIC_RANGE) != Some(&MAGIC[..]) {
        return Probe::NotFerrofs;
    }
    let damaged = |reason| {
        Probe::Damaged(EngineError::Corrupt {
            block: SUPERBLOCK_OFFSET,
            reason,
        })
    };
    if block.len() != BLOCK_SIZE as usize {
        return damaged("superblock is not one whole block");
    }
    if le_u32(block, CSUM_RANGE) != Some(superblock_csum(block)) {
        return damaged("superblock checksum mismatch");
    }
    match le_u32(block, VERSION_RANGE) {
        Some(version) => Probe::Ferrofs { version },
        None => damaged("superblock too short for its version field"),
    }
}
