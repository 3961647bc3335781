package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildInfo is what this binary knows of itself, from the Go build info:
// the module version (a tag for `go install …@v1.2.3`, "(devel)" for a
// build from a checkout), the VCS commit and whether the tree was modified,
// and the Go version.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	CommitAt  string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

func readBuildInfo() buildInfo {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return buildInfo{Version: "unknown", GoVersion: "unknown"}
	}
	b := buildInfo{Version: info.Main.Version, GoVersion: info.GoVersion}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitAt = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is one line: "stanch v1.2.3 (commit 0123abcd…, modified) go1.26.8".
func (b buildInfo) String() string {
	var parts []string
	if b.Commit != "" {
		c := "commit " + b.Commit
		if b.CommitAt != "" {
			c += " of " + b.CommitAt
		}
		if b.Modified {
			c += ", with uncommitted changes"
		}
		parts = append(parts, c)
	}
	s := "stanch " + b.Version
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s + " " + b.GoVersion
}

func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:         "version",
		Annotations: map[string]string{ownSettings: "yes"},
		Short:       "Print stanch's version, commit and Go version",
		Args:        exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if asJSON {
				return writeJSON(g, b)
			}
			fmt.Fprintln(g.stdout, b)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
