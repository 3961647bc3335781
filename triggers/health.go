package triggers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stanchhq/stanch/alert"
)

type healthEvent struct {
	EventArn         string `json:"eventArn"`
	EventTypeCode    string `json:"eventTypeCode"`
	StartTime        string `json:"startTime"` // RFC 1123, not RFC 3339
	EventDescription []struct {
		LatestDescription string `json:"latestDescription"`
	} `json:"eventDescription"`
	EventMetadata struct {
		AccountID  string `json:"accountId"`
		PublicKey  string `json:"publicKey"`
		UserName   string `json:"userName"`
		ExposedURL string `json:"exposedUrl"`
	} `json:"eventMetadata"`
	AffectedEntities []struct {
		EntityValue string `json:"entityValue"`
	} `json:"affectedEntities"`
	AffectedAccount string `json:"affectedAccount"`
}

func healthAlert(ev eventBridgeEvent, now time.Time) (alert.Alert, error) {
	var h healthEvent
	if err := json.Unmarshal(ev.Detail, &h); err != nil {
		return alert.Alert{}, errors.New("detail is not an AWS Health event (an object with eventTypeCode and eventMetadata)")
	}
	if !strings.HasPrefix(h.EventTypeCode, "AWS_RISK_") {
		return alert.Alert{}, fmt.Errorf("%w: detail.eventTypeCode is not an AWS_RISK_* event type (stanch takes those)", ErrUnsupportedFormat)
	}
	// Samples disagree on where the key id stands (a bare id, a user ARN,
	// IAM_USER/<user>/<key>); take the first key-id-shaped token anywhere.
	var keyID string
	candidates := []string{h.EventMetadata.PublicKey}
	for _, e := range h.AffectedEntities {
		candidates = append(candidates, e.EntityValue)
	}
	candidates = append(candidates, ev.Resources...)
	for _, c := range candidates {
		if keyID = alert.AWSKeyID.FindString(c); keyID != "" {
			break
		}
	}
	if keyID == "" {
		return alert.Alert{}, errors.New("the event names no access key id (looked in detail.eventMetadata.publicKey, detail.affectedEntities and resources)")
	}
	account := firstNonEmpty(h.EventMetadata.AccountID, h.AffectedAccount, ev.Account)
	title := fmt.Sprintf("AWS Health %s: %s", h.EventTypeCode, keyID)
	if h.EventMetadata.ExposedURL != "" {
		title += " exposed at " + h.EventMetadata.ExposedURL
	}
	return alert.Alert{
		Source:     alert.SourceHealth,
		Kind:       alert.KindCredentialExposed,
		ReceivedAt: now,
		// The backup copy of a global event (second region) has the same
		// ARN, so it is the same alert.
		DedupKey:   "health:" + h.EventArn + ":" + keyID,
		Credential: alert.Credential{Provider: "aws", ID: keyID, Account: account, Principal: h.EventMetadata.UserName},
		Location:   alert.Location{URL: h.EventMetadata.ExposedURL},
		Severity:   "critical",
		Title:      title,
	}, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
