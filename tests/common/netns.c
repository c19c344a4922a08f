/* netns.c - network namespaces as test hosts (see netns.h). */
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns"

/* The namespaces the signal handler deletes (one set per process). */
static const rdt_netns_t *active;

/* Run argv (NULL-terminated); stdout to @p out (if not NULL) or else, with stderr, to @p log
 * (or /dev/null). The exit status, or -1. Async-signal-safe with out and log NULL. */
static int run(char *const *argv, const char *log, char *out, size_t len)
{
    int pfd[2] = {-1, -1}, st;
    size_t got = 0;
    pid_t pid;

    if (out && pipe(pfd))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (out) {
            dup2(pfd[1], 1);
            close(pfd[0]);
            close(pfd[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (out) {
        ssize_t n;
        close(pfd[1]);
        while ((n = read(pfd[0], out + got, len - 1 - got)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            got += (size_t)n;
            if (got == len - 1) { /* drain the rest */
                char sink[256];
                while (read(pfd[0], sink, sizeof(sink)) > 0)
                    ;
                break;
            }
        }
        out[got] = '\0';
        close(pfd[0]);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int vip(const rdt_netns_t *nn, const char *log, const char *fmt, va_list ap)
{
    char line[512], *argv[32], *save = NULL, *w;
    int n = 0;

    vsnprintf(line, sizeof(line), fmt, ap);
    argv[n++] = (char *)nn->ip;
    for (w = strtok_r(line, " ", &save); w && n < 31; w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    argv[n] = NULL;
    return run(argv, log, NULL, 0);
}

int rdt_netns_ip(const rdt_netns_t *nn, const char *log, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vip(nn, log, fmt, ap);
    va_end(ap);
    return rc;
}

int rdt_netns_sh(const rdt_netns_t *nn, const char *ns, const char *cmd, char *out, size_t len)
{
    char *argv[] = {(char *)nn->ip, "netns", "exec",      (char *)ns,
                    "/bin/sh",      "-c",    (char *)cmd, NULL};
    return run(argv, NULL, out, len);
}

static const char *ns_of(const rdt_netns_t *nn, int h)
{
    return h < 0 ? nn->sw : nn->host[h];
}

long long rdt_netns_counter(const rdt_netns_t *nn, int h, const char *dev, const char *what)
{
    char cmd[256], out[64];
    long long v;

    snprintf(cmd, sizeof(cmd), "cat /sys/class/net/%s/statistics/%s", dev, what);
    if (rdt_netns_sh(nn, ns_of(nn, h), cmd, out, sizeof(out)) != 0 || sscanf(out, "%lld", &v) != 1)
        return -1;
    return v;
}

static int npids(const char *ip, const char *ns, int kill_them)
{
    char *argv[] = {(char *)ip, "netns", "pids", (char *)ns, NULL}, out[4096], *p, *end;
    int n = 0;

    if (run(argv, NULL, out, sizeof(out)) != 0)
        return -1;
    for (p = out;; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        n++;
        if (kill_them && pid > 1)
            kill((pid_t)pid, SIGKILL);
    }
    return n;
}

int rdt_netns_npids(const rdt_netns_t *nn, int h)
{
    return npids(nn->ip, ns_of(nn, h), 0);
}

static int ns_delete(const char *ip, const char *name)
{
    char path[300];
    int killed;

    snprintf(path, sizeof(path), NETNS_DIR "/%s", name);
    if (access(path, F_OK))
        return 0;
    if ((killed = npids(ip, name, 1)) > 0)
        fprintf(stderr, "killed %d process(es) left in namespace %s\n", killed, name);
    {
        char *argv[] = {(char *)ip, "netns", "del", (char *)name, NULL};
        run(argv, NULL, NULL, 0);
    }
    return access(path, F_OK) ? 0 : -1;
}

int rdt_netns_destroy(rdt_netns_t *nn)
{
    int i, rc = 0;

    for (i = -1; i < nn->nhosts; i++) {
        const char *name = ns_of(nn, i);
        if (name[0] && ns_delete(nn->ip, name)) {
            fprintf(stderr, "cannot delete network namespace %s\n", name);
            rc = -1;
        }
    }
    if (active == nn)
        active = NULL;
    nn->nhosts = 0;
    nn->sw[0] = '\0';
    return rc;
}

static void on_fatal_signal(int sig)
{
    const rdt_netns_t *nn = active;
    int i;

    for (i = -1; nn && i < nn->nhosts; i++) {
        char *argv[] = {(char *)nn->ip, "netns", "del", (char *)ns_of(nn, i), NULL};
        if (argv[3][0])
            run(argv, NULL, NULL, 0);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Namespaces PREFIX<pid>-* of earlier runs that were SIGKILLed (their pid is gone). */
static void delete_stale(const char *ip, const char *prefix)
{
    DIR *d = opendir(NETNS_DIR);
    struct dirent *e;
    size_t plen = strlen(prefix);

    if (!d)
        return;
    while ((e = readdir(d))) {
        char *end;
        long pid;
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        pid = strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || *end != '-' || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        fprintf(stderr, "deleting namespace %s of an earlier run (pid %ld is gone)\n", e->d_name,
                pid);
        ns_delete(ip, e->d_name);
    }
    closedir(d);
}

static const char *unavailable(rdt_netns_t *nn, char *why, size_t len)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    char probe[64], log[] = "/tmp/rdt-netns-probe-XXXXXX";
    size_t i;
    int fd, bad;

    if (geteuid() != 0)
        return "not running as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)";
    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(nn->ip, sizeof(nn->ip), "%s/ip", dirs[i]);
        if (access(nn->ip, X_OK) == 0)
            break;
    }
    if (i == sizeof(dirs) / sizeof(dirs[0]))
        return "no 'ip' program (Debian package iproute2)";
    if (access("/usr/bin/setsid", X_OK) && access("/bin/setsid", X_OK))
        return "no 'setsid' program (Debian package util-linux)";
    delete_stale(nn->ip, nn->prefix);
    snprintf(probe, sizeof(probe), "%s%d-probe", nn->prefix, (int)getpid());
    if ((fd = mkstemp(log)) < 0)
        return "cannot create a temporary file";
    close(fd);
    bad = rdt_netns_ip(nn, log, "netns add %s", probe) != 0 ||
          rdt_netns_ip(nn, log, "-n %s link add name v0 type veth peer name v1", probe) != 0 ||
          rdt_netns_ip(nn, log, "-n %s link add br0 type bridge", probe) != 0;
    if (bad) {
        FILE *f = fopen(log, "r");
        int off = snprintf(why, len, "'ip netns add' or a veth or bridge in it failed: ");
        if (f && off > 0 && (size_t)off < len) {
            size_t n = fread(why + off, 1, len - (size_t)off - 1, f);
            why[(size_t)off + n] = '\0';
        }
        if (f)
            fclose(f);
    }
    rdt_netns_ip(nn, NULL, "netns del %s", probe);
    unlink(log);
    return bad ? why : NULL;
}

void rdt_netns_require(rdt_netns_t *nn, const char *test, const char *prefix)
{
    static char why[1024];
    const char *no, *req = getenv("RDT_TEST_REQUIRE_NETNS");

    memset(nn, 0, sizeof(*nn));
    snprintf(nn->prefix, sizeof(nn->prefix), "%s", prefix);
    if (!(no = unavailable(nn, why, sizeof(why))))
        return;
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr,
                "%s: FAILED: RDT_TEST_REQUIRE_NETNS=1 but network namespaces cannot be used "
                "here: %s\n",
                test, no);
        exit(1);
    }
    printf("%s: skipped: %s (set RDT_TEST_REQUIRE_NETNS=1 to make this a failure)\n", test, no);
    exit(77);
}

static int write_agent(rdt_netns_t *nn)
{
    FILE *f;
    int i;

    snprintf(nn->agent, sizeof(nn->agent), "%s/netns-agent", nn->dir);
    if (!(f = fopen(nn->agent, "w")))
        return -1;
    fprintf(f, "#!/bin/sh\n"
               "# rsh agent: AGENT HOST COMMAND runs COMMAND in HOST's network namespace, through\n"
               "# a shell in a session of its own, as sshd would. RDT_HOSTNAME=HOST: the\n"
               "# namespaces share this machine's hostname; each is a host of its own here.\n"
               "host=$1; shift\n"
               "case $host in\n");
    for (i = 0; i < nn->nhosts; i++)
        fprintf(f, "  %s) ns=%s ;;\n", nn->addr[i], nn->host[i]);
    fprintf(f,
            "  *) echo \"netns-agent: no namespace for host '$host'\" >&2; exit 255 ;;\n"
            "esac\n"
            "exec '%s' netns exec \"$ns\" env RDT_HOSTNAME=\"$host\" setsid -w /bin/sh -c \"$*\"\n",
            nn->ip);
    if (fclose(f))
        return -1;
    return chmod(nn->agent, 0755);
}

int rdt_netns_create(rdt_netns_t *nn, int nhosts, const char *dir)
{
    char log[300];
    int i, rc = 0;

    if (nhosts < 1 || nhosts > RDT_NETNS_MAX_HOSTS)
        return -1;
    snprintf(nn->dir, sizeof(nn->dir), "%s", dir);
    snprintf(log, sizeof(log), "%s/ip.log", dir);
    nn->nhosts = nhosts;
    snprintf(nn->sw, sizeof(nn->sw), "%s%d-sw", nn->prefix, (int)getpid());
    for (i = 0; i < nhosts; i++) {
        snprintf(nn->host[i], sizeof(nn->host[i]), "%s%d-h%d", nn->prefix, (int)getpid(), i);
        snprintf(nn->addr[i], sizeof(nn->addr[i]), "198.51.100.%d", 11 + i);
    }
    active = nn;
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    rc |= rdt_netns_ip(nn, log, "netns add %s", nn->sw);
    rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link add br0 type bridge", nn->sw);
    rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link set br0 up", nn->sw);
    for (i = 0; i < nhosts && rc == 0; i++) {
        const char *h = nn->host[i], *sw = nn->sw;
        rc |= rdt_netns_ip(nn, log, "netns add %s", h);
        rc = rc ? rc
                : rdt_netns_ip(nn, log,
                               "link add name eth0 netns %s type veth peer name p-h%d netns %s", h,
                               i, sw);
        rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link set p-h%d master br0", sw, i);
        rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link set p-h%d up", sw, i);
        rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link set lo up", h);
        rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s addr add %s/24 dev eth0", h, nn->addr[i]);
        rc = rc ? rc : rdt_netns_ip(nn, log, "-n %s link set eth0 up", h);
    }
    rc = rc ? rc : write_agent(nn);
    if (rc) {
        char text[4096];
        FILE *f = fopen(log, "r");
        fprintf(stderr, "setting up the network namespaces failed; ip said:\n");
        if (f) {
            size_t n = fread(text, 1, sizeof(text) - 1, f);
            text[n] = '\0';
            fprintf(stderr, "%s", text);
            fclose(f);
        }
        rdt_netns_destroy(nn);
        return -1;
    }
    return 0;
}
