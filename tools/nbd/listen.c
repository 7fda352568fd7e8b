/* listen.c - the listening socket and the pid file of `qcowkit nbd`. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"

int listen_unix(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        cli_error("nbd: socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cli_error("nbd: socket: %s", strerror(errno));
        return -1;
    }
    /* A stale socket of an earlier server is replaced, as QEMU does. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        cli_error("nbd: Failed to bind socket to %s: %s", path,
                  strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int listen_tcp(const char *addr, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, err, saved = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    err = getaddrinfo(addr, port, &hints, &res);
    if (err) {
        cli_error("nbd: address resolution failed for %s:%s: %s", addr, port,
                  gai_strerror(err));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        cli_error("nbd: Failed to bind socket to %s:%s: %s", addr, port,
                  strerror(saved));
    return fd;
}

int write_pid_file(const char *path)
{
    char tmp[4200];
    FILE *f;

    if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >=
        (int)sizeof tmp) {
        cli_error("nbd: pid file name too long");
        return -1;
    }
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) < 0) {
        cli_error("nbd: Failed to write pid file %s: %s", path,
                  strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
