/* Prints what the C API says about the core's surface, for bindings/c/tests/surface.py to
 * compare with tests/vectors/surface.json: the defaults sr_base_config_default and
 * sr_store_config_default fill in, sr_status_name of every code, and whether each placement
 * name given as an argument is accepted by sr_client_new. One `key=value` per line. */
#include <stdio.h>

#include "stateful_route.h"

int main(int argc, char **argv) {
  sr_base_config b;
  if (sr_base_config_default(&b) != SR_OK) return 1;
  printf("BaseConfig.service_state_update_period_seconds=%.17g\n", b.service_state_update_period_seconds);
  printf("BaseConfig.cpu_factor=%.17g\n", b.cpu_factor);
  printf("BaseConfig.temp_link_info_cache_time_seconds=%llu\n", (unsigned long long)b.temp_link_info_cache_time_seconds);
  printf("BaseConfig.user_link_info_cache_time_seconds=%llu\n", (unsigned long long)b.user_link_info_cache_time_seconds);
  printf("BaseConfig.stale_after_seconds=%.17g\n", b.stale_after_seconds);
  printf("BaseConfig.load_range=%u\n", (unsigned)b.load_range);
  printf("BaseConfig.placement=%.*s\n", (int)b.placement.len, b.placement.ptr);
  printf("BaseConfig.placement_load_factor=%.17g\n", b.placement_load_factor);
  printf("BaseConfig.cache_capacity=%llu\n", (unsigned long long)b.cache_capacity);
  printf("BaseConfig.drain_seconds=%.17g\n", b.drain_seconds);
  printf("BaseConfig.serve_stale_seconds=%.17g\n", b.serve_stale_seconds);
  printf("BaseConfig.slow_start_seconds=%.17g\n", b.slow_start_seconds);
  printf("BaseConfig.disable_metrics=%d\n", b.disable_metrics ? 1 : 0);
  sr_store_config s;
  if (sr_store_config_default(&s) != SR_OK) return 1;
  printf("StoreConfig.key_prefix=%.*s\n", (int)s.key_prefix.len, s.key_prefix.ptr);
  printf("StoreConfig.connect_timeout_ms=%llu\n", (unsigned long long)s.connect_timeout_ms);
  printf("StoreConfig.command_timeout_ms=%llu\n", (unsigned long long)s.command_timeout_ms);
  printf("StoreConfig.tls_ca_cert_pem=%s\n", s.tls_ca_cert_pem == NULL && s.tls_ca_cert_pem_len == 0 ? "null" : "set");
  printf("StoreConfig.disable_propagation=%d\n", s.disable_propagation ? 1 : 0);
  for (int i = -1; i <= 12; i++) printf("status.%d=%s\n", i, sr_status_name(i));

  sr_store *store = NULL;
  if (sr_store_memory(&s, &store, NULL) != SR_OK) return 1;
  sr_server_info gw = {sr_str_from_cstr("default"), sr_str_from_cstr("gateway"), 0};
  for (int i = 1; i < argc; i++) {
    b.placement = sr_str_from_cstr(argv[i]);
    sr_client_driver *c = NULL;
    sr_status st = sr_client_new(store, &gw, &b, &c, NULL);
    printf("placement.%s=%s\n", argv[i], sr_status_name(st));
    sr_client_free(c);
  }
  sr_store_free(store);
  return 0;
}
