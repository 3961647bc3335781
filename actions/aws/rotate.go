package aws

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// RotateKeyParams are the parameters of aws.rotate_key.
type RotateKeyParams struct {
	UserName          string `json:"user_name" required:"true" doc:"the IAM user whose key is replaced"`
	LeakedAccessKeyID string `json:"leaked_access_key_id" required:"true" doc:"the leaked key being replaced"`
	SecretID          string `json:"secret_id" required:"true" doc:"name or ARN of the Secrets Manager secret the key's consumers read"`
	WhenTwoKeys       string `json:"when_two_keys" doc:"the user already has two keys: stop (the default: fail, saying what to do) or delete_leaked_if_inactive"`
	Account           string `json:"account" doc:"the user's account; its response role is used when it is not stanch's own"`
	Region            string `json:"region" doc:"the secret's region (default: the configured region)"`
}

const (
	twoKeysStop         = "stop"
	twoKeysDeleteLeaked = "delete_leaked_if_inactive"
)

// keySecret is what the secret holds: the common single-JSON layout.
type keySecret struct {
	UserName        string `json:"UserName"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

func rotateKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[RotateKeyParams]{
		Name:    "aws.rotate_key",
		Summary: "Create a replacement access key and deliver it to Secrets Manager (AWSPENDING, tested, then AWSCURRENT); crash-safe and never creates two.",
		Outputs: []actions.Output{
			{Name: "new_access_key_id", Type: "string", Doc: "the replacement key's id (its secret is only in Secrets Manager)"},
			{Name: "secret_arn", Type: "string", Doc: "the secret holding it"},
			{Name: "version_id", Type: "string", Doc: "the secret version, AWSCURRENT now"},
		},
		Permissions: []actions.Permission{
			{Name: "iam:ListAccessKeys", Why: "see the user's keys and any left by an interrupted attempt"},
			{Name: "iam:CreateAccessKey", Why: "create the replacement key"},
			{Name: "iam:DeleteAccessKey", Why: "remove a key an interrupted attempt created, or the inactive leaked key when the user has two"},
			{Name: "secretsmanager:DescribeSecret", Why: "find the current version"},
			{Name: "secretsmanager:GetSecretValue", Why: "recognise the version this step wrote"},
			{Name: "secretsmanager:PutSecretValue", Why: "store the new key as AWSPENDING"},
			{Name: "secretsmanager:UpdateSecretVersionStage", Why: "promote it to AWSCURRENT"},
			{Name: "sts:GetCallerIdentity", Why: "test the new key before promoting it"},
		},
		Example: `- id: rotate
  action: aws.rotate_key
  approval: {approvers: [security-oncall], timeout: 4h}
  with:
    user_name: ${{ steps.identify.outputs.user_name }}
    leaked_access_key_id: ${{ alert.credential.id }}
    secret_id: iam-user/${{ steps.identify.outputs.user_name }}
    when_two_keys: delete_leaked_if_inactive
`,
		Validate: func(in *RotateKeyParams) error {
			switch in.WhenTwoKeys {
			case "":
				in.WhenTwoKeys = twoKeysStop
			case twoKeysStop, twoKeysDeleteLeaked:
			default:
				return fmt.Errorf("when_two_keys %q: want %s or %s", in.WhenTwoKeys, twoKeysStop, twoKeysDeleteLeaked)
			}
			return checkKeyID(in.LeakedAccessKeyID)
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (actions.Plan, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return actions.Plan{}, err
			}
			plan := actions.Plan{Calls: []actions.Call{
				{Service: "secretsmanager", Operation: "DescribeSecret", Params: map[string]any{"SecretId": in.SecretID}, Made: true},
				{Service: "iam", Operation: "ListAccessKeys", Params: map[string]any{"UserName": in.UserName}, Made: true},
			}}
			if _, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(in.SecretID)}); err != nil {
				return plan, fmt.Errorf("rotate key of %s: secretsmanager:DescribeSecret %s: %w", in.UserName, in.SecretID, classify(err))
			}
			keys, err := r.keys(ctx)
			if err != nil {
				return plan, err
			}
			if len(keys) >= 2 {
				if in.WhenTwoKeys != twoKeysDeleteLeaked {
					return plan, r.twoKeysError(keys)
				}
				plan.Calls = append(plan.Calls, actions.Call{Service: "iam", Operation: "DeleteAccessKey", Params: map[string]any{"UserName": in.UserName, "AccessKeyId": in.LeakedAccessKeyID}, Mutates: true})
			}
			plan.Calls = append(plan.Calls,
				actions.Call{Service: "iam", Operation: "CreateAccessKey", Params: map[string]any{"UserName": in.UserName}, Mutates: true},
				actions.Call{Service: "secretsmanager", Operation: "PutSecretValue", Params: map[string]any{"SecretId": in.SecretID, "ClientRequestToken": r.token, "VersionStages": []string{"AWSPENDING"}}, Mutates: true},
				actions.Call{Service: "sts", Operation: "GetCallerIdentity", Params: map[string]any{"with": "the new key"}},
				actions.Call{Service: "secretsmanager", Operation: "UpdateSecretVersionStage", Params: map[string]any{"SecretId": in.SecretID, "VersionStage": "AWSCURRENT", "MoveToVersionId": r.token}, Mutates: true})
			plan.Summary = fmt.Sprintf("would create a new key for %s, store it in %s as AWSPENDING, test it, then make it AWSCURRENT", in.UserName, in.SecretID)
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (actions.Result, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return actions.Result{}, err
			}
			return r.run(ctx)
		},
	})
}

type rotation struct {
	p     *Provider
	env   actions.Env
	in    *RotateKeyParams
	cfg   awssdk.Config
	iam   *iam.Client
	sm    *secretsmanager.Client
	token string // the ClientRequestToken, hence the secret version id
}

func (p *Provider) rotation(ctx context.Context, env actions.Env, in *RotateKeyParams) (*rotation, error) {
	cfg, err := p.config(ctx, in.Account)
	if err != nil {
		return nil, fmt.Errorf("rotate key of %s: %w", in.UserName, err)
	}
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if in.Region != "" {
			o.Region = in.Region
		}
	})
	return &rotation{p: p, env: env, in: in, cfg: cfg, iam: iam.NewFromConfig(cfg), sm: sm, token: tokenFor(env.IdempotencyKey)}, nil
}

// tokenFor derives the secret version's ClientRequestToken from the run and
// step, so that every retry and resume of the step uses the same one.
func tokenFor(key string) string {
	sum := sha256.Sum256([]byte("stanch rotate_key " + key))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // a name-based UUID
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (r *rotation) fail(err error) error {
	return fmt.Errorf("rotate key of %s: %w", r.in.UserName, err)
}

func (r *rotation) run(ctx context.Context) (actions.Result, error) {
	// 1. A version with our token means an earlier attempt got this far.
	stored, stages, err := r.ourVersion(ctx)
	if err != nil {
		return actions.Result{}, r.fail(err)
	}
	if stored == nil {
		if stored, err = r.createAndStore(ctx); err != nil {
			return actions.Result{}, r.fail(err)
		}
	}
	if slices.Contains(stages, "AWSCURRENT") {
		return r.done(ctx, actions.Already, stored)
	}
	// 2. Test the new key before anyone is given it.
	if err := r.test(ctx, stored); err != nil {
		return actions.Result{}, r.fail(err)
	}
	// 3. Promote.
	if err := r.promote(ctx); err != nil {
		return actions.Result{}, r.fail(err)
	}
	crashpoint.Hit("rotate:promoted")
	return r.done(ctx, actions.Done, stored)
}

func (r *rotation) ourVersion(ctx context.Context) (*keySecret, []string, error) {
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(r.in.SecretID), VersionId: awssdk.String(r.token)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, classify(fmt.Errorf("secretsmanager:GetSecretValue: %w", err))
	}
	var ks keySecret
	if err := json.Unmarshal([]byte(awssdk.ToString(out.SecretString)), &ks); err != nil || ks.AccessKeyID == "" {
		return nil, nil, actions.Permanentf("secret version %s is not a key this step wrote", r.token)
	}
	return &ks, out.VersionStages, nil
}

func (r *rotation) keys(ctx context.Context) ([]iamtypes.AccessKeyMetadata, error) {
	out, err := r.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: awssdk.String(r.in.UserName)})
	if err != nil {
		return nil, classify(fmt.Errorf("iam:ListAccessKeys: %w", err))
	}
	return out.AccessKeyMetadata, nil
}

func (r *rotation) twoKeysError(keys []iamtypes.AccessKeyMetadata) error {
	var ids []string
	for _, k := range keys {
		ids = append(ids, fmt.Sprintf("%s (%s)", awssdk.ToString(k.AccessKeyId), k.Status))
	}
	return actions.Permanentf("rotate key of %s: the user already has two access keys, %v, and IAM allows no third; delete one first, or set when_two_keys: %s to delete the leaked key once it is inactive", r.in.UserName, ids, twoKeysDeleteLeaked)
}

// intentStage labels the secret version in which a rotation records the
// keys the user had before it created one: after a crash, any other key is
// the rotation's own, whose secret half was lost, and is replaced.
const intentStage = "STANCH_ROTATION_INTENT"

// keysBefore returns the keys the user had when this rotation started,
// recording them the first time.
func (r *rotation) keysBefore(ctx context.Context, keys []iamtypes.AccessKeyMetadata) ([]string, error) {
	intent := tokenFor(r.env.IdempotencyKey + "/intent")
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(r.in.SecretID), VersionId: awssdk.String(intent)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case err == nil:
		var rec struct {
			KeysBefore []string `json:"keys_before"`
		}
		if err := json.Unmarshal([]byte(awssdk.ToString(out.SecretString)), &rec); err != nil {
			return nil, actions.Permanentf("secret version %s is not this rotation's record", intent)
		}
		return rec.KeysBefore, nil
	case !errors.As(err, &nf):
		return nil, classify(fmt.Errorf("secretsmanager:GetSecretValue: %w", err))
	}
	before := []string{}
	for _, k := range keys {
		before = append(before, awssdk.ToString(k.AccessKeyId))
	}
	rec, _ := json.Marshal(map[string]any{"stanch_rotation": r.env.IdempotencyKey, "keys_before": before})
	if _, err := r.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awssdk.String(r.in.SecretID), ClientRequestToken: awssdk.String(intent),
		SecretString: awssdk.String(string(rec)), VersionStages: []string{intentStage},
	}); err != nil {
		return nil, classify(fmt.Errorf("secretsmanager:PutSecretValue (rotation record): %w", err))
	}
	return before, nil
}

// createAndStore makes the new key and stores it as AWSPENDING, first
// removing any key an interrupted attempt of this rotation created (its
// secret half was lost with that attempt, so it can only be replaced).
func (r *rotation) createAndStore(ctx context.Context) (*keySecret, error) {
	keys, err := r.keys(ctx)
	if err != nil {
		return nil, err
	}
	before, err := r.keysBefore(ctx, keys)
	if err != nil {
		return nil, err
	}
	var kept []iamtypes.AccessKeyMetadata
	for _, k := range keys {
		id := awssdk.ToString(k.AccessKeyId)
		if !slices.Contains(before, id) {
			r.env.Log().Warn("deleting a key an interrupted rotation created", "user", r.in.UserName, "key", id)
			if err := r.deleteKey(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		kept = append(kept, k)
	}
	if len(kept) >= 2 {
		leakedInactive := slices.ContainsFunc(kept, func(k iamtypes.AccessKeyMetadata) bool {
			return awssdk.ToString(k.AccessKeyId) == r.in.LeakedAccessKeyID && k.Status == iamtypes.StatusTypeInactive
		})
		if r.in.WhenTwoKeys != twoKeysDeleteLeaked || !leakedInactive {
			return nil, r.twoKeysError(kept)
		}
		if err := r.deleteKey(ctx, r.in.LeakedAccessKeyID); err != nil {
			return nil, err
		}
	}
	created, err := r.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(r.in.UserName)})
	if err != nil {
		return nil, classify(fmt.Errorf("iam:CreateAccessKey: %w", err))
	}
	crashpoint.Hit("rotate:created")
	ks := &keySecret{UserName: r.in.UserName, AccessKeyID: awssdk.ToString(created.AccessKey.AccessKeyId), SecretAccessKey: awssdk.ToString(created.AccessKey.SecretAccessKey)}
	value, _ := json.Marshal(ks)
	if _, err := r.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awssdk.String(r.in.SecretID), ClientRequestToken: awssdk.String(r.token),
		SecretString: awssdk.String(string(value)), VersionStages: []string{"AWSPENDING"},
	}); err != nil {
		// The new key's secret exists only in memory now; the next attempt
		// recognises the key as its own and replaces it.
		return nil, classify(fmt.Errorf("secretsmanager:PutSecretValue: %w", err))
	}
	crashpoint.Hit("rotate:stored")
	return ks, nil
}

func (r *rotation) deleteKey(ctx context.Context, id string) error {
	_, err := r.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: awssdk.String(r.in.UserName), AccessKeyId: awssdk.String(id)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return classify(fmt.Errorf("iam:DeleteAccessKey %s: %w", id, err))
	}
	return nil
}

// test authenticates with the new key, retrying while IAM propagates it.
func (r *rotation) test(ctx context.Context, ks *keySecret) error {
	cfg := r.cfg.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(ks.AccessKeyID, ks.SecretAccessKey, "")
	c := sts.NewFromConfig(cfg)
	var err error
	for attempt := 1; attempt <= 2*r.p.opts.VerifyAttempts; attempt++ {
		if _, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return actions.Retryable(ctx.Err())
		case <-time.After(r.p.opts.VerifyDelay * time.Duration(attempt)):
		}
	}
	return actions.Retryable(fmt.Errorf("the new key %s does not authenticate yet: %w", ks.AccessKeyID, err))
}

func (r *rotation) promote(ctx context.Context) error {
	desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
	if err != nil {
		return classify(fmt.Errorf("secretsmanager:DescribeSecret: %w", err))
	}
	current := ""
	for id, stages := range desc.VersionIdsToStages {
		if slices.Contains(stages, "AWSCURRENT") {
			current = id
		}
	}
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String(r.in.SecretID), VersionStage: awssdk.String("AWSCURRENT"), MoveToVersionId: awssdk.String(r.token)}
	if current != "" && current != r.token {
		in.RemoveFromVersionId = awssdk.String(current)
	}
	if _, err := r.sm.UpdateSecretVersionStage(ctx, in); err != nil {
		return classify(fmt.Errorf("secretsmanager:UpdateSecretVersionStage AWSCURRENT: %w", err))
	}
	if _, err := r.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: awssdk.String(r.in.SecretID), VersionStage: awssdk.String("AWSPENDING"), RemoveFromVersionId: awssdk.String(r.token),
	}); err != nil {
		return classify(fmt.Errorf("secretsmanager:UpdateSecretVersionStage AWSPENDING: %w", err))
	}
	return nil
}

func (r *rotation) done(ctx context.Context, outcome actions.Outcome, ks *keySecret) (actions.Result, error) {
	cur, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(r.in.SecretID), VersionStage: awssdk.String("AWSCURRENT")})
	if err != nil {
		return actions.Result{}, r.fail(classify(fmt.Errorf("verify: secretsmanager:GetSecretValue: %w", err)))
	}
	if awssdk.ToString(cur.VersionId) != r.token {
		return actions.Result{}, r.fail(actions.Retryable(errors.New("verify: AWSCURRENT is not the new version yet")))
	}
	msg := fmt.Sprintf("new key %s of %s is AWSCURRENT in %s", ks.AccessKeyID, r.in.UserName, awssdk.ToString(cur.Name))
	if outcome == actions.Already {
		msg = "already rotated: " + msg
	}
	return actions.Result{Outcome: outcome, Message: msg, Outputs: map[string]any{
		"new_access_key_id": ks.AccessKeyID, "secret_arn": awssdk.ToString(cur.ARN), "version_id": r.token,
	}}, nil
}
