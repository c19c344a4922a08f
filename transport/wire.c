/* wire.c - see wire.h. */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

void rdt_wire_put_u32(unsigned char *b, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

void rdt_wire_put_u64(unsigned char *b, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

uint32_t rdt_wire_get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    int i;
    for (i = 3; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

uint64_t rdt_wire_get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

uint32_t rdt_wire_hdr_check(uint64_t tag, uint64_t len, uint32_t magic)
{
    uint64_t h = (tag * 0x9e3779b97f4a7c15ULL) ^ (len * 0xc2b2ae3d27d4eb4fULL) ^ magic;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

int rdt_wire_token_equal(const unsigned char *a, const unsigned char *b)
{
    volatile unsigned char diff = 0;
    size_t i;
    for (i = 0; i < RDT_TOKEN_LEN; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

void rdt_wire_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n)
{
    char host[72], serv[8]; /* numeric: an IPv6 address with scope, a port */

    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(buf, n, "(unknown address)");
    else if (sa->sa_family == AF_INET6)
        snprintf(buf, n, "[%s]:%s", host, serv);
    else
        snprintf(buf, n, "%s:%s", host, serv);
}

size_t rdt_wire_sockaddr_pack(const struct sockaddr *sa, unsigned char *a)
{
    memset(a, 0, RDT_ADDR_MAX);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        a[0] = 4;
        memcpy(a + 2, &in->sin_port, 2);
        memcpy(a + 4, &in->sin_addr, 4);
        return 8;
    }
    {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uint32_t scope = in6->sin6_scope_id;
        a[0] = 6;
        memcpy(a + 2, &in6->sin6_port, 2);
        memcpy(a + 4, &in6->sin6_addr, 16);
        a[20] = (unsigned char)(scope >> 24);
        a[21] = (unsigned char)(scope >> 16);
        a[22] = (unsigned char)(scope >> 8);
        a[23] = (unsigned char)scope;
        return RDT_WIRE_SOCKADDR_LEN;
    }
}

int rdt_wire_sockaddr_unpack(const unsigned char *a, struct sockaddr_storage *ss,
                             socklen_t *len_p)
{
    memset(ss, 0, sizeof(*ss));
    if (a[0] == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_port, a + 2, 2);
        memcpy(&in->sin_addr, a + 4, 4);
        *len_p = sizeof(*in);
        return in->sin_port ? 0 : -1;
    }
    if (a[0] == 6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_port, a + 2, 2);
        memcpy(&in6->sin6_addr, a + 4, 16);
        in6->sin6_scope_id = ((uint32_t)a[20] << 24) | ((uint32_t)a[21] << 16) |
                             ((uint32_t)a[22] << 8) | a[23];
        *len_p = sizeof(*in6);
        return in6->sin6_port ? 0 : -1;
    }
    return -1;
}

_Static_assert(RDT_WIRE_TOKEN_LEN == RDT_TOKEN_LEN, "the hello carries the job token");

void rdt_wire_hello_fill(rdt_wire_hello_t *h, uint32_t magic, uint32_t version,
                         const unsigned char *token, uint64_t comm_id, int rank, int nranks)
{
    h->magic = magic;
    h->version = version;
    memcpy(h->token, token, RDT_TOKEN_LEN);
    h->comm_id = comm_id;
    h->rank = (uint32_t)rank;
    h->nranks = (uint32_t)nranks;
}

void rdt_wire_hello_pack(const rdt_wire_hello_t *h, unsigned char *b)
{
    rdt_wire_put_u32(b, h->magic);
    rdt_wire_put_u32(b + 4, h->version);
    memcpy(b + 8, h->token, RDT_TOKEN_LEN);
    rdt_wire_put_u64(b + 24, h->comm_id);
    rdt_wire_put_u32(b + 32, h->rank);
    rdt_wire_put_u32(b + 36, h->nranks);
}

void rdt_wire_hello_unpack(const unsigned char *b, rdt_wire_hello_t *h)
{
    h->magic = rdt_wire_get_u32(b);
    h->version = rdt_wire_get_u32(b + 4);
    memcpy(h->token, b + 8, RDT_TOKEN_LEN);
    h->comm_id = rdt_wire_get_u64(b + 24);
    h->rank = rdt_wire_get_u32(b + 32);
    h->nranks = rdt_wire_get_u32(b + 36);
}

int rdt_wire_hello_check(const rdt_wire_hello_t *h, const char *kind, uint32_t magic,
                         uint32_t version, const unsigned char *token, uint64_t comm_id,
                         int nranks, char *why, size_t n)
{
    if (h->magic != magic) {
        snprintf(why, n, "not an rdmatrain %s handshake (magic 0x%08" PRIx32 ")", kind, h->magic);
        return -1;
    }
    if (h->version != version) {
        snprintf(why, n, "protocol version %" PRIu32 ", this rank speaks %" PRIu32, h->version,
                 version);
        return -1;
    }
    if (!rdt_wire_token_equal(h->token, token)) {
        snprintf(why, n, "wrong job token");
        return -1;
    }
    if (h->comm_id != comm_id) {
        snprintf(why, n, "communicator 0x%" PRIx64 ", this one is 0x%" PRIx64, h->comm_id,
                 comm_id);
        return -1;
    }
    if (h->nranks != (uint32_t)nranks) {
        snprintf(why, n, "a communicator of %" PRIu32 " ranks, this one has %d", h->nranks,
                 nranks);
        return -1;
    }
    return 0;
}

void rdt_wire_eventfd_kick(int fd)
{
    uint64_t one = 1;
    ssize_t n;

    do
        n = write(fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
}

int rdt_wire_numeric_addr(const char *ip, struct addrinfo **ai_p)
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    *ai_p = NULL;
    rc = getaddrinfo(ip, "0", &hints, ai_p);
    if (rc == 0 && !*ai_p)
        rc = EAI_NONAME;
    return rc;
}
