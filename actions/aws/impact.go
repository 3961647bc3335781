package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/time/rate"

	"github.com/stanchhq/stanch/actions"
)

// Regions is a list of region names, or "all" for the account's enabled
// regions.
type Regions []string

// UnmarshalJSON accepts "all", "us-east-1" or ["us-east-1", "eu-west-1"].
func (r *Regions) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*r = Regions{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`regions must be "all", a region name or a list of region names`)
	}
	*r = many
	return nil
}

// ImpactParams are the parameters of aws.cloudtrail_impact.
type ImpactParams struct {
	AccessKeyID string           `json:"access_key_id" target:"credential" doc:"the leaked access key id; default: the run's credential once identified"`
	Regions     Regions          `json:"regions" doc:"\"all\" (the account's enabled regions, the default) or a list of regions"`
	Lookback    actions.Duration `json:"lookback" doc:"how far back to look (default 2160h = 90 days, CloudTrail's limit)"`
	MaxDepth    int              `json:"max_depth" doc:"how many hops of derived credentials to follow (default 2)"`
	MaxDerived  int              `json:"max_derived" doc:"at most this many derived credentials (default 20)"`
	Account     string           `json:"account" target:"account" doc:"the key's account; default: the owner's account once identified, else stanch's own; its response role is used when it is not stanch's own"`
}

// ImpactOutputs are the outputs of aws.cloudtrail_impact.
type ImpactOutputs struct {
	Events        int              `json:"events" doc:"events found, derived credentials included"`
	FirstUsed     string           `json:"first_used" doc:"RFC 3339 time of the first event"`
	LastUsed      string           `json:"last_used" doc:"RFC 3339 time of the last event"`
	ByEvent       map[string]int   `json:"by_event" doc:"count per event name"`
	ByService     map[string]int   `json:"by_service" doc:"count per service"`
	ByRegion      map[string]int   `json:"by_region" doc:"count per region"`
	BySourceIP    map[string]int   `json:"by_source_ip" doc:"count per source IP"`
	ByUserAgent   map[string]int   `json:"by_user_agent" doc:"count per user agent"`
	Denied        int              `json:"denied" doc:"calls that failed with an error code (e.g. AccessDenied)"`
	FindingCounts map[string]int   `json:"finding_counts" doc:"count per category: defence_evasion, persistence, privilege_escalation, data_access, compute_abuse, reconnaissance"`
	Findings      []map[string]any `json:"findings" doc:"the classified events, most urgent category first (at most 200)"`
	// DerivedCredentials are in the shape aws.contain_derived takes (see
	// DerivedCredential), with where and when each was made.
	DerivedCredentials []map[string]any  `json:"derived_credentials" doc:"credentials minted (GetSessionToken, GetFederationToken, AssumeRole) or created (CreateAccessKey) with the key, followed in turn"`
	Regions            []string          `json:"regions" doc:"regions queried"`
	RegionsFailed      map[string]string `json:"regions_failed" doc:"region → error, for regions that could not be read"`
}

// lookupRate is CloudTrail's LookupEvents limit per account and region.
const lookupRate = 2

func provisionImpact(in *ImpactParams) {
	if len(in.Regions) == 0 {
		in.Regions = Regions{"all"}
	}
	if in.Lookback == 0 {
		in.Lookback = actions.Duration(2160 * time.Hour)
	}
	if in.MaxDepth == 0 {
		in.MaxDepth = 2
	}
	if in.MaxDerived == 0 {
		in.MaxDerived = 20
	}
}

func cloudTrailImpact(p *Provider) actions.Action {
	return actions.New(actions.TypedDefinition[ImpactParams, ImpactOutputs]{
		Name:    "aws.cloudtrail_impact",
		Slow:    true,
		Summary: "Query CloudTrail for everything a key (and the credentials it minted or created) did, in every region, and classify it.",
		Permissions: []actions.Permission{
			{Name: "cloudtrail:LookupEvents", Why: "read the key's management events"},
			{Name: "ec2:DescribeRegions", Why: "find the account's enabled regions"},
			{Name: "sts:GetCallerIdentity", Why: "know whether the key's account needs a response role"},
			{Name: "sts:GetAccessKeyInfo", Why: "make sure the key is in the account read, when no earlier step identified it"},
		},
		Example: `- id: impact
  action: aws.cloudtrail_impact
  with:
    access_key_id: ${{ alert.credential.id }}
    account: ${{ steps.identify.outputs.account }}
    regions: all
  timeout: 15m
  on_error: continue
`,
		Provision: provisionImpact,
		Validate: func(in ImpactParams) error {
			if err := checkKeyID(in.AccessKeyID); err != nil {
				return err
			}
			if in.MaxDepth < 0 || in.MaxDerived < 0 {
				return errors.New("max_depth and max_derived must not be negative")
			}
			return nil
		},
		PlanFunc: func(ctx context.Context, env actions.Env, in *ImpactParams) (actions.PlanOf[ImpactOutputs], error) {
			// Only the events say what the outputs are.
			plan := actions.PlanOf[ImpactOutputs]{}
			// Another account's CloudTrail would say the key did nothing.
			account, calls, err := p.keyAccount(ctx, env, in.AccessKeyID, in.Account)
			plan.Calls = calls
			if err != nil {
				return plan, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
			}
			in.Account = account
			regions, err := p.impactRegions(ctx, in)
			if err != nil {
				return plan, err
			}
			if len(in.Regions) == 1 && in.Regions[0] == "all" {
				plan.Calls = append(plan.Calls, actions.Call{Service: "ec2", Operation: "DescribeRegions", Params: map[string]any{}, Made: true})
			}
			for _, r := range regions {
				plan.Calls = append(plan.Calls, actions.Call{Service: "cloudtrail", Operation: "LookupEvents", Params: map[string]any{"Region": r, "AttributeKey": "AccessKeyId", "AttributeValue": in.AccessKeyID}})
			}
			plan.Summary = fmt.Sprintf("would read %s's events of the last %s in %d region(s) (%s), at most %d requests/s per region, following derived credentials %d hop(s) deep",
				in.AccessKeyID, time.Duration(in.Lookback), len(regions), strings.Join(regions, ", "), lookupRate, in.MaxDepth)
			return plan, nil
		},
		DoFunc: func(ctx context.Context, env actions.Env, in *ImpactParams) (actions.ResultOf[ImpactOutputs], error) {
			return p.impact(ctx, env, in)
		},
	})
}

func (p *Provider) impactRegions(ctx context.Context, in *ImpactParams) ([]string, error) {
	if !(len(in.Regions) == 1 && in.Regions[0] == "all") {
		return in.Regions, nil
	}
	cfg, err := p.config(ctx, in.Account)
	if err != nil {
		return nil, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
	}
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return nil, fmt.Errorf("impact of %s: ec2:DescribeRegions: %w", in.AccessKeyID, classify(err))
	}
	var regions []string
	for _, r := range out.Regions {
		regions = append(regions, awssdk.ToString(r.RegionName))
	}
	sort.Strings(regions)
	return regions, nil
}

// limiter returns the shared LookupEvents limiter of an account and region,
// so that parallel steps and runs together stay within CloudTrail's limit.
func (p *Provider) limiter(account, region string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limiters == nil {
		p.limiters = map[string]*rate.Limiter{}
	}
	k := account + "/" + region
	l, ok := p.limiters[k]
	if !ok {
		l = rate.NewLimiter(lookupRate, 1)
		p.limiters[k] = l
	}
	return l
}

// trailEvent is what the impact reads of one CloudTrail record.
type trailEvent struct {
	EventName         string         `json:"eventName"`
	EventSource       string         `json:"eventSource"`
	EventTime         time.Time      `json:"eventTime"`
	AWSRegion         string         `json:"awsRegion"`
	SourceIPAddress   string         `json:"sourceIPAddress"`
	UserAgent         string         `json:"userAgent"`
	ErrorCode         string         `json:"errorCode"`
	RequestParameters map[string]any `json:"requestParameters"`
	ResponseElements  map[string]any `json:"responseElements"`
	UserIdentity      struct {
		AccessKeyID string `json:"accessKeyId"`
		UserName    string `json:"userName"`
	} `json:"userIdentity"`
	resources []map[string]any
	key       string // the credential it was looked up by
}

func (p *Provider) impact(ctx context.Context, env actions.Env, in *ImpactParams) (actions.ResultOf[ImpactOutputs], error) {
	type result = actions.ResultOf[ImpactOutputs]
	// Another account's CloudTrail would say the key did nothing.
	account, _, err := p.keyAccount(ctx, env, in.AccessKeyID, in.Account)
	if err != nil {
		return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
	}
	in.Account = account
	regions, err := p.impactRegions(ctx, in)
	if err != nil {
		return result{}, err
	}
	cfg, err := p.config(ctx, in.Account)
	if err != nil {
		return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
	}
	end := time.Now()
	start := end.Add(-time.Duration(in.Lookback))
	acc := newImpact()
	failed := map[string]string{}
	type pending struct {
		key   string
		depth int
	}
	level := []pending{{key: in.AccessKeyID}}
	seen := map[string]bool{in.AccessKeyID: true}
	var derived []map[string]any
	for len(level) > 0 {
		var next []pending
		for _, q := range level {
			events := p.lookupAll(ctx, env, cfg, account, q.key, regions, start, end, failed)
			for _, e := range events {
				acc.add(e)
				d := derivedFrom(e)
				id, _ := d["access_key_id"].(string)
				if id == "" || seen[id] || len(derived) >= in.MaxDerived {
					continue
				}
				seen[id] = true
				d["created_by_key"] = q.key
				d["region"] = e.AWSRegion
				d["time"] = e.EventTime.UTC().Format(time.RFC3339)
				d["depth"] = q.depth + 1
				derived = append(derived, d)
				if q.depth+1 <= in.MaxDepth {
					next = append(next, pending{key: id, depth: q.depth + 1})
				}
			}
		}
		level = next
	}
	if ctx.Err() != nil {
		return result{}, actions.Retryable(fmt.Errorf("impact of %s: %w", in.AccessKeyID, ctx.Err()))
	}
	if len(failed) == len(regions) && len(regions) > 0 {
		return result{}, actions.Retryable(fmt.Errorf("impact of %s: every region failed: %v", in.AccessKeyID, failed))
	}
	out := acc.outputs()
	if derived == nil {
		derived = []map[string]any{}
	}
	out.DerivedCredentials = derived
	out.Regions = regions
	out.RegionsFailed = failed
	msg := fmt.Sprintf("%d event(s) of %s in %d region(s)", acc.total, in.AccessKeyID, len(regions))
	if acc.total > 0 {
		msg += fmt.Sprintf(", first %s, last %s", out.FirstUsed, out.LastUsed)
	}
	if n := len(derived); n > 0 {
		msg += fmt.Sprintf("; %d derived credential(s)", n)
	}
	if fc := acc.counts(); len(fc) > 0 {
		msg += "; findings: " + strings.Join(fc, ", ")
	}
	if len(failed) > 0 {
		msg += fmt.Sprintf("; %d region(s) could not be read: %s", len(failed), strings.Join(sortedRegionKeys(failed), ", "))
	}
	return result{Outcome: actions.Done, Message: msg, Outputs: out}, nil
}

// lookupAll reads every page of key's events in every region in parallel;
// a failed region is recorded in failed and does not stop the others.
func (p *Provider) lookupAll(ctx context.Context, env actions.Env, cfg awssdk.Config, account, key string, regions []string, start, end time.Time, failed map[string]string) []trailEvent {
	var mu sync.Mutex
	var all []trailEvent
	var wg sync.WaitGroup
	for _, region := range regions {
		wg.Go(func() {
			events, err := p.lookupRegion(ctx, env, cfg, account, region, key, start, end)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[region] = err.Error()
				return
			}
			all = append(all, events...)
		})
	}
	wg.Wait()
	return all
}

func (p *Provider) lookupRegion(ctx context.Context, env actions.Env, cfg awssdk.Config, account, region, key string, start, end time.Time) ([]trailEvent, error) {
	client := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) {
		o.Region = region
		o.RetryMaxAttempts = 10 // throttles are expected at this rate; keep trying
	})
	limit := p.limiter(account, region)
	pages := cloudtrail.NewLookupEventsPaginator(client, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyAccessKeyId, AttributeValue: awssdk.String(key)}},
		StartTime:        awssdk.Time(start),
		EndTime:          awssdk.Time(end),
		MaxResults:       awssdk.Int32(50),
	})
	var out []trailEvent
	n := 0
	for pages.HasMorePages() {
		if err := limit.Wait(ctx); err != nil {
			return nil, err
		}
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("cloudtrail:LookupEvents: %w", err))
		}
		n++
		for _, ev := range page.Events {
			var e trailEvent
			if err := json.Unmarshal([]byte(awssdk.ToString(ev.CloudTrailEvent)), &e); err != nil {
				continue // a record we cannot read says nothing we can use
			}
			if e.AWSRegion == "" {
				e.AWSRegion = region
			}
			for _, r := range ev.Resources {
				e.resources = append(e.resources, map[string]any{"type": awssdk.ToString(r.ResourceType), "name": awssdk.ToString(r.ResourceName)})
			}
			e.key = key
			out = append(out, e)
		}
		if env.Progress != nil {
			env.Progress(fmt.Sprintf("%s %s: %d page(s), %d event(s)", key, region, n, len(out)))
		}
	}
	return out, nil
}

// derivedFrom describes the credential an event minted or created, in the
// shape aws.contain_derived takes, or returns nil. An AssumeRole session
// carries its role's ARN, because only that role's sessions can be revoked.
func derivedFrom(e trailEvent) map[string]any {
	if e.ErrorCode != "" || e.ResponseElements == nil {
		return nil
	}
	switch e.EventName {
	case "GetSessionToken", "GetFederationToken", "AssumeRole":
		creds, _ := e.ResponseElements["credentials"].(map[string]any)
		id, _ := creds["accessKeyId"].(string)
		d := map[string]any{"access_key_id": id, "kind": "session", "user_name": e.UserIdentity.UserName, "created_by_event": e.EventName}
		if e.EventName == "AssumeRole" {
			if arn, _ := e.RequestParameters["roleArn"].(string); arn != "" {
				d["role_arn"] = arn
			}
		}
		return d
	case "CreateAccessKey":
		ak, _ := e.ResponseElements["accessKey"].(map[string]any)
		id, _ := ak["accessKeyId"].(string)
		user, _ := ak["userName"].(string)
		return map[string]any{"access_key_id": id, "kind": "access_key", "user_name": user, "created_by_event": e.EventName}
	}
	return nil
}

// impactSummary accumulates what the events say.
type impactSummary struct {
	total                int
	first, last          time.Time
	byEvent, byService   map[string]int
	byRegion, byIP, byUA map[string]int
	denied               int
	findings             []map[string]any
	findingCount         map[string]int
}

func newImpact() *impactSummary {
	return &impactSummary{byEvent: map[string]int{}, byService: map[string]int{}, byRegion: map[string]int{}, byIP: map[string]int{}, byUA: map[string]int{}, findingCount: map[string]int{}}
}

func (s *impactSummary) add(e trailEvent) {
	s.total++
	if s.first.IsZero() || e.EventTime.Before(s.first) {
		s.first = e.EventTime
	}
	if e.EventTime.After(s.last) {
		s.last = e.EventTime
	}
	s.byEvent[e.EventName]++
	s.byService[strings.TrimSuffix(e.EventSource, ".amazonaws.com")]++
	s.byRegion[e.AWSRegion]++
	if e.SourceIPAddress != "" {
		s.byIP[e.SourceIPAddress]++
	}
	if e.UserAgent != "" {
		s.byUA[e.UserAgent]++
	}
	if e.ErrorCode != "" {
		s.denied++
	}
	if cat, ok := riskyEvents[e.EventName]; ok {
		s.findingCount[cat]++
		s.findings = append(s.findings, map[string]any{"category": cat, "event": e.EventName, "time": e.EventTime.UTC().Format(time.RFC3339),
			"region": e.AWSRegion, "source_ip": e.SourceIPAddress, "access_key_id": e.key, "error_code": e.ErrorCode, "resources": e.resources})
	}
}

const maxFindings = 200

// outputs returns what the events say; the caller adds what it knows of
// regions and derived credentials.
func (s *impactSummary) outputs() *ImpactOutputs {
	rank := map[string]int{}
	for i, c := range findingCategories {
		rank[c] = i
	}
	sort.SliceStable(s.findings, func(i, j int) bool {
		a, b := s.findings[i], s.findings[j]
		if ra, rb := rank[a["category"].(string)], rank[b["category"].(string)]; ra != rb {
			return ra < rb
		}
		return a["time"].(string) < b["time"].(string)
	})
	findings := s.findings
	if len(findings) > maxFindings {
		findings = findings[:maxFindings]
	}
	if findings == nil {
		findings = []map[string]any{}
	}
	out := &ImpactOutputs{
		Events: s.total, ByEvent: s.byEvent, ByService: s.byService, ByRegion: s.byRegion,
		BySourceIP: s.byIP, ByUserAgent: s.byUA, Denied: s.denied, FindingCounts: s.findingCount, Findings: findings,
	}
	if s.total > 0 {
		out.FirstUsed, out.LastUsed = s.first.UTC().Format(time.RFC3339), s.last.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *impactSummary) counts() []string {
	var parts []string
	for _, c := range findingCategories {
		if n := s.findingCount[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return parts
}

func sortedRegionKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
