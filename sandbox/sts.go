package sandbox

import "net/http"

func (s *Sandbox) stsOperation(action string) func(*request) (result, *apiError) {
	return map[string]func(*request) (result, *apiError){
		"GetAccessKeyInfo":  s.getAccessKeyInfo,
		"GetCallerIdentity": s.getCallerIdentity,
	}[action]
}

type getAccessKeyInfoResult struct {
	Account string `xml:"Account"`
}

// getAccessKeyInfo answers for any key of any account, as STS does: the
// account is encoded in the key id itself.
func (s *Sandbox) getAccessKeyInfo(req *request) (result, *apiError) {
	id := req.form.Get("AccessKeyId")
	k, ok := s.keys[id]
	if !ok {
		return result{}, &apiError{http.StatusBadRequest, "InvalidParameterValue", "the sandbox has no access key " + id}
	}
	return result{body: getAccessKeyInfoResult{Account: k.account.id}}, nil
}

type getCallerIdentityResult struct {
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
}

func (s *Sandbox) getCallerIdentity(req *request) (result, *apiError) {
	k := req.caller
	res := getCallerIdentityResult{Account: k.account.id, Arn: s.callerARN(k)}
	if k.user != nil {
		res.UserID = k.user.id
	} else {
		res.UserID = k.role.id + ":stanch-sandbox"
	}
	return result{body: res}, nil
}

func (s *Sandbox) callerARN(k *key) string {
	if k.user != nil {
		return arnOfUser(k.account, k.user)
	}
	return "arn:aws:sts::" + k.account.id + ":assumed-role/" + k.role.name + "/stanch-sandbox"
}
