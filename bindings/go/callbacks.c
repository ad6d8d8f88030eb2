#include "callbacks.h"
#include "_cgo_export.h"

static uint32_t egress_trampoline(void *user_data, fidius_http_request *request) {
    return fidiusGoEgress((uintptr_t)user_data, request);
}

static uint32_t socket_trampoline(void *user_data, fidius_socket_request *request) {
    return fidiusGoSocket((uintptr_t)user_data, request);
}

static uint32_t response_trampoline(void *user_data, fidius_http_request *request, const fidius_http_response *response) {
    return fidiusGoResponse((uintptr_t)user_data, request, (fidius_http_response *)response);
}

static void log_trampoline(void *user_data, uint32_t level, const char *message) {
    fidiusGoLog((uintptr_t)user_data, level, (char *)message);
}

static void host_fn_trampoline(void *user_data, uint32_t index, const uint8_t *input, size_t input_len,
                               fidius_host_call *call) {
    fidiusGoHostFn((uintptr_t)user_data, index, (uint8_t *)input, input_len, call);
}

static void release_trampoline(void *user_data) {
    fidiusGoRelease((uintptr_t)user_data);
}

static int32_t source_trampoline(void *user_data, const uint8_t **item, size_t *item_len) {
    return fidiusGoSource((uintptr_t)user_data, (uint8_t **)item, item_len);
}

static void source_release_trampoline(void *user_data) {
    fidiusGoSourceRelease((uintptr_t)user_data);
}

fidius_status fidiusgo_egress_policy_new(uintptr_t handle, fidius_egress_policy **policy, fidius_error **error) {
    return fidius_egress_policy_new(egress_trampoline, (void *)handle, release_trampoline, policy, error);
}

fidius_status fidiusgo_set_log_callback(fidius_host_builder *builder, uintptr_t handle, bool null_callback, fidius_error **error) {
    /* null_callback: tests force the registration to fail (NULL_ARGUMENT). */
    return fidius_host_builder_set_log_callback(builder, null_callback ? NULL : log_trampoline, (void *)handle,
                                                release_trampoline, error);
}

fidius_status fidiusgo_host_interface_new(const char *name, uint64_t hash, uint32_t version, uint32_t fn_count,
                                         uintptr_t handle, fidius_host_interface **interface, fidius_error **error) {
    return fidius_host_interface_new(name, hash, version, fn_count, host_fn_trampoline, (void *)handle,
                                     release_trampoline, interface, error);
}

fidius_status fidiusgo_egress_policy_set_socket_callback(fidius_egress_policy *policy, bool set, fidius_error **error) {
    return fidius_egress_policy_set_socket_callback(policy, set ? socket_trampoline : NULL, error);
}

fidius_status fidiusgo_egress_policy_set_response_callback(fidius_egress_policy *policy, bool set, fidius_error **error) {
    return fidius_egress_policy_set_response_callback(policy, set ? response_trampoline : NULL, error);
}

fidius_status fidiusgo_plugin_stream(const fidius_plugin *plugin, uint32_t method, uint32_t format, const uint8_t *input,
                                     size_t input_len, bool fed, uintptr_t handle, fidius_stream **stream,
                                     fidius_error **error) {
    return fidius_plugin_stream(plugin, method, format, input, input_len, fed ? source_trampoline : NULL,
                                (void *)handle, fed ? source_release_trampoline : NULL, stream, error);
}

fidius_status fidiusgo_plugin_call_streaming(const fidius_plugin *plugin, uint32_t method, uint32_t format,
                                             const uint8_t *input, size_t input_len, uintptr_t handle,
                                             fidius_bytes *output, fidius_error **error) {
    return fidius_plugin_call_streaming(plugin, method, format, input, input_len, source_trampoline, (void *)handle,
                                        source_release_trampoline, output, error);
}
