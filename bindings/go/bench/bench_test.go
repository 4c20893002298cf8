package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"github.com/redis/go-redis/v9"

	sr "github.com/stateful-route/stateful-route/bindings/go"
)

const (
	ns  = "default"
	svc = "room"
)

var ctx = context.Background()

// handRouter is the original design: a go-cache in front of go-redis, SETNX with the
// temporary-link TTL for a new user, GET when another gateway won, and a snapshot of the pod
// states (read from the same hash the pods publish) to choose the least loaded pod.
type handRouter struct {
	rdb    *redis.Client
	cache  *gocache.Cache
	prefix string
	pods   []int
}

func newHandRouter(b *testing.B, url, prefix string) *handRouter {
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	r := &handRouter{rdb: redis.NewClient(opt), cache: gocache.New(240*time.Second, time.Minute), prefix: prefix}
	states, err := r.rdb.HGetAll(ctx, fmt.Sprintf("%s:{%s:state:%s}", prefix, ns, svc)).Result()
	if err != nil {
		b.Fatal(err)
	}
	minLoad := -1
	for field, value := range states {
		pod, _ := strconv.Atoi(field)
		parts := strings.SplitN(value, "-", 3)
		load, _ := strconv.Atoi(parts[0])
		if len(parts) == 3 && parts[2] != "READY" {
			continue
		}
		switch {
		case minLoad < 0 || load < minLoad:
			minLoad, r.pods = load, []int{pod}
		case load == minLoad:
			r.pods = append(r.pods, pod)
		}
	}
	if len(r.pods) == 0 {
		b.Fatal("no pods published")
	}
	b.Cleanup(func() { r.rdb.Close() })
	return r
}

func (r *handRouter) computeLinkedPod(uid string) (int, error) {
	key := uid + "|" + svc
	if v, ok := r.cache.Get(key); ok {
		return v.(int), nil
	}
	best := r.pods[rand.IntN(len(r.pods))]
	link := fmt.Sprintf("%s:{%s:lk:%s}%s", r.prefix, ns, uid, svc)
	set, err := r.rdb.SetNX(ctx, link, best, 300*time.Second).Result()
	if err != nil {
		return -1, err
	}
	pod := best
	if !set {
		v, err := r.rdb.Get(ctx, link).Result()
		if err != nil {
			return -1, err
		}
		if pod, err = strconv.Atoi(v); err != nil {
			return -1, err
		}
	}
	r.cache.Set(key, pod, gocache.DefaultExpiration)
	return pod, nil
}

var seq atomic.Int64

// setup publishes three pods on a fresh key prefix and returns a client driver and the
// hand-written router over the same Redis.
func setup(b *testing.B) (*sr.ClientDriver, *handRouter) {
	url := os.Getenv("STATEFUL_ROUTE_TEST_REDIS")
	if url == "" {
		b.Fatal("set STATEFUL_ROUTE_TEST_REDIS (../bench.sh starts a redis-server)")
	}
	prefix := fmt.Sprintf("bench%d-%d", os.Getpid(), seq.Add(1))
	store, err := sr.NewStore(ctx, sr.StoreConfig{URL: url, KeyPrefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	cfg := sr.DefaultBaseConfig()
	cfg.CpuFactor = 0
	for i := range 3 {
		p, err := sr.NewServerDriver(store, sr.ServerInfo{Namespace: ns, ServiceName: svc, PodIndex: i}, &cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
	}
	c, err := sr.NewClientDriver(store, sr.ServerInfo{Namespace: ns, ServiceName: "gateway"}, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Init(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, newHandRouter(b, url, prefix)
}

func run64(b *testing.B, compute func(uid string) (int, error)) {
	var next atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := compute(fmt.Sprintf("new-%d", next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// New users against Redis from 64 goroutines.
func BenchmarkNewUser64(b *testing.B) {
	b.Run("stateful-route", func(b *testing.B) {
		c, _ := setup(b)
		run64(b, func(uid string) (int, error) { return c.ComputeLinkedPod(ctx, ns, uid, svc) })
	})
	b.Run("go-redis+go-cache", func(b *testing.B) {
		_, h := setup(b)
		run64(b, h.computeLinkedPod)
	})
}

// A user already placed: a local cache hit.
func BenchmarkCacheHit(b *testing.B) {
	b.Run("stateful-route", func(b *testing.B) {
		c, _ := setup(b)
		if _, err := c.ComputeLinkedPod(ctx, ns, "user123", svc); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := c.ComputeLinkedPod(ctx, ns, "user123", svc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-redis+go-cache", func(b *testing.B) {
		_, h := setup(b)
		if _, err := h.computeLinkedPod("user123"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := h.computeLinkedPod("user123"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
