package triggers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	plant "github.com/stanchhq/stanch/internal/planted"
)

// Each sample document the parsers read, with a planted secret (each of
// plant.All in turn) added to one of its strings, for each string in
// turn: whatever a parser makes of it (alerts, skipped entries, an error)
// holds no piece of the secret, whether the field is one stanch reads, one
// it quotes or one it ignores.
func TestPlantedSecretInAnyFieldComesOutNowhere(t *testing.T) {
	t.Parallel()
	docs := []string{"guardduty-accesskey.json", "guardduty-instance-exfiltration.json", "guardduty-s3-exfiltration.json",
		"guardduty-sample.json", "health-credentials-exposed.json", "gitleaks.json", "gitleaks-git.json", "trufflehog.jsonl"}
	variants := 0
	for _, name := range docs {
		lines := [][]byte{load(t, name)} // one JSON document
		if strings.HasSuffix(name, ".jsonl") {
			lines = bytes.Split(bytes.TrimSpace(lines[0]), []byte("\n"))
		}
		for i, line := range lines {
			for _, v := range plantEach(t, line) {
				doc := bytes.Join(append(append(append([][]byte{}, lines[:i]...), v.doc), lines[i+1:]...), []byte("\n"))
				rep, err := ParseDocument(doc, now, SourceFiles{})
				requireClean(t, fmt.Sprintf("%s with a secret in %s", name, v.where), rep, err)
				variants++
			}
		}
	}
	require.Greater(t, variants, 200, "every string of every document")
}

type plantedDoc struct {
	where string // the string's path in the document
	doc   []byte
}

// plantEach returns doc once for each string in it, with a planted secret
// appended to that string.
func plantEach(t *testing.T, doc []byte) []plantedDoc {
	t.Helper()
	var root any
	require.NoError(t, json.Unmarshal(doc, &root))
	var out []plantedDoc
	var walk func(where string, v any, set func(any))
	walk = func(where string, v any, set func(any)) {
		switch x := v.(type) {
		case string:
			set(x + " " + plant.All[len(out)%len(plant.All)])
			data, err := json.Marshal(root)
			require.NoError(t, err)
			out = append(out, plantedDoc{where: where, doc: data})
			set(x)
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(where+"."+k, x[k], func(nv any) { x[k] = nv })
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), e, func(nv any) { x[i] = nv })
			}
		}
	}
	walk("", root, nil)
	return out
}
