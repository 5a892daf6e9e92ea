// Package sandboxtest helps tests show what a sandboxed program cannot
// reach.
package sandboxtest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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

// Server serves h on every address of the machine for the rest of the
// test and answers its base URLs, as Listener answers addresses: a program
// that fetches from them shows by its exit and output whether it reached
// the machine's network.
func Server(t *testing.T, h http.Handler) []string {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	urls := []string{"http://" + net.JoinHostPort("127.0.0.1", port)}
	if ip := nonLoopbackIP(); ip != "" {
		urls = append(urls, "http://"+net.JoinHostPort(ip, port))
	}
	return urls
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
