/*
 * Private types and helpers of libqcowkit; never installed.
 *
 * Calls go one way, down these layers; a file calls only files of its
 * own layer or lower, never in a cycle (tests/abi/layers.sh checks it):
 *   7 public calls   image (open, close, flush, make-empty, info, the
 *                    backing chain), resize, check, chain, create
 *   6 image changes  compress (compressed writes), grow (zeroing a grown
 *                    range), zeroes (writing zeros that may unmap)
 *   5 guest I/O      rw (reads and writes), status (block status),
 *                    discard (giving clusters back)
 *   4 data           data (host clusters, through AES), inflate, deflate,
 *                    probe (the probed-raw guard)
 *   3 metadata       table (L2 cache, allocation, write-back), trust, l1
 *                    (the L1 table's one owner, paged)
 *   2 handle         access (the per-handle read-write lock), barrier
 *                    (durability and data_unsynced), backing (names)
 *   1 storage        io, io-file, io-memory, lock (the backend and its
 *                    file locks)
 *   0 base           error, abi, header, crypt, lru (hash + LRU index)
 * Public qcowkit_* functions check their arguments, take the access lock
 * and call qk_* functions; nothing in the library calls a qcowkit_*
 * function.  Each section below names the file that defines it.
 */
#ifndef QCOWKIT_INTERNAL_H
#define QCOWKIT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qcowkit.h"

/* ------------------------------------------------------------ on-disk */

#define QCOW_MAGIC            0x514649fbu /* "QFI\xfb" */
#define QCOW_HEADER_SIZE      48u
#define QCOW_COMPRESSED       (UINT64_C(1) << 63)
#define QCOW_MAX_BACKING_NAME 1023u
#define QCOW_SECTOR           512u

static inline uint32_t qk_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline uint64_t qk_be64(const uint8_t *p)
{
    return (uint64_t)qk_be32(p) << 32 | qk_be32(p + 4);
}

static inline void qk_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static inline void qk_put_be64(uint8_t *p, uint64_t v)
{
    qk_put_be32(p, v >> 32);
    qk_put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t qk_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

struct qk_header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t mtime;
    uint64_t size;
    uint8_t cluster_bits;
    uint8_t l2_bits;
    uint32_t crypt_method;
    uint64_t l1_table_offset;
};

void qk_header_decode(const uint8_t *raw, struct qk_header *h);
void qk_header_encode(const struct qk_header *h, uint8_t *raw);
/* Check every field against each other and the file size. */
int qk_header_validate(const struct qk_header *h, uint64_t file_size,
                       const char *name, uint64_t *l1_entries);

/* --------------------------------------------------------------- errors */

/* error.c: record "name: message" for this thread and return err. */
int qk_error(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* error.c: this thread's last message. */
const char *qk_errmsg(void);

/* ------------------------------------------------------------------ ABI */

/* The bytes up to the end of a field: the least a struct_size must cover. */
#define QK_END_OF(type, field)                                                 \
    (offsetof(type, field) + sizeof(((type *)0)->field))
#define QK_IO_OPS_MIN       QK_END_OF(struct qcowkit_io_ops, truncate)
#define QK_OPEN_OPTS_MIN    QK_END_OF(struct qcowkit_open_opts, format)
#define QK_CREATE_OPTS_MIN  QK_END_OF(struct qcowkit_create_opts, size)
#define QK_INFO_MIN         QK_END_OF(struct qcowkit_info, virtual_size)
#define QK_CHECK_REPORT_MIN QK_END_OF(struct qcowkit_check_report, leaks)

/*
 * Copy a caller's input struct into dst (dst_size bytes): refused below
 * min; missing fields zeroed; with strict, a non-zero field past dst_size
 * is refused (-ENOTSUP), else ignored.  dst's struct_size is dst_size.
 */
int qk_abi_in(void *dst, size_t dst_size, const void *src, size_t min,
              bool strict, const char *what);
/* Refuse an output struct whose struct_size is below min. */
int qk_abi_out_check(const void *dst, size_t min, const char *what);
/* Fill a checked output struct from full, writing at most its struct_size. */
void qk_abi_out(void *dst, void *full, size_t full_size);

/* ------------------------------------------------------ I/O (io.c) */

struct qcowkit_io {
    struct qcowkit_io_ops ops;
    void *opaque;
    char *name;
    /* Identity of a file backend, to detect loops in backing chains. */
    bool identity_known;
    dev_t dev;
    ino_t ino;
    /* Images holding this backend's lock, and the mode it holds; guarded
     * by lock_guard, since images over one backend open and close from
     * any thread. */
    pthread_mutex_t lock_guard;
    unsigned lock_readers;
    unsigned lock_writers;
    unsigned lock_mode;
    /* Zeros over a range without writing them (the file backend's
     * FALLOC_FL_ZERO_RANGE), or NULL; internal, not in the ops. */
    int (*zero_range)(void *opaque, uint64_t offset, uint64_t length);
};

int qk_io_make(const struct qcowkit_io_ops *ops, void *opaque, const char *name,
               struct qcowkit_io **io);
void qk_io_close(struct qcowkit_io *io);
int qk_io_truncate(struct qcowkit_io *io, uint64_t size);
int qk_io_discard(struct qcowkit_io *io, uint64_t offset, uint64_t length);
/* Zeros over the range by the backend's zero_range; -EOPNOTSUPP without
 * one.  Records no message: callers fall back to written zeros. */
int qk_io_zero_range(struct qcowkit_io *io, uint64_t offset, uint64_t length);
/* io-file.c */
int qk_io_open_file(const char *path, unsigned flags, struct qcowkit_io **io);

/* Wrappers that also record a message naming the file and offset. */
int qk_read(struct qcowkit_io *io, void *buf, size_t count, uint64_t offset);
int qk_write(struct qcowkit_io *io, const void *buf, size_t count,
             uint64_t offset);
int qk_sync(struct qcowkit_io *io);
int qk_io_size(struct qcowkit_io *io, uint64_t *size);
/* qk_io_open_file() that leaves the message to the caller: why it
 * failed, without the path. */
int qk_io_open_file_why(const char *path, unsigned flags,
                        struct qcowkit_io **io, const char **why);
/*
 * The run at offset as the backend's extent function tells it, checked;
 * -EOPNOTSUPP without one.  Records no message: callers fall back to data.
 */
int qk_io_extent(struct qcowkit_io *io, uint64_t offset, uint64_t *length,
                 bool *hole);
/* The backend's lock function, or 0 without one (for wrappers). */
int qk_io_lock_op(struct qcowkit_io *io, unsigned mode, const char **why);
/*
 * lock.c: the file backend's lock function on fd, which holds held:
 * QEMU's OFD lock bytes for mode, or -EBUSY (*why set) holding held.
 */
int qk_ofd_lock(int fd, unsigned held, unsigned mode, const char **why);
/* lock.c: one more image holds io's read or write lock; -EBUSY if taken. */
int qk_lock_image(struct qcowkit_io *io, bool write, const char *name);
/* lock.c: one image fewer holds it; the lock drops to what the rest need. */
void qk_unlock_image(struct qcowkit_io *io, bool write);

/* ------------------------------------------------------------------ lru.c */

#define QK_NO_SLOT UINT32_MAX
#define QK_NO_KEY  UINT64_MAX

/* Slots found by key through a hash, in order of last use (lru.c). */
struct qk_lru {
    uint64_t *keys;          /* per slot: its key, or QK_NO_KEY */
    uint32_t *newer, *older; /* the order of use, by slot */
    uint32_t *next;          /* hash chains, by slot */
    uint32_t *buckets;
    unsigned bucket_bits;
    uint32_t used; /* slots [0, used) have been put in use once */
    uint32_t capacity;
    uint32_t newest, oldest;
};

int qk_lru_resize(struct qk_lru *l, uint32_t capacity);
void qk_lru_free(struct qk_lru *l);
void qk_lru_clear(struct qk_lru *l);
uint32_t qk_lru_find(const struct qk_lru *l, uint64_t key);
void qk_lru_touch(struct qk_lru *l, uint32_t i);
uint32_t qk_lru_fresh(const struct qk_lru *l);
void qk_lru_take(struct qk_lru *l, uint32_t i);
void qk_lru_forget(struct qk_lru *l, uint32_t i);
void qk_lru_put(struct qk_lru *l, uint32_t i, uint64_t key);

/* -------------------------------------------------------------- L2 cache */

#define QK_NO_TABLE QK_NO_KEY /* l1_index of a slot holding nothing */

struct qk_slot {
    uint64_t *entries; /* host byte order */
    uint64_t l1_index; /* which L1 entry this table belongs to */
    uint64_t offset;   /* where the table lies in the file */
    bool dirty;        /* entries differ from the disk */
    bool unpublished;  /* new table: its L1 entry is not on disk yet */
};

struct qk_cache {
    struct qk_slot *slots;
    struct qk_lru lru; /* slots by L1 index */
    uint32_t dirty_count;
    uint32_t unpublished_count;
    uint8_t *scratch; /* one table in disk byte order */
    uint64_t wanted;  /* capacity the cache size allows */
};

/* -------------------------------------------------------------- L1 (l1.c) */

#define QK_L1_PAGE_ENTRIES 512u /* 4 KiB of entries per cached page */

/* Pages of the L1 table as on disk, read when touched. */
struct qk_l1 {
    struct qk_lru lru;  /* slots by page number */
    uint64_t **entries; /* per slot: host byte order, NULL if all zeros */
    uint64_t pages;     /* pages the table has */
    uint64_t wanted;    /* slots the budget allows */
};

/* ----------------------------------------------------------- trust.c */

/* A kept L2 table: where it lies and which L1 entry points at it. */
struct qk_kept {
    uint64_t offset;
    uint32_t l1_index;
    bool seen; /* read or made by this handle */
};

struct qk_trust {
    uint64_t trusted_end; /* file size at open or at the last check */
    bool built;           /* kept is known (built when first needed) */
    struct qk_kept *kept; /* sorted by offset, disjoint */
    uint64_t table_count;
    uint64_t table_cap;
    /* Refused entries past the trusted end: per table, a bit per entry,
     * in a hash over L1 indices (trust.c). */
    uint64_t *poison_keys;
    uint8_t **poison_maps;
    uint64_t poison_tables;
    uint64_t poison_count; /* refused entries, 0: skip the lookups */
    uint64_t poison_cap;
};

/* --------------------------------------------------------------- image */

struct qcowkit_image {
    char *name;
    struct qcowkit_io *io;
    bool owns_io;
    bool locked; /* holds io's lock: read, or write unless read_only */
    enum qcowkit_format format;
    bool probed; /* the format was found by probing, not given */
    bool read_only;
    bool no_sync; /* QCOWKIT_OPEN_NO_SYNC */
    uint64_t virtual_size;

    /* qcow geometry */
    struct qk_header header;
    uint32_t cluster_bits;
    uint32_t cluster_size;
    uint32_t l2_bits;
    uint32_t l2_entries;
    uint64_t offset_mask; /* host offset bits of a compressed entry */
    uint64_t l1_entries;
    struct qk_l1 l1;   /* only l1.c touches it */
    uint64_t meta_end; /* first byte after header, name and L1 */

    char backing_file[QCOW_MAX_BACKING_NAME + 1];
    char *backing_path;
    struct qcowkit_image *backing;

    /* The AES key of an encrypted image (crypt.c). */
    uint8_t key[16];
    bool has_key;

    /* I/O calls hold it shared, calls that reshape the image exclusively
     * (access.c); the rest only tell who holds it, for assertions. */
    pthread_rwlock_t access;
    atomic_uint access_readers;
    atomic_bool access_exclusive;
    pthread_t access_owner;

    /* Everything below is guarded by lock. */
    pthread_mutex_t lock;
    uint64_t file_end; /* allocations go at or after this byte */
    /* Times the file was cut (qk_io_truncate_to, access lock exclusive):
     * space below file_end may be allocated again after a cut. */
    uint64_t truncations;
    /* Data reached the backend since the last barrier (barrier.c only). */
    bool data_unsynced;
    struct qk_cache cache;
    struct qk_trust trust;
    /* The last inflated cluster, keyed by its compressed entry. */
    uint8_t *inflated;
    uint64_t inflated_entry;
};

/* What opening one link of a backing chain needs (image.c, backing.c). */
struct qk_identity {
    dev_t dev;
    ino_t ino;
    bool known;
};

struct qk_open_params {
    const char *name;
    unsigned flags;
    enum qcowkit_format format;
    enum qcowkit_format backing_format;
    uint64_t cache_bytes;
    const uint8_t *key;
    size_t key_len;
    struct qk_identity self;
    /* The image this one backs, to find loops; NULL at the top. */
    const struct qk_open_params *above;
    int depth;
};

/* image.c: open an image over io, holding its lock (unless force-share)
 * till close, and its backing chain. */
int qk_open_chain(struct qcowkit_io *io, bool owns_io,
                  const struct qk_open_params *p, struct qcowkit_image **img);
int qk_open_backing(struct qcowkit_image *img, const struct qk_open_params *p);
/* image.c: flush (access lock held); close (takes it exclusively). */
int qk_flush(struct qcowkit_image *img);
int qk_close(struct qcowkit_image *img);
/* image.c: the end of the header, backing name and L1 table (what
 * make-empty keeps). */
void qk_update_meta_end(struct qcowkit_image *img);

/* backing.c: a backing name taken from the folder of image_name (malloc'd). */
char *qk_resolve_backing(const char *image_name, const char *backing);
/*
 * -EINVAL with a message if backing, resolved against image's folder,
 * is the image itself: the same inode (io's, when io is a file backend;
 * with io NULL, the file at image if it exists), or the same absolute
 * path when image does not exist yet.  Other backends: never.
 */
int qk_refuse_self_backing(const char *image, const char *backing,
                           const struct qcowkit_io *io);
#define QK_MAX_CHAIN 256

/*
 * access.c: the handle's access lock.  qk_assert_exclusive and
 * qk_assert_access (held in either mode) check it in debug builds.
 */
void qk_access_init(struct qcowkit_image *img);
void qk_access_destroy(struct qcowkit_image *img);
void qk_access_shared(struct qcowkit_image *img);
void qk_access_exclusive(struct qcowkit_image *img);
void qk_access_leave(struct qcowkit_image *img);
void qk_assert_exclusive(struct qcowkit_image *img);
void qk_assert_access(struct qcowkit_image *img);
/* Held shared (by some thread; the caller must be one of them). */
void qk_assert_shared(struct qcowkit_image *img);

/* barrier.c, lock held: a durability barrier on the image's file (unless
 * opened NO_SYNC), which clears data_unsynced. */
int qk_barrier(struct qcowkit_image *img);
/* barrier.c: data reached the backend (mark it after the transfer). */
void qk_data_written(struct qcowkit_image *img);
/* barrier.c: a barrier only if data was written since the last. */
int qk_barrier_if_written(struct qcowkit_image *img);

/* Table access (table.c); all need img->lock held. */
int qk_cache_init(struct qcowkit_image *img, uint64_t cache_bytes);
void qk_cache_free(struct qcowkit_image *img);
int qk_cache_grow(struct qcowkit_image *img, uint64_t l1_entries);
void qk_cache_drop(struct qcowkit_image *img);
/* Forget the cached table of l1_index, if any; it must be clean. */
void qk_cache_forget(struct qcowkit_image *img, uint64_t l1_index);
/* The L2 table for l1_index, or NULL with *err 0 if there is none yet. */
uint64_t *qk_l2_get(struct qcowkit_image *img, uint64_t l1_index, int *err);
/* The L2 table for l1_index, made (in memory) if missing. */
uint64_t *qk_l2_get_or_make(struct qcowkit_image *img, uint64_t l1_index,
                            int *err);
/* The first L1 index in [from, end) that has a table (end if none). */
int qk_l2_next_table(struct qcowkit_image *img, uint64_t from, uint64_t end,
                     uint64_t *next);
/* Set the L2 entry of a guest offset (its table must exist). */
int qk_l2_set(struct qcowkit_image *img, uint64_t guest_offset, uint64_t entry);
/* Record a changed L2 entry (the table must be the one just returned). */
void qk_l2_mark_dirty(struct qcowkit_image *img, uint64_t l1_index);
/*
 * The cached table of l1_index, if all its entries are zero and its L1
 * entry is on disk: that entry is cleared (written through) and the table
 * forgotten; *freed is its offset (0: nothing dropped).  If the L1 write
 * fails, the table stays, to be published again by the next write-back.
 */
int qk_l2_drop_if_empty(struct qcowkit_image *img, uint64_t l1_index,
                        uint64_t *freed);
/* Write data, then tables, then L1 entries, with a barrier between. */
int qk_writeback(struct qcowkit_image *img);

/*
 * l1.c: the one owner of the L1 table.  Entries are read through a
 * bounded cache of pages, written through to the disk at once, and
 * walked by streaming the table past the storage's holes.  An entry of a
 * new table that is not published yet lives in its cache slot (table.c).
 */
/* The page cache, within budget bytes (the caller's share of the cache). */
int qk_l1_init(struct qcowkit_image *img, uint64_t budget);
void qk_l1_free(struct qcowkit_image *img);
/* The pages no longer match the disk (a repair wrote the table). */
void qk_l1_forget(struct qcowkit_image *img);
/* The bytes of page cache qk_l1_init would use for budget. */
uint64_t qk_l1_cache_bytes(const struct qcowkit_image *img, uint64_t budget);
int qk_l1_get(struct qcowkit_image *img, uint64_t index, uint64_t *entry);
/* Write one entry to the disk (and the page holding it). */
int qk_l1_set(struct qcowkit_image *img, uint64_t index, uint64_t entry);
/*
 * Call fn for every non-zero entry on disk in [from, end), in order,
 * reading past the holes of the storage; fn returns <0 (error, stops),
 * 0 (go on) or 1 (stop).
 */
typedef int (*qk_l1_fn)(void *opaque, uint64_t index, uint64_t entry);
int qk_l1_scan(struct qcowkit_image *img, uint64_t from, uint64_t end,
               qk_l1_fn fn, void *opaque);
/* The first index in [from, end) with a non-zero entry on disk, or end. */
int qk_l1_next_used(struct qcowkit_image *img, uint64_t from, uint64_t end,
                    uint64_t *next);
/* make-empty: every entry zero on disk. */
int qk_l1_clear(struct qcowkit_image *img);
/* The bytes a table of entries takes on disk. */
uint64_t qk_l1_bytes(uint64_t entries);
/*
 * resize: a copy of the table with room for entries, at offset (space the
 * caller allocated at the end of the file), used by the handle at once;
 * the header still names the old one.
 */
int qk_l1_move(struct qcowkit_image *img, uint64_t offset, uint64_t entries);
/* Back to the table at offset (a move whose header write failed); the
 * caller drops the cached L2 tables first. */
void qk_l1_unmove(struct qcowkit_image *img, uint64_t offset, uint64_t entries);
/* Zeros over an old table of entries at offset, now unreferenced. */
int qk_l1_wipe(struct qcowkit_image *img, uint64_t offset, uint64_t entries);

/* Entry checks (trust.c): 0 if usable, else -EIO with a message. */
int qk_check_normal(struct qcowkit_image *img, uint64_t entry,
                    uint64_t guest_offset);
int qk_check_compressed(struct qcowkit_image *img, uint64_t entry,
                        uint64_t guest_offset);

/*
 * trust.c: the rules behind those checks, shared with qcowkit_check.
 * The set of kept tables is built from the L1 table on disk the first
 * time it is needed (before the first allocation): memory follows the
 * tables that are there, not the L1 table's size.
 */
/* Start over at file_size; built when needed (the cache must be empty). */
void qk_trust_reset(struct qcowkit_image *img, uint64_t file_size);
/* Build now, at file_size: cached tables count as read. */
int qk_trust_build(struct qcowkit_image *img, uint64_t file_size);
/* Build if not built yet. */
int qk_trust_ready(struct qcowkit_image *img);
void qk_trust_free(struct qcowkit_image *img);
int qk_trust_new_table(struct qcowkit_image *img, uint64_t l1_index,
                       uint64_t offset);
/* The L1 entry l1_index no longer names the table at offset (a shrink):
 * it leaves the kept list, so a table placed there later is not refused. */
void qk_trust_table_gone(struct qcowkit_image *img, uint64_t l1_index,
                         uint64_t offset);
int qk_trust_first_load(struct qcowkit_image *img, uint64_t l1_index,
                        uint64_t offset, const uint64_t *entries);
/* Is the table at offset, named by l1_index, not followed?  Needs ready. */
bool qk_table_refused(const struct qcowkit_image *img, uint64_t l1_index,
                      uint64_t offset);
/* Every L2 entry the handle sets goes through here (or qk_l2_set). */
void qk_trust_entry_set(struct qcowkit_image *img, uint64_t guest_cluster);
bool qk_hits_metadata(const struct qcowkit_image *img, uint64_t offset,
                      uint64_t len);
bool qk_hits_table(const struct qcowkit_image *img, uint64_t offset,
                   uint64_t len);
const char *qk_table_problem(const struct qcowkit_image *img, uint64_t offset,
                             uint64_t file_size);
const char *qk_cluster_problem(const struct qcowkit_image *img, uint64_t start,
                               uint64_t len, uint64_t file_size,
                               uint64_t guest);

/* table.c: cut the file (access lock held exclusively). */
int qk_io_truncate_to(struct qcowkit_image *img, uint64_t size);

/* table.c: reserve bytes at the end of the file; align is a power of two. */
int qk_allocate(struct qcowkit_image *img, uint64_t bytes, uint64_t align,
                uint64_t *offset);

/* table.c: the cluster's L2 entry (0 if unallocated), with lock held. */
int qk_lookup(struct qcowkit_image *img, uint64_t guest_offset,
              uint64_t *entry);

/* inflate.c: a compressed cluster, inflated whole into out. */
int qk_inflate_cluster(struct qcowkit_image *img, uint64_t entry,
                       uint64_t guest_offset, uint8_t *out);
/* inflate.c: n bytes at guest offset of a compressed cluster (cached). */
int qk_read_compressed(struct qcowkit_image *img, uint64_t entry, uint8_t *buf,
                       uint64_t n, uint64_t offset);

/* inflate.c: whole compressed clusters whose streams lie back to back. */
#define QK_PACKED_RUN_MAX 256
struct qk_packed_run {
    uint64_t guest;    /* offset of the first cluster */
    uint64_t host;     /* where its stream starts */
    uint64_t bytes;    /* of all the streams */
    unsigned clusters; /* 0: the request does not cover a whole cluster */
    uint32_t sizes[QK_PACKED_RUN_MAX];
};
/* The run from offset (entry compressed) within count bytes; lock held. */
int qk_packed_run_find(struct qcowkit_image *img, uint64_t entry,
                       uint64_t count, uint64_t offset,
                       struct qk_packed_run *run);
/* Read and inflate a run into buf; without the mutex (access shared). */
int qk_packed_run_read(struct qcowkit_image *img,
                       const struct qk_packed_run *run, uint8_t *buf);

/* deflate.c: the deflater behind qcowkit_deflater_* (compress.c). */
int qk_deflater_new(struct qcowkit_image *img, struct qcowkit_deflater **out);
void qk_deflater_free(struct qcowkit_deflater *d);
int qk_deflate_cluster(struct qcowkit_deflater *d, const void *src, size_t len,
                       void *out, size_t *out_len);

/*
 * grow.c: make [old, new_size) read as zeros before the header grows;
 * *leaked is set if some space is no longer referenced.
 */
int qk_zero_grown(struct qcowkit_image *img, uint64_t old, uint64_t new_size,
                  bool *leaked);

/* rw.c: read guest data of the backing chain (zeros past its end). */
int qk_read_backing(struct qcowkit_image *img, void *buf, size_t count,
                    uint64_t offset);
int qk_check_range(struct qcowkit_image *img, size_t count, uint64_t offset,
                   bool write);
/* rw.c: the public reads and writes, with the access lock held. */
int qk_pread(struct qcowkit_image *img, void *buf, size_t count,
             uint64_t offset);
int qk_pwrite(struct qcowkit_image *img, const void *buf, size_t count,
              uint64_t offset);
int qk_pwrite_zeroes(struct qcowkit_image *img, size_t count, uint64_t offset);

/*
 * discard.c: host ranges that cleared L2 entries pointed at, punched once
 * the cleared entries are durable.  Bounded: a batch holds at most cap
 * ranges, finished before it could overflow.
 */
struct qk_range {
    uint64_t start, len;
};

struct qk_punches {
    struct qk_range *ranges; /* in the order noted, adjacent ones merged */
    size_t count, cap;
    struct qk_range *extents; /* scratch: one table's extents, sorted */
    uint64_t truncations;     /* img->truncations when the batch began */
};

int qk_punches_init(struct qcowkit_image *img, struct qk_punches *p);
void qk_punches_free(struct qk_punches *p);
/* Could the next table's worth of ranges overflow the batch? */
bool qk_punches_full(const struct qcowkit_image *img,
                     const struct qk_punches *p);
/* Lock held: entry (of the cluster at guest) is about to be replaced;
 * remember its host bytes if they are trusted. */
void qk_punch_note(struct qcowkit_image *img, struct qk_punches *p,
                   uint64_t entry, uint64_t guest);
/* Lock held: forget ranges from index from on that an entry of table (as
 * it is now) still points into.  The range last noted before a table's
 * entries changed may have grown by them: check it too. */
int qk_punch_spare(struct qcowkit_image *img, struct qk_punches *p, size_t from,
                   const uint64_t *table);
/*
 * Access lock held shared, img->lock not held: make the changed entries
 * durable, then punch the batch's ranges with the access lock held
 * exclusively (taken and given back: held shared again on return), and
 * start a new batch.  -EOPNOTSUPP from the backend is not an error.
 */
int qk_punches_finish(struct qcowkit_image *img, struct qk_punches *p);
/* discard.c: qcowkit_discard of whole clusters [first, end) of a qcow
 * image (cluster-aligned; end may be the aligned-up virtual size);
 * access lock held shared. */
int qk_discard_clusters(struct qcowkit_image *img, uint64_t first,
                        uint64_t end);
/* discard.c: the whole clusters of [offset, offset+count): [*first, *end),
 * empty if *first >= *end. */
void qk_whole_clusters(const struct qcowkit_image *img, uint64_t offset,
                       uint64_t count, uint64_t *first, uint64_t *end);

/* deflate.c: one deflate stream of a cluster of zeros, in *out (malloc'd). */
int qk_zero_stream(struct qcowkit_image *img, uint8_t **out, size_t *len);

/* status.c: 0 if [offset, offset+count) is a non-empty range inside img,
 * else -EINVAL with a message naming what was asked. */
int qk_status_range(struct qcowkit_image *img, const char *what,
                    uint64_t offset, uint64_t count);
/* status.c: qcowkit_block_status with the access lock held. */
int qk_block_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                    struct qcowkit_extent *extent);

/* check.c: qcowkit_check, with the access lock held exclusively; the
 * whole report is filled. */
int qk_check(struct qcowkit_image *img, unsigned flags,
             qcowkit_check_fn report_fn, void *opaque,
             struct qcowkit_check_report *report);

/*
 * probe.c: write to a probed raw image a request that touches sector 0,
 * refused (-EPERM) if sector 0 would then probe as another format.
 */
int qk_raw_write_sector0(struct qcowkit_image *img, const void *buf,
                         size_t count, uint64_t offset);
/* probe.c: may a probed raw image be truncated to size?  Lock held. */
int qk_raw_truncate_guard(struct qcowkit_image *img, uint64_t size);

/* crypt.c */
void qk_crypt_set_key(struct qcowkit_image *img, const uint8_t *key,
                      size_t len);
void qk_crypt_wipe(struct qcowkit_image *img);
/* En- or decrypt whole sectors in place; guest_offset gives the IVs. */
int qk_crypt(const struct qcowkit_image *img, uint8_t *buf, size_t len,
             uint64_t guest_offset, bool encrypt);

/* data.c: guest data at a host offset, through AES when encrypted. */
int qk_read_data(struct qcowkit_image *img, uint8_t *buf, uint64_t n,
                 uint64_t host, uint64_t guest);
int qk_write_data(struct qcowkit_image *img, const uint8_t *buf, uint64_t n,
                  uint64_t host, uint64_t guest);

#endif
