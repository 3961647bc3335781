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
	// Timeline is a map rather than a struct because outputs are plain
	// values (see actions.New); impactTimeline.output builds it.
	Timeline map[string]any `json:"timeline" doc:"events over time, derived credentials included: bucket (the smallest of 1m, 5m, 15m, 1h, 6h, 24h, 168h that holds first_used..last_used in at most 48 points), start (first_used truncated to the bucket, UTC), points, by_region (every region) and by_event (the 8 busiest event names, the rest as other if any), each name a list of points counts, count k being the events in [start+k*bucket, start+(k+1)*bucket); no events: bucket 1m, start \"\", points 0, empty maps"`
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
	return actions.New(actions.Definition[ImpactParams, ImpactOutputs]{
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
	resources []resource
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
	st := resumedImpact(env, in)
	if st == nil {
		regions, err := p.impactRegions(ctx, in)
		if err != nil {
			return result{}, err
		}
		end := time.Now()
		st = newImpactState(in, regions, end.Add(-time.Duration(in.Lookback)), end)
	}
	cfg, err := p.config(ctx, in.Account)
	if err != nil {
		return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
	}
	q := &impactQuery{p: p, env: env, cfg: cfg, st: st}
	for {
		key, ok := st.key()
		if !ok {
			break
		}
		if err := q.read(ctx, key); err != nil {
			var failed checkpointError
			if ctx.Err() != nil && !errors.As(err, &failed) {
				return result{}, actions.Retryable(fmt.Errorf("impact of %s: %w", in.AccessKeyID, ctx.Err()))
			}
			return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
		}
		st.merge(key)
		if err := q.save(ctx, false); err != nil {
			return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
		}
	}
	regions, failed := st.Regions, st.Failed
	if len(failed) == len(regions) && len(regions) > 0 {
		// A retry is worth a new look, not this attempt's failures again.
		q.st = newImpactState(in, regions, st.Start, st.End)
		if err := q.save(ctx, true); err != nil {
			return result{}, fmt.Errorf("impact of %s: %w", in.AccessKeyID, err)
		}
		return result{}, actions.Retryable(fmt.Errorf("impact of %s: every region failed: %v", in.AccessKeyID, failed))
	}
	out := st.Summary.outputs()
	out.DerivedCredentials = st.derivedOutput()
	out.Regions = regions
	out.RegionsFailed = failed
	msg := fmt.Sprintf("%d event(s) of %s in %d region(s)", st.Summary.Total, in.AccessKeyID, len(regions))
	if st.Summary.Total > 0 {
		msg += fmt.Sprintf(", first %s, last %s", out.FirstUsed, out.LastUsed)
	}
	if n := len(st.Derived); n > 0 {
		msg += fmt.Sprintf("; %d derived credential(s)", n)
	}
	if fc := st.Summary.counts(); len(fc) > 0 {
		msg += "; findings: " + strings.Join(fc, ", ")
	}
	if len(failed) > 0 {
		msg += fmt.Sprintf("; %d region(s) could not be read: %s", len(failed), strings.Join(sortedRegionKeys(failed), ", "))
	}
	return result{Outcome: actions.Done, Message: msg, Outputs: out}, nil
}

// resumedImpact returns the state the step's last attempt saved, or nil
// when there is none or it cannot be used: the query then starts again.
func resumedImpact(env actions.Env, in *ImpactParams) *impactState {
	if env.Resumed == nil {
		return nil
	}
	st, err := decodeImpactState(env.Resumed, in)
	if err != nil {
		env.Log().Warn("impact: the saved checkpoint cannot be used; the query starts again", "key", in.AccessKeyID, "error", err.Error())
		return nil
	}
	env.Log().Info("impact: resumed from the saved checkpoint", "key", in.AccessKeyID, "progress", st.progress())
	return st
}

// impactCheckpointEvery is how often, at most, the impact step saves how
// far it got. Each save is a fenced write of the whole state, and a step
// reads up to 2 pages a second in every region at once (34 in 17
// regions): once a second keeps that at one write a second per step, and
// a resumed step reads again at most a second's pages.
const impactCheckpointEvery = time.Second

// impactQuery reads the pages of one key in every region at once, and
// saves the state as it goes.
type impactQuery struct {
	p     *Provider
	env   actions.Env
	cfg   awssdk.Config
	st    *impactState
	saved time.Time
}

// page is what a region's reader hands over: a page, its end, a failure,
// or that the saved token was refused and the region starts again.
type page struct {
	pair    *pairState
	events  []trailEvent
	next    string
	last    bool
	restart bool
	err     error
}

// read reads key in every region not read yet, from where each got; a
// region that fails is recorded and does not stop the others. An error is
// a failed checkpoint or the end of ctx.
func (q *impactQuery) read(ctx context.Context, key pendingKey) error {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan page)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	open := 0
	for _, pr := range q.st.Pairs {
		if pr.Done {
			continue
		}
		pr.err = ""
		open++
		wg.Go(func() { q.p.readRegion(ctx, q.cfg, q.st.Account, key.Key, pr, q.st.Start, q.st.End, pages) })
	}
	for open > 0 {
		var pg page
		select {
		case pg = <-pages:
		case <-ctx.Done():
			return ctx.Err()
		}
		pr := pg.pair
		switch {
		case pg.err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			pr.err = pg.err.Error()
			open--
			continue
		case pg.restart:
			*pr = pairState{Region: pr.Region, Summary: newImpact()}
			continue
		}
		q.st.add(pr, pg.events)
		pr.Pages++
		pr.Token, pr.Done = pg.next, pg.last
		if pg.last {
			open--
		}
		if q.env.Progress != nil {
			q.env.Progress(fmt.Sprintf("%s %s: %d page(s), %d event(s)", key.Key, pr.Region, pr.Pages, pr.Summary.Total))
		}
		if err := q.save(ctx, false); err != nil {
			return err
		}
	}
	return nil
}

// save hands the state to the step's checkpoint, at most once per
// p.checkpointEvery (impactCheckpointEvery) unless forced.
func (q *impactQuery) save(ctx context.Context, force bool) error {
	if q.env.Checkpoint == nil || !force && time.Since(q.saved) < q.p.checkpointEvery {
		return nil
	}
	b, err := q.st.encode()
	if err == nil {
		err = q.env.Checkpoint(ctx, b)
	}
	if err != nil {
		return checkpointError{err}
	}
	q.saved = time.Now()
	return nil
}

// checkpointError is a failed save: the step no longer belongs to this
// attempt, or the store is down. The runner, which knows, decides whether
// it is worth retrying.
type checkpointError struct{ err error }

func (e checkpointError) Error() string { return "checkpoint: " + e.err.Error() }
func (e checkpointError) Unwrap() error { return e.err }

// readRegion reads key's pages in one region from pr.Token on, and hands
// each to pages until the last, a failure, or the end of ctx. It reads
// pr's region and token only, before it starts: the caller owns pr.
func (p *Provider) readRegion(ctx context.Context, cfg awssdk.Config, account, key string, pr *pairState, start, end time.Time, pages chan<- page) {
	region, token := pr.Region, pr.Token
	send := func(pg page) bool {
		pg.pair = pr
		select {
		case pages <- pg:
			return true
		case <-ctx.Done():
			return false
		}
	}
	client := cloudtrail.NewFromConfig(cfg, func(o *cloudtrail.Options) {
		o.Region = region
		o.RetryMaxAttempts = 10 // throttles are expected at this rate; keep trying
	})
	limit := p.limiter(account, region)
	input := func(token string) *cloudtrail.LookupEventsInput {
		in := &cloudtrail.LookupEventsInput{
			LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyAccessKeyId, AttributeValue: awssdk.String(key)}},
			StartTime:        awssdk.Time(start),
			EndTime:          awssdk.Time(end),
			MaxResults:       awssdk.Int32(50),
		}
		if token != "" {
			in.NextToken = awssdk.String(token)
		}
		return in
	}
	pager := cloudtrail.NewLookupEventsPaginator(client, input(token))
	resumed := token != ""
	for {
		if err := limit.Wait(ctx); err != nil {
			send(page{err: err})
			return
		}
		out, err := pager.NextPage(ctx)
		var expired *cttypes.InvalidNextTokenException
		if err != nil && resumed && errors.As(err, &expired) {
			// The token a dead attempt saved is no longer valid: read
			// the region again from its first page.
			resumed = false
			pager = cloudtrail.NewLookupEventsPaginator(client, input(""))
			if !send(page{restart: true}) {
				return
			}
			continue
		}
		if err != nil {
			send(page{err: classify(fmt.Errorf("cloudtrail:LookupEvents: %w", err))})
			return
		}
		resumed = false
		pg := page{events: trailEvents(out, region, key), last: !pager.HasMorePages()}
		if !pg.last {
			pg.next = awssdk.ToString(out.NextToken)
		}
		if !send(pg) || pg.last {
			return
		}
	}
}

// trailEvents reads the records of a page of key's events in region.
func trailEvents(out *cloudtrail.LookupEventsOutput, region, key string) []trailEvent {
	var events []trailEvent
	for _, ev := range out.Events {
		var e trailEvent
		if err := json.Unmarshal([]byte(awssdk.ToString(ev.CloudTrailEvent)), &e); err != nil {
			continue // a record we cannot read says nothing we can use
		}
		if e.AWSRegion == "" {
			e.AWSRegion = region
		}
		for _, r := range ev.Resources {
			e.resources = append(e.resources, resource{Type: awssdk.ToString(r.ResourceType), Name: awssdk.ToString(r.ResourceName)})
		}
		e.key = key
		events = append(events, e)
	}
	return events
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

func sortedRegionKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
