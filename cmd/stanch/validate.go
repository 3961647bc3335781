package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stanchhq/stanch/playbooks"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check playbooks without running anything",
		Long: `Check playbooks: YAML syntax, keys, actions and their parameters, expressions and step
references. Every problem in every file is reported at once as file:line:col with a hint.
Before parsing, a file is refused if it is larger than 1 MiB, nests collections more than 64
deep or holds more than 50,000 YAML nodes: it is safe to run on files proposed in a pull request.
Prints ok and exits 0 when all are valid; exits 1 otherwise.`,
		Args: minArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			reg, err := schemaRegistry()
			if err != nil {
				return err
			}
			bad := 0
			for _, path := range args {
				_, err := playbooks.Load(path, reg)
				if err == nil {
					continue
				}
				bad++
				var perrs playbooks.Errors
				if errors.As(err, &perrs) {
					sayLines(g.stdout, perrs.Error())
				} else {
					say(g.stdout, "%s: %v\n", path, err)
				}
			}
			if bad > 0 {
				return &exitError{code: exitFailed, msg: fmt.Sprintf("%d of %d playbook(s) invalid", bad, len(args))}
			}
			sayln(g.stdout, "ok")
			return nil
		},
	}
}
