package statefulroute

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// tests/vectors/surface.json: the core's public surface in one neutral (snake_case) spelling.
type surface struct {
	Config map[string][]struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Default any    `json:"default"`
		CGo     string `json:"c_go"`
	} `json:"config"`
	Types         map[string][]string            `json:"types"`
	RoutingStates []string                       `json:"routing_states"`
	ErrorCodes    []string                       `json:"error_codes"`
	Placements    []string                       `json:"placements"`
	Methods       map[string]map[string][]string `json:"methods"`
}

func readSurface(t *testing.T) surface {
	t.Helper()
	var s surface
	if err := json.Unmarshal(must(os.ReadFile("../../tests/vectors/surface.json"))(t), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// pascal is a snake_case name in Go's spelling, compared case-insensitively so that Go's
// initialisms match (uid -> UID, tls_ca_cert_pem -> TLSCACertPEM, ttl -> TTL).
func pascal(name string) string { return strings.ReplaceAll(name, "_", "") }

// camel is a snake_case parameter name in Go's spelling (load_factor -> loadFactor).
func camel(name string) string {
	parts := strings.Split(name, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// goField is the exported field of t that spells the surface field name: the same words, or,
// for a time.Duration, the words without the unit (ttl_seconds -> TTL, age_ms -> Age).
func goField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		want := name
		if f.Type == reflect.TypeFor[time.Duration]() {
			want = strings.TrimSuffix(strings.TrimSuffix(name, "_seconds"), "_ms")
		}
		if f.IsExported() && strings.EqualFold(f.Name, pascal(want)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var surfaceTypes = map[string]reflect.Type{
	"BaseConfig":         reflect.TypeFor[BaseConfig](),
	"StoreConfig":        reflect.TypeFor[StoreConfig](),
	"ServerInfo":         reflect.TypeFor[ServerInfo](),
	"PodState":           reflect.TypeFor[PodState](),
	"Link":               reflect.TypeFor[Link](),
	"TrySetOutcome":      reflect.TypeFor[TrySetOutcome](),
	"RoutingStateChange": reflect.TypeFor[RoutingStateChange](),
	"LinkChange":         reflect.TypeFor[LinkChange](),
	"Candidate":          reflect.TypeFor[Candidate](),
	"PlacementRequest":   reflect.TypeFor[PlacementRequest](),
	"LoadInput":          reflect.TypeFor[LoadInput](),
	"Sample":             reflect.TypeFor[Sample](),
	"Explanation":        reflect.TypeFor[Explanation](),
	"ExplainedLink":      reflect.TypeFor[ExplainedLink](),
	"ExplainedPod":       reflect.TypeFor[ExplainedPod](),
}

// snapshotOnly are the parts of the structured metrics snapshot: Go (as C) returns the flat
// list of Sample instead (Metrics), as surface.json's "about" says.
var snapshotOnly = []string{"MetricsSnapshot", "ServiceMetrics", "PodMetrics", "StoreCallMetrics", "PropagationMetrics"}

// goOnlyFields are Go fields the surface does not list: StoreConfig's topology (the core has
// one constructor per topology).
var goOnlyFields = map[string][]string{"StoreConfig": {"URL", "ClusterURLs", "SentinelURLs", "SentinelMasterName"}}

// cGoName is a config field's name in C's and Go's spelling: the first word of its c_go key
// when it has one (propagation -> disable_propagation: a bool so renamed is the negation, so
// that Go's zero value keeps the default), else its name.
func cGoName(name, cGo string) string {
	if cGo == "" {
		return name
	}
	return strings.Fields(cGo)[0]
}

func TestSurfaceTypes(t *testing.T) {
	s := readSurface(t)
	fields := map[string][]string{}
	for name, fs := range s.Config {
		for _, f := range fs {
			n := cGoName(f.Name, f.CGo)
			fields[name] = append(fields[name], n)
			if n == f.Name {
				continue
			}
			// A renamed bool must be the negation whose zero value (false) is the default.
			gf, ok := goField(surfaceTypes[name], n)
			if want, isBool := f.Default.(bool); ok && f.Type == "bool" && (!isBool || gf.Type.Kind() != reflect.Bool || !want) {
				t.Errorf("%s.%s (%s): a bool whose zero value false means %s = %v", name, gf.Name, f.Name, f.Name, f.Default)
			}
		}
	}
	for name, fs := range s.Types {
		if slices.Contains(snapshotOnly, name) {
			continue
		}
		fields[name] = fs
	}
	for name, want := range fields {
		typ, ok := surfaceTypes[name]
		if !ok {
			t.Errorf("no Go type for %s", name)
			continue
		}
		seen := map[string]bool{}
		for _, f := range want {
			gf, ok := goField(typ, f)
			if !ok {
				t.Errorf("%s.%s: no field %s", name, f, pascal(f))
			}
			seen[gf.Name] = true
		}
		for i := 0; i < typ.NumField(); i++ {
			if f := typ.Field(i); f.IsExported() && !seen[f.Name] && !slices.Contains(goOnlyFields[name], f.Name) {
				t.Errorf("%s.%s is not in surface.json", name, f.Name)
			}
		}
	}
}

func TestSurfaceDefaults(t *testing.T) {
	d := reflect.ValueOf(DefaultBaseConfig())
	for _, f := range readSurface(t).Config["BaseConfig"] {
		name := cGoName(f.Name, f.CGo)
		gf, ok := goField(d.Type(), name)
		if !ok {
			t.Errorf("BaseConfig.%s: no field %s", f.Name, pascal(name))
			continue
		}
		v := d.FieldByIndex(gf.Index)
		var got any
		switch v.Kind() {
		case reflect.Bool:
			got = v.Bool()
		case reflect.Float64:
			got = v.Float()
		case reflect.Int64:
			got = float64(v.Int())
		case reflect.Interface:
			got = v.Interface()
		}
		want := f.Default
		if want == nil { // null is 0 in Go (zero_means)
			want = 0.0
		}
		if f.Type == "string" {
			want = Placement(want.(string))
		}
		if b, isBool := want.(bool); isBool && name != f.Name {
			want = !b // a renamed bool is the negation (disable_metrics for metrics)
		}
		if got != want {
			t.Errorf("DefaultBaseConfig().%s = %v (%T), surface.json %v", gf.Name, got, got, want)
		}
	}
}

func TestSurfaceCodesStatesPlacements(t *testing.T) {
	s := readSurface(t)
	var codes []string
	for c := Code(-1); c <= Code(len(s.ErrorCodes)+2); c++ {
		if c.valid() {
			codes = append(codes, c.String())
		}
	}
	if !slices.Equal(codes, s.ErrorCodes) {
		t.Errorf("codes %v, surface.json %v", codes, s.ErrorCodes)
	}
	for i, name := range s.ErrorCodes {
		if c := Code(i + 1); c.String() != name || c.Error() != name {
			t.Errorf("Code(%d) = %s, want %s", i+1, c, name)
		}
	}
	for i, name := range s.RoutingStates {
		if r := RoutingState(i); r.String() != name {
			t.Errorf("RoutingState(%d) = %s, want %s", i, r, name)
		}
	}
	exported := []Placement{PlacementP2C, PlacementRandom, PlacementRoundRobin, PlacementRendezvous, PlacementWeighted}
	if !slices.Equal(exported, []Placement{"p2c", "random", "round_robin", "rendezvous", "weighted"}) ||
		len(s.Placements) != len(exported) {
		t.Errorf("Placement constants %v, surface.json %v", exported, s.Placements)
	}
	store := MemoryStore()
	c := newClient(t, store)
	for _, name := range s.Placements {
		cfg := fastConfig()
		cfg.Placement = Placement(name)
		if _, err := NewClientDriver(store, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); err != nil {
			t.Errorf("config placement %q: %v", name, err)
		}
		if err := c.SetServicePlacement("room", Placement(name)); err != nil {
			t.Errorf("SetServicePlacement(%q): %v", name, err)
		}
	}
}

// Where Go's shape differs from surface.json on purpose: what surface.json lists, and what Go
// takes. Used only while the file still lists the first.
var surfaceErrata = map[string][2][]string{
	// Go's PlacementSetting carries rendezvous's load factor (Rendezvous{LoadFactor}).
	"ClientDriver.set_service_placement": {{"service", "placement", "load_factor"}, {"service", "placement"}},
}

// goParams is the parameter names of every method of the package's sources, by
// "Type.Method", and of every function, by its name, without a leading ctx.
func goParams(t *testing.T) map[string][]string {
	fset := token.NewFileSet()
	out := map[string][]string{}
	for _, file := range must(os.ReadDir("."))(t) {
		name := file.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f := must(parser.ParseFile(fset, name, nil, parser.SkipObjectResolution))(t)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			key := fn.Name.Name
			if fn.Recv != nil {
				recv := fn.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				key = recv.(*ast.Ident).Name + "." + key
			}
			var names []string
			for _, p := range fn.Type.Params.List {
				for _, n := range p.Names {
					names = append(names, n.Name)
				}
			}
			if len(names) > 0 && names[0] == "ctx" {
				names = names[1:]
			}
			out[key] = names
		}
	}
	return out
}

func TestSurfaceMethods(t *testing.T) {
	s := readSurface(t)
	params := goParams(t)
	types := map[string]reflect.Type{
		"Store":        reflect.TypeFor[*Store](),
		"ClientDriver": reflect.TypeFor[*ClientDriver](),
		"ServerDriver": reflect.TypeFor[*ServerDriver](),
	}
	for cls, methods := range s.Methods {
		for method, want := range methods {
			goName := pascal(method)
			if types[cls] == nil {
				// A static method is a function named after its type: ServerInfo.from_env is
				// ServerInfoFromEnv.
				fn := ""
				for name := range params {
					if !strings.Contains(name, ".") && strings.EqualFold(name, cls+goName) {
						fn = name
					}
				}
				camelWant := make([]string, len(want))
				for i, p := range want {
					camelWant[i] = camel(p)
				}
				if fn == "" {
					t.Errorf("%s.%s: no func %s%s", cls, method, cls, goName)
				} else if got := params[fn]; !slices.Equal(got, camelWant) {
					t.Errorf("%s takes %v, surface.json %v", fn, got, camelWant)
				}
				continue
			}
			m, ok := reflect.Method{}, false
			for i := 0; i < types[cls].NumMethod() && !ok; i++ {
				if m = types[cls].Method(i); strings.EqualFold(m.Name, goName) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s.%s: no method (*%s).%s", cls, method, cls, goName)
				continue
			}
			if e, ok := surfaceErrata[cls+"."+method]; ok && slices.Equal(e[0], want) {
				want = e[1]
			}
			camelWant := make([]string, len(want))
			for i, p := range want {
				camelWant[i] = camel(p)
			}
			if got := params[cls+"."+m.Name]; !slices.Equal(got, camelWant) {
				t.Errorf("(*%s).%s takes %v, surface.json %v", cls, m.Name, got, camelWant)
			}
		}
	}
	// One spelling of each parameter everywhere: service and namespace, not serviceName or ns.
	for fn, names := range params {
		for _, n := range names {
			if slices.Contains([]string{"serviceName", "serviceNames", "svc", "ns", "ttlSeconds", "delaySeconds"}, n) {
				t.Errorf("%s: parameter %s (spell it as surface.json does)", fn, n)
			}
		}
	}
}
