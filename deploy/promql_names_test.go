package deploy_test

import (
	"slices"
	"testing"
)

func TestMetricNamesFindsTheSelectedMetricsOnly(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum(rate(renderfarm_chunks_finished_total{result="failed"}[15m])) / sum(rate(renderfarm_chunks_finished_total[15m])) > 0.1`:               {"renderfarm_chunks_finished_total"},
		`histogram_quantile(0.95, sum by (le, route) (rate(renderfarm_http_request_duration_seconds_bucket{route=~"/api/.*"}[$__rate_interval])))`: {"renderfarm_http_request_duration_seconds_bucket"},
		`max(renderfarm_tasks{status="queued"}) > 0 and on() max(renderfarm_workers) == 0`:                                                         {"renderfarm_tasks", "renderfarm_workers"},
		`renderfarm_disk_free_bytes / ignoring(x) renderfarm_disk_size_bytes < 0.1`:                                                                {"renderfarm_disk_free_bytes", "renderfarm_disk_size_bytes"},
		`max without (instance, job) (renderfarm_jobs{status='failed'}) offset 5m`:                                                                 {"renderfarm_jobs"},
		`1e3 * up`: {"up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}
