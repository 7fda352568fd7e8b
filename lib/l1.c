/*
 * The L1 table, and the only code that reads or writes its entries.
 *
 * A header may declare an L1 table of a gigabyte over a file of a few
 * kilobytes, so the table is never read whole.  Entries are read through
 * a bounded LRU cache of 4 KiB pages (a page of zeros holds no memory),
 * written through to the disk at once, and walked by streaming the table
 * from the storage, stepping over its holes, so that a walk costs what
 * the file holds, not what the header declares.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PAGE_BYTES ((uint64_t)QK_L1_PAGE_ENTRIES * 8)
#define SCAN_BYTES (UINT64_C(64) << 10)

static uint64_t entry_at(const struct qcowkit_image *img, uint64_t index)
{
    return img->header.l1_table_offset + index * 8;
}

static uint64_t page_count(uint64_t entries)
{
    return (entries + QK_L1_PAGE_ENTRIES - 1) / QK_L1_PAGE_ENTRIES;
}

uint64_t qk_l1_cache_bytes(const struct qcowkit_image *img, uint64_t budget)
{
    uint64_t pages = page_count(img->l1_entries), n = budget / PAGE_BYTES;

    if (n < 4)
        n = 4;
    return (n < pages ? n : pages) * PAGE_BYTES;
}

/* Room for the pages of the table as it is now, within the budget. */
static int fit_cache(struct qcowkit_image *img)
{
    struct qk_l1 *l = &img->l1;
    uint64_t n = l->wanted < l->pages ? l->wanted : l->pages;
    uint64_t **entries;

    if (n <= l->lru.capacity)
        return 0;
    entries = realloc(l->entries, n * sizeof *entries);
    if (!entries)
        return qk_error(-ENOMEM, "%s: no memory for the L1 cache", img->name);
    memset(entries + l->lru.capacity, 0,
           (n - l->lru.capacity) * sizeof *entries);
    l->entries = entries;
    if (qk_lru_resize(&l->lru, (uint32_t)n) < 0)
        return qk_error(-ENOMEM, "%s: no memory for the L1 cache", img->name);
    return 0;
}

int qk_l1_init(struct qcowkit_image *img, uint64_t budget)
{
    struct qk_l1 *l = &img->l1;

    l->pages = page_count(img->l1_entries);
    l->wanted = budget / PAGE_BYTES < 4 ? 4 : budget / PAGE_BYTES;
    return fit_cache(img);
}

void qk_l1_forget(struct qcowkit_image *img)
{
    struct qk_l1 *l = &img->l1;

    for (uint32_t i = 0; i < l->lru.used; i++) {
        free(l->entries[i]);
        l->entries[i] = NULL;
    }
    qk_lru_clear(&l->lru);
}

void qk_l1_free(struct qcowkit_image *img)
{
    qk_l1_forget(img);
    free(img->l1.entries);
    qk_lru_free(&img->l1.lru);
    memset(&img->l1, 0, sizeof img->l1);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* A slot for a page: never used yet, or the least recently used one. */
static uint32_t free_slot(struct qk_l1 *l)
{
    uint32_t i = qk_lru_fresh(&l->lru);

    if (i != QK_NO_SLOT)
        return i;
    i = l->lru.oldest;
    qk_lru_take(&l->lru, i);
    return i;
}

static int load_page(struct qcowkit_image *img, uint64_t page, uint32_t *slot)
{
    struct qk_l1 *l = &img->l1;
    uint64_t first = page * QK_L1_PAGE_ENTRIES;
    uint64_t n = img->l1_entries - first;
    uint8_t raw[PAGE_BYTES];
    uint32_t i;
    int err;

    if (n > QK_L1_PAGE_ENTRIES)
        n = QK_L1_PAGE_ENTRIES;
    /* Never past the table: the bytes after it belong to something else. */
    err = qk_read(img->io, raw, n * 8, entry_at(img, first));
    if (err < 0)
        return err;
    i = free_slot(l);
    if (all_zero(raw, n * 8)) {
        free(l->entries[i]);
        l->entries[i] = NULL;
    } else {
        if (!l->entries[i])
            l->entries[i] = malloc(PAGE_BYTES);
        if (!l->entries[i]) {
            qk_lru_put(&l->lru, i, QK_NO_KEY);
            return qk_error(-ENOMEM, "%s: no memory for the L1 cache",
                            img->name);
        }
        memset(l->entries[i], 0, PAGE_BYTES);
        for (uint64_t j = 0; j < n; j++)
            l->entries[i][j] = qk_be64(raw + j * 8);
    }
    qk_lru_put(&l->lru, i, page);
    *slot = i;
    return 0;
}

int qk_l1_get(struct qcowkit_image *img, uint64_t index, uint64_t *entry)
{
    struct qk_l1 *l = &img->l1;
    uint64_t page = index / QK_L1_PAGE_ENTRIES;
    uint32_t i = qk_lru_find(&l->lru, page);
    int err;

    *entry = 0;
    if (i == QK_NO_SLOT) {
        err = load_page(img, page, &i);
        if (err < 0)
            return err;
    } else {
        qk_lru_touch(&l->lru, i);
    }
    if (l->entries[i])
        *entry = l->entries[i][index % QK_L1_PAGE_ENTRIES];
    return 0;
}

int qk_l1_set(struct qcowkit_image *img, uint64_t index, uint64_t entry)
{
    struct qk_l1 *l = &img->l1;
    uint32_t i = qk_lru_find(&l->lru, index / QK_L1_PAGE_ENTRIES);
    uint8_t raw[8];
    int err;

    qk_put_be64(raw, entry);
    err = qk_write(img->io, raw, sizeof raw, entry_at(img, index));
    if (i == QK_NO_SLOT)
        return err;
    if (err == 0 && l->entries[i])
        l->entries[i][index % QK_L1_PAGE_ENTRIES] = entry;
    else if (err < 0 || entry)
        qk_lru_forget(&l->lru, i); /* a page of zeros no more: read again */
    return err;
}

/*
 * Entries from index on that lie wholly in a hole of the storage (read
 * as zeros), or 0 if index is in data; *data_end: where that data ends.
 */
static uint64_t hole_entries(struct qcowkit_image *img, uint64_t index,
                             uint64_t end, uint64_t *data_end)
{
    uint64_t length;
    bool hole;

    if (qk_io_extent(img->io, entry_at(img, index), &length, &hole) < 0) {
        *data_end = end; /* the backend cannot tell: all data */
        return 0;
    }
    if (hole && length / 8 > 0)
        return length / 8 < end - index ? length / 8 : end - index;
    /* Data, or a hole that ends inside this entry: read the entries. */
    length = hole ? 1 : (length + 7) / 8;
    *data_end = length < end - index ? index + length : end;
    return 0;
}

static int scan_chunk(struct qcowkit_image *img, uint8_t *raw, uint64_t from,
                      uint64_t n, qk_l1_fn fn, void *opaque)
{
    int err = qk_read(img->io, raw, n * 8, entry_at(img, from));

    if (err == 0 && all_zero(raw, n * 8))
        return 0; /* the common case of a sparse image: no decoding */
    for (uint64_t j = 0; err == 0 && j < n; j++) {
        uint64_t entry = qk_be64(raw + j * 8);
        if (entry)
            err = fn(opaque, from + j, entry);
    }
    return err;
}

int qk_l1_scan(struct qcowkit_image *img, uint64_t from, uint64_t end,
               qk_l1_fn fn, void *opaque)
{
    uint64_t data_end = from, at = from;
    uint8_t *raw;
    int err = 0;

    if (end > img->l1_entries)
        end = img->l1_entries;
    if (from >= end)
        return 0;
    raw = malloc((end - from) * 8 < SCAN_BYTES ? (end - from) * 8 : SCAN_BYTES);
    if (!raw)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    while (err == 0 && at < end) {
        uint64_t n;
        if (at >= data_end) {
            at += hole_entries(img, at, end, &data_end);
            continue;
        }
        n = data_end - at;
        if (n > SCAN_BYTES / 8)
            n = SCAN_BYTES / 8;
        err = scan_chunk(img, raw, at, n, fn, opaque);
        at += n;
    }
    free(raw);
    return err < 0 ? err : 0;
}

static int first_used(void *opaque, uint64_t index, uint64_t entry)
{
    (void)entry;
    *(uint64_t *)opaque = index;
    return 1;
}

int qk_l1_next_used(struct qcowkit_image *img, uint64_t from, uint64_t end,
                    uint64_t *next)
{
    struct qk_l1 *l = &img->l1;

    *next = end;
    /* Pages in the cache answer without a read. */
    while (from < end) {
        uint64_t page = from / QK_L1_PAGE_ENTRIES;
        uint64_t page_end = (page + 1) * QK_L1_PAGE_ENTRIES;
        uint32_t i = qk_lru_find(&l->lru, page);
        if (i == QK_NO_SLOT)
            break;
        for (; l->entries[i] && from < end && from < page_end; from++)
            if (l->entries[i][from % QK_L1_PAGE_ENTRIES]) {
                *next = from;
                return 0;
            }
        from = page_end;
    }
    return from < end ? qk_l1_scan(img, from, end, first_used, next) : 0;
}

/* Zeros over [offset, offset+len), except where the storage has a hole. */
static int zero_range(struct qcowkit_image *img, uint64_t offset, uint64_t len)
{
    uint8_t *zeros = calloc(1, len < SCAN_BYTES ? (len ? len : 1) : SCAN_BYTES);
    int err = zeros ? 0 : qk_error(-ENOMEM, "%s: out of memory", img->name);

    while (err == 0 && len > 0) {
        uint64_t run = len;
        bool hole = false;
        if (qk_io_extent(img->io, offset, &run, &hole) < 0 || run > len)
            run = len;
        for (uint64_t done = 0; !hole && err == 0 && done < run;) {
            uint64_t n = run - done < SCAN_BYTES ? run - done : SCAN_BYTES;
            err = qk_write(img->io, zeros, n, offset + done);
            done += n;
        }
        offset += run;
        len -= run;
    }
    free(zeros);
    return err;
}

int qk_l1_clear(struct qcowkit_image *img)
{
    int err = zero_range(img, img->header.l1_table_offset, img->l1_entries * 8);

    qk_l1_forget(img);
    return err;
}

int qk_l1_wipe(struct qcowkit_image *img, uint64_t offset, uint64_t entries)
{
    return zero_range(img, offset, entries * 8);
}

/* Copy len bytes from src to dst (past the file's end: zeros already). */
static int copy_range(struct qcowkit_image *img, uint64_t src, uint64_t dst,
                      uint64_t len)
{
    uint8_t *buf = malloc(len < SCAN_BYTES ? (len ? len : 1) : SCAN_BYTES);
    int err = buf ? 0 : qk_error(-ENOMEM, "%s: out of memory", img->name);

    for (uint64_t done = 0; err == 0 && done < len;) {
        uint64_t run = len - done, n;
        bool hole = false;
        if (qk_io_extent(img->io, src + done, &run, &hole) < 0 ||
            run > len - done)
            run = len - done;
        if (hole) {
            done += run;
            continue;
        }
        n = run < SCAN_BYTES ? run : SCAN_BYTES;
        err = qk_read(img->io, buf, n, src + done);
        if (err == 0)
            err = qk_write(img->io, buf, n, dst + done);
        done += n;
    }
    free(buf);
    return err;
}

uint64_t qk_l1_bytes(uint64_t entries)
{
    return qk_align_up(entries * 8, QCOW_SECTOR);
}

int qk_l1_move(struct qcowkit_image *img, uint64_t offset, uint64_t entries)
{
    uint64_t bytes = qk_l1_bytes(entries);
    uint64_t old_bytes = img->l1_entries * 8, tail;
    static const uint8_t zeros[QCOW_SECTOR];
    int err = copy_range(img, img->header.l1_table_offset, offset, old_bytes);
    /* The rest lies past the file's end, so reads as zeros; writing the
     * last sector makes the file hold the whole table. */
    tail = bytes - QCOW_SECTOR > old_bytes ? bytes - QCOW_SECTOR : old_bytes;
    if (err == 0 && tail < bytes)
        err = qk_write(img->io, zeros, bytes - tail, offset + tail);
    if (err < 0)
        return err;
    img->header.l1_table_offset = offset;
    img->l1_entries = entries;
    img->l1.pages = page_count(entries);
    qk_l1_forget(img);
    return fit_cache(img);
}

void qk_l1_unmove(struct qcowkit_image *img, uint64_t offset, uint64_t entries)
{
    img->header.l1_table_offset = offset;
    img->l1_entries = entries;
    img->l1.pages = page_count(entries);
    qk_l1_forget(img);
}
