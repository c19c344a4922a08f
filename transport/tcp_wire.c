/* tcp_wire.c - see tcp_wire.h. */
#include "tcp_wire.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int rdt_tcp_hs_check(const unsigned char *b, size_t len, const unsigned char *token,
                     uint64_t comm_id, int self, int nranks, uint32_t *rank_p, char *why,
                     size_t n)
{
    rdt_wire_hello_t h;

    if (len < RDT_TCP_HS_LEN) {
        snprintf(why, n, "truncated handshake (%zu of %d bytes)", len, RDT_TCP_HS_LEN);
        return -1;
    }
    rdt_wire_hello_unpack(b, &h);
    if (rdt_wire_hello_check(&h, "tcp", RDT_TCP_HS_MAGIC, RDT_TCP_HS_VERSION, token, comm_id,
                             nranks, why, n) != 0)
        return -1;
    /* self < nranks, so this also keeps the rank an index into the caller's peers */
    if (self < 0 || h.rank >= (uint32_t)self) {
        snprintf(why, n, "claims rank %" PRIu32 ", but only ranks below %d connect to rank %d",
                 h.rank, self, self);
        return -1;
    }
    *rank_p = h.rank;
    return 0;
}

void rdt_tcp_frame_pack(uint32_t magic, uint64_t tag, uint64_t len, unsigned char *b)
{
    rdt_wire_put_u32(b, magic);
    rdt_wire_put_u32(b + 4, rdt_wire_hdr_check(tag, len, magic));
    rdt_wire_put_u64(b + 8, tag);
    rdt_wire_put_u64(b + 16, len);
}

rdt_tcp_frame_t rdt_tcp_frame_parse(const unsigned char *b, size_t avail, uint64_t *tag_p,
                                    uint64_t *len_p, char *why, size_t n)
{
    uint32_t magic, check;
    uint64_t tag, len;

    if (avail < RDT_TCP_HDR_LEN)
        return RDT_TCP_FRAME_MORE;
    magic = rdt_wire_get_u32(b);
    check = rdt_wire_get_u32(b + 4);
    tag = rdt_wire_get_u64(b + 8);
    len = rdt_wire_get_u64(b + 16);
    if ((magic != RDT_TCP_MSG_MAGIC && magic != RDT_TCP_NOTE_MAGIC) ||
        check != rdt_wire_hdr_check(tag, len, magic)) {
        snprintf(why, n, "corrupt message header (magic 0x%08" PRIx32 ")", magic);
        return RDT_TCP_FRAME_CORRUPT;
    }
    *tag_p = tag;
    *len_p = len;
    return magic == RDT_TCP_NOTE_MAGIC ? RDT_TCP_FRAME_NOTICE : RDT_TCP_FRAME_MSG;
}

size_t rdt_tcp_notice_pack(const char *why, unsigned char *t)
{
    size_t n = strnlen(why, RDT_TCP_NOTICE_MAX);

    rdt_wire_put_u32(t, (uint32_t)n);
    rdt_wire_put_u32(t + 4, rdt_wire_hdr_check(0, n, RDT_TCP_NOTE_MAGIC));
    rdt_wire_put_u32(t + 8, RDT_TCP_NOTE_MAGIC);
    return n;
}

int rdt_tcp_notice_parse(const unsigned char *tail, size_t n, char *why, size_t len)
{
    const unsigned char *t;
    uint32_t k, i;

    if (n < RDT_TCP_TRAILER_LEN)
        return 0;
    t = tail + n - RDT_TCP_TRAILER_LEN;
    k = rdt_wire_get_u32(t);
    if (rdt_wire_get_u32(t + 8) != RDT_TCP_NOTE_MAGIC || k > RDT_TCP_NOTICE_MAX ||
        k > n - RDT_TCP_TRAILER_LEN ||
        rdt_wire_get_u32(t + 4) != rdt_wire_hdr_check(0, k, RDT_TCP_NOTE_MAGIC))
        return 0;
    if (len == 0)
        return 1;
    t -= k;
    for (i = 0; i < k && i + 1 < len; i++)
        why[i] = t[i] >= 0x20 && t[i] <= 0x7e ? (char)t[i] : '?';
    why[i] = '\0';
    if (!why[0])
        snprintf(why, len, "(no reason given)");
    return 1;
}
