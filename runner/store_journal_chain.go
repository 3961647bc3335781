package runner

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
)

// entryHash returns the hash that chains a journal entry to the one before
// it: hex SHA-256 over each field, length-prefixed so that no two entries
// encode alike. at is the entry's time as stored (microseconds).
func entryHash(runID string, seq int, at int64, stepID string, attempt int, event, detail, prevHash string) string {
	h := sha256.New()
	for _, f := range [...]string{"stanch-journal-v1", runID, strconv.Itoa(seq), strconv.FormatInt(at, 10), stepID, strconv.Itoa(attempt), event, detail, prevHash} {
		writeField(h, f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(h hash.Hash, f string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
	h.Write([]byte(f))
}

// errJournalRace is returned when another transaction appended the entry
// this one meant to append, twice in a row.
var errJournalRace = errors.New("another writer appended to the journal at the same time")

// chainedAppend appends an entry after the run's last one: last reads the
// last entry's seq and hash, insert writes the entry unless that seq is
// taken (and says whether it wrote). The (run_id, seq) primary key refuses
// a concurrent append of the same seq; the append is then tried once more
// after the entry that won.
func chainedAppend(last func() (int, string, error), insert func(seq int, prev, hash string) (bool, error), entry func(seq int, prev string) string) error {
	for range 2 {
		seq, prev, err := last()
		if err != nil {
			return err
		}
		ok, err := insert(seq+1, prev, entry(seq+1, prev))
		if err != nil || ok {
			return err
		}
	}
	return errJournalRace
}

const (
	lastEntrySQL   = `SELECT seq, hash FROM stanch_journal WHERE run_id = ? ORDER BY seq DESC LIMIT 1`
	insertEntrySQL = `INSERT INTO stanch_journal (run_id, seq, at, step_id, attempt, event, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO NOTHING`
)

// chainJournals chains the entries that a store older than the hashes
// holds, once, when the migration that adds them runs; each is marked as
// chained at migration, since the chain only shows changes made after it.
func chainJournals(ctx context.Context, tx *sql.Tx, rebind func(string) string) error {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT run_id FROM stanch_journal WHERE hash = ''`)
	if err != nil {
		return fmt.Errorf("chain journals: %w", err)
	}
	var runs []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("chain journals: %w", err)
		}
		runs = append(runs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chain journals: %w", err)
	}
	for _, id := range runs {
		entries, err := journalRows(ctx, tx, rebind, id)
		if err != nil {
			return err
		}
		prev := ""
		for _, e := range entries {
			h := entryHash(id, e.Seq, e.at, e.StepID, e.Attempt, e.Event, e.Detail, prev)
			if _, err := tx.ExecContext(ctx, rebind(`UPDATE stanch_journal SET prev_hash = ?, hash = ?, chained_at_migration = 1 WHERE run_id = ? AND seq = ?`),
				prev, h, id, e.Seq); err != nil {
				return fmt.Errorf("chain journal of run %s: %w", id, err)
			}
			prev = h
		}
	}
	return nil
}

// chainedEntry is a journal row with what chains it.
type chainedEntry struct {
	Entry
	at          int64
	prevHash    string
	hash        string
	atMigration bool
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func journalRows(ctx context.Context, q queryer, rebind func(string) string, runID string) ([]chainedEntry, error) {
	rows, err := q.QueryContext(ctx, rebind(`SELECT seq, at, step_id, attempt, event, detail, prev_hash, hash, chained_at_migration
		FROM stanch_journal WHERE run_id = ? ORDER BY seq`), runID)
	if err != nil {
		return nil, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []chainedEntry
	for rows.Next() {
		var e chainedEntry
		var mig int
		if err := rows.Scan(&e.Seq, &e.at, &e.StepID, &e.Attempt, &e.Event, &e.Detail, &e.prevHash, &e.hash, &mig); err != nil {
			return nil, fmt.Errorf("journal of run %s: %w", runID, err)
		}
		e.At = fromMicros(e.at)
		e.atMigration = mig != 0
		out = append(out, e)
	}
	return out, rows.Err()
}

// ChainBreak is one place where a run's journal no longer holds together.
type ChainBreak struct {
	Seq     int    `json:"seq"`
	Problem string `json:"problem"` // edited, deleted, reordered, inserted
	Detail  string `json:"detail"`
}

// ChainCheck is what verifying one run's journal found.
type ChainCheck struct {
	RunID   string `json:"run_id"`
	Entries int    `json:"entries"`
	// ChainedAtMigration counts the entries written before the store had
	// hashes and chained when it was migrated: the chain shows changes to
	// them made after the migration, not before.
	ChainedAtMigration int          `json:"chained_at_migration"`
	FinalHash          string       `json:"final_hash"`
	Breaks             []ChainBreak `json:"breaks"`
}

// OK says whether the chain holds.
func (c ChainCheck) OK() bool { return len(c.Breaks) == 0 }

// VerifyJournal recomputes a run's journal chain and names each place it
// breaks. An entry removed from the end cannot be told from one never
// written: compare FinalHash with a copy kept elsewhere.
func (s *Store) VerifyJournal(ctx context.Context, runID string) (ChainCheck, error) {
	entries, err := journalRows(ctx, s.db.SQL, s.db.rebind, runID)
	if err != nil {
		return ChainCheck{}, err
	}
	return s.verify(ctx, runID, entries)
}

// verify checks the chain of entries and the calls its calls_recorded
// entries anchor.
func (s *Store) verify(ctx context.Context, runID string, entries []chainedEntry) (ChainCheck, error) {
	c := verifyChain(runID, entries)
	calls, err := s.Calls(ctx, runID)
	if err != nil {
		return ChainCheck{}, err
	}
	c.Breaks = append(c.Breaks, verifyCalls(entries, calls)...)
	return c, nil
}

// JournalRunIDs returns the id of every run that has a journal.
func (s *Store) JournalRunIDs(ctx context.Context) ([]string, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT DISTINCT run_id FROM stanch_journal ORDER BY run_id`)
	if err != nil {
		return nil, fmt.Errorf("runs with a journal: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("runs with a journal: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func verifyChain(runID string, entries []chainedEntry) ChainCheck {
	c := ChainCheck{RunID: runID, Entries: len(entries), Breaks: []ChainBreak{}}
	if len(entries) > 0 {
		c.FinalHash = entries[len(entries)-1].hash
	}
	// Where each hash is, to tell a moved or inserted entry from an edited one.
	seqOf := make(map[string]int, len(entries))
	maxSeq := 0
	for _, e := range entries {
		maxSeq = max(maxSeq, e.Seq)
		if e.hash != "" {
			seqOf[e.hash] = e.Seq
		}
	}
	prevSeq, prevHash, prevShift, prevBroken := 0, "", 0, false
	for _, e := range entries {
		if e.atMigration {
			c.ChainedAtMigration++
		}
		own := entryHash(runID, e.Seq, e.at, e.StepID, e.Attempt, e.Event, e.Detail, e.prevHash) == e.hash
		linked := e.prevHash == prevHash
		// An entry whose content holds but whose seq changed was moved:
		// the entry it followed when written says where it was.
		was, moved := 0, false
		if !own && e.hash != "" {
			if at, ok := seqOf[e.prevHash]; ok {
				was = at + 1
			} else if e.prevHash == "" {
				was = 1
			}
			moved = was != 0 && entryHash(runID, was, e.at, e.StepID, e.Attempt, e.Event, e.Detail, e.prevHash) == e.hash
			// The entry it followed may have moved too: try every place.
			for try := 1; !moved && try <= maxSeq+len(entries); try++ {
				was = try
				moved = entryHash(runID, was, e.at, e.StepID, e.Attempt, e.Event, e.Detail, e.prevHash) == e.hash
			}
		}
		shift := 0
		if moved {
			shift = e.Seq - was
		}
		after, known := seqOf[e.prevHash]
		var b *ChainBreak
		switch {
		case !own && !moved:
			b = brokenEntry(e, known)
		case linked && shift == prevShift:
			// holds (or goes on being renumbered by a break already named)
		case moved && !linked && !prevBroken && shift > 0 && known && after < prevSeq:
			b = &ChainBreak{Seq: after + 1, Problem: "inserted", Detail: fmt.Sprintf("%s not in the chain: entry %d (written as entry %d) follows entry %d", isRange(after+1, prevSeq), e.Seq, was, after)}
		case moved:
			b = &ChainBreak{Seq: e.Seq, Problem: "reordered", Detail: fmt.Sprintf("entry %d (%s) was written as entry %d", e.Seq, e.Event, was)}
		case !linked && prevBroken:
			// follows an entry already named
		case !linked && known && after < prevSeq:
			b = &ChainBreak{Seq: after + 1, Problem: "inserted", Detail: fmt.Sprintf("%s not in the chain: entry %d follows entry %d", isRange(after+1, prevSeq), e.Seq, after)}
		case !linked && e.Seq != prevSeq+1:
			b = &ChainBreak{Seq: prevSeq + 1, Problem: "deleted", Detail: fmt.Sprintf("%s missing: entry %d follows entry %d", seqRange(prevSeq+1, e.Seq-1), e.Seq, prevSeq)}
		case !linked:
			b = &ChainBreak{Seq: e.Seq, Problem: "deleted", Detail: fmt.Sprintf("entry %d follows an entry that is no longer in the journal", e.Seq)}
		}
		if b != nil {
			c.Breaks = append(c.Breaks, *b)
		}
		prevSeq, prevHash, prevShift, prevBroken = e.Seq, e.hash, shift, b != nil
	}
	return c
}

// brokenEntry says what happened to an entry whose content no longer
// matches its hash; known says whether the entry it followed when written
// is still in the journal.
func brokenEntry(e chainedEntry, known bool) *ChainBreak {
	switch {
	case e.hash == "":
		return &ChainBreak{Seq: e.Seq, Problem: "inserted", Detail: fmt.Sprintf("entry %d has no hash: stanch did not write it", e.Seq)}
	case !known && e.prevHash != "":
		return &ChainBreak{Seq: e.Seq, Problem: "inserted", Detail: fmt.Sprintf("entry %d does not match its hash and follows no entry of this run: forged, or renumbered after a deletion", e.Seq)}
	}
	return &ChainBreak{Seq: e.Seq, Problem: "edited", Detail: fmt.Sprintf("entry %d (%s) does not match its hash: its time, step, attempt, event or detail changed", e.Seq, e.Event)}
}

func isRange(from, to int) string {
	if from >= to {
		return fmt.Sprintf("entry %d is", from)
	}
	return fmt.Sprintf("entries %d–%d are", from, to)
}

func seqRange(from, to int) string {
	if from >= to {
		return fmt.Sprintf("entry %d", from)
	}
	return fmt.Sprintf("entries %d–%d", from, to)
}

// HashedEntry is a journal entry with the hashes that chain it.
type HashedEntry struct {
	Entry
	PrevHash string
	Hash     string
	// ChainedAtMigration is set on an entry written before the store had
	// hashes and chained when it was migrated.
	ChainedAtMigration bool
}

// HashedJournal returns a run's journal in order with each entry's hashes,
// and what verifying the chain found (its final hash among it), from one
// read of the journal.
func (s *Store) HashedJournal(ctx context.Context, runID string) ([]HashedEntry, ChainCheck, error) {
	entries, err := journalRows(ctx, s.db.SQL, s.db.rebind, runID)
	if err != nil {
		return nil, ChainCheck{}, err
	}
	out := make([]HashedEntry, len(entries))
	for i, e := range entries {
		out[i] = HashedEntry{Entry: e.Entry, PrevHash: e.prevHash, Hash: e.hash, ChainedAtMigration: e.atMigration}
	}
	c, err := s.verify(ctx, runID, entries)
	return out, c, err
}

// lastEntry returns the number and hash of a run's last journal entry.
func (s *Store) lastEntry(ctx context.Context, runID string) (int, string, error) {
	var seq int
	var hash string
	err := s.db.SQL.QueryRowContext(ctx, s.db.rebind(lastEntrySQL), runID).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("last journal entry of run %s: %w", runID, err)
	}
	return seq, hash, nil
}
