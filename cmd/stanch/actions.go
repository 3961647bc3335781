package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newActionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "actions [NAME...]",
		Short: "List every action with its parameters, outputs and permissions",
		RunE: func(_ *cobra.Command, args []string) error {
			reg, err := schemaRegistry()
			if err != nil {
				return err
			}
			specs := reg.Specs()
			if len(args) > 0 {
				specs = specs[:0]
				for _, name := range args {
					a, ok := reg.Lookup(name)
					if !ok {
						return usageError{fmt.Errorf("no action %q; known actions: %s", name, strings.Join(reg.Names(), ", "))}
					}
					specs = append(specs, a.Spec())
				}
			}
			if asJSON {
				return writeJSON(g, specs)
			}
			for i, s := range specs {
				if i > 0 {
					sayln(g.stdout)
				}
				say(g.stdout, "%s\n  %s\n", s.Name, s.Summary)
				sayln(g.stdout, "  parameters:")
				for _, p := range s.Params {
					req := ""
					if p.Required {
						req = ", required"
					}
					say(g.stdout, "    %-18s %s%s  %s\n", p.Name, p.Type, req, p.Doc)
				}
				sayln(g.stdout, "  outputs:")
				for _, o := range s.Outputs {
					secret := ""
					if o.Secret {
						secret = " (secret: never stored or shown)"
					}
					say(g.stdout, "    %-18s %s  %s%s\n", o.Name, o.Type, o.Doc, secret)
				}
				sayln(g.stdout, "  permissions:")
				for _, p := range s.Permissions {
					name := p.Name
					if p.Provider != "" {
						name = p.Provider + ": " + name
					}
					say(g.stdout, "    %-28s %s\n", name, p.Why)
				}
				if s.Example != "" {
					sayln(g.stdout, "  example:")
					for _, line := range strings.Split(strings.TrimRight(s.Example, "\n"), "\n") {
						say(g.stdout, "    %s\n", line)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
