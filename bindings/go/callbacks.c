// C shims between the library's callback types and the Go exports in callbacks.go: the
// library passes `void *user_data`, Go wants the cgo.Handle as an integer.
#include "stateful_route.h"
#include "_cgo_export.h"

static void on_change(void *user_data, const sr_routing_state_change *change) {
  srGoRoutingStateChanged((uintptr_t)user_data, (sr_routing_state_change *)change);
}

static void on_link(void *user_data, const sr_link_change *change) {
  srGoLinkChanged((uintptr_t)user_data, (sr_link_change *)change);
}

static void on_log(void *user_data, const sr_log_record *record) {
  srGoLog((uintptr_t)user_data, (sr_log_record *)record);
}

static void on_release(void *user_data) { srGoRelease((uintptr_t)user_data); }

static int32_t on_place(void *user_data, const sr_candidate *candidates, size_t len, const sr_placement_request *request,
                        int64_t *choice_out, sr_error **err_out) {
  return srGoPlace((uintptr_t)user_data, (sr_candidate *)candidates, len, (sr_placement_request *)request, choice_out,
                   err_out);
}

static int32_t on_load(void *user_data, const sr_load_input *input, int64_t *load_out, sr_error **err_out) {
  return srGoLoad((uintptr_t)user_data, (sr_load_input *)input, load_out, err_out);
}

sr_status sr_go_on_routing_state_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err) {
  return sr_client_on_routing_state_changed(c, on_change, on_release, (void *)handle, id, err);
}

sr_status sr_go_on_link_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err) {
  return sr_client_on_link_changed(c, on_link, on_release, (void *)handle, id, err);
}

sr_status sr_go_set_log_callback(int32_t max_level, uintptr_t handle, sr_error **err) {
  return sr_set_log_callback(max_level, on_log, on_release, (void *)handle, err);
}

sr_status sr_go_placement_policy_new(uintptr_t handle, sr_placement_policy **out, sr_error **err) {
  return sr_placement_policy_new(on_place, on_release, (void *)handle, out, err);
}

sr_status sr_go_set_load_calculator(const sr_server_driver *s, uintptr_t handle, sr_error **err) {
  return sr_server_set_load_calculator(s, on_load, on_release, (void *)handle, err);
}
