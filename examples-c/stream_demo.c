/* Streaming methods from C: a native plugin (fidius 0.5.9, with its
 * interface schema beside it as <library>.wit) and a WASM package (fidius
 * 0.5.9 guest crates) implementing the same `Streamer` interface:
 *
 *   count(n, marker) -> Stream<u64>        a server stream
 *   points(n) -> Stream<Point>             items as JSON
 *   explode(at) -> Stream<u64>             fails midway
 *   forever(marker) -> Stream<u64>         cancelled early
 *   sum(start, Stream<u64>) -> u64         a client stream, fed by a C source
 *   shout(prefix, Stream<String>) -> Stream<String>   bidirectional
 *
 * Usage: stream_demo SEARCH_PATH     (exit status 0 when every check holds) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fidius.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)

/* Fidius wire bytes (bincode 1.3): u64 little-endian; a string is its u64
 * length then its UTF-8 bytes; a tuple is its fields in order. */
static size_t put_u64(uint8_t *at, uint64_t v) {
    for (int i = 0; i < 8; i++) at[i] = (uint8_t)(v >> (8 * i));
    return 8;
}
static uint64_t get_u64(const uint8_t *at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)at[i] << (8 * i);
    return v;
}
static size_t put_str(uint8_t *at, const char *s) {
    size_t n = strlen(s);
    put_u64(at, n);
    memcpy(at + 8, s, n);
    return 8 + n;
}

static uint32_t method(const fidius_plugin *plugin, const char *name) {
    uint32_t index = UINT32_MAX;
    fidius_error *err = NULL;
    if (fidius_plugin_method_index(plugin, name, &index, &err) != FIDIUS_STATUS_OK) {
        fprintf(stderr, "no method %s: %s\n", name, fidius_error_message(err));
        fidius_error_free(err);
        exit(1);
    }
    return index;
}

static fidius_stream *open_stream(const fidius_plugin *plugin, uint32_t m, uint32_t format, const void *input, size_t len) {
    fidius_stream *stream = NULL;
    fidius_error *err = NULL;
    if (fidius_plugin_stream(plugin, m, format, input, len, NULL, NULL, NULL, &stream, &err) != FIDIUS_STATUS_OK) {
        fprintf(stderr, "cannot open stream %u: %s\n", m, fidius_error_message(err));
        fidius_error_free(err);
        exit(1);
    }
    return stream;
}

/* A source over an array of wire items; `destroyed` proves the exactly-once release. */
struct items {
    uint8_t (*item)[64];
    size_t *len;
    size_t count, next;
    int destroyed;
};

static int32_t items_next(void *user, const uint8_t **item, size_t *len) {
    struct items *s = user;
    if (s->next == s->count) return 0; /* the end */
    *item = s->item[s->next];
    *len = s->len[s->next];
    s->next++;
    return 1;
}
static void items_destroy(void *user) { ((struct items *)user)->destroyed++; }

static void demo(const fidius_plugin *plugin, const char *runtime) {
    fidius_error *err = NULL;
    fidius_bytes item = {0};
    printf("-- %s\n", runtime);

    /* A server stream of u64, in wire bytes. */
    uint8_t in[64];
    size_t n = put_u64(in, 5);
    n += put_str(in + n, "");
    fidius_stream *stream = open_stream(plugin, method(plugin, "count"), FIDIUS_FORMAT_WIRE, in, n);
    uint64_t expect = 0;
    printf("count(5):");
    fidius_status status;
    while ((status = fidius_stream_next(stream, &item, &err)) == FIDIUS_STATUS_OK) {
        CHECK(item.len == 8 && get_u64(item.data) == expect, "item %llu", (unsigned long long)expect);
        printf(" %llu", (unsigned long long)get_u64(item.data));
        expect++;
        fidius_bytes_free(&item);
    }
    printf("\n");
    CHECK(status == FIDIUS_STATUS_STREAM_END && err == NULL && expect == 5, "count ended with %d after %llu", status, (unsigned long long)expect);
    fidius_stream_free(stream);

    /* Records, as JSON (the item type comes from the component or the schema). */
    stream = open_stream(plugin, method(plugin, "points"), FIDIUS_FORMAT_JSON, "[2]", 3);
    while ((status = fidius_stream_next(stream, &item, &err)) == FIDIUS_STATUS_OK) {
        printf("points: %.*s\n", (int)item.len, (const char *)item.data);
        fidius_bytes_free(&item);
    }
    CHECK(status == FIDIUS_STATUS_STREAM_END, "points ended with %d", status);
    fidius_stream_free(stream);

    /* A stream that fails midway: two items, then the failure, then the end. */
    n = put_u64(in, 2);
    stream = open_stream(plugin, method(plugin, "explode"), FIDIUS_FORMAT_WIRE, in, n);
    int got = 0;
    while ((status = fidius_stream_next(stream, &item, &err)) == FIDIUS_STATUS_OK) {
        got++;
        fidius_bytes_free(&item);
    }
    CHECK(got == 2 && (status == FIDIUS_STATUS_PLUGIN_PANIC || status == FIDIUS_STATUS_TRAP), "explode: %d items, status %d", got, status);
    printf("explode(2): %d items, then %s\n", got, err ? fidius_error_message(err) : "?");
    fidius_error_free(err);
    err = NULL;
    CHECK(fidius_stream_next(stream, &item, &err) == FIDIUS_STATUS_STREAM_END, "ended after the failure");
    fidius_stream_free(stream);

    /* Cancel an endless stream after three items. */
    n = put_str(in, "");
    stream = open_stream(plugin, method(plugin, "forever"), FIDIUS_FORMAT_WIRE, in, n);
    for (int i = 0; i < 3; i++) {
        CHECK(fidius_stream_next(stream, &item, &err) == FIDIUS_STATUS_OK, "forever item %d", i);
        fidius_bytes_free(&item);
    }
    fidius_stream_free(stream);
    printf("forever: cancelled after 3 items\n");

    /* A client stream: sum(10, [1..=4]). */
    uint8_t storage[8][64];
    size_t lens[8];
    for (int i = 0; i < 4; i++) lens[i] = put_u64(storage[i], (uint64_t)i + 1);
    struct items numbers = {storage, lens, 4, 0, 0};
    n = put_u64(in, 10);
    fidius_bytes out = {0};
    status = fidius_plugin_call_streaming(plugin, method(plugin, "sum"), FIDIUS_FORMAT_WIRE, in, n, items_next, &numbers,
                                          items_destroy, &out, &err);
    CHECK(status == FIDIUS_STATUS_OK && out.len == 8 && get_u64(out.data) == 20, "sum: status %d", status);
    CHECK(numbers.destroyed == 1, "the source is destroyed once (%d)", numbers.destroyed);
    printf("sum(10, [1, 2, 3, 4]) = %llu\n", status == FIDIUS_STATUS_OK ? (unsigned long long)get_u64(out.data) : 0ULL);
    fidius_bytes_free(&out);

    /* Bidirectional: shout(">", ["hi", "fidius"]). */
    lens[0] = put_str(storage[0], "hi");
    lens[1] = put_str(storage[1], "fidius");
    struct items words = {storage, lens, 2, 0, 0};
    n = put_str(in, ">");
    stream = NULL;
    status = fidius_plugin_stream(plugin, method(plugin, "shout"), FIDIUS_FORMAT_WIRE, in, n,
                                  items_next, &words, items_destroy, &stream, &err);
    CHECK(status == FIDIUS_STATUS_OK, "shout: %d", status);
    printf("shout:");
    while (stream && (status = fidius_stream_next(stream, &item, &err)) == FIDIUS_STATUS_OK) {
        printf(" %.*s", (int)(item.len - 8), (const char *)item.data + 8);
        fidius_bytes_free(&item);
    }
    printf("\n");
    CHECK(status == FIDIUS_STATUS_STREAM_END, "shout ended with %d", status);
    fidius_stream_free(stream);
    CHECK(words.destroyed == 1, "the bidirectional source is destroyed once (%d)", words.destroyed);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEARCH_PATH\n", argv[0]);
        return 2;
    }
    fidius_host_builder *builder = fidius_host_builder_new();
    fidius_error *err = NULL;
    fidius_host *host = NULL;
    if (fidius_host_builder_add_search_path(builder, argv[1], &err) != FIDIUS_STATUS_OK ||
        fidius_host_builder_build(builder, &host, &err) != FIDIUS_STATUS_OK) {
        fprintf(stderr, "host: %s\n", fidius_error_message(err));
        return 1;
    }
    fidius_host_builder_free(builder);
    const char *names[2] = {"StreamerImpl", "stream"};
    const char *runtimes[2] = {"native (fidius 0.5.9, schema beside the library)", "wasm (fidius 0.5.9 guest)"};
    for (int i = 0; i < 2; i++) {
        fidius_plugin *plugin = NULL;
        if (fidius_host_load(host, names[i], NULL, &plugin, &err) != FIDIUS_STATUS_OK) {
            fprintf(stderr, "load %s: %s\n", names[i], fidius_error_message(err));
            fidius_error_free(err);
            return 1;
        }
        demo(plugin, runtimes[i]);
        fidius_plugin_free(plugin);
    }
    fidius_host_free(host);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("stream_demo: every check passed\n");
    return 0;
}
