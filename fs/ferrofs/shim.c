// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for static-inline kernel functions called from the Rust side of
 * ferrofs. Prototypes live in shim.h, which bindgen reads too.
 */
#include <linux/backing-dev.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/buffer_head.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/crc32c.h>
#include <linux/fileattr.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/highmem.h>
#include <linux/kdev_t.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/writeback.h>

#include "shim.h"

/* The engine's block size: every block I/O moves exactly this much. */
#define FERROFS_BLOCK 4096

struct buffer_head *ferrofs_sb_bread(struct super_block *sb, sector_t block)
{
	return sb_bread(sb, block);
}

void ferrofs_brelse(struct buffer_head *bh)
{
	brelse(bh);
}

const char *ferrofs_sb_id(const struct super_block *sb)
{
	return sb->s_id;
}

/*
 * Block I/O with bios. Every bio owns its pages (copies of the caller's data), so a
 * write can be submitted and forgotten: its completion frees them. Writes are counted in
 * a struct ferrofs_inflight per device, in two alternating epochs, so that a flush waits
 * for the writes submitted before it and not for those that keep arriving after.
 */
struct ferrofs_inflight {
	spinlock_t lock;
	unsigned int epoch;
	atomic_t pending[2];
	/* The first write error since the last flush, as a negative errno. */
	atomic_t error;
	wait_queue_head_t wait;
	/* One epoch switch at a time, so the epoch a waiter leaves behind is drained. */
	struct mutex switch_lock;
};

struct ferrofs_inflight *ferrofs_inflight_alloc(void)
{
	struct ferrofs_inflight *inflight = kzalloc(sizeof(*inflight), GFP_KERNEL);

	if (!inflight)
		return NULL;
	spin_lock_init(&inflight->lock);
	init_waitqueue_head(&inflight->wait);
	mutex_init(&inflight->switch_lock);
	return inflight;
}

void ferrofs_inflight_free(struct ferrofs_inflight *inflight)
{
	if (!inflight)
		return;
	wait_event(inflight->wait, !atomic_read(&inflight->pending[0]) &&
				   !atomic_read(&inflight->pending[1]));
	mutex_destroy(&inflight->switch_lock);
	kfree(inflight);
}

bool ferrofs_inflight_busy(struct ferrofs_inflight *inflight)
{
	return atomic_read(&inflight->pending[0]) || atomic_read(&inflight->pending[1]);
}

/* Waits for every write submitted before the call; returns the first error, kept if !take. */
int ferrofs_inflight_wait(struct ferrofs_inflight *inflight, bool take)
{
	unsigned int old;

	mutex_lock(&inflight->switch_lock);
	spin_lock(&inflight->lock);
	old = inflight->epoch & 1;
	inflight->epoch++;
	spin_unlock(&inflight->lock);
	wait_event(inflight->wait, !atomic_read(&inflight->pending[old]));
	mutex_unlock(&inflight->switch_lock);
	return take ? atomic_xchg(&inflight->error, 0) : atomic_read(&inflight->error);
}

struct bio *ferrofs_bio_alloc(struct block_device *bdev, u16 nr_pages, bool write, bool fua,
			      u64 sector)
{
	blk_opf_t opf = write ? REQ_OP_WRITE : REQ_OP_READ;
	struct bio *bio;

	if (!nr_pages || nr_pages > BIO_MAX_VECS)
		return NULL;
	if (fua)
		opf |= REQ_SYNC | REQ_FUA;
	/* With GFP_NOIO, bio_alloc waits on its mempool rather than fail. */
	bio = bio_alloc(bdev, nr_pages, opf, GFP_NOIO);
	if (bio)
		bio->bi_iter.bi_sector = sector;
	return bio;
}

/* Adds a new page to @bio, filled from @src (len bytes, at most a page) if not NULL. */
int ferrofs_bio_add_page(struct bio *bio, const void *src, u32 len)
{
	struct page *page;

	if (!len || len > PAGE_SIZE)
		return -EINVAL;
	page = alloc_page(GFP_NOIO);
	if (!page)
		return -ENOMEM;
	if (src)
		memcpy(page_address(page), src, len);
	if (bio_add_page(bio, page, len, 0) != len) {
		__free_page(page);
		return -EINVAL;
	}
	return 0;
}

/* Copies what a read bio read into @dst (at most @len bytes). */
void ferrofs_bio_copy_out(struct bio *bio, void *dst, size_t len)
{
	struct bvec_iter_all iter;
	struct bio_vec *bv;
	size_t done = 0;

	bio_for_each_segment_all(bv, bio, iter) {
		size_t n = min_t(size_t, bv->bv_len, len - done);

		memcpy_from_page(dst + done, bv->bv_page, bv->bv_offset, n);
		done += n;
		if (done == len)
			break;
	}
}

/* Frees the pages of @bio and drops it. */
void ferrofs_bio_free(struct bio *bio)
{
	struct bvec_iter_all iter;
	struct bio_vec *bv;

	bio_for_each_segment_all(bv, bio, iter)
		__free_page(bv->bv_page);
	bio_put(bio);
}

static void ferrofs_end_tracked_write(struct bio *bio)
{
	unsigned long private = (unsigned long)bio->bi_private;
	struct ferrofs_inflight *inflight = (struct ferrofs_inflight *)(private & ~1UL);
	int err = blk_status_to_errno(bio->bi_status);

	if (err)
		atomic_cmpxchg(&inflight->error, 0, err);
	ferrofs_bio_free(bio);
	if (atomic_dec_and_test(&inflight->pending[private & 1]))
		wake_up_all(&inflight->wait);
}

/* Submits a write without waiting; its completion frees it and counts it done. */
void ferrofs_bio_submit_tracked(struct bio *bio, struct ferrofs_inflight *inflight)
{
	unsigned int slot;

	spin_lock(&inflight->lock);
	slot = inflight->epoch & 1;
	atomic_inc(&inflight->pending[slot]);
	spin_unlock(&inflight->lock);
	/* The epoch rides in the low bit of the (aligned) tracker pointer. */
	bio->bi_private = (void *)((unsigned long)inflight | slot);
	bio->bi_end_io = ferrofs_end_tracked_write;
	submit_bio(bio);
}

/*
 * The module's workqueue: read checks and writeback's checksum shares. It may have to
 * make progress for memory reclaim (writeback waits on it), hence WQ_MEM_RECLAIM; its
 * destruction at module exit waits for what is still queued.
 */
static struct workqueue_struct *ferrofs_wq;

/*
 * Reads straight into page-cache folios (readahead): a bio over locked folios of one
 * block each, counted by the device's tracker (which its close waits for) and checked
 * at completion, in a workqueue, against the CRC-32C the engine keeps of each block. A
 * folio whose read failed or whose checksum differs is unlocked not up to date, for
 * read_folio to read again through the engine, which tries the other copies, repairs
 * and reports the error.
 */
struct ferrofs_read_ctx {
	struct work_struct work;
	struct bio *bio;
	struct ferrofs_inflight *inflight;
	unsigned int slot;
	/* Blocks added, and room for their checksums (the bio may hold more). */
	unsigned int nr;
	unsigned int cap;
	u32 csums[];
};

struct bio *ferrofs_read_bio_alloc(struct block_device *bdev, u16 nr_blocks, u64 sector)
{
	struct ferrofs_read_ctx *ctx;
	struct bio *bio;

	if (!nr_blocks || nr_blocks > BIO_MAX_VECS)
		return NULL;
	ctx = kmalloc(struct_size(ctx, csums, nr_blocks), GFP_NOFS);
	if (!ctx)
		return NULL;
	bio = bio_alloc(bdev, nr_blocks, REQ_OP_READ, GFP_NOFS);
	if (!bio) {
		kfree(ctx);
		return NULL;
	}
	ctx->bio = bio;
	ctx->inflight = NULL;
	ctx->nr = 0;
	ctx->cap = nr_blocks;
	bio->bi_private = ctx;
	bio->bi_iter.bi_sector = sector;
	return bio;
}

/* Adds @folio (one block, locked) to read bio @bio, the block's checksum @csum. */
int ferrofs_read_bio_add_folio(struct bio *bio, struct folio *folio, u32 csum)
{
	struct ferrofs_read_ctx *ctx = bio->bi_private;

	if (folio_size(folio) != FERROFS_BLOCK || ctx->nr >= ctx->cap)
		return -EINVAL;
	if (!bio_add_folio(bio, folio, FERROFS_BLOCK, 0))
		return -EINVAL;
	ctx->csums[ctx->nr++] = csum;
	return 0;
}

static void ferrofs_read_verify(struct work_struct *work)
{
	struct ferrofs_read_ctx *ctx = container_of(work, struct ferrofs_read_ctx, work);
	struct ferrofs_inflight *inflight = ctx->inflight;
	unsigned int slot = ctx->slot;
	struct bio *bio = ctx->bio;
	bool ok = !bio->bi_status;
	struct folio_iter fi;
	unsigned int i = 0;

	bio_for_each_folio_all(fi, bio) {
		bool good = ok && i < ctx->nr;

		if (good) {
			void *p = kmap_local_folio(fi.folio, 0);

			good = ~crc32c(~0U, p, FERROFS_BLOCK) == ctx->csums[i];
			kunmap_local(p);
		}
		folio_end_read(fi.folio, good);
		i++;
	}
	bio_put(bio);
	kfree(ctx);
	if (atomic_dec_and_test(&inflight->pending[slot]))
		wake_up_all(&inflight->wait);
}

static void ferrofs_read_end_io(struct bio *bio)
{
	struct ferrofs_read_ctx *ctx = bio->bi_private;

	/* Checksums are not computed in interrupt context. */
	INIT_WORK(&ctx->work, ferrofs_read_verify);
	queue_work(ferrofs_wq, &ctx->work);
}

/* Submits read bio @bio; @inflight counts it until its folios are unlocked. */
void ferrofs_read_bio_submit(struct bio *bio, struct ferrofs_inflight *inflight)
{
	struct ferrofs_read_ctx *ctx = bio->bi_private;

	spin_lock(&inflight->lock);
	ctx->slot = inflight->epoch & 1;
	atomic_inc(&inflight->pending[ctx->slot]);
	spin_unlock(&inflight->lock);
	ctx->inflight = inflight;
	bio->bi_end_io = ferrofs_read_end_io;
	submit_bio(bio);
}

/* Drops read bio @bio unsubmitted: its folios are unlocked, not up to date. */
void ferrofs_read_bio_drop(struct bio *bio)
{
	struct folio_iter fi;

	bio_for_each_folio_all(fi, bio)
		folio_unlock(fi.folio);
	kfree(bio->bi_private);
	bio_put(bio);
}

/*
 * Writes straight from page-cache folios (writeback): a group of folios under writeback,
 * written by one bio or more (every copy of their chunk, every stripe piece), each counted
 * by its device's tracker. When the last of them completes, the folios' writeback ends,
 * with the first error recorded in their mapping. The bios come from a bio set of our own
 * whose front pad holds that bookkeeping, so that building one never fails.
 */
struct ferrofs_write_group {
	/* Bios in flight, and one while the group is being built. */
	atomic_t pending;
	atomic_t error;
	unsigned int nr;
	unsigned int max;
	/* The cgroup whose writeback this is (referenced), which its bios are charged to. */
	struct cgroup_subsys_state *blkcg_css;
	struct folio *folios[];
};

struct ferrofs_write_bio {
	struct ferrofs_write_group *group;
	struct ferrofs_inflight *inflight;
	unsigned int slot;
	/* Last: the bio set's front pad ends here. */
	struct bio bio;
};

static struct bio_set ferrofs_write_bioset;

int ferrofs_shim_init(void)
{
	int err;

	ferrofs_wq = alloc_workqueue("ferrofs", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!ferrofs_wq)
		return -ENOMEM;
	err = bioset_init(&ferrofs_write_bioset, BIO_POOL_SIZE,
			  offsetof(struct ferrofs_write_bio, bio), BIOSET_NEED_BVECS);
	if (err)
		destroy_workqueue(ferrofs_wq);
	return err;
}

void ferrofs_shim_exit(void)
{
	bioset_exit(&ferrofs_write_bioset);
	destroy_workqueue(ferrofs_wq);
}

/*
 * A group for at most @max_folios folios of the writeback @wbc: its bios are charged to
 * the cgroup that writeback serves (cgroup writeback), as wbc_init_bio() does.
 */
struct ferrofs_write_group *ferrofs_write_group_alloc(unsigned int max_folios,
						      struct writeback_control *wbc)
{
	struct ferrofs_write_group *group;

	if (!max_folios)
		return NULL;
	group = kmalloc(struct_size(group, folios, max_folios), GFP_NOFS);
	if (!group)
		return NULL;
	atomic_set(&group->pending, 1);
	atomic_set(&group->error, 0);
	group->nr = 0;
	group->max = max_folios;
	group->blkcg_css = NULL;
#ifdef CONFIG_CGROUP_WRITEBACK
	if (wbc->wb) {
		group->blkcg_css = wbc->wb->blkcg_css;
		css_get(group->blkcg_css);
	}
#endif
	return group;
}

/* Tells cgroup writeback that @wbc writes @folio (it may move the inode's ownership). */
void ferrofs_wbc_account_folio(struct writeback_control *wbc, struct folio *folio)
{
	wbc_account_cgroup_owner(wbc, folio, folio_size(folio));
}

/* Adds @folio (one block, under writeback) to @group, which ends its writeback. */
int ferrofs_write_group_add(struct ferrofs_write_group *group, struct folio *folio)
{
	if (group->nr >= group->max || folio_size(folio) != FERROFS_BLOCK)
		return -EINVAL;
	group->folios[group->nr++] = folio;
	return 0;
}

static void ferrofs_write_group_put(struct ferrofs_write_group *group)
{
	int err;
	unsigned int i;

	if (!atomic_dec_and_test(&group->pending))
		return;
	err = atomic_read(&group->error);
	for (i = 0; i < group->nr; i++) {
		if (err)
			mapping_set_error(group->folios[i]->mapping, err);
		folio_end_writeback(group->folios[i]);
	}
	if (group->blkcg_css)
		css_put(group->blkcg_css);
	kfree(group);
}

static void ferrofs_write_group_end_io(struct bio *bio)
{
	struct ferrofs_write_bio *wb = container_of(bio, struct ferrofs_write_bio, bio);
	struct ferrofs_write_group *group = wb->group;
	struct ferrofs_inflight *inflight = wb->inflight;
	unsigned int slot = wb->slot;
	int err = blk_status_to_errno(bio->bi_status);

	if (err) {
		atomic_cmpxchg(&group->error, 0, err);
		atomic_cmpxchg(&inflight->error, 0, err);
	}
	bio_put(bio);
	ferrofs_write_group_put(group);
	if (atomic_dec_and_test(&inflight->pending[slot]))
		wake_up_all(&inflight->wait);
}

/*
 * Writes folios @first .. @first + @count of @group to @bdev at @sector, counted by
 * @inflight until it completes.
 */
int ferrofs_write_group_submit(struct ferrofs_write_group *group, struct block_device *bdev,
			       u64 sector, unsigned int first, unsigned int count,
			       struct ferrofs_inflight *inflight)
{
	struct ferrofs_write_bio *wb;
	struct bio *bio;
	unsigned int i;

	if (!count || count > BIO_MAX_VECS || first > group->nr || count > group->nr - first)
		return -EINVAL;
	/* With GFP_NOIO, the bio set's mempool makes this wait rather than fail. */
	bio = bio_alloc_bioset(bdev, count, REQ_OP_WRITE, GFP_NOIO, &ferrofs_write_bioset);
	if (!bio)
		return -ENOMEM;
	if (group->blkcg_css)
		bio_associate_blkg_from_css(bio, group->blkcg_css);
	for (i = 0; i < count; i++) {
		if (!bio_add_folio(bio, group->folios[first + i], FERROFS_BLOCK, 0)) {
			bio_put(bio);
			return -EINVAL;
		}
	}
	wb = container_of(bio, struct ferrofs_write_bio, bio);
	wb->group = group;
	wb->inflight = inflight;
	spin_lock(&inflight->lock);
	wb->slot = inflight->epoch & 1;
	atomic_inc(&inflight->pending[wb->slot]);
	spin_unlock(&inflight->lock);
	atomic_inc(&group->pending);
	bio->bi_iter.bi_sector = sector;
	bio->bi_end_io = ferrofs_write_group_end_io;
	submit_bio(bio);
	return 0;
}

/* The CRC-32C of @folio's bytes (initial value and final XOR 0xffffffff). */
static u32 ferrofs_folio_checksum(struct folio *folio)
{
	u32 crc = ~0U;
	size_t done;

	for (done = 0; done < folio_size(folio); done += PAGE_SIZE) {
		void *p = kmap_local_folio(folio, done);

		crc = crc32c(crc, p, PAGE_SIZE);
		kunmap_local(p);
	}
	return ~crc;
}

/*
 * Checksums of a write group's folios, computed by the caller and, for a long run on a
 * machine with more than one CPU, by workers beside it: the checksums are most of the
 * CPU time writeback spends, and one thread would bound it.
 */
#define FERROFS_CSUM_MIN_SHARE 32
#define FERROFS_CSUM_MAX_HELPERS 3

struct ferrofs_csum_share {
	struct work_struct work;
	struct folio **folios;
	u32 *sums;
	unsigned int nr;
	struct completion done;
};

static void ferrofs_csum_share_fn(struct work_struct *work)
{
	struct ferrofs_csum_share *share = container_of(work, struct ferrofs_csum_share, work);
	unsigned int i;

	for (i = 0; i < share->nr; i++)
		share->sums[i] = ferrofs_folio_checksum(share->folios[i]);
	complete(&share->done);
}

/* Fills @sums (@nr entries, as many as the group's folios) with the folios' checksums. */
int ferrofs_write_group_checksums(struct ferrofs_write_group *group, u32 *sums, unsigned int nr)
{
	struct ferrofs_csum_share shares[FERROFS_CSUM_MAX_HELPERS];
	unsigned int helpers, per, i, at;

	if (nr != group->nr)
		return -EINVAL;
	helpers = min3(num_online_cpus() - 1, (unsigned int)FERROFS_CSUM_MAX_HELPERS,
		       nr / FERROFS_CSUM_MIN_SHARE);
	per = nr / (helpers + 1);
	at = per;
	for (i = 0; i < helpers; i++) {
		struct ferrofs_csum_share *share = &shares[i];

		INIT_WORK_ONSTACK(&share->work, ferrofs_csum_share_fn);
		init_completion(&share->done);
		share->folios = group->folios + at;
		share->sums = sums + at;
		share->nr = i + 1 == helpers ? nr - at : per;
		at += share->nr;
		queue_work(ferrofs_wq, &share->work);
	}
	for (i = 0; i < per; i++)
		sums[i] = ferrofs_folio_checksum(group->folios[i]);
	for (i = 0; i < helpers; i++) {
		wait_for_completion(&shares[i].done);
		destroy_work_on_stack(&shares[i].work);
	}
	return 0;
}

/* Drops the builder's hold on @group, recording @err (0 or a negative errno) first. */
void ferrofs_write_group_finish(struct ferrofs_write_group *group, int err)
{
	if (err)
		atomic_cmpxchg(&group->error, 0, err);
	ferrofs_write_group_put(group);
}

/* The inode of @path (positive: getattr is only called on one). */
struct inode *ferrofs_path_inode(const struct path *path)
{
	return d_inode(path->dentry);
}

/* Reports the statx @supported attributes, and of them @attributes as set. */
void ferrofs_stat_set_attributes(struct kstat *stat, u64 attributes, u64 supported)
{
	stat->attributes |= attributes & supported;
	stat->attributes_mask |= supported;
}

/* Whether @fa asks for what the inode flags cannot say (fsxattr-only flags, hints, ids). */
bool ferrofs_fileattr_has_fsx(const struct fileattr *fa)
{
	return fileattr_has_fsx(fa);
}

/* Pages under writeback stay unchanged until it ends (writes and mmap stores wait). */
void ferrofs_sb_set_stable_writes(struct super_block *sb)
{
	sb->s_iflags |= SB_I_STABLE_WRITES;
}

/* Each cgroup's dirty data is written back for it and its bios charged to it. */
void ferrofs_sb_set_cgroup_writeback(struct super_block *sb)
{
	sb->s_iflags |= SB_I_CGROUPWB;
}

/*
 * Gives @sb a backing device of its own in place of the one get_tree_bdev() lent it, its
 * first device's, as a filesystem over several devices wants (btrfs does the same). Its
 * readahead window is that of its @devices together, and at least 4 MiB: a window's
 * checksums are checked at completion, so without a window in flight behind it a
 * sequential reader waits for each check.
 */
int ferrofs_sb_setup_bdi(struct super_block *sb, unsigned int devices)
{
	struct backing_dev_info *dev_bdi = sb->s_bdi;
	unsigned long ra_pages;
	int err;

	/* Once only: the one it has is registered, and only the last is unregistered. */
	if (sb->s_iflags & SB_I_PERSB_BDI)
		return -EBUSY;
	/* super_setup_bdi() expects no backing device yet. */
	sb->s_bdi = &noop_backing_dev_info;
	err = super_setup_bdi(sb);
	if (err) {
		sb->s_bdi = dev_bdi;
		return err;
	}
	ra_pages = dev_bdi->ra_pages * clamp(devices, 1U, 64U);
	sb->s_bdi->ra_pages = max(ra_pages, SZ_4M / PAGE_SIZE);
	sb->s_bdi->io_pages = max(dev_bdi->io_pages, sb->s_bdi->io_pages);
	if (dev_bdi != &noop_backing_dev_info)
		bdi_put(dev_bdi);
	return 0;
}

/*
 * A block plug on the heap (it must not move while plugged); NULL if there is no memory,
 * which only means the bios go out one by one.
 */
struct blk_plug *ferrofs_plug_start(void)
{
	struct blk_plug *plug = kmalloc(sizeof(*plug), GFP_NOFS);

	if (plug)
		blk_start_plug(plug);
	return plug;
}

void ferrofs_plug_finish(struct blk_plug *plug)
{
	if (!plug)
		return;
	blk_finish_plug(plug);
	kfree(plug);
}

int ferrofs_bdev_flush(struct block_device *bdev)
{
	return blkdev_issue_flush(bdev);
}

/*
 * ferrofs reads and writes its devices with bios, around their page cache: anything
 * written through it (mkfs) goes to disk before the mount reads, and nothing cached there
 * (a probe's read) outlives the mount to be read back stale.
 */
int ferrofs_bdev_sync_and_invalidate(struct block_device *bdev)
{
	int err = sync_blockdev(bdev);

	invalidate_bdev(bdev);
	return err;
}

u64 ferrofs_bdev_size(struct block_device *bdev)
{
	return bdev_nr_bytes(bdev);
}

struct file *ferrofs_sb_get_bdev_file(struct super_block *sb)
{
	return sb->s_bdev_file ? get_file(sb->s_bdev_file) : NULL;
}

void ferrofs_release_sb_bdev(struct super_block *sb)
{
	struct block_device *bdev = sb->s_bdev;

	if (bdev) {
		sync_blockdev(bdev);
		bdev_fput(sb->s_bdev_file);
	}
}

struct file *ferrofs_open_bdev(const char *path, bool write, struct super_block *holder)
{
	blk_mode_t mode = BLK_OPEN_READ | (write ? BLK_OPEN_WRITE : 0);

	return bdev_file_open_by_path(path, mode, holder, &fs_holder_ops);
}

struct block_device *ferrofs_file_bdev(struct file *file)
{
	return file_bdev(file);
}

long ferrofs_ptr_err(const void *ptr)
{
	return PTR_ERR(ptr);
}

bool ferrofs_is_err(const void *ptr)
{
	return IS_ERR(ptr);
}

void *ferrofs_err_ptr(long err)
{
	return ERR_PTR(err);
}

unsigned int ferrofs_nofs_save(void)
{
	return memalloc_nofs_save();
}

void ferrofs_nofs_restore(unsigned int flags)
{
	memalloc_nofs_restore(flags);
}

loff_t ferrofs_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

void ferrofs_i_size_write(struct inode *inode, loff_t size)
{
	i_size_write(inode, size);
}

u32 ferrofs_i_uid_read(const struct inode *inode)
{
	return i_uid_read(inode);
}

u32 ferrofs_i_gid_read(const struct inode *inode)
{
	return i_gid_read(inode);
}

void ferrofs_i_uid_write(struct inode *inode, u32 uid)
{
	i_uid_write(inode, uid);
}

void ferrofs_i_gid_write(struct inode *inode, u32 gid)
{
	i_gid_write(inode, gid);
}

void ferrofs_inode_get_times(const struct inode *inode, struct timespec64 *atime,
			     struct timespec64 *mtime, struct timespec64 *ctime)
{
	*atime = inode_get_atime(inode);
	*mtime = inode_get_mtime(inode);
	*ctime = inode_get_ctime(inode);
}

void ferrofs_inode_set_times(struct inode *inode, const struct timespec64 *atime,
			     const struct timespec64 *mtime, const struct timespec64 *ctime)
{
	inode_set_atime_to_ts(inode, *atime);
	inode_set_mtime_to_ts(inode, *mtime);
	inode_set_ctime_to_ts(inode, *ctime);
}

bool ferrofs_inode_is_new(const struct inode *inode)
{
	return inode->i_state & I_NEW;
}

void ferrofs_insert_inode_hash(struct inode *inode)
{
	insert_inode_hash(inode);
}

dev_t ferrofs_decode_dev(u32 dev)
{
	return new_decode_dev(dev);
}

u32 ferrofs_encode_dev(dev_t dev)
{
	return new_encode_dev(dev);
}

const unsigned char *ferrofs_dentry_name(const struct dentry *dentry, u32 *len)
{
	*len = dentry->d_name.len;
	return dentry->d_name.name;
}

struct inode *ferrofs_d_inode(const struct dentry *dentry)
{
	return d_inode(dentry);
}

bool ferrofs_dir_emit(struct dir_context *ctx, const char *name, int len, u64 ino,
		      unsigned int type)
{
	return dir_emit(ctx, name, len, ino, type);
}

loff_t ferrofs_dir_pos(const struct dir_context *ctx)
{
	return ctx->pos;
}

void ferrofs_dir_set_pos(struct dir_context *ctx, loff_t pos)
{
	ctx->pos = pos;
}

/* The word ferrofs keeps in @file's private data (see File::cookie). */
unsigned long ferrofs_file_cookie(struct file *file)
{
	return (unsigned long)READ_ONCE(file->private_data);
}

void ferrofs_file_set_cookie(struct file *file, unsigned long cookie)
{
	WRITE_ONCE(file->private_data, (void *)cookie);
}

void ferrofs_set_delayed_kfree(struct delayed_call *done, void *ptr)
{
	set_delayed_call(done, kfree_link, ptr);
}

int ferrofs_finish_open_simple(struct file *file)
{
	return finish_open_simple(file, 0);
}

struct inode *ferrofs_file_inode(const struct file *file)
{
	return file_inode(file);
}

loff_t ferrofs_folio_pos(struct folio *folio)
{
	return folio_pos(folio);
}

size_t ferrofs_folio_size(struct folio *folio)
{
	return folio_size(folio);
}

struct inode *ferrofs_folio_inode(const struct folio *folio)
{
	return folio->mapping->host;
}

struct inode *ferrofs_mapping_host(struct address_space *mapping)
{
	return mapping->host;
}

/*
 * Fills @runs with up to @max runs of neighbouring pages of @mapping, from page *@index on,
 * that are dirty or under writeback: data whose blocks writeback has yet to place, or is
 * placing. Returns how many runs it filled; when that is @max there may be more, from
 * the page it left in *@index. One page per entry: ferrofs's mappings have no large
 * folios. A page that changes state during the walk may be seen in either state.
 */
unsigned int ferrofs_mapping_unwritten_runs(struct address_space *mapping, pgoff_t *index,
					    struct ferrofs_page_run *runs, unsigned int max)
{
	struct xarray *pages = &mapping->i_pages;
	pgoff_t dirty = *index, writeback = *index;
	bool more_dirty = xa_find(pages, &dirty, ULONG_MAX, PAGECACHE_TAG_DIRTY);
	bool more_writeback = xa_find(pages, &writeback, ULONG_MAX, PAGECACHE_TAG_WRITEBACK);
	unsigned int filled = 0;

	while (more_dirty || more_writeback) {
		pgoff_t page = !more_writeback || (more_dirty && dirty <= writeback) ? dirty : writeback;
		struct ferrofs_page_run *last = filled ? &runs[filled - 1] : NULL;

		if (last && last->start + last->count == page) {
			last->count++;
		} else {
			if (filled == max) {
				*index = page;
				return filled;
			}
			runs[filled].start = page;
			runs[filled].count = 1;
			filled++;
		}
		if (more_dirty && dirty == page)
			more_dirty = xa_find_after(pages, &dirty, ULONG_MAX, PAGECACHE_TAG_DIRTY);
		if (more_writeback && writeback == page)
			more_writeback = xa_find_after(pages, &writeback, ULONG_MAX,
						       PAGECACHE_TAG_WRITEBACK);
		cond_resched();
	}
	*index = ULONG_MAX;
	return filled;
}

bool ferrofs_folio_test_uptodate(const struct folio *folio)
{
	return folio_test_uptodate(folio);
}

void ferrofs_folio_mark_uptodate(struct folio *folio)
{
	folio_mark_uptodate(folio);
}

void ferrofs_folio_copy_in(struct folio *folio, size_t offset, const void *src, size_t len)
{
	memcpy_to_folio(folio, offset, src, len);
}

void ferrofs_folio_copy_out(void *dst, struct folio *folio, size_t offset, size_t len)
{
	memcpy_from_folio(dst, folio, offset, len);
}

void ferrofs_folio_zero(struct folio *folio, size_t offset, size_t len)
{
	folio_zero_range(folio, offset, len);
}

void ferrofs_folio_start_writeback(struct folio *folio)
{
	folio_start_writeback(folio);
}

void ferrofs_folio_put(struct folio *folio)
{
	folio_put(folio);
}

struct folio *ferrofs_grab_write_folio(struct address_space *mapping, loff_t pos)
{
	return __filemap_get_folio(mapping, pos >> PAGE_SHIFT, FGP_WRITEBEGIN,
				   mapping_gfp_mask(mapping));
}

void ferrofs_folio_set_error(struct folio *folio, int err)
{
	mapping_set_error(folio->mapping, err);
}

const char *ferrofs_param_key(const struct fs_parameter *param)
{
	return param->key;
}

const char *ferrofs_param_string(const struct fs_parameter *param)
{
	return param->type == fs_value_is_string ? param->string : NULL;
}

bool ferrofs_fc_read_only(const struct fs_context *fc)
{
	return fc->sb_flags & SB_RDONLY;
}

void **ferrofs_fc_private(struct fs_context *fc)
{
	return &fc->fs_private;
}

struct task_struct *ferrofs_kthread_run(int (*fn)(void *), void *data, const char *name)
{
	return kthread_run(fn, data, "%s", name);
}

void ferrofs_module_get(void)
{
	__module_get(THIS_MODULE);
}

void ferrofs_module_put(void)
{
	module_put(THIS_MODULE);
}

void ferrofs_module_put_and_kthread_exit(long code)
{
	module_put_and_kthread_exit(code);
}

long ferrofs_secs_to_jiffies(unsigned int secs)
{
	return msecs_to_jiffies(secs * 1000U);
}

bool ferrofs_dir_emit_dots(struct file *file, struct dir_context *ctx)
{
	return dir_emit_dots(file, ctx);
}

void ferrofs_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void ferrofs_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

/* A folio writeback_iter() cleaned for I/O that could not be written: dirty again. */
void ferrofs_folio_redirty(struct writeback_control *wbc, struct folio *folio)
{
	folio_redirty_for_writepage(wbc, folio);
}

loff_t ferrofs_readahead_pos(struct readahead_control *rac)
{
	return readahead_pos(rac);
}

size_t ferrofs_readahead_length(struct readahead_control *rac)
{
	return readahead_length(rac);
}

struct inode *ferrofs_readahead_inode(struct readahead_control *rac)
{
	return rac->mapping->host;
}

/* The next folio of the readahead window, locked, or NULL after the last. */
struct folio *ferrofs_readahead_folio(struct readahead_control *rac)
{
	return readahead_folio(rac);
}

void ferrofs_cond_resched(void)
{
	cond_resched();
}

struct posix_acl *ferrofs_posix_acl_from_xattr(const void *value, size_t size)
{
	return posix_acl_from_xattr(&init_user_ns, value, size);
}

int ferrofs_posix_acl_to_xattr(const struct posix_acl *acl, void *buf, size_t size)
{
	return posix_acl_to_xattr(&init_user_ns, acl, buf, size);
}

size_t ferrofs_posix_acl_xattr_size(const struct posix_acl *acl)
{
	return posix_acl_xattr_size(acl->a_count);
}

void ferrofs_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

struct file *ferrofs_kiocb_file(struct kiocb *iocb)
{
	return iocb->ki_filp;
}

loff_t ferrofs_kiocb_pos(struct kiocb *iocb)
{
	return iocb->ki_pos;
}

size_t ferrofs_iov_iter_count(const struct iov_iter *iter)
{
	return iov_iter_count(iter);
}

/* Whether the iterator is the source of the data (a write), not its destination. */
bool ferrofs_iov_iter_is_source(const struct iov_iter *iter)
{
	return iov_iter_rw(iter) == WRITE;
}

unsigned long ferrofs_iov_iter_alignment(const struct iov_iter *iter)
{
	return iov_iter_alignment(iter);
}

size_t ferrofs_copy_to_iter(const void *addr, size_t bytes, struct iov_iter *iter)
{
	return copy_to_iter(addr, bytes, iter);
}

size_t ferrofs_copy_from_iter(void *addr, size_t bytes, struct iov_iter *iter)
{
	return copy_from_iter(addr, bytes, iter);
}

size_t ferrofs_iov_iter_zero(size_t bytes, struct iov_iter *iter)
{
	return iov_iter_zero(bytes, iter);
}

/*
 * A direct read straight into the caller's memory: @len bytes (whole blocks, at most
 * BIO_MAX_VECS of them) from byte @offset of @bdev, by one bio over the next pages of
 * @iter (pinned for the read, released and dirtied after it), each block checked against
 * its CRC-32C in @csums before the pages go back. Returns the bytes read and checked from
 * the start, by which @iter is advanced: fewer than @len after an I/O error or at the
 * first block whose checksum differs (the caller reads the rest through the engine,
 * which tries the other copies and repairs), 0 if the memory could not be pinned. A
 * negative errno for a request that cannot be made at all.
 */
ssize_t ferrofs_dio_read(struct block_device *bdev, u64 offset, struct iov_iter *iter,
			 size_t len, const u32 *csums)
{
	size_t count = iov_iter_count(iter), got, good = 0;
	bool dirty = user_backed_iter(iter);
	struct bvec_iter start, it;
	unsigned int i = 0;
	struct bio_vec bv;
	struct bio *bio;
	int err;

	if (!len || len % FERROFS_BLOCK || len / FERROFS_BLOCK > BIO_MAX_VECS ||
	    len > count || offset % FERROFS_BLOCK)
		return -EINVAL;
	/* Only @len bytes of the memory go into this bio. */
	iov_iter_truncate(iter, len);
	/*
	 * A bvec iterator (a splice, a loop device) lends the bio its own vector, so the bio
	 * must have none of its own: bio_put would free the lent one.
	 */
	bio = bio_alloc(bdev, bio_iov_vecs_to_alloc(iter, BIO_MAX_VECS), REQ_OP_READ | REQ_SYNC,
			GFP_NOFS);
	if (!bio) {
		iov_iter_reexpand(iter, count);
		return -ENOMEM;
	}
	bio->bi_iter.bi_sector = offset >> SECTOR_SHIFT;
	err = bio_iov_iter_get_pages(bio, iter);
	got = bio->bi_iter.bi_size;
	iov_iter_reexpand(iter, count - got);
	if (err || got % FERROFS_BLOCK) {
		/* Nothing read: the caller copies instead, and sees the fault if there is one. */
		bio_release_pages(bio, false);
		bio_put(bio);
		iov_iter_revert(iter, got);
		return 0;
	}
	start = bio->bi_iter;
	if (!submit_bio_wait(bio)) {
		/* Page by page: the memory is block-aligned, and a block is a page. */
		__bio_for_each_segment(bv, bio, it, start) {
			void *p;
			bool ok;

			if (bv.bv_offset || bv.bv_len != FERROFS_BLOCK || i >= got / FERROFS_BLOCK)
				break;
			p = bvec_kmap_local(&bv);
			ok = ~crc32c(~0U, p, FERROFS_BLOCK) == csums[i];
			kunmap_local(p);
			if (!ok)
				break;
			good += FERROFS_BLOCK;
			i++;
		}
	}
	bio_release_pages(bio, dirty);
	bio_put(bio);
	iov_iter_revert(iter, got - good);
	return good;
}

int ferrofs_syncfs(struct super_block *sb)
{
	int ret;

	down_read(&sb->s_umount);
	ret = sync_filesystem(sb);
	up_read(&sb->s_umount);
	return ret;
}
