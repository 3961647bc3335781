package actions

import (
	"fmt"
	"sort"
)

// Registry maps action names to actions. It is filled explicitly by the
// program's wiring; there is no global registry.
type Registry struct {
	byName map[string]Action
}

// NewRegistry returns a registry holding as, or an error naming the first
// duplicate or badly named action.
func NewRegistry(as ...Action) (*Registry, error) {
	r := &Registry{byName: map[string]Action{}}
	for _, a := range as {
		if err := r.Register(a); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a; a second action with the same name is refused.
func (r *Registry) Register(a Action) error {
	name := a.Spec().Name
	if !validName(name) {
		return fmt.Errorf("action name %q: want provider.verb_object, lower case, such as aws.deactivate_key", name)
	}
	if _, dup := r.byName[name]; dup {
		return fmt.Errorf("action %q registered twice", name)
	}
	r.byName[name] = a
	return nil
}

// Lookup returns the action called name.
func (r *Registry) Lookup(name string) (Action, bool) {
	a, ok := r.byName[name]
	return a, ok
}

// Names returns every registered name, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Specs returns every action's spec, sorted by name.
func (r *Registry) Specs() []Spec {
	names := r.Names()
	out := make([]Spec, len(names))
	for i, n := range names {
		out[i] = r.byName[n].Spec()
	}
	return out
}

func validName(name string) bool {
	dot := false
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		case c == '.' && i > 0 && i < len(name)-1:
			dot = true
		default:
			return false
		}
	}
	return dot
}
