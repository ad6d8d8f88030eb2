/*
 * host_demo: a C program hosting Fidius plugins through libfidius.
 *
 * Usage: host_demo PLUGIN_DIR...
 *
 * Builds a host over the given directories, lists what discovery found
 * (and what it passed over, and why), then loads plugins built with the
 * published fidius crates (0.5.9: BasicCalc, ArenaImpl, ConfiguredGreeter;
 * 0.4.2: LegacyCalc) and the WASM-component package "calc" (fidius 0.5.9
 * guest crates), and calls typed and raw methods with wire and JSON
 * buffers, printing the results and plugin errors. Exits non-zero if
 * anything is not as expected.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fidius.h"

/* Calc method indices: declaration order in the interface trait. */
enum { CALC_ADD = 0, CALC_GREET = 1, CALC_ECHO = 2, CALC_DIVIDE = 3 };

static int failures = 0;

/* Print and free an error; count it as a failure unless expected. */
static void report(const char *what, fidius_status status, fidius_error *err, int expected) {
    printf("  %s -> %s (%d): %s\n", what, fidius_status_name(status), (int)status,
           err ? fidius_error_message(err) : "(no error object)");
    if (err && fidius_error_plugin_code(err)) {
        const char *details = fidius_error_plugin_details(err);
        printf("    plugin error: code=%s message=\"%s\" details=%s\n", fidius_error_plugin_code(err),
               fidius_error_plugin_message(err), details ? details : "(none)");
    }
    if (!expected) failures++;
    fidius_error_free(err);
}

/* --- Fidius wire encoding (bincode 1.3: little-endian, u64 length prefixes) --- */

static size_t put_u64(uint8_t *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
    return 8;
}

static uint64_t get_u64(const uint8_t *in) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | in[i];
    return v;
}

/* (a, b) as a bincode tuple of two i64. */
static size_t wire_i64_pair(uint8_t out[16], int64_t a, int64_t b) {
    put_u64(out, (uint64_t)a);
    put_u64(out + 8, (uint64_t)b);
    return 16;
}

/* (s,) as a bincode tuple of one String. Caller frees. */
static uint8_t *wire_string(const char *s, size_t *len) {
    size_t n = strlen(s);
    uint8_t *out = malloc(8 + n);
    if (!out) abort();
    put_u64(out, n);
    memcpy(out + 8, s, n);
    *len = 8 + n;
    return out;
}

static int call_add(fidius_plugin *plugin, const char *label, int64_t a, int64_t b, int64_t expect) {
    uint8_t in[16];
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, CALC_ADD, FIDIUS_FORMAT_WIRE, in, wire_i64_pair(in, a, b), &out, &err);
    if (st != FIDIUS_STATUS_OK) {
        report("add", st, err, 0);
        return -1;
    }
    int64_t sum = out.len == 8 ? (int64_t)get_u64(out.data) : -1;
    printf("  %s add(%" PRId64 ", %" PRId64 ") = %" PRId64 "\n", label, a, b, sum);
    if (sum != expect) failures++;
    fidius_bytes_free(&out);
    return 0;
}

static void call_greet(fidius_plugin *plugin, uint32_t method, const char *label, const char *name, const char *expect) {
    size_t len;
    uint8_t *in = wire_string(name, &len);
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, method, FIDIUS_FORMAT_WIRE, in, len, &out, &err);
    free(in);
    if (st != FIDIUS_STATUS_OK) {
        report("greet", st, err, 0);
        return;
    }
    /* A bincode String: u64 length, then the bytes. */
    size_t n = out.len >= 8 ? (size_t)get_u64(out.data) : 0;
    printf("  %s greet(\"%s\") = \"%.*s\"\n", label, name, (int)n, (const char *)out.data + 8);
    if (n != strlen(expect) || memcmp(out.data + 8, expect, n) != 0) failures++;
    fidius_bytes_free(&out);
}

static void call_echo(fidius_plugin *plugin, const char *label) {
    static const uint8_t payload[] = {0x00, 'r', 'a', 'w', 0xff};
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, CALC_ECHO, FIDIUS_FORMAT_WIRE, payload, sizeof payload, &out, &err);
    if (st != FIDIUS_STATUS_OK) {
        report("echo", st, err, 0);
        return;
    }
    int same = out.len == sizeof payload && memcmp(out.data, payload, sizeof payload) == 0;
    printf("  %s echo(5 raw bytes) = %zu bytes, %s\n", label, out.len, same ? "identical" : "DIFFERENT");
    if (!same) failures++;
    fidius_bytes_free(&out);
}

static void call_divide_by_zero(fidius_plugin *plugin, const char *label) {
    uint8_t in[16];
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, CALC_DIVIDE, FIDIUS_FORMAT_WIRE, in, wire_i64_pair(in, 7, 0), &out, &err);
    printf("  %s divide(7, 0):\n", label);
    if (st != FIDIUS_STATUS_PLUGIN_ERROR) failures++;
    report("  divide", st, err, 1);
    fidius_bytes_free(&out);
}

/* A JSON call; prints the result and checks it against `expect`. */
static void call_json(fidius_plugin *plugin, const char *method, const char *args, const char *expect) {
    const char *label = fidius_plugin_info_name(fidius_plugin_get_info(plugin));
    uint32_t index = 0;
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_method_index(plugin, method, &index, &err);
    if (st != FIDIUS_STATUS_OK) {
        report("method_index", st, err, 0);
        return;
    }
    fidius_bytes out = {NULL, 0, NULL};
    st = fidius_plugin_call(plugin, index, FIDIUS_FORMAT_JSON, (const uint8_t *)args, strlen(args), &out, &err);
    printf("  %s %s(%s) [json] = ", label, method, args);
    if (st != FIDIUS_STATUS_OK) {
        printf("\n");
        report("  call", st, err, expect == NULL);
        return;
    }
    printf("%.*s\n", (int)out.len, (const char *)out.data);
    if (!expect || out.len != strlen(expect) || memcmp(out.data, expect, out.len) != 0) failures++;
    fidius_bytes_free(&out);
}

static fidius_plugin *load(fidius_host *host, const char *name, const fidius_load_options *opts) {
    fidius_plugin *plugin = NULL;
    fidius_error *err = NULL;
    fidius_status st = fidius_host_load(host, name, opts, &plugin, &err);
    if (st != FIDIUS_STATUS_OK) {
        report(name, st, err, 0);
        return NULL;
    }
    const fidius_plugin_info *info = fidius_plugin_get_info(plugin);
    if (fidius_plugin_info_runtime(info) == FIDIUS_RUNTIME_WASM)
        printf("loaded %s (WASM component, interface hash 0x%016" PRIx64 ", %u methods)\n", fidius_plugin_info_name(info),
               fidius_plugin_info_interface_hash(info), fidius_plugin_info_method_count(info));
    else
        printf("loaded %s (interface %s, ABI %u, fidius %s)\n", fidius_plugin_info_name(info),
               fidius_plugin_info_interface_name(info), fidius_plugin_info_abi_version(info),
               fidius_plugin_info_abi_version(info) == 500 ? "0.5" : "0.4");
    return plugin;
}

static const char *runtime_name(fidius_runtime r) {
    switch (r) {
    case FIDIUS_RUNTIME_NATIVE: return "native";
    case FIDIUS_RUNTIME_WASM: return "wasm";
    case FIDIUS_RUNTIME_PYTHON: return "python";
    case FIDIUS_RUNTIME_UNKNOWN: break;
    }
    return "?";
}

static void discover(fidius_host *host) {
    fidius_discovery *found = NULL;
    fidius_error *err = NULL;
    fidius_status st = fidius_host_discover(host, &found, &err);
    if (st != FIDIUS_STATUS_OK) {
        report("discover", st, err, 0);
        return;
    }
    printf("discovered %zu plugins:\n", fidius_discovery_plugin_count(found));
    for (size_t i = 0; i < fidius_discovery_plugin_count(found); i++) {
        const fidius_plugin_info *p = fidius_discovery_plugin(found, i);
        printf("  %-18s %-10s %-7s hash=0x%016" PRIx64 " abi=%u methods=%u\n", fidius_plugin_info_name(p),
               fidius_plugin_info_interface_name(p), runtime_name(fidius_plugin_info_runtime(p)),
               fidius_plugin_info_interface_hash(p), fidius_plugin_info_abi_version(p),
               fidius_plugin_info_method_count(p));
    }
    for (size_t i = 0; i < fidius_discovery_skipped_count(found); i++)
        printf("  skipped %s: %s\n", fidius_discovery_skipped_path(found, i), fidius_discovery_skipped_reason(found, i));
    fidius_discovery_free(found);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN_DIR...\n", argv[0]);
        return 2;
    }
    if (strcmp(fidius_version(), FIDIUS_VERSION_STRING) != 0) {
        fprintf(stderr, "header is %s but library is %s\n", FIDIUS_VERSION_STRING, fidius_version());
        return 1;
    }
    printf("libfidius %s\n", fidius_version());

    fidius_host_builder *builder = fidius_host_builder_new();
    fidius_error *err = NULL;
    for (int i = 1; i < argc; i++) {
        fidius_status st = fidius_host_builder_add_search_path(builder, argv[i], &err);
        if (st != FIDIUS_STATUS_OK) report("add_search_path", st, err, 0);
    }
    fidius_host *host = NULL;
    fidius_status st = fidius_host_builder_build(builder, &host, &err);
    fidius_host_builder_free(builder);
    if (st != FIDIUS_STATUS_OK) {
        report("build", st, err, 0);
        return 1;
    }

    discover(host);

    fidius_plugin *basic = load(host, "BasicCalc", NULL);
    if (basic) {
        call_add(basic, "BasicCalc", 2, 3, 5);
        call_greet(basic, CALC_GREET, "BasicCalc", "C host", "Hello, C host!");
        call_echo(basic, "BasicCalc");
        call_divide_by_zero(basic, "BasicCalc");
    }
    fidius_plugin *legacy = load(host, "LegacyCalc", NULL);
    if (legacy) {
        call_add(legacy, "LegacyCalc", 40, 2, 42);
        call_greet(legacy, CALC_GREET, "LegacyCalc", "0.4", "Hello, 0.4!");
        call_echo(legacy, "LegacyCalc");
    }
    /* A WASM component in a deny-all sandbox: the same wire bytes as the
       native plugins, or JSON converted by the component's own types. */
    fidius_load_options *wasm_opts = fidius_load_options_new();
    fidius_load_options_set_timeout_ms(wasm_opts, 5000, NULL);
    fidius_load_options_set_memory_limit(wasm_opts, 64u << 20, NULL);
    fidius_plugin *calc = load(host, "calc", wasm_opts);
    fidius_load_options_free(wasm_opts);
    if (calc) {
        call_add(calc, "calc (wasm)", 20, 22, 42);
        call_greet(calc, CALC_GREET, "calc (wasm)", "component", "Hello, component!");
        call_echo(calc, "calc (wasm)");
        call_json(calc, "add", "[2, 40]", "42");
        call_json(calc, "shift", "[{\"x\": 1, \"y\": 2, \"label\": \"p\"}, 10]", "{\"x\":11,\"y\":2,\"label\":\"p+10\"}");
        call_json(calc, "maybe_double", "[null]", "null");
        call_json(calc, "divide", "[7, 0]", NULL);
    }

    /* A native plugin with its interface schema (libfixture_typed.so.wit,
       written by fidius_build::emit_wit): called by name with JSON, converted
       to exactly the bincode it takes, and described. */
    fidius_plugin *typed = load(host, "TypedImpl", NULL);
    if (typed) {
        call_json(typed, "price", "[{\"id\": 7, \"sku\": \"widget\", \"qty\": 3, \"unit_cents\": 1999}]", "5997");
        call_json(typed, "scale", "[{\"Rect\": {\"w\": 2, \"h\": 3}}, 2]", "{\"Rect\":{\"w\":4.0,\"h\":6.0}}");
        call_json(typed, "totals", "[[{\"id\": 1, \"sku\": \"a\", \"qty\": 2, \"unit_cents\": 50, \"note\": \"gift\"}]]",
                  "[{\"sku\":\"a\",\"cents\":100}]");
        call_json(typed, "divide", "[7, 0]", NULL);
        fidius_bytes doc = {NULL, 0, NULL};
        st = fidius_plugin_describe(typed, &doc, &err);
        if (st != FIDIUS_STATUS_OK) report("describe", st, err, 0);
        else printf("  describe: %zu bytes of JSON, starting %.60s...\n", doc.len, (const char *)doc.data);
        fidius_bytes_free(&doc);
    }

    fidius_plugin *arena = load(host, "ArenaImpl", NULL);
    if (arena) call_add(arena, "ArenaImpl", -5, 5, 0);

    /* A configured instance (fidius 0.5): the bincode of GreeterConfig { prefix: "Yo ", times: 2 }. */
    static const uint8_t config[] = {3, 0, 0, 0, 0, 0, 0, 0, 'Y', 'o', ' ', 2, 0, 0, 0};
    fidius_load_options *opts = fidius_load_options_new();
    st = fidius_load_options_set_config(opts, config, sizeof config, &err);
    if (st != FIDIUS_STATUS_OK) report("set_config", st, err, 0);
    fidius_plugin *greeter = load(host, "ConfiguredGreeter", opts);
    fidius_load_options_free(opts);
    if (greeter) call_greet(greeter, 0, "ConfiguredGreeter", "Ann", "Yo Ann Yo Ann");

    /* A plugin that is not there: the error says where we looked. */
    fidius_plugin *missing = NULL;
    st = fidius_host_load(host, "NoSuchPlugin", NULL, &missing, &err);
    printf("load NoSuchPlugin:\n");
    report("  load", st, err, st == FIDIUS_STATUS_PLUGIN_NOT_FOUND);

    fidius_plugin_free(calc);
    fidius_plugin_free(typed);
    fidius_plugin_free(greeter);
    fidius_plugin_free(arena);
    fidius_plugin_free(legacy);
    fidius_plugin_free(basic);
    fidius_host_free(host);

    if (!basic || !legacy || !arena || !greeter || !calc || !typed) failures++;
    printf(failures ? "FAILED: %d unexpected results\n" : "all results as expected\n", failures);
    return failures ? 1 : 0;
}
