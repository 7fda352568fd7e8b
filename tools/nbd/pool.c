/*
 * pool.c - the workers of `qcowkit nbd`: a fixed number of threads that
 * run the requests of every connection, first come first served.  A
 * worker never waits on a client: replies go out through conn.c, which
 * queues what the socket does not take at once.
 */
#include <stdlib.h>

#include "conn.h"

static struct nbd_job *pool_pop(struct pool *p)
{
    struct nbd_job *j;

    pthread_mutex_lock(&p->lock);
    while (!p->head && !p->stop)
        pthread_cond_wait(&p->cond, &p->lock);
    j = p->head;
    if (j) {
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    return j;
}

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    struct nbd_job *j;

    while ((j = pool_pop(p)) != NULL) {
        struct srv_conn *c = j->conn;
        bool dead;

        pthread_mutex_lock(&c->lock);
        dead = c->dead;
        pthread_mutex_unlock(&c->lock);
        if (dead)
            bufcache_put(c->srv, j->req.data, j->req.payload);
        else
            nbd_handle_request(&c->nc, &j->req); /* a failed send: dead */
        conn_job_done(c, j->cost);
        free(j);
    }
    return NULL;
}

int pool_start(struct pool *p)
{
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->head = p->tail = NULL;
    p->stop = false;
    p->n_threads = 0;
    while (p->n_threads < NBD_POOL_WORKERS &&
           pthread_create(&p->threads[p->n_threads], NULL, worker_main, p) == 0)
        p->n_threads++;
    if (p->n_threads == 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        return -1;
    }
    return 0;
}

void pool_push(struct pool *p, struct nbd_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Run what is queued, then end the workers. */
void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}
