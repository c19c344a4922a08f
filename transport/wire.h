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

/* The reverse; -1 for an unknown family or port 0. */
int rdt_wire_sockaddr_unpack(const unsigned char *a, struct sockaddr_storage *ss,
                             socklen_t *len_p);

/* Add one to the eventfd @p fd, so that a thread waiting on it wakes (the transports' wakeup()).
 * Thread safe; EAGAIN means the counter is saturated, a wakeup is pending anyway. */
void rdt_wire_eventfd_kick(int fd);

#endif /* RDT_WIRE_H */
