package statefulroute

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

var (
	redisURL string
	prefixes atomic.Int64
)

// TestMain uses the Redis at $STATEFUL_ROUTE_TEST_REDIS, or starts a throwaway redis-server on
// a free loopback port for the run.
func TestMain(m *testing.M) {
	redisURL = os.Getenv("STATEFUL_ROUTE_TEST_REDIS")
	var server *exec.Cmd
	if redisURL == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		dir, _ := os.MkdirTemp("", "sr-go-redis")
		server = exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir)
		if err := server.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "redis-server is missing (tests/install-deps.sh installs it):", err)
			os.Exit(1)
		}
		redisURL = fmt.Sprintf("redis://127.0.0.1:%d", port)
		waitForPort(port)
	}
	code := m.Run()
	if server != nil {
		server.Process.Kill()
		server.Wait()
	}
	os.Exit(code)
}

// waitForPort polls (bounded) until redis-server accepts connections.
func waitForPort(port int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	panic("redis-server did not start")
}

// freshStore is a fresh store of kind "memory" or "redis" under a key prefix no other test uses.
func freshStore(t testing.TB, kind string) *Store {
	t.Helper()
	cfg := StoreConfig{KeyPrefix: fmt.Sprintf("go%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, prefixes.Add(1))}
	if kind == "redis" {
		cfg.URL = redisURL
	}
	s, err := NewStore(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%s store: %v", kind, err)
	}
	return s
}

// bothStores runs f against the memory store and against Redis.
func bothStores(t *testing.T, f func(t *testing.T, s *Store)) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) { f(t, freshStore(t, kind)) })
	}
}

const ns = "default"

func fastConfig() *BaseConfig {
	c := DefaultBaseConfig()
	c.ServiceStateUpdatePeriodSeconds = 0.2
	c.StaleAfterSeconds = 5 // generous: a busy machine must never make a live pod look stale
	c.CpuFactor = 0
	return &c
}

func startPod(t testing.TB, s *Store, svc string, pod, load int) *ServerDriver {
	t.Helper()
	ctx := context.Background()
	d, err := NewServerDriver(s, ServerInfo{Namespace: ns, ServiceName: svc, PodIndex: pod}, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetLoadState(ctx, load); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newClient(t testing.TB, s *Store) *ClientDriver {
	t.Helper()
	c, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must(f())(t) is f's value, failing the test on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
