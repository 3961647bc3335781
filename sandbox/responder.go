package sandbox

// The responder of the example seed (examples/sandbox/seed.yaml) and of
// the tests' seeds: user stanch-responder of the first account, whose
// access key stanch signs its calls with.
const (
	ResponderUser   = "stanch-responder"
	ResponderKeyID  = "AKIAIOSFODNN7RESPOND"
	ResponderSecret = "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"
	// ResponderSeedUser is the responder as a user entry of a seed's
	// YAML, in flow style: `users: [` + ResponderSeedUser + `]`.
	ResponderSeedUser = "{name: " + ResponderUser + ", keys: [{id: " + ResponderKeyID + ", secret: " + ResponderSecret + "}]}"
)
