/* The check behind `make -C examples-c aot`: a package precompiled with
 * fidius_precompile and signed with `fidius package sign` loads as AOT.
 *
 *   aot_check SEARCH_PATH KEY.public
 *
 * Loads "calc" from a host that requires signatures by that key, and fails
 * unless the load has no warning (its .cwasm was deserialized, not ignored)
 * and add(2, 40) answers 42. */
#include <stdio.h>

#include "fidius.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SEARCH_PATH KEY.public\n", argv[0]);
        return 2;
    }
    fidius_host_builder *b = fidius_host_builder_new();
    fidius_host *host = NULL;
    fidius_plugin *calc = NULL;
    fidius_error *err = NULL;
    fidius_bytes out = {0};
    int ok = 0;
    if (fidius_host_builder_add_search_path(b, argv[1], &err) == FIDIUS_STATUS_OK &&
        fidius_host_builder_set_require_signature(b, true, &err) == FIDIUS_STATUS_OK &&
        fidius_host_builder_add_trusted_key_file(b, argv[2], &err) == FIDIUS_STATUS_OK &&
        fidius_host_builder_build(b, &host, &err) == FIDIUS_STATUS_OK &&
        fidius_host_load(host, "calc", NULL, &calc, &err) == FIDIUS_STATUS_OK &&
        fidius_plugin_call(calc, 0, FIDIUS_FORMAT_JSON, (const uint8_t *)"[2, 40]", 7, &out, &err) == FIDIUS_STATUS_OK) {
        size_t warnings = fidius_plugin_warning_count(calc);
        for (size_t i = 0; i < warnings; i++) fprintf(stderr, "warning: %s\n", fidius_plugin_warning(calc, i));
        ok = warnings == 0 && out.len == 2 && out.data[0] == '4' && out.data[1] == '2';
        printf("calc from a signed, fidius_precompile'd package: add = %.*s, %zu warnings\n", (int)out.len, (const char *)out.data, warnings);
    } else {
        fprintf(stderr, "aot_check: %s\n", fidius_error_message(err));
    }
    fidius_error_free(err);
    fidius_bytes_free(&out);
    fidius_plugin_free(calc);
    fidius_host_free(host);
    fidius_host_builder_free(b);
    return ok ? 0 : 1;
}
