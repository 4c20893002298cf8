package statefulroute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The shared link-operation vectors (tests/vectors/links.json), run against the Store API
// of both stores, interpreted as core/tests/behaviour.rs does. topology_test.go runs them on
// a Redis Cluster too.
func TestVectors(t *testing.T) {
	bothStores(t, runVectors)
}

// runVectors runs every vector step against s (a store with a key prefix of its own).
func runVectors(t *testing.T, s *Store) {
	raw, err := os.ReadFile("../../tests/vectors/links.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Namespace string `json:"namespace"`
		Cases     []struct {
			Name  string           `json:"name"`
			Steps []map[string]any `json:"steps"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, c := range doc.Cases {
		for i, step := range c.Steps {
			at := fmt.Sprintf("%s / step %d (%v)", c.Name, i, step["op"])
			runStep(t, s, doc.Namespace, step, at)
			steps++
		}
	}
	// Every step of the file ran: as many as its "op" keys, which is 83 in 11 cases today
	// (update these when vectors are added).
	if want := strings.Count(string(raw), `"op":`); steps != want {
		t.Fatalf("%d vector steps ran, the file has %d", steps, want)
	}
	if len(doc.Cases) != 11 || steps != 83 {
		t.Fatalf("%d cases, %d steps: tests/vectors/links.json has 11 cases, 83 steps", len(doc.Cases), steps)
	}
}

func runStep(t *testing.T, s *Store, defaultNs string, step map[string]any, at string) {
	ctx := context.Background()
	namespace := defaultNs
	if v, ok := step["namespace"].(string); ok {
		namespace = v
	}
	str := func(k string) string { v, _ := step[k].(string); return v }
	num := func(k string) int { v, _ := step[k].(float64); return int(v) }
	uid, svc := str("uid"), str("service")
	none := func(p int) any {
		if p < 0 {
			return nil
		}
		return p
	}
	linkJSON := func(l Link, ok bool) map[string]any {
		if !ok {
			return map[string]any{"pod": nil}
		}
		var ttl any
		if !l.Persistent {
			ttl = l.TTL.Seconds()
		}
		return map[string]any{"pod": l.PodIndex, "persistent": l.Persistent, "ttl": ttl}
	}
	var got map[string]any
	var err error
	switch op := step["op"].(string); op {
	case "set_link":
		var prev int
		prev, err = s.SetLink(ctx, namespace, uid, svc, num("pod"), num("ttl"))
		got = map[string]any{"previous": none(prev)}
	case "set_link_if_absent":
		var l Link
		l, err = s.SetLinkIfAbsent(ctx, namespace, uid, svc, num("pod"), num("ttl"))
		got = linkJSON(l, true)
	case "try_set_link":
		var o TrySetOutcome
		o, err = s.TrySetLink(ctx, namespace, uid, svc, num("pod"), num("ttl"))
		got = map[string]any{"accepted": o.Accepted, "owner": o.Owner, "previous": none(o.Previous)}
	case "remove_link":
		var r bool
		r, err = s.RemoveLink(ctx, namespace, uid, svc, num("delay"))
		got = map[string]any{"removed": r}
	case "remove_link_if":
		var r bool
		r, err = s.RemoveLinkIf(ctx, namespace, uid, svc, num("pod"), num("delay"))
		got = map[string]any{"removed": r}
	case "get_link":
		var l Link
		var ok bool
		l, ok, err = s.GetLink(ctx, namespace, uid, svc)
		got = linkJSON(l, ok)
	case "get_link_if_persist":
		var p int
		p, err = s.GetLinkIfPersist(ctx, namespace, uid, svc)
		got = map[string]any{"pod": none(p)}
	case "get_link_services":
		var m map[string]int
		m, err = s.GetLinkServices(ctx, namespace, uid)
		got = map[string]any{"services": m}
	case "batch_get_links":
		var uids []string
		for _, u := range step["uids"].([]any) {
			uids = append(uids, u.(string))
		}
		var m map[int][]string
		m, err = s.BatchGetLinks(ctx, namespace, uids, svc)
		pods := map[string][]string{}
		for p, us := range m {
			pods[strconv.Itoa(p)] = us
		}
		got = map[string]any{"pods": pods}
	default:
		t.Fatalf("%s: unknown op %s", at, op)
	}
	expect := step["expect"].(map[string]any)
	if code, ok := expect["error"]; ok {
		var e *Error
		if !errors.As(err, &e) || e.Code.String() != code {
			t.Errorf("%s: expected %v, got %v (%v)", at, code, err, got)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected error %v", at, err)
		return
	}
	got = normalise(got)
	for k, want := range expect {
		switch k {
		case "ttl_min", "ttl_max":
			ttl, ok := got["ttl"].(float64)
			if !ok || (k == "ttl_min" && ttl < want.(float64)) || (k == "ttl_max" && ttl > want.(float64)) {
				t.Errorf("%s: ttl %v breaks %s %v", at, got["ttl"], k, want)
			}
		default:
			if !reflect.DeepEqual(got[k], want) {
				t.Errorf("%s: field %s: got %#v, want %#v", at, k, got[k], want)
			}
		}
	}
}

// normalise makes got comparable with decoded JSON (numbers as float64, maps as map[string]any).
func normalise(v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
