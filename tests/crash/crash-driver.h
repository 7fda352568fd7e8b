/*
 * crash-driver.h - the shared driver of the crash-consistency tests.
 *
 * In the style of SQLite's crash tests: a workload is a deterministic
 * function of a seed that issues qcowkit calls (through the crash_* calls
 * below) on an image opened over a crash backend wrapping a memory backend.
 * crash_run_spec() runs it once un-armed to count its writes N, then for
 * every crash point k in 1..N runs it again from the same starting image
 * with the power lost at write k, and for several after-crash images
 * (CRASH_DROP_ALL, CRASH_KEEP_ALL and random tears) checks
 * that
 *   1. qcowkit_check() finds no corruption (leaks are allowed),
 *   2. every byte of the virtual disk holds either its value as of the
 *      last completed flush or a value written since then,
 *   3. so every byte written before the last completed flush and not
 *      written again is intact,
 *   4. clusters no write ever touched are not allocated.
 *
 * The model is sparse (one pair of buffers per touched guest cluster), so
 * virtual disks may be large.  Programs exit 0 (pass), 1 (fail), 77 (skip).
 *
 * Environment (for reproducing a failure):
 *   CRASH_CASE=name   run only the case of that name
 *   CRASH_POINT=k     run only crash point k
 *   CRASH_SEED=n      run each case with seed n only
 *   CRASH_SEEDS=n     run each case with n seeds (seed, seed + 1000, ...);
 *                     the default is the case's own (4 unless set), or 1
 *                     in sanitizer builds
 *   CRASH_VERBOSE=1   print one line per case as it runs
 */
#ifndef CRASH_DRIVER_H
#define CRASH_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "qcowkit.h"

/* ------------------------------------------------------------ reporting */

void crash_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Print file:line, the message and the current case, seed and crash point. */
#define CRASH_FAIL(...) crash_fail_(__FILE__, __LINE__, __VA_ARGS__)

#define CRASH_CHECK(cond)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            CRASH_FAIL("CHECK(%s)", #cond);                                    \
    } while (0)

/* expr must return 0 (or a non-negative count). */
#define CRASH_OK(expr)                                                         \
    do {                                                                       \
        int crash_rc_ = (expr);                                                \
        if (crash_rc_ < 0)                                                     \
            CRASH_FAIL("%s = %d (%s)", #expr, crash_rc_,                       \
                       crash_strerror(crash_rc_));                             \
    } while (0)

const char *crash_strerror(int rc);

/* Start a test program: records the start time, sets an alarm. */
void crash_begin(const char *program);
/* Print the totals ("crash points run: N") and exit 0. */
void crash_end(void);

/* ------------------------------------------------------------------ rng */

struct crash_rng {
    uint64_t s[4];
};

void crash_rng_seed(struct crash_rng *r, uint64_t seed);
uint64_t crash_rng_next(struct crash_rng *r);
/* Uniform in [0, n) (n > 0). */
uint64_t crash_rng_below(struct crash_rng *r, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t crash_rng_range(struct crash_rng *r, uint64_t lo, uint64_t hi);
void crash_rng_fill(struct crash_rng *r, void *buf, size_t n);
/* Compressible data: runs of 32 equal bytes, the values random. */
void crash_rng_fill_compressible(struct crash_rng *r, void *buf, size_t n);
uint64_t crash_mix64(uint64_t x);

/* ------------------------------------------------------------ workloads */

struct crash_run;

typedef void (*crash_workload_fn)(struct crash_run *r, void *arg);

struct crash_spec {
    const char *name; /* the case, in messages */
    uint64_t seed;    /* given to the workload and the random modes */
    /* The starting image (copied into a fresh memory backend each run). */
    const uint8_t *image;
    size_t image_len;
    /* The name given to qcowkit_open_io (resolves backing files). */
    const char *image_name;
    /* Open option of the workload's handle (0: the default). */
    uint64_t cache_size;
    /*
     * What the virtual disk reads as before the workload: base[0..len),
     * zeros beyond (e.g. the backing file's data).  NULL: all zeros.
     */
    const uint8_t *base;
    size_t base_len;
    crash_workload_fn workload;
    void *arg;
    /* At most this many crash points (0: every one); a stride otherwise. */
    uint64_t max_points;
    /*
     * Seeds to run (seed, seed + 1000, ...) in plain builds; 0: 4.
     * Sanitizer builds run one; CRASH_SEEDS overrides both.
     */
    unsigned seeds;
};

/*
 * Run every crash point of a case, for each of its seeds (see CRASH_SEEDS);
 * exits 1 on the first failure.
 */
void crash_run_spec(const struct crash_spec *spec);

/*
 * The calls of a workload.  Each returns what the library returned.  In
 * the counting run any error fails the test; in an armed run an error
 * means the power went, and the workload may stop or go on (crash_dead()
 * tells; later calls keep failing and are not taken into the model).
 */
int crash_pwrite(struct crash_run *r, const void *buf, size_t n, uint64_t off);
int crash_pwrite_zeroes(struct crash_run *r, size_t n, uint64_t off);
int crash_pwrite_compressed(struct crash_run *r, const void *buf, size_t n,
                            uint64_t off);
/* Whole clusters of the range read, after it, as before the workload. */
int crash_discard(struct crash_run *r, uint64_t n, uint64_t off);
/* qcowkit_pwrite_zeroes_flags with QCOWKIT_ZEROES_MAY_UNMAP. */
int crash_pwrite_zeroes_unmap(struct crash_run *r, size_t n, uint64_t off);
int crash_flush(struct crash_run *r);
/* A read checked against the model's latest contents (counting run only). */
int crash_pread_check(struct crash_run *r, size_t n, uint64_t off);
int crash_dead(const struct crash_run *r);
/* 1 in the counting run (no crash armed). */
int crash_counting(const struct crash_run *r);

uint64_t crash_virtual_size(const struct crash_run *r);
uint32_t crash_cluster_size(const struct crash_run *r);
/* log2 of the entries of an L2 table (12 for 512-byte clusters, as QEMU). */
uint32_t crash_l2_bits(const struct crash_run *r);
struct qcowkit_image *crash_image(struct crash_run *r);
/* A seed for the workload's own generator. */
uint64_t crash_seed(const struct crash_run *r);

/* -------------------------------------------------------------- helpers */

/*
 * Create an image in memory with qcowkit_create_io; returns its bytes
 * (malloc'd) and their length.
 */
uint8_t *crash_make_image(const struct qcowkit_create_opts *opts, size_t *len);

/* A fresh temporary folder (removed by crash_end or on failure). */
const char *crash_tmpdir(void);

/* Write a file of len bytes. */
void crash_write_file(const char *path, const void *data, size_t len);

#endif /* CRASH_DRIVER_H */
