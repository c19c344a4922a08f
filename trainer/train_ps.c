/*
 * train_ps.c - the parameter-server mode (--parallel ps): the last S ranks are servers that
 * own the parameters, the first W = size - S ranks are workers that hold a replica, compute
 * gradients on their slice of each global batch, push them to the servers and pull back the
 * updated parameters.
 *
 * The parameters (the layout of a one-rank model: [W0 b0 W1 b1 ...]) are cut into keys: each
 * layer's W into blocks of whole rows of about KEY_FLOATS floats ("layer<l>.w.<block>") and
 * each bias into one key ("layer<l>.b"). Consistent hashing (chash.h) over the server ranks
 * places every key; every rank computes the same map. A server's keys, in key order, are one
 * packed message, so a push or a reply between a worker and a server is one message:
 *
 *   full vector   | W0 rows 0-4 | W0 rows 5-9 | ... | b0 | W1 rows 0-15 | ... | b2 |
 *   server of key |      2      |      3      | ... |  2 |      3       | ... |  3 |
 *   server 2 msg  | W0 rows 0-4 | ... | b0 | ...            (its keys, packed in key order)
 *
 * --sync: every step each server sums the W gradients in worker rank order, takes one SGD
 * step and sends its shard to every worker; the result equals --parallel data on W ranks up
 * to float32 summation order. --async: a server applies each push on arrival and replies with
 * its shard at once, unless the pusher is more than --staleness pushes ahead of the slowest
 * worker (stale-synchronous parallel), in which case the reply waits until the slowest
 * workers catch up.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chash.h"
#include "train.h"

#define KEY_FLOATS 4096  /* target size of a weight key: whole rows, about 16 KiB */
#define SPIN_POLLS 64    /* idle polls with sched_yield before the server starts to sleep */
#define IDLE_NS    50000 /* then sleeps this long between polls */

typedef struct {
    size_t off, n; /* a run of the full parameter vector */
} ps_run_t;

/* What one server owns: runs of the full vector, in key order; adjacent keys are merged. */
typedef struct {
    int rank;
    int nkeys;
    size_t nfloats;
    ps_run_t *runs;
    int nruns;
} ps_shard_t;

typedef struct {
    int nservers, nworkers;
    int me;               /* this server's index (rank - nworkers), or -1 on a worker */
    ps_shard_t *shards;   /* by server index */
    int nkeys, nkeys_cap; /* keys placed; all keys (counted by build_shards' first pass) */
    uint64_t epoch_steps; /* steps per epoch, the same on every rank */

    /* worker */
    rdt_mlp_t m;
    rdt_mlp_ws_t ws;
    float *x, *dlogits;
    uint8_t *y;
    float **push, **pull; /* per server: packed gradient out, packed parameters in */
    rdt_request_t **reqs; /* per server: push, pull */

    /* server */
    float *p, *v;                 /* the shard's parameters and momentum, packed */
    float **in, **out;            /* per worker: gradient received, reply (async) */
    rdt_request_t **rreq, **sreq; /* per worker */
    uint64_t *clock;              /* pushes received from each worker */
    char *owed;                   /* async: a reply deferred by the staleness bound */
    uint64_t calls;               /* step calls so far */
    uint64_t handled;             /* async: pushes applied so far */
    uint64_t deferred;            /* replies held back by the staleness bound */
    uint64_t max_stale;           /* largest clock - min clock seen at a push's arrival */
} ps_state_t;

/* ----- keys and shards ---------------------------------------------------------------------- */

static void shard_pack(const ps_shard_t *sh, const float *full, float *packed)
{
    int r;
    for (r = 0; r < sh->nruns; r++) {
        memcpy(packed, full + sh->runs[r].off, sh->runs[r].n * sizeof(float));
        packed += sh->runs[r].n;
    }
}

static void shard_unpack(const ps_shard_t *sh, const float *packed, float *full)
{
    int r;
    for (r = 0; r < sh->nruns; r++) {
        memcpy(full + sh->runs[r].off, packed, sh->runs[r].n * sizeof(float));
        packed += sh->runs[r].n;
    }
}

/* Append the key [off, off + n) to its server's shard. Runs are at most one per key, so
 * @p cap (the number of keys) bounds them. */
static int shard_add(ps_shard_t *sh, size_t off, size_t n, int cap)
{
    ps_run_t *last;

    if (!sh->runs && !(sh->runs = malloc((size_t)cap * sizeof(*sh->runs))))
        return -1;
    last = sh->nruns ? &sh->runs[sh->nruns - 1] : NULL;
    if (last && last->off + last->n == off)
        last->n += n;
    else
        sh->runs[sh->nruns++] = (ps_run_t){off, n};
    sh->nkeys++;
    sh->nfloats += n;
    return 0;
}

/* Place the key @p name = [off, off + n) (pass 0: only count it). */
static int place_key(trainer_t *t, ps_state_t *s, const rdt_chash_t *ring, int pass,
                     const char *name, size_t off, size_t n)
{
    int server;

    s->nkeys++;
    if (pass == 0)
        return 0;
    server = rdt_chash_lookup(ring, rdt_chash_key(name)) - s->nworkers;
    if (server < 0 || server >= s->nservers)
        return train_error(t, "the hash ring placed key %s on rank %d, which is not a server", name,
                           server + s->nworkers);
    if (shard_add(&s->shards[server], off, n, s->nkeys_cap))
        return train_error(t, "out of memory");
    return 0;
}

/*
 * Cut the model into keys and place each on a server of the ring. Two passes: the first counts
 * the keys (to size the run arrays), the second places them.
 */
static int build_shards(trainer_t *t, ps_state_t *s)
{
    const rdt_mlp_t *m = &s->m;
    rdt_chash_t ring;
    int *ids, i, l, pass, rc = 0;

    if (!(ids = malloc((size_t)s->nservers * sizeof(int))))
        return train_error(t, "out of memory");
    for (i = 0; i < s->nservers; i++)
        ids[i] = s->nworkers + i;
    if (rdt_chash_init(&ring, ids, s->nservers, t->o.vnodes)) {
        free(ids);
        return train_error(t,
                           "cannot build the hash ring of %d servers with %d virtual nodes "
                           "each (out of memory?)",
                           s->nservers, t->o.vnodes);
    }
    free(ids);
    for (i = 0; i < s->nservers; i++)
        s->shards[i].rank = s->nworkers + i;

    for (pass = 0; pass < 2 && rc == 0; pass++) {
        s->nkeys_cap = s->nkeys;
        s->nkeys = 0;
        for (l = 0; l < m->nlayers && rc == 0; l++) {
            size_t in = (size_t)m->sizes[l], out = (size_t)m->sizes[l + 1];
            size_t rows = KEY_FLOATS / in ? KEY_FLOATS / in : 1, r0;
            char name[48];
            int block = 0;

            for (r0 = 0; r0 < out && rc == 0; r0 += rows, block++) {
                size_t nrows = out - r0 < rows ? out - r0 : rows;
                snprintf(name, sizeof(name), "layer%d.w.%d", l, block);
                rc = place_key(t, s, &ring, pass, name, m->w_off[l] + r0 * in, nrows * in);
            }
            snprintf(name, sizeof(name), "layer%d.b", l);
            if (rc == 0)
                rc = place_key(t, s, &ring, pass, name, m->b_off[l], out);
        }
    }
    rdt_chash_free(&ring);
    return rc;
}

/* Steps per epoch as the loop in train_main.c counts them: the same on every rank. */
static uint64_t epoch_steps(const trainer_t *t)
{
    long steps = t->gbatch > 0 ? t->train.n / t->gbatch : 0;
    if (t->o.max_steps && steps > t->o.max_steps)
        steps = t->o.max_steps;
    return steps > 0 ? (uint64_t)steps : 1;
}

/* ----- setup -------------------------------------------------------------------------------- */

static float **alloc_bufs(int n, const size_t *len, size_t same)
{
    float **b = calloc((size_t)n, sizeof(*b));
    int i;

    if (!b)
        return NULL;
    for (i = 0; i < n; i++) {
        size_t k = len ? len[i] : same;
        if (!(b[i] = malloc((k ? k : 1) * sizeof(float)))) {
            while (i-- > 0)
                free(b[i]);
            free(b);
            return NULL;
        }
    }
    return b;
}

static void free_bufs(float **b, int n)
{
    int i;
    if (!b)
        return;
    for (i = 0; i < n; i++)
        free(b[i]);
    free(b);
}

static int setup_worker(trainer_t *t, ps_state_t *s)
{
    const train_opts_t *o = &t->o;
    size_t *len;
    int i;

    if (rdt_mlp_ws_init(&s->ws, &s->m, o->batch))
        return train_error(t, "out of memory for the model");
    s->x = malloc((size_t)o->batch * (size_t)o->sizes[0] * sizeof(float));
    s->y = malloc((size_t)o->batch);
    s->dlogits = malloc((size_t)o->batch * RDT_DATA_CLASSES * sizeof(float));
    s->reqs = calloc(2 * (size_t)s->nservers, sizeof(*s->reqs));
    if (!(len = malloc((size_t)s->nservers * sizeof(*len))))
        return train_error(t, "out of memory");
    for (i = 0; i < s->nservers; i++)
        len[i] = s->shards[i].nfloats;
    s->push = alloc_bufs(s->nservers, len, 0);
    s->pull = alloc_bufs(s->nservers, len, 0);
    free(len);
    if (!s->x || !s->y || !s->dlogits || !s->reqs || !s->push || !s->pull)
        return train_error(t, "out of memory");
    return 0;
}

static int setup_server(trainer_t *t, ps_state_t *s)
{
    const ps_shard_t *sh = &s->shards[s->me];
    size_t n = sh->nfloats ? sh->nfloats : 1;
    int W = s->nworkers;

    s->p = malloc(n * sizeof(float));
    if (t->o.momentum > 0)
        s->v = calloc(n, sizeof(float));
    s->in = alloc_bufs(W, NULL, sh->nfloats);
    if (t->o.ps_async)
        s->out = alloc_bufs(W, NULL, sh->nfloats);
    s->rreq = calloc((size_t)W, sizeof(*s->rreq));
    s->sreq = calloc((size_t)W, sizeof(*s->sreq));
    s->clock = calloc((size_t)W, sizeof(*s->clock));
    s->owed = calloc((size_t)W, 1);
    if (!s->p || (t->o.momentum > 0 && !s->v) || !s->in || (t->o.ps_async && !s->out) || !s->rreq ||
        !s->sreq || !s->clock || !s->owed)
        return train_error(t, "out of memory");
    shard_pack(sh, s->m.params, s->p);
    /* the server keeps its shard only: the full model was needed for the initial values */
    rdt_mlp_free(&s->m);
    return 0;
}

static int ps_setup(trainer_t *t)
{
    const train_opts_t *o = &t->o;
    ps_state_t *s;
    int S = o->servers, i;

    if (t->size < 2)
        return train_error(t, "--parallel ps needs at least 2 ranks (one worker and one server), "
                              "but runs on 1: start it with -np 2 or more");
    if (S >= t->size)
        return train_error(t,
                           "--servers %d leaves no worker on %d ranks: --parallel ps needs "
                           "at least one worker and one server (use --servers 1 to %d)",
                           S, t->size, t->size - 1);
    if (!(s = calloc(1, sizeof(*s))))
        return train_error(t, "out of memory");
    t->mode_state = s;
    s->nservers = S;
    s->nworkers = t->size - S;
    s->me = t->rank >= s->nworkers ? t->rank - s->nworkers : -1;
    t->gbatch = o->batch * s->nworkers;
    s->epoch_steps = epoch_steps(t);

    if (!(s->shards = calloc((size_t)S, sizeof(*s->shards))))
        return train_error(t, "out of memory");
    if (rdt_mlp_init(&s->m, o->sizes, o->nsizes, 0, o->nsizes - 1, o->seed))
        return train_error(t, "out of memory for the model");
    if (build_shards(t, s))
        return -1;
    if (t->rank == 0) {
        printf("ps: %d keys on %d server%s (%d virtual nodes each), %d worker%s, %s\n", s->nkeys, S,
               S == 1 ? "" : "s", o->vnodes, s->nworkers, s->nworkers == 1 ? "" : "s",
               o->ps_async ? "async" : "sync");
        for (i = 0; i < S; i++)
            printf("ps: server rank %d: %d keys, %zu floats (%.1f%%)%s\n", s->shards[i].rank,
                   s->shards[i].nkeys, s->shards[i].nfloats,
                   100.0 * (double)s->shards[i].nfloats / (double)s->m.nparams,
                   s->shards[i].nkeys ? "" : ": idle (raise --vnodes or use fewer --servers)");
        if (o->ps_async)
            printf("ps: async, a worker runs at most %d push%s ahead of the slowest\n",
                   o->staleness, o->staleness == 1 ? "" : "es");
        fflush(stdout);
    }
    return s->me < 0 ? setup_worker(t, s) : setup_server(t, s);
}

/* ----- workers ------------------------------------------------------------------------------ */

/* Wait for every request in @p reqs (NULL entries skipped), all of them even after a failure,
 * so that none is left behind; returns -1 after the first failure. */
static int wait_all(trainer_t *t, rdt_request_t **reqs, int n, const char *what)
{
    int i, rc = 0;

    for (i = 0; i < n; i++) {
        rdt_request_t *r = reqs[i];
        if (!r)
            continue;
        reqs[i] = NULL;
        if (rc) /* the communicator has failed: this returns at once */
            rdt_wait(r);
        else if (train_wait(t, r, what))
            rc = -1;
    }
    return rc;
}

/* Forward and backward on this worker's slice, push the gradient to every server, pull the
 * shards back into the replica. The same in --sync and --async: the servers differ. */
static int worker_step(trainer_t *t, ps_state_t *s, const int *idx, int gbatch, double *loss_sum,
                       long *correct)
{
    int b = t->o.batch, c = 0, i;
    const float *logits;
    rdt_status_t st;

    train_batch(&t->train, idx + (size_t)t->rank * (size_t)b, b, s->x, s->y);
    logits = rdt_mlp_forward(&s->m, &s->ws, s->x, b);
    *loss_sum +=
        rdt_softmax_xent(logits, s->y, b, RDT_DATA_CLASSES, 1.0f / (float)gbatch, s->dlogits, &c);
    *correct += c;
    t->seen += b;
    rdt_mlp_backward(&s->m, &s->ws, s->x, b, s->dlogits, NULL, 0, NULL, NULL);

    for (i = 0; i < s->nservers; i++) {
        const ps_shard_t *sh = &s->shards[i];
        if (!sh->nfloats)
            continue;
        shard_pack(sh, s->m.grads, s->push[i]);
        st = rdt_isend(t->comm, s->push[i], sh->nfloats, RDT_FLOAT32, sh->rank, &s->reqs[2 * i]);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "the push to a server");
        t->bytes_sent += sh->nfloats * sizeof(float);
    }
    for (i = 0; i < s->nservers; i++) {
        const ps_shard_t *sh = &s->shards[i];
        if (!sh->nfloats)
            continue;
        st =
            rdt_irecv(t->comm, s->pull[i], sh->nfloats, RDT_FLOAT32, sh->rank, &s->reqs[2 * i + 1]);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "the pull from a server");
    }
    if (wait_all(t, s->reqs, 2 * s->nservers, "the exchange with the servers"))
        return -1;
    for (i = 0; i < s->nservers; i++)
        if (s->shards[i].nfloats)
            shard_unpack(&s->shards[i], s->pull[i], s->m.params);
    return 0;
}

/* ----- servers: --sync ---------------------------------------------------------------------- */

/* Every worker's gradient, summed in worker rank order (the same float32 sum on every run),
 * one SGD step, the new shard to every worker. */
static int server_sync_step(trainer_t *t, ps_state_t *s)
{
    const ps_shard_t *sh = &s->shards[s->me];
    size_t n = sh->nfloats, i;
    int W = s->nworkers, w;
    rdt_status_t st;

    for (w = 0; w < W; w++) {
        st = rdt_irecv(t->comm, s->in[w], n, RDT_FLOAT32, w, &s->rreq[w]);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "the receive of a worker's push");
    }
    if (wait_all(t, s->rreq, W, "the receive of the workers' pushes"))
        return -1;
    for (w = 1; w < W; w++) {
        const float *g = s->in[w];
        float *acc = s->in[0];
        for (i = 0; i < n; i++)
            acc[i] += g[i];
    }
    rdt_sgd_step(s->p, s->in[0], s->v, n, t->o.lr, t->o.momentum);
    for (w = 0; w < W; w++) {
        st = rdt_isend(t->comm, s->p, n, RDT_FLOAT32, w, &s->sreq[w]);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "the reply to a worker");
        t->bytes_sent += n * sizeof(float);
    }
    return wait_all(t, s->sreq, W, "the replies to the workers");
}

/* ----- servers: --async --------------------------------------------------------------------- */

/* The shard as it is now, to worker @p w. Its previous reply has arrived (the worker pushed
 * since), so the wait for that send returns at once and frees its buffer. */
static int send_reply(trainer_t *t, ps_state_t *s, int w, double *busy)
{
    size_t n = s->shards[s->me].nfloats;
    rdt_status_t st;
    double t0;

    if (s->sreq[w]) {
        rdt_request_t *r = s->sreq[w];
        s->sreq[w] = NULL;
        st = rdt_wait(r);
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "a reply to a worker");
    }
    t0 = train_now();
    memcpy(s->out[w], s->p, n * sizeof(float));
    *busy += train_now() - t0;
    st = rdt_isend(t->comm, s->out[w], n, RDT_FLOAT32, w, &s->sreq[w]);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "a reply to a worker");
    t->bytes_sent += n * sizeof(float);
    return 0;
}

/*
 * Worker @p w's push has arrived: apply it, then reply to it and to every worker whose
 * deferred reply the new minimum clock releases. Clocks count pushes:
 *
 *   clock   w0: 5   w1: 3   w2: 4     min 3, --staleness 1
 *   w0 pushed its 5th: 5 - 3 = 2 > 1, its reply waits; w2 (4 - 3 = 1) was answered.
 *   w1 pushes its 4th: min 4, w0: 5 - 4 = 1 <= 1, w0's reply goes out now.
 */
static int apply_push(trainer_t *t, ps_state_t *s, int w, double *busy)
{
    size_t n = s->shards[s->me].nfloats;
    uint64_t minc;
    double t0 = train_now();
    int v;

    s->clock[w]++;
    rdt_sgd_step(s->p, s->in[w], s->v, n, t->o.lr, t->o.momentum);
    s->handled++;
    *busy += train_now() - t0;

    minc = s->clock[0];
    for (v = 1; v < s->nworkers; v++)
        minc = s->clock[v] < minc ? s->clock[v] : minc;
    if (s->clock[w] - minc > s->max_stale)
        s->max_stale = s->clock[w] - minc;
    if (s->clock[w] - minc > (uint64_t)t->o.staleness) {
        s->owed[w] = 1;
        s->deferred++;
        return 0;
    }
    if (send_reply(t, s, w, busy))
        return -1;
    for (v = 0; v < s->nworkers; v++) {
        if (s->owed[v] && s->clock[v] - minc <= (uint64_t)t->o.staleness) {
            s->owed[v] = 0;
            if (send_reply(t, s, v, busy))
                return -1;
        }
    }
    return 0;
}

/* Free the replies that have gone (rdt_test frees a completed request). */
static int test_replies(trainer_t *t, ps_state_t *s, int *progressed)
{
    int w, done;
    rdt_status_t st;

    for (w = 0; w < s->nworkers; w++) {
        if (!s->sreq[w])
            continue;
        st = rdt_test(s->sreq[w], &done);
        if (done || st != RDT_SUCCESS)
            s->sreq[w] = NULL;
        if (st != RDT_SUCCESS)
            return train_fail(t, t->comm, st, "a reply to a worker");
        *progressed |= done;
    }
    return 0;
}

/* Nothing arrived: hand the core over (the ranks of a job often share cores), then, idle for
 * longer, sleep between polls so that a waiting server does not burn a core its workers need. */
static void idle_pause(unsigned *idle)
{
    struct timespec ts = {0, IDLE_NS};

    if (++*idle < SPIN_POLLS)
        sched_yield();
    else
        nanosleep(&ts, NULL);
}

/*
 * Step call number c (counted from setup) returns once (c + 1) * W pushes are applied and every
 * reply that may go has gone. One receive stays posted per worker while that worker has pushes
 * left in this epoch, and none beyond: the epoch-end collectives queue behind every
 * point-to-point operation issued before them, so a receive for next epoch's push would
 * deadlock them. At the epoch's last call every worker has pushed as often as every other, the
 * minimum clock is the maximum, and no reply is left deferred. Pushes are applied with the
 * rate of the server's current step (t->o.lr, which the loop's schedule sets).
 */
static int server_async_step(trainer_t *t, ps_state_t *s)
{
    size_t n = s->shards[s->me].nfloats;
    int W = s->nworkers, w;
    uint64_t epoch = s->calls / s->epoch_steps;
    uint64_t cap = (epoch + 1) * s->epoch_steps; /* pushes per worker by this epoch's end */
    uint64_t target = (s->calls + 1) * (uint64_t)W;
    int epoch_end = (s->calls + 1) % s->epoch_steps == 0;
    double t0 = train_now(), busy = 0;
    unsigned idle = 0;
    rdt_status_t st;

    s->calls++;
    for (;;) {
        int progressed = 0;

        for (w = 0; w < W; w++) {
            if (s->rreq[w] || s->clock[w] >= cap)
                continue;
            st = rdt_irecv(t->comm, s->in[w], n, RDT_FLOAT32, w, &s->rreq[w]);
            if (st != RDT_SUCCESS)
                return train_fail(t, t->comm, st, "the receive of a worker's push");
        }
        if (s->handled >= target)
            break;
        for (w = 0; w < W; w++) {
            int done;
            if (!s->rreq[w])
                continue;
            st = rdt_test(s->rreq[w], &done);
            if (done || st != RDT_SUCCESS)
                s->rreq[w] = NULL;
            if (st != RDT_SUCCESS)
                return train_fail(t, t->comm, st, "the receive of a worker's push");
            if (done) {
                if (apply_push(t, s, w, &busy))
                    return -1;
                progressed = 1;
            }
        }
        if (test_replies(t, s, &progressed))
            return -1;
        if (progressed)
            idle = 0;
        else
            idle_pause(&idle);
    }
    t->comm_wait_s += train_now() - t0 - busy;

    if (epoch_end) {
        for (w = 0; w < W; w++)
            if (s->owed[w] || s->rreq[w] || s->clock[w] != cap)
                return train_error(t,
                                   "ps server rank %d: at the end of epoch %llu worker %d "
                                   "has pushed %llu times of %llu%s",
                                   t->rank, (unsigned long long)epoch + 1, w,
                                   (unsigned long long)s->clock[w], (unsigned long long)cap,
                                   s->owed[w] ? " and a reply is still deferred" : "");
        if (wait_all(t, s->sreq, W, "the replies to the workers"))
            return -1;
    }
    return 0;
}

/* ----- the mode ----------------------------------------------------------------------------- */

static int ps_step(trainer_t *t, const int *idx, int gbatch, double *loss_sum, long *correct)
{
    ps_state_t *s = t->mode_state;
    int rc;

    if (s->me < 0)
        return worker_step(t, s, idx, gbatch, loss_sum, correct);
    if (!s->shards[s->me].nfloats) {
        s->calls++;
        return 0;
    }
    if (!t->o.ps_async)
        return server_sync_step(t, s);
    rc = server_async_step(t, s);
    /* the run's last step: the staleness figures, one line per server */
    if (rc == 0 && t->step + 1 == (uint64_t)t->o.epochs * s->epoch_steps) {
        printf("ps server rank %d: %llu pushes applied, %llu replies deferred by --staleness "
               "%d, max staleness %llu\n",
               t->rank, (unsigned long long)s->handled, (unsigned long long)s->deferred,
               t->o.staleness, (unsigned long long)s->max_stale);
        fflush(stdout);
    }
    return rc;
}

/* Each server writes its keys into a zeroed vector; the sum over all ranks is exact (one
 * non-zero contributor per element). The workers' replicas are not authoritative. */
static int ps_gather(trainer_t *t, float *full, float *full_vel)
{
    ps_state_t *s = t->mode_state;
    rdt_status_t st;

    memset(full, 0, t->full_nparams * sizeof(float));
    if (s->me >= 0)
        shard_unpack(&s->shards[s->me], s->p, full);
    st = rdt_allreduce(t->comm, full, full, t->full_nparams, RDT_FLOAT32, RDT_SUM);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the gather of the parameters");
    if (!full_vel)
        return 0;
    memset(full_vel, 0, t->full_nparams * sizeof(float));
    if (t->o.momentum <= 0)
        return 0;
    if (s->me >= 0 && s->v)
        shard_unpack(&s->shards[s->me], s->v, full_vel);
    st = rdt_allreduce(t->comm, full_vel, full_vel, t->full_nparams, RDT_FLOAT32, RDT_SUM);
    if (st != RDT_SUCCESS)
        return train_fail(t, t->comm, st, "the gather of the momentum");
    return 0;
}

static int ps_scatter(trainer_t *t, const float *full, const float *full_vel)
{
    ps_state_t *s = t->mode_state;

    if (s->me < 0) {
        memcpy(s->m.params, full, s->m.nparams * sizeof(float));
        return 0;
    }
    shard_pack(&s->shards[s->me], full, s->p);
    if (full_vel && s->v)
        shard_pack(&s->shards[s->me], full_vel, s->v);
    return 0;
}

static void ps_layout(const trainer_t *t, int layout[4])
{
    layout[0] = t->o.servers;
    layout[1] = t->o.ps_async;
    layout[2] = t->size - t->o.servers;
    layout[3] = 0;
}

/* Requests are left only after a failure: abort the communicator (main() would next) so that
 * waiting for them returns at once, and free them. */
static void free_reqs(trainer_t *t, rdt_request_t **reqs, int n)
{
    int i;

    if (!reqs)
        return;
    for (i = 0; i < n; i++) {
        if (!reqs[i])
            continue;
        rdt_comm_abort(t->comm);
        rdt_wait(reqs[i]);
        reqs[i] = NULL;
    }
    free(reqs);
}

static void ps_fini(trainer_t *t)
{
    ps_state_t *s = t->mode_state;
    int i;

    if (!s)
        return;
    free_reqs(t, s->reqs, 2 * s->nservers);
    free_reqs(t, s->rreq, s->nworkers);
    free_reqs(t, s->sreq, s->nworkers);
    free_bufs(s->push, s->nservers);
    free_bufs(s->pull, s->nservers);
    free_bufs(s->in, s->nworkers);
    free_bufs(s->out, s->nworkers);
    rdt_mlp_ws_free(&s->ws);
    rdt_mlp_free(&s->m);
    free(s->x);
    free(s->y);
    free(s->dlogits);
    free(s->p);
    free(s->v);
    free(s->clock);
    free(s->owed);
    if (s->shards)
        for (i = 0; i < s->nservers; i++)
            free(s->shards[i].runs);
    free(s->shards);
    free(s);
    t->mode_state = NULL;
}

const train_mode_t rdt_mode_ps = {"ps",       ps_setup,  ps_step, ps_gather,
                                  ps_scatter, ps_layout, ps_fini};
