package testbackends

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// CuttingProxy stands between a test's client and a server, as a network,
// a firewall or a load balancer does, and can drop every connection
// through it at once: what a client sees when its server's side goes away
// without a word.
type CuttingProxy struct {
	// Addr is where the proxy listens (host:port).
	Addr string

	mu    sync.Mutex
	conns []net.Conn // the client sides of the connections through it
}

// NewCuttingProxy starts a proxy on loopback to target (host:port); it
// stops, dropping what goes through it, when the test ends.
func NewCuttingProxy(t testing.TB, target string) *CuttingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CuttingProxy{Addr: l.Addr().String()}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, client); server.Close() }()
			go func() { _, _ = io.Copy(client, server); client.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); p.Cut(false) })
	return p
}

// Cut drops every connection through the proxy, with a reset when reset
// is true, else with a FIN, and answers how many it dropped. New
// connections go through as before.
func (p *CuttingProxy) Cut(reset bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for _, c := range p.conns {
		if tcp, ok := c.(*net.TCPConn); ok && reset {
			_ = tcp.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
	return n
}

// Through is the postgres:// URL dsn with its host and port replaced by
// the proxy's: a client of it connects through the proxy.
func (p *CuttingProxy) Through(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Host = p.Addr
	return u.String(), nil
}

// HostOf is the host:port a postgres:// URL names.
func HostOf(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}
