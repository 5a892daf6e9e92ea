package deploy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
)

func TestMain(m *testing.M) { os.Exit(apptest.Main(m)) }

// alertExpressions reads every rule's expression in alerts.yml.
func alertExpressions(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	return exprs
}

// dashboardExpressions reads every query of the dashboard's panels.
func dashboardExpressions(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("grafana/renderfarm.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("renderfarm.json: %v", err)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("the dashboard has no datasource variable of Prometheus data sources")
	}
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		if len(p.Targets) > 0 && p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q reads data source %q; want the variable ${datasource}", p.Title, p.Datasource.UID)
		}
		for i, target := range p.Targets {
			exprs["panel "+p.Title+" #"+string(rune('A'+i))] = target.Expr
		}
	}
	return exprs
}

// servedFamily is the metric family a selected name belongs to: a
// histogram's _bucket, _sum and _count series are its family's.
func servedFamily(name string, served map[string]bool) bool {
	if served[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
			return true
		}
	}
	return false
}

// TestEveryMetricTheAlertsAndDashboardReadIsServed renders a frame on a
// farm in this process, uses the API, scrapes /metrics, and checks that
// each metric named in alerts.yml and renderfarm.json is one the farm
// serves: a metric renamed or removed in the code fails here, not in a
// dashboard that goes blank or an alert that can never fire.
func TestEveryMetricTheAlertsAndDashboardReadIsServed(t *testing.T) {
	apptest.RequireTools(t)
	exprs := alertExpressions(t)
	for where, expr := range dashboardExpressions(t) {
		exprs[where] = expr
	}

	const adminToken = "metrics-test-token"
	farm := apptest.Start(t, "--workers", "1", "--admin-token", adminToken)
	c := client.New(farm.URL, farm.Key("studio"))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	id := submitCube(ctx, t, c, client.RenderConfig{FrameRanges: []string{"1"}, SampleCount: client.Int(1), Resolution: []int{64, 36}})
	if _, err := c.Wait(ctx, id, client.UntilStatus(client.StatusCompleted), nil); err != nil {
		t.Fatalf("wait for the render: %v\n%s", err, farm.Log.String())
	}

	req, err := http.NewRequestWithContext(ctx, "GET", farm.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	served := map[string]bool{}
	for name := range families {
		served[name] = true
	}
	if f := families["renderfarm_chunks_finished_total"]; f == nil || !slices.ContainsFunc(f.Metric, func(m *dto.Metric) bool {
		return m.GetCounter().GetValue() == 1 && slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetValue() == "done" })
	}) {
		t.Errorf("renderfarm_chunks_finished_total{result=\"done\"} is not 1 after one chunk rendered: %v", f)
	}

	checked := 0
	for where, expr := range exprs {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s selects no metric: %s", where, expr)
		}
		for _, name := range names {
			checked++
			if !servedFamily(name, served) {
				t.Errorf("%s reads %s, which /metrics does not serve", where, name)
			}
		}
	}
	t.Logf("checked %d metric names in %d expressions", checked, len(exprs))
}
