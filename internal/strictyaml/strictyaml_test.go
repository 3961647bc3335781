package strictyaml

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/yamldiag"
)

type inner struct {
	Name  string   `yaml:"name"`
	Items []string `yaml:"items"`
}

type source struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

type doc struct {
	Listen  string           `yaml:"listen"`
	Rate    *float64         `yaml:"rate"`
	Every   time.Duration    `yaml:"every"`
	Count   int64            `yaml:"count"`
	On      bool             `yaml:"on"`
	Inner   inner            `yaml:"inner"`
	Byname  map[string]inner `yaml:"byname"`
	source  `yaml:",inline"`
	private string
}

func decode(t *testing.T, text string) (doc, Positions, yamldiag.Problems) {
	t.Helper()
	var d doc
	at, err := Decode("c.yaml", []byte(text), &d)
	if err == nil {
		return d, at, nil
	}
	var probs yamldiag.Problems
	require.True(t, errors.As(err, &probs), "%v", err)
	return d, at, probs
}

func TestDecodesEveryKindAndRemembersWhere(t *testing.T) {
	d, at, probs := decode(t, `
listen: 127.0.0.1:8080
rate: 2.5
every: 90s
count: 7
on: true
env: SECRET_VAR
inner:
  name: x
  items: [a, b]
byname:
  "111122223333":
    name: y
`)
	require.Empty(t, probs)
	require.Equal(t, "127.0.0.1:8080", d.Listen)
	require.Equal(t, 2.5, *d.Rate)
	require.Equal(t, 90*time.Second, d.Every)
	require.EqualValues(t, 7, d.Count)
	require.True(t, d.On)
	require.Equal(t, "SECRET_VAR", d.Env, "inline fields are keys of the outer mapping")
	require.Equal(t, inner{Name: "x", Items: []string{"a", "b"}}, d.Inner)
	require.Equal(t, "y", d.Byname["111122223333"].Name)
	require.Equal(t, yamldiag.Pos{Line: 2, Col: 9}, at["listen"])
	require.Equal(t, yamldiag.Pos{Line: 10, Col: 14}, at["inner.items[1]"])
	require.Equal(t, yamldiag.Pos{Line: 13, Col: 11}, at["byname.111122223333.name"])
}

func TestReportsEveryProblemInFileOrder(t *testing.T) {
	d, _, probs := decode(t, `listn: x
count: many
inner:
  name: [a]
  name: b
every: -3s
on: yes please
private: p
`)
	got := make([]string, len(probs))
	for i, p := range probs {
		got[i] = strings.SplitN(p.Error(), "\n", 2)[0]
	}
	require.Equal(t, []string{
		"c.yaml:1:1: unknown key `listn` at the top level",
		"c.yaml:2:8: `count` must be a whole number, not a string",
		"c.yaml:4:9: `inner.name` must be a string, not a list",
		"c.yaml:5:3: duplicate key `name`",
		"c.yaml:6:8: `every`: \"-3s\" is not a duration longer than zero",
		"c.yaml:7:5: `on` must be true or false, not a string",
		"c.yaml:8:1: unknown key `private` at the top level",
	}, got)
	require.Contains(t, probs[0].Hint, "did you mean `listen`?")
	require.Contains(t, probs[3].Hint, "the first `name` is at line 4")
	require.Empty(t, d.private, "unexported fields are no keys")
}

func TestRefusesWhatAHandEditedFileShouldNotHold(t *testing.T) {
	for text, want := range map[string]string{
		"a: &x 1\nlisten: *x\n":     "are not supported here",
		"listen: !!str x\n":         "tags (!tag) are not supported here",
		"listen: x\n---\nrate: 1\n": "more than one YAML document",
		"listen: [unclosed\n":       "c.yaml:1:9: YAML syntax error",
		"rate: .nan\n":              "`rate` must be a number",
		"inner: 3\n":                "`inner` must be a mapping of keys, not a number",
	} {
		_, _, probs := decode(t, text)
		require.NotEmpty(t, probs, text)
		require.Contains(t, probs.Error(), want, text)
	}
	_, _, probs := decode(t, "listen: "+strings.Repeat("x", MaxBytes)+"\n")
	require.Contains(t, probs.Error(), "larger than")
}

func TestAnEmptyFileIsEveryDefault(t *testing.T) {
	d, _, probs := decode(t, "# nothing set\n")
	require.Empty(t, probs)
	require.Equal(t, doc{}, d)
}
