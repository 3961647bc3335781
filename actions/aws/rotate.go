package aws

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/destinations"
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
	// Destinations are the other stores the key's consumers read; Secrets
	// Manager (secret_id) comes first and holds the new key while the
	// rotation is unfinished.
	Destinations []destinations.Spec `json:"destinations" doc:"further stores to write the new key to, in order, after Secrets Manager and before it is promoted there: vault_kv, azure_key_vault, github_actions or sops, one per item (docs/rotation.md)"`
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

// RotateKeyOutputs are the outputs of aws.rotate_key. The new key's secret
// half is not among them: it goes only to Secrets Manager.
type RotateKeyOutputs struct {
	NewAccessKeyID string `json:"new_access_key_id" doc:"the replacement key's id (its secret is only in Secrets Manager)"`
	SecretARN      string `json:"secret_arn" doc:"the secret holding it"`
	VersionID      string `json:"version_id" doc:"the secret version, AWSCURRENT now"`
}

type (
	rotatePlan   = actions.PlanOf[RotateKeyOutputs]
	rotateResult = actions.ResultOf[RotateKeyOutputs]
)

func provisionRotate(in *RotateKeyParams) {
	if in.WhenNoSecret == "" {
		in.WhenNoSecret = noSecretSkip
	}
	if in.WhenTwoKeys == "" {
		in.WhenTwoKeys = twoKeysStop
	}
}

func rotateKey(p *Provider) actions.Action {
	return actions.New(actions.Definition[RotateKeyParams, RotateKeyOutputs]{
		Name:    "aws.rotate_key",
		Summary: "Create a replacement access key and deliver it to Secrets Manager (AWSPENDING, tested, then AWSCURRENT); crash-safe and never creates two.",
		Permissions: append([]actions.Permission{
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
		}, destinations.Permissions()...),
		Example: `- id: rotate
  action: aws.rotate_key
  approval: {approvers: [security-oncall], timeout: 4h}
  with:
    secret_id: iam-user/${{ steps.identify.outputs.user_name }}
    when_two_keys: delete_leaked_if_inactive
    when_no_secret: skip
`,
		Provision: provisionRotate,
		Validate: func(in RotateKeyParams) error {
			if in.UserName == "" || in.LeakedAccessKeyID == "" {
				return errors.New("needs user_name and leaked_access_key_id: identify the key in an earlier step (aws.identify_key), whose owner every later step acts on, or give both")
			}
			switch in.WhenNoSecret {
			case noSecretSkip, noSecretCreate, noSecretFail:
			default:
				return fmt.Errorf("when_no_secret %q: want %s, %s or %s", in.WhenNoSecret, noSecretSkip, noSecretCreate, noSecretFail)
			}
			switch in.WhenTwoKeys {
			case twoKeysStop, twoKeysDeleteLeaked:
			default:
				return fmt.Errorf("when_two_keys %q: want %s or %s", in.WhenTwoKeys, twoKeysStop, twoKeysDeleteLeaked)
			}
			if err := destinations.Check(in.Destinations); err != nil {
				return err
			}
			if strings.HasPrefix(in.LeakedAccessKeyID, "ASIA") {
				return fmt.Errorf("leaked_access_key_id %s is a temporary (role session) credential: there is no user key to rotate", in.LeakedAccessKeyID)
			}
			return checkKeyID(in.LeakedAccessKeyID)
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (rotatePlan, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return rotatePlan{}, err
			}
			return r.plan(ctx)
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *RotateKeyParams) (rotateResult, error) {
			r, err := p.rotation(ctx, env, in)
			if err != nil {
				return rotateResult{}, err
			}
			res, err := r.run(ctx)
			if err != nil {
				return rotateResult{}, r.fail(err)
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
	// dests are the stores written after Secrets Manager, in order.
	dests []destinations.Destination
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
	dests, err := destinations.Build(in.Destinations, p.opts.Destinations)
	if err != nil {
		return nil, actions.Permanent(fmt.Errorf("rotate key of %s: %w", in.UserName, err))
	}
	return &rotation{p: p, env: env, in: in, account: account, cfg: cfg, iam: iam.NewFromConfig(cfg), sm: sm, token: tokenFor(env.IdempotencyKey), dests: dests}, nil
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

func (r *rotation) run(ctx context.Context) (rotateResult, error) {
	st, err := r.inspect(ctx)
	if err != nil {
		return rotateResult{}, err
	}
	if st.missing && r.in.WhenNoSecret == noSecretSkip {
		return rotateResult{Outcome: actions.NoOp, Message: r.noSecret(), Outputs: &RotateKeyOutputs{}}, nil
	}
	if st.ours != nil {
		return r.resume(ctx, st)
	}
	for _, id := range st.orphans {
		r.env.Log().Warn("deleting a key an interrupted attempt of this rotation created and never stored", "user", r.in.UserName, "account", r.account, "key", id)
		if err := r.deleteKey(ctx, id); err != nil {
			return rotateResult{}, err
		}
		r.env.Record(actions.Effect{Description: fmt.Sprintf("deleted access key %s of %s, which an interrupted attempt created and never stored", id, r.where()), Irreversible: true})
	}
	deleteLeaked, err := r.room(st, false)
	if err != nil {
		return rotateResult{}, err
	}
	if deleteLeaked {
		r.env.Log().Info("deleting the inactive leaked key to make room", "user", r.in.UserName, "account", r.account, "key", r.in.LeakedAccessKeyID)
		if err := r.deleteKey(ctx, r.in.LeakedAccessKeyID); err != nil {
			return rotateResult{}, err
		}
		r.env.Record(actions.Effect{Description: fmt.Sprintf("deleted the leaked access key %s of %s to make room for the new one", r.in.LeakedAccessKeyID, r.where()), Irreversible: true})
	}
	if st.missing {
		// Before the key: a secret that cannot be created leaves no key
		// behind.
		_, err := r.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String(r.in.SecretID)})
		var exists *smtypes.ResourceExistsException
		if err != nil && !errors.As(err, &exists) {
			return rotateResult{}, classify(fmt.Errorf("secretsmanager:CreateSecret %s: %w", r.in.SecretID, err))
		}
		if err == nil {
			r.env.Record(actions.Effect{Description: fmt.Sprintf("created secret %s in account %s", r.in.SecretID, r.account)})
		}
	}
	created, err := r.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: awssdk.String(r.in.UserName)})
	if err != nil {
		return rotateResult{}, classify(fmt.Errorf("iam:CreateAccessKey: %w", err))
	}
	crashpoint.Hit("rotate:created")
	ks := &keySecret{UserName: r.in.UserName, AccessKeyID: awssdk.ToString(created.AccessKey.AccessKeyId), SecretAccessKey: awssdk.ToString(created.AccessKey.SecretAccessKey)}
	r.env.Log().Info("created the replacement key", "user", r.in.UserName, "account", r.account, "key", ks.AccessKeyID)
	r.env.Record(actions.Effect{Description: fmt.Sprintf("created access key %s for %s", ks.AccessKeyID, r.where())})
	value, err := json.Marshal(ks)
	if err != nil {
		return rotateResult{}, actions.Permanent(fmt.Errorf("encode the secret value: %w", err))
	}
	if _, err := r.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awssdk.String(r.in.SecretID), ClientRequestToken: awssdk.String(r.token),
		SecretString: awssdk.String(string(value)), VersionStages: []string{stagePending},
	}); err != nil {
		// The new key's secret half is lost with this attempt: the next one
		// finds the key an orphan and replaces it.
		return rotateResult{}, classify(fmt.Errorf("secretsmanager:PutSecretValue: %w", err))
	}
	crashpoint.Hit("rotate:stored")
	r.env.Record(actions.Effect{Description: fmt.Sprintf("stored the new key %s in secret %s of account %s as AWSPENDING (version %s)", ks.AccessKeyID, r.in.SecretID, r.account, r.token)})
	return r.finish(ctx, st, ks)
}

// resume carries on from the version an earlier attempt stored.
func (r *rotation) resume(ctx context.Context, st *rotationState) (rotateResult, error) {
	switch {
	case slices.Contains(st.oursStages, stageCurrent):
		if slices.Contains(st.oursStages, stagePending) {
			// The attempt died between the two halves of the promotion.
			if err := r.clearPending(ctx); err != nil {
				return rotateResult{}, err
			}
		}
		return r.done(ctx, actions.Already, st.ours)
	case slices.Contains(st.oursStages, stagePending):
		listed, err := listedStatus(ctx, r.iam, r.in.UserName, st.ours.AccessKeyID)
		if err != nil {
			if errors.Is(err, errKeyNotListed) {
				return rotateResult{}, actions.Permanentf("key %s, stored as AWSPENDING in version %s by an earlier attempt, no longer exists: remove AWSPENDING from that version, then run the step again under a new run", st.ours.AccessKeyID, r.token)
			}
			return rotateResult{}, err
		}
		if listed != statusActive {
			return rotateResult{}, actions.Permanentf("key %s, stored as AWSPENDING by an earlier attempt, is %s now: someone changed it; nothing was promoted", st.ours.AccessKeyID, listed)
		}
		return r.finish(ctx, st, st.ours)
	default:
		// Promoted once, then replaced by a later rotation: promoting it
		// again would roll that rotation back.
		return rotateResult{Outcome: actions.Already, Message: fmt.Sprintf("key %s of %s was rotated into %s and has since been replaced there (version %s is no longer AWSCURRENT): nothing changed", st.ours.AccessKeyID, r.in.UserName, r.in.SecretID, r.token),
			Outputs: &RotateKeyOutputs{NewAccessKeyID: st.ours.AccessKeyID, SecretARN: st.arn, VersionID: r.token}}, nil
	}
}

// finish tests the stored key, delivers it to the other destinations and
// promotes it.
func (r *rotation) finish(ctx context.Context, st *rotationState, ks *keySecret) (rotateResult, error) {
	if err := r.test(ctx, ks); err != nil {
		return rotateResult{}, err
	}
	if err := r.deliver(ctx, ks); err != nil {
		return rotateResult{}, err
	}
	current := st.current
	if current == "" {
		// The secret had no current version when the step looked: the
		// first version stored becomes current by itself.
		desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
		if err != nil {
			return rotateResult{}, classify(fmt.Errorf("secretsmanager:DescribeSecret %s: %w", r.in.SecretID, err))
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
			return rotateResult{}, classify(fmt.Errorf("secretsmanager:UpdateSecretVersionStage AWSCURRENT: %w", err))
		}
	}
	r.env.Record(actions.Effect{Description: fmt.Sprintf("made the new key %s AWSCURRENT in secret %s of account %s", ks.AccessKeyID, r.in.SecretID, r.account)})
	if err := r.clearPending(ctx); err != nil {
		return rotateResult{}, err
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
func (r *rotation) done(ctx context.Context, outcome actions.Outcome, ks *keySecret) (rotateResult, error) {
	desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(r.in.SecretID)})
	if err != nil {
		return rotateResult{}, classify(fmt.Errorf("verify: secretsmanager:DescribeSecret: %w", err))
	}
	if !slices.Contains(desc.VersionIdsToStages[r.token], stageCurrent) {
		return rotateResult{}, actions.Retryable(fmt.Errorf("verify: AWSCURRENT of %s is not version %s yet", r.in.SecretID, r.token))
	}
	msg := fmt.Sprintf("new key %s of %s is AWSCURRENT in %s", ks.AccessKeyID, r.where(), awssdk.ToString(desc.Name))
	if outcome == actions.Already {
		msg = "already rotated: " + msg
	}
	r.env.Log().Info("rotated", "user", r.in.UserName, "account", r.account, "key", ks.AccessKeyID, "secret", awssdk.ToString(desc.ARN), "version", r.token)
	return rotateResult{Outcome: outcome, Message: msg, Outputs: &RotateKeyOutputs{
		NewAccessKeyID: ks.AccessKeyID, SecretARN: awssdk.ToString(desc.ARN), VersionID: r.token,
	}}, nil
}

// deliver writes the new key to every further destination, in order,
// skipping those that hold it already (an earlier attempt wrote them), and
// reads each back. A destination that fails stops the step, naming what
// holds the key and what does not: Secrets Manager keeps it as AWSPENDING,
// and the step's next attempt goes on from there, with the same key.
func (r *rotation) deliver(ctx context.Context, ks *keySecret) error {
	if len(r.dests) == 0 {
		return nil
	}
	cred := destinations.Credential{
		ID:     ks.AccessKeyID,
		Fields: map[string]string{"UserName": ks.UserName, "AccessKeyId": ks.AccessKeyID, "SecretAccessKey": ks.SecretAccessKey},
		Secret: map[string]bool{"SecretAccessKey": true},
	}
	mark := destinations.Mark{RunID: r.env.RunID, StepID: r.env.StepID, Since: r.env.StepStartedAt}
	held := []string{fmt.Sprintf("Secrets Manager secret %s (AWSPENDING)", r.in.SecretID)}
	for i, d := range r.dests {
		stop := func(err error) error {
			var rest []string
			for _, later := range r.dests[i+1:] {
				rest = append(rest, later.Describe())
			}
			msg := fmt.Sprintf("new key %s: %s failed: %v. It is in: %s", ks.AccessKeyID, d.Describe(), err, strings.Join(held, ", "))
			if len(rest) > 0 {
				msg += "; not written yet: " + strings.Join(rest, ", ")
			}
			msg += "; a retry of the step goes on from there with the same key"
			if actions.KindOf(err) == actions.KindPermanent {
				return actions.Permanent(errors.New(msg))
			}
			return actions.Retryable(errors.New(msg))
		}
		ok, err := d.Holds(ctx, cred, mark)
		if err != nil {
			return stop(err)
		}
		if !ok {
			what, err := d.Write(ctx, cred, mark)
			if err != nil {
				return stop(err)
			}
			crashpoint.Hit(fmt.Sprintf("rotate:delivered:%d", i))
			r.env.Record(actions.Effect{Description: fmt.Sprintf("wrote the new key %s to %s (%s)", ks.AccessKeyID, d.Describe(), what)})
			if ok, err = d.Holds(ctx, cred, mark); err != nil {
				return stop(fmt.Errorf("verify: %w", err))
			}
			if !ok {
				return stop(actions.Retryable(errors.New("verify: reading it back does not give the new key")))
			}
		}
		held = append(held, d.Describe())
	}
	return nil
}
