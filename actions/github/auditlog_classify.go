package github

import (
	"fmt"
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// Categories of audit-log events that matter after a token leaked, most
// urgent first (the order findings are listed in among equal severities).
const (
	catPersistence = "persistence"     // keys and tokens created: access that outlives the token
	catPermissions = "permissions"     // members, collaborators, teams and their permissions
	catSecrets     = "secrets"         // Actions/Dependabot/Codespaces secrets, secret scanning
	catCodeChange  = "code_change"     // pushes
	catSettings    = "settings_change" // repository, organisation, team, webhook, branch protection settings
	catDataAccess  = "data_access"     // clones, fetches, archive downloads
)

var auditCategories = []string{catPersistence, catPermissions, catSecrets, catCodeChange, catSettings, catDataAccess}

// severities, most severe first.
var severities = []string{"critical", "high", "medium", "low"}

// auditClass is what an event means.
type auditClass struct {
	category string
	severity string
	what     string
}

// persistenceActions create credentials that stay when the token is
// revoked.
var persistenceActions = map[string]string{
	"public_key.create":                    "critical", // an SSH or deploy key
	"deploy_key.create":                    "critical",
	"oauth_authorization.create":           "high",
	"oauth_application.create":             "high",
	"integration_installation.create":      "high",
	"personal_access_token.access_granted": "high",
}

// criticalSettings are settings changes that expose code or remove a
// safeguard.
var criticalSettings = map[string]bool{
	"repo.access": true, "repo.destroy": true, "repo.transfer": true, "repo.transfer_start": true,
	"protected_branch.destroy": true, "protected_branch.policy_override": true,
	"repository_ruleset.destroy": true, "org.disable_two_factor_requirement": true,
	"org.audit_log_stream_destroyed": true, "repo.advanced_security_disabled": true,
}

// classifyAuditEvent says what an event means, or false when it is not a
// finding (it still counts in by_action).
func classifyAuditEvent(e auditEvent) (auditClass, bool) {
	a := e.action
	area, verb, _ := strings.Cut(a, ".")
	where := e.repo
	if where == "" {
		where = e.org
	}
	c := auditClass{}
	switch {
	case a == "git.clone" || a == "git.fetch" || a == "repo.download_zip":
		verbs := map[string]string{"git.clone": "cloned", "git.fetch": "fetched", "repo.download_zip": "downloaded an archive of"}
		return auditClass{catDataAccess, "medium", verbs[a] + " " + where}, true
	case a == "git.push":
		return auditClass{catCodeChange, "high", "pushed to " + where}, true
	case a == "protected_branch.policy_override":
		return auditClass{catCodeChange, "critical", "pushed to " + where + " past its branch protection"}, true
	case persistenceActions[a] != "":
		c = auditClass{catPersistence, persistenceActions[a], ""}
	case area == "personal_access_token":
		c = auditClass{catPersistence, "high", ""}
	case strings.Contains(a, "secret"):
		c = auditClass{catSecrets, "high", ""}
		if strings.Contains(verb, "disable") || strings.Contains(verb, "bypass") {
			c.severity = "critical"
		}
	case isPermissionChange(area, verb):
		c = auditClass{catPermissions, "high", ""}
		for _, f := range []string{"permission", "role", "new_role", "new_permission"} {
			if v := strings.ToLower(entryField(e.entry, f)); v == "admin" || v == "owner" || v == "maintain" {
				c.severity = "critical"
			}
		}
	case isSettingsArea(area):
		c = auditClass{catSettings, "medium", ""}
		switch {
		case criticalSettings[a]:
			c.severity = "critical"
		case area == "hook":
			// A webhook sends the organisation's events where it says.
			c.severity = "high"
		}
	default:
		return auditClass{}, false
	}
	c.what = describeAuditEvent(e, where)
	return c, true
}

// isPermissionChange reports whether an action changes who may do what.
func isPermissionChange(area, verb string) bool {
	switch area {
	case "org", "team", "repo", "business", "organization_role":
	default:
		return false
	}
	for _, w := range []string{"member", "collaborator", "permission", "maintainer", "invite", "admin", "billing_manager", "role"} {
		if strings.Contains(verb, w) {
			return true
		}
	}
	return area == "organization_role"
}

func isSettingsArea(area string) bool {
	switch area {
	case "repo", "org", "team", "hook", "protected_branch", "repository_ruleset", "environment", "business":
		return true
	}
	return false
}

// describedFields are the fields of an event that say what it did to whom.
var describedFields = []string{"user", "permission", "role", "team", "name", "visibility", "title", "branch", "environment_name", "hook_id"}

// describeAuditEvent is one line for people: the action, where, and the
// fields that say to whom. Field values come from GitHub; they are
// clipped and redacted all the same.
func describeAuditEvent(e auditEvent, where string) string {
	s := e.action + " in " + where
	var parts []string
	for _, f := range describedFields {
		if v := entryField(e.entry, f); v != "" {
			if r := []rune(v); len(r) > 64 {
				v = string(r[:64]) + "…"
			}
			parts = append(parts, fmt.Sprintf("%s %s", f, v))
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return alert.RedactText(s)
}
