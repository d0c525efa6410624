// SPDX-License-Identifier: GPL-2.0

//! Making and mounting a volume: mkfs, the superblock copies, and reading the chunk tree,
//! the tree roots and the space map at mount.

use super::super::btree::NodeStore;
use super::super::bytes;
use super::super::chunk::{Chunk, Kind};
use super::super::dev::BlockDev;
use super::super::error::{EngineError, EngineResult};
use super::super::format::{self, item, Superblock, BLOCK_SIZE};
use super::super::key::Key;
use super::super::map::U64Map;
use super::super::mem::{self, FVec};
use super::super::node::{Node, NodeRef};
use super::super::spacemap;
use super::log::{FsyncLog, LogArea, LOG_AREA_MAX_BLOCKS};
use super::space::{plan_chunk, round_down, ChunkSpace};
use super::transaction::decode_root_item;
use super::{
    u64_value, BadSuperblock, DevSlot, MkfsOptions, OpenOptions, Tree, Volume, BLOCK,
    DEFAULT_CACHE_LIMIT, DEV_ITEM_SIZE, MIN_DEVICE_SIZE,
};

impl<D: BlockDev> Volume<D> {
    // ---- creating a filesystem ----

    /// Formats `devs` as a new ferrofs and returns it mounted, at generation 2.
    pub fn mkfs(devs: FVec<D>, opts: &MkfsOptions<'_>) -> EngineResult<Self> {
        if devs.is_empty() || devs.len() != opts.dev_uuids.len() {
            return Err(EngineError::Invalid("one device UUID per device is needed"));
        }
        if opts.label.len() > format::LABEL_MAX || opts.label.contains(&0) {
            return Err(EngineError::Invalid("label too long or contains NUL"));
        }
        for profile in [opts.data, opts.metadata] {
            if devs.len() < profile.min_devices() {
                return Err(EngineError::Invalid("not enough devices for the profile"));
            }
        }
        let mut sb = Superblock::empty()?;
        sb.fsid = opts.fsid;
        sb.num_devices = devs.len() as u64;
        if let Some(dst) = sb.label.get_mut(..opts.label.len()) {
            dst.copy_from_slice(opts.label);
        }
        let mut slots = FVec::try_with_capacity(devs.len())?;
        let mut devs = devs;
        let mut devid = devs.len() as u64;
        let mut total = 0u64;
        while let Some(dev) = devs.pop() {
            let size = dev.size() & !(BLOCK - 1);
            if size < MIN_DEVICE_SIZE {
                return Err(EngineError::Invalid("device smaller than the minimum"));
            }
            total = total.saturating_add(size);
            let uuid = opts
                .dev_uuids
                .get(usize::try_from(devid.saturating_sub(1)).unwrap_or(usize::MAX))
                .copied()
                .ok_or(EngineError::Invalid("missing device UUID"))?;
            slots.try_push(DevSlot {
                devid,
                uuid,
                size,
                dev: Some(dev),
            })?;
            devid = devid.saturating_sub(1);
        }
        slots.reverse();
        sb.total_bytes = total;
        let mut vol = Self {
            sb,
            devs: slots,
            chunks: FVec::new(),
            spaces: FVec::new(),
            generation: 1,
            // Placeholders until the two trees are made below.
            root_tree: NO_ROOT,
            chunk_root: NO_ROOT,
            roots: FVec::new(),
            cache: U64Map::new(),
            cache_limit: DEFAULT_CACHE_LIMIT,
            fresh: U64Map::new(),
            delayed: U64Map::new(),
            pinned: FVec::new(),
            pending: None,
            in_flight: FVec::new(),
            repairs: FVec::new(),
            read_only: false,
            changes: 0,
            committed_changes: 0,
            durable_generation: 0,
            log: FsyncLog::default(),
            logged_changes: 0,
        };
        // Chunks first (in memory), then the trees that describe them.
        let mut extents: FVec<(u64, u64, u64)> = FVec::new(); // (devid, physical, length)
        for (kind, profile) in [
            (Kind::System, opts.metadata),
            (Kind::Metadata, opts.metadata),
            (Kind::Data, opts.data),
        ] {
            // Logical addresses start at 1 MiB and chunks follow each other 1 MiB-aligned.
            let next = vol
                .chunks
                .last()
                .map_or(1 << 20, |c| c.logical.saturating_add(c.length));
            let next = round_down(next.saturating_add((1 << 20) - 1), 1 << 20);
            let chunk = plan_chunk(next, &vol.devs, &extents, kind, profile, total)?;
            for s in chunk.stripes.iter() {
                extents.try_push((s.devid, s.physical, chunk.stripe_size()))?;
            }
            vol.add_chunk(chunk)?;
        }
        let root_tree = vol
            .store(Tree::ROOT)
            .alloc(Node::new_leaf(Tree::ROOT.id(), 1))?;
        vol.root_tree = vol.own_ref(root_tree)?;
        let chunk_root = vol
            .store(Tree::CHUNK)
            .alloc(Node::new_leaf(Tree::CHUNK.id(), 1))?;
        vol.chunk_root = vol.own_ref(chunk_root)?;
        for id in [Tree::SPACE, Tree::DEV, Tree::FS, Tree::CSUM] {
            vol.create_tree(id.id())?;
        }
        for i in 0..vol.devs.len() {
            let Some(slot) = vol.devs.get(i) else {
                continue;
            };
            let (devid, size, uuid) = (slot.devid, slot.size, slot.uuid);
            let mut item = mem::zeroed_bytes(DEV_ITEM_SIZE)?;
            bytes::put_u64(&mut item, 0, size);
            bytes::put(&mut item, 8, &uuid);
            vol.insert(
                Tree::CHUNK,
                Key::new(format::DEV_ITEMS_OBJECTID, item::DEV, devid),
                &item,
            )?;
        }
        for i in 0..vol.chunks.len() {
            vol.record_chunk(i)?;
        }
        vol.make_log_area()?;
        vol.commit()?;
        Ok(vol)
    }

    /// Writes chunk `i` into the chunk tree, its stripes into the device tree and, for a
    /// system chunk, its item into the superblock's system chunk array.
    pub(super) fn record_chunk(&mut self, i: usize) -> EngineResult<()> {
        let chunk = self
            .chunks
            .get(i)
            .ok_or(EngineError::Invalid("no such chunk"))?;
        let (logical, kind, stripe_size) = (chunk.logical, chunk.kind, chunk.stripe_size());
        let stripes = chunk.stripes.try_clone()?;
        let mut encoded = FVec::new();
        chunk.encode(&mut encoded)?;
        if kind == Kind::System {
            let start = self.sb.sys_chunks_len;
            let body = start.checked_add(8).ok_or(EngineError::NoSpace)?;
            let end = body
                .checked_add(encoded.len())
                .filter(|&end| end <= self.sb.sys_chunks.len())
                .ok_or(EngineError::NoSpace)?;
            let array = &mut self.sb.sys_chunks;
            bytes::put_u64(array, start, logical).ok_or(EngineError::NoSpace)?;
            bytes::put(array, body, &encoded).ok_or(EngineError::NoSpace)?;
            self.sb.sys_chunks_len = end;
        }
        self.insert(
            Tree::CHUNK,
            Key::new(format::CHUNK_OBJECTID, item::CHUNK, logical),
            &encoded,
        )?;
        for s in stripes.iter() {
            let mut ext = [0u8; 16];
            bytes::put_u64(&mut ext, 0, logical);
            bytes::put_u64(&mut ext, 8, stripe_size);
            self.insert(
                Tree::DEV,
                Key::new(s.devid, item::DEV_EXTENT, s.physical),
                &ext,
            )?;
        }
        Ok(())
    }

    pub(super) fn add_chunk(&mut self, chunk: Chunk) -> EngineResult<()> {
        let at = self.chunks.partition_point(|c| c.logical < chunk.logical);
        let space = ChunkSpace::new(chunk.length)?;
        self.chunks.try_insert(at, chunk)?;
        self.spaces.try_insert(at, space)
    }

    // ---- mounting ----

    /// Mounts the filesystem on `devs`. With `degraded`, devices may be missing as long as
    /// every chunk keeps a copy.
    pub fn open(devs: FVec<D>, degraded: bool) -> EngineResult<Self> {
        Self::open_with(
            devs,
            OpenOptions {
                degraded,
                read_only: false,
            },
        )
    }

    /// Mounts the filesystem on `devs` with `opts`. Read-only mounts never write: not even
    /// to repair a bad copy found while reading.
    pub fn open_with(devs: FVec<D>, opts: OpenOptions) -> EngineResult<Self> {
        let degraded = opts.degraded;
        let mut devs = devs;
        // The newest valid superblock of every device.
        let mut found: FVec<(Superblock, D)> = FVec::new();
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let mut last_err = EngineError::Invalid("no ferrofs superblock found");
        while let Some(mut dev) = devs.pop() {
            let mut best: Option<Superblock> = None;
            for &offset in format::SUPERBLOCK_OFFSETS.iter() {
                if offset.saturating_add(BLOCK) > dev.size() {
                    continue;
                }
                let sb = dev
                    .read(offset, &mut buf)
                    .and_then(|()| Superblock::decode(offset, &buf));
                match sb {
                    Ok(sb) if best.as_ref().map_or(true, |b| sb.generation > b.generation) => {
                        best = Some(sb)
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if offset == format::SUPERBLOCK_OFFSET {
                            last_err = err;
                        }
                    }
                }
            }
            match best {
                Some(sb) => found.try_push((sb, dev))?,
                None => return Err(last_err),
            }
        }
        let newest = found
            .iter()
            .map(|(sb, _)| sb)
            .max_by_key(|sb| sb.generation)
            .ok_or(EngineError::Invalid("no devices"))?
            .try_clone()?;
        let mut slots: FVec<DevSlot<D>> = FVec::new();
        while let Some((sb, dev)) = found.pop() {
            if sb.fsid != newest.fsid {
                return Err(EngineError::Invalid(
                    "devices belong to different filesystems",
                ));
            }
            if slots.iter().any(|s| s.devid == sb.devid) {
                return Err(EngineError::Invalid("two devices with the same device id"));
            }
            slots.try_push(DevSlot {
                devid: sb.devid,
                uuid: sb.dev_uuid,
                size: sb.dev_total_bytes,
                dev: Some(dev),
            })?;
        }
        let mut vol = Self {
            sb: newest.try_clone()?,
            devs: slots,
            chunks: FVec::new(),
            spaces: FVec::new(),
            generation: newest
                .generation
                .checked_add(1)
                .ok_or(EngineError::Corrupt {
                    block: format::SUPERBLOCK_OFFSET,
                    reason: "superblock generation at its limit",
                })?,
            root_tree: NodeRef {
                block: newest.root_tree,
                generation: newest.root_tree_generation,
                level: newest.root_tree_level,
                first_key: None,
            },
            chunk_root: NodeRef {
                block: newest.chunk_tree,
                generation: newest.chunk_tree_generation,
                level: newest.chunk_tree_level,
                first_key: None,
            },
            roots: FVec::new(),
            cache: U64Map::new(),
            cache_limit: DEFAULT_CACHE_LIMIT,
            fresh: U64Map::new(),
            delayed: U64Map::new(),
            pinned: FVec::new(),
            pending: None,
            in_flight: FVec::new(),
            repairs: FVec::new(),
            read_only: opts.read_only,
            changes: 0,
            committed_changes: 0,
            durable_generation: newest.generation,
            log: FsyncLog::default(),
            logged_changes: 0,
        };
        // Bootstrap the system chunks from the superblock, then read the chunk tree.
        let sys = newest.sys_chunk_bytes();
        let mut off = 0usize;
        while off < sys.len() {
            let logical = bytes::u64_at(sys, off).ok_or(EngineError::Corrupt {
                block: format::SUPERBLOCK_OFFSET,
                reason: "truncated system chunk array",
            })?;
            // `u64_at` found 8 bytes at `off`, and `used` is at most what `rest` holds, so
            // neither sum can pass the array's length.
            let rest = sys.get(off.saturating_add(8)..).unwrap_or(&[]);
            let (chunk, used) = Chunk::decode(logical, rest, format::SUPERBLOCK_OFFSET)?;
            vol.add_chunk(chunk)?;
            off = off.saturating_add(8).saturating_add(used);
        }
        vol.load_chunk_tree()?;
        // Devices listed in the chunk tree but not given.
        let present = mem::count(vol.devs.iter().filter(|d| d.dev.is_some())) as u64;
        if present < newest.num_devices && !degraded {
            return Err(EngineError::Invalid(
                "devices missing: mount with degraded to continue",
            ));
        }
        vol.check_chunks_readable()?;
        vol.load_roots()?;
        vol.load_space_map()?;
        Ok(vol)
    }

    /// Reads every superblock copy that fits on each present device and says what is wrong
    /// with it, if anything: fsck's view of the copies the mount chose among. An older copy
    /// is not wrong (the backups of the last commit may not have reached the media before a
    /// power cut); a copy that fails to decode, or that names another filesystem or device,
    /// is.
    pub fn check_superblock_copies(&mut self) -> EngineResult<FVec<BadSuperblock>> {
        let mut bad = FVec::new();
        let mut buf = mem::zeroed_bytes(BLOCK_SIZE as usize)?;
        let fsid = self.sb.fsid;
        for slot in self.devs.iter_mut() {
            let (devid, size) = (slot.devid, slot.size);
            let Some(dev) = slot.dev.as_mut() else {
                continue;
            };
            for &offset in format::SUPERBLOCK_OFFSETS.iter() {
                let end = offset.checked_add(BLOCK).ok_or(EngineError::Corrupt {
                    block: offset,
                    reason: "superblock offset overflows",
                })?;
                if end > size.min(dev.size()) {
                    continue;
                }
                let what = match dev
                    .read(offset, &mut buf)
                    .and_then(|()| Superblock::decode(offset, &buf))
                {
                    Ok(sb) if sb.fsid != fsid => Some("superblock copy of another filesystem"),
                    Ok(sb) if sb.devid != devid => Some("superblock copy of another device"),
                    Ok(_) => None,
                    Err(EngineError::Corrupt { reason, .. }) => Some(reason),
                    Err(EngineError::Io) => Some("superblock copy unreadable (I/O error)"),
                    Err(other) => return Err(other),
                };
                if let Some(what) = what {
                    bad.try_push(BadSuperblock {
                        devid,
                        offset,
                        what,
                    })?;
                }
            }
        }
        Ok(bad)
    }

    fn load_chunk_tree(&mut self) -> EngineResult<()> {
        let chunk_root = self.chunk_root.block;
        let mut items = self.range(
            Tree::CHUNK,
            Key::new(format::DEV_ITEMS_OBJECTID, item::DEV, 0),
            Key::MAX,
        );
        while let Some((k, v)) = self.next_in(&mut items)? {
            if k.kind == item::DEV && k.objectid == format::DEV_ITEMS_OBJECTID {
                let size = u64_value(&v).ok_or(EngineError::Corrupt {
                    block: chunk_root,
                    reason: "short device item",
                })?;
                let uuid: [u8; 16] = bytes::array(&v, 8).ok_or(EngineError::Corrupt {
                    block: chunk_root,
                    reason: "short device item",
                })?;
                if !self.devs.iter().any(|d| d.devid == k.offset) {
                    self.devs.try_push(DevSlot {
                        devid: k.offset,
                        uuid,
                        size,
                        dev: None,
                    })?;
                }
            } else if k.kind == item::CHUNK
                && k.objectid == format::CHUNK_OBJECTID
                && self.chunk_index(k.offset).is_none()
            {
                let (chunk, _) = Chunk::decode(k.offset, &v, chunk_root)?;
                self.add_chunk(chunk)?;
            }
        }
        Ok(())
    }

    fn check_chunks_readable(&self) -> EngineResult<()> {
        let present = |devid: u64| {
            self.devs
                .iter()
                .any(|d| d.devid == devid && d.dev.is_some())
        };
        for chunk in self.chunks.iter() {
            if !chunk.is_readable(present) {
                return Err(EngineError::Invalid(
                    "too many devices missing to read every chunk",
                ));
            }
        }
        Ok(())
    }

    fn load_roots(&mut self) -> EngineResult<()> {
        let root_tree = self.root_tree.block;
        let mut items = self.range(Tree::ROOT, Key::MIN, Key::MAX);
        while let Some((k, v)) = self.next_in(&mut items)? {
            if k == LogArea::KEY {
                let area = LogArea::decode(&v, root_tree)?;
                self.check_log_area(&area, root_tree)?;
                self.log.area = Some(area);
            } else if k.kind == item::ROOT {
                let root = decode_root_item(&v, root_tree)?;
                if root.generation > self.sb.generation {
                    return Err(EngineError::Corrupt {
                        block: root_tree,
                        reason: "root item newer than the superblock",
                    });
                }
                self.roots.try_push((k.objectid, root))?;
            }
        }
        for id in [Tree::SPACE, Tree::DEV, Tree::FS, Tree::CSUM] {
            if self.root(id).is_none() {
                return Err(EngineError::Corrupt {
                    block: root_tree,
                    reason: "root tree lacks a required tree",
                });
            }
        }
        Ok(())
    }

    /// Sets the fsync log area aside in the metadata chunk mkfs made: up to
    /// [`LOG_AREA_MAX_BLOCKS`] contiguous blocks, an eighth of the chunk at most.
    fn make_log_area(&mut self) -> EngineResult<()> {
        let i = self
            .chunks
            .iter()
            .position(|c| c.kind == Kind::Metadata)
            .ok_or(EngineError::Invalid("no metadata chunk for the log"))?;
        let logical = self
            .chunks
            .get(i)
            .map(|c| c.logical)
            .ok_or(EngineError::Io)?;
        let space = self.spaces.get_mut(i).ok_or(EngineError::Io)?;
        let want = (space.blocks / 8).clamp(1, LOG_AREA_MAX_BLOCKS);
        let (n, blocks) = space.take_run(want).ok_or(EngineError::NoSpace)?;
        let start = n
            .checked_mul(BLOCK)
            .and_then(|off| logical.checked_add(off))
            .ok_or(EngineError::NoSpace)?;
        let area = LogArea { start, blocks };
        for b in 0..blocks {
            let block = area.block(b)?;
            self.add_ref(
                block,
                1,
                super::RefOwner::Tree(Tree::with_id(format::LOG_OBJECTID)),
            )?;
        }
        self.insert(Tree::ROOT, LogArea::KEY, &area.encode())?;
        self.sb.incompat |= format::INCOMPAT_LOG;
        self.log.area = Some(area);
        Ok(())
    }

    /// The log area found at mount lies inside one metadata chunk.
    fn check_log_area(&self, area: &LogArea, from: u64) -> EngineResult<()> {
        let last = area.block(area.blocks.saturating_sub(1));
        let inside = self
            .chunk_index(area.start)
            .and_then(|i| self.chunks.get(i));
        match (inside, last) {
            (Some(c), Ok(last)) if c.kind == Kind::Metadata && c.contains(last) => Ok(()),
            _ => Err(EngineError::Corrupt {
                block: from,
                reason: "log area outside every metadata chunk",
            }),
        }
    }

    fn load_space_map(&mut self) -> EngineResult<()> {
        for i in 0..self.chunks.len() {
            let logical = self
                .chunks
                .get(i)
                .map(|c| c.logical)
                .ok_or(EngineError::Io)?;
            let mut bitmaps = self.range(
                Tree::SPACE,
                Key::new(logical, item::BITMAP, 0),
                Key::new(logical, item::BITMAP, u64::MAX),
            );
            while let Some((k, v)) = self.next_in(&mut bitmaps)? {
                let base = k.offset.checked_mul(spacemap::BLOCKS_PER_BITMAP).ok_or(
                    EngineError::Corrupt {
                        block: logical,
                        reason: "space map bitmap index out of range",
                    },
                )?;
                let space = self.spaces.get_mut(i).ok_or(EngineError::Io)?;
                for e in 0..spacemap::BLOCKS_PER_BITMAP {
                    if spacemap::get_entry(&v, e as usize) != 0 {
                        let n = base.checked_add(e).filter(|&n| n < space.blocks).ok_or(
                            EngineError::Corrupt {
                                block: logical,
                                reason: "space map entry beyond the end of its chunk",
                            },
                        )?;
                        space.set(n, true);
                        space.used_bytes = space.used_bytes.saturating_add(BLOCK);
                    }
                }
            }
            if let Some(space) = self.spaces.get_mut(i) {
                space.used_dirty = false;
            }
        }
        Ok(())
    }
}

/// A root not made yet (mkfs makes the root and chunk trees right after the chunks).
const NO_ROOT: NodeRef = NodeRef {
    block: 0,
    generation: 0,
    level: 0,
    first_key: None,
};
