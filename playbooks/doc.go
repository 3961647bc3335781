// Package playbooks reads stanch's playbook format: YAML files that say
// which alerts start a response and which actions it runs, in order.
//
// Decoding is strict and reports every problem at once with its
// file:line:col and a hint; actions and parameters are checked against an
// actions.Registry, and conditions and ${{ … }} templates are compiled
// with expr against a typed Scope. The runner then uses Match, Enabled,
// Params and ApprovalMessage to evaluate a loaded playbook for one alert.
// docs/playbooks.md describes the format.
package playbooks
