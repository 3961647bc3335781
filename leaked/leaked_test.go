package leaked

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/alert"
)

func TestValuesAreFoundByFingerprintUntilTheyExpire(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	v := &Values{now: func() time.Time { return now }}
	fp := v.Remember("ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789")
	require.Equal(t, alert.Fingerprint("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), fp)
	got, ok := v.Lookup(fp)
	require.True(t, ok)
	require.Equal(t, "ghp_abcdefghijklmnopqrstuvwxyz0123456789", got)
	_, ok = v.Lookup("sha256:0000000000000000")
	require.False(t, ok)
	now = now.Add(keep + time.Second)
	_, ok = v.Lookup(fp)
	require.False(t, ok, "a value is not kept past its time")
	fp = v.Remember("xoxb-1-2-3")
	v.Forget(fp)
	_, ok = v.Lookup(fp)
	require.False(t, ok)
}
