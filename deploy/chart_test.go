package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/renderfarm/renderfarm/internal/app"
)

// chartDir is the Helm chart, relative to this package.
const chartDir = "kubernetes/renderfarm"

// chartVariants are the values the chart is checked with: its defaults,
// and each way of scaling and confining the render nodes.
var chartVariants = map[string][]string{
	"defaults":              nil,
	"keda-prometheus":       {"--set", "autoscaling.enabled=true", "--set", "autoscaling.trigger=prometheus"},
	"keda-postgresql":       {"--set", "autoscaling.enabled=true", "--set", "autoscaling.trigger=postgresql", "--set", "worker.concurrency=2"},
	"privileged-sandbox":    {"--set", "worker.sandbox=privileged", "--set", "adminToken.existingSecret=renderfarm-admin"},
	"unconfined-with-extra": {"--set", "worker.sandbox=none", "--set", "bucket.endpoint=https://s3.studio.lan", "--set", "serve.extraArgs={--webhook-attempts=5}"},
}

// helm finds the helm binary, or skips: scripts/test.sh installs it, so
// in CI these tests always run.
func helm(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("helm is not on PATH; scripts/test.sh builds it (go build -o \"$(go env GOPATH)/bin/helm\" helm.sh/helm/v4/cmd/helm@v4.3.2)")
	}
	return path
}

// manifest is the part of a rendered Kubernetes object the checks read.
type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		// A ScaledObject's.
		ScaleTargetRef struct {
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		Triggers        []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
	Containers                    []container `yaml:"containers"`
	HostUsers                     *bool       `yaml:"hostUsers"`
	SecurityContext               struct {
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
}

type container struct {
	Name         string   `yaml:"name"`
	Args         []string `yaml:"args"`
	VolumeMounts []struct {
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Env []struct {
		Name      string         `yaml:"name"`
		Value     *string        `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe   probe `yaml:"livenessProbe"`
	ReadinessProbe  probe `yaml:"readinessProbe"`
	SecurityContext struct {
		RunAsNonRoot             bool   `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool   `yaml:"readOnlyRootFilesystem"`
		Privileged               bool   `yaml:"privileged"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ProcMount                string `yaml:"procMount"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

// render runs helm template with extra values and parses every object.
func render(t *testing.T, helmPath string, extra ...string) []manifest {
	t.Helper()
	return renderRelease(t, helmPath, "farm", extra...)
}

// renderRelease is render for a release of that name.
func renderRelease(t *testing.T, helmPath, release string, extra ...string) []manifest {
	t.Helper()
	cmd := exec.Command(helmPath, append([]string{"template", release, chartDir}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", extra, err, stderr.String())
	}
	var objects []manifest
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var m manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template %v made YAML that does not parse: %v\n%s", extra, err, out)
		}
		if m.Kind != "" {
			objects = append(objects, m)
		}
	}
	return objects
}

// TestChartNamesItsObjectsAsKubernetesAllows: whatever the release's
// name (helm allows dots, and 53 characters), every object's name is
// one the API server takes: a Service's a DNS label (letters, digits
// and dashes, at most 63), the others DNS subdomains. A release named
// my.farm made a Service my.farm-renderfarm, which the API server
// refused after the Deployments were made.
func TestChartNamesItsObjectsAsKubernetesAllows(t *testing.T) {
	helmPath := helm(t)
	label := regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	subdomain := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	for _, release := range []string{"farm", "my.farm", "studio.render.farm", strings.Repeat("renderfarm-", 4) + "studio-a", "renderfarm"} {
		for name, values := range chartVariants {
			for _, m := range renderRelease(t, helmPath, release, values...) {
				n := m.Metadata.Name
				ok := len(n) <= 253 && subdomain.MatchString(n)
				if m.Kind == "Service" {
					ok = len(n) <= 63 && label.MatchString(n)
				}
				if !ok {
					t.Errorf("release %q (%s): %s %q is not a name Kubernetes takes for it", release, name, m.Kind, n)
				}
			}
		}
	}
}

// TestChartNotesSayWhatTheRenderNodesNeed: what helm prints after an
// install names the release's namespace in each command, and, when the
// render nodes confine Blender, the Pod Security level their namespace
// needs: under baseline or restricted the release installs and no render
// node pod is ever made, and the API server only warns.
func TestChartNotesSayWhatTheRenderNodesNeed(t *testing.T) {
	helmPath := helm(t)
	// --overwrite: a namespace that enforces baseline or restricted has
	// the label already, and kubectl keeps it without.
	label := "kubectl label --overwrite namespace studio pod-security.kubernetes.io/enforce=privileged"
	for name, values := range chartVariants {
		args := append([]string{"install", "my.farm", chartDir, "--dry-run=client", "--namespace", "studio"}, values...)
		out, err := exec.Command(helmPath, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm install --dry-run=client (%s): %v\n%s", name, err, out)
		}
		_, notes, ok := strings.Cut(string(out), "NOTES:\n")
		if !ok {
			t.Fatalf("%s: helm printed no NOTES:\n%s", name, out)
		}
		if !strings.Contains(notes, "kubectl exec -n studio deploy/my-farm-renderfarm-serve -- renderfarm keys create") {
			t.Errorf("%s: the notes do not give the key command in the release's namespace:\n%s", name, notes)
		}
		confined := !slices.Contains(values, "worker.sandbox=none")
		if strings.Contains(notes, label) != confined {
			t.Errorf("%s: the notes say the namespace's Pod Security level: %v, want %v:\n%s", name, !confined, confined, notes)
		}
	}
}

func TestChartLints(t *testing.T) {
	helmPath := helm(t)
	for name, values := range chartVariants {
		out, err := exec.Command(helmPath, append([]string{"lint", "--strict", chartDir}, values...)...).CombinedOutput()
		if err != nil {
			t.Errorf("helm lint (%s): %v\n%s", name, err, out)
		}
	}
}

// TestChartContainersRunFlagsTheBinaryAccepts parses every container's
// command line and RENDERFARM_ variables with the very flag sets `renderfarm
// serve` and `renderfarm worker` use, so a flag renamed in the binary, a
// typo in the chart or a value the binary refuses fails here rather than
// in a crash-looping pod.
func TestChartContainersRunFlagsTheBinaryAccepts(t *testing.T) {
	helmPath := helm(t)
	for name, values := range chartVariants {
		t.Run(name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, m := range render(t, helmPath, values...) {
				if m.Kind != "Deployment" {
					continue
				}
				for _, c := range m.Spec.Template.Spec.Containers {
					role := checkContainer(t, m.Metadata.Name, c)
					seen[string(role)] = true
				}
			}
			if !seen[string(app.Serve)] || !seen[string(app.Worker)] {
				t.Errorf("the chart runs %v; want a serve and a worker Deployment", seen)
			}
		})
	}
}

// checkContainer parses c's args and environment as the binary would, and
// answers the role it runs.
func checkContainer(t *testing.T, deployment string, c container) app.Role {
	t.Helper()
	if len(c.Args) == 0 {
		t.Fatalf("%s/%s has no args; want serve or worker first", deployment, c.Name)
	}
	role := app.Role(c.Args[0])
	if role != app.Serve && role != app.Worker {
		t.Fatalf("%s/%s runs %q; want serve or worker", deployment, c.Name, c.Args[0])
	}
	fs := app.NewFlagSet(string(role), io.Discard)
	cfg := app.DefaultConfig(role)
	cfg.RegisterFlags(fs)
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[f.Name] = true })

	// The environment the pod gets; a value from a Secret stands in as a
	// plausible one, since the binary reads it the same way.
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "RENDERFARM_") {
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "RENDERFARM_"), "_", "-"))
		if !known[flagName] {
			t.Errorf("%s/%s sets %s, but `renderfarm %s` has no --%s: the binary would ignore it", deployment, c.Name, e.Name, role, flagName)
			continue
		}
		value := secretStandIn[e.Name]
		if e.Value != nil {
			value = *e.Value
		} else if _, fromField := e.ValueFrom["fieldRef"]; fromField {
			value = "farm-worker-7d9f8-abcde"
		}
		t.Setenv(e.Name, value)
	}
	cfg, err := app.ParseConfig(role, c.Args[1:], app.NewFlagSet(string(role), io.Discard))
	if err != nil {
		t.Errorf("%s/%s: `renderfarm %s %s` is refused: %v", deployment, c.Name, role, strings.Join(c.Args[1:], " "), err)
		return role
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s/%s probes liveness on %q and readiness on %q; want /healthz and /readyz", deployment, c.Name,
			c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if cfg.MetricsAddr == "" {
		t.Errorf("%s/%s serves no --metrics-addr: its probes and Prometheus need one", deployment, c.Name)
	}
	if role == app.Serve && cfg.RenderSlots != 0 {
		t.Errorf("%s/%s renders %d chunks at once; API replicas run --workers 0", deployment, c.Name, cfg.RenderSlots)
	}
	return role
}

// secretStandIn is what a Secret would hold for the variables the chart
// takes from Secrets.
var secretStandIn = map[string]string{
	"RENDERFARM_DATABASE":    "postgres://renderfarm:password@db:5432/renderfarm?sslmode=disable",
	"RENDERFARM_ADMIN_TOKEN": "an-admin-token",
}

// TestChartLetsAStoppingWorkerHandItsChunkBack checks the scale-down
// guarantee: Kubernetes waits longer than the worker's --shutdown-timeout
// plus the time to hand a chunk back, and the chart refuses values that
// break it.
func TestChartLetsAStoppingWorkerHandItsChunkBack(t *testing.T) {
	helmPath := helm(t)
	for _, m := range render(t, helmPath) {
		if m.Kind != "Deployment" {
			continue
		}
		spec := m.Spec.Template.Spec
		for _, c := range spec.Containers {
			cfg, err := app.ParseConfig(app.Role(c.Args[0]), c.Args[1:], app.NewFlagSet(c.Args[0], io.Discard))
			if err != nil && c.Args[0] == string(app.Serve) {
				t.Fatalf("%s: %v", m.Metadata.Name, err)
			}
			margin := 0
			if c.Args[0] == string(app.Worker) {
				margin = 15 // hand-back (up to 10 s) and a margin
			}
			if grace := spec.TerminationGracePeriodSeconds; float64(grace) < cfg.ShutdownTimeout.Seconds()+float64(margin) {
				t.Errorf("%s: terminationGracePeriodSeconds %d, --shutdown-timeout %v: Kubernetes would kill it mid-stop", m.Metadata.Name, grace, cfg.ShutdownTimeout)
			}
		}
	}
	out, err := exec.Command(helmPath, "template", "farm", chartDir,
		"--set", "worker.shutdownTimeoutSeconds=120", "--set", "worker.terminationGracePeriodSeconds=60").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "terminationGracePeriodSeconds (60) must be at least worker.shutdownTimeoutSeconds + 15 (135)") {
		t.Errorf("a grace period shorter than the shutdown timeout was rendered, or refused without saying why: %v\n%s", err, out)
	}
}

// TestChartGivesTheWorkerAWorkDirectoryItMayMakeItsOwn: the worker's
// --work-dir, which it keeps to itself (mode 0700), lies below the
// volume mounted for it, never at the volume's own mount point. A
// volume's own directory is root's (an emptyDir is mode 2777, group
// fsGroup): the worker, which runs as another user, may not change its
// mode, and stopped at its start with "chmod /var/cache/renderfarm:
// operation not permitted" on a real kubelet. (--data-dir is tightened
// so only for SQLite or local objects, which the chart never uses: serve
// works in --data-dir/work.)
func TestChartGivesTheWorkerAWorkDirectoryItMayMakeItsOwn(t *testing.T) {
	helmPath := helm(t)
	for _, sandbox := range []string{"userns", "privileged", "none"} {
		for _, m := range render(t, helmPath, "--set", "worker.sandbox="+sandbox) {
			if m.Kind != "Deployment" {
				continue
			}
			for _, c := range m.Spec.Template.Spec.Containers {
				for _, arg := range c.Args {
					flag, dir, ok := strings.Cut(arg, "=")
					if !ok || flag != "--work-dir" {
						continue
					}
					below := false
					for _, v := range c.VolumeMounts {
						mount := strings.TrimSuffix(v.MountPath, "/")
						if filepath.Clean(dir) == mount {
							t.Errorf("%s (sandbox %s), container %s: %s is the mount point of a volume, whose mode its process may not change; give it a directory below it", m.Metadata.Name, sandbox, c.Name, arg)
						}
						below = below || strings.HasPrefix(filepath.Clean(dir), mount+"/")
					}
					if !below {
						t.Errorf("%s (sandbox %s), container %s: %s is on no volume: the frames would be written to the container's own layer, which is read-only", m.Metadata.Name, sandbox, c.Name, arg)
					}
				}
			}
		}
	}
}

// TestChartScalesWorkersToZeroOnWaitingWork checks the ScaledObject of
// each trigger: it targets the worker Deployment, may scale it to zero,
// and reads the waiting work from the gauge or the query values.yaml
// names.
func TestChartScalesWorkersToZeroOnWaitingWork(t *testing.T) {
	helmPath := helm(t)
	values, err := readValues()
	if err != nil {
		t.Fatal(err)
	}
	for _, trigger := range []string{"prometheus", "postgresql"} {
		t.Run(trigger, func(t *testing.T) {
			var scaled []manifest
			var workerDeployment string
			for _, m := range render(t, helmPath, "--set", "autoscaling.enabled=true", "--set", "autoscaling.trigger="+trigger, "--set", "worker.concurrency=2") {
				switch {
				case m.Kind == "ScaledObject":
					scaled = append(scaled, m)
				case m.Kind == "Deployment" && strings.HasSuffix(m.Metadata.Name, "-worker"):
					workerDeployment = m.Metadata.Name
				}
			}
			if len(scaled) != 1 {
				t.Fatalf("%d ScaledObjects; want 1", len(scaled))
			}
			so := scaled[0]
			if so.Spec.ScaleTargetRef.Name != workerDeployment || workerDeployment == "" {
				t.Errorf("the ScaledObject scales %q; want the worker Deployment %q", so.Spec.ScaleTargetRef.Name, workerDeployment)
			}
			if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != 0 {
				t.Errorf("minReplicaCount = %v; want 0 (no render node while nothing waits)", so.Spec.MinReplicaCount)
			}
			if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != trigger {
				t.Fatalf("triggers = %+v; want one %s trigger", so.Spec.Triggers, trigger)
			}
			md := so.Spec.Triggers[0].Metadata
			switch trigger {
			case "prometheus":
				if md["query"] != values.Autoscaling.Prometheus.Query || !strings.Contains(md["query"], "renderfarm_tasks") || md["threshold"] != "2" {
					t.Errorf("prometheus trigger = %v; want values.yaml's query on renderfarm_tasks, threshold 2 (the concurrency)", md)
				}
			case "postgresql":
				if md["query"] != values.Autoscaling.PostgreSQL.Query || md["targetQueryValue"] != "2" {
					t.Errorf("postgresql trigger = %v; want values.yaml's query, target 2 (the concurrency)", md)
				}
			}
		})
	}
}

// chartValues is the part of values.yaml the tests read.
type chartValues struct {
	Autoscaling struct {
		Prometheus struct {
			Query string `yaml:"query"`
		} `yaml:"prometheus"`
		PostgreSQL struct {
			Query string `yaml:"query"`
		} `yaml:"postgresql"`
	} `yaml:"autoscaling"`
}

func readValues() (chartValues, error) {
	var v chartValues
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return v, err
	}
	return v, yaml.Unmarshal(data, &v)
}

// TestChartGivesBubblewrapWhatItNeeds checks what each worker.sandbox
// value asks of the cluster: in a user namespace of its own, bubblewrap
// may make its namespaces and mount /proc without any privilege on the
// host; privileged is the fallback; none runs Blender unconfined, and
// says so on its command line. Every container runs as a user, never
// root, on a read-only root file system.
func TestChartGivesBubblewrapWhatItNeeds(t *testing.T) {
	helmPath := helm(t)
	for _, sandbox := range []string{"userns", "privileged", "none"} {
		t.Run(sandbox, func(t *testing.T) {
			for _, m := range render(t, helmPath, "--set", "worker.sandbox="+sandbox) {
				if m.Kind != "Deployment" {
					continue
				}
				spec := m.Spec.Template.Spec
				c := spec.Containers[0]
				sc := c.SecurityContext
				if !sc.RunAsNonRoot || !sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: runAsNonRoot %v, readOnlyRootFilesystem %v; want both", m.Metadata.Name, sc.RunAsNonRoot, sc.ReadOnlyRootFilesystem)
				}
				if c.Args[0] == string(app.Serve) {
					if sc.Privileged || spec.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
						t.Errorf("%s: an API replica runs no sandbox and needs no privilege: privileged %v, seccomp %q", m.Metadata.Name, sc.Privileged, spec.SecurityContext.SeccompProfile.Type)
					}
					continue
				}
				userns := spec.HostUsers != nil && !*spec.HostUsers
				sandboxArg := ""
				for _, a := range c.Args {
					if v, ok := strings.CutPrefix(a, "--sandbox="); ok {
						sandboxArg = v
					}
				}
				switch sandbox {
				case "userns":
					if !userns || sc.ProcMount != "Unmasked" || sc.Privileged || spec.SecurityContext.SeccompProfile.Type != "Unconfined" || sandboxArg != "bwrap" {
						t.Errorf("%s: hostUsers false %v, procMount %q, privileged %v, seccomp %q, --sandbox=%s; want true, Unmasked, false, Unconfined, bwrap",
							m.Metadata.Name, userns, sc.ProcMount, sc.Privileged, spec.SecurityContext.SeccompProfile.Type, sandboxArg)
					}
				case "privileged":
					if !sc.Privileged || sandboxArg != "bwrap" {
						t.Errorf("%s: privileged %v, --sandbox=%s; want true, bwrap", m.Metadata.Name, sc.Privileged, sandboxArg)
					}
				case "none":
					if sc.Privileged || userns || sandboxArg != "none" || spec.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
						t.Errorf("%s: privileged %v, hostUsers false %v, --sandbox=%s, seccomp %q; want false, false, none, RuntimeDefault",
							m.Metadata.Name, sc.Privileged, userns, sandboxArg, spec.SecurityContext.SeccompProfile.Type)
					}
				}
				if !sc.Privileged && (sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation) {
					t.Errorf("%s: allowPrivilegeEscalation is not false", m.Metadata.Name)
				}
			}
		})
	}
	out, err := exec.Command(helmPath, "template", "farm", chartDir, "--set", "worker.sandbox=off").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `worker.sandbox is "off"; give userns, privileged or none`) {
		t.Errorf("worker.sandbox=off was rendered, or refused without saying why: %v\n%s", err, out)
	}
}
