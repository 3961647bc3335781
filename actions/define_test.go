package actions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type echoParams struct {
	Message string   `json:"message" required:"true" doc:"what to say"`
	Times   int      `json:"times"`
	Wait    Duration `json:"wait"`
	Tags    []string `json:"tags"`
}

type echoOutputs struct {
	Said string `json:"said"`
}

func echoAction() Action {
	return New(Definition[echoParams, echoOutputs]{
		Name:    "test.echo",
		Summary: "repeat a message",
		Validate: func(p echoParams) error {
			if p.Times < 0 {
				return errors.New("times must not be negative")
			}
			return nil
		},
		PlanFunc: func(_ context.Context, _ Env, p *echoParams) (PlanOf[echoOutputs], error) {
			return PlanOf[echoOutputs]{Summary: "would say " + p.Message}, nil
		},
		DoFunc: func(_ context.Context, _ Env, p *echoParams) (ResultOf[echoOutputs], error) {
			return ResultOf[echoOutputs]{Outcome: Done, Outputs: &echoOutputs{Said: p.Message}}, nil
		},
	})
}

func TestSpecDescribesParams(t *testing.T) {
	t.Parallel()
	spec := echoAction().Spec()
	require.Equal(t, "test.echo", spec.Name)
	require.Equal(t, []Param{
		{Name: "message", Type: "string", Required: true, Doc: "what to say", Kind: spec.Params[0].Kind},
		{Name: "times", Type: "int", Kind: spec.Params[1].Kind},
		{Name: "wait", Type: "duration", Kind: spec.Params[2].Kind},
		{Name: "tags", Type: "list of string", Kind: spec.Params[3].Kind},
	}, spec.Params)
}

func TestDecodeIsStrictAndTyped(t *testing.T) {
	t.Parallel()
	a := echoAction()
	p, err := a.Decode(map[string]any{"message": "hi", "times": uint64(2), "wait": "1m30s", "tags": []any{"a"}})
	require.NoError(t, err)
	require.Equal(t, &echoParams{Message: "hi", Times: 2, Wait: Duration(90 * time.Second), Tags: []string{"a"}}, p)

	res, err := a.Do(context.Background(), Env{}, p)
	require.NoError(t, err)
	require.Equal(t, "hi", res.Outputs["said"])

	_, err = a.Decode(map[string]any{"message": "hi", "times": -1})
	require.ErrorContains(t, err, "times must not be negative")
}

func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	errs := echoAction().Check(map[string]any{"times": "three", "wait": "soon", "colour": "red"}, nil)
	var msgs []string
	for _, e := range errs {
		var pe *ParamError
		require.ErrorAs(t, e, &pe)
		msgs = append(msgs, pe.Param+": "+pe.Msg)
	}
	require.Equal(t, []string{
		`colour: unknown parameter "colour" for test.echo`,
		`times: parameter "times" wants int: got string`,
		`wait: parameter "wait" wants duration: "soon" is not a duration (use forms like 30s, 5m, 1h)`,
		`message: missing required parameter "message" for test.echo`,
	}, msgs)

	// Templated values are only known at run time: present is enough.
	require.Empty(t, echoAction().Check(map[string]any{"message": "${{ alert.title }}", "times": "${{ vars.n }}"}, map[string]bool{"message": true, "times": true}))
}

func TestRegistryRefusesDuplicatesAndBadNames(t *testing.T) {
	t.Parallel()
	_, err := NewRegistry(echoAction(), echoAction())
	require.ErrorContains(t, err, `action "test.echo" registered twice`)

	bad := New(Definition[echoParams, echoOutputs]{Name: "Echo"})
	_, err = NewRegistry(bad)
	require.ErrorContains(t, err, `action name "Echo"`)

	reg, err := NewRegistry(echoAction())
	require.NoError(t, err)
	_, ok := reg.Lookup("test.echo")
	require.True(t, ok)
	require.Equal(t, []string{"test.echo"}, reg.Names())
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	require.Equal(t, KindPermanent, KindOf(Permanent(base)))
	require.Equal(t, KindRetryable, KindOf(Retryable(base)))
	require.Equal(t, KindRetryable, KindOf(base), "unclassified errors are retried within the step's bounds")
	require.ErrorIs(t, Permanentf("wrapped: %w", base), base)
}
