/*
 * fuzz_shm_msg.c - libFuzzer target for the records a shared-memory peer writes into a ring: the
 * eager message header and the rendezvous request (rdt_shm_rec_parse, rdt_shm_msg_pack /
 * _rts_pack in transport/shm_wire.c: what shm.c runs where a record is due in the ring from a
 * peer, before a length or a remote address is trusted).
 *
 * Input: [mode u8][sequence due u64, big-endian][record bytes ...]. mode bit 0: the sequence due
 * is the record's own (its bytes 32..39), bit 1: the check word is replaced by the right one for
 * its magic, tag and length; so that real records, not only garbage, are reached. The record is
 * an exact-size copy (ASan catches a read past it); its bytes 8..39, zero-padded, are also
 * encoded as fresh records. Every input must satisfy:
 *   - fewer than 24 bytes are MORE, and nothing else is;
 *   - MSG exactly for magic RDS1 with the check word of (tag, length, magic): tag and length are
 *     the header's (address and sequence 0), re-encoding gives the same 24 bytes;
 *   - RTS exactly for magic RDS2 with its check word, at least 40 bytes, and the sequence due:
 *     tag, length, address and sequence are the record's, re-encoding gives the same 40 bytes;
 *   - any one flipped bit in the magic, check word, tag or length of an accepted record (or the
 *     sequence of a request) makes it CORRUPT, and so does a request cut to 24..39 bytes;
 *   - CORRUPT comes with a sentence naming the magic, or both sequences, which fits any buffer
 *     (also 1 and 7 bytes, exactly allocated);
 *   - the verdict on the first 40 bytes (24 for MSG) is the verdict on the whole input;
 *   - what the encoders write for any tag, length, address and sequence parses back to them
 *     (a request out of sequence: CORRUPT).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_wire.h"
#include "wire.h"
#include "fuzz_util.h"

#define PRE 9

static rdt_shm_rec_kind_t parse(const unsigned char *b, size_t avail, uint64_t due,
                                rdt_shm_rec_t *r, char *why, size_t n)
{
    memset(r, 0x5a, sizeof(*r));
    return rdt_shm_rec_parse(b, avail, due, r, why, n);
}

/* Parse an exact-size copy of b[0..avail-1]. */
static rdt_shm_rec_kind_t parse_copy(const unsigned char *b, size_t avail, uint64_t due,
                                     rdt_shm_rec_t *r, char *why, size_t n)
{
    unsigned char *c = malloc(avail ? avail : 1);
    rdt_shm_rec_kind_t v;

    CHECK(c);
    memcpy(c, b, avail);
    v = parse(c, avail, due, r, why, n);
    free(c);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char pre[PRE], in[RDT_SHM_RTS_LEN], *b, again[RDT_SHM_RTS_LEN];
    size_t len = size > PRE ? size - PRE : 0, k;
    uint64_t due = 0, tag, n, addr, seq;
    uint32_t magic = 0;
    rdt_shm_rec_kind_t v, w;
    rdt_shm_rec_t r, r2;
    char why[128], why2[128];
    int bit, mode;

    memset(pre, 0, sizeof(pre));
    memcpy(pre, data, size < PRE ? size : PRE);
    mode = pre[0];
    for (k = 1; k < PRE; k++)
        due = due << 8 | pre[k];

    b = malloc(len ? len : 1);
    if (!b)
        return 0;
    if (len)
        memcpy(b, data + PRE, len);
    if (len >= 32 + 8 && (mode & 1))
        due = rdt_wire_get_u64(b + 32);
    if (len >= RDT_SHM_HDR_LEN && (mode & 2))
        rdt_wire_put_u32(b + 4, rdt_wire_hdr_check(rdt_wire_get_u64(b + 8),
                                                   rdt_wire_get_u64(b + 16),
                                                   rdt_wire_get_u32(b)));
    memset(in, 0, sizeof(in));
    memcpy(in, b, len < sizeof(in) ? len : sizeof(in));

    why[0] = '\0';
    v = parse(b, len, due, &r, why, sizeof(why));
    if (len < RDT_SHM_HDR_LEN) {
        CHECK(v == RDT_SHM_REC_MORE);
    } else {
        int hdr_ok;
        magic = rdt_wire_get_u32(b);
        tag = rdt_wire_get_u64(b + 8);
        n = rdt_wire_get_u64(b + 16);
        hdr_ok = rdt_wire_get_u32(b + 4) == rdt_wire_hdr_check(tag, n, magic);
        if (magic == RDT_SHM_MSG_MAGIC && hdr_ok)
            CHECK(v == RDT_SHM_REC_MSG);
        else if (magic == RDT_SHM_RTS_MAGIC && hdr_ok && len >= RDT_SHM_RTS_LEN &&
                 rdt_wire_get_u64(b + 32) == due)
            CHECK(v == RDT_SHM_REC_RTS);
        else
            CHECK(v == RDT_SHM_REC_CORRUPT);
    }

    if (v == RDT_SHM_REC_MSG || v == RDT_SHM_REC_RTS) {
        size_t rl = v == RDT_SHM_REC_MSG ? RDT_SHM_HDR_LEN : RDT_SHM_RTS_LEN;
        CHECK(r.tag == rdt_wire_get_u64(b + 8) && r.len == rdt_wire_get_u64(b + 16));
        if (v == RDT_SHM_REC_MSG) {
            CHECK(r.addr == 0 && r.seq == 0);
            rdt_shm_msg_pack(r.tag, r.len, again);
        } else {
            CHECK(r.addr == rdt_wire_get_u64(b + 24) && r.seq == rdt_wire_get_u64(b + 32) &&
                  r.seq == due);
            rdt_shm_rts_pack(r.tag, r.len, r.addr, r.seq, again);
        }
        CHECK(memcmp(again, b, rl) == 0);
        /* a flipped bit in what is checked: CORRUPT */
        for (bit = 0; bit < 8 * (int)rl; bit++) {
            if (bit >= 8 * 24 && bit < 8 * 32)
                continue; /* the address: not checked (the copy from it is) */
            again[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            CHECK(parse_copy(again, rl, due, &r2, why2, sizeof(why2)) == RDT_SHM_REC_CORRUPT);
            again[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        /* a request cut short: CORRUPT */
        if (v == RDT_SHM_REC_RTS)
            for (k = RDT_SHM_HDR_LEN; k < RDT_SHM_RTS_LEN; k++)
                CHECK(parse_copy(again, k, due, &r2, why2, sizeof(why2)) ==
                      RDT_SHM_REC_CORRUPT);
        /* only the record is read */
        w = parse_copy(b, rl, due, &r2, why2, sizeof(why2));
        CHECK(w == v && memcmp(&r, &r2, sizeof(r)) == 0);
    } else if (v == RDT_SHM_REC_CORRUPT) {
        char want[96];
        CHECK(memchr(why, '\0', sizeof(why)) != NULL);
        if (magic == RDT_SHM_RTS_MAGIC && len >= RDT_SHM_RTS_LEN &&
            rdt_wire_get_u32(b + 4) == rdt_wire_hdr_check(rdt_wire_get_u64(b + 8),
                                                          rdt_wire_get_u64(b + 16), magic))
            snprintf(want, sizeof(want), "rendezvous %" PRIu64 " where %" PRIu64 " was due",
                     rdt_wire_get_u64(b + 32), due);
        else
            snprintf(want, sizeof(want), "(magic 0x%08" PRIx32 ")", magic);
        CHECK(strstr(why, want) != NULL);
    }

    /* The verdict on the first RDT_SHM_RTS_LEN bytes is the verdict on the whole input. */
    if (len > RDT_SHM_RTS_LEN) {
        w = parse_copy(b, RDT_SHM_RTS_LEN, due, &r2, why2, sizeof(why2));
        CHECK(w == v);
        CHECK(v != RDT_SHM_REC_CORRUPT || strcmp(why, why2) == 0);
        CHECK((v != RDT_SHM_REC_MSG && v != RDT_SHM_REC_RTS) || memcmp(&r, &r2, sizeof(r)) == 0);
    }

    /* Tiny sentence buffers, exactly allocated. */
    FUZZ_TINY_SENTENCES(parse(b, len, due, &r2, fuzz_w, fuzz_k), v, v == RDT_SHM_REC_CORRUPT);

    /* The encoders: any tag, length, address and sequence parse back. */
    tag = rdt_wire_get_u64(in + 8);
    n = rdt_wire_get_u64(in + 16);
    addr = rdt_wire_get_u64(in + 24);
    seq = rdt_wire_get_u64(in + 32);
    rdt_shm_msg_pack(tag, n, again);
    CHECK(parse_copy(again, RDT_SHM_HDR_LEN, seq, &r2, why2, sizeof(why2)) == RDT_SHM_REC_MSG);
    CHECK(r2.tag == tag && r2.len == n && r2.addr == 0 && r2.seq == 0);
    rdt_shm_rts_pack(tag, n, addr, seq, again);
    CHECK(parse_copy(again, RDT_SHM_RTS_LEN, seq, &r2, why2, sizeof(why2)) == RDT_SHM_REC_RTS);
    CHECK(r2.tag == tag && r2.len == n && r2.addr == addr && r2.seq == seq);
    CHECK(parse_copy(again, RDT_SHM_RTS_LEN, seq + 1, &r2, why2, sizeof(why2)) ==
          RDT_SHM_REC_CORRUPT);
    CHECK(strstr(why2, "was due") != NULL);
    free(b);
    return 0;
}
