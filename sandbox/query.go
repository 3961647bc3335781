package sandbox

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The AWS Query protocol: form-encoded POSTs naming Action and Version,
// answered with XML in the service's namespace.

const (
	iamVersion   = "2010-05-08"
	stsVersion   = "2011-06-15"
	iamNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// apiError is an AWS error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errNoSuchEntity(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "NoSuchEntity", fmt.Sprintf(format, args...)}
}

func errValidation(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationError", fmt.Sprintf(format, args...)}
}

// request is one call being served, of either protocol.
type request struct {
	service string
	action  string
	region  string     // from the signature's credential scope
	form    url.Values // Query protocol parameters
	body    []byte     // JSON protocol body
	params  map[string]string
	host    string // the address the client used, for URLs in answers
	caller  *key   // the key that signed the request
	token   string // the fingerprint of the provider token it carried
}

// result is what an operation hands back: the XML inside <XResult>, and
// whether the call changed state.
type result struct {
	body      any
	effective bool
}

func (s *Sandbox) serveQuery(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeQueryError(w, iamNamespace, &apiError{http.StatusBadRequest, "MalformedQueryString", "cannot parse the form body"})
		return
	}
	req := &request{action: r.PostForm.Get("Action"), form: r.PostForm, params: formParams(r.PostForm)}
	var ns string
	var op func(*request) (result, *apiError)
	switch r.PostForm.Get("Version") {
	case iamVersion:
		req.service, ns, op = "iam", iamNamespace, s.iamOperation(req.action)
	case stsVersion:
		req.service, ns, op = "sts", stsNamespace, s.stsOperation(req.action)
	case ec2Version:
		req.service = "ec2"
		res, apiErr, ok := s.serve(r, req, s.ec2Operation(req.action))
		switch {
		case !ok:
		case apiErr != nil:
			writeEC2Error(w, apiErr)
		default:
			writeEC2Result(w, res.body)
		}
		return
	default:
		writeQueryError(w, iamNamespace, &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("version %q is not IAM (%s) or STS (%s)", r.PostForm.Get("Version"), iamVersion, stsVersion)})
		return
	}
	res, apiErr, ok := s.serve(r, req, op)
	if !ok {
		return
	}
	if apiErr != nil {
		writeQueryError(w, ns, apiErr)
		return
	}
	writeQueryResult(w, ns, req.action, res.body)
}

// serve runs one call of any protocol: latency and injected faults first,
// then the caller's authentication and the operation, all recorded in the
// call log. ok is false when the client went away before the answer.
func (s *Sandbox) serve(r *http.Request, req *request, op func(*request) (result, *apiError)) (result, *apiError, bool) {
	req.region = signingRegion(r)
	fault := s.fault(req.service)
	s.mu.Lock()
	if s.arrived == nil {
		s.arrived = map[string]int{}
	}
	s.arrived[req.action]++
	s.mu.Unlock()
	if err := s.wait(r.Context(), fault.Latency); err != nil {
		s.mu.Lock()
		s.recordLocked(req, 499, false) // the client went away before the answer
		s.mu.Unlock()
		return result{}, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var res result
	apiErr := fault.inject()
	if apiErr == nil {
		res, apiErr = s.handle(r, req, op)
	}
	status := http.StatusOK
	if apiErr != nil {
		status = apiErr.status
		s.log.Debug("sandbox call refused", "service", req.service, "action", req.action, "code", apiErr.code)
	}
	s.recordLocked(req, status, apiErr == nil && res.effective)
	return res, apiErr, true
}

// handle authenticates the caller and runs the operation; s.mu is held.
func (s *Sandbox) handle(r *http.Request, req *request, op func(*request) (result, *apiError)) (result, *apiError) {
	caller, err := s.callerLocked(r)
	if err != nil {
		return result{}, err
	}
	req.caller = caller
	if op == nil {
		return result{}, &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the sandbox does not implement %s %s", req.service, req.action)}
	}
	return op(req)
}

// signingRegion reads the region from the SigV4 credential scope
// (Credential=AKID/DATE/REGION/SERVICE/aws4_request).
func signingRegion(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	parts := strings.SplitN(cred, "/", 5)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// callerLocked finds the access key in the SigV4 Authorization header. The
// signature itself is not checked: the sandbox is for rehearsal, and what
// matters is which account acts and that a deactivated key stops working.
func (s *Sandbox) callerLocked(r *http.Request) (*key, *apiError) {
	auth := r.Header.Get("Authorization")
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return nil, &apiError{http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"}
	}
	id, _, _ := strings.Cut(cred, "/")
	k, ok := s.keys[id]
	if !ok || k.status != statusActive {
		return nil, &apiError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
	}
	if !k.expires.IsZero() {
		if r.Header.Get("X-Amz-Security-Token") != k.token {
			return nil, &apiError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
		}
		if time.Now().After(k.expires) {
			return nil, &apiError{http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired"}
		}
	}
	return k, nil
}

func (s *Sandbox) recordLocked(req *request, status int, effective bool) {
	c := Call{Time: time.Now(), Service: req.service, Action: req.action, Region: req.region, Params: req.params, Status: status, Effective: effective, Token: req.token}
	if req.caller != nil {
		c.CallerKey = req.caller.id
		c.Account = req.caller.account.id
	}
	s.calls = append(s.calls, c)
}

// formParams flattens a Query-protocol form for the call log, hiding any
// parameter whose name says it is a secret.
func formParams(form url.Values) map[string]string {
	params := map[string]string{}
	for k, v := range form {
		if k == "Action" || k == "Version" {
			continue
		}
		params[k] = strings.Join(v, ",")
	}
	return redactParams(params)
}

func redactParams(params map[string]string) map[string]string {
	for k := range params {
		if l := strings.ToLower(k); strings.Contains(l, "secret") && !strings.Contains(l, "id") {
			params[k] = "[REDACTED]"
		}
	}
	return params
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

func writeQueryResult(w http.ResponseWriter, ns, action string, body any) {
	type envelope struct {
		XMLName  xml.Name
		XMLNS    string           `xml:"xmlns,attr"`
		Result   any              `xml:",omitempty"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}
	env := envelope{XMLName: xml.Name{Local: action + "Response"}, XMLNS: ns, Metadata: responseMetadata{RequestID: queryRequestID(w)}}
	if body != nil {
		env.Result = wrapped{name: action + "Result", body: body}
	}
	out, err := xml.Marshal(env)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

// wrapped renders body inside an element called name.
type wrapped struct {
	name string
	body any
}

func (w wrapped) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(w.body, xml.StartElement{Name: xml.Name{Local: w.name}})
}

func writeQueryError(w http.ResponseWriter, ns string, apiErr *apiError) {
	type errorBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type envelope struct {
		XMLName   xml.Name  `xml:"ErrorResponse"`
		XMLNS     string    `xml:"xmlns,attr"`
		Error     errorBody `xml:"Error"`
		RequestID string    `xml:"RequestId"`
	}
	kind := "Sender"
	if apiErr.status >= 500 {
		kind = "Receiver"
	}
	out, _ := xml.Marshal(envelope{XMLNS: ns, Error: errorBody{Type: kind, Code: apiErr.code, Message: apiErr.message}, RequestID: queryRequestID(w)})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(apiErr.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// queryRequestID gives the answer its request id, in the
// x-amzn-RequestId header and, as IAM and STS do, in the body too.
func queryRequestID(w http.ResponseWriter) string {
	id := newRequestID()
	w.Header().Set("X-Amzn-Requestid", id)
	return id
}
