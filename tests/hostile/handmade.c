/* Hand-made descriptors for what the published fidius crates never emit:
 *  - FutureCalc: ABI version 999;
 *  - HollowCalc (ABI 500): method 1 is a NULL slot (an optional method the
 *    plugin lacks), method 2 returns an unknown status, method 3 returns
 *    STATUS_PLUGIN_ERROR with a payload that is not a PluginError;
 *  - Unconfigurable (ABI 500): its constructor always returns NULL;
 *  - ShortDescriptor (ABI 500) whose descriptor_size is the 0.4 size.
 * Layout: shared/fidius-facts.md section 1.2. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"

typedef int32_t (*method_fn)(void *, const uint8_t *, uint32_t, uint8_t **, uint32_t *);


static void free_buffer(uint8_t *p, size_t len) { (void)len; free(p); }
static int instance_token;
static void *construct_ok(const uint8_t *c, uint32_t n) { (void)c; (void)n; return &instance_token; }
static void *construct_null(const uint8_t *c, uint32_t n) { (void)c; (void)n; return NULL; }
static void destroy(void *p) { (void)p; }

/* Method 0: returns the 8 input bytes unchanged (enough for "add" shapes). */
static int32_t echo8(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self;
    *out = malloc(len ? len : 1);
    memcpy(*out, in, len);
    *out_len = len;
    return 0;
}
static int32_t weird_status(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self; (void)in; (void)len; (void)out; (void)out_len;
    return 7;
}
static int32_t garbage_error(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self; (void)in; (void)len;
    *out = malloc(3);
    memset(*out, 0xff, 3);
    *out_len = 3;
    return -3;
}

static const method_fn HOLLOW_VTABLE[4] = {echo8, NULL, weird_status, garbage_error};

#define DESC(size, abi, name, vt, count, cons) \
    {size, abi, "Calc", 0x1234, 1, 0, 1, name, vt, free_buffer, count, NULL, NULL, 0, cons, destroy}

static const struct descriptor FUTURE = DESC(120, 999, "FutureCalc", HOLLOW_VTABLE, 1, construct_ok);
static const struct descriptor HOLLOW = DESC(120, 500, "HollowCalc", HOLLOW_VTABLE, 4, construct_ok);
static const struct descriptor UNCONF = DESC(120, 500, "Unconfigurable", HOLLOW_VTABLE, 1, construct_null);
static const struct descriptor SHORT = DESC(104, 500, "ShortDescriptor", HOLLOW_VTABLE, 1, construct_ok);

static const struct descriptor *const DESCRIPTORS[4] = {&FUTURE, &HOLLOW, &UNCONF, &SHORT};


static const struct registry REGISTRY = {"FIDIUS\0\0", 1, 4, DESCRIPTORS};

const struct registry *fidius_get_registry(void) { return &REGISTRY; }
