/* cli-image-spec.c - an image named on the command line (--image-opts). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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
