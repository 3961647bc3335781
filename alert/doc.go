// Package alert defines the one normalised Alert that every trigger produces
// and every playbook sees as `alert`. It is a leaf: it imports nothing of
// stanch, so every other package may import it.
package alert
