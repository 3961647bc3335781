package runner

import (
	"sync"
	"time"
)

// A step's duration (Event.Duration of its end) counts every attempt this
// process made, and the waits between them. The attempts of one step may
// now span several passes over the run (the job sleeps between them), so
// when the first one began is kept here rather than in a pass's memory.

// attemptClock remembers, per run, when this process began the first
// attempt of the step the run is in: a run is in one step at a time.
type attemptClock struct {
	mu    sync.Mutex
	began map[string]stepBegan // by run id
}

type stepBegan struct {
	step       string
	generation int
	at         time.Time
}

// start notes that an attempt of step began at now, unless an earlier one
// of the same step (and generation of the run) did.
func (c *attemptClock) start(run Run, step string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.began[run.ID]; ok && b.step == step && b.generation == run.Generation {
		return
	}
	if c.began == nil {
		c.began = map[string]stepBegan{}
	}
	c.began[run.ID] = stepBegan{step: step, generation: run.Generation, at: now}
}

// stop returns how long ago the first attempt of step began (0 when none
// did in this process) and forgets it.
func (c *attemptClock) stop(run Run, step string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.began[run.ID]
	delete(c.began, run.ID)
	if !ok || b.step != step || b.generation != run.Generation {
		return 0
	}
	return time.Since(b.at)
}

// forget drops what is known of a run's step: it ended, or the pass
// stopped for another reason than a retry.
func (c *attemptClock) forget(runID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.began, runID)
}
