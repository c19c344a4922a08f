/*
 * topo.h - the topology of a job as plain data: which ranks share a host, their local rank, NUMA
 * node and nearest NIC; and this host's hardware as hwloc sees it.
 *
 * Two levels:
 *   rdt_topo_t       the job: nranks ranks on nhosts hosts (arrays indexed by rank or host). Built
 *                    from the host identity every rank reports through the bootstrap
 *                    (rdt_topo_from_hosts), from a text description (rdt_topo_from_spec,
 *                    rdt_topo_from_text) or from one host's hardware (rdt_topo_from_host).
 *   rdt_topo_host_t  one host's hardware: packages, NUMA nodes, cores, NICs and their NUMA node.
 *                    Detected with hwloc (rdt_topo_host_detect) or loaded from an hwloc XML file.
 * plus two calls acting on this process: rdt_topo_local_probe (where am I: NUMA node, nearest NIC)
 * and rdt_topo_bind (RDT_BIND=none|numa|core).
 *
 * Conventions. NUMA nodes are numbered 0..nnuma-1 in hwloc's logical order (not the kernel's node
 * number); -1 means unknown. NICs are numbered 0..nnics-1 per host, indexes into that host's NIC
 * list (rdt_topo_host_t.nics when it was detected); -1 means unknown or none. Counts of 0 mean
 * unknown. Every builder returns 0 and sets *topo_p, or returns -1 with one sentence in err
 * (what is wrong and where) and leaves *topo_p untouched; err may be NULL. Nothing here reads
 * the environment (config.c does) or keeps state between calls, but for one idle hwloc handle
 * that keeps hwloc's plugins loaded (see topo_hw.c); all functions are thread-safe, and
 * rdt_topo_bind changes the binding of the whole process.
 *
 * Placement rule, shared by every builder that has to place ranks itself (specs, text, a host) and
 * by rdt_topo_bind, so a described topology and a bound job agree: local rank l of L on a host with
 * C cores goes to core l*C/L (block distribution, so consecutive local ranks share a NUMA node),
 * its NUMA node is that core's; without core information (specs), NUMA node l*N/L of N. Its NIC is
 * a NIC of its NUMA node when there is one (the (l mod k)-th of the k there), else one of all the
 * host's NICs (l mod K); RDMA devices are preferred to plain network interfaces. For specs and
 * text descriptions, which name no NUMA node per NIC: NIC l*K/L of K (so "numa 2 nics 2" puts
 * NIC i on NUMA node i).
 */
#ifndef RDT_TOPO_H
#define RDT_TOPO_H

#include <stddef.h>
#include <stdio.h>

#define RDT_TOPO_NAME_MAX 64 /* bytes of a host or device name, NUL included */

/* Limits of described topologies (specs, text): beyond them the description is refused. */
#define RDT_TOPO_MAX_RANKS (1 << 22) /* ranks in one job */
#define RDT_TOPO_MAX_LOCAL 65536     /* ranks on one host */
#define RDT_TOPO_MAX_DEV   4096      /* NUMA nodes or NICs on one host */

/* The job. Every array is owned by the structure (one allocation); rdt_topo_destroy frees it. */
typedef struct rdt_topo {
    int nranks; /* ranks in the job, >= 1 */
    int nhosts; /* hosts, 1 <= nhosts <= nranks */

    /* per rank, [nranks] */
    int *host_of;    /* host of each rank; hosts are numbered in order of their lowest rank */
    int *local_rank; /* position of the rank among its host's ranks, in global rank order */
    int *numa_of;    /* NUMA node of the rank on its host, -1 unknown */
    int *nic_of;     /* nearest NIC of the rank on its host, -1 unknown or none */

    /* per host, [nhosts] */
    int *local_size;                      /* ranks on the host, >= 1 */
    int *host_first;                      /* where the host's ranks start in host_ranks */
    int *nnuma;                           /* NUMA nodes of the host, 0 unknown */
    int *nnics;                           /* NICs of the host, 0 unknown or none */
    char (*host_name)[RDT_TOPO_NAME_MAX]; /* host identity, NUL-terminated */

    /* [nranks]: the ranks grouped by host, ascending within a host: host h has ranks
     * host_ranks[host_first[h]] .. host_ranks[host_first[h] + local_size[h] - 1], and
     * host_ranks[host_first[h] + local_rank[r]] == r for every rank r of host h. */
    int *host_ranks;

    int max_local_size; /* largest local_size */
} rdt_topo_t;

/* What a rank knows about itself beyond its host name (rdt_topo_local_probe fills one). */
typedef struct rdt_topo_loc {
    int numa;  /* NUMA node of the rank, -1 unknown */
    int nnuma; /* NUMA nodes of its host, 0 unknown */
    int nic;   /* nearest NIC, -1 unknown or none */
    int nnics; /* NICs of its host, 0 unknown or none */
} rdt_topo_loc_t;

/**
 * Group ranks by host identity. hosts: nranks names, name i at hosts + i * stride, each
 * NUL-terminated within stride bytes (stride <= RDT_TOPO_NAME_MAX, e.g. the bootstrap's table of
 * RDT_HOST_MAX-byte names). loc: NULL (NUMA and NIC unknown) or one record per rank. Refused:
 * nranks < 1, an empty or unterminated name, a loc value out of range, ranks of one host that
 * disagree on nnuma or nnics (two machines reporting the same name: the error names both ranks and
 * says to set RDT_HOSTNAME).
 */
int rdt_topo_from_hosts(int nranks, const char *hosts, size_t stride, const rdt_topo_loc_t *loc,
                        rdt_topo_t **topo_p, char *err, size_t errlen);

/**
 * Build a topology from a compact spec (tests, simulator, rdt_topo --spec):
 *
 *   SPEC   := SHAPE { ":" OPTION }
 *   SHAPE  := H "x" R              H hosts of R ranks each            "8x8"
 *           | R { "," R }          ranks per host, one number a host  "4,2,3", "1"
 *   OPTION := "numa" N             N NUMA nodes on every host         "2x4:numa2:nic2"
 *           | "nic" N | "nics" N   N NICs on every host
 *
 * Numbers are decimal, >= 1; no spaces. Hosts are named h0, h1, ...; ranks are numbered host by
 * host (h0 has ranks 0..R-1). NUMA nodes and NICs are placed by the rule at the top of this file;
 * without the option they are unknown. Errors read "spec:1:COL: what", COL counting from 1.
 */
int rdt_topo_from_spec(const char *spec, rdt_topo_t **topo_p, char *err, size_t errlen);

/**
 * Build a topology from a line-based description (rdt_topo --file):
 *
 *   # a comment, to the end of the line; blank lines are ignored
 *   host NAME ranks N [numa N] [nics N]
 *
 * one line per host, keywords after NAME in any order, each at most once; `ranks` is required.
 * NAME: letters, digits, '.', '-', '_' (at most 63), unique. Ranks are numbered host by host in
 * line order; NUMA nodes and NICs are placed as for specs. Tabs, CR before LF, no final newline
 * are accepted. Errors read "SOURCE:LINE:COL: what" (source: the file name given, for messages).
 */
int rdt_topo_from_text(const char *text, size_t len, const char *source, rdt_topo_t **topo_p,
                       char *err, size_t errlen);

/** Free a topology; NULL does nothing. */
void rdt_topo_destroy(rdt_topo_t *topo);

/** Human-readable text: one line per host with its ranks and their local rank, NUMA node, NIC. */
int rdt_topo_write_text(const rdt_topo_t *topo, FILE *f);

/**
 * JSON (one object; keys in a fixed order, two-space indentation starting at `indent` spaces so
 * it can be nested): nranks, nhosts, hosts [{name, local_size, numa_nodes, nics, ranks}], ranks
 * [{rank, host, local_rank, numa, nic}]. Unknown values are -1 (per rank) or 0 (counts). Bytes of
 * names outside printable ASCII are written as \u00XX escapes, so the output is always valid JSON.
 */
int rdt_topo_write_json(const rdt_topo_t *topo, FILE *f, int indent);

/**
 * One line for a log: "2 hosts, ranks per host 2/2, NUMA nodes per host 1/1 (node known for 4 of
 * 4 ranks), NICs per host 3/3 (nearest known for 4 of 4 ranks)". Per-host lists show the first
 * 16 hosts then "/..."; an unknown count (0) shows as "?". Truncated to fit buflen (>= 1).
 */
void rdt_topo_summary(const rdt_topo_t *topo, char *buf, size_t buflen);

/** The same two in a malloc'd string (NULL when out of memory); the caller frees it. */
char *rdt_topo_to_text(const rdt_topo_t *topo);
char *rdt_topo_to_json(const rdt_topo_t *topo);

/* ---------------------------------------------------------------------------------------------
 * One host's hardware (hwloc).
 * ------------------------------------------------------------------------------------------- */

typedef enum rdt_topo_nic_kind {
    RDT_TOPO_NIC_RDMA, /* an RDMA device (hwloc OpenFabrics OS device, or /sys/class/infiniband) */
    RDT_TOPO_NIC_NET,  /* a network interface on PCI that no RDMA device has or names */
} rdt_topo_nic_kind_t;

typedef struct rdt_topo_nic {
    rdt_topo_nic_kind_t kind;
    char name[RDT_TOPO_NAME_MAX];   /* "mlx5_0", "rxe0" (RDMA) or "eth0" (NET) */
    char netdev[RDT_TOPO_NAME_MAX]; /* RDMA: its network interface ("" none known); NET: name */
    char pci_busid[16];             /* "0000:3b:00.0"; a virtual device's netdev's; "" none */
    int numa;                       /* NUMA node the device hangs off, -1 unknown */
    int is_virtual;                 /* no PCI device of its own: locality via its netdev only */
} rdt_topo_nic_t;

typedef struct rdt_topo_host {
    char name[RDT_TOPO_NAME_MAX]; /* hwloc's HostName, else gethostname() (detected), else "" */
    int npackages;                /* >= 1 */
    int nnuma;                    /* >= 1 (a machine without NUMA has one node) */
    int ncores;                   /* >= 1 */
    int npus;                     /* hardware threads, >= ncores */
    int *core_numa;               /* [ncores] NUMA node of each core (logical order), -1 none */
    int *numa_ncores;             /* [nnuma] cores of each NUMA node (0: memory-only node) */
    int nnics;
    rdt_topo_nic_t *nics; /* [nnics]: RDMA devices first (hwloc's order, then sysfs's by
                           * name), then NET */
} rdt_topo_host_t;

/**
 * Detect this host with hwloc (restricted to the CPUs this process may use, as a cgroup or
 * taskset sets them). RDMA devices hwloc does not list because they have no PCI parent (rxe,
 * siw: /sys/devices/virtual) are added from /sys/class/infiniband, and located through their
 * netdev (its PCI device) when it has one, else -1. A machine without NUMA or NICs is fine.
 */
int rdt_topo_host_detect(rdt_topo_host_t **host_p, char *err, size_t errlen);

/**
 * The same from an hwloc XML file (as `lstopo --of xml` or hwloc_topology_export_xml writes it),
 * or from an XML buffer. sysfs_root: NULL, or a directory laid out as /sys whose
 * class/infiniband/DEV/parent files name the netdevs of RDMA devices that the XML lacks
 * or holds without a PCI parent (tests use a fake one). Errors name the file.
 */
int rdt_topo_host_from_xml(const char *path, const char *sysfs_root, rdt_topo_host_t **host_p,
                           char *err, size_t errlen);
int rdt_topo_host_from_xml_buffer(const char *xml, size_t len, const char *sysfs_root,
                                  rdt_topo_host_t **host_p, char *err, size_t errlen);

/** Export this host's hwloc topology (with I/O devices) as XML, malloc'd; NULL on failure. */
char *rdt_topo_host_export_xml(char *err, size_t errlen);

void rdt_topo_host_destroy(rdt_topo_host_t *host);

/**
 * A one-host topology of nranks ranks on `host`, named `name` (NULL: host->name, else "localhost"),
 * placed by the rule at the top of this file.
 */
int rdt_topo_from_host(const rdt_topo_host_t *host, const char *name, int nranks,
                       rdt_topo_t **topo_p, char *err, size_t errlen);

/**
 * NIC nearest to NUMA node `numa` for local rank `local_rank` (rule at the top of this file);
 * -1 when the host has no NIC.
 */
int rdt_topo_host_pick_nic(const rdt_topo_host_t *host, int numa, int local_rank);

int rdt_topo_host_write_text(const rdt_topo_host_t *host, FILE *f);
int rdt_topo_host_write_json(const rdt_topo_host_t *host, FILE *f, int indent);

/* ---------------------------------------------------------------------------------------------
 * This process.
 * ------------------------------------------------------------------------------------------- */

typedef struct rdt_topo_probe {
    rdt_topo_loc_t loc;               /* for the bootstrap blob: NUMA node, nearest NIC, counts */
    int cpu;                          /* OS number of the CPU this thread last ran on, -1 unknown */
    int bound;                        /* 1 if this thread may run on fewer CPUs than the host has */
    int npackages, ncores, npus;      /* this host */
    char nic_name[RDT_TOPO_NAME_MAX]; /* loc.nic's name, "" none */
    char nic_netdev[RDT_TOPO_NAME_MAX]; /* its network interface, "" none known */
    int nic_rdma;                     /* 1 if loc.nic is an RDMA device (RDT_TOPO_NIC_RDMA) */
    int nic_numa;                     /* NUMA node loc.nic hangs off, -1 unknown or none */
} rdt_topo_probe_t;

/**
 * Where this thread runs: its NUMA node (of its CPU binding when that lies within one node, else
 * of the CPU it last ran on), and its nearest NIC for local rank `local_rank` (>= 0; spreads the
 * ranks of one NUMA node over its NICs).
 */
int rdt_topo_local_probe(int local_rank, rdt_topo_probe_t *probe_p, char *err, size_t errlen);

/**
 * The same, for the engine at every communicator creation: hwloc's discovery (about 30 ms) runs
 * once per process, on the first call, and its result is kept for the life of the process (the
 * hardware of a host does not change under a job); later calls only ask the kernel where the
 * thread runs now (binding, last CPU), so they see a binding made in between. A failure of the
 * first discovery is kept too: every call then fails with the same sentence, at once.
 */
int rdt_topo_local_probe_cached(int local_rank, rdt_topo_probe_t *probe_p, char *err,
                                size_t errlen);

int rdt_topo_probe_write_json(const rdt_topo_probe_t *probe, FILE *f, int indent);

typedef enum rdt_topo_bind {
    RDT_TOPO_BIND_NONE, /* leave the binding alone */
    RDT_TOPO_BIND_NUMA, /* bind to every CPU of the rank's NUMA node (placement rule) */
    RDT_TOPO_BIND_CORE, /* bind to the CPUs of one core: core local_rank*C/local_size */
} rdt_topo_bind_t;

/** "none", "numa", "core" (RDT_BIND's values) -> mode; -1 with a sentence in err otherwise. */
int rdt_topo_bind_parse(const char *s, rdt_topo_bind_t *mode_p, char *err, size_t errlen);

/**
 * Bind the calling process (every thread) as `mode` says, for local rank `local_rank` of
 * `local_size` ranks on this host (0 <= local_rank < local_size); more ranks than cores share
 * cores, evenly. On success msg holds what was done ("core 1 of 2 (cpus 1)", "numa node 0 of 1
 * (cpus 0-1)", "none"); on failure (bad arguments, the kernel refused) the error. Memory binding
 * is left to first touch.
 */
int rdt_topo_bind(rdt_topo_bind_t mode, int local_rank, int local_size, char *msg, size_t msglen);

#endif /* RDT_TOPO_H */
