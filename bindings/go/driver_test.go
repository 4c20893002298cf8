package statefulroute

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var bg = context.Background()

func TestComputeLinkedPodIsSticky(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "room", 0, 10)
		c := newClient(t, s)
		if pod := must(c.ComputeLinkedPod(bg, ns, "u1", "room"))(t); pod != 0 {
			t.Fatalf("pod 0 is a real pod: got %d", pod)
		}
		if pod := must(c.ComputeLinkedPod(bg, "", "u1", "room"))(t); pod != 0 {
			t.Fatalf("sticky: got %d", pod)
		}
		if pod := must(c.GetLinkedInCache(bg, ns, "u1", "room"))(t); pod != 0 {
			t.Fatalf("cached: got %d", pod)
		}
		l, ok := must2(t)(s.GetLink(bg, ns, "u1", "room"))
		if !ok || l.PodIndex != 0 || l.Persistent || l.TTL <= 200*time.Second {
			t.Fatalf("a gateway's placement is a temporary link: %+v", l)
		}
		other := newClient(t, s)
		if pod := must(other.ComputeLinkedPod(bg, ns, "u1", "room"))(t); pod != 0 {
			t.Fatalf("another gateway: got %d", pod)
		}
		for _, f := range []func(context.Context, string, string, string) (int, error){
			c.GetLinkedPod, c.GetLinkedPodNotCache, c.CacheExpired,
		} {
			if pod := must(f(bg, ns, "u1", "room"))(t); pod != 0 {
				t.Fatalf("got %d", pod)
			}
		}
		if pod := must(c.GetLinkedInCache(bg, ns, "u1", "room"))(t); pod != -1 {
			t.Fatalf("after CacheExpired: got %d", pod)
		}
		if pod := must(c.GetLinkedPodInCacheOrIfPersist(bg, ns, "u1", "room"))(t); pod != -1 {
			t.Fatalf("temporary link is not persistent: got %d", pod)
		}
		if err := c.SetCache(bg, ns, "u1", "room", 0); err != nil {
			t.Fatal(err)
		}
		if n := c.CacheLen(); n != 1 {
			t.Fatalf("cache holds %d links, want 1 (u1)", n)
		}
		l = must(c.SetLinkedPodIfAbsent(bg, ns, "u2", "room", 0, -1))(t)
		if l.PodIndex != 0 || !l.Persistent {
			t.Fatalf("%+v", l)
		}
		if m := must(c.GetLinkService(bg, ns, "u2"))(t); len(m) != 1 || m["room"] != 0 {
			t.Fatalf("%v", m)
		}
		m := must(c.BatchGetLinkedPod(bg, ns, []string{"u1", "nobody", "u2"}, "room"))(t)
		if len(m) != 1 || fmt.Sprint(m[0]) != "[u1 u2]" {
			t.Fatalf("%v", m)
		}
	})
}

func must2(t testing.TB) func(Link, bool, error) (Link, bool) {
	return func(l Link, ok bool, err error) (Link, bool) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return l, ok
	}
}

func TestManyGoroutinesComputingOneNewUserGetOnePod(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		for i := 0; i < 3; i++ {
			startPod(t, s, "race", i, 0)
		}
		clients := []*ClientDriver{newClient(t, s), newClient(t, s), newClient(t, s), newClient(t, s)}
		for round := 0; round < 5; round++ {
			uid := fmt.Sprintf("racer-%d", round)
			pods := make([]int, 64)
			errs := make([]error, 64)
			var wg sync.WaitGroup
			for g := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pods[g], errs[g] = clients[g%len(clients)].ComputeLinkedPod(bg, ns, uid, "race")
				}()
			}
			wg.Wait()
			for g := range 64 {
				if errs[g] != nil || pods[g] != pods[0] {
					t.Fatalf("%s: goroutine %d got %d (%v), goroutine 0 got %d", uid, g, pods[g], errs[g], pods[0])
				}
			}
		}
	})
}

func TestDrainingAndShutdown(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		p0 := startPod(t, s, "drain", 0, 0)
		p1 := startPod(t, s, "drain", 1, 0)
		c := newClient(t, s)
		must(c.SetLinkedPodIfAbsent(bg, ns, "u-temp", "drain", 1, 300))(t)
		must(p1.SetLinkedPod(bg, ns, "u-keep", "drain", 1))(t)
		if err := p1.SetRoutingState(bg, DenyNewCall); err != nil {
			t.Fatal(err)
		}
		if p1.GetRoutingState() != DenyNewCall {
			t.Fatal("routing state not kept")
		}
		if err := c.RefreshService(bg, "drain"); err != nil {
			t.Fatal(err)
		}
		if pod := must(c.ComputeLinkedPod(bg, ns, "u-keep", "drain"))(t); pod != 1 {
			t.Fatalf("draining keeps its users: got %d", pod)
		}
		for i := range 10 {
			if pod := must(c.ComputeLinkedPod(bg, ns, fmt.Sprintf("new-%d", i), "drain"))(t); pod != 0 {
				t.Fatalf("draining takes no new users: got %d", pod)
			}
		}
		if routable := must(c.RoutablePods(bg, "drain"))(t); fmt.Sprint(routable) != "[0]" {
			t.Fatalf("routable %v", routable)
		}
		if err := p1.Stop(bg); err != nil {
			t.Fatal(err)
		}
		if err := c.RefreshService(bg, "drain"); err != nil {
			t.Fatal(err)
		}
		if pod := must(c.ComputeLinkedPod(bg, ns, "u-temp", "drain"))(t); pod != 0 {
			t.Fatalf("a temporary link moves off a stopped pod: got %d", pod)
		}
		_, err := c.ComputeLinkedPod(bg, ns, "u-keep", "drain")
		var e *Error
		if !asError(err, &e) || e.Code != ErrPodUnavailable || e.PodIndex != 1 {
			t.Fatalf("a persistent link to a stopped pod: %v", err)
		}
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		if err := p0.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p0.Stop(ctx); err != nil {
			t.Fatal("Stop is idempotent:", err)
		}
		if err := c.RefreshService(bg, "drain"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "brand-new", "drain"); !isCode(err, ErrNoAvailablePod) {
			t.Fatalf("no pod left: %v", err)
		}
		if w, ok, err := c.GetWorkloadState(bg, "drain"); err != nil || !ok || w != "SHUTDOWN" {
			t.Fatalf("workload %q %v %v", w, ok, err)
		}
	})
}

func TestReadSideAndServerLinks(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		p0 := startPod(t, s, "room", 0, 7)
		c := newClient(t, s)
		if p0.GetLoadState() != 7 || p0.WeightedLoad() != 7 {
			t.Fatalf("load %d weighted %d", p0.GetLoadState(), p0.WeightedLoad())
		}
		states := must(c.PodStates(bg, "room"))(t)
		if len(states) != 1 || states[0].PodIndex != 0 || states[0].Load != 7 || states[0].RoutingState != Ready || states[0].Weight != 100 {
			t.Fatalf("%+v", states)
		}
		if stored := must(s.PodStates(bg, ns, "room"))(t); len(stored) != 1 || stored[0] != states[0] {
			t.Fatalf("store %+v, driver %+v", stored, states)
		}
		// ComputeLinkedPod's halves: the cache probe, then the store.
		if pod := must(c.ComputeCached(bg, ns, "halves", "room"))(t); pod != -1 {
			t.Fatalf("cached before any compute: %d", pod)
		}
		if pod := must(c.ComputeLinkedPodUncached(bg, ns, "halves", "room"))(t); pod != 0 {
			t.Fatalf("uncached: %d", pod)
		}
		if pod := must(c.ComputeCached(bg, "", "halves", "room"))(t); pod != 0 {
			t.Fatalf("cached after compute: %d", pod)
		}
		if _, err := c.ComputeCached(bg, ns, "bad}uid", "room"); !isCode(err, ErrInvalidArgument) {
			t.Fatalf("bad uid: %v", err)
		}
		if alive := must(c.AlivePods(bg, "room"))(t); fmt.Sprint(alive) != "[0]" {
			t.Fatalf("%v", alive)
		}
		if !must(c.IsPodAlive(bg, "room", 0))(t) || must(c.IsPodRoutable(bg, "room", 1))(t) {
			t.Fatal("liveness")
		}
		if must(c.BestPod(bg, "room"))(t) != 0 {
			t.Fatal("best pod")
		}
		if !must(c.IsWorkloadReady(bg, "room"))(t) {
			t.Fatal("pod 0 keeps the workload state")
		}
		if err := c.SetWorkloadState(bg, "other", "WARMING"); err != nil {
			t.Fatal(err)
		}
		if w := must(c.BatchGetWorkloadState(bg, []string{"room", "other", "unknown"}))(t); fmt.Sprintf("%q", w) != `["READY" "WARMING" ""]` {
			t.Fatalf("%q", w)
		}
		if err := c.SetGlobalServiceNameTag(bg, "rooms", "room"); err != nil {
			t.Fatal(err)
		}
		if svc, ok, err := c.GetServiceNameByTag(bg, "rooms"); err != nil || !ok || svc != "room" {
			t.Fatalf("%q %v %v", svc, ok, err)
		}
		if _, ok, err := c.GetServiceNameByTag(bg, "nope"); err != nil || ok {
			t.Fatalf("%v %v", ok, err)
		}
		if prev := must(p0.SetLinkedPod(bg, "", "s1", "room", 0))(t); prev != -1 {
			t.Fatalf("prev %d", prev)
		}
		o := must(p0.TrySetLinkedPod(bg, ns, "s1", "room", 3))(t)
		if o.Accepted || o.Owner != 0 || o.Previous != 0 {
			t.Fatalf("%+v", o)
		}
		if must(p0.RemoveLinkedPodWithId(bg, ns, "s1", "room", 3, 0))(t) {
			t.Fatal("removed a link to another pod")
		}
		if !must(p0.RemoveLinkedPodWithId(bg, ns, "s1", "room", 0, 0))(t) {
			t.Fatal("not removed")
		}
		if must(p0.RemoveLinkedPod(bg, ns, "s1", "room", 0))(t) {
			t.Fatal("removed twice")
		}
	})
}

func TestRoutingStateCallbackAndLogs(t *testing.T) {
	var mu sync.Mutex
	var records []string
	if err := SetLogHandler(recorder{&mu, &records}); err != nil {
		t.Fatal(err)
	}
	defer SetLogHandler(nil)
	bothStores(t, func(t *testing.T, s *Store) {
		p0 := startPod(t, s, "cb", 0, 0)
		c := newClient(t, s)
		var changes atomic.Int32
		var last atomic.Value
		id := must(c.OnRoutingStateChanged(func(ch RoutingStateChange) {
			changes.Add(1)
			last.Store(ch)
			// A blocking call from a callback is refused, never a deadlock.
			if err := c.RefreshService(bg, "cb"); !isCode(err, ErrInvalidArgument) {
				panic(fmt.Sprint("nested call: ", err))
			}
		}))(t)
		must(c.ComputeLinkedPod(bg, ns, "u", "cb"))(t)
		if err := p0.SetRoutingState(bg, DenyNewCall); err != nil {
			t.Fatal(err)
		}
		if err := c.RefreshService(bg, "cb"); err != nil {
			t.Fatal(err)
		}
		// Reported by this refresh or by the one the pod's event starts (propagation),
		// whichever applies the new state first: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for last.Load() == nil && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		ch, _ := last.Load().(RoutingStateChange)
		if changes.Load() != 1 || ch != (RoutingStateChange{Service: "cb", PodIndex: 0, Old: Ready, New: DenyNewCall}) {
			t.Fatalf("%d changes, last %+v", changes.Load(), ch)
		}
		if !must(c.RemoveRoutingStateListener(id))(t) || must(c.RemoveRoutingStateListener(id))(t) {
			t.Fatal("remove")
		}
	})
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, r := range records {
		if r == "INFO stateful_route::server pod started" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no 'pod started' record among %d", len(records))
	}
}

type recorder struct {
	mu      *sync.Mutex
	records *[]string
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	target := ""
	rec.Attrs(func(a slog.Attr) bool { target = a.Value.String(); return true })
	msg := rec.Message
	if i := len("pod started"); len(msg) >= i && msg[:i] == "pod started" {
		msg = msg[:i]
	}
	r.mu.Lock()
	*r.records = append(*r.records, rec.Level.String()+" "+target+" "+msg)
	r.mu.Unlock()
	return nil
}
func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

// Handles dropped without Close are freed by their cleanups, while other goroutines work: the
// library frees every dropped client driver (sr_client_free ran) and releases the routing-state
// callback registered on it (its release callback ran), and a dropped store and server driver
// are freed too.
func TestHandlesAreReleasedByTheGarbageCollector(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "gc", 0, 0)
		clients0, callbacks0 := released.clients.Load(), released.callbacks.Load()
		servers0, stores0 := released.servers.Load(), released.stores.Load()
		func() { // a server driver and a store of their own, dropped without Close
			store := MemoryStore()
			d := must(NewServerDriver(store, ServerInfo{Namespace: ns, ServiceName: "gc-dropped"}, fastConfig()))(t)
			if err := d.Start(bg); err != nil {
				t.Fatal(err)
			}
		}()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					c, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, fastConfig())
					if err != nil {
						t.Error(err)
						return
					}
					if err := c.Init(); err != nil {
						t.Error(err)
						return
					}
					c.OnRoutingStateChanged(func(RoutingStateChange) {})
					if _, err := c.ComputeLinkedPod(bg, ns, fmt.Sprintf("gc-%d-%d", g, i), "gc"); err != nil {
						t.Error(err)
						return
					}
					runtime.GC()
				}
			}()
		}
		wg.Wait()
		const dropped = 8 * 20
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			clients, callbacks := released.clients.Load()-clients0, released.callbacks.Load()-callbacks0
			servers, stores := released.servers.Load()-servers0, released.stores.Load()-stores0
			if clients >= dropped && callbacks >= dropped && servers >= 1 && stores >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("released after 10 s: %d of %d client drivers, %d of %d callbacks, %d server drivers, %d stores",
					clients, dropped, callbacks, dropped, servers, stores)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
