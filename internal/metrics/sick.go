package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var sickDesc = prometheus.NewDesc("renderfarm_worker_sick",
	"1 for each render node that is sick: chunks of several jobs in a row failed on it, and it takes nothing until `renderfarm workers enable NAME`.",
	[]string{"worker"}, nil)

// SickWorkers lists, by name, the render nodes that are sick, read from
// the database at each scrape.
type SickWorkers func(ctx context.Context) ([]string, error)

// CountSick reports renderfarm_worker_sick, one series per sick render
// node, from sick at each scrape.
func (m *Metrics) CountSick(sick SickWorkers, log *slog.Logger) {
	m.registry.MustRegister(&sickCollector{sick: sick, log: log})
}

type sickCollector struct {
	sick SickWorkers
	log  *slog.Logger
}

func (c *sickCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sickDesc }

func (c *sickCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := c.sick(ctx)
	if err != nil {
		c.log.Warn("metrics: could not list the sick render nodes", "err", err)
		return
	}
	for _, name := range names {
		ch <- prometheus.MustNewConstMetric(sickDesc, prometheus.GaugeValue, 1, name)
	}
}
