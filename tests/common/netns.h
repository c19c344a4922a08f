/*
 * netns.h - network namespaces as test "hosts" on one machine (for the tests of the
 * `multihost` kind; test_hier_netns.c uses it).
 *
 * rdt_netns_create() builds, with `ip`, H host namespaces and one switch namespace:
 *
 *     ns PREFIX<pid>-h0: eth0 198.51.100.11/24 --+
 *     ns PREFIX<pid>-h1: eth0 198.51.100.12/24 --+-- veth p-hI --> bridge br0 in ns PREFIX<pid>-sw
 *     ...
 *
 * and writes an --rsh agent for the launcher: `agent HOST COMMAND` runs COMMAND in HOST's
 * namespace (HOST is its address) through `ip netns exec`, in a session of its own, with
 * RDT_HOSTNAME=HOST so that each namespace is its own host for the engine (they share this
 * machine's hostname otherwise). Nothing is added to the root namespace; traffic stays inside
 * the namespaces made here. Namespaces are deleted by rdt_netns_destroy(), on SIGINT, SIGTERM
 * and SIGHUP, and, when a run was SIGKILLed, by the next run with the same prefix (those whose
 * pid is gone).
 */
#ifndef RDT_TEST_NETNS_H
#define RDT_TEST_NETNS_H

#include <stddef.h>

#define RDT_NETNS_MAX_HOSTS 8

typedef struct rdt_netns {
    char prefix[16];
    char ip[256];  /* path of the ip program */
    char dir[256]; /* the caller's scratch directory */
    char sw[64];   /* the bridge's namespace */
    int nhosts;
    char host[RDT_NETNS_MAX_HOSTS][64]; /* namespace names */
    char addr[RDT_NETNS_MAX_HOSTS][32]; /* 198.51.100.(11 + i) */
    char agent[320];                    /* the --rsh agent: DIR/netns-agent */
} rdt_netns_t;

/*
 * The skip rule of every network-namespace test: return when this process can make namespaces
 * (root, `ip`, `setsid`, a veth and a bridge in a probe namespace), after deleting stale
 * namespaces of @p prefix; else exit 77 (ctest: skipped) or, with RDT_TEST_REQUIRE_NETNS=1,
 * exit 1 with the reason. @p test names the caller in the message.
 */
void rdt_netns_require(rdt_netns_t *nn, const char *test, const char *prefix);

/* Create @p nhosts host namespaces and the switch, and the agent in @p dir. 0, or -1 with ip's
 * messages on stderr (what was created is deleted again). */
int rdt_netns_create(rdt_netns_t *nn, int nhosts, const char *dir);

/* Kill what is left in the namespaces and delete them. 0, or -1 if one could not be deleted. */
int rdt_netns_destroy(rdt_netns_t *nn);

/* `ip ARGS` with printf-built arguments separated by blanks; output to @p log (or /dev/null).
 * The exit status, or -1. */
int rdt_netns_ip(const rdt_netns_t *nn, const char *log, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run `sh -c CMD` inside namespace @p ns (a full name); its stdout in @p out (NUL-terminated,
 * truncated to @p len). The exit status, or -1. */
int rdt_netns_sh(const rdt_netns_t *nn, const char *ns, const char *cmd, char *out, size_t len);

/* /sys/class/net/DEV/statistics/WHAT in host @p h's namespace (-1: the switch's), or -1. */
long long rdt_netns_counter(const rdt_netns_t *nn, int h, const char *dev, const char *what);

/* Number of processes in host @p h's namespace (-1: the switch's), or -1 on error. */
int rdt_netns_npids(const rdt_netns_t *nn, int h);

#endif
