/* ctl_wire.c - see ctl_wire.h. */
#include "ctl_wire.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

/*
 * Datagram (little-endian): [0] magic "RDTS" (u32), [4] version, [5] type, [6] state, [7] 0,
 * [8] communicator id (u64), [16] job token (16), [32] from rank (u32), [36] to rank (u32),
 * [40] nonce (u32), [44] number of waited ranks (u16), [46] text length (u16),
 * [48] RDT_CTL_MAX_WAIT ranks (u32 each, unused ones 0), [112] text (not NUL-terminated).
 * The datagram is exactly RDT_CTL_HDR_LEN + text length bytes. The parser rejects nonzero
 * reserved bytes (byte 7, unused wait slots), so the encoding is canonical: a datagram it accepts
 * is the one rdt_ctl_pack writes for what it decoded.
 */
#define CTL_MAGIC   0x53544452u /* "RDTS" */
#define CTL_VERSION 1

size_t rdt_ctl_pack(const rdt_ctl_msg_t *m, uint64_t comm_id, const unsigned char *token,
                    unsigned char *buf)
{
    size_t tl = strnlen(m->text, RDT_CTL_TEXT_MAX);
    int i, nw = m->nwait < 0 ? 0 : m->nwait > RDT_CTL_MAX_WAIT ? RDT_CTL_MAX_WAIT : m->nwait;

    memset(buf, 0, RDT_CTL_HDR_LEN);
    rdt_wire_put_u32(buf, CTL_MAGIC);
    buf[4] = CTL_VERSION;
    buf[5] = (unsigned char)m->type;
    buf[6] = (unsigned char)m->state;
    rdt_wire_put_u64(buf + 8, comm_id);
    memcpy(buf + 16, token, RDT_TOKEN_LEN);
    rdt_wire_put_u32(buf + 32, (uint32_t)m->from);
    rdt_wire_put_u32(buf + 36, (uint32_t)m->to);
    rdt_wire_put_u32(buf + 40, m->nonce);
    buf[44] = (unsigned char)nw;
    buf[46] = (unsigned char)(tl & 0xff);
    buf[47] = (unsigned char)(tl >> 8);
    for (i = 0; i < nw; i++)
        rdt_wire_put_u32(buf + 48 + 4 * i, (uint32_t)m->wait[i]);
    memcpy(buf + RDT_CTL_HDR_LEN, m->text, tl);
    return RDT_CTL_HDR_LEN + tl;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int rdt_ctl_parse(const unsigned char *buf, size_t len, uint64_t comm_id,
                  const unsigned char *token, int nranks, int me, rdt_ctl_msg_t *m, char *why,
                  size_t whylen)
{
    uint32_t from, to, nw, tl, i;

    if (len < RDT_CTL_HDR_LEN)
        BAD("a datagram of %zu bytes, shorter than the %d-byte header", len, RDT_CTL_HDR_LEN);
    if (rdt_wire_get_u32(buf) != CTL_MAGIC)
        BAD("not a status datagram (magic 0x%08x)", (unsigned)rdt_wire_get_u32(buf));
    if (buf[4] != CTL_VERSION)
        BAD("status protocol version %u, this library speaks %d", buf[4], CTL_VERSION);
    if (!rdt_wire_token_equal(buf + 16, token))
        BAD("a wrong job token");
    if (rdt_wire_get_u64(buf + 8) != comm_id)
        BAD("another communicator's id");
    if (buf[5] != RDT_CTL_QUERY && buf[5] != RDT_CTL_ANSWER && buf[5] != RDT_CTL_GAVE_UP)
        BAD("unknown type %u", buf[5]);
    if (buf[6] != RDT_CTL_IDLE && buf[6] != RDT_CTL_WAITING)
        BAD("unknown state %u", buf[6]);
    if (buf[7] != 0)
        BAD("reserved byte 7 is 0x%02x, not 0", buf[7]);
    from = rdt_wire_get_u32(buf + 32);
    to = rdt_wire_get_u32(buf + 36);
    if (from >= (uint32_t)nranks || (int)from == me)
        BAD("sender rank %u (the communicator has %d ranks, this is rank %d)", from, nranks, me);
    if ((int)to != me || to >= (uint32_t)nranks)
        BAD("addressed to rank %u, this is rank %d", to, me);
    nw = buf[44] | (uint32_t)buf[45] << 8;
    tl = buf[46] | (uint32_t)buf[47] << 8;
    if (nw > RDT_CTL_MAX_WAIT)
        BAD("%u waited ranks, at most %d fit", nw, RDT_CTL_MAX_WAIT);
    if (tl > RDT_CTL_TEXT_MAX || len != RDT_CTL_HDR_LEN + tl)
        BAD("%zu bytes for a text of %u (the header says)", len, tl);
    memset(m, 0, sizeof(*m));
    for (i = 0; i < nw; i++) {
        uint32_t r = rdt_wire_get_u32(buf + 48 + 4 * i);
        if (r >= (uint32_t)nranks)
            BAD("waited rank %u of a communicator of %d ranks", r, nranks);
        m->wait[i] = (int)r;
    }
    for (i = nw; i < RDT_CTL_MAX_WAIT; i++)
        if (rdt_wire_get_u32(buf + 48 + 4 * i) != 0)
            BAD("unused wait slot %u is not 0", i);
    for (i = 0; i < tl; i++) {
        unsigned char c = buf[RDT_CTL_HDR_LEN + i];
        if (c < 0x20 || c > 0x7e)
            BAD("an unprintable byte 0x%02x at %u of the text", c, i);
    }
    m->type = buf[5];
    m->state = buf[6];
    m->from = (int)from;
    m->to = (int)to;
    m->nonce = rdt_wire_get_u32(buf + 40);
    m->nwait = (int)nw;
    memcpy(m->text, buf + RDT_CTL_HDR_LEN, tl);
    m->text[tl] = '\0';
    return 0;
}

#undef BAD
