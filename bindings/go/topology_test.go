package statefulroute

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The scale-out topologies on real redis-server processes started here: a 3-master Redis
// Cluster (the link vectors, a batch read across many slots, a driver flow) and a master +
// replica + sentinel whose master is killed. Every process started here runs on leased ports
// (launchRedis, helpers_test.go; tests/PORTS.md), is killed at the end of its test, and dies
// with the test binary (dieWithTest). A failed test logs the logs of its servers.

// startRedis starts `redis-server args...` (the first may be a config file) in its own
// directory dir on leased ports (and a leased bus port for a cluster node); it returns once
// the server answers. The server is killed when the test ends, and its log is logged if the
// test failed.
func startRedis(t *testing.T, dir string, cluster bool, args ...string) *redisServer {
	t.Helper()
	s, err := launchRedis(dir, cluster, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Log(s.logTail(200))
		}
	})
	return s
}

// redisCLI runs one command with redis-cli against the server on port.
func redisCLI(port int, args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port)}, args...)...).Output()
	return strings.TrimSpace(string(out)), err
}

func poll(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCluster starts 3 masters (no replicas), joins them with redis-cli --cluster create and
// waits for cluster_state:ok on every node; it returns their ports.
func startCluster(t *testing.T) []int {
	t.Helper()
	ports, nodes := make([]int, 3), make([]string, 3)
	for i := range ports {
		ports[i] = startRedis(t, t.TempDir(), true, "--save", "", "--appendonly", "no",
			"--cluster-node-timeout", "1000").Port
		nodes[i] = fmt.Sprintf("127.0.0.1:%d", ports[i])
	}
	args := append(append([]string{"--cluster", "create"}, nodes...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	poll(t, 30*time.Second, "cluster_state:ok on every node", func() bool {
		for _, p := range ports {
			if out, _ := redisCLI(p, "cluster", "info"); !strings.Contains(out, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return ports
}

func uniquePrefix() string {
	return fmt.Sprintf("go%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, prefixes.Add(1))
}

func TestCluster(t *testing.T) {
	ports := startCluster(t)
	urls := make([]string, len(ports))
	for i, p := range ports {
		urls[i] = fmt.Sprintf("redis://127.0.0.1:%d", p)
	}
	store := func(t *testing.T) *Store {
		t.Helper()
		s, err := ConnectCluster(bg, urls, StoreConfig{KeyPrefix: uniquePrefix()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("vectors", func(t *testing.T) { runVectors(t, store(t)) })

	t.Run("one seed is enough", func(t *testing.T) {
		s, err := ConnectCluster(bg, urls[1:2])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetLink(bg, ns, "seed-user", "room", 4, 60); err != nil {
			t.Fatal(err)
		}
		if l, ok, err := s.GetLink(bg, ns, "seed-user", "room"); err != nil || !ok || l.PodIndex != 4 {
			t.Fatalf("%+v %v %v", l, ok, err)
		}
	})

	t.Run("batch reads across many slots match the memory store", func(t *testing.T) {
		cluster, memory := store(t), MemoryStore()
		uids := make([]string, 500)
		want := 0
		for i := range uids {
			uids[i] = fmt.Sprintf("batch-user-%d", i)
			if i%7 == 3 {
				continue // some users have no link
			}
			want++
			ttl := -1
			if i%2 == 1 {
				ttl = 300
			}
			for _, s := range []*Store{cluster, memory} {
				if _, err := s.SetLink(bg, ns, uids[i], "room", i%5, ttl); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Reversed, so that input order is not key order.
		asked := make([]string, len(uids))
		for i, u := range uids {
			asked[len(uids)-1-i] = u
		}
		got := must(cluster.BatchGetLinks(bg, ns, asked, "room"))(t)
		fromMemory := must(memory.BatchGetLinks(bg, ns, asked, "room"))(t)
		if !reflect.DeepEqual(got, fromMemory) {
			t.Fatalf("cluster %v\nmemory %v", got, fromMemory)
		}
		linked := 0
		for _, us := range got {
			linked += len(us)
		}
		if linked != want {
			t.Fatalf("%d users linked, want %d", linked, want)
		}
		// The keys really are spread over the masters.
		for _, p := range ports {
			if n, _ := redisCLI(p, "dbsize"); n == "0" || n == "" {
				t.Fatalf("node :%d holds no key", p)
			}
		}
	})

	t.Run("drivers", func(t *testing.T) {
		s := store(t)
		startPod(t, s, "room", 0, 10)
		startPod(t, s, "room", 1, 10)
		c := newClient(t, s)
		uids := make([]string, 50)
		for i := range uids {
			uids[i] = fmt.Sprintf("driver-user-%d", i)
			pod := must(c.ComputeLinkedPod(bg, ns, uids[i], "room"))(t)
			if pod != 0 && pod != 1 {
				t.Fatalf("%s -> %d", uids[i], pod)
			}
			if again := must(c.GetLinkedPodNotCache(bg, ns, uids[i], "room"))(t); again != pod {
				t.Fatalf("%s: placed on %d, stored %d", uids[i], pod, again)
			}
		}
		byPod := must(c.BatchGetLinkedPod(bg, ns, uids, "room"))(t)
		if len(byPod[0])+len(byPod[1]) != len(uids) {
			t.Fatalf("%v", byPod)
		}
	})
}

func TestSentinelFailover(t *testing.T) {
	masterServer := startRedis(t, t.TempDir(), false, "--save", "", "--appendonly", "no")
	master := masterServer.Port
	replica := startRedis(t, t.TempDir(), false, "--save", "", "--appendonly", "no",
		"--replicaof", "127.0.0.1", strconv.Itoa(master)).Port
	poll(t, 10*time.Second, "the replica to sync", func() bool {
		out, _ := redisCLI(replica, "info", "replication")
		return strings.Contains(out, "master_link_status:up")
	})
	// A sentinel rewrites its config file, so it gets one of its own in its directory.
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, "sentinel monitor main 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds main 1000\n"+
		"sentinel failover-timeout main 5000\n", master), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sentinel := startRedis(t, dir, false, conf, "--sentinel").Port

	s, err := ConnectSentinel(bg, []string{fmt.Sprintf("redis://127.0.0.1:%d", sentinel)}, "main",
		StoreConfig{KeyPrefix: uniquePrefix(), ConnectTimeout: time.Second, CommandTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLink(bg, ns, "before", "room", 1, -1); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the replica to have the link", func() bool {
		out, _ := redisCLI(replica, "info", "keyspace")
		return strings.Contains(out, "keys=")
	})

	masterServer.Kill()
	killed := time.Now()
	failures := map[Code]int{}
	for {
		_, err := s.SetLink(bg, ns, "after", "room", 2, -1)
		if err == nil {
			break
		}
		var code Code
		if !errors.As(err, &code) {
			t.Fatalf("untyped error: %v", err)
		}
		failures[code]++
		if time.Since(killed) > 40*time.Second {
			t.Fatalf("the store did not follow the failover: %v (last: %v)", failures, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("writes resumed %v after the master was killed; failures meanwhile %v", time.Since(killed).Round(time.Millisecond), failures)
	for code := range failures {
		if code != ErrStoreUnavailable && code != ErrTimeout && code != ErrStoreError {
			t.Errorf("unexpected failure kind %v", code)
		}
	}
	if out, _ := redisCLI(replica, "info", "replication"); !strings.Contains(out, "role:master") {
		t.Fatalf("the replica was not promoted:\n%s", out)
	}
	for uid, want := range map[string]int{"before": 1, "after": 2} {
		l, ok, err := s.GetLink(bg, ns, uid, "room")
		if err != nil || !ok || l.PodIndex != want || !l.Persistent {
			t.Fatalf("%s: %+v %v %v, want persistent link to %d", uid, l, ok, err, want)
		}
	}
}

// The topology arguments are checked before anything connects; a dead seed or sentinel is a
// typed error.
func TestTopologyArguments(t *testing.T) {
	// A leased port: nothing listens there, and no other test starts a server there.
	dead := fmt.Sprintf("redis://127.0.0.1:%d", must(leasePort())(t))
	fast := StoreConfig{ConnectTimeout: 300 * time.Millisecond, CommandTimeout: 300 * time.Millisecond}
	for name, tc := range map[string]struct {
		f    func() (*Store, error)
		want Code
	}{
		"no seed":             {func() (*Store, error) { return ConnectCluster(bg, nil) }, ErrInvalidArgument},
		"two configs":         {func() (*Store, error) { return ConnectCluster(bg, []string{dead}, fast, fast) }, ErrInvalidArgument},
		"config with a URL":   {func() (*Store, error) { return ConnectCluster(bg, []string{dead}, StoreConfig{URL: dead}) }, ErrInvalidConfig},
		"URL and ClusterURLs": {func() (*Store, error) { return NewStore(bg, StoreConfig{URL: dead, ClusterURLs: []string{dead}}) }, ErrInvalidConfig},
		"cluster and sentinel": {func() (*Store, error) {
			return NewStore(bg, StoreConfig{ClusterURLs: []string{dead}, SentinelURLs: []string{dead}, SentinelMasterName: "m"})
		}, ErrInvalidConfig},
		"dead seed":      {func() (*Store, error) { return ConnectCluster(bg, []string{dead}, fast) }, ErrStoreUnavailable},
		"bad seed":       {func() (*Store, error) { return ConnectCluster(bg, []string{"nope://x"}, fast) }, ErrInvalidArgument},
		"no sentinel":    {func() (*Store, error) { return ConnectSentinel(bg, nil, "main") }, ErrInvalidArgument},
		"no master name": {func() (*Store, error) { return ConnectSentinel(bg, []string{dead}, "") }, ErrInvalidArgument},
		"dead sentinel":  {func() (*Store, error) { return ConnectSentinel(bg, []string{dead}, "main", fast) }, ErrStoreUnavailable},
		"sentinel via NewStore, no name": {func() (*Store, error) {
			return NewStore(bg, StoreConfig{SentinelURLs: []string{dead}})
		}, ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := tc.f()
			if s != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", s, err, tc.want)
			}
		})
	}
	t.Run("a plain redis-server is no sentinel", func(t *testing.T) {
		cfg := fast
		cfg.SentinelURLs, cfg.SentinelMasterName = []string{redisURL}, "main"
		s, err := NewStore(bg, cfg)
		var code Code
		if s != nil || !errors.As(err, &code) || code == ErrInternal {
			t.Fatalf("got %v, %v", s, err)
		}
	})
	t.Run("TLS CA certificate", func(t *testing.T) {
		pem := []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
		// Copied for the call; ignored by the memory store and by redis:// URLs.
		s := must(NewStore(bg, StoreConfig{TLSCACertPEM: pem}))(t)
		if _, err := s.SetLink(bg, ns, "u", "room", 1, -1); err != nil {
			t.Fatal(err)
		}
		cfg := fast
		cfg.URL, cfg.TLSCACertPEM = strings.Replace(dead, "redis://", "rediss://", 1), pem
		s, err := NewStore(bg, cfg)
		var code Code
		if s != nil || !errors.As(err, &code) || code == ErrInternal {
			t.Fatalf("an unusable certificate is a typed error: %v, %v", s, err)
		}
	})
}

func TestServeStaleSecondsConfig(t *testing.T) {
	if got := DefaultBaseConfig().ServeStaleSeconds; got != 60 {
		t.Fatalf("default %v, want 60", got)
	}
	s := MemoryStore()
	for _, v := range []float64{0, 2.5, -1} {
		cfg := fastConfig()
		cfg.ServeStaleSeconds = v
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); err != nil {
			t.Fatalf("%v: %v", v, err)
		}
	}
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		cfg := fastConfig()
		cfg.ServeStaleSeconds = v
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%v: got %v, want ErrInvalidConfig", v, err)
		}
	}
}

// Stale-if-error through the Go API: with the store gone, a gateway whose ServeStaleSeconds
// window covers a recently expired cached link still answers; one with the window off fails.
func TestServeStaleWhileTheStoreIsDown(t *testing.T) {
	server := startRedis(t, t.TempDir(), false, "--save", "", "--appendonly", "no")
	s := must(NewStore(bg, StoreConfig{URL: fmt.Sprintf("redis://127.0.0.1:%d", server.Port), KeyPrefix: uniquePrefix(),
		ConnectTimeout: 300 * time.Millisecond, CommandTimeout: 300 * time.Millisecond}))(t)
	startPod(t, s, "room", 0, 10)
	gateway := func(stale float64) *ClientDriver {
		cfg := fastConfig()
		cfg.UserLinkInfoCacheTimeSeconds = 1
		cfg.ServeStaleSeconds = stale
		c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg))(t)
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	serving, strict := gateway(0), gateway(-1) // 0 = the default window (60 s); -1 = off
	for _, c := range []*ClientDriver{serving, strict} {
		if pod := must(c.ComputeLinkedPod(bg, ns, "u1", "room"))(t); pod != 0 {
			t.Fatalf("got %d", pod)
		}
	}
	server.Kill()
	poll(t, 5*time.Second, "the cached links to expire (1 s)", func() bool {
		return must(serving.GetLinkedInCache(bg, ns, "u1", "room"))(t) == -1 &&
			must(strict.GetLinkedInCache(bg, ns, "u1", "room"))(t) == -1
	})
	if pod, err := serving.ComputeLinkedPod(bg, ns, "u1", "room"); err != nil || pod != 0 {
		t.Fatalf("stale-if-error: got %d, %v", pod, err)
	}
	if pod, err := strict.ComputeLinkedPod(bg, ns, "u1", "room"); !errors.Is(err, ErrStoreUnavailable) && !errors.Is(err, ErrTimeout) {
		t.Fatalf("without the window: got %d, %v", pod, err)
	}
}
