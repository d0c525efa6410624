// SPDX-License-Identifier: GPL-2.0

//! The VFS layer: typed, safe wrappers over the kernel's filesystem API, and the
//! operation traits (`#[vtable]`) a filesystem implements, from which the C operation
//! tables the kernel calls are built: [`fs_type::FileSystem`],
//! [`super_block::SuperOperations`], [`inode_ops::InodeOperations`],
//! [`file::FileOperations`], [`address_space::AddressSpaceOperations`] and
//! [`xattr::XattrHandler`] and [`export::ExportOperations`].
//!
//! The layer is generic over the filesystem, as the Rust-for-Linux VFS abstractions are:
//! the wrappers carry the filesystem type `T` ([`super_block::SuperBlock<T>`],
//! [`inode::Inode<T>`], `Dentry<T>`, `File<T>`, `Mapping<T>`, the folios), each
//! operation trait names the filesystem it serves (`type FileSystem`), and a table can
//! only be installed in objects of that filesystem. So each super block's data is typed,
//! [`fs_type::FileSystem::Data`], borrowed with [`super_block::SuperBlock::info`], and
//! nothing here names the filesystem built on it (`fsops`).
//!
//! All `unsafe` code of ferrofs lives under this module; the filesystem logic above it
//! (`fsops`) and the engine below it are safe Rust.

/// An operation table's entry for an optional callback: `Some(callback)` if `present`
/// (for a `#[vtable]` trait: `T::HAS_…`), else `None`, so the VFS applies its default.
macro_rules! optional {
    ($present:expr, $callback:expr) => {
        if $present {
            Some($callback)
        } else {
            None
        }
    };
}

pub(crate) mod acl;
pub(crate) mod address_space;
pub(crate) mod bindings;
pub(crate) mod bio;
pub(crate) mod blockdev;
pub(crate) mod buffer;
pub(crate) mod dentry;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod file;
pub(crate) mod folio;
pub(crate) mod fs_type;
pub(crate) mod inode;
pub(crate) mod inode_ops;
pub(crate) mod iov;
pub(crate) mod super_block;
pub(crate) mod task;
pub(crate) mod thread;
pub(crate) mod xattr;
