package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/actions"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/slack"
)

func newPermissionsCmd(g *globals) *cobra.Command {
	var paths []string
	cmd := &cobra.Command{
		Use:   "permissions --playbook FILE|GLOB...",
		Short: "Print the least-privilege IAM policy that playbooks need",
		Long: `Print the IAM policy document (JSON) that stanch's own credentials, or its response roles,
need to run the given playbooks: exactly the IAM actions that the playbooks' actions declare,
and nothing else. Where the playbooks make a resource known, the grant is narrowed to it: a
rotation's Secrets Manager actions are allowed only on the secrets under its secret_id (for
the example, arn:aws:secretsmanager:*:*:secret:iam-user/*). The actions on the leaked user,
role or key stay on any resource, since which one leaks is known only when it does; stderr
says which statements stay broad and why. Attach it to the responder user or role.
examples/iam/responder-policy.json is this command's output for examples/playbooks/*.yaml.

What the playbooks need from other services (the GitHub App's permissions, such as
secret_scanning_alerts:write, or Slack scopes) is listed on stderr, so that stdout stays the
policy document.`,
		Args: exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(paths) == 0 {
				return usageError{fmt.Errorf("permissions needs at least one --playbook FILE")}
			}
			reg, err := schemaRegistry()
			if err != nil {
				return err
			}
			books, err := loadPlaybooks(g, reg, paths)
			if err != nil {
				return err
			}
			doc, broad := iamPolicy(reg, books, g.cfg.roleARNs())
			out, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return err
			}
			sayLines(g.stdout, string(out))
			if len(broad) > 0 {
				sayln(g.stderr, "Statements that stay broad, and why:")
				for _, b := range broad {
					say(g.stderr, "  %s\n", b)
				}
			}
			printOtherPermissions(g, reg, books)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "playbook", nil, "playbook YAML file or quoted glob (repeatable): --playbook 'playbooks/*.yaml' --playbook extra.yaml")
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
// A permission whose resource the playbooks make known (the secrets a
// rotation writes, under the playbook's prefix) is granted on those
// resources only; the rest stays on any resource, and broad says why.
func iamPolicy(reg *actions.Registry, books []*playbooks.Playbook, roleARNs []string) (doc policyDocument, broad []string) {
	anywhere := map[string]bool{}          // actions allowed on any resource
	scoped := map[string]map[string]bool{} // action → resource patterns
	why := map[string]string{}             // action → why it stays broad, when a step could have scoped it
	for _, pb := range books {
		outputs := map[string][]string{}
		for _, step := range pb.Steps {
			a, ok := reg.Lookup(step.Action)
			if !ok {
				continue
			}
			spec := a.Spec()
			if strings.HasPrefix(step.Action, "aws.") {
				params := step.PatternParams(pb, outputs)
				for _, perm := range spec.Permissions {
					if perm.Provider != "" && perm.Provider != "aws" {
						continue // not IAM: listed beside the policy
					}
					resource, reason := permissionResource(perm, params)
					if resource == "" {
						anywhere[perm.Name] = true
						if reason != "" {
							why[perm.Name] = fmt.Sprintf("%s: step %s of %s: %s", perm.Name, step.ID, pb.Name, reason)
						}
						continue
					}
					if scoped[perm.Name] == nil {
						scoped[perm.Name] = map[string]bool{}
					}
					scoped[perm.Name][resource] = true
				}
			}
			for _, o := range spec.Outputs {
				outputs[step.ID] = append(outputs[step.ID], o.Name)
			}
		}
	}
	doc = policyDocument{Version: "2012-10-17"}
	// One statement per set of resources; an action allowed anywhere needs
	// no narrower grant.
	byResources := map[string][]string{}
	for name, resources := range scoped {
		if anywhere[name] {
			continue
		}
		key := strings.Join(slices.Sorted(maps.Keys(resources)), "\n")
		byResources[key] = append(byResources[key], name)
	}
	if len(anywhere) > 0 {
		doc.Statement = append(doc.Statement, policyStatement{
			Sid:    "StanchResponder",
			Effect: "Allow",
			Action: slices.Sorted(maps.Keys(anywhere)),
			// Incident response acts on whichever user, role or key leaked,
			// so these resources cannot be known in advance.
			Resource: "*",
		})
		broad = append(broad, "StanchResponder allows its actions on any resource: they act on whichever IAM user, role or key leaked, known only when it does")
	}
	for i, key := range slices.Sorted(maps.Keys(byResources)) {
		sid := "StanchSecrets"
		if i > 0 {
			sid = fmt.Sprintf("StanchSecrets%d", i+1)
		}
		actionsOf := byResources[key]
		sort.Strings(actionsOf)
		doc.Statement = append(doc.Statement, policyStatement{Sid: sid, Effect: "Allow", Action: actionsOf, Resource: strings.Split(key, "\n")})
	}
	for _, name := range slices.Sorted(maps.Keys(why)) {
		broad = append(broad, why[name])
	}
	if len(roleARNs) > 0 {
		doc.Statement = append(doc.Statement, policyStatement{Sid: "AssumeResponseRoles", Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: roleARNs})
	}
	return doc, broad
}

// permissionResource is the resource a step grants perm on: its Resource
// pattern with the step's parameters filled in, or "" for any resource,
// with the reason when the pattern could not be filled.
func permissionResource(perm actions.Permission, params map[string]string) (string, string) {
	if perm.Resource == "" {
		return "", ""
	}
	resource := perm.Resource
	for {
		open := strings.Index(resource, "{")
		end := strings.Index(resource, "}")
		if open < 0 || end < open {
			break
		}
		name := resource[open+1 : end]
		value, ok := params[name]
		switch {
		case !ok:
			return "", fmt.Sprintf("%s is known only at run time", name)
		case strings.HasPrefix(value, "arn:"):
			// A full ARN names the resource itself.
			return value, ""
		}
		resource = resource[:open] + value + resource[end+1:]
	}
	for strings.Contains(resource, "**") {
		resource = strings.ReplaceAll(resource, "**", "*")
	}
	return resource, ""
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
				add(need{"slack", "users:read", "approval", "record the name of who decided beside their id (users.info)"})
				approvers := slices.Clone(ap.Approvers)
				if ap.Escalate != nil {
					approvers = append(approvers, ap.Escalate.Approvers...)
				}
				if slices.ContainsFunc(approvers, slack.IsGroupID) {
					add(need{"slack", "usergroups:read", "approval", "check that who clicked is in an approving user group"})
				}
			}
			a, ok := reg.Lookup(step.Action)
			if !ok {
				continue
			}
			provider, _, _ := strings.Cut(step.Action, ".")
			for _, perm := range a.Spec().Permissions {
				p := provider
				if perm.Provider != "" {
					p = perm.Provider
				}
				if p == "aws" {
					continue // in the IAM policy
				}
				add(need{p, perm.Name, step.Action, perm.Why})
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
	sayln(g.stderr, "Besides this IAM policy, the playbooks need (see `stanch actions`):")
	for _, n := range needs {
		say(g.stderr, "  %-8s %-30s %s: %s\n", n.provider, n.name, n.action, n.why)
	}
}
