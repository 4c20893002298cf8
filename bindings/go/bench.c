//go:build srbench

// Benchmark support: the cost of a cache hit through the C ABI alone (a C loop, no cgo),
// measured in the same run as the cgo calls in bench_test.go.
#include <time.h>

#include "stateful_route.h"

int64_t sr_go_bench_compute_hits(const sr_client_driver *c, sr_str uid, sr_str svc, int64_t n) {
  struct timespec a, b;
  int64_t pod;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int64_t i = 0; i < n; i++) {
    if (sr_client_compute_linked_pod(c, sr_str_from_cstr(""), uid, svc, &pod, NULL) != SR_OK) return -1;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
}

/* Round robin as a C placement callback: the C ABI's own callback cost, next to the same
 * policy built in and as a Go func (BenchmarkNewUserMemory). */
static int32_t round_robin(void *user_data, const sr_candidate *candidates, size_t len,
                           const sr_placement_request *request, int64_t *choice_out, sr_error **err_out) {
  (void)user_data, (void)candidates, (void)err_out;
  *choice_out = (int64_t)(request->sequence % len);
  return SR_OK;
}

sr_status sr_go_bench_set_c_round_robin(const sr_client_driver *c, sr_str svc) {
  sr_placement_policy *p = NULL;
  sr_status st = sr_placement_policy_new(round_robin, NULL, NULL, &p, NULL);
  if (st != SR_OK) return st;
  st = sr_client_set_service_placement_policy(c, svc, p, NULL);
  sr_placement_policy_free(p);
  return st;
}

#include "_cgo_export.h"

/* Calls the Go policy behind `handle` n times as the library would (3 candidates, a request)
 * and returns the total time in ns, or -1 if a call fails. */
int64_t sr_go_bench_call_go_policy(uintptr_t handle, int64_t n) {
  sr_candidate c[3] = {{0, 10, 0, 10, SR_ROUTING_READY, 5, 100}, {1, 20, 0, 20, SR_ROUTING_READY, 5, 100},
                       {2, 30, 0, 30, SR_ROUTING_READY, 5, 100}};
  sr_placement_request r = {{"default", 7}, {"user123", 7}, {"room", 4}, 0};
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int64_t i = 0; i < n; i++) {
    int64_t choice = -2;
    sr_error *e = NULL;
    r.sequence = (uint64_t)i;
    if (srGoPlace(handle, c, 3, &r, &choice, &e) != SR_OK || choice != i % 3) {
      sr_error_free(e);
      return -1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
}
