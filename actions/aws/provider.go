package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/time/rate"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/apicall"
	"github.com/stanchhq/stanch/destinations"
)

// ProviderOptions configure how actions reach AWS.
type ProviderOptions struct {
	// Config returns stanch's own (ambient) configuration. By default the
	// SDK's own configuration is loaded once, on first use. account is the
	// account an action wants to act in; other accounts are reached through
	// Roles on top of what Config returns.
	Config func(ctx context.Context, account string) (aws.Config, error)
	// Roles, when set, are assumed to act in other accounts.
	Roles *ResponseRoles
	// VerifyAttempts and VerifyDelay bound the re-reads that confirm a
	// change took effect (IAM is eventually consistent).
	VerifyAttempts int
	VerifyDelay    time.Duration
	// Destinations say how aws.rotate_key reaches the stores it writes
	// the new key to besides Secrets Manager.
	Destinations destinations.Deps
}

// Provider gives actions AWS clients. Nothing touches the network until an
// action runs, so building actions needs no credentials.
type Provider struct {
	opts ProviderOptions

	mu       sync.Mutex
	ambient  *aws.Config
	identity string                   // the ambient credentials' account, once known
	assumed  map[string]aws.Config    // by account, with cached role credentials
	limiters map[string]*rate.Limiter // CloudTrail lookups, by account/region
	// checkpointEvery is how often, at most, a long step saves how far it
	// got; tests make it every page.
	checkpointEvery time.Duration
}

// NewProvider returns a provider.
func NewProvider(opts ProviderOptions) *Provider {
	if opts.VerifyAttempts <= 0 {
		opts.VerifyAttempts = 5
	}
	if opts.VerifyDelay <= 0 {
		opts.VerifyDelay = 200 * time.Millisecond
	}
	return &Provider{opts: opts, assumed: map[string]aws.Config{}, checkpointEvery: impactCheckpointEvery}
}

// config returns the configuration for acting in account ("" means
// stanch's own account).
func (p *Provider) config(ctx context.Context, account string) (aws.Config, error) {
	cfg, err := p.baseConfig(ctx, account)
	if err != nil {
		return cfg, err
	}
	if account != "" {
		if cfg, err = p.accountConfig(ctx, cfg, account); err != nil {
			return cfg, err
		}
	}
	return p.recorded(cfg, account), nil
}

// recorded returns cfg recording every call its clients make for the
// run's record (apicall), as acting in account (stanch's own when empty).
func (p *Provider) recorded(cfg aws.Config, account string) aws.Config {
	acting := func() string { return account }
	if account == "" {
		// Known once sts:GetCallerIdentity has answered: the calls made
		// before it are recorded without their account.
		acting = func() string {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.identity
		}
	}
	cfg = cfg.Copy()
	// Clipped so that the append never writes into the array the
	// cached configuration's options live in.
	cfg.APIOptions = append(slices.Clip(cfg.APIOptions), apicall.AWS(acting))
	return cfg
}

func (p *Provider) baseConfig(ctx context.Context, account string) (aws.Config, error) {
	if p.opts.Config != nil {
		return p.opts.Config(ctx, account)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ambient == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return aws.Config{}, actions.Permanent(fmt.Errorf("load AWS configuration: %w", err))
		}
		// Without credentials every call would fail the same way, after the
		// SDK's slow probe of the instance metadata service, and retrying
		// cannot help: say so once. Nothing is kept, so credentials that
		// appear later (a fixed environment, an instance role back) are
		// found by the next step.
		if cfg.Credentials == nil {
			return aws.Config{}, actions.Permanent(&NoCredentialsError{Err: errors.New("no credential provider")})
		}
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			if ctx.Err() != nil {
				return aws.Config{}, actions.Retryable(fmt.Errorf("load AWS credentials: %w", err))
			}
			return aws.Config{}, actions.Permanent(&NoCredentialsError{Err: err})
		}
		p.ambient = &cfg
	}
	return *p.ambient, nil
}

// NoCredentialsError says the SDK's credential chain found no credentials.
type NoCredentialsError struct{ Err error }

func (e *NoCredentialsError) Error() string {
	return "no AWS credentials found: set AWS_PROFILE (a profile of ~/.aws/config), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
		"or run stanch where a role is available (EC2 instance profile, ECS task role, EKS web identity); see docs/configuration.md"
}

func (e *NoCredentialsError) Unwrap() error { return e.Err }

func (p *Provider) iam(ctx context.Context, account string) (*iam.Client, error) {
	cfg, err := p.config(ctx, account)
	if err != nil {
		return nil, err
	}
	return iam.NewFromConfig(cfg), nil
}

func (p *Provider) sts(ctx context.Context, account string) (*sts.Client, error) {
	cfg, err := p.config(ctx, account)
	if err != nil {
		return nil, err
	}
	return sts.NewFromConfig(cfg), nil
}

// ambientAccount returns the account the ambient credentials act in,
// asking STS once.
func (p *Provider) ambientAccount(ctx context.Context) (string, error) {
	p.mu.Lock()
	known := p.identity
	p.mu.Unlock()
	if known != "" {
		return known, nil
	}
	c, err := p.sts(ctx, "")
	if err != nil {
		return "", err
	}
	out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", classify(fmt.Errorf("sts:GetCallerIdentity: %w", err))
	}
	p.mu.Lock()
	p.identity = aws.ToString(out.Account)
	p.mu.Unlock()
	return aws.ToString(out.Account), nil
}

// Actions returns every AWS action, sharing p.
func Actions(p *Provider) []actions.Action {
	return []actions.Action{identifyKey(p), deactivateKey(p), revokeSessions(p), cloudTrailImpact(p), rotateKey(p), quarantine(p, false), quarantine(p, true), deleteKey(p), containDerived(p)}
}

// acting returns the account an action acts in: account, or the one
// stanch's own credentials act in when it is empty.
func (p *Provider) acting(ctx context.Context, account string) (string, error) {
	if account != "" {
		return account, nil
	}
	return p.ambientAccount(ctx)
}

// keyAccount returns the account an action on keyID acts in (account, or
// stanch's own when empty), after making sure the key belongs to it: an
// action never acts on, nor reports "already done" about, a key of another
// account. When the run has identified the key's owner the runner has
// checked the account already; otherwise STS says whose the key is.
func (p *Provider) keyAccount(ctx context.Context, env actions.Env, keyID, account string) (string, []actions.Call, error) {
	acting, err := p.acting(ctx, account)
	if err != nil {
		return "", nil, err
	}
	if env.Owner.Credential == keyID && env.Owner.Account == acting {
		return acting, nil, nil
	}
	c, err := p.sts(ctx, "")
	if err != nil {
		return "", nil, err
	}
	calls := []actions.Call{{Service: "sts", Operation: "GetAccessKeyInfo", Params: map[string]any{"AccessKeyId": keyID}, Made: true}}
	info, err := c.GetAccessKeyInfo(ctx, &sts.GetAccessKeyInfoInput{AccessKeyId: aws.String(keyID)})
	if err != nil {
		return "", calls, classify(fmt.Errorf("find the account of %s: sts:GetAccessKeyInfo: %w", keyID, err))
	}
	if owner := aws.ToString(info.Account); owner != acting {
		return "", calls, actions.Permanentf("%s belongs to account %s, not to account %s where this step acts; nothing was changed. "+
			"Identify the key first (aws.identify_key) so that every step acts in its account, or give account: %s", keyID, owner, acting, owner)
	}
	return acting, calls, nil
}
