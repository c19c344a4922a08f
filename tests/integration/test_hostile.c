/* rdt-test-labels: fault */
/*
 * test_hostile.c - hostile connections against a running job: the rendezvous port while rank 0
 * waits for the others, then every rank's TCP data port while the job runs collectives in a
 * loop. The job must finish with exact results, every hostile connection must be closed by the
 * rank it reached, each with a warning in that rank's log naming its address and why, and
 * nothing may hang.
 *
 * test_bootstrap (a stranger against a bare rendezvous) and test_tcp (impostors against a bare
 * transport) cover the single cases; this adds, against a whole communicator: random bytes,
 * a wrong magic, version or token, truncated frames (closed, and left hanging), header fields at
 * their extremes (a blob length of 2^62, rank and size 2^32-1), byte-by-byte senders (one too
 * slow to finish its hello in the 10 s rank 0 allows, though never idle for 5 s), a data
 * message header (length 2^62, right check word) sent in place of the handshake or right after a
 * bad one, a handshake with the job's token that claims a connected rank or the wrong communicator,
 * floods beyond the acceptors' limits (300 at the rendezvous, more than its 256 spare
 * connections; 100 per data port, more than its 64 pending handshakes), and silent connections
 * (300 opened just before the honest ranks arrive: the job forms behind them). It also checks
 * that nothing listens on the rendezvous port once the job has formed.
 *
 * Then every rank's status channel (engine/ctl.c, UDP): a valid query and answer with the job's
 * token (they must not disturb it), a well-formed query and "gave up" from a stranger (wrong
 * token), datagrams with the job's token that are wrong in exactly one field (another
 * communicator, truncated header, empty, reserved byte, version, type, state, magic, a text of
 * 901 bytes, a text length of 65535, text shorter or longer than said, 1600 bytes, unprintable
 * text, waited ranks out of range or too many, a nonzero unused wait slot, sender or addressee
 * out of range or wrong), and 150 random datagrams of 0..1500 bytes per rank. Never a valid
 * "gave up": that would rightly fail the job. Meanwhile each rank in turn arrives 60 ms late, so
 * that the others read their channels (a rank does so only in a wait older than 20 ms); the
 * queues must be read to the end, the job must stay exact, and each rank must warn exactly once,
 * for the stranger's query (later drops are logged at debug level).
 *
 * How: the test process is the attacker, in the hook of rdt_spawn_local_hook (it has the ranks'
 * pids). Rank 0 reports RDT_ROOT and RDT_TOKEN through a pipe and starts the rendezvous; the
 * other ranks wait for a "go" on a second pipe, so the rendezvous port is open and waiting while
 * it is attacked. The data ports are found from outside, as an attacker on the host would: the
 * listening TCP sockets in /proc/<pid>/net/tcp whose inodes are among /proc/<pid>/fd, and the
 * status channels likewise in /proc/<pid>/net/udp. Rank 0 broadcasts a flag each iteration
 * (stop, or slow turns), set through a third pipe. Each rank's stderr (the
 * engine's log) goes to a file, read at the end. Only 127.0.0.1 is ever contacted.
 *
 * Run twice: RDT_TRANSPORT=tcp (every pair connected over TCP: impostors claim connected ranks)
 * and auto (shared memory between the ranks; the TCP transport still listens, and the mux lets
 * it drop strangers every 1024th progress call).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rdmatrain.h"
#include "spawn.h"
#include "testutil.h"
#include "wire.h"

#define NRANKS        3
#define SPAWN_TIMEOUT 120
#define MAX_CONNS     2048
#define MAX_WHY       2

/* The wire formats under attack (engine/bootstrap.c: big-endian; transport/tcp.c: little). */
#define BS_MAGIC      0x52445448u /* "RDTH" */
#define BS_HELLO_LEN  40
#define TCP_HS_MAGIC  0x48544452u /* "RDTH" in little-endian */
#define TCP_MSG_MAGIC 0x31544452u
#define TCP_HS_LEN    40
#define TCP_HDR_LEN   24
/* engine/ctl_wire.c: the status channel's datagram, little-endian */
#define CTL_MAGIC    0x53544452u /* "RDTS" */
#define CTL_HDR_LEN  112
#define CTL_TEXT_MAX 900
#define CTL_MAX_WAIT 16
#define CTL_STRANGER "a wrong job token" /* the first warning's reason (attack_status) */

/* ------------------------------------------------------------------------------------------ */
/* The job                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The flag rank 0 broadcasts each iteration, from the test's bytes on the stop pipe ('s': stop,
 * 'w': slow, 'f': fast again). */
enum { FLAG_RUN = 0, FLAG_STOP = 1, FLAG_SLOW = 2 };
#define SLOW_MS 60

static void sleep_ms(int ms);

typedef struct job {
    const char *transport;
    char logdir[64];
    int report[2]; /* ranks -> test: "root ADDR TOKEN", "warm R", "done R ITERS" */
    int go[2];     /* test -> ranks 1..n-1: start the rendezvous */
    int stop[2];   /* test -> rank 0: 's' finish the loop, 'w' slow turns, 'f' fast again */
} job_t;

static void report(const job_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const job_t *job, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && write(job->report[1], line, (size_t)n) != n) /* < PIPE_BUF: atomic */
        fprintf(stderr, "report: write failed: %s\n", strerror(errno));
}

/* Rank r's input for iteration i: distinct per rank, element and iteration. */
static int64_t in_val(int r, size_t j, long i)
{
    return (int64_t)(r + 1) * 1000003 + (int64_t)j * 7 + i;
}

/* One iteration of collectives, every result compared with what it must be. */
static int iteration(rdt_comm_t *comm, int rank, int n, long i)
{
    static const size_t counts[] = {1, 7, 1000, 65537};
    size_t count = counts[i % 4], j, k;
    int64_t *a = calloc(count, sizeof(*a)), *s = calloc(count, sizeof(*s));
    int32_t *ts = malloc((size_t)n * 257 * sizeof(int32_t));
    int32_t *tr = malloc((size_t)n * 257 * sizeof(int32_t));
    unsigned char b[4099];
    int bad = 0, root = (int)(i % n), src;
    rdt_status_t st;

    if (!a || !s || !ts || !tr) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        bad = 1;
        goto out;
    }
    for (j = 0; j < count; j++)
        a[j] = in_val(rank, j, i);
    st = rdt_allreduce(comm, a, s, count, RDT_INT64, RDT_SUM);
    for (j = 0; j < count && st == RDT_SUCCESS; j++) {
        int64_t want = 0;
        for (k = 0; k < (size_t)n; k++)
            want += in_val((int)k, j, i);
        if (s[j] != want) {
            fprintf(stderr,
                    "rank %d: iteration %ld: allreduce[%zu] = %" PRId64 ", want %" PRId64 "\n",
                    rank, i, j, s[j], want);
            bad = 1;
            break;
        }
    }
    if (st == RDT_SUCCESS) {
        for (j = 0; j < (size_t)n * 257; j++) /* block d goes to rank d */
            ts[j] = (int32_t)(rank * 1000000 + (int)(j / 257) * 1000 + (int)(j % 257) + (int)i);
        st = rdt_alltoall(comm, ts, tr, 257, RDT_INT32);
        for (src = 0; src < n && st == RDT_SUCCESS && !bad; src++)
            for (j = 0; j < 257; j++)
                if (tr[(size_t)src * 257 + j] !=
                    (int32_t)(src * 1000000 + rank * 1000 + (int)j + (int)i)) {
                    fprintf(stderr, "rank %d: iteration %ld: alltoall from %d [%zu] wrong\n", rank,
                            i, src, j);
                    bad = 1;
                    break;
                }
    }
    if (st == RDT_SUCCESS) {
        for (j = 0; j < sizeof(b); j++)
            b[j] = rank == root ? (unsigned char)(j * 31 + (size_t)i) : 0;
        st = rdt_broadcast(comm, b, b, sizeof(b), RDT_UINT8, root);
        for (j = 0; j < sizeof(b) && st == RDT_SUCCESS; j++)
            if (b[j] != (unsigned char)(j * 31 + (size_t)i)) {
                fprintf(stderr, "rank %d: iteration %ld: broadcast[%zu] wrong\n", rank, i, j);
                bad = 1;
                break;
            }
    }
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: iteration %ld: %s: %s\n", rank, i, rdt_status_str(st),
                rdt_comm_last_error(comm));
        bad = 1;
    }
out:
    free(a);
    free(s);
    free(ts);
    free(tr);
    return bad;
}

static int rank_main(int rank, int nranks, void *arg)
{
    const job_t *job = arg;
    rdt_comm_t *comm = NULL;
    char path[128], c;
    long iters = 0;
    int32_t flag = FLAG_RUN;
    int fd, bad = 0, slow = 0;
    rdt_status_t st;

    snprintf(path, sizeof(path), "%s/rank%d.log", job->logdir, rank);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0 || dup2(fd, 2) < 0)
        return 2;
    close(fd);
    setvbuf(stderr, NULL, _IONBF, 0);
    setenv("RDT_TRANSPORT", job->transport, 1);
    setenv("RDT_TIMEOUT", "60", 1);
    setenv("RDT_CONNECT_TIMEOUT", "60", 1);
    close(job->go[1]);
    close(job->stop[1]);
    close(job->report[0]);

    if (rank == 0) {
        report(job, "root %s %s\n", getenv("RDT_ROOT"), getenv("RDT_TOKEN"));
    } else {
        struct pollfd pfd = {.fd = job->go[0], .events = POLLIN};
        if (poll(&pfd, 1, 90000) != 1 || read(job->go[0], &c, 1) != 1) {
            fprintf(stderr, "rank %d: no go from the test\n", rank);
            return 3;
        }
    }
    st = rdt_comm_create_from_env(&comm);
    if (st != RDT_SUCCESS) {
        fprintf(stderr, "rank %d: create: %s: %s\n", rank, rdt_status_str(st),
                rdt_comm_last_error(NULL));
        return 4;
    }
    for (;;) {
        if (rank == 0) {
            struct pollfd pfd = {.fd = job->stop[0], .events = POLLIN};
            while (flag != FLAG_STOP && poll(&pfd, 1, 0) == 1) {
                if (read(job->stop[0], &c, 1) != 1 || c == 's')
                    flag = FLAG_STOP;
                else
                    slow = c == 'w';
            }
            if (flag != FLAG_STOP)
                flag = slow ? FLAG_SLOW : FLAG_RUN;
        }
        st = rdt_broadcast(comm, &flag, &flag, 1, RDT_INT32, 0);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rank %d: stop flag: %s: %s\n", rank, rdt_status_str(st),
                    rdt_comm_last_error(comm));
            bad = 1;
            break;
        }
        if (flag == FLAG_STOP)
            break;
        /* each rank in turn arrives late, so that the others wait long enough to read their
         * status channels (ctl.h: a rank answers once a wait is 20 ms old) */
        if (flag == FLAG_SLOW && iters % nranks == rank)
            sleep_ms(SLOW_MS);
        if (iteration(comm, rank, nranks, iters)) {
            bad = 1;
            break;
        }
        if (iters++ == 0) /* every pair has talked (alltoall): the job is wired */
            report(job, "warm %d\n", rank);
    }
    rdt_comm_destroy(comm);
    report(job, "done %d %ld\n", rank, iters);
    return bad ? 5 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The attacker                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct conn {
    int fd;
    int target;     /* the rank whose log must name it */
    int port;       /* our end, as the logs print it */
    int closed;     /* the rank closed it */
    int logged;     /* a warning names it */
    int unserviced; /* sent to a listener nobody reads (see attack_data) */
    /* a trickler: wait_closed() sends it one byte of tx every trickle_ms */
    int trickle_ms;
    int64_t next_tx;
    const unsigned char *tx;
    size_t txlen, txoff;
    const char *kind;
    const char *why[MAX_WHY]; /* the reasons its warning may give (one must appear) */
} conn_t;

typedef struct attack {
    const job_t *job;
    int nranks;
    const int *pids;
    int root_port;
    unsigned char token[16];
    uint64_t comm_id;
    int data_port[NRANKS];
    int ctl_port[NRANKS]; /* the ranks' status channels (UDP) */
    int udp_port;         /* ours, as the warnings print it */
    int ndgrams, ncrafted, nrandom, nvalid;
    unsigned long ctl_drops[NRANKS]; /* datagrams the kernel dropped on a full queue */
    int ctl_warned[NRANKS];          /* warnings naming our port */
    conn_t conns[MAX_CONNS];
    int nconns, nrendezvous, ndata, nanswered;
    uint64_t rng;
    long iters[NRANKS];
    int done[NRANKS];
    char fail[512]; /* first failure */
} attack_t;

static void attack_fail(attack_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void attack_fail(attack_t *a, const char *fmt, ...)
{
    va_list ap;

    if (a->fail[0])
        return;
    va_start(ap, fmt);
    vsnprintf(a->fail, sizeof(a->fail), fmt, ap);
    va_end(ap);
    fprintf(stderr, "test_hostile: %s\n", a->fail);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A line from the ranks' report pipe, within @p ms; 0 on success. */
static int read_report(int fd, char *line, size_t len, int ms)
{
    int64_t until = now_ms() + ms;
    size_t n = 0;

    while (n + 1 < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)(until - now_ms());
        char c;

        if (left <= 0 || poll(&pfd, 1, left) != 1 || read(fd, &c, 1) != 1)
            return -1;
        if (c == '\n') {
            line[n] = '\0';
            return 0;
        }
        line[n++] = c;
    }
    return -1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void bs_hello(unsigned char *h, uint32_t version, const unsigned char *token,
                     uint32_t nranks, uint32_t rank, uint64_t len)
{
    put_be32(h, BS_MAGIC);
    put_be32(h + 4, version);
    memcpy(h + 8, token, 16);
    put_be32(h + 24, nranks);
    put_be32(h + 28, rank);
    put_be32(h + 32, (uint32_t)(len >> 32));
    put_be32(h + 36, (uint32_t)len);
}

static void tcp_hs(unsigned char *h, uint32_t version, const unsigned char *token, uint64_t comm_id,
                   uint32_t rank, uint32_t nranks)
{
    rdt_wire_put_u32(h, TCP_HS_MAGIC);
    rdt_wire_put_u32(h + 4, version);
    memcpy(h + 8, token, 16);
    rdt_wire_put_u64(h + 24, comm_id);
    rdt_wire_put_u32(h + 32, rank);
    rdt_wire_put_u32(h + 36, nranks);
}

/* A data message header as tcp.c frames one: right magic and check word, any length. */
static void tcp_msg_hdr(unsigned char *h, uint64_t tag, uint64_t len)
{
    rdt_wire_put_u32(h, TCP_MSG_MAGIC);
    rdt_wire_put_u32(h + 4, rdt_wire_hdr_check(tag, len, TCP_MSG_MAGIC));
    rdt_wire_put_u64(h + 8, tag);
    rdt_wire_put_u64(h + 16, len);
}

static void random_bytes(attack_t *a, unsigned char *buf, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        buf[i] = (unsigned char)rdt_test_rand(&a->rng);
}

static int connect_port(int port)
{
    struct sockaddr_in sa, me;
    socklen_t melen = sizeof(me);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    /* Nobody listening on an ephemeral port of 127.0.0.1: connect() may meet itself. */
    if (getsockname(fd, (struct sockaddr *)&me, &melen) != 0 || me.sin_port == sa.sin_port) {
        close(fd);
        errno = ECONNREFUSED;
        return -1;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Enter connected socket @p fd in the table: rank @p target must close it and log one of the
 * reasons given. */
static conn_t *track(attack_t *a, int fd, int target, const char *kind, const char *why0,
                     const char *why1)
{
    struct sockaddr_in me;
    socklen_t melen = sizeof(me);
    conn_t *c;

    if (a->nconns == MAX_CONNS || getsockname(fd, (struct sockaddr *)&me, &melen) != 0) {
        close(fd);
        attack_fail(a, "%s: too many connections for the table, or getsockname failed", kind);
        return NULL;
    }
    c = &a->conns[a->nconns++];
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->port = ntohs(me.sin_port);
    c->target = target;
    c->kind = kind;
    c->why[0] = why0;
    c->why[1] = why1;
    return c;
}

/* Open a hostile connection to @p port of rank @p target and send @p len bytes (the peer may
 * close before all are taken: that is its right). @p half_close: then shut our side down. */
static conn_t *hostile(attack_t *a, int port, int target, const char *kind, const void *buf,
                       size_t len, int half_close, const char *why0, const char *why1)
{
    int fd = connect_port(port);
    conn_t *c;

    if (fd < 0) {
        attack_fail(a, "%s: cannot connect to 127.0.0.1:%d: %s", kind, port, strerror(errno));
        return NULL;
    }
    c = track(a, fd, target, kind, why0, why1);
    if (!c)
        return NULL;
    if (len)
        (void)send(c->fd, buf, len, MSG_NOSIGNAL);
    if (half_close)
        shutdown(c->fd, SHUT_WR);
    return c;
}

/* Wait until the ranks have closed every hostile connection from index @p first on. */
static void wait_closed(attack_t *a, int first, int ms)
{
    int64_t until = now_ms() + ms;
    int open = 1, i;

    while (open && now_ms() < until) {
        struct pollfd pfds[MAX_CONNS];
        int idx[MAX_CONNS], n = 0;

        for (i = first; i < a->nconns; i++) {
            if (a->conns[i].closed)
                continue;
            pfds[n].fd = a->conns[i].fd;
            pfds[n].events = POLLIN | POLLRDHUP;
            pfds[n].revents = 0;
            idx[n++] = i;
        }
        open = n;
        for (i = 0; i < n; i++) { /* the tricklers' next bytes */
            conn_t *c = &a->conns[idx[i]];
            if (c->trickle_ms && c->txoff < c->txlen && now_ms() >= c->next_tx) {
                (void)send(c->fd, c->tx + c->txoff++, 1, MSG_NOSIGNAL);
                c->next_tx = now_ms() + c->trickle_ms;
            }
        }
        if (!n || poll(pfds, (nfds_t)n, 100) <= 0)
            continue;
        for (i = 0; i < n; i++) {
            conn_t *c = &a->conns[idx[i]];
            char sink[256];
            ssize_t k;

            if (!pfds[i].revents)
                continue;
            k = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (k > 0) {
                attack_fail(a, "%s: rank %d sent %zd bytes to a hostile connection", c->kind,
                            c->target, k);
                c->closed = 1;
            } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                c->closed = 1;
            }
            if (c->closed) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    for (i = first; i < a->nconns; i++) {
        if (!a->conns[i].closed) {
            attack_fail(a, "%s: rank %d kept the connection from 127.0.0.1:%d open for %d ms",
                        a->conns[i].kind, a->conns[i].target, a->conns[i].port, ms);
            close(a->conns[i].fd);
            a->conns[i].fd = -1;
            a->conns[i].closed = 1;
        }
    }
}

/* ---- the rendezvous ------------------------------------------------------------------------ */

static void attack_rendezvous(attack_t *a)
{
    static const char *const garbage = "not an rdmatrain hello";
    static unsigned char trickle[BS_HELLO_LEN];
    unsigned char h[BS_HELLO_LEN + 64] = {0}, bad[16], rnd[512];
    int port = a->root_port, first = a->nconns, idle, fd, i;
    conn_t *slow;
    int64_t until = now_ms() + 30000;

    /* The rendezvous is open once rank 0 accepts. */
    while ((fd = connect_port(port)) < 0 && now_ms() < until)
        sleep_ms(20);
    if (fd < 0) {
        attack_fail(a, "the rendezvous on 127.0.0.1:%d never opened", port);
        return;
    }
    /* that first connection says nothing and closes */
    if (track(a, fd, 0, "rendezvous: first contact, nothing, then closed",
              "closed without sending anything", NULL))
        shutdown(fd, SHUT_WR);
    memcpy(bad, a->token, 16);
    bad[3] ^= 0x10;

    /* silent from now on: rank 0 drops it when idle (5 s) */
    idle = a->nconns;
    hostile(a, port, 0, "rendezvous: silent connection", NULL, 0, 0, "sent nothing for", NULL);

    for (i = 0; i < 3; i++) {
        random_bytes(a, rnd, sizeof(rnd));
        rnd[0] = 'X'; /* not the magic by chance */
        hostile(a, port, 0, "rendezvous: random bytes", rnd, 64 + (size_t)i * 200, 0, garbage,
                NULL);
    }
    memcpy(rnd, "RDTH", 4);
    put_be32(rnd + 4, 1);
    hostile(a, port, 0, "rendezvous: magic, version 1, then random", rnd, BS_HELLO_LEN + 100, 0,
            "wrong job token", NULL);
    bs_hello(h, 1, bad, NRANKS, 1, 5);
    hostile(a, port, 0, "rendezvous: wrong token", h, BS_HELLO_LEN, 0, "wrong job token", NULL);
    bs_hello(h, 2, a->token, NRANKS, 1, 5);
    hostile(a, port, 0, "rendezvous: version 2, right token", h, BS_HELLO_LEN, 0,
            "protocol version 2", NULL);
    bs_hello(h, 0xffffffffu, a->token, NRANKS, 1, 5);
    hostile(a, port, 0, "rendezvous: version 2^32-1", h, BS_HELLO_LEN, 0,
            "protocol version 4294967295", NULL);
    bs_hello(h, 1, bad, NRANKS, 1, (uint64_t)1 << 62);
    hostile(a, port, 0, "rendezvous: blob length 2^62", h, BS_HELLO_LEN + 64, 0, "wrong job token",
            NULL);
    bs_hello(h, 1, bad, 0xffffffffu, 0xffffffffu, UINT64_MAX);
    hostile(a, port, 0, "rendezvous: size, rank, length at their maximum", h, BS_HELLO_LEN, 0,
            "wrong job token", NULL);
    bs_hello(h, 1, a->token, NRANKS, 1, 5);
    hostile(a, port, 0, "rendezvous: 20 bytes of a good hello, then closed", h, 20, 1,
            "truncated hello: closed after 20 of 40", NULL);
    hostile(a, port, 0, "rendezvous: 3 bytes, then closed", "RDT", 3, 1,
            "truncated hello: closed after 3 of 40", NULL);
    hostile(a, port, 0, "rendezvous: nothing, then closed", NULL, 0, 1,
            "closed without sending anything", NULL);
    hostile(a, port, 0, "rendezvous: HTTP", "GET / HTTP/1.0\r\n\r\n", 18, 0, garbage, NULL);

    /* one byte at a time: judged again after every byte, dropped once the token is seen */
    bs_hello(h, 1, bad, NRANKS, 1, 5);
    slow = hostile(a, port, 0, "rendezvous: wrong token, one byte every 20 ms", NULL, 0, 0,
                   "wrong job token", NULL);
    for (i = 0; slow && i < BS_HELLO_LEN; i++) {
        (void)send(slow->fd, h + i, 1, MSG_NOSIGNAL);
        sleep_ms(20);
    }
    wait_closed(a, idle + 1, 5000);

    /* a byte every 600 ms, the right magic first: never idle, but its header would take 24 s;
     * rank 0 allows 10 s */
    bs_hello(trickle, 1, bad, NRANKS, 1, 5);
    slow = hostile(a, port, 0, "rendezvous: wrong token, one byte every 600 ms", NULL, 0, 0,
                   "too slow: ", NULL);
    if (slow) {
        slow->trickle_ms = 600;
        slow->tx = trickle;
        slow->txlen = BS_HELLO_LEN;
    }

    /* a flood: more than the 256 spare connections rank 0 holds at once */
    for (i = 0; i < 300 && !a->fail[0]; i++) {
        random_bytes(a, rnd, 8);
        rnd[0] = 'Y';
        hostile(a, port, 0, "rendezvous: flood of 300, 8 random bytes each", rnd, 8, 0, garbage,
                NULL);
    }
    wait_closed(a, first, 20000); /* the silent one goes after 5 s, the trickler after 10 */
    a->nrendezvous = a->nconns - first;
}

/* ---- the data ports ------------------------------------------------------------------------ */

/* The socket inodes among /proc/PID/fd; their number. */
static int socket_inodes(int pid, unsigned long *inodes, int max)
{
    char path[64], target[64];
    int ninodes = 0;
    struct dirent *d;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    dir = opendir(path);
    if (!dir)
        return 0;
    while ((d = readdir(dir)) != NULL && ninodes < max) {
        char link[64 + sizeof(d->d_name)];
        ssize_t n;
        snprintf(link, sizeof(link), "%s/%s", path, d->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (sscanf(target, "socket:[%lu]", &inodes[ninodes]) == 1)
            ninodes++;
    }
    closedir(dir);
    return ninodes;
}

/* The port of rank @p pid's one socket on 127.0.0.1 that /proc/PID/net/@p proto ("tcp" or
 * "udp") lists in state @p state (0A: a TCP listener; 07: an unconnected UDP socket) among its
 * socket inodes (/proc/PID/fd). -1 unless there is exactly one. For UDP, *rxq and *drops get its
 * receive queue (bytes) and the datagrams the kernel dropped on it (a full queue). */
static int proc_port(int pid, const char *proto, unsigned state, unsigned long *rxq,
                     unsigned long *drops)
{
    char path[64], line[512];
    unsigned long inodes[256];
    int ninodes = socket_inodes(pid, inodes, 256), port = -1, found = 0, i;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, proto);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned addr, lport, st;
        unsigned long inode, rq = 0, dr = 0;
        int k = sscanf(line, " %*d: %x:%x %*x:%*x %x %*x:%lx %*x:%*x %*x %*u %*u %lu %*d %*s %lu",
                       &addr, &lport, &st, &rq, &inode, &dr);
        if (k < 5 || st != state)
            continue;
        for (i = 0; i < ninodes; i++) {
            if (inodes[i] == inode && addr == htonl(INADDR_LOOPBACK)) {
                port = (int)lport;
                found++;
                if (rxq)
                    *rxq = rq;
                if (drops)
                    *drops = k == 6 ? dr : 0;
            }
        }
    }
    fclose(f);
    return found == 1 ? port : -1;
}

static int listening_port(int pid)
{
    return proc_port(pid, "tcp", 0x0A, NULL, NULL);
}

static void attack_data_port(attack_t *a, int r, int connected)
{
    static const char *const not_hs = "not an rdmatrain tcp handshake";
    static const char *const timeout = "no valid handshake within";
    unsigned char h[TCP_HS_LEN + TCP_HDR_LEN + 1024] = {0}, bad[16], rnd[256];
    int port = a->data_port[r];

    memcpy(bad, a->token, 16);
    bad[11] ^= 0x01;
    random_bytes(a, rnd, sizeof(rnd));
    rnd[0] = 'Z';
    hostile(a, port, r, "data: 256 random bytes", rnd, sizeof(rnd), 0, not_hs, NULL);
    rdt_wire_put_u32(rnd, TCP_HS_MAGIC);
    hostile(a, port, r, "data: magic, then random", rnd, TCP_HS_LEN, 0, "protocol version", NULL);
    tcp_hs(h, 1, bad, a->comm_id, 0, NRANKS);
    hostile(a, port, r, "data: wrong token", h, TCP_HS_LEN, 0, "wrong job token", NULL);
    tcp_hs(h, 7, a->token, a->comm_id, 0, NRANKS);
    hostile(a, port, r, "data: version 7", h, TCP_HS_LEN, 0, "protocol version 7", NULL);
    tcp_hs(h, 1, a->token, a->comm_id ^ 1, 0, NRANKS);
    hostile(a, port, r, "data: job token, another communicator", h, TCP_HS_LEN, 0,
            "communicator 0x", NULL);
    tcp_hs(h, 1, a->token, a->comm_id, 0, 0xffffffffu);
    hostile(a, port, r, "data: job token, 2^32-1 ranks", h, TCP_HS_LEN, 0,
            "a communicator of 4294967295 ranks", NULL);
    tcp_hs(h, 1, a->token, a->comm_id, 0xffffffffu, NRANKS);
    hostile(a, port, r, "data: job token, rank 2^32-1", h, TCP_HS_LEN, 0, "claims rank 4294967295",
            NULL);
    tcp_hs(h, 1, a->token, a->comm_id, (uint32_t)r, NRANKS);
    hostile(a, port, r, "data: job token, claims the acceptor's own rank", h, TCP_HS_LEN, 0,
            "but only ranks below", NULL);
    if (connected && r > 0) {
        tcp_hs(h, 1, a->token, a->comm_id, 0, NRANKS);
        tcp_msg_hdr(h + TCP_HS_LEN, 0, 8);
        hostile(a, port, r, "data: job token, claims connected rank 0, then a message", h,
                TCP_HS_LEN + TCP_HDR_LEN + 8, 0, "already connected", NULL);
    }
    tcp_msg_hdr(h, 0x1234, (uint64_t)1 << 62);
    hostile(a, port, r, "data: message header of 2^62 bytes instead of a handshake", h,
            TCP_HDR_LEN + TCP_HS_LEN, 0, not_hs, NULL);
    tcp_hs(h, 1, bad, a->comm_id, 0, NRANKS);
    tcp_msg_hdr(h + TCP_HS_LEN, 0x1234, (uint64_t)1 << 62);
    random_bytes(a, h + TCP_HS_LEN + TCP_HDR_LEN, 1024);
    hostile(a, port, r, "data: wrong token, then a 2^62-byte message", h, sizeof(h), 0,
            "wrong job token", NULL);
    tcp_hs(h, 1, a->token, a->comm_id, 0, NRANKS);
    hostile(a, port, r, "data: 20 bytes of a handshake, then closed", h, 20, 1,
            "closed before completing its handshake", NULL);
    hostile(a, port, r, "data: 20 bytes of a handshake, then silence", h, 20, 0, timeout, NULL);
    hostile(a, port, r, "data: silent connection", NULL, 0, 0, timeout, NULL);
}

/*
 * @p serviced: the ranks run their TCP transport's progress, so every hostile connection must be
 * closed with a warning (0: only check that the job is not disturbed, and count how many were
 * answered).
 */
static void attack_data(attack_t *a, int connected, int serviced)
{
    int first = a->nconns, r, i;

    for (r = 0; r < a->nranks; r++) {
        a->data_port[r] = listening_port(a->pids[r]);
        if (a->data_port[r] < 0) {
            attack_fail(a, "rank %d (pid %d): no single listening socket on 127.0.0.1 in /proc", r,
                        a->pids[r]);
            return;
        }
    }
    for (r = 0; r < a->nranks && !a->fail[0]; r++)
        attack_data_port(a, r, connected);
    if (serviced)
        wait_closed(a, first, 10000);

    /* floods: more connections than the 64 handshakes a rank holds pending */
    for (r = 0; r < a->nranks && !a->fail[0]; r++)
        for (i = 0; i < 100 && !a->fail[0]; i++)
            hostile(a, a->data_port[r], r, "data: flood of 100 silent connections", NULL, 0, 0,
                    "no valid handshake within", "connections are already waiting");
    a->ndata = a->nconns - first;
    if (serviced) {
        wait_closed(a, first, 15000);
        return;
    }
    sleep_ms(4000); /* longer than a handshake may take: they would be closed by now */
    for (i = first; i < a->nconns; i++) {
        conn_t *c = &a->conns[i];
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
        c->unserviced = 1;
        if (poll(&pfd, 1, 0) == 1)
            a->nanswered++;
    }
}

/* ---- the status channel -------------------------------------------------------------------- */

/* A status datagram as engine/ctl_wire.c lays one out; @p textlen is what the header says,
 * @p nbytes the bytes of @p text actually sent. Returns the datagram's length. */
static size_t ctl_dgram(unsigned char *b, unsigned type, unsigned state, uint64_t comm_id,
                        const unsigned char *token, uint32_t from, uint32_t to, uint32_t nwait,
                        const uint32_t *wait, uint32_t textlen, const char *text, size_t nbytes)
{
    uint32_t i;

    memset(b, 0, CTL_HDR_LEN);
    rdt_wire_put_u32(b, CTL_MAGIC);
    b[4] = 1;
    b[5] = (unsigned char)type;
    b[6] = (unsigned char)state;
    rdt_wire_put_u64(b + 8, comm_id);
    memcpy(b + 16, token, 16);
    rdt_wire_put_u32(b + 32, from);
    rdt_wire_put_u32(b + 36, to);
    rdt_wire_put_u32(b + 40, 0x1234);
    b[44] = (unsigned char)nwait;
    b[45] = (unsigned char)(nwait >> 8);
    b[46] = (unsigned char)textlen;
    b[47] = (unsigned char)(textlen >> 8);
    for (i = 0; i < nwait && i < CTL_MAX_WAIT; i++)
        rdt_wire_put_u32(b + 48 + 4 * i, wait[i]);
    memcpy(b + CTL_HDR_LEN, text, nbytes);
    return CTL_HDR_LEN + nbytes;
}

static void dgram(attack_t *a, int fd, int r, const void *buf, size_t len, int *counter)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)a->ctl_port[r]);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)len) {
        attack_fail(a, "status channel: cannot send %zu bytes to 127.0.0.1:%d: %s", len,
                    a->ctl_port[r], strerror(errno));
        return;
    }
    a->ndgrams++;
    (*counter)++;
}

/* The lines of rank @p r's log so far that warn of a dropped datagram from our UDP port; with
 * @p why, only those that also give that reason. */
static int ctl_warnings(const attack_t *a, int r, const char *why)
{
    char path[128], line[2048], from[96];
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/rank%d.log", a->job->logdir, r);
    snprintf(from, sizeof(from),
             "dropped a datagram from 127.0.0.1:%d on the status channel: ", a->udp_port);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, " warn ") && strstr(line, from) && (!why || strstr(line, why)))
            n++;
    fclose(f);
    return n;
}

/* Until every rank's status channel has an empty receive queue (and, with @p warned, a warning
 * in its log), for at most @p ms; 1 if so. */
static int ctl_drained(attack_t *a, int warned, int ms)
{
    int64_t until = now_ms() + ms;
    int r;

    for (;;) {
        int drained = 1;
        for (r = 0; r < a->nranks; r++) {
            unsigned long rxq = 1;
            if (proc_port(a->pids[r], "udp", 0x07, &rxq, &a->ctl_drops[r]) < 0 || rxq != 0 ||
                (warned && ctl_warnings(a, r, NULL) == 0))
                drained = 0;
        }
        if (drained || now_ms() > until)
            return drained;
        sleep_ms(10);
    }
}

/* Hostile datagrams to every rank's status channel (engine/ctl.c) while the job runs. The job's
 * token is known here, so besides strangers this sends datagrams with the token that are wrong
 * in exactly one field (any of them accepted as a "gave up" would fail the job), and a few
 * valid queries and answers, which must not disturb it. Never a valid "gave up". */
static void attack_status(attack_t *a)
{
    const unsigned char *tok = a->token;
    unsigned char b[1600], bad[16];
    char text[1600];
    uint32_t w[CTL_MAX_WAIT + 1];
    struct sockaddr_in me;
    socklen_t melen = sizeof(me);
    uint64_t id = a->comm_id;
    int fd, r, i, n = a->nranks;

    for (r = 0; r < n; r++) {
        a->ctl_port[r] = proc_port(a->pids[r], "udp", 0x07, NULL, NULL);
        if (a->ctl_port[r] < 0) {
            attack_fail(a, "rank %d (pid %d): no single UDP socket on 127.0.0.1 in /proc", r,
                        a->pids[r]);
            return;
        }
    }
    memset(&me, 0, sizeof(me));
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
        getsockname(fd, (struct sockaddr *)&me, &melen) != 0) {
        attack_fail(a, "status channel: no UDP socket of our own: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    a->udp_port = ntohs(me.sin_port);
    memcpy(bad, tok, 16);
    bad[7] ^= 0x40;
    memset(text, 'x', sizeof(text));
    /* every rank in turn arrives late: the others read their channels while they wait */
    if (write(a->job->stop[1], "w", 1) != 1)
        attack_fail(a, "cannot slow the job down");

    for (r = 0; r < n && !a->fail[0]; r++) {
        uint32_t peer = (uint32_t)((r + 1) % n), me_r = (uint32_t)r;
        size_t k;

        /* With the job's token and valid: a query (answered to rank peer, which asked nothing)
         * and an unasked-for answer. They come first: were either dropped, the one warning
         * would give its reason and not the stranger's below. */
        for (i = 0; i < 3; i++)
            dgram(a, fd, r, b, ctl_dgram(b, 1, 0, id, tok, peer, me_r, 0, w, 0, "", 0), &a->nvalid);
        w[0] = me_r;
        dgram(a, fd, r, b, ctl_dgram(b, 2, 1, id, tok, peer, me_r, 1, w, 14, "allreduce #1 (", 14),
              &a->nvalid);

        /* a stranger: a well-formed query, and a "gave up", without the token */
        dgram(a, fd, r, b, ctl_dgram(b, 1, 0, id, bad, peer, me_r, 0, w, 0, "", 0), &a->ncrafted);
        k = ctl_dgram(b, 3, 0, id, bad, peer, me_r, 0, w, 29, "rank 1 (host x) gave up: lies", 29);
        dgram(a, fd, r, b, k, &a->ncrafted);
        /* with the token, one field wrong: each of these would be a "gave up" otherwise */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id ^ 1, tok, peer, me_r, 0, w, 4, "lies", 4),
              &a->ncrafted); /* another communicator */
        k = ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 4, "lies", 4);
        dgram(a, fd, r, b, 60, &a->ncrafted); /* a truncated header */
        dgram(a, fd, r, b, 0, &a->ncrafted);  /* nothing at all */
        b[7] = 1;
        dgram(a, fd, r, b, k, &a->ncrafted); /* the reserved byte */
        b[7] = 0;
        b[4] = 2;
        dgram(a, fd, r, b, k, &a->ncrafted); /* version 2 */
        b[4] = 1;
        b[5] = 4;
        dgram(a, fd, r, b, k, &a->ncrafted); /* type 4 */
        b[5] = 3;
        b[6] = 2;
        dgram(a, fd, r, b, k, &a->ncrafted); /* state 2 */
        b[6] = 0;
        rdt_wire_put_u32(b, CTL_MAGIC ^ 0x20);
        dgram(a, fd, r, b, k, &a->ncrafted); /* another magic */
        dgram(
            a, fd, r, b,
            ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, CTL_TEXT_MAX + 1, text, CTL_TEXT_MAX + 1),
            &a->ncrafted); /* a text of 901 bytes */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 0xffff, text, 100),
              &a->ncrafted); /* a text length of 65535 */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 20, text, 10),
              &a->ncrafted); /* a text cut short */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 10, text, 20),
              &a->ncrafted); /* more text than the header says */
        dgram(a, fd, r, b,
              ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, CTL_TEXT_MAX, text,
                        sizeof(b) - CTL_HDR_LEN),
              &a->ncrafted); /* 1600 bytes: the rank reads 1013 of them */
        dgram(a, fd, r, b,
              ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 14, "gave up\n\033[2J\a!!", 14),
              &a->ncrafted); /* unprintable text */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, peer, me_r, 0, w, 5, "ab\0cd", 5),
              &a->ncrafted); /* a NUL in the text */
        w[0] = 0;
        w[1] = (uint32_t)n;
        dgram(a, fd, r, b, ctl_dgram(b, 2, 1, id, tok, peer, me_r, 2, w, 0, "", 0),
              &a->ncrafted); /* a waited rank out of range */
        w[1] = 0xffffffffu;
        dgram(a, fd, r, b, ctl_dgram(b, 2, 1, id, tok, peer, me_r, 2, w, 0, "", 0),
              &a->ncrafted); /* waited rank 2^32-1 */
        memset(w, 0, sizeof(w));
        dgram(a, fd, r, b, ctl_dgram(b, 2, 1, id, tok, peer, me_r, CTL_MAX_WAIT + 1, w, 0, "", 0),
              &a->ncrafted); /* 17 waited ranks */
        dgram(a, fd, r, b, ctl_dgram(b, 2, 1, id, tok, peer, me_r, 0x0100, w, 0, "", 0),
              &a->ncrafted); /* 256 waited ranks */
        k = ctl_dgram(b, 2, 1, id, tok, peer, me_r, 1, w, 0, "", 0);
        rdt_wire_put_u32(b + 48 + 4 * 5, 1);
        dgram(a, fd, r, b, k, &a->ncrafted); /* a used-looking unused wait slot */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, me_r, me_r, 0, w, 4, "lies", 4),
              &a->ncrafted); /* from itself */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, (uint32_t)n, me_r, 0, w, 4, "lies", 4),
              &a->ncrafted); /* from a rank out of range */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, 0xffffffffu, me_r, 0, w, 4, "lies", 4),
              &a->ncrafted); /* from rank 2^32-1 */
        dgram(a, fd, r, b,
              ctl_dgram(b, 3, 0, id, tok, peer, (me_r + 2) % (uint32_t)n, 0, w, 4, "lies", 4),
              &a->ncrafted); /* addressed to another rank */
        dgram(a, fd, r, b, ctl_dgram(b, 3, 0, id, tok, peer, 0xffffffffu, 0, w, 4, "lies", 4),
              &a->ncrafted); /* addressed to rank 2^32-1 */
        (void)ctl_drained(a, 0, 2000);
    }
    /* random bytes of random lengths (0..1500); every third behind the job's magic, version,
     * communicator and token, so that the fields after them are reached */
    for (i = 0; i < 150 * n && !a->fail[0]; i++) {
        size_t len = (size_t)(rdt_test_rand(&a->rng) % 1501);
        r = i % n;
        random_bytes(a, b, len);
        if (i % 3 == 2 && len >= 32) {
            rdt_wire_put_u32(b, CTL_MAGIC);
            b[4] = 1;
            rdt_wire_put_u64(b + 8, id);
            memcpy(b + 16, tok, 16);
            b[7] |= 0x01; /* never valid, whatever the rest says */
        } else if (len >= 1) {
            b[0] = 'X'; /* not the magic by chance */
        }
        dgram(a, fd, r, b, len, &a->nrandom);
        if (i % (10 * n) == 10 * n - 1)
            (void)ctl_drained(a, 0, 2000); /* the kernel queues only so many */
    }
    close(fd);

    /* until every rank has read its queue and warned */
    (void)ctl_drained(a, 1, 20000);
    if (write(a->job->stop[1], "f", 1) != 1)
        attack_fail(a, "cannot speed the job up again");
    for (r = 0; r < n; r++) {
        unsigned long rxq = 1;
        if (proc_port(a->pids[r], "udp", 0x07, &rxq, &a->ctl_drops[r]) < 0 || rxq != 0)
            attack_fail(a, "rank %d left %lu bytes unread on its status channel for 20 s", r, rxq);
    }
}

/* ---- the hook: the whole attack, then stop the job ----------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void attack_hook(int nranks, const int *pids, void *arg)
{
    attack_t *a = arg;
    char line[256], root[128], tok[64];
    const char *colon;
    int warm = 0, forming = 0, fd, i, r;
    void (*old_pipe)(int);
    long it;

    line[0] = '\0';
    a->nranks = nranks;
    a->pids = pids;
    /* a rank that died closes its pipes: a failure to report, not a SIGPIPE of the test */
    old_pipe = signal(SIGPIPE, SIG_IGN);
    close(a->job->report[1]);
    close(a->job->go[0]);
    close(a->job->stop[0]);
    if (read_report(a->job->report[0], line, sizeof(line), 30000) != 0 ||
        sscanf(line, "root %127s %63s", root, tok) != 2 || !(colon = strrchr(root, ':')) ||
        strlen(tok) != 32) {
        attack_fail(a, "no rendezvous address from rank 0");
        goto release;
    }
    a->root_port = atoi(colon + 1);
    for (i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1)
            break;
        a->token[i] = (unsigned char)v;
    }
    /* the communicator id as engine/comm.c derives it for the world */
    a->comm_id = fnv1a(fnv1a(0xcbf29ce484222325ULL, a->token, 16), "world", 5);

    attack_rendezvous(a);

    /* Silent connections, more than rank 0 holds (256 beyond the job's), opened just before
     * the honest ranks come: their hellos wait behind them in the kernel's accept queue until
     * rank 0 drops idle ones. The job must form regardless; what is left when it has formed is
     * dropped then. */
    forming = a->nconns;
    for (i = 0; i < 300 && !a->fail[0]; i++)
        hostile(a, a->root_port, 0, "rendezvous: 300 silent while the job forms", NULL, 0, 0,
                "when all ranks had arrived", "sent nothing for");
release:
    for (i = 1; i < nranks; i++)
        if (write(a->job->go[1], "g", 1) != 1)
            attack_fail(a, "cannot release rank %d", i);
    while (!a->fail[0] && warm < nranks) {
        if (read_report(a->job->report[0], line, sizeof(line), 60000) != 0 ||
            sscanf(line, "warm %d", &r) != 1) {
            attack_fail(a, "the job did not start its collectives (got '%s')", line);
            break;
        }
        warm++;
    }
    if (!a->fail[0]) {
        wait_closed(a, forming, 10000);
        a->nrendezvous += a->nconns - forming;
        /* Nothing listens on the rendezvous port once the job has formed. */
        fd = connect_port(a->root_port);
        if (fd >= 0) {
            close(fd);
            attack_fail(a, "the rendezvous port 127.0.0.1:%d still accepts while the job runs",
                        a->root_port);
        }
    }
    if (!a->fail[0])
        attack_data(a, strcmp(a->job->transport, "tcp") == 0, 1);
    if (!a->fail[0])
        attack_status(a);
    sleep_ms(300); /* a few more iterations after the last attack */
    if (write(a->job->stop[1], "s", 1) != 1)
        attack_fail(a, "cannot stop the job");
    for (i = 0; i < nranks; i++) {
        if (read_report(a->job->report[0], line, sizeof(line), 60000) != 0 ||
            sscanf(line, "done %d %ld", &r, &it) != 2 || r < 0 || r >= nranks) {
            attack_fail(a, "the job did not finish (%d of %d ranks reported)", i, nranks);
            break;
        }
        a->done[r] = 1;
        a->iters[r] = it;
    }
    for (i = 0; i < a->nconns; i++)
        if (a->conns[i].fd >= 0)
            close(a->conns[i].fd);
    signal(SIGPIPE, old_pipe);
}

/* ---- the logs ------------------------------------------------------------------------------ */

/* Every hostile connection has its own warning in its rank's log: "from 127.0.0.1:PORT: " and
 * one of the reasons expected for it. Each warning line counts for one connection only. */
static void check_logs(attack_t *a)
{
    char *text[NRANKS] = {NULL}, path[128];
    int r, i, missing = 0;

    for (r = 0; r < a->nranks; r++) {
        FILE *f;
        long n;
        snprintf(path, sizeof(path), "%s/rank%d.log", a->job->logdir, r);
        f = fopen(path, "r");
        if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
            !(text[r] = calloc(1, (size_t)n + 1)) || fread(text[r], 1, (size_t)n, f) != (size_t)n) {
            attack_fail(a, "cannot read %s", path);
            if (f)
                fclose(f);
            goto out;
        }
        fclose(f);
    }
    for (i = 0; i < a->nconns; i++) {
        conn_t *c = &a->conns[i];
        char from[48];
        char *s = text[c->target];
        int k;

        if (c->unserviced)
            continue;
        snprintf(from, sizeof(from), "from 127.0.0.1:%d: ", c->port);
        while (!c->logged && (s = strstr(s, from)) != NULL) {
            char *bol = s, *eol = strchr(s, '\n');
            while (bol > text[c->target] && bol[-1] != '\n')
                bol--;
            if (eol)
                *eol = '\0';
            for (k = 0; k < MAX_WHY && !c->logged; k++)
                if (c->why[k] && strstr(s, c->why[k]) && bol[0] != '#')
                    c->logged = 1;
            if (c->logged)
                bol[0] = '#'; /* used */
            if (eol)
                *eol = '\n';
            s += strlen(from);
        }
        if (!c->logged && missing++ < 5)
            attack_fail(a, "%s: no warning in rank %d's log for 127.0.0.1:%d saying '%s'%s%s",
                        c->kind, c->target, c->port, c->why[0], c->why[1] ? " or " : "",
                        c->why[1] ? c->why[1] : "");
    }
    /* the status channel: one warning per rank, for the first datagram it dropped, the
     * stranger's query (the valid ones before it were not dropped) */
    for (r = 0; r < a->nranks && a->udp_port; r++) {
        int all = ctl_warnings(a, r, NULL), first = ctl_warnings(a, r, CTL_STRANGER);
        a->ctl_warned[r] = all;
        if (all != 1 || first != 1)
            attack_fail(a,
                        "rank %d's log has %d warnings of datagrams dropped from "
                        "127.0.0.1:%d on the status channel (%d saying '%s'): want one, saying it",
                        r, all, a->udp_port, first, CTL_STRANGER);
    }
out:
    if (a->fail[0] || getenv("RDT_TEST_SHOW_LOG"))
        for (r = 0; r < a->nranks; r++)
            if (text[r])
                fprintf(stderr, "---- rank %d's log (%zu bytes; '#' marks matched lines)\n%.20000s",
                        r, strlen(text[r]), text[r]);
    for (r = 0; r < a->nranks; r++)
        free(text[r]);
}

static void run_attack(const char *transport)
{
    static attack_t a; /* large */
    job_t job;
    int statuses[NRANKS], rc, i, logged = 0, unserviced = 0;
    unsigned long drops = 0;
    struct rlimit rl;

    /* The floods hold a few hundred descriptors at once, here and in the ranks: lift a low
     * soft limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&a, 0, sizeof(a));
    memset(&job, 0, sizeof(job));
    job.transport = transport;
    snprintf(job.logdir, sizeof(job.logdir), "/tmp/rdt-hostile.XXXXXX");
    assert_non_null(mkdtemp(job.logdir));
    assert_int_equal(pipe(job.report), 0);
    assert_int_equal(pipe(job.go), 0);
    assert_int_equal(pipe(job.stop), 0);
    a.job = &job;
    a.rng = (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
    printf("test_hostile: transport %s, random seed %" PRIu64 "\n", transport, a.rng);

    rc = rdt_spawn_local_hook(NRANKS, rank_main, &job, SPAWN_TIMEOUT, statuses, attack_hook, &a);
    for (i = 0; i < NRANKS; i++) {
        if (statuses[i] != 0)
            attack_fail(&a, "rank %d exited with %d (see its log below)", i, statuses[i]);
    }
    if (rc != 0)
        attack_fail(&a, "the job failed (rdt_spawn_local_hook returned %d)", rc);
    check_logs(&a);
    for (i = 0; i < a.nconns; i++) {
        logged += a.conns[i].logged;
        unserviced += a.conns[i].unserviced;
    }
    printf("test_hostile: transport %s: %d hostile connections (%d to the rendezvous, %d to the "
           "data ports), %d closed by the rank with a warning",
           transport, a.nconns, a.nrendezvous, a.ndata, logged);
    if (unserviced)
        printf(", %d sent to idle TCP listeners (%d of them answered)", unserviced, a.nanswered);
    printf("; the job ran %ld iterations of allreduce, alltoall and broadcast%s\n", a.iters[0],
           rc == 0 ? ", all exact" : " and failed");
    for (i = 0; i < NRANKS; i++)
        drops += a.ctl_drops[i];
    printf("test_hostile: transport %s: hostile: %d datagrams to the status channel (%d crafted, "
           "%d random of 0..1500 bytes, %d valid ones with the job's token), %lu of them dropped "
           "by the kernel on a full queue; each rank warned once\n",
           transport, a.ndgrams, a.ncrafted, a.nrandom, a.nvalid, drops);

    close(job.report[0]);
    close(job.go[1]);
    close(job.stop[1]);
    for (i = 0; i < NRANKS; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/rank%d.log", job.logdir, i);
        unlink(path);
    }
    rmdir(job.logdir);
    if (a.fail[0])
        fail_msg("%s", a.fail);
    assert_int_equal(logged + unserviced, a.nconns);
    assert_true(a.nrendezvous >= 600 && a.ndata >= 300);
    assert_true(a.ncrafted >= 25 * NRANKS && a.nrandom >= 150 * NRANKS);
    for (i = 0; i < NRANKS; i++)
        assert_int_equal(a.ctl_warned[i], 1);
    for (i = 0; i < NRANKS; i++) {
        assert_true(a.done[i]);
        assert_int_equal(a.iters[i], a.iters[0]);
    }
    assert_true(a.iters[0] >= 1);
}

static void
test_hostile_connections_to_rendezvous_and_tcp_data_ports_leave_a_tcp_job_exact(void **state)
{
    (void)state;
    run_attack("tcp");
}

static void test_hostile_connections_leave_a_shared_memory_job_exact(void **state)
{
    (void)state;
    run_attack("auto");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_hostile_connections_to_rendezvous_and_tcp_data_ports_leave_a_tcp_job_exact),
        cmocka_unit_test(test_hostile_connections_leave_a_shared_memory_job_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
