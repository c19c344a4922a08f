/*
 * topo_hw.c - this host's hardware through hwloc: packages, NUMA nodes, cores, NICs and their
 * NUMA node; where this process runs; RDT_BIND. Everything hwloc returns is copied into plain
 * data (rdt_topo_host_t) before the hwloc topology is destroyed, so callers never see hwloc.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hwloc.h>

#include "topo.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * hwloc unloads its plugins when the last topology of the process is destroyed, and its PCI
 * plugin (libpciaccess) leaks about 600 KB each time it is unloaded: a probe per communicator
 * would leak that much per communicator. One topology handle, initialized once and never loaded
 * nor destroyed (a few hundred bytes), keeps the plugins loaded for the life of the process; with
 * it, repeated loads leak nothing (checked under LeakSanitizer).
 */
static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;
static hwloc_topology_t anchor;

static void anchor_init(void)
{
    if (hwloc_topology_init(&anchor) != 0)
        anchor = NULL; /* only costs the leak above */
}

/* How a hwloc topology is read. */
typedef enum { SRC_LIVE, SRC_LIVE_BOUND, SRC_XML_FILE, SRC_XML_BUFFER } src_kind_t;

/*
 * Load a topology. I/O: PCI devices and OS devices that matter (network, OpenFabrics), not
 * bridges. Live loads never change this thread's binding (hwloc's x86 backend would, briefly,
 * under a multithreaded engine); SRC_LIVE_BOUND restricts the topology to the CPUs this process
 * is bound to (taskset, a resource manager), which is what RDT_BIND divides among local ranks.
 */
static int topo_load(src_kind_t kind, const char *xml, size_t len, hwloc_topology_t *topo_p,
                     char *err, size_t errlen)
{
    static const char *const unwanted[] = {"gl", "opencl", "cuda", "nvml", "rsmi", "levelzero"};
    hwloc_topology_t topo;
    unsigned long flags = 0;
    const char *what = kind == SRC_XML_FILE ? xml : kind == SRC_XML_BUFFER ? "XML buffer" : NULL;
    size_t i;

    pthread_once(&anchor_once, anchor_init);
    if (hwloc_topology_init(&topo) != 0) {
        seterr(err, errlen, "hwloc_topology_init failed: %s", strerror(errno));
        return -1;
    }
    hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    /* GPU and display discovery: slow (the GL plugin opens X displays) and not ours to need; a
     * component missing from this build is not an error, so the result is not checked */
    for (i = 0; i < sizeof(unwanted) / sizeof(unwanted[0]); i++)
        (void)hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST,
                                            unwanted[i]);
    if (kind == SRC_LIVE || kind == SRC_LIVE_BOUND)
        flags |= HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM | HWLOC_TOPOLOGY_FLAG_DONT_CHANGE_BINDING;
    if (kind == SRC_LIVE_BOUND)
        flags |= HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING;
    if (flags && hwloc_topology_set_flags(topo, flags) != 0) {
        seterr(err, errlen, "hwloc_topology_set_flags failed: %s", strerror(errno));
        goto err_destroy;
    }
    if (kind == SRC_XML_FILE && hwloc_topology_set_xml(topo, xml) != 0) {
        seterr(err, errlen, "%s: hwloc cannot read it as XML: %s", what, strerror(errno));
        goto err_destroy;
    }
    if (kind == SRC_XML_BUFFER &&
        (len > (size_t)INT32_MAX || hwloc_topology_set_xmlbuffer(topo, xml, (int)len) != 0)) {
        seterr(err, errlen, "%s: hwloc cannot read it as XML: %s", what, strerror(errno));
        goto err_destroy;
    }
    if (hwloc_topology_load(topo) != 0) {
        if (what)
            seterr(err, errlen, "%s: not a valid hwloc XML topology (%s)", what,
                   errno ? strerror(errno) : "rejected by hwloc");
        else
            seterr(err, errlen, "hwloc could not discover this machine: %s", strerror(errno));
        goto err_destroy;
    }
    *topo_p = topo;
    return 0;
err_destroy:
    hwloc_topology_destroy(topo);
    return -1;
}

/* The logical index of the first NUMA node whose CPUs include all of `set`; -1 if none. */
static int numa_containing(hwloc_topology_t topo, hwloc_const_cpuset_t set)
{
    hwloc_obj_t n = NULL;

    if (!set || hwloc_bitmap_iszero(set))
        return -1;
    while ((n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)))
        if (n->cpuset && !hwloc_bitmap_iszero(n->cpuset) && hwloc_bitmap_isincluded(set, n->cpuset))
            return (int)n->logical_index;
    return -1;
}

/* NUMA node of an I/O object: its nearest non-I/O ancestor's, when that is one node. */
static int io_numa(hwloc_topology_t topo, hwloc_obj_t io)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, io);
    hwloc_obj_t n;

    if (!anc || !anc->nodeset || hwloc_bitmap_weight(anc->nodeset) != 1)
        return -1;
    n = hwloc_get_numanode_obj_by_os_index(topo, (unsigned)hwloc_bitmap_first(anc->nodeset));
    return n ? (int)n->logical_index : -1;
}

static hwloc_obj_t pci_parent(hwloc_obj_t o)
{
    for (o = o->parent; o; o = o->parent)
        if (o->type == HWLOC_OBJ_PCI_DEVICE)
            return o;
        else if (o->type != HWLOC_OBJ_OS_DEVICE)
            return NULL; /* a bridge or a CPU-side object: not directly on a PCI function */
    return NULL;
}

static hwloc_obj_t osdev_by_name(hwloc_topology_t topo, hwloc_obj_osdev_type_t type,
                                 const char *name)
{
    hwloc_obj_t o = NULL;

    while ((o = hwloc_get_next_osdev(topo, o)))
        if (o->attr->osdev.type == type && o->name && !strcmp(o->name, name))
            return o;
    return NULL;
}

/* The first network OS device on the same PCI function as `pci`, or NULL. */
static hwloc_obj_t netdev_of_pci(hwloc_obj_t pci)
{
    hwloc_obj_t c;

    for (c = pci->io_first_child; c; c = c->next_sibling)
        if (c->type == HWLOC_OBJ_OS_DEVICE && c->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK)
            return c;
    return NULL;
}

static int pci_has_rdma(hwloc_obj_t pci)
{
    hwloc_obj_t c;

    for (c = pci->io_first_child; c; c = c->next_sibling)
        if (c->type == HWLOC_OBJ_OS_DEVICE && c->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS)
            return 1;
    return 0;
}

static void busid_str(hwloc_obj_t pci, char *out, size_t outlen)
{
    snprintf(out, outlen, "%04x:%02x:%02x.%01x", pci->attr->pcidev.domain, pci->attr->pcidev.bus,
             pci->attr->pcidev.dev, pci->attr->pcidev.func);
}

/* Read a one-line sysfs attribute, without its newline; -1 if absent or empty. */
static int read_attr(const char *root, const char *dev, const char *attr, char *out, size_t outlen)
{
    char path[512];
    FILE *f;
    size_t n;

    if (snprintf(path, sizeof(path), "%s/class/infiniband/%s/%s", root, dev, attr) >=
        (int)sizeof(path))
        return -1;
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return out[0] ? 0 : -1;
}

typedef struct {
    rdt_topo_nic_t *v;
    int n, cap;
} nic_vec_t;

static rdt_topo_nic_t *nic_add(nic_vec_t *nv)
{
    if (nv->n == nv->cap) {
        int cap = nv->cap ? 2 * nv->cap : 8;
        rdt_topo_nic_t *v = realloc(nv->v, (size_t)cap * sizeof(*v));
        if (!v)
            return NULL;
        nv->v = v;
        nv->cap = cap;
    }
    memset(&nv->v[nv->n], 0, sizeof(nv->v[0]));
    nv->v[nv->n].numa = -1;
    return &nv->v[nv->n++];
}

/* A virtual RDMA device's locality: that of its netdev's PCI function, if it has one. */
static void locate_through_netdev(hwloc_topology_t topo, rdt_topo_nic_t *nic)
{
    hwloc_obj_t nd, pci;

    if (!nic->netdev[0])
        return;
    nd = osdev_by_name(topo, HWLOC_OBJ_OSDEV_NETWORK, nic->netdev);
    pci = nd ? pci_parent(nd) : NULL;
    if (pci) {
        busid_str(pci, nic->pci_busid, sizeof(nic->pci_busid));
        nic->numa = io_numa(topo, pci);
    }
}

/*
 * RDMA devices in sysfs that hwloc did not list (virtual ones: rxe, siw; hwloc skips
 * /sys/devices/virtual), and netdevs of listed virtual ones. The netdev is the `parent`
 * attribute (rxe, siw), else the first port's first GID's netdev.
 */
static int add_sysfs_rdma(hwloc_topology_t topo, const char *root, nic_vec_t *nv)
{
    char path[512], link[512], buf[RDT_TOPO_NAME_MAX];
    struct dirent **de = NULL;
    const char *base = link;
    int i, k, n, rc = 0;
    ssize_t len;

    for (i = 0; i < nv->n; i++) {
        rdt_topo_nic_t *nic = &nv->v[i];
        if (nic->kind == RDT_TOPO_NIC_RDMA && nic->is_virtual && !nic->netdev[0] &&
            (read_attr(root, nic->name, "parent", buf, sizeof(buf)) == 0 ||
             read_attr(root, nic->name, "ports/1/gid_attrs/ndevs/0", buf, sizeof(buf)) == 0)) {
            snprintf(nic->netdev, sizeof(nic->netdev), "%.*s", (int)sizeof(nic->netdev) - 1, buf);
            locate_through_netdev(topo, nic);
        }
    }
    snprintf(path, sizeof(path), "%s/class/infiniband", root);
    n = scandir(path, &de, NULL, alphasort); /* sorted: the NIC numbering is stable */
    if (n < 0)
        return 0; /* no RDMA subsystem: nothing to add */
    for (k = 0; k < n; k++) {
        const char *name = de[k]->d_name;
        rdt_topo_nic_t *nic;
        int known = 0;

        if (name[0] == '.' || strlen(name) >= RDT_TOPO_NAME_MAX)
            continue;
        for (i = 0; i < nv->n; i++)
            known |= nv->v[i].kind == RDT_TOPO_NIC_RDMA && !strcmp(nv->v[i].name, name);
        if (known)
            continue;
        nic = nic_add(nv);
        if (!nic) {
            rc = -1;
            break;
        }
        nic->kind = RDT_TOPO_NIC_RDMA;
        snprintf(nic->name, sizeof(nic->name), "%.*s", (int)sizeof(nic->name) - 1, name);
        if (read_attr(root, nic->name, "parent", buf, sizeof(buf)) == 0 ||
            read_attr(root, nic->name, "ports/1/gid_attrs/ndevs/0", buf, sizeof(buf)) == 0)
            snprintf(nic->netdev, sizeof(nic->netdev), "%.*s", (int)sizeof(nic->netdev) - 1, buf);
        /* a PCI device hwloc did not attach (hwloc without its PCI plugin): `device` links to
         * .../0000:3b:00.0; otherwise a virtual device, located through its netdev */
        snprintf(path, sizeof(path), "%s/class/infiniband/%s/device", root, name);
        len = readlink(path, link, sizeof(link) - 1);
        if (len > 0) {
            link[len] = '\0';
            base = strrchr(link, '/');
            base = base ? base + 1 : link;
        }
        if (len > 0 && strlen(base) < sizeof(nic->pci_busid) && strchr(base, ':')) {
            hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(topo, base);
            snprintf(nic->pci_busid, sizeof(nic->pci_busid), "%.*s", (int)sizeof(nic->pci_busid) - 1, base);
            nic->numa = pci ? io_numa(topo, pci) : -1;
        } else {
            nic->is_virtual = 1;
            locate_through_netdev(topo, nic);
        }
    }
    for (k = 0; k < n; k++)
        free(de[k]);
    free(de);
    return rc;
}

/*
 * Drop a NET entry whose interface an RDMA device already names (rxe on eth0: the device is the
 * NIC), then sort: RDMA before NET, stable otherwise (the order hwloc, then sysfs, gave).
 */
static void nics_order(nic_vec_t *nv)
{
    rdt_topo_nic_t *tmp;
    int i, j, o = 0, pass;

    for (i = 0; i < nv->n; i++) {
        int dup = 0;
        if (nv->v[i].kind != RDT_TOPO_NIC_NET)
            continue;
        for (j = 0; j < nv->n; j++)
            dup |= nv->v[j].kind == RDT_TOPO_NIC_RDMA && !strcmp(nv->v[j].netdev, nv->v[i].name);
        if (dup) {
            memmove(&nv->v[i], &nv->v[i + 1], (size_t)(nv->n - i - 1) * sizeof(nv->v[0]));
            nv->n--;
            i--;
        }
    }
    if (nv->n < 2)
        return;
    tmp = malloc((size_t)nv->n * sizeof(*tmp));
    if (!tmp)
        return; /* order is cosmetic: RDMA devices are preferred by kind, not position */
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < nv->n; i++)
            if ((nv->v[i].kind == RDT_TOPO_NIC_RDMA) == (pass == 0))
                tmp[o++] = nv->v[i];
    memcpy(nv->v, tmp, (size_t)nv->n * sizeof(*tmp));
    free(tmp);
}

/* Copy what we need out of a loaded hwloc topology. */
static int host_build(hwloc_topology_t topo, const char *sysfs_root, rdt_topo_host_t **host_p,
                      char *err, size_t errlen)
{
    hwloc_obj_type_t core_type = HWLOC_OBJ_CORE;
    rdt_topo_host_t *h = calloc(1, sizeof(*h));
    nic_vec_t nv = {NULL, 0, 0};
    const char *hn;
    hwloc_obj_t o = NULL;
    int i;

    if (!h)
        goto err_oom;
    hn = hwloc_obj_get_info_by_name(hwloc_get_root_obj(topo), "HostName");
    if (hn)
        snprintf(h->name, sizeof(h->name), "%.*s", (int)sizeof(h->name) - 1, hn);
    h->npackages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    if (h->npackages < 1)
        h->npackages = 1; /* hwloc saw no package level: the machine is one */
    h->nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (h->nnuma < 1)
        h->nnuma = 1;
    h->npus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    h->ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (h->ncores < 1) {
        core_type = HWLOC_OBJ_PU; /* no core level (some VMs, some XML): a PU is a core */
        h->ncores = h->npus;
    }
    if (h->ncores < 1 || h->npus < 1) {
        seterr(err, errlen, "hwloc found no usable CPU (%d cores, %d hardware threads)", h->ncores,
               h->npus);
        goto err_free;
    }
    h->core_numa = calloc((size_t)h->ncores, sizeof(int));
    h->numa_ncores = calloc((size_t)h->nnuma, sizeof(int));
    if (!h->core_numa || !h->numa_ncores)
        goto err_oom;
    for (i = 0; i < h->ncores; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, core_type, (unsigned)i);
        h->core_numa[i] = c ? numa_containing(topo, c->cpuset) : -1;
        if (h->core_numa[i] >= 0 && h->core_numa[i] < h->nnuma)
            h->numa_ncores[h->core_numa[i]]++;
    }

    /* RDMA devices, with the netdev on the same PCI function */
    while ((o = hwloc_get_next_osdev(topo, o))) {
        hwloc_obj_t pci;
        rdt_topo_nic_t *nic;

        if (o->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS || !o->name)
            continue;
        if (!(nic = nic_add(&nv)))
            goto err_oom;
        nic->kind = RDT_TOPO_NIC_RDMA;
        snprintf(nic->name, sizeof(nic->name), "%.*s", (int)sizeof(nic->name) - 1, o->name);
        pci = pci_parent(o);
        if (pci) {
            hwloc_obj_t nd = netdev_of_pci(pci);
            busid_str(pci, nic->pci_busid, sizeof(nic->pci_busid));
            nic->numa = io_numa(topo, pci);
            if (nd && nd->name)
                snprintf(nic->netdev, sizeof(nic->netdev), "%.*s", (int)sizeof(nic->netdev) - 1, nd->name);
        } else {
            nic->is_virtual = 1;
        }
    }
    /* plain network interfaces on a PCI function without an RDMA device */
    while ((o = hwloc_get_next_osdev(topo, o))) {
        hwloc_obj_t pci;
        rdt_topo_nic_t *nic;

        if (o->attr->osdev.type != HWLOC_OBJ_OSDEV_NETWORK || !o->name)
            continue;
        pci = pci_parent(o);
        if (!pci || pci_has_rdma(pci))
            continue;
        if (!(nic = nic_add(&nv)))
            goto err_oom;
        nic->kind = RDT_TOPO_NIC_NET;
        snprintf(nic->name, sizeof(nic->name), "%.*s", (int)sizeof(nic->name) - 1, o->name);
        snprintf(nic->netdev, sizeof(nic->netdev), "%.*s", (int)sizeof(nic->netdev) - 1, o->name);
        busid_str(pci, nic->pci_busid, sizeof(nic->pci_busid));
        nic->numa = io_numa(topo, pci);
    }
    if (sysfs_root && add_sysfs_rdma(topo, sysfs_root, &nv) != 0)
        goto err_oom;
    nics_order(&nv);
    h->nics = nv.v;
    h->nnics = nv.n;
    *host_p = h;
    return 0;

err_oom:
    seterr(err, errlen, "out of memory describing this host");
err_free:
    free(nv.v);
    rdt_topo_host_destroy(h);
    return -1;
}

void rdt_topo_host_destroy(rdt_topo_host_t *host)
{
    if (!host)
        return;
    free(host->core_numa);
    free(host->numa_ncores);
    free(host->nics);
    free(host);
}

int rdt_topo_host_detect(rdt_topo_host_t **host_p, char *err, size_t errlen)
{
    hwloc_topology_t topo;
    rdt_topo_host_t *h;
    int rc;

    if (topo_load(SRC_LIVE, NULL, 0, &topo, err, errlen))
        return -1;
    rc = host_build(topo, "/sys", &h, err, errlen);
    hwloc_topology_destroy(topo);
    if (rc)
        return -1;
    if (!h->name[0] && gethostname(h->name, sizeof(h->name) - 1) != 0)
        h->name[0] = '\0';
    *host_p = h;
    return 0;
}

int rdt_topo_host_from_xml(const char *path, const char *sysfs_root, rdt_topo_host_t **host_p,
                           char *err, size_t errlen)
{
    hwloc_topology_t topo;
    FILE *f;
    int rc;

    if (!path || !path[0]) {
        seterr(err, errlen, "no XML file given");
        return -1;
    }
    f = fopen(path, "r"); /* hwloc's own message would not say why */
    if (!f) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    errno = 0;
    if (topo_load(SRC_XML_FILE, path, 0, &topo, err, errlen))
        return -1;
    rc = host_build(topo, sysfs_root, host_p, err, errlen);
    hwloc_topology_destroy(topo);
    return rc;
}

int rdt_topo_host_from_xml_buffer(const char *xml, size_t len, const char *sysfs_root,
                                  rdt_topo_host_t **host_p, char *err, size_t errlen)
{
    hwloc_topology_t topo;
    char *copy;
    int rc;

    if (xml && len > 0 && xml[len - 1] == '\0')
        len--; /* counted with its NUL or not: both are fine */
    if (!xml || len == 0) {
        seterr(err, errlen, "XML buffer: empty");
        return -1;
    }
    copy = malloc(len + 1); /* hwloc wants the NUL inside the length it is given */
    if (!copy) {
        seterr(err, errlen, "XML buffer: out of memory for a copy of %zu bytes", len);
        return -1;
    }
    memcpy(copy, xml, len);
    copy[len] = '\0';
    errno = 0;
    rc = topo_load(SRC_XML_BUFFER, copy, len + 1, &topo, err, errlen);
    if (rc == 0) {
        rc = host_build(topo, sysfs_root, host_p, err, errlen);
        hwloc_topology_destroy(topo);
    }
    free(copy);
    return rc;
}

char *rdt_topo_host_export_xml(char *err, size_t errlen)
{
    hwloc_topology_t topo;
    char *buf = NULL, *copy = NULL;
    int len = 0;

    if (topo_load(SRC_LIVE, NULL, 0, &topo, err, errlen))
        return NULL;
    if (hwloc_topology_export_xmlbuffer(topo, &buf, &len, 0) != 0 || len <= 0) {
        seterr(err, errlen, "hwloc_topology_export_xmlbuffer failed: %s", strerror(errno));
    } else if (!(copy = malloc((size_t)len + 1))) {
        seterr(err, errlen, "out of memory for %d bytes of XML", len);
    } else {
        memcpy(copy, buf, (size_t)len); /* len counts hwloc's final NUL */
        copy[len] = '\0';
    }
    if (buf)
        hwloc_free_xmlbuffer(topo, buf);
    hwloc_topology_destroy(topo);
    return copy;
}

/* ---------------------------------------------------------------------------------------------
 * Placement (the rule in topo.h).
 * ------------------------------------------------------------------------------------------- */

int rdt_topo_host_pick_nic(const rdt_topo_host_t *host, int numa, int local_rank)
{
    int kind, pass, i, n, k;

    if (local_rank < 0)
        local_rank = 0;
    for (kind = RDT_TOPO_NIC_RDMA; kind <= RDT_TOPO_NIC_NET; kind++)
        for (pass = 0; pass < 2; pass++) { /* pass 0: on the NUMA node; pass 1: any */
            if (pass == 0 && numa < 0)
                continue;
            for (n = 0, i = 0; i < host->nnics; i++)
                n += (int)host->nics[i].kind == kind && (pass || host->nics[i].numa == numa);
            if (n == 0)
                continue;
            k = local_rank % n;
            for (i = 0; i < host->nnics; i++)
                if ((int)host->nics[i].kind == kind && (pass || host->nics[i].numa == numa) &&
                    k-- == 0)
                    return i;
        }
    return -1;
}

/* Core (logical index) of local rank l of L: block distribution over the host's cores. */
static int core_of(int l, int L, int ncores)
{
    return (int)((long long)l * ncores / L);
}

int rdt_topo_from_host(const rdt_topo_host_t *host, const char *name, int nranks,
                       rdt_topo_t **topo_p, char *err, size_t errlen)
{
    char(*names)[RDT_TOPO_NAME_MAX];
    rdt_topo_loc_t *loc;
    int l, rc;

    if (!host || nranks < 1 || nranks > RDT_TOPO_MAX_LOCAL) {
        seterr(err, errlen, "bad arguments: %d ranks on one host (1 to %d)", nranks,
               RDT_TOPO_MAX_LOCAL);
        return -1;
    }
    if (!name || !name[0])
        name = host->name[0] ? host->name : "localhost";
    names = calloc((size_t)nranks, sizeof(*names));
    loc = calloc((size_t)nranks, sizeof(*loc));
    if (!names || !loc) {
        free(names);
        free(loc);
        seterr(err, errlen, "out of memory for %d ranks", nranks);
        return -1;
    }
    for (l = 0; l < nranks; l++) {
        snprintf(names[l], sizeof(names[l]), "%.*s", (int)sizeof(names[l]) - 1, name);
        loc[l].nnuma = host->nnuma;
        loc[l].numa = host->core_numa[core_of(l, nranks, host->ncores)];
        loc[l].nnics = host->nnics;
        loc[l].nic = rdt_topo_host_pick_nic(host, loc[l].numa, l);
    }
    rc = rdt_topo_from_hosts(nranks, names[0], sizeof(names[0]), loc, topo_p, err, errlen);
    free(names);
    free(loc);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * This process.
 * ------------------------------------------------------------------------------------------- */

/* Where this thread runs on the loaded topology `topo`, whose plain-data copy is `h`. */
static int probe_on(hwloc_topology_t topo, const rdt_topo_host_t *h, int local_rank,
                    rdt_topo_probe_t *probe_p, char *err, size_t errlen)
{
    rdt_topo_probe_t p;
    hwloc_bitmap_t bind = hwloc_bitmap_alloc(), last = hwloc_bitmap_alloc();
    int rc = -1;

    if (!bind || !last) {
        seterr(err, errlen, "out of memory for a CPU set");
        goto out;
    }
    memset(&p, 0, sizeof(p));
    p.npackages = h->npackages;
    p.ncores = h->ncores;
    p.npus = h->npus;
    p.loc.nnuma = h->nnuma;
    p.loc.nnics = h->nnics;
    p.loc.numa = -1;
    p.cpu = -1;
    p.nic_numa = -1;
    if (hwloc_get_last_cpu_location(topo, last, HWLOC_CPUBIND_THREAD) == 0 &&
        !hwloc_bitmap_iszero(last))
        p.cpu = hwloc_bitmap_first(last);
    if (hwloc_get_cpubind(topo, bind, HWLOC_CPUBIND_THREAD) == 0 && !hwloc_bitmap_iszero(bind)) {
        hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo);
        p.bound = !hwloc_bitmap_isincluded(all, bind);
        p.loc.numa = numa_containing(topo, bind);
    }
    if (p.loc.numa < 0 && p.cpu >= 0)
        p.loc.numa = numa_containing(topo, last);
    p.loc.nic = rdt_topo_host_pick_nic(h, p.loc.numa, local_rank);
    if (p.loc.nic >= 0) {
        const rdt_topo_nic_t *nic = &h->nics[p.loc.nic];
        snprintf(p.nic_name, sizeof(p.nic_name), "%.*s", (int)sizeof(p.nic_name) - 1, nic->name);
        snprintf(p.nic_netdev, sizeof(p.nic_netdev), "%.*s", (int)sizeof(p.nic_netdev) - 1,
                 nic->netdev);
        p.nic_rdma = nic->kind == RDT_TOPO_NIC_RDMA;
        p.nic_numa = nic->numa;
    }
    *probe_p = p;
    rc = 0;
out:
    hwloc_bitmap_free(bind);
    hwloc_bitmap_free(last);
    return rc;
}

int rdt_topo_local_probe(int local_rank, rdt_topo_probe_t *probe_p, char *err, size_t errlen)
{
    hwloc_topology_t topo;
    rdt_topo_host_t *h = NULL;
    int rc = -1;

    if (local_rank < 0) {
        seterr(err, errlen, "bad local rank %d", local_rank);
        return -1;
    }
    if (topo_load(SRC_LIVE, NULL, 0, &topo, err, errlen))
        return -1;
    if (host_build(topo, "/sys", &h, err, errlen) == 0)
        rc = probe_on(topo, h, local_rank, probe_p, err, errlen);
    rdt_topo_host_destroy(h);
    hwloc_topology_destroy(topo);
    return rc;
}

/*
 * The process's loaded topology for rdt_topo_local_probe_cached: loaded on first use, never
 * destroyed (reachable until exit, so not a leak; it also keeps hwloc's plugins loaded). Only
 * read afterwards, which hwloc allows from several threads at once.
 */
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static hwloc_topology_t cache_topo;
static rdt_topo_host_t *cache_host;
static char cache_err[256];

static void cache_init(void)
{
    if (topo_load(SRC_LIVE, NULL, 0, &cache_topo, cache_err, sizeof(cache_err)) != 0) {
        cache_topo = NULL;
        return;
    }
    if (host_build(cache_topo, "/sys", &cache_host, cache_err, sizeof(cache_err)) != 0) {
        hwloc_topology_destroy(cache_topo);
        cache_topo = NULL;
        cache_host = NULL;
    }
}

int rdt_topo_local_probe_cached(int local_rank, rdt_topo_probe_t *probe_p, char *err,
                                size_t errlen)
{
    if (local_rank < 0) {
        seterr(err, errlen, "bad local rank %d", local_rank);
        return -1;
    }
    pthread_once(&cache_once, cache_init);
    if (!cache_topo) {
        seterr(err, errlen, "%s", cache_err[0] ? cache_err : "hwloc discovery failed");
        return -1;
    }
    return probe_on(cache_topo, cache_host, local_rank, probe_p, err, errlen);
}

int rdt_topo_bind_parse(const char *s, rdt_topo_bind_t *mode_p, char *err, size_t errlen)
{
    if (s && (!strcmp(s, "none") || !s[0]))
        *mode_p = RDT_TOPO_BIND_NONE;
    else if (s && !strcmp(s, "numa"))
        *mode_p = RDT_TOPO_BIND_NUMA;
    else if (s && !strcmp(s, "core"))
        *mode_p = RDT_TOPO_BIND_CORE;
    else {
        seterr(err, errlen, "RDT_BIND='%.32s' is not one of none, numa, core", s ? s : "(null)");
        return -1;
    }
    return 0;
}

/*
 * RDT_BIND: local rank l of L gets core l*C/L of the C cores this process may use (so more ranks
 * than cores share them evenly, and consecutive ranks stay on one NUMA node), and numa mode widens
 * that to the core's NUMA node:
 *
 *   C = 4 cores, 2 NUMA nodes, L = 4:   l=0 -> core 0 (node 0)   l=2 -> core 2 (node 1)
 *                                       l=1 -> core 1 (node 0)   l=3 -> core 3 (node 1)
 */
int rdt_topo_bind(rdt_topo_bind_t mode, int local_rank, int local_size, char *msg, size_t msglen)
{
    hwloc_obj_type_t core_type = HWLOC_OBJ_CORE;
    hwloc_topology_t topo;
    hwloc_obj_t core, node = NULL;
    hwloc_const_cpuset_t set;
    char cpus[128];
    int ncores, c, numa;

    if (mode != RDT_TOPO_BIND_NONE && mode != RDT_TOPO_BIND_NUMA && mode != RDT_TOPO_BIND_CORE) {
        seterr(msg, msglen, "bad binding mode %d", (int)mode);
        return -1;
    }
    if (local_size < 1 || local_rank < 0 || local_rank >= local_size) {
        seterr(msg, msglen, "bad local rank %d of %d", local_rank, local_size);
        return -1;
    }
    if (mode == RDT_TOPO_BIND_NONE) {
        seterr(msg, msglen, "none");
        return 0;
    }
    if (topo_load(SRC_LIVE_BOUND, NULL, 0, &topo, msg, msglen))
        return -1;
    ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (ncores < 1) {
        core_type = HWLOC_OBJ_PU;
        ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    }
    c = ncores > 0 ? core_of(local_rank, local_size, ncores) : -1;
    core = c >= 0 ? hwloc_get_obj_by_type(topo, core_type, (unsigned)c) : NULL;
    if (!core || !core->cpuset) {
        seterr(msg, msglen, "cannot bind local rank %d: hwloc found no core to bind to",
               local_rank);
        goto err_destroy;
    }
    set = core->cpuset;
    numa = numa_containing(topo, core->cpuset);
    if (mode == RDT_TOPO_BIND_NUMA) {
        node = numa >= 0 ? hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)numa) : NULL;
        if (!node) {
            seterr(msg, msglen, "cannot bind local rank %d to a NUMA node: core %d lies in none",
                   local_rank, c);
            goto err_destroy;
        }
        set = node->cpuset;
    }
    hwloc_bitmap_list_snprintf(cpus, sizeof(cpus), set);
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) {
        seterr(msg, msglen, "binding local rank %d to cpus %s failed: %s", local_rank, cpus,
               strerror(errno));
        goto err_destroy;
    }
    if (mode == RDT_TOPO_BIND_NUMA)
        seterr(msg, msglen, "numa node %d of %d (cpus %s)", numa,
               hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE), cpus);
    else
        seterr(msg, msglen, "core %d of %d (cpus %s)", c, ncores, cpus);
    hwloc_topology_destroy(topo);
    return 0;
err_destroy:
    hwloc_topology_destroy(topo);
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Writers.
 * ------------------------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\u%04x", c);
    }
    fputc('"', f);
}

static const char *kind_str(rdt_topo_nic_kind_t k)
{
    return k == RDT_TOPO_NIC_RDMA ? "rdma" : "net";
}

int rdt_topo_host_write_text(const rdt_topo_host_t *h, FILE *f)
{
    int i;

    fprintf(f, "host %s: %d package%s, %d NUMA node%s, %d core%s, %d hardware thread%s\n",
            h->name[0] ? h->name : "(unnamed)", h->npackages, h->npackages == 1 ? "" : "s",
            h->nnuma, h->nnuma == 1 ? "" : "s", h->ncores, h->ncores == 1 ? "" : "s", h->npus,
            h->npus == 1 ? "" : "s");
    for (i = 0; i < h->nnuma; i++)
        fprintf(f, "  numa %d: %d core%s\n", i, h->numa_ncores[i],
                h->numa_ncores[i] == 1 ? "" : "s");
    if (h->nnics == 0)
        fprintf(f, "  no NIC found (no RDMA device, no network interface on PCI)\n");
    for (i = 0; i < h->nnics; i++) {
        const rdt_topo_nic_t *n = &h->nics[i];
        fprintf(f, "  nic %d: %s %s", i, kind_str(n->kind), n->name);
        if (n->kind == RDT_TOPO_NIC_RDMA)
            fprintf(f, ", netdev %s", n->netdev[0] ? n->netdev : "unknown");
        fprintf(f, ", pci %s", n->pci_busid[0] ? n->pci_busid : "none");
        if (n->is_virtual)
            fprintf(f, " (virtual)");
        if (n->numa >= 0)
            fprintf(f, ", numa %d\n", n->numa);
        else
            fprintf(f, ", numa unknown\n");
    }
    return ferror(f) ? -1 : 0;
}

int rdt_topo_host_write_json(const rdt_topo_host_t *h, FILE *f, int ind)
{
    int i;

    fprintf(f, "{\n%*s\"name\": ", ind + 2, "");
    json_str(f, h->name);
    fprintf(f,
            ",\n%*s\"packages\": %d,\n%*s\"numa_nodes\": %d,\n%*s\"cores\": %d,\n"
            "%*s\"hardware_threads\": %d,\n%*s\"numa_cores\": [",
            ind + 2, "", h->npackages, ind + 2, "", h->nnuma, ind + 2, "", h->ncores, ind + 2, "",
            h->npus, ind + 2, "");
    for (i = 0; i < h->nnuma; i++)
        fprintf(f, "%s%d", i ? ", " : "", h->numa_ncores[i]);
    fprintf(f, "],\n%*s\"nics\": [%s", ind + 2, "", h->nnics ? "\n" : "");
    for (i = 0; i < h->nnics; i++) {
        const rdt_topo_nic_t *n = &h->nics[i];
        fprintf(f, "%*s{\"kind\": \"%s\", \"name\": ", ind + 4, "", kind_str(n->kind));
        json_str(f, n->name);
        fprintf(f, ", \"netdev\": ");
        json_str(f, n->netdev);
        fprintf(f, ", \"pci\": ");
        json_str(f, n->pci_busid);
        fprintf(f, ", \"virtual\": %s, \"numa\": %d}%s\n", n->is_virtual ? "true" : "false",
                n->numa, i + 1 < h->nnics ? "," : "");
    }
    fprintf(f, "%*s]\n%*s}", h->nnics ? ind + 2 : 0, "", ind, "");
    return ferror(f) ? -1 : 0;
}

int rdt_topo_probe_write_json(const rdt_topo_probe_t *p, FILE *f, int ind)
{
    fprintf(f,
            "{\n%*s\"cpu\": %d,\n%*s\"bound\": %s,\n%*s\"numa\": %d,\n%*s\"numa_nodes\": %d,\n"
            "%*s\"nic\": %d,\n%*s\"nic_name\": ",
            ind + 2, "", p->cpu, ind + 2, "", p->bound ? "true" : "false", ind + 2, "", p->loc.numa,
            ind + 2, "", p->loc.nnuma, ind + 2, "", p->loc.nic, ind + 2, "");
    json_str(f, p->nic_name);
    fprintf(f, ",\n%*s\"nic_netdev\": ", ind + 2, "");
    json_str(f, p->nic_netdev);
    fprintf(f, ",\n%*s\"nic_kind\": \"%s\",\n%*s\"nic_numa\": %d\n%*s}", ind + 2, "",
            p->loc.nic < 0 ? "none" : p->nic_rdma ? "rdma" : "net", ind + 2, "", p->nic_numa, ind,
            "");
    return ferror(f) ? -1 : 0;
}
