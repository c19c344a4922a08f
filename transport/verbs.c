/*
 * verbs.c - the RDMA verbs transport: one RC queue pair per peer, small messages copied through
 * pre-registered slots, large ones written zero-copy into the receiver's buffer (rendezvous),
 * connected lazily through a small TCP side channel.
 *
 * Connection: each rank listens on params->bind_ip (the side channel). On the first isend/irecv
 * naming a peer the lower rank of the pair creates its QP (INIT), connects and sends a handshake
 * carrying the job token, communicator, rank, and its QP number, PSN, LID, GID, active MTU and the
 * address and rkey of its receive ring; the higher rank checks it, creates its QP, brings it to
 * RTS and answers with the same record; the connector brings its QP to RTS and sends one byte
 * "ready", after which the acceptor may write (before that the connector's QP might still be in
 * INIT and drop packets). The socket then stays open, idle, as a liveness signal: a peer that
 * dies or closes shows up as EOF at once, long before RC retries would run out.
 *
 * RDT_IB_CM=rdmacm instead (verbs_cm_*, below): no side channel. Each rank listens with rdma_cm
 * (rdma_create_id(RDMA_PS_TCP), rdma_bind_addr, rdma_listen) on the data-plane address (or, when
 * that is loopback, on the IPv4 address of the RoCE GID in use: rdma_cm cannot route loopback over
 * RoCE). The lower rank resolves the higher one's address and route, creates its QP with
 * rdma_create_qp on the resolved cm_id (which must be on this transport's device context: the
 * device is opened on librdmacm's own context for that) and calls rdma_connect with a short
 * record as private data (verbs_wire.h: job token, communicator, rank, ring address and rkey;
 * rdma_cm exchanges QP numbers, PSNs and the path itself). The acceptor judges the record as
 * below, rejects a bad one (rdma_reject) or accepts with its own; librdmacm moves both QPs through
 * INIT, RTR and RTS. The acceptor may write once RDMA_CM_EVENT_ESTABLISHED says the connector's
 * QP is ready. The event channel sits in the epoll set; DISCONNECTED (the kernel sends a DREQ
 * when a process holding a connected cm_id dies or closes it), REJECTED, UNREACHABLE and the
 * resolution errors fail the peer (after DISCONNECTED, writes already posted first complete
 * through the QP moved to ERR: verbs_peer_eof). A rank giving up tells why with an RDMA write
 * (with immediate) of the sentence into the peer's control page, and disconnects once that write
 * has completed, so the peer finds it in its CQ before it sees DISCONNECTED
 * (verbs_cm_notice_*).
 *
 * Handshake record, both ways, little-endian, VERBS_HS_LEN bytes (encoded and judged by the pure
 * functions of verbs_wire.c, which a fuzz target runs too):
 *
 *     0      4       8           24        32     36      40    44    48   50  51  52        56
 *     |magic |version| token(16) | comm_id | rank | nranks| qpn | psn | lid|mtu|pad|slot_size |
 *     56          72        80     84    88
 *     | gid (16)  | raddr  | rkey | pad  |
 *
 * Data path, eager (messages shorter than the rendezvous threshold, RDT_IB_RNDV): each
 * direction of a pair has a ring of VERBS_NSLOTS slots of VERBS_SLOT bytes, registered at the
 * receiver. A message goes out as fragments: the first one is a 24-byte header (magic, check,
 * tag, length, as in tcp.c) plus payload, the others are payload only, each copied into a
 * registered staging slot and RDMA-WRITTEN WITH IMMEDIATE into the next remote slot; the
 * immediate carries the slot index. Every slot written uses one credit; the receiver copies a slot
 * out into the matched receive and gives the credit back, piggybacked on its next data write the
 * other way (immediate bits 8 and up), or, once half the ring is owed and no data went back, with
 * a zero-length write whose immediate has VERBS_IMM_CREDIT set:
 *
 *     sender                                receiver ring (VERBS_NSLOTS)
 *     tx_seq --write+imm(slot)-->           [ filled ... | free ... ]
 *            <--write+imm(CREDIT|n)--        rx_head: next slot to copy out
 *
 * Data path, rendezvous (zero-copy, messages of RDT_IB_RNDV bytes or more whose send buffer can
 * be registered; RDT_IB_RNDV=auto, the default, is 64 KiB, or never on a software device such as
 * rxe, where the device's copy is a CPU's anyway and RTS/CTS only adds a round trip): the sender
 * writes only the header, with the RTS magic, into the ring. When the
 * receiver matches it with a receive (in ring order, like any message), it registers the receive
 * buffer (registration cache, below) and writes a CTS record (address, rkey, sequence number)
 * into the sender's CTS inbox, the page after the sender's ring, with VERBS_IMM_CTS. The sender
 * then RDMA-writes the data from its own registered buffer straight into the receive buffer, the
 * last piece WITH IMMEDIATE VERBS_IMM_FIN; RC ordering puts the data in place before the FIN
 * completes there. No copy on either side; one extra half round trip (RTS then CTS).
 *
 *     sender                                receiver
 *     --write+imm(slot): RTS(tag,len)-->    matched: register recv buffer
 *     <--write+imm(CTS|i): addr,rkey--      (inbox record i)
 *     --write ... write+imm(FIN)-->         receive complete
 *     send complete on the last write's completion
 *
 * Flow control: at most VERBS_RNDV_MAX rendezvous sends per direction are between RTS and their
 * last completion, so CTS records and FINs never outnumber the receives posted for them: each
 * QP keeps VERBS_RECV_WRS receives posted (NSLOTS data writes and NSLOTS credit writes at most can
 * be outstanding, plus RNDV_MAX CTS and RNDV_MAX FIN), so a receiver is never "not ready".
 * Completions come from one CQ, polled with ibv_poll_cq; a waiting progress() sleeps in epoll on
 * the completion channel (the CQ is armed only then), the side-channel sockets and a wakeup
 * eventfd.
 *
 * Device and memory: the port (RDT_IB_DEV, or the first active one), its GID (RDT_IB_GID_INDEX,
 * or a RoCE v2 GID that is not link-local) and one protection domain are shared by every
 * transport of the process (verbs_dev_t), with a registration cache keyed by page range, so a
 * buffer registered once (rdt_mem_register, the engine's scratch) serves every communicator.
 *
 * Threads: as in tcp.c, the driving thread holds tp->lock inside every call; abort() from another
 * thread only uses trylock and otherwise leaves the work to the driver.
 */
#include "transport.h"
#include "verbs_wire.h"
#include "wire.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VERBS_MSG_MAGIC 0x31544452u /* "RDT1", the header tcp.c uses too */
#define VERBS_RTS_MAGIC 0x52544452u /* "RDTR": a rendezvous request, header only */
#define VERBS_HDR_LEN 24
#define VERBS_HS_MAGIC RDT_VERBS_HS_MAGIC
#define VERBS_HS_VERSION RDT_VERBS_HS_VERSION
#define VERBS_HS_LEN RDT_VERBS_HS_LEN
#define VERBS_NSLOTS 16
#define VERBS_SLOT (64 * 1024)
#define VERBS_RING_BYTES ((size_t)VERBS_NSLOTS * VERBS_SLOT)
/* After the ring (receiver) and the staging slots (sender), one page of control records: the
 * CTS inbox / outbox, VERBS_RNDV_MAX records of VERBS_CTS_LEN bytes. */
#define VERBS_CTRL_BYTES 4096
#define VERBS_BUF_BYTES (VERBS_RING_BYTES + VERBS_CTRL_BYTES)
#define VERBS_RNDV_MAX 8    /* rendezvous sends in flight per peer and direction */
#define VERBS_RNDV_WR_MAX 8 /* RDMA writes of rendezvous data posted per peer */
#define VERBS_RNDV_PIECE (1u << 30)
/* RDT_IB_RNDV=auto: the zero-copy threshold on a hardware device. On a software one (the
 * vendor ids the kernel's rxe and siw drivers report: RXE_VENDOR_ID, SIW_VENDOR_ID) every byte
 * is copied by a CPU anyway and the RTS/CTS round trip costs more than the copy it saves:
 * eager only there (measured on rxe: docs/benchmarks/2026-11-28-softroce-latency.md). */
#define VERBS_RNDV_DEFAULT (64 * 1024)
#define VERBS_VENDOR_RXE 0xffffffu
#define VERBS_VENDOR_SIW 0x626d74u /* "bmt" */
#define VERBS_CTS_LEN 16
/* Immediate data: a data write carries its slot in the low byte and credits returned for the
 * other direction (piggybacked) above it; a credit-only write has VERBS_IMM_CREDIT set and the
 * count in the low 16 bits; a CTS has VERBS_IMM_CTS and its record index; the last write of
 * rendezvous data has VERBS_IMM_FIN. */
#define VERBS_IMM_CREDIT 0x80000000u
#define VERBS_IMM_CTS 0x40000000u
#define VERBS_IMM_FIN 0x20000000u
#define VERBS_IMM_NOTICE 0x10000000u /* rdma_cm: a failure notice is in the control page */
#define VERBS_IMM_SLOT_MASK 0xffu
#define VERBS_IMM_CREDIT_SHIFT 8
#define VERBS_IMM_CREDIT_MAX 0xffffu
#define VERBS_CREDIT_BATCH (VERBS_NSLOTS / 2)
/* Work requests per QP, each bounded by the protocol (see "Flow control" above): receives for
 * data and credit writes (NSLOTS each) and for CTS and FIN (RNDV_MAX each); sends of data,
 * credits, CTS and rendezvous writes; one more each way for the failure notice under rdma_cm
 * (one per connection, at its end). */
#define VERBS_RECV_WRS (2 * VERBS_NSLOTS + 2 * VERBS_RNDV_MAX + 1)
#define VERBS_SEND_WRS (2 * VERBS_NSLOTS + VERBS_RNDV_MAX + VERBS_RNDV_WR_MAX + 1)
#define VERBS_EVENTS 64
#define VERBS_MAX_PENDING 64
#define VERBS_HS_TIMEOUT_MS 5000
#define VERBS_RETRY_MS 50
#define VERBS_CONNECT_TIMEOUT_DEFAULT_MS 30000
#define VERBS_ADDR_STR 96
#define VERBS_WC_BATCH 32
#define VERBS_NOTICE_MAX 400 /* bytes of a failure notice on the side channel */
#define VERBS_SPIN_US 200 /* busy-poll the CQ this long before sleeping (bounded) */
#define VERBS_CM_LEN RDT_VERBS_CM_LEN
#define VERBS_CM_BACKLOG 64
#define VERBS_CM_PDATA 256 /* RDMA_MAX_PRIVATE_DATA: the most an event carries */
/* rdma_cm: where in the control page a failure notice goes (after the CTS records), and how long
 * close() lets the notices it posted complete before it destroys the QPs. */
#define VERBS_NOTICE_OFF 2048
#define VERBS_NOTICE_WAIT_MS 500
_Static_assert(VERBS_RNDV_MAX * VERBS_CTS_LEN <= VERBS_NOTICE_OFF &&
                   VERBS_NOTICE_OFF + 2 + VERBS_NOTICE_MAX <= VERBS_CTRL_BYTES,
               "the CTS records and the failure notice share the control page");

/*
 * RC reliability settings. Local ACK timeout 4.096 us * 2^17 = 537 ms per attempt; retry_cnt 7
 * gives 8 attempts, so a peer that stops answering fails our writes after about 4.3 s (the side
 * channel usually reports a dead process much sooner). rnr_retry 6 with min_rnr_timer 12 (0.64 ms)
 * would wait about 4.5 ms in total, but receive WRs are posted for every write the credits allow,
 * so RNR should never happen; 7 (retry forever) is avoided on purpose so nothing can hang.
 */
#define VERBS_QP_TIMEOUT 17
#define VERBS_QP_RETRY_CNT 7
#define VERBS_QP_RNR_RETRY 6
#define VERBS_QP_MIN_RNR_TIMER 12

/* epoll data: kind in the top byte, generation and index below (as tcp.c). */
enum {
    VERBS_EV_LISTEN = 1,
    VERBS_EV_WAKE,
    VERBS_EV_CQ,
    VERBS_EV_PEER,
    VERBS_EV_PENDING,
    VERBS_EV_CM
};
/* wr_id: kind in the top byte, peer rank in the middle, sequence number or slot below. */
enum {
    VERBS_WR_DATA = 1,
    VERBS_WR_CREDIT,
    VERBS_WR_RECV,
    VERBS_WR_CTS,
    VERBS_WR_RNDV,
    VERBS_WR_NOTICE
};

typedef enum {
    PEER_IDLE,
    PEER_CONNECTING, /* connector: TCP connect (rdma_cm: address and route resolution) */
    PEER_HS_WAIT,    /* connector: handshake sent (rdma_connect), waiting for the answer */
    PEER_READY_WAIT, /* acceptor: answered (rdma_accept), waiting for "ready" (ESTABLISHED) */
    PEER_UP,
    PEER_FAILED
} verbs_peer_state_t;

/* The queues of transfers a peer holds, each FIFO. A send is in SEND until its last fragment
 * (eager) or its RTS (rendezvous) is posted; eager sends then wait in WAIT for the completion of
 * their last fragment, rendezvous ones in RTS for the receiver's CTS, in RPOST while their RDMA
 * writes are being posted, in RWIP until the last write completes. A receive is in RECV until
 * matched; eager ones complete when their last fragment is copied out, rendezvous ones wait in
 * RRECV for the sender's FIN. */
enum { Q_SEND, Q_WAIT, Q_RTS, Q_RPOST, Q_RWIP, Q_RECV, Q_RRECV, Q_COUNT };

typedef struct verbs_q {
    rdt_xfer_t *head, *tail;
} verbs_q_t;

/* A memory registration: a page range of one device's protection domain (see the cache). */
typedef struct verbs_mr {
    struct verbs_dev *dev;
    uintptr_t start, end; /* page-aligned */
    struct ibv_mr *mr;
    int users;            /* transfers using it now */
    int pinned;           /* rdt_mem_register'd or engine scratch: kept until deregistered */
    int doomed;           /* deregistered while in use: destroyed by its last user */
    uint64_t last_use;    /* LRU stamp */
    struct verbs_mr *next;
} verbs_mr_t;

/* An opened port, shared by every transport of the process that asks for the same device, port
 * and GID: one protection domain, so one registration serves every communicator. */
typedef struct verbs_dev {
    char spec[64];  /* RDT_IB_DEV as asked ("" = first active port) */
    int gid_asked;  /* RDT_IB_GID_INDEX as asked (-1 = automatic) */
    int refs;       /* transports and registrations using it */
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    uint8_t port;
    int gid_index;
    union ibv_gid gid;
    uint16_t lid;
    enum ibv_mtu mtu;
    int is_eth;
    const char *soft; /* "rxe" or "siw": a software device (by vendor id), else NULL */
    uint32_t max_msg; /* largest single RDMA write the port takes */
    /* registration cache, under lock */
    pthread_mutex_t lock;
    verbs_mr_t *mrs;
    size_t cached;   /* bytes of unpinned registrations kept for reuse */
    uint64_t clock;
    int reg_cache;   /* keep unpinned registrations after use (RDT_IB_REG_CACHE) */
    int cm;          /* ctx is librdmacm's (RDT_IB_CM=rdmacm), from cm_devs */
    struct ibv_context **cm_devs; /* rdma_get_devices' list, released with rdma_free_devices */
    struct verbs_dev *next;
} verbs_dev_t;

typedef struct verbs_peer {
    int rank;
    verbs_peer_state_t state;
    char host[RDT_HOST_MAX];
    struct sockaddr_storage sa; /* side channel of a higher-ranked peer */
    socklen_t salen;
    char addr_str[VERBS_ADDR_STR];
    int fd;
    unsigned char hs[VERBS_HS_LEN];
    unsigned hs_done;
    uint64_t deadline, retry_at;
    int last_errno;
    /* verbs resources, created with the connection */
    struct rdma_cm_id *cm_id; /* RDT_IB_CM=rdmacm: the connection's id (owns qp) */
    struct ibv_qp *qp;
    unsigned char *ring, *stage; /* receive ring + CTS inbox (remote writes), send staging */
    struct ibv_mr *ring_mr, *stage_mr;
    uint32_t psn;
    uint64_t raddr;
    uint32_t rkey;
    verbs_q_t q[Q_COUNT];
    /* send side */
    uint32_t tx_seq;      /* next fragment number (slot = tx_seq % NSLOTS) */
    int credits;
    unsigned char stage_busy[VERBS_NSLOTS];
    int credit_inflight;  /* credit writes not completed yet */
    int rndv_out;         /* rendezvous sends between RTS and their last completion */
    int rndv_wr;          /* rendezvous RDMA writes posted, not completed */
    uint32_t cts_in;      /* CTS records received */
    /* receive side */
    uint32_t rx_head;     /* next slot to copy out */
    int filled;           /* slots written by the peer, not copied out yet */
    int owed;             /* slots freed, credits not returned yet */
    int have_hdr;         /* the message at rx_head has been matched with the RECV head */
    uint32_t cts_out;     /* CTS records sent */
    int eof;              /* the side channel closed: fail once the ring is drained */
    int eof_flush;        /* and the QP was put in ERR so written sends complete */
    const char *eof_how;  /* how the end was seen when not on the side channel (rdma_cm) */
    int notice_pending;   /* rdma_cm: our failure notice is posted; disconnect on completion */
    char gave_up[VERBS_NOTICE_MAX + 1]; /* the peer's failure notice, if it sent one */
    rdt_status_t fail_status;
    char fail_msg[384];
} verbs_peer_t;

typedef struct verbs_pending {
    int fd;
    unsigned done;
    uint32_t gen;
    uint64_t deadline;
    unsigned char buf[VERBS_HS_LEN];
    char from[VERBS_ADDR_STR];
} verbs_pending_t;

typedef struct rdt_verbs {
    rdt_transport_t base;
    int rank, nranks;
    uint64_t comm_id;
    unsigned char token[RDT_TOKEN_LEN];
    int connect_timeout_ms;
    size_t rndv_threshold;
    /* device */
    verbs_dev_t *dev;
    struct ibv_comp_channel *chan;
    struct ibv_cq *cq;
    int cq_armed;
    /* side channel and events */
    int epfd, evfd, lfd;
    /* RDT_IB_CM=rdmacm instead of the side channel */
    int use_cm;
    struct rdma_event_channel *cm_chan;
    struct rdma_cm_id *cm_listen;
    struct sockaddr_storage cm_src; /* the address listened on, port 0: connections' source */
    unsigned char addr[RDT_ADDR_MAX];
    size_t addr_len;
    char addr_str[VERBS_ADDR_STR];
    verbs_pending_t pending[VERBS_MAX_PENDING];
    int npending;
    int nconnecting; /* peers in CONNECTING, HS_WAIT or READY_WAIT: they have deadlines */
    uint32_t pending_gen;
    verbs_peer_t *peers;
    uint64_t ncompleted;
    unsigned quiet_polls;
    int rndv_warned;
    int closing;    /* inside close() */
    int failed_any; /* some peer failed: close() then still tells the others why */
    /* threads (see tcp.c) */
    pthread_mutex_t lock;
    uintptr_t driver;
    int abort_req;
    int closed_all;
    int abort_delivered;
} rdt_verbs_t;

static __thread char verbs_thread_tag;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

static uint64_t verbs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t verbs_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void verbs_set_error(rdt_verbs_t *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void verbs_set_error(rdt_verbs_t *tp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->base.error, sizeof(tp->base.error), fmt, ap);
    va_end(ap);
}

static uint64_t verbs_ev_data(unsigned kind, uint32_t gen, uint32_t idx)
{
    return ((uint64_t)kind << 56) | ((uint64_t)(gen & 0xffffffu) << 32) | idx;
}

static uint64_t verbs_wr_id(unsigned kind, int peer, uint32_t low)
{
    return ((uint64_t)kind << 56) | ((uint64_t)(uint32_t)peer << 32) | low;
}

static int verbs_epoll(rdt_verbs_t *tp, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(tp->epfd, op, fd, &ev);
}

static void verbs_close_fd(rdt_verbs_t *tp, int fd)
{
    if (fd < 0)
        return;
    epoll_ctl(tp->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static const char *verbs_host(const verbs_peer_t *p)
{
    return p->host[0] ? p->host : "unknown";
}

static uint32_t verbs_qpn(const verbs_peer_t *p)
{
    return p->qp ? p->qp->qp_num : 0;
}

static int verbs_state_has_deadline(verbs_peer_state_t st)
{
    return st == PEER_CONNECTING || st == PEER_HS_WAIT || st == PEER_READY_WAIT;
}

/* Every state change goes through here, so tp->nconnecting stays right. */
static void verbs_peer_state(rdt_verbs_t *tp, verbs_peer_t *p, verbs_peer_state_t st)
{
    tp->nconnecting += verbs_state_has_deadline(st) - verbs_state_has_deadline(p->state);
    p->state = st;
}

/* ------------------------------------------------------------------------------------------ */
/* Failing peers                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void verbs_q_push(verbs_q_t *q, rdt_xfer_t *x)
{
    x->next = NULL;
    if (q->tail)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
}

static rdt_xfer_t *verbs_q_pop(verbs_q_t *q)
{
    rdt_xfer_t *x = q->head;
    if (x) {
        q->head = x->next;
        if (!q->head)
            q->tail = NULL;
        x->next = NULL;
    }
    return x;
}

/* Sends that still need the peer (not written yet, or waiting for its CTS); the others are
 * written and wait only for their completions (Q_WAIT, Q_RWIP). */
static int verbs_has_unwritten(const verbs_peer_t *p)
{
    return p->q[Q_SEND].head || p->q[Q_RTS].head || p->q[Q_RPOST].head;
}

static int verbs_has_sends(const verbs_peer_t *p)
{
    return verbs_has_unwritten(p) || p->q[Q_WAIT].head || p->q[Q_RWIP].head;
}

static void verbs_mr_put(verbs_mr_t *m);

/* The end of a transfer: its registration is released, then its callback runs. */
static void verbs_xfer_done(rdt_verbs_t *tp, rdt_xfer_t *x, rdt_status_t st)
{
    if (x->tpriv) {
        verbs_mr_put((verbs_mr_t *)x->tpriv);
        x->tpriv = NULL;
    }
    tp->ncompleted++;
    x->cb(x, st);
}

static void verbs_complete_list(rdt_verbs_t *tp, rdt_xfer_t *x, rdt_status_t st)
{
    while (x) {
        rdt_xfer_t *next = x->next;
        x->next = NULL;
        verbs_xfer_done(tp, x, st);
        x = next;
    }
}

/* Empty every queue of @p p, completing receives first, with @p st. */
static void verbs_complete_all(rdt_verbs_t *tp, verbs_peer_t *p, rdt_status_t st)
{
    static const int order[Q_COUNT] = {Q_RECV, Q_RRECV, Q_WAIT, Q_RWIP, Q_RPOST, Q_RTS, Q_SEND};
    verbs_q_t q[Q_COUNT];
    int i;

    memcpy(q, p->q, sizeof(q));
    memset(p->q, 0, sizeof(p->q));
    for (i = 0; i < Q_COUNT; i++)
        verbs_complete_list(tp, q[order[i]].head, st);
}

static int verbs_post(verbs_peer_t *p, unsigned kind, uint32_t low, const void *laddr,
                      uint32_t lkey, size_t len, uint64_t raddr, uint32_t rkey, int plain,
                      uint32_t imm);

/* rdma_cm has no side channel for the notice below: it is RDMA-written, with an immediate, into
 * the peer's control page (2-byte length, the sentence); the disconnect waits for its completion,
 * so that the peer has it in its CQ before it sees DISCONNECTED. */
static int verbs_cm_notice_post(verbs_peer_t *p, const char *why)
{
    unsigned char *b = p->stage + VERBS_RING_BYTES + VERBS_NOTICE_OFF;
    size_t n = strnlen(why, VERBS_NOTICE_MAX);

    b[0] = (unsigned char)n;
    b[1] = (unsigned char)(n >> 8);
    memcpy(b + 2, why, n);
    return verbs_post(p, VERBS_WR_NOTICE, 0, b, p->stage_mr->lkey, 2 + n,
                      p->raddr + VERBS_RING_BYTES + VERBS_NOTICE_OFF, p->rkey, 0,
                      VERBS_IMM_NOTICE);
}

/* The end of a connection under rdma_cm: the peer sees DISCONNECTED; the QP goes to ERR. */
static void verbs_cm_disconnect(verbs_peer_t *p)
{
    struct ibv_qp_attr attr;

    p->notice_pending = 0;
    rdma_disconnect(p->cm_id); /* EINVAL when never connected, which is fine */
    memset(&attr, 0, sizeof(attr));
    attr.qp_state = IBV_QPS_ERR;
    ibv_modify_qp(p->qp, &attr, IBV_QP_STATE);
}

/* The peer's failure notice (rdma_cm) into p->gave_up, printable only: it goes into logs. */
static void verbs_cm_notice_read(verbs_peer_t *p)
{
    const unsigned char *b = p->ring + VERBS_RING_BYTES + VERBS_NOTICE_OFF;
    size_t len = (size_t)(b[0] | (b[1] << 8)), i;

    if (len > VERBS_NOTICE_MAX)
        len = VERBS_NOTICE_MAX;
    for (i = 0; i < len; i++)
        p->gave_up[i] = b[2 + i] < 0x20 || b[2 + i] > 0x7e ? '?' : (char)b[2 + i];
    p->gave_up[len] = '\0';
    if (!p->gave_up[0])
        snprintf(p->gave_up, sizeof(p->gave_up), "(no reason received)");
}

/* Stop a peer's traffic: tell it why on the side channel (@p why, may be NULL), close the side
 * channel and move the QP to ERR (flushing its WRs, whose completions are then ignored).
 * Resources stay until close(). The notice is what lets a rank that only talked to the one who
 * gave up name the rank that failed first: 'A', a 16-bit little-endian length, the sentence. */
static void verbs_peer_shut(rdt_verbs_t *tp, verbs_peer_t *p, const char *why)
{
    if (why && *why && p->cm_id && p->qp && p->state == PEER_UP &&
        verbs_cm_notice_post(p, why) == 0) {
        p->notice_pending = 1; /* disconnected when the write completes (verbs_wc) */
        return;
    }
    if (why && *why && p->fd >= 0 && p->state == PEER_UP) {
        unsigned char msg[3 + VERBS_NOTICE_MAX];
        size_t n = strnlen(why, VERBS_NOTICE_MAX);
        msg[0] = 'A';
        msg[1] = (unsigned char)n;
        msg[2] = (unsigned char)(n >> 8);
        memcpy(msg + 3, why, n);
        /* an idle socket takes a few hundred bytes at once; a dead peer's is simply closed */
        if (send(p->fd, msg, 3 + n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            rdt_debug("verbs", "no failure notice to rank %d: %m", p->rank);
    }
    verbs_close_fd(tp, p->fd);
    p->fd = -1;
    if (p->cm_id && p->qp) {
        verbs_cm_disconnect(p);
        return;
    }
    if (p->qp) {
        struct ibv_qp_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.qp_state = IBV_QPS_ERR;
        ibv_modify_qp(p->qp, &attr, IBV_QP_STATE);
    }
}

/* As tcp_peer_fail: @p first gets @p first_st, everything else queued for the peer @p st. */
static void verbs_peer_fail(rdt_verbs_t *tp, verbs_peer_t *p, rdt_status_t st, rdt_xfer_t *first,
                            rdt_status_t first_st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void verbs_peer_fail(rdt_verbs_t *tp, verbs_peer_t *p, rdt_status_t st, rdt_xfer_t *first,
                            rdt_status_t first_st, const char *fmt, ...)
{
    va_list ap;
    int busy;

    if (p->state == PEER_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(p->fail_msg, sizeof(p->fail_msg), fmt, ap);
    va_end(ap);
    busy = first || verbs_has_sends(p) || p->q[Q_RECV].head || p->q[Q_RRECV].head || p->filled;
    tp->failed_any |= busy;
    verbs_peer_shut(tp, p, p->fail_msg);
    verbs_peer_state(tp, p, PEER_FAILED);
    p->fail_status = st;
    if (busy) {
        rdt_warn("verbs", "%s", p->fail_msg);
        verbs_set_error(tp, "%s", p->fail_msg);
    } else {
        rdt_debug("verbs", "%s", p->fail_msg);
    }
    if (first) {
        first->next = NULL;
        verbs_xfer_done(tp, first, first_st);
    }
    verbs_complete_all(tp, p, st);
}

static void verbs_peer_lost(rdt_verbs_t *tp, verbs_peer_t *p, int err)
{
    char eb[128];
    if (p->gave_up[0]) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "rank %d (host %s) gave up: %s", p->rank, verbs_host(p), p->gave_up);
        return;
    }
    if (p->eof_how && !err) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "connection to rank %d (host %s) on qp 0x%x lost: %s", p->rank,
                        verbs_host(p), verbs_qpn(p), p->eof_how);
        return;
    }
    verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                    "connection to rank %d (host %s) on qp 0x%x lost: side channel %s", p->rank,
                    verbs_host(p), verbs_qpn(p),
                    err ? strerror_r(err, eb, sizeof(eb)) : "closed by the peer");
}

/* ------------------------------------------------------------------------------------------ */
/* Device, GID, memory                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int verbs_gid_is_link_local(const union ibv_gid *g)
{
    return g->raw[0] == 0xfe && (g->raw[1] & 0xc0) == 0x80;
}

static int verbs_gid_is_v4mapped(const union ibv_gid *g)
{
    static const unsigned char pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(g->raw, pfx, sizeof(pfx)) == 0;
}

/* RoCE: a RoCE v2 GID that is not link-local, IPv4-mapped preferred. InfiniBand: GID 0.
 * Queried with ibv_query_gid_table (ibv_query_gid_ex on kernels without it), never sysfs. */
static int verbs_pick_gid(verbs_dev_t *d, int gid_tbl_len, int nports)
{
    struct ibv_gid_entry *ents;
    ssize_t n, i;
    int best = -1, best_score = -1;

    if (!d->is_eth) {
        d->gid_index = 0;
        if (ibv_query_gid(d->ctx, d->port, 0, &d->gid) != 0)
            memset(&d->gid, 0, sizeof(d->gid));
        return 0;
    }
    if (gid_tbl_len < 1)
        gid_tbl_len = 1;
    /* the table of all ports: more room than the device has entries is EINVAL */
    ents = calloc((size_t)gid_tbl_len * nports, sizeof(*ents));
    if (!ents)
        return -1;
    n = ibv_query_gid_table(d->ctx, ents, (size_t)gid_tbl_len * nports, 0);
    if (n < 0) {
        /* older kernels: one entry at a time, for this port only */
        for (i = n = 0; i < gid_tbl_len; i++)
            if (ibv_query_gid_ex(d->ctx, d->port, (uint32_t)i, &ents[n], 0) == 0)
                n++;
    }
    for (i = 0; i < n; i++) {
        const struct ibv_gid_entry *e = &ents[i];
        union ibv_gid g;
        int score;
        if (e->port_num != d->port || e->gid_type != IBV_GID_TYPE_ROCE_V2)
            continue;
        memcpy(g.raw, e->gid.raw, sizeof(g.raw));
        if (verbs_gid_is_link_local(&g))
            continue;
        score = verbs_gid_is_v4mapped(&g) ? 2 : 1;
        if (score > best_score) {
            best_score = score;
            best = (int)e->gid_index;
            d->gid = g;
        }
    }
    free(ents);
    if (best < 0)
        return -1;
    d->gid_index = best;
    return 0;
}

/* RDT_IB_GID_INDEX: the entry must exist on the port and be filled in. */
static int verbs_use_gid(verbs_dev_t *d, int index, int gid_tbl_len, char *err, size_t errlen)
{
    struct ibv_gid_entry e;
    static const unsigned char zero[16];

    if (index >= gid_tbl_len ||
        ibv_query_gid_ex(d->ctx, d->port, (uint32_t)index, &e, 0) != 0 ||
        memcmp(e.gid.raw, zero, sizeof(zero)) == 0) {
        snprintf(err, errlen, "RDT_IB_GID_INDEX=%d: %s port %u has no GID at that index (its "
                 "table has %d entries; `ibv_devinfo -v` lists them)", index,
                 ibv_get_device_name(d->ctx->device), d->port, gid_tbl_len);
        return -1;
    }
    memcpy(d->gid.raw, e.gid.raw, sizeof(d->gid.raw));
    d->gid_index = index;
    if (d->is_eth && e.gid_type != IBV_GID_TYPE_ROCE_V2)
        rdt_warn("verbs", "RDT_IB_GID_INDEX=%d on %s port %u is not a RoCE v2 GID", index,
                 ibv_get_device_name(d->ctx->device), d->port);
    return 0;
}

/* Open the port @p spec ("name[:port]", "" = the first device with an active port) names. */
static int verbs_port_open(verbs_dev_t *d, const char *spec, int *gid_tbl_len, int *nports,
                           char *err, size_t errlen)
{
    struct ibv_device **list;
    char name[64] = "", names[256] = "";
    int ndev = 0, i, want_port = 0, found = 0, named = 0;
    const char *colon = strchr(spec, ':');

    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || v < 1 || v > 255) {
            snprintf(err, errlen, "RDT_IB_DEV=%s: expected name[:port] with a port from 1 to 255",
                     spec);
            return -1;
        }
        want_port = (int)v;
    }
    snprintf(name, sizeof(name), "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    list = ibv_get_device_list(&ndev);
    if (!list || ndev == 0) {
        snprintf(err, errlen, "no RDMA device found (is rdma_rxe or a NIC driver loaded?)");
        if (list)
            ibv_free_device_list(list);
        return -1;
    }
    for (i = 0; i < ndev && !found; i++) {
        const char *dn = ibv_get_device_name(list[i]);
        struct ibv_device_attr da;
        struct ibv_context *ctx;
        uint8_t port;

        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "", dn);
        if (name[0] && strcmp(name, dn) != 0)
            continue;
        named = 1;
        ctx = ibv_open_device(list[i]);
        if (!ctx)
            continue;
        if (ibv_query_device(ctx, &da) != 0) {
            ibv_close_device(ctx);
            continue;
        }
        if (want_port > da.phys_port_cnt) {
            snprintf(err, errlen, "RDT_IB_DEV=%s: %s has %u port(s)", spec, dn, da.phys_port_cnt);
            ibv_close_device(ctx);
            ibv_free_device_list(list);
            return -1;
        }
        for (port = 1; port <= da.phys_port_cnt && !found; port++) {
            struct ibv_port_attr pa;
            if (want_port && port != want_port)
                continue;
            if (ibv_query_port(ctx, port, &pa) != 0 || pa.state != IBV_PORT_ACTIVE)
                continue;
            d->ctx = ctx;
            d->port = port;
            d->lid = pa.lid;
            d->mtu = pa.active_mtu;
            d->is_eth = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
            d->soft = da.vendor_id == VERBS_VENDOR_RXE   ? "rxe"
                      : da.vendor_id == VERBS_VENDOR_SIW ? "siw"
                                                         : NULL;
            d->max_msg = pa.max_msg_sz && pa.max_msg_sz < VERBS_RNDV_PIECE ? pa.max_msg_sz
                                                                           : VERBS_RNDV_PIECE;
            *gid_tbl_len = pa.gid_tbl_len;
            *nports = da.phys_port_cnt;
            found = 1;
        }
        if (!found)
            ibv_close_device(ctx);
    }
    ibv_free_device_list(list);
    if (found)
        return 0;
    if (name[0] && !named)
        snprintf(err, errlen, "RDT_IB_DEV=%s: no such RDMA device (this host has: %s)", spec,
                 names);
    else if (name[0])
        snprintf(err, errlen, "RDT_IB_DEV=%s: %s %s", spec,
                 want_port ? "that port is not active on" : "no active port on", name);
    else
        snprintf(err, errlen, "no RDMA device has an active port (devices: %s)", names);
    return -1;
}

static pthread_mutex_t verbs_devs_lock = PTHREAD_MUTEX_INITIALIZER;
static verbs_dev_t *verbs_devs;
static size_t verbs_locked; /* bytes this process has registered, under verbs_devs_lock */

static void verbs_dev_free(verbs_dev_t *d)
{
    if (d->pd)
        ibv_dealloc_pd(d->pd);
    if (d->cm_devs)
        rdma_free_devices(d->cm_devs); /* librdmacm keeps its contexts open until exit */
    else if (d->ctx)
        ibv_close_device(d->ctx);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/*
 * RDT_IB_CM=rdmacm: rdma_cm gives each cm_id librdmacm's own context of its device
 * (cm_id->verbs, opened once per device and kept until the process exits), and a QP, its PD and
 * its CQ must share one context. So the port opened above is used through that context instead:
 * its PD, CQ and memory registrations are then the ones rdma_create_qp accepts.
 */
static int verbs_dev_use_cm_ctx(verbs_dev_t *d, char *err, size_t errlen)
{
    const char *name = ibv_get_device_name(d->ctx->device);
    struct ibv_context **list;
    int n = 0, i;

    list = rdma_get_devices(&n);
    if (!list) {
        snprintf(err, errlen, "RDT_IB_CM=rdmacm: librdmacm lists no RDMA device (%s; is the "
                 "rdma_ucm module loaded?)", strerror(errno));
        return -1;
    }
    for (i = 0; i < n; i++)
        if (strcmp(ibv_get_device_name(list[i]->device), name) == 0)
            break;
    if (i == n) {
        snprintf(err, errlen, "RDT_IB_CM=rdmacm: librdmacm does not list %s", name);
        rdma_free_devices(list);
        return -1;
    }
    ibv_close_device(d->ctx);
    d->ctx = list[i];
    d->cm_devs = list;
    return 0;
}

/* The shared port for (@p spec, @p gid, @p cm), opened on first use. NULL with @p err filled. */
static verbs_dev_t *verbs_dev_get(const char *spec, int gid, int reg_cache, int cm, char *err,
                                  size_t errlen)
{
    verbs_dev_t *d;
    int gid_tbl_len = 0, nports = 1;

    if (!spec)
        spec = "";
    if (gid < 0)
        gid = -1;
    pthread_mutex_lock(&verbs_devs_lock);
    for (d = verbs_devs; d; d = d->next)
        if (strcmp(d->spec, spec) == 0 && d->gid_asked == gid && d->cm == cm) {
            d->refs++;
            pthread_mutex_unlock(&verbs_devs_lock);
            return d;
        }
    d = calloc(1, sizeof(*d));
    if (!d) {
        pthread_mutex_unlock(&verbs_devs_lock);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    snprintf(d->spec, sizeof(d->spec), "%s", spec);
    d->gid_asked = gid;
    d->reg_cache = reg_cache;
    d->cm = cm;
    if (verbs_port_open(d, spec, &gid_tbl_len, &nports, err, errlen) != 0)
        goto fail;
    if (cm && verbs_dev_use_cm_ctx(d, err, errlen) != 0)
        goto fail;
    if (gid >= 0) {
        if (verbs_use_gid(d, gid, gid_tbl_len, err, errlen) != 0)
            goto fail;
    } else if (verbs_pick_gid(d, gid_tbl_len, nports) != 0) {
        snprintf(err, errlen, "%s port %u has no usable RoCE v2 GID (not link-local); give one "
                 "with RDT_IB_GID_INDEX", ibv_get_device_name(d->ctx->device), d->port);
        goto fail;
    }
    d->pd = ibv_alloc_pd(d->ctx);
    if (!d->pd) {
        snprintf(err, errlen, "ibv_alloc_pd on %s failed: %s", ibv_get_device_name(d->ctx->device),
                 strerror(errno));
        goto fail;
    }
    d->refs = 1;
    d->next = verbs_devs;
    verbs_devs = d;
    pthread_mutex_unlock(&verbs_devs_lock);
    return d;

fail:
    pthread_mutex_unlock(&verbs_devs_lock);
    verbs_dev_free(d);
    return NULL;
}

static void verbs_dev_ref(verbs_dev_t *d)
{
    pthread_mutex_lock(&verbs_devs_lock);
    d->refs++;
    pthread_mutex_unlock(&verbs_devs_lock);
}

static void verbs_dev_put(verbs_dev_t *d)
{
    verbs_dev_t **pp;
    verbs_mr_t *m;

    if (!d)
        return;
    pthread_mutex_lock(&verbs_devs_lock);
    if (--d->refs > 0) {
        pthread_mutex_unlock(&verbs_devs_lock);
        return;
    }
    for (pp = &verbs_devs; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    /* nothing uses the device: what is left in the cache is unpinned and unused */
    while ((m = d->mrs) != NULL) {
        d->mrs = m->next;
        verbs_locked -= m->end - m->start;
        ibv_dereg_mr(m->mr);
        free(m);
    }
    pthread_mutex_unlock(&verbs_devs_lock);
    verbs_dev_free(d);
}

/* Room for @p len more locked bytes under RLIMIT_MEMLOCK? Otherwise a sentence in @p err. */
static int verbs_memlock_ok(size_t len, const char *what, char *err, size_t errlen)
{
    struct rlimit rl;
    size_t locked;

    pthread_mutex_lock(&verbs_devs_lock);
    locked = verbs_locked;
    pthread_mutex_unlock(&verbs_devs_lock);
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        locked + len <= rl.rlim_cur)
        return 1;
    snprintf(err, errlen, "cannot pin %zu KiB for %s: the locked-memory limit is %llu KiB and "
             "%zu KiB are pinned already (raise ulimit -l, e.g. to unlimited)", len >> 10, what,
             (unsigned long long)(rl.rlim_cur >> 10), locked >> 10);
    return 0;
}

/* ibv_reg_mr after the memlock check; NULL with @p err filled. */
static struct ibv_mr *verbs_reg_raw(verbs_dev_t *d, void *buf, size_t len, int access,
                                    const char *what, char *err, size_t errlen)
{
    struct ibv_mr *mr;

    if (!verbs_memlock_ok(len, what, err, errlen))
        return NULL;
    mr = ibv_reg_mr(d->pd, buf, len, access);
    if (!mr) {
        int e = errno;
        snprintf(err, errlen, "ibv_reg_mr of %zu KiB for %s failed: %s%s", len >> 10, what,
                 strerror(e), e == ENOMEM || e == EPERM ? " (raise ulimit -l)" : "");
        return NULL;
    }
    pthread_mutex_lock(&verbs_devs_lock);
    verbs_locked += len;
    pthread_mutex_unlock(&verbs_devs_lock);
    return mr;
}

static void verbs_dereg_raw(struct ibv_mr *mr, size_t len)
{
    if (!mr)
        return;
    ibv_dereg_mr(mr);
    pthread_mutex_lock(&verbs_devs_lock);
    verbs_locked -= len;
    pthread_mutex_unlock(&verbs_devs_lock);
}

/*
 * Registration cache. Entries are page ranges of one protection domain. A transfer takes a
 * "user" reference on the entry that contains its buffer (registering the buffer's pages if
 * none does) and drops it when it completes. Pinned entries (rdt_mem_register, the engine's
 * scratch) stay until deregistered. Unpinned ones are deregistered when their last user is done,
 * unless RDT_IB_REG_CACHE=1 keeps them for the next call on the same pages: a registration pins
 * the pages it was made on, so a buffer freed and reallocated at the same address would then be
 * read and written through its old pages. That is why caching implicit registrations is opt-in
 * (as Open MPI's mpi_leave_pinned), and why pinning through rdt_mem_register is the fast path.
 * Kept entries are evicted least recently used beyond VERBS_CACHE_MAX bytes.
 */
#define VERBS_CACHE_MAX ((size_t)1 << 30)

static int verbs_page_range(const void *buf, size_t len, uintptr_t *start, uintptr_t *end)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t b = (uintptr_t)buf;
    if (len == 0 || b + len < b)
        return -1;
    *start = b & ~(pg - 1);
    *end = (b + len + pg - 1) & ~(pg - 1);
    return 0;
}

static void verbs_mr_destroy(verbs_dev_t *d, verbs_mr_t *m)
{
    verbs_mr_t **pp;
    for (pp = &d->mrs; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    verbs_dereg_raw(m->mr, m->end - m->start);
    free(m);
}

/* Under d->lock: drop unused unpinned entries beyond the cache budget, oldest first. */
static void verbs_cache_trim(verbs_dev_t *d, size_t budget)
{
    while (d->cached > budget) {
        verbs_mr_t *m, *old = NULL;
        for (m = d->mrs; m; m = m->next)
            if (!m->pinned && m->users == 0 && (!old || m->last_use < old->last_use))
                old = m;
        if (!old)
            return;
        d->cached -= old->end - old->start;
        verbs_mr_destroy(d, old);
    }
}

/* A registration covering [buf, buf + len): with @p pin, a new pinned entry for exactly those
 * pages (rdt_mem_register); otherwise a user reference on any entry that contains them, made if
 * none does. NULL with @p err filled. */
static verbs_mr_t *verbs_mr_get(verbs_dev_t *d, void *buf, size_t len, int pin, char *err,
                                size_t errlen)
{
    uintptr_t start, end;
    verbs_mr_t *m = NULL;

    if (verbs_page_range(buf, len, &start, &end) != 0) {
        snprintf(err, errlen, "cannot register %zu bytes at %p", len, buf);
        return NULL;
    }
    pthread_mutex_lock(&d->lock);
    if (!pin)
        for (m = d->mrs; m; m = m->next)
            if (m->start <= start && end <= m->end && !m->doomed)
                break;
    if (!m) {
        m = calloc(1, sizeof(*m));
        if (!m) {
            pthread_mutex_unlock(&d->lock);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (!pin && d->reg_cache)
            verbs_cache_trim(d, VERBS_CACHE_MAX > end - start ? VERBS_CACHE_MAX - (end - start)
                                                             : 0);
        m->mr = verbs_reg_raw(d, (void *)start, end - start,
                              IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
                              pin ? "rdt_mem_register" : "a zero-copy transfer", err, errlen);
        if (!m->mr) {
            pthread_mutex_unlock(&d->lock);
            free(m);
            return NULL;
        }
        m->dev = d;
        m->start = start;
        m->end = end;
        m->pinned = pin;
        m->next = d->mrs;
        d->mrs = m;
        if (!pin)
            d->cached += end - start;
    }
    if (!pin)
        m->users++;
    m->last_use = ++d->clock;
    pthread_mutex_unlock(&d->lock);
    return m;
}

/* Drop a user reference; an unpinned entry nobody uses goes unless the cache keeps it. */
static void verbs_mr_put(verbs_mr_t *m)
{
    verbs_dev_t *d = m->dev;

    pthread_mutex_lock(&d->lock);
    m->users--;
    if (m->users == 0 && m->doomed)
        verbs_mr_destroy(d, m);
    else if (m->users == 0 && !m->pinned)
        verbs_cache_trim(d, d->reg_cache ? VERBS_CACHE_MAX : 0);
    pthread_mutex_unlock(&d->lock);
}

/* rdt_mem_deregister: the entry goes now, or when the transfers using it complete (the caller
 * may free the memory after that, so the entry must never serve another transfer). */
static void verbs_mr_unpin(verbs_mr_t *m)
{
    verbs_dev_t *d = m->dev;

    pthread_mutex_lock(&d->lock);
    m->pinned = 0;
    m->doomed = 1;
    if (m->users == 0)
        verbs_mr_destroy(d, m);
    pthread_mutex_unlock(&d->lock);
    verbs_dev_put(d);
}

static int verbs_post_recv(verbs_peer_t *p, uint32_t i)
{
    struct ibv_recv_wr wr, *bad;
    memset(&wr, 0, sizeof(wr));
    wr.wr_id = verbs_wr_id(VERBS_WR_RECV, p->rank, i);
    wr.num_sge = 0; /* write with immediate: the data land in the ring, not here */
    return ibv_post_recv(p->qp, &wr, &bad);
}

static void verbs_qp_init_attr(rdt_verbs_t *tp, struct ibv_qp_init_attr *ia)
{
    memset(ia, 0, sizeof(*ia));
    ia->send_cq = tp->cq;
    ia->recv_cq = tp->cq;
    ia->qp_type = IBV_QPT_RC;
    ia->cap.max_send_wr = VERBS_SEND_WRS;
    ia->cap.max_recv_wr = VERBS_RECV_WRS;
    ia->cap.max_send_sge = 1;
    ia->cap.max_recv_sge = 1;
}

/* A new QP in INIT (either way of connecting): its receives posted, the send credits full. */
static int verbs_peer_qp_ready(rdt_verbs_t *tp, verbs_peer_t *p)
{
    uint32_t i;

    for (i = 0; i < VERBS_RECV_WRS; i++)
        if (verbs_post_recv(p, i) != 0) {
            verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                            "ibv_post_recv on qp 0x%x for rank %d (host %s) failed",
                            p->qp->qp_num, p->rank, verbs_host(p));
            return -1;
        }
    p->psn = (uint32_t)((verbs_now_ms() * 2654435761u) ^ ((uint32_t)tp->rank << 12) ^
                        (uint32_t)p->rank) & 0xffffff;
    p->credits = VERBS_NSLOTS;
    return 0;
}

/* Buffers and MRs, then (side channel) a QP in INIT with its receives posted; under rdma_cm the
 * QP comes later, on the resolved cm_id (verbs_cm_qp_create). Fails the peer on error. */
static int verbs_peer_resources(rdt_verbs_t *tp, verbs_peer_t *p)
{
    struct ibv_qp_init_attr ia;
    struct ibv_qp_attr attr;
    char what[96], err[sizeof(tp->base.error)];

    if (posix_memalign((void **)&p->ring, 4096, VERBS_BUF_BYTES) != 0 ||
        posix_memalign((void **)&p->stage, 4096, VERBS_BUF_BYTES) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NO_MEMORY, NULL, RDT_SUCCESS,
                        "no memory for the buffers of the connection to rank %d (host %s)",
                        p->rank, verbs_host(p));
        return -1;
    }
    memset(p->ring + VERBS_RING_BYTES, 0, VERBS_CTRL_BYTES);
    memset(p->stage + VERBS_RING_BYTES, 0, VERBS_CTRL_BYTES);
    snprintf(what, sizeof(what), "the connection to rank %d (host %s)", p->rank, verbs_host(p));
    p->ring_mr = verbs_reg_raw(tp->dev, p->ring, VERBS_BUF_BYTES,
                               IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, what, err,
                               sizeof(err));
    if (p->ring_mr)
        p->stage_mr = verbs_reg_raw(tp->dev, p->stage, VERBS_BUF_BYTES, IBV_ACCESS_LOCAL_WRITE,
                                    what, err, sizeof(err));
    if (!p->ring_mr || !p->stage_mr) {
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS, "rank %d: %s", tp->rank, err);
        return -1;
    }
    if (tp->use_cm)
        return 0;
    verbs_qp_init_attr(tp, &ia);
    p->qp = ibv_create_qp(tp->dev->pd, &ia);
    if (!p->qp) {
        char eb[128];
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                        "ibv_create_qp for rank %d (host %s) failed: %s", p->rank,
                        verbs_host(p), strerror_r(errno, eb, sizeof(eb)));
        return -1;
    }
    memset(&attr, 0, sizeof(attr));
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = tp->dev->port;
    attr.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;
    if (ibv_modify_qp(p->qp, &attr,
                      IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                        "cannot move qp 0x%x for rank %d (host %s) to INIT", p->qp->qp_num,
                        p->rank, verbs_host(p));
        return -1;
    }
    return verbs_peer_qp_ready(tp, p);
}

_Static_assert(IBV_MTU_256 == RDT_VERBS_MTU_MIN && IBV_MTU_4096 == RDT_VERBS_MTU_MAX,
               "the record's MTU codes are enum ibv_mtu");

/* Our handshake record for peer @p p. */
static void verbs_hs_fill(rdt_verbs_t *tp, verbs_peer_t *p, unsigned char *h)
{
    rdt_verbs_hs_t r;

    memset(&r, 0, sizeof(r));
    rdt_wire_hello_fill(&r.hello, VERBS_HS_MAGIC, VERBS_HS_VERSION, tp->token, tp->comm_id,
                        tp->rank, tp->nranks);
    r.qpn = p->qp->qp_num;
    r.psn = p->psn;
    r.lid = tp->dev->lid;
    r.mtu = (uint8_t)tp->dev->mtu;
    r.slot_size = VERBS_SLOT;
    memcpy(r.gid, tp->dev->gid.raw, 16);
    r.raddr = (uint64_t)(uintptr_t)p->ring;
    r.rkey = p->ring_mr->rkey;
    rdt_verbs_hs_pack(&r, h);
}

/* What a connection record from peer @p peer (-1: whoever connected to us) must say. */
static void verbs_want(const rdt_verbs_t *tp, int peer, rdt_verbs_hs_want_t *w)
{
    w->token = tp->token;
    w->comm_id = tp->comm_id;
    w->nranks = tp->nranks;
    w->self = tp->rank;
    w->peer = peer;
    w->slot_size = VERBS_SLOT;
    w->buf_bytes = VERBS_BUF_BYTES;
}

/* Judge a complete record from peer @p peer (-1: whoever connected to us) with
 * rdt_verbs_hs_check; on failure the reason goes to @p why. */
static int verbs_hs_check(rdt_verbs_t *tp, const unsigned char *h, int peer, rdt_verbs_hs_t *r,
                          char *why, size_t n)
{
    rdt_verbs_hs_want_t w;

    verbs_want(tp, peer, &w);
    return rdt_verbs_hs_check(h, VERBS_HS_LEN, &w, r, why, n);
}

/* INIT -> RTR -> RTS with the peer's record. Path MTU: the smaller active MTU. */
static int verbs_qp_connect(rdt_verbs_t *tp, verbs_peer_t *p, const rdt_verbs_hs_t *h)
{
    struct ibv_qp_attr attr;
    enum ibv_mtu rmtu = (enum ibv_mtu)h->mtu;

    p->raddr = h->raddr;
    p->rkey = h->rkey;
    memset(&attr, 0, sizeof(attr));
    attr.qp_state = IBV_QPS_RTR;
    attr.path_mtu = rmtu < tp->dev->mtu ? rmtu : tp->dev->mtu;
    attr.dest_qp_num = h->qpn;
    attr.rq_psn = h->psn;
    attr.max_dest_rd_atomic = 1;
    attr.min_rnr_timer = VERBS_QP_MIN_RNR_TIMER;
    attr.ah_attr.port_num = tp->dev->port;
    if (tp->dev->is_eth) {
        attr.ah_attr.is_global = 1;
        memcpy(attr.ah_attr.grh.dgid.raw, h->gid, 16);
        attr.ah_attr.grh.sgid_index = (uint8_t)tp->dev->gid_index;
        attr.ah_attr.grh.hop_limit = 64;
    } else {
        attr.ah_attr.dlid = h->lid;
    }
    if (ibv_modify_qp(p->qp, &attr,
                      IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                          IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0)
        return -1;
    memset(&attr, 0, sizeof(attr));
    attr.qp_state = IBV_QPS_RTS;
    attr.timeout = VERBS_QP_TIMEOUT;
    attr.retry_cnt = VERBS_QP_RETRY_CNT;
    attr.rnr_retry = VERBS_QP_RNR_RETRY;
    attr.sq_psn = p->psn;
    attr.max_rd_atomic = 1;
    return ibv_modify_qp(p->qp, &attr,
                         IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                             IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

/* ------------------------------------------------------------------------------------------ */
/* Data path                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* One signaled RDMA write (with immediate @p imm unless @p plain) of @p len bytes at local
 * @p laddr (@p lkey) to the peer's @p raddr (@p rkey). */
static int verbs_post(verbs_peer_t *p, unsigned kind, uint32_t low, const void *laddr,
                      uint32_t lkey, size_t len, uint64_t raddr, uint32_t rkey, int plain,
                      uint32_t imm)
{
    struct ibv_send_wr wr, *bad;
    struct ibv_sge sge;

    memset(&wr, 0, sizeof(wr));
    wr.wr_id = verbs_wr_id(kind, p->rank, low);
    wr.opcode = plain ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.imm_data = htonl(imm);
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    if (len) {
        sge.addr = (uint64_t)(uintptr_t)laddr;
        sge.length = (uint32_t)len;
        sge.lkey = lkey;
        wr.sg_list = &sge;
        wr.num_sge = 1;
    }
    return ibv_post_send(p->qp, &wr, &bad);
}

/* A staged fragment (or a zero-length write) into the peer's ring slot @p slot. */
static int verbs_post_write(verbs_peer_t *p, unsigned kind, uint32_t low, uint32_t slot,
                            size_t len, uint32_t imm)
{
    return verbs_post(p, kind, low, p->stage + (size_t)slot * VERBS_SLOT, p->stage_mr->lkey, len,
                      p->raddr + (uint64_t)slot * VERBS_SLOT, p->rkey, 0, imm);
}

/* Return freed slots that no data write took back (piggybacked) once VERBS_CREDIT_BATCH have
 * gathered. This cannot stall a sender: it waits only with all NSLOTS slots unreturned, so once
 * the receiver has copied out the filled ones at least NSLOTS - (filled) >= BATCH are owed. */
static void verbs_credits_return(rdt_verbs_t *tp, verbs_peer_t *p)
{
    int n;

    if (p->owed < VERBS_CREDIT_BATCH || p->state != PEER_UP ||
        p->credit_inflight >= VERBS_NSLOTS)
        return;
    n = p->owed;
    if (verbs_post_write(p, VERBS_WR_CREDIT, 0, 0, 0, VERBS_IMM_CREDIT | (uint32_t)n) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "posting a credit write to rank %d (host %s) on qp 0x%x failed",
                        p->rank, verbs_host(p), verbs_qpn(p));
        return;
    }
    p->owed = 0;
    p->credit_inflight++;
}

/* Zero-copy for @p x? Long enough, a rendezvous slot free, and its pages registered (a send
 * whose buffer cannot be registered, read-only memory for one, goes eager instead). */
static int verbs_rndv_send_ok(rdt_verbs_t *tp, verbs_peer_t *p, rdt_xfer_t *x)
{
    char err[256];

    if (!tp->rndv_threshold || x->len < tp->rndv_threshold)
        return 0;
    if (!x->tpriv) {
        x->tpriv = verbs_mr_get(tp->dev, x->buf, x->len, 0, err, sizeof(err));
        if (!x->tpriv) {
            if (!tp->rndv_warned++)
                rdt_warn("verbs", "rank %d: sending %zu bytes to rank %d with a copy: %s",
                         tp->rank, x->len, p->rank, err);
            return 0;
        }
    }
    return 1;
}

/* Fragment queued sends into free slots while credits last. The header rides in front of the
 * first fragment (x->hdr[0], the low byte of the magic, is cleared once it is); x->done counts
 * payload bytes posted, x->hdr_done the number of the last fragment posted. A rendezvous send
 * posts only its header, with the RTS magic, and moves on to Q_RTS. */
static void verbs_tx(rdt_verbs_t *tp, verbs_peer_t *p)
{
    while (p->state == PEER_UP && p->q[Q_SEND].head && p->credits > 0) {
        rdt_xfer_t *x = p->q[Q_SEND].head;
        uint32_t slot = p->tx_seq % VERBS_NSLOTS;
        unsigned char *s = p->stage + (size_t)slot * VERBS_SLOT;
        size_t off = 0, c;
        uint32_t piggy;
        int rndv = 0;

        if (p->stage_busy[slot])
            return;
        if (x->hdr[0]) { /* header not sent yet: it leads the first fragment */
            rndv = verbs_rndv_send_ok(tp, p, x);
            if (rndv && p->rndv_out >= VERBS_RNDV_MAX)
                return;
            memcpy(s, x->hdr, VERBS_HDR_LEN);
            if (rndv) {
                rdt_wire_put_u32(s, VERBS_RTS_MAGIC);
                rdt_wire_put_u32(s + 4, rdt_wire_hdr_check(x->tag, (uint64_t)x->len,
                                                           VERBS_RTS_MAGIC));
            }
            off = VERBS_HDR_LEN;
            x->hdr[0] = 0;
        }
        c = rndv ? 0 : x->len - x->done;
        if (c > VERBS_SLOT - off)
            c = VERBS_SLOT - off;
        if (c)
            memcpy(s + off, (const char *)x->buf + x->done, c);
        piggy = (uint32_t)p->owed < VERBS_IMM_CREDIT_MAX ? (uint32_t)p->owed : VERBS_IMM_CREDIT_MAX;
        if (verbs_post_write(p, VERBS_WR_DATA, p->tx_seq, slot, off + c,
                             slot | (piggy << VERBS_IMM_CREDIT_SHIFT)) != 0) {
            verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                            "posting an rdma write to rank %d (host %s) on qp 0x%x failed",
                            p->rank, verbs_host(p), verbs_qpn(p));
            return;
        }
        p->stage_busy[slot] = 1;
        p->credits--;
        p->owed -= (int)piggy;
        x->done += c;
        x->hdr_done = p->tx_seq;
        p->tx_seq++;
        if (rndv) {
            verbs_q_pop(&p->q[Q_SEND]);
            x->done = 0;
            p->rndv_out++;
            verbs_q_push(&p->q[Q_RTS], x);
        } else if (x->done == x->len) {
            verbs_q_pop(&p->q[Q_SEND]);
            verbs_q_push(&p->q[Q_WAIT], x);
        }
    }
}

/* Rendezvous data: RDMA writes from the sender's registered buffer straight into the receiver's,
 * in pieces the port takes; the last one carries VERBS_IMM_FIN. The CTS put the receiver's
 * address and rkey into x->hdr (bytes 0-7 and 8-11). */
static void verbs_rndv_tx(rdt_verbs_t *tp, verbs_peer_t *p)
{
    while (p->state == PEER_UP && p->q[Q_RPOST].head && p->rndv_wr < VERBS_RNDV_WR_MAX) {
        rdt_xfer_t *x = p->q[Q_RPOST].head;
        verbs_mr_t *m = (verbs_mr_t *)x->tpriv;
        size_t c = x->len - x->done;
        int last;

        if (c > tp->dev->max_msg)
            c = tp->dev->max_msg;
        last = x->done + c == x->len;
        if (verbs_post(p, VERBS_WR_RNDV, (uint32_t)last, (const char *)x->buf + x->done,
                       m->mr->lkey, c, rdt_wire_get_u64(x->hdr) + x->done,
                       rdt_wire_get_u32(x->hdr + 8), !last, VERBS_IMM_FIN) != 0) {
            verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                            "posting an rdma write of %zu bytes to rank %d (host %s) on qp 0x%x "
                            "failed", c, p->rank, verbs_host(p), verbs_qpn(p));
            return;
        }
        p->rndv_wr++;
        x->done += c;
        if (last) {
            verbs_q_pop(&p->q[Q_RPOST]);
            verbs_q_push(&p->q[Q_RWIP], x);
        }
    }
}

static void verbs_rx_mismatch(rdt_verbs_t *tp, verbs_peer_t *p, rdt_xfer_t *x, uint64_t tag,
                              uint64_t len)
{
    verbs_q_pop(&p->q[Q_RECV]);
    verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, x, RDT_ERR_MISMATCH,
                    "rank %d (host %s) sent %" PRIu64 " bytes with tag 0x%" PRIx64
                    ", rank %d expected %zu bytes with tag 0x%" PRIx64,
                    p->rank, verbs_host(p), len, tag, tp->rank, x->len, x->tag);
}

/* The receive @p x matched an RTS: register its buffer and tell the sender where to write. */
static int verbs_rx_rts(rdt_verbs_t *tp, verbs_peer_t *p, rdt_xfer_t *x)
{
    char err[256];
    uint32_t idx = p->cts_out % VERBS_RNDV_MAX;
    unsigned char *rec = p->stage + VERBS_RING_BYTES + (size_t)idx * VERBS_CTS_LEN;
    verbs_mr_t *m = verbs_mr_get(tp->dev, x->buf, x->len, 0, err, sizeof(err));

    if (!m) {
        verbs_q_pop(&p->q[Q_RECV]);
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, x, RDT_ERR_SYSTEM,
                        "rank %d cannot receive %zu bytes from rank %d (host %s) in place: %s "
                        "(or set RDT_IB_RNDV=0 to copy through bounce buffers)", tp->rank,
                        x->len, p->rank, verbs_host(p), err);
        return -1;
    }
    x->tpriv = m;
    rdt_wire_put_u64(rec, (uint64_t)(uintptr_t)x->buf);
    rdt_wire_put_u32(rec + 8, m->mr->rkey);
    rdt_wire_put_u32(rec + 12, p->cts_out);
    if (verbs_post(p, VERBS_WR_CTS, idx, rec, p->stage_mr->lkey, VERBS_CTS_LEN,
                   p->raddr + VERBS_RING_BYTES + (uint64_t)idx * VERBS_CTS_LEN, p->rkey, 0,
                   VERBS_IMM_CTS | idx) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "posting a CTS to rank %d (host %s) on qp 0x%x failed", p->rank,
                        verbs_host(p), verbs_qpn(p));
        return -1;
    }
    p->cts_out++;
    verbs_q_pop(&p->q[Q_RECV]);
    verbs_q_push(&p->q[Q_RRECV], x);
    return 0;
}

/* The slot at rx_head is read: its credit is owed to the sender. */
static void verbs_slot_consumed(verbs_peer_t *p)
{
    p->rx_head++;
    p->filled--;
    p->owed++;
}

/* Copy filled slots out into the matched receives, in order. */
static void verbs_rx(rdt_verbs_t *tp, verbs_peer_t *p)
{
    while (p->state == PEER_UP && p->filled > 0) {
        const unsigned char *s = p->ring + (size_t)(p->rx_head % VERBS_NSLOTS) * VERBS_SLOT;
        rdt_xfer_t *x = p->q[Q_RECV].head;
        size_t off = 0, c;

        if (!x)
            break; /* backpressure: the slot waits, its credit is not returned */
        if (!p->have_hdr) {
            uint32_t magic = rdt_wire_get_u32(s), check = rdt_wire_get_u32(s + 4);
            uint64_t tag = rdt_wire_get_u64(s + 8), len = rdt_wire_get_u64(s + 16);
            if ((magic != VERBS_MSG_MAGIC && magic != VERBS_RTS_MAGIC) ||
                check != rdt_wire_hdr_check(tag, len, magic) ||
                (magic == VERBS_RTS_MAGIC && len == 0)) {
                verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                                "rank %d (host %s) wrote a corrupt message header (magic 0x%08"
                                PRIx32 ") on qp 0x%x", p->rank, verbs_host(p), magic,
                                verbs_qpn(p));
                return;
            }
            if (tag != x->tag || len != (uint64_t)x->len) {
                verbs_rx_mismatch(tp, p, x, tag, len);
                return;
            }
            if (magic == VERBS_RTS_MAGIC) {
                verbs_slot_consumed(p);
                if (verbs_rx_rts(tp, p, x) != 0)
                    return;
                continue;
            }
            p->have_hdr = 1;
            off = VERBS_HDR_LEN;
        }
        c = x->len - x->done;
        if (c > VERBS_SLOT - off)
            c = VERBS_SLOT - off;
        if (c)
            memcpy((char *)x->buf + x->done, s + off, c);
        x->done += c;
        verbs_slot_consumed(p);
        if (x->done == x->len) {
            verbs_q_pop(&p->q[Q_RECV]);
            p->have_hdr = 0;
            verbs_xfer_done(tp, x, RDT_SUCCESS);
        }
    }
    verbs_credits_return(tp, p);
    /* drained after the peer closed: lost (unless written sends still await their
     * completions through the flushed QP: verbs_peer_eof) */
    if (p->state == PEER_UP && p->eof && p->filled == 0 && !(p->eof_flush && verbs_has_sends(p)))
        verbs_peer_lost(tp, p, 0);
}

static void verbs_peer_service(rdt_verbs_t *tp, verbs_peer_t *p)
{
    if (p->state != PEER_UP)
        return;
    if (p->eof && (p->eof_flush ? verbs_has_unwritten(p) : verbs_has_sends(p))) {
        /* the peer closed: what it wrote before may still be copied out, but nothing we send
         * can arrive any more (writes already posted complete through the flushed QP) */
        verbs_peer_lost(tp, p, 0);
        return;
    }
    verbs_rx(tp, p);
    verbs_tx(tp, p);
    verbs_rndv_tx(tp, p);
    verbs_credits_return(tp, p);
}

/* A CTS arrived in inbox record @p idx: the oldest send waiting in Q_RTS may now be written. */
static void verbs_rx_cts(rdt_verbs_t *tp, verbs_peer_t *p, uint32_t idx)
{
    const unsigned char *rec = p->ring + VERBS_RING_BYTES + (size_t)idx * VERBS_CTS_LEN;
    rdt_xfer_t *x = p->q[Q_RTS].head;

    if (!x || idx != p->cts_in % VERBS_RNDV_MAX || rdt_wire_get_u32(rec + 12) != p->cts_in) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "rank %d (host %s) sent an unexpected CTS (record %" PRIu32 ") on qp 0x%x",
                        p->rank, verbs_host(p), idx, verbs_qpn(p));
        return;
    }
    p->cts_in++;
    memcpy(x->hdr, rec, 12); /* address and rkey of the receive buffer */
    verbs_q_pop(&p->q[Q_RTS]);
    verbs_q_push(&p->q[Q_RPOST], x);
}

static void verbs_wc(rdt_verbs_t *tp, const struct ibv_wc *wc)
{
    unsigned kind = (unsigned)(wc->wr_id >> 56);
    int rank = (int)(uint32_t)(wc->wr_id >> 32) & 0xffffff;
    uint32_t low = (uint32_t)wc->wr_id;
    verbs_peer_t *p;

    if (rank < 0 || rank >= tp->nranks)
        return;
    p = &tp->peers[rank];
    if (kind == VERBS_WR_NOTICE) {
        if (p->notice_pending)
            verbs_cm_disconnect(p); /* delivered, or never will be */
        return;
    }
    if (p->state == PEER_FAILED || !p->qp)
        return; /* flushed after a failure */
    if (wc->status != IBV_WC_SUCCESS && p->eof_flush) {
        /* the QP was flushed after the peer closed (verbs_peer_eof): receives are expected to
         * flush; a write that did not get through fails the peer with the reason it closed */
        if (kind != VERBS_WR_RECV)
            verbs_peer_lost(tp, p, 0);
        return;
    }
    if (wc->status != IBV_WC_SUCCESS) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "rdma %s with rank %d (host %s) failed on qp 0x%x: %s (vendor error "
                        "0x%x)", kind == VERBS_WR_RECV ? "receive" : "write", p->rank,
                        verbs_host(p), wc->qp_num, ibv_wc_status_str(wc->status),
                        wc->vendor_err);
        return;
    }
    if (kind == VERBS_WR_RECV) {
        uint32_t imm = ntohl(wc->imm_data);
        if (verbs_post_recv(p, low) != 0) {
            verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                            "ibv_post_recv on qp 0x%x for rank %d (host %s) failed",
                            verbs_qpn(p), p->rank, verbs_host(p));
            return;
        }
        if (imm & VERBS_IMM_CREDIT) {
            p->credits += (int)(imm & 0xffff);
        } else if (imm & VERBS_IMM_NOTICE) {
            /* the peer gave up and says why; then as the side channel's EOF after a notice */
            verbs_cm_notice_read(p);
            p->eof = 1;
        } else if (imm & VERBS_IMM_CTS) {
            verbs_rx_cts(tp, p, imm & VERBS_IMM_SLOT_MASK);
        } else if (imm & VERBS_IMM_FIN) {
            rdt_xfer_t *x = verbs_q_pop(&p->q[Q_RRECV]);
            if (!x) {
                verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                                "rank %d (host %s) finished a rendezvous nobody waited for on "
                                "qp 0x%x", p->rank, verbs_host(p), verbs_qpn(p));
                return;
            }
            x->done = x->len;
            verbs_xfer_done(tp, x, RDT_SUCCESS);
        } else if ((imm & VERBS_IMM_SLOT_MASK) !=
                       (p->rx_head + (uint32_t)p->filled) % VERBS_NSLOTS ||
                   p->filled >= VERBS_NSLOTS) {
            verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                            "rank %d (host %s) wrote slot %" PRIu32 " out of order on qp 0x%x",
                            p->rank, verbs_host(p), imm, verbs_qpn(p));
        } else {
            p->filled++;
            p->credits += (int)(imm >> VERBS_IMM_CREDIT_SHIFT);
        }
    } else if (kind == VERBS_WR_CREDIT || kind == VERBS_WR_CTS) {
        if (kind == VERBS_WR_CREDIT)
            p->credit_inflight--;
    } else if (kind == VERBS_WR_RNDV) {
        p->rndv_wr--;
        if (low) { /* the last write of the oldest rendezvous send */
            rdt_xfer_t *x = verbs_q_pop(&p->q[Q_RWIP]);
            if (x) {
                p->rndv_out--;
                verbs_xfer_done(tp, x, RDT_SUCCESS);
            }
        }
    } else if (kind == VERBS_WR_DATA) {
        p->stage_busy[low % VERBS_NSLOTS] = 0;
        while (p->q[Q_WAIT].head && (int32_t)(low - p->q[Q_WAIT].head->hdr_done) >= 0) {
            rdt_xfer_t *x = verbs_q_pop(&p->q[Q_WAIT]);
            verbs_xfer_done(tp, x, RDT_SUCCESS);
            if (p->state != PEER_UP)
                return;
        }
    }
}

/* Drain the CQ; returns the number of completions seen. */
static int verbs_cq_drain(rdt_verbs_t *tp)
{
    struct ibv_wc wc[VERBS_WC_BATCH];
    int n, i, total = 0;

    if (!tp->cq)
        return 0;
    do {
        n = ibv_poll_cq(tp->cq, VERBS_WC_BATCH, wc);
        if (n < 0) {
            verbs_set_error(tp, "ibv_poll_cq failed on rank %d", tp->rank);
            return total;
        }
        for (i = 0; i < n; i++)
            verbs_wc(tp, &wc[i]);
        total += n;
    } while (n == VERBS_WC_BATCH);
    return total;
}

static void verbs_service_all(rdt_verbs_t *tp)
{
    int i;
    for (i = 0; i < tp->nranks; i++)
        verbs_peer_service(tp, &tp->peers[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Connecting                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void verbs_peer_up(rdt_verbs_t *tp, verbs_peer_t *p)
{
    struct ibv_qp_attr a;
    struct ibv_qp_init_attr ia;

    verbs_peer_state(tp, p, PEER_UP);
    if (p->cm_id) {
        /* the CM leaves min_rnr_timer at 0 (655 ms); RNR should never happen (see "Flow
         * control"), but if it does, the side channel's value (RTS to RTS may change it) */
        memset(&a, 0, sizeof(a));
        a.min_rnr_timer = VERBS_QP_MIN_RNR_TIMER;
        if (ibv_modify_qp(p->qp, &a, IBV_QP_MIN_RNR_TIMER) != 0)
            rdt_debug("verbs", "rank %d: min_rnr_timer of qp 0x%x left to rdma_cm: %m", tp->rank,
                      verbs_qpn(p));
    }
    memset(&a, 0, sizeof(a));
    ibv_query_qp(p->qp, &a, IBV_QP_PATH_MTU | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                 IBV_QP_RNR_RETRY | IBV_QP_MIN_RNR_TIMER, &ia);
    rdt_debug("verbs", "connected to rank %d (host %s) through %s: qp 0x%x, path mtu %d, ack "
              "timeout %u, retry %u, rnr retry %u, min rnr timer %u", p->rank, verbs_host(p),
              p->cm_id ? "rdma_cm" : "the side channel", verbs_qpn(p), 128 << a.path_mtu,
              a.timeout, a.retry_cnt, a.rnr_retry, a.min_rnr_timer);
}

static void verbs_connect_attempt(rdt_verbs_t *tp, verbs_peer_t *p)
{
    char eb[128];
    int fd;

    fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                        "cannot create a socket to connect to rank %d (host %s): %s", p->rank,
                        verbs_host(p), strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    p->fd = fd;
    p->hs_done = 0;
    if (verbs_epoll(tp, EPOLL_CTL_ADD, fd, EPOLLOUT,
                    verbs_ev_data(VERBS_EV_PEER, 0, (uint32_t)p->rank)) != 0) {
        close(fd);
        p->fd = -1;
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                        "epoll_ctl for the side channel to rank %d (host %s) failed", p->rank,
                        verbs_host(p));
        return;
    }
    if (connect(fd, (const struct sockaddr *)&p->sa, p->salen) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {
        p->last_errno = errno;
        verbs_close_fd(tp, fd);
        p->fd = -1;
        p->retry_at = verbs_now_ms() + VERBS_RETRY_MS;
    }
}

static void verbs_connect_start(rdt_verbs_t *tp, verbs_peer_t *p)
{
    if (verbs_peer_resources(tp, p) != 0)
        return;
    verbs_peer_state(tp, p, PEER_CONNECTING);
    p->deadline = verbs_now_ms() + (uint64_t)tp->connect_timeout_ms;
    verbs_connect_attempt(tp, p);
}

/* Connector: the TCP connect finished (EPOLLOUT) or the answer is readable (EPOLLIN). */
static void verbs_connector_event(rdt_verbs_t *tp, verbs_peer_t *p)
{
    char eb[128], why[160];
    rdt_verbs_hs_t r;
    ssize_t n;

    if (p->state == PEER_CONNECTING) {
        unsigned char h[VERBS_HS_LEN];
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return;
        if (err != 0) {
            p->last_errno = err;
            verbs_close_fd(tp, p->fd);
            p->fd = -1;
            p->retry_at = verbs_now_ms() + VERBS_RETRY_MS;
            return;
        }
        verbs_hs_fill(tp, p, h);
        /* a fresh socket takes 88 bytes at once; a short write means something is wrong */
        n = send(p->fd, h, VERBS_HS_LEN, MSG_NOSIGNAL);
        if (n != VERBS_HS_LEN) {
            verbs_peer_lost(tp, p, n < 0 ? errno : EPIPE);
            return;
        }
        verbs_peer_state(tp, p, PEER_HS_WAIT);
        p->hs_done = 0;
        verbs_epoll(tp, EPOLL_CTL_MOD, p->fd, EPOLLIN,
                    verbs_ev_data(VERBS_EV_PEER, 0, (uint32_t)p->rank));
        return;
    }
    /* PEER_HS_WAIT */
    n = recv(p->fd, p->hs + p->hs_done, VERBS_HS_LEN - p->hs_done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "rank %d (host %s) at %s closed the side channel during the handshake%s%s",
                        p->rank, verbs_host(p), p->addr_str, n < 0 ? ": " : "",
                        n < 0 ? strerror_r(errno, eb, sizeof(eb)) : "");
        return;
    }
    p->hs_done += (unsigned)n;
    if (p->hs_done < VERBS_HS_LEN)
        return;
    if (verbs_hs_check(tp, p->hs, p->rank, &r, why, sizeof(why)) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "rank %d (host %s) at %s answered with a bad handshake: %s", p->rank,
                        verbs_host(p), p->addr_str, why);
        return;
    }
    if (verbs_qp_connect(tp, p, &r) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "cannot connect qp 0x%x to rank %d (host %s): %s", verbs_qpn(p),
                        p->rank, verbs_host(p), strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    if (send(p->fd, "R", 1, MSG_NOSIGNAL) != 1) {
        verbs_peer_lost(tp, p, errno);
        return;
    }
    verbs_peer_up(tp, p);
}

static void verbs_pending_drop(rdt_verbs_t *tp, verbs_pending_t *s)
{
    verbs_close_fd(tp, s->fd);
    s->fd = -1;
    tp->npending--;
}

static void verbs_accept(rdt_verbs_t *tp)
{
    int i, k;

    for (k = 0; k < VERBS_EVENTS; k++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        verbs_pending_t *s = NULL;
        int fd = accept4(tp->lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rdt_warn("verbs", "accept on %s failed: %m", tp->addr_str);
            return;
        }
        for (i = 0; i < VERBS_MAX_PENDING && !s; i++)
            if (tp->pending[i].fd < 0)
                s = &tp->pending[i];
        if (!s) {
            close(fd);
            continue;
        }
        s->gen = ++tp->pending_gen;
        if (verbs_epoll(tp, EPOLL_CTL_ADD, fd, EPOLLIN,
                        verbs_ev_data(VERBS_EV_PENDING, s->gen,
                                      (uint32_t)(s - tp->pending))) != 0) {
            close(fd);
            continue;
        }
        s->fd = fd;
        s->done = 0;
        s->deadline = verbs_now_ms() + VERBS_HS_TIMEOUT_MS;
        rdt_wire_sockaddr_str((struct sockaddr *)&sa, salen, s->from, sizeof(s->from));
        tp->npending++;
    }
}

/* Acceptor: a complete, valid handshake makes the QP, answers, and waits for "ready". */
static void verbs_pending_event(rdt_verbs_t *tp, verbs_pending_t *s)
{
    unsigned char h[VERBS_HS_LEN];
    char why[160];
    rdt_verbs_hs_t r;
    verbs_peer_t *p;
    uint32_t rank;
    ssize_t n;

    n = recv(s->fd, s->buf + s->done, VERBS_HS_LEN - s->done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        rdt_warn("verbs", "rejected side-channel connection from %s: closed before its "
                 "handshake", s->from);
        verbs_pending_drop(tp, s);
        return;
    }
    s->done += (unsigned)n;
    if (s->done < VERBS_HS_LEN)
        return;
    why[0] = 0;
    if (verbs_hs_check(tp, s->buf, -1, &r, why, sizeof(why)) == 0 &&
        tp->peers[r.hello.rank].state != PEER_IDLE)
        snprintf(why, sizeof(why), "claims rank %" PRIu32 ", which is already %s", r.hello.rank,
                 tp->peers[r.hello.rank].state == PEER_FAILED ? "failed" : "connected");
    if (why[0]) {
        rdt_warn("verbs", "rejected side-channel connection from %s: %s", s->from, why);
        verbs_pending_drop(tp, s);
        return;
    }
    rank = r.hello.rank;
    p = &tp->peers[rank];
    snprintf(p->addr_str, sizeof(p->addr_str), "%s", s->from);
    p->fd = s->fd;
    s->fd = -1;
    tp->npending--;
    verbs_epoll(tp, EPOLL_CTL_MOD, p->fd, EPOLLIN,
                verbs_ev_data(VERBS_EV_PEER, 0, (uint32_t)p->rank));
    if (verbs_peer_resources(tp, p) != 0)
        return;
    if (verbs_qp_connect(tp, p, &r) != 0) {
        char eb[128];
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "cannot connect qp 0x%x to rank %d (host %s): %s", verbs_qpn(p),
                        p->rank, verbs_host(p), strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    verbs_hs_fill(tp, p, h);
    if (send(p->fd, h, VERBS_HS_LEN, MSG_NOSIGNAL) != VERBS_HS_LEN) {
        verbs_peer_lost(tp, p, errno);
        return;
    }
    verbs_peer_state(tp, p, PEER_READY_WAIT);
    /* the connector answers from its own progress(), which may come late */
    p->deadline = verbs_now_ms() + (uint64_t)tp->connect_timeout_ms;
}

/* The connection of an UP peer ended (side-channel EOF, rdma_cm DISCONNECTED): what the peer
 * wrote before may still sit in the CQ and the ring, and is delivered; the peer fails now if
 * nothing is left to read or something is left to send, else once the ring is drained. */
static void verbs_peer_eof(rdt_verbs_t *tp, verbs_peer_t *p, int err)
{
    p->eof = 1;
    verbs_cq_drain(tp);
    if (p->state != PEER_UP)
        return;
    if (!err && !verbs_has_unwritten(p) && verbs_has_sends(p)) {
        /* Writes posted whose completions have not come yet: the peer may have received them
         * (it finished and closed before our CQ saw its acknowledgement). Moving the QP to ERR
         * makes each complete with its real status: success if acknowledged, else a flush
         * error, which then fails the peer (verbs_wc). */
        struct ibv_qp_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.qp_state = IBV_QPS_ERR;
        if (p->qp && ibv_modify_qp(p->qp, &attr, IBV_QP_STATE) == 0) {
            p->eof_flush = 1;
            return;
        }
    }
    if (p->filled == 0 || verbs_has_sends(p))
        verbs_peer_lost(tp, p, err);
}

/* Readable side channel of a connected peer: "ready" once (acceptor), then only a failure
 * notice (see verbs_peer_shut) or EOF. */
static void verbs_side_event(rdt_verbs_t *tp, verbs_peer_t *p)
{
    unsigned char b[3 + VERBS_NOTICE_MAX + 1];
    char c;
    ssize_t n = recv(p->fd, &c, 1, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 1 && p->state == PEER_READY_WAIT && c == 'R') {
        verbs_peer_up(tp, p);
        return;
    }
    if (n == 1 && c == 'A') {
        /* the peer gave up and says why (sent in one piece; a short read keeps what came).
         * Then as EOF: what it wrote before still counts, and only what is left waiting fails,
         * with its reason. */
        ssize_t k = recv(p->fd, b, sizeof(b) - 1, MSG_DONTWAIT);
        size_t len = k >= 2 ? (size_t)(b[0] | (b[1] << 8)) : 0, i;
        if (k < 2)
            k = 2;
        if (len > (size_t)k - 2)
            len = (size_t)k - 2;
        for (i = 0; i < len; i++)
            if (b[2 + i] < 0x20 || b[2 + i] > 0x7e)
                b[2 + i] = '?'; /* printable only: it goes into logs */
        snprintf(p->gave_up, sizeof(p->gave_up), "%.*s", (int)len, (const char *)b + 2);
        if (!p->gave_up[0])
            snprintf(p->gave_up, sizeof(p->gave_up), "(no reason received)");
        n = 0;
    }
    if (n == 1) {
        verbs_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                        "rank %d (host %s) sent unexpected bytes on the side channel of qp 0x%x",
                        p->rank, verbs_host(p), verbs_qpn(p));
        return;
    }
    if (p->state != PEER_UP) {
        verbs_peer_lost(tp, p, n < 0 ? errno : 0);
        return;
    }
    verbs_close_fd(tp, p->fd);
    p->fd = -1;
    verbs_peer_eof(tp, p, n < 0 ? errno : 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Connecting through rdma_cm (RDT_IB_CM=rdmacm)                                                */
/* ------------------------------------------------------------------------------------------ */

/* An event, copied so that it can be acknowledged at once: rdma_destroy_id waits for the
 * acknowledgement of every event of its id, and some handlers destroy one. */
typedef struct verbs_cm_ev {
    enum rdma_cm_event_type type;
    int status;
    struct rdma_cm_id *id;
    size_t len;
    unsigned char pdata[VERBS_CM_PDATA];
} verbs_cm_ev_t;

static void verbs_cm_peer_str(struct rdma_cm_id *id, char *buf, size_t n)
{
    struct sockaddr *sa = rdma_get_peer_addr(id);
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    rdt_wire_sockaddr_str(sa, len, buf, n);
}

/* Our record for peer @p p, the private data of rdma_connect and rdma_accept. */
static void verbs_cm_fill(rdt_verbs_t *tp, verbs_peer_t *p, unsigned char *b)
{
    rdt_verbs_hs_t r;

    memset(&r, 0, sizeof(r));
    rdt_wire_hello_fill(&r.hello, RDT_VERBS_CM_MAGIC, RDT_VERBS_CM_VERSION, tp->token,
                        tp->comm_id, tp->rank, tp->nranks);
    r.slot_size = VERBS_SLOT;
    r.raddr = (uint64_t)(uintptr_t)p->ring;
    r.rkey = p->ring_mr->rkey;
    rdt_verbs_cm_pack(&r, b);
}

static int verbs_cm_check(rdt_verbs_t *tp, const verbs_cm_ev_t *e, int peer, rdt_verbs_hs_t *r,
                          char *why, size_t n)
{
    rdt_verbs_hs_want_t w;

    verbs_want(tp, peer, &w);
    return rdt_verbs_cm_check(e->pdata, e->len, &w, r, why, n);
}

static void verbs_cm_param(unsigned char *rec, struct rdma_conn_param *cp)
{
    memset(cp, 0, sizeof(*cp));
    cp->private_data = rec;
    cp->private_data_len = VERBS_CM_LEN;
    cp->responder_resources = 1;
    cp->initiator_depth = 1;
    cp->retry_count = VERBS_QP_RETRY_CNT;
    cp->rnr_retry_count = VERBS_QP_RNR_RETRY;
}

/* The QP of @p p on its resolved (connector) or requesting (acceptor) cm_id, with this
 * transport's PD and CQ: the cm_id must be on this transport's device and port. librdmacm moves
 * it to INIT now, to RTR and RTS in rdma_connect/rdma_accept. Fails the peer on error. */
static int verbs_cm_qp_create(rdt_verbs_t *tp, verbs_peer_t *p)
{
    struct rdma_cm_id *id = p->cm_id;
    struct ibv_qp_init_attr ia;
    uint8_t tmo = VERBS_QP_TIMEOUT;
    char eb[128];

    if (id->verbs != tp->dev->ctx || id->port_num != tp->dev->port) {
        verbs_peer_fail(tp, p, RDT_ERR_CONFIG, NULL, RDT_SUCCESS,
                        "rdma_cm reaches rank %d (host %s) at %s through %s port %u, but this "
                        "rank's verbs transport uses %s port %u (set RDT_IB_DEV to the device "
                        "of the data-plane address, or RDT_IFNAME to the interface of the "
                        "device)", p->rank, verbs_host(p), p->addr_str,
                        id->verbs ? ibv_get_device_name(id->verbs->device) : "no device",
                        id->port_num, ibv_get_device_name(tp->dev->ctx->device), tp->dev->port);
        return -1;
    }
    verbs_qp_init_attr(tp, &ia);
    if (rdma_create_qp(id, tp->dev->pd, &ia) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                        "rdma_create_qp for rank %d (host %s) failed: %s", p->rank,
                        verbs_host(p), strerror_r(errno, eb, sizeof(eb)));
        return -1;
    }
    p->qp = id->qp;
    /* the local ACK timeout of the side-channel path (else rdma_cm's, from the path record) */
    if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &tmo, sizeof(tmo)) != 0)
        rdt_debug("verbs", "rank %d: rdma_set_option(ACK_TIMEOUT) for qp 0x%x: %m", tp->rank,
                  p->qp->qp_num);
    return verbs_peer_qp_ready(tp, p);
}

/* Connector: buffers now; address, route, QP and rdma_connect as the events come. */
static void verbs_cm_connect_start(rdt_verbs_t *tp, verbs_peer_t *p)
{
    char eb[128];

    if (verbs_peer_resources(tp, p) != 0)
        return;
    verbs_peer_state(tp, p, PEER_CONNECTING);
    p->deadline = verbs_now_ms() + (uint64_t)tp->connect_timeout_ms;
    p->retry_at = p->deadline; /* rdma_cm retries on its own: no attempts of ours */
    if (rdma_create_id(tp->cm_chan, &p->cm_id, p, RDMA_PS_TCP) != 0 ||
        rdma_resolve_addr(p->cm_id, (struct sockaddr *)&tp->cm_src, (struct sockaddr *)&p->sa,
                          tp->connect_timeout_ms) != 0)
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "cannot start an rdma_cm connection to rank %d (host %s) at %s: %s",
                        p->rank, verbs_host(p), p->addr_str, strerror_r(errno, eb, sizeof(eb)));
}

/* Connector, route resolved: QP, then rdma_connect with our record. */
static void verbs_cm_connect(rdt_verbs_t *tp, verbs_peer_t *p)
{
    unsigned char rec[VERBS_CM_LEN];
    struct rdma_conn_param cp;
    char eb[128];

    if (verbs_cm_qp_create(tp, p) != 0)
        return;
    verbs_cm_fill(tp, p, rec);
    verbs_cm_param(rec, &cp);
    if (rdma_connect(p->cm_id, &cp) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "rdma_connect to rank %d (host %s) at %s failed: %s", p->rank,
                        verbs_host(p), p->addr_str, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    verbs_peer_state(tp, p, PEER_HS_WAIT);
}

/* Acceptor: a connect request on the listening id. A record that is not this job's,
 * communicator's and a lower rank's is rejected, as on the side channel. */
static void verbs_cm_request(rdt_verbs_t *tp, const verbs_cm_ev_t *e)
{
    unsigned char rec[VERBS_CM_LEN];
    struct rdma_conn_param cp;
    char from[VERBS_ADDR_STR], why[160] = "", eb[128];
    rdt_verbs_hs_t r;
    verbs_peer_t *p;

    verbs_cm_peer_str(e->id, from, sizeof(from));
    if (verbs_cm_check(tp, e, -1, &r, why, sizeof(why)) == 0 &&
        tp->peers[r.hello.rank].state != PEER_IDLE)
        snprintf(why, sizeof(why), "claims rank %" PRIu32 ", which is already %s", r.hello.rank,
                 tp->peers[r.hello.rank].state == PEER_FAILED ? "failed" : "connected");
    if (why[0]) {
        rdt_warn("verbs", "rejected rdma_cm connection from %s: %s", from, why);
        rdma_reject(e->id, NULL, 0);
        rdma_destroy_id(e->id);
        return;
    }
    p = &tp->peers[r.hello.rank];
    snprintf(p->addr_str, sizeof(p->addr_str), "%s", from);
    p->cm_id = e->id; /* destroyed by close() from now on, whatever happens */
    p->cm_id->context = p;
    if (verbs_peer_resources(tp, p) != 0 || verbs_cm_qp_create(tp, p) != 0) {
        rdt_warn("verbs", "rejected rdma_cm connection from %s: %s", from, p->fail_msg);
        rdma_reject(p->cm_id, NULL, 0);
        return;
    }
    p->raddr = r.raddr;
    p->rkey = r.rkey;
    verbs_cm_fill(tp, p, rec);
    verbs_cm_param(rec, &cp);
    if (rdma_accept(p->cm_id, &cp) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "rdma_accept for rank %d (host %s) at %s failed: %s", p->rank,
                        verbs_host(p), from, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    verbs_peer_state(tp, p, PEER_READY_WAIT);
    p->deadline = verbs_now_ms() + (uint64_t)tp->connect_timeout_ms;
}

/* ESTABLISHED: the connector reads the acceptor's record (the REP's private data); the acceptor
 * now knows the connector's QP is ready (RTU). */
static void verbs_cm_established(rdt_verbs_t *tp, verbs_peer_t *p, const verbs_cm_ev_t *e)
{
    char why[160];
    rdt_verbs_hs_t r;

    if (p->state == PEER_READY_WAIT) {
        verbs_peer_up(tp, p);
        return;
    }
    if (p->state != PEER_HS_WAIT)
        return;
    if (verbs_cm_check(tp, e, p->rank, &r, why, sizeof(why)) != 0) {
        verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                        "rank %d (host %s) at %s answered with a bad handshake: %s", p->rank,
                        verbs_host(p), p->addr_str, why);
        return;
    }
    p->raddr = r.raddr;
    p->rkey = r.rkey;
    verbs_peer_up(tp, p);
}

static void verbs_cm_event(rdt_verbs_t *tp, const verbs_cm_ev_t *e)
{
    verbs_peer_t *p;
    char eb[128];

    if (e->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
        verbs_cm_request(tp, e);
        return;
    }
    p = e->id == tp->cm_listen ? NULL : (verbs_peer_t *)e->id->context;
    if (!p || p->cm_id != e->id || p->state == PEER_FAILED) {
        rdt_debug("verbs", "rank %d: %s (status %d) ignored", tp->rank,
                  rdma_event_str(e->type), e->status);
        return;
    }
    switch (e->type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
        if (rdma_resolve_route(p->cm_id, tp->connect_timeout_ms) != 0)
            verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                            "rdma_resolve_route to rank %d (host %s) at %s failed: %s", p->rank,
                            verbs_host(p), p->addr_str, strerror_r(errno, eb, sizeof(eb)));
        break;
    case RDMA_CM_EVENT_ROUTE_RESOLVED:
        verbs_cm_connect(tp, p);
        break;
    case RDMA_CM_EVENT_ESTABLISHED:
        verbs_cm_established(tp, p, e);
        break;
    case RDMA_CM_EVENT_TIMEWAIT_EXIT:
    case RDMA_CM_EVENT_ADDR_CHANGE:
        break;
    default:
        /* DISCONNECTED, REJECTED, UNREACHABLE, ADDR_ERROR, ROUTE_ERROR, CONNECT_ERROR,
         * DEVICE_REMOVAL, ... */
        if (p->state == PEER_UP) {
            p->eof_how = rdma_event_str(e->type);
            verbs_peer_eof(tp, p, 0);
        } else if (e->type == RDMA_CM_EVENT_REJECTED) {
            verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                            "rank %d (host %s) at %s refused the connection: %s (reason %d; "
                            "its log says why)", p->rank, verbs_host(p), p->addr_str,
                            rdma_event_str(e->type), e->status);
        } else {
            verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                            "could not connect to rank %d (host %s) at %s: %s (status %d)",
                            p->rank, verbs_host(p), p->addr_str, rdma_event_str(e->type),
                            e->status);
        }
        break;
    }
}

/* The event channel is readable: every event now, nonblocking. */
static void verbs_cm_events(rdt_verbs_t *tp)
{
    struct rdma_cm_event *ev;
    verbs_cm_ev_t e;

    while (rdma_get_cm_event(tp->cm_chan, &ev) == 0) {
        e.type = ev->event;
        e.status = ev->status;
        e.id = ev->id;
        e.len = 0;
        if ((e.type == RDMA_CM_EVENT_CONNECT_REQUEST || e.type == RDMA_CM_EVENT_ESTABLISHED) &&
            ev->param.conn.private_data) {
            e.len = ev->param.conn.private_data_len; /* a uint8_t: fits e.pdata */
            memcpy(e.pdata, ev->param.conn.private_data, e.len);
        }
        rdma_ack_cm_event(ev);
        verbs_cm_event(tp, &e);
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        rdt_warn("verbs", "rank %d: rdma_get_cm_event failed: %m", tp->rank);
}

/* Connect retries and deadlines, handshake deadlines. */
static void verbs_timers_run(rdt_verbs_t *tp)
{
    uint64_t now;
    char eb[128];
    int i;

    if (!tp->nconnecting && !tp->npending)
        return;
    now = verbs_now_ms();

    for (i = 0; i < tp->nranks; i++) {
        verbs_peer_t *p = &tp->peers[i];
        if (p->state == PEER_CONNECTING || p->state == PEER_HS_WAIT) {
            if (now >= p->deadline)
                verbs_peer_fail(tp, p, RDT_ERR_TIMEOUT, NULL, RDT_SUCCESS,
                                "could not connect to rank %d (host %s) at %s within %d ms%s%s",
                                p->rank, verbs_host(p), p->addr_str, tp->connect_timeout_ms,
                                p->last_errno ? ": " : "",
                                p->last_errno ? strerror_r(p->last_errno, eb, sizeof(eb)) : "");
            else if (!tp->use_cm && p->fd < 0 && now >= p->retry_at)
                verbs_connect_attempt(tp, p);
        } else if (p->state == PEER_READY_WAIT && now >= p->deadline) {
            verbs_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                            "rank %d (host %s) never confirmed the connection of qp 0x%x",
                            p->rank, verbs_host(p), verbs_qpn(p));
        }
    }
    for (i = 0; i < VERBS_MAX_PENDING && tp->npending; i++) {
        verbs_pending_t *s = &tp->pending[i];
        if (s->fd >= 0 && now >= s->deadline) {
            rdt_warn("verbs", "rejected side-channel connection from %s: no handshake within "
                     "%d ms", s->from, VERBS_HS_TIMEOUT_MS);
            verbs_pending_drop(tp, s);
        }
    }
}

static int verbs_wait_ms(rdt_verbs_t *tp, int timeout_ms)
{
    uint64_t next = UINT64_MAX, now;
    int i;

    if (!tp->nconnecting && !tp->npending)
        return timeout_ms;
    now = verbs_now_ms();

    for (i = 0; i < tp->nranks; i++) {
        verbs_peer_t *p = &tp->peers[i];
        if (p->state == PEER_CONNECTING || p->state == PEER_HS_WAIT ||
            p->state == PEER_READY_WAIT) {
            uint64_t t = p->fd < 0 && p->retry_at < p->deadline ? p->retry_at : p->deadline;
            next = t < next ? t : next;
        }
    }
    for (i = 0; i < VERBS_MAX_PENDING; i++)
        if (tp->pending[i].fd >= 0 && tp->pending[i].deadline < next)
            next = tp->pending[i].deadline;
    if (next == UINT64_MAX)
        return timeout_ms;
    if (next <= now)
        return 0;
    if (timeout_ms < 0 || next - now < (uint64_t)timeout_ms)
        return (int)(next - now);
    return timeout_ms;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress, abort                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Anything posted on a live connection: worth polling for before sleeping. */
static int verbs_busy(const rdt_verbs_t *tp)
{
    int i;
    for (i = 0; i < tp->nranks; i++) {
        const verbs_peer_t *p = &tp->peers[i];
        if (p->state == PEER_UP && (verbs_has_sends(p) || p->q[Q_RECV].head || p->q[Q_RRECV].head))
            return 1;
    }
    return 0;
}

static void verbs_enter(rdt_verbs_t *tp)
{
    __atomic_store_n(&tp->driver, (uintptr_t)&verbs_thread_tag, __ATOMIC_RELAXED);
    pthread_mutex_lock(&tp->lock);
}

static int verbs_abort_requested(rdt_verbs_t *tp)
{
    return __atomic_load_n(&tp->abort_req, __ATOMIC_ACQUIRE);
}

/* Phase one of an abort (any thread holding the lock): stop every connection. */
static void verbs_abort_conns(rdt_verbs_t *tp)
{
    int i;
    /* close() after a clean run (rdt_comm_destroy) is not giving up: no notice then */
    const char *why = tp->closing && !tp->failed_any ? NULL : tp->base.error;

    if (tp->closed_all)
        return;
    tp->closed_all = 1;
    for (i = 0; i < VERBS_MAX_PENDING; i++) {
        verbs_close_fd(tp, tp->pending[i].fd);
        tp->pending[i].fd = -1;
    }
    tp->npending = 0;
    if (!tp->base.error[0])
        verbs_set_error(tp, "the verbs transport of rank %d was aborted", tp->rank);
    for (i = 0; i < tp->nranks; i++) {
        verbs_peer_t *p = &tp->peers[i];
        if (p->state == PEER_FAILED)
            continue;
        verbs_peer_shut(tp, p, why);
        verbs_peer_state(tp, p, PEER_FAILED);
        p->fail_status = RDT_ERR_ABORTED;
        snprintf(p->fail_msg, sizeof(p->fail_msg),
                 "the connection to rank %d (host %s) was closed by an abort", p->rank,
                 verbs_host(p));
    }
}

static void verbs_abort_deliver(rdt_verbs_t *tp)
{
    int i;

    if (tp->abort_delivered)
        return;
    tp->abort_delivered = 1;
    for (i = 0; i < tp->nranks; i++)
        verbs_complete_all(tp, &tp->peers[i], RDT_ERR_ABORTED);
}

static void verbs_leave(rdt_verbs_t *tp)
{
    if (!tp->closed_all && verbs_abort_requested(tp))
        verbs_abort_conns(tp);
    pthread_mutex_unlock(&tp->lock);
}

static void verbs_dispatch(rdt_verbs_t *tp, const struct epoll_event *ev)
{
    unsigned kind = (unsigned)(ev->data.u64 >> 56);
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32) & 0xffffffu, idx = (uint32_t)ev->data.u64;

    switch (kind) {
    case VERBS_EV_LISTEN:
        verbs_accept(tp);
        break;
    case VERBS_EV_WAKE: {
        uint64_t v;
        while (read(tp->evfd, &v, sizeof(v)) > 0) {
        }
        break;
    }
    case VERBS_EV_CQ: {
        struct ibv_cq *cq;
        void *ctx;
        while (ibv_get_cq_event(tp->chan, &cq, &ctx) == 0)
            ibv_ack_cq_events(cq, 1);
        tp->cq_armed = 0;
        break;
    }
    case VERBS_EV_PEER: {
        verbs_peer_t *p;
        if (idx >= (uint32_t)tp->nranks)
            break;
        p = &tp->peers[idx];
        if (p->fd < 0)
            break;
        if (p->state == PEER_CONNECTING || p->state == PEER_HS_WAIT)
            verbs_connector_event(tp, p);
        else if (p->state == PEER_READY_WAIT || p->state == PEER_UP)
            verbs_side_event(tp, p);
        break;
    }
    case VERBS_EV_CM:
        verbs_cm_events(tp);
        break;
    case VERBS_EV_PENDING:
        if (idx < VERBS_MAX_PENDING && tp->pending[idx].fd >= 0 && tp->pending[idx].gen == gen)
            verbs_pending_event(tp, &tp->pending[idx]);
        break;
    default:
        break;
    }
}

static rdt_status_t verbs_progress(rdt_transport_t *t, int timeout_ms)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    struct epoll_event evs[VERBS_EVENTS];
    rdt_status_t st = RDT_SUCCESS;
    uint64_t before;
    int n, i, wait;

    verbs_enter(tp);
    if (verbs_abort_requested(tp))
        goto aborted;
    before = tp->ncompleted;
    verbs_cq_drain(tp);
    verbs_service_all(tp);
    verbs_timers_run(tp);
    if (verbs_abort_requested(tp))
        goto aborted;
    /* A poll that may not wait (the engine's polling loop calls this back to back): the CQ was
     * drained above without a system call; the sockets (handshakes, a dead peer's EOF) and the
     * completion channel are looked at on every 16th such call only, which saves the two or
     * three system calls that arming the CQ and epoll_wait would cost each time. */
    if (timeout_ms == 0 && !tp->nconnecting && !tp->npending && (++tp->quiet_polls & 15) != 0) {
        verbs_leave(tp);
        return RDT_SUCCESS;
    }
    wait = 0;
    if (tp->ncompleted == before && timeout_ms != 0 && verbs_busy(tp)) {
        /* Transfers are in flight: poll a while before sleeping. A wakeup through the completion
         * channel costs far more than a small message takes (on rxe under emulation, 8-byte
         * half round trips measured about 150 us without this, 23 us with it). */
        uint64_t end = verbs_now_us() + VERBS_SPIN_US;
        unsigned k;
        for (k = 1; verbs_cq_drain(tp) == 0 && !verbs_abort_requested(tp); k++)
            if (k % 16 == 0 && verbs_now_us() >= end)
                break;
        verbs_service_all(tp);
    }
    if (tp->ncompleted == before && timeout_ms != 0) {
        /* Arm, then look once more: a completion that arrived before arming makes no event.
         * Only a call that may sleep arms: an armed CQ costs on every completion after it (the
         * kernel queues an event and wakes the channel; here a read and a re-arm, three system
         * calls), and the engine's polling loop, which calls with timeout 0 back to back, never
         * sleeps (docs/benchmarks/2026-11-28-softroce-latency.md). */
        if (!tp->cq_armed) {
            if (ibv_req_notify_cq(tp->cq, 0) == 0)
                tp->cq_armed = 1;
        }
        if (verbs_cq_drain(tp) > 0) {
            verbs_service_all(tp);
        } else {
            wait = tp->cq_armed ? verbs_wait_ms(tp, timeout_ms) : 0;
        }
        if (tp->ncompleted != before)
            wait = 0;
    }
    n = epoll_wait(tp->epfd, evs, VERBS_EVENTS, wait);
    if (n < 0) {
        if (errno != EINTR) {
            verbs_set_error(tp, "epoll_wait failed on rank %d: %m", tp->rank);
            st = RDT_ERR_SYSTEM;
        }
        n = 0;
    }
    for (i = 0; i < n; i++)
        verbs_dispatch(tp, &evs[i]);
    if (n > 0) {
        verbs_cq_drain(tp);
        verbs_service_all(tp);
    }
    verbs_timers_run(tp);
    if (verbs_abort_requested(tp))
        goto aborted;
    verbs_leave(tp);
    return st;

aborted:
    verbs_abort_conns(tp);
    verbs_abort_deliver(tp);
    verbs_leave(tp);
    return RDT_ERR_ABORTED;
}

/* ------------------------------------------------------------------------------------------ */
/* Posting                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static rdt_status_t verbs_post_check(rdt_verbs_t *tp, rdt_xfer_t *x, const char *what)
{
    verbs_peer_t *p;

    if (verbs_abort_requested(tp))
        return RDT_ERR_ABORTED;
    if (!x || !x->cb || x->peer < 0 || x->peer >= tp->nranks || x->peer == tp->rank ||
        (x->len && !x->buf)) {
        verbs_set_error(tp, "%s on rank %d: invalid transfer (peer %d of %d ranks, %zu bytes%s)",
                        what, tp->rank, x ? x->peer : -1, tp->nranks, x ? x->len : 0,
                        x && !x->cb ? ", no callback" : "");
        return RDT_ERR_INVALID_ARG;
    }
    p = &tp->peers[x->peer];
    if (p->state == PEER_FAILED) {
        verbs_set_error(tp, "%s", p->fail_msg);
        return p->fail_status;
    }
    if (p->rank > tp->rank && p->salen == 0) {
        verbs_set_error(tp, "%s on rank %d: no address for rank %d (addrs_set was not called)",
                        what, tp->rank, p->rank);
        return RDT_ERR_INVALID_ARG;
    }
    return RDT_SUCCESS;
}

/* Lazy connection: the lower rank of the pair starts it on the first post (so nothing is queued
 * for the peer yet). A local failure (memory, memlock, QP) is returned to the caller, with the
 * sentence in tp->error, and the transfer is not posted. */
static rdt_status_t verbs_peer_kick(rdt_verbs_t *tp, verbs_peer_t *p)
{
    if (p->state == PEER_IDLE && p->rank > tp->rank) {
        if (tp->use_cm)
            verbs_cm_connect_start(tp, p);
        else
            verbs_connect_start(tp, p);
    }
    if (p->state == PEER_FAILED) {
        verbs_set_error(tp, "%s", p->fail_msg);
        return p->fail_status;
    }
    return RDT_SUCCESS;
}

static rdt_status_t verbs_isend(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    rdt_status_t st;
    verbs_peer_t *p;

    verbs_enter(tp);
    st = verbs_post_check(tp, x, "isend");
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    st = verbs_peer_kick(tp, p);
    if (st != RDT_SUCCESS)
        goto out;
    rdt_wire_put_u32(x->hdr, VERBS_MSG_MAGIC);
    rdt_wire_put_u32(x->hdr + 4,
                     rdt_wire_hdr_check(x->tag, (uint64_t)x->len, VERBS_MSG_MAGIC));
    rdt_wire_put_u64(x->hdr + 8, x->tag);
    rdt_wire_put_u64(x->hdr + 16, (uint64_t)x->len);
    x->hdr_done = 0;
    x->done = 0;
    x->tpriv = NULL;
    verbs_q_push(&p->q[Q_SEND], x);
out:
    verbs_leave(tp);
    return st;
}

static rdt_status_t verbs_irecv(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    rdt_status_t st;
    verbs_peer_t *p;

    verbs_enter(tp);
    st = verbs_post_check(tp, x, "irecv");
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    st = verbs_peer_kick(tp, p);
    if (st != RDT_SUCCESS)
        goto out;
    x->hdr_done = 0;
    x->done = 0;
    x->tpriv = NULL;
    verbs_q_push(&p->q[Q_RECV], x);
out:
    verbs_leave(tp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Open, addresses, abort, close                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * Packed address, 48 of the RDT_ADDR_MAX bytes:
 *   [0] family (4 or 6)  [1] 0  [2..3] side-channel (rdma_cm: listening) port, big-endian
 *   [4..] IPv4 (4) or IPv6 (16) address, IPv6 only: [20..23] scope id, big-endian;
 *   [24..39] GID  [40..41] LID, little-endian  [42] GID index  [43] port number
 *   [44] connection manager: 0 side channel, 1 rdma_cm (RDT_IB_CM)  [45..47] 0.
 */
static size_t verbs_addr_pack(rdt_verbs_t *tp, const struct sockaddr *sa, unsigned char *a)
{
    rdt_wire_sockaddr_pack(sa, a); /* bytes 0..23: the side channel */
    memcpy(a + 24, tp->dev->gid.raw, 16);
    a[40] = (unsigned char)tp->dev->lid;
    a[41] = (unsigned char)(tp->dev->lid >> 8);
    a[42] = (unsigned char)tp->dev->gid_index;
    a[43] = tp->dev->port;
    a[44] = (unsigned char)tp->use_cm;
    return 48;
}

static int verbs_sa_is_loopback(const struct sockaddr_storage *ss)
{
    static const unsigned char lo6[16] = {[15] = 1};
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return ss->ss_family == AF_INET6 &&
           memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, lo6, 16) == 0;
}

/*
 * RDT_IB_CM=rdmacm: listen with rdma_cm on @p ip, port chosen by the kernel (rdma_cm's own TCP
 * port space). A loopback @p ip (every rank on one host) becomes the IPv4 address of the RoCE
 * GID in use, since rdma_cm cannot route loopback over RoCE (ENODEV at route resolution).
 */
static rdt_status_t verbs_cm_listen(rdt_verbs_t *tp, const char *ip)
{
    struct addrinfo *ai = NULL;
    struct sockaddr *sa;
    socklen_t salen;
    int rc, fl;

    rc = rdt_wire_numeric_addr(ip, &ai);
    if (rc != 0) {
        verbs_set_error(tp, "cannot listen on '%s': not a numeric IPv4 or IPv6 address (%s)", ip,
                        gai_strerror(rc));
        return RDT_ERR_CONFIG;
    }
    memset(&tp->cm_src, 0, sizeof(tp->cm_src));
    memcpy(&tp->cm_src, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (verbs_sa_is_loopback(&tp->cm_src) && tp->dev->is_eth &&
        verbs_gid_is_v4mapped(&tp->dev->gid)) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&tp->cm_src;
        memset(&tp->cm_src, 0, sizeof(tp->cm_src));
        a4->sin_family = AF_INET;
        memcpy(&a4->sin_addr, tp->dev->gid.raw + 12, 4);
    }
    tp->cm_chan = rdma_create_event_channel();
    if (!tp->cm_chan) {
        verbs_set_error(tp, "RDT_IB_CM=rdmacm: cannot open an rdma_cm event channel: %m (is the "
                        "rdma_ucm module loaded?)");
        return RDT_ERR_UNSUPPORTED;
    }
    fl = fcntl(tp->cm_chan->fd, F_GETFL);
    if (fl < 0 || fcntl(tp->cm_chan->fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        rdma_create_id(tp->cm_chan, &tp->cm_listen, NULL, RDMA_PS_TCP) != 0) {
        verbs_set_error(tp, "rank %d: cannot set up an rdma_cm id: %m", tp->rank);
        return RDT_ERR_SYSTEM;
    }
    rdt_wire_sockaddr_str((struct sockaddr *)&tp->cm_src,
                          tp->cm_src.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                          tp->addr_str, sizeof(tp->addr_str));
    if (rdma_bind_addr(tp->cm_listen, (struct sockaddr *)&tp->cm_src) != 0) {
        verbs_set_error(tp, "RDT_IB_CM=rdmacm: rdma_bind_addr on %s failed: %m", tp->addr_str);
        return RDT_ERR_NETWORK;
    }
    if (tp->cm_listen->verbs && tp->cm_listen->verbs != tp->dev->ctx) {
        verbs_set_error(tp, "RDT_IB_CM=rdmacm: the data-plane address %s belongs to %s, but the "
                        "verbs transport opened %s (set RDT_IB_DEV=%s, or RDT_IFNAME to an "
                        "interface of %s)", tp->addr_str,
                        ibv_get_device_name(tp->cm_listen->verbs->device),
                        ibv_get_device_name(tp->dev->ctx->device),
                        ibv_get_device_name(tp->cm_listen->verbs->device),
                        ibv_get_device_name(tp->dev->ctx->device));
        return RDT_ERR_CONFIG;
    }
    if (rdma_listen(tp->cm_listen, VERBS_CM_BACKLOG) != 0) {
        verbs_set_error(tp, "RDT_IB_CM=rdmacm: rdma_listen on %s failed: %m", tp->addr_str);
        return RDT_ERR_NETWORK;
    }
    if (verbs_epoll(tp, EPOLL_CTL_ADD, tp->cm_chan->fd, EPOLLIN,
                    verbs_ev_data(VERBS_EV_CM, 0, 0)) != 0) {
        verbs_set_error(tp, "epoll_ctl for the rdma_cm event channel failed: %m");
        return RDT_ERR_SYSTEM;
    }
    sa = rdma_get_local_addr(tp->cm_listen);
    salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    tp->addr_len = verbs_addr_pack(tp, sa, tp->addr);
    rdt_wire_sockaddr_str(sa, salen, tp->addr_str, sizeof(tp->addr_str));
    return RDT_SUCCESS;
}

static rdt_status_t verbs_listen(rdt_verbs_t *tp, const char *ip)
{
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int one = 1, rc;

    rc = rdt_wire_numeric_addr(ip, &ai);
    if (rc != 0) {
        verbs_set_error(tp, "cannot listen on '%s': not a numeric IPv4 or IPv6 address (%s)", ip,
                        gai_strerror(rc));
        return RDT_ERR_CONFIG;
    }
    tp->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tp->lfd < 0) {
        verbs_set_error(tp, "cannot create a socket to listen on %s: %m", ip);
        goto err_free;
    }
    setsockopt(tp->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(tp->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(tp->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(tp->lfd, SOMAXCONN) != 0 ||
        getsockname(tp->lfd, (struct sockaddr *)&ss, &len) != 0) {
        verbs_set_error(tp, "cannot listen on %s: %m", ip);
        goto err_close;
    }
    if (verbs_epoll(tp, EPOLL_CTL_ADD, tp->lfd, EPOLLIN,
                    verbs_ev_data(VERBS_EV_LISTEN, 0, 0)) != 0) {
        verbs_set_error(tp, "epoll_ctl for the listening socket failed: %m");
        goto err_close;
    }
    tp->addr_len = verbs_addr_pack(tp, (struct sockaddr *)&ss, tp->addr);
    rdt_wire_sockaddr_str((struct sockaddr *)&ss, len, tp->addr_str, sizeof(tp->addr_str));
    freeaddrinfo(ai);
    return RDT_SUCCESS;

err_close:
    close(tp->lfd);
    tp->lfd = -1;
err_free:
    freeaddrinfo(ai);
    return RDT_ERR_NETWORK;
}

/* Destroy every peer's QP and buffers, then the device objects. Accepts half-built objects. */
static void verbs_free(rdt_verbs_t *tp)
{
    int i;

    if (tp->peers) {
        for (i = 0; i < tp->nranks; i++) {
            verbs_peer_t *p = &tp->peers[i];
            if (p->fd >= 0)
                close(p->fd);
            if (p->cm_id && p->cm_id->qp) {
                rdma_destroy_qp(p->cm_id);
                p->qp = NULL;
            }
            if (p->qp && ibv_destroy_qp(p->qp) != 0)
                rdt_warn("verbs", "ibv_destroy_qp for rank %d failed", p->rank);
            if (p->cm_id && rdma_destroy_id(p->cm_id) != 0)
                rdt_warn("verbs", "rdma_destroy_id for rank %d failed: %m", p->rank);
            verbs_dereg_raw(p->ring_mr, VERBS_BUF_BYTES);
            verbs_dereg_raw(p->stage_mr, VERBS_BUF_BYTES);
            free(p->ring);
            free(p->stage);
        }
    }
    free(tp->peers);
    if (tp->cm_listen && rdma_destroy_id(tp->cm_listen) != 0)
        rdt_warn("verbs", "rdma_destroy_id of the listening id failed: %m");
    if (tp->cq)
        ibv_destroy_cq(tp->cq);
    if (tp->chan)
        ibv_destroy_comp_channel(tp->chan);
    if (tp->cm_chan)
        rdma_destroy_event_channel(tp->cm_chan); /* after every id on it */
    verbs_dev_put(tp->dev);
    if (tp->lfd >= 0)
        close(tp->lfd);
    if (tp->evfd >= 0)
        close(tp->evfd);
    if (tp->epfd >= 0)
        close(tp->epfd);
    free(tp);
}

static rdt_status_t verbs_open(const rdt_transport_params_t *params, rdt_transport_t **tp_p)
{
    pthread_mutexattr_t ma;
    rdt_verbs_t *tp;
    rdt_status_t st;
    int i, cqe, fl;

    if (!params || !tp_p || params->nranks < 1 || params->rank < 0 ||
        params->rank >= params->nranks || !params->bind_ip)
        return RDT_ERR_INVALID_ARG;
    tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RDT_ERR_NO_MEMORY;
    tp->lfd = tp->evfd = tp->epfd = -1;
    tp->peers = calloc((size_t)params->nranks, sizeof(*tp->peers));
    if (!tp->peers) {
        verbs_free(tp);
        return RDT_ERR_NO_MEMORY;
    }
    tp->base.ops = &rdt_verbs_ops;
    tp->rank = params->rank;
    tp->nranks = params->nranks;
    tp->comm_id = params->comm_id;
    memcpy(tp->token, params->token, RDT_TOKEN_LEN);
    tp->connect_timeout_ms = params->connect_timeout_ms > 0 ? params->connect_timeout_ms
                                                            : VERBS_CONNECT_TIMEOUT_DEFAULT_MS;
    tp->use_cm = params->ib_cm_rdmacm != 0;
    for (i = 0; i < tp->nranks; i++) {
        verbs_peer_t *p = &tp->peers[i];
        p->rank = i;
        p->fd = -1;
        snprintf(p->addr_str, sizeof(p->addr_str), "(unknown address)");
    }
    if (params->host)
        snprintf(tp->peers[tp->rank].host, RDT_HOST_MAX, "%s", params->host);
    for (i = 0; i < VERBS_MAX_PENDING; i++)
        tp->pending[i].fd = -1;

    tp->dev = verbs_dev_get(params->ib_dev, params->ib_gid_fixed ? params->ib_gid_index : -1,
                            params->reg_cache, tp->use_cm, tp->base.error,
                            sizeof(tp->base.error));
    /* a device or GID the user named and that cannot be used is a configuration error (the
     * engine then fails even under RDT_TRANSPORT=auto), no device at all is "unsupported" */
    st = (params->ib_dev && params->ib_dev[0]) || params->ib_gid_fixed ? RDT_ERR_CONFIG
                                                                         : RDT_ERR_UNSUPPORTED;
    if (!tp->dev)
        goto err;
    /* RDT_IB_RNDV=auto: by device (VERBS_RNDV_DEFAULT) */
    tp->rndv_threshold = params->rndv_threshold;
    if (tp->rndv_threshold == RDT_RNDV_AUTO) {
        tp->rndv_threshold = tp->dev->soft ? 0 : VERBS_RNDV_DEFAULT;
        if (tp->dev->soft)
            rdt_info("verbs", "rank %d: RDT_IB_RNDV=auto: %s is a software device (%s): every "
                     "message is copied through the slots, no zero-copy rendezvous", tp->rank,
                     ibv_get_device_name(tp->dev->ctx->device), tp->dev->soft);
        else
            rdt_info("verbs", "rank %d: RDT_IB_RNDV=auto: zero-copy from %d bytes", tp->rank,
                     VERBS_RNDV_DEFAULT);
    }
    st = RDT_ERR_UNSUPPORTED;
    /* one connection's ring and staging must fit under RLIMIT_MEMLOCK, or nothing can work */
    if (!verbs_memlock_ok(2 * VERBS_BUF_BYTES, "the buffers of one connection", tp->base.error,
                          sizeof(tp->base.error)))
        goto err;
    st = RDT_ERR_SYSTEM;
    tp->chan = ibv_create_comp_channel(tp->dev->ctx);
    /* per peer: every receive and every signaled send may complete */
    cqe = (VERBS_RECV_WRS + VERBS_SEND_WRS) * tp->nranks + 16;
    tp->cq = tp->chan ? ibv_create_cq(tp->dev->ctx, cqe, NULL, tp->chan, 0) : NULL;
    if (!tp->cq) {
        verbs_set_error(tp, "cannot create a completion channel or a completion queue of %d "
                        "entries on %s: %m", cqe, ibv_get_device_name(tp->dev->ctx->device));
        goto err;
    }
    fl = fcntl(tp->chan->fd, F_GETFL);
    tp->epfd = epoll_create1(EPOLL_CLOEXEC);
    tp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fl < 0 || fcntl(tp->chan->fd, F_SETFL, fl | O_NONBLOCK) != 0 || tp->epfd < 0 ||
        tp->evfd < 0 ||
        verbs_epoll(tp, EPOLL_CTL_ADD, tp->evfd, EPOLLIN, verbs_ev_data(VERBS_EV_WAKE, 0, 0)) ||
        verbs_epoll(tp, EPOLL_CTL_ADD, tp->chan->fd, EPOLLIN,
                    verbs_ev_data(VERBS_EV_CQ, 0, 0))) {
        verbs_set_error(tp, "rank %d: cannot set up epoll for the verbs transport: %m", tp->rank);
        goto err;
    }
    st = tp->use_cm ? verbs_cm_listen(tp, params->bind_ip) : verbs_listen(tp, params->bind_ip);
    if (st != RDT_SUCCESS)
        goto err;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&tp->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    rdt_info("verbs", "rank %d of %d on %s port %u, gid index %d, mtu %d, zero-copy %s%zu%s, "
             "%s %s", tp->rank, tp->nranks,
             ibv_get_device_name(tp->dev->ctx->device), tp->dev->port, tp->dev->gid_index,
             128 << tp->dev->mtu, tp->rndv_threshold ? "from " : "never (",
             tp->rndv_threshold, tp->rndv_threshold ? " bytes" : ")",
             tp->use_cm ? "rdma_cm listening on" : "side channel", tp->addr_str);
    *tp_p = &tp->base;
    return RDT_SUCCESS;

err:
    /* info, not warn: under RDT_TRANSPORT=auto a machine without RDMA is normal; the engine
     * reports the failure when verbs was asked for */
    rdt_info("verbs", "rank %d: %s", tp->rank, tp->base.error);
    if (params->open_error && params->open_error_len)
        snprintf(params->open_error, params->open_error_len, "%s", tp->base.error);
    verbs_free(tp);
    return st;
}

static rdt_status_t verbs_addr_get(rdt_transport_t *t, void *addr, size_t *len_p)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;

    if (!tp || !addr || !len_p || *len_p < tp->addr_len)
        return RDT_ERR_INVALID_ARG;
    memcpy(addr, tp->addr, tp->addr_len);
    *len_p = tp->addr_len;
    return RDT_SUCCESS;
}

static rdt_status_t verbs_addrs_set(rdt_transport_t *t, const void *addrs, const char *hosts)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    rdt_status_t st = RDT_SUCCESS;
    int i;

    if (!tp || !addrs)
        return RDT_ERR_INVALID_ARG;
    verbs_enter(tp);
    for (i = 0; i < tp->nranks; i++) {
        verbs_peer_t *p = &tp->peers[i];
        const unsigned char *a = (const unsigned char *)addrs + (size_t)i * RDT_ADDR_MAX;

        if (hosts) {
            const char *h = hosts + (size_t)i * RDT_HOST_MAX;
            snprintf(p->host, sizeof(p->host), "%.*s", (int)strnlen(h, RDT_HOST_MAX - 1), h);
        }
        if (i == tp->rank)
            continue;
        if (a[44] != (unsigned char)tp->use_cm) {
            verbs_set_error(tp, "rank %d (host %s) connects queue pairs with RDT_IB_CM=%s, rank "
                            "%d with RDT_IB_CM=%s: every rank must use the same", i,
                            verbs_host(p), a[44] ? "rdmacm" : "tcp", tp->rank,
                            tp->use_cm ? "rdmacm" : "tcp");
            st = RDT_ERR_CONFIG;
            break;
        }
        if (rdt_wire_sockaddr_unpack(a, &p->sa, &p->salen) != 0) {
            p->salen = 0;
            verbs_set_error(tp, "the verbs address of rank %d (host %s) is malformed (family "
                            "byte %u)", i, verbs_host(p), a[0]);
            st = RDT_ERR_INVALID_ARG;
            break;
        }
        rdt_wire_sockaddr_str((struct sockaddr *)&p->sa, p->salen, p->addr_str,
                           sizeof(p->addr_str));
    }
    verbs_leave(tp);
    return st;
}

static void verbs_wakeup(rdt_transport_t *t)
{
    if (t)
        rdt_wire_eventfd_kick(((rdt_verbs_t *)t)->evfd);
}

/* As tcp_abort: callbacks now from the driving thread, else left to the driver. */
static void verbs_abort(rdt_transport_t *t)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    uintptr_t driver;

    if (!tp)
        return;
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    verbs_wakeup(t);
    if (pthread_mutex_trylock(&tp->lock) != 0)
        return;
    driver = __atomic_load_n(&tp->driver, __ATOMIC_RELAXED);
    verbs_abort_conns(tp);
    if (driver == 0 || driver == (uintptr_t)&verbs_thread_tag)
        verbs_abort_deliver(tp);
    pthread_mutex_unlock(&tp->lock);
}

/* close() under rdma_cm: the failure notices just posted (verbs_abort_conns) get a bounded
 * while to complete, so that the peers have them before the QPs and cm_ids go; then whatever is
 * left is disconnected as it is. */
static void verbs_cm_notices_flush(rdt_verbs_t *tp)
{
    uint64_t end = verbs_now_ms() + VERBS_NOTICE_WAIT_MS;
    int i, pending;

    if (!tp->use_cm)
        return;
    for (;;) {
        pending = 0;
        for (i = 0; i < tp->nranks; i++)
            pending += tp->peers[i].notice_pending;
        if (!pending || verbs_now_ms() >= end)
            break;
        if (verbs_cq_drain(tp) == 0) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    for (i = 0; i < tp->nranks; i++)
        if (tp->peers[i].notice_pending)
            verbs_cm_disconnect(&tp->peers[i]);
}

static void verbs_close(rdt_transport_t *t)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;

    if (!tp)
        return;
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&tp->lock);
    tp->closing = 1;
    verbs_abort_conns(tp);
    verbs_abort_deliver(tp);
    verbs_cm_notices_flush(tp);
    pthread_mutex_unlock(&tp->lock);
    pthread_mutex_destroy(&tp->lock);
    verbs_free(tp);
}

static rdt_status_t verbs_mem_register(rdt_transport_t *t, void *buf, size_t len,
                                       void **handle_p)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    verbs_mr_t *m;

    if (!tp || !buf || !len || !handle_p)
        return RDT_ERR_INVALID_ARG;
    verbs_dev_ref(tp->dev); /* the registration may outlive this transport */
    m = verbs_mr_get(tp->dev, buf, len, 1, tp->base.error, sizeof(tp->base.error));
    if (!m) {
        verbs_dev_put(tp->dev);
        return RDT_ERR_SYSTEM;
    }
    *handle_p = m;
    return RDT_SUCCESS;
}

static void verbs_mem_deregister(void *handle)
{
    if (handle)
        verbs_mr_unpin((verbs_mr_t *)handle);
}

static void *verbs_mem_hold(rdt_transport_t *t, const void *buf, size_t len)
{
    rdt_verbs_t *tp = (rdt_verbs_t *)t;
    char err[256];
    void *m;

    if (!tp || !buf || !tp->rndv_threshold || len < tp->rndv_threshold)
        return NULL;
    m = verbs_mr_get(tp->dev, (void *)(uintptr_t)buf, len, 0, err, sizeof(err));
    if (!m) {
        rdt_debug("verbs", "rank %d: no registration held for %zu bytes: %s", tp->rank, len, err);
        return NULL;
    }
    verbs_dev_ref(tp->dev); /* the hold may be released after the transport is closed */
    return m;
}

static void verbs_mem_release(void *hold)
{
    verbs_dev_t *d;

    if (!hold)
        return;
    d = ((verbs_mr_t *)hold)->dev;
    verbs_mr_put((verbs_mr_t *)hold);
    verbs_dev_put(d);
}

const rdt_transport_ops_t rdt_verbs_ops = {
    .name = "verbs",
    .open = verbs_open,
    .close = verbs_close,
    .addr_get = verbs_addr_get,
    .addrs_set = verbs_addrs_set,
    .isend = verbs_isend,
    .irecv = verbs_irecv,
    .progress = verbs_progress,
    .abort = verbs_abort,
    .wakeup = verbs_wakeup,
    .mem_register = verbs_mem_register,
    .mem_deregister = verbs_mem_deregister,
    .mem_hold = verbs_mem_hold,
    .mem_release = verbs_mem_release,
};
