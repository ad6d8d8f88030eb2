/* C trampolines between libfidius callbacks and the package's exported Go
 * functions. user_data is a runtime/cgo.Handle, carried as an integer so no
 * Go pointer is ever stored in C memory. */
#ifndef FIDIUS_GO_CALLBACKS_H
#define FIDIUS_GO_CALLBACKS_H
#include <stdint.h>
#include "fidius.h"

fidius_status fidiusgo_egress_policy_new(uintptr_t handle, fidius_egress_policy **policy, fidius_error **error);
fidius_status fidiusgo_set_log_callback(fidius_host_builder *builder, uintptr_t handle, bool null_callback, fidius_error **error);
fidius_status fidiusgo_host_interface_new(const char *name, uint64_t hash, uint32_t version, uint32_t fn_count,
                                         uintptr_t handle, fidius_host_interface **interface, fidius_error **error);
fidius_status fidiusgo_egress_policy_set_socket_callback(fidius_egress_policy *policy, bool set, fidius_error **error);
fidius_status fidiusgo_egress_policy_set_response_callback(fidius_egress_policy *policy, bool set, fidius_error **error);
/* Streams: fed (a source, whose user data is handle) or not (a server stream). */
fidius_status fidiusgo_plugin_stream(const fidius_plugin *plugin, uint32_t method, uint32_t format, const uint8_t *input,
                                     size_t input_len, bool fed, uintptr_t handle, fidius_stream **stream,
                                     fidius_error **error);
fidius_status fidiusgo_plugin_call_streaming(const fidius_plugin *plugin, uint32_t method, uint32_t format,
                                             const uint8_t *input, size_t input_len, uintptr_t handle,
                                             fidius_bytes *output, fidius_error **error);

#endif
