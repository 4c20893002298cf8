// Package bench compares the Go package with the routing the original Go module did by hand:
// go-redis for the links, go-cache for the local cache. A separate module, so that the
// package itself depends on the standard library only. Run it with ../bench.sh.
package bench
