/* cli-output.c - what the command prints: human numbers, JSON, progress. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

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

bool cli_quiet;

void cli_qprintf(const char *fmt, ...)
{
    va_list ap;

    if (cli_quiet)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}
