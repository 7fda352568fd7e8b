/*
 * L2 tables: an LRU cache of them, lookups, allocation at the end of the
 * file, checks on every entry before use, and the ordered write-back that
 * keeps pointers from reaching the disk before what they point at.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t table_bytes(const struct qcowkit_image *img)
{
    return (size_t)img->l2_entries * sizeof(uint64_t);
}

/* The L1 page cache takes a sixteenth of the cache, the tables the rest. */
int qk_cache_init(struct qcowkit_image *img, uint64_t cache_bytes)
{
    struct qk_cache *c = &img->cache;
    uint64_t l1_bytes = qk_l1_cache_bytes(img, cache_bytes / 16);
    uint64_t capacity = 0;
    int err;

    if (cache_bytes > l1_bytes)
        capacity = (cache_bytes - l1_bytes) / table_bytes(img);
    if (capacity < 4)
        capacity = 4;
    if (capacity > UINT32_MAX / 2)
        capacity = UINT32_MAX / 2;
    c->wanted = capacity;
    c->scratch = malloc(table_bytes(img));
    if (!c->scratch)
        return qk_error(-ENOMEM, "%s: no memory for the table cache",
                        img->name);
    err = qk_cache_grow(img, img->l1_entries);
    return err < 0 ? err : qk_l1_init(img, l1_bytes);
}

/* Room for more tables once the image has more L1 entries. */
int qk_cache_grow(struct qcowkit_image *img, uint64_t l1_entries)
{
    struct qk_cache *c = &img->cache;
    uint64_t capacity = c->wanted < l1_entries ? c->wanted : l1_entries;
    uint32_t old = c->lru.capacity;
    struct qk_slot *slots;

    if (capacity <= old)
        return 0;
    slots = realloc(c->slots, capacity * sizeof *slots);
    if (slots) {
        memset(slots + old, 0, (capacity - old) * sizeof *slots);
        c->slots = slots;
    }
    if (!slots || qk_lru_resize(&c->lru, (uint32_t)capacity) < 0)
        return qk_error(-ENOMEM, "%s: no memory for the table cache",
                        img->name);
    return 0;
}

void qk_cache_free(struct qcowkit_image *img)
{
    struct qk_cache *c = &img->cache;

    for (uint32_t i = 0; c->slots && i < c->lru.used; i++)
        free(c->slots[i].entries);
    free(c->slots);
    free(c->scratch);
    qk_lru_free(&c->lru);
    memset(c, 0, sizeof *c);
    qk_l1_free(img);
}

/* Forget every cached table, dirty or not (make-empty discards them). */
void qk_cache_drop(struct qcowkit_image *img)
{
    struct qk_cache *c = &img->cache;

    for (uint32_t i = 0; i < c->lru.used; i++)
        free(c->slots[i].entries);
    memset(c->slots, 0, c->lru.capacity * sizeof *c->slots);
    qk_lru_clear(&c->lru);
    c->dirty_count = 0;
    c->unpublished_count = 0;
}

void qk_cache_forget(struct qcowkit_image *img, uint64_t l1_index)
{
    struct qk_cache *c = &img->cache;
    uint32_t i = qk_lru_find(&c->lru, l1_index);

    if (i == QK_NO_SLOT)
        return;
    c->slots[i].l1_index = QK_NO_TABLE;
    qk_lru_forget(&c->lru, i);
}

/* A free slot, evicting the least recently used table if needed. */
static int take_slot(struct qcowkit_image *img, uint32_t *index)
{
    struct qk_cache *c = &img->cache;
    uint32_t i = qk_lru_fresh(&c->lru);
    int err;

    if (i != QK_NO_SLOT) {
        c->slots[i].entries = malloc(table_bytes(img));
        if (!c->slots[i].entries)
            return qk_error(-ENOMEM, "%s: no memory for an L2 table",
                            img->name);
    } else {
        i = c->lru.oldest;
        if (c->slots[i].dirty) {
            err = qk_writeback(img);
            if (err < 0)
                return err;
        }
        qk_lru_take(&c->lru, i);
    }
    *index = i;
    return 0;
}

static void install_slot(struct qcowkit_image *img, uint32_t i,
                         uint64_t l1_index, uint64_t offset)
{
    struct qk_cache *c = &img->cache;

    c->slots[i].l1_index = l1_index;
    c->slots[i].offset = offset;
    c->slots[i].dirty = false;
    c->slots[i].unpublished = false;
    qk_lru_put(&c->lru, i, l1_index);
}

/* Give back a slot taken for a table that could not be had. */
static void release_slot(struct qcowkit_image *img, uint32_t i)
{
    struct qk_cache *c = &img->cache;

    c->slots[i].l1_index = QK_NO_TABLE;
    c->slots[i].dirty = false;
    c->slots[i].unpublished = false;
    qk_lru_put(&c->lru, i, QK_NO_KEY);
}

static int check_table_offset(struct qcowkit_image *img, uint64_t l1_index,
                              uint64_t offset)
{
    const char *why;
    int err = qk_trust_ready(img);

    if (err < 0 || !qk_table_refused(img, l1_index, offset))
        return err;
    why = qk_table_problem(img, offset, img->trust.trusted_end);
    return qk_error(-EIO, "%s: L2 table at offset %llu (L1 entry %llu) %s",
                    img->name, (unsigned long long)offset,
                    (unsigned long long)l1_index,
                    why ? why : "overlaps another L2 table");
}

static int load_table(struct qcowkit_image *img, uint64_t l1_index,
                      uint64_t offset, uint64_t *entries)
{
    uint8_t *raw = img->cache.scratch;
    int err = qk_read(img->io, raw, table_bytes(img), offset);

    for (uint32_t i = 0; err == 0 && i < img->l2_entries; i++)
        entries[i] = qk_be64(raw + (size_t)i * 8);
    return err < 0 ? err : qk_trust_first_load(img, l1_index, offset, entries);
}

uint64_t *qk_l2_get(struct qcowkit_image *img, uint64_t l1_index, int *err)
{
    struct qk_cache *c = &img->cache;
    uint32_t i = qk_lru_find(&c->lru, l1_index);
    uint64_t offset;

    *err = 0;
    if (i != QK_NO_SLOT) {
        qk_lru_touch(&c->lru, i);
        return c->slots[i].entries;
    }
    *err = qk_l1_get(img, l1_index, &offset);
    if (*err < 0 || offset == 0)
        return NULL;
    *err = check_table_offset(img, l1_index, offset);
    if (*err == 0)
        *err = take_slot(img, &i);
    if (*err < 0)
        return NULL;
    *err = load_table(img, l1_index, offset, c->slots[i].entries);
    if (*err < 0) {
        release_slot(img, i);
        return NULL;
    }
    install_slot(img, i, l1_index, offset);
    return c->slots[i].entries;
}

uint64_t *qk_l2_get_or_make(struct qcowkit_image *img, uint64_t l1_index,
                            int *err)
{
    struct qk_cache *c = &img->cache;
    uint64_t *entries = qk_l2_get(img, l1_index, err);
    uint64_t offset;
    uint32_t i;

    if (entries || *err < 0)
        return entries;
    *err = take_slot(img, &i);
    if (*err < 0)
        return NULL;
    *err = qk_allocate(img, table_bytes(img), img->cluster_size, &offset);
    if (*err == 0)
        *err = qk_trust_new_table(img, l1_index, offset);
    if (*err < 0) {
        release_slot(img, i);
        return NULL;
    }
    memset(c->slots[i].entries, 0, table_bytes(img));
    install_slot(img, i, l1_index, offset);
    c->slots[i].unpublished = true;
    c->slots[i].dirty = true;
    c->dirty_count++;
    c->unpublished_count++;
    return c->slots[i].entries;
}

/* The lowest L1 index in [from, end) of a table not on disk yet. */
static uint64_t first_unpublished(const struct qk_cache *c, uint64_t from,
                                  uint64_t end)
{
    uint64_t first = end;

    for (uint32_t i = 0; c->unpublished_count && i < c->lru.used; i++) {
        const struct qk_slot *s = &c->slots[i];
        if (s->unpublished && s->l1_index >= from && s->l1_index < first)
            first = s->l1_index;
    }
    return first;
}

int qk_l2_next_table(struct qcowkit_image *img, uint64_t from, uint64_t end,
                     uint64_t *next)
{
    uint64_t fresh;
    int err;

    if (end > img->l1_entries)
        end = img->l1_entries;
    fresh = first_unpublished(&img->cache, from, end);
    err = qk_l1_next_used(img, from, fresh, next);
    return err;
}

int qk_l2_set(struct qcowkit_image *img, uint64_t guest_offset, uint64_t entry)
{
    uint64_t l1_index = guest_offset >> (img->cluster_bits + img->l2_bits);
    uint32_t idx = (guest_offset >> img->cluster_bits) & (img->l2_entries - 1);
    int err;
    uint64_t *table = qk_l2_get(img, l1_index, &err);

    if (!table)
        return err < 0 ? err : -EIO;
    table[idx] = entry;
    qk_trust_entry_set(img, guest_offset >> img->cluster_bits);
    qk_l2_mark_dirty(img, l1_index);
    return 0;
}

void qk_l2_mark_dirty(struct qcowkit_image *img, uint64_t l1_index)
{
    struct qk_slot *s =
        &img->cache.slots[qk_lru_find(&img->cache.lru, l1_index)];

    if (!s->dirty) {
        s->dirty = true;
        img->cache.dirty_count++;
    }
    qk_data_written(img);
}

int qk_l2_drop_if_empty(struct qcowkit_image *img, uint64_t l1_index,
                        uint64_t *freed)
{
    struct qk_cache *c = &img->cache;
    uint32_t i = qk_lru_find(&c->lru, l1_index);
    struct qk_slot *s = i == QK_NO_SLOT ? NULL : &c->slots[i];
    int err;

    *freed = 0;
    if (!s || s->unpublished)
        return 0;
    for (uint32_t j = 0; j < img->l2_entries; j++)
        if (s->entries[j])
            return 0;
    err = qk_l1_set(img, l1_index, 0);
    if (err < 0) {
        /* The entry may or may not be on disk: write it again later. */
        s->unpublished = true;
        c->unpublished_count++;
        if (!s->dirty)
            c->dirty_count++;
        s->dirty = true;
        return err;
    }
    if (s->dirty)
        c->dirty_count--;
    s->dirty = false;
    *freed = s->offset;
    qk_trust_table_gone(img, l1_index, s->offset);
    qk_cache_forget(img, l1_index);
    return 0;
}

int qk_allocate(struct qcowkit_image *img, uint64_t bytes, uint64_t align,
                uint64_t *offset)
{
    uint64_t start = qk_align_up(img->file_end, align);
    /* What the file held before the handle grows it, first. */
    int err = qk_trust_ready(img);

    if (err < 0)
        return err;
    if (start < img->file_end || start > img->offset_mask - bytes)
        return qk_error(-EFBIG,
                        "%s: the image file cannot grow past %llu "
                        "bytes",
                        img->name, (unsigned long long)img->offset_mask);
    img->file_end = start + bytes;
    *offset = start;
    return 0;
}

int qk_lookup(struct qcowkit_image *img, uint64_t guest_offset, uint64_t *entry)
{
    uint64_t l1_index = guest_offset >> (img->cluster_bits + img->l2_bits);
    uint32_t l2_index =
        (guest_offset >> img->cluster_bits) & (img->l2_entries - 1);
    int err;
    uint64_t *table = qk_l2_get(img, l1_index, &err);

    *entry = table ? table[l2_index] : 0;
    return err;
}

static int write_tables(struct qcowkit_image *img, bool *any_unpublished)
{
    struct qk_cache *c = &img->cache;
    uint8_t *raw = c->scratch;
    int err;

    *any_unpublished = false;
    for (uint32_t i = 0; i < c->lru.used; i++) {
        struct qk_slot *s = &c->slots[i];
        if (!s->dirty)
            continue;
        for (uint32_t j = 0; j < img->l2_entries; j++)
            qk_put_be64(raw + (size_t)j * 8, s->entries[j]);
        err = qk_write(img->io, raw, table_bytes(img), s->offset);
        if (err < 0)
            return err;
        if (s->unpublished)
            *any_unpublished = true;
        else {
            s->dirty = false;
            c->dirty_count--;
        }
    }
    return 0;
}

static int publish_tables(struct qcowkit_image *img)
{
    struct qk_cache *c = &img->cache;
    int err;

    for (uint32_t i = 0; i < c->lru.used; i++) {
        struct qk_slot *s = &c->slots[i];
        if (!s->unpublished)
            continue;
        err = qk_l1_set(img, s->l1_index, s->offset);
        if (err < 0)
            return err;
        s->unpublished = false;
        s->dirty = false;
        c->dirty_count--;
        c->unpublished_count--;
    }
    return 0;
}

/*
 * Data first, then L2 tables, then the L1 entries of new tables, with a
 * barrier after each step: no entry on disk ever points at unwritten data.
 */
int qk_writeback(struct qcowkit_image *img)
{
    bool any_unpublished;
    int err;

    if (img->cache.dirty_count == 0)
        return qk_barrier_if_written(img);
    err = qk_barrier(img);
    if (err == 0)
        err = write_tables(img, &any_unpublished);
    if (err == 0 && any_unpublished) {
        err = qk_barrier(img);
        if (err == 0)
            err = publish_tables(img);
    }
    if (err == 0)
        err = qk_barrier(img);
    return err;
}

int qk_io_truncate_to(struct qcowkit_image *img, uint64_t size)
{
    int err;

    qk_assert_exclusive(img); /* no transfer may aim past size */
    err = img->io->ops.truncate(img->io->opaque, size);

    if (err < 0)
        return qk_error(err, "%s: cannot truncate to %llu bytes: %s", img->name,
                        (unsigned long long)size, strerror(-err));
    img->file_end = size;
    img->truncations++; /* a discard's batch must not punch reused space */
    /* Space past size may be given out again, to an equal entry. */
    img->inflated_entry = 0;
    return 0;
}
