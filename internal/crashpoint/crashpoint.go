// Package crashpoint lets the crash tests kill a stanch process with SIGKILL
// at a named moment, such as right after an action's effect and before the
// journal records it. It does nothing unless STANCH_CRASHPOINT names the
// point, so production runs never stop here.
package crashpoint

import (
	"os"
	"syscall"
)

// Env is the environment variable that names the point to crash at.
const Env = "STANCH_CRASHPOINT"

// Hit kills the current process with SIGKILL when name is the configured
// crash point. SIGKILL cannot be caught, so no deferred cleanup runs: the
// same as a power cut or the OOM killer.
func Hit(name string) {
	if want := os.Getenv(Env); want == "" || want != name {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered asynchronously; never run past it
}
