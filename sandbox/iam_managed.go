package sandbox

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// IAM managed policies: the AWS managed ones the sandbox knows, customer
// policies seeded per account, and their attachments to users and roles.

// awsManagedPolicies are the AWS managed policies the sandbox knows.
var awsManagedPolicies = []string{
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV4",
	"arn:aws:iam::aws:policy/AdministratorAccess",
	"arn:aws:iam::aws:policy/ReadOnlyAccess",
}

// maxManagedPolicies is IAM's default quota of managed policies attached to
// one user (PoliciesPerUser) or one role (PoliciesPerRole).
const maxManagedPolicies = 10

// SeedCustomerPolicy is a customer managed policy of an account, attachable
// as arn:aws:iam::ACCOUNT:policy/NAME.
type SeedCustomerPolicy struct {
	Name     string `yaml:"name" json:"name"`
	Document string `yaml:"document" json:"document"`
}

// customerPolicy is a customer managed policy held by an account.
type customerPolicy struct {
	name     string
	document string
	created  time.Time
}

func customerPolicyARN(accountID, name string) string {
	return "arn:aws:iam::" + accountID + ":policy/" + name
}

// validateManagedSeed checks an account's customer policies and every
// managed policy its users and roles have attached.
func validateManagedSeed(a SeedAccount) error {
	known := map[string]bool{}
	for _, arn := range awsManagedPolicies {
		known[arn] = true
	}
	for _, p := range a.CustomerPolicies {
		arn := customerPolicyARN(a.ID, p.Name)
		if p.Name == "" || strings.ContainsAny(p.Name, "/: ") || known[arn] {
			return fmt.Errorf("account %s: customer policy name %q is empty, repeated or not a policy name", a.ID, p.Name)
		}
		known[arn] = true
	}
	check := func(kind, name string, arns []string) error {
		if len(arns) > maxManagedPolicies {
			return fmt.Errorf("account %s: %s %s has %d managed policies; IAM allows %d", a.ID, kind, name, len(arns), maxManagedPolicies)
		}
		for i, arn := range arns {
			if !known[arn] {
				return fmt.Errorf("account %s: %s %s: managed policy %q is neither an AWS managed policy the sandbox knows nor one of the account's customer_policies", a.ID, kind, name, arn)
			}
			if slices.Contains(arns[:i], arn) {
				return fmt.Errorf("account %s: %s %s: managed policy %q is listed twice", a.ID, kind, name, arn)
			}
		}
		return nil
	}
	for _, u := range a.Users {
		if err := check("user", u.Name, u.ManagedPolicies); err != nil {
			return err
		}
	}
	for _, r := range a.Roles {
		if err := check("role", r.Name, r.ManagedPolicies); err != nil {
			return err
		}
	}
	return nil
}

// seedManaged gives a its customer policies and its users and roles their
// attached managed policies; seed.validate has checked them.
func (a *account) seedManaged(sa SeedAccount, created time.Time) {
	a.customerPolicies = map[string]*customerPolicy{}
	for _, p := range sa.CustomerPolicies {
		a.customerPolicies[customerPolicyARN(a.id, p.Name)] = &customerPolicy{name: p.Name, document: p.Document, created: created}
	}
	for _, su := range sa.Users {
		a.users[su.Name].managed = slices.Clone(su.ManagedPolicies)
	}
	for _, sr := range sa.Roles {
		a.roles[sr.Name].managed = slices.Clone(sr.ManagedPolicies)
	}
}

// policyKnown reports whether arn names a policy the caller's account can
// attach.
func policyKnown(a *account, arn string) bool {
	if slices.Contains(awsManagedPolicies, arn) {
		return true
	}
	_, ok := a.customerPolicies[arn]
	return ok
}

// attachments is a user's or a role's list of attached managed policies.
type attachments struct {
	quota string // the IAM quota name in LimitExceeded
	of    func(req *request) (*[]string, *apiError)
}

var userAttachments = attachments{quota: "PoliciesPerUser", of: func(req *request) (*[]string, *apiError) {
	name := req.form.Get("UserName")
	u, ok := req.caller.account.users[name]
	if !ok {
		return nil, errNoSuchEntity("The user with name %s cannot be found.", name)
	}
	return &u.managed, nil
}}

var roleAttachments = attachments{quota: "PoliciesPerRole", of: func(req *request) (*[]string, *apiError) {
	name := req.form.Get("RoleName")
	r, ok := req.caller.account.roles[name]
	if !ok {
		return nil, errNoSuchEntity("The role with name %s cannot be found.", name)
	}
	return &r.managed, nil
}}

// attach serves Attach{User,Role}Policy (attach true) and
// Detach{User,Role}Policy. Attaching an attached policy succeeds and
// changes nothing, as in IAM.
func (s *Sandbox) attach(to attachments, attach bool) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		list, err := to.of(req)
		if err != nil {
			return result{}, err
		}
		arn := req.form.Get("PolicyArn")
		if arn == "" {
			return result{}, errValidation("1 validation error detected: Value null at 'policyArn' failed to satisfy constraint: Member must not be null")
		}
		if !policyKnown(req.caller.account, arn) {
			return result{}, errNoSuchEntity("Policy %s does not exist or is not attachable.", arn)
		}
		i := slices.Index(*list, arn)
		switch {
		case attach && i >= 0:
			return result{}, nil
		case attach && len(*list) >= maxManagedPolicies:
			return result{}, &apiError{http.StatusConflict, "LimitExceeded", fmt.Sprintf("Cannot exceed quota for %s: %d", to.quota, maxManagedPolicies)}
		case attach:
			*list = append(*list, arn)
		case i < 0:
			return result{}, errNoSuchEntity("Policy %s was not found.", arn)
		default:
			*list = slices.Delete(*list, i, i+1)
		}
		return result{effective: true}, nil
	}
}

type attachedPolicy struct {
	PolicyName string `xml:"PolicyName"`
	PolicyArn  string `xml:"PolicyArn"`
}

type listAttachedResult struct {
	AttachedPolicies []attachedPolicy `xml:"AttachedPolicies>member"`
	IsTruncated      bool             `xml:"IsTruncated"`
}

func (s *Sandbox) listAttached(of attachments) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		list, err := of.of(req)
		if err != nil {
			return result{}, err
		}
		res := listAttachedResult{AttachedPolicies: []attachedPolicy{}}
		for _, arn := range *list {
			res.AttachedPolicies = append(res.AttachedPolicies, attachedPolicy{PolicyName: policyName(arn), PolicyArn: arn})
		}
		return result{body: res}, nil
	}
}

func policyName(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

type managedPolicy struct {
	PolicyName                    string `xml:"PolicyName"`
	DefaultVersionID              string `xml:"DefaultVersionId"`
	PolicyID                      string `xml:"PolicyId"`
	Path                          string `xml:"Path"`
	Arn                           string `xml:"Arn"`
	AttachmentCount               int    `xml:"AttachmentCount"`
	PermissionsBoundaryUsageCount int    `xml:"PermissionsBoundaryUsageCount"`
	IsAttachable                  bool   `xml:"IsAttachable"`
	CreateDate                    string `xml:"CreateDate"`
	UpdateDate                    string `xml:"UpdateDate"`
}

type getPolicyResult struct {
	Policy managedPolicy `xml:"Policy"`
}

// awsManagedCreated is when the sandbox's AWS managed policies claim to
// have been created.
var awsManagedCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// getManagedPolicy serves GetPolicy; AttachmentCount counts the caller
// account's users and roles.
func (s *Sandbox) getManagedPolicy(req *request) (result, *apiError) {
	arn := req.form.Get("PolicyArn")
	a := req.caller.account
	if arn == "" {
		return result{}, errValidation("1 validation error detected: Value null at 'policyArn' failed to satisfy constraint: Member must not be null")
	}
	if !policyKnown(a, arn) {
		return result{}, errNoSuchEntity("Policy %s was not found.", arn)
	}
	created := awsManagedCreated
	if p, ok := a.customerPolicies[arn]; ok {
		created = p.created
	}
	count := 0
	for _, u := range a.users {
		if slices.Contains(u.managed, arn) {
			count++
		}
	}
	for _, r := range a.roles {
		if slices.Contains(r.managed, arn) {
			count++
		}
	}
	return result{body: getPolicyResult{Policy: managedPolicy{
		PolicyName:       policyName(arn),
		DefaultVersionID: "v1",
		PolicyID:         policyID(arn),
		Path:             "/",
		Arn:              arn,
		AttachmentCount:  count,
		IsAttachable:     true,
		CreateDate:       awsTime(created),
		UpdateDate:       awsTime(created),
	}}}, nil
}

// policyID derives a stable ANPA… id from the ARN, so that GetPolicy gives
// the same answer every time.
func policyID(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	b := make([]byte, 17)
	for i := range b {
		b[i] = idAlphabet[int(sum[i])%len(idAlphabet)]
	}
	return "ANPA" + string(b)
}
