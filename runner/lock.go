package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrBusy is returned when another stanch process already runs the workers
// of an embedded SQLite store; the error is a *BusyError, which says which.
var ErrBusy = errors.New("database in use by another stanch process")

// BusyError says which process works an embedded SQLite store, so that
// every command that meets it can name it.
type BusyError struct {
	// PID is the holder's process id as it wrote it in Lock ("unknown"
	// when it wrote none).
	PID  string
	Lock string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v (pid %s holds %s); stop it, use another --database, or use PostgreSQL for several processes", ErrBusy, e.PID, e.Lock)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// processLock is an exclusive advisory lock beside a SQLite database. The
// embedded store is for one process; holding the lock is also what lets a
// starting process treat jobs left "running" as orphans of a crash.
type processLock struct {
	f *os.File
}

func lockDatabase(path string) (*processLock, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock database: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path + ".lock")
		f.Close()
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		return nil, &BusyError{PID: pid, Lock: path + ".lock"}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &processLock{f: f}, nil
}

func (l *processLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}

// Holder says which process works an embedded SQLite store now, as a
// *BusyError, or nil when none does (or the store is PostgreSQL, which any
// number of processes work). It is for messages only: it reads the pid the
// holder wrote and checks that the process is alive, rather than try the
// lock, which for that instant would refuse a stanch serve starting.
func (d *Database) Holder() *BusyError {
	if d.Dialect != SQLite {
		return nil
	}
	lock := d.Path + ".lock"
	data, err := os.ReadFile(lock)
	if err != nil {
		return nil // no process ever worked it
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return nil
	}
	// The pid stays in the file once its process has exited.
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return nil
	}
	return &BusyError{PID: strconv.Itoa(pid), Lock: lock}
}
