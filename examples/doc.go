// Package examples holds the example playbooks, alerts and sandbox seed, and
// embeds them so that `stanch demo` works from any directory.
package examples

import "embed"

// FS holds playbooks/, alerts/ and sandbox/.
//
//go:embed playbooks/*.yaml alerts/*.json sandbox/seed.yaml
var FS embed.FS
