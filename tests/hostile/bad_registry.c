/* A library whose registry is wrong: bad magic by default, or (with
 * -DREGISTRY_VERSION=N) good magic and an unknown registry version. */
#include <stdint.h>
#include <stddef.h>

#ifndef REGISTRY_VERSION
#define MAGIC "NOTFIDUS"
#define REGISTRY_VERSION 1
#else
#define MAGIC "FIDIUS\0\0"
#endif

struct registry {
    char magic[8];
    uint32_t registry_version;
    uint32_t plugin_count;
    const void *const *descriptors;
};

static const struct registry REGISTRY = {MAGIC, REGISTRY_VERSION, 0, NULL};

const struct registry *fidius_get_registry(void) { return &REGISTRY; }
