/*
 * qcowkit.h - the one public header of libqcowkit.
 *
 * libqcowkit reads, writes and creates images in QEMU's original
 * copy-on-write format, "qcow" version 1, and plain raw images, so that a
 * program can treat both alike.
 *
 * HANDLES
 *   An image is an opaque struct qcowkit_image, made by qcowkit_open() or
 *   qcowkit_open_io() and released by qcowkit_close().  Storage is reached
 *   only through a struct qcowkit_io, the I/O backend (see I/O BACKENDS).
 *
 * ERRORS
 *   Every call that can fail returns 0 (or a non-negative count) on success
 *   and a negative errno value on failure: -EINVAL for a malformed image or
 *   argument, -ENOTSUP for an unsupported version or feature, -EIO for a
 *   table entry that cannot be trusted, -ENOENT for a missing backing file,
 *   -ELOOP for a loop in a backing chain, -EROFS for a write to a read-only
 *   image, -EACCES for data of an encrypted image opened without a key,
 *   -EBUSY for an image locked by another process, -EPERM for a write
 *   refused by the probed-raw guard (see PROBED RAW IMAGES), and whatever
 *   the backend returned for failed I/O.
 *   qcowkit_errmsg() then gives a one-line message for the calling thread,
 *   naming the file and what is wrong, e.g.
 *     "disk.qcow: cluster_bits 17 is outside 9..16".
 *   The message is per thread, so it works even when no handle was made.
 *
 * THREADS
 *   The library has no mutable global state and starts no threads.  One
 *   image handle may be used from several threads at once, for every
 *   call but qcowkit_close(), which must not race other calls on the
 *   same handle.  Opening one image for writing through two handles is
 *   undefined.  Each handle has a read-write lock: reads, writes,
 *   flushes, block status and info hold it shared and run in parallel
 *   (the handle serialises its table updates internally, and a read, or
 *   an overwrite of clusters already allocated, moves the data without
 *   its table lock); qcowkit_resize, qcowkit_make_empty, qcowkit_check
 *   (with or without repairs) and qcowkit_set_backing hold it
 *   exclusively, so they wait for the calls in flight and the calls
 *   made meanwhile wait for them; so do qcowkit_discard and
 *   qcowkit_pwrite_zeroes_flags while they punch freed space.  Space is thus
 * never given to new data while an older transfer can still land in it.  The
 * lock prefers writers (with glibc): a resize does not wait behind an endless
 * stream of reads.  A compressed write never reuses space: an overwrite of the
 * same cluster running at the same time lands either in the new cluster or in
 * the old one, which nothing points at any more, as if it had run first.
 *
 * DURABILITY
 *   A write is visible to reads on the same handle once the call returns.
 *   It is durable once a later qcowkit_flush() (or qcowkit_close())
 *   returns 0: a flush covers every write that returned before the flush
 *   was called, from any thread; one still running may or may not be
 *   covered.  Table updates are held in memory until then and written
 *   in an order that never lets an L1 or L2 entry reach the disk before
 *   the data it points at: after a crash the image holds, for every
 *   range, either its old or its new contents, and everything flushed.
 *
 * PROBED RAW IMAGES
 *   A raw image opened with its format probed (QCOWKIT_FORMAT_AUTO, for
 *   the image itself or as backing_format) refuses, with -EPERM and a
 *   message naming the file, every write (pwrite, pwrite_zeroes,
 *   pwrite_compressed, partial or not) after which its first 512 bytes
 *   would probe as another format, as QEMU does (CVE-2008-2004): else a
 *   guest could write a qcow header naming any host file as its backing
 *   file.  The judged sector is the current one merged with the write;
 *   writes to sector 0 are serialised.  The formats, by what QEMU's
 *   probes look for in the first sector:
 *     qcow, qcow2  "QFI\xfb" at 0 (any version)
 *     QED          "QED\0" at 0
 *     VMDK         "KDMV" or "COWD" at 0, or a text descriptor: comment
 *                  and blank lines, then "version=1", "2" or "3" ending
 *                  its line
 *     VDI          7f 10 da be at 64
 *     VHDX         "vhdxfile" at 0
 *     VPC          "conectix" at 0
 *     LUKS         "LUKS\xba\xbe" at 0
 *     bochs        "Bochs Virtual HD Image" at 0
 *     cloop        "#!/bin/sh\n#V2.0 Format\n" at 0
 *     parallels    "WithoutFreeSpace" or "WithouFreSpacExt" at 0
 *   (DMG's signature is at the end of the file and is not guarded.)  With
 *   the format given as QCOWKIT_FORMAT_RAW every write is allowed.
 *
 * I/O BACKENDS
 *   A backend is a table of functions over an opaque pointer: five
 *   required, the others optional.  The library reaches storage only
 *   through them, image locks and holes included, so a program's own
 *   backend gets locks and holes reported exactly when it implements lock
 *   and extent.  The library ships a file backend and an in-memory
 *   backend; a program may supply its own, and may wrap one backend in
 *   another (qcowkit_io_lock() and qcowkit_io_extent() pass lock and
 *   extent on).
 *
 * STRUCT SIZES AND VERSIONS
 *   Each struct passed in or out starts with struct_size, which the caller
 *   sets to the sizeof it was compiled with (the _init functions do).  A
 *   program built against an older header keeps working with a newer
 *   library: fields past its struct_size are treated as absent (zero or
 *   NULL) on input and never written on output.  Fields are only ever
 *   added at the end.  struct_size must cover the struct's required
 *   fields, named by its comment, else the call fails with -EINVAL.  An
 *   input struct from a newer header may be longer than the library
 *   knows: the extra bytes must be zero (-ENOTSUP otherwise), except in
 *   struct qcowkit_io_ops, whose extra functions are never called.  On
 *   output, struct_size is set to the bytes filled, and any further bytes
 *   up to the caller's struct_size are zeroed.  Symbols carry a version
 *   (QCOWKIT_0.1, one node per release); an _init function writes the
 *   size of its own symbol version.
 */
#ifndef QCOWKIT_H
#define QCOWKIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QCOWKIT_VERSION_MAJOR  0
#define QCOWKIT_VERSION_MINOR  1
#define QCOWKIT_VERSION_PATCH  0
#define QCOWKIT_VERSION_STRING "0.1.0"

/* The version of the library linked at run time, e.g. "0.1.0". */
const char *qcowkit_version(void);

/* ---------------------------------------------------------------- errors */

/* The message of the last failed call made by this thread ("" if none). */
const char *qcowkit_errmsg(void);

/* ------------------------------------------------------------ I/O backend */

/*
 * The functions of a backend.  Each returns 0 or a negative errno.
 *   pread:    fill all of buf; bytes past the end of the storage read as
 *             zeros (the library checks bounds itself where it matters).
 *   pwrite:   write all of buf, growing the storage if needed.
 *   flush:    make every completed write durable; the only barrier.
 *   get_size: the current size in bytes.
 *   truncate: set the size, growing with zeros or shrinking.
 *   close:    release the opaque pointer (may be NULL).
 *   discard:  optional (NULL): give back the space of a byte range, which
 *             then reads as zeros; the size does not change.
 *   lock:     optional (NULL: no locking): make the locks this backend
 *             holds those of mode, a QCOWKIT_IO_LOCK_* value (NONE
 *             releases them).  On a conflict with another user, hold what
 *             was held before, return -EBUSY and, if wanted, set *why to a
 *             static phrase naming the conflict ("another process writes
 *             it").  Storage that cannot be locked at all may return 0.
 *             Called when an image is opened, created and closed, never
 *             with FORCE_SHARE.  The file backend takes the OFD locks QEMU
 *             takes (see QCOWKIT_OPEN_FORCE_SHARE).
 *   extent:   optional (NULL: everything is data): describe the run of
 *             bytes that starts at offset: *hole = 1 if it holds no data
 *             and reads as zeros, 0 if it holds data; *length = its bytes
 *             (> 0; a hole that runs past the end of the storage may be
 *             UINT64_MAX - offset).  Any error means "data".  The file
 *             backend answers with SEEK_DATA and SEEK_HOLE.
 * pread, pwrite and extent may be called from several threads at once.
 * struct_size must cover pread..truncate, which are required; the others
 * may be NULL (or lie past an older caller's struct_size).
 */
struct qcowkit_io_ops {
    size_t struct_size; /* set by qcowkit_io_ops_init() */
    int (*pread)(void *opaque, void *buf, size_t count, uint64_t offset);
    int (*pwrite)(void *opaque, const void *buf, size_t count, uint64_t offset);
    int (*flush)(void *opaque);
    int (*get_size)(void *opaque, uint64_t *size);
    int (*truncate)(void *opaque, uint64_t size);
    void (*close)(void *opaque);
    int (*discard)(void *opaque, uint64_t offset, uint64_t length);
    int (*lock)(void *opaque, unsigned mode, const char **why);
    int (*extent)(void *opaque, uint64_t offset, uint64_t *length, int *hole);
};

/* Modes of the lock function, each including the one before. */
#define QCOWKIT_IO_LOCK_NONE  0u /* hold no lock */
#define QCOWKIT_IO_LOCK_READ  1u /* read; nobody else may write */
#define QCOWKIT_IO_LOCK_WRITE 2u /* read and write; nobody else may write */

/* Zero every function and set struct_size. */
void qcowkit_io_ops_init(struct qcowkit_io_ops *ops);

struct qcowkit_io;

/* Wrap caller-supplied functions.  name appears in error messages. */
int qcowkit_io_new(const struct qcowkit_io_ops *ops, void *opaque,
                   const char *name, struct qcowkit_io **io);

#define QCOWKIT_IO_RDONLY 0u
#define QCOWKIT_IO_RDWR   1u
#define QCOWKIT_IO_CREATE 2u /* create the file if missing (with RDWR) */
#define QCOWKIT_IO_EXCL   4u /* with CREATE: fail if the file exists */
#define QCOWKIT_IO_TRUNC  8u /* with RDWR: empty the file */

/*
 * A backend over a file (pread/pwrite/fdatasync), with QEMU's OFD image
 * locks and SEEK_DATA/SEEK_HOLE extents.  QCOWKIT_IO_TRUNC empties the
 * file at open, before any lock is taken: qcowkit_create() locks first.
 * Only regular files and block devices are opened: anything else (FIFO,
 * socket, folder, character device) fails at once, without blocking.
 * A block device keeps its size; truncating it zeroes what lies past.
 */
int qcowkit_io_open_file(const char *path, unsigned flags,
                         struct qcowkit_io **io);

/* A growable in-memory backend, starting as a copy of data[0..len). */
int qcowkit_io_new_memory(const void *data, size_t len, struct qcowkit_io **io);

/*
 * The bytes of an in-memory backend, valid until the next write or
 * truncate.  Returns -EINVAL for other backends.
 */
int qcowkit_io_memory_data(struct qcowkit_io *io, const uint8_t **data,
                           size_t *len);

/*
 * Direct calls through a backend: 0, or a negative errno with a message
 * naming the backend and the operation (as for every failing call).
 */
int qcowkit_io_pread(struct qcowkit_io *io, void *buf, size_t count,
                     uint64_t offset);
int qcowkit_io_pwrite(struct qcowkit_io *io, const void *buf, size_t count,
                      uint64_t offset);
int qcowkit_io_flush(struct qcowkit_io *io);
int qcowkit_io_get_size(struct qcowkit_io *io, uint64_t *size);
int qcowkit_io_truncate(struct qcowkit_io *io, uint64_t size);
/* -EOPNOTSUPP if the backend cannot discard. */
int qcowkit_io_discard(struct qcowkit_io *io, uint64_t offset, uint64_t length);
/*
 * The backend's own lock and extent functions, for a backend that wraps
 * another and passes these two on, as tests/backends/ (fault injection,
 * power loss) does; without them a wrapper would hide the locks and
 * holes of what it wraps.  They bypass what the library keeps per
 * backend (the lock that images over it share), so call them only on a
 * backend no image is open over directly.
 * qcowkit_io_lock: mode is a QCOWKIT_IO_LOCK_* value; 0 without a lock
 *   function; on -EBUSY, *why (if why is not NULL) is the backend's
 *   phrase for the conflict, or NULL.
 * qcowkit_io_extent: -EOPNOTSUPP without an extent function; -EIO for
 *   an answer of 0 bytes or one that runs past 2^64.
 */
int qcowkit_io_lock(struct qcowkit_io *io, unsigned mode, const char **why);
int qcowkit_io_extent(struct qcowkit_io *io, uint64_t offset, uint64_t *length,
                      int *hole);
const char *qcowkit_io_name(const struct qcowkit_io *io);

/* Release a backend (NULL is a no-op). */
void qcowkit_io_close(struct qcowkit_io *io);

/* ------------------------------------------------------------------ open */

enum qcowkit_format {
    /* probe: qcow if the magic matches, else raw (then sector 0 is
     * guarded: see PROBED RAW IMAGES) */
    QCOWKIT_FORMAT_AUTO = 0,
    QCOWKIT_FORMAT_QCOW = 1,
    QCOWKIT_FORMAT_RAW = 2,
};

#define QCOWKIT_OPEN_RDONLY 0u
#define QCOWKIT_OPEN_RDWR   1u
/*
 * Do not open the backing chain.  An image opened with its chain holds a
 * read lock on each backing file, so a backing file can be opened for
 * writing (as commit does) only while its overlay is open without it.
 */
#define QCOWKIT_OPEN_NO_BACKING 2u
/*
 * Read-only only: take no locks, as qemu-img's -U (force-share).  By
 * default an image and its backing files are locked through their
 * backend's lock function, with qcowkit_open_io() too, until
 * qcowkit_close().  Files are locked as QEMU locks them (OFD locks on the
 * permission bytes 100.. and 200.. of the file), so that QEMU and qcowkit
 * never write one image at once: a writer excludes every other user, a
 * reader excludes writers.  A conflict fails with -EBUSY.
 */
#define QCOWKIT_OPEN_FORCE_SHARE 4u
/*
 * Never sync the file, like QEMU's cache=unsafe (qemu-img convert's
 * default): flush and close still write every table, in order, but do not
 * wait for the disk, so a crash may lose or mix recent writes.  For copies
 * that are redone after a crash.
 */
#define QCOWKIT_OPEN_NO_SYNC 8u

/* struct_size must cover flags and format. */
struct qcowkit_open_opts {
    size_t struct_size; /* set by qcowkit_open_opts_init() */
    unsigned flags;     /* QCOWKIT_OPEN_* */
    enum qcowkit_format format;
    /* Format of the backing file; AUTO probes it (qcow, else raw). */
    enum qcowkit_format backing_format;
    /* Upper bound of the table caches (L2 tables, L1 pages) in bytes;
     * 0 chooses 32 MiB. */
    uint64_t cache_size;
    /*
     * The password of an AES-encrypted image (crypt_method 1), also given
     * to encrypted images of its backing chain.  Its first 16 bytes are
     * the AES-128 key, zero-padded.  The format has no key check: a wrong
     * password reads garbage.  The library keeps a copy, wiped on close.
     * Without a key, info and block status work; reads and writes fail
     * with -EACCES.
     */
    const uint8_t *key;
    size_t key_len;
};

void qcowkit_open_opts_init(struct qcowkit_open_opts *opts);

struct qcowkit_image;

/* Open the image at path.  opts may be NULL: read-only, probed format. */
int qcowkit_open(const char *path, const struct qcowkit_open_opts *opts,
                 struct qcowkit_image **img);

/*
 * Open an image over a backend.  The caller keeps ownership of io, which
 * must outlive the image.  name is the image's file name: it appears in
 * messages and relative backing names are resolved against its folder
 * (NULL: the current folder).
 */
int qcowkit_open_io(struct qcowkit_io *io, const char *name,
                    const struct qcowkit_open_opts *opts,
                    struct qcowkit_image **img);

/* Flush, then release everything.  Returns the first error.  NULL: 0. */
int qcowkit_close(struct qcowkit_image *img);

/* ------------------------------------------------------------------- data */

/* Read count bytes at offset; the range must lie inside the virtual size. */
int qcowkit_pread(struct qcowkit_image *img, void *buf, size_t count,
                  uint64_t offset);

/* Write count bytes at offset, any alignment, inside the virtual size. */
int qcowkit_pwrite(struct qcowkit_image *img, const void *buf, size_t count,
                   uint64_t offset);

/*
 * Write zeros.  Clusters wholly covered that already read as zeros (not
 * allocated, no backing file) stay unallocated.
 */
int qcowkit_pwrite_zeroes(struct qcowkit_image *img, size_t count,
                          uint64_t offset);

/*
 * Give back whole clusters of [offset, offset+count), which must lie
 * inside the virtual size, as writes must (a cluster that ends at the
 * virtual size counts as whole).  Partial clusters at either end are left
 * alone.  A discarded cluster reads from the backing file again, or as
 * zeros where there is none (as NBD's TRIM permits); compressed clusters
 * too.  Read-only images: -EROFS.
 *   qcow: the L2 entries are cleared; once that is durable (written and
 *   synced, unless QCOWKIT_OPEN_NO_SYNC), the space the clusters held is
 *   punched out of the file with the backend's discard (a compressed
 *   cluster: exactly its stream's bytes).  A backend that cannot punch
 *   (-EOPNOTSUPP) still gets the entries cleared.  An entry the library
 *   does not trust (see qcowkit_check) is cleared but its space is never
 *   punched; nor is space another entry of the same L2 table still
 *   points at.  Space is never reused (the file only grows), so a later
 *   write cannot land in a punched range.  One sync per call, or per
 *   batch of a few thousand ranges on large calls.  Holds the handle's
 *   lock shared, and exclusively only while punching, so that no
 *   overwrite that looked the cluster up before the discard can still
 *   land in the punched range: such a write and the discard take effect
 *   in either order.
 *   raw: the whole 512-byte sectors of the range are punched (they read
 *   as zeros), if the backend can; a probed raw image keeps sector 0.
 * Returns 0 or a negative errno; a failed punch or sync is returned after
 * the entries were cleared (the space is then left unused, a leak that
 * qcowkit_check finds and can repair).
 */
int qcowkit_discard(struct qcowkit_image *img, uint64_t offset, uint64_t count);

/* qcowkit_pwrite_zeroes_flags: the range may be given back. */
#define QCOWKIT_ZEROES_MAY_UNMAP 1u

/*
 * qcowkit_pwrite_zeroes with flags (0: the same call).  The range reads
 * as zeros afterwards in every case.  With QCOWKIT_ZEROES_MAY_UNMAP:
 *   qcow: whole clusters are discarded (see qcowkit_discard) where
 *   nothing is under them (no backing file, or past its end); over a
 *   backing file each gets a compressed cluster of zeros (a few bytes)
 *   and its old space is punched once that is durable; on encrypted
 *   overlays zeros are written as without the flag.  Partial clusters:
 *   zeros are written.
 *   raw: the range is punched; where the backend cannot, zeroed with
 *   FALLOC_FL_ZERO_RANGE, else zeros are written.
 * Without it, raw images are zeroed with FALLOC_FL_ZERO_RANGE where the
 * file system or device can, else zeros are written.  The probed-raw
 * guard applies as to any write.  Unknown flags: -EINVAL.
 */
int qcowkit_pwrite_zeroes_flags(struct qcowkit_image *img, size_t count,
                                uint64_t offset, unsigned flags);

/*
 * Write whole clusters compressed (refused with -ENOTSUP on encrypted
 * images: the format stores compressed clusters in plaintext): offset must be
 * cluster-aligned and count a multiple of the cluster size, or end at the
 * virtual size.  A cluster that does not shrink is stored normally.  Raw
 * images: a plain write.
 */
int qcowkit_pwrite_compressed(struct qcowkit_image *img, const void *buf,
                              size_t count, uint64_t offset);

/*
 * Compression in two steps, so that many threads can deflate while the
 * clusters are still stored in a chosen order.  A deflater belongs to one
 * thread at a time.
 */
struct qcowkit_deflater;

/* A deflater for img's cluster size (qcow images only). */
int qcowkit_deflater_new(struct qcowkit_image *img,
                         struct qcowkit_deflater **deflater);
void qcowkit_deflater_free(struct qcowkit_deflater *deflater);

/*
 * Deflate one cluster (len bytes, at most the cluster size; a shorter
 * last cluster is padded with zeros) into out, which holds a cluster.
 * *out_len is the stream's length, or 0 if it does not shrink: store the
 * data with qcowkit_pwrite then.  Needs no image and takes no lock.
 */
int qcowkit_deflate_cluster(struct qcowkit_deflater *deflater, const void *src,
                            size_t len, void *out, size_t *out_len);

/* Store a stream from qcowkit_deflate_cluster as the cluster at offset. */
int qcowkit_pwrite_deflated(struct qcowkit_image *img, const void *stream,
                            size_t len, uint64_t offset);

/* Make everything written so far durable. */
int qcowkit_flush(struct qcowkit_image *img);

/*
 * Drop every cluster of a qcow image, so that all of it reads from the
 * backing file again (what commit does after copying down).
 */
int qcowkit_make_empty(struct qcowkit_image *img);

/*
 * Change the virtual size (qcow: rounded up to 512).  Growing reads as
 * zeros; shrinking drops everything past the new end, so that growing
 * again reads zeros there too, and the space of what was dropped is given
 * back as qcowkit_check's leak repair does.  A bigger L1 table is written
 * at the end of the file before the header points at it.  Raw images: the file
 * is truncated or extended.
 */
int qcowkit_resize(struct qcowkit_image *img, uint64_t size);

/*
 * Store a new backing file name (NULL or "" for none), as
 * `qemu-img rebase -u` would if QEMU supported it for qcow: only the
 * header changes, not the data.  The handle keeps reading through the
 * backing image it opened; the new name takes effect at the next open.
 * A name that resolves to the image's own file is refused (-EINVAL).
 */
int qcowkit_set_backing(struct qcowkit_image *img, const char *name);

/* ------------------------------------------------------------------ check */

/* Output; struct_size must cover corruptions and leaks. */
struct qcowkit_check_report {
    size_t struct_size;   /* set by qcowkit_check_report_init() */
    uint64_t corruptions; /* entries or tables that cannot be trusted */
    uint64_t leaks;       /* whole clusters nothing points at */
    uint64_t
        corruptions_fixed;   /* entries cleared by QCOWKIT_CHECK_REPAIR_ALL */
    uint64_t leaks_fixed;    /* clusters given back */
    uint64_t total_clusters; /* guest clusters of the virtual size */
    uint64_t allocated_clusters;
    uint64_t compressed_clusters;
    uint64_t fragmented_clusters; /* not right after the previous one */
    uint64_t image_end_offset;    /* first byte after everything used */
};

void qcowkit_check_report_init(struct qcowkit_check_report *report);

#define QCOWKIT_CHECK_REPAIR_LEAKS 1u /* truncate or punch leaked space */
#define QCOWKIT_CHECK_REPAIR_ALL   3u /* also clear untrusted entries */

/* Called once per problem found or repaired, with a one-line message. */
typedef void (*qcowkit_check_fn)(void *opaque, const char *message);

/*
 * Check a qcow image's tables against each other and the file: entries
 * outside the file or misaligned, tables overlapping the header, the L1
 * table, each other or data, host clusters used twice, compressed
 * clusters that do not inflate to a whole cluster, and leaked space
 * (a cluster nothing points at that is a hole, as the backend's extent
 * function tells, or reads as zeros, is not a leak).  Repairs need a
 * writable handle.  Time is linear in the tables and memory is bounded
 * (a 16 MiB map per 32 GiB window of the file).  Returns 0 when the
 * check ran (whatever it found), or a negative errno when it could not.
 * report_fn runs with the handle locked: it must not call into img.
 */
int qcowkit_check(struct qcowkit_image *img, unsigned flags,
                  qcowkit_check_fn report_fn, void *opaque,
                  struct qcowkit_check_report *report);

/* ------------------------------------------------------------------- info */

#define QCOWKIT_CRYPT_NONE 0u
#define QCOWKIT_CRYPT_AES  1u

/* Output; struct_size must cover format and virtual_size. */
struct qcowkit_info {
    size_t struct_size; /* set by qcowkit_info_init() */
    enum qcowkit_format format;
    uint64_t virtual_size;
    uint32_t cluster_size; /* 0 for raw */
    uint32_t cluster_bits;
    uint32_t l2_bits;
    uint32_t crypt_method; /* QCOWKIT_CRYPT_* */
    uint64_t file_size;    /* bytes of the image file */
    /* The backing file name as stored ("" if none). */
    char backing_file[1024];
    /* The name the backing file was opened as ("" if none or not open). */
    char backing_path[4096];
    int read_only;
    /* 1 if the format was probed, 0 if given (open opts, backing_format). */
    int format_probed;
};

void qcowkit_info_init(struct qcowkit_info *info);

int qcowkit_get_info(struct qcowkit_image *img, struct qcowkit_info *info);

/* The image's name as given at open. */
const char *qcowkit_name(const struct qcowkit_image *img);

/* The open backing image, or NULL if there is none (or NO_BACKING). */
struct qcowkit_image *qcowkit_backing(struct qcowkit_image *img);

/* -------------------------------------------------------------- block map */

#define QCOWKIT_EXTENT_ALLOCATED   1u /* data stored in this image */
#define QCOWKIT_EXTENT_COMPRESSED  2u /* a compressed cluster */
#define QCOWKIT_EXTENT_HOST_OFFSET 4u /* host_offset is valid */
#define QCOWKIT_EXTENT_ZERO        8u /* reads zeros (raw hole; chain: none) */

struct qcowkit_extent {
    uint64_t offset;      /* guest offset */
    uint64_t length;      /* bytes with the same status */
    unsigned flags;       /* QCOWKIT_EXTENT_* */
    uint64_t host_offset; /* where the data of offset lies in the file */
};

/*
 * Describe this image only (not its backing chain) from offset for at
 * most count bytes: the first run of clusters with the same flags and,
 * for HOST_OFFSET, contiguous host offsets.  Raw images report allocated
 * runs with host_offset = offset; holes the backend's extent function
 * reports (the file backend: SEEK_HOLE) are runs of their own with
 * QCOWKIT_EXTENT_ZERO.
 */
int qcowkit_block_status(struct qcowkit_image *img, uint64_t offset,
                         uint64_t count, struct qcowkit_extent *extent);

/*
 * The longest run of data qcowkit_block_status_chain describes in one
 * call; a run that no layer holds (ZERO alone) may be longer.
 */
#define QCOWKIT_CHAIN_MAX_RUN (UINT64_C(1) << 30)

/* Output; struct_size must cover offset..layer. */
struct qcowkit_chain_extent {
    size_t struct_size;   /* set by qcowkit_chain_extent_init() */
    uint64_t offset;      /* guest offset, as asked */
    uint64_t length;      /* bytes with the same status */
    unsigned flags;       /* QCOWKIT_EXTENT_*, as the answering layer's */
    unsigned depth;       /* the answering layer: 0 = img, 1 = its backing */
    uint64_t host_offset; /* with HOST_OFFSET: where in layer's file */
    struct qcowkit_image *layer; /* the image at depth, open as long as img */
};

void qcowkit_chain_extent_init(struct qcowkit_chain_extent *extent);

/*
 * Describe img as a guest reads it, through its backing chain, from
 * offset for at most count bytes (a run held by a layer: at most
 * QCOWKIT_CHAIN_MAX_RUN; a run read as zeros through every layer is
 * bounded only by count, so a sparse image is walked in few calls): the
 * first run whose bytes all come from one layer with the same status, as
 * `qemu-img map` reports it.  flags:
 *   ALLOCATED   the layer at depth holds the run, with COMPRESSED and
 *               HOST_OFFSET as qcowkit_block_status gives them for that
 *               layer (an encrypted layer's data has no HOST_OFFSET);
 *               with ZERO too, the run is a hole of a raw layer's file
 *               (its host_offset still valid).
 *   ZERO alone  no layer holds the run and it reads as zeros: unallocated
 *               down to the bottom of the chain, past the end of a
 *               backing file shorter than the layer above it, or with no
 *               backing open (QCOWKIT_OPEN_NO_BACKING).  depth is then
 *               the last layer looked at.
 * A run never crosses the end of a backing file.
 * Raw holes are found as for qcowkit_block_status (SEEK_HOLE, over the
 * file backend).  No key is needed.  The range must be non-empty and lie
 * inside img's virtual size, else -EINVAL; a table entry of any layer
 * that cannot be trusted fails the call as in qcowkit_block_status.
 * Threads: like qcowkit_block_status, it may run alongside reads, writes
 * and status calls on img from other threads.  Each layer's lock is held
 * in turn, never two at once, and only to read at most
 * QCOWKIT_CHAIN_MAX_RUN bytes' worth of table entries (gaps in the L1 table
 * are skipped without reading them), so a writer waits for a bounded
 * walk; a
 * write racing the call may or may not be seen in its answer.
 */
int qcowkit_block_status_chain(struct qcowkit_image *img, uint64_t offset,
                               uint64_t count,
                               struct qcowkit_chain_extent *extent);

/* ---------------------------------------------------------------- create */

/* struct_size must cover format and size. */
struct qcowkit_create_opts {
    size_t struct_size;         /* set by qcowkit_create_opts_init() */
    enum qcowkit_format format; /* QCOW (the default) or RAW */
    uint64_t size;              /* virtual size; qcow rounds up to 512 */
    const char *backing_file;   /* stored as given; NULL for none */
    /*
     * Cluster size in bytes (512..65536, a power of two); 0 chooses as
     * QEMU does: 512 with a backing file, else 4096.
     */
    uint32_t cluster_size;
    /*
     * Non-NULL: make an AES-encrypted image (crypt_method 1), as
     * `qemu-img create -o encrypt.format=aes` does.  QEMU calls this
     * encryption weak and deprecated; the key is not stored in the image.
     */
    const uint8_t *key;
    size_t key_len;
};

void qcowkit_create_opts_init(struct qcowkit_create_opts *opts);

/*
 * Create an image at path (which must not exist unless truncate is set
 * in flags: QCOWKIT_IO_TRUNC).  With default options the file is
 * byte-identical to `qemu-img create -f qcow`.  A backing_file that is
 * the image itself (resolved against path's folder: the same inode, e.g.
 * through a symlink or hard link, or the same absolute path) is refused
 * with -EINVAL before the file is opened or truncated.  The write lock is
 * taken before the file is truncated, so an image in use (by QEMU or
 * qcowkit) is refused with -EBUSY and left as it was.
 */
int qcowkit_create(const char *path, const struct qcowkit_create_opts *opts,
                   unsigned flags);

/*
 * Create an image over an empty backend, holding its write lock (if it
 * has a lock function) while writing.  name is used in messages and, over
 * a file backend, to refuse a backing_file that is that same file.
 */
int qcowkit_create_io(struct qcowkit_io *io, const char *name,
                      const struct qcowkit_create_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* QCOWKIT_H */
