/*
 * server.c - the socket loop of `qcowkit nbd`.
 *
 * The main thread listens and accepts (while fewer than `shared` clients
 * are connected; later ones wait in the listen backlog, as with
 * qemu-nbd).  Each client gets a thread that runs the handshake and then
 * reads requests, and a pool of NBD_WORKERS threads that run them on the
 * one image handle shared by everybody, replying as each finishes, so
 * that requests are in flight together and replies come out of order.
 * The reader stops reading while the client's requests in flight hold
 * NBD_INFLIGHT_BYTES or number NBD_INFLIGHT_REQS, which bounds memory.
 *
 * A client that sends garbage is dropped (protocol.c decides); one that
 * stalls in the handshake is dropped after NBD_HANDSHAKE_SECS; one that
 * stops reading its replies is dropped when a send makes no progress for
 * NBD_SEND_TIMEOUT seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "server.h"

struct job {
    struct job *next;
    struct nbd_request req;
};

struct server;

struct client {
    struct client *next;
    struct server *srv;
    int fd;
    pthread_t thread;
    struct nbd_conn conn;
    pthread_mutex_t lock;
    pthread_cond_t job_cond;  /* a job was queued, or closing */
    pthread_cond_t room_cond; /* a job finished */
    struct job *head, *tail;
    uint64_t inflight_bytes;
    unsigned inflight_reqs;
    bool closing;  /* the reader is done: workers drain and exit */
    bool dead;     /* a send failed: do not run what is queued */
    bool finished; /* the thread is done (under srv->lock) */
};

struct server {
    const struct nbd_export *exp;
    const struct nbd_server_opts *opts;
    pthread_mutex_t lock;
    struct client *clients;
    unsigned n_clients;
    int wake[2]; /* 's': stop (signal), 'c': a client finished */
};

static int wake_fd = -1;

static void on_signal(int sig)
{
    int saved = errno;
    char c = 's';

    (void)sig;
    if (write(wake_fd, &c, 1) < 0) {
        /* the pipe is full: a wake-up is pending anyway */
    }
    errno = saved;
}

/* ------------------------------------------------------------- transport */

static int fd_recv(void *opaque, void *buf, size_t len)
{
    struct client *cl = opaque;
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = recv(cl->fd, p, len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fd_send(void *opaque, const struct iovec *iov_in, int iovcnt)
{
    struct client *cl = opaque;
    struct iovec iov[8];
    struct msghdr msg;
    int i, n = 0;

    for (i = 0; i < iovcnt && n < 8; i++)
        if (iov_in[i].iov_len)
            iov[n++] = iov_in[i];
    i = 0;
    while (i < n) {
        ssize_t sent;

        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov + i;
        msg.msg_iovlen = (size_t)(n - i);
        sent = sendmsg(cl->fd, &msg, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        while (i < n && (size_t)sent >= iov[i].iov_len) {
            sent -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < n) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + sent;
            iov[i].iov_len -= (size_t)sent;
        }
    }
    return 0;
}

static void set_timeout(int fd, int opt, int secs)
{
    struct timeval tv = {secs, 0};

    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* --------------------------------------------------------------- clients */

static void *worker_main(void *arg)
{
    struct client *cl = arg;

    pthread_mutex_lock(&cl->lock);
    for (;;) {
        struct job *j;
        bool dead;
        int rc = 0;

        while (!cl->head && !cl->closing)
            pthread_cond_wait(&cl->job_cond, &cl->lock);
        j = cl->head;
        if (!j)
            break;
        cl->head = j->next;
        if (!cl->head)
            cl->tail = NULL;
        dead = cl->dead;
        pthread_mutex_unlock(&cl->lock);

        if (dead)
            nbd_request_free(&j->req);
        else
            rc = nbd_handle_request(&cl->conn, &j->req);

        pthread_mutex_lock(&cl->lock);
        if (rc < 0 && !cl->dead) {
            cl->dead = true;
            /* Wake the reader if it waits for the client. */
            shutdown(cl->fd, SHUT_RDWR);
        }
        cl->inflight_reqs--;
        cl->inflight_bytes -= j->req.cost;
        pthread_cond_signal(&cl->room_cond);
        free(j);
    }
    pthread_mutex_unlock(&cl->lock);
    return NULL;
}

static void serve_requests(struct client *cl)
{
    pthread_t workers[NBD_WORKERS];
    unsigned n_workers = 0, i;

    for (i = 0; i < NBD_WORKERS; i++)
        if (pthread_create(&workers[n_workers], NULL, worker_main, cl) == 0)
            n_workers++;
    if (n_workers == 0) {
        snprintf(cl->conn.why, sizeof cl->conn.why, "cannot start threads");
        return;
    }
    for (;;) {
        struct nbd_request r;
        struct job *j;
        bool dead;

        if (nbd_recv_header(&cl->conn, &r) <= 0)
            break;
        pthread_mutex_lock(&cl->lock);
        while (!cl->dead && cl->inflight_reqs > 0 &&
               (cl->inflight_reqs >= NBD_INFLIGHT_REQS ||
                cl->inflight_bytes + r.cost > NBD_INFLIGHT_BYTES))
            pthread_cond_wait(&cl->room_cond, &cl->lock);
        dead = cl->dead;
        pthread_mutex_unlock(&cl->lock);
        if (dead)
            break;
        j = malloc(sizeof *j);
        if (!j) {
            snprintf(cl->conn.why, sizeof cl->conn.why, "out of memory");
            break;
        }
        if (nbd_recv_payload(&cl->conn, &r) < 0) {
            nbd_request_free(&r);
            free(j);
            break;
        }
        j->req = r;
        j->next = NULL;
        pthread_mutex_lock(&cl->lock);
        cl->inflight_reqs++;
        cl->inflight_bytes += r.cost;
        if (cl->tail)
            cl->tail->next = j;
        else
            cl->head = j;
        cl->tail = j;
        pthread_cond_signal(&cl->job_cond);
        pthread_mutex_unlock(&cl->lock);
    }
    /* NBD_CMD_DISC or a hang-up: finish what is in flight, then close. */
    pthread_mutex_lock(&cl->lock);
    cl->closing = true;
    pthread_cond_broadcast(&cl->job_cond);
    pthread_mutex_unlock(&cl->lock);
    for (i = 0; i < n_workers; i++)
        pthread_join(workers[i], NULL);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct server *srv = cl->srv;
    struct nbd_transport t = {fd_recv, fd_send, cl};
    char c = 'c';
    int one = 1, fd;

    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_timeout(cl->fd, SO_RCVTIMEO, NBD_HANDSHAKE_SECS);
    set_timeout(cl->fd, SO_SNDTIMEO, NBD_SEND_TIMEOUT);
    nbd_conn_init(&cl->conn, srv->exp, &t);
    if (nbd_handshake(&cl->conn) == NBD_HS_GO) {
        set_timeout(cl->fd, SO_RCVTIMEO, 0);
        serve_requests(cl);
    }
    if (srv->opts->verbose && cl->conn.why[0])
        cli_error("nbd: client dropped: %s", cl->conn.why);
    nbd_conn_destroy(&cl->conn);
    pthread_mutex_lock(&srv->lock);
    fd = cl->fd;
    cl->fd = -1; /* the main thread no longer shuts it down */
    cl->finished = true;
    pthread_mutex_unlock(&srv->lock);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    if (write(srv->wake[1], &c, 1) < 0) {
        /* full pipe: the main thread will look anyway */
    }
    return NULL;
}

static void client_free(struct client *cl)
{
    pthread_mutex_destroy(&cl->lock);
    pthread_cond_destroy(&cl->job_cond);
    pthread_cond_destroy(&cl->room_cond);
    free(cl);
}

static int client_start(struct server *srv, int fd)
{
    struct client *cl = calloc(1, sizeof *cl);

    if (!cl) {
        close(fd);
        return -1;
    }
    cl->srv = srv;
    cl->fd = fd;
    pthread_mutex_init(&cl->lock, NULL);
    pthread_cond_init(&cl->job_cond, NULL);
    pthread_cond_init(&cl->room_cond, NULL);
    pthread_mutex_lock(&srv->lock);
    if (pthread_create(&cl->thread, NULL, client_main, cl) != 0) {
        pthread_mutex_unlock(&srv->lock);
        close(fd);
        client_free(cl);
        return -1;
    }
    cl->next = srv->clients;
    srv->clients = cl;
    srv->n_clients++;
    pthread_mutex_unlock(&srv->lock);
    return 0;
}

/* Join the clients whose threads are done; returns how many are left. */
static unsigned reap(struct server *srv)
{
    struct client **pp, *done = NULL;
    unsigned left;

    pthread_mutex_lock(&srv->lock);
    pp = &srv->clients;
    while (*pp) {
        struct client *cl = *pp;

        if (cl->finished) {
            *pp = cl->next;
            cl->next = done;
            done = cl;
            srv->n_clients--;
        } else {
            pp = &cl->next;
        }
    }
    left = srv->n_clients;
    pthread_mutex_unlock(&srv->lock);
    while (done) {
        struct client *next = done->next;

        pthread_join(done->thread, NULL);
        client_free(done);
        done = next;
    }
    return left;
}

/* --------------------------------------------------------------- listen */

static int listen_unix(const char *path)
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

static int listen_tcp(const char *addr, const char *port)
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

static int write_pid_file(const char *path)
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

/* ----------------------------------------------------------------- serve */

int nbd_serve(const struct nbd_export *exp, const struct nbd_server_opts *o)
{
    struct server srv;
    struct sigaction sa;
    int lfd, rc = 0;
    bool served = false, stop = false;

    memset(&srv, 0, sizeof srv);
    srv.exp = exp;
    srv.opts = o;
    if (pipe2(srv.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        cli_error("nbd: pipe: %s", strerror(errno));
        return -1;
    }
    pthread_mutex_init(&srv.lock, NULL);
    if (o->socket_path)
        lfd = listen_unix(o->socket_path);
    else
        lfd = listen_tcp(o->bind_addr ? o->bind_addr : "0.0.0.0",
                         o->port ? o->port : "10809");
    if (lfd < 0) {
        rc = -1;
        goto out;
    }

    wake_fd = srv.wake[1];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (o->pid_file && write_pid_file(o->pid_file) < 0) {
        rc = -1;
        goto out_listen;
    }

    while (!stop) {
        struct pollfd p[2] = {{srv.wake[0], POLLIN, 0}, {lfd, POLLIN, 0}};
        bool accepting;
        int n;

        pthread_mutex_lock(&srv.lock);
        accepting = o->shared == 0 || srv.n_clients < o->shared;
        pthread_mutex_unlock(&srv.lock);
        n = poll(p, accepting ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            cli_error("nbd: poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents) {
            char buf[64];
            ssize_t got;

            while ((got = read(srv.wake[0], buf, sizeof buf)) > 0)
                if (memchr(buf, 's', (size_t)got))
                    stop = true;
            if (reap(&srv) == 0 && served && !o->persistent)
                stop = true;
        }
        if (!stop && accepting && (p[1].revents & POLLIN)) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                    poll(NULL, 0, 100); /* back off; retry later */
                continue;
            }
            if (client_start(&srv, fd) == 0)
                served = true;
        }
    }

    /* Stop: let each client finish what is in flight, then join it. */
    close(lfd);
    lfd = -1;
    pthread_mutex_lock(&srv.lock);
    for (struct client *cl = srv.clients; cl; cl = cl->next)
        if (!cl->finished && cl->fd >= 0)
            shutdown(cl->fd, SHUT_RD);
    pthread_mutex_unlock(&srv.lock);
    for (;;) {
        struct pollfd p = {srv.wake[0], POLLIN, 0};
        char buf[64];

        if (reap(&srv) == 0)
            break;
        poll(&p, 1, 1000);
        while (read(srv.wake[0], buf, sizeof buf) > 0) {
        }
    }
    if (o->pid_file)
        unlink(o->pid_file);
out_listen:
    if (lfd >= 0)
        close(lfd);
    if (o->socket_path)
        unlink(o->socket_path);
out:
    wake_fd = -1;
    close(srv.wake[0]);
    close(srv.wake[1]);
    pthread_mutex_destroy(&srv.lock);
    return rc;
}
