package statefulroute_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeGoBlocks runs each runnable ```go block of README.md (a `package main` on the memory
// store) as a program and compares what it prints with the ```text block the README shows after
// it. tests/readme_blocks.py extracts the blocks; each is built in a temporary module whose
// go.mod replaces this package by this directory, so it links exactly as this package does
// (cgo.go's flags, CGO_LDFLAGS from the environment).
func TestReadmeGoBlocks(t *testing.T) {
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(here, "..", "..")
	blocks := t.TempDir()
	out, err := exec.Command("python3", filepath.Join(root, "tests", "readme_blocks.py"), "go", blocks).Output()
	if err != nil {
		t.Fatalf("tests/readme_blocks.py go: %v\n%s", err, readmeStderr(err))
	}
	files := strings.Fields(string(out))
	if len(files) == 0 {
		t.Fatal("README.md has no runnable ```go block")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".go")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".go") + ".expected")
			if err != nil {
				t.Fatal(err)
			}
			mod := t.TempDir()
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			const pkg = "github.com/stateful-route/stateful-route/bindings/go"
			gomod := "module readme\n\ngo 1.24\n\nrequire " + pkg + " v0.0.0\n\nreplace " + pkg + " => " + here + "\n"
			if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mod, "main.go"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(mod, name)
			build := exec.Command("go", "build", "-o", bin, ".")
			build.Dir = mod
			// Not GOGC=1 (test.sh's second pass): it would make the compiler crawl. GOFLAGS
			// of the test run (-race needs its own build of everything) do not apply either.
			build.Env = append(readmeEnvWithout(os.Environ(), "GOGC", "GOFLAGS", "GOWORK"), "CGO_ENABLED=1", "GOWORK=off")
			if msg, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build of README block %s: %v\n%s", name, err, msg)
			}
			run := exec.Command(bin)
			run.Dir = mod
			var stdout, stderr bytes.Buffer
			run.Stdout, run.Stderr = &stdout, &stderr
			if err := run.Run(); err != nil {
				t.Fatalf("README block %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.String(), stderr.String())
			}
			if got := stdout.String(); got != string(want) {
				t.Fatalf("README block %s printed\n%q\nthe README says\n%q", name, got, want)
			}
		})
	}
}

func readmeEnvWithout(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func readmeStderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
