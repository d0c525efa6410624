// SPDX-License-Identifier: GPL-2.0

//! The background commit thread of a mounted filesystem.

use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;

use super::bindings;

/// What a commit thread works for: a mounted filesystem's state.
pub(crate) trait PeriodicCommit: Send + Sync + 'static {
    /// Seconds to sleep before the next commit (read again after each).
    fn period_secs(&self) -> u32;
    /// Commits what changed since the last commit.
    fn commit(&self) -> Result;
}

/// A kernel thread that commits its filesystem every [`PeriodicCommit::period_secs`]
/// seconds; stopped (and waited for) when dropped. The thread owns a reference to the
/// state `T` it commits and one to this
/// module, so that the state and the code it runs last as long as the thread whatever
/// becomes of this handle (a handle leaked with `mem::forget` leaks the thread, its state
/// and a module reference, nothing worse).
///
/// # Invariants
///
/// `task` is a kernel thread made by [`CommitThread::start`] and not stopped yet; it runs
/// [`CommitThread::run`], which only ends, with 0, once the thread is stopped. `info` is
/// the pointer [`Arc::into_raw`] gave for the thread: `run` takes that reference over when
/// it starts, with the module reference `start` took; until then, and for good if the
/// thread is stopped before it ever ran (kthread then never calls `run`), both are this
/// handle's.
pub(crate) struct CommitThread<T: PeriodicCommit> {
    task: NonNull<bindings::task_struct>,
    info: *const T,
    _state: PhantomData<Arc<T>>,
}

// SAFETY: a task pointer may be used (to stop the thread) from any thread, and `info` is
// only turned back into the `Arc<T>` it came from, which may go to any thread (`T` is
// `Send + Sync`).
unsafe impl<T: PeriodicCommit> Send for CommitThread<T> {}

impl<T: PeriodicCommit> CommitThread<T> {
    /// Starts the thread, with a reference to `info` that it keeps until it ends.
    pub(crate) fn start(name: &CStr, info: Arc<T>) -> Result<Self> {
        // The reference goes to the new thread.
        let data = Arc::into_raw(info);
        // SAFETY: takes a reference to this module (which is loaded: its code runs here),
        // for the thread; given back by the thread as it ends, or below, or by `drop`.
        unsafe { bindings::ferrofs_module_get() };
        // SAFETY: `run` gets `data` and takes over its reference count (see `run`); `name`
        // is NUL-terminated and copied by kthread_run.
        let task = unsafe {
            bindings::ferrofs_kthread_run(
                Some(Self::run),
                data.cast_mut().cast(),
                name.as_char_ptr(),
            )
        };
        // SAFETY: only inspects the pointer value.
        if unsafe { bindings::ferrofs_is_err(task.cast()) } {
            // SAFETY: as above.
            let err = unsafe { bindings::ferrofs_ptr_err(task.cast()) };
            // SAFETY: kthread_run failed, so no thread calls `run` with `data`: the
            // reference count `into_raw` left is still ours, and is given back once.
            drop(unsafe { Arc::from_raw(data) });
            // SAFETY: the module reference taken above, which no thread took over.
            unsafe { bindings::ferrofs_module_put() };
            return Err(Error::from_errno(i32::try_from(err).unwrap_or(-12)));
        }
        // kthread_run gives a task or an error, never NULL; were it NULL, the references
        // would stay with whatever thread might run (leaked, never freed under it).
        let task = NonNull::new(task).ok_or(ENOMEM)?;
        // INVARIANT: a thread that runs `run` with `data`, not stopped.
        Ok(Self {
            task,
            info: data,
            _state: PhantomData,
        })
    }

    /// The thread: sleep, commit, until stopped; then it ends with 0, putting its
    /// references.
    ///
    /// # Safety
    ///
    /// `data` is the pointer `start` got from [`Arc::into_raw`] for this thread, and this
    /// function runs at most once for it (kthread calls it once, or never).
    unsafe extern "C" fn run(data: *mut ffi::c_void) -> ffi::c_int {
        // SAFETY: see above: the reference count is ours now (the handle takes it back only
        // if the thread never ran, see `drop`), and so is the module reference.
        let info = unsafe { Arc::from_raw(data.cast::<T>()) };
        loop {
            // SAFETY: sleeping in a kernel thread; `kthread_stop` wakes it early.
            unsafe {
                bindings::schedule_timeout_interruptible(bindings::ferrofs_secs_to_jiffies(
                    info.period_secs(),
                ))
            };
            // SAFETY: called from the kernel thread itself.
            if unsafe { bindings::kthread_should_stop() } {
                break;
            }
            if let Err(err) = info.commit() {
                pr_err!("background commit failed (errno {})\n", -err.to_errno());
            }
        }
        drop(info);
        // SAFETY: the thread's module reference (see above), put as the thread ends, in
        // core kernel code that never returns here: the module may go at once.
        unsafe { bindings::ferrofs_module_put_and_kthread_exit(0) }
    }
}

impl<T: PeriodicCommit> Drop for CommitThread<T> {
    fn drop(&mut self) {
        // SAFETY: by the invariant the thread is not stopped yet and only ends when stopped,
        // so the task is still alive; `kthread_stop` wakes it and waits for it to end.
        let ret = unsafe { bindings::kthread_stop(self.task.as_ptr()) };
        // `run` ends with 0; -EINTR is kthread's answer for a thread stopped before it ran.
        if ret == EINTR.to_errno() {
            // SAFETY: `run` never ran, so the reference count of `info` (from `into_raw` in
            // `start`) is still this handle's (invariant), given back once, here.
            drop(unsafe { Arc::from_raw(self.info) });
            // SAFETY: likewise the module reference `start` took for the thread.
            unsafe { bindings::ferrofs_module_put() };
        }
    }
}
