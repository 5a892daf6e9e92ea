// Package deploy holds what runs the farm for a studio, and its checks:
// the Helm chart (kubernetes/renderfarm), the Grafana dashboard (grafana)
// and the Prometheus alerts (prometheus). Its tests render the chart and
// check each container's flags against the binary's own flag sets, and
// check that every metric the dashboard and the alerts name is one the
// farm serves.
package deploy
