/*
 * crash-driver.c - runs a workload with the power lost at each of its
 * writes in turn and checks every after-crash image against a model of
 * what may have survived.  See crash-driver.h.
 */
#include "crash-driver.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test-backends.h"

/* ------------------------------------------------------- the failure context
 */

static const char *g_program = "crash";
static const char *g_case = "";
static uint64_t g_seed;
static uint64_t g_point;  /* 0: the counting run */
static uint64_t g_writes; /* N of the current case */
static const char *g_mode = "";
static uint64_t g_mode_seed;
static uint64_t g_op; /* the workload call being made */
/* The workload call that first failed in an armed run. */
static char g_crash_call[160];

static uint64_t g_points_total; /* crash points over all cases */
static uint64_t g_images_total; /* after-crash images verified */
static uint64_t g_cases;
/* Images qcowkit_check found clean (see image_hash). */
struct seen_set {
    uint64_t (*keys)[2];
    size_t n;
    size_t cap; /* a power of two */
};

static struct seen_set g_seen;
static uint64_t g_checks_run; /* qcowkit_check calls (distinct images) */
static struct timespec g_start;
static char g_tmpdir[4096];

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (g_tmpdir[0])
        nftw(g_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_tmpdir[0] = '\0';
}

const char *crash_strerror(int rc)
{
    return rc < 0 ? strerror(-rc) : "ok";
}

void crash_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n    qcowkit_errmsg: \"%s\"\n", qcowkit_errmsg());
    fprintf(stderr,
            "    program %s, case %s, seed %" PRIu64 ", crash point %" PRIu64
            " of %" PRIu64 "%s, mode %s (seed %" PRIu64
            "), workload calls so far %" PRIu64 "\n",
            g_program, g_case, g_seed, g_point, g_writes,
            g_point ? "" : " (the counting run, no crash)", g_mode, g_mode_seed,
            g_op);
    if (g_crash_call[0])
        fprintf(stderr, "    the power loss surfaced at %s\n", g_crash_call);
    fprintf(stderr,
            "    reproduce: CRASH_CASE=%s CRASH_SEED=%" PRIu64
            " CRASH_POINT=%" PRIu64 " ./%s\n",
            g_case, g_seed, g_point, g_program);
    fflush(stderr);
    remove_tmpdir();
    exit(1);
}

static double elapsed(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - g_start.tv_sec) +
           (double)(now.tv_nsec - g_start.tv_nsec) / 1e9;
}

void crash_begin(const char *program)
{
    const char *slash = strrchr(program, '/');

    g_program = slash ? slash + 1 : program;
    clock_gettime(CLOCK_MONOTONIC, &g_start);
    atexit(remove_tmpdir);
    /*
     * Keep freed memory in the process: each check allocates large maps,
     * and getting fresh pages from the kernel for every one of thousands
     * of images would dominate the run time.
     */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void crash_end(void)
{
    printf("%s: %" PRIu64 " cases, %" PRIu64
           " crash points x %d modes, %" PRIu64
           " distinct images checked, %.1f s\n",
           g_program, g_cases, g_points_total, 5, g_checks_run, elapsed());
    printf("crash points run: %" PRIu64 "\n", g_images_total);
    free(g_seen.keys);
    memset(&g_seen, 0, sizeof g_seen);
    remove_tmpdir();
    exit(0);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);

    return s && *s ? strtoull(s, NULL, 0) : def;
}

/* ------------------------------------------------------------------ rng */

uint64_t crash_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void crash_rng_seed(struct crash_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ull;
        r->s[i] = crash_mix64(seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t crash_rng_next(struct crash_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t crash_rng_below(struct crash_rng *r, uint64_t n)
{
    return crash_rng_next(r) % n;
}

uint64_t crash_rng_range(struct crash_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + crash_rng_below(r, hi - lo + 1);
}

void crash_rng_fill(struct crash_rng *r, void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n >= 8) {
        uint64_t v = crash_rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = crash_rng_next(r);
        memcpy(p, &v, n);
    }
}

void crash_rng_fill_compressible(struct crash_rng *r, void *buf, size_t n)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i += 32) {
        size_t len = n - i < 32 ? n - i : 32;
        memset(p + i, (int)(crash_rng_next(r) & 0xff), len);
    }
}

/* ---------------------------------------------------------------- model */

/*
 * Per touched guest cluster: its contents as of the last completed flush
 * (durable) and as the workload last wrote them (latest).  Writes since
 * the last completed flush are kept in order (pending), so a byte may also
 * hold a value that a later write in the same interval replaced.
 */
struct mcluster {
    uint8_t *durable;
    uint8_t *latest;
};

#define MODEL_LEAF_BITS 12
#define MODEL_LEAF      (1u << MODEL_LEAF_BITS)

struct mpending {
    uint64_t off;
    size_t len;
    uint8_t *data; /* NULL: zeros */
};

struct model {
    uint64_t size;
    uint32_t cs;
    unsigned cbits;
    uint64_t nclusters;
    struct mcluster **top;
    size_t ntop;
    uint64_t *touched;
    size_t ntouched;
    size_t touched_cap;
    int touched_sorted;
    struct mpending *pend;
    size_t npend;
    size_t pend_cap;
    const uint8_t *base;
    size_t base_len;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        CRASH_FAIL("out of memory (%zu bytes)", n);
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        CRASH_FAIL("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static void model_init(struct model *m, uint64_t size, uint32_t cs,
                       const uint8_t *base, size_t base_len)
{
    memset(m, 0, sizeof *m);
    m->size = size;
    m->cs = cs;
    while ((1u << m->cbits) < cs)
        m->cbits++;
    m->nclusters = (size + cs - 1) >> m->cbits;
    m->ntop = (size_t)((m->nclusters + MODEL_LEAF - 1) >> MODEL_LEAF_BITS);
    m->top = xcalloc(m->ntop, sizeof *m->top);
    m->base = base;
    m->base_len = base_len;
}

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->ntop; i++) {
        if (!m->top[i])
            continue;
        for (size_t j = 0; j < MODEL_LEAF; j++) {
            free(m->top[i][j].durable);
            free(m->top[i][j].latest);
        }
        free(m->top[i]);
    }
    free(m->top);
    free(m->touched);
    for (size_t i = 0; i < m->npend; i++)
        free(m->pend[i].data);
    free(m->pend);
    memset(m, 0, sizeof *m);
}

static struct mcluster *model_lookup(const struct model *m, uint64_t ci)
{
    struct mcluster *leaf = m->top[ci >> MODEL_LEAF_BITS];

    if (!leaf)
        return NULL;
    leaf += ci & (MODEL_LEAF - 1);
    return leaf->durable ? leaf : NULL;
}

/* What the disk read as before the workload. */
static void model_base(const struct model *m, uint8_t *buf, uint64_t off,
                       size_t n)
{
    memset(buf, 0, n);
    if (m->base && off < m->base_len) {
        size_t k = m->base_len - off < n ? (size_t)(m->base_len - off) : n;
        memcpy(buf, m->base + off, k);
    }
}

static struct mcluster *model_get(struct model *m, uint64_t ci)
{
    struct mcluster **leafp = &m->top[ci >> MODEL_LEAF_BITS];
    struct mcluster *c;

    if (!*leafp)
        *leafp = xcalloc(MODEL_LEAF, sizeof **leafp);
    c = &(*leafp)[ci & (MODEL_LEAF - 1)];
    if (c->durable)
        return c;
    c->durable = xmalloc(m->cs);
    c->latest = xmalloc(m->cs);
    model_base(m, c->durable, ci << m->cbits, m->cs);
    memcpy(c->latest, c->durable, m->cs);
    if (m->ntouched == m->touched_cap) {
        m->touched_cap = m->touched_cap ? m->touched_cap * 2 : 256;
        m->touched = realloc(m->touched, m->touched_cap * sizeof *m->touched);
        if (!m->touched)
            CRASH_FAIL("out of memory");
    }
    m->touched[m->ntouched++] = ci;
    m->touched_sorted = 0;
    return c;
}

/* A write (data NULL: zeros) the workload is about to make. */
static void model_write(struct model *m, uint64_t off, size_t n,
                        const void *data)
{
    struct mpending *p;
    uint64_t pos = off;
    uint64_t end = off + n;

    if (n == 0)
        return;
    CRASH_CHECK(end <= m->size);
    while (pos < end) {
        uint64_t ci = pos >> m->cbits;
        uint32_t in = (uint32_t)(pos & (m->cs - 1));
        size_t k = m->cs - in;
        struct mcluster *c = model_get(m, ci);

        if (k > end - pos)
            k = (size_t)(end - pos);
        if (data)
            memcpy(c->latest + in, (const uint8_t *)data + (pos - off), k);
        else
            memset(c->latest + in, 0, k);
        pos += k;
    }
    if (m->npend == m->pend_cap) {
        m->pend_cap = m->pend_cap ? m->pend_cap * 2 : 16;
        m->pend = realloc(m->pend, m->pend_cap * sizeof *m->pend);
        if (!m->pend)
            CRASH_FAIL("out of memory");
    }
    p = &m->pend[m->npend++];
    p->off = off;
    p->len = n;
    p->data = NULL;
    if (data) {
        p->data = xmalloc(n);
        memcpy(p->data, data, n);
    }
}

/* A flush completed: everything written so far is durable. */
static void model_flush(struct model *m)
{
    for (size_t i = 0; i < m->npend; i++) {
        uint64_t pos = m->pend[i].off;
        uint64_t end = pos + m->pend[i].len;

        while (pos < end) {
            uint64_t ci = pos >> m->cbits;
            uint32_t in = (uint32_t)(pos & (m->cs - 1));
            size_t k = m->cs - in;
            struct mcluster *c = model_lookup(m, ci);

            if (k > end - pos)
                k = (size_t)(end - pos);
            memcpy(c->durable + in, c->latest + in, k);
            pos += k;
        }
        free(m->pend[i].data);
    }
    m->npend = 0;
}

/* Could byte g hold v?  Its durable value or any written since. */
static int model_byte_ok(const struct model *m, const struct mcluster *c,
                         uint64_t g, uint8_t v)
{
    uint32_t in = (uint32_t)(g & (m->cs - 1));

    if (v == c->durable[in] || v == c->latest[in])
        return 1;
    for (size_t i = m->npend; i-- > 0;) {
        const struct mpending *p = &m->pend[i];

        if (g >= p->off && g - p->off < p->len &&
            v == (p->data ? p->data[g - p->off] : 0))
            return 1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------- runs */

struct crash_run {
    const struct crash_spec *spec;
    struct qcowkit_image *img;
    struct model m;
    int armed;
    int dead;
    struct qcowkit_io *crash_io;
    uint64_t writes_outside_flush; /* made during calls other than flush */
    uint64_t size;
    uint32_t cs;
    uint32_t l2_bits;
    uint8_t *buf; /* one cluster, for checks */
};

int crash_dead(const struct crash_run *r)
{
    return r->dead;
}

int crash_counting(const struct crash_run *r)
{
    return !r->armed;
}

uint64_t crash_virtual_size(const struct crash_run *r)
{
    return r->size;
}

uint32_t crash_cluster_size(const struct crash_run *r)
{
    return r->cs;
}

uint32_t crash_l2_bits(const struct crash_run *r)
{
    return r->l2_bits;
}

struct qcowkit_image *crash_image(struct crash_run *r)
{
    return r->img;
}

uint64_t crash_seed(const struct crash_run *r)
{
    (void)r;
    return crash_mix64(g_seed);
}

/* The result of a workload call: fatal in the counting run. */
static int call_done(struct crash_run *r, const char *what, int rc, size_t n,
                     uint64_t off)
{
    if (rc >= 0)
        return rc;
    if (!r->armed)
        CRASH_FAIL("%s(%zu bytes at %" PRIu64 ") = %d (%s) with no crash armed",
                   what, n, off, rc, crash_strerror(rc));
    if (!r->dead) {
        snprintf(g_crash_call, sizeof g_crash_call,
                 "workload call %" PRIu64 ", %s(%zu bytes at %" PRIu64
                 ") = %d, after write %" PRIu64,
                 g_op, what, n, off, rc, crash_backend_writes(r->crash_io));
        if (rc != -EIO)
            CRASH_FAIL("%s(%zu bytes at %" PRIu64 ") = %d (%s) at the power "
                       "loss, expected -EIO",
                       what, n, off, rc, crash_strerror(rc));
    }
    r->dead = 1;
    return rc;
}

int crash_pwrite(struct crash_run *r, const void *buf, size_t n, uint64_t off)
{
    uint64_t before;
    int rc;

    g_op++;
    if (!r->dead)
        model_write(&r->m, off, n, buf);
    before = crash_backend_writes(r->crash_io);
    rc = qcowkit_pwrite(r->img, buf, n, off);
    r->writes_outside_flush += crash_backend_writes(r->crash_io) - before;
    return call_done(r, "qcowkit_pwrite", rc, n, off);
}

int crash_pwrite_zeroes(struct crash_run *r, size_t n, uint64_t off)
{
    uint64_t before;
    int rc;

    g_op++;
    if (!r->dead)
        model_write(&r->m, off, n, NULL);
    before = crash_backend_writes(r->crash_io);
    rc = qcowkit_pwrite_zeroes(r->img, n, off);
    r->writes_outside_flush += crash_backend_writes(r->crash_io) - before;
    return call_done(r, "qcowkit_pwrite_zeroes", rc, n, off);
}

int crash_pwrite_compressed(struct crash_run *r, const void *buf, size_t n,
                            uint64_t off)
{
    uint64_t before;
    int rc;

    g_op++;
    if (!r->dead)
        model_write(&r->m, off, n, buf);
    before = crash_backend_writes(r->crash_io);
    rc = qcowkit_pwrite_compressed(r->img, buf, n, off);
    r->writes_outside_flush += crash_backend_writes(r->crash_io) - before;
    return call_done(r, "qcowkit_pwrite_compressed", rc, n, off);
}

/*
 * A discard reads, after it, as the disk did before the workload (the
 * backing file's data, or zeros) over the whole clusters of the range; a
 * cluster that ends at the virtual size counts as whole.
 */
int crash_discard(struct crash_run *r, uint64_t n, uint64_t off)
{
    uint64_t first = (off + r->cs - 1) / r->cs * r->cs;
    uint64_t end = off + n == r->size ? r->size : (off + n) / r->cs * r->cs;
    uint64_t before;
    int rc;

    g_op++;
    if (!r->dead && first < end) {
        uint8_t *base = xmalloc((size_t)(end - first));
        model_base(&r->m, base, first, (size_t)(end - first));
        model_write(&r->m, first, (size_t)(end - first), base);
        free(base);
    }
    before = crash_backend_writes(r->crash_io);
    rc = qcowkit_discard(r->img, off, n);
    r->writes_outside_flush += crash_backend_writes(r->crash_io) - before;
    return call_done(r, "qcowkit_discard", rc, (size_t)n, off);
}

int crash_pwrite_zeroes_unmap(struct crash_run *r, size_t n, uint64_t off)
{
    uint64_t before;
    int rc;

    g_op++;
    if (!r->dead)
        model_write(&r->m, off, n, NULL);
    before = crash_backend_writes(r->crash_io);
    rc = qcowkit_pwrite_zeroes_flags(r->img, n, off, QCOWKIT_ZEROES_MAY_UNMAP);
    r->writes_outside_flush += crash_backend_writes(r->crash_io) - before;
    return call_done(r, "qcowkit_pwrite_zeroes_flags", rc, n, off);
}

int crash_flush(struct crash_run *r)
{
    int rc;

    g_op++;
    rc = call_done(r, "qcowkit_flush", qcowkit_flush(r->img), 0, 0);
    if (rc == 0 && !r->dead)
        model_flush(&r->m);
    return rc;
}

int crash_pread_check(struct crash_run *r, size_t n, uint64_t off)
{
    uint8_t *buf;
    int rc;

    g_op++;
    if (r->dead)
        return -EIO;
    buf = xmalloc(n);
    rc = call_done(r, "qcowkit_pread", qcowkit_pread(r->img, buf, n, off), n,
                   off);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t g = off + i;
            const struct mcluster *c = model_lookup(&r->m, g >> r->m.cbits);
            uint8_t want;

            if (c)
                want = c->latest[g & (r->cs - 1)];
            else
                model_base(&r->m, &want, g, 1);
            if (buf[i] != want)
                CRASH_FAIL("read back before the crash: byte %" PRIu64
                           " is 0x%02x, last written 0x%02x",
                           g, buf[i], want);
        }
    }
    free(buf);
    return rc;
}

/*
 * qcowkit_check depends only on the image's bytes, and many after-crash
 * images are alike (every DROP_ALL image of one flush interval, random
 * ones with few unflushed writes), so a clean result is remembered by a
 * 128-bit hash of the bytes and length.  The contents are still checked
 * against the model for every image.
 */

static void image_hash(const uint8_t *p, size_t len, uint64_t h[2])
{
    uint64_t a = 0x243f6a8885a308d3ull ^ len;
    uint64_t b = 0x13198a2e03707344ull + len;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        a = (a ^ w) * 0x9e3779b97f4a7c15ull;
        a ^= a >> 29;
        b = (b + w) * 0xbf58476d1ce4e5b9ull;
        b ^= b >> 31;
    }
    for (; i < len; i++) {
        a = (a ^ p[i]) * 0x9e3779b97f4a7c15ull;
        b = (b + p[i]) * 0xbf58476d1ce4e5b9ull;
    }
    h[0] = crash_mix64(a);
    h[1] = crash_mix64(b ^ h[0]);
}

/* Returns 1 if the key was there, else adds it and returns 0. */
static int seen_test_and_add(struct seen_set *s, const uint64_t h[2], int add)
{
    size_t i;

    if (s->cap == 0 || (add && 2 * (s->n + 1) > s->cap)) {
        struct seen_set t = {0};
        t.cap = s->cap ? 2 * s->cap : 1024;
        t.keys = xcalloc(t.cap, sizeof *t.keys);
        for (size_t j = 0; j < s->cap; j++)
            if (s->keys[j][0] | s->keys[j][1])
                seen_test_and_add(&t, s->keys[j], 1);
        free(s->keys);
        *s = t;
    }
    for (i = h[0] & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->keys[i][0] == h[0] && s->keys[i][1] == (h[1] | 1))
            return 1;
        if (!(s->keys[i][0] | s->keys[i][1]))
            break;
    }
    if (add) {
        s->keys[i][0] = h[0];
        s->keys[i][1] = h[1] | 1; /* never the empty key */
        s->n++;
    }
    return 0;
}

struct check_msgs {
    char text[2048];
    size_t len;
};

static void check_cb(void *opaque, const char *message)
{
    struct check_msgs *cm = opaque;
    int k;

    if (cm->len >= sizeof cm->text - 1)
        return;
    k = snprintf(cm->text + cm->len, sizeof cm->text - cm->len, "      %s\n",
                 message);
    if (k > 0)
        cm->len += (size_t)k;
    if (cm->len >= sizeof cm->text)
        cm->len = sizeof cm->text - 1;
}

/* Check an after-crash (or final) image against the model. */
static void verify_image(struct crash_run *r, struct qcowkit_io *io)
{
    const struct crash_spec *s = r->spec;
    struct model *m = &r->m;
    struct qcowkit_open_opts opts;
    struct qcowkit_image *img = NULL;
    struct qcowkit_info info;
    struct qcowkit_check_report rep;
    struct check_msgs msgs;
    uint64_t off;
    int rc;

    qcowkit_open_opts_init(&opts);
    opts.flags = QCOWKIT_OPEN_RDONLY;
    rc = qcowkit_open_io(io, s->image_name, &opts, &img);
    if (rc < 0)
        CRASH_FAIL("the after-crash image does not open: %d (%s)", rc,
                   crash_strerror(rc));

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CRASH_OK(qcowkit_get_info(img, &info));
    if (info.virtual_size != m->size)
        CRASH_FAIL("virtual size %" PRIu64 ", expected %" PRIu64,
                   info.virtual_size, m->size);

    {
        const uint8_t *bytes = NULL;
        size_t len = 0;
        uint64_t h[2] = {0, 0};
        int known = 0;

        if (qcowkit_io_memory_data(io, &bytes, &len) == 0) {
            image_hash(bytes, len, h);
            known = seen_test_and_add(&g_seen, h, 0);
        }
        if (!known) {
            memset(&rep, 0, sizeof rep);
            rep.struct_size = sizeof rep;
            memset(&msgs, 0, sizeof msgs);
            rc = qcowkit_check(img, 0, check_cb, &msgs, &rep);
            g_checks_run++;
            if (rc < 0)
                CRASH_FAIL("qcowkit_check could not run: %d (%s)", rc,
                           crash_strerror(rc));
            if (rep.corruptions)
                CRASH_FAIL("qcowkit_check: %" PRIu64 " corruptions (%" PRIu64
                           " leaks):\n%s",
                           rep.corruptions, rep.leaks, msgs.text);
            if (bytes)
                seen_test_and_add(&g_seen, h, 1);
        }
    }

    /* Every touched cluster: each byte durable or written since. */
    if (!m->touched_sorted) {
        qsort(m->touched, m->ntouched, sizeof *m->touched, cmp_u64);
        m->touched_sorted = 1;
    }
    for (size_t t = 0; t < m->ntouched; t++) {
        uint64_t ci = m->touched[t];
        uint64_t coff = ci << m->cbits;
        size_t len = m->size - coff < m->cs ? (size_t)(m->size - coff) : m->cs;
        const struct mcluster *c = model_lookup(m, ci);

        rc = qcowkit_pread(img, r->buf, len, coff);
        if (rc < 0)
            CRASH_FAIL("reading the after-crash image: cluster at %" PRIu64
                       " = %d (%s)",
                       coff, rc, crash_strerror(rc));
        if (memcmp(r->buf, c->latest, len) == 0 ||
            memcmp(r->buf, c->durable, len) == 0)
            continue;
        for (size_t i = 0; i < len; i++) {
            if (model_byte_ok(m, c, coff + i, r->buf[i]))
                continue;
            {
                int written = 0;
                for (size_t p = 0; p < m->npend; p++)
                    if (coff + i >= m->pend[p].off &&
                        coff + i - m->pend[p].off < m->pend[p].len)
                        written++;
                CRASH_FAIL("byte %" PRIu64 " (cluster %" PRIu64
                           " + %zu) reads 0x%02x; as of the last completed "
                           "flush 0x%02x, last written 0x%02x, %d unflushed "
                           "writes cover it (%zu unflushed writes in all)",
                           coff + i, ci, i, r->buf[i], c->durable[i],
                           c->latest[i], written, m->npend);
            }
        }
    }

    /* Clusters no write touched must not be allocated. */
    for (off = 0; off < m->size;) {
        struct qcowkit_extent e;

        rc = qcowkit_block_status(img, off, m->size - off, &e);
        if (rc < 0)
            CRASH_FAIL("qcowkit_block_status(%" PRIu64 ") = %d (%s)", off, rc,
                       crash_strerror(rc));
        if (e.length == 0 || e.offset != off)
            CRASH_FAIL("qcowkit_block_status(%" PRIu64 "): extent %" PRIu64
                       "+%" PRIu64,
                       off, e.offset, e.length);
        if (e.flags & QCOWKIT_EXTENT_ALLOCATED) {
            for (uint64_t ci = off >> m->cbits;
                 (ci << m->cbits) < off + e.length; ci++)
                if (!model_lookup(m, ci))
                    CRASH_FAIL("cluster %" PRIu64 " (guest offset %" PRIu64
                               ") is allocated but no write touched it",
                               ci, ci << m->cbits);
        }
        off += e.length;
    }

    CRASH_OK(qcowkit_close(img));
}

/* One run of the workload: k = 0 counts, else the power goes at write k. */
static uint64_t run_once(const struct crash_spec *s, struct crash_run *r,
                         uint64_t k)
{
    struct qcowkit_io *inner = NULL;
    struct qcowkit_io *crash = NULL;
    struct qcowkit_open_opts opts;
    struct qcowkit_info info;
    uint64_t writes;
    int rc;

    g_point = k;
    g_op = 0;
    g_crash_call[0] = '\0';
    g_mode = "";
    g_mode_seed = 0;
    r->armed = k != 0;
    r->dead = 0;
    r->writes_outside_flush = 0;

    CRASH_OK(qcowkit_io_new_memory(s->image, s->image_len, &inner));
    CRASH_OK(crash_backend_new(inner, &crash));
    if (k)
        CRASH_OK(crash_backend_arm(crash, k));
    r->crash_io = crash;

    qcowkit_open_opts_init(&opts);
    opts.flags = QCOWKIT_OPEN_RDWR;
    opts.cache_size = s->cache_size;
    rc = qcowkit_open_io(crash, s->image_name, &opts, &r->img);
    if (rc < 0)
        CRASH_FAIL("qcowkit_open_io of the starting image = %d (%s)", rc,
                   crash_strerror(rc));
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CRASH_OK(qcowkit_get_info(r->img, &info));
    r->size = info.virtual_size;
    r->cs = info.cluster_size;
    r->l2_bits = info.l2_bits;
    CRASH_CHECK(r->cs >= 512 && (r->cs & (r->cs - 1)) == 0);
    model_init(&r->m, r->size, r->cs, s->base, s->base_len);
    r->buf = xmalloc(r->cs);

    s->workload(r, s->arg);

    g_op++;
    rc = call_done(r, "qcowkit_close", qcowkit_close(r->img), 0, 0);
    r->img = NULL;
    if (rc == 0 && !r->dead)
        model_flush(&r->m);
    writes = crash_backend_writes(crash);

    if (!k) {
        /* Everything was flushed: the file itself must match exactly. */
        g_mode = "final (no crash)";
        verify_image(r, inner);
    } else {
        static const struct {
            enum crash_mode mode;
            const char *name;
        } modes[] = {
            {CRASH_DROP_ALL, "DROP_ALL"}, {CRASH_KEEP_ALL, "KEEP_ALL"},
            {CRASH_RANDOM, "RANDOM"},     {CRASH_RANDOM, "RANDOM"},
            {CRASH_RANDOM, "RANDOM"},
        };

        if (!r->dead)
            CRASH_FAIL("the power went at write %" PRIu64 " of %" PRIu64
                       " but no call failed",
                       k, g_writes);
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            struct qcowkit_io *after = NULL;

            g_mode = modes[i].name;
            g_mode_seed = modes[i].mode == CRASH_RANDOM
                              ? crash_mix64(g_seed ^ (k << 8) ^ i)
                              : 0;
            CRASH_OK(
                crash_backend_image(crash, modes[i].mode, g_mode_seed, &after));
            verify_image(r, after);
            qcowkit_io_close(after);
            g_images_total++;
        }
        g_points_total++;
    }

    free(r->buf);
    r->buf = NULL;
    model_free(&r->m);
    qcowkit_io_close(crash);
    qcowkit_io_close(inner);
    return writes;
}

static void run_case(const struct crash_spec *spec)
{
    struct crash_spec s = *spec;
    struct crash_run r;
    const char *only_case = getenv("CRASH_CASE");
    uint64_t only_point = env_u64("CRASH_POINT", 0);
    uint64_t n, stride = 1, points = 0, evictions = 0;
    uint64_t images_before = g_images_total;
    double t0 = elapsed();

    if (only_case && *only_case && strcmp(only_case, s.name) != 0)
        return;
    g_case = s.name;
    g_seed = s.seed;
    g_writes = 0;
    memset(&r, 0, sizeof r);
    r.spec = &s;

    n = run_once(&s, &r, 0);
    g_writes = n;
    if (n == 0)
        CRASH_FAIL("the workload made no writes");
    if (s.cache_size) {
        /*
         * A small cache is there to make evictions write tables back
         * between flushes: more writes outside flush calls than with the
         * default cache show that they happened.
         */
        uint64_t small = r.writes_outside_flush;
        struct crash_spec big = s;

        big.cache_size = 0;
        r.spec = &big;
        run_once(&big, &r, 0);
        r.spec = &s;
        if (small <= r.writes_outside_flush)
            CRASH_FAIL("cache_size %" PRIu64 ": %" PRIu64 " writes outside "
                       "flushes, with the default cache %" PRIu64
                       ": no eviction wrote a table back",
                       s.cache_size, small, r.writes_outside_flush);
        evictions = small - r.writes_outside_flush;
    }
    if (s.max_points && n > s.max_points)
        stride = (n + s.max_points - 1) / s.max_points;

    for (uint64_t k = 1 + (stride > 1 ? s.seed % stride : 0); k <= n;
         k += stride) {
        if (only_point && k != only_point)
            continue;
        run_once(&s, &r, k);
        points++;
    }
    if (only_point && only_point <= n && points == 0) {
        run_once(&s, &r, only_point);
        points++;
    }
    g_cases++;
    printf("  %-22s seed %-5" PRIu64 " writes %-4" PRIu64 " points %-4" PRIu64
           " images %-5" PRIu64 " %6.2f s",
           s.name, s.seed, n, points, g_images_total - images_before,
           elapsed() - t0);
    if (stride > 1)
        printf(" (every %" PRIu64 "th point)", stride);
    if (s.cache_size)
        printf(" (%" PRIu64 " more writes outside flushes than with the "
               "default cache: evictions)",
               evictions);
    printf("\n");
    g_case = "";
    g_point = 0;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CRASH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CRASH_SANITIZED 1
#endif
#endif

void crash_run_spec(const struct crash_spec *spec)
{
    struct crash_spec s = *spec;
#ifdef CRASH_SANITIZED
    uint64_t seeds = env_u64("CRASH_SEEDS", 1);
#else
    uint64_t seeds = env_u64("CRASH_SEEDS", spec->seeds ? spec->seeds : 4);
#endif
    const char *fixed = getenv("CRASH_SEED");

    if (fixed && *fixed) {
        s.seed = strtoull(fixed, NULL, 0);
        run_case(&s);
        return;
    }
    for (uint64_t i = 0; i < seeds; i++) {
        s.seed = spec->seed + 1000 * i;
        run_case(&s);
    }
}

/* -------------------------------------------------------------- helpers */

uint8_t *crash_make_image(const struct qcowkit_create_opts *opts, size_t *len)
{
    struct qcowkit_io *io = NULL;
    const uint8_t *data;
    size_t n;
    uint8_t *copy;

    CRASH_OK(qcowkit_io_new_memory(NULL, 0, &io));
    CRASH_OK(qcowkit_create_io(io, "crash.qcow", opts));
    CRASH_OK(qcowkit_io_memory_data(io, &data, &n));
    copy = xmalloc(n);
    memcpy(copy, data, n);
    qcowkit_io_close(io);
    *len = n;
    return copy;
}

const char *crash_tmpdir(void)
{
    if (!g_tmpdir[0]) {
        const char *t = getenv("TMPDIR");

        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/qcowkit-crash-XXXXXX",
                 t && *t ? t : "/tmp");
        if (!mkdtemp(g_tmpdir)) {
            g_tmpdir[0] = '\0';
            CRASH_FAIL("mkdtemp: %s", strerror(errno));
        }
    }
    return g_tmpdir;
}

void crash_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        CRASH_FAIL("%s: %s", path, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len)
        CRASH_FAIL("%s: short write", path);
    if (fclose(f) != 0)
        CRASH_FAIL("%s: %s", path, strerror(errno));
}
