/*
 * fuzz_tcp_notice.c - libFuzzer target for the failure notice at the end of a TCP stream
 * (rdt_tcp_notice_parse / _pack in transport/tcp_wire.c: what tcp.c runs on the last bytes a
 * peer sent when its connection ends, and writes behind its last words when it gives up).
 *
 * Input: [mode u8][tail bytes ...]. The tail (an exact-size copy: a read past it is caught by
 * ASan) is judged as the end of a stream; the tail read as a C string (up to its first NUL) is
 * also encoded as a notice behind the first mode % 64 bytes of the input. Every input must
 * satisfy:
 *   - a notice is found exactly when the last 12 bytes are a trailer: magic RDTA, a length of at
 *     most 400 that the bytes before it hold, the check word of (0, length, RDTA);
 *   - its sentence is those bytes with every one outside 0x20..0x7e as '?' ("(no reason given)"
 *     when empty), cut to fit: printable only and NUL-terminated in buffers of 1, 2, 7, 64, 401
 *     and 512 bytes (exactly allocated); a buffer of 0 bytes, or any buffer when no notice is
 *     found, is left untouched;
 *   - only the last 412 bytes count (what tcp.c keeps): the same verdict and sentence from an
 *     exact-size copy of them;
 *   - any one flipped bit in the trailer of a notice makes it no notice;
 *   - what rdt_tcp_notice_pack encodes for a sentence (its first 400 bytes) is read back behind
 *     any prefix, exactly when printable; every proper prefix or suffix of a notice (a stream cut
 *     short at either end) is no notice.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_wire.h"
#include "wire.h"
#include "fuzz_util.h"

#define TAIL_LEN (RDT_TCP_NOTICE_MAX + RDT_TCP_TRAILER_LEN)
#define SENTINEL 0xa5

static const size_t lens[] = {1, 2, 7, 64, RDT_TCP_NOTICE_MAX + 1, 512};

static int printable(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* The notice the spec finds at the end of b[0..n-1]: its length in *k, or 0. */
static int want_notice(const unsigned char *b, size_t n, uint32_t *k)
{
    const unsigned char *t;

    if (n < RDT_TCP_TRAILER_LEN)
        return 0;
    t = b + n - RDT_TCP_TRAILER_LEN;
    *k = rdt_wire_get_u32(t);
    return rdt_wire_get_u32(t + 8) == RDT_TCP_NOTE_MAGIC && *k <= RDT_TCP_NOTICE_MAX &&
           *k <= n - RDT_TCP_TRAILER_LEN &&
           rdt_wire_get_u32(t + 4) == rdt_wire_hdr_check(0, *k, RDT_TCP_NOTE_MAGIC);
}

/* Parse an exact-size copy of b[0..n-1] into an exactly allocated buffer of len bytes (filled
 * with SENTINEL first); the verdict, the sentence (len > 0) copied to out[0..len-1]. */
static int parse_copy(const unsigned char *b, size_t n, size_t len, char *out)
{
    unsigned char *c = malloc(n ? n : 1);
    char *w = malloc(len ? len : 1);
    int rc;

    CHECK(c && w);
    memcpy(c, b, n);
    memset(w, SENTINEL, len ? len : 1);
    rc = rdt_tcp_notice_parse(c, n, w, len);
    if (len == 0)
        CHECK((unsigned char)w[0] == SENTINEL); /* nothing written */
    else
        memcpy(out, w, len);
    free(w);
    free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *tail = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0, i, li, sn, pre, L, j;
    char why[512], again[512], *s;
    unsigned char *enc;
    uint32_t k = 0;
    int rc, want, bit;

    /* The tail as it came. */
    want = want_notice(tail, n, &k);
    rc = parse_copy(tail, n, 0, NULL);
    CHECK(rc == want);
    for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        size_t len = lens[li];
        CHECK(parse_copy(tail, n, len, why) == rc);
        if (!rc) {
            for (i = 0; i < len; i++)
                CHECK((unsigned char)why[i] == SENTINEL);
            continue;
        }
        CHECK(memchr(why, '\0', len) != NULL);
        for (i = 0; why[i]; i++)
            CHECK(printable((unsigned char)why[i]));
        if (k == 0) {
            CHECK(strncmp(why, "(no reason given)", len - 1) == 0);
        } else {
            const unsigned char *t = tail + n - RDT_TCP_TRAILER_LEN - k;
            CHECK(strlen(why) == (k < len - 1 ? k : len - 1));
            for (i = 0; why[i]; i++)
                CHECK(why[i] == (printable(t[i]) ? (char)t[i] : '?'));
        }
    }

    /* Only the last TAIL_LEN bytes count. */
    if (n > TAIL_LEN) {
        CHECK(parse_copy(tail, n, sizeof(why), why) == rc);
        CHECK(parse_copy(tail + n - TAIL_LEN, TAIL_LEN, sizeof(again), again) == rc);
        CHECK(!rc || strcmp(why, again) == 0);
    }

    /* A flipped bit in the trailer of a notice: no notice. */
    if (rc) {
        unsigned char *c = malloc(n);
        CHECK(c);
        memcpy(c, tail, n);
        for (bit = 0; bit < 8 * RDT_TCP_TRAILER_LEN; bit++) {
            unsigned char *b = c + n - RDT_TCP_TRAILER_LEN + bit / 8;
            *b ^= (unsigned char)(1u << (bit % 8));
            CHECK(rdt_tcp_notice_parse(c, n, why, sizeof(why)) == 0);
            *b ^= (unsigned char)(1u << (bit % 8));
        }
        free(c);
    }

    /* The encoder: the tail as a C string, behind a prefix of the input. */
    s = malloc(n + 1);
    CHECK(s);
    memcpy(s, tail, n);
    s[n] = '\0';
    pre = size ? data[0] % 64 : 0;
    if (pre > size)
        pre = size;
    enc = malloc(pre + RDT_TCP_NOTICE_MAX + RDT_TCP_TRAILER_LEN);
    CHECK(enc);
    memcpy(enc, data, pre);
    sn = strlen(s) < RDT_TCP_NOTICE_MAX ? strlen(s) : RDT_TCP_NOTICE_MAX;
    memcpy(enc + pre, s, sn);
    CHECK(rdt_tcp_notice_pack(s, enc + pre + sn) == sn);
    L = pre + sn + RDT_TCP_TRAILER_LEN;
    CHECK(parse_copy(enc, L, RDT_TCP_NOTICE_MAX + 1, why) == 1);
    if (sn == 0) {
        CHECK(strcmp(why, "(no reason given)") == 0);
    } else {
        int all = 1;
        CHECK(strlen(why) == sn);
        for (i = 0; i < sn; i++) {
            all &= printable((unsigned char)s[i]);
            CHECK(why[i] == (printable((unsigned char)s[i]) ? s[i] : '?'));
        }
        CHECK(!all || memcmp(why, s, sn) == 0);
    }
    /* cut short: the notice alone (no prefix), less its first j or last j bytes */
    L = sn + RDT_TCP_TRAILER_LEN;
    for (j = 1; j <= L; j++) {
        CHECK(parse_copy(enc + pre + j, L - j, sizeof(why), why) == 0);
        CHECK(parse_copy(enc + pre, L - j, sizeof(why), why) == 0);
    }
    free(enc);
    free(s);
    return 0;
}
