/*
 * verbs_wire.h - the verbs transport's connection record as pure functions (bytes in, a verdict
 * and a sentence out), so that verbs.c and the fuzz target (tests/fuzz/fuzz_verbs_record.c) run
 * the same code. Needs no libibverbs: built whether or not the verbs transport is.
 *
 * The record, both ways through the side channel, little-endian, RDT_VERBS_HS_LEN bytes (its
 * first 40 are the hello of wire.h):
 *
 *     0      4       8           24        32     36      40    44    48   50  51  52        56
 *     |magic |version| token(16) | comm_id | rank | nranks| qpn | psn | lid|mtu|pad|slot_size |
 *     56          72        80     84    88
 *     | gid (16)  | raddr  | rkey | pad  |
 *
 * mtu is an enum ibv_mtu (IBV_MTU_256 = 1 .. IBV_MTU_4096 = 5; verbs.c asserts the values).
 */
#ifndef RDT_VERBS_WIRE_H
#define RDT_VERBS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"
#include "wire.h"

#define RDT_VERBS_HS_MAGIC 0x56544452u /* "RDTV" */
#define RDT_VERBS_HS_VERSION 2u
#define RDT_VERBS_HS_LEN 88
#define RDT_VERBS_MTU_MIN 1 /* IBV_MTU_256 */
#define RDT_VERBS_MTU_MAX 5 /* IBV_MTU_4096 */
#define RDT_VERBS_QPN_MAX 0xffffffu /* QP numbers and PSNs are 24 bits */
#define RDT_VERBS_PSN_MAX 0xffffffu

typedef struct rdt_verbs_hs {
    rdt_wire_hello_t hello; /* the first 40 bytes (wire.h) */
    uint32_t qpn, psn;
    uint16_t lid;
    uint8_t mtu;
    uint32_t slot_size;
    unsigned char gid[16];
    uint64_t raddr; /* the sender's receive ring, then its CTS inbox */
    uint32_t rkey;
} rdt_verbs_hs_t;

/* What a record must say to be accepted. */
typedef struct rdt_verbs_hs_want {
    const unsigned char *token; /* RDT_TOKEN_LEN bytes */
    uint64_t comm_id;
    int nranks;
    int self;           /* this rank */
    int peer;           /* >= 0: the record must be this rank's (the connector reading the
                         * acceptor's answer); -1: any rank below self (an acceptor) */
    uint32_t slot_size;
    uint64_t buf_bytes; /* bytes from raddr the peer writes into: [raddr, raddr + buf_bytes) */
} rdt_verbs_hs_want_t;

/* Encode @p h into b[0..RDT_VERBS_HS_LEN-1], the pad bytes zero. */
void rdt_verbs_hs_pack(const rdt_verbs_hs_t *h, unsigned char *b);

/* Decode b[0..RDT_VERBS_HS_LEN-1], whatever it holds (pad bytes ignored). */
void rdt_verbs_hs_unpack(const unsigned char *b, rdt_verbs_hs_t *h);

/*
 * Judge the @p len bytes @p b a peer sent as its record against @p w: 0 with the record in *h
 * (rank < nranks, mtu, qpn and psn in their ranges, the remote buffer not wrapping around the
 * address space), or -1 with the reason in @p why, a fragment such as "wrong job token" or
 * "claims rank 7, but only ranks below 2 connect to rank 2". Only the first RDT_VERBS_HS_LEN
 * bytes are read.
 */
int rdt_verbs_hs_check(const unsigned char *b, size_t len, const rdt_verbs_hs_want_t *w,
                       rdt_verbs_hs_t *h, char *why, size_t n);

/*
 * The same record for RDT_IB_CM=rdmacm, carried as the private data of rdma_connect and
 * rdma_accept. A connect request has room for only 56 bytes of it on InfiniBand and RoCE (92 in
 * the CM's REQ, 36 of them rdma_cm's own header), and rdma_cm itself exchanges the QP number,
 * PSN, path and MTU, so this one keeps what rdma_cm does not know, RDT_VERBS_CM_LEN bytes:
 *
 *     0      4       8           24        32     36      40       48     52        56
 *     |magic |version| token(16) | comm_id | rank | nranks| raddr  | rkey | slot_size |
 *
 * Unpacked into an rdt_verbs_hs_t whose qpn, psn, lid, mtu and gid are 0; judged like the full
 * record, except for those fields.
 */
#define RDT_VERBS_CM_MAGIC 0x43544452u /* "RDTC" */
#define RDT_VERBS_CM_VERSION 1u
#define RDT_VERBS_CM_LEN 56

void rdt_verbs_cm_pack(const rdt_verbs_hs_t *h, unsigned char *b);
void rdt_verbs_cm_unpack(const unsigned char *b, rdt_verbs_hs_t *h);
int rdt_verbs_cm_check(const unsigned char *b, size_t len, const rdt_verbs_hs_want_t *w,
                       rdt_verbs_hs_t *h, char *why, size_t n);

#endif /* RDT_VERBS_WIRE_H */
