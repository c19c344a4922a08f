/*
 * exec.c - the executor: walks a schedule over real buffers, slice by slice, through the
 * transport.
 *
 * Pipelining. A collective's vector is cut into slices (sched.h); the schedule runs once per
 * slice, and up to comm->nslots slices are in flight at once, each in a slot with its own TEMP
 * and staging memory. While one slot reduces what it received, the others' messages are on the
 * wire.
 *
 *   slice:   0        1        2        3   ...
 *   slot:    A        B        C        A   (a slot is reused once its slice has finished)
 *   rounds:  r0 r1 r2 ...   each round of a slice starts when its previous round completed
 *
 * Matching. The transport matches messages per ordered pair of ranks in posting order, so both
 * ends must post the messages between them in one agreed order although slots advance at their
 * own pace. The agreed order is (slice, op, segment): message j of the pair inside a slice has
 * number k * m + j for slice k, where m is the pair's messages per slice. A message is posted
 * only when every lower-numbered message of the pair has been posted (comm->send_seq/recv_seq
 * count them). That order is consistent with the rounds and with slot reuse, so the lowest
 * unfinished message of all ranks can always proceed: no deadlock, whatever the timing.
 *
 * Memory. Scratch (TEMP and staging for every slot) is one persistent, pre-faulted allocation
 * per communicator, sized by the chunk (slice) and not by the message: an allreduce of N bytes
 * costs O(chunk) extra memory.
 *
 * One-shot collectives (req->oneshot, chosen by rdt_select_oneshot): no schedule. With every
 * rank on one host the transport offers exchanges through shared memory (transport.h, ishare):
 * each rank contributes its part once and, when all have, reads every rank's contribution in
 * place and computes its own result from them: reductions combine the contributions in rank
 * order, so every rank gets the same bits.
 *
 * Direct collectives (req->direct, chosen by rdt_select_direct for large ones on one host): the
 * ranks first exchange offers (the same exchange, 72 bytes each) saying where their buffers are
 * in rdt_mem_alloc memory (mapped.h). If any rank's are not, every rank runs the plan chosen as
 * usual. If all are, each maps the others' allocations (cached) and makes one pass over the
 * data: an allreduce's vector is cut into one slice per rank (4 KiB-aligned), and rank k reduces
 * slice k of every rank's send buffer, in rank order, a chunk at a time into a small buffer that
 * stays in cache, then writes it into every rank's receive buffer; reduce does the same into the
 * root's; reduce_scatter, allgather, broadcast and alltoall read what they need from the others'
 * send buffers into their own receive buffer. A second exchange (empty) ends the call: nobody
 * returns while another rank may still read or write its buffers. In-place alltoall (a rank's
 * block would be overwritten while a peer still reads it) keeps its schedule.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "ctl.h"
#include "log.h"
#include "reduce.h"

typedef struct rdt_msg {
    rdt_xfer_t xfer;
    rdt_request_t *req;
    rdt_slot_t *slot;
    uint32_t op;
    uint32_t number;   /* position in the pair's agreed order (see top) */
    int posted;
    int done;
    /* RECV_REDUCE: dst = src (op) staged data */
    void *dst;
    const void *src;
    size_t n;
    size_t reduced; /* elements of it reduced so far, piece by piece (msg_part) */
} rdt_msg_t;

struct rdt_slot {
    int active;
    size_t slice;
    size_t len;         /* elements of each unit piece in this slice */
    uint32_t round;
    uint32_t pending;   /* messages of the round not complete */
    uint32_t unposted;  /* messages of the round waiting for their turn */
    unsigned char *temp;
    unsigned char *staging;
    rdt_msg_t *msgs;
    uint32_t nmsgs;
    uint32_t cap_msgs;
};

double rdt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int op_is_msg(const rdt_sched_op_t *o)
{
    return o->kind != RDT_OPK_COPY;
}

static int op_is_send(const rdt_sched_op_t *o)
{
    return o->kind == RDT_OPK_SEND;
}

/* ------------------------------------------------------------------------------------------ */
/* Plans: a schedule plus the per-op numbers the executor needs, cached per communicator.      */
/* ------------------------------------------------------------------------------------------ */

static uint32_t blocks_per_unit(const rdt_sched_t *s)
{
    return s->nblocks / s->nunits;
}

/* Messages an op sends or receives per slice: one per unit its region touches (a region of
 * zero blocks is still one, empty, message). */
static uint32_t op_nsegs(const rdt_sched_t *s, const rdt_sched_op_t *o)
{
    uint32_t bpu = blocks_per_unit(s);
    if (o->blk_end <= o->blk_begin)
        return 1;
    return (o->blk_end - 1) / bpu - o->blk_begin / bpu + 1;
}

static void plan_free(rdt_plan_t *p)
{
    if (!p)
        return;
    rdt_sched_destroy(p->sched);
    free(p->round_start);
    free(p->nsegs);
    free(p->pseq);
    free(p->peer_msgs);
    free(p);
}

/* The plans, and the host map (comm->host_of, select.c) they were built from. */
void rdt_exec_plans_free(rdt_comm_t *comm)
{
    while (comm->plans) {
        rdt_plan_t *next = comm->plans->next;
        plan_free(comm->plans);
        comm->plans = next;
    }
    free(comm->host_of);
    comm->host_of = NULL;
}

/* Count, per (peer, direction), the messages of one slice and each op's first number among
 * them. */
static rdt_status_t plan_numbering(rdt_comm_t *comm, rdt_plan_t *p)
{
    const rdt_sched_t *s = p->sched;
    uint32_t *nsend = calloc((size_t)comm->nranks, sizeof(uint32_t));
    uint32_t *nrecv = calloc((size_t)comm->nranks, sizeof(uint32_t));
    rdt_status_t st = RDT_SUCCESS;
    uint32_t i;

    if (!nsend || !nrecv) {
        st = RDT_ERR_NO_MEMORY;
        goto out;
    }
    for (i = 0; i < s->nops; i++) {
        const rdt_sched_op_t *o = &s->ops[i];
        uint32_t *ctr;
        if (!op_is_msg(o))
            continue;
        if (o->peer < 0 || o->peer >= comm->nranks || o->peer == comm->rank) {
            st = RDT_ERR_INTERNAL;
            goto out;
        }
        ctr = op_is_send(o) ? &nsend[o->peer] : &nrecv[o->peer];
        p->pseq[i] = *ctr;
        *ctr += p->nsegs[i];
    }
    for (i = 0; i < s->nops; i++) {
        const rdt_sched_op_t *o = &s->ops[i];
        if (op_is_msg(o))
            p->peer_msgs[i] = op_is_send(o) ? nsend[o->peer] : nrecv[o->peer];
    }
out:
    free(nsend);
    free(nrecv);
    return st;
}

rdt_status_t rdt_exec_plan_get(rdt_comm_t *comm, rdt_coll_t coll, rdt_algo_t algo, int root,
                               rdt_plan_t **plan_p)
{
    rdt_plan_t *p;
    rdt_status_t st;
    uint32_t i, r, nr;

    for (p = comm->plans; p; p = p->next) {
        if (p->sched->coll == coll && p->sched->algo == algo && p->sched->root == root) {
            *plan_p = p;
            return RDT_SUCCESS;
        }
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        return RDT_ERR_NO_MEMORY;
    /* the topology is fixed for the communicator's life: (coll, algo, root) stays the key */
    st = rdt_sched_build_topo(coll, algo, comm->rank, comm->nranks, root, comm->host_of,
                              &p->sched);
    if (st != RDT_SUCCESS) {
        free(p);
        return st;
    }
    nr = p->sched->nrounds;
    p->round_start = calloc((size_t)nr + 1, sizeof(uint32_t));
    p->nsegs = calloc((size_t)p->sched->nops + 1, sizeof(uint32_t));
    p->pseq = calloc((size_t)p->sched->nops + 1, sizeof(uint32_t));
    p->peer_msgs = calloc((size_t)p->sched->nops + 1, sizeof(uint32_t));
    if (!p->round_start || !p->nsegs || !p->pseq || !p->peer_msgs) {
        plan_free(p);
        return RDT_ERR_NO_MEMORY;
    }
    /* round_start[r] = first op of round r (ops are sorted by round) */
    for (i = 0, r = 0; r <= nr; r++) {
        while (i < p->sched->nops && p->sched->ops[i].round < r)
            i++;
        p->round_start[r] = i;
    }
    for (i = 0; i < p->sched->nops; i++)
        p->nsegs[i] = op_is_msg(&p->sched->ops[i]) ? op_nsegs(p->sched, &p->sched->ops[i]) : 0;
    /* the most RECV_REDUCE blocks in one round, and the most messages in one round */
    p->max_staging = 0;
    p->max_msgs = 0;
    for (r = 0; r < nr; r++) {
        uint32_t blocks = 0, msgs = 0;
        for (i = p->round_start[r]; i < p->round_start[r + 1]; i++) {
            const rdt_sched_op_t *o = &p->sched->ops[i];
            if (o->kind == RDT_OPK_RECV_REDUCE)
                blocks += o->blk_end - o->blk_begin;
            msgs += p->nsegs[i];
        }
        if (blocks > p->max_staging)
            p->max_staging = blocks;
        if (msgs > p->max_msgs)
            p->max_msgs = msgs;
    }
    for (i = 0; i < p->sched->nops; i++)
        if (p->sched->ops[i].buf == RDT_BUF_TEMP || p->sched->ops[i].src == RDT_BUF_TEMP)
            p->uses_temp = 1;
    st = plan_numbering(comm, p);
    if (st != RDT_SUCCESS) {
        plan_free(p);
        return st;
    }
    p->next = comm->plans;
    comm->plans = p;
    *plan_p = p;
    return RDT_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots and scratch                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* Bytes of TEMP and of staging one slot needs for this request. A block holds at most
 * ceil(S / blocks_per_unit) elements. */
static void slot_sizes(const rdt_request_t *req, size_t *temp_p, size_t *staging_p)
{
    const rdt_sched_t *s = req->plan->sched;
    size_t es = rdt_dtype_size(req->dtype);
    size_t bpu = blocks_per_unit(s);
    size_t blk = (req->slice_len + bpu - 1) / bpu;

    *temp_p = req->plan->uses_temp ? align64((size_t)s->nunits * req->slice_len * es) : 0;
    *staging_p = align64((size_t)req->plan->max_staging * blk * es);
}

static rdt_status_t slots_prepare(rdt_comm_t *comm, rdt_request_t *req)
{
    size_t temp, staging, per_slot, need;
    int i;

    slot_sizes(req, &temp, &staging);
    per_slot = temp + staging;
    need = per_slot * (size_t)comm->nslots;
    if (need > comm->scratch_bytes) {
        unsigned char *m = NULL;
        if (posix_memalign((void **)&m, 4096, need))
            return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY,
                                      "%s: cannot allocate %zu bytes of scratch on rank %d",
                                      rdt_coll_name(req->coll), need, comm->rank);
        memset(m, 0, need); /* pre-fault now, not on the data path */
        rdt_comm_scratch_set(comm, m, need);
    }
    for (i = 0; i < comm->nslots; i++) {
        rdt_slot_t *sl = &comm->slots[i];
        sl->active = 0;
        sl->temp = comm->scratch + (size_t)i * per_slot;
        sl->staging = sl->temp + temp;
        if (sl->cap_msgs < req->plan->max_msgs) {
            rdt_msg_t *m = realloc(sl->msgs, req->plan->max_msgs * sizeof(*m));
            if (!m)
                return RDT_ERR_NO_MEMORY;
            sl->msgs = m;
            sl->cap_msgs = req->plan->max_msgs;
        }
    }
    return RDT_SUCCESS;
}

/* Address of elements [start, start + n) of unit @p u's piece in slice @p k, in buffer @p b. */
static unsigned char *buf_addr(const rdt_request_t *req, const rdt_slot_t *sl, int b, uint32_t u,
                               size_t start)
{
    size_t es = rdt_dtype_size(req->dtype);
    size_t base = sl->slice * req->slice_len + start; /* element inside the unit */

    switch (b) {
    case RDT_BUF_INPUT:
        if (req->coll == RDT_COLL_ALLGATHER)
            return (unsigned char *)req->sendbuf + base * es; /* only unit `rank` exists */
        return (unsigned char *)req->sendbuf + ((size_t)u * req->count + base) * es;
    case RDT_BUF_OUTPUT:
        if (req->coll == RDT_COLL_REDUCE_SCATTER)
            return (unsigned char *)req->recvbuf + base * es; /* only unit `rank` exists */
        return (unsigned char *)req->recvbuf + ((size_t)u * req->count + base) * es;
    default:
        return sl->temp + ((size_t)u * req->slice_len + start) * es;
    }
}

/* Segment @p seg of op @p o's region: unit, element offset inside the piece, element count. */
static void op_segment(const rdt_sched_t *s, const rdt_sched_op_t *o, uint32_t seg, size_t len,
                       uint32_t *unit_p, size_t *start_p, size_t *n_p)
{
    uint32_t bpu = blocks_per_unit(s);
    uint32_t u, c0, c1;
    size_t off0, n0, off1, n1;

    if (o->blk_end <= o->blk_begin) {
        *unit_p = 0;
        *start_p = 0;
        *n_p = 0;
        return;
    }
    if (bpu == 1) { /* a block per unit: the whole piece, no divisions (per message) */
        *unit_p = o->blk_begin + seg;
        *start_p = 0;
        *n_p = len;
        return;
    }
    u = o->blk_begin / bpu + seg;
    c0 = o->blk_begin > u * bpu ? o->blk_begin : u * bpu;
    c1 = o->blk_end < (u + 1) * bpu ? o->blk_end : (u + 1) * bpu;
    rdt_sched_block_range(s, c0, len, &off0, &n0);
    rdt_sched_block_range(s, c1 - 1, len, &off1, &n1);
    *unit_p = u;
    *start_p = off0 - (size_t)u * len;
    *n_p = off1 + n1 - off0;
}

/* ------------------------------------------------------------------------------------------ */
/* Rounds                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int describe_wait(rdt_comm_t *comm, rdt_request_t *req, char *buf, size_t len);

static rdt_op_t kernel_op(rdt_op_t op)
{
    return op == RDT_AVG ? RDT_SUM : op;
}

/* RECV_REDUCE: reduce its staged elements from the first not yet reduced up to @p upto. */
static void msg_reduce_upto(rdt_msg_t *m, size_t upto)
{
    const rdt_request_t *req = m->req;
    size_t es = rdt_dtype_size(req->dtype), k = m->reduced;

    if (upto <= k)
        return;
    rdt_reduce_local((unsigned char *)m->dst + k * es, (const unsigned char *)m->src + k * es,
                     (unsigned char *)m->xfer.buf + k * es, upto - k, req->dtype,
                     kernel_op(req->op));
    m->reduced = upto;
}

static void msg_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_msg_t *m = x->arg;
    rdt_request_t *req = m->req;
    rdt_comm_t *comm = req->comm;

    m->done = 1;
    m->slot->pending--;
    if (st != RDT_SUCCESS) {
        if (comm->failed == RDT_SUCCESS) {
            char name[160], what[600];
            int waiting;
            rdt_exec_request_name(req, name, sizeof(name));
            waiting = describe_wait(comm, req, what, sizeof(what));
            rdt_comm_set_error(comm, st, "%s on rank %d (host %s): %s%s%s%s", name, comm->rank,
                               comm->host,
                               comm->tp->error[0] ? comm->tp->error : rdt_status_str(st),
                               st == RDT_ERR_MISMATCH
                                   ? " (the ranks called different collectives or arguments, or "
                                     "disagree on RDT_CHECK; RDT_CHECK=1 on every rank names "
                                     "what each called)"
                                   : "",
                               waiting ? "; still waiting for: " : "", waiting ? what : "");
            comm->failed = st; /* rdt_exec_advance finishes the failure outside callbacks */
        }
        return;
    }
    if (m->dst) /* RECV_REDUCE: the data is staged, the operands are ready (round order) */
        msg_reduce_upto(m, m->n);
}

/* RECV_REDUCE, while its data arrives (transport.h, part): reduce the elements that are whole in
 * the staging buffer now, while they are in cache, instead of all of them after the last byte.
 * The operands are ready as at msg_done (every earlier round completed before this one posted);
 * each element is reduced once, with the same operands, so the result is the same bits. */
static void msg_part(rdt_xfer_t *x, size_t off, size_t len)
{
    rdt_msg_t *m = x->arg;

    msg_reduce_upto(m, (off + len) / rdt_dtype_size(m->req->dtype));
}

/* Tag layout: coll.c (fp_tag_hi). The check exchange's message numbers have bit 31 set. */
static uint64_t msg_tag(const rdt_request_t *req, uint32_t number)
{
    return req->tag_hi | (req->checked ? number | 0x80000000u : number);
}

/* Set up round sl->round: run its COPYs, describe its messages (posted by slot_post). */
static void round_begin(rdt_request_t *req, rdt_slot_t *sl)
{
    const rdt_plan_t *p = req->plan;
    const rdt_sched_t *s = p->sched;
    size_t es = rdt_dtype_size(req->dtype);
    unsigned char *stage = sl->staging;
    uint32_t i, seg;

    sl->nmsgs = 0;
    for (i = p->round_start[sl->round]; i < p->round_start[sl->round + 1]; i++) {
        const rdt_sched_op_t *o = &s->ops[i];
        for (seg = 0; seg < (op_is_msg(o) ? p->nsegs[i] : op_nsegs(s, o)); seg++) {
            uint32_t u;
            size_t start, n;
            rdt_msg_t *m;

            op_segment(s, o, seg, sl->len, &u, &start, &n);
            if (o->kind == RDT_OPK_COPY) {
                unsigned char *dst = buf_addr(req, sl, o->buf, u, start);
                const unsigned char *src = buf_addr(req, sl, o->src, u, start);
                if (n && dst != src)
                    memmove(dst, src, n * es);
                continue;
            }
            m = &sl->msgs[sl->nmsgs++];
            /* field by field, not a memset of the whole message: this runs per message; the
             * transfer's private fields are the transport's from the post on */
            m->xfer.done = 0;
            m->xfer.next = NULL;
            m->xfer.hdr_done = 0;
            m->xfer.tpriv = NULL;
            m->xfer.outer_cb = NULL;
            m->xfer.outer_arg = NULL;
            m->posted = m->done = 0;
            m->dst = NULL;
            m->src = NULL;
            m->n = 0;
            m->reduced = 0;
            m->xfer.part = NULL;
            m->req = req;
            m->slot = sl;
            m->op = i;
            m->number = (uint32_t)(sl->slice * p->peer_msgs[i]) + p->pseq[i] + seg;
            m->xfer.len = n * es;
            m->xfer.peer = o->peer;
            m->xfer.tag = msg_tag(req, m->number);
            m->xfer.cb = msg_done;
            m->xfer.arg = m;
            if (o->kind == RDT_OPK_RECV_REDUCE) {
                m->dst = buf_addr(req, sl, o->buf, u, start);
                m->src = buf_addr(req, sl, o->src, u, start);
                m->n = n;
                m->xfer.buf = stage;
                m->xfer.part = msg_part;
                stage += n * es;
            } else {
                m->xfer.buf = buf_addr(req, sl, o->buf, u, start);
            }
        }
    }
    sl->pending = sl->nmsgs;
    sl->unposted = sl->nmsgs;
}

/* Post every message of the slot's round whose turn has come. Returns how many it posted. */
static int slot_post(rdt_request_t *req, rdt_slot_t *sl)
{
    rdt_comm_t *comm = req->comm;
    const rdt_sched_t *s = req->plan->sched;
    int posted = 0;
    uint32_t i;

    for (i = 0; i < sl->nmsgs && sl->unposted; i++) {
        rdt_msg_t *m = &sl->msgs[i];
        const rdt_sched_op_t *o = &s->ops[m->op];
        uint32_t *ctr;
        rdt_status_t st;

        if (m->posted)
            continue;
        ctr = op_is_send(o) ? &comm->send_seq[o->peer] : &comm->recv_seq[o->peer];
        if (*ctr != m->number)
            continue;
        m->posted = 1;
        sl->unposted--;
        (*ctr)++;
        posted++;
        st = op_is_send(o) ? comm->tp->ops->isend(comm->tp, &m->xfer)
                           : comm->tp->ops->irecv(comm->tp, &m->xfer);
        if (st != RDT_SUCCESS) {
            msg_done(&m->xfer, st);
            return posted;
        }
        if (comm->failed)
            return posted;
    }
    return posted;
}

/* AVG: divide the final results of this slice (allreduce: the whole OUTPUT slice;
 * reduce_scatter: this rank's piece; reduce: root's OUTPUT). */
static void slice_finish(rdt_request_t *req, rdt_slot_t *sl)
{
    rdt_comm_t *comm = req->comm;
    size_t es = rdt_dtype_size(req->dtype);
    unsigned char *out = (unsigned char *)req->recvbuf + sl->slice * req->slice_len * es;

    if (req->op != RDT_AVG)
        return;
    if (req->coll == RDT_COLL_ALLREDUCE || req->coll == RDT_COLL_REDUCE_SCATTER ||
        (req->coll == RDT_COLL_REDUCE && comm->rank == req->root))
        rdt_reduce_scale_avg(out, sl->len, req->dtype, comm->nranks);
}

static void slot_start(rdt_request_t *req, rdt_slot_t *sl, size_t k)
{
    size_t left = req->count - k * req->slice_len;

    sl->active = 1;
    sl->slice = k;
    sl->len = left < req->slice_len ? left : req->slice_len;
    sl->round = 0;
    sl->nmsgs = sl->pending = sl->unposted = 0;
    if (req->plan->sched->nrounds)
        round_begin(req, sl);
}

static int direct_advance(rdt_request_t *req);

/* Move one request forward as far as it goes without waiting. Returns nonzero if anything
 * changed (so the caller loops). */
static int coll_advance(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    int changed = 0, i;

    if (req->oneshot)
        return 0; /* its callback completes it */
    if (req->direct) {
        changed = direct_advance(req);
        if (req->direct || req->oneshot || comm->failed) /* oneshot: after the offers */
            return changed;
    }
    if (!req->plan) { /* count 0 under RDT_CHECK: the check was all there was to do */
        req->done = 1;
        req->status = RDT_SUCCESS;
        return 1;
    }
    for (i = 0; i < comm->nslots && !comm->failed; i++) {
        rdt_slot_t *sl = &comm->slots[i];
        if (!sl->active) {
            if (req->next_slice >= req->nslices)
                continue;
            slot_start(req, sl, req->next_slice++);
            changed = 1;
        }
        changed |= slot_post(req, sl) > 0;
        while (sl->active && sl->pending == 0 && sl->unposted == 0 && !comm->failed) {
            if (++sl->round < req->plan->sched->nrounds) {
                round_begin(req, sl);
                changed |= slot_post(req, sl) > 0;
            } else {
                slice_finish(req, sl);
                sl->active = 0;
                req->slices_done++;
            }
            changed = 1;
        }
    }
    if (req->slices_done == req->nslices && !comm->failed) {
        req->done = 1;
        req->status = RDT_SUCCESS;
        if (req->checked)
            rdt_coll_check_verdict(req);
    }
    return changed;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* @p req's transfer failed with @p st: unless the communicator failed already, its sentence
 * names the request, this rank and what the transport said (plus @p mismatch_why on a
 * mismatch), and it fails (rdt_exec_advance finishes the failure). */
static void req_transfer_failed(rdt_request_t *req, rdt_status_t st, const char *mismatch_why)
{
    rdt_comm_t *comm = req->comm;
    char name[160];

    if (comm->failed != RDT_SUCCESS)
        return;
    rdt_exec_request_name(req, name, sizeof(name));
    rdt_comm_set_error(comm, st, "%s on rank %d (host %s): %s%s", name, comm->rank, comm->host,
                       comm->tp->error[0] ? comm->tp->error : rdt_status_str(st),
                       st == RDT_ERR_MISMATCH ? mismatch_why : "");
    comm->failed = st;
}

static void p2p_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_request_t *req = x->arg;

    req->done = 1;
    req->status = st;
    if (st != RDT_SUCCESS)
        req_transfer_failed(req, st, " (the two ranks passed different counts or dtypes, or "
                                     "their sends and receives are not in the same order)");
}

static rdt_status_t p2p_start(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    rdt_xfer_t *x = &req->xfer;
    uint32_t *ctr = req->kind == RDT_REQ_SEND ? &comm->p2p_send[req->peer]
                                              : &comm->p2p_recv[req->peer];

    memset(x, 0, sizeof(*x));
    x->buf = req->kind == RDT_REQ_SEND ? (void *)req->sendbuf : req->recvbuf;
    x->len = req->count * rdt_dtype_size(req->dtype);
    x->peer = req->peer;
    /* point-to-point messages are numbered per pair, apart from collectives */
    x->tag = (1ULL << 63) | (*ctr)++;
    x->cb = p2p_done;
    x->arg = req;
    return req->kind == RDT_REQ_SEND ? comm->tp->ops->isend(comm->tp, x)
                                     : comm->tp->ops->irecv(comm->tp, x);
}

/* ------------------------------------------------------------------------------------------ */
/* One-shot collectives                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Bytes each rank contributes to @p req's exchange (all alike: broadcast and reduce, where
 * they would differ, keep their schedules; select.c). */
static size_t oneshot_contribution(const rdt_request_t *req)
{
    size_t bytes = req->count * rdt_dtype_size(req->dtype);

    switch (req->coll) {
    case RDT_COLL_REDUCE_SCATTER:
    case RDT_COLL_ALLTOALL: return bytes * (size_t)req->comm->nranks;
    case RDT_COLL_BARRIER: return 0;
    default: return bytes; /* allreduce, allgather */
    }
}

/* dst = src[0] + off (op) src[1] + off (op) ..., @p n elements from byte offset @p off of every
 * rank's source, in rank order (then the average): the one-shot, direct and staged reductions. */
static void reduce_ranks(const rdt_request_t *req, void *dst, const void *const *src, size_t off,
                         size_t n)
{
    const rdt_comm_t *comm = req->comm;
    rdt_op_t op = kernel_op(req->op);
    int r;

    rdt_reduce_local(dst, (const char *)src[0] + off, (const char *)src[1] + off, n, req->dtype,
                     op);
    for (r = 2; r < comm->nranks; r++)
        rdt_reduce_local(dst, dst, (const char *)src[r] + off, n, req->dtype, op);
    if (req->op == RDT_AVG)
        rdt_reduce_scale_avg(dst, n, req->dtype, comm->nranks);
}

/* Every contribution is visible: this rank's result. */
static rdt_status_t oneshot_finish(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    const void *const *v = comm->share_views;
    size_t bytes = req->count * rdt_dtype_size(req->dtype);
    unsigned char *out = req->recvbuf;
    int r, me = comm->rank;

    for (r = 0; r < comm->nranks; r++) /* the tags agree, so must the sizes */
        if (comm->share_lens[r] != oneshot_contribution(req))
            return rdt_comm_set_error(comm, RDT_ERR_MISMATCH, "rank %d (host %s) contributed %zu "
                                      "bytes to a one-shot exchange, rank %d expected %zu", r,
                                      comm->hosts + (size_t)r * RDT_HOST_MAX,
                                      comm->share_lens[r], me, oneshot_contribution(req));
    switch (req->coll) {
    case RDT_COLL_ALLREDUCE: reduce_ranks(req, out, v, 0, req->count); break;
    case RDT_COLL_REDUCE_SCATTER: reduce_ranks(req, out, v, (size_t)me * bytes, req->count); break;
    case RDT_COLL_ALLGATHER:
        for (r = 0; r < comm->nranks; r++)
            memcpy(out + (size_t)r * bytes, v[r], bytes);
        break;
    case RDT_COLL_ALLTOALL:
        for (r = 0; r < comm->nranks; r++)
            memcpy(out + (size_t)r * bytes, (const char *)v[r] + (size_t)me * bytes, bytes);
        break;
    default: break; /* barrier: that everyone arrived was the point */
    }
    return RDT_SUCCESS;
}

static void oneshot_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_request_t *req = x->arg;
    rdt_comm_t *comm = req->comm;

    if (st == RDT_SUCCESS) {
        st = oneshot_finish(req); /* inside the callback: the views are valid until it returns */
        if (st != RDT_SUCCESS && comm->failed == RDT_SUCCESS)
            comm->failed = st; /* oneshot_finish said why */
    } else {
        req_transfer_failed(req, st, " (the ranks called different collectives, or passed "
                                     "different counts, dtypes, operations or roots)");
    }
    req->done = 1;
    req->status = st;
    if (st == RDT_SUCCESS && req->checked)
        rdt_coll_check_verdict(req);
}

static void oneshot_start(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    rdt_xfer_t *x = &req->xfer;
    rdt_status_t st;

    memset(x, 0, sizeof(*x));
    x->len = oneshot_contribution(req);
    x->buf = x->len ? (void *)req->sendbuf : NULL;
    if (x->len > comm->share_max) /* an allreduce above RDT_SHM_ONESHOT (select.c) */
        comm->oneshot_ar_calls++;
    x->peer = -1;
    x->tag = req->tag_hi;
    x->cb = oneshot_done;
    x->arg = req;
    st = comm->tp->ops->ishare(comm->tp, x, comm->share_views, comm->share_lens);
    if (st != RDT_SUCCESS)
        oneshot_done(x, st);
}

/* ------------------------------------------------------------------------------------------ */
/* Direct collectives                                                                           */
/* ------------------------------------------------------------------------------------------ */

enum {
    RDT_DIRECT_OFFER = 1,
    RDT_DIRECT_RUN,
    RDT_DIRECT_END,
    RDT_DIRECT_FALLBACK,
    RDT_DIRECT_STAGED,      /* a staged exchange is outstanding */
    RDT_DIRECT_STAGED_READY /* it completed: its views are to be used, then the next posted */
};

#define DIRECT_ALIGN ((size_t)4096) /* slice boundaries: no two ranks write one line */
/* the exchanges' tags differ from the one-shot exchange's of the same call */
#define DIRECT_TAG_OFFER 0x0ffe700000000000ULL
#define DIRECT_TAG_END 0x0e7d000000000000ULL
#define DIRECT_TAG_STAGED 0x057a000000000000ULL /* ^ the exchange's number in the call */

static rdt_status_t sched_start(rdt_request_t *req);
_Static_assert(sizeof(rdt_direct_offer_t) == 72, "the offer's size is documented");

/* RDT_SHM_STAGED_CACHED in bytes per rank: auto is 3/4 of this CPU's L2 (0 where sysconf does
 * not know it). Each rank decides for itself and says so in its offer (RDT_OFFER_CACHED), so
 * ranks on cores with different caches still choose alike. */
static size_t staged_cached_budget(const rdt_comm_t *comm)
{
    long l2;

    if (comm->cfg.shm_staged_cached != RDT_CONFIG_SIZE_AUTO)
        return comm->cfg.shm_staged_cached;
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? (size_t)l2 / 4 * 3 : 0;
}

/* Which of this rank's buffers the others touch, and whether they are all mappable; whether its
 * call is in place, and whether such a vector fits its RDT_SHM_STAGED_CACHED. */
static void direct_offer_make(const rdt_request_t *req, rdt_direct_offer_t *o)
{
    const rdt_comm_t *comm = req->comm;
    size_t in, out;
    int need_src, need_dst, ok = 1;

    rdt_coll_extents(req->coll, req->count, rdt_dtype_size(req->dtype), comm->nranks, &in, &out);
    memset(o, 0, sizeof(*o));
    need_src = req->coll != RDT_COLL_BROADCAST || comm->rank == req->root;
    need_dst = req->coll == RDT_COLL_ALLREDUCE ||
               (req->coll == RDT_COLL_REDUCE && comm->rank == req->root);
    if (need_src)
        ok &= rdt_mapped_find(req->sendbuf, in, &o->src);
    if (need_dst)
        ok &= rdt_mapped_find(req->recvbuf, out, &o->dst);
    if (req->coll == RDT_COLL_ALLTOALL && req->sendbuf == req->recvbuf)
        ok = 0;
    o->ok = (uint32_t)ok;
    o->flags = 0;
    if (req->sendbuf == req->recvbuf) {
        size_t budget = staged_cached_budget(comm);
        o->flags = RDT_OFFER_IN_PLACE;
        if (req->coll == RDT_COLL_ALLREDUCE && in <= budget)
            o->flags |= RDT_OFFER_CACHED;
    }
}

/* The end of the call: every rank is done with every buffer. */
static void direct_end_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_request_t *req = x->arg;

    if (st != RDT_SUCCESS)
        req_transfer_failed(req, st, " (the ranks called different collectives, or passed "
                                     "different counts, dtypes, operations or roots)");
    req->done = 1;
    req->status = st;
}

/* Staged allreduce: bytes of the slice each rank reduces per chunk (a chunk is one slice per
 * rank, in rank order), a multiple of 64 so slices start on cache lines; 0: too many ranks. */
static size_t staged_slice_bytes(const rdt_comm_t *comm)
{
    size_t cap = comm->share_cap < RDT_STAGED_CHUNK ? comm->share_cap : RDT_STAGED_CHUNK;
    return cap / (size_t)comm->nranks / 64 * 64;
}

static int oversubscribed(rdt_comm_t *comm);

/* RDT_SHM_STAGED, or 1 (every allreduce the offers reach, from RDT_SHM_DIRECT bytes per rank)
 * when this host has more of the communicator's ranks than CPUs: each message of a schedule then
 * costs the waiting rank a yield and a context switch, which the staged exchanges mostly do
 * not, and the one-shot exchange has every rank reduce every rank's vector on shared cores.
 * Measured on 2 cores, three alternating rounds, GB/s out of place / in place, the schedules and
 * one-shot exchanges against staged: 4 ranks, 32 KiB per rank 1.09-1.30 / 1.16-1.29 against
 * 1.41-1.46 / 1.34-1.36, 256 KiB 1.46-1.99 / 1.99-2.21 against 1.85-2.98 / 3.14-3.33, 512 KiB
 * 1.20-1.57 / 1.42-1.74 against 2.47-2.65 / 2.90-3.09, 1 MiB 1.97-2.10 / 2.02-2.31 against
 * 2.52-2.69 / 2.59-2.84; 3 ranks, 32 KiB to 2 MiB per rank, staged 0.99-1.39x. Without
 * oversubscription the schedules keep the smaller sizes (2 ranks at 4 MiB, 8 MiB in total, the
 * schedule 4% faster out of place and 19% in place). */
static size_t staged_threshold(rdt_comm_t *comm)
{
    size_t t = comm->cfg.shm_staged;
    return t && oversubscribed(comm) ? 1 : t;
}

/* An allreduce every rank calls in place, not oversubscribed, below twice the staged threshold
 * runs its schedule in one slice: instead of staged from the threshold, and instead of the
 * usual slices below it (a choice every rank makes alike, from the offers' flags). Measured on 2 ranks, 8 MiB per rank in place, three alternating rounds: the ring in one
 * slice 4.13-4.91 GB/s, in 4 MiB slices 4.29-4.68, in the usual 1 MiB slices 3.21-3.65, staged
 * 3.55-3.93; then against the build before, four rounds: 4.00-4.43 against 3.46-3.80. Out of
 * place, and in place from 16 MiB, staged stays ahead. In place the ring's own vector is its
 * output, so each kernel copy lands in lines the rank is about to reduce into or return; staged
 * still copies each chunk into and out of the share buffers. */
static int staged_inplace_schedule(rdt_request_t *req, int all_inplace)
{
    rdt_comm_t *comm = req->comm;
    size_t t = staged_threshold(comm);

    return all_inplace && t > 1 && !oversubscribed(comm) && !comm->cfg.chunk &&
           req->coll == RDT_COLL_ALLREDUCE &&
           req->count * rdt_dtype_size(req->dtype) * (size_t)comm->nranks < 2 * t;
}

/*
 * An allreduce every rank calls in place with a vector that fits each rank's
 * RDT_SHM_STAGED_CACHED (all_cached: every offer says so), too large for the one-shot exchange,
 * not oversubscribed: staged below the threshold. Such a vector sits in its rank's L2, freshly
 * written, and each kernel copy of the schedule pulls those lines from the other core slowly;
 * the staged pass moves the same bytes with the CPU's own loads and no page pinning. Measured on
 * 2 ranks in place, six alternating rounds, median GB/s, the schedule (the one-shot exchange at
 * 896 KiB) against staged: 896 KiB 3.56 / 3.43, 1 MiB 3.45 / 4.24, 1152 KiB 3.33 / 4.04, 1280
 * KiB 3.48 / 3.91, 1536 KiB 3.70-4.00 / 3.95-4.11; from 1792 KiB, where the vectors leave a 2
 * MiB L2, the schedule in one slice is ahead (4.46 / 3.84 there, 5.38 / 3.98 at 4 MiB), and out
 * of place the schedule is ahead throughout (its input is never rewritten).
 */
static int staged_cached(rdt_request_t *req, int all_inplace, int all_cached)
{
    rdt_comm_t *comm = req->comm;

    return all_inplace && all_cached && req->coll == RDT_COLL_ALLREDUCE &&
           comm->cfg.shm_staged && !oversubscribed(comm) &&
           !rdt_select_oneshot_ar(comm, req->count * rdt_dtype_size(req->dtype));
}

/* Chunks of @p req staged, or 0 if it does not run staged (a choice every rank makes alike:
 * from the offers, the configuration and the call); @p cached: staged_cached said yes, so
 * below the threshold too. */
static size_t staged_chunks(rdt_request_t *req, int cached)
{
    rdt_comm_t *comm = req->comm;
    size_t es = rdt_dtype_size(req->dtype), slice = staged_slice_bytes(comm) / es;

    if (req->coll != RDT_COLL_ALLREDUCE || !comm->cfg.shm_staged || !slice ||
        (!cached && req->count * es * (size_t)comm->nranks < staged_threshold(comm)))
        return 0;
    req->stg_nchunks = (req->count + slice * (size_t)comm->nranks - 1) /
                       (slice * (size_t)comm->nranks);
    return req->stg_nchunks;
}

static void direct_offers_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_request_t *req = x->arg;
    rdt_comm_t *comm = req->comm;
    int r, all = 1, all_inplace = 1, all_cached = 1, cached, one_slice;

    if (st == RDT_SUCCESS) {
        for (r = 0; r < comm->nranks && st == RDT_SUCCESS; r++) {
            if (comm->share_lens[r] != sizeof(rdt_direct_offer_t)) {
                st = rdt_comm_set_error(comm, RDT_ERR_MISMATCH, "rank %d (host %s) offered %zu "
                                        "bytes for a direct collective, rank %d expected %zu",
                                        r, comm->hosts + (size_t)r * RDT_HOST_MAX,
                                        comm->share_lens[r], comm->rank,
                                        sizeof(rdt_direct_offer_t));
                comm->failed = st;
                break;
            }
            memcpy(&comm->direct_offers[r], comm->share_views[r], sizeof(rdt_direct_offer_t));
            all &= comm->direct_offers[r].ok == 1;
            all_inplace &= (comm->direct_offers[r].flags & RDT_OFFER_IN_PLACE) != 0;
            all_cached &= (comm->direct_offers[r].flags & RDT_OFFER_CACHED) != 0;
        }
    } else {
        req_transfer_failed(req, st, " (the ranks called different collectives, or passed "
                                     "different counts, dtypes, operations or roots)");
    }
    if (st != RDT_SUCCESS) {
        req->done = 1;
        req->status = st;
        return;
    }
    req->direct = all ? RDT_DIRECT_RUN : RDT_DIRECT_FALLBACK; /* coll_advance goes on */
    comm->direct_calls += (unsigned)all;
    cached = !all && staged_cached(req, all_inplace, all_cached);
    one_slice = !all && !cached && staged_inplace_schedule(req, all_inplace);
    if (!all && !one_slice && staged_chunks(req, cached)) {
        req->direct = RDT_DIRECT_STAGED_READY; /* nothing received yet: post chunk 0 */
        comm->staged_calls++;
        req->stg_chunk = 0;
        req->stg_phase = -1;
        if (!(comm->direct_logged & 4u)) {
            comm->direct_logged |= 4u;
            rdt_info("exec", "%s of %zu elements: staged (not every rank's buffers are "
                     "rdt_mem_alloc memory; chunks of %zu bytes through shared memory; logged "
                     "once)", rdt_coll_name(req->coll), req->count,
                     staged_slice_bytes(comm) * (size_t)comm->nranks);
        }
        return;
    }
    if (one_slice && req->count &&
        !rdt_select_oneshot_ar(comm, req->count * rdt_dtype_size(req->dtype))) {
        req->slice_len = req->count; /* the schedule, in one slice (staged_inplace_schedule) */
        req->nslices = 1;
        comm->one_slice_calls++;
    }
    if (!(comm->direct_logged & (1u << all))) {
        comm->direct_logged |= 1u << all;
        if (all)
            rdt_info("exec", "%s of %zu elements: direct (every rank's buffers are "
                     "rdt_mem_alloc memory; logged once)", rdt_coll_name(req->coll), req->count);
        else
            for (r = 0; r < comm->nranks; r++)
                if (!comm->direct_offers[r].ok) {
                    rdt_info("exec", "%s of %zu elements: rank %d's buffers are not rdt_mem_alloc "
                             "memory, so it runs its schedule (logged once)",
                             rdt_coll_name(req->coll), req->count, r);
                    break;
                }
    }
}

/* Post this rank's part of the exchange that begins (@p end 0) or ends a direct call. */
static void direct_exchange(rdt_request_t *req, int end)
{
    rdt_comm_t *comm = req->comm;
    rdt_xfer_t *x = &req->xfer;
    rdt_direct_offer_t o;
    rdt_status_t st;

    memset(x, 0, sizeof(*x));
    if (!end) {
        direct_offer_make(req, &o);
        x->buf = &o;
        x->len = sizeof(o);
    }
    x->peer = -1;
    x->tag = req->tag_hi ^ (end ? DIRECT_TAG_END : DIRECT_TAG_OFFER);
    x->cb = end ? direct_end_done : direct_offers_done;
    x->arg = req;
    req->direct = end ? RDT_DIRECT_END : RDT_DIRECT_OFFER;
    st = comm->tp->ops->ishare(comm->tp, x, comm->share_views, comm->share_lens);
    if (st != RDT_SUCCESS)
        x->cb(x, st);
}

/* Rank @p r's buffer of an offer, as an address here. */
static unsigned char *direct_addr(rdt_request_t *req, int r, const rdt_mapped_desc_t *d,
                                  const void *own, const char *which)
{
    rdt_comm_t *comm = req->comm;
    char err[300];
    unsigned char *p;

    if (r == comm->rank)
        return (unsigned char *)own;
    if (!d->serial)
        return NULL; /* a buffer this collective does not use there */
    p = rdt_mapped_peer(&comm->mapped, r, d, err, sizeof(err));
    if (!p) {
        char name[160];
        /* it offered the buffer, then died before it was mapped here */
        int gone = kill((pid_t)d->pid, 0) != 0 && errno == ESRCH;
        rdt_status_t st = gone ? RDT_ERR_PEER_FAILED : RDT_ERR_SYSTEM;
        rdt_exec_request_name(req, name, sizeof(name));
        if (gone)
            rdt_comm_set_error(comm, st, "%s on rank %d (host %s): rank %d (host %s) died: its "
                               "process %d is gone", name, comm->rank, comm->host, r,
                               comm->hosts + (size_t)r * RDT_HOST_MAX, (int)d->pid);
        else
            rdt_comm_set_error(comm, st, "%s on rank %d (host %s): cannot map the %s buffer of "
                               "rank %d (host %s): %s", name, comm->rank, comm->host, which, r,
                               comm->hosts + (size_t)r * RDT_HOST_MAX, err);
        comm->failed = st;
    }
    return p;
}

static void direct_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}

/* Bytes of output (over all ranks' receive buffers) from which direct copies stream: more than
 * half a typical last-level cache (32 MiB on these machines; sysconf's figure there is wrong,
 * 320 MiB, so it is not asked). Measured at 2 ranks, 16-64 MiB out of place: 5-15% faster than
 * memcpy's stores (docs/benchmarks/2026-11-28-direct-shm.md). */
#define DIRECT_STREAM_MIN ((size_t)16 << 20)

/* How a direct or staged allreduce copies into the receive buffers: out of place, with more
 * output than the last-level cache holds, their lines are cold, and streaming stores skip
 * reading each before writing it. */
static void (*output_copy(const rdt_request_t *req))(void *, const void *, size_t)
{
    int stream = req->sendbuf != req->recvbuf &&
                 req->count * rdt_dtype_size(req->dtype) * (size_t)req->comm->nranks >=
                     DIRECT_STREAM_MIN;
    return stream ? rdt_copy_stream : direct_copy;
}

/* Every buffer is here: this rank's share of the work. */
static void direct_run(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    unsigned char **src = comm->direct_src, **dst = comm->direct_dst;
    size_t es = rdt_dtype_size(req->dtype), bytes = req->count * es;
    int n = comm->nranks, me = comm->rank, r;

    if (rdt_mapped_call(&comm->mapped) != 0) {
        rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "out of memory for a direct collective");
        comm->failed = RDT_ERR_NO_MEMORY;
        return;
    }
    for (r = 0; r < n && !comm->failed; r++) {
        src[r] = direct_addr(req, r, &comm->direct_offers[r].src, req->sendbuf, "send");
        dst[r] = direct_addr(req, r, &comm->direct_offers[r].dst, req->recvbuf, "receive");
    }
    if (comm->failed)
        return;
    switch (req->coll) {
    case RDT_COLL_ALLREDUCE:
    case RDT_COLL_REDUCE: {
        /* slice me: [lo, hi) elements, boundaries on DIRECT_ALIGN bytes */
        size_t unit = DIRECT_ALIGN / es, per = (req->count + (size_t)n - 1) / (size_t)n;
        size_t lo, hi, c, step = RDT_DIRECT_CHUNK / es;
        per = (per + unit - 1) / unit * unit;
        lo = (size_t)me * per < req->count ? (size_t)me * per : req->count;
        hi = lo + per < req->count ? lo + per : req->count;
        void (*copy)(void *, const void *, size_t) = output_copy(req);
        for (c = lo; c < hi; c += step) {
            size_t m = hi - c < step ? hi - c : step;
            reduce_ranks(req, comm->direct_tmp, (const void *const *)src, c * es, m);
            if (req->coll == RDT_COLL_REDUCE)
                copy(dst[req->root] + c * es, comm->direct_tmp, m * es);
            else
                for (r = 0; r < n; r++)
                    copy(dst[r] + c * es, comm->direct_tmp, m * es);
        }
        break;
    }
    case RDT_COLL_REDUCE_SCATTER: {
        size_t c, step = RDT_DIRECT_CHUNK / es;
        for (c = 0; c < req->count; c += step) {
            size_t m = req->count - c < step ? req->count - c : step;
            reduce_ranks(req, comm->direct_tmp, (const void *const *)src,
                         (size_t)me * bytes + c * es, m);
            memcpy(dst[me] + c * es, comm->direct_tmp, m * es);
        }
        break;
    }
    case RDT_COLL_ALLGATHER:
        for (r = 0; r < n; r++) /* in place, this rank's block is there already */
            if (dst[me] + (size_t)r * bytes != src[r])
                memcpy(dst[me] + (size_t)r * bytes, src[r], bytes);
        break;
    case RDT_COLL_BROADCAST:
        if (dst[me] != src[req->root])
            memcpy(dst[me], src[req->root], bytes);
        break;
    case RDT_COLL_ALLTOALL:
        for (r = 0; r < n; r++)
            memcpy(dst[me] + (size_t)r * bytes, src[r] + (size_t)me * bytes, bytes);
        break;
    default: break;
    }
}

/*
 * Staged allreduce: buffers that cannot be mapped (malloc'd) still make one pass through memory
 * per rank, as in direct, by meeting in the share areas instead of the buffers. Chunk i is one
 * slice of S elements per rank, in rank order. Exchange 2i: each rank contributes its input's
 * chunk, built in place in its next share buffer (share_buf) with every slice but its own; when
 * all have, each reduces its own slice, in rank order, from the others' copies and its own
 * input, straight into its next share buffer. Exchange 2i + 1: each contributes that reduced
 * slice; when all have, each copies every rank's slice into its receive buffer. (A transport
 * without share_buf gets the whole chunk copied at the post and the slice from direct_tmp.) The
 * chunk and its copies stay in cache (RDT_STAGED_CHUNK), so the memory traffic is the direct
 * pass's; what it costs over direct is the copies through the share buffers, the peers' slices
 * crossing between cores, and two exchanges per chunk.
 * The share areas' rule (a rank posts exchange s + 1 only after it is done with the views of s)
 * makes every read safe; in place works as the input's chunk is copied before the output's is
 * written. Nobody touches another rank's buffers, so no end exchange is needed.
 */

/* Chunk @p i: its first element and length (*n_p), and rank @p r's slice of it, [*lo_p, *hi_p)
 * relative to the chunk. */
static size_t staged_geometry(const rdt_request_t *req, size_t i, int r, size_t *n_p,
                              size_t *lo_p, size_t *hi_p)
{
    const rdt_comm_t *comm = req->comm;
    size_t S = staged_slice_bytes(comm) / rdt_dtype_size(req->dtype);
    size_t off = i * S * (size_t)comm->nranks, n = req->count - off, lo;

    if (n > S * (size_t)comm->nranks)
        n = S * (size_t)comm->nranks;
    lo = (size_t)r * S < n ? (size_t)r * S : n;
    *n_p = n;
    *lo_p = lo;
    *hi_p = lo + S < n ? lo + S : n;
    return off;
}

/* This rank's share buffer of the next exchange (built in place, valid once the exchange
 * before completed), or NULL where the transport does not name it. */
static unsigned char *staged_share_buf(rdt_comm_t *comm)
{
    return comm->tp->ops->share_buf ? comm->tp->ops->share_buf(comm->tp) : NULL;
}

/* Where this rank reduces its slice of a chunk: its next share buffer, else direct_tmp (copied
 * when posted). */
static unsigned char *staged_slice_buf(rdt_comm_t *comm)
{
    unsigned char *b = staged_share_buf(comm);
    return b ? b : comm->direct_tmp;
}

static void staged_done(rdt_xfer_t *x, rdt_status_t st)
{
    rdt_request_t *req = x->arg;

    if (st != RDT_SUCCESS) {
        req_transfer_failed(req, st, " (the ranks called different collectives, or passed "
                                     "different counts, dtypes, operations or roots)");
        req->done = 1;
        req->status = st;
        return;
    }
    req->direct = RDT_DIRECT_STAGED_READY;
}

static void staged_post(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    rdt_xfer_t *x = &req->xfer;
    size_t es = rdt_dtype_size(req->dtype), n, lo, hi;
    size_t off = staged_geometry(req, req->stg_chunk, comm->rank, &n, &lo, &hi);
    rdt_status_t st;

    memset(x, 0, sizeof(*x));
    if (req->stg_phase == 0) {
        const unsigned char *in = (const unsigned char *)req->sendbuf + off * es;
        unsigned char *b = staged_share_buf(comm);
        if (b) { /* built in place, the others' slices only: this rank reads its own from in */
            memcpy(b, in, lo * es);
            memcpy(b + hi * es, in + hi * es, (n - hi) * es);
        }
        x->buf = b ? b : (void *)in;
        x->len = n * es;
        req->stg_own = b != NULL;
    } else {
        x->buf = staged_slice_buf(comm);
        x->len = (hi - lo) * es;
    }
    x->peer = -1;
    x->tag = req->tag_hi ^ DIRECT_TAG_STAGED ^
             (uint32_t)(2 * req->stg_chunk + (size_t)req->stg_phase);
    x->cb = staged_done;
    x->arg = req;
    req->direct = RDT_DIRECT_STAGED;
    st = comm->tp->ops->ishare(comm->tp, x, comm->share_views, comm->share_lens);
    if (st != RDT_SUCCESS)
        staged_done(x, st);
}

/* The exchange of (chunk, phase) completed (or none was posted yet: phase -1): use what it
 * shows, then post the next one, or finish. */
static void staged_step(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    const void *const *v = comm->share_views;
    size_t es = rdt_dtype_size(req->dtype), n, lo, hi, off;
    int r, me = comm->rank;

    if (req->stg_phase >= 0) {
        for (r = 0; r < comm->nranks; r++) { /* the tags agree, so must the sizes */
            off = staged_geometry(req, req->stg_chunk, r, &n, &lo, &hi);
            size_t want = (req->stg_phase == 0 ? n : hi - lo) * es;
            if (comm->share_lens[r] != want) {
                rdt_status_t st = rdt_comm_set_error(
                    comm, RDT_ERR_MISMATCH, "rank %d (host %s) contributed %zu bytes to "
                    "exchange %zu of a staged allreduce, rank %d expected %zu", r,
                    comm->hosts + (size_t)r * RDT_HOST_MAX, comm->share_lens[r],
                    2 * req->stg_chunk + (size_t)req->stg_phase, me, want);
                comm->failed = st;
                req->done = 1;
                req->status = st;
                return;
            }
        }
        if (req->stg_phase == 0) {
            const void **src = (const void **)comm->direct_src;
            off = staged_geometry(req, req->stg_chunk, me, &n, &lo, &hi);
            for (r = 0; r < comm->nranks; r++)
                src[r] = v[r];
            if (req->stg_own) /* this rank's slice was not copied (staged_post) */
                src[me] = (const unsigned char *)req->sendbuf + off * es;
            if (hi > lo) /* straight into the next exchange's buffer where there is one */
                reduce_ranks(req, staged_slice_buf(comm), src, lo * es, hi - lo);
            req->stg_phase = 1;
        } else {
            void (*copy)(void *, const void *, size_t) = output_copy(req);
            for (r = 0; r < comm->nranks; r++) {
                off = staged_geometry(req, req->stg_chunk, r, &n, &lo, &hi);
                copy((unsigned char *)req->recvbuf + (off + lo) * es, v[r], (hi - lo) * es);
            }
            req->stg_chunk++;
            req->stg_phase = 0;
        }
    } else {
        req->stg_phase = 0;
    }
    if (req->stg_chunk == req->stg_nchunks) {
        req->xfer.peer = -1;
        req->done = 1;
        req->status = RDT_SUCCESS;
        return;
    }
    staged_post(req);
}

/* An allreduce the offers turned away from direct (someone's buffers are malloc'd) and that is
 * too small to run staged runs as a one-shot exchange up to RDT_SHM_ONESHOT_ALLREDUCE bytes per
 * rank (select.c says why). A choice every rank makes alike (the offers, the configuration and
 * the call). */
static int oneshot_after_offers(const rdt_request_t *req)
{
    return req->coll == RDT_COLL_ALLREDUCE &&
           rdt_select_oneshot_ar(req->comm, req->count * rdt_dtype_size(req->dtype));
}

/* The direct phases that move without waiting (coll_advance). Returns nonzero if anything
 * changed; leaves req->direct 0 when the schedule (or, req->oneshot, the exchange) is to run. */
static int direct_advance(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    rdt_status_t st;

    if (req->direct == RDT_DIRECT_RUN) {
        direct_run(req);
        if (!comm->failed)
            direct_exchange(req, 1);
        return 1;
    }
    if (req->direct == RDT_DIRECT_STAGED_READY) {
        staged_step(req);
        return 1;
    }
    if (req->direct != RDT_DIRECT_FALLBACK)
        return 0; /* an exchange is outstanding: its callback moves on */
    req->direct = 0;
    if (oneshot_after_offers(req)) {
        req->oneshot = 1;
        oneshot_start(req);
        return 1;
    }
    st = sched_start(req);
    if (st != RDT_SUCCESS && !comm->failed) {
        char name[160];
        rdt_exec_request_name(req, name, sizeof(name));
        rdt_comm_set_error(comm, st, "%s on rank %d: %s", name, comm->rank, rdt_status_str(st));
        comm->failed = st;
    }
    return 1;
}

/* Keep the user's buffers registered for the whole call when the transport pins memory for
 * zero-copy (one registration per buffer and call instead of one per message). */
static void req_hold(rdt_request_t *req)
{
    const rdt_transport_ops_t *ops = req->comm->tp->ops;
    size_t in, out;

    if (!ops->mem_hold)
        return;
    rdt_coll_extents(req->coll, req->count, rdt_dtype_size(req->dtype), req->comm->nranks, &in,
                     &out);
    req->release = ops->mem_release;
    if (req->sendbuf)
        req->hold[0] = ops->mem_hold(req->comm->tp, req->sendbuf, in);
    if (req->recvbuf && req->recvbuf != req->sendbuf)
        req->hold[1] = ops->mem_hold(req->comm->tp, req->recvbuf, out);
}

/* Idempotent; a transfer still in flight keeps its own reference. */
/* The monotonic clock at its tick's resolution (a few ms), a third of the price: enough for
 * deadlines in seconds (one may fire a tick early), read once per operation. Same time base as
 * rdt_now(). */
static double now_coarse(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void req_unhold(rdt_request_t *req)
{
    int i;
    for (i = 0; i < 2; i++)
        if (req->hold[i]) {
            req->release(req->hold[i]);
            req->hold[i] = NULL;
        }
}

rdt_status_t rdt_exec_start(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    rdt_status_t st;
    double now;

    req->started = 1;
    now = now_coarse();
    req->deadline = now + req->timeout_s;
    req->warn_at = comm->cfg.stall_warn > 0 ? now + comm->cfg.stall_warn * req->timeout_s : 0;
    if (req->kind != RDT_REQ_COLL) {
        st = p2p_start(req);
        if (st != RDT_SUCCESS)
            p2p_done(&req->xfer, st);
        return RDT_SUCCESS;
    }
    if (req->oneshot) {
        oneshot_start(req);
        return RDT_SUCCESS;
    }
    if (req->direct) {
        direct_exchange(req, 0);
        return RDT_SUCCESS;
    }
    return sched_start(req);
}

/* The schedule's part of starting a request. */
static rdt_status_t sched_start(rdt_request_t *req)
{
    rdt_comm_t *comm = req->comm;
    const rdt_plan_t *p;
    rdt_status_t st;
    uint32_t i;

    if (!req->plan)
        return RDT_SUCCESS; /* count 0 under RDT_CHECK: nothing to run */
    st = slots_prepare(comm, req);
    if (st != RDT_SUCCESS)
        return st;
    if (!req->checked) /* the check's 32-byte messages go eager: no need to pin its buffers */
        req_hold(req);
    /* reset the pair counters of the peers this schedule talks to */
    p = req->plan;
    for (i = 0; i < p->sched->nops; i++) {
        const rdt_sched_op_t *o = &p->sched->ops[i];
        if (op_is_msg(o)) {
            comm->send_seq[o->peer] = 0;
            comm->recv_seq[o->peer] = 0;
        }
    }
    return RDT_SUCCESS;
}

static void queue_remove(rdt_comm_t *comm, rdt_request_t *req)
{
    rdt_request_t **pp = &comm->head, *prev = NULL;

    while (*pp && *pp != req) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = req->next;
    if (comm->tail == req)
        comm->tail = prev;
    req->next = NULL;
    req_unhold(req);
}

/* Finish a failure recorded in a callback: abort the transport (peers see the connections close),
 * fail every queued request. */
void rdt_comm_fail(rdt_comm_t *comm, rdt_status_t st)
{
    rdt_request_t *r;

    if (comm->failed == RDT_SUCCESS)
        comm->failed = st;
    if (comm->tp && !comm->tp_aborted) {
        comm->tp_aborted = 1;
        rdt_warn("comm", "%s", comm->error);
        /* every other rank hears why at once, even those never connected to (connections are
         * lazy) or blocked behind another rank: see ctl.h */
        rdt_ctl_gave_up(comm);
        /* what the transport's failure notices say when no transfer of its own failed first
         * (a timeout, a mismatch found by RDT_CHECK, an abort) */
        snprintf(comm->tp->error, sizeof(comm->tp->error), "%.*s",
                 (int)sizeof(comm->tp->error) - 1, comm->error);
        comm->tp->ops->abort(comm->tp); /* from the driving thread: completes them all */
    }
    while ((r = comm->head) != NULL) {
        r->done = 1;
        r->status = comm->failed;
        queue_remove(comm, r);
        if (r->checked) /* internal: nobody waits for it */
            rdt_exec_request_free(r);
    }
    if (comm->slots) {
        int i;
        for (i = 0; i < comm->nslots; i++)
            comm->slots[i].active = 0;
    }
}

void rdt_exec_advance(rdt_comm_t *comm)
{
    int changed;

    do {
        rdt_request_t *r;
        changed = 0;
        if (comm->failed)
            break;
        comm->tp->ops->progress(comm->tp, 0);
        /* the head collective, or the run of point-to-point requests at the head */
        for (r = comm->head; r && !comm->failed; r = r->next) {
            if (r->kind == RDT_REQ_COLL && r != comm->head)
                break;
            if (!r->started) {
                rdt_status_t st = rdt_exec_start(r);
                changed = 1;
                if (st != RDT_SUCCESS) {
                    if (!comm->error[0]) {
                        char name[160];
                        rdt_exec_request_name(r, name, sizeof(name));
                        rdt_comm_set_error(comm, st, "%s on rank %d: %s", name, comm->rank,
                                           rdt_status_str(st));
                    }
                    comm->failed = st;
                    break;
                }
            }
            if (r->kind == RDT_REQ_COLL) {
                changed |= coll_advance(r);
                break;
            }
        }
        /* retire completed requests from the queue (they stay allocated for the user) */
        for (r = comm->head; r;) {
            rdt_request_t *next = r->next;
            if (r->done) {
                queue_remove(comm, r);
                if (r->checked) /* internal: nobody waits for it */
                    rdt_exec_request_free(r);
                changed = 1;
            }
            r = next;
        }
        comm->advances += (unsigned)changed;
    } while (changed);
    if (comm->failed)
        rdt_comm_fail(comm, comm->failed);
}

/* One sentence saying what @p req waits for, for timeouts, stall warnings and failures.
 * Returns how many transfers it names (0: "nothing posted yet"). */
static int describe_wait(rdt_comm_t *comm, rdt_request_t *req, char *buf, size_t len)
{
    size_t n = 0;
    int i, shown = 0;
    uint32_t j;

    if (req->kind != RDT_REQ_COLL) {
        snprintf(buf, len, "%s %s rank %d (host %s)", req->kind == RDT_REQ_SEND ? "send" : "recv",
                 req->kind == RDT_REQ_SEND ? "to" : "from", req->peer,
                 comm->hosts + (size_t)req->peer * RDT_HOST_MAX);
        return 1;
    }
    if (req->oneshot || req->direct) {
        int r = req->xfer.peer;
        if (r < 0)
            snprintf(buf, len, "nothing (the exchange is complete)");
        else
            snprintf(buf, len, "the contribution of rank %d (host %s) to the %s", r,
                     comm->hosts + (size_t)r * RDT_HOST_MAX,
                     req->oneshot                       ? "one-shot exchange"
                     : req->direct == RDT_DIRECT_OFFER ? "exchange that begins a direct call"
                     : req->direct == RDT_DIRECT_STAGED
                         ? "exchange of a staged allreduce"
                         : "exchange that ends a direct call");
        if (r >= 0 && req->direct == RDT_DIRECT_STAGED) {
            size_t k = strlen(buf);
            snprintf(buf + k, len - k, " (chunk %zu of %zu, %s)", req->stg_chunk + 1,
                     req->stg_nchunks, req->stg_phase ? "its reduced slice" : "its input");
        }
        return r >= 0;
    }
    buf[0] = '\0';
    for (i = 0; i < comm->nslots && req->plan; i++) {
        rdt_slot_t *sl = &comm->slots[i];
        if (!sl->active)
            continue;
        for (j = 0; j < sl->nmsgs && shown < 6; j++) {
            rdt_msg_t *m = &sl->msgs[j];
            const rdt_sched_op_t *o = &req->plan->sched->ops[m->op];
            int w;
            if (m->done)
                continue;
            w = snprintf(buf + n, len - n, "%s%s rank %d (host %s) in round %u of slice %zu",
                         shown ? ", " : "", op_is_send(o) ? "send to" : "recv from", o->peer,
                         comm->hosts + (size_t)o->peer * RDT_HOST_MAX, o->round, sl->slice);
            if (w < 0 || (size_t)w >= len - n)
                return shown + 1; /* cut short: what fits */
            n += (size_t)w;
            shown++;
        }
    }
    if (!shown)
        snprintf(buf, len, "nothing posted yet");
    return shown;
}

int rdt_exec_wait_state(rdt_comm_t *comm, int *peers, int max, char *text, size_t len)
{
    rdt_request_t *req = comm->head;
    char name[160], what[400];
    int n = 0, i, k;
    uint32_t j;

    text[0] = '\0';
    if (!req || !req->started)
        return 0;
    rdt_exec_request_name(req, name, sizeof(name));
    describe_wait(comm, req, what, sizeof(what));
    snprintf(text, len, "%s, waiting for: %s", name, what);
    if (req->kind != RDT_REQ_COLL)
        return max > 0 ? (peers[0] = req->peer, 1) : 0;
    if (req->oneshot || req->direct)
        return max > 0 && req->xfer.peer >= 0 ? (peers[0] = req->xfer.peer, 1) : 0;
    for (i = 0; i < comm->nslots && req->plan; i++) {
        rdt_slot_t *sl = &comm->slots[i];
        if (!sl->active)
            continue;
        for (j = 0; j < sl->nmsgs && n < max; j++) {
            int peer = req->plan->sched->ops[sl->msgs[j].op].peer;
            if (sl->msgs[j].done)
                continue;
            for (k = 0; k < n && peers[k] != peer; k++)
                ;
            if (k == n)
                peers[n++] = peer;
        }
    }
    return n;
}

void rdt_exec_request_name(const rdt_request_t *req, char *buf, size_t len)
{
    char what[128];

    if (req->kind != RDT_REQ_COLL) {
        snprintf(buf, len, "%s of %s x %zu %s rank %d", req->kind == RDT_REQ_SEND ? "send" : "recv",
                 rdt_dtype_name(req->dtype), req->count, req->kind == RDT_REQ_SEND ? "to" : "from",
                 req->peer);
    } else if (req->checked) {
        rdt_coll_fp_describe(req->fp, 0, what, sizeof(what));
        snprintf(buf, len, "RDT_CHECK exchange before collective #%u (%s)", req->seq, what);
    } else {
        snprintf(buf, len, "%s #%u (%s x %zu, %s)", rdt_coll_name(req->coll), req->seq,
                 rdt_dtype_name(req->dtype), req->count,
                 req->oneshot  ? "one-shot"
                 : req->direct ? "direct"
                 : req->plan   ? rdt_algo_name(req->plan->sched->algo)
                               : "nothing to move");
    }
}

/* After a timeout, how long to look for the rank at the end of the chain of waiting ranks
 * (ctl.h): a live rank answers within its polling period (at most 0.1 s in the transport's
 * sleep), a quarter of the timeout gives room for several tries, and the error still comes
 * well within timeout + 2 s. */
static double ctl_grace(double timeout_s)
{
    double g = timeout_s * 0.25;
    return g < 0.5 ? 0.5 : g > 1.0 ? 1.0 : g;
}

/* A rank answers the status channel once its current wait is this old (seconds). */
#define CTL_ANSWER_AFTER_S 0.02

/*
 * The clock side of polling, looked at every 16th poll and after each sleep (rdt_exec_wait), so
 * the fast path never reads it: turn an expired deadline of the head request into a failure, and
 * when it has waited RDT_STALL_WARN of its timeout, say once what it waits for.
 */
static void check_clock(rdt_comm_t *comm, rdt_request_t *head, double now)
{
    char name[160], what[600], msg[RDT_ERRMSG_LEN];

    if (now > head->deadline) {
        rdt_exec_request_name(head, name, sizeof(name));
        describe_wait(comm, head, what, sizeof(what));
        snprintf(msg, sizeof(msg), "%s timed out after %g s on rank %d (host %s) waiting for: %s",
                 name, head->timeout_s, comm->rank, comm->host, what);
        rdt_ctl_blame(comm, ctl_grace(head->timeout_s), msg, sizeof(msg));
        rdt_comm_set_error(comm, RDT_ERR_TIMEOUT, "%s", msg);
        rdt_comm_fail(comm, RDT_ERR_TIMEOUT);
        return;
    }
    /* a wait that has lasted: answer the status channel (ctl.h), off the fast path */
    if (comm->ctl_fd >= 0 && now - (head->deadline - head->timeout_s) > CTL_ANSWER_AFTER_S)
        rdt_ctl_service(comm);
    if (head->warn_at > 0 && now > head->warn_at && !head->warned) {
        head->warned = 1;
        rdt_exec_request_name(head, name, sizeof(name));
        describe_wait(comm, head, what, sizeof(what));
        rdt_warn("exec", "%s on rank %d (host %s) has waited %.1f s of its %g s timeout for: %s",
                 name, comm->rank, comm->host, now - (head->deadline - head->timeout_s),
                 head->timeout_s, what);
    }
}

/* Advance, then turn an abort request or an expired deadline (looked at when the caller read
 * the clock: @p now > 0) into a failure. Never blocks. */
static void exec_poll(rdt_comm_t *comm, double now)
{
    rdt_request_t *head;

    /* before advancing: an operation issued after rdt_comm_abort must not send its part */
    if (atomic_load(&comm->abort_requested) && !comm->tp_aborted) {
        if (comm->failed == RDT_SUCCESS)
            rdt_comm_set_error(comm, RDT_ERR_ABORTED, "communicator aborted on rank %d (host %s)",
                               comm->rank, comm->host);
        rdt_comm_fail(comm, RDT_ERR_ABORTED);
        return;
    }
    rdt_exec_advance(comm);
    head = comm->head;
    if (head && head->started && now > 0)
        check_clock(comm, head, now);
}

void rdt_exec_poll(rdt_comm_t *comm)
{
    exec_poll(comm, rdt_now());
}

/* More ranks of this communicator on this host than online CPUs? Then a waiting rank must
 * hand its core to the peer it waits for at every poll. (Not this process's affinity: a rank
 * pinned to one core is the normal, not an oversubscribed, case.) Computed once. */
static int oversubscribed(rdt_comm_t *comm)
{
    if (comm->oversub == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int local = 0, i;
        for (i = 0; i < comm->nranks; i++)
            local += !comm->host_of || comm->host_of[i] == comm->host_of[comm->rank];
        comm->oversub = cpus > 0 && local > cpus ? 2 : 1;
    }
    return comm->oversub == 2;
}

/*
 * Wait for @p req. Polls first (RDT_POLL_US): on an idle core a message arrives in a few
 * microseconds (a fraction of one through shared memory), and waking a thread sleeping in
 * epoll_wait costs more than that. When this host has more of the communicator's ranks than
 * CPUs, each poll yields the core, so ranks sharing a core (4 ranks on 2 cores) hand it to the
 * peer they wait for: measured here, that halves small-message latency oversubscribed. Otherwise
 * yielding only costs a system call per poll (a third of an 8-byte shm allreduce, measured with
 * perf), so the rank spins and yields every 64th poll only, to stay polite to other processes.
 * The clock is read every 16th poll. After the polling budget the thread sleeps in the transport
 * until an event. The budget counts from the last poll that moved anything: a large collective
 * that completes a message every few tens of microseconds (a staged allreduce's exchanges, a
 * schedule's slices) keeps polling between them rather than paying a sleep and a wakeup each.
 *
 * A core shared with another busy thread or process turns spinning against us: the spinning
 * rank uses up its time slice, then the scheduler runs the other one for milliseconds while the
 * message waits (a busy loop pinned to one of two cores: a 2-rank TCP 8-byte allreduce 57-191 us
 * instead of 11, shared memory bursts of milliseconds). A rank that sleeps at once is woken
 * ahead of the busy one (RDT_POLL_US=0 under the same loop: 33 us, 14 us). contended_sample
 * tells a shared core by the CPU time the thread got while it did not sleep in a wait: under
 * EXEC_CONTENDED_SHARE of that wall-clock time (a core shared with one busy loop gives about
 * half), waits sleep in the transport as soon as their first poll finds nothing. Not when
 * oversubscribed by the communicator's own ranks: those hand the core to each other at every
 * poll, which is faster than a sleep and a wakeup.
 */
#define EXEC_CONTENDED_SHARE 0.75  /* of the time awake: less means another thread took it */
#define EXEC_CONTENDED_EVERY 64    /* waits between two looks at the clock */
#define EXEC_CONTENDED_PERIOD 0.02 /* s: the least time between two samples */
/* s a sample under the share counts for: sleeping at once the rank keeps little awake time,
 * and without a hold the next samples would turn the spinning, and its stalls, back on */
#define EXEC_CONTENDED_HOLD 1.0

static void contended_sample(rdt_comm_t *comm)
{
    struct timespec ts;
    double now, cpu, awake;

    if (++comm->contended_calls < EXEC_CONTENDED_EVERY)
        return;
    comm->contended_calls = 0;
    now = rdt_now();
    if (now - comm->contended_at < EXEC_CONTENDED_PERIOD)
        return;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return;
    cpu = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    awake = now - comm->contended_at - (comm->slept - comm->contended_slept);
    if (comm->contended_at > 0 && awake > EXEC_CONTENDED_PERIOD / 2 &&
        cpu - comm->contended_cpu < EXEC_CONTENDED_SHARE * awake)
        comm->contended_until = now + EXEC_CONTENDED_HOLD;
    comm->contended = now < comm->contended_until;
    comm->contended_at = now;
    comm->contended_cpu = cpu;
    comm->contended_slept = comm->slept;
}

rdt_status_t rdt_exec_wait(rdt_comm_t *comm, rdt_request_t *req)
{
    double poll_until = 0, now;
    unsigned yield_mask = oversubscribed(comm) ? 0 : 63, clock_mask = comm->cfg.poll_us ? 15 : 0;
    unsigned k, seen = comm->advances;

    if (yield_mask)
        contended_sample(comm);
    /* The clock (deadline, polling budget) every 16th poll from the 16th on: an operation that
     * completes within a few polls, as small ones do through shared memory, never reads it
     * (the polling budget starts a few hundred nanoseconds late). */
    for (k = 1;; k++) {
        double left;

        now = (k & clock_mask) == 0 ? rdt_now() : 0;
        exec_poll(comm, now);
        if (req ? req->done : comm->head == NULL)
            return req ? req->status : comm->failed;
        if (comm->failed) /* a request not in the queue any more cannot complete */
            return comm->failed;
        if (comm->contended && yield_mask && now == 0 && comm->advances == seen) {
            now = rdt_now(); /* a shared core: sleep now (below), do not spin */
            poll_until = now;
            comm->contended_waits++;
        }
        if (comm->advances != seen) { /* it moved: the budget starts again at the next clock */
            seen = comm->advances;
            poll_until = 0;
        }
        if (now > 0 && poll_until == 0)
            poll_until = now + comm->cfg.poll_us * 1e-6;
        if (now == 0 || now < poll_until) {
            if ((k & yield_mask) == yield_mask)
                sched_yield(); /* let another process have the core if it wants it */
            continue;
        }
        left = comm->head && comm->head->started ? comm->head->deadline - now : 0.1;
        comm->tp->ops->progress(comm->tp, left > 0.1 ? 100 : (int)(left * 1000) + 1);
        comm->slept += rdt_now() - now;
        k = clock_mask; /* after a wait, the next poll looks at the deadline */
    }
}

size_t rdt_exec_slot_size(void)
{
    return sizeof(rdt_slot_t);
}

void rdt_exec_slots_free(rdt_comm_t *comm)
{
    int i;
    if (!comm->slots)
        return;
    for (i = 0; i < comm->nslots; i++)
        free(comm->slots[i].msgs);
    free(comm->slots);
    comm->slots = NULL;
}

void rdt_exec_request_free(rdt_request_t *req)
{
    if (req)
        req_unhold(req);
    if (req && req->heap)
        free(req);
}
