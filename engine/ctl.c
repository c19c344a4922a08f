/* ctl.c - see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "comm.h"
#include "log.h"
#include "wire.h"

#define CTL_RETRY_S 0.1 /* a query not answered yet is sent again this often */
#define CTL_HEARD_WAIT_S 0.3 /* after another rank's last word, how long a wait may go on */

/* ------------------------------------------------------------------------------------------ */
/* The socket                                                                                   */
/* ------------------------------------------------------------------------------------------ */

void rdt_ctl_open(rdt_comm_t *comm, unsigned char *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    int fd;

    memset(addr, 0, RDT_ADDR_MAX);
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, comm->bind_ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, comm->bind_ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        sl = sizeof(*a6);
    } else {
        rdt_debug("ctl", "rank %d: '%s' is not a numeric address: no status channel", comm->rank,
                  comm->bind_ip);
        return;
    }
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rdt_warn("ctl", "rank %d: no status channel on %s (%s): a timeout will name only the "
                 "ranks this rank waits for directly", comm->rank, comm->bind_ip,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    comm->ctl_fd = fd;
    rdt_wire_sockaddr_pack((struct sockaddr *)&ss, addr);
}

void rdt_ctl_peers_set(rdt_comm_t *comm, const unsigned char *addrs, size_t stride)
{
    int i;

    if (comm->ctl_fd < 0)
        return;
    comm->ctl_peers = calloc((size_t)comm->nranks, RDT_WIRE_SOCKADDR_LEN);
    if (!comm->ctl_peers)
        return;
    for (i = 0; i < comm->nranks; i++)
        memcpy(comm->ctl_peers + (size_t)i * RDT_WIRE_SOCKADDR_LEN, addrs + (size_t)i * stride,
               RDT_WIRE_SOCKADDR_LEN);
}

void rdt_ctl_close(rdt_comm_t *comm)
{
    if (comm->ctl_fd >= 0)
        close(comm->ctl_fd);
    comm->ctl_fd = -1;
    free(comm->ctl_peers);
    comm->ctl_peers = NULL;
    free(comm->ctl_heard);
    comm->ctl_heard = NULL;
}

/* Send @p m to rank m->to at the address it published (never to where a datagram came from:
 * a forged source must not turn this rank into a reflector). */
static void ctl_send(rdt_comm_t *comm, const rdt_ctl_msg_t *m)
{
    unsigned char buf[RDT_CTL_MSG_MAX];
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t n;

    if (!comm->ctl_peers ||
        rdt_wire_sockaddr_unpack(comm->ctl_peers + (size_t)m->to * RDT_WIRE_SOCKADDR_LEN, &ss,
                                 &sl) != 0)
        return; /* that rank has no channel */
    n = rdt_ctl_pack(m, comm->id, comm->token, buf);
    (void)sendto(comm->ctl_fd, buf, n, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
}

/* What this rank is doing, as an answer to @p to. */
static void ctl_answer(rdt_comm_t *comm, int to, uint32_t nonce)
{
    rdt_ctl_msg_t m;

    memset(&m, 0, sizeof(m));
    m.type = RDT_CTL_ANSWER;
    m.from = comm->rank;
    m.to = to;
    m.nonce = nonce;
    m.nwait = rdt_exec_wait_state(comm, m.wait, RDT_CTL_MAX_WAIT, m.text, sizeof(m.text));
    m.state = m.nwait > 0 || m.text[0] ? RDT_CTL_WAITING : RDT_CTL_IDLE;
    ctl_send(comm, &m);
}

/* Read one datagram: 1 and *m for a valid one, 0 when none is left. Queries are answered
 * here; invalid datagrams are dropped (the first with a warning, then quietly). */
static int ctl_recv(rdt_comm_t *comm, rdt_ctl_msg_t *m)
{
    unsigned char buf[RDT_CTL_MSG_MAX + 1];
    char why[160], from[80];
    struct sockaddr_storage ss;
    socklen_t sl;
    ssize_t n;

    for (;;) {
        sl = sizeof(ss);
        n = recvfrom(comm->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        if (rdt_ctl_parse(buf, (size_t)n, comm->id, comm->token, comm->nranks, comm->rank, m,
                          why, sizeof(why)) != 0) {
            rdt_wire_sockaddr_str((struct sockaddr *)&ss, sl, from, sizeof(from));
            if (comm->ctl_dropped++ == 0)
                rdt_warn("ctl", "rank %d: dropped a datagram from %s on the status channel: %s "
                         "(later ones are logged at debug level)", comm->rank, from, why);
            else
                rdt_debug("ctl", "rank %d: dropped a datagram from %s: %s", comm->rank, from,
                          why);
            continue;
        }
        if (m->type == RDT_CTL_QUERY) {
            ctl_answer(comm, m->from, m->nonce);
            continue;
        }
        return 1;
    }
}

/* Keep rank m->from's last word (the first one heard). */
static void ctl_heard_gave_up(rdt_comm_t *comm, const rdt_ctl_msg_t *m)
{
    if (comm->ctl_heard)
        return;
    comm->ctl_heard = malloc(RDT_ERRMSG_LEN);
    if (!comm->ctl_heard)
        return;
    comm->ctl_heard_at = rdt_now();
    comm->ctl_heard_from = m->from;
    /* a sentence that already says who gave up first is passed on as it came */
    if (strncmp(m->text, "rank ", 5) == 0 && strstr(m->text, " gave up: "))
        snprintf(comm->ctl_heard, RDT_ERRMSG_LEN, "%s", m->text);
    else
        snprintf(comm->ctl_heard, RDT_ERRMSG_LEN, "rank %d (host %s) gave up: %s", m->from,
                 comm->hosts + (size_t)m->from * RDT_HOST_MAX, m->text);
}

void rdt_ctl_service(rdt_comm_t *comm)
{
    rdt_ctl_msg_t m;

    /* answers arriving here are late ones to an earlier search: nobody asked any more */
    while (comm->ctl_fd >= 0 && !comm->failed && ctl_recv(comm, &m))
        if (m.type == RDT_CTL_GAVE_UP)
            ctl_heard_gave_up(comm, &m);
    /*
     * A datagram is not ordered with the data: the rank that gave up may have sent, before it
     * did, the last messages this rank needs to finish its current operation, still in flight.
     * Peers connected to it get its transport's notice behind that data anyway; the channel is
     * for the others. So fail only if this rank is still waiting CTL_HEARD_WAIT_S later.
     */
    if (comm->ctl_heard && !comm->failed && rdt_now() - comm->ctl_heard_at >= CTL_HEARD_WAIT_S) {
        comm->ctl_second_hand = 1;
        rdt_comm_set_error(comm, RDT_ERR_PEER_FAILED, "%s", comm->ctl_heard);
        rdt_comm_fail(comm, RDT_ERR_PEER_FAILED);
    }
}

void rdt_ctl_gave_up(rdt_comm_t *comm)
{
    rdt_ctl_msg_t m;
    int q;

    if (comm->ctl_fd < 0 || comm->ctl_second_hand)
        return;
    memset(&m, 0, sizeof(m));
    m.type = RDT_CTL_GAVE_UP;
    m.from = comm->rank;
    snprintf(m.text, sizeof(m.text), "%.*s", RDT_CTL_TEXT_MAX, comm->error);
    for (q = 0; q < comm->nranks; q++) {
        if (q == comm->rank)
            continue;
        m.to = q;
        ctl_send(comm, &m);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Following the chain                                                                          */
/* ------------------------------------------------------------------------------------------ */

enum { K_UNKNOWN, K_ASKED, K_ANSWERED, K_GAVE_UP /* silent, but its last word was heard */ };

typedef struct search {
    rdt_comm_t *comm;
    unsigned char *known; /* per rank: K_* */
    int *parent;          /* per rank: who led us to it (BFS), -1 for this rank */
    rdt_ctl_msg_t *ans;   /* per rank: its answer */
    uint32_t nonce;
} search_t;

static void ask(search_t *s, int q, int parent)
{
    rdt_ctl_msg_t m;

    if (s->known[q] == K_UNKNOWN) {
        s->known[q] = K_ASKED;
        s->parent[q] = parent;
    }
    memset(&m, 0, sizeof(m));
    m.type = RDT_CTL_QUERY;
    m.from = s->comm->rank;
    m.to = q;
    m.nonce = s->nonce;
    ctl_send(s->comm, &m);
}

static size_t append(char *out, size_t len, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t append(char *out, size_t len, size_t n, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (n >= len)
        return n;
    va_start(ap, fmt);
    w = vsnprintf(out + n, len - n, fmt, ap);
    va_end(ap);
    return w < 0 ? n : n + (size_t)w < len ? n + (size_t)w : len - 1;
}

/* "rank 1 waits for rank 0, which waits for rank 3": the ranks between this one and @p q
 * (which must be at least two links away). */
static size_t chain_text(const search_t *s, int q, char *out, size_t len, size_t n)
{
    int path[64], k = 0, i;

    for (i = q; i >= 0 && k < 64; i = s->parent[i])
        path[k++] = i; /* path[0] = q ... path[k - 1] = this rank */
    if (k < 3)
        return n;
    n = append(out, len, n, "rank %d waits for rank %d", path[k - 2], path[k - 3]);
    for (i = k - 4; i >= 0; i--)
        n = append(out, len, n, ", which waits for rank %d", path[i]);
    return n;
}

void rdt_ctl_blame(rdt_comm_t *comm, double grace, char *out, size_t len)
{
    search_t s;
    int mine[RDT_CTL_MAX_WAIT], nmine, q, i, open, silent = 0, idle = 0, first = -1;
    int gave_up = -1;
    rdt_ctl_msg_t last_word;
    char said[RDT_ERRMSG_LEN + 64];
    char text[RDT_CTL_TEXT_MAX + 1];
    double t0 = rdt_now(), last = 0, now;
    size_t n = strlen(out);

    if (comm->ctl_fd < 0 || !comm->ctl_peers || comm->nranks < 3)
        return; /* two ranks: the one waited for is the one to blame */
    nmine = rdt_exec_wait_state(comm, mine, RDT_CTL_MAX_WAIT, text, sizeof(text));
    if (nmine <= 0)
        return;
    memset(&s, 0, sizeof(s));
    s.comm = comm;
    s.known = calloc((size_t)comm->nranks, 1);
    s.parent = malloc((size_t)comm->nranks * sizeof(int));
    s.ans = calloc((size_t)comm->nranks, sizeof(rdt_ctl_msg_t));
    s.nonce = ++comm->ctl_nonce;
    if (!s.known || !s.parent || !s.ans)
        goto out;
    s.known[comm->rank] = K_ANSWERED;
    s.parent[comm->rank] = -1;
    for (i = 0; i < nmine; i++)
        if (s.known[mine[i]] == K_UNKNOWN)
            ask(&s, mine[i], comm->rank);
    last = t0;
    for (;;) {
        rdt_ctl_msg_t m;
        struct pollfd pfd = {.fd = comm->ctl_fd, .events = POLLIN};

        while (ctl_recv(comm, &m)) {
            if (m.type == RDT_CTL_GAVE_UP && gave_up < 0) {
                gave_up = m.from; /* its sentence may already name the rank at the end */
                last_word = m;
            }
            if (s.known[m.from] != K_ASKED)
                continue; /* not asked, or already known */
            s.known[m.from] = K_ANSWERED;
            s.ans[m.from] = m;
            for (i = 0; i < m.nwait; i++)
                if (s.known[m.wait[i]] == K_UNKNOWN)
                    ask(&s, m.wait[i], m.from);
        }
        for (q = 0, open = 0; q < comm->nranks; q++)
            open += s.known[q] == K_ASKED;
        now = rdt_now();
        if (!open || now - t0 >= grace)
            break;
        if (now - last >= CTL_RETRY_S) {
            last = now;
            for (q = 0; q < comm->nranks; q++)
                if (s.known[q] == K_ASKED)
                    ask(&s, q, s.parent[q]);
        }
        (void)poll(&pfd, 1, 20);
    }

    /* A rank that gave up before it could answer is not "in no call": it left, and said why
     * (heard during this search, or while this rank was still waiting) */
    if (gave_up >= 0)
        snprintf(said, sizeof(said), "rank %d (host %s) gave up: %s", gave_up,
                 comm->hosts + (size_t)gave_up * RDT_HOST_MAX, last_word.text);
    else if (comm->ctl_heard && comm->ctl_heard_from >= 0 && comm->ctl_heard_from < comm->nranks) {
        gave_up = comm->ctl_heard_from;
        snprintf(said, sizeof(said), "%s", comm->ctl_heard);
    }
    if (gave_up >= 0 && s.known[gave_up] == K_ASKED)
        s.known[gave_up] = K_GAVE_UP;
    for (q = 0; q < comm->nranks; q++) {
        if (s.known[q] == K_ASKED) {
            silent++;
            if (first < 0)
                first = q;
        } else if (q != comm->rank && s.known[q] == K_ANSWERED &&
                   s.ans[q].type == RDT_CTL_ANSWER && s.ans[q].state == RDT_CTL_IDLE) {
            idle++;
        }
    }
    if (silent) {
        n = append(out, len, n, "; ");
        if (s.parent[first] != comm->rank) {
            n = chain_text(&s, first, out, len, n);
            n = append(out, len, n, "; ");
        }
        n = append(out, len, n, "%s", silent > 1 ? "ranks" : "rank");
        for (q = 0, i = 0; q < comm->nranks; q++)
            if (s.known[q] == K_ASKED)
                n = append(out, len, n, "%s %d (host %s)", i++ ? "," : "", q,
                           comm->hosts + (size_t)q * RDT_HOST_MAX);
        n = append(out, len, n,
                   " did not answer within %g s: %s in no call on this communicator (stopped, "
                   "stuck outside the library, or blocked in another operation)",
                   grace, silent > 1 ? "they are" : "it is");
    } else if (gave_up >= 0) {
        n = append(out, len, n, "; ");
        if (s.known[gave_up] == K_GAVE_UP && s.parent[gave_up] != comm->rank) {
            n = chain_text(&s, gave_up, out, len, n);
            n = append(out, len, n, "; ");
        }
        n = append(out, len, n, "meanwhile %s", said);
    } else if (idle) {
        n = append(out, len, n, "; rank");
        for (q = 0, i = 0; q < comm->nranks; q++)
            if (q != comm->rank && s.known[q] == K_ANSWERED &&
                s.ans[q].type == RDT_CTL_ANSWER && s.ans[q].state == RDT_CTL_IDLE)
                n = append(out, len, n, "%s %d", i++ ? "," : "", q);
        n = append(out, len, n, " answered with no operation in progress on this communicator");
    } else {
        n = append(out, len, n,
                   "; every rank it waits for, directly or not, is waiting as well (a cycle: "
                   "did the ranks issue collectives in different orders? RDT_CHECK=1 compares "
                   "them)");
    }
out:
    free(s.known);
    free(s.parent);
    free(s.ans);
}
