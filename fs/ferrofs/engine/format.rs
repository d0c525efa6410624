// SPDX-License-Identifier: GPL-2.0

//! On-disk format constants and the superblock probe.
//!
//! Only the start of the superblock is fixed so far: enough to tell a ferrofs device from
//! anything else and to verify the block's checksum. `Documentation/filesystems/ferrofs.rst`
//! describes it.

use super::crc32c;
use super::error::EngineError;
use super::mem::FVec;

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

/// Byte offsets of the superblock copies on each device (those that fit are written).
pub const SUPERBLOCK_OFFSETS: [u64; 3] = [SUPERBLOCK_OFFSET, 64 << 20, 256 << 30];

/// Device ranges no chunk may use: the area in front of and around each superblock copy.
pub const RESERVED_RANGES: [(u64, u64); 3] =
    [(0, 1 << 20), (64 << 20, 64 << 10), (256 << 30, 64 << 10)];

/// The format version this engine writes and mounts.
pub const FORMAT_VERSION: u32 = 2;

/// Incompatible feature: extended attribute values spilled to `XATTR_SPILL` items (set
/// with the first one; a reader without it would take their entries for corruption).
pub const INCOMPAT_XATTR_SPILL: u64 = 1 << 0;
/// Incompatible feature: extended back references (`INODE_EXTREF` items), for names of an
/// inode in one directory past what its `INODE_REF` item holds.
pub const INCOMPAT_EXTREF: u64 = 1 << 1;
/// Incompatible feature: data checksum items of more than one block.
pub const INCOMPAT_PACKED_CSUMS: u64 = 1 << 2;
/// Incompatible feature: an fsync log area (see `volume::log`), whose records a mount
/// must replay: a reader without it would lose what was fsynced since the last commit.
pub const INCOMPAT_LOG: u64 = 1 << 3;
/// The incompatible features this engine reads and writes.
pub const INCOMPAT_SUPPORTED: u64 =
    INCOMPAT_XATTR_SPILL | INCOMPAT_EXTREF | INCOMPAT_PACKED_CSUMS | INCOMPAT_LOG;

/// Longest label, in bytes.
pub const LABEL_MAX: usize = 255;

/// Room for the system chunk items carried in the superblock.
pub const SYS_CHUNK_ARRAY_MAX: usize = 2048;

/// Ids of the trees.
pub mod tree_id {
    /// Holds the root of every tree but itself and the chunk tree.
    pub const ROOT: u64 = 1;
    /// The space map: reference counts of every block, and per-chunk usage.
    pub const SPACE: u64 = 2;
    /// Chunks and devices (its blocks live in system chunks).
    pub const CHUNK: u64 = 3;
    /// Device extents.
    pub const DEV: u64 = 4;
    /// Files and directories.
    pub const FS: u64 = 5;
    /// Data checksums.
    pub const CSUM: u64 = 7;
}

/// Item types (the `kind` of a key), by tree.
pub mod item {
    /// Root tree: (tree id, ROOT, 0) -> root block address and level.
    pub const ROOT: u8 = 1;
    /// Root tree: (LOG_OBJECTID, LOG_AREA, 0) -> first block and block count of the fsync
    /// log area.
    pub const LOG_AREA: u8 = 2;
    /// Chunk tree: (DEV_ITEMS_OBJECTID, DEV, devid) -> device item.
    pub const DEV: u8 = 10;
    /// Chunk tree: (CHUNK_OBJECTID, CHUNK, logical) -> chunk item.
    pub const CHUNK: u8 = 11;
    /// Device tree: (devid, DEV_EXTENT, physical) -> chunk logical address and length.
    pub const DEV_EXTENT: u8 = 12;
    /// Space tree: (chunk logical, BLOCK_GROUP, 0) -> bytes used in the chunk.
    pub const BLOCK_GROUP: u8 = 20;
    /// Space tree: (chunk logical, BITMAP, index) -> 2-bit reference counts.
    pub const BITMAP: u8 = 21;
    /// Space tree: (block logical, REFCOUNT, 0) -> reference count of 3 or more.
    pub const REFCOUNT: u8 = 22;
}

/// Object id of the root-tree item naming the fsync log area (not a tree: no tree has
/// this id).
pub const LOG_OBJECTID: u64 = 8;

/// Object id of device items in the chunk tree.
pub const DEV_ITEMS_OBJECTID: u64 = 1;
/// Object id of chunk items in the chunk tree.
pub const CHUNK_OBJECTID: u64 = 256;

/// A device's superblock, decoded.
///
/// The label and the system chunk array live on the heap: the kernel's stack is small, and
/// a superblock passes through several frames of the mount path by value.
#[derive(Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Filesystem UUID, the same on every device and in every tree block.
    pub fsid: [u8; 16],
    /// This device's UUID.
    pub dev_uuid: [u8; 16],
    /// This device's id within the filesystem.
    pub devid: u64,
    /// Devices in the filesystem.
    pub num_devices: u64,
    /// Transaction that wrote this superblock.
    pub generation: u64,
    /// Logical address of the root tree's root.
    pub root_tree: u64,
    /// Logical address of the chunk tree's root.
    pub chunk_tree: u64,
    /// Generation of the root tree's root block (checked when it is read).
    pub root_tree_generation: u64,
    /// Level of the root tree's root block.
    pub root_tree_level: u8,
    /// Generation of the chunk tree's root block.
    pub chunk_tree_generation: u64,
    /// Level of the chunk tree's root block.
    pub chunk_tree_level: u8,
    /// Sum of the sizes of all devices.
    pub total_bytes: u64,
    /// Bytes referenced by at least one tree.
    pub bytes_used: u64,
    /// Size of this device as the filesystem uses it.
    pub dev_total_bytes: u64,
    /// Feature flags a reader must understand to mount at all.
    pub incompat: u64,
    /// Feature flags a writer must understand to mount read-write.
    pub compat_ro: u64,
    /// Feature flags that may be ignored.
    pub compat: u64,
    /// Filesystem label (at most [`LABEL_MAX`] bytes), NUL-padded to `LABEL_MAX + 1`.
    pub label: FVec<u8>,
    /// Encoded system chunks: repeated (logical `u64`, chunk item), so the chunk tree can
    /// be found before it is read; `SYS_CHUNK_ARRAY_MAX` bytes.
    pub sys_chunks: FVec<u8>,
    /// Bytes of `sys_chunks` in use.
    pub sys_chunks_len: usize,
}

mod sb_off {
    pub(super) const FLAGS: usize = 20;
    pub(super) const FSID: usize = 24;
    pub(super) const DEV_UUID: usize = 40;
    pub(super) const DEVID: usize = 56;
    pub(super) const NUM_DEVICES: usize = 64;
    pub(super) const GENERATION: usize = 72;
    pub(super) const ROOT_TREE: usize = 80;
    pub(super) const CHUNK_TREE: usize = 88;
    pub(super) const TOTAL_BYTES: usize = 96;
    pub(super) const BYTES_USED: usize = 104;
    pub(super) const DEV_TOTAL_BYTES: usize = 112;
    pub(super) const INCOMPAT: usize = 120;
    pub(super) const COMPAT_RO: usize = 128;
    pub(super) const COMPAT: usize = 136;
    pub(super) const SYS_CHUNKS_LEN: usize = 144;
    pub(super) const LABEL: usize = 152;
    pub(super) const BYTENR: usize = 408;
    pub(super) const ROOT_TREE_GENERATION: usize = 416;
    pub(super) const CHUNK_TREE_GENERATION: usize = 424;
    pub(super) const ROOT_TREE_LEVEL: usize = 432;
    pub(super) const CHUNK_TREE_LEVEL: usize = 433;
    pub(super) const SYS_CHUNKS: usize = 448;
}

impl Superblock {
    /// A superblock with every field zero.
    pub fn empty() -> Result<Self, EngineError> {
        Ok(Self {
            fsid: [0; 16],
            dev_uuid: [0; 16],
            devid: 0,
            num_devices: 0,
            generation: 0,
            root_tree: 0,
            chunk_tree: 0,
            root_tree_generation: 0,
            root_tree_level: 0,
            chunk_tree_generation: 0,
            chunk_tree_level: 0,
            total_bytes: 0,
            bytes_used: 0,
            dev_total_bytes: 0,
            incompat: 0,
            compat_ro: 0,
            compat: 0,
            label: super::mem::zeroed_bytes(LABEL_MAX + 1)?,
            sys_chunks: super::mem::zeroed_bytes(SYS_CHUNK_ARRAY_MAX)?,
            sys_chunks_len: 0,
        })
    }

    /// A copy (the arrays are allocated anew).
    pub fn try_clone(&self) -> Result<Self, EngineError> {
        Ok(Self {
            label: self.label.try_clone()?,
            sys_chunks: self.sys_chunks.try_clone()?,
            ..*self
        })
    }

    /// The label as bytes, without padding.
    pub fn label_bytes(&self) -> &[u8] {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(LABEL_MAX);
        self.label.get(..end).unwrap_or(&[])
    }

    /// The system chunk array in use.
    pub fn sys_chunk_bytes(&self) -> &[u8] {
        self.sys_chunks.get(..self.sys_chunks_len).unwrap_or(&[])
    }

    /// Encodes the copy that lives at byte `bytenr` of its device into `block`.
    pub fn encode(&self, bytenr: u64, block: &mut [u8]) -> Result<(), EngineError> {
        use super::bytes::{put, put_u32, put_u64, put_u8};
        let bad = EngineError::Invalid("superblock does not encode");
        if block.len() != BLOCK_SIZE as usize || self.sys_chunks_len > SYS_CHUNK_ARRAY_MAX {
            return Err(bad);
        }
        block.fill(0);
        let ok = put(block, MAGIC_RANGE.start, &MAGIC).is_some()
            && put_u32(block, VERSION_RANGE.start, FORMAT_VERSION).is_some()
            && put_u32(block, sb_off::FLAGS, 0).is_some()
            && put(block, sb_off::FSID, &self.fsid).is_some()
            && put(block, sb_off::DEV_UUID, &self.dev_uuid).is_some()
            && put_u64(block, sb_off::DEVID, self.devid).is_some()
            && put_u64(block, sb_off::NUM_DEVICES, self.num_devices).is_some()
            && put_u64(block, sb_off::GENERATION, self.generation).is_some()
            && put_u64(block, sb_off::ROOT_TREE, self.root_tree).is_some()
            && put_u64(block, sb_off::CHUNK_TREE, self.chunk_tree).is_some()
            && put_u64(block, sb_off::TOTAL_BYTES, self.total_bytes).is_some()
            && put_u64(block, sb_off::BYTES_USED, self.bytes_used).is_some()
            && put_u64(block, sb_off::DEV_TOTAL_BYTES, self.dev_total_bytes).is_some()
            && put_u64(block, sb_off::INCOMPAT, self.incompat).is_some()
            && put_u64(block, sb_off::COMPAT_RO, self.compat_ro).is_some()
            && put_u64(block, sb_off::COMPAT, self.compat).is_some()
            && u32::try_from(self.sys_chunks_len)
                .ok()
                .and_then(|n| put_u32(block, sb_off::SYS_CHUNKS_LEN, n))
                .is_some()
            && put(block, sb_off::LABEL, self.label_bytes()).is_some()
            && put_u64(block, sb_off::BYTENR, bytenr).is_some()
            && put_u64(
                block,
                sb_off::ROOT_TREE_GENERATION,
                self.root_tree_generation,
            )
            .is_some()
            && put_u64(
                block,
                sb_off::CHUNK_TREE_GENERATION,
                self.chunk_tree_generation,
            )
            .is_some()
            && put_u8(block, sb_off::ROOT_TREE_LEVEL, self.root_tree_level).is_some()
            && put_u8(block, sb_off::CHUNK_TREE_LEVEL, self.chunk_tree_level).is_some()
            && put(block, sb_off::SYS_CHUNKS, self.sys_chunk_bytes()).is_some();
        let csum = superblock_csum(block);
        if ok && put_u32(block, CSUM_RANGE.start, csum).is_some() {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// Decodes and verifies the copy read from byte `bytenr` of a device.
    pub fn decode(bytenr: u64, block: &[u8]) -> Result<Self, EngineError> {
        use super::bytes::{array, u32_at, u64_at, u8_at};
        let corrupt = |reason| EngineError::Corrupt {
            block: bytenr,
            reason,
        };
        match probe(block) {
            Probe::NotFerrofs => return Err(corrupt("no ferrofs superblock (bad magic)")),
            Probe::Damaged(err) => {
                return Err(match err {
                    EngineError::Corrupt { reason, .. } => corrupt(reason),
                    other => other,
                })
            }
            Probe::Ferrofs { version } if version != FORMAT_VERSION => {
                return Err(corrupt("unsupported superblock format version"))
            }
            Probe::Ferrofs { .. } => {}
        }
        let short = || corrupt("short superblock");
        if u64_at(block, sb_off::BYTENR) != Some(bytenr) {
            return Err(corrupt("superblock copy records another offset"));
        }
        let sys_chunks_len = u32_at(block, sb_off::SYS_CHUNKS_LEN).ok_or_else(short)? as usize;
        if sys_chunks_len > SYS_CHUNK_ARRAY_MAX {
            return Err(corrupt("superblock system chunk array too long"));
        }
        let mut sb = Self::empty()?;
        sb.fsid = array(block, sb_off::FSID).ok_or_else(short)?;
        sb.dev_uuid = array(block, sb_off::DEV_UUID).ok_or_else(short)?;
        sb.devid = u64_at(block, sb_off::DEVID).ok_or_else(short)?;
        sb.num_devices = u64_at(block, sb_off::NUM_DEVICES).ok_or_else(short)?;
        sb.generation = u64_at(block, sb_off::GENERATION).ok_or_else(short)?;
        sb.root_tree = u64_at(block, sb_off::ROOT_TREE).ok_or_else(short)?;
        sb.chunk_tree = u64_at(block, sb_off::CHUNK_TREE).ok_or_else(short)?;
        sb.root_tree_generation = u64_at(block, sb_off::ROOT_TREE_GENERATION).ok_or_else(short)?;
        sb.chunk_tree_generation =
            u64_at(block, sb_off::CHUNK_TREE_GENERATION).ok_or_else(short)?;
        sb.root_tree_level = u8_at(block, sb_off::ROOT_TREE_LEVEL).ok_or_else(short)?;
        sb.chunk_tree_level = u8_at(block, sb_off::CHUNK_TREE_LEVEL).ok_or_else(short)?;
        sb.total_bytes = u64_at(block, sb_off::TOTAL_BYTES).ok_or_else(short)?;
        sb.bytes_used = u64_at(block, sb_off::BYTES_USED).ok_or_else(short)?;
        sb.dev_total_bytes = u64_at(block, sb_off::DEV_TOTAL_BYTES).ok_or_else(short)?;
        sb.incompat = u64_at(block, sb_off::INCOMPAT).ok_or_else(short)?;
        sb.compat_ro = u64_at(block, sb_off::COMPAT_RO).ok_or_else(short)?;
        sb.compat = u64_at(block, sb_off::COMPAT).ok_or_else(short)?;
        let label = block
            .get(sb_off::LABEL..sb_off::LABEL.saturating_add(LABEL_MAX + 1))
            .ok_or_else(short)?;
        if label.get(LABEL_MAX) != Some(&0) {
            return Err(corrupt("superblock label not terminated"));
        }
        super::bytes::put(&mut sb.label, 0, label).ok_or(EngineError::Range)?;
        let sys = block
            .get(sb_off::SYS_CHUNKS..sb_off::SYS_CHUNKS.saturating_add(SYS_CHUNK_ARRAY_MAX))
            .ok_or_else(short)?;
        super::bytes::put(&mut sb.sys_chunks, 0, sys).ok_or(EngineError::Range)?;
        sb.sys_chunks_len = sys_chunks_len;
        if sb.devid == 0 || sb.num_devices == 0 || sb.generation == 0 {
            return Err(corrupt(
                "superblock has a zero device id, device count or generation",
            ));
        }
        if sb.root_tree_generation > sb.generation || sb.chunk_tree_generation > sb.generation {
            return Err(corrupt("superblock tree root newer than the superblock"));
        }
        if sb.incompat & !INCOMPAT_SUPPORTED != 0 {
            return Err(corrupt("superblock has unknown incompatible features"));
        }
        Ok(sb)
    }
}
