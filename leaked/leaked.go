// Package leaked keeps the values of leaked tokens that this process has
// seen, in memory only, by their fingerprint (alert.Fingerprint). Revoking
// a GitHub, Slack, GitLab, npm or Vault token takes the token itself, and
// stanch stores no secret: the value lives here from the moment a trigger
// or a scanner report hands it in until the run that revokes it no longer
// needs it, and dies with the process. An action that needs a value this
// process never saw asks the place that still holds it (GitHub's
// secret-scanning alert), or says that only a person can revoke it.
package leaked

import (
	"sync"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// keep is how long a value is kept without being used: long enough for a
// run to reach its revocation after an approval, short enough that a
// process does not collect secrets for days.
const keep = 24 * time.Hour

// Values are the leaked values a process holds. The zero value is ready.
type Values struct {
	mu     sync.Mutex
	values map[string]entry
	now    func() time.Time
}

type entry struct {
	value string
	until time.Time
}

// Process is this process's values: the triggers and scanners remember
// into it, the actions look up in it.
var Process = &Values{}

// Remember keeps value and returns its fingerprint, the credential id an
// alert carries for it.
func (v *Values) Remember(value string) string {
	fp := alert.Fingerprint(value)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.values == nil {
		v.values = map[string]entry{}
	}
	v.sweep()
	v.values[fp] = entry{value: value, until: v.clock().Add(keep)}
	return fp
}

// Lookup returns the value whose fingerprint is fp, if this process holds
// it.
func (v *Values) Lookup(fp string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.values[fp]
	if !ok || v.clock().After(e.until) {
		return "", false
	}
	return e.value, true
}

// Forget drops the value whose fingerprint is fp (its token is revoked).
func (v *Values) Forget(fp string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.values, fp)
}

func (v *Values) clock() time.Time {
	if v.now != nil {
		return v.now()
	}
	return time.Now()
}

// sweep drops expired values; the caller holds mu.
func (v *Values) sweep() {
	now := v.clock()
	for fp, e := range v.values {
		if now.After(e.until) {
			delete(v.values, fp)
		}
	}
}
