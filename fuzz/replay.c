/*
 * replay: run a fuzz harness's LLVMFuzzerTestOneInput over every file in
 * the directories (or files) given as arguments, without libFuzzer, as
 * SQLite's fuzzcheck replays its corpus.  Used as a Meson test so that
 * the committed corpus is re-run on every build; a crash or abort() in
 * the harness fails the test.
 *
 *   fuzz-replay-open [-v] DIR|FILE...
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;
static unsigned long files_run;

static int is_crash(const char *path)
{
    const char *base = strrchr(path, '/');

    return strncmp(base ? base + 1 : path, "crash-", 6) == 0;
}

/* Known crashers last, so that an abort still lets the rest run first. */
static int name_cmp(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;

    if (is_crash(x) != is_crash(y))
        return is_crash(x) - is_crash(y);
    return strcmp(x, y);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            uint8_t *p;
            cap = cap ? cap * 2 : 65536;
            p = realloc(data, cap);
            if (!p) {
                fclose(f);
                free(data);
                fprintf(stderr, "replay: %s: out of memory\n", path);
                return -1;
            }
            data = p;
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        fclose(f);
        free(data);
        return -1;
    }
    fclose(f);
    if (verbose)
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    /* A copy of exactly len bytes, so that ASan sees overreads. */
    {
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact) {
            free(data);
            return -1;
        }
        memcpy(exact, data, len);
        free(data);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    files_run++;
    return 0;
}

static int run_path(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *de;
    char **names = NULL;
    size_t count = 0, cap = 0;
    int err = 0;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((de = readdir(dir)) != NULL) {
        char *full;
        if (de->d_name[0] == '.')
            continue;
        if (count == cap) {
            char **p;
            cap = cap ? cap * 2 : 64;
            p = realloc(names, cap * sizeof *names);
            if (!p) {
                err = -1;
                break;
            }
            names = p;
        }
        full = malloc(strlen(path) + strlen(de->d_name) + 2);
        if (!full) {
            err = -1;
            break;
        }
        sprintf(full, "%s/%s", path, de->d_name);
        names[count++] = full;
    }
    closedir(dir);
    /* A fixed order, so that a failure is reproducible. */
    qsort(names, count, sizeof *names, name_cmp);
    for (size_t i = 0; i < count; i++) {
        if (err == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode) &&
            run_file(names[i]) < 0)
            err = -1;
        free(names[i]);
    }
    free(names);
    return err;
}

int main(int argc, char **argv)
{
    int err = 0, paths = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
            continue;
        }
        paths++;
        if (run_path(argv[i]) < 0)
            err = 1;
    }
    if (paths == 0) {
        fprintf(stderr, "usage: %s [-v] DIR|FILE...\n", argv[0]);
        return 2;
    }
    printf("replay: %lu inputs run\n", files_run);
    if (err == 0 && files_run == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return err;
}
