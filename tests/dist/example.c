/* stateful-route's C example and release scenario (tests/dist-check.sh builds it with
 * `cc example.c $(pkg-config --cflags --libs stateful-route)`): two pods, the busy one loaded
 * before start; a gateway places user1, pod 0 drains, user2 goes to pod 1, a bad uid is
 * SR_INVALID_ARGUMENT. Memory store, then Redis. Usage: ./example REDIS_URL SERVICE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stateful_route.h"

#define S(s) sr_str_from_cstr(s)

static void check(sr_status status, sr_error *err) {
  if (status != SR_OK) {
    fprintf(stderr, "%s\n", sr_error_message(err)); /* "CODE: what was wrong" */
    exit(1);
  }
}

static void scenario(const char *label, sr_store *store, const char *svc) {
  sr_error *err = NULL;
  sr_server_driver *s0 = NULL, *s1 = NULL;
  sr_client_driver *client = NULL;
  int64_t pod = -1;
  sr_base_config config;
  sr_base_config_default(&config);
  config.service_state_update_period_seconds = 30;
  config.cpu_factor = 0;
  sr_server_info pod0 = {S("default"), S(svc), 0}, pod1 = {S("default"), S(svc), 1};

  check(sr_server_new(store, &pod0, &config, &s0, &err), err);
  check(sr_server_new(store, &pod1, &config, &s1, &err), err);
  check(sr_server_set_load_state(s1, 1000, &err), err); /* start publishes it */
  check(sr_server_start(s0, &err), err);
  check(sr_server_start(s1, &err), err);
  check(sr_client_new(store, &pod0, &config, &client, &err), err);
  check(sr_client_init(client, &err), err);
  check(sr_client_compute_linked_pod(client, S(""), S("user1"), S(svc), &pod, &err), err);
  printf("%s: user1 -> pod %lld\n", label, (long long)pod);
  check(sr_server_set_routing_state(s0, SR_ROUTING_DENY_NEW_CALL, &err), err);
  check(sr_client_refresh_service(client, S(svc), &err), err);
  check(sr_client_compute_linked_pod(client, S(""), S("user1"), S(svc), &pod, &err), err);
  printf("%s: user1 -> pod %lld after draining pod 0\n", label, (long long)pod);
  check(sr_client_compute_linked_pod(client, S(""), S("user2"), S(svc), &pod, &err), err);
  printf("%s: user2 -> pod %lld\n", label, (long long)pod);
  sr_status bad = sr_client_compute_linked_pod(client, S(""), S("bad}uid"), S(svc), &pod, &err);
  printf("%s: bad}uid -> %s\n", label, sr_status_name(bad));
  sr_error_free(err);
  sr_client_free(client);
  sr_server_stop(s0, NULL);
  sr_server_stop(s1, NULL);
  sr_server_free(s0);
  sr_server_free(s1);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s REDIS_URL SERVICE\n", argv[0]);
    return 2;
  }
  sr_error *err = NULL;
  sr_store *memory = NULL, *redis = NULL;
  sr_store_config store_config;
  sr_store_config_default(&store_config);
  check(sr_store_memory(&store_config, &memory, &err), err);
  scenario("memory", memory, argv[2]);
  sr_store_free(memory);
  check(sr_store_connect(S(argv[1]), &store_config, &redis, &err), err);
  scenario("redis", redis, argv[2]);
  sr_store_free(redis);
  return 0;
}
