/* cli-parse.c - parsing of option values: sizes, formats, -o strings. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------ sizes */

static int suffix_shift(char c)
{
    switch (c) {
    case 'b':
    case 'B':
        return 0;
    case 'k':
    case 'K':
        return 10;
    case 'm':
    case 'M':
        return 20;
    case 'g':
    case 'G':
        return 30;
    case 't':
    case 'T':
        return 40;
    case 'p':
    case 'P':
        return 50;
    case 'e':
    case 'E':
        return 60;
    default:
        return -1;
    }
}

static char range_why[80];

int cli_parse_size(const char *s, uint64_t max, uint64_t *out, const char **why)
{
    const char *p = s;
    uint64_t whole = 0;
    double frac = 0;
    bool has_frac = false, hex = false;
    int shift = 0;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '-') {
        *why = "negative sizes are not allowed";
        return -EINVAL;
    }
    if (*p == '+')
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        isxdigit((unsigned char)p[2])) {
        hex = true;
        p += 2;
        for (; isxdigit((unsigned char)*p); p++) {
            unsigned d =
                isdigit((unsigned char)*p)
                    ? (unsigned)(*p - '0')
                    : (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
            if (whole > (UINT64_MAX - d) / 16)
                goto too_large;
            whole = whole * 16 + d;
        }
    } else {
        if (!isdigit((unsigned char)*p)) {
            *why = *p ? "not a number" : "empty size";
            return -EINVAL;
        }
        for (; isdigit((unsigned char)*p); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (whole > (UINT64_MAX - d) / 10)
                goto too_large;
            whole = whole * 10 + d;
        }
        if (*p == '.') {
            double scale = 0.1;
            has_frac = true;
            for (p++; isdigit((unsigned char)*p); p++) {
                frac += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    (void)hex;
    if (*p) {
        shift = suffix_shift(*p);
        if (shift < 0 || p[1]) {
            *why = "unknown suffix (use k, M, G, T, P or E)";
            return -EINVAL;
        }
    }
    if (has_frac && shift == 0) {
        *why = "a fraction needs a suffix (k, M, G, T, P or E)";
        return -EINVAL;
    }
    if (shift && whole > (UINT64_MAX >> shift))
        goto too_large;
    whole <<= shift;
    if (has_frac) {
        double extra = frac * (double)(UINT64_C(1) << shift);
        if ((double)(UINT64_MAX - whole) < extra)
            goto too_large;
        whole += (uint64_t)extra; /* truncates, as QEMU does */
    }
    if (whole > max)
        goto too_large;
    *out = whole;
    return 0;
too_large:
    snprintf(range_why, sizeof range_why,
             "value too large (must be between 0 and %llu)",
             (unsigned long long)max);
    *why = range_why;
    return -ERANGE;
}

int cli_parse_size_arg(const char *s, const char *what, uint64_t *out)
{
    const char *why = "";
    int err = cli_parse_size(s, INT64_MAX, out, &why);

    if (err == 0)
        return 0;
    /* A value out of range already says the range. */
    if (err == -ERANGE)
        cli_error("Invalid %s '%s': %s", what, s, why);
    else
        cli_error("Invalid %s '%s': %s (must be between 0 and %lld)", what, s,
                  why, (long long)INT64_MAX);
    return -1;
}

/* ---------------------------------------------------------------- formats */

int cli_parse_format(const char *name, enum qcowkit_format *format)
{
    if (!name)
        *format = QCOWKIT_FORMAT_AUTO;
    else if (strcmp(name, "qcow") == 0)
        *format = QCOWKIT_FORMAT_QCOW;
    else if (strcmp(name, "raw") == 0)
        *format = QCOWKIT_FORMAT_RAW;
    else {
        cli_error("Unknown file format '%s'", name);
        return -1;
    }
    return 0;
}

const char *cli_format_name(enum qcowkit_format format)
{
    switch (format) {
    case QCOWKIT_FORMAT_QCOW:
        return "qcow";
    case QCOWKIT_FORMAT_RAW:
        return "raw";
    default:
        return "unknown";
    }
}

/* ---------------------------------------------------------------- options */

int cli_parse_opts(const char *opts,
                   int (*fn)(void *ctx, const char *key, const char *value),
                   void *ctx)
{
    /* As QEMU's option parser: ",," stands for a comma in a key or value. */
    size_t len = strlen(opts);
    char *item = malloc(len + 1);
    const char *p = opts;
    int ret = 0;

    if (!item) {
        cli_error("out of memory");
        return -1;
    }
    while (*p && ret == 0) {
        size_t n = 0;
        char *eq;

        while (*p) {
            if (*p == ',') {
                if (p[1] != ',')
                    break;
                p++; /* ",," -> "," */
            }
            item[n++] = *p++;
        }
        item[n] = '\0';
        if (*p == ',')
            p++;
        if (n == 0)
            continue;
        eq = strchr(item, '=');
        if (eq)
            *eq = '\0';
        ret = fn(ctx, item, eq ? eq + 1 : NULL);
    }
    free(item);
    return ret;
}

bool cli_cache_mode_valid(const char *mode)
{
    static const char *const modes[] = {"none", "writeback", "writethrough",
                                        "directsync", "unsafe"};

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i]) == 0)
            return true;
    return false;
}

int cli_check_cache(const char *mode)
{
    if (cli_cache_mode_valid(mode))
        return 0;
    cli_error("Invalid cache option: %s", mode);
    return -1;
}

int cli_set_string(char **slot, const char *value)
{
    char *copy = strdup(value);

    if (!copy) {
        cli_error("out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

int cli_parse_output(const char *output, bool *json)
{
    if (strcmp(output, "json") == 0)
        *json = true;
    else if (strcmp(output, "human") == 0)
        *json = false;
    else {
        cli_error("--output must be used with human or json as argument.");
        return -1;
    }
    return 0;
}

int cli_qcow_option(struct cli_qcow_opts *q, const char *key, const char *value)
{
    static const struct {
        const char *key;
        size_t offset;
    } strings[] = {
        {"backing_file", offsetof(struct cli_qcow_opts, backing_file)},
        {"backing_fmt", offsetof(struct cli_qcow_opts, backing_fmt)},
        {"encryption", offsetof(struct cli_qcow_opts, encryption)},
        {"encrypt.format", offsetof(struct cli_qcow_opts, encrypt_format)},
        {"encrypt.key-secret", offsetof(struct cli_qcow_opts, key_secret)},
    };
    const char *why;
    uint64_t v;

    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strcmp(key, strings[i].key) == 0)
            return cli_set_string((char **)((char *)q + strings[i].offset),
                                  value) < 0
                       ? -1
                       : 1;
    if (strcmp(key, "cluster_size") != 0)
        return 0;
    if (cli_parse_size(value, 65536, &v, &why) < 0 || v < 512 ||
        (v & (v - 1)) != 0) {
        cli_error("Invalid cluster_size '%s': must be a power of two between "
                  "512 and 65536",
                  value);
        return -1;
    }
    q->cluster_size = (uint32_t)v;
    return 1;
}

void cli_qcow_opts_free(struct cli_qcow_opts *q)
{
    free(q->backing_file);
    free(q->backing_fmt);
    free(q->encryption);
    free(q->encrypt_format);
    free(q->key_secret);
    memset(q, 0, sizeof *q);
}

void cli_qcow_create_opts(const struct cli_qcow_opts *q,
                          enum qcowkit_format format, uint64_t size,
                          const uint8_t *key, size_t key_len,
                          struct qcowkit_create_opts *co)
{
    qcowkit_create_opts_init(co);
    co->format = format;
    /* qemu-img rounds every new image up to whole sectors, raw ones too
     * (the library keeps a raw size exact; qcow rounds by itself). */
    co->size = size > UINT64_MAX - 511 ? size : (size + 511) & ~UINT64_C(511);
    co->backing_file = q->backing_file;
    co->cluster_size = q->cluster_size;
    co->key = key;
    co->key_len = key_len;
    if (key)
        cli_warn_aes_create();
}

enum cli_prealloc cli_parse_prealloc(const char *mode)
{
    static const char *const names[] = {"off", "metadata", "falloc", "full"};

    if (!mode)
        return CLI_PREALLOC_OFF;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(mode, names[i]) == 0)
            return (enum cli_prealloc)i;
    return CLI_PREALLOC_UNKNOWN;
}
