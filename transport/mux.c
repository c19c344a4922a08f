/*
 * mux.c - one transport made of two: shm (transport/shm.c) for the peers on this rank's host,
 * a network transport (tcp or verbs, opened by the caller) for the others.
 *
 * Address: the network transport's address in bytes 0..47 (tcp uses 24, verbs 48), shm's in
 * 48..63; RDT_ADDR_MAX is exactly enough. addrs_set splits the table and hands each part to its
 * transport; a peer goes through shm when its host name equals ours (RDT_HOSTNAME may set it).
 * Both transports connect lazily, so the network one never touches a local peer.
 *
 * Errors: the engine reads tp->error inside failing callbacks, so shm writes its errors into
 * ours directly (rdt_shm_opts_t.error_mirror) and the network transport's transfers go through
 * a small wrapper callback that copies its error before calling the caller's.
 *
 * Waiting on both: progress() first drives both without waiting. Only then, if it may wait,
 * it arms shm's sleep (rdt_shm_sleep_begin: after that, a peer writing to us writes shm's
 * eventfd, which shm's epoll fd reports) and sleeps in the network transport's progress, while a
 * helper thread, started on the first such wait, polls shm's epoll fd and calls the network
 * transport's wakeup() (thread safe) when it fires. When one side has no peers, progress() is
 * just the other side's.
 */
#include "transport.h"
#include "wire.h"

#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MUX_NET_LEN 48 /* bytes of the network transport's address */
#define MUX_SHM_OFF MUX_NET_LEN
#define MUX_NOWAKE_SLICE_MS 1

_Static_assert(MUX_SHM_OFF + 16 <= RDT_ADDR_MAX, "both addresses fit RDT_ADDR_MAX");

typedef struct rdt_mux {
    rdt_transport_t base;
    rdt_transport_t *net, *shm;
    int rank, nranks;
    unsigned char *via_shm; /* per rank, after addrs_set */
    int nshm, nnet;
    unsigned idle_net_polls; /* progress() calls while there is no network peer */

    /* the helper that wakes the network transport's sleep when shm has news */
    pthread_t helper;
    int helper_started;
    pthread_mutex_t hlock;
    pthread_cond_t hcond;
    int armed, stop, watch_fd, kick_fd;
} rdt_mux_t;


static void mux_set_error(rdt_mux_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mux_set_error(rdt_mux_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->base.error, sizeof(m->base.error), fmt, ap);
    va_end(ap);
}

static void mux_copy_error(rdt_mux_t *m, rdt_transport_t *sub)
{
    if (sub->error[0])
        mux_set_error(m, "%s", sub->error);
}

/* ------------------------------------------------------------------------------------------ */
/* Helper thread                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void *mux_helper_main(void *arg)
{
    rdt_mux_t *m = arg;

    pthread_mutex_lock(&m->hlock);
    for (;;) {
        struct pollfd pfd[2];
        int fd;

        while (!m->armed && !m->stop)
            pthread_cond_wait(&m->hcond, &m->hlock);
        if (m->stop)
            break;
        fd = m->watch_fd;
        pthread_mutex_unlock(&m->hlock);
        pfd[0].fd = fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        pfd[1].fd = m->kick_fd;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        if (poll(pfd, 2, -1) > 0 && (pfd[1].revents & POLLIN)) {
            uint64_t v;
            if (read(m->kick_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: drained already */
            }
        }
        pthread_mutex_lock(&m->hlock);
        if (m->armed && (pfd[0].revents & (POLLIN | POLLERR | POLLHUP))) {
            m->armed = 0;
            m->net->ops->wakeup(m->net);
        }
    }
    pthread_mutex_unlock(&m->hlock);
    return NULL;
}

static int mux_helper_start(rdt_mux_t *m)
{
    if (m->helper_started)
        return 0;
    m->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->kick_fd < 0)
        return -1;
    if (pthread_create(&m->helper, NULL, mux_helper_main, m) != 0) {
        close(m->kick_fd);
        m->kick_fd = -1;
        return -1;
    }
    m->helper_started = 1;
    return 0;
}

static void mux_helper_stop(rdt_mux_t *m)
{
    if (!m->helper_started)
        return;
    pthread_mutex_lock(&m->hlock);
    m->stop = 1;
    pthread_cond_signal(&m->hcond);
    pthread_mutex_unlock(&m->hlock);
    rdt_wire_eventfd_kick(m->kick_fd);
    pthread_join(m->helper, NULL);
    close(m->kick_fd);
    m->helper_started = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Transfers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* A network transfer completes: the caller's callback and argument were kept in the transfer
 * (outer_cb, outer_arg) while the network transport ran it with this one and the mux. */
static void mux_net_cb(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_mux_t *m = x->arg;

    x->cb = x->outer_cb;
    x->arg = x->outer_arg;
    if (st != RDT_SUCCESS)
        mux_copy_error(m, m->net);
    x->cb(x, st);
}

static rdt_status_t mux_post(rdt_transport_t *t, rdt_xfer_t *x, int send)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    rdt_transport_t *sub;
    rdt_status_t st;
    int wrap;

    if (!x || x->peer < 0 || x->peer >= m->nranks || !m->via_shm) {
        mux_set_error(m, "%s on rank %d: invalid transfer (peer %d of %d ranks%s)",
                      send ? "isend" : "irecv", m->rank, x ? x->peer : -1, m->nranks,
                      m->via_shm ? "" : ", addrs_set was not called");
        return RDT_ERR_INVALID_ARG;
    }
    if (m->via_shm[x->peer]) {
        sub = m->shm;
        st = send ? sub->ops->isend(sub, x) : sub->ops->irecv(sub, x);
        if (st != RDT_SUCCESS)
            mux_copy_error(m, sub);
        return st;
    }
    sub = m->net;
    wrap = x->cb != NULL; /* without one, the network transport refuses it in its own words */
    if (wrap) {
        /* its callback copies the network transport's sentence before the caller's runs */
        x->outer_cb = x->cb;
        x->outer_arg = x->arg;
        x->cb = mux_net_cb;
        x->arg = m;
    }
    st = send ? sub->ops->isend(sub, x) : sub->ops->irecv(sub, x);
    if (st != RDT_SUCCESS) {
        if (wrap) {
            x->cb = x->outer_cb;
            x->arg = x->outer_arg;
        }
        mux_copy_error(m, sub);
    }
    return st;
}

static rdt_status_t mux_isend(rdt_transport_t *t, rdt_xfer_t *x)
{
    return mux_post(t, x, 1);
}

static rdt_status_t mux_irecv(rdt_transport_t *t, rdt_xfer_t *x)
{
    return mux_post(t, x, 0);
}

/* One-shot exchanges: shm's, when every peer is on this host. */
static size_t mux_share_max(rdt_transport_t *t)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    return m->via_shm && m->nnet == 0 && m->nshm > 0 ? m->shm->ops->share_max(m->shm) : 0;
}

static void *mux_share_buf(rdt_transport_t *t)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    return mux_share_max(t) && m->shm->ops->share_buf ? m->shm->ops->share_buf(m->shm) : NULL;
}

static rdt_status_t mux_ishare(rdt_transport_t *t, rdt_xfer_t *x, const void **views,
                               size_t *lens)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    rdt_status_t st;

    if (!m->via_shm || m->nnet != 0 || m->nshm == 0) { /* shm judges the rest */
        mux_set_error(m, "ishare on rank %d: not every rank is on this host", m->rank);
        return RDT_ERR_INVALID_ARG;
    }
    st = m->shm->ops->ishare(m->shm, x, views, lens);
    if (st != RDT_SUCCESS)
        mux_copy_error(m, m->shm);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static rdt_status_t mux_merge(rdt_status_t a, rdt_status_t b)
{
    if (a == RDT_ERR_ABORTED || b == RDT_ERR_ABORTED)
        return RDT_ERR_ABORTED;
    return a != RDT_SUCCESS ? a : b;
}

static rdt_status_t mux_progress(rdt_transport_t *t, int timeout_ms)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    rdt_status_t a, b;
    uint64_t before;
    int fd;

    if (!m->via_shm || m->nshm == 0)
        return m->net->ops->progress(m->net, timeout_ms);
    if (m->nnet == 0) {
        /* no network peer, but the listener is open: let the network transport drop strangers
         * now and then (they would sit in the accept queue, unlogged, until the end) */
        if ((++m->idle_net_polls & 1023) == 0)
            (void)m->net->ops->progress(m->net, 0);
        return m->shm->ops->progress(m->shm, timeout_ms);
    }

    before = rdt_shm_nevents(m->shm);
    a = m->shm->ops->progress(m->shm, 0);
    if (timeout_ms == 0 || rdt_shm_nevents(m->shm) != before || a != RDT_SUCCESS)
        return mux_merge(a, m->net->ops->progress(m->net, 0));
    fd = rdt_shm_sleep_begin(m->shm);
    if (fd == -1)
        return mux_merge(a, m->net->ops->progress(m->net, 0));
    if (fd == -2 || mux_helper_start(m) != 0) {
        /* nobody can wake us for shm: short sleeps */
        b = m->net->ops->progress(m->net, timeout_ms < 0 || timeout_ms > MUX_NOWAKE_SLICE_MS
                                              ? MUX_NOWAKE_SLICE_MS
                                              : timeout_ms);
        rdt_shm_sleep_end(m->shm);
    } else {
        pthread_mutex_lock(&m->hlock);
        m->watch_fd = fd;
        m->armed = 1;
        pthread_cond_signal(&m->hcond);
        pthread_mutex_unlock(&m->hlock);
        b = m->net->ops->progress(m->net, timeout_ms);
        pthread_mutex_lock(&m->hlock);
        m->armed = 0;
        pthread_mutex_unlock(&m->hlock);
        rdt_shm_sleep_end(m->shm);
    }
    a = m->shm->ops->progress(m->shm, 0);
    return mux_merge(a, b);
}

/* ------------------------------------------------------------------------------------------ */
/* Open, addresses, abort, close                                                                */
/* ------------------------------------------------------------------------------------------ */

rdt_status_t rdt_mux_open(const rdt_transport_params_t *params, const rdt_shm_opts_t *shm_opts,
                          rdt_transport_t *net, rdt_transport_t **tp_p)
{
    rdt_shm_opts_t so;
    rdt_status_t st;
    rdt_mux_t *m;

    if (!params || !net || !tp_p)
        return RDT_ERR_INVALID_ARG;
    m = calloc(1, sizeof(*m));
    if (!m)
        return RDT_ERR_NO_MEMORY;
    m->base.ops = &rdt_mux_ops;
    m->rank = params->rank;
    m->nranks = params->nranks;
    m->net = net;
    m->kick_fd = -1;
    memset(&so, 0, sizeof(so));
    if (shm_opts)
        so = *shm_opts;
    so.peers_elsewhere_ok = 1;
    so.error_mirror = m->base.error;
    so.error_mirror_len = sizeof(m->base.error);
    st = rdt_shm_open_opts(params, &so, &m->shm);
    if (st != RDT_SUCCESS) {
        free(m);
        return st;
    }
    pthread_mutex_init(&m->hlock, NULL);
    pthread_cond_init(&m->hcond, NULL);
    *tp_p = &m->base;
    return RDT_SUCCESS;
}

static rdt_status_t mux_open(const rdt_transport_params_t *params, rdt_transport_t **tp_p)
{
    rdt_transport_t *net = NULL;
    rdt_status_t st;

    /* standalone (tests): over tcp */
    st = rdt_tcp_ops.open(params, &net);
    if (st != RDT_SUCCESS)
        return st;
    st = rdt_mux_open(params, NULL, net, tp_p);
    if (st != RDT_SUCCESS)
        net->ops->close(net);
    return st;
}

static rdt_status_t mux_addr_get(rdt_transport_t *t, void *addr, size_t *len_p)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    unsigned char *a = addr;
    size_t nlen = MUX_NET_LEN, slen = RDT_ADDR_MAX - MUX_SHM_OFF;
    rdt_status_t st;

    if (!m || !addr || !len_p || *len_p < RDT_ADDR_MAX)
        return RDT_ERR_INVALID_ARG;
    memset(a, 0, RDT_ADDR_MAX);
    st = m->net->ops->addr_get(m->net, a, &nlen);
    if (st != RDT_SUCCESS) {
        mux_set_error(m, "rank %d: the %s address does not fit %d bytes", m->rank,
                      m->net->ops->name, MUX_NET_LEN);
        return st;
    }
    st = m->shm->ops->addr_get(m->shm, a + MUX_SHM_OFF, &slen);
    if (st != RDT_SUCCESS)
        return st;
    *len_p = RDT_ADDR_MAX;
    return RDT_SUCCESS;
}

static rdt_status_t mux_addrs_set(rdt_transport_t *t, const void *addrs, const char *hosts)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    unsigned char *na, *sa;
    rdt_status_t st;
    int i;

    if (!m || !addrs)
        return RDT_ERR_INVALID_ARG;
    na = calloc((size_t)m->nranks, RDT_ADDR_MAX);
    sa = calloc((size_t)m->nranks, RDT_ADDR_MAX);
    m->via_shm = calloc((size_t)m->nranks, 1);
    if (!na || !sa || !m->via_shm) {
        st = RDT_ERR_NO_MEMORY;
        goto out;
    }
    for (i = 0; i < m->nranks; i++) {
        const unsigned char *a = (const unsigned char *)addrs + (size_t)i * RDT_ADDR_MAX;
        memcpy(na + (size_t)i * RDT_ADDR_MAX, a, MUX_NET_LEN);
        memcpy(sa + (size_t)i * RDT_ADDR_MAX, a + MUX_SHM_OFF, RDT_ADDR_MAX - MUX_SHM_OFF);
    }
    st = m->net->ops->addrs_set(m->net, na, hosts);
    if (st != RDT_SUCCESS) {
        mux_copy_error(m, m->net);
        goto out;
    }
    /* without host names nobody is known to be local: everything over the network */
    if (hosts) {
        st = m->shm->ops->addrs_set(m->shm, sa, hosts);
        if (st != RDT_SUCCESS) {
            mux_copy_error(m, m->shm);
            goto out;
        }
    }
    for (i = 0; i < m->nranks; i++) {
        if (i == m->rank)
            continue;
        m->via_shm[i] = hosts && rdt_shm_peer_is_local(m->shm, i);
        if (m->via_shm[i])
            m->nshm++;
        else
            m->nnet++;
    }
    rdt_info("mux", "rank %d: %d peer%s through shm, %d through %s", m->rank, m->nshm,
             m->nshm == 1 ? "" : "s", m->nnet, m->net->ops->name);
out:
    if (st != RDT_SUCCESS) {
        free(m->via_shm);
        m->via_shm = NULL;
    }
    free(na);
    free(sa);
    return st;
}

static void mux_wakeup(rdt_transport_t *t)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    if (!m)
        return;
    m->shm->ops->wakeup(m->shm);
    m->net->ops->wakeup(m->net);
}

static void mux_abort(rdt_transport_t *t)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    if (!m)
        return;
    /* the sentence the engine left here (why this rank gives up) is what both halves' failure
     * notices must carry, not "the shm transport of rank N was aborted" */
    if (m->base.error[0]) {
        if (!m->shm->error[0])
            snprintf(m->shm->error, sizeof(m->shm->error), "%s", m->base.error);
        if (!m->net->error[0])
            snprintf(m->net->error, sizeof(m->net->error), "%s", m->base.error);
    }
    m->shm->ops->abort(m->shm);
    m->net->ops->abort(m->net);
    if (!m->base.error[0])
        mux_set_error(m, "the transport of rank %d was aborted", m->rank);
}

static void mux_close(rdt_transport_t *t)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    if (!m)
        return;
    mux_helper_stop(m);
    m->shm->ops->close(m->shm);
    m->net->ops->close(m->net);
    pthread_cond_destroy(&m->hcond);
    pthread_mutex_destroy(&m->hlock);
    free(m->via_shm);
    free(m);
}

/* Registrations and holds belong to the network transport (its device: they outlive close(),
 * see transport.h). The engine releases them through our vtable with the handle alone, so each
 * carries the network transport's functions. */
typedef struct mux_handle {
    void (*release)(void *handle);
    void *handle;
} mux_handle_t;

static rdt_status_t mux_mem_register(rdt_transport_t *t, void *buf, size_t len, void **handle_p)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    mux_handle_t *h;
    rdt_status_t st;

    *handle_p = NULL;
    if (!m->net->ops->mem_register)
        return RDT_SUCCESS; /* nothing to pin (tcp) */
    h = malloc(sizeof(*h));
    if (!h)
        return RDT_ERR_NO_MEMORY;
    st = m->net->ops->mem_register(m->net, buf, len, &h->handle);
    if (st != RDT_SUCCESS) {
        free(h);
        mux_copy_error(m, m->net);
        return st;
    }
    h->release = m->net->ops->mem_deregister;
    *handle_p = h;
    return RDT_SUCCESS;
}

static void mux_handle_release(void *handle)
{
    mux_handle_t *h = handle;
    if (!h)
        return;
    if (h->release && h->handle)
        h->release(h->handle);
    free(h);
}

static void *mux_mem_hold(rdt_transport_t *t, const void *buf, size_t len)
{
    rdt_mux_t *m = (rdt_mux_t *)t;
    mux_handle_t *h;
    void *hold;

    if (!m->net->ops->mem_hold || m->nnet == 0)
        return NULL;
    hold = m->net->ops->mem_hold(m->net, buf, len);
    if (!hold)
        return NULL;
    h = malloc(sizeof(*h));
    if (!h) {
        m->net->ops->mem_release(hold);
        return NULL;
    }
    h->release = m->net->ops->mem_release;
    h->handle = hold;
    return h;
}

const rdt_transport_ops_t rdt_mux_ops = {
    .name = "mux",
    .open = mux_open,
    .close = mux_close,
    .addr_get = mux_addr_get,
    .addrs_set = mux_addrs_set,
    .isend = mux_isend,
    .irecv = mux_irecv,
    .progress = mux_progress,
    .abort = mux_abort,
    .wakeup = mux_wakeup,
    .mem_register = mux_mem_register,
    .mem_deregister = mux_handle_release,
    .mem_hold = mux_mem_hold,
    .mem_release = mux_handle_release,
    .share_max = mux_share_max,
    .ishare = mux_ishare,
    .share_buf = mux_share_buf,
};
