package sandbox

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SQS over JSON 1.0 (X-Amz-Target AmazonSQS.*), as current SDKs speak it,
// with the MD5 of each body the SDKs check.

type sqsQueue struct {
	name     string
	messages []*sqsMessage
}

type sqsMessage struct {
	id, body, receipt string
	visibleAt         time.Time
	receives          int
}

// queueURL is how the sandbox names a queue: on its own address.
func queueURL(host, account, name string) string {
	return "http://" + host + "/" + account + "/" + name
}

func (s *Sandbox) sqsOperation(action string) func(*request) (result, *apiError) {
	return map[string]func(*request) (result, *apiError){
		"CreateQueue":    s.createQueue,
		"GetQueueUrl":    s.getQueueURL,
		"SendMessage":    s.sendMessage,
		"ReceiveMessage": s.receiveMessage,
		"DeleteMessage":  s.deleteMessage,
	}[action]
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (s *Sandbox) queueOf(req *request, url string) (*sqsQueue, *apiError) {
	name := url[strings.LastIndexByte(url, '/')+1:]
	q, ok := req.caller.account.queues[name]
	if !ok {
		return nil, &apiError{http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."}
	}
	return q, nil
}

func (s *Sandbox) createQueue(req *request) (result, *apiError) {
	var in struct{ QueueName string }
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	a := req.caller.account
	if _, ok := a.queues[in.QueueName]; !ok {
		a.queues[in.QueueName] = &sqsQueue{name: in.QueueName}
	}
	return result{body: map[string]string{"QueueUrl": queueURL(req.host, a.id, in.QueueName)}, effective: true}, nil
}

func (s *Sandbox) getQueueURL(req *request) (result, *apiError) {
	var in struct{ QueueName string }
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	if _, ok := req.caller.account.queues[in.QueueName]; !ok {
		return result{}, &apiError{http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."}
	}
	return result{body: map[string]string{"QueueUrl": queueURL(req.host, req.caller.account.id, in.QueueName)}}, nil
}

func (s *Sandbox) sendMessage(req *request) (result, *apiError) {
	var in struct{ QueueUrl, MessageBody string }
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	q, err := s.queueOf(req, in.QueueUrl)
	if err != nil {
		return result{}, err
	}
	m := &sqsMessage{id: newRequestID(), body: in.MessageBody}
	q.messages = append(q.messages, m)
	return result{body: map[string]string{"MessageId": m.id, "MD5OfMessageBody": md5Hex(m.body)}, effective: true}, nil
}

// receiveMessage answers at once: the sandbox does not hold its lock for a
// long poll, so an empty answer comes back immediately.
func (s *Sandbox) receiveMessage(req *request) (result, *apiError) {
	var in struct {
		QueueUrl            string
		MaxNumberOfMessages int
		VisibilityTimeout   *int
	}
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	q, err := s.queueOf(req, in.QueueUrl)
	if err != nil {
		return result{}, err
	}
	limit := max(1, min(in.MaxNumberOfMessages, 10))
	hide := 30 * time.Second
	if in.VisibilityTimeout != nil {
		hide = time.Duration(*in.VisibilityTimeout) * time.Second
	}
	now := time.Now()
	var out []map[string]any
	for _, m := range q.messages {
		if len(out) == limit {
			break
		}
		if now.Before(m.visibleAt) {
			continue
		}
		m.receives++
		m.visibleAt = now.Add(hide)
		m.receipt = newRequestID() + "-" + strconv.Itoa(m.receives)
		out = append(out, map[string]any{"MessageId": m.id, "ReceiptHandle": m.receipt, "MD5OfBody": md5Hex(m.body), "Body": m.body,
			"Attributes": map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.receives)}})
	}
	return result{body: map[string]any{"Messages": out}}, nil
}

func (s *Sandbox) deleteMessage(req *request) (result, *apiError) {
	var in struct{ QueueUrl, ReceiptHandle string }
	if err := decodeJSON(req, &in); err != nil {
		return result{}, err
	}
	q, err := s.queueOf(req, in.QueueUrl)
	if err != nil {
		return result{}, err
	}
	for i, m := range q.messages {
		if m.receipt == in.ReceiptHandle {
			q.messages = append(q.messages[:i], q.messages[i+1:]...)
			return result{effective: true}, nil
		}
	}
	return result{}, &apiError{http.StatusBadRequest, "ReceiptHandleIsInvalid", "The input receipt handle is invalid."}
}

// QueueDepth returns how many messages a queue holds, for tests.
func (s *Sandbox) QueueDepth(accountID, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[accountID]; ok {
		if q, ok := a.queues[name]; ok {
			return len(q.messages)
		}
	}
	return 0
}
