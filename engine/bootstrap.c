/*
 * bootstrap.c - the rendezvous: a one-shot TCP store run by rank 0. See bootstrap.h.
 *
 * Rank 0 listens on exactly the root address, collects one hello per peer, and answers every
 * peer with the whole table once all have arrived; other ranks connect, say hello, and read.
 * One event loop (epoll, nonblocking sockets) serves all connections at rank 0, so a slow or
 * hostile connection without the job's token costs a file descriptor for at most BS_HEADER_MS
 * (BS_IDLE_MS if it goes quiet), never the job.
 *
 * Wire format, all integers big-endian:
 *
 *   hello, peer -> rank 0: 40 bytes, then the blob
 *   +-------+---------+-----------+--------+------+----------+--------------------+
 *   | magic | version | token[16] | nranks | rank | blob len | blob (len bytes)   |
 *   |  u32  |   u32   |           |  u32   | u32  |   u64    |                    |
 *   +-------+---------+-----------+--------+------+----------+--------------------+
 *   0       4         8           24       28     32         40
 *
 *   reply, rank 0 -> peer: 16 bytes, then the body
 *   +-------+--------+----------+--------------------------------------------------+
 *   | magic | status | body len | status 0: the table (nranks * blob len bytes)     |
 *   |  u32  |  u32   |   u64    | else: the job's error sentence (<= BS_MAX_MSG)    |
 *   +-------+--------+----------+--------------------------------------------------+
 *
 * A peer that gives up waiting for the reply (its own deadline passed) sends one byte,
 * BS_BYE_TIMEOUT, before closing: rank 0 then reports the ranks that are missing (the cause)
 * rather than the peer that left (the symptom). A peer that closes without it has failed.
 *
 * A hello with a wrong magic, version or token is a stranger: dropped with a warning. A hello
 * with the right token but a different job size, a rank out of range, a rank already taken or
 * a different blob length comes from a rank of this job that disagrees with rank 0: the whole
 * job fails, and every member connected so far is told why.
 */
#include "bootstrap.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BS_SUBSYS "bootstrap"

#define BS_HELLO_MAGIC 0x52445448u /* "RDTH" */
#define BS_REPLY_MAGIC 0x52445452u /* "RDTR" */
#define BS_VERSION     1u
#define BS_BYE_TIMEOUT 0x54u /* 'T': sent by a peer that gives up waiting for the reply */
#define BS_HELLO_LEN   RDT_BOOTSTRAP_HELLO_LEN
#define BS_REPLY_LEN   RDT_BOOTSTRAP_REPLY_LEN
#define BS_MAX_MSG     RDT_BOOTSTRAP_MAX_MSG   /* longest error sentence sent and accepted */
#define BS_MAX_TABLE   RDT_BOOTSTRAP_MAX_TABLE /* nranks * bytes: addresses, not data */

#define BS_IDLE_MS         5000  /* silent this long in the middle of a hello: dropped */
#define BS_HEADER_MS       10000 /* hello header incomplete this long after accept: dropped */
#define BS_ATTEMPT_MS      3000  /* one connect() to one address (a name may have several) */
#define BS_BACKOFF_MIN_MS  10    /* connect retries: 10, 20, 40, ... ms */
#define BS_BACKOFF_MAX_MS  250   /* ... capped here */
#define BS_NOTIFY_MS       1000  /* how long a failing rank 0 waits for members to read why */
#define BS_SWEEP_MS        250   /* how often rank 0 looks for idle connections */
#define BS_SPARE_CONNS     256   /* connections without a valid hello held at once, beyond n-1 */
#define BS_ACCEPT_PAUSE_MS 100   /* pause accepting after EMFILE and friends */
#define BS_MAX_LISTED      16    /* missing ranks named in a timeout message */

/* ------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @p deadline, clamped to [0, INT_MAX] for poll and epoll_wait. */
static int ms_until(int64_t deadline)
{
    int64_t d = deadline - now_ms();

    if (d <= 0)
        return 0;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* strerror that is thread-safe and usable inline: errstr(e).s lives to the end of the
 * full expression (C11 temporary lifetime). */
typedef struct {
    char s[128];
} bs_text_t;

static bs_text_t errstr(int e)
{
    bs_text_t t;
    const char *s = strerror_r(e, t.s, sizeof(t.s)); /* GNU variant: may return a static string */

    if (s != t.s)
        snprintf(t.s, sizeof(t.s), "%s", s);
    return t;
}

/* "30 s", "1.5 s", "0.25 s". */
static bs_text_t secs(int ms)
{
    bs_text_t t;

    snprintf(t.s, sizeof(t.s), "%g s", ms / 1000.0);
    return t;
}

static void set_err(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* Constant-time comparison of two tokens: the time taken does not tell how many bytes match. */
static int token_equal(const unsigned char *a, const unsigned char *b)
{
    volatile unsigned char diff = 0;
    size_t i;

    for (i = 0; i < 16; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* "host:port", or "[host]:port" for IPv6; snprintf's result (a long name is truncated). */
static int fmt_hostport(char *buf, size_t len, const char *host, int port)
{
    if (strchr(host, ':'))
        return snprintf(buf, len, "[%s]:%d", host, port);
    return snprintf(buf, len, "%s:%d", host, port);
}

/* Numeric host of @p sa (no port) into @p buf (64 bytes hold any, with an IPv6 scope);
 * "?" if it cannot be printed. */
static void sa_host(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
    if (getnameinfo(sa, salen, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(buf, len, "?");
}

static int sa_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static void sa_hostport(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
    char host[64];

    sa_host(sa, salen, host, sizeof(host));
    (void)fmt_hostport(buf, len, host, sa_port(sa));
}

/* Same address and port: a connect() on loopback that met itself (TCP simultaneous open). */
static int sa_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

static int sa_is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

static int resolve(const char *host, int port, struct addrinfo **res_p)
{
    struct addrinfo hints;
    char portstr[16];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    return getaddrinfo(host, portstr, &hints, res_p);
}

static bs_text_t gai_text(int rc)
{
    bs_text_t t;

    if (rc == EAI_SYSTEM)
        return errstr(errno);
    snprintf(t.s, sizeof(t.s), "%s", gai_strerror(rc));
    return t;
}

static void set_nodelay(int fd)
{
    int one = 1;

    /* Hello and reply are single messages: do not let Nagle hold back their tails. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Send bytes [off, alen + blen) of the concatenation a|b without blocking; sendmsg's result. */
static ssize_t send_two(int fd, const unsigned char *a, size_t alen, const unsigned char *b,
                        size_t blen, size_t off)
{
    struct iovec iov[2];
    struct msghdr mh;
    int k = 0;

    if (off < alen) {
        iov[k].iov_base = (void *)(a + off);
        iov[k].iov_len = alen - off;
        k++;
        off = 0;
    } else {
        off -= alen;
    }
    if (off < blen) {
        iov[k].iov_base = (void *)(b + off);
        iov[k].iov_len = blen - off;
        k++;
    }
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)k;
    return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ------------------------------------------------------------------------------------------- */
/* The wire format (see bootstrap.h): pure functions, fuzzed by tests/fuzz/fuzz_bootstrap_*.c    */
/* ------------------------------------------------------------------------------------------- */

void rdt_bootstrap_hello_pack(const rdt_bootstrap_hello_t *h, unsigned char *buf)
{
    put_u32(buf, BS_HELLO_MAGIC);
    put_u32(buf + 4, h->version);
    memcpy(buf + 8, h->token, 16);
    put_u32(buf + 24, h->nranks);
    put_u32(buf + 28, h->rank);
    put_u64(buf + 32, h->blob_len);
}

int rdt_bootstrap_hello_unpack(const unsigned char *buf, size_t len, rdt_bootstrap_hello_t *h_p)
{
    if (len < BS_HELLO_LEN || get_u32(buf) != BS_HELLO_MAGIC)
        return -1;
    h_p->version = get_u32(buf + 4);
    memcpy(h_p->token, buf + 8, 16);
    h_p->nranks = get_u32(buf + 24);
    h_p->rank = get_u32(buf + 28);
    h_p->blob_len = get_u64(buf + 32);
    return 0;
}

/* A stranger (wrong magic, version, token) is told apart from a member that disagrees (right
 * token): the first is dropped, the second fails the job. Every number is checked here, before
 * rank 0 uses any of them as an index or a length. */
rdt_bootstrap_verdict_t rdt_bootstrap_hello_check(const unsigned char *buf, size_t len,
                                                  const unsigned char *token, int nranks,
                                                  size_t bytes, const char *from,
                                                  rdt_bootstrap_hello_t *hello_p,
                                                  rdt_status_t *status_p, char *why, size_t whylen)
{
    rdt_bootstrap_hello_t h;

    /* Drop garbage as soon as its first 4 bytes show it, not when 40 have come. */
    if (len >= 4 && get_u32(buf) != BS_HELLO_MAGIC) {
        set_err(why, whylen, "not an rdmatrain hello (garbage starting %02x %02x %02x %02x)",
                buf[0], buf[1], buf[2], buf[3]);
        return RDT_BOOTSTRAP_HELLO_STRANGER;
    }
    if (rdt_bootstrap_hello_unpack(buf, len, &h) != 0)
        return RDT_BOOTSTRAP_HELLO_MORE;
    if (h.version != BS_VERSION) {
        set_err(why, whylen,
                "protocol version %u, this rank 0 speaks %u (mixed rdmatrain versions?)", h.version,
                BS_VERSION);
        return RDT_BOOTSTRAP_HELLO_STRANGER;
    }
    if (!token_equal(h.token, token)) {
        set_err(why, whylen, "wrong job token (a rank of another job, or a stale RDT_TOKEN?)");
        return RDT_BOOTSTRAP_HELLO_STRANGER;
    }
    if (nranks < 1 || h.nranks != (uint32_t)nranks) {
        set_err(why, whylen,
                "rank %u (%s) says the job has %u ranks, rank 0 says %d; all ranks must agree "
                "on the job size",
                h.rank, from, h.nranks, nranks);
        *status_p = RDT_ERR_CONFIG;
        return RDT_BOOTSTRAP_HELLO_DISAGREE;
    }
    if (h.rank == 0 || h.rank >= h.nranks) {
        set_err(why, whylen,
                "a peer at %s claims rank %u, but the ranks of this job other than rank 0 are 1 "
                "to %d",
                from, h.rank, nranks - 1);
        *status_p = RDT_ERR_CONFIG;
        return RDT_BOOTSTRAP_HELLO_DISAGREE;
    }
    if (h.blob_len != (uint64_t)bytes) {
        set_err(why, whylen,
                "rank %u (%s) sent a %llu-byte address, rank 0 expects %zu (different rdmatrain "
                "builds or transports?)",
                h.rank, from, (unsigned long long)h.blob_len, bytes);
        *status_p = RDT_ERR_MISMATCH;
        return RDT_BOOTSTRAP_HELLO_DISAGREE;
    }
    *hello_p = h;
    return RDT_BOOTSTRAP_HELLO_OK;
}

void rdt_bootstrap_reply_pack(uint32_t status, uint64_t body_len, unsigned char *buf)
{
    put_u32(buf, BS_REPLY_MAGIC);
    put_u32(buf + 4, status);
    put_u64(buf + 8, body_len);
}

/* Both lengths a reply may announce are bounded before the peer reads a byte of the body: the
 * table must be exactly the size this rank computed, a sentence at most BS_MAX_MSG. */
rdt_status_t rdt_bootstrap_reply_check(const unsigned char *buf, size_t len, size_t tlen,
                                       int nranks, rdt_status_t *status_p, uint64_t *body_len_p,
                                       char *why, size_t whylen)
{
    uint32_t status;
    uint64_t body;

    if (len < BS_REPLY_LEN || get_u32(buf) != BS_REPLY_MAGIC) {
        set_err(why, whylen,
                "the answer is not an rdmatrain reply (is another program listening on this "
                "port?)");
        return RDT_ERR_NETWORK;
    }
    status = get_u32(buf + 4);
    body = get_u64(buf + 8);
    if (status == (uint32_t)RDT_SUCCESS) {
        if (body != (uint64_t)tlen) {
            set_err(why, whylen,
                    "rank 0 sent a %llu-byte table, this rank expects %zu (%d ranks of %zu bytes)",
                    (unsigned long long)body, tlen, nranks,
                    nranks > 0 ? tlen / (size_t)nranks : tlen);
            return RDT_ERR_MISMATCH;
        }
    } else if (status >= (uint32_t)RDT_STATUS_COUNT || status == (uint32_t)RDT_IN_PROGRESS ||
               body > BS_MAX_MSG) {
        set_err(why, whylen, "rank 0 sent a malformed error (status %u, %llu bytes)", status,
                (unsigned long long)body);
        return RDT_ERR_NETWORK;
    }
    *status_p = (rdt_status_t)status;
    *body_len_p = body;
    return RDT_SUCCESS;
}

void rdt_bootstrap_reply_text(const unsigned char *body, size_t len, char *out, size_t outlen)
{
    size_t i;

    if (outlen == 0)
        return;
    if (len > outlen - 1)
        len = outlen - 1;
    for (i = 0; i < len; i++)
        out[i] = body[i] < 0x20 || body[i] > 0x7e ? '?' : (char)body[i];
    out[len] = '\0';
}

/* ------------------------------------------------------------------------------------------- */
/* Rank 0: the store                                                                            */
/* ------------------------------------------------------------------------------------------- */

typedef enum {
    BS_HEADER,  /* reading the 40-byte hello header */
    BS_BLOB,    /* header accepted, rank reserved, reading the blob into the table */
    BS_READY,   /* hello complete, waiting for the others */
    BS_SENDING, /* sending the reply */
    BS_DEAD,    /* closed; freed after the current batch of events */
} bs_state_t;

typedef struct bs_conn {
    struct bs_conn *next;
    int fd;
    bs_state_t state;
    int member;        /* presented the job's token: told why if the job fails */
    int rank;          /* -1 until a hello with the right token names one */
    size_t got;        /* bytes of the header (BS_HEADER) or of the blob (BS_BLOB) received */
    int64_t last_ms;   /* when bytes last arrived, for the idle timeout */
    int64_t accept_ms; /* when accepted: the 40-byte header is due BS_HEADER_MS later */
    size_t sent;       /* bytes of reply + body sent */
    size_t body_len;
    const unsigned char *body;
    unsigned char hdr[BS_HELLO_LEN];
    unsigned char reply[BS_REPLY_LEN];
    char addr[96]; /* the peer's address:port, for messages */
} bs_conn_t;

typedef struct bs_root {
    const rdt_bootstrap_params_t *p;
    size_t bytes;
    unsigned char *table; /* scratch, nranks * bytes: the caller's table is written on success */
    bs_conn_t **by_rank;  /* connection holding each rank (reserved or complete), or NULL */
    bs_conn_t *conns;     /* every connection, dead ones until reaped */
    int nconns, max_conns, ncomplete, nrejected;
    int lfd, epfd, listening;
    int accept_errno;
    int64_t start, deadline, accept_resume_ms;
    char where[96];       /* the root address, "127.0.0.1:29500" */
    char msg[BS_MAX_MSG]; /* the error sentence, copied to the caller's err */
} bs_root_t;

/* Add or remove the listening socket from the epoll set (paused when full or out of fds). */
static void root_listen_arm(bs_root_t *r, int on)
{
    struct epoll_event ev;

    if (r->lfd < 0 || on == r->listening)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (epoll_ctl(r->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, r->lfd, &ev) == 0)
        r->listening = on;
}

/* Close a connection now; its memory is freed by root_reap() after the current event batch,
 * so a pointer still held by that batch stays valid. */
static void conn_close(bs_root_t *r, bs_conn_t *c)
{
    if (c->state == BS_DEAD)
        return;
    if (c->rank >= 0 && r->by_rank[c->rank] == c)
        r->by_rank[c->rank] = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = BS_DEAD;
    r->nconns--;
}

static void conn_drop(bs_root_t *r, bs_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drop an invalid connection with one warning naming it and what was wrong. */
static void conn_drop(bs_root_t *r, bs_conn_t *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (c->rank >= 0)
        rdt_warn(BS_SUBSYS, "rendezvous on %s: dropped connection from %s (rank %d): %s", r->where,
                 c->addr, c->rank, why);
    else
        rdt_warn(BS_SUBSYS, "rendezvous on %s: dropped connection from %s: %s", r->where, c->addr,
                 why);
    r->nrejected++;
    conn_close(r, c);
}

static void root_reap(bs_root_t *r)
{
    bs_conn_t **pp = &r->conns;

    while (*pp) {
        bs_conn_t *c = *pp;
        if (c->state == BS_DEAD) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Accept every pending connection, up to max_conns open at once. */
static rdt_status_t root_accept(bs_root_t *r)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        struct epoll_event ev;
        bs_conn_t *c;
        int fd;

        if (r->nconns >= r->max_conns) {
            rdt_debug(BS_SUBSYS, "rendezvous on %s: %d connections open, pausing accept", r->where,
                      r->nconns);
            root_listen_arm(r, 0);
            return RDT_SUCCESS;
        }
        fd = accept4(r->lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return RDT_SUCCESS;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                if (r->accept_errno != e)
                    rdt_warn(BS_SUBSYS, "rendezvous on %s: accept: %s (raise ulimit -n?)", r->where,
                             errstr(e).s);
                r->accept_errno = e;
                r->accept_resume_ms = now_ms() + BS_ACCEPT_PAUSE_MS;
                root_listen_arm(r, 0);
                return RDT_SUCCESS;
            }
            if (e == EBADF || e == EINVAL || e == EFAULT || e == ENOTSOCK || e == EOPNOTSUPP) {
                snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: accept: %s", r->where,
                         errstr(e).s);
                return RDT_ERR_SYSTEM;
            }
            continue; /* EINTR, or an error of that one connection (ECONNABORTED, EPERM...) */
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: out of memory", r->where);
            return RDT_ERR_NO_MEMORY;
        }
        c->fd = fd;
        c->rank = -1;
        c->state = BS_HEADER;
        c->last_ms = c->accept_ms = now_ms();
        sa_hostport((struct sockaddr *)&ss, sslen, c->addr, sizeof(c->addr));
        set_nodelay(fd);
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            int e = errno;
            close(fd);
            free(c);
            snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: epoll_ctl: %s", r->where,
                     errstr(e).s);
            return RDT_ERR_SYSTEM;
        }
        c->next = r->conns;
        r->conns = c;
        r->nconns++;
        rdt_debug(BS_SUBSYS, "rendezvous on %s: connection from %s", r->where, c->addr);
    }
}

/* Judge the header bytes received so far (rdt_bootstrap_hello_check): a stranger is dropped, a
 * member that disagrees fails the job (status returned, r->msg set), a good one reserves its
 * rank and goes on to its blob. */
static rdt_status_t root_hello(bs_root_t *r, bs_conn_t *c)
{
    rdt_bootstrap_hello_t h;
    rdt_status_t st = RDT_ERR_INTERNAL;
    char why[BS_MAX_MSG];

    switch (rdt_bootstrap_hello_check(c->hdr, c->got, r->p->token, r->p->nranks, r->bytes, c->addr,
                                      &h, &st, why, sizeof(why))) {
    case RDT_BOOTSTRAP_HELLO_MORE:
        return RDT_SUCCESS;
    case RDT_BOOTSTRAP_HELLO_STRANGER:
        conn_drop(r, c, "%s", why);
        return RDT_SUCCESS;
    case RDT_BOOTSTRAP_HELLO_DISAGREE:
        c->member = 1;
        set_err(r->msg, sizeof(r->msg), "rendezvous on %s: %s", r->where, why);
        return st;
    case RDT_BOOTSTRAP_HELLO_OK:
        break;
    }
    c->member = 1;
    if (r->by_rank[h.rank]) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: rank %u joined twice (from %s and from %s); every rank "
                 "needs its own rank number",
                 r->where, h.rank, r->by_rank[h.rank]->addr, c->addr);
        return RDT_ERR_CONFIG;
    }
    c->rank = (int)h.rank;
    r->by_rank[h.rank] = c;
    c->state = BS_BLOB;
    c->got = 0;
    return RDT_SUCCESS;
}

/* "3, 5" (or "3, 5, ... and 12 more"): the ranks whose hello has not completed. */
static int root_missing_list(const bs_root_t *r, char *list, size_t len)
{
    size_t off = 0;
    int i, missing = 0, listed = 0;

    list[0] = '\0';
    for (i = 1; i < r->p->nranks; i++) {
        if (r->by_rank[i] && r->by_rank[i]->state == BS_READY)
            continue;
        missing++;
        if (listed < BS_MAX_LISTED && off < len) {
            int n = snprintf(list + off, len - off, "%s%d", listed ? ", " : "", i);
            if (n > 0)
                off += (size_t)n;
            listed++;
        }
    }
    if (missing > listed && off < len)
        snprintf(list + off, len - off, " and %d more", missing - listed);
    return missing;
}

/* The deadline passed, at rank 0 or at a peer that said so (@p quitter): name the ranks that
 * never completed their hello, the cause, rather than the peer that gave up. */
static void root_missing(bs_root_t *r, const bs_conn_t *quitter)
{
    char list[256];
    int missing = root_missing_list(r, list, sizeof(list));
    size_t off;

    off = (size_t)snprintf(r->msg, sizeof(r->msg),
                           "rendezvous on %s: %s %s did not arrive within %s (%d of %d ranks "
                           "arrived",
                           r->where, missing == 1 ? "rank" : "ranks", list,
                           secs(r->p->timeout_ms).s, r->ncomplete + 1, r->p->nranks);
    if (quitter && off < sizeof(r->msg))
        off += (size_t)snprintf(r->msg + off, sizeof(r->msg) - off,
                                "; rank %d gave up waiting first", quitter->rank);
    if (r->nrejected > 0 && off < sizeof(r->msg))
        off += (size_t)snprintf(r->msg + off, sizeof(r->msg) - off,
                                "; %d connection%s rejected, see the warnings in rank 0's log",
                                r->nrejected, r->nrejected == 1 ? " was" : "s were");
    if (r->accept_errno && off < sizeof(r->msg))
        off += (size_t)snprintf(r->msg + off, sizeof(r->msg) - off,
                                "; accept failed: %s, raise ulimit -n", errstr(r->accept_errno).s);
    if (off < sizeof(r->msg))
        snprintf(r->msg + off, sizeof(r->msg) - off, ")");
}

/* A connection whose hello is complete became readable: the peer gave up waiting (it says
 * so with BS_BYE_TIMEOUT), failed, or broke the protocol. Either way the job cannot complete. */
static rdt_status_t root_read_ready(bs_root_t *r, bs_conn_t *c)
{
    char list[256];
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    int e = errno;

    if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR))
        return RDT_SUCCESS;
    if (n > 0 && b == BS_BYE_TIMEOUT) {
        root_missing(r, c);
        return RDT_ERR_TIMEOUT;
    }
    if (n > 0) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: rank %d (%s) sent bytes after its hello (protocol error)",
                 r->where, c->rank, c->addr);
        return RDT_ERR_NETWORK;
    }
    root_missing_list(r, list, sizeof(list));
    set_err(r->msg, sizeof(r->msg),
            "rendezvous on %s: rank %d (%s) failed before the table was sent (%s, see its "
            "log); ranks still missing then: %s",
            r->where, c->rank, c->addr, n == 0 ? "connection closed" : errstr(e).s, list);
    return RDT_ERR_PEER_FAILED;
}

/* Read what @p c has sent, as far as it goes without blocking. */
static rdt_status_t root_read(bs_root_t *r, bs_conn_t *c)
{
    for (;;) {
        unsigned char *dst;
        size_t want;
        ssize_t n;

        if (c->state == BS_HEADER) {
            dst = c->hdr + c->got;
            want = BS_HELLO_LEN - c->got;
        } else if (c->state == BS_BLOB) {
            dst = r->table + (size_t)c->rank * r->bytes + c->got;
            want = r->bytes - c->got;
        } else if (c->state == BS_READY) {
            return root_read_ready(r, c);
        } else {
            return RDT_SUCCESS;
        }
        n = recv(c->fd, dst, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return RDT_SUCCESS;
            conn_drop(r, c, "recv: %s", errstr(errno).s);
            return RDT_SUCCESS;
        }
        if (n == 0) {
            if (c->state == BS_HEADER && c->got == 0)
                conn_drop(r, c, "closed without sending anything");
            else if (c->state == BS_HEADER)
                conn_drop(r, c, "truncated hello: closed after %zu of %u header bytes", c->got,
                          BS_HELLO_LEN);
            else
                conn_drop(r, c, "truncated hello: closed after %zu of %zu address bytes", c->got,
                          r->bytes);
            return RDT_SUCCESS;
        }
        c->got += (size_t)n;
        c->last_ms = now_ms();
        if (c->state == BS_HEADER) {
            rdt_status_t st = root_hello(r, c);
            if (st != RDT_SUCCESS || c->state == BS_DEAD)
                return st;
        }
        if (c->state == BS_BLOB && c->got == r->bytes) {
            c->state = BS_READY;
            r->ncomplete++;
            rdt_debug(BS_SUBSYS, "rendezvous on %s: rank %d (%s) is in, %d of %d", r->where,
                      c->rank, c->addr, r->ncomplete + 1, r->p->nranks);
            return RDT_SUCCESS;
        }
    }
}

/* Drop connections that have sent nothing for BS_IDLE_MS in the middle of their hello, and
 * those whose 40-byte header is not complete BS_HEADER_MS after they were accepted: a stranger
 * trickling a byte every few seconds would otherwise hold its slot (one of BS_SPARE_CONNS) for
 * minutes, and enough of them would keep the ranks of the job waiting in the accept queue until
 * the deadline. An honest peer sends its header in one piece. The idle check comes first, so a
 * connection that went quiet is always reported as such. (The blob that follows is read only
 * from a peer with the job's token, and is bounded by the idle limit alone.) */
static void root_sweep_idle(bs_root_t *r, int64_t now)
{
    bs_conn_t *c;

    for (c = r->conns; c; c = c->next) {
        if (c->state != BS_HEADER && c->state != BS_BLOB)
            continue;
        if (now - c->last_ms >= BS_IDLE_MS) {
            if (c->state == BS_HEADER && c->got == 0)
                conn_drop(r, c, "sent nothing for %s", secs(BS_IDLE_MS).s);
            else
                conn_drop(r, c, "stalled for %s after %zu bytes of its hello", secs(BS_IDLE_MS).s,
                          c->state == BS_HEADER ? c->got : BS_HELLO_LEN + c->got);
        } else if (c->state == BS_HEADER && now - c->accept_ms >= BS_HEADER_MS) {
            conn_drop(r, c, "too slow: %zu of the %u header bytes in %s", c->got, BS_HELLO_LEN,
                      secs(BS_HEADER_MS).s);
        }
    }
}

/* The job failed at rank 0 (r->msg says why). Tell every member connected so far: send the
 * sentence, half-close, and read until they close (closing with unread bytes would reset the
 * connection and could destroy the sentence before the peer reads it), for at most
 * BS_NOTIFY_MS and never past the deadline. Strangers are just closed. */
static rdt_status_t root_fail(bs_root_t *r, rdt_status_t st)
{
    size_t mlen = strnlen(r->msg, sizeof(r->msg) - 1);
    int64_t linger = now_ms() + BS_NOTIFY_MS;
    unsigned char hdr[BS_REPLY_LEN];
    int members = 0;
    bs_conn_t *c;

    if (linger > r->deadline)
        linger = r->deadline;
    if (r->lfd >= 0) {
        close(r->lfd);
        r->lfd = -1;
        r->listening = 0;
    }
    rdt_bootstrap_reply_pack((uint32_t)st, mlen, hdr);
    for (c = r->conns; c; c = c->next) {
        struct epoll_event ev;

        if (c->state == BS_DEAD)
            continue;
        if (!c->member) {
            conn_close(r, c);
            continue;
        }
        /* 16 + 512 bytes fit the empty send buffer of a fresh connection: one try. */
        (void)send_two(c->fd, hdr, sizeof(hdr), (const unsigned char *)r->msg, mlen, 0);
        shutdown(c->fd, SHUT_WR);
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        (void)epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        members++;
    }
    while (members > 0 && now_ms() < linger) {
        struct epoll_event evs[64];
        int n = epoll_wait(r->epfd, evs, 64, ms_until(linger)), i;

        if (n < 0 && errno != EINTR)
            break;
        for (i = 0; i < n; i++) {
            unsigned char sink[4096];
            ssize_t k;

            c = evs[i].data.ptr;
            if (!c || c->state == BS_DEAD)
                continue;
            k = recv(c->fd, sink, sizeof(sink), 0);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                conn_close(r, c);
                members--;
            }
        }
    }
    for (c = r->conns; c; c = c->next)
        conn_close(r, c);
    root_reap(r);
    return st;
}

/* Wait until every rank has completed its hello, or the job fails. */
static rdt_status_t root_gather(bs_root_t *r)
{
    int64_t next_sweep = now_ms() + BS_SWEEP_MS;

    while (r->ncomplete < r->p->nranks - 1) {
        struct epoll_event evs[64];
        int64_t now = now_ms();
        int n, i, wait;

        if (now >= r->deadline) {
            root_missing(r, NULL);
            return RDT_ERR_TIMEOUT;
        }
        if (!r->listening && r->nconns < r->max_conns && now >= r->accept_resume_ms)
            root_listen_arm(r, 1);
        wait = ms_until(next_sweep < r->deadline ? next_sweep : r->deadline);
        n = epoll_wait(r->epfd, evs, 64, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: epoll_wait: %s", r->where,
                     errstr(errno).s);
            return RDT_ERR_SYSTEM;
        }
        for (i = 0; i < n; i++) {
            bs_conn_t *c = evs[i].data.ptr;
            rdt_status_t st;

            if (!c)
                st = root_accept(r);
            else
                st = root_read(r, c);
            if (st != RDT_SUCCESS)
                return st;
        }
        now = now_ms();
        if (now >= next_sweep) {
            root_sweep_idle(r, now);
            next_sweep = now + BS_SWEEP_MS;
        }
        root_reap(r);
    }
    return RDT_SUCCESS;
}

/* Every rank is in: send each the table, all at once, bounded by the deadline. */
static rdt_status_t root_distribute(bs_root_t *r)
{
    size_t tlen = (size_t)r->p->nranks * r->bytes;
    rdt_status_t st = RDT_SUCCESS;
    int sending = 0;
    bs_conn_t *c;

    close(r->lfd);
    r->lfd = -1;
    r->listening = 0;
    for (c = r->conns; c; c = c->next) {
        struct epoll_event ev;

        if (c->state == BS_DEAD)
            continue;
        if (c->state != BS_READY) {
            /* every rank is in: this is a stranger (or a stalled duplicate), dropped with a
             * warning like every other one */
            conn_drop(r, c, "its hello was incomplete (%zu bytes) when all ranks had arrived",
                      c->got);
            continue;
        }
        rdt_bootstrap_reply_pack(RDT_SUCCESS, tlen, c->reply);
        c->body = r->table;
        c->body_len = tlen;
        c->sent = 0;
        c->state = BS_SENDING;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLOUT;
        ev.data.ptr = c;
        (void)epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        sending++;
    }
    root_reap(r);
    while (sending > 0) {
        struct epoll_event evs[64];
        int n, i;

        if (now_ms() >= r->deadline) {
            char list[160];
            size_t off = 0;
            int listed = 0;

            list[0] = '\0';
            for (c = r->conns; c; c = c->next) {
                if (c->state != BS_SENDING || listed >= BS_MAX_LISTED || off >= sizeof(list))
                    continue;
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d",
                                        listed++ ? ", " : "", c->rank);
            }
            snprintf(r->msg, sizeof(r->msg),
                     "rendezvous on %s: sending the table to %s %s did not finish within %s",
                     r->where, sending == 1 ? "rank" : "ranks", list, secs(r->p->timeout_ms).s);
            st = RDT_ERR_TIMEOUT;
            break;
        }
        n = epoll_wait(r->epfd, evs, 64, ms_until(r->deadline));
        if (n < 0 && errno != EINTR) {
            snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: epoll_wait: %s", r->where,
                     errstr(errno).s);
            st = RDT_ERR_SYSTEM;
            break;
        }
        for (i = 0; i < n; i++) {
            size_t total;
            int failed = 0;

            c = evs[i].data.ptr;
            if (!c || c->state != BS_SENDING)
                continue;
            total = BS_REPLY_LEN + c->body_len;
            while (c->sent < total) {
                ssize_t k = send_two(c->fd, c->reply, BS_REPLY_LEN, c->body, c->body_len, c->sent);
                if (k > 0) {
                    c->sent += (size_t)k;
                    continue;
                }
                if (k < 0 && errno == EINTR)
                    continue;
                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                /* The others still get their table; rank 0 reports the first failure. */
                if (st == RDT_SUCCESS) {
                    snprintf(r->msg, sizeof(r->msg),
                             "rendezvous on %s: could not send the table to rank %d (%s): %s",
                             r->where, c->rank, c->addr, k < 0 ? errstr(errno).s : "nothing sent");
                    st = RDT_ERR_PEER_FAILED;
                }
                failed = 1;
                break;
            }
            if (c->sent == total || failed) {
                /* Everything the peer sent has been read, so close() ends with a FIN, not a
                 * reset: the peer reads the whole table. */
                conn_close(r, c);
                sending--;
            }
        }
        root_reap(r);
    }
    for (c = r->conns; c; c = c->next)
        conn_close(r, c);
    root_reap(r);
    return st;
}

/* Resolve root_host, and bind and listen on the first of its addresses that works. */
static rdt_status_t root_listen(bs_root_t *r, char *local_ip, size_t iplen)
{
    const rdt_bootstrap_params_t *p = r->p;
    struct addrinfo *res = NULL, *ai;
    int rc, e = 0, one = 1;
    rdt_status_t st;

    rc = resolve(p->root_host, p->root_port, &res);
    if (rc != 0) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: cannot resolve '%s': %s (check RDT_ROOT)", r->where,
                 p->root_host, gai_text(rc).s);
        return RDT_ERR_CONFIG;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if (sa_is_wildcard(ai->ai_addr)) {
            snprintf(r->msg, sizeof(r->msg),
                     "rendezvous on %s: '%s' is the wildcard address; the root must name an "
                     "address of rank 0's host that the other ranks can reach (check RDT_ROOT)",
                     r->where, p->root_host);
            freeaddrinfo(res);
            return RDT_ERR_CONFIG;
        }
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            e = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            struct sockaddr_storage ss;
            socklen_t sslen = sizeof(ss);

            if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
                sa_host((struct sockaddr *)&ss, sslen, local_ip, iplen);
            else
                sa_host(ai->ai_addr, ai->ai_addrlen, local_ip, iplen);
            sa_hostport(ai->ai_addr, ai->ai_addrlen, r->where, sizeof(r->where));
            r->lfd = fd;
            freeaddrinfo(res);
            return RDT_SUCCESS;
        }
        e = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (e == EADDRINUSE) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: cannot listen: %s (another job's rank 0, or another "
                 "program, has this port; choose another port in RDT_ROOT)",
                 r->where, errstr(e).s);
        st = RDT_ERR_NETWORK;
    } else if (e == EADDRNOTAVAIL) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: cannot listen: %s (that is not an address of this host; "
                 "rank 0 must run on the host RDT_ROOT names)",
                 r->where, errstr(e).s);
        st = RDT_ERR_CONFIG;
    } else if (e == EACCES) {
        snprintf(r->msg, sizeof(r->msg),
                 "rendezvous on %s: cannot listen: %s (ports below 1024 need privileges)", r->where,
                 errstr(e).s);
        st = RDT_ERR_CONFIG;
    } else {
        snprintf(r->msg, sizeof(r->msg), "rendezvous on %s: cannot listen: %s", r->where,
                 errstr(e).s);
        st = RDT_ERR_NETWORK;
    }
    return st;
}

static rdt_status_t root_exchange(const rdt_bootstrap_params_t *p, const void *blob, size_t bytes,
                                  void *table, char *local_ip_p, char *err, size_t errlen)
{
    bs_root_t r;
    char local_ip[64];
    rdt_status_t st;

    memset(&r, 0, sizeof(r));
    r.p = p;
    r.bytes = bytes;
    r.lfd = -1;
    r.epfd = -1;
    r.start = now_ms();
    r.deadline = r.start + p->timeout_ms;
    r.max_conns = p->nranks - 1 + BS_SPARE_CONNS;
    (void)fmt_hostport(r.where, sizeof(r.where), p->root_host, p->root_port);

    r.table = malloc(bytes ? (size_t)p->nranks * bytes : 1);
    r.by_rank = calloc((size_t)p->nranks, sizeof(*r.by_rank));
    if (!r.table || !r.by_rank) {
        snprintf(r.msg, sizeof(r.msg), "rendezvous on %s: out of memory for %d ranks", r.where,
                 p->nranks);
        st = RDT_ERR_NO_MEMORY;
        goto err_free;
    }
    if (bytes)
        memcpy(r.table, blob, bytes);

    st = root_listen(&r, local_ip, sizeof(local_ip));
    if (st != RDT_SUCCESS)
        goto err_free;
    r.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r.epfd < 0) {
        snprintf(r.msg, sizeof(r.msg), "rendezvous on %s: epoll_create1: %s", r.where,
                 errstr(errno).s);
        st = RDT_ERR_SYSTEM;
        goto err_close_listen;
    }
    root_listen_arm(&r, 1);
    rdt_debug(BS_SUBSYS, "rendezvous on %s: listening for %d ranks, %s", r.where, p->nranks - 1,
              secs(p->timeout_ms).s);

    st = root_gather(&r);
    if (st != RDT_SUCCESS) {
        root_fail(&r, st);
        goto err_close_epoll;
    }
    st = root_distribute(&r);
    if (st != RDT_SUCCESS)
        goto err_close_epoll;

    close(r.epfd);
    rdt_info(BS_SUBSYS, "rendezvous on %s: all %d ranks arrived in %lld ms", r.where, p->nranks,
             (long long)(now_ms() - r.start));
    if (bytes)
        memcpy(table, r.table, (size_t)p->nranks * bytes);
    snprintf(local_ip_p, 64, "%s", local_ip);
    free(r.by_rank);
    free(r.table);
    return RDT_SUCCESS;

err_close_epoll:
    close(r.epfd);
err_close_listen:
    if (r.lfd >= 0)
        close(r.lfd);
    while (r.conns) {
        bs_conn_t *c = r.conns;
        conn_close(&r, c);
        r.conns = c->next;
        free(c);
    }
err_free:
    free(r.by_rank);
    free(r.table);
    set_err(err, errlen, "%s", r.msg);
    rdt_info(BS_SUBSYS, "%s", r.msg);
    return st;
}

/* ------------------------------------------------------------------------------------------- */
/* Other ranks                                                                                  */
/* ------------------------------------------------------------------------------------------- */

enum { BS_IO_OK = 0, BS_IO_ERROR = -1, BS_IO_TIMEOUT = -2, BS_IO_EOF = -3 };

/* Send a|b entirely before @p deadline. BS_IO_ERROR leaves errno set. */
static int peer_send_all(int fd, const unsigned char *a, size_t alen, const unsigned char *b,
                         size_t blen, int64_t deadline)
{
    size_t off = 0;

    while (off < alen + blen) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        ssize_t k = send_two(fd, a, alen, b, blen, off);

        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return BS_IO_ERROR;
        if (now_ms() >= deadline)
            return BS_IO_TIMEOUT;
        (void)poll(&pfd, 1, ms_until(deadline));
    }
    return BS_IO_OK;
}

/* Receive exactly @p len bytes before @p deadline. BS_IO_ERROR leaves errno set. */
static int peer_recv_all(int fd, unsigned char *buf, size_t len, int64_t deadline)
{
    size_t off = 0;

    while (off < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t k = recv(fd, buf + off, len - off, MSG_DONTWAIT);

        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k == 0)
            return BS_IO_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return BS_IO_ERROR;
        if (now_ms() >= deadline)
            return BS_IO_TIMEOUT;
        (void)poll(&pfd, 1, ms_until(deadline));
    }
    return BS_IO_OK;
}

/* One connect() to one address, bounded by BS_ATTEMPT_MS and @p deadline. Returns the
 * connected socket, or -1 with *errno_p and *op_p saying what failed. */
static int peer_connect_once(const struct addrinfo *ai, int64_t deadline, int *errno_p,
                             const char **op_p)
{
    int64_t until = now_ms() + BS_ATTEMPT_MS;
    struct sockaddr_storage me, them;
    socklen_t melen = sizeof(me), themlen = sizeof(them);
    int fd, e = 0;
    socklen_t elen = sizeof(e);

    if (until > deadline)
        until = deadline;
    *op_p = "socket";
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *errno_p = errno;
        return -1;
    }
    *op_p = "connect";
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            *errno_p = errno;
            goto err_close;
        }
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, ms_until(until));

            if (n > 0)
                break;
            if (n == 0 || errno != EINTR) {
                *errno_p = n == 0 ? ETIMEDOUT : errno;
                goto err_close;
            }
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
            e = errno;
        if (e != 0) {
            *errno_p = e;
            goto err_close;
        }
    }
    /* Nobody listening on a loopback port in the ephemeral range: connect() can meet itself. */
    if (getsockname(fd, (struct sockaddr *)&me, &melen) == 0 &&
        getpeername(fd, (struct sockaddr *)&them, &themlen) == 0 && sa_same(&me, &them)) {
        *errno_p = ECONNREFUSED;
        goto err_close;
    }
    return fd;

err_close:
    close(fd);
    return -1;
}

/* Read rank 0's reply: the table into @p tbl (nranks * bytes), or its error sentence. */
static rdt_status_t peer_read_reply(const rdt_bootstrap_params_t *p, int fd, const char *where,
                                    unsigned char *tbl, size_t tlen, int64_t deadline,
                                    int send_errno, char *msg, size_t msglen)
{
    unsigned char hdr[BS_REPLY_LEN], body[BS_MAX_MSG];
    char why[BS_MAX_MSG + 1];
    rdt_status_t status, st;
    uint64_t len;
    int rc;

    rc = peer_recv_all(fd, hdr, sizeof(hdr), deadline);
    if (rc == BS_IO_TIMEOUT) {
        unsigned char bye = BS_BYE_TIMEOUT;

        (void)send(fd, &bye, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        snprintf(msg, msglen,
                 "rendezvous at %s: connected, but rank 0 sent no table within %s (some ranks "
                 "have not arrived? see rank 0's log)",
                 where, secs(p->timeout_ms).s);
        return RDT_ERR_TIMEOUT;
    }
    if (rc != BS_IO_OK) {
        int e = rc == BS_IO_ERROR ? errno : send_errno;
        snprintf(msg, msglen,
                 "rendezvous at %s: rank 0 closed the connection before sending the table (%s); "
                 "rank 0 failed, or rejected this rank's hello (token or version): see its log",
                 where, e ? errstr(e).s : "end of stream");
        return RDT_ERR_PEER_FAILED;
    }
    st = rdt_bootstrap_reply_check(hdr, sizeof(hdr), tlen, p->nranks, &status, &len, why,
                                   sizeof(why));
    if (st != RDT_SUCCESS) {
        set_err(msg, msglen, "rendezvous at %s: %s", where, why);
        return st;
    }
    if (status == RDT_SUCCESS) {
        rc = peer_recv_all(fd, tbl, tlen, deadline);
        if (rc == BS_IO_OK)
            return RDT_SUCCESS;
        if (rc == BS_IO_TIMEOUT) {
            snprintf(msg, msglen,
                     "rendezvous at %s: the table from rank 0 did not finish "
                     "arriving within %s",
                     where, secs(p->timeout_ms).s);
            return RDT_ERR_TIMEOUT;
        }
        snprintf(msg, msglen,
                 "rendezvous at %s: rank 0 closed the connection in the middle "
                 "of the table (%s)",
                 where, rc == BS_IO_ERROR ? errstr(errno).s : "end of stream");
        return RDT_ERR_PEER_FAILED;
    }
    /* len <= BS_MAX_MSG: checked above */
    if (peer_recv_all(fd, body, (size_t)len, deadline) != BS_IO_OK)
        len = 0;
    rdt_bootstrap_reply_text(body, (size_t)len, why, sizeof(why));
    snprintf(msg, msglen, "rank 0 failed the rendezvous: %s", len ? why : "(no reason received)");
    return status;
}

static rdt_status_t peer_exchange(const rdt_bootstrap_params_t *p, const void *blob, size_t bytes,
                                  void *table, char *local_ip_p, char *err, size_t errlen)
{
    int64_t start = now_ms(), deadline = start + p->timeout_ms;
    size_t tlen = (size_t)p->nranks * bytes;
    int backoff = BS_BACKOFF_MIN_MS, fd = -1, last_errno = 0, send_errno = 0, rc, attempts = 0;
    const char *last_op = "connect";
    struct addrinfo *res = NULL, *ai;
    unsigned char hello[BS_HELLO_LEN], *tbl;
    rdt_bootstrap_hello_t h;
    char where[96], local_ip[64], msg[BS_MAX_MSG + 64];
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    rdt_status_t st;

    (void)fmt_hostport(where, sizeof(where), p->root_host, p->root_port);
    tbl = malloc(tlen ? tlen : 1);
    if (!tbl) {
        snprintf(msg, sizeof(msg), "rendezvous at %s: out of memory for the table", where);
        st = RDT_ERR_NO_MEMORY;
        goto err_out;
    }

    /* Resolve; a temporary failure of the resolver is retried like a refused connection. */
    for (;;) {
        rc = resolve(p->root_host, p->root_port, &res);
        if (rc == 0)
            break;
        if (rc != EAI_AGAIN || now_ms() >= deadline) {
            snprintf(msg, sizeof(msg),
                     "rendezvous at %s: cannot resolve '%s': %s (check "
                     "RDT_ROOT)",
                     where, p->root_host, gai_text(rc).s);
            st = rc == EAI_AGAIN ? RDT_ERR_TIMEOUT : RDT_ERR_CONFIG;
            goto err_free_table;
        }
        (void)poll(NULL, 0, backoff < ms_until(deadline) ? backoff : ms_until(deadline));
        backoff = backoff * 2 > BS_BACKOFF_MAX_MS ? BS_BACKOFF_MAX_MS : backoff * 2;
    }

    /* Connect, retrying every address with backoff: rank 0 may not be listening yet. */
    backoff = BS_BACKOFF_MIN_MS;
    for (;;) {
        for (ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = peer_connect_once(ai, deadline, &last_errno, &last_op);
            if (fd < 0 && strcmp(last_op, "socket") == 0 &&
                (last_errno == EMFILE || last_errno == ENFILE || last_errno == ENOBUFS ||
                 last_errno == ENOMEM)) {
                snprintf(msg, sizeof(msg), "rendezvous at %s: socket: %s", where,
                         errstr(last_errno).s);
                st = RDT_ERR_SYSTEM;
                goto err_free_res;
            }
        }
        if (fd >= 0)
            break;
        if (now_ms() >= deadline) {
            snprintf(msg, sizeof(msg),
                     "rendezvous at %s unreachable after %s (%s: %s); is rank 0 running and "
                     "RDT_ROOT right?",
                     where, secs(p->timeout_ms).s, last_op, errstr(last_errno).s);
            st = RDT_ERR_TIMEOUT;
            goto err_free_res;
        }
        if (attempts++ == 0)
            rdt_debug(BS_SUBSYS, "rendezvous at %s: %s: %s; retrying for up to %s", where, last_op,
                      errstr(last_errno).s, secs(p->timeout_ms).s);
        (void)poll(NULL, 0, backoff < ms_until(deadline) ? backoff : ms_until(deadline));
        backoff = backoff * 2 > BS_BACKOFF_MAX_MS ? BS_BACKOFF_MAX_MS : backoff * 2;
    }
    freeaddrinfo(res);
    res = NULL;
    set_nodelay(fd);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        sa_host((struct sockaddr *)&ss, sslen, local_ip, sizeof(local_ip));
    else
        snprintf(local_ip, sizeof(local_ip), "127.0.0.1");
    rdt_debug(BS_SUBSYS, "rendezvous at %s: connected from %s after %lld ms", where, local_ip,
              (long long)(now_ms() - start));

    memset(&h, 0, sizeof(h));
    h.version = BS_VERSION;
    memcpy(h.token, p->token, 16);
    h.nranks = (uint32_t)p->nranks;
    h.rank = (uint32_t)p->rank;
    h.blob_len = bytes;
    rdt_bootstrap_hello_pack(&h, hello);
    rc = peer_send_all(fd, hello, sizeof(hello), blob, bytes, deadline);
    if (rc == BS_IO_TIMEOUT) {
        snprintf(msg, sizeof(msg),
                 "rendezvous at %s: connected, but sending the hello did not "
                 "finish within %s",
                 where, secs(p->timeout_ms).s);
        st = RDT_ERR_TIMEOUT;
        goto err_close;
    }
    /* A send error still leaves rank 0's answer to read, which may say why it closed. */
    if (rc == BS_IO_ERROR)
        send_errno = errno;

    st = peer_read_reply(p, fd, where, tbl, tlen, deadline, send_errno, msg, sizeof(msg));
    if (st != RDT_SUCCESS)
        goto err_close;
    if (bytes && memcmp(tbl + (size_t)p->rank * bytes, blob, bytes) != 0) {
        snprintf(msg, sizeof(msg),
                 "rendezvous at %s: the table from rank 0 does not hold this "
                 "rank's address at slot %d",
                 where, p->rank);
        st = RDT_ERR_INTERNAL;
        goto err_close;
    }
    close(fd);
    if (bytes)
        memcpy(table, tbl, tlen);
    snprintf(local_ip_p, 64, "%s", local_ip);
    free(tbl);
    rdt_debug(BS_SUBSYS, "rendezvous at %s: got the table of %d ranks after %lld ms", where,
              p->nranks, (long long)(now_ms() - start));
    return RDT_SUCCESS;

err_close:
    close(fd);
err_free_res:
    if (res)
        freeaddrinfo(res);
err_free_table:
    free(tbl);
err_out:
    set_err(err, errlen, "%s", msg);
    rdt_info(BS_SUBSYS, "%s", msg);
    return st;
}

/* ------------------------------------------------------------------------------------------- */
/* Entry point                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* One rank: no sockets. local_ip is the root address if it resolves, else loopback. */
static rdt_status_t single_exchange(const rdt_bootstrap_params_t *p, const void *blob, size_t bytes,
                                    void *table, char *local_ip_p)
{
    char ip[64] = "127.0.0.1";
    struct addrinfo *res = NULL;

    if (p->root_host && p->root_host[0] &&
        resolve(p->root_host, p->root_port > 0 && p->root_port < 65536 ? p->root_port : 0, &res) ==
            0) {
        if (res && !sa_is_wildcard(res->ai_addr))
            sa_host(res->ai_addr, res->ai_addrlen, ip, sizeof(ip));
        freeaddrinfo(res);
    }
    if (bytes)
        memcpy(table, blob, bytes);
    snprintf(local_ip_p, 64, "%s", ip);
    return RDT_SUCCESS;
}

rdt_status_t rdt_bootstrap_exchange(const rdt_bootstrap_params_t *params, const void *blob,
                                    size_t bytes, void *table, char *local_ip_p, char *err,
                                    size_t errlen)
{
    const rdt_bootstrap_params_t *p = params;

    if (!p || !local_ip_p || (bytes && (!blob || !table)) || p->nranks < 1 || p->rank < 0 ||
        p->rank >= p->nranks) {
        set_err(err, errlen, "rdt_bootstrap_exchange: invalid arguments (rank %d of %d)",
                p ? p->rank : -1, p ? p->nranks : -1);
        return RDT_ERR_INVALID_ARG;
    }
    if (bytes && (size_t)p->nranks > BS_MAX_TABLE / bytes) {
        set_err(err, errlen,
                "rdt_bootstrap_exchange: a table of %d ranks of %zu bytes exceeds %zu MiB",
                p->nranks, bytes, BS_MAX_TABLE >> 20);
        return RDT_ERR_INVALID_ARG;
    }
    if (p->nranks == 1)
        return single_exchange(p, blob, bytes, table, local_ip_p);
    if (!p->root_host || !p->root_host[0] || p->root_port < 1 || p->root_port > 65535 ||
        p->timeout_ms <= 0) {
        set_err(err, errlen,
                "rdt_bootstrap_exchange: rank %d of %d needs a root address (host:port with a "
                "port of 1 to 65535) and a positive timeout, got '%s', port %d, %d ms",
                p->rank, p->nranks, p->root_host ? p->root_host : "(null)", p->root_port,
                p->timeout_ms);
        return RDT_ERR_INVALID_ARG;
    }
    if (p->rank == 0)
        return root_exchange(p, blob, bytes, table, local_ip_p, err, errlen);
    return peer_exchange(p, blob, bytes, table, local_ip_p, err, errlen);
}
