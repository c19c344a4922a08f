/*
 * bootstrap.h - rendezvous: how ranks of a new job find each other.
 *
 * Rank 0 runs a small TCP store on the root address; every other rank connects (retrying until
 * the timeout, since rank 0 may start later), presents the job token, and sends its blob; rank 0
 * answers each with the table of all blobs. That is 2(n-1) messages at the root, none between
 * other ranks. Connections that present a wrong token, a wrong version, or garbage are dropped
 * with a log line and do not disturb the job. The wire format is described in bootstrap.c.
 */
#ifndef RDT_BOOTSTRAP_H
#define RDT_BOOTSTRAP_H

#include <stddef.h>

#include "rdmatrain.h"

typedef struct rdt_bootstrap_params {
    int rank;
    int nranks;
    const char *root_host; /* host name or numeric address (IPv4 or IPv6) of rank 0's store;
                              rank 0 binds exactly this address, never the wildcard */
    int root_port;
    unsigned char token[16]; /* the job's secret; compared in constant time */
    int timeout_ms;          /* the whole rendezvous must finish within this */
} rdt_bootstrap_params_t;

/*
 * Run the rendezvous once: every rank contributes @p bytes bytes at @p blob, and on success
 * @p table (nranks * bytes) holds every rank's blob in rank order. @p local_ip_p (at least 64
 * bytes) receives the numeric local address this rank used to reach the root (rank 0: the
 * address it listened on), the natural address to listen on for the data plane.
 * On failure @p err (errlen bytes) holds a sentence: which address, what failed, after how long.
 *
 * Blocking; every socket operation is bounded by timeout_ms from the call. Thread-safe (no
 * global state), but rank 0 of a job must not run two rendezvous on one address at once.
 * nranks == 1 uses no socket (table = blob; local_ip = root_host resolved, else 127.0.0.1).
 * @p table and @p local_ip_p are written only on success; @p err may be NULL.
 * All ranks must pass the same nranks, token and bytes; nranks * bytes is at most 1 GiB.
 *
 * Errors, with the sentence in @p err:
 *   RDT_ERR_INVALID_ARG  bad parameters (rank out of range, no root address, timeout <= 0).
 *   RDT_ERR_CONFIG       rank 0 cannot resolve or bind the root (not an address of this host,
 *                        the wildcard), or ranks disagree: a different nranks (both values
 *                        named), a rank claimed twice (named), a rank out of range.
 *   RDT_ERR_MISMATCH     a rank sent a blob of a different length.
 *   RDT_ERR_NETWORK      rank 0 cannot listen (port in use), or a protocol error.
 *   RDT_ERR_TIMEOUT      rank 0: ranks did not arrive in time (named, up to 16); others: the
 *                        root was unreachable, or the table did not come, in time.
 *   RDT_ERR_PEER_FAILED  rank 0: a rank closed its connection after its hello (named);
 *                        others: rank 0 closed the connection before sending the table.
 *   RDT_ERR_SYSTEM, RDT_ERR_NO_MEMORY  as everywhere.
 * When rank 0 fails the job it sends its sentence to every rank connected so far, which then
 * return rank 0's status with "rank 0 failed the rendezvous: <sentence>".
 *
 * Rank 0 holds one connection (file descriptor) per rank until all have arrived, plus up to
 * 256 from strangers: jobs of thousands of ranks need `ulimit -n` above nranks.
 */
rdt_status_t rdt_bootstrap_exchange(const rdt_bootstrap_params_t *params, const void *blob,
                                    size_t bytes, void *table, char *local_ip_p, char *err,
                                    size_t errlen);

#endif /* RDT_BOOTSTRAP_H */
