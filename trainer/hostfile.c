/*
 * hostfile.c - see hostfile.h. A hand-written scanner over (pointer, end): every byte is
 * classified, nothing relies on a NUL terminator, and every error names the line and column of
 * the byte where the input stopped matching.
 */
#include "hostfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The scanner's position. `eol` says what the end of a unit is called in errors. */
typedef struct scan {
    const char *p, *end;
    const char *line_start;
    const char *source;
    const char *eol; /* "end of line" (file) or "end of list" (-H) */
    int line;
    char *err;
    size_t errlen;
} scan_t;

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == '@';
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int col_of(const scan_t *s, const char *at)
{
    return (int)(at - s->line_start) + 1;
}

/* "SOURCE:LINE:COL: " + the formatted message. Always returns -1. */
static int __attribute__((format(printf, 3, 4)))
fail_at(scan_t *s, const char *at, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!s->err || s->errlen == 0)
        return -1;
    n = snprintf(s->err, s->errlen, "%s:%d:%d: ", s->source, s->line, col_of(s, at));
    if (n < 0 || (size_t)n >= s->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* End of the current unit: a newline (file) or a comma (list) or the end of input. */
static int at_unit_end(const scan_t *s, const char *q, int list)
{
    return q >= s->end || *q == '\n' || (list && *q == ',');
}

/* One byte, described for an error message: 'x', a space, a tab, byte 0x00. */
static const char *char_desc(char c, char *buf, size_t len)
{
    unsigned char u = (unsigned char)c;

    if (c == ' ')
        return "a space";
    if (c == '\t')
        return "a tab";
    if (u > 0x20 && u < 0x7f)
        snprintf(buf, len, "'%c'", c);
    else
        snprintf(buf, len, "byte 0x%02x", u);
    return buf;
}

/*
 * The word starting at @p at for an error message, quoted: up to the next blank, unit end or
 * '#', at most 40 bytes, unprintable bytes escaped as \xNN. At the unit end: "end of line".
 */
static const char *word_at(const scan_t *s, const char *at, int list, char *buf, size_t len)
{
    size_t o = 0;
    const char *q;

    if (at_unit_end(s, at, list))
        return at < s->end && *at == ',' ? "','" : s->eol;
    if (is_blank(*at))
        return char_desc(*at, buf, len);
    buf[o++] = '\'';
    for (q = at; q < s->end && !is_blank(*q) && *q != '\n' && !(list && *q == ',') &&
                 (q == at || *q != '#') && q - at < 40 && o + 8 < len;
         q++) {
        unsigned char c = (unsigned char)*q;
        if (c >= 0x20 && c < 0x7f && c != '\'')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
    }
    if (q < s->end && !is_blank(*q) && *q != '\n' && !(list && *q == ',') && *q != '#' &&
        o + 5 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/*
 * A positive integer at s->p, digits only, at most RDT_HOST_SLOTS_MAX. @p after names what came
 * before it in errors ("slots=", ":"). Advances s->p past the digits.
 */
static int scan_count(scan_t *s, const char *after, int list, int *out)
{
    const char *q = s->p;
    long v = 0;
    char w[64];

    while (q < s->end && *q >= '0' && *q <= '9') {
        if (v <= RDT_HOST_SLOTS_MAX)
            v = v * 10 + (*q - '0');
        q++;
    }
    /* The number must end at a blank, a comment, or the unit's end: "4x" is not 4. */
    if (q == s->p || v == 0 || !(at_unit_end(s, q, list) || is_blank(*q) || *q == '#'))
        return fail_at(s, s->p, "expected a positive integer after '%s', got %s", after,
                       word_at(s, s->p, list, w, sizeof(w)));
    if (v > RDT_HOST_SLOTS_MAX)
        return fail_at(s, s->p, "%.*s slots is too many for one host (at most %d)",
                       (int)(q - s->p > 20 ? 20 : q - s->p), s->p, RDT_HOST_SLOTS_MAX);
    s->p = q;
    *out = (int)v;
    return 0;
}

static void skip_blanks(scan_t *s)
{
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
}

/* Host name at s->p into @p h; validates characters, length and the optional user@. */
static int scan_name(scan_t *s, int list, rdt_host_t *h)
{
    const char *q = s->p, *at = NULL;
    char w[64];
    size_t n;

    while (q < s->end && is_name_char(*q)) {
        if (*q == '@') {
            if (at)
                return fail_at(s, q, "a host name has at most one '@' (user@host)");
            at = q;
        }
        q++;
    }
    if (q == s->p)
        return fail_at(s, q, "expected a host name, got %s", word_at(s, q, list, w, sizeof(w)));
    if (!(at_unit_end(s, q, list) || is_blank(*q) || (!list && *q == '#') || *q == ':'))
        return fail_at(s, q,
                       "unexpected %s in host name (letters, digits, '.', '-', '_' and "
                       "user@ are allowed)",
                       char_desc(*q, w, sizeof(w)));
    if (at == s->p || at == q - 1)
        return fail_at(s, at == s->p ? at : at + 1, "expected user@host around '@'");
    n = (size_t)(q - s->p);
    if (n > RDT_HOST_NAME_MAX)
        return fail_at(s, s->p, "host name is longer than %d characters", RDT_HOST_NAME_MAX);
    memcpy(h->name, s->p, n);
    h->name[n] = '\0';
    h->line = s->line;
    h->col = col_of(s, s->p);
    h->slots = 1;
    s->p = q;
    return 0;
}

/* 1 if @p key (length @p n) is a known Open MPI keyword: 1 slots, 2 max_slots, 0 unknown. */
static int keyword(const char *key, size_t n)
{
    if (n == 5 && memcmp(key, "slots", 5) == 0)
        return 1;
    if (n == 9 && (memcmp(key, "max_slots", 9) == 0 || memcmp(key, "max-slots", 9) == 0))
        return 2;
    return 0;
}

/* The Open MPI attributes after a host name: `slots=N`, `max_slots=N`, in any order, once each. */
static int scan_attrs(scan_t *s, rdt_host_t *h)
{
    int have_slots = 0, max_slots = 0;
    const char *slots_at = NULL;
    char w[64];

    for (;;) {
        const char *key;
        int kw, v;

        skip_blanks(s);
        if (at_unit_end(s, s->p, 0) || *s->p == '#')
            break;
        key = s->p;
        while (s->p < s->end && ((*s->p >= 'a' && *s->p <= 'z') || *s->p == '_' || *s->p == '-'))
            s->p++;
        kw = keyword(key, (size_t)(s->p - key));
        skip_blanks(s);
        if (!kw || s->p >= s->end || *s->p != '=') {
            s->p = key;
            return fail_at(s, key, "expected 'slots=N' or end of line, got %s",
                           word_at(s, key, 0, w, sizeof(w)));
        }
        if ((kw == 1 && have_slots) || (kw == 2 && max_slots))
            return fail_at(s, key, "'%s' is given twice for host '%s'",
                           kw == 1 ? "slots" : "max_slots", h->name);
        s->p++;
        skip_blanks(s);
        if (scan_count(s, kw == 1 ? "slots=" : "max_slots=", 0, &v))
            return -1;
        if (kw == 1) {
            have_slots = 1;
            h->slots = v;
            slots_at = key;
        } else {
            max_slots = v;
        }
    }
    if (max_slots && max_slots < h->slots)
        return fail_at(s, slots_at, "slots=%d is more than max_slots=%d", h->slots, max_slots);
    return 0;
}

/* Text after a name's "user@", for comparisons. */
static const char *host_part(const char *name)
{
    const char *at = strchr(name, '@');
    return at ? at + 1 : name;
}

/* 1 if @p s is a dotted quad 127.a.b.c with every part 0-255. */
static int is_loopback_v4(const char *s)
{
    int part = 0, digits = 0, val = 0;

    if (strncmp(s, "127.", 4) != 0)
        return 0;
    for (s += 4;; s++) {
        if (*s >= '0' && *s <= '9') {
            val = val * 10 + (*s - '0');
            if (++digits > 3 || val > 255)
                return 0;
        } else if (*s == '.' || *s == '\0') {
            if (!digits)
                return 0;
            part++;
            digits = val = 0;
            if (*s == '\0')
                return part == 3;
        } else {
            return 0;
        }
    }
}

/* Equal ignoring case, where a name without a domain matches the same name with one. */
static int same_machine_name(const char *a, const char *b)
{
    size_t la = strcspn(a, "."), lb = strcspn(b, ".");

    if (strcasecmp(a, b) == 0)
        return 1;
    if (a[la] && b[lb]) /* both qualified and different */
        return 0;
    return la == lb && strncasecmp(a, b, la) == 0 && !is_loopback_v4(a) &&
           !(a[0] >= '0' && a[0] <= '9');
}

int rdt_host_is_local(const char *name, const char *const *self_names)
{
    const char *h = host_part(name);

    if (strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.localdomain") == 0 ||
        is_loopback_v4(h))
        return 1;
    for (; self_names && *self_names; self_names++)
        if (**self_names && same_machine_name(h, *self_names))
            return 1;
    return 0;
}

/* Refuse @p h if an earlier host is the same (same name, or both this machine). */
static int check_duplicate(scan_t *s, const rdt_hostlist_t *l, const rdt_host_t *h)
{
    int i;

    for (i = 0; i < l->nhosts; i++) {
        const rdt_host_t *o = &l->hosts[i];
        if (strcasecmp(host_part(o->name), host_part(h->name)) == 0) {
            return fail_at(s, s->line_start + h->col - 1,
                           "host '%s' is listed twice (first at %d:%d)", h->name, o->line, o->col);
        }
        if (o->local && h->local)
            return fail_at(s, s->line_start + h->col - 1,
                           "host '%s' is this machine, already listed as '%s' at %d:%d", h->name,
                           o->name, o->line, o->col);
    }
    return 0;
}

static int list_append(scan_t *s, rdt_hostlist_t *l, const rdt_host_t *h, int *cap)
{
    if (l->nhosts == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        rdt_host_t *n = realloc(l->hosts, (size_t)ncap * sizeof(*n));
        if (!n) {
            snprintf(s->err, s->errlen, "%s: out of memory", s->source);
            return -1;
        }
        l->hosts = n;
        *cap = ncap;
    }
    l->hosts[l->nhosts++] = *h;
    l->total_slots += h->slots;
    return 0;
}

/*
 * The shared loop. File mode: one host per line, either `name:N` or `name [attrs]`, comments and
 * blank lines skipped. List mode: comma-separated `name` or `name:N`, nothing else.
 */
static int parse(scan_t *s, int list, const char *const *self_names, rdt_hostlist_t *list_p)
{
    rdt_hostlist_t l = {0};
    int cap = 0;
    char w[64];

    s->line = 1;
    s->line_start = s->p;
    for (;;) {
        rdt_host_t h;

        memset(&h, 0, sizeof(h));
        if (!list) {
            skip_blanks(s);
            if (s->p >= s->end)
                break;
            if (*s->p == '\n' || *s->p == '#') {
                while (s->p < s->end && *s->p != '\n')
                    s->p++;
                if (s->p < s->end) {
                    s->p++;
                    s->line++;
                    s->line_start = s->p;
                }
                continue;
            }
        }
        if (scan_name(s, list, &h))
            goto err_free;
        h.local = rdt_host_is_local(h.name, self_names);
        if (s->p < s->end && *s->p == ':') {
            s->p++;
            if (scan_count(s, ":", list, &h.slots))
                goto err_free;
            if (!list) {
                skip_blanks(s);
                if (!at_unit_end(s, s->p, 0) && *s->p != '#') {
                    fail_at(s, s->p, "expected end of line after '%s:%d', got %s", h.name, h.slots,
                            word_at(s, s->p, 0, w, sizeof(w)));
                    goto err_free;
                }
            }
        } else if (!list) {
            if (scan_attrs(s, &h))
                goto err_free;
        }
        if (list && !at_unit_end(s, s->p, 1)) {
            fail_at(s, s->p, "expected ',' or ':N' after host '%s', got %s", h.name,
                    word_at(s, s->p, 1, w, sizeof(w)));
            goto err_free;
        }
        if (check_duplicate(s, &l, &h) || list_append(s, &l, &h, &cap))
            goto err_free;
        if (list) {
            if (s->p >= s->end)
                break;
            s->p++; /* the comma; a trailing one fails on the next name */
        } else {
            while (s->p < s->end && *s->p != '\n') /* the comment, if any */
                s->p++;
        }
    }
    if (l.nhosts == 0) {
        fail_at(s, s->p, "expected at least one host, got %s",
                s->end == s->p && s->line == 1 && s->p == s->line_start
                    ? "an empty file"
                    : "only comments and blank lines");
        goto err_free;
    }
    *list_p = l;
    return 0;

err_free:
    free(l.hosts);
    return -1;
}

int rdt_hostlist_parse_file(const char *text, size_t len, const char *source,
                            const char *const *self_names, rdt_hostlist_t *list_p, char *err,
                            size_t errlen)
{
    scan_t s = {.p = text,
                .end = text + len,
                .source = source ? source : "hostfile",
                .eol = "end of line",
                .err = err,
                .errlen = errlen};

    if (!text && len) {
        if (err && errlen)
            snprintf(err, errlen, "%s: no text", s.source);
        return -1;
    }
    if (!text)
        s.p = s.end = "";
    return parse(&s, 0, self_names, list_p);
}

int rdt_hostlist_parse_inline(const char *spec, const char *const *self_names,
                              rdt_hostlist_t *list_p, char *err, size_t errlen)
{
    scan_t s = {
        .p = spec ? spec : "", .source = "-H", .eol = "end of list", .err = err, .errlen = errlen};

    s.end = s.p + strlen(s.p);
    if (s.p == s.end) {
        s.line = 1;
        s.line_start = s.p;
        return fail_at(&s, s.p, "expected a host list such as 'node1:2,node2:2', got nothing");
    }
    return parse(&s, 1, self_names, list_p);
}

int rdt_hostlist_local(int slots, rdt_hostlist_t *list_p, char *err, size_t errlen)
{
    rdt_host_t *h;

    if (slots < 1 || slots > RDT_JOB_RANKS_MAX) {
        snprintf(err, errlen, "-np must be from 1 to %d, got %d", RDT_JOB_RANKS_MAX, slots);
        return -1;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(h->name, sizeof(h->name), "localhost");
    h->slots = slots;
    h->local = 1;
    list_p->hosts = h;
    list_p->nhosts = 1;
    list_p->total_slots = slots;
    return 0;
}

void rdt_hostlist_fini(rdt_hostlist_t *list)
{
    if (!list)
        return;
    free(list->hosts);
    list->hosts = NULL;
    list->nhosts = 0;
    list->total_slots = 0;
}

int rdt_hostlist_place(const rdt_hostlist_t *list, int np, int oversubscribe, const char *source,
                       rdt_rank_place_t *place, char *err, size_t errlen)
{
    int64_t extra;
    int h, r = 0;

    if (np < 1 || np > RDT_JOB_RANKS_MAX) {
        snprintf(err, errlen, "-np must be from 1 to %d, got %d", RDT_JOB_RANKS_MAX, np);
        return -1;
    }
    if (!list || list->nhosts < 1) {
        snprintf(err, errlen, "no hosts to place %d ranks on", np);
        return -1;
    }
    extra = np - list->total_slots;
    if (extra > 0 && !oversubscribe) {
        snprintf(err, errlen,
                 "-np %d is more than the %lld slot%s of %s (%d host%s); list more slots, lower "
                 "-np, or pass --oversubscribe",
                 np, (long long)list->total_slots, list->total_slots == 1 ? "" : "s",
                 source ? source : "the host list", list->nhosts, list->nhosts == 1 ? "" : "s");
        return -1;
    }
    for (h = 0; h < list->nhosts && r < np; h++) {
        int64_t n = list->hosts[h].slots, i;
        if (extra > 0) /* spread evenly: the first (extra % nhosts) hosts take one more */
            n += extra / list->nhosts + (h < extra % list->nhosts);
        for (i = 0; i < n && r < np; i++, r++) {
            place[r].host = h;
            place[r].local_rank = (int)i;
        }
    }
    return 0;
}
