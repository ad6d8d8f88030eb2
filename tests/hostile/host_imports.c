/* Hand-made host-import registries (fidius 0.5.7 host functions) for what
 * the published crates never emit, selected with -DMODE=N:
 *   0  a valid registry importing "Kv" (hash 0x42, version 1); the plugin
 *      HostileKv's method 0 then drives the bound table the way a hostile
 *      plugin would, returning the status of each attempt (4 x i32 LE):
 *      index past fn_count, NULL out-pointers, NULL input with a length,
 *      and a real call (get of an empty key);
 *   1  fidius_get_host_imports returns NULL;
 *   2  bad magic;
 *   3  an absurd import count;
 *   4  a NULL entry in the imports array;
 *   5  bind refuses the table (hash mismatch, -3);
 *   6  an import with a NULL interface name.
 * Layout: shared/fidius-facts.md section 1.12. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"

#ifndef MODE
#define MODE 0
#endif

struct table {
    uint32_t table_size, abi_version;
    const char *interface_name;
    uint64_t interface_hash;
    uint32_t interface_version, fn_count;
    void *ctx;
    int32_t (*dispatch)(void *, uint32_t, const uint8_t *, uint32_t, uint8_t **, uint32_t *);
    void (*free_buffer)(uint8_t *, size_t);
};

struct import {
    uint32_t descriptor_size, abi_version;
    const char *interface_name;
    uint64_t interface_hash;
    uint32_t interface_version;
    int32_t (*bind)(const struct table *);
};

struct import_registry {
    char magic[8];
    uint32_t registry_version, import_count;
    const struct import *const *imports;
};

static const struct table *bound;

static int32_t bind(const struct table *t) {
    if (MODE == 5) return -3;
    if (bound) return -2;
    bound = t;
    return 0;
}

static const struct import KV = {40, 500, MODE == 6 ? NULL : "Kv", 0x42, 1, bind};
static const struct import *const IMPORTS[1] = {MODE == 4 ? NULL : &KV};
#if MODE == 2
#define MAGIC "FIDIOUS\0"
#else
#define MAGIC "FIDIUS\0\0"
#endif
static const struct import_registry IMPORT_REGISTRY = {MAGIC, 1, MODE == 3 ? 100000000u : 1u, IMPORTS};

const struct import_registry *fidius_get_host_imports(void) { return MODE == 1 ? NULL : &IMPORT_REGISTRY; }

static void put_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }

static int32_t drive_table(void *self, const uint8_t *in, uint32_t len, uint8_t **out, uint32_t *out_len) {
    (void)self; (void)in; (void)len;
    uint8_t *res = malloc(16);
    uint8_t *o = NULL;
    uint32_t n = 0;
    static const uint8_t empty_key[8] = {0};
    if (!bound) {
        free(res);
        return -4;
    }
    put_i32(res, bound->dispatch(bound->ctx, 99, empty_key, 8, &o, &n));
    put_i32(res + 4, bound->dispatch(bound->ctx, 0, empty_key, 8, NULL, NULL));
    put_i32(res + 8, bound->dispatch(bound->ctx, 0, NULL, 5, &o, &n));
    if (o) bound->free_buffer(o, n);
    o = NULL;
    put_i32(res + 12, bound->dispatch(bound->ctx, 0, empty_key, 8, &o, &n));
    if (o) bound->free_buffer(o, n);
    *out = res;
    *out_len = 16;
    return 0;
}

static void free_buffer(uint8_t *p, size_t len) { (void)len; free(p); }
static int instance_token;
static void *construct(const uint8_t *c, uint32_t n) { (void)c; (void)n; return &instance_token; }
static void destroy(void *p) { (void)p; }

typedef int32_t (*method_fn)(void *, const uint8_t *, uint32_t, uint8_t **, uint32_t *);
static const method_fn VTABLE[1] = {drive_table};
static const struct descriptor PLUGIN = {120, 500, "HostileKvUser", 0x1234, 1, 0, 1, "HostileKv", VTABLE, free_buffer, 1, NULL, NULL, 0, construct, destroy};
static const struct descriptor *const DESCRIPTORS[1] = {&PLUGIN};
static const struct registry REGISTRY = {"FIDIUS\0\0", 1, 1, DESCRIPTORS};

const struct registry *fidius_get_registry(void) { return &REGISTRY; }
