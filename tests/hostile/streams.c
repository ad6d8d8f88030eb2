/* Hand-made stream behaviours the published fidius crates never produce
 * (their `next` only yields items, the end, -1, -2 or -4), ABI 500,
 * PluginAllocated, plugin "BadStreams":
 *  0 midway_error:  items 0 and 1 (u64), then STATUS_PLUGIN_ERROR (-3) with a
 *                   bincode PluginError {MIDWAY, "failed after 2 items", Some("{\"at\":2}")}
 *  1 never_fits:    asks for a bigger buffer on every try (-1)
 *  2 overclaims:    says OK with more bytes than the buffer holds
 *  3 odd_status:    one item, then status 9
 *  4 null_handle:   init says OK but returns no handle
 * Each handle's drop_fn counts into DROPS, read by method 5 (unary: u64). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"

struct stream_handle {
    int32_t (*next)(struct stream_handle *, uint8_t *, uint32_t, uint32_t *);
    void (*drop_fn)(struct stream_handle *);
    void *state;
};

typedef int32_t (*method_fn)(void *, const uint8_t *, uint32_t, uint8_t **, uint32_t *);

static uint64_t DROPS;

static void free_buffer(uint8_t *p, size_t len) { (void)len; free(p); }
static int instance_token;
static void *construct(const uint8_t *c, uint32_t n) { (void)c; (void)n; return &instance_token; }
static void destroy(void *p) { (void)p; }

static void drop_handle(struct stream_handle *h) {
    __atomic_add_fetch(&DROPS, 1, __ATOMIC_SEQ_CST);
    free(h->state);
    free(h);
}

static size_t put_string(uint8_t *at, const char *s) {
    uint64_t n = strlen(s);
    memcpy(at, &n, 8);
    memcpy(at + 8, s, n);
    return 8 + n;
}

static int32_t midway_next(struct stream_handle *h, uint8_t *buf, uint32_t cap, uint32_t *out_len) {
    uint64_t *i = h->state;
    if (*i < 2) {
        if (cap < 8) { *out_len = 8; return -1; }
        memcpy(buf, i, 8);
        *out_len = 8;
        (*i)++;
        return 0;
    }
    uint8_t err[128];
    size_t n = put_string(err, "MIDWAY");
    n += put_string(err + n, "failed after 2 items");
    err[n++] = 1;
    n += put_string(err + n, "{\"at\":2}");
    if (cap < n) { *out_len = (uint32_t)n; return -1; }
    memcpy(buf, err, n);
    *out_len = (uint32_t)n;
    return -3;
}

static int32_t never_fits_next(struct stream_handle *h, uint8_t *buf, uint32_t cap, uint32_t *out_len) {
    (void)h; (void)buf;
    *out_len = cap + 16;
    return -1;
}

static int32_t overclaims_next(struct stream_handle *h, uint8_t *buf, uint32_t cap, uint32_t *out_len) {
    (void)h; (void)buf;
    *out_len = cap + 1;
    return 0;
}

static int32_t odd_next(struct stream_handle *h, uint8_t *buf, uint32_t cap, uint32_t *out_len) {
    uint64_t *i = h->state;
    if (*i == 0 && cap >= 8) {
        memcpy(buf, i, 8);
        *out_len = 8;
        (*i)++;
        return 0;
    }
    return 9;
}

static int32_t start(int32_t (*next)(struct stream_handle *, uint8_t *, uint32_t, uint32_t *), uint8_t **out, uint32_t *out_len) {
    struct stream_handle *h = malloc(sizeof *h);
    h->next = next;
    h->drop_fn = drop_handle;
    h->state = calloc(1, 8);
    *out = (uint8_t *)h;
    *out_len = 0;
    return 0;
}

#define INIT(name, next_fn) \
    static int32_t name(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) { \
        (void)self; (void)in; (void)len; return start(next_fn, out, out_len); }

INIT(midway_error, midway_next)
INIT(never_fits, never_fits_next)
INIT(overclaims, overclaims_next)
INIT(odd_status, odd_next)

static int32_t null_handle(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self; (void)in; (void)len;
    *out = NULL;
    *out_len = 0;
    return 0;
}

static int32_t drops(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self; (void)in; (void)len;
    uint64_t n = __atomic_load_n(&DROPS, __ATOMIC_SEQ_CST);
    *out = malloc(8);
    memcpy(*out, &n, 8);
    *out_len = 8;
    return 0;
}

static const method_fn VTABLE[6] = {midway_error, never_fits, overclaims, odd_status, null_handle, drops};

static const struct descriptor BAD = {120, 500, "BadStreams", 0x5151, 1, 0, 1, "BadStreams", VTABLE, free_buffer, 6, NULL, NULL, 0, construct, destroy};
static const struct descriptor *const DESCRIPTORS[1] = {&BAD};
static const struct registry REGISTRY = {"FIDIUS\0\0", 1, 1, DESCRIPTORS};

const struct registry *fidius_get_registry(void) { return &REGISTRY; }
