/*
 * tcp.c - the TCP transport: nonblocking sockets in one epoll set, connected lazily.
 *
 * One connection per pair of ranks, made on the first isend/irecv naming the peer: the lower rank
 * connects and sends a handshake, the higher one accepts and checks it. After that the stream
 * carries messages both ways, each a 24-byte header and the payload (little-endian; the formats
 * are parsed by the pure functions of tcp_wire.c, which the fuzz targets run too):
 *
 *     0        4        8                16               24
 *     | magic  | check  | tag            | length         | payload (length bytes) ...
 *
 * check is a hash of tag and length, so a stream that lost its framing is detected rather than
 * read as garbage lengths. The handshake, connector to acceptor only, 40 bytes:
 *
 *     0        4        8                    24         32       36        40
 *     | magic  | version| token (16)         | comm_id  | rank   | nranks  |
 *
 * Send: a peer's queue goes out with sendmsg straight from the callers' buffers, several queued
 * messages per call. Receive: each connection has a 64 KiB buffer; headers and small payloads are
 * read into it with one call and copied out, large payloads go straight to the posted buffer
 * (readv: the rest of the payload into the caller's buffer, what follows into ours). A header with
 * no receive posted stops reading that socket (backpressure): at most one buffer waits per peer.
 *
 * Failure. A lost connection fails every transfer of that peer. A rank that gives up (a peer
 * failed with transfers on it, or an abort) first writes a failure notice as the last thing on
 * each connection that still works, saying why (see tcp_peer_notice()), so that a rank that never
 * talked to the rank that failed first still names it; a clean close sends none.
 *
 * epoll is level-triggered. A peer's interest is EPOLLIN unless reading is stopped, plus EPOLLOUT
 * only while a send is blocked, so progress() sleeps in epoll_wait whenever nothing can move.
 * isend/irecv only queue; all I/O and every callback run inside progress() (or abort()/close()).
 *
 * Threads: the driving thread holds tp->lock inside every call (also while in epoll_wait); abort()
 * from another thread only takes it with trylock, so it never blocks (see tcp_abort()).
 */
#include "tcp_wire.h"
#include "transport.h"
#include "wire.h"

#include "log.h"

#include <errno.h>
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TCP_MSG_MAGIC RDT_TCP_MSG_MAGIC
#define TCP_HDR_LEN RDT_TCP_HDR_LEN
#define TCP_HS_MAGIC RDT_TCP_HS_MAGIC
#define TCP_HS_VERSION RDT_TCP_HS_VERSION
#define TCP_HS_LEN RDT_TCP_HS_LEN
#define TCP_RBUF_LEN (64 * 1024)
#define TCP_IOV_MAX 64
#define TCP_IO_MAX ((size_t)1 << 30) /* bytes per readv/sendmsg, well below SSIZE_MAX */
#define TCP_EVENTS 64
#define TCP_MAX_PENDING 64   /* accepted sockets still owing their handshake */
#define TCP_HS_TIMEOUT_MS 3000
#define TCP_ACCEPT_PAUSE_MS 100
#define TCP_BACKOFF_MIN_MS 10
#define TCP_BACKOFF_MAX_MS 500
#define TCP_CONNECT_TIMEOUT_DEFAULT_MS 30000
#define TCP_ADDR_STR 96 /* "[v6%scope]:port" */
#define TCP_NOTE_MAGIC RDT_TCP_NOTE_MAGIC
#define TCP_NOTICE_MAX RDT_TCP_NOTICE_MAX
#define TCP_TRAILER_LEN RDT_TCP_TRAILER_LEN
#define TCP_TAIL_LEN (TCP_NOTICE_MAX + TCP_TRAILER_LEN)
#define TCP_DRAIN_MAX (8u << 20) /* bytes read from a failed connection looking for a notice */

_Static_assert(TCP_HDR_LEN <= sizeof(((rdt_xfer_t *)0)->hdr), "rdt_xfer_t.hdr holds a header");

/* epoll_event.data: kind (8 bits) | generation (24 bits) | index (32 bits) */
enum { TCP_EV_LISTEN = 1, TCP_EV_WAKE, TCP_EV_PEER, TCP_EV_PENDING };

typedef enum { PEER_IDLE, PEER_CONNECTING, PEER_UP, PEER_FAILED } tcp_peer_state_t;

typedef struct tcp_peer {
    int rank;
    tcp_peer_state_t state;
    int fd;
    uint32_t events;          /* epoll interest of fd as registered */
    rdt_status_t fail_status; /* PEER_FAILED: what later posts return */
    char fail_msg[TCP_NOTICE_MAX + 2 * RDT_HOST_MAX + TCP_ADDR_STR + 96];

    struct sockaddr_storage sa; /* its listening address, from addrs_set */
    socklen_t salen;
    char addr_str[TCP_ADDR_STR];
    char host[RDT_HOST_MAX];

    rdt_xfer_t *sq_head, *sq_tail; /* sends, in posting order */
    rdt_xfer_t *rq_head, *rq_tail; /* receives, in posting order */

    /* connecting (lower rank only) */
    int conn_idx; /* index in tp->connecting, or -1 */
    uint64_t connect_deadline, retry_at;
    int backoff_ms, last_errno;
    unsigned char hs_out[TCP_HS_LEN];
    unsigned hs_out_done; /* TCP_HS_LEN: nothing (left) to send */

    int tx_blocked; /* the kernel took only part of the last sendmsg: wait for EPOLLOUT */

    /* receiving: rbuf[rpos, rend) holds bytes read but not yet consumed */
    unsigned char *rbuf;
    size_t rpos, rend;
    int have_hdr, rx_matched;
    uint64_t in_tag, in_len;
    int rx_stalled; /* a header waits for a receive to be posted */
    int rx_off;     /* EPOLLIN removed: data kept arriving while stalled */

    int in_ready;

    /* the last bytes read from the stream, where a failure notice's trailer would be */
    unsigned char tail[TCP_TAIL_LEN];
    size_t tail_len;
    int in_notice; /* a framed notice started: the rest of the stream is its text */
    char gave_up[TCP_NOTICE_MAX + 1]; /* the peer's notice, when it is second-hand */
} tcp_peer_t;

typedef struct tcp_pending {
    int fd;
    uint32_t gen;
    unsigned done;
    uint64_t deadline;
    unsigned char buf[TCP_HS_LEN];
    char from[TCP_ADDR_STR];
} tcp_pending_t;

typedef struct rdt_tcp {
    rdt_transport_t base;
    int rank, nranks;
    uint64_t comm_id;
    unsigned char token[RDT_TOKEN_LEN];
    int connect_timeout_ms;
    size_t sockbuf;

    int epfd, evfd, lfd;
    uint64_t listen_resume_at; /* nonzero: accepting paused until then (out of fds) */
    unsigned char addr[RDT_ADDR_MAX];
    size_t addr_len;
    char addr_str[TCP_ADDR_STR];

    tcp_peer_t *peers;
    int *ready, *ready_work, nready; /* peers with work that needs no event */
    int *connecting, nconnecting;    /* peers with a connect timer */
    tcp_pending_t pending[TCP_MAX_PENDING];
    int npending;
    uint32_t pending_gen;
    uint64_t ncompleted;
    int poll_skipped; /* the last progress() skipped epoll_wait */

    pthread_mutex_t lock;
    uintptr_t driver;   /* the thread that last entered a call (atomic) */
    int abort_req;      /* atomic: abort() was called */
    int sockets_closed; /* abort: connections closed */
    int abort_delivered;
    int closing;    /* inside close() */
    int failed_any; /* a connection failed with transfers on it: close() still tells why */
    char cause[TCP_NOTICE_MAX + RDT_HOST_MAX + 64]; /* the first failure notice received, with its sender */
    char first_fail[TCP_NOTICE_MAX + 1]; /* the first failure with transfers on it: what this
                                          * rank's notices say (later ones are consequences) */
} rdt_tcp_t;

static __thread char tcp_thread_tag; /* its address identifies the calling thread */

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

static uint64_t tcp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *tcp_strerror(int err, char *buf, size_t len)
{
    return strerror_r(err, buf, len); /* GNU variant: returns the string */
}

static void tcp_set_error(rdt_tcp_t *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tcp_set_error(rdt_tcp_t *tp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->base.error, sizeof(tp->base.error), fmt, ap);
    va_end(ap);
}

static uint64_t tcp_ev_data(unsigned kind, uint32_t gen, uint32_t idx)
{
    return ((uint64_t)kind << 56) | ((uint64_t)(gen & 0xffffffu) << 32) | idx;
}

static int tcp_epoll(rdt_tcp_t *tp, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(tp->epfd, op, fd, &ev);
}

/* Remove from epoll before close: a forked child may share the socket, and epoll forgets a
 * socket only when every descriptor of it is closed. */
static void tcp_close_fd(rdt_tcp_t *tp, int fd)
{
    if (fd < 0)
        return;
    epoll_ctl(tp->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static const char *tcp_host(const tcp_peer_t *p)
{
    return p->host[0] ? p->host : "unknown";
}

/*
 * Options every data socket gets; sizes only when asked (0 leaves the kernel's autotuning).
 *
 * Unreachable peers (a link down, a host powered off: nothing resets the connection) are found
 * by the kernel within the connect timeout, as a peer we would not wait longer to connect to:
 * TCP_USER_TIMEOUT fails a connection whose data stays unacknowledged that long, and keepalive
 * probes (every third of it once nothing arrived for a third of it; the user timeout then decides
 * when to give up) do the same for one that only waits to receive. The connection then fails
 * naming the peer ("Connection timed out"), instead of every rank waiting for RDT_TIMEOUT and
 * naming only what it waited for. A live peer is not affected, even one that does not read or is
 * stopped: its kernel answers window and keepalive probes.
 */
static void tcp_sock_setup(rdt_tcp_t *tp, int fd)
{
    unsigned int ut = (unsigned int)tp->connect_timeout_ms;
    int one = 1, ka = tp->connect_timeout_ms / 3000 > 1 ? tp->connect_timeout_ms / 3000 : 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        rdt_debug("tcp", "setsockopt(TCP_NODELAY) failed: %m");
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &ka, sizeof(ka)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &ka, sizeof(ka)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0)
        rdt_debug("tcp", "setting the user timeout and keepalive failed: %m");
    if (tp->sockbuf) {
        int sz = tp->sockbuf > (size_t)(1 << 30) ? (1 << 30) : (int)tp->sockbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) != 0)
            rdt_debug("tcp", "setting socket buffers to %d bytes failed: %m", sz);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Queues, completion, failure                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void tcp_ready_add(rdt_tcp_t *tp, tcp_peer_t *p)
{
    if (p->in_ready)
        return;
    p->in_ready = 1;
    tp->ready[tp->nready++] = p->rank;
}

static void tcp_connecting_remove(rdt_tcp_t *tp, tcp_peer_t *p)
{
    int i = p->conn_idx;

    if (i < 0)
        return;
    tp->connecting[i] = tp->connecting[--tp->nconnecting];
    tp->peers[tp->connecting[i]].conn_idx = i;
    p->conn_idx = -1;
}

/* Callbacks may post (the queues are detached first) and may call abort(). */
static void tcp_complete_list(rdt_tcp_t *tp, rdt_xfer_t *x, rdt_status_t st)
{
    while (x) {
        rdt_xfer_t *next = x->next;
        x->next = NULL;
        tp->ncompleted++;
        x->cb(x, st);
        x = next;
    }
}

/* Close a peer's socket and drop its receive state; the queues stay. */
static void tcp_peer_close(rdt_tcp_t *tp, tcp_peer_t *p)
{
    tcp_close_fd(tp, p->fd);
    p->fd = -1;
    p->events = 0;
    tcp_connecting_remove(tp, p);
    free(p->rbuf);
    p->rbuf = NULL;
    p->rpos = p->rend = 0;
    p->have_hdr = p->rx_matched = p->rx_stalled = p->rx_off = p->in_notice = 0;
    p->tx_blocked = 0;
    p->hs_out_done = TCP_HS_LEN;
}

/* ------------------------------------------------------------------------------------------ */
/* Failure notices                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * A rank that gives up (a peer failed with transfers on it, or an abort) writes one notice on
 * each connection that still works, just before closing it, so that a rank that never talked to
 * the rank that failed first still names it (verbs.c does the same on its side channels). It is
 * the last thing on the stream, wherever the stream stands:
 *
 *   at a message boundary:   | header: RDTA, check, tag 0, length n+12 | sentence (n) | trailer |
 *   inside a message with more than n+12 payload bytes left:
 *                            | rest of its header | sentence (n) | trailer |   then the end: the
 *                            stream stops mid-payload, so that receive fails, as it must
 *   inside a message with less left: its real remaining payload, then as at a boundary
 *
 *   trailer:  | n (u32) | check of (0, n) (u32) | magic RDTA (u32) |
 *
 * The receiver keeps the last TCP_TAIL_LEN bytes it read from each stream and looks for the
 * trailer there when the stream ends (rdt_tcp_notice_pack / _parse in tcp_wire.c). A clean close
 * sends no notice.
 */

static void tcp_tail_add(tcp_peer_t *p, const unsigned char *b, size_t n)
{
    if (n >= TCP_TAIL_LEN) {
        memcpy(p->tail, b + n - TCP_TAIL_LEN, TCP_TAIL_LEN);
        p->tail_len = TCP_TAIL_LEN;
        return;
    }
    if (p->tail_len + n > TCP_TAIL_LEN) {
        size_t drop = p->tail_len + n - TCP_TAIL_LEN;
        memmove(p->tail, p->tail + drop, p->tail_len - drop);
        p->tail_len -= drop;
    }
    memcpy(p->tail + p->tail_len, b, n);
    p->tail_len += n;
}

/* The notice at the end of what the peer sent, printable only (it goes into logs): 1 if any. */
static int tcp_tail_notice(const tcp_peer_t *p, char *why, size_t len)
{
    return rdt_tcp_notice_parse(p->tail, p->tail_len, why, len);
}

/* Read what a failed connection still holds (its end may be a notice): all but the last
 * TCP_TAIL_LEN bytes are dropped unread (MSG_TRUNC). Bounded: a peer that keeps sending is
 * not followed further. */
static void tcp_peer_drain(tcp_peer_t *p)
{
    unsigned char b[TCP_TAIL_LEN];
    size_t total = 0;

    if (p->fd < 0)
        return;
    while (total < TCP_DRAIN_MAX) {
        int q = 0;
        ssize_t n;
        if (ioctl(p->fd, FIONREAD, &q) == 0 && (size_t)q > TCP_TAIL_LEN) {
            /* MSG_TRUNC on TCP discards without copying; the buffer is never written, but
             * passed as a real one (valgrind checks it), in slices of its size */
            static unsigned char sink[1 << 16];
            size_t skip = (size_t)q - TCP_TAIL_LEN;
            n = recv(p->fd, sink, skip < sizeof(sink) ? skip : sizeof(sink),
                     MSG_TRUNC | MSG_DONTWAIT);
            if (n <= 0)
                return;
            total += (size_t)n;
            continue;
        }
        n = recv(p->fd, b, sizeof(b), MSG_DONTWAIT);
        if (n <= 0)
            return;
        tcp_tail_add(p, b, (size_t)n);
        total += (size_t)n;
    }
}

/* A full send buffer must not swallow the notice: make room for @p need more bytes. Raising
 * SO_SNDBUF past net.core.wmem_max needs CAP_NET_ADMIN (SO_SNDBUFFORCE); without it the notice
 * may not go out, and the peer falls back to naming this rank. */
static void tcp_sndbuf_grow(int fd, size_t need)
{
    int cur = 0, want;
    socklen_t len = sizeof(cur);

    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len) != 0 || cur <= 0)
        return;
    want = cur / 2 + (int)need + 4096; /* the kernel doubles what it is given */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) != 0)
        rdt_debug("tcp", "cannot grow the send buffer for a failure notice: %m");
}

static void tcp_iov_advance(struct iovec **v_p, int *niov_p, size_t k)
{
    struct iovec *v = *v_p;
    int niov = *niov_p;

    while (niov > 0 && k >= v->iov_len) {
        k -= v->iov_len;
        v++;
        niov--;
    }
    if (niov > 0) {
        v->iov_base = (char *)v->iov_base + k;
        v->iov_len -= k;
    }
    *v_p = v;
    *niov_p = niov;
}

/* Write the notice @p why on @p p's connection, without blocking, then end our side of the
 * stream and drop what we have not read, so that close() sends a FIN behind the notice rather
 * than a reset (which would discard it). Best effort: a connection that takes nothing more
 * gets no notice. */
static void tcp_peer_notice(rdt_tcp_t *tp, tcp_peer_t *p, const char *why)
{
    unsigned char hdr[TCP_HDR_LEN], trl[TCP_TRAILER_LEN];
    struct iovec iov[5], *v = iov;
    rdt_xfer_t *x = p->sq_head;
    size_t n, left, total = 0;
    int niov = 0, framed = 1, tries, i;

    if (!why || !*why || p->state != PEER_UP || p->fd < 0 || p->hs_out_done < TCP_HS_LEN)
        return;
    n = rdt_tcp_notice_pack(why, trl);
    if (x && x->hdr_done > 0) {
        if (x->hdr_done < TCP_HDR_LEN) {
            iov[niov].iov_base = x->hdr + x->hdr_done;
            iov[niov++].iov_len = TCP_HDR_LEN - x->hdr_done;
        }
        left = x->len - x->done;
        if (left > n + TCP_TRAILER_LEN) {
            framed = 0;
        } else if (left) {
            iov[niov].iov_base = (char *)x->buf + x->done;
            iov[niov++].iov_len = left;
        }
    }
    if (framed) {
        rdt_tcp_frame_pack(TCP_NOTE_MAGIC, 0, n + TCP_TRAILER_LEN, hdr);
        iov[niov].iov_base = hdr;
        iov[niov++].iov_len = TCP_HDR_LEN;
    }
    iov[niov].iov_base = (void *)(uintptr_t)why;
    iov[niov++].iov_len = n;
    iov[niov].iov_base = trl;
    iov[niov++].iov_len = TCP_TRAILER_LEN;
    for (i = 0; i < niov; i++)
        total += iov[i].iov_len;
    for (tries = 0; tries < 2 && niov > 0; tries++) {
        struct msghdr msg;
        ssize_t k;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = v;
        msg.msg_iovlen = (size_t)niov;
        do
            k = sendmsg(p->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (k < 0 && errno == EINTR);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        tcp_iov_advance(&v, &niov, k > 0 ? (size_t)k : 0);
        if (niov > 0 && tries == 0)
            tcp_sndbuf_grow(p->fd, total);
    }
    if (niov > 0) {
        rdt_debug("tcp", "no complete failure notice to rank %d (host %s): %m", p->rank,
                  tcp_host(p));
        return;
    }
    shutdown(p->fd, SHUT_WR);
    tcp_peer_drain(p);
}

/*
 * A peer's connection is gone for good: close it, then complete @p first (if any) with
 * @p first_st and everything else queued for the peer with @p st. Later posts naming the peer
 * return @p st. A connection that closes with nothing in flight (a peer that finished) is only
 * logged at debug level; the sentence is kept for a later post.
 */
static void tcp_peer_fail(rdt_tcp_t *tp, tcp_peer_t *p, rdt_status_t st, rdt_xfer_t *first,
                          rdt_status_t first_st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void tcp_peer_fail(rdt_tcp_t *tp, tcp_peer_t *p, rdt_status_t st, rdt_xfer_t *first,
                          rdt_status_t first_st, const char *fmt, ...)
{
    rdt_xfer_t *sq, *rq;
    va_list ap;
    int busy;

    if (p->state == PEER_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(p->fail_msg, sizeof(p->fail_msg), fmt, ap);
    va_end(ap);
    busy = first || p->sq_head || p->rq_head || p->have_hdr || p->rend > p->rpos;
    tp->failed_any |= busy;
    /* a second-hand notice ("rank q gave up: ...") is passed on as it came, not as "rank p gave
     * up: rank q gave up: ...", so that a chain of ranks giving up never pushes the root cause
     * out of the sentence */
    if (busy && !tp->first_fail[0])
        snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", TCP_NOTICE_MAX,
                 p->gave_up[0] ? p->gave_up : p->fail_msg);
    if (busy)
        tcp_peer_notice(tp, p, tp->first_fail);
    tcp_peer_close(tp, p);
    p->state = PEER_FAILED;
    p->fail_status = st;
    if (busy) {
        rdt_warn("tcp", "%s", p->fail_msg);
        tcp_set_error(tp, "%s", p->fail_msg);
    } else {
        rdt_debug("tcp", "%s", p->fail_msg);
    }
    sq = p->sq_head;
    rq = p->rq_head;
    p->sq_head = p->sq_tail = p->rq_head = p->rq_tail = NULL;
    if (first) {
        first->next = NULL;
        tcp_complete_list(tp, first, first_st);
    }
    tcp_complete_list(tp, rq, st);
    tcp_complete_list(tp, sq, st);
}

/*
 * The connection to @p p broke (@p err, 0 for an orderly end). If the peer ended its stream with
 * a notice, the sentence says why it gave up (naming the rank that failed first); the first
 * notice received is kept, and a connection that later breaks without one quotes it, since the
 * rank that closed it most likely gave up for the same reason.
 */
static void tcp_peer_lost(rdt_tcp_t *tp, tcp_peer_t *p, int err)
{
    char eb[128], why[TCP_NOTICE_MAX + 1];

    tcp_peer_drain(p);
    if (tcp_tail_notice(p, why, sizeof(why))) {
        snprintf(p->gave_up, sizeof(p->gave_up), "%s", strstr(why, " gave up: ") ? why : "");
        if (!tp->cause[0])
            snprintf(tp->cause, sizeof(tp->cause), "rank %d (host %s) gave up: %s", p->rank,
                     tcp_host(p), why);
        tcp_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                      "rank %d (host %s) gave up: %s", p->rank, tcp_host(p), why);
        return;
    }
    tcp_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                  "connection to rank %d (host %s) at %s lost: %s%s%s", p->rank, tcp_host(p),
                  p->addr_str, err ? tcp_strerror(err, eb, sizeof(eb)) : "closed by the peer",
                  tp->cause[0] ? "; earlier, " : "", tp->cause);
}

static void tcp_peer_events(rdt_tcp_t *tp, tcp_peer_t *p)
{
    uint32_t want;

    if (p->fd < 0)
        return;
    if (p->state == PEER_CONNECTING)
        want = EPOLLOUT;
    else
        want = (p->rx_off ? 0 : EPOLLIN) | (p->tx_blocked ? EPOLLOUT : 0);
    if (want == p->events)
        return;
    if (tcp_epoll(tp, EPOLL_CTL_MOD, p->fd, want, tcp_ev_data(TCP_EV_PEER, 0, (uint32_t)p->rank)))
        rdt_warn("tcp", "epoll_ctl on the connection to rank %d failed: %m", p->rank);
    p->events = want;
}

/*
 * Phase one of an abort, safe from any thread holding the lock: close every connection. Queues
 * are kept for tcp_abort_deliver(), which the driving thread runs. The listening socket stays
 * open, unserved, until close(): a peer connecting meanwhile waits in the backlog and gets a
 * reset when it closes, instead of "connection refused", which it would retry until its connect
 * timeout.
 */
static void tcp_abort_sockets(rdt_tcp_t *tp)
{
    char why[sizeof(tp->base.error)];
    int i;

    if (tp->sockets_closed)
        return;
    tp->sockets_closed = 1;
    if (tp->lfd >= 0 && !tp->listen_resume_at)
        epoll_ctl(tp->epfd, EPOLL_CTL_DEL, tp->lfd, NULL);
    tp->listen_resume_at = 0;
    for (i = 0; i < TCP_MAX_PENDING; i++) {
        tcp_close_fd(tp, tp->pending[i].fd);
        tp->pending[i].fd = -1;
    }
    tp->npending = 0;
    if (!tp->base.error[0])
        tcp_set_error(tp, "the tcp transport of rank %d was aborted", tp->rank);
    snprintf(why, sizeof(why), "%s", tp->first_fail[0] ? tp->first_fail : tp->base.error);
    for (i = 0; i < tp->nranks; i++) {
        tcp_peer_t *p = &tp->peers[i];
        p->in_ready = 0;
        if (p->state == PEER_FAILED)
            continue;
        /* close() after a clean run (rdt_comm_destroy) is not giving up: no notice then */
        if (!tp->closing || tp->failed_any)
            tcp_peer_notice(tp, p, why);
        tcp_peer_close(tp, p);
        p->state = PEER_FAILED;
        p->fail_status = RDT_ERR_ABORTED;
        snprintf(p->fail_msg, sizeof(p->fail_msg),
                 "the connection to rank %d (host %s) was closed by an abort", p->rank,
                 tcp_host(p));
    }
    tp->nready = 0;
    tp->nconnecting = 0;
}

static void tcp_abort_deliver(rdt_tcp_t *tp)
{
    int i;

    if (tp->abort_delivered)
        return;
    tp->abort_delivered = 1;
    for (i = 0; i < tp->nranks; i++) {
        tcp_peer_t *p = &tp->peers[i];
        rdt_xfer_t *sq = p->sq_head, *rq = p->rq_head;
        p->sq_head = p->sq_tail = p->rq_head = p->rq_tail = NULL;
        tcp_complete_list(tp, rq, RDT_ERR_ABORTED);
        tcp_complete_list(tp, sq, RDT_ERR_ABORTED);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void tcp_tx_block(rdt_tcp_t *tp, tcp_peer_t *p, int on)
{
    if (p->tx_blocked == on)
        return;
    p->tx_blocked = on;
    tcp_peer_events(tp, p);
}

/* Write as much of the peer's queue as the socket takes: handshake first (connector), then
 * header and payload of each queued send, up to TCP_IOV_MAX pieces per sendmsg. */
static void tcp_tx(rdt_tcp_t *tp, tcp_peer_t *p)
{
    for (;;) {
        struct iovec iov[TCP_IOV_MAX];
        struct msghdr msg;
        rdt_xfer_t *x, *done = NULL, **done_tail = &done;
        size_t total = 0, left, c;
        int niov = 0;
        ssize_t n;

        if (p->hs_out_done < TCP_HS_LEN) {
            iov[niov].iov_base = p->hs_out + p->hs_out_done;
            iov[niov].iov_len = TCP_HS_LEN - p->hs_out_done;
            total += iov[niov++].iov_len;
        }
        for (x = p->sq_head; x && niov <= TCP_IOV_MAX - 2 && total < TCP_IO_MAX; x = x->next) {
            if (x->hdr_done < TCP_HDR_LEN) {
                iov[niov].iov_base = x->hdr + x->hdr_done;
                iov[niov].iov_len = TCP_HDR_LEN - x->hdr_done;
                total += iov[niov++].iov_len;
            }
            if (x->done < x->len) {
                c = x->len - x->done;
                iov[niov].iov_base = (char *)x->buf + x->done;
                iov[niov].iov_len = c < TCP_IO_MAX ? c : TCP_IO_MAX;
                total += iov[niov++].iov_len;
            }
        }
        if (niov == 0)
            break;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)niov;
        do
            n = sendmsg(p->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                tcp_tx_block(tp, p, 1);
                return;
            }
            tcp_peer_lost(tp, p, errno);
            return;
        }

        left = (size_t)n;
        if (p->hs_out_done < TCP_HS_LEN) {
            c = TCP_HS_LEN - p->hs_out_done;
            c = c < left ? c : left;
            p->hs_out_done += (unsigned)c;
            left -= c;
        }
        while ((x = p->sq_head) != NULL && p->hs_out_done == TCP_HS_LEN) {
            if (x->hdr_done < TCP_HDR_LEN) {
                c = TCP_HDR_LEN - x->hdr_done;
                c = c < left ? c : left;
                x->hdr_done += (uint32_t)c;
                left -= c;
                if (x->hdr_done < TCP_HDR_LEN)
                    break;
            }
            if (x->done < x->len) {
                c = x->len - x->done;
                c = c < left ? c : left;
                x->done += c;
                left -= c;
                if (x->done < x->len)
                    break;
            }
            p->sq_head = x->next;
            if (!p->sq_head)
                p->sq_tail = NULL;
            x->next = NULL;
            *done_tail = x;
            done_tail = &x->next;
        }
        if (done) {
            tcp_complete_list(tp, done, RDT_SUCCESS);
            if (p->state != PEER_UP)
                return;
        }
        if ((size_t)n < total) {
            tcp_tx_block(tp, p, 1);
            return;
        }
    }
    tcp_tx_block(tp, p, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Returns the bytes read, 0 when the socket is empty, -1 when the connection failed. */
static ssize_t tcp_rx_read(rdt_tcp_t *tp, tcp_peer_t *p, struct iovec *iov, int niov)
{
    ssize_t n;

    do
        n = readv(p->fd, iov, niov);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        size_t k0 = (size_t)n < iov[0].iov_len ? (size_t)n : iov[0].iov_len;
        if (k0 < (size_t)n) {
            if (k0 + TCP_TAIL_LEN > (size_t)n)
                tcp_tail_add(p, iov[0].iov_base, k0);
            tcp_tail_add(p, iov[1].iov_base, (size_t)n - k0);
        } else {
            tcp_tail_add(p, iov[0].iov_base, k0);
        }
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    tcp_peer_lost(tp, p, n == 0 ? 0 : errno);
    return -1;
}

/* The caller has TCP_HDR_LEN bytes at rbuf[rpos]. */
static int tcp_rx_header(rdt_tcp_t *tp, tcp_peer_t *p)
{
    uint64_t tag = 0, len = 0;
    char why[64];

    switch (rdt_tcp_frame_parse(p->rbuf + p->rpos, p->rend - p->rpos, &tag, &len, why,
                                sizeof(why))) {
    case RDT_TCP_FRAME_NOTICE:
        /* the peer gave up: its notice follows, then the end of the stream */
        p->rpos += TCP_HDR_LEN;
        p->in_notice = 1;
        return 0;
    case RDT_TCP_FRAME_MSG:
        break;
    default:
        tcp_peer_fail(tp, p, RDT_ERR_PEER_FAILED, NULL, RDT_SUCCESS,
                      "rank %d (host %s) sent a %s, the stream from it is out of sync", p->rank,
                      tcp_host(p), why);
        return -1;
    }
    p->rpos += TCP_HDR_LEN;
    p->in_tag = tag;
    p->in_len = len;
    p->have_hdr = 1;
    p->rx_matched = 0;
    return 0;
}

static void tcp_rx_mismatch(rdt_tcp_t *tp, tcp_peer_t *p, rdt_xfer_t *x)
{
    p->rq_head = x->next;
    if (!p->rq_head)
        p->rq_tail = NULL;
    tcp_peer_fail(tp, p, RDT_ERR_PEER_FAILED, x, RDT_ERR_MISMATCH,
                  "rank %d (host %s) sent %" PRIu64 " bytes with tag 0x%" PRIx64
                  ", rank %d expected %zu bytes with tag 0x%" PRIx64,
                  p->rank, tcp_host(p), p->in_len, p->in_tag, tp->rank, x->len, x->tag);
}

/*
 * Consume what the socket has for this peer: parse headers, match them with the posted receives
 * in order, fill them. @p drained says the socket is known to be empty (level-triggered epoll
 * reports it again when data arrive), so no read is tried. A short read means the same.
 */
static void tcp_rx(rdt_tcp_t *tp, tcp_peer_t *p, int drained)
{
    for (;;) {
        size_t avail = p->rend - p->rpos, want, c;
        struct iovec iov[2];
        rdt_xfer_t *x;
        ssize_t n;

        if (p->in_notice) {
            /* only the end of the stream matters now (tcp_peer_lost reads the notice) */
            p->rpos = p->rend = 0;
            iov[0].iov_base = p->rbuf;
            iov[0].iov_len = TCP_RBUF_LEN;
            n = tcp_rx_read(tp, p, iov, 1);
            if (n <= 0)
                return;
            continue;
        }
        if (!p->have_hdr) {
            if (avail >= TCP_HDR_LEN) {
                if (tcp_rx_header(tp, p) != 0)
                    return;
                continue;
            }
            if (drained)
                return;
            if (p->rpos > 0) {
                if (avail)
                    memmove(p->rbuf, p->rbuf + p->rpos, avail);
                p->rpos = 0;
                p->rend = avail;
            }
            iov[0].iov_base = p->rbuf + p->rend;
            iov[0].iov_len = want = TCP_RBUF_LEN - p->rend;
            n = tcp_rx_read(tp, p, iov, 1);
            if (n < 0)
                return;
            p->rend += (size_t)n;
            drained = (size_t)n < want;
            continue;
        }

        x = p->rq_head;
        if (!x) {
            /* Backpressure: leave the rest in the kernel. The receive is usually posted before
             * the next epoll_wait; if instead epoll reports more data while we are still
             * stalled, stop listening until a receive is posted, or it would wake us for
             * nothing again and again. */
            if (!p->rx_stalled) {
                p->rx_stalled = 1;
            } else if (!drained && !p->rx_off) {
                p->rx_off = 1;
                tcp_peer_events(tp, p);
            }
            return;
        }
        p->rx_stalled = 0;
        if (!p->rx_matched) {
            if (p->in_tag != x->tag || p->in_len != (uint64_t)x->len) {
                tcp_rx_mismatch(tp, p, x);
                return;
            }
            p->rx_matched = 1;
        }
        if (x->done == x->len) {
            p->rq_head = x->next;
            if (!p->rq_head)
                p->rq_tail = NULL;
            p->have_hdr = p->rx_matched = 0;
            x->next = NULL;
            tp->ncompleted++;
            x->cb(x, RDT_SUCCESS);
            if (p->state != PEER_UP)
                return;
            continue;
        }
        c = x->len - x->done;
        if (avail) {
            c = c < avail ? c : avail;
            memcpy((char *)x->buf + x->done, p->rbuf + p->rpos, c);
            x->done += c;
            p->rpos += c;
            continue;
        }
        p->rpos = p->rend = 0;
        if (drained)
            return;
        iov[0].iov_base = (char *)x->buf + x->done;
        iov[0].iov_len = c < TCP_IO_MAX ? c : TCP_IO_MAX;
        iov[1].iov_base = p->rbuf;
        iov[1].iov_len = TCP_RBUF_LEN;
        want = iov[0].iov_len + iov[1].iov_len;
        n = tcp_rx_read(tp, p, iov, 2);
        if (n < 0)
            return;
        c = (size_t)n < iov[0].iov_len ? (size_t)n : iov[0].iov_len;
        x->done += c;
        p->rend = (size_t)n - c;
        drained = (size_t)n < want;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Connecting (the lower rank of a pair)                                                         */
/* ------------------------------------------------------------------------------------------ */

static int tcp_connect_retryable(int err)
{
    return err == ECONNREFUSED || err == ETIMEDOUT || err == ECONNRESET || err == ECONNABORTED ||
           err == EAGAIN;
}

static int tcp_peer_up(rdt_tcp_t *tp, tcp_peer_t *p)
{
    p->rbuf = malloc(TCP_RBUF_LEN);
    if (!p->rbuf) {
        tcp_peer_fail(tp, p, RDT_ERR_NO_MEMORY, NULL, RDT_SUCCESS,
                      "no memory for the receive buffer of the connection to rank %d (host %s)",
                      p->rank, tcp_host(p));
        return -1;
    }
    tcp_connecting_remove(tp, p);
    p->state = PEER_UP;
    p->rpos = p->rend = 0;
    tcp_peer_events(tp, p);
    tcp_ready_add(tp, p);
    return 0;
}

static void tcp_connected(rdt_tcp_t *tp, tcp_peer_t *p)
{
    rdt_wire_hello_t h;

    rdt_wire_hello_fill(&h, TCP_HS_MAGIC, TCP_HS_VERSION, tp->token, tp->comm_id, tp->rank,
                        tp->nranks);
    rdt_wire_hello_pack(&h, p->hs_out);
    if (tcp_peer_up(tp, p) == 0) {
        p->hs_out_done = 0; /* goes out first, with the first messages */
        rdt_debug("tcp", "connected to rank %d (host %s) at %s", p->rank, tcp_host(p),
                  p->addr_str);
    }
}

static void tcp_connect_failed(rdt_tcp_t *tp, tcp_peer_t *p, int err)
{
    uint64_t now = tcp_now_ms();
    char eb[128];

    tcp_close_fd(tp, p->fd);
    p->fd = -1;
    p->events = 0;
    p->last_errno = err;
    if (tcp_connect_retryable(err)) {
        if (now < p->connect_deadline) {
            p->retry_at = now + (uint64_t)p->backoff_ms;
            if (p->retry_at > p->connect_deadline)
                p->retry_at = p->connect_deadline;
            p->backoff_ms = p->backoff_ms * 2 > TCP_BACKOFF_MAX_MS ? TCP_BACKOFF_MAX_MS
                                                                   : p->backoff_ms * 2;
            rdt_debug("tcp", "connect to rank %d at %s: %s, retrying", p->rank, p->addr_str,
                      tcp_strerror(err, eb, sizeof(eb)));
            return;
        }
        tcp_peer_fail(tp, p, RDT_ERR_TIMEOUT, NULL, RDT_SUCCESS,
                      "could not connect to rank %d (host %s) at %s within %d ms: %s", p->rank,
                      tcp_host(p), p->addr_str, tp->connect_timeout_ms,
                      tcp_strerror(err, eb, sizeof(eb)));
        return;
    }
    tcp_peer_fail(tp, p, RDT_ERR_NETWORK, NULL, RDT_SUCCESS,
                  "connect to rank %d (host %s) at %s failed: %s", p->rank, tcp_host(p),
                  p->addr_str, tcp_strerror(err, eb, sizeof(eb)));
}

static void tcp_connect_attempt(rdt_tcp_t *tp, tcp_peer_t *p)
{
    char eb[128];
    int fd;

    fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        tcp_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                      "cannot create a socket to connect to rank %d (host %s): %s%s", p->rank,
                      tcp_host(p), tcp_strerror(err, eb, sizeof(eb)),
                      err == EMFILE ? " (raise ulimit -n)" : "");
        return;
    }
    tcp_sock_setup(tp, fd);
    p->fd = fd;
    p->events = EPOLLOUT;
    if (tcp_epoll(tp, EPOLL_CTL_ADD, fd, EPOLLOUT,
                  tcp_ev_data(TCP_EV_PEER, 0, (uint32_t)p->rank)) != 0) {
        int err = errno;
        close(fd);
        p->fd = -1;
        tcp_peer_fail(tp, p, RDT_ERR_SYSTEM, NULL, RDT_SUCCESS,
                      "epoll_ctl for the connection to rank %d (host %s) failed: %s", p->rank,
                      tcp_host(p), tcp_strerror(err, eb, sizeof(eb)));
        return;
    }
    if (connect(fd, (const struct sockaddr *)&p->sa, p->salen) == 0)
        tcp_connected(tp, p);
    else if (errno != EINPROGRESS && errno != EINTR)
        tcp_connect_failed(tp, p, errno);
    /* else: EPOLLOUT tells when it is done */
}

static void tcp_connect_start(rdt_tcp_t *tp, tcp_peer_t *p)
{
    p->state = PEER_CONNECTING;
    p->connect_deadline = tcp_now_ms() + (uint64_t)tp->connect_timeout_ms;
    p->backoff_ms = TCP_BACKOFF_MIN_MS;
    p->conn_idx = tp->nconnecting;
    tp->connecting[tp->nconnecting++] = p->rank;
    tcp_connect_attempt(tp, p);
}

static void tcp_connect_check(rdt_tcp_t *tp, tcp_peer_t *p)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0)
        tcp_connected(tp, p);
    else if (err != EINPROGRESS && err != EALREADY)
        tcp_connect_failed(tp, p, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Accepting (the higher rank of a pair)                                                        */
/* ------------------------------------------------------------------------------------------ */

static void tcp_pending_drop(rdt_tcp_t *tp, tcp_pending_t *s)
{
    tcp_close_fd(tp, s->fd);
    s->fd = -1;
    tp->npending--;
}

static void tcp_accept(rdt_tcp_t *tp)
{
    int i, k;

    for (k = 0; k < TCP_EVENTS; k++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        char from[TCP_ADDR_STR];
        tcp_pending_t *s = NULL;
        int fd;

        fd = accept4(tp->lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: level-triggered epoll would report the listening
             * socket again at once, so stop listening for a moment. */
            rdt_warn("tcp", "accept on %s failed: %m%s; pausing for %d ms", tp->addr_str,
                     errno == EMFILE || errno == ENFILE ? " (raise ulimit -n)" : "",
                     TCP_ACCEPT_PAUSE_MS);
            epoll_ctl(tp->epfd, EPOLL_CTL_DEL, tp->lfd, NULL);
            tp->listen_resume_at = tcp_now_ms() + TCP_ACCEPT_PAUSE_MS;
            return;
        }
        rdt_wire_sockaddr_str((struct sockaddr *)&sa, salen, from, sizeof(from));
        for (i = 0; i < TCP_MAX_PENDING && !s; i++)
            if (tp->pending[i].fd < 0)
                s = &tp->pending[i];
        if (!s) {
            /* Full (a flood of silent connections?): drop the oldest, not the newcomer, which
             * may be a rank of the job; a real rank sends its handshake at once, so it is
             * never the oldest for long. */
            tcp_pending_t *old = &tp->pending[0];
            for (i = 1; i < TCP_MAX_PENDING; i++)
                if (tp->pending[i].deadline < old->deadline)
                    old = &tp->pending[i];
            rdt_warn("tcp", "dropped connection from %s: no handshake yet, and %d connections "
                     "are already waiting for their handshake (the oldest goes)", old->from,
                     TCP_MAX_PENDING);
            tcp_pending_drop(tp, old);
            s = old;
        }
        tcp_sock_setup(tp, fd);
        s->gen = ++tp->pending_gen;
        if (tcp_epoll(tp, EPOLL_CTL_ADD, fd, EPOLLIN,
                      tcp_ev_data(TCP_EV_PENDING, s->gen, (uint32_t)(s - tp->pending))) != 0) {
            rdt_warn("tcp", "rejected connection from %s: epoll_ctl failed: %m", from);
            close(fd);
            continue;
        }
        s->fd = fd;
        s->done = 0;
        s->deadline = tcp_now_ms() + TCP_HS_TIMEOUT_MS;
        snprintf(s->from, sizeof(s->from), "%s", from);
        tp->npending++;
        rdt_debug("tcp", "accepted a connection from %s", from);
    }
}

/* Check a complete handshake (rdt_tcp_hs_check), then that its rank is free to connect; on
 * failure write the reason to @p why and return -1. */
static int tcp_hs_check(rdt_tcp_t *tp, const unsigned char *h, uint32_t *rank_p, char *why,
                        size_t n)
{
    uint32_t rank;
    tcp_peer_t *p;

    if (rdt_tcp_hs_check(h, TCP_HS_LEN, tp->token, tp->comm_id, tp->rank, tp->nranks, &rank, why,
                         n) != 0)
        return -1;
    p = &tp->peers[rank];
    if (p->state != PEER_IDLE) {
        snprintf(why, n, "claims rank %" PRIu32 ", which is %s", rank,
                 p->state == PEER_UP ? "already connected" : "already failed");
        return -1;
    }
    *rank_p = rank;
    return 0;
}

/* Read what an accepted socket has sent of its handshake, exactly up to its end (what follows
 * belongs to the message stream), then hand the socket to its peer or drop it. */
static void tcp_pending_event(rdt_tcp_t *tp, tcp_pending_t *s)
{
    char why[160], eb[128];
    tcp_peer_t *p;
    uint32_t rank;
    ssize_t n;

    do
        n = recv(s->fd, s->buf + s->done, TCP_HS_LEN - s->done, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        rdt_warn("tcp", "rejected connection from %s: %s before completing its handshake",
                 s->from, n == 0 ? "closed" : tcp_strerror(errno, eb, sizeof(eb)));
        tcp_pending_drop(tp, s);
        return;
    }
    s->done += (unsigned)n;
    if (s->done < TCP_HS_LEN)
        return;
    if (tcp_hs_check(tp, s->buf, &rank, why, sizeof(why)) != 0) {
        rdt_warn("tcp", "rejected connection from %s: %s", s->from, why);
        tcp_pending_drop(tp, s);
        return;
    }
    p = &tp->peers[rank];
    p->fd = s->fd;
    p->events = EPOLLIN;
    if (tcp_epoll(tp, EPOLL_CTL_MOD, p->fd, EPOLLIN, tcp_ev_data(TCP_EV_PEER, 0, rank)) != 0) {
        rdt_warn("tcp", "rejected connection from %s: epoll_ctl failed: %m", s->from);
        p->fd = -1;
        p->events = 0;
        tcp_pending_drop(tp, s);
        return;
    }
    s->fd = -1;
    tp->npending--;
    if (tcp_peer_up(tp, p) == 0)
        rdt_debug("tcp", "accepted rank %d (host %s) from %s", p->rank, tcp_host(p), s->from);
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void tcp_peer_service(rdt_tcp_t *tp, tcp_peer_t *p)
{
    if (p->state == PEER_IDLE) {
        if (p->rank > tp->rank && (p->sq_head || p->rq_head))
            tcp_connect_start(tp, p);
        return;
    }
    if (p->state != PEER_UP)
        return;
    if (p->rx_stalled && p->rq_head) {
        /* While EPOLLIN stayed on, anything that arrived is reported by epoll: no read now. */
        int drained = !p->rx_off;
        p->rx_stalled = 0;
        if (p->rx_off) {
            p->rx_off = 0;
            tcp_peer_events(tp, p);
        }
        tcp_rx(tp, p, drained);
        if (p->state != PEER_UP)
            return;
    }
    if (!p->tx_blocked && (p->sq_head || p->hs_out_done < TCP_HS_LEN))
        tcp_tx(tp, p);
}

/* Work that needs no event: connects to start, sends to write, stalled receives to resume.
 * Callbacks may add more; a few passes, the rest is left for the next call (which then does
 * not sleep). */
static void tcp_ready_run(rdt_tcp_t *tp)
{
    int pass, i, n, *work;

    for (pass = 0; pass < 4 && tp->nready > 0; pass++) {
        n = tp->nready;
        work = tp->ready;
        tp->ready = tp->ready_work;
        tp->ready_work = work;
        tp->nready = 0;
        for (i = 0; i < n; i++) {
            tcp_peer_t *p = &tp->peers[work[i]];
            p->in_ready = 0;
            tcp_peer_service(tp, p);
        }
    }
}

static void tcp_peer_event(rdt_tcp_t *tp, tcp_peer_t *p, uint32_t ev)
{
    if (p->state == PEER_CONNECTING) {
        if (p->fd >= 0)
            tcp_connect_check(tp, p);
        return;
    }
    if (p->state != PEER_UP)
        return;
    if (ev & EPOLLIN) {
        tcp_rx(tp, p, 0);
        if (p->state != PEER_UP)
            return;
    }
    if (ev & (EPOLLERR | EPOLLHUP)) {
        /* Reported even without EPOLLIN in the interest set (a stalled reader): the connection
         * is dead either way. */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        tcp_peer_lost(tp, p, err);
        return;
    }
    if ((ev & EPOLLOUT) && p->tx_blocked)
        tcp_tx(tp, p);
}

static void tcp_dispatch(rdt_tcp_t *tp, const struct epoll_event *ev)
{
    unsigned kind = (unsigned)(ev->data.u64 >> 56);
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32) & 0xffffffu;
    uint32_t idx = (uint32_t)ev->data.u64;
    uint64_t v;

    switch (kind) {
    case TCP_EV_LISTEN:
        if (tp->lfd >= 0 && !tp->listen_resume_at && !tp->sockets_closed)
            tcp_accept(tp);
        break;
    case TCP_EV_WAKE:
        if (read(tp->evfd, &v, sizeof(v)) < 0) {
            /* EAGAIN: already reset */
        }
        break;
    case TCP_EV_PEER:
        if (idx < (uint32_t)tp->nranks)
            tcp_peer_event(tp, &tp->peers[idx], ev->events);
        break;
    case TCP_EV_PENDING:
        if (idx < TCP_MAX_PENDING && tp->pending[idx].fd >= 0 && tp->pending[idx].gen == gen)
            tcp_pending_event(tp, &tp->pending[idx]);
        break;
    default:
        break;
    }
}

/* Connect retries and deadlines, handshake deadlines, the accept pause. */
static void tcp_timers_run(rdt_tcp_t *tp)
{
    uint64_t now;
    int i;

    if (!tp->nconnecting && !tp->npending && !tp->listen_resume_at)
        return;
    now = tcp_now_ms();
    /* backwards: a peer leaving the list swaps the last one (already seen) into its place */
    for (i = tp->nconnecting - 1; i >= 0; i--) {
        tcp_peer_t *p;
        if (i >= tp->nconnecting) /* a callback aborted */
            continue;
        p = &tp->peers[tp->connecting[i]];
        if (p->fd < 0 && now >= p->retry_at) {
            if (now >= p->connect_deadline)
                tcp_connect_failed(tp, p, p->last_errno); /* fails with TIMEOUT */
            else
                tcp_connect_attempt(tp, p);
        } else if (p->fd >= 0 && now >= p->connect_deadline) {
            tcp_connect_failed(tp, p, ETIMEDOUT);
        }
    }
    for (i = 0; i < TCP_MAX_PENDING && tp->npending; i++) {
        tcp_pending_t *s = &tp->pending[i];
        if (s->fd >= 0 && now >= s->deadline) {
            rdt_warn("tcp", "rejected connection from %s: no valid handshake within %d ms "
                     "(%u of %d bytes)", s->from, TCP_HS_TIMEOUT_MS, s->done, TCP_HS_LEN);
            tcp_pending_drop(tp, s);
        }
    }
    if (tp->listen_resume_at && now >= tp->listen_resume_at && tp->lfd >= 0) {
        tp->listen_resume_at = 0;
        if (tcp_epoll(tp, EPOLL_CTL_ADD, tp->lfd, EPOLLIN, tcp_ev_data(TCP_EV_LISTEN, 0, 0)))
            rdt_warn("tcp", "cannot resume accepting on %s: %m", tp->addr_str);
    }
}

/* How long epoll_wait may sleep: @p timeout_ms, shortened to the next timer. */
static int tcp_wait_ms(rdt_tcp_t *tp, int timeout_ms)
{
    uint64_t next = UINT64_MAX, now;
    int i;

    if (!tp->nconnecting && !tp->npending && !tp->listen_resume_at)
        return timeout_ms;
    for (i = 0; i < tp->nconnecting; i++) {
        tcp_peer_t *p = &tp->peers[tp->connecting[i]];
        uint64_t t = p->fd < 0 && p->retry_at < p->connect_deadline ? p->retry_at
                                                                    : p->connect_deadline;
        next = t < next ? t : next;
    }
    for (i = 0; i < TCP_MAX_PENDING; i++)
        if (tp->pending[i].fd >= 0 && tp->pending[i].deadline < next)
            next = tp->pending[i].deadline;
    if (tp->listen_resume_at && tp->listen_resume_at < next)
        next = tp->listen_resume_at;
    now = tcp_now_ms();
    if (next <= now)
        return 0;
    if (timeout_ms < 0 || next - now < (uint64_t)timeout_ms)
        return (int)(next - now);
    return timeout_ms;
}

static void tcp_enter(rdt_tcp_t *tp)
{
    __atomic_store_n(&tp->driver, (uintptr_t)&tcp_thread_tag, __ATOMIC_RELAXED);
    pthread_mutex_lock(&tp->lock);
}

static int tcp_abort_requested(rdt_tcp_t *tp)
{
    return __atomic_load_n(&tp->abort_req, __ATOMIC_ACQUIRE);
}

/* An abort() from another thread that found us inside a call left the sockets to us. */
static void tcp_leave(rdt_tcp_t *tp)
{
    if (!tp->sockets_closed && tcp_abort_requested(tp))
        tcp_abort_sockets(tp);
    pthread_mutex_unlock(&tp->lock);
}

static rdt_status_t tcp_progress(rdt_transport_t *t, int timeout_ms)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;
    struct epoll_event evs[TCP_EVENTS];
    rdt_status_t st = RDT_SUCCESS;
    uint64_t before;
    int n, i, wait;

    tcp_enter(tp);
    if (tcp_abort_requested(tp))
        goto aborted;
    before = tp->ncompleted;
    tcp_ready_run(tp);
    tcp_timers_run(tp);
    if (tcp_abort_requested(tp))
        goto aborted;
    if (tp->ncompleted != before && !tp->poll_skipped) {
        /* Something completed already: return to the caller without another system call
         * (every other time at most, so events are never starved). */
        tp->poll_skipped = 1;
        tcp_leave(tp);
        return RDT_SUCCESS;
    }
    tp->poll_skipped = 0;
    wait = tp->ncompleted != before || tp->nready > 0 ? 0 : tcp_wait_ms(tp, timeout_ms);
    n = epoll_wait(tp->epfd, evs, TCP_EVENTS, wait);
    if (n < 0) {
        if (errno != EINTR) {
            tcp_set_error(tp, "epoll_wait failed on rank %d: %m", tp->rank);
            st = RDT_ERR_SYSTEM;
        }
        n = 0;
    }
    for (i = 0; i < n; i++)
        tcp_dispatch(tp, &evs[i]);
    tcp_timers_run(tp);
    tcp_ready_run(tp);
    if (tcp_abort_requested(tp))
        goto aborted;
    tcp_leave(tp);
    return st;

aborted:
    tcp_abort_sockets(tp);
    tcp_abort_deliver(tp);
    tcp_leave(tp);
    return RDT_ERR_ABORTED;
}

/* ------------------------------------------------------------------------------------------ */
/* Posting                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static rdt_status_t tcp_post_check(rdt_tcp_t *tp, rdt_xfer_t *x, const char *what)
{
    tcp_peer_t *p;

    if (tcp_abort_requested(tp))
        return RDT_ERR_ABORTED;
    if (!x || !x->cb || x->peer < 0 || x->peer >= tp->nranks || x->peer == tp->rank ||
        (x->len && !x->buf)) {
        tcp_set_error(tp, "%s on rank %d: invalid transfer (peer %d of %d ranks, %zu bytes%s)",
                      what, tp->rank, x ? x->peer : -1, tp->nranks, x ? x->len : 0,
                      x && !x->cb ? ", no callback" : "");
        return RDT_ERR_INVALID_ARG;
    }
    p = &tp->peers[x->peer];
    if (p->state == PEER_FAILED) {
        /* the caller gives up on this: it is what this rank's notices will say */
        if (!tp->first_fail[0] && p->fail_status != RDT_ERR_ABORTED) {
            snprintf(tp->first_fail, sizeof(tp->first_fail), "%.*s", TCP_NOTICE_MAX,
                     p->gave_up[0] ? p->gave_up : p->fail_msg);
            tp->failed_any = 1;
        }
        tcp_set_error(tp, "%s", p->fail_msg);
        return p->fail_status;
    }
    if (p->rank > tp->rank && p->salen == 0) {
        tcp_set_error(tp, "%s on rank %d: no address for rank %d (addrs_set was not called)",
                      what, tp->rank, p->rank);
        return RDT_ERR_INVALID_ARG;
    }
    return RDT_SUCCESS;
}

static rdt_status_t tcp_isend(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;
    rdt_status_t st;
    tcp_peer_t *p;

    tcp_enter(tp);
    st = tcp_post_check(tp, x, "isend");
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    rdt_tcp_frame_pack(TCP_MSG_MAGIC, x->tag, (uint64_t)x->len, x->hdr);
    x->hdr_done = 0;
    x->done = 0;
    x->next = NULL;
    if (p->sq_tail)
        p->sq_tail->next = x;
    else
        p->sq_head = x;
    p->sq_tail = x;
    if (!p->tx_blocked)
        tcp_ready_add(tp, p);
out:
    tcp_leave(tp);
    return st;
}

static rdt_status_t tcp_irecv(rdt_transport_t *t, rdt_xfer_t *x)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;
    rdt_status_t st;
    tcp_peer_t *p;

    tcp_enter(tp);
    st = tcp_post_check(tp, x, "irecv");
    if (st != RDT_SUCCESS)
        goto out;
    p = &tp->peers[x->peer];
    x->hdr_done = 0;
    x->done = 0;
    x->next = NULL;
    if (p->rq_tail)
        p->rq_tail->next = x;
    else
        p->rq_head = x;
    p->rq_tail = x;
    if (p->state == PEER_IDLE || p->rx_stalled)
        tcp_ready_add(tp, p);
out:
    tcp_leave(tp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Open, addresses, abort, close                                                                */
/* ------------------------------------------------------------------------------------------ */

/* This rank's address is the listening socket's, packed by rdt_wire_sockaddr_pack (wire.h). */
/* The listening socket: the given numeric address only (never the wildcard), a kernel port. */
static rdt_status_t tcp_listen(rdt_tcp_t *tp, const char *ip)
{
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int one = 1, rc;

    rc = rdt_wire_numeric_addr(ip, &ai);
    if (rc != 0) {
        rdt_warn("tcp", "cannot listen on '%s': not a numeric IPv4 or IPv6 address (%s)", ip,
                 gai_strerror(rc));
        return RDT_ERR_CONFIG;
    }
    tp->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tp->lfd < 0) {
        rdt_warn("tcp", "cannot create a socket to listen on %s: %m", ip);
        goto err_free;
    }
    setsockopt(tp->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(tp->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    tcp_sock_setup(tp, tp->lfd); /* accepted sockets inherit the buffer sizes */
    if (bind(tp->lfd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rdt_warn("tcp", "cannot bind to %s: %m (is it an address of this host?)", ip);
        goto err_close;
    }
    if (listen(tp->lfd, SOMAXCONN) != 0 ||
        getsockname(tp->lfd, (struct sockaddr *)&ss, &len) != 0) {
        rdt_warn("tcp", "cannot listen on %s: %m", ip);
        goto err_close;
    }
    if (tcp_epoll(tp, EPOLL_CTL_ADD, tp->lfd, EPOLLIN, tcp_ev_data(TCP_EV_LISTEN, 0, 0)) != 0) {
        rdt_warn("tcp", "epoll_ctl for the listening socket failed: %m");
        goto err_close;
    }
    tp->addr_len = rdt_wire_sockaddr_pack((struct sockaddr *)&ss, tp->addr);
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

static void tcp_free(rdt_tcp_t *tp)
{
    int i;

    if (tp->peers)
        for (i = 0; i < tp->nranks; i++)
            free(tp->peers[i].rbuf);
    free(tp->peers);
    free(tp->ready);
    free(tp->ready_work);
    free(tp->connecting);
    free(tp);
}

static rdt_status_t tcp_open(const rdt_transport_params_t *params, rdt_transport_t **tp_p)
{
    pthread_mutexattr_t ma;
    rdt_tcp_t *tp;
    rdt_status_t st;
    size_t n;
    int i;

    if (!params || !tp_p || params->nranks < 1 || params->rank < 0 ||
        params->rank >= params->nranks || !params->bind_ip)
        return RDT_ERR_INVALID_ARG;
    tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RDT_ERR_NO_MEMORY;
    n = (size_t)params->nranks;
    tp->peers = calloc(n, sizeof(*tp->peers));
    tp->ready = calloc(n, sizeof(int));
    tp->ready_work = calloc(n, sizeof(int));
    tp->connecting = calloc(n, sizeof(int));
    if (!tp->peers || !tp->ready || !tp->ready_work || !tp->connecting) {
        tcp_free(tp);
        return RDT_ERR_NO_MEMORY;
    }
    tp->base.ops = &rdt_tcp_ops;
    tp->rank = params->rank;
    tp->nranks = params->nranks;
    tp->comm_id = params->comm_id;
    memcpy(tp->token, params->token, RDT_TOKEN_LEN);
    tp->connect_timeout_ms = params->connect_timeout_ms > 0 ? params->connect_timeout_ms
                                                            : TCP_CONNECT_TIMEOUT_DEFAULT_MS;
    tp->sockbuf = params->sockbuf;
    for (i = 0; i < tp->nranks; i++) {
        tcp_peer_t *p = &tp->peers[i];
        p->rank = i;
        p->fd = -1;
        p->conn_idx = -1;
        p->hs_out_done = TCP_HS_LEN;
        snprintf(p->addr_str, sizeof(p->addr_str), "(unknown address)");
    }
    if (params->host)
        snprintf(tp->peers[tp->rank].host, RDT_HOST_MAX, "%s", params->host);
    for (i = 0; i < TCP_MAX_PENDING; i++)
        tp->pending[i].fd = -1;
    tp->lfd = -1;

    tp->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (tp->epfd < 0) {
        rdt_warn("tcp", "epoll_create1 failed: %m");
        st = RDT_ERR_SYSTEM;
        goto err_free;
    }
    tp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tp->evfd < 0 ||
        tcp_epoll(tp, EPOLL_CTL_ADD, tp->evfd, EPOLLIN, tcp_ev_data(TCP_EV_WAKE, 0, 0)) != 0) {
        rdt_warn("tcp", "cannot set up the wakeup eventfd: %m");
        st = RDT_ERR_SYSTEM;
        goto err_close_evfd;
    }
    st = tcp_listen(tp, params->bind_ip);
    if (st != RDT_SUCCESS)
        goto err_close_evfd;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&tp->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    rdt_info("tcp", "rank %d of %d listening on %s", tp->rank, tp->nranks, tp->addr_str);
    *tp_p = &tp->base;
    return RDT_SUCCESS;

err_close_evfd:
    if (tp->evfd >= 0)
        close(tp->evfd);
    close(tp->epfd);
err_free:
    tcp_free(tp);
    return st;
}

static rdt_status_t tcp_addr_get(rdt_transport_t *t, void *addr, size_t *len_p)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;

    if (!tp || !addr || !len_p || *len_p < tp->addr_len)
        return RDT_ERR_INVALID_ARG;
    memcpy(addr, tp->addr, tp->addr_len);
    *len_p = tp->addr_len;
    return RDT_SUCCESS;
}

static rdt_status_t tcp_addrs_set(rdt_transport_t *t, const void *addrs, const char *hosts)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;
    rdt_status_t st = RDT_SUCCESS;
    int i;

    if (!tp || !addrs)
        return RDT_ERR_INVALID_ARG;
    tcp_enter(tp);
    for (i = 0; i < tp->nranks; i++) {
        tcp_peer_t *p = &tp->peers[i];
        const unsigned char *a = (const unsigned char *)addrs + (size_t)i * RDT_ADDR_MAX;

        if (hosts) {
            const char *h = hosts + (size_t)i * RDT_HOST_MAX;
            snprintf(p->host, sizeof(p->host), "%.*s", (int)strnlen(h, RDT_HOST_MAX - 1), h);
        }
        if (i == tp->rank)
            continue;
        if (rdt_wire_sockaddr_unpack(a, &p->sa, &p->salen) != 0) {
            p->salen = 0;
            tcp_set_error(tp, "the tcp address of rank %d (host %s) is malformed (family byte "
                          "%u)", i, tcp_host(p), a[0]);
            st = RDT_ERR_INVALID_ARG;
            break;
        }
        rdt_wire_sockaddr_str((struct sockaddr *)&p->sa, p->salen, p->addr_str,
                              sizeof(p->addr_str));
    }
    tcp_leave(tp);
    return st;
}

static void tcp_wakeup(rdt_transport_t *t)
{
    if (t)
        rdt_wire_eventfd_kick(((rdt_tcp_t *)t)->evfd);
}

/*
 * From the driving thread (between calls, or inside a callback): close everything and complete
 * every posted transfer with RDT_ERR_ABORTED now. From another thread while the driver is inside
 * a call: only raise the flag and wake it; that call finishes the abort. From another thread
 * while nobody is inside a call: close the sockets now (peers see it at once), and leave the
 * callbacks to the driver's next progress() or close(). Never blocks.
 */
static void tcp_abort(rdt_transport_t *t)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;
    uintptr_t driver;

    if (!tp)
        return;
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    tcp_wakeup(t);
    if (pthread_mutex_trylock(&tp->lock) != 0)
        return;
    driver = __atomic_load_n(&tp->driver, __ATOMIC_RELAXED);
    tcp_abort_sockets(tp);
    if (driver == 0 || driver == (uintptr_t)&tcp_thread_tag)
        tcp_abort_deliver(tp);
    pthread_mutex_unlock(&tp->lock);
}

static void tcp_close(rdt_transport_t *t)
{
    rdt_tcp_t *tp = (rdt_tcp_t *)t;

    if (!tp)
        return;
    __atomic_store_n(&tp->abort_req, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&tp->lock);
    tp->closing = 1;
    tcp_abort_sockets(tp);
    tcp_abort_deliver(tp);
    pthread_mutex_unlock(&tp->lock);
    pthread_mutex_destroy(&tp->lock);
    if (tp->lfd >= 0)
        close(tp->lfd);
    close(tp->evfd);
    close(tp->epfd);
    tcp_free(tp);
}

const rdt_transport_ops_t rdt_tcp_ops = {
    .name = "tcp",
    .open = tcp_open,
    .close = tcp_close,
    .addr_get = tcp_addr_get,
    .addrs_set = tcp_addrs_set,
    .isend = tcp_isend,
    .irecv = tcp_irecv,
    .progress = tcp_progress,
    .abort = tcp_abort,
    .wakeup = tcp_wakeup,
};
