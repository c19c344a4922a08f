/*
 * verbs_xchg.c - the raw-verbs floor of a 2-rank exchange, the yardstick beside ib_write_lat in
 * softroce-bench.sh. ib_write_lat reports half a ping-pong round trip: one write in flight at a
 * time. A 2-rank allreduce is instead one simultaneous exchange: both sides write at once and
 * each waits for the other's data. This program does exactly that with nothing else around it,
 * so the engine's cost over verbs is the allreduce's time over this one, and what the device
 * itself charges for an exchange is this one over ib_write_lat's.
 *
 *   verbs_xchg [-s BYTES] [-n ITERS] [-r BATCHES] [-d DEV] [-x GID_INDEX]
 *
 * Two processes (a fork), pinned to the first two allowed CPUs, one RC queue pair each on port 1
 * of DEV (default: the first device), connected to each other through pipes. Each iteration both
 * post one signaled RDMA write with immediate of BYTES (default 8; inline when the QP takes it)
 * into the other's buffer, then poll their CQ until the peer's write of this iteration and their
 * own write's completion have arrived (counted cumulatively: the peer may run an iteration
 * ahead). Prints "xchg BYTES: median M us, min A, max B" over BATCHES (9) batches of ITERS (500)
 * iterations, time per iteration. GID: -x, else the first that is neither zero nor link-local
 * (RoCE v2 on rxe), else 0 (InfiniBand). Exit status 1 on any failure, with the reason; it
 * never waits longer than 120 s (alarm).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

#define XCHG_RECVS 64
#define XCHG_BUF 4096

typedef struct {
    uint32_t qpn, rkey;
    uint64_t addr;
    union ibv_gid gid;
} xchg_info_t;

typedef struct {
    size_t bytes;
    int iters, batches, gid_index;
    const char *dev;
} xchg_opts_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(int side, const char *what)
{
    fprintf(stderr, "verbs_xchg: side %d: %s%s%s\n", side, what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    return 1;
}

/* -x, else the first GID that is neither zero nor link-local (fe80::/10), else 0. */
static int pick_gid(struct ibv_context *ctx, int want, union ibv_gid *gid)
{
    int i;

    if (want >= 0)
        return ibv_query_gid(ctx, 1, want, gid) == 0 ? want : -1;
    for (i = 0; i < 16; i++) {
        static const uint8_t zero[16];
        if (ibv_query_gid(ctx, 1, i, gid) != 0)
            break;
        if (memcmp(gid->raw, zero, 16) != 0 &&
            !(gid->raw[0] == 0xfe && (gid->raw[1] & 0xc0) == 0x80))
            return i;
    }
    return ibv_query_gid(ctx, 1, 0, gid) == 0 ? 0 : -1;
}

static int connect_qp(struct ibv_qp *qp, const struct ibv_port_attr *port, int gid_index,
                      const xchg_info_t *peer)
{
    struct ibv_qp_attr a;

    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_INIT;
    a.port_num = 1;
    a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
    if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
        return -1;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = port->active_mtu;
    a.dest_qp_num = peer->qpn;
    a.max_dest_rd_atomic = 1;
    a.min_rnr_timer = 12;
    a.ah_attr.port_num = 1;
    if (port->link_layer == IBV_LINK_LAYER_ETHERNET) {
        a.ah_attr.is_global = 1;
        a.ah_attr.grh.dgid = peer->gid;
        a.ah_attr.grh.sgid_index = (uint8_t)gid_index;
        a.ah_attr.grh.hop_limit = 64;
    } else {
        a.ah_attr.dlid = port->lid; /* both ends are on this port */
    }
    if (ibv_modify_qp(qp, &a,
                      IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                          IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
        return -1;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_RTS;
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.max_rd_atomic = 1;
    return ibv_modify_qp(qp, &a,
                         IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                             IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

static int side_main(int side, int rfd, int wfd, const xchg_opts_t *o)
{
    struct ibv_device **list;
    struct ibv_context *ctx = NULL;
    struct ibv_port_attr port;
    struct ibv_pd *pd;
    struct ibv_cq *cq;
    struct ibv_mr *mr;
    struct ibv_qp *qp;
    struct ibv_qp_init_attr qa;
    struct ibv_sge rsge;
    struct ibv_recv_wr rwr, *rbad;
    xchg_info_t me, peer;
    unsigned char *buf;
    double *t;
    long sent = 0, got_send = 0, got_recv = 0;
    int n, i, b, gid_index;
    char sync = 'x';

    rdt_spawn_bind(side, 2);
    list = ibv_get_device_list(&n);
    for (i = 0; list && i < n && !ctx; i++)
        if (!o->dev || strcmp(ibv_get_device_name(list[i]), o->dev) == 0)
            ctx = ibv_open_device(list[i]);
    if (!ctx)
        return fail(side, o->dev ? "device not found or not opened" : "no RDMA device");
    ibv_free_device_list(list);
    if (ibv_query_port(ctx, 1, &port) != 0 || port.state != IBV_PORT_ACTIVE)
        return fail(side, "port 1 is not active");
    memset(&me, 0, sizeof(me));
    gid_index = pick_gid(ctx, o->gid_index, &me.gid);
    if (gid_index < 0)
        return fail(side, "no usable GID");
    pd = ibv_alloc_pd(ctx);
    cq = pd ? ibv_create_cq(ctx, 2 * XCHG_RECVS, NULL, NULL, 0) : NULL;
    buf = aligned_alloc(4096, 2 * XCHG_BUF);
    if (!cq || !buf)
        return fail(side, "protection domain, CQ or buffer");
    memset(buf, 0, 2 * XCHG_BUF);
    mr = ibv_reg_mr(pd, buf, 2 * XCHG_BUF, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!mr)
        return fail(side, "ibv_reg_mr (ulimit -l?)");
    memset(&qa, 0, sizeof(qa));
    qa.send_cq = cq;
    qa.recv_cq = cq;
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = XCHG_RECVS;
    qa.cap.max_recv_wr = XCHG_RECVS;
    qa.cap.max_send_sge = 1;
    qa.cap.max_recv_sge = 1;
    qa.cap.max_inline_data = (uint32_t)o->bytes;
    qp = ibv_create_qp(pd, &qa);
    if (!qp) { /* no inline of that size: copy from the registered buffer */
        qa.cap.max_inline_data = 0;
        qp = ibv_create_qp(pd, &qa);
    }
    if (!qp)
        return fail(side, "ibv_create_qp");
    me.qpn = qp->qp_num;
    me.rkey = mr->rkey;
    me.addr = (uint64_t)(uintptr_t)buf;
    if (write(wfd, &me, sizeof(me)) != sizeof(me) || read(rfd, &peer, sizeof(peer)) != sizeof(peer))
        return fail(side, "exchanging the QP records");
    if (connect_qp(qp, &port, gid_index, &peer) != 0)
        return fail(side, "bringing the QP to RTS");
    rsge = (struct ibv_sge){(uint64_t)(uintptr_t)(buf + XCHG_BUF), 0, mr->lkey};
    memset(&rwr, 0, sizeof(rwr));
    rwr.sg_list = &rsge;
    rwr.num_sge = 1;
    for (i = 0; i < XCHG_RECVS; i++)
        if (ibv_post_recv(qp, &rwr, &rbad) != 0)
            return fail(side, "ibv_post_recv");
    /* both QPs at RTS and receives posted before either side writes */
    if (write(wfd, &sync, 1) != 1 || read(rfd, &sync, 1) != 1)
        return fail(side, "the start signal");

    t = calloc((size_t)o->batches, sizeof(*t));
    if (!t)
        return fail(side, "out of memory");
    for (b = 0; b < o->batches; b++) {
        double t0 = now_s();
        for (i = 0; i < o->iters; i++) {
            struct ibv_sge s = {(uint64_t)(uintptr_t)buf, (uint32_t)o->bytes, mr->lkey};
            struct ibv_send_wr w, *bad;
            struct ibv_wc wc[8];

            memset(&w, 0, sizeof(w));
            w.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
            w.send_flags = IBV_SEND_SIGNALED |
                           (qa.cap.max_inline_data >= o->bytes ? IBV_SEND_INLINE : 0);
            w.imm_data = htonl((uint32_t)sent);
            w.sg_list = &s;
            w.num_sge = 1;
            w.wr.rdma.remote_addr = peer.addr;
            w.wr.rdma.rkey = peer.rkey;
            if (ibv_post_send(qp, &w, &bad) != 0)
                return fail(side, "ibv_post_send");
            sent++;
            while (got_recv < sent || got_send < sent) {
                int k = ibv_poll_cq(cq, 8, wc), j;
                if (k < 0)
                    return fail(side, "ibv_poll_cq");
                for (j = 0; j < k; j++) {
                    if (wc[j].status != IBV_WC_SUCCESS) {
                        errno = 0;
                        fprintf(stderr, "verbs_xchg: side %d: completion: %s\n", side,
                                ibv_wc_status_str(wc[j].status));
                        return 1;
                    }
                    if (wc[j].opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
                        got_recv++;
                        if (ibv_post_recv(qp, &rwr, &rbad) != 0)
                            return fail(side, "ibv_post_recv");
                    } else {
                        got_send++;
                    }
                }
            }
        }
        t[b] = (now_s() - t0) / o->iters * 1e6;
    }
    /* the peer may still wait for this side's last write's acknowledgement: meet before closing */
    if (write(wfd, &sync, 1) != 1 || read(rfd, &sync, 1) != 1)
        return fail(side, "the end signal");
    qsort(t, (size_t)o->batches, sizeof(*t), cmp_double);
    if (side == 0)
        printf("xchg %zu: median %.2f us, min %.2f, max %.2f (%d x %d iterations)\n", o->bytes,
               t[o->batches / 2], t[0], t[o->batches - 1], o->batches, o->iters);
    free(t);
    ibv_destroy_qp(qp);
    ibv_dereg_mr(mr);
    ibv_destroy_cq(cq);
    ibv_dealloc_pd(pd);
    ibv_close_device(ctx);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    xchg_opts_t o = {8, 500, 9, -1, NULL};
    int to_child[2], to_parent[2], c, st = 0, rc;
    pid_t pid;

    while ((c = getopt(argc, argv, "s:n:r:d:x:")) != -1) {
        switch (c) {
        case 's': o.bytes = strtoull(optarg, NULL, 10); break;
        case 'n': o.iters = atoi(optarg); break;
        case 'r': o.batches = atoi(optarg); break;
        case 'd': o.dev = optarg; break;
        case 'x': o.gid_index = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: verbs_xchg [-s BYTES] [-n ITERS] [-r BATCHES] [-d DEV] "
                            "[-x GID_INDEX]\n");
            return 2;
        }
    }
    if (o.bytes < 1 || o.bytes > XCHG_BUF || o.iters < 1 || o.batches < 1) {
        fprintf(stderr, "verbs_xchg: -s takes 1 to %d bytes, -n and -r at least 1\n", XCHG_BUF);
        return 2;
    }
    alarm(120);
    if (pipe(to_child) != 0 || pipe(to_parent) != 0)
        return fail(0, "pipe");
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        return fail(0, "fork");
    if (pid == 0) {
        alarm(120); /* not inherited */
        close(to_child[1]); /* so that either side's death is an EOF for the other */
        close(to_parent[0]);
        _exit(side_main(1, to_child[0], to_parent[1], &o));
    }
    close(to_child[0]);
    close(to_parent[1]);
    rc = side_main(0, to_parent[0], to_child[1], &o);
    if (rc != 0)
        kill(pid, SIGKILL);
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        rc = 1;
    return rc;
}
