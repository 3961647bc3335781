package triggers

import (
	"fmt"
	"regexp"
	"strings"
)

// Names and numbers that come from outside become paths of GitHub API
// requests made with stanch's token, and go-github does not escape them: a
// repository named "../../../orgs/acme" would send the token to a path
// outside the API's repository routes. They are checked where they enter
// (the webhook, the backstop's listing, the resolver's recorded reference)
// against what GitHub itself allows.

var (
	// githubOwner is a user or organisation login: letters, digits and
	// hyphens, not starting with a hyphen; Enterprise Managed Users add an
	// underscore and the enterprise's short code.
	githubOwner = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	// githubRepo is a repository name: letters, digits, '.', '-' and '_'.
	githubRepo = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// CheckOwner says whether owner is a GitHub user or organisation login;
// field names where it came from, for the error.
func CheckOwner(field, owner string) error {
	if !githubOwner.MatchString(owner) {
		return fmt.Errorf("%s is not a GitHub account name (letters, digits, '-' and '_', not starting with '-')", field)
	}
	return nil
}

// CheckRepo says whether fullName is owner/name as GitHub allows them;
// field names where it came from. The value is not quoted: it is the
// sender's.
func CheckRepo(field, fullName string) error {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || CheckOwner(field, owner) != nil || !githubRepo.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%s is not a GitHub repository's owner/name (letters, digits, '.', '-' and '_' on each side of one '/')", field)
	}
	return nil
}

// checkAlertNumber says whether n can be a secret-scanning alert's number.
func checkAlertNumber(field string, n int64) error {
	if n <= 0 {
		return fmt.Errorf("%s is not a secret-scanning alert number (a whole number above 0)", field)
	}
	return nil
}
