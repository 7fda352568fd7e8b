/*
 * test-inflate-run: reads of whole compressed clusters fetch the streams
 * of a run at once (lib/inflate.c).  Runs must stop where the streams
 * stop lying back to back, at normal and unallocated clusters and at the
 * run limit, and a bad stream inside a run must fail the read with the
 * guest offset of its own cluster while the clusters before it read.
 */
#include <stdlib.h>

#include "test.h"

#define CS       4096u
#define CLUSTERS 400u
#define IN_ORDER 300u /* clusters 0..299: streams back to back */

/* Clusters 0..299 compressed in order, 300 normal, 301 unallocated,
 * 302..309 compressed in reverse order (streams not back to back). */
static struct qcowkit_image *make_image(struct qcowkit_io **io, uint8_t *want)
{
    struct qcowkit_image *img =
        test_mem_image((uint64_t)CLUSTERS * CS, CS, NULL, "run.qcow", io);

    memset(want, 0, (size_t)CLUSTERS * CS);
    for (unsigned i = 0; i < IN_ORDER; i++)
        test_compressible(want + (size_t)i * CS, CS, i);
    for (unsigned i = 302; i < 310; i++)
        test_compressible(want + (size_t)i * CS, CS, 7 * i);
    test_pattern(want + (size_t)300 * CS, CS, 300 * CS, 1);
    for (unsigned i = 0; i < IN_ORDER; i++)
        CHECK_OK(qcowkit_pwrite_compressed(img, want + (size_t)i * CS, CS,
                                           (uint64_t)i * CS));
    CHECK_OK(qcowkit_pwrite(img, want + (size_t)300 * CS, CS, 300 * CS));
    for (unsigned i = 309; i >= 302; i--)
        CHECK_OK(qcowkit_pwrite_compressed(img, want + (size_t)i * CS, CS,
                                           (uint64_t)i * CS));
    return img;
}

/* Read [off, off+len) and compare with want. */
static void read_same(struct qcowkit_image *img, const uint8_t *want,
                      uint64_t off, size_t len)
{
    uint8_t *got = test_xmalloc(len);

    memset(got, 0xee, len);
    CHECK_OK(qcowkit_pread(img, got, len, off));
    CHECK_MEM_EQ(got, want + off, len);
    free(got);
}

static void reads_match(struct qcowkit_image *img, const uint8_t *want)
{
    read_same(img, want, 0, (size_t)CLUSTERS * CS); /* past the run limit */
    read_same(img, want, CS / 2, 5 * CS);           /* part of the first */
    read_same(img, want, 0, 3 * CS + 100);          /* part of the last */
    read_same(img, want, 250 * CS, 60 * CS);        /* into normal data */
    read_same(img, want, 298 * CS, 14 * CS);        /* across every kind */
    read_same(img, want, 303 * CS, 5 * CS);         /* reversed streams */
}

/* Overwrite the stream of guest cluster c with bytes that do not inflate;
 * returns the image's bytes. */
static uint8_t *break_stream(struct qcowkit_io *io, unsigned c, size_t *len)
{
    uint8_t *bytes = test_mem_bytes(io, len);
    uint64_t pos = test_l2_entry_pos(bytes, *len, (uint64_t)c * CS, NULL);
    uint64_t entry, host, size;

    CHECK(pos != 0);
    entry = test_get_be64(bytes + pos);
    CHECK(entry & TEST_OFLAG_COMPRESSED);
    host = entry & ((UINT64_C(1) << (63 - 12)) - 1);
    size = (entry >> (63 - 12)) & (CS - 1);
    CHECK(host + size <= *len);
    /* 0xff: a final block of the reserved type. */
    memset(bytes + host, 0xff, size);
    return bytes;
}

static void bad_stream_in_run(const uint8_t *want, struct qcowkit_io *io)
{
    struct qcowkit_io *bad_io;
    struct qcowkit_image *img;
    size_t len;
    uint8_t *bytes = break_stream(io, 100, &len);
    uint8_t *got = test_xmalloc((size_t)200 * CS);

    img = test_mem_image_bytes(bytes, len, &bad_io);
    CHECK_ERR(qcowkit_pread(img, got, (size_t)200 * CS, 0), -EIO);
    CHECK_MSG_HAS("guest offset 409600"); /* 100 * 4096 */
    read_same(img, want, 0, 100 * CS);
    read_same(img, want, 101 * CS, 99 * CS);
    CHECK_ERR(qcowkit_pread(img, got, 10, 100 * CS + 5), -EIO);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(bad_io);
    free(got);
    free(bytes);
}

int main(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    uint8_t *want = test_xmalloc((size_t)CLUSTERS * CS);

    test_init(60);
    img = make_image(&io, want);
    reads_match(img, want);
    CHECK_OK(qcowkit_close(img));
    /* A fresh handle: nothing cached from the writes. */
    img = test_open_io(io, "run.qcow", 0);
    reads_match(img, want);
    bad_stream_in_run(want, io);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(want);
    return 0;
}
