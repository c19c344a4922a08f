/* shm_wire.c - see shm_wire.h. */
#include "shm_wire.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void rdt_shm_addr_pack(const rdt_shm_addr_t *a, unsigned char *b)
{
    memset(b, 0, RDT_SHM_ADDR_LEN);
    b[0] = 'S';
    b[1] = RDT_SHM_VERSION;
    rdt_wire_put_u32(b + 4, a->pid);
    rdt_wire_put_u32(b + 8, a->memfd);
    rdt_wire_put_u32(b + 12, a->efd);
}

int rdt_shm_addr_parse(const unsigned char *b, size_t len, rdt_shm_addr_t *a, char *why,
                       size_t n)
{
    if (len < RDT_SHM_ADDR_LEN) {
        snprintf(why, n, "truncated (%zu of %d bytes)", len, RDT_SHM_ADDR_LEN);
        return -1;
    }
    if (b[0] != 'S' || b[1] != RDT_SHM_VERSION) {
        snprintf(why, n, "malformed (bytes 0x%02x 0x%02x; is RDT_TRANSPORT the same on every "
                 "rank?)", b[0], b[1]);
        return -1;
    }
    a->pid = rdt_wire_get_u32(b + 4);
    a->memfd = rdt_wire_get_u32(b + 8);
    a->efd = rdt_wire_get_u32(b + 12);
    return 0;
}

int rdt_shm_seg_check(const unsigned char *page, size_t len, uint64_t file_bytes, uint32_t pid,
                      int peer, int self, int nranks, uint64_t comm_id,
                      const unsigned char *token, rdt_shm_seg_t *seg, char *why, size_t n)
{
    rdt_shm_seg_hdr_t h;
    uint64_t slot, seg_bytes;

    if (len < sizeof(h)) {
        snprintf(why, n, "header of %zu bytes, fewer than %zu", len, sizeof(h));
        return -1;
    }
    if (nranks < 1 || self < 0 || self >= nranks) {
        snprintf(why, n, "rank %d is not one of %d", self, nranks);
        return -1;
    }
    memcpy(&h, page, sizeof(h));
    if (h.magic != RDT_SHM_SEG_MAGIC || h.version != RDT_SHM_VERSION) {
        snprintf(why, n, "magic 0x%08" PRIx32 " version %" PRIu32, h.magic, h.version);
        return -1;
    }
    if (h.rank != (uint32_t)peer || h.nranks != (uint32_t)nranks || h.comm_id != comm_id) {
        snprintf(why, n, "it is rank %" PRIu32 " of %" PRIu32 " of communicator 0x%" PRIx64,
                 h.rank, h.nranks, h.comm_id);
        return -1;
    }
    if (h.pid != pid) {
        snprintf(why, n, "it belongs to process %" PRIu32 ", the address named %" PRIu32, h.pid,
                 pid);
        return -1;
    }
    if (!rdt_wire_token_equal(h.token, token)) {
        snprintf(why, n, "wrong job token");
        return -1;
    }
    if (h.ring_bytes < RDT_SHM_RING_MIN || h.ring_bytes > RDT_SHM_RING_MAX ||
        (h.ring_bytes & (h.ring_bytes - 1))) {
        snprintf(why, n, "rings of %" PRIu64 " bytes", h.ring_bytes);
        return -1;
    }
    /* No overflow: nranks < 2^31 slots of at most 2^30 + a page. */
    slot = RDT_SHM_PAGE + h.ring_bytes;
    seg_bytes = RDT_SHM_PAGE + (uint64_t)nranks * slot + RDT_SHM_SHARE_BYTES;
    if (file_bytes < seg_bytes) {
        snprintf(why, n, "a file of %" PRIu64 " bytes, its header implies %" PRIu64, file_bytes,
                 seg_bytes);
        return -1;
    }
    seg->ring_bytes = h.ring_bytes;
    seg->seg_bytes = seg_bytes;
    seg->out_off = RDT_SHM_PAGE + (uint64_t)self * slot;
    seg->out_len = slot;
    seg->share_off = seg_bytes - RDT_SHM_SHARE_BYTES;
    seg->probe_value = h.probe_value;
    seg->probe_addr = h.probe_addr;
    return 0;
}

void rdt_shm_msg_pack(uint64_t tag, uint64_t len, unsigned char *b)
{
    rdt_wire_put_u32(b, RDT_SHM_MSG_MAGIC);
    rdt_wire_put_u32(b + 4, rdt_wire_hdr_check(tag, len, RDT_SHM_MSG_MAGIC));
    rdt_wire_put_u64(b + 8, tag);
    rdt_wire_put_u64(b + 16, len);
}

void rdt_shm_rts_pack(uint64_t tag, uint64_t len, uint64_t addr, uint64_t seq, unsigned char *b)
{
    rdt_wire_put_u32(b, RDT_SHM_RTS_MAGIC);
    rdt_wire_put_u32(b + 4, rdt_wire_hdr_check(tag, len, RDT_SHM_RTS_MAGIC));
    rdt_wire_put_u64(b + 8, tag);
    rdt_wire_put_u64(b + 16, len);
    rdt_wire_put_u64(b + 24, addr);
    rdt_wire_put_u64(b + 32, seq);
}

rdt_shm_rec_kind_t rdt_shm_rec_parse(const unsigned char *b, size_t avail, uint64_t seq_due,
                                     rdt_shm_rec_t *r, char *why, size_t n)
{
    uint32_t magic, check;
    uint64_t tag, len, seq;

    if (avail < RDT_SHM_HDR_LEN)
        return RDT_SHM_REC_MORE;
    magic = rdt_wire_get_u32(b);
    check = rdt_wire_get_u32(b + 4);
    tag = rdt_wire_get_u64(b + 8);
    len = rdt_wire_get_u64(b + 16);
    if ((magic != RDT_SHM_MSG_MAGIC && magic != RDT_SHM_RTS_MAGIC) ||
        check != rdt_wire_hdr_check(tag, len, magic) ||
        (magic == RDT_SHM_RTS_MAGIC && avail < RDT_SHM_RTS_LEN)) {
        snprintf(why, n, "a corrupt message header (magic 0x%08" PRIx32 ")", magic);
        return RDT_SHM_REC_CORRUPT;
    }
    if (magic == RDT_SHM_MSG_MAGIC) {
        r->tag = tag;
        r->len = len;
        r->addr = r->seq = 0;
        return RDT_SHM_REC_MSG;
    }
    seq = rdt_wire_get_u64(b + 32);
    if (seq != seq_due) {
        snprintf(why, n, "rendezvous %" PRIu64 " where %" PRIu64 " was due", seq, seq_due);
        return RDT_SHM_REC_CORRUPT;
    }
    r->tag = tag;
    r->len = len;
    r->addr = rdt_wire_get_u64(b + 24);
    r->seq = seq;
    return RDT_SHM_REC_RTS;
}
