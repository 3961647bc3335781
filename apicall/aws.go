package apicall

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// AWS returns an option for aws.Config.APIOptions that sends no attempt
// the context's gate refuses (WithGate) and records every attempt of every
// call a client made from the config sends, as acting in
// the account that account returns when the call ends (stanch's own
// account is known only once STS has said it). It sits at the front of the
// deserialize step, so it sees each attempt the SDK's retryer makes, with
// the request id and the error code the SDK read from the answer.
func AWS(account func() string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(awsCalls{account: account}, middleware.Before)
	}
}

type awsCalls struct{ account func() string }

func (awsCalls) ID() string { return "stanch.apicall" }

func (m awsCalls) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	// Here, after signing and inside the retry loop, each attempt is
	// checked just before it is sent.
	if err := open(ctx); err != nil {
		return middleware.DeserializeOutput{}, middleware.Metadata{}, err
	}
	if _, ok := ctx.Value(recorderKey{}).(Recorder); !ok {
		return next.HandleDeserialize(ctx, in)
	}
	start := time.Now()
	out, md, err := next.HandleDeserialize(ctx, in)
	c := Call{
		Service:   strings.ToLower(strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", "")),
		Operation: awsmiddleware.GetOperationName(ctx),
		Account:   m.account(),
		Region:    awsmiddleware.GetRegion(ctx),
		At:        start.UTC(),
		Duration:  time.Since(start),
		Outcome:   OK,
	}
	c.RequestID, _ = awsmiddleware.GetRequestIDMetadata(md)
	if err != nil {
		c.Outcome = Failed
		var api smithy.APIError
		var res *smithyhttp.Response
		switch {
		case errors.As(err, &api):
			c.Error = api.ErrorCode()
		case ctx.Err() != nil:
			c.Error = "cancelled"
		default:
			if r, ok := out.RawResponse.(*smithyhttp.Response); ok && r != nil {
				res = r
			}
			if res != nil {
				c.Error = fmt.Sprintf("HTTP %d", res.StatusCode)
			} else {
				c.Error = transportError(ctx, err)
			}
		}
	}
	record(ctx, c)
	return out, md, err
}
