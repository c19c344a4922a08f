/*
 * fuzz_bootstrap_reply.c - libFuzzer target for rank 0's reply as a peer reads it
 * (rdt_bootstrap_reply_check / _pack / _text in engine/bootstrap.c: what peer_read_reply calls
 * on the 16-byte header before it reads a single byte of the body, and on the error sentence).
 *
 * Input: [mode u8][nranks u16][blob bytes u32][reply header and body ...], big-endian.
 * mode bit 0: the table length this peer expects is the one the header announces (so that
 * accepted tables are reached); bits 1..7: the size of the sentence buffer (1 to 128, or 513
 * when 0). Beyond "no crash, no out-of-bounds read or write" (ASan; input and outputs are
 * exactly allocated), every input must satisfy:
 *   - a header is accepted only with the reply magic, and then announces either a table of
 *     exactly the expected length (status 0) or a sentence of at most 512 bytes with a real
 *     error status (not RDT_IN_PROGRESS, not beyond the table of statuses): the body length the
 *     peer then reads is bounded before use;
 *   - a refused header gives RDT_ERR_NETWORK or, for a table of another length only,
 *     RDT_ERR_MISMATCH, with a sentence; outputs are not written;
 *   - header fields re-encode to the same 16 bytes;
 *   - the sentence shown is the body's bytes up to the buffer's size, each byte outside
 *     0x20..0x7e as '?', always terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "fuzz_util.h"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *msg, again[RDT_BOOTSTRAP_REPLY_LEN];
    char why[600], *text;
    size_t len, tlen, textlen, body, i;
    uint32_t hstatus = 0;
    uint64_t hlen = 0, body_len = 0x5a5a5a5a5a5a5a5aULL;
    rdt_status_t st, status = (rdt_status_t)0x5a5a;
    int nranks, magic_ok, mode;

    if (size < 7)
        return 0;
    mode = data[0];
    nranks = (int)(data[1] << 8 | data[2]);
    tlen = (size_t)nranks * (size_t)be32(data + 3);
    len = size - 7;
    msg = malloc(len ? len : 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 7, len);
    magic_ok = len >= RDT_BOOTSTRAP_REPLY_LEN && be32(msg) == 0x52445452u;
    if (len >= RDT_BOOTSTRAP_REPLY_LEN) {
        hstatus = be32(msg + 4);
        hlen = (uint64_t)be32(msg + 8) << 32 | be32(msg + 12);
        if (magic_ok) {
            rdt_bootstrap_reply_pack(hstatus, hlen, again);
            CHECK(memcmp(again, msg, sizeof(again)) == 0);
        }
        if (mode & 1)
            tlen = (size_t)hlen;
    }

    why[0] = '\0';
    st = rdt_bootstrap_reply_check(msg, len, tlen, nranks, &status, &body_len, why, sizeof(why));
    CHECK(memchr(why, '\0', sizeof(why)) != NULL);
    if (st == RDT_SUCCESS) {
        CHECK(magic_ok);
        CHECK((uint32_t)status == hstatus && body_len == hlen);
        if (status == RDT_SUCCESS)
            CHECK(body_len == (uint64_t)tlen);
        else
            CHECK(status < RDT_STATUS_COUNT && status != RDT_IN_PROGRESS &&
                  body_len <= RDT_BOOTSTRAP_MAX_MSG);
    } else {
        CHECK(why[0] != '\0');
        CHECK(status == (rdt_status_t)0x5a5a && body_len == 0x5a5a5a5a5a5a5a5aULL);
        CHECK(st == RDT_ERR_NETWORK || st == RDT_ERR_MISMATCH);
        CHECK(st != RDT_ERR_MISMATCH || (magic_ok && hstatus == 0 && hlen != (uint64_t)tlen));
        CHECK(st != RDT_ERR_NETWORK || !magic_ok ||
              (hstatus != 0 &&
               (hstatus >= (uint32_t)RDT_STATUS_COUNT || hstatus == (uint32_t)RDT_IN_PROGRESS ||
                hlen > RDT_BOOTSTRAP_MAX_MSG)));
    }

    /* The sentence after an accepted error header, as the peer shows it: what arrived of the
     * announced length (a peer that reads less shows less). */
    if (st == RDT_SUCCESS && status != RDT_SUCCESS) {
        body = len - RDT_BOOTSTRAP_REPLY_LEN;
        if (body > body_len)
            body = (size_t)body_len;
        textlen = (mode >> 1) ? (size_t)(mode >> 1) : RDT_BOOTSTRAP_MAX_MSG + 1;
        text = malloc(textlen);
        if (text) {
            const unsigned char *b = msg + RDT_BOOTSTRAP_REPLY_LEN;
            size_t shown = body < textlen - 1 ? body : textlen - 1;
            rdt_bootstrap_reply_text(b, body, text, textlen);
            CHECK(text[shown] == '\0');
            for (i = 0; i < shown; i++)
                CHECK(text[i] == (b[i] >= 0x20 && b[i] <= 0x7e ? (char)b[i] : '?'));
            free(text);
        }
    }
    free(msg);
    return 0;
}
