package deploy_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// kubeAPI is a Kubernetes API server the tests talk to with an
// administrator's token, as a kubeconfig of scripts/kube-apiserver.sh
// names it.
type kubeAPI struct {
	path   string // the kubeconfig
	server string
	token  string
	http   *http.Client
}

// apiServer finds the API server RENDERFARM_TEST_KUBECONFIG names, or
// skips: CI has none (building one takes minutes), so these tests run
// where one was started with scripts/kube-apiserver.sh.
func apiServer(t *testing.T) *kubeAPI {
	t.Helper()
	path := os.Getenv("RENDERFARM_TEST_KUBECONFIG")
	if path == "" {
		t.Skip("RENDERFARM_TEST_KUBECONFIG is not set: start an API server with scripts/kube-apiserver.sh start")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Token string `yaml:"token"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil || len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		t.Fatalf("%s: want a kubeconfig of one cluster and one user with a token (scripts/kube-apiserver.sh writes one): %v", path, err)
	}
	ca, err := os.ReadFile(cfg.Clusters[0].Cluster.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &kubeAPI{path: path, server: cfg.Clusters[0].Cluster.Server, token: cfg.Users[0].User.Token,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// do sends a request to the API server and decodes its JSON answer into
// out (when not nil), failing t on any status but 2xx.
func (k *kubeAPI) do(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, k.server+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// namespace makes a namespace of its own for a test, whose Pod Security
// level is enforce (privileged, baseline or restricted), and removes it
// with everything in it when the test ends.
func (k *kubeAPI) namespace(t *testing.T, prefix, enforce string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
	k.do(t, http.MethodPost, "/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"pod-security.kubernetes.io/enforce": enforce}},
	}, nil)
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, k.server+"/api/v1/namespaces/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+k.token)
		if resp, err := k.http.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return name
}

// pods counts the pods of one part of the release (serve or worker) in
// namespace.
func (k *kubeAPI) pods(t *testing.T, namespace, component string) int {
	t.Helper()
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	k.do(t, http.MethodGet, "/api/v1/namespaces/"+namespace+"/pods?labelSelector=app.kubernetes.io/component%3D"+component, nil, &list)
	return len(list.Items)
}

// replicas is the replicas a Deployment of the release asks for.
func (k *kubeAPI) replicas(t *testing.T, namespace, name string) int {
	t.Helper()
	var d struct {
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	k.do(t, http.MethodGet, "/apis/apps/v1/namespaces/"+namespace+"/deployments/"+name, nil, &d)
	return d.Spec.Replicas
}

// helmAt runs helm against the API server, answering its output (the
// API server's warnings included) and whether it succeeded.
func (k *kubeAPI) helmAt(t *testing.T, helmPath string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmPath, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.path)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// warnings are the lines of helm's output that carry a warning of the API
// server's ("Warning: …", which helm 4 logs through klog).
func warnings(out string) []string {
	var w []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "Warning:") || strings.HasPrefix(line, "W") && strings.Contains(line, "warnings.go") {
			w = append(w, strings.TrimSpace(line))
		}
	}
	return w
}

// TestChartOnAnAPIServer installs every variant of the chart on a real
// API server, each in a namespace of its own whose Pod Security level is
// privileged, as the deployment guide says to make it: a dry run with the
// server's validation (field names and types, KEDA's CRDs), then the
// install, each without an error or a warning; then the controller
// manager makes every pod the Deployments ask for (they stay Pending:
// there is no kubelet).
func TestChartOnAnAPIServer(t *testing.T) {
	k := apiServer(t)
	helmPath := helm(t)
	for name, values := range chartVariants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := k.namespace(t, "rf-"+name, "privileged")
			for _, dry := range []bool{true, false} {
				args := append([]string{"install", "farm", chartDir, "--namespace", ns}, values...)
				if dry {
					args = append(args, "--dry-run=server")
				}
				out, err := k.helmAt(t, helmPath, args...)
				if err != nil {
					t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				if w := warnings(out); len(w) > 0 {
					t.Errorf("helm install (dry run: %v) warned:\n%s", dry, strings.Join(w, "\n"))
				}
			}
			for _, part := range []string{"serve", "worker"} {
				want := k.replicas(t, ns, "farm-renderfarm-"+part)
				deadline := time.Now().Add(time.Minute)
				for k.pods(t, ns, part) < want && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
				}
				if got := k.pods(t, ns, part); got != want {
					t.Errorf("%s: %d pods made, want the Deployment's %d", part, got, want)
				}
			}
		})
	}
}

// TestChartInANamespaceOfBaselinePodSecurity shows what the deployment
// guide warns of: the render nodes' default sandbox needs the privileged
// level. Under baseline the release installs, the API server only warns,
// and no render node pod is ever made; with worker.sandbox=none the
// render nodes pass even restricted, as the API replicas always do.
func TestChartInANamespaceOfBaselinePodSecurity(t *testing.T) {
	k := apiServer(t)
	helmPath := helm(t)
	for _, c := range []struct {
		level, sandbox string
		workers        bool
	}{{"baseline", "userns", false}, {"restricted", "none", true}} {
		t.Run(c.level+"/"+c.sandbox, func(t *testing.T) {
			t.Parallel()
			ns := k.namespace(t, "rf-"+c.level, c.level)
			out, err := k.helmAt(t, helmPath, "install", "farm", chartDir, "--namespace", ns, "--set", "worker.sandbox="+c.sandbox)
			if err != nil {
				t.Fatalf("helm install: %v\n%s", err, out)
			}
			// "would violate PodSecurity "baseline:latest": forbidden AppArmor profile …"
			w := strings.Join(warnings(out), "\n")
			warned := strings.Contains(w, "violate PodSecurity") && strings.Contains(w, c.level+":latest")
			if warned == c.workers {
				t.Errorf("Pod Security warned: %v, want %v:\n%s", warned, !c.workers, out)
			}
			deadline := time.Now().Add(time.Minute)
			for k.pods(t, ns, "serve") < 2 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if c.workers {
				for k.pods(t, ns, "worker") < 1 && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
				}
			} else {
				time.Sleep(3 * time.Second) // the ReplicaSet's tries, refused
			}
			if got := k.pods(t, ns, "serve"); got != 2 {
				t.Errorf("%d API replica pods, want 2", got)
			}
			if got, want := k.pods(t, ns, "worker"), map[bool]int{true: 1, false: 0}[c.workers]; got != want {
				t.Errorf("%d render node pods, want %d", got, want)
			}
		})
	}
}
