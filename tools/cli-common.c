/* cli-common.c - helpers shared by the qcowkit subcommands. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs(CLI_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_lib_error(int err, const char *prefix)
{
    const char *msg = qcowkit_errmsg();

    if (!msg || !*msg)
        msg = strerror(err < 0 ? -err : err);
    if (prefix)
        cli_error("%s: %s", prefix, msg);
    else
        cli_error("%s", msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    (void)cmd;
    fflush(stdout);
    fputs(CLI_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_bad_option(const char *cmd, char **argv, int c)
{
    /* getopt_long with a leading ':' in optstring: ':' = missing value. */
    extern int optind, optopt;
    const char *arg = argv[optind - 1];

    if (c == ':') {
        if (optopt)
            return cli_usage_error(cmd, "missing argument for option '-%c'",
                                   optopt);
        return cli_usage_error(cmd, "missing argument for option '%s'", arg);
    }
    if (optopt)
        return cli_usage_error(cmd, "unrecognized option '-%c'", optopt);
    return cli_usage_error(cmd, "unrecognized option '%s'", arg);
}

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

    if (cli_parse_size(s, INT64_MAX, out, &why) == 0)
        return 0;
    cli_error("Invalid %s '%s': %s (must be between 0 and %lld)", what, s, why,
              (long long)INT64_MAX);
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

int cli_open(const char *path, enum qcowkit_format format, unsigned flags,
             enum qcowkit_format backing_format, struct qcowkit_image **img)
{
    struct qcowkit_open_opts o;
    int err;

    qcowkit_open_opts_init(&o);
    o.flags = flags;
    o.format = format;
    o.backing_format = backing_format;
    err = qcowkit_open(path, &o, img);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        /* The library's message names the file; make sure it does. */
        if (msg && *msg && strstr(msg, path) == msg)
            cli_error("%s", msg);
        else if (msg && *msg)
            cli_error("%s: %s", path, msg);
        else
            cli_error("%s: %s", path, strerror(-err));
        *img = NULL;
    }
    return err;
}

int cli_get_info(struct qcowkit_image *img, struct qcowkit_info *info)
{
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    return qcowkit_get_info(img, info);
}

uint64_t cli_image_size(struct qcowkit_image *img)
{
    struct qcowkit_info info;

    if (cli_get_info(img, &info) < 0)
        return 0;
    return info.virtual_size;
}

/* -------------------------------------------------------- human numbers */

void cli_size_to_str(uint64_t val, char *buf, size_t len)
{
    static const char *const suffixes[] = {"",   "Ki", "Mi", "Gi",
                                           "Ti", "Pi", "Ei"};
    int exp;
    unsigned i;
    uint64_t div;

    double x = (double)val / (1000.0 / 1024.0);

    /* Switch to the next unit once the value reaches 1000 of this one:
     * exp is the binary exponent of x, as frexp() gives it. */
    for (exp = 0; x >= 1.0; exp++)
        x /= 2;
    i = exp > 0 ? (unsigned)(exp - 1) / 10 : 0;
    if (i > 6)
        i = 6;
    div = UINT64_C(1) << (i * 10);
    snprintf(buf, len, "%0.3g %sB", (double)val / (double)div, suffixes[i]);
}

void cli_cvtstr(double value, char *buf, size_t len)
{
    static const char *const units[] = {" EiB", " PiB", " TiB",
                                        " GiB", " MiB", " KiB"};
    const char *suffix = " bytes";
    char num[64], *trim;
    int i;

    snprintf(num, sizeof num, "%f", value);
    for (i = 0; i < 6; i++) {
        double unit = (double)(UINT64_C(1) << (10 * (6 - i)));
        if (value >= unit) {
            snprintf(num, sizeof num, "%.3f", value / unit);
            suffix = units[i];
            break;
        }
    }
    trim = strstr(num, ".000");
    if (trim)
        *trim = '\0';
    snprintf(buf, len, "%s%s", num, suffix);
}

/* ------------------------------------------------------------------- JSON */

static int utf8_decode(const unsigned char *s, unsigned *cp)
{
    unsigned c = s[0], n, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0)
        n = 1, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, c &= 0x07;
    else
        return -1;
    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return (int)n + 1;
}

void cli_json_string(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    fputc('"', f);
    while (*s) {
        unsigned cp;
        int n = utf8_decode(s, &cp);

        if (n < 0) {
            cp = 0xfffd;
            n = 1;
        }
        s += n;
        switch (cp) {
        case '"':
            fputs("\\\"", f);
            continue;
        case '\\':
            fputs("\\\\", f);
            continue;
        case '\b':
            fputs("\\b", f);
            continue;
        case '\f':
            fputs("\\f", f);
            continue;
        case '\n':
            fputs("\\n", f);
            continue;
        case '\r':
            fputs("\\r", f);
            continue;
        case '\t':
            fputs("\\t", f);
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp <= 0x7e) {
            fputc((int)cp, f);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            fprintf(f, "\\u%04X\\u%04X", 0xd800 | (cp >> 10),
                    0xdc00 | (cp & 0x3ff));
        } else {
            fprintf(f, "\\u%04X", cp);
        }
    }
    fputc('"', f);
}

/* ---------------------------------------------------------------- backing */

char *cli_backing_path(const char *image, const char *backing)
{
    const char *slash = strrchr(image, '/');
    size_t dir_len;
    char *path;

    if (backing[0] == '/' || !slash)
        return strdup(backing);
    dir_len = (size_t)(slash - image) + 1;
    path = malloc(dir_len + strlen(backing) + 1);
    if (path) {
        memcpy(path, image, dir_len);
        strcpy(path + dir_len, backing);
    }
    return path;
}

/* ---------------------------------------------------------------- options */

int cli_parse_opts(const char *opts,
                   int (*fn)(void *ctx, const char *key, const char *value),
                   void *ctx)
{
    char *copy = strdup(opts), *p, *save = NULL;
    int ret = 0;

    if (!copy) {
        cli_error("out of memory");
        return -1;
    }
    for (p = strtok_r(copy, ",", &save); p && ret == 0;
         p = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(p, '=');
        if (eq)
            *eq = '\0';
        ret = fn(ctx, p, eq ? eq + 1 : NULL);
    }
    free(copy);
    return ret;
}

/* ----------------------------------------------------------- chain status */

struct fd_cache_entry {
    struct qcowkit_image *img;
    int fd;
};

static struct fd_cache_entry fd_cache[16];

static int raw_fd(struct qcowkit_image *img)
{
    size_t i;

    for (i = 0; i < sizeof fd_cache / sizeof fd_cache[0]; i++) {
        if (fd_cache[i].img == img)
            return fd_cache[i].fd;
        if (!fd_cache[i].img) {
            fd_cache[i].img = img;
            fd_cache[i].fd = open(qcowkit_name(img), O_RDONLY | O_CLOEXEC);
            return fd_cache[i].fd;
        }
    }
    return -1;
}

void cli_chain_status_done(void)
{
    size_t i;

    for (i = 0; i < sizeof fd_cache / sizeof fd_cache[0]; i++) {
        if (fd_cache[i].img && fd_cache[i].fd >= 0)
            close(fd_cache[i].fd);
        fd_cache[i].img = NULL;
        fd_cache[i].fd = -1;
    }
}

/* What the host file holds at offset: data or a hole, as file-posix. */
static void raw_refine(struct qcowkit_image *img, uint64_t offset,
                       struct cli_status *st)
{
    int fd = raw_fd(img);
    off_t data, hole;

    st->flags |= CLI_ST_DATA;
    if (fd < 0)
        return;
    data = lseek(fd, (off_t)offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) { /* a trailing hole */
            st->flags = (st->flags & ~CLI_ST_DATA) | CLI_ST_ZERO;
        }
        return;
    }
    if ((uint64_t)data > offset) {
        st->flags = (st->flags & ~CLI_ST_DATA) | CLI_ST_ZERO;
        if ((uint64_t)data - offset < st->length)
            st->length = (uint64_t)data - offset;
        return;
    }
    hole = lseek(fd, (off_t)offset, SEEK_HOLE);
    if (hole > data && (uint64_t)hole - offset < st->length)
        st->length = (uint64_t)hole - offset;
}

int cli_chain_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                     struct cli_status *st)
{
    struct qcowkit_image *layer = img;
    int depth = 0;

    memset(st, 0, sizeof *st);
    st->length = count;
    for (;;) {
        struct qcowkit_info info;
        struct qcowkit_extent e;
        struct qcowkit_image *below;
        int err = cli_get_info(layer, &info);

        if (err < 0)
            return err;
        if (offset + st->length > info.virtual_size)
            st->length = info.virtual_size - offset;
        err = qcowkit_block_status(layer, offset, st->length, &e);
        if (err < 0)
            return err;
        st->length = e.length;
        st->depth = depth;
        st->layer = layer;
        if (e.flags & QCOWKIT_EXTENT_ALLOCATED) {
            st->flags = CLI_ST_ALLOCATED;
            if (e.flags & QCOWKIT_EXTENT_COMPRESSED)
                st->flags |= CLI_ST_COMPRESSED;
            if (e.flags & QCOWKIT_EXTENT_HOST_OFFSET) {
                st->flags |= CLI_ST_OFFSET_VALID;
                st->host_offset = e.host_offset;
            }
            if (info.format == QCOWKIT_FORMAT_RAW)
                raw_refine(layer, offset, st);
            else
                st->flags |= CLI_ST_DATA;
            return 0;
        }
        below = qcowkit_backing(layer);
        if (!below || offset >= cli_image_size(below)) {
            st->flags = CLI_ST_ZERO;
            return 0;
        }
        layer = below;
        depth++;
    }
}

/* --------------------------------------------------------------- progress */

static struct {
    bool enabled;
    float current, last_print, min_skip;
} progress;

static void progress_show(void)
{
    printf("    (%3.2f/100%%)\r", (double)progress.current);
    fflush(stdout);
}

void cli_progress_init(bool enabled, float min_skip)
{
    progress.enabled = enabled;
    progress.current = 0;
    progress.last_print = 0;
    progress.min_skip = min_skip;
}

void cli_progress_print(float delta, int max)
{
    float current;

    if (max == 0)
        current = progress.current + delta;
    else
        current = progress.current + delta / 100 * (float)max;
    if (current > 100)
        current = 100;
    progress.current = current;
    if (current > progress.last_print + progress.min_skip ||
        current < progress.last_print - progress.min_skip || current == 0 ||
        current == 100) {
        progress.last_print = current;
        if (progress.enabled)
            progress_show();
    }
}

void cli_progress_end(void)
{
    if (progress.enabled) {
        printf("\n");
        fflush(stdout);
    }
}

bool cli_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len == 0)
        return true;
    if (p[0])
        return false;
    return memcmp(p, p + 1, len - 1) == 0;
}
