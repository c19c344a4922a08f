/*
 * coll.c - the public collective and point-to-point calls: validate, choose, queue, wait.
 *
 * Validation happens before anything is queued, so a bad call touches no buffer and leaves the
 * communicator usable. Every check names the call, the argument and the rank.
 */
#include <stdint.h>
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
    if (a->count > SIZE_MAX / es / p / 2)
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

/* Validate, select, and queue a collective into @p req (zeroed by the caller). */
static rdt_status_t coll_issue(rdt_comm_t *comm, const coll_args_t *a, rdt_request_t *req)
{
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
    if (a->count == 0 && a->coll != RDT_COLL_BARRIER) {
        req->done = 1; /* nothing to move: complete at once, as NCCL does */
        return RDT_SUCCESS;
    }
    st = rdt_select(comm, a->coll, a->count, a->dtype, &algo, &req->slice_len);
    if (st != RDT_SUCCESS)
        return st;
    st = rdt_exec_plan_get(comm, a->coll, algo, req->root, &req->plan);
    if (st != RDT_SUCCESS)
        return rdt_comm_set_error(comm, st, "%s on rank %d: cannot build the %s schedule: %s",
                                  rdt_coll_name(a->coll), comm->rank, rdt_algo_name(algo),
                                  rdt_status_str(st));
    req->nslices = a->count ? (a->count + req->slice_len - 1) / req->slice_len : 1;
    req->seq = comm->next_seq++;
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
