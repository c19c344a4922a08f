/*
 * coll.c - the public collective and point-to-point calls: validate, choose, queue, wait.
 *
 * Validation happens before anything is queued, so a bad call touches no buffer and leaves the
 * communicator usable. Every check names the call, the argument and the rank.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "log.h"
#include "reduce.h"

/* Does [a, a + na) overlap [b, b + nb)? */
static int overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    if (!na || !nb)
        return 0;
    return x < y + nb && y < x + na;
}

typedef struct coll_args {
    rdt_coll_t coll;
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    rdt_dtype_t dtype;
    rdt_op_t op;
    int root;
} coll_args_t;

static rdt_status_t check_common(rdt_comm_t *comm, const char *name)
{
    if (!comm) {
        rdt_set_thread_error("%s: communicator is NULL", name);
        return RDT_ERR_INVALID_ARG;
    }
    if (comm->failed)
        return comm->failed; /* comm->error still holds the first failure */
    return RDT_SUCCESS;
}

/* Would count x es x p x 2 bytes overflow? (Without dividing: this runs on every call.) */
static int coll_bytes_overflow(size_t count, size_t es, size_t p)
{
    size_t v;
    return __builtin_mul_overflow(count, es, &v) || __builtin_mul_overflow(v, p, &v) ||
           __builtin_mul_overflow(v, (size_t)2, &v);
}

/* Validate a collective's arguments; on error the sentence names what was wrong. */
static rdt_status_t check_coll(rdt_comm_t *comm, const coll_args_t *a)
{
    const char *name = rdt_coll_name(a->coll);
    size_t es = rdt_dtype_size(a->dtype);
    size_t p = (size_t)comm->nranks, inbytes, outbytes;
    int reduces = a->coll == RDT_COLL_ALLREDUCE || a->coll == RDT_COLL_REDUCE_SCATTER ||
                  a->coll == RDT_COLL_REDUCE;
    int rooted = a->coll == RDT_COLL_BROADCAST || a->coll == RDT_COLL_REDUCE;
    int is_root = comm->rank == a->root;

    if (!es)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "%s on rank %d: invalid dtype %d",
                                  name, comm->rank, (int)a->dtype);
    if (reduces && ((unsigned)a->op >= RDT_OP_COUNT || !rdt_reduce_supported(a->dtype, a->op)))
        return rdt_comm_set_error(comm, RDT_ERR_UNSUPPORTED,
                                  "%s on rank %d: reduction %s is not supported for %s", name,
                                  comm->rank, rdt_op_name(a->op), rdt_dtype_name(a->dtype));
    if (rooted && (a->root < 0 || a->root >= comm->nranks))
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "%s on rank %d: root %d is outside 0..%d", name, comm->rank,
                                  a->root, comm->nranks - 1);
    /* the whole vector (nranks units for allgather, reduce_scatter, alltoall) in bytes */
    if (coll_bytes_overflow(a->count, es, p))
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "%s on rank %d: count %zu of %s overflows the address space",
                                  name, comm->rank, a->count, rdt_dtype_name(a->dtype));
    rdt_coll_extents(a->coll, a->count, es, comm->nranks, &inbytes, &outbytes);
    if (a->count == 0)
        return RDT_SUCCESS;
    if (!a->sendbuf && !(a->coll == RDT_COLL_BROADCAST && !is_root))
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "%s on rank %d: sendbuf is NULL",
                                  name, comm->rank);
    if (!a->recvbuf && !(a->coll == RDT_COLL_REDUCE && !is_root))
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "%s on rank %d: recvbuf is NULL",
                                  name, comm->rank);
    if (!a->sendbuf || !a->recvbuf || a->sendbuf == a->recvbuf)
        return RDT_SUCCESS;
    /* in place is "the same pointer", or this rank's slot as in NCCL; other overlaps are bugs */
    if (a->coll == RDT_COLL_ALLGATHER &&
        a->sendbuf == (char *)a->recvbuf + (size_t)comm->rank * a->count * es)
        return RDT_SUCCESS;
    if (a->coll == RDT_COLL_REDUCE_SCATTER &&
        a->recvbuf == (const char *)a->sendbuf + (size_t)comm->rank * a->count * es)
        return RDT_SUCCESS;
    if (overlaps(a->sendbuf, inbytes, a->recvbuf, outbytes))
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "%s on rank %d: sendbuf and recvbuf overlap without being the "
                                  "in-place case (same pointer%s)",
                                  name, comm->rank,
                                  a->coll == RDT_COLL_ALLGATHER
                                      ? ", or sendbuf = recvbuf + rank * count * size"
                                  : a->coll == RDT_COLL_REDUCE_SCATTER
                                      ? ", or recvbuf = sendbuf + rank * recvcount * size"
                                      : "");
    return RDT_SUCCESS;
}

static void queue_append(rdt_comm_t *comm, rdt_request_t *req)
{
    req->next = NULL;
    if (comm->tail)
        comm->tail->next = req;
    else
        comm->head = req;
    comm->tail = req;
}

/* ------------------------------------------------------------------------------------------ */
/* Fingerprints: what every rank must agree on (RDT_CHECK, and the tags of the messages)       */
/* ------------------------------------------------------------------------------------------ */

#define FP_MAGIC 0x46544452u  /* "RDTF" */
#define FP_NO_OP 0xffffffffu  /* op of a collective that does not reduce */
#define FP_SHOWN_VARIANTS 4   /* a mismatch sentence names at most this many variants */

static void put_u32(unsigned char *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int coll_reduces(rdt_coll_t c)
{
    return c == RDT_COLL_ALLREDUCE || c == RDT_COLL_REDUCE_SCATTER || c == RDT_COLL_REDUCE;
}

static int coll_rooted(rdt_coll_t c)
{
    return c == RDT_COLL_BROADCAST || c == RDT_COLL_REDUCE;
}

/* The fingerprint of a call (layout in comm.h), fields that do not apply normalised. */
static void fp_pack(unsigned char *fp, uint32_t seq, const coll_args_t *a)
{
    put_u32(fp, FP_MAGIC);
    put_u32(fp + 4, seq);
    put_u32(fp + 8, (uint32_t)a->coll);
    put_u32(fp + 12, a->coll == RDT_COLL_BARRIER ? 0 : (uint32_t)a->dtype);
    put_u32(fp + 16, coll_reduces(a->coll) ? (uint32_t)a->op : FP_NO_OP);
    put_u32(fp + 20, coll_rooted(a->coll) ? (uint32_t)a->root : 0);
    put_u32(fp + 24, (uint32_t)a->count);
    put_u32(fp + 28, (uint32_t)((uint64_t)a->count >> 32));
}

/*
 * The upper half of the tags of a collective's messages (the lower half is the message number,
 * exec.c). The transport fails a message whose tag differs from the receive it is matched
 * with, so ranks that disagree on the call are caught on the first message between them even
 * when the lengths happen to agree (a broadcast of 2 slices against one of 1):
 *
 *   63  62 ........... 48  47 ........... 32  31 .................. 0
 *   0 | hash of coll, dtype, op, root, count | seq (low 16 bits) | message number (bit 31 = 0)
 *
 * Point-to-point tags have bit 63 set (exec.c); RDT_CHECK's exchange uses RDT_CHECK_TAG_HI and
 * message numbers with bit 31 set, apart from both.
 */
static uint64_t fp_tag_hi(const coll_args_t *a, uint32_t seq)
{
    /* a multiply-xorshift mix of the three 64-bit words after magic and seq (collective and
     * dtype, op and root, count), as fp_pack lays them out little-endian: every input bit
     * reaches the top bits; three multiplies rather than FNV's 24 byte steps, on every call.
     * The words are built from the fields, not loaded from the packed bytes: 8-byte loads of
     * bytes just stored one at a time wait for the stores to retire (the store-forwarding
     * stall was 9% of a 2-rank 8-byte allreduce's samples). */
    uint64_t w[3], h = 0;
    int i;

    w[0] = (uint32_t)a->coll |
           (uint64_t)(a->coll == RDT_COLL_BARRIER ? 0 : (uint32_t)a->dtype) << 32;
    w[1] = (coll_reduces(a->coll) ? (uint32_t)a->op : FP_NO_OP) |
           (uint64_t)(coll_rooted(a->coll) ? (uint32_t)a->root : 0) << 32;
    w[2] = (uint64_t)a->count;
    for (i = 0; i < 3; i++) {
        h = (h ^ w[i]) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    h ^= h >> 32;
    return ((h >> 17 & 0x7fff) << 48) | ((uint64_t)(seq & 0xffff) << 32);
}

void rdt_coll_fp_describe(const unsigned char *fp, int with_seq, char *buf, size_t len)
{
    uint32_t coll = get_u32(fp + 8), op = get_u32(fp + 16);
    uint64_t count = get_u32(fp + 24) | (uint64_t)get_u32(fp + 28) << 32;
    char seq[16] = "";
    int n;

    if (get_u32(fp) != FP_MAGIC || coll >= RDT_COLL_COUNT) {
        snprintf(buf, len, "something unknown (not an RDT_CHECK fingerprint)");
        return;
    }
    if (with_seq)
        snprintf(seq, sizeof(seq), " #%u", get_u32(fp + 4));
    if (coll == RDT_COLL_BARRIER) {
        snprintf(buf, len, "barrier%s", seq);
        return;
    }
    n = snprintf(buf, len, "%s%s %s x %llu", rdt_coll_name((rdt_coll_t)coll), seq,
                 rdt_dtype_name((rdt_dtype_t)get_u32(fp + 12)), (unsigned long long)count);
    if (n < 0 || (size_t)n >= len)
        return;
    if (op != FP_NO_OP)
        n += snprintf(buf + n, len - (size_t)n, " %s", rdt_op_name((rdt_op_t)op));
    if (n >= 0 && (size_t)n < len && coll_rooted((rdt_coll_t)coll))
        snprintf(buf + n, len - (size_t)n, " root %u", get_u32(fp + 20));
}

/* "rank 2", "ranks 0-1,3,5-9": the ranks whose variant is @p v, at most about 60 characters. */
static void ranks_of_variant(const int *var_of, int p, int v, char *buf, size_t len)
{
    int r, count = 0, shown = 0, truncated = 0;
    size_t n = 0;

    for (r = 0; r < p; r++)
        count += var_of[r] == v;
    n = (size_t)snprintf(buf, len, "%s ", count == 1 ? "rank" : "ranks");
    for (r = 0; r < p && n < len; r++) {
        int end = r;
        if (var_of[r] != v)
            continue;
        while (end + 1 < p && var_of[end + 1] == v)
            end++;
        if (n > 60) {
            truncated = 1;
            break;
        }
        if (end == r)
            n += (size_t)snprintf(buf + n, len - n, "%s%d", shown ? "," : "", r);
        else
            n += (size_t)snprintf(buf + n, len - n, "%s%d-%d", shown ? "," : "", r, end);
        shown++;
        r = end;
    }
    if (truncated && n < len)
        snprintf(buf + n, len - n, ",... (%d ranks)", count);
}

/*
 * Every rank holds the same table of fingerprints after the exchange, so every rank reaches the
 * same verdict and writes the same sentence. No data of the checked collective has moved yet,
 * so only that call fails: the communicator stays usable (documented in rdmatrain.h).
 */
void rdt_coll_check_verdict(rdt_request_t *check)
{
    rdt_comm_t *comm = check->comm;
    rdt_request_t *req = check->checked;
    const unsigned char *all = check->fp_all;
    int p = comm->nranks, r, v, nvar = 0, with_seq = 0;
    int *var_of, *rep;
    char what[160], ranks[96];
    size_t n;

    for (r = 0; r < p; r++)
        if (memcmp(all + (size_t)r * RDT_FP_BYTES, check->fp, RDT_FP_BYTES) != 0)
            break;
    if (r == p)
        return; /* everyone called the same collective */
    req->done = 1;
    req->status = RDT_ERR_MISMATCH;
    var_of = malloc((size_t)p * sizeof(int));
    rep = malloc((size_t)p * sizeof(int));
    if (!var_of || !rep) {
        free(var_of);
        free(rep);
        rdt_comm_set_error(comm, RDT_ERR_MISMATCH,
                           "collective #%u mismatch: rank %d called something else than rank %d "
                           "(RDT_CHECK, seen on rank %d, host %s)",
                           check->seq, r, comm->rank, comm->rank, comm->host);
        return;
    }
    /* variants in order of their lowest rank */
    for (r = 0; r < p; r++) {
        const unsigned char *fp = all + (size_t)r * RDT_FP_BYTES;
        for (v = 0; v < nvar; v++)
            if (memcmp(all + (size_t)rep[v] * RDT_FP_BYTES, fp, RDT_FP_BYTES) == 0)
                break;
        if (v == nvar)
            rep[nvar++] = r;
        var_of[r] = v;
        if (memcmp(fp + 4, check->fp + 4, 4) != 0)
            with_seq = 1; /* a rank is at another collective: say which */
    }
    n = (size_t)snprintf(comm->error, sizeof(comm->error), "collective #%u mismatch: ",
                         check->seq);
    for (v = 0; v < nvar && v < FP_SHOWN_VARIANTS && n < sizeof(comm->error); v++) {
        rdt_coll_fp_describe(all + (size_t)rep[v] * RDT_FP_BYTES, with_seq, what, sizeof(what));
        ranks_of_variant(var_of, p, v, ranks, sizeof(ranks));
        n += (size_t)snprintf(comm->error + n, sizeof(comm->error) - n, "%s%s called %s",
                              v ? "; " : "", ranks, what);
    }
    if (nvar > FP_SHOWN_VARIANTS && n < sizeof(comm->error))
        n += (size_t)snprintf(comm->error + n, sizeof(comm->error) - n,
                              "; and %d other variants", nvar - FP_SHOWN_VARIANTS);
    if (n < sizeof(comm->error))
        snprintf(comm->error + n, sizeof(comm->error) - n,
                 " (RDT_CHECK, seen on rank %d, host %s)", comm->rank, comm->host);
    free(var_of);
    free(rep);
    rdt_warn("comm", "%s", comm->error);
}

/* The check request of @p req (RDT_CHECK): an allgather of the fingerprints, with its own
 * buffers, queued right before @p req. */
static rdt_status_t check_issue(rdt_comm_t *comm, rdt_request_t *req, const unsigned char *fp)
{
    rdt_request_t *ck = calloc(1, sizeof(*ck) + (size_t)comm->nranks * RDT_FP_BYTES);
    rdt_algo_t algo;
    rdt_status_t st;

    if (!ck)
        return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY,
                                  "%s on rank %d: out of memory for the RDT_CHECK exchange",
                                  rdt_coll_name(req->coll), comm->rank);
    ck->comm = comm;
    ck->kind = RDT_REQ_COLL;
    ck->heap = 1;
    ck->checked = req;
    ck->seq = req->seq;
    ck->timeout_s = req->timeout_s;
    ck->tag_hi = RDT_CHECK_TAG_HI;
    memcpy(ck->fp, fp, RDT_FP_BYTES);
    ck->fp_all = (unsigned char *)(ck + 1);
    ck->coll = RDT_COLL_ALLGATHER;
    ck->sendbuf = ck->fp;
    ck->recvbuf = ck->fp_all;
    ck->count = RDT_FP_BYTES;
    ck->dtype = RDT_UINT8;
    ck->op = RDT_SUM;
    if (rdt_select_oneshot(comm, RDT_COLL_ALLGATHER, RDT_FP_BYTES, RDT_UINT8)) {
        ck->oneshot = 1; /* the same on every rank, whatever the collective it checks */
        st = RDT_SUCCESS;
    } else {
        st = rdt_select(comm, RDT_COLL_ALLGATHER, RDT_FP_BYTES, RDT_UINT8, &algo,
                        &ck->slice_len);
        if (st == RDT_SUCCESS)
            st = rdt_exec_plan_get(comm, RDT_COLL_ALLGATHER, algo, 0, &ck->plan);
    }
    if (st != RDT_SUCCESS) {
        free(ck);
        return rdt_comm_set_error(comm, st,
                                  "%s on rank %d: cannot set up the RDT_CHECK exchange: %s",
                                  rdt_coll_name(req->coll), comm->rank, rdt_status_str(st));
    }
    ck->nslices = ck->oneshot ? 1 : (RDT_FP_BYTES + ck->slice_len - 1) / ck->slice_len;
    queue_append(comm, ck);
    return RDT_SUCCESS;
}

/* Validate, select, and queue a collective into @p req (zeroed by the caller). */
static rdt_status_t coll_issue(rdt_comm_t *comm, const coll_args_t *a, rdt_request_t *req)
{
    unsigned char fp[RDT_FP_BYTES];
    rdt_algo_t algo;
    rdt_status_t st;

    st = check_common(comm, rdt_coll_name(a->coll));
    if (st != RDT_SUCCESS)
        return st;
    st = check_coll(comm, a);
    if (st != RDT_SUCCESS)
        return st;
    req->comm = comm;
    req->kind = RDT_REQ_COLL;
    req->coll = a->coll;
    req->sendbuf = a->sendbuf;
    req->recvbuf = a->recvbuf;
    req->count = a->count;
    req->dtype = a->dtype;
    req->op = a->op;
    req->root = (a->coll == RDT_COLL_BROADCAST || a->coll == RDT_COLL_REDUCE) ? a->root : 0;
    req->timeout_s = comm->timeout_s;
    if (a->count == 0 && a->coll != RDT_COLL_BARRIER) {
        if (!comm->cfg.check) {
            req->done = 1; /* nothing to move: complete at once, as NCCL does */
            return RDT_SUCCESS;
        }
        /* RDT_CHECK: still compared with the others (a rank passing 0 while the others pass
         * 1000 would otherwise leave them waiting); nothing to run afterwards (no plan) */
    } else if (rdt_select_oneshot(comm, a->coll, a->count, a->dtype)) {
        req->oneshot = 1; /* one exchange through shared memory, no plan (exec.c) */
        req->nslices = 1;
    } else {
        st = rdt_select(comm, a->coll, a->count, a->dtype, &algo, &req->slice_len);
        if (st != RDT_SUCCESS)
            return st;
        st = rdt_exec_plan_get(comm, a->coll, algo, req->root, &req->plan);
        if (st != RDT_SUCCESS)
            return rdt_comm_set_error(comm, st, "%s on rank %d: cannot build the %s schedule: %s",
                                      rdt_coll_name(a->coll), comm->rank, rdt_algo_name(algo),
                                      rdt_status_str(st));
        req->nslices = a->count ? (a->count + req->slice_len - 1) / req->slice_len : 1;
        /* the plan stays ready: unless every rank's buffers qualify, it runs (exec.c) */
        req->direct = rdt_select_direct(comm, a->coll, a->count, a->dtype);
    }
    req->seq = comm->next_seq;
    req->tag_hi = fp_tag_hi(a, req->seq);
    if (comm->cfg.check) {
        fp_pack(fp, comm->next_seq, a);
        st = check_issue(comm, req, fp);
        if (st != RDT_SUCCESS)
            return st;
    }
    comm->next_seq++;
    queue_append(comm, req);
    return RDT_SUCCESS;
}

static rdt_status_t coll_blocking(rdt_comm_t *comm, const coll_args_t *a)
{
    rdt_request_t req;
    rdt_status_t st;

    memset(&req, 0, sizeof(req));
    st = coll_issue(comm, a, &req);
    if (st != RDT_SUCCESS || req.done)
        return st;
    return rdt_exec_wait(comm, &req);
}

static rdt_status_t coll_nonblocking(rdt_comm_t *comm, const coll_args_t *a,
                                     rdt_request_t **req_p)
{
    rdt_request_t *req;
    rdt_status_t st;

    if (!req_p) {
        if (comm)
            return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "i%s on rank %d: req_p is NULL",
                                      rdt_coll_name(a->coll), comm->rank);
        return RDT_ERR_INVALID_ARG;
    }
    req = calloc(1, sizeof(*req));
    if (!req)
        return RDT_ERR_NO_MEMORY;
    req->heap = 1;
    st = coll_issue(comm, a, req);
    if (st != RDT_SUCCESS) {
        free(req);
        return st;
    }
    if (!req->done)
        rdt_exec_poll(comm); /* start moving data now, not at the first test/wait */
    *req_p = req;
    return RDT_SUCCESS;
}

#define COLL_ARGS(c, s, r, n, d, o, rt)                                                          \
    coll_args_t a = {.coll = (c), .sendbuf = (s), .recvbuf = (r), .count = (n), .dtype = (d),   \
                     .op = (o), .root = (rt)}

rdt_status_t rdt_allreduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, rdt_op_t op)
{
    COLL_ARGS(RDT_COLL_ALLREDUCE, sendbuf, recvbuf, count, dtype, op, 0);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_iallreduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                            rdt_dtype_t dtype, rdt_op_t op, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_ALLREDUCE, sendbuf, recvbuf, count, dtype, op, 0);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_reduce_scatter(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                                size_t recvcount, rdt_dtype_t dtype, rdt_op_t op)
{
    COLL_ARGS(RDT_COLL_REDUCE_SCATTER, sendbuf, recvbuf, recvcount, dtype, op, 0);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_ireduce_scatter(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                                 size_t recvcount, rdt_dtype_t dtype, rdt_op_t op,
                                 rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_REDUCE_SCATTER, sendbuf, recvbuf, recvcount, dtype, op, 0);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_allgather(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t sendcount,
                           rdt_dtype_t dtype)
{
    COLL_ARGS(RDT_COLL_ALLGATHER, sendbuf, recvbuf, sendcount, dtype, RDT_SUM, 0);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_iallgather(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                            size_t sendcount, rdt_dtype_t dtype, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_ALLGATHER, sendbuf, recvbuf, sendcount, dtype, RDT_SUM, 0);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_broadcast(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, int root)
{
    COLL_ARGS(RDT_COLL_BROADCAST, sendbuf, recvbuf, count, dtype, RDT_SUM, root);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_ibroadcast(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                            rdt_dtype_t dtype, int root, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_BROADCAST, sendbuf, recvbuf, count, dtype, RDT_SUM, root);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_reduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                        rdt_dtype_t dtype, rdt_op_t op, int root)
{
    COLL_ARGS(RDT_COLL_REDUCE, sendbuf, recvbuf, count, dtype, op, root);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_ireduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                         rdt_dtype_t dtype, rdt_op_t op, int root, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_REDUCE, sendbuf, recvbuf, count, dtype, op, root);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_barrier(rdt_comm_t *comm)
{
    COLL_ARGS(RDT_COLL_BARRIER, NULL, NULL, 0, RDT_UINT8, RDT_SUM, 0);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_ibarrier(rdt_comm_t *comm, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_BARRIER, NULL, NULL, 0, RDT_UINT8, RDT_SUM, 0);
    return coll_nonblocking(comm, &a, req_p);
}

rdt_status_t rdt_alltoall(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                          rdt_dtype_t dtype)
{
    COLL_ARGS(RDT_COLL_ALLTOALL, sendbuf, recvbuf, count, dtype, RDT_SUM, 0);
    return coll_blocking(comm, &a);
}

rdt_status_t rdt_ialltoall(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, rdt_request_t **req_p)
{
    COLL_ARGS(RDT_COLL_ALLTOALL, sendbuf, recvbuf, count, dtype, RDT_SUM, 0);
    return coll_nonblocking(comm, &a, req_p);
}

/* ------------------------------------------------------------------------------------------ */
/* Point to point                                                                               */
/* ------------------------------------------------------------------------------------------ */

static rdt_status_t p2p_issue(rdt_comm_t *comm, rdt_req_kind_t kind, const void *buf,
                              size_t count, rdt_dtype_t dtype, int peer, rdt_request_t *req)
{
    const char *name = kind == RDT_REQ_SEND ? "send" : "recv";
    size_t es = rdt_dtype_size(dtype);
    rdt_status_t st = check_common(comm, name);

    if (st != RDT_SUCCESS)
        return st;
    if (!es)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "%s on rank %d: invalid dtype %d",
                                  name, comm->rank, (int)dtype);
    if (peer < 0 || peer >= comm->nranks || peer == comm->rank)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "%s on rank %d: peer %d is not another rank of 0..%d", name,
                                  comm->rank, peer, comm->nranks - 1);
    if (count > SIZE_MAX / es / 2)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "%s on rank %d: count %zu overflows the address space", name,
                                  comm->rank, count);
    if (!buf && count)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "%s on rank %d: buf is NULL", name,
                                  comm->rank);
    req->comm = comm;
    req->kind = kind;
    req->sendbuf = buf;
    req->recvbuf = (void *)buf;
    req->count = count;
    req->dtype = dtype;
    req->peer = peer;
    req->timeout_s = comm->timeout_s;
    queue_append(comm, req);
    return RDT_SUCCESS;
}

static rdt_status_t p2p_blocking(rdt_comm_t *comm, rdt_req_kind_t kind, const void *buf,
                                 size_t count, rdt_dtype_t dtype, int peer)
{
    rdt_request_t req;
    rdt_status_t st;

    memset(&req, 0, sizeof(req));
    st = p2p_issue(comm, kind, buf, count, dtype, peer, &req);
    if (st != RDT_SUCCESS)
        return st;
    return rdt_exec_wait(comm, &req);
}

static rdt_status_t p2p_nonblocking(rdt_comm_t *comm, rdt_req_kind_t kind, const void *buf,
                                    size_t count, rdt_dtype_t dtype, int peer,
                                    rdt_request_t **req_p)
{
    rdt_request_t *req;
    rdt_status_t st;

    if (!req_p)
        return comm ? rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG, "req_p is NULL")
                    : RDT_ERR_INVALID_ARG;
    req = calloc(1, sizeof(*req));
    if (!req)
        return RDT_ERR_NO_MEMORY;
    req->heap = 1;
    st = p2p_issue(comm, kind, buf, count, dtype, peer, req);
    if (st != RDT_SUCCESS) {
        free(req);
        return st;
    }
    rdt_exec_poll(comm);
    *req_p = req;
    return RDT_SUCCESS;
}

rdt_status_t rdt_send(rdt_comm_t *comm, const void *buf, size_t count, rdt_dtype_t dtype, int peer)
{
    return p2p_blocking(comm, RDT_REQ_SEND, buf, count, dtype, peer);
}

rdt_status_t rdt_isend(rdt_comm_t *comm, const void *buf, size_t count, rdt_dtype_t dtype,
                       int peer, rdt_request_t **req_p)
{
    return p2p_nonblocking(comm, RDT_REQ_SEND, buf, count, dtype, peer, req_p);
}

rdt_status_t rdt_recv(rdt_comm_t *comm, void *buf, size_t count, rdt_dtype_t dtype, int peer)
{
    return p2p_blocking(comm, RDT_REQ_RECV, buf, count, dtype, peer);
}

rdt_status_t rdt_irecv(rdt_comm_t *comm, void *buf, size_t count, rdt_dtype_t dtype, int peer,
                       rdt_request_t **req_p)
{
    return p2p_nonblocking(comm, RDT_REQ_RECV, buf, count, dtype, peer, req_p);
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                     */
/* ------------------------------------------------------------------------------------------ */

rdt_status_t rdt_test(rdt_request_t *req, int *done_p)
{
    rdt_status_t st;

    if (!req || !done_p)
        return RDT_ERR_INVALID_ARG;
    if (!req->done)
        rdt_exec_poll(req->comm);
    if (!req->done && req->comm->failed) {
        req->done = 1;
        req->status = req->comm->failed;
    }
    *done_p = req->done;
    if (!req->done)
        return RDT_SUCCESS;
    st = req->status;
    rdt_exec_request_free(req);
    return st;
}

rdt_status_t rdt_wait(rdt_request_t *req)
{
    rdt_status_t st;

    if (!req)
        return RDT_SUCCESS;
    st = req->done ? req->status : rdt_exec_wait(req->comm, req);
    rdt_exec_request_free(req);
    return st;
}

rdt_status_t rdt_waitall(size_t n, rdt_request_t **reqs)
{
    rdt_status_t first = RDT_SUCCESS;
    size_t i;

    if (n && !reqs)
        return RDT_ERR_INVALID_ARG;
    for (i = 0; i < n; i++) {
        rdt_status_t st = rdt_wait(reqs[i]);
        reqs[i] = NULL;
        if (st != RDT_SUCCESS && first == RDT_SUCCESS)
            first = st;
    }
    return first;
}
