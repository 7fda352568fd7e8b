/*
 * test-attack4: hostile review of discard and zeros that may unmap
 * (issue 12).  Each case is a reproducer of a bug found in review.
 */
#include "test.h"

static char *g_dir;

static char *path_of(const char *name)
{
    return test_concat3(g_dir, "/", name);
}

static uint8_t *filled(size_t n, uint8_t byte)
{
    uint8_t *p = test_xmalloc(n);

    memset(p, byte, n);
    return p;
}

static void check_clean(struct qcowkit_image *img)
{
    struct qcowkit_check_report rep;

    qcowkit_check_report_init(&rep);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
    CHECK_EQ_U64(rep.corruptions, 0);
    CHECK_EQ_U64(rep.leaks, 0);
}

/*
 * An encrypted overlay whose size ends inside a cluster: zeros that may
 * unmap up to the end are written as real zeros, and the request reaches
 * the virtual size only, not the end of the last cluster.
 */
static void test_encrypted_tail(void)
{
    static const uint8_t key[16] = "attack4-key";
    const uint32_t cs = 4096;
    const uint64_t size = 3 * cs + 512;
    char *base = path_of("enc-base.qcow"), *top = path_of("enc-top.qcow");
    uint8_t *under = filled(size, 0xb5), *got = test_xmalloc(size);
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;

    test_create_opts(&co, size, cs, NULL);
    CHECK_OK(qcowkit_create(base, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.format = QCOWKIT_FORMAT_QCOW;
    CHECK_OK(qcowkit_open(base, &oo, &img));
    CHECK_OK(qcowkit_pwrite(img, under, size, 0));
    CHECK_OK(qcowkit_close(img));
    test_create_opts(&co, size, cs, "enc-base.qcow");
    co.key = key;
    co.key_len = sizeof key;
    CHECK_OK(qcowkit_create(top, &co, 0));
    oo.key = key;
    oo.key_len = sizeof key;
    CHECK_OK(qcowkit_open(top, &oo, &img));
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, (size_t)size, 0,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK_OK(qcowkit_pread(img, got, size, 0));
    CHECK_ZERO(got, size);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(under);
    free(got);
    free(base);
    free(top);
}

int main(void)
{
    test_init(60);
    g_dir = test_mkdtemp();
    test_encrypted_tail();
    free(g_dir);
    return 0;
}
