/* Hand-made descriptors that claim more than a host should give:
 *  - HugeMethods (ABI 500): claims 4294967295 methods (a host that believes
 *    it allocates or reads a table that large);
 *  - GreedyArena (ABI 500, Arena): method 0 asks for a 4 GiB - 1 arena;
 *    method 1 echoes its input, proving the plugin still serves.
 * Layout: shared/fidius-facts.md section 1.2. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"

typedef int32_t (*arena_fn)(void *, const uint8_t *, uint32_t, uint8_t *, uint32_t, uint32_t *, uint32_t *);


static int instance_token;
static void *construct(const uint8_t *c, uint32_t n) { (void)c; (void)n; return &instance_token; }
static void destroy(void *p) { (void)p; }

static int32_t greedy(void *self, const uint8_t *in, uint32_t len, uint8_t *arena, uint32_t cap, uint32_t *off, uint32_t *out_len) {
    (void)self; (void)in; (void)len; (void)arena; (void)cap;
    *off = 0;
    *out_len = 0xffffffffu;
    return -1;
}
static int32_t echo(void *self, const uint8_t *in, uint32_t len, uint8_t *arena, uint32_t cap, uint32_t *off, uint32_t *out_len) {
    (void)self;
    *off = 0;
    *out_len = len;
    if (len > cap) return -1;
    memcpy(arena, in, len);
    return 0;
}

static const arena_fn ARENA_VTABLE[2] = {greedy, echo};
/* One metadata entry: a host reading 4294967295 of them runs off the end. */
static const struct { const void *kvs; uint32_t count; } ONE_META[1] = {{NULL, 0}};

static const struct descriptor HUGE = {120, 500, "Calc", 0x1234, 1, 0, 2, "HugeMethods", ARENA_VTABLE, NULL,
                                       0xffffffffu, ONE_META, NULL, 0, construct, destroy};
static const struct descriptor GREEDY = {120, 500, "Calc", 0x1234, 1, 0, 2, "GreedyArena", ARENA_VTABLE, NULL,
                                         2, NULL, NULL, 0, construct, destroy};

static const struct descriptor *const DESCRIPTORS[2] = {&HUGE, &GREEDY};


static const struct registry REGISTRY = {"FIDIUS\0\0", 1, 2, DESCRIPTORS};

const struct registry *fidius_get_registry(void) { return &REGISTRY; }
