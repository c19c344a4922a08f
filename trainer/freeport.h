/* freeport.h - a free TCP port for a rendezvous, chosen so that it stays free. */
#ifndef RDT_FREEPORT_H
#define RDT_FREEPORT_H

/*
 * A port that bind() accepted just now on 127.0.0.1 (@p any = 0) or on every address (@p any = 1),
 * closed again for the caller's rank 0 (or server) to bind. Taken at random below the kernel's
 * ephemeral range (net.ipv4.ip_local_port_range): a port from bind(0) is ephemeral, so between
 * the close and the real bind any outgoing connection on the machine could take it (seen with
 * two test suites at once, and CI lost a run to it). Below that range only another listener can.
 * Falls back to bind(0) when the range leaves too little room below it. -1 if nothing binds.
 */
int rdt_free_port(int any);

#endif
