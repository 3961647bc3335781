// Package runner executes playbook runs on River: it stores alerts and runs,
// deduplicates alerts, executes steps in order with timeouts and retries,
// journals every step, parks runs that wait for approval without holding a
// worker, and resumes runs after a crash without repeating finished steps.
// The same code runs on the embedded SQLite store and on PostgreSQL.
package runner
