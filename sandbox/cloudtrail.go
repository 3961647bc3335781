package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// CloudTrail's LookupEvents over JSON 1.1, per account and region, with
// the real limit of 2 requests per second per account and region.

var defaultRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"}

// SeedEvent is one CloudTrail management event.
type SeedEvent struct {
	Region string    `yaml:"region" json:"region"`
	Time   time.Time `yaml:"time" json:"time"`
	// Ago, instead of Time, places the event this long before the sandbox
	// starts (a Go duration such as 50m), so a seed stays inside
	// CloudTrail's 90-day window whenever it is used.
	Ago               string         `yaml:"ago" json:"ago"`
	Name              string         `yaml:"name" json:"name"`
	Source            string         `yaml:"source" json:"source"` // e.g. iam.amazonaws.com
	AccessKeyID       string         `yaml:"access_key_id" json:"access_key_id"`
	User              string         `yaml:"user" json:"user"`
	SourceIP          string         `yaml:"source_ip" json:"source_ip"`
	UserAgent         string         `yaml:"user_agent" json:"user_agent"`
	ErrorCode         string         `yaml:"error_code" json:"error_code"`
	ReadOnly          bool           `yaml:"read_only" json:"read_only"`
	RequestParameters map[string]any `yaml:"request_parameters" json:"request_parameters"`
	ResponseElements  map[string]any `yaml:"response_elements" json:"response_elements"`
	Resources         []SeedResource `yaml:"resources" json:"resources"`
}

// SeedResource is a resource an event touched.
type SeedResource struct {
	Type string `yaml:"type" json:"type"`
	Name string `yaml:"name" json:"name"`
}

// SeedEventGenerator makes a large history cheaply: Count events per
// region, spread evenly between Start and End, names drawn in turn.
type SeedEventGenerator struct {
	AccessKeyID string    `yaml:"access_key_id" json:"access_key_id"`
	User        string    `yaml:"user" json:"user"`
	Regions     []string  `yaml:"regions" json:"regions"`
	Count       int       `yaml:"count" json:"count"`
	Start       time.Time `yaml:"start" json:"start"`
	End         time.Time `yaml:"end" json:"end"`
	Names       []string  `yaml:"names" json:"names"`
	Seed        uint64    `yaml:"seed" json:"seed"`
}

func (g SeedEventGenerator) generate() []SeedEvent {
	names := g.Names
	if len(names) == 0 {
		names = []string{"ListBuckets", "DescribeInstances", "GetCallerIdentity", "ListUsers"}
	}
	end := g.End
	if end.IsZero() {
		end = time.Now().UTC()
	}
	start := g.Start
	if start.IsZero() {
		start = end.Add(-24 * time.Hour)
	}
	rng := rand.New(rand.NewPCG(g.Seed, 0x5eed))
	var out []SeedEvent
	for _, region := range g.Regions {
		for i := range g.Count {
			at := start.Add(time.Duration(int64(end.Sub(start)) / int64(max(g.Count, 1)) * int64(i)))
			name := names[i%len(names)]
			out = append(out, SeedEvent{Region: region, Time: at, Name: name, Source: "ec2.amazonaws.com", AccessKeyID: g.AccessKeyID, User: g.User,
				SourceIP: fmt.Sprintf("198.51.100.%d", rng.IntN(250)+1), UserAgent: "aws-cli/2.15.0", ReadOnly: true})
		}
	}
	return out
}

// trail is one account's history, newest first per region.
type trail struct {
	mu       sync.Mutex
	byRegion map[string][]*ctEvent
	limits   map[string]*rate.Limiter // by region
}

type ctEvent struct {
	SeedEvent
	id string
}

func newTrail() *trail {
	return &trail{byRegion: map[string][]*ctEvent{}, limits: map[string]*rate.Limiter{}}
}

func (t *trail) add(account string, events ...SeedEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range events {
		if e.Region == "" {
			e.Region = "us-east-1"
		}
		if d, err := time.ParseDuration(e.Ago); err == nil && e.Time.IsZero() {
			e.Time = time.Now().Add(-d).UTC()
		}
		if e.Source == "" {
			e.Source = "iam.amazonaws.com"
		}
		region := e.Region
		t.byRegion[region] = append(t.byRegion[region], &ctEvent{SeedEvent: e, id: newRequestID()})
	}
	for region, list := range t.byRegion {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Time.After(list[j].Time) })
		t.byRegion[region] = list
	}
}

// allow applies the per-region rate limit: 2 requests per second.
func (t *trail) allow(region string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.limits[region]
	if !ok {
		l = rate.NewLimiter(2, 2)
		t.limits[region] = l
	}
	return l.Allow()
}

// AddEvents appends events to an account's CloudTrail history.
func (s *Sandbox) AddEvents(accountID string, events ...SeedEvent) error {
	s.mu.Lock()
	a, ok := s.accounts[accountID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no account %s", accountID)
	}
	a.trail.add(accountID, events...)
	return nil
}

func (s *Sandbox) cloudTrailOperation(action string) func(*request) (result, *apiError) {
	if action == "LookupEvents" {
		return s.lookupEvents
	}
	return nil
}

type lookupEventsInput struct {
	LookupAttributes []struct {
		AttributeKey   string `json:"AttributeKey"`
		AttributeValue string `json:"AttributeValue"`
	} `json:"LookupAttributes"`
	StartTime  *float64 `json:"StartTime"`
	EndTime    *float64 `json:"EndTime"`
	MaxResults *int     `json:"MaxResults"`
	NextToken  *string  `json:"NextToken"`
}

type ctResource struct {
	ResourceType string `json:"ResourceType"`
	ResourceName string `json:"ResourceName"`
}

type ctEventOut struct {
	EventID         string       `json:"EventId"`
	EventName       string       `json:"EventName"`
	ReadOnly        string       `json:"ReadOnly"`
	AccessKeyID     string       `json:"AccessKeyId,omitempty"`
	EventTime       float64      `json:"EventTime"`
	EventSource     string       `json:"EventSource"`
	Username        string       `json:"Username,omitempty"`
	Resources       []ctResource `json:"Resources"`
	CloudTrailEvent string       `json:"CloudTrailEvent"`
}

type lookupEventsOutput struct {
	Events    []ctEventOut `json:"Events"`
	NextToken string       `json:"NextToken,omitempty"`
}

func (s *Sandbox) lookupEvents(req *request) (result, *apiError) {
	var in lookupEventsInput
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	a := req.caller.account
	if !slices.Contains(a.regions, req.region) {
		// As AWS answers in a region the account has not enabled.
		return result{}, &apiError{http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."}
	}
	if !a.trail.allow(req.region) {
		return result{}, &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
	}
	if len(in.LookupAttributes) > 1 {
		return result{}, &apiError{http.StatusBadRequest, "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."}
	}
	match := func(*ctEvent) bool { return true }
	if len(in.LookupAttributes) == 1 {
		k, v := in.LookupAttributes[0].AttributeKey, in.LookupAttributes[0].AttributeValue
		switch k {
		case "AccessKeyId":
			match = func(e *ctEvent) bool { return e.AccessKeyID == v }
		case "EventName":
			match = func(e *ctEvent) bool { return e.Name == v }
		case "Username":
			match = func(e *ctEvent) bool { return e.User == v }
		case "EventSource":
			match = func(e *ctEvent) bool { return e.Source == v }
		case "EventId":
			match = func(e *ctEvent) bool { return e.id == v }
		case "ReadOnly":
			match = func(e *ctEvent) bool { return strconv.FormatBool(e.ReadOnly) == v }
		default:
			return result{}, &apiError{http.StatusBadRequest, "InvalidLookupAttributesException", fmt.Sprintf("Invalid attribute key %q", k)}
		}
	}
	start, end := time.Unix(0, 0), time.Now().Add(time.Hour)
	if in.StartTime != nil {
		start = epoch(*in.StartTime)
	}
	if in.EndTime != nil {
		end = epoch(*in.EndTime)
	}
	if start.After(end) {
		return result{}, &apiError{http.StatusBadRequest, "InvalidTimeRangeException", "Start time must be before end time."}
	}
	limit := 50
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 50 {
			return result{}, &apiError{http.StatusBadRequest, "InvalidMaxResultsException", "MaxResults must be between 1 and 50."}
		}
		limit = *in.MaxResults
	}
	offset := 0
	if in.NextToken != nil {
		raw, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if n, cerr := strconv.Atoi(string(raw)); err != nil || cerr != nil || n < 0 {
			return result{}, &apiError{http.StatusBadRequest, "InvalidNextTokenException", "Invalid NextToken."}
		} else {
			offset = n
		}
	}
	a.trail.mu.Lock()
	var matched []*ctEvent
	for _, e := range a.trail.byRegion[req.region] {
		if match(e) && !e.Time.Before(start) && !e.Time.After(end) {
			matched = append(matched, e)
		}
	}
	a.trail.mu.Unlock()
	out := lookupEventsOutput{Events: []ctEventOut{}}
	for i := offset; i < len(matched) && i < offset+limit; i++ {
		out.Events = append(out.Events, render(a.id, matched[i]))
	}
	if offset+limit < len(matched) {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset + limit)))
	}
	return result{body: out}, nil
}

func epoch(f float64) time.Time {
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
}

func render(account string, e *ctEvent) ctEventOut {
	identity := map[string]any{"type": "IAMUser", "accountId": account, "accessKeyId": e.AccessKeyID, "userName": e.User,
		"arn": "arn:aws:iam::" + account + ":user/" + e.User, "principalId": "AIDA" + account}
	record := map[string]any{
		"eventVersion": "1.09", "userIdentity": identity, "eventTime": e.Time.UTC().Format(time.RFC3339),
		"eventSource": e.Source, "eventName": e.Name, "awsRegion": e.Region, "sourceIPAddress": e.SourceIP,
		"userAgent": e.UserAgent, "requestParameters": e.RequestParameters, "responseElements": e.ResponseElements,
		"requestID": e.id, "eventID": e.id, "readOnly": e.ReadOnly, "eventType": "AwsApiCall", "managementEvent": true,
		"recipientAccountId": account, "eventCategory": "Management",
	}
	if e.ErrorCode != "" {
		record["errorCode"], record["errorMessage"] = e.ErrorCode, "denied by the sandbox's history"
	}
	body, _ := json.Marshal(record)
	resources := []ctResource{}
	for _, r := range e.Resources {
		resources = append(resources, ctResource{ResourceType: r.Type, ResourceName: r.Name})
	}
	return ctEventOut{EventID: e.id, EventName: e.Name, ReadOnly: strconv.FormatBool(e.ReadOnly), AccessKeyID: e.AccessKeyID,
		EventTime: float64(e.Time.Unix()), EventSource: e.Source, Username: e.User, Resources: resources, CloudTrailEvent: string(body)}
}
