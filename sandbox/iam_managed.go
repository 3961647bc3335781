package sandbox

import (
	"net/http"
	"slices"
	"strings"
)

// awsManagedPolicies are the AWS managed policies the sandbox knows; any
// customer policy ARN of the caller's account is accepted too.
var awsManagedPolicies = []string{
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
	"arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV4",
	"arn:aws:iam::aws:policy/AdministratorAccess",
	"arn:aws:iam::aws:policy/ReadOnlyAccess",
}

// maxManagedPolicies is IAM's quota of managed policies per user or role.
const maxManagedPolicies = 10

// attachments is a user's or a role's list of attached managed policies.
type attachments func(req *request) (*[]string, *apiError)

var userAttachments attachments = func(req *request) (*[]string, *apiError) {
	name := req.form.Get("UserName")
	u, ok := req.caller.account.users[name]
	if !ok {
		return nil, errNoSuchEntity("The user with name %s cannot be found.", name)
	}
	return &u.managed, nil
}

var roleAttachments attachments = func(req *request) (*[]string, *apiError) {
	name := req.form.Get("RoleName")
	r, ok := req.caller.account.roles[name]
	if !ok {
		return nil, errNoSuchEntity("The role with name %s cannot be found.", name)
	}
	return &r.managed, nil
}

func (s *Sandbox) attach(of attachments, attach bool) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		list, err := of(req)
		if err != nil {
			return result{}, err
		}
		arn := req.form.Get("PolicyArn")
		if !slices.Contains(awsManagedPolicies, arn) && !strings.HasPrefix(arn, "arn:aws:iam::"+req.caller.account.id+":policy/") {
			return result{}, errNoSuchEntity("Policy %s does not exist or is not attachable.", arn)
		}
		i := slices.Index(*list, arn)
		switch {
		case attach && i >= 0:
			return result{}, nil // attaching again changes nothing, as in IAM
		case attach && len(*list) >= maxManagedPolicies:
			return result{}, &apiError{http.StatusConflict, "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 10"}
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
		list, err := of(req)
		if err != nil {
			return result{}, err
		}
		res := listAttachedResult{AttachedPolicies: []attachedPolicy{}}
		for _, arn := range *list {
			res.AttachedPolicies = append(res.AttachedPolicies, attachedPolicy{PolicyName: arn[strings.LastIndexByte(arn, '/')+1:], PolicyArn: arn})
		}
		return result{body: res}, nil
	}
}
