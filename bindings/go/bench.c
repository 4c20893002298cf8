// Benchmark support: the cost of a cache hit through the C ABI alone (a C loop, no cgo),
// measured in the same run as the cgo calls in bench_test.go.
#include <time.h>

#include "stateful_route.h"

int64_t sr_go_bench_compute_hits(const sr_client_driver *c, const char *uid, size_t uid_len, const char *svc,
                                 size_t svc_len, int64_t n) {
  struct timespec a, b;
  int64_t pod;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int64_t i = 0; i < n; i++) {
    if (sr_client_compute_linked_pod(c, "", 0, uid, uid_len, svc, svc_len, &pod, NULL) != SR_OK) return -1;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
}
