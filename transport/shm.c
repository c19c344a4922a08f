/*
 * shm.c - the shared-memory transport between the ranks of one host.
 *
 * Segments. Each rank owns one memfd (never named: nothing ever appears in /dev/shm) holding its
 * *inbound* rings, one slot per possible sender rank; the file is sized for every rank at open
 * (sparse: only the slots of local peers are ever touched). A sender maps the header page and its
 * own slot of the receiver's file by opening /proc/<pid>/fd/<memfd> (same uid), then closes that
 * descriptor. When every process that mapped a segment is gone, the kernel frees it, crashes
 * included: there is nothing to clean up.
 *
 *     memfd of rank r:  | header page | slot 0: ctl page, ring | slot 1: ... | share area |
 *                                        written by rank 0        rank 1        rank r
 *
 * The address (16 of the RDT_ADDR_MAX bytes): [0] 'S' [1] version [2..3] 0 [4..7] pid
 * [8..11] memfd number [12..15] eventfd number, little-endian. Everything else (ring size, token,
 * communicator id, the probe word) is in the header page and checked when a peer maps it. Both
 * are judged by the pure functions of shm_wire.c (which a fuzz target runs too).
 *
 * Rings. Single producer, single consumer byte streams with monotonic 64-bit head (producer) and
 * tail (consumer) counters on their own cache lines, C11 acquire/release: the producer writes
 * bytes then releases head; the consumer acquires head, copies, releases tail. The stream
 * carries the same 24-byte headers as tcp (magic, check, tag, length) so a tag or length mismatch
 * is caught the same way. Two records:
 *   eager (length < rndv):  header, payload bytes (streamed through the ring if larger than it)
 *   rendezvous (>= rndv):   header + sender's buffer address + sequence (40 bytes); the receiver
 *                           copies the payload straight from the sender's memory with
 *                           process_vm_readv (one copy), then bumps rndv_done in the ring's
 *                           consumer line, which completes the send.
 * Both are encoded and judged by shm_wire.c too (rdt_shm_msg_pack, _rts_pack, rdt_shm_rec_parse).
 *
 * One-shot exchanges (ishare, for the engine's small collectives when every rank is on this
 * host). The segment ends with its owner's share area: two buffers, exchange s in buffer s % 2,
 * each (sequence, tag, length, contribution). The owner writes its contribution, then releases
 * the sequence; every peer maps every other's area read-only and acquires the sequence. A rank
 * posts exchange s + 1 only after its exchange s completed, i.e. after every rank posted s,
 * which each did after completing s - 1: so when a buffer is rewritten for s + 2, every rank is
 * done reading it for s, and no acknowledgement is needed. A sequence beyond s in the buffer a
 * rank waits on means the ranks disagree on which collectives use the exchanges: a mismatch.
 * Rendezvous is used only when the receiver proved at setup that it can read the sender's memory
 * (a probe word; the flag is in the consumer line), else everything goes eager (logged once).
 *
 * Waiting. progress(0) reads a few cache lines and makes no system call when nothing changed
 * (except a 0-timeout poll of the peers' pidfds every SHM_DEATH_CHECK_MS while transfers are
 * outstanding). To sleep, a rank drains its eventfd, sets `sleeping` in its header, fences
 * (seq_cst), re-reads every ring, and only then blocks in epoll (eventfd + one pidfd per local
 * peer). A writer publishes, fences, and writes the eventfd if `sleeping` was set (it claims the
 * flag with an exchange, so one write per sleep): the two fences make a lost wakeup impossible.
 * (A one-shot exchange's post checks at the end of the progress call after it: shm_share_wake.)
 * Peers get the eventfd with pidfd_getfd; where that is refused, sleeps are cut to 1 ms.
 *
 * Failure. A rank that closes or aborts sets `closed` (with a reason) in each outbound ring's
 * producer line and wakes the peer; a receiver that finds a corrupt stream or a tag/length
 * mismatch does the same on its outbound ring to that sender. A rank that gives up (rather than
 * closing after a clean run) first writes why into the ring's control page (`notice`: its first
 * failure, e.g. "shared-memory connection to rank 2 (host h) lost: its process 123 died"), so a
 * rank that never talked to the rank that failed first still names it, as tcp.c and verbs.c do.
 * A rank that dies is seen through its pidfd (every local rank's is watched, epoll or a periodic
 * check while transfers are outstanding). Either way the peer's transfers fail with
 * RDT_ERR_PEER_FAILED and a sentence naming rank and host.
 *
 * Threads: as tcp.c. The driving thread holds tp->lock inside every call; abort() from another
 * thread only trylocks, sets a flag and writes the eventfd.
 */
#include "shm_wire.h"
#include "transport.h"
#include "wire.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define SHM_SEG_MAGIC RDT_SHM_SEG_MAGIC
#define SHM_VERSION RDT_SHM_VERSION
#define SHM_HDR_LEN RDT_SHM_HDR_LEN
#define SHM_RTS_LEN RDT_SHM_RTS_LEN
#define SHM_ADDR_LEN RDT_SHM_ADDR_LEN
#define SHM_LINE 128 /* a cache line on x86-64 and most aarch64 is 64; 128 covers the rest */
#define SHM_PAGE RDT_SHM_PAGE
#define SHM_RING_DEFAULT ((size_t)256 << 10)
#define SHM_RING_MIN ((size_t)RDT_SHM_RING_MIN)
#define SHM_RING_MAX ((size_t)RDT_SHM_RING_MAX)
#define SHM_RNDV_DEFAULT ((size_t)32 << 10)
#define SHM_CMA_CHUNK ((size_t)8 << 20) /* bytes per process_vm_readv, abort checked between */
/* with x->part: the piece handed over at a time, used while it is in L2 */
#define SHM_CMA_PART ((size_t)256 << 10)
#define SHM_RX_PASSES 64                /* ring refills read per peer and progress() */
#define SHM_DEATH_CHECK_MS 20
#define SHM_NOWAKE_SLEEP_MS 1   /* sleep cap when a peer cannot wake us (no eventfd) */
#define SHM_NOPIDFD_SLEEP_MS 100 /* sleep cap when a peer has no pidfd (checked by kill) */
#define SHM_EVENTS 64
#define SHM_NOTICE_MAX 400 /* bytes of a failure notice's sentence */

#define SHM_RX_CMA 1u /* consumer flag: the consumer reads the producer's memory */

enum { SHM_CLOSED_NONE, SHM_CLOSED_CLOSE, SHM_CLOSED_ABORT, SHM_CLOSED_PROTOCOL };

_Static_assert(SHM_HDR_LEN <= sizeof(((rdt_xfer_t *)0)->hdr), "rdt_xfer_t.hdr holds a header");

/* The control page of one ring (ordered pair producer -> consumer), in the consumer's segment. */
typedef struct shm_ctl {
    alignas(SHM_LINE) _Atomic uint64_t head; /* bytes ever written (producer) */
    _Atomic uint32_t closed;                 /* producer gave up on the pair: SHM_CLOSED_* */
    alignas(SHM_LINE) _Atomic uint64_t tail; /* bytes ever consumed (consumer) */
    _Atomic uint64_t rndv_done;              /* rendezvous records completed (consumer) */
    _Atomic uint32_t flags;                  /* SHM_RX_* (consumer) */
    /* why the producer gave up (written before `closed` is released; empty: no reason) */
    alignas(SHM_LINE) char notice[SHM_NOTICE_MAX + 1];
} shm_ctl_t;

_Static_assert(sizeof(shm_ctl_t) <= SHM_PAGE, "a ring's control block fits its page");

/* The header page of a rank's segment: who owns it (checked by peers, shm_wire.h), then the
 * owner's sleep flag. */
typedef struct shm_hdr {
    rdt_shm_seg_hdr_t id;
    alignas(SHM_LINE) _Atomic uint32_t sleeping; /* the owner is (about to be) blocked in epoll */
} shm_hdr_t;

_Static_assert(sizeof(shm_hdr_t) <= SHM_PAGE, "the segment header fits its page");

typedef enum { PEER_NONE, PEER_UP, PEER_FAILED } shm_peer_state_t;

typedef struct shm_peer {
    int rank;
    shm_peer_state_t state;
    rdt_status_t fail_status;
    char fail_msg[SHM_NOTICE_MAX + 2 * RDT_HOST_MAX + 64];
    char host[RDT_HOST_MAX];
    int local; /* on this host (a peer of this transport) */

    pid_t pid;
    int pidfd; /* -1: checked with kill(pid, 0) */
    int efd;   /* the peer's eventfd (pidfd_getfd), -1: cannot wake it */
    shm_hdr_t *hdr;        /* the peer's header page */
    shm_ctl_t *out;        /* ring me -> peer, in the peer's segment */
    unsigned char *out_data;
    uint64_t out_size;
    shm_ctl_t *in; /* ring peer -> me, in my segment */
    const unsigned char *share; /* its share area (read-only) */
    unsigned char *in_data;
    void *out_map, *in_map;
    size_t out_map_len, in_map_len;

    /* sending */
    rdt_xfer_t *sq_head, *sq_tail; /* not yet fully written */
    rdt_xfer_t *rv_head, *rv_tail; /* rendezvous requests written, waiting for rndv_done */
    uint64_t out_head, out_tail; /* producer position; last tail seen */
    uint64_t rndv_sent, rndv_completed;

    /* receiving */
    rdt_xfer_t *rq_head, *rq_tail;
    uint64_t in_tail, in_head; /* consumer position; last head seen */
    int have_hdr, rx_matched, rx_rndv;
    uint64_t in_tag, in_len, in_addr, in_seq;
    uint64_t rndv_expected;
    int cma_ok; /* we can read this peer's memory */
    int gone;   /* closed or dead: sends failed, what it wrote is still delivered (gone_msg) */
    char gone_msg[SHM_NOTICE_MAX + 2 * RDT_HOST_MAX + 64];
    char gave_up[SHM_NOTICE_MAX + 1]; /* the peer's notice, when it is second-hand */
} shm_peer_t;

typedef struct rdt_shm {
    rdt_transport_t base;
    int rank, nranks;
    uint64_t comm_id;
    unsigned char token[RDT_TOKEN_LEN];
    size_t ring_bytes, rndv_bytes;
    int allow_remote;
    char *mirror;
    size_t mirror_len;

    int memfd, efd, epfd;
    shm_hdr_t *hdr;
    size_t slot_bytes; /* ctl page + ring */
    unsigned char addr[SHM_ADDR_LEN];
    int addrs_done;

    shm_peer_t *peers;
    int *local, nlocal;
    int wake_cap_ms; /* -1: no cap; else sleeps are cut to this */

    rdt_xfer_t *done_head, *done_tail; /* completed sends whose callback is due */

    /* one-shot exchanges: my share area, exchanges posted, the outstanding one (at most one),
     * its caller's arrays, the lowest rank not heard from in it */
    unsigned char *share;
    uint64_t share_seq;
    rdt_xfer_t *share_x;
    const void **share_views;
    size_t *share_lens;
    int share_next;
    int share_wake; /* an exchange was posted and its peers not yet checked for sleep */
    int share_ok; /* every rank is on this host and its share area is mapped */
    uint64_t nevents;     /* callbacks run and peers failed: lets mux.c see progress */
    uint64_t outstanding; /* posted, callback not yet run */
    uint64_t last_check_ms;
    unsigned idle_polls; /* idle progress(0) calls: the clock is read on every 64th */

    pthread_mutex_t lock;
    uintptr_t driver;
    int abort_req;
    int conns_closed;
    int abort_delivered;
    int failed_any; /* a pair failed with transfers on it: even close() tells the peers why */
    char first_fail[SHM_NOTICE_MAX + 1]; /* the first such failure: what the notices say */
} rdt_shm_t;

static __thread char shm_thread_tag;
static atomic_int shm_logged_cma, shm_logged_getfd, shm_logged_pidfd;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

static uint64_t shm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void shm_set_error(rdt_shm_t *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void shm_set_error(rdt_shm_t *tp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->base.error, sizeof(tp->base.error), fmt, ap);
    va_end(ap);
    if (tp->mirror)
        snprintf(tp->mirror, tp->mirror_len, "%s", tp->base.error);
}

static const char *shm_host(const shm_peer_t *p)
{
    return p->host[0] ? p->host : "unknown";
}

static int shm_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static int shm_pidfd_getfd(int pidfd, int fd)
{
#ifdef SYS_pidfd_getfd
    return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* Ring copies: pos is a stream position, the ring size a power of two. */
static void shm_ring_put(unsigned char *data, uint64_t size, uint64_t pos, const void *src,
                         size_t n)
{
    size_t off = (size_t)(pos & (size - 1)), first = size - off < n ? size - off : n;
    memcpy(data + off, src, first);
    if (n > first)
        memcpy(data, (const char *)src + first, n - first);
}

static void shm_ring_get(const unsigned char *data, uint64_t size, uint64_t pos, void *dst,
                         size_t n)
{
    size_t off = (size_t)(pos & (size - 1)), first = size - off < n ? size - off : n;
    memcpy(dst, data + off, first);
    if (n > first)
        memcpy((char *)dst + first, data, n - first);
}

/* Wake @p p if it sleeps (or is about to): see the top of the file for why this cannot lose a
 * wakeup. Called after publishing anything the peer waits for. */
static void shm_wake(shm_peer_t *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (p->efd < 0 || !atomic_load_explicit(&p->hdr->sleeping, memory_order_relaxed))
        return;
    if (!atomic_exchange_explicit(&p->hdr->sleeping, 0, memory_order_seq_cst))
        return; /* another writer claimed it and writes the eventfd */
    rdt_wire_eventfd_kick(p->efd);
}

/*
 * The wakeup of an exchange's post, deferred from ishare to the end of the progress call that
 * follows it (or to this rank's own sleep, whichever comes first; the engine's advance loop
 * polls again after every post). Its fence waits until the sequence store has taken the
 * line away from the ranks that poll it, a cross-core round trip: done at once, it delays the
 * rank that arrives last by that much before it even looks at the others' contributions;
 * deferred, that store drains while the rank reads them and reduces (2 ranks, 128 bytes:
 * 0.88 -> 0.75 us out of place, 8 bytes unchanged). A sleeping peer is woken as before, only
 * later by this rank's own poll.
 */
static void shm_share_wake(rdt_shm_t *tp)
{
    int i;

    if (!tp->share_wake)
        return;
    tp->share_wake = 0;
    for (i = 0; i < tp->nlocal; i++)
        shm_wake(&tp->peers[tp->local[i]]);
}

/* ------------------------------------------------------------------------------------------ */
/* Completion and failure                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void shm_complete(rdt_shm_t *tp, rdt_xfer_t *x, rdt_status_t st)
{
    x->next = NULL;
    tp->outstanding--;
    tp->nevents++;
    x->cb(x, st);
}

static void shm_complete_list(rdt_shm_t *tp, rdt_xfer_t *x, rdt_status_t st)
{
    while (x) {
        rdt_xfer_t *next = x->next;
        shm_complete(tp, x, st);
        x = next;
    }
}

static void shm_done_push(rdt_shm_t *tp, rdt_xfer_t *x)
{
    x->next = NULL;
    if (tp->done_tail)
        tp->done_tail->next = x;
    else
        tp->done_head = x;
    tp->done_tail = x;
}

static void shm_done_run(rdt_shm_t *tp)
{
    rdt_xfer_t *x = tp->done_head;
    tp->done_head = tp->done_tail = NULL;
    shm_complete_list(tp, x, RDT_SUCCESS);
}

static const char *shm_closed_str(uint32_t reason)
{
    switch (reason) {
    case SHM_CLOSED_CLOSE: return "the peer closed it";
    case SHM_CLOSED_ABORT: return "the peer aborted";
    case SHM_CLOSED_PROTOCOL: return "the peer found the stream from this rank broken";
    default: return "closed by the peer";
    }
}

/* Tell the peer we gave up on the pair (it fails in turn) and wake it. @p why (may be NULL)
 * says why, so that a rank that never talked to the one that failed first still names it (as
 * tcp.c's and verbs.c's notices). */
static void shm_peer_signal_closed(shm_peer_t *p, uint32_t reason, const char *why)
{
    if (!p->out)
        return;
    if (why && *why && atomic_load_explicit(&p->out->closed, memory_order_relaxed) == 0) {
        size_t n = strnlen(why, SHM_NOTICE_MAX);
        memcpy(p->out->notice, why, n);
        p->out->notice[n] = '\0';
    }
    atomic_store_explicit(&p->out->closed, reason, memory_order_release);
    shm_wake(p);
}

/* How a pair the peer closed ends: its notice if it gave one (read after `closed` was acquired;
 * printable characters only, it goes into logs; kept in p->gave_up when second-hand), else
 * what `closed` says. */
static void shm_closed_msg(shm_peer_t *p, uint32_t closed, const char *during, char *buf,
                           size_t len)
{
    char why[SHM_NOTICE_MAX + 1];
    size_t i;

    for (i = 0; closed != SHM_CLOSED_CLOSE && i < SHM_NOTICE_MAX && p->in->notice[i]; i++) {
        unsigned char c = (unsigned char)p->in->notice[i];
        why[i] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
    }
    why[i] = '\0';
    snprintf(p->gave_up, sizeof(p->gave_up), "%s", strstr(why, " gave up: ") ? why : "");
    if (why[0])
        snprintf(buf, len, "rank %d (host %s) gave up%s: %s", p->rank, shm_host(p), during, why);
    else
        snprintf(buf, len, "shared-memory connection to rank %d (host %s) lost%s: %s", p->rank,
                 shm_host(p), during, shm_closed_str(closed));
}

/*
 * The pair with @p p is gone for good: complete @p first (if any) with @p first_st and everything
 * queued for the peer with @p st; later posts return @p st. Quiet (debug) when nothing was in
 * flight, as a peer that simply finished.
 */
static void shm_peer_fail(rdt_shm_t *tp, shm_peer_t *p, rdt_status_t st, uint32_t reason,
                          rdt_xfer_t *first, rdt_status_t first_st, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void shm_peer_fail(rdt_shm_t *tp, shm_peer_t *p, rdt_status_t st, uint32_t reason,
                          rdt_xfer_t *first, rdt_status_t first_st, const char *fmt, ...)
{
    rdt_xfer_t *sq, *rv, *rq;
    va_list ap;
    int busy;

    if (p->state == PEER_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(p->fail_msg, sizeof(p->fail_msg), fmt, ap);
    va_end(ap);
    busy = first || p->sq_head || p->rv_head || p->rq_head || p->have_hdr;
    p->state = PEER_FAILED;
    p->fail_status = st;
    tp->nevents++;
    tp->failed_any |= busy;
    /* a second-hand notice ("rank q gave up: ...") is passed on as it came, so that a chain of
     * ranks giving up never pushes the root cause out of the sentence */
    if (busy && !tp->first_fail[0])
        snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", SHM_NOTICE_MAX,
                 p->gave_up[0] ? p->gave_up : p->fail_msg);
    if (reason != SHM_CLOSED_NONE)
        shm_peer_signal_closed(p, reason, tp->first_fail[0] ? tp->first_fail : p->fail_msg);
    if (p->pidfd >= 0) {
        epoll_ctl(tp->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
    }
    if (busy) {
        rdt_warn("shm", "%s", p->fail_msg);
        shm_set_error(tp, "%s", p->fail_msg);
    } else {
        rdt_debug("shm", "%s", p->fail_msg);
    }
    sq = p->sq_head;
    rv = p->rv_head;
    rq = p->rq_head;
    p->sq_head = p->sq_tail = p->rv_head = p->rv_tail = p->rq_head = p->rq_tail = NULL;
    p->have_hdr = 0;
    if (first)
        shm_complete(tp, first, first_st);
    shm_complete_list(tp, rq, st);
    shm_complete_list(tp, rv, st);
    shm_complete_list(tp, sq, st);
}

/*
 * The peer closed, aborted or died. Like a socket closed after its last write, what it wrote
 * before is still delivered: its sends fail now (nobody will read them), our receives are served
 * from the ring until it is drained, and then the pair fails. A complete header waiting for a
 * receive to be posted keeps the pair draining (the receive may come).
 */
static void shm_peer_gone(rdt_shm_t *tp, shm_peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void shm_peer_gone(rdt_shm_t *tp, shm_peer_t *p, const char *fmt, ...)
{
    rdt_xfer_t *sq, *rv;
    va_list ap;

    if (p->state != PEER_UP)
        return;
    if (!p->gone) {
        p->gone = 1;
        tp->nevents++;
        va_start(ap, fmt);
        vsnprintf(p->gone_msg, sizeof(p->gone_msg), fmt, ap);
        va_end(ap);
        if (p->pidfd >= 0)
            epoll_ctl(tp->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
        sq = p->sq_head;
        rv = p->rv_head;
        p->sq_head = p->sq_tail = p->rv_head = p->rv_tail = NULL;
        if (sq || rv) {
            rdt_warn("shm", "%s", p->gone_msg);
            shm_set_error(tp, "%s", p->gone_msg);
            tp->failed_any = 1;
            if (!tp->first_fail[0])
                snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", SHM_NOTICE_MAX,
                         p->gave_up[0] ? p->gave_up : p->gone_msg);
        }
        shm_complete_list(tp, rv, RDT_ERR_PEER_FAILED);
        shm_complete_list(tp, sq, RDT_ERR_PEER_FAILED);
        if (p->state != PEER_UP)
            return;
    }
    if ((!p->have_hdr || p->rx_matched) &&
        atomic_load_explicit(&p->in->head, memory_order_acquire) == p->in_tail)
        shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_NONE, NULL, RDT_SUCCESS, "%s",
                      p->gone_msg);
}

static void shm_peer_died(rdt_shm_t *tp, shm_peer_t *p)
{
    shm_peer_gone(tp, p, "shared-memory connection to rank %d (host %s) lost: its process %d "
                  "died", p->rank, shm_host(p), (int)p->pid);
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static uint64_t shm_out_space(shm_peer_t *p, uint64_t need)
{
    uint64_t space = p->out_size - (p->out_head - p->out_tail);
    if (space < need) {
        p->out_tail = atomic_load_explicit(&p->out->tail, memory_order_acquire);
        space = p->out_size - (p->out_head - p->out_tail);
    }
    return space;
}

/* Write as much of the peer's send queue as its ring takes; publish; wake it. */
static void shm_tx(rdt_shm_t *tp, shm_peer_t *p)
{
    uint64_t start = p->out_head;
    rdt_xfer_t *x;

    while ((x = p->sq_head) != NULL) {
        if (x->hdr_done == 0) {
            int rndv = x->len >= tp->rndv_bytes && x->len > 0 &&
                       (atomic_load_explicit(&p->out->flags, memory_order_acquire) & SHM_RX_CMA);
            if (rndv) {
                unsigned char rec[SHM_RTS_LEN];
                if (shm_out_space(p, SHM_RTS_LEN) < SHM_RTS_LEN)
                    break;
                rdt_shm_rts_pack(x->tag, (uint64_t)x->len, (uint64_t)(uintptr_t)x->buf,
                                 p->rndv_sent++, rec);
                shm_ring_put(p->out_data, p->out_size, p->out_head, rec, SHM_RTS_LEN);
                p->out_head += SHM_RTS_LEN;
                p->sq_head = x->next;
                if (!p->sq_head)
                    p->sq_tail = NULL;
                x->next = NULL;
                if (p->rv_tail)
                    p->rv_tail->next = x;
                else
                    p->rv_head = x;
                p->rv_tail = x;
                continue;
            }
            if (shm_out_space(p, SHM_HDR_LEN) < SHM_HDR_LEN)
                break;
            shm_ring_put(p->out_data, p->out_size, p->out_head, x->hdr, SHM_HDR_LEN);
            p->out_head += SHM_HDR_LEN;
            x->hdr_done = SHM_HDR_LEN;
        }
        if (x->done < x->len) {
            uint64_t space = shm_out_space(p, x->len - x->done);
            size_t c = x->len - x->done;
            if (space == 0)
                break;
            if (c > space)
                c = (size_t)space;
            shm_ring_put(p->out_data, p->out_size, p->out_head, (const char *)x->buf + x->done,
                         c);
            p->out_head += c;
            x->done += c;
            if (x->done < x->len) {
                /* the ring is full: let the consumer start on what is there */
                atomic_store_explicit(&p->out->head, p->out_head, memory_order_release);
                start = p->out_head;
                shm_wake(p);
                continue;
            }
        }
        p->sq_head = x->next;
        if (!p->sq_head)
            p->sq_tail = NULL;
        shm_done_push(tp, x);
    }
    if (p->out_head != start) {
        atomic_store_explicit(&p->out->head, p->out_head, memory_order_release);
        shm_wake(p);
    }
}

/* Rendezvous sends the receiver has finished reading. */
static void shm_rndv_check(rdt_shm_t *tp, shm_peer_t *p)
{
    uint64_t d;

    if (!p->rv_head)
        return;
    d = atomic_load_explicit(&p->out->rndv_done, memory_order_acquire);
    while (p->rndv_completed < d && p->rv_head) {
        rdt_xfer_t *x = p->rv_head;
        p->rv_head = x->next;
        if (!p->rv_head)
            p->rv_tail = NULL;
        p->rndv_completed++;
        shm_done_push(tp, x);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void shm_rx_publish(shm_peer_t *p, uint64_t *published)
{
    if (p->in_tail == *published)
        return;
    atomic_store_explicit(&p->in->tail, p->in_tail, memory_order_release);
    *published = p->in_tail;
    shm_wake(p);
}

/* Returns 0 when a header was parsed, -1 when the peer failed. */
static int shm_rx_header(rdt_shm_t *tp, shm_peer_t *p, uint64_t avail)
{
    unsigned char b[SHM_RTS_LEN];
    size_t k = avail < SHM_RTS_LEN ? (size_t)avail : SHM_RTS_LEN;
    rdt_shm_rec_kind_t kind;
    rdt_shm_rec_t r;
    char why[96] = "";

    /* a record is published whole: what follows its header is there to copy */
    shm_ring_get(p->in_data, tp->ring_bytes, p->in_tail, b, k);
    kind = rdt_shm_rec_parse(b, k, p->rndv_expected, &r, why, sizeof(why));
    if (kind != RDT_SHM_REC_MSG && kind != RDT_SHM_REC_RTS) {
        shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_PROTOCOL, NULL, RDT_SUCCESS,
                      "rank %d (host %s) sent %s, the stream from it is out of sync", p->rank,
                      shm_host(p), why);
        return -1;
    }
    p->rx_rndv = kind == RDT_SHM_REC_RTS;
    if (p->rx_rndv) {
        p->in_addr = r.addr;
        p->in_seq = r.seq;
        p->in_tail += SHM_RTS_LEN;
    } else {
        p->in_tail += SHM_HDR_LEN;
    }
    p->in_tag = r.tag;
    p->in_len = r.len;
    p->have_hdr = 1;
    p->rx_matched = 0;
    return 0;
}

/* Copy a rendezvous payload straight from the sender's buffer. 0 on success, else the peer has
 * failed (and @p x with it). */
static int shm_rx_cma(rdt_shm_t *tp, shm_peer_t *p, rdt_xfer_t *x)
{
    uint32_t closed;

    while (x->done < x->len) {
        size_t c = x->len - x->done, piece = x->part ? SHM_CMA_PART : SHM_CMA_CHUNK;
        struct iovec l, r;
        ssize_t n;

        if (c > piece)
            c = piece;
        if (__atomic_load_n(&tp->abort_req, __ATOMIC_ACQUIRE))
            return -1; /* the abort completes x */
        /* a sender that gave up may have reused its buffer: do not read it */
        closed = atomic_load_explicit(&p->in->closed, memory_order_acquire);
        if (closed)
            goto err_closed;
        l.iov_base = (char *)x->buf + x->done;
        l.iov_len = c;
        r.iov_base = (void *)(uintptr_t)(p->in_addr + x->done);
        r.iov_len = c;
        n = process_vm_readv(p->pid, &l, 1, &r, 1, 0);
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            if (err == EINTR)
                continue;
            if (err == ESRCH) {
                p->rq_head = x->next;
                if (!p->rq_head)
                    p->rq_tail = NULL;
                shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_NONE, x,
                              RDT_ERR_PEER_FAILED,
                              "shared-memory connection to rank %d (host %s) lost: its "
                              "process %d died", p->rank, shm_host(p), (int)p->pid);
                return -1;
            }
            p->rq_head = x->next;
            if (!p->rq_head)
                p->rq_tail = NULL;
            shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_PROTOCOL, x,
                          RDT_ERR_PEER_FAILED,
                          "reading %zu bytes from rank %d (host %s, pid %d) with "
                          "process_vm_readv failed: %s", c, p->rank, shm_host(p), (int)p->pid,
                          strerror(err));
            return -1;
        }
        x->done += (size_t)n;
        if (x->part)
            x->part(x, x->done - (size_t)n, (size_t)n);
    }
    atomic_thread_fence(memory_order_seq_cst);
    closed = atomic_load_explicit(&p->in->closed, memory_order_relaxed);
    if (!closed)
        return 0;
err_closed:
    p->rq_head = x->next;
    if (!p->rq_head)
        p->rq_tail = NULL;
    {
        char during[64], msg[sizeof(p->fail_msg)];
        snprintf(during, sizeof(during), " during a %zu-byte transfer", x->len);
        shm_closed_msg(p, closed, during, msg, sizeof(msg));
        shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_NONE, x, RDT_ERR_PEER_FAILED, "%s",
                      msg);
    }
    return -1;
}

/*
 * Consume what the ring from @p p holds: parse headers, match them with the posted receives in
 * order, fill them. A header with no receive posted leaves the rest in the ring (backpressure).
 */
static void shm_rx(rdt_shm_t *tp, shm_peer_t *p)
{
    uint64_t published = p->in_tail;
    int pass = 0;

    p->in_head = atomic_load_explicit(&p->in->head, memory_order_acquire);
    for (;;) {
        uint64_t avail = p->in_head - p->in_tail;
        rdt_xfer_t *x;

        if (!p->have_hdr) {
            if (avail < SHM_HDR_LEN) {
                shm_rx_publish(p, &published);
                if (++pass > SHM_RX_PASSES)
                    return;
                p->in_head = atomic_load_explicit(&p->in->head, memory_order_acquire);
                if (p->in_head - p->in_tail < SHM_HDR_LEN)
                    return;
                continue;
            }
            if (shm_rx_header(tp, p, avail) != 0)
                return;
            continue;
        }
        x = p->rq_head;
        if (!x) {
            shm_rx_publish(p, &published);
            return;
        }
        if (!p->rx_matched) {
            if (p->in_tag != x->tag || p->in_len != (uint64_t)x->len) {
                p->rq_head = x->next;
                if (!p->rq_head)
                    p->rq_tail = NULL;
                shm_rx_publish(p, &published);
                shm_peer_fail(tp, p, RDT_ERR_PEER_FAILED, SHM_CLOSED_PROTOCOL, x,
                              RDT_ERR_MISMATCH,
                              "rank %d (host %s) sent %" PRIu64 " bytes with tag 0x%" PRIx64
                              ", rank %d expected %zu bytes with tag 0x%" PRIx64,
                              p->rank, shm_host(p), p->in_len, p->in_tag, tp->rank, x->len,
                              x->tag);
                return;
            }
            p->rx_matched = 1;
        }
        if (p->rx_rndv) {
            /* the record is consumed: free its ring space before the long copy */
            shm_rx_publish(p, &published);
            if (shm_rx_cma(tp, p, x) != 0)
                return;
            p->rndv_expected++;
            atomic_store_explicit(&p->in->rndv_done, p->rndv_expected, memory_order_release);
            shm_wake(p);
        } else if (x->done < x->len) {
            size_t c = x->len - x->done;
            if (avail == 0) {
                shm_rx_publish(p, &published);
                if (++pass > SHM_RX_PASSES)
                    return;
                p->in_head = atomic_load_explicit(&p->in->head, memory_order_acquire);
                if (p->in_head == p->in_tail)
                    return;
                continue;
            }
            if (c > avail)
                c = (size_t)avail;
            shm_ring_get(p->in_data, tp->ring_bytes, p->in_tail, (char *)x->buf + x->done, c);
            x->done += c;
            p->in_tail += c;
            if (x->done < x->len)
                continue;
        }
        p->rq_head = x->next;
        if (!p->rq_head)
            p->rq_tail = NULL;
        p->have_hdr = p->rx_matched = p->rx_rndv = 0;
        shm_rx_publish(p, &published);
        shm_complete(tp, x, RDT_SUCCESS);
        if (p->state != PEER_UP || tp->conns_closed)
            return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* One-shot exchanges                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* The sequence word of the buffer of exchange @p s in a share area. */
static _Atomic uint64_t *shm_share_seqp(const unsigned char *area, uint64_t s)
{
    return (_Atomic uint64_t *)(uintptr_t)(area + (s & 1) * RDT_SHM_SHARE_BUF);
}

/* Every rank's share area is mapped: the exchanges can run (decided once, at addrs_set). */
static int shm_share_ready(const rdt_shm_t *tp)
{
    return tp->share_ok;
}

/* The outstanding exchange fails: say why (every rank is told by the abort that follows). */
static void shm_share_fail(rdt_shm_t *tp, rdt_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void shm_share_fail(rdt_shm_t *tp, rdt_status_t st, const char *fmt, ...)
{
    rdt_xfer_t *x = tp->share_x;
    char msg[sizeof(tp->base.error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rdt_warn("shm", "%s", msg);
    shm_set_error(tp, "%s", msg);
    tp->failed_any = 1;
    if (!tp->first_fail[0])
        snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", SHM_NOTICE_MAX, msg);
    tp->share_x = NULL;
    shm_complete(tp, x, st);
}

/*
 * While it waits for a rank's sequence word, each poll also asks for the first lines of the
 * contribution it expects there (as long as its own; at most SHM_SHARE_PREFETCH lines): the pass
 * that finally sees the sequence has then fetched the data lines alongside it, in parallel,
 * instead of missing on them one cross-core transfer later. Only a hint: the data is read after
 * the sequence's acquire load, as before, and a line fetched before its owner wrote it is
 * simply fetched again.
 */
#define SHM_SHARE_PREFETCH 16
#define SHM_CACHE_LINE 64 /* x86-64's and most aarch64's (SHM_LINE pads for the larger ones) */

static void shm_share_prefetch(const unsigned char *b, size_t len)
{
    const unsigned char *d = b + rdt_shm_share_off(len);
    size_t off;

    if (len <= RDT_SHM_SHARE_INLINE)
        return; /* in the sequence's line */
    if (len > SHM_SHARE_PREFETCH * SHM_CACHE_LINE)
        len = SHM_SHARE_PREFETCH * SHM_CACHE_LINE;
    for (off = 0; off < len; off += SHM_CACHE_LINE)
        __builtin_prefetch(d + off, 0, 3);
}

/* Look at the ranks not heard from yet, in rank order; complete the exchange when all are. */
static void shm_share_poll(rdt_shm_t *tp)
{
    rdt_xfer_t *x = tp->share_x;
    const uint64_t s = tp->share_seq, cap = RDT_SHM_SHARE_BUF - RDT_SHM_SHARE_HDR;

    while (tp->share_next < tp->nranks) {
        int r = tp->share_next;
        const unsigned char *b;
        shm_peer_t *p;
        uint64_t seq, w[2];

        if (r == tp->rank) {
            tp->share_views[r] =
                tp->share + (s & 1) * RDT_SHM_SHARE_BUF + rdt_shm_share_off(x->len);
            tp->share_lens[r] = x->len;
            tp->share_next++;
            continue;
        }
        p = &tp->peers[r];
        b = p->share + (s & 1) * RDT_SHM_SHARE_BUF;
        shm_share_prefetch(b, x->len);
        seq = atomic_load_explicit(shm_share_seqp(p->share, s), memory_order_acquire);
        if (seq < s) {
            x->peer = r;
            if (p->state != PEER_UP || p->gone) /* what it posted before going is still good */
                shm_share_fail(tp, p->state == PEER_UP ? RDT_ERR_PEER_FAILED : p->fail_status,
                               "%s (in one-shot exchange #%" PRIu64 ")",
                               p->state == PEER_UP ? p->gone_msg : p->fail_msg, s);
            return;
        }
        memcpy(w, b + 8, sizeof(w)); /* tag, length: the owner wrote them before the sequence */
        if (seq != s || w[0] != x->tag || w[1] > cap) { /* lengths: the caller judges them */
            shm_share_fail(tp, RDT_ERR_MISMATCH,
                           "rank %d (host %s) contributed %" PRIu64 " bytes with tag 0x%" PRIx64
                           " to one-shot exchange #%" PRIu64 ", rank %d %zu bytes with tag 0x%"
                           PRIx64 " to #%" PRIu64, r, shm_host(p), w[1], w[0], seq, tp->rank,
                           x->len, x->tag, s);
            return;
        }
        tp->share_views[r] = b + rdt_shm_share_off(w[1]);
        tp->share_lens[r] = (size_t)w[1];
        tp->share_next++;
    }
    tp->share_x = NULL;
    x->peer = -1;
    shm_complete(tp, x, RDT_SUCCESS);
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void shm_peer_poll(rdt_shm_t *tp, shm_peer_t *p)
{
    uint32_t closed = atomic_load_explicit(&p->in->closed, memory_order_acquire);

    if (p->have_hdr || atomic_load_explicit(&p->in->head, memory_order_relaxed) != p->in_tail)
        shm_rx(tp, p);
    if (p->state != PEER_UP)
        return;
    if (p->sq_head)
        shm_tx(tp, p);
    shm_rndv_check(tp, p);
    if (closed || p->gone) {
        char msg[sizeof(p->gone_msg)];
        if (!p->gone)
            shm_closed_msg(p, closed, "", msg, sizeof(msg));
        else
            msg[0] = '\0'; /* already said */
        shm_peer_gone(tp, p, "%s", msg);
    }
}

/* One pass over the local peers, then the send callbacks that are due. */
static void shm_poll_all(rdt_shm_t *tp)
{
    int i;

    for (i = 0; i < tp->nlocal && !tp->conns_closed; i++) {
        shm_peer_t *p = &tp->peers[tp->local[i]];
        if (p->state == PEER_UP)
            shm_peer_poll(tp, p);
    }
    if (tp->share_x && !tp->conns_closed)
        shm_share_poll(tp);
    if (!tp->conns_closed)
        shm_done_run(tp);
}

/* Something for progress() to do, read from shared memory only. */
static int shm_news(rdt_shm_t *tp)
{
    int i;

    if (tp->done_head)
        return 1;
    if (tp->share_x && (tp->share_next == tp->rank ||
                        atomic_load_explicit(shm_share_seqp(tp->peers[tp->share_next].share,
                                                            tp->share_seq),
                                             memory_order_relaxed) >= tp->share_seq))
        return 1;
    for (i = 0; i < tp->nlocal; i++) {
        shm_peer_t *p = &tp->peers[tp->local[i]];
        if (p->state != PEER_UP)
            continue;
        if ((!p->gone && atomic_load_explicit(&p->in->closed, memory_order_relaxed)) ||
            atomic_load_explicit(&p->in->head, memory_order_relaxed) != p->in_head ||
            (p->have_hdr && p->rq_head && !p->rx_matched))
            return 1;
        if (p->sq_head && atomic_load_explicit(&p->out->tail, memory_order_relaxed) != p->out_tail)
            return 1;
        if (p->rv_head &&
            atomic_load_explicit(&p->out->rndv_done, memory_order_relaxed) != p->rndv_completed)
            return 1;
    }
    return 0;
}

/* Peers without a pidfd: is the process still there? */
static void shm_kill_check(rdt_shm_t *tp)
{
    int i;
    for (i = 0; i < tp->nlocal; i++) {
        shm_peer_t *p = &tp->peers[tp->local[i]];
        if (p->state == PEER_UP && !p->gone && p->pidfd < 0 && kill(p->pid, 0) != 0 &&
            errno == ESRCH)
            shm_peer_died(tp, p);
    }
}

/* epoll: our eventfd (drained) and the peers' pidfds (readable once the process is gone). */
static void shm_wait(rdt_shm_t *tp, int timeout_ms)
{
    struct epoll_event evs[SHM_EVENTS];
    int n, i;

    n = epoll_wait(tp->epfd, evs, SHM_EVENTS, timeout_ms);
    tp->last_check_ms = shm_now_ms();
    for (i = 0; i < n; i++) {
        uint32_t idx = evs[i].data.u32;
        if (idx == UINT32_MAX) {
            uint64_t v;
            if (read(tp->efd, &v, sizeof(v)) < 0) {
                /* EAGAIN: already drained */
            }
        } else if (idx < (uint32_t)tp->nranks && tp->peers[idx].state == PEER_UP) {
            shm_peer_t *p = &tp->peers[idx];
            /* what it published before dying is still good: deliver it first */
            shm_peer_poll(tp, p);
            if (p->state == PEER_UP)
                shm_peer_died(tp, p);
        }
    }
    shm_kill_check(tp);
}

/* Ready to sleep: returns 1 with `sleeping` set, 0 if there is something to do. */
static int shm_sleep_prepare(rdt_shm_t *tp)
{
    uint64_t before = tp->nevents;

    shm_share_wake(tp);
    shm_wait(tp, 0); /* drain the eventfd, notice dead peers */
    if (tp->nevents != before)
        return 0;
    atomic_store_explicit(&tp->hdr->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (shm_news(tp) || __atomic_load_n(&tp->abort_req, __ATOMIC_ACQUIRE)) {
        atomic_store_explicit(&tp->hdr->sleeping, 0, memory_order_relaxed);
        return 0;
    }
    return 1;
}

static void shm_enter(rdt_shm_t *tp)
{
    __atomic_store_n(&tp->driver, (uintptr_t)&shm_thread_tag, __ATOMIC_RELAXED);
    pthread_mutex_lock(&tp->lock);
}

static int shm_abort_requested(rdt_shm_t *tp)
{
    return __atomic_load_n(&tp->abort_req, __ATOMIC_ACQUIRE);
}

/* Phase one of an abort (any thread holding the lock): tell every peer, fail every pair. */
static void shm_abort_conns(rdt_shm_t *tp, uint32_t reason)
{
    char why[sizeof(tp->base.error)] = "";
    int i;

    if (tp->conns_closed)
        return;
    tp->conns_closed = 1;
    if (!tp->base.error[0])
        shm_set_error(tp, "the shm transport of rank %d was aborted", tp->rank);
    /* close() after a clean run (rdt_comm_destroy) is not giving up: no notice then */
    if (reason != SHM_CLOSED_CLOSE || tp->failed_any)
        snprintf(why, sizeof(why), "%s", tp->first_fail[0] ? tp->first_fail : tp->base.error);
    for (i = 0; i < tp->nlocal; i++) {
        shm_peer_t *p = &tp->peers[tp->local[i]];
        if (p->state == PEER_FAILED)
            continue;
        shm_peer_signal_closed(p, reason, why);
        p->state = PEER_FAILED;
        p->fail_status = RDT_ERR_ABORTED;
        snprintf(p->fail_msg, sizeof(p->fail_msg),
                 "the shared-memory connection to rank %d (host %s) was closed by an abort",
                 p->rank, shm_host(p));
    }
}

static void shm_abort_deliver(rdt_shm_t *tp)
{
    rdt_xfer_t *d;
    int i;

    if (tp->abort_delivered)
        return;
    tp->abort_delivered = 1;
    d = tp->done_head;
    tp->done_head = tp->done_tail = NULL;
    shm_complete_list(tp, d, RDT_ERR_ABORTED);
    if (tp->share_x) {
        d = tp->share_x;
        tp->share_x = NULL;
        shm_complete(tp, d, RDT_ERR_ABORTED);
    }
    for (i = 0; i < tp->nranks; i++) {
        shm_peer_t *p = &tp->peers[i];
        rdt_xfer_t *sq = p->sq_head, *rv = p->rv_head, *rq = p->rq_head;
        p->sq_head = p->sq_tail = p->rv_head = p->rv_tail = p->rq_head = p->rq_tail = NULL;
        shm_complete_list(tp, rq, RDT_ERR_ABORTED);
        shm_complete_list(tp, rv, RDT_ERR_ABORTED);
        shm_complete_list(tp, sq, RDT_ERR_ABORTED);
    }
}

static void shm_leave(rdt_shm_t *tp)
{
    if (!tp->conns_closed && shm_abort_requested(tp))
        shm_abort_conns(tp, SHM_CLOSED_ABORT);
    pthread_mutex_unlock(&tp->lock);
}

static rdt_status_t shm_progress(rdt_transport_t *t, int timeout_ms)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    uint64_t before;

    shm_enter(tp);
    if (shm_abort_requested(tp))
        goto aborted;
    before = tp->nevents;
    shm_poll_all(tp);
    shm_share_wake(tp);
    if (shm_abort_requested(tp))
        goto aborted;
    if (tp->nevents == before && tp->outstanding) {
        if (timeout_ms != 0 && shm_sleep_prepare(tp)) {
            int wait = timeout_ms;
            if (tp->wake_cap_ms >= 0 && (wait < 0 || wait > tp->wake_cap_ms))
                wait = tp->wake_cap_ms;
            shm_wait(tp, wait);
            atomic_store_explicit(&tp->hdr->sleeping, 0, memory_order_relaxed);
            if (shm_abort_requested(tp))
                goto aborted;
            shm_poll_all(tp);
        } else if (timeout_ms == 0 && (++tp->idle_polls & 63) == 0 &&
                   shm_now_ms() - tp->last_check_ms >= SHM_DEATH_CHECK_MS) {
            /* the clock only every 64th idle poll: the engine polls back to back */
            shm_wait(tp, 0); /* the only system call of an idle progress(0), and a rare one */
        }
    } else if (tp->nevents == before && timeout_ms != 0) {
        /* nothing posted: wait for a wakeup or abort only */
        shm_wait(tp, timeout_ms < 0 || timeout_ms > 100 ? 100 : timeout_ms);
    }
    if (shm_abort_requested(tp))
        goto aborted;
    shm_share_wake(tp);
    shm_leave(tp);
    return RDT_SUCCESS;

aborted:
    shm_abort_conns(tp, SHM_CLOSED_ABORT);
    shm_abort_deliver(tp);
    shm_leave(tp);
    return RDT_ERR_ABORTED;
}

/* ------------------------------------------------------------------------------------------ */
/* Posting                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* A post involving @p p, which is failed or gone, is refused: its sentence becomes the error and,
 * since the caller gives up on it, what this rank's notices will say. */
static rdt_status_t shm_post_refused(rdt_shm_t *tp, shm_peer_t *p)
{
    const char *msg = p->state == PEER_FAILED ? p->fail_msg : p->gone_msg;

    if (!tp->first_fail[0] && p->fail_status != RDT_ERR_ABORTED) {
        snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", SHM_NOTICE_MAX,
                 p->gave_up[0] ? p->gave_up : msg);
        tp->failed_any = 1;
    }
    shm_set_error(tp, "%s", msg);
    return p->state == PEER_FAILED ? p->fail_status : RDT_ERR_PEER_FAILED;
}

static rdt_status_t shm_post_check(rdt_shm_t *tp, rdt_xfer_t *x, int send)
{
    const char *what = send ? "isend" : "irecv";
    shm_peer_t *p;

    if (shm_abort_requested(tp) || tp->conns_closed)
        return RDT_ERR_ABORTED;
    if (!x || !x->cb || x->peer < 0 || x->peer >= tp->nranks || x->peer == tp->rank ||
        (x->len && !x->buf)) {
        shm_set_error(tp, "%s on rank %d: invalid transfer (peer %d of %d ranks, %zu bytes%s)",
                      what, tp->rank, x ? x->peer : -1, tp->nranks, x ? x->len : 0,
                      x && !x->cb ? ", no callback" : "");
        return RDT_ERR_INVALID_ARG;
    }
    p = &tp->peers[x->peer];
    if (p->state == PEER_FAILED || (p->gone && send)) /* a gone peer never reads a send */
        return shm_post_refused(tp, p);
    if (p->state != PEER_UP) {
        shm_set_error(tp, "%s on rank %d: rank %d (host %s) is not reachable through shared "
                      "memory (%s)", what, tp->rank, p->rank, shm_host(p),
                      tp->addrs_done ? "another host" : "addrs_set was not called");
        return RDT_ERR_INVALID_ARG;
    }
    return RDT_SUCCESS;
}

static rdt_status_t shm_isend(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    rdt_status_t st;
    shm_peer_t *p;

    shm_enter(tp);
    st = shm_post_check(tp, x, 1);
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    rdt_shm_msg_pack(x->tag, (uint64_t)x->len, x->hdr);
    x->hdr_done = 0;
    x->done = 0;
    x->next = NULL;
    tp->outstanding++;
    if (p->sq_tail)
        p->sq_tail->next = x;
    else
        p->sq_head = x;
    p->sq_tail = x;
    if (p->sq_head == x)
        shm_tx(tp, p); /* data goes out now; the callback runs in progress() */
out:
    shm_leave(tp);
    return st;
}

static rdt_status_t shm_irecv(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    rdt_status_t st;
    shm_peer_t *p;

    shm_enter(tp);
    st = shm_post_check(tp, x, 0);
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    x->hdr_done = 0;
    x->done = 0;
    x->next = NULL;
    tp->outstanding++;
    if (p->rq_tail)
        p->rq_tail->next = x;
    else
        p->rq_head = x;
    p->rq_tail = x;
out:
    shm_leave(tp);
    return st;
}

static size_t shm_share_max(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    return shm_share_ready(tp) ? (size_t)(RDT_SHM_SHARE_BUF - RDT_SHM_SHARE_HDR) : 0;
}

static void *shm_share_buf(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    if (!shm_share_ready(tp))
        return NULL;
    return tp->share + ((tp->share_seq + 1) & 1) * RDT_SHM_SHARE_BUF + RDT_SHM_SHARE_HDR;
}

static rdt_status_t shm_ishare(rdt_transport_t *t, rdt_xfer_t *x, const void **views,
                               size_t *lens)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    rdt_status_t st = RDT_SUCCESS;
    unsigned char *b;
    uint64_t w[2];
    int i;

    shm_enter(tp);
    if (shm_abort_requested(tp) || tp->conns_closed) {
        st = RDT_ERR_ABORTED;
        goto out;
    }
    if (!x || !x->cb || !views || !lens || (x->len && !x->buf) || !shm_share_ready(tp) ||
        x->len > RDT_SHM_SHARE_BUF - RDT_SHM_SHARE_HDR || tp->share_x) {
        shm_set_error(tp, "ishare on rank %d: invalid exchange (%zu bytes%s%s)", tp->rank,
                      x ? x->len : 0, tp->share_x ? ", another one is outstanding" : "",
                      shm_share_ready(tp) ? "" : ", not every rank is on this host");
        st = RDT_ERR_INVALID_ARG;
        goto out;
    }
    for (i = 0; i < tp->nlocal; i++) { /* a rank already lost: fail now, as a post to it would */
        shm_peer_t *p = &tp->peers[tp->local[i]];
        if (p->state == PEER_FAILED || p->gone) {
            st = shm_post_refused(tp, p);
            goto out;
        }
    }
    tp->share_seq++;
    b = tp->share + (tp->share_seq & 1) * RDT_SHM_SHARE_BUF;
    if (x->len && x->buf != b + rdt_shm_share_off(x->len)) /* else built in place */
        memmove(b + rdt_shm_share_off(x->len), x->buf, x->len); /* share_buf's: may overlap */
    w[0] = x->tag;
    w[1] = x->len;
    memcpy(b + 8, w, sizeof(w));
    atomic_store_explicit(shm_share_seqp(tp->share, tp->share_seq), tp->share_seq,
                          memory_order_release);
    x->next = NULL;
    x->peer = tp->rank == 0 && tp->nranks > 1 ? 1 : 0;
    tp->share_x = x;
    tp->share_views = views;
    tp->share_lens = lens;
    tp->share_next = 0;
    tp->outstanding++;
    tp->share_wake = 1; /* shm_share_wake, once this call's poll has run */
out:
    shm_leave(tp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Open, addresses, abort, close                                                                */
/* ------------------------------------------------------------------------------------------ */

static size_t shm_pow2(size_t v)
{
    size_t r = SHM_RING_MIN;
    while (r < v && r < SHM_RING_MAX)
        r <<= 1;
    return r;
}

static void shm_unmap_peer(shm_peer_t *p)
{
    if (p->hdr)
        munmap(p->hdr, SHM_PAGE);
    if (p->out_map)
        munmap(p->out_map, p->out_map_len);
    if (p->in_map)
        munmap(p->in_map, p->in_map_len);
    if (p->share)
        munmap((void *)(uintptr_t)p->share, RDT_SHM_SHARE_BYTES);
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->efd >= 0)
        close(p->efd);
    p->hdr = NULL;
    p->out_map = p->in_map = NULL;
    p->out = p->in = NULL;
    p->share = NULL;
    p->pidfd = p->efd = -1;
}

static void shm_free(rdt_shm_t *tp)
{
    int i;

    if (tp->peers)
        for (i = 0; i < tp->nranks; i++)
            shm_unmap_peer(&tp->peers[i]);
    if (tp->hdr)
        munmap(tp->hdr, SHM_PAGE);
    if (tp->share)
        munmap(tp->share, RDT_SHM_SHARE_BYTES);
    if (tp->memfd >= 0)
        close(tp->memfd);
    if (tp->efd >= 0)
        close(tp->efd);
    if (tp->epfd >= 0)
        close(tp->epfd);
    free(tp->peers);
    free(tp->local);
    free(tp);
}

rdt_status_t rdt_shm_open_opts(const rdt_transport_params_t *params, const rdt_shm_opts_t *opts,
                               rdt_transport_t **tp_p)
{
    pthread_mutexattr_t ma;
    struct epoll_event ev;
    rdt_shm_t *tp;
    uint64_t seg_bytes;
    char why[160] = "";
    int i;

    if (!params || !tp_p || params->nranks < 1 || params->rank < 0 ||
        params->rank >= params->nranks)
        return RDT_ERR_INVALID_ARG;
    tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RDT_ERR_NO_MEMORY;
    tp->memfd = tp->efd = tp->epfd = -1;
    tp->base.ops = &rdt_shm_ops;
    tp->rank = params->rank;
    tp->nranks = params->nranks;
    tp->comm_id = params->comm_id;
    memcpy(tp->token, params->token, RDT_TOKEN_LEN);
    tp->ring_bytes = shm_pow2(opts && opts->ring_bytes ? opts->ring_bytes : SHM_RING_DEFAULT);
    tp->rndv_bytes = opts && opts->rndv_bytes ? opts->rndv_bytes : SHM_RNDV_DEFAULT;
    tp->allow_remote = opts ? opts->peers_elsewhere_ok : 0;
    tp->mirror = opts ? opts->error_mirror : NULL;
    tp->mirror_len = opts ? opts->error_mirror_len : 0;
    tp->wake_cap_ms = -1;
    tp->slot_bytes = SHM_PAGE + tp->ring_bytes;
    tp->peers = calloc((size_t)tp->nranks, sizeof(*tp->peers));
    tp->local = calloc((size_t)tp->nranks, sizeof(int));
    if (!tp->peers || !tp->local) {
        shm_free(tp);
        return RDT_ERR_NO_MEMORY;
    }
    for (i = 0; i < tp->nranks; i++) {
        tp->peers[i].rank = i;
        tp->peers[i].pidfd = tp->peers[i].efd = -1;
    }
    if (params->host)
        snprintf(tp->peers[tp->rank].host, RDT_HOST_MAX, "%s", params->host);

    /* The inbound rings of every possible sender; a sparse file, only local peers' slots are
     * ever touched. Nothing is mapped but the header until addrs_set. */
    seg_bytes = SHM_PAGE + (uint64_t)tp->nranks * tp->slot_bytes + RDT_SHM_SHARE_BYTES;
    tp->memfd = memfd_create("rdt-shm", MFD_CLOEXEC);
    if (tp->memfd < 0) {
        snprintf(why, sizeof(why), "memfd_create failed: %s", strerror(errno));
        goto err;
    }
    if (ftruncate(tp->memfd, (off_t)seg_bytes) != 0) {
        snprintf(why, sizeof(why), "sizing the %" PRIu64 "-byte shared segment failed: %s",
                 seg_bytes, strerror(errno));
        goto err;
    }
    tp->hdr = mmap(NULL, SHM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, tp->memfd, 0);
    if (tp->hdr == MAP_FAILED) {
        tp->hdr = NULL;
        snprintf(why, sizeof(why), "mmap of the shared segment failed: %s", strerror(errno));
        goto err;
    }
    tp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    tp->epfd = epoll_create1(EPOLL_CLOEXEC);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = UINT32_MAX;
    if (tp->efd < 0 || tp->epfd < 0 || epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->efd, &ev) != 0) {
        snprintf(why, sizeof(why), "cannot set up the wakeup eventfd: %s", strerror(errno));
        goto err;
    }
    tp->hdr->id.magic = SHM_SEG_MAGIC;
    tp->hdr->id.version = SHM_VERSION;
    tp->hdr->id.rank = (uint32_t)tp->rank;
    tp->hdr->id.nranks = (uint32_t)tp->nranks;
    tp->hdr->id.comm_id = tp->comm_id;
    memcpy(tp->hdr->id.token, tp->token, RDT_TOKEN_LEN);
    tp->hdr->id.pid = (uint32_t)getpid();
    tp->hdr->id.ring_bytes = tp->ring_bytes;
    tp->hdr->id.probe_value = tp->comm_id ^ 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    tp->hdr->id.probe_addr = (uint64_t)(uintptr_t)&tp->hdr->id.probe_value;

    {
        rdt_shm_addr_t a = {(uint32_t)getpid(), (uint32_t)tp->memfd, (uint32_t)tp->efd};
        rdt_shm_addr_pack(&a, tp->addr);
    }

    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&tp->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    tp->last_check_ms = shm_now_ms();
    rdt_debug("shm", "rank %d of %d: segment of %" PRIu64 " bytes (sparse), rings of %zu bytes, "
              "rendezvous from %zu bytes", tp->rank, tp->nranks, seg_bytes, tp->ring_bytes,
              tp->rndv_bytes);
    *tp_p = &tp->base;
    return RDT_SUCCESS;

err:
    rdt_warn("shm", "rank %d: %s", params->rank, why);
    if (params->open_error && params->open_error_len)
        snprintf(params->open_error, params->open_error_len, "%s", why);
    shm_free(tp);
    return RDT_ERR_SYSTEM;
}

static rdt_status_t shm_tp_open(const rdt_transport_params_t *params, rdt_transport_t **tp_p)
{
    return rdt_shm_open_opts(params, NULL, tp_p);
}

static rdt_status_t shm_addr_get(rdt_transport_t *t, void *addr, size_t *len_p)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;

    if (!tp || !addr || !len_p || *len_p < SHM_ADDR_LEN)
        return RDT_ERR_INVALID_ARG;
    memcpy(addr, tp->addr, SHM_ADDR_LEN);
    *len_p = SHM_ADDR_LEN;
    return RDT_SUCCESS;
}

/* Leave a peer unusable with a reason, for a later post to report. */
static void shm_peer_setup_failed(rdt_shm_t *tp, shm_peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void shm_peer_setup_failed(rdt_shm_t *tp, shm_peer_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->fail_msg, sizeof(p->fail_msg), fmt, ap);
    va_end(ap);
    p->state = PEER_FAILED;
    p->fail_status = RDT_ERR_PEER_FAILED;
    shm_unmap_peer(p);
    rdt_warn("shm", "%s", p->fail_msg);
}

/*
 * Map what we need of local peer @p p's segment (its header and our slot in it), our own slot
 * for it, its pidfd and eventfd; probe whether we can read its memory. A peer that cannot be
 * reached is failed (its transfers will say why), not the whole transport.
 */
static void shm_peer_setup(rdt_shm_t *tp, shm_peer_t *p, const unsigned char *a)
{
    rdt_shm_addr_t ad;
    uint32_t pid, memfd, efd;
    struct epoll_event ev;
    rdt_shm_seg_hdr_t snap;
    rdt_shm_seg_t seg;
    struct stat st;
    char path[64], why[160];
    shm_hdr_t *h;
    int fd;

    if (rdt_shm_addr_parse(a, SHM_ADDR_LEN, &ad, why, sizeof(why)) != 0) {
        /* shm_addrs_set checked it already */
        shm_peer_setup_failed(tp, p, "the shm address of rank %d (host %s) is %s", p->rank,
                              shm_host(p), why);
        return;
    }
    pid = ad.pid;
    memfd = ad.memfd;
    efd = ad.efd;

    p->pid = (pid_t)pid;
    p->pidfd = shm_pidfd_open(p->pid);
    if (p->pidfd < 0 && errno == ESRCH) {
        shm_peer_setup_failed(tp, p, "rank %d (host %s) is gone: no process %d", p->rank,
                              shm_host(p), (int)pid);
        return;
    }
    if (p->pidfd < 0 && !atomic_exchange(&shm_logged_pidfd, 1))
        rdt_info("shm", "pidfd_open failed (%s): dead peers are found with kill(pid, 0)",
                 strerror(errno));
    snprintf(path, sizeof(path), "/proc/%u/fd/%u", pid, memfd);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        shm_peer_setup_failed(tp, p, "cannot open the shared segment of rank %d (host %s) at "
                              "%s: %s (is it run by another user, or on another machine with "
                              "the same host name?)", p->rank, shm_host(p), path,
                              strerror(errno));
        return;
    }
    /* Sized before anything is read: a page mapped past the end of the file is a SIGBUS when
     * touched, not an error (the slot it holds for us is checked below). */
    if (fstat(fd, &st) != 0)
        st.st_size = 0;
    if (st.st_size < SHM_PAGE) {
        close(fd);
        shm_peer_setup_failed(tp, p, "%s is not the shared segment of rank %d (host %s) of "
                              "this communicator (a file of %jd bytes)", path, p->rank,
                              shm_host(p), (intmax_t)st.st_size);
        return;
    }
    h = mmap(NULL, SHM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) {
        close(fd);
        shm_peer_setup_failed(tp, p, "mmap of the shared segment of rank %d (host %s) failed: "
                              "%s", p->rank, shm_host(p), strerror(errno));
        return;
    }
    p->hdr = h;
    /* judged and used from one copy: the page stays writable by its owner */
    memcpy(&snap, &h->id, sizeof(snap));
    if (rdt_shm_seg_check((const unsigned char *)&snap, sizeof(snap), (uint64_t)st.st_size, pid,
                          p->rank, tp->rank, tp->nranks, tp->comm_id, tp->token, &seg, why,
                          sizeof(why)) != 0) {
        close(fd);
        shm_peer_setup_failed(tp, p, "%s is not the shared segment of rank %d (host %s) of "
                              "this communicator (%s)", path, p->rank, shm_host(p), why);
        return;
    }
    p->out_size = seg.ring_bytes;
    p->out_map_len = (size_t)seg.out_len;
    p->out_map = mmap(NULL, p->out_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                      (off_t)seg.out_off);
    if (p->out_map == MAP_FAILED) {
        close(fd);
        p->out_map = NULL;
        shm_peer_setup_failed(tp, p, "mmap of the ring to rank %d (host %s) failed: %s",
                              p->rank, shm_host(p), strerror(errno));
        return;
    }
    /* the share areas are used only when every rank is on this host */
    if (tp->share)
        p->share = mmap(NULL, RDT_SHM_SHARE_BYTES, PROT_READ, MAP_SHARED, fd,
                        (off_t)seg.share_off);
    close(fd);
    if (p->share == MAP_FAILED) {
        p->share = NULL;
        shm_peer_setup_failed(tp, p, "mmap of the share area of rank %d (host %s) failed: %s",
                              p->rank, shm_host(p), strerror(errno));
        return;
    }
    p->out = p->out_map;
    p->out_data = (unsigned char *)p->out_map + SHM_PAGE;
    p->in_map_len = tp->slot_bytes;
    p->in_map = mmap(NULL, p->in_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, tp->memfd,
                     (off_t)(SHM_PAGE + (uint64_t)p->rank * tp->slot_bytes));
    if (p->in_map == MAP_FAILED) {
        p->in_map = NULL;
        shm_peer_setup_failed(tp, p, "mmap of the ring from rank %d (host %s) failed: %s",
                              p->rank, shm_host(p), strerror(errno));
        return;
    }
    p->in = p->in_map;
    p->in_data = (unsigned char *)p->in_map + SHM_PAGE;

    /* its eventfd, to wake it */
    if (p->pidfd >= 0)
        p->efd = shm_pidfd_getfd(p->pidfd, (int)efd);
    if (p->efd < 0) {
        if (!atomic_exchange(&shm_logged_getfd, 1))
            rdt_warn("shm", "cannot take the eventfd of rank %d (host %s) with pidfd_getfd "
                     "(%s): sleeping ranks poll every %d ms instead", p->rank, shm_host(p),
                     p->pidfd < 0 ? "no pidfd" : strerror(errno), SHM_NOWAKE_SLEEP_MS);
        tp->wake_cap_ms = SHM_NOWAKE_SLEEP_MS;
    }
    if (p->pidfd >= 0) {
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)p->rank;
        if (epoll_ctl(tp->epfd, EPOLL_CTL_ADD, p->pidfd, &ev) != 0) {
            close(p->pidfd);
            p->pidfd = -1;
        }
    }
    if (p->pidfd < 0 && (tp->wake_cap_ms < 0 || tp->wake_cap_ms > SHM_NOPIDFD_SLEEP_MS))
        tp->wake_cap_ms = SHM_NOPIDFD_SLEEP_MS;

    /* one copy for large messages if we may read its memory (same uid, no ptrace lockdown) */
    {
        uint64_t v = 0;
        struct iovec l = {&v, sizeof(v)}, r = {(void *)(uintptr_t)seg.probe_addr, sizeof(v)};
        ssize_t n = process_vm_readv(p->pid, &l, 1, &r, 1, 0);
        p->cma_ok = n == (ssize_t)sizeof(v) && v == seg.probe_value;
        if (p->cma_ok)
            atomic_fetch_or_explicit(&p->in->flags, SHM_RX_CMA, memory_order_release);
        else if (!atomic_exchange(&shm_logged_cma, 1))
            rdt_warn("shm", "process_vm_readv from rank %d (host %s) failed (%s): large "
                     "messages are copied through shared memory", p->rank, shm_host(p),
                     n < 0 ? strerror(errno) : "probe mismatch");
    }
    p->state = PEER_UP;
    tp->local[tp->nlocal++] = p->rank;
}

static rdt_status_t shm_addrs_set(rdt_transport_t *t, const void *addrs, const char *hosts)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    const char *mine;
    rdt_status_t st = RDT_SUCCESS;
    rdt_shm_addr_t ad;
    char why[160];
    int i;

    if (!tp || !addrs)
        return RDT_ERR_INVALID_ARG;
    shm_enter(tp);
    if (tp->addrs_done) {
        shm_set_error(tp, "addrs_set called twice on rank %d", tp->rank);
        st = RDT_ERR_INVALID_ARG;
        goto out;
    }
    for (i = 0; hosts && i < tp->nranks; i++) {
        const char *h = hosts + (size_t)i * RDT_HOST_MAX;
        snprintf(tp->peers[i].host, RDT_HOST_MAX, "%.*s", (int)strnlen(h, RDT_HOST_MAX - 1), h);
    }
    mine = tp->peers[tp->rank].host;
    /* check everything before touching anything */
    for (i = 0; i < tp->nranks; i++) {
        const unsigned char *a = (const unsigned char *)addrs + (size_t)i * RDT_ADDR_MAX;
        shm_peer_t *p = &tp->peers[i];
        if (i == tp->rank)
            continue;
        p->local = !hosts || strcmp(p->host, mine) == 0;
        if (!p->local) {
            if (tp->allow_remote)
                continue;
            shm_set_error(tp, "rank %d (host %s) is on another host than rank %d (host %s): "
                          "the shm transport only connects ranks of one host (use "
                          "RDT_TRANSPORT=auto)", i, shm_host(p), tp->rank, mine);
            st = RDT_ERR_CONFIG;
            goto out;
        }
        if (rdt_shm_addr_parse(a, SHM_ADDR_LEN, &ad, why, sizeof(why)) != 0) {
            shm_set_error(tp, "the shm address of rank %d (host %s) is %s", i, shm_host(p), why);
            st = RDT_ERR_INVALID_ARG;
            goto out;
        }
    }
    /* every rank here: one-shot exchanges, through the share areas at the segments' ends */
    for (i = 0; i < tp->nranks && (i == tp->rank || tp->peers[i].local); i++)
        ;
    if (i == tp->nranks && tp->nranks > 1) {
        tp->share = mmap(NULL, RDT_SHM_SHARE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, tp->memfd,
                         (off_t)(SHM_PAGE + (uint64_t)tp->nranks * tp->slot_bytes));
        if (tp->share == MAP_FAILED) {
            tp->share = NULL;
            rdt_warn("shm", "rank %d: mmap of its share area failed (%s): no one-shot "
                     "exchanges", tp->rank, strerror(errno));
        }
    }
    for (i = 0; i < tp->nranks; i++) {
        if (i != tp->rank && tp->peers[i].local)
            shm_peer_setup(tp, &tp->peers[i],
                           (const unsigned char *)addrs + (size_t)i * RDT_ADDR_MAX);
    }
    tp->addrs_done = 1;
    tp->share_ok = tp->share && tp->nlocal == tp->nranks - 1;
    for (i = 0; i < tp->nlocal; i++)
        tp->share_ok &= tp->peers[tp->local[i]].share != NULL;
    rdt_info("shm", "rank %d: %d local peer%s through shared memory", tp->rank, tp->nlocal,
             tp->nlocal == 1 ? "" : "s");
out:
    shm_leave(tp);
    return st;
}

static void shm_wakeup(rdt_transport_t *t)
{
    if (t)
        rdt_wire_eventfd_kick(((rdt_shm_t *)t)->efd);
}

/* As tcp_abort(): callbacks now from the driving thread, else by the driver's next call. */
static void shm_abort(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    uintptr_t driver;

    if (!tp)
        return;
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    shm_wakeup(t);
    if (pthread_mutex_trylock(&tp->lock) != 0)
        return;
    driver = __atomic_load_n(&tp->driver, __ATOMIC_RELAXED);
    shm_abort_conns(tp, SHM_CLOSED_ABORT);
    if (driver == 0 || driver == (uintptr_t)&shm_thread_tag)
        shm_abort_deliver(tp);
    pthread_mutex_unlock(&tp->lock);
}

static void shm_close(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;

    if (!tp)
        return;
    pthread_mutex_lock(&tp->lock);
    /* a plain close tells the peers "closed"; an earlier abort already said "aborted", and a
     * close after a failure gives up as an abort does: the peers read why (its notice) */
    shm_abort_conns(tp, shm_abort_requested(tp) || tp->failed_any ? SHM_CLOSED_ABORT
                                                                  : SHM_CLOSED_CLOSE);
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    shm_abort_deliver(tp);
    pthread_mutex_unlock(&tp->lock);
    pthread_mutex_destroy(&tp->lock);
    shm_free(tp);
}

/* Hooks for mux.c (transport.h). */
uint64_t rdt_shm_nevents(rdt_transport_t *t)
{
    return ((rdt_shm_t *)t)->nevents;
}

int rdt_shm_sleep_begin(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    int ok;

    shm_enter(tp);
    ok = tp->nlocal > 0 && !shm_abort_requested(tp) && shm_sleep_prepare(tp);
    shm_leave(tp);
    if (!ok)
        return -1;
    return tp->wake_cap_ms >= 0 ? -2 : tp->epfd;
}

void rdt_shm_sleep_end(rdt_transport_t *t)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    atomic_store_explicit(&tp->hdr->sleeping, 0, memory_order_relaxed);
}

int rdt_shm_peer_is_local(rdt_transport_t *t, int rank)
{
    rdt_shm_t *tp = (rdt_shm_t *)t;
    return rank >= 0 && rank < tp->nranks && rank != tp->rank && tp->peers[rank].local;
}

const rdt_transport_ops_t rdt_shm_ops = {
    .name = "shm",
    .open = shm_tp_open,
    .close = shm_close,
    .addr_get = shm_addr_get,
    .addrs_set = shm_addrs_set,
    .isend = shm_isend,
    .irecv = shm_irecv,
    .progress = shm_progress,
    .abort = shm_abort,
    .wakeup = shm_wakeup,
    .share_max = shm_share_max,
    .ishare = shm_ishare,
    .share_buf = shm_share_buf,
};
