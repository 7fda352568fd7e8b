/* cli-common.c - helpers shared by the qcowkit subcommands. */
#include <ctype.h>
#include <errno.h>
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

/* ---------------------------------------------------------------- secrets */

struct cli_secret {
    char *id;
    uint8_t *data;
    size_t len;
};

static struct cli_secret *secrets;
static size_t n_secrets;

static void wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;

    while (len--)
        *v++ = 0;
}

static void secrets_free(void)
{
    for (size_t i = 0; i < n_secrets; i++) {
        wipe(secrets[i].data, secrets[i].len);
        free(secrets[i].data);
        free(secrets[i].id);
    }
    free(secrets);
    secrets = NULL;
    n_secrets = 0;
}

struct object_args {
    char *type, *id, *data, *file, *format;
    int n;
};

static int object_option(void *ctx, const char *key, const char *value)
{
    struct object_args *a = ctx;
    char **slot = NULL;

    if (a->n++ == 0 && !value) { /* "secret,..." : the implied qom-type */
        value = key;
        key = "qom-type";
    }
    if (strcmp(key, "qom-type") == 0)
        slot = &a->type;
    else if (strcmp(key, "id") == 0)
        slot = &a->id;
    else if (strcmp(key, "data") == 0)
        slot = &a->data;
    else if (strcmp(key, "file") == 0)
        slot = &a->file;
    else if (strcmp(key, "format") == 0)
        slot = &a->format;
    else if (strcmp(key, "loaded") == 0) {
        cli_error("Property 'secret.loaded' is not writable");
        return -1;
    } else if (strcmp(key, "keyid") == 0 || strcmp(key, "iv") == 0) {
        cli_error("Parameter '%s' is not supported: qcowkit takes only "
                  "unencrypted secrets",
                  key);
        return -1;
    } else {
        cli_error("Parameter '%s' is unexpected", key);
        return -1;
    }
    free(*slot);
    *slot = strdup(value ? value : "");
    if (!*slot) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode base64 as QEMU's qbase64_decode: whitespace not allowed. */
static int b64_decode(const uint8_t *in, size_t len, uint8_t **out,
                      size_t *out_len)
{
    uint8_t *buf;
    size_t i, n = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 != 0)
        return -1;
    buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    for (i = 0; i < len; i++) {
        int v;
        if (in[i] == '=' && i >= len - 2) {
            pad++;
            continue;
        }
        v = b64_value(in[i]);
        if (v < 0 || pad) {
            wipe(buf, n);
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    wipe(&acc, sizeof acc);
    *out = buf;
    *out_len = n;
    return 0;
}

static int read_secret_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f) {
        cli_error("Unable to read %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            uint8_t *grown = malloc(cap ? cap * 2 : 256);
            if (!grown) {
                cli_error("out of memory");
                goto fail;
            }
            if (buf) {
                memcpy(grown, buf, n);
                wipe(buf, n);
                free(buf);
            }
            buf = grown;
            cap = cap ? cap * 2 : 256;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        cli_error("Unable to read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return 0;
fail:
    if (buf) {
        wipe(buf, n);
        free(buf);
    }
    fclose(f);
    return -1;
}

int cli_object_add(const char *spec)
{
    struct object_args a;
    struct cli_secret s = {0}, *grown;
    int ret = -1;

    memset(&a, 0, sizeof a);
    if (cli_parse_opts(spec, object_option, &a) < 0)
        goto out;
    if (!a.type) {
        cli_error("Parameter 'qom-type' is missing");
        goto out;
    }
    if (strcmp(a.type, "secret") != 0) {
        cli_error("Parameter 'qom-type' does not accept value '%s' "
                  "(qcowkit knows only 'secret')",
                  a.type);
        goto out;
    }
    if (!a.id) {
        cli_error("Parameter 'id' is missing");
        goto out;
    }
    for (size_t i = 0; i < n_secrets; i++) {
        if (strcmp(secrets[i].id, a.id) == 0) {
            cli_error("attempt to add duplicate property '%s' to object "
                      "(type 'container')",
                      a.id);
            goto out;
        }
    }
    if (a.format && strcmp(a.format, "raw") != 0 &&
        strcmp(a.format, "base64") != 0) {
        cli_error("Parameter 'format' does not accept value '%s'", a.format);
        goto out;
    }
    if (a.data && a.file) {
        cli_error("'file' and 'data' are mutually exclusive");
        goto out;
    }
    if (!a.data && !a.file) {
        cli_error("Either 'file' or 'data' must be provided");
        goto out;
    }
    if (a.file) {
        if (read_secret_file(a.file, &s.data, &s.len) < 0)
            goto out;
    } else {
        s.len = strlen(a.data);
        s.data = malloc(s.len + 1);
        if (!s.data) {
            cli_error("out of memory");
            goto out;
        }
        memcpy(s.data, a.data, s.len);
    }
    if (a.format && strcmp(a.format, "base64") == 0) {
        uint8_t *dec;
        size_t dec_len;
        if (b64_decode(s.data, s.len, &dec, &dec_len) < 0) {
            cli_error("Base64 data contains invalid characters");
            goto out;
        }
        wipe(s.data, s.len);
        free(s.data);
        s.data = dec;
        s.len = dec_len;
    }
    s.id = strdup(a.id);
    grown = realloc(secrets, (n_secrets + 1) * sizeof *secrets);
    if (!s.id || !grown) {
        cli_error("out of memory");
        if (grown)
            secrets = grown;
        goto out;
    }
    if (!secrets)
        atexit(secrets_free);
    secrets = grown;
    secrets[n_secrets++] = s;
    memset(&s, 0, sizeof s);
    ret = 0;
out:
    if (s.data) {
        wipe(s.data, s.len);
        free(s.data);
    }
    free(s.id);
    if (a.data) {
        wipe(a.data, strlen(a.data));
        free(a.data);
    }
    free(a.type);
    free(a.id);
    free(a.file);
    free(a.format);
    return ret;
}

/* QEMU's secrets must be valid UTF-8 without NUL bytes (g_utf8_validate). */
static bool valid_utf8(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], n, cp, min;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (i + n >= len)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

int cli_secret_get(const char *id, const uint8_t **data, size_t *len,
                   const char **why)
{
    static char msg[300];

    for (size_t i = 0; i < n_secrets; i++) {
        if (strcmp(secrets[i].id, id) != 0)
            continue;
        if (!valid_utf8(secrets[i].data, secrets[i].len)) {
            snprintf(msg, sizeof msg, "Data from secret %s is not valid UTF-8",
                     id);
            *why = msg;
            return -1;
        }
        *data = secrets[i].data;
        *len = secrets[i].len;
        return 0;
    }
    snprintf(msg, sizeof msg, "No secret with id '%s'", id);
    *why = msg;
    return -1;
}

/* ----------------------------------------------------------- image specs */

struct spec_ctx {
    struct cli_image_spec *spec;
    char *driver, *file_driver;
};

static int spec_option(void *ctx, const char *key, const char *value)
{
    struct spec_ctx *c = ctx;
    struct cli_image_spec *s = c->spec;
    char **slot;

    if (!value) {
        cli_error("Could not open '%s': Cannot find device='%s' nor "
                  "node-name='%s'",
                  s->arg, key, key);
        return -1;
    }
    if (strcmp(key, "driver") == 0)
        slot = &c->driver;
    else if (strcmp(key, "file.filename") == 0)
        slot = &s->filename;
    else if (strcmp(key, "file.driver") == 0)
        slot = &c->file_driver;
    else if (strcmp(key, "encrypt.key-secret") == 0)
        slot = &s->key_secret;
    else if (strcmp(key, "encrypt.format") == 0)
        slot = &s->encrypt_format;
    else if (strcmp(key, "backing.encrypt.key-secret") == 0)
        slot = &s->backing_key_secret;
    else {
        cli_error("Could not open '%s': Block format '%s' does not support "
                  "the option '%s'",
                  s->arg, c->driver ? c->driver : "qcow", key);
        return -1;
    }
    free(*slot);
    *slot = strdup(value);
    if (!*slot) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

int cli_image_spec_parse(const char *arg, bool image_opts,
                         enum qcowkit_format format,
                         struct cli_image_spec *spec)
{
    struct spec_ctx c = {spec, NULL, NULL};
    int ret = -1;

    memset(spec, 0, sizeof *spec);
    spec->arg = strdup(arg);
    spec->image_opts = image_opts;
    spec->format = format;
    if (!spec->arg) {
        cli_error("out of memory");
        return -1;
    }
    if (!image_opts) {
        spec->filename = strdup(arg);
        if (!spec->filename) {
            cli_error("out of memory");
            cli_image_spec_free(spec);
            return -1;
        }
        return 0;
    }
    if (format != QCOWKIT_FORMAT_AUTO) {
        cli_error("--image-opts and --format are mutually exclusive");
        goto out;
    }
    if (cli_parse_opts(arg, spec_option, &c) < 0)
        goto out;
    if (c.driver) {
        if (strcmp(c.driver, "qcow") == 0)
            spec->format = QCOWKIT_FORMAT_QCOW;
        else if (strcmp(c.driver, "raw") == 0)
            spec->format = QCOWKIT_FORMAT_RAW;
        else {
            cli_error("Could not open '%s': Unknown driver '%s' (qcowkit "
                      "knows 'qcow' and 'raw')",
                      arg, c.driver);
            goto out;
        }
    }
    if (c.file_driver && strcmp(c.file_driver, "file") != 0) {
        cli_error("Could not open '%s': Unknown protocol driver '%s' "
                  "(qcowkit knows only 'file')",
                  arg, c.file_driver);
        goto out;
    }
    if (spec->format == QCOWKIT_FORMAT_RAW) {
        const char *bad = spec->key_secret       ? "encrypt.key-secret"
                          : spec->encrypt_format ? "encrypt.format"
                          : spec->backing_key_secret
                              ? "backing.encrypt.key-secret"
                              : NULL;
        if (bad) {
            cli_error("Could not open '%s': Block format 'raw' does not "
                      "support the option '%s'",
                      arg, bad);
            goto out;
        }
    }
    if (!spec->filename || !*spec->filename) {
        cli_error("Could not open '%s': A block device must be specified "
                  "for \"file\"",
                  arg);
        goto out;
    }
    ret = 0;
out:
    free(c.driver);
    free(c.file_driver);
    if (ret < 0)
        cli_image_spec_free(spec);
    return ret;
}

void cli_image_spec_free(struct cli_image_spec *spec)
{
    free(spec->arg);
    free(spec->filename);
    free(spec->key_secret);
    free(spec->backing_key_secret);
    free(spec->encrypt_format);
    memset(spec, 0, sizeof *spec);
}

/* Append s to a growing string as a JSON string. */
static void json_append(char **buf, size_t *len, size_t *cap, const char *s)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);

    if (!f)
        return;
    cli_json_string(f, s);
    fclose(f);
    if (*len + n + 1 > *cap) {
        size_t want = (*len + n + 1) * 2;
        char *grown = realloc(*buf, want);
        if (!grown) {
            free(p);
            return;
        }
        *buf = grown;
        *cap = want;
    }
    memcpy(*buf + *len, p, n + 1);
    *len += n;
    free(p);
}

char *cli_image_spec_name(const struct cli_image_spec *spec,
                          enum qcowkit_format detected)
{
    char *buf;
    size_t len = 0, cap = 256;

    if (!spec->image_opts || !spec->key_secret)
        return strdup(spec->filename);
    buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[0] = '\0';
#define LIT(s)                                                                 \
    do {                                                                       \
        size_t l_ = strlen(s);                                                 \
        if (len + l_ + 1 > cap) {                                              \
            char *g_ = realloc(buf, (len + l_ + 1) * 2);                       \
            if (!g_) {                                                         \
                free(buf);                                                     \
                return NULL;                                                   \
            }                                                                  \
            buf = g_;                                                          \
            cap = (len + l_ + 1) * 2;                                          \
        }                                                                      \
        memcpy(buf + len, s, l_ + 1);                                          \
        len += l_;                                                             \
    } while (0)
    /* The order QEMU 7.2 prints: json:{"encrypt.key-secret": "s",
     * "driver": "qcow", "file": {"driver": "file", "filename": "f"}} */
    LIT("json:{\"encrypt.key-secret\": ");
    json_append(&buf, &len, &cap, spec->key_secret);
    LIT(", \"driver\": ");
    json_append(&buf, &len, &cap, cli_format_name(detected));
    LIT(", \"file\": {\"driver\": \"file\", \"filename\": ");
    json_append(&buf, &len, &cap, spec->filename);
    LIT("}}");
#undef LIT
    return buf;
}

bool cli_chain_encrypted(struct qcowkit_image *img)
{
    for (; img; img = qcowkit_backing(img)) {
        struct qcowkit_info info;
        if (cli_get_info(img, &info) == 0 && info.crypt_method)
            return true;
    }
    return false;
}

void cli_warn_aes_create(void)
{
    fflush(stdout);
    fprintf(stderr,
            "%s: warning: qcow AES encryption is weak and "
            "deprecated (QEMU system emulators refuse such images); "
            "use LUKS for new images\n",
            CLI_NAME);
}

int cli_create_key(const char *file, const char *encryption,
                   const char *encrypt_format, const char *key_secret,
                   const uint8_t **key, size_t *key_len)
{
    const char *format = encrypt_format, *why;

    *key = NULL;
    *key_len = 0;
    if (encryption && encrypt_format) {
        cli_error("%s: 'encrypt.format' and its alias 'encryption' can't be "
                  "used at the same time",
                  file);
        return -1;
    }
    if (encryption) {
        if (strcmp(encryption, "on") == 0)
            format = "aes";
        else if (strcmp(encryption, "off") != 0) {
            cli_error("%s: Parameter 'encryption' expects 'on' or 'off'", file);
            return -1;
        }
    }
    if (!format) {
        if (key_secret) {
            cli_error("%s: Parameter 'encrypt.format' is missing", file);
            return -1;
        }
        return 0;
    }
    if (strcmp(format, "aes") != 0) {
        cli_error("%s: Unsupported encryption format", file);
        return -1;
    }
    if (!key_secret) {
        cli_error("%s: Parameter 'encrypt.key-secret' is required for cipher",
                  file);
        return -1;
    }
    if (cli_secret_get(key_secret, key, key_len, &why) < 0) {
        cli_error("%s: %s", file, why);
        return -1;
    }
    return 0;
}

/* "Could not open 'ARG': MSG", the message of qemu-img. */
static void open_error(const struct cli_image_spec *spec, const char *msg)
{
    cli_error("Could not open '%s': %s", spec->arg, msg);
}

int cli_open_spec(const struct cli_image_spec *spec, unsigned flags,
                  enum qcowkit_format backing_format, unsigned cli_flags,
                  struct qcowkit_image **img)
{
    struct qcowkit_open_opts o;
    const uint8_t *key = NULL, *bkey = NULL;
    size_t key_len = 0, bkey_len = 0;
    const char *why = NULL, *bwhy = NULL;
    struct qcowkit_info info;
    int err;

    *img = NULL;
    if ((flags & QCOWKIT_OPEN_FORCE_SHARE) && (flags & QCOWKIT_OPEN_RDWR)) {
        open_error(spec, "force-share=on can only be used with read-only "
                         "images");
        return -EINVAL;
    }
    if (!(cli_flags & CLI_OPEN_NO_KEY)) {
        if (spec->key_secret)
            cli_secret_get(spec->key_secret, &key, &key_len, &why);
        if (spec->backing_key_secret)
            cli_secret_get(spec->backing_key_secret, &bkey, &bkey_len, &bwhy);
        if (key && bkey &&
            (key_len != bkey_len || memcmp(key, bkey, key_len) != 0)) {
            open_error(spec, "qcowkit takes one key for a whole backing "
                             "chain: encrypt.key-secret and "
                             "backing.encrypt.key-secret must hold the same "
                             "password");
            return -ENOTSUP;
        }
        if (!key && !spec->key_secret && bkey) {
            key = bkey;
            key_len = bkey_len;
        }
    }
    qcowkit_open_opts_init(&o);
    o.flags = flags;
    o.format = spec->format;
    o.backing_format = backing_format;
    o.key = key;
    o.key_len = key_len;
    err = qcowkit_open(spec->filename, &o, img);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        const char *path = spec->filename;
        if (spec->image_opts && msg && *msg)
            open_error(spec, msg);
        else if (msg && *msg && strstr(msg, path) == msg)
            cli_error("%s", msg);
        else if (msg && *msg)
            cli_error("%s: %s", path, msg);
        else
            cli_error("%s: %s", path, strerror(-err));
        *img = NULL;
        return err;
    }
    err = cli_get_info(*img, &info);
    if (err < 0) {
        cli_lib_error(err, spec->filename);
        goto fail;
    }
    if (spec->encrypt_format) {
        char msg[256];
        if (info.format == QCOWKIT_FORMAT_QCOW && info.crypt_method &&
            strcmp(spec->encrypt_format, "aes") != 0) {
            snprintf(msg, sizeof msg,
                     "Header reported 'aes' encryption format but options "
                     "specify '%s'",
                     spec->encrypt_format);
            open_error(spec, msg);
            err = -EINVAL;
            goto fail;
        }
        if (!info.crypt_method) {
            snprintf(msg, sizeof msg,
                     "No encryption in image header, but options specified "
                     "format '%s'",
                     spec->encrypt_format);
            open_error(spec, msg);
            err = -EINVAL;
            goto fail;
        }
    }
    if (!(cli_flags & CLI_OPEN_NO_KEY) && cli_chain_encrypted(*img)) {
        if (why || (bwhy && !key)) {
            open_error(spec, why ? why : bwhy);
            err = -ENOENT;
            goto fail;
        }
        if (!key && (cli_flags & CLI_OPEN_NEED_KEY)) {
            char msg[4200];
            snprintf(msg, sizeof msg,
                     "Parameter 'encrypt.key-secret' is required for cipher "
                     "(the image is encrypted: give --object "
                     "secret,id=ID,data=PASSWORD --image-opts "
                     "driver=qcow,file.filename=%s,encrypt.key-secret=ID)",
                     spec->filename);
            open_error(spec, msg);
            err = -EACCES;
            goto fail;
        }
    }
    return 0;
fail:
    qcowkit_close(*img);
    *img = NULL;
    return err;
}

int cli_open_image(const char *arg, bool image_opts, enum qcowkit_format format,
                   unsigned flags, enum qcowkit_format backing_format,
                   unsigned cli_flags, struct qcowkit_image **img, char **path)
{
    struct cli_image_spec spec;
    int err;

    *img = NULL;
    if (path)
        *path = NULL;
    if (cli_image_spec_parse(arg, image_opts, format, &spec) < 0)
        return -EINVAL;
    err = cli_open_spec(&spec, flags, backing_format, cli_flags, img);
    if (err == 0 && path) {
        *path = spec.filename;
        spec.filename = NULL;
    }
    cli_image_spec_free(&spec);
    return err;
}

/* ----------------------------------------------------------- chain status */

int cli_chain_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                     struct qcowkit_chain_extent *x)
{
    qcowkit_chain_extent_init(x);
    return qcowkit_block_status_chain(img, offset, count, x);
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

bool cli_cache_mode_valid(const char *mode)
{
    static const char *const modes[] = {"none", "writeback", "writethrough",
                                        "directsync", "unsafe"};

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i]) == 0)
            return true;
    return false;
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
