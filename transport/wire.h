/*
 * wire.h - byte-level helpers shared by the transports: little-endian packing, the message header
 * check, constant-time token comparison, and the packed socket address (the first 24 bytes of an
 * opaque transport address: [0] family 4 or 6, [2..3] port (network order), [4..] IPv4 (4) or
 * IPv6 (16) address, IPv6 only: [20..23] scope id, big-endian).
 */
#ifndef RDT_WIRE_H
#define RDT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RDT_WIRE_SOCKADDR_LEN 24

void rdt_wire_put_u32(unsigned char *b, uint32_t v);
void rdt_wire_put_u64(unsigned char *b, uint64_t v);
uint32_t rdt_wire_get_u32(const unsigned char *b);
uint64_t rdt_wire_get_u64(const unsigned char *b);

/* Check word of a message header, so framing errors are caught before a length is trusted. */
uint32_t rdt_wire_hdr_check(uint64_t tag, uint64_t len, uint32_t magic);

/* 1 if the two RDT_TOKEN_LEN-byte tokens are equal; time independent of where they differ. */
int rdt_wire_token_equal(const unsigned char *a, const unsigned char *b);

/* "1.2.3.4:5" or "[::1]:5", or "(unknown address)". */
void rdt_wire_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);

/* Pack an AF_INET/AF_INET6 address into a[0..23] (zeroing RDT_ADDR_MAX bytes first); returns the
 * bytes used (8 or 24). */
size_t rdt_wire_sockaddr_pack(const struct sockaddr *sa, unsigned char *a);

/* Resolve @p ip, a numeric IPv4 or IPv6 address, for a listening socket on a port the kernel
 * picks (getaddrinfo with AI_NUMERICHOST): getaddrinfo's code (0 with *ai_p to freeaddrinfo;
 * an EAI_* code, or EAI_NONAME for no result, to gai_strerror). */
struct addrinfo;
int rdt_wire_numeric_addr(const char *ip, struct addrinfo **ai_p);

/* The reverse; -1 for an unknown family or port 0. */
int rdt_wire_sockaddr_unpack(const unsigned char *a, struct sockaddr_storage *ss,
                             socklen_t *len_p);

/*
 * The hello that opens a TCP or verbs connection (the transports' handshakes start with it):
 *
 *     0        4        8                    24         32       36        40
 *     | magic  | version| token (16)         | comm_id  | rank   | nranks  |
 */
#define RDT_WIRE_HELLO_LEN 40
#define RDT_WIRE_TOKEN_LEN 16 /* RDT_TOKEN_LEN (transport.h) */

typedef struct rdt_wire_hello {
    uint32_t magic, version;
    unsigned char token[RDT_WIRE_TOKEN_LEN];
    uint64_t comm_id;
    uint32_t rank, nranks;
} rdt_wire_hello_t;

/* This rank's hello. */
void rdt_wire_hello_fill(rdt_wire_hello_t *h, uint32_t magic, uint32_t version,
                         const unsigned char *token, uint64_t comm_id, int rank, int nranks);
/* Encode into b[0..RDT_WIRE_HELLO_LEN-1]; every byte is one of its fields. */
void rdt_wire_hello_pack(const rdt_wire_hello_t *h, unsigned char *b);
/* Decode b[0..RDT_WIRE_HELLO_LEN-1], whatever it holds (the reverse of the pack). */
void rdt_wire_hello_unpack(const unsigned char *b, rdt_wire_hello_t *h);
/* 0 if @p h is a @p kind ("tcp", "verbs") hello of this protocol (@p magic, @p version), job
 * (@p token) and communicator (@p comm_id, @p nranks); else -1 and one sentence into @p why
 * (@p n bytes; may be 0). Which rank may say hello is the caller's to judge. */
int rdt_wire_hello_check(const rdt_wire_hello_t *h, const char *kind, uint32_t magic,
                         uint32_t version, const unsigned char *token, uint64_t comm_id,
                         int nranks, char *why, size_t n);

/* Add one to the eventfd @p fd, so that a thread waiting on it wakes (the transports' wakeup()).
 * Thread safe; EAGAIN means the counter is saturated, a wakeup is pending anyway. */
void rdt_wire_eventfd_kick(int fd);

#endif /* RDT_WIRE_H */
