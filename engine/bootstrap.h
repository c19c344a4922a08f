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
#include <stdint.h>

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

/* ------------------------------------------------------------------------------------------- */
/* The wire format as pure functions: the rendezvous calls exactly these on every byte it      */
/* receives, and the fuzz targets (tests/fuzz/fuzz_bootstrap_*.c) call them on any bytes.      */
/* Integers are big-endian; the layouts are drawn at the top of bootstrap.c.                   */
/* ------------------------------------------------------------------------------------------- */

#define RDT_BOOTSTRAP_HELLO_LEN 40u  /* hello header, peer -> rank 0 (the blob follows) */
#define RDT_BOOTSTRAP_REPLY_LEN 16u  /* reply header, rank 0 -> peer (table or sentence follows) */
#define RDT_BOOTSTRAP_MAX_MSG   512u /* longest error sentence rank 0 sends and a peer accepts */
#define RDT_BOOTSTRAP_MAX_TABLE ((size_t)1 << 30) /* nranks * blob bytes */

/* The fields of a hello header (the magic is implied). */
typedef struct rdt_bootstrap_hello {
    uint32_t version;
    unsigned char token[16];
    uint32_t nranks;
    uint32_t rank;
    uint64_t blob_len;
} rdt_bootstrap_hello_t;

/* What rank 0 does with the bytes of a hello header received so far. */
typedef enum {
    RDT_BOOTSTRAP_HELLO_MORE,     /* fewer than 40 bytes, none wrong yet: read on */
    RDT_BOOTSTRAP_HELLO_OK,       /* this job's hello for a rank in 1..nranks-1: read its blob */
    RDT_BOOTSTRAP_HELLO_STRANGER, /* wrong magic, version or token: drop the connection */
    RDT_BOOTSTRAP_HELLO_DISAGREE, /* this job's token but another job size, a rank out of
                                     range or another blob length: the job fails */
} rdt_bootstrap_verdict_t;

/* Write the 40-byte header of @p h into @p buf (at least RDT_BOOTSTRAP_HELLO_LEN bytes). */
void rdt_bootstrap_hello_pack(const rdt_bootstrap_hello_t *h, unsigned char *buf);

/* Decode a header: 0 and *h_p when @p len >= 40 and the magic is right, else -1 (*h_p not
 * written). Decoding never fails otherwise: any field value comes out as it was sent. */
int rdt_bootstrap_hello_unpack(const unsigned char *buf, size_t len, rdt_bootstrap_hello_t *h_p);

/*
 * Judge the first @p len bytes of a hello header (len may be less or more than 40; bytes past 40
 * are not looked at) against this job: its @p token (16 bytes), @p nranks and blob length
 * @p bytes. Garbage is recognised from its first 4 bytes. @p from (the peer's address) goes into
 * the sentences. On RDT_BOOTSTRAP_HELLO_OK *hello_p holds the header, whose rank is then in
 * 1..nranks-1 and blob length equals @p bytes; on STRANGER and DISAGREE @p why (whylen bytes)
 * says what was wrong, and on DISAGREE *status_p is the job's status (RDT_ERR_CONFIG, or
 * RDT_ERR_MISMATCH for the blob length). Whether the rank is already taken is the caller's
 * business. Pure: no I/O, no allocation, no logging.
 */
rdt_bootstrap_verdict_t rdt_bootstrap_hello_check(const unsigned char *buf, size_t len,
                                                  const unsigned char *token, int nranks,
                                                  size_t bytes, const char *from,
                                                  rdt_bootstrap_hello_t *hello_p,
                                                  rdt_status_t *status_p, char *why, size_t whylen);

/* The 16-byte reply header announcing @p body_len bytes with @p status (0: the table). */
void rdt_bootstrap_reply_pack(uint32_t status, uint64_t body_len, unsigned char *buf);

/*
 * Check rank 0's reply header (@p len bytes at @p buf; fewer than 16 is malformed) as a peer of
 * a job of @p nranks ranks expecting a table of @p tlen bytes. RDT_SUCCESS: *status_p is the
 * status rank 0 announces (RDT_SUCCESS: a table of exactly tlen bytes follows; an error status:
 * a sentence of *body_len_p <= RDT_BOOTSTRAP_MAX_MSG bytes follows). Otherwise the header is
 * refused before any length in it is used: RDT_ERR_NETWORK (not a reply, or a malformed
 * error) or RDT_ERR_MISMATCH (a table of another length), with a sentence in @p why.
 */
rdt_status_t rdt_bootstrap_reply_check(const unsigned char *buf, size_t len, size_t tlen,
                                       int nranks, rdt_status_t *status_p, uint64_t *body_len_p,
                                       char *why, size_t whylen);

/* Rank 0's error sentence (@p len bytes at @p body) as one printable line in @p out: at most
 * outlen - 1 bytes copied, every byte outside 0x20..0x7e shown as '?', always terminated. */
void rdt_bootstrap_reply_text(const unsigned char *body, size_t len, char *out, size_t outlen);

#endif /* RDT_BOOTSTRAP_H */
