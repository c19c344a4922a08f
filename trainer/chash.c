/*
 * chash.c - see chash.h. The ring is a sorted array of points; a key is owned by the first
 * point whose hash is at or after the key's hash, and past the last point it wraps to the
 * first:
 *
 *        points[0]     points[1]            points[n-1]
 *   0 ------+-------------+--------  ...  -------+---------- 2^64-1
 *      keys here ->[0]   (.. ->[1]]        (.. ->[n-1]]   keys here -> [0] (wrap)
 */
#include "chash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHASH_VNODES_MAX (1 << 16)

/*
 * FNV-1a alone mixes its last bytes poorly ("server:1#10" and "server:1#11" land close on the
 * ring), so murmur3's 64-bit finaliser spreads every input bit over the whole word.
 */
uint64_t rdt_chash_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t rdt_chash_key(const char *key)
{
    return rdt_chash_hash(key, strlen(key));
}

static int point_cmp(const void *a, const void *b)
{
    const rdt_chash_point_t *x = a, *y = b;

    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->server > y->server) - (x->server < y->server);
}

int rdt_chash_init(rdt_chash_t *c, const int *server_ids, int nservers, int vnodes)
{
    rdt_chash_point_t *pts;
    size_t n, k = 0;
    int s, t, j;

    if (!c || !server_ids || nservers < 1 || vnodes < 1 || vnodes > CHASH_VNODES_MAX)
        return -1;
    for (s = 0; s < nservers; s++)
        for (t = s + 1; t < nservers; t++)
            if (server_ids[s] == server_ids[t])
                return -1;
    if ((size_t)nservers > SIZE_MAX / sizeof(*pts) / (size_t)vnodes)
        return -1;
    n = (size_t)nservers * (size_t)vnodes;
    pts = malloc(n * sizeof(*pts));
    if (!pts)
        return -1;
    for (s = 0; s < nservers; s++) {
        for (j = 0; j < vnodes; j++) {
            char name[48];
            int len = snprintf(name, sizeof(name), "server:%d#%d", server_ids[s], j);
            pts[k].hash = rdt_chash_hash(name, (size_t)len);
            pts[k++].server = server_ids[s];
        }
    }
    qsort(pts, n, sizeof(*pts), point_cmp);
    c->nservers = nservers;
    c->vnodes = vnodes;
    c->npoints = n;
    c->points = pts;
    return 0;
}

/* Binary search for the first point with hash >= key_hash; none means the wrap to points[0]. */
int rdt_chash_lookup(const rdt_chash_t *c, uint64_t key_hash)
{
    size_t lo = 0, hi;

    if (!c || c->npoints == 0)
        return -1;
    hi = c->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->points[mid].hash < key_hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->points[lo == c->npoints ? 0 : lo].server;
}

void rdt_chash_free(rdt_chash_t *c)
{
    if (!c)
        return;
    free(c->points);
    c->points = NULL;
    c->npoints = 0;
    c->nservers = 0;
    c->vnodes = 0;
}
