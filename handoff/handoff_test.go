package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/internal/planted"
	"github.com/stanchhq/stanch/leaked"
)

// lockedBuffer is a log a server writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type bundle struct {
	path   string
	values *leaked.Values
	log    *lockedBuffer
}

func setup(t *testing.T) (*Server, *bundle) {
	t.Helper()
	b := &bundle{path: SocketBeside(filepath.Join(t.TempDir(), "stanch.db")), values: &leaked.Values{}, log: &lockedBuffer{}}
	s, err := Listen(b.path, b.values, slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, b
}

// raw sends msg as it is and returns the answer.
func raw(t *testing.T, path string, msg []byte) Answer {
	t.Helper()
	conn, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer conn.Close()
	_, _ = conn.Write(msg) // an oversized message is cut short by the server
	_ = conn.(*net.UnixConn).CloseWrite()
	data, err := io.ReadAll(conn)
	require.NoError(t, err)
	var ans Answer
	require.NoError(t, json.Unmarshal(data, &ans), string(data))
	return ans
}

func TestHandRemembersRevocableTokens(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	fi, err := os.Stat(s.Path())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "only the user may connect")

	values := []string{planted.SlackBot, " " + planted.GitLabPAT + "\n", "not a token", planted.SlackRefresh, planted.NPM}
	ans, err := Hand(context.Background(), b.path, values)
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), ans.PID)
	require.Equal(t, []string{alert.Fingerprint(planted.SlackBot), alert.Fingerprint(planted.GitLabPAT), alert.Fingerprint(planted.NPM)}, ans.Taken)
	require.Equal(t, []Refusal{
		{Index: 2, Reason: "not a token of a kind stanch knows"},
		{Index: 3, Reason: "a slack refresh_token (xoxe-…), which stanch does not revoke"},
	}, ans.Refused)
	for _, v := range []string{planted.SlackBot, planted.GitLabPAT, planted.NPM} {
		got, ok := b.values.Lookup(alert.Fingerprint(v))
		require.True(t, ok)
		require.Equal(t, v, got)
	}
	_, ok := b.values.Lookup(alert.Fingerprint(planted.SlackRefresh))
	require.False(t, ok, "a kind stanch does not revoke is not kept")
	require.Contains(t, b.log.String(), alert.Fingerprint(planted.SlackBot))
	planted.RequireNone(t, "the answer", ans)
	planted.RequireNone(t, "the log", b.log.String())
}

func TestEveryPlantedTokenNeverInAnswerOrLog(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	ans, err := Hand(context.Background(), b.path, planted.AllTokens)
	require.NoError(t, err)
	revocable := 0
	for _, v := range planted.AllTokens {
		if k, _ := alert.TokenKindOf(v); k.Revocable {
			revocable++
		}
	}
	require.Len(t, ans.Taken, revocable)
	require.Len(t, ans.Refused, len(planted.AllTokens)-revocable)
	planted.RequireNone(t, "the answer", ans)
	planted.RequireNone(t, "the log", b.log.String())
}

func TestGarbageIsRefusedWhole(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	for _, msg := range []string{
		"",
		"not json " + planted.SlackBot,
		`{"values":["` + planted.SlackBot + `"]}`,
		`["` + planted.SlackBot + `", 3]`,
		`["` + planted.SlackBot + `"] trailing`,
		"\x00\xff\xfe",
	} {
		ans := raw(t, b.path, []byte(msg))
		require.Equal(t, "the message is not a JSON list of strings: nothing taken", ans.Error, "%q", msg)
		require.Empty(t, ans.Taken)
	}
	_, ok := b.values.Lookup(alert.Fingerprint(planted.SlackBot))
	require.False(t, ok)
	planted.RequireNone(t, "the log", b.log.String())
}

func TestOversizedMessageIsRefused(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	values := []string{planted.SlackBot}
	for len(values)*len(planted.NPM) < MaxMessage {
		values = append(values, planted.NPM)
	}
	msg, err := json.Marshal(values)
	require.NoError(t, err)
	ans := raw(t, b.path, msg)
	require.Equal(t, "the message is larger than 1048576 bytes: nothing taken", ans.Error)
	require.Empty(t, ans.Taken)
	_, ok := b.values.Lookup(alert.Fingerprint(planted.SlackBot))
	require.False(t, ok)

	_, err = Hand(context.Background(), b.path, values)
	require.ErrorContains(t, err, "larger than 1048576 bytes")
	planted.RequireNone(t, "the log and the error", b.log.String(), err.Error())
}

func TestCheckPeer(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckPeer(Peer{UID: 1000, PID: 42}, 1000))
	require.EqualError(t, CheckPeer(Peer{UID: 0, PID: 42}, 1000), "process 42 runs as uid 0, not uid 1000")
	require.EqualError(t, CheckPeer(Peer{UID: 1001, PID: 7}, 1000), "process 7 runs as uid 1001, not uid 1000")
}

func TestPeerIsThisUser(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	conn, err := net.Dial("unix", b.path)
	require.NoError(t, err)
	defer conn.Close()
	peer, err := peerOf(conn.(*net.UnixConn))
	require.NoError(t, err)
	require.Equal(t, Peer{UID: os.Getuid(), PID: os.Getpid()}, peer)
}

func TestNoListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Hand(ctx, filepath.Join(dir, "stanch.db.values"), []string{planted.SlackBot})
	require.ErrorIs(t, err, ErrNoListener)
	planted.RequireNone(t, "the error", err.Error())

	// A socket left by a process that died answers nothing either.
	s, b := setup(t)
	require.NoError(t, s.Close())
	_, err = os.Stat(b.path)
	require.ErrorIs(t, err, os.ErrNotExist, "Close removes the socket")
}

func TestHandWaitsForAListenerThatIsStarting(t *testing.T) {
	t.Parallel()
	path := SocketBeside(filepath.Join(t.TempDir(), "stanch.db"))
	values := &leaked.Values{}
	go func() {
		time.Sleep(150 * time.Millisecond)
		s, err := Listen(path, values, nil)
		if err == nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ans, err := Hand(ctx, path, []string{planted.VaultService})
	require.NoError(t, err)
	require.Equal(t, []string{alert.Fingerprint(planted.VaultService)}, ans.Taken)
}

func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := SocketBeside(filepath.Join(dir, "stanch.db"))

	// A socket file nobody listens on (its process was killed).
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	ln.SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	s, err := Listen(path, &leaked.Values{}, nil)
	require.NoError(t, err, "a stale socket is replaced")

	// A live one is not.
	_, err = Listen(path, &leaked.Values{}, nil)
	require.ErrorContains(t, err, "another process listens on")
	require.NoError(t, s.Close())

	// Nor is anything else.
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err = Listen(path, &leaked.Values{}, nil)
	require.ErrorContains(t, err, "exists and is not a socket")
}

func TestListenRefusesADirectoryOthersMayWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := Listen(SocketBeside(filepath.Join(dir, "stanch.db")), &leaked.Values{}, nil)
	require.ErrorContains(t, err, "other users may write "+dir+" (mode 0777)")

	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120), "stanch.db.values")
	_, err = Listen(long, &leaked.Values{}, nil)
	require.ErrorContains(t, err, "a Unix socket's path is at most 107")
}
