/* cli-secret.c - --object secret, and the key of a new image. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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
