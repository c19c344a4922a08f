/*
 * transport.h - the one interface between the engine and the wires.
 *
 * A transport moves opaque messages between the ranks of one communicator. It knows nothing of
 * collectives or schedules. Everything is nonblocking: isend/irecv post a transfer, progress()
 * advances all of them and calls each transfer's completion callback exactly once.
 *
 * Matching: messages from one peer are matched with the receives posted for that peer in posting
 * order (FIFO per ordered pair of ranks). Each message carries the sender's tag and length; a
 * receive whose tag or length differs from the message it is matched with completes with
 * RDT_ERR_MISMATCH (the stream is then unusable, and the engine aborts the communicator).
 *
 * Connections are made lazily, to the peers actually used, on the first isend/irecv naming them.
 * The lower-ranked side of a pair connects, the higher one accepts; the connector presents the
 * job token and communicator id, anything else is dropped with a log line.
 *
 * Errors: a failed connection completes every transfer posted for that peer with
 * RDT_ERR_PEER_FAILED (or RDT_ERR_NETWORK / RDT_ERR_TIMEOUT for a connect that never succeeded),
 * and leaves one sentence naming the peer rank and host in tp->error.
 *
 * Threads: one thread drives a transport at a time, except wakeup() and abort(), which any thread
 * may call (see abort() for where its callbacks run).
 */
#ifndef RDT_TRANSPORT_H
#define RDT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "rdmatrain.h"

#define RDT_TOKEN_LEN 16
#define RDT_ADDR_MAX 64 /* bytes of an opaque transport address */
#define RDT_HOST_MAX 64 /* bytes of a host name, NUL included */
/* rndv_threshold "auto" (RDT_IB_RNDV=auto, the engine's RDT_CONFIG_SIZE_AUTO passed on as is):
 * verbs picks by device (eager only on software devices) */
#define RDT_RNDV_AUTO SIZE_MAX

typedef struct rdt_transport rdt_transport_t;
typedef struct rdt_xfer rdt_xfer_t;

typedef void (*rdt_xfer_cb_t)(rdt_xfer_t *x, rdt_status_t status);

/* A transfer. The caller owns the memory and fills the first block; the transport owns the rest
 * between post and completion callback. The callback runs inside progress() (or inside
 * close()/abort(), with RDT_ERR_ABORTED); it may post new transfers and may call abort(), but
 * must not call progress() or close(). */
struct rdt_xfer {
    void *buf;
    size_t len;        /* bytes; 0 is a valid message */
    int peer;
    uint64_t tag;      /* carried on the wire, checked at the receiver */
    rdt_xfer_cb_t cb;
    void *arg;         /* for the caller */
    /* Optional (NULL: none) on a receive: bytes [off, off + n) of the message are in buf, in
     * order, before cb; inside progress(), as cb. Only shm calls it (its long copies, in
     * pieces), so a caller can use each piece while it is still in cache. */
    void (*part)(rdt_xfer_t *x, size_t off, size_t n);
    /* transport-private */
    size_t done;
    rdt_xfer_t *next;
    uint32_t hdr_done;
    unsigned char hdr[24];
    void *tpriv;
    /* a transport that hands the transfer to another (mux.c) keeps the caller's callback here */
    rdt_xfer_cb_t outer_cb;
    void *outer_arg;
};

typedef struct rdt_transport_params {
    int rank;
    int nranks;
    uint64_t comm_id;                      /* same on all ranks of the communicator */
    unsigned char token[RDT_TOKEN_LEN];    /* job token, compared in constant time */
    const char *bind_ip;                   /* numeric address to listen on ("127.0.0.1", "::1") */
    int connect_timeout_ms;                /* give up connecting to a peer after this */
    size_t sockbuf;                        /* SO_SNDBUF/SO_RCVBUF, 0 = kernel autotuning */
    const char *host;                      /* this rank's host name, for messages */
    /* verbs only */
    const char *ib_dev;                    /* "name[:port]"; NULL or "" = first active port */
    int ib_gid_fixed;                      /* 0: GID chosen automatically; 1: ib_gid_index */
    int ib_gid_index;                      /* GID table index when ib_gid_fixed */
    size_t rndv_threshold;                 /* messages this long or longer go zero-copy; 0 = never;
                                            * RDT_RNDV_AUTO = the transport's choice for its
                                            * device */
    int reg_cache;                         /* keep implicit registrations after use */
    int ib_cm_rdmacm;                      /* connect QPs through librdmacm, not a TCP side
                                            * channel (RDT_IB_CM=rdmacm) */
    /* out: why open() failed, one sentence (may be NULL) */
    char *open_error;
    size_t open_error_len;
} rdt_transport_params_t;

typedef struct rdt_transport_ops {
    const char *name;
    rdt_status_t (*open)(const rdt_transport_params_t *params, rdt_transport_t **tp_p);
    /* Closes every connection and completes posted transfers with RDT_ERR_ABORTED. */
    void (*close)(rdt_transport_t *tp);
    /* This rank's address, to be sent to the others through the bootstrap. *len_p: in, the room
     * at addr (RDT_ADDR_MAX always suffices); out, the bytes used. */
    rdt_status_t (*addr_get)(rdt_transport_t *tp, void *addr, size_t *len_p);
    /* Every rank's address (rank i at addrs + i * RDT_ADDR_MAX) and host name
     * (hosts + i * RDT_HOST_MAX). Called once, after open, before any isend/irecv. */
    rdt_status_t (*addrs_set)(rdt_transport_t *tp, const void *addrs, const char *hosts);
    /* Post a transfer. An error return means it was not posted and its callback will never run:
     * RDT_ERR_INVALID_ARG, RDT_ERR_ABORTED after abort(), or, for a peer whose connection has
     * already failed, that failure's status (tp->error names the peer). */
    rdt_status_t (*isend)(rdt_transport_t *tp, rdt_xfer_t *x);
    rdt_status_t (*irecv)(rdt_transport_t *tp, rdt_xfer_t *x);
    /* Advance everything; waits up to timeout_ms for an event when nothing can advance right now
     * (0: never waits; negative: no limit). Returns RDT_SUCCESS unless the transport itself is
     * broken (RDT_ERR_ABORTED once aborted); per-transfer failures go to the transfers'
     * callbacks. */
    rdt_status_t (*progress)(rdt_transport_t *tp, int timeout_ms);
    /* Fail every connection now (callbacks get RDT_ERR_ABORTED); later posts fail at once.
     * Idempotent, never blocks, any thread. From the driving thread (between calls or inside a
     * callback) the callbacks run before it returns. From another thread it wakes the driver,
     * whose current or next progress() (or close()) runs them; the connections are closed at
     * once unless the driver is inside a call, which then closes them on its way out. */
    void (*abort)(rdt_transport_t *tp);
    /* Thread safe: makes a progress() that is waiting return soon. */
    void (*wakeup)(rdt_transport_t *tp);
    /* Optional (NULL when the transport has nothing to pin). Make [buf, buf + len) usable for
     * zero-copy transfers until mem_deregister(*handle_p); any thread. The registration belongs
     * to the device, not to this transport: it outlives close() and serves every communicator
     * of the process on that device. Errors leave one sentence in tp->error. */
    rdt_status_t (*mem_register)(rdt_transport_t *tp, void *buf, size_t len, void **handle_p);
    void (*mem_deregister)(void *handle);
    /* Optional. A short-lived reference that keeps [buf, buf + len) registered across the
     * transfers of one call (reusing a registration that contains it, else making one), so a
     * collective registers each buffer once rather than once per message; NULL when the buffer
     * is too small to be sent zero-copy or cannot be registered (its transfers then manage on
     * their own). Driving thread only. */
    void *(*mem_hold)(rdt_transport_t *tp, const void *buf, size_t len);
    void (*mem_release)(void *hold);
    /* Optional (NULL, or 0 from share_max, when not every rank of the communicator is on this
     * host): one-shot exchanges through shared memory, for small collectives. share_max is the
     * largest contribution in bytes (after addrs_set). ishare posts @p x as this rank's
     * contribution to the next exchange: x->len bytes at x->buf (copied before it returns),
     * x->tag naming what it is for. Exchanges are numbered in posting order, the same on every
     * rank; at most one is outstanding. When every rank's contribution is visible, x->cb runs
     * inside progress() with views[r] and lens[r] (arrays of nranks, the caller's) holding rank
     * r's bytes (lengths may differ): read-only, valid until this rank posts its next exchange
     * (no rank rewrites its buffer of exchange s before every rank posted s + 1). A rank whose
     * tag differs, or that is at another exchange, fails it
     * with RDT_ERR_MISMATCH; a dead or departed rank with RDT_ERR_PEER_FAILED (tp->error names
     * it). While it waits, x->peer is the lowest rank not heard from. A rank asleep in its
     * progress() is woken by the progress() call that follows the post (shm.c defers that
     * check out of ishare), so a caller calls progress() after every ishare, as the engine's
     * advance loop does. */
    size_t (*share_max)(rdt_transport_t *tp);
    rdt_status_t (*ishare)(rdt_transport_t *tp, rdt_xfer_t *x, const void **views, size_t *lens);
    /* Optional, with ishare: where the next exchange's contribution will lie (share_max bytes),
     * so a caller can build it there, once its previous exchange completed, and post it with
     * x->buf pointing there: no copy. */
    void *(*share_buf)(rdt_transport_t *tp);
} rdt_transport_ops_t;

/* Every transport's object starts with this. */
struct rdt_transport {
    const rdt_transport_ops_t *ops;
    char error[512]; /* the last error, one sentence naming peer rank and host */
};

extern const rdt_transport_ops_t rdt_tcp_ops;
extern const rdt_transport_ops_t rdt_verbs_ops; /* built only when libibverbs is found */
extern const rdt_transport_ops_t rdt_shm_ops;   /* ranks of one host: shared memory (shm.c) */
extern const rdt_transport_ops_t rdt_mux_ops;   /* shm within a host, a network one between */

/* shm.c with explicit settings (rdt_shm_ops.open uses the defaults, NULL here). */
typedef struct rdt_shm_opts {
    size_t ring_bytes;      /* per ordered pair of local ranks (power of two); 0 = 256 KiB */
    size_t rndv_bytes;      /* from this size the receiver copies straight out of the sender's
                             * memory (process_vm_readv); 0 = 32 KiB, SIZE_MAX = never */
    int peers_elsewhere_ok; /* mux: ranks on other hosts are skipped, not an error */
    char *error_mirror;     /* mux: errors are copied there too (its tp->error) */
    size_t error_mirror_len;
} rdt_shm_opts_t;
rdt_status_t rdt_shm_open_opts(const rdt_transport_params_t *params, const rdt_shm_opts_t *opts,
                               rdt_transport_t **tp_p);
/* mux.c: shm for the ranks whose host name equals this rank's, @p net (already open: tcp or
 * verbs) for the others. On success the mux owns @p net; on failure the caller still does. */
rdt_status_t rdt_mux_open(const rdt_transport_params_t *params, const rdt_shm_opts_t *shm_opts,
                          rdt_transport_t *net, rdt_transport_t **tp_p);
/* shm.c hooks for mux.c: callbacks run so far; arm sleeping (returns the fd to poll, -1 when
 * there is work, -2 when the peers cannot wake us and sleeps must stay short); disarm; whether a
 * rank was found on this host (after addrs_set). */
uint64_t rdt_shm_nevents(rdt_transport_t *shm);
int rdt_shm_sleep_begin(rdt_transport_t *shm);
void rdt_shm_sleep_end(rdt_transport_t *shm);
int rdt_shm_peer_is_local(rdt_transport_t *shm, int rank);

#endif /* RDT_TRANSPORT_H */
