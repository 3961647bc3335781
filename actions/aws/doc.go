// Package aws holds stanch's AWS actions. They call AWS through the official
// aws-sdk-go-v2 clients, honour the SDK's own configuration (credential
// chain, profiles, AWS_REGION, AWS_ENDPOINT_URL…), and follow the action
// contract: check the current state, act only if needed, verify the effect.
package aws
