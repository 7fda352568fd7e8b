/*
 * The guard of probed raw images (CVE-2008-2004): what a guest writes
 * into sector 0 must not turn the image into another format at its next
 * probe, e.g. a qcow header naming a host file as its backing file.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Magics that QEMU's format probes look for in the first sector. */
static const struct {
    const char *name;
    unsigned offset;
    unsigned len;
    const char *bytes;
} magics[] = {
    {"qcow/qcow2", 0, 4, "QFI\xfb"},
    {"QED", 0, 4, "QED\0"},
    {"VMDK", 0, 4, "KDMV"},
    {"VMDK3", 0, 4, "COWD"},
    {"VDI", 64, 4, "\x7f\x10\xda\xbe"},
    {"VHDX", 0, 8, "vhdxfile"},
    {"VPC", 0, 8, "conectix"},
    {"LUKS", 0, 6, "LUKS\xba\xbe"},
    {"bochs", 0, 22, "Bochs Virtual HD Image"},
    {"cloop", 0, 23, "#!/bin/sh\n#V2.0 Format\n"},
    {"parallels", 0, 16, "WithoutFreeSpace"},
    {"parallels", 0, 16, "WithouFreSpacExt"},
};

static bool starts_with(const char *p, const char *end, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/*
 * A VMDK text descriptor, as QEMU probes it: comment lines and blank
 * lines (of spaces), then "version=1", "2" or "3" ending the line.
 */
static bool vmdk_descriptor(const uint8_t *buf, size_t len)
{
    const char *p = (const char *)buf, *end = p + len;

    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n')
                p++;
            p++;
            continue;
        }
        if (*p == ' ') {
            while (p < end && *p == ' ')
                p++;
            if (p < end && *p == '\r')
                p++;
            if (p == end || *p != '\n')
                return false;
            p++;
            continue;
        }
        for (char v = '1'; v <= '3'; v++) {
            char line[] = {'v', 'e', 'r', 's', 'i', 'o', 'n', '=', v, '\0'};
            if (starts_with(p, end, line) && (starts_with(p + 9, end, "\n") ||
                                              starts_with(p + 9, end, "\r\n")))
                return true;
        }
        return false;
    }
    return false;
}

/* The format buf (the start of an image) would probe as, or NULL. */
static const char *probe_other(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++)
        if (magics[i].offset + magics[i].len <= len &&
            memcmp(buf + magics[i].offset, magics[i].bytes, magics[i].len) == 0)
            return magics[i].name;
    return vmdk_descriptor(buf, len) ? "VMDK descriptor" : NULL;
}

/* Sector 0 as it would be after writing buf at offset.  Lock held. */
static int merged_sector(struct qcowkit_image *img, const uint8_t *buf,
                         size_t count, uint64_t offset, uint8_t *out)
{
    size_t have = img->virtual_size < QCOW_SECTOR ? (size_t)img->virtual_size
                                                  : QCOW_SECTOR;
    size_t n = count < QCOW_SECTOR - offset ? count : QCOW_SECTOR - offset;
    int err;

    memset(out, 0, QCOW_SECTOR);
    err = qk_read(img->io, out, have, 0);
    if (err == 0 && n)
        memcpy(out + offset, buf, n);
    return err;
}

int qk_raw_write_sector0(struct qcowkit_image *img, const void *buf,
                         size_t count, uint64_t offset)
{
    uint8_t sector[QCOW_SECTOR];
    const char *format;
    int err;

    /* Serialised, so that two writes cannot make a magic between them. */
    pthread_mutex_lock(&img->lock);
    err = merged_sector(img, buf, count, offset, sector);
    format = err == 0 ? probe_other(sector, QCOW_SECTOR) : NULL;
    if (format)
        err = qk_error(-EPERM,
                       "%s: refusing a write that would make sector 0 of a "
                       "probed raw image look like a %s image (open it with "
                       "format raw to allow it)",
                       img->name, format);
    if (err == 0)
        err = qk_write(img->io, buf, count, offset);
    if (err == 0)
        qk_data_written(img);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qk_raw_truncate_guard(struct qcowkit_image *img, uint64_t size)
{
    uint8_t sector[QCOW_SECTOR];
    const char *format;
    int err;

    if (!img->probed || size >= QCOW_SECTOR || size >= img->virtual_size)
        return 0;
    /* What is cut off reads as zeros when the image grows again. */
    err = merged_sector(img, NULL, 0, 0, sector);
    if (err < 0)
        return err;
    memset(sector + size, 0, QCOW_SECTOR - size);
    format = probe_other(sector, QCOW_SECTOR);
    if (!format)
        return 0;
    return qk_error(-EPERM,
                    "%s: refusing to cut a probed raw image to %llu bytes: "
                    "grown again, sector 0 would look like a %s image (open "
                    "it with format raw to allow it)",
                    img->name, (unsigned long long)size, format);
}
