/*
 * config.c - the knob table. Each entry: environment variable, default, help, and where its
 * parsed value goes. rdt_config_print() walks the same table, so documentation cannot drift.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "topo.h"

/* K_INT: an integer from 1 to 16; K_BOOL: 0 or 1; K_INDEX: "auto" (-1) or 0 to 65535;
 * K_SIZE_AUTO: "auto" (RDT_CONFIG_SIZE_AUTO, the consumer decides) or a size. */
typedef enum {
    K_LOG,
    K_STR,
    K_SECONDS,
    K_SIZE,
    K_SIZE_AUTO,
    K_INT,
    K_BOOL,
    K_INDEX,
    K_DOUBLE,
    K_RAW
} knob_kind_t;

typedef struct knob {
    const char *name;
    const char *def;
    knob_kind_t kind;
    size_t off;   /* offset of the field in rdt_config_t */
    size_t len;   /* for K_STR: size of the char array */
    const char *help;
} knob_t;

#define F(field) offsetof(rdt_config_t, field)
#define S(field) offsetof(rdt_config_t, field), sizeof(((rdt_config_t *)0)->field)

static const knob_t knobs[] = {
    {"RDT_LOG", "warn", K_LOG, F(log_level), 0, "log level: error, warn, info or debug"},
    {"RDT_LOG_SUBSYS", "", K_STR, S(log_subsys),
     "comma-separated subsystems to log (bootstrap,tcp,exec,select,comm); empty = all"},
    {"RDT_TIMEOUT", "300", K_SECONDS, F(timeout_s), 0,
     "seconds an operation may wait for its peers before it fails naming them"},
    {"RDT_STALL_WARN", "0.2", K_DOUBLE, F(stall_warn), 0,
     "fraction of an operation's timeout after which one warning line says which ranks it is "
     "still waiting for and where in the schedule (0 to below 1; 0 = never)"},
    {"RDT_CHECK", "0", K_BOOL, F(check), 0,
     "1: before each collective the ranks exchange (sequence number, collective, dtype, op, "
     "count, root) and a mismatch fails that call on every rank with RDT_ERR_MISMATCH naming "
     "what each rank called; costs one small allgather per collective (debugging)"},
    {"RDT_CONNECT_TIMEOUT", "60", K_SECONDS, F(connect_timeout_s), 0,
     "seconds the rendezvous and each connection to a peer may take"},
    {"RDT_ALGO", "", K_STR, S(algo),
     "force algorithms per collective, e.g. allreduce:ring,broadcast:tree "
     "(ring, recdbl, rabenseifner, tree, pairwise, hier, hiertree)"},
    {"RDT_CHUNK", "0", K_SIZE, F(chunk), 0,
     "bytes per pipelined slice (suffix k, m, g); 0 = chosen per call by the cost model"},
    {"RDT_SLICES", "3", K_INT, F(slices), 0, "slices of one collective in flight at once (1-16)"},
    {"RDT_POLL_US", "200", K_DOUBLE, F(poll_us), 0,
     "microseconds a waiting call polls for completions (yielding the core between polls) "
     "before it sleeps in the kernel; 0 sleeps at once"},
    {"RDT_SOCKBUF", "0", K_SIZE, F(sockbuf), 0,
     "TCP SO_SNDBUF/SO_RCVBUF in bytes; 0 keeps the kernel's autotuning"},
    {"RDT_IFNAME", "", K_STR, S(ifname),
     "network interface for data connections; empty = the one that reaches the root"},
    {"RDT_TRANSPORT", "auto", K_STR, S(transport),
     "transport: auto = shared memory between ranks of one host and, between hosts, verbs when "
     "a device can be opened, else tcp; tcp or verbs (RDMA: the first device with an active "
     "port) for every peer; shm for every peer (all ranks on one host)"},
    {"RDT_SHM_RING", "256k", K_SIZE, F(shm_ring), 0,
     "shm: bytes of the ring for each ordered pair of ranks of a host (rounded up to a power "
     "of two, 4k to 1g)"},
    {"RDT_SHM_RNDV", "32k", K_SIZE, F(shm_rndv), 0,
     "shm: messages of this many bytes or more are copied once, by the receiver straight from "
     "the sender's memory (process_vm_readv); smaller ones through the ring; 0 = always the "
     "ring"},
    {"RDT_SHM_ONESHOT", "16k", K_SIZE, F(shm_oneshot), 0,
     "shm: with every rank on one host, allreduce, allgather, reduce_scatter, alltoall and "
     "barrier with at most this many bytes per rank (1 MiB - 64 at most) run as one exchange through "
     "shared memory (each rank writes its part once and reads the others') instead of a "
     "schedule of messages; 0 = never; RDT_ALGO forcing a collective's algorithm turns it off "
     "for that collective"},
    {"RDT_SHM_DIRECT", "32k", K_SIZE, F(shm_direct), 0,
     "shm: with every rank on one host, a collective of at least this many bytes per rank "
     "whose buffers every rank took from rdt_mem_alloc runs direct: each rank reads (and for "
     "allreduce and reduce writes) the others' buffers in place, one pass over the data; other "
     "buffers keep the schedules (one extra exchange of 72 bytes decides); 0 = never; RDT_ALGO "
     "forcing a collective's algorithm turns it off for that collective"},
    {"RDT_SHM_ONESHOT_ALLREDUCE", "1m", K_SIZE, F(shm_oneshot_ar), 0,
     "shm: with every rank on one host, an allreduce above RDT_SHM_ONESHOT that does not run "
     "direct (below RDT_SHM_DIRECT, or not every rank's buffers rdt_mem_alloc memory) or staged "
     "(RDT_SHM_STAGED) still runs as one exchange through shared memory when each rank's "
     "vector is at most this many bytes (and fits the 1 MiB - 64 share buffer); larger ones "
     "keep the schedules; 0 = only up to RDT_SHM_ONESHOT"},
    {"RDT_SHM_STAGED", "16m", K_SIZE, F(shm_staged), 0,
     "shm: with every rank on one host, an allreduce whose vectors total at least this many "
     "bytes over the ranks (count x element size x ranks; each rank's at least RDT_SHM_DIRECT) "
     "and whose buffers are not all rdt_mem_alloc memory runs staged: in chunks through the "
     "shared one-shot buffers, each rank reducing its slice of every rank's chunk in cache, no "
     "system call per message; smaller ones, whose vectors stay in the last-level cache, keep "
     "the schedules' single kernel copy. When the host has more of the ranks than CPUs, every "
     "allreduce from RDT_SHM_DIRECT bytes per rank runs staged (a schedule's messages then cost "
     "context switches). 0 = never"},
    {"RDT_SHM_STAGED_CACHED", "auto", K_SIZE_AUTO, F(shm_staged_cached), 0,
     "shm: an allreduce every rank of one host calls in place, on at most as many ranks as "
     "CPUs, whose vector is too large for the one-shot exchange but at most this many bytes "
     "per rank also runs staged (unless RDT_SHM_STAGED=0): such a vector sits in its rank's "
     "L2, and the schedule's kernel copies of the others' freshly written lines cost more than "
     "the staged pass; auto = 3/4 of the L2 cache (sysconf; 0 where unknown); 0 = never"},
    {"RDT_IB_DEV", "", K_STR, S(ib_dev),
     "RDMA device and port for verbs, name[:port] (e.g. mlx5_0:1, rxe0); empty = the first "
     "device with an active port"},
    {"RDT_IB_GID_INDEX", "auto", K_INDEX, F(ib_gid_index), 0,
     "GID table index for RoCE; auto = a RoCE v2 GID that is not link-local, IPv4 preferred"},
    {"RDT_IB_RNDV", "auto", K_SIZE_AUTO, F(ib_rndv), 0,
     "verbs: messages of this many bytes or more are written straight into the receiver's "
     "buffer (zero-copy rendezvous); smaller ones are copied through registered slots; "
     "0 = always copy; auto = 64k, but 0 on a software device (rxe, siw), where the "
     "rendezvous round trip costs more than the copy"},
    {"RDT_IB_REG_CACHE", "0", K_BOOL, F(ib_reg_cache), 0,
     "verbs: 1 keeps buffers registered after a zero-copy transfer for the next one (faster, "
     "but only safe if the program never frees such a buffer while the communicator lives; "
     "rdt_mem_register is the safe way to keep a buffer registered)"},
    {"RDT_IB_CM", "tcp", K_STR, S(ib_cm),
     "verbs: how a queue pair is connected: tcp = its connection record goes over a TCP side "
     "channel on the data-plane address, which stays open to notice a dead peer; rdmacm = "
     "through librdmacm (rdma_connect/rdma_accept, the record as private data; needed for "
     "iWARP devices such as siw); every rank must use the same"},
    {"RDT_HOSTNAME", "", K_STR, S(hostname), "host identity of this rank; empty = gethostname()"},
    {"RDT_BIND", "none", K_STR, S(bind),
     "bind each rank at communicator creation, within the CPUs it may use: none; core = one "
     "core (local rank l of L on its host: core l*C/L of the C cores); numa = every CPU of that "
     "core's NUMA node"},
    {"RDT_ALPHA", "10e-6", K_DOUBLE, F(alpha), 0,
     "cost model: seconds of latency per message, for algorithm selection"},
    {"RDT_BETA", "3.3e-10", K_DOUBLE, F(beta), 0, "cost model: seconds per byte on the wire"},
    {"RDT_GAMMA", "1.25e-10", K_DOUBLE, F(gamma), 0, "cost model: seconds per byte reduced"},
    {"RDT_RANK", NULL, K_RAW, F(rdt_rank), 0, "rank of this process (set by the launcher)"},
    {"RDT_SIZE", NULL, K_RAW, F(rdt_size), 0, "number of ranks (set by the launcher)"},
    {"RDT_LOCAL_RANK", NULL, K_RAW, F(rdt_local_rank), 0, "rank on this host (launcher)"},
    {"RDT_LOCAL_SIZE", NULL, K_RAW, F(rdt_local_size), 0,
     "ranks on this host (launcher; lets RDT_BIND bind before the address exchange)"},
    {"RDT_ROOT", NULL, K_RAW, F(rdt_root), 0, "rendezvous address host:port; rank 0 listens"},
    {"RDT_TOKEN", NULL, K_RAW, F(rdt_token), 0, "job token every connection must present"},
    {"SLURM_PROCID", NULL, K_RAW, F(slurm_procid), 0, "rank under srun"},
    {"SLURM_NTASKS", NULL, K_RAW, F(slurm_ntasks), 0, "ranks under srun"},
    {"SLURM_LOCALID", NULL, K_RAW, F(slurm_localid), 0, "local rank under srun"},
    {"SLURM_JOB_ID", NULL, K_RAW, F(slurm_job_id), 0, "token source under srun"},
    {"OMPI_COMM_WORLD_RANK", NULL, K_RAW, F(ompi_rank), 0, "rank under Open MPI's mpirun"},
    {"OMPI_COMM_WORLD_SIZE", NULL, K_RAW, F(ompi_size), 0, "ranks under Open MPI's mpirun"},
    {"OMPI_COMM_WORLD_LOCAL_RANK", NULL, K_RAW, F(ompi_local_rank), 0, "local rank under mpirun"},
    {"OMPI_COMM_WORLD_LOCAL_SIZE", NULL, K_RAW, F(ompi_local_size), 0,
     "ranks on this host under mpirun"},
    {"OMPI_MCA_ess_base_jobid", NULL, K_RAW, F(ompi_jobid), 0, "token source under mpirun"},
    {"RANK", NULL, K_RAW, F(torch_rank), 0, "rank under torchrun"},
    {"WORLD_SIZE", NULL, K_RAW, F(torch_world_size), 0, "ranks under torchrun"},
    {"LOCAL_RANK", NULL, K_RAW, F(torch_local_rank), 0, "local rank under torchrun"},
    {"LOCAL_WORLD_SIZE", NULL, K_RAW, F(torch_local_world_size), 0,
     "ranks on this host under torchrun"},
    {"MASTER_ADDR", NULL, K_RAW, F(master_addr), 0, "rendezvous host when RDT_ROOT is unset"},
    {"MASTER_PORT", NULL, K_RAW, F(master_port), 0, "rendezvous port when RDT_ROOT is unset"},
    {"TORCHELASTIC_RUN_ID", NULL, K_RAW, F(torch_run_id), 0, "token source under torchrun"},
};

#undef F
#undef S

/* Parse "1.5", "4k", "16M", "1g" into bytes. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024.0; end++; break;
    case 'm': case 'M': v *= 1024.0 * 1024.0; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024.0 * 1024.0; end++; break;
    default: break;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || v > 1e18)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static rdt_status_t apply(const knob_t *k, const char *val, rdt_config_t *cfg, char *err,
                          size_t errlen)
{
    char *field = (char *)cfg + k->off;
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    double d;
    size_t z;
    int i;

    switch (k->kind) {
    case K_LOG:
        for (i = 0; i < 4; i++) {
            if (strcasecmp(val, levels[i]) == 0) {
                *(int *)field = i;
                return RDT_SUCCESS;
            }
        }
        snprintf(err, errlen, "%s='%s' is not a log level (error, warn, info or debug)", k->name,
                 val);
        return RDT_ERR_CONFIG;
    case K_STR:
        if (strlen(val) >= k->len) {
            snprintf(err, errlen, "%s is longer than %zu characters", k->name, k->len - 1);
            return RDT_ERR_CONFIG;
        }
        memcpy(field, val, strlen(val) + 1);
        return RDT_SUCCESS;
    case K_SECONDS:
        if (parse_double(val, &d) || d <= 0) {
            snprintf(err, errlen, "%s='%s' is not a positive number of seconds", k->name, val);
            return RDT_ERR_CONFIG;
        }
        *(double *)field = d;
        return RDT_SUCCESS;
    case K_DOUBLE:
        if (parse_double(val, &d) || d < 0) {
            snprintf(err, errlen, "%s='%s' is not a non-negative number", k->name, val);
            return RDT_ERR_CONFIG;
        }
        *(double *)field = d;
        return RDT_SUCCESS;
    case K_SIZE_AUTO:
        if (strcasecmp(val, "auto") == 0) {
            *(size_t *)field = RDT_CONFIG_SIZE_AUTO;
            return RDT_SUCCESS;
        }
        /* fall through */
    case K_SIZE:
        if (parse_size(val, &z)) {
            snprintf(err, errlen, "%s='%s' is not %sa size in bytes (e.g. 512k, 4M)", k->name,
                     val, k->kind == K_SIZE_AUTO ? "'auto' or " : "");
            return RDT_ERR_CONFIG;
        }
        *(size_t *)field = z;
        return RDT_SUCCESS;
    case K_INT:
    case K_BOOL:
    case K_INDEX: {
        int lo = k->kind == K_INT, hi = k->kind == K_INT ? 16 : k->kind == K_BOOL ? 1 : 65535;
        if (k->kind == K_INDEX && strcasecmp(val, "auto") == 0) {
            *(int *)field = -1;
            return RDT_SUCCESS;
        }
        if (parse_double(val, &d) || d != (int)d || d < lo || d > hi) {
            snprintf(err, errlen, "%s='%s' is not %san integer from %d to %d", k->name, val,
                     k->kind == K_INDEX ? "'auto' or " : "", lo, hi);
            return RDT_ERR_CONFIG;
        }
        *(int *)field = (int)d;
        return RDT_SUCCESS;
    }
    case K_RAW:
        *(const char **)field = val;
        return RDT_SUCCESS;
    }
    return RDT_ERR_INTERNAL;
}

rdt_status_t rdt_config_load(rdt_config_t *cfg, char *err, size_t errlen)
{
    rdt_topo_bind_t bind;
    size_t i;
    rdt_status_t st;

    memset(cfg, 0, sizeof(*cfg));
    for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
        const char *v = getenv(knobs[i].name);
        if (v && !*v && knobs[i].kind != K_STR && knobs[i].kind != K_RAW)
            v = NULL; /* an empty number means "default" */
        if (!v)
            v = knobs[i].def;
        if (!v)
            continue;
        st = apply(&knobs[i], v, cfg, err, errlen);
        if (st != RDT_SUCCESS)
            return st;
    }
    if (strcmp(cfg->transport, "auto") && strcmp(cfg->transport, "tcp") &&
        strcmp(cfg->transport, "verbs") && strcmp(cfg->transport, "shm")) {
        snprintf(err, errlen, "RDT_TRANSPORT='%s' is not a transport (auto, tcp, verbs or shm)",
                 cfg->transport);
        return RDT_ERR_CONFIG;
    }
    if (strcmp(cfg->ib_cm, "tcp") && strcmp(cfg->ib_cm, "rdmacm")) {
        snprintf(err, errlen, "RDT_IB_CM='%s' is not a connection manager (tcp or rdmacm)",
                 cfg->ib_cm);
        return RDT_ERR_CONFIG;
    }
    if (cfg->stall_warn >= 1.0) {
        snprintf(err, errlen,
                 "RDT_STALL_WARN=%g is not a fraction of the timeout (0 to below 1; 0 = never)",
                 cfg->stall_warn);
        return RDT_ERR_CONFIG;
    }
    if (rdt_topo_bind_parse(cfg->bind, &bind, err, errlen) != 0)
        return RDT_ERR_CONFIG; /* "RDT_BIND='x' is not one of none, numa, core" */
    cfg->bind_mode = (int)bind;
    if (cfg->shm_ring < ((size_t)4 << 10) || cfg->shm_ring > ((size_t)1 << 30)) {
        snprintf(err, errlen, "RDT_SHM_RING=%zu is out of range (4k to 1g bytes)",
                 cfg->shm_ring);
        return RDT_ERR_CONFIG;
    }
    return RDT_SUCCESS;
}

void rdt_config_dump(FILE *out)
{
    size_t i;

    fprintf(out, "# rdmatrain %d.%d.%d configuration (environment variables)\n",
            RDT_VERSION_MAJOR, RDT_VERSION_MINOR, RDT_VERSION_PATCH);
    for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
        const char *v = getenv(knobs[i].name);
        fprintf(out, "%-28s = %-12s  (default: %s)\n    %s\n", knobs[i].name,
                v ? v : (knobs[i].def ? knobs[i].def : "unset"),
                knobs[i].def ? (knobs[i].def[0] ? knobs[i].def : "\"\"") : "unset",
                knobs[i].help);
    }
}

void rdt_config_print(void *out)
{
    rdt_config_dump(out ? (FILE *)out : stdout);
}
