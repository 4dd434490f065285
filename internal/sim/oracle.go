package sim

import "time"

// Oracle returns the lower bound of node-hours: the fewest node-hours that
// leave no step under-provisioned (none but those needing more than max
// nodes), knowing the whole trace in advance, with nodes that take
// m.BootTime from launch to service and cost node-hours from launch.
//
// It is exact, level by level: the k-th node is needed during the steps that
// need at least k nodes; between two such runs, keeping it costs the gap and
// stopping it costs a new boot, so the cheaper of the two is taken. Each run
// after a gap jumped over in the trace starts with new boots. The first step
// starts with the nodes it needs in service. Steps without data need min.
func Oracle(trace *Trace, m Model, lo, hi int, keepSteps bool) *Result {
	start := time.Now()
	step := trace.Step
	boot := int((m.BootTime + step - 1) / step) // boot time in steps, rounded up
	need := make([]int, len(trace.Points))
	top := 0
	under := 0
	for i, p := range trace.Points {
		n := lo
		if !p.Missing {
			n = clampInt(needed(p.Value, m.RPSPerNode), lo, hi)
			if needed(p.Value, m.RPSPerNode) > hi {
				under++
			}
		}
		need[i] = n
		top = max(top, n)
	}
	// running[i] counts the nodes that exist during step i (booting ones
	// included), as a difference array.
	diff := make([]int, len(need)+1)
	var total int
	for k := 1; k <= top; k++ {
		last := -1 // the last step that needed k nodes
		for i, n := range need {
			if n < k {
				continue
			}
			switch {
			case last < 0 && i == 0:
				diff[0]++ // in service from the start
			case last < 0 || trace.Points[i].Jump || jumpBetween(trace, last, i):
				// A new node: it boots over the steps before i (not before 0).
				from := max(i-boot, 0)
				if last >= 0 {
					from = max(from, last+1)
				}
				diff[from]++
				total += boot
				if last >= 0 {
					diff[last+1]--
				}
			case i-last-1 <= boot:
				// Keep it through the gap: the gap costs less than a boot.
				total += i - last - 1
			default:
				// Stop it after last, launch it again boot steps before i.
				diff[last+1]--
				diff[i-boot]++
				total += boot
			}
			total++
			last = i
		}
		if last >= 0 {
			diff[last+1]--
		}
	}
	res := &Result{Name: "oracle", NodeHours: (time.Duration(total) * step).Hours(),
		UnderMinutes: float64(under) * step.Minutes()}
	running := 0
	for i := range need {
		running += diff[i]
		res.PeakNodes = max(res.PeakNodes, running)
		if keepSteps {
			p := trace.Points[i]
			res.Steps = append(res.Steps, StepRecord{At: p.At, Demand: p.Value, Missing: p.Missing, Nodes: running,
				InService: need[i], Capacity: float64(need[i]) * m.RPSPerNode, Under: !p.Missing && needed(p.Value, m.RPSPerNode) > hi,
				Desired: running})
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

// jumpBetween reports whether a gap was jumped over after step a, up to step b.
func jumpBetween(trace *Trace, a, b int) bool {
	for i := a + 1; i <= b; i++ {
		if trace.Points[i].Jump {
			return true
		}
	}
	return false
}
