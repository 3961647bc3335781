package playbooks

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/actions"
)

// errNotCalled is what the test actions return: these tests only load
// playbooks and never run an action.
var errNotCalled = errors.New("playbooks tests never plan or run actions")

type identifyKeyParams struct {
	AccessKeyID string `json:"access_key_id" required:"true" doc:"the access key id, AKIA…"`
}

type deactivateKeyParams struct {
	AccessKeyID string `json:"access_key_id" required:"true" doc:"the access key id, AKIA…"`
	UserName    string `json:"user_name" doc:"the IAM user that owns the key"`
	Account     string `json:"account" doc:"the 12-digit AWS account id"`
}

type secretMakerParams struct {
	Name  string           `json:"name" doc:"what to call the secret"`
	Count int              `json:"count" doc:"how many to make"`
	Wait  actions.Duration `json:"wait" doc:"how long to wait"`
}

func notCalled[P any]() actions.Definition[P] {
	return actions.Definition[P]{
		PlanFunc: func(context.Context, actions.Env, *P) (actions.Plan, error) { return actions.Plan{}, errNotCalled },
		DoFunc:   func(context.Context, actions.Env, *P) (actions.Result, error) { return actions.Result{}, errNotCalled },
	}
}

// testRegistry mirrors the real aws.identify_key and aws.deactivate_key
// (names, parameters, outputs), plus test.secret_maker for the rules about
// secret outputs and parameter types.
func testRegistry(t *testing.T) *actions.Registry {
	t.Helper()
	identify := notCalled[identifyKeyParams]()
	identify.Name = "aws.identify_key"
	identify.Outputs = []actions.Output{
		{Name: "account", Type: "string"},
		{Name: "user_name", Type: "string"},
		{Name: "key_kind", Type: "string"},
		{Name: "last_used_date", Type: "string"},
		{Name: "last_used_service", Type: "string"},
		{Name: "last_used_region", Type: "string"},
	}
	deactivate := notCalled[deactivateKeyParams]()
	deactivate.Name = "aws.deactivate_key"
	deactivate.Outputs = []actions.Output{
		{Name: "user_name", Type: "string"},
		{Name: "previous_status", Type: "string"},
		{Name: "status", Type: "string"},
	}
	secret := notCalled[secretMakerParams]()
	secret.Name = "test.secret_maker"
	secret.Outputs = []actions.Output{
		{Name: "id", Type: "string"},
		{Name: "secret", Type: "string", Secret: true},
	}
	reg, err := actions.NewRegistry(actions.New(identify), actions.New(deactivate), actions.New(secret))
	require.NoError(t, err)
	return reg
}
