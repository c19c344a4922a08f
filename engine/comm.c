/*
 * comm.c - communicators: creation (environment, out-of-band, split), destruction, abort, errors.
 *
 * Creation is the same three steps whatever the source of truth:
 *   1. open this rank's transport (a listening endpoint on the chosen address),
 *   2. exchange {transport address, host name, locality} with every rank (rendezvous, the
 *      framework's out-of-band allgather, or an allgather on the parent communicator for split),
 *   3. hand the table to the transport, which connects lazily to the peers actually used.
 * Around them, topo/: RDT_BIND and the probe of this rank's NUMA node and nearest NIC before 1
 * (the NIC may choose the RDMA device), comm->topo from the table after 2.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootstrap.h"
#include "comm.h"
#include "ctl.h"
#include "log.h"
#include "topo.h"

static __thread char thread_error[RDT_ERRMSG_LEN];

void rdt_set_thread_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(thread_error, sizeof(thread_error), fmt, ap);
    va_end(ap);
}

rdt_status_t rdt_comm_set_error(rdt_comm_t *comm, rdt_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(comm->error, sizeof(comm->error), fmt, ap);
    va_end(ap);
    return st;
}

const char *rdt_comm_last_error(const rdt_comm_t *comm)
{
    return comm ? comm->error : thread_error;
}

int rdt_comm_rank(const rdt_comm_t *comm)
{
    return comm ? comm->rank : -1;
}

int rdt_comm_size(const rdt_comm_t *comm)
{
    return comm ? comm->nranks : -1;
}

/* FNV-1a, 64 bits, continuing from @p h. */
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

/* 16 token bytes from any string: 32 hex digits are taken as they are, anything else hashed. */
static void token_from_string(const char *s, unsigned char token[RDT_TOKEN_LEN])
{
    uint64_t a, b;
    size_t i;

    if (strlen(s) == 2 * RDT_TOKEN_LEN && strspn(s, "0123456789abcdefABCDEF") == strlen(s)) {
        for (i = 0; i < RDT_TOKEN_LEN; i++) {
            unsigned v;
            sscanf(s + 2 * i, "%2x", &v);
            token[i] = (unsigned char)v;
        }
        return;
    }
    a = fnv1a(0xcbf29ce484222325ULL, s, strlen(s));
    b = fnv1a(a ^ 0x9e3779b97f4a7c15ULL, s, strlen(s));
    memcpy(token, &a, 8);
    memcpy(token + 8, &b, 8);
}

static int random_bytes(void *buf, size_t n)
{
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = 0;
    if (f) {
        got = fread(buf, 1, n, f);
        fclose(f);
    }
    return got == n ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation and teardown                                                                      */
/* ------------------------------------------------------------------------------------------ */

static rdt_comm_t *comm_alloc(int rank, int nranks, const rdt_config_t *cfg)
{
    rdt_comm_t *comm = calloc(1, sizeof(*comm));

    if (!comm)
        return NULL;
    comm->rank = rank;
    comm->nranks = nranks;
    comm->cfg = *cfg;
    comm->timeout_s = cfg->timeout_s;
    comm->ctl_fd = -1;
    comm->ctl_heard_from = -1;
    comm->nslots = cfg->slices > 0 ? cfg->slices : 3;
    comm->hosts = calloc((size_t)nranks, RDT_HOST_MAX);
    comm->send_seq = calloc((size_t)nranks, sizeof(uint32_t));
    comm->recv_seq = calloc((size_t)nranks, sizeof(uint32_t));
    comm->p2p_send = calloc((size_t)nranks, sizeof(uint32_t));
    comm->p2p_recv = calloc((size_t)nranks, sizeof(uint32_t));
    comm->slots = calloc((size_t)comm->nslots, rdt_exec_slot_size());
    if (!comm->hosts || !comm->send_seq || !comm->recv_seq || !comm->p2p_send ||
        !comm->p2p_recv || !comm->slots) {
        rdt_comm_destroy(comm);
        return NULL;
    }
    if (cfg->hostname[0])
        snprintf(comm->host, sizeof(comm->host), "%s", cfg->hostname);
    else if (gethostname(comm->host, sizeof(comm->host) - 1) != 0)
        snprintf(comm->host, sizeof(comm->host), "unknown");
    return comm;
}

void rdt_comm_destroy(rdt_comm_t *comm)
{
    rdt_request_t *r;

    if (!comm)
        return;
    if (comm->tp) {
        comm->tp->ops->close(comm->tp); /* completes posted transfers with ABORTED */
        comm->tp = NULL;
    }
    while ((r = comm->head) != NULL) {
        comm->head = r->next;
        rdt_exec_request_free(r);
    }
    rdt_exec_plans_free(comm);
    rdt_exec_slots_free(comm);
    rdt_comm_scratch_set(comm, NULL, 0);
    rdt_topo_destroy(comm->topo);
    rdt_ctl_close(comm);
    free(comm->hosts);
    free(comm->share_views);
    free(comm->share_lens);
    free(comm->direct_offers);
    free(comm->direct_src);
    free(comm->direct_dst);
    free(comm->direct_tmp);
    rdt_mapped_cache_free(comm->mapped);
    free(comm->send_seq);
    free(comm->recv_seq);
    free(comm->p2p_send);
    free(comm->p2p_recv);
    free(comm);
}

rdt_status_t rdt_comm_abort(rdt_comm_t *comm)
{
    if (!comm)
        return RDT_ERR_INVALID_ARG;
    atomic_store(&comm->abort_requested, 1);
    if (comm->tp)
        comm->tp->ops->wakeup(comm->tp);
    return RDT_SUCCESS;
}

rdt_status_t rdt_comm_set_timeout(rdt_comm_t *comm, double seconds)
{
    if (!comm) {
        rdt_set_thread_error("rdt_comm_set_timeout: communicator is NULL");
        return RDT_ERR_INVALID_ARG;
    }
    if ((!(seconds > 0) || seconds > 1e9) && comm->failed) /* keep the first failure's sentence */
        return RDT_ERR_INVALID_ARG;
    if (!(seconds > 0) || seconds > 1e9) /* also refuses NaN */
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "rdt_comm_set_timeout on rank %d: %g is not a number of seconds "
                                  "above 0 (and at most 1e9)", comm->rank, seconds);
    comm->timeout_s = seconds;
    return RDT_SUCCESS;
}

double rdt_comm_timeout(const rdt_comm_t *comm)
{
    return comm ? comm->timeout_s : -1.0;
}

/* ------------------------------------------------------------------------------------------ */
/* Address and transport                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* The first address of interface @p ifname (IPv4 preferred). */
static rdt_status_t ifname_address(const char *ifname, char *ip, size_t iplen)
{
    struct ifaddrs *ifs, *i;
    char names[256] = "";
    int found = 0, family;

    if (getifaddrs(&ifs) != 0) {
        rdt_set_thread_error("getifaddrs failed: %m");
        return RDT_ERR_SYSTEM;
    }
    for (family = AF_INET; family && !found; family = family == AF_INET ? AF_INET6 : 0) {
        for (i = ifs; i && !found; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != family || strcmp(i->ifa_name, ifname))
                continue;
            found = getnameinfo(i->ifa_addr,
                                family == AF_INET ? sizeof(struct sockaddr_in)
                                                  : sizeof(struct sockaddr_in6),
                                ip, (socklen_t)iplen, NULL, 0, NI_NUMERICHOST) == 0;
        }
    }
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            strlen(names) + strlen(i->ifa_name) + 3 < sizeof(names)) {
            strcat(names, names[0] ? ", " : "");
            strcat(names, i->ifa_name);
        }
    }
    freeifaddrs(ifs);
    if (!found) {
        rdt_set_thread_error("RDT_IFNAME=%s: no such interface with an address (interfaces with "
                             "IPv4 addresses: %s)", ifname, names);
        return RDT_ERR_CONFIG;
    }
    return RDT_SUCCESS;
}

/* The local address the kernel would use to reach @p host: a UDP socket "connected" to it sends
 * nothing, but getsockname then tells the source address of the route. */
static rdt_status_t route_address(const char *host, int port, int listen_here, char *ip,
                                  size_t iplen)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char portstr[16];
    int fd, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        rdt_set_thread_error("cannot resolve the rendezvous host '%s': %s", host,
                             gai_strerror(rc));
        return RDT_ERR_CONFIG;
    }
    if (listen_here) { /* rank 0 listens on the root address itself */
        rc = getnameinfo(res->ai_addr, res->ai_addrlen, ip, (socklen_t)iplen, NULL, 0,
                         NI_NUMERICHOST);
        freeaddrinfo(res);
        return rc == 0 ? RDT_SUCCESS : RDT_ERR_SYSTEM;
    }
    fd = socket(res->ai_family, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, ip, (socklen_t)iplen, NULL, 0, NI_NUMERICHOST)) {
        rdt_set_thread_error("no route from this host to the rendezvous at %s:%d: %m", host,
                             port);
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return RDT_ERR_NETWORK;
    }
    close(fd);
    freeaddrinfo(res);
    return RDT_SUCCESS;
}

/* Exchange callback: every rank's blob of @p bytes into @p table, in rank order. */
typedef rdt_status_t (*exchange_fn_t)(void *ctx, const void *blob, size_t bytes, void *table);

typedef struct blob {
    unsigned char addr[RDT_ADDR_MAX];
    char host[RDT_HOST_MAX];
    rdt_topo_loc_t loc; /* NUMA node and nearest NIC, -1 unknown (checked by topo/) */
    unsigned char ctl[RDT_ADDR_MAX]; /* the status channel's packed address (ctl.h) */
} blob_t;

/* ------------------------------------------------------------------------------------------ */
/* Locality: RDT_BIND, the probe, comm->topo                                                    */
/* ------------------------------------------------------------------------------------------ */

static const char *const bind_names[] = {"none", "numa", "core"};

/* RDT_BIND binds the process once: the first communicator that binds does it, later ones (a
 * second communicator from the environment) find it done and leave it. */
static pthread_mutex_t bind_lock = PTHREAD_MUTEX_INITIALIZER;
static int bind_done;

/* Bind local rank @p lrank of @p lsize as RDT_BIND says. A failure is a warning: the job runs
 * where the launcher put it. */
static void bind_apply(const rdt_comm_t *c, int lrank, int lsize, const char *from)
{
    const char *mode = bind_names[c->cfg.bind_mode];
    char msg[256] = "";

    pthread_mutex_lock(&bind_lock);
    if (bind_done) {
        rdt_debug("comm", "RDT_BIND=%s: this process is bound already", mode);
    } else if (rdt_topo_bind((rdt_topo_bind_t)c->cfg.bind_mode, lrank, lsize, msg,
                             sizeof(msg)) == 0) {
        bind_done = 1;
        rdt_info("comm", "RDT_BIND=%s: local rank %d of %d (from %s) bound to %s", mode, lrank,
                 lsize, from, msg);
    } else {
        rdt_warn("comm", "RDT_BIND=%s: local rank %d of %d (from %s) not bound: %s", mode, lrank,
                 lsize, from, msg);
    }
    pthread_mutex_unlock(&bind_lock);
}

/* Does anything depend on where this rank runs: RDT_BIND, or an RDMA device to choose
 * (verbs possible, RDT_IB_DEV unset, and some device present)? */
static int probe_needed(const rdt_comm_t *c)
{
    int rdma = 0;
    if (c->cfg.bind_mode != RDT_TOPO_BIND_NONE)
        return 1;
#ifdef RDT_HAVE_VERBS
    if (!c->cfg.ib_dev[0] &&
        (strcmp(c->cfg.transport, "auto") == 0 || strcmp(c->cfg.transport, "verbs") == 0)) {
        DIR *d = opendir("/sys/class/infiniband");
        struct dirent *e;
        while (d && !rdma && (e = readdir(d)) != NULL)
            rdma = e->d_name[0] != '.';
        if (d)
            closedir(d);
    }
#endif
    return rdma;
}

/*
 * Before the transport opens: bind if the launcher told the local rank and size (else RDT_BIND
 * waits for the host table: *late_p), then probe where this rank runs (hwloc's discovery is
 * cached per process) for the blob, and pick the RDMA device on this rank's NUMA node for
 * RDT_IB_DEV="" when that is known. Never fails: what hwloc cannot tell is -1.
 */
static void locality_prepare(rdt_comm_t *c, int lrank, int lsize, rdt_topo_loc_t *loc_p,
                             int *late_p)
{
    rdt_topo_loc_t loc = {-1, 0, -1, 0};
    rdt_topo_probe_t p;
    char err[256] = "";
    int known = lsize >= 1 && lrank >= 0 && lrank < lsize;

    *late_p = 0;
    c->ib_dev_near[0] = '\0';
    if (c->cfg.bind_mode != RDT_TOPO_BIND_NONE) {
        if (known)
            bind_apply(c, lrank, lsize, "the launcher");
        else
            *late_p = 1;
    }
    if (!probe_needed(c)) {
        /* hwloc's discovery costs ~30 ms here (over a second under AddressSanitizer): only
         * when binding or choosing an RDMA device depends on it */
        *loc_p = loc;
        return;
    }
    if (rdt_topo_local_probe_cached(known ? lrank : 0, &p, err, sizeof(err)) != 0) {
        rdt_debug("comm", "locality of rank %d unknown: %s", c->rank, err);
        *loc_p = loc;
        return;
    }
    loc = p.loc;
    if (*late_p) {
        /* it is about to move: where it runs now would be wrong */
        loc.numa = -1;
        loc.nic = -1;
        rdt_debug("comm", "RDT_BIND=%s: no local size from the launcher, binding after the "
                  "address exchange; NUMA node and NIC of rank %d reported unknown",
                  bind_names[c->cfg.bind_mode], c->rank);
    } else {
        rdt_debug("comm", "locality of rank %d: cpu %d, NUMA node %d of %d, nearest NIC %s "
                  "(NUMA node %d)", c->rank, p.cpu, p.loc.numa, p.loc.nnuma,
                  p.loc.nic >= 0 ? p.nic_name : "none", p.nic_numa);
    }
    *loc_p = loc;
    if (c->cfg.ib_dev[0] || loc.nic < 0 || !p.nic_rdma || loc.numa < 0 || p.nic_numa != loc.numa)
        return; /* named, or nothing known to be near: the first active port, as ever */
    snprintf(c->ib_dev_near, sizeof(c->ib_dev_near), "%s", p.nic_name);
#ifdef RDT_HAVE_VERBS
    if (strcmp(c->cfg.transport, "auto") == 0 || strcmp(c->cfg.transport, "verbs") == 0)
        rdt_info("comm", "RDT_IB_DEV unset: using %s, nearest to this rank's NUMA node %d",
                 c->ib_dev_near, loc.numa);
#endif
}

/*
 * comm->topo from the host table and every rank's locality (NULL: unknown). Ranks that share a
 * host name but not its hardware (two machines with one name, or network namespaces seeing
 * different NICs) leave locality unknown rather than fail: every rank has the same table, so
 * every rank takes the same way.
 */
static rdt_status_t topo_build(rdt_comm_t *c, const rdt_topo_loc_t *locs)
{
    char err[512] = "";

    if (rdt_topo_from_hosts(c->nranks, c->hosts, RDT_HOST_MAX, locs, &c->topo, err,
                            sizeof(err)) == 0)
        return RDT_SUCCESS;
    if (locs) {
        rdt_debug("comm", "locality of the ranks left unknown: %s", err);
        if (rdt_topo_from_hosts(c->nranks, c->hosts, RDT_HOST_MAX, NULL, &c->topo, err,
                                sizeof(err)) == 0)
            return RDT_SUCCESS;
    }
    rdt_set_thread_error("rank %d: cannot group the ranks by host: %s", c->rank, err);
    return RDT_ERR_INTERNAL;
}

/*
 * Open @p c's transport as RDT_TRANSPORT says:
 *   auto   the mux (transport/mux.c): shm between ranks of one host, and between hosts verbs
 *          when this build has it and a port can be opened, else tcp (saying why at info
 *          level). Which peers share a host is only known after the address exchange, so the
 *          mux opens both up front (shm's open is cheap: its segment stays sparse and unmapped
 *          until addrs_set).
 *   tcp, verbs  that transport for every peer.
 *   shm    shm for every peer; addrs_set fails naming a rank on another host.
 */
static rdt_status_t transport_open(rdt_comm_t *c, const rdt_config_t *cfg)
{
    int want_verbs = strcmp(cfg->transport, "verbs") == 0;
    int want_auto = strcmp(cfg->transport, "auto") == 0;
    rdt_transport_params_t tpp;
    rdt_shm_opts_t so;
    rdt_transport_t *net = NULL;
    const char *net_name = "tcp";
    char why[RDT_ERRMSG_LEN] = "";
    rdt_status_t st;

    memset(&tpp, 0, sizeof(tpp));
    tpp.rank = c->rank;
    tpp.nranks = c->nranks;
    tpp.comm_id = c->id;
    memcpy(tpp.token, c->token, RDT_TOKEN_LEN);
    tpp.bind_ip = c->bind_ip;
    tpp.connect_timeout_ms = (int)(cfg->connect_timeout_s * 1000);
    tpp.sockbuf = cfg->sockbuf;
    tpp.host = c->host;
    tpp.ib_dev = cfg->ib_dev[0] ? cfg->ib_dev : c->ib_dev_near;
    tpp.ib_gid_fixed = cfg->ib_gid_index >= 0;
    tpp.ib_gid_index = cfg->ib_gid_index;
    tpp.rndv_threshold = cfg->ib_rndv;
    tpp.reg_cache = cfg->ib_reg_cache;
    tpp.ib_cm_rdmacm = strcmp(cfg->ib_cm, "rdmacm") == 0;
    tpp.open_error = why;
    tpp.open_error_len = sizeof(why);
    memset(&so, 0, sizeof(so));
    so.ring_bytes = cfg->shm_ring;
    so.rndv_bytes = cfg->shm_rndv ? cfg->shm_rndv : SIZE_MAX;
    if (strcmp(cfg->transport, "shm") == 0) {
        st = rdt_shm_open_opts(&tpp, &so, &c->tp);
        if (st != RDT_SUCCESS)
            rdt_set_thread_error("cannot open the shm transport on rank %d (host %s): %s",
                                 c->rank, c->host, why[0] ? why : rdt_status_str(st));
        else
            rdt_info("comm", "transport shm (RDT_TRANSPORT=shm)");
        return st;
    }
    if (want_verbs || want_auto) {
#ifdef RDT_HAVE_VERBS
        st = rdt_verbs_ops.open(&tpp, &net);
        if (st != RDT_SUCCESS && tpp.ib_dev == c->ib_dev_near && c->ib_dev_near[0]) {
            rdt_info("comm", "RDMA device %s (nearest to this rank) cannot be used (%s): trying "
                     "the first active port", c->ib_dev_near, why[0] ? why : rdt_status_str(st));
            why[0] = '\0';
            tpp.ib_dev = "";
            st = rdt_verbs_ops.open(&tpp, &net);
        }
        if (st == RDT_SUCCESS) {
            net_name = "verbs";
        } else if (want_verbs) {
            rdt_set_thread_error("RDT_TRANSPORT=verbs on rank %d (host %s): %s", c->rank, c->host,
                                 why[0] ? why : rdt_status_str(st));
            return st;
        } else {
            rdt_info("comm", "verbs not usable (%s): using tcp",
                     why[0] ? why : rdt_status_str(st));
        }
#else
        if (want_verbs) {
            rdt_set_thread_error("RDT_TRANSPORT=verbs: this build has no verbs transport "
                                 "(libibverbs-dev was missing when it was built)");
            return RDT_ERR_CONFIG;
        }
        rdt_info("comm", "this build has no verbs transport: using tcp");
#endif
    }
    if (!net) {
        st = rdt_tcp_ops.open(&tpp, &net);
        if (st != RDT_SUCCESS) {
            rdt_set_thread_error("cannot open the tcp transport on %s: %s", tpp.bind_ip,
                                 rdt_status_str(st));
            return st;
        }
    }
    if (!want_auto) {
        c->tp = net;
        if (want_verbs)
            rdt_info("comm", "transport verbs (RDT_TRANSPORT=%s)", cfg->transport);
        else
            rdt_info("comm", "transport tcp on %s (RDT_TRANSPORT=%s)", tpp.bind_ip,
                     cfg->transport);
        return RDT_SUCCESS;
    }
    why[0] = '\0';
    st = rdt_mux_open(&tpp, &so, net, &c->tp);
    if (st != RDT_SUCCESS) {
        net->ops->close(net);
        rdt_set_thread_error("cannot open the shm transport on rank %d (host %s): %s", c->rank,
                             c->host, why[0] ? why : rdt_status_str(st));
        return st;
    }
    rdt_info("comm", "transport auto: shm within host %s, %s%s%s between hosts", c->host,
             net_name, strcmp(net_name, "tcp") ? "" : " on ",
             strcmp(net_name, "tcp") ? "" : tpp.bind_ip);
    return RDT_SUCCESS;
}

/*
 * Locality, open the transport, exchange addresses, group the ranks, hand the addresses over.
 * @p lrank, @p lsize: this rank's local rank and size from the launcher, -1 unknown.
 */
static rdt_status_t comm_wire_up(rdt_comm_t *comm, exchange_fn_t exchange, void *ctx, int lrank,
                                 int lsize)
{
    blob_t mine, *table = NULL;
    unsigned char *addrs = NULL;
    rdt_topo_loc_t loc, *locs = NULL;
    size_t alen = RDT_ADDR_MAX;
    rdt_status_t st;
    int i, late;

    locality_prepare(comm, lrank, lsize, &loc, &late);
    st = transport_open(comm, &comm->cfg);
    if (st != RDT_SUCCESS)
        return st;
    memset(&mine, 0, sizeof(mine));
    st = comm->tp->ops->addr_get(comm->tp, mine.addr, &alen);
    if (st != RDT_SUCCESS)
        return st;
    snprintf(mine.host, sizeof(mine.host), "%s", comm->host);
    mine.loc = loc;
    rdt_ctl_open(comm, mine.ctl);
    table = calloc((size_t)comm->nranks, sizeof(*table));
    addrs = calloc((size_t)comm->nranks, RDT_ADDR_MAX);
    locs = calloc((size_t)comm->nranks, sizeof(*locs));
    if (!table || !addrs || !locs) {
        st = RDT_ERR_NO_MEMORY;
        goto out;
    }
    st = exchange(ctx, &mine, sizeof(mine), table);
    if (st != RDT_SUCCESS)
        goto out;
    for (i = 0; i < comm->nranks; i++) {
        memcpy(addrs + (size_t)i * RDT_ADDR_MAX, table[i].addr, RDT_ADDR_MAX);
        table[i].host[RDT_HOST_MAX - 1] = '\0';
        memcpy(comm->hosts + (size_t)i * RDT_HOST_MAX, table[i].host, RDT_HOST_MAX);
        locs[i] = table[i].loc;
    }
    rdt_ctl_peers_set(comm, table[0].ctl, sizeof(*table));
    st = topo_build(comm, locs);
    if (st != RDT_SUCCESS)
        goto out;
    {
        const rdt_topo_t *t = comm->topo;
        int tl = t->local_rank[comm->rank], ts = t->local_size[t->host_of[comm->rank]];

        if (late) /* before any connection: the transport's threads and buffers follow */
            bind_apply(comm, tl, ts, "the host table");
        else if (lsize >= 1 && (tl != lrank || ts != lsize))
            rdt_debug("comm", "the launcher says local rank %d of %d, the host names %d of %d "
                      "(RDT_HOSTNAME?): RDT_BIND followed the launcher", lrank, lsize, tl, ts);
        if (comm->rank == 0 && rdt_log_enabled(RDT_LOG_INFO, "comm")) {
            char sum[512];
            rdt_topo_summary(t, sum, sizeof(sum));
            rdt_info("comm", "topology: %s", sum);
        }
    }
    st = comm->tp->ops->addrs_set(comm->tp, addrs, comm->hosts);
    if (st != RDT_SUCCESS)
        rdt_set_thread_error("rank %d (host %s): %s", comm->rank, comm->host,
                             comm->tp->error[0] ? comm->tp->error : rdt_status_str(st));
out:
    free(table);
    free(addrs);
    free(locs);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* From the environment                                                                         */
/* ------------------------------------------------------------------------------------------ */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!s || !*s)
        return -1;
    v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

typedef struct env_ids {
    const char *source;
    const char *rank_var, *size_var;
    const char *rank, *size;
    const char *job_id; /* where the job token comes from when RDT_TOKEN is unset */
    const char *lrank, *lsize; /* local rank and size (RDT_BIND, the NIC), NULL unknown */
} env_ids_t;

/* The local rank and size a launcher gave (*lrank_p, *lsize_p), -1 for what it did not give
 * or gave malformed: only a hint (the host table is the truth), so never an error. */
static void env_local(const env_ids_t *e, int size, int *lrank_p, int *lsize_p)
{
    long l = -1, n = -1;

    if (e->lrank && parse_int(e->lrank, 0, size - 1, &l))
        l = -1;
    if (e->lsize && parse_int(e->lsize, 1, size, &n))
        n = -1;
    if ((e->lrank && l < 0) || (e->lsize && n < 0) || (l >= 0 && n >= 0 && l >= n)) {
        rdt_debug("comm", "local rank '%s' of '%s' from %s ignored (not 0 <= rank < size <= %d)",
                  e->lrank ? e->lrank : "unset", e->lsize ? e->lsize : "unset", e->source, size);
        l = n = -1;
    }
    *lrank_p = (int)l;
    *lsize_p = (int)n;
}

/* Rank and size from the first source that sets them, innermost launcher first: mpirun or
 * torchrun started inside a Slurm allocation inherit SLURM_* from it, and their own variables
 * are the ones that describe this process. *job_id_p: that source's job id (may be NULL);
 * *lrank_p, *lsize_p: its local rank and size, -1 unknown (Slurm gives no local size). */
static rdt_status_t env_rank_size(const rdt_config_t *cfg, int *rank_p, int *size_p,
                                  const char **source_p, const char **job_id_p, int *lrank_p,
                                  int *lsize_p)
{
    const env_ids_t srcs[] = {
        {"the rdmatrain launcher", "RDT_RANK", "RDT_SIZE", cfg->rdt_rank, cfg->rdt_size, NULL,
         cfg->rdt_local_rank, cfg->rdt_local_size},
        {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", cfg->ompi_rank,
         cfg->ompi_size, cfg->ompi_jobid, cfg->ompi_local_rank, cfg->ompi_local_size},
        {"torchrun", "RANK", "WORLD_SIZE", cfg->torch_rank, cfg->torch_world_size,
         cfg->torch_run_id, cfg->torch_local_rank, cfg->torch_local_world_size},
        {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", cfg->slurm_procid, cfg->slurm_ntasks,
         cfg->slurm_job_id, cfg->slurm_localid, NULL},
    };
    size_t i;
    long r, n;

    for (i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        const env_ids_t *e = &srcs[i];
        if (!e->rank && !e->size)
            continue;
        if (!e->rank || !e->size) {
            rdt_set_thread_error("%s is set but %s is not: both are needed (%s)",
                                 e->rank ? e->rank_var : e->size_var,
                                 e->rank ? e->size_var : e->rank_var, e->source);
            return RDT_ERR_CONFIG;
        }
        if (parse_int(e->size, 1, 1 << 20, &n)) {
            rdt_set_thread_error("%s='%s' is not a number of ranks from 1 to 1048576",
                                 e->size_var, e->size);
            return RDT_ERR_CONFIG;
        }
        if (parse_int(e->rank, 0, n - 1, &r)) {
            rdt_set_thread_error("%s='%s' is not a rank from 0 to %ld (%s=%ld)", e->rank_var,
                                 e->rank, n - 1, e->size_var, n);
            return RDT_ERR_CONFIG;
        }
        *rank_p = (int)r;
        *size_p = (int)n;
        *source_p = e->source;
        *job_id_p = e->job_id;
        env_local(e, (int)n, lrank_p, lsize_p);
        return RDT_SUCCESS;
    }
    *rank_p = 0;
    *size_p = 1;
    *lrank_p = 0;
    *lsize_p = 1;
    *source_p = "no launcher variables (a single rank)";
    *job_id_p = NULL;
    return RDT_SUCCESS;
}

/* "host:port", "[v6addr]:port". */
static rdt_status_t parse_root(const char *s, char *host, size_t hostlen, int *port_p)
{
    const char *colon;
    long port;
    size_t n;

    if (s[0] == '[') {
        const char *close_br = strchr(s, ']');
        if (!close_br || close_br[1] != ':')
            goto bad;
        n = (size_t)(close_br - s - 1);
        colon = close_br + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            goto bad;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostlen || parse_int(colon + 1, 1, 65535, &port))
        goto bad;
    memcpy(host, s, n);
    host[n] = '\0';
    *port_p = (int)port;
    return RDT_SUCCESS;
bad:
    return RDT_ERR_CONFIG;
}

typedef struct bs_ctx {
    rdt_bootstrap_params_t params;
} bs_ctx_t;

static rdt_status_t bootstrap_exchange(void *ctx, const void *blob, size_t bytes, void *table)
{
    bs_ctx_t *b = ctx;
    char local_ip[64], err[512] = "";
    rdt_status_t st;

    st = rdt_bootstrap_exchange(&b->params, blob, bytes, table, local_ip, err, sizeof(err));
    if (st != RDT_SUCCESS)
        rdt_set_thread_error("rank %d: %s", b->params.rank, err);
    return st;
}

static rdt_status_t comm_finish_create(rdt_comm_t *comm, rdt_comm_t **comm_p)
{
    rdt_status_t st = rdt_select_validate(comm);
    if (st != RDT_SUCCESS) {
        rdt_set_thread_error("%s", comm->error);
        return st;
    }
    *comm_p = comm;
    return RDT_SUCCESS;
}

rdt_status_t rdt_comm_create_from_env(rdt_comm_t **comm_p)
{
    rdt_config_t cfg;
    rdt_comm_t *comm = NULL;
    bs_ctx_t bs;
    char err[512];
    const char *source, *job_id, *tok_src = NULL;
    char root_host[256] = "127.0.0.1";
    int rank, size, lrank, lsize, root_port = 0;
    rdt_status_t st;

    thread_error[0] = '\0';
    if (!comm_p) {
        rdt_set_thread_error("rdt_comm_create_from_env: comm_p is NULL");
        return RDT_ERR_INVALID_ARG;
    }
    st = rdt_config_load(&cfg, err, sizeof(err));
    if (st != RDT_SUCCESS) {
        rdt_set_thread_error("%s", err);
        return st;
    }
    rdt_log_configure(cfg.log_level, cfg.log_subsys);
    st = env_rank_size(&cfg, &rank, &size, &source, &job_id, &lrank, &lsize);
    if (st != RDT_SUCCESS)
        return st;

    if (cfg.rdt_root) {
        if (parse_root(cfg.rdt_root, root_host, sizeof(root_host), &root_port)) {
            rdt_set_thread_error("RDT_ROOT='%s' is not host:port (or [ipv6]:port)", cfg.rdt_root);
            return RDT_ERR_CONFIG;
        }
    } else if (cfg.master_addr || cfg.master_port) {
        long port;
        if (!cfg.master_addr || !cfg.master_port ||
            parse_int(cfg.master_port, 1, 65535, &port)) {
            rdt_set_thread_error("MASTER_ADDR and MASTER_PORT must both be set, the port from 1 "
                                 "to 65535 (MASTER_ADDR=%s, MASTER_PORT=%s)",
                                 cfg.master_addr ? cfg.master_addr : "unset",
                                 cfg.master_port ? cfg.master_port : "unset");
            return RDT_ERR_CONFIG;
        }
        snprintf(root_host, sizeof(root_host), "%s", cfg.master_addr);
        root_port = (int)port;
    } else if (size > 1) {
        rdt_set_thread_error("rank %d of %d (from %s): no rendezvous address; set RDT_ROOT=host:port "
                             "(or MASTER_ADDR and MASTER_PORT)", rank, size, source);
        return RDT_ERR_CONFIG;
    }

    comm = comm_alloc(rank, size, &cfg);
    if (!comm) {
        rdt_set_thread_error("out of memory creating a communicator of %d ranks", size);
        return RDT_ERR_NO_MEMORY;
    }
    rdt_log_set_identity(comm->host, rank);

    tok_src = cfg.rdt_token ? cfg.rdt_token : job_id;
    if (!tok_src) {
        tok_src = cfg.rdt_root ? cfg.rdt_root : "rdmatrain";
        if (size > 1)
            rdt_warn("comm", "no RDT_TOKEN (nor a job id): the job token is derived from the "
                             "rendezvous address, so anyone who can reach it can join");
    }
    token_from_string(tok_src, comm->token);
    comm->id = fnv1a(fnv1a(0xcbf29ce484222325ULL, comm->token, RDT_TOKEN_LEN), "world", 5);

    if (cfg.ifname[0])
        st = ifname_address(cfg.ifname, comm->bind_ip, sizeof(comm->bind_ip));
    else if (size > 1)
        st = route_address(root_host, root_port, rank == 0, comm->bind_ip,
                           sizeof(comm->bind_ip));
    else
        snprintf(comm->bind_ip, sizeof(comm->bind_ip), "127.0.0.1");
    if (st != RDT_SUCCESS)
        goto err_destroy;
    rdt_info("comm", "rank %d of %d (from %s), rendezvous %s:%d, listening on %s (%s%s)", rank,
             size, source, root_host, root_port, comm->bind_ip,
             cfg.ifname[0] ? "RDT_IFNAME=" : "the address that reaches the rendezvous",
             cfg.ifname[0] ? cfg.ifname : "");

    memset(&bs, 0, sizeof(bs));
    bs.params.rank = rank;
    bs.params.nranks = size;
    bs.params.root_host = root_host;
    bs.params.root_port = root_port;
    memcpy(bs.params.token, comm->token, RDT_TOKEN_LEN);
    bs.params.timeout_ms = (int)(cfg.connect_timeout_s * 1000);
    st = comm_wire_up(comm, bootstrap_exchange, &bs, lrank, lsize);
    if (st != RDT_SUCCESS)
        goto err_destroy;
    st = comm_finish_create(comm, comm_p);
    if (st != RDT_SUCCESS)
        goto err_destroy;
    return RDT_SUCCESS;

err_destroy:
    rdt_error("comm", "%s", thread_error);
    rdt_comm_destroy(comm);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Out of band                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct oob_ctx {
    rdt_oob_allgather_fn_t fn;
    void *ctx;
} oob_ctx_t;

static rdt_status_t oob_exchange(void *ctx, const void *blob, size_t bytes, void *table)
{
    oob_ctx_t *o = ctx;
    if (o->fn(blob, table, bytes, o->ctx) != 0) {
        rdt_set_thread_error("the out-of-band allgather callback failed");
        return RDT_ERR_NETWORK;
    }
    return RDT_SUCCESS;
}

rdt_status_t rdt_comm_create_oob(int rank, int size, rdt_oob_allgather_fn_t allgather, void *ctx,
                                 rdt_comm_t **comm_p)
{
    rdt_config_t cfg;
    rdt_comm_t *comm;
    oob_ctx_t oc = {allgather, ctx};
    unsigned char tok[RDT_TOKEN_LEN], *all = NULL;
    char err[512];
    rdt_status_t st;

    thread_error[0] = '\0';
    if (!comm_p || !allgather || size < 1 || rank < 0 || rank >= size) {
        rdt_set_thread_error("rdt_comm_create_oob: invalid arguments (rank %d, size %d%s%s)",
                             rank, size, allgather ? "" : ", no allgather callback",
                             comm_p ? "" : ", comm_p NULL");
        return RDT_ERR_INVALID_ARG;
    }
    st = rdt_config_load(&cfg, err, sizeof(err));
    if (st != RDT_SUCCESS) {
        rdt_set_thread_error("%s", err);
        return st;
    }
    rdt_log_configure(cfg.log_level, cfg.log_subsys);
    comm = comm_alloc(rank, size, &cfg);
    if (!comm) {
        rdt_set_thread_error("out of memory creating a communicator of %d ranks", size);
        return RDT_ERR_NO_MEMORY;
    }
    rdt_log_set_identity(comm->host, rank);
    /* the token and the id: rank 0's random bytes, agreed through the trusted channel */
    all = calloc((size_t)size, RDT_TOKEN_LEN);
    if (!all || random_bytes(tok, sizeof(tok))) {
        st = RDT_ERR_SYSTEM;
        rdt_set_thread_error("cannot draw a random job token");
        goto err_destroy;
    }
    st = oob_exchange(&oc, tok, sizeof(tok), all);
    if (st != RDT_SUCCESS)
        goto err_destroy;
    memcpy(comm->token, all, RDT_TOKEN_LEN);
    comm->id = fnv1a(fnv1a(0xcbf29ce484222325ULL, comm->token, RDT_TOKEN_LEN), "oob", 3);
    if (cfg.ifname[0])
        st = ifname_address(cfg.ifname, comm->bind_ip, sizeof(comm->bind_ip));
    else
        snprintf(comm->bind_ip, sizeof(comm->bind_ip), "127.0.0.1");
    if (st != RDT_SUCCESS)
        goto err_destroy;
    /* no launcher: the host table decides, but for a job of one rank */
    st = comm_wire_up(comm, oob_exchange, &oc, size == 1 ? 0 : -1, size == 1 ? 1 : -1);
    if (st != RDT_SUCCESS)
        goto err_destroy;
    st = comm_finish_create(comm, comm_p);
    if (st != RDT_SUCCESS)
        goto err_destroy;
    free(all);
    return RDT_SUCCESS;

err_destroy:
    rdt_error("comm", "%s", thread_error);
    free(all);
    rdt_comm_destroy(comm);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Split                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct split_entry {
    int32_t color;
    int32_t key;
    int32_t rank;
    int32_t pad;
    unsigned char addr[RDT_ADDR_MAX];
    unsigned char ctl[RDT_ADDR_MAX]; /* the new communicator's status channel (ctl.h) */
} split_entry_t;

static int split_cmp(const void *a, const void *b)
{
    const split_entry_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->rank < y->rank ? -1 : (x->rank > y->rank);
}

rdt_status_t rdt_comm_split(rdt_comm_t *comm, int color, int key, rdt_comm_t **newcomm_p)
{
    split_entry_t mine, *all = NULL, *members;
    rdt_topo_loc_t *locs = NULL;
    rdt_comm_t *nc = NULL;
    unsigned char *addrs = NULL;
    size_t alen = RDT_ADDR_MAX;
    uint64_t id;
    rdt_status_t st;
    int i, n = 0, me = -1;

    if (!comm) {
        rdt_set_thread_error("rdt_comm_split: communicator is NULL");
        return RDT_ERR_INVALID_ARG;
    }
    if (!newcomm_p || color < RDT_UNDEFINED)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "split on rank %d: color %d is negative (use RDT_UNDEFINED to "
                                  "opt out)%s", comm->rank, color,
                                  newcomm_p ? "" : ", newcomm_p is NULL");
    if (comm->failed)
        return comm->failed;
    id = fnv1a(comm->id, &comm->nsplits, sizeof(comm->nsplits));
    id = fnv1a(id, &color, sizeof(color));
    comm->nsplits++;

    memset(&mine, 0, sizeof(mine));
    mine.color = color;
    mine.key = key;
    mine.rank = comm->rank;
    all = calloc((size_t)comm->nranks, sizeof(*all));
    if (!all) {
        st = rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "split: out of memory");
        goto err;
    }
    /* first exchange colors and keys, to know each new communicator's size and our rank */
    st = rdt_allgather(comm, &mine, all, sizeof(mine), RDT_UINT8);
    if (st != RDT_SUCCESS)
        goto err;
    if (color == RDT_UNDEFINED) {
        /* still take part in the second exchange below */
        st = rdt_allgather(comm, &mine, all, sizeof(mine), RDT_UINT8);
        free(all);
        if (st == RDT_SUCCESS)
            *newcomm_p = NULL;
        return st;
    }
    members = calloc((size_t)comm->nranks, sizeof(*members));
    if (!members) {
        st = rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "split: out of memory");
        goto err;
    }
    for (i = 0; i < comm->nranks; i++)
        if (all[i].color == color)
            members[n++] = all[i];
    qsort(members, (size_t)n, sizeof(*members), split_cmp);
    for (i = 0; i < n; i++)
        if (members[i].rank == comm->rank)
            me = i;
    /* the new transport is opened between the two exchanges, so its address travels in the
     * second one */
    nc = comm_alloc(me, n, &comm->cfg);
    if (!nc) {
        free(members);
        st = rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "split: out of memory");
        goto err;
    }
    memcpy(nc->token, comm->token, RDT_TOKEN_LEN);
    snprintf(nc->bind_ip, sizeof(nc->bind_ip), "%s", comm->bind_ip);
    snprintf(nc->host, sizeof(nc->host), "%s", comm->host);
    nc->id = id;
    /* the parent's device: the process's locality has not changed since */
    snprintf(nc->ib_dev_near, sizeof(nc->ib_dev_near), "%s", comm->ib_dev_near);
    st = transport_open(nc, &comm->cfg);
    if (st == RDT_SUCCESS)
        st = nc->tp->ops->addr_get(nc->tp, mine.addr, &alen);
    if (st == RDT_SUCCESS)
        rdt_ctl_open(nc, mine.ctl);
    if (st != RDT_SUCCESS) {
        free(members);
        rdt_comm_set_error(comm, st, "split on rank %d: cannot open the transport of the new "
                           "communicator on %s", comm->rank, comm->bind_ip);
        /* the others are in the second exchange: fail the parent so they see an error */
        rdt_comm_fail(comm, st);
        goto err;
    }
    /* second exchange: the new transports' addresses */
    st = rdt_allgather(comm, &mine, all, sizeof(mine), RDT_UINT8);
    if (st != RDT_SUCCESS) {
        free(members);
        goto err;
    }
    addrs = calloc((size_t)n, RDT_ADDR_MAX);
    locs = calloc((size_t)n, sizeof(*locs));
    if (!addrs || !locs) {
        free(members);
        st = rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "split: out of memory");
        goto err;
    }
    for (i = 0; i < n; i++) {
        int old = members[i].rank;
        memcpy(addrs + (size_t)i * RDT_ADDR_MAX, all[old].addr, RDT_ADDR_MAX);
        memcpy(nc->hosts + (size_t)i * RDT_HOST_MAX, comm->hosts + (size_t)old * RDT_HOST_MAX,
               RDT_HOST_MAX);
        if (comm->topo) { /* the parent's locality: split does not bind nor probe again */
            const rdt_topo_t *pt = comm->topo;
            locs[i].numa = pt->numa_of[old];
            locs[i].nnuma = pt->nnuma[pt->host_of[old]];
            locs[i].nic = pt->nic_of[old];
            locs[i].nnics = pt->nnics[pt->host_of[old]];
        }
    }
    { /* the members' status channels, in the new order (none if this allocation fails) */
        unsigned char *ctls = calloc((size_t)n, RDT_ADDR_MAX);
        for (i = 0; ctls && i < n; i++)
            memcpy(ctls + (size_t)i * RDT_ADDR_MAX, all[members[i].rank].ctl, RDT_ADDR_MAX);
        if (ctls)
            rdt_ctl_peers_set(nc, ctls, RDT_ADDR_MAX);
        free(ctls);
    }
    free(members);
    st = topo_build(nc, comm->topo ? locs : NULL);
    free(locs);
    locs = NULL;
    if (st != RDT_SUCCESS) {
        rdt_comm_set_error(comm, st, "split on rank %d: %s", comm->rank, thread_error);
        goto err;
    }
    st = nc->tp->ops->addrs_set(nc->tp, addrs, nc->hosts);
    free(addrs);
    addrs = NULL;
    if (st != RDT_SUCCESS) {
        rdt_comm_set_error(comm, st, "split on rank %d: %s", comm->rank,
                           nc->tp->error[0] ? nc->tp->error : rdt_status_str(st));
        goto err;
    }
    st = rdt_select_validate(nc);
    if (st != RDT_SUCCESS)
        goto err;
    free(all);
    *newcomm_p = nc;
    return RDT_SUCCESS;

err:
    free(all);
    free(addrs);
    free(locs);
    rdt_comm_destroy(nc);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Memory registration                                                                          */
/* ------------------------------------------------------------------------------------------ */

struct rdt_mem {
    void (*deregister)(void *handle); /* NULL: nothing was pinned (tcp) */
    void *handle;
};

rdt_status_t rdt_mem_register(rdt_comm_t *comm, void *buf, size_t bytes, rdt_mem_t **handle_p)
{
    rdt_mem_t *m;
    rdt_status_t st;

    if (!comm || !handle_p)
        return RDT_ERR_INVALID_ARG;
    *handle_p = NULL;
    if (!buf || !bytes)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "rdt_mem_register on rank %d: %s", comm->rank,
                                  !buf ? "buffer is NULL" : "0 bytes");
    if (!comm->tp)
        return rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                  "rdt_mem_register on rank %d: the communicator has no "
                                  "transport", comm->rank);
    m = calloc(1, sizeof(*m));
    if (!m)
        return rdt_comm_set_error(comm, RDT_ERR_NO_MEMORY, "rdt_mem_register: out of memory");
    if (comm->tp->ops->mem_register) {
        st = comm->tp->ops->mem_register(comm->tp, buf, bytes, &m->handle);
        if (st != RDT_SUCCESS) {
            free(m);
            return rdt_comm_set_error(comm, st, "rdt_mem_register of %zu bytes on rank %d: %s",
                                      bytes, comm->rank, comm->tp->error);
        }
        m->deregister = comm->tp->ops->mem_deregister;
    }
    *handle_p = m;
    return RDT_SUCCESS;
}

rdt_status_t rdt_mem_deregister(rdt_comm_t *comm, rdt_mem_t *handle)
{
    if (!handle)
        return comm ? rdt_comm_set_error(comm, RDT_ERR_INVALID_ARG,
                                         "rdt_mem_deregister on rank %d: handle is NULL",
                                         comm->rank)
                    : RDT_ERR_INVALID_ARG;
    if (handle->deregister)
        handle->deregister(handle->handle);
    free(handle);
    return RDT_SUCCESS;
}

/* The executor's scratch: registered for zero-copy when the transport pins memory (failure
 * only costs the copy path). NULL frees it. */
void rdt_comm_scratch_set(rdt_comm_t *comm, unsigned char *mem, size_t bytes)
{
    if (comm->scratch_reg)
        comm->scratch_dereg(comm->scratch_reg); /* the device's, valid after the transport */
    comm->scratch_reg = NULL;
    free(comm->scratch);
    comm->scratch = mem;
    comm->scratch_bytes = bytes;
    if (mem && bytes && comm->tp && comm->tp->ops->mem_register &&
        comm->tp->ops->mem_register(comm->tp, mem, bytes, &comm->scratch_reg) != RDT_SUCCESS) {
        rdt_debug("comm", "rank %d: scratch not registered: %s", comm->rank, comm->tp->error);
        comm->scratch_reg = NULL;
    }
    if (comm->scratch_reg)
        comm->scratch_dereg = comm->tp->ops->mem_deregister;
}
