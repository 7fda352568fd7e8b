/*
 * The per-handle access lock.  Every I/O call holds it shared, so I/O
 * runs in parallel (the handle's mutex still guards the tables inside
 * it); calls that reshape the image (resize, make-empty, check,
 * set-backing, close) hold it exclusively.  An exclusive holder thus
 * knows that no transfer is in flight: nothing it frees can still be
 * written by a late in-place write.
 *
 * The lock prefers writers, so a resize does not wait behind an endless
 * stream of reads; no thread takes one handle's lock twice.
 */
#include <assert.h>
#include <stdatomic.h>

#include "internal.h"

void qk_access_init(struct qcowkit_image *img)
{
    pthread_rwlockattr_t attr;

    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__ /* an enum there, not a macro */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&img->access, &attr);
    pthread_rwlockattr_destroy(&attr);
    atomic_init(&img->access_readers, 0);
    atomic_init(&img->access_exclusive, false);
}

void qk_access_destroy(struct qcowkit_image *img)
{
    pthread_rwlock_destroy(&img->access);
}

void qk_access_shared(struct qcowkit_image *img)
{
    int rc = pthread_rwlock_rdlock(&img->access);
    assert(rc == 0 && !atomic_load(&img->access_exclusive));
    (void)rc;
    atomic_fetch_add(&img->access_readers, 1);
}

void qk_access_exclusive(struct qcowkit_image *img)
{
    int rc = pthread_rwlock_wrlock(&img->access);
    assert(rc == 0 && atomic_load(&img->access_readers) == 0);
    (void)rc;
    img->access_owner = pthread_self();
    atomic_store(&img->access_exclusive, true);
}

void qk_access_leave(struct qcowkit_image *img)
{
    if (atomic_load(&img->access_exclusive))
        atomic_store(&img->access_exclusive, false);
    else
        atomic_fetch_sub(&img->access_readers, 1);
    pthread_rwlock_unlock(&img->access);
}

/* Unused when NDEBUG compiles the assertions out. */
__attribute__((unused)) static bool held_exclusive(struct qcowkit_image *img)
{
    return atomic_load(&img->access_exclusive) &&
           pthread_equal(img->access_owner, pthread_self());
}

void qk_assert_exclusive(struct qcowkit_image *img)
{
    assert(held_exclusive(img));
    (void)img;
}

void qk_assert_access(struct qcowkit_image *img)
{
    assert(atomic_load(&img->access_readers) > 0 || held_exclusive(img));
    (void)img;
}

void qk_assert_shared(struct qcowkit_image *img)
{
    assert(atomic_load(&img->access_readers) > 0 && !held_exclusive(img));
    (void)img;
}
