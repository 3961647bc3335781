package triggers

import (
	"encoding/json"
	"errors"
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
	Service struct {
		AdditionalInfo json.RawMessage `json:"additionalInfo"`
	} `json:"service"`
}

// sampleMarker starts the placeholder values of GuardDuty's sample findings
// (create-sample-findings): they must never contain anything real.
const sampleMarker = "GeneratedFinding"

// guardDutyAlert makes an alert of any finding that names the access key it
// is about. Findings on other resources carry one too when a key was used
// (an S3 exfiltration, EC2 credentials used elsewhere), and that key is what
// must be contained; findings that name none are refused.
func guardDutyAlert(ev eventBridgeEvent, now time.Time) (alert.Alert, error) {
	if ev.DetailType != "GuardDuty Finding" {
		return alert.Alert{}, fmt.Errorf("%w: detail-type is not \"GuardDuty Finding\"", ErrUnsupportedFormat)
	}
	var f guardDutyFinding
	if err := json.Unmarshal(ev.Detail, &f); err != nil {
		return alert.Alert{}, errors.New("detail is not a GuardDuty finding (an object with resource, service, type and id)")
	}
	key := f.Resource.AccessKeyDetails
	if strings.TrimSpace(key.AccessKeyID) == "" {
		return alert.Alert{}, fmt.Errorf("%w: the finding names no access key (resource.accessKeyDetails.accessKeyId is missing)", ErrUnsupportedFormat)
	}
	test := isSample(f.Service.AdditionalInfo) || strings.HasPrefix(key.AccessKeyID, sampleMarker) || strings.HasPrefix(key.UserName, sampleMarker)
	id, ok := alert.KeyID(key.AccessKeyID)
	if !ok && !test {
		return alert.Alert{}, errors.New("resource.accessKeyDetails.accessKeyId is not an AWS access key id (AKIA or ASIA and 16 upper-case letters or digits, alone)")
	}
	if f.ID == "" {
		return alert.Alert{}, errors.New("the finding has no id (detail.id)")
	}
	// The key's prefix says what it is: an AKIA key named by an
	// InstanceCredentialExfiltration finding is still a user's key, and
	// the playbook for keys must contain it. The finding's type and user
	// type only stand in for the placeholders of sample findings.
	kind, ok := alert.KindOf(id)
	if !ok {
		kind = alert.CredentialAccessKey
		if key.UserType == "AssumedRole" || strings.Contains(f.Type, "InstanceCredentialExfiltration") {
			kind = alert.CredentialRoleSession
		}
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
		Credential: alert.Credential{Provider: "aws", Kind: kind, ID: id, Account: account, Principal: key.UserName},
		Severity:   guardDutySeverity(f.Severity),
		Title:      f.Type + ": " + f.Title,
		Test:       test,
	}, nil
}

// isSample reports whether service.additionalInfo marks a sample finding:
// {"sample": true} as EventBridge delivers it, or the API's
// {"value": "{\"sample\":true}", "type": "default"}.
func isSample(info json.RawMessage) bool {
	var direct struct {
		Sample bool   `json:"sample"`
		Value  string `json:"value"`
	}
	if json.Unmarshal(info, &direct) != nil {
		return false
	}
	if direct.Sample {
		return true
	}
	var inner struct {
		Sample bool `json:"sample"`
	}
	return direct.Value != "" && json.Unmarshal([]byte(direct.Value), &inner) == nil && inner.Sample
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
