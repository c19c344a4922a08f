/*
 * launch.c - see launch.h. One thread, one poll loop over: a signalfd (SIGCHLD, SIGINT, SIGTERM,
 * SIGHUP, all blocked so they arrive only there), and the stdout/stderr pipes of every rank.
 * Deadlines (--timeout, the grace period before SIGKILL, the final drain) are poll timeouts.
 *
 *   RUNNING --(rank fails | --timeout | signal)--> STOPPING --(grace | 2nd signal)--> KILLING
 *      |                                               |                                 |
 *      +----------------------- every rank reaped -----+---------------------------------+
 *                                      |
 *                  sweep adopted orphans, drain the pipes, release the watchdog, exit
 */
#include "launch.h"
#include "freeport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

extern char **environ;

#define LINE_CAP   65536 /* a longer line is cut in pieces, each with its prefix */
#define MAX_NAMED  8     /* ranks named in one message */
#define DRAIN_MS   2000  /* after the last rank: how long its pipes may stay open */
#define ORPHAN_MAX 16    /* rounds of the final orphan sweep */

/*
 * The remote wrapper, run by /bin/sh on the remote host as
 *   sh -c SCRIPT rdmatrain DIR env VAR=VAL... PROGRAM ARGS...
 * Its standard input (ssh's) carries the job token as a first line (so the token is in no
 * command line that `ps` shows), then names of signals to forward ("INT", "TERM").
 * The program replaces the shell (exec), so it keeps the pid sshd started, which leads the
 * session's process group, and its SIGINT is not ignored (as it would be in a background job).
 * A watcher, forked twice so that it is not the program's child (a `wait` in the program must
 * not wait for it) but still in its process group, reads the signal names and signals the
 * group ("KILL" included, which ends the watcher too); when ssh's input closes (the launcher
 * died, or killed ssh) it sends SIGTERM, and SIGKILL to what is left of the group once the
 * program has exited or 3 s have passed.
 */
static const char remote_script[] =
    "IFS= read -r RDT_TOKEN || exit 126; export RDT_TOKEN; "
    "cd \"$1\" || exit 126; shift; exec 3<&0; "
    "k() { kill -s $1 -- -$$ 2>/dev/null || kill -s $1 $$ 2>/dev/null; }; "
    "( { trap '' TERM HUP; while read -r s; do k \"$s\"; done; "
    "if kill -0 $$ 2>/dev/null; then k TERM; i=0; while [ $i -lt 30 ] && kill -0 $$ 2>/dev/null; "
    "do sleep 0.1 2>/dev/null || { sleep 1; i=$((i+9)); }; i=$((i+1)); done; fi; k KILL; } "
    "0<&3 >/dev/null 2>&1 & ); "
    "exec \"$@\" 0</dev/null 3<&-";

typedef struct stream {
    int fd;    /* read end of the pipe, -1 once closed */
    int out;   /* where its lines go: 1 or 2 */
    char *buf; /* the partial line, LINE_CAP bytes once needed */
    size_t len;
} stream_t;

typedef struct rank {
    pid_t pid; /* the rank's process (or its ssh), leader of its group; 0 once reaped */
    int remote;
    int ctl_fd; /* remote: ssh's standard input (token, then signal names); else -1 */
    stream_t so, se;
    char prefix[RDT_HOST_NAME_MAX + 24];
    size_t prefix_len;
    int reaped; /* exited in this reap() pass, not reported yet */
    int status; /* its wait status */
    int stopped; /* local: the signal that stopped it (SIGSTOP, SIGTSTP...), 0 when running */
} rank_t;

typedef enum { RUNNING, STOPPING, KILLING } phase_t;

typedef struct job {
    const rdt_launch_t *opt;
    rank_t *ranks;
    int np, alive;
    phase_t phase;
    int status;                /* the launcher's exit status; -1 while nothing went wrong */
    int64_t t_timeout, t_kill; /* absolute ms; 0 = not armed */
    int sfd;
    pid_t self, watchdog;
    int watchdog_fd;
    int out_dead[3]; /* our stdout / stderr is gone (EPIPE): drop what would go there */
    char root[RDT_HOST_NAME_MAX + 16];
    char token[33];
    char *prog; /* the program, resolved on this host (when it runs local ranks) */
    char cwd[PATH_MAX];
    char **rsh;
    int nrsh;
} job_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One "rdmatrain: ..." line on stderr, in one write. */
static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n = snprintf(line, sizeof(line), "rdmatrain: ");

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(2, line, (size_t)n) < 0) {
        /* nowhere left to complain */
    }
}

static const char *sig_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

static const char *host_label(const job_t *j, int r)
{
    const char *name = j->opt->hosts->hosts[j->opt->place[r].host].name;
    const char *at = strchr(name, '@');
    return at ? at + 1 : name;
}

/* ------------------------------------------------------------------------------------------- */
/* Preparation: nothing is started until all of this succeeded                                  */
/* ------------------------------------------------------------------------------------------- */

/* 32 hex characters from /dev/urandom: the job token. No fallback: a guessable token is worse
 * than no job. */
static int random_token(char *hex)
{
    unsigned char b[16];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC), i;

    if (fd < 0) {
        say("cannot open /dev/urandom for the job token: %s", strerror(errno));
        return -1;
    }
    while (got < sizeof(b)) {
        ssize_t n = read(fd, b + got, sizeof(b) - got);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            say("cannot read /dev/urandom for the job token: %s",
                n < 0 ? strerror(errno) : "end of file");
            close(fd);
            return -1;
        }
        if (n > 0)
            got += (size_t)n;
    }
    close(fd);
    for (i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static int is_exec_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The program as execvp would find it, resolved once here so a typo stops the job before any
 * rank starts. */
static char *resolve_program(const char *name)
{
    const char *path = getenv("PATH"), *p;
    char *buf;
    size_t nlen = strlen(name);

    if (strchr(name, '/')) {
        if (is_exec_file(name))
            return strdup(name);
        say("cannot run '%s': %s", name,
            access(name, F_OK) ? strerror(errno) : "not an executable file");
        return NULL;
    }
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    buf = malloc(strlen(path) + nlen + 2);
    if (!buf)
        return NULL;
    for (p = path;; p++) {
        const char *e = strchr(p, ':');
        size_t dlen = e ? (size_t)(e - p) : strlen(p);
        if (dlen == 0)
            snprintf(buf, nlen + 1, "%s", name); /* empty entry: the current directory */
        else
            snprintf(buf, strlen(path) + nlen + 2, "%.*s/%s", (int)dlen, p, name);
        if (is_exec_file(buf))
            return buf;
        if (!e)
            break;
        p = e;
    }
    free(buf);
    say("cannot run '%s': not found in PATH (give a path, such as ./%s, for a program in this "
        "directory)",
        name, name);
    return NULL;
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    size_t i, n = strlen(dir);

    if (n == 0 || n >= sizeof(path)) {
        say("--output-dir: bad directory name '%s'", dir);
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0777) && errno != EEXIST) {
            say("--output-dir: cannot create '%s': %s", path, strerror(errno));
            return -1;
        }
        path[i] = i < n ? '/' : '\0';
    }
    if (!is_exec_file(dir) && access(dir, W_OK | X_OK)) {
        say("--output-dir: cannot write into '%s': %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Ranks of the job placed on the host of rank @p r (RDT_LOCAL_SIZE). */
static int local_size(const rdt_launch_t *o, int np, int r)
{
    int i, n = 0;
    for (i = 0; i < np; i++)
        n += o->place[i].host == o->place[r].host;
    return n;
}

/* The variables the launcher owns: -x cannot set them. */
static int is_job_var(const char *name, size_t len)
{
    static const char *const vars[] = {"RDT_RANK",       "RDT_SIZE", "RDT_LOCAL_RANK",
                                       "RDT_LOCAL_SIZE", "RDT_ROOT", "RDT_TOKEN"};
    size_t i;
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strlen(vars[i]) == len && memcmp(vars[i], name, len) == 0)
            return 1;
    return 0;
}

/* -x VAR=VAL sets VAR here (local ranks inherit it; remote ones get it on their command line);
 * -x VAR passes this environment's value. */
static int apply_xvars(const rdt_launch_t *o)
{
    int i;

    for (i = 0; i < o->nx; i++) {
        const char *x = o->xvars[i], *eq = strchr(x, '=');
        size_t len = eq ? (size_t)(eq - x) : strlen(x), k;
        int ok = len > 0 && !(x[0] >= '0' && x[0] <= '9');
        char name[256];

        for (k = 0; k < len && ok; k++)
            ok = (x[k] >= 'A' && x[k] <= 'Z') || (x[k] >= 'a' && x[k] <= 'z') ||
                 (x[k] >= '0' && x[k] <= '9') || x[k] == '_';
        if (!ok || len >= sizeof(name)) {
            say("-x '%s': expected VAR=VALUE or VAR, VAR made of letters, digits and '_'", x);
            return -1;
        }
        if (is_job_var(x, len)) {
            say("-x '%s': %.*s is set by the launcher for each rank", x, (int)len, x);
            return -1;
        }
        memcpy(name, x, len);
        name[len] = '\0';
        if (eq) {
            if (setenv(name, eq + 1, 1)) {
                say("-x '%s': %s", x, strerror(errno));
                return -1;
            }
        } else if (!getenv(name)) {
            say("-x %s: %s is not set in this environment (write -x %s=VALUE)", name, name, name);
            return -1;
        }
    }
    return 0;
}

/* Split the remote agent's command on blanks, as Open MPI's plm_rsh_agent. */
static int split_rsh(job_t *j)
{
    const char *src = j->opt->rsh;
    char *copy, *save = NULL, *w;

    if (!src || !*src)
        src = "ssh -o BatchMode=yes";
    copy = strdup(src);
    j->rsh = calloc(strlen(src) / 2 + 2, sizeof(char *));
    if (!copy || !j->rsh) {
        free(copy);
        return -1;
    }
    for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
        j->rsh[j->nrsh++] = w;
    if (j->nrsh == 0) {
        say("--rsh '%s': no command", src);
        free(copy);
        return -1;
    }
    return 0;
}

/*
 * This machine's address on the interface that routes to @p host (a name or an address, user@
 * removed): the source address the kernel picks for a UDP socket connect()ed there. connect()
 * on a datagram socket only chooses the route; nothing is sent. IPv6 comes out in brackets;
 * link-local IPv6 is skipped (it would need a scope). Returns 0, or -1 if @p host does not
 * resolve or no address of it has a route.
 */
static int route_source(const char *host, char *out, size_t outlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    int rc = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, "9", &hints, &res) != 0)
        return -1;
    for (ai = res; ai && rc; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN];
        int fd;

        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) == 0) {
            if (ss.ss_family == AF_INET6 &&
                IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
                close(fd);
                continue;
            }
            if ((size_t)snprintf(out, outlen, ss.ss_family == AF_INET6 ? "[%s]" : "%s", ip) <
                outlen)
                rc = 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/*
 * RDT_ROOT, as launch.h says: --root, else the first host as the others can reach it. Seen
 * from remote hosts this machine is its address on the route to the first remote host (its
 * name only as a last resort: it often resolves to 127.0.1.1), not 127.0.0.1. For a remote
 * first host the port is only known free on this machine (documented).
 */
static int choose_root(job_t *j, int any_remote)
{
    const rdt_launch_t *o = j->opt;
    const rdt_host_t *first = &o->hosts->hosts[o->place[0].host];
    char routed[INET6_ADDRSTRLEN + 2];
    const char *host = o->root_host;
    int port = o->root_port, r;

    if (!port && (port = rdt_free_port(any_remote)) < 0) {
        say("cannot find a free TCP port for the rendezvous: %s", strerror(errno));
        return -1;
    }
    if (host) {
        /* as given */
    } else if (!first->local) {
        host = host_label(j, 0);
    } else if (!any_remote) {
        host = "127.0.0.1";
    } else {
        host = o->self_name;
        for (r = 0; r < o->np && !j->ranks[r].remote; r++)
            ;
        if (r < o->np && route_source(host_label(j, r), routed, sizeof(routed)) == 0)
            host = routed;
    }
    if (!host || !*host) {
        say("cannot name this machine for the remote ranks' rendezvous (gethostname failed); "
            "give it with --root HOST");
        return -1;
    }
    snprintf(j->root, sizeof(j->root), "%s:%d", host, port);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The watchdog: a process of its own session that outlives a killed launcher                   */
/* ------------------------------------------------------------------------------------------- */

/*
 * It reads the process group of each rank from a pipe. A 0 means "the launcher cleaned up;
 * exit". End of file without it means the launcher died (SIGKILL, crash): kill every group.
 */
static void watchdog_main(int fd)
{
    pid_t *groups = NULL;
    size_t n = 0, cap = 0, i;
    int32_t v;
    int nul = open("/dev/null", O_RDWR);

    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
    }
    setsid(); /* not in the launcher's group: a kill of that group spares the watchdog */
    for (;;) {
        ssize_t got = read(fd, &v, sizeof(v));
        if (got < 0 && errno == EINTR)
            continue;
        if (got == (ssize_t)sizeof(v) && v == 0)
            _exit(0);
        if (got != (ssize_t)sizeof(v))
            break;
        if (n == cap) {
            pid_t *g = realloc(groups, (cap = cap ? 2 * cap : 64) * sizeof(*g));
            if (!g)
                break;
            groups = g;
        }
        groups[n++] = v;
    }
    for (i = 0; i < n; i++)
        kill(-groups[i], SIGKILL);
    _exit(0);
}

static int watchdog_start(job_t *j)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC)) {
        say("pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[1]);
        watchdog_main(p[0]);
    }
    close(p[0]);
    j->watchdog = pid;
    j->watchdog_fd = p[1];
    return 0;
}

static void watchdog_tell(job_t *j, int32_t v)
{
    if (j->watchdog_fd >= 0 && write(j->watchdog_fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
        close(j->watchdog_fd); /* gone: nothing to tell any more */
        j->watchdog_fd = -1;
    }
}

static void watchdog_release(job_t *j)
{
    int st;

    watchdog_tell(j, 0);
    if (j->watchdog_fd >= 0)
        close(j->watchdog_fd);
    j->watchdog_fd = -1;
    if (j->watchdog > 0)
        while (waitpid(j->watchdog, &st, 0) < 0 && errno == EINTR)
            ;
    j->watchdog = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Starting ranks                                                                               */
/* ------------------------------------------------------------------------------------------- */

/* Append @p s single-quoted for a POSIX shell: 'it'\''s'. */
static int sh_quote(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t need = *len + 4 * strlen(s) + 4;
    if (need > *cap) {
        char *n = realloc(*buf, need * 2);
        if (!n)
            return -1;
        *buf = n;
        *cap = need * 2;
    }
    (*buf)[(*len)++] = ' ';
    (*buf)[(*len)++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(*buf + *len, "'\\''", 4);
            *len += 4;
        } else {
            (*buf)[(*len)++] = *s;
        }
    }
    (*buf)[(*len)++] = '\'';
    (*buf)[*len] = '\0';
    return 0;
}

static int sh_quote_kv(char **buf, size_t *len, size_t *cap, const char *k, const char *v)
{
    char *kv;
    int rc;
    if (asprintf(&kv, "%s=%s", k, v) < 0)
        return -1;
    rc = sh_quote(buf, len, cap, kv);
    free(kv);
    return rc;
}

/*
 * The command line a remote host runs: the wrapper, the directory, then env with the job's
 * variables, every RDT_* knob of this environment and the -x variables, then the program.
 */
static char *remote_command(const job_t *j, int r)
{
    const rdt_launch_t *o = j->opt;
    char *buf = NULL, num[16];
    size_t len = 0, cap = 0;
    char **e;
    int i, rc = 0;

    rc |= sh_quote(&buf, &len, &cap, "exec");
    rc |= sh_quote(&buf, &len, &cap, "/bin/sh");
    rc |= sh_quote(&buf, &len, &cap, "-c");
    rc |= sh_quote(&buf, &len, &cap, remote_script);
    rc |= sh_quote(&buf, &len, &cap, "rdmatrain");
    rc |= sh_quote(&buf, &len, &cap, j->cwd);
    rc |= sh_quote(&buf, &len, &cap, "env");
    snprintf(num, sizeof(num), "%d", r);
    rc |= sh_quote_kv(&buf, &len, &cap, "RDT_RANK", num);
    snprintf(num, sizeof(num), "%d", j->np);
    rc |= sh_quote_kv(&buf, &len, &cap, "RDT_SIZE", num);
    snprintf(num, sizeof(num), "%d", o->place[r].local_rank);
    rc |= sh_quote_kv(&buf, &len, &cap, "RDT_LOCAL_RANK", num);
    snprintf(num, sizeof(num), "%d", local_size(o, j->np, r));
    rc |= sh_quote_kv(&buf, &len, &cap, "RDT_LOCAL_SIZE", num);
    rc |= sh_quote_kv(&buf, &len, &cap, "RDT_ROOT", j->root);
    for (e = environ; *e && rc == 0; e++) {
        size_t n = strcspn(*e, "=");
        if (strncmp(*e, "RDT_", 4) == 0 && !is_job_var(*e, n) &&
            !(n == 7 && strncmp(*e, "RDT_RSH", 7) == 0))
            rc |= sh_quote(&buf, &len, &cap, *e);
    }
    for (i = 0; i < o->nx && rc == 0; i++) {
        const char *v = o->xvars[i];
        if (strncmp(v, "RDT_", 4) == 0)
            continue; /* passed above with the knobs */
        if (strchr(v, '='))
            rc |= sh_quote(&buf, &len, &cap, v);
        else
            rc |= sh_quote_kv(&buf, &len, &cap, v, getenv(v) ? getenv(v) : "");
    }
    for (i = 0; o->argv[i] && rc == 0; i++)
        rc |= sh_quote(&buf, &len, &cap, o->argv[i]);
    if (rc) {
        free(buf);
        return NULL;
    }
    memmove(buf, buf + 1, len); /* the leading blank */
    return buf;
}

/* In the child: become the rank. Never returns. */
static void __attribute__((noreturn))
child_exec(job_t *j, int r, int in_fd, int out_fd, int err_fd, char *remote_cmd)
{
    const rdt_launch_t *o = j->opt;
    sigset_t none;
    char num[16];

    setpgid(0, 0);
    /* Die with the launcher. If it is already gone, the death signal was missed: leave now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != j->self)
        _exit(1);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);

    if (in_fd < 0)
        in_fd = open("/dev/null", O_RDONLY);
    if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(126);

    if (remote_cmd) {
        char **argv = calloc((size_t)j->nrsh + 3, sizeof(char *));
        int i;
        if (!argv)
            _exit(126);
        for (i = 0; i < j->nrsh; i++)
            argv[i] = j->rsh[i];
        argv[i++] = (char *)o->hosts->hosts[o->place[r].host].name;
        argv[i++] = remote_cmd;
        execvp(argv[0], argv);
        dprintf(2, "rdmatrain: cannot run the remote agent '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    snprintf(num, sizeof(num), "%d", r);
    setenv("RDT_RANK", num, 1);
    snprintf(num, sizeof(num), "%d", j->np);
    setenv("RDT_SIZE", num, 1);
    snprintf(num, sizeof(num), "%d", o->place[r].local_rank);
    setenv("RDT_LOCAL_RANK", num, 1);
    snprintf(num, sizeof(num), "%d", local_size(o, j->np, r));
    setenv("RDT_LOCAL_SIZE", num, 1);
    setenv("RDT_ROOT", j->root, 1);
    setenv("RDT_TOKEN", j->token, 1);
    execv(j->prog, o->argv);
    dprintf(2, "rdmatrain: cannot run '%s': %s\n", j->prog, strerror(errno));
    _exit(127);
}

static int open_output_file(const job_t *j, int r)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/rank.%d.log", j->opt->output_dir, r) >=
        (int)sizeof(path)) {
        say("--output-dir: path too long");
        return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        say("cannot create '%s': %s", path, strerror(errno));
    return fd;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int start_rank(job_t *j, int r)
{
    rank_t *rk = &j->ranks[r];
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, file = -1, rc = -1;
    char *cmd = NULL, line[64];
    pid_t pid;

    if (j->opt->output_dir) {
        if ((file = open_output_file(j, r)) < 0)
            return -1;
        out[1] = file;
        err[1] = file;
    } else if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        say("pipe: %s (raise ulimit -n?)", strerror(errno));
        goto out_close;
    }
    if (rk->remote) {
        if (pipe2(in, O_CLOEXEC)) {
            say("pipe: %s (raise ulimit -n?)", strerror(errno));
            goto out_close;
        }
        if (!(cmd = remote_command(j, r))) {
            say("out of memory");
            goto out_close;
        }
    }
    pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        goto out_close;
    }
    if (pid == 0)
        child_exec(j, r, in[0], out[1], err[1], cmd);

    setpgid(pid, pid); /* also here, so no signal can find the child in our group */
    rk->pid = pid;
    j->alive++;
    watchdog_tell(j, (int32_t)pid);
    rk->so.fd = out[0];
    rk->se.fd = err[0];
    out[0] = err[0] = -1;
    if (rk->so.fd >= 0) {
        fcntl(rk->so.fd, F_SETFL, O_NONBLOCK);
        fcntl(rk->se.fd, F_SETFL, O_NONBLOCK);
    }
    if (rk->remote) {
        rk->ctl_fd = in[1];
        in[1] = -1;
        fcntl(rk->ctl_fd, F_SETFL, O_NONBLOCK);
        snprintf(line, sizeof(line), "%s\n", j->token);
        if (write(rk->ctl_fd, line, strlen(line)) < 0) {
            /* ssh already gone: its exit status will tell */
        }
    }
    rc = 0;
out_close:
    free(cmd);
    if (err[1] == out[1])
        err[1] = -1; /* the same output file */
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&err[0]);
    close_fd(&err[1]);
    close_fd(&in[0]);
    close_fd(&in[1]);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Output: whole lines, each with its rank's prefix                                             */
/* ------------------------------------------------------------------------------------------- */

static void emit(job_t *j, const rank_t *rk, int out, const char *a, size_t alen, const char *b,
                 size_t blen)
{
    struct iovec iov[4];
    int n = 0, k;
    char last = blen ? b[blen - 1] : (alen ? a[alen - 1] : 0);
    int nl = last != '\n' && last != '\r';

    if (j->out_dead[out])
        return;
    iov[n++] = (struct iovec){(void *)rk->prefix, rk->prefix_len};
    if (alen)
        iov[n++] = (struct iovec){(void *)a, alen};
    if (blen)
        iov[n++] = (struct iovec){(void *)b, blen};
    if (nl)
        iov[n++] = (struct iovec){(void *)"\n", 1};
    for (k = 0; k < n;) {
        ssize_t w = writev(out, iov + k, n - k);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                if (errno == EAGAIN)
                    poll(&(struct pollfd){.fd = out, .events = POLLOUT}, 1, 100);
                continue;
            }
            j->out_dead[out] = 1; /* EPIPE and friends: nobody reads us any more */
            return;
        }
        while (k < n && (size_t)w >= iov[k].iov_len)
            w -= (ssize_t)iov[k++].iov_len;
        if (k < n) {
            iov[k].iov_base = (char *)iov[k].iov_base + w;
            iov[k].iov_len -= (size_t)w;
        }
    }
}

static void stream_close(job_t *j, rank_t *rk, stream_t *s)
{
    if (s->len)
        emit(j, rk, s->out, s->buf, s->len, NULL, 0); /* a last line without '\n' */
    s->len = 0;
    free(s->buf);
    s->buf = NULL;
    close_fd(&s->fd);
}

/* The first '\n' or '\r' in p[0..n), or NULL. */
static const char *line_end(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] == '\n' || p[i] == '\r')
            return p + i;
    return NULL;
}

/* Feed @p n bytes: complete lines go out at once, the rest waits in s->buf. A line ends at
 * '\n', or at '\r' (a progress bar redrawing itself: it goes out with its prefix, so the
 * terminal shows "[0] epoch 3/10 [####  ]" overwriting itself). */
static int stream_feed(job_t *j, rank_t *rk, stream_t *s, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = line_end(p, n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;

        if (nl && (s->len == 0 || s->len + take <= LINE_CAP)) {
            emit(j, rk, s->out, s->buf, s->len, p, take);
            s->len = 0;
        } else {
            size_t room;
            if (!s->buf && !(s->buf = malloc(LINE_CAP)))
                return -1;
            room = LINE_CAP - s->len;
            if (take > room)
                take = room;
            memcpy(s->buf + s->len, p, take);
            s->len += take;
            if (s->len == LINE_CAP) { /* too long to wait for its end: cut here */
                emit(j, rk, s->out, s->buf, s->len, NULL, 0);
                s->len = 0;
            }
        }
        p += take;
        n -= take;
    }
    return 0;
}

static void stream_read(job_t *j, rank_t *rk, stream_t *s)
{
    char chunk[16384];
    int i;

    for (i = 0; i < 4; i++) { /* bounded: other ranks get their turn */
        ssize_t n = read(s->fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 || stream_feed(j, rk, s, chunk, (size_t)n)) {
            stream_close(j, rk, s);
            return;
        }
        if ((size_t)n < sizeof(chunk))
            return;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Stopping                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/* "rank 1 on localhost, rank 3 on localhost and 5 more" */
static void name_alive(const job_t *j, char *buf, size_t len)
{
    size_t o = 0;
    int r, named = 0;

    buf[0] = '\0';
    for (r = 0; r < j->np && o < len; r++) {
        if (!j->ranks[r].pid)
            continue;
        if (named == MAX_NAMED) {
            snprintf(buf + o, len - o, " and %d more", j->alive - named);
            return;
        }
        o += (size_t)snprintf(buf + o, len - o, "%srank %d on %s", named ? ", " : "", r,
                              host_label(j, r));
        named++;
    }
}

/* Send @p sig to every live rank: local ones through their process group, remote ones as a
 * line to their wrapper. */
static void signal_all(job_t *j, int sig)
{
    char name[32];
    int r;

    for (r = 0; r < j->np; r++) {
        rank_t *rk = &j->ranks[r];
        if (!rk->pid)
            continue;
        if (rk->remote && rk->ctl_fd >= 0) {
            const char *abbrev = sigabbrev_np(sig);
            int n = snprintf(name, sizeof(name), "%s\n", abbrev ? abbrev : "TERM");
            if (write(rk->ctl_fd, name, (size_t)n) < 0) {
                /* ssh is gone; its exit will be reaped */
            }
        } else {
            kill(-rk->pid, sig);
        }
    }
}

static void stop_all(job_t *j, int sig)
{
    int r;

    j->phase = STOPPING;
    j->t_kill = now_ms() + (int64_t)(j->opt->grace_s * 1000);
    signal_all(j, sig);
    for (r = 0; r < j->np; r++) /* a stopped rank acts on the signal only once continued */
        if (j->ranks[r].pid && j->ranks[r].stopped)
            kill(-j->ranks[r].pid, SIGCONT);
}

/*
 * SIGKILL now for local ranks. A remote rank gets "KILL" through its ssh, whose input is then
 * closed: the remote side kills the program's group and the session ends. Only if ssh has not
 * exited a grace period later is it killed here (a dead network), leaving the remote wrapper to
 * clean up when it notices.
 */
static void kill_all(job_t *j)
{
    int r, remote = 0;

    if (j->phase == KILLING)
        return; /* already sent */
    j->phase = KILLING;
    j->t_kill = 0;
    signal_all(j, SIGKILL);
    for (r = 0; r < j->np; r++) {
        if (j->ranks[r].pid && j->ranks[r].remote && j->ranks[r].ctl_fd >= 0) {
            close_fd(&j->ranks[r].ctl_fd);
            remote = 1;
        }
    }
    if (remote)
        j->t_kill = now_ms() + (int64_t)(j->opt->grace_s * 1000);
}

/* The remote agents that outlived kill_all()'s grace period. */
static void kill_agents(job_t *j)
{
    int r;

    j->t_kill = 0;
    for (r = 0; r < j->np; r++)
        if (j->ranks[r].pid && j->ranks[r].remote)
            kill(-j->ranks[r].pid, SIGKILL);
}

/* "; rank 3 on node2 is stopped (SIGSTOP): ..." when a local rank is stopped while another
 * fails: the others time out waiting for it, and the exit that gets reported is theirs. */
static void stopped_note(const job_t *j, char *buf, size_t len)
{
    char sname[32];
    size_t n = 0;
    int r;

    buf[0] = '\0';
    for (r = 0; r < j->np && n + 1 < len; r++) {
        int w;
        if (!j->ranks[r].pid || !j->ranks[r].stopped)
            continue;
        w = snprintf(buf + n, len - n, "; rank %d on %s is stopped (%s): the others waited for it",
                     r, host_label(j, r), sig_name(j->ranks[r].stopped, sname, sizeof(sname)));
        n = w < 0 ? n : n + (size_t)w >= len ? len - 1 : n + (size_t)w;
    }
}

static void rank_exited(job_t *j, int r, int st)
{
    char sname[32], what[128], note[256];
    int code;

    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    if (j->phase != RUNNING)
        return; /* stopped by us, or after the failure that is already reported */
    if (WIFEXITED(st)) {
        code = WEXITSTATUS(st);
        snprintf(what, sizeof(what), "exited with status %d%s", code,
                 j->ranks[r].remote && code == 255 ? " (the remote agent could not reach the "
                                                     "host, or the program was killed by a signal "
                                                     "or exited 255)"
                                                   : "");
    } else {
        code = 128 + WTERMSIG(st);
        snprintf(what, sizeof(what), "was killed by signal %d (%s)", WTERMSIG(st),
                 sig_name(WTERMSIG(st), sname, sizeof(sname)));
    }
    j->status = code;
    stopped_note(j, note, sizeof(note));
    if (j->alive > 0) {
        say("rank %d on %s %s%s; stopping the other ranks", r, host_label(j, r), what, note);
        stop_all(j, SIGTERM);
    } else {
        say("rank %d on %s %s%s", r, host_label(j, r), what, note);
        j->phase = STOPPING;
    }
}

/* Local ranks stopped or continued by a signal (kill -STOP, a debugger, ^Z): said when it
 * happens, since the job then hangs until the others' timeout; remembered for the failure
 * report. These events are consumed here, exits are left to reap(). */
static void watch_stops(job_t *j)
{
    for (;;) {
        char sname[32];
        siginfo_t si;
        int r;

        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WSTOPPED | WCONTINUED | WNOHANG) < 0 || si.si_pid == 0)
            break;
        for (r = 0; r < j->np && j->ranks[r].pid != si.si_pid; r++)
            ;
        if (r == j->np || j->ranks[r].remote)
            continue;
        if (si.si_code == CLD_STOPPED || si.si_code == CLD_TRAPPED) {
            j->ranks[r].stopped = si.si_status;
            if (j->phase == RUNNING)
                say("rank %d on %s was stopped by %s: the other ranks will wait for it until "
                    "their timeout (RDT_TIMEOUT)", r, host_label(j, r),
                    sig_name(si.si_status, sname, sizeof(sname)));
        } else if (si.si_code == CLD_CONTINUED && j->ranks[r].stopped) {
            j->ranks[r].stopped = 0;
            if (j->phase == RUNNING)
                say("rank %d on %s continues", r, host_label(j, r));
        }
    }
}

/* Collect every child that exited. A rank is looked at before it is reaped (WNOWAIT): while
 * its zombie holds the pid, the pid is a process group that cannot be reused, so what is left
 * of the group can be killed without risk of hitting a stranger. The failures of one pass are
 * reported signal deaths first: when a rank is killed, the others fail right after it naming
 * it, and the launcher must name the killed rank, not the first survivor waitid() returned. */
static void reap(job_t *j)
{
    int r, signalled;

    watch_stops(j);
    for (;;) {
        siginfo_t si;
        pid_t pid;
        int st = 0;

        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            break;
        pid = si.si_pid;
        for (r = 0; r < j->np && j->ranks[r].pid != pid; r++)
            ;
        if (r < j->np)
            kill(-pid, SIGKILL); /* stragglers of the rank's group */
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (pid == j->watchdog) {
            j->watchdog = 0;
            close_fd(&j->watchdog_fd);
            continue;
        }
        if (r == j->np)
            continue; /* an orphan we adopted as subreaper */
        j->ranks[r].pid = 0;
        close_fd(&j->ranks[r].ctl_fd);
        j->alive--;
        j->ranks[r].reaped = 1;
        j->ranks[r].status = st;
    }
    for (signalled = 1; signalled >= 0; signalled--)
        for (r = 0; r < j->np; r++)
            if (j->ranks[r].reaped && (WIFSIGNALED(j->ranks[r].status) != 0) == signalled) {
                j->ranks[r].reaped = 0;
                rank_exited(j, r, j->ranks[r].status);
            }
}

/* Kill and reap the children we adopted (processes that left a rank's group and whose parent
 * died), except the watchdog. */
static void sweep_orphans(job_t *j)
{
    char path[64], buf[4096];
    int round;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)j->self, (int)j->self);
    for (round = 0; round < ORPHAN_MAX; round++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;
        ssize_t n;
        char *p, *end;

        if (fd < 0)
            return;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            return;
        buf[n] = '\0';
        for (p = buf;; p = end) {
            long pid = strtol(p, &end, 10);
            int st;
            if (end == p)
                break;
            if (pid <= 0 || pid == j->watchdog)
                continue;
            found = 1;
            kill((pid_t)pid, SIGKILL);
            while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR)
                ;
        }
        if (!found)
            return;
    }
}

static void on_signal(job_t *j, int sig)
{
    char sname[32], who[512];

    sig_name(sig, sname, sizeof(sname));
    if (j->alive == 0)
        return;
    name_alive(j, who, sizeof(who));
    if (j->phase == RUNNING) {
        say("got %s; forwarding it to %d rank%s, SIGKILL in %g s (%s)", sname, j->alive,
            j->alive == 1 ? "" : "s", j->opt->grace_s, who);
        j->status = 128 + sig;
        stop_all(j, sig);
    } else if (j->phase == STOPPING) {
        say("got %s again; killing %d rank%s now (%s)", sname, j->alive, j->alive == 1 ? "" : "s",
            who);
        if (j->status < 0)
            j->status = 128 + sig;
        kill_all(j);
    }
}

static void on_deadlines(job_t *j)
{
    int64_t t = now_ms();
    char who[512];

    if (j->phase == RUNNING && j->t_timeout && t >= j->t_timeout && j->alive > 0) {
        name_alive(j, who, sizeof(who));
        say("the job ran longer than --timeout %g s; stopping %d rank%s still running (%s)",
            j->opt->timeout_s, j->alive, j->alive == 1 ? "" : "s", who);
        j->status = RDT_LAUNCH_EXIT_TIMEOUT;
        stop_all(j, SIGTERM);
    }
    if (j->phase == KILLING && j->t_kill && t >= j->t_kill) {
        if (j->alive > 0)
            say("the remote agent of %d rank%s did not exit after SIGKILL was sent through it; "
                "killing the agent",
                j->alive, j->alive == 1 ? "" : "s");
        kill_agents(j);
    }
    if (j->phase == STOPPING && j->t_kill && t >= j->t_kill) {
        if (j->alive > 0) {
            name_alive(j, who, sizeof(who));
            say("%d rank%s still running %g s after being told to stop; killing (SIGKILL): %s",
                j->alive, j->alive == 1 ? "" : "s", j->opt->grace_s, who);
        }
        kill_all(j);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* The loop                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int poll_timeout(const job_t *j, int64_t drain_until)
{
    int64_t t = now_ms(), next = INT64_MAX;

    if (j->phase == RUNNING && j->t_timeout)
        next = j->t_timeout;
    if (j->phase != RUNNING && j->t_kill && j->t_kill < next)
        next = j->t_kill;
    if (drain_until && drain_until < next)
        next = drain_until;
    if (next == INT64_MAX)
        return -1;
    return next <= t ? 0 : (int)(next - t > 60000 ? 60000 : next - t);
}

static void run_loop(job_t *j)
{
    struct pollfd *pfd = calloc((size_t)j->np * 2 + 1, sizeof(*pfd));
    stream_t **owner = calloc((size_t)j->np * 2 + 1, sizeof(*owner));
    rank_t **owner_rank = calloc((size_t)j->np * 2 + 1, sizeof(*owner_rank));
    struct pollfd only_signals, *set;
    int64_t drain_until = 0;
    int swept = 0, r, have_mem = pfd && owner && owner_rank;

    if (!have_mem) { /* without memory to poll the pipes, end the job: it cannot be watched */
        say("out of memory for %d ranks; killing them", j->np);
        kill_all(j);
    }
    set = have_mem ? pfd : &only_signals;
    for (;;) {
        int n = 0, i, open_streams = 0;

        if (j->alive == 0 && !swept) {
            sweep_orphans(j);
            swept = 1;
            drain_until = now_ms() + DRAIN_MS;
        }
        set[n++] = (struct pollfd){.fd = j->sfd, .events = POLLIN};
        if (have_mem) {
            for (r = 0; r < j->np; r++) {
                stream_t *ss[2] = {&j->ranks[r].so, &j->ranks[r].se};
                for (i = 0; i < 2; i++) {
                    if (ss[i]->fd < 0)
                        continue;
                    owner[n] = ss[i];
                    owner_rank[n] = &j->ranks[r];
                    set[n++] = (struct pollfd){.fd = ss[i]->fd, .events = POLLIN};
                    open_streams++;
                }
            }
        }
        if (j->alive == 0 && (open_streams == 0 || now_ms() >= drain_until))
            break;
        if (poll(set, (nfds_t)n, poll_timeout(j, drain_until)) < 0 && errno != EINTR) {
            if (j->phase != KILLING)
                say("poll: %s; killing the ranks", strerror(errno));
            kill_all(j);
            reap(j); /* the signal descriptor is not watched: look for exits here */
            usleep(10000);
        }
        if (set[0].revents & POLLIN) {
            struct signalfd_siginfo si[8];
            ssize_t got = read(j->sfd, si, sizeof(si));
            for (i = 0; got > 0 && i < got / (ssize_t)sizeof(si[0]); i++)
                if (si[i].ssi_signo != SIGCHLD)
                    on_signal(j, (int)si[i].ssi_signo);
            reap(j); /* SIGCHLD, or coalesced with another signal */
        }
        for (i = 1; i < n; i++)
            if (set[i].revents && owner[i]->fd >= 0)
                stream_read(j, owner_rank[i], owner[i]);
        on_deadlines(j);
    }
    for (r = 0; r < j->np; r++) { /* past the drain deadline: whatever still holds them */
        stream_close(j, &j->ranks[r], &j->ranks[r].so);
        stream_close(j, &j->ranks[r], &j->ranks[r].se);
    }
    free(pfd);
    free(owner);
    free(owner_rank);
}

/* As many descriptors as allowed: two pipes per rank. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int rdt_launch_run(const rdt_launch_t *o)
{
    job_t j;
    sigset_t mask, old;
    int r, any_local = 0, any_remote = 0, multi_host = 0, started = 0;

    memset(&j, 0, sizeof(j));
    j.opt = o;
    j.np = o->np;
    j.status = -1;
    j.sfd = j.watchdog_fd = -1;
    j.self = getpid();
    j.ranks = calloc((size_t)o->np, sizeof(*j.ranks));
    if (!j.ranks) {
        say("out of memory for %d ranks", o->np);
        return RDT_LAUNCH_EXIT_USAGE;
    }
    for (r = 0; r < o->np; r++) {
        rank_t *rk = &j.ranks[r];
        rk->remote = !o->hosts->hosts[o->place[r].host].local;
        any_remote |= rk->remote;
        any_local |= !rk->remote;
        multi_host |= o->place[r].host != o->place[0].host;
        rk->ctl_fd = rk->so.fd = rk->se.fd = -1;
        rk->so.out = 1;
        rk->se.out = 2;
    }
    for (r = 0; r < o->np; r++) {
        rank_t *rk = &j.ranks[r];
        int n = multi_host
                    ? snprintf(rk->prefix, sizeof(rk->prefix), "[%s:%d] ", host_label(&j, r), r)
                    : snprintf(rk->prefix, sizeof(rk->prefix), "[%d] ", r);
        rk->prefix_len = (size_t)n < sizeof(rk->prefix) ? (size_t)n : sizeof(rk->prefix) - 1;
    }

    /* Everything that can fail before a rank starts. */
    if (!getcwd(j.cwd, sizeof(j.cwd))) {
        say("getcwd: %s", strerror(errno));
        goto out_free;
    }
    if (apply_xvars(o) || random_token(j.token) || choose_root(&j, any_remote) ||
        (any_remote && split_rsh(&j)) || (o->output_dir && make_dirs(o->output_dir)))
        goto out_free;
    if (any_local && !(j.prog = resolve_program(o->argv[0]))) {
        j.status = RDT_LAUNCH_EXIT_NOTFOUND;
        goto out_free;
    }

    raise_fd_limit();
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &old);
    j.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (j.sfd < 0) {
        say("signalfd: %s", strerror(errno));
        goto out_sigmask;
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (watchdog_start(&j))
        goto out_sigmask;

    fflush(stdout);
    fflush(stderr);
    if (o->timeout_s > 0)
        j.t_timeout = now_ms() + (int64_t)(o->timeout_s * 1000);
    for (r = 0; r < o->np; r++) {
        if (start_rank(&j, r)) {
            say("could not start rank %d on %s; stopping the %d started", r, host_label(&j, r),
                started);
            j.status = 1;
            stop_all(&j, SIGTERM);
            break;
        }
        started++;
    }
    run_loop(&j);
    sweep_orphans(&j);
    watchdog_release(&j);
    for (r = 0; r < o->np; r++)
        close_fd(&j.ranks[r].ctl_fd);
    if (j.status < 0)
        j.status = 0;

out_sigmask:
    close_fd(&j.sfd);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
out_free:
    free(j.prog);
    if (j.rsh)
        free(j.rsh[0]); /* the split copy */
    free(j.rsh);
    free(j.ranks);
    return j.status < 0 ? RDT_LAUNCH_EXIT_USAGE : j.status;
}
