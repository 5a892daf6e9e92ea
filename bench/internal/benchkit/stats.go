package benchkit

import (
	"slices"
	"time"
)

// Median is the median of of(r) over rs.
func Median[T any](rs []T, of func(T) time.Duration) time.Duration {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = of(r)
	}
	return MedianOf(ds)
}

// MedianOf is the median of ds; 0 for none.
func MedianOf(ds []time.Duration) time.Duration {
	return medianOf(ds, func(a, b time.Duration) time.Duration { return (a + b) / 2 })
}

// MedianFloat is the median of fs; 0 for none.
func MedianFloat(fs []float64) float64 {
	return medianOf(fs, func(a, b float64) float64 { return (a + b) / 2 })
}

func medianOf[T time.Duration | float64](xs []T, mid func(a, b T) T) T {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return mid(xs[len(xs)/2-1], xs[len(xs)/2])
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
