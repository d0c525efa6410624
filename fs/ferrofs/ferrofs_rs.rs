// SPDX-License-Identifier: GPL-2.0

//! ferrofs: a copy-on-write, multi-device filesystem.
//!
//! The crate has three layers: [`engine`] decides everything that is on disk and is shared
//! with the userspace tools; `vfs` wraps the kernel API in safe types and holds all `unsafe`
//! code; `fsops` is the filesystem logic that joins the two.

use kernel::prelude::*;

#[path = "engine/mod.rs"]
pub mod engine;
mod fsops;
mod platform;
mod vfs;

module! {
    type: Ferrofs,
    name: "ferrofs",
    author: "ferrofs developers",
    description: "ferrofs: copy-on-write multi-device filesystem",
    license: "GPL",
}

/// The filesystem type's static storage (see [`vfs::fs_type::FsTypeStorage`]).
static FERROFS_TYPE: vfs::fs_type::FsTypeStorage = vfs::fs_type::FsTypeStorage::new();

struct Ferrofs {
    // Dropped in this order: no filesystem can use the bio set once the type is gone.
    _fs_type: vfs::fs_type::Registration,
    _write_bios: vfs::bio::WriteBioSet,
}

impl kernel::Module for Ferrofs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let write_bios = vfs::bio::WriteBioSet::new()?;
        let fs_type = vfs::fs_type::Registration::new::<fsops::Ferrofs>(&FERROFS_TYPE, module)?;
        pr_info!("filesystem type registered\n");
        Ok(Self {
            _fs_type: fs_type,
            _write_bios: write_bios,
        })
    }
}
