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

int qk_cache_init(struct qcowkit_image *img, uint64_t cache_bytes)
{
    struct qk_cache *c = &img->cache;
    uint64_t capacity = cache_bytes / table_bytes(img);

    if (capacity < 4)
        capacity = 4;
    if (capacity > UINT32_MAX - 1)
        capacity = UINT32_MAX - 1;
    c->wanted = capacity;
    if (capacity > img->l1_entries)
        capacity = img->l1_entries;
    c->capacity = (uint32_t)capacity;
    c->slots = calloc(capacity, sizeof *c->slots);
    c->slot_of = malloc(img->l1_entries * sizeof *c->slot_of);
    c->scratch = malloc(table_bytes(img));
    if (!c->slots || !c->slot_of || !c->scratch)
        return qk_error(-ENOMEM, "%s: no memory for the table cache",
                        img->name);
    for (uint64_t i = 0; i < img->l1_entries; i++)
        c->slot_of[i] = QK_NO_SLOT;
    c->newest = c->oldest = QK_NO_SLOT;
    return 0;
}

/* Room for more tables once the image has more L1 entries. */
int qk_cache_grow(struct qcowkit_image *img, uint64_t l1_entries)
{
    struct qk_cache *c = &img->cache;
    uint64_t capacity = c->wanted < l1_entries ? c->wanted : l1_entries;
    struct qk_slot *slots;

    if (capacity <= c->capacity)
        return 0;
    slots = realloc(c->slots, capacity * sizeof *slots);
    if (!slots)
        return qk_error(-ENOMEM, "%s: no memory for the table cache",
                        img->name);
    memset(slots + c->capacity, 0, (capacity - c->capacity) * sizeof *slots);
    c->slots = slots;
    c->capacity = (uint32_t)capacity;
    return 0;
}

void qk_cache_free(struct qcowkit_image *img)
{
    struct qk_cache *c = &img->cache;

    for (uint32_t i = 0; c->slots && i < c->used; i++)
        free(c->slots[i].entries);
    free(c->slots);
    free(c->slot_of);
    free(c->scratch);
    memset(c, 0, sizeof *c);
}

/* Forget every cached table, dirty or not (make-empty discards them). */
void qk_cache_drop(struct qcowkit_image *img)
{
    struct qk_cache *c = &img->cache;

    for (uint32_t i = 0; i < c->used; i++) {
        if (c->slots[i].l1_index != QK_NO_TABLE)
            c->slot_of[c->slots[i].l1_index] = QK_NO_SLOT;
        free(c->slots[i].entries);
    }
    memset(c->slots, 0, c->capacity * sizeof *c->slots);
    c->used = 0;
    c->dirty_count = 0;
    c->newest = c->oldest = QK_NO_SLOT;
}

static void unlink_slot(struct qk_cache *c, uint32_t i)
{
    struct qk_slot *s = &c->slots[i];

    if (s->newer != QK_NO_SLOT)
        c->slots[s->newer].older = s->older;
    else
        c->newest = s->older;
    if (s->older != QK_NO_SLOT)
        c->slots[s->older].newer = s->newer;
    else
        c->oldest = s->newer;
}

static void push_newest(struct qk_cache *c, uint32_t i)
{
    struct qk_slot *s = &c->slots[i];

    s->newer = QK_NO_SLOT;
    s->older = c->newest;
    if (c->newest != QK_NO_SLOT)
        c->slots[c->newest].newer = i;
    c->newest = i;
    if (c->oldest == QK_NO_SLOT)
        c->oldest = i;
}

/* A free slot, evicting the least recently used table if needed. */
static int take_slot(struct qcowkit_image *img, uint32_t *index)
{
    struct qk_cache *c = &img->cache;
    uint32_t i;
    int err;

    if (c->used < c->capacity) {
        i = c->used;
        c->slots[i].entries = malloc(table_bytes(img));
        if (!c->slots[i].entries)
            return qk_error(-ENOMEM, "%s: no memory for an L2 table",
                            img->name);
        c->used++;
    } else {
        i = c->oldest;
        if (c->slots[i].dirty) {
            err = qk_writeback(img);
            if (err < 0)
                return err;
        }
        unlink_slot(c, i);
        if (c->slots[i].l1_index != QK_NO_TABLE)
            c->slot_of[c->slots[i].l1_index] = QK_NO_SLOT;
    }
    *index = i;
    return 0;
}

static void install_slot(struct qcowkit_image *img, uint32_t i,
                         uint64_t l1_index)
{
    struct qk_cache *c = &img->cache;

    c->slots[i].l1_index = l1_index;
    c->slots[i].dirty = false;
    c->slots[i].unpublished = false;
    c->slot_of[l1_index] = i;
    push_newest(c, i);
}

/* Give back a slot taken for a table that could not be had. */
static void release_slot(struct qcowkit_image *img, uint32_t i)
{
    struct qk_cache *c = &img->cache;

    c->slots[i].l1_index = QK_NO_TABLE;
    c->slots[i].dirty = false;
    c->slots[i].unpublished = false;
    push_newest(c, i);
}

static int check_table_offset(struct qcowkit_image *img, uint64_t l1_index,
                              uint64_t offset)
{
    const char *why;

    if (!qk_table_refused(img, l1_index))
        return 0;
    why = qk_table_problem(img, offset, img->trust.trusted_end);
    return qk_error(-EIO, "%s: L2 table at offset %llu (L1 entry %llu) %s",
                    img->name, (unsigned long long)offset,
                    (unsigned long long)l1_index,
                    why ? why : "overlaps another L2 table");
}

static int load_table(struct qcowkit_image *img, uint64_t l1_index,
                      uint64_t *entries)
{
    uint8_t *raw = img->cache.scratch;
    uint64_t offset = img->l1[l1_index];
    int err = check_table_offset(img, l1_index, offset);

    if (err == 0)
        err = qk_read(img->io, raw, table_bytes(img), offset);
    for (uint32_t i = 0; err == 0 && i < img->l2_entries; i++)
        entries[i] = qk_be64(raw + (size_t)i * 8);
    return err < 0 ? err : qk_trust_first_load(img, l1_index, entries);
}

uint64_t *qk_l2_get(struct qcowkit_image *img, uint64_t l1_index, int *err)
{
    struct qk_cache *c = &img->cache;
    uint32_t i = c->slot_of[l1_index];

    *err = 0;
    if (i != QK_NO_SLOT) {
        unlink_slot(c, i);
        push_newest(c, i);
        return c->slots[i].entries;
    }
    if (img->l1[l1_index] == 0)
        return NULL;
    *err = take_slot(img, &i);
    if (*err < 0)
        return NULL;
    *err = load_table(img, l1_index, c->slots[i].entries);
    if (*err < 0) {
        release_slot(img, i);
        return NULL;
    }
    install_slot(img, i, l1_index);
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
    img->l1[l1_index] = offset;
    install_slot(img, i, l1_index);
    c->slots[i].unpublished = true;
    c->slots[i].dirty = true;
    c->dirty_count++;
    return c->slots[i].entries;
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
    struct qk_slot *s = &img->cache.slots[img->cache.slot_of[l1_index]];

    if (!s->dirty) {
        s->dirty = true;
        img->cache.dirty_count++;
    }
    qk_data_written(img);
}

int qk_allocate(struct qcowkit_image *img, uint64_t bytes, uint64_t align,
                uint64_t *offset)
{
    uint64_t start = qk_align_up(img->file_end, align);

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
    for (uint32_t i = 0; i < c->used; i++) {
        struct qk_slot *s = &c->slots[i];
        if (!s->dirty)
            continue;
        for (uint32_t j = 0; j < img->l2_entries; j++)
            qk_put_be64(raw + (size_t)j * 8, s->entries[j]);
        err = qk_write(img->io, raw, table_bytes(img), img->l1[s->l1_index]);
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
    uint8_t raw[8];
    int err;

    for (uint32_t i = 0; i < c->used; i++) {
        struct qk_slot *s = &c->slots[i];
        if (!s->unpublished)
            continue;
        qk_put_be64(raw, img->l1[s->l1_index]);
        err = qk_write(img->io, raw, sizeof raw,
                       img->header.l1_table_offset + s->l1_index * 8);
        if (err < 0)
            return err;
        s->unpublished = false;
        s->dirty = false;
        c->dirty_count--;
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
    /* Space past size may be given out again, to an equal entry. */
    img->inflated_entry = 0;
    return 0;
}
