/*
 * test-inflate-cache (from a hostile review of the issue 8 fixes): the
 * inflated-cluster cache (img->inflated_entry) is keyed by the entry
 * value alone.  A shrink drops a compressed cluster, its leak repair cuts
 * the file back, and a new compressed cluster of the same size lands at
 * the same offset: the same entry value, other data.  A read on the same
 * handle returns the old cluster's bytes (the file holds the new ones).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static void stale_inflated(const char *dir)
{
    char path[512];
    uint8_t a[4096], b[4096], got[4096];
    struct qcowkit_image *img;
    const uint64_t cs = 4096;

    snprintf(path, sizeof path, "%s/s.qcow", dir);
    test_create_file(path, 8 * cs, 4096, NULL);
    img = test_open_file(path, QCOWKIT_OPEN_RDWR);
    memset(a, 0x11, sizeof a);
    memset(b, 0x22, sizeof b);
    /* Cluster 7 compressed (its stream ends the file), read: cached. */
    CHECK_OK(qcowkit_pwrite_compressed(img, a, cs, 7 * cs));
    CHECK_OK(qcowkit_pread(img, got, cs, 7 * cs));
    CHECK_MEM_EQ(got, a, cs);
    /* A cluster after the stream, so that the cut is a whole cluster. */
    CHECK_OK(qcowkit_pwrite(img, a, cs, 6 * cs));
    /* Shrink: both dropped, the leak repair truncates before the stream. */
    CHECK_OK(qcowkit_resize(img, 6 * cs));
    CHECK_OK(qcowkit_resize(img, 8 * cs));
    /* Same offset, same deflated size, other data. */
    CHECK_OK(qcowkit_pwrite_compressed(img, b, cs, 7 * cs));
    CHECK_OK(qcowkit_pread(img, got, cs, 7 * cs));
    CHECK_MEM_EQ(got, b, cs); /* fails: 0x11 from the cache */
    CHECK_OK(qcowkit_close(img));
    /* A fresh handle reads what the file holds. */
    img = test_open_file(path, 0);
    CHECK_OK(qcowkit_pread(img, got, cs, 7 * cs));
    CHECK_MEM_EQ(got, b, cs);
    CHECK_OK(qcowkit_close(img));
}

int main(void)
{
    char *dir;

    test_init(60);
    dir = test_mkdtemp();
    stale_inflated(dir);
    free(dir);
    return 0;
}
