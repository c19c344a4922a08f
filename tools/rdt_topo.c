/*
 * rdt_topo - print a topology: this machine (hwloc), a described one (--spec, --file), one host's
 * hwloc XML (--xml), or the grouping of a list of per-rank host names (--hosts); text or --json.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: rdt_topo [--json] [--spec SPEC | --file FILE | --xml FILE | --hosts H0,H1,...]\n"
        "                [--ranks N] [--sysfs DIR]\n"
        "\n"
        "Prints a topology: hosts, the ranks on each, their NUMA node and nearest NIC.\n"
        "  (no source)    this machine, detected with hwloc: packages, NUMA nodes, cores, NICs\n"
        "                 and their NUMA node, where this process runs, and N local ranks\n"
        "  --spec SPEC    a described job: 8x8 (8 hosts of 8 ranks), 4,2,3 (ranks per host),\n"
        "                 options :numaN :nicN, e.g. 2x4:numa2:nic2\n"
        "  --file FILE    a described job, one line per host: host NAME ranks N [numa N] [nics N]\n"
        "  --xml FILE     one host from an hwloc XML file (lstopo --of xml), with N local ranks\n"
        "  --hosts LIST   the host name of each rank, in rank order (grouping as the engine does)\n"
        "  --ranks N      local ranks placed on this machine or the --xml host (default 1)\n"
        "  --sysfs DIR    with --xml: a /sys-like tree naming the netdevs of virtual RDMA devices\n"
        "  --json         one JSON object instead of text\n"
        "\n"
        "TODO (not there yet): printing the schedule the engine would run for a collective, size\n"
        "and rank count on this topology. It needs the hierarchical schedules of issue 4, which\n"
        "do not exist yet; this tool prints no schedule until they do.\n");
}

static char *read_file(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) {
        fprintf(stderr, "rdt_topo: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 > cap) {
            char *nb;
            cap = cap ? 2 * cap : 65536;
            if (cap > (64u << 20) || !(nb = realloc(buf, cap))) {
                fprintf(stderr, "rdt_topo: %s: too large (over 64 MiB) or out of memory\n", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        fprintf(stderr, "rdt_topo: %s: read error: %s\n", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len_p = len;
    return buf ? buf : calloc(1, 1);
}

/* "h0,h0,h1" -> a table of RDT_TOPO_NAME_MAX-byte names, as the bootstrap gathers them. */
static char *parse_hosts(const char *list, int *n_p)
{
    size_t i, start = 0, len = strlen(list);
    int n = 1, k = 0;
    char *tab;

    for (i = 0; i < len; i++)
        n += list[i] == ',';
    tab = calloc((size_t)n, RDT_TOPO_NAME_MAX);
    if (!tab) {
        fprintf(stderr, "rdt_topo: out of memory for %d host names\n", n);
        return NULL;
    }
    for (i = 0; i <= len; i++) {
        if (i < len && list[i] != ',')
            continue;
        if (i == start || i - start >= RDT_TOPO_NAME_MAX) {
            fprintf(stderr, "rdt_topo: --hosts: %s host name for rank %d at column %zu\n",
                    i == start ? "empty" : "too long (over 63 characters)", k, start + 1);
            free(tab);
            return NULL;
        }
        memcpy(tab + (size_t)k * RDT_TOPO_NAME_MAX, list + start, i - start);
        k++;
        start = i + 1;
    }
    *n_p = n;
    return tab;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"spec", required_argument, NULL, 's'},
                                             {"file", required_argument, NULL, 'f'},
                                             {"xml", required_argument, NULL, 'x'},
                                             {"hosts", required_argument, NULL, 'H'},
                                             {"ranks", required_argument, NULL, 'n'},
                                             {"sysfs", required_argument, NULL, 'S'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *spec = NULL, *file = NULL, *xml = NULL, *hosts = NULL, *sysfs = NULL;
    int c, json = 0, nsrc = 0, ranks = 1, rc = 1;
    char err[512] = "";
    rdt_topo_host_t *host = NULL;
    rdt_topo_probe_t probe;
    int have_probe = 0;
    rdt_topo_t *topo = NULL;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 's':
            spec = optarg, nsrc++;
            break;
        case 'f':
            file = optarg, nsrc++;
            break;
        case 'x':
            xml = optarg, nsrc++;
            break;
        case 'H':
            hosts = optarg, nsrc++;
            break;
        case 'S':
            sysfs = optarg;
            break;
        case 'n': {
            char *end;
            long v;
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > RDT_TOPO_MAX_LOCAL) {
                fprintf(stderr, "rdt_topo: --ranks '%s': expected 1 to %d\n", optarg,
                        RDT_TOPO_MAX_LOCAL);
                return 2;
            }
            ranks = (int)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || nsrc > 1) {
        fprintf(stderr, "rdt_topo: %s\n",
                optind < argc ? "unexpected argument"
                              : "give at most one of --spec, --file, --xml, --hosts");
        usage(stderr);
        return 2;
    }
    if (sysfs && !xml) {
        fprintf(stderr, "rdt_topo: --sysfs goes with --xml\n");
        return 2;
    }
    if (ranks != 1 && (spec || file || hosts)) {
        fprintf(stderr, "rdt_topo: --ranks goes with this machine or --xml\n");
        return 2;
    }

    if (spec) {
        if (rdt_topo_from_spec(spec, &topo, err, sizeof(err)))
            goto fail;
    } else if (file) {
        size_t len;
        char *text = read_file(file, &len);
        int r;
        if (!text)
            return 1;
        r = rdt_topo_from_text(text, len, file, &topo, err, sizeof(err));
        free(text);
        if (r)
            goto fail;
    } else if (hosts) {
        int n, r;
        char *tab = parse_hosts(hosts, &n);
        if (!tab)
            return 1;
        r = rdt_topo_from_hosts(n, tab, RDT_TOPO_NAME_MAX, NULL, &topo, err, sizeof(err));
        free(tab);
        if (r)
            goto fail;
    } else {
        if (xml ? rdt_topo_host_from_xml(xml, sysfs, &host, err, sizeof(err))
                : rdt_topo_host_detect(&host, err, sizeof(err)))
            goto fail;
        if (!xml) {
            if (rdt_topo_local_probe(0, &probe, err, sizeof(err)))
                goto fail;
            have_probe = 1;
        }
        if (rdt_topo_from_host(host, NULL, ranks, &topo, err, sizeof(err)))
            goto fail;
    }

    if (json) {
        printf("{\n");
        if (host) {
            printf("  \"host\": ");
            rdt_topo_host_write_json(host, stdout, 2);
            printf(",\n");
        }
        if (have_probe) {
            printf("  \"process\": ");
            rdt_topo_probe_write_json(&probe, stdout, 2);
            printf(",\n");
        }
        printf("  \"topology\": ");
        rdt_topo_write_json(topo, stdout, 2);
        printf("\n}\n");
    } else {
        if (host)
            rdt_topo_host_write_text(host, stdout);
        if (have_probe) {
            printf("this process: cpu %d%s, numa ", probe.cpu, probe.bound ? " (bound)" : "");
            if (probe.loc.numa >= 0)
                printf("%d", probe.loc.numa);
            else
                printf("unknown");
            if (probe.loc.nic >= 0)
                printf(", nearest nic %d (%s%s%s)\n", probe.loc.nic, probe.nic_name,
                       probe.nic_netdev[0] && strcmp(probe.nic_netdev, probe.nic_name) ? ", " : "",
                       strcmp(probe.nic_netdev, probe.nic_name) ? probe.nic_netdev : "");
            else
                printf(", no nic\n");
        }
        if (host)
            printf("placement of %d local rank%s:\n", ranks, ranks == 1 ? "" : "s");
        rdt_topo_write_text(topo, stdout);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "rdt_topo: writing the output failed: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "rdt_topo: %s\n", err);
out:
    rdt_topo_destroy(topo);
    rdt_topo_host_destroy(host);
    return rc;
}
