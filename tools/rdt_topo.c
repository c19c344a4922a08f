/*
 * rdt_topo - print a topology: this machine (hwloc), a described one (--spec, --file), one host's
 * hwloc XML (--xml), or the grouping of a list of per-rank host names (--hosts); text or --json.
 * With --coll, also the schedule the engine would run on it: the algorithm its selector picks
 * (rdt_cost_select, with RDT_ALPHA/RDT_BETA/RDT_GAMMA as the engine reads them) and every
 * rank's operations from rdt_sched_build_topo.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sched.h"
#include "topo.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: rdt_topo [--json] [--spec SPEC | --file FILE | --xml FILE | --hosts H0,H1,...]\n"
        "                [--ranks N] [--sysfs DIR]\n"
        "                [--coll NAME --bytes SIZE [--algo NAME] [--dtype T] [--root R]\n"
        "                 [--rank R]]\n"
        "\n"
        "Prints a topology: hosts, the ranks on each, their NUMA node and nearest NIC.\n"
        "  (no source)    this machine, detected with hwloc: packages, NUMA nodes, cores, NICs\n"
        "                 and their NUMA node, where this process runs, and N local ranks\n"
        "  --spec SPEC    a described job: 8x8 (8 hosts of 8 ranks), 4,2,3 (ranks per host),\n"
        "                 options :numaN :nicN, e.g. 2x4:numa2:nic2\n"
        "  --file FILE    a described job, one line per host: host NAME ranks N [numa N] [nics N]\n"
        "  --xml FILE     one host from an hwloc XML file (lstopo --of xml), with N local ranks\n"
        "  --hosts LIST   the host name of each rank, in rank order (grouping as the engine does)\n"
        "  --ranks N      local ranks placed on this machine or the --xml host (default 1)\n"
        "  --sysfs DIR    with --xml: a /sys-like tree naming the netdevs of virtual RDMA devices\n"
        "  --json         one JSON object instead of text\n"
        "\n"
        "The schedule the engine would run on that topology (its ranks and hosts):\n"
        "  --coll NAME    allreduce reduce_scatter allgather broadcast reduce barrier alltoall\n"
        "  --bytes SIZE   per rank, as the count passed to the call times the element size\n"
        "                 (suffixes k, M, G: powers of 1024); not needed for barrier\n"
        "  --algo NAME    force an algorithm (ring recdbl rabenseifner tree pairwise hier\n"
        "                 hiertree), as RDT_ALGO does; default: the selector's choice, with\n"
        "                 RDT_ALPHA, RDT_BETA, RDT_GAMMA from the environment as the engine reads\n"
        "                 them\n"
        "  --dtype T      element type for the element ranges (default float32)\n"
        "  --root R       root of broadcast and reduce (default 0)\n"
        "  --rank R       print only rank R's operations\n"
        "Each operation: rank, round, kind (send, recv, recv_reduce, copy), peer, buffer (input,\n"
        "output, temp; for recv_reduce and copy also the source buffer), blocks [b,e) and the\n"
        "elements they cover when the whole vector is one slice (the executor pipelines slices of\n"
        "it, RDT_CHUNK, each cut into blocks the same way).\n");
}

/* What --coll asks for. */
typedef struct sched_req {
    int coll;         /* rdt_coll_t, -1: no schedule */
    int algo;         /* rdt_algo_t, -1: the selector's */
    int have_bytes;
    size_t bytes;     /* per unit */
    rdt_dtype_t dtype;
    int root;
    int rank;         /* -1: every rank */
} sched_req_t;

static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v, mult = 1;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v * mult > 1e18)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

static int parse_nonneg(const char *opt, const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v >= RDT_TOPO_MAX_RANKS) {
        fprintf(stderr, "rdt_topo: %s '%s': expected 0 to %d\n", opt, s, RDT_TOPO_MAX_RANKS - 1);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static const char *opk_name(int k)
{
    static const char *const names[] = {"send", "recv", "recv_reduce", "copy"};
    return k >= 0 && k < 4 ? names[k] : "?";
}

static const char *buf_name(int b)
{
    static const char *const names[] = {"input", "output", "temp"};
    return b >= 0 && b < RDT_BUF_COUNT ? names[b] : "?";
}

/* Element range [*a, *b) of blocks [blk_begin, blk_end) for unit pieces of len elements. */
static void op_elems(const rdt_sched_t *s, const rdt_sched_op_t *op, size_t len, size_t *a,
                     size_t *b)
{
    size_t off, n;

    *a = *b = 0;
    if (op->blk_end <= op->blk_begin)
        return;
    rdt_sched_block_range(s, op->blk_begin, len, &off, &n);
    *a = off;
    rdt_sched_block_range(s, op->blk_end - 1, len, &off, &n);
    *b = off + n;
}

/*
 * The schedule the engine would run on `topo`: the same selection (rdt_cost_select with the
 * host map select.c derives: each rank's host named by its lowest rank, passed only when there
 * is a hierarchy) and the same builder (rdt_sched_build_topo) as the communicator.
 */
/* What can be refused before anything is printed: the cost parameters (*cost_p) from the
 * environment, ranks in range, whole elements. */
static int sched_check(const rdt_topo_t *topo, const sched_req_t *q, rdt_cost_params_t *cost_p)
{
    rdt_config_t cfg;
    char err[512];
    int n = topo->nranks;
    size_t es = rdt_dtype_size(q->dtype);

    if (rdt_config_load(&cfg, err, sizeof(err)) != RDT_SUCCESS) {
        fprintf(stderr, "rdt_topo: %s\n", err);
        return -1;
    }
    cost_p->alpha = cfg.alpha;
    cost_p->beta = cfg.beta;
    cost_p->gamma = cfg.gamma;
    if (q->root >= n || q->rank >= n) {
        fprintf(stderr, "rdt_topo: --%s %d: the topology has %d rank%s\n",
                q->root >= n ? "root" : "rank", q->root >= n ? q->root : q->rank, n,
                n == 1 ? "" : "s");
        return -1;
    }
    if (q->coll != RDT_COLL_BARRIER && q->bytes % es) {
        fprintf(stderr, "rdt_topo: --bytes %zu is not a whole number of %s elements (%zu bytes)\n",
                q->bytes, rdt_dtype_name(q->dtype), es);
        return -1;
    }
    return 0;
}

static int print_schedule(const rdt_topo_t *topo, const sched_req_t *q,
                          const rdt_cost_params_t *costp, int json)
{
    rdt_cost_params_t cost = *costp;
    int n = topo->nranks, hier = topo->nhosts > 1 && topo->max_local_size > 1;
    int *lowest, r, first = 1, algo, rc = -1;
    size_t es = rdt_dtype_size(q->dtype), count, len;
    uint32_t i;

    count = q->coll == RDT_COLL_BARRIER ? 0 : q->bytes / es;
    lowest = malloc((size_t)n * sizeof(int));
    if (!lowest) {
        fprintf(stderr, "rdt_topo: out of memory for %d ranks\n", n);
        return -1;
    }
    for (r = 0; r < n; r++)
        lowest[r] = topo->host_ranks[topo->host_first[topo->host_of[r]]];
    algo = q->algo >= 0 ? q->algo
                        : (int)rdt_cost_select((rdt_coll_t)q->coll, n, hier ? lowest : NULL,
                                               count * es, &cost);
    if (algo < 0 || !rdt_sched_supported((rdt_coll_t)q->coll, (rdt_algo_t)algo)) {
        fprintf(stderr, "rdt_topo: %s has no %s algorithm\n", rdt_coll_name((rdt_coll_t)q->coll),
                algo < 0 ? "usable" : rdt_algo_name((rdt_algo_t)algo));
        goto out;
    }
    len = count ? count : 1;
    if (json)
        printf(",\n  \"schedule\": {\"coll\": \"%s\", \"algo\": \"%s\", \"forced\": %s, "
               "\"bytes\": %zu, \"dtype\": \"%s\", \"count\": %zu, \"nranks\": %d, "
               "\"nhosts\": %d, \"root\": %d, \"alpha\": %g, \"beta\": %g, \"gamma\": %g,\n"
               "    \"ranks\": [",
               rdt_coll_name((rdt_coll_t)q->coll), rdt_algo_name((rdt_algo_t)algo),
               q->algo >= 0 ? "true" : "false", count * es, rdt_dtype_name(q->dtype), count, n,
               topo->nhosts, q->root, cost.alpha, cost.beta, cost.gamma);
    else
        printf("schedule: %s of %zu bytes (%zu %s per rank) on %d rank%s, %d host%s: %s (%s)\n",
               rdt_coll_name((rdt_coll_t)q->coll), count * es, count, rdt_dtype_name(q->dtype), n,
               n == 1 ? "" : "s", topo->nhosts, topo->nhosts == 1 ? "" : "s",
               rdt_algo_name((rdt_algo_t)algo),
               q->algo >= 0 ? "forced by --algo" : "the selector's choice");
    for (r = 0; r < n; r++) {
        rdt_sched_t *s = NULL;
        rdt_status_t st;

        if (q->rank >= 0 && r != q->rank)
            continue;
        st = rdt_sched_build_topo((rdt_coll_t)q->coll, (rdt_algo_t)algo, r, n, q->root, lowest,
                                  &s);
        if (st != RDT_SUCCESS) {
            fprintf(stderr, "rdt_topo: building rank %d's %s %s schedule failed: %s\n", r,
                    rdt_coll_name((rdt_coll_t)q->coll), rdt_algo_name((rdt_algo_t)algo),
                    rdt_status_str(st));
            goto out;
        }
        if (json)
            printf("%s\n      {\"rank\": %d, \"nunits\": %u, \"nblocks\": %u, \"nrounds\": %u, "
                   "\"ops\": [",
                   first ? "" : ",", r, s->nunits, s->nblocks, s->nrounds);
        else
            printf("rank %d: %u round%s, %u op%s, %u block%s in %u unit%s\n"
                   "  round  op           peer  buf     src     blocks         elements\n",
                   r, s->nrounds, s->nrounds == 1 ? "" : "s", s->nops, s->nops == 1 ? "" : "s",
                   s->nblocks, s->nblocks == 1 ? "" : "s", s->nunits, s->nunits == 1 ? "" : "s");
        first = 0;
        for (i = 0; i < s->nops; i++) {
            const rdt_sched_op_t *op = &s->ops[i];
            int has_src = op->kind == RDT_OPK_RECV_REDUCE || op->kind == RDT_OPK_COPY;
            size_t a, b;
            char blk[32], el[48], peer[16];

            op_elems(s, op, len, &a, &b);
            if (json) {
                printf("%s\n        {\"round\": %u, \"kind\": \"%s\", \"peer\": %d, "
                       "\"buf\": \"%s\", \"src\": ",
                       i ? "," : "", op->round, opk_name(op->kind), (int)op->peer,
                       buf_name(op->buf));
                if (has_src)
                    printf("\"%s\"", buf_name(op->src));
                else
                    printf("null");
                printf(", \"blocks\": [%u, %u], \"elements\": [%zu, %zu]}", op->blk_begin,
                       op->blk_end, a, b);
            } else {
                snprintf(blk, sizeof(blk), "[%u,%u)", op->blk_begin, op->blk_end);
                snprintf(el, sizeof(el), "[%zu,%zu)", a, b);
                if (op->peer >= 0)
                    snprintf(peer, sizeof(peer), "%d", (int)op->peer);
                else
                    snprintf(peer, sizeof(peer), "-");
                printf("  %5u  %-11s  %4s  %-6s  %-6s  %-13s  %s\n", op->round,
                       opk_name(op->kind), peer, buf_name(op->buf),
                       has_src ? buf_name(op->src) : "-", blk, el);
            }
        }
        if (json)
            printf("%s]}", s->nops ? "\n      " : "");
        rdt_sched_destroy(s);
    }
    if (json)
        printf("\n    ]}");
    rc = 0;
out:
    free(lowest);
    return rc;
}

static char *read_file(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) {
        fprintf(stderr, "rdt_topo: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 > cap) {
            char *nb;
            cap = cap ? 2 * cap : 65536;
            if (cap > (64u << 20) || !(nb = realloc(buf, cap))) {
                fprintf(stderr, "rdt_topo: %s: too large (over 64 MiB) or out of memory\n", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        fprintf(stderr, "rdt_topo: %s: read error: %s\n", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len_p = len;
    return buf ? buf : calloc(1, 1);
}

/* "h0,h0,h1" -> a table of RDT_TOPO_NAME_MAX-byte names, as the bootstrap gathers them. */
static char *parse_hosts(const char *list, int *n_p)
{
    size_t i, start = 0, len = strlen(list);
    int n = 1, k = 0;
    char *tab;

    for (i = 0; i < len; i++)
        n += list[i] == ',';
    tab = calloc((size_t)n, RDT_TOPO_NAME_MAX);
    if (!tab) {
        fprintf(stderr, "rdt_topo: out of memory for %d host names\n", n);
        return NULL;
    }
    for (i = 0; i <= len; i++) {
        if (i < len && list[i] != ',')
            continue;
        if (i == start || i - start >= RDT_TOPO_NAME_MAX) {
            fprintf(stderr, "rdt_topo: --hosts: %s host name for rank %d at column %zu\n",
                    i == start ? "empty" : "too long (over 63 characters)", k, start + 1);
            free(tab);
            return NULL;
        }
        memcpy(tab + (size_t)k * RDT_TOPO_NAME_MAX, list + start, i - start);
        k++;
        start = i + 1;
    }
    *n_p = n;
    return tab;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"spec", required_argument, NULL, 's'},
                                             {"file", required_argument, NULL, 'f'},
                                             {"xml", required_argument, NULL, 'x'},
                                             {"hosts", required_argument, NULL, 'H'},
                                             {"ranks", required_argument, NULL, 'n'},
                                             {"sysfs", required_argument, NULL, 'S'},
                                             {"coll", required_argument, NULL, 'c'},
                                             {"bytes", required_argument, NULL, 'b'},
                                             {"algo", required_argument, NULL, 'a'},
                                             {"dtype", required_argument, NULL, 'd'},
                                             {"root", required_argument, NULL, 'r'},
                                             {"rank", required_argument, NULL, 'R'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *spec = NULL, *file = NULL, *xml = NULL, *hosts = NULL, *sysfs = NULL;
    int c, json = 0, nsrc = 0, ranks = 1, rc = 1;
    char err[512] = "";
    rdt_topo_host_t *host = NULL;
    rdt_topo_probe_t probe;
    int have_probe = 0;
    rdt_topo_t *topo = NULL;
    sched_req_t q = {-1, -1, 0, 0, RDT_FLOAT32, 0, -1};
    rdt_cost_params_t cost;
    int have_root = 0, have_rank = 0, have_dtype = 0;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if ((q.coll = rdt_coll_from_name(optarg)) < 0) {
                fprintf(stderr, "rdt_topo: --coll '%s': not a collective (allreduce, "
                                "reduce_scatter, allgather, broadcast, reduce, barrier, "
                                "alltoall)\n", optarg);
                return 2;
            }
            break;
        case 'a':
            if ((q.algo = rdt_algo_from_name(optarg)) < 0) {
                fprintf(stderr, "rdt_topo: --algo '%s': not an algorithm (ring, recdbl, "
                                "rabenseifner, tree, pairwise, hier, hiertree)\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_size(optarg, &q.bytes)) {
                fprintf(stderr, "rdt_topo: --bytes '%s': expected a size such as 8, 64K, 64M\n",
                        optarg);
                return 2;
            }
            q.have_bytes = 1;
            break;
        case 'd': {
            int t;
            for (t = 0; t < RDT_DTYPE_COUNT; t++)
                if (!strcmp(optarg, rdt_dtype_name((rdt_dtype_t)t)))
                    break;
            if (t == RDT_DTYPE_COUNT) {
                fprintf(stderr, "rdt_topo: --dtype '%s': not a type (int8, uint8, int32, "
                                "uint32, int64, uint64, float16, bfloat16, float32, float64)\n",
                        optarg);
                return 2;
            }
            q.dtype = (rdt_dtype_t)t;
            have_dtype = 1;
            break;
        }
        case 'r':
            if (parse_nonneg("--root", optarg, &q.root))
                return 2;
            have_root = 1;
            break;
        case 'R':
            if (parse_nonneg("--rank", optarg, &q.rank))
                return 2;
            have_rank = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 's':
            spec = optarg, nsrc++;
            break;
        case 'f':
            file = optarg, nsrc++;
            break;
        case 'x':
            xml = optarg, nsrc++;
            break;
        case 'H':
            hosts = optarg, nsrc++;
            break;
        case 'S':
            sysfs = optarg;
            break;
        case 'n': {
            char *end;
            long v;
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > RDT_TOPO_MAX_LOCAL) {
                fprintf(stderr, "rdt_topo: --ranks '%s': expected 1 to %d\n", optarg,
                        RDT_TOPO_MAX_LOCAL);
                return 2;
            }
            ranks = (int)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || nsrc > 1) {
        fprintf(stderr, "rdt_topo: %s\n",
                optind < argc ? "unexpected argument"
                              : "give at most one of --spec, --file, --xml, --hosts");
        usage(stderr);
        return 2;
    }
    if (q.coll < 0 && (q.algo >= 0 || q.have_bytes || have_dtype || have_root || have_rank)) {
        fprintf(stderr, "rdt_topo: --algo, --bytes, --dtype, --root and --rank go with --coll\n");
        return 2;
    }
    if (q.coll >= 0 && q.coll != RDT_COLL_BARRIER && !q.have_bytes) {
        fprintf(stderr, "rdt_topo: --coll %s needs --bytes\n", rdt_coll_name((rdt_coll_t)q.coll));
        return 2;
    }
    if (q.coll >= 0 && q.algo >= 0 && !rdt_sched_supported((rdt_coll_t)q.coll, (rdt_algo_t)q.algo)) {
        fprintf(stderr, "rdt_topo: %s has no %s algorithm\n", rdt_coll_name((rdt_coll_t)q.coll),
                rdt_algo_name((rdt_algo_t)q.algo));
        return 2;
    }
    if (sysfs && !xml) {
        fprintf(stderr, "rdt_topo: --sysfs goes with --xml\n");
        return 2;
    }
    if (ranks != 1 && (spec || file || hosts)) {
        fprintf(stderr, "rdt_topo: --ranks goes with this machine or --xml\n");
        return 2;
    }

    if (spec) {
        if (rdt_topo_from_spec(spec, &topo, err, sizeof(err)))
            goto fail;
    } else if (file) {
        size_t len;
        char *text = read_file(file, &len);
        int r;
        if (!text)
            return 1;
        r = rdt_topo_from_text(text, len, file, &topo, err, sizeof(err));
        free(text);
        if (r)
            goto fail;
    } else if (hosts) {
        int n, r;
        char *tab = parse_hosts(hosts, &n);
        if (!tab)
            return 1;
        r = rdt_topo_from_hosts(n, tab, RDT_TOPO_NAME_MAX, NULL, &topo, err, sizeof(err));
        free(tab);
        if (r)
            goto fail;
    } else {
        if (xml ? rdt_topo_host_from_xml(xml, sysfs, &host, err, sizeof(err))
                : rdt_topo_host_detect(&host, err, sizeof(err)))
            goto fail;
        if (!xml) {
            if (rdt_topo_local_probe(0, &probe, err, sizeof(err)))
                goto fail;
            have_probe = 1;
        }
        if (rdt_topo_from_host(host, NULL, ranks, &topo, err, sizeof(err)))
            goto fail;
    }

    if (q.coll >= 0 && sched_check(topo, &q, &cost))
        goto out;
    if (json) {
        printf("{\n");
        if (host) {
            printf("  \"host\": ");
            rdt_topo_host_write_json(host, stdout, 2);
            printf(",\n");
        }
        if (have_probe) {
            printf("  \"process\": ");
            rdt_topo_probe_write_json(&probe, stdout, 2);
            printf(",\n");
        }
        printf("  \"topology\": ");
        rdt_topo_write_json(topo, stdout, 2);
        if (q.coll >= 0 && print_schedule(topo, &q, &cost, 1))
            goto out;
        printf("\n}\n");
    } else {
        if (host)
            rdt_topo_host_write_text(host, stdout);
        if (have_probe) {
            printf("this process: cpu %d%s, numa ", probe.cpu, probe.bound ? " (bound)" : "");
            if (probe.loc.numa >= 0)
                printf("%d", probe.loc.numa);
            else
                printf("unknown");
            if (probe.loc.nic >= 0)
                printf(", nearest nic %d (%s%s%s)\n", probe.loc.nic, probe.nic_name,
                       probe.nic_netdev[0] && strcmp(probe.nic_netdev, probe.nic_name) ? ", " : "",
                       strcmp(probe.nic_netdev, probe.nic_name) ? probe.nic_netdev : "");
            else
                printf(", no nic\n");
        }
        if (host)
            printf("placement of %d local rank%s:\n", ranks, ranks == 1 ? "" : "s");
        rdt_topo_write_text(topo, stdout);
        if (q.coll >= 0 && print_schedule(topo, &q, &cost, 0))
            goto out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "rdt_topo: writing the output failed: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "rdt_topo: %s\n", err);
out:
    rdt_topo_destroy(topo);
    rdt_topo_host_destroy(host);
    return rc;
}
