package playbooks

import (
	"maps"
	"slices"
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// wildcard stands for whatever only a run knows while a step's parameters
// are evaluated for every run at once; it becomes "*" in the pattern.
const wildcard = "\x00"

// PatternParams evaluates the step's `with:` for every run at once: what
// only a run knows (the alert's fields, the outputs of earlier steps, the
// run itself) is a wildcard, so that
// "${{ vars.secret_prefix + steps.identify.outputs.user_name }}" reads
// "iam-user/*". outputs names the outputs of each earlier step's action.
// Only string parameters are returned; one whose expression cannot be
// evaluated that way (it calls a function on a run-time value, say) is
// left out, as is one that is nothing but a wildcard.
func (s *Step) PatternParams(pb *Playbook, outputs map[string][]string) map[string]string {
	a := alert.Alert{Source: wildcard, Kind: wildcard, DedupKey: wildcard, Severity: wildcard, Title: wildcard,
		Credential: alert.Credential{Provider: wildcard, Kind: wildcard, ID: wildcard, Account: wildcard, Principal: wildcard},
		Location:   alert.Location{Repo: wildcard, Path: wildcard, Commit: wildcard, URL: wildcard}}
	sc := pb.Scope(a, RunInfo{ID: wildcard, Playbook: pb.Name})
	for _, id := range slices.Sorted(maps.Keys(outputs)) {
		out := map[string]any{}
		for _, name := range outputs[id] {
			out[name] = wildcard
		}
		sc.Steps[id] = StepState{Status: wildcard, Outcome: wildcard, Outputs: out}
	}
	params := map[string]string{}
	for name, v := range s.with {
		got, err := v.eval(sc)
		text, ok := got.(string)
		if err != nil || !ok {
			continue
		}
		// Runs of run-time values are one wildcard.
		pattern := strings.ReplaceAll(text, wildcard, "*")
		for strings.Contains(pattern, "**") {
			pattern = strings.ReplaceAll(pattern, "**", "*")
		}
		if pattern != "*" && pattern != "" {
			params[name] = pattern
		}
	}
	return params
}
