package statefulroute

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Change propagation (SPEC §11): a link or routing-state change made anywhere reaches every
// ClientDriver sharing the store, within 1 s on Redis and before the writing call returns on
// the memory store, even with the defaults' 240 s cache and 30 s refresh. Every wait is a poll
// with a deadline, never a sleep as synchronisation.

const followWithin = time.Second

// sharedStores is n Stores over one key space: on Redis n separate connections (and event
// subscribers) under one fresh prefix; in memory the one store n times (two memory stores share
// nothing). propagation false makes every store but the first a DisablePropagation one.
func sharedStores(t *testing.T, kind string, n int, propagation bool) []*Store {
	t.Helper()
	first := freshStore(t, kind)
	out := []*Store{first}
	if kind != "redis" {
		for len(out) < n {
			out = append(out, first)
		}
		return out
	}
	prefix := fmt.Sprintf("go%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, prefixes.Add(1))
	out[0] = must(NewStore(bg, StoreConfig{URL: redisURL, KeyPrefix: prefix}))(t)
	for len(out) < n {
		out = append(out, must(NewStore(bg, StoreConfig{URL: redisURL, KeyPrefix: prefix, DisablePropagation: !propagation}))(t))
	}
	return out
}

// defaultGateway is a ClientDriver with DefaultBaseConfig() (240 s cache, 30 s refresh): only
// propagation makes it follow a change within the test's deadlines.
func defaultGateway(t *testing.T, s *Store) *ClientDriver {
	t.Helper()
	cfg := DefaultBaseConfig()
	c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, &cfg))(t)
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// changes records what a link listener saw. The listener must not fail the test itself (on the
// memory store it runs inside the writing call): it only records.
type changes struct {
	mu   sync.Mutex
	seen []LinkChange
	// cachedInCall and nestedErr: what the callback's own calls on its driver answered.
	cachedInCall []int
	nestedErr    []error
}

func (r *changes) listen(t *testing.T, c *ClientDriver) uint64 {
	t.Helper()
	return must(c.OnLinkChanged(func(ch LinkChange) {
		cached, _ := c.GetLinkedInCache(context.Background(), ch.Namespace, ch.UID, ch.Service)
		_, nested := c.GetLinkedPod(context.Background(), ch.Namespace, ch.UID, ch.Service)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen = append(r.seen, ch)
		r.cachedInCall = append(r.cachedInCall, cached)
		r.nestedErr = append(r.nestedErr, nested)
	}))(t)
}

func (r *changes) all() []LinkChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LinkChange(nil), r.seen...)
}

// until polls cond until it holds or within passes; it reports how long that took.
func until(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(time.Millisecond)
	}
}

func answers(c *ClientDriver, uid, svc string, want int) func() bool {
	return func() bool {
		p, err := c.ComputeLinkedPod(bg, ns, uid, svc)
		return err == nil && p == want
	}
}

// 1. A persistent move: pod `other` takes the user; both gateways answer `other` within 1 s and
// B's listener gets the change (on the memory store before SetLinkedPod returns, the Go
// callback re-entering Go inside that cgo call).
func TestPropagationPersistentMove(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			stores := sharedStores(t, kind, 3, true)
			pods := []*ServerDriver{startPod(t, stores[2], "mv", 0, 0), startPod(t, stores[2], "mv", 1, 0)}
			a, b := defaultGateway(t, stores[0]), defaultGateway(t, stores[1])
			var seen changes
			id := seen.listen(t, b)
			const u = "mover"
			p := must(a.ComputeLinkedPod(bg, ns, u, "mv"))(t)
			if pb := must(b.ComputeLinkedPod(bg, ns, u, "mv"))(t); pb != p {
				t.Fatalf("gateways disagree: %d, %d", p, pb)
			}
			other := 1 - p
			if prev := must(pods[other].SetLinkedPod(bg, ns, u, "mv", other))(t); prev != p {
				t.Fatalf("previous link %d, want %d", prev, p)
			}
			if kind == "memory" {
				if got := seen.all(); len(got) != 1 {
					t.Fatalf("memory store: %d changes when SetLinkedPod returned, want 1", len(got))
				}
			}
			took, ok := until(followWithin, func() bool { return answers(a, u, "mv", other)() && answers(b, u, "mv", other)() })
			if !ok {
				t.Fatalf("gateways still not at pod %d after %v", other, took)
			}
			if _, ok := until(followWithin, func() bool { return len(seen.all()) >= 1 }); !ok {
				t.Fatal("B's listener got nothing")
			}
			want := LinkChange{Namespace: ns, Service: "mv", UID: u, Pod: other, Persistent: true}
			seen.mu.Lock()
			if len(seen.seen) != 1 || seen.seen[0] != want || seen.cachedInCall[0] != -1 || !isCode(seen.nestedErr[0], ErrInvalidArgument) {
				t.Errorf("B's listener saw %+v (cached in the call %v, nested call %v), want [%+v] (-1, INVALID_ARGUMENT)",
					seen.seen, seen.cachedInCall, seen.nestedErr, want)
			}
			seen.mu.Unlock()
			t.Logf("%s: both gateways followed in %v", kind, took)
			if !must(b.RemoveLinkListener(id))(t) || must(b.RemoveLinkListener(id))(t) {
				t.Error("RemoveLinkListener: want true, then false")
			}
		})
	}
}

// 2. Logout then re-placement: a pod removes A's user, B places the user on the other pod; A
// answers the other pod within 1 s and its listener saw exactly one removal.
func TestPropagationLogoutThenReplacement(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			stores := sharedStores(t, kind, 3, true)
			pods := []*ServerDriver{startPod(t, stores[2], "lo", 0, 0), startPod(t, stores[2], "lo", 1, 0)}
			a, b := defaultGateway(t, stores[0]), defaultGateway(t, stores[1])
			var seen changes
			seen.listen(t, a)
			const u = "leaver"
			p := must(a.ComputeLinkedPod(bg, ns, u, "lo"))(t)
			otherPod := 1 - p
			if !must(pods[p].RemoveLinkedPod(bg, ns, u, "lo", 0))(t) {
				t.Fatal("RemoveLinkedPod: no link")
			}
			if l := must(b.SetLinkedPodIfAbsent(bg, ns, u, "lo", otherPod, 300))(t); l.PodIndex != otherPod {
				t.Fatalf("SetLinkedPodIfAbsent: %+v, want pod %d", l, otherPod)
			}
			if took, ok := until(followWithin, answers(a, u, "lo", otherPod)); !ok {
				t.Fatalf("A still not at pod %d after %v", otherPod, took)
			}
			// The listener runs after the entry is dropped: A may answer anew before it ran.
			if _, ok := until(followWithin, func() bool { return len(seen.all()) >= 1 }); !ok {
				t.Fatal("A's listener got nothing")
			}
			want := []LinkChange{{Namespace: ns, Service: "lo", UID: u, Pod: -1, Persistent: false}}
			if got := seen.all(); len(got) != 1 || got[0] != want[0] {
				t.Errorf("A's listener saw %+v, want exactly %+v", got, want)
			}
		})
	}
}

// 3. Drain: a gateway with the default 30 s refresh sees DENY_NEW_CALL within 1 s.
func TestPropagationDrain(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		p0, _ := startPod(t, s, "dr", 0, 0), startPod(t, s, "dr", 1, 0)
		g := defaultGateway(t, s)
		must(g.ComputeLinkedPod(bg, ns, "someone", "dr"))(t) // loads the service's snapshot
		if !must(g.IsPodRoutable(bg, "dr", 0))(t) {
			t.Fatal("pod 0 not routable before the drain")
		}
		if err := p0.SetRoutingState(bg, DenyNewCall); err != nil {
			t.Fatal(err)
		}
		took, ok := until(followWithin, func() bool {
			routable, err1 := g.IsPodRoutable(bg, "dr", 0)
			alive, err2 := g.IsPodAlive(bg, "dr", 0)
			return err1 == nil && err2 == nil && !routable && alive
		})
		if !ok {
			t.Fatalf("gateway still routes to the draining pod after %v", took)
		}
		t.Logf("drain seen in %v", took)
	})
}

// 4. DisablePropagation: a gateway on such a store keeps its cached answer after a move (the
// TTL rule alone), while a propagating gateway, the control, has already followed.
func TestPropagationDisabled(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			var quietStore, controlStore *Store
			if kind == "redis" {
				// one key space: the pods and the control propagate, the quiet gateway's store not
				stores := sharedStores(t, kind, 2, false)
				controlStore, quietStore = stores[0], stores[1]
			} else {
				// two memory stores share nothing: the same move is made on each
				quietStore = must(NewStore(bg, StoreConfig{DisablePropagation: true}))(t)
				controlStore = MemoryStore()
			}
			pods := map[*Store][]*ServerDriver{}
			for _, st := range []*Store{quietStore, controlStore} {
				if kind == "memory" || st == controlStore {
					pods[st] = []*ServerDriver{startPod(t, st, "np", 0, 0), startPod(t, st, "np", 1, 0)}
				}
			}
			if kind == "redis" {
				pods[quietStore] = pods[controlStore]
			}
			quiet, control := defaultGateway(t, quietStore), defaultGateway(t, controlStore)
			var calls atomic.Int32
			must(quiet.OnLinkChanged(func(LinkChange) { calls.Add(1) }))(t)
			const u = "stayer"
			p := must(quiet.ComputeLinkedPod(bg, ns, u, "np"))(t)
			pc := must(control.ComputeLinkedPod(bg, ns, u, "np"))(t)
			if kind == "redis" && pc != p {
				t.Fatalf("gateways disagree: %d, %d", p, pc)
			}
			if kind == "memory" {
				must(pods[quietStore][1-p].SetLinkedPod(bg, ns, u, "np", 1-p))(t)
			}
			must(pods[controlStore][1-pc].SetLinkedPod(bg, ns, u, "np", 1-pc))(t)
			if took, ok := until(followWithin, answers(control, u, "np", 1-pc)); !ok {
				t.Fatalf("the control gateway did not follow within %v", took)
			}
			if got := must(quiet.GetLinkedInCache(bg, ns, u, "np"))(t); got != p {
				t.Errorf("DisablePropagation gateway's cache: %d, want its old answer %d", got, p)
			}
			if got := must(quiet.ComputeLinkedPod(bg, ns, u, "np"))(t); got != p {
				t.Errorf("DisablePropagation gateway answers %d, want its cached %d", got, p)
			}
			if calls.Load() != 0 {
				t.Errorf("DisablePropagation gateway's listener called %d times", calls.Load())
			}
		})
	}
}

// A listener registered and dropped without removal is released with its driver (its
// cgo.Handle deleted), and a panicking listener does not break the writer or the driver.
func TestLinkListenerLifetime(t *testing.T) {
	s := MemoryStore()
	p0 := startPod(t, s, "lt", 0, 0)
	c := newClient(t, s)
	var after atomic.Int32
	must(c.OnLinkChanged(func(LinkChange) { panic("listener bug") }))(t)
	must(c.OnLinkChanged(func(LinkChange) { after.Add(1) }))(t)
	must(c.ComputeLinkedPod(bg, ns, "u", "lt"))(t)
	if _, err := p0.SetLinkedPod(bg, ns, "u", "lt", 0); err != nil { // temporary -> persistent: an event
		t.Fatal(err)
	}
	if after.Load() != 1 {
		t.Fatalf("the listener after a panicking one ran %d times, want 1", after.Load())
	}
	if got := must(c.GetLinkedPod(bg, ns, "u", "lt"))(t); got != 0 {
		t.Fatalf("after a panicking listener: %d", got)
	}
	before := released.callbacks.Load()
	id := must(c.OnLinkChanged(func(LinkChange) {}))(t)
	if !must(c.RemoveLinkListener(id))(t) {
		t.Fatal("RemoveLinkListener: not registered")
	}
	if _, ok := until(5*time.Second, func() bool { return released.callbacks.Load() > before }); !ok {
		t.Fatal("a removed listener's handle was not released")
	}
}
