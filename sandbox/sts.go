package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Sandbox) stsOperation(action string) func(*request) (result, *apiError) {
	return map[string]func(*request) (result, *apiError){
		"GetAccessKeyInfo":  s.getAccessKeyInfo,
		"GetCallerIdentity": s.getCallerIdentity,
		"AssumeRole":        s.assumeRole,
		"GetSessionToken":   s.getSessionToken,
	}[action]
}

type getAccessKeyInfoResult struct {
	Account string `xml:"Account"`
}

// getAccessKeyInfo answers for any key of any account, as STS does: the
// account is encoded in the key id itself.
func (s *Sandbox) getAccessKeyInfo(req *request) (result, *apiError) {
	id := req.form.Get("AccessKeyId")
	if k, ok := s.keys[id]; ok {
		return result{body: getAccessKeyInfoResult{Account: k.account.id}}, nil
	}
	if a, ok := s.deleted[id]; ok {
		return result{body: getAccessKeyInfoResult{Account: a.id}}, nil
	}
	return result{}, &apiError{http.StatusBadRequest, "InvalidParameterValue", "the sandbox has no access key " + id}
}

type getCallerIdentityResult struct {
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
}

func (s *Sandbox) getCallerIdentity(req *request) (result, *apiError) {
	k := req.caller
	res := getCallerIdentityResult{Account: k.account.id, Arn: s.callerARN(k)}
	if k.user != nil {
		res.UserID = k.user.id
	} else {
		res.UserID = k.role.id + ":stanch-sandbox"
	}
	return result{body: res}, nil
}

func (s *Sandbox) callerARN(k *key) string {
	if k.user != nil {
		return arnOfUser(k.account, k.user)
	}
	return "arn:aws:sts::" + k.account.id + ":assumed-role/" + k.role.name + "/stanch-sandbox"
}

type credentialsXML struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type assumeRoleResult struct {
	Credentials     credentialsXML  `xml:"Credentials"`
	AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
}

// assumeRole mints role-session credentials in the role's account for a
// caller from a trusted account presenting the right external ID.
func (s *Sandbox) assumeRole(req *request) (result, *apiError) {
	arn := req.form.Get("RoleArn")
	accountID, name, ok := parseRoleARN(arn)
	sessionName := req.form.Get("RoleSessionName")
	if !ok || sessionName == "" {
		return result{}, errValidation("RoleArn must be arn:aws:iam::ACCOUNT:role/NAME and RoleSessionName is required")
	}
	denied := &apiError{http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", s.callerARN(req.caller), arn)}
	a, ok := s.accounts[accountID]
	if !ok {
		return result{}, denied
	}
	r, ok := a.roles[name]
	if !ok || !slices.Contains(r.trusted, req.caller.account.id) || req.form.Get("ExternalId") != r.externalID {
		return result{}, denied
	}
	k := s.mintSession(a, nil, r, req.form.Get("DurationSeconds"))
	return result{body: assumeRoleResult{
		Credentials:     k.credentials(),
		AssumedRoleUser: assumedRoleUser{AssumedRoleID: r.id + ":" + sessionName, Arn: "arn:aws:sts::" + a.id + ":assumed-role/" + r.name + "/" + sessionName},
	}}, nil
}

type getSessionTokenResult struct {
	Credentials credentialsXML `xml:"Credentials"`
}

// getSessionToken mints temporary credentials for the calling IAM user:
// what an attacker does to outlive the deactivation of a leaked key.
func (s *Sandbox) getSessionToken(req *request) (result, *apiError) {
	if req.caller.user == nil || !req.caller.expires.IsZero() {
		return result{}, &apiError{http.StatusForbidden, "AccessDenied", "Cannot call GetSessionToken with session credentials"}
	}
	k := s.mintSession(req.caller.account, req.caller.user, nil, req.form.Get("DurationSeconds"))
	return result{body: getSessionTokenResult{Credentials: k.credentials()}}, nil
}

func (s *Sandbox) mintSession(a *account, u *user, r *role, duration string) *key {
	d := time.Hour
	if secs, err := strconv.Atoi(duration); err == nil && secs >= 900 && secs <= 129600 {
		d = time.Duration(secs) * time.Second
	}
	k := &key{id: newID("ASIA", 16), secret: newSecret(), status: statusActive, created: time.Now().UTC(), account: a, user: u, role: r,
		expires: time.Now().Add(d).UTC().Truncate(time.Second), token: newSecret() + newSecret()}
	s.keys[k.id] = k
	return k
}

func (k *key) credentials() credentialsXML {
	return credentialsXML{AccessKeyID: k.id, SecretAccessKey: k.secret, SessionToken: k.token, Expiration: awsTime(k.expires)}
}

func parseRoleARN(arn string) (account, name string, ok bool) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	if !ok {
		return "", "", false
	}
	account, name, ok = strings.Cut(rest, ":role/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:] // role paths: the name is the last part
	}
	return account, name, ok && len(account) == 12 && name != ""
}
