/*
 * Caller structs across library versions.  Each public struct starts with
 * struct_size, the sizeof the caller was compiled with: an older caller's
 * struct ends early (its missing fields read as zero, i.e. absent), a newer
 * caller's runs on past what this library knows.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static size_t size_of(const void *caller)
{
    size_t size;

    memcpy(&size, caller, sizeof size);
    return size;
}

static int too_small(const char *what, size_t size, size_t min)
{
    return qk_error(-EINVAL,
                    "%s: struct_size %zu does not cover the required fields "
                    "(at least %zu bytes; was it initialised?)",
                    what, size, min);
}

/* Are the bytes of src from `from` to `to` all zero? */
static bool tail_is_zero(const uint8_t *src, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (src[i])
            return false;
    return true;
}

int qk_abi_in(void *dst, size_t dst_size, const void *src, size_t min,
              bool strict, const char *what)
{
    size_t size = size_of(src);

    if (size < min)
        return too_small(what, size, min);
    /* A field set past what we know asks for something we cannot do. */
    if (strict && size > dst_size && !tail_is_zero(src, dst_size, size))
        return qk_error(-ENOTSUP,
                        "%s: fields past byte %zu are set, which libqcowkit "
                        "%s does not know (struct_size %zu)",
                        what, dst_size, QCOWKIT_VERSION_STRING, size);
    memset(dst, 0, dst_size);
    memcpy(dst, src, size < dst_size ? size : dst_size);
    memcpy(dst, &dst_size, sizeof dst_size);
    return 0;
}

int qk_abi_out_check(const void *dst, size_t min, const char *what)
{
    size_t size;

    if (!dst)
        return qk_error(-EINVAL, "%s: no struct to fill", what);
    size = size_of(dst);
    return size < min ? too_small(what, size, min) : 0;
}

void qk_abi_out(void *dst, void *full, size_t full_size)
{
    size_t size = size_of(dst);
    size_t n = size < full_size ? size : full_size;

    /* struct_size tells a newer caller how much of its struct was filled. */
    memcpy(full, &n, sizeof n);
    memcpy(dst, full, n);
    if (size > n)
        memset((uint8_t *)dst + n, 0, size - n);
}

/*
 * The _init functions write the struct as this symbol version knows it:
 * a release that grows a struct adds a new version of its _init.
 */
void qcowkit_io_ops_init(struct qcowkit_io_ops *ops)
{
    memset(ops, 0, sizeof *ops);
    ops->struct_size = sizeof *ops;
}

void qcowkit_info_init(struct qcowkit_info *info)
{
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

void qcowkit_check_report_init(struct qcowkit_check_report *report)
{
    memset(report, 0, sizeof *report);
    report->struct_size = sizeof *report;
}

void qcowkit_chain_extent_init(struct qcowkit_chain_extent *extent)
{
    memset(extent, 0, sizeof *extent);
    extent->struct_size = sizeof *extent;
}
