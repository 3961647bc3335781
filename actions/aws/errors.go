package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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
	err = withAPIError(err)
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

// withAPIError attaches which AWS service answered err and its error code
// (for metrics), when err is an SDK call's.
func withAPIError(err error) error {
	var op *smithy.OperationError
	if !errors.As(err, &op) {
		return err
	}
	api := actions.APIError{Provider: "aws", Service: strings.ReplaceAll(strings.ToLower(op.ServiceID), " ", "_"), Code: "network"}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode() != "":
		api.Code = ae.ErrorCode()
	case errors.As(err, &re):
		api.Code = fmt.Sprintf("http_%d", re.HTTPStatusCode())
	case errors.Is(err, context.DeadlineExceeded):
		api.Code = "timeout"
	}
	return actions.WithAPIError(err, api)
}
