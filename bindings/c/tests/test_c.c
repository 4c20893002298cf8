/*
 * The C API's test program, built with AddressSanitizer and UBSan by bindings/c/test.sh.
 * Runs against the in-memory store and a real redis-server ($STATEFUL_ROUTE_TEST_REDIS), and
 * stops, kills and restarts a redis-server of its own ($STATEFUL_ROUTE_TEST_REDIS_FAULT):
 * the normal flow, every status code, NULL pointers, invalid UTF-8, callbacks from runtime
 * threads, many threads computing one new user, and freeing everything (LeakSanitizer fails
 * the run on any leak). The link operations, the normal flow and a batch read across many
 * slots also run on a 3-master Redis Cluster ($STATEFUL_ROUTE_TEST_REDIS_CLUSTER, seed URLs
 * separated by commas).
 */
#define _DEFAULT_SOURCE
#include "stateful_route.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S(s) sr_str_from_cstr(s)
#define NS "default"
#define SVC "room"

static int checks, failures;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    checks++;                                                                        \
    if (!(cond)) {                                                                   \
      failures++;                                                                    \
      fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__, where, #cond); \
    }                                                                                \
  } while (0)

static const char *where = "setup";

/* Expects `call` to return `want`; checks the error object agrees and frees it. */
#define EXPECT(want, call)                                                           \
  do {                                                                               \
    sr_error *e_ = NULL;                                                             \
    sr_error **err_out = &e_;                                                        \
    sr_status got_ = (call);                                                         \
    checks++;                                                                        \
    if (got_ != (want)) {                                                            \
      failures++;                                                                    \
      fprintf(stderr, "%s:%d: [%s] %s: want %s, got %s: %s\n", __FILE__, __LINE__, where, #call, \
              sr_status_name(want), sr_status_name(got_), sr_error_message(e_));     \
    } else if ((want) != SR_OK) {                                                    \
      CHECK(e_ != NULL && sr_error_code(e_) == (want));                              \
      CHECK(strncmp(sr_error_message(e_), sr_status_name(want), strlen(sr_status_name(want))) == 0); \
    } else {                                                                         \
      CHECK(e_ == NULL);                                                             \
    }                                                                                \
    (void)err_out;                                                                   \
    sr_error_free(e_);                                                               \
  } while (0)

#define OK(call) EXPECT(SR_OK, call)

/* Polls (bounded, 5 s) for something another thread does. */
static int eventually(atomic_int *v, int want) {
  for (int i = 0; i < 500 && atomic_load(v) != want; i++) usleep(10000);
  return atomic_load(v) == want;
}

static sr_base_config fast_config(void) {
  sr_base_config c;
  sr_base_config_default(&c);
  c.service_state_update_period_seconds = 0.2;
  c.stale_after_seconds = 5.0;
  c.cpu_factor = 0.0;
  return c;
}

static sr_server_info info(const char *ns, const char *svc, int64_t pod) {
  sr_server_info i = {S(ns), S(svc), pod};
  return i;
}

/* The pod of `uid` in a batch read's pod -> uids groups, or -1; *uids counts every uid. */
static int64_t group_pod(const sr_pod_groups *g, const char *uid, size_t *uids) {
  int64_t pod = -1;
  *uids = 0;
  for (size_t i = 0; i < g->len; i++) {
    CHECK(i == 0 || g->groups[i].pod_index > g->groups[i - 1].pod_index); /* sorted by pod */
    for (size_t j = 0; j < g->groups[i].uids.len; j++) {
      (*uids)++;
      if (strcmp(g->groups[i].uids.strings[j], uid) == 0) pod = g->groups[i].pod_index;
    }
  }
  return pod;
}

/* ---- a store per test, with a prefix no other run uses ---- */

static const char *redis_url;
static const char *cluster_urls; /* comma-separated seed URLs */
static int prefix_seq;

static sr_store *new_store(int redis) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ct%d-%d", (int)getpid(), prefix_seq++);
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.key_prefix = S(prefix);
  sr_store *store = NULL;
  if (redis) {
    OK(sr_store_connect(S(redis_url), &sc, &store, err_out));
  } else {
    OK(sr_store_memory(&sc, &store, err_out));
  }
  return store;
}

/* A store on the test cluster; every seed URL of $STATEFUL_ROUTE_TEST_REDIS_CLUSTER is given. */
static sr_store *new_cluster_store(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ct%d-%d", (int)getpid(), prefix_seq++);
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.key_prefix = S(prefix);
  sr_str seeds[16];
  size_t n = 0;
  for (const char *p = cluster_urls; *p != '\0' && n < 16;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    seeds[n].ptr = p;
    seeds[n].len = len;
    n++;
    p += len + (end ? 1 : 0);
  }
  sr_store *store = NULL;
  OK(sr_store_connect_cluster(seeds, n, &sc, &store, err_out));
  return store;
}

static sr_server_driver *start_pod(sr_store *store, const char *svc, int64_t pod, int64_t load) {
  sr_base_config cfg = fast_config();
  sr_server_info i = info(NS, svc, pod);
  sr_server_driver *s = NULL;
  OK(sr_server_new(store, &i, &cfg, &s, err_out));
  OK(sr_server_set_load_state(s, load, err_out));
  OK(sr_server_start(s, err_out));
  return s;
}

static sr_client_driver *new_client(sr_store *store) {
  sr_base_config cfg = fast_config();
  sr_server_info i = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &i, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  return c;
}


/* ---- the normal flow ---- */

static void test_flow(sr_store *store) {
  where = "flow";
  sr_server_driver *p0 = start_pod(store, SVC, 0, 10);
  sr_client_driver *c = new_client(store);
  int64_t pod = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0); /* pod 0 is a real pod */
  pod = -2;
  OK(sr_client_compute_linked_pod(c, S(""), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_get_linked_in_cache(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_get_linked_pod(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_get_linked_pod_not_cache(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_get_linked_pod_in_cache_or_if_persist(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  uint64_t n = 0;
  OK(sr_client_cache_len(c, &n, err_out));
  CHECK(n == 1); /* u1 only */
  /* compute_linked_pod's halves: the cache probe (-1 on a miss), then the store */
  OK(sr_client_compute_cached(c, S(NS), S("halves"), S(SVC), &pod, err_out));
  CHECK(pod == -1);
  OK(sr_client_compute_linked_pod_uncached(c, S(NS), S("halves"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  pod = -2;
  OK(sr_client_compute_cached(c, S(""), S("halves"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_cached(c, S(NS), S("a}b"), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod_uncached(c, S(NS), S("u"), S(SVC), NULL, err_out));
  OK(sr_client_cache_expired(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_get_linked_in_cache(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == -1);
  OK(sr_client_get_linked_pod_in_cache_or_if_persist(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == -1); /* a gateway's placement is a temporary link */
  OK(sr_client_set_cache(c, S(NS), S("u1"), S(SVC), 0, err_out));
  OK(sr_client_get_linked_in_cache(c, S(NS), S("u1"), S(SVC), &pod, err_out));
  CHECK(pod == 0);

  sr_link link;
  OK(sr_store_get_link(store, S(NS), S("u1"), S(SVC), &link, err_out));
  CHECK(link.pod_index == 0 && !link.persistent && link.ttl_seconds > 200 && link.ttl_seconds <= 300);

  OK(sr_client_set_linked_pod_if_absent(c, S(NS), S("u2"), S(SVC), 0, -1, &link, err_out));
  CHECK(link.pod_index == 0 && link.persistent && link.ttl_seconds == -1);

  sr_service_links links;
  OK(sr_client_get_link_service(c, S(NS), S("u2"), &links, err_out));
  CHECK(links.len == 1 && strcmp(links.links[0].service, SVC) == 0 && links.links[0].pod_index == 0);
  sr_service_links_free(&links);
  CHECK(links.links == NULL && links.len == 0);
  sr_service_links_free(&links); /* a freed list frees again as a no-op */

  sr_str uids[3] = {S("u1"), S("nobody"), S("u2")};
  sr_pod_groups groups;
  size_t n_uids = 0;
  OK(sr_client_batch_get_linked_pod(c, S(NS), uids, 3, S(SVC), &groups, err_out));
  CHECK(groups.len == 1 && groups.groups[0].pod_index == 0 && groups.groups[0].uids.len == 2);
  CHECK(strcmp(groups.groups[0].uids.strings[0], "u1") == 0 && strcmp(groups.groups[0].uids.strings[1], "u2") == 0);
  CHECK(group_pod(&groups, "nobody", &n_uids) == -1 && n_uids == 2);
  sr_pod_groups_free(&groups);
  CHECK(groups.groups == NULL && groups.len == 0);
  sr_pod_groups_free(&groups); /* a freed list frees again as a no-op */
  sr_pod_list pods;

  /* the read side */
  OK(sr_client_alive_pods(c, S(SVC), &pods, err_out));
  CHECK(pods.len == 1 && pods.pods[0] == 0);
  sr_pod_list_free(&pods);
  OK(sr_client_routable_pods(c, S(SVC), &pods, err_out));
  CHECK(pods.len == 1 && pods.pods[0] == 0);
  sr_pod_list_free(&pods);
  bool yes = false;
  OK(sr_client_is_pod_alive(c, S(SVC), 0, &yes, err_out));
  CHECK(yes);
  OK(sr_client_is_pod_routable(c, S(SVC), 1, &yes, err_out));
  CHECK(!yes);
  OK(sr_client_best_pod(c, S(SVC), &pod, err_out));
  CHECK(pod == 0);
  sr_pod_state_list states;
  OK(sr_client_pod_states(c, S(SVC), &states, err_out));
  CHECK(states.len == 1 && states.states[0].pod_index == 0 && states.states[0].load == 10 &&
        states.states[0].routing_state == SR_ROUTING_READY && states.states[0].update_ms > 0 &&
        states.states[0].weight == 100);
  sr_pod_state_list stored;
  OK(sr_store_pod_states(store, S(NS), S(SVC), &stored, err_out));
  CHECK(stored.len == 1 && stored.states[0].pod_index == 0 && stored.states[0].load == 10 &&
        stored.states[0].weight == 100 && stored.states[0].routing_state == SR_ROUTING_READY);
  sr_pod_state_list_free(&stored);
  sr_pod_state_list_free(&states);

  /* workload state (pod 0 keeps it) and tags */
  char *word = NULL;
  OK(sr_client_get_workload_state(c, S(SVC), &word, err_out));
  CHECK(word != NULL && strcmp(word, "READY") == 0);
  sr_string_free(word);
  OK(sr_client_is_workload_ready(c, S(SVC), &yes, err_out));
  CHECK(yes);
  OK(sr_client_set_workload_state(c, S("other"), S("WARMING"), err_out));
  sr_str services[3] = {S(SVC), S("other"), S("unknown")};
  sr_string_list words;
  OK(sr_client_batch_get_workload_state(c, services, 3, &words, err_out));
  CHECK(words.len == 3 && strcmp(words.strings[0], "READY") == 0 && strcmp(words.strings[1], "WARMING") == 0 &&
        words.strings[2] == NULL);
  sr_string_list_free(&words);
  OK(sr_client_set_global_service_name_tag(c, S("rooms"), S(SVC), err_out));
  OK(sr_client_get_service_name_by_tag(c, S("rooms"), &word, err_out));
  CHECK(word != NULL && strcmp(word, SVC) == 0);
  sr_string_free(word);
  OK(sr_client_get_service_name_by_tag(c, S("nope"), &word, err_out));
  CHECK(word == NULL);

  /* server state */
  int64_t load = -1;
  OK(sr_server_get_load_state(p0, &load, err_out));
  CHECK(load == 10);
  OK(sr_server_weighted_load(p0, &load, err_out));
  CHECK(load == 10); /* cpu_factor 0: load only */
  sr_routing_state rs = SR_ROUTING_NOT_ALIVE;
  OK(sr_server_get_routing_state(p0, &rs, err_out));
  CHECK(rs == SR_ROUTING_READY);

  /* server link operations */
  int64_t prev = -2;
  OK(sr_server_set_linked_pod(p0, S(""), S("s1"), S(SVC), 0, &prev, err_out));
  CHECK(prev == -1);
  sr_try_set_outcome o;
  OK(sr_server_try_set_linked_pod(p0, S(NS), S("s1"), S(SVC), 3, &o, err_out));
  CHECK(!o.accepted && o.owner == 0 && o.previous == 0);
  bool removed = false;
  OK(sr_server_remove_linked_pod_with_id(p0, S(NS), S("s1"), S(SVC), 3, 0, &removed, err_out));
  CHECK(!removed);
  OK(sr_server_remove_linked_pod_with_id(p0, S(NS), S("s1"), S(SVC), 0, 0, &removed, err_out));
  CHECK(removed);
  OK(sr_server_remove_linked_pod(p0, S(NS), S("s1"), S(SVC), 0, &removed, err_out));
  CHECK(!removed);

  OK(sr_client_close(c, err_out));
  OK(sr_client_close(c, err_out)); /* idempotent */
  sr_client_free(c);
  OK(sr_server_stop(p0, err_out));
  OK(sr_server_stop(p0, err_out)); /* idempotent */
  sr_server_free(p0);
}

/* ---- store link operations (SPEC §4) ---- */

static void test_store_links(sr_store *store) {
  where = "store links";
  const char *ns = "links";
  int64_t prev = -2;
  OK(sr_store_set_link(store, S(ns), S("p1"), S(SVC), 3, -1, &prev, err_out));
  CHECK(prev == -1);
  OK(sr_store_set_link(store, S(ns), S("p1"), S(SVC), 5, -1, &prev, err_out));
  CHECK(prev == 3);
  sr_link l;
  OK(sr_store_set_link_if_absent(store, S(ns), S("p1"), S(SVC), 7, 60, &l, err_out));
  CHECK(l.pod_index == 5 && l.persistent);
  OK(sr_store_set_link_if_absent(store, S(ns), S("t1"), S(SVC), 2, 60, &l, err_out));
  CHECK(l.pod_index == 2 && !l.persistent && l.ttl_seconds > 50 && l.ttl_seconds <= 60);
  int64_t pod = -2;
  OK(sr_store_get_link_if_persist(store, S(ns), S("t1"), S(SVC), &pod, err_out));
  CHECK(pod == -1);
  OK(sr_store_get_link_if_persist(store, S(ns), S("p1"), S(SVC), &pod, err_out));
  CHECK(pod == 5);
  sr_try_set_outcome o;
  OK(sr_store_try_set_link(store, S(ns), S("p1"), S(SVC), 1, -1, &o, err_out));
  CHECK(!o.accepted && o.owner == 5 && o.previous == 5);
  OK(sr_store_try_set_link(store, S(ns), S("t1"), S(SVC), 1, -1, &o, err_out));
  CHECK(o.accepted && o.owner == 1 && o.previous == 2);
  sr_service_links links;
  OK(sr_store_get_link_services(store, S(ns), S("p1"), &links, err_out));
  CHECK(links.len == 1 && links.links[0].pod_index == 5);
  sr_service_links_free(&links);
  sr_str uids[3] = {S("p1"), S("t1"), S("none")};
  sr_pod_groups groups;
  size_t n_uids = 0;
  OK(sr_store_batch_get_links(store, S(ns), uids, 3, S(SVC), &groups, err_out));
  CHECK(groups.len == 2 && group_pod(&groups, "p1", &n_uids) == 5 && group_pod(&groups, "t1", &n_uids) == 1 &&
        group_pod(&groups, "none", &n_uids) == -1 && n_uids == 2);
  sr_pod_groups_free(&groups);
  OK(sr_store_batch_get_links(store, S(ns), uids, 0, S(SVC), &groups, err_out));
  CHECK(groups.len == 0);
  sr_pod_groups_free(&groups);
  sr_pod_state_list states;
  OK(sr_store_pod_states(store, S(ns), S(SVC), &states, err_out)); /* no pod published here */
  CHECK(states.len == 0);
  sr_pod_state_list_free(&states);
  bool removed = false;
  OK(sr_store_remove_link_if(store, S(ns), S("p1"), S(SVC), 4, 0, &removed, err_out));
  CHECK(!removed);
  OK(sr_store_remove_link_if(store, S(ns), S("p1"), S(SVC), 5, 0, &removed, err_out));
  CHECK(removed);
  OK(sr_store_remove_link(store, S(ns), S("t1"), S(SVC), 30, &removed, err_out));
  CHECK(removed);
  OK(sr_store_get_link(store, S(ns), S("t1"), S(SVC), &l, err_out)); /* delayed: still readable */
  CHECK(l.pod_index == 1 && !l.persistent);
  OK(sr_store_get_link(store, S(ns), S("p1"), S(SVC), &l, err_out));
  CHECK(l.pod_index == -1);
}

/* ---- status codes, NULL pointers, invalid UTF-8 ---- */

static void test_errors(sr_store *store) {
  where = "errors";
  sr_base_config cfg = fast_config();
  sr_server_info gw = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &gw, &cfg, &c, err_out));
  int64_t pod = -2;
  /* CLOSED before init */
  EXPECT(SR_CLOSED, sr_client_compute_linked_pod(c, S(NS), S("u"), S(SVC), &pod, err_out));
  CHECK(pod == -2); /* out-parameters are written only on success */
  OK(sr_client_init(c, err_out));

  /* INVALID_ARGUMENT: identifiers, UTF-8, pods, TTLs, NULLs */
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("a}b"), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S(""), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("u"), S("a:b"), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("\xff\xfe"), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S("\xc3"), S("u"), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(NULL, S(NS), S("u"), S(SVC), &pod, err_out));
  sr_str null_1 = {NULL, 1}, null_0 = {NULL, 0};
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, null_1, S("u"), S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), null_1, S(SVC), &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("u"), (sr_str){NULL, 4}, &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), null_0, S(SVC), &pod, err_out)); /* "" */
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("u"), (sr_str){SVC, 5}, &pod, err_out));
  OK(sr_client_get_linked_in_cache(c, null_0, S("u"), S(SVC), &pod, err_out)); /* "" = the local namespace */
  CHECK(pod == -1);
  sr_error *null_e = NULL;
  CHECK(sr_client_compute_linked_pod(c, null_1, S("u"), S(SVC), &pod, &null_e) == SR_INVALID_ARGUMENT);
  CHECK(null_e != NULL && strstr(sr_error_message(null_e), "invalid namespace: is NULL") != NULL);
  sr_error_free(null_e);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod(c, S(NS), S("u"), S(SVC), NULL, err_out));
  CHECK(sr_client_compute_linked_pod(c, S(NS), S("a}b"), S(SVC), &pod, NULL) == SR_INVALID_ARGUMENT);
  int64_t prev;
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(NS), S("u"), S(SVC), -1, -1, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(NS), S("u"), S(SVC), 2147483648LL, -1, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(NS), S("u"), S(SVC), 1, 0, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(NS), S("u"), S(SVC), 1, -2, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(""), S("u"), S(SVC), 1, -1, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(NULL, S(NS), S("u"), S(SVC), 1, -1, &prev, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_set_link(store, S(NS), S("u"), S(SVC), 1, -1, NULL, err_out));
  sr_link l;
  OK(sr_store_get_link(store, S(NS), S("u"), S(SVC), &l, err_out));
  CHECK(l.pod_index == -1); /* nothing was written */
  sr_str bad[2] = {S("ok"), S("\xff")};
  sr_pod_groups groups;
  EXPECT(SR_INVALID_ARGUMENT, sr_store_batch_get_links(store, S(NS), bad, 2, S(SVC), &groups, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_batch_get_links(store, S(NS), NULL, 0, S(SVC), &groups, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_pod_states(store, S(NS), S(SVC), NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_get_link_service(c, S(NS), S("u"), NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_get_workload_state(c, S(SVC), NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_set_workload_state(c, S(SVC), S("not a word"), err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_memory(NULL, NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect(null_0, NULL, NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_init(NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_close(NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_start(NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_stop(NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_on_routing_state_changed(c, NULL, NULL, NULL, NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_set_log_callback(SR_LOG_INFO, NULL, NULL, NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_set_log_callback(9, NULL, NULL, NULL, err_out));
  CHECK(sr_base_config_default(NULL) == SR_INVALID_ARGUMENT);
  CHECK(sr_store_config_default(NULL) == SR_INVALID_ARGUMENT);
  sr_server_info bad_info = info("a:b", SVC, 0);
  sr_server_driver *s = NULL;
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, &bad_info, &cfg, &s, err_out));
  CHECK(s == NULL);
  bad_info = info(NS, SVC, -1);
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, &bad_info, &cfg, &s, err_out));
  bad_info = info(NS, SVC, 0);
  bad_info.service_name = null_1;
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, &bad_info, &cfg, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, NULL, &cfg, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, &gw, NULL, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_new(store, &gw, &cfg, NULL, err_out));

  /* INVALID_CONFIG names the field */
  sr_base_config bad_cfg = cfg;
  bad_cfg.cpu_factor = 1.5;
  sr_error *e = NULL;
  CHECK(sr_server_new(store, &gw, &bad_cfg, &s, &e) == SR_INVALID_CONFIG);
  CHECK(e != NULL && strstr(sr_error_message(e), "cpu_factor") != NULL);
  sr_error_free(e);
  bad_cfg = cfg;
  bad_cfg.user_link_info_cache_time_seconds = 300;
  EXPECT(SR_INVALID_CONFIG, sr_client_new(store, &gw, &bad_cfg, &c, err_out));
  bad_cfg = cfg;
  bad_cfg.placement = S("7");
  EXPECT(SR_INVALID_CONFIG, sr_client_new(store, &gw, &bad_cfg, &c, err_out));
  bad_cfg.placement = null_1;
  EXPECT(SR_INVALID_ARGUMENT, sr_client_new(store, &gw, &bad_cfg, &c, err_out));
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.key_prefix = S("a:b");
  sr_store *st = NULL;
  EXPECT(SR_INVALID_CONFIG, sr_store_memory(&sc, &st, err_out));

  /* NAMESPACE_NOT_LOCAL */
  EXPECT(SR_NAMESPACE_NOT_LOCAL, sr_client_compute_linked_pod(c, S("other"), S("u"), S(SVC), &pod, err_out));

  /* NO_AVAILABLE_POD: a service without pods */
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("u"), S("empty"), &pod, err_out));
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_best_pod(c, S("empty"), &pod, err_out));

  /* POD_UNAVAILABLE: a persistent link to a pod that is not alive, with the pod */
  OK(sr_store_set_link(store, S(NS), S("stuck"), S("empty"), 7, -1, &prev, err_out));
  e = NULL;
  CHECK(sr_client_compute_linked_pod(c, S(NS), S("stuck"), S("empty"), &pod, &e) == SR_POD_UNAVAILABLE);
  CHECK(sr_error_code(e) == SR_POD_UNAVAILABLE && sr_error_pod_index(e) == 7);
  sr_error_free(e);

  /* CLOSED after close; server start after stop; second start */
  OK(sr_client_close(c, err_out));
  EXPECT(SR_CLOSED, sr_client_compute_linked_pod(c, S(NS), S("u"), S(SVC), &pod, err_out));
  EXPECT(SR_CLOSED, sr_client_init(c, err_out));
  sr_client_free(c);
  s = start_pod(store, "errsvc", 1, 0);
  EXPECT(SR_INVALID_ARGUMENT, sr_server_start(s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_set_load_state(s, -1, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_set_routing_state(s, 9, err_out));
  OK(sr_server_stop(s, err_out));
  EXPECT(SR_CLOSED, sr_server_start(s, err_out));
  EXPECT(SR_CLOSED, sr_server_set_load_state(s, 1, err_out));
  EXPECT(SR_CLOSED, sr_server_set_linked_pod(s, S(NS), S("u"), S(SVC), 1, &prev, err_out));
  sr_server_free(s);

  /* accessors on NULL */
  CHECK(sr_error_code(NULL) == SR_INVALID_ARGUMENT);
  CHECK(strcmp(sr_error_message(NULL), "") == 0);
  CHECK(sr_error_pod_index(NULL) == -1);
  sr_error_free(NULL);
  sr_string_free(NULL);
  sr_pod_list_free(NULL);
  sr_service_links_free(NULL);
  sr_string_list_free(NULL);
  sr_pod_state_list_free(NULL);
  sr_store_free(NULL);
  sr_client_free(NULL);
  sr_server_free(NULL);
}

/* ---- draining and shutdown ---- */

static void test_drain(sr_store *store) {
  where = "drain";
  sr_server_driver *p0 = start_pod(store, "drain", 0, 0);
  sr_server_driver *p1 = start_pod(store, "drain", 1, 0);
  sr_client_driver *c = new_client(store);
  int64_t prev, pod;
  /* u-temp is placed on 1 (temporary), u-keep is owned by 1 (persistent) */
  sr_link l;
  OK(sr_client_set_linked_pod_if_absent(c, S(NS), S("u-temp"), S("drain"), 1, 300, &l, err_out));
  OK(sr_server_set_linked_pod(p1, S(NS), S("u-keep"), S("drain"), 1, &prev, err_out));
  OK(sr_server_set_routing_state(p1, SR_ROUTING_DENY_NEW_CALL, err_out));
  OK(sr_client_refresh_service(c, S("drain"), err_out));
  /* draining keeps its users and takes no new ones */
  OK(sr_client_compute_linked_pod(c, S(NS), S("u-keep"), S("drain"), &pod, err_out));
  CHECK(pod == 1);
  for (int i = 0; i < 10; i++) {
    char uid[32];
    snprintf(uid, sizeof uid, "new-%d", i);
    OK(sr_client_compute_linked_pod(c, S(NS), S(uid), S("drain"), &pod, err_out));
    CHECK(pod == 0);
  }
  /* shutdown: the temporary link moves, the persistent one is reported */
  OK(sr_server_stop(p1, err_out));
  OK(sr_client_refresh_service(c, S("drain"), err_out));
  OK(sr_client_compute_linked_pod(c, S(NS), S("u-temp"), S("drain"), &pod, err_out));
  CHECK(pod == 0);
  sr_error *e = NULL;
  CHECK(sr_client_compute_linked_pod(c, S(NS), S("u-keep"), S("drain"), &pod, &e) == SR_POD_UNAVAILABLE);
  CHECK(sr_error_pod_index(e) == 1);
  sr_error_free(e);
  OK(sr_server_stop(p0, err_out));
  OK(sr_client_refresh_service(c, S("drain"), err_out));
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("brand-new"), S("drain"), &pod, err_out));
  char *word = NULL;
  OK(sr_client_get_workload_state(c, S("drain"), &word, err_out));
  CHECK(word != NULL && strcmp(word, "SHUTDOWN") == 0);
  sr_string_free(word);
  sr_client_free(c);
  sr_server_free(p0);
  sr_server_free(p1);
}

/* ---- metrics and explain ---- */

/* The config of the metrics and explain tests: round robin on load alone, no slow start. */
static sr_base_config metrics_config(void) {
  sr_base_config c = fast_config();
  c.placement = S("round_robin");
  c.cpu_factor = 0.0;
  c.slow_start_seconds = -1.0; /* off */
  return c;
}

static sr_server_driver *start_pod_with(sr_store *store, const sr_base_config *cfg, int64_t pod, int64_t load) {
  sr_server_info i = info(NS, SVC, pod);
  sr_server_driver *s = NULL;
  OK(sr_server_new(store, &i, cfg, &s, err_out));
  OK(sr_server_set_load_state(s, load, err_out));
  OK(sr_server_start(s, err_out));
  return s;
}

static sr_client_driver *client_with(sr_store *store, const sr_base_config *cfg) {
  sr_server_info i = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &i, cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  return c;
}

/* The value of the series `name` whose labels are exactly the `n_labels` pairs given (name,
 * value, name, value, ...), or NAN when the list has none. */
static double sample_value(const sr_sample_list *l, const char *name, int n_labels, ...) {
  const char *want[8][2];
  va_list ap;
  va_start(ap, n_labels);
  for (int i = 0; i < n_labels && i < 8; i++) {
    want[i][0] = va_arg(ap, const char *);
    want[i][1] = va_arg(ap, const char *);
  }
  va_end(ap);
  for (size_t i = 0; i < l->len; i++) {
    const sr_sample *s = &l->samples[i];
    if (strcmp(s->name, name) != 0 || s->labels_len != (size_t)n_labels) continue;
    int same = 1;
    for (int j = 0; j < n_labels && same; j++) {
      same = strcmp(s->labels[j].name, want[j][0]) == 0 && strcmp(s->labels[j].value, want[j][1]) == 0;
    }
    if (same) return s->value;
  }
  return NAN;
}

/* Whether the text exposition has the line `series value`. */
static int text_has(const char *text, const char *series, const char *value) {
  char line[512];
  snprintf(line, sizeof line, "%s %s\n", series, value);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
    if (p == text || p[-1] == '\n') return 1;
  }
  return 0;
}

static void test_metrics(sr_store *store) {
  where = "metrics";
  sr_base_config cfg = metrics_config();
  sr_server_driver *p0 = start_pod_with(store, &cfg, 0, 10);
  sr_server_driver *p1 = start_pod_with(store, &cfg, 1, 10);
  sr_client_driver *c = client_with(store, &cfg);
  int64_t pod = -2;
  /* 4 new users (round robin over pods 0 and 1), then 6 hits on them */
  int on[2] = {0, 0};
  for (int i = 0; i < 4; i++) {
    char uid[16];
    snprintf(uid, sizeof uid, "u%d", i);
    OK(sr_client_compute_linked_pod(c, S(NS), S(uid), S(SVC), &pod, err_out));
    CHECK(pod == 0 || pod == 1);
    if (pod == 0 || pod == 1) on[pod]++;
  }
  CHECK(on[0] == 2 && on[1] == 2);
  for (int i = 0; i < 6; i++) {
    char uid[16];
    snprintf(uid, sizeof uid, "u%d", i % 4);
    OK(sr_client_compute_linked_pod(c, S(NS), S(uid), S(SVC), &pod, err_out));
  }
  /* one error of a known kind: a service nobody serves */
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("u0"), S("empty"), &pod, err_out));
  /* a hit through the synchronous probe counts too */
  OK(sr_client_compute_cached(c, S(NS), S("u0"), S(SVC), &pod, err_out));
  CHECK(pod >= 0);

  sr_sample_list l = {NULL, 0};
  OK(sr_client_metrics(c, &l, err_out));
  CHECK(l.len > 0);
  const char *computes = "stateful_route_computes_total";
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "hit") == 7);
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "miss") == 4);
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "stale") == 0);
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "error") == 0);
  CHECK(sample_value(&l, computes, 2, "service", "empty", "result", "error") == 1);
  CHECK(sample_value(&l, "stateful_route_placements_total", 2, "service", SVC, "pod", "0") == 2);
  CHECK(sample_value(&l, "stateful_route_placements_total", 2, "service", SVC, "pod", "1") == 2);
  CHECK(isnan(sample_value(&l, "stateful_route_placements_total", 2, "service", SVC, "pod", "2")));
  CHECK(sample_value(&l, "stateful_route_errors_total", 1, "kind", "NO_AVAILABLE_POD") == 1);
  CHECK(sample_value(&l, "stateful_route_cache_entries", 0) == 4);
  CHECK(sample_value(&l, "stateful_route_pods", 2, "service", SVC, "state", "routable") == 2);
  CHECK(sample_value(&l, "stateful_route_pods", 2, "service", SVC, "state", "draining") == 0);
  CHECK(sample_value(&l, "stateful_route_pod_load", 2, "service", SVC, "pod", "1") == 10);
  CHECK(sample_value(&l, "stateful_route_pod_state_age_seconds", 2, "service", SVC, "pod", "0") >= 0);
  const char *calls = "stateful_route_store_call_seconds";
  CHECK(sample_value(&l, "stateful_route_store_call_seconds_count", 1, "op", "set_link_if_absent") == 4);
  CHECK(sample_value(&l, "stateful_route_store_call_seconds_bucket", 2, "op", "set_link_if_absent", "le", "+Inf") == 4);
  CHECK(sample_value(&l, "stateful_route_store_call_seconds_sum", 1, "op", "set_link_if_absent") > 0);
  CHECK(sample_value(&l, "stateful_route_event_stream_up", 0) == 1);
  /* no uid in any label; every series belongs to a family, its labels in the family's order */
  for (size_t i = 0; i < l.len; i++) {
    const sr_sample *s = &l.samples[i];
    const sr_metric_family *f = sr_metric_family_of(S(s->name));
    CHECK(f != NULL);
    if (f == NULL) continue;
    int bucket = strcmp(s->name + strlen(f->name), "_bucket") == 0;
    CHECK(s->labels_len == f->labels_len + (bucket ? 1 : 0));
    for (size_t j = 0; j < s->labels_len; j++) {
      CHECK(strncmp(s->labels[j].value, "u", 1) != 0 || strlen(s->labels[j].value) != 2);
      if (j < f->labels_len) CHECK(strcmp(s->labels[j].name, f->labels[j]) == 0);
    }
    if (bucket) CHECK(strcmp(s->labels[s->labels_len - 1].name, "le") == 0);
  }
  sr_sample_list_free(&l);
  CHECK(l.samples == NULL && l.len == 0);
  sr_sample_list_free(&l); /* freed twice: a no-op */

  char *text = NULL;
  OK(sr_client_metrics_text(c, &text, err_out));
  CHECK(text != NULL);
  if (text != NULL) {
    CHECK(text_has(text, "stateful_route_computes_total{service=\"room\",result=\"hit\"}", "7"));
    CHECK(text_has(text, "stateful_route_computes_total{service=\"room\",result=\"miss\"}", "4"));
    CHECK(text_has(text, "stateful_route_placements_total{service=\"room\",pod=\"1\"}", "2"));
    CHECK(text_has(text, "stateful_route_errors_total{kind=\"NO_AVAILABLE_POD\"}", "1"));
    CHECK(text_has(text, "stateful_route_pods{service=\"room\",state=\"routable\"}", "2"));
    CHECK(text_has(text, "stateful_route_store_call_seconds_count{op=\"set_link_if_absent\"}", "4"));
    CHECK(text_has(text, "stateful_route_event_stream_up", "1"));
    CHECK(strstr(text, "# TYPE stateful_route_store_call_seconds histogram\n") != NULL);
    CHECK(strstr(text, "# TYPE stateful_route_computes_total counter\n") != NULL);
    CHECK(strstr(text, "\"u0\"") == NULL);
  }
  sr_string_free(text);

  /* the families: a static table, the same the text types */
  const sr_metric_family *fams = NULL;
  size_t n = sr_metric_families(&fams);
  CHECK(n == sr_metric_families(NULL) && n >= 15 && fams != NULL);
  int seen = 0;
  for (size_t i = 0; fams != NULL && i < n; i++) {
    CHECK(fams[i].name != NULL && fams[i].help != NULL && strlen(fams[i].help) > 0);
    if (strcmp(fams[i].name, computes) == 0) {
      seen++;
      CHECK(fams[i].kind == SR_METRIC_COUNTER && fams[i].labels_len == 2);
      CHECK(strcmp(fams[i].labels[0], "service") == 0 && strcmp(fams[i].labels[1], "result") == 0);
    } else if (strcmp(fams[i].name, calls) == 0) {
      seen++;
      CHECK(fams[i].kind == SR_METRIC_HISTOGRAM);
    } else if (strcmp(fams[i].name, "stateful_route_cache_entries") == 0) {
      seen++;
      CHECK(fams[i].kind == SR_METRIC_GAUGE && fams[i].labels_len == 0);
    }
  }
  CHECK(seen == 3);
  const sr_metric_family *h = sr_metric_family_of(S("stateful_route_store_call_seconds_bucket"));
  CHECK(h != NULL && strcmp(h->name, calls) == 0 && h->kind == SR_METRIC_HISTOGRAM);
  CHECK(sr_metric_family_of(S("stateful_route_computes_total_bucket")) == NULL);
  CHECK(sr_metric_family_of(S("nope")) == NULL);
  CHECK(sr_metric_family_of(S("\xff")) == NULL);
  CHECK(sr_metric_family_of((sr_str){NULL, 3}) == NULL);

  /* a drain shows as a draining pod once the gateway sees it */
  OK(sr_server_set_routing_state(p1, SR_ROUTING_DENY_NEW_CALL, err_out));
  OK(sr_client_refresh_service(c, S(SVC), err_out));
  OK(sr_client_metrics(c, &l, err_out));
  CHECK(sample_value(&l, "stateful_route_pods", 2, "service", SVC, "state", "draining") == 1);
  CHECK(sample_value(&l, "stateful_route_pods", 2, "service", SVC, "state", "routable") == 1);
  sr_sample_list_free(&l);

  /* counting off: counters stay 0, gauges are reported */
  sr_base_config off = metrics_config();
  off.disable_metrics = true;
  sr_client_driver *quiet = client_with(store, &off);
  OK(sr_client_compute_linked_pod(quiet, S(NS), S("q"), S(SVC), &pod, err_out));
  OK(sr_client_compute_linked_pod(quiet, S(NS), S("q"), S(SVC), &pod, err_out));
  OK(sr_client_metrics(quiet, &l, err_out));
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "hit") == 0);
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "miss") == 0);
  CHECK(isnan(sample_value(&l, "stateful_route_placements_total", 2, "service", SVC, "pod", "0")));
  CHECK(sample_value(&l, "stateful_route_pods", 2, "service", SVC, "state", "routable") == 1);
  CHECK(sample_value(&l, "stateful_route_cache_entries", 0) == 1);
  sr_sample_list_free(&l);
  sr_client_free(quiet);

  /* after close: the last figures */
  OK(sr_client_close(c, err_out));
  OK(sr_client_metrics(c, &l, err_out));
  CHECK(sample_value(&l, computes, 2, "service", SVC, "result", "hit") == 7);
  sr_sample_list_free(&l);

  /* NULL pointers: a typed error, nothing written */
  l.samples = NULL;
  l.len = 77;
  EXPECT(SR_INVALID_ARGUMENT, sr_client_metrics(NULL, &l, err_out));
  CHECK(l.len == 77);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_metrics(c, NULL, err_out));
  CHECK(sr_client_metrics(NULL, NULL, NULL) == SR_INVALID_ARGUMENT);
  text = NULL;
  EXPECT(SR_INVALID_ARGUMENT, sr_client_metrics_text(NULL, &text, err_out));
  CHECK(text == NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_metrics_text(c, NULL, err_out));
  sr_sample_list_free(NULL);
  sr_client_free(c);
  OK(sr_server_stop(p0, err_out));
  OK(sr_server_stop(p1, err_out));
  sr_server_free(p0);
  sr_server_free(p1);
}

static const sr_explained_pod *explained(const sr_explanation *e, int64_t pod) {
  for (size_t i = 0; i < e->pods_len; i++) {
    if (e->pods[i].pod_index == pod) return &e->pods[i];
  }
  return NULL;
}

static void test_explain(sr_store *store) {
  where = "explain";
  sr_base_config cfg = metrics_config();
  cfg.load_range = 100;
  sr_server_driver *p0 = start_pod_with(store, &cfg, 0, 10);
  sr_server_driver *p1 = start_pod_with(store, &cfg, 1, 500);
  sr_server_driver *p2 = start_pod_with(store, &cfg, 2, 20);
  OK(sr_server_set_routing_state(p2, SR_ROUTING_DENY_NEW_CALL, err_out));
  sr_client_driver *c = client_with(store, &cfg);

  sr_explanation e;
  memset(&e, 0, sizeof e);
  OK(sr_client_explain_placement(c, S(""), S("newcomer"), S(SVC), &e, err_out));
  CHECK(e.namespace_name != NULL && strcmp(e.namespace_name, NS) == 0);
  CHECK(e.uid != NULL && strcmp(e.uid, "newcomer") == 0);
  CHECK(e.service != NULL && strcmp(e.service, SVC) == 0);
  CHECK(e.link.pod_index == -1 && !e.link.persistent && e.link.ttl_seconds == -1 && !e.link.pod_alive);
  CHECK(e.cached_pod == -1);
  CHECK(e.policy != NULL && strcmp(e.policy, "round_robin") == 0);
  CHECK(e.load_factor == 0);
  CHECK(e.load_range == 100);
  CHECK(e.pods_len == 3);
  const char *verdicts[3] = {"kept", "over_load_range", "not_routable"};
  for (size_t i = 0; i < e.pods_len && i < 3; i++) {
    CHECK(e.pods[i].pod_index == (int64_t)i);
    CHECK(strcmp(e.pods[i].verdict, verdicts[i]) == 0);
    CHECK(e.pods[i].alive);
    CHECK(e.pods[i].placed == 0);
    CHECK(e.pods[i].weight == 100);
    CHECK(e.pods[i].age_seconds >= 0 && e.pods[i].age_seconds < 5);
    CHECK(e.pods[i].reason != NULL && strlen(e.pods[i].reason) > 0);
  }
  const sr_explained_pod *busy = explained(&e, 1);
  CHECK(busy != NULL && busy->load == 500 && strstr(busy->reason, "load 500") != NULL);
  CHECK(busy != NULL && busy->routing_state == SR_ROUTING_READY);
  const sr_explained_pod *draining = explained(&e, 2);
  CHECK(draining != NULL && draining->routing_state == SR_ROUTING_DENY_NEW_CALL && draining->load == 20);
  CHECK(e.would_place_on == 0);
  CHECK(e.answer == 0);
  CHECK(e.summary != NULL && strlen(e.summary) > 0);
  CHECK(e.snapshot_age_seconds >= 0 && e.snapshot_age_seconds < 60);
  sr_explanation_free(&e);
  CHECK(e.pods == NULL && e.pods_len == 0 && e.summary == NULL && e.uid == NULL);
  sr_explanation_free(&e); /* freed twice: a no-op */

  /* a dry run: nothing written, no placement counted */
  sr_link l;
  OK(sr_store_get_link(store, S(NS), S("newcomer"), S(SVC), &l, err_out));
  CHECK(l.pod_index == -1);
  sr_sample_list samples;
  OK(sr_client_metrics(c, &samples, err_out));
  CHECK(isnan(sample_value(&samples, "stateful_route_placements_total", 2, "service", SVC, "pod", "0")));
  CHECK(sample_value(&samples, "stateful_route_computes_total", 2, "service", SVC, "result", "miss") == 0);
  sr_sample_list_free(&samples);

  /* a persistent link: shown, and the answer */
  int64_t prev;
  OK(sr_store_set_link(store, S(NS), S("linked"), S(SVC), 2, -1, &prev, err_out));
  OK(sr_client_explain_placement(c, S(NS), S("linked"), S(SVC), &e, err_out));
  CHECK(e.link.pod_index == 2 && e.link.persistent && e.link.pod_alive && e.link.ttl_seconds == -1);
  CHECK(e.answer == 2);
  CHECK(e.summary != NULL && strstr(e.summary, "persistent") != NULL);
  sr_explanation_free(&e);

  /* a temporary link, cached by this gateway */
  int64_t pod;
  OK(sr_client_compute_linked_pod(c, S(NS), S("temp"), S(SVC), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_client_explain_placement(c, S(NS), S("temp"), S(SVC), &e, err_out));
  CHECK(e.link.pod_index == 0 && !e.link.persistent && e.link.pod_alive);
  CHECK(e.link.ttl_seconds > 0 && e.link.ttl_seconds <= 300);
  CHECK(e.cached_pod == 0 && e.answer == 0);
  sr_explanation_free(&e);

  /* bad input: a typed error, nothing written */
  memset(&e, 0, sizeof e);
  e.pods_len = 99;
  EXPECT(SR_INVALID_ARGUMENT, sr_client_explain_placement(c, S(NS), S(""), S(SVC), &e, err_out));
  CHECK(e.pods_len == 99 && e.pods == NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_explain_placement(c, S(NS), S("\xff"), S(SVC), &e, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_explain_placement(c, S(NS), S("u"), (sr_str){NULL, 2}, &e, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_explain_placement(NULL, S(NS), S("u"), S(SVC), &e, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_explain_placement(c, S(NS), S("u"), S(SVC), NULL, err_out));
  EXPECT(SR_NAMESPACE_NOT_LOCAL, sr_client_explain_placement(c, S("other"), S("u"), S(SVC), &e, err_out));
  CHECK(e.pods_len == 99);
  sr_explanation_free(NULL);
  OK(sr_client_close(c, err_out));
  EXPECT(SR_CLOSED, sr_client_explain_placement(c, S(NS), S("u"), S(SVC), &e, err_out));
  sr_client_free(c);
  sr_server_driver *pods[3] = {p0, p1, p2};
  for (int i = 0; i < 3; i++) {
    OK(sr_server_stop(pods[i], err_out));
    sr_server_free(pods[i]);
  }
}

/* ---- ServerInfo from the Kubernetes environment ---- */

static const char *const env_vars[] = {"POD_NAMESPACE", "POD_NAME", "HOSTNAME", "STATEFUL_ROUTE_SERVICE"};
#define N_ENV_VARS (sizeof env_vars / sizeof *env_vars)

/* Sets exactly the variables given (NULL = unset), in env_vars order. */
static void set_env(const char *ns, const char *pod_name, const char *hostname, const char *service) {
  const char *values[N_ENV_VARS] = {ns, pod_name, hostname, service};
  for (size_t i = 0; i < N_ENV_VARS; i++) {
    if (values[i] != NULL) {
      setenv(env_vars[i], values[i], 1);
    } else {
      unsetenv(env_vars[i]);
    }
  }
}

static int info_is(const sr_owned_server_info *i, const char *ns, const char *svc, int64_t pod) {
  return i->namespace_name != NULL && strcmp(i->namespace_name, ns) == 0 && i->service_name != NULL &&
         strcmp(i->service_name, svc) == 0 && i->pod_index == pod;
}

static void test_from_env(void) {
  where = "from_env";
  char *saved[N_ENV_VARS];
  for (size_t i = 0; i < N_ENV_VARS; i++) {
    const char *v = getenv(env_vars[i]);
    saved[i] = v ? strdup(v) : NULL;
  }
  sr_owned_server_info i = {NULL, NULL, -2};
  set_env("games", "room-12", NULL, NULL);
  OK(sr_server_info_from_env(S(""), &i, err_out));
  CHECK(info_is(&i, "games", "room", 12));
  sr_owned_server_info_free(&i);
  CHECK(i.namespace_name == NULL && i.service_name == NULL);
  sr_owned_server_info_free(&i); /* freed twice: a no-op */
  OK(sr_server_info_from_env((sr_str){NULL, 0}, &i, err_out)); /* {NULL, 0} is "": none */
  CHECK(info_is(&i, "games", "room", 12));
  sr_owned_server_info_free(&i);
  /* the argument, then STATEFUL_ROUTE_SERVICE, then the StatefulSet's name */
  OK(sr_server_info_from_env(S("chat"), &i, err_out));
  CHECK(info_is(&i, "games", "chat", 12));
  sr_owned_server_info_free(&i);
  set_env("games", NULL, "my-room-3", "lobby");
  OK(sr_server_info_from_env(S(""), &i, err_out));
  CHECK(info_is(&i, "games", "lobby", 3)); /* HOSTNAME when POD_NAME is not set */
  /* what it derived makes a driver */
  sr_server_info made = {S(i.namespace_name), S(i.service_name), i.pod_index};
  sr_store *store = new_store(0);
  sr_base_config cfg = fast_config();
  sr_server_driver *s = NULL;
  OK(sr_server_new(store, &made, &cfg, &s, err_out));
  sr_server_free(s);
  sr_store_free(store);
  sr_owned_server_info_free(&i);
  set_env("games", "room-0", "ignored-7", "");
  OK(sr_server_info_from_env(S(""), &i, err_out));
  CHECK(info_is(&i, "games", "room", 0)); /* POD_NAME first; "" is unset */
  sr_owned_server_info_free(&i);

  /* INVALID_CONFIG naming the variable; nothing written */
  struct {
    const char *ns, *pod_name, *hostname, *field;
  } bad[] = {
      {"games", NULL, NULL, "POD_NAME"},       {"games", "room", NULL, "POD_NAME"},
      {"games", NULL, "room-x", "HOSTNAME"},   {"games", "room-007", NULL, "POD_NAME"},
      {"Bad_NS", "room-1", NULL, "POD_NAMESPACE"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    set_env(bad[k].ns, bad[k].pod_name, bad[k].hostname, NULL);
    sr_owned_server_info untouched = {NULL, NULL, -2};
    sr_error *e = NULL;
    CHECK(sr_server_info_from_env(S(""), &untouched, &e) == SR_INVALID_CONFIG);
    CHECK(e != NULL && sr_error_code(e) == SR_INVALID_CONFIG && strstr(sr_error_message(e), bad[k].field) != NULL);
    if (e != NULL && strstr(sr_error_message(e), bad[k].field) == NULL) fprintf(stderr, "  %s\n", sr_error_message(e));
    CHECK(untouched.namespace_name == NULL && untouched.pod_index == -2);
    sr_error_free(e);
  }
  /* no POD_NAMESPACE: the service-account file, which outside Kubernetes is not there */
  set_env(NULL, "room-1", NULL, NULL);
  FILE *f = fopen("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "r");
  if (f != NULL) {
    fclose(f);
    OK(sr_server_info_from_env(S(""), &i, err_out));
    CHECK(i.pod_index == 1);
    sr_owned_server_info_free(&i);
  } else {
    sr_error *e = NULL;
    CHECK(sr_server_info_from_env(S(""), &i, &e) == SR_INVALID_CONFIG);
    CHECK(e != NULL && strstr(sr_error_message(e), "POD_NAMESPACE") != NULL);
    sr_error_free(e);
  }
  /* bad arguments */
  set_env("games", "room-1", NULL, NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_server_info_from_env(S("ok"), NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_info_from_env(S("\xff"), &i, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_info_from_env((sr_str){NULL, 1}, &i, err_out));
  EXPECT(SR_INVALID_CONFIG, sr_server_info_from_env(S("a:b"), &i, err_out));
  sr_owned_server_info_free(NULL);

  for (size_t k = 0; k < N_ENV_VARS; k++) {
    if (saved[k] != NULL) {
      setenv(env_vars[k], saved[k], 1);
    } else {
      unsetenv(env_vars[k]);
    }
    free(saved[k]);
  }
}

/* ---- callbacks ---- */

struct listener {
  atomic_int calls, ready_to_deny, released;
  atomic_int nested_status;
  const sr_client_driver *client;
};

static void on_change(void *user_data, const sr_routing_state_change *ch) {
  struct listener *l = user_data;
  atomic_fetch_add(&l->calls, 1);
  if (ch->pod_index == 0 && ch->old_state == SR_ROUTING_READY && ch->new_state == SR_ROUTING_DENY_NEW_CALL &&
      strlen(ch->service.ptr) == ch->service.len && strcmp(ch->service.ptr, "cb") == 0)
    atomic_fetch_add(&l->ready_to_deny, 1);
  /* a blocking call from a callback is refused, never a deadlock or an abort */
  atomic_store(&l->nested_status, (int)sr_client_refresh_service(l->client, S("cb"), NULL));
}

static void on_release(void *user_data) {
  struct listener *l = user_data;
  atomic_fetch_add(&l->released, 1);
}

struct logs {
  atomic_int records, released, bad;
};

static void on_log(void *user_data, const sr_log_record *r) {
  struct logs *l = user_data;
  if (r->level < SR_LOG_ERROR || r->level > SR_LOG_TRACE || strlen(r->message.ptr) != r->message.len ||
      strlen(r->target.ptr) != r->target.len || strncmp(r->target.ptr, "stateful_route", 14) != 0)
    atomic_fetch_add(&l->bad, 1);
  atomic_fetch_add(&l->records, 1);
}

static void on_log_release(void *user_data) {
  struct logs *l = user_data;
  atomic_fetch_add(&l->released, 1);
}

static void test_callbacks(sr_store *store) {
  where = "callbacks";
  static struct logs logs; /* the log sink is process-wide */
  memset(&logs, 0, sizeof logs);
  OK(sr_set_log_callback(SR_LOG_DEBUG, on_log, on_log_release, &logs, err_out));
  sr_server_driver *p0 = start_pod(store, "cb", 0, 0); /* logs "pod started" */
  CHECK(atomic_load(&logs.records) > 0);
  sr_client_driver *c = new_client(store);
  struct listener l;
  memset(&l, 0, sizeof l);
  l.client = c;
  atomic_store(&l.nested_status, -1);
  uint64_t id = 0;
  OK(sr_client_on_routing_state_changed(c, on_change, on_release, &l, &id, err_out));
  int64_t pod;
  OK(sr_client_compute_linked_pod(c, S(NS), S("u"), S("cb"), &pod, err_out)); /* loads the snapshot */
  OK(sr_server_set_routing_state(p0, SR_ROUTING_DENY_NEW_CALL, err_out));
  /* Reported by this refresh or by the one the pod's event starts (propagation), whichever
   * applies the new state first: wait for it. */
  OK(sr_client_refresh_service(c, S("cb"), err_out));
  CHECK(eventually(&l.ready_to_deny, 1));
  CHECK(eventually(&l.nested_status, SR_INVALID_ARGUMENT));
  bool removed = false;
  OK(sr_client_remove_routing_state_listener(c, id, &removed, err_out));
  CHECK(removed);
  CHECK(eventually(&l.released, 1));
  OK(sr_client_remove_routing_state_listener(c, id, &removed, err_out));
  CHECK(!removed);
  int before = atomic_load(&l.calls);
  OK(sr_server_set_routing_state(p0, SR_ROUTING_READY, err_out));
  OK(sr_client_refresh_service(c, S("cb"), err_out));
  CHECK(atomic_load(&l.calls) == before);

  /* a listener still registered is released when its driver is freed */
  struct listener l2;
  memset(&l2, 0, sizeof l2);
  l2.client = c;
  OK(sr_client_on_routing_state_changed(c, on_change, on_release, &l2, &id, err_out));
  /* replacing the log callback releases the old one */
  static struct logs logs2;
  memset(&logs2, 0, sizeof logs2);
  OK(sr_set_log_callback(SR_LOG_INFO, on_log, on_log_release, &logs2, err_out));
  CHECK(eventually(&logs.released, 1));
  OK(sr_server_stop(p0, err_out));
  CHECK(atomic_load(&logs2.records) > 0);
  sr_clear_log_callback();
  CHECK(eventually(&logs2.released, 1));
  CHECK(atomic_load(&logs.bad) == 0 && atomic_load(&logs2.bad) == 0);
  sr_server_free(p0);
  sr_client_free(c);
  CHECK(eventually(&l2.released, 1));
}

/* ---- extension points: placement policies, load calculators, weights ---- */

/* How a test policy behaves; the same struct is its user_data. */
enum policy_mode { HIGHEST, FAIL, OUT_OF_RANGE, REFUSE, SILENT, NO_POD_STATUS };

struct policy {
  enum policy_mode mode;
  atomic_int calls, released, bad;
};

static int32_t place(void *user_data, const sr_candidate *cands, size_t n, const sr_placement_request *req,
                     int64_t *choice_out, sr_error **err_out) {
  struct policy *p = user_data;
  atomic_fetch_add(&p->calls, 1);
  /* plain data: sorted ready candidates, the request's strings as pointer + length */
  if (n == 0 || req->namespace_name.len != strlen(NS) || memcmp(req->namespace_name.ptr, NS, strlen(NS)) != 0 ||
      req->uid.len == 0 || req->service.len == 0)
    atomic_fetch_add(&p->bad, 1);
  for (size_t i = 0; i < n; i++)
    if (cands[i].routing_state != SR_ROUTING_READY || cands[i].weight != 100 || cands[i].effective_load < cands[i].load ||
        (i > 0 && cands[i].pod_index <= cands[i - 1].pod_index))
      atomic_fetch_add(&p->bad, 1);
  switch (p->mode) {
  case HIGHEST: *choice_out = (int64_t)n - 1; return SR_OK;
  case FAIL: *err_out = sr_error_new(SR_INTERNAL, S("policy refused")); return SR_INTERNAL;
  case OUT_OF_RANGE: *choice_out = (int64_t)n; return SR_OK;
  case REFUSE: *choice_out = -1; return SR_OK;
  case SILENT: return SR_OK;
  case NO_POD_STATUS: return SR_NO_AVAILABLE_POD;
  }
  return SR_INTERNAL;
}

static void policy_release(void *user_data) {
  struct policy *p = user_data;
  atomic_fetch_add(&p->released, 1);
}

/* load = the "sessions" signal × 10, or a failure when the signal is negative */
struct calc {
  atomic_int calls, released;
};

static int32_t calc_load(void *user_data, const sr_load_input *in, int64_t *load_out, sr_error **err_out) {
  struct calc *c = user_data;
  atomic_fetch_add(&c->calls, 1);
  double sessions = 0;
  for (size_t i = 0; i < in->signals_len; i++)
    if (in->signals[i].name.len == 8 && memcmp(in->signals[i].name.ptr, "sessions", 8) == 0) sessions = in->signals[i].value;
  if (sessions < 0) {
    *err_out = sr_error_new(SR_INVALID_ARGUMENT, S("negative sessions"));
    return SR_INVALID_ARGUMENT;
  }
  *load_out = (int64_t)(sessions * 10);
  return SR_OK;
}

static void calc_release(void *user_data) {
  struct calc *c = user_data;
  atomic_fetch_add(&c->released, 1);
}

static int64_t place_new(sr_client_driver *c, const char *svc, const char *prefix, int i) {
  char uid[48];
  snprintf(uid, sizeof uid, "%s%d", prefix, i);
  int64_t pod = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S(uid), S(svc), &pod, err_out));
  return pod;
}

static void test_extensions(sr_store *store) {
  where = "extensions";
  const char *svc = "ext";
  sr_server_driver *pods[3];
  for (int i = 0; i < 3; i++) pods[i] = start_pod(store, svc, i, 0);

  /* a custom policy as the config default: every new user on the highest pod */
  static struct policy highest, failing;
  memset(&highest, 0, sizeof highest);
  memset(&failing, 0, sizeof failing);
  highest.mode = HIGHEST;
  failing.mode = FAIL;
  sr_placement_policy *hp = NULL, *fp = NULL;
  OK(sr_placement_policy_new(place, policy_release, &highest, &hp, err_out));
  OK(sr_placement_policy_new(place, policy_release, &failing, &fp, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_placement_policy_new(NULL, policy_release, &highest, &hp, err_out));
  sr_base_config cfg = fast_config();
  cfg.placement_policy = hp;
  sr_server_info gi = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &gi, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  sr_placement_policy_free(hp); /* the driver keeps its own reference */
  CHECK(atomic_load(&highest.released) == 0);
  for (int i = 0; i < 20; i++) CHECK(place_new(c, svc, "hi", i) == 2);
  CHECK(atomic_load(&highest.calls) == 20);
  CHECK(atomic_load(&highest.bad) == 0);

  /* a failing policy for one service: a typed error, nothing written */
  OK(sr_client_set_service_placement_policy(c, S(svc), fp, err_out));
  int64_t pod = -2;
  sr_error *e = NULL;
  CHECK(sr_client_compute_linked_pod(c, S(NS), S("victim"), S(svc), &pod, &e) == SR_INTERNAL);
  CHECK(e != NULL && strstr(sr_error_message(e), "policy refused") != NULL);
  CHECK(pod == -2);
  sr_error_free(e);
  sr_link l;
  OK(sr_store_get_link(store, S(NS), S("victim"), S(svc), &l, err_out));
  CHECK(l.pod_index == -1);
  /* the other answers a policy can give */
  failing.mode = OUT_OF_RANGE;
  EXPECT(SR_INTERNAL, sr_client_compute_linked_pod(c, S(NS), S("victim"), S(svc), &pod, err_out));
  failing.mode = SILENT;
  EXPECT(SR_INTERNAL, sr_client_compute_linked_pod(c, S(NS), S("victim"), S(svc), &pod, err_out));
  failing.mode = NO_POD_STATUS;
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("victim"), S(svc), &pod, err_out));
  failing.mode = REFUSE;
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("victim"), S(svc), &pod, err_out));
  OK(sr_store_get_link(store, S(NS), S("victim"), S(svc), &l, err_out));
  CHECK(l.pod_index == -1);
  sr_placement_policy_free(fp);

  /* built-ins by name, per service */
  OK(sr_client_set_service_placement(c, S(svc), S("round_robin"), 0, err_out));
  CHECK(atomic_load(&failing.released) == 1); /* replaced and freed: released */
  int64_t rr[6];
  for (int i = 0; i < 6; i++) rr[i] = place_new(c, svc, "rr", i);
  /* in turn, from wherever this driver's placement count for the service stands */
  for (int i = 0; i < 6; i++) CHECK(rr[i] == (rr[0] + i) % 3);
  /* the core's Placement::from_setting decides: an unknown name or a stray factor is a config error */
  EXPECT(SR_INVALID_CONFIG, sr_client_set_service_placement(c, S(svc), S("nope"), 0, err_out));
  EXPECT(SR_INVALID_CONFIG, sr_client_set_service_placement(c, S(svc), S("p2c"), 2.0, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_set_service_placement(c, S(svc), (sr_str){NULL, 3}, 0, err_out));
  EXPECT(SR_INVALID_CONFIG, sr_client_set_service_placement(c, S(svc), S("rendezvous"), 0.5, err_out));
  OK(sr_client_set_service_placement(c, S(svc), S("rendezvous"), 1.5, err_out));
  /* rendezvous is deterministic: a second gateway agrees on every new user */
  sr_base_config rcfg = fast_config();
  rcfg.placement = S("rendezvous");
  sr_client_driver *c2 = NULL;
  OK(sr_client_new(store, &gi, &rcfg, &c2, err_out));
  OK(sr_client_init(c2, err_out));
  for (int i = 0; i < 10; i++) {
    char uid[32];
    snprintf(uid, sizeof uid, "hrw%d", i);
    int64_t a = -2, b = -3;
    OK(sr_client_compute_linked_pod(c, S(NS), S(uid), S(svc), &a, err_out));
    OK(sr_store_remove_link(store, S(NS), S(uid), S(svc), 0, &(bool){false}, err_out));
    OK(sr_client_compute_linked_pod(c2, S(NS), S(uid), S(svc), &b, err_out));
    CHECK(a == b);
  }
  sr_client_free(c2);
  rcfg.placement_load_factor = 0.5;
  EXPECT(SR_INVALID_CONFIG, sr_client_new(store, &gi, &rcfg, &c2, err_out));
  rcfg.placement = S("nope");
  EXPECT(SR_INVALID_CONFIG, sr_client_new(store, &gi, &rcfg, &c2, err_out));
  rcfg.placement = S("p2c");
  rcfg.placement_load_factor = 2.0; /* a factor for another policy */
  EXPECT(SR_INVALID_CONFIG, sr_client_new(store, &gi, &rcfg, &c2, err_out));

  /* weighted: weights 0, 0, 100 send every new user to pod 2 */
  int64_t w = -1;
  OK(sr_server_get_weight(pods[0], &w, err_out));
  CHECK(w == 100);
  OK(sr_server_set_weight(pods[0], 0, err_out));
  OK(sr_server_set_weight(pods[1], 0, err_out));
  OK(sr_server_get_weight(pods[0], &w, err_out));
  CHECK(w == 0);
  EXPECT(SR_INVALID_ARGUMENT, sr_server_set_weight(pods[0], -1, err_out));
  OK(sr_client_set_service_placement(c, S(svc), S("weighted"), 0, err_out));
  OK(sr_client_refresh_service(c, S(svc), err_out));
  for (int i = 0; i < 20; i++) CHECK(place_new(c, svc, "w", i) == 2);
  sr_client_free(c);
  CHECK(eventually(&highest.released, 1));
  for (int i = 0; i < 3; i++) {
    OK(sr_server_stop(pods[i], err_out));
    sr_server_free(pods[i]);
  }

  /* a custom load calculator moves new users: pod 0 reports 100 sessions (load 1000) */
  const char *lsvc = "extload";
  static struct calc calc;
  memset(&calc, 0, sizeof calc);
  sr_server_driver *lp[2];
  for (int i = 0; i < 2; i++) {
    lp[i] = start_pod(store, lsvc, i, 0);
    OK(sr_server_set_load_calculator(lp[i], calc_load, i == 0 ? calc_release : NULL, &calc, err_out));
  }
  OK(sr_server_set_load_signal(lp[0], S("sessions"), 100, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_set_load_signal(lp[0], S("sessions"), 0.0 / 0.0, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_server_set_load_signal(lp[0], S("bad name!"), 1, err_out));
  int64_t load = -1;
  OK(sr_server_weighted_load(lp[0], &load, err_out));
  CHECK(load == 1000);
  OK(sr_server_set_routing_state(lp[0], SR_ROUTING_READY, err_out)); /* publish now */
  c = new_client(store);
  for (int i = 0; i < 30; i++) CHECK(place_new(c, lsvc, "ld", i) == 1);
  /* a failing calculator: the error through try, the formula (load 0) published */
  OK(sr_server_set_load_signal(lp[0], S("sessions"), -1, err_out));
  e = NULL;
  CHECK(sr_server_try_weighted_load(lp[0], &load, &e) == SR_INVALID_ARGUMENT);
  CHECK(e != NULL && strstr(sr_error_message(e), "negative sessions") != NULL);
  sr_error_free(e);
  OK(sr_server_weighted_load(lp[0], &load, err_out));
  CHECK(load == 0);
  CHECK(atomic_load(&calc.calls) > 0);
  /* NULL restores the formula and releases the calculator */
  OK(sr_server_set_load_calculator(lp[0], NULL, NULL, NULL, err_out));
  CHECK(eventually(&calc.released, 1));
  OK(sr_server_try_weighted_load(lp[0], &load, err_out));
  CHECK(load == 0);
  /* sr_error_new: a non-error status is INTERNAL */
  e = sr_error_new(SR_OK, (sr_str){NULL, 0});
  CHECK(sr_error_code(e) == SR_INTERNAL);
  sr_error_free(e);
  sr_client_free(c);
  for (int i = 0; i < 2; i++) {
    OK(sr_server_stop(lp[i], err_out));
    sr_server_free(lp[i]);
  }
}

/* ---- many threads, one new user, one pod ---- */

struct race {
  const sr_client_driver *client;
  int64_t pod;
  sr_status status;
};

static void *race_thread(void *arg) {
  struct race *r = arg;
  r->status = sr_client_compute_linked_pod(r->client, S(NS), S("racer"), S("race"), &r->pod, NULL);
  return NULL;
}

static void test_threads(sr_store *store) {
  where = "threads";
  sr_server_driver *p[3];
  for (int i = 0; i < 3; i++) p[i] = start_pod(store, "race", i, 0);
  enum { N = 16 };
  sr_client_driver *clients[2] = {new_client(store), new_client(store)};
  pthread_t t[N];
  struct race r[N];
  for (int i = 0; i < N; i++) {
    r[i].client = clients[i % 2];
    r[i].pod = -2;
    pthread_create(&t[i], NULL, race_thread, &r[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++) {
    CHECK(r[i].status == SR_OK);
    CHECK(r[i].pod == r[0].pod);
  }
  CHECK(r[0].pod >= 0 && r[0].pod < 3);
  for (int i = 0; i < 2; i++) sr_client_free(clients[i]);
  for (int i = 0; i < 3; i++) {
    OK(sr_server_stop(p[i], err_out));
    sr_server_free(p[i]);
  }
}

/* ---- Redis only: unreachable, silent and corrupt stores ---- */

static int listen_silently(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  listen(fd, 16); /* never accepted, never answered */
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Sends one RESP command to the test Redis (to write a value the library never would). */
static int redis_raw_set(const char *key, const char *value) {
  const char *hostport = strstr(redis_url, "://");
  int port = atoi(strrchr(hostport + 3, ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return close(fd), -1;
  char cmd[512], reply[64];
  int n = snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(key), key, strlen(value),
                   value);
  int ok = write(fd, cmd, n) == n && read(fd, reply, sizeof reply) > 0 && reply[0] == '+';
  close(fd);
  return ok ? 0 : -1;
}

static void test_redis_failures(void) {
  where = "redis failures";
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.connect_timeout_ms = 300;
  sc.command_timeout_ms = 300;
  sr_store *s = NULL;
  /* STORE_UNAVAILABLE: nothing listens (a port we bound and closed) */
  int port;
  int fd = listen_silently(&port);
  close(fd);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  EXPECT(SR_STORE_UNAVAILABLE, sr_store_connect(S(url), &sc, &s, err_out));
  CHECK(s == NULL);
  /* TIMEOUT: something listens and never answers */
  fd = listen_silently(&port);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  EXPECT(SR_TIMEOUT, sr_store_connect(S(url), &sc, &s, err_out));
  close(fd);
  /* INVALID_ARGUMENT: not a URL */
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect(S("nope://x"), &sc, &s, err_out));
  /* STORE_ERROR: a link whose value is not a pod index; the message never shows a password */
  sr_store *store = new_store(1);
  char key[128];
  snprintf(key, sizeof key, "ct%d-%d:{%s:lk:bad}%s", (int)getpid(), prefix_seq - 1, NS, SVC);
  CHECK(redis_raw_set(key, "not-a-pod") == 0);
  sr_link l;
  EXPECT(SR_STORE_ERROR, sr_store_get_link(store, S(NS), S("bad"), S(SVC), &l, err_out));
  sr_store_free(store);
}

/* ---- Redis Cluster: the same answers as one node ---- */

static void test_cluster_batch(sr_store *cluster) {
  where = "cluster batch";
  /* users spread over many slots; input order is not key order */
  sr_store *memory = new_store(0);
  enum { N = 300 };
  char names[N][24];
  sr_str uids[N];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "batch-user-%d", N - 1 - i);
    uids[i].ptr = names[i];
    uids[i].len = strlen(names[i]);
    if (i % 7 == 3) continue; /* some users have no link */
    int64_t prev;
    for (int k = 0; k < 2; k++) {
      OK(sr_store_set_link(k ? memory : cluster, S(NS), S(names[i]), S(SVC), i % 5, i % 2 ? 300 : -1, &prev,
                           err_out));
    }
  }
  sr_pod_groups a, b;
  OK(sr_store_batch_get_links(cluster, S(NS), uids, N, S(SVC), &a, err_out));
  OK(sr_store_batch_get_links(memory, S(NS), uids, N, S(SVC), &b, err_out));
  /* the same groups, each in input order */
  int same = a.len == b.len, linked = 0;
  for (size_t i = 0; same && i < a.len; i++) {
    same = a.groups[i].pod_index == b.groups[i].pod_index && a.groups[i].uids.len == b.groups[i].uids.len;
    for (size_t j = 0; same && j < a.groups[i].uids.len; j++)
      same = strcmp(a.groups[i].uids.strings[j], b.groups[i].uids.strings[j]) == 0;
    linked += (int)a.groups[i].uids.len;
  }
  CHECK(same && a.len == 5);
  CHECK(linked == N - N / 7 - (N % 7 > 3));
  sr_pod_groups_free(&a);
  sr_pod_groups_free(&b);
  sr_store_free(memory);
}

/* ---- topology arguments, serve_stale_seconds, tls_ca_cert_pem ---- */

static void test_topology_config(void) {
  where = "topology config";
  sr_store_config sc;
  sr_store_config_default(&sc);
  CHECK(sc.tls_ca_cert_pem == NULL && sc.tls_ca_cert_pem_len == 0);
  sc.connect_timeout_ms = 300;
  sc.command_timeout_ms = 300;
  sr_store *s = NULL;
  sr_str none[1] = {S("")};
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_cluster(NULL, 1, &sc, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_cluster(none, 0, &sc, &s, err_out)); /* no seed */
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_cluster(none, 1, NULL, &s, err_out));
  sr_str bad_utf8[1] = {{"\xff", 1}};
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_cluster(bad_utf8, 1, &sc, &s, err_out));
  int port;
  int fd = listen_silently(&port);
  close(fd); /* nothing listens there now */
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  sr_str dead[1] = {S(url)};
  EXPECT(SR_STORE_UNAVAILABLE, sr_store_connect_cluster(dead, 1, &sc, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_sentinel(NULL, 1, S("main"), &sc, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_sentinel(dead, 0, S("main"), &sc, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_sentinel(dead, 1, (sr_str){NULL, 4}, &sc, &s, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_store_connect_sentinel(dead, 1, S(""), &sc, &s, err_out));
  EXPECT(SR_STORE_UNAVAILABLE, sr_store_connect_sentinel(dead, 1, S("main"), &sc, &s, err_out));
  /* a plain redis-server is no sentinel: it cannot name a master */
  sr_str not_sentinel[1] = {S(redis_url)};
  sr_status st = sr_store_connect_sentinel(not_sentinel, 1, S("main"), &sc, &s, NULL);
  CHECK(st != SR_OK && st != SR_INTERNAL);
  CHECK(s == NULL);

  /* a CA certificate is copied during the call; it is ignored by a redis:// connection */
  static const char pem[] = "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n";
  char *copy = strdup(pem);
  sc.tls_ca_cert_pem = (const uint8_t *)copy;
  sc.tls_ca_cert_pem_len = strlen(copy);
  sc.connect_timeout_ms = 5000;
  sc.command_timeout_ms = 2000;
  OK(sr_store_memory(&sc, &s, err_out));
  sr_store_free(s);
  s = NULL;
  /* with rediss:// it is parsed: an unusable certificate is an error, never a crash */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d", port);
  st = sr_store_connect(S(url), &sc, &s, NULL);
  CHECK(st != SR_OK && st != SR_INTERNAL && s == NULL);
  free(copy);

  /* serve_stale_seconds: 60 by default, 0 turns it off, negative or NaN is a config error */
  sr_base_config cfg;
  sr_base_config_default(&cfg);
  CHECK(cfg.serve_stale_seconds == 60.0);
  sr_store *mem = new_store(0);
  sr_server_info gw = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  cfg.serve_stale_seconds = 0.0;
  OK(sr_client_new(mem, &gw, &cfg, &c, err_out));
  sr_client_free(c);
  c = NULL;
  cfg.serve_stale_seconds = 2.5;
  OK(sr_client_new(mem, &gw, &cfg, &c, err_out));
  sr_client_free(c);
  c = NULL;
  cfg.serve_stale_seconds = -1.0;
  EXPECT(SR_INVALID_CONFIG, sr_client_new(mem, &gw, &cfg, &c, err_out));
  cfg.serve_stale_seconds = NAN;
  EXPECT(SR_INVALID_CONFIG, sr_client_new(mem, &gw, &cfg, &c, err_out));
  CHECK(c == NULL);
  sr_server_driver *sd = NULL;
  EXPECT(SR_INVALID_CONFIG, sr_server_new(mem, &gw, &cfg, &sd, err_out));
  CHECK(sd == NULL);
  sr_store_free(mem);
}

/* ---- the shared link-operation vectors (tests/vectors/links.json) ---- */

/* A small JSON reader, enough for the vector file: objects, arrays, strings (with escapes),
 * numbers, true, false, null. */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jv {
  jtype t;
  double num;
  char *str; /* J_STR: the bytes, NUL-terminated; len bytes (may contain NUL via \u0000) */
  size_t len;
  struct jv *items; /* J_ARR / J_OBJ: n values */
  char **keys;      /* J_OBJ: n keys */
  size_t n;
} jv;

static void jv_free(jv *v) {
  if (v->t == J_STR) free(v->str);
  for (size_t i = 0; i < v->n; i++) {
    jv_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  memset(v, 0, sizeof *v);
}

static const char *j_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
  return p;
}

static const char *j_parse(const char *p, jv *out);

static const char *j_string(const char *p, char **s, size_t *len) {
  if (*p != '"') return NULL;
  p++;
  size_t cap = 16, n = 0;
  char *b = malloc(cap);
  while (*p != '"') {
    if (*p == '\0') {
      free(b);
      return NULL;
    }
    unsigned c = (unsigned char)*p++;
    if (c == '\\') {
      char e = *p++;
      switch (e) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          unsigned u = 0;
          for (int i = 0; i < 4; i++) {
            char h = *p++;
            u = u * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
          }
          if (u >= 0x80) { /* BMP only (the file has no surrogates) */
            if (n + 3 >= cap) b = realloc(b, cap *= 2);
            if (u < 0x800) {
              b[n++] = (char)(0xc0 | (u >> 6));
            } else {
              b[n++] = (char)(0xe0 | (u >> 12));
              b[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
            }
            c = 0x80 | (u & 0x3f);
          } else {
            c = u;
          }
          break;
        }
        default: c = (unsigned char)e; /* \" \\ \/ */
      }
    }
    if (n + 1 >= cap) b = realloc(b, cap *= 2);
    b[n++] = (char)c;
  }
  b[n] = '\0';
  *s = b;
  *len = n;
  return p + 1;
}

static const char *j_parse(const char *p, jv *out) {
  memset(out, 0, sizeof *out);
  p = j_ws(p);
  if (*p == '{' || *p == '[') {
    int obj = *p == '{';
    out->t = obj ? J_OBJ : J_ARR;
    p = j_ws(p + 1);
    if (*p == (obj ? '}' : ']')) return p + 1;
    for (;;) {
      out->items = realloc(out->items, (out->n + 1) * sizeof *out->items);
      if (obj) {
        out->keys = realloc(out->keys, (out->n + 1) * sizeof *out->keys);
        size_t kl;
        p = j_string(j_ws(p), &out->keys[out->n], &kl);
        if (p == NULL) return NULL;
        p = j_ws(p);
        if (*p++ != ':') return NULL;
      }
      p = j_parse(p, &out->items[out->n]);
      out->n++;
      if (p == NULL) return NULL;
      p = j_ws(p);
      if (*p == ',') {
        p++;
        continue;
      }
      if (*p == (obj ? '}' : ']')) return p + 1;
      return NULL;
    }
  }
  if (*p == '"') {
    out->t = J_STR;
    return j_string(p, &out->str, &out->len);
  }
  if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
    out->t = J_BOOL;
    out->num = *p == 't';
    return p + (*p == 't' ? 4 : 5);
  }
  if (strncmp(p, "null", 4) == 0) {
    out->t = J_NULL;
    return p + 4;
  }
  char *end;
  out->t = J_NUM;
  out->num = strtod(p, &end);
  return end == p ? NULL : end;
}

static const jv *j_get(const jv *obj, const char *key) {
  if (obj == NULL || obj->t != J_OBJ) return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  return NULL;
}

/* Equal as JSON values (object keys in any order; a missing value is null). */
static int j_equal(const jv *a, const jv *b) {
  static const jv null_value = {J_NULL, 0, NULL, 0, NULL, NULL, 0};
  if (a == NULL) a = &null_value;
  if (b == NULL) b = &null_value;
  if (a->t != b->t) return 0;
  switch (a->t) {
    case J_NULL: return 1;
    case J_BOOL:
    case J_NUM: return a->num == b->num;
    case J_STR: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case J_ARR:
      if (a->n != b->n) return 0;
      for (size_t i = 0; i < a->n; i++)
        if (!j_equal(&a->items[i], &b->items[i])) return 0;
      return 1;
    case J_OBJ:
      if (a->n != b->n) return 0;
      for (size_t i = 0; i < a->n; i++)
        if (!j_equal(&a->items[i], j_get(b, a->keys[i]))) return 0;
      return 1;
  }
  return 0;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  size_t got = fread(b, 1, (size_t)n, f);
  fclose(f);
  b[got] = '\0';
  return b;
}

/* Appends a JSON string (the vector file's uids need only \" \\ and control escapes). */
static void json_str(char *buf, size_t cap, const char *s, size_t len) {
  size_t n = strlen(buf);
  n += (size_t)snprintf(buf + n, cap - n, "\"");
  for (size_t i = 0; i < len && n + 8 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      n += (size_t)snprintf(buf + n, cap - n, "\\%c", c);
    } else if (c < 0x20) {
      n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
    } else {
      buf[n++] = (char)c;
      buf[n] = '\0';
    }
  }
  snprintf(buf + n, cap - n, "\"");
}

static void json_link(char *got, size_t cap, sr_link l) {
  if (l.pod_index < 0) {
    snprintf(got, cap, "{\"pod\": null}");
  } else if (l.persistent) {
    snprintf(got, cap, "{\"pod\": %lld, \"persistent\": true, \"ttl\": null}", (long long)l.pod_index);
  } else {
    snprintf(got, cap, "{\"pod\": %lld, \"persistent\": false, \"ttl\": %.17g}", (long long)l.pod_index,
             l.ttl_seconds);
  }
}

/* Runs one step; returns 1 if it ran (whatever its outcome), 0 on an unknown op. */
static int run_vector_step(sr_store *store, const char *default_ns, const jv *step, const char *at) {
  const jv *op = j_get(step, "op"), *expect = j_get(step, "expect");
  const jv *nsv = j_get(step, "namespace"), *uidv = j_get(step, "uid"), *svcv = j_get(step, "service");
  sr_str ns = {nsv ? nsv->str : default_ns, nsv ? nsv->len : strlen(default_ns)};
  sr_str uid = {uidv ? uidv->str : "", uidv ? uidv->len : 0};
  sr_str svc = {svcv ? svcv->str : "", svcv ? svcv->len : 0};
  const jv *podv = j_get(step, "pod"), *ttlv = j_get(step, "ttl"), *delayv = j_get(step, "delay");
  int64_t pod = podv ? (int64_t)podv->num : 0, ttl = ttlv ? (int64_t)ttlv->num : 0;
  int64_t delay = delayv ? (int64_t)delayv->num : 0;
  char got[4096] = "";
  sr_error *err = NULL;
  sr_status st;
  if (op == NULL || op->t != J_STR || expect == NULL) return 0;
  const char *o = op->str;
  if (strcmp(o, "set_link") == 0) {
    int64_t prev = -2;
    st = sr_store_set_link(store, ns, uid, svc, pod, ttl, &prev, &err);
    if (prev == -1)
      snprintf(got, sizeof got, "{\"previous\": null}");
    else
      snprintf(got, sizeof got, "{\"previous\": %lld}", (long long)prev);
  } else if (strcmp(o, "set_link_if_absent") == 0) {
    sr_link l = {-1, false, -1};
    st = sr_store_set_link_if_absent(store, ns, uid, svc, pod, ttl, &l, &err);
    json_link(got, sizeof got, l);
  } else if (strcmp(o, "try_set_link") == 0) {
    sr_try_set_outcome t = {false, -1, -1};
    st = sr_store_try_set_link(store, ns, uid, svc, pod, ttl, &t, &err);
    if (t.previous < 0)
      snprintf(got, sizeof got, "{\"accepted\": %s, \"owner\": %lld, \"previous\": null}",
               t.accepted ? "true" : "false", (long long)t.owner);
    else
      snprintf(got, sizeof got, "{\"accepted\": %s, \"owner\": %lld, \"previous\": %lld}",
               t.accepted ? "true" : "false", (long long)t.owner, (long long)t.previous);
  } else if (strcmp(o, "remove_link") == 0 || strcmp(o, "remove_link_if") == 0) {
    bool removed = false;
    if (o[11] == '\0')
      st = sr_store_remove_link(store, ns, uid, svc, delay, &removed, &err);
    else
      st = sr_store_remove_link_if(store, ns, uid, svc, pod, delay, &removed, &err);
    snprintf(got, sizeof got, "{\"removed\": %s}", removed ? "true" : "false");
  } else if (strcmp(o, "get_link") == 0) {
    sr_link l = {-1, false, -1};
    st = sr_store_get_link(store, ns, uid, svc, &l, &err);
    json_link(got, sizeof got, l);
  } else if (strcmp(o, "get_link_if_persist") == 0) {
    int64_t p = -2;
    st = sr_store_get_link_if_persist(store, ns, uid, svc, &p, &err);
    if (p < 0)
      snprintf(got, sizeof got, "{\"pod\": null}");
    else
      snprintf(got, sizeof got, "{\"pod\": %lld}", (long long)p);
  } else if (strcmp(o, "get_link_services") == 0) {
    sr_service_links links = {NULL, 0};
    st = sr_store_get_link_services(store, ns, uid, &links, &err);
    snprintf(got, sizeof got, "{\"services\": {");
    for (size_t i = 0; i < links.len; i++) {
      if (i) strncat(got, ", ", sizeof got - strlen(got) - 1);
      json_str(got, sizeof got, links.links[i].service, strlen(links.links[i].service));
      size_t n = strlen(got);
      snprintf(got + n, sizeof got - n, ": %lld", (long long)links.links[i].pod_index);
    }
    strncat(got, "}}", sizeof got - strlen(got) - 1);
    sr_service_links_free(&links);
  } else if (strcmp(o, "batch_get_links") == 0) {
    const jv *uids = j_get(step, "uids");
    size_t n = uids ? uids->n : 0;
    sr_str *arr = calloc(n + 1, sizeof *arr);
    for (size_t i = 0; i < n; i++) {
      arr[i].ptr = uids->items[i].str;
      arr[i].len = uids->items[i].len;
    }
    sr_pod_groups groups = {NULL, 0};
    st = sr_store_batch_get_links(store, ns, arr, n, svc, &groups, &err);
    /* {"pods": {"<pod>": [uids with that pod, in input order], ...}}: the library's shape */
    snprintf(got, sizeof got, "{\"pods\": {");
    for (size_t i = 0; st == SR_OK && i < groups.len; i++) {
      size_t m = strlen(got);
      snprintf(got + m, sizeof got - m, "%s\"%lld\": [", i ? ", " : "", (long long)groups.groups[i].pod_index);
      for (size_t j = 0; j < groups.groups[i].uids.len; j++) {
        if (j) strncat(got, ", ", sizeof got - strlen(got) - 1);
        const char *u = groups.groups[i].uids.strings[j];
        json_str(got, sizeof got, u, strlen(u));
      }
      strncat(got, "]", sizeof got - strlen(got) - 1);
    }
    strncat(got, "}}", sizeof got - strlen(got) - 1);
    sr_pod_groups_free(&groups);
    free(arr);
  } else {
    fprintf(stderr, "%s: unknown op %s\n", at, o);
    return 0;
  }
  const jv *want_error = j_get(expect, "error");
  if (want_error != NULL) {
    checks++;
    if (st == SR_OK || strcmp(sr_status_name(st), want_error->str) != 0 || sr_error_code(err) != st) {
      failures++;
      fprintf(stderr, "%s: want %s, got %s (%s)\n", at, want_error->str, sr_status_name(st), sr_error_message(err));
    }
    sr_error_free(err);
    return 1;
  }
  checks++;
  if (st != SR_OK) {
    failures++;
    fprintf(stderr, "%s: unexpected %s\n", at, sr_error_message(err));
    sr_error_free(err);
    return 1;
  }
  jv g;
  if (j_parse(got, &g) == NULL) {
    checks++;
    failures++;
    fprintf(stderr, "%s: the test made bad JSON: %s\n", at, got);
    jv_free(&g);
    return 1;
  }
  for (size_t i = 0; i < expect->n; i++) {
    const char *k = expect->keys[i];
    const jv *want = &expect->items[i];
    checks++;
    if (strcmp(k, "ttl_min") == 0 || strcmp(k, "ttl_max") == 0) {
      const jv *t = j_get(&g, "ttl");
      int bad = t == NULL || t->t != J_NUM || (k[4] == 'm' && k[5] == 'i' ? t->num < want->num : t->num > want->num);
      if (bad) {
        failures++;
        fprintf(stderr, "%s: ttl breaks %s %g: %s\n", at, k, want->num, got);
      }
    } else if (!j_equal(j_get(&g, k), want)) {
      failures++;
      fprintf(stderr, "%s: field %s differs: got %s\n", at, k, got);
    }
  }
  jv_free(&g);
  return 1;
}

/* The file has 11 cases and 83 steps (update these when vectors are added). */
#define VECTOR_CASES 11
#define VECTOR_STEPS 83

static void test_vectors(sr_store *store) {
  where = "vectors";
  const char *path = getenv("STATEFUL_ROUTE_VECTORS");
  if (path == NULL || path[0] == '\0') path = "tests/vectors/links.json";
  char *text = read_file(path);
  CHECK(text != NULL);
  if (text == NULL) {
    fprintf(stderr, "cannot read %s (run from the repository root or set STATEFUL_ROUTE_VECTORS)\n", path);
    return;
  }
  size_t ops = 0;
  for (const char *p = text; (p = strstr(p, "\"op\":")) != NULL; p++) ops++;
  jv doc;
  const char *end = j_parse(text, &doc);
  CHECK(end != NULL && *j_ws(end) == '\0');
  const jv *cases = j_get(&doc, "cases"), *nsv = j_get(&doc, "namespace");
  CHECK(cases != NULL && cases->t == J_ARR && nsv != NULL && nsv->t == J_STR);
  size_t steps = 0;
  for (size_t c = 0; cases != NULL && nsv != NULL && c < cases->n; c++) {
    const jv *name = j_get(&cases->items[c], "name"), *list = j_get(&cases->items[c], "steps");
    for (size_t i = 0; list != NULL && i < list->n; i++) {
      char at[512];
      snprintf(at, sizeof at, "[vectors] %s / step %zu", name ? name->str : "?", i);
      steps += (size_t)run_vector_step(store, nsv->str, &list->items[i], at);
    }
  }
  CHECK(steps == ops); /* every step of the file ran */
  CHECK(cases != NULL && cases->n == VECTOR_CASES);
  CHECK(steps == VECTOR_STEPS);
  if (steps != VECTOR_STEPS) fprintf(stderr, "[vectors] %zu steps ran, want %d\n", steps, VECTOR_STEPS);
  jv_free(&doc);
  free(text);
}

/* ---- config edge values (issue item 8) ---- */

/* Polls (bounded, 5 s) until `reader` sees pod 0 of `svc` published after `after_ms`; 0 if never. */
static uint64_t wait_pod_state(sr_client_driver *reader, const char *svc, uint64_t after_ms, int64_t *load,
                               sr_routing_state *rs) {
  for (int i = 0; i < 250; i++) {
    sr_pod_state_list states = {NULL, 0};
    if (sr_client_refresh_service(reader, S(svc), NULL) == SR_OK &&
        sr_client_pod_states(reader, S(svc), &states, NULL) == SR_OK && states.len == 1 &&
        states.states[0].pod_index == 0 && states.states[0].update_ms > after_ms) {
      uint64_t ms = states.states[0].update_ms;
      *load = states.states[0].load;
      *rs = states.states[0].routing_state;
      sr_pod_state_list_free(&states);
      return ms;
    }
    sr_pod_state_list_free(&states);
    usleep(20000);
  }
  return 0;
}

enum edge_field { E_PERIOD, E_CPU, E_STALE, E_DRAIN, E_SERVE_STALE, E_SLOW_START, E_LOAD_FACTOR, E_FIELDS };

static const char *const edge_names[E_FIELDS] = {
    "service_state_update_period_seconds", "cpu_factor", "stale_after_seconds", "drain_seconds",
    "serve_stale_seconds", "slow_start_seconds", "load_factor"};

/* Whether the C API accepts v in field f (pinned: 0 means the default for the stale window,
 * slow start and the load factor; a negative slow start turns it off). NaN: never. */
static int edge_accepts(enum edge_field f, double v) {
  switch (f) {
    case E_PERIOD: return v >= 0.001 && v <= 86400;
    case E_CPU: return v >= 0 && v <= 1;
    case E_STALE: return v == 0 || (v >= 0.001 && v <= 86400);
    case E_DRAIN:
    case E_SERVE_STALE: return v >= 0 && v <= 86400;
    case E_SLOW_START: return v <= 86400;
    case E_LOAD_FACTOR: return v == 0 || (v >= 1 && v <= DBL_MAX);
    default: return 0;
  }
}

static void test_config_edges(void) {
  where = "config edges";
  const double values[] = {NAN, INFINITY, -INFINITY, 5e-324, 1e-300, -0.0, 0.0, 1e300, DBL_MAX, -1, 0.5};
  sr_store *store = new_store(0);
  sr_client_driver *reader = new_client(store);
  int seq = 0, accepted = 0, rejected = 0;
  for (int f = 0; f < E_FIELDS; f++) {
    for (size_t k = 0; k < sizeof values / sizeof *values; k++) {
      double v = values[k];
      char svc[32], at[96];
      snprintf(svc, sizeof svc, "edge-%d", seq++);
      snprintf(at, sizeof at, "config edges %s=%g", edge_names[f], v);
      where = at;
      sr_base_config cfg = fast_config();
      switch ((enum edge_field)f) {
        case E_PERIOD: cfg.service_state_update_period_seconds = v; break;
        case E_CPU: cfg.cpu_factor = v; break;
        case E_STALE: cfg.stale_after_seconds = v; break;
        case E_DRAIN: cfg.drain_seconds = v; break;
        case E_SERVE_STALE: cfg.serve_stale_seconds = v; break;
        case E_SLOW_START: cfg.slow_start_seconds = v; break;
        case E_LOAD_FACTOR:
          cfg.placement = S("rendezvous");
          cfg.placement_load_factor = v;
          break;
        default: break;
      }
      sr_server_info me = info(NS, svc, 0), gw = info(NS, "gateway", 0);
      sr_server_driver *server = NULL;
      sr_client_driver *client = NULL;
      sr_error *se = NULL, *ce = NULL;
      sr_status ss = sr_server_new(store, &me, &cfg, &server, &se);
      sr_status cs = sr_client_new(store, &gw, &cfg, &client, &ce);
      if (!edge_accepts((enum edge_field)f, v)) {
        rejected++;
        CHECK(ss == SR_INVALID_CONFIG && cs == SR_INVALID_CONFIG && server == NULL && client == NULL);
        CHECK(se != NULL && strstr(sr_error_message(se), edge_names[f]) != NULL);
        CHECK(ce != NULL && strstr(sr_error_message(ce), edge_names[f]) != NULL);
        if (ss != SR_INVALID_CONFIG || se == NULL || strstr(sr_error_message(se), edge_names[f]) == NULL)
          fprintf(stderr, "  [%s] got %s: %s\n", at, sr_status_name(ss), sr_error_message(se));
        sr_error_free(se);
        sr_error_free(ce);
        sr_server_free(server);
        sr_client_free(client);
        continue;
      }
      accepted++;
      CHECK(ss == SR_OK && cs == SR_OK);
      if (ss != SR_OK || cs != SR_OK) {
        fprintf(stderr, "  [%s] refused: %s / %s\n", at, sr_error_message(se), sr_error_message(ce));
        sr_error_free(se);
        sr_error_free(ce);
        sr_server_free(server);
        sr_client_free(client);
        continue;
      }
      OK(sr_server_set_load_state(server, 7, err_out));
      OK(sr_server_start(server, err_out));
      int64_t load = -1;
      sr_routing_state rs = SR_ROUTING_NOT_ALIVE;
      uint64_t first = wait_pod_state(reader, svc, 0, &load, &rs);
      /* weighted load = round(cpu_factor x CPU% + (1 - cpu_factor) x 7) */
      CHECK(first > 0 && rs == SR_ROUTING_READY);
      if (cfg.cpu_factor < 0.01) {
        CHECK(load == 7);
      } else {
        CHECK(load >= (int64_t)floor((1 - cfg.cpu_factor) * 7) && load <= (int64_t)ceil(cfg.cpu_factor * 100 + 7));
      }
      /* it keeps publishing (every accepted period is at most 0.5 s) */
      CHECK(wait_pod_state(reader, svc, first, &load, &rs) > first);
      OK(sr_client_init(client, err_out));
      int64_t pod = -2;
      OK(sr_client_compute_linked_pod(client, S(NS), S("edge-user"), S(svc), &pod, err_out));
      CHECK(pod == 0);
      sr_client_free(client);
      OK(sr_server_stop(server, err_out));
      sr_server_free(server);
    }
  }
  where = "config edges";
  CHECK(accepted + rejected == E_FIELDS * 11);
  CHECK(accepted == 1 + 5 + 3 + 5 + 5 + 7 + 4); /* as edge_accepts counts them */
  sr_client_free(reader);
  sr_store_free(store);
}

/* ---- slow_start_seconds: 0 = one period, negative = off, NaN and +inf rejected ---- */

static void test_slow_start_config(void) {
  where = "slow start config";
  sr_base_config cfg;
  sr_base_config_default(&cfg);
  CHECK(cfg.slow_start_seconds == 0.0);
  sr_store *mem = new_store(0);
  sr_server_info gw = info(NS, "gateway", 0);
  const double ok_values[] = {0.0, -1.0, 2.5, 86400};
  for (size_t i = 0; i < sizeof ok_values / sizeof *ok_values; i++) {
    cfg.slow_start_seconds = ok_values[i];
    sr_client_driver *c = NULL;
    OK(sr_client_new(mem, &gw, &cfg, &c, err_out));
    CHECK(c != NULL);
    sr_client_free(c);
  }
  const double bad_values[] = {NAN, INFINITY, 86400.5};
  for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
    cfg.slow_start_seconds = bad_values[i];
    sr_client_driver *c = NULL;
    sr_error *e = NULL;
    CHECK(sr_client_new(mem, &gw, &cfg, &c, &e) == SR_INVALID_CONFIG && c == NULL);
    CHECK(e != NULL && strstr(sr_error_message(e), "slow_start_seconds") != NULL);
    sr_error_free(e);
  }
  sr_store_free(mem);
}

/* ---- staleness: a pod publishing every 30 s with stale_after 1 s goes not-alive ---- */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_staleness(sr_store *store) {
  where = "staleness";
  sr_base_config cfg;
  sr_base_config_default(&cfg);
  cfg.service_state_update_period_seconds = 30;
  cfg.stale_after_seconds = 1;
  cfg.cpu_factor = 0;
  sr_server_info me = info(NS, "quiet", 0), gw = info(NS, "gateway", 0);
  sr_server_driver *s = NULL;
  sr_client_driver *c = NULL;
  OK(sr_server_new(store, &me, &cfg, &s, err_out));
  OK(sr_client_new(store, &gw, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  double started = now_seconds();
  OK(sr_server_start(s, err_out));
  bool alive = false;
  OK(sr_client_is_pod_alive(c, S("quiet"), 0, &alive, err_out));
  CHECK(alive);
  double stale_at = -1;
  while (now_seconds() - started < 5) { /* polled, bounded */
    if (sr_client_is_pod_alive(c, S("quiet"), 0, &alive, NULL) == SR_OK && !alive) {
      stale_at = now_seconds() - started;
      break;
    }
    usleep(20000);
  }
  CHECK(stale_at >= 0.9 && stale_at < 5);
  if (stale_at < 0.9) fprintf(stderr, "  [staleness] not alive after %.3f s (stale_after 1 s)\n", stale_at);
  sr_pod_list pods;
  OK(sr_client_alive_pods(c, S("quiet"), &pods, err_out));
  CHECK(pods.len == 0);
  sr_pod_list_free(&pods);
  int64_t pod = -2;
  EXPECT(SR_NO_AVAILABLE_POD, sr_client_compute_linked_pod(c, S(NS), S("late"), S("quiet"), &pod, err_out));
  CHECK(pod == -2);
  sr_client_free(c);
  OK(sr_server_stop(s, err_out));
  sr_server_free(s);
}

/* ---- the cache-vs-TTL rule: TTL 3 s, cache 1 s (margin 2 s) ---- */

static void test_cache_ttl(sr_store *store) {
  where = "cache vs ttl";
  sr_server_driver *p0 = start_pod(store, "ttl", 0, 0);
  sr_base_config cfg = fast_config();
  cfg.temp_link_info_cache_time_seconds = 3;
  cfg.user_link_info_cache_time_seconds = 1;
  sr_server_info gw = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &gw, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  double start = now_seconds();
  int64_t pod = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S("t1"), S("ttl"), &pod, err_out));
  CHECK(pod == 0);
  sr_link l;
  OK(sr_store_get_link(store, S(NS), S("t1"), S("ttl"), &l, err_out));
  CHECK(l.pod_index == 0 && !l.persistent && l.ttl_seconds > 2 && l.ttl_seconds <= 3);
  OK(sr_client_get_linked_in_cache(c, S(NS), S("t1"), S("ttl"), &pod, err_out));
  CHECK(pod == 0);
  double left = -1;
  while (now_seconds() - start < 4) { /* polled, bounded */
    if (sr_client_get_linked_in_cache(c, S(NS), S("t1"), S("ttl"), &pod, NULL) == SR_OK && pod == -1) {
      left = now_seconds() - start;
      break;
    }
    usleep(10000);
  }
  CHECK(left >= 0.95 && left <= 2.0);
  if (left < 0.95 || left > 2.0) fprintf(stderr, "  [cache vs ttl] left the cache after %.3f s\n", left);
  /* the store still holds it: the cache dropped it before the store forgets it */
  OK(sr_store_get_link(store, S(NS), S("t1"), S("ttl"), &l, err_out));
  CHECK(l.pod_index == 0 && l.ttl_seconds > 0);
  sr_client_free(c);
  OK(sr_server_stop(p0, err_out));
  sr_server_free(p0);
}

/* ---- change propagation (SPEC §11): link listeners and a second gateway's cache ---- */

/* What a link listener saw; the same struct is its user_data. */
struct link_listener {
  pthread_mutex_t mu;
  atomic_int calls, removals, released, bad;
  int64_t pod;     /* of the last change */
  bool persistent; /* of the last change */
  char uid[64];
  atomic_int cached_in_call;  /* sr_client_get_linked_in_cache from the callback (-2: not asked) */
  atomic_int nested_status;   /* a blocking call from the callback (-1: not asked) */
  const sr_client_driver *client;
};

static void link_listener_init(struct link_listener *l, const sr_client_driver *c) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  l->client = c;
  l->pod = -2;
  atomic_store(&l->cached_in_call, -2);
  atomic_store(&l->nested_status, -1);
}

static int sr_str_is(sr_str s, const char *want) {
  /* also NUL-terminated */
  return s.ptr != NULL && strlen(s.ptr) == s.len && strcmp(s.ptr, want) == 0;
}

static void on_link(void *user_data, const sr_link_change *ch) {
  struct link_listener *l = user_data;
  if (!sr_str_is(ch->namespace_name, NS) || !sr_str_is(ch->service, "lk") || ch->uid.ptr == NULL ||
      ch->uid.len >= sizeof l->uid || strlen(ch->uid.ptr) != ch->uid.len || (ch->pod_index < 0 && ch->persistent) ||
      ch->pod_index < -1)
    atomic_fetch_add(&l->bad, 1);
  if (l->client != NULL) {
    /* the driver dropped its entry before telling: a non-blocking read says so */
    int64_t cached = -2;
    if (sr_client_get_linked_in_cache(l->client, ch->namespace_name, ch->uid, ch->service, &cached, NULL) == SR_OK)
      atomic_store(&l->cached_in_call, (int)cached);
    /* a blocking call from a callback is refused, never a deadlock or an abort */
    int64_t pod = -2;
    atomic_store(&l->nested_status,
                 (int)sr_client_get_linked_pod(l->client, ch->namespace_name, ch->uid, ch->service, &pod, NULL));
  }
  pthread_mutex_lock(&l->mu);
  l->pod = ch->pod_index;
  l->persistent = ch->persistent;
  snprintf(l->uid, sizeof l->uid, "%.*s", (int)ch->uid.len, ch->uid.ptr);
  pthread_mutex_unlock(&l->mu);
  if (ch->pod_index == -1) atomic_fetch_add(&l->removals, 1);
  atomic_fetch_add(&l->calls, 1); /* last: a poller that sees it sees the fields */
}

static void on_link_release(void *user_data) {
  struct link_listener *l = user_data;
  atomic_fetch_add(&l->released, 1);
}

/* Polls (bounded by `within` seconds) until the listener has `calls` calls; the seconds taken or -1. */
static double until_calls(struct link_listener *l, int calls, double within) {
  double t0 = now_seconds();
  while (atomic_load(&l->calls) < calls && now_seconds() - t0 < within) usleep(1000);
  return atomic_load(&l->calls) >= calls ? now_seconds() - t0 : -1;
}

/* Polls (bounded) until `c`'s cache no longer holds (uid, "lk"); the seconds taken or -1. */
static double until_uncached(const sr_client_driver *c, const char *uid, double within) {
  double t0 = now_seconds();
  int64_t pod = -2;
  do {
    if (sr_client_get_linked_in_cache(c, S(NS), S(uid), S("lk"), &pod, NULL) == SR_OK && pod == -1)
      return now_seconds() - t0;
    usleep(1000);
  } while (now_seconds() - t0 < within);
  return -1;
}

static sr_store *store_with_prefix(int redis, const char *prefix, bool disable_propagation) {
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.key_prefix = S(prefix);
  sc.disable_propagation = disable_propagation;
  sr_store *store = NULL;
  if (redis) {
    OK(sr_store_connect(S(redis_url), &sc, &store, err_out));
  } else {
    OK(sr_store_memory(&sc, &store, err_out));
  }
  return store;
}

/* A gateway with the defaults' 240 s cache and 30 s refresh: only propagation moves it. */
static sr_client_driver *default_client(sr_store *store) {
  sr_base_config cfg;
  sr_base_config_default(&cfg);
  sr_server_info gw = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &gw, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  return c;
}

static void test_link_changes(int redis) {
  where = "link changes";
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ct%d-%d", (int)getpid(), prefix_seq++);
  /* the pods write through one store; gateway A reads through another connection on Redis
   * (the memory store is one process's: both on the one store) */
  sr_store *ws = store_with_prefix(redis, prefix, false);
  sr_store *gs = redis ? store_with_prefix(redis, prefix, false) : ws;
  sr_server_driver *p0 = start_pod(ws, "lk", 0, 0);
  sr_server_driver *p1 = start_pod(ws, "lk", 1, 0);
  sr_client_driver *a = default_client(gs);
  sr_client_driver *b = default_client(ws);
  struct link_listener l;
  link_listener_init(&l, a);
  uint64_t id = 0;
  OK(sr_client_on_link_changed(a, on_link, on_link_release, &l, &id, err_out));
  CHECK(id != 0);

  /* a move: pod `other` takes the user persistently; both gateways follow within 1 s */
  int64_t pod = -2, pb = -2, prev = -2;
  OK(sr_client_compute_linked_pod(a, S(NS), S("mover"), S("lk"), &pod, err_out));
  OK(sr_client_compute_linked_pod(b, S(NS), S("mover"), S("lk"), &pb, err_out));
  CHECK(pod >= 0 && pb == pod);
  int64_t other = pod == 0 ? 1 : 0;
  OK(sr_server_set_linked_pod(other == 0 ? p0 : p1, S(NS), S("mover"), S("lk"), other, &prev, err_out));
  CHECK(prev == pod);
  if (!redis) CHECK(atomic_load(&l.calls) == 1); /* memory: before the writing call returned */
  double took = until_calls(&l, 1, 1.0);
  CHECK(took >= 0);
  pthread_mutex_lock(&l.mu);
  CHECK(l.pod == other && l.persistent && strcmp(l.uid, "mover") == 0);
  pthread_mutex_unlock(&l.mu);
  CHECK(atomic_load(&l.cached_in_call) == -1);
  CHECK(atomic_load(&l.nested_status) == SR_INVALID_ARGUMENT);
  double tb = until_uncached(b, "mover", 1.0);
  CHECK(tb >= 0);
  CHECK(until_uncached(a, "mover", 1.0) >= 0);
  if (redis) fprintf(stderr, "  [link changes] listener after %.3f s, second gateway after %.3f s\n", took, tb);
  OK(sr_client_compute_linked_pod(a, S(NS), S("mover"), S("lk"), &pod, err_out));
  CHECK(pod == other);
  OK(sr_client_compute_linked_pod(b, S(NS), S("mover"), S("lk"), &pb, err_out));
  CHECK(pb == other);

  /* a removal: the listener gets "none" (-1, not persistent), the caches drop it */
  bool removed = false;
  OK(sr_server_remove_linked_pod(other == 0 ? p0 : p1, S(NS), S("mover"), S("lk"), 0, &removed, err_out));
  CHECK(removed);
  CHECK(until_calls(&l, 2, 1.0) >= 0);
  pthread_mutex_lock(&l.mu);
  CHECK(l.pod == -1 && !l.persistent && strcmp(l.uid, "mover") == 0);
  pthread_mutex_unlock(&l.mu);
  CHECK(atomic_load(&l.removals) == 1);
  CHECK(until_uncached(a, "mover", 1.0) >= 0 && until_uncached(b, "mover", 1.0) >= 0);
  CHECK(atomic_load(&l.bad) == 0);

  /* removing the listener stops its calls and releases it once */
  OK(sr_client_remove_link_listener(a, id, &removed, err_out));
  CHECK(removed);
  CHECK(eventually(&l.released, 1));
  OK(sr_client_remove_link_listener(a, id, &removed, err_out));
  CHECK(!removed);
  int calls = atomic_load(&l.calls);
  sr_link placed;
  OK(sr_client_set_linked_pod_if_absent(a, S(NS), S("mover"), S("lk"), 0, 300, &placed, err_out));
  CHECK(placed.pod_index == 0);
  OK(sr_client_get_linked_in_cache(a, S(NS), S("mover"), S("lk"), &pod, err_out));
  CHECK(pod == 0);
  OK(sr_server_set_linked_pod(p1, S(NS), S("mover"), S("lk"), 1, &prev, err_out));
  CHECK(until_uncached(a, "mover", 1.0) >= 0); /* the event reached A ... */
  CHECK(atomic_load(&l.calls) == calls);        /* ... and no removed listener */
  CHECK(atomic_load(&l.released) == 1);

  /* NULL arguments are SR_INVALID_ARGUMENT, and a listener not taken is not released */
  struct link_listener n;
  link_listener_init(&n, NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_on_link_changed(NULL, on_link, on_link_release, &n, &id, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_on_link_changed(a, NULL, on_link_release, &n, &id, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_on_link_changed(a, on_link, on_link_release, &n, NULL, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_remove_link_listener(NULL, id, &removed, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_remove_link_listener(a, id, NULL, err_out));
  CHECK(atomic_load(&n.released) == 0);
  /* a listener without release, and one released when its driver is freed */
  uint64_t id2 = 0, id3 = 0;
  OK(sr_client_on_link_changed(b, on_link, NULL, &n, &id2, err_out));
  struct link_listener l3;
  link_listener_init(&l3, NULL);
  OK(sr_client_on_link_changed(b, on_link, on_link_release, &l3, &id3, err_out));
  CHECK(id3 != id2);
  OK(sr_server_remove_linked_pod(p1, S(NS), S("mover"), S("lk"), 0, &removed, err_out));
  /* (on Redis B's stream may still bring the earlier move first: wait for the removal) */
  CHECK(eventually(&n.removals, 1) && eventually(&l3.removals, 1));
  CHECK(atomic_load(&n.bad) == 0 && atomic_load(&l3.bad) == 0);
  sr_client_free(b);
  CHECK(eventually(&l3.released, 1));
  CHECK(atomic_load(&n.released) == 0);

  sr_client_free(a);
  OK(sr_server_stop(p0, err_out));
  OK(sr_server_stop(p1, err_out));
  sr_server_free(p0);
  sr_server_free(p1);
  if (gs != ws) sr_store_free(gs);
  sr_store_free(ws);
  pthread_mutex_destroy(&l.mu);
  pthread_mutex_destroy(&n.mu);
  pthread_mutex_destroy(&l3.mu);
}

/* disable_propagation: a gateway on such a store keeps its cached answer after a move, while
 * a propagating gateway (the control) follows */
static void test_no_propagation(int redis) {
  where = "no propagation";
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ct%d-%d", (int)getpid(), prefix_seq++);
  sr_store *ws = store_with_prefix(redis, prefix, false);
  sr_store *off = redis ? store_with_prefix(redis, prefix, true) : NULL;
  sr_store_config sc;
  sr_store_config_default(&sc);
  CHECK(!sc.disable_propagation);
  int64_t pod = -2, prev = -2;
  if (redis) {
    sr_server_driver *p0 = start_pod(ws, "lk", 0, 0);
    sr_server_driver *p1 = start_pod(ws, "lk", 1, 0);
    sr_client_driver *on = default_client(ws), *quiet = default_client(off);
    struct link_listener l;
    link_listener_init(&l, NULL);
    uint64_t id = 0;
    OK(sr_client_on_link_changed(quiet, on_link, on_link_release, &l, &id, err_out));
    OK(sr_client_compute_linked_pod(quiet, S(NS), S("stays"), S("lk"), &pod, err_out));
    int64_t pc = -2;
    OK(sr_client_compute_linked_pod(on, S(NS), S("stays"), S("lk"), &pc, err_out));
    CHECK(pod >= 0 && pc == pod);
    int64_t other = pod == 0 ? 1 : 0;
    OK(sr_server_set_linked_pod(other == 0 ? p0 : p1, S(NS), S("stays"), S("lk"), other, &prev, err_out));
    CHECK(until_uncached(on, "stays", 1.0) >= 0); /* the control followed */
    int64_t cached = -2;
    OK(sr_client_get_linked_in_cache(quiet, S(NS), S("stays"), S("lk"), &cached, err_out));
    CHECK(cached == pod); /* the TTL rule alone */
    OK(sr_client_compute_linked_pod(quiet, S(NS), S("stays"), S("lk"), &cached, err_out));
    CHECK(cached == pod);
    CHECK(atomic_load(&l.calls) == 0);
    sr_client_free(quiet);
    CHECK(eventually(&l.released, 1));
    sr_client_free(on);
    OK(sr_server_stop(p0, err_out));
    OK(sr_server_stop(p1, err_out));
    sr_server_free(p0);
    sr_server_free(p1);
    pthread_mutex_destroy(&l.mu);
  } else {
    /* the memory store with propagation off: its writers tell no gateway */
    sr_store *m = store_with_prefix(0, prefix, true);
    sr_server_driver *p0 = start_pod(m, "lk", 0, 0);
    sr_server_driver *p1 = start_pod(m, "lk", 1, 0);
    sr_client_driver *quiet = default_client(m);
    struct link_listener l;
    link_listener_init(&l, NULL);
    uint64_t id = 0;
    OK(sr_client_on_link_changed(quiet, on_link, on_link_release, &l, &id, err_out));
    OK(sr_client_compute_linked_pod(quiet, S(NS), S("stays"), S("lk"), &pod, err_out));
    int64_t other = pod == 0 ? 1 : 0;
    OK(sr_server_set_linked_pod(other == 0 ? p0 : p1, S(NS), S("stays"), S("lk"), other, &prev, err_out));
    int64_t cached = -2;
    OK(sr_client_get_linked_in_cache(quiet, S(NS), S("stays"), S("lk"), &cached, err_out));
    CHECK(cached == pod && atomic_load(&l.calls) == 0);
    /* the control: a propagating memory store follows at once */
    sr_server_driver *q0 = start_pod(ws, "lk", 0, 0);
    sr_server_driver *q1 = start_pod(ws, "lk", 1, 0);
    sr_client_driver *on = default_client(ws);
    OK(sr_client_compute_linked_pod(on, S(NS), S("stays"), S("lk"), &pod, err_out));
    other = pod == 0 ? 1 : 0;
    OK(sr_server_set_linked_pod(other == 0 ? q0 : q1, S(NS), S("stays"), S("lk"), other, &prev, err_out));
    OK(sr_client_get_linked_in_cache(on, S(NS), S("stays"), S("lk"), &cached, err_out));
    CHECK(cached == -1);
    sr_client_free(on);
    sr_client_free(quiet);
    CHECK(eventually(&l.released, 1));
    sr_server_driver *ps[] = {p0, p1, q0, q1};
    for (int i = 0; i < 4; i++) {
      OK(sr_server_stop(ps[i], err_out));
      sr_server_free(ps[i]);
    }
    sr_store_free(m);
    pthread_mutex_destroy(&l.mu);
  }
  if (off) sr_store_free(off);
  sr_store_free(ws);
}

/* ---- store faults on a redis-server of the test's own ($STATEFUL_ROUTE_TEST_REDIS_FAULT) ---- */

/* bindings/c/test.sh starts it with tests/redis-server.sh (URL, PID, DIR in the environment);
 * this test stops it (SIGSTOP/SIGCONT), kills it (SIGKILL) and starts it again on the same
 * port, holding the port's lease (tests/PORTS.md) from the kill on. */
static const char *fault_url, *fault_dir;
static pid_t fault_pid;

#define FAULT_TIMEOUT_MS 300
#define FAULT_SLACK 1.0 /* seconds a failing call may take beyond its deadline on a busy machine */

static int url_port(const char *url) { return atoi(strrchr(strstr(url, "://") + 3, ':') + 1); }

/* The process_id the server on port reports (INFO server), or -1. */
static long server_pid(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return close(fd), -1;
  static const char cmd[] = "INFO server\r\n";
  char reply[16384];
  size_t n = 0;
  if (write(fd, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1)) return close(fd), -1;
  while (n < sizeof reply - 1) {
    ssize_t r = read(fd, reply + n, sizeof reply - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
    reply[n] = '\0';
    if (strstr(reply, "process_id:") != NULL && strstr(strstr(reply, "process_id:"), "\r\n") != NULL) break;
  }
  close(fd);
  reply[n] = '\0';
  const char *p = strstr(reply, "process_id:");
  return p ? atol(p + strlen("process_id:")) : -1;
}

/* Expects `call` to fail with exactly `want` within the command timeout (plus slack). */
#define EXPECT_FAST(want, call)                                                           \
  do {                                                                                    \
    double t0_ = now_seconds();                                                           \
    EXPECT(want, call);                                                                   \
    double took_ = now_seconds() - t0_;                                                   \
    CHECK(took_ <= FAULT_TIMEOUT_MS / 1000.0 + FAULT_SLACK);                              \
    if ((want) == SR_TIMEOUT) CHECK(took_ >= FAULT_TIMEOUT_MS / 1000.0 - 0.05);           \
    if (took_ > FAULT_TIMEOUT_MS / 1000.0 + FAULT_SLACK) fprintf(stderr, "  took %.3f s\n", took_); \
  } while (0)

/* Polls (bounded) until a new user is routed to pod 0; the seconds it took, or -1. */
static double until_routed(sr_client_driver *c, const char *uid, double within) {
  double t0 = now_seconds();
  while (now_seconds() - t0 < within) {
    int64_t pod = -2;
    if (sr_client_compute_linked_pod(c, S(NS), S(uid), S("fault"), &pod, NULL) == SR_OK && pod == 0)
      return now_seconds() - t0;
    usleep(20000);
  }
  return -1;
}

static sr_store *fault_store(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ctf%d-%d", (int)getpid(), prefix_seq++);
  sr_store_config sc;
  sr_store_config_default(&sc);
  sc.key_prefix = S(prefix);
  sc.connect_timeout_ms = FAULT_TIMEOUT_MS;
  sc.command_timeout_ms = FAULT_TIMEOUT_MS;
  sr_store *store = NULL;
  OK(sr_store_connect(S(fault_url), &sc, &store, err_out));
  return store;
}

/* Stale-if-error: with the store stopped, a cached link whose entry expired is still served;
 * a new user fails with TIMEOUT. */
static void test_serve_stale_stopped(void) {
  where = "stale if error";
  sr_store *store = fault_store();
  if (store == NULL) return;
  sr_server_driver *p0 = start_pod(store, "fault", 0, 0);
  sr_base_config cfg = fast_config();
  cfg.user_link_info_cache_time_seconds = 1; /* margin 299 s: the serve-stale window is 60 s */
  sr_server_info gw = info(NS, "gateway", 0);
  sr_client_driver *c = NULL;
  OK(sr_client_new(store, &gw, &cfg, &c, err_out));
  OK(sr_client_init(c, err_out));
  int64_t pod = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S("u1"), S("fault"), &pod, err_out));
  CHECK(pod == 0);
  CHECK(kill(fault_pid, SIGSTOP) == 0);
  double t0 = now_seconds();
  while (now_seconds() - t0 < 5) { /* the 1 s cache entry expires */
    if (sr_client_get_linked_in_cache(c, S(NS), S("u1"), S("fault"), &pod, NULL) == SR_OK && pod == -1) break;
    usleep(20000);
  }
  CHECK(pod == -1);
  pod = -2;
  double t1 = now_seconds();
  OK(sr_client_compute_linked_pod(c, S(NS), S("u1"), S("fault"), &pod, err_out));
  CHECK(pod == 0);
  CHECK(now_seconds() - t1 <= FAULT_TIMEOUT_MS / 1000.0 + FAULT_SLACK);
  pod = -2;
  EXPECT_FAST(SR_TIMEOUT, sr_client_compute_linked_pod(c, S(NS), S("u2"), S("fault"), &pod, err_out));
  CHECK(pod == -2);
  CHECK(kill(fault_pid, SIGCONT) == 0);
  CHECK(until_routed(c, "u2", 5) >= 0);
  sr_client_free(c);
  OK(sr_server_stop(p0, err_out));
  sr_server_free(p0);
  sr_store_free(store);
}

/* SIGSTOP: TIMEOUT within command_timeout; SIGCONT: routed again. SIGKILL: STORE_UNAVAILABLE;
 * started again (empty) on the same port: routed again within a bounded time. */
static void test_store_faults(void) {
  where = "store faults";
  sr_store *store = fault_store();
  if (store == NULL) return;
  sr_server_driver *p0 = start_pod(store, "fault", 0, 0);
  sr_client_driver *c = new_client(store);
  int64_t pod = -2, prev = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S("warm"), S("fault"), &pod, err_out));
  CHECK(pod == 0);

  CHECK(kill(fault_pid, SIGSTOP) == 0);
  EXPECT_FAST(SR_TIMEOUT, sr_client_compute_linked_pod(c, S(NS), S("new-stopped"), S("fault"), &pod, err_out));
  EXPECT_FAST(SR_TIMEOUT, sr_store_set_link(store, S(NS), S("set-stopped"), S("fault"), 0, -1, &prev, err_out));
  pod = -2;
  OK(sr_client_compute_linked_pod(c, S(NS), S("warm"), S("fault"), &pod, err_out)); /* a cache hit */
  CHECK(pod == 0);
  CHECK(kill(fault_pid, SIGCONT) == 0);
  CHECK(until_routed(c, "new-continued", 5) >= 0);

  /* Kill it, holding its port's lease from then on (the lock frees when the server dies). */
  int port = url_port(fault_url);
  const char *tmp = getenv("TMPDIR");
  char lock[512], pidfile[512];
  snprintf(lock, sizeof lock, "%s/stateful-route-ports/%d.lock", tmp && tmp[0] ? tmp : "/tmp", port);
  int lock_fd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
  CHECK(lock_fd >= 0);
  CHECK(kill(fault_pid, SIGKILL) == 0);
  CHECK(flock(lock_fd, LOCK_EX) == 0); /* returns once the killed server has exited */
  snprintf(pidfile, sizeof pidfile, "%s/redis.pid", fault_dir);
  unlink(pidfile); /* test.sh's cleanup must not signal a reused pid */
  EXPECT_FAST(SR_STORE_UNAVAILABLE,
              sr_client_compute_linked_pod(c, S(NS), S("new-killed"), S("fault"), &pod, err_out));
  EXPECT_FAST(SR_STORE_UNAVAILABLE, sr_store_set_link(store, S(NS), S("set-killed"), S("fault"), 0, -1, &prev, err_out));

  /* Start it again on the same port (its own dir and log), wait for its own process id. */
  char port_s[16], log[512];
  snprintf(port_s, sizeof port_s, "%d", port);
  snprintf(log, sizeof log, "%s/redis.log", fault_dir);
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* it dies with the test */
    execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1", "--dir", fault_dir, "--logfile",
           log, "--save", "", "--appendonly", "no", (char *)NULL);
    _exit(127);
  }
  CHECK(child > 0);
  double t0 = now_seconds();
  while (now_seconds() - t0 < 10 && server_pid(port) != (long)child) usleep(20000);
  CHECK(server_pid(port) == (long)child);
  double took = until_routed(c, "new-restarted", 10);
  CHECK(took >= 0);
  fprintf(stderr, "  [store faults] routed again %.3f s after the restart\n", took);
  sr_link l;
  OK(sr_store_get_link(store, S(NS), S("new-restarted"), S("fault"), &l, err_out));
  CHECK(l.pod_index == 0 && !l.persistent);

  sr_client_free(c);
  OK(sr_server_stop(p0, err_out));
  sr_server_free(p0);
  sr_store_free(store);
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  close(lock_fd);
}

/* Submits the store half of a compute and returns its pod (-1 on an error, which must be
   `want`): answered at once, or waited for on the queue's pipe and drained. */
static int64_t await_submitted(sr_client_driver *c, sr_completion_queue *q, int fd, const char *uid, const char *svc,
                               uint64_t tag, sr_status want) {
  int64_t pod = -2;
  sr_error *e = NULL;
  sr_status st = sr_client_compute_linked_pod_uncached_submit(c, S(""), S(uid), S(svc), q, tag, &pod, &e);
  if (st != SR_OK || pod >= 0) {
    CHECK(st == want);
    CHECK((st == SR_OK) == (e == NULL));
    sr_error_free(e);
    return st == SR_OK ? pod : -1;
  }
  CHECK(pod == -1);
  sr_completion got[4];
  size_t n = 0;
  for (int i = 0; i < 500 && n == 0; i++) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {0, 10000};
    if (select(fd + 1, &r, NULL, NULL, &tv) > 0) {
      char b[64];
      while (read(fd, b, sizeof b) > 0) {
      }
    }
    n = sr_completion_queue_drain(q, got, 4);
  }
  CHECK(n == 1);
  if (n != 1) return -1;
  CHECK(got[0].tag == tag && got[0].status == want && (want == SR_OK) == (got[0].error == NULL));
  sr_error_free(got[0].error);
  return want == SR_OK ? got[0].pod : -1;
}

/* ---- the front cache's entry points and the completion queue ---- */

static void test_front_and_queue(sr_store *store) {
  where = "front+queue";
  sr_server_driver *p0 = start_pod(store, SVC, 0, 0);
  sr_server_driver *p1 = start_pod(store, SVC, 1, 0);
  sr_client_driver *c = new_client(store);
  const uint32_t *words = NULL;
  OK(sr_client_front_epochs(c, &words, err_out));
  CHECK(words != NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_client_front_epochs(NULL, &words, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_front_epochs(c, NULL, err_out));
  sr_front_hit h = {7, 7, 7, 7};
  OK(sr_client_compute_front(c, S(""), S("u1"), S(SVC), &h, err_out));
  CHECK(h.pod == -1 && h.valid_ns == 0); /* a miss */
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_front(c, S(""), S(""), S(SVC), &h, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_front(c, S(""), S("u1"), S(SVC), NULL, err_out));
  EXPECT(SR_NAMESPACE_NOT_LOCAL, sr_client_compute_front(c, S("other"), S("u1"), S(SVC), &h, err_out));

  /* The store half without waiting: answered at once (the memory store) or through the
     queue (Redis: the pipe becomes readable, drain gives the completion). */
  int fd = -1;
  sr_completion_queue *q = NULL;
  OK(sr_completion_queue_new(&fd, &q, err_out));
  CHECK(fd >= 0 && q != NULL);
  EXPECT(SR_INVALID_ARGUMENT, sr_completion_queue_new(NULL, &q, err_out));
  int64_t placed = await_submitted(c, q, fd, "u1", SVC, 42, SR_OK);
  CHECK(placed == 0 || placed == 1);
  /* bad input: an error now, nothing queued */
  int64_t pod = 7;
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod_uncached_submit(c, S(""), S(""), S(SVC), q, 43, &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod_uncached_submit(c, S(""), S("u1"), S(SVC), NULL, 44, &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod_uncached_submit(NULL, S(""), S("u1"), S(SVC), q, 45, &pod, err_out));
  EXPECT(SR_INVALID_ARGUMENT, sr_client_compute_linked_pod_uncached_submit(c, S(""), S("u1"), S(SVC), q, 45, NULL, err_out));
  CHECK(pod == 7);
  /* the call's own error, at once or in its completion */
  CHECK(await_submitted(c, q, fd, "u9", "empty", 47, SR_NO_AVAILABLE_POD) == -1);
  sr_completion got[4];
  CHECK(sr_completion_queue_drain(q, got, 4) == 0);
  CHECK(sr_completion_queue_drain(NULL, got, 4) == 0);
  CHECK(sr_completion_queue_drain(q, NULL, 4) == 0);

  /* Now a hit: the front answer, valid while its epoch holds; a local write moves it. */
  OK(sr_client_compute_front(c, S(""), S("u1"), S(SVC), &h, err_out));
  CHECK(h.pod == placed && h.valid_ns > 0 && h.stripe < SR_FRONT_STRIPES);
  CHECK(__atomic_load_n(&words[h.stripe], __ATOMIC_ACQUIRE) == h.epoch);
  OK(sr_client_set_cache(c, S(""), S("u1"), S(SVC), 1 - placed, err_out));
  CHECK(__atomic_load_n(&words[h.stripe], __ATOMIC_ACQUIRE) != h.epoch);

  /* Front hits counted by the caller reach the metrics. */
  OK(sr_client_add_front_hits(c, S(SVC), 5, err_out));
  OK(sr_client_add_front_hits(c, S("not a service!"), 5, err_out)); /* ignored */
  EXPECT(SR_INVALID_ARGUMENT, sr_client_add_front_hits(NULL, S(SVC), 5, err_out));
  sr_sample_list l = {NULL, 0};
  OK(sr_client_metrics(c, &l, err_out));
  CHECK(sample_value(&l, "stateful_route_computes_total", 2, "service", SVC, "result", "hit") == 6);
  sr_sample_list_free(&l);

  /* Many in flight, drained 4 at a time: each tag exactly once, each an answer. */
  char uid[16];
  int seen[10] = {0};
  size_t total = 0, n = 0;
  for (int i = 0; i < 10; i++) {
    snprintf(uid, sizeof uid, "many%d", i);
    pod = -2;
    OK(sr_client_compute_linked_pod_uncached_submit(c, S(""), S(uid), S(SVC), q, 100 + (uint64_t)i, &pod, err_out));
    CHECK(pod >= -1 && pod <= 1);
    if (pod >= 0) {
      seen[i]++;
      total++;
    }
  }
  for (int i = 0; i < 500 && total < 10; i++) {
    n = sr_completion_queue_drain(q, got, 4);
    CHECK(n <= 4);
    for (size_t k = 0; k < n; k++) {
      CHECK(got[k].tag >= 100 && got[k].tag < 110 && got[k].status == SR_OK && (got[k].pod == 0 || got[k].pod == 1));
      if (got[k].tag >= 100 && got[k].tag < 110) seen[got[k].tag - 100]++;
      sr_error_free(got[k].error);
    }
    total += n;
    if (n == 0) {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
  }
  CHECK(total == 10);
  for (int i = 0; i < 10; i++) CHECK(seen[i] == 1);

  /* A call in flight when its driver is freed still completes (the queue outlives it). */
  pod = -2;
  OK(sr_client_compute_linked_pod_uncached_submit(c, S(""), S("u2"), S(SVC), q, 46, &pod, err_out));
  sr_client_free(c);
  if (pod == -1) {
    n = 0;
    for (int i = 0; i < 500 && n == 0; i++) {
      struct timespec ts = {0, 10000000};
      n = sr_completion_queue_drain(q, got, 4);
      if (n == 0) nanosleep(&ts, NULL);
    }
    CHECK(n == 1 && got[0].tag == 46 && got[0].status == SR_OK && (got[0].pod == 0 || got[0].pod == 1));
    if (n == 1) sr_error_free(got[0].error);
  } else {
    CHECK(pod == 0 || pod == 1);
  }
  sr_completion_queue_free(q);
  sr_completion_queue_free(NULL);
  sr_server_stop(p0, NULL);
  sr_server_stop(p1, NULL);
  sr_server_free(p0);
  sr_server_free(p1);
}

int main(void) {
  redis_url = getenv("STATEFUL_ROUTE_TEST_REDIS");
  if (redis_url == NULL || redis_url[0] == '\0') {
    fprintf(stderr, "STATEFUL_ROUTE_TEST_REDIS is not set (bindings/c/test.sh starts a redis-server)\n");
    return 2;
  }
  cluster_urls = getenv("STATEFUL_ROUTE_TEST_REDIS_CLUSTER");
  if (cluster_urls == NULL || cluster_urls[0] == '\0') {
    fprintf(stderr, "STATEFUL_ROUTE_TEST_REDIS_CLUSTER is not set (bindings/c/test.sh starts a cluster)\n");
    return 2;
  }
  fault_url = getenv("STATEFUL_ROUTE_TEST_REDIS_FAULT");
  fault_dir = getenv("STATEFUL_ROUTE_TEST_REDIS_FAULT_DIR");
  const char *fault_pid_s = getenv("STATEFUL_ROUTE_TEST_REDIS_FAULT_PID");
  if (fault_url == NULL || fault_dir == NULL || fault_pid_s == NULL || atol(fault_pid_s) <= 0) {
    fprintf(stderr,
            "STATEFUL_ROUTE_TEST_REDIS_FAULT, _PID and _DIR are not set (bindings/c/test.sh starts a redis-server "
            "of the test's own, which it stops and kills)\n");
    return 2;
  }
  fault_pid = (pid_t)atol(fault_pid_s);
  CHECK(strcmp(sr_status_name(SR_OK), "OK") == 0);
  CHECK(strcmp(sr_status_name(SR_INTERNAL), "INTERNAL") == 0);
  CHECK(strcmp(sr_status_name(99), "UNKNOWN") == 0);
  CHECK(strlen(sr_version()) > 0);
  for (int redis = 0; redis <= 1; redis++) {
    const char *kind = redis ? "redis" : "memory";
    void (*tests[])(sr_store *) = {test_flow, test_store_links, test_errors, test_drain, test_callbacks, test_threads,
                                     test_extensions, test_vectors, test_staleness, test_cache_ttl, test_metrics,
                                     test_explain, test_front_and_queue};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
      sr_store *store = new_store(redis);
      int before = failures;
      tests[i](store);
      sr_store_free(store);
      fprintf(stderr, "%-6s %-14s %s\n", kind, where, failures == before ? "ok" : "FAILED");
    }
    void (*own[])(int) = {test_link_changes, test_no_propagation};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
      int before = failures;
      own[i](redis);
      fprintf(stderr, "%-6s %-14s %s\n", kind, where, failures == before ? "ok" : "FAILED");
    }
  }
  {
    void (*tests[])(void) = {test_redis_failures, test_serve_stale_stopped, test_store_faults};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
      int before = failures;
      tests[i]();
      fprintf(stderr, "%-6s %-14s %s\n", "redis", where, failures == before ? "ok" : "FAILED");
    }
  }
  {
    void (*tests[])(sr_store *) = {test_store_links, test_flow, test_cluster_batch};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
      sr_store *store = new_cluster_store();
      int before = failures;
      if (store != NULL) tests[i](store);
      sr_store_free(store);
      fprintf(stderr, "%-7s %-14s %s\n", "cluster", where, failures == before ? "ok" : "FAILED");
    }
  }
  {
    void (*tests[])(void) = {test_topology_config, test_slow_start_config, test_config_edges, test_from_env};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
      int before = failures;
      tests[i]();
      fprintf(stderr, "%-6s %-14s %s\n", "-", where, failures == before ? "ok" : "FAILED");
    }
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
