package statefulroute

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Store faults, staleness and the cache rules through the Go package, on redis-server
// processes of the tests' own (launchRedis; tests/PORTS.md) where a test stops or kills one.

const faultTimeout = 300 * time.Millisecond

// callSlack is how much later than its deadline a failing call may return on a busy machine.
const callSlack = time.Second

// faultServer is a redis-server of the test's own that it may stop, kill and restart on the
// same port.
type faultServer struct {
	t    *testing.T
	dir  string
	args []string
	srv  *redisServer
}

func startFaultServer(t *testing.T) *faultServer {
	t.Helper()
	dir := t.TempDir()
	f := &faultServer{t: t, dir: dir, args: []string{"--save", "", "--appendonly", "no"}}
	f.srv = startRedis(t, dir, false, f.args...)
	t.Cleanup(func() { f.signal(syscall.SIGCONT) }) // a stopped server must not outlive a failed test stopped
	return f
}

func (f *faultServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", f.srv.Port) }

func (f *faultServer) signal(sig syscall.Signal) {
	if err := f.srv.cmd.Process.Signal(sig); err != nil && sig != syscall.SIGCONT {
		f.t.Fatalf("%v: %v", sig, err)
	}
}

// restart starts redis-server again on the same (still leased) port, empty, and waits until it
// answers with its own process id.
func (f *faultServer) restart() {
	f.t.Helper()
	port := f.srv.Port
	args := append(append([]string{}, f.args...), "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", f.dir, "--logfile", f.srv.Log)
	s, err := spawnRedis(f.dir, f.srv.Log, args)
	if err != nil {
		f.t.Fatal(err)
	}
	s.Port = port
	f.t.Cleanup(func() {
		s.Kill()
		if f.t.Failed() {
			f.t.Log(s.logTail(200))
		}
	})
	if !s.ready() {
		f.t.Fatalf("redis-server did not come back on port %d: %s", port, s.logTail(40))
	}
	f.srv = s
}

func faultStore(t *testing.T, url string) *Store {
	t.Helper()
	return must(NewStore(bg, StoreConfig{URL: url, KeyPrefix: uniquePrefix(),
		ConnectTimeout: faultTimeout, CommandTimeout: faultTimeout}))(t)
}

// expectCode checks that f fails with exactly code within command_timeout (plus slack).
func expectCode(t *testing.T, what string, code Code, f func() error) {
	t.Helper()
	start := time.Now()
	err := f()
	took := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s: got %v after %v, want %v", what, err, took, code)
	}
	if took > faultTimeout+callSlack {
		t.Fatalf("%s: failed with %v after %v, more than command_timeout %v (+%v)", what, code, took, faultTimeout, callSlack)
	}
	if code == ErrTimeout && took < faultTimeout-50*time.Millisecond {
		t.Fatalf("%s: TIMEOUT after only %v (command_timeout %v)", what, took, faultTimeout)
	}
}

// SIGSTOP: calls fail with TIMEOUT within command_timeout; SIGCONT: routed again. SIGKILL:
// STORE_UNAVAILABLE; restarted (empty) on the same port: routed again within a bounded time.
func TestStoreStoppedKilledAndRestarted(t *testing.T) {
	redis := startFaultServer(t)
	s := faultStore(t, redis.url())
	startPod(t, s, "fault", 0, 0)
	c := newClient(t, s)
	if p := must(c.ComputeLinkedPod(bg, ns, "warm", "fault"))(t); p != 0 {
		t.Fatalf("got %d", p)
	}

	redis.signal(syscall.SIGSTOP)
	expectCode(t, "stopped: new user", ErrTimeout, func() error {
		_, err := c.ComputeLinkedPod(bg, ns, "new-stopped", "fault")
		return err
	})
	expectCode(t, "stopped: set link", ErrTimeout, func() error {
		_, err := s.SetLink(bg, ns, "set-stopped", "fault", 0, -1)
		return err
	})
	if p := must(c.ComputeLinkedPod(bg, ns, "warm", "fault"))(t); p != 0 { // a cache hit
		t.Fatalf("cached user while stopped: got %d", p)
	}
	redis.signal(syscall.SIGCONT)
	resumed := time.Now()
	poll(t, 5*time.Second, "a new user routed after SIGCONT", func() bool {
		p, err := c.ComputeLinkedPod(bg, ns, "new-continued", "fault")
		return err == nil && p == 0
	})
	t.Logf("routed again %v after SIGCONT", time.Since(resumed).Round(time.Millisecond))

	redis.srv.cmd.Process.Signal(syscall.SIGKILL)
	<-redis.srv.exited
	expectCode(t, "killed: new user", ErrStoreUnavailable, func() error {
		_, err := c.ComputeLinkedPod(bg, ns, "new-killed", "fault")
		return err
	})
	expectCode(t, "killed: set link", ErrStoreUnavailable, func() error {
		_, err := s.SetLink(bg, ns, "set-killed", "fault", 0, -1)
		return err
	})

	redis.restart()
	up := time.Now()
	poll(t, 10*time.Second, "a new user routed after the restart", func() bool {
		p, err := c.ComputeLinkedPod(bg, ns, "new-restarted", "fault")
		return err == nil && p == 0
	})
	t.Logf("routed again %v after the restart", time.Since(up).Round(time.Millisecond))
	if l, ok := must2(t)(s.GetLink(bg, ns, "new-restarted", "fault")); !ok || l.PodIndex != 0 || l.Persistent {
		t.Fatalf("the new link is in the restarted store: %+v %v", l, ok)
	}
}

// Stale-if-error: a cached link whose entry expired is still served while the store is
// stopped (SIGSTOP); a new user fails with TIMEOUT.
func TestServeStaleWhileTheStoreIsStopped(t *testing.T) {
	redis := startFaultServer(t)
	s := faultStore(t, redis.url())
	startPod(t, s, "stale", 0, 0)
	cfg := fastConfig()
	cfg.UserLinkInfoCacheTimeSeconds = 1 // margin 299 s: the serve-stale window is its default 60 s
	c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg))(t)
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := must(c.ComputeLinkedPod(bg, ns, "u1", "stale"))(t); p != 0 {
		t.Fatalf("got %d", p)
	}
	redis.signal(syscall.SIGSTOP)
	poll(t, 5*time.Second, "the cache entry to expire (1 s)", func() bool {
		return must(c.GetLinkedInCache(bg, ns, "u1", "stale"))(t) == -1
	})
	start := time.Now()
	if p, err := c.ComputeLinkedPod(bg, ns, "u1", "stale"); err != nil || p != 0 {
		t.Fatalf("stale-if-error while stopped: got %d, %v", p, err)
	}
	if took := time.Since(start); took > faultTimeout+callSlack {
		t.Fatalf("the stale answer took %v", took)
	}
	expectCode(t, "stopped: new user", ErrTimeout, func() error {
		_, err := c.ComputeLinkedPod(bg, ns, "u2", "stale")
		return err
	})
	redis.signal(syscall.SIGCONT)
	poll(t, 5*time.Second, "the new user routed after SIGCONT", func() bool {
		p, err := c.ComputeLinkedPod(bg, ns, "u2", "stale")
		return err == nil && p == 0
	})
}

// Staleness: a pod that publishes every 30 s, with stale_after 1 s, goes not-alive about 1 s
// after its publish at start, and a new user then finds no pod.
func TestPodGoesStaleAfterStaleAfter(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		cfg := DefaultBaseConfig()
		cfg.ServiceStateUpdatePeriodSeconds = 30
		cfg.StaleAfterSeconds = 1
		cfg.CpuFactor = 0
		pod := must(NewServerDriver(s, ServerInfo{Namespace: ns, ServiceName: "quiet", PodIndex: 0}, &cfg))(t)
		t.Cleanup(func() { pod.Close() })
		c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, &cfg))(t)
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		started := time.Now()
		if err := pod.Start(bg); err != nil {
			t.Fatal(err)
		}
		if alive := must(c.IsPodAlive(bg, "quiet", 0))(t); !alive {
			t.Fatal("not alive right after its start")
		}
		poll(t, 5*time.Second, "the pod to go stale", func() bool {
			return !must(c.IsPodAlive(bg, "quiet", 0))(t)
		})
		if took := time.Since(started); took < 900*time.Millisecond {
			t.Fatalf("stale after %v, before stale_after (1 s)", took)
		}
		if pods := must(c.AlivePods(bg, "quiet"))(t); len(pods) != 0 {
			t.Fatalf("alive pods %v", pods)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "late", "quiet"); !errors.Is(err, ErrNoAvailablePod) {
			t.Fatalf("new user with only a stale pod: %v", err)
		}
	})
}

// The cache-vs-TTL rule: with a 3 s temporary TTL and a 1 s user cache (margin 2 s), a cached
// temporary link leaves the cache after about 1 s, while the store still holds it.
func TestCachedTemporaryLinkLeavesBeforeTheStoreForgetsIt(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "ttl", 0, 0)
		cfg := fastConfig()
		cfg.TempLinkInfoCacheTimeSeconds = 3
		cfg.UserLinkInfoCacheTimeSeconds = 1
		c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg))(t)
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		start := time.Now()
		if p := must(c.ComputeLinkedPod(bg, ns, "t1", "ttl"))(t); p != 0 {
			t.Fatalf("got %d", p)
		}
		l, ok := must2(t)(s.GetLink(bg, ns, "t1", "ttl"))
		if !ok || l.Persistent || l.TTL > 3*time.Second || l.TTL < 2*time.Second {
			t.Fatalf("a 3 s temporary link: %+v", l)
		}
		if p := must(c.GetLinkedInCache(bg, ns, "t1", "ttl"))(t); p != 0 {
			t.Fatalf("not cached: %d", p)
		}
		poll(t, 3*time.Second, "the cache entry to leave", func() bool {
			return must(c.GetLinkedInCache(bg, ns, "t1", "ttl"))(t) == -1
		})
		left := time.Since(start)
		if left < 950*time.Millisecond || left > 2*time.Second {
			t.Fatalf("the entry left the cache after %v, want about 1 s", left)
		}
		l, ok = must2(t)(s.GetLink(bg, ns, "t1", "ttl"))
		if !ok || l.PodIndex != 0 || l.TTL <= 0 {
			t.Fatalf("the store still holds the link when the cache drops it: %+v %v", l, ok)
		}
	})
}
