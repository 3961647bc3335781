package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stanchhq/stanch/actions"
)

// ResponseRoles says how stanch acts in accounts other than the one its own
// credentials belong to: it assumes a response role there.
type ResponseRoles struct {
	// ARN is the role to assume, with {account} standing for the account
	// id: arn:aws:iam::{account}:role/stanch-responder.
	ARN string
	// ExternalID is presented with every AssumeRole (the confused-deputy
	// guard the roles' trust policies should require).
	ExternalID string
	// SessionName names the sessions in the accounts' CloudTrail; default
	// "stanch".
	SessionName string
	// Accounts overrides the role per account.
	Accounts map[string]ResponseRole
}

// ResponseRole is the role for one account.
type ResponseRole struct {
	ARN        string
	ExternalID string
}

// roleFor returns the role to assume in account, if any is configured.
func (r *ResponseRoles) roleFor(account string) (ResponseRole, bool) {
	if r == nil {
		return ResponseRole{}, false
	}
	if role, ok := r.Accounts[account]; ok {
		if role.ExternalID == "" {
			role.ExternalID = r.ExternalID
		}
		return role, role.ARN != ""
	}
	if r.ARN == "" {
		return ResponseRole{}, false
	}
	return ResponseRole{ARN: strings.ReplaceAll(r.ARN, "{account}", account), ExternalID: r.ExternalID}, true
}

// NoRoleError says an action needs an account stanch cannot act in.
type NoRoleError struct {
	Account string // the account the action needs
	Ambient string // the account stanch's own credentials act in
}

func (e *NoRoleError) Error() string {
	return fmt.Sprintf("stanch's credentials act in account %s and no response role is configured for account %s; configure one (aws.response_roles in the configuration) or run stanch with credentials of that account", e.Ambient, e.Account)
}

// accountConfig returns the configuration for acting in account: the
// ambient one for stanch's own account, else the account's response role,
// whose credentials are cached and renewed before they expire.
func (p *Provider) accountConfig(ctx context.Context, base aws.Config, account string) (aws.Config, error) {
	ambient, err := p.ambientAccount(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	if account == ambient {
		return base, nil
	}
	role, ok := p.opts.Roles.roleFor(account)
	if !ok {
		return aws.Config{}, actions.Permanent(&NoRoleError{Account: account, Ambient: ambient})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cfg, ok := p.assumed[account]; ok {
		return cfg, nil
	}
	session := "stanch"
	if p.opts.Roles.SessionName != "" {
		session = p.opts.Roles.SessionName
	}
	assume := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(p.recorded(base, ambient)), role.ARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = session
		if role.ExternalID != "" {
			o.ExternalID = aws.String(role.ExternalID)
		}
	})
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(assume)
	p.assumed[account] = cfg
	return cfg, nil
}
