/*
 * fuzz_tcp_frame.c - libFuzzer target for the frame header in front of every TCP message and
 * failure notice (rdt_tcp_frame_parse / _pack in transport/tcp_wire.c: what tcp.c runs on each
 * 24 bytes of the stream where a header is due, before a length is trusted).
 *
 * Input: [header bytes ...] (an exact-size copy: a read past them is caught by ASan); its bytes
 * 8..23, zero-padded, are also encoded as a fresh header. Every input must satisfy:
 *   - fewer than 24 bytes are MORE, and nothing else is;
 *   - MSG and NOTICE exactly for magic RDT1 / RDTA with the check word of (tag, length, magic);
 *     then tag and length are the header's, and re-encoding gives the same 24 bytes;
 *   - any one flipped bit in the check word, tag or length of an accepted header makes it
 *     CORRUPT (a stream that lost its framing is caught, whatever length it would claim);
 *   - CORRUPT comes with a sentence naming the magic, which fits any buffer (also 1 and 7 bytes,
 *     exactly allocated);
 *   - the verdict on the first 24 bytes is the verdict on the whole input;
 *   - what rdt_tcp_frame_pack encodes for any tag and length parses back to them.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_wire.h"
#include "wire.h"
#include "fuzz_util.h"

static rdt_tcp_frame_t parse(const unsigned char *b, size_t len, uint64_t *tag, uint64_t *n,
                             char *why, size_t wn)
{
    *tag = *n = 0x5a5a5a5a5a5a5a5aULL;
    return rdt_tcp_frame_parse(b, len, tag, n, why, wn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *b, in[RDT_TCP_HDR_LEN], again[RDT_TCP_HDR_LEN];
    uint64_t tag, len, t2, l2;
    uint32_t magic = 0;
    char why[96], why2[96];
    rdt_tcp_frame_t v, w;
    int bit;

    b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    memset(in, 0, sizeof(in));
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));

    why[0] = '\0';
    v = parse(b, size, &tag, &len, why, sizeof(why));
    if (size < RDT_TCP_HDR_LEN) {
        CHECK(v == RDT_TCP_FRAME_MORE);
    } else {
        uint64_t htag = rdt_wire_get_u64(b + 8), hlen = rdt_wire_get_u64(b + 16);
        magic = rdt_wire_get_u32(b);
        CHECK(v != RDT_TCP_FRAME_MORE);
        if ((magic == RDT_TCP_MSG_MAGIC || magic == RDT_TCP_NOTE_MAGIC) &&
            rdt_wire_get_u32(b + 4) == rdt_wire_hdr_check(htag, hlen, magic))
            CHECK(v == (magic == RDT_TCP_MSG_MAGIC ? RDT_TCP_FRAME_MSG : RDT_TCP_FRAME_NOTICE));
        else
            CHECK(v == RDT_TCP_FRAME_CORRUPT);
    }
    if (v == RDT_TCP_FRAME_MSG || v == RDT_TCP_FRAME_NOTICE) {
        CHECK(tag == rdt_wire_get_u64(b + 8) && len == rdt_wire_get_u64(b + 16));
        rdt_tcp_frame_pack(magic, tag, len, again);
        CHECK(memcmp(again, b, RDT_TCP_HDR_LEN) == 0);
        for (bit = 32; bit < 8 * RDT_TCP_HDR_LEN; bit++) {
            again[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            CHECK(parse(again, RDT_TCP_HDR_LEN, &t2, &l2, why2, sizeof(why2)) ==
                  RDT_TCP_FRAME_CORRUPT);
            again[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
    } else if (v == RDT_TCP_FRAME_CORRUPT) {
        char want[40];
        snprintf(want, sizeof(want), "(magic 0x%08" PRIx32 ")", magic);
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && strstr(why, want) != NULL);
    }

    /* Bytes past the header (its payload) change nothing. */
    if (size > RDT_TCP_HDR_LEN) {
        unsigned char *h = malloc(RDT_TCP_HDR_LEN);
        if (h) {
            memcpy(h, b, RDT_TCP_HDR_LEN);
            w = parse(h, RDT_TCP_HDR_LEN, &t2, &l2, why2, sizeof(why2));
            CHECK(w == v);
            CHECK(v != RDT_TCP_FRAME_CORRUPT || strcmp(why, why2) == 0);
            CHECK((v != RDT_TCP_FRAME_MSG && v != RDT_TCP_FRAME_NOTICE) ||
                  (t2 == tag && l2 == len));
            free(h);
        }
    }

    /* Tiny sentence buffers, exactly allocated. */
    FUZZ_TINY_SENTENCES(parse(b, size, &t2, &l2, fuzz_w, fuzz_k), v, v == RDT_TCP_FRAME_CORRUPT);

    /* The encoder: any tag and length, either magic, parse back. */
    tag = rdt_wire_get_u64(in + 8);
    len = rdt_wire_get_u64(in + 16);
    magic = in[0] & 1 ? RDT_TCP_NOTE_MAGIC : RDT_TCP_MSG_MAGIC;
    rdt_tcp_frame_pack(magic, tag, len, again);
    CHECK(parse(again, RDT_TCP_HDR_LEN, &t2, &l2, why2, sizeof(why2)) ==
          (magic == RDT_TCP_MSG_MAGIC ? RDT_TCP_FRAME_MSG : RDT_TCP_FRAME_NOTICE));
    CHECK(t2 == tag && l2 == len);
    free(b);
    return 0;
}
