package playbooks

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/invalid")

// TestInvalid loads every testdata/invalid/<case>.yaml and compares the full
// error text with <case>.golden.
func TestInvalid(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 18)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pb, err := Load(path, reg)
			require.Nil(t, pb)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.NotEmpty(t, errs)
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./playbooks -update to create it")
			require.Equal(t, string(want), got)
		})
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	files, err := filepath.Glob("testdata/valid/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			pb, err := Load(path, reg)
			require.NoError(t, err)
			require.NotEmpty(t, pb.Name)
			require.NotEmpty(t, pb.Steps)
			require.Equal(t, path, pb.File)
		})
	}
}
