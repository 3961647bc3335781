package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/leaked"
)

// MaxMessage is the largest message a server reads: far more than the
// tokens of any report, small enough that no peer makes it hold much.
const MaxMessage = 1 << 20

// maxPath is the longest path a Unix socket address holds (sun_path, less
// its terminating NUL).
const maxPath = 107

// connTimeout bounds one hand-off: reading the values and answering.
const connTimeout = 10 * time.Second

// ErrNoListener is wrapped by Hand's error when no process answers at the
// socket: none works the store, or the one that does takes no values.
var ErrNoListener = errors.New("no stanch process takes token values there")

// SocketBeside returns the socket of the SQLite database at dbPath:
// stanch.db.values beside stanch.db (and its stanch.db.lock).
func SocketBeside(dbPath string) string { return dbPath + ".values" }

// Peer is the process at the other end of a connection, as the kernel
// recorded it when the connection was made.
type Peer struct {
	UID int
	PID int
}

// CheckPeer refuses a peer that runs as another user than uid: token
// values pass only between processes of one user.
func CheckPeer(p Peer, uid int) error {
	if p.UID != uid {
		return fmt.Errorf("process %d runs as uid %d, not uid %d", p.PID, p.UID, uid)
	}
	return nil
}

// Answer is what a server answers a hand-off.
type Answer struct {
	// PID is the process that took the values.
	PID int `json:"pid"`
	// Taken are the fingerprints of the values it took (alert.Fingerprint).
	Taken []string `json:"taken"`
	// Refused are the values it did not take, by their position in the
	// message (the value itself is never echoed).
	Refused []Refusal `json:"refused,omitempty"`
	// Error says why nothing was taken (a malformed or oversized message,
	// another user).
	Error string `json:"error,omitempty"`
}

// Refusal is a value a server did not take, and why.
type Refusal struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// Server takes token values on a Unix socket into Values.
type Server struct {
	path   string
	ln     *net.UnixListener
	values *leaked.Values
	log    *slog.Logger
	uid    int
	conns  chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// Listen listens at path for token values and remembers them in values.
// The directory of path must be one only this user may write; a stale
// socket left by a process that died is replaced, a live one is not.
// Close stops listening and removes the socket.
func Listen(path string, values *leaked.Values, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(path) > maxPath {
		return nil, fmt.Errorf("token hand-off socket %s: the path is %d bytes long, and a Unix socket's path is at most %d", path, len(path), maxPath)
	}
	uid := os.Getuid()
	if err := checkDir(filepath.Dir(path), uid); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("token hand-off socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	// Until this chmod, the umask's mode applies; a peer of another user
	// that connects meanwhile is refused by its uid.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("token hand-off socket: %w", err)
	}
	s := &Server{path: path, ln: ln, values: values, log: log, uid: uid, conns: make(chan struct{}, 8)}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Path is where s listens.
func (s *Server) Path() string { return s.path }

// Close stops taking values, waits for the hand-offs under way and
// removes the socket.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		s.wg.Wait()
		if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = rmErr
		}
	})
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("token hand-off socket stopped", "socket", s.path, "err", err)
			}
			return
		}
		s.conns <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.conns; s.wg.Done() }()
			s.handle(conn)
		}()
	}
}

// handle answers one hand-off.
func (s *Server) handle(conn *net.UnixConn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(connTimeout))
	ans := Answer{PID: os.Getpid(), Taken: []string{}}
	peer, err := peerOf(conn)
	if err == nil {
		err = CheckPeer(peer, s.uid)
	}
	if err != nil {
		s.log.Warn("token hand-off refused", "socket", s.path, "reason", err.Error())
		ans.Error = "refused: " + err.Error()
		writeAnswer(conn, ans)
		return
	}
	data, err := io.ReadAll(io.LimitReader(conn, MaxMessage+1))
	switch {
	case err != nil:
		s.log.Warn("token hand-off not read", "peer_pid", peer.PID, "err", err)
		return
	case len(data) > MaxMessage:
		ans.Error = fmt.Sprintf("the message is larger than %d bytes: nothing taken", MaxMessage)
	default:
		ans = s.take(data, ans)
	}
	if ans.Error != "" {
		s.log.Warn("token hand-off refused", "peer_pid", peer.PID, "reason", ans.Error)
	} else {
		s.log.Info("token values handed over", "peer_pid", peer.PID, "taken", len(ans.Taken), "fingerprints", ans.Taken, "refused", len(ans.Refused))
	}
	writeAnswer(conn, ans)
	// What the peer still sends (past MaxMessage) is read and dropped
	// until it is done or the deadline passes: closing with it unread
	// would reset the connection before the peer reads the answer.
	_ = conn.CloseWrite()
	_, _ = io.Copy(io.Discard, conn)
}

// take remembers every value of data that is a token stanch revokes.
func (s *Server) take(data []byte, ans Answer) Answer {
	var values []string
	// The decoder's error may quote the message; it is not passed on.
	if err := json.Unmarshal(data, &values); err != nil {
		ans.Error = "the message is not a JSON list of strings: nothing taken"
		return ans
	}
	for i, raw := range values {
		v := strings.TrimSpace(raw)
		k, ok := alert.TokenKindOf(v)
		switch {
		case !ok:
			ans.Refused = append(ans.Refused, Refusal{Index: i, Reason: "not a token of a kind stanch knows"})
		case !k.Revocable:
			ans.Refused = append(ans.Refused, Refusal{Index: i, Reason: fmt.Sprintf("a %s %s (%s…), which stanch does not revoke", k.Provider, k.Type, k.Prefix)})
		default:
			ans.Taken = append(ans.Taken, s.values.Remember(v))
		}
	}
	return ans
}

func writeAnswer(conn *net.UnixConn, ans Answer) {
	data, err := json.Marshal(ans)
	if err != nil {
		return
	}
	_, _ = conn.Write(append(data, '\n'))
}

// checkDir refuses a directory another user may write (who could then
// replace the socket) or that another user owns.
func checkDir(dir string, uid int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("token hand-off socket: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("token hand-off socket: %s is not a directory", dir)
	case ok && int(st.Uid) != uid:
		return fmt.Errorf("token hand-off socket: %s belongs to uid %d, not to this user (uid %d); keep the store in a directory of your own", dir, st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("token hand-off socket: other users may write %s (mode %04o); keep the store in a directory only you may write (chmod go-w)", dir, fi.Mode().Perm())
	}
	return nil
}

// removeStale removes the socket a process that died left at path, and
// refuses a live one or anything that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token hand-off socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("token hand-off socket: %s exists and is not a socket; not replacing it", path)
	}
	if conn, err := net.DialTimeout("unix", path, 500*time.Millisecond); err == nil {
		conn.Close()
		return fmt.Errorf("token hand-off socket: another process listens on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("token hand-off socket: %w", err)
	}
	return nil
}

// Hand gives values to the stanch process listening at path and returns
// its answer. It hands them only to a process of this user. Until ctx
// ends, it waits for a socket that is not there yet (a process that has
// just taken the store); then the error wraps ErrNoListener. An answer
// with an Error is returned with an error too.
func Hand(ctx context.Context, path string, values []string) (Answer, error) {
	if values == nil {
		values = []string{}
	}
	msg, err := json.Marshal(values)
	if err != nil {
		return Answer{}, err
	}
	if len(msg) > MaxMessage {
		return Answer{}, fmt.Errorf("%d token values make a message larger than %d bytes", len(values), MaxMessage)
	}
	conn, err := dial(ctx, path)
	if err != nil {
		return Answer{}, err
	}
	defer conn.Close()
	peer, err := peerOf(conn)
	if err == nil {
		err = CheckPeer(peer, os.Getuid())
	}
	if err != nil {
		return Answer{}, fmt.Errorf("%s: %w: nothing handed to it", path, err)
	}
	deadline := time.Now().Add(connTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(msg); err != nil {
		return Answer{}, fmt.Errorf("hand token values to process %d: %w", peer.PID, err)
	}
	if err := conn.CloseWrite(); err != nil {
		return Answer{}, fmt.Errorf("hand token values to process %d: %w", peer.PID, err)
	}
	data, err := io.ReadAll(io.LimitReader(conn, 8*MaxMessage))
	if err != nil {
		return Answer{}, fmt.Errorf("hand token values to process %d: %w", peer.PID, err)
	}
	var ans Answer
	if err := json.Unmarshal(data, &ans); err != nil {
		return Answer{}, fmt.Errorf("hand token values to process %d: no answer (%d bytes back)", peer.PID, len(data))
	}
	if ans.PID == 0 {
		ans.PID = peer.PID
	}
	if ans.Error != "" {
		return ans, fmt.Errorf("process %d took no token value: %s", ans.PID, ans.Error)
	}
	return ans, nil
}

// dial connects to path, trying again while ctx lasts when nothing
// listens there yet.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn.(*net.UnixConn), nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: %w (%w)", path, ErrNoListener, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", path, ErrNoListener)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
