// C shims between the library's callback types and the Go exports in callbacks.go: the
// library passes `void *user_data`, Go wants the cgo.Handle as an integer.
#include "stateful_route.h"
#include "_cgo_export.h"

static void on_change(void *user_data, const sr_routing_state_change *change) {
  srGoRoutingStateChanged((uintptr_t)user_data, (sr_routing_state_change *)change);
}

static void on_log(void *user_data, const sr_log_record *record) {
  srGoLog((uintptr_t)user_data, (sr_log_record *)record);
}

static void on_release(void *user_data) { srGoRelease((uintptr_t)user_data); }

sr_status sr_go_on_routing_state_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err) {
  return sr_client_on_routing_state_changed(c, on_change, on_release, (void *)handle, id, err);
}

sr_status sr_go_set_log_callback(int32_t max_level, uintptr_t handle, sr_error **err) {
  return sr_set_log_callback(max_level, on_log, on_release, (void *)handle, err);
}
