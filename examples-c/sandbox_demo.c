/*
 * sandbox_demo: grant a WASM plugin a read-only host directory, and TCP
 * through a C socket policy.
 *
 * Usage: sandbox_demo PLUGIN_DIR
 *
 * Makes a scratch directory holding one file and starts a line-echo TCP
 * server on 127.0.0.1. Then, with components built by the fidius 0.5.9
 * guest crates:
 *  - "files" is loaded with the grant fs:ro:<dir>: it reads the file, and
 *    cannot write there nor read outside it;
 *  - "net" is loaded with the grants tcp and http, under a policy whose
 *    socket callback allows looking up "localhost" and connecting to the
 *    server by that name only: the echo works, a connect by bare address
 *    and a listen are refused, and the server sees only the allowed line.
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

/* --- a line-echo TCP server, one connection at a time --- */

struct server {
    int fd;
    uint16_t port;
    int lines;
};

static void *serve(void *arg) {
    struct server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) return NULL; /* closed by main */
        char line[256];
        size_t n = 0;
        while (n < sizeof line - 1) {
            ssize_t r = read(c, line + n, 1);
            if (r <= 0 || line[n] == '\n') break;
            n++;
        }
        line[n] = 0;
        s->lines++;
        char reply[300];
        int len = snprintf(reply, sizeof reply, "echo: %s\n", line);
        if (write(c, reply, (size_t)len) < 0) perror("write");
        close(c);
    }
}

/* --- the policy --- */

struct policy_state {
    uint16_t port;
    int asked;
    int destroyed;
};

/* No HTTP in this demo: the net component imports wasi:http, so it is
 * granted, but every request is denied. */
static uint32_t no_http(void *user_data, fidius_http_request *request) {
    (void)user_data;
    fidius_http_request_set_deny_reason(request, "this demo allows no HTTP", NULL);
    return FIDIUS_EGRESS_VERDICT_DENY;
}

/* Allow looking up localhost, and connecting to the demo server by that
 * name: the host name of a connect is the name this plugin instance
 * looked up, so a bare-address connect arrives with none. */
static uint32_t on_socket(void *user_data, fidius_socket_request *request) {
    struct policy_state *st = user_data;
    st->asked++;
    uint32_t use = fidius_socket_request_use(request);
    const char *host = fidius_socket_request_host(request);
    const char *address = fidius_socket_request_address(request);
    printf("  socket policy: %s asks for %s host=%s address=%s port=%u\n", fidius_socket_request_plugin(request),
           use == FIDIUS_SOCKET_USE_DNS_LOOKUP    ? "a DNS lookup"
           : use == FIDIUS_SOCKET_USE_TCP_CONNECT ? "a TCP connect"
                                                  : "UDP",
           host ? host : "(none)", address ? address : "(none)", (unsigned)fidius_socket_request_port(request));
    int is_localhost = host && strcmp(host, "localhost") == 0;
    if (use == FIDIUS_SOCKET_USE_DNS_LOOKUP && is_localhost) return FIDIUS_EGRESS_VERDICT_ALLOW;
    if (use == FIDIUS_SOCKET_USE_TCP_CONNECT && is_localhost && fidius_socket_request_port(request) == st->port)
        return FIDIUS_EGRESS_VERDICT_ALLOW;
    fidius_socket_request_set_deny_reason(request, "only localhost's demo server, by name", NULL);
    return FIDIUS_EGRESS_VERDICT_DENY;
}

static void destroy_state(void *user_data) {
    ((struct policy_state *)user_data)->destroyed++;
}

/* Call `method` with JSON `args`; print the outcome, return the status. */
static fidius_status call(fidius_plugin *plugin, const char *what, uint32_t method, const char *args) {
    fidius_bytes out = {NULL, 0, NULL};
    fidius_error *err = NULL;
    fidius_status st = fidius_plugin_call(plugin, method, FIDIUS_FORMAT_JSON, (const uint8_t *)args, strlen(args), &out, &err);
    if (st == FIDIUS_STATUS_OK)
        printf("  %s -> %.*s\n", what, (int)out.len, (const char *)out.data);
    else
        printf("  %s -> %s: %s\n", what, fidius_status_name(st), fidius_error_message(err));
    fidius_bytes_free(&out);
    fidius_error_free(err);
    return st;
}

static fidius_plugin *load_with_grants(fidius_host *host, const char *name, const char *const *grants, size_t count) {
    fidius_load_options *opts = fidius_load_options_new();
    fidius_error *err = NULL;
    fidius_plugin *plugin = NULL;
    if (fidius_load_options_set_grants(opts, grants, count, &err) != FIDIUS_STATUS_OK ||
        fidius_load_options_set_timeout_ms(opts, 30000, &err) != FIDIUS_STATUS_OK ||
        fidius_host_load(host, name, opts, &plugin, &err) != FIDIUS_STATUS_OK) {
        printf("load %s: %s\n", name, fidius_error_message(err));
        fidius_error_free(err);
    }
    fidius_load_options_free(opts);
    return plugin;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN_DIR\n", argv[0]);
        return 2;
    }
    /* The directory to grant, with one file in it. */
    char dir[] = "/tmp/fidius-sandbox-demo-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char file[128], forbidden[128];
    snprintf(file, sizeof file, "%s/hello.txt", dir);
    snprintf(forbidden, sizeof forbidden, "%s/new.txt", dir);
    FILE *f = fopen(file, "w");
    fputs("hello from the host", f);
    fclose(f);

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
    state->port = srv.port;
    fidius_egress_policy *policy = NULL;
    fidius_error *err = NULL;
    fidius_status st = fidius_egress_policy_new(no_http, state, destroy_state, &policy, &err);
    CHECK(st == FIDIUS_STATUS_OK, "policy");
    /* The socket callback is the second key of the tcp and udp capabilities. */
    CHECK(fidius_egress_policy_set_socket_callback(policy, on_socket, NULL) == FIDIUS_STATUS_OK, "socket callback");
    /* The demo server is on loopback, which the SSRF floor refuses by default. */
    CHECK(fidius_egress_policy_set_allow_private_ranges(policy, true, NULL) == FIDIUS_STATUS_OK, "private ranges");

    fidius_host_builder *builder = fidius_host_builder_new();
    fidius_host_builder_add_search_path(builder, argv[1], NULL);
    fidius_host_builder_set_egress_policy(builder, policy, NULL);
    fidius_egress_policy_free(policy); /* the builder holds its own reference */
    fidius_host *host = NULL;
    st = fidius_host_builder_build(builder, &host, &err);
    fidius_host_builder_free(builder);
    CHECK(st == FIDIUS_STATUS_OK, "build");

    /* files, with exactly this directory, read-only. */
    char grant[128];
    snprintf(grant, sizeof grant, "fs:ro:%s", dir);
    const char *files_grants[] = {grant};
    fidius_plugin *files = load_with_grants(host, "files", files_grants, 1);
    CHECK(files != NULL, "load files");
    if (files) {
        printf("loaded files with %s\n", grant);
        char args[300];
        snprintf(args, sizeof args, "[\"%s\"]", file);
        CHECK(call(files, "read hello.txt", 0, args) == FIDIUS_STATUS_OK, "read in the granted directory");
        snprintf(args, sizeof args, "[\"%s\", \"x\"]", forbidden);
        CHECK(call(files, "write new.txt", 1, args) == FIDIUS_STATUS_PLUGIN_ERROR, "write through a read-only grant");
        CHECK(access(forbidden, F_OK) != 0, "new.txt was created");
        CHECK(call(files, "read /etc/passwd", 0, "[\"/etc/passwd\"]") == FIDIUS_STATUS_PLUGIN_ERROR, "read outside");
        snprintf(args, sizeof args, "[\"%s/../../etc/passwd\"]", dir);
        CHECK(call(files, "read ../../etc/passwd", 0, args) == FIDIUS_STATUS_PLUGIN_ERROR, "escape with ..");
        fidius_plugin_free(files);
    }

    /* net, with tcp (and http, which its component imports). */
    const char *net_grants[] = {"tcp", "http"};
    fidius_plugin *net = load_with_grants(host, "net", net_grants, 2);
    CHECK(net != NULL, "load net");
    if (net) {
        printf("loaded net with tcp, http\n");
        char args[128];
        snprintf(args, sizeof args, "[\"localhost\", %u, \"hi\"]", (unsigned)srv.port);
        CHECK(call(net, "tcp_echo localhost", 0, args) == FIDIUS_STATUS_OK, "tcp by name");
        snprintf(args, sizeof args, "[\"127.0.0.1\", %u, \"by address\"]", (unsigned)srv.port);
        CHECK(call(net, "tcp_echo 127.0.0.1", 0, args) == FIDIUS_STATUS_PLUGIN_ERROR, "tcp by bare address");
        CHECK(call(net, "tcp_listen", 3, "[0]") == FIDIUS_STATUS_PLUGIN_ERROR, "listen");
        CHECK(srv.lines == 1, "the server saw %d lines, not 1", srv.lines);
        CHECK(state->asked >= 3, "the socket policy was asked %d times", state->asked);
        fidius_plugin_free(net);
    }

    fidius_host_free(host);
    CHECK(state->destroyed == 1, "destructor ran %d times", state->destroyed);
    free(state);
    shutdown(srv.fd, SHUT_RDWR);
    close(srv.fd);
    pthread_join(thread, NULL);
    unlink(file);
    rmdir(dir);
    printf(failures ? "FAILED: %d checks\n" : "sandbox demo: all checks passed\n", failures);
    return failures ? 1 : 0;
}
