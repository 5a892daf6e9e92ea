// Package sandboxtest helps tests show what a sandboxed program cannot
// reach.
package sandboxtest

import (
	"fmt"
	"net"
	"testing"
)

// Listener listens on every address of the machine for the rest of the
// test, accepting and closing connections, and answers the addresses a
// program could connect to: on loopback, and on the machine's first other
// IPv4 address if it has one.
func Listener(t *testing.T) []string {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	addrs := []string{net.JoinHostPort("127.0.0.1", port)}
	if ip := nonLoopbackIP(); ip != "" {
		addrs = append(addrs, net.JoinHostPort(ip, port))
	}
	return addrs
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}
