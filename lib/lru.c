/*
 * A set of numbered slots, found by a 64-bit key through a hash and kept
 * in order of last use.  Its size follows the slots, never the key space:
 * the L2 table cache and the L1 page cache use it over L1 indices and
 * page numbers that a header may make huge.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint32_t bucket_of(const struct qk_lru *l, uint64_t key)
{
    return (uint32_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >>
                      (64 - l->bucket_bits));
}

static unsigned bits_for(uint32_t capacity)
{
    unsigned bits = 2;

    while (bits < 31 && (UINT32_C(1) << bits) < capacity)
        bits++;
    return bits;
}

static void rehash(struct qk_lru *l)
{
    uint32_t n = UINT32_C(1) << l->bucket_bits;

    for (uint32_t b = 0; b < n; b++)
        l->buckets[b] = QK_NO_SLOT;
    for (uint32_t i = 0; i < l->used; i++) {
        if (l->keys[i] == QK_NO_KEY)
            continue;
        uint32_t b = bucket_of(l, l->keys[i]);
        l->next[i] = l->buckets[b];
        l->buckets[b] = i;
    }
}

/* Room for capacity slots (more than before, or the first time). */
int qk_lru_resize(struct qk_lru *l, uint32_t capacity)
{
    unsigned bits = bits_for(capacity);
    uint64_t *keys;
    uint32_t *newer, *older, *next, *buckets;

    if (capacity <= l->capacity)
        return 0;
    keys = realloc(l->keys, capacity * sizeof *keys);
    if (keys)
        l->keys = keys;
    newer = realloc(l->newer, capacity * sizeof *newer);
    if (newer)
        l->newer = newer;
    older = realloc(l->older, capacity * sizeof *older);
    if (older)
        l->older = older;
    next = realloc(l->next, capacity * sizeof *next);
    if (next)
        l->next = next;
    buckets = realloc(l->buckets, (sizeof *buckets) << bits);
    if (buckets)
        l->buckets = buckets;
    if (!keys || !newer || !older || !next || !buckets)
        return -ENOMEM;
    if (l->capacity == 0)
        l->newest = l->oldest = QK_NO_SLOT;
    l->capacity = capacity;
    l->bucket_bits = bits;
    rehash(l);
    return 0;
}

void qk_lru_free(struct qk_lru *l)
{
    free(l->keys);
    free(l->newer);
    free(l->older);
    free(l->next);
    free(l->buckets);
    memset(l, 0, sizeof *l);
}

/* Every slot unused again. */
void qk_lru_clear(struct qk_lru *l)
{
    l->used = 0;
    l->newest = l->oldest = QK_NO_SLOT;
    if (l->capacity)
        rehash(l);
}

uint32_t qk_lru_find(const struct qk_lru *l, uint64_t key)
{
    uint32_t i;

    if (!l->capacity)
        return QK_NO_SLOT;
    for (i = l->buckets[bucket_of(l, key)]; i != QK_NO_SLOT; i = l->next[i])
        if (l->keys[i] == key)
            return i;
    return QK_NO_SLOT;
}

static void unlink_slot(struct qk_lru *l, uint32_t i)
{
    if (l->newer[i] != QK_NO_SLOT)
        l->older[l->newer[i]] = l->older[i];
    else
        l->newest = l->older[i];
    if (l->older[i] != QK_NO_SLOT)
        l->newer[l->older[i]] = l->newer[i];
    else
        l->oldest = l->newer[i];
}

static void push_newest(struct qk_lru *l, uint32_t i)
{
    l->newer[i] = QK_NO_SLOT;
    l->older[i] = l->newest;
    if (l->newest != QK_NO_SLOT)
        l->newer[l->newest] = i;
    l->newest = i;
    if (l->oldest == QK_NO_SLOT)
        l->oldest = i;
}

void qk_lru_touch(struct qk_lru *l, uint32_t i)
{
    unlink_slot(l, i);
    push_newest(l, i);
}

/* A slot never used yet (in use once put), or QK_NO_SLOT if none is left. */
uint32_t qk_lru_fresh(const struct qk_lru *l)
{
    return l->used < l->capacity ? l->used : QK_NO_SLOT;
}

static void unhash(struct qk_lru *l, uint32_t i)
{
    uint32_t *link = &l->buckets[bucket_of(l, l->keys[i])];

    while (*link != i)
        link = &l->next[*link];
    *link = l->next[i];
}

/* Take slot i out of use (out of the order and the hash) for reuse. */
void qk_lru_take(struct qk_lru *l, uint32_t i)
{
    unlink_slot(l, i);
    if (l->keys[i] != QK_NO_KEY)
        unhash(l, i);
    l->keys[i] = QK_NO_KEY;
}

/* Forget slot i's key; it stays in the order, to be reused first. */
void qk_lru_forget(struct qk_lru *l, uint32_t i)
{
    if (l->keys[i] != QK_NO_KEY)
        unhash(l, i);
    l->keys[i] = QK_NO_KEY;
    unlink_slot(l, i);
    l->older[i] = QK_NO_SLOT;
    l->newer[i] = l->oldest;
    if (l->oldest != QK_NO_SLOT)
        l->older[l->oldest] = i;
    l->oldest = i;
    if (l->newest == QK_NO_SLOT)
        l->newest = i;
}

/* Put a taken slot back in use, newest, under key (or QK_NO_KEY). */
void qk_lru_put(struct qk_lru *l, uint32_t i, uint64_t key)
{
    if (i == l->used)
        l->used++;
    l->keys[i] = key;
    if (key != QK_NO_KEY) {
        uint32_t b = bucket_of(l, key);
        l->next[i] = l->buckets[b];
        l->buckets[b] = i;
    }
    push_newest(l, i);
}
