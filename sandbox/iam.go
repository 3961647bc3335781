package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (s *Sandbox) iamOperation(action string) func(*request) (result, *apiError) {
	return map[string]func(*request) (result, *apiError){
		"GetAccessKeyLastUsed":     s.getAccessKeyLastUsed,
		"ListAccessKeys":           s.listAccessKeys,
		"UpdateAccessKey":          s.updateAccessKey,
		"CreateAccessKey":          s.createAccessKey,
		"DeleteAccessKey":          s.deleteAccessKey,
		"GetUser":                  s.getUser,
		"PutUserPolicy":            s.putPolicy(userPolicies),
		"GetUserPolicy":            s.getPolicy(userPolicies),
		"ListUserPolicies":         s.listPolicies(userPolicies),
		"DeleteUserPolicy":         s.deletePolicy(userPolicies),
		"PutRolePolicy":            s.putPolicy(rolePolicies),
		"GetRolePolicy":            s.getPolicy(rolePolicies),
		"ListRolePolicies":         s.listPolicies(rolePolicies),
		"DeleteRolePolicy":         s.deletePolicy(rolePolicies),
		"AttachUserPolicy":         s.attach(userAttachments, true),
		"DetachUserPolicy":         s.attach(userAttachments, false),
		"ListAttachedUserPolicies": s.listAttached(userAttachments),
		"AttachRolePolicy":         s.attach(roleAttachments, true),
		"DetachRolePolicy":         s.attach(roleAttachments, false),
		"ListAttachedRolePolicies": s.listAttached(roleAttachments),
		"GetPolicy":                s.getManagedPolicy,
	}[action]
}

func arnOfUser(a *account, u *user) string { return "arn:aws:iam::" + a.id + ":user/" + u.name }

// userOf resolves the UserName parameter, defaulting to the caller's own
// user as IAM does for long-term credentials.
func (s *Sandbox) userOf(req *request) (*user, *apiError) {
	name := req.form.Get("UserName")
	if name == "" {
		if req.caller.user == nil {
			return nil, errValidation("UserName is required when the caller is not an IAM user")
		}
		return req.caller.user, nil
	}
	u, ok := req.caller.account.users[name]
	if !ok {
		return nil, errNoSuchEntity("The user with name %s cannot be found.", name)
	}
	return u, nil
}

// keyOf finds AccessKeyId among the keys of u.
func keyOf(req *request, u *user) (*key, *apiError) {
	id := req.form.Get("AccessKeyId")
	if id == "" {
		return nil, errValidation("1 validation error detected: Value null at 'accessKeyId' failed to satisfy constraint: Member must not be null")
	}
	for _, k := range u.keys {
		if k.id == id {
			return k, nil
		}
	}
	return nil, errNoSuchEntity("The Access Key with id %s cannot be found.", id)
}

type accessKeyLastUsed struct {
	LastUsedDate string `xml:"LastUsedDate,omitempty"`
	ServiceName  string `xml:"ServiceName"`
	Region       string `xml:"Region"`
}

type getAccessKeyLastUsedResult struct {
	UserName          string            `xml:"UserName"`
	AccessKeyLastUsed accessKeyLastUsed `xml:"AccessKeyLastUsed"`
}

func (s *Sandbox) getAccessKeyLastUsed(req *request) (result, *apiError) {
	id := req.form.Get("AccessKeyId")
	k, ok := s.keys[id]
	if !ok || k.account != req.caller.account || k.user == nil {
		// IAM does not say whether a key it will not show you exists.
		return result{}, &apiError{http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: iam:GetAccessKeyLastUsed on resource: access key %s", s.callerARN(req.caller), id)}
	}
	used := accessKeyLastUsed{ServiceName: "N/A", Region: "N/A"}
	if k.lastUsed != nil {
		used = accessKeyLastUsed{LastUsedDate: awsTime(k.lastUsed.Date), ServiceName: k.lastUsed.Service, Region: k.lastUsed.Region}
	}
	return result{body: getAccessKeyLastUsedResult{UserName: k.user.name, AccessKeyLastUsed: used}}, nil
}

type accessKeyMetadata struct {
	UserName    string `xml:"UserName"`
	AccessKeyID string `xml:"AccessKeyId"`
	Status      string `xml:"Status"`
	CreateDate  string `xml:"CreateDate"`
}

type listAccessKeysResult struct {
	AccessKeyMetadata []accessKeyMetadata `xml:"AccessKeyMetadata>member"`
	IsTruncated       bool                `xml:"IsTruncated"`
}

func (s *Sandbox) listAccessKeys(req *request) (result, *apiError) {
	u, err := s.userOf(req)
	if err != nil {
		return result{}, err
	}
	res := listAccessKeysResult{AccessKeyMetadata: []accessKeyMetadata{}}
	for _, k := range u.keys {
		res.AccessKeyMetadata = append(res.AccessKeyMetadata, accessKeyMetadata{UserName: u.name, AccessKeyID: k.id, Status: k.status, CreateDate: awsTime(k.created)})
	}
	return result{body: res}, nil
}

func (s *Sandbox) updateAccessKey(req *request) (result, *apiError) {
	u, err := s.userOf(req)
	if err != nil {
		return result{}, err
	}
	k, err := keyOf(req, u)
	if err != nil {
		return result{}, err
	}
	status := req.form.Get("Status")
	if status != statusActive && status != statusInactive {
		return result{}, errValidation("1 validation error detected: Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", status)
	}
	changed := k.status != status
	k.status = status
	return result{effective: changed}, nil
}

type accessKey struct {
	UserName        string `xml:"UserName"`
	AccessKeyID     string `xml:"AccessKeyId"`
	Status          string `xml:"Status"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	CreateDate      string `xml:"CreateDate"`
}

type createAccessKeyResult struct {
	AccessKey accessKey `xml:"AccessKey"`
}

func (s *Sandbox) createAccessKey(req *request) (result, *apiError) {
	u, err := s.userOf(req)
	if err != nil {
		return result{}, err
	}
	if len(u.keys) >= 2 {
		return result{}, &apiError{http.StatusConflict, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2"}
	}
	k := &key{id: newID("AKIA", 16), secret: newSecret(), status: statusActive, created: time.Now().UTC().Truncate(time.Second), account: req.caller.account, user: u}
	u.keys = append(u.keys, k)
	s.keys[k.id] = k
	return result{effective: true, body: createAccessKeyResult{AccessKey: accessKey{UserName: u.name, AccessKeyID: k.id, Status: k.status, SecretAccessKey: k.secret, CreateDate: awsTime(k.created)}}}, nil
}

func (s *Sandbox) deleteAccessKey(req *request) (result, *apiError) {
	u, err := s.userOf(req)
	if err != nil {
		return result{}, err
	}
	k, err := keyOf(req, u)
	if err != nil {
		return result{}, err
	}
	for i, other := range u.keys {
		if other == k {
			u.keys = append(u.keys[:i], u.keys[i+1:]...)
			break
		}
	}
	delete(s.keys, k.id)
	if s.deleted == nil {
		s.deleted = map[string]*account{}
	}
	s.deleted[k.id] = k.account
	return result{effective: true}, nil
}

type iamUser struct {
	Path       string `xml:"Path"`
	UserName   string `xml:"UserName"`
	UserID     string `xml:"UserId"`
	Arn        string `xml:"Arn"`
	CreateDate string `xml:"CreateDate"`
}

type getUserResult struct {
	User iamUser `xml:"User"`
}

func (s *Sandbox) getUser(req *request) (result, *apiError) {
	u, err := s.userOf(req)
	if err != nil {
		return result{}, err
	}
	return result{body: getUserResult{User: iamUser{Path: "/", UserName: u.name, UserID: u.id, Arn: arnOfUser(req.caller.account, u), CreateDate: awsTime(u.created)}}}, nil
}

// policyHolder is a user or a role, seen through its inline policies.
type policyHolder struct {
	param    string // UserName or RoleName
	policies func(req *request) (map[string]string, *apiError)
}

var userPolicies = policyHolder{param: "UserName", policies: func(req *request) (map[string]string, *apiError) {
	name := req.form.Get("UserName")
	u, ok := req.caller.account.users[name]
	if !ok {
		return nil, errNoSuchEntity("The user with name %s cannot be found.", name)
	}
	return u.policies, nil
}}

var rolePolicies = policyHolder{param: "RoleName", policies: func(req *request) (map[string]string, *apiError) {
	name := req.form.Get("RoleName")
	r, ok := req.caller.account.roles[name]
	if !ok {
		return nil, errNoSuchEntity("The role with name %s cannot be found.", name)
	}
	return r.policies, nil
}}

func (s *Sandbox) putPolicy(h policyHolder) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		policies, err := h.policies(req)
		if err != nil {
			return result{}, err
		}
		name, doc := req.form.Get("PolicyName"), req.form.Get("PolicyDocument")
		if name == "" {
			return result{}, errValidation("PolicyName is required")
		}
		if !json.Valid([]byte(doc)) {
			return result{}, &apiError{http.StatusBadRequest, "MalformedPolicyDocument", "Syntax errors in policy."}
		}
		changed := policies[name] != doc
		policies[name] = doc
		return result{effective: changed}, nil
	}
}

type policyDocumentResult struct {
	XMLName        struct{} `xml:"-"`
	UserName       string   `xml:"UserName,omitempty"`
	RoleName       string   `xml:"RoleName,omitempty"`
	PolicyName     string   `xml:"PolicyName"`
	PolicyDocument string   `xml:"PolicyDocument"`
}

func (s *Sandbox) getPolicy(h policyHolder) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		policies, err := h.policies(req)
		if err != nil {
			return result{}, err
		}
		name := req.form.Get("PolicyName")
		doc, ok := policies[name]
		if !ok {
			return result{}, errNoSuchEntity("The %s policy with name %s cannot be found.", strings.TrimSuffix(strings.ToLower(h.param), "name"), name)
		}
		res := policyDocumentResult{PolicyName: name, PolicyDocument: policyEscape(doc)}
		if h.param == "UserName" {
			res.UserName = req.form.Get("UserName")
		} else {
			res.RoleName = req.form.Get("RoleName")
		}
		return result{body: res}, nil
	}
}

// policyEscape URL-encodes a policy document as IAM returns it.
func policyEscape(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

type listPoliciesResult struct {
	PolicyNames []string `xml:"PolicyNames>member"`
	IsTruncated bool     `xml:"IsTruncated"`
}

func (s *Sandbox) listPolicies(h policyHolder) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		policies, err := h.policies(req)
		if err != nil {
			return result{}, err
		}
		return result{body: listPoliciesResult{PolicyNames: append([]string{}, sortedKeys(policies)...)}}, nil
	}
}

func (s *Sandbox) deletePolicy(h policyHolder) func(*request) (result, *apiError) {
	return func(req *request) (result, *apiError) {
		policies, err := h.policies(req)
		if err != nil {
			return result{}, err
		}
		name := req.form.Get("PolicyName")
		if _, ok := policies[name]; !ok {
			return result{}, errNoSuchEntity("The %s policy with name %s cannot be found.", strings.TrimSuffix(strings.ToLower(h.param), "name"), name)
		}
		delete(policies, name)
		return result{effective: true}, nil
	}
}
