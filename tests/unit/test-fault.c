/*
 * test-fault: fail the Nth read, write, flush or truncate of the backend
 * (once, or from then on) for every N over a workload.  Failing calls
 * must return a negative errno, and afterwards the bytes left in the
 * inner backend must open as an image in which every write acknowledged
 * before a successful flush reads back intact and every other byte reads
 * either its old value or a value some later write put there.
 */
#include "test-backends.h"
#include "test.h"

#define SIZE     (256 * 1024)
#define WORKLOAD 60
#define MAXW     (WORKLOAD + 4)

struct write_rec {
    uint64_t off;
    size_t len;
    uint8_t *data;
};

struct run {
    uint8_t *durable; /* guaranteed contents */
    uint8_t *model;   /* what the handle should read */
    struct write_rec pending[MAXW];
    int npending;
    int failed;
};

static const char *g_what = "";
static uint64_t g_nth;
static int g_persistent;
static uint32_t g_cs;
static uint64_t g_cache;

static void on_fail(void)
{
    fprintf(stderr,
            "    cluster size %" PRIu32 ", cache_size %" PRIu64
            ", failing %s call %" PRIu64 "%s\n",
            g_cs, g_cache, g_what, g_nth,
            g_persistent ? " and all later ones" : "");
}

static void add_pending(struct run *r, uint64_t off, size_t len,
                        const uint8_t *data)
{
    struct write_rec *w;

    CHECK(r->npending < MAXW);
    w = &r->pending[r->npending++];
    w->off = off;
    w->len = len;
    w->data = test_xmalloc(len);
    if (data)
        memcpy(w->data, data, len);
    else
        memset(w->data, 0, len);
}

static void settle(struct run *r)
{
    /* A successful flush: the model is durable. */
    memcpy(r->durable, r->model, SIZE);
    for (int i = 0; i < r->npending; i++)
        free(r->pending[i].data);
    r->npending = 0;
}

static void note_result(struct run *r, int ret)
{
    if (ret < 0)
        r->failed = 1;
    else if (ret > 0)
        TEST_FAIL("call returned %d, expected 0 or a negative errno", ret);
}

/*
 * The old contents: some data written and flushed before the workload.
 * l2_bits 6 (crafted) gives 512-byte L2 tables, many of them.
 */
static struct qcowkit_io *make_base(uint32_t cs, uint8_t *contents)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    uint8_t *buf = test_xmalloc(SIZE);

    if (cs == 512) {
        struct test_header h;
        size_t len;
        uint8_t *bytes;
        test_header_init(&h, SIZE, 9, 6);
        bytes = test_craft_image(&h, NULL, 0, &len);
        img = test_mem_image_bytes(bytes, len, &io);
        free(bytes);
    } else {
        img = test_mem_image(SIZE, cs, NULL, "f.qcow", &io);
    }
    memset(contents, 0, SIZE);
    test_pattern(buf, SIZE / 2 + 1000, 0, 1);
    CHECK_OK(qcowkit_pwrite(img, buf, SIZE / 2 + 1000, 3000));
    memcpy(contents + 3000, buf, SIZE / 2 + 1000);
    test_compressible(buf, cs, 2);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, SIZE - 2 * cs));
    memcpy(contents + SIZE - 2 * cs, buf, cs);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    return io;
}

/*
 * Zeros written (how 0), written with may-unmap (1), or a discard (2),
 * whose whole clusters read as zeros after (no backing file).
 */
static int zero_call(struct qcowkit_image *img, struct run *r, uint32_t cs,
                     size_t n, uint64_t off, uint64_t how)
{
    uint64_t first = (off + cs - 1) / cs * cs, end = (off + n) / cs * cs;

    if (how == 2) {
        if (first < end) {
            memset(r->model + first, 0, end - first);
            add_pending(r, first, end - first, NULL);
        }
        return qcowkit_discard(img, off, n);
    }
    memset(r->model + off, 0, n);
    add_pending(r, off, n, NULL);
    return qcowkit_pwrite_zeroes_flags(img, n, off,
                                       how ? QCOWKIT_ZEROES_MAY_UNMAP : 0);
}

/* Run the workload through fio. */
static void workload(struct qcowkit_io *fio, struct run *r, uint32_t cs)
{
    struct test_rng rng;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;
    uint8_t *buf = test_xmalloc(4 * cs + 1);
    uint8_t *rb = test_xmalloc(4 * cs + 1);
    int ret;

    test_rng_seed(&rng, 4242 + cs);
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.format = QCOWKIT_FORMAT_QCOW;
    oo.cache_size = g_cache;
    ret = qcowkit_open_io(fio, "f.qcow", &oo, &img);
    note_result(r, ret);
    if (ret < 0) {
        CHECK(img == NULL);
        goto out;
    }

    for (int step = 0; step < WORKLOAD && img; step++) {
        uint64_t op = test_rng_below(&rng, 100);
        uint64_t off;
        size_t n;

        if (step == WORKLOAD * 2 / 3) {
            /* Once: drop everything (exercises truncate). */
            ret = qcowkit_make_empty(img);
            note_result(r, ret);
            memset(r->model, 0, SIZE);
            add_pending(r, 0, SIZE, NULL);
        } else if (op < 45) {
            n = (size_t)test_rng_range(&rng, 1, 3 * (uint64_t)cs);
            off = test_rng_below(&rng, SIZE - n + 1);
            test_rng_fill(&rng, buf, n);
            ret = qcowkit_pwrite(img, buf, n, off);
            note_result(r, ret);
            memcpy(r->model + off, buf, n);
            add_pending(r, off, n, buf);
        } else if (op < 55) {
            n = (size_t)test_rng_range(&rng, 1, 3 * (uint64_t)cs);
            off = test_rng_below(&rng, SIZE - n + 1);
            ret = zero_call(img, r, cs, n, off, test_rng_below(&rng, 3));
            note_result(r, ret);
        } else if (op < 65) {
            off = test_rng_below(&rng, SIZE / cs) * cs;
            test_compressible(buf, cs, (uint32_t)step);
            ret = qcowkit_pwrite_compressed(img, buf, cs, off);
            note_result(r, ret);
            memcpy(r->model + off, buf, cs);
            add_pending(r, off, cs, buf);
        } else if (op < 80) {
            n = (size_t)test_rng_range(&rng, 1, 4 * (uint64_t)cs);
            off = test_rng_below(&rng, SIZE - n + 1);
            ret = qcowkit_pread(img, rb, n, off);
            note_result(r, ret);
            if (ret == 0 && !r->failed)
                CHECK_MEM_EQ(rb, r->model + off, n);
        } else if (op < 95) {
            ret = qcowkit_flush(img);
            note_result(r, ret);
            if (ret == 0 && !r->failed)
                settle(r);
        } else {
            ret = qcowkit_close(img);
            img = NULL;
            note_result(r, ret);
            if (ret == 0 && !r->failed)
                settle(r);
            ret = qcowkit_open_io(fio, "f.qcow", &oo, &img);
            note_result(r, ret);
            if (ret < 0)
                CHECK(img == NULL);
        }
    }

out:
    /* The final close (which flushes) still sees the armed fault. */
    if (img) {
        ret = qcowkit_close(img);
        note_result(r, ret);
        if (ret == 0 && !r->failed)
            settle(r);
    }
    for (int op = FAULT_OP_READ; op <= FAULT_OP_TRUNCATE; op++)
        CHECK_OK(fault_backend_arm(fio, (enum fault_op)op, 0, 0, 0));
    free(buf);
    free(rb);
}

static void verify(struct qcowkit_io *inner, struct run *r)
{
    size_t len;
    uint8_t *bytes = test_mem_bytes(inner, &len);
    struct qcowkit_io *io = test_mem_io(bytes, len);
    struct qcowkit_image *img = test_open_io(io, "after.qcow", 0);
    uint8_t *got = test_xmalloc(SIZE);

    CHECK_OK(qcowkit_pread(img, got, SIZE, 0));
    for (size_t b = 0; b < SIZE; b++) {
        int ok = got[b] == r->durable[b];
        for (int i = 0; !ok && i < r->npending; i++) {
            const struct write_rec *w = &r->pending[i];
            if (b >= w->off && b < w->off + w->len &&
                w->data[b - w->off] == got[b])
                ok = 1;
        }
        if (!ok)
            TEST_FAIL("after the fault, guest offset %zu reads 0x%02x: "
                      "neither the durable value 0x%02x nor any value "
                      "written since the last successful flush",
                      b, got[b], r->durable[b]);
    }
    if (!r->failed && r->npending == 0)
        CHECK_MEM_EQ(got, r->durable, SIZE);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(bytes);
    free(got);
}

static void one_run(uint32_t cs, enum fault_op op, uint64_t nth, int persistent,
                    uint64_t counts[4])
{
    uint8_t *old = test_xmalloc(SIZE);
    struct qcowkit_io *inner = make_base(cs, old);
    struct qcowkit_io *fio = NULL;
    struct run r;

    memset(&r, 0, sizeof(r));
    r.durable = old;
    r.model = test_xmalloc(SIZE);
    memcpy(r.model, old, SIZE);

    CHECK_OK(fault_backend_new(inner, &fio));
    if (nth)
        CHECK_OK(fault_backend_arm(fio, op, nth, persistent, -EIO));
    workload(fio, &r, cs);
    if (counts)
        for (int i = 0; i < 4; i++)
            counts[i] = fault_backend_count(fio, (enum fault_op)i);
    if (nth && !r.failed)
        TEST_FAIL("the injected failure was never reported to the caller");
    if (!nth)
        CHECK(!r.failed);
    qcowkit_io_close(fio);
    verify(inner, &r);
    qcowkit_io_close(inner);
    for (int i = 0; i < r.npending; i++)
        free(r.pending[i].data);
    free(r.durable);
    free(r.model);
}

int main(void)
{
    static const char *names[] = {"read", "write", "flush", "truncate"};
    static const uint32_t sizes[] = {4096, 512};

    uint64_t points = 0;

    test_init(600);
    test_fail_hook = on_fail;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]) * 2; s++) {
        uint64_t counts[4];
        g_cs = sizes[s / 2];
        g_cache = s % 2; /* 0: default; 1: the smallest L2 cache */
        g_what = "no";
        g_nth = 0;
        one_run(g_cs, FAULT_OP_READ, 0, 0, counts);
        printf("cluster size %" PRIu32 ", cache_size %" PRIu64 ": %" PRIu64
               " reads, %" PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64
               " truncates\n",
               g_cs, g_cache, counts[0], counts[1], counts[2], counts[3]);
        CHECK(counts[1] > 0);
        CHECK(counts[2] > 0);
        for (int op = 0; op < 4; op++) {
            for (int persistent = 0; persistent < 2; persistent++) {
                g_what = names[op];
                g_persistent = persistent;
                for (uint64_t nth = 1; nth <= counts[op]; nth++) {
                    g_nth = nth;
                    one_run(g_cs, (enum fault_op)op, nth, persistent, NULL);
                    points++;
                }
            }
        }
    }
    printf("fault points run: %" PRIu64 "\n", points);
    printf("test-fault: ok\n");
    return 0;
}
