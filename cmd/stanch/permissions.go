package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/actions"
	slackact "github.com/stanchhq/stanch/actions/slack"
	"github.com/stanchhq/stanch/playbooks"
)

func newPermissionsCmd(g *globals) *cobra.Command {
	var paths []string
	cmd := &cobra.Command{
		Use:   "permissions --playbook FILE...",
		Short: "Print the least-privilege IAM policy that playbooks need",
		Long: `Print the IAM policy document (JSON) that stanch's own credentials, or its response roles,
need to run the given playbooks: exactly the IAM actions that the playbooks' actions declare,
and nothing else. Attach it to the responder user or role. examples/iam/responder-policy.json
is this command's output for examples/playbooks/*.yaml.

What the playbooks need from other services (the GitHub App's permissions, such as
secret_scanning_alerts:write, or Slack scopes) is listed on stderr, so that stdout stays the
policy document.`,
		Args: exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(paths) == 0 {
				return usageError{fmt.Errorf("permissions needs at least one --playbook FILE")}
			}
			reg, err := g.registry()
			if err != nil {
				return err
			}
			var books []*playbooks.Playbook
			for _, path := range paths {
				pb, err := loadPlaybook(g, reg, path)
				if err != nil {
					return err
				}
				books = append(books, pb)
			}
			cfg, err := loadConfig(g.configPath)
			if err != nil {
				return err
			}
			out, err := json.MarshalIndent(iamPolicy(reg, books, cfg.roleARNs()), "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, string(out))
			printOtherPermissions(g, reg, books)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "playbook", nil, "playbook YAML file (repeatable; shell globs work: --playbook a.yaml --playbook b.yaml)")
	return cmd
}

type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource any      `json:"Resource"` // "*" or a list of ARNs
}

// iamPolicy is the union of the IAM permissions that the AWS actions used
// by books declare, plus sts:AssumeRole on the configured response roles.
func iamPolicy(reg *actions.Registry, books []*playbooks.Playbook, roleARNs []string) policyDocument {
	set := map[string]bool{}
	for _, pb := range books {
		for _, step := range pb.Steps {
			a, ok := reg.Lookup(step.Action)
			if !ok || !strings.HasPrefix(step.Action, "aws.") {
				continue
			}
			for _, perm := range a.Spec().Permissions {
				set[perm.Name] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	doc := policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid:    "StanchResponder",
		Effect: "Allow",
		Action: names,
		// Incident response acts on whichever user, role or key leaked, so
		// the resources cannot be known in advance.
		Resource: "*",
	}}}
	if len(roleARNs) > 0 {
		doc.Statement = append(doc.Statement, policyStatement{Sid: "AssumeResponseRoles", Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: roleARNs})
	}
	return doc
}

// printOtherPermissions lists, on stderr, the permissions that the
// playbooks' actions other than AWS's declare, by provider: what the GitHub
// App (or token) and the Slack bot need.
func printOtherPermissions(g *globals, reg *actions.Registry, books []*playbooks.Playbook) {
	type need struct{ provider, name, action, why string }
	seen := map[need]bool{}
	var needs []need
	add := func(n need) {
		if !seen[n] {
			seen[n] = true
			needs = append(needs, n)
		}
	}
	for _, pb := range books {
		for _, step := range pb.Steps {
			// Approval messages are posted by stanch serve, not by an action.
			if ap := step.Approval; ap != nil && ap.Channel != "" {
				add(need{"slack", "chat:write", "approval", "post approval messages and show the decision"})
				add(need{"slack", "channels:history", "approval", "find an approval message an interrupted post left"})
				add(need{"slack", "channels:read", "approval", "find a channel's id from its name"})
				approvers := slices.Clone(ap.Approvers)
				if ap.Escalate != nil {
					approvers = append(approvers, ap.Escalate.Approvers...)
				}
				if slices.ContainsFunc(approvers, slackact.IsGroupID) {
					add(need{"slack", "usergroups:read", "approval", "check that who clicked is in an approving user group"})
				}
			}
			a, ok := reg.Lookup(step.Action)
			provider, _, _ := strings.Cut(step.Action, ".")
			if !ok || provider == "aws" {
				continue
			}
			for _, perm := range a.Spec().Permissions {
				add(need{provider, perm.Name, step.Action, perm.Why})
			}
		}
	}
	if len(needs) == 0 {
		return
	}
	sort.Slice(needs, func(i, j int) bool {
		a, b := needs[i], needs[j]
		if a.provider != b.provider {
			return a.provider < b.provider
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.action < b.action
	})
	fmt.Fprintln(g.stderr, "Besides this IAM policy, the playbooks need (see `stanch actions`):")
	for _, n := range needs {
		fmt.Fprintf(g.stderr, "  %-8s %-30s %s: %s\n", n.provider, n.name, n.action, n.why)
	}
}
