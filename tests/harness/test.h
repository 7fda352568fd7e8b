/*
 * test.h - a small header-only harness for the libqcowkit tests.
 *
 * Every test is a program: exit 0 on success, 1 on failure, 77 to skip.
 * A failed check prints file:line, the expression, the values involved
 * and qcowkit_errmsg(), then exits with 1.
 */
#ifndef QCOWKIT_TEST_H
#define QCOWKIT_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcowkit.h"

/* ------------------------------------------------------------ reporting */

/* Called (if set) before a failing test exits, e.g. to print a seed. */
static void (*test_fail_hook)(void);

static inline void test_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void test_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n    qcowkit_errmsg: \"%s\"\n", qcowkit_errmsg());
    if (test_fail_hook)
        test_fail_hook();
    fflush(stderr);
    exit(1);
}

#define TEST_FAIL(...) test_fail_(__FILE__, __LINE__, __VA_ARGS__)

#define TEST_SKIP(...)                                                         \
    do {                                                                       \
        fprintf(stderr, "SKIP: ");                                             \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        exit(77);                                                              \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            TEST_FAIL("CHECK(%s)", #cond);                                     \
    } while (0)

/* Compare two integers (as signed 64-bit values). */
#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long check_a_ = (long long)(a);                                   \
        long long check_b_ = (long long)(b);                                   \
        if (check_a_ != check_b_)                                              \
            TEST_FAIL("CHECK_EQ(%s, %s): %lld != %lld (0x%llx != 0x%llx)", #a, \
                      #b, check_a_, check_b_, (unsigned long long)check_a_,    \
                      (unsigned long long)check_b_);                           \
    } while (0)

/* Compare two unsigned 64-bit integers. */
#define CHECK_EQ_U64(a, b)                                                     \
    do {                                                                       \
        uint64_t check_a_ = (uint64_t)(a);                                     \
        uint64_t check_b_ = (uint64_t)(b);                                     \
        if (check_a_ != check_b_)                                              \
            TEST_FAIL("CHECK_EQ_U64(%s, %s): %" PRIu64 " != %" PRIu64          \
                      " (0x%" PRIx64 " != 0x%" PRIx64 ")",                     \
                      #a, #b, check_a_, check_b_, check_a_, check_b_);         \
    } while (0)

/* A call returning 0 (or a non-negative count) on success. */
#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        int check_r_ = (expr);                                                 \
        if (check_r_ < 0)                                                      \
            TEST_FAIL("%s returned %d (%s)", #expr, check_r_,                  \
                      strerror(-check_r_));                                    \
    } while (0)

/* A call that must fail with the negative errno err. */
#define CHECK_ERR(expr, err)                                                   \
    do {                                                                       \
        int check_r_ = (expr);                                                 \
        int check_e_ = (err);                                                  \
        if (check_r_ != check_e_)                                              \
            TEST_FAIL("%s returned %d (%s), expected %d (%s)", #expr,          \
                      check_r_,                                                \
                      check_r_ < 0 ? strerror(-check_r_) : "success",          \
                      check_e_, strerror(-check_e_));                          \
    } while (0)

/* qcowkit_errmsg() must contain sub (case-insensitive). */
#define CHECK_MSG_HAS(sub)                                                     \
    do {                                                                       \
        const char *check_m_ = qcowkit_errmsg();                               \
        if (!check_m_ || !strcasestr(check_m_, (sub)))                         \
            TEST_FAIL("error message does not mention \"%s\"", (sub));         \
    } while (0)

/* Two buffers must be equal; reports the first differing byte. */
#define CHECK_MEM_EQ(a, b, n)                                                  \
    do {                                                                       \
        size_t check_off_;                                                     \
        if (test_memdiff_((a), (b), (n), &check_off_))                         \
            TEST_FAIL("CHECK_MEM_EQ(%s, %s, %s): first difference at byte "    \
                      "%zu of %zu: 0x%02x != 0x%02x",                          \
                      #a, #b, #n, check_off_, (size_t)(n),                     \
                      ((const uint8_t *)(a))[check_off_],                      \
                      ((const uint8_t *)(b))[check_off_]);                     \
    } while (0)

static inline int test_memdiff_(const void *a, const void *b, size_t n,
                                size_t *off)
{
    const uint8_t *pa = a, *pb = b;

    if (memcmp(pa, pb, n) == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (pa[i] != pb[i]) {
            *off = i;
            return 1;
        }
    }
    return 0;
}

static inline int test_is_zero(const void *buf, size_t n)
{
    const uint8_t *p = buf;

    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

#define CHECK_ZERO(buf, n)                                                     \
    do {                                                                       \
        const uint8_t *check_p_ = (const uint8_t *)(buf);                      \
        for (size_t check_i_ = 0; check_i_ < (size_t)(n); check_i_++)          \
            if (check_p_[check_i_])                                            \
                TEST_FAIL("%s is not zero at byte %zu (0x%02x)", #buf,         \
                          check_i_, check_p_[check_i_]);                       \
    } while (0)

static inline void *test_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static inline void *test_xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);

    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Bound the run time of a test; a hang becomes a failure. */
static inline void test_init(unsigned seconds)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(seconds);
}

/* ----------------------------------------------------------------- PRNG */

/* splitmix64-seeded xorshift64*: small, fast and reproducible. */
struct test_rng {
    uint64_t s;
};

static inline uint64_t test_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline void test_rng_seed(struct test_rng *r, uint64_t seed)
{
    uint64_t x = seed;

    r->s = test_splitmix64(&x);
    if (r->s == 0)
        r->s = UINT64_C(0x2545f4914f6cdd1d);
}

static inline uint64_t test_rng_next(struct test_rng *r)
{
    uint64_t x = r->s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t test_rng_below(struct test_rng *r, uint64_t n)
{
    return n ? test_rng_next(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline uint64_t test_rng_range(struct test_rng *r, uint64_t lo,
                                      uint64_t hi)
{
    return lo + test_rng_below(r, hi - lo + 1);
}

static inline void test_rng_fill(struct test_rng *r, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t i = 0;

    while (i + 8 <= n) {
        uint64_t v = test_rng_next(r);
        memcpy(p + i, &v, 8);
        i += 8;
    }
    if (i < n) {
        uint64_t v = test_rng_next(r);
        memcpy(p + i, &v, n - i);
    }
}

/* A deterministic, position-dependent pattern (never all zeros). */
static inline void test_pattern(void *buf, size_t n, uint64_t offset,
                                uint32_t tag)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i++) {
        uint64_t o = offset + i;
        p[i] =
            (uint8_t)((o * 131u) ^ (o >> 9) ^ (tag * 29u) ^ (tag >> 8) ^ 0x5a);
    }
}

/* A compressible cluster: long runs with some variation. */
static inline void test_compressible(void *buf, size_t n, uint32_t tag)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(((i / 64) + tag) & 0x7f) | 1;
}

/* Environment overrides (QCOWKIT_SEED, QCOWKIT_ITERATIONS, ...). */
static inline uint64_t test_env_u64(const char *name, uint64_t def)
{
    const char *v = getenv(name);

    if (!v || !*v)
        return def;
    return strtoull(v, NULL, 0);
}

/* ----------------------------------------------------- big-endian helpers */

static inline void test_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void test_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void test_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint32_t test_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t test_get_be64(const uint8_t *p)
{
    return ((uint64_t)test_get_be32(p) << 32) | test_get_be32(p + 4);
}

/* --------------------------------------------------------- raw headers */

#define TEST_QCOW_MAGIC       0x514649fbu /* 'Q' 'F' 'I' 0xfb */
#define TEST_HEADER_SIZE      48
#define TEST_OFLAG_COMPRESSED (UINT64_C(1) << 63)

/* The fields of a qcow version 1 header, in host order. */
struct test_header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t mtime;
    uint64_t size;
    uint8_t cluster_bits;
    uint8_t l2_bits;
    uint16_t padding;
    uint32_t crypt_method;
    uint64_t l1_table_offset;
};

static inline void test_header_init(struct test_header *h, uint64_t size,
                                    unsigned cluster_bits, unsigned l2_bits)
{
    memset(h, 0, sizeof(*h));
    h->magic = TEST_QCOW_MAGIC;
    h->version = 1;
    h->size = size;
    h->cluster_bits = (uint8_t)cluster_bits;
    h->l2_bits = (uint8_t)l2_bits;
    h->l1_table_offset = TEST_HEADER_SIZE;
}

static inline void test_header_encode(const struct test_header *h,
                                      uint8_t out[TEST_HEADER_SIZE])
{
    test_put_be32(out + 0, h->magic);
    test_put_be32(out + 4, h->version);
    test_put_be64(out + 8, h->backing_file_offset);
    test_put_be32(out + 16, h->backing_file_size);
    test_put_be32(out + 20, h->mtime);
    test_put_be64(out + 24, h->size);
    out[32] = h->cluster_bits;
    out[33] = h->l2_bits;
    test_put_be16(out + 34, h->padding);
    test_put_be32(out + 36, h->crypt_method);
    test_put_be64(out + 40, h->l1_table_offset);
}

static inline void test_header_decode(const uint8_t in[TEST_HEADER_SIZE],
                                      struct test_header *h)
{
    h->magic = test_get_be32(in + 0);
    h->version = test_get_be32(in + 4);
    h->backing_file_offset = test_get_be64(in + 8);
    h->backing_file_size = test_get_be32(in + 16);
    h->mtime = test_get_be32(in + 20);
    h->size = test_get_be64(in + 24);
    h->cluster_bits = in[32];
    h->l2_bits = in[33];
    h->padding = (uint16_t)((in[34] << 8) | in[35]);
    h->crypt_method = test_get_be32(in + 36);
    h->l1_table_offset = test_get_be64(in + 40);
}

/* Entries of the L1 table for a virtual size (as QEMU computes it). */
static inline uint64_t test_l1_entries(uint64_t size, unsigned cluster_bits,
                                       unsigned l2_bits)
{
    unsigned shift = cluster_bits + l2_bits;

    if (shift >= 64)
        return size ? 1 : 0;
    return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) ? 1 : 0);
}

/*
 * Build the bytes of a fresh image the way qemu-img lays it out: header,
 * then the backing name (if any), then the L1 table at the next 8-byte
 * boundary, zero-filled in whole 512-byte sectors.  Header fields that
 * depend on the layout (backing_file_offset/size, l1_table_offset) are
 * filled in unless keep_layout is set.  Returns a malloc'd buffer.
 */
static inline uint8_t *test_craft_image(struct test_header *h,
                                        const char *backing, int keep_layout,
                                        size_t *len)
{
    size_t blen = backing ? strlen(backing) : 0;
    size_t hsize = TEST_HEADER_SIZE + blen;
    uint64_t l1 = test_l1_entries(h->size, h->cluster_bits, h->l2_bits);
    size_t l1_bytes;
    uint8_t *buf;

    hsize = (hsize + 7) & ~(size_t)7;
    l1_bytes = (size_t)((l1 * 8 + 511) / 512 * 512);
    if (!keep_layout) {
        h->backing_file_offset = backing ? TEST_HEADER_SIZE : 0;
        h->backing_file_size = (uint32_t)blen;
        h->l1_table_offset = hsize;
    }
    *len = hsize + l1_bytes;
    buf = test_xcalloc(*len);
    test_header_encode(h, buf);
    if (backing)
        memcpy(buf + TEST_HEADER_SIZE, backing, blen);
    return buf;
}

/* The size of the file qemu-img creates. */
static inline uint64_t test_qemu_file_size(uint64_t size, unsigned cluster_bits,
                                           unsigned l2_bits, size_t blen)
{
    uint64_t hsize = (TEST_HEADER_SIZE + blen + 7) & ~(uint64_t)7;
    uint64_t l1 = test_l1_entries(size, cluster_bits, l2_bits);

    return hsize + (l1 * 8 + 511) / 512 * 512;
}

/*
 * Locate the L2 entry of guest offset off inside the bytes of an image.
 * Returns the byte offset of the entry in the file, or 0 if the L1 entry
 * is empty (or the tables lie outside the bytes).  *l1_pos gets the
 * offset of the L1 entry.
 */
static inline uint64_t test_l2_entry_pos(const uint8_t *img, size_t len,
                                         uint64_t off, uint64_t *l1_pos)
{
    struct test_header h;
    uint64_t l1_index, l2_index, l2_off, pos;

    if (len < TEST_HEADER_SIZE)
        return 0;
    test_header_decode(img, &h);
    l1_index = off >> (h.cluster_bits + h.l2_bits);
    l2_index = (off >> h.cluster_bits) & ((UINT64_C(1) << h.l2_bits) - 1);
    pos = h.l1_table_offset + l1_index * 8;
    if (l1_pos)
        *l1_pos = pos;
    if (pos + 8 > len)
        return 0;
    l2_off = test_get_be64(img + pos);
    if (!l2_off || l2_off + (l2_index + 1) * 8 > len)
        return 0;
    return l2_off + l2_index * 8;
}

/* ------------------------------------------------------ image helpers */

static inline struct qcowkit_io *test_mem_io(const void *data, size_t len)
{
    struct qcowkit_io *io = NULL;

    CHECK_OK(qcowkit_io_new_memory(data, len, &io));
    CHECK(io != NULL);
    return io;
}

/* Copy the bytes of an in-memory backend (malloc'd). */
static inline uint8_t *test_mem_bytes(struct qcowkit_io *io, size_t *len)
{
    const uint8_t *data = NULL;
    uint8_t *copy;

    CHECK_OK(qcowkit_io_memory_data(io, &data, len));
    copy = test_xmalloc(*len);
    if (*len)
        memcpy(copy, data, *len);
    return copy;
}

static inline void test_create_opts(struct qcowkit_create_opts *o,
                                    uint64_t size, uint32_t cluster_size,
                                    const char *backing)
{
    qcowkit_create_opts_init(o);
    o->format = QCOWKIT_FORMAT_QCOW;
    o->size = size;
    o->cluster_size = cluster_size;
    o->backing_file = backing;
}

/* Open a qcow image over io; cache_size 0 is the library's default. */
static inline struct qcowkit_image *
test_open_io_ex(struct qcowkit_io *io, const char *name, unsigned flags,
                enum qcowkit_format format, uint64_t cache_size)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;

    qcowkit_open_opts_init(&oo);
    oo.flags = flags;
    oo.format = format;
    oo.cache_size = cache_size;
    CHECK_OK(qcowkit_open_io(io, name, &oo, &img));
    CHECK(img != NULL);
    return img;
}

static inline struct qcowkit_image *
test_open_io(struct qcowkit_io *io, const char *name, unsigned flags)
{
    return test_open_io_ex(io, name, flags, QCOWKIT_FORMAT_QCOW, 0);
}

/* A fresh qcow image in memory, opened read-write. */
static inline struct qcowkit_image *
test_mem_image(uint64_t size, uint32_t cluster_size, const char *backing,
               const char *name, struct qcowkit_io **io_out)
{
    struct qcowkit_create_opts co;
    struct qcowkit_io *io = test_mem_io(NULL, 0);

    test_create_opts(&co, size, cluster_size, backing);
    CHECK_OK(qcowkit_create_io(io, name, &co));
    *io_out = io;
    return test_open_io(io, name, QCOWKIT_OPEN_RDWR);
}

/* An image in memory from crafted bytes, opened read-write. */
static inline struct qcowkit_image *
test_mem_image_bytes(const uint8_t *bytes, size_t len, struct qcowkit_io **io)
{
    *io = test_mem_io(bytes, len);
    return test_open_io(*io, "crafted.qcow", QCOWKIT_OPEN_RDWR);
}

static inline struct qcowkit_info test_info(struct qcowkit_image *img)
{
    struct qcowkit_info info;

    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    CHECK_OK(qcowkit_get_info(img, &info));
    return info;
}

/* ---------------------------------------------------------- files */

/* a + b + c (malloc'd). */
static inline char *test_concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = test_xmalloc(la + lb + lc + 1);

    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc + 1);
    return p;
}

static inline int test_rm_cb_(const char *path, const struct stat *sb, int type,
                              struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Remove a tree (best effort). */
static inline void test_rm_rf(const char *path)
{
    nftw(path, test_rm_cb_, 16, FTW_DEPTH | FTW_PHYS);
}

static char *test_tmpdirs_[8];

static inline void test_tmpdirs_cleanup_(void)
{
    if (getenv("QCOWKIT_KEEP_TMP"))
        return;
    for (int i = 0; i < 8; i++)
        if (test_tmpdirs_[i])
            test_rm_rf(test_tmpdirs_[i]);
}

/*
 * Make a fresh temporary folder; returns a malloc'd absolute path.  It is
 * removed at exit unless QCOWKIT_KEEP_TMP is set.
 */
static inline char *test_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (!base || !*base)
        base = "/tmp";
    path = test_concat3(base, "/", "qcowkit-test-XXXXXX");
    if (!mkdtemp(path)) {
        fprintf(stderr, "mkdtemp(%s): %s\n", path, strerror(errno));
        exit(1);
    }
    if (path[0] != '/') {
        char cwd[4096];
        char *abs;
        if (!getcwd(cwd, sizeof(cwd)))
            exit(1);
        abs = test_concat3(cwd, "/", path);
        free(path);
        path = abs;
    }
    for (int i = 0; i < 8; i++) {
        if (!test_tmpdirs_[i]) {
            if (i == 0)
                atexit(test_tmpdirs_cleanup_);
            test_tmpdirs_[i] = strdup(path);
            break;
        }
    }
    return path;
}

/* dir + "/" + name (malloc'd). */
static inline char *test_path(const char *dir, const char *name)
{
    return test_concat3(dir, "/", name);
}

static inline void test_write_file(const char *path, const void *data,
                                   size_t len)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        TEST_FAIL("fopen(%s): %s", path, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len)
        TEST_FAIL("fwrite(%s): %s", path, strerror(errno));
    if (fclose(f) != 0)
        TEST_FAIL("fclose(%s): %s", path, strerror(errno));
}

/* Read a whole file (malloc'd). */
static inline uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        TEST_FAIL("fopen(%s): %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = test_xmalloc((size_t)n);
    if (n && fread(buf, 1, (size_t)n, f) != (size_t)n)
        TEST_FAIL("fread(%s): %s", path, strerror(errno));
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Create a qcow image file with the library. */
static inline void test_create_file(const char *path, uint64_t size,
                                    uint32_t cluster_size, const char *backing)
{
    struct qcowkit_create_opts co;

    test_create_opts(&co, size, cluster_size, backing);
    CHECK_OK(qcowkit_create(path, &co, QCOWKIT_IO_TRUNC));
}

static inline struct qcowkit_image *test_open_file(const char *path,
                                                   unsigned flags)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;

    qcowkit_open_opts_init(&oo);
    oo.flags = flags;
    CHECK_OK(qcowkit_open(path, &oo, &img));
    CHECK(img != NULL);
    return img;
}

#endif /* QCOWKIT_TEST_H */
