package triggers

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

// guardDutyFinding holds the fields of a finding that stanch uses, in the
// camelCase EventBridge delivers (not the SDK's PascalCase).
type guardDutyFinding struct {
	AccountID string  `json:"accountId"`
	Region    string  `json:"region"`
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	Severity  float64 `json:"severity"`
	Title     string  `json:"title"`
	Resource  struct {
		ResourceType     string `json:"resourceType"`
		AccessKeyDetails struct {
			AccessKeyID string `json:"accessKeyId"`
			PrincipalID string `json:"principalId"`
			UserName    string `json:"userName"`
			UserType    string `json:"userType"`
		} `json:"accessKeyDetails"`
	} `json:"resource"`
}

// sampleMarker starts the placeholder values of GuardDuty's sample findings
// (create-sample-findings): they must never contain anything real.
const sampleMarker = "GeneratedFinding"

func guardDutyAlert(ev eventBridgeEvent, now time.Time) (alert.Alert, error) {
	if ev.DetailType != "GuardDuty Finding" {
		return alert.Alert{}, fmt.Errorf("%w: GuardDuty detail-type %q", ErrUnsupportedFormat, ev.DetailType)
	}
	var f guardDutyFinding
	if err := json.Unmarshal(ev.Detail, &f); err != nil {
		return alert.Alert{}, fmt.Errorf("GuardDuty finding: %w", err)
	}
	if f.Resource.ResourceType != "AccessKey" {
		return alert.Alert{}, fmt.Errorf("%w: GuardDuty finding %s is about a %q resource, not an access key", ErrUnsupportedFormat, f.Type, f.Resource.ResourceType)
	}
	key := f.Resource.AccessKeyDetails
	kind := alert.CredentialAccessKey
	if strings.HasPrefix(key.AccessKeyID, "ASIA") || key.UserType == "AssumedRole" || strings.Contains(f.Type, "InstanceCredentialExfiltration") {
		kind = alert.CredentialRoleSession
	}
	account := f.AccountID
	if account == "" {
		account = ev.Account
	}
	return alert.Alert{
		Source:     alert.SourceGuardDuty,
		Kind:       alert.KindCredentialMisused,
		ReceivedAt: now,
		// Repeats of a finding keep its id: one alert per finding.
		DedupKey:   "guardduty:" + account + ":" + f.ID,
		Credential: alert.Credential{Provider: "aws", Kind: kind, ID: key.AccessKeyID, Account: account, Principal: key.UserName},
		Severity:   guardDutySeverity(f.Severity),
		Title:      f.Type + ": " + f.Title,
		Test:       strings.HasPrefix(key.AccessKeyID, sampleMarker) || strings.HasPrefix(key.UserName, sampleMarker),
	}, nil
}

// guardDutySeverity maps GuardDuty's 0–10 score to stanch's levels, using
// GuardDuty's own bands (low < 4, medium < 7, high < 9).
func guardDutySeverity(score float64) string {
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "high"
	case score >= 4:
		return "medium"
	default:
		return "low"
	}
}
