package slack

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The cache never holds more than userCacheSize settled answers: expired
// ones go first, then the one closest to expiring.
func TestUserCacheBounded(t *testing.T) {
	now := time.Unix(1764300000, 0)
	uc := &userCache{now: func() time.Time { return now }}
	for i := range userCacheSize + 10 {
		e, lead := uc.claim(fmt.Sprintf("U%06d", i))
		require.True(t, lead)
		uc.settle(e, "someone", nil)
		now = now.Add(time.Millisecond)
	}
	require.Len(t, uc.entries, userCacheSize)
	_, kept := uc.entries["U000000"]
	require.False(t, kept, "the oldest answer made room")
	_, kept = uc.entries[fmt.Sprintf("U%06d", userCacheSize+9)]
	require.True(t, kept)

	// Expired failures are dropped before any live answer.
	e, _ := uc.claim("UFAILED")
	uc.settle(e, "", errors.New("slack down"))
	now = now.Add(userFailTTL + time.Second)
	_, lead := uc.claim("UNEW")
	require.True(t, lead)
	_, kept = uc.entries["UFAILED"]
	require.False(t, kept)
	require.LessOrEqual(t, len(uc.entries), userCacheSize+1, "the one in flight may go beyond the bound")
}
