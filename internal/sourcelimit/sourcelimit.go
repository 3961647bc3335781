// Package sourcelimit is the rate limit every endpoint stanch serves to
// the outside shares (the webhooks, the report links): two budgets per
// source address, one for requests that authenticated and one for those
// refused, so that forged requests never use up a genuine sender's budget,
// even when every sender shares one address (a load balancer's); and the
// source address itself, read through trusted proxies only.
package sourcelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// maxSources bounds each budget's map: past it everyone is forgotten
// rather than grow without bound under a flood of source addresses; each
// budget is forgotten on its own, so refused requests never reset the
// budgets of genuine ones.
const maxSources = 10000

// Limits are the two budgets of every source address.
type Limits struct {
	mu       sync.Mutex
	rate     rate.Limit
	burst    int
	trusted  []netip.Prefix
	authed   map[string]*rate.Limiter
	unauthed map[string]*rate.Limiter
}

// New returns limits of perSecond requests a second per source and
// budget (see SetRate).
func New(perSecond float64) *Limits {
	l := &Limits{}
	l.SetRate(perSecond)
	return l
}

// SetRate sets each budget to perSecond requests a second, with bursts of
// four seconds' worth; 0 turns the limits off. Budgets start afresh.
func (l *Limits) SetRate(perSecond float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate, l.burst = rate.Limit(perSecond), int(4*perSecond)
	if perSecond <= 0 {
		l.rate, l.burst = rate.Inf, 0
	}
	l.authed, l.unauthed = map[string]*rate.Limiter{}, map[string]*rate.Limiter{}
}

// Trust names the proxies (load balancers) whose X-Forwarded-For is
// believed.
func (l *Limits) Trust(proxies []netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trusted = append([]netip.Prefix(nil), proxies...)
}

// Authenticated takes one request from addr's budget of authenticated
// requests, and says whether there was one left.
func (l *Limits) Authenticated(addr string) bool { return l.allow(&l.authed, addr) }

// Refused takes one request from addr's budget of refused requests.
func (l *Limits) Refused(addr string) bool { return l.allow(&l.unauthed, addr) }

func (l *Limits) allow(m *map[string]*rate.Limiter, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := (*m)[addr]
	if !ok {
		if len(*m) > maxSources {
			*m = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		(*m)[addr] = lim
	}
	return lim.Allow()
}

// Client is the address a request is counted against: the peer's, unless
// the peer is a trusted proxy; then the nearest address in X-Forwarded-For
// that is not a trusted proxy, read from the right, since each proxy
// appends the address it received from and only what trusted proxies
// appended can be believed. Without trusted proxies the header is ignored:
// anyone can send it.
func (l *Limits) Client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	l.mu.Lock()
	trusted := l.trusted
	l.mu.Unlock()
	if !isTrusted(trusted, peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	nearest := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		a, err := netip.ParseAddr(hop)
		if err != nil {
			// What a trusted proxy recorded is unreadable: count the
			// request against that proxy rather than guess.
			return nearest.String()
		}
		a = a.Unmap()
		if !isTrusted(trusted, a) {
			return a.String()
		}
		nearest = a
	}
	return nearest.String()
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxy reads a CIDR (10.0.0.0/8) or a single address as a
// prefix of trusted proxies.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
