// Package actions defines the contract every stanch action implements and
// the registry that playbooks resolve action names against. Provider
// packages (actions/aws, …) implement actions with the providers' official
// SDKs; this package imports none of them.
//
// An action is written as a Definition[P, O] and built with New: P is
// its parameter struct, which a step's `with:` decodes into strictly and
// which Provision fills with defaults before Validate checks it; O is its
// outputs struct, from which the declared outputs are derived and which
// PlanFunc and DoFunc return (PlanOf, ResultOf), so that an action returns
// exactly what it declares. The examples show one whole action.
package actions
