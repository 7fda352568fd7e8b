/*
 * fuzz-ops: a script of operations on an image in memory.
 *
 * The first bytes of the input choose the image: either a fresh, valid
 * image made by qcowkit_create_io (qcow or raw; cluster size, virtual size,
 * encryption, a stored backing name, a small L2 cache and pre-written
 * compressed clusters chosen by the input), or a fuzzed image taken from
 * the input itself.  The rest is a script of reads, writes, compressed
 * writes, zero writes, flushes, checks (repairing on a writable handle),
 * make_empty, block status queries and close/reopen, with offsets and
 * lengths from the input, clamped to the image.
 *
 * Large virtual sizes (up to 8 GiB and past the 4 GiB mark) are reached
 * through "windows": a few fixed ranges of the image where the script
 * acts; a model buffer holds each window's expected contents.
 *
 * For a fresh image every result is checked against the model and the
 * API's promises (a read returns what was written, check finds no
 * corruption, a flushed image reopened from a copy of its bytes reads the
 * same, unallocated extents read as zeros, ...); a violation calls
 * abort() so that libFuzzer reports it.  For a fuzzed image only memory
 * safety and termination are checked.
 *
 * Input layout:
 *   byte 0    mode: bits 0-2 image kind (0-4 qcow, 5 raw, 6-7 fuzzed
 *             image), bit 3 encrypted, bit 4 backing name, bit 5 small
 *             cache, bit 6 pre-written compressed clusters, bit 7 large
 *   byte 1    cluster size (0: default, else 512 << (b % 8))
 *   bytes 2-3 virtual size
 *   fuzzed image only: bytes 4-5 image length L, then L image bytes
 *   then      operations, one opcode byte and its arguments each
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "qcowkit.h"

#define MAX_OPS 200
/* qcowkit_check clears a 16 MiB map each time: a few per input. */
#define MAX_CHECKS     2
#define MAX_WINDOWS    4
#define WINDOW         (UINT64_C(256) << 10)
#define SMALL_MAX      (UINT64_C(1) << 20)
#define MAX_IMAGE_FILE (UINT64_C(256) << 20)

static const uint8_t fuzz_key[] = "fuzz-password"; /* as the seeds */

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t in_u8(struct input *in)
{
    uint8_t v = 0;

    if (in->n > 0) {
        v = *in->p++;
        in->n--;
    }
    return v;
}

static uint16_t in_u16(struct input *in)
{
    uint16_t v = in_u8(in);
    return (uint16_t)(v | (unsigned)in_u8(in) << 8);
}

static uint32_t in_u32(struct input *in)
{
    uint32_t v = in_u16(in);
    return v | (uint32_t)in_u16(in) << 16;
}

struct window {
    uint64_t base;
    uint64_t len;
    uint8_t *model;
};

struct state {
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    struct qcowkit_open_opts opts;
    bool strict;    /* the image started valid: check results */
    bool qcow;      /* qcow (else raw) */
    bool encrypted; /* crypt_method 1 */
    bool writable;  /* the handle is RDWR */
    uint64_t size;  /* virtual size */
    uint32_t cluster;
    unsigned nwin;
    struct window win[MAX_WINDOWS];
    uint8_t *buf; /* WINDOW bytes of scratch */
    unsigned op;
    unsigned checks;
    bool layout_clean; /* layout.h found nothing wrong at the start */
};

static void fail(struct state *s, const char *what, int err)
{
    fprintf(stderr, "fuzz-ops: op %u: %s (returned %d: %s)\n", s->op, what, err,
            qcowkit_errmsg());
    abort();
}

/* Fill a buffer as the input says: constant, zero, random or pattern. */
static void fill(uint8_t *buf, size_t len, uint8_t kind, uint32_t seed)
{
    uint32_t x = seed | 1;

    switch (kind % 4) {
    case 0:
        memset(buf, (int)(seed & 0xff), len);
        break;
    case 1:
        memset(buf, 0, len);
        break;
    case 2:
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        break;
    default:
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(seed + i / 16);
        break;
    }
}

/* Choose a range inside a window: *w, *off (absolute), *len. */
static struct window *pick_range(struct state *s, struct input *in,
                                 uint64_t *off, uint64_t *len)
{
    struct window *w = &s->win[in_u8(in) % s->nwin];
    uint64_t rel = w->len ? in_u32(in) % w->len : 0;
    uint64_t max = w->len - rel;
    uint32_t l = in_u32(in);

    /* Mostly short requests, sometimes long ones. */
    if (l & 0x80000000u)
        *len = max ? (l & 0x7fffffffu) % (max + 1) : 0;
    else
        *len = max ? (l % 4096 < max ? l % 4096 : max) : 0;
    *off = w->base + rel;
    return w;
}

static void model_write(struct window *w, uint64_t off, const uint8_t *data,
                        uint64_t len)
{
    if (data)
        memcpy(w->model + (off - w->base), data, len);
    else
        memset(w->model + (off - w->base), 0, len);
}

static void compare(struct state *s, struct window *w, uint64_t off,
                    uint64_t len)
{
    int err;

    if (len == 0)
        return;
    err = qcowkit_pread(s->img, s->buf, len, off);
    if (!s->strict)
        return;
    if (err != 0)
        fail(s, "pread of a valid range failed", err);
    if (memcmp(s->buf, w->model + (off - w->base), len) != 0) {
        uint64_t i = 0;
        while (s->buf[i] == w->model[off - w->base + i])
            i++;
        fprintf(stderr,
                "fuzz-ops: read of %llu bytes at %llu: byte %llu is 0x%02x, "
                "expected 0x%02x\n",
                (unsigned long long)len, (unsigned long long)off,
                (unsigned long long)(off + i), s->buf[i],
                w->model[off - w->base + i]);
        fail(s, "read does not match what was written", 0);
    }
}

static void compare_all(struct state *s)
{
    for (unsigned i = 0; i < s->nwin; i++)
        compare(s, &s->win[i], s->win[i].base, s->win[i].len);
}

/* The result a write-like call must have on a valid image. */
static int expected_write_result(const struct state *s)
{
    if (!s->writable)
        return -EROFS;
    return 0;
}

/*
 * A probed raw image refuses writes that would put another format's
 * header into sector 0 (the model then stays as it was).
 */
static bool guard_refused(const struct state *s, int err, uint64_t off)
{
    return err == -EPERM && !s->qcow && s->writable && off < 512;
}

static void op_write(struct state *s, struct input *in)
{
    uint64_t off, len;
    struct window *w = pick_range(s, in, &off, &len);
    uint8_t kind = in_u8(in);
    int err;

    fill(s->buf, len, kind, in_u32(in));
    err = qcowkit_pwrite(s->img, s->buf, len, off);
    if (err == 0)
        model_write(w, off, s->buf, len);
    else if (s->strict && err != expected_write_result(s) &&
             !guard_refused(s, err, off))
        fail(s, "pwrite failed", err);
    if (s->strict && err == 0 && expected_write_result(s) != 0)
        fail(s, "pwrite to a read-only handle succeeded", err);
}

static void op_zeroes(struct state *s, struct input *in)
{
    uint64_t off, len;
    struct window *w = pick_range(s, in, &off, &len);
    int err = qcowkit_pwrite_zeroes(s->img, len, off);

    if (err == 0)
        model_write(w, off, NULL, len);
    else if (s->strict && err != expected_write_result(s) &&
             !guard_refused(s, err, off))
        fail(s, "pwrite_zeroes failed", err);
    if (s->strict && err == 0 && expected_write_result(s) != 0)
        fail(s, "pwrite_zeroes to a read-only handle succeeded", err);
}

static void op_compressed(struct state *s, struct input *in)
{
    struct window *w = &s->win[in_u8(in) % s->nwin];
    uint32_t cs = s->cluster ? s->cluster : 4096;
    uint64_t clusters = (w->len + cs - 1) / cs;
    uint64_t off, len;
    uint8_t kind;
    int err, want;

    if (clusters == 0)
        return;
    off = w->base + (uint64_t)in_u16(in) % clusters * cs;
    len = (uint64_t)(1 + in_u8(in) % 4) * cs;
    if (len > w->base + w->len - off)
        len = w->base + w->len - off; /* ends at the window's end */
    kind = in_u8(in);
    fill(s->buf, len, kind, in_u32(in));
    err = qcowkit_pwrite_compressed(s->img, s->buf, len, off);
    if (err == 0)
        model_write(w, off, s->buf, len);
    want = expected_write_result(s);
    if (want == 0 && s->encrypted)
        want = -ENOTSUP;
    if (s->strict && err != want && !guard_refused(s, err, off))
        fail(s, "pwrite_compressed gave an unexpected result", err);
}

static void op_read(struct state *s, struct input *in)
{
    uint64_t off, len;
    struct window *w = pick_range(s, in, &off, &len);

    compare(s, w, off, len);
}

static void count_message(void *opaque, const char *message)
{
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz-ops: check: %s\n", message);
    ++*(unsigned long *)opaque;
}

/*
 * FUZZ_DUMP=prefix: before each check, write the image bytes to
 * prefix.<op>.img and the first window's model to prefix.<op>.model, to
 * look at them with other tools (qemu-img, qemu-io).
 */
static void dump(struct state *s)
{
    const char *prefix = getenv("FUZZ_DUMP");
    const uint8_t *data;
    size_t len;
    char path[4096];
    FILE *f;

    if (!prefix)
        return;
    if (s->writable)
        (void)qcowkit_flush(s->img); /* so that the dump is complete */
    if (qcowkit_io_memory_data(s->io, &data, &len) != 0)
        return;
    snprintf(path, sizeof path, "%s.%u.img", prefix, s->op);
    if ((f = fopen(path, "wb")) != NULL) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s.%u.model", prefix, s->op);
    if ((f = fopen(path, "wb")) != NULL) {
        fwrite(s->win[0].model, 1, s->win[0].len, f);
        fclose(f);
    }
}

static void op_check(struct state *s)
{
    struct qcowkit_check_report r;
    unsigned long messages = 0;
    unsigned flags = s->writable ? QCOWKIT_CHECK_REPAIR_ALL : 0;
    int err;

    if (++s->checks > MAX_CHECKS)
        return;
    dump(s);
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    err = qcowkit_check(s->img, flags, count_message, &messages, &r);
    if (!s->strict || !s->qcow)
        return;
    if (err != 0)
        fail(s, "check of a valid image failed", err);
    if (r.corruptions != 0)
        fail(s, "check found corruption in a valid image", (int)r.corruptions);
    if (r.leaks != r.leaks_fixed && s->writable)
        fail(s, "check with repair left leaks", (int)r.leaks);
    if (r.total_clusters != (s->size + s->cluster - 1) / s->cluster)
        fail(s, "check counted the wrong number of guest clusters", 0);
    if (r.allocated_clusters > r.total_clusters ||
        r.compressed_clusters > r.allocated_clusters)
        fail(s, "check counted more clusters than possible", 0);
    if (r.leaks_fixed && ++s->checks <= MAX_CHECKS) {
        /* Giving back leaked space must not touch the data. */
        compare_all(s);
        memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        err = qcowkit_check(s->img, 0, NULL, NULL, &r);
        if (err != 0 || r.corruptions != 0 || r.leaks != 0)
            fail(s, "check after repair still finds problems", err);
    }
}

static void op_make_empty(struct state *s)
{
    int err = qcowkit_make_empty(s->img);
    int want = !s->qcow ? -ENOTSUP : expected_write_result(s);

    if (err == 0) {
        for (unsigned i = 0; i < s->nwin; i++)
            memset(s->win[i].model, 0, s->win[i].len);
    }
    /* A read-only raw image may say either. */
    if (s->strict && err != want && !(!s->qcow && err == -EROFS))
        fail(s, "make_empty gave an unexpected result", err);
}

static int open_image(struct state *s, bool writable)
{
    int err;

    s->opts.flags = QCOWKIT_OPEN_NO_BACKING |
                    (writable ? QCOWKIT_OPEN_RDWR : QCOWKIT_OPEN_RDONLY);
    err = qcowkit_open_io(s->io, "fuzz-ops.qcow", &s->opts, &s->img);
    s->writable = writable;
    return err;
}

static int op_reopen(struct state *s, struct input *in)
{
    int err = qcowkit_close(s->img);

    s->img = NULL;
    if (s->strict && err != 0)
        fail(s, "close of a valid image failed", err);
    err = open_image(s, (in_u8(in) & 3) != 0);
    if (s->strict && err != 0)
        fail(s, "reopen of a valid image failed", err);
    return err;
}

static void op_flush(struct state *s)
{
    int err = qcowkit_flush(s->img);

    if (s->strict && err != 0)
        fail(s, "flush failed", err);
}

/* After a flush, a copy of the bytes must open and read the same. */
static void op_snapshot(struct state *s)
{
    struct qcowkit_io *copy = NULL;
    struct qcowkit_image *img = NULL, *saved = s->img;
    const uint8_t *data;
    size_t len;
    int err;

    if (qcowkit_flush(s->img) != 0 ||
        qcowkit_io_memory_data(s->io, &data, &len) != 0)
        return;
    if (qcowkit_io_new_memory(data, len, &copy) != 0)
        return;
    s->opts.flags = QCOWKIT_OPEN_NO_BACKING;
    err = qcowkit_open_io(copy, "fuzz-ops-copy.qcow", &s->opts, &img);
    if (err == 0) {
        s->img = img;
        compare_all(s);
        s->img = saved;
        err = qcowkit_close(img);
    } else if (s->strict) {
        fail(s, "a flushed copy of a valid image does not open", err);
    }
    qcowkit_io_close(copy);
}

static void op_block_status(struct state *s, struct input *in)
{
    struct qcowkit_extent e;
    struct window *w = &s->win[in_u8(in) % s->nwin];
    uint64_t off = w->base + (w->len ? in_u32(in) % w->len : 0);
    uint64_t count;
    uint64_t file_size = 0;
    int err;

    if (w->len == 0)
        return;
    count = (in_u8(in) & 1) ? s->size - off : w->base + w->len - off;
    err = qcowkit_block_status(s->img, off, count, &e);
    if (err != 0) {
        if (s->strict)
            fail(s, "block status of a valid image failed", err);
        return;
    }
    if (e.offset != off || e.length == 0 || e.length > count)
        fail(s, "block status gave a bad extent", 0);
    if (!s->strict)
        return;
    if ((e.flags & QCOWKIT_EXTENT_HOST_OFFSET) &&
        qcowkit_io_get_size(s->io, &file_size) == 0 &&
        (e.host_offset > file_size || e.length > file_size - e.host_offset))
        fail(s, "block status points past the end of the file", 0);
    if (!(e.flags & QCOWKIT_EXTENT_ALLOCATED)) {
        /* No backing file is open: unallocated reads as zeros. */
        for (unsigned i = 0; i < s->nwin; i++) {
            struct window *v = &s->win[i];
            uint64_t a = e.offset > v->base ? e.offset : v->base;
            uint64_t b = e.offset + e.length < v->base + v->len
                             ? e.offset + e.length
                             : v->base + v->len;
            for (uint64_t x = a; x < b; x++)
                if (v->model[x - v->base] != 0)
                    fail(s, "an unallocated extent holds written data", 0);
        }
    }
}

/* Lay out the windows for a virtual size. */
static void make_windows(struct state *s)
{
    const uint64_t align = 65536;

    s->nwin = 0;
    if (s->size <= SMALL_MAX) {
        s->win[s->nwin++] = (struct window){0, s->size, NULL};
        return;
    }
    s->win[s->nwin++] = (struct window){0, WINDOW, NULL};
    if (s->size > (UINT64_C(4) << 30) + WINDOW)
        s->win[s->nwin++] =
            (struct window){(UINT64_C(4) << 30) - WINDOW / 2, WINDOW, NULL};
    else
        s->win[s->nwin++] =
            (struct window){(s->size / 2) & ~(align - 1), WINDOW, NULL};
    {
        uint64_t base = (s->size - WINDOW) & ~(align - 1);
        s->win[s->nwin++] = (struct window){base, s->size - base, NULL};
    }
}

static int make_fresh(struct state *s, uint8_t mode, uint8_t csel,
                      uint16_t zsel)
{
    struct qcowkit_create_opts c;
    bool large = mode & 0x80;

    qcowkit_create_opts_init(&c);
    s->qcow = (mode & 7) != 5;
    c.format = s->qcow ? QCOWKIT_FORMAT_QCOW : QCOWKIT_FORMAT_RAW;
    if (large && s->qcow)
        c.size = ((uint64_t)(zsel % 8) + 1) << 30 | (uint64_t)(zsel >> 3) * 512;
    else
        c.size = 1 + (uint64_t)zsel * 16; /* up to 1 MiB, odd sizes too */
    if (s->qcow) {
        c.cluster_size = csel ? UINT32_C(512) << (csel % 8) : 0;
        if (mode & 0x10)
            c.backing_file = "fuzz-backing.img"; /* stored, never opened */
        if (mode & 0x08) {
            c.key = fuzz_key;
            c.key_len = sizeof fuzz_key - 1;
            s->encrypted = true;
        }
    }
    if (qcowkit_io_new_memory(NULL, 0, &s->io) != 0)
        return -1;
    if (qcowkit_create_io(s->io, "fuzz-ops.qcow", &c) != 0) {
        fprintf(stderr, "fuzz-ops: create failed: %s\n", qcowkit_errmsg());
        abort();
    }
    s->strict = true;
    return 0;
}

/*
 * No operation may create an overlap or misplace a cluster.  Checked only
 * where the image is flushed anyway (flush, check, reopen, snapshot, the
 * end), so that unflushed states still span operations, and only on
 * images that started clean: a hostile image may be broken already.
 */
static void check_layout(struct state *s)
{
    struct layout_result lr;

    if (!s->layout_clean || !s->img ||
        (s->writable && qcowkit_flush(s->img) != 0))
        return;
    if (layout_check_io(s->io, &lr)) {
        fprintf(stderr, "fuzz-ops: op %u: layout: %s\n", s->op, lr.first);
        abort();
    }
}

static void run(struct state *s, struct input *in)
{
    while (in->n > 0 && s->op < MAX_OPS && s->img) {
        uint8_t code = in_u8(in);
        s->op++;
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "fuzz-ops: op %u: opcode %u (%s)\n", s->op,
                    code % 16, s->writable ? "rw" : "ro");
        switch (code % 16) {
        case 0:
        case 1:
        case 2:
            op_read(s, in);
            break;
        case 3:
        case 4:
        case 5:
            op_write(s, in);
            break;
        case 6:
        case 7:
            op_compressed(s, in);
            break;
        case 8:
            op_zeroes(s, in);
            break;
        case 9:
            op_flush(s);
            break;
        case 10:
            op_check(s);
            break;
        case 11:
            op_make_empty(s);
            break;
        case 12:
            if (op_reopen(s, in) != 0)
                return;
            break;
        case 13:
            op_block_status(s, in);
            break;
        case 14:
            op_snapshot(s);
            break;
        default:
            compare_all(s);
            break;
        }
        if (code % 16 == 9 || code % 16 == 10 || code % 16 == 12 ||
            code % 16 == 14)
            check_layout(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    struct state s;
    struct qcowkit_info info;
    uint8_t mode = in_u8(&in), csel = in_u8(&in);
    uint16_t zsel = in_u16(&in);
    int err;

    memset(&s, 0, sizeof s);
    qcowkit_open_opts_init(&s.opts);
    if (mode & 0x20)
        s.opts.cache_size = 4096; /* a tiny L2 cache: constant eviction */
    s.opts.key = fuzz_key;
    s.opts.key_len = sizeof fuzz_key - 1;
    if ((mode & 7) >= 6) {
        size_t len = in_u16(&in);
        if (len > in.n)
            len = in.n;
        if (qcowkit_io_new_memory(in.p, len, &s.io) != 0)
            return 0;
        in.p += len;
        in.n -= len;
    } else if (make_fresh(&s, mode, csel, zsel) != 0) {
        return 0;
    }
    err = open_image(&s, true);
    if (err != 0) {
        if (s.strict)
            fail(&s, "a fresh image does not open", err);
        qcowkit_io_close(s.io);
        return 0;
    }
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (qcowkit_get_info(s.img, &info) != 0) {
        if (s.strict)
            fail(&s, "get_info failed", -1);
        goto out;
    }
    s.qcow = info.format == QCOWKIT_FORMAT_QCOW;
    s.encrypted = s.qcow && info.crypt_method == QCOWKIT_CRYPT_AES;
    s.size = info.virtual_size;
    s.cluster = info.cluster_size;
    make_windows(&s);
    s.buf = malloc(WINDOW > SMALL_MAX ? WINDOW : SMALL_MAX);
    if (!s.buf)
        abort();
    for (unsigned i = 0; i < s.nwin; i++) {
        s.win[i].model = calloc(1, s.win[i].len ? s.win[i].len : 1);
        if (!s.win[i].model)
            abort();
        /* A fuzzed image starts with whatever it reads as. */
        if (!s.strict && s.win[i].len)
            (void)qcowkit_pread(s.img, s.win[i].model, s.win[i].len,
                                s.win[i].base);
    }
    if (s.strict && (mode & 0x40) && s.qcow && !s.encrypted) {
        /* Pre-write every other cluster of each window compressed. */
        for (unsigned i = 0; i < s.nwin; i++) {
            struct window *w = &s.win[i];
            for (uint64_t o = 0; o < w->len; o += 2 * (uint64_t)s.cluster) {
                uint64_t n = w->len - o < s.cluster ? w->len - o : s.cluster;
                fill(s.buf, n, 3, (uint32_t)(o >> 9) + i);
                err = qcowkit_pwrite_compressed(s.img, s.buf, n, w->base + o);
                if (err != 0)
                    fail(&s, "pre-writing compressed clusters failed", err);
                model_write(w, w->base + o, s.buf, n);
            }
        }
    }
    {
        struct layout_result lr;
        s.layout_clean = s.qcow && layout_check_io(s.io, &lr) == 0;
    }
    run(&s, &in);
    if (s.img)
        compare_all(&s);
    check_layout(&s);
out:
    if (s.img) {
        err = qcowkit_close(s.img);
        if (s.strict && err != 0)
            fail(&s, "final close failed", err);
    }
    /* A fuzzed image must not have grown without bound. */
    if (!s.strict) {
        uint64_t file_size = 0;
        if (qcowkit_io_get_size(s.io, &file_size) == 0 &&
            file_size > MAX_IMAGE_FILE)
            fail(&s, "a fuzzed image grew past 256 MiB", 0);
    }
    qcowkit_io_close(s.io);
    for (unsigned i = 0; i < s.nwin; i++)
        free(s.win[i].model);
    free(s.buf);
    return 0;
}
