package runner

import (
	"sync"

	"github.com/stanchhq/stanch/playbooks"
)

// A run stores the playbook it started with, and every pass of its job,
// every report on it (each Slack sync) and every retry needs it parsed: on
// the hot path, that parse (YAML, then every expression compiled) costs
// about as much as the SQL around it. Parsed playbooks are immutable and
// safe to share, so the runner keeps the ones it parsed, by file and
// source, and all of those paths take them from here.

// maxParsedPlaybooks bounds the cache; a deployment has a handful of
// playbooks, each source kept once.
const maxParsedPlaybooks = 64

type parsedPlaybooks struct {
	mu sync.Mutex
	by map[string]*playbooks.Playbook
}

// playbook returns the run's playbook, parsed once per source.
func (r *Runner) playbook(run Run) (*playbooks.Playbook, error) {
	key := run.PlaybookFile + "\x00" + string(run.PlaybookSource)
	c := &r.parsed
	c.mu.Lock()
	pb, ok := c.by[key]
	c.mu.Unlock()
	if ok {
		return pb, nil
	}
	pb, err := playbooks.Parse(run.PlaybookFile, run.PlaybookSource, r.cfg.Registry)
	if err != nil {
		return nil, err // not kept: the error names what to fix, each time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil || len(c.by) >= maxParsedPlaybooks {
		c.by = map[string]*playbooks.Playbook{}
	}
	c.by[key] = pb
	return pb, nil
}
