/*
 * Moving guest data to and from host clusters, through AES when the
 * image is encrypted (whole sectors only, so partial sectors are read,
 * merged and rewritten).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BOUNCE_BYTES (64u * 1024u)

static bool encrypted(const struct qcowkit_image *img)
{
    return img->format == QCOWKIT_FORMAT_QCOW && img->header.crypt_method;
}

static bool sector_aligned(uint64_t offset, uint64_t len)
{
    return ((offset | len) & (QCOW_SECTOR - 1)) == 0;
}

/*
 * The next piece of [guest, guest+n) after done bytes: the whole sectors
 * [*start, *end) around it, at most BOUNCE_BYTES; returns its length.
 */
static uint64_t bounce_window(uint64_t guest, uint64_t n, uint64_t done,
                              uint64_t *start, uint64_t *end)
{
    uint64_t at = guest + done;

    *start = at & ~(uint64_t)(QCOW_SECTOR - 1);
    *end = qk_align_up(guest + n, QCOW_SECTOR);
    if (*end - *start > BOUNCE_BYTES)
        *end = *start + BOUNCE_BYTES;
    return *end - at < n - done ? *end - at : n - done;
}

/* Read and decrypt the whole sectors [start, end) of guest data. */
static int read_sectors(struct qcowkit_image *img, uint8_t *out, uint64_t host,
                        uint64_t start, uint64_t end)
{
    int err = qk_read(img->io, out, end - start, host);
    return err < 0 ? err : qk_crypt(img, out, end - start, start, false);
}

int qk_read_data(struct qcowkit_image *img, uint8_t *buf, uint64_t n,
                 uint64_t host, uint64_t guest)
{
    uint8_t *bounce;
    int err = 0;

    if (!encrypted(img))
        return qk_read(img->io, buf, n, host);
    if (sector_aligned(guest, n))
        return read_sectors(img, buf, host, guest, guest + n);
    bounce = malloc(BOUNCE_BYTES);
    if (!bounce)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    for (uint64_t done = 0; err == 0 && done < n;) {
        uint64_t at = guest + done, start, end;
        uint64_t take = bounce_window(guest, n, done, &start, &end);
        err = read_sectors(img, bounce, host + (start - guest), start, end);
        if (err == 0)
            memcpy(buf + done, bounce + (at - start), take);
        done += take;
    }
    free(bounce);
    return err;
}

/*
 * Encrypt and write [guest, guest+n); sectors the request covers only
 * partly are first read back, so their other bytes survive.
 */
static int write_encrypted(struct qcowkit_image *img, uint8_t *bounce,
                           const uint8_t *buf, uint64_t n, uint64_t host,
                           uint64_t guest)
{
    int err = 0;

    for (uint64_t done = 0; err == 0 && done < n;) {
        uint64_t at = guest + done, start, end;
        uint64_t take = bounce_window(guest, n, done, &start, &end);
        if (start < at || at + take < end)
            err = read_sectors(img, bounce, host + (start - guest), start, end);
        if (err == 0) {
            memcpy(bounce + (at - start), buf + done, take);
            err = qk_crypt(img, bounce, end - start, start, true);
        }
        if (err == 0)
            err =
                qk_write(img->io, bounce, end - start, host + (start - guest));
        done += take;
    }
    return err;
}

int qk_write_data(struct qcowkit_image *img, const uint8_t *buf, uint64_t n,
                  uint64_t host, uint64_t guest)
{
    uint8_t *bounce;
    int err;

    if (!encrypted(img))
        return qk_write(img->io, buf, n, host);
    bounce = malloc(BOUNCE_BYTES);
    if (!bounce)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = write_encrypted(img, bounce, buf, n, host, guest);
    free(bounce);
    return err;
}
