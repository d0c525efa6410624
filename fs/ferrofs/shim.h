/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers for kernel functions that are static inline (or macros) and so
 * have no symbol Rust could call. Each one forwards its arguments, or strings
 * together the few inline calls one operation needs.
 */
#ifndef FERROFS_SHIM_H
#define FERROFS_SHIM_H

#include <linux/types.h>

struct bio;
struct block_device;
struct blk_plug;
struct buffer_head;
struct delayed_call;
struct dentry;
struct dir_context;
struct file;
struct fileattr;
struct folio;
struct fs_context;
struct fs_parameter;
struct inode;
struct iov_iter;
struct kiocb;
struct kstat;
struct path;
struct posix_acl;
struct super_block;
struct task_struct;
struct timespec64;
struct address_space;
struct readahead_control;
struct writeback_control;

struct buffer_head *ferrofs_sb_bread(struct super_block *sb, sector_t block);
void ferrofs_brelse(struct buffer_head *bh);
const char *ferrofs_sb_id(const struct super_block *sb);

/* Block devices: bios with pages of their own, writes counted per device. */
struct ferrofs_inflight;
struct ferrofs_inflight *ferrofs_inflight_alloc(void);
void ferrofs_inflight_free(struct ferrofs_inflight *inflight);
bool ferrofs_inflight_busy(struct ferrofs_inflight *inflight);
int ferrofs_inflight_wait(struct ferrofs_inflight *inflight, bool take);
struct bio *ferrofs_bio_alloc(struct block_device *bdev, u16 nr_pages, bool write, bool fua,
			      u64 sector);
int ferrofs_bio_add_page(struct bio *bio, const void *src, u32 len);
void ferrofs_bio_copy_out(struct bio *bio, void *dst, size_t len);
void ferrofs_bio_free(struct bio *bio);
void ferrofs_bio_submit_tracked(struct bio *bio, struct ferrofs_inflight *inflight);
struct bio *ferrofs_read_bio_alloc(struct block_device *bdev, u16 nr_blocks, u64 sector);
int ferrofs_read_bio_add_folio(struct bio *bio, struct folio *folio, u32 csum);
void ferrofs_read_bio_submit(struct bio *bio, struct ferrofs_inflight *inflight);
void ferrofs_read_bio_drop(struct bio *bio);
int ferrofs_shim_init(void);
void ferrofs_shim_exit(void);
struct ferrofs_write_group;
struct ferrofs_write_group *ferrofs_write_group_alloc(unsigned int max_folios,
						      struct writeback_control *wbc);
void ferrofs_wbc_account_folio(struct writeback_control *wbc, struct folio *folio);
int ferrofs_write_group_add(struct ferrofs_write_group *group, struct folio *folio);
int ferrofs_write_group_submit(struct ferrofs_write_group *group, struct block_device *bdev,
			       u64 sector, unsigned int first, unsigned int count,
			       struct ferrofs_inflight *inflight);
void ferrofs_write_group_finish(struct ferrofs_write_group *group, int err);
int ferrofs_write_group_checksums(struct ferrofs_write_group *group, u32 *sums, unsigned int nr);
void ferrofs_sb_set_stable_writes(struct super_block *sb);
void ferrofs_sb_set_cgroup_writeback(struct super_block *sb);
struct inode *ferrofs_path_inode(const struct path *path);
void ferrofs_stat_set_attributes(struct kstat *stat, u64 attributes, u64 supported);
bool ferrofs_fileattr_has_fsx(const struct fileattr *fa);
int ferrofs_sb_setup_bdi(struct super_block *sb, unsigned int devices);
struct blk_plug *ferrofs_plug_start(void);
void ferrofs_plug_finish(struct blk_plug *plug);
int ferrofs_bdev_flush(struct block_device *bdev);
int ferrofs_bdev_sync_and_invalidate(struct block_device *bdev);
u64 ferrofs_bdev_size(struct block_device *bdev);
/* A new reference to the super block's device file (NULL if none). */
struct file *ferrofs_sb_get_bdev_file(struct super_block *sb);
/* What kill_block_super() does after generic_shutdown_super(): sync and release the device. */
void ferrofs_release_sb_bdev(struct super_block *sb);
struct file *ferrofs_open_bdev(const char *path, bool write, struct super_block *holder);
struct block_device *ferrofs_file_bdev(struct file *file);
long ferrofs_ptr_err(const void *ptr);
bool ferrofs_is_err(const void *ptr);
void *ferrofs_err_ptr(long err);

/* Allocations under a filesystem lock must not recurse into filesystem reclaim. */
unsigned int ferrofs_nofs_save(void);
void ferrofs_nofs_restore(unsigned int flags);

/* Inodes. */
loff_t ferrofs_i_size_read(const struct inode *inode);
void ferrofs_i_size_write(struct inode *inode, loff_t size);
u32 ferrofs_i_uid_read(const struct inode *inode);
u32 ferrofs_i_gid_read(const struct inode *inode);
void ferrofs_i_uid_write(struct inode *inode, u32 uid);
void ferrofs_i_gid_write(struct inode *inode, u32 gid);
void ferrofs_inode_get_times(const struct inode *inode, struct timespec64 *atime,
			     struct timespec64 *mtime, struct timespec64 *ctime);
void ferrofs_inode_set_times(struct inode *inode, const struct timespec64 *atime,
			     const struct timespec64 *mtime, const struct timespec64 *ctime);
bool ferrofs_inode_is_new(const struct inode *inode);
void ferrofs_insert_inode_hash(struct inode *inode);
dev_t ferrofs_decode_dev(u32 dev);
u32 ferrofs_encode_dev(dev_t dev);

/* Dentries and names. */
const unsigned char *ferrofs_dentry_name(const struct dentry *dentry, u32 *len);
struct inode *ferrofs_d_inode(const struct dentry *dentry);
bool ferrofs_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino,
		      unsigned int type);
loff_t ferrofs_dir_pos(const struct dir_context *ctx);
void ferrofs_dir_set_pos(struct dir_context *ctx, loff_t pos);
unsigned long ferrofs_file_cookie(struct file *file);
void ferrofs_file_set_cookie(struct file *file, unsigned long cookie);
void ferrofs_set_delayed_kfree(struct delayed_call *done, void *ptr);
int ferrofs_finish_open_simple(struct file *file);
struct inode *ferrofs_file_inode(const struct file *file);

/* Folios of the page cache. */
loff_t ferrofs_folio_pos(struct folio *folio);
size_t ferrofs_folio_size(struct folio *folio);
struct inode *ferrofs_folio_inode(const struct folio *folio);
struct inode *ferrofs_mapping_host(struct address_space *mapping);
/* A run of pages of a file: [start, start + count). */
struct ferrofs_page_run {
	u64 start;
	u64 count;
};
unsigned int ferrofs_mapping_unwritten_runs(struct address_space *mapping, pgoff_t *index,
					    struct ferrofs_page_run *runs, unsigned int max);
bool ferrofs_folio_test_uptodate(const struct folio *folio);
void ferrofs_folio_mark_uptodate(struct folio *folio);
void ferrofs_folio_copy_in(struct folio *folio, size_t offset, const void *src, size_t len);
void ferrofs_folio_copy_out(void *dst, struct folio *folio, size_t offset, size_t len);
void ferrofs_folio_zero(struct folio *folio, size_t offset, size_t len);
void ferrofs_folio_start_writeback(struct folio *folio);
void ferrofs_folio_put(struct folio *folio);
struct folio *ferrofs_grab_write_folio(struct address_space *mapping, loff_t pos);
void ferrofs_folio_set_error(struct folio *folio, int err);
void ferrofs_folio_redirty(struct writeback_control *wbc, struct folio *folio);
loff_t ferrofs_readahead_pos(struct readahead_control *rac);
size_t ferrofs_readahead_length(struct readahead_control *rac);
struct inode *ferrofs_readahead_inode(struct readahead_control *rac);
struct folio *ferrofs_readahead_folio(struct readahead_control *rac);

/* Mount parameters. */
const char *ferrofs_param_key(const struct fs_parameter *param);
const char *ferrofs_param_string(const struct fs_parameter *param);
bool ferrofs_fc_read_only(const struct fs_context *fc);
void **ferrofs_fc_private(struct fs_context *fc);

/* The background commit thread. */
struct task_struct *ferrofs_kthread_run(int (*fn)(void *), void *data, const char *name);
/*
 * A reference to this module, for a kernel thread running its code: taken before the
 * thread starts, put by the thread as it ends (in core kernel code, never returning into
 * the module), or by its starter if it never ran.
 */
void ferrofs_module_get(void);
void ferrofs_module_put(void);
void __attribute__((noreturn)) ferrofs_module_put_and_kthread_exit(long code);
long ferrofs_secs_to_jiffies(unsigned int secs);
void ferrofs_cond_resched(void);
bool ferrofs_dir_emit_dots(struct file *file, struct dir_context *ctx);
void ferrofs_inode_lock(struct inode *inode);
void ferrofs_inode_unlock(struct inode *inode);

/* POSIX ACLs: the xattr form with ids of the initial namespace, as stored on disk. */
struct posix_acl *ferrofs_posix_acl_from_xattr(const void *value, size_t size);
int ferrofs_posix_acl_to_xattr(const struct posix_acl *acl, void *buf, size_t size);
size_t ferrofs_posix_acl_xattr_size(const struct posix_acl *acl);
void ferrofs_posix_acl_release(struct posix_acl *acl);

/* Direct I/O: the request and the caller's memory it moves. */
struct file *ferrofs_kiocb_file(struct kiocb *iocb);
loff_t ferrofs_kiocb_pos(struct kiocb *iocb);
size_t ferrofs_iov_iter_count(const struct iov_iter *iter);
bool ferrofs_iov_iter_is_source(const struct iov_iter *iter);
unsigned long ferrofs_iov_iter_alignment(const struct iov_iter *iter);
size_t ferrofs_copy_to_iter(const void *addr, size_t bytes, struct iov_iter *iter);
size_t ferrofs_copy_from_iter(void *addr, size_t bytes, struct iov_iter *iter);
size_t ferrofs_iov_iter_zero(size_t bytes, struct iov_iter *iter);
ssize_t ferrofs_dio_read(struct block_device *bdev, u64 offset, struct iov_iter *iter,
			 size_t len, const u32 *csums);

/* syncfs(2) on a super block: sync_filesystem() under s_umount. */
int ferrofs_syncfs(struct super_block *sb);

#endif /* FERROFS_SHIM_H */
