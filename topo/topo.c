/*
 * topo.c - the job topology as plain data: grouping ranks by host identity, the spec and text
 * descriptions, and the text and JSON writers. No hwloc here (topo_hw.c), no I/O but the writers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One allocation holding the structure and every array; ints first, names last. */
static rdt_topo_t *topo_alloc(int nranks, int nhosts)
{
    size_t nints = 5 * (size_t)nranks + 4 * (size_t)nhosts;
    size_t size = sizeof(rdt_topo_t) + nints * sizeof(int) + (size_t)nhosts * RDT_TOPO_NAME_MAX;
    rdt_topo_t *t = calloc(1, size);
    int *p;

    if (!t)
        return NULL;
    p = (int *)(t + 1);
    t->nranks = nranks;
    t->nhosts = nhosts;
    t->host_of = p, p += nranks;
    t->local_rank = p, p += nranks;
    t->numa_of = p, p += nranks;
    t->nic_of = p, p += nranks;
    t->host_ranks = p, p += nranks;
    t->local_size = p, p += nhosts;
    t->host_first = p, p += nhosts;
    t->nnuma = p, p += nhosts;
    t->nnics = p, p += nhosts;
    t->host_name = (char(*)[RDT_TOPO_NAME_MAX])p;
    return t;
}

void rdt_topo_destroy(rdt_topo_t *topo)
{
    free(topo);
}

/* Once host_of[] is set: local ranks in global rank order, local sizes, host_ranks. */
static void topo_index(rdt_topo_t *t)
{
    int r, h, first = 0;

    for (h = 0; h < t->nhosts; h++)
        t->local_size[h] = 0;
    for (r = 0; r < t->nranks; r++)
        t->local_rank[r] = t->local_size[t->host_of[r]]++;
    t->max_local_size = 0;
    for (h = 0; h < t->nhosts; h++) {
        t->host_first[h] = first;
        first += t->local_size[h];
        if (t->local_size[h] > t->max_local_size)
            t->max_local_size = t->local_size[h];
    }
    for (r = 0; r < t->nranks; r++)
        t->host_ranks[t->host_first[t->host_of[r]] + t->local_rank[r]] = r;
}

/* ---------------------------------------------------------------------------------------------
 * From host identities.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *hosts;
    size_t stride;
} name_table_t;

/* Sort rank indexes by (host name, rank). */
static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const name_table_t *nt = arg;
    int ra = *(const int *)a, rb = *(const int *)b;
    int c = strcmp(nt->hosts + (size_t)ra * nt->stride, nt->hosts + (size_t)rb * nt->stride);

    return c ? c : (ra > rb) - (ra < rb);
}

/* Printable form of a name for an error message (names are checked, not trusted). */
static void name_quote(const char *name, char *out, size_t outlen)
{
    size_t o = 0;

    for (; *name && o + 5 < outlen; name++) {
        unsigned char c = (unsigned char)*name;
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int loc_check(int r, const rdt_topo_loc_t *l, char *err, size_t errlen)
{
    if (l->nnuma < 0 || l->nnuma > RDT_TOPO_MAX_DEV || l->nnics < 0 ||
        l->nnics > RDT_TOPO_MAX_DEV) {
        seterr(err, errlen, "rank %d reports %d NUMA nodes and %d NICs (expected 0 to %d each)", r,
               l->nnuma, l->nnics, RDT_TOPO_MAX_DEV);
        return -1;
    }
    if (l->numa < -1 || l->numa >= (l->nnuma ? l->nnuma : 0)) {
        seterr(err, errlen, "rank %d reports NUMA node %d but its host has %d NUMA nodes%s", r,
               l->numa, l->nnuma, l->nnuma ? "" : " (unknown: the node must be -1)");
        return -1;
    }
    if (l->nic < -1 || l->nic >= (l->nnics ? l->nnics : 0)) {
        seterr(err, errlen, "rank %d reports NIC %d but its host has %d NICs%s", r, l->nic,
               l->nnics, l->nnics ? "" : " (unknown or none: the NIC must be -1)");
        return -1;
    }
    return 0;
}

int rdt_topo_from_hosts(int nranks, const char *hosts, size_t stride, const rdt_topo_loc_t *loc,
                        rdt_topo_t **topo_p, char *err, size_t errlen)
{
    name_table_t nt = {hosts, stride};
    int *idx = NULL, *run_of = NULL, *run_host = NULL;
    int r, i, nruns = 0, nhosts = 0, rc = -1;
    rdt_topo_t *t = NULL;

    if (nranks < 1 || nranks > RDT_TOPO_MAX_RANKS) {
        seterr(err, errlen, "bad rank count %d (1 to %d)", nranks, RDT_TOPO_MAX_RANKS);
        return -1;
    }
    if (!hosts || stride == 0 || stride > RDT_TOPO_NAME_MAX) {
        seterr(err, errlen, "bad host table: %s, stride %zu (1 to %d)", hosts ? "given" : "NULL",
               stride, RDT_TOPO_NAME_MAX);
        return -1;
    }
    for (r = 0; r < nranks; r++) {
        const char *name = hosts + (size_t)r * stride;
        if (!memchr(name, '\0', stride)) {
            seterr(err, errlen, "rank %d: host name is not terminated within %zu bytes", r, stride);
            return -1;
        }
        if (!name[0]) {
            seterr(err, errlen, "rank %d: empty host name", r);
            return -1;
        }
        if (loc && loc_check(r, &loc[r], err, errlen))
            return -1;
    }

    idx = malloc((size_t)nranks * sizeof(int));
    run_of = malloc((size_t)nranks * sizeof(int));
    run_host = malloc((size_t)nranks * sizeof(int));
    if (!idx || !run_of || !run_host) {
        seterr(err, errlen, "out of memory grouping %d ranks by host", nranks);
        goto out;
    }
    for (r = 0; r < nranks; r++)
        idx[r] = r;
    qsort_r(idx, (size_t)nranks, sizeof(int), cmp_by_name, &nt);

    /* runs of equal names are hosts; number them in order of their lowest rank */
    for (i = 0; i < nranks; i++) {
        if (i > 0 && strcmp(hosts + (size_t)idx[i] * stride, hosts + (size_t)idx[i - 1] * stride))
            nruns++;
        run_of[idx[i]] = nruns;
    }
    nruns++;
    for (i = 0; i < nruns; i++)
        run_host[i] = -1;
    for (r = 0; r < nranks; r++)
        if (run_host[run_of[r]] < 0)
            run_host[run_of[r]] = nhosts++;

    t = topo_alloc(nranks, nhosts);
    if (!t) {
        seterr(err, errlen, "out of memory for a topology of %d ranks on %d hosts", nranks, nhosts);
        goto out;
    }
    for (r = 0; r < nranks; r++) {
        int h = run_host[run_of[r]];
        t->host_of[r] = h;
        if (t->host_name[h][0] == '\0') /* its lowest rank: first seen */
            snprintf(t->host_name[h], RDT_TOPO_NAME_MAX, "%s", hosts + (size_t)r * stride);
    }
    topo_index(t);

    for (r = 0; r < nranks; r++) {
        int h = t->host_of[r], r0 = t->host_ranks[t->host_first[h]];
        t->numa_of[r] = loc ? loc[r].numa : -1;
        t->nic_of[r] = loc ? loc[r].nic : -1;
        if (!loc)
            continue;
        if (r == r0) {
            t->nnuma[h] = loc[r].nnuma;
            t->nnics[h] = loc[r].nnics;
        } else if (loc[r].nnuma != t->nnuma[h] || loc[r].nnics != t->nnics[h]) {
            char q[4 * RDT_TOPO_NAME_MAX + 8];
            name_quote(t->host_name[h], q, sizeof(q));
            seterr(err, errlen,
                   "ranks %d and %d both report host '%s' but see %d and %d NUMA nodes, %d and %d "
                   "NICs: two machines with one name? (set RDT_HOSTNAME to tell them apart)",
                   r0, r, q, t->nnuma[h], loc[r].nnuma, t->nnics[h], loc[r].nnics);
            goto out;
        }
    }
    *topo_p = t;
    t = NULL;
    rc = 0;
out:
    rdt_topo_destroy(t);
    free(run_host);
    free(run_of);
    free(idx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Described shapes (spec, text): ranks host by host, NUMA and NIC by block of local ranks.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    char name[RDT_TOPO_NAME_MAX];
    int ranks, numa, nics;
    int line, col; /* where it was described, for duplicate-name errors */
} desc_host_t;

/* local rank l of L onto one of n things (NUMA nodes, NICs), by block; -1 when n is unknown */
static int block_of(int l, int L, int n)
{
    return n > 0 ? (int)((long long)l * n / L) : -1;
}

static rdt_topo_t *topo_from_desc(const desc_host_t *dh, int nhosts, int nranks)
{
    rdt_topo_t *t = topo_alloc(nranks, nhosts);
    int h, l, r = 0;

    if (!t)
        return NULL;
    for (h = 0; h < nhosts; h++) {
        snprintf(t->host_name[h], RDT_TOPO_NAME_MAX, "%s", dh[h].name);
        t->nnuma[h] = dh[h].numa;
        t->nnics[h] = dh[h].nics;
        for (l = 0; l < dh[h].ranks; l++, r++) {
            t->host_of[r] = h;
            t->numa_of[r] = block_of(l, dh[h].ranks, dh[h].numa);
            t->nic_of[r] = block_of(l, dh[h].ranks, dh[h].nics);
        }
    }
    topo_index(t);
    return t;
}

/* Parse digits at s[*i]: 0 and the value (capped above INT_MAX/2 to stay safe), -1 if none. */
static int parse_uint(const char *s, size_t len, size_t *i, long long *v_p)
{
    long long v = 0;
    size_t j = *i;

    if (j >= len || !isdigit((unsigned char)s[j]))
        return -1;
    for (; j < len && isdigit((unsigned char)s[j]); j++)
        if (v < (1LL << 40))
            v = v * 10 + (s[j] - '0');
    *i = j;
    *v_p = v;
    return 0;
}

/* A token's text for a message: up to the next delimiter, printable, at most 32 bytes. */
static void token_quote(const char *s, size_t len, size_t i, const char *delims, char *out,
                        size_t outlen)
{
    size_t o = 0;

    for (; i < len && !strchr(delims, s[i]) && o + 5 < outlen && o < 32; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x21 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

int rdt_topo_from_spec(const char *spec, rdt_topo_t **topo_p, char *err, size_t errlen)
{
    size_t len, i = 0, start;
    long long v, total = 0, numa = 0, nics = 0;
    long long list[256];
    int nlist = 0, h, hx = -1; /* hx: H of "HxR" */
    desc_host_t *dh;
    rdt_topo_t *t;
    char q[160];

    if (!spec || !spec[0]) {
        seterr(err, errlen, "spec:1:1: empty spec (e.g. 8x8, 4,2,3 or 2x4:numa2:nic2)");
        return -1;
    }
    len = strlen(spec);

    /* SHAPE */
    for (;;) {
        start = i;
        if (parse_uint(spec, len, &i, &v)) {
            token_quote(spec, len, i, ",:", q, sizeof(q));
            seterr(err, errlen, "spec:1:%zu: expected a number of %s, got '%s'", i + 1,
                   nlist == 0 && hx < 0 ? "ranks or hosts" : "ranks", q);
            return -1;
        }
        if (v < 1 || v > RDT_TOPO_MAX_LOCAL) {
            seterr(err, errlen, "spec:1:%zu: %lld %s is out of range (1 to %d)", start + 1, v,
                   hx >= 0                       ? "ranks per host"
                   : (i < len && spec[i] == 'x') ? "hosts"
                                                 : "ranks",
                   RDT_TOPO_MAX_LOCAL);
            return -1;
        }
        if (i < len && spec[i] == 'x' && nlist == 0 && hx < 0) {
            hx = (int)v;
            i++;
            continue;
        }
        if (nlist == (int)(sizeof(list) / sizeof(list[0]))) {
            seterr(err, errlen, "spec:1:%zu: more than %d hosts listed (use HxR)", start + 1,
                   nlist);
            return -1;
        }
        list[nlist++] = v;
        if (i < len && spec[i] == ',' && hx < 0) {
            i++;
            continue;
        }
        if (i < len && spec[i] != ':') {
            unsigned char bad = (unsigned char)spec[i];
            if (bad >= 0x20 && bad < 0x7f)
                snprintf(q, sizeof(q), "%c", bad);
            else
                snprintf(q, sizeof(q), "\\x%02x", bad);
            seterr(err, errlen, "spec:1:%zu: expected %s after '%.*s', got '%s'", i + 1,
                   hx >= 0      ? "':' or the end"
                   : nlist == 1 ? "',' 'x' ':' or the end"
                                : "',' ':' or the end",
                   (int)(i - start), spec + start, q);
            return -1;
        }
        break;
    }

    /* OPTIONs */
    while (i < len) {
        const char *key;
        long long *dst;
        size_t klen, kcol;

        i++; /* ':' */
        kcol = i + 1;
        if (!strncmp(spec + i, "numa", 4))
            key = "numa", klen = 4, dst = &numa;
        else if (!strncmp(spec + i, "nics", 4))
            key = "nics", klen = 4, dst = &nics;
        else if (!strncmp(spec + i, "nic", 3))
            key = "nic", klen = 3, dst = &nics;
        else {
            token_quote(spec, len, i, ":", q, sizeof(q));
            seterr(err, errlen, "spec:1:%zu: unknown option '%s' (expected numaN or nicN)", kcol,
                   q);
            return -1;
        }
        if (*dst) {
            seterr(err, errlen, "spec:1:%zu: '%s' given twice", kcol, key);
            return -1;
        }
        i += klen;
        start = i;
        if (parse_uint(spec, len, &i, &v) || v < 1 || v > RDT_TOPO_MAX_DEV ||
            (i < len && spec[i] != ':')) {
            token_quote(spec, len, start, ":", q, sizeof(q));
            seterr(err, errlen, "spec:1:%zu: expected a number from 1 to %d after '%s', got '%s'",
                   start + 1, RDT_TOPO_MAX_DEV, key, q);
            return -1;
        }
        *dst = v;
    }

    if (hx >= 0) {
        total = (long long)hx * list[0];
    } else {
        for (h = 0; h < nlist; h++)
            total += list[h];
    }
    if (total > RDT_TOPO_MAX_RANKS) {
        seterr(err, errlen, "spec:1:1: %lld ranks in all, above the limit of %d", total,
               RDT_TOPO_MAX_RANKS);
        return -1;
    }
    if (hx < 0)
        hx = nlist;
    if (hx < 1 || hx > RDT_TOPO_MAX_RANKS) { /* the shape had a number: tells the compiler */
        seterr(err, errlen, "spec:1:1: %d hosts (1 to %d)", hx, RDT_TOPO_MAX_RANKS);
        return -1;
    }
    dh = calloc((size_t)hx, sizeof(*dh));
    if (!dh) {
        seterr(err, errlen, "out of memory for %d hosts", hx);
        return -1;
    }
    for (h = 0; h < hx; h++) {
        snprintf(dh[h].name, sizeof(dh[h].name), "h%d", h);
        dh[h].ranks = (int)(nlist == 1 ? list[0] : list[h]);
        dh[h].numa = (int)numa;
        dh[h].nics = (int)nics;
    }
    t = topo_from_desc(dh, hx, (int)total);
    free(dh);
    if (!t) {
        seterr(err, errlen, "out of memory for a topology of %lld ranks", total);
        return -1;
    }
    *topo_p = t;
    return 0;
}

/* --- the line-based description -------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len, i; /* text, its length, the cursor */
    size_t bol;    /* offset where the current line begins */
    int line;
    const char *src; /* for messages */
    char *err;
    size_t errlen;
} lexer_t;

static int lx_col(const lexer_t *lx, size_t at)
{
    return (int)(at - lx->bol) + 1;
}

/* Skip blanks and a comment; stop at '\n' or the end. */
static void lx_skip(lexer_t *lx)
{
    while (lx->i < lx->len) {
        char c = lx->s[lx->i];
        if (c == ' ' || c == '\t' || (c == '\r' && lx->i + 1 < lx->len && lx->s[lx->i + 1] == '\n'))
            lx->i++;
        else if (c == '\r' && lx->i + 1 == lx->len)
            lx->i++;
        else if (c == '#')
            while (lx->i < lx->len && lx->s[lx->i] != '\n')
                lx->i++;
        else
            break;
    }
}

static int lx_at_eol(const lexer_t *lx)
{
    return lx->i >= lx->len || lx->s[lx->i] == '\n';
}

/* Skip blanks only: true if a word follows (not the end of the line nor a comment). */
static int lx_word_follows(lexer_t *lx)
{
    while (lx->i < lx->len && (lx->s[lx->i] == ' ' || lx->s[lx->i] == '\t'))
        lx->i++;
    return !lx_at_eol(lx) && lx->s[lx->i] != '#' &&
           !(lx->s[lx->i] == '\r' && (lx->i + 1 == lx->len || lx->s[lx->i + 1] == '\n'));
}

/* The next word: [start, end) up to a blank, '#', a CR ending the line, or the end of line. */
static void lx_word(lexer_t *lx, size_t *start, size_t *end)
{
    *start = lx->i;
    while (lx->i < lx->len && (!lx->s[lx->i] || !strchr(" \t\n#", lx->s[lx->i])) &&
           !(lx->s[lx->i] == '\r' && (lx->i + 1 == lx->len || lx->s[lx->i + 1] == '\n')))
        lx->i++;
    *end = lx->i;
}

static void lx_quote(const lexer_t *lx, size_t start, size_t end, char *out, size_t outlen)
{
    size_t o = 0;

    for (; start < end && o + 5 < outlen && o < 40; start++) {
        unsigned char c = (unsigned char)lx->s[start];
        if (c >= 0x21 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int word_is(const lexer_t *lx, size_t start, size_t end, const char *w)
{
    return end - start == strlen(w) && !memcmp(lx->s + start, w, end - start);
}

static int lx_error(lexer_t *lx, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lx_error(lexer_t *lx, size_t at, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    seterr(lx->err, lx->errlen, "%s:%d:%d: %s", lx->src, lx->line, lx_col(lx, at), what);
    return -1;
}

/* One "host NAME key value ..." line (the cursor at 'host'); appends to *dh. */
static int parse_host_line(lexer_t *lx, desc_host_t *out, const desc_host_t *prev, int nprev)
{
    size_t ws, we, k, hostcol;
    char q[200];
    int p;

    memset(out, 0, sizeof(*out));
    out->ranks = -1;
    lx_word(lx, &ws, &we);
    if (!word_is(lx, ws, we, "host")) {
        lx_quote(lx, ws, we, q, sizeof(q));
        return lx_error(lx, ws, "expected 'host' at the start of a line, got '%s'", q);
    }
    hostcol = ws;
    if (!lx_word_follows(lx))
        return lx_error(lx, lx->i, "expected a host name after 'host'");
    lx_word(lx, &ws, &we);
    for (k = ws; k < we; k++) {
        unsigned char c = (unsigned char)lx->s[k];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_') {
            if (c >= 0x21 && c < 0x7f)
                return lx_error(lx, k, "invalid character '%c' in host name", c);
            return lx_error(lx, k, "invalid byte 0x%02x in host name", c);
        }
    }
    if (we - ws >= RDT_TOPO_NAME_MAX)
        return lx_error(lx, ws, "host name longer than %d characters", RDT_TOPO_NAME_MAX - 1);
    memcpy(out->name, lx->s + ws, we - ws);
    out->line = lx->line;
    out->col = lx_col(lx, ws);
    for (p = 0; p < nprev; p++)
        if (!strcmp(prev[p].name, out->name))
            return lx_error(lx, ws, "duplicate host '%s' (first on line %d)", out->name,
                            prev[p].line);

    for (;;) {
        int *dst, limit;
        const char *key;
        long long v;
        size_t vs, ve, j;

        lx_skip(lx);
        if (lx_at_eol(lx))
            break;
        lx_word(lx, &ws, &we);
        if (word_is(lx, ws, we, "ranks"))
            key = "ranks", dst = &out->ranks, limit = RDT_TOPO_MAX_LOCAL;
        else if (word_is(lx, ws, we, "numa"))
            key = "numa", dst = &out->numa, limit = RDT_TOPO_MAX_DEV;
        else if (word_is(lx, ws, we, "nics"))
            key = "nics", dst = &out->nics, limit = RDT_TOPO_MAX_DEV;
        else {
            lx_quote(lx, ws, we, q, sizeof(q));
            return lx_error(lx, ws, "unknown keyword '%s' (expected ranks, numa or nics)", q);
        }
        if (*dst > 0)
            return lx_error(lx, ws, "'%s' given twice for host '%s'", key, out->name);
        if (!lx_word_follows(lx))
            return lx_error(lx, lx->i, "expected a positive integer after '%s'", key);
        lx_word(lx, &vs, &ve);
        j = vs;
        if (parse_uint(lx->s, ve, &j, &v) || j != ve || v < 1) {
            lx_quote(lx, vs, ve, q, sizeof(q));
            return lx_error(lx, vs, "expected a positive integer after '%s', got '%s'", key, q);
        }
        if (v > limit)
            return lx_error(lx, vs, "%s %lld is above the limit of %d per host", key, v, limit);
        *dst = (int)v;
    }
    if (out->ranks < 0)
        return lx_error(lx, hostcol, "host '%s' has no 'ranks N'", out->name);
    return 0;
}

int rdt_topo_from_text(const char *text, size_t len, const char *source, rdt_topo_t **topo_p,
                       char *err, size_t errlen)
{
    lexer_t lx = {text, len, 0, 0, 1, source ? source : "topology", err, errlen};
    desc_host_t *dh = NULL;
    int nhosts = 0, cap = 0, rc = -1;
    long long total = 0;
    rdt_topo_t *t;

    if (!text && len) {
        seterr(err, errlen, "%s: no text", lx.src);
        return -1;
    }
    while (lx.i <= lx.len) {
        lx_skip(&lx);
        if (!lx_at_eol(&lx)) {
            if (nhosts == cap) {
                desc_host_t *n;
                cap = cap ? 2 * cap : 16;
                n = realloc(dh, (size_t)cap * sizeof(*dh));
                if (!n) {
                    seterr(err, errlen, "%s: out of memory at line %d", lx.src, lx.line);
                    goto out;
                }
                dh = n;
            }
            if (parse_host_line(&lx, &dh[nhosts], dh, nhosts))
                goto out;
            total += dh[nhosts].ranks;
            if (total > RDT_TOPO_MAX_RANKS) {
                seterr(err, errlen, "%s:%d:%d: more than %d ranks in all", lx.src, lx.line,
                       dh[nhosts].col, RDT_TOPO_MAX_RANKS);
                goto out;
            }
            nhosts++;
        }
        if (lx.i >= lx.len)
            break;
        lx.i++; /* '\n' */
        lx.line++;
        lx.bol = lx.i;
    }
    if (nhosts == 0) {
        seterr(err, errlen, "%s: no host described (expected lines 'host NAME ranks N')", lx.src);
        goto out;
    }
    t = topo_from_desc(dh, nhosts, (int)total);
    if (!t) {
        seterr(err, errlen, "%s: out of memory for %lld ranks", lx.src, total);
        goto out;
    }
    *topo_p = t;
    rc = 0;
out:
    free(dh);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Writers.
 * ------------------------------------------------------------------------------------------- */

/* A JSON string: printable ASCII as is (but '"' and '\\'), every other byte as \u00XX. */
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

static void name_print(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x21 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

static void print_val(FILE *f, int v)
{
    if (v < 0)
        fprintf(f, " %3s", "?");
    else
        fprintf(f, " %3d", v);
}

int rdt_topo_write_text(const rdt_topo_t *t, FILE *f)
{
    int h, i, minl = t->nranks;

    for (h = 0; h < t->nhosts; h++)
        if (t->local_size[h] < minl)
            minl = t->local_size[h];
    fprintf(f, "%d rank%s on %d host%s", t->nranks, t->nranks == 1 ? "" : "s", t->nhosts,
            t->nhosts == 1 ? "" : "s");
    if (minl == t->max_local_size)
        fprintf(f, ", %d per host\n", minl);
    else
        fprintf(f, ", %d to %d per host\n", minl, t->max_local_size);
    for (h = 0; h < t->nhosts; h++) {
        const int *ranks = t->host_ranks + t->host_first[h];
        fprintf(f, "host %d ", h);
        name_print(f, t->host_name[h]);
        fprintf(f, ": %d rank%s, ", t->local_size[h], t->local_size[h] == 1 ? "" : "s");
        if (t->nnuma[h])
            fprintf(f, "%d NUMA node%s, ", t->nnuma[h], t->nnuma[h] == 1 ? "" : "s");
        else
            fprintf(f, "NUMA nodes unknown, ");
        if (t->nnics[h])
            fprintf(f, "%d NIC%s\n", t->nnics[h], t->nnics[h] == 1 ? "" : "s");
        else
            fprintf(f, "NICs unknown or none\n");
        fprintf(f, "  rank ");
        for (i = 0; i < t->local_size[h]; i++)
            print_val(f, ranks[i]);
        fprintf(f, "\n  numa ");
        for (i = 0; i < t->local_size[h]; i++)
            print_val(f, t->numa_of[ranks[i]]);
        fprintf(f, "\n  nic  ");
        for (i = 0; i < t->local_size[h]; i++)
            print_val(f, t->nic_of[ranks[i]]);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

int rdt_topo_write_json(const rdt_topo_t *t, FILE *f, int ind)
{
    int h, r, i;

    fprintf(f, "{\n%*s\"nranks\": %d,\n%*s\"nhosts\": %d,\n%*s\"hosts\": [\n", ind + 2, "",
            t->nranks, ind + 2, "", t->nhosts, ind + 2, "");
    for (h = 0; h < t->nhosts; h++) {
        fprintf(f, "%*s{\"name\": ", ind + 4, "");
        json_str(f, t->host_name[h]);
        fprintf(f, ", \"local_size\": %d, \"numa_nodes\": %d, \"nics\": %d, \"ranks\": [",
                t->local_size[h], t->nnuma[h], t->nnics[h]);
        for (i = 0; i < t->local_size[h]; i++)
            fprintf(f, "%s%d", i ? ", " : "", t->host_ranks[t->host_first[h] + i]);
        fprintf(f, "]}%s\n", h + 1 < t->nhosts ? "," : "");
    }
    fprintf(f, "%*s],\n%*s\"ranks\": [\n", ind + 2, "", ind + 2, "");
    for (r = 0; r < t->nranks; r++)
        fprintf(
            f, "%*s{\"rank\": %d, \"host\": %d, \"local_rank\": %d, \"numa\": %d, \"nic\": %d}%s\n",
            ind + 4, "", r, t->host_of[r], t->local_rank[r], t->numa_of[r], t->nic_of[r],
            r + 1 < t->nranks ? "," : "");
    fprintf(f, "%*s]\n%*s}", ind + 2, "", ind, "");
    return ferror(f) ? -1 : 0;
}

/* Run a writer into a malloc'd string. */
static char *to_string(const rdt_topo_t *t, int json)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    int rc;

    if (!f)
        return NULL;
    if (json) {
        rc = rdt_topo_write_json(t, f, 0);
        fputc('\n', f);
    } else {
        rc = rdt_topo_write_text(t, f);
    }
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *rdt_topo_to_text(const rdt_topo_t *topo)
{
    return to_string(topo, 0);
}

char *rdt_topo_to_json(const rdt_topo_t *topo)
{
    return to_string(topo, 1);
}

/* Append to buf (size len, NUL-terminated); what does not fit is dropped. */
static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cat(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strnlen(buf, len);
    va_list ap;

    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* "a/b/c" of one per-host array, the first SUMMARY_HOSTS hosts; 0 (unknown) as "?". */
#define SUMMARY_HOSTS 16
static void cat_per_host(char *buf, size_t len, const rdt_topo_t *t, const int *v, int zero_unknown)
{
    int h;

    for (h = 0; h < t->nhosts && h < SUMMARY_HOSTS; h++) {
        if (zero_unknown && v[h] == 0)
            cat(buf, len, "%s?", h ? "/" : "");
        else
            cat(buf, len, "%s%d", h ? "/" : "", v[h]);
    }
    if (t->nhosts > SUMMARY_HOSTS)
        cat(buf, len, "/...");
}

void rdt_topo_summary(const rdt_topo_t *t, char *buf, size_t len)
{
    int r, numa_known = 0, nic_known = 0;

    if (!buf || len == 0)
        return;
    buf[0] = '\0';
    for (r = 0; r < t->nranks; r++) {
        numa_known += t->numa_of[r] >= 0;
        nic_known += t->nic_of[r] >= 0;
    }
    cat(buf, len, "%d host%s, ranks per host ", t->nhosts, t->nhosts == 1 ? "" : "s");
    cat_per_host(buf, len, t, t->local_size, 0);
    cat(buf, len, ", NUMA nodes per host ");
    cat_per_host(buf, len, t, t->nnuma, 1);
    cat(buf, len, " (node known for %d of %d ranks), NICs per host ", numa_known, t->nranks);
    cat_per_host(buf, len, t, t->nnics, 1);
    cat(buf, len, " (nearest known for %d of %d ranks)", nic_known, t->nranks);
}
