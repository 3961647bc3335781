package triggers

import "sync"

// replayMemory remembers the most recent delivery ids, so a replayed
// delivery is recognised even before the store would deduplicate it. It
// forgets the oldest ids first; the store's deduplication stays the
// guarantee.
type replayMemory struct {
	mu    sync.Mutex
	limit int
	ids   map[string]struct{}
	order []string
}

func newReplayMemory(limit int) *replayMemory {
	return &replayMemory{limit: limit, ids: map[string]struct{}{}}
}

// seen records id and reports whether it was already there.
func (m *replayMemory) seen(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[id]; ok {
		return true
	}
	m.ids[id] = struct{}{}
	m.order = append(m.order, id)
	if len(m.order) > m.limit {
		delete(m.ids, m.order[0])
		m.order = m.order[1:]
	}
	return false
}

func (m *replayMemory) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ids, id)
}
