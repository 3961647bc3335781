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
	// IAM_USER/<user>/<key>); take the key-id-shaped token wherever it is,
	// as long as the event names one key: of two, stanch cannot tell which
	// one leaked.
	candidates := []string{h.EventMetadata.PublicKey}
	for _, e := range h.AffectedEntities {
		candidates = append(candidates, e.EntityValue)
	}
	candidates = append(candidates, ev.Resources...)
	keyID, n := alert.KeyIDIn(strings.Join(candidates, " "))
	switch {
	case n == 0:
		return alert.Alert{}, errors.New("the event names no access key id (looked in detail.eventMetadata.publicKey, detail.affectedEntities and resources)")
	case n > 1:
		return alert.Alert{}, errors.New("the event names more than one access key id (in detail.eventMetadata.publicKey, detail.affectedEntities and resources); stanch acts on an event that names one")
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
