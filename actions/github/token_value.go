package github

import (
	"context"
	"fmt"
	"net/http"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/leaked"
)

// LeakedValue returns the leaked token whose fingerprint (alert.Fingerprint)
// is fp, for the actions that revoke tokens with the token itself: from
// this process's memory (leaked.Process), else, when the token was reported
// by a GitHub secret-scanning alert (repo and number given), from the
// alert, which GitHub keeps with its secret. fromAlert may be nil (GitHub is
// not configured). Without either, the error is permanent and says how a
// person revokes the token at revokeHow. The value never appears in an
// error.
func LeakedValue(ctx context.Context, fp, repo string, number int, fromAlert AlertSecret, what, revokeHow string) (string, error) {
	if v, ok := leaked.Process.Lookup(fp); ok {
		return v, nil
	}
	if repo != "" && number > 0 && fromAlert != nil {
		v, err := fromAlert(ctx, repo, number, fp)
		if err != nil {
			return "", err
		}
		leaked.Process.Remember(v)
		return v, nil
	}
	where := "no GitHub secret-scanning alert was named (repository and alert_number) to read it again from"
	if repo != "" && number > 0 {
		where = "GitHub is not configured, so the secret-scanning alert that reported it cannot be read again"
	}
	return "", actions.Permanentf("%s %s cannot be revoked by stanch: revoking it takes the token itself, stanch never stores token values, and this process has not seen it (it arrived before a restart, or in another process); %s. A person can revoke it: %s", what, fp, where, revokeHow)
}

// AlertSecret reads the secret of secret-scanning alert number of repo and
// returns it if its fingerprint is fp.
type AlertSecret func(ctx context.Context, repo string, number int, fp string) (string, error)

// AlertSecret returns the function that reads a leaked token again from the
// secret-scanning alert that reported it, or nil when GitHub is not
// configured. It needs secret_scanning_alerts: read.
func (p *Provider) AlertSecret() AlertSecret {
	if !p.Configured() {
		return nil
	}
	return p.alertSecret
}

func (p *Provider) alertSecret(ctx context.Context, repo string, number int, fp string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", actions.Permanent(err)
	}
	client, err := p.Client()
	if err != nil {
		return "", err
	}
	what := fmt.Sprintf("secret-scanning alert %s/%s#%d", owner, name, number)
	req, err := client.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/secret-scanning/alerts/%d", owner, name, number), nil)
	if err != nil {
		return "", actions.Permanent(fmt.Errorf("read %s: %w", what, err))
	}
	var a struct {
		Secret string `json:"secret"`
	}
	if _, err := client.Do(ctx, req, &a); err != nil {
		return "", classify(fmt.Errorf("read the token again from %s: %w", what, err), "the GitHub App permission secret_scanning_alerts:read, or a token with the repo or security_events scope")
	}
	if a.Secret == "" {
		return "", actions.Permanentf("%s holds no secret (GitHub answered without it)", what)
	}
	if got := alert.Fingerprint(a.Secret); got != fp {
		return "", actions.Permanentf("%s holds a different secret (%s), not %s: check the step's repository and alert_number", what, got, fp)
	}
	return a.Secret, nil
}
