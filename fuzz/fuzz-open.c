/*
 * fuzz-open: the input is the bytes of an image file.
 *
 * The image is put in a memory backend and opened read-only (format AUTO,
 * then QCOW, and, for an encrypted image, once more with a key), always
 * with QCOWKIT_OPEN_NO_BACKING so that a fuzzed backing name never reaches
 * the file system.  Each open image is asked for its info, mapped with
 * qcowkit_block_status over the whole virtual size, read (everything up
 * to a cap, then every allocated extent and a sparse sample of the rest)
 * and checked without repair.  Whatever the input, nothing may crash,
 * leak, hang or allocate without bound; a few properties of the results
 * are checked too and abort() when broken.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit.h"

#define MAX_EXTENTS    10000
#define LINEAR_CAP     (UINT64_C(4) << 20)  /* read [0, cap) whole */
#define EXTENT_CAP     (UINT64_C(1) << 20)  /* per allocated extent */
#define READ_BUDGET    (UINT64_C(32) << 20) /* total bytes read */
#define SPARSE_SAMPLES 64
#define CHUNK          (UINT64_C(64) << 10)
#define MAX_MESSAGES   100000
/*
 * Block status is walked over [0, MAP_CAP) only, then sampled in spans:
 * one call costs time linear in the clusters it covers, even when it
 * returns a single unallocated extent (see README.md).
 */
#define MAP_CAP     (UINT64_C(256) << 20)
#define SAMPLE_SPAN (UINT64_C(1) << 20)

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-open: %s (%s)\n", what, qcowkit_errmsg());
    abort();
}

struct reader {
    struct qcowkit_image *img;
    uint64_t size;
    uint64_t budget;
    uint8_t *buf;
};

/* Read [offset, offset+len) in chunks, within the budget. */
static void read_range(struct reader *r, uint64_t offset, uint64_t len)
{
    if (offset >= r->size)
        return;
    if (len > r->size - offset)
        len = r->size - offset;
    while (len > 0 && r->budget > 0) {
        size_t n = len < CHUNK ? (size_t)len : (size_t)CHUNK;
        int err;

        if (n > r->budget)
            n = (size_t)r->budget;
        err = qcowkit_pread(r->img, r->buf, n, offset);
        if (err > 0)
            fail("pread returned a positive value");
        r->budget -= n;
        offset += n;
        len -= n;
    }
}

/* Walk block status over [off, end), at most max_extents calls. */
static void map_range(struct reader *r, uint64_t cluster, uint64_t off,
                      uint64_t end, unsigned max_extents)
{
    struct qcowkit_extent ext;

    for (unsigned n = 0; off < end && n < max_extents; n++) {
        int err = qcowkit_block_status(r->img, off, end - off, &ext);
        if (err < 0) {
            /* An untrusted entry: step over its cluster. */
            off += cluster - (off % cluster);
            continue;
        }
        if (ext.offset != off)
            fail("block status moved the offset");
        if (ext.length == 0 || ext.length > end - off)
            fail("block status gave an empty or overlong extent");
        if ((ext.flags &
             ~(QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_COMPRESSED |
               QCOWKIT_EXTENT_HOST_OFFSET)) != 0)
            fail("block status gave unknown flags");
        if ((ext.flags &
             (QCOWKIT_EXTENT_COMPRESSED | QCOWKIT_EXTENT_HOST_OFFSET)) &&
            !(ext.flags & QCOWKIT_EXTENT_ALLOCATED))
            fail("block status: unallocated extent with data flags");
        if (ext.flags & QCOWKIT_EXTENT_ALLOCATED)
            read_range(r, off,
                       ext.length < EXTENT_CAP ? ext.length : EXTENT_CAP);
        off += ext.length;
    }
}

static void count_message(void *opaque, const char *message)
{
    unsigned long *count = opaque;

    if (!message)
        fail("check reported a NULL message");
    (void)strlen(message);
    ++*count;
}

static void exercise(struct qcowkit_image *img, int run_check)
{
    struct qcowkit_info info;
    struct qcowkit_extent ext;
    struct qcowkit_check_report report;
    struct reader r;
    uint64_t off, cluster, map_end;
    unsigned long messages = 0;
    unsigned n;
    int err;

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (qcowkit_get_info(img, &info) < 0)
        return;
    if (info.format != QCOWKIT_FORMAT_QCOW && info.format != QCOWKIT_FORMAT_RAW)
        fail("info reports an unknown format");
    if (info.format == QCOWKIT_FORMAT_QCOW &&
        (info.cluster_size == 0 ||
         info.cluster_size != UINT32_C(1) << info.cluster_bits))
        fail("info reports an inconsistent cluster size");
    if (memchr(info.backing_file, 0, sizeof info.backing_file) == NULL ||
        memchr(info.backing_path, 0, sizeof info.backing_path) == NULL)
        fail("info strings are not terminated");
    if (info.backing_path[0] != '\0')
        fail("a backing file was opened despite NO_BACKING");
    (void)qcowkit_name(img);
    if (qcowkit_backing(img) != NULL)
        fail("a backing image is open despite NO_BACKING");
    cluster = info.cluster_size ? info.cluster_size : 512;

    r.img = img;
    r.size = info.virtual_size;
    r.budget = READ_BUDGET;
    r.buf = malloc(CHUNK);
    if (!r.buf)
        abort();

    /* The map, bounded in extents; each allocated extent is read. */
    map_end = info.virtual_size < MAP_CAP ? info.virtual_size : MAP_CAP;
    map_range(&r, cluster, 0, map_end, MAX_EXTENTS);
    if (info.virtual_size > map_end) {
        uint64_t rest = info.virtual_size - map_end;
        for (unsigned i = 0; i <= SPARSE_SAMPLES; i++) {
            off = map_end + rest / SPARSE_SAMPLES * i;
            if (i == SPARSE_SAMPLES) /* the end */
                off = info.virtual_size -
                      (rest < SAMPLE_SPAN ? rest : SAMPLE_SPAN);
            off -= off % cluster;
            map_range(&r, cluster, off,
                      info.virtual_size - off < SAMPLE_SPAN ? info.virtual_size
                                                            : off + SAMPLE_SPAN,
                      MAX_EXTENTS / SPARSE_SAMPLES);
        }
    }

    /* Everything up to the cap, then a sparse sample and the end. */
    read_range(&r, 0, LINEAR_CAP);
    if (info.virtual_size > LINEAR_CAP) {
        uint64_t rest = info.virtual_size - LINEAR_CAP;
        for (unsigned i = 0; i < SPARSE_SAMPLES; i++) {
            off = LINEAR_CAP + rest / SPARSE_SAMPLES * i;
            read_range(&r, off - off % cluster, cluster);
        }
        r.budget += cluster;
        read_range(&r, info.virtual_size - 1, 1);
    }
    free(r.buf);

    /* Out-of-range requests are refused, never served. */
    if (qcowkit_pread(img, &n, 1, info.virtual_size) == 0)
        fail("pread past the end succeeded");
    if (qcowkit_block_status(img, info.virtual_size, 1, &ext) == 0)
        fail("block status past the end succeeded");
    if (info.virtual_size > 0 && qcowkit_pwrite(img, "x", 1, 0) != -EROFS)
        fail("pwrite to a read-only image did not fail with -EROFS");

    /* qcowkit_check clears a 16 MiB map: once per input is enough. */
    if (!run_check)
        return;
    memset(&report, 0, sizeof report);
    report.struct_size = sizeof report;
    err = qcowkit_check(img, 0, count_message, &messages, &report);
    if (err == 0 && (report.corruptions_fixed || report.leaks_fixed))
        fail("check without repair repaired something");
    if (messages > MAX_MESSAGES)
        fail("check reported an unbounded number of problems");
}

/*
 * Open the bytes as format and exercise the image; returns the format
 * opened (-1 if the open failed) and sets *crypt_method.
 */
static int open_and_exercise(const uint8_t *data, size_t size,
                             enum qcowkit_format format, const uint8_t *key,
                             size_t key_len, int run_check,
                             uint32_t *crypt_method)
{
    struct qcowkit_open_opts opts;
    struct qcowkit_image *img = NULL;
    struct qcowkit_io *io = NULL;
    const uint8_t *after;
    size_t after_len;
    int opened = -1;

    if (qcowkit_io_new_memory(data, size, &io) < 0)
        return -1;
    qcowkit_open_opts_init(&opts);
    opts.flags = QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING;
    opts.format = format;
    opts.key = key;
    opts.key_len = key_len;
    /* A small cache, so that eviction is exercised too. */
    opts.cache_size = 64 << 10;
    if (qcowkit_open_io(io, "fuzz.qcow", &opts, &img) == 0) {
        struct qcowkit_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        if (qcowkit_get_info(img, &info) == 0) {
            opened = (int)info.format;
            *crypt_method = info.crypt_method;
        }
        exercise(img, run_check);
        if (qcowkit_close(img) != 0)
            fail("closing a read-only image failed");
    } else if (img != NULL) {
        fail("a failed open returned a handle");
    }
    /* A read-only handle must leave the bytes alone. */
    if (qcowkit_io_memory_data(io, &after, &after_len) == 0 &&
        (after_len != size || (size && memcmp(after, data, size) != 0)))
        fail("a read-only open changed the image bytes");
    qcowkit_io_close(io);
    return opened;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[] = "fuzz-password"; /* as the seeds */
    uint32_t crypt_method = 0;
    int format;

    /* Probed: qcow if the magic matches, else raw. */
    format = open_and_exercise(data, size, QCOWKIT_FORMAT_AUTO, NULL, 0, 1,
                               &crypt_method);
    /* Forced qcow: differs from the probe only when it found raw. */
    if (format != QCOWKIT_FORMAT_QCOW &&
        open_and_exercise(data, size, QCOWKIT_FORMAT_QCOW, NULL, 0, 1,
                          &crypt_method) == QCOWKIT_FORMAT_QCOW)
        fail("forced qcow opened what the probe took for raw");
    /* Encrypted: again with the key, so that data is decrypted. */
    if (crypt_method == QCOWKIT_CRYPT_AES)
        open_and_exercise(data, size, QCOWKIT_FORMAT_QCOW, key, sizeof key - 1,
                          0, &crypt_method);
    return 0;
}
