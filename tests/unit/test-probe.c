/*
 * test-probe.c - a raw image whose format was probed must not become
 * another format through what is written into its first sector.
 */
#include "test.h"

#define SIZE (64u * 1024)

/*
 * The start of an image of each format QEMU probes at offset 0, up to the
 * byte that makes it probe as that format.
 */
static const struct {
    unsigned offset;
    unsigned len;
    const char *bytes;
} headers[] = {
    {0, 4, "QFI\xfb"},
    {0, 4, "QED\0"},
    {0, 4, "KDMV"},
    {0, 4, "COWD"},
    {64, 4, "\x7f\x10\xda\xbe"},
    {0, 8, "vhdxfile"},
    {0, 8, "conectix"},
    {0, 6, "LUKS\xba\xbe"},
    {0, 22, "Bochs Virtual HD Image"},
    {0, 23, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop "},
    {0, 16, "WithoutFreeSpace"},
    {0, 16, "WithouFreSpacExt"},
    {0, 32, "# Disk DescriptorFile\nversion=1\n"},
    {0, 11, "version=2\r\n"},
    {0, 17, "#c\n   \nversion=3\n"},
};
#define NHEADERS (sizeof headers / sizeof *headers)

static struct qcowkit_image *open_raw(struct qcowkit_io *io,
                                      enum qcowkit_format format)
{
    return test_open_io_ex(io, "disk.raw", QCOWKIT_OPEN_RDWR, format, 0);
}

/* Sector 0 with header i in it, over a pattern. */
static void sector_with(size_t i, uint8_t *sector)
{
    memset(sector, 0x11, 512);
    memcpy(sector + headers[i].offset, headers[i].bytes, headers[i].len);
}

static void check_unchanged(struct qcowkit_io *io, const uint8_t *want)
{
    size_t len;
    uint8_t *got = test_mem_bytes(io, &len);

    CHECK_EQ(len, SIZE);
    CHECK_MEM_EQ(got, want, SIZE);
    free(got);
}

/* Whole-sector, partial and byte-by-byte writes of every header. */
static void test_refused(size_t i)
{
    uint8_t *orig = test_xcalloc(SIZE), sector[512];
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    unsigned last = headers[i].offset + headers[i].len - 1;

    test_pattern(orig, SIZE, 0, 7);
    memset(orig, 0x33, 512); /* nothing that could end a header */
    io = test_mem_io(orig, SIZE);
    img = open_raw(io, QCOWKIT_FORMAT_AUTO);
    CHECK_EQ(test_info(img).format, QCOWKIT_FORMAT_RAW);
    CHECK_EQ(test_info(img).format_probed, 1);
    sector_with(i, sector);
    CHECK_ERR(qcowkit_pwrite(img, sector, 512, 0), -EPERM);
    CHECK(strstr(qcowkit_errmsg(), "disk.raw") != NULL);
    CHECK_ERR(qcowkit_pwrite(img, sector, 4096, 0), -EPERM);
    CHECK_ERR(qcowkit_pwrite_compressed(img, sector, 512, 0), -EPERM);
    CHECK_ERR(qcowkit_pwrite(img, headers[i].bytes, headers[i].len,
                             headers[i].offset),
              -EPERM);
    /* One byte at a time: the last one completes the header. */
    for (unsigned b = headers[i].offset; b < last; b++)
        CHECK_OK(qcowkit_pwrite(img, sector + b, 1, b));
    CHECK_ERR(qcowkit_pwrite(img, sector + last, 1, last), -EPERM);
    memcpy(orig + headers[i].offset, sector + headers[i].offset,
           last - headers[i].offset);
    check_unchanged(io, orig);
    CHECK_OK(qcowkit_close(img));
    check_unchanged(io, orig);
    qcowkit_io_close(io);
    free(orig);
}

/* With the format given, the same writes go through. */
static void test_explicit(size_t i)
{
    struct qcowkit_io *io = test_mem_io(NULL, 0);
    struct qcowkit_image *img;
    uint8_t sector[512], got[512];

    CHECK_OK(qcowkit_io_truncate(io, SIZE));
    img = open_raw(io, QCOWKIT_FORMAT_RAW);
    CHECK_EQ(test_info(img).format_probed, 0);
    sector_with(i, sector);
    CHECK_OK(qcowkit_pwrite(img, sector, 512, 0));
    CHECK_OK(qcowkit_pread(img, got, 512, 0));
    CHECK_MEM_EQ(got, sector, 512);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/* Zeros can finish a header too ("QED\1" -> "QED\0"). */
static void test_zeroes(void)
{
    uint8_t orig[SIZE];
    struct qcowkit_io *io;
    struct qcowkit_image *img;

    memset(orig, 0x22, sizeof orig);
    memcpy(orig, "QED\1", 4);
    io = test_mem_io(orig, sizeof orig);
    img = open_raw(io, QCOWKIT_FORMAT_AUTO);
    CHECK_ERR(qcowkit_pwrite_zeroes(img, 1, 3), -EPERM);
    CHECK_OK(qcowkit_pwrite_zeroes(img, 1, 2)); /* "QE\0\1" is nothing */
    orig[2] = 0;
    check_unchanged(io, orig);
    /* Past sector 0 anything goes, and so do harmless sector 0 writes. */
    CHECK_OK(qcowkit_pwrite(img, "QFI\xfb", 4, 512));
    CHECK_OK(qcowkit_pwrite(img, "QFI", 3, 0));
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/* A short raw file: its sector 0 is all there is. */
static void test_short_file(void)
{
    struct qcowkit_io *io = test_mem_io("abcdefgh", 8);
    struct qcowkit_image *img = open_raw(io, QCOWKIT_FORMAT_AUTO);

    CHECK_ERR(qcowkit_pwrite(img, "QFI\xfb", 4, 0), -EPERM);
    CHECK_ERR(qcowkit_pwrite(img, "conectix", 8, 0), -EPERM);
    CHECK_OK(qcowkit_pwrite(img, "ABCD", 4, 4));
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

int main(void)
{
    test_init(60);
    for (size_t i = 0; i < NHEADERS; i++) {
        test_refused(i);
        test_explicit(i);
    }
    test_zeroes();
    test_short_file();
    printf("test-probe: ok\n");
    return 0;
}
