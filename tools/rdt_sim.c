/*
 * rdt_sim - price the schedules of a collective with the alpha-beta-gamma model, and replay them
 * in the simulator.
 *
 *   rdt_sim --ranks 4096 --bytes 64M [--alpha 5e-6] [--beta 2.5e-10] [--gamma 1e-10]
 *           [--coll allreduce|...|all] [--json] [--hosts 3,1,4 | --hosts 8x8]
 *   rdt_sim --ranks 64 --bytes 1M --check [--algo ring] [--dtype float32] [--op sum]
 *           [--slice N] [--root R] [--inexact]
 *
 * For each algorithm of the collective it prints the price of the real schedules (every rank's
 * schedule built and priced round by round), the closed form the selector uses, and both as a
 * ratio to the lower bound; the algorithm with the cheapest closed form (the selector's choice)
 * is marked. --bytes is per rank (the count the user passes times the element size). --check
 * replays every rank's schedule on real memory, in place and out of place, and checks results
 * (--inexact: float sums that round; then every rank must agree bit for bit, see sched.h).
 * --hosts gives the ranks per host (consecutive ranks on a host, as a launcher places them):
 * schedules are built for it, priced in the two-level model (--alpha/--beta are the network's,
 * shared memory's are derived: rdt_cost_shm_params), the selector's choice is the one it makes
 * on that shape, and the bytes crossing between hosts are printed (total, and the most one host
 * sends; --check also the least and most one host sends and receives); --ranks may then be left
 * out. Every collective takes --hosts; prices are for root 0, --check uses --root.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdmatrain.h"
#include "sched.h"

typedef struct opts {
    int ranks;
    size_t bytes;
    rdt_cost_params_t cost;
    int coll; /* -1: all */
    int algo; /* -1: all */
    int json;
    int check;
    size_t slice;
    rdt_dtype_t dtype;
    rdt_op_t op;
    int root;
    int inexact;
    int *host_of; /* --hosts: ranks entries, else NULL */
    int nhosts;
} opts_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rdt_sim --ranks N --bytes SIZE [--alpha S] [--beta S/B] [--gamma S/B]\n"
            "               [--coll NAME|all] [--algo NAME] [--json]\n"
            "               [--check [--dtype T] [--op O] [--slice ELEMS] [--root R] [--inexact]]\n"
            "               [--hosts N,N,... | --hosts HxL]   ranks per host (then --ranks may go)\n"
            "  SIZE takes K, M, G suffixes (powers of 1024) and is per rank, as the count passed\n"
            "  to the call times the element size. Defaults: --alpha 5e-6 --beta 2.5e-10\n"
            "  --gamma 1e-10 --coll allreduce --dtype float32 --op sum.\n"
            "  collectives: allreduce reduce_scatter allgather broadcast reduce barrier alltoall\n"
            "  algorithms:  ring recdbl rabenseifner tree pairwise hier hiertree\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mult = 1;

    if (end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

/* "3,1,4" (ranks per host) or "8x8" (hosts x ranks per host) into o->host_of. */
static int parse_hosts(const char *s, opts_t *o)
{
    int sizes[4096], n = 0, total = 0, h, k;
    char *end;
    long a = strtol(s, &end, 10);

    if (end != s && (*end == 'x' || *end == 'X')) {
        long b = strtol(end + 1, &end, 10);
        if (*end || a < 1 || b < 1 || a > 4096 || a * b > (1 << 20))
            return -1;
        for (h = 0; h < a; h++)
            sizes[n++] = (int)b;
    } else {
        for (;;) {
            long v = strtol(s, &end, 10);
            if (end == s || v < 1 || v > (1 << 20) || n == 4096)
                return -1;
            sizes[n++] = (int)v;
            if (*end == '\0')
                break;
            if (*end != ',')
                return -1;
            s = end + 1;
        }
    }
    for (h = 0; h < n; h++) {
        total += sizes[h];
        if (total > (1 << 20))
            return -1;
    }
    free(o->host_of);
    o->host_of = malloc((size_t)total * sizeof(int));
    if (!o->host_of)
        return -1;
    for (h = 0, total = 0; h < n; h++)
        for (k = 0; k < sizes[h]; k++)
            o->host_of[total++] = h;
    o->nhosts = n;
    o->ranks = total;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return (end == s || *end || *out < 0) ? -1 : 0;
}

static int lookup(const char *s, const char *(*name)(int), int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (!strcmp(s, name(i)))
            return i;
    return -1;
}

static const char *dtype_name_i(int i)
{
    return rdt_dtype_name((rdt_dtype_t)i);
}

static const char *op_name_i(int i)
{
    return rdt_op_name((rdt_op_t)i);
}

static void human_bytes(size_t b, char *out, size_t n)
{
    if (b >= (1u << 30) && b % (1u << 30) == 0)
        snprintf(out, n, "%zu GiB", b >> 30);
    else if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(out, n, "%zu MiB", b >> 20);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, n, "%zu KiB", b >> 10);
    else
        snprintf(out, n, "%zu B", b);
}

/* Price every algorithm of one collective; print a table or a JSON object. */
static void price_coll(const opts_t *o, rdt_coll_t coll, int first)
{
    double priced[RDT_ALGO_COUNT], model[RDT_ALGO_COUNT], secs[RDT_ALGO_COUNT];
    double lb = rdt_cost_lower_bound(coll, o->ranks, o->bytes, &o->cost);
    rdt_price_info_t info[RDT_ALGO_COUNT];
    rdt_cost_params_t shm;
    int a, best, n = 0;
    char hb[32];

    rdt_cost_shm_params(&o->cost, &shm);
    best = (int)rdt_cost_select(coll, o->ranks, o->host_of, o->bytes, &o->cost);
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        double t0;
        if (!rdt_sched_supported(coll, a) || (o->algo >= 0 && a != o->algo))
            continue;
        t0 = now();
        priced[a] = rdt_sim_price_topo(coll, a, o->ranks, o->host_of, o->bytes, &o->cost, &shm,
                                       &info[a]);
        secs[a] = now() - t0;
        model[a] = rdt_cost_model_topo(coll, a, o->ranks, o->host_of, o->bytes, &o->cost, &shm);
    }
    human_bytes(o->bytes, hb, sizeof(hb));
    if (o->json) {
        printf("%s{\"coll\": \"%s\", \"ranks\": %d, \"bytes\": %zu, \"alpha\": %g, \"beta\": %g, "
               "\"gamma\": %g, \"lower_bound\": %.9g, \"algorithms\": [",
               first ? "" : ",\n", rdt_coll_name(coll), o->ranks, o->bytes, o->cost.alpha,
               o->cost.beta, o->cost.gamma, lb);
        for (a = 0; a < RDT_ALGO_COUNT; a++) {
            if (!rdt_sched_supported(coll, a) || (o->algo >= 0 && a != o->algo))
                continue;
            printf("%s{\"algo\": \"%s\", \"priced\": %.9g, \"closed_form\": %.9g, "
                   "\"priced_over_bound\": %.6g, \"closed_form_over_bound\": %.6g, "
                   "\"selected\": %s, \"pricing_seconds\": %.3f",
                   n++ ? ", " : "", rdt_algo_name(a), priced[a], model[a],
                   lb > 0 ? priced[a] / lb : 1.0, lb > 0 ? model[a] / lb : 1.0,
                   a == best ? "true" : "false", secs[a]);
            if (o->host_of)
                printf(", \"inter_host_bytes\": %.0f, \"max_host_bytes\": %.0f",
                       info[a].inter_host_bytes, info[a].max_host_bytes);
            printf("}");
        }
        if (o->host_of)
            printf("], \"hosts\": %d}", o->nhosts);
        else
            printf("]}");
        return;
    }
    printf("%s%s on %d ranks, %s per rank (alpha %g s, beta %g s/B, gamma %g s/B)\n",
           first ? "" : "\n", rdt_coll_name(coll), o->ranks, hb, o->cost.alpha, o->cost.beta,
           o->cost.gamma);
    if (o->host_of)
        printf("  %d hosts; shared memory inside a host: alpha %g s, beta %g s/B; inter-host "
               "bytes: total, and the most one host sends\n",
               o->nhosts, shm.alpha, shm.beta);
    printf("  lower bound %.6g s (one level)\n", lb);
    printf("  %-14s %14s %14s %9s %9s %10s", "algorithm", "priced (s)", "closed (s)", "pr/bound",
           "cf/bound", "pricing");
    if (o->host_of)
        printf(" %14s %14s", "inter-host B", "max/host B");
    printf("\n");
    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        if (!rdt_sched_supported(coll, a) || (o->algo >= 0 && a != o->algo))
            continue;
        printf("  %-14s %14.6g %14.6g %9.3f %9.3f %9.3fs", rdt_algo_name(a), priced[a], model[a],
               lb > 0 ? priced[a] / lb : 1.0, lb > 0 ? model[a] / lb : 1.0, secs[a]);
        if (o->host_of)
            printf(" %14.0f %14.0f", info[a].inter_host_bytes, info[a].max_host_bytes);
        printf("%s\n", a == best ? "   <- selected (cheapest closed form)" : "");
    }
}

/* Replay every algorithm of one collective, in place and out of place. Returns failures. */
static int check_coll(const opts_t *o, rdt_coll_t coll)
{
    size_t es = rdt_dtype_size(o->dtype);
    size_t count = es && coll != RDT_COLL_BARRIER ? o->bytes / es : 0;
    int a, ip, bad = 0;

    for (a = 0; a < RDT_ALGO_COUNT; a++) {
        if (!rdt_sched_supported(coll, a) || (o->algo >= 0 && a != o->algo))
            continue;
        for (ip = 0; ip < 2; ip++) {
            rdt_sim_params_t prm = {.coll = coll,
                                    .algo = a,
                                    .nranks = o->ranks,
                                    .root = o->root,
                                    .count = count,
                                    .slice = o->slice,
                                    .dtype = o->dtype,
                                    .op = o->op,
                                    .in_place = ip,
                                    .inexact = o->inexact,
                                    .host_of = o->host_of};
            rdt_sim_result_t res;
            double t0 = now();
            rdt_status_t st = rdt_sim_run(&prm, &res);
            printf("check %-14s %-13s %-12s %d ranks, %zu x %s, %s: %s (%u rounds, %llu "
                   "messages per slice, %llu bytes sent by the busiest rank",
                   rdt_coll_name(coll), rdt_algo_name(a), ip ? "in place" : "out of place",
                   o->ranks, count, rdt_dtype_name(o->dtype), rdt_op_name(o->op),
                   st == RDT_SUCCESS ? "ok" : res.error, res.max_rounds,
                   (unsigned long long)res.msgs, (unsigned long long)res.max_rank_bytes);
            if (o->host_of)
                printf(", %llu bytes between hosts, %llu-%llu sent and %llu-%llu received per "
                       "host",
                       (unsigned long long)res.inter_host_bytes,
                       (unsigned long long)res.min_host_bytes,
                       (unsigned long long)res.max_host_bytes,
                       (unsigned long long)res.min_host_recv_bytes,
                       (unsigned long long)res.max_host_recv_bytes);
            printf(", %.2f s)\n", now() - t0);
            bad += st != RDT_SUCCESS;
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ranks", required_argument, NULL, 'n'}, {"bytes", required_argument, NULL, 'b'},
        {"alpha", required_argument, NULL, 'a'}, {"beta", required_argument, NULL, 'B'},
        {"gamma", required_argument, NULL, 'g'}, {"coll", required_argument, NULL, 'c'},
        {"algo", required_argument, NULL, 'A'},  {"json", no_argument, NULL, 'j'},
        {"check", no_argument, NULL, 'k'},       {"slice", required_argument, NULL, 's'},
        {"dtype", required_argument, NULL, 'd'}, {"op", required_argument, NULL, 'o'},
        {"root", required_argument, NULL, 'r'},  {"help", no_argument, NULL, 'h'},
        {"inexact", no_argument, NULL, 'i'},     {"hosts", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0}};
    opts_t o = {.cost = {5e-6, 2.5e-10, 1e-10},
                .coll = RDT_COLL_ALLREDUCE,
                .algo = -1,
                .dtype = RDT_FLOAT32,
                .op = RDT_SUM};
    int c, have_bytes = 0, bad = 0, first = 1, ranks_arg = 0;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int v;
        switch (c) {
        case 'n':
            ranks_arg = atoi(optarg);
            if (ranks_arg < 1) {
                fprintf(stderr, "rdt_sim: bad --ranks '%s'\n", optarg);
                return 2;
            }
            break;
        case 'H':
            if (parse_hosts(optarg, &o)) {
                fprintf(stderr, "rdt_sim: bad --hosts '%s' (ranks per host: 3,1,4; or hosts x "
                                "ranks: 8x8)\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_size(optarg, &o.bytes)) {
                fprintf(stderr, "rdt_sim: bad --bytes '%s' (e.g. 8, 64K, 64M)\n", optarg);
                return 2;
            }
            have_bytes = 1;
            break;
        case 'a':
        case 'B':
        case 'g':
            if (parse_double(optarg, c == 'a'   ? &o.cost.alpha
                                     : c == 'B' ? &o.cost.beta
                                                : &o.cost.gamma)) {
                fprintf(stderr, "rdt_sim: bad number '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c':
            o.coll = strcmp(optarg, "all") ? rdt_coll_from_name(optarg) : -1;
            if (strcmp(optarg, "all") && o.coll < 0) {
                fprintf(stderr, "rdt_sim: unknown collective '%s'\n", optarg);
                return 2;
            }
            break;
        case 'A':
            o.algo = rdt_algo_from_name(optarg);
            if (o.algo < 0) {
                fprintf(stderr, "rdt_sim: unknown algorithm '%s'\n", optarg);
                return 2;
            }
            break;
        case 'j':
            o.json = 1;
            break;
        case 'k':
            o.check = 1;
            break;
        case 's':
            if (parse_size(optarg, &o.slice)) {
                fprintf(stderr, "rdt_sim: bad --slice '%s'\n", optarg);
                return 2;
            }
            break;
        case 'd':
            v = lookup(optarg, dtype_name_i, RDT_DTYPE_COUNT);
            if (v < 0) {
                fprintf(stderr, "rdt_sim: unknown dtype '%s'\n", optarg);
                return 2;
            }
            o.dtype = (rdt_dtype_t)v;
            break;
        case 'o':
            v = lookup(optarg, op_name_i, RDT_OP_COUNT);
            if (v < 0) {
                fprintf(stderr, "rdt_sim: unknown op '%s'\n", optarg);
                return 2;
            }
            o.op = (rdt_op_t)v;
            break;
        case 'r':
            o.root = atoi(optarg);
            break;
        case 'i':
            o.inexact = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.host_of && ranks_arg && ranks_arg != o.ranks) {
        fprintf(stderr, "rdt_sim: --ranks %d but --hosts places %d ranks\n", ranks_arg, o.ranks);
        return 2;
    }
    if (!o.host_of)
        o.ranks = ranks_arg;
    if (optind < argc || o.ranks < 1 || !have_bytes) {
        usage(stderr);
        return 2;
    }
    if (o.root < 0 || o.root >= o.ranks) {
        fprintf(stderr, "rdt_sim: --root %d is not a rank of %d\n", o.root, o.ranks);
        return 2;
    }
    if (o.json && !o.check)
        printf("[");
    for (c = 0; c < RDT_COLL_COUNT; c++) {
        if (o.coll >= 0 && c != o.coll)
            continue;
        if (o.algo >= 0 && !rdt_sched_supported(c, o.algo)) {
            if (o.coll >= 0) {
                fprintf(stderr, "rdt_sim: %s has no %s algorithm\n", rdt_coll_name(c),
                        rdt_algo_name(o.algo));
                return 2;
            }
            continue;
        }
        if (o.check) {
            bad += check_coll(&o, c);
        } else {
            price_coll(&o, c, first);
            first = 0;
        }
    }
    if (o.json && !o.check)
        printf("]\n");
    free(o.host_of);
    return bad ? 1 : 0;
}
