package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/sandbox"
)

func newSandboxCmd(g *globals) *cobra.Command {
	var seedPath, listen string
	cmd := &cobra.Command{
		Use:   "sandbox --seed FILE [--listen ADDR]",
		Short: "Run local AWS and GitHub endpoints with seeded accounts, keys, history and alerts",
		Long: `Run the sandbox: local HTTP endpoints that speak the real wire protocols of IAM, STS,
CloudTrail, Secrets Manager, SQS and EC2 (DescribeRegions), and GitHub's secret-scanning REST
API under /api/v3/, with accounts, users, access keys, CloudTrail history, secrets, queues and
alerts loaded from a seed file (see examples/sandbox/seed.yaml).
It prints the export lines that point the AWS SDKs and CLI (and so stanch) at it, for example:

  eval "$(stanch sandbox --seed examples/sandbox/seed.yaml &)"   # or copy the lines it prints

Calls are logged; GET /_sandbox/calls and /_sandbox/state on the same address show the call
log and the state (never secrets). Stop it with Ctrl-C.

To rehearse a playbook against a slow, throttling or failing AWS (or GitHub, or Slack), give a
service a fault: in the seed file,

  faults:
    iam: {latency: 200ms, error_rate: 0.1, throttle_rate: 0.2}

or while it runs, at /_sandbox/faults:

  curl http://127.0.0.1:4566/_sandbox/faults                  # every service's fault
  curl -X PUT http://127.0.0.1:4566/_sandbox/faults/cloudtrail -d '{"throttle_rate": 0.5}'
  curl -X DELETE http://127.0.0.1:4566/_sandbox/faults/cloudtrail   # or /_sandbox/faults: all

latency is added to every call; error_rate is the share of calls answered 503
ServiceUnavailable, throttle_rate the share answered 400 Throttling (429 for GitHub and Slack),
which the SDKs retry. Services: cloudtrail, ec2, github, iam, secretsmanager, slack, sqs, sts.
A PUT replaces the service's fault; a bad value is refused with the reason and changes nothing.
The call log shows each answer's status.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seedPath == "" {
				return usageError{fmt.Errorf("sandbox needs --seed FILE (for example examples/sandbox/seed.yaml)")}
			}
			seed, err := sandbox.LoadSeed(seedPath)
			if err != nil {
				return err
			}
			return sandbox.Serve(cmd.Context(), seed, listen, g.stdout, nil)
		},
	}
	cmd.Flags().StringVar(&seedPath, "seed", "", "seed file: accounts, users, keys (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4566", "address to listen on (host:port; port 0 picks a free one)")
	return cmd
}
