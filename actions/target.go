package actions

import (
	"fmt"
	"strings"
)

// Owner is who a run's credential belongs to, once an action has found out
// (aws.identify_key). From then on every step that touches a principal acts
// on this owner: parameters tagged with a target role are filled in from it
// when a playbook leaves them out, and a step that names another account,
// principal or credential is refused before its action runs.
type Owner struct {
	// Account is the provider account that owns the credential (a 12-digit
	// AWS account id).
	Account string `json:"account,omitempty"`
	// User is the IAM user the credential belongs to; empty for credentials
	// of a role (ASIA session keys).
	User string `json:"user,omitempty"`
	// Role is the IAM role a session credential was issued for, when known.
	Role string `json:"role,omitempty"`
	// Credential is the credential's public id (AKIA…/ASIA…).
	Credential string `json:"credential,omitempty"`
	// By is the step that identified the owner.
	By string `json:"by,omitempty"`
}

// Known reports whether anything is known of the owner.
func (o Owner) Known() bool { return o.Account != "" || o.User != "" || o.Role != "" }

// String describes the owner for people: "user ci-bot in account 444455556666".
func (o Owner) String() string {
	var parts []string
	switch {
	case o.User != "":
		parts = append(parts, "user "+o.User)
	case o.Role != "":
		parts = append(parts, "role "+o.Role)
	}
	if o.Account != "" {
		parts = append(parts, "in account "+o.Account)
	}
	return strings.Join(parts, " ")
}

// Target roles a parameter can have (its `target:"…"` tag): what it names of
// the credential's owner.
const (
	TargetAccount    = "account"
	TargetUser       = "user"
	TargetRole       = "role"
	TargetCredential = "credential"
)

var targetRoles = map[string]bool{TargetAccount: true, TargetUser: true, TargetRole: true, TargetCredential: true}

func (o Owner) value(role string) string {
	switch role {
	case TargetAccount:
		return o.Account
	case TargetUser:
		return o.User
	case TargetRole:
		return o.Role
	case TargetCredential:
		return o.Credential
	}
	return ""
}

// TargetMismatch says a step names an account, principal or credential other
// than the owner's. The runner fails the step with it before the action
// runs, so nothing is changed.
type TargetMismatch struct {
	Step  string
	Param string
	Role  string
	Given string
	Owner Owner
}

func (e *TargetMismatch) Error() string {
	what := map[string]string{TargetAccount: "account", TargetUser: "IAM user", TargetRole: "IAM role", TargetCredential: "credential"}[e.Role]
	if e.Owner.Credential == "" {
		e.Owner.Credential = "of this run"
	}
	return fmt.Sprintf("step %s would act on %s %s (parameter %s), but the credential %s belongs to %s (identified by step %s); nothing was changed. "+
		"Leave %s out so that the step acts on the owner, or set `target: explicit` on the step to act elsewhere on purpose",
		e.Step, what, e.Given, e.Param, e.Owner.Credential, e.Owner, e.Owner.By, e.Param)
}

// ApplyOwner fills the parameters of step that name the owner's account,
// principal or credential and were left out, and refuses (with a permanent
// *TargetMismatch) parameters that name something else: another account,
// another credential, another user or role, or a role when the owner is a
// user. A principal is left as given when the owner's is not known (the
// credential of a role whose name no step found): there is nothing to
// compare it with.
func ApplyOwner(spec Spec, step string, with map[string]any, o Owner) error {
	if !o.Known() {
		return nil
	}
	given := map[string]string{} // role → value given, for the target parameters
	names := map[string]string{} // role → parameter name
	for _, p := range spec.Params {
		if !targetRoles[p.Target] {
			continue
		}
		names[p.Target] = p.Name
		v, isString := with[p.Name].(string)
		if with[p.Name] != nil && !isString {
			return Permanent(fmt.Errorf("step %s: parameter %s is %T, not a string", step, p.Name, with[p.Name]))
		}
		if v != "" {
			given[p.Target] = v
		}
	}
	mismatch := func(role, v string) error {
		return Permanent(&TargetMismatch{Step: step, Param: names[role], Role: role, Given: v, Owner: o})
	}
	for _, role := range []string{TargetAccount, TargetCredential} {
		if _, has := names[role]; !has || o.value(role) == "" {
			continue
		}
		if v, ok := given[role]; ok && v != o.value(role) {
			return mismatch(role, v)
		}
		with[names[role]] = o.value(role)
	}
	// The principal: the owner's user or role, whichever it has.
	ownRole, other := TargetUser, TargetRole
	if o.User == "" {
		ownRole, other = TargetRole, TargetUser
	}
	if o.value(ownRole) == "" {
		return nil
	}
	if v, ok := given[other]; ok {
		return mismatch(other, v)
	}
	if _, has := names[ownRole]; !has {
		return nil
	}
	if v, ok := given[ownRole]; ok && v != o.value(ownRole) {
		return mismatch(ownRole, v)
	}
	with[names[ownRole]] = o.value(ownRole)
	return nil
}
