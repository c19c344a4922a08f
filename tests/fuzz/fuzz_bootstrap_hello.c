/*
 * fuzz_bootstrap_hello.c - libFuzzer target for the rendezvous hello as rank 0 judges it
 * (rdt_bootstrap_hello_check / _unpack / _pack in engine/bootstrap.c: the functions the root's
 * event loop calls on every chunk it receives).
 *
 * Input: [mode u8][job nranks u16][job blob bytes u16][header bytes ...], big-endian.
 * mode bit 0: the job's token is the one in the header (else 16 fixed bytes), so that members,
 * not only strangers, are reached; bit 1: the job's nranks and blob length are also the header's
 * (its rank is still judged). Beyond "no crash, no out-of-bounds read" (ASan, the header is an
 * exact-size copy) every input must satisfy:
 *   - MORE only while fewer than 40 bytes came and none was wrong (a wrong magic is STRANGER from
 *     its 4th byte on); the verdict on 40 bytes is the verdict on any longer input;
 *   - every prefix of the header gets MORE or, once the magic is wrong, STRANGER: the chunked
 *     reads of the root cannot see anything else before the header is complete;
 *   - a complete header with the right magic decodes, and re-encodes to the same 40 bytes;
 *   - OK means: version 1, the job's token, size and blob length, and a rank in 1..nranks-1
 *     (what rank 0 then uses as an index); DISAGREE means the job's token and a status of
 *     RDT_ERR_CONFIG or RDT_ERR_MISMATCH; STRANGER and DISAGREE come with a sentence, which fits
 *     any buffer (also 1 and 7 bytes, exactly allocated).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "fuzz_util.h"

typedef struct verdict {
    rdt_bootstrap_verdict_t v;
    rdt_bootstrap_hello_t h;
    rdt_status_t st;
    char why[600];
} verdict_t;

static void judge(const unsigned char *hdr, size_t len, const unsigned char *token, int nranks,
                  size_t bytes, verdict_t *out)
{
    memset(out, 0x5a, sizeof(*out)); /* outputs not written must not be trusted */
    out->why[0] = '\0';
    out->st = RDT_IN_PROGRESS;
    out->v = rdt_bootstrap_hello_check(hdr, len, token, nranks, bytes, "192.0.2.1:4242", &out->h,
                                       &out->st, out->why, sizeof(out->why));
    CHECK(memchr(out->why, '\0', sizeof(out->why)) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *token = fuzz_token;
    unsigned char *hdr, again[RDT_BOOTSTRAP_HELLO_LEN];
    rdt_bootstrap_hello_t dec;
    verdict_t v, w;
    size_t len, k, bytes;
    int mode, nranks, magic_ok;

    if (size < 5)
        return 0;
    mode = data[0];
    nranks = (int)(data[1] << 8 | data[2]);
    bytes = (size_t)(data[3] << 8 | data[4]);
    len = size - 5;
    hdr = malloc(len ? len : 1); /* exact size: a read past len is caught */
    if (!hdr)
        return 0;
    memcpy(hdr, data + 5, len);
    magic_ok = len < 4 || (hdr[0] == 'R' && hdr[1] == 'D' && hdr[2] == 'T' && hdr[3] == 'H');
    if (rdt_bootstrap_hello_unpack(hdr, len, &dec) == 0) {
        CHECK(len >= RDT_BOOTSTRAP_HELLO_LEN && magic_ok);
        rdt_bootstrap_hello_pack(&dec, again);
        CHECK(memcmp(again, hdr, RDT_BOOTSTRAP_HELLO_LEN) == 0);
        if (mode & 1)
            token = dec.token;
        if (mode & 2) {
            nranks = (int)(dec.nranks & 0x7fffffff);
            bytes = (size_t)dec.blob_len;
        }
    } else {
        CHECK(len < RDT_BOOTSTRAP_HELLO_LEN || !magic_ok);
    }

    judge(hdr, len, token, nranks, bytes, &v);
    switch (v.v) {
    case RDT_BOOTSTRAP_HELLO_MORE:
        CHECK(len < RDT_BOOTSTRAP_HELLO_LEN && magic_ok);
        break;
    case RDT_BOOTSTRAP_HELLO_STRANGER:
        CHECK(v.why[0] != '\0');
        CHECK(!magic_ok || (len >= RDT_BOOTSTRAP_HELLO_LEN &&
                            (dec.version != 1 || memcmp(dec.token, token, 16) != 0)));
        break;
    case RDT_BOOTSTRAP_HELLO_DISAGREE:
        CHECK(v.why[0] != '\0');
        CHECK(len >= RDT_BOOTSTRAP_HELLO_LEN && magic_ok && dec.version == 1 &&
              memcmp(dec.token, token, 16) == 0);
        CHECK(v.st == RDT_ERR_CONFIG || v.st == RDT_ERR_MISMATCH);
        CHECK(v.st != RDT_ERR_MISMATCH ||
              (dec.nranks == (uint32_t)nranks && dec.blob_len != (uint64_t)bytes));
        CHECK(dec.nranks != (uint32_t)nranks || dec.rank == 0 || dec.rank >= dec.nranks ||
              dec.blob_len != (uint64_t)bytes);
        break;
    case RDT_BOOTSTRAP_HELLO_OK:
        CHECK(len >= RDT_BOOTSTRAP_HELLO_LEN && magic_ok);
        CHECK(v.h.version == dec.version && memcmp(v.h.token, dec.token, 16) == 0 &&
              v.h.nranks == dec.nranks && v.h.rank == dec.rank && v.h.blob_len == dec.blob_len);
        CHECK(v.h.version == 1 && memcmp(v.h.token, token, 16) == 0);
        CHECK(nranks >= 2 && v.h.nranks == (uint32_t)nranks);
        CHECK(v.h.rank >= 1 && v.h.rank < (uint32_t)nranks);
        CHECK(v.h.blob_len == (uint64_t)bytes);
        break;
    default:
        abort();
    }

    /* The root judges after every chunk: each prefix is MORE, or STRANGER once the magic is
     * seen to be wrong; 40 bytes decide, whatever follows. */
    for (k = 0; k <= len && k <= RDT_BOOTSTRAP_HELLO_LEN; k++) {
        judge(hdr, k, token, nranks, bytes, &w);
        if (k == RDT_BOOTSTRAP_HELLO_LEN) {
            CHECK(w.v == v.v && strcmp(w.why, v.why) == 0);
            CHECK(w.v != RDT_BOOTSTRAP_HELLO_DISAGREE || w.st == v.st);
        } else if (k < 4 || magic_ok) {
            CHECK(w.v == RDT_BOOTSTRAP_HELLO_MORE);
        } else {
            CHECK(w.v == RDT_BOOTSTRAP_HELLO_STRANGER && v.v == RDT_BOOTSTRAP_HELLO_STRANGER);
        }
    }

    /* Tiny sentence buffers, exactly allocated. */
    for (k = 1; k <= 7; k += 6) {
        char *why = malloc(k);
        rdt_status_t st = RDT_IN_PROGRESS;
        rdt_bootstrap_hello_t h;
        if (!why)
            break;
        CHECK(rdt_bootstrap_hello_check(hdr, len, token, nranks, bytes, "x", &h, &st, why, k) ==
              v.v);
        CHECK(v.v == RDT_BOOTSTRAP_HELLO_MORE || v.v == RDT_BOOTSTRAP_HELLO_OK ||
              memchr(why, '\0', k) != NULL);
        free(why);
    }
    free(hdr);
    return 0;
}
