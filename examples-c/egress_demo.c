/*
 * egress_demo: a C egress policy for a sandboxed WASM plugin.
 *
 * Usage: egress_demo PLUGIN_DIR
 *
 * Starts a tiny HTTP server on 127.0.0.1, then loads the "fetch" package
 * (a component built with the fidius 0.5.9 guest crates that makes HTTP
 * requests) with a policy that allows only that server and injects a
 * bearer token the plugin never sees. One allowed request (which must
 * arrive carrying the token) and one denied request (which must never
 * arrive). Checks that the policy's user-data destructor runs exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fidius.h"

static int failures = 0;

#define CHECK(cond, ...)                       \
    do {                                       \
        if (!(cond)) {                         \
            printf("FAILED: " __VA_ARGS__);    \
            printf("\n");                      \
            failures++;                        \
        }                                      \
    } while (0)

/* --- a one-connection-at-a-time HTTP server --- */

struct server {
    int fd;
    int port;
    int requests;
    char last_head[4096];
};

static void *serve(void *arg) {
    struct server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) return NULL; /* closed by main */
        size_t n = 0;
        while (n < sizeof s->last_head - 1 && !strstr(s->last_head, "\r\n\r\n")) {
            ssize_t r = read(c, s->last_head + n, sizeof s->last_head - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
            s->last_head[n] = 0;
        }
        s->requests++;
        static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        if (write(c, reply, sizeof reply - 1) < 0) perror("write");
        close(c);
    }
}

/* --- the policy --- */

struct policy_state {
    uint16_t allowed_port; /* on 127.0.0.1 */
    const char *token;
    int destroyed;
};

static uint32_t authorize(void *user_data, fidius_http_request *request) {
    struct policy_state *st = user_data;
    /* Decide on where the request really goes (the canonical host and the
     * resolved addresses), not on how the guest spelled the authority. */
    const char *host = fidius_http_request_host(request);
    uint16_t port = fidius_http_request_port(request);
    printf("  policy: %s asks for %s %s://%s%s (host %s, port %u, %zu address(es), first %s)\n",
           fidius_http_request_plugin(request), fidius_http_request_method(request), fidius_http_request_scheme(request),
           fidius_http_request_authority(request), fidius_http_request_path_and_query(request), host, (unsigned)port,
           fidius_http_request_address_count(request), fidius_http_request_address(request, 0));
    if (strcmp(host, "127.0.0.1") != 0 || port != st->allowed_port) {
        fidius_http_request_set_deny_reason(request, "only the demo server is allowed", NULL);
        return FIDIUS_EGRESS_VERDICT_DENY;
    }
    char value[128];
    snprintf(value, sizeof value, "Bearer %s", st->token);
    fidius_status st2 = fidius_http_request_set_header(request, "authorization", (const uint8_t *)value, strlen(value), NULL);
    CHECK(st2 == FIDIUS_STATUS_OK, "set_header");
    return FIDIUS_EGRESS_VERDICT_ALLOW;
}

static void destroy_state(void *user_data) {
    struct policy_state *st = user_data;
    st->destroyed++;
}

static void on_log(void *user_data, uint32_t level, const char *message) {
    (void)user_data;
    printf("  log[%u]: %s\n", level, message);
}

/* fetch(url) with a JSON argument list; prints and returns the status. */
static fidius_status fetch(fidius_plugin *plugin, const char *url) {
    char args[256];
    snprintf(args, sizeof args, "[\"%s\"]", url);
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, 0, FIDIUS_FORMAT_JSON, (const uint8_t *)args, strlen(args), &out, &err);
    if (st == FIDIUS_STATUS_OK)
        printf("  fetch %s -> %.*s\n", url, (int)out.len, (const char *)out.data);
    else
        printf("  fetch %s -> %s: %s\n    (the guest saw: %s)\n", url, fidius_status_name(st), fidius_error_message(err),
               fidius_error_plugin_message(err) ? fidius_error_plugin_message(err) : "-");
    fidius_bytes_free(&out);
    fidius_error_free(err);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN_DIR\n", argv[0]);
        return 2;
    }
    struct server srv = {0};
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(srv.fd, (struct sockaddr *)&addr, sizeof addr) || listen(srv.fd, 8) ||
        getsockname(srv.fd, (struct sockaddr *)&addr, &len)) {
        perror("server");
        return 1;
    }
    srv.port = ntohs(addr.sin_port);
    pthread_t thread;
    pthread_create(&thread, NULL, serve, &srv);

    struct policy_state *state = calloc(1, sizeof *state);
    state->allowed_port = (uint16_t)srv.port;
    state->token = "demo-token";

    fidius_egress_policy *policy = NULL;
    fidius_error *err = NULL;
    if (fidius_egress_policy_new(authorize, state, destroy_state, &policy, &err) != FIDIUS_STATUS_OK) {
        printf("policy: %s\n", fidius_error_message(err));
        return 1;
    }
    /* The demo server is on loopback, which the SSRF floor refuses by
     * default: this policy reaches the host's own network on purpose. */
    if (fidius_egress_policy_set_allow_private_ranges(policy, true, &err) != FIDIUS_STATUS_OK) {
        printf("policy: %s\n", fidius_error_message(err));
        return 1;
    }
    fidius_host_builder *builder = fidius_host_builder_new();
    fidius_host_builder_add_search_path(builder, argv[1], NULL);
    fidius_host_builder_set_egress_policy(builder, policy, NULL);
    fidius_host_builder_set_log_callback(builder, on_log, NULL, NULL, NULL);
    fidius_egress_policy_free(policy); /* the builder holds its own reference */
    fidius_host *host = NULL;
    fidius_status st = fidius_host_builder_build(builder, &host, &err);
    fidius_host_builder_free(builder);
    CHECK(st == FIDIUS_STATUS_OK, "build");

    fidius_plugin *plugin = NULL;
    st = fidius_host_load(host, "fetch", NULL, &plugin, &err);
    if (st != FIDIUS_STATUS_OK) {
        printf("load fetch: %s\n", fidius_error_message(err));
        return 1;
    }
    printf("loaded fetch (WASM, capability http, egress through the C policy)\n");

    char allowed[128], denied[128];
    snprintf(allowed, sizeof allowed, "http://127.0.0.1:%d/data", srv.port);
    snprintf(denied, sizeof denied, "http://localhost:%d/other", srv.port);
    CHECK(fetch(plugin, allowed) == FIDIUS_STATUS_OK, "allowed fetch");
    CHECK(srv.requests == 1, "the allowed request arrived");
    CHECK(strstr(srv.last_head, "authorization: Bearer demo-token\r\n") != NULL, "injected token arrived");
    printf("  server received: %.*s\n", (int)(strchr(srv.last_head, '\r') - srv.last_head), srv.last_head);
    CHECK(fetch(plugin, denied) == FIDIUS_STATUS_PLUGIN_ERROR, "denied fetch");
    CHECK(srv.requests == 1, "the denied request never arrived");

    CHECK(state->destroyed == 0, "destroyed too early");
    fidius_host_free(host);
    CHECK(state->destroyed == 0, "destroyed while the plugin still uses it");
    fidius_plugin_free(plugin);
    CHECK(state->destroyed == 1, "destructor ran %d times", state->destroyed);
    printf("  policy user data destroyed %d time(s)\n", state->destroyed);
    free(state);

    shutdown(srv.fd, SHUT_RDWR);
    close(srv.fd);
    pthread_join(thread, NULL);
    printf(failures ? "FAILED: %d checks\n" : "egress demo: all checks passed\n", failures);
    return failures ? 1 : 0;
}
