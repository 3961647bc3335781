// Package actions defines the contract every stanch action implements and
// the registry that playbooks resolve action names against. Provider
// packages (actions/aws, …) implement actions with the providers' official
// SDKs; this package imports none of them.
package actions
