package runner

import "strings"

// RunStatus is where a run stands; StepStatus where a step does. The two
// sets share some words, but a run is never "skipped" and a step is never
// "cancelled", so each is a type of its own and the compiler keeps them
// apart. Reports for actions and playbooks (actions.Report,
// playbooks.StepState) carry them as plain strings.
type (
	RunStatus  string
	StepStatus string
)

// Run statuses. A run moves pending → running → (waiting_approval ↔
// running)* → succeeded | failed | cancelled.
const (
	RunPending         RunStatus = "pending"
	RunRunning         RunStatus = "running"
	RunWaitingApproval RunStatus = "waiting_approval"
	RunSucceeded       RunStatus = "succeeded"
	RunFailed          RunStatus = "failed"
	RunCancelled       RunStatus = "cancelled"
)

// Step statuses. A step is pending until the journal has a record of it;
// it may then be delayed, running (an attempt began, or one failed and the
// next is due), waiting for approval (shown in reports only: the record
// holds the approval), and ends succeeded, failed, skipped or denied.
const (
	StepPending         StepStatus = "pending"
	StepDelayed         StepStatus = "delayed"
	StepRunning         StepStatus = "running"
	StepWaitingApproval StepStatus = "waiting_approval"
	StepSucceeded       StepStatus = "succeeded"
	StepFailed          StepStatus = "failed"
	StepSkipped         StepStatus = "skipped"
	StepDenied          StepStatus = "denied"
)

// Outcomes the runner records for a step that no action finished: actions
// report their own (actions.Done, actions.Already, actions.NoOp).
const (
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
	OutcomeDenied  = "denied"
)

// RunStatuses are every status a run can have, in the order of its life.
var RunStatuses = []RunStatus{RunPending, RunRunning, RunWaitingApproval, RunSucceeded, RunFailed, RunCancelled}

// Terminal reports whether a run status is final.
func Terminal(status RunStatus) bool {
	return status == RunSucceeded || status == RunFailed || status == RunCancelled
}

// stepFinished reports whether a step needs no more work on resume.
func stepFinished(status StepStatus) bool {
	return status == StepSucceeded || status == StepSkipped || status == StepFailed || status == StepDenied
}

// sqlList quotes statuses for SQL text that cannot take parameters (an
// index's predicate).
func sqlList(statuses ...RunStatus) string {
	quoted := make([]string, len(statuses))
	for i, s := range statuses {
		quoted[i] = "'" + string(s) + "'"
	}
	return strings.Join(quoted, ", ")
}
