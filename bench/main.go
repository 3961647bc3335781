// Command bench measures stanch against the sandbox and writes
// docs/benchmarks.md (`make bench`): time to contain (webhook request sent
// to the UpdateAccessKey that makes the key Inactive) beside the same AWS
// calls made directly with the SDK, the acknowledgement latency and
// throughput of the webhook, a burst of 1,000 keys over 100 accounts with
// and without long impact queries, the AWS CLI runbook side by side, the
// memory of waiting runs, an idle stanch serve's CPU and writes, and the
// CloudTrail impact query against its rate limit; then the same on
// PostgreSQL with one and three replicas, and the takeover after a kill
// (bench/replicas.go), 200 GitHub tokens leaked at once (bench/tokens.go),
// and the memory of exporting 10,000 runs (bench/export.go), which fails the
// benchmark over its budget.
// -only runs one part (ack, contain, export, idle, impact, postgres or
// tokens) and prints it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"
)

const (
	account    = "111122223333"
	hookSecret = "bench-eventbridge-secret"
)

// containment is the hot path measured: the containment steps of the
// example playbook.
const containment = `
name: contain
steps:
  - id: identify
    action: aws.identify_key
    with: {access_key_id: "${{ alert.credential.id }}"}
  - id: deactivate
    action: aws.deactivate_key
    with:
      access_key_id: ${{ alert.credential.id }}
      user_name: ${{ steps.identify.outputs.user_name }}
      account: ${{ steps.identify.outputs.account }}
  - id: revoke_sessions
    action: aws.revoke_sessions
    with:
      user_name: ${{ steps.identify.outputs.user_name }}
`

func main() {
	alerts := flag.Int("alerts", 200, "alerts per latency")
	latencies := flag.String("latencies", "0ms,50ms", "injected latency per AWS call, comma-separated")
	out := flag.String("out", "", "also write the report to this markdown file")
	only := flag.String("only", "", "run one benchmark only and print it: ack, contain, export, idle, impact, postgres or tokens")
	idleWindow := flag.Duration("idle", time.Minute, "how long the idle benchmark watches stanch serve")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	if *only == "ack" {
		ack, err := acknowledge(ctx, 2000, 16)
		if err != nil {
			fail(err)
		}
		fmt.Print(ack.render())
		pprof.StopCPUProfile()
		return
	} else if *only == "idle" {
		idle, err := idleCost(ctx, 100, *idleWindow)
		if err != nil {
			fail(err)
		}
		fmt.Print(idle.render())
		return
	} else if *only == "contain" {
		rows, err := containRows(ctx, *latencies, *alerts)
		if err != nil {
			fail(err)
		}
		fmt.Print(render(rows, *alerts))
		pprof.StopCPUProfile()
		return
	} else if *only == "impact" {
		impact, err := impactQuery(ctx)
		if err != nil {
			fail(err)
		}
		fmt.Print(impact.render())
		return
	} else if *only == "postgres" {
		fmt.Print(postgresFigures(ctx).render())
		return
	} else if *only == "tokens" {
		tokens, err := tokenRows(ctx, 200)
		if err != nil {
			fail(err)
		}
		fmt.Print(renderTokens(tokens))
		return
	} else if *only == "export" {
		export, err := exportFigures(ctx, exportRunCount)
		if err != nil {
			fail(err)
		}
		fmt.Print(export.render())
		failOver(export)
		return
	} else if *only != "" {
		fail(fmt.Errorf("-only %q: the benchmarks that run alone are: ack, contain, export, idle, impact, postgres, tokens", *only))
	}

	rows, err := containRows(ctx, *latencies, *alerts)
	if err != nil {
		fail(err)
	}
	ack, err := acknowledge(ctx, 2000, 16)
	if err != nil {
		fail(err)
	}
	burst, err := burstContain(ctx, 100, 10, 50*time.Millisecond, 0)
	if err != nil {
		fail(err)
	}
	busy, err := burstContain(ctx, 100, 10, 50*time.Millisecond, 20)
	if err != nil {
		fail(err)
	}
	mem, err := waitingMemory(ctx, 1000)
	if err != nil {
		fail(err)
	}
	idle, err := idleCost(ctx, 100, *idleWindow)
	if err != nil {
		fail(err)
	}
	cli, err := runbook(ctx, 10)
	if err != nil {
		fail(err)
	}
	cli.stanch = rows[0].revoke[0]
	impact, err := impactQuery(ctx)
	if err != nil {
		fail(err)
	}
	tokens, err := tokenRows(ctx, 200)
	if err != nil {
		fail(err)
	}
	export, err := exportFigures(ctx, exportRunCount)
	if err != nil {
		fail(err)
	}
	pg := postgresFigures(ctx)
	report := render(rows, *alerts) + renderBurst(burst, busy) + cli.render() + ack.render() + mem.render() + idle.render() + impact.render() + renderTokens(tokens) + export.render() + pg.render()
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fail(err)
		}
	}
	failOver(export)
}

// failOver ends the benchmark with a failure when the export went over its
// memory budget: the figure is a promise (issue 17), not only a measurement.
func failOver(export exportResult) {
	if f := export.failures(); len(f) > 0 {
		fail(fmt.Errorf("%s", strings.Join(f, "; ")))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func memory() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	var kb int
	fmt.Sscanf(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]), "MemTotal: %d kB", &kb)
	return fmt.Sprintf("%.0f GiB memory", float64(kb)/1024/1024)
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
