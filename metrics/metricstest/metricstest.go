// Package metricstest reads what a /metrics endpoint serves, for tests:
// parsed by Prometheus' own text parser, looked up by name and labels.
package metricstest

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Scrape is one scrape's metric families, by name.
type Scrape map[string]*dto.MetricFamily

// Get scrapes url (asking for the text format) and parses the answer.
func Get(t testing.TB, url string) Scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "GET %s", url)
	s, err := Parse(res.Body)
	require.NoError(t, err, "GET %s", url)
	return s
}

// Parse reads the text exposition format.
func Parse(r io.Reader) (Scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return Scrape(fams), nil
}

// Value returns the value of the counter or gauge name whose labels are
// exactly labels, given as name, value, name, value…
func (s Scrape) Value(name string, labels ...string) (float64, bool) {
	m, ok := s.find(name, labels)
	if !ok {
		return 0, false
	}
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// Histogram returns the sample count and sum of the histogram name whose
// labels are exactly labels.
func (s Scrape) Histogram(name string, labels ...string) (count uint64, sum float64, ok bool) {
	m, ok := s.find(name, labels)
	if !ok || m.GetHistogram() == nil {
		return 0, 0, false
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), true
}

// Series returns the label sets of every series of name.
func (s Scrape) Series(name string) []map[string]string {
	f, ok := s[name]
	if !ok {
		return nil
	}
	out := make([]map[string]string, 0, len(f.GetMetric()))
	for _, m := range f.GetMetric() {
		set := map[string]string{}
		for _, l := range m.GetLabel() {
			set[l.GetName()] = l.GetValue()
		}
		out = append(out, set)
	}
	return out
}

// LabelValues returns every label value of every series, for checking
// that none holds what it must not.
func (s Scrape) LabelValues() []string {
	var out []string
	for _, f := range s {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

func (s Scrape) find(name string, labels []string) (*dto.Metric, bool) {
	if len(labels)%2 != 0 {
		panic("metricstest: labels come in name, value pairs")
	}
	f, ok := s[name]
	if !ok {
		return nil, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels)/2 {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			found := false
			for i := 0; i < len(labels); i += 2 {
				if labels[i] == l.GetName() && labels[i+1] == l.GetValue() {
					found = true
					break
				}
			}
			if !found {
				match = false
				break
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}
