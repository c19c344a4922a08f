/*
 * fuzz_ctl.c - libFuzzer target for the status channel's datagram (rdt_ctl_parse / _pack in
 * engine/ctl_wire.c: what ctl.c runs on every datagram that reaches a rank's UDP socket, from
 * anyone on the network, before it answers a query or fails the communicator on a "gave up").
 *
 * Input: [mode u8][nranks u16][me u16][datagram bytes ...], big-endian. The job: nranks (0 is
 * read as 1), this rank me % nranks, communicator 0x0123456789abcdef, a fixed token. mode bit 0:
 * the job's token is the datagram's own; bit 1: so is its communicator id (when the datagram is
 * long enough to hold them), so that members, not only strangers, are reached. Beyond "no crash,
 * no out-of-bounds read" (ASan, the datagram is an exact-size copy) every input must satisfy:
 *   - accepted exactly when it is RDT_CTL_HDR_LEN + text length bytes long with magic RDTS,
 *     version 1, the job's token and communicator id, type 1..3, state 0..1, reserved byte 7
 *     zero, a sender rank below nranks other than me, addressed to me, at most RDT_CTL_MAX_WAIT
 *     waited ranks each below nranks and the unused wait slots zero, a text of at most
 *     RDT_CTL_TEXT_MAX bytes, all printable (0x20..0x7e);
 *   - then the message holds those fields (the text NUL-terminated), and rdt_ctl_pack of it
 *     gives back the very same bytes (the encoding is canonical);
 *   - a rejection comes with a sentence, which fits any buffer (also 1 and 7 bytes, exactly
 *     allocated, and none at all);
 *   - the verdict and sentence do not depend on bytes past the datagram's length.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_wire.h"
#include "wire.h"
#include "fuzz_util.h"

/* The spec, written out independently of the parser. */
static int wanted(const unsigned char *b, size_t len, uint64_t comm, const unsigned char *token,
                  int nranks, int me)
{
    uint32_t from, to, nw, tl, i;

    if (len < RDT_CTL_HDR_LEN)
        return 0;
    if (memcmp(b, "RDTS", 4) != 0 || b[4] != 1 || b[5] < 1 || b[5] > 3 || b[6] > 1 || b[7] != 0)
        return 0;
    if (rdt_wire_get_u64(b + 8) != comm || memcmp(b + 16, token, RDT_TOKEN_LEN) != 0)
        return 0;
    from = rdt_wire_get_u32(b + 32);
    to = rdt_wire_get_u32(b + 36);
    if (from >= (uint32_t)nranks || from == (uint32_t)me || to != (uint32_t)me)
        return 0;
    nw = b[44] | (uint32_t)b[45] << 8;
    tl = b[46] | (uint32_t)b[47] << 8;
    if (nw > RDT_CTL_MAX_WAIT || tl > RDT_CTL_TEXT_MAX || len != RDT_CTL_HDR_LEN + (size_t)tl)
        return 0;
    for (i = 0; i < RDT_CTL_MAX_WAIT; i++) {
        uint32_t r = rdt_wire_get_u32(b + 48 + 4 * i);
        if (i < nw ? r >= (uint32_t)nranks : r != 0)
            return 0;
    }
    for (i = 0; i < tl; i++)
        if (b[RDT_CTL_HDR_LEN + i] < 0x20 || b[RDT_CTL_HDR_LEN + i] > 0x7e)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *token = fuzz_token;
    unsigned char *b, *padded, again[RDT_CTL_MSG_MAX];
    uint64_t comm = FUZZ_COMM;
    rdt_ctl_msg_t m, m2;
    char why[160], why2[160];
    size_t len, n;
    int mode, me, nranks, rc, rc2, want, i;

    if (size < 5)
        return 0;
    mode = data[0];
    nranks = data[1] << 8 | data[2];
    me = data[3] << 8 | data[4];
    len = size - 5;
    b = malloc(len ? len : 1); /* exact size: a read past len is caught */
    if (!b)
        return 0;
    memcpy(b, data + 5, len);
    if ((mode & 1) && len >= 32)
        token = b + 16;
    if ((mode & 2) && len >= 16)
        comm = rdt_wire_get_u64(b + 8);
    if (nranks == 0)
        nranks = 1;
    me %= nranks;

    memset(why, 0x5a, sizeof(why));
    memset(&m, 0x5a, sizeof(m));
    rc = rdt_ctl_parse(b, len, comm, token, nranks, me, &m, why, sizeof(why));
    CHECK(rc == 0 || rc == -1);
    want = wanted(b, len, comm, token, nranks, me);
    CHECK((rc == 0) == want);
    if (rc == 0) {
        CHECK(m.type == b[5] && m.state == b[6]);
        CHECK(m.from == (int)rdt_wire_get_u32(b + 32) && m.to == me);
        CHECK(m.nonce == rdt_wire_get_u32(b + 40));
        CHECK(m.nwait >= 0 && m.nwait <= RDT_CTL_MAX_WAIT);
        for (i = 0; i < m.nwait; i++)
            CHECK(m.wait[i] >= 0 && m.wait[i] < nranks);
        CHECK(strlen(m.text) == len - RDT_CTL_HDR_LEN);
        CHECK(memcmp(m.text, b + RDT_CTL_HDR_LEN, len - RDT_CTL_HDR_LEN) == 0);
        n = rdt_ctl_pack(&m, comm, token, again);
        CHECK(n == len && memcmp(again, b, len) == 0);
        /* and what was packed parses to the same message */
        memset(&m2, 0, sizeof(m2));
        CHECK(rdt_ctl_parse(again, n, comm, token, nranks, me, &m2, why2, sizeof(why2)) == 0);
        CHECK(m2.type == m.type && m2.state == m.state && m2.from == m.from && m2.to == m.to &&
              m2.nonce == m.nonce && m2.nwait == m.nwait && strcmp(m2.text, m.text) == 0 &&
              memcmp(m2.wait, m.wait, (size_t)m.nwait * sizeof(int)) == 0);
    } else {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    }

    /* Bytes past the datagram's length (the rest of a receive buffer) change nothing. */
    padded = malloc(len + 64);
    if (padded) {
        memcpy(padded, b, len);
        memset(padded + len, 'A', 64); /* printable, as a longer text would be */
        memset(why2, 0x5a, sizeof(why2));
        rc2 = rdt_ctl_parse(padded, len, comm, token == b + 16 ? padded + 16 : token, nranks, me,
                            &m2, why2, sizeof(why2));
        CHECK(rc2 == rc);
        CHECK(rc == 0 || strcmp(why2, why) == 0);
        free(padded);
    }

    /* Tiny sentence buffers, exactly allocated, and none at all. */
    FUZZ_TINY_SENTENCES(rdt_ctl_parse(b, len, comm, token, nranks, me, &m2, fuzz_w, fuzz_k), rc,
                        rc != 0);
    CHECK(rdt_ctl_parse(b, len, comm, token, nranks, me, &m2, NULL, 0) == rc);
    free(b);
    return 0;
}
