package aws

import (
	"errors"
	"net/http"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stanchhq/stanch/actions"
)

// permanentCodes are AWS error codes that no retry can fix: a person has to
// change a policy, a configuration or the playbook.
var permanentCodes = map[string]bool{
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"UnauthorizedOperation":       true,
	"InvalidClientTokenId":        true,
	"UnrecognizedClientException": true,
	"SignatureDoesNotMatch":       true,
	"ExpiredToken":                true,
	"NoSuchEntity":                true,
	"ValidationError":             true,
	"InvalidParameterValue":       true,
	"InvalidAction":               true,
	"LimitExceeded":               true,
	"MalformedPolicyDocument":     true,
	"EntityAlreadyExists":         true,
	"DeleteConflict":              true,
}

// classify marks err retryable or permanent for the runner: known
// permanent codes and other client errors are permanent; throttling, server
// errors, timeouts and network trouble are retryable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if permanentCodes[ae.ErrorCode()] {
			return actions.Permanent(err)
		}
		var re *smithyhttp.ResponseError
		throttle := retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == awssdk.TrueTernary
		if errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500 &&
			re.HTTPStatusCode() != http.StatusTooManyRequests && !throttle {
			return actions.Permanent(err)
		}
	}
	return actions.Retryable(err)
}
