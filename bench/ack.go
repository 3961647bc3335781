package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

type ackResult struct {
	n, clients int
	p50, p99   time.Duration
	perSecond  float64
	failed     int
	contained  int
	drained    time.Duration // from the first post until every key was contained
}

// acknowledge posts n distinct alerts from several clients at once and
// measures how fast the webhook answers (each answer means the alert and
// its run are committed to SQLite), while the workers contain them.
func acknowledge(ctx context.Context, n, clients int) (ackResult, error) {
	h, err := newHarness(ctx, n, 0, 0)
	if err != nil {
		return ackResult{}, err
	}
	defer h.close()
	hook := h.hook

	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(healthEvent(keyID(i), 100000+i)))
				req.Header.Set("X-Stanch-Token", hookSecret)
				t0 := time.Now()
				res, err := http.DefaultClient.Do(req)
				d := time.Since(t0)
				mu.Lock()
				if err != nil || res.StatusCode != http.StatusOK {
					failed++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res := ackResult{n: n, clients: clients, p50: pct(lat, 50), p99: pct(lat, 99), perSecond: float64(len(lat)) / elapsed.Seconds(), failed: failed}
	// Every acknowledged alert must also be contained: an answer that lost
	// its alert would be no answer at all.
	deadline := time.Now().Add(2 * time.Minute)
	for h.sb.EffectiveCount("UpdateAccessKey") < len(lat) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res.contained, res.drained = h.sb.EffectiveCount("UpdateAccessKey"), time.Since(start)
	if res.contained < len(lat) {
		return res, fmt.Errorf("acknowledged %d alerts but only %d keys were contained", len(lat), res.contained)
	}
	return res, nil
}

func (a ackResult) render() string {
	return fmt.Sprintf("\n## Webhook acknowledgement\n\n%d distinct alerts posted to the EventBridge endpoint by %d concurrent clients; an answer means the alert, its run and\nits job are committed to the embedded SQLite store with synchronous=FULL (the workers contain the keys meanwhile, on their own\nconnection). Alerts answered together share one commit. Then every acknowledged key is checked to be contained.\n\n| ack p50 | ack p99 | accepted alerts per second | failed | contained | all contained after |\n|---|---|---|---|---|---|\n| %s | %s | %.0f | %d | %d | %.1f s |\n",
		a.n, a.clients, ms(a.p50), ms(a.p99), a.perSecond, a.failed, a.contained, a.drained.Seconds())
}
