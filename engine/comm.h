/*
 * comm.h - the communicator and the request, internal to engine/.
 *
 * A communicator owns one transport instance (its own connections), a cache of schedules, the
 * persistent scratch memory of the executor, and the queue of requests issued on it. Requests run
 * in issue order: the head of the queue is executing; a run of consecutive point-to-point
 * requests executes together (so an isend/irecv pair can't deadlock on itself); a collective
 * starts when everything before it has completed.
 */
#ifndef RDT_COMM_H
#define RDT_COMM_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "mapped.h"
#include "rdmatrain.h"
#include "sched.h"
#include "transport.h"

#define RDT_ERRMSG_LEN 1024

/* RDT_CHECK: the fingerprint of a collective each rank contributes to the check exchange
 * (coll.c): magic, sequence number, collective, dtype, op, root (u32 each), count (u64), little
 * endian. Fields that do not apply to the collective (op of a broadcast, root of an allreduce)
 * are normalised so they compare equal. */
#define RDT_FP_BYTES 32
/* Upper half of the tags of the check exchange's messages (tag layout: coll.c, fp_tag_hi). */
#define RDT_CHECK_TAG_HI 0x7fffffff00000000ULL

typedef enum { RDT_REQ_COLL, RDT_REQ_SEND, RDT_REQ_RECV } rdt_req_kind_t;

/* One in-flight slice of a collective (see exec.c). */
typedef struct rdt_slot rdt_slot_t;

/* A cached schedule plus what the executor precomputes from it. */
typedef struct rdt_plan {
    rdt_sched_t *sched;
    uint32_t *round_start;  /* nrounds + 1 indexes into sched->ops */
    uint32_t *nsegs;        /* per op: number of messages (units the region spans) */
    uint32_t *pseq;         /* per op: index of its first message among this peer+direction's
                               messages of one slice */
    uint32_t *peer_msgs;    /* per op: messages per slice to/from op's peer in op's direction */
    uint32_t max_staging;   /* most blocks received by RECV_REDUCE ops in one round */
    uint32_t max_msgs;      /* most messages in one round */
    int uses_temp;
    struct rdt_plan *next;
} rdt_plan_t;

struct rdt_request {
    rdt_comm_t *comm;
    rdt_request_t *next;
    rdt_req_kind_t kind;
    uint32_t seq;             /* issue number on the communicator, carried in tags */
    int heap;                 /* allocated by a nonblocking call, freed by wait/test */
    int started;
    int done;
    rdt_status_t status;
    double timeout_s;         /* the communicator's timeout when the request was issued */
    double deadline;          /* absolute, monotonic seconds */
    double warn_at;           /* when to warn that it stalls (RDT_STALL_WARN; 0 = never) */
    int warned;
    uint64_t tag_hi;          /* upper 32 bits of its messages' tags (exec.c, msg_tag) */
    /* RDT_CHECK: a check request is an allgather of fingerprints queued right before the
     * collective it checks (@p checked); it is internal (freed by the executor when it leaves
     * the queue) and its verdict (rdt_coll_check_verdict) fails @p checked on a mismatch */
    rdt_request_t *checked;
    unsigned char *fp_all;    /* nranks * RDT_FP_BYTES, filled by the exchange */
    unsigned char fp[RDT_FP_BYTES]; /* this rank's fingerprint */
    /* arguments */
    rdt_coll_t coll;
    const void *sendbuf;
    void *recvbuf;
    size_t count;             /* elements per unit (collectives) or per message (p2p) */
    rdt_dtype_t dtype;
    rdt_op_t op;
    int root;
    int peer;                 /* p2p */
    /* collective execution */
    rdt_plan_t *plan;
    size_t slice_len;         /* S: elements of one unit piece per slice */
    size_t nslices;
    size_t next_slice;        /* next slice to start */
    size_t slices_done;
    rdt_slot_t *slots;        /* comm->nslots entries */
    /* one exchange through shared memory (transport ishare) instead of a plan (exec.c) */
    int oneshot;
    /* direct through peers' mapped buffers (exec.c): 0 = no, else the RDT_DIRECT_* phase */
    int direct;
    /* staged (a direct call whose buffers are not all mapped; exec.c): the chunk in progress,
     * how many, and which of its two exchanges (0: the inputs, 1: the reduced slices) */
    size_t stg_chunk;
    size_t stg_nchunks;
    int stg_phase;
    int stg_own; /* the inputs' exchange left this rank's slice out: it reads it in place */
    /* p2p execution, and the one-shot exchange */
    rdt_xfer_t xfer;
    /* the transport's holds on the send and receive buffers while the request runs */
    void *hold[2];
    void (*release)(void *hold);
};

/* Bytes a direct collective reduces at a time, in comm->direct_tmp (stays in L2; exec.c). */
#define RDT_DIRECT_CHUNK ((size_t)128 << 10)
/* Bytes of input each rank contributes per staged chunk at most (exec.c): the chunk, its copy in
 * the share area and the reduced slices stay in a 2 MiB L2. */
#define RDT_STAGED_CHUNK ((size_t)512 << 10)

#define RDT_OFFER_IN_PLACE 1u /* rdt_direct_offer_t.flags */
#define RDT_OFFER_CACHED 2u   /* ... and its vector fits this rank's RDT_SHM_STAGED_CACHED */

/* What a rank tells the others at the start of a direct collective (exec.c). */
typedef struct rdt_direct_offer {
    uint32_t ok; /* 1: every buffer of this rank that the others touch is rdt_mem_alloc memory */
    uint32_t flags; /* RDT_OFFER_IN_PLACE: this rank's call is in place; RDT_OFFER_CACHED */
    rdt_mapped_desc_t src, dst;
} rdt_direct_offer_t;

struct rdt_comm {
    int rank;
    int nranks;
    uint64_t id;
    unsigned char token[RDT_TOKEN_LEN];
    char host[RDT_HOST_MAX];
    char *hosts;              /* nranks * RDT_HOST_MAX */
    /* topology, from hosts (select.c, at creation): per rank the host index (the lowest rank
     * with the same host name), and whether it is a hierarchy (several hosts, several ranks on
     * some host). Freed with the plans built from it (rdt_exec_plans_free). */
    int *host_of;
    int hier;
    /* topo/'s view of the same grouping (comm.c, at creation): hosts numbered by lowest rank,
     * local ranks and sizes, each rank's NUMA node and nearest NIC (-1 unknown) */
    struct rdt_topo *topo;
    char ib_dev_near[64];     /* RDMA device nearest this rank, used if RDT_IB_DEV is empty */
    int oversub;       /* exec.c: 0 until known, then 2 if more local ranks than CPUs, else 1 */
    /* exec.c: is this thread's core shared with another busy thread or process? Sampled from
     * the CPU time it got while it did not sleep (contended_sample); while it is, waits sleep
     * at once */
    int contended;            /* now < contended_until at the last sample: a poll reads no clock */
    double contended_until;   /* a sample under the share holds it for EXEC_CONTENDED_HOLD */
    unsigned contended_calls; /* waits since the clock was last looked at for a sample */
    double contended_at;      /* clock of the last sample */
    double contended_cpu;     /* the thread's CPU time then */
    double slept;             /* seconds waits spent sleeping in the transport */
    double contended_slept;   /* slept then */
    uint64_t contended_waits; /* waits that slept at once because of it (tests read them) */
    char bind_ip[64];
    rdt_config_t cfg;
    double timeout_s;         /* for operations issued from now on (rdt_comm_set_timeout) */
    rdt_transport_t *tp;
    /* error state: sticky once set */
    rdt_status_t failed;
    int tp_aborted;
    atomic_int abort_requested;
    char error[RDT_ERRMSG_LEN];
    /* requests */
    uint32_t next_seq;
    uint32_t nsplits;
    rdt_request_t *head;
    rdt_request_t *tail;
    /* per peer: next message number in each direction (FIFO matching, see exec.c) */
    uint32_t *send_seq;
    uint32_t *recv_seq;
    /* per peer: point-to-point messages sent and received so far */
    uint32_t *p2p_send;
    uint32_t *p2p_recv;
    /* executor resources */
    rdt_plan_t *plans;
    int nslots;
    rdt_slot_t *slots;        /* nslots entries, shared by the collectives (one runs at a time) */
    unsigned char *scratch;   /* persistent, pre-faulted; nslots * slot_bytes */
    size_t scratch_bytes;
    void *scratch_reg;        /* its registration with the transport (NULL: none) */
    void (*scratch_dereg)(void *scratch_reg);
    /* one-shot exchanges (select.c, exec.c): the largest contribution (0: not available: ranks
     * on several hosts, a transport without them, RDT_SHM_ONESHOT=0), and the views of the
     * exchange in progress (nranks each; one collective runs at a time) */
    size_t share_max;
    size_t share_cap;         /* the transport's largest contribution (staged chunks) */
    const void **share_views;
    size_t *share_lens;
    /* direct collectives (select.c, exec.c; mapped.h): whether they may run (every rank on this
     * host, RDT_SHM_DIRECT), every rank's offer in the call in progress, its buffers as mapped
     * here, the chunk of reduced elements on their way out, the peers' allocations mapped */
    int direct_on;
    unsigned direct_logged;   /* bit 1: a direct call was logged, bit 0: a fallback was,
                               * bit 2: a staged one */
    unsigned advances;        /* rdt_exec_advance passes that moved something (exec.c) */
    uint64_t direct_calls;    /* collectives run direct, staged, and allreduces run as one-shot
                               * exchanges above RDT_SHM_ONESHOT (tests read them) */
    uint64_t staged_calls;
    uint64_t one_slice_calls; /* in-place allreduces run in one slice (exec.c) */
    uint64_t oneshot_ar_calls;
    struct rdt_direct_offer *direct_offers;
    unsigned char **direct_src;
    unsigned char **direct_dst;
    unsigned char *direct_tmp;
    struct rdt_mapped_cache *mapped;
    /* selection: algorithm forced per collective by RDT_ALGO (-1: none) */
    int forced[RDT_COLL_COUNT];
    /* selection: which (collective, log2 size) choices were already logged */
    uint64_t logged[RDT_COLL_COUNT];
    /* selection: the last choices, direct-mapped by (collective, bytes): pricing every
     * algorithm costs as much as a small shm collective's own work (select.c) */
    struct rdt_sel_cache {
        size_t bytes;  /* count x element size; 0 = empty (a count of 0 is never cached) */
        size_t key;    /* element size, and the collective in the top byte */
        size_t slice;
        int algo;
    } sel_cache[16];
    /* the status side channel (ctl.c): socket (-1: none), every rank's packed address */
    int ctl_fd;
    unsigned char *ctl_peers; /* nranks * RDT_WIRE_SOCKADDR_LEN */
    unsigned ctl_dropped;     /* invalid datagrams dropped */
    uint32_t ctl_nonce;
    int ctl_second_hand;      /* the failure was heard on the channel: not repeated on it */
    char *ctl_heard;          /* another rank's last word, heard at ctl_heard_at (ctl.c) */
    double ctl_heard_at;
    int ctl_heard_from;       /* the rank that said it */
};

/* Replace the executor's scratch by @p mem (@p bytes; NULL frees it), keeping its registration
 * with the transport in step. */
void rdt_comm_scratch_set(rdt_comm_t *comm, unsigned char *mem, size_t bytes);

/* Record an error sentence on the communicator (printf-style) and return @p st. */
rdt_status_t rdt_comm_set_error(rdt_comm_t *comm, rdt_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For errors before a communicator exists; rdt_comm_last_error(NULL) returns it. */
void rdt_set_thread_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Put the communicator in the failed state: close the transport so peers see it; every pending
 * request completes with @p st. The sentence must be set before. */
void rdt_comm_fail(rdt_comm_t *comm, rdt_status_t st);

/* Monotonic clock in seconds. */
double rdt_now(void);

/* exec.c */
rdt_status_t rdt_exec_start(rdt_request_t *req);
/* Advance the communicator's queue: post what is ready, finish what completed. Never blocks. */
void rdt_exec_advance(rdt_comm_t *comm);
/* Advance and apply abort requests and deadlines; never blocks. */
void rdt_exec_poll(rdt_comm_t *comm);
rdt_status_t rdt_exec_plan_get(rdt_comm_t *comm, rdt_coll_t coll, rdt_algo_t algo, int root,
                               rdt_plan_t **plan_p);
/* What the head request waits for, for the status channel: up to @p max peer ranks into
 * @p peers (their number is returned) and a sentence into @p text ("" when no operation is in
 * progress). */
int rdt_exec_wait_state(rdt_comm_t *comm, int *peers, int max, char *text, size_t len);
/* Wait for @p req (NULL: until the queue is empty) with the communicator's timeouts. */
rdt_status_t rdt_exec_wait(rdt_comm_t *comm, rdt_request_t *req);
void rdt_exec_plans_free(rdt_comm_t *comm);
size_t rdt_exec_slot_size(void);
void rdt_exec_slots_free(rdt_comm_t *comm);
void rdt_exec_request_free(rdt_request_t *req);

/* Name a request for error and warning sentences: "allreduce #7 (float32 x 1000, ring)",
 * "allreduce #7 (float32 x 1000, RDT_CHECK exchange)", "recv of float32 x 10 from rank 1". */
void rdt_exec_request_name(const rdt_request_t *req, char *buf, size_t len);

/* coll.c: a check request completed; compare the fingerprints and on a mismatch fail the
 * collective it checks with RDT_ERR_MISMATCH and a sentence naming what each rank called. */
void rdt_coll_check_verdict(rdt_request_t *check);
/* Describe a fingerprint (coll.c): "allreduce float32 x 1000 sum", "broadcast #7 float32 x 10
 * root 0" (with @p with_seq). */
void rdt_coll_fp_describe(const unsigned char *fp, int with_seq, char *buf, size_t len);

/* select.c: does this call run as one exchange through shared memory (comm->share_max)? */
int rdt_select_oneshot(const rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype);
int rdt_select_direct(const rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype);
/* select.c: may an allreduce of @p bytes per rank that runs neither direct nor staged run as
 * one exchange (RDT_SHM_ONESHOT_ALLREDUCE)? */
int rdt_select_oneshot_ar(const rdt_comm_t *comm, size_t bytes);
/* select.c: choose algorithm and slice length (elements of one unit piece) for a call. */
rdt_status_t rdt_select(rdt_comm_t *comm, rdt_coll_t coll, size_t count, rdt_dtype_t dtype,
                        rdt_algo_t *algo_p, size_t *slice_len_p);
/* Parse RDT_ALGO at communicator creation; error sentence in comm->error. */
rdt_status_t rdt_select_validate(rdt_comm_t *comm);

#endif /* RDT_COMM_H */
