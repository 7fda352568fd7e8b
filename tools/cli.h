/* cli.h - shared helpers of the qcowkit command. */
#ifndef QCOWKIT_CLI_H
#define QCOWKIT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>

#include "qcowkit.h"

#define CLI_NAME "qcowkit"

/* A subcommand: argv[0] is the subcommand's name. Returns the exit code. */
typedef int (*cli_handler)(int argc, char **argv);

int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_io(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_rebase(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_dd(int argc, char **argv);
int cmd_nbd(int argc, char **argv);   /* tools/nbd/ */
int cmd_mount(int argc, char **argv); /* tools/fuse/ */

/* Print "qcowkit: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Print the library's message for a failed call (err is its negative
 * errno, used when the library left no message).  prefix, if not NULL,
 * goes before the message, separated by ": ".
 */
void cli_lib_error(int err, const char *prefix);

/* The usage line of a subcommand (from the dispatch table). */
const char *cli_usage(const char *name);
/* Print "qcowkit: <why>" and a hint to --help; returns 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* getopt_long helpers: message for an unknown option or missing value. */
int cli_bad_option(const char *cmd, char **argv, int optopt_char);

/*
 * The options that many subcommands share.  A subcommand lists the ones it
 * takes in its getopt string and long options (CLI_LONGOPT_*), handles its
 * own, and passes every other option to cli_common_option().
 */
enum {
    CLI_OPT_OBJECT = 0x1000, /* --object */
    CLI_OPT_IMAGE_OPTS,      /* --image-opts */
    CLI_OPT_OUTPUT,          /* --output */
};
#define CLI_LONGOPT_HELP                                                       \
    {                                                                          \
        "help", no_argument, NULL, 'h'                                         \
    }
#define CLI_LONGOPT_FORMAT                                                     \
    {                                                                          \
        "format", required_argument, NULL, 'f'                                 \
    }
#define CLI_LONGOPT_FORCE_SHARE                                                \
    {                                                                          \
        "force-share", no_argument, NULL, 'U'                                  \
    }
#define CLI_LONGOPT_OBJECT                                                     \
    {                                                                          \
        "object", required_argument, NULL, CLI_OPT_OBJECT                      \
    }
#define CLI_LONGOPT_IMAGE_OPTS                                                 \
    {                                                                          \
        "image-opts", no_argument, NULL, CLI_OPT_IMAGE_OPTS                    \
    }
#define CLI_LONGOPT_OUTPUT                                                     \
    {                                                                          \
        "output", required_argument, NULL, CLI_OPT_OUTPUT                      \
    }

struct cli_common {
    const char *cmd;       /* the subcommand, for --help and messages */
    int fail;              /* exit code after a bad option (1 by default) */
    const char *fmt;       /* -f FMT, or NULL */
    const char *output;    /* --output, "human" by default */
    const char *src_cache; /* -T MODE (checked), or NULL */
    bool force_share;      /* -U */
    bool image_opts;       /* --image-opts */
    bool quiet;            /* -q */
};

/* Returned by cli_common_option() when parsing goes on. */
#define CLI_NEXT_OPTION (-1)

void cli_common_init(struct cli_common *o, const char *cmd);
/*
 * Take getopt_long's result c (optarg with it).  Returns CLI_NEXT_OPTION,
 * or the exit code of the subcommand: 0 after --help, o->fail after an
 * error or an unknown option (the message is printed).
 */
int cli_common_option(struct cli_common *o, char **argv, int c);

/*
 * Parse a size as qemu-img does: plain bytes (decimal or 0x hex), or a
 * number with one of the suffixes b/B, k/K, m/M, g/G, t/T, p/P, e/E
 * (powers of 1024); a fraction is allowed only with a suffix.  Values
 * above max are rejected.  On failure *why is a short reason.
 */
int cli_parse_size(const char *s, uint64_t max, uint64_t *out,
                   const char **why);
/* As cli_parse_size with max INT64_MAX; prints an error naming what. */
int cli_parse_size_arg(const char *s, const char *what, uint64_t *out);

/* The preallocation modes QEMU names; each tool says what it refuses. */
enum cli_prealloc {
    CLI_PREALLOC_OFF,
    CLI_PREALLOC_METADATA,
    CLI_PREALLOC_FALLOC,
    CLI_PREALLOC_FULL,
    CLI_PREALLOC_UNKNOWN,
};
/* The mode mode names (NULL: off), or CLI_PREALLOC_UNKNOWN. */
enum cli_prealloc cli_parse_prealloc(const char *mode);

/*
 * "qcow", "raw" -> format; NULL -> AUTO.  Anything else prints
 * "qcowkit: Unknown file format 'X'" and returns -1.
 */
int cli_parse_format(const char *name, enum qcowkit_format *format);
const char *cli_format_name(enum qcowkit_format format);

/* Open an image; prints the error and returns a negative errno. */
int cli_open(const char *path, enum qcowkit_format format, unsigned flags,
             enum qcowkit_format backing_format, struct qcowkit_image **img);

/*
 * Secrets, as QEMU's `--object secret,id=ID,data=STRING` or
 * `--object secret,id=ID,file=PATH[,format=raw|base64]` (the file's bytes
 * are used as they are, a trailing newline included).  cli_object_add()
 * parses one --object argument; it prints an error and returns -1 on
 * failure.  Secrets are wiped at exit.
 */
int cli_object_add(const char *spec);
/*
 * The bytes of secret id.  On failure returns -1 and sets *why to QEMU's
 * message ("No secret with id 'X'", "Data from secret X is not valid
 * UTF-8").
 */
int cli_secret_get(const char *id, const uint8_t **data, size_t *len,
                   const char **why);

/*
 * An image named on the command line: a FILE, or with --image-opts
 * "driver=qcow|raw,file.filename=PATH[,file.driver=file]
 * [,encrypt.key-secret=ID][,encrypt.format=aes]
 * [,backing.encrypt.key-secret=ID]".
 */
struct cli_image_spec {
    char *arg; /* as given, for messages */
    bool image_opts;
    char *filename; /* the image file */
    enum qcowkit_format format;
    char *key_secret;         /* encrypt.key-secret, or NULL */
    char *backing_key_secret; /* backing.encrypt.key-secret, or NULL */
    char *encrypt_format;     /* encrypt.format, or NULL */
};

/*
 * Parse an image argument.  format is -f (AUTO if not given); with
 * image_opts it must be AUTO ("--image-opts and --format are mutually
 * exclusive").  Prints an error and returns -1 on failure.
 */
int cli_image_spec_parse(const char *arg, bool image_opts,
                         enum qcowkit_format format,
                         struct cli_image_spec *spec);
void cli_image_spec_free(struct cli_image_spec *spec);
/* QEMU's name of the image: FILE, or json:{...} with a key secret. */
char *cli_image_spec_name(const struct cli_image_spec *spec,
                          enum qcowkit_format detected);

#define CLI_OPEN_NEED_KEY 1u /* refuse an encrypted chain without a key */
#define CLI_OPEN_NO_KEY   2u /* metadata only: do not look secrets up */

/*
 * Open an image named by spec: looks its secret up (an unknown id is an
 * error only when the chain is encrypted, as in QEMU), checks
 * encrypt.format against the header, and with CLI_OPEN_NEED_KEY refuses
 * an encrypted image (or backing chain) opened without a key.  flags are
 * QCOWKIT_OPEN_*; FORCE_SHARE with RDWR is refused as QEMU refuses it.
 * Prints the error and returns a negative errno.
 */
int cli_open_spec(const struct cli_image_spec *spec, unsigned flags,
                  enum qcowkit_format backing_format, unsigned cli_flags,
                  struct qcowkit_image **img);
/* cli_image_spec_parse() + cli_open_spec(); *path (optional) gets a
 * malloc'd copy of the image file name. */
int cli_open_image(const char *arg, bool image_opts, enum qcowkit_format format,
                   unsigned flags, enum qcowkit_format backing_format,
                   unsigned cli_flags, struct qcowkit_image **img, char **path);

/* Is any image of the chain encrypted (crypt_method != 0)? */
bool cli_chain_encrypted(struct qcowkit_image *img);

/*
 * The key of a new image from the -o options encryption=on|off,
 * encrypt.format=aes and encrypt.key-secret=ID (any may be NULL), checked
 * as QEMU 7.2 checks them.  *key is NULL for an unencrypted image.  Prints
 * "FILE: <why>" and returns -1 on error.
 */
int cli_create_key(const char *file, const char *encryption,
                   const char *encrypt_format, const char *key_secret,
                   const uint8_t **key, size_t *key_len);

/* The one-line warning printed when an AES-encrypted image is created. */
void cli_warn_aes_create(void);

/* Virtual size of an open image (0 on error). */
uint64_t cli_image_size(struct qcowkit_image *img);
/* Fill an info structure; returns 0 or a negative errno. */
int cli_get_info(struct qcowkit_image *img, struct qcowkit_info *info);

/* qemu's size_to_str(): "1 MiB", "1.5 KiB", "977 KiB", "512 B". */
void cli_size_to_str(uint64_t val, char *buf, size_t len);
/* qemu-io's cvtstr(): "4 KiB", "512 bytes", "1.500 KiB". */
void cli_cvtstr(double value, char *buf, size_t len);

/* -q of check and compare: cli_qprintf() prints nothing while it is set. */
extern bool cli_quiet;
void cli_qprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write s as a JSON string (with quotes) to f. */
void cli_json_string(FILE *f, const char *s);

/*
 * Resolve a backing file name against the folder of the image that
 * names it, as QEMU does.  Returns a malloc'd string.
 */
char *cli_backing_path(const char *image, const char *backing);

/* Split "k=v,k=v" into calls of fn; returns -1 after printing an error. */
int cli_parse_opts(const char *opts,
                   int (*fn)(void *ctx, const char *key, const char *value),
                   void *ctx);

/*
 * qcowkit_block_status_chain with the struct initialised: the status of
 * img's chain at offset, for at most count bytes (> 0, inside img).
 */
int cli_chain_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                     struct qcowkit_chain_extent *x);

/* qemu's progress meter: "    (12.34/100%)\r" on stdout. */
void cli_progress_init(bool enabled, float min_skip);
void cli_progress_print(float delta, int max);
void cli_progress_end(void);

/* What -o sets for a new qcow image (create and convert share it). */
struct cli_qcow_opts {
    char *backing_file;
    char *backing_fmt;
    uint32_t cluster_size; /* qcowkit's extension; 0: QEMU's choice */
    char *encryption;      /* encryption=on|off, as given */
    char *encrypt_format;  /* encrypt.format= */
    char *key_secret;      /* encrypt.key-secret= */
};

/* One -o key of a qcow target: 1 taken, 0 not one of these, -1 error. */
int cli_qcow_option(struct cli_qcow_opts *q, const char *key,
                    const char *value);
void cli_qcow_opts_free(struct cli_qcow_opts *q);
/* The options of a new image from q (warns when key makes it AES). */
void cli_qcow_create_opts(const struct cli_qcow_opts *q,
                          enum qcowkit_format format, uint64_t size,
                          const uint8_t *key, size_t key_len,
                          struct qcowkit_create_opts *co);
/* qcowkit_create() truncating path; prints the error and returns -1. */
int cli_create(const char *path, const struct qcowkit_create_opts *co);

/* Replace *slot by a copy of value; prints the error and returns -1. */
int cli_set_string(char **slot, const char *value);

/*
 * "human" or "json" (qemu-img's --output) -> *json; anything else prints
 * qemu-img's message and returns -1.
 */
int cli_parse_output(const char *output, bool *json);

/* Is buf all zero bytes? */
bool cli_is_zero(const void *buf, size_t len);

/* Is mode one of qemu-img's cache modes (-t, -T)? */
bool cli_cache_mode_valid(const char *mode);
/* -t MODE: 0 if valid, else prints "Invalid cache option: MODE", -1. */
int cli_check_cache(const char *mode);

#endif /* QCOWKIT_CLI_H */
