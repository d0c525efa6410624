// SPDX-License-Identifier: GPL-2.0

//! A file's page cache (`address_space`), and the operations that move its folios to and
//! from the filesystem (`address_space_operations`).

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use kernel::error::VTABLE_DEFAULT_ERROR;
use kernel::ffi;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;
use super::file::File;
use super::folio::{LockedFolio, Readahead, WritebackControl};
use super::fs_type::FileSystem;
use super::inode::Inode;
use super::iov::IovIter;

/// A run of neighbouring pages of a file: `count` pages from page `start`.
type PageRun = bindings::ferrofs_page_run;

/// The page cache of a file of filesystem type `T`.
///
/// # Invariants
///
/// The mapping of an inode of a super block of filesystem type `T`, alive while the value
/// is borrowed.
#[repr(transparent)]
pub(crate) struct Mapping<T: FileSystem>(Opaque<bindings::address_space>, PhantomData<T>);

impl<T: FileSystem> Mapping<T> {
    /// Wraps a mapping pointer passed by the VFS.
    ///
    /// # Safety
    ///
    /// `ptr` must be the mapping of an inode of a super block of filesystem type `T`,
    /// alive for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::address_space) -> &'a Self {
        // SAFETY: transparent wrapper (the marker takes no room); validity for `'a`, and
        // the type, are the caller's duty.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw pointer, for the bindings.
    pub(crate) fn as_ptr(&self) -> *mut bindings::address_space {
        self.0.get()
    }

    /// The file whose page cache this is.
    pub(crate) fn host(&self) -> &Inode<T> {
        // SAFETY: the mapping is live (invariant), and so is its host, an inode of a `T`
        // super block, while it is.
        unsafe { Inode::from_raw(bindings::ferrofs_mapping_host(self.as_ptr())) }
    }

    /// Calls `f(start, count)` for each run of pages from page `first` on whose data is
    /// dirty or under writeback, in order, until `f` returns `false` or fails.
    pub(crate) fn for_each_unwritten_run<E>(
        &self,
        first: u64,
        mut f: impl FnMut(u64, u64) -> core::result::Result<bool, E>,
    ) -> core::result::Result<(), E> {
        let mut runs: [PageRun; 16] = core::array::from_fn(|_| PageRun { start: 0, count: 0 });
        let max = runs.len() as u32;
        let mut at = ffi::c_ulong::try_from(first).unwrap_or(ffi::c_ulong::MAX);
        loop {
            // SAFETY: the mapping is live (invariant); `runs` has room for `max` runs, and
            // the helper writes no more than that.
            let filled = unsafe {
                bindings::ferrofs_mapping_unwritten_runs(
                    self.as_ptr(),
                    &mut at,
                    runs.as_mut_ptr(),
                    max,
                )
            };
            let filled = (filled as usize).min(runs.len());
            for run in runs.iter().take(filled) {
                if !f(run.start, run.count)? {
                    return Ok(());
                }
            }
            // A full batch may have more after it, from the page left in `at`.
            if filled < runs.len() {
                return Ok(());
            }
        }
    }

    /// The folio a buffered write at `pos` goes into, locked and referenced (created if
    /// not cached).
    pub(crate) fn grab_write_folio(&self, pos: u64) -> Result<WriteFolio<T>> {
        let pos = i64::try_from(pos).map_err(|_| EFBIG)?;
        // SAFETY: the mapping is live (invariant); the helper returns a locked, referenced
        // folio or an error pointer.
        let folio = unsafe { bindings::ferrofs_grab_write_folio(self.as_ptr(), pos) };
        // SAFETY: only inspects the pointer value.
        if unsafe { bindings::ferrofs_is_err(folio.cast()) } {
            // SAFETY: as above.
            let err = unsafe { bindings::ferrofs_ptr_err(folio.cast()) };
            return Err(Error::from_errno(
                i32::try_from(err).unwrap_or(ENOMEM.to_errno()),
            ));
        }
        // SAFETY: the folio is locked and referenced by us (above), in this mapping, `T`'s.
        let locked = unsafe { LockedFolio::from_raw(folio) }.ok_or(ENOMEM)?;
        Ok(WriteFolio(locked))
    }
}

/// A locked folio with a reference of its own: the folio of a buffered write, from
/// `write_begin` to `write_end`. Dropping it unlocks it and drops the reference.
pub(crate) struct WriteFolio<T: FileSystem>(LockedFolio<T>);

impl<T: FileSystem> Deref for WriteFolio<T> {
    type Target = LockedFolio<T>;

    fn deref(&self) -> &LockedFolio<T> {
        &self.0
    }
}

impl<T: FileSystem> WriteFolio<T> {
    /// Hands the folio, locked and referenced, to the VFS (until `write_end`).
    fn into_raw(self) -> *mut bindings::folio {
        let ptr = self.0.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

impl<T: FileSystem> Drop for WriteFolio<T> {
    fn drop(&mut self) {
        let folio = self.0.as_ptr();
        // SAFETY: we hold the lock and a reference (type invariant) and give both up once.
        unsafe {
            bindings::folio_unlock(folio);
            bindings::ferrofs_folio_put(folio);
        }
    }
}

/// The operations of a file's page cache (`address_space_operations`). Each method the
/// implementation leaves out is absent from the table.
#[vtable]
pub(crate) trait AddressSpaceOperations {
    /// The filesystem whose files' page cache this is.
    type FileSystem: FileSystem;

    /// `read_folio`: fills the folio and unlocks it.
    fn read_folio(_folio: LockedFolio<Self::FileSystem>) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `readahead`: fills (and unlocks) the folios of the window it can.
    fn readahead(_rac: Readahead<Self::FileSystem>) {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `writepages`: writes the dirty folios `wbc` asks for.
    fn writepages(_mapping: &Mapping<Self::FileSystem>, _wbc: &WritebackControl) -> Result {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write_begin`: the folio a buffered write of `len` bytes at `pos` copies into,
    /// ready for it (what the copy does not overwrite read in).
    fn write_begin(
        _mapping: &Mapping<Self::FileSystem>,
        _pos: u64,
        _len: usize,
    ) -> Result<WriteFolio<Self::FileSystem>> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write_end`: `copied` of `len` bytes arrived at `pos`; returns how many count.
    fn write_end(
        _folio: &WriteFolio<Self::FileSystem>,
        _pos: u64,
        _len: usize,
        _copied: usize,
    ) -> usize {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `direct_IO` (an `O_DIRECT` read or write): moves the bytes of `iter` at `pos` of
    /// `file` between the caller's memory and the filesystem, not through the page cache
    /// (which the VFS wrote back, and for a write invalidated, over the range first).
    /// Returns the bytes done; 0 has the VFS do the request through the page cache
    /// instead. The VFS then moves the file position and, past the end, the size. Its
    /// presence lets files be opened with `O_DIRECT`.
    fn direct_io(
        _file: &File<Self::FileSystem>,
        _pos: i64,
        _iter: &mut IovIter<'_>,
    ) -> Result<usize> {
        kernel::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The `address_space_operations` table of `T`, and its C entry points.
///
/// Each entry point is called by the VFS, as the table promises it, for the page cache
/// of a file whose inode is alive for the call, of filesystem `T::FileSystem` (only
/// [`super::inode::InitInode`] of that filesystem installs the table); that is the
/// `# Safety` contract of each below.
pub(crate) struct AddressSpaceTable<T>(PhantomData<T>);

impl<T: AddressSpaceOperations> AddressSpaceTable<T> {
    /// The table, for `i_mapping->a_ops`.
    pub(crate) const OPS: bindings::address_space_operations = bindings::address_space_operations {
        read_folio: optional!(T::HAS_READ_FOLIO, Self::read_folio),
        readahead: optional!(T::HAS_READAHEAD, Self::readahead),
        writepages: optional!(T::HAS_WRITEPAGES, Self::writepages),
        dirty_folio: Some(bindings::filemap_dirty_folio),
        write_begin: optional!(T::HAS_WRITE_BEGIN, Self::write_begin),
        write_end: optional!(T::HAS_WRITE_END, Self::write_end),
        error_remove_folio: Some(bindings::generic_error_remove_folio),
        direct_IO: optional!(T::HAS_DIRECT_IO, Self::direct_io),
        // SAFETY: an all-zero `address_space_operations` is valid: every other
        // callback is absent.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `folio` is a locked folio of the page cache.
    unsafe extern "C" fn read_folio(
        _file: *mut bindings::file,
        folio: *mut bindings::folio,
    ) -> ffi::c_int {
        // SAFETY: see above.
        let Some(folio) = (unsafe { LockedFolio::from_raw(folio) }) else {
            return EINVAL.to_errno();
        };
        T::read_folio(folio).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `rac` is the request, live for the call.
    unsafe extern "C" fn readahead(rac: *mut bindings::readahead_control) {
        // SAFETY: see above.
        if let Some(rac) = unsafe { Readahead::from_raw(rac) } {
            T::readahead(rac);
        }
    }

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `wbc` is the request, live for the call.
    unsafe extern "C" fn writepages(
        mapping: *mut bindings::address_space,
        wbc: *mut bindings::writeback_control,
    ) -> ffi::c_int {
        // SAFETY: see above.
        let Some(wbc) = (unsafe { WritebackControl::from_raw(wbc) }) else {
            return EINVAL.to_errno();
        };
        // SAFETY: see above.
        let mapping = unsafe { Mapping::from_raw(mapping) };
        T::writepages(mapping, &wbc).map_or_else(|e| e.to_errno(), |()| 0)
    }

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `foliop` is the caller's out-parameter.
    unsafe extern "C" fn write_begin(
        _file: *mut bindings::file,
        mapping: *mut bindings::address_space,
        pos: bindings::loff_t,
        len: ffi::c_uint,
        foliop: *mut *mut bindings::folio,
        _fsdata: *mut *mut ffi::c_void,
    ) -> ffi::c_int {
        // SAFETY: see above.
        let mapping = unsafe { Mapping::from_raw(mapping) };
        let (Ok(pos), Ok(len)) = (u64::try_from(pos), usize::try_from(len)) else {
            return EINVAL.to_errno();
        };
        match T::write_begin(mapping, pos, len) {
            Ok(folio) => {
                // SAFETY: the out-parameter is the caller's; the folio stays locked and
                // referenced until `write_end`, which takes both back.
                unsafe { *foliop = folio.into_raw() };
                0
            }
            Err(err) => err.to_errno(),
        }
    }

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `folio` is the one `write_begin` returned, still
    /// locked and referenced.
    unsafe extern "C" fn write_end(
        _file: *mut bindings::file,
        _mapping: *mut bindings::address_space,
        pos: bindings::loff_t,
        len: ffi::c_uint,
        copied: ffi::c_uint,
        folio: *mut bindings::folio,
        _fsdata: *mut ffi::c_void,
    ) -> ffi::c_int {
        // SAFETY: see above: the lock and reference `write_begin` handed out come back.
        let Some(locked) = (unsafe { LockedFolio::from_raw(folio) }) else {
            return EINVAL.to_errno();
        };
        let folio = WriteFolio(locked);
        let pos = u64::try_from(pos).unwrap_or(0);
        let counted = T::write_end(&folio, pos, len as usize, copied as usize);
        drop(folio);
        ffi::c_int::try_from(counted).unwrap_or(0)
    }

    /// # Safety
    ///
    /// See [`AddressSpaceTable`]; `iocb` is a request on a file open on an inode of this
    /// page cache, and `iter` its memory, both live and the call's for its length.
    unsafe extern "C" fn direct_io(
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: `iocb` is live for the call (see above); the helpers read two fields.
        let (file, pos) = unsafe {
            (
                bindings::ferrofs_kiocb_file(iocb),
                bindings::ferrofs_kiocb_pos(iocb),
            )
        };
        let Some(iter) = NonNull::new(iter) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: the request's file is open for the call, on an inode of this page
        // cache, so of `T::FileSystem` (see above).
        let file = unsafe { File::from_raw(file) };
        // SAFETY: `iter` is the request's memory, live and the call's alone (see above).
        let mut iter = unsafe { IovIter::from_raw(iter) };
        match T::direct_io(file, pos, &mut iter) {
            Ok(done) => isize::try_from(done).unwrap_or(isize::MAX),
            Err(err) => err.to_errno() as isize,
        }
    }
}
