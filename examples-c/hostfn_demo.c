/*
 * hostfn_demo: plugins calling back into the C host.
 *
 * The fixture plugins (tests/fixtures/{native,wasm}/hostfn, built with the
 * published fidius 0.5.9 crates) import a host interface declared with
 * #[fidius::host_interface(version = 1)]:
 *
 *     pub trait Kv: Send + Sync {
 *         fn get(&self, key: String) -> Option<String>;                    // index 0
 *         fn put(&self, key: String, value: String) -> Result<(), PluginError>;  // index 1
 *     }
 *
 * This host implements Kv in C (a small table behind a mutex) and offers it
 * to every plugin it loads. Arguments and results are Fidius wire bytes
 * (bincode: strings as a u64 little-endian length and UTF-8 bytes; Option
 * as a 0/1 byte and the value).
 *
 *     hostfn_demo PLUGIN_DIR
 */
#include <fidius.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH 0u
#define STORE 1u
#define HOST_HASH 3u
#define HOST_VERSION 4u

static int failures = 0;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "CHECK FAILED %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            failures++;                                                       \
        }                                                                     \
    } while (0)

/* ---- wire helpers ------------------------------------------------------ */

typedef struct {
    uint8_t data[1024];
    size_t len;
} buf;

static void put_u64(buf *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_str(buf *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Read a wire string at *at into out (NUL-terminated); 0 if malformed. */
static int get_str(const uint8_t *data, size_t len, size_t *at, char *out, size_t cap) {
    if (len - *at < 8) return 0;
    uint64_t n = get_u64(data + *at);
    *at += 8;
    if (n >= cap || len - *at < n) return 0;
    memcpy(out, data + *at, n);
    out[n] = 0;
    *at += n;
    return 1;
}

/* ---- the Kv host interface, in C ---------------------------------------- */

#define SLOTS 16

struct kv {
    pthread_mutex_t lock;
    char keys[SLOTS][64];
    char values[SLOTS][128];
    int used;
    int destroyed;
};

static void kv_call(void *user_data, uint32_t index, const uint8_t *input, size_t input_len,
                    struct fidius_host_call *call) {
    struct kv *kv = user_data;
    char key[64], value[128];
    size_t at = 0;
    if (!get_str(input, input_len, &at, key, sizeof key)) {
        fidius_host_call_set_failure(call, "kv: malformed key", NULL);
        return;
    }
    pthread_mutex_lock(&kv->lock);
    if (index == 0) { /* get(key) -> Option<String> */
        buf out = {{0}, 0};
        out.data[out.len++] = 0;
        for (int i = 0; i < kv->used; i++) {
            if (strcmp(kv->keys[i], key) == 0) {
                out.data[0] = 1;
                put_str(&out, kv->values[i]);
                break;
            }
        }
        fidius_host_call_set_output(call, out.data, out.len, NULL);
    } else { /* put(key, value) -> Result<(), PluginError> */
        if (!get_str(input, input_len, &at, value, sizeof value)) {
            fidius_host_call_set_failure(call, "kv: malformed value", NULL);
        } else if (strcmp(key, "forbidden") == 0) {
            fidius_host_call_set_error(call, "DENIED", "that key is not yours", "{\"key\":\"forbidden\"}", NULL);
        } else {
            int slot = 0;
            while (slot < kv->used && strcmp(kv->keys[slot], key) != 0) slot++;
            if (slot == SLOTS) {
                fidius_host_call_set_error(call, "FULL", "the store is full", NULL, NULL);
            } else {
                snprintf(kv->keys[slot], sizeof kv->keys[0], "%s", key);
                snprintf(kv->values[slot], sizeof kv->values[0], "%s", value);
                if (slot == kv->used) kv->used++;
                /* `()`: nothing to answer */
            }
        }
    }
    pthread_mutex_unlock(&kv->lock);
}

static void kv_destroy(void *user_data) {
    ((struct kv *)user_data)->destroyed++;
}

/* ---- calling the plugins ------------------------------------------------ */

static void report(const char *what, struct fidius_error *err) {
    printf("    %s -> %s (%d): %s\n", what, fidius_status_name(fidius_error_status(err)),
           (int)fidius_error_status(err), fidius_error_message(err));
    if (fidius_error_status(err) == FIDIUS_STATUS_PLUGIN_ERROR)
        printf("    plugin error: code=%s details=%s\n", fidius_error_plugin_code(err),
               fidius_error_plugin_details(err) ? fidius_error_plugin_details(err) : "null");
}

static int call(struct fidius_plugin *p, uint32_t method, const buf *in, struct fidius_bytes *out,
                struct fidius_error **err) {
    return fidius_plugin_call(p, method, FIDIUS_FORMAT_WIRE, in ? in->data : NULL, in ? in->len : 0, out, err) ==
           FIDIUS_STATUS_OK;
}

static struct fidius_host *make_host(const char *dir, struct fidius_host_interface *kv) {
    struct fidius_host_builder *b = fidius_host_builder_new();
    struct fidius_host *host = NULL;
    struct fidius_error *err = NULL;
    fidius_host_builder_add_search_path(b, dir, NULL);
    if (kv) fidius_host_builder_add_host_interface(b, kv, NULL);
    if (fidius_host_builder_build(b, &host, &err) != FIDIUS_STATUS_OK) {
        report("build", err);
        fidius_error_free(err);
        failures++;
    }
    fidius_host_builder_free(b);
    return host;
}

static struct fidius_plugin *load(struct fidius_host *host, const char *name) {
    struct fidius_plugin *p = NULL;
    struct fidius_error *err = NULL;
    if (fidius_host_load(host, name, NULL, &p, &err) != FIDIUS_STATUS_OK) {
        report("load", err);
        fidius_error_free(err);
        failures++;
    }
    return p;
}

/* store(key, value), then fetch(key), printing what came back. */
static void round_trip(struct fidius_plugin *p, const char *runtime) {
    struct fidius_bytes out = {0};
    struct fidius_error *err = NULL;
    buf in = {{0}, 0};
    char value[128];
    snprintf(value, sizeof value, "hello from the %s plugin", runtime);
    put_str(&in, "greeting");
    put_str(&in, value);
    CHECK(call(p, STORE, &in, &out, &err), "store failed");
    fidius_bytes_free(&out);

    in.len = 0;
    put_str(&in, "greeting");
    if (call(p, FETCH, &in, &out, &err)) {
        char got[128] = "";
        size_t at = 1;
        CHECK(out.len > 0 && out.data[0] == 1 && get_str(out.data, out.len, &at, got, sizeof got),
              "fetch returned no value");
        printf("  %s: store(greeting) then fetch(greeting) = \"%s\"\n", runtime, got);
        CHECK(strcmp(got, value) == 0, "fetch returned %s", got);
    } else {
        report("fetch", err);
        fidius_error_free(err);
        failures++;
    }
    fidius_bytes_free(&out);

    /* The host refuses a key: the plugin sees the host's PluginError and returns it. */
    in.len = 0;
    put_str(&in, "forbidden");
    put_str(&in, "x");
    CHECK(!call(p, STORE, &in, &out, &err), "store(forbidden) succeeded");
    if (err) {
        printf("  %s: store(forbidden):\n", runtime);
        report("call", err);
        CHECK(fidius_error_status(err) == FIDIUS_STATUS_PLUGIN_ERROR &&
                  strcmp(fidius_error_plugin_code(err), "DENIED") == 0,
              "expected DENIED");
        fidius_error_free(err);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    /* The identity the plugins were built against. A real host takes these
     * from the interface crate's generated constants (Kv_HOST_INTERFACE_HASH,
     * Kv_HOST_INTERFACE_VERSION); fidius_plugin_describe lists a native
     * plugin's under "host_imports". Here the plugin reports them. */
    uint64_t hash = 0;
    uint32_t version = 0;
    {
        struct fidius_host *host = make_host(dir, NULL);
        struct fidius_plugin *p = host ? load(host, "KvUserImpl") : NULL;
        struct fidius_bytes out = {0};
        struct fidius_error *err = NULL;
        buf in = {{0}, 0};
        if (p && call(p, HOST_HASH, NULL, &out, &err) && out.len == 8) hash = get_u64(out.data);
        fidius_bytes_free(&out);
        if (p && call(p, HOST_VERSION, NULL, &out, &err) && out.len == 4)
            version = (uint32_t)out.data[0] | (uint32_t)out.data[1] << 8 | (uint32_t)out.data[2] << 16 |
                      (uint32_t)out.data[3] << 24;
        fidius_bytes_free(&out);
        /* Nothing provides Kv to this host: the plugin's call says so. */
        put_str(&in, "greeting");
        if (p && !call(p, FETCH, &in, &out, &err)) {
            printf("without a Kv: fetch(greeting):\n");
            report("call", err);
            fidius_error_free(err);
        }
        fidius_plugin_free(p);
        fidius_host_free(host);
    }
    printf("the plugins import Kv version %u, hash 0x%016llx\n", version, (unsigned long long)hash);
    CHECK(version == 1 && hash != 0, "identity not read");

    struct kv kv;
    memset(&kv, 0, sizeof kv);
    pthread_mutex_init(&kv.lock, NULL);
    struct fidius_host_interface *iface = NULL;
    struct fidius_error *err = NULL;
    if (fidius_host_interface_new("Kv", hash, version, 2, kv_call, &kv, kv_destroy, &iface, &err) != FIDIUS_STATUS_OK) {
        report("fidius_host_interface_new", err);
        fidius_error_free(err);
        return 1;
    }
    struct fidius_host *host = make_host(dir, iface);
    fidius_host_interface_free(iface); /* the builder and host keep it */

    struct fidius_plugin *native = host ? load(host, "KvUserImpl") : NULL;
    struct fidius_plugin *wasm = host ? load(host, "hostfn") : NULL;
    if (native) round_trip(native, "native");
    if (wasm) round_trip(wasm, "WASM");
    fidius_plugin_free(native);
    fidius_plugin_free(wasm);
    CHECK(kv.destroyed == 0, "destroyed while the host holds it");
    fidius_host_free(host);
    CHECK(kv.destroyed == 1, "destroy ran %d times", kv.destroyed);
    printf("Kv released with the host (destroy ran %d time)\n", kv.destroyed);
    pthread_mutex_destroy(&kv.lock);

    if (failures) {
        fprintf(stderr, "hostfn demo: %d check(s) failed\n", failures);
        return 1;
    }
    printf("hostfn demo: all checks passed\n");
    return 0;
}
