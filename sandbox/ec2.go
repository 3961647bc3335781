package sandbox

import (
	"encoding/xml"
	"net/http"
)

// EC2 speaks the Query protocol too, but answers in its own XML: no Result
// wrapper, lower-case element names, and a different error envelope.

const (
	ec2Version   = "2016-11-15"
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

func (s *Sandbox) ec2Operation(action string) func(*request) (result, *apiError) {
	if action == "DescribeRegions" {
		return s.describeRegions
	}
	return nil
}

type regionInfo struct {
	RegionName     string `xml:"regionName"`
	RegionEndpoint string `xml:"regionEndpoint"`
	OptInStatus    string `xml:"optInStatus"`
}

type describeRegionsResponse struct {
	XMLName    xml.Name     `xml:"DescribeRegionsResponse"`
	XMLNS      string       `xml:"xmlns,attr"`
	RequestID  string       `xml:"requestId"`
	RegionInfo []regionInfo `xml:"regionInfo>item"`
}

// describeRegions lists the caller's account's enabled regions.
func (s *Sandbox) describeRegions(req *request) (result, *apiError) {
	res := describeRegionsResponse{XMLNS: ec2Namespace, RequestID: newRequestID()}
	for _, r := range req.caller.account.regions {
		res.RegionInfo = append(res.RegionInfo, regionInfo{RegionName: r, RegionEndpoint: "ec2." + r + ".amazonaws.com", OptInStatus: "opt-in-not-required"})
	}
	return result{body: res}, nil
}

func writeEC2Result(w http.ResponseWriter, body any) {
	out, err := xml.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func writeEC2Error(w http.ResponseWriter, apiErr *apiError) {
	type ec2Error struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type envelope struct {
		XMLName   xml.Name   `xml:"Response"`
		Errors    []ec2Error `xml:"Errors>Error"`
		RequestID string     `xml:"RequestID"`
	}
	out, _ := xml.Marshal(envelope{Errors: []ec2Error{{Code: apiErr.code, Message: apiErr.message}}, RequestID: newRequestID()})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(apiErr.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}
