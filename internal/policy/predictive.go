package policy

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

// Forecast constants (docs/policies.md says why these values).
const (
	// ForecastBucket is the resolution of the seasonal history: each bucket
	// keeps the mean load seen in it.
	ForecastBucket = 5 * time.Minute
	// ForecastMinHistory is the history the seasonal part needs (AWS
	// predictive scaling needs 24 hours too); before it, the forecast is the
	// recent level alone.
	ForecastMinHistory = 24 * time.Hour
	// ForecastLevelHalfLife is the half-life of the recent level (an
	// exponentially weighted mean of the load).
	ForecastLevelHalfLife = 10 * time.Minute
	// ForecastSpreadHalfLife is the half-life of the spread (an
	// exponentially weighted mean of the squared one-step errors).
	ForecastSpreadHalfLife = 30 * time.Minute
	// ForecastMinReadings is how many readings the spread needs.
	ForecastMinReadings = 5
	// forecastWeekWeight is the weight of the same weekday (7, 14, … days
	// ago) against the other days in the seasonal median.
	forecastWeekWeight = 3.0
	// forecastShapeMin and forecastShapeMax bound the seasonal factor.
	forecastShapeMin, forecastShapeMax = 0.5, 2.0
	// forecastSmoothing is the window each seasonal value averages over:
	// five-minute means are too noisy to compare with one another.
	forecastSmoothing = time.Hour
)

const day = 24 * time.Hour

// levelLag is the mean age of the level, half-life / ln 2.
var levelLag = time.Duration(math.Round(float64(ForecastLevelHalfLife) / math.Ln2))

// Predictive forecasts the load from the cluster's own history and asks,
// ahead of time, for the nodes the forecast's upper quantile needs (AWS
// predictive scaling, at the grain of the counter's readings).
//
// Model, for the load L (the aggregate times the serving nodes, or the total):
//   - the recent level μ is an exponentially weighted mean of L (half-life
//     ForecastLevelHalfLife), and the spread σ the root of an exponentially
//     weighted mean of the squared one-step errors L − μ (half-life
//     ForecastSpreadHalfLife): how far the next reading strays from the level;
//   - the seasonal shape: the history keeps the mean load of every
//     ForecastBucket; the seasonal value of a time is the weighted median,
//     over the last HistoryDays days, of the mean load in the hour around
//     the same time of day, the same weekday weighing forecastWeekWeight
//     times the others (weekly seasonality where the history has it, daily
//     otherwise). The factor shape = seasonal(ahead) / seasonal(the time the
//     level stands for, its mean age earlier), bounded to [0.5, 2], carries
//     the level along the usual daily curve: when the load ramps up every
//     morning, capacity ramps up ahead of it, without waiting for the
//     lagging level. It needs ForecastMinHistory of history;
//   - the forecast for the next Lead (the nodes' boot time by default) is
//     μ × max(shape) + z·σ, z the standard normal quantile of Confidence,
//     and the policy asks for ceil(forecast / Target) nodes: nodes launched
//     now are in service when the forecast load comes.
//
// The Scaler takes the highest recommendation, so the forecast is a floor:
// it never scales in below what the reactive policies want, and it holds
// capacity when they would scale in ahead of a forecast rise. Without a
// fresh reading it holds the size (missing data never scales in).
type Predictive struct {
	name string
	cfg  config.Predictive
	per  bool
	z    float64

	means map[int64]*bucketMean // bucket index → mean load
	cache map[int64]float64     // bucket index → seasonal value (NaN: none)
	first int64                 // the oldest bucket with data

	seen     time.Time // the newest reading fed
	readings int
	level    float64
	spread   float64 // variance of the one-step errors
	last     float64 // the newest load
	// Last is the newest forecast, for logs and the API.
	Last Forecast
}

type bucketMean struct {
	sum float64
	n   int
}

// Forecast is a forecast made at At of the load up to At+Lead.
type Forecast struct {
	At     time.Time
	Level  float64
	Shape  float64
	Spread float64
	Load   float64
	Nodes  int
}

// NewPredictive builds the policy name from its validated configuration.
func NewPredictive(name string, c *config.Predictive) *Predictive {
	p := &Predictive{name: name, cfg: *c, per: true, means: map[int64]*bucketMean{}, cache: map[int64]float64{}, first: -1}
	if c.PerNode != nil {
		p.per = *c.PerNode
	}
	if p.cfg.HistoryDays == 0 {
		p.cfg.HistoryDays = config.DefaultHistoryDays
	}
	if p.cfg.Confidence == 0 {
		p.cfg.Confidence = config.DefaultConfidence
	}
	p.z = math.Sqrt2 * math.Erfinv(2*p.cfg.Confidence-1)
	return p
}

// Name is the policy's name.
func (p *Predictive) Name() string { return p.name }

// Observe feeds a load measured at at (readings come through Recommend; the
// server also feeds the history it finds in the store at start). Loads must
// come in time order; older ones are ignored.
func (p *Predictive) Observe(at time.Time, load float64) {
	if math.IsNaN(load) || math.IsInf(load, 0) || load < 0 || !at.After(p.seen) {
		return
	}
	if p.readings == 0 {
		p.level = load
	} else {
		dt := at.Sub(p.seen)
		a := 1 - math.Exp2(-float64(dt)/float64(ForecastLevelHalfLife))
		b := 1 - math.Exp2(-float64(dt)/float64(ForecastSpreadHalfLife))
		e := load - p.level
		p.spread += b * (e*e - p.spread)
		p.level += a * e
	}
	p.seen, p.last = at, load
	p.readings++

	k := bucketOf(at)
	m := p.means[k]
	if m == nil {
		m = &bucketMean{}
		p.means[k] = m
	}
	m.sum += load
	m.n++
	if p.first < 0 {
		p.first = k
	}
	// Forget what the forecast no longer reads.
	keep := int64(time.Duration(p.cfg.HistoryDays+1) * day / ForecastBucket)
	if len(p.means) > int(keep)+288 {
		for b := range p.means {
			if b < k-keep {
				delete(p.means, b)
			}
		}
		p.first = max(p.first, k-keep)
	}
}

// Recommend implements Policy.
func (p *Predictive) Recommend(s State) (Recommendation, bool) {
	r := s.Readings[p.cfg.Counter]
	missing := r.Missing(s.Now)
	switch {
	case missing != "":
	case !p.per:
		p.Observe(r.At, r.Value)
	case s.Counted() > 0:
		p.Observe(r.At, r.Value*float64(r.Serving(s)))
	default:
		missing = "no node in service reports it"
	}
	if missing != "" {
		if p.cfg.ForecastOnly || p.readings == 0 {
			return Recommendation{}, false
		}
		return holding(p.name, s, func() string {
			return fmt.Sprintf("no data from counter %s (%s): holding, missing data never scales in", p.cfg.Counter, missing)
		}), true
	}
	if p.readings < ForecastMinReadings {
		return Recommendation{}, false
	}
	lead := p.cfg.Lead.D()
	if lead == 0 {
		lead = s.BootTime
	}
	shape := p.shape(s.Now, lead)
	sd := math.Sqrt(p.spread)
	load := p.level*shape + p.z*sd
	n := max(ceilTol(load/p.cfg.Target), 0)
	p.Last = Forecast{At: s.Now, Level: p.level, Shape: shape, Spread: sd, Load: load, Nodes: n}
	if p.cfg.ForecastOnly {
		return Recommendation{}, false
	}
	level := p.level
	return wantf(p.name, n, func() string {
		seasonal := ""
		if shape != 1 {
			seasonal = fmt.Sprintf(" × seasonal %s", num(shape))
		}
		return fmt.Sprintf("forecast load %s in the next %s (level %s%s + %s × spread %s) at target %s per node",
			num(load), lead.Round(time.Second), num(level), seasonal, num(p.z), num(sd), num(p.cfg.Target))
	}), true
}

// shape is the highest seasonal factor from now to now+lead: the seasonal
// value of each bucket ahead over that of the time the level stands for
// (1 without enough history).
func (p *Predictive) shape(now time.Time, lead time.Duration) float64 {
	b0 := bucketOf(now)
	if p.first < 0 || time.Duration(b0-p.first)*ForecastBucket < ForecastMinHistory {
		return 1
	}
	// The level lags the load by its mean age, half-life / ln 2.
	base, ok := p.seasonal(bucketOf(now.Add(-levelLag)))
	if !ok || base <= 0 {
		return 1
	}
	f := 0.0
	for b := b0; b <= bucketOf(now.Add(lead)); b++ {
		if v, ok := p.seasonal(b); ok {
			f = max(f, v/base)
		}
	}
	if f == 0 {
		return 1
	}
	return min(max(f, forecastShapeMin), forecastShapeMax)
}

// seasonal returns the seasonal value of bucket b from the days before it.
func (p *Predictive) seasonal(b int64) (float64, bool) {
	if v, ok := p.cache[b]; ok {
		return v, !math.IsNaN(v)
	}
	v, ok := p.seasonal0(b)
	if !ok {
		v = math.NaN()
	}
	if len(p.cache) > 4096 {
		clear(p.cache)
	}
	p.cache[b] = v
	return v, ok
}

// window returns the mean load over the hour centred on bucket b.
func (p *Predictive) window(b int64) (float64, bool) {
	half := int64(forecastSmoothing / ForecastBucket / 2)
	sum, n := 0.0, 0
	for k := b - half; k <= b+half; k++ {
		if m, ok := p.means[k]; ok && m.n > 0 {
			sum += m.sum / float64(m.n)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

func (p *Predictive) seasonal0(b int64) (float64, bool) {
	perDay := int64(day / ForecastBucket)
	type cand struct{ v, w float64 }
	cs := make([]cand, 0, p.cfg.HistoryDays)
	total := 0.0
	for d := 1; d <= p.cfg.HistoryDays; d++ {
		v, ok := p.window(b - int64(d)*perDay)
		if !ok {
			continue
		}
		w := 1.0
		if d%7 == 0 {
			w = forecastWeekWeight
		}
		cs = append(cs, cand{v, w})
		total += w
	}
	if len(cs) == 0 {
		return 0, false
	}
	slices.SortFunc(cs, func(a, b cand) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	acc := 0.0
	for _, c := range cs {
		acc += c.w
		if acc >= total/2 {
			return c.v, true
		}
	}
	return cs[len(cs)-1].v, true
}

func bucketOf(t time.Time) int64 {
	return t.UnixNano() / int64(ForecastBucket)
}

// String describes the forecast.
func (f Forecast) String() string {
	if f.At.IsZero() {
		return "no forecast yet"
	}
	return fmt.Sprintf("at %s: load %s (level %s × seasonal %s, spread %s) → %d node(s)",
		f.At.Format(time.RFC3339), num(f.Load), num(f.Level), num(f.Shape), num(f.Spread), f.Nodes)
}
