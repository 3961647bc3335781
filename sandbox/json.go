package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The AWS JSON protocols (1.0 and 1.1): POST / with X-Amz-Target naming
// "<service prefix>.<operation>", a JSON body, and errors as
// {"__type": code, "message": text}.

func (s *Sandbox) serveJSON(w http.ResponseWriter, r *http.Request) {
	// Match the suffix: the Go SDK sends "CloudTrail_20131101.LookupEvents",
	// botocore "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents".
	target := r.Header.Get("X-Amz-Target")
	prefix, action := "", target
	if i := strings.LastIndexByte(target, '.'); i >= 0 {
		prefix, action = target[:i], target[i+1:]
		prefix = prefix[strings.LastIndexByte(prefix, '.')+1:]
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeJSONError(w, &apiError{http.StatusBadRequest, "SerializationException", "cannot read the request body"})
		return
	}
	req := &request{action: action, body: body, params: jsonParams(body), host: r.Host}
	service, op := s.jsonOperation(prefix, action)
	if service == "" {
		writeJSONError(w, &apiError{http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("the sandbox does not implement X-Amz-Target %s.%s", prefix, action)})
		return
	}
	req.service = service
	res, apiErr, ok := s.serve(r, req, op)
	if !ok {
		return
	}
	if apiErr != nil {
		writeJSONError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	w.Header().Set("X-Amzn-Requestid", newRequestID())
	body = []byte("{}")
	if res.body != nil {
		if body, err = json.Marshal(res.body); err != nil {
			writeJSONError(w, &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()})
			return
		}
	}
	_, _ = w.Write(body)
}

// jsonOperation finds the service and operation for an X-Amz-Target.
func (s *Sandbox) jsonOperation(prefix, action string) (string, func(*request) (result, *apiError)) {
	switch prefix {
	case "CloudTrail_20131101":
		return "cloudtrail", s.cloudTrailOperation(action)
	case "secretsmanager":
		return "secretsmanager", s.secretsManagerOperation(action)
	case "AmazonSQS":
		return "sqs", s.sqsOperation(action)
	default:
		return "", nil
	}
}

// decodeJSON reads a JSON request body into v.
func decodeJSON(req *request, v any) *apiError {
	if len(req.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.body, v); err != nil {
		return &apiError{http.StatusBadRequest, "SerializationException", "cannot parse the request: " + err.Error()}
	}
	return nil
}

// jsonParams flattens the top level of a JSON body for the call log.
func jsonParams(body []byte) map[string]string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	params := map[string]string{}
	for k, v := range top {
		var str string
		if json.Unmarshal(v, &str) == nil {
			params[k] = str
		} else {
			params[k] = string(v)
		}
	}
	return redactParams(params)
}

func writeJSONError(w http.ResponseWriter, apiErr *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", apiErr.code)
	w.Header().Set("X-Amzn-Requestid", newRequestID()) // refusals have one too
	w.WriteHeader(apiErr.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": apiErr.code, "message": apiErr.message})
}
