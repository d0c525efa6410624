// SPDX-License-Identifier: GPL-2.0

//! Mounting: find and check the ferrofs superblock of a device.

use kernel::c_str;
use kernel::prelude::*;

use crate::engine::format::{self, Probe};
use crate::vfs::error::{eopnotsupp, from_engine};
use crate::vfs::fs_type::FileSystem;
use crate::vfs::super_block::NewSuperBlock;

/// The ferrofs filesystem type.
pub(crate) struct Ferrofs;

impl FileSystem for Ferrofs {
    const NAME: &'static CStr = c_str!("ferrofs");

    fn fill_super(sb: &mut NewSuperBlock<'_>) -> Result {
        if let Err(err) = sb.set_block_size(format::BLOCK_SIZE) {
            pr_err!(
                "{}: device cannot use {}-byte blocks\n",
                sb.id(),
                format::BLOCK_SIZE
            );
            return Err(err);
        }
        let block = match sb.read_block(format::SUPERBLOCK_OFFSET / u64::from(format::BLOCK_SIZE)) {
            Ok(block) => block,
            Err(err) => {
                pr_err!(
                    "{}: cannot read the superblock at byte {} (device too small or I/O error)\n",
                    sb.id(),
                    format::SUPERBLOCK_OFFSET
                );
                return Err(err);
            }
        };
        match format::probe(block.data()) {
            Probe::NotFerrofs => {
                pr_err!(
                    "{}: no ferrofs superblock found (bad magic at byte {})\n",
                    sb.id(),
                    format::SUPERBLOCK_OFFSET
                );
                Err(EINVAL)
            }
            Probe::Damaged(err) => {
                pr_err!(
                    "{}: superblock at byte {} is damaged: {}\n",
                    sb.id(),
                    format::SUPERBLOCK_OFFSET,
                    err.message()
                );
                Err(from_engine(err))
            }
            Probe::Ferrofs { version } => {
                pr_err!(
                    "{}: format version {} found, but this build cannot mount filesystems yet\n",
                    sb.id(),
                    version
                );
                Err(eopnotsupp())
            }
        }
    }
}
