/**
 * @file rdmatrain.h
 * @brief rdmatrain: collective communication for distributed training, C API.
 *
 * The only header that programs using rdmatrain include. Everything here is prefixed `rdt_`
 * (functions, types) or `RDT_` (macros, enum values, environment variables).
 *
 * Conventions that hold for every function below unless its comment says otherwise:
 * - Functions return an ::rdt_status_t. On failure outputs (`*_p` parameters) are left untouched,
 *   and for functions taking a communicator, rdt_comm_last_error() holds one sentence that names
 *   what went wrong (which call, which rank, which peer and host).
 * - Buffers passed to a collective belong to the caller. They must stay valid, and must not be
 *   written (send side) or read (receive side), until the operation completes: when a blocking
 *   call returns, or when rdt_wait()/rdt_test() report completion of a nonblocking one.
 * - Thread safety: a communicator may be used by one thread at a time (the caller serialises calls
 *   on the same communicator, including rdt_test and rdt_wait of its requests). Different
 *   communicators may be used from different threads concurrently. rdt_comm_abort() is the one
 *   exception: it may be called from any thread at any time.
 * - Collectives on one communicator must be called by every rank in the same order with matching
 *   arguments (count, dtype, op, root), as in MPI and NCCL. A mismatch never writes outside the
 *   given buffers and never hangs past the timeout: a rank that receives a message of a
 *   collective it did not call (or called with other arguments) fails with RDT_ERR_MISMATCH and
 *   the communicator fails on every rank (the others see RDT_ERR_PEER_FAILED or
 *   RDT_ERR_MISMATCH). A rank that only sends in that collective (a broadcast root, a leaf of a
 *   reduce) may complete it before the receivers notice, and then fails in its next call.
 *   With `RDT_CHECK=1` (every rank) the ranks compare (sequence number, collective, dtype, op,
 *   count, root) before each collective instead, at the cost of one small allgather per call:
 *   a mismatch then fails that call, and only that call, on every rank with RDT_ERR_MISMATCH and
 *   a sentence naming what each group of ranks called, e.g. `collective #7 mismatch: ranks 0-1
 *   called broadcast float32 x 1000 root 0; rank 2 called allreduce float32 x 1000 sum`. No data
 *   has moved when it is detected, so the communicator stays usable. Requests issued after it
 *   (nonblocking) run normally.
 * - Timeouts: an operation that waits longer than the communicator's timeout (rdt_comm_timeout():
 *   `RDT_TIMEOUT` at creation, then rdt_comm_set_timeout()) fails with RDT_ERR_TIMEOUT, naming
 *   the ranks it waited for and where in the schedule; the communicator fails with it. After
 *   `RDT_STALL_WARN` (default 0.2) of its timeout it logs one warning line saying the same.
 * - Progress: operations advance while the caller is inside an rdmatrain call on that communicator
 *   (a blocking collective, rdt_test, rdt_wait, rdt_waitall).
 */
#ifndef RDMATRAIN_H
#define RDMATRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what this header declares is its interface. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RDT_VERSION_MAJOR 0
#define RDT_VERSION_MINOR 1
#define RDT_VERSION_PATCH 0

/**
 * Status codes, one table for the whole library (X-macro: name, string).
 * rdt_status_str() is generated from the same table, so they cannot drift apart.
 */
#define RDT_STATUS_TABLE(X)                                                                      \
    X(RDT_SUCCESS, "success")                                                                    \
    X(RDT_ERR_INVALID_ARG, "invalid argument")                                                   \
    X(RDT_ERR_NO_MEMORY, "out of memory")                                                        \
    X(RDT_ERR_SYSTEM, "system call failed")                                                      \
    X(RDT_ERR_NETWORK, "network error")                                                          \
    X(RDT_ERR_TIMEOUT, "timed out")                                                              \
    X(RDT_ERR_PEER_FAILED, "peer failed")                                                        \
    X(RDT_ERR_MISMATCH, "ranks called mismatching operations")                                  \
    X(RDT_ERR_UNSUPPORTED, "unsupported operation")                                              \
    X(RDT_ERR_ABORTED, "communicator aborted")                                                   \
    X(RDT_ERR_CONFIG, "invalid configuration")                                                   \
    X(RDT_ERR_INTERNAL, "internal error")                                                        \
    X(RDT_IN_PROGRESS, "operation in progress")

typedef enum {
#define RDT_STATUS_ENUM_(name, str) name,
    RDT_STATUS_TABLE(RDT_STATUS_ENUM_)
#undef RDT_STATUS_ENUM_
        RDT_STATUS_COUNT
} rdt_status_t;

/** Element types. float16 is IEEE 754 binary16, bfloat16 the upper half of a float32. */
typedef enum {
    RDT_INT8,
    RDT_UINT8,
    RDT_INT32,
    RDT_UINT32,
    RDT_INT64,
    RDT_UINT64,
    RDT_FLOAT16,
    RDT_BFLOAT16,
    RDT_FLOAT32,
    RDT_FLOAT64,
    RDT_DTYPE_COUNT
} rdt_dtype_t;

/**
 * Reductions. float16 and bfloat16 are reduced in float32 and rounded once per reduction step
 * (round to nearest even). Integer SUM and PROD wrap around (two's complement). AVG is the SUM
 * divided by the number of ranks at the end: for floats a division computed in float32 (float64
 * for float64) and rounded once; for integers C division, truncating toward zero, of the wrapped
 * sum. MIN and MAX give the same bits whatever the order of the operands: -0 is below +0, and a
 * NaN operand gives NaN.
 */
typedef enum { RDT_SUM, RDT_PROD, RDT_MIN, RDT_MAX, RDT_AVG, RDT_OP_COUNT } rdt_op_t;

/** Opaque communicator. */
typedef struct rdt_comm rdt_comm_t;
/** Opaque handle of a nonblocking operation; freed by rdt_wait() or a successful rdt_test(). */
typedef struct rdt_request rdt_request_t;

/** Color for rdt_comm_split() meaning "this rank joins no new communicator". */
#define RDT_UNDEFINED (-1)

/** @return a static string for @p status ("unknown status" for values outside the enum). */
const char *rdt_status_str(rdt_status_t status);
/** @return the size in bytes of one element of @p dtype, or 0 for an invalid type. */
size_t rdt_dtype_size(rdt_dtype_t dtype);
/** @return a static lower-case name ("float32"), or "invalid". */
const char *rdt_dtype_name(rdt_dtype_t dtype);
/** @return a static lower-case name ("sum"), or "invalid". */
const char *rdt_op_name(rdt_op_t op);

/* ------------------------------------------------------------------------------------------- */
/* Communicators                                                                                */
/* ------------------------------------------------------------------------------------------- */

/**
 * Create the world communicator from the environment. Blocking and collective: every rank of
 * the job calls it; it returns once all ranks have met at the rendezvous, or with
 * RDT_ERR_TIMEOUT after `RDT_CONNECT_TIMEOUT` seconds.
 *
 * Rank and size come from, in order: `RDT_RANK`/`RDT_SIZE` (the rdmatrain launcher), Open MPI
 * (`OMPI_COMM_WORLD_RANK`/`OMPI_COMM_WORLD_SIZE`), torchrun (`RANK`/`WORLD_SIZE`), Slurm
 * (`SLURM_PROCID`/`SLURM_NTASKS`; last, as mpirun or torchrun inside an allocation inherit it).
 * The rendezvous address comes from `RDT_ROOT` (host:port) or `MASTER_ADDR`/`MASTER_PORT`; rank 0
 * listens there. The job token from `RDT_TOKEN`, or when it is absent from the job id of the
 * launcher the rank came from (Open MPI, torchrun, Slurm). A missing or contradictory variable is
 * RDT_ERR_CONFIG with a message (see rdt_comm_last_error(NULL)) naming it.
 *
 * @param comm_p  receives the communicator; the caller owns it and frees it with
 *                rdt_comm_destroy().
 */
rdt_status_t rdt_comm_create_from_env(rdt_comm_t **comm_p);

/**
 * Out-of-band allgather supplied by a host framework (as UCC's OOB): every rank contributes
 * @p bytes bytes at @p send, and on return @p recv holds size * bytes bytes, rank i's
 * contribution at offset i * bytes. Must be collective and blocking. Returns 0 on success.
 */
typedef int (*rdt_oob_allgather_fn_t)(const void *send, void *recv, size_t bytes, void *ctx);

/**
 * Create a communicator of @p size ranks using @p allgather for the exchange of addresses,
 * instead of the rendezvous. Blocking and collective. The token is not needed: the host
 * framework's channel is trusted, and a fresh random token is agreed through it.
 */
rdt_status_t rdt_comm_create_oob(int rank, int size, rdt_oob_allgather_fn_t allgather, void *ctx,
                                 rdt_comm_t **comm_p);

/**
 * Split @p comm into disjoint communicators, one per distinct @p color, ranks ordered by
 * (@p key, old rank). Blocking and collective over @p comm. A rank passing RDT_UNDEFINED as
 * color gets *newcomm_p = NULL. The new communicator is independent of @p comm (it may outlive
 * it and be used from another thread).
 */
rdt_status_t rdt_comm_split(rdt_comm_t *comm, int color, int key, rdt_comm_t **newcomm_p);

/**
 * Destroy a communicator and release everything it holds. Local (does not wait for other
 * ranks). Requests still pending on it are cancelled and freed with it: the caller must not use
 * them afterwards. NULL is accepted.
 */
void rdt_comm_destroy(rdt_comm_t *comm);

/**
 * Abort: make every operation in flight on @p comm, and every later one, fail with
 * RDT_ERR_ABORTED within a bounded time, and close its connections so that peers see the
 * failure. Local, never blocks, idempotent, callable from any thread. The communicator must
 * still be destroyed.
 */
rdt_status_t rdt_comm_abort(rdt_comm_t *comm);

/**
 * Set the timeout, in seconds, of the operations issued on @p comm from now on (those already
 * issued keep theirs). Each operation may wait that long for its peers, counted from when it
 * starts (after what was issued before it on @p comm); then it fails with RDT_ERR_TIMEOUT and a
 * sentence naming the ranks it waited for, and the communicator fails with it. The initial value
 * is `RDT_TIMEOUT` (default 300), also for a communicator made by rdt_comm_split(), which does
 * not inherit its parent's setting. Local, never blocks. Like every call on @p comm, not
 * concurrently with another call on it (the caller serialises). Allowed on a failed
 * communicator (it changes nothing there).
 *
 * @param seconds  above 0 and at most 1e9; fractions are fine (0.5)
 * @return RDT_SUCCESS, or RDT_ERR_INVALID_ARG (NULL @p comm, @p seconds out of range or NaN)
 */
rdt_status_t rdt_comm_set_timeout(rdt_comm_t *comm, double seconds);

/** @return the timeout in seconds operations issued now on @p comm get, or -1 if it is NULL. */
double rdt_comm_timeout(const rdt_comm_t *comm);

/** @return the caller's rank in @p comm, or -1 if @p comm is NULL. */
int rdt_comm_rank(const rdt_comm_t *comm);
/** @return the number of ranks in @p comm, or -1 if @p comm is NULL. */
int rdt_comm_size(const rdt_comm_t *comm);

/**
 * @return the last error sentence recorded on @p comm ("" if none). With @p comm NULL, the last
 * error of the calling thread from a function that had no communicator yet (creation).
 * The string stays valid until the next call on the same communicator (or thread).
 */
const char *rdt_comm_last_error(const rdt_comm_t *comm);

/* ------------------------------------------------------------------------------------------- */
/* Memory registration                                                                          */
/* ------------------------------------------------------------------------------------------- */

typedef struct rdt_mem rdt_mem_t;

/**
 * Register [buf, buf + bytes) with the network device @p comm uses, so that collectives and
 * point-to-point calls on it move data straight from and into that memory (RDMA zero-copy)
 * without registering it on every call: the way a framework pins its gradient buckets once.
 * Optional: unregistered buffers work too (see RDT_IB_RNDV, RDT_IB_REG_CACHE). On TCP it only
 * records the range. The registration belongs to the process and the device: it serves every
 * communicator on that device and may outlive @p comm. The memory must stay allocated until
 * rdt_mem_deregister. Pinned memory counts against RLIMIT_MEMLOCK; beyond it the call fails
 * with RDT_ERR_SYSTEM and rdt_comm_last_error() says to raise `ulimit -l`.
 */
rdt_status_t rdt_mem_register(rdt_comm_t *comm, void *buf, size_t bytes, rdt_mem_t **handle_p);

/**
 * Release a registration (transfers using it finish first; the memory may be freed when this
 * returns). @p comm may be any communicator, or NULL; a NULL @p handle is RDT_ERR_INVALID_ARG.
 */
rdt_status_t rdt_mem_deregister(rdt_comm_t *comm, rdt_mem_t *handle);

/**
 * Allocate @p bytes (page-aligned, zero-filled) that the other ranks of this host can map:
 * collectives among ranks of one host whose buffers lie in such memory run *direct* (each rank
 * reads and writes the others' buffers in place: one pass over the data instead of a copy
 * through shared rings; RDT_SHM_DIRECT), as MPI_Alloc_mem or ncclMemAlloc memory does. Any
 * buffer inside an allocation qualifies (an offset into it too). Usable as ordinary memory
 * everywhere else, and registrable (rdt_mem_register). Each allocation holds one file
 * descriptor until rdt_mem_free. Errors: RDT_ERR_INVALID_ARG (0 bytes, NULL @p ptr_p),
 * RDT_ERR_NO_MEMORY, RDT_ERR_SYSTEM; rdt_comm_last_error(NULL) says which.
 */
rdt_status_t rdt_mem_alloc(size_t bytes, void **ptr_p);

/**
 * Free memory from rdt_mem_alloc (NULL: nothing to do). No collective using it may be in flight.
 * A pointer that rdt_mem_alloc did not return is RDT_ERR_INVALID_ARG.
 */
rdt_status_t rdt_mem_free(void *ptr);

/* ------------------------------------------------------------------------------------------- */
/* Collectives                                                                                  */
/*                                                                                              */
/* Each blocking call has a nonblocking twin prefixed `i` that returns a request in *req_p.     */
/* A count of 0 is valid and completes at once without communicating (except barrier).        */
/* In place: pass the same pointer as send and receive buffer (allreduce, broadcast, reduce);   */
/* for allgather the send buffer is this rank's slot of the receive buffer                      */
/* (recvbuf + rank * count * size), for reduce_scatter the receive buffer is this rank's slot   */
/* of the send buffer (sendbuf + rank * recvcount * size), as in NCCL. Counts are elements.     */
/* ------------------------------------------------------------------------------------------- */

/** recvbuf[i] = op over ranks of sendbuf[i], on every rank. */
rdt_status_t rdt_allreduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, rdt_op_t op);
rdt_status_t rdt_iallreduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                            rdt_dtype_t dtype, rdt_op_t op, rdt_request_t **req_p);

/** sendbuf holds size * recvcount elements; rank r receives the reduction of block r. */
rdt_status_t rdt_reduce_scatter(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                                size_t recvcount, rdt_dtype_t dtype, rdt_op_t op);
rdt_status_t rdt_ireduce_scatter(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                                 size_t recvcount, rdt_dtype_t dtype, rdt_op_t op,
                                 rdt_request_t **req_p);

/** recvbuf (size * sendcount elements) receives every rank's sendbuf, in rank order. */
rdt_status_t rdt_allgather(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t sendcount,
                           rdt_dtype_t dtype);
rdt_status_t rdt_iallgather(rdt_comm_t *comm, const void *sendbuf, void *recvbuf,
                            size_t sendcount, rdt_dtype_t dtype, rdt_request_t **req_p);

/** recvbuf on every rank receives root's sendbuf (read on root only; NULL elsewhere is fine). */
rdt_status_t rdt_broadcast(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, int root);
rdt_status_t rdt_ibroadcast(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                            rdt_dtype_t dtype, int root, rdt_request_t **req_p);

/**
 * root's recvbuf receives the reduction; recvbuf is not used on other ranks (may be NULL), and on
 * them neither buffer is written, in place or not.
 */
rdt_status_t rdt_reduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                        rdt_dtype_t dtype, rdt_op_t op, int root);
rdt_status_t rdt_ireduce(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                         rdt_dtype_t dtype, rdt_op_t op, int root, rdt_request_t **req_p);

/** Returns on each rank once every rank has entered it. */
rdt_status_t rdt_barrier(rdt_comm_t *comm);
rdt_status_t rdt_ibarrier(rdt_comm_t *comm, rdt_request_t **req_p);

/**
 * Block j (count elements) of sendbuf goes to rank j; block i of recvbuf comes from rank i.
 * In place (sendbuf == recvbuf) is supported.
 */
rdt_status_t rdt_alltoall(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                          rdt_dtype_t dtype);
rdt_status_t rdt_ialltoall(rdt_comm_t *comm, const void *sendbuf, void *recvbuf, size_t count,
                           rdt_dtype_t dtype, rdt_request_t **req_p);

/**
 * Point to point. Messages between two ranks on one communicator are matched in the order they
 * were issued (no tags); count and dtype must match on both sides.
 */
rdt_status_t rdt_send(rdt_comm_t *comm, const void *buf, size_t count, rdt_dtype_t dtype,
                      int peer);
rdt_status_t rdt_isend(rdt_comm_t *comm, const void *buf, size_t count, rdt_dtype_t dtype,
                       int peer, rdt_request_t **req_p);
rdt_status_t rdt_recv(rdt_comm_t *comm, void *buf, size_t count, rdt_dtype_t dtype, int peer);
rdt_status_t rdt_irecv(rdt_comm_t *comm, void *buf, size_t count, rdt_dtype_t dtype, int peer,
                       rdt_request_t **req_p);

/* ------------------------------------------------------------------------------------------- */
/* Requests. Operations on one communicator run in the order they were issued (as on one NCCL  */
/* stream): a collective starts once everything issued before it has completed; consecutive     */
/* point-to-point operations run together, so an isend/irecv exchange cannot deadlock itself.   */
/* ------------------------------------------------------------------------------------------- */

/**
 * Advance @p req without blocking. Sets *done_p to 1 and frees the request when it has
 * completed (the return value is then its final status), else sets it to 0 and returns
 * RDT_SUCCESS (or an error of the communicator, which also completes and frees the request).
 */
rdt_status_t rdt_test(rdt_request_t *req, int *done_p);

/** Block until @p req completes; frees it and returns its status. NULL returns RDT_SUCCESS. */
rdt_status_t rdt_wait(rdt_request_t *req);

/**
 * Wait for @p n requests (NULL entries are skipped); frees them all and sets each entry to NULL.
 * Returns the first error in array order, or RDT_SUCCESS.
 */
rdt_status_t rdt_waitall(size_t n, rdt_request_t **reqs);

/* ------------------------------------------------------------------------------------------- */
/* Configuration                                                                                */
/* ------------------------------------------------------------------------------------------- */

/**
 * Print every `RDT_*` knob with its current value (from the environment), its default and its
 * help to @p out (a `FILE *`, passed as void * to keep stdio out of this header).
 */
void rdt_config_print(void *out);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* RDMATRAIN_H */
