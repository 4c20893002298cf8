package statefulroute

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	redisURL string
	prefixes atomic.Int64
)

// TestMain uses the Redis at $STATEFUL_ROUTE_TEST_REDIS, or starts a throwaway redis-server on
// a leased loopback port for the run (its log is printed if the run fails).
func TestMain(m *testing.M) {
	redisURL = os.Getenv("STATEFUL_ROUTE_TEST_REDIS")
	var server *redisServer
	if redisURL == "" {
		dir, err := os.MkdirTemp("", "sr-go-redis")
		if err == nil {
			server, err = launchRedis(dir, false, "--save", "", "--appendonly", "no")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		redisURL = fmt.Sprintf("redis://127.0.0.1:%d", server.Port)
	}
	code := m.Run()
	if server != nil {
		server.Kill()
		if code != 0 {
			fmt.Fprintf(os.Stderr, "--- %s\n", server.logTail(200))
		} else {
			os.RemoveAll(server.Dir)
		}
	}
	os.Exit(code)
}

// Test redis-servers get their ports by the protocol of tests/PORTS.md (tests/redis_launch.py
// is its reference): a port from 12000 up to the ephemeral range is leased by an flock on
// $TMPDIR/stateful-route-ports/<port>.lock plus a probe bind; the lock is held until the test
// binary exits. A server logs to its directory's redis.log, and a start that loses its port
// to another process ("Address already in use") is retried on fresh ports.
const (
	lowPort        = 12000
	startAttempts  = 5
	readyWithin    = 10 * time.Second
	startTailLines = 40
)

var leases struct {
	sync.Mutex
	files []*os.File // the lock files of this process's leases, open until it exits
}

// portRange is [lo, hi): 12000 up to the start of the kernel's ephemeral port range.
func portRange() (lo, hi int) {
	lo, hi = lowPort, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return lo, hi
}

// leasePort leases a loopback port for the rest of the test binary's life.
func leasePort() (int, error) {
	lo, hi := portRange()
	if hi <= lo {
		return 0, fmt.Errorf("the ephemeral port range starts at %d: no room above %d", hi, lo)
	}
	dir := filepath.Join(os.TempDir(), "stateful-route-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	os.Chmod(dir, 0o777) // shared by every user's runs; fails harmlessly on someone else's
	n := hi - lo
	start := rand.IntN(n)
	for i := range n {
		port := lo + (start+i)%n
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", port)), os.O_RDONLY|os.O_CREATE, 0o666)
		if err != nil {
			return 0, err
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil || !portFree(port) {
			f.Close()
			continue
		}
		leases.Lock()
		leases.files = append(leases.files, f)
		leases.Unlock()
		return port, nil
	}
	return 0, fmt.Errorf("no port to lease in %d-%d", lo, hi-1)
}

// portFree: the probe bind of a lease, closed at once.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// redisServer is one redis-server process started by launchRedis.
type redisServer struct {
	Dir, Log    string
	Port        int
	ClusterPort int // its bus port, when it is a cluster node
	cmd         *exec.Cmd
	exited      chan struct{} // closed once the process has exited
}

// Kill kills the server and waits for it to exit.
func (s *redisServer) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// logTail is a heading and the last n lines of the server's log.
func (s *redisServer) logTail(n int) string {
	return fmt.Sprintf("redis-server :%d, last lines of %s:\n%s", s.Port, s.Log, lastLines(readFrom(s.Log, 0), n))
}

// launchRedis starts `redis-server args...` in dir (the first arg may be a config file) on a
// leased port, with --bind 127.0.0.1, --dir dir and --logfile dir/redis.log; a cluster node
// also gets a leased --cluster-port and --cluster-config-file nodes-<port>.conf. It returns
// once the server answers INFO with its own process id, or the error with the log's tail.
// The server gets SIGKILL if the test binary dies (dieWithTest).
func launchRedis(dir string, cluster bool, args ...string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "redis.log")
	var collisions []string
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := leasePort()
		if err != nil {
			return nil, err
		}
		full := append(slices.Clone(args), "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--logfile", log)
		cport := 0
		if cluster {
			if cport, err = leasePort(); err != nil {
				return nil, err
			}
			full = append(full, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(cport),
				"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port))
		}
		offset := int64(0)
		if fi, err := os.Stat(log); err == nil {
			offset = fi.Size()
		}
		s, err := spawnRedis(dir, log, full)
		if err != nil {
			return nil, err
		}
		s.Port, s.ClusterPort = port, cport
		if s.ready() {
			return s, nil
		}
		how := fmt.Sprintf("did not answer within %v", readyWithin)
		select {
		case <-s.exited:
			how = fmt.Sprintf("exited (%v)", s.cmd.ProcessState)
		default:
			s.Kill()
		}
		said := readFrom(log, offset)
		if !strings.Contains(said, "Address already in use") {
			return nil, fmt.Errorf("redis-server %s %s; last lines of %s:\n%s",
				strings.Join(full, " "), how, log, lastLines(said, startTailLines))
		}
		collisions = append(collisions, fmt.Sprintf("attempt %d: ports %d/%d already in use", attempt, port, cport))
	}
	return nil, fmt.Errorf("redis-server did not start in %d attempts (%s); last lines of %s:\n%s",
		startAttempts, strings.Join(collisions, "; "), log, lastLines(readFrom(log, 0), startTailLines))
}

// spawnRedis starts redis-server; what it prints before it opens its log goes to the log too.
func spawnRedis(dir, log string, args []string) (*redisServer, error) {
	out, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command("redis-server", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server is missing (tests/install-deps.sh installs it): %w", err)
	}
	s := &redisServer{Dir: dir, Log: log, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// ready polls (bounded) until the server answers on its port with its own process id, so
// that another server on the port is never taken for it; false if it exits first.
func (s *redisServer) ready() bool {
	deadline := time.Now().Add(readyWithin)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return false
		default:
		}
		if serverPID(s.Port) == s.cmd.Process.Pid {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// serverPID is the process_id the server on port reports (INFO server), or -1.
func serverPID(port int) int {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "INFO server\r\n"); err != nil {
		return -1
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return -1
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return -1
	}
	for _, line := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			if pid, err := strconv.Atoi(v); err == nil {
				return pid
			}
		}
	}
	return -1
}

// readFrom is the file's content from byte offset on ("" if it cannot be read).
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}

// lastLines is the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
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
