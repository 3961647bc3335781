package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/stanchhq/stanch/actions"
)

// The read-only half of aws.rotate_key: what the step finds (Plan and Do
// both start with it), and the plan built from it.

// rotationState is what the read-only half of the step finds.
type rotationState struct {
	// missing: the secret does not exist.
	missing bool
	arn     string
	current string // the version holding AWSCURRENT
	// ours is the version this step wrote (ClientRequestToken = token), if
	// an earlier attempt got that far, with its staging labels.
	ours       *keySecret
	oursStages []string
	// keys, orphans and room are only looked at when ours is nil.
	keys    []iamtypes.AccessKeyMetadata
	orphans []string // keys an interrupted attempt created and lost
	calls   []actions.Call
}

func (st *rotationState) read(service, op string, params map[string]any) {
	st.calls = append(st.calls, actions.Call{Service: service, Operation: op, Params: params, Made: true})
}

// inspect is the check half of the step. Every call it makes is read-only.
func (r *rotation) inspect(ctx context.Context) (*rotationState, error) {
	st := &rotationState{}
	st.read("secretsmanager", "DescribeSecret", map[string]any{"SecretId": r.in.SecretID})
	desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf) && r.in.WhenNoSecret == noSecretFail:
		return st, actions.Permanentf("there is no secret %s in account %s for the new key: create it, or set when_no_secret: create (or skip); nothing was changed", r.in.SecretID, r.account)
	case errors.As(err, &nf):
		st.missing = true
		if r.in.WhenNoSecret == noSecretSkip {
			return st, nil
		}
		desc = &secretsmanager.DescribeSecretOutput{}
	case err != nil:
		return st, classify(fmt.Errorf("secretsmanager:DescribeSecret %s: %w", r.in.SecretID, err))
	}
	st.arn = awssdk.ToString(desc.ARN)
	for id, stages := range desc.VersionIdsToStages {
		if slices.Contains(stages, stageCurrent) {
			st.current = id
		}
	}
	// Asked by id rather than found in VersionIdsToStages, which leaves out
	// versions that have lost every label.
	if !st.missing {
		st.read("secretsmanager", "GetSecretValue", map[string]any{"SecretId": r.in.SecretID, "VersionId": r.token})
		if st.ours, st.oursStages, err = r.version(ctx, r.token); err != nil {
			return st, err
		}
	}
	if st.ours != nil {
		if st.ours.AccessKeyID == "" || st.ours.UserName != r.in.UserName {
			return st, actions.Permanentf("secret version %s holds no access key of %s: it is not one this step wrote", r.token, r.in.UserName)
		}
		return st, nil
	}
	st.read("iam", "ListAccessKeys", map[string]any{"UserName": r.in.UserName})
	listed, err := r.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: awssdk.String(r.in.UserName)})
	if err != nil {
		return st, classify(fmt.Errorf("iam:ListAccessKeys: %w", err))
	}
	st.keys = listed.AccessKeyMetadata
	st.orphans, err = r.orphans(ctx, st, desc.VersionIdsToStages, awsClockSkew(listed.ResultMetadata))
	return st, err
}

// version reads one version of the secret as a key; nil when it does not
// exist. A value that is not the key layout reads as an empty keySecret.
func (r *rotation) version(ctx context.Context, id string) (*keySecret, []string, error) {
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(r.in.SecretID), VersionId: awssdk.String(id)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, classify(fmt.Errorf("secretsmanager:GetSecretValue version %s: %w", id, err))
	}
	var ks keySecret
	_ = json.Unmarshal([]byte(awssdk.ToString(out.SecretString)), &ks)
	if ks.AccessKeyID == "" {
		// The other common layout.
		var snake struct {
			ID string `json:"aws_access_key_id"`
		}
		_ = json.Unmarshal([]byte(awssdk.ToString(out.SecretString)), &snake)
		ks.AccessKeyID = snake.ID
	}
	return &ks, out.VersionStages, nil
}

// orphans finds the keys an interrupted attempt of this step created and
// then lost (it died before PutSecretValue, so nobody has their secret half
// and they can only be replaced): keys other than the leaked one, created
// since the step's first attempt began, that no labelled version of the
// secret holds and that have never been used. Without a start time nothing
// is an orphan.
func (r *rotation) orphans(ctx context.Context, st *rotationState, versions map[string][]string, skew time.Duration) ([]string, error) {
	// The first attempt of a step has no earlier attempt to clean up after
	// (attempts are counted across crashes): nothing can be its orphan.
	if r.env.Attempt <= 1 || r.env.StepStartedAt.IsZero() {
		return nil, nil
	}
	// CreateDate is AWS's clock in whole seconds: move the start onto it.
	// The skew comes from a Date header, floored to the second, so it errs
	// early and no orphan is missed.
	since := r.env.StepStartedAt.Add(skew).Truncate(time.Second)
	var candidates []string
	for _, k := range st.keys {
		id := awssdk.ToString(k.AccessKeyId)
		if id != r.in.LeakedAccessKeyID && !awssdk.ToTime(k.CreateDate).Before(since) {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	held := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(versions)) {
		if len(versions[id]) == 0 {
			continue
		}
		st.read("secretsmanager", "GetSecretValue", map[string]any{"SecretId": r.in.SecretID, "VersionId": id})
		ks, _, err := r.version(ctx, id)
		if err != nil {
			return nil, err
		}
		if ks != nil {
			held[ks.AccessKeyID] = true
		}
	}
	var out []string
	for _, id := range candidates {
		if held[id] {
			continue
		}
		st.read("iam", "GetAccessKeyLastUsed", map[string]any{"AccessKeyId": id})
		used, err := r.iam.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: awssdk.String(id)})
		if err != nil {
			return nil, classify(fmt.Errorf("iam:GetAccessKeyLastUsed %s: %w", id, err))
		}
		if used.AccessKeyLastUsed != nil && used.AccessKeyLastUsed.LastUsedDate != nil {
			r.env.Log().Warn("a key created during the rotation has been used, so it is someone else's: keeping it", "user", r.in.UserName, "key", id)
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// awsClockSkew is AWS's clock minus ours, from a response's Date header.
func awsClockSkew(md middleware.Metadata) time.Duration {
	server, ok := awsmiddleware.GetServerTime(md)
	at, ok2 := awsmiddleware.GetResponseAt(md)
	if !ok || !ok2 || server.IsZero() {
		return 0
	}
	return server.Sub(at)
}

// room says whether the leaked key must be deleted to make room for the new
// one, once the orphans are gone. While planning, the leaked key may still
// be Active: an earlier step of the run deactivates it.
func (r *rotation) room(st *rotationState, planning bool) (deleteLeaked bool, err error) {
	var kept []iamtypes.AccessKeyMetadata
	for _, k := range st.keys {
		if !slices.Contains(st.orphans, awssdk.ToString(k.AccessKeyId)) {
			kept = append(kept, k)
		}
	}
	if len(kept) < 2 {
		return false, nil
	}
	var ids []string
	var leaked *iamtypes.AccessKeyMetadata
	for i, k := range kept {
		ids = append(ids, fmt.Sprintf("%s (%s)", awssdk.ToString(k.AccessKeyId), k.Status))
		if awssdk.ToString(k.AccessKeyId) == r.in.LeakedAccessKeyID {
			leaked = &kept[i]
		}
	}
	has := fmt.Sprintf("IAM user %s already has two access keys, %s, and IAM allows no third", r.in.UserName, strings.Join(ids, " and "))
	switch {
	case r.in.WhenTwoKeys != twoKeysDeleteLeaked:
		return false, actions.Permanentf("%s: delete one of them (deactivate the leaked key, then aws.delete_key), or set when_two_keys: %s so that the step deletes the leaked key once it is Inactive; nothing was changed", has, twoKeysDeleteLeaked)
	case leaked == nil:
		return false, actions.Permanentf("%s, and neither is the leaked key %s: delete one of them by hand; nothing was changed", has, r.in.LeakedAccessKeyID)
	case leaked.Status != iamtypes.StatusTypeInactive && !planning:
		return false, actions.Permanentf("%s, and the leaked key %s is still Active: deactivate it first (aws.deactivate_key) so that it can be deleted to make room; nothing was changed", has, r.in.LeakedAccessKeyID)
	}
	return true, nil
}

func (r *rotation) plan(ctx context.Context) (rotatePlan, error) {
	st, err := r.inspect(ctx)
	plan := rotatePlan{Calls: st.calls}
	if err != nil {
		return plan, r.fail(err)
	}
	if st.missing && r.in.WhenNoSecret == noSecretSkip {
		plan.Summary = r.noSecret()
		plan.Settled = actions.NoOp
		plan.Outputs = &RotateKeyOutputs{}
		return plan, nil
	}
	secretID := map[string]any{"SecretId": r.in.SecretID}
	promote := []actions.Call{
		{Service: "sts", Operation: "GetCallerIdentity", Params: map[string]any{"credentials": "the new key"}, Account: r.account},
		r.write(actions.Call{Service: "secretsmanager", Operation: "UpdateSecretVersionStage", Params: map[string]any{"SecretId": r.in.SecretID, "VersionStage": stageCurrent, "MoveToVersionId": r.token, "RemoveFromVersionId": st.current}},
			fmt.Sprintf("make the new key AWSCURRENT in secret %s of account %s (what its consumers read)", r.in.SecretID, r.account), false),
		r.write(actions.Call{Service: "secretsmanager", Operation: "UpdateSecretVersionStage", Params: map[string]any{"SecretId": r.in.SecretID, "VersionStage": stagePending, "RemoveFromVersionId": r.token}},
			fmt.Sprintf("clear AWSPENDING from the new version of secret %s", r.in.SecretID), false),
		{Service: "secretsmanager", Operation: "DescribeSecret", Params: secretID, Account: r.account},
	}
	if st.ours != nil {
		plan.Outputs = &RotateKeyOutputs{NewAccessKeyID: st.ours.AccessKeyID, SecretARN: st.arn, VersionID: r.token}
		switch {
		case slices.Contains(st.oursStages, stageCurrent):
			plan.Summary = fmt.Sprintf("already rotated: new key %s of %s is AWSCURRENT in %s", st.ours.AccessKeyID, r.where(), r.in.SecretID)
			plan.Settled = actions.Already
		case slices.Contains(st.oursStages, stagePending):
			plan.Summary = fmt.Sprintf("would test key %s, which an earlier attempt stored in %s as AWSPENDING, then make it AWSCURRENT", st.ours.AccessKeyID, r.in.SecretID)
			for _, d := range r.dests {
				plan.Calls = append(plan.Calls, d.Calls()...)
			}
			plan.Calls = append(plan.Calls, promote...)
		default:
			plan.Summary = fmt.Sprintf("key %s was rotated in and has since been replaced in %s: nothing to change", st.ours.AccessKeyID, r.in.SecretID)
			plan.Settled = actions.Already
		}
		return plan, nil
	}
	// The new key and its version exist only once Do made them.
	plan.Outputs = &RotateKeyOutputs{SecretARN: st.arn}
	plan.Undetermined = []string{"new_access_key_id", "version_id"}
	for _, id := range st.orphans {
		plan.Calls = append(plan.Calls, r.write(actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"UserName": r.in.UserName, "AccessKeyId": id}},
			fmt.Sprintf("delete access key %s of %s, created by an interrupted attempt of this step and never stored (nobody has its secret)", id, r.where()), true))
	}
	deleteLeaked, err := r.room(st, true)
	if err != nil {
		return plan, r.fail(err)
	}
	if deleteLeaked {
		plan.Calls = append(plan.Calls, r.write(actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"UserName": r.in.UserName, "AccessKeyId": r.in.LeakedAccessKeyID}},
			fmt.Sprintf("delete the leaked access key %s of %s to make room for the new one (IAM allows two keys; when_two_keys: %s)", r.in.LeakedAccessKeyID, r.where(), twoKeysDeleteLeaked), true))
	}
	if st.missing {
		plan.Calls = append(plan.Calls, r.write(actions.Call{Service: "secretsmanager", Operation: "CreateSecret", Params: map[string]any{"Name": r.in.SecretID}},
			fmt.Sprintf("create secret %s in account %s (when_no_secret: create)", r.in.SecretID, r.account), false))
	}
	plan.Calls = append(plan.Calls,
		r.write(actions.Call{Service: "iam", Operation: "CreateAccessKey", Params: map[string]any{"UserName": r.in.UserName}},
			fmt.Sprintf("create a new access key for %s", r.where()), false),
		r.write(actions.Call{Service: "secretsmanager", Operation: "PutSecretValue", Params: map[string]any{"SecretId": r.in.SecretID, "ClientRequestToken": r.token, "VersionStages": []string{stagePending}}},
			fmt.Sprintf("store the new key in secret %s of account %s as AWSPENDING", r.in.SecretID, r.account), false))
	for _, d := range r.dests {
		plan.Calls = append(plan.Calls, d.Calls()...)
	}
	plan.Calls = append(plan.Calls, promote...)
	plan.Summary = fmt.Sprintf("would create a new key for %s, store it in %s as AWSPENDING, test it, then make it AWSCURRENT", r.where(), r.in.SecretID)
	if len(r.dests) > 0 {
		var names []string
		for _, d := range r.dests {
			names = append(names, d.Describe())
		}
		plan.Summary = fmt.Sprintf("would create a new key for %s, store it in %s as AWSPENDING, test it, write it to %s, then make it AWSCURRENT", r.where(), r.in.SecretID, strings.Join(names, ", "))
	}
	if st.missing {
		plan.Summary = fmt.Sprintf("would create the secret %s, then a new key for %s, store it there as AWSPENDING, test it, then make it AWSCURRENT", r.in.SecretID, r.where())
	}
	if len(st.orphans) > 0 {
		plan.Summary += fmt.Sprintf(", after deleting %s, left by an interrupted attempt", strings.Join(st.orphans, ", "))
	}
	if deleteLeaked {
		plan.Summary += fmt.Sprintf(", after deleting the leaked key %s to make room (it must be Inactive by then)", r.in.LeakedAccessKeyID)
	}
	return plan, nil
}

// write marks a planned call as a change, in this rotation's account.
func (r *rotation) write(c actions.Call, effect string, irreversible bool) actions.Call {
	c.Mutates, c.Account, c.Effect, c.Irreversible = true, r.account, effect, irreversible
	return c
}

// noSecret says why a rotation without a secret creates no key.
func (r *rotation) noSecret() string {
	return fmt.Sprintf("no secret %s in account %s: no consumer reads %s's key from Secrets Manager, so no new key was created (when_no_secret: %s; set create to create the secret)",
		r.in.SecretID, r.account, r.in.UserName, noSecretSkip)
}
