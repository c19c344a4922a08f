/* verbs_wire.c - see verbs_wire.h. Compiled whether or not libibverbs is found. */
#include "verbs_wire.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void rdt_verbs_hs_pack(const rdt_verbs_hs_t *h, unsigned char *b)
{
    memset(b, 0, RDT_VERBS_HS_LEN);
    rdt_wire_hello_pack(&h->hello, b);
    rdt_wire_put_u32(b + 40, h->qpn);
    rdt_wire_put_u32(b + 44, h->psn);
    b[48] = (unsigned char)h->lid;
    b[49] = (unsigned char)(h->lid >> 8);
    b[50] = h->mtu;
    rdt_wire_put_u32(b + 52, h->slot_size);
    memcpy(b + 56, h->gid, 16);
    rdt_wire_put_u64(b + 72, h->raddr);
    rdt_wire_put_u32(b + 80, h->rkey);
}

void rdt_verbs_hs_unpack(const unsigned char *b, rdt_verbs_hs_t *h)
{
    rdt_wire_hello_unpack(b, &h->hello);
    h->qpn = rdt_wire_get_u32(b + 40);
    h->psn = rdt_wire_get_u32(b + 44);
    h->lid = (uint16_t)(b[48] | (b[49] << 8));
    h->mtu = b[50];
    h->slot_size = rdt_wire_get_u32(b + 52);
    memcpy(h->gid, b + 56, 16);
    h->raddr = rdt_wire_get_u64(b + 72);
    h->rkey = rdt_wire_get_u32(b + 80);
}

/* What both records must say: this job and communicator, the slot size, a rank allowed to say
 * it. */
static int verbs_rec_judge_peer(const rdt_verbs_hs_t *h, const rdt_verbs_hs_want_t *w,
                                uint32_t magic, uint32_t version, char *why, size_t n)
{
    if (rdt_wire_hello_check(&h->hello, "verbs", magic, version, w->token, w->comm_id, w->nranks,
                             why, n) != 0)
        return -1;
    if (h->slot_size != w->slot_size) {
        snprintf(why, n, "slot size %" PRIu32 ", this rank uses %" PRIu32, h->slot_size,
                 w->slot_size);
        return -1;
    }
    if (w->peer >= 0 && h->hello.rank != (uint32_t)w->peer) {
        snprintf(why, n, "wrong rank (%" PRIu32 ", not %d)", h->hello.rank, w->peer);
        return -1;
    }
    /* self < nranks, so either way the rank is an index into the caller's peers */
    if (w->peer < 0 && (w->self < 0 || h->hello.rank >= (uint32_t)w->self)) {
        snprintf(why, n, "claims rank %" PRIu32 ", but only ranks below %d connect to rank %d",
                 h->hello.rank, w->self, w->self);
        return -1;
    }
    return 0;
}

/* The remote buffer: its last byte, raddr + buf_bytes - 1, is below 2^64. */
static int verbs_rec_judge_ring(const rdt_verbs_hs_t *h, const rdt_verbs_hs_want_t *w, char *why,
                                size_t n)
{
    if (h->raddr == 0 || h->raddr - 1 > UINT64_MAX - w->buf_bytes) {
        snprintf(why, n, "a receive ring of %" PRIu64 " bytes at 0x%" PRIx64, w->buf_bytes,
                 h->raddr);
        return -1;
    }
    return 0;
}

int rdt_verbs_hs_check(const unsigned char *b, size_t len, const rdt_verbs_hs_want_t *w,
                       rdt_verbs_hs_t *h, char *why, size_t n)
{
    if (len < RDT_VERBS_HS_LEN) {
        snprintf(why, n, "truncated handshake (%zu of %d bytes)", len, RDT_VERBS_HS_LEN);
        return -1;
    }
    rdt_verbs_hs_unpack(b, h);
    if (verbs_rec_judge_peer(h, w, RDT_VERBS_HS_MAGIC, RDT_VERBS_HS_VERSION, why, n) != 0)
        return -1;
    /* What the QP and the RDMA writes are given next: refused here with a reason, rather than
     * by ibv_modify_qp with EINVAL or by a write that wraps around the address space. */
    if (h->mtu < RDT_VERBS_MTU_MIN || h->mtu > RDT_VERBS_MTU_MAX) {
        snprintf(why, n, "active MTU code %u (1 to 5 are 256 to 4096 bytes)", h->mtu);
        return -1;
    }
    if (h->qpn < 2 || h->qpn > RDT_VERBS_QPN_MAX || h->psn > RDT_VERBS_PSN_MAX) {
        snprintf(why, n, "queue pair 0x%" PRIx32 " with PSN 0x%" PRIx32 " (24-bit numbers, QPs 0 "
                 "and 1 are not RC)", h->qpn, h->psn);
        return -1;
    }
    return verbs_rec_judge_ring(h, w, why, n);
}

void rdt_verbs_cm_pack(const rdt_verbs_hs_t *h, unsigned char *b)
{
    memset(b, 0, RDT_VERBS_CM_LEN);
    rdt_wire_hello_pack(&h->hello, b);
    rdt_wire_put_u64(b + 40, h->raddr);
    rdt_wire_put_u32(b + 48, h->rkey);
    rdt_wire_put_u32(b + 52, h->slot_size);
}

void rdt_verbs_cm_unpack(const unsigned char *b, rdt_verbs_hs_t *h)
{
    memset(h, 0, sizeof(*h));
    rdt_wire_hello_unpack(b, &h->hello);
    h->raddr = rdt_wire_get_u64(b + 40);
    h->rkey = rdt_wire_get_u32(b + 48);
    h->slot_size = rdt_wire_get_u32(b + 52);
}

int rdt_verbs_cm_check(const unsigned char *b, size_t len, const rdt_verbs_hs_want_t *w,
                       rdt_verbs_hs_t *h, char *why, size_t n)
{
    if (len < RDT_VERBS_CM_LEN) {
        snprintf(why, n, "truncated rdma_cm private data (%zu of %d bytes)", len,
                 RDT_VERBS_CM_LEN);
        return -1;
    }
    rdt_verbs_cm_unpack(b, h);
    if (verbs_rec_judge_peer(h, w, RDT_VERBS_CM_MAGIC, RDT_VERBS_CM_VERSION, why, n) != 0)
        return -1;
    return verbs_rec_judge_ring(h, w, why, n);
}
