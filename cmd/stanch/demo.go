package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
	stanchslack "github.com/stanchhq/stanch/slack"
)

const (
	demoPlaybook = "playbooks/aws-key-leaked.yaml"
	demoAlert    = "alerts/manual-aws-key.json"
	demoSeed     = "sandbox/seed.yaml"
)

func newDemoCmd(g *globals) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:         "demo",
		Annotations: map[string]string{ownSettings: "yes"},
		Short:       "Contain a leaked key in the local sandbox and show what happened",
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
	// Slack, too, is the sandbox's: the demo clicks the approval buttons
	// as people would, with requests signed like Slack's.
	slack := newSlackSetup(stanchslack.NewClient(stanchslack.Options{Token: seed.Slack.Token, APIURL: endpoint + "/slack/api/"}), demoSigningSecret, g.logger())
	// GitHub is the sandbox's too (the demo alert is not from GitHub, so
	// the playbook's GitHub step is skipped).
	gh := githubSettings{apiURL: endpoint + "/api/v3/"}
	reg, err := newRegistry(provider, gh, slack.client)
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
	r, stop, err := startRunner(ctx, g, dbURL, reg, prog.observe, 10*time.Second, slack.configure)
	if err != nil {
		return err
	}
	defer stop()
	// The demo tells what each click did; the handler's own log of a refused
	// click would only repeat it.
	clicks := httptest.NewServer(slack.handler(r, slog.New(slog.DiscardHandler)))
	defer clicks.Close()

	say(out, "sandbox   AWS (IAM, STS, CloudTrail, Secrets Manager) at %s, account %s\n", endpoint, seed.Accounts[0].ID)
	say(out, "          Slack Web API at %s/slack/api/ (#sec-incidents); button clicks go to %s%s\n", endpoint, clicks.URL, slackHooksRoute)
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
	say(out, "alert     %s\n          %s %s in account %s is %s\n", a.Title, a.Credential.Kind, a.Credential.ID, a.Credential.Account, before)
	say(out, "playbook  %s: %s\n\n", pb.Name, pb.Description)

	sub, err := r.Submit(ctx, a, []*playbooks.Playbook{pb})
	if err != nil {
		return err
	}
	if len(sub.Started) != 1 {
		return errors.New("the demo alert did not start a run")
	}
	slackDemo := &demoSlack{sb: sb, hook: clicks.URL + slackHooksRoute}
	run, err := demoFollow(ctx, g, r, prog, sub.Started[0].ID, slackDemo)
	if err != nil {
		return err
	}

	sayln(out)
	for _, c := range sb.Calls() {
		if c.Action == "UpdateAccessKey" && c.Effective {
			say(out, "contained %s %s after the alert was read (Active → Inactive)\n", a.Credential.ID, c.Time.Sub(read).Round(time.Millisecond))
			break
		}
	}
	after, ok := sb.KeyStatus(a.Credential.Account, a.Credential.ID)
	if !ok {
		after = "deleted"
	}
	say(out, "%s: %s → %s\n", a.Credential.ID, before, after)

	steps, err := r.Store().Steps(ctx, run.ID)
	if err != nil {
		return err
	}
	journal, err := r.Store().Journal(ctx, run.ID)
	if err != nil {
		return err
	}
	if text, ok := slackDemo.incident(ctx, run.Status); ok {
		sayln(out, "\nthe incident message in #sec-incidents, as stanch left it:")
		sayLines(out, indent(text, "  │ "))
	}
	sayln(out, "\nwhat the sandbox received (through the real AWS SDK and slack-go):")
	printCalls(out, sb.Calls(), read)
	sayln(out)
	printRun(g, run, steps, journal)
	if keep {
		say(out, "\nstore kept: stanch runs show %s --database %s\n", run.ID, dbURL)
	}
	if run.Status != runner.RunSucceeded {
		return conclude(ctx, g, r.Store(), run, "")
	}
	return nil
}

// The people of the demo's Slack workspace (examples/sandbox/seed.yaml):
// Alice is in the security user group the example playbook names as
// approver; Mallory is not.
const (
	demoAlice         = "U0ALICE"
	demoMallory       = "U0MALLORY"
	demoChannel       = "C0SECINCIDENTS"
	demoSigningSecret = "stanch-demo-signing-secret-not-a-real-one"
)

// demoSlack clicks buttons in the sandbox's Slack.
type demoSlack struct {
	sb      *sandbox.Sandbox
	hook    string
	refused bool // Mallory has tried once
}

// approval waits for the approval message of step and returns it.
func (d *demoSlack) approval(ctx context.Context, step string) (sandbox.SlackMessage, error) {
	key := stanchslack.ApprovalKey(step, 0, 0)
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, m := range d.sb.SlackMessages(demoChannel) {
			if m.Metadata != nil && m.Metadata.EventPayload["key"] == key && strings.Contains(string(m.Blocks), stanchslack.ActionApprove) {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			return sandbox.SlackMessage{}, fmt.Errorf("no approval message for step %s appeared in Slack", step)
		}
		select {
		case <-ctx.Done():
			return sandbox.SlackMessage{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// click sends user's signed click on Approve and returns the HTTP status.
func (d *demoSlack) click(ctx context.Context, m sandbox.SlackMessage, user string) (int, error) {
	c := sandbox.SlackClick{URL: d.hook, SigningSecret: demoSigningSecret, User: user, Channel: demoChannel, MessageTS: m.TS,
		ActionID: stanchslack.ActionApprove, BlockID: "stanch_approval", Value: m.ButtonValue(stanchslack.ActionApprove), ButtonText: "Approve"}
	res, err := c.Send(ctx, http.DefaultClient)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// incident returns the incident message as text once it shows status.
func (d *demoSlack) incident(ctx context.Context, status runner.RunStatus) (string, bool) {
	want := "(" + strings.ReplaceAll(string(status), "_", " ") + ")"
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range d.sb.SlackMessages(demoChannel) {
			if m.Metadata != nil && m.Metadata.EventPayload["key"] == stanchslack.NotifyKey("tell") && (strings.HasSuffix(m.Text, want) || time.Now().After(deadline)) {
				text, err := stanchslack.PlainTextJSON(m.Blocks)
				return strings.TrimRight(text, "\n"), err == nil
			}
		}
		if time.Now().After(deadline.Add(time.Second)) || ctx.Err() != nil {
			return "", false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func indent(text, prefix string) string {
	return prefix + strings.ReplaceAll(text, "\n", "\n"+prefix)
}

// demoFollow follows the run and, for each step that waits for approval,
// shows the Slack message and clicks Approve as Alice, the way she would
// (the first time, Mallory tries first and is refused).
func demoFollow(ctx context.Context, g *globals, r *runner.Runner, prog *progress, runID string, slack *demoSlack) (runner.Run, error) {
	out := g.stdout
	for {
		run, err := prog.waitSettled(ctx, r.Store(), runID)
		if err != nil || run.Status != runner.RunWaitingApproval {
			return run, err
		}
		msg, err := slack.approval(ctx, run.WaitingStep)
		if err != nil {
			return run, err
		}
		text, _ := stanchslack.PlainTextJSON(msg.Blocks)
		sayln(out, "  Slack #sec-incidents:")
		sayLines(out, indent(strings.TrimRight(text, "\n"), "    │ "))
		if !slack.refused {
			slack.refused = true
			status, err := slack.click(ctx, msg, demoMallory)
			if err != nil {
				return run, err
			}
			answer := ""
			if eph := slack.sb.SlackEphemerals(); len(eph) > 0 {
				answer = eph[len(eph)-1].Text
			}
			say(out, "  mallory clicks Approve → HTTP %d, and only she sees: %q\n", status, answer)
		}
		status, err := slack.click(ctx, msg, demoAlice)
		if err != nil {
			return run, err
		}
		say(out, "  alice clicks Approve (a signed request to %s) → HTTP %d; the run resumes\n", slackHooksRoute, status)
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
		if c.Service == "slack" {
			detail = slackCallDetail(c)
		}
		if n := j - i; n > 1 {
			detail = fmt.Sprintf("×%d", n)
		}
		say(out, "  %s +%-8s %s %s %s\n", mark, c.Time.Sub(since).Round(time.Millisecond), c.Service, c.Action, detail)
		i = j
	}
	sayln(out, "  (* changed state)")
}

// slackCallDetail shortens a Slack call to where it went and which of the
// run's messages it was: the blocks are shown above as text.
func slackCallDetail(c sandbox.Call) string {
	var md struct {
		Payload struct {
			Key string `json:"key"`
		} `json:"event_payload"`
	}
	_ = json.Unmarshal([]byte(c.Params["metadata"]), &md)
	parts := []string{c.Params["channel"]}
	if md.Payload.Key != "" {
		parts = append(parts, md.Payload.Key)
	}
	for _, k := range []string{"ts", "thread_ts", "user"} {
		if v := c.Params[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
