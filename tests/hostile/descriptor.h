/* The fidius 0.5 (ABI 500) descriptor and registry layouts, for hand-made
 * hostile libraries. Layout: shared/fidius-facts.md sections 1.1 and 1.2. */
#ifndef FIDIUS_TEST_DESCRIPTOR_H
#define FIDIUS_TEST_DESCRIPTOR_H
#include <stddef.h>
#include <stdint.h>

struct descriptor {
    uint32_t descriptor_size;
    uint32_t abi_version;
    const char *interface_name;
    uint64_t interface_hash;
    uint32_t interface_version;
    uint64_t capabilities;
    uint8_t buffer_strategy;
    const char *plugin_name;
    const void *vtable;
    void (*free_buffer)(uint8_t *, size_t);
    uint32_t method_count;
    const void *method_metadata;
    const void *trait_metadata;
    uint32_t trait_metadata_count;
    void *(*construct)(const uint8_t *, uint32_t);
    void (*destroy)(void *);
};

struct registry {
    char magic[8];
    uint32_t registry_version;
    uint32_t plugin_count;
    const struct descriptor *const *descriptors;
};

#endif
