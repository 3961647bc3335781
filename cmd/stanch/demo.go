package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/spf13/cobra"

	awsactions "github.com/stanchhq/stanch/actions/aws"
	"github.com/stanchhq/stanch/alert"
	"github.com/stanchhq/stanch/examples"
	"github.com/stanchhq/stanch/playbooks"
	"github.com/stanchhq/stanch/runner"
	"github.com/stanchhq/stanch/sandbox"
)

const (
	demoPlaybook = "playbooks/aws-key-leaked.yaml"
	demoAlert    = "alerts/manual-aws-key.json"
	demoSeed     = "sandbox/seed.yaml"
)

func newDemoCmd(g *globals) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Contain a leaked key in the local sandbox and show what happened",
		Long: `Start the sandbox seeded with a leaked AWS access key, run
examples/playbooks/aws-key-leaked.yaml on examples/alerts/manual-aws-key.json with the
embedded SQLite store in a temporary directory, and print a timeline of what happened.
Nothing outside this process is touched: every AWS call goes, through the real AWS SDK,
to the sandbox on 127.0.0.1.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo(cmd.Context(), g, keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary store and print its path, for 'stanch runs show'")
	return cmd
}

func demo(ctx context.Context, g *globals, keep bool) error {
	out := g.stdout
	seedData, err := examples.FS.ReadFile(demoSeed)
	if err != nil {
		return err
	}
	seed, err := sandbox.ParseSeed("examples/"+demoSeed, seedData)
	if err != nil {
		return err
	}
	sb, err := sandbox.New(seed, sandbox.Options{Logger: g.logger()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	endpoint := "http://" + ln.Addr().String()

	responder := seed.Accounts[0].Users[0].Keys[0]
	// A configuration of its own, so that nothing in the user's environment
	// (AWS_PROFILE, endpoint variables) can send the demo anywhere else.
	demoAWS := aws.Config{
		Region:       "us-east-1",
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(responder.ID, responder.Secret, "")),
		BaseEndpoint: aws.String(endpoint),
	}
	provider := awsactions.ProviderOptions{Config: func(context.Context, string) (aws.Config, error) { return demoAWS, nil }}
	reg, err := newRegistry(provider)
	if err != nil {
		return err
	}
	pbData, err := examples.FS.ReadFile(demoPlaybook)
	if err != nil {
		return err
	}
	pb, err := playbooks.Parse("examples/"+demoPlaybook, pbData, reg)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "stanch-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	dbURL := "file:" + filepath.Join(dir, "stanch.db")
	prog := newProgress(out)
	r, stop, err := startRunner(ctx, g, dbURL, reg, prog.observe, 10*time.Second)
	if err != nil {
		return err
	}
	defer stop()

	fmt.Fprintf(out, "sandbox   AWS (IAM, STS, CloudTrail, Secrets Manager) at %s, account %s\n", endpoint, seed.Accounts[0].ID)
	alertData, err := examples.FS.ReadFile(demoAlert)
	if err != nil {
		return err
	}
	read := time.Now()
	a, err := alert.Parse(alertData, read)
	if err != nil {
		return err
	}
	before, _ := sb.KeyStatus(a.Credential.Account, a.Credential.ID)
	fmt.Fprintf(out, "alert     %s\n          %s %s in account %s is %s\n", a.Title, a.Credential.Kind, a.Credential.ID, a.Credential.Account, before)
	fmt.Fprintf(out, "playbook  %s: %s\n\n", pb.Name, pb.Description)

	sub, err := r.Submit(ctx, a, []*playbooks.Playbook{pb})
	if err != nil {
		return err
	}
	if len(sub.Started) != 1 {
		return errors.New("the demo alert did not start a run")
	}
	run, err := demoFollow(ctx, g, r, prog, sub.Started[0].ID, dbURL)
	if err != nil {
		return err
	}

	fmt.Fprintln(out)
	for _, c := range sb.Calls() {
		if c.Action == "UpdateAccessKey" && c.Effective {
			fmt.Fprintf(out, "contained %s %s after the alert was read (Active → Inactive)\n", a.Credential.ID, c.Time.Sub(read).Round(time.Millisecond))
			break
		}
	}
	after, ok := sb.KeyStatus(a.Credential.Account, a.Credential.ID)
	if !ok {
		after = "deleted"
	}
	fmt.Fprintf(out, "%s: %s → %s\n", a.Credential.ID, before, after)

	steps, err := r.Store().Steps(ctx, run.ID)
	if err != nil {
		return err
	}
	journal, err := r.Store().Journal(ctx, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nwhat the sandbox received (through the real AWS SDK):")
	printCalls(out, sb.Calls(), read)
	fmt.Fprintln(out)
	printRun(g, run, steps, journal)
	if keep {
		fmt.Fprintf(out, "\nstore kept: stanch runs show %s --database %s\n", run.ID, dbURL)
	}
	if run.Status != runner.RunSucceeded {
		return conclude(g, run, "")
	}
	return nil
}

// demoApprover is who the demo approves as: the approver the example
// playbook names.
const demoApprover = "security-oncall"

// demoFollow follows the run, approving each step that waits for approval
// the way a person would with stanch approve.
func demoFollow(ctx context.Context, g *globals, r *runner.Runner, prog *progress, runID, dbURL string) (runner.Run, error) {
	decided := ""
	for {
		run, err := prog.waitRun(ctx, r.Store(), runID, decided)
		if err != nil || run.Status != runner.RunWaitingApproval {
			return run, err
		}
		fmt.Fprintf(g.stdout, "  $ stanch approve %s %s --by %s --database %s    # the demo approves as the on-call engineer\n", run.ID, run.WaitingStep, demoApprover, dbURL)
		if _, _, err := r.Decide(ctx, run.ID, run.WaitingStep, runner.Approved, demoApprover, "cli"); err != nil {
			return run, err
		}
		decided = run.WaitingStep
	}
}

// printCalls lists the sandbox's call log, folding repeats of the same call
// (pages of a CloudTrail query) into one line.
func printCalls(out io.Writer, calls []sandbox.Call, since time.Time) {
	for i := 0; i < len(calls); {
		c := calls[i]
		j := i + 1
		for j < len(calls) && calls[j].Service == c.Service && calls[j].Action == c.Action && !calls[j].Effective && !c.Effective {
			j++
		}
		mark := " "
		if c.Effective {
			mark = "*"
		}
		detail := fmt.Sprint(c.Params)
		if n := j - i; n > 1 {
			detail = fmt.Sprintf("×%d", n)
		}
		fmt.Fprintf(out, "  %s +%-8s %s %s %s\n", mark, c.Time.Sub(since).Round(time.Millisecond), c.Service, c.Action, detail)
		i = j
	}
	fmt.Fprintln(out, "  (* changed state)")
}
