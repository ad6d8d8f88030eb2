/* fidius_precompile: ahead-of-time compile a WASM package's component for
 * libfidius, for a packaging pipeline.
 *
 *   fidius_precompile PACKAGE_DIR
 *
 * Reads PACKAGE_DIR/package.toml's `[wasm] component = "..."`, compiles that
 * component with this libfidius build's engine settings
 * (fidius_host_precompile_component) and writes `<component stem>.cwasm`
 * beside it, where libfidius looks for it. Sign the package afterwards
 * (`fidius package sign`): a `.cwasm` is machine code, and libfidius uses it
 * only when a trusted key's package signature covers it (or the host
 * trusts precompiled artifacts explicitly).
 *
 * Why not `fidius package pack --precompile`: the published CLI compiles
 * with wasmtime's default engine, without epoch interruption; libfidius's
 * engine has it (it is how timeouts stop guest code), and wasmtime refuses
 * an artifact compiled without it, so libfidius compiles such packages from
 * their `.wasm` instead (with a warning). Exit status 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fidius.h"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *grown = realloc(buf, cap + 1);
            if (!grown) { free(buf); fclose(f); return NULL; }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The value of `component = "..."` in the manifest's [wasm] table. */
static int component_of(const char *manifest, char *out, size_t cap) {
    const char *wasm = strstr(manifest, "[wasm]");
    const char *key = wasm ? strstr(wasm, "component") : NULL;
    const char *open = key ? strchr(key, '"') : NULL;
    const char *close = open ? strchr(open + 1, '"') : NULL;
    if (!close || (size_t)(close - open - 1) >= cap || memchr(open + 1, '/', (size_t)(close - open - 1))) return -1;
    memcpy(out, open + 1, (size_t)(close - open - 1));
    out[close - open - 1] = '\0';
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PACKAGE_DIR\n", argv[0]);
        return 2;
    }
    char path[4096], component[256];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/package.toml", argv[1]);
    char *manifest = read_file(path, &len);
    if (!manifest || component_of(manifest, component, sizeof component) != 0) {
        fprintf(stderr, "%s: no [wasm] component = \"...\" (a file name in the package directory)\n", path);
        free(manifest);
        return 1;
    }
    free(manifest);
    snprintf(path, sizeof path, "%s/%s", argv[1], component);
    char *wasm = read_file(path, &len);
    if (!wasm) {
        perror(path);
        return 1;
    }
    fidius_host_builder *builder = fidius_host_builder_new();
    fidius_host *host = NULL;
    fidius_error *err = NULL;
    fidius_bytes cwasm = {0};
    int status = 1;
    if (fidius_host_builder_build(builder, &host, &err) != FIDIUS_STATUS_OK ||
        fidius_host_precompile_component(host, (const uint8_t *)wasm, len, &cwasm, &err) != FIDIUS_STATUS_OK) {
        fprintf(stderr, "%s: %s\n", path, fidius_error_message(err));
        fidius_error_free(err);
    } else {
        char *dot = strrchr(path, '.');
        if (dot && strchr(dot, '/') == NULL) *dot = '\0';
        strncat(path, ".cwasm", sizeof path - strlen(path) - 1);
        FILE *f = fopen(path, "wb");
        int written = f && fwrite(cwasm.data, 1, cwasm.len, f) == cwasm.len;
        if (f && fclose(f) != 0) written = 0;
        if (written) {
            printf("wrote %s (%zu bytes); sign the package so libfidius uses it\n", path, cwasm.len);
            status = 0;
        } else {
            perror(path);
        }
    }
    fidius_bytes_free(&cwasm);
    fidius_host_free(host);
    fidius_host_builder_free(builder);
    free(wasm);
    return status;
}
