package statefulroute

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func asError(err error, target **Error) bool { return errors.As(err, target) }

func isCode(err error, code Code) bool { return errors.Is(err, code) }

func TestErrorCodes(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		c, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, fastConfig())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "u", "room"); !isCode(err, ErrClosed) {
			t.Fatalf("before Init: %v", err)
		}
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		bad := []struct {
			ns, uid, svc string
			code         Code
		}{
			{ns, "a}b", "room", ErrInvalidArgument},
			{ns, "", "room", ErrInvalidArgument},
			{ns, "\xff\xfe", "room", ErrInvalidArgument},
			{ns, "u\x00", "room", ErrInvalidArgument},
			{ns, "u", "a:b", ErrInvalidArgument},
			{"\xc3", "u", "room", ErrInvalidArgument},
			{"Upper", "u", "room", ErrInvalidArgument},
			{"other", "u", "room", ErrNamespaceNotLocal},
			{ns, "u", "empty", ErrNoAvailablePod},
		}
		for _, b := range bad {
			pod, err := c.ComputeLinkedPod(bg, b.ns, b.uid, b.svc)
			var e *Error
			if pod != -1 || !asError(err, &e) || e.Code != b.code || !strings.HasPrefix(e.Error(), b.code.String()+": ") {
				t.Errorf("(%q, %q, %q): want %v, got %d %v", b.ns, b.uid, b.svc, b.code, pod, err)
			}
			var code Code
			if !errors.As(err, &code) || code != b.code {
				t.Errorf("errors.As Code: %v", code)
			}
		}
		if _, err := s.SetLink(bg, ns, "u", "room", -1, -1); !isCode(err, ErrInvalidArgument) {
			t.Errorf("negative pod: %v", err)
		}
		if _, err := s.SetLink(bg, ns, "u", "room", 1, 0); !isCode(err, ErrInvalidArgument) {
			t.Errorf("ttl 0: %v", err)
		}
		if _, err := s.SetLink(bg, "", "u", "room", 1, -1); !isCode(err, ErrInvalidArgument) {
			t.Errorf("store namespace must be named: %v", err)
		}
		if _, ok, _ := s.GetLink(bg, ns, "u", "room"); ok {
			t.Error("a refused call wrote a link")
		}
		if _, err := s.BatchGetLinks(bg, ns, []string{"ok", "\xff"}, "room"); !isCode(err, ErrInvalidArgument) {
			t.Errorf("batch with invalid UTF-8: %v", err)
		}
		if m, err := s.BatchGetLinks(bg, ns, nil, "room"); err != nil || len(m) != 0 {
			t.Errorf("empty batch: %v %v", m, err)
		}

		// POD_UNAVAILABLE carries the pod.
		must(s.SetLink(bg, ns, "stuck", "empty", 7, -1))(t)
		_, err = c.ComputeLinkedPod(bg, ns, "stuck", "empty")
		var e *Error
		if !asError(err, &e) || e.Code != ErrPodUnavailable || e.PodIndex != 7 || !errors.Is(err, ErrPodUnavailable) {
			t.Errorf("pod unavailable: %v", err)
		}

		// INVALID_CONFIG names the field.
		cfg := fastConfig()
		cfg.CpuFactor = 2
		if _, err := NewServerDriver(s, ServerInfo{Namespace: ns, ServiceName: "x"}, cfg); !isCode(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "cpu_factor") {
			t.Errorf("cpu factor: %v", err)
		}
		cfg = fastConfig()
		cfg.Placement = Placement("bogus")
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "x"}, cfg); !isCode(err, ErrInvalidConfig) {
			t.Errorf("placement: %v", err)
		}
		if _, err := NewServerDriver(s, ServerInfo{Namespace: ns, ServiceName: "x", PodIndex: -1}, nil); !isCode(err, ErrInvalidArgument) {
			t.Errorf("negative pod index: %v", err)
		}
		if _, err := NewServerDriver(s, ServerInfo{Namespace: "", ServiceName: "x"}, nil); !isCode(err, ErrInvalidArgument) {
			t.Errorf("unnamed namespace: %v", err)
		}

		// CLOSED: a closed client, a stopped server, a closed store.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "u", "room"); !isCode(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
		if err := c.Init(); !isCode(err, ErrClosed) {
			t.Errorf("Init after Close: %v", err)
		}
		p := startPod(t, s, "lifecycle", 1, 0)
		if err := p.Start(bg); !isCode(err, ErrInvalidArgument) {
			t.Errorf("second Start: %v", err)
		}
		if err := p.SetLoadState(bg, -1); !isCode(err, ErrInvalidArgument) {
			t.Errorf("negative load: %v", err)
		}
		if err := p.SetRoutingState(bg, NotAlive); !isCode(err, ErrInvalidArgument) {
			t.Errorf("NotAlive is not settable: %v", err)
		}
		if err := p.Stop(bg); err != nil {
			t.Fatal(err)
		}
		if err := p.Start(bg); !isCode(err, ErrClosed) {
			t.Errorf("Start after Stop: %v", err)
		}
		if _, err := p.SetLinkedPod(bg, ns, "u", "room", 1); !isCode(err, ErrClosed) {
			t.Errorf("link after Stop: %v", err)
		}
		s.Close()
		if _, err := s.SetLink(bg, ns, "u", "room", 1, -1); !isCode(err, ErrClosed) {
			t.Errorf("closed store: %v", err)
		}
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "x"}, nil); !isCode(err, ErrClosed) {
			t.Errorf("driver on a closed store: %v", err)
		}
	})
}

func TestStoreConnectErrors(t *testing.T) {
	// STORE_UNAVAILABLE: nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := StoreConfig{URL: "redis://" + addr, ConnectTimeout: 300 * time.Millisecond, CommandTimeout: 300 * time.Millisecond}
	if _, err := NewStore(bg, cfg); !isCode(err, ErrStoreUnavailable) {
		t.Errorf("closed port: %v", err)
	}
	// TIMEOUT: something listens and never answers.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.URL = "redis://" + l.Addr().String()
	if _, err := NewStore(bg, cfg); !isCode(err, ErrTimeout) {
		t.Errorf("silent server: %v", err)
	}
	// INVALID_ARGUMENT: not a URL; messages never show the password.
	if _, err := Connect(bg, "nope://x"); !isCode(err, ErrInvalidArgument) {
		t.Errorf("bad url: %v", err)
	}
	cfg.URL = "redis://app:s3cret@" + addr
	if _, err := NewStore(bg, cfg); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("password shown or no error: %v", err)
	}
	// INVALID_CONFIG: a bad key prefix.
	if _, err := NewStore(bg, StoreConfig{KeyPrefix: "a:b"}); !isCode(err, ErrInvalidConfig) {
		t.Errorf("bad prefix: %v", err)
	}
	for c := ErrInvalidArgument; c <= ErrInternal; c++ {
		if strings.HasPrefix(c.String(), "Code(") || c.Error() != c.String() {
			t.Errorf("code %d has no name", int(c))
		}
	}
	if ErrInternal.String() != "INTERNAL" || ErrNoAvailablePod != 4 {
		t.Error("codes follow the C status codes")
	}
}
