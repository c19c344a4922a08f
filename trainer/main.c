/*
 * main.c - the rdmatrain command line: parse options and hosts, place the ranks, hand over to
 * launch.c. Nothing starts unless all of it is valid.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rdmatrain.h>

#include "hostfile.h"
#include "launch.h"

#define DEFAULT_RANKS 2
#define GRACE_S       3.0
#define HOSTFILE_MAX  (16 << 20)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rdmatrain [options] [--] program [args...]\n"
            "       rdmatrain [options] train [train options]   (rdmatrain train --help)\n"
            "\n"
            "Starts the ranks of a job that uses the rdmatrain C API, each with RDT_RANK,\n"
            "RDT_SIZE, RDT_LOCAL_RANK, RDT_ROOT and RDT_TOKEN in its environment; 'train'\n"
            "starts the trainer (rdmatrain-train, next to this program) on every rank.\n"
            "\n"
            "  -H, --host FILE|LIST  the hosts: a file of 'host slots=N' (Open MPI) or 'host:N'\n"
            "                        (Horovod) lines, or a list 'h1:2,h2:2'; localhost,\n"
            "                        127.0.0.1 and this machine's name run locally, others\n"
            "                        through ssh. Default: this machine only\n"
            "      --hostfile FILE   the hosts from FILE (as -H FILE)\n"
            "  -n, -np, --np N       number of ranks (default: every slot of the hosts, or %d\n"
            "                        without -H)\n"
            "      --oversubscribe   allow more ranks than slots\n"
            "      --output-dir DIR  write rank N's output to DIR/rank.N.log, not the terminal\n"
            "      --timeout S       stop the job after S seconds (exit status 124)\n"
            "      --rsh CMD         how to reach remote hosts (default: ssh -o BatchMode=yes;\n"
            "                        or RDT_RSH), run as CMD HOST COMMAND\n"
            "      --root HOST[:PORT]\n"
            "                        the rendezvous (RDT_ROOT): an address of rank 0's host\n"
            "                        that every host reaches. Default: the first host; if that\n"
            "                        is this machine and others are remote, its address on the\n"
            "                        route to the first remote host; a port free here\n"
            "  -x VAR=VALUE | VAR    set VAR in every rank (VAR alone: its value here)\n"
            "  -h, --help            this help\n"
            "      --version         the version\n"
            "\n"
            "Output lines carry a [rank] prefix ([host:rank] with several hosts). Ctrl-C and\n"
            "SIGTERM reach every rank, SIGKILL follows %g s later. If a rank fails, the others\n"
            "are stopped. Exit status: 0, the failing rank's status (128 + signal if killed),\n"
            "124 on --timeout, 128 + signal if the launcher was signalled, 2 for a bad command\n"
            "line or hosts file, 127 if the program cannot be run.\n",
            DEFAULT_RANKS, GRACE_S);
}

static int parse_ranks(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > RDT_JOB_RANKS_MAX || s[0] == '+' || s[0] == ' ') {
        fprintf(stderr, "rdmatrain: -np expects a number of ranks from 1 to %d, got '%s'\n",
                RDT_JOB_RANKS_MAX, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !(v > 0) || v > 1e9) {
        fprintf(stderr, "rdmatrain: --timeout expects a positive number of seconds, got '%s'\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* --root HOST[:PORT] or [IPV6][:PORT]: a host name or address rank 0 can bind and the others
 * reach, and an optional port. HOST goes into RDT_ROOT as written (brackets kept). */
static int parse_root(const char *s, char *host, size_t hostlen, int *port_p)
{
    const char *end, *colon = NULL, *p;
    size_t n;

    *port_p = 0;
    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || end == s + 1 || (end[1] && end[1] != ':'))
            goto bad;
        for (p = s + 1; p < end; p++)
            if (!strchr("0123456789abcdefABCDEF:.", *p))
                goto bad;
        n = (size_t)(end - s) + 1;
        if (end[1] == ':')
            colon = end + 1;
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            fprintf(stderr,
                    "rdmatrain: --root '%s': write an IPv6 address in brackets, as "
                    "[ADDR] or [ADDR]:PORT\n",
                    s);
            return -1;
        }
        n = colon ? (size_t)(colon - s) : strlen(s);
        if (n == 0)
            goto bad;
        for (p = s; p < s + n; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
                goto bad;
    }
    if (n >= hostlen)
        goto bad;
    if (colon) {
        char *e;
        long v;
        errno = 0;
        v = strtol(colon + 1, &e, 10);
        if (e == colon + 1 || *e || errno || v < 1 || v > 65535 || colon[1] == '+' ||
            colon[1] == '-' || colon[1] == ' ') {
            fprintf(stderr, "rdmatrain: --root '%s': the port must be a number from 1 to 65535\n",
                    s);
            return -1;
        }
        *port_p = (int)v;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
bad:
    fprintf(stderr,
            "rdmatrain: --root '%s': expected HOST, HOST:PORT, [IPV6] or [IPV6]:PORT, "
            "HOST made of letters, digits, '.', '-' and '_'\n",
            s);
    return -1;
}

/* The whole file, at most HOSTFILE_MAX bytes; NULL with a message on failure. */
static char *read_file(const char *path, size_t *len_p)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0, cap = 4096;
    char *buf = NULL;

    if (fd < 0) {
        fprintf(stderr, "rdmatrain: cannot open hosts file '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (!buf || len == cap) {
            char *nb = len == cap && buf ? realloc(buf, cap *= 2) : malloc(cap);
            if (!nb)
                goto err_close;
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "rdmatrain: cannot read hosts file '%s': %s\n", path, strerror(errno));
            goto err_close;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > HOSTFILE_MAX) {
            fprintf(stderr, "rdmatrain: hosts file '%s' is larger than %d MiB\n", path,
                    HOSTFILE_MAX >> 20);
            goto err_close;
        }
    }
    close(fd);
    *len_p = len;
    return buf;

err_close:
    free(buf);
    close(fd);
    return NULL;
}

/* Does @p arg of -H name a file? Yes if it exists, or looks like a path or a file name; a
 * missing "hosts.txt" is then "cannot open", not a host called hosts.txt. */
static int looks_like_file(const char *arg)
{
    static const char *const exts[] = {".txt", ".hosts", ".hostfile", ".list", ".cfg", ".conf"};
    struct stat st;
    size_t i, n = strlen(arg);

    if (stat(arg, &st) == 0 && !S_ISDIR(st.st_mode))
        return 1;
    if (strchr(arg, '/'))
        return 1;
    if (strchr(arg, ',') || strchr(arg, ':'))
        return 0;
    for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(arg + n - e, exts[i]) == 0)
            return 1;
    }
    return 0;
}

/* The trainer program: RDT_TRAINER if set, else rdmatrain-train in this program's directory.
 * The same absolute path is used on remote hosts, like any program the launcher starts. */
static int trainer_path(char *buf, size_t len)
{
    const char *env = getenv("RDT_TRAINER");
    char self[4096];
    ssize_t n;
    char *slash;

    if (env && *env) {
        if ((size_t)snprintf(buf, len, "%s", env) >= len)
            goto too_long;
    } else {
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            fprintf(stderr, "rdmatrain: cannot find this program's directory: %s\n",
                    strerror(errno));
            return -1;
        }
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        if ((size_t)snprintf(buf, len, "%s/rdmatrain-train", self) >= len)
            goto too_long;
    }
    if (access(buf, X_OK)) {
        fprintf(stderr, "rdmatrain: the trainer %s cannot be run: %s\n", buf, strerror(errno));
        return -1;
    }
    return 0;
too_long:
    fprintf(stderr, "rdmatrain: the trainer's path is too long\n");
    return -1;
}

/* Value of an option: "--opt=value", or the next argument. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i], *eq = strchr(a, '=');

    if (a[0] == '-' && a[1] == '-' && eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "rdmatrain: %s needs a value (rdmatrain --help)\n", name);
        return NULL;
    }
    return argv[++*i];
}

/* "--name" or "--name=..." */
static int is_opt(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || (a[n] == '=' && name[1] == '-'));
}

int main(int argc, char **argv)
{
    rdt_launch_t job;
    rdt_hostlist_t hosts = {0};
    rdt_rank_place_t *place = NULL;
    const char *host_arg = NULL, *hostfile_arg = NULL, *source = "this host";
    char self[256] = "", err[512], root_host[RDT_HOST_NAME_MAX + 1] = "";
    const char *self_names[2] = {self, NULL};
    char **xvars;
    int np = 0, oversubscribe = 0, nx = 0, i, rc = RDT_LAUNCH_EXIT_USAGE, root_port = 0;
    double timeout_s = 0;
    const char *output_dir = NULL, *rsh = getenv("RDT_RSH");
    char trainer[4096], **train_argv = NULL;

    xvars = calloc((size_t)argc + 2, sizeof(char *));
    if (!xvars)
        return RDT_LAUNCH_EXIT_USAGE;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break; /* the program, or train */
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--version") == 0) {
            printf("rdmatrain %d.%d.%d\n", RDT_VERSION_MAJOR, RDT_VERSION_MINOR, RDT_VERSION_PATCH);
            rc = 0;
            goto out;
        } else if (strcmp(a, "-H") == 0 || is_opt(a, "--host")) {
            if (!(v = opt_value(argc, argv, &i, "-H")))
                goto out;
            host_arg = v;
        } else if (is_opt(a, "--hostfile")) {
            if (!(v = opt_value(argc, argv, &i, "--hostfile")))
                goto out;
            hostfile_arg = v;
        } else if (strcmp(a, "-np") == 0 || strcmp(a, "-n") == 0 || is_opt(a, "--np")) {
            if (!(v = opt_value(argc, argv, &i, "-np")) || parse_ranks(v, &np))
                goto out;
        } else if (strcmp(a, "--oversubscribe") == 0) {
            oversubscribe = 1;
        } else if (is_opt(a, "--output-dir")) {
            if (!(output_dir = opt_value(argc, argv, &i, "--output-dir")))
                goto out;
        } else if (is_opt(a, "--timeout")) {
            if (!(v = opt_value(argc, argv, &i, "--timeout")) || parse_seconds(v, &timeout_s))
                goto out;
        } else if (is_opt(a, "--rsh")) {
            if (!(rsh = opt_value(argc, argv, &i, "--rsh")))
                goto out;
        } else if (is_opt(a, "--root")) {
            if (!(v = opt_value(argc, argv, &i, "--root")) ||
                parse_root(v, root_host, sizeof(root_host), &root_port))
                goto out;
        } else if (strcmp(a, "-x") == 0) {
            if (!(v = opt_value(argc, argv, &i, "-x")))
                goto out;
            xvars[nx++] = (char *)v;
        } else {
            fprintf(stderr, "rdmatrain: unknown option '%s' (rdmatrain --help)\n", a);
            goto out;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "rdmatrain: no program to run (rdmatrain --help)\n");
        goto out;
    }
    if (strcmp(argv[i], "train") == 0) {
        /* the trainer: rdmatrain-train next to this program, given "train" and the rest */
        int j;
        if (trainer_path(trainer, sizeof(trainer)))
            goto out;
        for (j = i + 1; j < argc; j++)
            if (!strcmp(argv[j], "-h") || !strcmp(argv[j], "--help")) {
                argv[i] = trainer; /* help needs no ranks */
                execv(trainer, argv + i);
                fprintf(stderr, "rdmatrain: cannot run %s: %s\n", trainer, strerror(errno));
                rc = RDT_LAUNCH_EXIT_NOTFOUND;
                goto out;
            }
        train_argv = calloc((size_t)(argc - i) + 2, sizeof(char *));
        if (!train_argv)
            goto out;
        train_argv[0] = trainer;
        for (j = i; j < argc; j++)
            train_argv[j - i + 1] = argv[j];
        /* rank 0 draws a progress bar when the launcher's output is a terminal */
        if (!output_dir && isatty(STDOUT_FILENO))
            xvars[nx++] = (char *)"RDT_STDOUT_TTY=1";
    }
    if (host_arg && hostfile_arg) {
        fprintf(stderr, "rdmatrain: give the hosts once: -H or --hostfile\n");
        goto out;
    }

    if (gethostname(self, sizeof(self) - 1))
        self[0] = '\0';
    if (host_arg && !looks_like_file(host_arg)) {
        source = "-H";
        if (rdt_hostlist_parse_inline(host_arg, self_names, &hosts, err, sizeof(err))) {
            fprintf(stderr, "rdmatrain: %s\n", err);
            goto out;
        }
    } else if (host_arg || hostfile_arg) {
        size_t len;
        char *text;
        source = host_arg ? host_arg : hostfile_arg;
        if (!(text = read_file(source, &len)))
            goto out;
        if (rdt_hostlist_parse_file(text, len, source, self_names, &hosts, err, sizeof(err))) {
            fprintf(stderr, "rdmatrain: %s\n", err);
            free(text);
            goto out;
        }
        free(text);
    } else if (rdt_hostlist_local(np ? np : DEFAULT_RANKS, &hosts, err, sizeof(err))) {
        fprintf(stderr, "rdmatrain: %s\n", err);
        goto out;
    }
    if (np == 0) {
        if (hosts.total_slots > RDT_JOB_RANKS_MAX) {
            fprintf(stderr, "rdmatrain: %s lists %lld slots, more than %d ranks; pass -np\n",
                    source, (long long)hosts.total_slots, RDT_JOB_RANKS_MAX);
            goto out;
        }
        np = (int)hosts.total_slots;
    }
    place = calloc((size_t)np, sizeof(*place));
    if (!place) {
        fprintf(stderr, "rdmatrain: out of memory for %d ranks\n", np);
        goto out;
    }
    if (rdt_hostlist_place(&hosts, np, oversubscribe, source, place, err, sizeof(err))) {
        fprintf(stderr, "rdmatrain: %s\n", err);
        goto out;
    }

    memset(&job, 0, sizeof(job));
    job.hosts = &hosts;
    job.place = place;
    job.np = np;
    job.argv = train_argv ? train_argv : argv + i;
    job.output_dir = output_dir;
    job.timeout_s = timeout_s;
    job.grace_s = GRACE_S;
    job.rsh = rsh;
    job.xvars = xvars;
    job.nx = nx;
    job.self_name = self;
    job.root_host = root_host[0] ? root_host : NULL;
    job.root_port = root_port;
    rc = rdt_launch_run(&job);

out:
    free(place);
    rdt_hostlist_fini(&hosts);
    free(xvars);
    free(train_argv);
    return rc;
}
