package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Secrets Manager over JSON 1.1: versions, staging labels and the
// ClientRequestToken idempotency that rotation relies on.

// SeedSecret is a secret with one AWSCURRENT version.
type SeedSecret struct {
	Name   string `yaml:"name" json:"name"`
	Region string `yaml:"region" json:"region"` // default us-east-1
	Value  string `yaml:"value" json:"value"`
}

const (
	stageCurrent  = "AWSCURRENT"
	stagePending  = "AWSPENDING"
	stagePrevious = "AWSPREVIOUS"
)

type secret struct {
	name, arn string
	versions  map[string]*secretVersion
}

type secretVersion struct {
	id      string
	value   string
	stages  []string
	created time.Time
}

func (a *account) addSecret(ss SeedSecret) *secret {
	region := ss.Region
	if region == "" {
		region = "us-east-1"
	}
	sec := &secret{name: ss.Name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", region, a.id, ss.Name, strings.ToLower(newID("", 6))), versions: map[string]*secretVersion{}}
	a.secrets[region+"/"+ss.Name] = sec
	if ss.Value != "" {
		id := newRequestID()
		sec.versions[id] = &secretVersion{id: id, value: ss.Value, stages: []string{stageCurrent}, created: time.Now().UTC()}
	}
	return sec
}

// SecretValue returns the value of a secret's version with stage, for tests.
func (s *Sandbox) SecretValue(accountID, region, name, stage string) (value, versionID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, found := s.accounts[accountID]
	if !found {
		return "", "", false
	}
	sec, found := a.secrets[region+"/"+name]
	if !found {
		return "", "", false
	}
	if v := sec.withStage(stage); v != nil {
		return v.value, v.id, true
	}
	return "", "", false
}

func (sec *secret) withStage(stage string) *secretVersion {
	for _, v := range sec.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

// label moves stage to v, taking it from whichever version had it; a moved
// AWSCURRENT leaves AWSPREVIOUS on the version it left.
func (sec *secret) label(v *secretVersion, stage string) {
	for _, other := range sec.versions {
		if other == v {
			continue
		}
		if i := slices.Index(other.stages, stage); i >= 0 {
			other.stages = slices.Delete(other.stages, i, i+1)
			if stage == stageCurrent {
				sec.label(other, stagePrevious)
			}
		}
	}
	if !slices.Contains(v.stages, stage) {
		v.stages = append(v.stages, stage)
	}
}

func (s *Sandbox) secretsManagerOperation(action string) func(*request) (result, *apiError) {
	return map[string]func(*request) (result, *apiError){
		"CreateSecret":             s.createSecret,
		"DescribeSecret":           s.describeSecret,
		"GetSecretValue":           s.getSecretValue,
		"PutSecretValue":           s.putSecretValue,
		"UpdateSecretVersionStage": s.updateSecretVersionStage,
		"ListSecretVersionIds":     s.listSecretVersionIds,
	}[action]
}

func smError(code, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// findSecret resolves SecretId (a name or an ARN) in the caller's account
// and the signing region.
func (s *Sandbox) findSecret(req *request, id string) (*secret, *apiError) {
	a := req.caller.account
	if sec, ok := a.secrets[req.region+"/"+id]; ok {
		return sec, nil
	}
	for _, sec := range a.secrets {
		if sec.arn == id {
			return sec, nil
		}
	}
	return nil, smError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

type createSecretInput struct {
	Name               string `json:"Name"`
	SecretString       string `json:"SecretString"`
	ClientRequestToken string `json:"ClientRequestToken"`
}

func (s *Sandbox) createSecret(req *request) (result, *apiError) {
	var in createSecretInput
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	if in.Name == "" {
		return result{}, smError("InvalidParameterException", "Name is required.")
	}
	if _, ok := req.caller.account.secrets[req.region+"/"+in.Name]; ok {
		return result{}, smError("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	sec := req.caller.account.addSecret(SeedSecret{Name: in.Name, Region: req.region})
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	if in.SecretString != "" {
		id := in.ClientRequestToken
		if id == "" {
			id = newRequestID()
		}
		sec.versions[id] = &secretVersion{id: id, value: in.SecretString, stages: []string{stageCurrent}, created: time.Now().UTC()}
		out["VersionId"] = id
	}
	return result{body: out, effective: true}, nil
}

type secretIDInput struct {
	SecretID     string `json:"SecretId"`
	VersionID    string `json:"VersionId"`
	VersionStage string `json:"VersionStage"`
}

func (in secretIDInput) secretID() string { return in.SecretID }

// secretRequest decodes a request that names a secret, and finds it.
func secretRequest[T interface{ secretID() string }](s *Sandbox, req *request) (T, *secret, *apiError) {
	var in T
	if err := decodeJSON(req, &in); err != nil {
		return in, nil, err
	}
	sec, err := s.findSecret(req, in.secretID())
	return in, sec, err
}

func (s *Sandbox) describeSecret(req *request) (result, *apiError) {
	_, sec, err := secretRequest[secretIDInput](s, req)
	if err != nil {
		return result{}, err
	}
	stages := map[string][]string{}
	for id, v := range sec.versions {
		if len(v.stages) > 0 {
			stages[id] = v.stages
		}
	}
	return result{body: map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionIdsToStages": stages}}, nil
}

func (s *Sandbox) getSecretValue(req *request) (result, *apiError) {
	in, sec, err := secretRequest[secretIDInput](s, req)
	if err != nil {
		return result{}, err
	}
	var v *secretVersion
	switch {
	case in.VersionID != "":
		v = sec.versions[in.VersionID]
		if v != nil && in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage) {
			v = nil
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = stageCurrent
		}
		v = sec.withStage(stage)
	}
	if v == nil && in.VersionID != "" {
		return result{}, smError("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionID)
	}
	if v == nil {
		return result{}, smError("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", cmpOr(in.VersionStage, stageCurrent))
	}
	return result{body: map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "SecretString": v.value,
		"VersionStages": v.stages, "CreatedDate": float64(v.created.Unix())}}, nil
}

type putSecretValueInput struct {
	SecretID           string   `json:"SecretId"`
	ClientRequestToken string   `json:"ClientRequestToken"`
	SecretString       string   `json:"SecretString"`
	VersionStages      []string `json:"VersionStages"`
}

func (in putSecretValueInput) secretID() string { return in.SecretID }

func (s *Sandbox) putSecretValue(req *request) (result, *apiError) {
	in, sec, err := secretRequest[putSecretValueInput](s, req)
	if err != nil {
		return result{}, err
	}
	if in.ClientRequestToken == "" {
		in.ClientRequestToken = newRequestID()
	}
	stages := in.VersionStages
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": in.ClientRequestToken}
	if v, ok := sec.versions[in.ClientRequestToken]; ok {
		// The token is the idempotency key: the same request again is
		// answered as the first was; a different value is refused.
		if v.value != in.SecretString {
			return result{}, smError("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		out["VersionStages"] = v.stages
		return result{body: out}, nil
	}
	if len(sec.versions) == 0 && !slices.Contains(stages, stageCurrent) {
		// As Secrets Manager does: a secret's first version is its current
		// one, whatever else it is labelled.
		stages = append(stages, stageCurrent)
	}
	v := &secretVersion{id: in.ClientRequestToken, value: in.SecretString, created: time.Now().UTC()}
	sec.versions[v.id] = v
	for _, st := range stages {
		sec.label(v, st)
	}
	out["VersionStages"] = v.stages
	return result{body: out, effective: true}, nil
}

type updateStageInput struct {
	SecretID            string `json:"SecretId"`
	VersionStage        string `json:"VersionStage"`
	MoveToVersionID     string `json:"MoveToVersionId"`
	RemoveFromVersionID string `json:"RemoveFromVersionId"`
}

func (in updateStageInput) secretID() string { return in.SecretID }

func (s *Sandbox) updateSecretVersionStage(req *request) (result, *apiError) {
	in, sec, err := secretRequest[updateStageInput](s, req)
	if err != nil {
		return result{}, err
	}
	holder := sec.withStage(in.VersionStage)
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	if in.MoveToVersionID != "" {
		target, ok := sec.versions[in.MoveToVersionID]
		if !ok {
			return result{}, smError("ResourceNotFoundException", "Secrets Manager can't find the specified secret version %s.", in.MoveToVersionID)
		}
		if holder == target {
			return result{body: out}, nil // already there
		}
		if holder != nil && holder.id != in.RemoveFromVersionID {
			return result{}, smError("InvalidParameterException", "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", in.VersionStage, holder.id)
		}
		sec.label(target, in.VersionStage)
		return result{body: out, effective: true}, nil
	}
	if holder != nil && holder.id == in.RemoveFromVersionID {
		holder.stages = slices.DeleteFunc(holder.stages, func(s string) bool { return s == in.VersionStage })
		return result{body: out, effective: true}, nil
	}
	return result{body: out}, nil
}

type listVersionsInput struct {
	SecretID          string `json:"SecretId"`
	IncludeDeprecated bool   `json:"IncludeDeprecated"`
}

func (in listVersionsInput) secretID() string { return in.SecretID }

func (s *Sandbox) listSecretVersionIds(req *request) (result, *apiError) {
	in, sec, err := secretRequest[listVersionsInput](s, req)
	if err != nil {
		return result{}, err
	}
	var versions []map[string]any
	ids := make([]string, 0, len(sec.versions))
	for id := range sec.versions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		v := sec.versions[id]
		if len(v.stages) == 0 && !in.IncludeDeprecated {
			continue // a version without labels is deprecated
		}
		versions = append(versions, map[string]any{"VersionId": id, "VersionStages": v.stages, "CreatedDate": float64(v.created.Unix())})
	}
	return result{body: map[string]any{"ARN": sec.arn, "Name": sec.name, "Versions": versions}}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
