package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/stanchhq/stanch/actions"
	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/sandbox"
)

type impactResult struct {
	events  int
	regions int
	elapsed time.Duration
	bound   time.Duration
}

// impactQuery runs aws.cloudtrail_impact over 10,000 events in 4 regions
// against the sandbox's real 2 requests/s limit. The bound is the pages of
// one region divided by 2 per second, the regions being read in parallel.
func impactQuery(ctx context.Context) (impactResult, error) {
	const perRegion, pageSize = 2500, 50
	regions := []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"}
	sd, err := sandbox.ParseSeed("bench", []byte(seed(0)))
	if err != nil {
		return impactResult{}, err
	}
	sd.Accounts[0].Regions = regions
	sd.Accounts[0].EventGenerators = []sandbox.SeedEventGenerator{{AccessKeyID: keyID(0), User: "user00000", Regions: regions, Count: perRegion,
		Start: time.Now().Add(-48 * time.Hour), End: time.Now().Add(-time.Hour), Seed: 1}}
	sb, err := sandbox.New(sd, sandbox.Options{})
	if err != nil {
		return impactResult{}, err
	}
	srv := httptest.NewServer(sb)
	defer srv.Close()
	cfg := awsConfig(srv.URL)
	reg, err := actions.NewRegistry(awsactions.Actions(awsactions.NewProvider(awsactions.ProviderOptions{
		Config: func(context.Context, string) (aws.Config, error) { return cfg, nil },
	}))...)
	if err != nil {
		return impactResult{}, err
	}
	impact, _ := reg.Lookup("aws.cloudtrail_impact")
	params, err := impact.Decode(map[string]any{"access_key_id": keyID(0), "regions": "all"})
	if err != nil {
		return impactResult{}, err
	}
	start := time.Now()
	// As a run has it after aws.identify_key: the key's owner is known.
	res, err := impact.Do(ctx, actions.Env{Owner: actions.Owner{Account: account, Credential: keyID(0)}}, params)
	if err != nil {
		return impactResult{}, err
	}
	pages := (perRegion + pageSize - 1) / pageSize
	return impactResult{events: res.Outputs["events"].(int), regions: len(regions), elapsed: time.Since(start), bound: time.Duration(pages) * time.Second / 2}, nil
}

func (r impactResult) render() string {
	return fmt.Sprintf("\n## CloudTrail impact query\n\naws.cloudtrail_impact over %d events in %d regions (%d per region, 50 per page) against the sandbox's\nreal limit of 2 LookupEvents per second per account and region. The bound is one region's pages ÷ 2 per second\n(the regions are read in parallel).\n\n| events read | time | rate-limit bound | ratio |\n|---|---|---|---|\n| %d | %.1f s | %.1f s | %.2f× |\n",
		r.events, r.regions, r.events/max(r.regions, 1), r.events, r.elapsed.Seconds(), r.bound.Seconds(), float64(r.elapsed)/float64(r.bound))
}
