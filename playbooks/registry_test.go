package playbooks

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
)

// errNotCalled is what the test action returns: these tests only load
// playbooks and never run an action.
var errNotCalled = errors.New("playbooks tests never plan or run actions")

type secretMakerParams struct {
	Name  string           `json:"name" doc:"what to call the secret"`
	Count int              `json:"count" doc:"how many to make"`
	Wait  actions.Duration `json:"wait" doc:"how long to wait"`
}

type secretMakerOutputs struct {
	ID     string `json:"id"`
	Secret string `json:"secret" secret:"true"`
}

// testRegistry holds the real AWS actions (built without credentials: no
// test here runs them) and test.secret_maker, which has a secret output and
// int and duration parameters for the rules about those.
func testRegistry(t *testing.T) *actions.Registry {
	t.Helper()
	secret := actions.New(actions.Definition[secretMakerParams, secretMakerOutputs]{
		Name: "test.secret_maker",
		PlanFunc: func(context.Context, actions.Env, *secretMakerParams) (actions.PlanOf[secretMakerOutputs], error) {
			return actions.PlanOf[secretMakerOutputs]{}, errNotCalled
		},
		DoFunc: func(context.Context, actions.Env, *secretMakerParams) (actions.ResultOf[secretMakerOutputs], error) {
			return actions.ResultOf[secretMakerOutputs]{}, errNotCalled
		},
	})
	reg, err := actions.NewRegistry(append(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{})), secret)...)
	require.NoError(t, err)
	return reg
}
