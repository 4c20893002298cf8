//go:build !linux

package statefulroute

import "os/exec"

// dieWithTest: only Linux has a parent-death signal; elsewhere the cleanups kill the servers.
func dieWithTest(*exec.Cmd) {}
