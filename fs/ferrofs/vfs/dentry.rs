// SPDX-License-Identifier: GPL-2.0

//! Dentries, directory iteration contexts and other small objects the operations get.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::types::Opaque;

use super::bindings;
use super::file::File;
use super::fs_type::FileSystem;
use super::inode::{CreatedInode, Inode, InodeRef};

/// A dentry the VFS passes to an operation.
///
/// # Invariants
///
/// A dentry of a super block of filesystem type `T`, alive while the value is borrowed,
/// with its name stable.
#[repr(transparent)]
pub(crate) struct Dentry<T: FileSystem>(Opaque<bindings::dentry>, PhantomData<T>);

impl<T: FileSystem> Dentry<T> {
    /// Wraps a dentry pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a dentry of a super block of filesystem type `T` that stays
    /// alive (referenced by the caller) for `'a`, with its name stable (the parent
    /// directory locked, as the VFS does around directory operations).
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dentry) -> &'a Self {
        // SAFETY: transparent wrapper (the marker takes no room); validity for `'a`, and
        // the type, are the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The name.
    pub(crate) fn name(&self) -> &[u8] {
        let mut len = 0u32;
        // SAFETY: the dentry is live and its name stable (type invariant).
        let ptr = unsafe { bindings::ferrofs_dentry_name(self.as_ptr(), &mut len) };
        if ptr.is_null() {
            return &[];
        }
        // SAFETY: `d_name` points to `len` bytes that stay put while the name is stable.
        unsafe { core::slice::from_raw_parts(ptr, len as usize) }
    }

    /// The inode, if the dentry is positive.
    pub(crate) fn inode(&self) -> Option<&Inode<T>> {
        // SAFETY: the dentry is live; `d_inode` reads its inode pointer.
        let ptr = unsafe { bindings::ferrofs_d_inode(self.as_ptr()) };
        // SAFETY: a positive dentry holds its inode alive while it is alive; the inode is
        // of the dentry's super block, a `T` one (invariant).
        NonNull::new(ptr).map(|p| unsafe { Inode::from_raw(p.as_ptr()) })
    }

    /// Makes a negative dentry name a new inode.
    pub(crate) fn instantiate_new(&self, inode: CreatedInode<T>) {
        // SAFETY: the dentry is negative and ours to fill (the VFS called create and co
        // with it); `d_instantiate_new` takes over the reference and unlocks the inode.
        unsafe { bindings::d_instantiate_new(self.as_ptr(), inode.into_raw()) };
    }

    /// Makes a negative dentry name an existing inode.
    pub(crate) fn instantiate(&self, inode: InodeRef<T>) {
        // SAFETY: as above; `d_instantiate` takes over the reference.
        unsafe { bindings::d_instantiate(self.as_ptr(), inode.into_raw()) };
    }

    /// Answers a lookup: binds the dentry to `inode` (or leaves it negative), possibly
    /// returning another dentry to use instead (a directory's existing alias).
    pub(crate) fn splice(&self, inode: Option<InodeRef<T>>) -> *mut bindings::dentry {
        let ptr = inode.map_or(core::ptr::null_mut(), InodeRef::into_raw);
        // SAFETY: the dentry is the one being looked up; `d_splice_alias` takes over the
        // inode reference and returns NULL, an alias or an error pointer.
        unsafe { bindings::d_splice_alias(ptr, self.as_ptr()) }
    }
}

/// The position and output of a `readdir` (`iterate_shared`).
pub(crate) struct DirContext(NonNull<bindings::dir_context>);

impl DirContext {
    /// Wraps the context passed to `iterate_shared`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the live context of the running `iterate_shared` call.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::dir_context) -> Option<Self> {
        NonNull::new(ptr).map(Self)
    }

    /// Emits `.` and `..` of the directory `dir` is open on, if the position is before
    /// them; `false` when the caller's buffer is full.
    pub(crate) fn emit_dots<T: FileSystem>(&mut self, dir: &File<T>) -> bool {
        // SAFETY: the context is live (invariant); `dir` is an open directory.
        unsafe { bindings::ferrofs_dir_emit_dots(dir.as_ptr(), self.0.as_ptr()) }
    }

    /// The position to continue from.
    pub(crate) fn pos(&self) -> i64 {
        // SAFETY: the context is live (invariant).
        unsafe { bindings::ferrofs_dir_pos(self.0.as_ptr()) }
    }

    /// Sets the position to continue from.
    pub(crate) fn set_pos(&mut self, pos: i64) {
        // SAFETY: the context is live (invariant).
        unsafe { bindings::ferrofs_dir_set_pos(self.0.as_ptr(), pos) }
    }

    /// Emits an entry; `false` when the caller's buffer is full.
    pub(crate) fn emit(&mut self, name: &[u8], ino: u64, dtype: u8) -> bool {
        let Ok(len) = i32::try_from(name.len()) else {
            return false;
        };
        // SAFETY: the context is live; `name` holds `len` bytes for the call.
        unsafe {
            bindings::ferrofs_dir_emit(
                self.0.as_ptr(),
                name.as_ptr().cast(),
                len,
                ino,
                u32::from(dtype),
            )
        }
    }
}

/// A `seq_file` being filled by `show_options`.
pub(crate) struct SeqFile(NonNull<bindings::seq_file>);

impl SeqFile {
    /// Wraps the seq_file passed to `show_options`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the live seq_file of the running call.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::seq_file) -> Option<Self> {
        NonNull::new(ptr).map(Self)
    }

    /// Appends `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        // SAFETY: the seq_file is live; `bytes` is readable for its length. A full buffer
        // is recorded in the seq_file, which retries with a larger one.
        unsafe { bindings::seq_write(self.0.as_ptr(), bytes.as_ptr().cast(), bytes.len()) };
    }
}

/// A scope in which allocations do not recurse into filesystem reclaim: entered around
/// every engine call made under the filesystem lock, so that reclaim never waits for the
/// lock held by the allocating thread.
pub(crate) struct NoFsScope(u32);

impl NoFsScope {
    /// Enters the scope (left when the value is dropped).
    pub(crate) fn enter() -> Self {
        // SAFETY: `memalloc_nofs_save` only updates the current task's flags.
        Self(unsafe { bindings::ferrofs_nofs_save() })
    }
}

impl Drop for NoFsScope {
    fn drop(&mut self) {
        // SAFETY: restores what `enter` saved, on the same task (the value is not `Send`
        // through its use: it lives on the stack of one call).
        unsafe { bindings::ferrofs_nofs_restore(self.0) };
    }
}
