/*
 * soak: load, call and free plugins many times, and check that resident
 * memory and open file descriptors settle on a plateau instead of growing.
 *
 *     soak PLUGIN_DIR [SCALE [PYTHON_DIR]]
 *
 * PLUGIN_DIR is examples-c/build/plugins (BasicCalc from fidius 0.5.9, the
 * WASM package calc, KvUserImpl and hostfn calling a C host interface);
 * PYTHON_DIR is examples-c/build/python-plugins (the Python package pycalc,
 * made by fidius-cli 0.5.9), whose phase is left out without it.
 * SCALE (default 100, the figures; fractions allowed, each phase
 * runs at least 10 cycles) is the percentage of the full
 * run: 10 000 load -> call -> free cycles each of a native, a WASM, a
 * host-function and a Python plugin (each Python load starts a python3
 * runner and each free stops it: no child process may outlive its plugin);
 * 1 000 host build -> discover -> free cycles; then 8
 * threads x 100 000 native calls and 8 threads x 10 000 WASM calls, every
 * result checked, while another thread loads and frees other plugins.
 *
 * Each phase is measured after a warm-up tenth (the plateau: allocator
 * pools, the shared WASM engine and its compiled-component cache, mapped
 * libraries, thread stacks) and at its end; growth past the plateau beyond
 * the bounds below fails the run. Prints a table; exits non-zero on any
 * failed check. Timing is printed for information only.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fidius.h"

/* Allowed growth past the plateau: a few allocator arenas' worth, not a leak
 * of anything per cycle (10 000 cycles leaking 100 bytes each would be 1 MiB;
 * a leaked plugin instance or store is kilobytes to megabytes each). */
#define MAX_RSS_GROWTH_KIB (8 * 1024)
#define MAX_FD_GROWTH 0

static const char *dir;
static const char *python_dir;
static double scale = 100;
static int failures = 0;
static uint64_t kv_hash;
static uint32_t kv_version;

#define FAIL(...)                                   \
    do {                                            \
        fprintf(stderr, "FAILED: " __VA_ARGS__);    \
        fprintf(stderr, "\n");                      \
        __sync_fetch_and_add(&failures, 1);         \
    } while (0)

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream itself */
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t get_i64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}

static void put_i64(uint8_t *p, int64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

/* ---- a host interface in C: Kv with one value ---------------------------- */

static void kv_call(void *user_data, uint32_t index, const uint8_t *input, size_t len, struct fidius_host_call *call) {
    (void)user_data;
    (void)input;
    (void)len;
    /* get -> Some("v"); put -> () */
    static const uint8_t some_v[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 'v'};
    if (index == 0) fidius_host_call_set_output(call, some_v, sizeof some_v, NULL);
}

static int kv_destroyed = 0, kv_created = 0;
static void kv_destroy(void *user_data) {
    (void)user_data;
    __sync_fetch_and_add(&kv_destroyed, 1);
}

static struct fidius_host *make_host_in(const char *path, int with_kv) {
    struct fidius_host_builder *b = fidius_host_builder_new();
    struct fidius_host *host = NULL;
    fidius_host_builder_add_search_path(b, path, NULL);
    if (with_kv) {
        struct fidius_host_interface *kv = NULL;
        if (fidius_host_interface_new("Kv", kv_hash, kv_version, 2, kv_call, NULL, kv_destroy, &kv, NULL) != FIDIUS_STATUS_OK)
            FAIL("host interface");
        kv_created++;
        fidius_host_builder_add_host_interface(b, kv, NULL);
        fidius_host_interface_free(kv);
    }
    if (fidius_host_builder_build(b, &host, NULL) != FIDIUS_STATUS_OK) FAIL("build");
    fidius_host_builder_free(b);
    return host;
}

static struct fidius_host *make_host(int with_kv) {
    return make_host_in(dir, with_kv);
}

/* This process's child processes, running or not yet reaped. */
static int children(void) {
    int n = 0;
    DIR *tasks = opendir("/proc/self/task");
    struct dirent *t;
    while (tasks && (t = readdir(tasks))) {
        char path[300];
        if (t->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/children", t->d_name);
        FILE *f = fopen(path, "r");
        int pid;
        while (f && fscanf(f, "%d", &pid) == 1) n++;
        if (f) fclose(f);
    }
    if (tasks) closedir(tasks);
    return n;
}

static struct fidius_plugin *load(struct fidius_host *host, const char *name) {
    struct fidius_plugin *p = NULL;
    struct fidius_error *err = NULL;
    if (fidius_host_load(host, name, NULL, &p, &err) != FIDIUS_STATUS_OK) {
        FAIL("load %s: %s", name, fidius_error_message(err));
        fidius_error_free(err);
    }
    return p;
}

/* add(a, b) on calc-shaped plugins (native BasicCalc, WASM calc: method 0). */
static int add_ok(struct fidius_plugin *p, int64_t a, int64_t b) {
    uint8_t in[16];
    struct fidius_bytes out = {0};
    struct fidius_error *err = NULL;
    put_i64(in, a);
    put_i64(in + 8, b);
    int ok = fidius_plugin_call(p, 0, FIDIUS_FORMAT_WIRE, in, sizeof in, &out, &err) == FIDIUS_STATUS_OK &&
             out.len == 8 && get_i64(out.data) == a + b;
    if (err) fidius_error_free(err);
    fidius_bytes_free(&out);
    return ok;
}

/* fetch("k") on KvUserImpl / hostfn: Some("v") from the C Kv. */
static int fetch_ok(struct fidius_plugin *p) {
    static const uint8_t key[] = {1, 0, 0, 0, 0, 0, 0, 0, 'k'};
    struct fidius_bytes out = {0};
    struct fidius_error *err = NULL;
    int ok = fidius_plugin_call(p, 0, FIDIUS_FORMAT_WIRE, key, sizeof key, &out, &err) == FIDIUS_STATUS_OK &&
             out.len == 10 && out.data[0] == 1 && out.data[9] == 'v';
    if (err) fidius_error_free(err);
    fidius_bytes_free(&out);
    return ok;
}

/* ---- phases -------------------------------------------------------------- */

struct mark {
    long rss;
    int fds;
};

static struct mark mark(void) {
    struct mark m = {rss_kib(), open_fds()};
    return m;
}

/* Under valgrind or ASan resident memory is mostly the tool's (shadow
 * memory, quarantine, translations), so SOAK_UNDER_TOOL=1 checks
 * descriptors, children and results only; the tool checks for leaks. */
static int under_tool = 0;

static void row(const char *phase, int n, struct mark start, struct mark plateau, struct mark end, double secs) {
    long growth = end.rss - plateau.rss;
    int fd_growth = end.fds - plateau.fds;
    int ok = (under_tool || growth <= MAX_RSS_GROWTH_KIB) && fd_growth <= MAX_FD_GROWTH;
    printf("| %-34s | %7d | %8ld | %8ld | %8ld | %+7ld | %3d / %3d / %3d | %6.1f | %s |\n", phase, n, start.rss,
           plateau.rss, end.rss, growth, start.fds, plateau.fds, end.fds, secs,
           !ok ? "GROWS" : under_tool ? "fds ok" : "ok");
    if (!ok) FAIL("%s: rss grew %ld KiB and fds %d past the plateau", phase, growth, fd_growth);
}

typedef void (*cycle_fn)(struct fidius_host *host, int i);

static void cycle_native(struct fidius_host *host, int i) {
    struct fidius_plugin *p = load(host, "BasicCalc");
    if (p && !add_ok(p, i, 1)) FAIL("native add");
    fidius_plugin_free(p);
}

static void cycle_wasm(struct fidius_host *host, int i) {
    struct fidius_plugin *p = load(host, "calc");
    if (p && !add_ok(p, i, 2)) FAIL("wasm add");
    fidius_plugin_free(p);
}

/* add(i, 3) on the Python plugin pycalc, by name, in JSON. */
static void cycle_python(struct fidius_host *host, int i) {
    struct fidius_plugin *p = load(host, "pycalc");
    char in[64], want[32];
    struct fidius_bytes out = {0};
    struct fidius_error *err = NULL;
    uint32_t add = 0;
    if (!p) return;
    snprintf(in, sizeof in, "[%d, 3]", i);
    snprintf(want, sizeof want, "%d", i + 3);
    if (fidius_plugin_method_index(p, "add", &add, NULL) != FIDIUS_STATUS_OK ||
        fidius_plugin_call(p, add, FIDIUS_FORMAT_JSON, (const uint8_t *)in, strlen(in), &out, &err) != FIDIUS_STATUS_OK ||
        out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        FAIL("python add: %s", err ? fidius_error_message(err) : "wrong result");
    if (err) fidius_error_free(err);
    fidius_bytes_free(&out);
    fidius_plugin_free(p);
    if (children() != 0) FAIL("a python3 runner outlived its plugin");
}

static void cycle_hostfn(struct fidius_host *host, int i) {
    struct fidius_plugin *p = load(host, i % 2 ? "hostfn" : "KvUserImpl");
    if (p && !fetch_ok(p)) FAIL("host function fetch");
    fidius_plugin_free(p);
}

static void phase_in(const char *path, const char *name, int n, int with_kv, cycle_fn f) {
    struct mark start = mark(), plateau = start;
    struct fidius_host *host = make_host_in(path, with_kv);
    double t = now();
    for (int i = 0; i < n; i++) {
        if (i == n / 10) plateau = mark();
        f(host, i);
    }
    fidius_host_free(host);
    row(name, n, start, plateau, mark(), now() - t);
}

static void phase(const char *name, int n, int with_kv, cycle_fn f) {
    phase_in(dir, name, n, with_kv, f);
}

static void phase_hosts(int n) {
    struct mark start = mark(), plateau = start;
    double t = now();
    for (int i = 0; i < n; i++) {
        if (i == n / 10) plateau = mark();
        struct fidius_host *host = make_host(0);
        struct fidius_discovery *d = NULL;
        if (fidius_host_discover(host, &d, NULL) != FIDIUS_STATUS_OK || fidius_discovery_plugin_count(d) < 4)
            FAIL("discover");
        fidius_discovery_free(d);
        fidius_host_free(host);
    }
    row("host build -> discover -> free", n, start, plateau, mark(), now() - t);
}

struct worker {
    struct fidius_plugin *plugin;
    int calls;
    int id;
};

static void *call_worker(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < w->calls; i++)
        if (!add_ok(w->plugin, w->id * 1000003 + i, i)) {
            FAIL("threaded add %d/%d", w->id, i);
            break;
        }
    return NULL;
}

static volatile int churn_stop = 0;
static void *churn(void *arg) {
    struct fidius_host *host = arg;
    while (!churn_stop) {
        cycle_hostfn(host, 0);
        cycle_hostfn(host, 1);
    }
    return NULL;
}

static void phase_threads(const char *name, const char *plugin, int calls) {
    struct mark start = mark(), plateau;
    struct fidius_host *host = make_host(1);
    struct fidius_plugin *p = load(host, plugin);
    pthread_t threads[8], churner;
    struct worker w[8];
    double t = now();
    if (!p) return;
    /* Warm-up tenth, single file, for the plateau. */
    for (int i = 0; i < calls / 10; i++)
        if (!add_ok(p, i, i)) FAIL("warm-up add");
    plateau = mark();
    churn_stop = 0;
    pthread_create(&churner, NULL, churn, host);
    for (int i = 0; i < 8; i++) {
        w[i].plugin = p;
        w[i].calls = calls;
        w[i].id = i;
        pthread_create(&threads[i], NULL, call_worker, &w[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
    churn_stop = 1;
    pthread_join(churner, NULL);
    fidius_plugin_free(p);
    fidius_host_free(host);
    row(name, 8 * calls, start, plateau, mark(), now() - t);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN_DIR [SCALE%%]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    if (argc > 2) scale = atof(argv[2]);
    if (!(scale > 0)) scale = 1;
    under_tool = getenv("SOAK_UNDER_TOOL") != NULL;
    if (argc > 3) python_dir = argv[3];
#define N(full) ((full) * scale / 100 < 10 ? 10 : (int)((full) * scale / 100))

    /* The Kv identity the host-function fixtures were built against. */
    {
        struct fidius_host *host = make_host(0);
        struct fidius_plugin *p = load(host, "KvUserImpl");
        struct fidius_bytes out = {0};
        if (p && fidius_plugin_call(p, 3, FIDIUS_FORMAT_WIRE, NULL, 0, &out, NULL) == FIDIUS_STATUS_OK && out.len == 8)
            kv_hash = (uint64_t)get_i64(out.data);
        fidius_bytes_free(&out);
        kv_version = 1;
        fidius_plugin_free(p);
        fidius_host_free(host);
    }

    printf("libfidius %s soak, scale %g%%%s\n\n", fidius_version(), scale, under_tool ? " (under a tool: memory unchecked)" : "");
    printf("| %-34s | %7s | %8s | %8s | %8s | %7s | %-15s | %6s | %s |\n", "phase", "n", "rss0 KiB", "plateau",
           "end", "growth", "fds 0/plat/end", "secs", "");
    printf("|%s|\n", "------------------------------------|---------|----------|----------|----------|---------|-----------------|--------|-------");
    phase("native load -> call -> free", N(10000), 0, cycle_native);
    phase("WASM load -> call -> free", N(10000), 0, cycle_wasm);
    phase("host-function load -> call -> free", N(10000), 1, cycle_hostfn);
    if (python_dir) phase_in(python_dir, "Python load -> call -> free", N(10000), 0, cycle_python);
    phase_hosts(N(1000));
    phase_threads("8 threads x native calls + churn", "BasicCalc", N(100000));
    phase_threads("8 threads x WASM calls + churn", "calc", N(10000));
    printf("\nKv destroy ran %d times for %d host interfaces made\n", kv_destroyed, kv_created);
    if (kv_destroyed != kv_created) FAIL("destroy ran %d times for %d interfaces", kv_destroyed, kv_created);
    if (failures) {
        fprintf(stderr, "soak: %d failure(s)\n", failures);
        return 1;
    }
    printf("soak: memory and descriptors on a plateau, every result checked\n");
    return 0;
}
