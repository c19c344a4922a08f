/*
 * mapped.c - rdt_mem_alloc: memory the other ranks of this host can map, and the mappings of
 * theirs.
 *
 * An allocation is one memfd (named "rdt-mem.<serial>", never in /dev/shm), mapped shared here
 * and kept open: a rank of the same host maps it by opening /proc/<pid>/fd/<fd> (same uid, the
 * ptrace access check, as for the shm transport's segments) and checks it opened the right file
 * (the link names the serial; the size matches) before mapping it. That lets a collective read
 * and write its peers' buffers in place: exec.c's direct collectives (one pass over the data per
 * rank instead of a copy through a ring or process_vm_readv). Malloc'd memory cannot be mapped by
 * another process on a kernel without xpmem; hence an allocator, as MPI_Alloc_mem or ncclMemAlloc.
 *
 * The registry of this process's allocations is a short list under a mutex, searched once per
 * large collective. A peer's mappings are cached per communicator (rank, serial) and kept until
 * the communicator is destroyed or the cache is full (the least recently used goes, never one the
 * call in progress uses); a freed
 * allocation stays mapped by the peers that cached it until then (its pages live as long as a
 * mapping does), which is the price of not asking the owner on every call.
 */
#include "mapped.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm.h"
#include "log.h"

#define MAPPED_NAME "rdt-mem"
#define MAPPED_CACHE_MAX 64 /* peers' allocations kept mapped per communicator, beyond the
                             * ones the call in progress uses (never unmapped during it) */

typedef struct mapped_alloc {
    unsigned char *base;
    size_t size;
    int fd;
    uint64_t serial;
    struct mapped_alloc *next;
} mapped_alloc_t;

static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;
static mapped_alloc_t *mapped_list;
static uint64_t mapped_serial;

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

rdt_status_t rdt_mem_alloc(size_t bytes, void **ptr_p)
{
    char name[48];
    mapped_alloc_t *a;
    size_t size;
    uint64_t serial;

    if (!ptr_p) {
        rdt_set_thread_error("rdt_mem_alloc: ptr_p is NULL");
        return RDT_ERR_INVALID_ARG;
    }
    *ptr_p = NULL;
    if (!bytes || bytes > ((size_t)1 << 48)) {
        rdt_set_thread_error("rdt_mem_alloc: %zu bytes is not a size it allocates (1 byte to "
                             "256 TiB)", bytes);
        return RDT_ERR_INVALID_ARG;
    }
    size = page_round(bytes);
    a = calloc(1, sizeof(*a));
    if (!a) {
        rdt_set_thread_error("rdt_mem_alloc: out of memory");
        return RDT_ERR_NO_MEMORY;
    }
    pthread_mutex_lock(&mapped_lock);
    serial = ++mapped_serial;
    pthread_mutex_unlock(&mapped_lock);
    snprintf(name, sizeof(name), MAPPED_NAME ".%" PRIu64, serial);
    a->fd = memfd_create(name, MFD_CLOEXEC);
    if (a->fd < 0 || ftruncate(a->fd, (off_t)size) != 0) {
        int e = errno;
        rdt_set_thread_error("rdt_mem_alloc of %zu bytes: %s failed: %s", bytes,
                             a->fd < 0 ? "memfd_create" : "ftruncate", strerror(e));
        if (a->fd >= 0)
            close(a->fd);
        free(a);
        return e == ENOMEM || e == ENOSPC ? RDT_ERR_NO_MEMORY : RDT_ERR_SYSTEM;
    }
    a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
    if (a->base == MAP_FAILED) {
        int e = errno;
        rdt_set_thread_error("rdt_mem_alloc of %zu bytes: mmap failed: %s", bytes, strerror(e));
        close(a->fd);
        free(a);
        return e == ENOMEM ? RDT_ERR_NO_MEMORY : RDT_ERR_SYSTEM;
    }
    a->size = size;
    a->serial = serial;
    pthread_mutex_lock(&mapped_lock);
    a->next = mapped_list;
    mapped_list = a;
    pthread_mutex_unlock(&mapped_lock);
    *ptr_p = a->base;
    return RDT_SUCCESS;
}

rdt_status_t rdt_mem_free(void *ptr)
{
    mapped_alloc_t **pp, *a = NULL;

    if (!ptr)
        return RDT_SUCCESS;
    pthread_mutex_lock(&mapped_lock);
    for (pp = &mapped_list; *pp; pp = &(*pp)->next)
        if ((*pp)->base == ptr) {
            a = *pp;
            *pp = a->next;
            break;
        }
    pthread_mutex_unlock(&mapped_lock);
    if (!a) {
        rdt_set_thread_error("rdt_mem_free: %p was not returned by rdt_mem_alloc (or was freed "
                             "already)", ptr);
        return RDT_ERR_INVALID_ARG;
    }
    munmap(a->base, a->size);
    close(a->fd);
    free(a);
    return RDT_SUCCESS;
}

int rdt_mapped_find(const void *buf, size_t len, rdt_mapped_desc_t *d)
{
    const unsigned char *p = buf;
    mapped_alloc_t *a;
    int found = 0;

    memset(d, 0, sizeof(*d));
    if (!p)
        return 0;
    pthread_mutex_lock(&mapped_lock);
    for (a = mapped_list; a; a = a->next)
        if (p >= a->base && len <= a->size && (size_t)(p - a->base) <= a->size - len) {
            d->serial = a->serial;
            d->size = a->size;
            d->offset = (uint64_t)(p - a->base);
            d->pid = (int32_t)getpid();
            d->fd = a->fd;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&mapped_lock);
    return found;
}

/* ------------------------------------------------------------------------------------------ */
/* Peers' allocations                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct mapped_entry {
    int rank;
    uint64_t serial;
    unsigned char *base;
    size_t size;
    uint64_t used; /* cache clock at the last use */
} mapped_entry_t;

struct rdt_mapped_cache {
    mapped_entry_t *e;
    int n, cap;
    uint64_t clock; /* one tick per call (rdt_mapped_call) */
};

/* Open and check the allocation @p d names; its base here, or NULL with @p err set. */
static unsigned char *map_peer(const rdt_mapped_desc_t *d, char *err, size_t errlen)
{
    char path[64], link[128], want[64];
    struct stat sb;
    unsigned char *base;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)d->pid, (int)d->fd);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    /* "/memfd:rdt-mem.<serial> (deleted)": the file the peer meant, not a descriptor reused */
    n = readlink(path, link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = '\0';
    snprintf(want, sizeof(want), "/memfd:" MAPPED_NAME ".%" PRIu64 " ", d->serial);
    if (fstat(fd, &sb) != 0 || strncmp(link, want, strlen(want)) != 0 ||
        (uint64_t)sb.st_size != d->size) {
        snprintf(err, errlen, "%s is not the allocation it announced (%s, %" PRIu64 " bytes; "
                 "found %s, %lld bytes): was it freed during the call?", path, want, d->size,
                 link, (long long)sb.st_size);
        close(fd);
        return NULL;
    }
    base = mmap(NULL, (size_t)d->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "mmap of %s (%" PRIu64 " bytes) failed: %s", path, d->size,
                 strerror(errno));
        return NULL;
    }
    return base;
}

unsigned char *rdt_mapped_peer(rdt_mapped_cache_t **cache_p, int rank, const rdt_mapped_desc_t *d,
                               char *err, size_t errlen)
{
    rdt_mapped_cache_t *c = *cache_p;
    mapped_entry_t *e = NULL;
    unsigned char *base;
    int i;

    if (!c) {
        snprintf(err, errlen, "no call in progress (internal)");
        return NULL;
    }
    for (i = 0; i < c->n; i++)
        if (c->e[i].rank == rank && c->e[i].serial == d->serial) {
            e = &c->e[i];
            break;
        }
    if (!e) {
        base = map_peer(d, err, errlen);
        if (!base)
            return NULL;
        if (c->n >= MAPPED_CACHE_MAX) { /* the least recently used goes, unless this call's */
            e = &c->e[0];
            for (i = 1; i < c->n; i++)
                if (c->e[i].used < e->used)
                    e = &c->e[i];
            if (e->used == c->clock)
                e = NULL;
            else
                munmap(e->base, e->size);
        }
        if (!e && c->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 16;
            mapped_entry_t *ne = realloc(c->e, (size_t)cap * sizeof(*ne));
            if (!ne) {
                munmap(base, (size_t)d->size);
                snprintf(err, errlen, "out of memory");
                return NULL;
            }
            c->e = ne;
            c->cap = cap;
        }
        if (!e)
            e = &c->e[c->n++];
        e->rank = rank;
        e->serial = d->serial;
        e->base = base;
        e->size = (size_t)d->size;
        rdt_debug("mapped", "mapped rank %d's allocation %" PRIu64 " (%zu bytes)", rank,
                  d->serial, e->size);
    }
    if (d->offset > e->size) {
        snprintf(err, errlen, "offset %" PRIu64 " beyond its allocation of %zu bytes", d->offset,
                 e->size);
        return NULL;
    }
    e->used = c->clock;
    return e->base + d->offset;
}

int rdt_mapped_call(rdt_mapped_cache_t **cache_p)
{
    if (!*cache_p && !(*cache_p = calloc(1, sizeof(**cache_p))))
        return -1;
    (*cache_p)->clock++;
    return 0;
}

void rdt_mapped_cache_free(rdt_mapped_cache_t *c)
{
    int i;

    if (!c)
        return;
    for (i = 0; i < c->n; i++)
        munmap(c->e[i].base, c->e[i].size);
    free(c->e);
    free(c);
}
