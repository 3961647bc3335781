package main

// sopsConfig is how SOPS destinations of aws.rotate_key decrypt a file
// (docs/rotation.md): an age keys file, as SOPS_AGE_KEY_FILE names one;
// read only when a rotation writes.
type sopsConfig struct {
	AgeKeyFile string `yaml:"age_key_file"`
}
