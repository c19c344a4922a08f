/*
 * fuzz_wire.c - libFuzzer target for transport/wire.c, the byte-level helpers every transport
 * trusts with bytes from the network: the packed socket address (rdt_wire_sockaddr_unpack, run
 * on every address of the rendezvous table), the message header check word, integer packing
 * and the token comparison.
 *
 * Input: [24 bytes: a packed address][8: tag][8: length][1: bit to flip][16: a token] (shorter
 * inputs are padded with zeros; the address is an exact-size copy, so a read past its 24 bytes
 * is caught by ASan). Every input must satisfy:
 *   - unpack accepts exactly family 4 or 6 with a nonzero port, and then yields that family's
 *     sockaddr, whose pack gives back the input's meaningful bytes (8 or 24; the rest zero), and
 *     unpack of that gives the same sockaddr;
 *   - rdt_wire_sockaddr_str terminates within any buffer (1 to 120 bytes); for IPv4 it prints
 *     exactly "a.b.c.d:port";
 *   - a header whose tag or length differs in one bit has another check word (a stream that lost
 *     its framing by one bit is caught), and the check is a function of (tag, len, magic);
 *   - get/put of 32 and 64 bits are little-endian and inverse;
 *   - rdt_wire_token_equal agrees with memcmp.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"
#include "wire.h"
#include "fuzz_util.h"

#define IN_LEN (RDT_WIRE_SOCKADDR_LEN + 8 + 8 + 1 + RDT_TOKEN_LEN)

static void check_sockaddr(const unsigned char *in, const unsigned char *a)
{
    struct sockaddr_storage ss, ss2;
    socklen_t sl = 0, sl2 = 0;
    unsigned char packed[RDT_ADDR_MAX];
    char str[120], *small;
    size_t used, n, i;
    int rc = rdt_wire_sockaddr_unpack(a, &ss, &sl);
    int port_zero = a[2] == 0 && a[3] == 0;

    CHECK(rc == ((a[0] == 4 || a[0] == 6) && !port_zero ? 0 : -1));
    if (rc != 0)
        return;
    CHECK(ss.ss_family == (a[0] == 4 ? AF_INET : AF_INET6));
    CHECK(sl == (a[0] == 4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
    used = rdt_wire_sockaddr_pack((struct sockaddr *)&ss, packed);
    CHECK(used == (a[0] == 4 ? 8u : (size_t)RDT_WIRE_SOCKADDR_LEN));
    CHECK(packed[0] == a[0] && packed[1] == 0 && memcmp(packed + 2, a + 2, used - 2) == 0);
    for (i = used; i < RDT_ADDR_MAX; i++)
        CHECK(packed[i] == 0);
    CHECK(rdt_wire_sockaddr_unpack(packed, &ss2, &sl2) == 0 && sl2 == sl &&
          memcmp(&ss, &ss2, sizeof(ss)) == 0);

    n = 1 + in[RDT_WIRE_SOCKADDR_LEN + 16] % 119;
    small = malloc(n);
    if (small) {
        rdt_wire_sockaddr_str((struct sockaddr *)&ss, sl, small, n);
        CHECK(memchr(small, '\0', n) != NULL);
        free(small);
    }
    rdt_wire_sockaddr_str((struct sockaddr *)&ss, sl, str, sizeof(str));
    CHECK(memchr(str, '\0', sizeof(str)) != NULL);
    if (a[0] == 4) {
        char want[32];
        snprintf(want, sizeof(want), "%u.%u.%u.%u:%u", a[4], a[5], a[6], a[7],
                 (unsigned)(a[2] << 8 | a[3]));
        CHECK(strcmp(str, want) == 0);
    } else {
        CHECK(str[0] == '[' && strstr(str, "]:") != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char in[IN_LEN], *addr, b8[8], tok[RDT_TOKEN_LEN];
    uint64_t tag, len, v64 = 0;
    uint32_t c, v32 = 0;
    int bit, i;

    memset(in, 0, sizeof(in));
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    addr = malloc(RDT_WIRE_SOCKADDR_LEN);
    if (!addr)
        return 0;
    memcpy(addr, in, RDT_WIRE_SOCKADDR_LEN);
    check_sockaddr(in, addr);
    free(addr);

    /* integers: little-endian, and get/put inverse */
    tag = rdt_wire_get_u64(in + RDT_WIRE_SOCKADDR_LEN);
    len = rdt_wire_get_u64(in + RDT_WIRE_SOCKADDR_LEN + 8);
    for (i = 7; i >= 0; i--)
        v64 = v64 << 8 | in[RDT_WIRE_SOCKADDR_LEN + i];
    CHECK(v64 == tag);
    rdt_wire_put_u64(b8, tag);
    CHECK(memcmp(b8, in + RDT_WIRE_SOCKADDR_LEN, 8) == 0);
    for (i = 3; i >= 0; i--)
        v32 = v32 << 8 | in[RDT_WIRE_SOCKADDR_LEN + 8 + i];
    CHECK(rdt_wire_get_u32(in + RDT_WIRE_SOCKADDR_LEN + 8) == v32);
    rdt_wire_put_u32(b8, v32);
    CHECK(memcmp(b8, in + RDT_WIRE_SOCKADDR_LEN + 8, 4) == 0);

    /* the header check: one flipped bit of tag or length changes it */
    bit = in[RDT_WIRE_SOCKADDR_LEN + 16] & 127;
    c = rdt_wire_hdr_check(tag, len, 0x31544452u);
    CHECK(c == rdt_wire_hdr_check(tag, len, 0x31544452u));
    if (bit < 64)
        CHECK(rdt_wire_hdr_check(tag ^ ((uint64_t)1 << bit), len, 0x31544452u) != c);
    else
        CHECK(rdt_wire_hdr_check(tag, len ^ ((uint64_t)1 << (bit - 64)), 0x31544452u) != c);

    /* tokens: the constant-time comparison is a comparison */
    memcpy(tok, in + RDT_WIRE_SOCKADDR_LEN + 17, RDT_TOKEN_LEN);
    CHECK(rdt_wire_token_equal(tok, in + RDT_WIRE_SOCKADDR_LEN + 17) == 1);
    tok[in[RDT_WIRE_SOCKADDR_LEN + 16] % RDT_TOKEN_LEN] ^= (unsigned char)(1 + (bit & 0x7f));
    CHECK(rdt_wire_token_equal(tok, in + RDT_WIRE_SOCKADDR_LEN + 17) ==
          (memcmp(tok, in + RDT_WIRE_SOCKADDR_LEN + 17, RDT_TOKEN_LEN) == 0));
    CHECK(rdt_wire_token_equal(tok, in + RDT_WIRE_SOCKADDR_LEN + 17) == 0);
    return 0;
}
