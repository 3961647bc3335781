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
log and the state (never secrets). Stop it with Ctrl-C.`,
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
