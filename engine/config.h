/*
 * config.h - every knob of the library in one table (name, default, help), read once when a
 * communicator is created. No other code calls getenv: what the environment says reaches the
 * rest of the library through rdt_config_t.
 */
#ifndef RDT_CONFIG_H
#define RDT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rdmatrain.h"

/* A size knob left at "auto" (RDT_IB_RNDV): the value is passed on as is and the transport
 * picks (the same SIZE_MAX as transport.h's RDT_RNDV_AUTO). */
#define RDT_CONFIG_SIZE_AUTO SIZE_MAX

/* Values of the environment variables the library reads (NULL when unset), plus the parsed
 * knobs. Strings point into the process environment or into the struct itself. */
typedef struct rdt_config {
    /* knobs */
    int log_level;             /* RDT_LOG */
    char log_subsys[128];      /* RDT_LOG_SUBSYS */
    double timeout_s;          /* RDT_TIMEOUT */
    double connect_timeout_s;  /* RDT_CONNECT_TIMEOUT */
    double stall_warn;         /* RDT_STALL_WARN, fraction of the timeout, 0 = never warn */
    int check;                 /* RDT_CHECK, compare collective fingerprints before each one */
    char algo[256];            /* RDT_ALGO */
    size_t chunk;              /* RDT_CHUNK, bytes of one pipelined slice, 0 = chosen per call */
    int slices;                /* RDT_SLICES, slices in flight per collective */
    double poll_us;            /* RDT_POLL_US */
    size_t sockbuf;            /* RDT_SOCKBUF */
    char ifname[64];           /* RDT_IFNAME */
    char transport[16];        /* RDT_TRANSPORT */
    char ib_dev[64];           /* RDT_IB_DEV */
    int ib_gid_index;          /* RDT_IB_GID_INDEX, -1 = auto */
    size_t ib_rndv;            /* RDT_IB_RNDV, RDT_CONFIG_SIZE_AUTO = the transport decides */
    int ib_reg_cache;          /* RDT_IB_REG_CACHE */
    char ib_cm[16];            /* RDT_IB_CM: tcp or rdmacm */
    size_t shm_ring;           /* RDT_SHM_RING, bytes per ring of a pair of local ranks */
    size_t shm_rndv;           /* RDT_SHM_RNDV, single-copy threshold, 0 = never */
    size_t shm_oneshot;        /* RDT_SHM_ONESHOT, largest one-shot contribution, 0 = never */
    size_t shm_direct;         /* RDT_SHM_DIRECT, smallest direct collective, 0 = never */
    size_t shm_oneshot_ar;     /* RDT_SHM_ONESHOT_ALLREDUCE, largest one-shot allreduce that
                                * does not run direct or staged (bytes per rank), 0 = never */
    size_t shm_staged;         /* RDT_SHM_STAGED, smallest staged allreduce (bytes over all
                                * ranks), 0 = never */
    size_t shm_staged_cached;  /* RDT_SHM_STAGED_CACHED, largest in-place vector (bytes per rank)
                                * staged while it stays in L2, RDT_CONFIG_SIZE_AUTO = 3/4 of
                                * L2, 0 = never */
    char hostname[64];         /* RDT_HOSTNAME */
    char bind[16];             /* RDT_BIND as given */
    int bind_mode;             /* RDT_BIND parsed: an rdt_topo_bind_t (0 = none) */
    double alpha, beta, gamma; /* RDT_ALPHA, RDT_BETA, RDT_GAMMA */
    /* how the job told us who we are (raw strings, NULL when unset) */
    const char *rdt_rank, *rdt_size, *rdt_local_rank, *rdt_local_size, *rdt_root, *rdt_token;
    const char *slurm_procid, *slurm_ntasks, *slurm_localid, *slurm_job_id;
    const char *ompi_rank, *ompi_size, *ompi_local_rank, *ompi_local_size, *ompi_jobid;
    const char *torch_rank, *torch_world_size, *torch_local_rank, *torch_local_world_size,
        *master_addr, *master_port, *torch_run_id;
} rdt_config_t;

/* Read the environment into @p cfg. On a malformed value returns RDT_ERR_CONFIG with a sentence
 * naming the variable and the expected form in @p err. */
rdt_status_t rdt_config_load(rdt_config_t *cfg, char *err, size_t errlen);

/* Print every knob: name, current value, default, help. */
void rdt_config_dump(FILE *out);

#endif /* RDT_CONFIG_H */
