// SPDX-License-Identifier: GPL-2.0

//! Checking a volume: the same code for `fsck.ferrofs` and, later, online scrub.
//!
//! Verifies every copy of every tree block (checksum, identity, structure), the tree
//! structure (order, parent keys, levels, fill), every reference count against the
//! references that actually exist, the chunks against their device extents, and the
//! per-chunk and total usage. Each problem names the block (or chunk, or device offset)
//! it is about.

use super::btree;
use super::bytes;
use super::chunk::Kind;
use super::dev::BlockDev;
use super::error::{EngineError, EngineResult};
use super::format::{self, item, BLOCK_SIZE};
use super::fs;
use super::inode::{self, kind, Extent, ExtentKind, Inode};
use super::key::Key;
use super::map::U64Map;
use super::mem::{self, FVec};
use super::node::NodeRef;
use super::spacemap;
use super::volume::{child_refs, Tree, Volume};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// One problem found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Logical address of the block (or chunk) concerned; for device extents, the physical
    /// offset on device `devid`.
    pub block: u64,
    /// Device concerned, or 0.
    pub devid: u64,
    /// What is wrong.
    pub what: &'static str,
    /// Whether fsck repaired it.
    pub repaired: bool,
}

/// Repairs decided while checking, applied (and committed) at the end of a repairing check.
/// Only values that other structures fully determine are recomputed: a chunk's usage from
/// its space map, an inode's link count from its names, a block's reference count from the
/// references to it.
#[derive(Default)]
struct Fixes {
    usage: FVec<(u64, u64)>,
    nlinks: FVec<(u64, u32)>,
    superblock: bool,
    /// Blocks whose stored count differs from the references found: (block, count).
    refcounts: FVec<(u64, u64)>,
    /// The problems (indexes in the report) that setting those counts repairs.
    refcount_problems: FVec<usize>,
    /// Checksum items of blocks nothing references (removed with the counts).
    stray_csums: FVec<u64>,
}

impl Fixes {
    fn refcount(
        &mut self,
        report: &mut Report,
        block: u64,
        count: u64,
        what: &'static str,
    ) -> EngineResult<()> {
        self.refcount_problems.try_push(report.problems.len())?;
        self.refcounts.try_push((block, count))?;
        report.add(block, 0, what, false)
    }
}

/// What a check found.
#[derive(Default)]
pub struct Report {
    /// Problems, in the order found.
    pub problems: FVec<Problem>,
    /// Tree blocks checked.
    pub blocks: u64,
    /// Tree items checked.
    pub items: u64,
}

impl Report {
    fn add(
        &mut self,
        block: u64,
        devid: u64,
        what: &'static str,
        repaired: bool,
    ) -> EngineResult<()> {
        self.problems.try_push(Problem {
            block,
            devid,
            what,
            repaired,
        })
    }

    /// Problems left unrepaired.
    pub fn unrepaired(&self) -> usize {
        mem::count(self.problems.iter().filter(|p| !p.repaired))
    }
}

fn corrupt_what(err: &EngineError) -> &'static str {
    match err {
        EngineError::Corrupt { reason, .. } => reason,
        EngineError::Io => "read error",
        other => other.message(),
    }
}

/// Checks the volume; with `repair`, rewrites bad copies of tree blocks from good ones.
pub fn check<D: BlockDev>(vol: &mut Volume<D>, repair: bool) -> EngineResult<Report> {
    let mut report = Report::default();
    // A repair commits, which would drop what the fsync log holds: replayed first, as a
    // mount would. A check that only reads looks at the last commit.
    if repair && vol.replay_log()? > 0 {
        vol.commit()?;
    }
    // Copies already rewritten from a mirror while mounting.
    let repairs = core::mem::take(&mut vol.repairs);
    for &(block, devid) in repairs.iter() {
        report.add(
            block,
            devid,
            "bad copy rewritten from a good copy when read",
            true,
        )?;
    }
    let mut expected: U64Map<u64> = U64Map::new();
    let mut fixes = Fixes::default();
    // A repairing check ends with a commit, and a commit writes every superblock copy.
    for bad in vol.check_superblock_copies()?.iter() {
        report.add(bad.offset, bad.devid, bad.what, repair)?;
        fixes.superblock |= repair;
    }
    let trees = vol.trees()?;
    for &tree in trees.iter() {
        let Some(root) = vol.root(tree) else { continue };
        bump(&mut expected, root.block)?;
        walk_tree(vol, &root, tree.id(), repair, &mut expected, &mut report)?;
        match btree::check(&mut vol.store(tree), &root) {
            Ok(items) => report.items = report.items.saturating_add(items),
            Err(err) => note_corruption(&mut report, err)?,
        }
    }
    // The fsync log area holds one reference to each of its blocks.
    if let Some(area) = vol.log_area() {
        for i in 0..area.blocks {
            bump(&mut expected, area.block(i)?)?;
        }
    }
    // The cross-checks read trees that may themselves be damaged: what cannot be read is
    // reported (it was named above), and the check goes on.
    if let Err(err) = check_fs_tree(vol, &mut expected, repair, &mut fixes, &mut report) {
        note_corruption(&mut report, err)?;
    }
    if let Err(err) = check_refcounts(vol, &expected, repair, &mut fixes, &mut report) {
        note_corruption(&mut report, err)?;
    }
    if let Err(err) = check_chunks(vol, &mut report) {
        note_corruption(&mut report, err)?;
    }
    if let Err(err) = check_csums(vol, &expected, &mut fixes, &mut report) {
        note_corruption(&mut report, err)?;
    }
    // Counts are rewritten only when every reference could be counted: with a tree left
    // unreadable, its blocks would look unreferenced and be freed.
    let counts_safe = report
        .problems
        .iter()
        .enumerate()
        .all(|(i, p)| p.repaired || fixes.refcount_problems.contains(&i));
    if !(repair && counts_safe) {
        fixes.refcounts.clear();
        fixes.stray_csums.clear();
    }
    if repair
        && (!fixes.usage.is_empty()
            || !fixes.nlinks.is_empty()
            || fixes.superblock
            || !fixes.refcounts.is_empty()
            || !fixes.stray_csums.is_empty())
    {
        apply_fixes(vol, &fixes)?;
        if !fixes.refcounts.is_empty() || !fixes.stray_csums.is_empty() {
            for &i in fixes.refcount_problems.iter() {
                if let Some(p) = report.problems.get_mut(i) {
                    p.repaired = true;
                }
            }
        }
    }
    Ok(report)
}

/// Writes the recomputed values and commits them (the commit also rewrites the
/// superblock's total from the space map).
fn apply_fixes<D: BlockDev>(vol: &mut Volume<D>, fixes: &Fixes) -> EngineResult<()> {
    for &(chunk, used) in fixes.usage.iter() {
        vol.insert(
            Tree::SPACE,
            Key::new(chunk, item::BLOCK_GROUP, 0),
            &used.to_le_bytes(),
        )?;
    }
    for &(ino, nlink) in fixes.nlinks.iter() {
        let key = Key::new(ino, kind::INODE, 0);
        let Some(data) = vol.lookup(Tree::FS, &key)? else {
            continue;
        };
        let mut node = Inode::decode(ino, &data, ino)?;
        node.nlink = nlink;
        vol.insert(Tree::FS, key, &node.encode())?;
    }
    for &(block, count) in fixes.refcounts.iter() {
        vol.set_refcount(block, count)?;
    }
    for &block in fixes.stray_csums.iter() {
        vol.remove_stray_csum(block)?;
    }
    vol.commit()
}

/// Records a corruption error as a problem; other errors stop the check.
fn note_corruption(report: &mut Report, err: EngineError) -> EngineResult<()> {
    match err {
        EngineError::Corrupt { block, reason } => {
            if !report
                .problems
                .iter()
                .any(|p| p.block == block && p.what == reason)
            {
                report.add(block, 0, reason, false)?;
            }
            Ok(())
        }
        other => Err(other),
    }
}

/// Whether directory `dir` has entry `name` -> `ino` at position `index`.
fn has_dir_entry<D: BlockDev>(
    vol: &mut Volume<D>,
    dir: u64,
    index: u64,
    ino: u64,
    name: &[u8],
) -> EngineResult<bool> {
    let entry = vol.lookup(Tree::FS, &Key::new(dir, kind::DIR_INDEX, index))?;
    Ok(entry
        .map(|e| inode::decode_dirents(&e, dir))
        .transpose()?
        .is_some_and(|e| e.iter().any(|(i, _, n)| *i == ino && n.as_slice() == name)))
}

/// Whether the `XATTR_SPILL` item at `offset` of inode `ino` is a piece of a spilled value
/// an attribute names (see [`inode::xattr_spill_key`]).
fn xattr_piece_is_named<D: BlockDev>(
    vol: &mut Volume<D>,
    ino: u64,
    offset: u64,
) -> EngineResult<bool> {
    let (hash, slot, part) = (offset >> 32, (offset >> 16) as u16, offset as u16);
    let Some(item) = vol.lookup(Tree::FS, &Key::new(ino, kind::XATTR, hash))? else {
        return Ok(false);
    };
    let named = inode::decode_xattrs(&item, ino)?.iter().any(|e| {
        matches!(e.value, inode::XattrValue::Spilled { len, slot: s }
            if s == slot && part < inode::xattr_spill_parts(len))
    });
    Ok(named)
}

fn bump(map: &mut U64Map<u64>, block: u64) -> EngineResult<bool> {
    let first = !map.contains_key(block);
    let n = map.get(block).copied().unwrap_or(0).saturating_add(1);
    map.insert(block, n)?;
    Ok(first)
}

/// Visits every block below `root` (of tree `owner`) once, verifying every copy against
/// what its parent says of it, and counting references.
fn walk_tree<D: BlockDev>(
    vol: &mut Volume<D>,
    root: &NodeRef,
    owner: u64,
    repair: bool,
    expected: &mut U64Map<u64>,
    report: &mut Report,
) -> EngineResult<()> {
    let mut stack: FVec<NodeRef> = FVec::new();
    let mut visited: U64Map<()> = U64Map::new();
    stack.try_push(*root)?;
    while let Some(at) = stack.pop() {
        let block = at.block;
        if visited.insert(block, ())?.is_some() {
            continue;
        }
        report.blocks = report.blocks.saturating_add(1);
        let copies = match vol.map_block(block) {
            Ok(c) => c,
            Err(err) => {
                report.add(block, 0, corrupt_what(&err), false)?;
                continue;
            }
        };
        let mut any_good = false;
        let mut any_bad = false;
        for copy in copies.iter() {
            match vol.read_copy(&at, owner, copy) {
                Ok(Some(_)) => any_good = true,
                Ok(None) => {}
                Err(err) => {
                    any_bad = true;
                    report.add(block, copy.devid, corrupt_what(&err), false)?;
                }
            }
        }
        if any_bad && any_good && repair && vol.repair_block(&at, owner).is_ok() {
            for p in report.problems.iter_mut().filter(|p| p.block == block) {
                p.repaired = true;
            }
        }
        if !any_good {
            continue;
        }
        let children = match vol.read_node(&at, owner) {
            Ok(node) => child_refs(node)?,
            Err(_) => FVec::new(),
        };
        for child in children.iter() {
            if bump(expected, child.block)? {
                stack.try_push(*child)?;
            }
        }
    }
    Ok(())
}

/// Compares the space map with the references counted while walking.
fn check_refcounts<D: BlockDev>(
    vol: &mut Volume<D>,
    expected: &U64Map<u64>,
    repair: bool,
    fixes: &mut Fixes,
    report: &mut Report,
) -> EngineResult<()> {
    // Every referenced block has the right count.
    let blocks = expected.sorted_keys()?;
    for &b in blocks.iter() {
        let want = expected.get(b).copied().unwrap_or(0);
        match vol.stored_refcount(b) {
            Ok(have) if have == want => {}
            Ok(have) if have < want => fixes.refcount(
                report,
                b,
                want,
                "reference count lower than the references to the block",
            )?,
            Ok(_) => fixes.refcount(
                report,
                b,
                want,
                "reference count higher than the references to the block",
            )?,
            Err(err) => report.add(b, 0, corrupt_what(&err), false)?,
        }
    }
    // Every counted block is referenced (no leaks), and usage adds up.
    let chunks: FVec<(u64, u64, Kind)> = {
        let mut v = FVec::new();
        for c in vol.chunks().iter() {
            v.try_push((c.logical, c.length, c.kind))?;
        }
        v
    };
    let mut total_used = 0u64;
    for &(logical, length, _) in chunks.iter() {
        let mut used = 0u64;
        let mut bitmaps = vol.range(
            Tree::SPACE,
            Key::new(logical, item::BITMAP, 0),
            Key::new(logical, item::BITMAP, u64::MAX),
        );
        while let Some((k, v)) = vol.next_in(&mut bitmaps)? {
            if v.len() != spacemap::BITMAP_BYTES {
                report.add(logical, 0, "space map bitmap item of the wrong size", false)?;
            }
            let Some(base) = k.offset.checked_mul(spacemap::BLOCKS_PER_BITMAP) else {
                report.add(logical, 0, "space map bitmap index out of range", false)?;
                continue;
            };
            for e in 0..spacemap::BLOCKS_PER_BITMAP {
                if spacemap::get_entry(&v, e as usize) == 0 {
                    continue;
                }
                // The block's offset in its chunk, if it is inside it.
                let inside = base
                    .checked_add(e)
                    .and_then(|n| n.checked_mul(BLOCK))
                    .filter(|&off| off < length);
                let Some(block) = inside.and_then(|off| logical.checked_add(off)) else {
                    report.add(
                        logical,
                        0,
                        "space map entry beyond the end of its chunk",
                        false,
                    )?;
                    continue;
                };
                used = used.saturating_add(BLOCK);
                if !expected.contains_key(block) {
                    fixes.refcount(
                        report,
                        block,
                        0,
                        "block counted in the space map but not referenced (leak)",
                    )?;
                }
            }
        }
        let bg = vol.lookup(Tree::SPACE, &Key::new(logical, item::BLOCK_GROUP, 0))?;
        match bg.as_deref().and_then(|d| bytes::u64_at(d, 0)) {
            Some(n) if n == used => {}
            found => {
                let what = if found.is_some() {
                    "chunk usage differs from its space map"
                } else {
                    "chunk has no block group item"
                };
                report.add(logical, 0, what, repair)?;
                fixes.usage.try_push((logical, used))?;
            }
        }
        total_used = total_used.saturating_add(used);
    }
    if vol.superblock().bytes_used != total_used {
        report.add(
            format::SUPERBLOCK_OFFSET,
            0,
            "superblock bytes used differs from the space map",
            repair,
        )?;
        fixes.superblock = true;
    }
    Ok(())
}

/// Checksum items belong to referenced data blocks.
fn check_csums<D: BlockDev>(
    vol: &mut Volume<D>,
    expected: &U64Map<u64>,
    fixes: &mut Fixes,
    report: &mut Report,
) -> EngineResult<()> {
    let mut covered_to = 0u64;
    for &(start, count) in vol.csum_runs()?.iter() {
        if count == 0 {
            report.add(start, 0, "malformed data checksum item", false)?;
            continue;
        }
        if start < covered_to {
            report.add(start, 0, "data checksum items overlap", false)?;
        }
        for n in 0..count {
            let block = start.saturating_add(n.saturating_mul(BLOCK));
            if !expected.contains_key(block) {
                fixes.refcount_problems.try_push(report.problems.len())?;
                fixes.stray_csums.try_push(block)?;
                report.add(block, 0, "checksum of an unreferenced block", false)?;
            }
        }
        covered_to = start.saturating_add(count.saturating_mul(BLOCK));
    }
    Ok(())
}

/// Chunks against device extents: every stripe has its extent, extents do not overlap each
/// other, the reserved areas or the end of their device, and there are no orphans.
fn check_chunks<D: BlockDev>(vol: &mut Volume<D>, report: &mut Report) -> EngineResult<()> {
    let mut extents: FVec<(u64, u64, u64, u64)> = FVec::new(); // devid, physical, chunk, len
    let mut items = vol.range(Tree::DEV, Key::MIN, Key::MAX);
    while let Some((k, v)) = vol.next_in(&mut items)? {
        if k.kind == item::DEV_EXTENT {
            match (bytes::u64_at(&v, 0), bytes::u64_at(&v, 8)) {
                (Some(chunk), Some(len)) => extents.try_push((k.objectid, k.offset, chunk, len))?,
                _ => report.add(k.offset, k.objectid, "short device extent item", false)?,
            }
        }
    }
    let mut matched: FVec<bool> = FVec::new();
    matched.try_resize(extents.len(), false)?;
    for chunk in vol.chunks().iter() {
        let size = chunk.stripe_size();
        for s in chunk.stripes.iter() {
            let found = extents.iter().position(|&(d, p, c, l)| {
                d == s.devid && p == s.physical && c == chunk.logical && l == size
            });
            match found.and_then(|i| matched.get_mut(i)) {
                Some(m) => *m = true,
                None => report.add(
                    chunk.logical,
                    s.devid,
                    "chunk stripe without its device extent",
                    false,
                )?,
            }
        }
    }
    for (i, &(devid, physical, _, len)) in extents.iter().enumerate() {
        if !matched.get(i).copied().unwrap_or(false) {
            report.add(physical, devid, "device extent without a chunk", false)?;
        }
        let Some(end) = physical.checked_add(len) else {
            report.add(
                physical,
                devid,
                "device extent past the end of the device address space",
                false,
            )?;
            continue;
        };
        let dev_size = vol
            .devices()
            .iter()
            .find(|d| d.devid == devid)
            .map(|d| d.size);
        match dev_size {
            Some(size) if end <= size => {}
            Some(_) => report.add(
                physical,
                devid,
                "device extent past the end of its device",
                false,
            )?,
            None => report.add(physical, devid, "device extent on an unknown device", false)?,
        }
        for &(rs, rl) in format::RESERVED_RANGES.iter() {
            if physical < rs.saturating_add(rl) && rs < end {
                report.add(
                    physical,
                    devid,
                    "device extent overlaps a superblock area",
                    false,
                )?;
            }
        }
        for &(d2, p2, _, l2) in extents.iter().skip(i.saturating_add(1)) {
            // An extent whose end overflows is reported in its own turn.
            let meets = p2.checked_add(l2).is_some_and(|p2_end| physical < p2_end);
            if d2 == devid && meets && p2 < end {
                report.add(physical, devid, "device extents overlap", false)?;
            }
        }
    }
    Ok(())
}

/// What one inode's items say, gathered while walking the fs tree.
#[derive(Default)]
struct InodeFacts {
    inode: Option<Inode>,
    names: u64,
    parents: FVec<u64>,
    subdirs: u64,
    entries: u64,
    extent_end: u64,
}

/// Files and directories: link counts against names, directory entries against their
/// index items and back references, extents (no overlaps), every copy of every data block
/// against its checksum (rewritten from a good copy with `repair`), and the data references
/// the extents imply (added to `expected`).
fn check_fs_tree<D: BlockDev>(
    vol: &mut Volume<D>,
    expected: &mut U64Map<u64>,
    repair: bool,
    fixes: &mut Fixes,
    report: &mut Report,
) -> EngineResult<()> {
    // Orphans (unlinked while open) first: the inodes they name may have no names.
    let mut orphans: U64Map<bool> = U64Map::new();
    let mut orphan_items = vol.range(Tree::FS, inode::orphan_key(0), inode::orphan_key(u64::MAX));
    while let Some((k, _)) = vol.next_in(&mut orphan_items)? {
        orphans.insert(k.offset, false)?;
    }
    let mut items = vol.range(
        Tree::FS,
        Key::MIN,
        Key::new(inode::ORPHAN_OBJECTID, 0, 0)
            .predecessor()
            .unwrap_or(Key::MIN),
    );
    let mut facts = InodeFacts::default();
    let mut current: Option<u64> = None;
    while let Some((k, v)) = vol.next_in(&mut items)? {
        if current != Some(k.objectid) {
            if let Some(ino) = current {
                let orphan = orphans.get_mut(ino).map(|seen| *seen = true).is_some();
                finish_inode(ino, &facts, orphan, repair, fixes, report)?;
            }
            current = Some(k.objectid);
            facts = InodeFacts::default();
        }
        let ino = k.objectid;
        match k.kind {
            kind::INODE => facts.inode = Some(Inode::decode(ino, &v, ino)?),
            kind::INODE_REF => {
                let refs = inode::decode_refs(&v, ino)?;
                facts.names = facts.names.saturating_add(refs.len() as u64);
                facts.parents.try_push(k.offset)?;
                for (index, name) in refs.iter() {
                    if !has_dir_entry(vol, k.offset, *index, ino, name)? {
                        report.add(ino, 0, "back reference without its directory entry", false)?;
                    }
                }
            }
            kind::INODE_EXTREF => {
                let refs = inode::decode_extrefs(&v, ino)?;
                facts.names = facts.names.saturating_add(refs.len() as u64);
                for (parent, index, name) in refs.iter() {
                    if inode::extref_hash(*parent, name) != k.offset {
                        report.add(
                            ino,
                            0,
                            "extended back reference under another name's hash",
                            false,
                        )?;
                    }
                    if !has_dir_entry(vol, *parent, *index, ino, name)? {
                        report.add(ino, 0, "back reference without its directory entry", false)?;
                    }
                }
            }
            kind::DIR_INDEX => {
                facts.entries = facts.entries.saturating_add(1);
                for (child, file_type, name) in inode::decode_dirents(&v, ino)?.iter() {
                    if u32::from(*file_type) << 12 == inode::S_IFDIR {
                        facts.subdirs = facts.subdirs.saturating_add(1);
                    }
                    let hashed = vol.lookup(
                        Tree::FS,
                        &Key::new(ino, kind::DIR_ITEM, inode::name_hash(name)),
                    )?;
                    let ok = hashed
                        .map(|h| inode::decode_dirents(&h, ino))
                        .transpose()?
                        .is_some_and(|h| {
                            h.iter()
                                .any(|(i, _, n)| i == child && n.as_slice() == name.as_slice())
                        });
                    if !ok {
                        report.add(
                            ino,
                            0,
                            "directory index entry without its name entry",
                            false,
                        )?;
                    }
                    if vol
                        .lookup(Tree::FS, &Key::new(*child, kind::INODE, 0))?
                        .is_none()
                    {
                        report.add(ino, 0, "directory entry names a missing inode", false)?;
                    }
                }
            }
            kind::XATTR => {
                let entries = match inode::decode_xattrs(&v, ino) {
                    Ok(entries) => entries,
                    Err(EngineError::Corrupt { reason, .. }) => {
                        report.add(ino, 0, reason, false)?;
                        continue;
                    }
                    Err(other) => return Err(other),
                };
                for e in entries.iter() {
                    if inode::name_hash(&e.name) != k.offset {
                        report.add(
                            ino,
                            0,
                            "extended attribute under another name's hash",
                            false,
                        )?;
                    }
                    if let inode::XattrValue::Spilled { len, slot } = e.value {
                        match fs::read_xattr_spill(vol, Tree::FS, ino, k.offset, slot, len) {
                            Ok(_) => {}
                            Err(EngineError::Corrupt { reason, .. }) => {
                                report.add(ino, 0, reason, false)?
                            }
                            Err(other) => return Err(other),
                        }
                    }
                }
            }
            kind::XATTR_SPILL if !xattr_piece_is_named(vol, ino, k.offset)? => {
                report.add(
                    ino,
                    0,
                    "extended attribute value piece without its attribute",
                    false,
                )?;
            }
            kind::EXTENT_DATA => {
                let e = Extent::decode(&v, ino)?;
                if k.offset < facts.extent_end {
                    report.add(ino, 0, "file extents overlap", false)?;
                }
                let Ok(end) = fs::extent_end(k.offset, &e, ino) else {
                    report.add(
                        ino,
                        0,
                        "file extent past the largest file size or off a block boundary",
                        false,
                    )?;
                    continue;
                };
                facts.extent_end = end;
                if e.kind != ExtentKind::Inline && !vol.is_data_range(e.disk, e.len) {
                    report.add(ino, 0, "file extent outside the data chunks", false)?;
                } else if e.kind != ExtentKind::Inline {
                    let mut b = e.disk;
                    while b < e.disk.saturating_add(e.len) {
                        bump(expected, b)?;
                        // Each block once, though extents of several files may share it.
                        if e.kind == ExtentKind::Regular && expected.get(b).copied() == Some(1) {
                            match vol.check_data_block(b, repair) {
                                Ok(bad) => {
                                    for &(devid, fixed) in bad.iter() {
                                        report.add(
                                            b,
                                            devid,
                                            "data block copy fails its checksum",
                                            fixed,
                                        )?;
                                    }
                                }
                                Err(EngineError::Corrupt { block, reason }) => {
                                    report.add(block, 0, reason, false)?
                                }
                                Err(other) => return Err(other),
                            }
                        }
                        b = b.saturating_add(BLOCK);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(ino) = current {
        let orphan = orphans.get_mut(ino).map(|seen| *seen = true).is_some();
        finish_inode(ino, &facts, orphan, repair, fixes, report)?;
    }
    for (ino, seen) in orphans.iter() {
        if !*seen {
            report.add(
                ino,
                0,
                "orphan item for an inode that does not exist",
                false,
            )?;
        }
    }
    Ok(())
}

fn finish_inode(
    ino: u64,
    facts: &InodeFacts,
    orphan: bool,
    repair: bool,
    fixes: &mut Fixes,
    report: &mut Report,
) -> EngineResult<()> {
    let Some(inode) = facts.inode else {
        return report.add(ino, 0, "items of an inode that does not exist", false);
    };
    if inode.is_dir() {
        let want = facts.subdirs.saturating_add(2);
        if u64::from(inode.nlink) != want {
            report.add(
                ino,
                0,
                "directory link count differs from its subdirectories",
                repair,
            )?;
            fixes
                .nlinks
                .try_push((ino, u32::try_from(want).unwrap_or(u32::MAX)))?;
        }
        if ino != inode::ROOT_INO && facts.names != 1 {
            report.add(ino, 0, "directory without exactly one name", false)?;
        }
    } else if u64::from(inode.nlink) != facts.names && facts.names > 0 {
        report.add(
            ino,
            0,
            "link count differs from the names of the inode",
            repair,
        )?;
        fixes
            .nlinks
            .try_push((ino, u32::try_from(facts.names).unwrap_or(u32::MAX)))?;
    }
    if orphan {
        if inode.nlink != 0 || facts.names != 0 {
            report.add(ino, 0, "orphan item for an inode with names", false)?;
        }
    } else if ino != inode::ROOT_INO && facts.names == 0 {
        report.add(
            ino,
            0,
            "inode without a name and without an orphan item",
            false,
        )?;
    }
    Ok(())
}
