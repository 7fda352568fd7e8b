/*
 * Allocation failures: every malloc, calloc, realloc and strdup the
 * library makes during a workload fails in turn (the test is linked with
 * -Wl,--wrap, so the library's own calls come here; zlib's, libdeflate's
 * and OpenSSL's do not).  Each call must fail cleanly with a negative
 * errno, never crash, and the image must stay consistent.
 */
#include "test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

static uint64_t alloc_calls;
static uint64_t fail_at; /* 0: never */

static int should_fail(void)
{
    return ++alloc_calls == fail_at;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

#define SIZE (UINT64_C(4) << 20)

/* Each step may fail; a failure must be -ENOMEM (or what it led to). */
static void step(int err, int *failures)
{
    if (err == 0)
        return;
    CHECK(err < 0);
    (*failures)++;
}

static int workload(struct qcowkit_io *io)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;
    struct qcowkit_check_report r = {.struct_size = sizeof r};
    static uint8_t buf[3 * 4096 + 100];
    int failures = 0;

    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.cache_size = 1;
    step(qcowkit_open_io(io, "alloc.qcow", &oo, &img), &failures);
    if (!img)
        return failures;
    memset(buf, 0x61, sizeof buf);
    step(qcowkit_pwrite(img, buf, sizeof buf, 1000), &failures);
    step(qcowkit_pwrite_compressed(img, buf, 4096, 2 << 20), &failures);
    step(qcowkit_pwrite(img, buf, 100, (2 << 20) + 10), &failures);
    step(qcowkit_pread(img, buf, sizeof buf, 3000), &failures);
    step(qcowkit_flush(img), &failures);
    step(qcowkit_check(img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r),
         &failures);
    step(qcowkit_resize(img, SIZE * 2), &failures);
    step(qcowkit_close(img), &failures);
    return failures;
}

/* With allocations working again, the image opens and checks clean. */
static void verify(struct qcowkit_io *io)
{
    struct qcowkit_image *img =
        test_open_io(io, "alloc.qcow", QCOWKIT_OPEN_RDONLY);
    struct qcowkit_check_report r = {.struct_size = sizeof r};
    uint8_t *all = test_xmalloc(SIZE);

    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK_OK(qcowkit_pread(img, all, SIZE, 0));
    free(all);
    qcowkit_close(img);
}

static struct qcowkit_io *fresh_image(void)
{
    struct qcowkit_create_opts co;
    struct qcowkit_io *io = test_mem_io(NULL, 0);

    test_create_opts(&co, SIZE, 4096, NULL);
    CHECK_OK(qcowkit_create_io(io, "alloc.qcow", &co));
    return io;
}

int main(void)
{
    struct qcowkit_io *io = fresh_image();
    uint64_t total, failed_runs = 0;

    test_init(300);
    alloc_calls = 0;
    CHECK_EQ(workload(io), 0);
    total = alloc_calls;
    qcowkit_io_close(io);
    CHECK(total > 10);
    for (fail_at = 1; fail_at <= total; fail_at++) {
        io = fresh_image();
        alloc_calls = 0;
        if (workload(io) > 0)
            failed_runs++;
        else
            fprintf(stderr, "allocation %" PRIu64 " failed silently\n",
                    fail_at);
        fail_at = fail_at; /* keep the failing point for the hook */
        {
            uint64_t saved = fail_at;
            fail_at = 0;
            verify(io);
            fail_at = saved;
        }
        qcowkit_io_close(io);
    }
    fail_at = 0;
    /* Every injected failure must have reached a caller. */
    CHECK_EQ(failed_runs, total);
    printf("allocation failure points run: %" PRIu64 "\n", total);
    return 0;
}
