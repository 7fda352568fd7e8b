/*
 * server.c - the event thread of `qcowkit nbd` (see conn.h for the
 * design): listen, accept while fewer than `shared` clients are connected
 * and fewer than NBD_MAX_HANDSHAKES are in the handshake (later ones wait
 * in the listen backlog, as with qemu-nbd), read every connection, resume
 * paused ones when budget is back, drop clients that read no reply for
 * NBD_SEND_TIMEOUT seconds or stall in a write's data for
 * NBD_RECV_TIMEOUT (it holds budget), and free connections once done.
 *
 * Threads: this one, the pool's workers and the handshakes in progress,
 * whatever the number of connections; an idle connection costs its
 * socket and a struct srv_conn.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"

static volatile sig_atomic_t stop_requested;
static int signal_wake_fd = -1;
static char listen_tag, wake_tag; /* epoll data of the two fixed fds */

static void on_signal(int sig)
{
    int saved = errno;
    uint64_t one = 1;

    (void)sig;
    stop_requested = 1;
    if (write(signal_wake_fd, &one, sizeof one) < 0) {
        /* the counter is full: a wake-up is pending anyway */
    }
    errno = saved;
}

time_t mono_secs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

void server_wake(struct server *srv)
{
    uint64_t one = 1;

    if (write(srv->wakefd, &one, sizeof one) < 0) {
        /* the counter is full: a wake-up is pending anyway */
    }
}

void conn_attention(struct srv_conn *c)
{
    struct server *srv = c->srv;

    pthread_mutex_lock(&srv->lock);
    if (!c->in_attn) {
        c->in_attn = true;
        c->attn_next = srv->attn;
        srv->attn = c;
    }
    pthread_mutex_unlock(&srv->lock);
    server_wake(srv);
}

/* If c is done, have it freed (event thread). */
static void note_if_closable(struct srv_conn *c)
{
    if (conn_closable(c)) {
        pthread_mutex_lock(&c->lock);
        conn_attention(c);
        pthread_mutex_unlock(&c->lock);
    }
}

/* ------------------------------------------------------ connection list */

static void unlink_conn(struct server *srv, struct srv_conn *c)
{
    struct srv_conn **pp;

    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (pp = &srv->paused; *pp; pp = &(*pp)->pause_next)
        if (*pp == c) {
            *pp = c->pause_next;
            break;
        }
    pthread_mutex_lock(&srv->lock);
    if (c->in_attn)
        for (pp = &srv->attn; *pp; pp = &(*pp)->attn_next)
            if (*pp == c) {
                *pp = c->attn_next;
                break;
            }
    pthread_mutex_unlock(&srv->lock);
    srv->n_conns--;
}

static void conn_free(struct srv_conn *c)
{
    struct server *srv = c->srv;

    if (srv->opts->verbose && c->nc.why[0])
        cli_error("nbd: client dropped: %s", c->nc.why);
    unlink_conn(srv, c);
    if (c->have_req) {
        bufcache_put(srv, c->req.data, c->req.payload);
        if (c->reserved)
            conn_unreserve(c, c->req_cost);
    }
    if (c->events)
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    nbd_conn_destroy(&c->nc);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static bool accept_one(struct server *srv, int lfd)
{
    struct nbd_transport none = {NULL, NULL, NULL};
    struct srv_conn *c;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return false;
    c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return false;
    }
    c->srv = srv;
    c->fd = fd;
    c->phase = PHASE_HANDSHAKE;
    pthread_mutex_init(&c->lock, NULL);
    nbd_conn_init(&c->nc, srv->exp, &none);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (handshake_start(c) < 0) {
        conn_free(c);
        return false;
    }
    srv->n_handshakes++;
    return true;
}

/* A handshake thread is done: serve its connection, or drop it. */
static void handshake_done(struct server *srv, struct srv_conn *c,
                           bool stopping)
{
    pthread_join(c->hs_thread, NULL);
    srv->n_handshakes--;
    if (c->hs_result == NBD_HS_GO && !stopping) {
        conn_start_serving(c);
        return;
    }
    if (c->hs_timed_out)
        snprintf(c->nc.why, sizeof c->nc.why,
                 "the handshake took longer than %u s",
                 srv->opts->handshake_limit);
    conn_free(c);
}

static void process_attention(struct server *srv, bool stopping)
{
    for (;;) {
        struct srv_conn *c;
        bool hs_done;

        pthread_mutex_lock(&srv->lock);
        c = srv->attn;
        if (c) {
            srv->attn = c->attn_next;
            c->in_attn = false;
        }
        pthread_mutex_unlock(&srv->lock);
        if (!c)
            return;
        if (c->phase == PHASE_HANDSHAKE) {
            pthread_mutex_lock(&c->lock);
            hs_done = c->hs_done;
            pthread_mutex_unlock(&c->lock);
            if (hs_done)
                handshake_done(srv, c, stopping);
        } else if (conn_closable(c)) {
            conn_free(c);
        }
    }
}

static void add_paused(struct server *srv, struct srv_conn *c)
{
    struct srv_conn **pp;

    for (pp = &srv->paused; *pp; pp = &(*pp)->pause_next)
        if (*pp == c)
            return;
    c->pause_next = NULL;
    *pp = c;
}

/* Budget came back: resume paused connections, oldest first. */
static void retry_paused(struct server *srv)
{
    struct srv_conn **pp = &srv->paused;

    while (*pp) {
        struct srv_conn *c = *pp;
        int rc = conn_read(c);

        if (rc == 0) {
            *pp = c->pause_next;
            note_if_closable(c);
        } else if (rc == 2) {
            return; /* the total is used up: the rest wait their turn */
        } else {
            pp = &c->pause_next;
        }
    }
}

static void conn_event(struct server *srv, struct srv_conn *c, uint32_t ev)
{
    if (c->phase != PHASE_SERVING)
        return;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
        if (conn_read(c) != 0)
            add_paused(srv, c);
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        conn_write(c);
    note_if_closable(c);
}

/* A signal: no new clients; each one finishes what is in flight. */
static void begin_stop(struct server *srv)
{
    for (struct srv_conn *c = srv->conns; c; c = c->next) {
        if (c->phase == PHASE_HANDSHAKE) {
            shutdown(c->fd, SHUT_RDWR);
        } else {
            conn_end_input(c);
            note_if_closable(c);
        }
    }
}

static void check_timeouts(struct server *srv)
{
    time_t now = mono_secs();

    for (struct srv_conn *c = srv->conns; c; c = c->next)
        if (c->phase == PHASE_SERVING) {
            conn_check_timeout(c, now);
            conn_check_stall(c, now);
            note_if_closable(c);
        }
    bufcache_trim_idle(srv);
}

/* ----------------------------------------------------------- event loop */

static void set_listening(struct server *srv, int lfd, bool on)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &listen_tag;
    epoll_ctl(srv->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, lfd, &ev);
}

static void drain_wake(struct server *srv)
{
    uint64_t n;

    if (read(srv->wakefd, &n, sizeof n) < 0) {
        /* nothing pending */
    }
}

static void serve_loop(struct server *srv, int lfd)
{
    const struct nbd_server_opts *o = srv->opts;
    bool served = false, stopping = false, listening = false;
    bool backoff = false;
    time_t last_scan = mono_secs();

    for (;;) {
        struct epoll_event evs[64];
        bool want;
        int n;

        want = !stopping && !backoff &&
               (o->shared == 0 || srv->n_conns < o->shared) &&
               srv->n_handshakes < NBD_MAX_HANDSHAKES;
        if (want != listening) {
            set_listening(srv, lfd, want);
            listening = want;
        }
        if (srv->n_conns == 0 && (stopping || (served && !o->persistent)))
            break;
        n = epoll_wait(srv->epfd, evs, 64, backoff ? 100 : 1000);
        backoff = false;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == &listen_tag) {
                if (accept_one(srv, lfd))
                    served = true;
                else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                    backoff = true; /* out of descriptors: retry later */
            } else if (p == &wake_tag) {
                drain_wake(srv);
            } else {
                conn_event(srv, p, evs[i].events);
            }
        }
        if (stop_requested && !stopping) {
            stopping = true;
            begin_stop(srv);
        }
        process_attention(srv, stopping);
        retry_paused(srv);
        if (mono_secs() != last_scan) {
            last_scan = mono_secs();
            check_timeouts(srv);
            process_attention(srv, stopping);
        }
    }
    if (listening)
        set_listening(srv, lfd, false);
}

/* ---------------------------------------------------------------- serve */

/* Idle clients each hold a descriptor: allow as many as the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/*
 * Request buffers (up to 32 MiB) come and go by the thousand, from
 * several threads.  glibc would serve them from its heaps after the first
 * frees (its mmap threshold rises) and keep what they leave, so resident
 * memory would exceed --max-memory.  A fixed threshold maps each large
 * buffer and gives it back when freed: live and kept buffers (bufcache.c,
 * counted in the budget) are what is resident.
 */
static void large_buffers_unmapped(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
#endif
}

static void catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

static int server_init(struct server *srv, const struct nbd_export *exp,
                       const struct nbd_server_opts *o)
{
    struct epoll_event ev;

    memset(srv, 0, sizeof *srv);
    srv->exp = exp;
    srv->opts = o;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->epfd < 0 || srv->wakefd < 0) {
        cli_error("nbd: %s", strerror(errno));
        goto fail;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_tag;
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wakefd, &ev);
    if (pool_start(&srv->pool) < 0) {
        cli_error("nbd: cannot start threads");
        goto fail;
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->mem_lock, NULL);
    return 0;
fail:
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->wakefd >= 0)
        close(srv->wakefd);
    return -1;
}

static void server_destroy(struct server *srv)
{
    pool_stop(&srv->pool);
    bufcache_destroy(srv);
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->mem_lock);
    close(srv->epfd);
    close(srv->wakefd);
}

int nbd_serve(const struct nbd_export *exp, const struct nbd_server_opts *o)
{
    struct server srv;
    int lfd, rc = 0;

    raise_fd_limit();
    large_buffers_unmapped();
    if (server_init(&srv, exp, o) < 0)
        return -1;
    if (o->socket_path)
        lfd = listen_unix(o->socket_path);
    else
        lfd = listen_tcp(o->bind_addr ? o->bind_addr : "0.0.0.0",
                         o->port ? o->port : "10809");
    if (lfd < 0) {
        server_destroy(&srv);
        return -1;
    }
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    signal_wake_fd = srv.wakefd;
    catch_signals();
    if (o->pid_file && write_pid_file(o->pid_file) < 0) {
        rc = -1;
    } else {
        serve_loop(&srv, lfd);
        if (o->pid_file)
            unlink(o->pid_file);
    }
    close(lfd);
    if (o->socket_path)
        unlink(o->socket_path);
    signal_wake_fd = -1;
    server_destroy(&srv);
    return rc;
}
