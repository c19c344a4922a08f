/*
 * shm_wire.h - what a shared-memory peer publishes, judged by pure functions (bytes in, a
 * verdict and a sentence out; no mapping, no transport state), so that shm.c and the fuzz targets
 * (tests/fuzz/fuzz_shm_addr.c, fuzz_shm_msg.c) run the same code.
 *
 * The address (RDT_SHM_ADDR_LEN of the RDT_ADDR_MAX bytes): [0] 'S' [1] version [2..3] 0
 * [4..7] pid [8..11] memfd number [12..15] eventfd number, little-endian.
 *
 * The segment, one memfd per rank, holding its inbound rings, one slot per possible sender, and
 * its side of the one-shot exchanges (shm.c, ishare):
 *
 *     | header page | slot 0: ctl page, ring | slot 1: ctl page, ring | ... | share area |
 *
 * The share area is two buffers of RDT_SHM_SHARE_BUF bytes, written by the owner only: exchange
 * s uses buffer s % 2, whose first 64 bytes are (sequence s, tag, length, then padding, so a
 * contribution starts on a cache line) and the rest the contribution: small collectives' whole
 * vectors (one-shot) or a large allreduce's chunks (staged, exec.c). A contribution of at most
 * RDT_SHM_SHARE_INLINE bytes sits in the header's line instead, from byte 24 (where it starts is
 * a function of its length alone, rdt_shm_share_off): a reader that has seen the sequence has
 * the data too, one cache line crossing between cores instead of two.
 *
 * The header page starts with rdt_shm_seg_hdr_t in the owner's native layout (only ranks of one
 * host, running the same library, read it).
 *
 * A ring carries records, little-endian: an eager message (RDS1), its header then its payload,
 * or a rendezvous request (RDS2), whose payload the receiver reads from the sender's memory:
 *
 *     0        4        8                16               24               32           40
 *     | magic  | check  | tag            | length         | (RDS2:) address | sequence  |
 *
 * check is rdt_wire_hdr_check(tag, length, magic) (wire.h); the sequence counts the sender's
 * rendezvous requests to this receiver from 0. A sender publishes a record whole.
 */
#ifndef RDT_SHM_WIRE_H
#define RDT_SHM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define RDT_SHM_SEG_MAGIC 0x4d485352u /* "RSHM" */
#define RDT_SHM_VERSION 4u
#define RDT_SHM_ADDR_LEN 16
#define RDT_SHM_PAGE 4096
#define RDT_SHM_RING_MIN ((uint64_t)4 << 10)
#define RDT_SHM_RING_MAX ((uint64_t)1 << 30)
#define RDT_SHM_MSG_MAGIC 0x31534452u /* "RDS1": eager message */
#define RDT_SHM_RTS_MAGIC 0x32534452u /* "RDS2": rendezvous request */
#define RDT_SHM_HDR_LEN 24
#define RDT_SHM_RTS_LEN 40
#define RDT_SHM_SHARE_BUF ((uint64_t)1 << 20) /* one buffer of the share area */
#define RDT_SHM_SHARE_HDR 64                   /* its header: sequence, tag, length, pad */
#define RDT_SHM_SHARE_BYTES (2 * RDT_SHM_SHARE_BUF)
#define RDT_SHM_SHARE_INLINE 40 /* contributions this short sit in the header line, from byte 24 */

/* Where a contribution of @p len bytes starts in its share buffer. */
static inline size_t rdt_shm_share_off(uint64_t len)
{
    return len <= RDT_SHM_SHARE_INLINE ? 24 : RDT_SHM_SHARE_HDR;
}

/* The identity part of a segment's header page (shm.c's shm_hdr_t starts with it). */
typedef struct rdt_shm_seg_hdr {
    uint32_t magic, version;
    uint32_t rank, nranks;
    uint64_t comm_id;
    unsigned char token[RDT_TOKEN_LEN];
    uint32_t pid, pad;
    uint64_t ring_bytes;
    uint64_t probe_value; /* a peer reads this word with process_vm_readv at probe_addr */
    uint64_t probe_addr;
} rdt_shm_seg_hdr_t;

typedef struct rdt_shm_addr {
    uint32_t pid, memfd, efd;
} rdt_shm_addr_t;

/* A peer's segment once checked: where this rank's slot in it lies. */
typedef struct rdt_shm_seg {
    uint64_t ring_bytes; /* a power of two in [RDT_SHM_RING_MIN, RDT_SHM_RING_MAX] */
    uint64_t seg_bytes;  /* the whole segment: header page, nranks slots, share area */
    uint64_t out_off;    /* this rank's slot (ctl page, ring): out_off + out_len <= seg_bytes */
    uint64_t out_len;
    uint64_t share_off;  /* the share area: share_off + RDT_SHM_SHARE_BYTES == seg_bytes */
    uint64_t probe_value, probe_addr;
} rdt_shm_seg_t;

/* Encode @p a into b[0..RDT_SHM_ADDR_LEN-1] (bytes 2 and 3 zero). */
void rdt_shm_addr_pack(const rdt_shm_addr_t *a, unsigned char *b);

/*
 * Judge the @p len bytes @p b a peer published as its shm address: 0 with its fields in *a, or
 * -1 with a fragment such as "malformed (bytes 0x54 0x01; ...)" in @p why. Only the first
 * RDT_SHM_ADDR_LEN bytes are read.
 */
int rdt_shm_addr_parse(const unsigned char *b, size_t len, rdt_shm_addr_t *a, char *why,
                       size_t n);

/*
 * Judge the header page of the segment of rank @p peer (of @p nranks, communicator @p comm_id,
 * job @p token), whose address named process @p pid, as rank @p self (which must be in
 * [0, nranks)) about to map its slot in it. @p page holds @p len bytes, of which the first
 * sizeof(rdt_shm_seg_hdr_t) are read (a copy of the shared page: the peer could change the page
 * between the check and the use); @p file_bytes is the size of the file behind the segment
 * (fstat), which must hold every byte the header implies (a mapping past its end would be a
 * SIGBUS, not an error). 0 with the geometry in *seg (seg_bytes <= file_bytes), or -1 with the
 * reason in @p why.
 */
int rdt_shm_seg_check(const unsigned char *page, size_t len, uint64_t file_bytes, uint32_t pid,
                      int peer, int self, int nranks, uint64_t comm_id,
                      const unsigned char *token, rdt_shm_seg_t *seg, char *why, size_t n);

typedef enum {
    RDT_SHM_REC_MORE,    /* fewer than RDT_SHM_HDR_LEN bytes */
    RDT_SHM_REC_MSG,     /* an eager message: RDT_SHM_HDR_LEN bytes, its payload follows */
    RDT_SHM_REC_RTS,     /* a rendezvous request: RDT_SHM_RTS_LEN bytes */
    RDT_SHM_REC_CORRUPT, /* neither: the stream is out of sync */
} rdt_shm_rec_kind_t;

typedef struct rdt_shm_rec {
    uint64_t tag, len;
    uint64_t addr, seq; /* RTS only: the sender's buffer, the request's sequence number */
} rdt_shm_rec_t;

/* Encode an eager message header into b[0..RDT_SHM_HDR_LEN-1]. */
void rdt_shm_msg_pack(uint64_t tag, uint64_t len, unsigned char *b);

/* Encode a rendezvous request into b[0..RDT_SHM_RTS_LEN-1]. */
void rdt_shm_rts_pack(uint64_t tag, uint64_t len, uint64_t addr, uint64_t seq, unsigned char *b);

/*
 * Judge the record at the start of the @p avail bytes @p b (what a ring holds past its tail, or
 * a copy of its first bytes) when rendezvous request @p seq_due is the next one due. MSG and RTS
 * fill *r (addr and seq 0 for MSG; the length is the peer's claim: the receive it is matched
 * with decides); CORRUPT writes to @p why a fragment such as "a corrupt message header (magic
 * 0x...)" or "rendezvous 5 where 3 was due" (NUL-terminated within @p n bytes when n > 0): a
 * magic or check word that is wrong, a request cut short (a sender publishes it whole), or out
 * of sequence. Only the record's bytes are read (at most RDT_SHM_RTS_LEN).
 */
rdt_shm_rec_kind_t rdt_shm_rec_parse(const unsigned char *b, size_t avail, uint64_t seq_due,
                                     rdt_shm_rec_t *r, char *why, size_t n);

#endif /* RDT_SHM_WIRE_H */
