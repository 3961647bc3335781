package aws

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/internal/crashpoint"
)

// RotateKeyParams are the parameters of aws.rotate_key.
type RotateKeyParams struct {
	UserName          string `json:"user_name" target:"user" doc:"the IAM user whose key is replaced; default: the owner the run identified"`
	LeakedAccessKeyID string `json:"leaked_access_key_id" target:"credential" doc:"the leaked key being replaced; default: the run's credential once identified"`
	SecretID          string `json:"secret_id" required:"true" doc:"name or ARN of the Secrets Manager secret the key's consumers read"`
	WhenTwoKeys       string `json:"when_two_keys" doc:"the user already has two keys: stop (the default: fail, saying what to do) or delete_leaked_if_inactive"`
	WhenNoSecret      string `json:"when_no_secret" doc:"the secret does not exist: skip (the default: no consumer reads the key from there, so no new key is created and the step ends noop), create (create the secret and store the new key in it) or fail"`
	Account           string `json:"account" target:"account" doc:"the user's account; default: the owner's account once identified, else stanch's own"`
	Region            string `json:"region" doc:"the secret's region (default: the configured region)"`
}

// secretResource is the ARN pattern of the secrets a rotation writes: the
// step's secret_id, with Secrets Manager's six-character suffix.
const secretResource = "arn:aws:secretsmanager:*:*:secret:{secret_id}*"

const (
	twoKeysStop         = "stop"
	twoKeysDeleteLeaked = "delete_leaked_if_inactive"

	noSecretSkip   = "skip"
	noSecretCreate = "create"
	noSecretFail   = "fail"

	stageCurrent = "AWSCURRENT"
	stagePending = "AWSPENDING"
)

// keySecret is what the secret holds: the common single-JSON layout.
type keySecret struct {
	UserName        string `json:"UserName"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

// String and LogValue keep the secret half out of any message or log that
// a careless %v or slog attribute would otherwise put it in.
func (k keySecret) String() string {
	return fmt.Sprintf("{%s %s [REDACTED]}", k.UserName, k.AccessKeyID)
}

func (k keySecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", k.UserName), slog.String("key", k.AccessKeyID))
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
			{Name: "iam:GetAccessKeyLastUsed", Why: "never take a key that has been used for one an interrupted attempt left"},
			{Name: "iam:CreateAccessKey", Why: "create the replacement key"},
			{Name: "iam:DeleteAccessKey", Why: "remove a key an interrupted attempt created, or the inactive leaked key when the user has two"},
			{Name: "secretsmanager:DescribeSecret", Why: "find the current version and the versions that hold keys", Resource: secretResource},
			{Name: "secretsmanager:CreateSecret", Why: "create the secret when it is missing (when_no_secret: create)", Resource: secretResource},
			{Name: "secretsmanager:GetSecretValue", Why: "recognise the version this step wrote and the keys the secret holds", Resource: secretResource},
			{Name: "secretsmanager:PutSecretValue", Why: "store the new key as AWSPENDING", Resource: secretResource},
			{Name: "secretsmanager:UpdateSecretVersionStage", Why: "promote it to AWSCURRENT", Resource: secretResource},
			{Name: "sts:GetCallerIdentity", Why: "test the new key before promoting it"},
		},
		Example: `- id: rotate
  action: aws.rotate_key
  approval: {approvers: [security-oncall], timeout: 4h}
  with:
    secret_id: iam-user/${{ steps.identify.outputs.user_name }}
    when_two_keys: delete_leaked_if_inactive
    when_no_secret: skip
`,
		Validate: func(in *RotateKeyParams) error {
			if in.UserName == "" || in.LeakedAccessKeyID == "" {
				return errors.New("needs user_name and leaked_access_key_id: identify the key in an earlier step (aws.identify_key), whose owner every later step acts on, or give both")
			}
			switch in.WhenNoSecret {
			case "":
				in.WhenNoSecret = noSecretSkip
			case noSecretSkip, noSecretCreate, noSecretFail:
			default:
				return fmt.Errorf("when_no_secret %q: want %s, %s or %s", in.WhenNoSecret, noSecretSkip, noSecretCreate, noSecretFail)
			}
			switch in.WhenTwoKeys {
			case "":
				in.WhenTwoKeys = twoKeysStop
			case twoKeysStop, twoKeysDeleteLeaked:
			default:
				return fmt.Errorf("when_two_keys %q: want %s or %s", in.WhenTwoKeys, twoKeysStop, twoKeysDeleteLeaked)
			}
			if strings.HasPrefix(in.LeakedAccessKeyID, "ASIA") {
				return fmt.Errorf("leaked_access_key_id %s is a temporary (role session) credential: there is no user key to rotate", in.LeakedAccessKeyID)
			}
			return checkKeyID(in.LeakedAccessKeyID)
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (actions.Plan, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return actions.Plan{}, err
			}
			return r.plan(ctx)
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (actions.Result, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return actions.Result{}, err
			}
			res, err := r.run(ctx)
			if err != nil {
				return actions.Result{}, r.fail(err)
			}
			return res, nil
		},
	})
}

type rotation struct {
	p       *Provider
	env     actions.Env
	in      *RotateKeyParams
	account string // where the user and the secret are
	cfg     awssdk.Config
	iam     *iam.Client
	sm      *secretsmanager.Client
	token   string // the ClientRequestToken, hence the secret version id
}

func (p *Provider) rotation(ctx context.Context, env actions.Env, in *RotateKeyParams) (*rotation, error) {
	account, _, err := p.keyAccount(ctx, env, in.LeakedAccessKeyID, in.Account)
	if err != nil {
		return nil, fmt.Errorf("rotate key of %s: %w", in.UserName, err)
	}
	cfg, err := p.config(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("rotate key of %s: %w", in.UserName, err)
	}
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if in.Region != "" {
			o.Region = in.Region
		}
	})
	return &rotation{p: p, env: env, in: in, account: account, cfg: cfg, iam: iam.NewFromConfig(cfg), sm: sm, token: tokenFor(env.IdempotencyKey)}, nil
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
	return fmt.Errorf("rotate key of %s in account %s: %w", r.in.UserName, r.account, err)
}

// where names the user for people: "user ci-bot in account 444455556666".
func (r *rotation) where() string {
	return fmt.Sprintf("user %s in account %s", r.in.UserName, r.account)
}

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

func (r *rotation) plan(ctx context.Context) (actions.Plan, error) {
	st, err := r.inspect(ctx)
	plan := actions.Plan{Calls: st.calls}
	if err != nil {
		return plan, r.fail(err)
	}
	if st.missing && r.in.WhenNoSecret == noSecretSkip {
		plan.Summary = r.noSecret()
		plan.Settled = actions.NoOp
		plan.Outputs = map[string]any{"new_access_key_id": "", "secret_arn": "", "version_id": ""}
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
	plan.Outputs = map[string]any{"secret_arn": st.arn}
	if st.ours != nil {
		plan.Outputs["new_access_key_id"] = st.ours.AccessKeyID
		plan.Outputs["version_id"] = r.token
		switch {
		case slices.Contains(st.oursStages, stageCurrent):
			plan.Summary = fmt.Sprintf("already rotated: new key %s of %s is AWSCURRENT in %s", st.ours.AccessKeyID, r.where(), r.in.SecretID)
			plan.Settled = actions.Already
		case slices.Contains(st.oursStages, stagePending):
			plan.Summary = fmt.Sprintf("would test key %s, which an earlier attempt stored in %s as AWSPENDING, then make it AWSCURRENT", st.ours.AccessKeyID, r.in.SecretID)
			plan.Calls = append(plan.Calls, promote...)
		default:
			plan.Summary = fmt.Sprintf("key %s was rotated in and has since been replaced in %s: nothing to change", st.ours.AccessKeyID, r.in.SecretID)
			plan.Settled = actions.Already
		}
		return plan, nil
	}
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
	plan.Calls = append(plan.Calls, promote...)
	plan.Summary = fmt.Sprintf("would create a new key for %s, store it in %s as AWSPENDING, test it, then make it AWSCURRENT", r.where(), r.in.SecretID)
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

func (r *rotation) run(ctx context.Context) (actions.Result, error) {
	st, err := r.inspect(ctx)
	if err != nil {
		return actions.Result{}, err
	}
	if st.missing && r.in.WhenNoSecret == noSecretSkip {
		return actions.Result{Outcome: actions.NoOp, Message: r.noSecret(), Outputs: map[string]any{"new_access_key_id": "", "secret_arn": "", "version_id": ""}}, nil
	}
	if st.ours != nil {
		return r.resume(ctx, st)
	}
	for _, id := range st.orphans {
		r.env.Log().Warn("deleting a key an interrupted attempt of this rotation created and never stored", "user", r.in.UserName, "account", r.account, "key", id)
		if err := r.deleteKey(ctx, id); err != nil {
			return actions.Result{}, err
		}
		r.env.Record(actions.Effect{Description: fmt.Sprintf("deleted access key %s of %s, which an interrupted attempt created and never stored", id, r.where()), Irreversible: true})
	}
	deleteLeaked, err := r.room(st, false)
	if err != nil {
		return actions.Result{}, err
	}
	if deleteLeaked {
		r.env.Log().Info("deleting the inactive leaked key to make room", "user", r.in.UserName, "account", r.account, "key", r.in.LeakedAccessKeyID)
		if err := r.deleteKey(ctx, r.in.LeakedAccessKeyID); err != nil {
			return actions.Result{}, err
		}
		r.env.Record(actions.Effect{Description: fmt.Sprintf("deleted the leaked access key %s of %s to make room for the new one", r.in.LeakedAccessKeyID, r.where()), Irreversible: true})
	}
	if st.missing {
		// Before the key: a secret that cannot be created leaves no key
		// behind.
		_, err := r.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String(r.in.SecretID)})
		var exists *smtypes.ResourceExistsException
		if err != nil && !errors.As(err, &exists) {
			return actions.Result{}, classify(fmt.Errorf("secretsmanager:CreateSecret %s: %w", r.in.SecretID, err))
		}
		if err == nil {
			r.env.Record(actions.Effect{Description: fmt.Sprintf("created secret %s in account %s", r.in.SecretID, r.account)})
		}
	}
	created, err := r.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(r.in.UserName)})
	if err != nil {
		return actions.Result{}, classify(fmt.Errorf("iam:CreateAccessKey: %w", err))
	}
	crashpoint.Hit("rotate:created")
	ks := &keySecret{UserName: r.in.UserName, AccessKeyID: awssdk.ToString(created.AccessKey.AccessKeyId), SecretAccessKey: awssdk.ToString(created.AccessKey.SecretAccessKey)}
	r.env.Log().Info("created the replacement key", "user", r.in.UserName, "account", r.account, "key", ks.AccessKeyID)
	r.env.Record(actions.Effect{Description: fmt.Sprintf("created access key %s for %s", ks.AccessKeyID, r.where())})
	value, err := json.Marshal(ks)
	if err != nil {
		return actions.Result{}, actions.Permanent(fmt.Errorf("encode the secret value: %w", err))
	}
	if _, err := r.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awssdk.String(r.in.SecretID), ClientRequestToken: awssdk.String(r.token),
		SecretString: awssdk.String(string(value)), VersionStages: []string{stagePending},
	}); err != nil {
		// The new key's secret half is lost with this attempt: the next one
		// finds the key an orphan and replaces it.
		return actions.Result{}, classify(fmt.Errorf("secretsmanager:PutSecretValue: %w", err))
	}
	crashpoint.Hit("rotate:stored")
	r.env.Record(actions.Effect{Description: fmt.Sprintf("stored the new key %s in secret %s of account %s as AWSPENDING (version %s)", ks.AccessKeyID, r.in.SecretID, r.account, r.token)})
	return r.finish(ctx, st, ks)
}

// resume carries on from the version an earlier attempt stored.
func (r *rotation) resume(ctx context.Context, st *rotationState) (actions.Result, error) {
	switch {
	case slices.Contains(st.oursStages, stageCurrent):
		if slices.Contains(st.oursStages, stagePending) {
			// The attempt died between the two halves of the promotion.
			if err := r.clearPending(ctx); err != nil {
				return actions.Result{}, err
			}
		}
		return r.done(ctx, actions.Already, st.ours)
	case slices.Contains(st.oursStages, stagePending):
		listed, err := listedStatus(ctx, r.iam, r.in.UserName, st.ours.AccessKeyID)
		if err != nil {
			if errors.Is(err, errKeyNotListed) {
				return actions.Result{}, actions.Permanentf("key %s, stored as AWSPENDING in version %s by an earlier attempt, no longer exists: remove AWSPENDING from that version, then run the step again under a new run", st.ours.AccessKeyID, r.token)
			}
			return actions.Result{}, err
		}
		if listed != statusActive {
			return actions.Result{}, actions.Permanentf("key %s, stored as AWSPENDING by an earlier attempt, is %s now: someone changed it; nothing was promoted", st.ours.AccessKeyID, listed)
		}
		return r.finish(ctx, st, st.ours)
	default:
		// Promoted once, then replaced by a later rotation: promoting it
		// again would roll that rotation back.
		return actions.Result{Outcome: actions.Already, Message: fmt.Sprintf("key %s of %s was rotated into %s and has since been replaced there (version %s is no longer AWSCURRENT): nothing changed", st.ours.AccessKeyID, r.in.UserName, r.in.SecretID, r.token),
			Outputs: map[string]any{"new_access_key_id": st.ours.AccessKeyID, "secret_arn": st.arn, "version_id": r.token}}, nil
	}
}

// finish tests the stored key and promotes it.
func (r *rotation) finish(ctx context.Context, st *rotationState, ks *keySecret) (actions.Result, error) {
	if err := r.test(ctx, ks); err != nil {
		return actions.Result{}, err
	}
	current := st.current
	if current == "" {
		// The secret had no current version when the step looked: the
		// first version stored becomes current by itself.
		desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
		if err != nil {
			return actions.Result{}, classify(fmt.Errorf("secretsmanager:DescribeSecret %s: %w", r.in.SecretID, err))
		}
		for id, stages := range desc.VersionIdsToStages {
			if slices.Contains(stages, stageCurrent) {
				current = id
			}
		}
	}
	if current != r.token {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: awssdk.String(r.in.SecretID), VersionStage: awssdk.String(stageCurrent), MoveToVersionId: awssdk.String(r.token)}
		if current != "" {
			in.RemoveFromVersionId = awssdk.String(current)
		}
		if _, err := r.sm.UpdateSecretVersionStage(ctx, in); err != nil {
			return actions.Result{}, classify(fmt.Errorf("secretsmanager:UpdateSecretVersionStage AWSCURRENT: %w", err))
		}
	}
	r.env.Record(actions.Effect{Description: fmt.Sprintf("made the new key %s AWSCURRENT in secret %s of account %s", ks.AccessKeyID, r.in.SecretID, r.account)})
	if err := r.clearPending(ctx); err != nil {
		return actions.Result{}, err
	}
	crashpoint.Hit("rotate:promoted")
	return r.done(ctx, actions.Done, ks)
}

func (r *rotation) clearPending(ctx context.Context) error {
	if _, err := r.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: awssdk.String(r.in.SecretID), VersionStage: awssdk.String(stagePending), RemoveFromVersionId: awssdk.String(r.token),
	}); err != nil {
		return classify(fmt.Errorf("secretsmanager:UpdateSecretVersionStage AWSPENDING: %w", err))
	}
	return nil
}

func (r *rotation) deleteKey(ctx context.Context, id string) error {
	_, err := r.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: awssdk.String(r.in.UserName), AccessKeyId: awssdk.String(id)})
	var nse *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &nse) {
		return classify(fmt.Errorf("iam:DeleteAccessKey %s: %w", id, err))
	}
	return nil
}

// test authenticates with the new key, retrying with backoff while IAM
// propagates it. A key that never authenticates leaves the step retryable:
// the next attempt resumes from the stored AWSPENDING version.
func (r *rotation) test(ctx context.Context, ks *keySecret) error {
	cfg := r.cfg.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(ks.AccessKeyID, ks.SecretAccessKey, "")
	c := sts.NewFromConfig(cfg)
	delay := r.p.opts.VerifyDelay
	var err error
	for attempt := 1; ; attempt++ {
		var out *sts.GetCallerIdentityOutput
		if out, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
			if arn := awssdk.ToString(out.Arn); !strings.HasSuffix(arn, ":user/"+r.in.UserName) && !strings.HasSuffix(arn, "/"+r.in.UserName) {
				return actions.Permanentf("the new key %s authenticates as %s, not as user %s", ks.AccessKeyID, arn, r.in.UserName)
			}
			return nil
		}
		if attempt >= 2*r.p.opts.VerifyAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return actions.Retryable(fmt.Errorf("test the new key %s: %w", ks.AccessKeyID, ctx.Err()))
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	return actions.Retryable(fmt.Errorf("the new key %s does not authenticate yet (sts:GetCallerIdentity): %w", ks.AccessKeyID, err))
}

// done verifies that AWSCURRENT is this step's version and reports it.
func (r *rotation) done(ctx context.Context, outcome actions.Outcome, ks *keySecret) (actions.Result, error) {
	desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
	if err != nil {
		return actions.Result{}, classify(fmt.Errorf("verify: secretsmanager:DescribeSecret: %w", err))
	}
	if !slices.Contains(desc.VersionIdsToStages[r.token], stageCurrent) {
		return actions.Result{}, actions.Retryable(fmt.Errorf("verify: AWSCURRENT of %s is not version %s yet", r.in.SecretID, r.token))
	}
	msg := fmt.Sprintf("new key %s of %s is AWSCURRENT in %s", ks.AccessKeyID, r.where(), awssdk.ToString(desc.Name))
	if outcome == actions.Already {
		msg = "already rotated: " + msg
	}
	r.env.Log().Info("rotated", "user", r.in.UserName, "account", r.account, "key", ks.AccessKeyID, "secret", awssdk.ToString(desc.ARN), "version", r.token)
	return actions.Result{Outcome: outcome, Message: msg, Outputs: map[string]any{
		"new_access_key_id": ks.AccessKeyID, "secret_arn": awssdk.ToString(desc.ARN), "version_id": r.token,
	}}, nil
}
